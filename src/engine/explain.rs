//! `explain`: one state and its reasons per node, and a summary that reconciles the
//! DaemonSet's status counters with what is seen.
//! mirrors daemon_controller.go podsShouldBeOnNode / updateDaemonSetStatus over NodeShouldRunDaemonPod

use std::collections::{BTreeMap, HashMap};

use crate::engine::model::Node;
use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Toleration};
use serde::{Deserialize, Serialize};

use super::budget;
use super::fit;
use super::labels::{self, Selector};
use super::placement::{self, Eligibility};
use super::podstate;
use super::preemption;
use super::reason::{serialize_reasons, taint_text, Reason};
use super::revision;
use super::schedmsg;
use super::snapshot::{is_claimed_by, Snapshot};
use super::taints;
use super::version::Rules;

pub const API_VERSION: &str = "kubectl-ds/v1";

/// One state per node. Problems sort first (the order of the variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeState {
    /// Eligible node without a pod.
    Missing,
    /// A pod not yet bound to the node.
    Pending,
    /// A pod bound, not Ready.
    Unhealthy,
    /// A pod on a node that should not run one.
    Misscheduled,
    /// Only terminating pods.
    Terminating,
    /// Ready, older revision.
    Outdated,
    /// Ready, current revision.
    Running,
    /// Not eligible, no pod: as it should be.
    NotEligible,
}

impl NodeState {
    pub const ALL: [NodeState; 8] = [
        NodeState::Missing,
        NodeState::Pending,
        NodeState::Unhealthy,
        NodeState::Misscheduled,
        NodeState::Terminating,
        NodeState::Outdated,
        NodeState::Running,
        NodeState::NotEligible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Missing => "Missing",
            NodeState::Pending => "Pending",
            NodeState::Unhealthy => "Unhealthy",
            NodeState::Misscheduled => "Misscheduled",
            NodeState::Terminating => "Terminating",
            NodeState::Outdated => "Outdated",
            NodeState::Running => "Running",
            NodeState::NotEligible => "NotEligible",
        }
    }
}

/// The status counters, as the DaemonSet's status names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub up_to_date: i32,
    pub available: i32,
    pub misscheduled: i32,
    pub unavailable: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub update_strategy: String,
    pub current_revision: Option<String>,
    pub status: Counters,
}

/// Fields in the order of their JSON keys (render::sorted_json then writes them as they come).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub name: String,
    pub node_name: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    pub revision: Option<String>,
    pub revision_number: Option<i64>,
    pub uid: String,
}

/// Fields in the order of their JSON keys (render::sorted_json then writes them as they come).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeVerdict {
    pub name: String,
    pub pod: Option<PodInfo>,
    #[serde(serialize_with = "serialize_reasons")]
    pub reasons: Vec<Reason>,
    pub should_continue_running: bool,
    pub should_run: bool,
    pub state: NodeState,
}

/// One ineligibility cause and how many nodes it removes from DESIRED.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exclusion {
    pub code: String,
    pub nodes: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Nodes listed (after --node / -l).
    pub shown: usize,
    /// The counters as computed here from the objects.
    pub computed: Counters,
    /// Ineligible nodes, by their first reason.
    pub excluded: Vec<Exclusion>,
    /// "desired 7 = 10 nodes - 2 UntoleratedTaint - 1 NodeSelectorMismatch".
    pub reconciliation: String,
    /// Nodes per state.
    pub states: BTreeMap<String, usize>,
    /// The status is behind (observedGeneration) or its counters disagree with the pods.
    pub stale: bool,
    pub notes: Vec<String>,
    /// DaemonSet-wide reasons (SelectingAll, DaemonSetDeleting).
    #[serde(serialize_with = "serialize_reasons")]
    pub daemon_set_reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub daemon_set: DaemonSetInfo,
    /// The server version and the version-dependent rules the verdicts were computed with.
    pub rules: Rules,
    pub summary: Summary,
    pub nodes: Vec<NodeVerdict>,
}

/// Which nodes to list (`--node`, `-l`). The summary always covers every node.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub names: Vec<String>,
    pub selector: Option<Selector>,
    /// No node at all: the summary only (the overview of `explain -A`, which shows no node
    /// verdicts, need not keep and sort 5,000 of them per DaemonSet).
    pub summary_only: bool,
}

impl NodeFilter {
    /// Lists no node (the summary still covers every node).
    pub fn summary_only() -> NodeFilter {
        NodeFilter {
            summary_only: true,
            ..Default::default()
        }
    }

    pub fn parse(names: &[String], selector: Option<&str>) -> Result<NodeFilter, String> {
        let selector = selector.map(labels::parse).transpose()?;
        Ok(NodeFilter {
            names: names.to_vec(),
            selector,
            summary_only: false,
        })
    }

    fn keeps(&self, node: &Node) -> bool {
        let name = node.metadata.name.as_deref().unwrap_or("");
        !self.summary_only
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(node.metadata.labels.as_ref()))
    }
}

/// The DaemonSet's pods grouped by target node, terminal+deleted ones dropped.
/// mirrors daemon_controller.go getNodesToDaemonPods(includeDeletedTerminal=false)
pub fn pods_by_node<'a>(ds: &DaemonSet, pods: &'a [Pod]) -> HashMap<String, Vec<&'a Pod>> {
    let mut map: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in pods {
        if !is_claimed_by(ds, &p.metadata) {
            continue;
        }
        let terminal = matches!(podstate::phase(p), "Succeeded" | "Failed");
        if terminal && podstate::is_terminating(p) {
            continue;
        }
        if let Some(node) = podstate::target_node(p) {
            map.entry(node).or_default().push(p);
        }
    }
    map
}

/// Nodes whose DaemonSet pod waits for the scheduler: only these need the other pods bound to
/// them fetched (for the resource and host-port fit check).
pub fn nodes_needing_fit_check(snap: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> = snap
        .pods
        .iter()
        .filter_map(|p| fit_check_node(&snap.daemon_set, p))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The node a pod makes [`nodes_needing_fit_check`] list, if any: the node of a pod of the
/// DaemonSet (as [`pods_by_node`] counts them) that is neither terminating nor scheduled. One
/// pod at a time, so the fetch can ask for that node's pods as soon as the pod is read.
pub fn fit_check_node(ds: &DaemonSet, pod: &Pod) -> Option<String> {
    // pods_by_node's filter (a terminating pod is dropped here in any phase).
    if !is_claimed_by(ds, &pod.metadata)
        || podstate::is_terminating(pod)
        || podstate::is_scheduled(pod)
    {
        return None;
    }
    podstate::target_node(pod)
}

/// The namespaces whose PodDisruptionBudgets matter: those of the lower-priority pods on the
/// nodes where a pending pod does not fit (preemption could evict them).
pub fn preemption_namespaces(snap: &Snapshot) -> Vec<String> {
    let by_node = pods_by_node(&snap.daemon_set, &snap.pods);
    let mut out: Vec<String> = Vec::new();
    for node in snap.nodes.iter() {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let (Some(own), Some(on_node)) = (by_node.get(name), snap.pods_on_nodes.get(name)) else {
            continue;
        };
        for pod in own.iter().filter(|p| !podstate::is_scheduled(p)) {
            let spec = pod.spec.clone().unwrap_or_default();
            let others: Vec<Pod> = on_node
                .iter()
                .filter(|o| o.metadata.uid != pod.metadata.uid)
                .cloned()
                .collect();
            // Cheap first: no lower-priority pod, no budget to read.
            let priority = snap.priorities.priority_of(&spec);
            let namespaces = preemption::victim_namespaces(&priority, &others);
            if !namespaces.is_empty() && !fit::misfits(&spec, node, &others).is_empty() {
                out.extend(namespaces.into_iter().map(str::to_string));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Explains every node.
pub fn explain(snap: &Snapshot, filter: &NodeFilter) -> Explanation {
    let ds = &snap.daemon_set;
    let spec = placement::template_spec(ds);
    let placer = placement::Placer::new(&spec);
    let mut placement = placement::Memo::new(&placer);
    let ctx = Context::new(snap, placer.tolerations());
    let by_node = pods_by_node(ds, &snap.pods);
    let mut computed = Counters::default();
    // Counted by static names (one map entry per kind, not a string per node and DaemonSet).
    let mut excluded: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut states: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut nodes = Vec::new();
    // The reasons of the nodes not listed that the summary's notes depend on.
    let mut noted: Vec<Reason> = Vec::new();
    for node in snap.nodes.iter() {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let elig = placement.node_should_run(node);
        let pods: &[&Pod] = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
        count_status(&ctx, elig, pods, &mut computed);
        if !elig.should_run {
            if let Some(first) = elig.reasons.iter().find(|r| r.is_eligibility()) {
                *excluded.entry(first.code()).or_default() += 1;
            }
        }
        let keep = filter.keeps(node);
        let verdict = node_verdict(&ctx, node, name, elig, pods, keep);
        *states.entry(verdict.state.as_str()).or_default() += 1;
        if keep {
            nodes.push(verdict);
        } else {
            // The notes below are about every node, listed or not.
            noted.extend(
                verdict
                    .reasons
                    .into_iter()
                    .filter(super::preemption::ClusterPriorities::is_noted),
            );
        }
    }
    computed.unavailable = computed.desired - computed.available;
    nodes.sort_by(|a, b| a.state.cmp(&b.state).then_with(|| a.name.cmp(&b.name)));
    let daemon_set = ds_info(snap, ctx.current_hash.clone());
    let mut summary = summarise(snap, &daemon_set, computed, excluded, states, nodes.len());
    let computed_reasons = nodes.iter().flat_map(|n| n.reasons.iter()).chain(&noted);
    summary
        .notes
        .extend(snap.priorities.notes(computed_reasons));
    Explanation {
        api_version: API_VERSION,
        kind: "Explanation",
        daemon_set,
        rules: ctx.rules.clone(),
        summary,
        nodes,
    }
}

/// What every node verdict needs, computed once.
struct Context<'a> {
    snap: &'a Snapshot,
    current_hash: Option<String>,
    template_generation: Option<i64>,
    rules: Rules,
    min_ready_seconds: i32,
    on_delete: bool,
    failed_create: Option<Reason>,
    failed_pod_events: HashMap<String, String>,
    scheduling_events: HashMap<String, String>,
    /// The created pods' tolerations (template + automatic), as placement computed them.
    tolerations: &'a [Toleration],
    /// maxSurge > 0: a new pod is created beside terminating ones.
    surge: bool,
}

impl<'a> Context<'a> {
    fn new(snap: &'a Snapshot, tolerations: &'a [Toleration]) -> Self {
        let ds = &snap.daemon_set;
        let spec = ds.spec.as_ref();
        let rules = Rules::for_version(snap.server_version.as_ref());
        let current_hash =
            revision::current_revision(ds, &snap.revisions, &rules).map(revision::revision_hash);
        let on_delete = spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete");
        let ds_events: Vec<&Event> = snap
            .events
            .iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("DaemonSet"))
            .filter(|e| e.involved_object.name.as_deref() == ds.metadata.name.as_deref())
            .collect();
        let failed_create = latest(
            ds_events
                .iter()
                .copied()
                .filter(|e| e.reason.as_deref() == Some("FailedCreate")),
        )
        .map(|e| Reason::FailedCreate {
            event_message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
            last_seen: event_time(e).map(|t| t.0.to_string()),
        });
        let mut failed_pod_events = HashMap::new();
        for e in ds_events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedDaemonPod"))
        {
            let msg = e.message.clone().unwrap_or_default();
            if let Some(node) = msg
                .split(" on node ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            {
                failed_pod_events.insert(node.to_string(), msg.clone());
            }
        }
        let mut scheduling_events = HashMap::new();
        let mut sched: Vec<&Event> = snap
            .events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .collect();
        sched.sort_by_key(|e| event_time(e).map(|t| t.0));
        for e in sched {
            if let (Some(pod), Some(msg)) = (e.involved_object.name.clone(), e.message.clone()) {
                scheduling_events.insert(pod, msg);
            }
        }
        Context {
            snap,
            current_hash,
            template_generation: revision::template_generation(ds),
            rules,
            min_ready_seconds: spec.and_then(|s| s.min_ready_seconds).unwrap_or(0),
            on_delete,
            failed_create,
            failed_pod_events,
            scheduling_events,
            tolerations,
            // Percentages round up: any non-zero maxSurge allows surging.
            surge: !on_delete && budget::budgets(ds, snap.nodes.len().max(1)).max_surge > 0,
        }
    }

    fn is_updated(&self, pod: &Pod) -> bool {
        revision::is_pod_updated(
            pod,
            self.current_hash.as_deref(),
            self.template_generation,
            &self.rules,
        )
    }
}

fn event_time(e: &Event) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    e.last_timestamp
        .as_ref()
        .or(e.first_timestamp.as_ref())
        .or(e.metadata.creation_timestamp.as_ref())
}

fn latest<'e>(events: impl Iterator<Item = &'e Event>) -> Option<&'e Event> {
    events.max_by_key(|e| event_time(e).map(|t| t.0))
}

/// mirrors daemon_controller.go updateDaemonSetStatus (one node's contribution)
fn count_status(ctx: &Context, elig: &Eligibility, pods: &[&Pod], c: &mut Counters) {
    let scheduled = !pods.is_empty();
    if elig.should_run {
        c.desired += 1;
        if scheduled {
            c.current += 1;
            let mut sorted = pods.to_vec();
            podstate::oldest_first(&mut sorted);
            let pod = sorted[0];
            if podstate::is_ready(pod) {
                c.ready += 1;
                if podstate::is_available(pod, ctx.min_ready_seconds, ctx.snap.now.as_ref()) {
                    c.available += 1;
                }
            }
            if ctx.is_updated(pod) {
                c.up_to_date += 1;
            }
        }
    } else if scheduled {
        c.misscheduled += 1;
    }
}

/// The node's verdict. Not `listed` (only counted, and searched for the reasons the summary's
/// notes read), it has no name, no pod and no eligibility reasons: nothing that is not read.
fn node_verdict(
    ctx: &Context,
    node: &Node,
    name: &str,
    elig: &Eligibility,
    pods: &[&Pod],
    listed: bool,
) -> NodeVerdict {
    let (active, terminating): (Vec<&Pod>, Vec<&Pod>) = pods
        .iter()
        .copied()
        .partition(|p| !podstate::is_terminating(p));
    let mut active = active;
    podstate::oldest_first(&mut active);
    let mut reasons = if listed {
        elig.reasons.clone()
    } else {
        Vec::new()
    };
    let pod = active.first().or(terminating.first()).copied();
    let state = if active.is_empty() && !terminating.is_empty() {
        for p in &terminating {
            reasons.push(Reason::Terminating {
                pod: p.metadata.name.clone().unwrap_or_default(),
                since: p
                    .metadata
                    .deletion_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
            });
        }
        if elig.should_run {
            reasons.push(Reason::AfterTerminating {
                pods: terminating
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect(),
                surge: ctx.surge,
            });
        }
        NodeState::Terminating
    } else if !elig.should_run {
        if active.is_empty() {
            NodeState::NotEligible
        } else {
            NodeState::Misscheduled
        }
    } else if let Some(p) = pod {
        pod_state(ctx, node, name, p, &mut reasons)
    } else {
        missing_reasons(ctx, name, &mut reasons);
        NodeState::Missing
    };
    if elig.should_run {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[]);
        if let Some((t, secs)) = taints::eviction_after(taints, ctx.tolerations) {
            reasons.push(Reason::EvictionLoop {
                taint: taint_text(&t.key, t.value.as_deref(), &t.effect),
                toleration_seconds: secs,
            });
        }
    }
    if active.len() > 1 {
        reasons.push(Reason::DuplicatePods {
            pods: active
                .iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect(),
        });
    }
    NodeVerdict {
        name: if listed {
            name.to_string()
        } else {
            String::new()
        },
        state,
        should_run: elig.should_run,
        should_continue_running: elig.should_continue_running,
        pod: pod.filter(|_| listed).map(|p| pod_info(ctx, p)),
        reasons,
    }
}

fn pod_state(
    ctx: &Context,
    node: &Node,
    node_name: &str,
    pod: &Pod,
    reasons: &mut Vec<Reason>,
) -> NodeState {
    let updated = ctx.is_updated(pod);
    let outdated = || Reason::OutdatedRevision {
        pod_revision: revision::pod_hash(pod).map(str::to_string),
        current_revision: ctx.current_hash.clone(),
        on_delete: ctx.on_delete,
    };
    if !podstate::is_scheduled(pod) {
        pending_reasons(ctx, node, node_name, pod, reasons);
        return NodeState::Pending;
    }
    if podstate::is_ready(pod) {
        if updated {
            return NodeState::Running;
        }
        reasons.push(outdated());
        return NodeState::Outdated;
    }
    reasons.extend(podstate::unhealthy_reasons(pod));
    if podstate::phase(pod) == "Failed" {
        if let Some(msg) = ctx.failed_pod_events.get(node_name) {
            reasons.push(Reason::FailedPodBackoff {
                event_message: msg.clone(),
            });
        }
    }
    if !updated {
        reasons.push(outdated());
    }
    NodeState::Unhealthy
}

fn pending_reasons(
    ctx: &Context,
    node: &Node,
    node_name: &str,
    pod: &Pod,
    reasons: &mut Vec<Reason>,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    if let Some(gates) = spec.scheduling_gates.as_ref().filter(|g| !g.is_empty()) {
        reasons.push(Reason::SchedulingGated {
            gates: gates.iter().map(|g| g.name.clone()).collect(),
        });
        return;
    }
    let condition_msg = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .and_then(|c| c.message.clone());
    let message = condition_msg.or_else(|| {
        pod.metadata
            .name
            .as_ref()
            .and_then(|n| ctx.scheduling_events.get(n).cloned())
    });
    if let Some(message) = message {
        reasons.push(Reason::Unschedulable {
            entries: schedmsg::parse(&message),
            scheduler_message: message,
        });
    }
    let others = ctx
        .snap
        .pods_on_nodes
        .get(node_name)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let uid = pod.metadata.uid.as_deref();
    let others: Vec<Pod> = others
        .iter()
        .filter(|o| o.metadata.uid.as_deref() != uid || uid.is_none())
        .cloned()
        .collect();
    let misfits = fit::misfits(&spec, node, &others);
    if !misfits.is_empty() {
        reasons.extend(misfits);
        let priorities = &ctx.snap.priorities;
        reasons.extend(priorities.preemption_reasons(&spec, node, &others));
    }
    if reasons.iter().all(|r| {
        !matches!(
            r,
            Reason::Unschedulable { .. }
                | Reason::InsufficientResources { .. }
                | Reason::HostPortConflict { .. }
                | Reason::TooManyPods { .. }
        )
    }) {
        reasons.push(Reason::AwaitingScheduler {});
    }
}

fn missing_reasons(ctx: &Context, node_name: &str, reasons: &mut Vec<Reason>) {
    if let Some(msg) = ctx.failed_pod_events.get(node_name) {
        reasons.push(Reason::FailedPodBackoff {
            event_message: msg.clone(),
        });
    } else if let Some(fc) = &ctx.failed_create {
        reasons.push(fc.clone());
    } else {
        reasons.push(Reason::NotYetCreated {});
    }
}

fn pod_info(ctx: &Context, pod: &Pod) -> PodInfo {
    let hash = revision::pod_hash(pod).map(str::to_string);
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        phase: podstate::phase(pod).to_string(),
        ready: podstate::is_ready(pod),
        revision_number: hash
            .as_deref()
            .and_then(|h| revision::revision_number(h, &ctx.snap.revisions)),
        revision: hash,
        restarts,
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
    }
}

fn ds_info(snap: &Snapshot, current_revision: Option<String>) -> DaemonSetInfo {
    let ds = &snap.daemon_set;
    let st = ds.status.clone().unwrap_or_default();
    DaemonSetInfo {
        namespace: snap.namespace().to_string(),
        name: snap.name().to_string(),
        uid: snap.uid().to_string(),
        generation: ds.metadata.generation,
        observed_generation: st.observed_generation,
        update_strategy: ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.clone())
            .unwrap_or_else(|| "RollingUpdate".into()),
        current_revision,
        status: Counters {
            desired: st.desired_number_scheduled,
            current: st.current_number_scheduled,
            ready: st.number_ready,
            up_to_date: st.updated_number_scheduled.unwrap_or(0),
            available: st.number_available.unwrap_or(0),
            misscheduled: st.number_misscheduled,
            unavailable: st.number_unavailable.unwrap_or(0),
        },
    }
}

fn summarise(
    snap: &Snapshot,
    info: &DaemonSetInfo,
    computed: Counters,
    excluded: BTreeMap<&'static str, usize>,
    states: BTreeMap<&'static str, usize>,
    shown: usize,
) -> Summary {
    let ds = &snap.daemon_set;
    let mut excluded: Vec<Exclusion> = excluded
        .into_iter()
        .map(|(code, nodes)| Exclusion {
            code: code.to_string(),
            nodes,
        })
        .collect();
    let states: BTreeMap<String, usize> = states
        .into_iter()
        .map(|(state, n)| (state.to_string(), n))
        .collect();
    excluded.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.code.cmp(&b.code)));
    let mut reconciliation = format!("desired {} = {} nodes", computed.desired, snap.nodes.len());
    for e in &excluded {
        reconciliation.push_str(&format!(" - {} {}", e.nodes, e.code));
    }
    let mut notes = Vec::new();
    let mut stale = false;
    if let (Some(g), Some(o)) = (info.generation, info.observed_generation) {
        if o < g {
            stale = true;
            notes.push(format!("status is stale: observedGeneration {o} < generation {g} (the controller has not processed the latest change)"));
        }
    } else if info.observed_generation.is_none() {
        stale = true;
        notes.push("status not written yet: the controller has not synced this DaemonSet".into());
    }
    let s = &info.status;
    let pairs = [
        ("desired", s.desired, computed.desired),
        ("current", s.current, computed.current),
        ("ready", s.ready, computed.ready),
        ("up-to-date", s.up_to_date, computed.up_to_date),
        ("available", s.available, computed.available),
        ("misscheduled", s.misscheduled, computed.misscheduled),
    ];
    let differing: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(n, a, b)| format!("{n} {a} in status, {b} seen"))
        .collect();
    if !differing.is_empty() {
        stale = true;
        notes.push(format!(
            "status counters disagree with the pods: {}",
            differing.join(", ")
        ));
    }
    let mut daemon_set_reasons = Vec::new();
    if ds.metadata.deletion_timestamp.is_some() {
        daemon_set_reasons.push(Reason::DaemonSetDeleting {});
    }
    let selects_all = ds
        .spec
        .as_ref()
        .map(|s| {
            labels::from_label_selector(Some(&s.selector)).is_ok_and(|sel| sel.is_everything())
        })
        .unwrap_or(false);
    if selects_all {
        daemon_set_reasons.push(Reason::SelectingAll {});
    }
    Summary {
        nodes: snap.nodes.len(),
        shown,
        computed,
        excluded,
        reconciliation,
        states,
        stale,
        notes,
        daemon_set_reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{agent_pod, daemon_set, node};

    const DS: &str = r#"
metadata:
  name: agent
  namespace: ns
  uid: ds-uid
  generation: 2
  annotations: {deprecated.daemonset.template.generation: "2"}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "agent:2"}]
status:
  observedGeneration: 2
  desiredNumberScheduled: 4
  currentNumberScheduled: 4
  numberReady: 2
  updatedNumberScheduled: 2
  numberAvailable: 2
  numberMisscheduled: 1
"#;

    fn revision(
        name: &str,
        rev: i64,
        image: &str,
    ) -> k8s_openapi::api::apps::v1::ControllerRevision {
        crate::yaml::from_str(&format!(
            r#"
metadata:
  name: agent-{name}
  namespace: ns
  labels: {{app: agent, controller-revision-hash: {name}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
revision: {rev}
data: {{"spec":{{"template":{{"$patch":"replace","metadata":{{"labels":{{"app":"agent"}}}},"spec":{{"containers":[{{"name":"agent","image":"{image}","resources":{{}}}}]}}}}}}}}
"#
        ))
        .unwrap()
    }

    fn snapshot(pods: Vec<Pod>) -> Snapshot {
        Snapshot {
            daemon_set: daemon_set(DS),
            nodes: ["n1", "n2", "n3", "n4", "n5"]
                .iter()
                .map(|n| node(&format!("metadata: {{name: {n}}}")))
                .chain(std::iter::once(node(
                    "metadata: {name: tainted}\nspec: {taints: [{key: x, effect: NoSchedule}]}",
                )))
                .collect::<Vec<_>>()
                .into(),
            pods,
            revisions: vec![revision("old", 1, "agent:1"), revision("new", 2, "agent:2")],
            ..Default::default()
        }
    }

    fn verdict<'a>(e: &'a Explanation, node: &str) -> &'a NodeVerdict {
        e.nodes.iter().find(|n| n.name == node).unwrap()
    }

    #[test]
    fn states_from_fixtures() {
        let terminating = agent_pod(
            "term",
            "n4",
            "new",
            "  deletionTimestamp: \"2026-01-01T00:01:00Z\"",
        );
        let pods = vec![
            agent_pod("a", "n1", "new", ""),
            agent_pod("bb", "n2", "old", ""),
            agent_pod("ccc", "n2", "new", ""),
            terminating,
            agent_pod("mis", "tainted", "new", ""),
        ];
        let e = explain(&snapshot(pods), &NodeFilter::default());
        assert_eq!(verdict(&e, "n1").state, NodeState::Running);
        // Two pods on n2: the oldest (bb, old revision) is the one the controller inspects.
        let n2 = verdict(&e, "n2");
        assert_eq!(n2.state, NodeState::Outdated);
        assert!(n2
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::DuplicatePods { pods } if pods.len() == 2)));
        assert_eq!(n2.pod.as_ref().unwrap().revision_number, Some(1));
        assert_eq!(verdict(&e, "n3").state, NodeState::Missing);
        assert_eq!(verdict(&e, "n3").reasons, vec![Reason::NotYetCreated {}]);
        assert_eq!(verdict(&e, "n4").state, NodeState::Terminating);
        assert_eq!(verdict(&e, "tainted").state, NodeState::Misscheduled);
        assert_eq!(e.daemon_set.current_revision.as_deref(), Some("new"));
        // Counters as updateDaemonSetStatus computes them.
        assert_eq!(
            e.summary.computed,
            Counters {
                desired: 5,
                current: 3,
                ready: 3,
                up_to_date: 2,
                available: 3,
                misscheduled: 1,
                unavailable: 2
            }
        );
        assert_eq!(
            e.summary.reconciliation,
            "desired 5 = 6 nodes - 1 UntoleratedTaint"
        );
        assert!(
            e.summary.stale,
            "status says desired 4: the counters disagree"
        );
        // Problems first.
        assert_eq!(e.nodes[0].state, NodeState::Missing);
        assert_eq!(e.nodes.last().unwrap().state, NodeState::Running);
    }

    #[test]
    fn failed_create_and_failed_pod_backoff_from_events() {
        let mut snap = snapshot(vec![]);
        snap.events = vec![
            crate::yaml::from_str(
                r#"
metadata: {name: e1, namespace: ns}
involvedObject: {kind: DaemonSet, name: agent, namespace: ns}
reason: FailedCreate
message: 'Error creating: pods "agent-x" is forbidden: exceeded quota: pods'
count: 3
lastTimestamp: "2026-01-01T00:00:05Z"
"#,
            )
            .unwrap(),
            crate::yaml::from_str(
                r#"
metadata: {name: e2, namespace: ns}
involvedObject: {kind: DaemonSet, name: agent, namespace: ns}
reason: FailedDaemonPod
message: Found failed daemon pod ns/agent-y on node n2, will try to kill it
"#,
            )
            .unwrap(),
        ];
        let e = explain(&snap, &NodeFilter::default());
        assert!(
            matches!(&verdict(&e, "n1").reasons[0], Reason::FailedCreate { count: 3, event_message, .. } if event_message.contains("quota"))
        );
        assert!(matches!(
            &verdict(&e, "n2").reasons[0],
            Reason::FailedPodBackoff { .. }
        ));
    }

    #[test]
    fn pending_pod_uses_scheduler_condition_and_fit() {
        let mut p = agent_pod("pend", "n1", "new", "");
        p.spec.as_mut().unwrap().node_name = None;
        p.spec.as_mut().unwrap().affinity = crate::yaml::from_str(
            "nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [n1]}]}]}}",
        )
        .unwrap();
        p.status = crate::yaml::from_str(
            "phase: Pending\nconditions: [{type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/6 nodes are available: 1 node(s) had untolerated taint {x: }, 5 node(s) didn''t satisfy plugin(s) [NodeAffinity].'}]",
        )
        .unwrap();
        let snap = snapshot(vec![p]);
        assert_eq!(nodes_needing_fit_check(&snap), vec!["n1".to_string()]);
        let e = explain(&snap, &NodeFilter::default());
        let v = verdict(&e, "n1");
        assert_eq!(v.state, NodeState::Pending);
        assert!(
            matches!(&v.reasons[0], Reason::Unschedulable { entries, .. } if entries[0].taint.as_deref() == Some("x"))
        );
    }

    /// The per-pod rule the fetch applies as the pods arrive gives the same nodes as the
    /// snapshot's: a pending pod of the DaemonSet names its node (once, however many pods);
    /// a scheduled, a terminating or another owner's pending pod names none.
    #[test]
    fn fit_check_node_per_pod_matches_the_snapshot_rule() {
        let pending = |name: &str, node: &str, extra: &str| {
            let mut p = agent_pod(name, node, "new", extra);
            p.spec.as_mut().unwrap().node_name = None;
            p.spec.as_mut().unwrap().affinity = crate::yaml::from_str(&format!(
                "nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{{matchFields: [{{key: metadata.name, operator: In, values: [{node}]}}]}}]}}}}"
            ))
            .unwrap();
            p.status = crate::yaml::from_str("phase: Pending").unwrap();
            p
        };
        let mut foreign = pending("other", "n4", "");
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
        let pods = vec![
            pending("p1", "n1", ""),
            pending("p1b", "n1", ""),
            agent_pod("run", "n2", "new", ""),
            pending(
                "gone",
                "n3",
                "  deletionTimestamp: \"2026-01-01T00:00:09Z\"",
            ),
            foreign,
        ];
        let snap = snapshot(pods);
        let per_pod: Vec<Option<String>> = snap
            .pods
            .iter()
            .map(|p| fit_check_node(&snap.daemon_set, p))
            .collect();
        assert_eq!(
            per_pod,
            vec![
                Some("n1".to_string()),
                Some("n1".to_string()),
                None,
                None,
                None
            ]
        );
        assert_eq!(nodes_needing_fit_check(&snap), vec!["n1".to_string()]);
    }

    #[test]
    fn daemon_set_wide_reasons_and_filter() {
        let mut snap = snapshot(vec![]);
        snap.daemon_set.spec.as_mut().unwrap().selector = Default::default();
        snap.daemon_set.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        let filter = NodeFilter::parse(&["n1".to_string()], None).unwrap();
        let e = explain(&snap, &filter);
        assert_eq!(e.nodes.len(), 1);
        assert_eq!(e.summary.nodes, 6);
        assert!(e
            .summary
            .daemon_set_reasons
            .contains(&Reason::SelectingAll {}));
        assert!(e
            .summary
            .daemon_set_reasons
            .contains(&Reason::DaemonSetDeleting {}));
    }

    #[test]
    fn owned_pods_that_no_longer_match_are_released_not_counted() {
        // mirrors ClaimObject: ours by controllerRef, but the selector no longer matches.
        let mut relabelled = agent_pod("gone", "n1", "new", "");
        relabelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app".into(), "debug".into());
        let e = explain(&snapshot(vec![relabelled]), &NodeFilter::default());
        assert_eq!(verdict(&e, "n1").state, NodeState::Missing);
        assert_eq!(e.summary.computed.current, 0);
    }

    #[test]
    fn terminating_only_node_and_eviction_loop() {
        let terminating = agent_pod(
            "term",
            "n4",
            "new",
            "  deletionTimestamp: \"2026-01-01T00:01:00Z\"",
        );
        let mut snap = snapshot(vec![terminating]);
        std::sync::Arc::make_mut(&mut snap.nodes).push(node(
            "metadata: {name: evict}\nspec: {taints: [{key: k, value: v, effect: NoExecute}]}",
        ));
        snap.daemon_set
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .tolerations = crate::yaml::from_str(
            "[{key: k, operator: Exists, effect: NoExecute, tolerationSeconds: 30}]",
        )
        .unwrap();
        let e = explain(&snap, &NodeFilter::default());
        let n4 = verdict(&e, "n4");
        assert_eq!(n4.state, NodeState::Terminating);
        assert!(n4.reasons.contains(&Reason::AfterTerminating {
            pods: vec!["term".into()],
            surge: false
        }));
        let ev = verdict(&e, "evict");
        assert!(ev.reasons.contains(&Reason::EvictionLoop {
            taint: "k=v:NoExecute".into(),
            toleration_seconds: 30
        }));
        assert!(!verdict(&e, "n1")
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::EvictionLoop { .. })));
    }
}
