//! Reasons: every verdict carries a list of them. A reason has a stable `code` (JSON), the facts
//! behind it, and a human message. Codes are a contract: renaming one is a schema change.

use serde::{Deserialize, Serialize};

/// What happens to a pod already on a node the DaemonSet no longer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PodFate {
    /// NoSchedule only: an existing pod keeps running (counted misscheduled).
    Kept,
    /// NoExecute, selector or affinity: the controller deletes an existing pod.
    Deleted,
}

/// Why preemption cannot make the pod fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NotHelpful {
    /// `preemptionPolicy: Never` (default_preemption.go PodEligibleToPreemptOthers).
    PolicyNever,
    /// Every pod on the node has equal or higher priority: none may be evicted.
    NoLowerPriorityPods,
    /// Even with every lower-priority pod gone the pod does not fit.
    StillDoesNotFit,
    /// The pod's priorityClassName names no PriorityClass (admission refuses the pod).
    ClassNotFound,
    /// The PriorityClasses could not be read, so the pod's priority is unknown.
    PriorityUnknown,
}

/// One scheduler reason histogram entry: "3 Insufficient cpu".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerEntry {
    pub count: u32,
    pub reason: String,
    /// The taint named by a TaintToleration entry (`key=value`), in either message format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint: Option<String>,
}

/// Why a node is in its state. `#[serde(tag = "code")]`: the variant name is the stable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all_fields = "camelCase")]
pub enum Reason {
    // ---- eligibility (mirrors NodeShouldRunDaemonPod) ----
    /// The template's spec.nodeName names another node.
    NodeNameMismatch {
        wanted: String,
    },
    /// A spec.nodeSelector pair is not on the node.
    NodeSelectorMismatch {
        key: String,
        wanted: String,
        actual: Option<String>,
    },
    /// No required node-affinity term matches; `term` is the index of the term, `expression`
    /// the first expression of that term that fails.
    NodeAffinityMismatch {
        term: Option<usize>,
        expression: String,
    },
    /// A NoSchedule/NoExecute taint the pod does not tolerate (auto-tolerations included).
    UntoleratedTaint {
        key: String,
        value: Option<String>,
        effect: String,
        existing_pod: PodFate,
    },
    /// The node lifecycle controller's not-ready/unreachable NoSchedule taint: DaemonSet pods
    /// tolerate only the NoExecute variant, so no new pod, an existing pod is kept.
    NodeNotReady {
        taint: String,
        ready_condition: Option<String>,
    },
    // ---- informational, eligible nodes ----
    /// The node is cordoned: DaemonSet pods tolerate node.kubernetes.io/unschedulable.
    Cordoned {},
    /// Taints tolerated only through the controller's automatic tolerations.
    AutoTolerated {
        taints: Vec<String>,
    },
    // ---- pending ----
    /// The scheduler's own verdict (pod condition PodScheduled=False or FailedScheduling event).
    Unschedulable {
        scheduler_message: String,
        entries: Vec<SchedulerEntry>,
    },
    /// Requests do not fit the node's allocatable (computed from the API objects).
    InsufficientResources {
        resource: String,
        requested: String,
        allocatable: String,
        used_by_other_pods: String,
    },
    /// Another pod on the node holds the host port.
    HostPortConflict {
        port: i32,
        protocol: String,
        host_ip: String,
        held_by: String,
    },
    /// The node's pod capacity is used up.
    TooManyPods {
        allocatable: i64,
        used: i64,
    },
    /// The scheduler evicts these lower-priority pods (`namespace/name`, most important first)
    /// to make room: the pod then fits (DefaultPreemption). `pdbViolations` of them violate a
    /// PodDisruptionBudget (minimised, not forbidden).
    Preemption {
        priority_class: Option<String>,
        priority: Option<i32>,
        victims: Vec<String>,
        pdb_violations: usize,
    },
    /// The pod does not fit and preemption cannot change that.
    PreemptionNotHelpful {
        priority_class: Option<String>,
        priority: Option<i32>,
        why: NotHelpful,
    },
    /// The pod has no priorityClassName: it cannot preempt anything.
    NoPriorityClass {},
    /// The pod has scheduling gates.
    SchedulingGated {
        gates: Vec<String>,
    },
    /// The pod is waiting for the scheduler and no reason is known yet.
    AwaitingScheduler {},
    // ---- unhealthy ----
    CrashLoopBackOff {
        container: String,
        restarts: i32,
        last_exit_code: Option<i32>,
        last_reason: Option<String>,
    },
    ImagePullBackOff {
        container: String,
        image: String,
        detail: Option<String>,
    },
    ErrImagePull {
        container: String,
        image: String,
        detail: Option<String>,
    },
    ContainerCreating {
        container: String,
    },
    /// Any other waiting reason (CreateContainerConfigError, InvalidImageName, ...).
    ContainerWaiting {
        container: String,
        reason: String,
        detail: Option<String>,
    },
    /// The pod is scheduled and running, but not Ready.
    PodNotReady {
        detail: Option<String>,
    },
    /// The pod has failed; the controller deletes it (with back-off) and creates another.
    PodFailed {
        pod: String,
        detail: Option<String>,
    },
    // ---- missing ----
    /// The controller tried to create a pod and the apiserver refused (quota, admission).
    FailedCreate {
        event_message: String,
        count: i32,
        last_seen: Option<String>,
    },
    /// A failed pod on this node: the controller deletes it under a per-node back-off
    /// (mirrors daemon_controller.go podsShouldBeOnNode failedPodsBackoff, which delays the
    /// deletion; the replacement follows once the pod is gone).
    FailedPodBackoff {
        event_message: String,
    },
    /// No pod yet, no error seen: the controller has not caught up.
    NotYetCreated {},
    // ---- revisions and the DaemonSet ----
    /// The pod runs an older revision. Under OnDelete nothing replaces it until it is deleted.
    OutdatedRevision {
        pod_revision: Option<String>,
        current_revision: Option<String>,
        on_delete: bool,
    },
    /// More than one pod of this DaemonSet on the node; the controller keeps the oldest.
    DuplicatePods {
        pods: Vec<String>,
    },
    /// The DaemonSet is being deleted: the controller no longer manages it.
    DaemonSetDeleting {},
    /// The selector is empty: the controller refuses to manage the DaemonSet.
    SelectingAll {},
    /// A pod being deleted.
    Terminating {
        pod: String,
        since: Option<String>,
    },
    /// The node's only pods are terminating. Without maxSurge the controller creates nothing
    /// until they are gone; with maxSurge it creates the new pod at once, beside them (their
    /// host ports and resources still count).
    /// mirrors daemon_controller.go podsShouldBeOnNode (`exists` counts terminating pods; the
    /// surge branch creates when no pod is running)
    AfterTerminating {
        pods: Vec<String>,
        surge: bool,
    },
    /// The apiserver refuses the pod the controller would create (a server dry-run create was
    /// denied by an admission plugin or webhook, or the pod is invalid): creates fail with
    /// FailedCreate, so the node is left without its new pod.
    AdmissionRefused {
        message: String,
    },
    /// A NoExecute taint tolerated only for `tolerationSeconds`: the taint-eviction controller
    /// evicts the pod after that time and the DaemonSet controller (which ignores
    /// tolerationSeconds) recreates it, again and again.
    EvictionLoop {
        taint: String,
        toleration_seconds: i64,
    },
}

impl Reason {
    /// The stable code, as serialized.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NodeNameMismatch { .. } => "NodeNameMismatch",
            Reason::NodeSelectorMismatch { .. } => "NodeSelectorMismatch",
            Reason::NodeAffinityMismatch { .. } => "NodeAffinityMismatch",
            Reason::UntoleratedTaint { .. } => "UntoleratedTaint",
            Reason::NodeNotReady { .. } => "NodeNotReady",
            Reason::Cordoned {} => "Cordoned",
            Reason::AutoTolerated { .. } => "AutoTolerated",
            Reason::Unschedulable { .. } => "Unschedulable",
            Reason::InsufficientResources { .. } => "InsufficientResources",
            Reason::HostPortConflict { .. } => "HostPortConflict",
            Reason::TooManyPods { .. } => "TooManyPods",
            Reason::Preemption { .. } => "Preemption",
            Reason::PreemptionNotHelpful { .. } => "PreemptionNotHelpful",
            Reason::NoPriorityClass {} => "NoPriorityClass",
            Reason::SchedulingGated { .. } => "SchedulingGated",
            Reason::AwaitingScheduler {} => "AwaitingScheduler",
            Reason::CrashLoopBackOff { .. } => "CrashLoopBackOff",
            Reason::ImagePullBackOff { .. } => "ImagePullBackOff",
            Reason::ErrImagePull { .. } => "ErrImagePull",
            Reason::ContainerCreating { .. } => "ContainerCreating",
            Reason::ContainerWaiting { .. } => "ContainerWaiting",
            Reason::PodNotReady { .. } => "PodNotReady",
            Reason::PodFailed { .. } => "PodFailed",
            Reason::FailedCreate { .. } => "FailedCreate",
            Reason::FailedPodBackoff { .. } => "FailedPodBackoff",
            Reason::NotYetCreated {} => "NotYetCreated",
            Reason::OutdatedRevision { .. } => "OutdatedRevision",
            Reason::DuplicatePods { .. } => "DuplicatePods",
            Reason::DaemonSetDeleting {} => "DaemonSetDeleting",
            Reason::SelectingAll {} => "SelectingAll",
            Reason::Terminating { .. } => "Terminating",
            Reason::AfterTerminating { .. } => "AfterTerminating",
            Reason::AdmissionRefused { .. } => "AdmissionRefused",
            Reason::EvictionLoop { .. } => "EvictionLoop",
        }
    }

    /// Is this reason one that makes the node ineligible (shouldRun false)?
    pub fn is_eligibility(&self) -> bool {
        matches!(
            self,
            Reason::NodeNameMismatch { .. }
                | Reason::NodeSelectorMismatch { .. }
                | Reason::NodeAffinityMismatch { .. }
                | Reason::UntoleratedTaint { .. }
                | Reason::NodeNotReady { .. }
        )
    }

    /// The human message.
    pub fn message(&self) -> String {
        match self {
            Reason::NodeNameMismatch { wanted } => {
                format!("the template's spec.nodeName is {wanted:?}: only that node runs the pod")
            }
            Reason::NodeSelectorMismatch { key, wanted, actual } => match actual {
                Some(a) => format!("nodeSelector wants {key}={wanted}, the node has {key}={a}"),
                None => format!("nodeSelector wants {key}={wanted}, the node has no label {key}"),
            },
            Reason::NodeAffinityMismatch { term, expression } => match term {
                Some(t) => format!("required node affinity: term {t} fails on {expression}; no term matches"),
                None => format!("required node affinity matches no node: {expression}"),
            },
            Reason::UntoleratedTaint { key, value, effect, existing_pod } => {
                let taint = taint_text(key, value.as_deref(), effect);
                match existing_pod {
                    PodFate::Kept => format!(
                        "untolerated taint {taint}: no new pod; an existing pod keeps running"
                    ),
                    PodFate::Deleted => format!(
                        "untolerated taint {taint}: no new pod; an existing pod is deleted"
                    ),
                }
            }
            Reason::NodeNotReady { taint, ready_condition } => {
                let cond = ready_condition
                    .as_ref()
                    .map(|c| format!(" (Ready={c})"))
                    .unwrap_or_default();
                format!(
                    "node not ready{cond}: taint {taint}:NoSchedule is not tolerated (DaemonSet pods tolerate only its NoExecute twin): no new pod; an existing pod keeps running"
                )
            }
            Reason::Cordoned {} => {
                "node cordoned: DaemonSet pods tolerate node.kubernetes.io/unschedulable automatically".into()
            }
            Reason::AutoTolerated { taints } => format!(
                "tolerated only through the controller's automatic tolerations: {}",
                taints.join(", ")
            ),
            Reason::Unschedulable { scheduler_message, entries } => {
                if entries.is_empty() {
                    format!("scheduler: {scheduler_message}")
                } else {
                    let parts: Vec<String> = entries.iter().map(|e| e.reason.clone()).collect();
                    format!("scheduler: {}", parts.join("; "))
                }
            }
            Reason::InsufficientResources { resource, requested, allocatable, used_by_other_pods } => format!(
                "insufficient {resource}: the pod requests {requested}, the node has {allocatable} allocatable and {used_by_other_pods} already requested by other pods"
            ),
            Reason::HostPortConflict { port, protocol, host_ip, held_by } => {
                format!("host port {host_ip}:{port}/{protocol} is held by pod {held_by}")
            }
            Reason::TooManyPods { allocatable, used } => {
                format!("too many pods: {used} of {allocatable} allowed are already on the node")
            }
            Reason::Preemption { priority_class, priority, victims, pdb_violations } => {
                let pdb = match pdb_violations {
                    0 => String::new(),
                    n => format!("; {n} of them would violate a PodDisruptionBudget (the scheduler minimises PDB violations, it does not refuse them)"),
                };
                format!(
                    "fits by preempting {} lower-priority pod(s): {} ({}){pdb}",
                    victims.len(),
                    victims.join(", "),
                    priority_text(priority_class.as_deref(), *priority)
                )
            }
            Reason::PreemptionNotHelpful { priority_class, priority, why } => {
                let prio = priority_text(priority_class.as_deref(), *priority);
                let why = match why {
                    NotHelpful::PolicyNever => "its preemptionPolicy is Never".to_string(),
                    NotHelpful::NoLowerPriorityPods => {
                        "every other pod on the node has equal or higher priority (only strictly lower-priority pods can be preempted)".to_string()
                    }
                    NotHelpful::StillDoesNotFit => {
                        "it would not fit even with every lower-priority pod evicted".to_string()
                    }
                    NotHelpful::ClassNotFound => {
                        "its PriorityClass does not exist (the apiserver refuses to create the pod)".to_string()
                    }
                    NotHelpful::PriorityUnknown => {
                        "its priority is unknown (PriorityClasses could not be listed)".to_string()
                    }
                };
                format!("preemption cannot help ({prio}): {why}")
            }
            Reason::NoPriorityClass {} => {
                "hint: the pod template sets no priorityClassName, so the pod has priority 0 and cannot preempt other pods; node agents should set one (e.g. system-node-critical), as the DaemonSet documentation recommends".into()
            }
            Reason::SchedulingGated { gates } => {
                format!("scheduling gated by {}", gates.join(", "))
            }
            Reason::AwaitingScheduler {} => "waiting for the scheduler to bind the pod".into(),
            Reason::CrashLoopBackOff { container, restarts, last_exit_code, last_reason } => {
                let last = match (last_exit_code, last_reason) {
                    (Some(c), Some(r)) => format!(", last exit {c} ({r})"),
                    (Some(c), None) => format!(", last exit {c}"),
                    (None, Some(r)) => format!(", last {r}"),
                    (None, None) => String::new(),
                };
                format!("container {container} crash-looping: {restarts} restarts{last}")
            }
            Reason::ImagePullBackOff { container, image, detail } => {
                with_detail(format!("container {container}: back-off pulling image {image}"), detail)
            }
            Reason::ErrImagePull { container, image, detail } => {
                with_detail(format!("container {container}: cannot pull image {image}"), detail)
            }
            Reason::ContainerCreating { container } => {
                format!("container {container} is being created")
            }
            Reason::ContainerWaiting { container, reason, detail } => {
                with_detail(format!("container {container} waiting: {reason}"), detail)
            }
            Reason::PodNotReady { detail } => with_detail("pod running but not Ready".into(), detail),
            Reason::PodFailed { pod, detail } => with_detail(
                format!("pod {pod} failed; the controller deletes it and creates a new one"),
                detail,
            ),
            Reason::FailedCreate { event_message, count, .. } => {
                format!("the controller cannot create the pod ({count}x): {event_message}")
            }
            Reason::FailedPodBackoff { event_message } => format!(
                "the controller deletes failed pods on this node with a back-off (1s doubling to 15m) that delays the deletion; the replacement is created once the failed pod is gone (with maxSurge, at once): {event_message}"
            ),
            Reason::NotYetCreated {} => {
                "no pod yet and no error seen: the controller has not caught up".into()
            }
            Reason::OutdatedRevision { pod_revision, current_revision, on_delete } => {
                let p = pod_revision.as_deref().unwrap_or("?");
                let c = current_revision.as_deref().unwrap_or("?");
                if *on_delete {
                    format!("pod at revision {p}, current is {c}; updateStrategy OnDelete: nothing replaces it until it is deleted")
                } else {
                    format!("pod at revision {p}, current is {c}; the rolling update will replace it")
                }
            }
            Reason::DuplicatePods { pods } => format!(
                "{} pods of this DaemonSet on the node ({}); the controller keeps the oldest and deletes the rest",
                pods.len(),
                pods.join(", ")
            ),
            Reason::DaemonSetDeleting {} => {
                "the DaemonSet is being deleted: the controller no longer manages its pods".into()
            }
            Reason::SelectingAll {} => {
                "the DaemonSet's selector is empty: the controller refuses to manage it".into()
            }
            Reason::Terminating { pod, since } => match since {
                Some(s) => format!("pod {pod} terminating since {s}"),
                None => format!("pod {pod} terminating"),
            },
            Reason::AfterTerminating { pods, surge: false } => format!(
                "{} terminating: without maxSurge the controller creates the new pod only once it is gone",
                pods.join(", ")
            ),
            Reason::AfterTerminating { pods, surge: true } => format!(
                "{} terminating: with maxSurge the new pod is created at once beside it; its host ports and resources still count",
                pods.join(", ")
            ),
            Reason::AdmissionRefused { message } => format!(
                "the apiserver refuses the new pod (server dry-run create): {message}; the controller's creates will fail (FailedCreate)"
            ),
            Reason::EvictionLoop { taint, toleration_seconds } => format!(
                "NoExecute taint {taint} tolerated for {toleration_seconds}s only: the taint-eviction controller evicts the pod after {toleration_seconds}s and the DaemonSet controller recreates it, in a loop"
            ),
        }
    }
}

/// `priority 1000 (class high)`, `priority 0 (no class)`.
fn priority_text(class: Option<&str>, value: Option<i32>) -> String {
    let value = value.map_or_else(|| "unknown".to_string(), |v| v.to_string());
    match class {
        Some(c) => format!("priority {value}, class {c}"),
        None => format!("priority {value}, no priorityClassName"),
    }
}

fn with_detail(base: String, detail: &Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!("{base}: {d}"),
        _ => base,
    }
}

/// Renders a taint as kubectl does: `key=value:Effect` or `key:Effect`.
pub fn taint_text(key: &str, value: Option<&str>, effect: &str) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("{key}={v}:{effect}"),
        _ => format!("{key}:{effect}"),
    }
}

/// A reason as it appears in JSON/YAML: the message, the code, then the facts: the reason's
/// own object (`#[serde(tag = "code")]`, a struct for every variant) with `message` put first.
/// Written as `#[serde(flatten)]` would write it, but as a struct: flatten makes a map, whose
/// keys a serializer must copy, and the overview writes half a million reasons.
#[derive(Debug)]
pub struct ReasonView<'a> {
    pub message: String,
    pub reason: &'a Reason,
}

impl Serialize for ReasonView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.reason.serialize(MessageFirst {
            inner: s,
            message: &self.message,
        })
    }
}

/// The serializer [`ReasonView`] gives the reason: its struct with `message` as the first field.
/// A reason is always a struct (see [`Reason`]); any other shape is refused.
struct MessageFirst<'m, S> {
    inner: S,
    message: &'m str,
}

fn not_a_struct<E: serde::ser::Error>() -> E {
    E::custom("a reason serializes as a struct")
}

macro_rules! refuse {
    ($($f:ident($($t:ty),*) -> $r:ty),*) => {
        $(fn $f(self, $(_: $t),*) -> Result<$r, S::Error> {
            Err(not_a_struct())
        })*
    };
}

impl<S: serde::Serializer> serde::Serializer for MessageFirst<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = serde::ser::Impossible<S::Ok, S::Error>;
    type SerializeTuple = serde::ser::Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = serde::ser::Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = serde::ser::Impossible<S::Ok, S::Error>;
    type SerializeMap = serde::ser::Impossible<S::Ok, S::Error>;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = serde::ser::Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeStruct, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = self.inner.serialize_struct(name, len + 1)?;
        st.serialize_field("message", self.message)?;
        Ok(st)
    }

    refuse!(
        serialize_bool(bool) -> S::Ok, serialize_i8(i8) -> S::Ok, serialize_i16(i16) -> S::Ok,
        serialize_i32(i32) -> S::Ok, serialize_i64(i64) -> S::Ok, serialize_u8(u8) -> S::Ok,
        serialize_u16(u16) -> S::Ok, serialize_u32(u32) -> S::Ok, serialize_u64(u64) -> S::Ok,
        serialize_f32(f32) -> S::Ok, serialize_f64(f64) -> S::Ok, serialize_char(char) -> S::Ok,
        serialize_str(&str) -> S::Ok, serialize_bytes(&[u8]) -> S::Ok,
        serialize_none() -> S::Ok, serialize_unit() -> S::Ok,
        serialize_unit_struct(&'static str) -> S::Ok,
        serialize_unit_variant(&'static str, u32, &'static str) -> S::Ok,
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }
}

impl<'a> From<&'a Reason> for ReasonView<'a> {
    fn from(reason: &'a Reason) -> Self {
        ReasonView {
            message: reason.message(),
            reason,
        }
    }
}

/// Serializes a list of reasons with their messages.
pub fn serialize_reasons<S: serde::Serializer>(
    reasons: &[Reason],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(reasons.len()))?;
    for r in reasons {
        seq.serialize_element(&ReasonView::from(r))?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code, each fact set (a `message` fact included).
    const EVERY_REASON: &str = r#"
- {code: NodeNameMismatch, wanted: n2}
- {code: NodeSelectorMismatch, key: pool, wanted: gpu, actual: null}
- {code: NodeSelectorMismatch, key: pool, wanted: gpu, actual: general}
- {code: NodeAffinityMismatch, term: 0, expression: "zone In [a] (node has zone=b)"}
- {code: UntoleratedTaint, key: dedicated, value: gpu, effect: NoSchedule, existingPod: kept}
- {code: NodeNotReady, taint: node.kubernetes.io/not-ready, readyCondition: "False"}
- {code: Cordoned}
- {code: AutoTolerated, taints: ["a:NoSchedule", "b=c:NoExecute"]}
- {code: Unschedulable, schedulerMessage: "0/3 nodes are available: 3 Insufficient cpu.", entries: [{count: 3, reason: Insufficient cpu}, {count: 1, reason: "node(s) had untolerated taint", taint: "a=b"}]}
- {code: InsufficientResources, resource: cpu, requested: 250m, allocatable: "1", usedByOtherPods: 900m}
- {code: HostPortConflict, port: 9100, protocol: TCP, hostIp: 0.0.0.0, heldBy: ns/p}
- {code: TooManyPods, allocatable: 110, used: 110}
- {code: Preemption, priorityClass: high, priority: 1000, victims: [ns/a, ns/b], pdbViolations: 1}
- {code: PreemptionNotHelpful, priorityClass: null, priority: null, why: priorityUnknown}
- {code: NoPriorityClass}
- {code: SchedulingGated, gates: [g1]}
- {code: AwaitingScheduler}
- {code: CrashLoopBackOff, container: c, restarts: 7, lastExitCode: 1, lastReason: Error}
- {code: ImagePullBackOff, container: c, image: "i:1", detail: "back-off \"pulling\""}
- {code: ErrImagePull, container: c, image: "i:1", detail: null}
- {code: ContainerCreating, container: c}
- {code: ContainerWaiting, container: c, reason: CreateContainerConfigError, detail: x}
- {code: PodNotReady, detail: null}
- {code: PodFailed, pod: p, detail: Evicted}
- {code: FailedCreate, eventMessage: "pods \"x\" is forbidden", count: 3, lastSeen: "2026-01-01T00:00:00Z"}
- {code: FailedPodBackoff, eventMessage: "Found failed daemon pod ns/a on node n1"}
- {code: NotYetCreated}
- {code: OutdatedRevision, podRevision: abc, currentRevision: def, onDelete: true}
- {code: DuplicatePods, pods: [a, b]}
- {code: DaemonSetDeleting}
- {code: SelectingAll}
- {code: Terminating, pod: p, since: null}
- {code: AfterTerminating, pods: [p], surge: false}
- {code: AdmissionRefused, message: "denied by webhook \"w\""}
- {code: EvictionLoop, taint: "k:NoExecute", tolerationSeconds: 5}
"#;

    /// ReasonView writes what `#[serde(flatten)]` wrote (the message, then the reason's own
    /// object), for every reason; in serde_json's tree too.
    #[test]
    fn reason_view_is_the_flattened_reason() {
        #[derive(Serialize)]
        struct Flattened<'a> {
            message: String,
            #[serde(flatten)]
            reason: &'a Reason,
        }
        let reasons: Vec<Reason> = crate::yaml::from_str(EVERY_REASON).unwrap();
        assert_eq!(reasons.len(), 35);
        let codes: std::collections::BTreeSet<&str> = reasons.iter().map(Reason::code).collect();
        assert_eq!(codes.len(), 34, "every code once at least");
        for r in &reasons {
            let flat = Flattened {
                message: r.message(),
                reason: r,
            };
            let view = ReasonView::from(r);
            assert_eq!(
                serde_json::to_string(&view).unwrap(),
                serde_json::to_string(&flat).unwrap()
            );
            assert_eq!(
                serde_json::to_value(&view).unwrap(),
                serde_json::to_value(&flat).unwrap()
            );
            let mut sorted = Vec::new();
            crate::render::sorted_json::write(&mut sorted, &view, 0).unwrap();
            let tree = serde_json::to_vec_pretty(&serde_json::to_value(&flat).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8(sorted).unwrap(),
                String::from_utf8(tree).unwrap()
            );
        }
    }

    #[test]
    fn serialized_code_matches_code() {
        let r = Reason::UntoleratedTaint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            existing_pod: PodFate::Kept,
        };
        let v = serde_json::to_value(ReasonView::from(&r)).unwrap();
        assert_eq!(v["code"], "UntoleratedTaint");
        assert_eq!(v["existingPod"], "kept");
        assert_eq!(v["key"], "dedicated");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("dedicated=gpu:NoSchedule"));
        let back: Reason = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.code(), "UntoleratedTaint");
    }

    #[test]
    fn failed_pod_backoff_delays_the_deletion_not_the_replacement() {
        // mirrors podsShouldBeOnNode: failedPodsBackoff gates `podsToDelete`; the node gets its
        // new pod once no pod exists there (at once with surge).
        let m = Reason::FailedPodBackoff {
            event_message: "Found failed daemon pod ns/a on node n1, will try to kill it".into(),
        }
        .message();
        assert!(m.contains("delays the deletion"), "{m}");
        assert!(m.contains("once the failed pod is gone"), "{m}");
        assert!(!m.contains("replacement held back"), "{m}");
        let v = serde_json::to_value(ReasonView::from(&Reason::EvictionLoop {
            taint: "k:NoExecute".into(),
            toleration_seconds: 5,
        }))
        .unwrap();
        assert_eq!(v["code"], "EvictionLoop");
        assert_eq!(v["tolerationSeconds"], 5);
    }
}
