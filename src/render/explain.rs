//! Rendering an [`Explanation`]: a header that reconciles the counters, then one row per node,
//! problems first.

use std::io::Write;

use crate::engine::explain::{Explanation, NodeState, NodeVerdict};
use crate::engine::reason::Reason;
use crate::error::Result;

use super::palette::Palette;
use super::term::escape;
use super::{io_err, table};

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

/// The table (`-o table`) or the wide table (`-o wide`).
pub fn explanation_table<W: Write>(
    out: &mut W,
    e: &Explanation,
    wide: bool,
    p: &Palette,
) -> Result<()> {
    header(out, e, p)?;
    if e.nodes.is_empty() {
        writeln!(out, "No nodes match.").map_err(io_err)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = e
        .nodes
        .iter()
        .map(|v| {
            let state = p.state(v.state);
            if wide {
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
            }
        })
        .collect();
    if wide {
        table::write(out, &["NODE", "STATE", "POD", "REVISION", "REASONS"], rows)
    } else {
        table::write(out, &["NODE", "STATE", "REASON"], rows)
    }
}

/// One line per DaemonSet (explain without NAME).
pub fn overview_table<W: Write>(
    out: &mut W,
    items: &[Explanation],
    all_namespaces: bool,
    p: &Palette,
) -> Result<()> {
    if items.is_empty() {
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
    table::write(out, &headers, rows)
}
