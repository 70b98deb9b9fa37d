//! `kubectl ds rollout-preview` against the real control plane: preview a change, apply it for
//! real (kubectl apply --server-side), and compare node by node what the real DaemonSet
//! controller did with the prediction. The JSON is parsed into strict structs, so a schema
//! change fails here.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{kubeconfig, server_version, wait_for, NodeSpec, Output, TestEnv, TEST_LABEL};

// ---- the JSON schema (kubectl-ds/v1 RolloutPreview), strictly ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Preview {
    api_version: String,
    kind: String,
    daemon_set: DaemonSetChange,
    template_changed: bool,
    matching_revision: Option<String>,
    matching_revision_number: Option<i64>,
    rollback: bool,
    new_revision_hash: Option<String>,
    new_revision: bool,
    duplicate_revisions: Vec<String>,
    rules: Rules,
    strategy: Strategy,
    waves: usize,
    would_roll: bool,
    counts: Counts,
    pub(crate) notes: Vec<String>,
    nodes: Vec<NodeItem>,
    dry_run: DryRun,
    /// How the pod checked for fit was obtained (see e2e_admission).
    pub(crate) admission: Option<Value>,
    template_diff: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rules {
    server_version: Option<String>,
    template_generation_counts: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DryRun {
    method: String,
    field_manager: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // every field is part of the schema; not every test reads each
struct DaemonSetChange {
    namespace: String,
    name: String,
    uid: String,
    resource_version: Option<String>,
    current_revision: Option<String>,
    current_revision_number: Option<i64>,
    generation: Option<i64>,
    new_generation: Option<i64>,
    template_generation: Option<i64>,
    new_template_generation: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Strategy {
    #[serde(rename = "type")]
    type_: String,
    desired_before: usize,
    desired: usize,
    max_unavailable: usize,
    max_surge: usize,
    max_unavailable_spec: Option<String>,
    max_surge_spec: Option<String>,
    min_ready_seconds: i32,
    surge: bool,
    surge_feasible: Option<bool>,
    unavailable_now: usize,
    wave_sizes: Vec<usize>,
    replaced_first: Vec<String>,
    replaced_when_deleted: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Counts {
    blocked: usize,
    delete: usize,
    create: usize,
    restart: usize,
    keep: usize,
    unchanged: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct NodeItem {
    name: String,
    pub(crate) action: String,
    pod: Option<String>,
    pod_revision: Option<String>,
    replaced_first: bool,
    pub(crate) reasons: Vec<Value>,
}

impl Preview {
    /// The predicted action of each of the test's nodes.
    pub(crate) fn actions(&self, nodes: &[String]) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .filter(|n| nodes.contains(&n.name))
            .map(|n| (n.name.clone(), n.action.clone()))
            .collect()
    }

    pub(crate) fn node(&self, name: &str) -> &NodeItem {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }
}

// ---- helpers ----

/// Writes a manifest to a temporary file (JSON is YAML).
pub(crate) fn manifest_file(manifest: &Value) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(serde_json::to_string_pretty(manifest).unwrap().as_bytes())
        .unwrap();
    f
}

/// `rollout-preview agent -f MANIFEST --exit-code`: 0 if nothing would roll, 1 if something would.
fn preview_exit_code(env: &TestEnv, manifest: &Value) -> Output {
    let f = manifest_file(manifest);
    env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        f.path().to_str().unwrap(),
        "--exit-code",
    ])
}

/// Runs the real kubectl against the test cluster.
pub(crate) fn kubectl(args: &[&str]) -> Output {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .output()
        .expect("run kubectl");
    Output::from(out)
}

/// How the operator applies manifests.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    ServerSide,
    ClientSide,
}

/// Applies a manifest for real, as an operator would.
fn apply_via(env: &TestEnv, manifest: &Value, via: Via) {
    let f = manifest_file(manifest);
    let mut args = vec!["apply", "-n", &env.ns, "-f", f.path().to_str().unwrap()];
    if via == Via::ServerSide {
        args.extend(["--server-side", "--force-conflicts"]);
    }
    let out = kubectl(&args);
    assert_eq!(out.code, 0, "kubectl apply: {}", out.stderr);
}

pub(crate) fn apply(env: &TestEnv, manifest: &Value) {
    apply_via(env, manifest, Via::ServerSide);
}

/// `rollout-preview agent ARGS -o json`, parsed strictly.
pub(crate) fn preview(env: &TestEnv, args: &[&str]) -> Preview {
    let mut all = vec!["rollout-preview", "agent"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let out = env.run(&all);
    assert_eq!(out.code, 0, "rollout-preview failed: {}", out.stderr);
    let p: Preview = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "preview JSON does not match the schema: {e}\n{}",
            out.stdout
        )
    });
    assert_eq!(
        (p.api_version.as_str(), p.kind.as_str()),
        ("kubectl-ds/v1", "RolloutPreview")
    );
    for n in &p.nodes {
        for r in &n.reasons {
            assert!(r["code"].is_string() && r["message"].is_string(), "{r}");
        }
    }
    p
}

pub(crate) fn preview_file(env: &TestEnv, manifest: &Value) -> Preview {
    let f = manifest_file(manifest);
    preview(env, &["-f", f.path().to_str().unwrap()])
}

/// The pod each node runs: (uid, scheduled, revision hash), terminating pods left out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) uid: String,
    scheduled: bool,
    hash: String,
}

pub(crate) fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone() {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms[0].match_fields.as_ref()?[0]
        .values
        .as_ref()?
        .first()
        .cloned()
}

pub(crate) async fn pods_by_node(env: &TestEnv) -> BTreeMap<String, Seen> {
    env.pods("agent")
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = target_node(&p)?;
            let seen = Seen {
                uid: p.metadata.uid.clone().unwrap_or_default(),
                scheduled: p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
                hash: p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("controller-revision-hash").cloned())
                    .unwrap_or_default(),
            };
            Some((node, seen))
        })
        .collect()
}
/// Applies `manifest` for real, waits until the controller settles at (desired, available), and
/// asserts that what happened on each node is what the preview `p` predicted; returns the pods
/// after.
async fn apply_and_compare(
    env: &TestEnv,
    manifest: &Value,
    (desired, available): (i32, i32),
    nodes: &[String],
    before: &BTreeMap<String, Seen>,
    p: &Preview,
) -> BTreeMap<String, Seen> {
    apply(env, manifest);
    wait_settled(env, desired, available).await;
    let after = pods_by_node(env).await;
    assert_eq!(observed(nodes, before, &after), p.actions(nodes));
    after
}

/// What the real controller did on each node, from the pods before and after.
pub(crate) fn observed(
    nodes: &[String],
    before: &BTreeMap<String, Seen>,
    after: &BTreeMap<String, Seen>,
) -> BTreeMap<String, String> {
    nodes
        .iter()
        .map(|n| {
            let action = match (before.get(n), after.get(n)) {
                (None, None) => "Unchanged",
                (Some(b), Some(a)) if a.uid == b.uid => "Keep",
                (_, Some(a)) if !a.scheduled => "Blocked",
                (Some(_), Some(_)) => "Restart",
                (None, Some(_)) => "Create",
                (Some(_), None) => "Delete",
            };
            (n.clone(), action.to_string())
        })
        .collect()
}

/// Waits until the controller has processed the latest generation, `desired` pods are up to
/// date and `available` of them available, and no pod is terminating.
pub(crate) async fn wait_settled(env: &TestEnv, desired: i32, available: i32) {
    let api = env.ds_api();
    wait_for(
        Duration::from_secs(120),
        &format!("rollout settled at {desired} desired, {available} available"),
        || async {
            let ds = api.get("agent").await.unwrap();
            let st = ds.status.unwrap_or_default();
            let pods = env.pods("agent").await;
            ds.metadata.generation == st.observed_generation
                && st.desired_number_scheduled == desired
                && st.updated_number_scheduled == Some(desired)
                && st.number_available == Some(available)
                && pods.len() == desired as usize
                && pods.iter().all(|p| p.metadata.deletion_timestamp.is_none())
        },
    )
    .await;
}

/// The DaemonSet's resourceVersion and its ControllerRevisions (name, resourceVersion).
async fn state(env: &TestEnv) -> (Option<String>, Vec<(String, String)>) {
    let ds = env.ds_api().get("agent").await.unwrap();
    let revs = Api::<ControllerRevision>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut revs: Vec<(String, String)> = revs
        .items
        .into_iter()
        .map(|r| {
            (
                r.metadata.name.unwrap_or_default(),
                r.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect();
    revs.sort();
    (ds.metadata.resource_version, revs)
}

fn image(manifest: &mut Value, image: &str) {
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
}

// ---- scenarios ----

#[tokio::test]
async fn image_change_restarts_every_node_and_changes_nothing() {
    let mut env = TestEnv::new("pv-image").await;
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 3).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");

    let before_state = state(&env).await;
    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    let by_image = preview(&env, &["--image", "agent=registry.example/agent:2"]);
    assert!(p.template_changed && p.would_roll && !p.rollback);
    assert_eq!(p.matching_revision, None);
    assert_eq!(p.new_revision_hash, None);
    assert_eq!(
        (p.dry_run.method.as_str(), p.dry_run.field_manager.as_str()),
        ("ServerSideApply", "kubectl-ds"),
        "no applier before: apply as kubectl-ds"
    );
    assert_eq!(by_image.dry_run.method, "StrategicMergePatch");
    assert_eq!(p.strategy.max_unavailable, 1);
    assert_eq!(p.strategy.wave_sizes, vec![1, 1, 1]);
    assert_eq!(p.waves, 3);
    assert!(
        p.template_diff
            .contains("-  - image: registry.example/agent:1\n+  - image: registry.example/agent:2"),
        "{}",
        p.template_diff
    );
    assert_eq!(
        p.actions(&nodes),
        by_image.actions(&nodes),
        "-f and --image agree"
    );
    assert_eq!(
        p.daemon_set.template_generation.map(|g| g + 1),
        p.daemon_set.new_template_generation
    );

    // The table, YAML and --exit-code variants; none of them changes anything.
    let f = manifest_file(&v2);
    let path = f.path().to_str().unwrap();
    let table = env.run(&["rollout-preview", "agent", "-f", path]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("NODE") && table.stdout.contains("Restart"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("+++ new spec.template"));
    let yaml = env.run(&["rollout-preview", "agent", "-f", path, "-o", "yaml"]);
    assert!(
        yaml.stdout.contains("kind: RolloutPreview"),
        "{}",
        yaml.stdout
    );
    let code = env.run(&["rollout-preview", "agent", "-f", path, "--exit-code"]);
    assert_eq!(code.code, 1, "something would roll: {}", code.stderr);
    assert_eq!(
        state(&env).await,
        before_state,
        "resourceVersion and ControllerRevisions unchanged"
    );
    assert_eq!(pods_by_node(&env).await, before, "no pod touched");

    apply_and_compare(&env, &v2, (3, 3), &nodes, &before, &p).await;
    assert!(nodes.iter().all(|n| p.actions(&nodes)[n] == "Restart"));
}

#[tokio::test]
async fn metadata_only_change_rolls_nothing() {
    let mut env = TestEnv::new("pv-meta").await;
    let mut nodes = Vec::new();
    for n in ["a", "b"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    v2["metadata"]["labels"] = json!({"team": "infra"});
    v2["metadata"]["annotations"] = json!({"note": "metadata only"});
    v2["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}});
    v2["spec"]["minReadySeconds"] = json!(1);
    v2["spec"]["revisionHistoryLimit"] = json!(3);

    let before = pods_by_node(&env).await;
    let (_, revs_before) = state(&env).await;
    let p = preview_file(&env, &v2);
    assert!(!p.template_changed && !p.would_roll && !p.rollback);
    assert_eq!(p.waves, 0);
    assert_eq!(p.template_diff, "");
    assert_eq!(
        p.daemon_set.template_generation,
        p.daemon_set.new_template_generation
    );
    assert_ne!(
        p.daemon_set.generation, p.daemon_set.new_generation,
        "the spec does change"
    );
    assert_eq!(p.matching_revision, p.daemon_set.current_revision);
    assert_eq!(p.strategy.max_unavailable, 1, "50% of 2");
    assert!(
        p.notes[0].contains("the pod template does not change"),
        "{:?}",
        p.notes
    );
    let code = preview_exit_code(&env, &v2);
    assert_eq!(code.code, 0, "nothing would roll: {}", code.stderr);

    apply(&env, &v2);
    wait_settled(&env, 2, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pods_by_node(&env).await;
    assert_eq!(observed(&nodes, &before, &after), p.actions(&nodes));
    assert!(p.actions(&nodes).values().all(|a| a == "Keep"));
    let (_, revs_after) = state(&env).await;
    let names = |r: &[(String, String)]| r.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&revs_after), names(&revs_before), "no new revision");
}

#[tokio::test]
async fn narrowed_node_selector_deletes() {
    let mut env = TestEnv::new("pv-narrow").await;
    let pool = NodeSpec {
        labels: vec![("pool", "x")],
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", pool.clone()).await,
        env.node("b", pool).await,
        env.node("c", NodeSpec::default()).await,
    ];
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 3).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["nodeSelector"] = json!({TEST_LABEL: env.ns, "pool": "x"});

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    assert_eq!(p.node(&nodes[2]).action, "Delete");
    assert_eq!(p.node(&nodes[2]).reasons[0]["code"], "NodeSelectorMismatch");
    assert_eq!((p.strategy.desired_before, p.strategy.desired), (3, 2));
    apply_and_compare(&env, &v2, (2, 2), &nodes, &before, &p).await;
    assert_eq!(p.actions(&nodes)[&nodes[0]], "Restart");
}

#[tokio::test]
async fn added_toleration_creates() {
    let mut env = TestEnv::new("pv-tol").await;
    let tainted = NodeSpec {
        taints: vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})],
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("b", NodeSpec::default()).await,
        env.node("t", tainted).await,
    ];
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]);

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    assert_eq!(p.node(&nodes[2]).action, "Create");
    assert_eq!((p.strategy.desired_before, p.strategy.desired), (2, 3));
    apply_and_compare(&env, &v2, (3, 3), &nodes, &before, &p).await;
    assert_eq!(p.counts.restart, 2);
}

#[tokio::test]
async fn rollback_keeps_pods_at_the_previous_revision_server_side_apply() {
    rollback(Via::ServerSide, "pv-back-ssa").await;
}

/// The same with client-side `kubectl apply`: the rollback manifest drops the annotation and
/// the toleration the bad version added, and only a three-way merge with the last-applied
/// manifest removes them (a server-side apply as a new manager would keep them).
#[tokio::test]
async fn rollback_keeps_pods_at_the_previous_revision_client_side_apply() {
    rollback(Via::ClientSide, "pv-back-csa").await;
}

async fn rollback(via: Via, test: &str) {
    let mut env = TestEnv::new(test).await;
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let v1 = env.daemon_set("agent", json!({}));
    apply_via(&env, &v1, via);
    env.wait_rolled_out("agent", 3).await;
    let v1_hash = pods_by_node(&env)
        .await
        .values()
        .next()
        .unwrap()
        .hash
        .clone();
    // A bad v2: its pods never become Ready, so the rolling update stalls after one node.
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");
    v2["spec"]["template"]["metadata"]["annotations"] = json!({"kubectl-ds.dev/sim": "notready"});
    v2["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "gpu", "operator": "Exists"}]);
    apply_via(&env, &v2, via);
    wait_for(
        Duration::from_secs(60),
        "rollout stalled on one node",
        || async {
            let pods = pods_by_node(&env).await;
            let ds = env.ds_api().get("agent").await.unwrap();
            let st = ds.status.unwrap_or_default();
            pods.len() == 3
                && pods.values().filter(|s| s.hash != v1_hash).count() == 1
                && env.pods("agent").await.len() == 3
                && ds.metadata.generation == st.observed_generation
                && st.updated_number_scheduled == Some(1)
        },
    )
    .await;
    let before = pods_by_node(&env).await;
    let stalled = before
        .iter()
        .find(|(_, s)| s.hash != v1_hash)
        .unwrap()
        .0
        .clone();

    let p = preview_file(&env, &v1);
    assert!(p.template_changed && p.rollback, "{:?}", p.notes);
    let expected = match via {
        Via::ServerSide => ("ServerSideApply", "kubectl"),
        Via::ClientSide => ("ClientSideApply", "kubectl-client-side-apply"),
    };
    assert_eq!(
        (p.dry_run.method.as_str(), p.dry_run.field_manager.as_str()),
        expected,
        "as the operator's own apply"
    );
    assert_eq!(p.matching_revision_number, Some(1));
    assert_eq!(p.new_revision_hash.as_deref(), Some(v1_hash.as_str()));
    assert_eq!(p.node(&stalled).action, "Restart");
    assert!(p.node(&stalled).replaced_first, "its pod is unavailable");
    assert_eq!(p.strategy.replaced_first, vec![stalled.clone()]);
    assert_eq!(p.counts.keep, 2);
    for removed in ["-    kubectl-ds.dev/sim: notready", "-  - key: gpu"] {
        assert!(p.template_diff.contains(removed), "{}", p.template_diff);
    }

    apply_via(&env, &v1, via);
    wait_settled(&env, 3, 3).await;
    let after = pods_by_node(&env).await;
    assert_eq!(observed(&nodes, &before, &after), p.actions(&nodes));
    assert!(
        after.values().all(|s| s.hash == v1_hash),
        "rolled back to revision 1's hash"
    );
}

#[tokio::test]
async fn on_delete_restarts_nothing_until_pods_are_deleted() {
    let mut env = TestEnv::new("pv-ondel").await;
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("b", NodeSpec::default()).await,
    ];
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    assert!(p.template_changed && !p.would_roll);
    assert_eq!(p.strategy.type_, "OnDelete");
    assert_eq!(p.waves, 0);
    assert_eq!(p.strategy.replaced_when_deleted.len(), 2);
    for n in &nodes {
        assert_eq!(p.node(n).reasons[0]["code"], "OutdatedRevision");
        assert_eq!(p.node(n).reasons[0]["onDelete"], true);
    }
    let code = preview_exit_code(&env, &v2);
    assert_eq!(code.code, 0, "{}", code.stderr);

    apply(&env, &v2);
    wait_for(
        Duration::from_secs(30),
        "OnDelete status caught up",
        || async {
            let ds = env.ds_api().get("agent").await.unwrap();
            let st = ds.status.unwrap_or_default();
            ds.metadata.generation == st.observed_generation
                && st.updated_number_scheduled.unwrap_or(0) == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pods_by_node(&env).await;
    assert_eq!(observed(&nodes, &before, &after), p.actions(&nodes));

    // What the preview named: a deleted pod comes back with the new template.
    let victim = p.strategy.replaced_when_deleted[0].clone();
    env.pod_api()
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "replacement with the new image",
        || async {
            let pods = env.pods("agent").await;
            pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
                && pods.iter().any(|p| {
                    p.spec.as_ref().unwrap().containers[0].image.as_deref()
                        == Some("registry.example/agent:2")
                })
        },
    )
    .await;
}

#[tokio::test]
async fn blocked_when_the_new_pod_does_not_fit() {
    let mut env = TestEnv::new("pv-block").await;
    let small = NodeSpec {
        cpu: Some("1"),
        taints: vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})],
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("small", small).await,
    ];
    // Another pod holds most of the small node's CPU.
    let hog: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hog", "namespace": env.ns},
        "spec": {"nodeName": nodes[1], "terminationGracePeriodSeconds": 0,
                 "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "c", "image": "hog", "resources": {"requests": {"cpu": "950m"}}}]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &hog)
        .await
        .unwrap();
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 2}});
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 1).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Exists"}]);
    v2["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "100m"}});

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    let blocked = p.node(&nodes[1]);
    assert_eq!(blocked.action, "Blocked");
    let r = &blocked.reasons[0];
    assert_eq!(
        (r["code"].as_str(), r["resource"].as_str()),
        (Some("InsufficientResources"), Some("cpu"))
    );
    assert_eq!(r["usedByOtherPods"], "950m");
    assert_eq!(p.node(&nodes[0]).action, "Restart");

    apply_and_compare(&env, &v2, (2, 1), &nodes, &before, &p).await;
}

#[tokio::test]
async fn bad_input_is_one_line_and_changes_nothing() {
    let mut env = TestEnv::new("pv-bad").await;
    env.node("a", NodeSpec::default()).await;
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 1).await;
    let before = state(&env).await;

    let refused = |args: &[&str], code: i32, wants: &[&str]| {
        let mut all = vec!["rollout-preview", "agent"];
        all.extend(args);
        let out = env.run(&all);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.starts_with("hint:"))
            .collect();
        assert_eq!(lines.len(), 1, "one error line: {:?}", out.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", out.stderr);
        for w in wants {
            assert!(
                out.stderr.contains(w),
                "{args:?}: {w:?} not in {:?}",
                out.stderr
            );
        }
        assert!(out.stdout.is_empty());
    };
    refused(
        &["-f", "/nonexistent/agent.yaml"],
        2,
        &["reading /nonexistent/agent.yaml"],
    );
    let mut bad = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    write!(
        bad,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n   labels: [x\n"
    )
    .unwrap();
    refused(
        &["-f", bad.path().to_str().unwrap()],
        2,
        &["not valid YAML", "line"],
    );
    let mut deployment = v1.clone();
    deployment["kind"] = json!("Deployment");
    let f = manifest_file(&deployment);
    refused(
        &["-f", f.path().to_str().unwrap()],
        2,
        &["expected a DaemonSet manifest, found Deployment"],
    );
    let mut renamed = v1.clone();
    renamed["metadata"]["name"] = json!("agent2");
    let f = manifest_file(&renamed);
    refused(
        &["-f", f.path().to_str().unwrap()],
        2,
        &[
            "is daemonset \"agent2\", not \"agent\"",
            "hint: ",
            "kubectl ds migrate",
        ],
    );
    let mut elsewhere = v1.clone();
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    let f = manifest_file(&elsewhere);
    refused(
        &["-f", f.path().to_str().unwrap()],
        2,
        &["namespace \"kube-system\"", "hint: pass -n kube-system"],
    );
    let mut selector = v1.clone();
    selector["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "tier": "node"}});
    selector["spec"]["template"]["metadata"]["labels"] = json!({"app": "agent", "tier": "node"});
    let f = manifest_file(&selector);
    refused(
        &["-f", f.path().to_str().unwrap()],
        2,
        &["spec.selector", "immutable", "kubectl ds migrate agent"],
    );
    refused(
        &["--image", "agnet=x:1"],
        2,
        &["no container \"agnet\"", "its containers: agent"],
    );
    refused(&["--image", "agent"], 2, &["CONTAINER=IMAGE"]);
    refused(&[], 2, &["-f FILE or --image"]);
    // The apiserver's own validation, through the dry run.
    let mut invalid = v1.clone();
    invalid["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let f = manifest_file(&invalid);
    refused(
        &["-f", f.path().to_str().unwrap()],
        2,
        &["the apiserver rejects it", "restartPolicy"],
    );
    let out = env.run(&["rollout-preview", "agnet", "--image", "agent=x:2"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("did you mean agent?"), "{}", out.stderr);

    assert_eq!(state(&env).await, before, "nothing changed");
}

/// Manifests are checked before any connection: with no kubeconfig at all, a bad manifest is
/// still a usage error (2), not a connection error (3).
#[test]
fn manifests_are_checked_before_connecting() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
            .args(args)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("HOME", "/nonexistent")
            .env("NO_COLOR", "1")
            .output()
            .expect("run kubectl-ds");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let deployment = manifest_file(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "agent"}
    }));
    let other = manifest_file(&json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "other"}
    }));
    for (args, wants) in [
        (
            vec!["-f", "/nonexistent/agent.yaml"],
            "reading /nonexistent/agent.yaml",
        ),
        (
            vec!["-f", deployment.path().to_str().unwrap()],
            "found Deployment",
        ),
        (vec!["-f", other.path().to_str().unwrap()], "not \"agent\""),
        (vec!["--image", "agent"], "CONTAINER=IMAGE"),
        (vec![], "-f FILE or --image"),
    ] {
        let mut all = vec!["rollout-preview", "agent"];
        all.extend(&args);
        let (code, stderr) = run(&all);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(wants),
            "{args:?}: {stderr}"
        );
    }
    let (code, stderr) = run(&["rollout-preview", "agent", "--image", "agent=x:2"]);
    assert_eq!(code, 3, "a good change needs the cluster: {stderr}");
}

/// Names of the DaemonSet's ControllerRevisions.
async fn revision_names(env: &TestEnv) -> Vec<String> {
    let (_, revs) = state(env).await;
    revs.into_iter().map(|(name, _)| name).collect()
}

/// A quantity re-spelled with the same meaning (`64Mi` re-applied as `"67108864"`): the
/// apiserver keeps templateGeneration (it compares semantically) but stores the new spelling,
/// so getPatch's bytes match no ControllerRevision and the controller creates a new one.
/// Whether the pods restart depends on the release: from 1.24 IsPodUpdated accepts their
/// pod-template-generation label (Keep); before, only the hash counts (Restart everywhere).
#[tokio::test]
async fn respelled_quantity_new_revision_and_restarts_by_server_version() {
    let mut env = TestEnv::new("pv-respell").await;
    let (minor, git_version) = server_version(&env.client).await;
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let mem = |q: &str| json!({"containers": [{"name": "agent", "image": "registry.example/agent:1", "resources": {"requests": {"memory": q}}}]});
    let v1 = env.daemon_set("agent", mem("64Mi"));
    apply(&env, &v1);
    env.wait_rolled_out("agent", 3).await;
    let v2 = env.daemon_set("agent", mem("67108864"));

    let before = pods_by_node(&env).await;
    let revs_before = revision_names(&env).await;
    assert_eq!(revs_before.len(), 1, "{revs_before:?}");
    let p = preview_file(&env, &v2);
    assert_eq!(
        p.rules.server_version.as_deref(),
        Some(git_version.as_str())
    );
    assert_eq!(p.rules.template_generation_counts, minor >= 24);
    assert!(
        !p.template_changed,
        "templateGeneration stays: {:?}",
        p.notes
    );
    assert_eq!(
        p.daemon_set.template_generation,
        p.daemon_set.new_template_generation
    );
    assert!(
        p.new_revision,
        "bytes differ: a new revision: {:?}",
        p.notes
    );
    assert_eq!(p.new_revision_hash, None);
    assert!(p.duplicate_revisions.is_empty());
    let want = if minor >= 24 { "Keep" } else { "Restart" };
    assert!(
        p.actions(&nodes).values().all(|a| a == want),
        "on {git_version} every node: {want}: {:?}",
        p.actions(&nodes)
    );
    assert_eq!(p.would_roll, minor < 24);
    assert!(
        p.notes[0].contains("bytes match no ControllerRevision"),
        "{:?}",
        p.notes
    );
    let table = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        manifest_file(&v2).path().to_str().unwrap(),
    ]);
    assert!(
        table
            .stdout
            .contains(&format!("Rules:     rules of Kubernetes {git_version}"))
            && table
                .stdout
                .contains("keeps its meaning (templateGeneration 1) but not its bytes"),
        "{}",
        table.stdout
    );

    apply(&env, &v2);
    let env_ref = &env;
    wait_for(
        Duration::from_secs(60),
        "a second ControllerRevision",
        || async move { revision_names(env_ref).await.len() == 2 },
    )
    .await;
    // The controller restarts (or not) in the sync that created the revision; the generation
    // does not move (the spec is semantically equal), so give it that sync before settling.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_settled(&env, 3, 3).await;
    let after = pods_by_node(&env).await;
    let revs_after = revision_names(&env).await;
    assert_eq!(
        revs_after.len() > revs_before.len(),
        p.new_revision,
        "the controller created a revision: {revs_before:?} -> {revs_after:?}"
    );
    assert_eq!(
        observed(&nodes, &before, &after),
        p.actions(&nodes),
        "on {git_version}"
    );
}

/// Two ControllerRevisions with the same bytes (update.go dedupCurHistories): rolling back to
/// that template, the controller keeps the higher revision, deletes the other and relabels
/// every pod with the kept hash, so no pod restarts (they keep running the template they run).
/// Before 1.23 the relabel is an UPDATE the controller's RBAC role forbids: every sync fails
/// and nothing happens at all.
#[tokio::test]
async fn duplicate_revisions_relabel_every_pod_instead_of_restarting() {
    let mut env = TestEnv::new("pv-dedup").await;
    let (minor, git_version) = server_version(&env.client).await;
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let v1 = env.daemon_set("agent", json!({}));
    apply(&env, &v1);
    env.wait_rolled_out("agent", 3).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");
    apply(&env, &v2);
    wait_settled(&env, 3, 3).await;
    let revisions = Api::<ControllerRevision>::namespaced(env.client.clone(), &env.ns);
    let all = revisions.list(&ListParams::default()).await.unwrap().items;
    let first = all.iter().find(|r| r.revision == 1).unwrap().clone();
    let first_name = first.metadata.name.clone().unwrap();
    // A copy of revision 1 under another name and a higher number, owned by the DaemonSet.
    let mut dup = first.clone();
    dup.metadata = serde_json::from_value(json!({
        "name": "agent-dup",
        "labels": {"app": "agent", "controller-revision-hash": "dup"},
        "ownerReferences": first.metadata.owner_references,
    }))
    .unwrap();
    dup.revision = 5;
    revisions
        .create(&PostParams::default(), &dup)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = pods_by_node(&env).await;
    assert_eq!(
        revision_names(&env).await.len(),
        3,
        "the controller leaves old duplicates"
    );

    let p = preview_file(&env, &v1);
    assert!(p.template_changed && p.rollback, "{:?}", p.notes);
    assert_eq!(p.duplicate_revisions, vec![first_name.clone()]);
    assert_eq!(p.new_revision_hash.as_deref(), Some("dup"));
    assert!(!p.new_revision);
    assert!(
        p.actions(&nodes).values().all(|a| a == "Keep"),
        "{git_version}: {:?}",
        p.actions(&nodes)
    );
    let stuck = p.notes.iter().any(|n| n.contains("every sync fails"));
    assert_eq!(stuck, minor < 23, "{:?}", p.notes);

    apply(&env, &v1);
    if stuck {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let ds = env.ds_api().get("agent").await.unwrap();
        assert_ne!(
            ds.metadata.generation,
            ds.status.unwrap().observed_generation,
            "{git_version}: the sync fails"
        );
        let after = pods_by_node(&env).await;
        assert_eq!(observed(&nodes, &before, &after), p.actions(&nodes));
        assert_eq!(after, before, "no pod touched, none relabelled");
        assert!(revision_names(&env).await.contains(&first_name));
        return;
    }
    let env_ref = &env;
    wait_for(
        Duration::from_secs(60),
        "pods relabelled to dup",
        || async move {
            let pods = pods_by_node(env_ref).await;
            pods.len() == 3 && pods.values().all(|s| s.hash == "dup")
        },
    )
    .await;
    wait_settled(&env, 3, 3).await;
    let after = pods_by_node(&env).await;
    assert_eq!(
        observed(&nodes, &before, &after),
        p.actions(&nodes),
        "on {git_version}"
    );
    assert!(
        !revision_names(&env).await.contains(&first_name),
        "the duplicate was deleted"
    );
}

// ---- issue 15: classes found by the differential tester (tests/it/difftest.rs) ----

/// Servers before 1.22 do not serve DaemonSet maxSurge (alpha in 1.21 behind a feature gate):
/// the field is dropped and `maxUnavailable: 0` is then refused. Returns true when a surge test
/// may go on; on such a server it asserts that refusal instead, which is what that release does.
async fn surge_served_or_refused(env: &TestEnv, manifest: &Value) -> bool {
    let (minor, version) = server_version(&env.client).await;
    if minor >= 22 {
        return true;
    }
    let f = manifest_file(manifest);
    let path = f.path().to_str().unwrap();
    let out = kubectl(&["apply", "-n", &env.ns, "--server-side", "-f", path]);
    assert_ne!(out.code, 0, "{version} accepted a surge strategy");
    assert!(
        out.stderr.contains("cannot be 0") || out.stderr.contains("maxSurge"),
        "{version}: {}",
        out.stderr
    );
    println!("{version}: no DaemonSet maxSurge, the surge strategy is refused (asserted)");
    false
}

/// Class 1: the new template stops tolerating a node's NoSchedule taint. The controller's
/// rolling update deletes the outdated pod there (within the budget) and manage() never
/// creates a new one (shouldRun false): Delete, not Blocked.
async fn untolerated_no_schedule(test: &str, strategy: Value, surge: bool) {
    let mut env = TestEnv::new(test).await;
    let tainted = NodeSpec {
        taints: vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})],
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("b", NodeSpec::default()).await,
        env.node("t", tainted).await,
    ];
    let mut v1 = env.daemon_set(
        "agent",
        json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}),
    );
    v1["spec"]["updateStrategy"] = strategy;
    if surge && !surge_served_or_refused(&env, &v1).await {
        return;
    }
    apply(&env, &v1);
    env.wait_rolled_out("agent", 3).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["tolerations"] = json!([]);

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    assert_eq!(p.strategy.surge, surge);
    let t = p.node(&nodes[2]);
    assert_eq!(t.action, "Delete", "{:?}", p.notes);
    let codes: Vec<&str> = t
        .reasons
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["UntoleratedTaint", "OutdatedRevision"]);
    assert_eq!((p.strategy.desired_before, p.strategy.desired), (3, 2));
    assert!(
        p.notes.iter().any(|n| n.contains("nothing replaces it")),
        "{:?}",
        p.notes
    );
    let code = preview_exit_code(&env, &v2);
    assert_eq!(code.code, 1, "a deletion rolls: {}", code.stderr);

    let after = apply_and_compare(&env, &v2, (2, 2), &nodes, &before, &p).await;
    assert!(!after.contains_key(&nodes[2]), "no pod on the tainted node");
}

#[tokio::test]
async fn dropped_toleration_of_a_no_schedule_taint_deletes() {
    untolerated_no_schedule(
        "pv-untol",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        false,
    )
    .await;
}

#[tokio::test]
async fn dropped_toleration_of_a_no_schedule_taint_deletes_with_surge() {
    untolerated_no_schedule(
        "pv-untol-surge",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        true,
    )
    .await;
}

/// Keeps writing the DaemonSet every `pause` until `stop`: `what(i)` is the i-th merge patch,
/// to the main resource or (status) the status subresource.
fn writer(
    env: &TestEnv,
    pause: Duration,
    status: bool,
    what: fn(u64) -> Value,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let api = env.ds_api();
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let pp = kube::api::PatchParams::default();
            let patch = kube::api::Patch::Merge(what(i));
            let res = if status {
                api.patch_status("agent", &pp, &patch).await
            } else {
                api.patch("agent", &pp, &patch).await
            };
            res.expect("background write");
            i += 1;
            tokio::time::sleep(pause).await;
        }
        i
    })
}

/// Class 2: the controller (here a writer standing in for it, faster) writes the DaemonSet's
/// status and metadata while previews run. Each preview must succeed (recomputing from a fresh
/// read) and still be right.
#[tokio::test]
async fn status_and_metadata_writes_do_not_fail_the_preview() {
    let mut env = TestEnv::new("pv-churn").await;
    let mut nodes = Vec::new();
    for n in ["a", "b"] {
        nodes.push(env.node(n, NodeSpec::default()).await);
    }
    let v1 = env.daemon_set("agent", json!({}));
    apply(&env, &v1);
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");
    let f = manifest_file(&v2);
    let path = f.path().to_str().unwrap().to_string();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two writers, each up to 50 times a second: far more than a controller's status updates
    // of one DaemonSet. The first, pinned dry run then nearly always conflicts; the recompute
    // (bracketed by generation, not pinned) must still succeed every time.
    let pause = Duration::from_millis(20);
    let annotations = writer(
        &env,
        pause,
        false,
        |i| json!({"metadata": {"annotations": {"kubectl-ds.dev/tick": i.to_string()}}}),
        stop.clone(),
    );
    let status = writer(
        &env,
        pause,
        true,
        |i| json!({"status": {"conditions": [{"type": "Tick", "status": "True", "reason": format!("T{i}")}]}}),
        stop.clone(),
    );
    let mut recomputed = 0;
    let mut runs = 0;
    while runs < 60 && recomputed < 3 {
        runs += 1;
        let args = [
            "rollout-preview",
            "agent",
            "-f",
            path.as_str(),
            "-o",
            "json",
        ];
        let all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let ns = env.ns.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut a: Vec<&str> = all.iter().map(String::as_str).collect();
            a.extend(["-n", &ns]);
            crate::harness::run_cli(&a)
        })
        .await
        .unwrap();
        assert_eq!(out.code, 0, "run {runs}: {}", out.stderr);
        let p: Preview = serde_json::from_str(&out.stdout).unwrap();
        assert!(p.template_changed);
        let actions = p.actions(&nodes);
        assert_eq!(actions.len(), 2);
        assert!(actions.values().all(|a| a == "Restart"), "{actions:?}");
        if p.notes
            .iter()
            .any(|n| n.contains("recomputed from a fresh read"))
        {
            recomputed += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = annotations.await.unwrap() + status.await.unwrap();
    assert!(writes > 20, "the writers kept writing ({writes})");
    assert!(
        recomputed > 0,
        "in {runs} previews under {writes} writes, none had to recompute: the test did not provoke the race"
    );
}

/// ... but a change to the spec itself in between is refused, and says so.
#[tokio::test]
async fn a_spec_change_during_the_preview_is_refused() {
    let mut env = TestEnv::new("pv-spec-race").await;
    env.node("a", NodeSpec::default()).await;
    let v1 = env.daemon_set("agent", json!({}));
    apply(&env, &v1);
    env.wait_rolled_out("agent", 1).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");
    let f = manifest_file(&v2);
    let path = f.path().to_str().unwrap().to_string();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // minReadySeconds: a spec change that rolls nothing.
    let spec = writer(
        &env,
        Duration::from_millis(5),
        false,
        |i| json!({"spec": {"minReadySeconds": i % 2}}),
        stop.clone(),
    );
    let mut refused = None;
    let mut runs = 0;
    while runs < 40 && refused.is_none() {
        runs += 1;
        let all = [
            "rollout-preview".to_string(),
            "agent".into(),
            "-f".into(),
            path.clone(),
        ];
        let ns = env.ns.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut a: Vec<&str> = all.iter().map(String::as_str).collect();
            a.extend(["-n", &ns]);
            crate::harness::run_cli(&a)
        })
        .await
        .unwrap();
        match out.code {
            0 => {}
            5 => refused = Some(out),
            c => panic!("run {runs}: exit {c}: {}", out.stderr),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spec.await.unwrap();
    let out = refused
        .unwrap_or_else(|| panic!("{runs} previews while the spec kept changing, none refused"));
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("error: daemonset ")
            && lines[0].contains("its spec changed (generation ")
            && lines[0].contains("while the preview was computed; run it again"),
        "{}",
        out.stderr
    );
}

/// Class 3, found by the differential tester (seed 7012): with maxSurge, the outdated pod on a
/// node whose only pod slot is taken is Pending; the controller replaces it at once and the
/// replacement stays Pending too: Blocked (TooManyPods), not Restart.
#[tokio::test]
async fn surge_replacement_of_a_pending_pod_is_blocked() {
    let mut env = TestEnv::new("pv-surge-pending").await;
    let full = NodeSpec {
        pods: Some("1"),
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("full", full).await,
    ];
    let hog: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hog", "namespace": env.ns},
        "spec": {"nodeName": nodes[1], "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "hog"}]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &hog)
        .await
        .unwrap();
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 2}});
    if !surge_served_or_refused(&env, &v1).await {
        return;
    }
    apply(&env, &v1);
    wait_settled(&env, 2, 1).await;
    let mut v2 = v1.clone();
    image(&mut v2, "registry.example/agent:2");

    let before = pods_by_node(&env).await;
    assert!(
        !before[&nodes[1]].scheduled,
        "the pod on the full node is Pending"
    );
    let p = preview_file(&env, &v2);
    assert!(p.strategy.surge);
    let blocked = p.node(&nodes[1]);
    assert_eq!(blocked.action, "Blocked");
    assert!(
        blocked.reasons.iter().any(|r| r["code"] == "TooManyPods"),
        "{:?}",
        blocked.reasons
    );
    assert_eq!(p.node(&nodes[0]).action, "Restart");

    apply_and_compare(&env, &v2, (2, 1), &nodes, &before, &p).await;
}

/// Class 4, found by the differential tester (seed 10016): once no node should run the pod, a
/// percentage maxUnavailable resolves to 0 (the controller's "at least 1" needs desired > 0), so
/// the outdated pod on a node that stopped tolerating its NoSchedule taint is never deleted.
#[tokio::test]
async fn untolerated_pod_stays_when_a_percentage_budget_resolves_to_zero() {
    let mut env = TestEnv::new("pv-zero-budget").await;
    let tainted = NodeSpec {
        taints: vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})],
        ..Default::default()
    };
    let nodes = vec![env.node("t", tainted).await];
    let mut v1 = env.daemon_set(
        "agent",
        json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
    );
    v1["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}});
    apply(&env, &v1);
    env.wait_rolled_out("agent", 1).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["tolerations"] = json!([]);

    let before = pods_by_node(&env).await;
    let p = preview_file(&env, &v2);
    assert_eq!((p.strategy.desired, p.strategy.max_unavailable), (0, 0));
    assert_eq!(p.node(&nodes[0]).action, "Keep", "{:?}", p.notes);
    apply(&env, &v2);
    wait_for(Duration::from_secs(30), "generation observed", || async {
        let ds = env.ds_api().get("agent").await.unwrap();
        ds.metadata.generation == ds.status.and_then(|s| s.observed_generation)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = pods_by_node(&env).await;
    assert_eq!(observed(&nodes, &before, &after), p.actions(&nodes));
}
