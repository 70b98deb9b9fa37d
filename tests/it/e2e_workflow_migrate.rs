//! `migrate` against the real control plane: the real garbage collector orphans, the real
//! DaemonSet controller adopts, and every pod keeps its UID; refused when unsafe, resumed after
//! an interruption or a SIGKILL, and in place (same name, new selector).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{kubeconfig, wait_for, NodeSpec, TestEnv};
use crate::workflow_support::*;

#[tokio::test]
async fn migrate_to_a_new_name_and_selector_keeps_every_pod() {
    let mut env = TestEnv::new("wf-migrate").await;
    nodes(&mut env, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 3).await;
    let new = new_manifest_file(&env, dir.path(), "node-agent", "agent");
    let new = new.to_str().unwrap();

    // Plan only: every check passes, nothing changes, no backup yet.
    let plan = cli(
        &env,
        dir.path(),
        &["migrate", "agent", "-f", new, "--dry-run", "-o", "json"],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let report: MigrateReportJson = parse(&plan);
    assert_eq!(
        (report.api_version.as_str(), report.kind.as_str()),
        ("kubectl-ds/v1", "MigrateReport")
    );
    assert_eq!(
        (report.dry_run.as_str(), report.stage.as_str()),
        ("client", "Start")
    );
    assert!(report.result.is_none());
    let orphan = report.orphan.as_ref().unwrap();
    assert_eq!(orphan.pods.len(), 3);
    assert_eq!(orphan.revisions.len(), 1);
    assert!(report
        .adopt
        .pods
        .iter()
        .all(|p| p.fate == "Adopt" && p.from_predecessor));
    assert_eq!(report.adopt.template_generation, 2);
    assert!(report.adopt.revisions[0].matches_new_template && report.adopt.revisions[0].adopted);
    assert!(
        report.adopt.checks.iter().all(|c| c.verdict == "ok"),
        "{:#?}",
        report.adopt.checks
    );
    let backup = dir.path().join(format!("{}-agent.daemonset.yaml", env.ns));
    assert!(!backup.exists());

    // Server dry run: the apiserver accepts both mutations; nothing persists.
    let srv = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            new,
            "--dry-run=server",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(srv.code, 0, "{}", srv.stderr);
    let report: MigrateReportJson = parse(&srv);
    assert_eq!(report.server_dry_run.len(), 2);
    assert!(
        report.server_dry_run.iter().all(|r| r.accepted),
        "{:#?}",
        report.server_dry_run
    );
    assert!(get_ds(&env, "node-agent").await.is_none());
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    // For real.
    let run = cli(
        &env,
        dir.path(),
        &["migrate", "agent", "-f", new, "--yes", "-o", "json"],
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: MigrateReportJson = parse(&run);
    let result = report.result.expect("a result");
    let orphaned = result.orphan.expect("the orphan half");
    assert!(orphaned.verified && orphaned.daemon_set_gone && orphaned.owned_pods.is_empty());
    assert_eq!(orphaned.running.len(), 3);
    let adopted = result.adopt.expect("the adopt half");
    assert!(adopted.verified, "{adopted:#?}");
    assert_eq!(adopted.adopted.len(), 3);
    assert!(
        adopted.restarted.is_empty()
            && adopted.unexpected_restarts.is_empty()
            && adopted.created.is_empty()
    );
    assert_eq!(adopted.status.up_to_date, 3);
    let adopted_uids: BTreeSet<&String> = adopted.adopted.iter().map(|p| &p.uid).collect();
    assert_eq!(adopted_uids, before.keys().collect());
    assert!(
        get_ds(&env, "agent").await.is_none(),
        "the old DaemonSet is gone"
    );
    assert_migrated(&env, "node-agent", "agent", &before).await;

    // The backup is on disk and re-applies as it is.
    let text = std::fs::read_to_string(&backup).expect("backup written");
    assert!(text.contains("kubectl-ds-journal"));
    assert!(!text.contains("resourceVersion:") && !text.contains("status:"));
    let apply = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig().to_str().unwrap(),
            "create",
            "--dry-run=server",
            "-f",
        ])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );

    // Running it again finds the job done (stage Created) and verifies it.
    let again = cli(
        &env,
        dir.path(),
        &["migrate", "agent", "-f", new, "--yes", "-o", "json"],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: MigrateReportJson = parse(&again);
    assert_eq!(report.stage, "Created");
    assert!(report.result.unwrap().adopt.unwrap().verified);
}

#[tokio::test]
async fn unsafe_migrations_are_refused_before_anything_is_deleted() {
    let mut env = TestEnv::new("wf-refuse").await;
    env.node(
        "a",
        NodeSpec {
            labels: vec![("pool", "a")],
            ..Default::default()
        },
    )
    .await;
    env.node(
        "b",
        NodeSpec {
            labels: vec![("pool", "b")],
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    let backup = dir.path().join("backup.yaml");
    let backup = backup.to_str().unwrap();

    // A selector the pods do not match (the template gains a label the old pods lack).
    let mut missing = new_manifest(&env, "node-agent", "agent");
    missing["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "tier": "node"}});
    missing["spec"]["template"]["metadata"]["labels"]["tier"] = json!("node");
    // The same image change for every pod: a restart of each.
    let mut restart = new_manifest(&env, "node-agent", "agent");
    restart["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example/agent:2");
    // A narrower node selector: the pod on node b would be deleted.
    let mut narrower = new_manifest(&env, "node-agent", "agent");
    narrower["spec"]["template"]["spec"]["nodeSelector"]["pool"] = json!("a");

    for (file, manifest, code, flag) in [
        (
            "missing.yaml",
            &missing,
            "LeftBehind",
            "--allow-leftover-pods",
        ),
        ("restart.yaml", &restart, "Restarts", "--allow-restarts"),
        (
            "narrower.yaml",
            &narrower,
            "PodDeletion",
            "--allow-pod-deletion",
        ),
    ] {
        let path = write(dir.path(), file, manifest);
        let out = cli(
            &env,
            dir.path(),
            &[
                "migrate",
                "agent",
                "-f",
                path.to_str().unwrap(),
                "--backup",
                backup,
                "--yes",
                "-o",
                "json",
            ],
            &[],
        );
        assert_eq!(out.code, 6, "{file}: {}", out.stderr);
        let line = one_error_line(&out);
        assert!(line.contains(code) && line.contains(flag), "{file}: {line}");
        let report: MigrateReportJson = parse(&out);
        assert!(report.result.is_none());
        let check = report.adopt.checks.iter().find(|c| c.code == code).unwrap();
        assert_eq!(
            (check.verdict.as_str(), check.override_flag.as_deref()),
            ("block", Some(flag))
        );
        assert!(!check.pods.is_empty());
        assert!(
            !Path::new(backup).exists(),
            "{file}: no backup before the checks pass"
        );
        assert!(get_ds(&env, "node-agent").await.is_none());
        assert_untouched(&env, "agent", "agent", &old_uid, &before).await;
    }
    // The plan shows which node loses its pod, and which pods would be left behind.
    let path = write(dir.path(), "missing.yaml", &missing);
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            path.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(out.code, 6);
    assert!(
        out.stdout.contains("LeftBehind") && out.stdout.contains("a second pod beside it"),
        "{}",
        out.stdout
    );
    // Without --yes and without a terminal: refused, nothing changed.
    let ok = write(
        dir.path(),
        "ok.yaml",
        &new_manifest(&env, "node-agent", "agent"),
    );
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            ok.to_str().unwrap(),
            "--backup",
            backup,
        ],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(one_error_line(&out).contains("--yes"));
    assert!(!Path::new(backup).exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;
}

#[tokio::test]
async fn migrate_interrupted_after_each_step_finishes_when_run_again() {
    let mut env = TestEnv::new("wf-resume").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, step) in [
        "after-backup",
        "after-delete",
        "after-orphan",
        "after-create",
    ]
    .iter()
    .enumerate()
    {
        let app = format!("a{i}");
        let before = start_old(&env, &app, &app, 2).await;
        let new_name = format!("{app}-v2");
        let new = write(
            dir.path(),
            &format!("{app}.yaml"),
            &new_manifest(&env, &new_name, &app),
        );
        let new = new.to_str().unwrap();
        let args = ["migrate", app.as_str(), "-f", new, "--yes"];
        let killed = cli(&env, dir.path(), &args, &[("KUBECTL_DS_FAILPOINT", step)]);
        assert_eq!(killed.code, FAILPOINT_EXIT, "{step}: {}", killed.stderr);
        assert!(killed.stderr.contains(&format!("failpoint {step}")));
        let backup = dir.path().join(format!("{}-{app}.daemonset.yaml", env.ns));
        assert!(backup.exists(), "{step}: the backup is on disk");
        if *step == "after-backup" {
            assert!(get_ds(&env, &app)
                .await
                .is_some_and(|d| d.metadata.deletion_timestamp.is_none()));
        }
        if *step == "after-create" {
            assert!(get_ds(&env, &new_name).await.is_some());
        }
        // No pod was lost meanwhile: the same UIDs still run.
        let now = pods_of(&env, &app).await;
        assert_eq!(
            now.keys().collect::<BTreeSet<_>>(),
            before.keys().collect(),
            "{step}"
        );
        if *step == "after-orphan" {
            // The apiserver unreachable for the re-run: one line, exit 3, nothing changes.
            let unreachable = [
                &args[..],
                &["--server", "https://127.0.0.1:1", "--request-timeout", "2s"],
            ]
            .concat();
            let out = cli(&env, dir.path(), &unreachable, &[]);
            assert_eq!(out.code, 3, "{}", out.stderr);
            one_error_line(&out);
            assert!(get_ds(&env, &new_name).await.is_none());
        }

        let resumed = cli(
            &env,
            dir.path(),
            &[&args[..], &["-o", "json"]].concat(),
            &[],
        );
        assert_eq!(
            resumed.code, 0,
            "{step}: {}\n{}",
            resumed.stdout, resumed.stderr
        );
        let report: MigrateReportJson = parse(&resumed);
        let expected = match *step {
            "after-backup" => vec!["Start"],
            "after-delete" => vec!["Orphaning", "Orphaned"],
            "after-orphan" => vec!["Orphaned"],
            _ => vec!["Created"],
        };
        assert!(
            expected.contains(&report.stage.as_str()),
            "{step}: resumed at {}",
            report.stage
        );
        let adopt = report.result.unwrap().adopt.unwrap();
        assert!(
            adopt.verified && adopt.gone_since_backup.is_empty(),
            "{step}: {adopt:#?}"
        );
        assert_migrated(&env, &new_name, &app, &before).await;
    }
}

#[tokio::test]
async fn migrate_survives_sigkill() {
    let mut env = TestEnv::new("wf-kill").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();

    // Killed with SIGKILL while hanging right after the orphaning delete has finished.
    let before = start_old(&env, "k1", "k1", 2).await;
    let new = write(dir.path(), "k1.yaml", &new_manifest(&env, "k1-v2", "k1"));
    let args = ["migrate", "k1", "-f", new.to_str().unwrap(), "--yes"];
    let mut child = spawn(
        &env,
        dir.path(),
        &args,
        &[("KUBECTL_DS_FAILPOINT", "after-orphan:hang")],
    );
    let api = env.ds_api();
    wait_for(
        Duration::from_secs(60),
        "the old DaemonSet to be gone",
        || async { api.get_opt("k1").await.ok().flatten().is_none() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "killed by a signal, not exited: {status:?}"
    );
    let out = cli(
        &env,
        dir.path(),
        &[&args[..], &["-o", "json"]].concat(),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_migrated(&env, "k1-v2", "k1", &before).await;

    // Killed with SIGKILL at whatever point it reached when the delete was first seen.
    let before = start_old(&env, "k2", "k2", 2).await;
    let new = write(dir.path(), "k2.yaml", &new_manifest(&env, "k2-v2", "k2"));
    let args = ["migrate", "k2", "-f", new.to_str().unwrap(), "--yes"];
    let mut child = spawn(&env, dir.path(), &args, &[]);
    wait_for(Duration::from_secs(60), "the delete to start", || async {
        match api.get_opt("k2").await {
            Ok(Some(d)) => d.metadata.deletion_timestamp.is_some(),
            Ok(None) => true,
            Err(_) => false,
        }
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let out = cli(
        &env,
        dir.path(),
        &[&args[..], &["-o", "json"]].concat(),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: MigrateReportJson = parse(&out);
    eprintln!(
        "after a SIGKILL at a random point, the re-run resumed at stage {}",
        report.stage
    );
    assert_migrated(&env, "k2-v2", "k2", &before).await;
}

#[tokio::test]
async fn migrate_in_place_changes_the_selector_and_keeps_the_name() {
    let mut env = TestEnv::new("wf-inplace").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    // Same name, new selector (a subset of the pods' labels), same template.
    let new = write(
        dir.path(),
        "agent.yaml",
        &new_manifest(&env, "agent", "agent"),
    );
    let args = ["migrate", "agent", "-f", new.to_str().unwrap(), "--yes"];

    // The server dry run cannot create a second "agent" yet: it is sent with generateName.
    let srv = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            new.to_str().unwrap(),
            "--dry-run=server",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(srv.code, 0, "{}", srv.stderr);
    let report: MigrateReportJson = parse(&srv);
    assert!(report.server_dry_run.iter().all(|r| r.accepted));
    assert!(report.server_dry_run[1].operation.contains("generateName"));

    // Interrupted after the delete, then finished.
    let killed = cli(
        &env,
        dir.path(),
        &args,
        &[("KUBECTL_DS_FAILPOINT", "after-delete")],
    );
    assert_eq!(killed.code, FAILPOINT_EXIT, "{}", killed.stderr);
    let out = cli(
        &env,
        dir.path(),
        &[&args[..], &["-o", "json"]].concat(),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: MigrateReportJson = parse(&out);
    assert!(
        ["Orphaning", "Orphaned"].contains(&report.stage.as_str()),
        "{}",
        report.stage
    );
    let ds = get_ds(&env, "agent").await.unwrap();
    assert_ne!(
        ds.metadata.uid.as_deref(),
        Some(old_uid.as_str()),
        "a new object"
    );
    assert_eq!(
        ds.spec
            .unwrap()
            .selector
            .match_labels
            .unwrap()
            .get("component")
            .map(String::as_str),
        Some("agent-node")
    );
    assert_migrated(&env, "agent", "agent", &before).await;
    // Run again: recognised as done (the marker names the old UID), not migrated a second time.
    let again = cli(
        &env,
        dir.path(),
        &[&args[..], &["-o", "json"]].concat(),
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: MigrateReportJson = parse(&again);
    assert_eq!(report.stage, "Created");
    assert_eq!(
        get_ds(&env, "agent").await.unwrap().metadata.uid,
        ds.metadata.uid,
        "the same DaemonSet"
    );
}
