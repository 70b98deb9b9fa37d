//! Victim selection from real-looking objects (as `kubectl get -o yaml` prints them).

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;

use super::*;
use crate::engine::testutil::{node, pod, pod_spec};

/// A 1-cpu node with room for 4 pods.
const SMALL: &str = "
apiVersion: v1
kind: Node
metadata: {name: small-1, labels: {kubernetes.io/hostname: small-1}}
status:
  allocatable: {cpu: '1', memory: 4Gi, pods: '4'}
  capacity: {cpu: '1', memory: 4Gi, pods: '4'}
";

/// A running pod on small-1 with a priority (as admission set it), a cpu request, labels and a
/// start time.
fn running(ns: &str, name: &str, priority: i32, cpu: &str, started: &str) -> Pod {
    pod(&format!(
        "
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}, tier: batch}}
spec:
  nodeName: small-1
  priority: {priority}
  preemptionPolicy: PreemptLowerPriority
  containers:
  - name: main
    image: registry.example/{name}:1
    resources: {{requests: {{cpu: {cpu}}}}}
status:
  phase: Running
  startTime: '{started}'
"
    ))
}

fn agent(cpu: &str) -> PodSpec {
    pod_spec(&format!(
        "
priorityClassName: node-agents
containers:
- name: agent
  image: registry.example/agent:2
  resources: {{requests: {{cpu: {cpu}}}}}
"
    ))
}

fn class(yaml: &str) -> PriorityClass {
    crate::yaml::from_str(yaml).expect("priorityclass yaml")
}

fn pdb(yaml: &str) -> PodDisruptionBudget {
    crate::yaml::from_str(yaml).expect("pdb yaml")
}

fn classes() -> Vec<PriorityClass> {
    vec![
        class(
            "
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: node-agents}
value: 100000
preemptionPolicy: PreemptLowerPriority
",
        ),
        class(
            "
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: batch-low}
value: 10
globalDefault: true
preemptionPolicy: PreemptLowerPriority
",
        ),
        class(
            "
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: polite}
value: 100000
preemptionPolicy: Never
",
        ),
    ]
}

fn victims(outcome: &Outcome) -> (Vec<&str>, usize) {
    match outcome {
        Outcome::Preempts {
            victims,
            pdb_violations,
        } => (
            victims.iter().map(String::as_str).collect(),
            *pdb_violations,
        ),
        other => panic!("expected victims, got {other:?}"),
    }
}

#[test]
fn priority_resolved_as_admission_does() {
    let cls = classes();
    let p = resolve(&agent("100m"), Some(&cls));
    assert_eq!(
        (p.class.as_deref(), p.value, p.never),
        (Some("node-agents"), Some(100000), false)
    );
    // No class: the globalDefault class fills in.
    let p = resolve(&pod_spec("containers: [{name: c}]"), Some(&cls));
    assert_eq!((p.class.as_deref(), p.value), (Some("batch-low"), Some(10)));
    // No class and no default: 0, no class.
    let p = resolve(&pod_spec("containers: [{name: c}]"), Some(&[]));
    assert_eq!((p.class, p.value), (None, Some(0)));
    // No class and the classes unread: a globalDefault may exist, so unknown.
    let p = resolve(&pod_spec("containers: [{name: c}]"), None);
    assert_eq!((p.class, p.value), (None, None));
    // Built-in classes are known even when PriorityClasses cannot be listed.
    let p = resolve(
        &pod_spec("priorityClassName: system-node-critical\ncontainers: [{name: c}]"),
        None,
    );
    assert_eq!(p.value, Some(2_000_001_000));
    // A user class without the list: unknown; a missing class: unknown too.
    assert_eq!(resolve(&agent("1"), None).value, None);
    assert_eq!(resolve(&agent("1"), Some(&[])).value, None);
    // preemptionPolicy comes from the class.
    let p = resolve(
        &pod_spec("priorityClassName: polite\ncontainers: [{name: c}]"),
        Some(&cls),
    );
    assert!(p.never);
    // An admitted pod carries its priority.
    let p = resolve(
        running("a", "b", 7, "1", "2026-11-30T10:00:00Z")
            .spec
            .as_ref()
            .unwrap(),
        None,
    );
    assert_eq!(p.value, Some(7));
}

#[test]
fn minimal_victim_set_spares_the_most_important() {
    // 1 cpu: three low pods of 300m each (900m used); the agent wants 500m: two must go, and
    // the scheduler spares the most important one (higher priority first, then the oldest).
    let others = vec![
        running("batch", "old-low", 10, "300m", "2026-11-30T08:00:00Z"),
        running("batch", "new-low", 10, "300m", "2026-11-30T09:00:00Z"),
        running("batch", "mid", 20, "300m", "2026-11-30T09:30:00Z"),
    ];
    let spec = agent("500m");
    assert!(!fit::misfits(&spec, &node(SMALL), &others).is_empty());
    let cls = classes();
    let prio = resolve(&spec, Some(&cls));
    let out = evaluate(&spec, &prio, &node(SMALL), &others, &[], Some(&cls));
    // Reprieve order: mid (20), old-low, new-low. mid comes back (300m + 500m fit), old-low
    // would make 1100m: victims are old-low and new-low.
    assert_eq!(victims(&out), (vec!["batch/old-low", "batch/new-low"], 0));
    // With 400m only one goes: mid is reprieved first, then old-low, new-low is the victim.
    let out = evaluate(
        &agent("400m"),
        &prio,
        &node(SMALL),
        &others,
        &[],
        Some(&cls),
    );
    assert_eq!(victims(&out), (vec!["batch/new-low"], 0));
}

#[test]
fn pdb_violating_pods_reprieved_first() {
    // Two equal pods; either one frees enough. Without PDBs the newer one goes (the older is
    // more important); a PDB with no disruptions left covering the newer one makes the
    // scheduler try to spare it first, so the older one goes instead.
    let others = vec![
        running("web", "a", 10, "500m", "2026-11-30T08:00:00Z"),
        running("web", "b", 10, "500m", "2026-11-30T09:00:00Z"),
    ];
    let spec = agent("400m");
    let prio = Priority {
        class: Some("node-agents".into()),
        value: Some(1000),
        never: false,
    };
    let out = select_victims_on_node(&spec, 1000, &node(SMALL), &others, &[]);
    assert_eq!(victims(&out), (vec!["web/b"], 0));
    let guard = pdb("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b-guard, namespace: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: b}}
status:
  currentHealthy: 1
  desiredHealthy: 1
  disruptionsAllowed: 0
  expectedPods: 1
");
    let out = evaluate(
        &spec,
        &prio,
        &node(SMALL),
        &others,
        std::slice::from_ref(&guard),
        None,
    );
    assert_eq!(victims(&out), (vec!["web/a"], 0));
    // When both must go, the PDB is violated (minimised, not forbidden), and counted.
    let out = evaluate(&agent("900m"), &prio, &node(SMALL), &others, &[guard], None);
    assert_eq!(victims(&out), (vec!["web/a", "web/b"], 1));
    // A PDB elsewhere, an empty selector, or the pod already in disruptedPods: no violation.
    let elsewhere = pdb("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b-guard, namespace: other}
spec: {selector: {matchLabels: {app: b}}}
status: {disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1}
");
    let empty = pdb("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: all, namespace: web}
spec: {selector: {}}
status: {disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1}
");
    let disrupted = pdb("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b-guard, namespace: web}
spec: {selector: {matchLabels: {app: b}}}
status:
  disruptionsAllowed: 0
  currentHealthy: 1
  desiredHealthy: 1
  expectedPods: 1
  disruptedPods: {b: '2026-11-30T09:59:00Z'}
");
    let refs: Vec<&Pod> = others.iter().collect();
    for p in [elsewhere, empty, disrupted] {
        let (violating, _) = filter_pods_with_pdb_violation(&refs, std::slice::from_ref(&p));
        assert!(violating.is_empty(), "{:?}", p.metadata.name);
    }
}

#[test]
fn never_and_equal_priority_cannot_preempt() {
    let others = vec![running(
        "batch",
        "hog",
        100000,
        "900m",
        "2026-11-30T08:00:00Z",
    )];
    let cls = classes();
    let spec = agent("500m");
    let prio = resolve(&spec, Some(&cls));
    // Equal priority (100000 vs 100000): never a victim.
    assert_eq!(
        evaluate(&spec, &prio, &node(SMALL), &others, &[], Some(&cls)),
        Outcome::CannotHelp {
            why: NotHelpful::NoLowerPriorityPods,
            misfits: vec![]
        }
    );
    // preemptionPolicy Never, even with a lower-priority pod there.
    let low = vec![running("batch", "hog", 1, "900m", "2026-11-30T08:00:00Z")];
    let polite = pod_spec(
        "priorityClassName: polite\ncontainers: [{name: c, resources: {requests: {cpu: 500m}}}]",
    );
    let prio = resolve(&polite, Some(&cls));
    assert_eq!(
        evaluate(&polite, &prio, &node(SMALL), &low, &[], Some(&cls)),
        Outcome::CannotHelp {
            why: NotHelpful::PolicyNever,
            misfits: vec![]
        }
    );
    // The reasons say why, and a pod without a class gets the hint.
    let none = Priority {
        class: None,
        value: Some(0),
        never: false,
    };
    let out = evaluate(&spec, &none, &node(SMALL), &others, &[], Some(&cls));
    let rs = reasons(&none, &out);
    assert_eq!(
        rs.iter().map(Reason::code).collect::<Vec<_>>(),
        vec!["PreemptionNotHelpful", "NoPriorityClass"]
    );
    assert!(rs[0].message().contains("equal or higher priority"));
}

#[test]
fn still_does_not_fit_without_every_lower_pod() {
    // A high-priority pod holds 600m; even with the low one gone 500m does not fit.
    let others = vec![
        running(
            "kube-system",
            "critical",
            2_000_000_000,
            "600m",
            "2026-11-30T08:00:00Z",
        ),
        running("batch", "low", 10, "300m", "2026-11-30T08:00:00Z"),
    ];
    let out = select_victims_on_node(&agent("500m"), 100000, &node(SMALL), &others, &[]);
    let Outcome::CannotHelp { why, misfits } = out else {
        panic!("{out:?}")
    };
    assert_eq!(why, NotHelpful::StillDoesNotFit);
    assert!(matches!(
        &misfits[0],
        Reason::InsufficientResources { used_by_other_pods, .. } if used_by_other_pods == "600m"
    ));
}

#[test]
fn host_port_and_pod_count_preemption() {
    // The low pod holds host port 9100: it is the victim, not the higher one without ports.
    let mut exporter = running("mon", "old-exporter", 10, "10m", "2026-11-30T08:00:00Z");
    exporter.spec.as_mut().unwrap().containers[0].ports = Some(vec![crate::yaml::from_str(
        "{containerPort: 9100, hostPort: 9100, protocol: TCP}",
    )
    .unwrap()]);
    let others = vec![
        exporter,
        running("batch", "low", 10, "10m", "2026-11-30T07:00:00Z"),
    ];
    let spec = pod_spec(
        "containers: [{name: agent, ports: [{containerPort: 9100, hostPort: 9100, protocol: TCP}]}]",
    );
    let out = select_victims_on_node(&spec, 1000, &node(SMALL), &others, &[]);
    assert_eq!(victims(&out), (vec!["mon/old-exporter"], 0));
    // Pod count: 4 pods on a 4-pod node; the newest lowest one makes room.
    let full: Vec<Pod> = (0..4)
        .map(|i| {
            running(
                "batch",
                &format!("p{i}"),
                10 + i,
                "10m",
                &format!("2026-11-30T0{i}:00:00Z"),
            )
        })
        .collect();
    let spec = pod_spec("containers: [{name: agent}]");
    assert!(fit::misfits(&spec, &node(SMALL), &full)
        .iter()
        .any(|r| matches!(r, Reason::TooManyPods { .. })));
    let out = select_victims_on_node(&spec, 1000, &node(SMALL), &full, &[]);
    assert_eq!(victims(&out), (vec!["batch/p0"], 0));
    // Terminal pods are neither counted nor victims.
    let mut done = running("batch", "done", 1, "900m", "2026-11-30T01:00:00Z");
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert_eq!(
        victim_namespaces(
            &Priority {
                class: None,
                value: Some(5),
                never: false
            },
            &[done]
        ),
        Vec::<&str>::new()
    );
}

// ---- through explain and rollout-preview ----

/// The DaemonSet at templateGeneration `gen`: v1 asks 100m and has no class, v2 asks 500m with
/// the node-agents class.
fn agent_ds(gen: i64) -> k8s_openapi::api::apps::v1::DaemonSet {
    let (class, cpu) = if gen == 1 {
        ("", "100m")
    } else {
        ("priorityClassName: node-agents", "500m")
    };
    crate::engine::testutil::daemon_set(&format!(
        "
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: kube-system
  uid: ds-uid
  generation: {gen}
  annotations: {{deprecated.daemonset.template.generation: '{gen}'}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 1, maxSurge: 0}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      {class}
      containers:
      - name: agent
        image: registry.example/agent:{gen}
        resources: {{requests: {{cpu: {cpu}}}}}
status: {{observedGeneration: 1, desiredNumberScheduled: 1, currentNumberScheduled: 1, numberReady: 1}}
"
    ))
}

/// The DaemonSet's pod on small-1: running at v1, or pending at v2 (pinned, not bound).
fn agent_pod(running: bool) -> Pod {
    let (gen, bound, priority, phase) = if running {
        (1, "nodeName: small-1", "priority: 0", "Running")
    } else {
        (
            2,
            "priorityClassName: node-agents",
            "priority: 100000",
            "Pending",
        )
    };
    pod(&format!(
        "
apiVersion: v1
kind: Pod
metadata:
  name: agent-x{gen}
  namespace: kube-system
  uid: agent-uid-{gen}
  labels: {{app: agent, pod-template-generation: '{gen}'}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
spec:
  {bound}
  {priority}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchFields: [{{key: metadata.name, operator: In, values: [small-1]}}]
  containers:
  - name: agent
    image: registry.example/agent:{gen}
    resources: {{requests: {{cpu: {}}}}}
status:
  phase: {phase}
  conditions: [{{type: Ready, status: '{}', lastTransitionTime: '2026-11-30T08:00:00Z'}}]
",
        if running { "100m" } else { "500m" },
        if running { "True" } else { "False" },
    ))
}

fn batch_pods() -> Vec<Pod> {
    vec![
        running("batch", "old-low", 10, "300m", "2026-11-30T08:00:00Z"),
        running("batch", "new-low", 10, "300m", "2026-11-30T09:00:00Z"),
        running("batch", "mid", 20, "300m", "2026-11-30T09:30:00Z"),
    ]
}

#[test]
fn explain_says_the_pending_pod_fits_by_preempting() {
    use crate::engine::explain::{explain, preemption_namespaces, NodeFilter, NodeState};
    let pending = agent_pod(false);
    let mut snap = crate::engine::snapshot::Snapshot {
        daemon_set: agent_ds(2),
        nodes: vec![node(SMALL)].into(),
        pods: vec![pending],
        ..Default::default()
    };
    snap.pods_on_nodes.insert("small-1".into(), batch_pods());
    assert_eq!(preemption_namespaces(&snap), vec!["batch".to_string()]);
    let e = explain(&snap, &NodeFilter::default());
    let v = &e.nodes[0];
    assert_eq!(v.state, NodeState::Pending);
    assert!(v.reasons.contains(&Reason::Preemption {
        priority_class: Some("node-agents".into()),
        priority: Some(100000),
        victims: vec!["batch/old-low".into(), "batch/new-low".into()],
        pdb_violations: 0,
    }));
    assert!(
        v.reasons
            .iter()
            .any(|r| matches!(r, Reason::InsufficientResources { .. })),
        "the fact stays beside the outcome"
    );
    assert!(
        e.summary
            .notes
            .iter()
            .any(|n| n.contains("PodDisruptionBudgets")),
        "PDBs were not read: said so"
    );
    // The overview's summary-only explanation lists no node, and says the same about them.
    let mut overview = explain(&snap, &NodeFilter::summary_only());
    assert!(overview.nodes.is_empty());
    assert_eq!((overview.summary.shown, e.summary.shown), (0, 1));
    overview.summary.shown = e.summary.shown;
    assert_eq!(
        serde_json::to_value(&overview.summary).unwrap(),
        serde_json::to_value(&e.summary).unwrap()
    );
}

#[test]
fn rollout_preview_restarts_by_preempting_and_blocks_without_classes() {
    use crate::engine::rollout::{classify, Action};
    let mut snap = crate::engine::snapshot::Snapshot {
        daemon_set: agent_ds(1),
        nodes: vec![node(SMALL)].into(),
        pods: vec![agent_pod(true)],
        ..Default::default()
    };
    let mut on_node = batch_pods();
    on_node.push(agent_pod(true));
    snap.pods_on_nodes.insert("small-1".into(), on_node);
    let new = agent_ds(2);
    let priorities = ClusterPriorities {
        classes: Some(classes()),
        pdbs: Some(vec![]),
    };
    let classified = classify(&snap, &new);
    assert_eq!(classified.nodes_needing_fit_check(), vec!["small-1"]);
    assert_eq!(
        classified.preemption_namespaces(&snap.pods_on_nodes, &priorities),
        vec!["batch".to_string()]
    );
    let p = classified.finish_with(&snap.pods_on_nodes, &priorities);
    let n = &p.nodes[0];
    assert_eq!(n.action, Action::Restart, "{:?}", n.reasons);
    assert!(n.reasons.iter().any(|r| matches!(
        r,
        Reason::Preemption { victims, .. } if victims == &["batch/old-low", "batch/new-low"]
    )));
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("small-1 (batch/old-low, batch/new-low)")));
    // Without the PriorityClasses (RBAC) the class is unknown: Blocked, and a note says why.
    let p = classify(&snap, &new).finish(&snap.pods_on_nodes);
    let n = &p.nodes[0];
    assert_eq!(n.action, Action::Blocked);
    assert!(n.reasons.iter().any(|r| matches!(
        r,
        Reason::PreemptionNotHelpful {
            why: NotHelpful::PriorityUnknown,
            ..
        }
    )));
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("PriorityClasses could not be listed")));
}
