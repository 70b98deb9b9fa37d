//! The preview's notes: what the plan means, in plain words, under the header.

use crate::engine::model::Pod;

use super::{Action, Ctx, Draft, RolloutPreview, Strategy};
use crate::engine::revision::{self, revision_hash};

/// What the table says under the header, in plain words.
pub(super) fn notes(ctx: &Ctx, drafts: &[Draft], p: &RolloutPreview) -> Vec<String> {
    let mut out = Vec::new();
    let s = &p.strategy;
    let gen = |g: Option<i64>| g.map(|g| g.to_string()).unwrap_or_else(|| "?".into());
    if !p.template_changed {
        let spec_note = if p.daemon_set.generation != p.daemon_set.new_generation {
            format!(
                "the spec changes (generation {} -> {}) but ",
                gen(p.daemon_set.generation),
                gen(p.daemon_set.new_generation)
            )
        } else {
            String::new()
        };
        if p.new_revision {
            let restarts = if ctx.revisions.rules.template_generation_counts {
                "pods labelled pod-template-generation=".to_string()
                    + &gen(p.daemon_set.template_generation)
                    + " still count as up to date (IsPodUpdated compares it since Kubernetes 1.24) and keep running"
            } else {
                "before Kubernetes 1.24 IsPodUpdated compares only the revision hash, so every pod counts as outdated and restarts".to_string()
            };
            out.push(format!("{spec_note}the pod template keeps its meaning (templateGeneration stays {}) but its bytes match no ControllerRevision (update.go Match compares bytes: e.g. a quantity spelled differently): the controller creates a new revision; {restarts}", gen(p.daemon_set.template_generation)));
        } else {
            out.push(format!("{spec_note}the pod template does not change (templateGeneration stays {}): no new revision, nothing rolls because of this change", gen(p.daemon_set.template_generation)));
        }
    } else if p.rollback {
        out.push(format!(
            "rollback: the new template matches revision {} ({}); pods already at that revision keep running",
            gen(p.matching_revision_number),
            p.matching_revision.as_deref().unwrap_or("?")
        ));
    } else {
        out.push("the controller will create a new ControllerRevision; its hash (controller.ComputeHash over the Go struct) cannot be computed here, so every existing pod counts as outdated".into());
    }
    if ctx.revisions.is_stuck() {
        out.push(format!("{} more ControllerRevision(s) hold the same bytes ({}): before Kubernetes 1.23 dedupCurHistories relabels the pods with an UPDATE, which the daemon-set-controller's RBAC role forbids, so every sync fails (\"failed to construct revisions of DaemonSet\") and nothing rolls out, not even creates and deletes, until the duplicate is deleted", p.duplicate_revisions.len(), few(&p.duplicate_revisions)));
    } else if !p.duplicate_revisions.is_empty() {
        out.push(format!("{} more ControllerRevision(s) hold the same bytes ({}): the controller keeps {}, deletes them and relabels every pod with its hash (dedupCurHistories), so every pod counts as up to date", p.duplicate_revisions.len(), few(&p.duplicate_revisions), p.new_revision_hash.as_deref().unwrap_or("?")));
    }
    let already: Vec<&str> = drafts
        .iter()
        .filter(|d| d.outdated && d.pod.is_some_and(|pod| !was_updated(ctx, pod)))
        .map(|d| d.name.as_str())
        .collect();
    if !already.is_empty() && !ctx.on_delete {
        out.push(format!("{} pod(s) are outdated already (a rollout is in progress or stalled): they are replaced whether or not this change is applied", already.len()));
    }
    if ctx.revisions.template_changed {
        let pitfall: Vec<String> = drafts
            .iter()
            .filter(|d| !d.outdated)
            .filter_map(|d| d.pod)
            .filter(|pod| {
                let hash_ok =
                    revision::pod_hash(pod).is_some_and(|h| ctx.revisions.up_to_date.contains(h));
                !hash_ok
                    && revision::is_pod_updated(pod, None, ctx.new_generation, &ctx.revisions.rules)
            })
            .filter_map(|pod| pod.metadata.name.clone())
            .collect();
        if !pitfall.is_empty() {
            out.push(format!("pod-template-generation pitfall: {} carry pod-template-generation={}, the new templateGeneration, so the controller counts them as up to date (IsPodUpdated) and will NOT restart them although their template differs", few(&pitfall), gen(ctx.new_generation)));
        }
    }
    if ctx.on_delete {
        if !s.replaced_when_deleted.is_empty() {
            out.push(format!("updateStrategy OnDelete: nothing restarts until pods are deleted; {} pod(s) would then come back with the new template: {}", s.replaced_when_deleted.len(), few(&s.replaced_when_deleted)));
        }
    } else if let Some(waves) = s.waves_text() {
        out.push(format!("{waves}; the order of nodes inside a wave is the controller's random choice (Go map iteration)"));
    }
    if s.surge_feasible == Some(false) {
        out.push("surge cannot progress on the Blocked nodes: the new pod must run beside the old one (a host port cannot be held twice, k/k#106417; resources must fit twice)".into());
    }
    let stuck = drafts
        .iter()
        .filter(|d| d.action == Action::Blocked && d.should_run)
        .count();
    if stuck > 0 {
        let budget = if s.surge {
            s.max_surge
        } else {
            s.max_unavailable
        };
        out.push(format!("{stuck} node(s) Blocked: their new pod would stay Pending; each one holds a unit of the budget until it runs, so a rolling update stalls once {budget} are stuck"));
    }
    let rolling_deletes = drafts
        .iter()
        .filter(|d| d.rolling_delete && d.action == Action::Delete)
        .count();
    if rolling_deletes > 0 {
        let how = if s.surge {
            "once the desired nodes have an available pod (maxSurge keeps full availability)"
        } else {
            "within maxUnavailable, like any update"
        };
        out.push(format!("Delete on {rolling_deletes} node(s) whose NoSchedule taint the new template does not tolerate: the rolling update deletes the outdated pod {how}, and nothing replaces it"));
        if s.surge && stuck > 0 {
            out.push(format!("{} of those pods stay while {stuck} desired node(s) are Blocked; which ones is the controller's random choice", stuck.min(rolling_deletes)));
        }
    }
    if drafts
        .iter()
        .any(|d| d.rolling_delete && d.action == Action::Blocked)
    {
        out.push("Blocked on nodes whose NoSchedule taint the new template does not tolerate: with maxSurge their outdated pod is deleted only while every desired node has an available pod, and the Blocked desired nodes never get one, so it stays".into());
    }
    if drafts
        .iter()
        .any(|d| d.rolling_delete && d.action == Action::Keep)
    {
        out.push(format!("Keep on nodes whose NoSchedule taint the new template does not tolerate: maxUnavailable {} resolves to 0 with {} desired node(s), so the rolling update never deletes their outdated pod", s.max_unavailable_spec.as_deref().unwrap_or("?"), s.desired));
    }
    if drafts.iter().any(|d| d.deleted_at_once()) {
        out.push("Delete: pods on nodes the new template no longer selects (or whose NoExecute taint it does not tolerate) are removed at once, not limited by maxUnavailable".into());
    }
    if p.counts.create > 0 {
        out.push(
            "Create: nodes that become eligible get their pod at once (under OnDelete too)".into(),
        );
    }
    out
}

/// Was the pod up to date before the change (against the live current revision)?
fn was_updated(ctx: &Ctx, pod: &Pod) -> bool {
    let hash = ctx.revisions.current.map(revision_hash);
    revision::is_pod_updated(
        pod,
        hash.as_deref(),
        revision::template_generation(&ctx.snap.daemon_set),
        &ctx.revisions.rules,
    )
}

impl Strategy {
    /// "3 restarts in 3 waves of at most 1 (maxUnavailable)", when anything restarts.
    pub fn waves_text(&self) -> Option<String> {
        let total: usize = self.wave_sizes.iter().sum();
        if total == 0 {
            return None;
        }
        let (budget, name) = if self.surge {
            (self.max_surge, "maxSurge")
        } else {
            (self.max_unavailable, "maxUnavailable")
        };
        let sizes: Vec<String> = self.wave_sizes.iter().map(|n| n.to_string()).collect();
        let first = if self.replaced_first.is_empty() {
            String::new()
        } else {
            format!(
                "; first the {} already unavailable ({})",
                self.replaced_first.len(),
                few(&self.replaced_first)
            )
        };
        Some(format!(
            "{total} restart(s) in {} wave(s) of {} ({name} {budget}){first}",
            self.wave_sizes.len(),
            sizes.join(" + ")
        ))
    }
}

/// Names for a sentence: up to 10, then how many more (the JSON lists them all).
fn few(names: &[String]) -> String {
    const SHOWN: usize = 10;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (1..=12).map(|i| format!("n{i}")).collect();
        assert_eq!(
            super::few(&names),
            "n1, n2, n3, n4, n5, n6, n7, n8, n9, n10 and 2 more"
        );
        assert_eq!(super::few(&names[..2]), "n1, n2");
    }
}
