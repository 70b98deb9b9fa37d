//! Mutations, each with its preconditions and a dry-run switch: the options of the orphaning
//! delete (UID + resourceVersion preconditions, propagationPolicy=Orphan; mirrors kubectl
//! delete --cascade=orphan) and of the create. The workflows' executor builds and sends their
//! requests (`workflows::executor::Mutation::request`); `create_daemon_set` remains for the
//! server-defaulting probe.

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, DeleteParams, PostParams, Preconditions, PropagationPolicy};

use super::client::Cluster;
use crate::error::{Error, Result};

/// The field manager kubectl-ds writes with.
pub const FIELD_MANAGER: &str = "kubectl-ds";

/// What the apiserver answered to the orphaning delete.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// Accepted: the object now carries a deletionTimestamp and the `orphan` finalizer (or, for
    /// a dry run, would).
    Accepted(Box<DaemonSet>),
    /// Deleted at once (no finalizer was needed).
    Deleted,
    /// A precondition failed: the object changed (resourceVersion) or was replaced (UID).
    Conflict(String),
}

/// The orphaning delete's options: propagationPolicy=Orphan, `preconditions: {uid,
/// resourceVersion}` of the object as read, dryRun=All when asked.
pub fn orphan_delete_params(ds: &DaemonSet, dry_run: bool) -> DeleteParams {
    DeleteParams {
        dry_run,
        grace_period_seconds: None,
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions {
            uid: ds.metadata.uid.clone(),
            resource_version: ds.metadata.resource_version.clone(),
        }),
    }
}

/// The create's options: kubectl-ds's field manager, dryRun=All when asked.
pub fn create_params(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

/// Creates the DaemonSet (dry-run: the apiserver validates, defaults and admits it, and
/// persists nothing; the answer is the object as it would be stored).
pub async fn create_daemon_set(
    cluster: &Cluster,
    ds: &DaemonSet,
    dry_run: bool,
) -> Result<DaemonSet> {
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");
    let name = ds
        .metadata
        .name
        .as_deref()
        .or(ds.metadata.generate_name.as_deref())
        .unwrap_or("");
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), ns);
    let params = create_params(dry_run);
    let what = if dry_run {
        "creating (dry run)"
    } else {
        "creating"
    };
    api.create(&params, ds)
        .await
        .map_err(|e| Error::kube(&format!("{what} daemonset {ns}/{name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Request;

    fn ds() -> DaemonSet {
        crate::yaml::from_str(
            "metadata: {name: agent, namespace: kube-system, uid: u-1, resourceVersion: '4711'}",
        )
        .unwrap()
    }

    /// The exact DELETE request: its body (DeleteOptions) with dryRun, propagationPolicy and
    /// both preconditions (what kube-apiserver checks before deleting).
    #[test]
    fn the_orphaning_delete_request() {
        let url = "/apis/apps/v1/namespaces/kube-system/daemonsets";
        for dry_run in [false, true] {
            let req = Request::new(url)
                .delete("agent", &orphan_delete_params(&ds(), dry_run))
                .unwrap();
            assert_eq!(req.method(), http::Method::DELETE);
            let uri = req.uri().to_string();
            assert!(uri.starts_with(&format!("{url}/agent")), "{uri}");
            let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
            // DeleteOptions carries dryRun in the body.
            let all = serde_json::json!(["All"]);
            assert_eq!(body.get("dryRun") == Some(&all), dry_run, "{body}");
            assert_eq!(body["propagationPolicy"], "Orphan");
            assert_eq!(
                body["preconditions"],
                serde_json::json!({"uid": "u-1", "resourceVersion": "4711"})
            );
        }
    }

    #[test]
    fn the_create_request_names_the_field_manager() {
        let req = Request::new("/apis/apps/v1/namespaces/kube-system/daemonsets")
            .create(&create_params(true), serde_json::to_vec(&ds()).unwrap())
            .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        let uri = req.uri().to_string();
        assert!(
            uri.contains("dryRun=All") && uri.contains("fieldManager=kubectl-ds"),
            "{uri}"
        );
    }
}
