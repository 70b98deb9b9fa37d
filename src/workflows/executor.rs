//! Mutations as data, first step: each workflow describes the mutations it is about to send as
//! [`Mutation`] values, and one gate runs the part every workflow shared — refuse when a check
//! blocks, stop after the plan (`--dry-run`), send every mutation with dryRun=All
//! (`--dry-run=server`), ask for confirmation. Acting (with preconditions), waiting and
//! verifying stay in the workflows.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Serialize;

use super::report::{AdoptReport, MigrateReport, OrphanReport, ServerDryRun};
use super::{adopt, orphan, refuse_if_blocked, Ctx, Mode};
use crate::engine::checks::Check;
use crate::error::Result;
use crate::exit::Exit;

/// A mutation a workflow will send.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// DELETE with propagationPolicy=Orphan and UID + resourceVersion preconditions.
    OrphanDelete(DaemonSet),
    /// POST of the DaemonSet as given (a name, or a generateName while the old one holds it).
    Create(DaemonSet),
}

/// A report document that records the server dry run's answers.
pub trait Report: Serialize {
    fn server_dry_run(&mut self) -> &mut Vec<ServerDryRun>;
}

impl Report for OrphanReport {
    fn server_dry_run(&mut self) -> &mut Vec<ServerDryRun> {
        &mut self.server_dry_run
    }
}

impl Report for AdoptReport {
    fn server_dry_run(&mut self) -> &mut Vec<ServerDryRun> {
        &mut self.server_dry_run
    }
}

impl Report for MigrateReport {
    fn server_dry_run(&mut self) -> &mut Vec<ServerDryRun> {
        &mut self.server_dry_run
    }
}

/// What the gate decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Confirmed: act now.
    Act,
    /// The run is over (plan printed, or server dry run done) with this exit code.
    Done(Exit),
}

/// Sends one mutation with dryRun=All.
async fn dry_run(ctx: &Ctx<'_>, m: &Mutation) -> Result<ServerDryRun> {
    match m {
        Mutation::OrphanDelete(ds) => orphan::dry_run_delete(ctx, ds).await,
        Mutation::Create(ds) => adopt::dry_run_create(ctx, ds).await,
    }
}

/// Refuse on a block -> plan only -> server dry run of every mutation -> confirm. On a refusal
/// the report is still printed (`-o json`) before the error.
pub async fn gate<R: Report>(
    ctx: &Ctx<'_>,
    report: &mut R,
    checks: &[Check],
    mutations: &[Mutation],
    what: &str,
) -> Result<Gate> {
    if let Err(e) = refuse_if_blocked(checks) {
        ctx.document(report)?;
        return Err(e);
    }
    match ctx.mode {
        Mode::Plan => {
            ctx.document(report)?;
            return Ok(Gate::Done(Exit::Ok));
        }
        Mode::ServerDryRun => {
            for m in mutations {
                let answer = dry_run(ctx, m).await?;
                report.server_dry_run().push(answer);
            }
            let answers = report.server_dry_run().clone();
            return ctx.server_dry_run_done(&answers, report).map(Gate::Done);
        }
        Mode::Act => {}
    }
    if let Err(e) = ctx.confirm(what) {
        ctx.document(report)?;
        return Err(e);
    }
    Ok(Gate::Act)
}
