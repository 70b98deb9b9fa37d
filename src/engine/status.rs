//! `status`: following a rollout. Between two explanations of one DaemonSet: which nodes
//! changed, whether the rollout is done, whether it progresses, and when it does not, why
//! (a verdict in words naming the nodes and the next action). Pure: `now` is a parameter.
//! mirrors kubectl rollout_status.go DaemonSetStatusViewer.Status for "done", over the
//! counters daemon_controller.go updateDaemonSetStatus computes (recomputed here from the pods).

use std::collections::{BTreeMap, HashMap};

use crate::engine::model::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use super::budget;
use super::explain::{Explanation, NodeState, NodeVerdict, API_VERSION};
use super::placement;
use super::podstate;
use super::reason::Reason;
use super::revision;
use super::snapshot::Snapshot;
use super::version::Rules;

mod blocked;
mod wave;
pub use wave::{wave, Wave};

/// What a change line shows of one node: its state and its first reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMark {
    /// The explain state, or `Available` once the pod of the current revision is available
    /// (Ready for minReadySeconds): the end state of a rollout.
    pub state: String,
    /// The first reason's code (`CrashLoopBackOff`, `MinReadySeconds`, ...).
    pub code: Option<&'static str>,
    pub message: Option<String>,
    pub pod: Option<String>,
    pub revision: Option<i64>,
}

impl NodeMark {
    /// Two marks differ for a change line when the state or the first reason's code does (not
    /// the message: restart counts and ages in it move without anything happening).
    fn same_as(&self, other: &NodeMark) -> bool {
        self.state == other.state && self.code == other.code && self.pod == other.pod
    }
}

/// The end state of a node in a rollout: a Ready pod of the current revision, available.
pub const AVAILABLE: &str = "Available";
/// A node that left the cluster.
pub const GONE: &str = "Gone";

/// One node's change, as a `kubectl-ds/v1` `NodeChange` (one JSON object per line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeChange {
    pub api_version: String,
    pub kind: String,
    /// RFC 3339, when the change was seen.
    pub time: String,
    pub node: String,
    /// The previous state; null for a node seen for the first time.
    pub from: Option<String>,
    pub to: String,
    /// The first reason's code and message, if any.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub pod: Option<String>,
    /// The pod's ControllerRevision number.
    pub revision: Option<i64>,
}

/// How far the rollout is: counted from the pods, as updateDaemonSetStatus counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub desired: i32,
    pub updated: i32,
    pub available: i32,
    /// Nodes whose pod is of the current revision and available.
    pub done: i32,
}

/// A stuck rollout's cause, in words, with the nodes and the next action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StuckVerdict {
    /// `OnDelete`, `MaxUnavailableUsed`, `NewPodsNotAvailable`, `SurgeImpossible`,
    /// `PreemptionImpossible`, `TerminatingOnNotReadyNode`, `WaitingMinReadySeconds`,
    /// `NoProgress`.
    pub code: String,
    pub message: String,
    pub nodes: Vec<String>,
    pub pods: Vec<String>,
    pub next: String,
}

/// How a `status` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every desired node runs an available pod of the current revision.
    Complete,
    /// `--timeout` passed first.
    Timeout,
    /// No progress for `--stuck-after`, with `--fail-on-stuck`.
    Stuck,
    /// Ctrl-C.
    Interrupted,
}

/// The last object of a `status -o json` run: a `kubectl-ds/v1` `StatusSummary`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusSummary {
    pub api_version: String,
    pub kind: String,
    pub time: String,
    pub namespace: String,
    pub name: String,
    pub outcome: Outcome,
    pub elapsed_seconds: u64,
    pub progress: Progress,
    /// NodeChange objects emitted (the first observation of each node included).
    pub changes: usize,
    /// Why the rollout is stuck or not done (empty when complete).
    pub stuck: Vec<StuckVerdict>,
    /// The rolling update's wave at the last observation (null for OnDelete).
    pub wave: Option<Wave>,
}

/// A stuck rollout seen while following it (without `--fail-on-stuck`): a `kubectl-ds/v1`
/// `Stuck` object, once per stretch without progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StuckReport {
    pub api_version: String,
    pub kind: String,
    pub time: String,
    /// Seconds without progress.
    pub since_seconds: u64,
    pub verdicts: Vec<StuckVerdict>,
}

/// The marks of every node of an explanation (computed with the default filter: every node).
pub fn marks(e: &Explanation, snap: &Snapshot) -> BTreeMap<String, NodeMark> {
    let min_ready = min_ready_seconds(snap);
    // By name, once: 5,000 nodes each looking through 5,000 pods would be 25 million compares.
    let pods: HashMap<&str, &Pod> = snap
        .pods
        .iter()
        .filter_map(|p| Some((p.metadata.name.as_deref()?, p)))
        .collect();
    e.nodes
        .iter()
        .map(|v| (v.name.clone(), mark(v, snap, &pods, min_ready)))
        .collect()
}

fn min_ready_seconds(snap: &Snapshot) -> i32 {
    snap.daemon_set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn mark(v: &NodeVerdict, snap: &Snapshot, pods: &HashMap<&str, &Pod>, min_ready: i32) -> NodeMark {
    let pod_name = v.pod.as_ref().map(|p| p.name.clone());
    let mut state = v.state.as_str().to_string();
    let first = v.reasons.iter().find(|r| !is_informational(r));
    if v.state == NodeState::Running {
        let available = pod_name
            .as_deref()
            .and_then(|n| pods.get(n))
            .is_some_and(|p| podstate::is_available(p, min_ready, snap.now.as_ref()));
        if available {
            state = AVAILABLE.to_string();
        } else if first.is_none() {
            return NodeMark {
                state,
                code: Some("MinReadySeconds"),
                message: Some(format!(
                    "Ready, not yet for minReadySeconds {min_ready}: not available yet"
                )),
                pod: pod_name,
                revision: v.pod.as_ref().and_then(|p| p.revision_number),
            };
        }
    }
    NodeMark {
        state,
        code: first.map(Reason::code),
        message: first.map(Reason::message),
        pod: pod_name,
        revision: v.pod.as_ref().and_then(|p| p.revision_number),
    }
}

/// Reasons that describe the node without being why its pod is where it is.
fn is_informational(r: &Reason) -> bool {
    matches!(r, Reason::Cordoned {} | Reason::AutoTolerated { .. })
}

/// The changes from `before` to `after`, in node order; nodes gone are reported as [`GONE`].
pub fn diff(
    before: &BTreeMap<String, NodeMark>,
    after: &BTreeMap<String, NodeMark>,
    now: &Time,
) -> Vec<NodeChange> {
    let time = time_text(now);
    let change = |node: &str, from: Option<&NodeMark>, to: &NodeMark| NodeChange {
        api_version: API_VERSION.to_string(),
        kind: "NodeChange".to_string(),
        time: time.clone(),
        node: node.to_string(),
        from: from.map(|m| m.state.clone()),
        to: to.state.clone(),
        reason: to.code.map(str::to_string),
        message: to.message.clone(),
        pod: to.pod.clone(),
        revision: to.revision,
    };
    let mut out = Vec::new();
    for (node, to) in after {
        match before.get(node) {
            Some(from) if from.same_as(to) => {}
            from => out.push(change(node, from, to)),
        }
    }
    for (node, from) in before {
        if !after.contains_key(node) {
            let gone = NodeMark {
                state: GONE.to_string(),
                code: None,
                message: None,
                pod: None,
                revision: None,
            };
            out.push(change(node, Some(from), &gone));
        }
    }
    out
}

/// A time as change lines print it: RFC 3339 to the second, UTC.
pub fn time_text(t: &Time) -> String {
    t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The progress counters of an explanation, and the nodes done.
pub fn progress(e: &Explanation, marks: &BTreeMap<String, NodeMark>) -> Progress {
    let c = &e.summary.computed;
    let done = e
        .nodes
        .iter()
        .filter(|v| v.should_run)
        .filter(|v| marks.get(&v.name).is_some_and(|m| m.state == AVAILABLE))
        .count();
    Progress {
        desired: c.desired,
        updated: c.up_to_date,
        available: c.available,
        done: i32::try_from(done).unwrap_or(i32::MAX),
    }
}

/// Done: the controller has seen the latest spec and snapshotted its template as a
/// ControllerRevision, and every desired node runs an available pod of that revision.
/// mirrors rollout_status.go DaemonSetStatusViewer.Status (Generation <= ObservedGeneration,
/// UpdatedNumberScheduled and NumberAvailable == DesiredNumberScheduled). The revision check
/// matters here because each kind is listed and watched on its own: revisions read before
/// the DaemonSet's latest change would make the previous revision look current (update.go
/// constructHistory).
pub fn is_done(snap: &Snapshot, e: &Explanation, p: &Progress) -> bool {
    let rules = Rules::for_version(snap.server_version.as_ref());
    if revision::construct_history(&snap.daemon_set, &snap.revisions, &rules)
        .current
        .is_none()
    {
        return false;
    }
    let observed = match (e.daemon_set.generation, e.daemon_set.observed_generation) {
        (Some(g), Some(o)) => g <= o,
        (None, _) => true,
        (Some(_), None) => false,
    };
    observed && p.updated >= p.desired && p.available >= p.desired && p.done >= p.desired
}

/// Why nothing progresses, from the current explanation. Each verdict names the nodes and the
/// next action; `NoProgress` only when no cause is recognised.
pub fn stuck_verdicts(
    snap: &Snapshot,
    e: &Explanation,
    marks: &BTreeMap<String, NodeMark>,
) -> Vec<StuckVerdict> {
    let ns = snap.namespace();
    let name = snap.name();
    let mut out = Vec::new();
    if let Some(v) = terminating_on_not_ready(snap, e, ns) {
        out.push(v);
    }
    if budget::is_on_delete(&snap.daemon_set) {
        if let Some(v) = on_delete(e, ns) {
            out.push(v);
        }
    } else {
        out.extend(blocked::surge_impossible(snap, e, ns, name));
        out.extend(budget_used(snap, e, marks, ns, name));
    }
    if out.is_empty() {
        if let Some(v) = waiting_min_ready(snap, e, marks) {
            out.push(v);
        }
    }
    if out.is_empty() {
        let stalled: Vec<&NodeVerdict> = e
            .nodes
            .iter()
            .filter(|v| v.should_run && marks.get(&v.name).is_none_or(|m| m.state != AVAILABLE))
            .collect();
        out.push(StuckVerdict {
            code: "NoProgress".into(),
            message: format!(
                "no node changed; not done: {}",
                listing(stalled.iter().map(|v| node_detail(v, marks)))
            ),
            nodes: stalled.iter().map(|v| v.name.clone()).collect(),
            pods: Vec::new(),
            next: format!("kubectl ds explain {name} -n {ns}"),
        });
    }
    out
}

/// At most 10 items, then "and N more".
fn listing(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut text = all.iter().take(10).cloned().collect::<Vec<_>>().join("; ");
    if all.len() > 10 {
        text.push_str(&format!("; and {} more", all.len() - 10));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

fn node_detail(v: &NodeVerdict, marks: &BTreeMap<String, NodeMark>) -> String {
    let m = marks.get(&v.name);
    let state = m.map(|m| m.state.as_str()).unwrap_or(v.state.as_str());
    let mut text = format!("{} {}", v.name, state);
    if let Some(p) = &v.pod {
        text.push_str(&format!(" (pod {})", p.name));
    }
    if let Some(msg) = m.and_then(|m| m.message.as_deref()) {
        let code = m.and_then(|m| m.code).unwrap_or("");
        text.push_str(&format!(": {code}: {msg}"));
    }
    text
}

fn on_delete(e: &Explanation, ns: &str) -> Option<StuckVerdict> {
    let outdated: Vec<&NodeVerdict> = e
        .nodes
        .iter()
        .filter(|v| {
            v.reasons
                .iter()
                .any(|r| matches!(r, Reason::OutdatedRevision { .. }))
        })
        .collect();
    if outdated.is_empty() {
        return None;
    }
    let pods: Vec<String> = outdated
        .iter()
        .filter_map(|v| v.pod.as_ref().map(|p| p.name.clone()))
        .collect();
    Some(StuckVerdict {
        code: "OnDelete".into(),
        message: format!(
            "updateStrategy OnDelete: nothing replaces an old pod until it is deleted; {} node(s) run an old revision: {}",
            outdated.len(),
            listing(outdated.iter().map(|v| match &v.pod {
                Some(p) => format!("{} (pod {})", v.name, p.name),
                None => v.name.clone(),
            }))
        ),
        nodes: outdated.iter().map(|v| v.name.clone()).collect(),
        next: format!(
            "delete the old pods, one node at a time: kubectl delete pod -n {ns} {}",
            pods.iter().take(10).cloned().collect::<Vec<_>>().join(" ")
        ),
        pods,
    })
}

/// The nodes using the maxUnavailable budget: desired, and no available pod (new pod not yet
/// available, or none yet). mirrors update.go rollingUpdate (numUnavailable counts nodes
/// whose pod is missing or not available).
fn budget_used(
    snap: &Snapshot,
    e: &Explanation,
    marks: &BTreeMap<String, NodeMark>,
    ns: &str,
    name: &str,
) -> Vec<StuckVerdict> {
    let unavailable: Vec<&NodeVerdict> = e
        .nodes
        .iter()
        .filter(|v| v.should_run)
        .filter(|v| marks.get(&v.name).is_some_and(|m| m.state != AVAILABLE))
        .filter(|v| v.state != NodeState::Outdated && v.state != NodeState::Terminating)
        .filter(|v| !matches!(marks.get(&v.name), Some(m) if m.code == Some("MinReadySeconds")))
        .collect();
    if unavailable.is_empty() {
        return Vec::new();
    }
    let desired = usize::try_from(e.summary.computed.desired).unwrap_or(0);
    let max = budget::budgets(&snap.daemon_set, desired).max_unavailable;
    let outdated_left = e.nodes.iter().any(|v| {
        v.should_run
            && v.reasons
                .iter()
                .any(|r| matches!(r, Reason::OutdatedRevision { .. }))
    });
    // Pending pods preemption cannot help get their own verdict, with the model's reason.
    let (no_preemption, unavailable): (Vec<&NodeVerdict>, Vec<&NodeVerdict>) = unavailable
        .into_iter()
        .partition(|v| blocked::preemption_not_helpful(v).is_some());
    let used_up = outdated_left && no_preemption.len() + unavailable.len() >= max;
    let mut out: Vec<StuckVerdict> = blocked::preemption_impossible(
        &no_preemption,
        used_up.then(|| {
            format!("maxUnavailable {max} is used up by the nodes not available, so no more old pods are replaced")
        }),
        ns,
        name,
    )
    .into_iter()
    .collect();
    if unavailable.is_empty() {
        return out;
    }
    let details = listing(unavailable.iter().map(|v| node_detail(v, marks)));
    let (code, message) = if used_up {
        (
            "MaxUnavailableUsed",
            format!(
                "maxUnavailable {max} is used up by {} node(s) whose new pod is not available, so no more old pods are replaced: {details}",
                unavailable.len()
            ),
        )
    } else {
        (
            "NewPodsNotAvailable",
            format!(
                "{} node(s) have no available pod: {details}",
                unavailable.len()
            ),
        )
    };
    let first_code = marks.get(&unavailable[0].name).and_then(|m| m.code);
    let first_pod = unavailable[0].pod.as_ref().map(|p| p.name.as_str());
    let fix = match (first_code, first_pod) {
        (Some("CrashLoopBackOff" | "PodFailed" | "PodNotReady"), Some(pod)) => {
            format!("read why it fails: kubectl logs -n {ns} {pod} --previous")
        }
        (Some("ImagePullBackOff" | "ErrImagePull"), _) => {
            "check the image name, tag and pull secrets".to_string()
        }
        (
            Some("Unschedulable" | "InsufficientResources" | "HostPortConflict" | "TooManyPods"),
            _,
        ) => "make room on the node (the scheduler's reason above)".to_string(),
        _ => format!(
            "kubectl ds explain {name} -n {ns} --node {}",
            unavailable[0].name
        ),
    };
    out.push(StuckVerdict {
        code: code.into(),
        message,
        nodes: unavailable.iter().map(|v| v.name.clone()).collect(),
        pods: unavailable
            .iter()
            .filter_map(|v| v.pod.as_ref().map(|p| p.name.clone()))
            .collect(),
        next: format!("{fix}; or roll back: kubectl rollout undo daemonset/{name} -n {ns}"),
    });
    out
}

/// A pod deleted on a node whose kubelet does not answer never finishes terminating, and the
/// controller creates no replacement until it is gone (podsShouldBeOnNode).
fn terminating_on_not_ready(snap: &Snapshot, e: &Explanation, ns: &str) -> Option<StuckVerdict> {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for v in &e.nodes {
        let terminating: Vec<&str> = v
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::Terminating { pod, .. } => Some(pod.as_str()),
                _ => None,
            })
            .collect();
        if terminating.is_empty() {
            continue;
        }
        let ready = snap
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(v.name.as_str()))
            .and_then(placement::ready_condition);
        if ready.as_deref() != Some("True") {
            nodes.push(v.name.clone());
            pods.extend(terminating.into_iter().map(str::to_string));
        }
    }
    if nodes.is_empty() {
        return None;
    }
    Some(StuckVerdict {
        code: "TerminatingOnNotReadyNode".into(),
        message: format!(
            "pod(s) {} are Terminating on NotReady node(s) {}: their kubelet cannot confirm the deletion, and no replacement is created until it does",
            pods.join(", "),
            nodes.join(", ")
        ),
        next: format!(
            "bring the node back, or delete the node object, or force the deletion: kubectl delete pod -n {ns} {} --grace-period=0 --force",
            pods.join(" ")
        ),
        nodes,
        pods,
    })
}

fn waiting_min_ready(
    snap: &Snapshot,
    e: &Explanation,
    marks: &BTreeMap<String, NodeMark>,
) -> Option<StuckVerdict> {
    let waiting: Vec<&NodeVerdict> = e
        .nodes
        .iter()
        .filter(|v| matches!(marks.get(&v.name), Some(m) if m.code == Some("MinReadySeconds")))
        .collect();
    if waiting.is_empty() {
        return None;
    }
    Some(StuckVerdict {
        code: "WaitingMinReadySeconds".into(),
        message: format!(
            "{} node(s) wait for their Ready pod to count as available (minReadySeconds {}): {}",
            waiting.len(),
            min_ready_seconds(snap),
            listing(waiting.iter().map(|v| v.name.clone()))
        ),
        nodes: waiting.iter().map(|v| v.name.clone()).collect(),
        pods: waiting
            .iter()
            .filter_map(|v| v.pod.as_ref().map(|p| p.name.clone()))
            .collect(),
        next: "wait: nothing is wrong unless the pods stop being Ready".into(),
    })
}

/// Does any node wait for time alone (a Ready pod not yet available)? Then the status must be
/// recomputed as time passes, even without a watch event.
pub fn awaits_time(marks: &BTreeMap<String, NodeMark>) -> bool {
    marks.values().any(|m| m.code == Some("MinReadySeconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::explain::{explain, NodeFilter};
    use crate::engine::model::PodSpec;
    use crate::engine::testutil::{daemon_set, node, pod};

    fn ds(strategy: &str) -> String {
        format!(
            r#"
metadata:
  name: agent
  namespace: ns
  uid: ds-uid
  generation: 2
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {strategy}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: agent, image: "agent:2"}}]
status: {{observedGeneration: 2}}
"#
        )
    }

    fn revision(
        hash: &str,
        rev: i64,
        image: &str,
    ) -> k8s_openapi::api::apps::v1::ControllerRevision {
        crate::yaml::from_str(&format!(
            r#"
metadata:
  name: agent-{hash}
  namespace: ns
  labels: {{app: agent, controller-revision-hash: {hash}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
revision: {rev}
data: {{"spec":{{"template":{{"$patch":"replace","metadata":{{"labels":{{"app":"agent"}}}},"spec":{{"containers":[{{"name":"agent","image":"{image}","resources":{{}}}}]}}}}}}}}
"#
        ))
        .unwrap()
    }

    /// A pod on `node` of revision `hash`; `status` is its YAML status block.
    fn agent_pod(name: &str, node: &str, hash: &str, status: &str) -> Pod {
        pod(&format!(
            r#"
metadata:
  name: {name}
  namespace: ns
  uid: uid-{name}
  labels: {{app: agent, controller-revision-hash: {hash}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
spec:
  nodeName: {node}
  containers: [{{name: agent, image: "agent"}}]
status:
{status}
"#
        ))
    }

    const READY: &str = "  phase: Running\n  conditions: [{type: Ready, status: \"True\", lastTransitionTime: \"2026-01-01T00:00:00Z\"}]";
    const CRASHING: &str = r#"  phase: Running
  conditions: [{type: Ready, status: "False"}]
  containerStatuses:
  - name: agent
    image: agent:2
    imageID: ""
    ready: false
    restartCount: 5
    lastState: {terminated: {exitCode: 1, reason: Error}}
    state: {waiting: {reason: CrashLoopBackOff, message: back-off 2m40s}}"#;

    fn snapshot(strategy: &str, pods: Vec<Pod>) -> Snapshot {
        Snapshot {
            daemon_set: daemon_set(&ds(strategy)),
            nodes: ["n1", "n2", "n3"]
                .iter()
                .map(|n| {
                    node(&format!(
                        "metadata: {{name: {n}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}]}}"
                    ))
                })
                .collect::<Vec<_>>()
                .into(),
            pods,
            revisions: vec![revision("old", 1, "agent:1"), revision("new", 2, "agent:2")],
            now: Some(Time("2026-01-01T00:10:00Z".parse().unwrap())),
            ..Default::default()
        }
    }

    fn observe(snap: &Snapshot) -> (Explanation, BTreeMap<String, NodeMark>) {
        let e = explain(snap, &NodeFilter::default());
        let m = marks(&e, snap);
        (e, m)
    }

    #[test]
    fn changes_between_two_observations_and_done() {
        let rolling = "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}";
        let before = snapshot(
            rolling,
            vec![
                agent_pod("a", "n1", "old", READY),
                agent_pod("b", "n2", "old", READY),
                agent_pod("c", "n3", "new", READY),
            ],
        );
        let (e1, m1) = observe(&before);
        assert_eq!(m1["n1"].state, "Outdated");
        assert_eq!(m1["n3"].state, AVAILABLE);
        let p1 = progress(&e1, &m1);
        assert_eq!((p1.desired, p1.updated, p1.done), (3, 1, 1));
        assert!(!is_done(&before, &e1, &p1));
        let now = Time("2026-01-01T00:10:05Z".parse().unwrap());
        let first = diff(&BTreeMap::new(), &m1, &now);
        assert_eq!(first.len(), 3, "every node is new: {first:?}");
        assert!(first.iter().all(|c| c.from.is_none()));

        let after = snapshot(
            rolling,
            vec![
                agent_pod("a2", "n1", "new", READY),
                agent_pod("b2", "n2", "new", READY),
                agent_pod("c", "n3", "new", READY),
            ],
        );
        let (e2, m2) = observe(&after);
        let changes = diff(&m1, &m2, &now);
        let nodes: Vec<(&str, Option<&str>, &str)> = changes
            .iter()
            .map(|c| (c.node.as_str(), c.from.as_deref(), c.to.as_str()))
            .collect();
        assert_eq!(
            nodes,
            [
                ("n1", Some("Outdated"), AVAILABLE),
                ("n2", Some("Outdated"), AVAILABLE)
            ]
        );
        assert_eq!(changes[0].kind, "NodeChange");
        assert_eq!(changes[0].revision, Some(2));
        let p2 = progress(&e2, &m2);
        assert!(is_done(&after, &e2, &p2), "{p2:?}");

        // A node deleted is reported Gone.
        let mut fewer = after.clone();
        std::sync::Arc::make_mut(&mut fewer.nodes)
            .retain(|n| n.metadata.name.as_deref() != Some("n3"));
        fewer
            .pods
            .retain(|p| p.metadata.name.as_deref() != Some("c"));
        let (_, m3) = observe(&fewer);
        let gone = diff(&m2, &m3, &now);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].node.as_str(), gone[0].to.as_str()), ("n3", GONE));
    }

    #[test]
    fn not_done_until_the_controller_observed_the_generation() {
        let mut snap = snapshot("{type: RollingUpdate}", vec![]);
        for (p, n) in [("a", "n1"), ("b", "n2"), ("c", "n3")] {
            snap.pods.push(agent_pod(p, n, "new", READY));
        }
        let (e, m) = observe(&snap);
        assert!(is_done(&snap, &e, &progress(&e, &m)));
        snap.daemon_set.metadata.generation = Some(3);
        let (e, m) = observe(&snap);
        assert!(!is_done(&snap, &e, &progress(&e, &m)));
        // Observed, but the revisions seen predate the template (listed before the
        // controller snapshotted it): the highest revision looks current, yet it is not done.
        snap.daemon_set.status.as_mut().unwrap().observed_generation = Some(3);
        let (e, m) = observe(&snap);
        assert!(is_done(&snap, &e, &progress(&e, &m)));
        let template = snap
            .daemon_set
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap();
        template.containers[0].image = Some("agent:3".into());
        let (e, m) = observe(&snap);
        assert_eq!(
            m["n1"].state, AVAILABLE,
            "explain falls back to the highest revision"
        );
        assert!(!is_done(&snap, &e, &progress(&e, &m)));
    }

    #[test]
    fn crash_looping_new_pod_uses_the_budget() {
        let snap = snapshot(
            "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}",
            vec![
                agent_pod("a", "n1", "new", CRASHING),
                agent_pod("b", "n2", "old", READY),
                agent_pod("c", "n3", "old", READY),
            ],
        );
        let (e, m) = observe(&snap);
        assert_eq!(m["n1"].code, Some("CrashLoopBackOff"));
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].code, "MaxUnavailableUsed");
        assert_eq!(v[0].nodes, ["n1"]);
        assert_eq!(v[0].pods, ["a"]);
        assert!(
            v[0].message.contains("maxUnavailable 1"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message.contains("CrashLoopBackOff"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].next.contains("kubectl logs -n ns a --previous"),
            "{}",
            v[0].next
        );
        assert!(
            v[0].next.contains("rollout undo daemonset/agent"),
            "{}",
            v[0].next
        );
    }

    #[test]
    fn on_delete_names_the_pods_to_delete() {
        let snap = snapshot(
            "{type: OnDelete}",
            vec![
                agent_pod("a", "n1", "old", READY),
                agent_pod("b", "n2", "old", READY),
                agent_pod("c", "n3", "new", READY),
            ],
        );
        let (e, m) = observe(&snap);
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v[0].code, "OnDelete");
        assert_eq!(v[0].nodes, ["n1", "n2"]);
        assert_eq!(v[0].pods, ["a", "b"]);
        assert!(
            v[0].next.contains("kubectl delete pod -n ns a b"),
            "{}",
            v[0].next
        );
    }

    #[test]
    fn terminating_pod_on_a_not_ready_node() {
        let mut snap = snapshot(
            "{type: RollingUpdate}",
            vec![
                pod(r#"
metadata:
  name: t
  namespace: ns
  uid: uid-t
  deletionTimestamp: "2026-01-01T00:05:00Z"
  labels: {app: agent, controller-revision-hash: old}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}]
spec: {nodeName: n1, containers: [{name: agent, image: agent}]}
status: {phase: Running}
"#),
                agent_pod("b", "n2", "new", READY),
                agent_pod("c", "n3", "new", READY),
            ],
        );
        std::sync::Arc::make_mut(&mut snap.nodes)[0] = node(
            "metadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: Unknown}]}\nspec: {taints: [{key: node.kubernetes.io/unreachable, effect: NoSchedule}]}",
        );
        let (e, m) = observe(&snap);
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v[0].code, "TerminatingOnNotReadyNode", "{v:?}");
        assert_eq!(v[0].nodes, ["n1"]);
        assert!(v[0]
            .next
            .contains("kubectl delete pod -n ns t --grace-period=0 --force"));
    }

    #[test]
    fn min_ready_seconds_is_waiting_not_broken() {
        let mut snap = snapshot("{type: RollingUpdate}", vec![]);
        snap.daemon_set.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let fresh = "  phase: Running\n  conditions: [{type: Ready, status: \"True\", lastTransitionTime: \"2026-01-01T00:09:50Z\"}]";
        for (p, n) in [("a", "n1"), ("b", "n2"), ("c", "n3")] {
            snap.pods.push(agent_pod(p, n, "new", fresh));
        }
        let (e, m) = observe(&snap);
        assert_eq!(m["n1"].state, "Running");
        assert_eq!(m["n1"].code, Some("MinReadySeconds"));
        assert!(awaits_time(&m));
        assert!(!is_done(&snap, &e, &progress(&e, &m)));
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v[0].code, "WaitingMinReadySeconds", "{v:?}");
        // 30 s later they are available and the rollout is done.
        snap.now = Some(Time("2026-01-01T00:10:30Z".parse().unwrap()));
        let (e, m) = observe(&snap);
        assert_eq!(m["n1"].state, AVAILABLE);
        assert!(is_done(&snap, &e, &progress(&e, &m)));
    }

    /// A pod of the new revision not scheduled yet: pinned to `node` by the controller's
    /// affinity, with the scheduler's PodScheduled condition. `extra` is more spec YAML.
    fn pending_pod(name: &str, node: &str, extra: &str, message: &str) -> Pod {
        pod(&format!(
            r#"
metadata:
  name: {name}
  namespace: ns
  uid: uid-{name}
  creationTimestamp: "2026-01-01T00:09:00Z"
  labels: {{app: agent, controller-revision-hash: new}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchFields: [{{key: metadata.name, operator: In, values: [{node}]}}]
{extra}
status:
  phase: Pending
  conditions: [{{type: PodScheduled, status: "False", reason: Unschedulable, message: "{message}"}}]
"#
        ))
    }

    const PORTS: &str = "  containers: [{name: agent, image: agent, ports: [{containerPort: 8080, hostPort: 8080, protocol: TCP}]}]";

    /// maxSurge 1 and a host port: the new pod on n1 waits beside the old one, which holds the
    /// port; the controller surges on no other node. The verdict names the node, both pods,
    /// the port and the next action.
    #[test]
    fn surge_is_impossible_beside_a_pod_holding_the_host_port() {
        let with_port = |p: Pod| {
            let mut p = p;
            let spec: PodSpec = crate::engine::testutil::pod_spec(PORTS);
            p.spec.as_mut().unwrap().containers = spec.containers;
            p
        };
        let mut snap = snapshot(
            "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}",
            vec![
                with_port(agent_pod("a", "n1", "old", READY)),
                pending_pod(
                    "a2",
                    "n1",
                    PORTS,
                    "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.",
                ),
                with_port(agent_pod("b", "n2", "old", READY)),
                with_port(agent_pod("c", "n3", "old", READY)),
            ],
        );
        let template_spec: k8s_openapi::api::core::v1::PodSpec =
            crate::yaml::from_str(PORTS).unwrap();
        snap.daemon_set
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers = template_spec.containers;
        let (e, m) = observe(&snap);
        // explain shows the old pod on n1 (the controller keeps the oldest): Outdated, not a
        // budget problem, so the budget verdict alone would have said nothing.
        assert_eq!(m["n1"].state, "Outdated");
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v[0].code, "SurgeImpossible", "{v:#?}");
        assert_eq!(v[0].nodes, ["n1"]);
        assert_eq!(v[0].pods, ["a2", "a"]);
        assert!(v[0].message.contains("maxSurge 1"), "{}", v[0].message);
        assert!(
            v[0].message
                .contains("host port 0.0.0.0:8080/TCP is held by pod ns/a")
                || v[0]
                    .message
                    .contains("host port 0.0.0.0:8080/TCP is held by pod a"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].next.contains("\"maxSurge\":0,\"maxUnavailable\":1"),
            "{}",
            v[0].next
        );
        assert!(
            v[0].next.contains("kubectl delete pod -n ns a"),
            "{}",
            v[0].next
        );
        assert!(v.iter().all(|v| v.code != "NoProgress"), "{v:#?}");
        // The wave: n1 is being updated (its new pod exists), n2 and n3 wait; one per wave.
        let w = wave(&snap, &e, &m).unwrap();
        assert_eq!((w.current, w.total, w.per_wave), (1, 3, 1), "{w:?}");
        assert_eq!((w.nodes_to_update, w.nodes_in_progress), (2, 1));
        assert_eq!(w.max_surge, 1);

        // Without the host port the same surge fits (the scheduler has not said otherwise yet):
        // no SurgeImpossible.
        let mut free = snap.clone();
        for p in &mut free.pods {
            p.spec.as_mut().unwrap().containers[0].ports = None;
        }
        free.pods[1].status = None;
        let (e, m) = observe(&free);
        let v = stuck_verdicts(&free, &e, &m);
        assert!(v.iter().all(|v| v.code != "SurgeImpossible"), "{v:#?}");
    }

    /// maxUnavailable 1: n1's old pod is gone and its new pod is Pending for cpu; the other
    /// pod on n1 has a higher priority, so preemption cannot make room. The verdict says so
    /// with the model's reason instead of a plain InsufficientResources.
    #[test]
    fn preemption_impossible_for_a_pending_new_pod() {
        let mut snap = snapshot(
            "{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}",
            vec![
                pending_pod(
                    "a2",
                    "n1",
                    "  priority: 0\n  containers: [{name: agent, image: agent, resources: {requests: {cpu: '2'}}}]",
                    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                ),
                agent_pod("b", "n2", "old", READY),
                agent_pod("c", "n3", "old", READY),
            ],
        );
        std::sync::Arc::make_mut(&mut snap.nodes)[0] = node(
            "metadata: {name: n1}\nstatus: {allocatable: {cpu: '2', memory: 8Gi, pods: '110'}, conditions: [{type: Ready, status: 'True'}]}",
        );
        let db = pod(r#"
metadata: {name: db, namespace: other, uid: uid-db}
spec:
  nodeName: n1
  priority: 1000
  containers: [{name: db, image: db, resources: {requests: {cpu: '1'}}}]
status: {phase: Running}
"#);
        snap.pods_on_nodes.insert("n1".into(), vec![db]);
        let (e, m) = observe(&snap);
        let v = stuck_verdicts(&snap, &e, &m);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(v[0].code, "PreemptionImpossible");
        assert_eq!(v[0].nodes, ["n1"]);
        assert_eq!(v[0].pods, ["a2"]);
        assert!(
            v[0].message.contains("insufficient cpu"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message.contains("preemption cannot help")
                && v[0].message.contains("equal or higher priority"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message.contains("maxUnavailable 1 is used up"),
            "{}",
            v[0].message
        );
        assert!(v[0].next.contains("PriorityClass"), "{}", v[0].next);

        // preemptionPolicy Never: the model's reason changes, and so does the advice.
        let mut never = snap.clone();
        never.pods[0].spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let (e, m) = observe(&never);
        let v = stuck_verdicts(&never, &e, &m);
        assert_eq!(v[0].code, "PreemptionImpossible", "{v:#?}");
        assert!(
            v[0].message.contains("preemptionPolicy is Never"),
            "{}",
            v[0].message
        );

        // A lower-priority pod there: preemption makes room, so it is not "impossible".
        let mut low = snap.clone();
        low.pods_on_nodes.get_mut("n1").unwrap()[0]
            .spec
            .as_mut()
            .unwrap()
            .priority = Some(-10);
        let (e, m) = observe(&low);
        let v = stuck_verdicts(&low, &e, &m);
        assert!(v.iter().all(|v| v.code != "PreemptionImpossible"), "{v:#?}");
        assert_eq!(v[0].code, "MaxUnavailableUsed", "{v:#?}");
    }
}
