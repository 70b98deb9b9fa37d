//! Should this node run the DaemonSet's pod? The controller's exact rule, with the reasons.
//! mirrors daemon_controller.go NodeShouldRunDaemonPod (and NewPod, predicates)

use std::collections::HashMap;

use crate::engine::model::Node;
use crate::engine::model::PodSpec;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::affinity;
use super::reason::{taint_text, PodFate, Reason};
use super::taints::{self, NOT_READY, NO_EXECUTE, NO_SCHEDULE, UNREACHABLE, UNSCHEDULABLE};

/// The controller's verdict for one node, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Eligibility {
    /// A pod should run here (counts in DESIRED).
    pub should_run: bool,
    /// A pod already here may keep running.
    pub should_continue_running: bool,
    /// Why not (eligibility reasons), plus informational ones (Cordoned, AutoTolerated).
    pub reasons: Vec<Reason>,
}

/// The DaemonSet's pod spec (empty when the template has none).
pub fn template_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .map(PodSpec::from)
        .unwrap_or_default()
}

/// NodeShouldRunDaemonPod for one pod spec on many nodes: the tolerations the pod would carry
/// (the template's plus the automatic ones, daemonset_util.go AddOrUpdateDaemonPodTolerations,
/// as the controller adds them once per pod it creates) are computed once, not once per node.
pub struct Placer<'a> {
    spec: &'a PodSpec,
    tolerations: Vec<Toleration>,
}

impl<'a> Placer<'a> {
    pub fn new(spec: &'a PodSpec) -> Placer<'a> {
        Placer {
            spec,
            tolerations: taints::effective_tolerations(spec),
        }
    }

    /// The tolerations the created pod carries (the template's plus the automatic ones).
    pub fn tolerations(&self) -> &[Toleration] {
        &self.tolerations
    }

    /// mirrors daemon_controller.go NodeShouldRunDaemonPod
    pub fn node_should_run(&self, node: &Node) -> Eligibility {
        node_should_run_tolerating(self.spec, &self.tolerations, node)
    }
}

/// [`Placer::node_should_run`] over many nodes, each distinct case evaluated once.
/// NodeShouldRunDaemonPod reads of a node only: its name (against the template's nodeName and
/// required matchFields), its labels at the keys the nodeSelector and the required node
/// affinity name, its taints' keys, values and effects, `spec.unschedulable`, and its Ready
/// condition (in NodeNotReady). Nodes alike in all of these get the same verdict, so a pool of
/// a thousand nodes is one evaluation (and, for the overview, 100 DaemonSets on 5,000 nodes are
/// a few hundred). A key holding the node's name (nodeName, matchFields) is unique per node:
/// then the rule is evaluated for each node, unmemoised.
pub struct Memo<'p, 'a> {
    placer: &'p Placer<'a>,
    /// The label keys the rule reads, in a fixed order.
    label_keys: Vec<&'a str>,
    /// The rule reads the node's name: every node is its own case.
    by_name: bool,
    /// Each case's key, and its index in `cases`.
    seen: HashMap<Box<[u8]>, usize>,
    cases: Vec<Eligibility>,
    key: Vec<u8>,
    unmemoised: Option<Eligibility>,
}

impl<'p, 'a> Memo<'p, 'a> {
    pub fn new(placer: &'p Placer<'a>) -> Memo<'p, 'a> {
        let spec = placer.spec;
        let mut label_keys: Vec<&'a str> = spec
            .node_selector
            .iter()
            .flat_map(|s| s.keys().map(String::as_str))
            .collect();
        let terms = affinity::required(spec).map_or(&[][..], |r| r.node_selector_terms.as_slice());
        let mut by_name = spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
        for term in terms {
            label_keys.extend(
                term.match_expressions
                    .iter()
                    .flatten()
                    .map(|e| e.key.as_str()),
            );
            by_name |= term.match_fields.as_ref().is_some_and(|f| !f.is_empty());
        }
        label_keys.sort_unstable();
        label_keys.dedup();
        Memo {
            placer,
            label_keys,
            by_name,
            seen: HashMap::new(),
            cases: Vec::new(),
            key: Vec::new(),
            unmemoised: None,
        }
    }

    /// mirrors daemon_controller.go NodeShouldRunDaemonPod (as [`Placer::node_should_run`])
    pub fn node_should_run(&mut self, node: &Node) -> &Eligibility {
        if self.by_name {
            return self.unmemoised.insert(self.placer.node_should_run(node));
        }
        self.key.clear();
        let labels = node.metadata.labels.as_ref();
        for k in &self.label_keys {
            put(
                &mut self.key,
                labels.and_then(|l| l.get(*k)).map(String::as_str),
            );
        }
        let spec = node.spec.as_ref();
        self.key.push(match spec.and_then(|s| s.unschedulable) {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        put(&mut self.key, ready_condition_ref(node));
        for t in spec.and_then(|s| s.taints.as_deref()).unwrap_or(&[]) {
            put(&mut self.key, Some(&t.key));
            put(&mut self.key, t.value.as_deref());
            put(&mut self.key, Some(&t.effect));
        }
        // One hash per node seen before (the common case); a new case is evaluated and kept.
        let case = match self.seen.get(self.key.as_slice()) {
            Some(&case) => case,
            None => {
                self.cases.push(self.placer.node_should_run(node));
                self.seen
                    .insert(self.key.as_slice().into(), self.cases.len() - 1);
                self.cases.len() - 1
            }
        };
        &self.cases[case]
    }
}

/// One field of a [`Memo`] key: its length (or none) then its bytes, so no two different
/// sequences of fields make the same key.
fn put(key: &mut Vec<u8>, field: Option<&str>) {
    match field {
        None => key.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(f) => {
            key.extend_from_slice(&(f.len() as u32).to_le_bytes());
            key.extend_from_slice(f.as_bytes());
        }
    }
}

/// mirrors daemon_controller.go NodeShouldRunDaemonPod, with the pod's effective tolerations.
fn node_should_run_tolerating(
    spec: &PodSpec,
    tolerations: &[Toleration],
    node: &Node,
) -> Eligibility {
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let mut reasons = Vec::new();
    // Template nodeName: `!(NodeName == "" || NodeName == node.Name) => (false, false)`.
    if let Some(wanted) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if wanted != node_name {
            return Eligibility {
                should_run: false,
                should_continue_running: false,
                reasons: vec![Reason::NodeNameMismatch {
                    wanted: wanted.to_string(),
                }],
            };
        }
    }
    // predicates(): fitsNodeAffinity (nodeSelector + required affinity).
    let affinity_reasons = affinity::mismatches(spec, node);
    let fits_affinity = affinity_reasons.is_empty();
    reasons.extend(affinity_reasons);

    // predicates(): fitsTaints, against the template's tolerations + the automatic ones.
    let node_taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let untolerated = taints::untolerated(node_taints, tolerations);
    let has_untolerated_no_execute = untolerated.iter().any(|t| t.effect == NO_EXECUTE);
    let fate = if has_untolerated_no_execute || !fits_affinity {
        PodFate::Deleted
    } else {
        PodFate::Kept
    };
    for t in &untolerated {
        reasons.push(taint_reason(t, node, fate));
    }
    let fits_taints = untolerated.is_empty();

    if fits_affinity && fits_taints {
        reasons.extend(informational(spec, node, node_taints));
    }
    let (should_run, should_continue_running) = if !fits_affinity {
        (false, false)
    } else if !fits_taints {
        // "Scheduled daemon pods should continue running if they tolerate NoExecute taint."
        (false, !has_untolerated_no_execute)
    } else {
        (true, true)
    };
    Eligibility {
        should_run,
        should_continue_running,
        reasons,
    }
}

fn taint_reason(t: &Taint, node: &Node, fate: PodFate) -> Reason {
    if (t.key == NOT_READY || t.key == UNREACHABLE) && t.effect == NO_SCHEDULE {
        return Reason::NodeNotReady {
            taint: t.key.clone(),
            ready_condition: ready_condition(node),
        };
    }
    let existing_pod = if t.effect == NO_EXECUTE {
        PodFate::Deleted
    } else {
        fate
    };
    Reason::UntoleratedTaint {
        key: t.key.clone(),
        value: t.value.clone().filter(|v| !v.is_empty()),
        effect: t.effect.clone(),
        existing_pod,
    }
}

/// The node's Ready condition status ("True", "False", "Unknown"), if reported.
pub fn ready_condition(node: &Node) -> Option<String> {
    ready_condition_ref(node).map(str::to_string)
}

fn ready_condition_ref(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Cordoned, and taints tolerated only thanks to the automatic tolerations.
fn informational(spec: &PodSpec, node: &Node, node_taints: &[Taint]) -> Vec<Reason> {
    let mut out = Vec::new();
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        || node_taints.iter().any(|t| t.key == UNSCHEDULABLE);
    if cordoned {
        out.push(Reason::Cordoned {});
    }
    let own: &[_] = spec.tolerations.as_deref().map_or(&[], |v| v);
    let auto: Vec<String> = node_taints
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
        .filter(|t| t.key != UNSCHEDULABLE && !taints::any_tolerates(own, t))
        .map(|t| taint_text(&t.key, t.value.as_deref(), &t.effect))
        .collect();
    if !auto.is_empty() {
        out.push(Reason::AutoTolerated { taints: auto });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{node, pod_spec};

    fn run(spec: &str, n: &str) -> Eligibility {
        Placer::new(&pod_spec(spec)).node_should_run(&node(n))
    }

    #[test]
    fn plain_node_runs() {
        let e = run("containers: [{name: c, image: i}]", "metadata: {name: n1}");
        assert!(e.should_run && e.should_continue_running);
        assert!(e.reasons.is_empty());
    }

    #[test]
    fn template_node_name_elsewhere() {
        let e = run("nodeName: n2", "metadata: {name: n1}");
        assert_eq!((e.should_run, e.should_continue_running), (false, false));
        assert_eq!(
            e.reasons,
            vec![Reason::NodeNameMismatch {
                wanted: "n2".into()
            }]
        );
    }

    #[test]
    fn no_schedule_taint_keeps_existing_pod() {
        let n = "
metadata: {name: n1}
spec:
  taints: [{key: dedicated, value: db, effect: NoSchedule}]";
        let e = run("{}", n);
        assert_eq!((e.should_run, e.should_continue_running), (false, true));
        assert!(matches!(
            &e.reasons[0],
            Reason::UntoleratedTaint {
                existing_pod: PodFate::Kept,
                ..
            }
        ));
        let tolerated = run("tolerations: [{key: dedicated, operator: Exists}]", n);
        assert!(tolerated.should_run);
    }

    #[test]
    fn no_execute_taint_deletes_existing_pod() {
        let n = "
metadata: {name: n1}
spec:
  taints:
  - {key: a, effect: NoSchedule}
  - {key: b, value: x, effect: NoExecute}";
        let e = run("{}", n);
        assert_eq!((e.should_run, e.should_continue_running), (false, false));
        assert!(e.reasons.iter().all(|r| matches!(
            r,
            Reason::UntoleratedTaint {
                existing_pod: PodFate::Deleted,
                ..
            }
        )));
    }

    #[test]
    fn not_ready_node_drops_out_but_keeps_pod() {
        let n = "
metadata: {name: n1}
spec:
  taints:
  - {key: node.kubernetes.io/unreachable, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, effect: NoExecute}
status:
  conditions: [{type: Ready, status: Unknown}]";
        let e = run("{}", n);
        assert_eq!((e.should_run, e.should_continue_running), (false, true));
        assert_eq!(
            e.reasons,
            vec![Reason::NodeNotReady {
                taint: "node.kubernetes.io/unreachable".into(),
                ready_condition: Some("Unknown".into())
            }]
        );
        // A blanket toleration (typical CNI) runs everywhere, NotReady nodes included.
        let blanket = run("tolerations: [{operator: Exists}]", n);
        assert!(blanket.should_run);
    }

    #[test]
    fn cordoned_and_pressure_are_auto_tolerated() {
        let n = "
metadata: {name: n1}
spec:
  unschedulable: true
  taints:
  - {key: node.kubernetes.io/unschedulable, effect: NoSchedule}
  - {key: node.kubernetes.io/memory-pressure, effect: NoSchedule}";
        let e = run("{}", n);
        assert!(e.should_run);
        assert!(e.reasons.contains(&Reason::Cordoned {}));
        assert!(e.reasons.iter().any(|r| matches!(r, Reason::AutoTolerated { taints } if taints[0].contains("memory-pressure"))));
    }

    #[test]
    fn network_unavailable_only_with_host_network() {
        let n = "
metadata: {name: n1}
spec:
  taints: [{key: node.kubernetes.io/network-unavailable, effect: NoSchedule}]";
        assert!(!run("{}", n).should_run);
        assert!(run("hostNetwork: true", n).should_run);
    }

    /// The memo gives every node what evaluating it alone gives, and evaluates each case once.
    #[test]
    fn the_memo_is_the_rule_node_by_node() {
        let nodes: Vec<Node> = [
            "metadata: {name: a1, labels: {pool: a, zone: z1}}",
            "metadata: {name: a2, labels: {pool: a, zone: z2}}",
            "metadata: {name: a3, labels: {pool: a, zone: z1, size: '8'}}",
            "metadata: {name: b1, labels: {pool: b}}",
            "metadata: {name: b2, labels: {pool: b}}\nspec: {unschedulable: true}",
            "metadata: {name: b3, labels: {pool: b}}\nspec: {unschedulable: false}",
            "metadata: {name: n1}",
            "metadata: {name: n2, labels: {}}",
            "metadata: {name: g1, labels: {pool: gpu}}\nspec: {taints: [{key: dedicated, value: gpu, effect: NoSchedule}]}",
            "metadata: {name: g2, labels: {pool: gpu}}\nspec: {taints: [{key: dedicated, value: gpu, effect: NoSchedule}]}",
            "metadata: {name: g3, labels: {pool: gpu}}\nspec: {taints: [{key: dedicated, value: gpu, effect: NoExecute}]}",
            "metadata: {name: g4, labels: {pool: gpu}}\nspec: {taints: [{key: dedicated, effect: NoSchedule}]}",
            "metadata: {name: g5, labels: {pool: gpu}}\nspec: {taints: [{key: dedicatedgpu, effect: NoSchedule}]}",
            "metadata: {name: u1, labels: {pool: a}}\nspec: {taints: [{key: node.kubernetes.io/unreachable, effect: NoSchedule}]}\nstatus: {conditions: [{type: Ready, status: Unknown}]}",
            "metadata: {name: u2, labels: {pool: a}}\nspec: {taints: [{key: node.kubernetes.io/unreachable, effect: NoSchedule}]}\nstatus: {conditions: [{type: Ready, status: 'False'}]}",
            "metadata: {name: u3, labels: {pool: a}}\nspec: {taints: [{key: node.kubernetes.io/unreachable, effect: NoSchedule}]}\nstatus: {conditions: [{type: Ready, status: Unknown}]}",
            "metadata: {name: a4, labels: {pool: a, zone: z1}}",
        ]
        .iter()
        .map(|n| node(n))
        .collect();
        let specs = [
            "{}",
            "nodeSelector: {pool: a}",
            "nodeSelector: {pool: gpu}\ntolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]",
            "nodeSelector: {pool: b, zone: z1}",
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [z1]}]}, {matchExpressions: [{key: size, operator: Gt, values: ['4']}]}]}}}",
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: DoesNotExist}]}]}}}",
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [a1, b2]}]}]}}}",
            "nodeName: g2",
            "tolerations: [{operator: Exists}]",
        ];
        for spec in specs {
            let spec = pod_spec(spec);
            let placer = Placer::new(&spec);
            let mut memo = Memo::new(&placer);
            for n in &nodes {
                let alone = placer.node_should_run(n);
                assert_eq!(memo.node_should_run(n), &alone, "{spec:?} on {n:?}");
            }
            // The nodes whose name the rule reads are each their own case; the others repeat.
            if memo.by_name {
                assert!(memo.seen.is_empty());
            } else {
                assert!(
                    memo.seen.len() < nodes.len(),
                    "{spec:?}: {}",
                    memo.seen.len()
                );
            }
        }
    }

    #[test]
    fn selector_mismatch_deletes_even_with_only_no_schedule_taint() {
        let n = "
metadata: {name: n1, labels: {pool: a}}
spec:
  taints: [{key: x, effect: NoSchedule}]";
        let e = run("nodeSelector: {pool: b}", n);
        assert_eq!((e.should_run, e.should_continue_running), (false, false));
        assert_eq!(e.reasons.len(), 2);
    }
}
