//! Priority and preemption: would the scheduler make room for the DaemonSet's pod on its node
//! by evicting lower-priority pods there? DaemonSet pods are pinned to one node (the
//! controller's `matchFields metadata.name` affinity), so that node is the only candidate and
//! the victims are the ones `SelectVictimsOnNode` picks on it.
//! mirrors scheduler framework/plugins/defaultpreemption/default_preemption.go
//! (SelectVictimsOnNode, PodEligibleToPreemptOthers, isPreemptionAllowed,
//! filterPodsWithPDBViolation), pkg/scheduler/util MoreImportantPod, and
//! plugin/pkg/admission/priority admitPod for how a pod gets its priority.
//!
//! Preemption only helps with Filter failures that removing pods can fix: resources, host
//! ports, pod count (what [`fit::misfits`] computes). Taints, node selectors and affinity keep
//! the DaemonSet controller from creating the pod at all (and the scheduler's plugins return
//! UnschedulableAndUnresolvable for them, which preemption skips).

use std::cmp::Ordering;

use super::fit;
use super::labels;
use super::reason::{NotHelpful, Reason};
use crate::engine::model::Node;
use crate::engine::model::{Pod, PodSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;

/// The built-in classes every apiserver creates (scheduling/types.go SystemPriorityClasses).
pub const SYSTEM_CLASSES: [(&str, i32); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// What is known of the cluster's PriorityClasses: `None` when they could not be listed
/// (RBAC); the built-in system classes are known either way.
pub type Classes<'a> = Option<&'a [PriorityClass]>;

/// What preemption reads beyond the pods on the node, as far as it could be listed.
#[derive(Debug, Clone, Default)]
pub struct ClusterPriorities {
    /// Every PriorityClass; `None` when they could not be listed (RBAC) or were not fetched.
    pub classes: Option<Vec<PriorityClass>>,
    /// The PodDisruptionBudgets of the namespaces holding possible victims; `None` when they
    /// could not be listed.
    pub pdbs: Option<Vec<PodDisruptionBudget>>,
}

impl ClusterPriorities {
    /// The pod's priority (see [`resolve`]).
    pub fn priority_of(&self, spec: &PodSpec) -> Priority {
        resolve(spec, self.classes.as_deref())
    }

    /// What preemption does for the pod that does not fit on `node` beside `others`: its
    /// reasons (see [`reasons`]).
    pub fn preemption_reasons(&self, spec: &PodSpec, node: &Node, others: &[Pod]) -> Vec<Reason> {
        let priority = self.priority_of(spec);
        let pdbs = self.pdbs.as_deref().unwrap_or(&[]);
        let outcome = evaluate(spec, &priority, node, others, pdbs, self.classes.as_deref());
        reasons(&priority, &outcome)
    }

    /// Notes for what could not be read, given the reasons that were computed.
    /// A reason [`Self::notes`] reads.
    pub fn is_noted(r: &Reason) -> bool {
        matches!(
            r,
            Reason::Preemption { .. }
                | Reason::PreemptionNotHelpful {
                    why: NotHelpful::PriorityUnknown,
                    ..
                }
        )
    }

    pub fn notes<'a>(&self, computed: impl IntoIterator<Item = &'a Reason>) -> Vec<String> {
        let mut preempts = false;
        let mut unknown = false;
        for r in computed {
            match r {
                Reason::Preemption { .. } => preempts = true,
                Reason::PreemptionNotHelpful {
                    why: NotHelpful::PriorityUnknown,
                    ..
                } => unknown = true,
                _ => {}
            }
        }
        let mut out = Vec::new();
        if preempts && self.pdbs.is_none() {
            out.push("PodDisruptionBudgets could not be listed (RBAC: list poddisruptionbudgets.policy): preemption victims were chosen as if there were none".into());
        }
        if unknown {
            out.push("PriorityClasses could not be listed (RBAC: list priorityclasses.scheduling.k8s.io): only the built-in system-node-critical and system-cluster-critical are known, so preemption was not evaluated for other classes (nor for a pod without a class: a globalDefault class may exist)".into());
        }
        out
    }
}

/// A pod's priority, as the Priority admission plugin resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// The PriorityClass (the pod's own, or the globalDefault one admission fills in).
    pub class: Option<String>,
    /// `None` when the class cannot be resolved (not found, or not listable).
    pub value: Option<i32>,
    /// `preemptionPolicy: Never` (from the class, else the pod spec).
    pub never: bool,
}

/// The priority of a pod already admitted: `spec.priority` as admission set it (0 when unset).
/// mirrors component-helpers corev1helpers.PodPriority
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The priority the pod with this spec gets (or got) at admission.
/// mirrors plugin/pkg/admission/priority admitPod: an admitted pod carries `spec.priority`; a
/// template is resolved by its priorityClassName, else by the globalDefault class (the lowest
/// value if several), else 0; the class's preemptionPolicy is copied into the pod.
pub fn resolve(spec: &PodSpec, classes: Classes) -> Priority {
    let own_never = spec.preemption_policy.as_deref() == Some("Never");
    let named = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    if let Some(value) = spec.priority {
        return Priority {
            class: named,
            value: Some(value),
            never: own_never,
        };
    }
    let listed = classes.unwrap_or(&[]);
    let found = |name: &str| {
        listed
            .iter()
            .find(|pc| pc.metadata.name.as_deref() == Some(name))
    };
    let from_class = |pc: &PriorityClass| Priority {
        class: pc.metadata.name.clone(),
        value: Some(pc.value),
        never: pc
            .preemption_policy
            .as_deref()
            .map_or(own_never, |p| p == "Never"),
    };
    match named {
        Some(name) => match found(&name) {
            Some(pc) => from_class(pc),
            None => Priority {
                value: SYSTEM_CLASSES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v),
                class: Some(name),
                never: own_never,
            },
        },
        None => {
            let default = listed
                .iter()
                .filter(|pc| pc.global_default == Some(true))
                .min_by_key(|pc| pc.value);
            match default {
                Some(pc) => from_class(pc),
                // DefaultPriorityWhenNoDefaultClassExists, when the classes were read; an
                // unread list may hold a globalDefault class.
                None => Priority {
                    class: None,
                    value: classes.map(|_| 0),
                    never: own_never,
                },
            }
        }
    }
}

/// The scheduler's answer for one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pod fits once these pods (`namespace/name`, most important first) are evicted;
    /// `pdb_violations` of them violate a PodDisruptionBudget.
    Preempts {
        victims: Vec<String>,
        pdb_violations: usize,
    },
    /// Preemption cannot help; `misfits` is what still blocks the pod with every
    /// lower-priority pod gone (for [`NotHelpful::StillDoesNotFit`]).
    CannotHelp {
        why: NotHelpful,
        misfits: Vec<Reason>,
    },
}

impl Outcome {
    fn cannot(why: NotHelpful) -> Outcome {
        Outcome::CannotHelp {
            why,
            misfits: Vec::new(),
        }
    }
}

/// Would preemption make the pod (`spec`, `priority`) fit on `node` beside `others`?
/// Call it only when [`fit::misfits`] found the pod does not fit.
pub fn evaluate(
    spec: &PodSpec,
    priority: &Priority,
    node: &Node,
    others: &[Pod],
    pdbs: &[PodDisruptionBudget],
    classes: Classes,
) -> Outcome {
    // mirrors PodEligibleToPreemptOthers: preemptionPolicy Never.
    if priority.never {
        return Outcome::cannot(NotHelpful::PolicyNever);
    }
    let Some(value) = priority.value else {
        return Outcome::cannot(match classes {
            Some(_) => NotHelpful::ClassNotFound,
            None => NotHelpful::PriorityUnknown,
        });
    };
    select_victims_on_node(spec, value, node, others, pdbs)
}

/// The minimal set of lower-priority pods whose eviction makes the pod fit.
/// mirrors default_preemption.go SelectVictimsOnNode: remove every pod of lower priority
/// (isPreemptionAllowed: strictly lower); if the pod still does not fit, the node is no
/// candidate; else reprieve the victims most important first, the PDB-violating ones before the
/// others, keeping each one whose return still lets the pod fit.
pub fn select_victims_on_node(
    spec: &PodSpec,
    priority: i32,
    node: &Node,
    others: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> Outcome {
    let active = others.iter().filter(|p| fit::is_active(p));
    let (mut potential, mut kept): (Vec<&Pod>, Vec<&Pod>) =
        active.partition(|p| pod_priority(p) < priority);
    if potential.is_empty() {
        return Outcome::cannot(NotHelpful::NoLowerPriorityPods);
    }
    let misfits_with = |pods: &[&Pod]| {
        let pods: Vec<Pod> = pods.iter().map(|p| (*p).clone()).collect();
        fit::misfits(spec, node, &pods)
    };
    let left = misfits_with(&kept);
    if !left.is_empty() {
        return Outcome::CannotHelp {
            why: NotHelpful::StillDoesNotFit,
            misfits: left,
        };
    }
    potential.sort_by(|a, b| importance(a, b));
    let (violating, non_violating) = filter_pods_with_pdb_violation(&potential, pdbs);
    let mut victims: Vec<&Pod> = Vec::new();
    let mut pdb_violations = 0;
    for (pods, violates) in [(&violating, true), (&non_violating, false)] {
        for pod in pods.iter() {
            kept.push(*pod);
            if !misfits_with(&kept).is_empty() {
                kept.pop();
                victims.push(*pod);
                pdb_violations += usize::from(violates);
            }
        }
    }
    victims.sort_by(|a, b| importance(a, b));
    Outcome::Preempts {
        victims: victims.iter().map(|p| pod_key(p)).collect(),
        pdb_violations,
    }
}

/// Most important first.
/// mirrors pkg/scheduler/util MoreImportantPod: higher priority first, then the pod that
/// started earlier (GetPodStartTime: a pod without a start time counts as starting now).
fn importance(a: &Pod, b: &Pod) -> Ordering {
    let start = |p: &Pod| p.status.as_ref().and_then(|s| s.start_time.clone());
    pod_priority(b)
        .cmp(&pod_priority(a))
        .then_with(|| match (start(a), start(b)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// Splits pods (order kept) into those whose eviction would violate a PodDisruptionBudget and
/// the others.
/// mirrors default_preemption.go filterPodsWithPDBViolation: a PDB of the pod's namespace with a
/// non-empty selector matching its labels, the pod not already in `disruptedPods`, uses one of
/// `disruptionsAllowed`; below zero, the pod violates it.
pub fn filter_pods_with_pdb_violation<'a>(
    pods: &[&'a Pod],
    pdbs: &[PodDisruptionBudget],
) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut non_violating) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        let pod_labels = pod.metadata.labels.as_ref().filter(|l| !l.is_empty());
        for (i, pdb) in pdbs.iter().enumerate() {
            let Some(pod_labels) = pod_labels else { break };
            if pdb.metadata.namespace != pod.metadata.namespace {
                continue;
            }
            let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                continue;
            };
            let Ok(sel) = labels::from_label_selector(Some(sel)) else {
                continue;
            };
            if sel.is_everything() || !sel.matches(Some(pod_labels)) {
                continue;
            }
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let disrupted = pdb
                .status
                .as_ref()
                .and_then(|s| s.disrupted_pods.as_ref())
                .is_some_and(|d| d.contains_key(name));
            if disrupted {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violated = true;
            }
        }
        if violated {
            violating.push(*pod);
        } else {
            non_violating.push(*pod);
        }
    }
    (violating, non_violating)
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The reasons that say what preemption does for a pod that does not fit: the outcome, and
/// the hint for a pod without a priorityClassName.
pub fn reasons(priority: &Priority, outcome: &Outcome) -> Vec<Reason> {
    let class = priority.class.clone();
    let mut out = vec![match outcome {
        Outcome::Preempts {
            victims,
            pdb_violations,
        } => Reason::Preemption {
            priority_class: class.clone(),
            priority: priority.value,
            victims: victims.clone(),
            pdb_violations: *pdb_violations,
        },
        Outcome::CannotHelp { why, .. } => Reason::PreemptionNotHelpful {
            priority_class: class.clone(),
            priority: priority.value,
            why: *why,
        },
    }];
    if class.is_none() && matches!(outcome, Outcome::CannotHelp { .. }) {
        out.push(Reason::NoPriorityClass {});
    }
    out
}

/// Every namespace holding a pod that preemption might evict for this pod on this node: where
/// PodDisruptionBudgets matter.
pub fn victim_namespaces<'a>(priority: &Priority, others: &'a [Pod]) -> Vec<&'a str> {
    let Some(value) = priority.value.filter(|_| !priority.never) else {
        return Vec::new();
    };
    let mut out: Vec<&str> = others
        .iter()
        .filter(|p| fit::is_active(p) && pod_priority(p) < value)
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
