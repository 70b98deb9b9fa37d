//! An [`Explanation`] as pretty JSON with sorted keys, byte for byte what
//! [`sorted_json::write`] writes for it, with its node verdicts written by hand: the overview's
//! `-o json` writes 5,000 verdicts per DaemonSet for a hundred DaemonSets, most of them the
//! same few reason lists (every node of a pool is excluded for the same reason). Each distinct
//! reason list of a DaemonSet is serialized once and copied for the nodes that have an equal
//! one; names, flags and states need no serializer at all.

use serde::Serialize;

use crate::engine::explain::{Explanation, NodeVerdict};
use crate::engine::reason::{serialize_reasons, Reason};

use super::sorted_json::{self, indent};

type Result = std::result::Result<(), serde_json::Error>;

/// Reason lists kept per DaemonSet, each with its bytes (the lists that differ from node to
/// node, a pod's name in them, are few: pending, unhealthy or duplicate pods).
const KEPT: usize = 16;

/// `e` at nesting `depth`, as `sorted_json::write(out, e, depth)` writes it.
pub fn write(out: &mut Vec<u8>, e: &Explanation, depth: usize) -> Result {
    // Every field, so that a new one does not compile until it is written here too; the keys
    // in sorted order.
    let Explanation {
        api_version,
        kind,
        daemon_set,
        rules,
        summary,
        nodes,
    } = e;
    out.push(b'{');
    key(out, depth + 1, "apiVersion", true);
    sorted_json::write(out, api_version, depth + 1)?;
    key(out, depth + 1, "daemonSet", false);
    sorted_json::write(out, daemon_set, depth + 1)?;
    key(out, depth + 1, "kind", false);
    sorted_json::write(out, kind, depth + 1)?;
    key(out, depth + 1, "nodes", false);
    verdicts(out, nodes, depth + 1)?;
    key(out, depth + 1, "rules", false);
    sorted_json::write(out, rules, depth + 1)?;
    key(out, depth + 1, "summary", false);
    sorted_json::write(out, summary, depth + 1)?;
    close(out, depth, b'}');
    Ok(())
}

/// The verdicts as an array at nesting `depth`.
fn verdicts(out: &mut Vec<u8>, nodes: &[NodeVerdict], depth: usize) -> Result {
    out.push(b'[');
    // Reason lists written so far, with where their bytes are in `bytes`.
    let mut kept: Vec<(&[Reason], std::ops::Range<usize>)> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for (i, v) in nodes.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        indent(out, depth + 1);
        let NodeVerdict {
            name,
            pod,
            reasons,
            should_continue_running,
            should_run,
            state,
        } = v;
        let at = depth + 2;
        out.push(b'{');
        key(out, at, "name", true);
        serde_json::to_writer(&mut *out, name)?;
        key(out, at, "pod", false);
        match pod {
            Some(pod) => sorted_json::write(out, pod, at)?,
            None => out.extend_from_slice(b"null"),
        }
        key(out, at, "reasons", false);
        if reasons.is_empty() {
            out.extend_from_slice(b"[]");
        } else if let Some((_, range)) = kept.iter().find(|(r, _)| *r == reasons.as_slice()) {
            out.extend_from_slice(&bytes[range.clone()]);
        } else {
            let start = out.len();
            sorted_json::write(out, &Reasons(reasons), at)?;
            if kept.len() < KEPT {
                let from = bytes.len();
                bytes.extend_from_slice(&out[start..]);
                kept.push((reasons, from..bytes.len()));
            }
        }
        key(out, at, "shouldContinueRunning", false);
        out.extend_from_slice(flag(*should_continue_running));
        key(out, at, "shouldRun", false);
        out.extend_from_slice(flag(*should_run));
        key(out, at, "state", false);
        out.push(b'"');
        out.extend_from_slice(state.as_str().as_bytes());
        out.push(b'"');
        close(out, depth + 1, b'}');
    }
    if !nodes.is_empty() {
        close(out, depth, b']');
    } else {
        out.push(b']');
    }
    Ok(())
}

/// A reason list as the verdict's `reasons` field serializes it.
struct Reasons<'a>(&'a [Reason]);

impl Serialize for Reasons<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_reasons(self.0, s)
    }
}

/// An object's entry start: the separator, its line's indentation, `"key": ` (the keys here
/// are plain ASCII, written as they are).
fn key(out: &mut Vec<u8>, depth: usize, key: &str, first: bool) {
    out.extend_from_slice(if first { b"\n" } else { b",\n" });
    indent(out, depth);
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\": ");
}

/// The end of a non-empty object or array that stands at nesting `depth`.
fn close(out: &mut Vec<u8>, depth: usize, bracket: u8) {
    out.push(b'\n');
    indent(out, depth);
    out.push(bracket);
}

fn flag(b: bool) -> &'static [u8] {
    if b {
        b"true"
    } else {
        b"false"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::explain::{explain, NodeFilter};
    use crate::engine::snapshot::Snapshot;
    use crate::engine::testutil::{agent_pod, daemon_set, node};

    /// Byte for byte what the generic writer writes, for explanations with several node
    /// states, empty and non-empty reason lists, pods and none, one reason list on many nodes
    /// (its kept bytes copied), more distinct lists than are kept, names that need escaping;
    /// and for no node at all.
    #[test]
    fn the_hand_written_verdicts_are_the_generic_writers_bytes() {
        let ds = daemon_set(
            "metadata: {name: agent, namespace: ns, uid: ds-uid}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {nodeSelector: {pool: a}, containers: [{name: agent, image: 'agent:1'}]}",
        );
        let mut nodes = Vec::new();
        // 30 nodes of pool b: one reason list, written once and copied.
        for i in 0..30 {
            nodes.push(node(&format!(
                "metadata: {{name: b-{i}, labels: {{pool: b}}}}"
            )));
        }
        // More distinct lists than are kept: each node its own pool.
        for i in 0..(KEPT + 5) {
            nodes.push(node(&format!(
                "metadata: {{name: odd-{i}, labels: {{pool: p{i}}}}}"
            )));
        }
        nodes.push(node(
            "metadata: {name: \"q\\\"uote\\u00e9\\t\", labels: {pool: a}}",
        ));
        for n in [
            "metadata: {name: a-ready, labels: {pool: a}}",
            "metadata: {name: a-missing, labels: {pool: a}}",
            "metadata: {name: a-cordoned, labels: {pool: a}}\nspec: {unschedulable: true}",
            "metadata: {name: a-tainted, labels: {pool: a}}\nspec: {taints: [{key: x, value: y, effect: NoSchedule}]}",
            "metadata: {name: a-dup, labels: {pool: a}}",
            "metadata: {name: b-mis, labels: {pool: b}}",
            "metadata: {name: a-term, labels: {pool: a}}",
        ] {
            nodes.push(node(n));
        }
        let pods = vec![
            agent_pod("p-ready", "a-ready", "h", ""),
            agent_pod("p-dup-1", "a-dup", "h", ""),
            agent_pod("p-dup-2", "a-dup", "h", ""),
            agent_pod("p-mis", "b-mis", "h", ""),
            agent_pod(
                "p-term",
                "a-term",
                "h",
                "  deletionTimestamp: \"2026-01-01T00:01:00Z\"",
            ),
            agent_pod("p-quote", r#""q\"uote\u00e9\t""#, "h", ""),
        ];
        let snap = Snapshot {
            daemon_set: ds,
            nodes: nodes.into(),
            pods,
            ..Default::default()
        };
        let e = explain(&snap, &NodeFilter::default());
        assert!(e.nodes.len() > 50);
        let states: std::collections::BTreeSet<_> = e.nodes.iter().map(|n| n.state).collect();
        assert!(states.len() >= 5, "{states:?}");
        let hostile = e.nodes.iter().find(|n| n.name == "q\"uote\u{e9}\t");
        assert!(hostile.is_some_and(|n| n.pod.is_some()), "{hostile:?}");
        let mut empty = e.clone();
        empty.nodes.clear();
        for e in [&e, &empty] {
            for depth in [0, 2] {
                let mut generic = b"[".to_vec();
                sorted_json::write(&mut generic, e, depth).unwrap();
                let mut by_hand = b"[".to_vec();
                write(&mut by_hand, e, depth).unwrap();
                assert_eq!(
                    String::from_utf8(by_hand).unwrap(),
                    String::from_utf8(generic).unwrap()
                );
            }
        }
    }
}
