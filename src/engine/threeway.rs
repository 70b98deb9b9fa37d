//! What a client-side `kubectl apply` makes of a manifest: a three-way merge of the manifest
//! applied last (the `kubectl.kubernetes.io/last-applied-configuration` annotation), the new
//! manifest and the live object. Fields the new manifest sets win; fields the last manifest set
//! and the new one drops are removed; fields nobody's manifest set (defaults, `kubectl rollout
//! restart`'s annotation, other writers) stay.
//! mirrors kubectl apply (client-side): strategicpatch.CreateThreeWayMergePatch applied to the
//! live object. Approximation: list items merge by the strategic merge key when every item
//! carries one of the keys below (containers, env, volumes by name; ports by containerPort;
//! volumeMounts by mountPath); other lists (tolerations, args...) are replaced, as lists without
//! a merge key are.

use serde_json::{Map, Value};

/// Candidate strategic-merge keys, most specific first (a port has a name AND a containerPort;
/// its merge key is containerPort).
const MERGE_KEYS: [&str; 5] = ["containerPort", "mountPath", "devicePath", "ip", "name"];

/// The annotation client-side apply keeps the applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manifest last applied client-side, if the object carries one.
pub fn last_applied(live: &Value) -> Option<Value> {
    let text = live["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    serde_json::from_str(text).ok()
}

/// What a client-side `kubectl apply` of `manifest` makes of `current`; None when `current` was
/// never applied client-side (no last-applied manifest to compare with).
pub fn client_side_apply(manifest: &Value, current: &Value) -> Option<Value> {
    let original = last_applied(current)?;
    let mut modified = manifest.clone();
    // kubectl records the manifest it applies (apply.go GetModifiedConfiguration).
    modified["metadata"]["annotations"][LAST_APPLIED] = Value::String(manifest.to_string());
    Some(merge(Some(&original), &modified, current))
}

/// The object after applying `modified` over `current`, `original` being the manifest applied
/// before (None: nothing is removed).
pub fn merge(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    match (modified, current) {
        (Value::Object(m), Value::Object(c)) => merge_maps(original, m, c),
        (Value::Array(m), Value::Array(c)) => match merge_key(original, m, c) {
            Some(key) => merge_lists(original, m, c, key),
            None => modified.clone(),
        },
        _ => modified.clone(),
    }
}

fn merge_maps(original: Option<&Value>, m: &Map<String, Value>, c: &Map<String, Value>) -> Value {
    let mut out = c.clone();
    for (k, mv) in m {
        if mv.is_null() {
            out.remove(k);
            continue;
        }
        let merged = merge(
            original.and_then(|o| o.get(k)),
            mv,
            c.get(k).unwrap_or(&Value::Null),
        );
        out.insert(k.clone(), merged);
    }
    if let Some(Value::Object(o)) = original {
        for k in o.keys().filter(|k| !m.contains_key(*k)) {
            out.remove(k);
        }
    }
    Value::Object(out)
}

/// The merge key every item of the three lists carries, if any.
fn merge_key(original: Option<&Value>, m: &[Value], c: &[Value]) -> Option<&'static str> {
    let orig = original
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let items: Vec<&Value> = m.iter().chain(c).chain(orig).collect();
    if items.is_empty() {
        return None;
    }
    MERGE_KEYS.into_iter().find(|k| {
        items
            .iter()
            .all(|i| i.get(*k).is_some_and(|v| !v.is_null()))
    })
}

/// Keyed lists: the manifest's items in its order, each merged with its live twin; live items
/// no manifest ever listed are kept after them; items the last manifest listed are dropped.
fn merge_lists(original: Option<&Value>, m: &[Value], c: &[Value], key: &str) -> Value {
    let find = |list: &[Value], item: &Value| -> Option<usize> {
        list.iter().position(|x| x.get(key) == item.get(key))
    };
    let orig = original
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut out: Vec<Value> = m
        .iter()
        .map(|mi| {
            let ci = find(c, mi).map(|i| &c[i]).unwrap_or(&Value::Null);
            let oi = find(orig, mi).map(|i| &orig[i]);
            merge(oi, mi, ci)
        })
        .collect();
    out.extend(
        c.iter()
            .filter(|ci| find(m, ci).is_none() && find(orig, ci).is_none())
            .cloned(),
    );
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dropped_fields_go_others_stay() {
        let original = json!({"spec": {"template": {
            "metadata": {"annotations": {"sim": "notready", "team": "a"}},
            "spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}],
                     "containers": [{"name": "agent", "image": "a:2"}]}}}});
        let modified = json!({"spec": {"template": {
            "metadata": {"annotations": {"team": "a"}},
            "spec": {"containers": [{"name": "agent", "image": "a:1"}]}}}});
        let current = json!({"spec": {"revisionHistoryLimit": 10, "template": {
            "metadata": {"annotations": {"sim": "notready", "team": "a", "kubectl.kubernetes.io/restartedAt": "t"}},
            "spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}], "dnsPolicy": "ClusterFirst",
                     "containers": [{"name": "agent", "image": "a:2", "imagePullPolicy": "IfNotPresent"}]}}}});
        let merged = merge(Some(&original), &modified, &current);
        assert_eq!(
            merged,
            json!({"spec": {"revisionHistoryLimit": 10, "template": {
                "metadata": {"annotations": {"team": "a", "kubectl.kubernetes.io/restartedAt": "t"}},
                "spec": {"dnsPolicy": "ClusterFirst",
                         "containers": [{"name": "agent", "image": "a:1", "imagePullPolicy": "IfNotPresent"}]}}}})
        );
        // Without a last-applied manifest nothing is removed.
        let kept = merge(None, &modified, &current);
        assert_eq!(
            kept["spec"]["template"]["spec"]["tolerations"][0]["key"],
            "gpu"
        );
        // A map the last manifest had and the new one drops goes whole, as kubectl's
        // three-way patch sets it to null.
        let no_metadata = json!({"spec": {"template": {"spec": {}}}});
        let merged = merge(Some(&original), &no_metadata, &current);
        assert!(merged["spec"]["template"].get("metadata").is_none());
    }

    #[test]
    fn keyed_lists_merge_by_their_key() {
        let original = json!([{"name": "a", "value": "1"}, {"name": "gone", "value": "x"}]);
        let modified = json!([{"name": "b", "value": "2"}, {"name": "a", "value": "3"}]);
        let current = json!([{"name": "a", "value": "1"}, {"name": "gone", "value": "x"}, {"name": "added-by-hand", "value": "h"}]);
        assert_eq!(
            merge(Some(&original), &modified, &current),
            json!([{"name": "b", "value": "2"}, {"name": "a", "value": "3"}, {"name": "added-by-hand", "value": "h"}])
        );
        // Ports merge by containerPort, not by name.
        let ports = merge(
            None,
            &json!([{"containerPort": 80, "name": "web"}]),
            &json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}]),
        );
        assert_eq!(
            ports,
            json!([{"containerPort": 80, "name": "web", "protocol": "TCP"}])
        );
        // Lists without a merge key are replaced.
        assert_eq!(merge(None, &json!(["x"]), &json!(["y", "z"])), json!(["x"]));
    }

    #[test]
    fn client_side_apply_keeps_annotations_and_records_the_manifest() {
        let original = json!({"metadata": {"name": "agent", "annotations": {}}, "spec": {"x": 1}});
        let current = json!({
            "metadata": {"name": "agent", "annotations": {
                LAST_APPLIED: original.to_string(),
                "deprecated.daemonset.template.generation": "2"}},
            "spec": {"x": 1, "y": 2}});
        let manifest = json!({"metadata": {"name": "agent"}, "spec": {"x": 3}});
        let applied = client_side_apply(&manifest, &current).unwrap();
        assert_eq!(applied["spec"], json!({"x": 3, "y": 2}));
        let annotations = &applied["metadata"]["annotations"];
        assert_eq!(annotations["deprecated.daemonset.template.generation"], "2");
        assert_eq!(last_applied(&applied), Some(manifest.clone()));
        assert_eq!(client_side_apply(&manifest, &json!({"metadata": {}})), None);
    }

    #[test]
    fn explicit_null_removes_and_annotation_parses() {
        assert_eq!(
            merge(None, &json!({"a": null}), &json!({"a": 1, "b": 2})),
            json!({"b": 2})
        );
        let live = json!({"metadata": {"annotations": {LAST_APPLIED: "{\"kind\":\"DaemonSet\"}"}}});
        assert_eq!(last_applied(&live), Some(json!({"kind": "DaemonSet"})));
        assert_eq!(last_applied(&json!({})), None);
    }
}
