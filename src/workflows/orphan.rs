//! `orphan`: delete a DaemonSet with propagationPolicy=Orphan, keeping its pods and
//! ControllerRevisions running. Plan -> checks -> confirm -> backup -> delete (UID +
//! resourceVersion preconditions) -> wait for the garbage collector -> report what runs.

use std::path::Path;

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};

use super::backup::{self, Backup};
use super::executor::{delete_under_way, execute, read_as_planned, Acted, Mutation, Plan, Steps};
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
use serde::Serialize;

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
        lock: ds.metadata.name.clone(),
        report: plan,
    }
}

/// `kubectl ds orphan NAME`: the executor holds the DaemonSet's lease while it acts.
pub async fn run(
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
        if let Some(held) = super::lock::held_by_another_run(ctx, name).await {
            return Err(held);
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
    let plan = mutation_plan(&ds, plan).map(|plan| OrphanReport {
        api_version: API_VERSION,
        kind: "OrphanReport",
        dry_run: ctx.mode.as_str(),
        plan,
        server_dry_run: Vec::new(),
        result: None,
    });
    ctx.table(|out, p| render::workflow::orphan_plan(out, &plan.report.plan, p))?;
    let what = format!("orphan-delete daemonset {ns}/{name}");
    let mut steps = OrphanSteps {
        delete: DeleteSteps::new(backup_path, overrides, existing),
        state: format!(
            "daemonset {ns}/{name} is being deleted with propagationPolicy=Orphan and its pods keep running"
        ),
    };
    execute(ctx, plan, &what, &mut steps).await
}

/// The orphaning delete's own steps around the executor's send, shared by orphan and migrate:
/// before it, the re-check and the backup on disk (or, when an earlier run's delete is under
/// way, only its backup); after it, the backup made exactly what was deleted.
pub struct DeleteSteps<'a> {
    backup_path: &'a Path,
    overrides: &'a Overrides,
    /// The backup file as found (an earlier run's).
    existing: Option<Backup>,
    /// The backup's journal, once written, and the pods and revisions it was written from.
    pub journal: Option<Journal>,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
}

impl<'a> DeleteSteps<'a> {
    pub fn new(backup_path: &'a Path, overrides: &'a Overrides, existing: Option<Backup>) -> Self {
        DeleteSteps {
            backup_path,
            overrides,
            existing,
            journal: None,
            pods: Vec::new(),
            revisions: Vec::new(),
        }
    }

    /// Right before the delete of `planned`: true when it is to be sent. An orphaning delete
    /// already under way (an earlier run) needs only its backup. Else the checks run again
    /// (a refusal prints `report` first), then the backup is written from a fresh read (the
    /// long lists and the backup's fsync come before the executor's re-read and delete).
    pub async fn before(
        &mut self,
        ctx: &Ctx<'_>,
        planned: &DaemonSet,
        report: &impl Serialize,
    ) -> Result<bool> {
        if delete_under_way(planned) {
            let existing = self.existing.as_ref();
            self.journal = Some(ensure_backup(ctx, planned, existing, self.backup_path).await?);
            return Ok(false);
        }
        if let Err(e) = recheck_before_delete(ctx, planned, self.backup_path, self.overrides).await
        {
            ctx.document(report)?;
            return Err(e);
        }
        let ns = planned.metadata.namespace.clone().unwrap_or_default();
        let (pods, revisions) = fetch_pods_and_revisions(&ctx.cluster, &ns).await?;
        let (raw, ds) = read_as_planned(ctx, planned).await?;
        let journal = backup::journal_for(&ds, &pods, &revisions, now_rfc3339());
        backup::write(self.backup_path, &raw, &journal)?;
        ctx.progress(&format!(
            "backup of daemonset {ns}/{} written to {}",
            journal.name,
            self.backup_path.display()
        ));
        ctx.failpoint("after-backup").await;
        self.journal = Some(journal);
        self.pods = pods;
        self.revisions = revisions;
        Ok(true)
    }

    /// Right after the delete went through. Both reads (the backup's, the delete's) showed the
    /// planned UID and generation: the spec that was deleted is the spec in the backup. If only
    /// metadata or status moved in between (the resourceVersion differs), the backup is
    /// rewritten at once from the object the delete was conditioned on, so it is exactly what
    /// was deleted.
    pub async fn after(&mut self, ctx: &Ctx<'_>, acted: Acted) -> Result<()> {
        let Acted::Deleted { raw, object } = acted else {
            return Ok(());
        };
        let moved = self.journal.as_ref().is_none_or(|j| {
            object.metadata.resource_version.as_deref() != Some(j.resource_version.as_str())
        });
        if moved {
            let j = backup::journal_for(&object, &self.pods, &self.revisions, now_rfc3339());
            backup::write(self.backup_path, &raw, &j)?;
            self.journal = Some(j);
        }
        ctx.progress(&format!(
            "daemonset {}/{} deleted with propagationPolicy=Orphan; waiting for the garbage collector",
            object.metadata.namespace.as_deref().unwrap_or(""),
            object.metadata.name.as_deref().unwrap_or("")
        ));
        ctx.failpoint("after-delete").await;
        Ok(())
    }

    /// The journal the verification follows (written by [`DeleteSteps::before`]).
    pub fn journal(&self) -> Result<Journal> {
        self.journal
            .clone()
            .ok_or_else(|| Error::Io("the backup's journal is missing".into()))
    }
}

/// `orphan`'s steps: the delete's, then the wait for the garbage collector and the report.
struct OrphanSteps<'a> {
    delete: DeleteSteps<'a>,
    /// The cluster's state once the delete went through, for a failure's message.
    state: String,
}

impl Steps<OrphanReport> for OrphanSteps<'_> {
    async fn before(
        &mut self,
        ctx: &Ctx<'_>,
        m: &Mutation,
        report: &mut OrphanReport,
    ) -> Result<Option<Mutation>> {
        Ok(match m {
            Mutation::OrphanDelete(ds) => self.delete.before(ctx, ds, report).await?,
            Mutation::Create(_) => true,
        }
        .then(|| m.clone()))
    }

    async fn after(&mut self, ctx: &Ctx<'_>, acted: Acted, _: &mut OrphanReport) -> Result<()> {
        self.delete.after(ctx, acted).await
    }

    async fn verify(&mut self, ctx: &Ctx<'_>, mut report: OrphanReport) -> Result<Exit> {
        let journal = self.delete.journal()?;
        let backup_path = self.delete.backup_path;
        let (result, _) = wait_orphaned(ctx, &journal, backup_path)
            .await
            .map_err(|e| ctx.after_delete(e, &self.state, backup_path, &report))?;
        let verified = result.verified;
        report.result = Some(result);
        finish(ctx, &report, verified)
            .map_err(|e| ctx.after_delete(e, &self.state, backup_path, &report))
    }
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
