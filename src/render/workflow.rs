//! Rendering the plans and results of orphan, adopt and migrate as kubectl-style text: the
//! steps, the pods and revisions concerned, the checks (verdict written out, colour only
//! added), and what happened.

use std::io::Write;

use crate::engine::adoption::Fate;
use crate::engine::checks::{Check, Verdict};
use crate::engine::report::{
    AdoptPlan, AdoptResult, MigrateReport, OrphanPlan, OrphanResult, ServerDryRun,
};
use crate::error::Result;

use super::palette::Palette;
use super::term::escape;
use super::{io_err, table};

fn line<W: Write + ?Sized>(out: &mut W, text: &str) -> Result<()> {
    writeln!(out, "{text}").map_err(io_err)
}

fn steps<W: Write + ?Sized>(out: &mut W, steps: &[String]) -> Result<()> {
    line(out, "Steps:")?;
    for (i, s) in steps.iter().enumerate() {
        line(out, &format!("  {}. {s}", i + 1))?;
    }
    Ok(())
}

fn verdict(v: Verdict, overridden: bool, p: &Palette) -> String {
    let text = if overridden { "warn*" } else { v.as_str() };
    match v {
        Verdict::Ok => p.good(text),
        Verdict::Warn => p.warn(text),
        Verdict::Block => p.bad(text),
    }
}

/// The checks, one per line: VERDICT CHECK MESSAGE (blocks name their override flag).
pub fn checks<W: Write + ?Sized>(out: &mut W, checks: &[Check], p: &Palette) -> Result<()> {
    line(out, "Checks:")?;
    let rows = checks
        .iter()
        .map(|c| {
            let mut msg = escape(&c.message).into_owned();
            if c.verdict == Verdict::Block {
                if let Some(flag) = &c.override_flag {
                    msg.push_str(&format!(" (override: {flag})"));
                }
            }
            if c.overridden {
                msg.push_str(&format!(
                    " (allowed by {})",
                    c.override_flag.as_deref().unwrap_or("")
                ));
            }
            vec![
                verdict(c.verdict, c.overridden, p),
                c.code.as_str().to_string(),
                msg,
            ]
        })
        .collect();
    table::write(out, &["  VERDICT", "CHECK", "MESSAGE"], indent(rows))?;
    for c in checks.iter().filter(|c| !c.handoff.is_empty()) {
        line(out, &format!("Hand-off ({}):", c.code.as_str()))?;
        for (i, step) in c.handoff.iter().enumerate() {
            line(out, &format!("  {}. {step}", i + 1))?;
        }
    }
    Ok(())
}

fn indent(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|mut r| {
            if let Some(first) = r.first_mut() {
                *first = format!("  {first}");
            }
            r
        })
        .collect()
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "<none>".into())
}

/// The orphaning delete's plan.
pub fn orphan_plan<W: Write + ?Sized>(out: &mut W, plan: &OrphanPlan, p: &Palette) -> Result<()> {
    let d = &plan.daemon_set;
    line(
        out,
        &format!(
            "Orphan daemonset {}/{} (uid {})",
            p.bold(&d.namespace),
            p.bold(&d.name),
            opt(&d.uid)
        ),
    )?;
    steps(out, &plan.steps)?;
    line(
        out,
        &format!(
            "Pods that keep running without an owner ({}):",
            plan.pods.len()
        ),
    )?;
    if !plan.pods.is_empty() {
        let rows = plan
            .pods
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    opt(&x.node),
                    if x.ready {
                        "true".into()
                    } else {
                        "false".into()
                    },
                    opt(&x.revision_hash),
                ]
            })
            .collect();
        table::write(
            out,
            &["  NAME", "NODE", "READY", "REVISION-HASH"],
            indent(rows),
        )?;
    }
    line(
        out,
        &format!("ControllerRevisions kept ({}):", plan.revisions.len()),
    )?;
    if !plan.revisions.is_empty() {
        let rows = plan
            .revisions
            .iter()
            .map(|r| vec![r.name.clone(), r.revision.to_string(), r.hash.clone()])
            .collect();
        table::write(out, &["  NAME", "REVISION", "HASH"], indent(rows))?;
    }
    checks(out, &plan.checks, p)?;
    line(out, "")
}

/// What the orphaning delete left.
pub fn orphan_result<W: Write + ?Sized>(out: &mut W, r: &OrphanResult, p: &Palette) -> Result<()> {
    let pr = &r.progress;
    let head = if r.verified {
        p.good("Orphaned:")
    } else {
        p.bad("Not verified:")
    };
    line(
        out,
        &format!(
            "{head} the DaemonSet is {}; {} pod(s) keep running without an owner; backup at {}",
            if pr.daemon_set_gone {
                "gone".to_string()
            } else if !pr.held_by_finalizers.is_empty() {
                format!(
                    "deleted but kept by finalizer(s) {} (not kubectl-ds's to remove)",
                    pr.held_by_finalizers.join(", ")
                )
            } else {
                "still there".to_string()
            },
            pr.running.len(),
            r.backup
        ),
    )?;
    if !pr.running.is_empty() {
        let rows = pr
            .running
            .iter()
            .map(|o| vec![o.name.clone(), opt(&o.node), o.uid.clone()])
            .collect();
        table::write(out, &["  NAME", "NODE", "UID"], indent(rows))?;
    }
    if !pr.gone.is_empty() {
        line(
            out,
            &format!(
                "{} pods of the plan are gone: {}",
                p.warn("Warning:"),
                pr.gone.join(", ")
            ),
        )?;
    }
    if !pr.owned_pods.is_empty() || !pr.owned_revisions.is_empty() {
        line(
            out,
            &format!(
                "Still owned: pods [{}], revisions [{}]",
                pr.owned_pods.join(", "),
                pr.owned_revisions.join(", ")
            ),
        )?;
    }
    Ok(())
}

fn fate(f: Fate, p: &Palette) -> String {
    match f {
        Fate::Adopt => p.good(f.as_str()),
        Fate::Outdated => p.warn(f.as_str()),
        Fate::Restart | Fate::Delete | Fate::LeftBehind | Fate::Foreign => p.bad(f.as_str()),
    }
}

/// The adoption's plan.
pub fn adopt_plan<W: Write + ?Sized>(out: &mut W, plan: &AdoptPlan, p: &Palette) -> Result<()> {
    let d = &plan.daemon_set;
    let from = match &plan.predecessor {
        Some(pr) => format!(
            " from daemonset {} (uid {}, known from its {})",
            pr.name,
            opt(&pr.uid),
            if pr.source == "live" {
                "live object"
            } else {
                "backup"
            }
        ),
        None => " from the namespace's controller-less pods".into(),
    };
    line(
        out,
        &format!(
            "Adopt into daemonset {}/{}{from}",
            p.bold(&d.namespace),
            p.bold(&d.name)
        ),
    )?;
    steps(out, &plan.steps)?;
    let a = &plan.analysis;
    line(
        out,
        &format!("Pods ({}), desired nodes {}:", a.pods.len(), a.desired),
    )?;
    if !a.pods.is_empty() {
        let rows = a
            .pods
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    opt(&x.node),
                    opt(&x.revision_hash),
                    opt(&x.template_generation),
                    fate(x.fate, p),
                    p.dim(&escape(x.detail.as_deref().unwrap_or_default())),
                ]
            })
            .collect();
        table::write(
            out,
            &["  NAME", "NODE", "REVISION-HASH", "GEN", "FATE", "DETAIL"],
            indent(rows),
        )?;
    }
    if !a.revisions.is_empty() {
        line(out, "ControllerRevisions:")?;
        let rows = a
            .revisions
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.revision.to_string(),
                    r.hash.clone(),
                    r.matches_new_template.to_string(),
                    r.adopted.to_string(),
                ]
            })
            .collect();
        table::write(
            out,
            &["  NAME", "REVISION", "HASH", "SAME-TEMPLATE", "ADOPTED"],
            indent(rows),
        )?;
    }
    checks(out, &a.checks, p)?;
    line(out, "")
}

/// What the adoption did.
pub fn adopt_result<W: Write + ?Sized>(out: &mut W, r: &AdoptResult, p: &Palette) -> Result<()> {
    let pr = &r.progress;
    let head = if r.verified {
        p.good("Adopted:")
    } else {
        p.bad("Not verified:")
    };
    line(
        out,
        &format!(
            "{head} daemonset {}/{} (uid {}) controls {} adopted pod(s) with unchanged UIDs; {} restarted, {} restarted unexpectedly, {} created, {} deleted, {} lost",
            r.daemon_set.namespace,
            r.daemon_set.name,
            opt(&r.daemon_set.uid),
            pr.adopted.len(),
            pr.restarted.len(),
            pr.unexpected_restarts.len(),
            pr.created.len(),
            pr.deleted.len(),
            pr.lost.len()
        ),
    )?;
    let s = &pr.status;
    line(
        out,
        &format!(
            "Status: desired {}, current {}, up-to-date {}, ready {}, available {}, misscheduled {}",
            s.desired, s.current, s.up_to_date, s.ready, s.available, s.misscheduled
        ),
    )?;
    for w in &pr.waiting_for {
        line(out, &format!("{} {w}", p.warn("Waiting for:")))?;
    }
    if !r.gone_since_backup.is_empty() {
        let names: Vec<&str> = r
            .gone_since_backup
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        line(
            out,
            &format!(
                "{} gone since the backup: {}",
                p.warn("Warning:"),
                names.join(", ")
            ),
        )?;
    }
    Ok(())
}

/// A migration's plan: both halves.
pub fn migrate_plan<W: Write + ?Sized>(out: &mut W, r: &MigrateReport, p: &Palette) -> Result<()> {
    line(
        out,
        &format!(
            "Migrate to daemonset {}/{} (stage {}, backup {})",
            r.adopt.daemon_set.namespace,
            r.adopt.daemon_set.name,
            r.stage.as_str(),
            r.backup
        ),
    )?;
    line(out, "")?;
    if let Some(o) = &r.orphan {
        orphan_plan(out, o, p)?;
    }
    adopt_plan(out, &r.adopt, p)
}

/// What the apiserver said to the dry-run mutations.
pub fn server_dry_run<W: Write + ?Sized>(
    out: &mut W,
    runs: &[ServerDryRun],
    p: &Palette,
) -> Result<()> {
    line(out, "Server dry run (nothing persisted):")?;
    for r in runs {
        let verdict = if r.accepted {
            p.good("accepted")
        } else {
            p.bad("rejected")
        };
        line(
            out,
            &format!("  {verdict}  {}: {}", r.operation, escape(&r.detail)),
        )?;
    }
    Ok(())
}
