//! Suggested fixes: for a reason a change to the DaemonSet's template can fix, the smallest such
//! change as a strategic-merge patch of the DaemonSet; for a reason only the node can fix, a
//! description (never applied). Pure: the DaemonSet in, patches out.
//!
//! PodSpec's `tolerations` and `nodeSelectorTerms` carry no patch merge key (core/v1 types.go),
//! so a strategic-merge patch replaces those lists whole: each patch below repeats the existing
//! entries and adds one. `containers` and `initContainers` do carry one (`patchStrategy:"merge"
//! patchMergeKey:"name"`): a smaller-request patch names only the containers it changes, and
//! [`apply_patch`] merges those lists by name as the apiserver does; everything else applies as
//! a JSON merge patch (RFC 7386).

use crate::engine::model::Node;
use crate::engine::model::{Pod, PodSpec};
use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Serialize;
use serde_json::{json, Value};

use super::explain::NodeVerdict;
use super::fit;
use super::placement;
use super::preemption::{self, ClusterPriorities, Outcome, SYSTEM_CLASSES};
use super::reason::Reason;
use super::snapshot::{is_claimed_by, Snapshot};

/// Who can apply a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FixTarget {
    /// A change to the DaemonSet's template: `patch` holds it (`explain --fix` applies it).
    Manifest,
    /// A change to the node (described only; kubectl-ds never changes nodes for a fix).
    Node,
    /// A change elsewhere in the cluster, e.g. a PriorityClass to create (described only).
    Cluster,
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

/// PodSpec lists merged by `name` (core/v1 types.go `patchMergeKey:"name"`).
const MERGED_BY_NAME: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Applies a patch from [`fix_for`] to a manifest (strategic-merge semantics for what these
/// patches hold: maps merge, `null` deletes, container lists merge by name, other lists
/// replace).
pub fn apply_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if MERGED_BY_NAME.contains(&k.as_str()) && v.is_array() {
                    merge_by_name(t.entry(k.clone()).or_insert(json!([])), v);
                } else {
                    apply_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// mirrors apimachinery strategicpatch mergeSlice for a merge-keyed list: an entry with the
/// key of an existing one merges into it, any other is appended.
fn merge_by_name(target: &mut Value, patch: &Value) {
    if !target.is_array() {
        *target = json!([]);
    }
    let list = target.as_array_mut().expect("an array");
    for entry in patch.as_array().into_iter().flatten() {
        match list.iter_mut().find(|t| t["name"] == entry["name"]) {
            Some(t) => apply_patch(t, entry),
            None => list.push(entry.clone()),
        }
    }
}

/// Every fix for one node's verdict, aligned with its reasons (`None` where none is known).
/// Beside [`fix_for`]'s per-reason fixes, it computes what needs the node and the cluster: a
/// priorityClassName that makes preemption work (on `PreemptionNotHelpful`, replacing the
/// `NoPriorityClass` hint) and the largest request that fits (on `InsufficientResources`).
///
/// Called for every node explained (5,000 on a large cluster): the node, its other pods and
/// the typed template are looked up only for a verdict whose reasons need them.
pub fn node_fixes(snap: &Snapshot, spec_json: &Value, v: &NodeVerdict) -> Vec<Option<Fix>> {
    let needs = |f: fn(&Reason) -> bool| v.reasons.iter().any(f);
    let needs_priority = needs(|r| matches!(r, Reason::PreemptionNotHelpful { .. }));
    let spec = (needs_priority || needs(|r| matches!(r, Reason::InsufficientResources { .. })))
        .then(|| placement::template_spec(&snap.daemon_set));
    let mut priority = None;
    if let (Some(spec), true) = (&spec, needs_priority) {
        let node = snap
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(v.name.as_str()));
        // The DaemonSet's own pods there are the ones the fixed pod replaces.
        let others: Vec<Pod> = snap
            .pods_on_nodes
            .get(&v.name)
            .into_iter()
            .flatten()
            .filter(|p| !is_claimed_by(&snap.daemon_set, &p.metadata))
            .cloned()
            .collect();
        if let Some(node) = node {
            priority = priority_fix(spec, &snap.priorities, node, &others, snap.namespace());
        }
    }
    let has_priority_fix = priority.is_some();
    v.reasons
        .iter()
        .map(|r| match r {
            Reason::PreemptionNotHelpful { .. } => priority.take(),
            // The priority fix replaces the hint.
            Reason::NoPriorityClass {} if has_priority_fix => None,
            Reason::InsufficientResources {
                resource,
                allocatable,
                used_by_other_pods,
                ..
            } => spec
                .as_ref()
                .and_then(|spec| {
                    smaller_request_fix(spec, resource, allocatable, used_by_other_pods, &v.name)
                })
                .or_else(|| fix_for(r, spec_json, &v.name)),
            _ => fix_for(r, spec_json, &v.name),
        })
        .collect()
}

/// The lowest existing PriorityClass (PreemptLowerPriority) whose value lets the pod fit on
/// `node` by preempting (see [`preemption::select_victims_on_node`]), as a template patch; or,
/// when none exists but a user-definable value would do, a description of the class to create.
/// `None` when no priority helps (the pod does not fit even with every other pod evicted) or
/// the pod's own priority is unknown.
pub fn priority_fix(
    spec: &PodSpec,
    priorities: &ClusterPriorities,
    node: &Node,
    others: &[Pod],
    namespace: &str,
) -> Option<Fix> {
    let current = priorities.priority_of(spec);
    let now = current.value?;
    let preempts =
        |value: i32| match preemption::select_victims_on_node(spec, value, node, others, &[]) {
            Outcome::Preempts { victims, .. } => Some(victims),
            Outcome::CannotHelp { .. } => None,
        };
    // Above the pod's priority (or equal, when only its preemptionPolicy Never stops it).
    let above = |value: i32| value > now || (current.never && value == now);
    let is_system = |name: &str| SYSTEM_CLASSES.iter().any(|(n, _)| *n == name);
    let mut user: Vec<(String, i32)> = priorities
        .classes
        .iter()
        .flatten()
        .filter(|pc| pc.preemption_policy.as_deref() != Some("Never"))
        .filter_map(|pc| Some((pc.metadata.name.clone()?, pc.value)))
        .filter(|(name, _)| !is_system(name))
        .collect();
    let mut system: Vec<(String, i32)> = SYSTEM_CLASSES
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    for list in [&mut user, &mut system] {
        list.retain(|(name, value)| above(*value) && current.class.as_deref() != Some(name));
        list.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    }
    let lowest = |list: &[(String, i32)]| {
        list.iter()
            .find_map(|(n, v)| preempts(*v).map(|victims| (n.clone(), *v, victims)))
    };
    let set_class = |name: &str, value: i32, victims: Vec<String>, caveat: &str| {
        let mut inner = json!({"priorityClassName": name});
        // Admission refuses a pod spec whose priority or preemptionPolicy differs from the
        // class's (plugin/pkg/admission/priority admitPod): drop them.
        if spec.priority.is_some() {
            inner["priority"] = Value::Null;
        }
        if spec.preemption_policy.is_some() {
            inner["preemptionPolicy"] = Value::Null;
        }
        manifest(
            format!(
                "set priorityClassName {name} (value {value}, the lowest existing class that does it): the pod then fits by preempting {} lower-priority pod(s): {}{caveat}",
                victims.len(),
                victims.join(", ")
            ),
            inner,
        )
    };
    // 1. A class the cluster's users defined.
    if let Some((name, value, victims)) = lowest(&user) {
        return set_class(&name, value, victims, "");
    }
    // 2. In kube-system, the built-in classes meant for node agents.
    if namespace == "kube-system" {
        if let Some((name, value, victims)) = lowest(&system) {
            return set_class(&name, value, victims, "");
        }
    }
    // 3. Elsewhere, the lowest user-definable value that works: a class to create
    // (HighestUserDefinablePriority, scheduling/types.go).
    const HIGHEST_USER_DEFINABLE: i32 = 1_000_000_000;
    let mut levels: Vec<i32> = others
        .iter()
        .filter(|p| fit::is_active(p))
        .map(preemption::pod_priority)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let unlisted = if priorities.classes.is_none() {
        " (PriorityClasses could not be listed: an existing class may already do)"
    } else {
        ""
    };
    let create = levels
        .into_iter()
        .map(|p| p.saturating_add(1))
        .filter(|v| above(*v) && *v <= HIGHEST_USER_DEFINABLE)
        .find_map(|v| preempts(v).map(|victims| (v, victims)));
    if let Some((value, victims)) = create {
        return Some(Fix {
            target: FixTarget::Cluster,
            description: format!(
                "no existing PriorityClass is high enough{unlisted}: create one with value {value} or more (kubectl create priorityclass NAME --value={value}) and set priorityClassName to it; the pod then fits by preempting {} lower-priority pod(s): {} (system-cluster-critical would also do where the apiserver allows it outside kube-system)",
                victims.len(),
                victims.join(", ")
            ),
            patch: None,
        });
    }
    // 4. Only a built-in class is high enough.
    let (name, value, victims) = lowest(&system)?;
    set_class(
        &name,
        value,
        victims,
        &format!("; outside kube-system the apiserver may refuse it unless a ResourceQuota in {namespace} allows that class (limited priority consumption)"),
    )
}

/// Resources a request may be lowered for: extended resources and hugepages must keep
/// requests equal to limits (core validation), so they get no patch.
const LOWERABLE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The largest `resource` request that fits the node's free allocatable (`allocatable` minus
/// `used` by other pods), spread over the containers requesting it in proportion to their
/// requests, as a patch of those containers (merged by name). A fit, not a sizing advice.
pub fn smaller_request_fix(
    spec: &PodSpec,
    resource: &str,
    allocatable: &str,
    used: &str,
    node_name: &str,
) -> Option<Fix> {
    if !LOWERABLE.contains(&resource) {
        return None;
    }
    let free = fit::parse_quantity(allocatable)? - fit::parse_quantity(used)?;
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| fit::parse_quantity(&q.0))
        .unwrap_or(0);
    let target = free - overhead;
    let pod_level = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|r| r.contains_key(resource));
    let mut without_overhead = spec.clone();
    without_overhead.overhead = None;
    let total = fit::pod_requests(&without_overhead)
        .get(resource)
        .copied()
        .unwrap_or(0);
    if target <= 0 || total <= target || pod_level {
        return None;
    }
    // Whole bytes for memory-like resources, millicores for cpu.
    let unit = if resource == "cpu" { 1 } else { 1000 };
    let scale = |r: i128| (r * target / total) / unit * unit;
    let mut fixed = spec.clone();
    let mut inner = json!({});
    let mut changes = Vec::new();
    for (key, list) in [
        ("containers", &mut fixed.containers),
        (
            "initContainers",
            fixed.init_containers.get_or_insert_with(Vec::new),
        ),
    ] {
        let mut patches = Vec::new();
        for c in list.iter_mut() {
            let Some(&r) = fit::container_requests(c).get(resource) else {
                continue;
            };
            if r == 0 {
                continue;
            }
            let q = fit::format_quantity(resource, scale(r));
            let res = std::sync::Arc::make_mut(c.resources.get_or_insert_with(Default::default));
            res.requests.get_or_insert_with(Default::default).insert(
                resource.to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.clone()),
            );
            changes.push(format!(
                "{} {} -> {q}",
                c.name,
                fit::format_quantity(resource, r)
            ));
            patches.push(json!({"name": c.name, "resources": {"requests": {resource: q}}}));
        }
        if !patches.is_empty() {
            inner[key] = Value::Array(patches);
        }
    }
    // What fits is checked the way the scheduler sums it, not assumed from the arithmetic.
    let fits = fit::pod_requests(&fixed)
        .get(resource)
        .copied()
        .unwrap_or(0)
        <= free;
    if changes.is_empty() || !fits {
        return None;
    }
    manifest(
        format!(
            "lower the {resource} request ({}) to fit the {} free on node {node_name}: the largest request that fits this node now, not a sizing recommendation for the workload",
            changes.join(", "),
            fit::format_quantity(resource, free)
        ),
        inner,
    )
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

/// The patches `explain --fix` applies from one node's fixes (aligned with its reasons): every
/// manifest fix, except that a priorityClassName fix and smaller-request fixes are alternatives
/// for the same misfit: then only the priority class is applied (preemption is how the
/// scheduler makes room for a node agent; the request is the workload's sizing).
pub fn patches_to_apply<'a>(reasons: &[Reason], fixes: &'a [Option<Fix>]) -> Vec<&'a Value> {
    let priority = reasons.iter().zip(fixes).any(|(r, f)| {
        matches!(r, Reason::PreemptionNotHelpful { .. })
            && f.as_ref().is_some_and(|f| f.patch.is_some())
    });
    reasons
        .iter()
        .zip(fixes)
        .filter(|(r, _)| !(priority && matches!(r, Reason::InsufficientResources { .. })))
        .filter_map(|(_, f)| f.as_ref()?.patch.as_ref())
        .collect()
}

#[cfg(test)]
mod tests;
