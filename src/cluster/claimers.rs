//! Lists the controllers of a namespace that claim orphaned pods by selector (ReplicaSets,
//! ReplicationControllers, StatefulSets, Jobs, DaemonSets), concurrently, for the
//! competing-controller check before an orphaning delete.

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ReplicationController;
use kube::api::{Api, ListParams};

use super::client::Cluster;
use super::fetch::list_all;
use crate::engine::claimers::Claimer;
use crate::error::Result;

/// Every controller of `ns` that adopts orphans matching its selector.
pub async fn fetch_claimers(cluster: &Cluster, ns: &str) -> Result<Vec<Claimer>> {
    let c = cluster.client.clone();
    let lp = ListParams::default();
    let (rs, rc, sts, jobs, ds) = futures::try_join!(
        list_all(
            Api::<ReplicaSet>::namespaced(c.clone(), ns),
            lp.clone(),
            "replicasets"
        ),
        list_all(
            Api::<ReplicationController>::namespaced(c.clone(), ns),
            lp.clone(),
            "replicationcontrollers"
        ),
        list_all(
            Api::<StatefulSet>::namespaced(c.clone(), ns),
            lp.clone(),
            "statefulsets"
        ),
        list_all(Api::<Job>::namespaced(c.clone(), ns), lp.clone(), "jobs"),
        list_all(
            Api::<DaemonSet>::namespaced(c.clone(), ns),
            lp.clone(),
            "daemonsets"
        ),
    )?;
    let mut out: Vec<Claimer> = Vec::new();
    out.extend(rs.iter().map(Claimer::of_replica_set));
    out.extend(rc.iter().map(Claimer::of_replication_controller));
    out.extend(sts.iter().map(Claimer::of_stateful_set));
    out.extend(jobs.iter().map(Claimer::of_job));
    out.extend(ds.iter().map(Claimer::of_daemon_set));
    Ok(out)
}
