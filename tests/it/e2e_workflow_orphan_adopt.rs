//! `orphan` and `adopt` run on their own against the real control plane (orphan, then adopt
//! the orphans from the backup), and the confirmation prompt on a terminal.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, ListParams};

use crate::harness::{kubeconfig, Output, TestEnv};
use crate::workflow_support::*;

#[tokio::test]
async fn orphan_alone_then_adopt_alone() {
    let mut env = TestEnv::new("wf-alone").await;
    nodes(&mut env, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 3).await;
    let backup = dir.path().join("agent.yaml");
    let backup = backup.to_str().unwrap();

    let plan = cli(
        &env,
        dir.path(),
        &[
            "orphan",
            "agent",
            "--backup",
            backup,
            "-o",
            "json",
            "--dry-run=server",
        ],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let report: OrphanReportJson = parse(&plan);
    assert_eq!(
        (report.kind.as_str(), report.dry_run.as_str()),
        ("OrphanReport", "server")
    );
    assert_eq!(report.plan.pods.len(), 3);
    assert!(
        report.server_dry_run[0].accepted && report.server_dry_run[0].detail.contains("orphan")
    );
    assert!(!Path::new(backup).exists());

    let out = cli(
        &env,
        dir.path(),
        &["orphan", "agent", "--backup", backup, "--yes", "-o", "json"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: OrphanReportJson = parse(&out);
    let result = report.result.unwrap();
    assert!(result.verified && result.daemon_set_gone);
    assert_eq!(result.running.len(), 3);
    assert!(get_ds(&env, "agent").await.is_none());
    let now = pods_of(&env, "agent").await;
    assert_eq!(now.keys().collect::<BTreeSet<_>>(), before.keys().collect());
    assert!(
        now.values().all(|(_, owner)| owner.is_none()),
        "every pod runs without an owner"
    );
    let all_pods = env.pods("agent").await;
    assert!(all_pods.iter().all(|p| p
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|o| o.is_empty())));
    let revs: Api<ControllerRevision> = Api::namespaced(env.client.clone(), &env.ns);
    let revs = revs
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items;
    assert!(revs.iter().all(|r| r
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|o| o.is_empty())));

    // Running orphan again: the DaemonSet is gone, the backup says it was orphaned; verified.
    let again = cli(
        &env,
        dir.path(),
        &["orphan", "agent", "--backup", backup, "--yes"],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);

    // adopt, plan only, without the backup: the orphans matching the new selector.
    let new = new_manifest_file(&env, dir.path(), "node-agent", "agent");
    let new = new.to_str().unwrap();
    let plan = cli(
        &env,
        dir.path(),
        &["adopt", "-f", new, "--dry-run", "-o", "json"],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let report: AdoptReportJson = parse(&plan);
    assert_eq!(report.kind, "AdoptReport");
    assert!(report.plan.predecessor.is_none());
    assert_eq!(
        report
            .plan
            .pods
            .iter()
            .filter(|p| p.fate == "Adopt")
            .count(),
        3
    );

    // adopt for real, from the backup.
    let out = cli(
        &env,
        dir.path(),
        &[
            "adopt",
            "-f",
            new,
            "--from-backup",
            backup,
            "--yes",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report: AdoptReportJson = parse(&out);
    assert_eq!(
        report.plan.predecessor.as_ref().map(|p| p.source.as_str()),
        Some("backup")
    );
    let result = report.result.unwrap();
    assert!(result.verified && result.adopted.len() == 3 && result.unexpected_restarts.is_empty());
    assert_migrated(&env, "node-agent", "agent", &before).await;
    // Again: it exists, created from this manifest: only verified.
    let again = cli(
        &env,
        dir.path(),
        &["adopt", "-f", new, "--from-backup", backup, "-o", "json"],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: AdoptReportJson = parse(&again);
    assert!(report.resumed);
}

/// Runs kubectl-ds on a pseudo-terminal (util-linux `script`), typing `answer` at the prompt.
fn on_a_terminal(env: &TestEnv, dir: &Path, args: &[&str], answer: &str) -> Output {
    let mut line = vec![env!("CARGO_BIN_EXE_kubectl-ds").to_string()];
    line.extend(args.iter().map(|a| a.to_string()));
    line.extend(["-n".to_string(), env.ns.clone()]);
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .env_remove("KUBECTL_DS_FAILPOINT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Output::from(out)
}

#[tokio::test]
async fn on_a_terminal_it_asks_before_acting() {
    let mut env = TestEnv::new("wf-tty").await;
    nodes(&mut env, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 1).await;
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    let args = ["orphan", "agent", "--backup", "b.yaml"];

    let declined = on_a_terminal(&env, dir.path(), &args, "n\n");
    assert_eq!(declined.code, 6, "{}", declined.stdout);
    assert!(
        declined.stdout.contains("Proceed? [y/N]"),
        "{}",
        declined.stdout
    );
    assert!(
        declined.stdout.contains("declined at the prompt"),
        "{}",
        declined.stdout
    );
    assert!(!dir.path().join("b.yaml").exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    let accepted = on_a_terminal(&env, dir.path(), &args, "y\n");
    assert_eq!(accepted.code, 0, "{}", accepted.stdout);
    assert!(dir.path().join("b.yaml").exists());
    assert!(get_ds(&env, "agent").await.is_none());
    let now = pods_of(&env, "agent").await;
    assert_eq!(now.keys().collect::<BTreeSet<_>>(), before.keys().collect());
    assert!(now.values().all(|(_, owner)| owner.is_none()));
}
