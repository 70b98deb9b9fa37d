//! `migrate`: orphan the old DaemonSet and adopt its pods with the new one, as one resumable
//! workflow. The stage is derived from the cluster and the backup file (engine
//! `migrate_stage`), so the same command run again after an interruption finishes the job.
//! Every pre-flight check runs before the old DaemonSet is touched, and it is never deleted
//! before its backup is on disk.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;

use super::adopt::{self, in_namespace, name_state, server_defaults, PlanInput};
use super::backup::{self, Backup};
use super::executor::{gate, Gate, Mutation, Plan};
use super::orphan;
use super::report::{AdoptPlan, MigrateReport, MigrateResult, ObjectRef, API_VERSION};
use super::{poll_for, refuse_if_blocked, Ctx, Poll};
use crate::cluster::claimers::fetch_claimers;
use crate::cluster::fetch::{fetch_namespace_objects, get_daemon_set_opt, NamespaceObjects};
use crate::engine::adoption::{NameState, Predecessor};
use crate::engine::checks::Overrides;
use crate::engine::claimers::Claimer;
use crate::engine::manifest::{self, Journal};
use crate::engine::progress::{foreign_finalizers, migrate_stage, Stage};
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
    /// How long to watch for the old DaemonSet reappearing after the migration (0: not at all).
    pub watch_recreate: Duration,
}

fn find<'o>(objects: &'o NamespaceObjects, name: &str) -> Option<&'o DaemonSet> {
    objects
        .daemon_sets
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
}

/// `kubectl ds migrate OLD -f NEW.yaml`: holds the old DaemonSet's lease while it acts, so a
/// second run (to the same or another new name) is refused instead of splitting the pods.
pub async fn run(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Exit> {
    ctx.lock(req.old_name).await?;
    let out = run_locked(ctx, req).await;
    ctx.unlock().await;
    out
}

async fn run_locked(ctx: &Ctx<'_>, req: &Request<'_>) -> Result<Exit> {
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
            let claimers = fetch_claimers(&ctx.cluster, &ns).await?;
            let live = Live {
                old_ds: old_ds.clone(),
                objects: &objects,
                claimers: &claimers,
                backup_state,
                backup,
            };
            from_live(ctx, req, &manifest, live, stage).await
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

/// Prints the report (JSON) and passes `err` on.
fn fail(ctx: &Ctx<'_>, report: &MigrateReport, err: Error) -> Result<Exit> {
    ctx.document(report)?;
    Err(err)
}

/// What the live stages read: the old DaemonSet, the namespace, its selector-claiming
/// controllers, and the backup file.
struct Live<'o> {
    old_ds: DaemonSet,
    objects: &'o NamespaceObjects,
    claimers: &'o [Claimer],
    backup_state: crate::engine::checks::BackupFileState,
    backup: Option<Backup>,
}

/// Stages Start and Orphaning: the old DaemonSet is still there.
async fn from_live(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    live: Live<'_>,
    stage: Stage,
) -> Result<Exit> {
    let Live {
        old_ds,
        objects,
        claimers,
        backup_state,
        backup,
    } = live;
    let ns = ctx.ns().to_string();
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let same_name = new_name == req.old_name;
    let marker = manifest::adopted_from_value(req.old_name, old_ds.metadata.uid.as_deref());
    let orphan_plan = orphan::plan(&orphan::OrphanInput {
        ds: &old_ds,
        pods: &objects.pods,
        revisions: &objects.revisions,
        claimers,
        backup_path: req.backup_path,
        backup_state: &backup_state,
        overrides: &req.overrides,
        new_name: Some(&new_name),
    });
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
    // The migrate plan: the orphan plan followed by the adopt plan (the create is sent with
    // generateName while the old DaemonSet holds the name).
    let orphan = orphan::mutation_plan(&old_ds, orphan_plan);
    let adopt = adopt::mutation_plan(manifest, &marker, adopt_plan, false, same_name);
    let mut plan = orphan.then(adopt, |orphan, adopt| MigrateReport {
        orphan: Some(orphan),
        ..skeleton(ctx, req, stage, adopt)
    });
    ctx.table(|out, p| render::workflow::migrate_plan(out, &plan.report, p))?;
    let what = format!(
        "orphan-delete daemonset {ns}/{} and create {ns}/{new_name} to adopt its pods",
        req.old_name
    );
    if let Gate::Done(exit) = gate(ctx, &mut plan, &what).await? {
        return Ok(exit);
    }
    let report = plan.report;
    let journal = match stage {
        Stage::Start => {
            let recheck =
                orphan::recheck_before_delete(ctx, &old_ds, req.backup_path, &req.overrides);
            if let Err(e) = recheck.await {
                return fail(ctx, &report, e);
            }
            orphan::backup_and_delete(ctx, old_ds.clone(), req.backup_path).await?
        }
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
        recreated: None,
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
    if let Some(held) = find(&objects, &new_name)
        .filter(|d| d.metadata.uid.as_deref() == Some(journal.uid.as_str()))
    {
        // Same-name migration: a foreign finalizer keeps the old object, and with it the name.
        let e = Error::Unverified(format!(
            "daemonset {ns}/{new_name} is deleted but kept by finalizer(s) {} (not kubectl-ds's to remove): the name is free once they are removed",
            foreign_finalizers(held).join(", ")
        ));
        return fail(ctx, &report, e);
    }
    if let Some(again) = find(&objects, &journal.name).filter(|d| {
        journal.name != new_name && d.metadata.uid.as_deref() != Some(journal.uid.as_str())
    }) {
        // Its owner of record recreated the old DaemonSet while its pods were orphaned.
        let e = Error::Recreated(format!(
            "daemonset {ns}/{} reappeared during the migration (uid {}): its owner of record recreated it and it adopts the orphaned pods; {new_name} was not created: suspend that owner (the plan's hand-off steps), delete the recreated one with kubectl delete daemonset {} -n {ns} --cascade=orphan, then run the same command again",
            journal.name,
            again.metadata.uid.as_deref().unwrap_or("?"),
            journal.name
        ));
        return fail(ctx, &report, e);
    }
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
    let checks = report.adopt.analysis.checks.clone();
    if !first_plan {
        if let Err(e) = refuse_if_blocked(&checks) {
            return fail(ctx, &report, e.context("the adoption is now refused"));
        }
    }
    if first_plan {
        let what = format!(
            "create daemonset {ns}/{new_name} to adopt the pods of the deleted {}",
            req.old_name
        );
        let create = adopt::to_create(manifest, &marker, &report.adopt.analysis, false);
        let mut plan = Plan {
            report,
            checks,
            mutations: vec![Mutation::Create(create)],
        };
        if let Gate::Done(exit) = gate(ctx, &mut plan, &what).await? {
            return Ok(exit);
        }
        report = plan.report;
        let (orphan_result, orphaned) =
            orphan::wait_orphaned(ctx, journal, req.backup_path).await?;
        if !orphaned {
            report.result = Some(MigrateResult {
                orphan: Some(orphan_result),
                adopt: None,
                recreated: None,
            });
            let e = Error::Unverified(format!(
                "pods of the deleted daemonset {ns}/{} still carry its ownerReference",
                req.old_name
            ));
            return fail(ctx, &report, e);
        }
    }
    adopt::create(ctx, manifest, &marker, &report.adopt.analysis).await?;
    let (result, verified) =
        adopt::verify(ctx, &report.adopt.analysis, &new_name, Some(journal)).await?;
    finish(ctx, req, journal, report, result, verified).await
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
    let (result, verified) =
        adopt::verify(ctx, &report.adopt.analysis, &new_name, Some(journal)).await?;
    finish(ctx, req, journal, report, result, verified).await
}

async fn finish(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    journal: &Journal,
    mut report: MigrateReport,
    result: super::report::AdoptResult,
    verified: bool,
) -> Result<Exit> {
    ctx.table(|out, p| render::workflow::adopt_result(out, &result, p))?;
    let mut err = (!verified).then(|| adopt::unverified(&result));
    let recreated = match err {
        None => watch_recreate(ctx, req, &journal.uid, &result.daemon_set).await?,
        Some(_) => None,
    };
    if let Some(old) = &recreated {
        err = Some(recreated_error(req, old, &result.daemon_set));
    }
    let orphan = report.result.take().and_then(|r| r.orphan);
    report.result = Some(MigrateResult {
        orphan,
        adopt: Some(result),
        recreated,
    });
    ctx.document(&report)?;
    match err {
        Some(e) => Err(e),
        None => Ok(Exit::Ok),
    }
}

/// Watches the old name for `--watch-recreate`: an owner of record (Helm, Argo CD, Flux, an
/// operator) that was not handed over recreates the old DaemonSet, which then runs a second
/// pod beside each adopted one. Returns it if it reappeared (for a same-name migration: if the
/// name no longer holds the DaemonSet this run created).
async fn watch_recreate(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    old_uid: &str,
    created: &ObjectRef,
) -> Result<Option<ObjectRef>> {
    if req.watch_recreate.is_zero() {
        return Ok(None);
    }
    ctx.progress(&format!(
        "watching {} for daemonset {}/{} reappearing (--watch-recreate)",
        humanize(req.watch_recreate),
        created.namespace,
        req.old_name
    ));
    let ns = created.namespace.clone();
    let (seen, reappeared) = poll_for(req.watch_recreate, || async {
        let now = get_daemon_set_opt(&ctx.cluster, &ns, req.old_name)
            .await?
            // The old object itself, kept by a foreign finalizer, is not a recreation.
            .filter(|d| d.metadata.uid != created.uid && d.metadata.uid.as_deref() != Some(old_uid))
            .map(|d| ObjectRef::of(&d));
        Ok(match now {
            Some(r) => Poll::Done(Some(r)),
            None => Poll::Pending(None),
        })
    })
    .await?;
    Ok(if reappeared { seen } else { None })
}

fn humanize(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn recreated_error(req: &Request<'_>, old: &ObjectRef, new: &ObjectRef) -> Error {
    let (ns, name) = (&old.namespace, &old.name);
    let uid = old.uid.as_deref().unwrap_or("?");
    if req.old_name == new.name {
        return Error::Recreated(format!(
            "the migration finished, but daemonset {ns}/{name} was replaced again (now uid {uid}, not the {} this run created): its owner of record recreated it; hand the object over to that owner (see the hand-off steps in the plan), then check its pods",
            new.uid.as_deref().unwrap_or("?")
        ));
    }
    Error::Recreated(format!(
        "the migration finished, but daemonset {ns}/{name} reappeared (uid {uid}): its owner of record recreated it and it runs pods beside daemonset {}'s on the same nodes; suspend that owner (the plan's hand-off steps), then delete the recreated one (kubectl delete daemonset {name} -n {ns}: the adopted pods are {}'s and stay)",
        new.name, new.name
    ))
}
