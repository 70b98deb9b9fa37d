//! `why NODE`: one node, every DaemonSet: should it run here, does it, and why not. Each row is
//! the node's verdict from [`super::explain::explain`] over a snapshot that holds this node
//! only, so the states and reason codes are explain's.

use std::collections::BTreeMap;

use crate::engine::model::Node;
use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::explain::{self, nodes_needing_fit_check, NodeFilter, NodeState, PodInfo, API_VERSION};
use super::fit;
use super::placement;
use super::reason::{serialize_reasons, Reason};
use super::snapshot::{is_claimed_by, Snapshot};
use super::version::{Rules, ServerVersion};

/// An assumed node (`--assume-node`) where the DaemonSet's pod would be created.
pub const WOULD_RUN: &str = "WouldRun";
/// An assumed node where the pod would be created but would not fit (allocatable).
pub const WOULD_BE_PENDING: &str = "WouldBePending";

/// What the rows were computed from, besides the DaemonSets.
#[derive(Debug, Clone, Default)]
pub struct NodeObjects {
    pub node: Node,
    /// The node comes from a manifest (`--assume-node`): it does not exist, no pods run on it.
    pub assumed: bool,
    /// Every pod bound to the node (all namespaces), and the unscheduled pods whose
    /// DaemonSet affinity targets it.
    pub pods: Vec<Pod>,
    pub revisions: Vec<ControllerRevision>,
    /// Events of the DaemonSets whose row needs them (Missing, Pending).
    pub events: Vec<Event>,
    pub now: Option<Time>,
    pub server_version: Option<ServerVersion>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub name: String,
    pub assumed: bool,
    pub labels: BTreeMap<String, String>,
}

/// One DaemonSet's verdict on the node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetRow {
    pub namespace: String,
    pub name: String,
    /// explain's node state, or on an assumed node WouldRun / WouldBePending / NotEligible.
    pub state: String,
    pub should_run: bool,
    pub should_continue_running: bool,
    pub pod: Option<PodInfo>,
    #[serde(serialize_with = "serialize_reasons")]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub daemon_sets: usize,
    pub should_run: usize,
    pub running: usize,
    /// Rows whose state is a problem (anything but Running and NotEligible; WouldBePending).
    pub problems: usize,
    pub states: BTreeMap<String, usize>,
}

/// The `kubectl-ds/v1` `NodeExplanation` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExplanation {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub node: NodeInfo,
    pub rules: Rules,
    pub summary: NodeSummary,
    pub notes: Vec<String>,
    pub daemon_sets: Vec<DaemonSetRow>,
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// The pods of `objects` that matter on this node: bound to it, or unscheduled and targeting it.
pub fn is_on_or_for_node(pod: &Pod, node: &str) -> bool {
    super::podstate::target_node(pod).as_deref() == Some(node)
}

/// explain's snapshot for one DaemonSet, cut down to this node: the node, the DaemonSet's pods
/// there, its revisions, and (for a pending pod's fit check) every active pod on the node.
pub fn node_snapshot(ds: &DaemonSet, objects: &NodeObjects) -> Snapshot {
    let ns = ds.metadata.namespace.as_deref();
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.as_deref() == ns
    };
    let name = node_name(&objects.node);
    let pods = objects
        .pods
        .iter()
        .filter(|p| in_ns(&p.metadata) && is_claimed_by(ds, &p.metadata))
        .filter(|p| is_on_or_for_node(p, name))
        .cloned()
        .collect();
    let revisions = objects
        .revisions
        .iter()
        .filter(|r| in_ns(&r.metadata) && is_claimed_by(ds, &r.metadata))
        .cloned()
        .collect();
    let events = objects
        .events
        .iter()
        .filter(|e| in_ns(&e.metadata))
        .cloned()
        .collect();
    let mut snap = Snapshot {
        daemon_set: ds.clone(),
        nodes: std::sync::Arc::new(vec![objects.node.clone()]),
        pods,
        revisions,
        events,
        pods_on_nodes: BTreeMap::new(),
        priorities: Default::default(),
        now: objects.now.clone(),
        server_version: objects.server_version.clone(),
    };
    if !nodes_needing_fit_check(&snap).is_empty() {
        let bound = objects
            .pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
            .filter(|p| fit::is_active(p))
            .cloned()
            .collect();
        snap.pods_on_nodes.insert(name.to_string(), bound);
    }
    snap
}

/// Does this row need the DaemonSet's events (FailedCreate, FailedDaemonPod, FailedScheduling)?
pub fn needs_events(row: &DaemonSetRow) -> bool {
    row.state == NodeState::Missing.as_str() || row.state == NodeState::Pending.as_str()
}

/// One DaemonSet's row, from its node snapshot.
pub fn row(snap: &Snapshot, assumed: bool) -> DaemonSetRow {
    let e = explain::explain(snap, &NodeFilter::default());
    let v = e.nodes.into_iter().next();
    let (mut state, should_run, should_continue_running, pod, mut reasons) = match v {
        Some(v) => (
            v.state.as_str().to_string(),
            v.should_run,
            v.should_continue_running,
            v.pod,
            v.reasons,
        ),
        None => (
            NodeState::NotEligible.as_str().into(),
            false,
            false,
            None,
            vec![],
        ),
    };
    // DaemonSet-wide reasons (SelectingAll, DaemonSetDeleting) apply on every node.
    reasons.extend(e.summary.daemon_set_reasons);
    if assumed && should_run {
        // No pod can exist on a node that does not: what the scheduler would decide instead.
        reasons.retain(|r| {
            !matches!(
                r,
                Reason::NotYetCreated {}
                    | Reason::FailedCreate { .. }
                    | Reason::FailedPodBackoff { .. }
            )
        });
        let misfits = fit::misfits(
            &placement::template_spec(&snap.daemon_set),
            &snap.nodes[0],
            &[],
        );
        state = if misfits.is_empty() {
            WOULD_RUN.into()
        } else {
            WOULD_BE_PENDING.into()
        };
        reasons.extend(misfits);
    }
    DaemonSetRow {
        namespace: snap.namespace().to_string(),
        name: snap.name().to_string(),
        state,
        should_run,
        should_continue_running,
        pod,
        reasons,
    }
}

/// The sort key of a state: explain's order (problems first), the assumed states beside theirs.
fn state_rank(state: &str) -> usize {
    if state == WOULD_BE_PENDING {
        return 1; // beside Pending
    }
    if state == WOULD_RUN {
        return NodeState::Running as usize;
    }
    NodeState::ALL
        .iter()
        .position(|s| s.as_str() == state)
        .unwrap_or(NodeState::ALL.len())
}

fn is_problem(state: &str) -> bool {
    ![
        NodeState::Running.as_str(),
        NodeState::NotEligible.as_str(),
        WOULD_RUN,
    ]
    .contains(&state)
}

/// Every DaemonSet's row on the node, problems first, then by namespace and name (the command
/// computes the same in two passes, fetching events only for the rows that need them).
#[cfg(test)]
pub fn why(daemon_sets: &[DaemonSet], objects: &NodeObjects) -> NodeExplanation {
    let mut rows: Vec<DaemonSetRow> = daemon_sets
        .iter()
        .map(|ds| row(&node_snapshot(ds, objects), objects.assumed))
        .collect();
    sort_rows(&mut rows);
    document(rows, objects)
}

pub fn sort_rows(rows: &mut [DaemonSetRow]) {
    rows.sort_by(|a, b| {
        state_rank(&a.state)
            .cmp(&state_rank(&b.state))
            .then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
    });
}

/// The document around rows already computed.
pub fn document(daemon_sets: Vec<DaemonSetRow>, objects: &NodeObjects) -> NodeExplanation {
    let mut summary = NodeSummary {
        daemon_sets: daemon_sets.len(),
        ..Default::default()
    };
    for r in &daemon_sets {
        summary.should_run += usize::from(r.should_run);
        summary.running += usize::from(r.state == NodeState::Running.as_str());
        summary.problems += usize::from(is_problem(&r.state));
        *summary.states.entry(r.state.clone()).or_default() += 1;
    }
    let mut notes = Vec::new();
    if objects.assumed {
        notes.push(format!(
            "node {} is assumed from a manifest: it does not exist and runs no pods; the rows say \
             what would run on a node of this shape (resource fit against its allocatable, with \
             no other pods)",
            node_name(&objects.node)
        ));
    }
    let node = &objects.node;
    NodeExplanation {
        api_version: API_VERSION,
        kind: "NodeExplanation",
        node: NodeInfo {
            name: node_name(node).to_string(),
            assumed: objects.assumed,
            labels: node.metadata.labels.clone().unwrap_or_default(),
        },
        rules: Rules::for_version(objects.server_version.as_ref()),
        summary,
        notes,
        daemon_sets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{daemon_set, node, pod};

    const NODE: &str = r#"
metadata:
  name: worker-1
  labels: {kubernetes.io/hostname: worker-1, pool: general}
spec:
  taints:
  - {key: dedicated, value: gpu, effect: NoSchedule}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions:
  - {type: Ready, status: "True"}
"#;

    fn ds(name: &str, extra_spec: &str) -> DaemonSet {
        daemon_set(&format!(
            r#"
metadata:
  name: {name}
  namespace: monitoring
  uid: uid-{name}
  generation: 1
  annotations: {{deprecated.daemonset.template.generation: "1"}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: "img:1", resources: {{requests: {{cpu: 500m}}}}}}]
{extra_spec}
status: {{observedGeneration: 1}}
"#
        ))
    }

    fn running_pod(ds: &str) -> Pod {
        pod(&format!(
            r#"
metadata:
  name: {ds}-abcde
  namespace: monitoring
  uid: pod-{ds}
  labels: {{app: {ds}, pod-template-generation: "1"}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: {ds}, uid: uid-{ds}, controller: true}}]
spec:
  nodeName: worker-1
  containers: [{{name: c, image: "img:1"}}]
status:
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
"#
        ))
    }

    fn objects(pods: Vec<Pod>, assumed: bool) -> NodeObjects {
        NodeObjects {
            node: node(NODE),
            assumed,
            pods,
            ..Default::default()
        }
    }

    #[test]
    fn rows_carry_explains_states_and_codes_problems_first() {
        let tolerant = "      tolerations: [{key: dedicated, operator: Exists}]";
        let dss = vec![
            ds("tainted", ""),
            ds("gpu-only", "      nodeSelector: {pool: gpu}"),
            ds("missing", tolerant),
            ds("running", tolerant),
        ];
        let e = why(&dss, &objects(vec![running_pod("running")], false));
        let got: Vec<(&str, &str, Vec<&str>)> = e
            .daemon_sets
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.state.as_str(),
                    r.reasons.iter().map(Reason::code).collect(),
                )
            })
            .collect();
        assert_eq!(got[0].0, "missing");
        assert_eq!(got[0].1, "Missing");
        assert!(got[0].2.contains(&"NotYetCreated"), "{got:?}");
        assert_eq!(got[1].0, "running");
        assert_eq!(got[1].1, "Running");
        // NotEligible rows last, by name.
        assert_eq!(got[2].0, "gpu-only");
        assert_eq!(got[2].2[0], "NodeSelectorMismatch");
        assert_eq!(got[3].0, "tainted");
        assert_eq!(got[3].2[0], "UntoleratedTaint");
        assert_eq!(e.summary.problems, 1);
        assert_eq!(e.summary.running, 1);
        assert_eq!(e.summary.should_run, 2);
        assert_eq!(e.kind, "NodeExplanation");
    }

    #[test]
    fn pods_of_other_nodes_and_namespaces_are_not_counted() {
        let mut elsewhere = running_pod("agent");
        elsewhere.spec.as_mut().unwrap().node_name = Some("worker-2".into());
        let mut other_ns = running_pod("agent");
        other_ns.metadata.namespace = Some("default".into());
        let dss = vec![ds("agent", "      tolerations: [{operator: Exists}]")];
        let e = why(&dss, &objects(vec![elsewhere, other_ns], false));
        assert_eq!(e.daemon_sets[0].state, "Missing");
    }

    #[test]
    fn assumed_node_says_would_run_or_would_be_pending() {
        let dss = vec![
            ds("small", "      tolerations: [{operator: Exists}]"),
            daemon_set(
                r#"
metadata: {name: big, namespace: monitoring, uid: uid-big}
spec:
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: c, image: "img:1", resources: {requests: {cpu: "8"}}}]
"#,
            ),
            ds("tainted", ""),
        ];
        let e = why(&dss, &objects(vec![], true));
        let by_name: BTreeMap<&str, &DaemonSetRow> =
            e.daemon_sets.iter().map(|r| (r.name.as_str(), r)).collect();
        assert_eq!(by_name["small"].state, WOULD_RUN);
        assert!(
            by_name["small"].reasons.is_empty(),
            "{:?}",
            by_name["small"].reasons
        );
        assert_eq!(by_name["big"].state, WOULD_BE_PENDING);
        assert_eq!(by_name["big"].reasons[0].code(), "InsufficientResources");
        assert_eq!(by_name["tainted"].state, "NotEligible");
        assert_eq!(e.daemon_sets[0].name, "big", "problems first");
        assert!(e.node.assumed);
        assert!(e.notes[0].contains("does not exist"));
    }
}
