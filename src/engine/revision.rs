//! Revisions: which ControllerRevision is current, and is a pod up to date?
//! mirrors daemon update.go constructHistory/Match/getPatch and daemonset_util.go IsPodUpdated

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

pub const HASH_LABEL: &str = "controller-revision-hash";
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The DaemonSet's templateGeneration (apps/v1 annotation).
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// The revision hash of a ControllerRevision (its label, else its name, as constructHistory).
pub fn revision_hash(cr: &ControllerRevision) -> String {
    cr.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| cr.metadata.name.clone().unwrap_or_default())
}

/// A pod's revision hash label.
pub fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// mirrors daemonset_util.go IsPodUpdated: the hash matches, or (legacy) the
/// pod-template-generation label equals the DaemonSet's templateGeneration.
pub fn is_pod_updated(pod: &Pod, hash: Option<&str>, template_generation: Option<i64>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let generation_matches = template_generation.is_some_and(|g| {
        labels.and_then(|l| l.get(TEMPLATE_GENERATION_LABEL)) == Some(&g.to_string())
    });
    let hash_matches = hash.is_some_and(|h| !h.is_empty() && pod_hash(pod) == Some(h));
    hash_matches || generation_matches
}

/// The template as a ControllerRevision stores it (`data.spec.template`), normalised so that
/// Go's always-emitted empties (`creationTimestamp: null`, `resources: {}`) compare equal to
/// k8s-openapi's omitted fields.
/// mirrors update.go getPatch, compared semantically rather than byte-wise.
pub fn stored_template(cr: &ControllerRevision) -> Option<Value> {
    let mut t = cr.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    Some(normalise(t))
}

/// The DaemonSet's template, normalised as [`stored_template`].
pub fn template_value(ds: &DaemonSet) -> Option<Value> {
    let t = serde_json::to_value(&ds.spec.as_ref()?.template).ok()?;
    Some(normalise(t))
}

/// Drops nulls, empty objects and empty arrays, recursively.
pub fn normalise(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, normalise(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// mirrors update.go Match: the revisions whose stored template equals the DaemonSet's.
pub fn matching_revisions<'a>(
    ds: &DaemonSet,
    revisions: &'a [ControllerRevision],
) -> Vec<&'a ControllerRevision> {
    let Some(want) = template_value(ds) else {
        return Vec::new();
    };
    revisions
        .iter()
        .filter(|cr| stored_template(cr).as_ref() == Some(&want))
        .collect()
}

/// The current revision: the highest-numbered revision matching the template (dedupCurHistories
/// keeps the highest), else the highest revision overall (the controller bumps the current one
/// to the top), else none.
pub fn current_revision<'a>(
    ds: &DaemonSet,
    revisions: &'a [ControllerRevision],
) -> Option<&'a ControllerRevision> {
    matching_revisions(ds, revisions)
        .into_iter()
        .max_by_key(|cr| cr.revision)
        .or_else(|| revisions.iter().max_by_key(|cr| cr.revision))
}

/// The revision number of a pod's hash, if a revision carries it.
pub fn revision_number(hash: &str, revisions: &[ControllerRevision]) -> Option<i64> {
    revisions
        .iter()
        .find(|cr| revision_hash(cr) == hash)
        .map(|cr| cr.revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{daemon_set, pod};

    fn cr(yaml: &str) -> ControllerRevision {
        crate::yaml::from_str(yaml).unwrap()
    }

    const DS: &str = "
metadata:
  name: agent
  annotations: {deprecated.daemonset.template.generation: '3'}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: agent:2}]
";

    #[test]
    fn matches_go_rendered_revision_data() {
        let ds = daemon_set(DS);
        let old = cr(r#"
metadata: {name: agent-aaa, labels: {controller-revision-hash: aaa}}
revision: 1
data: {"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"agent"}},"spec":{"containers":[{"name":"agent","image":"agent:1","resources":{}}]}}}}
"#);
        let cur = cr(r#"
metadata: {name: agent-bbb, labels: {controller-revision-hash: bbb}}
revision: 2
data: {"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"agent"}},"spec":{"containers":[{"name":"agent","image":"agent:2","resources":{}}]}}}}
"#);
        let revs = [cur.clone(), old.clone()];
        assert_eq!(matching_revisions(&ds, &revs).len(), 1);
        assert_eq!(revision_hash(current_revision(&ds, &revs).unwrap()), "bbb");
        assert_eq!(revision_number("aaa", &revs), Some(1));
    }

    #[test]
    fn pod_updated_by_hash_or_generation() {
        let p = |labels: &str| {
            pod(&format!(
                "metadata: {{name: p, labels: {labels}}}\nspec: {{containers: []}}"
            ))
        };
        assert!(is_pod_updated(
            &p("{controller-revision-hash: bbb}"),
            Some("bbb"),
            Some(3)
        ));
        assert!(!is_pod_updated(
            &p("{controller-revision-hash: aaa}"),
            Some("bbb"),
            Some(3)
        ));
        assert!(is_pod_updated(
            &p("{controller-revision-hash: aaa, pod-template-generation: '3'}"),
            Some("bbb"),
            Some(3)
        ));
        assert!(!is_pod_updated(&p("{}"), None, None));
        assert_eq!(template_generation(&daemon_set(DS)), Some(3));
    }
}
