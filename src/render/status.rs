//! `status` output: one line per node change (the contract scripts and tests read), and the
//! terminal screen, redrawn in place. Pure formatting; cluster text is escaped.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::status::{
    NodeChange, NodeMark, Outcome, Progress, StatusSummary, StuckVerdict, Wave, AVAILABLE, GONE,
};
use crate::render::term::escape;

/// `TIME NODE FROM -> TO REASON [pod POD revision N]`: `-` for no previous state or no
/// reason; the pod (and its revision number, when known) closes the line.
pub fn change_line(c: &NodeChange) -> String {
    let reason = match (&c.reason, &c.message) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.clone(),
        _ => "-".into(),
    };
    let pod = match (&c.pod, c.revision) {
        (Some(p), Some(r)) => format!(" [pod {p} revision {r}]"),
        (Some(p), None) => format!(" [pod {p}]"),
        _ => String::new(),
    };
    escape(&format!(
        "{} {} {} -> {} {reason}{pod}",
        c.time,
        c.node,
        c.from.as_deref().unwrap_or("-"),
        c.to,
    ))
    .into_owned()
}

/// `TIME stuck CODE: MESSAGE; next: ACTION`, one line per verdict.
pub fn stuck_lines(time: &str, verdicts: &[StuckVerdict]) -> Vec<String> {
    verdicts
        .iter()
        .map(|v| {
            escape(&format!(
                "{time} stuck {}: {}; next: {}",
                v.code, v.message, v.next
            ))
            .into_owned()
        })
        .collect()
}

/// The last line: `TIME complete|timeout|stuck|interrupted: ...`, then the verdicts when not
/// complete.
pub fn summary_lines(s: &StatusSummary) -> Vec<String> {
    let p = &s.progress;
    let what = match s.outcome {
        Outcome::Complete => "complete",
        Outcome::Timeout => "timeout",
        Outcome::Stuck => "stuck",
        Outcome::Interrupted => "interrupted",
    };
    let wave = s
        .wave
        .map(|w| format!(" ({})", wave_text(&w)))
        .unwrap_or_default();
    let mut out = vec![format!(
        "{} {what}: daemonset {}/{} {}/{} nodes updated, {}/{} available after {}{wave}",
        s.time,
        s.namespace,
        s.name,
        p.updated,
        p.desired,
        p.available,
        p.desired,
        duration(Duration::from_secs(s.elapsed_seconds))
    )];
    if s.outcome != Outcome::Complete {
        out.extend(stuck_lines(&s.time, &s.stuck));
    }
    out
}

/// `wave 2 of 5, 1 node per wave (maxUnavailable 1), 3 nodes to update, 1 in progress`.
pub fn wave_text(w: &Wave) -> String {
    let budget = if w.max_surge > 0 {
        format!("maxSurge {}", w.max_surge)
    } else {
        format!("maxUnavailable {}", w.max_unavailable)
    };
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "wave {} of {}, {} node{} per wave ({budget}), {} node{} to update, {} in progress",
        w.current,
        w.total,
        w.per_wave,
        plural(w.per_wave),
        w.nodes_to_update,
        plural(w.nodes_to_update),
        w.nodes_in_progress
    )
}

/// `1h02m`, `3m05s`, `12s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// What the screen shows.
pub struct ScreenView<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub strategy: &'a str,
    pub progress: Progress,
    /// The rolling update's wave (None for OnDelete).
    pub wave: Option<Wave>,
    pub elapsed: Duration,
    /// Rate-based estimate of the time left; None before any node finished.
    pub left: Option<Duration>,
    pub marks: &'a BTreeMap<String, NodeMark>,
    /// Shown while no progress is seen for the stuck window.
    pub stuck: &'a [StuckVerdict],
    /// A watch error being retried, or "waiting for the first list".
    pub note: Option<&'a str>,
    pub done: bool,
}

/// The order problems show in: the explain states, then the done and the out-of-scope ones.
fn rank(state: &str) -> usize {
    const ORDER: [&str; 10] = [
        "Missing",
        "Pending",
        "Unhealthy",
        "Misscheduled",
        "Terminating",
        GONE,
        "Outdated",
        "Running",
        AVAILABLE,
        "NotEligible",
    ];
    ORDER.iter().position(|s| *s == state).unwrap_or(0)
}

fn bar(n: i32, of: i32, width: usize) -> String {
    let filled = if of <= 0 {
        width
    } else {
        (usize::try_from(n.max(0)).unwrap_or(0) * width) / usize::try_from(of).unwrap_or(1)
    }
    .min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn clip(line: String, width: usize) -> String {
    if line.chars().count() <= width {
        return line;
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `text` cut at spaces into lines of at most `width` characters, at most `max` lines (the
/// last one clipped).
fn wrap(text: &str, width: usize, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
            line.push_str("    ");
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push(line);
    if out.len() > max {
        // The continuation indent of the lines folded back in is dropped.
        let rest: Vec<String> = out
            .split_off(max - 1)
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    l.clone()
                } else {
                    l.trim_start().to_string()
                }
            })
            .collect();
        let rest = rest.join(" ");
        out.push(clip(rest + " ", width));
    }
    out.into_iter().map(|l| clip(l, width)).collect()
}

/// The screen as lines, at most `height` of them, none wider than `width`: the header, the
/// progress, any stuck verdict, then the nodes not done (problems first) and a count of the rest.
pub fn screen(v: &ScreenView, width: usize, height: usize) -> Vec<String> {
    let p = &v.progress;
    let left = match (v.done, v.left) {
        (true, _) => "done".to_string(),
        (false, Some(d)) => format!("~{} left", duration(d)),
        (false, None) => "time left unknown".to_string(),
    };
    let mut lines = vec![
        format!(
            "daemonset {}/{}  {}  elapsed {}  {left}",
            escape(v.namespace),
            escape(v.name),
            v.strategy,
            duration(v.elapsed)
        ),
        format!(
            "updated   {} {}/{}",
            bar(p.updated, p.desired, 30),
            p.updated,
            p.desired
        ),
        format!(
            "available {} {}/{}",
            bar(p.available, p.desired, 30),
            p.available,
            p.desired
        ),
    ];
    if let Some(w) = &v.wave {
        lines.push(wave_text(w));
    }
    if let Some(note) = v.note {
        lines.push(format!("note: {}", escape(note)));
    }
    for s in v.stuck {
        let text = escape(&format!("STUCK {}: {}", s.code, s.message)).into_owned();
        lines.extend(wrap(&text, width.max(20), 3));
        let next = escape(&format!("  next: {}", s.next)).into_owned();
        lines.extend(wrap(&next, width.max(20), 2));
    }
    lines.push(String::new());
    let mut open: Vec<(&String, &NodeMark)> = v
        .marks
        .iter()
        .filter(|(_, m)| m.state != AVAILABLE && m.state != "NotEligible")
        .collect();
    open.sort_by(|a, b| rank(&a.1.state).cmp(&rank(&b.1.state)).then(a.0.cmp(b.0)));
    let mut rest: BTreeMap<&str, usize> = BTreeMap::new();
    for m in v.marks.values() {
        if m.state == AVAILABLE || m.state == "NotEligible" {
            *rest.entry(m.state.as_str()).or_default() += 1;
        }
    }
    let room = height.saturating_sub(lines.len() + 2).max(1);
    if !open.is_empty() {
        lines.push(format!(
            "{:<30} {:<13} {:<36} REASON",
            "NODE", "STATE", "POD"
        ));
        let shown = if open.len() > room {
            room - 1
        } else {
            open.len()
        };
        for (node, m) in open.iter().take(shown) {
            let reason = match (&m.code, &m.message) {
                (Some(c), Some(msg)) => format!("{c}: {msg}"),
                (Some(c), None) => c.to_string(),
                _ => String::new(),
            };
            lines.push(
                escape(&format!(
                    "{:<30} {:<13} {:<36} {reason}",
                    node,
                    m.state,
                    m.pod.as_deref().unwrap_or("-")
                ))
                .into_owned(),
            );
        }
        if shown < open.len() {
            lines.push(format!(
                "... and {} more nodes not done",
                open.len() - shown
            ));
        }
    }
    let rest_text: Vec<String> = rest.iter().map(|(s, n)| format!("{n} {s}")).collect();
    if !rest_text.is_empty() {
        lines.push(format!("other nodes: {}", rest_text.join(", ")));
    }
    lines.truncate(height.max(1));
    lines.into_iter().map(|l| clip(l, width.max(10))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(state: &str, code: Option<&'static str>) -> NodeMark {
        NodeMark {
            state: state.into(),
            code,
            message: code.map(|c| format!("{c} details")),
            pod: Some("agent-x".into()),
            revision: Some(2),
        }
    }

    #[test]
    fn change_line_is_the_contract_and_escapes_cluster_text() {
        let c = NodeChange {
            api_version: "kubectl-ds/v1".into(),
            kind: "NodeChange".into(),
            time: "2026-01-01T00:00:00Z".into(),
            node: "n1".into(),
            from: Some("Outdated".into()),
            to: "Unhealthy".into(),
            reason: Some("CrashLoopBackOff".into()),
            message: Some("back-off\x1b[2J".into()),
            pod: Some("agent-x".into()),
            revision: Some(3),
        };
        assert_eq!(
            change_line(&c),
            "2026-01-01T00:00:00Z n1 Outdated -> Unhealthy CrashLoopBackOff: back-off^[[2J [pod agent-x revision 3]"
        );
        let first = NodeChange {
            from: None,
            reason: None,
            message: None,
            to: AVAILABLE.into(),
            pod: None,
            ..c
        };
        assert_eq!(
            change_line(&first),
            "2026-01-01T00:00:00Z n1 - -> Available -"
        );
    }

    #[test]
    fn screen_fits_the_height_problems_first() {
        let mut marks = BTreeMap::new();
        for i in 0..50 {
            marks.insert(format!("ok-{i:02}"), mark(AVAILABLE, None));
        }
        for i in 0..20 {
            marks.insert(
                format!("old-{i:02}"),
                mark("Outdated", Some("OutdatedRevision")),
            );
        }
        marks.insert("sick".into(), mark("Unhealthy", Some("CrashLoopBackOff")));
        let view = ScreenView {
            namespace: "ns",
            name: "agent",
            strategy: "RollingUpdate",
            progress: Progress {
                desired: 71,
                updated: 51,
                available: 50,
                done: 50,
            },
            wave: Some(Wave {
                current: 51,
                total: 71,
                per_wave: 1,
                max_unavailable: 1,
                max_surge: 0,
                nodes_to_update: 19,
                nodes_in_progress: 1,
            }),
            elapsed: Duration::from_secs(65),
            left: Some(Duration::from_secs(30)),
            marks: &marks,
            stuck: &[],
            note: None,
            done: false,
        };
        let lines = screen(&view, 100, 15);
        assert!(lines.len() <= 15, "{lines:#?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 100));
        assert!(lines[0].contains("elapsed 1m05s") && lines[0].contains("~30s left"));
        assert!(lines[1].contains("51/71"), "{}", lines[1]);
        assert_eq!(
            lines[3],
            "wave 51 of 71, 1 node per wave (maxUnavailable 1), 19 nodes to update, 1 in progress"
        );
        let header = lines.iter().position(|l| l.starts_with("NODE")).unwrap();
        assert!(
            lines[header + 1].starts_with("sick "),
            "problems first: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("... and ")),
            "{lines:#?}"
        );
        assert_eq!(lines.last().unwrap(), "other nodes: 50 Available");
    }

    #[test]
    fn long_verdicts_wrap_within_the_width() {
        let text = "STUCK OnDelete: one two three four five six seven eight nine ten eleven";
        let lines = wrap(text, 20, 3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines[0], "STUCK OnDelete: one");
        assert!(lines[2].ends_with('…'), "{lines:?}");
        assert_eq!(wrap("short", 20, 3), ["short"]);
        // Lines folded into the last one keep single spaces between words.
        assert_eq!(wrap("xx yy zzzzzzzzzzzzzzzzzzzz", 12, 1), ["xx yy zzzzz…"]);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }
}
