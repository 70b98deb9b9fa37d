//! Pre-flight safety checks for the mutating workflows, as pure filters returning ok, warn or
//! block (the shape of kubectl's pkg/drain/filters.go). A block names the flag that overrides
//! it, or says why nothing can. `apply_overrides` turns the blocks the user allowed into warns.
//! The orphan filters read the DaemonSet; the adopt filters read the adoption analysis.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::DaemonSet;

use super::adoption::{
    self, max_observed_generation, pod_ref, selector, AdoptAnalysis, AdoptFacts, Fate, NameState,
    PodPlan, RevisionPlan,
};

pub use super::safety::{
    apply_overrides, blocks, Check, CheckCode, Overrides, Verdict, ALLOW_LEFTOVER_PODS,
    ALLOW_POD_DELETION, ALLOW_RESTARTS,
};

/// What is at the backup path before kubectl-ds writes there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupFileState {
    Absent,
    /// A backup (or manifest) of this same DaemonSet: safe to replace.
    SameDaemonSet,
    /// A backup of another DaemonSet (`namespace/name`).
    OtherDaemonSet(String),
    /// Something that is not a DaemonSet manifest.
    NotABackup,
}

/// mirrors the apiserver's deletion: a DaemonSet with a deletionTimestamp is already going;
/// only the `orphan` finalizer means its pods will be kept (garbage collector
/// attemptToOrphanWorker). Anything else means they are being deleted, unless none is its own
/// any more (`owned_pods` 0): then the garbage collector already orphaned them and removed
/// `orphan`, and another finalizer (`example.com/hold`) keeps the object.
pub fn check_deletion_state(ds: &DaemonSet, owned_pods: usize) -> Check {
    if ds.metadata.deletion_timestamp.is_none() {
        return Check::ok(CheckCode::DeletionState, "not being deleted");
    }
    let orphaning = ds
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == "orphan");
    let finalizers = ds.metadata.finalizers.clone().unwrap_or_default();
    if orphaning {
        Check::ok(
            CheckCode::DeletionState,
            "an orphaning delete is already under way (an earlier run): waiting for it to finish",
        )
    } else if owned_pods == 0 && !finalizers.is_empty() {
        Check::ok(
            CheckCode::DeletionState,
            format!(
                "already deleted with its pods orphaned (an earlier run); kept by finalizer(s) {}",
                finalizers.join(", ")
            ),
        )
    } else {
        Check::block(
            CheckCode::DeletionState,
            "the DaemonSet is already being deleted without orphaning: the garbage collector is deleting its pods",
            None,
        )
    }
}

/// Never overwrite a file that is not a backup of the same DaemonSet.
pub fn check_backup_file(path: &str, state: &BackupFileState) -> Check {
    match state {
        BackupFileState::Absent => Check::ok(
            CheckCode::BackupFile,
            format!("backup will be written to {path}"),
        ),
        BackupFileState::SameDaemonSet => Check::ok(
            CheckCode::BackupFile,
            format!("{path} holds an earlier backup of this DaemonSet: it will be replaced"),
        ),
        BackupFileState::OtherDaemonSet(other) => Check::block(
            CheckCode::BackupFile,
            format!("{path} holds a backup of daemonset {other}"),
            Some("--backup"),
        ),
        BackupFileState::NotABackup => Check::block(
            CheckCode::BackupFile,
            format!("{path} exists and is not a DaemonSet backup"),
            Some("--backup"),
        ),
    }
}

/// The checks `orphan` runs on the DaemonSet itself (the workflow adds the owner-of-record and
/// competing-controller checks). `owned_pods`: how many pods it still controls.
pub fn orphan_checks(
    ds: &DaemonSet,
    owned_pods: usize,
    backup_path: &str,
    backup: &BackupFileState,
) -> Vec<Check> {
    vec![
        check_deletion_state(ds, owned_pods),
        check_backup_file(backup_path, backup),
    ]
}

// ------------------------------------------------------------------------------------------
// adopt

/// The adoption analysis with its checks: `adoption::analyse` decides each pod's fate, the
/// filters below judge it.
pub fn analyse_adoption(f: &AdoptFacts) -> AdoptAnalysis {
    let mut analysis = adoption::analyse(f);
    analysis.checks = adopt_checks(f, &analysis);
    analysis
}

/// Every check `adopt` (and migrate's adoption half) runs, as filters over the analysis.
pub fn adopt_checks(f: &AdoptFacts, a: &AdoptAnalysis) -> Vec<Check> {
    let new_name = f.new_ds.metadata.name.as_deref().unwrap_or("");
    let mut checks = vec![check_name(new_name, f.name_state)];
    checks.push(check_foreign(a));
    checks.push(check_competing(f, a));
    checks.push(check_left_behind(a));
    if f.predecessor.is_some() {
        checks.push(check_also_adopted(f, a));
    }
    checks.push(check_deletions(a));
    checks.push(check_revision_reuse(a));
    checks.push(check_template_generation(f.requested_generation, a));
    checks.push(check_restarts(a));
    if !a.new_nodes.is_empty() {
        checks.push(Check::ok(
            CheckCode::NewPods,
            format!(
                "{} node(s) get a new pod: {}",
                a.new_nodes.len(),
                a.new_nodes.join(", ")
            ),
        ));
    }
    if !a.pods.iter().any(|p| p.fate.is_adopted()) {
        checks.push(Check::warn(
            CheckCode::NothingToAdopt,
            "no pod to adopt: this only creates the DaemonSet",
        ));
    }
    checks
}

fn refs(a: &AdoptAnalysis, fate: Fate) -> Vec<String> {
    a.pods
        .iter()
        .filter(|p| p.fate == fate)
        .map(pod_ref)
        .collect()
}

fn check_name(name: &str, state: &NameState) -> Check {
    match state {
        NameState::Free => Check::ok(CheckCode::NameTaken, format!("no daemonset {name} exists yet")),
        NameState::CreatedEarlier { uid } => Check::ok(
            CheckCode::NameTaken,
            format!("daemonset {name} (uid {uid}) was created from this manifest by an earlier run: verifying it"),
        ),
        NameState::Taken { uid } => Check::block(
            CheckCode::NameTaken,
            format!("daemonset {name} already exists (uid {uid}); choose another name, or delete it first"),
            None,
        ),
    }
}

fn check_foreign(a: &AdoptAnalysis) -> Check {
    let foreign: Vec<&PodPlan> = a.pods.iter().filter(|p| p.fate == Fate::Foreign).collect();
    match foreign.first() {
        None => Check::ok(
            CheckCode::ForeignController,
            "no other controller holds the pods",
        ),
        Some(first) => Check::block(
            CheckCode::ForeignController,
            format!(
                "{} pod(s) cannot be adopted: {} {}",
                foreign.len(),
                first.name,
                first.detail.as_deref().unwrap_or("has another controller")
            ),
            None,
        )
        .with_pods(refs(a, Fate::Foreign)),
    }
}

/// Once orphaned, a pod is claimed by whichever controller's selector matches it first.
fn check_competing(f: &AdoptFacts, a: &AdoptAnalysis) -> Check {
    let pred = f.predecessor;
    let new_name = f.new_ds.metadata.name.as_deref();
    let orphan_uids: BTreeSet<&str> = a
        .pods
        .iter()
        .filter(|p| p.fate.is_adopted() || p.fate == Fate::LeftBehind)
        .map(|p| p.uid.as_str())
        .collect();
    let mut hits: Vec<String> = Vec::new();
    for ds in f.daemon_sets {
        let name = ds.metadata.name.as_deref();
        let is_pred = pred.is_some_and(|p| {
            Some(p.name.as_str()) == name || p.uid.is_some() && p.uid == ds.metadata.uid
        });
        if is_pred || name == new_name {
            continue;
        }
        let Some(spec) = ds.spec.as_ref() else {
            continue;
        };
        let sel = selector(&spec.selector);
        if sel.is_everything() {
            continue;
        }
        let n = f
            .pods
            .iter()
            .filter(|p| orphan_uids.contains(p.metadata.uid.as_deref().unwrap_or("")))
            .filter(|p| sel.matches(p.metadata.labels.as_ref()))
            .count();
        if n > 0 {
            hits.push(format!(
                "daemonset {} matches {n} of them",
                name.unwrap_or("")
            ));
        }
    }
    if hits.is_empty() {
        Check::ok(
            CheckCode::CompetingSelector,
            "no other DaemonSet's selector matches the pods",
        )
    } else {
        Check::block(
            CheckCode::CompetingSelector,
            format!(
                "once orphaned, the pods may be taken by another DaemonSet: {}",
                hits.join("; ")
            ),
            None,
        )
    }
}

fn check_left_behind(a: &AdoptAnalysis) -> Check {
    let left = refs(a, Fate::LeftBehind);
    if left.is_empty() {
        return Check::ok(
            CheckCode::LeftBehind,
            "the new selector matches every pod to take over",
        );
    }
    let dups = a
        .pods
        .iter()
        .filter(|p| p.fate == Fate::LeftBehind)
        .filter(|p| {
            p.detail
                .as_deref()
                .is_some_and(|d| d.contains("second pod"))
        })
        .count();
    Check::block(
        CheckCode::LeftBehind,
        format!(
            "the new selector misses {} pod(s), which would stay without a controller ({dups} with a duplicate started beside them): {}",
            left.len(),
            left.join(", ")
        ),
        Some(ALLOW_LEFTOVER_PODS),
    )
    .with_pods(left)
}

fn check_also_adopted(f: &AdoptFacts, a: &AdoptAnalysis) -> Check {
    let extra: Vec<String> = a
        .pods
        .iter()
        .filter(|p| p.fate.is_adopted() && !p.from_predecessor)
        .map(pod_ref)
        .collect();
    let pred = f.predecessor.map(|p| p.name.as_str()).unwrap_or("");
    if extra.is_empty() {
        Check::ok(
            CheckCode::AlsoAdopted,
            format!("only {pred}'s pods match the new selector"),
        )
    } else {
        Check::warn(
            CheckCode::AlsoAdopted,
            format!(
                "{} controller-less pod(s) that were not {pred}'s also match the new selector and will be adopted: {}",
                extra.len(),
                extra.join(", ")
            ),
        )
        .with_pods(extra)
    }
}

fn check_deletions(a: &AdoptAnalysis) -> Check {
    let deleted: Vec<&PodPlan> = a.pods.iter().filter(|p| p.fate == Fate::Delete).collect();
    if deleted.is_empty() {
        return Check::ok(
            CheckCode::PodDeletion,
            "the new DaemonSet keeps every adopted pod's node",
        );
    }
    let text: Vec<String> = deleted
        .iter()
        .map(|p| format!("{}: {}", pod_ref(p), p.detail.as_deref().unwrap_or("")))
        .collect();
    Check::block(
        CheckCode::PodDeletion,
        format!(
            "{} adopted pod(s) would be deleted: {}",
            deleted.len(),
            text.join("; ")
        ),
        Some(ALLOW_POD_DELETION),
    )
    .with_pods(refs(a, Fate::Delete))
}

fn check_revision_reuse(a: &AdoptAnalysis) -> Check {
    let reused: Vec<&RevisionPlan> = a
        .revisions
        .iter()
        .filter(|r| r.matches_new_template && r.adopted)
        .collect();
    let unsure: Vec<String> = a
        .kept()
        .filter(|p| {
            !p.revision_hash
                .as_ref()
                .is_some_and(|h| reused.iter().any(|r| &r.hash == h))
        })
        .map(pod_ref)
        .collect();
    if !unsure.is_empty() {
        return Check::warn(
            CheckCode::RevisionReuse,
            format!(
                "no adopted revision stores the new template for {} pod(s) ({}): the new DaemonSet computes the hash itself (ComputeHash), and they stay up to date only if it equals theirs",
                unsure.len(),
                unsure.join(", ")
            ),
        )
        .with_pods(unsure);
    }
    match reused.first() {
        Some(r) => Check::ok(
            CheckCode::RevisionReuse,
            format!(
                "revision {} (hash {}) stores the new template and will be adopted: pods with that hash count as up to date",
                r.name, r.hash
            ),
        ),
        None => Check::ok(CheckCode::RevisionReuse, "no revision to reuse"),
    }
}

fn check_template_generation(requested: Option<i64>, a: &AdoptAnalysis) -> Check {
    let observed = max_observed_generation(&a.pods);
    let g = a.template_generation;
    let observed_text = observed.map_or("none".to_string(), |o| o.to_string());
    match (requested, observed) {
        (Some(r), Some(o)) if r <= o => Check::warn(
            CheckCode::TemplateGeneration,
            format!(
                "the manifest sets deprecated.daemonset.template.generation={r}, which old pods carry as pod-template-generation (up to {o}): it would make them count as current whatever their template; kubectl-ds sets {g} instead"
            ),
        ),
        _ => Check::ok(
            CheckCode::TemplateGeneration,
            format!(
                "deprecated.daemonset.template.generation={g}, above every pod-template-generation the pods carry ({observed_text}): only the revision hash decides which pods are current"
            ),
        ),
    }
}

fn check_restarts(a: &AdoptAnalysis) -> Check {
    let restart: Vec<&PodPlan> = a.pods.iter().filter(|p| p.fate == Fate::Restart).collect();
    let outdated = refs(a, Fate::Outdated);
    if let Some(first) = restart.first() {
        let nodes: Vec<String> = restart.iter().map(|p| pod_ref(p)).collect();
        return Check::block(
            CheckCode::Restarts,
            format!(
                "{} adopted pod(s) would be restarted by the rolling update ({}): {}",
                restart.len(),
                first.detail.as_deref().unwrap_or("template differs"),
                nodes.join(", ")
            ),
            Some(ALLOW_RESTARTS),
        )
        .with_pods(nodes);
    }
    if !outdated.is_empty() {
        return Check::warn(
            CheckCode::Restarts,
            format!(
                "{} adopted pod(s) have an older template and stay on it (OnDelete) until deleted: {}",
                outdated.len(),
                outdated.join(", ")
            ),
        )
        .with_pods(outdated);
    }
    if a.kept().next().is_none() {
        return Check::ok(CheckCode::Restarts, "no pod is adopted, so none restarts");
    }
    Check::ok(
        CheckCode::Restarts,
        "no adopted pod restarts: the template is unchanged",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::daemon_set;

    #[test]
    fn deletion_state_only_passes_orphaning_deletes() {
        let live = daemon_set("metadata: {name: a}");
        assert_eq!(check_deletion_state(&live, 2).verdict, Verdict::Ok);
        let orphaning = daemon_set(
            "metadata: {name: a, deletionTimestamp: '2025-01-01T00:00:00Z', finalizers: [orphan]}",
        );
        assert_eq!(check_deletion_state(&orphaning, 2).verdict, Verdict::Ok);
        let background =
            daemon_set("metadata: {name: a, deletionTimestamp: '2025-01-01T00:00:00Z'}");
        let c = check_deletion_state(&background, 2);
        assert_eq!(c.verdict, Verdict::Block);
        assert!(c.override_flag.is_none());
        // Orphaned already, kept by a foreign finalizer: nothing is being deleted.
        let held = daemon_set(
            "metadata: {name: a, deletionTimestamp: '2025-01-01T00:00:00Z', finalizers: [example.com/hold]}",
        );
        assert_eq!(check_deletion_state(&held, 0).verdict, Verdict::Ok);
        assert_eq!(check_deletion_state(&held, 1).verdict, Verdict::Block);
    }

    #[test]
    fn backup_file_never_overwrites_other_files() {
        let c = check_backup_file("b.yaml", &BackupFileState::NotABackup);
        assert_eq!(c.verdict, Verdict::Block);
        assert_eq!(c.override_flag.as_deref(), Some("--backup"));
        assert!(c.refusal().contains("--backup"));
        let c = check_backup_file("b.yaml", &BackupFileState::OtherDaemonSet("x/y".into()));
        assert!(c.message.contains("x/y"));
        assert_eq!(
            check_backup_file("b.yaml", &BackupFileState::SameDaemonSet).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn overrides_turn_only_their_own_blocks_into_warnings() {
        let checks = vec![
            Check::block(CheckCode::LeftBehind, "x", Some(ALLOW_LEFTOVER_PODS)),
            Check::block(CheckCode::Restarts, "y", Some(ALLOW_RESTARTS)),
            Check::block(CheckCode::NameTaken, "z", None),
        ];
        let o = Overrides {
            allow_leftover_pods: true,
            ..Default::default()
        };
        let out = apply_overrides(checks, &o);
        assert_eq!(out[0].verdict, Verdict::Warn);
        assert!(out[0].overridden);
        assert_eq!(out[1].verdict, Verdict::Block);
        assert_eq!(out[2].verdict, Verdict::Block);
        assert_eq!(blocks(&out).len(), 2);
        assert!(out[1].refusal().contains("use --allow-restarts"));
    }
}
