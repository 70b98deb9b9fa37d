//! `migrate`: orphan the old DaemonSet and adopt its pods with the new one, as one resumable
//! workflow. The stage is derived from the cluster and the backup file (engine
//! `migrate_stage`), so the same command run again after an interruption finishes the job.
//! Every pre-flight check runs before the old DaemonSet is touched, and it is never deleted
//! before its backup is on disk.

use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;

use super::adopt::{self, in_namespace, name_state, server_defaults, PlanInput};
use super::backup::{self, Backup};
use super::orphan;
use super::report::{AdoptPlan, MigrateReport, MigrateResult, API_VERSION};
use super::{refuse_if_blocked, Ctx, Mode};
use crate::cluster::fetch::{fetch_namespace_objects, NamespaceObjects};
use crate::engine::adoption::{NameState, Predecessor};
use crate::engine::checks::{Check, Overrides};
use crate::engine::manifest::{self, Journal};
use crate::engine::progress::{migrate_stage, Stage};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render;

/// The request, resolved.
pub struct Request<'a> {
    pub old_name: &'a str,
    /// The new manifest, validated (see `adopt::load_manifest`), and the file it came from.
    pub manifest: DaemonSet,
    pub file: &'a Path,
    pub backup_path: &'a Path,
    pub overrides: Overrides,
}

fn find<'o>(objects: &'o NamespaceObjects, name: &str) -> Option<&'o DaemonSet> {
    objects
        .daemon_sets
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
}

/// `kubectl ds migrate OLD -f NEW.yaml`.
pub async fn run(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let manifest = in_namespace(req.manifest.clone(), req.file, &ns)?;
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let (backup_state, backup) = backup::inspect(req.backup_path, &ns, req.old_name);
    let journal = backup
        .as_ref()
        .and_then(|b| b.journal_of(&ns, req.old_name))
        .cloned();
    let objects = fetch_namespace_objects(&ctx.cluster, &ns).await?;
    let old = find(&objects, req.old_name);
    let new = find(&objects, &new_name);
    let Some(stage) = migrate_stage(req.old_name, old, new, &manifest, journal.as_ref()) else {
        return Err(Error::NotFound {
            message: format!(
                "daemonset {:?} not found in namespace {ns:?}, and {} holds no backup of it to resume from",
                req.old_name,
                req.backup_path.display()
            ),
            hint: Some("if an earlier run deleted it, pass the --backup file that run wrote".into()),
        });
    };
    if stage != Stage::Start {
        ctx.progress(&format!(
            "resuming an earlier migration at stage {} (backup {})",
            stage.as_str(),
            req.backup_path.display()
        ));
    }
    match (stage, old) {
        (Stage::Start | Stage::Orphaning, Some(old_ds)) => {
            from_live(
                ctx,
                req,
                &manifest,
                old_ds.clone(),
                &objects,
                backup_state,
                backup,
                stage,
            )
            .await
        }
        _ => {
            let backup = backup.ok_or_else(|| {
                Error::Input(format!(
                    "{}: the backup vanished",
                    req.backup_path.display()
                ))
            })?;
            let journal = journal.ok_or_else(|| {
                Error::Input(format!(
                    "{}: the backup has no journal",
                    req.backup_path.display()
                ))
            })?;
            let fallback = skeleton(ctx, req, stage, empty_plan(&manifest));
            from_backup(ctx, req, &manifest, &objects, &backup, &journal, stage)
                .await
                .map_err(|e| {
                    let state = deleted_state(ctx, req, &new_name);
                    ctx.after_delete(e, &state, req.backup_path, &fallback)
                })
        }
    }
}

fn skeleton(ctx: &Ctx<'_>, req: &Request<'_>, stage: Stage, adopt: AdoptPlan) -> MigrateReport {
    MigrateReport {
        api_version: API_VERSION,
        kind: "MigrateReport",
        dry_run: ctx.mode.as_str(),
        stage,
        backup: req.backup_path.display().to_string(),
        orphan: None,
        adopt,
        server_dry_run: Vec::new(),
        result: None,
    }
}

fn all_checks(report: &MigrateReport) -> Vec<Check> {
    let mut checks: Vec<Check> = report
        .orphan
        .as_ref()
        .map(|o| o.checks.clone())
        .unwrap_or_default();
    checks.extend(report.adopt.analysis.checks.iter().cloned());
    checks
}

/// Prints the report (JSON) and passes `err` on.
fn fail(ctx: &Ctx<'_>, report: &MigrateReport, err: Error) -> Result<Exit> {
    ctx.document(report)?;
    Err(err)
}

/// Stages Start and Orphaning: the old DaemonSet is still there.
#[allow(clippy::too_many_arguments)]
async fn from_live(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    old_ds: DaemonSet,
    objects: &NamespaceObjects,
    backup_state: crate::engine::checks::BackupFileState,
    backup: Option<Backup>,
    stage: Stage,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let same_name = new_name == req.old_name;
    let marker = manifest::adopted_from_value(req.old_name, old_ds.metadata.uid.as_deref());
    let orphan_plan = orphan::plan(
        &old_ds,
        &objects.pods,
        &objects.revisions,
        req.backup_path,
        &backup_state,
    );
    let pred = Predecessor::from_live(&old_ds, &objects.pods);
    let state = if same_name {
        NameState::Free
    } else {
        match name_state(find(objects, &new_name), manifest, Some(&marker)) {
            NameState::CreatedEarlier { uid } => NameState::Taken { uid },
            other => other,
        }
    };
    let defaulted = match state {
        NameState::Taken { .. } => manifest.clone(),
        _ => server_defaults(ctx, manifest, &marker, same_name).await?,
    };
    let adopt_plan = adopt::plan(&PlanInput {
        manifest,
        defaulted: &defaulted,
        predecessor: Some(&pred),
        predecessor_source: "live",
        name_state: &state,
        objects,
        overrides: &req.overrides,
        marker: &marker,
    });
    let mut report = skeleton(ctx, req, stage, adopt_plan);
    report.orphan = Some(orphan_plan);
    ctx.table(|out, p| render::workflow::migrate_plan(out, &report, p))?;
    if let Err(e) = refuse_if_blocked(&all_checks(&report)) {
        return fail(ctx, &report, e);
    }
    match ctx.mode {
        Mode::Plan => {
            ctx.document(&report)?;
            return Ok(Exit::Ok);
        }
        Mode::ServerDryRun => {
            report
                .server_dry_run
                .push(orphan::dry_run_delete(ctx, &old_ds).await?);
            let mut final_ds = manifest::prepare_for_create(
                manifest,
                &marker,
                report.adopt.analysis.template_generation,
            );
            if same_name {
                final_ds.metadata.generate_name = Some(format!("{new_name}-"));
                final_ds.metadata.name = None;
            }
            report
                .server_dry_run
                .push(adopt::dry_run_create(ctx, &final_ds).await?);
            return ctx.server_dry_run_done(&report.server_dry_run, &report);
        }
        Mode::Act => {}
    }
    if let Err(e) = ctx.confirm(&format!(
        "orphan-delete daemonset {ns}/{} and create {ns}/{new_name} to adopt its pods",
        req.old_name
    )) {
        return fail(ctx, &report, e);
    }
    let journal = match stage {
        Stage::Start => orphan::backup_and_delete(ctx, old_ds.clone(), req.backup_path).await?,
        _ => orphan::ensure_backup(ctx, &old_ds, backup.as_ref(), req.backup_path).await?,
    };
    let fallback = report.clone();
    after_orphan_delete(ctx, req, manifest, &old_ds, &journal, report)
        .await
        .map_err(|e| {
            ctx.after_delete(
                e,
                &deleted_state(ctx, req, &new_name),
                req.backup_path,
                &fallback,
            )
        })
}

/// What the cluster looks like once the old DaemonSet is deleted, for a failure's message.
fn deleted_state(ctx: &Ctx<'_>, req: &Request<'_>, new_name: &str) -> String {
    let ns = ctx.ns();
    format!(
        "daemonset {ns}/{} is deleted (propagationPolicy=Orphan) and its pods keep running, without an owner until {ns}/{new_name} adopts them",
        req.old_name
    )
}

/// The rest of a run that deleted the old DaemonSet: wait for the orphans, then adopt them.
async fn after_orphan_delete(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    old_ds: &DaemonSet,
    journal: &Journal,
    mut report: MigrateReport,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let (orphan_result, orphaned) = orphan::wait_orphaned(ctx, journal, req.backup_path).await?;
    report.result = Some(MigrateResult {
        orphan: Some(orphan_result),
        adopt: None,
    });
    if !orphaned {
        let e = Error::Unverified(format!(
            "timed out waiting for the garbage collector to orphan daemonset {ns}/{}'s pods",
            req.old_name
        ));
        return fail(ctx, &report, e);
    }
    ctx.failpoint("after-orphan").await;
    let backup = Backup {
        daemon_set: manifest::clean_for_reapply(old_ds),
        journal: Some(journal.clone()),
    };
    adopt_orphans(ctx, req, manifest, &backup, journal, report, false).await
}

/// Stages Orphaned and Created: the old DaemonSet is gone; its backup says what it was.
async fn from_backup(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    objects: &NamespaceObjects,
    backup: &Backup,
    journal: &Journal,
    stage: Stage,
) -> Result<Exit> {
    if stage == Stage::Created {
        return verify_created(ctx, req, manifest, objects, backup, journal).await;
    }
    let placeholder = skeleton(ctx, req, stage, empty_plan(manifest));
    adopt_orphans(ctx, req, manifest, backup, journal, placeholder, true).await
}

fn empty_plan(manifest: &DaemonSet) -> AdoptPlan {
    AdoptPlan {
        daemon_set: super::report::ObjectRef::of(manifest),
        predecessor: None,
        steps: Vec::new(),
        analysis: crate::engine::adoption::AdoptAnalysis {
            pods: Vec::new(),
            revisions: Vec::new(),
            new_nodes: Vec::new(),
            desired: 0,
            template_generation: 0,
            checks: Vec::new(),
        },
    }
}

/// The adoption half: plan from the orphans (the backup's journal names the old pods), check,
/// create, verify. `first_plan`: this run starts here (stage Orphaned), so the plan is shown
/// and confirmed now; otherwise it was confirmed before the delete and is only re-checked.
async fn adopt_orphans(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    backup: &Backup,
    journal: &Journal,
    mut report: MigrateReport,
    first_plan: bool,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let marker = manifest::adopted_from_value(&journal.name, Some(&journal.uid));
    let objects = fetch_namespace_objects(&ctx.cluster, &ns).await?;
    let mut pred = Predecessor::from_backup(&backup.daemon_set, Some(journal));
    // The old object is gone: the garbage collector removes any ownerReference left to it.
    pred.orphaning_first = true;
    let state = match name_state(find(&objects, &new_name), manifest, Some(&marker)) {
        NameState::CreatedEarlier { uid } => NameState::Taken { uid },
        other => other,
    };
    let defaulted = match state {
        NameState::Taken { .. } => manifest.clone(),
        _ => server_defaults(ctx, manifest, &marker, false).await?,
    };
    report.adopt = adopt::plan(&PlanInput {
        manifest,
        defaulted: &defaulted,
        predecessor: Some(&pred),
        predecessor_source: "backup",
        name_state: &state,
        objects: &objects,
        overrides: &req.overrides,
        marker: &marker,
    });
    if first_plan {
        ctx.table(|out, p| render::workflow::migrate_plan(out, &report, p))?;
    }
    if let Err(e) = refuse_if_blocked(&report.adopt.analysis.checks) {
        let e = if first_plan {
            e
        } else {
            e.context("the adoption is now refused")
        };
        return fail(ctx, &report, e);
    }
    if first_plan {
        match ctx.mode {
            Mode::Plan => {
                ctx.document(&report)?;
                return Ok(Exit::Ok);
            }
            Mode::ServerDryRun => {
                let final_ds = manifest::prepare_for_create(
                    manifest,
                    &marker,
                    report.adopt.analysis.template_generation,
                );
                report
                    .server_dry_run
                    .push(adopt::dry_run_create(ctx, &final_ds).await?);
                return ctx.server_dry_run_done(&report.server_dry_run, &report);
            }
            Mode::Act => {}
        }
        if let Err(e) = ctx.confirm(&format!(
            "create daemonset {ns}/{new_name} to adopt the pods of the deleted {}",
            req.old_name
        )) {
            return fail(ctx, &report, e);
        }
        let (orphan_result, orphaned) =
            orphan::wait_orphaned(ctx, journal, req.backup_path).await?;
        if !orphaned {
            report.result = Some(MigrateResult {
                orphan: Some(orphan_result),
                adopt: None,
            });
            let e = Error::Unverified(format!(
                "pods of the deleted daemonset {ns}/{} still carry its ownerReference",
                req.old_name
            ));
            return fail(ctx, &report, e);
        }
    }
    adopt::create(ctx, manifest, &marker, &report.adopt.analysis).await?;
    let (result, verified) = adopt::verify(
        ctx,
        &report.adopt.analysis,
        &new_name,
        Some(journal),
        &req.overrides,
    )
    .await?;
    finish(ctx, report, result, verified)
}

/// Stage Created: an earlier run created the new DaemonSet; verify the adoption.
async fn verify_created(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    objects: &NamespaceObjects,
    backup: &Backup,
    journal: &Journal,
) -> Result<Exit> {
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let marker = manifest::adopted_from_value(&journal.name, Some(&journal.uid));
    let existing = find(objects, &new_name)
        .cloned()
        .ok_or_else(|| Error::Unverified(format!("daemonset {new_name} disappeared")))?;
    let pred = Predecessor::from_backup(&backup.daemon_set, Some(journal));
    let state = NameState::CreatedEarlier {
        uid: existing.metadata.uid.clone().unwrap_or_default(),
    };
    let plan = adopt::plan(&PlanInput {
        manifest,
        defaulted: &existing,
        predecessor: Some(&pred),
        predecessor_source: "backup",
        name_state: &state,
        objects,
        overrides: &req.overrides,
        marker: &marker,
    });
    let report = skeleton(ctx, req, Stage::Created, plan);
    ctx.table(|out, p| render::workflow::migrate_plan(out, &report, p))?;
    ctx.progress(&format!(
        "daemonset {}/{new_name} was created by an earlier run: verifying the adoption",
        ctx.ns()
    ));
    let (result, verified) = adopt::verify(
        ctx,
        &report.adopt.analysis,
        &new_name,
        Some(journal),
        &req.overrides,
    )
    .await?;
    finish(ctx, report, result, verified)
}

fn finish(
    ctx: &Ctx<'_>,
    mut report: MigrateReport,
    result: super::report::AdoptResult,
    verified: bool,
) -> Result<Exit> {
    ctx.table(|out, p| render::workflow::adopt_result(out, &result, p))?;
    let err = (!verified).then(|| adopt::unverified(&result));
    let orphan = report.result.take().and_then(|r| r.orphan);
    report.result = Some(MigrateResult {
        orphan,
        adopt: Some(result),
    });
    ctx.document(&report)?;
    match err {
        Some(e) => Err(e),
        None => Ok(Exit::Ok),
    }
}
