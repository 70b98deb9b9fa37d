//! Field ownership (`metadata.managedFields`): which field manager last applied the pod
//! template server-side. A dry-run apply as that manager removes what its manifest no longer
//! lists, exactly as its next real apply would.
//! mirrors structured-merge-diff ownership (FieldsV1 `f:` paths per manager and operation)

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::Value;

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
}
