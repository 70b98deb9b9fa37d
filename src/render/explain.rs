//! Rendering an [`Explanation`]: a header that reconciles the counters, then one row per node,
//! problems first.

use std::collections::BTreeMap;
use std::io::Write;

use crate::engine::explain::{Explanation, NodeState, NodeVerdict};
use crate::engine::reason::Reason;
use crate::engine::snapshot::Snapshot;
use crate::error::Result;

use super::io_err;
use super::palette::Palette;
use super::printer::{write_table, TableOptions};
use super::term::escape;

/// The reason shown in the REASON column: the one that decides the state.
pub fn main_reason(v: &NodeVerdict) -> Option<&Reason> {
    match v.state {
        NodeState::NotEligible | NodeState::Misscheduled => {
            v.reasons.iter().find(|r| r.is_eligibility())
        }
        _ => None,
    }
    // A pod that does not fit but preempts its way in: the outcome is what matters.
    .or_else(|| {
        v.reasons
            .iter()
            .find(|r| matches!(r, Reason::Preemption { .. }))
    })
    // The facts computed from the objects name the cause more precisely than the scheduler's
    // summary, so Unschedulable comes after them; informational reasons come last.
    .or_else(|| {
        v.reasons.iter().find(|r| {
            !matches!(
                r,
                Reason::Cordoned {} | Reason::AutoTolerated { .. } | Reason::Unschedulable { .. }
            )
        })
    })
    .or_else(|| {
        v.reasons
            .iter()
            .find(|r| matches!(r, Reason::Unschedulable { .. }))
    })
    .or(v.reasons.first())
}

fn header<W: Write>(out: &mut W, e: &Explanation, p: &Palette) -> Result<()> {
    let d = &e.daemon_set;
    let s = &d.status;
    let rev = d.current_revision.as_deref().unwrap_or("?");
    writeln!(
        out,
        "DaemonSet {}/{} ({}, current revision {})",
        p.bold(&d.namespace),
        p.bold(&d.name),
        d.update_strategy,
        rev
    )
    .map_err(io_err)?;
    writeln!(
        out,
        "Status:  desired {}, current {}, ready {}, up-to-date {}, available {}, misscheduled {}",
        s.desired, s.current, s.ready, s.up_to_date, s.available, s.misscheduled
    )
    .map_err(io_err)?;
    writeln!(out, "Nodes:   {}", e.summary.reconciliation).map_err(io_err)?;
    let states: Vec<String> = NodeState::ALL
        .iter()
        .filter_map(|st| {
            e.summary
                .states
                .get(st.as_str())
                .map(|n| format!("{n} {}", st.as_str()))
        })
        .collect();
    writeln!(out, "States:  {}", states.join(", ")).map_err(io_err)?;
    writeln!(out, "Rules:   {}", e.rules.describe()).map_err(io_err)?;
    for r in &e.summary.daemon_set_reasons {
        writeln!(
            out,
            "{} {}: {}",
            p.bad("Warning:"),
            r.code(),
            escape(&r.message())
        )
        .map_err(io_err)?;
    }
    for n in &e.summary.notes {
        writeln!(out, "{} {}", p.warn("Note:"), escape(n)).map_err(io_err)?;
    }
    writeln!(out).map_err(io_err)
}

/// Node name to its labels, for `-L` and `--show-labels`.
pub type NodeLabels = BTreeMap<String, BTreeMap<String, String>>;

/// The nodes' labels for `-L` and `--show-labels`; none when no label column is shown (a copy
/// of every node's labels is several MB at 5,000 nodes).
pub fn node_labels(snap: &Snapshot, opts: &TableOptions) -> NodeLabels {
    if opts.label_columns.is_empty() && !opts.show_labels {
        return NodeLabels::new();
    }
    snap.nodes
        .iter()
        .map(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            (n.metadata.name.clone().unwrap_or_default(), labels)
        })
        .collect()
}

/// The table (`-o table`) or the wide table (`-o wide`), with kubectl get's table options: `--no-headers` drops the header block and the
/// column headers; `-L` and `--show-labels` add label columns from `labels`.
pub fn explanation_table_with<W: Write>(
    out: &mut W,
    e: &Explanation,
    wide: bool,
    p: &Palette,
    opts: &TableOptions,
    labels: &NodeLabels,
) -> Result<()> {
    if !opts.no_headers {
        header(out, e, p)?;
        if e.nodes.is_empty() {
            writeln!(out, "No nodes match.").map_err(io_err)?;
            return Ok(());
        }
    }
    let rows: Vec<Vec<String>> = e
        .nodes
        .iter()
        .map(|v| {
            let state = p.state(v.state);
            let mut row = if wide {
                let pod = v.pod.as_ref();
                let reasons: Vec<String> = v
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.code(), escape(&r.message())))
                    .collect();
                vec![
                    v.name.clone(),
                    state,
                    pod.map(|p| p.name.clone()).unwrap_or_else(|| "-".into()),
                    pod.and_then(|p| p.revision.clone())
                        .unwrap_or_else(|| "-".into()),
                    if reasons.is_empty() {
                        "-".into()
                    } else {
                        reasons.join("; ")
                    },
                ]
            } else {
                let reason = main_reason(v)
                    .map(|r| format!("{}: {}", r.code(), escape(&r.message())))
                    .unwrap_or_else(|| "-".into());
                vec![v.name.clone(), state, reason]
            };
            // Label columns go before the free-text reason, so that they stay aligned.
            let at = row.len() - 1;
            let cells = opts.label_cells(labels.get(&v.name));
            row.splice(at..at, cells);
            row
        })
        .collect();
    let mut headers: Vec<String> = if wide {
        ["NODE", "STATE", "POD", "REVISION", "REASONS"]
    } else {
        ["NODE", "STATE", "REASON", "", ""]
    }
    .iter()
    .filter(|h| !h.is_empty())
    .map(|h| h.to_string())
    .collect();
    let at = headers.len() - 1;
    headers.splice(at..at, opts.label_headers());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    write_table(out, &headers, rows, opts.no_headers)
}

/// Nodes with a problem in an explanation: every state but Running and NotEligible.
pub fn problem_count(e: &Explanation) -> usize {
    e.nodes.iter().filter(|v| is_problem(v.state)).count()
}

/// Whether a state is a problem (`--problems`, `--exit-code`).
pub fn is_problem(state: NodeState) -> bool {
    !matches!(state, NodeState::Running | NodeState::NotEligible)
}

/// Problems counted from the summary (every node, whatever the filter); the overview's count,
/// whose explanations keep no node verdicts.
pub fn summary_problems(e: &Explanation) -> usize {
    e.summary
        .states
        .iter()
        .filter(|(st, _)| !matches!(st.as_str(), "Running" | "NotEligible"))
        .map(|(_, n)| n)
        .sum()
}

/// The overview order, as indices into `items`: most problems first, then namespace and name.
pub fn overview_order(items: &[Explanation]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&items[a], &items[b]);
        summary_problems(b).cmp(&summary_problems(a)).then_with(|| {
            (a.daemon_set.namespace.as_str(), a.daemon_set.name.as_str())
                .cmp(&(b.daemon_set.namespace.as_str(), b.daemon_set.name.as_str()))
        })
    });
    order
}

/// Totals over the overview's DaemonSets (a line under the table, `totals` in JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub daemon_sets: usize,
    pub with_problems: usize,
    pub desired: i64,
    pub ready: i64,
    pub problems: usize,
    pub states: BTreeMap<String, usize>,
}

pub fn totals(items: &[Explanation]) -> Totals {
    let mut t = Totals {
        daemon_sets: items.len(),
        ..Totals::default()
    };
    for e in items {
        let n = summary_problems(e);
        t.problems += n;
        t.with_problems += usize::from(n > 0);
        t.desired += i64::from(e.summary.computed.desired);
        t.ready += i64::from(e.summary.computed.ready);
        for (st, n) in &e.summary.states {
            *t.states.entry(st.clone()).or_default() += n;
        }
    }
    t
}

/// One line per DaemonSet (explain without NAME); `--no-headers` drops the column headers and
/// the totals line.
pub fn overview_table_with<W: Write>(
    out: &mut W,
    items: &[Explanation],
    all_namespaces: bool,
    p: &Palette,
    no_headers: bool,
) -> Result<()> {
    if items.is_empty() {
        if no_headers {
            return Ok(());
        }
        writeln!(out, "No DaemonSets found.").map_err(io_err)?;
        return Ok(());
    }
    let problem_states = [
        NodeState::Missing,
        NodeState::Pending,
        NodeState::Unhealthy,
        NodeState::Misscheduled,
        NodeState::Outdated,
        NodeState::Terminating,
    ];
    let rows = items
        .iter()
        .map(|e| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(e.daemon_set.namespace.clone());
            }
            row.push(e.daemon_set.name.clone());
            row.push(e.summary.computed.desired.to_string());
            row.push(e.summary.computed.ready.to_string());
            for st in problem_states {
                let n = e.summary.states.get(st.as_str()).copied().unwrap_or(0);
                row.push(if n > 0 {
                    p.bad(&n.to_string())
                } else {
                    "0".into()
                });
            }
            row
        })
        .collect();
    let mut headers = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "NAME",
        "DESIRED",
        "READY",
        "MISSING",
        "PENDING",
        "UNHEALTHY",
        "MISSCHEDULED",
        "OUTDATED",
        "TERMINATING",
    ]);
    write_table(out, &headers, rows, no_headers)?;
    if no_headers {
        return Ok(());
    }
    let t = totals(items);
    writeln!(
        out,
        "\nTotal: {} DaemonSets ({} with problems), {} desired, {} ready, {} nodes with problems",
        t.daemon_sets, t.with_problems, t.desired, t.ready, t.problems
    )
    .map_err(io_err)
}
