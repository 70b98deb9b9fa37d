//! Mutations as data: each workflow returns a [`Plan`] — its report, its checks and the exact
//! [`Mutation`]s it would send — and one gate runs the part every workflow shares: refuse when
//! a check blocks, stop after the plan (`--dry-run`), send every mutation with dryRun=All
//! (`--dry-run=server`), ask for confirmation. `migrate`'s plan is the orphan plan followed by
//! the adopt plan ([`Plan::then`]). Each mutation's request (method, path, query, body with its
//! preconditions, propagationPolicy and dryRun) is built in one place, [`Mutation::request`],
//! from the same options the cluster layer sends, and [`send`] is the one place every
//! workflow mutation goes out (dry run or not, through the client's retry policy). What is
//! still the workflows' own: when to act (the delete re-reads its preconditions right before it
//! is sent and retries a 409; migrate's create waits for the orphaning), waiting and verifying.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Serialize;

use super::report::{AdoptReport, MigrateReport, OrphanReport, ServerDryRun};
use super::{adopt, orphan, refuse_if_blocked, Ctx, Mode};
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
        }
    }

    /// The same checks and mutations with the report made into `f(report)`.
    pub fn map<T>(self, f: impl FnOnce(R) -> T) -> Plan<T> {
        Plan {
            report: f(self.report),
            checks: self.checks,
            mutations: self.mutations,
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

/// What the gate decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Confirmed: act now.
    Act,
    /// The run is over (plan printed, or server dry run done) with this exit code.
    Done(Exit),
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

/// Sends the orphaning delete of `ds` (its preconditions are `ds`'s uid and resourceVersion).
pub async fn send_delete(ctx: &Ctx<'_>, ds: &DaemonSet, dry_run: bool) -> Result<DeleteOutcome> {
    match send(ctx, &Mutation::OrphanDelete(ds.clone()), dry_run).await? {
        Sent::Delete(outcome) => Ok(outcome),
        other => Err(Error::Io(format!(
            "unexpected answer to a delete: {other:?}"
        ))),
    }
}

/// Sends the create of `ds`; the object as stored (or, for a dry run, as it would be).
pub async fn send_create(ctx: &Ctx<'_>, ds: &DaemonSet, dry_run: bool) -> Result<DaemonSet> {
    match send(ctx, &Mutation::Create(ds.clone()), dry_run).await? {
        Sent::Created(created) => Ok(*created),
        other => Err(Error::Io(format!(
            "unexpected answer to a create: {other:?}"
        ))),
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

/// Refuse on a block -> plan only -> server dry run of every mutation -> confirm. On a refusal
/// the report is still printed (`-o json`) before the error.
pub async fn gate<R: Report>(ctx: &Ctx<'_>, plan: &mut Plan<R>, what: &str) -> Result<Gate> {
    let Plan {
        report,
        checks,
        mutations,
    } = plan;
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

    fn pods() -> Vec<k8s_openapi::api::core::v1::Pod> {
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
