//! Taints and tolerations, with the DaemonSet controller's automatic tolerations.

use crate::engine::model::PodSpec;
use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        ..Default::default()
    }
}

/// The tolerations the controller adds to every DaemonSet pod.
/// mirrors daemonset_util.go AddOrUpdateDaemonPodTolerations
pub fn automatic_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut auto = vec![
        exists(NOT_READY, NO_EXECUTE),
        exists(UNREACHABLE, NO_EXECUTE),
        exists(DISK_PRESSURE, NO_SCHEDULE),
        exists(MEMORY_PRESSURE, NO_SCHEDULE),
        exists(PID_PRESSURE, NO_SCHEDULE),
        exists(UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if spec.host_network == Some(true) {
        auto.push(exists(NETWORK_UNAVAILABLE, NO_SCHEDULE));
    }
    auto
}

/// The template's tolerations plus the automatic ones, as the created pod carries them.
/// mirrors daemonset_util.go AddOrUpdateDaemonPodTolerations / v1helper.AddOrUpdateTolerationInPodSpec
pub fn effective_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut all: Vec<Toleration> = spec.tolerations.as_deref().cloned().unwrap_or_default();
    for auto in automatic_tolerations(spec) {
        // AddOrUpdateTolerationInPodSpec replaces a toleration that MatchToleration()es
        // (same key, operator, value, effect) and appends otherwise.
        match all.iter_mut().find(|t| same_toleration(t, &auto)) {
            Some(existing) => *existing = auto,
            None => all.push(auto),
        }
    }
    all
}

fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    a.key == b.key && op(a) == op(b) && a.value == b.value && a.effect == b.effect
}

fn op(t: &Toleration) -> &str {
    match t.operator.as_deref() {
        None | Some("") => "Equal",
        Some(o) => o,
    }
}

/// mirrors k8s.io/api/core/v1 toleration.go (Toleration).ToleratesTaint
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let t_effect = t.effect.as_deref().unwrap_or("");
    if !t_effect.is_empty() && t_effect != taint.effect {
        return false;
    }
    let t_key = t.key.as_deref().unwrap_or("");
    if !t_key.is_empty() && t_key != taint.key {
        return false;
    }
    match op(t) {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// mirrors v1helper.TolerationsTolerateTaint
pub fn any_tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// Taints with a scheduling effect that no toleration covers.
/// mirrors v1helper.FindMatchingUntoleratedTaint with the NoSchedule|NoExecute filter
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Vec<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
        .filter(|t| !any_tolerates(tolerations, t))
        .collect()
}

/// When the taint-eviction controller evicts a pod with these tolerations from a node with
/// these taints: `Some((taint, seconds))` when every NoExecute taint is tolerated and the
/// tolerations used carry tolerationSeconds (the smallest wins); `None` when the pod may stay
/// forever (no NoExecute taint, or no used toleration has tolerationSeconds: upstream takes
/// the minimum over those that have them).
/// mirrors pkg/controller/tainteviction taint_eviction.go processPodOnNode,
/// v1helper.GetMatchingTolerations (the first toleration matching each taint) and
/// getMinTolerationTime. Untolerated NoExecute taints are not this case (immediate deletion).
pub fn eviction_after<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Option<(&'a Taint, i64)> {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    let mut min: Option<(&Taint, i64)> = None;
    for taint in no_execute {
        let used = tolerations.iter().find(|t| tolerates(t, taint))?;
        if let Some(secs) = used.toleration_seconds {
            let secs = secs.max(0);
            if min.is_none_or(|(_, m)| secs < m) {
                min = Some((taint, secs));
            }
        }
    }
    min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_after_takes_the_smallest_toleration_seconds() {
        let tol = |key: &str, secs: Option<i64>| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: secs,
            ..Default::default()
        };
        let taints = vec![
            taint("a", None, NO_EXECUTE),
            taint("b", Some("x"), NO_EXECUTE),
            taint("c", None, NO_SCHEDULE),
        ];
        let (t, secs) = eviction_after(&taints, &[tol("a", Some(30)), tol("b", Some(5))]).unwrap();
        assert_eq!((t.key.as_str(), secs), ("b", 5));
        // A toleration without seconds does not cancel another's: the minimum of those set.
        let (t, _) = eviction_after(&taints, &[tol("a", None), tol("b", Some(5))]).unwrap();
        assert_eq!(t.key, "b");
        assert_eq!(
            eviction_after(&taints, &[tol("a", None), tol("b", None)]),
            None
        );
        // An untolerated NoExecute taint is immediate deletion, not this loop.
        assert_eq!(eviction_after(&taints, &[tol("a", Some(5))]), None);
        assert_eq!(eviction_after(&taints[2..], &[]), None);
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    #[test]
    fn toleration_matching_rules() {
        let t = taint("dedicated", Some("gpu"), NO_SCHEDULE);
        assert!(tolerates(
            &tol(
                Some("dedicated"),
                Some("Equal"),
                Some("gpu"),
                Some(NO_SCHEDULE)
            ),
            &t
        ));
        assert!(
            tolerates(&tol(Some("dedicated"), None, Some("gpu"), None), &t),
            "empty effect matches all effects"
        );
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Equal"), Some("cpu"), None),
            &t
        ));
        assert!(tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, None),
            &t
        ));
        assert!(
            tolerates(&tol(None, Some("Exists"), None, None), &t),
            "blanket toleration"
        );
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some(NO_EXECUTE)),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("other"), Some("Exists"), None, None),
            &t
        ));
    }

    #[test]
    fn automatic_tolerations_depend_on_host_network() {
        let plain = PodSpec::default();
        let keys: Vec<_> = automatic_tolerations(&plain)
            .into_iter()
            .map(|t| t.key.unwrap())
            .collect();
        assert!(!keys.contains(&NETWORK_UNAVAILABLE.to_string()));
        assert_eq!(keys.len(), 6);
        let host = PodSpec {
            host_network: Some(true),
            ..Default::default()
        };
        assert_eq!(automatic_tolerations(&host).len(), 7);
    }

    #[test]
    fn not_ready_noschedule_is_not_auto_tolerated() {
        let tols = effective_tolerations(&PodSpec::default());
        let taints = [
            taint(NOT_READY, None, NO_SCHEDULE),
            taint(NOT_READY, None, NO_EXECUTE),
        ];
        let bad = untolerated(&taints, &tols);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].effect, NO_SCHEDULE);
    }

    #[test]
    fn prefer_no_schedule_never_matters() {
        let taints = [taint("x", None, "PreferNoSchedule")];
        assert!(untolerated(&taints, &[]).is_empty());
    }
}
