//! After the mutations: where an orphaning delete and an adoption stand (compared with the
//! plan, pod by pod, UID by UID), and where an interrupted migration resumes.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::adoption::{controller_uid, AdoptAnalysis, Fate};
use super::manifest::{self, Journal};
use super::podstate::{is_terminating, target_node};
use super::snapshot::controller_of;

/// The counters of a DaemonSet's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub up_to_date: i32,
    pub available: i32,
    pub misscheduled: i32,
    /// status.observedGeneration has caught up with metadata.generation.
    pub observed: bool,
}

impl StatusCounts {
    pub fn of(ds: &DaemonSet) -> StatusCounts {
        let st = ds.status.clone().unwrap_or_default();
        StatusCounts {
            desired: st.desired_number_scheduled,
            current: st.current_number_scheduled,
            ready: st.number_ready,
            up_to_date: st.updated_number_scheduled.unwrap_or(0),
            available: st.number_available.unwrap_or(0),
            misscheduled: st.number_misscheduled,
            observed: st.observed_generation.is_some()
                && st.observed_generation >= ds.metadata.generation,
        }
    }
}

/// A pod in the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodOutcome {
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub node: Option<String>,
    /// For a replaced pod: the pod that took its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// Where an adoption stands, from the planned pods and the pods seen now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionProgress {
    /// Planned pods now controlled by the new DaemonSet, UID unchanged.
    pub adopted: Vec<PodOutcome>,
    /// Planned pods replaced by a new one (expected for fate Restart).
    pub restarted: Vec<PodOutcome>,
    /// Planned pods replaced although no restart was expected.
    pub unexpected_restarts: Vec<PodOutcome>,
    /// Planned deletions done.
    pub deleted: Vec<PodOutcome>,
    /// Pods of the new DaemonSet that were not in the plan (new nodes).
    pub created: Vec<PodOutcome>,
    /// Planned pods taken by another controller.
    pub lost: Vec<PodOutcome>,
    /// Nodes with more than one pod of the new DaemonSet.
    pub duplicates: Vec<String>,
    /// What is still awaited, in words.
    pub waiting_for: Vec<String>,
    pub status: StatusCounts,
}

impl AdoptionProgress {
    pub fn is_complete(&self) -> bool {
        self.waiting_for.is_empty()
    }

    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.unexpected_restarts.is_empty() && self.duplicates.is_empty()
    }
}

fn outcome(p: &Pod) -> PodOutcome {
    PodOutcome {
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        node: target_node(p),
        replaced_by: None,
    }
}

/// Compares the plan with the pods now: adopted (same UID, new controller), replaced, deleted,
/// created, lost; and whether the controller's status has settled (every desired node has a
/// pod and, when no restart was planned, every one counts as up to date).
pub fn assess_adoption(plan: &AdoptAnalysis, new_ds: &DaemonSet, pods: &[Pod]) -> AdoptionProgress {
    let new_uid = new_ds.metadata.uid.as_deref();
    let mut pr = AdoptionProgress {
        status: StatusCounts::of(new_ds),
        ..Default::default()
    };
    let ours: Vec<&Pod> = pods
        .iter()
        .filter(|p| controller_uid(&p.metadata).is_some() && controller_uid(&p.metadata) == new_uid)
        .collect();
    let by_uid: BTreeMap<&str, &Pod> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref().map(|u| (u, p)))
        .collect();
    let replacement = |node: &Option<String>, old_uid: &str| {
        ours.iter()
            .filter(|p| !is_terminating(p) && p.metadata.uid.as_deref() != Some(old_uid))
            .find(|p| target_node(p) == *node)
            .and_then(|p| p.metadata.name.clone())
    };
    for planned in plan.pods.iter().filter(|p| p.fate.is_adopted()) {
        let now = by_uid.get(planned.uid.as_str());
        let base = PodOutcome {
            name: planned.name.clone(),
            uid: planned.uid.clone(),
            node: planned.node.clone(),
            replaced_by: None,
        };
        let gone = now.is_none_or(|p| is_terminating(p));
        match (planned.fate, now) {
            (Fate::Delete, _) if gone => pr.deleted.push(base),
            (Fate::Delete, _) => pr
                .waiting_for
                .push(format!("the controller to delete pod {}", planned.name)),
            (_, Some(p)) if !gone => match controller_of(&p.metadata) {
                Some((_, _, u)) if Some(u) == new_uid => pr.adopted.push(base),
                Some((kind, name, _)) => {
                    pr.waiting_for.push(format!(
                        "pod {} (now controlled by {kind} {name})",
                        planned.name
                    ));
                    pr.lost.push(base)
                }
                None => pr
                    .waiting_for
                    .push(format!("the new DaemonSet to adopt pod {}", planned.name)),
            },
            (fate, _) => {
                let mut o = base;
                o.replaced_by = replacement(&planned.node, &planned.uid);
                if fate == Fate::Restart {
                    pr.restarted.push(o);
                } else {
                    pr.unexpected_restarts.push(o);
                }
            }
        }
    }
    let planned: BTreeSet<&str> = plan.pods.iter().map(|p| p.uid.as_str()).collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in ours.iter().filter(|p| !is_terminating(p)) {
        if let Some(n) = target_node(p) {
            *per_node.entry(n).or_default() += 1;
        }
        let replaced = pr
            .restarted
            .iter()
            .chain(&pr.unexpected_restarts)
            .any(|o| o.replaced_by == p.metadata.name);
        if !planned.contains(p.metadata.uid.as_deref().unwrap_or("")) && !replaced {
            pr.created.push(outcome(p));
        }
    }
    pr.duplicates = per_node
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(node, _)| node)
        .collect();
    for node in &pr.duplicates {
        pr.waiting_for.push(format!("a single pod on node {node}"));
    }
    let st = &pr.status;
    let rolling = plan.count(Fate::Restart) + plan.count(Fate::Outdated) > 0;
    if !st.observed {
        pr.waiting_for
            .push("the DaemonSet controller to observe the new DaemonSet".into());
    } else if st.current != st.desired {
        pr.waiting_for.push(format!(
            "a pod on every desired node ({} of {})",
            st.current, st.desired
        ));
    } else if !rolling && st.up_to_date != st.desired {
        pr.waiting_for.push(format!(
            "every pod to count as up to date ({} of {})",
            st.up_to_date, st.desired
        ));
    }
    pr
}

// ------------------------------------------------------------------------------------------
// After the orphaning delete: is it done?

/// Where an orphaning delete stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphaningProgress {
    pub daemon_set_gone: bool,
    /// The DaemonSet is deleted but kept by finalizers other than the garbage collector's
    /// `orphan` (a foreign finalizer such as `example.com/hold`): its dependents are orphaned
    /// all the same, and it goes once whoever set them removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by_finalizers: Vec<String>,
    /// Pods still carrying an ownerReference to the deleted DaemonSet.
    pub owned_pods: Vec<String>,
    /// ControllerRevisions still carrying one.
    pub owned_revisions: Vec<String>,
    /// Pods of the plan that are running without an owner.
    pub running: Vec<PodOutcome>,
    /// Pods of the plan that no longer exist (or are terminating).
    pub gone: Vec<String>,
}

impl OrphaningProgress {
    /// The garbage collector is done: the DaemonSet is gone, or only foreign finalizers keep
    /// it (the `orphan` finalizer is removed once every dependent is orphaned), and no pod or
    /// revision refers to it.
    pub fn is_complete(&self) -> bool {
        (self.daemon_set_gone || !self.held_by_finalizers.is_empty())
            && self.owned_pods.is_empty()
            && self.owned_revisions.is_empty()
    }

    /// Complete, and every planned pod still runs: a pod that disappeared during the run is
    /// never success, whatever the `--allow-*` flags say.
    pub fn is_verified(&self) -> bool {
        self.is_complete() && self.gone.is_empty()
    }
}

fn refers_to(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

/// Finalizers that keep a deleted object once the garbage collector is done with it: all
/// but `orphan` (which the garbage collector removes after orphanDependents).
pub fn foreign_finalizers(ds: &DaemonSet) -> Vec<String> {
    if ds.metadata.deletion_timestamp.is_none() {
        return Vec::new();
    }
    let all = ds.metadata.finalizers.clone().unwrap_or_default();
    if all.iter().any(|f| f == "orphan") {
        return Vec::new();
    }
    all
}

/// mirrors garbagecollector.go attemptToOrphanWorker: done when no dependent (pod or
/// ControllerRevision) still refers to the owner's UID and the owner is gone or has lost its
/// `orphan` finalizer (other finalizers may keep it: they are not ours to wait for).
/// `daemon_set`: the object with that UID, if it still exists.
pub fn assess_orphaning(
    uid: &str,
    daemon_set: Option<&DaemonSet>,
    planned_pods: &[String],
    pods: &[Pod],
    revisions: &[ControllerRevision],
) -> OrphaningProgress {
    let mut pr = OrphaningProgress {
        daemon_set_gone: daemon_set.is_none(),
        held_by_finalizers: daemon_set.map(foreign_finalizers).unwrap_or_default(),
        ..Default::default()
    };
    for p in pods.iter().filter(|p| refers_to(&p.metadata, uid)) {
        pr.owned_pods
            .push(p.metadata.name.clone().unwrap_or_default());
    }
    for r in revisions.iter().filter(|r| refers_to(&r.metadata, uid)) {
        pr.owned_revisions
            .push(r.metadata.name.clone().unwrap_or_default());
    }
    for planned in planned_pods {
        match pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(planned.as_str()))
        {
            Some(p) if !is_terminating(p) => pr.running.push(outcome(p)),
            Some(p) => pr.gone.push(p.metadata.name.clone().unwrap_or_default()),
            None => pr.gone.push(planned.clone()),
        }
    }
    pr
}

// ------------------------------------------------------------------------------------------
// Where an interrupted migration stands.

/// The step a migration resumes from, derived from the cluster and the backup file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// The old DaemonSet is there, untouched: everything is still to do.
    Start,
    /// The old DaemonSet is being orphan-deleted: wait, then adopt.
    Orphaning,
    /// The old DaemonSet is gone (its backup is on disk): adopt.
    Orphaned,
    /// The new DaemonSet exists, created by an earlier run: verify.
    Created,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Start => "Start",
            Stage::Orphaning => "Orphaning",
            Stage::Orphaned => "Orphaned",
            Stage::Created => "Created",
        }
    }
}

/// Decides the stage. `old` is the DaemonSet named `old_name`, `new` the one named as the
/// manifest (the same object when the names are equal); `journal` the backup's, if it is a
/// backup of `old_name`. None when there is nothing to migrate or resume.
pub fn migrate_stage(
    old_name: &str,
    old: Option<&DaemonSet>,
    new: Option<&DaemonSet>,
    manifest: &DaemonSet,
    journal: Option<&Journal>,
) -> Option<Stage> {
    let pred = journal
        .filter(|j| j.name == old_name)
        .map(|j| manifest::adopted_from_value(&j.name, Some(&j.uid)));
    let ours = |d: &DaemonSet| {
        pred.as_deref()
            .is_some_and(|m| manifest::is_created_from(d, manifest, Some(m)))
    };
    let deleting = |d: &DaemonSet| d.metadata.deletion_timestamp.is_some();
    let same_name = manifest.metadata.name.as_deref() == Some(old_name);
    if same_name {
        return match old {
            Some(d) if ours(d) => Some(Stage::Created),
            Some(d) if deleting(d) => Some(Stage::Orphaning),
            Some(_) => Some(Stage::Start),
            None => pred.as_ref().map(|_| Stage::Orphaned),
        };
    }
    match (old, new) {
        // A foreign finalizer keeps the old object after it was orphaned and replaced.
        (Some(d), Some(n)) if deleting(d) && ours(n) => Some(Stage::Created),
        (Some(d), _) if deleting(d) => Some(Stage::Orphaning),
        (Some(_), _) => Some(Stage::Start),
        (None, Some(n)) if ours(n) => Some(Stage::Created),
        (None, _) => pred.as_ref().map(|_| Stage::Orphaned),
    }
}
