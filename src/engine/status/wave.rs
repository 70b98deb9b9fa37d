//! Which wave of a rolling update is in progress, out of how many: rollout-preview's wave
//! model ([`budget::wave_sizes`]) applied to the nodes still to update, so the two commands
//! count the same waves.
//!
//! A wave is `budget` nodes (maxUnavailable, or maxSurge when surging) replaced together; the
//! controller itself keeps a sliding window (update.go rollingUpdate starts a node as soon as
//! another one is available), so the wave is a count: nodes started so far (updated or being
//! updated) fill waves of `budget`; the nodes still on an old revision are planned as
//! rollout-preview plans them, outdated unavailable pods first (replaced at once, outside the
//! budget: update.go `allowedReplacementPods`).

use std::collections::{BTreeMap, HashMap};

use crate::engine::model::Pod;
use serde::{Deserialize, Serialize};

use super::{NodeMark, AVAILABLE};
use crate::engine::budget;
use crate::engine::explain::{pods_by_node, Explanation};
use crate::engine::podstate;
use crate::engine::revision;
use crate::engine::snapshot::Snapshot;
use crate::engine::version::Rules;

/// The rolling update's wave, as a `kubectl-ds/v1` `StatusSummary.wave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// The wave in progress (1-based).
    pub current: usize,
    /// Waves of the whole rollout: those done, this one, and those rollout-preview would plan
    /// for the nodes still to update.
    pub total: usize,
    /// Nodes per wave: maxSurge when surging, else maxUnavailable (resolved against desired).
    pub per_wave: usize,
    pub max_unavailable: usize,
    pub max_surge: usize,
    /// Desired nodes whose pod is still of an old revision, not yet being replaced.
    pub nodes_to_update: usize,
    /// Desired nodes being updated: a pod of the current revision not yet available, or no
    /// pod yet.
    pub nodes_in_progress: usize,
}

/// The wave of a rolling update; `None` for OnDelete or when nothing is desired.
pub fn wave(snap: &Snapshot, e: &Explanation, marks: &BTreeMap<String, NodeMark>) -> Option<Wave> {
    let ds = &snap.daemon_set;
    if budget::is_on_delete(ds) {
        return None;
    }
    let desired = usize::try_from(e.summary.computed.desired).ok()?;
    let budgets = budget::budgets(ds, desired);
    let per_wave = if budgets.max_surge > 0 {
        budgets.max_surge
    } else {
        budgets.max_unavailable
    };
    if desired == 0 || per_wave == 0 {
        return None;
    }
    let counts = count_nodes(snap, e, marks);
    Some(wave_of(per_wave, &counts, budgets))
}

/// Desired nodes by where they are in the rollout.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct NodeCounts {
    /// An available pod of the current revision.
    done: usize,
    /// A pod of the current revision not available yet, or no pod.
    in_progress: usize,
    /// Only an old pod, not available: replaced at once.
    outdated_unavailable: usize,
    /// Only an old pod, available: replaced within the budget.
    outdated_available: usize,
}

fn count_nodes(snap: &Snapshot, e: &Explanation, marks: &BTreeMap<String, NodeMark>) -> NodeCounts {
    let ds = &snap.daemon_set;
    let rules = Rules::for_version(snap.server_version.as_ref());
    let hash = revision::current_revision(ds, &snap.revisions, &rules).map(revision::revision_hash);
    let generation = revision::template_generation(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let by_node: HashMap<String, Vec<&Pod>> = pods_by_node(ds, &snap.pods);
    let mut c = NodeCounts::default();
    for v in e.nodes.iter().filter(|v| v.should_run) {
        if marks.get(&v.name).is_some_and(|m| m.state == AVAILABLE) {
            c.done += 1;
            continue;
        }
        let active: Vec<&Pod> = by_node
            .get(&v.name)
            .map(|pods| {
                pods.iter()
                    .copied()
                    .filter(|p| !podstate::is_terminating(p))
                    .collect()
            })
            .unwrap_or_default();
        let updated = |p: &&Pod| revision::is_pod_updated(p, hash.as_deref(), generation, &rules);
        if active.is_empty() || active.iter().any(updated) {
            c.in_progress += 1;
        } else if active
            .iter()
            .any(|p| podstate::is_available(p, min_ready, snap.now.as_ref()))
        {
            c.outdated_available += 1;
        } else {
            c.outdated_unavailable += 1;
        }
    }
    c
}

/// The wave arithmetic over the counts (see the module comment).
fn wave_of(per_wave: usize, c: &NodeCounts, budgets: budget::Budgets) -> Wave {
    let left = c.outdated_available + c.outdated_unavailable;
    let started = c.done + c.in_progress;
    let mut current = started.div_ceil(per_wave).max(1);
    // Slots of the current wave taken by nodes started in it.
    let mut taken = started - per_wave * (current - 1);
    if started > 0 && c.in_progress == 0 && taken == per_wave && left > 0 {
        // The wave is finished and the next one is about to start.
        current += 1;
        taken = 0;
    }
    let sizes = budget::wave_sizes(
        per_wave,
        c.outdated_unavailable,
        c.outdated_available,
        taken,
    );
    // wave_sizes' first round is the current wave when it still has room (or replacements);
    // otherwise the current wave is full and every planned round comes after it.
    let room = per_wave.saturating_sub(taken).min(c.outdated_available);
    let total = if started == 0 {
        sizes.len().max(1)
    } else if c.outdated_unavailable + room > 0 {
        current - 1 + sizes.len()
    } else {
        current + sizes.len()
    };
    Wave {
        current,
        total: total.max(current),
        per_wave,
        max_unavailable: budgets.max_unavailable,
        max_surge: budgets.max_surge,
        nodes_to_update: left,
        nodes_in_progress: c.in_progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(per_wave: usize, done: usize, in_progress: usize, old: usize) -> (usize, usize) {
        let c = NodeCounts {
            done,
            in_progress,
            outdated_unavailable: 0,
            outdated_available: old,
        };
        let budgets = budget::Budgets {
            max_unavailable: per_wave,
            max_surge: 0,
        };
        let w = wave_of(per_wave, &c, budgets);
        (w.current, w.total)
    }

    #[test]
    fn a_clean_rollout_counts_the_waves_rollout_preview_plans() {
        // 5 nodes, 2 per wave: rollout-preview plans 2, 2, 1 (budget::wave_sizes).
        assert_eq!(budget::wave_sizes(2, 0, 5, 0).len(), 3);
        let steps = [
            ((0, 0, 5), (1, 3)), // nothing started
            ((0, 2, 3), (1, 3)), // first wave in progress
            ((1, 1, 3), (1, 3)), // one of it done
            ((2, 0, 3), (2, 3)), // first wave done, second about to start
            ((2, 2, 1), (2, 3)),
            ((3, 1, 1), (2, 3)),
            ((3, 0, 2), (2, 3)), // between: one of wave 2 done, one not yet started
            ((4, 1, 0), (3, 3)),
            ((5, 0, 0), (3, 3)), // done
        ];
        for ((done, running, old), want) in steps {
            assert_eq!(
                at(2, done, running, old),
                want,
                "done {done}, in progress {running}, old {old}"
            );
        }
    }

    #[test]
    fn one_per_wave_and_replacements_outside_the_budget() {
        assert_eq!(at(1, 0, 0, 3), (1, 3));
        assert_eq!(at(1, 1, 0, 2), (2, 3));
        assert_eq!(at(1, 2, 1, 0), (3, 3));
        // An unavailable old pod is replaced at once, in the current wave (rollout-preview's
        // first round: `first` plus what the budget allows).
        let c = NodeCounts {
            done: 0,
            in_progress: 0,
            outdated_unavailable: 2,
            outdated_available: 2,
        };
        let budgets = budget::Budgets {
            max_unavailable: 1,
            max_surge: 0,
        };
        let w = wave_of(1, &c, budgets);
        assert_eq!(
            (w.current, w.total),
            (1, budget::wave_sizes(1, 2, 2, 0).len())
        );
        assert_eq!((w.nodes_to_update, w.nodes_in_progress), (4, 0));
    }
}
