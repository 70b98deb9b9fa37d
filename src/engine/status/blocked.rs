//! Two stuck verdicts about new pods that cannot start: a surge the node cannot hold (the new
//! pod Pending beside the old one, for a host port or room), and a new pod Pending for
//! resources that preemption cannot help.

use std::collections::HashMap;

use crate::engine::model::Node;
use crate::engine::model::Pod;

use super::{listing, StuckVerdict};
use crate::engine::budget;
use crate::engine::explain::{pods_by_node, Explanation, NodeVerdict};
use crate::engine::fit;
use crate::engine::podstate;
use crate::engine::reason::{NotHelpful, Reason};
use crate::engine::revision;
use crate::engine::snapshot::Snapshot;
use crate::engine::version::Rules;

/// One node where a surged pod cannot start.
struct SurgeBlock<'a> {
    node: String,
    old: &'a Pod,
    new: &'a Pod,
    why: Vec<Reason>,
}

/// With maxSurge > 0 the controller creates the new pod while the old one runs, and counts a
/// node whose new pod is not available against maxSurge (numSurge); once numSurge reaches
/// maxSurge no other node starts. A new pod the scheduler cannot place beside the old one (a
/// host port the old pod holds, or no room for both) is never available: the rollout stalls.
/// mirrors update.go rollingUpdate (surge path: `newPod == nil` -> candidate while
/// numSurge < maxSurge; new pod not available -> numSurge++) and the scheduler's NodePorts /
/// NodeResourcesFit filters ([`fit::misfits`]); k/k#106417.
pub(super) fn surge_impossible(
    snap: &Snapshot,
    e: &Explanation,
    ns: &str,
    name: &str,
) -> Option<StuckVerdict> {
    let ds = &snap.daemon_set;
    let desired = usize::try_from(e.summary.computed.desired).unwrap_or(0);
    let max_surge = budget::budgets(ds, desired).max_surge;
    if budget::is_on_delete(ds) || max_surge == 0 {
        return None;
    }
    let blocks = surge_blocks(snap, e);
    if blocks.is_empty() {
        return None;
    }
    Some(surge_verdict(&blocks, max_surge, ns, name))
}

/// The desired nodes with an old pod and, beside it, a new pod not scheduled that does not fit.
fn surge_blocks<'a>(snap: &'a Snapshot, e: &Explanation) -> Vec<SurgeBlock<'a>> {
    let ds = &snap.daemon_set;
    let rules = Rules::for_version(snap.server_version.as_ref());
    let hash = revision::current_revision(ds, &snap.revisions, &rules).map(revision::revision_hash);
    let generation = revision::template_generation(ds);
    let by_node: HashMap<String, Vec<&Pod>> = pods_by_node(ds, &snap.pods);
    let nodes: HashMap<&str, &Node> = snap
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    let mut blocks: Vec<SurgeBlock> = Vec::new();
    for v in e.nodes.iter().filter(|v| v.should_run) {
        let Some(pods) = by_node.get(&v.name) else {
            continue;
        };
        let active: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| !podstate::is_terminating(p))
            .collect();
        let (new, old): (Vec<&Pod>, Vec<&Pod>) = active
            .iter()
            .partition(|p| revision::is_pod_updated(p, hash.as_deref(), generation, &rules));
        let (Some(new), Some(old)) = (new.first(), old.first()) else {
            continue;
        };
        if podstate::is_scheduled(new) {
            continue;
        }
        let Some(node) = nodes.get(v.name.as_str()) else {
            continue;
        };
        let why = surge_misfits(snap, node, new, &active);
        if why.is_empty() {
            continue;
        }
        blocks.push(SurgeBlock {
            node: v.name.clone(),
            old,
            new,
            why,
        });
    }
    blocks
}

fn surge_verdict(blocks: &[SurgeBlock], max_surge: usize, ns: &str, name: &str) -> StuckVerdict {
    let host_port = blocks.iter().any(|b| {
        b.why
            .iter()
            .any(|r| matches!(r, Reason::HostPortConflict { .. }))
    });
    let pod_name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    let details = listing(blocks.iter().map(|b| {
        let why: Vec<String> = b.why.iter().map(Reason::message).collect();
        format!(
            "{} (new pod {} Pending beside old pod {}: {})",
            b.node,
            pod_name(b.new),
            pod_name(b.old),
            why.join("; ")
        )
    }));
    let olds: Vec<String> = blocks.iter().map(|b| pod_name(b.old)).collect();
    let fix = if host_port {
        "a pod with a host port cannot surge: two pods on a node cannot hold the same port"
    } else {
        "the node has no room for both pods"
    };
    StuckVerdict {
        code: "SurgeImpossible".into(),
        message: format!(
            "maxSurge {max_surge}: the new pod cannot start next to the old one on {} node(s), so it never becomes available and no other node starts (the controller surges on at most {max_surge} node(s) at a time): {details}",
            blocks.len()
        ),
        nodes: blocks.iter().map(|b| b.node.clone()).collect(),
        next: format!(
            "{fix}; update without surge: kubectl patch daemonset/{name} -n {ns} --type merge -p '{{\"spec\":{{\"updateStrategy\":{{\"rollingUpdate\":{{\"maxSurge\":0,\"maxUnavailable\":1}}}}}}}}'; or delete the old pod so the new one can start (that node is down meanwhile): kubectl delete pod -n {ns} {}",
            olds.iter().take(10).cloned().collect::<Vec<_>>().join(" ")
        ),
        pods: blocks.iter().flat_map(|b| [pod_name(b.new), pod_name(b.old)]).collect(),
    }
}

/// Why the new pod does not fit beside the pods on the node: every pod bound there when they
/// were fetched (`pods_on_nodes`), else the DaemonSet's own (the old pod: enough for a host
/// port). Falls back to the scheduler's own words (PodScheduled condition) when the model
/// finds nothing it can name.
fn surge_misfits(snap: &Snapshot, node: &Node, new: &Pod, own: &[&Pod]) -> Vec<Reason> {
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let new_uid = new.metadata.uid.as_deref();
    let mut others: Vec<Pod> = snap
        .pods_on_nodes
        .get(node_name)
        .map(|pods| pods.to_vec())
        .unwrap_or_default();
    for p in own {
        if !others.iter().any(|o| o.metadata.uid == p.metadata.uid) {
            others.push((*p).clone());
        }
    }
    others.retain(|o| o.metadata.uid.as_deref() != new_uid || new_uid.is_none());
    let spec = new.spec.clone().unwrap_or_default();
    let found = fit::misfits(&spec, node, &others);
    if !found.is_empty() {
        return found;
    }
    scheduler_message(new)
        .map(|m| {
            vec![Reason::Unschedulable {
                entries: crate::engine::schedmsg::parse(&m),
                scheduler_message: m,
            }]
        })
        .unwrap_or_default()
}

fn scheduler_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
        .message
        .clone()
}

/// The preemption model's answer for a node whose new pod is Pending and does not fit: why
/// preemption cannot make room (from the node's reasons, computed by explain from the pods on
/// the node).
pub(super) fn preemption_not_helpful(v: &NodeVerdict) -> Option<(NotHelpful, String)> {
    v.reasons.iter().find_map(|r| match r {
        Reason::PreemptionNotHelpful { why, .. } => Some((*why, r.message())),
        _ => None,
    })
}

/// Pending new pods for which preemption cannot help: the scheduler will not make room, so
/// the nodes wait for someone to. mirrors default_preemption.go (PodEligibleToPreemptOthers,
/// SelectVictimsOnNode) through [`crate::engine::preemption`].
pub(super) fn preemption_impossible(
    pending: &[&NodeVerdict],
    budget_note: Option<String>,
    ns: &str,
    name: &str,
) -> Option<StuckVerdict> {
    let found: Vec<(&NodeVerdict, NotHelpful, String)> = pending
        .iter()
        .filter_map(|v| preemption_not_helpful(v).map(|(why, msg)| (*v, why, msg)))
        .collect();
    if found.is_empty() {
        return None;
    }
    let details = listing(found.iter().map(|(v, _, msg)| {
        let misfit: Vec<String> = v
            .reasons
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Reason::InsufficientResources { .. }
                        | Reason::HostPortConflict { .. }
                        | Reason::TooManyPods { .. }
                )
            })
            .map(Reason::message)
            .collect();
        let pod = v.pod.as_ref().map(|p| p.name.as_str()).unwrap_or("-");
        format!("{} (pod {pod}: {}; {msg})", v.name, misfit.join("; "))
    }));
    let whys: Vec<NotHelpful> = found.iter().map(|(_, w, _)| *w).collect();
    let next = if whys.contains(&NotHelpful::PolicyNever) {
        "its preemptionPolicy is Never: use a PriorityClass with preemptionPolicy PreemptLowerPriority, or free room on the node"
    } else if whys.contains(&NotHelpful::NoLowerPriorityPods) {
        "give the DaemonSet a PriorityClass above the pods on the node (node agents: system-node-critical), or free room on the node"
    } else if whys.contains(&NotHelpful::StillDoesNotFit) {
        "lower the DaemonSet's requests or give the node more allocatable: even with every lower-priority pod evicted it does not fit"
    } else {
        "free room on the node, or fix the pod's priority"
    };
    let mut message = format!(
        "{} node(s) have a new pod Pending that does not fit, and preemption cannot make room: {details}",
        found.len()
    );
    if let Some(note) = budget_note {
        message.push_str(&format!("; {note}"));
    }
    Some(StuckVerdict {
        code: "PreemptionImpossible".into(),
        message,
        nodes: found.iter().map(|(v, ..)| v.name.clone()).collect(),
        pods: found
            .iter()
            .filter_map(|(v, ..)| v.pod.as_ref().map(|p| p.name.clone()))
            .collect(),
        next: format!("{next}; or roll back: kubectl rollout undo daemonset/{name} -n {ns}"),
    })
}
