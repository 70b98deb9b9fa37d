//! Rolling-update budgets and waves: how many pods may be down (or surged) at once, and how many
//! rounds a rolling update takes.
//! mirrors daemonset_util.go UnavailableCount/SurgeCount and update.go updatedDesiredNodeCounts

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The budgets of one rolling update, resolved against the desired number of nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub max_unavailable: usize,
    pub max_surge: usize,
}

/// mirrors intstrutil.GetScaledValueFromIntOrPercent(v, total, roundUp=true): an integer as is,
/// "N%" of `total` rounded up; anything else is invalid (None).
pub fn scaled(v: &IntOrString, total: usize) -> Option<usize> {
    match v {
        IntOrString::Int(i) => usize::try_from(*i).ok(),
        IntOrString::String(s) => {
            let percent: usize = s.strip_suffix('%')?.parse().ok()?;
            Some((percent * total).div_ceil(100))
        }
    }
}

/// The spec value as written (`1`, `"10%"`), for display.
pub fn spec_text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Is the update strategy OnDelete? (RollingUpdate is the apps/v1 default.)
pub fn is_on_delete(ds: &DaemonSet) -> bool {
    strategy_type(ds) == "OnDelete"
}

/// The update strategy type, defaulted as apps/v1 SetDefaults_DaemonSet does.
pub fn strategy_type(ds: &DaemonSet) -> String {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".into())
}

/// `(maxUnavailable, maxSurge)` as written in the spec, when the strategy is RollingUpdate.
pub fn spec_values(ds: &DaemonSet) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let rolling = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .filter(|u| u.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate")
        .and_then(|u| u.rolling_update.as_ref());
    (
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        rolling.and_then(|r| r.max_surge.as_ref()),
    )
}

/// mirrors update.go updatedDesiredNodeCounts: both budgets scaled against the desired count
/// (rounded up); "if both are 0 and desired > 0, maxUnavailable is 1".
pub fn budgets(ds: &DaemonSet, desired: usize) -> Budgets {
    let (mu, ms) = spec_values(ds);
    let mut max_unavailable = mu.and_then(|v| scaled(v, desired)).unwrap_or(0);
    let max_surge = ms.and_then(|v| scaled(v, desired)).unwrap_or(0);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    Budgets {
        max_unavailable,
        max_surge,
    }
}

/// The restarts of each round of a rolling update.
///
/// Round 1 replaces every outdated pod that is already unavailable (`first`, never limited:
/// update.go `allowedReplacementPods`) plus as many available ones as the budget leaves after
/// what is unavailable (or surging) now (`in_use`); each later round replaces `budget` more,
/// once the previous round's pods are available. mirrors update.go rollingUpdate
pub fn wave_sizes(budget: usize, first: usize, candidates: usize, in_use: usize) -> Vec<usize> {
    let room = budget.saturating_sub(in_use).min(candidates);
    let mut sizes = Vec::new();
    if first + room > 0 {
        sizes.push(first + room);
    }
    let mut rest = candidates - room;
    if budget == 0 {
        return sizes;
    }
    while rest > 0 {
        let n = rest.min(budget);
        sizes.push(n);
        rest -= n;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::daemon_set;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&pct("10%"), 15), Some(2));
        assert_eq!(scaled(&pct("1%"), 3), Some(1));
        assert_eq!(scaled(&pct("0%"), 3), Some(0));
        assert_eq!(scaled(&pct("100%"), 7), Some(7));
        assert_eq!(scaled(&IntOrString::Int(3), 100), Some(3));
        assert_eq!(scaled(&pct("3"), 10), None, "a string must be a percentage");
    }

    #[test]
    fn both_zero_means_one_unavailable() {
        let ds = daemon_set(
            "spec:
  selector: {}
  template: {}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 0}}",
        );
        assert_eq!(
            budgets(&ds, 5),
            Budgets {
                max_unavailable: 1,
                max_surge: 0
            }
        );
        assert_eq!(budgets(&ds, 0).max_unavailable, 0, "nothing desired");
    }

    #[test]
    fn surge_and_on_delete() {
        let surge = daemon_set(
            "spec:
  selector: {}
  template: {}
  updateStrategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 25%}}",
        );
        assert_eq!(
            budgets(&surge, 10),
            Budgets {
                max_unavailable: 0,
                max_surge: 3
            }
        );
        let on_delete = daemon_set(
            "spec:
  selector: {}
  template: {}
  updateStrategy: {type: OnDelete, rollingUpdate: {maxUnavailable: 5}}",
        );
        assert!(is_on_delete(&on_delete));
        assert_eq!(spec_values(&on_delete), (None, None));
    }

    #[test]
    fn waves() {
        // 5 available outdated pods, budget 2: 2, 2, 1.
        assert_eq!(wave_sizes(2, 0, 5, 0), vec![2, 2, 1]);
        // 2 already unavailable go first, beside the one the budget still allows.
        assert_eq!(wave_sizes(3, 2, 4, 2), vec![3, 3]);
        // Everything unavailable already: the first round only replaces those.
        assert_eq!(wave_sizes(1, 1, 2, 3), vec![1, 1, 1]);
        assert_eq!(wave_sizes(1, 0, 0, 0), Vec::<usize>::new());
        assert_eq!(
            wave_sizes(0, 2, 3, 0),
            vec![2],
            "no budget: only replacements"
        );
    }
}
