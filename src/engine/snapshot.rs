//! The objects a verdict is computed from: fetched from a cluster or read from a saved List.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::model::Node;
use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::labels;
use super::preemption::ClusterPriorities;
use super::version::ServerVersion;

/// Everything `explain` needs about one DaemonSet.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub daemon_set: DaemonSet,
    /// Every node of the cluster (the controller evaluates them all). Shared: `explain -A`
    /// gives every DaemonSet's snapshot the same node table instead of a copy each.
    pub nodes: Arc<Vec<Node>>,
    /// Pods of the DaemonSet's namespace that match its selector or that it controls.
    pub pods: Vec<Pod>,
    /// ControllerRevisions of the namespace that match the selector or that it controls.
    pub revisions: Vec<ControllerRevision>,
    /// Events about the DaemonSet and its pods.
    pub events: Vec<Event>,
    /// For the nodes that need a fit check: every other non-terminal pod bound to them.
    pub pods_on_nodes: BTreeMap<String, Vec<Pod>>,
    /// PriorityClasses and PodDisruptionBudgets, for preemption (fetched only when a pod does
    /// not fit).
    pub priorities: ClusterPriorities,
    /// The time the snapshot was taken (for availability and ages).
    pub now: Option<Time>,
    /// The apiserver's version (`/version`), when read: the controller's rules differ by
    /// release (see [`super::version::Rules`]).
    pub server_version: Option<ServerVersion>,
}

impl Snapshot {
    pub fn namespace(&self) -> &str {
        self.daemon_set
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.daemon_set.metadata.name.as_deref().unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.daemon_set.metadata.uid.as_deref().unwrap_or("")
    }
}

/// The controller of an object, if any: `(kind, name, uid)`.
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(&str, &str, &str)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.uid.as_str()))
}

/// Does the DaemonSet own this pod (or would it claim it as an orphan matching its selector)?
/// mirrors controller_ref_manager.go ClaimObject: ours if our controller ref AND the selector
/// matches (an owned object that no longer matches is released, or ignored while the
/// DaemonSet is being deleted: never counted); orphans that match the selector are adopted;
/// objects controlled by someone else are ignored.
pub fn is_claimed_by(
    ds: &DaemonSet,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    // `adopting`: an empty selector adopts nothing (SelectingAll), yet matches what it owns.
    let matches = |adopting: bool| {
        let Some(spec) = ds.spec.as_ref() else {
            return false;
        };
        labels::from_label_selector(Some(&spec.selector)).is_ok_and(|sel| {
            !(adopting && sel.is_everything()) && sel.matches(meta.labels.as_ref())
        })
    };
    match controller_of(meta) {
        Some((_, _, owner)) => owner == uid && matches(false),
        None => {
            ds.metadata.deletion_timestamp.is_none()
                && meta.deletion_timestamp.is_none()
                && matches(true)
        }
    }
}
