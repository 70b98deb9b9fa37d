//! The scheduler's FailedScheduling message, parsed into its histogram.
//! mirrors scheduler framework/types.go FitError.Error

use super::reason::SchedulerEntry;

/// Parses "0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't satisfy plugin(s)
/// [NodeAffinity]. preemption: ..." into its entries, dropping the NodeAffinity filler that
/// every DaemonSet pod shows for the nodes it is not pinned to.
pub fn parse(message: &str) -> Vec<SchedulerEntry> {
    let Some(rest) = message.split_once(" nodes are available: ").map(|(_, r)| r) else {
        return Vec::new();
    };
    // The histogram ends at the first ". " (what follows is the PostFilter message: "preemption:
    // ...", and in 1.34+ "no new claims to deallocate, preemption: ...") or at the final ".".
    // Reason strings and taint keys/values never contain ". ".
    let body = match rest.find(". ") {
        Some(i) => &rest[..i],
        None => rest.trim_end().trim_end_matches('.'),
    };
    let mut entries: Vec<SchedulerEntry> = Vec::new();
    for piece in body.split(", ") {
        match split_count(piece) {
            Some((count, reason)) => entries.push(SchedulerEntry {
                count,
                reason: reason.to_string(),
                taint: None,
            }),
            // The old taint format has a comma inside: "had taint {k: v}, that the pod didn't tolerate".
            None => {
                if let Some(last) = entries.last_mut() {
                    last.reason.push_str(", ");
                    last.reason.push_str(piece);
                }
            }
        }
    }
    entries.retain(|e| !is_pinning_filler(&e.reason));
    for e in &mut entries {
        e.taint =
            taint_of(&e.reason).map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") });
    }
    entries
}

fn split_count(piece: &str) -> Option<(u32, &str)> {
    let (n, reason) = piece.split_once(' ')?;
    Some((n.parse().ok()?, reason))
}

/// The NodeAffinity entries that come from the controller's pinning to one node.
fn is_pinning_filler(reason: &str) -> bool {
    reason == "node(s) didn't satisfy plugin(s) [NodeAffinity]"
        || reason == "node(s) didn't match Pod's node affinity/selector"
        || reason == "node(s) didn't match the requested node name"
}

/// A taint named by a scheduler entry, in either format: `(key, value)`.
/// New: "node(s) had untolerated taint {k: v}"; old: "node(s) had taint {k: v}, that the pod
/// didn't tolerate".
pub fn taint_of(reason: &str) -> Option<(String, String)> {
    let start = reason.find("taint {")? + "taint {".len();
    let end = start + reason[start..].find('}')?;
    let inner = &reason[start..end];
    let (k, v) = inner
        .split_once(": ")
        .unwrap_or((inner.trim_end_matches(':'), ""));
    Some((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_node_affinity_filler() {
        let m = "0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.";
        assert_eq!(
            parse(m),
            vec![SchedulerEntry {
                count: 1,
                reason: "Insufficient cpu".into(),
                taint: None
            }]
        );
    }

    #[test]
    fn message_of_kubernetes_1_35() {
        let m = "0/6 nodes are available: 1 Insufficient cpu, 5 node(s) didn't satisfy plugin(s) [NodeAffinity]. no new claims to deallocate, preemption: 0/6 nodes are available: 1 No preemption victims found for incoming pod, 5 Preemption is not helpful for scheduling.";
        let e = parse(m);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].reason, "Insufficient cpu");
    }

    #[test]
    fn host_ports_and_too_many_pods() {
        let m = "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 3 node(s) didn't satisfy plugin(s) [NodeAffinity].";
        assert_eq!(
            parse(m)[0].reason,
            "node(s) didn't have free ports for the requested pod ports"
        );
        let m = "0/46 nodes are available: 1 Too many pods, 45 node(s) didn't satisfy plugin(s) [NodeAffinity].";
        assert_eq!(parse(m)[0].reason, "Too many pods");
    }

    #[test]
    fn both_taint_formats() {
        let new = "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 node(s) didn't satisfy plugin(s) [NodeAffinity].";
        let e = parse(new);
        assert_eq!(e.len(), 1);
        assert_eq!(
            taint_of(&e[0].reason),
            Some(("node.kubernetes.io/unreachable".into(), "".into()))
        );
        let old = "0/3 nodes are available: 1 node(s) had taint {dedicated: gpu}, that the pod didn't tolerate, 2 node(s) didn't match node selector.";
        let e = parse(old);
        assert_eq!(
            e[0].reason,
            "node(s) had taint {dedicated: gpu}, that the pod didn't tolerate"
        );
        assert_eq!(
            taint_of(&e[0].reason),
            Some(("dedicated".into(), "gpu".into()))
        );
    }

    #[test]
    fn not_a_fit_error() {
        assert!(parse("pod has unbound immediate PersistentVolumeClaims").is_empty());
    }
}
