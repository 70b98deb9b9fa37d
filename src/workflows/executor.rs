//! Mutations as data: each workflow returns a [`Plan`] — its report, its checks, the exact
//! [`Mutation`]s it would send and the DaemonSet whose lease it needs — and one executor,
//! [`execute`], runs every plan: refuse when a check blocks; stop after the plan
//! (`--dry-run`); send every mutation with dryRun=All (`--dry-run=server` ends there); when
//! acting, take the lease ([`super::lock`]) first, then the same dry run (a run the apiserver
//! rejects ends there: nothing changed, the lease released); confirm; send each mutation with its preconditions ([`send_preconditioned`]: the orphaning delete
//! re-reads the DaemonSet right before it is sent and retries a 409 while the spec and UID are
//! unchanged); verify; report. The lease is released on every path once taken. `migrate`'s
//! plan is the orphan plan followed by the adopt plan ([`Plan::then`]).
//!
//! Each mutation's request (method, path, query, body with its preconditions,
//! propagationPolicy and dryRun) is built in one place, [`Mutation::request`], from the same
//! options the cluster layer sends, and [`send`] is the one place every workflow mutation goes
//! out (through the client's retry policy). What stays the workflows' own is in their
//! [`Steps`]: what to check or write right before a mutation (the re-check and the backup
//! before the delete; migrate's wait for the orphans and the adoption planned again from
//! them before the create), what to do right after it, and how to wait and verify.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Serialize;

use super::report::{AdoptReport, MigrateReport, OrphanReport, ServerDryRun};
use super::{adopt, orphan, refuse_if_blocked, Ctx, Mode};
use crate::cluster::fetch::get_daemon_set_raw;
use crate::cluster::mutate::{self, DeleteOutcome};
use crate::engine::checks::Check;
use crate::error::{Error, Result};
use crate::exit::Exit;

/// A mutation a workflow will send.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// DELETE with propagationPolicy=Orphan and UID + resourceVersion preconditions (those of
    /// the object as read).
    OrphanDelete(DaemonSet),
    /// POST of the DaemonSet as given (a name, or a generateName while the old one holds it).
    Create(DaemonSet),
}

impl Mutation {
    /// The exact HTTP request this mutation is sent as (dryRun=All when `dry_run`), from the
    /// options `cluster::mutate` sends: what the request-level tests assert.
    pub fn request(&self, dry_run: bool) -> Result<http::Request<Vec<u8>>> {
        let path = |ds: &DaemonSet| {
            format!(
                "/apis/apps/v1/namespaces/{}/daemonsets",
                ds.metadata.namespace.as_deref().unwrap_or("")
            )
        };
        let bad = |e: kube::core::request::Error| Error::Io(format!("building a request: {e}"));
        match self {
            Mutation::OrphanDelete(ds) => kube::core::Request::new(path(ds))
                .delete(
                    ds.metadata.name.as_deref().unwrap_or(""),
                    &mutate::orphan_delete_params(ds, dry_run),
                )
                .map_err(bad),
            Mutation::Create(ds) => {
                let body = serde_json::to_vec(ds).map_err(|e| Error::Io(e.to_string()))?;
                kube::core::Request::new(path(ds))
                    .create(&mutate::create_params(dry_run), body)
                    .map_err(bad)
            }
        }
    }
}

/// A workflow's plan as data: the report it prints, the checks that may block it, and the
/// mutations it would send, in order.
#[derive(Debug, Clone)]
pub struct Plan<R> {
    pub report: R,
    pub checks: Vec<Check>,
    pub mutations: Vec<Mutation>,
    /// The DaemonSet whose lease (`lock`) the run holds from before the confirmation until the
    /// end, when it acts; `None`: no lock (nothing to send).
    pub lock: Option<String>,
}

impl<R> Plan<R> {
    /// This plan followed by `next`: both plans' checks and mutations, in order (`migrate` is
    /// the orphan plan followed by the adopt plan); `join` makes the report of both.
    pub fn then<S, T>(self, next: Plan<S>, join: impl FnOnce(R, S) -> T) -> Plan<T> {
        let mut checks = self.checks;
        checks.extend(next.checks);
        let mut mutations = self.mutations;
        mutations.extend(next.mutations);
        Plan {
            report: join(self.report, next.report),
            checks,
            mutations,
            lock: self.lock.or(next.lock),
        }
    }

    /// The same checks and mutations with the report made into `f(report)`.
    pub fn map<T>(self, f: impl FnOnce(R) -> T) -> Plan<T> {
        Plan {
            report: f(self.report),
            checks: self.checks,
            mutations: self.mutations,
            lock: self.lock,
        }
    }
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

/// What a mutation did once it went through for real (or, in the dry run before acting, would
/// do).
#[derive(Debug)]
pub enum Acted {
    /// The orphaning delete was accepted: `object` (and `raw`, as the server sent it) is the
    /// DaemonSet as read right before it, whose UID and resourceVersion were its preconditions.
    Deleted {
        raw: serde_json::Value,
        object: Box<DaemonSet>,
    },
    /// The created object (for a dry run: as it would be stored).
    Created(Box<DaemonSet>),
}

/// What a workflow does around the executor's mutations: its re-checks, its backup, its
/// waits and its verification. The executor decides when each runs and sends every mutation
/// itself; a workflow never sends one.
#[allow(async_fn_in_trait)] // used with concrete types only, never as `dyn Steps` nor across threads
pub trait Steps<R> {
    /// Right before `m` is sent for real (its dry run passed, the lease is held, confirmed):
    /// re-checks, the backup, waits, or a re-planned mutation. The mutation to send, or `None`
    /// when there is nothing to send (an earlier run did it).
    async fn before(
        &mut self,
        ctx: &Ctx<'_>,
        m: &Mutation,
        report: &mut R,
    ) -> Result<Option<Mutation>>;
    /// Right after it went through.
    async fn after(&mut self, ctx: &Ctx<'_>, acted: Acted, report: &mut R) -> Result<()>;
    /// Once every mutation went through: wait, verify, print the result; the run's exit.
    async fn verify(&mut self, ctx: &Ctx<'_>, report: R) -> Result<Exit>;
}

/// What the apiserver answered to a mutation.
#[derive(Debug)]
pub enum Sent {
    Delete(DeleteOutcome),
    /// The created object (for a dry run: as it would be stored).
    Created(Box<DaemonSet>),
}

/// Sends `m` exactly as [`Mutation::request`] builds it, through the client (and so its retry
/// policy, `cluster::retry`). A delete's 409 (a precondition failed) is an answer, not an
/// error; other failures carry the same context as `cluster::mutate`'s.
pub async fn send(ctx: &Ctx<'_>, m: &Mutation, dry_run: bool) -> Result<Sent> {
    send_with(&ctx.cluster.client, m, dry_run).await
}

/// [`send`] with a client.
async fn send_with(client: &kube::Client, m: &Mutation, dry_run: bool) -> Result<Sent> {
    let request = m.request(dry_run)?;
    let answer = client.request::<serde_json::Value>(request).await;
    let typed = |v: serde_json::Value| {
        serde_json::from_value::<DaemonSet>(v)
            .map(Box::new)
            .map_err(|e| Error::Io(format!("reading the apiserver's answer: {e}")))
    };
    match m {
        Mutation::OrphanDelete(ds) => match answer {
            Ok(v) if v["kind"] == "Status" => Ok(Sent::Delete(DeleteOutcome::Deleted)),
            Ok(v) => Ok(Sent::Delete(DeleteOutcome::Accepted(typed(v)?))),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Sent::Delete(
                DeleteOutcome::Conflict(status.message.clone()),
            )),
            Err(e) => Err(Error::kube(
                &format!("deleting daemonset {}", qualified(ds)),
                e,
            )),
        },
        Mutation::Create(ds) => {
            let what = if dry_run {
                "creating (dry run)"
            } else {
                "creating"
            };
            let v = answer
                .map_err(|e| Error::kube(&format!("{what} daemonset {}", qualified(ds)), e))?;
            Ok(Sent::Created(typed(v)?))
        }
    }
}

/// `ns/name` (or `ns/generateName`) for messages.
fn qualified(ds: &DaemonSet) -> String {
    let m = &ds.metadata;
    let name = m
        .name
        .as_deref()
        .or(m.generate_name.as_deref())
        .unwrap_or("");
    format!("{}/{name}", m.namespace.as_deref().unwrap_or(""))
}

/// Sends one mutation with dryRun=All and reads the answer.
async fn dry_run(ctx: &Ctx<'_>, m: &Mutation) -> Result<ServerDryRun> {
    Ok(match (m, send(ctx, m, true).await?) {
        (Mutation::OrphanDelete(ds), Sent::Delete(outcome)) => orphan::dry_run_answer(ds, outcome),
        (Mutation::Create(ds), Sent::Created(stored)) => adopt::dry_run_answer(ds, &stored),
        (_, other) => return Err(Error::Io(format!("unexpected answer {other:?}"))),
    })
}

/// How often the orphaning delete is tried when the DaemonSet's resourceVersion moved on between
/// the read and the delete (the controller writes its status, a tool its annotations) but its
/// spec did not. An attempt is one read and the delete right after it (two round trips), so
/// against a writer patching back to back (tens of writes a second) some attempt gets through;
/// [`DELETE_PAUSE`] more between attempts each time, up to [`DELETE_PAUSE_MAX`] (about 4 s in all).
const DELETE_ATTEMPTS: u32 = 50;
const DELETE_PAUSE: Duration = Duration::from_millis(7);
const DELETE_PAUSE_MAX: Duration = Duration::from_millis(100);

/// Sends `m` with its preconditions as they are now: a delete re-reads the DaemonSet right
/// before it is sent (nothing but that read lies between them, so a namespace where something
/// keeps writing the DaemonSet's status or annotations does not make every attempt fail) and
/// is conditioned on that read's UID and resourceVersion; the read must show the planned UID
/// and generation (the spec the plan and the backup saw), and a 409 reads and deletes again, up
/// to [`DELETE_ATTEMPTS`] times. A create is sent as planned. `dry_run`: with dryRun=All.
pub async fn send_preconditioned(ctx: &Ctx<'_>, m: &Mutation, dry_run: bool) -> Result<Acted> {
    let planned = match m {
        Mutation::Create(_) => {
            return match send(ctx, m, dry_run).await? {
                Sent::Created(created) => Ok(Acted::Created(created)),
                other => Err(Error::Io(format!(
                    "unexpected answer to a create: {other:?}"
                ))),
            }
        }
        Mutation::OrphanDelete(planned) => planned,
    };
    let (ns, name) = (namespace_of(planned), name_of(planned));
    let mut last_conflict = String::new();
    for attempt in 0..DELETE_ATTEMPTS {
        if attempt > 0 {
            // A short, growing pause: out of step with a writer that keeps patching.
            tokio::time::sleep(DELETE_PAUSE.saturating_mul(attempt).min(DELETE_PAUSE_MAX)).await;
        }
        let (raw, fresh) = read_as_planned(ctx, planned).await?;
        let delete = Mutation::OrphanDelete(fresh.clone());
        match send(ctx, &delete, dry_run).await? {
            Sent::Delete(DeleteOutcome::Conflict(msg)) => last_conflict = msg,
            Sent::Delete(_) => {
                if attempt > 0 && !dry_run {
                    ctx.progress(&format!(
                        "daemonset {ns}/{name}: the delete went through at attempt {} ({last_conflict})",
                        attempt + 1
                    ));
                }
                return Ok(Acted::Deleted {
                    raw,
                    object: Box::new(fresh),
                });
            }
            other => {
                return Err(Error::Io(format!(
                    "unexpected answer to a delete: {other:?}"
                )))
            }
        }
    }
    Err(Error::Forbidden(format!(
        "daemonset {ns}/{name} kept changing; the orphaning delete failed its preconditions {DELETE_ATTEMPTS} times ({last_conflict}); nothing was deleted"
    )))
}

fn namespace_of(ds: &DaemonSet) -> String {
    ds.metadata.namespace.clone().unwrap_or_default()
}

fn name_of(ds: &DaemonSet) -> String {
    ds.metadata.name.clone().unwrap_or_default()
}

/// Reads the DaemonSet (raw and typed) and checks it is still the planned one: same UID, same
/// generation (spec unchanged).
pub async fn read_as_planned(
    ctx: &Ctx<'_>,
    planned: &DaemonSet,
) -> Result<(serde_json::Value, DaemonSet)> {
    let (ns, name) = (namespace_of(planned), name_of(planned));
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

/// Runs a plan: refuse on a block -> plan only (`--dry-run`) -> `--dry-run=server`: the
/// server dry run of every mutation, and the end; acting: take the plan's lease -> server dry
/// run of every mutation -> confirm -> for each mutation: `steps.before`, send it with its
/// preconditions, `steps.after` -> `steps.verify`. The lease is released on every path once
/// taken. A refusal before anything changed still
/// prints the report (`-o json`) before the error.
pub async fn execute<R: Report, S: Steps<R>>(
    ctx: &Ctx<'_>,
    plan: Plan<R>,
    what: &str,
    steps: &mut S,
) -> Result<Exit> {
    let Plan {
        mut report,
        checks,
        mutations,
        lock,
    } = plan;
    if let Err(e) = refuse_if_blocked(&checks) {
        ctx.document(&report)?;
        return Err(e);
    }
    match ctx.mode {
        Mode::Plan => {
            ctx.document(&report)?;
            return Ok(Exit::Ok);
        }
        Mode::ServerDryRun => {
            for m in &mutations {
                let answer = dry_run(ctx, m).await?;
                report.server_dry_run().push(answer);
            }
            let answers = report.server_dry_run().clone();
            return ctx.server_dry_run_done(&answers, &report);
        }
        Mode::Act => {}
    }
    // The lease first: the dry run then sees the objects as this run will act on them (a
    // concurrent run is refused by the lease, not by its changes tripping this run's dry run).
    if let Some(daemon_set) = &lock {
        if let Err(e) = ctx.lock(daemon_set).await {
            ctx.document(&report)?;
            return Err(e);
        }
    }
    let out = act(ctx, report, mutations, what, steps).await;
    ctx.unlock().await;
    out
}

/// The planned DaemonSet is already being deleted: an earlier run sent its orphaning delete.
/// That delete is not sent again (the workflows' `before` step only makes sure of its backup)
/// nor dry-run.
pub fn delete_under_way(planned: &DaemonSet) -> bool {
    planned.metadata.deletion_timestamp.is_some()
}

/// Every mutation sent with dryRun=All, with its preconditions as they are now (as the real
/// one will be sent): the first answer the apiserver rejects (RBAC, admission, validation, a
/// precondition that keeps failing) refuses the run before anything is changed.
async fn dry_run_before_acting(ctx: &Ctx<'_>, mutations: &[Mutation]) -> Result<()> {
    // A delete already under way is not sent again, so there is nothing to dry-run: the
    // DaemonSet may even be gone by now, once the garbage collector has orphaned its pods.
    let mutations: Vec<&Mutation> = mutations
        .iter()
        .filter(|m| !matches!(m, Mutation::OrphanDelete(ds) if delete_under_way(ds)))
        .collect();
    for m in &mutations {
        send_preconditioned(ctx, m, true)
            .await
            .map_err(|e| match e {
                // Not the server's answer: the object moved on since the plan (already says so).
                Error::Refused(_) => e,
                e => e.context("server dry run rejected, nothing was changed"),
            })?;
    }
    if !mutations.is_empty() {
        ctx.progress(&format!(
            "server dry run passed: the apiserver accepts {} mutation(s)",
            mutations.len()
        ));
    }
    Ok(())
}

/// The server dry run, the confirmation, then each mutation with the workflow's steps around
/// it, then its verification.
async fn act<R: Report, S: Steps<R>>(
    ctx: &Ctx<'_>,
    mut report: R,
    mutations: Vec<Mutation>,
    what: &str,
    steps: &mut S,
) -> Result<Exit> {
    if let Err(e) = dry_run_before_acting(ctx, &mutations).await {
        ctx.document(&report)?;
        return Err(e);
    }
    if let Err(e) = ctx.confirm(what) {
        ctx.document(&report)?;
        return Err(e);
    }
    for planned in &mutations {
        ctx.ensure_locked()?;
        let Some(m) = steps.before(ctx, planned, &mut report).await? else {
            continue;
        };
        ctx.ensure_locked()?;
        let acted = send_preconditioned(ctx, &m, false).await?;
        steps.after(ctx, acted, &mut report).await?;
    }
    steps.verify(ctx, report).await
}

#[cfg(test)]
mod tests {
    //! Request-level tests of the mutations the plans hand to the executor: the exact method,
    //! path, query and body of each request, from plans the workflows' pure planners make.

    use std::path::Path;

    use serde_json::{json, Value};

    use super::*;
    use crate::cluster::fetch::NamespaceObjects;
    use crate::engine::adoption::{NameState, Predecessor};
    use crate::engine::checks::{BackupFileState, CheckCode, Overrides};
    use crate::engine::manifest::{adopted_from_value, ADOPTED_FROM_ANNOTATION};
    use crate::engine::report::{AdoptPlan, OrphanPlan};
    use crate::engine::testutil::{daemon_set, node, pod};

    const PATH: &str = "/apis/apps/v1/namespaces/ns/daemonsets";

    fn old_ds() -> DaemonSet {
        daemon_set(
            "
metadata: {name: agent, namespace: ns, uid: old-uid, resourceVersion: '4711', generation: 2}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent, component: agent}}
    spec: {containers: [{name: c, image: 'agent:1'}]}
",
        )
    }

    /// The replacement: another name, selector component=agent, the same template.
    fn new_ds(name: &str) -> DaemonSet {
        let mut v = serde_json::to_value(old_ds()).unwrap();
        v["metadata"] = json!({"name": name, "namespace": "ns"});
        v["spec"]["selector"] = json!({"matchLabels": {"component": "agent"}});
        serde_json::from_value(v).unwrap()
    }

    fn pods() -> Vec<crate::engine::model::Pod> {
        vec![pod("
metadata:
  name: agent-a
  namespace: ns
  uid: pod-a
  labels: {app: agent, component: agent, controller-revision-hash: h1, pod-template-generation: '2'}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: old-uid, controller: true}]
spec:
  nodeName: n1
  containers: [{name: c, image: 'agent:1'}]
status: {phase: Running}
")]
    }

    fn orphan_plan(ds: &DaemonSet) -> Plan<OrphanPlan> {
        let plan = orphan::plan(&orphan::OrphanInput {
            ds,
            pods: &pods(),
            revisions: &[],
            claimers: &[],
            backup_path: Path::new("agent.backup.yaml"),
            backup_state: &BackupFileState::Absent,
            overrides: &Overrides::default(),
            new_name: Some("agent-v2"),
        });
        orphan::mutation_plan(ds, plan)
    }

    fn adopt_plan(manifest: &DaemonSet, same_name: bool) -> Plan<AdoptPlan> {
        let old = old_ds();
        let objects = NamespaceObjects {
            pods: pods(),
            revisions: Vec::new(),
            daemon_sets: vec![old.clone()],
            nodes: vec![node(
                "metadata: {name: n1}\nstatus: {allocatable: {pods: '110'}}",
            )],
        };
        let marker = adopted_from_value("agent", Some("old-uid"));
        let pred = Predecessor::from_live(&old, &objects.pods);
        let plan = adopt::plan(&adopt::PlanInput {
            manifest,
            defaulted: manifest,
            predecessor: Some(&pred),
            predecessor_source: "live",
            name_state: &NameState::Free,
            objects: &objects,
            overrides: &Overrides::default(),
            marker: &marker,
        });
        adopt::mutation_plan(manifest, &marker, plan, false, same_name)
    }

    fn body(req: &http::Request<Vec<u8>>) -> Value {
        serde_json::from_slice(req.body()).unwrap()
    }

    /// The orphan plan's one mutation: DELETE of exactly the object read, its preconditions
    /// {uid, resourceVersion}, propagationPolicy=Orphan, dryRun=All only for the dry run.
    #[test]
    fn the_orphan_plan_sends_one_preconditioned_orphaning_delete() {
        let plan = orphan_plan(&old_ds());
        assert_eq!(plan.mutations.len(), 1);
        assert_eq!(plan.checks, plan.report.checks);
        for dry_run in [true, false] {
            let req = plan.mutations[0].request(dry_run).unwrap();
            assert_eq!(req.method(), http::Method::DELETE);
            assert_eq!(req.uri().path(), format!("{PATH}/agent"));
            let mut expected = json!({
                "propagationPolicy": "Orphan",
                "preconditions": {"uid": "old-uid", "resourceVersion": "4711"},
            });
            if dry_run {
                expected["dryRun"] = json!(["All"]);
            }
            assert_eq!(body(&req), expected, "dry_run={dry_run}");
        }
    }

    /// The adopt plan's one mutation: POST of the manifest with the adopted-from marker and the
    /// template generation the analysis decided, as kubectl-ds's field manager.
    #[test]
    fn the_adopt_plan_sends_the_create_with_marker_and_generation() {
        let manifest = new_ds("agent-v2");
        let plan = adopt_plan(&manifest, false);
        assert_eq!(plan.checks, plan.report.analysis.checks);
        let [Mutation::Create(ds)] = plan.mutations.as_slice() else {
            panic!("{:?}", plan.mutations)
        };
        for dry_run in [true, false] {
            let req = plan.mutations[0].request(dry_run).unwrap();
            assert_eq!(req.method(), http::Method::POST);
            assert_eq!(req.uri().path(), PATH);
            let query = req.uri().query().unwrap_or("");
            assert!(query.contains("fieldManager=kubectl-ds"), "{query}");
            assert_eq!(query.contains("dryRun=All"), dry_run, "{query}");
            let sent = body(&req);
            assert_eq!(sent, serde_json::to_value(ds).unwrap());
            assert_eq!(sent["metadata"]["name"], "agent-v2");
            assert_eq!(
                sent["metadata"]["annotations"][ADOPTED_FROM_ANNOTATION],
                "agent/old-uid"
            );
            let generation = plan.report.analysis.template_generation.to_string();
            assert_eq!(
                sent["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
                generation.as_str()
            );
            assert!(sent.get("status").is_none());
        }
    }

    /// `migrate` = the orphan plan then the adopt plan: both plans' checks in order, the delete
    /// before the create; in place (same name) the create goes with generateName.
    #[test]
    fn the_migrate_plan_is_the_orphan_plan_then_the_adopt_plan() {
        let old = old_ds();
        for (name, same_name) in [("agent-v2", false), ("agent", true)] {
            let orphan = orphan_plan(&old);
            let adopt = adopt_plan(&new_ds(name), same_name);
            let orphan_checks: Vec<CheckCode> = orphan.checks.iter().map(|c| c.code).collect();
            let adopt_checks: Vec<CheckCode> = adopt.checks.iter().map(|c| c.code).collect();
            let plan = orphan.then(adopt, |o, a| (o, a));
            let codes: Vec<CheckCode> = plan.checks.iter().map(|c| c.code).collect();
            assert_eq!(codes, [orphan_checks, adopt_checks].concat());
            let reqs: Vec<_> = plan
                .mutations
                .iter()
                .map(|m| m.request(true).unwrap())
                .collect();
            let methods: Vec<_> = reqs.iter().map(|r| r.method().clone()).collect();
            assert_eq!(methods, [http::Method::DELETE, http::Method::POST]);
            assert_eq!(body(&reqs[0])["preconditions"]["uid"], "old-uid");
            let created = body(&reqs[1]);
            if same_name {
                assert_eq!(created["metadata"]["generateName"], "agent-");
                assert!(created["metadata"].get("name").is_none(), "{created}");
            } else {
                assert_eq!(created["metadata"]["name"], "agent-v2");
                assert!(created["metadata"].get("generateName").is_none());
            }
        }
    }

    /// A resumed run whose orphaning delete an earlier run already sent (the DaemonSet carries
    /// a deletionTimestamp, and may be gone by the time this run looks again, once the garbage
    /// collector orphaned its pods): the server dry run before acting leaves that delete out
    /// (it is not sent again) and dry-runs the rest.
    #[tokio::test]
    async fn a_delete_already_under_way_is_not_dry_run_again() {
        use crate::cluster::mock::{self, Reply};
        let mut deleting = old_ds();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let mut stored = serde_json::to_value(new_ds("agent-v2")).unwrap();
        stored["metadata"]["uid"] = json!("new-uid");
        let (url, seen) = mock::serve(vec![Reply::json(201, stored)]).await;
        let ctx = test_ctx(&url);
        let mutations = vec![
            orphan_plan(&deleting).mutations.remove(0),
            Mutation::Create(new_ds("agent-v2")),
        ];
        dry_run_before_acting(&ctx, &mutations).await.unwrap();
        let lines: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.line.clone())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("POST ") && lines[0].contains("dryRun=All"),
            "{lines:?}"
        );

        // Without the deletionTimestamp the delete is dry-run: its re-read finds the
        // DaemonSet gone, and the run is refused before anything is sent.
        let (url, seen) = mock::serve(vec![Reply::status(404, "NotFound")]).await;
        let ctx = test_ctx(&url);
        let mutations = vec![orphan_plan(&old_ds()).mutations.remove(0)];
        let err = dry_run_before_acting(&ctx, &mutations).await.unwrap_err();
        assert!(err.to_string().contains("deleted or replaced"), "{err}");
        assert!(seen.lock().unwrap()[0].line.starts_with("GET "));
    }

    /// Over the wire (a scripted server, the client kubectl-ds builds): the executor sends the
    /// exact request [`Mutation::request`] describes, a 429 is sent again (the retry policy),
    /// and the answers are read: a DaemonSet marked for deletion, a Status (deleted at once),
    /// a 409 (a precondition failed: an answer, not an error), the created object.
    #[tokio::test]
    async fn the_executor_sends_the_planned_requests_and_reads_the_answers() {
        use crate::cluster::mock::{self, Reply};
        let delete = orphan_plan(&old_ds()).mutations.remove(0);
        let create = adopt_plan(&new_ds("agent-v2"), false).mutations.remove(0);
        let mut marked = serde_json::to_value(old_ds()).unwrap();
        marked["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        marked["metadata"]["finalizers"] = json!(["orphan"]);
        let mut stored = serde_json::to_value(new_ds("agent-v2")).unwrap();
        stored["metadata"]["uid"] = json!("new-uid");
        let (url, seen) = mock::serve(vec![
            Reply::status(429, "TooManyRequests").header("Retry-After", "0"),
            Reply::json(200, marked),
            Reply::json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            Reply::status(409, "Conflict"),
            Reply::json(201, stored),
        ])
        .await;
        let client = mock::client(&url);
        let sent = send_with(&client, &delete, true).await.unwrap();
        assert!(
            matches!(&sent, Sent::Delete(DeleteOutcome::Accepted(ds)) if ds.metadata.deletion_timestamp.is_some()),
            "{sent:?}"
        );
        let sent = send_with(&client, &delete, false).await.unwrap();
        assert!(
            matches!(sent, Sent::Delete(DeleteOutcome::Deleted)),
            "{sent:?}"
        );
        let sent = send_with(&client, &delete, false).await.unwrap();
        assert!(
            matches!(&sent, Sent::Delete(DeleteOutcome::Conflict(m)) if m == "scripted 409"),
            "{sent:?}"
        );
        let sent = send_with(&client, &create, false).await.unwrap();
        assert!(
            matches!(&sent, Sent::Created(ds) if ds.metadata.uid.as_deref() == Some("new-uid")),
            "{sent:?}"
        );
        let seen = seen.lock().unwrap().clone();
        let expected = [
            delete.request(true).unwrap(),
            delete.request(true).unwrap(),
            delete.request(false).unwrap(),
            delete.request(false).unwrap(),
            create.request(false).unwrap(),
        ];
        assert_eq!(seen.len(), expected.len(), "{seen:?}");
        for (got, want) in seen.iter().zip(&expected) {
            assert_eq!(got.line, format!("{} {}", want.method(), want.uri()));
            let got_body: Value = serde_json::from_str(&got.body).unwrap();
            assert_eq!(got_body, body(want), "{}", got.line);
        }
        // The DELETE bodies on the wire: dryRun only on the dry run.
        let first: Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(first["dryRun"], json!(["All"]));
        assert_eq!(first["propagationPolicy"], "Orphan");
        assert_eq!(
            first["preconditions"],
            json!({"uid": "old-uid", "resourceVersion": "4711"})
        );
        let third: Value = serde_json::from_str(&seen[2].body).unwrap();
        assert!(third.get("dryRun").is_none(), "{third}");
        assert!(!seen[4].line.contains("dryRun"), "{}", seen[4].line);
    }

    /// A report for the executor tests.
    #[derive(Debug, Default, Serialize)]
    struct TestReport {
        server_dry_run: Vec<ServerDryRun>,
    }

    impl Report for TestReport {
        fn server_dry_run(&mut self) -> &mut Vec<ServerDryRun> {
            &mut self.server_dry_run
        }
    }

    /// Steps that only record when the executor calls them.
    #[derive(Default)]
    struct Recorded(Vec<String>);

    fn kind(m: &Mutation) -> &'static str {
        match m {
            Mutation::OrphanDelete(_) => "delete",
            Mutation::Create(_) => "create",
        }
    }

    impl Steps<TestReport> for Recorded {
        async fn before(
            &mut self,
            _: &Ctx<'_>,
            m: &Mutation,
            _: &mut TestReport,
        ) -> Result<Option<Mutation>> {
            self.0.push(format!("before {}", kind(m)));
            Ok(Some(m.clone()))
        }

        async fn after(&mut self, _: &Ctx<'_>, acted: Acted, _: &mut TestReport) -> Result<()> {
            self.0.push(match acted {
                Acted::Deleted { object, .. } => format!(
                    "deleted rv {}",
                    object.metadata.resource_version.unwrap_or_default()
                ),
                Acted::Created(ds) => format!("created {}", ds.metadata.uid.unwrap_or_default()),
            });
            Ok(())
        }

        async fn verify(&mut self, _: &Ctx<'_>, _: TestReport) -> Result<Exit> {
            self.0.push("verify".into());
            Ok(Exit::Ok)
        }
    }

    fn test_settings() -> crate::settings::Settings {
        crate::settings::Settings {
            global: crate::cli::GlobalFlags::default(),
            color: false,
            request_timeout: None,
            stdout_is_tty: false,
            interactive: false,
            #[cfg(any(debug_assertions, feature = "failpoints"))]
            failpoint: None,
            protobuf: false,
            command_line: "kubectl ds migrate agent -f new.yaml --yes".into(),
        }
    }

    /// A context acting with `--yes` against the scripted server at `url`, namespace `ns`.
    fn test_ctx(url: &str) -> Ctx<'static> {
        test_ctx_with(url, true)
    }

    /// The same, with or without `--yes` (no terminal to ask on).
    fn test_ctx_with(url: &str, yes: bool) -> Ctx<'static> {
        let settings: &'static _ = Box::leak(Box::new(test_settings()));
        let flags = crate::cli::MutationFlags {
            yes,
            dry_run: crate::cli::DryRun::None,
            timeout: "1s".into(),
            output: crate::cli::Output::Table,
        };
        let cluster = crate::cluster::client::Cluster::new(
            crate::cluster::mock::client(url),
            "ns".into(),
            false,
        );
        Ctx::new(cluster, settings, &flags).unwrap()
    }

    /// A run that finds its DaemonSet gone while another run holds its lease (that run deleted
    /// it mid-way) says so instead of "not found"; an expired lease says nothing.
    #[tokio::test]
    async fn a_daemon_set_gone_under_a_held_lease_is_reported_as_another_run() {
        use crate::cluster::mock::{self, Reply};
        let held = |renewed: k8s_openapi::jiff::Timestamp| {
            let mut l = lease_json();
            l["spec"]["holderIdentity"] = json!("kubectl-ds:other-host:4242:ab12");
            l["spec"]["renewTime"] = serde_json::to_value(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renewed),
            )
            .unwrap();
            l
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let (url, seen) = mock::serve(vec![
            Reply::json(200, held(now)),
            Reply::json(
                200,
                held(now - k8s_openapi::jiff::SignedDuration::from_secs(31)),
            ),
        ])
        .await;
        let ctx = test_ctx(&url);
        let err = super::super::lock::held_by_another_run(&ctx, "agent")
            .await
            .expect("held");
        assert_eq!(err.exit_code(), Exit::Refused, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("is being changed by another run")
                && text.contains("held by kubectl-ds on host other-host (pid 4242)"),
            "{text}"
        );
        assert!(super::super::lock::held_by_another_run(&ctx, "agent")
            .await
            .is_none());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|s| s.line.starts_with("GET ")), "{seen:?}");
    }

    /// `migrate agent -f agent-v2.yaml --yes` against the scripted server at `url`: the
    /// orphan plan then the adopt plan, run by the executor with recording steps.
    async fn run_migrate_plan(url: &str) -> (Result<Exit>, Vec<String>) {
        run_migrate_plan_with(url, true).await
    }

    async fn run_migrate_plan_with(url: &str, yes: bool) -> (Result<Exit>, Vec<String>) {
        let ctx = test_ctx_with(url, yes);
        let plan = orphan_plan(&old_ds()).then(adopt_plan(&new_ds("agent-v2"), false), |_, _| {
            TestReport::default()
        });
        assert_eq!(plan.lock.as_deref(), Some("agent"));
        let mut steps = Recorded::default();
        let out = execute(&ctx, plan, "migrate", &mut steps).await;
        (out, steps.0)
    }

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

    fn lease_json() -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kubectl-ds-migrate-agent", "namespace": "ns",
                "uid": "lease-uid", "resourceVersion": "9"},
            "spec": {"holderIdentity": "kubectl-ds:test", "leaseDurationSeconds": 30}
        })
    }

    fn with_rv(rv: &str) -> Value {
        let mut v = serde_json::to_value(old_ds()).unwrap();
        v["metadata"]["resourceVersion"] = json!(rv);
        v
    }

    fn success() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})
    }

    /// Each request as `METHOD path dryRun` (the delete's dryRun and preconditions travel in
    /// its body, a create's dryRun in its query).
    fn summary(seen: &[crate::cluster::mock::Seen]) -> Vec<String> {
        seen.iter()
            .map(|s| {
                let body: Value = serde_json::from_str(&s.body).unwrap_or(Value::Null);
                let (line, query) = s.line.split_once('?').unwrap_or((&s.line, ""));
                let dry = body["dryRun"] == json!(["All"]) || query.contains("dryRun=All");
                let rv = body["preconditions"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("");
                format!(
                    "{line}{}{}",
                    if dry { " dry" } else { "" },
                    if rv.is_empty() {
                        String::new()
                    } else {
                        format!(" rv={rv}")
                    }
                )
            })
            .collect()
    }

    /// With --yes: the lease, created before anything else is sent; every mutation's dry run
    /// (dryRun=All) before anything real; the delete re-reads the DaemonSet right before
    /// it is sent and is conditioned on that read (a 409 reads and deletes again); the steps
    /// around each mutation; the verification; the lease deleted at the end.
    #[tokio::test]
    async fn with_yes_the_lease_then_the_dry_runs_then_the_mutations_then_the_release() {
        use crate::cluster::mock::{self, Reply};
        let mut stored = serde_json::to_value(new_ds("agent-v2")).unwrap();
        stored["metadata"]["uid"] = json!("new-uid");
        let (url, seen) = mock::serve(vec![
            Reply::status(404, "NotFound"),
            Reply::json(201, lease_json()),
            Reply::json(200, with_rv("4711")),
            Reply::json(200, with_rv("4711")),
            Reply::json(201, stored.clone()),
            Reply::json(200, with_rv("4712")),
            Reply::status(409, "Conflict"),
            Reply::json(200, with_rv("4713")),
            Reply::json(200, success()),
            Reply::json(201, stored),
            Reply::json(200, success()),
        ])
        .await;
        let (out, steps) = run_migrate_plan(&url).await;
        assert_eq!(out.unwrap(), Exit::Ok);
        let ds = format!("{PATH}/agent");
        let lease = format!("{LEASE}/kubectl-ds-migrate-agent");
        assert_eq!(
            summary(&seen.lock().unwrap()),
            [
                format!("GET {lease}"),
                format!("POST {LEASE}"),
                format!("GET {ds}"),
                format!("DELETE {ds} dry rv=4711"),
                format!("POST {PATH} dry"),
                format!("GET {ds}"),
                format!("DELETE {ds} rv=4712"),
                format!("GET {ds}"),
                format!("DELETE {ds} rv=4713"),
                format!("POST {PATH}"),
                format!("DELETE {lease} rv=9"),
            ]
        );
        assert_eq!(
            steps,
            [
                "before delete",
                "deleted rv 4713",
                "before create",
                "created new-uid",
                "verify"
            ]
        );
    }

    /// A mutation the apiserver refuses for real (after its dry run passed) ends the run with
    /// its error, and the lease is still deleted.
    #[tokio::test]
    async fn the_lease_is_released_when_a_mutation_fails() {
        use crate::cluster::mock::{self, Reply};
        let stored = serde_json::to_value(new_ds("agent-v2")).unwrap();
        let (url, seen) = mock::serve(vec![
            Reply::status(404, "NotFound"),
            Reply::json(201, lease_json()),
            Reply::json(200, with_rv("4711")),
            Reply::json(200, with_rv("4711")),
            Reply::json(201, stored),
            Reply::json(200, with_rv("4711")),
            Reply::json(200, success()),
            Reply::status(403, "Forbidden"),
            Reply::json(200, success()),
        ])
        .await;
        let (out, steps) = run_migrate_plan(&url).await;
        let err = out.unwrap_err();
        assert_eq!(err.exit_code(), Exit::Forbidden, "{err}");
        assert!(err.to_string().contains("scripted 403"), "{err}");
        let seen = summary(&seen.lock().unwrap());
        assert_eq!(seen.len(), 9, "{seen:#?}");
        assert_eq!(seen[7], format!("POST {PATH}"));
        assert_eq!(
            seen[8],
            format!("DELETE {LEASE}/kubectl-ds-migrate-agent rv=9")
        );
        assert_eq!(steps, ["before delete", "deleted rv 4711", "before create"]);
    }

    /// A dry run the apiserver rejects (here the create, 422) refuses the run with its
    /// message: no real mutation, no step run, the lease released.
    #[tokio::test]
    async fn a_rejected_dry_run_sends_no_real_mutation() {
        use crate::cluster::mock::{self, Reply};
        let (url, seen) = mock::serve(vec![
            Reply::status(404, "NotFound"),
            Reply::json(201, lease_json()),
            Reply::json(200, with_rv("4711")),
            Reply::json(200, with_rv("4711")),
            Reply::status(422, "Invalid"),
            Reply::json(200, success()),
        ])
        .await;
        let (out, steps) = run_migrate_plan(&url).await;
        let err = out.unwrap_err();
        assert_eq!(err.exit_code(), Exit::Forbidden, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("server dry run rejected, nothing was changed")
                && text.contains("scripted 422"),
            "{text}"
        );
        let ds = format!("{PATH}/agent");
        assert_eq!(
            summary(&seen.lock().unwrap()),
            [
                format!("GET {LEASE}/kubectl-ds-migrate-agent"),
                format!("POST {LEASE}"),
                format!("GET {ds}"),
                format!("DELETE {ds} dry rv=4711"),
                format!("POST {PATH} dry"),
                format!("DELETE {LEASE}/kubectl-ds-migrate-agent rv=9"),
            ]
        );
        assert!(steps.is_empty(), "{steps:?}");
    }

    /// Without --yes and without a terminal: the dry runs pass, the run is refused at the
    /// confirmation (exit 6), nothing real is sent and the lease is released.
    #[tokio::test]
    async fn not_confirmed_sends_no_real_mutation_and_releases_the_lease() {
        use crate::cluster::mock::{self, Reply};
        let stored = serde_json::to_value(new_ds("agent-v2")).unwrap();
        let (url, seen) = mock::serve(vec![
            Reply::status(404, "NotFound"),
            Reply::json(201, lease_json()),
            Reply::json(200, with_rv("4711")),
            Reply::json(200, with_rv("4711")),
            Reply::json(201, stored),
            Reply::json(200, success()),
        ])
        .await;
        let (out, steps) = run_migrate_plan_with(&url, false).await;
        let err = out.unwrap_err();
        assert_eq!(err.exit_code(), Exit::Refused, "{err}");
        assert!(err.to_string().contains("not confirmed"), "{err}");
        let seen = summary(&seen.lock().unwrap());
        assert_eq!(seen.len(), 6, "{seen:#?}");
        assert!(
            seen[2..5]
                .iter()
                .all(|l| l.starts_with("GET ") || l.contains(" dry")),
            "{seen:#?}"
        );
        assert_eq!(
            seen[5],
            format!("DELETE {LEASE}/kubectl-ds-migrate-agent rv=9")
        );
        assert!(steps.is_empty(), "{steps:?}");
    }

    /// A resumed adoption (the DaemonSet exists from an earlier run) sends nothing.
    #[test]
    fn a_resumed_adopt_plan_has_no_mutation() {
        let manifest = new_ds("agent-v2");
        let mut plan = adopt_plan(&manifest, false);
        assert_eq!(plan.mutations.len(), 1);
        let report = plan.report.clone();
        plan = adopt::mutation_plan(&manifest, "agent/old-uid", report, true, false);
        assert!(plan.mutations.is_empty());
    }
}
