//! `orphan`: delete a DaemonSet with propagationPolicy=Orphan, keeping its pods and
//! ControllerRevisions running. Plan -> checks -> confirm -> backup -> delete (UID +
//! resourceVersion preconditions) -> wait for the garbage collector -> report what runs.

use std::path::Path;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::backup::{self, Backup};
use super::executor::{gate, Gate, Mutation, Plan};
use super::report::{
    ObjectRef, OrphanPlan, OrphanPod, OrphanReport, OrphanResult, OrphanRevision, ServerDryRun,
    API_VERSION,
};
use super::{now_rfc3339, poll_until, refuse_if_blocked, Ctx, Poll, WaitState};
use crate::cluster::claimers::fetch_claimers;
use crate::cluster::fetch::{
    self, fetch_pods_and_revisions, get_daemon_set_opt, get_daemon_set_raw,
};
use crate::cluster::mutate::DeleteOutcome;
use crate::engine::checks::{apply_overrides, orphan_checks, BackupFileState, Check, Overrides};
use crate::engine::claimers::{check_competing_controllers, Claimer};
use crate::engine::manifest::Journal;
use crate::engine::owner::check_owner_of_record;
use crate::engine::podstate::is_terminating;
use crate::engine::progress::{assess_orphaning, OrphaningProgress};
use crate::engine::snapshot::controller_of;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render;

/// How often the orphaning delete is tried when the DaemonSet's resourceVersion moved on between
/// the read and the delete (the controller writes its status, a tool its annotations) but its
/// spec did not. An attempt is one read and the delete right after it (two round trips), so
/// against a writer patching back to back (tens of writes a second) some attempt gets through;
/// [`DELETE_PAUSE`] more between attempts each time, up to [`DELETE_PAUSE_MAX`] (about 4 s in all).
const DELETE_ATTEMPTS: u32 = 50;
const DELETE_PAUSE: std::time::Duration = std::time::Duration::from_millis(7);
const DELETE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(100);

fn controlled_by(
    uid: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    controller_of(meta).is_some_and(|(_, _, u)| u == uid)
}

/// Everything the orphan plan reads.
pub struct OrphanInput<'a> {
    pub ds: &'a DaemonSet,
    pub pods: &'a [Pod],
    pub revisions: &'a [ControllerRevision],
    /// The namespace's controllers that claim orphans by selector.
    pub claimers: &'a [Claimer],
    pub backup_path: &'a Path,
    pub backup_state: &'a BackupFileState,
    pub overrides: &'a Overrides,
    /// The replacement's name (migrate), for the hand-off steps.
    pub new_name: Option<&'a str>,
}

/// The pods the orphaning delete leaves without a controller: the DaemonSet's own, running.
pub fn pods_to_orphan<'p>(ds: &DaemonSet, pods: &'p [Pod]) -> Vec<&'p Pod> {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    pods.iter()
        .filter(|p| controlled_by(&uid, &p.metadata) && !is_terminating(p))
        .collect()
}

/// The checks of an orphaning delete, with the user's overrides applied.
pub fn checks(input: &OrphanInput) -> Vec<Check> {
    let path = input.backup_path.display().to_string();
    let pods = pods_to_orphan(input.ds, input.pods);
    let mut checks = orphan_checks(input.ds, pods.len(), &path, input.backup_state);
    checks.push(check_owner_of_record(input.ds, input.new_name));
    checks.push(check_competing_controllers(
        input.claimers,
        &pods,
        input.ds.metadata.uid.as_deref(),
    ));
    apply_overrides(checks, input.overrides)
}

/// The plan: what will be orphaned and keep running, and the checks.
pub fn plan(input: &OrphanInput) -> OrphanPlan {
    let ds = input.ds;
    let backup_path = input.backup_path;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<OrphanPod> = input
        .pods
        .iter()
        .filter(|p| controlled_by(&uid, &p.metadata))
        .map(OrphanPod::of)
        .collect();
    let revisions = input.revisions;
    let revisions: Vec<OrphanRevision> = revisions
        .iter()
        .filter(|r| controlled_by(&uid, &r.metadata))
        .map(OrphanRevision::of)
        .collect();
    let path = backup_path.display().to_string();
    let r = ObjectRef::of(ds);
    let steps = vec![
        format!("write a backup of daemonset {}/{} to {path} (cleaned for re-apply)", r.namespace, r.name),
        format!(
            "delete it with propagationPolicy=Orphan and preconditions uid={}, resourceVersion={}",
            r.uid.as_deref().unwrap_or("?"),
            r.resource_version.as_deref().unwrap_or("?")
        ),
        format!(
            "wait until it is gone and its {} pod(s) and {} ControllerRevision(s) have no owner; they keep running",
            pods.len(),
            revisions.len()
        ),
    ];
    OrphanPlan {
        checks: checks(input),
        daemon_set: r,
        backup: path,
        steps,
        pods,
        revisions,
    }
}

/// The orphan plan as data: its checks, and the one mutation, the orphaning delete of `ds` with
/// the UID and resourceVersion read (re-read right before it is sent when acting).
pub fn mutation_plan(ds: &DaemonSet, plan: OrphanPlan) -> Plan<OrphanPlan> {
    Plan {
        checks: plan.checks.clone(),
        mutations: vec![Mutation::OrphanDelete(ds.clone())],
        report: plan,
    }
}

/// `kubectl ds orphan NAME`: holds the DaemonSet's lease while it acts.
pub async fn run(
    ctx: &Ctx<'_>,
    name: &str,
    backup_path: &Path,
    overrides: &Overrides,
) -> Result<Exit> {
    ctx.lock(name).await?;
    let out = run_locked(ctx, name, backup_path, overrides).await;
    ctx.unlock().await;
    out
}

async fn run_locked(
    ctx: &Ctx<'_>,
    name: &str,
    backup_path: &Path,
    overrides: &Overrides,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let (backup_state, existing) = backup::inspect(backup_path, &ns, name);
    let Some(ds) = get_daemon_set_opt(&ctx.cluster, &ns, name).await? else {
        // Gone already: an earlier run may have deleted it; finish its verification.
        if let Some(journal) = existing.as_ref().and_then(|b| b.journal_of(&ns, name)) {
            return resume_after_delete(ctx, journal, backup_path).await;
        }
        return Err(fetch::fetch_daemon_set(&ctx.cluster, &ns, name)
            .await
            .err()
            .unwrap_or_else(|| {
                Error::Refused(format!("daemonset {name:?} appeared meanwhile; run again"))
            }));
    };
    let ((pods, revisions), claimers) = futures::try_join!(
        fetch_pods_and_revisions(&ctx.cluster, &ns),
        fetch_claimers(&ctx.cluster, &ns)
    )?;
    let plan = plan(&OrphanInput {
        ds: &ds,
        pods: &pods,
        revisions: &revisions,
        claimers: &claimers,
        backup_path,
        backup_state: &backup_state,
        overrides,
        new_name: None,
    });
    let mut plan = mutation_plan(&ds, plan).map(|plan| OrphanReport {
        api_version: API_VERSION,
        kind: "OrphanReport",
        dry_run: ctx.mode.as_str(),
        plan,
        server_dry_run: Vec::new(),
        result: None,
    });
    ctx.table(|out, p| render::workflow::orphan_plan(out, &plan.report.plan, p))?;
    let what = format!("orphan-delete daemonset {ns}/{name}");
    if let Gate::Done(exit) = gate(ctx, &mut plan, &what).await? {
        return Ok(exit);
    }
    let mut report = plan.report;
    let journal = match ds.metadata.deletion_timestamp {
        None => {
            if let Err(e) = recheck_before_delete(ctx, &ds, backup_path, overrides).await {
                ctx.document(&report)?;
                return Err(e);
            }
            backup_and_delete(ctx, ds, backup_path).await?
        }
        Some(_) => ensure_backup(ctx, &ds, existing.as_ref(), backup_path).await?,
    };
    let state = format!(
        "daemonset {ns}/{name} is being deleted with propagationPolicy=Orphan and its pods keep running"
    );
    let (result, _) = wait_orphaned(ctx, &journal, backup_path)
        .await
        .map_err(|e| ctx.after_delete(e, &state, backup_path, &report))?;
    let verified = result.verified;
    report.result = Some(result);
    finish(ctx, &report, verified).map_err(|e| ctx.after_delete(e, &state, backup_path, &report))
}

fn finish(ctx: &Ctx<'_>, report: &OrphanReport, verified: bool) -> Result<Exit> {
    if let Some(result) = &report.result {
        ctx.table(|out, p| render::workflow::orphan_result(out, result, p))?;
    }
    ctx.document(report)?;
    if verified {
        Ok(Exit::Ok)
    } else {
        Err(unverified(report.result.as_ref().map(|r| &r.progress)))
    }
}

fn unverified(progress: Option<&OrphaningProgress>) -> Error {
    let mut what = Vec::new();
    if let Some(p) = progress {
        if p.is_complete() && !p.gone.is_empty() {
            return Error::Unverified(format!(
                "the DaemonSet's dependents were orphaned, but {} planned pod(s) disappeared during the run: {}",
                p.gone.len(),
                p.gone.join(", ")
            ));
        }
        if !p.daemon_set_gone && p.held_by_finalizers.is_empty() {
            what.push("the DaemonSet is still there".to_string());
        }
        if !p.owned_pods.is_empty() {
            what.push(format!("pods still owned: {}", p.owned_pods.join(", ")));
        }
        if !p.owned_revisions.is_empty() {
            what.push(format!(
                "revisions still owned: {}",
                p.owned_revisions.join(", ")
            ));
        }
    }
    Error::Unverified(format!(
        "timed out waiting for the garbage collector to orphan the DaemonSet's dependents ({})",
        what.join("; ")
    ))
}

/// The DaemonSet is gone and the backup's journal names it: verify and report.
async fn resume_after_delete(ctx: &Ctx<'_>, journal: &Journal, backup_path: &Path) -> Result<Exit> {
    ctx.progress(&format!(
        "daemonset {}/{} is gone; its backup {} says it was uid {}: checking that its pods were orphaned",
        journal.namespace,
        journal.name,
        backup_path.display(),
        journal.uid
    ));
    let ds_ref = ObjectRef {
        namespace: journal.namespace.clone(),
        name: journal.name.clone(),
        uid: Some(journal.uid.clone()),
        resource_version: Some(journal.resource_version.clone()),
    };
    let (result, _) = wait_orphaned(ctx, journal, backup_path).await?;
    let verified = result.verified;
    let report = OrphanReport {
        api_version: API_VERSION,
        kind: "OrphanReport",
        dry_run: ctx.mode.as_str(),
        plan: OrphanPlan {
            daemon_set: ds_ref,
            backup: backup_path.display().to_string(),
            steps: vec![
                "(resumed) verify that the deleted DaemonSet's pods and revisions have no owner"
                    .into(),
            ],
            pods: Vec::new(),
            revisions: Vec::new(),
            checks: Vec::<Check>::new(),
        },
        server_dry_run: Vec::new(),
        result: Some(result),
    };
    finish(ctx, &report, verified)
}

/// What the apiserver answered to the orphaning delete sent with dryRun=All.
pub fn dry_run_answer(ds: &DaemonSet, outcome: DeleteOutcome) -> ServerDryRun {
    let r = ObjectRef::of(ds);
    let operation = format!(
        "delete daemonset {}/{} (propagationPolicy=Orphan, preconditions uid and resourceVersion)",
        r.namespace, r.name
    );
    match outcome {
        DeleteOutcome::Accepted(obj) => ServerDryRun {
            operation,
            accepted: true,
            detail: format!(
                "the apiserver would mark it for deletion with finalizers [{}]; the garbage collector would then orphan its dependents",
                obj.metadata.finalizers.unwrap_or_default().join(", ")
            ),
        },
        DeleteOutcome::Deleted => ServerDryRun {
            operation,
            accepted: true,
            detail: "the apiserver would delete it at once".into(),
        },
        DeleteOutcome::Conflict(msg) => ServerDryRun {
            operation,
            accepted: false,
            detail: format!("precondition failed: {msg}"),
        },
    }
}

/// Right before the orphaning delete: this run still holds the lease, and no controller that
/// appeared since the plan would adopt the pods (the owner-of-record markers are re-read too).
pub async fn recheck_before_delete(
    ctx: &Ctx<'_>,
    ds: &DaemonSet,
    backup_path: &Path,
    overrides: &Overrides,
) -> Result<()> {
    ctx.ensure_locked()?;
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let (fresh, (pods, _), claimers) = futures::try_join!(
        get_daemon_set_opt(&ctx.cluster, &ns, &name),
        fetch_pods_and_revisions(&ctx.cluster, &ns),
        fetch_claimers(&ctx.cluster, &ns)
    )?;
    let fresh = fresh.filter(|f| f.metadata.uid == ds.metadata.uid).ok_or_else(|| {
        Error::Refused(format!(
            "daemonset {ns}/{name} was deleted or replaced by someone else since the plan; nothing was deleted by kubectl-ds"
        ))
    })?;
    let input = OrphanInput {
        ds: &fresh,
        pods: &pods,
        revisions: &[],
        claimers: &claimers,
        backup_path,
        backup_state: &BackupFileState::SameDaemonSet,
        overrides,
        new_name: None,
    };
    refuse_if_blocked(&checks(&input)).map_err(|e| e.context("re-checked right before the delete"))
}

/// Writes the backup, then deletes with UID and resourceVersion preconditions taken from a read
/// made right before the delete (nothing but that read lies between them; the long lists and the
/// backup's fsync come before), so a namespace where something keeps writing the DaemonSet (its
/// status, an annotation) does not make every attempt fail with 409: a 409 reads and deletes
/// again.
///
/// Both reads must show the planned UID and generation: the spec that is deleted is the spec
/// in the backup. If only metadata or status moved between the backup and the delete (the
/// resourceVersion differs), the backup is rewritten at once from the object the delete was
/// conditioned on, so it ends up exactly what was deleted. A changed spec (generation) or a
/// replaced object (UID) stops the run; a 409 from the delete tries again.
pub async fn backup_and_delete(
    ctx: &Ctx<'_>,
    planned: DaemonSet,
    backup_path: &Path,
) -> Result<Journal> {
    let ns = planned.metadata.namespace.clone().unwrap_or_default();
    let name = planned.metadata.name.clone().unwrap_or_default();
    let (pods, revisions) = fetch_pods_and_revisions(&ctx.cluster, &ns).await?;
    let (raw, ds) = read_as_planned(ctx, &planned).await?;
    let journal = backup::journal_for(&ds, &pods, &revisions, now_rfc3339());
    backup::write(backup_path, &raw, &journal)?;
    ctx.progress(&format!(
        "backup of daemonset {ns}/{name} written to {}",
        backup_path.display()
    ));
    ctx.failpoint("after-backup").await;
    let mut last_conflict = String::new();
    for attempt in 0..DELETE_ATTEMPTS {
        if attempt > 0 {
            // A short, growing pause: out of step with a writer that keeps patching.
            let pause = DELETE_PAUSE.saturating_mul(attempt).min(DELETE_PAUSE_MAX);
            tokio::time::sleep(pause).await;
        }
        let (fresh_raw, fresh) = read_as_planned(ctx, &planned).await?;
        match super::executor::send_delete(ctx, &fresh, false).await? {
            DeleteOutcome::Accepted(_) | DeleteOutcome::Deleted => {
                let journal = if fresh.metadata.resource_version == ds.metadata.resource_version {
                    journal
                } else {
                    // Same spec (generation); metadata or status moved: the backup becomes
                    // exactly the object that was deleted.
                    let j = backup::journal_for(&fresh, &pods, &revisions, now_rfc3339());
                    backup::write(backup_path, &fresh_raw, &j)?;
                    j
                };
                if attempt > 0 {
                    ctx.progress(&format!(
                        "daemonset {ns}/{name}: the delete went through at attempt {} ({last_conflict})",
                        attempt + 1
                    ));
                }
                ctx.progress(&format!(
                    "daemonset {ns}/{name} deleted with propagationPolicy=Orphan; waiting for the garbage collector"
                ));
                ctx.failpoint("after-delete").await;
                return Ok(journal);
            }
            DeleteOutcome::Conflict(msg) => last_conflict = msg,
        }
    }
    Err(Error::Forbidden(format!(
        "daemonset {ns}/{name} kept changing; the orphaning delete failed its preconditions {DELETE_ATTEMPTS} times ({last_conflict}); nothing was deleted"
    )))
}

/// Reads the DaemonSet (raw and typed) and checks it is still the planned one: same UID, same
/// generation (spec unchanged).
async fn read_as_planned(ctx: &Ctx<'_>, planned: &DaemonSet) -> Result<(Value, DaemonSet)> {
    let ns = planned.metadata.namespace.clone().unwrap_or_default();
    let name = planned.metadata.name.clone().unwrap_or_default();
    let planned_generation = planned.metadata.generation;
    match get_daemon_set_raw(&ctx.cluster, &ns, &name).await? {
        Some((raw, f))
            if f.metadata.uid == planned.metadata.uid
                && f.metadata.generation == planned_generation =>
        {
            Ok((raw, f))
        }
        Some((_, f)) if f.metadata.uid == planned.metadata.uid => Err(Error::Refused(format!(
            "daemonset {ns}/{name} was changed since the plan (generation {} -> {}); nothing was deleted: run again to see the new plan",
            planned_generation.unwrap_or(0),
            f.metadata.generation.unwrap_or(0)
        ))),
        _ => Err(Error::Refused(format!(
            "daemonset {ns}/{name} was deleted or replaced by someone else since the plan; nothing was deleted by kubectl-ds"
        ))),
    }
}

/// An orphaning delete is already under way (an earlier run): make sure its backup is on disk,
/// writing one from the object (still readable until the garbage collector is done).
pub async fn ensure_backup(
    ctx: &Ctx<'_>,
    ds: &DaemonSet,
    existing: Option<&Backup>,
    backup_path: &Path,
) -> Result<Journal> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    if let Some(j) = existing.and_then(|b| b.journal_of(&ns, &name)) {
        if Some(&j.uid) == ds.metadata.uid.as_ref() {
            return Ok(j.clone());
        }
    }
    let (pods, revisions) = fetch_pods_and_revisions(&ctx.cluster, &ns).await?;
    let (raw, ds) = match get_daemon_set_raw(&ctx.cluster, &ns, &name).await? {
        Some((raw, f)) if f.metadata.uid == ds.metadata.uid => (raw, f),
        _ => {
            let raw = serde_json::to_value(ds)
                .map_err(|e| Error::Io(format!("rendering the backup: {e}")))?;
            (raw, ds.clone())
        }
    };
    let journal = backup::journal_for(&ds, &pods, &revisions, now_rfc3339());
    backup::write(backup_path, &raw, &journal)?;
    ctx.progress(&format!(
        "daemonset {ns}/{name} is already being orphan-deleted; its backup was written to {}",
        backup_path.display()
    ));
    Ok(journal)
}

impl WaitState for OrphaningProgress {
    fn summary(&self) -> String {
        format!(
            "{} pod(s) and {} ControllerRevision(s) still owned by the deleted DaemonSet{}",
            self.owned_pods.len(),
            self.owned_revisions.len(),
            if self.daemon_set_gone {
                ""
            } else {
                ", which is still there"
            }
        )
    }
}

/// Waits until the DaemonSet named in the journal is gone (or kept only by foreign
/// finalizers) and no pod or ControllerRevision refers to its UID (the garbage collector's
/// orphanDependents). Returns the result (verified: also no planned pod disappeared) and
/// whether the garbage collector is done.
pub async fn wait_orphaned(
    ctx: &Ctx<'_>,
    journal: &Journal,
    backup_path: &Path,
) -> Result<(OrphanResult, bool)> {
    let planned: Vec<String> = journal.pods.iter().map(|p| p.uid.clone()).collect();
    let (progress, done) = poll_until(ctx, || async {
        let ds = get_daemon_set_opt(&ctx.cluster, &journal.namespace, &journal.name)
            .await?
            .filter(|d| d.metadata.uid.as_deref() == Some(journal.uid.as_str()));
        let (pods, revisions) = fetch_pods_and_revisions(&ctx.cluster, &journal.namespace).await?;
        let p = assess_orphaning(&journal.uid, ds.as_ref(), &planned, &pods, &revisions);
        Ok(if p.is_complete() {
            Poll::Done(p)
        } else {
            Poll::Pending(p)
        })
    })
    .await?;
    if done {
        let state = if progress.held_by_finalizers.is_empty() {
            "is gone".to_string()
        } else {
            format!(
                "is deleted, kept only by finalizer(s) {} (not kubectl-ds's to remove)",
                progress.held_by_finalizers.join(", ")
            )
        };
        ctx.progress(&format!(
            "daemonset {}/{} {state}; {} pod(s) keep running without an owner",
            journal.namespace,
            journal.name,
            progress.running.len()
        ));
    }
    let verified = progress.is_verified();
    Ok((
        OrphanResult {
            verified,
            backup: backup_path.display().to_string(),
            progress,
        },
        done,
    ))
}
