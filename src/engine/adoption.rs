//! Adoption, decided from the objects alone: which pods a new DaemonSet takes over and what then
//! happens to each (kept, restarted, deleted, left behind), which revisions it reuses, and the
//! template generation to create it with. The checks over this analysis live in `checks`; what
//! happens after the create is assessed in `progress`.
//!
//! mirrors controller_ref_manager.go ClaimObject (which pods and revisions are claimed),
//! daemon_controller.go podsShouldBeOnNode (deletions right after adoption), update.go
//! constructHistory/Match and daemonset_util.go IsPodUpdated (whether adopted pods restart).

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::model::Node;
use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::labels::{self, Selector};
use super::manifest::Journal;
use super::placement::{template_spec, Placer};
use super::podstate::{is_terminating, oldest_first, phase, target_node};
use super::revision::{
    pod_hash, revision_hash, stored_template, template_value, HASH_LABEL, TEMPLATE_GENERATION_LABEL,
};
use super::safety::Check;
use super::snapshot::controller_of;

/// The DaemonSet being replaced, as far as it is known.
#[derive(Debug, Clone, Default)]
pub struct Predecessor {
    pub name: String,
    pub uid: Option<String>,
    pub selector: LabelSelector,
    /// The pods it controlled when its backup was written (journal), by UID.
    pub pod_uids: Vec<String>,
    /// It still exists and will be orphan-deleted first (migrate): pods it controls are
    /// expected, not foreign.
    pub orphaning_first: bool,
}

impl Predecessor {
    /// From a live DaemonSet and the pods it controls.
    pub fn from_live(ds: &DaemonSet, pods: &[Pod]) -> Predecessor {
        let uid = ds.metadata.uid.clone();
        let pod_uids = pods
            .iter()
            .filter(|p| controller_uid(&p.metadata) == uid.as_deref())
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        Predecessor {
            name: ds.metadata.name.clone().unwrap_or_default(),
            uid,
            selector: ds
                .spec
                .as_ref()
                .map(|s| s.selector.clone())
                .unwrap_or_default(),
            pod_uids,
            orphaning_first: true,
        }
    }

    /// From a backup file: the manifest and, when kubectl-ds wrote it, its journal.
    pub fn from_backup(ds: &DaemonSet, journal: Option<&Journal>) -> Predecessor {
        Predecessor {
            name: ds.metadata.name.clone().unwrap_or_default(),
            uid: journal
                .map(|j| j.uid.clone())
                .or_else(|| ds.metadata.uid.clone()),
            selector: ds
                .spec
                .as_ref()
                .map(|s| s.selector.clone())
                .unwrap_or_default(),
            pod_uids: journal
                .map(|j| j.pods.iter().map(|p| p.uid.clone()).collect())
                .unwrap_or_default(),
            orphaning_first: false,
        }
    }
}

/// Is the new name free?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameState {
    Free,
    /// An earlier run of kubectl-ds created it from this manifest: resume by verifying.
    CreatedEarlier {
        uid: String,
    },
    /// Something else holds the name.
    Taken {
        uid: String,
    },
}

/// Everything the adoption analysis reads.
#[derive(Debug, Clone, Copy)]
pub struct AdoptFacts<'a> {
    /// The new DaemonSet as the apiserver defaults it (server dry-run), or as created.
    pub new_ds: &'a DaemonSet,
    /// `deprecated.daemonset.template.generation` as the manifest itself sets it.
    pub requested_generation: Option<i64>,
    pub predecessor: Option<&'a Predecessor>,
    pub name_state: &'a NameState,
    /// Every pod of the namespace.
    pub pods: &'a [Pod],
    /// Every ControllerRevision of the namespace.
    pub revisions: &'a [ControllerRevision],
    /// Every node of the cluster.
    pub nodes: &'a [Node],
    /// Every DaemonSet of the namespace.
    pub daemon_sets: &'a [DaemonSet],
}

/// What happens to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fate {
    /// Adopted and kept running: same UID, counted up to date.
    Adopt,
    /// Adopted, then replaced by the rolling update (the template differs).
    Restart,
    /// Adopted, kept on its old revision (OnDelete) until someone deletes it.
    Outdated,
    /// Adopted, then deleted by the controller (node not covered, or a second pod on its node).
    Delete,
    /// Not matched by the new selector: stays without a controller.
    LeftBehind,
    /// Controlled by another controller: not adopted.
    Foreign,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Adopt => "Adopt",
            Fate::Restart => "Restart",
            Fate::Outdated => "Outdated",
            Fate::Delete => "Delete",
            Fate::LeftBehind => "LeftBehind",
            Fate::Foreign => "Foreign",
        }
    }

    /// Will the new DaemonSet control this pod (at least for a moment)?
    pub fn is_adopted(self) -> bool {
        matches!(
            self,
            Fate::Adopt | Fate::Restart | Fate::Outdated | Fate::Delete
        )
    }
}

/// One pod in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPlan {
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub revision_hash: Option<String>,
    #[serde(default)]
    pub template_generation: Option<String>,
    pub fate: Fate,
    /// Why, when the fate is not a plain adoption.
    #[serde(default)]
    pub detail: Option<String>,
    /// It belonged to the DaemonSet being replaced.
    pub from_predecessor: bool,
}

/// One ControllerRevision in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionPlan {
    pub name: String,
    pub uid: String,
    pub revision: i64,
    pub hash: String,
    /// Its stored template equals the new DaemonSet's.
    pub matches_new_template: bool,
    /// The new selector matches its labels and no one else controls it.
    pub adopted: bool,
}

/// The adoption analysis: per pod, per revision, per node, and the checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptAnalysis {
    pub pods: Vec<PodPlan>,
    pub revisions: Vec<RevisionPlan>,
    /// Nodes that will get a new pod.
    pub new_nodes: Vec<String>,
    /// Nodes the new DaemonSet should run on (its DESIRED).
    pub desired: usize,
    /// The `deprecated.daemonset.template.generation` to create it with.
    pub template_generation: i64,
    /// The checks over this analysis (`checks::analyse_adoption` fills them; `analyse` leaves
    /// them empty, so this module does not depend on the filters).
    pub checks: Vec<Check>,
}

impl AdoptAnalysis {
    pub fn count(&self, fate: Fate) -> usize {
        self.pods.iter().filter(|p| p.fate == fate).count()
    }

    /// Pods that should end up controlled by the new DaemonSet with their UID unchanged.
    pub fn kept(&self) -> impl Iterator<Item = &PodPlan> {
        self.pods
            .iter()
            .filter(|p| matches!(p.fate, Fate::Adopt | Fate::Outdated))
    }
}

pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    controller_of(meta).map(|(_, _, uid)| uid)
}

pub fn selector(sel: &LabelSelector) -> Selector {
    labels::from_label_selector(Some(sel)).unwrap_or(Selector {
        requirements: vec![],
        matches_nothing: true,
    })
}

/// A pod a DaemonSet made (it carries the labels only the DaemonSet controller sets).
/// mirrors daemonset_util.go CreatePodTemplate
fn is_daemon_pod(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(HASH_LABEL) && l.contains_key(TEMPLATE_GENERATION_LABEL))
}

/// Shares at least one label (other than the controller's own) with the template.
fn shares_a_label(pod: &Pod, template_labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(t) = template_labels else {
        return false;
    };
    pod.metadata
        .labels
        .iter()
        .flatten()
        .any(|(k, v)| k != HASH_LABEL && k != TEMPLATE_GENERATION_LABEL && t.get(k) == Some(v))
}

/// A short human reference to a pod: `name (node)`.
pub fn pod_ref(p: &PodPlan) -> String {
    match &p.node {
        Some(n) => format!("{} ({n})", p.name),
        None => p.name.clone(),
    }
}

/// The JSON paths where two templates differ (at most `limit`).
pub fn differing_paths(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff_into(a, b, "", &mut out, limit);
    out
}

fn diff_into(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_into(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &join(k),
                    out,
                    limit,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (xa, ya)) in x.iter().zip(y).enumerate() {
                diff_into(xa, ya, &format!("{path}[{i}]"), out, limit);
            }
        }
        _ => out.push(if path.is_empty() {
            "(all)".into()
        } else {
            path.into()
        }),
    }
}

/// How a pod relates to the adoption, before node and template are looked at.
enum Role {
    Adoptable,
    LeftBehind,
    Foreign(String),
}

/// Decides each pod's role. mirrors controller_ref_manager.go ClaimObject: a pod with another
/// controller is ignored; a controller-less pod matching the selector is adopted.
fn role_of(
    pod: &Pod,
    f: &AdoptFacts,
    new_sel: &Selector,
    pred_sel: Option<&Selector>,
) -> Option<(Role, bool)> {
    let meta = &pod.metadata;
    let uid = meta.uid.as_deref().unwrap_or("");
    let ctrl = controller_of(meta);
    let new_uid = match f.name_state {
        NameState::CreatedEarlier { uid } => Some(uid.as_str()),
        _ => None,
    };
    let pred = f.predecessor;
    let pred_uid = pred.and_then(|p| p.uid.as_deref());
    let owned_by_pred = ctrl.is_some_and(|(_, _, u)| Some(u) == pred_uid);
    let from_pred = owned_by_pred
        || pred.is_some_and(|p| p.pod_uids.iter().any(|u| u == uid))
        || (ctrl.is_none() && pred_sel.is_some_and(|s| s.matches(meta.labels.as_ref())));
    let new_match = new_sel.matches(meta.labels.as_ref());
    let ours = ctrl.is_some_and(|(_, _, u)| Some(u) == new_uid);
    let expected_owner = ours || (owned_by_pred && pred.is_some_and(|p| p.orphaning_first));
    let foreign = |kind: &str, name: &str| {
        if owned_by_pred || kind == "DaemonSet" {
            format!("still controlled by {kind} {name}: orphan it first (kubectl ds orphan {name})")
        } else {
            format!("controlled by {kind} {name}")
        }
    };
    if let Some((kind, name, _)) = ctrl.filter(|_| !expected_owner) {
        return (from_pred || new_match).then(|| (Role::Foreign(foreign(kind, name)), from_pred));
    }
    if new_match {
        return Some((Role::Adoptable, from_pred || ours));
    }
    if from_pred {
        return Some((Role::LeftBehind, true));
    }
    // Without a predecessor: controller-less DaemonSet pods that look related are suspects.
    let tmpl_labels = f
        .new_ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let suspect =
        pred.is_none() && ctrl.is_none() && is_daemon_pod(pod) && shares_a_label(pod, tmpl_labels);
    suspect.then_some((Role::LeftBehind, false))
}

/// The adoption analysis, without its checks (see `checks::analyse_adoption`). Pure: the same
/// objects give the same plan.
pub fn analyse(f: &AdoptFacts) -> AdoptAnalysis {
    let new_spec = template_spec(f.new_ds);
    let placer = Placer::new(&new_spec);
    let new_sel = f
        .new_ds
        .spec
        .as_ref()
        .map(|s| selector(&s.selector))
        .unwrap_or_else(|| selector(&LabelSelector::default()));
    let pred_sel = f.predecessor.map(|p| selector(&p.selector));
    let nodes: BTreeMap<&str, &Node> = f
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, n)))
        .collect();

    let mut plans: Vec<PodPlan> = Vec::new();
    let mut adoptable: Vec<&Pod> = Vec::new();
    let mut from_predecessor: BTreeSet<&str> = BTreeSet::new();
    for pod in f.pods.iter().filter(|p| !is_terminating(p)) {
        let Some((role, from_pred)) = role_of(pod, f, &new_sel, pred_sel.as_ref()) else {
            continue;
        };
        let mut plan = pod_plan(pod, Fate::Adopt, from_pred);
        match role {
            Role::Adoptable => {
                if from_pred {
                    from_predecessor.insert(pod.metadata.uid.as_deref().unwrap_or(""));
                }
                adoptable.push(pod);
                continue;
            }
            Role::LeftBehind => {
                plan.fate = Fate::LeftBehind;
                let node = plan.node.as_deref().and_then(|n| nodes.get(n));
                let duplicate = node.is_some_and(|n| placer.node_should_run(n).should_run);
                plan.detail = Some(if duplicate {
                    "the new selector misses it: it stays without a controller and the new DaemonSet starts a second pod beside it".into()
                } else {
                    "the new selector misses it: it stays without a controller".into()
                });
            }
            Role::Foreign(why) => {
                plan.fate = Fate::Foreign;
                plan.detail = Some(why);
            }
        }
        plans.push(plan);
    }

    let is_from_pred = |p: &Pod| from_predecessor.contains(p.metadata.uid.as_deref().unwrap_or(""));
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in &adoptable {
        let mut plan = pod_plan(pod, Fate::Adopt, is_from_pred(pod));
        match target_node(pod) {
            None => plan.detail = Some("not bound to any node".into()),
            Some(n) => match nodes.get(n.as_str()) {
                None => plan.detail = Some(format!("node {n} no longer exists")),
                Some(node) => {
                    // mirrors podsShouldBeOnNode: !shouldContinueRunning && exists -> delete
                    let e = placer.node_should_run(node);
                    if !e.should_continue_running {
                        plan.fate = Fate::Delete;
                        let why = e.reasons.first().map(|r| r.message()).unwrap_or_default();
                        plan.detail = Some(format!(
                            "the new DaemonSet does not cover node {n} ({why}): deleted right after adoption"
                        ));
                    } else {
                        by_node.entry(n).or_default().push(pod);
                        continue;
                    }
                }
            },
        }
        plans.push(plan);
    }

    let claimable = |cr: &ControllerRevision| revision_claimable(cr, f, &new_sel);
    let want = template_value(f.new_ds);
    let rolling = f
        .new_ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        != "OnDelete";
    for (node, pods) in by_node {
        // mirrors podsShouldBeOnNode: Failed pods are deleted (rate-limited by the per-node
        // back-off) and Succeeded pods deleted; the pod kept is chosen among the others, so a
        // Failed pod is never kept over a running one, and a node left with none gets a new pod.
        let (terminal, mut pods): (Vec<&Pod>, Vec<&Pod>) = pods
            .into_iter()
            .partition(|p| matches!(phase(p), "Failed" | "Succeeded"));
        for pod in terminal {
            let mut plan = pod_plan(pod, Fate::Delete, is_from_pred(pod));
            plan.detail = Some(match phase(pod) {
                "Failed" => format!("Failed on node {node}: the controller deletes it (under its per-node back-off) and a new pod replaces it"),
                _ => format!("Succeeded on node {node}: the controller deletes it and a new pod replaces it"),
            });
            plans.push(plan);
        }
        // Without surge: more than one pod -> keep the oldest.
        oldest_first(&mut pods);
        let keeper = pods
            .first()
            .and_then(|p| p.metadata.name.clone())
            .unwrap_or_default();
        for (i, pod) in pods.iter().enumerate() {
            let mut plan = pod_plan(pod, Fate::Adopt, is_from_pred(pod));
            if i > 0 {
                plan.fate = Fate::Delete;
                plan.detail = Some(format!(
                    "a second pod on node {node}: the controller keeps the oldest ({keeper}) and deletes it"
                ));
            } else {
                restart_verdict(&mut plan, f.revisions, want.as_ref(), rolling, &claimable);
            }
            plans.push(plan);
        }
    }
    plans.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));

    let revisions = revision_plans(f, &plans, &new_sel, want.as_ref());
    let kept_nodes: BTreeSet<&str> = plans
        .iter()
        .filter(|p| matches!(p.fate, Fate::Adopt | Fate::Restart | Fate::Outdated))
        .filter_map(|p| p.node.as_deref())
        .collect();
    let should_run: Vec<&str> = nodes
        .iter()
        .filter(|(_, n)| placer.node_should_run(n).should_run)
        .map(|(name, _)| *name)
        .collect();
    let new_nodes: Vec<String> = should_run
        .iter()
        .filter(|n| !kept_nodes.contains(*n))
        .map(|n| n.to_string())
        .collect();
    let template_generation = decide_template_generation(f.requested_generation, &plans);
    AdoptAnalysis {
        pods: plans,
        revisions,
        new_nodes,
        desired: should_run.len(),
        template_generation,
        checks: Vec::new(),
    }
}

fn pod_plan(pod: &Pod, fate: Fate, from_predecessor: bool) -> PodPlan {
    let labels = pod.metadata.labels.as_ref();
    PodPlan {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        node: target_node(pod),
        revision_hash: pod_hash(pod).map(str::to_string),
        template_generation: labels
            .and_then(|l| l.get(TEMPLATE_GENERATION_LABEL))
            .cloned(),
        fate,
        detail: None,
        from_predecessor,
    }
}

/// Will the new DaemonSet claim this revision? mirrors ClaimControllerRevisions: no other
/// controller (the predecessor's ref goes away first) and the selector matches its labels.
fn revision_claimable(cr: &ControllerRevision, f: &AdoptFacts, new_sel: &Selector) -> bool {
    let pred_uid = f.predecessor.and_then(|p| p.uid.as_deref());
    let new_uid = match f.name_state {
        NameState::CreatedEarlier { uid } => Some(uid.as_str()),
        _ => None,
    };
    let owner_ok = match controller_uid(&cr.metadata) {
        None => true,
        Some(u) => Some(u) == new_uid || Some(u) == pred_uid,
    };
    owner_ok && new_sel.matches(cr.metadata.labels.as_ref())
}

/// mirrors update.go constructHistory + IsPodUpdated: a pod stays current when an adopted
/// revision with its hash stores the new template (its hash becomes the current one).
fn restart_verdict(
    plan: &mut PodPlan,
    revisions: &[ControllerRevision],
    want: Option<&Value>,
    rolling: bool,
    claimable: &dyn Fn(&ControllerRevision) -> bool,
) {
    let Some(hash) = plan.revision_hash.clone() else {
        plan.detail = Some("no controller-revision-hash label: it will be replaced".into());
        plan.fate = if rolling {
            Fate::Restart
        } else {
            Fate::Outdated
        };
        return;
    };
    let Some(cr) = revisions.iter().find(|cr| revision_hash(cr) == hash) else {
        plan.detail = Some(format!(
            "no ControllerRevision with hash {hash}: the new DaemonSet computes its own hash, and the pod stays only if it is the same"
        ));
        return;
    };
    let stored = stored_template(cr);
    if stored.as_ref() == want {
        if !claimable(cr) {
            plan.detail = Some(format!(
                "the template is unchanged but revision {} will not be adopted: the new DaemonSet computes its own hash, and the pod stays only if it is the same",
                cr.metadata.name.as_deref().unwrap_or("")
            ));
        }
        return;
    }
    let paths = match (stored.as_ref(), want) {
        (Some(a), Some(b)) => differing_paths(a, b, 5),
        _ => vec!["(template unreadable)".into()],
    };
    plan.fate = if rolling {
        Fate::Restart
    } else {
        Fate::Outdated
    };
    plan.detail = Some(format!("template differs at {}", paths.join(", ")));
}

fn revision_plans(
    f: &AdoptFacts,
    plans: &[PodPlan],
    new_sel: &Selector,
    want: Option<&Value>,
) -> Vec<RevisionPlan> {
    let pred_uid = f.predecessor.and_then(|p| p.uid.as_deref());
    let pred_sel = f.predecessor.map(|p| selector(&p.selector));
    let hashes: BTreeSet<&str> = plans
        .iter()
        .filter(|p| p.fate.is_adopted())
        .filter_map(|p| p.revision_hash.as_deref())
        .collect();
    let mut out: Vec<RevisionPlan> = f
        .revisions
        .iter()
        .filter(|cr| {
            let ctrl = controller_uid(&cr.metadata);
            let pred_owned = ctrl.is_some() && ctrl == pred_uid;
            let orphan_of_pred = ctrl.is_none()
                && pred_sel
                    .as_ref()
                    .is_some_and(|s| s.matches(cr.metadata.labels.as_ref()));
            pred_owned || orphan_of_pred || hashes.contains(revision_hash(cr).as_str())
        })
        .map(|cr| RevisionPlan {
            name: cr.metadata.name.clone().unwrap_or_default(),
            uid: cr.metadata.uid.clone().unwrap_or_default(),
            revision: cr.revision,
            hash: revision_hash(cr),
            matches_new_template: stored_template(cr).as_ref() == want,
            adopted: revision_claimable(cr, f, new_sel),
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

/// C.3: pods whose `pod-template-generation` equals the new DaemonSet's templateGeneration
/// count as up to date whatever their template (IsPodUpdated's legacy clause). Starting above
/// every observed value leaves the decision to the revision hash alone.
fn decide_template_generation(requested: Option<i64>, plans: &[PodPlan]) -> i64 {
    let observed = max_observed_generation(plans);
    let base = requested.unwrap_or(1).max(1);
    match observed {
        Some(g) => base.max(g.saturating_add(1)),
        None => base,
    }
}

pub fn max_observed_generation(plans: &[PodPlan]) -> Option<i64> {
    plans
        .iter()
        .filter(|p| p.fate != Fate::Foreign)
        .filter_map(|p| p.template_generation.as_deref()?.parse::<i64>().ok())
        .max()
}

#[cfg(test)]
mod tests;
