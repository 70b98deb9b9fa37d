//! Field ownership (`metadata.managedFields`): which field manager a server-side apply should act
//! as, and which pod-template fields survive an apply only because another manager owns them.
//! mirrors structured-merge-diff fieldpath (FieldsV1: `f:` fields, `k:` list keys, `v:` set
//! values, `i:` indexes, `.` the node itself)

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{Map, Value};

const TEMPLATE: [&str; 2] = ["f:spec", "f:template"];

fn template_fields(fields: &Value) -> Option<&Value> {
    TEMPLATE.iter().try_fold(fields, |v, k| v.get(*k))
}

/// The manager whose last server-side apply set the pod template (latest wins): a dry-run apply
/// as that manager removes what its manifest no longer lists, as its next real apply would.
pub fn apply_manager(ds: &DaemonSet) -> Option<String> {
    ds.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Apply") && m.subresource.is_none())
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| template_fields(&f.0))
                .is_some()
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

/// The pod template of the manifest last applied client-side (`kubectl apply` keeps it in the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation).
pub fn last_applied_template(ds: &DaemonSet) -> Option<Value> {
    let text = ds.metadata.annotations.as_ref()?.get(LAST_APPLIED)?;
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("spec")?.get("template").cloned()
}

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Pod-template fields that `previous` (the template of the manifest applied before) sets, that
/// only managers other than `manager` own after a server-side apply as `manager` (so its
/// manifest dropped them), as readable paths. A client-side `kubectl apply` would remove them;
/// a server-side apply keeps them because another manager owns them.
pub fn kept_template_fields(ds: &DaemonSet, manager: &str, previous: &Value) -> Vec<String> {
    let mut ours = Value::Object(Map::new());
    let mut others = Value::Object(Map::new());
    for m in ds.metadata.managed_fields.iter().flatten() {
        let Some(t) = m.fields_v1.as_ref().and_then(|f| template_fields(&f.0)) else {
            continue;
        };
        let into = if m.manager.as_deref() == Some(manager) && m.subresource.is_none() {
            &mut ours
        } else {
            &mut others
        };
        union(into, t);
    }
    let mut out = Vec::new();
    only_in(&others, &ours, previous, "spec.template", &mut out);
    out
}

fn union(into: &mut Value, from: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            union(a.entry(k.clone()).or_insert(Value::Object(Map::new())), v);
        }
    }
}

/// Collects the topmost paths of `a` that `b` does not own at all and `previous` sets.
fn only_in(a: &Value, b: &Value, previous: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(children) = a else { return };
    for (k, child) in children.iter().filter(|(k, _)| k.as_str() != ".") {
        let Some(prev) = resolve(previous, k) else {
            continue;
        };
        let p = format!("{path}{}", segment(k));
        match b.get(k) {
            None => out.push(p),
            Some(theirs) => only_in(child, theirs, prev, &p, out),
        }
    }
}

/// The part of a JSON value a FieldsV1 key names.
fn resolve<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    if let Some(name) = key.strip_prefix("f:") {
        return v.get(name);
    }
    let items = v.as_array()?;
    if let Some(keys) = key.strip_prefix("k:") {
        let Value::Object(keys) = serde_json::from_str::<Value>(keys).ok()? else {
            return None;
        };
        return items
            .iter()
            .find(|item| keys.iter().all(|(k, want)| item.get(k) == Some(want)));
    }
    if let Some(value) = key.strip_prefix("v:") {
        let want: Value = serde_json::from_str(value).ok()?;
        return items.iter().find(|item| **item == want);
    }
    items.get(key.strip_prefix("i:")?.parse::<usize>().ok()?)
}

/// `f:name` -> `.name`; `k:{"name":"a"}` -> `[name=a]`; `v:"x"` -> `[x]`; `i:0` -> `[0]`.
fn segment(key: &str) -> String {
    if let Some(name) = key.strip_prefix("f:") {
        return format!(".{name}");
    }
    if let Some(keys) = key.strip_prefix("k:") {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(keys) {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
            return format!("[{}]", parts.join(","));
        }
    }
    if let Some(v) = key.strip_prefix("v:") {
        return match serde_json::from_str::<Value>(v) {
            Ok(v) => format!("[{}]", plain(&v)),
            Err(_) => format!("[{v}]"),
        };
    }
    if let Some(i) = key.strip_prefix("i:") {
        return format!("[{i}]");
    }
    format!(".{key}")
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::daemon_set;

    const DS: &str = r#"
metadata:
  name: agent
  managedFields:
  - manager: creator
    operation: Update
    time: '2026-01-01T00:00:00Z'
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:template:
          f:metadata: {f:labels: {.: {}, f:app: {}}}
          f:spec:
            f:containers:
              k:{"name":"agent"}: {.: {}, f:image: {}, f:name: {}}
            f:tolerations: {}
  - manager: kubectl-rollout
    operation: Update
    time: '2026-01-02T00:00:00Z'
    fieldsType: FieldsV1
    fieldsV1:
      f:spec: {f:template: {f:metadata: {f:annotations: {.: {}, f:kubectl.kubernetes.io/restartedAt: {}}}}}
  - manager: kubectl
    operation: Apply
    time: '2026-01-03T00:00:00Z'
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:template:
          f:metadata: {f:labels: {f:app: {}}}
          f:spec:
            f:containers:
              k:{"name":"agent"}: {.: {}, f:image: {}, f:name: {}}
  - manager: kube-controller-manager
    operation: Update
    subresource: status
    fieldsType: FieldsV1
    fieldsV1: {f:status: {f:numberReady: {}}}
spec:
  selector: {}
  template: {}
"#;

    #[test]
    fn the_last_applier_of_the_template_is_the_manager() {
        assert_eq!(apply_manager(&daemon_set(DS)).as_deref(), Some("kubectl"));
        let no_apply = daemon_set("metadata: {name: x}\nspec: {selector: {}, template: {}}");
        assert_eq!(apply_manager(&no_apply), None);
    }

    #[test]
    fn fields_the_last_manifest_set_and_the_new_one_drops_are_kept() {
        let ds = daemon_set(DS);
        // The previous manifest had the toleration and the container; not the annotation
        // (kubectl rollout restart's) nor the defaults.
        let previous = serde_json::json!({
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "agent", "image": "agent:1"}],
                     "tolerations": [{"key": "gpu", "operator": "Exists"}]}
        });
        assert_eq!(
            kept_template_fields(&ds, "kubectl", &previous),
            vec!["spec.template.spec.tolerations"]
        );
        assert_eq!(
            kept_template_fields(&ds, "nobody", &previous),
            vec!["spec.template.metadata", "spec.template.spec"]
        );
        assert!(kept_template_fields(&ds, "kubectl", &serde_json::json!({})).is_empty());
    }

    #[test]
    fn list_keys_resolve_in_json() {
        let v = serde_json::json!([{"name": "a", "port": 1}, {"name": "b"}]);
        assert_eq!(
            resolve(&v, r#"k:{"name":"b"}"#),
            Some(&serde_json::json!({"name": "b"}))
        );
        assert_eq!(resolve(&v, "i:0").unwrap()["port"], 1);
        assert_eq!(resolve(&v, r#"k:{"name":"c"}"#), None);
        let annotation = format!(
            "metadata: {{name: x, annotations: {{{LAST_APPLIED}: '{{\"spec\":{{\"template\":{{\"spec\":{{}}}}}}}}'}}}}\nspec: {{selector: {{}}, template: {{}}}}"
        );
        assert_eq!(
            last_applied_template(&daemon_set(&annotation)),
            Some(serde_json::json!({"spec": {}}))
        );
    }

    #[test]
    fn segments() {
        assert_eq!(
            segment(r#"k:{"key":"gpu","operator":"Exists"}"#),
            "[key=gpu,operator=Exists]"
        );
        assert_eq!(segment(r#"v:"a""#), "[a]");
        assert_eq!(segment("i:2"), "[2]");
        assert_eq!(segment("f:nodeSelector"), ".nodeSelector");
    }
}
