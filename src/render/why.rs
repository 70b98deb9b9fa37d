//! Rendering a [`NodeExplanation`]: the node, then one row per DaemonSet, problems first.

use std::io::Write;

use crate::engine::explain::{NodeState, NodeVerdict};
use crate::engine::why::{DaemonSetRow, NodeExplanation, WOULD_BE_PENDING, WOULD_RUN};
use crate::error::Result;

use super::explain::main_reason;
use super::palette::Palette;
use super::term::escape;
use super::{io_err, table};

/// explain's state for a row (the assumed-node states read as the ones they stand beside).
fn node_state(row: &DaemonSetRow) -> NodeState {
    match row.state.as_str() {
        WOULD_RUN => NodeState::Running,
        WOULD_BE_PENDING => NodeState::Pending,
        s => NodeState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .unwrap_or(NodeState::Missing),
    }
}

fn coloured_state(row: &DaemonSetRow, p: &Palette) -> String {
    let state = node_state(row);
    if row.state == state.as_str() {
        return p.state(state);
    }
    match state {
        NodeState::Running => p.good(&row.state),
        _ => p.bad(&row.state),
    }
}

/// The reason explain's table would show for this row.
fn shown_reason(row: &DaemonSetRow) -> String {
    let verdict = NodeVerdict {
        name: String::new(),
        state: node_state(row),
        should_run: row.should_run,
        should_continue_running: row.should_continue_running,
        pod: None,
        reasons: row.reasons.clone(),
    };
    main_reason(&verdict)
        .map(|r| format!("{}: {}", r.code(), escape(&r.message())))
        .unwrap_or_else(|| "-".into())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The table (`-o table`) or the wide table (`-o wide`).
pub fn table<W: Write>(out: &mut W, doc: &NodeExplanation, wide: bool, p: &Palette) -> Result<()> {
    let s = &doc.summary;
    let what = if doc.node.assumed {
        " (assumed from a manifest)"
    } else {
        ""
    };
    writeln!(out, "Node {}{what}", p.bold(&escape(&doc.node.name))).map_err(io_err)?;
    writeln!(
        out,
        "DaemonSets: {} ({} should run here, {} running, {} with a problem)",
        s.daemon_sets, s.should_run, s.running, s.problems
    )
    .map_err(io_err)?;
    writeln!(out, "Rules:      {}", doc.rules.describe()).map_err(io_err)?;
    for n in &doc.notes {
        writeln!(out, "{} {}", p.warn("Note:"), escape(n)).map_err(io_err)?;
    }
    writeln!(out).map_err(io_err)?;
    if doc.daemon_sets.is_empty() {
        writeln!(out, "No DaemonSets found.").map_err(io_err)?;
        return Ok(());
    }
    let rows = doc
        .daemon_sets
        .iter()
        .map(|r| {
            let mut row = vec![
                escape(&r.namespace).into_owned(),
                escape(&r.name).into_owned(),
                coloured_state(r, p),
            ];
            if wide {
                let pod = r.pod.as_ref();
                row.push(yes_no(r.should_run));
                row.push(
                    pod.map(|p| escape(&p.name).into_owned())
                        .unwrap_or_else(|| "-".into()),
                );
                let reasons: Vec<String> = r
                    .reasons
                    .iter()
                    .map(|x| format!("{}: {}", x.code(), escape(&x.message())))
                    .collect();
                row.push(if reasons.is_empty() {
                    "-".into()
                } else {
                    reasons.join("; ")
                });
            } else {
                row.push(shown_reason(r));
            }
            row
        })
        .collect();
    if wide {
        table::write(
            out,
            &[
                "NAMESPACE",
                "DAEMONSET",
                "STATE",
                "SHOULD-RUN",
                "POD",
                "REASONS",
            ],
            rows,
        )
    } else {
        table::write(out, &["NAMESPACE", "DAEMONSET", "STATE", "REASON"], rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::reason::{PodFate, Reason};
    use crate::engine::why::{document, NodeObjects};

    fn row(name: &str, state: &str, reasons: Vec<Reason>) -> DaemonSetRow {
        DaemonSetRow {
            namespace: "mon".into(),
            name: name.into(),
            state: state.into(),
            should_run: state != "NotEligible",
            should_continue_running: state != "NotEligible",
            pod: None,
            reasons,
        }
    }

    #[test]
    fn table_problems_first_with_explains_reason_and_escaped_names() {
        let taint = Reason::UntoleratedTaint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            existing_pod: PodFate::Kept,
        };
        let objects = NodeObjects {
            node: crate::engine::testutil::node("metadata: {name: worker-1}"),
            ..Default::default()
        };
        let doc = document(
            vec![
                row("agent", "Missing", vec![Reason::NotYetCreated {}]),
                row("evil\x1b[2J", "NotEligible", vec![taint]),
            ],
            &objects,
        );
        let mut out = Vec::new();
        table(&mut out, &doc, false, &Palette::new(false)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Node worker-1");
        assert_eq!(
            lines[1],
            "DaemonSets: 2 (1 should run here, 0 running, 1 with a problem)"
        );
        let header = lines
            .iter()
            .position(|l| l.starts_with("NAMESPACE"))
            .unwrap();
        let cells: Vec<&str> = lines[header + 1].split_whitespace().take(4).collect();
        assert_eq!(
            cells,
            ["mon", "agent", "Missing", "NotYetCreated:"],
            "{text}"
        );
        assert!(lines[header + 2].contains("evil^[[2J"), "{text}");
        assert!(lines[header + 2].contains("UntoleratedTaint: "), "{text}");
        assert!(!text.contains('\x1b'));
        insta::assert_snapshot!("why_table", text);
        let mut wide = Vec::new();
        table(&mut wide, &doc, true, &Palette::new(false)).unwrap();
        insta::assert_snapshot!("why_wide", String::from_utf8(wide).unwrap());
    }
}
