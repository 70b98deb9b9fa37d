//! `adopt`: create a DaemonSet that takes over orphaned pods without restarting them.
//! Read the manifest -> fetch the namespace -> server dry-run (defaults, admission, RBAC) ->
//! adoption analysis and checks -> confirm -> create -> verify pod by pod, UID by UID.

use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;

use super::backup::{self, Backup};
use super::executor::{execute, Acted, Mutation, Plan, Steps};
use super::report::{
    AdoptPlan, AdoptReport, AdoptResult, ObjectRef, PredecessorRef, ServerDryRun, API_VERSION,
};
use super::{poll_until, refuse_if_blocked, Ctx, Poll, WaitState};
use crate::cluster::fetch::{
    fetch_namespace_objects, fetch_pods_and_revisions, get_daemon_set_opt, NamespaceObjects,
};
use crate::cluster::mutate::create_daemon_set;
use crate::engine::adoption::{AdoptAnalysis, AdoptFacts, Fate, NameState, Predecessor};
use crate::engine::checks::{analyse_adoption, apply_overrides, Overrides};
use crate::engine::manifest::{self, Journal, ObjectRecord};
use crate::engine::podstate::is_terminating;
use crate::engine::progress::{assess_adoption, AdoptionProgress};
use crate::engine::revision::template_generation;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render;

/// Reads and validates the new manifest (before any connection: bad input is reported first).
/// `-f -` reads stdin.
pub fn load_manifest(path: &Path) -> Result<DaemonSet> {
    let text = crate::filename::read_text(path)?;
    manifest::parse_new_daemon_set(&text)
        .map_err(|e| Error::Input(format!("{}: {e}", crate::filename::shown(path))))
}

/// Places the manifest in the namespace; one naming another namespace than `-n` is refused,
/// as kubectl does.
pub fn in_namespace(mut ds: DaemonSet, path: &Path, ns: &str) -> Result<DaemonSet> {
    match ds.metadata.namespace.as_deref() {
        Some(m) if m != ns => {
            return Err(Error::Input(format!(
            "{}: the manifest's namespace {m:?} does not match the namespace {ns:?} (use -n {m})",
            path.display()
        )))
        }
        _ => ds.metadata.namespace = Some(ns.to_string()),
    }
    Ok(ds)
}

/// The new DaemonSet as the apiserver would store it: a server dry-run create, which also
/// checks RBAC and admission. `name_clash`: the name is still held (same-name migration before
/// the delete), so the dry run uses generateName.
pub async fn server_defaults(
    ctx: &Ctx<'_>,
    manifest: &DaemonSet,
    marker: &str,
    name_clash: bool,
) -> Result<DaemonSet> {
    let generation = template_generation(manifest).unwrap_or(1);
    let mut probe = manifest::prepare_for_create(manifest, marker, generation);
    let name = manifest.metadata.name.clone();
    if name_clash {
        probe.metadata.generate_name = name.as_ref().map(|n| format!("{n}-"));
        probe.metadata.name = None;
    }
    let mut out = create_daemon_set(&ctx.cluster, &probe, true)
        .await
        .map_err(|e| e.context("pre-flight (server dry run), nothing was changed"))?;
    out.metadata.name = name;
    out.metadata.uid = None;
    out.metadata.generate_name = None;
    Ok(out)
}

/// Is the new name free, held by a DaemonSet an earlier run created, or taken?
pub fn name_state(
    existing: Option<&DaemonSet>,
    manifest: &DaemonSet,
    marker: Option<&str>,
) -> NameState {
    match existing {
        None => NameState::Free,
        Some(e) => {
            let uid = e.metadata.uid.clone().unwrap_or_default();
            if manifest::is_created_from(e, manifest, marker) {
                NameState::CreatedEarlier { uid }
            } else {
                NameState::Taken { uid }
            }
        }
    }
}

/// Everything `plan` reads.
pub struct PlanInput<'a> {
    pub manifest: &'a DaemonSet,
    /// The new DaemonSet as defaulted by the apiserver (or as it exists, when resuming).
    pub defaulted: &'a DaemonSet,
    pub predecessor: Option<&'a Predecessor>,
    pub predecessor_source: &'static str,
    pub name_state: &'a NameState,
    pub objects: &'a NamespaceObjects,
    pub overrides: &'a Overrides,
    pub marker: &'a str,
}

/// The adoption plan: the analysis with the user's overrides applied, and its steps.
pub fn plan(input: &PlanInput) -> AdoptPlan {
    let o = input.objects;
    let mut analysis = analyse_adoption(&AdoptFacts {
        new_ds: input.defaulted,
        requested_generation: template_generation(input.manifest),
        predecessor: input.predecessor,
        name_state: input.name_state,
        pods: &o.pods,
        revisions: &o.revisions,
        nodes: &o.nodes,
        daemon_sets: &o.daemon_sets,
    });
    analysis.checks = apply_overrides(std::mem::take(&mut analysis.checks), input.overrides);
    let r = ObjectRef::of(input.manifest);
    let resumed = matches!(input.name_state, NameState::CreatedEarlier { .. });
    let mut steps = Vec::new();
    if !resumed {
        steps.push(format!(
            "create daemonset {}/{} with deprecated.daemonset.template.generation={} and {}={}",
            r.namespace,
            r.name,
            analysis.template_generation,
            manifest::ADOPTED_FROM_ANNOTATION,
            input.marker
        ));
    }
    steps.push(verify_step(&analysis, resumed));
    AdoptPlan {
        daemon_set: ObjectRef {
            uid: match input.name_state {
                NameState::CreatedEarlier { uid } => Some(uid.clone()),
                _ => None,
            },
            resource_version: None,
            ..r
        },
        predecessor: input.predecessor.map(|p| PredecessorRef {
            name: p.name.clone(),
            uid: p.uid.clone(),
            source: input.predecessor_source,
        }),
        steps,
        analysis,
    }
}

fn verify_step(a: &AdoptAnalysis, resumed: bool) -> String {
    let kept = a.kept().count();
    let mut text = format!(
        "{}wait until the DaemonSet controller has adopted {kept} pod(s) with unchanged UIDs and its status counts every desired node",
        if resumed { "(resumed: it exists) " } else { "" }
    );
    let restart = a.count(Fate::Restart);
    if restart > 0 {
        text.push_str(&format!(
            "; {restart} pod(s) are then replaced by the rolling update"
        ));
    } else {
        text.push_str(" up to date");
    }
    let deleted = a.count(Fate::Delete);
    if deleted > 0 {
        text.push_str(&format!("; {deleted} pod(s) are deleted"));
    }
    if !a.new_nodes.is_empty() {
        text.push_str(&format!("; {} new pod(s) start", a.new_nodes.len()));
    }
    text
}

/// The predecessor named by `--from-backup`.
fn predecessor_from(backup: &Backup, ns: &str) -> Result<Predecessor> {
    let m = &backup.daemon_set.metadata;
    if let Some(bns) = m.namespace.as_deref().filter(|b| *b != ns) {
        return Err(Error::Input(format!(
            "the backup is of a DaemonSet in namespace {bns:?}, not {ns:?} (use -n {bns})"
        )));
    }
    let name = m.name.clone().unwrap_or_default();
    Ok(Predecessor::from_backup(
        &backup.daemon_set,
        backup.journal_of(ns, &name),
    ))
}

/// `kubectl ds adopt -f NEW.yaml [--from-backup FILE]`.
/// The executor holds a lease while it acts: the one of the DaemonSet named by `--from-backup`
/// (the same lock `migrate` and `orphan` of that DaemonSet take), else the new DaemonSet's.
pub async fn run(
    ctx: &Ctx<'_>,
    manifest: DaemonSet,
    file: &Path,
    from_backup: Option<&Path>,
    overrides: &Overrides,
) -> Result<Exit> {
    let ns = ctx.ns().to_string();
    let manifest = in_namespace(manifest, file, &ns)?;
    let name = manifest.metadata.name.clone().unwrap_or_default();
    let backup = match from_backup {
        Some(p) => Some(
            backup::read(p)?
                .ok_or_else(|| Error::Input(format!("reading {}: no such file", p.display())))?,
        ),
        None => None,
    };
    let predecessor = backup
        .as_ref()
        .map(|b| predecessor_from(b, &ns))
        .transpose()?;
    let journal = match (&backup, &predecessor) {
        (Some(b), Some(p)) => b.journal_of(&ns, &p.name).cloned(),
        _ => None,
    };
    let marker = match &predecessor {
        Some(p) => manifest::adopted_from_value(&p.name, p.uid.as_deref()),
        None => "orphans".to_string(),
    };
    let objects = fetch_namespace_objects(&ctx.cluster, &ns).await?;
    let existing = objects
        .daemon_sets
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name.as_str()));
    let state = name_state(existing, &manifest, Some(&marker));
    let defaulted = match (&state, existing) {
        (NameState::CreatedEarlier { .. }, Some(e)) => e.clone(),
        (NameState::Taken { .. }, _) => manifest.clone(),
        _ => server_defaults(ctx, &manifest, &marker, false).await?,
    };
    let plan = plan(&PlanInput {
        manifest: &manifest,
        defaulted: &defaulted,
        predecessor: predecessor.as_ref(),
        predecessor_source: "backup",
        name_state: &state,
        objects: &objects,
        overrides,
        marker: &marker,
    });
    let resumed = matches!(state, NameState::CreatedEarlier { .. });
    let mut plan =
        mutation_plan(&manifest, &marker, plan, resumed, false).map(|plan| AdoptReport {
            api_version: API_VERSION,
            kind: "AdoptReport",
            dry_run: ctx.mode.as_str(),
            resumed,
            plan,
            server_dry_run: Vec::new(),
            result: None,
        });
    if let Some(b) = &predecessor {
        plan.lock = Some(b.name.clone());
    }
    ctx.table(|out, p| render::workflow::adopt_plan(out, &plan.report.plan, p))?;
    let mut steps = AdoptSteps {
        name: &name,
        journal: journal.as_ref(),
    };
    if !resumed {
        let what = format!("create daemonset {ns}/{name} and let it adopt the pods");
        return execute(ctx, plan, &what, &mut steps).await;
    }
    // Created by an earlier run: nothing to send, only the verification (no lock: it
    // changes nothing).
    if let Err(e) = refuse_if_blocked(&plan.checks) {
        ctx.document(&plan.report)?;
        return Err(e);
    }
    ctx.progress(&format!(
        "daemonset {ns}/{name} was created by an earlier run: verifying the adoption"
    ));
    steps.verify(ctx, plan.report).await
}

/// `adopt`'s steps: after the create, the wait for the adoption and the report.
struct AdoptSteps<'a> {
    name: &'a str,
    journal: Option<&'a Journal>,
}

impl Steps<AdoptReport> for AdoptSteps<'_> {
    async fn before(
        &mut self,
        _: &Ctx<'_>,
        m: &Mutation,
        _: &mut AdoptReport,
    ) -> Result<Option<Mutation>> {
        Ok(Some(m.clone()))
    }

    async fn after(&mut self, ctx: &Ctx<'_>, acted: Acted, _: &mut AdoptReport) -> Result<()> {
        created(ctx, acted).await
    }

    async fn verify(&mut self, ctx: &Ctx<'_>, mut report: AdoptReport) -> Result<Exit> {
        let (result, verified) =
            verify(ctx, &report.plan.analysis, self.name, self.journal).await?;
        report.result = Some(result);
        finish(ctx, &report, verified)
    }
}

fn finish(ctx: &Ctx<'_>, report: &AdoptReport, verified: bool) -> Result<Exit> {
    if let Some(result) = &report.result {
        ctx.table(|out, p| render::workflow::adopt_result(out, result, p))?;
    }
    ctx.document(report)?;
    match (&report.result, verified) {
        (_, true) => Ok(Exit::Ok),
        (Some(r), false) => Err(unverified(r)),
        (None, false) => Err(Error::Unverified(
            "the adoption could not be verified".into(),
        )),
    }
}

/// What the apiserver answered to the create sent with dryRun=All.
pub fn dry_run_answer(ds: &DaemonSet, stored: &DaemonSet) -> ServerDryRun {
    let r = ObjectRef::of(ds);
    let name = match &ds.metadata.generate_name {
        Some(g) if r.name.is_empty() => format!(
            "{g}* (sent with generateName: the old DaemonSet holds the name until it is deleted)"
        ),
        _ => r.name.clone(),
    };
    ServerDryRun {
        operation: format!("create daemonset {}/{name}", r.namespace),
        accepted: true,
        detail: format!(
            "the apiserver would store it with deprecated.daemonset.template.generation={}",
            template_generation(stored).map_or("?".into(), |g| g.to_string())
        ),
    }
}

/// The DaemonSet the create sends: the manifest with the marker and the decided template
/// generation; with `generate_name` (a same-name migrate, while the old DaemonSet still holds
/// the name) sent as `generateName: NAME-`.
pub fn to_create(
    manifest: &DaemonSet,
    marker: &str,
    analysis: &AdoptAnalysis,
    generate_name: bool,
) -> DaemonSet {
    let mut ds = manifest::prepare_for_create(manifest, marker, analysis.template_generation);
    if generate_name {
        ds.metadata.generate_name = ds.metadata.name.take().map(|n| format!("{n}-"));
    }
    ds
}

/// The adopt plan as data: its checks, and the create (none when an earlier run created the
/// DaemonSet already: `resumed`).
pub fn mutation_plan(
    manifest: &DaemonSet,
    marker: &str,
    plan: AdoptPlan,
    resumed: bool,
    generate_name: bool,
) -> Plan<AdoptPlan> {
    let mutations = if resumed {
        Vec::new()
    } else {
        vec![Mutation::Create(to_create(
            manifest,
            marker,
            &plan.analysis,
            generate_name,
        ))]
    };
    Plan {
        checks: plan.analysis.checks.clone(),
        mutations,
        lock: manifest.metadata.name.clone(),
        report: plan,
    }
}

/// Right after the create went through: says so; the failpoint `after-create`.
pub async fn created(ctx: &Ctx<'_>, acted: Acted) -> Result<()> {
    let Acted::Created(created) = acted else {
        return Ok(());
    };
    ctx.progress(&format!(
        "daemonset {}/{} created (uid {}); waiting for the DaemonSet controller to adopt the pods",
        created.metadata.namespace.as_deref().unwrap_or(""),
        created.metadata.name.as_deref().unwrap_or(""),
        created.metadata.uid.as_deref().unwrap_or("")
    ));
    ctx.failpoint("after-create").await;
    Ok(())
}

impl WaitState for (AdoptionProgress, DaemonSet, Vec<ObjectRecord>) {
    fn summary(&self) -> String {
        let p = &self.0;
        let more = p.waiting_for.len().saturating_sub(1);
        format!(
            "{} pod(s) adopted, {} created; waiting for {}{}",
            p.adopted.len(),
            p.created.len(),
            p.waiting_for.first().map_or("nothing", String::as_str),
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        )
    }
}

/// Waits until the plan's pods are controlled by the new DaemonSet and its status settles;
/// compares UIDs with the plan and with the backup's journal.
pub async fn verify(
    ctx: &Ctx<'_>,
    analysis: &AdoptAnalysis,
    name: &str,
    journal: Option<&Journal>,
) -> Result<(AdoptResult, bool)> {
    let ns = ctx.ns().to_string();
    let ((progress, ds, gone), done) = poll_until(ctx, || async {
        let ds = get_daemon_set_opt(&ctx.cluster, &ns, name)
            .await?
            .ok_or_else(|| {
                Error::Unverified(format!(
                    "daemonset {ns}/{name} disappeared during the verification"
                ))
            })?;
        let (pods, _) = fetch_pods_and_revisions(&ctx.cluster, &ns).await?;
        let progress = assess_adoption(analysis, &ds, &pods);
        let gone = gone_since_backup(journal, &pods);
        let done = progress.is_complete();
        let state = (progress, ds, gone);
        Ok(if done {
            Poll::Done(state)
        } else {
            Poll::Pending(state)
        })
    })
    .await?;
    // Only the plan explains a pod gone since the backup (its fate was Restart or Delete): a
    // planned pod that disappeared otherwise is never success, whatever --allow-* allowed.
    let explained = |o: &ObjectRecord| {
        analysis
            .pods
            .iter()
            .any(|p| p.uid == o.uid && matches!(p.fate, Fate::Restart | Fate::Delete))
    };
    let verified = done && progress.is_clean() && gone.iter().all(explained);
    Ok((
        AdoptResult {
            verified,
            daemon_set: ObjectRef::of(&ds),
            progress,
            gone_since_backup: gone,
        },
        verified,
    ))
}

/// Pods the backup lists that no longer run.
fn gone_since_backup(
    journal: Option<&Journal>,
    pods: &[crate::engine::model::Pod],
) -> Vec<ObjectRecord> {
    let Some(j) = journal else {
        return Vec::new();
    };
    j.pods
        .iter()
        .filter(|rec| {
            !pods
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(rec.uid.as_str()) && !is_terminating(p))
        })
        .cloned()
        .collect()
}

/// The one-line reason a verification failed.
pub fn unverified(r: &AdoptResult) -> Error {
    let p: &AdoptionProgress = &r.progress;
    let mut what: Vec<String> = Vec::new();
    if !p.waiting_for.is_empty() {
        what.push(format!("still waiting for {}", p.waiting_for.join(", ")));
    }
    if !p.lost.is_empty() {
        let names: Vec<&str> = p.lost.iter().map(|o| o.name.as_str()).collect();
        what.push(format!("taken by another controller: {}", names.join(", ")));
    }
    if !p.unexpected_restarts.is_empty() {
        let names: Vec<&str> = p
            .unexpected_restarts
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        what.push(format!(
            "restarted although the template is unchanged: {}",
            names.join(", ")
        ));
    }
    if !r.gone_since_backup.is_empty() {
        let names: Vec<&str> = r
            .gone_since_backup
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        what.push(format!("gone since the backup: {}", names.join(", ")));
    }
    Error::Unverified(format!(
        "daemonset {}/{} exists but the adoption is not verified: {}; run the same command again to re-check",
        r.daemon_set.namespace,
        r.daemon_set.name,
        what.join("; ")
    ))
}
