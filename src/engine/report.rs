//! The documents kubectl-ds prints with `-o json|yaml` that are not an engine verdict itself:
//! the plan and result documents of orphan, adopt and migrate, and the rollout-preview
//! document. Versioned with the rest of kubectl-ds's JSON (`apiVersion: kubectl-ds/v1`). Field
//! names are a contract. One home, so `render` reads them without importing `workflows`.

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use serde::Serialize;

use crate::engine::admission::AdmissionInfo;
use crate::engine::adoption::AdoptAnalysis;
use crate::engine::manifest::ObjectRecord;
use crate::engine::podstate::{is_ready, target_node};
use crate::engine::progress::{AdoptionProgress, OrphaningProgress, Stage};
use crate::engine::revision::{pod_hash, revision_hash};
use crate::engine::rollout::RolloutPreview;
use crate::engine::safety::Check;

pub const API_VERSION: &str = crate::engine::explain::API_VERSION;

/// A namespaced object, with its identity when known.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl ObjectRef {
    pub fn of(ds: &DaemonSet) -> ObjectRef {
        ObjectRef {
            namespace: ds.metadata.namespace.clone().unwrap_or_default(),
            name: ds.metadata.name.clone().unwrap_or_default(),
            uid: ds.metadata.uid.clone(),
            resource_version: ds.metadata.resource_version.clone(),
        }
    }
}

/// A mutation sent with dryRun=All and what the apiserver said.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerDryRun {
    pub operation: String,
    pub accepted: bool,
    pub detail: String,
}

/// A pod the orphaning delete keeps running.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanPod {
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub ready: bool,
    pub revision_hash: Option<String>,
}

impl OrphanPod {
    pub fn of(p: &Pod) -> OrphanPod {
        OrphanPod {
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            node: target_node(p),
            ready: is_ready(p),
            revision_hash: pod_hash(p).map(str::to_string),
        }
    }
}

/// A ControllerRevision the orphaning delete keeps.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanRevision {
    pub name: String,
    pub uid: String,
    pub revision: i64,
    pub hash: String,
}

impl OrphanRevision {
    pub fn of(cr: &ControllerRevision) -> OrphanRevision {
        OrphanRevision {
            name: cr.metadata.name.clone().unwrap_or_default(),
            uid: cr.metadata.uid.clone().unwrap_or_default(),
            revision: cr.revision,
            hash: revision_hash(cr),
        }
    }
}

/// The orphaning delete's plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanPlan {
    pub daemon_set: ObjectRef,
    pub backup: String,
    pub steps: Vec<String>,
    pub pods: Vec<OrphanPod>,
    pub revisions: Vec<OrphanRevision>,
    pub checks: Vec<Check>,
}

/// What the orphaning delete left.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanResult {
    /// The DaemonSet is gone and no pod or revision refers to it any more.
    pub verified: bool,
    pub backup: String,
    #[serde(flatten)]
    pub progress: OrphaningProgress,
}

/// `kubectl ds orphan -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub dry_run: &'static str,
    pub plan: OrphanPlan,
    pub server_dry_run: Vec<ServerDryRun>,
    pub result: Option<OrphanResult>,
}

/// The DaemonSet being replaced, as the plan knows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredecessorRef {
    pub name: String,
    pub uid: Option<String>,
    /// `live` (it exists), `backup` (read from a backup file) or `none` (unknown).
    pub source: &'static str,
}

/// The adoption's plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptPlan {
    pub daemon_set: ObjectRef,
    pub predecessor: Option<PredecessorRef>,
    pub steps: Vec<String>,
    #[serde(flatten)]
    pub analysis: AdoptAnalysis,
}

/// What the adoption did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptResult {
    /// Every intended pod is controlled by the new DaemonSet, none lost or restarted by surprise,
    /// and its status has settled.
    pub verified: bool,
    pub daemon_set: ObjectRef,
    #[serde(flatten)]
    pub progress: AdoptionProgress,
    /// Pods the backup lists that no longer exist (replaced or lost since it was written).
    pub gone_since_backup: Vec<ObjectRecord>,
}

/// `kubectl ds adopt -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub dry_run: &'static str,
    /// The DaemonSet existed already, created by an earlier run: only verified.
    pub resumed: bool,
    pub plan: AdoptPlan,
    pub server_dry_run: Vec<ServerDryRun>,
    pub result: Option<AdoptResult>,
}

/// `kubectl ds migrate -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub dry_run: &'static str,
    /// Where this run started (Start unless an earlier run was interrupted).
    pub stage: Stage,
    pub backup: String,
    /// The orphaning delete (absent when resuming after it).
    pub orphan: Option<OrphanPlan>,
    pub adopt: AdoptPlan,
    pub server_dry_run: Vec<ServerDryRun>,
    pub result: Option<MigrateResult>,
}

/// Both halves of a migration's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateResult {
    pub orphan: Option<OrphanResult>,
    pub adopt: Option<AdoptResult>,
    /// The old DaemonSet seen again after the migration (recreated by its owner of record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recreated: Option<ObjectRef>,
}

// ------------------------------------------------------------------------------------------
// rollout-preview

/// The document `-o json|yaml` prints: the preview, how the new object was obtained, and the
/// pod-template diff.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    #[serde(flatten)]
    pub preview: &'a RolloutPreview,
    pub dry_run: DryRun,
    /// How the pod checked for fit was obtained (null when no node needed a fit check).
    pub admission: Option<AdmissionInfo>,
    /// Unified diff of `spec.template`, live -> new ("" when the template does not change).
    pub template_diff: String,
}

/// The server-side dry run that produced the new object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// `ServerSideApply` (the template's last server-side applier, or kubectl-ds),
    /// `ClientSideApply` (three-way merge with the last-applied manifest, sent as a replace) or
    /// `StrategicMergePatch` (`--image`).
    pub method: &'static str,
    pub field_manager: String,
}
