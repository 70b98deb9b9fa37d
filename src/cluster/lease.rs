//! The coordination.k8s.io/v1 Lease that locks a DaemonSet for one run: get, create, replace
//! (the resourceVersion it carries is the precondition) and delete with UID + resourceVersion
//! preconditions. The decision whether it may be taken is pure (engine::lease).

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::client::Cluster;
use super::mutate::FIELD_MANAGER;
use crate::error::{Error, Result};

/// What a write of the Lease came back with.
pub enum LeaseWrite {
    Written(Box<Lease>),
    /// Someone else wrote it first (409: it exists, or its resourceVersion moved on).
    Conflict,
}

fn api(cluster: &Cluster, ns: &str) -> Api<Lease> {
    Api::namespaced(cluster.client.clone(), ns)
}

fn params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

fn written(r: kube::Result<Lease>, what: &str) -> Result<LeaseWrite> {
    match r {
        Ok(l) => Ok(LeaseWrite::Written(Box::new(l))),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(LeaseWrite::Conflict),
        Err(e) => Err(Error::kube(what, e)),
    }
}

pub async fn get_lease_opt(cluster: &Cluster, ns: &str, name: &str) -> Result<Option<Lease>> {
    api(cluster, ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(&format!("getting lease {ns}/{name}"), e))
}

pub async fn create_lease(cluster: &Cluster, ns: &str, lease: &Lease) -> Result<LeaseWrite> {
    let name = lease.metadata.name.as_deref().unwrap_or("");
    let r = api(cluster, ns).create(&params(), lease).await;
    written(r, &format!("creating lease {ns}/{name}"))
}

/// PUT with the resourceVersion the Lease carries: fails with Conflict if it moved on.
pub async fn replace_lease(cluster: &Cluster, ns: &str, lease: &Lease) -> Result<LeaseWrite> {
    let name = lease.metadata.name.as_deref().unwrap_or("");
    let r = api(cluster, ns).replace(name, &params(), lease).await;
    written(r, &format!("updating lease {ns}/{name}"))
}

/// Deletes exactly this version of the Lease (UID + resourceVersion preconditions). False when
/// a precondition failed (it changed meanwhile); true when deleted or already gone.
pub async fn delete_lease(cluster: &Cluster, ns: &str, lease: &Lease) -> Result<bool> {
    let name = lease.metadata.name.as_deref().unwrap_or("");
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: lease.metadata.uid.clone(),
            resource_version: lease.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api(cluster, ns).delete(name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(Error::kube(&format!("deleting lease {ns}/{name}"), e)),
    }
}
