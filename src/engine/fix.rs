//! Suggested fixes: for a reason a change to the DaemonSet's template can fix, the smallest such
//! change as a strategic-merge patch of the DaemonSet; for a reason only the node can fix, a
//! description (never applied). Pure: the DaemonSet in, patches out.
//!
//! PodSpec's `tolerations` and `nodeSelectorTerms` carry no patch merge key (core/v1 types.go),
//! so a strategic-merge patch replaces those lists whole: each patch below repeats the existing
//! entries and adds one. With lists replaced and maps merged, the same patch applies as a JSON
//! merge patch (RFC 7386), which is how [`apply_patch`] applies it.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Serialize;
use serde_json::{json, Value};

use super::reason::Reason;

/// Who can apply a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FixTarget {
    /// A change to the DaemonSet's template: `patch` holds it (`explain --fix` applies it).
    Manifest,
    /// A change to the node (described only; kubectl-ds never changes nodes for a fix).
    Node,
}

/// A suggested fix for one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    pub target: FixTarget,
    pub description: String,
    /// A strategic-merge patch of the DaemonSet (Manifest fixes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
}

/// The DaemonSet's pod template spec as JSON: computed once, passed to every [`fix_for`].
pub fn template_spec(ds: &DaemonSet) -> Value {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn spec_patch(inner: Value) -> Value {
    json!({"spec": {"template": {"spec": inner}}})
}

fn manifest(description: String, inner: Value) -> Option<Fix> {
    Some(Fix {
        target: FixTarget::Manifest,
        description,
        patch: Some(spec_patch(inner)),
    })
}

fn node(description: String) -> Option<Fix> {
    Some(Fix {
        target: FixTarget::Node,
        description,
        patch: None,
    })
}

/// The fix for `reason` on `node_name`, if one is known; `spec` is [`template_spec`].
pub fn fix_for(reason: &Reason, spec: &Value, node_name: &str) -> Option<Fix> {
    match reason {
        Reason::UntoleratedTaint {
            key, value, effect, ..
        } => {
            // A toleration for exactly this taint (Equal with its value, Exists without one).
            let toleration = match value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => json!({"key": key, "operator": "Equal", "value": v, "effect": effect}),
                None => json!({"key": key, "operator": "Exists", "effect": effect}),
            };
            let mut list = spec["tolerations"].as_array().cloned().unwrap_or_default();
            list.push(toleration);
            let taint = match value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{key}={v}:{effect}"),
                None => format!("{key}:{effect}"),
            };
            manifest(
                format!(
                    "add a toleration for the taint {taint} (or remove the taint from the node)"
                ),
                json!({"tolerations": list}),
            )
        }
        Reason::NodeSelectorMismatch { key, wanted, .. } => manifest(
            format!("drop nodeSelector {key}={wanted} (or label the node {key}={wanted})"),
            json!({"nodeSelector": {key.as_str(): null}}),
        ),
        Reason::NodeAffinityMismatch { .. } => {
            // Terms are ORed: one more term naming this node makes it eligible, the others
            // keep their meaning.
            let required =
                &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
            let mut terms = required["nodeSelectorTerms"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            terms.push(json!({"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node_name]}
            ]}));
            manifest(
                format!("add a required node-affinity term matching node {node_name} by name"),
                json!({"affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                }}}),
            )
        }
        Reason::NoPriorityClass {} => node(
            "set a priorityClassName (e.g. system-node-critical) so the pod can preempt; \
             which class is a policy decision, so no patch is offered"
                .into(),
        ),
        Reason::NodeNotReady { taint, .. } => node(format!(
            "bring the node back to Ready (it is tainted {taint})"
        )),
        Reason::InsufficientResources {
            resource,
            requested,
            allocatable,
            used_by_other_pods,
        } => node(format!(
            "free {resource} on the node ({used_by_other_pods} of {allocatable} used by other \
             pods) or lower the pod's {resource} request ({requested})"
        )),
        Reason::TooManyPods { allocatable, .. } => node(format!(
            "the node's {allocatable} pod slots are used: remove pods or raise its pod capacity"
        )),
        Reason::HostPortConflict { port, held_by, .. } => node(format!(
            "host port {port} is held by {held_by}: move that pod or change the port"
        )),
        _ => None,
    }
}

/// Applies a patch from [`fix_for`] to a manifest (merge semantics: maps merge, `null`
/// deletes, lists replace).
pub fn apply_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    apply_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The DaemonSet as a manifest to apply: server-set metadata and status dropped.
pub fn manifest_of(ds: &DaemonSet) -> Value {
    let mut v = serde_json::to_value(ds).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        m.insert("apiVersion".into(), json!("apps/v1"));
        m.insert("kind".into(), json!("DaemonSet"));
    }
    if let Some(meta) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deprecated.daemonset.template.generation");
        }
    }
    v
}

#[cfg(test)]
mod tests {
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
}
