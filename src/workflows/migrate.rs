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
use super::executor::{execute, Acted, Mutation, Plan, Steps};
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

/// `kubectl ds migrate OLD -f NEW.yaml`: the executor holds the old DaemonSet's lease while it
/// acts, so a second run (to the same or another new name) is refused instead of splitting the
/// pods.
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
        if let Some(held) = super::lock::held_by_another_run(ctx, req.old_name).await {
            return Err(held);
        }
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
    let plan = orphan.then(adopt, |orphan, adopt| MigrateReport {
        orphan: Some(orphan),
        ..skeleton(ctx, req, stage, adopt)
    });
    ctx.table(|out, p| render::workflow::migrate_plan(out, &plan.report, p))?;
    let what = format!(
        "orphan-delete daemonset {ns}/{} and create {ns}/{new_name} to adopt its pods",
        req.old_name
    );
    let mut steps = MigrateSteps {
        req,
        manifest,
        old_ds: Some(old_ds.clone()),
        delete: orphan::DeleteSteps::new(req.backup_path, &req.overrides, backup),
        fallback: None,
    };
    execute(ctx, plan, &what, &mut steps).await
}

/// `migrate`'s steps around the executor's mutations. From a live old DaemonSet (`old_ds`):
/// the orphaning delete's steps; before the create, the wait for the orphans and the adoption
/// planned again from them (the create is then sent with the name, which is free); after it,
/// the verification. From the backup (stage Orphaned): the wait before the planned create.
struct MigrateSteps<'s, 'a> {
    req: &'s Request<'a>,
    manifest: &'s DaemonSet,
    old_ds: Option<DaemonSet>,
    delete: orphan::DeleteSteps<'s>,
    /// The report as confirmed: what `-o json` prints for a failure after the delete that
    /// printed none.
    fallback: Option<MigrateReport>,
}

impl MigrateSteps<'_, '_> {
    fn new_name(&self) -> String {
        self.manifest.metadata.name.clone().unwrap_or_default()
    }

    /// A failure after the old DaemonSet's delete says what state the cluster is in and how to
    /// resume (from the backup, `run` says it for every failure already).
    fn after_delete(&self, ctx: &Ctx<'_>, e: Error, report: &MigrateReport) -> Error {
        if self.old_ds.is_none() {
            return e;
        }
        let state = deleted_state(ctx, self.req, &self.new_name());
        let fallback = self.fallback.as_ref().unwrap_or(report);
        ctx.after_delete(e, &state, self.req.backup_path, fallback)
    }

    /// Before the create: the pods are orphaned (waits for the garbage collector); from a live
    /// old DaemonSet, the adoption planned again from the orphans and re-checked.
    async fn before_create(
        &mut self,
        ctx: &Ctx<'_>,
        planned: &Mutation,
        report: &mut MigrateReport,
    ) -> Result<Mutation> {
        let ns = ctx.ns().to_string();
        let req = self.req;
        let journal = self.delete.journal()?;
        let (orphan_result, orphaned) =
            orphan::wait_orphaned(ctx, &journal, req.backup_path).await?;
        let Some(old_ds) = &self.old_ds else {
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
                return Err(fail_doc(ctx, report, e));
            }
            return Ok(planned.clone());
        };
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
            return Err(fail_doc(ctx, report, e));
        }
        ctx.failpoint("after-orphan").await;
        let backup = Backup {
            daemon_set: manifest::clean_for_reapply(old_ds),
            journal: Some(journal.clone()),
        };
        let create = replan_adoption(ctx, req, self.manifest, &backup, &journal, report).await?;
        if let Err(e) = refuse_if_blocked(&report.adopt.analysis.checks) {
            return Err(fail_doc(
                ctx,
                report,
                e.context("the adoption is now refused"),
            ));
        }
        Ok(create)
    }

    async fn verify_adoption(&mut self, ctx: &Ctx<'_>, report: MigrateReport) -> Result<Exit> {
        let journal = self.delete.journal()?;
        let new_name = self.new_name();
        let analysis = &report.adopt.analysis;
        let (result, verified) = adopt::verify(ctx, analysis, &new_name, Some(&journal)).await?;
        finish(ctx, self.req, &journal, report, result, verified).await
    }
}

impl Steps<MigrateReport> for MigrateSteps<'_, '_> {
    async fn before(
        &mut self,
        ctx: &Ctx<'_>,
        m: &Mutation,
        report: &mut MigrateReport,
    ) -> Result<Option<Mutation>> {
        match m {
            Mutation::OrphanDelete(ds) => {
                self.fallback = Some(report.clone());
                Ok(self
                    .delete
                    .before(ctx, ds, report)
                    .await?
                    .then(|| m.clone()))
            }
            Mutation::Create(_) => match self.before_create(ctx, m, report).await {
                Ok(create) => Ok(Some(create)),
                Err(e) => Err(self.after_delete(ctx, e, report)),
            },
        }
    }

    async fn after(&mut self, ctx: &Ctx<'_>, acted: Acted, _: &mut MigrateReport) -> Result<()> {
        match acted {
            deleted @ Acted::Deleted { .. } => self.delete.after(ctx, deleted).await,
            created => adopt::created(ctx, created).await,
        }
    }

    async fn verify(&mut self, ctx: &Ctx<'_>, report: MigrateReport) -> Result<Exit> {
        let fallback = report.clone();
        self.verify_adoption(ctx, report)
            .await
            .map_err(|e| self.after_delete(ctx, e, &fallback))
    }
}

/// Prints the report (JSON) and gives `err` back.
fn fail_doc(ctx: &Ctx<'_>, report: &MigrateReport, err: Error) -> Error {
    match ctx.document(report) {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// What the cluster looks like once the old DaemonSet is deleted, for a failure's message.
fn deleted_state(ctx: &Ctx<'_>, req: &Request<'_>, new_name: &str) -> String {
    let ns = ctx.ns();
    format!(
        "daemonset {ns}/{} is deleted (propagationPolicy=Orphan) and its pods keep running, without an owner until {ns}/{new_name} adopts them",
        req.old_name
    )
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
    adopt_orphans(ctx, req, manifest, backup, journal, placeholder).await
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

/// Stage Orphaned: the old DaemonSet is deleted; plan the adoption from the orphans (the
/// backup's journal names the old pods), show and confirm it, then wait for the orphaning,
/// create, verify.
async fn adopt_orphans(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    backup: &Backup,
    journal: &Journal,
    mut report: MigrateReport,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let new_name = manifest.metadata.name.clone().unwrap_or_default();
    let create = replan_adoption(ctx, req, manifest, backup, journal, &mut report).await?;
    ctx.table(|out, p| render::workflow::migrate_plan(out, &report, p))?;
    let what = format!(
        "create daemonset {ns}/{new_name} to adopt the pods of the deleted {}",
        req.old_name
    );
    let plan = Plan {
        checks: report.adopt.analysis.checks.clone(),
        report,
        mutations: vec![create],
        lock: Some(req.old_name.to_string()),
    };
    let mut delete = orphan::DeleteSteps::new(req.backup_path, &req.overrides, None);
    delete.journal = Some(journal.clone());
    let mut steps = MigrateSteps {
        req,
        manifest,
        old_ds: None,
        delete,
        fallback: None,
    };
    execute(ctx, plan, &what, &mut steps).await
}

/// The adoption planned from the orphans (the backup's journal names the old pods) into
/// `report.adopt`; the create it sends. Refuses (printing the report) when the old object still
/// holds the new name, or its owner of record recreated it.
async fn replan_adoption(
    ctx: &Ctx<'_>,
    req: &Request<'_>,
    manifest: &DaemonSet,
    backup: &Backup,
    journal: &Journal,
    report: &mut MigrateReport,
) -> Result<Mutation> {
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
        return Err(fail_doc(ctx, report, e));
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
        return Err(fail_doc(ctx, report, e));
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
    let create = adopt::to_create(manifest, &marker, &report.adopt.analysis, false);
    Ok(Mutation::Create(create))
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
