//! Unit tests of the rollout preview: inline YAML objects as `kubectl get -o yaml` shows them.

use std::collections::BTreeMap;

use crate::engine::model::Node;
use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::engine::testutil::{daemon_set, node, pod};

const NOW: &str = "2026-01-01T01:00:00Z";

/// A DaemonSet `agent` with the given templateGeneration and template spec (YAML flow).
fn ds(generation: i64, template_spec: &str, strategy: &str) -> DaemonSet {
    daemon_set(&format!(
        "
metadata:
  name: agent
  namespace: ns
  uid: ds-uid
  generation: {generation}
  annotations: {{deprecated.daemonset.template.generation: '{generation}'}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {strategy}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec: {template_spec}
"
    ))
}

const V1: &str = "{containers: [{name: agent, image: 'agent:1'}]}";
const V2: &str = "{containers: [{name: agent, image: 'agent:2'}]}";
const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}";

/// The ControllerRevision the controller would snapshot for `ds` (Go-style data, as Kubernetes
/// 1.34 and later write it; [`on_release`] adds what older releases write).
fn revision_of(ds: &DaemonSet, hash: &str, number: i64) -> ControllerRevision {
    let mut template = serde_json::to_value(&ds.spec.as_ref().unwrap().template).unwrap();
    template["$patch"] = json!("replace");
    // Go writes the ResourceRequirements struct even when empty.
    for c in template["spec"]["containers"].as_array_mut().unwrap() {
        if c.get("resources").is_none() {
            c["resources"] = json!({});
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("agent-{hash}"), "namespace": "ns",
            "labels": {"app": "agent", "controller-revision-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                "uid": "ds-uid", "controller": true}]},
        "revision": number,
        "data": {"spec": {"template": template}}
    }))
    .unwrap()
}

fn plain_node(name: &str) -> Node {
    node(&format!(
        "metadata: {{name: {name}, labels: {{pool: a}}}}\nstatus: {{allocatable: {{cpu: '2', memory: 4Gi, pods: '10'}}}}"
    ))
}

/// A Ready pod of the DaemonSet on `node` at revision `hash` (templateGeneration `gen`).
fn ds_pod(node: &str, hash: &str, gen: i64, ready: bool) -> Pod {
    let status = if ready { "'True'" } else { "'False'" };
    pod(&format!(
        "
metadata:
  name: agent-{node}
  namespace: ns
  uid: pod-{node}
  labels: {{app: agent, controller-revision-hash: {hash}, pod-template-generation: '{gen}'}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
spec:
  nodeName: {node}
  containers: [{{name: agent, image: 'agent:1'}}]
status:
  phase: Running
  conditions: [{{type: Ready, status: {status}, lastTransitionTime: '2026-01-01T00:00:00Z'}}]
"
    ))
}

fn snapshot(
    ds: DaemonSet,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    revs: Vec<ControllerRevision>,
) -> Snapshot {
    Snapshot {
        daemon_set: ds,
        nodes: nodes.into(),
        pods,
        revisions: revs,
        events: Vec::new(),
        pods_on_nodes: BTreeMap::new(),
        priorities: Default::default(),
        now: Some(Time(NOW.parse().unwrap())),
        server_version: None,
    }
}

/// Both phases at once, with the snapshot's own `pods_on_nodes`.
fn preview(snap: &Snapshot, new: &DaemonSet) -> RolloutPreview {
    classify(snap, new).finish(&snap.pods_on_nodes)
}

fn action(p: &RolloutPreview, node: &str) -> Action {
    p.nodes.iter().find(|n| n.name == node).unwrap().action
}

fn codes(p: &RolloutPreview, node: &str) -> Vec<&'static str> {
    let n = p.nodes.iter().find(|n| n.name == node).unwrap();
    n.reasons.iter().map(|r| r.code()).collect()
}

/// Three nodes running revision `aaa` of V1.
fn running_v1() -> Snapshot {
    let old = ds(1, V1, ROLLING);
    let rev = revision_of(&old, "aaa", 1);
    snapshot(
        old,
        vec![plain_node("n1"), plain_node("n2"), plain_node("n3")],
        vec![
            ds_pod("n1", "aaa", 1, true),
            ds_pod("n2", "aaa", 1, true),
            ds_pod("n3", "aaa", 1, true),
        ],
        vec![rev],
    )
}

#[test]
fn image_change_restarts_every_pod_in_waves() {
    let snap = running_v1();
    let p = preview(&snap, &ds(2, V2, ROLLING));
    assert!(p.template_changed && p.would_roll && !p.rollback);
    assert_eq!(p.matching_revision, None);
    assert_eq!(
        p.new_revision_hash, None,
        "a new revision's hash is unknowable"
    );
    for n in ["n1", "n2", "n3"] {
        assert_eq!(action(&p, n), Action::Restart);
        assert_eq!(codes(&p, n), vec!["OutdatedRevision"]);
    }
    assert_eq!(p.strategy.max_unavailable, 1);
    assert_eq!(p.strategy.wave_sizes, vec![1, 1, 1]);
    assert_eq!(p.waves, 3);
    assert_eq!(p.counts.restart, 3);
    assert!(
        classify(&snap, &ds(2, V2, ROLLING))
            .nodes_needing_fit_check()
            .is_empty(),
        "same requests, no fetch"
    );
}

#[test]
fn metadata_only_change_rolls_nothing() {
    let snap = running_v1();
    let mut new = ds(
        1,
        V1,
        "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}",
    );
    new.metadata.generation = Some(2);
    let p = preview(&snap, &new);
    assert!(!p.template_changed && !p.would_roll);
    assert_eq!(p.counts.keep, 3);
    assert_eq!(p.waves, 0);
    assert_eq!(p.new_revision_hash.as_deref(), Some("aaa"));
    assert_eq!(p.matching_revision.as_deref(), Some("agent-aaa"));
    assert!(p.notes[0].contains("generation 1 -> 2"), "{:?}", p.notes);
}

#[test]
fn narrowed_node_selector_deletes_and_restarts() {
    let mut snap = running_v1();
    std::sync::Arc::make_mut(&mut snap.nodes)[2] = node("metadata: {name: n3, labels: {pool: b}}");
    let new = ds(
        2,
        "{nodeSelector: {pool: a}, containers: [{name: agent, image: 'agent:1'}]}",
        ROLLING,
    );
    let p = preview(&snap, &new);
    assert_eq!(action(&p, "n3"), Action::Delete);
    assert_eq!(codes(&p, "n3"), vec!["NodeSelectorMismatch"]);
    assert_eq!(
        action(&p, "n1"),
        Action::Restart,
        "placement changes are template changes"
    );
    assert_eq!(p.strategy.desired_before, 3);
    assert_eq!(p.strategy.desired, 2);
    assert_eq!(p.strategy.wave_sizes, vec![1, 1]);
}

#[test]
fn added_toleration_creates_on_tainted_node() {
    let mut snap = running_v1();
    let tainted = node(
        "metadata: {name: n4}\nspec: {taints: [{key: dedicated, value: db, effect: NoSchedule}]}\nstatus: {allocatable: {cpu: '2', pods: '10'}}",
    );
    std::sync::Arc::make_mut(&mut snap.nodes).push(tainted);
    let new = ds(
        2,
        "{tolerations: [{key: dedicated, operator: Exists}], containers: [{name: agent, image: 'agent:1', resources: {requests: {cpu: 500m}}}]}",
        ROLLING,
    );
    let mut needing = classify(&snap, &new).nodes_needing_fit_check();
    needing.sort();
    assert_eq!(
        needing,
        vec!["n1", "n2", "n3", "n4"],
        "creates, and restarts whose pod grows"
    );
    let p = preview(&snap, &new);
    assert_eq!(action(&p, "n4"), Action::Create);
    // Unfetched nodes are not fit-checked; fetched ones are.
    snap.pods_on_nodes.insert(
        "n4".into(),
        vec![pod("metadata: {name: hog, namespace: x}\nspec: {nodeName: n4, containers: [{name: c, resources: {requests: {cpu: 1800m}}}]}")],
    );
    let p = preview(&snap, &new);
    assert_eq!(action(&p, "n4"), Action::Blocked);
    // Priority 0 (no class) against the hog's 0: preemption cannot help, and the hint says so.
    assert_eq!(
        codes(&p, "n4"),
        vec![
            "InsufficientResources",
            "PreemptionNotHelpful",
            "NoPriorityClass"
        ]
    );
    assert_eq!(
        p.strategy.unavailable_now, 1,
        "the node without a pod eats the budget"
    );
}

#[test]
fn rollback_keeps_pods_already_at_the_matching_revision() {
    let v1 = ds(1, V1, ROLLING);
    let v2 = ds(2, V2, ROLLING);
    let revs = vec![revision_of(&v1, "aaa", 1), revision_of(&v2, "bbb", 2)];
    // A stalled rollout to v2: n1 got the new pod (not Ready), n2 and n3 are still at v1.
    let snap = snapshot(
        v2,
        vec![plain_node("n1"), plain_node("n2"), plain_node("n3")],
        vec![
            ds_pod("n1", "bbb", 2, false),
            ds_pod("n2", "aaa", 1, true),
            ds_pod("n3", "aaa", 1, true),
        ],
        revs,
    );
    let p = preview(&snap, &ds(3, V1, ROLLING));
    assert!(p.template_changed && p.rollback);
    assert_eq!(p.matching_revision.as_deref(), Some("agent-aaa"));
    assert_eq!(p.matching_revision_number, Some(1));
    assert_eq!(p.new_revision_hash.as_deref(), Some("aaa"));
    assert_eq!(action(&p, "n1"), Action::Restart);
    assert_eq!(action(&p, "n2"), Action::Keep);
    assert_eq!(action(&p, "n3"), Action::Keep);
    assert_eq!(
        p.strategy.replaced_first,
        vec!["n1"],
        "its pod is unavailable: replaced first"
    );
    assert_eq!(p.strategy.wave_sizes, vec![1]);
    assert!(p.notes[0].starts_with("rollback"), "{:?}", p.notes);
}

#[test]
fn on_delete_restarts_nothing_and_names_the_pods() {
    let on_delete = "{type: OnDelete}";
    let mut snap = running_v1();
    snap.daemon_set = ds(1, V1, on_delete);
    let p = preview(&snap, &ds(2, V2, on_delete));
    assert!(!p.would_roll);
    assert_eq!(p.counts.keep, 3);
    assert_eq!(p.waves, 0);
    assert_eq!(
        p.strategy.replaced_when_deleted,
        vec!["agent-n1", "agent-n2", "agent-n3"]
    );
    let r = &p.nodes[0].reasons[0];
    assert!(
        matches!(
            r,
            Reason::OutdatedRevision {
                on_delete: true,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("nothing restarts until pods are deleted")));
}

#[test]
fn budgets_resolve_against_the_new_desired_count() {
    let strategy = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 10%}}";
    let names: Vec<String> = (1..=15).map(|i| format!("n{i:02}")).collect();
    let old = ds(1, V1, strategy);
    let rev = revision_of(&old, "aaa", 1);
    let pods = names
        .iter()
        .enumerate()
        .map(|(i, n)| ds_pod(n, "aaa", 1, i != 0))
        .collect();
    let snap = snapshot(
        old,
        names.iter().map(|n| plain_node(n)).collect(),
        pods,
        vec![rev],
    );
    let p = preview(&snap, &ds(2, V2, strategy));
    assert_eq!(p.strategy.max_unavailable, 2, "10% of 15 rounds up");
    assert_eq!(p.strategy.max_unavailable_spec.as_deref(), Some("10%"));
    assert_eq!(p.strategy.replaced_first, vec!["n01"]);
    assert_eq!(p.strategy.unavailable_now, 1);
    // n01 first plus one more; then 13 in waves of 2.
    assert_eq!(p.strategy.wave_sizes, vec![2, 2, 2, 2, 2, 2, 2, 1]);
    assert!(
        p.nodes
            .iter()
            .find(|n| n.name == "n01")
            .unwrap()
            .replaced_first
    );
}

#[test]
fn surge_with_a_host_port_cannot_progress() {
    let strategy = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}";
    let spec = |image: &str| {
        format!("{{containers: [{{name: agent, image: '{image}', ports: [{{containerPort: 9100, hostPort: 9100}}]}}]}}")
    };
    let old = ds(1, &spec("agent:1"), strategy);
    let rev = revision_of(&old, "aaa", 1);
    let mut holder = ds_pod("n1", "aaa", 1, true);
    holder.spec = Some(crate::engine::placement::template_spec(&old));
    holder.spec.as_mut().unwrap().node_name = Some("n1".into());
    let mut snap = snapshot(old, vec![plain_node("n1")], vec![holder.clone()], vec![rev]);
    let new = ds(2, &spec("agent:2"), strategy);
    assert_eq!(classify(&snap, &new).nodes_needing_fit_check(), vec!["n1"]);
    snap.pods_on_nodes.insert("n1".into(), vec![holder]);
    let p = preview(&snap, &new);
    assert!(p.strategy.surge);
    assert_eq!(p.strategy.surge_feasible, Some(false));
    assert_eq!(action(&p, "n1"), Action::Blocked);
    assert!(codes(&p, "n1").contains(&"HostPortConflict"));
}

/// Three nodes running V1 with a toleration for `dedicated`; n1 carries `dedicated:NoSchedule`.
fn tolerating_v1_on_a_tainted_node(strategy: &str) -> Snapshot {
    let mut snap = running_v1();
    snap.daemon_set = ds(
        1,
        "{tolerations: [{key: dedicated, operator: Exists}], containers: [{name: agent, image: 'agent:1'}]}",
        strategy,
    );
    snap.revisions = vec![revision_of(&snap.daemon_set, "aaa", 1)];
    std::sync::Arc::make_mut(&mut snap.nodes)[0] = node(
        "metadata: {name: n1}\nspec: {taints: [{key: dedicated, value: db, effect: NoSchedule}]}\nstatus: {allocatable: {cpu: '2', pods: '10'}}",
    );
    snap
}

/// Class 1 of issue 15: upstream rollingUpdate deletes the outdated pod on a node that no
/// longer tolerates its NoSchedule taint (a candidate like any other, within maxUnavailable),
/// and manage() never recreates it (shouldRun false).
#[test]
fn outdated_pod_on_a_newly_untolerated_no_schedule_taint_is_deleted() {
    let snap = tolerating_v1_on_a_tainted_node(ROLLING);
    let p = preview(&snap, &ds(2, V1, ROLLING));
    assert_eq!(action(&p, "n1"), Action::Delete);
    assert_eq!(
        codes(&p, "n1"),
        vec!["UntoleratedTaint", "OutdatedRevision"]
    );
    assert_eq!(p.strategy.desired, 2);
    assert_eq!(
        p.strategy.wave_sizes,
        vec![1, 1, 1],
        "the deletion takes a unit of maxUnavailable like the two restarts"
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("within maxUnavailable") && n.contains("nothing replaces it")),
        "{:?}",
        p.notes
    );
    assert!(!p.notes.iter().any(|n| n.contains("removed at once")));
    // A pod already at the new revision there just keeps running (shouldContinueRunning).
    let mut same = snap.clone();
    same.daemon_set = ds(2, V1, ROLLING);
    same.revisions = vec![revision_of(&same.daemon_set, "bbb", 2)];
    for pod in &mut same.pods {
        *pod = ds_pod(
            pod.spec.as_ref().unwrap().node_name.as_deref().unwrap(),
            "bbb",
            2,
            true,
        );
    }
    let p = preview(&same, &ds(2, V1, ROLLING));
    assert_eq!(action(&p, "n1"), Action::Keep);
    // OnDelete leaves the outdated pod alone.
    let on_delete = "{type: OnDelete}";
    let snap = tolerating_v1_on_a_tainted_node(on_delete);
    let p = preview(&snap, &ds(2, V1, on_delete));
    assert_eq!(action(&p, "n1"), Action::Keep);
}

/// With maxSurge the move waits for availability: deleted once every desired node has an
/// available pod; kept while Blocked desired nodes are at least as many as such pods.
#[test]
fn surge_deletes_the_untolerated_pod_unless_desired_nodes_are_blocked() {
    let surge = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}";
    let snap = tolerating_v1_on_a_tainted_node(surge);
    let p = preview(&snap, &ds(2, V1, surge));
    assert_eq!(action(&p, "n1"), Action::Delete);
    assert!(p.notes.iter().any(|n| n.contains("once the desired nodes")));

    let big = "{containers: [{name: agent, image: 'agent:1', resources: {requests: {cpu: '3'}}}]}";
    let mut snap = snap;
    snap.pods_on_nodes.insert("n2".into(), vec![]);
    let p = preview(&snap, &ds(2, big, surge));
    assert_eq!(action(&p, "n2"), Action::Blocked, "3 cpu on a 2-cpu node");
    assert_eq!(
        action(&p, "n1"),
        Action::Blocked,
        "held: n2 never becomes available"
    );
    assert!(
        p.notes.iter().any(|n| n.contains("so it stays")),
        "{:?}",
        p.notes
    );
}

#[test]
fn pod_template_generation_pitfall() {
    let mut snap = running_v1();
    // Pods created by a former DaemonSet at generation 2 (adopted): the new templateGeneration
    // is 2 too, so they count as up to date whatever their template.
    snap.pods = vec![
        ds_pod("n1", "zzz", 2, true),
        ds_pod("n2", "aaa", 1, true),
        ds_pod("n3", "aaa", 1, true),
    ];
    let p = preview(&snap, &ds(2, V2, ROLLING));
    assert_eq!(action(&p, "n1"), Action::Keep);
    assert_eq!(action(&p, "n2"), Action::Restart);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("pod-template-generation pitfall: agent-n1")),
        "{:?}",
        p.notes
    );
}

#[test]
fn node_without_pod_is_created_and_ineligible_one_unchanged() {
    let mut snap = running_v1();
    snap.pods.pop();
    std::sync::Arc::make_mut(&mut snap.nodes).push(node(
        "metadata: {name: n9}\nspec: {taints: [{key: x, effect: NoExecute}]}",
    ));
    let p = preview(&snap, &ds(1, V1, ROLLING));
    assert_eq!(action(&p, "n3"), Action::Create);
    assert_eq!(action(&p, "n9"), Action::Unchanged);
    assert_eq!(codes(&p, "n9"), vec!["UntoleratedTaint"]);
    assert!(
        p.would_roll,
        "a Create rolls even without a template change"
    );
    assert_eq!(
        p.nodes[0].name, "n3",
        "sorted by action: Create before Keep"
    );
}

#[test]
fn a_rollout_in_progress_rolls_on_without_a_template_change() {
    let v1 = ds(1, V1, ROLLING);
    let v2 = ds(2, V2, ROLLING);
    let revs = vec![revision_of(&v1, "aaa", 1), revision_of(&v2, "bbb", 2)];
    let snap = snapshot(
        v2.clone(),
        vec![plain_node("n1"), plain_node("n2")],
        vec![ds_pod("n1", "bbb", 2, true), ds_pod("n2", "aaa", 1, true)],
        revs,
    );
    let p = preview(&snap, &v2);
    assert!(!p.template_changed && p.would_roll);
    assert_eq!(action(&p, "n1"), Action::Keep);
    assert_eq!(action(&p, "n2"), Action::Restart);
    let n2 = p.nodes.iter().find(|n| n.name == "n2").unwrap();
    assert_eq!(
        n2.reasons[0],
        Reason::OutdatedRevision {
            pod_revision: Some("aaa".into()),
            current_revision: Some("bbb".into()),
            on_delete: false
        }
    );
    assert!(
        p.notes.iter().any(|n| n.contains("outdated already")),
        "{:?}",
        p.notes
    );
}

#[test]
fn surge_checks_the_pod_count_even_when_the_pod_requests_nothing() {
    let strategy = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}";
    let old = ds(1, V1, strategy);
    let rev = revision_of(&old, "aaa", 1);
    let full = node("metadata: {name: n1}\nstatus: {allocatable: {cpu: '2', pods: '1'}}");
    let holder = ds_pod("n1", "aaa", 1, true);
    let mut snap = snapshot(old, vec![full], vec![holder.clone()], vec![rev]);
    let new = ds(2, V2, strategy);
    // mirrors noderesources fitsRequest: the pod count comes before the zero-request shortcut.
    assert_eq!(classify(&snap, &new).nodes_needing_fit_check(), vec!["n1"]);
    snap.pods_on_nodes.insert("n1".into(), vec![holder]);
    let p = preview(&snap, &new);
    assert_eq!(action(&p, "n1"), Action::Blocked);
    assert!(codes(&p, "n1").contains(&"TooManyPods"));
}

#[test]
fn the_admitted_pod_decides_whether_a_restart_grows() {
    // The old pods were admitted with a LimitRange default of 500m; the raw new template asks
    // for nothing, yet its admitted pod asks for 1500m: only the admitted pod shows it.
    let mut snap = running_v1();
    for p in &mut snap.pods {
        p.spec.as_mut().unwrap().containers[0].resources = Some(std::sync::Arc::new(
            crate::yaml::from_str("requests: {cpu: 500m}").unwrap(),
        ));
    }
    let new = ds(2, V2, ROLLING);
    assert!(
        classify(&snap, &new).nodes_needing_fit_check().is_empty(),
        "raw template: no growth, no fit check"
    );
    let mut c = classify(&snap, &new);
    assert!(c.needs_admission());
    let admitted = crate::engine::testutil::pod_spec(
        "containers: [{name: agent, image: 'agent:2', resources: {requests: {cpu: 1500m}}}]",
    );
    c.admit(admitted);
    assert_eq!(c.nodes_needing_fit_check(), vec!["n1", "n2", "n3"]);
    let hog = pod("metadata: {name: hog, namespace: x}\nspec: {nodeName: n1, containers: [{name: c, resources: {requests: {cpu: 800m}}}]}");
    let on_nodes = BTreeMap::from([
        ("n1".to_string(), vec![hog]),
        ("n2".to_string(), vec![]),
        ("n3".to_string(), vec![]),
    ]);
    let p = c.finish(&on_nodes);
    assert_eq!(action(&p, "n1"), Action::Blocked);
    assert_eq!(action(&p, "n2"), Action::Restart);
    // Nothing to create or restart: no admission needed.
    let same = running_v1();
    let unchanged = same.daemon_set.clone();
    assert!(!classify(&same, &unchanged).needs_admission());
}

#[test]
fn a_node_whose_only_pod_is_terminating() {
    let spec = "{containers: [{name: agent, image: 'agent:1', ports: [{containerPort: 9100, hostPort: 9100}]}]}";
    let terminating = |snap: &mut Snapshot| {
        let mut p = ds_pod("n1", "aaa", 1, true);
        p.spec = Some(crate::engine::placement::template_spec(&snap.daemon_set));
        p.spec.as_mut().unwrap().node_name = Some("n1".into());
        p.metadata.deletion_timestamp = Some(Time("2026-01-01T00:59:00Z".parse().unwrap()));
        snap.pods = vec![p.clone()];
        snap.pods_on_nodes.insert("n1".into(), vec![p]);
    };
    // Without surge: nothing is created until it is gone; then the new pod fits.
    let old = ds(1, spec, ROLLING);
    let rev = revision_of(&old, "aaa", 1);
    let mut snap = snapshot(
        old.clone(),
        vec![plain_node("n1")],
        vec![],
        vec![rev.clone()],
    );
    terminating(&mut snap);
    let p = preview(&snap, &ds(2, &spec.replace("agent:1", "agent:2"), ROLLING));
    assert_eq!(action(&p, "n1"), Action::Create);
    let n1 = p.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert!(matches!(
        &n1.reasons[..],
        [Reason::AfterTerminating { surge: false, .. }]
    ));
    // With surge: the new pod is created at once, beside it: its host port still counts.
    let surge = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}";
    let old = ds(1, spec, surge);
    let mut snap = snapshot(old, vec![plain_node("n1")], vec![], vec![rev]);
    terminating(&mut snap);
    let p = preview(&snap, &ds(2, &spec.replace("agent:1", "agent:2"), surge));
    assert_eq!(action(&p, "n1"), Action::Blocked);
    assert!(codes(&p, "n1").contains(&"HostPortConflict"));
    assert!(codes(&p, "n1").contains(&"AfterTerminating"));
}

#[test]
fn a_refused_pod_blocks_every_create_and_restart() {
    let mut snap = running_v1();
    std::sync::Arc::make_mut(&mut snap.nodes).push(plain_node("n4"));
    let new = ds(2, V2, ROLLING);
    let mut c = classify(&snap, &new);
    c.refuse("pods \"agent-x\" is forbidden: maximum cpu usage per Container is 200m");
    assert!(c.nodes_needing_fit_check().is_empty());
    let p = c.finish(&BTreeMap::new());
    for n in ["n1", "n2", "n3", "n4"] {
        assert_eq!(action(&p, n), Action::Blocked, "{n}");
        assert!(codes(&p, n).contains(&"AdmissionRefused"));
    }
}

/// `snap` as read from a server of Kubernetes 1.`minor`.
/// Revisions written by that release: before 1.34 getPatch wrote `"creationTimestamp":null`.
fn on_release(mut snap: Snapshot, minor: u32) -> Snapshot {
    snap.server_version = crate::engine::version::ServerVersion::parse(
        "1",
        &minor.to_string(),
        &format!("v1.{minor}.2"),
    );
    if minor < 34 {
        for cr in &mut snap.revisions {
            let data = &mut cr.data.as_mut().unwrap().0;
            data["spec"]["template"]["metadata"]["creationTimestamp"] = json!(null);
        }
    }
    snap
}

const MEM_64MI: &str =
    "{containers: [{name: agent, image: 'agent:1', resources: {requests: {memory: 64Mi}}}]}";
const MEM_BYTES: &str =
    "{containers: [{name: agent, image: 'agent:1', resources: {requests: {memory: '67108864'}}}]}";

/// Three nodes running revision `aaa` of MEM_64MI, read from Kubernetes 1.`minor`.
fn running_64mi(minor: u32) -> Snapshot {
    let old = ds(1, MEM_64MI, ROLLING);
    let rev = revision_of(&old, "aaa", 1);
    let pods = ["n1", "n2", "n3"]
        .iter()
        .map(|n| ds_pod(n, "aaa", 1, true))
        .collect();
    let nodes = ["n1", "n2", "n3"].iter().map(|n| plain_node(n)).collect();
    on_release(snapshot(old, nodes, pods, vec![rev]), minor)
}

#[test]
fn respelled_quantity_keeps_pods_from_1_24() {
    // templateGeneration stays 1 (the apiserver compares semantically), the bytes differ.
    let p = preview(&running_64mi(35), &ds(1, MEM_BYTES, ROLLING));
    assert!(!p.template_changed && p.new_revision && p.new_revision_hash.is_none());
    assert_eq!(p.rules.server_version.as_deref(), Some("v1.35.2"));
    assert!(p.rules.template_generation_counts);
    assert_eq!(p.counts.keep, 3, "pod-template-generation=1 still counts");
    assert!(!p.would_roll);
    assert!(
        p.notes[0].contains("bytes match no ControllerRevision")
            && p.notes[0].contains("keep running"),
        "{:?}",
        p.notes
    );
}

#[test]
fn respelled_quantity_restarts_every_pod_before_1_24() {
    let p = preview(&running_64mi(20), &ds(1, MEM_BYTES, ROLLING));
    assert!(!p.template_changed && p.new_revision);
    assert!(!p.rules.template_generation_counts);
    assert_eq!(p.counts.restart, 3, "only the hash counts before 1.24");
    assert_eq!(p.strategy.wave_sizes, vec![1, 1, 1]);
    assert!(p.would_roll);
    assert!(
        p.notes[0].contains("before Kubernetes 1.24"),
        "{:?}",
        p.notes
    );
    // The same spelling is byte-equal: no new revision, nothing rolls on any release.
    let same = preview(&running_64mi(20), &ds(1, MEM_64MI, ROLLING));
    assert!(!same.new_revision && !same.would_roll);
    assert_eq!(same.new_revision_hash.as_deref(), Some("aaa"));
}

#[test]
fn duplicate_revisions_relabel_every_pod() {
    // Revisions 2 and 3 hold V2's bytes; pods run aaa (V1) and bbb. The controller keeps ccc
    // (the highest) and relabels every pod with its hash: nothing restarts, on any release.
    let old = ds(2, V2, ROLLING);
    let v1 = ds(1, V1, ROLLING);
    let revs = vec![
        revision_of(&v1, "aaa", 1),
        revision_of(&old, "bbb", 2),
        revision_of(&old, "ccc", 3),
    ];
    let pods = vec![
        ds_pod("n1", "aaa", 1, true),
        ds_pod("n2", "bbb", 2, true),
        ds_pod("n3", "ccc", 2, true),
    ];
    let nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|n| plain_node(n)).collect();
    for minor in [20, 22, 23, 35] {
        let mut nodes = nodes.clone();
        nodes.push(plain_node("n4"));
        let snap = on_release(
            snapshot(old.clone(), nodes, pods.clone(), revs.clone()),
            minor,
        );
        let p = preview(&snap, &ds(2, V2, ROLLING));
        assert_eq!(p.new_revision_hash.as_deref(), Some("ccc"));
        assert_eq!(p.duplicate_revisions, vec!["agent-bbb".to_string()]);
        assert!(!p.new_revision);
        assert_eq!(p.counts.keep, 3, "1.{minor}: every pod relabelled or stuck");
        assert!(
            p.notes.iter().any(|n| n.contains("dedupCurHistories")),
            "{:?}",
            p.notes
        );
        // Before 1.23 the sync fails: not even the pod-less node gets its pod.
        let stuck = minor < 23;
        assert_eq!(
            action(&p, "n4"),
            if stuck {
                Action::Unchanged
            } else {
                Action::Create
            }
        );
        assert_eq!(
            p.notes.iter().any(|n| n.contains("every sync fails")),
            stuck
        );
    }
}

#[test]
fn revisions_of_another_owner_do_not_count() {
    // A revision with our labels and V1's bytes, controlled by another DaemonSet: the
    // controller ignores it (controlledHistories), so the template needs a new revision.
    let mut snap = running_v1();
    let mut foreign = revision_of(&snap.daemon_set, "zzz", 9);
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other-uid".into();
    snap.revisions = vec![foreign];
    let p = preview(&snap, &ds(1, V1, ROLLING));
    assert!(p.new_revision, "{:?}", p.notes);
    assert_eq!(p.daemon_set.current_revision, None);
}

/// Found by the differential tester (seed 7012): with maxSurge, an outdated pod that is Pending
/// (the node's only pod slot is taken) is replaced at once, and the replacement does not fit
/// either: Blocked (TooManyPods), not Restart.
#[test]
fn surge_replacement_of_a_pending_pod_is_fit_checked() {
    let surge = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 2}}";
    let old = ds(1, V1, surge);
    let rev = revision_of(&old, "aaa", 1);
    let mut pending = ds_pod("n1", "aaa", 1, false);
    let spec = pending.spec.as_mut().unwrap();
    spec.node_name = None;
    spec.affinity = Some(
        serde_json::from_value(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}))
        .unwrap(),
    );
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    let full = node("metadata: {name: n1}\nstatus: {allocatable: {cpu: '32', pods: '1'}}");
    let mut snap = snapshot(old, vec![full], vec![pending], vec![rev]);
    let new = ds(2, V2, surge);
    assert_eq!(classify(&snap, &new).nodes_needing_fit_check(), vec!["n1"]);
    snap.pods_on_nodes.insert(
        "n1".into(),
        vec![pod(
            "metadata: {name: hog, namespace: x}\nspec: {nodeName: n1, containers: [{name: c}]}",
        )],
    );
    let p = preview(&snap, &new);
    assert_eq!(action(&p, "n1"), Action::Blocked);
    assert_eq!(
        p.nodes[0].pod_revision.as_deref(),
        Some("aaa"),
        "its pod is the outdated one"
    );
    assert!(
        codes(&p, "n1").contains(&"TooManyPods"),
        "{:?}",
        codes(&p, "n1")
    );
}

/// Found by the differential tester (seed 10016): when no node should run the pod any more, a
/// percentage maxUnavailable resolves to 0 (the "at least 1" default needs desired > 0), so the
/// outdated pod on a node that stopped tolerating its NoSchedule taint is never deleted.
#[test]
fn no_desired_node_and_a_percentage_budget_keeps_the_untolerated_pod() {
    let pct = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: '34%', maxSurge: 0}}";
    let snap = tolerating_v1_on_a_tainted_node(pct);
    let away = "{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: DoesNotExist}]}]}}}, containers: [{name: agent, image: 'agent:1'}]}";
    let p = preview(&snap, &ds(2, away, pct));
    assert_eq!(p.strategy.desired, 0);
    assert_eq!(p.strategy.max_unavailable, 0);
    assert_eq!(
        action(&p, "n2"),
        Action::Delete,
        "no longer selected: at once"
    );
    assert_eq!(action(&p, "n1"), Action::Keep);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("resolves to 0 with 0 desired")),
        "{:?}",
        p.notes
    );
    // An integer budget is not scaled: 1 of 0 desired still deletes.
    let one = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}";
    let snap = tolerating_v1_on_a_tainted_node(one);
    let p = preview(&snap, &ds(2, away, one));
    assert_eq!(action(&p, "n1"), Action::Delete);
}
