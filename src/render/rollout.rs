//! Rendering a [`RolloutPreview`]: a header (what changes, the strategy, the waves), the unified
//! diff of the pod template, then one row per node, what needs a look first.

use std::io::Write;

use crate::engine::reason::Reason;
use crate::engine::rollout::{Action, NodePreview};
use crate::error::Result;

use super::explain::NodeLabels;
use super::palette::Palette;
use super::printer::TableOptions;
use super::term::escape;
use super::{diff, io_err, table};

pub use crate::engine::report::{Document, DryRun};

fn action(a: Action, p: &Palette) -> String {
    let text = a.as_str();
    match a {
        Action::Blocked | Action::Delete => p.bad(text),
        Action::Restart => p.warn(text),
        Action::Create => p.good(text),
        Action::Keep => text.to_string(),
        Action::Unchanged => p.dim(text),
    }
}

fn gen(g: Option<i64>) -> String {
    g.map(|g| g.to_string()).unwrap_or_else(|| "?".into())
}

fn header<W: Write>(out: &mut W, doc: &Document, p: &Palette) -> Result<()> {
    let v = doc.preview;
    let d = &v.daemon_set;
    let template = if v.template_changed {
        p.warn(&format!(
            "the pod template changes (templateGeneration {} -> {})",
            gen(d.template_generation),
            gen(d.new_template_generation)
        ))
    } else if v.new_revision {
        p.warn(&format!(
            "the pod template keeps its meaning (templateGeneration {}) but not its bytes",
            gen(d.template_generation)
        ))
    } else {
        "the pod template does not change".to_string()
    };
    let w = |out: &mut W, line: String| writeln!(out, "{line}").map_err(io_err);
    w(
        out,
        format!(
            "DaemonSet {}/{}: {template}",
            p.bold(&d.namespace),
            p.bold(&d.name)
        ),
    )?;
    let current = match (&d.current_revision, d.current_revision_number) {
        (Some(n), Some(r)) => format!("{n} (revision {r})"),
        _ => "none".into(),
    };
    let next = match (&v.matching_revision, v.template_changed, v.new_revision) {
        (Some(m), true, _) => format!(
            "rollback to {m} (revision {})",
            gen(v.matching_revision_number)
        ),
        (_, _, true) => "a new revision (its hash is computed by the controller)".into(),
        (_, false, false) => "unchanged".into(),
        (None, true, false) => "an existing revision".into(),
    };
    w(out, format!("Revision:  current {current}; after: {next}"))?;
    w(out, format!("Rules:     {}", v.rules.describe()))?;
    let s = &v.strategy;
    let spec = |resolved: usize, written: &Option<String>| match written {
        Some(t) if t.ends_with('%') => format!("{resolved} ({t} of {}, rounded up)", s.desired),
        _ => resolved.to_string(),
    };
    let strategy = if s.type_ == "RollingUpdate" {
        format!(
            "RollingUpdate, maxUnavailable {}, maxSurge {}, minReadySeconds {}",
            spec(s.max_unavailable, &s.max_unavailable_spec),
            spec(s.max_surge, &s.max_surge_spec),
            s.min_ready_seconds
        )
    } else {
        s.type_.clone()
    };
    w(out, format!("Strategy:  {strategy}"))?;
    w(
        out,
        format!(
            "Desired:   {} -> {} nodes; waves: {}",
            s.desired_before,
            s.desired,
            if s.wave_sizes.is_empty() {
                "none".to_string()
            } else {
                let sizes: Vec<String> = s.wave_sizes.iter().map(|n| n.to_string()).collect();
                format!("{} ({})", v.waves, sizes.join(" + "))
            }
        ),
    )?;
    let counts: Vec<String> = Action::ALL
        .iter()
        .filter(|a| v.counts.get(**a) > 0)
        .map(|a| format!("{} {}", v.counts.get(*a), a.as_str()))
        .collect();
    w(out, format!("Nodes:     {}", counts.join(", ")))?;
    w(
        out,
        format!(
            "Dry run:   {} as {:?} (dryRun=All: nothing stored)",
            doc.dry_run.method, doc.dry_run.field_manager
        ),
    )?;
    if let Some(a) = &doc.admission {
        let line = a.describe();
        let line = if a.webhooks_consulted {
            line
        } else {
            p.warn(&line)
        };
        w(out, format!("Admission: {line}"))?;
    }
    for n in &v.notes {
        w(out, format!("{} {}", p.warn("Note:"), escape(n)))?;
    }
    writeln!(out).map_err(io_err)
}

/// The REASON column: the reason that decides the action, or what the action means.
pub fn main_reason(n: &NodePreview) -> String {
    let first_other = n
        .reasons
        .iter()
        .find(|r| !matches!(r, Reason::OutdatedRevision { .. }));
    let rev = n.pod_revision.as_deref().unwrap_or("?");
    let preempts = n
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::Preemption { .. }));
    match n.action {
        Action::Restart | Action::Create if preempts.is_some() => preempts
            .map(|r| format!("{}: {}", r.code(), r.message()))
            .unwrap_or_default(),
        Action::Restart if n.replaced_first => {
            format!("pod at revision {rev} is outdated and already unavailable: replaced first")
        }
        Action::Restart => {
            format!("pod at revision {rev} is outdated: the rolling update replaces it")
        }
        Action::Keep
            if n.reasons
                .iter()
                .any(|r| matches!(r, Reason::OutdatedRevision { .. })) =>
        {
            format!("pod at revision {rev} is outdated; OnDelete: replaced only when deleted")
        }
        Action::Keep if first_other.is_none() => {
            format!("pod at revision {rev} already matches the new template")
        }
        Action::Create if first_other.is_none() => {
            "eligible, no pod: the controller creates one at once".into()
        }
        _ => first_other
            .or(n.reasons.first())
            .map(|r| format!("{}: {}", r.code(), escape(&r.message())))
            .unwrap_or_else(|| "-".into()),
    }
}

/// The REASONS column of `-o wide`: every reason; the revision in the preview's own words.
fn all_reasons(n: &NodePreview) -> String {
    let outdated = n
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::OutdatedRevision { .. }));
    let mut parts: Vec<String> = n
        .reasons
        .iter()
        .filter(|r| !matches!(r, Reason::OutdatedRevision { .. }))
        .map(|r| format!("{}: {}", r.code(), escape(&r.message())))
        .collect();
    if outdated || parts.is_empty() {
        let rev = n.pod_revision.as_deref().unwrap_or("?");
        let text = match n.action {
            Action::Restart | Action::Keep => main_reason(n),
            _ if outdated => format!("OutdatedRevision: pod at revision {rev} is outdated"),
            _ => main_reason(n),
        };
        // A preempting restart's main reason is its Preemption reason: listed once.
        if !parts.contains(&text) {
            parts.insert(0, text);
        }
    }
    parts.join("; ")
}

/// The table (`-o table`) or the wide table (`-o wide`), with `-L`/`--show-labels` node label
/// columns (before the free-text reason, as in explain's table).
pub fn preview_table_with<W: Write>(
    out: &mut W,
    doc: &Document,
    wide: bool,
    p: &Palette,
    opts: &TableOptions,
    labels: &NodeLabels,
) -> Result<()> {
    let v = doc.preview;
    header(out, doc, p)?;
    if !doc.template_diff.is_empty() {
        diff::write_coloured(out, &doc.template_diff, p)?;
        writeln!(out).map_err(io_err)?;
    }
    if v.nodes.is_empty() {
        writeln!(out, "No nodes.").map_err(io_err)?;
        return Ok(());
    }
    let rows = v
        .nodes
        .iter()
        .map(|n| {
            let mut row = if wide {
                vec![
                    n.name.clone(),
                    action(n.action, p),
                    n.pod.clone().unwrap_or_else(|| "-".into()),
                    n.pod_revision.clone().unwrap_or_else(|| "-".into()),
                    all_reasons(n),
                ]
            } else {
                vec![n.name.clone(), action(n.action, p), main_reason(n)]
            };
            let at = row.len() - 1;
            row.splice(at..at, opts.label_cells(labels.get(&n.name)));
            row
        })
        .collect();
    let mut headers: Vec<String> = if wide {
        vec!["NODE", "ACTION", "POD", "REVISION", "REASONS"]
    } else {
        vec!["NODE", "ACTION", "REASON"]
    }
    .into_iter()
    .map(String::from)
    .collect();
    let at = headers.len() - 1;
    headers.splice(at..at, opts.label_headers());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table::write(out, &headers, rows)
}
