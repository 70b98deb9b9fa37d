//! Names only, for shell completion: metadata-only lists (no specs, no status), one page.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::client::Cluster;
use crate::error::{Error, Result};

/// More names than a shell can usefully show; the rest are not listed.
const MAX_NAMES: u32 = 1000;

/// Names of the DaemonSets in the cluster's namespace.
pub async fn fetch_daemon_set_names(cluster: &Cluster) -> Result<Vec<String>> {
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    list_names(api, "daemonsets").await
}

pub async fn fetch_namespace_names(cluster: &Cluster) -> Result<Vec<String>> {
    list_names(Api::<Namespace>::all(cluster.client.clone()), "namespaces").await
}

pub async fn fetch_node_names(cluster: &Cluster) -> Result<Vec<String>> {
    list_names(Api::<Node>::all(cluster.client.clone()), "nodes").await
}

async fn list_names<K>(api: Api<K>, what: &str) -> Result<Vec<String>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list_metadata(&ListParams::default().limit(MAX_NAMES))
        .await
        .map_err(|e| Error::kube(&format!("listing {what}"), e))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect())
}
