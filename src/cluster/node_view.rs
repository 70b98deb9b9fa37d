//! Fetching for `why NODE` and `endpoints NAME`: one node and what runs on it (pods through a
//! `spec.nodeName` field selector, never every pod), and a DaemonSet's Services and
//! EndpointSlices.

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};

use super::client::Cluster;
use super::fetch::{self, list_all, list_fast};
use crate::engine::endpoints::SERVICE_NAME_LABEL;
use crate::engine::preemption::ClusterPriorities;
use crate::engine::snapshot::Snapshot;
use crate::engine::why::NodeObjects;
use crate::error::{Error, Result};

/// Concurrent event lists for the rows that need them.
const EVENTS_CONCURRENCY: usize = 8;

/// Gets a node, or a NotFound error (exit 4) as explain's for a DaemonSet.
pub async fn fetch_node(cluster: &Cluster, name: &str) -> Result<Node> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    match api.get_opt(name).await {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Err(Error::NotFound {
            message: format!("node {name:?} not found"),
            hint: Some(
                "kubectl get nodes lists them; --assume-node FILE asks about a node that does not exist yet"
                    .into(),
            ),
        }),
        Err(e) => Err(Error::kube(&format!("getting node {name}"), e)),
    }
}

/// The DaemonSets (of `namespace`, or all), and, in parallel, what their rows on `node` need:
/// the pods bound to the node (all namespaces: the fit check counts every pod), the unscheduled
/// pods (a pending DaemonSet pod is not bound yet), the ControllerRevisions and the version.
/// `node = None` (an assumed node): no pods.
pub async fn fetch_node_objects(
    cluster: &Cluster,
    node: Option<&str>,
    namespace: Option<&str>,
) -> Result<(Vec<DaemonSet>, NodeObjects)> {
    let client = cluster.client.clone();
    let (dss, revs, pods_ns): (Api<DaemonSet>, Api<ControllerRevision>, Api<Pod>) = match namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let lp = ListParams::default();
    let bound = async {
        match node {
            Some(n) => {
                list_fast::<_, crate::cluster::wire::PodList>(
                    Api::<Pod>::all(client.clone()),
                    lp.clone().fields(&format!("spec.nodeName={n}")),
                    "pods on node",
                    cluster,
                )
                .await
            }
            None => Ok(Vec::new()),
        }
    };
    let unscheduled = async {
        match node {
            Some(_) => {
                list_fast::<_, crate::cluster::wire::PodList>(
                    pods_ns,
                    lp.clone().fields("spec.nodeName="),
                    "unscheduled pods",
                    cluster,
                )
                .await
            }
            None => Ok(Vec::new()),
        }
    };
    let version = async { Ok::<_, Error>(cluster.server_version().await) };
    let (daemon_sets, pods, unscheduled, revisions, server_version) = futures::try_join!(
        list_all(dss, lp.clone(), "daemonsets"),
        bound,
        unscheduled,
        list_all(revs, lp.clone(), "controllerrevisions"),
        version,
    )?;
    // The engine's pods (crate::engine::model::Pod): the spec's scheduling fields only.
    let mut pods: Vec<crate::engine::model::Pod> = pods.into_iter().map(Into::into).collect();
    if let Some(n) = node {
        pods.extend(
            unscheduled
                .into_iter()
                .map(crate::engine::model::Pod::from)
                .filter(|p| crate::engine::why::is_on_or_for_node(p, n)),
        );
    }
    let objects = NodeObjects {
        node: Default::default(),
        assumed: node.is_none(),
        pods,
        revisions,
        events: Vec::new(),
        now: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        server_version,
    };
    Ok((daemon_sets, objects))
}

/// For the snapshots whose row needs them: the DaemonSet's events and, when a pending pod does
/// not fit, the PodDisruptionBudgets preemption reads. As explain fetches them.
pub async fn complete_snapshots(cluster: &Cluster, snaps: Vec<Snapshot>) -> Result<Vec<Snapshot>> {
    stream::iter(snaps)
        .map(|mut snap| async move {
            let ns = snap.namespace().to_string();
            let name = snap.name().to_string();
            snap.events = fetch::fetch_events(cluster, &ns, &name).await?;
            let pdb_ns = crate::engine::explain::preemption_namespaces(&snap);
            snap.priorities = ClusterPriorities {
                classes: None,
                pdbs: fetch::fetch_pdbs(cluster, &pdb_ns).await?,
            };
            Ok::<_, Error>(snap)
        })
        .buffered(EVENTS_CONCURRENCY)
        .try_collect()
        .await
}

/// The DaemonSet's pods (by its selector), and the namespace's Services and the EndpointSlices
/// that belong to a Service (label kubernetes.io/service-name), in parallel.
pub async fn fetch_endpoint_objects(
    cluster: &Cluster,
    ds: &DaemonSet,
) -> Result<(Vec<Pod>, Vec<Service>, Vec<EndpointSlice>)> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let client = cluster.client.clone();
    let selector = ds
        .spec
        .as_ref()
        .map(|s| crate::engine::manifest::selector_text(&s.selector))
        .unwrap_or_default();
    futures::try_join!(
        list_fast::<_, crate::cluster::wire::PodList>(
            Api::<Pod>::namespaced(client.clone(), &ns),
            ListParams::default().labels(&selector),
            "pods",
            cluster,
        ),
        list_all(
            Api::<Service>::namespaced(client.clone(), &ns),
            ListParams::default(),
            "services",
        ),
        list_endpoint_slices(client.clone(), &ns),
    )
}

/// The namespace's EndpointSlices that belong to a Service. discovery.k8s.io/v1 is served from
/// Kubernetes 1.21; older servers have v1beta1, whose fields read here (addresses,
/// conditions.ready, targetRef) have the same shape, so it is read as v1.
async fn list_endpoint_slices(client: kube::Client, ns: &str) -> Result<Vec<EndpointSlice>> {
    let lp = ListParams::default().labels(SERVICE_NAME_LABEL);
    let v1 = list_all(
        Api::<EndpointSlice>::namespaced(client.clone(), ns),
        lp.clone(),
        "endpointslices",
    )
    .await;
    if !matches!(v1, Err(Error::NotFound { .. })) {
        return v1;
    }
    let context = "listing endpointslices (discovery.k8s.io/v1beta1)";
    let url = format!("/apis/discovery.k8s.io/v1beta1/namespaces/{ns}/endpointslices");
    let req = kube::core::Request::new(url)
        .list(&lp)
        .map_err(|e| Error::kube(context, kube::Error::BuildRequest(e)))?;
    let mut list: serde_json::Value = client
        .request(req)
        .await
        .map_err(|e| Error::kube(context, e))?;
    let serde_json::Value::Array(items) = list["items"].take() else {
        return Ok(Vec::new());
    };
    items
        .into_iter()
        .map(|mut item| {
            item["apiVersion"] = serde_json::json!("discovery.k8s.io/v1");
            item["kind"] = serde_json::json!("EndpointSlice");
            serde_json::from_value(item).map_err(|e| Error::Api(format!("{context}: {e}")))
        })
        .collect()
}
