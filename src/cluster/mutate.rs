//! Mutations, each with its preconditions and a dry-run switch: the orphaning delete (UID +
//! resourceVersion preconditions) and the create. The workflows send both with dryRun=All
//! before acting, so RBAC, admission and validation refuse before anything changes.

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

/// `DELETE ?propagationPolicy=Orphan` with `preconditions: {uid, resourceVersion}`, so what is
/// deleted is exactly the object that was backed up. mirrors kubectl delete --cascade=orphan.
pub async fn orphan_delete(
    cluster: &Cluster,
    ds: &DaemonSet,
    dry_run: bool,
) -> Result<DeleteOutcome> {
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");
    let name = ds.metadata.name.as_deref().unwrap_or("");
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), ns);
    let params = DeleteParams {
        dry_run,
        grace_period_seconds: None,
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions {
            uid: ds.metadata.uid.clone(),
            resource_version: ds.metadata.resource_version.clone(),
        }),
    };
    match api.delete(name, &params).await {
        Ok(either) => Ok(match either.left() {
            Some(obj) => DeleteOutcome::Accepted(Box::new(obj)),
            None => DeleteOutcome::Deleted,
        }),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(DeleteOutcome::Conflict(status.message.clone()))
        }
        Err(e) => Err(Error::kube(&format!("deleting daemonset {ns}/{name}"), e)),
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
    let params = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let what = if dry_run {
        "creating (dry run)"
    } else {
        "creating"
    };
    api.create(&params, ds)
        .await
        .map_err(|e| Error::kube(&format!("{what} daemonset {ns}/{name}"), e))
}
