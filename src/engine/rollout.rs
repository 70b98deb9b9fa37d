//! `rollout-preview`: what applying a new version of a DaemonSet would do, node by node, and in
//! how many waves. Pure: the live snapshot and the apiserver's dry-run result in, a plan out.
//! mirrors daemon_controller.go manage/podsShouldBeOnNode (creates and deletes), update.go
//! rollingUpdate (maxSurge == 0 and > 0 paths) and constructHistory, and daemonset_util.go
//! IsPodUpdated

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::engine::model::Node;
use crate::engine::model::{Pod, PodSpec};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use serde::{Deserialize, Serialize};

use super::budget;
use super::explain::{pods_by_node, API_VERSION};
use super::fit;
use super::placement::{self, Eligibility};
use super::podstate;
use super::preemption::{self, ClusterPriorities};
use super::reason::{serialize_reasons, Reason};
use super::revision::{self, revision_hash};
use super::snapshot::Snapshot;
use super::version::Rules;

pub const KIND: &str = "RolloutPreview";

/// What the change does to one node. The order is the table's: what needs a look first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// The new pod would not run: it does not fit (resources, host port, pod count); or, with
    /// maxSurge, an outdated pod on a node that should no longer run one stays because Blocked
    /// desired nodes never become available.
    Blocked,
    /// The node no longer runs the pod: deleted at once when the node is no longer eligible
    /// (selector, affinity, NoExecute taint); deleted by the rolling update, within its budget,
    /// when the new template stops tolerating a NoSchedule taint (nothing replaces it).
    Delete,
    /// The node becomes eligible (or has no pod): a pod is created at once.
    Create,
    /// The pod is outdated under the new template: the rolling update replaces it.
    Restart,
    /// The pod already matches the new template (or OnDelete leaves it running).
    Keep,
    /// Not eligible before or after: nothing happens.
    Unchanged,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Blocked,
        Action::Delete,
        Action::Create,
        Action::Restart,
        Action::Keep,
        Action::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Blocked => "Blocked",
            Action::Delete => "Delete",
            Action::Create => "Create",
            Action::Restart => "Restart",
            Action::Keep => "Keep",
            Action::Unchanged => "Unchanged",
        }
    }

    /// Does this action change a pod (what `--exit-code` reports)?
    pub fn rolls(self) -> bool {
        !matches!(self, Action::Keep | Action::Unchanged)
    }
}

/// One node's fate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePreview {
    pub name: String,
    pub action: Action,
    /// The DaemonSet's pod on the node now (the oldest, the one the controller looks at).
    pub pod: Option<String>,
    /// That pod's controller-revision-hash.
    pub pod_revision: Option<String>,
    /// Its pod is outdated and already unavailable: replaced in the first round, outside the
    /// budget.
    pub replaced_first: bool,
    #[serde(serialize_with = "serialize_reasons")]
    pub reasons: Vec<Reason>,
}

/// The update strategy after the change, with its budgets resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "type")]
    pub type_: String,
    /// Nodes that should run the pod before and after the change.
    pub desired_before: usize,
    pub desired: usize,
    /// The budgets resolved against `desired` (percentages round up; both 0 means 1 unavailable).
    pub max_unavailable: usize,
    pub max_surge: usize,
    /// The budgets as written in the spec.
    pub max_unavailable_spec: Option<String>,
    pub max_surge_spec: Option<String>,
    pub min_ready_seconds: i32,
    /// The new pod starts beside the old one (maxSurge > 0).
    pub surge: bool,
    /// With surge: can every node hold both pods? (null without surge)
    pub surge_feasible: Option<bool>,
    /// Pods unavailable now (maxSurge 0) that eat into the first wave's budget.
    pub unavailable_now: usize,
    /// Restarts per wave; the order of nodes inside a wave is the controller's random choice.
    pub wave_sizes: Vec<usize>,
    /// Nodes whose outdated pod is already unavailable: replaced first, outside the budget.
    pub replaced_first: Vec<String>,
    /// OnDelete: the pods that would change when someone deletes them.
    pub replaced_when_deleted: Vec<String>,
}

/// Nodes per action.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub blocked: usize,
    pub delete: usize,
    pub create: usize,
    pub restart: usize,
    pub keep: usize,
    pub unchanged: usize,
}

impl Counts {
    fn add(&mut self, a: Action) {
        *match a {
            Action::Blocked => &mut self.blocked,
            Action::Delete => &mut self.delete,
            Action::Create => &mut self.create,
            Action::Restart => &mut self.restart,
            Action::Keep => &mut self.keep,
            Action::Unchanged => &mut self.unchanged,
        } += 1;
    }

    pub fn get(&self, a: Action) -> usize {
        match a {
            Action::Blocked => self.blocked,
            Action::Delete => self.delete,
            Action::Create => self.create,
            Action::Restart => self.restart,
            Action::Keep => self.keep,
            Action::Unchanged => self.unchanged,
        }
    }
}

/// The DaemonSet before and after.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetChange {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    /// The ControllerRevision the controller uses now (name and number).
    pub current_revision: Option<String>,
    pub current_revision_number: Option<i64>,
    pub generation: Option<i64>,
    pub new_generation: Option<i64>,
    pub template_generation: Option<i64>,
    pub new_template_generation: Option<i64>,
}

/// The whole preview (`-o json`: apiVersion kubectl-ds/v1, kind RolloutPreview).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPreview {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub daemon_set: DaemonSetChange,
    /// The pod template changes (the apiserver bumps templateGeneration): pods roll.
    pub template_changed: bool,
    /// The existing ControllerRevision the new template matches, if any (a rollback when the
    /// template changes).
    pub matching_revision: Option<String>,
    pub matching_revision_number: Option<i64>,
    pub rollback: bool,
    /// The revision hash that is up to date after the change, when it is an existing revision's;
    /// null when the controller will create a new revision (its hash cannot be known before).
    pub new_revision_hash: Option<String>,
    /// The controller creates a new ControllerRevision: no existing one is byte-equal to the
    /// new template (update.go Match), even when templateGeneration stays (a quantity
    /// re-spelled, `64Mi` as `"67108864"`).
    pub new_revision: bool,
    /// Several existing revisions are byte-equal to the new template: the controller keeps the
    /// highest, deletes the others and relabels every pod with its hash (dedupCurHistories).
    pub duplicate_revisions: Vec<String>,
    /// The server version and the version-dependent rules the preview was computed with.
    pub rules: Rules,
    pub strategy: Strategy,
    pub waves: usize,
    /// Any node Blocked, Delete, Create or Restart (what `--exit-code` reports).
    pub would_roll: bool,
    pub counts: Counts,
    pub notes: Vec<String>,
    pub nodes: Vec<NodePreview>,
}

/// Which revision is up to date after the change.
struct Revisions<'a> {
    template_changed: bool,
    current: Option<&'a ControllerRevision>,
    /// Existing revisions byte-equal to the new template, highest first.
    matching: Vec<&'a ControllerRevision>,
    /// What constructHistory does with the new template.
    history: revision::History<'a>,
    /// Hashes that count as up to date after the change.
    up_to_date: HashSet<String>,
    /// The hash of the revision current after the change, when it is an existing one.
    new_hash: Option<String>,
    /// The server's version-dependent rules.
    rules: Rules,
}

impl Revisions<'_> {
    /// Byte-equal duplicates on a release whose dedupCurHistories cannot relabel the pods
    /// (UPDATE forbidden by the controller's RBAC role before 1.23): syncDaemonSet fails.
    fn is_stuck(&self) -> bool {
        self.history.relabels_all() && !self.rules.dedup_relabels
    }
}

/// mirrors update.go constructHistory: the revision byte-equal to the new template (Match)
/// becomes current; with several, dedupCurHistories keeps the highest and relabels every pod
/// with its hash, so all count; with none the controller snapshots a new revision whose hash
/// no existing pod carries, and IsPodUpdated then decides by pod-template-generation where the
/// release compares it.
fn resolve_revisions<'a>(snap: &'a Snapshot, new: &DaemonSet) -> Revisions<'a> {
    let old = &snap.daemon_set;
    // The apiserver's own oracle: PrepareForUpdate bumps templateGeneration iff the template
    // changes semantically (strategy.go); without the annotations, compare the templates.
    let template_changed = match (
        revision::template_generation(old),
        revision::template_generation(new),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => revision::template_value(old) != revision::template_value(new),
    };
    let rules = Rules::for_version(snap.server_version.as_ref());
    let current = revision::current_revision(old, &snap.revisions, &rules);
    let mut matching = revision::matching_revisions(new, &snap.revisions, &rules);
    matching.sort_by_key(|cr| std::cmp::Reverse(cr.revision));
    let history = revision::construct_history(new, &snap.revisions, &rules);
    let new_hash = history.current.map(revision_hash);
    let up_to_date: HashSet<String> = new_hash.iter().cloned().collect();
    Revisions {
        template_changed,
        current,
        matching,
        history,
        up_to_date,
        new_hash,
        rules,
    }
}

/// What every node needs, computed once.
struct Ctx<'a> {
    snap: &'a Snapshot,
    new_spec: PodSpec,
    by_node: HashMap<String, Vec<&'a Pod>>,
    revisions: Revisions<'a>,
    new_generation: Option<i64>,
    on_delete: bool,
    surge: bool,
    min_ready_seconds: i32,
}

impl Ctx<'_> {
    /// mirrors daemonset_util.go IsPodUpdated, against the revision current after the change
    /// (after dedupCurHistories relabelled the pods, when it does).
    fn is_updated(&self, pod: &Pod) -> bool {
        let revs = &self.revisions;
        let by_hash = revision::pod_hash(pod).is_some_and(|h| revs.up_to_date.contains(h));
        revs.history.relabels_all()
            || by_hash
            || revision::is_pod_updated(pod, None, self.new_generation, &revs.rules)
    }

    fn is_available(&self, pod: &Pod) -> bool {
        podstate::is_available(pod, self.min_ready_seconds, self.snap.now.as_ref())
    }

    fn outdated(&self, pod: &Pod) -> Reason {
        Reason::OutdatedRevision {
            pod_revision: revision::pod_hash(pod).map(str::to_string),
            current_revision: self.revisions.new_hash.clone(),
            on_delete: self.on_delete,
        }
    }

    /// Does replacing `old` need the other pods on the node to decide whether the new one fits?
    fn restart_fit(&self, old: &Pod) -> Option<FitCheck> {
        let old_spec = old.spec.as_ref()?;
        if self.surge {
            // Both pods run side by side: anything the new one asks for must fit twice, and
            // the pod count always matters (noderesources fitsRequest checks the number of
            // pods before its shortcut for pods that request nothing).
            return Some(FitCheck::BesideOld);
        }
        let check = !podstate::is_scheduled(old) || grows(old_spec, &self.new_spec);
        check.then_some(FitCheck::Alone)
    }
}

/// Does the new pod ask for more than the old one (a resource, a host port)? If not, it fits
/// wherever the old one runs.
fn grows(old: &PodSpec, new: &PodSpec) -> bool {
    let (o, n) = (fit::pod_requests(old), fit::pod_requests(new));
    let old_ports = fit::host_ports(old);
    n.iter().any(|(k, v)| *v > o.get(k).copied().unwrap_or(0))
        || fit::host_ports(new).iter().any(|p| !old_ports.contains(p))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FitCheck {
    /// The new pod alone (Create; Restart without surge: the old pod is deleted first).
    Alone,
    /// The new pod beside the old one (surge).
    BesideOld,
}

/// A node's classification before the fit check.
struct Draft<'a> {
    node: &'a Node,
    name: String,
    should_run: bool,
    action: Action,
    /// The oldest non-terminating pod of the DaemonSet on the node.
    pod: Option<&'a Pod>,
    /// Every pod of the DaemonSet on the node (excluded from "other pods" in the fit check).
    own: Vec<&'a Pod>,
    outdated: bool,
    /// Delete through the rolling update (an outdated pod on a node that should no longer
    /// run one but may keep it): limited by the budget, unlike an ineligible node's Delete.
    rolling_delete: bool,
    available: bool,
    reasons: Vec<Reason>,
    fit: Option<FitCheck>,
}

fn build_ctx<'a>(snap: &'a Snapshot, new: &DaemonSet, desired: usize) -> Ctx<'a> {
    let new_spec = placement::template_spec(new);
    let surge = !budget::is_on_delete(new) && budget::budgets(new, desired).max_surge > 0;
    Ctx {
        snap,
        new_spec,
        by_node: pods_by_node(&snap.daemon_set, &snap.pods),
        revisions: resolve_revisions(snap, new),
        new_generation: revision::template_generation(new),
        on_delete: budget::is_on_delete(new),
        surge,
        min_ready_seconds: new
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0),
    }
}

/// mirrors daemon_controller.go podsShouldBeOnNode (creates/deletes, shouldContinueRunning) and
/// update.go rollingUpdate (which replaces every outdated pod it finds, misscheduled ones too).
fn draft<'a>(ctx: &Ctx<'a>, node: &'a Node, elig: Eligibility) -> Draft<'a> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let own = ctx.by_node.get(&name).cloned().unwrap_or_default();
    let mut active: Vec<&Pod> = own
        .iter()
        .copied()
        .filter(|p| !podstate::is_terminating(p))
        .collect();
    podstate::oldest_first(&mut active);
    let pod = active.first().copied();
    let ineligible: Vec<Reason> = elig
        .reasons
        .iter()
        .filter(|r| r.is_eligibility())
        .cloned()
        .collect();
    let mut d = Draft {
        node,
        name,
        should_run: elig.should_run,
        action: Action::Unchanged,
        pod,
        own,
        outdated: false,
        rolling_delete: false,
        available: pod.is_some_and(|p| ctx.is_available(p)),
        reasons: Vec::new(),
        fit: None,
    };
    if ctx.revisions.is_stuck() {
        // Every sync fails in constructHistory before manage/rollingUpdate: nothing changes.
        d.action = if pod.is_some() {
            Action::Keep
        } else {
            Action::Unchanged
        };
        return d;
    }
    match (pod, elig.should_run, elig.should_continue_running) {
        (None, true, _) => {
            d.action = Action::Create;
            d.fit = Some(FitCheck::Alone);
            let terminating: Vec<String> = d
                .own
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if !terminating.is_empty() {
                d.reasons.push(Reason::AfterTerminating {
                    pods: terminating,
                    surge: ctx.surge,
                });
            }
        }
        (None, false, _) => d.reasons = ineligible,
        (Some(_), false, false) => {
            d.action = Action::Delete;
            d.reasons = ineligible;
        }
        (Some(p), should_run, _) => {
            d.reasons = ineligible;
            if ctx.is_updated(p) {
                d.action = Action::Keep;
                return d;
            }
            d.outdated = true;
            d.reasons.push(ctx.outdated(p));
            d.action = if ctx.on_delete {
                Action::Keep
            } else if should_run {
                d.fit = ctx.restart_fit(p);
                Action::Restart
            } else {
                // Misscheduled (an untolerated NoSchedule taint: shouldRun false,
                // shouldContinueRunning true) and outdated: mirrors update.go rollingUpdate,
                // which deletes the old pod like any update candidate (maxSurge 0: within
                // maxUnavailable; surge: once the desired nodes are available, "scheduling
                // constraint" moves), and manage() never recreates it since shouldRun is false.
                d.rolling_delete = true;
                Action::Delete
            };
        }
    }
    d
}

/// The static fit check of the new pod on the node (mirrors the scheduler's NodeResourcesFit
/// and NodePorts through fit::misfits), then preemption when it does not fit (mirrors
/// DefaultPreemption through preemption::evaluate): Blocked only when preemption cannot help.
fn apply_fit(
    ctx: &Ctx,
    d: &mut Draft,
    pods_on_nodes: &BTreeMap<String, Vec<Pod>>,
    priorities: &ClusterPriorities,
) {
    let Some(others) = others_on_node(ctx, d, pods_on_nodes) else {
        return;
    };
    let misfits = fit::misfits(&ctx.new_spec, d.node, &others);
    if misfits.is_empty() {
        return;
    }
    let preemption = priorities.preemption_reasons(&ctx.new_spec, d.node, &others);
    if !preemption
        .iter()
        .any(|r| matches!(r, Reason::Preemption { .. }))
    {
        d.action = Action::Blocked;
        d.reasons.extend(misfits);
    }
    d.reasons.extend(preemption);
}

/// The pods the new pod must fit beside: the fetched pods bound to the node, without the
/// DaemonSet's own, plus the old pod when it surges beside it. `None` without a fit check.
fn others_on_node(
    ctx: &Ctx,
    d: &Draft,
    pods_on_nodes: &BTreeMap<String, Vec<Pod>>,
) -> Option<Vec<Pod>> {
    let check = d.fit?;
    let on_node = pods_on_nodes.get(&d.name)?;
    let key = |p: &Pod| (p.metadata.namespace.clone(), p.metadata.name.clone());
    // Own pods make room for the new one, except terminating ones under surge: the new pod is
    // created at once beside them, so their host ports and resources still count (without
    // surge nothing is created until they are gone).
    let own: HashSet<_> = d
        .own
        .iter()
        .filter(|p| !(ctx.surge && podstate::is_terminating(p)))
        .map(|p| key(p))
        .collect();
    let mut others: Vec<Pod> = on_node
        .iter()
        .filter(|p| !own.contains(&key(p)))
        .cloned()
        .collect();
    if let (FitCheck::BesideOld, Some(old)) = (check, d.pod) {
        if podstate::is_scheduled(old) {
            others.push(old.clone());
        }
    }
    Some(others)
}

impl Draft<'_> {
    /// Deleted by manage() at once (shouldContinueRunning false), outside the budget.
    fn deleted_at_once(&self) -> bool {
        self.action == Action::Delete && !self.rolling_delete
    }
}

/// mirrors update.go rollingUpdate (maxSurge > 0, "scheduling constraint" moves): an available
/// old pod on a node that should no longer run one is deleted only while
/// `numAvailable - desiredNumberScheduled > 0`, so as many of them stay as desired nodes end
/// without an available pod. When the Blocked desired nodes are at least as many as those pods,
/// every one of them stays (Blocked: the rollout cannot finish); fewer, and the controller's map
/// order picks which stay (they remain Delete; a note says how many).
fn hold_surge_moves(ctx: &Ctx, drafts: &mut [Draft]) {
    if !ctx.surge {
        return;
    }
    let stuck = drafts
        .iter()
        .filter(|d| d.should_run && d.action == Action::Blocked)
        .count();
    let moves = drafts
        .iter()
        .filter(|d| d.rolling_delete && d.available)
        .count();
    if stuck == 0 || stuck < moves {
        return;
    }
    for d in drafts
        .iter_mut()
        .filter(|d| d.rolling_delete && d.available)
    {
        d.action = Action::Blocked;
    }
}

/// mirrors update.go rollingUpdate (maxSurge 0) with updatedDesiredNodeCounts: a percentage
/// maxUnavailable of 0 desired nodes is 0, and the "at least 1" default applies only when
/// desiredNumberScheduled > 0, so no available old pod is ever a deletion candidate: the
/// outdated pods on nodes that stopped tolerating their taint stay (Keep). Found by
/// tests/it/difftest.rs (seed 10016).
fn hold_unbudgeted_moves(ctx: &Ctx, new: &DaemonSet, drafts: &mut [Draft]) {
    if ctx.surge || ctx.on_delete {
        return;
    }
    let desired = drafts.iter().filter(|d| d.should_run).count();
    if budget::budgets(new, desired).max_unavailable > 0 {
        return;
    }
    for d in drafts
        .iter_mut()
        .filter(|d| d.rolling_delete && d.available)
    {
        d.action = Action::Keep;
    }
}

/// Every node classified before the fit check: the first phase of a preview. The caller
/// fetches the pods bound to [`Classified::nodes_needing_fit_check`] only, then calls
/// [`Classified::finish`].
pub struct Classified<'a> {
    ctx: Ctx<'a>,
    new: &'a DaemonSet,
    drafts: Vec<Draft<'a>>,
    desired_before: usize,
}

/// Classifies every node under the live (`snap`) and the new (`new`, the apiserver's dry-run
/// result) DaemonSet.
pub fn classify<'a>(snap: &'a Snapshot, new: &'a DaemonSet) -> Classified<'a> {
    let old_spec = placement::template_spec(&snap.daemon_set);
    let new_spec = placement::template_spec(new);
    let (old_placer, new_placer) = (
        placement::Placer::new(&old_spec),
        placement::Placer::new(&new_spec),
    );
    let mut desired_before = 0;
    let mut eligibility = Vec::new();
    for node in snap.nodes.iter() {
        if old_placer.node_should_run(node).should_run {
            desired_before += 1;
        }
        eligibility.push((node, new_placer.node_should_run(node)));
    }
    let desired = eligibility.iter().filter(|(_, e)| e.should_run).count();
    let ctx = build_ctx(snap, new, desired);
    let drafts = eligibility
        .into_iter()
        .map(|(node, elig)| draft(&ctx, node, elig))
        .collect();
    Classified {
        ctx,
        new,
        drafts,
        desired_before,
    }
}

impl Classified<'_> {
    /// Does any node need a fit check of the new pod (a create, or a restart)? Only then is
    /// the admitted pod worth asking the apiserver for.
    pub fn needs_admission(&self) -> bool {
        self.drafts
            .iter()
            .any(|d| matches!(d.action, Action::Create | Action::Restart))
    }

    /// A node the new pod would be created on (to pin the dry-run pod as the controller
    /// does), preferring one that needs a fit check.
    pub fn admission_node(&self) -> Option<&str> {
        self.drafts
            .iter()
            .find(|d| matches!(d.action, Action::Create | Action::Restart))
            .map(|d| d.name.as_str())
    }

    /// The apiserver refuses the new pod: every node that would get one is Blocked (without
    /// surge the old pod is deleted first and nothing replaces it; with surge the old one stays).
    pub fn refuse(&mut self, message: &str) {
        for d in &mut self.drafts {
            if matches!(d.action, Action::Create | Action::Restart) {
                d.action = Action::Blocked;
                d.fit = None;
                d.reasons.push(Reason::AdmissionRefused {
                    message: message.to_string(),
                });
            }
        }
    }

    /// Use the admitted pod (LimitRange defaults, RuntimeClass overhead, webhook sidecars)
    /// instead of the raw template for every fit check, including whether a restart grows
    /// the pod: the old pods were admitted too, so both sides compare like with like.
    pub fn admit(&mut self, admitted: PodSpec) {
        self.ctx.new_spec = admitted;
        let ctx = &self.ctx;
        for d in &mut self.drafts {
            if d.action == Action::Restart {
                d.fit = d.pod.and_then(|p| ctx.restart_fit(p));
            }
        }
    }

    /// Nodes where the new pod's fit depends on the other pods bound there: nodes that get a
    /// pod, nodes whose new pod asks for more than the old one (or surges beside it), nodes
    /// whose pod is not scheduled. Only these need their pods fetched.
    pub fn nodes_needing_fit_check(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .drafts
            .iter()
            .filter(|d| d.fit.is_some())
            .map(|d| d.name.clone())
            .collect();
        out.sort();
        out
    }

    /// The preview, once the pods bound to the nodes needing a fit check are known, with no
    /// PriorityClasses or PodDisruptionBudgets (the tests' shorthand for
    /// [`Classified::finish_with`]).
    #[cfg(test)]
    pub fn finish(self, pods_on_nodes: &BTreeMap<String, Vec<Pod>>) -> RolloutPreview {
        self.finish_with(pods_on_nodes, &ClusterPriorities::default())
    }

    /// The namespaces whose PodDisruptionBudgets matter: those of the pods the new pod could
    /// preempt on the nodes where it does not fit.
    pub fn preemption_namespaces(
        &self,
        pods_on_nodes: &BTreeMap<String, Vec<Pod>>,
        priorities: &ClusterPriorities,
    ) -> Vec<String> {
        let priority = priorities.priority_of(&self.ctx.new_spec);
        let mut out: Vec<String> = Vec::new();
        for d in &self.drafts {
            let Some(others) = others_on_node(&self.ctx, d, pods_on_nodes) else {
                continue;
            };
            // Cheap first: no lower-priority pod, no budget to read.
            let namespaces = preemption::victim_namespaces(&priority, &others);
            if !namespaces.is_empty()
                && !fit::misfits(&self.ctx.new_spec, d.node, &others).is_empty()
            {
                out.extend(namespaces.into_iter().map(str::to_string));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The preview, with the PriorityClasses and PodDisruptionBudgets preemption reads.
    pub fn finish_with(
        self,
        pods_on_nodes: &BTreeMap<String, Vec<Pod>>,
        priorities: &ClusterPriorities,
    ) -> RolloutPreview {
        let Classified {
            ctx,
            new,
            mut drafts,
            desired_before,
        } = self;
        for d in &mut drafts {
            apply_fit(&ctx, d, pods_on_nodes, priorities);
        }
        hold_surge_moves(&ctx, &mut drafts);
        hold_unbudgeted_moves(&ctx, new, &mut drafts);
        let mut preview = assemble(&ctx, new, &drafts, desired_before);
        preview.notes.extend(preemption_notes(&drafts));
        let computed = drafts.iter().flat_map(|d| d.reasons.iter());
        preview.notes.extend(priorities.notes(computed));
        preview
    }
}

/// One note naming the nodes where the new pod runs only because the scheduler preempts.
fn preemption_notes(drafts: &[Draft]) -> Vec<String> {
    let mut by_node: Vec<String> = Vec::new();
    for d in drafts {
        for r in &d.reasons {
            if let Reason::Preemption { victims, .. } = r {
                by_node.push(format!("{} ({})", d.name, victims.join(", ")));
            }
        }
    }
    if by_node.is_empty() {
        return Vec::new();
    }
    by_node.sort();
    vec![format!(
        "{} node(s) fit only because the scheduler preempts (evicts) lower-priority pods there: {}",
        by_node.len(),
        by_node.join("; ")
    )]
}

fn assemble(ctx: &Ctx, new: &DaemonSet, drafts: &[Draft], desired_before: usize) -> RolloutPreview {
    let snap = ctx.snap;
    let desired = drafts.iter().filter(|d| d.should_run).count();
    let strategy = plan(ctx, new, drafts, desired_before, desired);
    let mut counts = Counts::default();
    let first: HashSet<&str> = strategy.replaced_first.iter().map(String::as_str).collect();
    let mut nodes: Vec<NodePreview> = drafts
        .iter()
        .map(|d| {
            counts.add(d.action);
            NodePreview {
                name: d.name.clone(),
                action: d.action,
                pod: d.pod.and_then(|p| p.metadata.name.clone()),
                pod_revision: d.pod.and_then(revision::pod_hash).map(str::to_string),
                replaced_first: first.contains(d.name.as_str()),
                reasons: d.reasons.clone(),
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.action.cmp(&b.action).then_with(|| a.name.cmp(&b.name)));
    let revs = &ctx.revisions;
    let matching = revs.matching.first().copied();
    let mut preview = RolloutPreview {
        api_version: API_VERSION,
        kind: KIND,
        daemon_set: change_info(snap, new, revs.current),
        template_changed: revs.template_changed,
        matching_revision: matching.and_then(|cr| cr.metadata.name.clone()),
        matching_revision_number: matching.map(|cr| cr.revision),
        rollback: revs.template_changed && matching.is_some(),
        new_revision_hash: revs.new_hash.clone(),
        new_revision: revs.history.creates_revision(),
        duplicate_revisions: revs
            .history
            .duplicates
            .iter()
            .filter_map(|cr| cr.metadata.name.clone())
            .collect(),
        rules: revs.rules.clone(),
        waves: strategy.wave_sizes.len(),
        strategy,
        would_roll: nodes.iter().any(|n| n.action.rolls()),
        counts,
        notes: Vec::new(),
        nodes,
    };
    preview.notes = notes::notes(ctx, drafts, &preview);
    preview
}

/// The budgets, the waves and who goes first.
/// mirrors update.go rollingUpdate: without surge, `numUnavailable` counts nodes (desired or
/// holding a pod) without an available pod; outdated unavailable pods are replaced at once;
/// available ones while numUnavailable < maxUnavailable. With surge, a new pod is created beside
/// each old available one while numSurge < maxSurge, at once where the old one is unavailable.
fn plan(
    ctx: &Ctx,
    new: &DaemonSet,
    drafts: &[Draft],
    desired_before: usize,
    desired: usize,
) -> Strategy {
    let budgets = budget::budgets(new, desired);
    let (mu_spec, ms_spec) = budget::spec_values(new);
    let rolling = !ctx.on_delete;
    let replaced: Vec<&Draft> = drafts
        .iter()
        .filter(|d| rolling && d.outdated && (d.should_run || !ctx.surge))
        .collect();
    let mut first: Vec<String> = replaced
        .iter()
        .filter(|d| !d.available)
        .map(|d| d.name.clone())
        .collect();
    first.sort();
    let candidates = replaced.iter().filter(|d| d.available).count();
    let unavailable_now = if ctx.surge {
        0
    } else {
        drafts
            .iter()
            .filter(|d| !d.deleted_at_once() && (d.should_run || d.pod.is_some()))
            .filter(|d| !d.available)
            .count()
    };
    let budget = if ctx.surge {
        budgets.max_surge
    } else {
        budgets.max_unavailable
    };
    let wave_sizes = if rolling {
        budget::wave_sizes(budget, first.len(), candidates, unavailable_now)
    } else {
        Vec::new()
    };
    let surge_feasible = ctx.surge.then(|| {
        !drafts
            .iter()
            .any(|d| d.should_run && d.outdated && d.action == Action::Blocked)
    });
    let mut replaced_when_deleted: Vec<String> = drafts
        .iter()
        .filter(|d| ctx.on_delete && d.outdated)
        .filter_map(|d| d.pod.and_then(|p| p.metadata.name.clone()))
        .collect();
    replaced_when_deleted.sort();
    Strategy {
        type_: budget::strategy_type(new),
        desired_before,
        desired,
        max_unavailable: budgets.max_unavailable,
        max_surge: budgets.max_surge,
        max_unavailable_spec: mu_spec.map(budget::spec_text),
        max_surge_spec: ms_spec.map(budget::spec_text),
        min_ready_seconds: ctx.min_ready_seconds,
        surge: ctx.surge,
        surge_feasible,
        unavailable_now,
        wave_sizes,
        replaced_first: first,
        replaced_when_deleted,
    }
}

fn change_info(
    snap: &Snapshot,
    new: &DaemonSet,
    current: Option<&ControllerRevision>,
) -> DaemonSetChange {
    let old = &snap.daemon_set;
    DaemonSetChange {
        namespace: snap.namespace().to_string(),
        name: snap.name().to_string(),
        uid: snap.uid().to_string(),
        resource_version: old.metadata.resource_version.clone(),
        current_revision: current.and_then(|cr| cr.metadata.name.clone()),
        current_revision_number: current.map(|cr| cr.revision),
        generation: old.metadata.generation,
        new_generation: new.metadata.generation,
        template_generation: revision::template_generation(old),
        new_template_generation: revision::template_generation(new),
    }
}

mod notes;

#[cfg(test)]
mod tests;
