//! Unit tests of the suggested fixes: inline YAML and the saved Lists in tests/fixtures.

use super::*;
use crate::engine::reason::PodFate;
use crate::engine::testutil::daemon_set;

const DS: &str = r#"
metadata: {name: agent, namespace: ops, uid: u1, resourceVersion: "7", generation: 2}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {pool: infra, os: linux}
      tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
      containers: [{name: a, image: agent:1}]
status: {desiredNumberScheduled: 1, currentNumberScheduled: 1, numberMisscheduled: 0, numberReady: 1}
"#;

#[test]
fn a_toleration_for_exactly_that_taint_keeping_the_others() {
    let ds = daemon_set(DS);
    let r = Reason::UntoleratedTaint {
        key: "gpu".into(),
        value: Some("true".into()),
        effect: "NoSchedule".into(),
        existing_pod: PodFate::Kept,
    };
    let fix = fix_for(&r, &template_spec(&ds), "n1").unwrap();
    assert_eq!(fix.target, FixTarget::Manifest);
    let mut m = manifest_of(&ds);
    apply_patch(&mut m, fix.patch.as_ref().unwrap());
    assert_eq!(
        m["spec"]["template"]["spec"]["tolerations"],
        json!([
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ])
    );
    assert!(m.get("status").is_none() && m["metadata"].get("uid").is_none());
    assert_eq!(m["metadata"]["name"], "agent");
}

#[test]
fn selector_and_affinity_relaxed_node_changes_described() {
    let ds = daemon_set(DS);
    let r = Reason::NodeSelectorMismatch {
        key: "pool".into(),
        wanted: "infra".into(),
        actual: None,
    };
    let mut m = manifest_of(&ds);
    apply_patch(
        &mut m,
        fix_for(&r, &template_spec(&ds), "n1")
            .unwrap()
            .patch
            .as_ref()
            .unwrap(),
    );
    assert_eq!(
        m["spec"]["template"]["spec"]["nodeSelector"],
        json!({"os": "linux"})
    );

    let r = Reason::NodeAffinityMismatch {
        term: Some(0),
        expression: "zone In [a]".into(),
    };
    let p = fix_for(&r, &template_spec(&ds), "n1")
        .unwrap()
        .patch
        .unwrap();
    let terms = &p["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    assert_eq!(terms[0]["matchFields"][0]["values"], json!(["n1"]));

    let r = Reason::TooManyPods {
        allocatable: 110,
        used: 110,
    };
    let f = fix_for(&r, &template_spec(&ds), "n1").unwrap();
    assert_eq!((f.target, f.patch), (FixTarget::Node, None));
    assert!(fix_for(&Reason::NotYetCreated {}, &Value::Null, "n1").is_none());
}

use crate::engine::testutil::snapshot_of_list;

const PRIORITY: &str = include_str!("../../../tests/fixtures/fix-priority.yaml");
const RESOURCES: &str = include_str!("../../../tests/fixtures/fix-resources.yaml");

/// Explains the fixture's only node; its verdict's reasons and fixes.
fn explained(snap: &Snapshot) -> (Vec<Reason>, Vec<Option<Fix>>) {
    use crate::engine::explain::{explain, NodeFilter};
    let e = explain(snap, &NodeFilter::default());
    let v = &e.nodes[0];
    let fixes = node_fixes(snap, &template_spec(&snap.daemon_set), v);
    (v.reasons.clone(), fixes)
}

fn fix_of<'a>(reasons: &[Reason], fixes: &'a [Option<Fix>], code: &str) -> Option<&'a Fix> {
    reasons
        .iter()
        .zip(fixes)
        .find(|(r, _)| r.code() == code)
        .and_then(|(_, f)| f.as_ref())
}

/// The fixed manifest (`explain --fix`) previewed as `rollout-preview -f` does.
fn preview_fixed(snap: &Snapshot, patches: &[&Value]) -> crate::engine::rollout::NodePreview {
    let mut m = manifest_of(&snap.daemon_set);
    for p in patches {
        apply_patch(&mut m, p);
    }
    // The apiserver bumps the generation of a changed template.
    m["metadata"]["generation"] = json!(2);
    m["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = json!("2");
    let new: DaemonSet = serde_json::from_value(m).unwrap();
    let classified = crate::engine::rollout::classify(snap, &new);
    let p = classified.finish_with(&snap.pods_on_nodes, &snap.priorities);
    p.nodes[0].clone()
}

#[test]
fn priority_class_fix_names_the_lowest_existing_class_that_preempts() {
    let snap = snapshot_of_list(PRIORITY, "log-agent");
    let (reasons, fixes) = explained(&snap);
    let codes: Vec<&str> = reasons.iter().map(Reason::code).collect();
    assert!(codes.contains(&"PreemptionNotHelpful"), "{codes:?}");
    let f = fix_of(&reasons, &fixes, "PreemptionNotHelpful").expect("a priority fix");
    assert_eq!(f.target, FixTarget::Manifest);
    // bulk-never (50000) never preempts; tier-high (900000) and the system classes are higher.
    assert_eq!(
        f.patch.as_ref().unwrap(),
        &json!({"spec": {"template": {"spec": {"priorityClassName": "node-agents"}}}})
    );
    assert!(
        f.description.contains("batch/report-2"),
        "{}",
        f.description
    );
    // The hint is replaced by the fix; the smaller request is offered beside it.
    assert!(fix_of(&reasons, &fixes, "NoPriorityClass").is_none());
    let smaller = fix_of(&reasons, &fixes, "InsufficientResources").unwrap();
    assert_eq!(
        smaller.patch.as_ref().unwrap()["spec"]["template"]["spec"]["containers"],
        json!([{"name": "agent", "resources": {"requests": {"cpu": "200m"}}}])
    );
    // --fix applies only the class (the alternatives are not stacked), and the preview of
    // the fixed manifest replaces the pending pod by preempting report-2.
    let patches = patches_to_apply(&reasons, &fixes);
    assert_eq!(patches.len(), 1);
    let n = preview_fixed(&snap, &patches);
    assert_eq!(n.action.as_str(), "Restart", "{:?}", n.reasons);
    assert!(
        n.reasons
            .iter()
            .any(|r| matches!(r, Reason::Preemption { victims, .. }
            if victims == &["batch/report-2"])),
        "{:?}",
        n.reasons
    );
}

#[test]
fn without_a_high_enough_class_it_describes_the_one_to_create() {
    let mut snap = snapshot_of_list(PRIORITY, "log-agent");
    snap.priorities.classes.as_mut().unwrap().retain(|pc| {
        matches!(
            pc.metadata.name.as_deref(),
            Some("batch-low" | "bulk-never" | "system-node-critical")
        )
    });
    let spec = placement::template_spec(&snap.daemon_set);
    let node = snap.nodes[0].clone();
    let others = snap.pods_on_nodes["small-1"].clone();
    // Outside kube-system: value 11 is the lowest that lets it preempt a batch pod (10).
    let f = priority_fix(&spec, &snap.priorities, &node, &others, "logging").unwrap();
    assert_eq!((f.target, f.patch.is_none()), (FixTarget::Cluster, true));
    assert!(
        f.description.contains("--value=11") && f.description.contains("batch/report-2"),
        "{}",
        f.description
    );
    // In kube-system the built-in class for node agents is named.
    let f = priority_fix(&spec, &snap.priorities, &node, &others, "kube-system").unwrap();
    assert_eq!(
        f.patch.unwrap()["spec"]["template"]["spec"]["priorityClassName"],
        "system-cluster-critical"
    );
    // Batch pods above every user-definable value: only a built-in class, with the caveat.
    let mut high = others.clone();
    for p in &mut high {
        p.spec.as_mut().unwrap().priority = Some(1_500_000_000);
    }
    let f = priority_fix(&spec, &snap.priorities, &node, &high, "logging").unwrap();
    assert_eq!(f.target, FixTarget::Manifest);
    assert!(f.description.contains("ResourceQuota"), "{}", f.description);
    // Nothing preempts a system-node-critical pod.
    for p in &mut high {
        p.spec.as_mut().unwrap().priority = Some(2_000_001_000);
    }
    assert!(priority_fix(&spec, &snap.priorities, &node, &high, "kube-system").is_none());
}

#[test]
fn a_never_class_is_replaced_and_the_spec_policy_dropped() {
    let snap = snapshot_of_list(PRIORITY, "log-agent");
    let node = snap.nodes[0].clone();
    let mut never = placement::template_spec(&snap.daemon_set);
    never.preemption_policy = Some("Never".into());
    never.priority_class_name = Some("bulk-never".into());
    let others = &snap.pods_on_nodes["small-1"];
    let f = priority_fix(&never, &snap.priorities, &node, others, "logging").unwrap();
    let patch = &f.patch.unwrap()["spec"]["template"]["spec"];
    assert_eq!(patch["priorityClassName"], "node-agents");
    assert!(
        patch.as_object().unwrap().contains_key("preemptionPolicy")
            && patch["preemptionPolicy"].is_null(),
        "admission refuses a spec policy differing from the class's: {patch}"
    );
    // An unknown priority (classes unreadable, no class named): no guess.
    let unread = ClusterPriorities::default();
    let spec = placement::template_spec(&snap.daemon_set);
    assert!(priority_fix(&spec, &unread, &node, others, "logging").is_none());
}

#[test]
fn smaller_requests_spread_over_the_containers_and_fit_exactly() {
    let snap = snapshot_of_list(RESOURCES, "log-agent");
    let (reasons, fixes) = explained(&snap);
    assert!(
        fix_of(&reasons, &fixes, "PreemptionNotHelpful").is_none(),
        "no pod of lower priority than system-node-critical: {reasons:?}"
    );
    let f = fix_of(&reasons, &fixes, "InsufficientResources").expect("a request fix");
    assert_eq!(f.target, FixTarget::Manifest);
    // 1500m free; 1200m + 500m scaled by 1500/1700, rounded down to the millicore.
    assert_eq!(
        f.patch.as_ref().unwrap()["spec"]["template"]["spec"],
        json!({"containers": [
            {"name": "agent", "resources": {"requests": {"cpu": "1058m"}}},
            {"name": "shipper", "resources": {"requests": {"cpu": "441m"}}}
        ]})
    );
    assert!(f.description.contains("not a sizing recommendation"));
    // Merged by name: the memory request, the limits and the images stay.
    let mut m = manifest_of(&snap.daemon_set);
    apply_patch(&mut m, f.patch.as_ref().unwrap());
    let c = &m["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        c[0]["resources"],
        json!({"requests": {"cpu": "1058m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}})
    );
    assert_eq!(c[1]["image"], "registry.example/shipper:0.9");
    // The preview of the fixed manifest: the pod now fits, the node restarts into it.
    let patches = patches_to_apply(&reasons, &fixes);
    let n = preview_fixed(&snap, &patches);
    assert_eq!(n.action.as_str(), "Restart", "{:?}", n.reasons);
    assert!(
        !n.reasons
            .iter()
            .any(|r| matches!(r, Reason::InsufficientResources { .. })),
        "{:?}",
        n.reasons
    );
}

#[test]
fn smaller_request_bounds_init_containers_and_overhead_and_skips_what_cannot_lower() {
    let spec = crate::engine::testutil::pod_spec(
        "
initContainers: [{name: init, image: i, resources: {requests: {memory: 1Gi}}}]
containers: [{name: a, image: a, resources: {limits: {memory: 512Mi}}}]
overhead: {memory: 64Mi}
",
    );
    // 768Mi free: minus 64Mi overhead, 704Mi for the 1Gi init peak.
    let f = smaller_request_fix(&spec, "memory", "2Gi", "1280Mi", "n1").unwrap();
    let inner = &f.patch.unwrap()["spec"]["template"]["spec"];
    assert_eq!(
        inner["initContainers"][0]["resources"]["requests"]["memory"],
        "704Mi"
    );
    // The app container's request came from its limit: 512Mi * 704/1024 = 352Mi.
    assert_eq!(
        inner["containers"][0]["resources"]["requests"]["memory"],
        "352Mi"
    );
    // Nothing free, an extended resource, or already fitting: no patch.
    assert!(smaller_request_fix(&spec, "memory", "1Gi", "1Gi", "n1").is_none());
    assert!(smaller_request_fix(&spec, "nvidia.com/gpu", "1", "1", "n1").is_none());
    assert!(smaller_request_fix(&spec, "memory", "8Gi", "0", "n1").is_none());
    // The described node-side fix remains for those.
    let r = Reason::InsufficientResources {
        resource: "nvidia.com/gpu".into(),
        requested: "1".into(),
        allocatable: "1".into(),
        used_by_other_pods: "1".into(),
    };
    assert_eq!(
        fix_for(&r, &Value::Null, "n1").unwrap().target,
        FixTarget::Node
    );
}

#[test]
fn container_lists_merge_by_name_other_lists_replace() {
    let mut m = json!({"spec": {"containers": [
        {"name": "a", "image": "a:1", "resources": {"requests": {"cpu": "1"}}},
        {"name": "b", "image": "b:1"}
    ], "tolerations": [{"key": "x"}]}});
    apply_patch(
        &mut m,
        &json!({"spec": {"containers": [
            {"name": "b", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "c", "image": "c:1"}
        ], "tolerations": [{"key": "y"}]}}),
    );
    assert_eq!(
        m,
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "resources": {"requests": {"cpu": "1"}}},
            {"name": "b", "image": "b:1", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "c", "image": "c:1"}
        ], "tolerations": [{"key": "y"}]}})
    );
}
