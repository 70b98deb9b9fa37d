//! The orphaning workflows against what real clusters throw at them (issue 11): another
//! controller that would adopt the orphans, a DaemonSet owned by Helm or Argo CD, a reconciler
//! that recreates the old DaemonSet mid-run, a foreign finalizer, a pod lost mid-run, two
//! runs at once, and an admission policy that rejects the server dry run made before acting.
//! Each asserts the exit code, the message, and the pods' UIDs before and after.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::harness::{wait_for, Output, TestEnv, TEST_LABEL};
use crate::workflow_support::{
    assert_migrated, assert_untouched, cli, command, get_ds, new_manifest, new_manifest_file,
    nodes, old_manifest, one_error_line, parse, pods_of, start_old, write, CheckJson,
    MigrateReportJson, OrphanReportJson, FAILPOINT_EXIT,
};

fn check<'a>(checks: &'a [CheckJson], code: &str) -> &'a CheckJson {
    checks
        .iter()
        .find(|c| c.code == code)
        .unwrap_or_else(|| panic!("no check {code}: {checks:#?}"))
}

fn lease_api(env: &TestEnv) -> Api<Lease> {
    Api::namespaced(env.client.clone(), &env.ns)
}

async fn old_uid(env: &TestEnv, name: &str) -> String {
    get_ds(env, name).await.unwrap().metadata.uid.unwrap()
}

/// A workload manifest (ReplicaSet or Deployment) with zero replicas selecting `app`.
fn zero_replicas(env: &TestEnv, kind: &str, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": env.ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "nodeSelector": {TEST_LABEL: env.ns},
                    "containers": [{"name": "web", "image": "registry.example/web:1"}]
                }
            }
        }
    })
}

#[tokio::test]
async fn a_replica_set_that_would_take_the_orphans_blocks_orphan_and_migrate() {
    let mut env = TestEnv::new("wf-compete").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let uid = old_uid(&env, "agent").await;

    // The reproduction from the issue: a bare ReplicaSet, replicas 0, matching selector. It
    // adopts orphans the moment they have no controller and deletes them down to 0.
    let rs_api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.ns);
    let bare: ReplicaSet =
        serde_json::from_value(zero_replicas(&env, "ReplicaSet", "thief", "agent")).unwrap();
    rs_api.create(&PostParams::default(), &bare).await.unwrap();
    // A Deployment selecting app=agent too: the ReplicaSet it makes selects
    // pod-template-hash as well, which no DaemonSet pod carries, so it does not compete.
    let dep_api: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let dep: Deployment =
        serde_json::from_value(zero_replicas(&env, "Deployment", "web", "agent")).unwrap();
    dep_api.create(&PostParams::default(), &dep).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "the Deployment's ReplicaSet",
        || async {
            rs_api
                .list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.len() == 2)
        },
    )
    .await;

    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let new = new.to_str().unwrap();
    let plan = cli(
        &env,
        dir.path(),
        &["migrate", "agent", "-f", new, "--dry-run", "-o", "json"],
        &[],
    );
    assert_eq!(plan.code, 6, "{}", plan.stderr);
    let report: MigrateReportJson = parse(&plan);
    let c = check(
        &report.orphan.as_ref().unwrap().checks,
        "CompetingController",
    );
    assert_eq!(c.verdict, "block");
    assert_eq!(
        c.override_flag.as_deref(),
        Some("--allow-competing-controllers")
    );
    assert!(
        c.message.contains("replicaset/thief selects 2 of them"),
        "{}",
        c.message
    );
    assert!(
        !c.message.contains("web-"),
        "the Deployment's ReplicaSet cannot match: {}",
        c.message
    );
    assert_eq!(c.pods.len(), 2);

    for args in [
        vec!["migrate", "agent", "-f", new, "--yes"],
        vec!["orphan", "agent", "--yes"],
    ] {
        let out = cli(&env, dir.path(), &args, &[]);
        assert_eq!(out.code, 6, "{args:?}: {}", out.stderr);
        let line = one_error_line(&out);
        assert!(
            line.contains("CompetingController")
                && line.contains("replicaset/thief")
                && line.contains("(use --allow-competing-controllers to proceed anyway)")
                && line.contains("nothing was changed"),
            "{line}"
        );
        assert_untouched(&env, "agent", "agent", &uid, &before).await;
    }
    assert!(get_ds(&env, "agent-v2").await.is_none());
    assert!(
        !dir.path()
            .join(format!("{}-agent.daemonset.yaml", env.ns))
            .exists(),
        "no backup: nothing was started"
    );
    // The --yes runs took the lock and gave it back.
    assert!(lease_api(&env)
        .get_opt("kubectl-ds-migrate-agent")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn helm_and_argo_cd_owned_daemon_sets_are_refused_with_hand_off_steps() {
    let mut env = TestEnv::new("wf-owners").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();

    let mut helm = old_manifest(&env, "helm-agent", "helm-agent");
    helm["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "Helm"});
    helm["metadata"]["annotations"] = json!({
        "meta.helm.sh/release-name": "logging",
        "meta.helm.sh/release-namespace": env.ns,
    });
    env.create_ds(helm).await;
    let mut argo = old_manifest(&env, "argo-agent", "argo-agent");
    argo["metadata"]["annotations"] = json!({
        "argocd.argoproj.io/tracking-id": format!("infra:apps/DaemonSet:{}/argo-agent", env.ns)
    });
    env.create_ds(argo).await;
    env.wait_rolled_out("helm-agent", 2).await;
    env.wait_rolled_out("argo-agent", 2).await;
    let helm_before = pods_of(&env, "helm-agent").await;
    let argo_before = pods_of(&env, "argo-agent").await;
    let helm_uid = old_uid(&env, "helm-agent").await;
    let argo_uid = old_uid(&env, "argo-agent").await;

    // Helm, table output: the plan lists the hand-off, the error names the flag.
    let new = write(
        dir.path(),
        "h.yaml",
        &new_manifest(&env, "helm-agent-v2", "helm-agent"),
    );
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "helm-agent",
            "-f",
            new.to_str().unwrap(),
            "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("OwnerOfRecord")
            && line.contains(&format!("Helm release logging (namespace {})", env.ns))
            && line.contains("(use --allow-managed to proceed anyway)"),
        "{line}"
    );
    assert!(
        out.stdout.contains("Hand-off (OwnerOfRecord):"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("meta.helm.sh/release-name=logging")
            && out.stdout.contains("helm-agent-v2"),
        "{}",
        out.stdout
    );
    assert_untouched(&env, "helm-agent", "helm-agent", &helm_uid, &helm_before).await;

    // Argo CD, JSON: the check carries the hand-off steps; orphan refuses the same way.
    let new = write(
        dir.path(),
        "a.yaml",
        &new_manifest(&env, "argo-agent-v2", "argo-agent"),
    );
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "argo-agent",
            "-f",
            new.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        one_error_line(&out).contains("Argo CD application infra"),
        "{}",
        out.stderr
    );
    let report: MigrateReportJson = parse(&out);
    let c = check(&report.orphan.as_ref().unwrap().checks, "OwnerOfRecord");
    assert_eq!(
        (c.verdict.as_str(), c.override_flag.as_deref()),
        ("block", Some("--allow-managed"))
    );
    assert!(
        c.handoff
            .iter()
            .any(|s| s.contains("argocd app set infra --sync-policy none")),
        "{:#?}",
        c.handoff
    );
    let out = cli(
        &env,
        dir.path(),
        &["orphan", "argo-agent", "--yes", "-o", "json"],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    let report: OrphanReportJson = parse(&out);
    assert_eq!(check(&report.plan.checks, "OwnerOfRecord").verdict, "block");
    assert_untouched(&env, "argo-agent", "argo-agent", &argo_uid, &argo_before).await;
}

/// Recreates `old` (from `manifest`) whenever it is missing once every pod of `before` is
/// controlled by `new_name` — as Argo CD's self-heal or an operator would, mid-run.
fn spawn_reconciler(
    env: &TestEnv,
    manifest: Value,
    new_name: &'static str,
    app: &'static str,
    before: BTreeSet<String>,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let api: Api<DaemonSet> = env.ds_api();
    let pods = env.pod_api();
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut recreated = 0;
        let old: DaemonSet = serde_json::from_value(manifest).unwrap();
        let name = old.metadata.name.clone().unwrap();
        while !flag.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(Some(new)) = api.get_opt(new_name).await else {
                continue;
            };
            let new_uid = new.metadata.uid.unwrap_or_default();
            let Ok(list) = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
            else {
                continue;
            };
            let adopted = before.iter().all(|uid| {
                list.items.iter().any(|p| {
                    p.metadata.uid.as_ref() == Some(uid)
                        && p.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|r| r.controller == Some(true) && r.uid == new_uid)
                })
            });
            if adopted
                && matches!(api.get_opt(&name).await, Ok(None))
                && api.create(&PostParams::default(), &old).await.is_ok()
            {
                recreated += 1;
            }
        }
        recreated
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_recreating_the_old_daemon_set_is_reported_not_success() {
    let mut env = TestEnv::new("wf-recreate").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut old = old_manifest(&env, "agent", "agent");
    old["metadata"]["annotations"] = json!({
        "argocd.argoproj.io/tracking-id": format!("infra:apps/DaemonSet:{}/agent", env.ns)
    });
    env.create_ds(old.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let before = pods_of(&env, "agent").await;
    let uids: BTreeSet<String> = before.keys().cloned().collect();
    let (stop, task) = spawn_reconciler(&env, old, "agent-v2", "agent", uids.clone());

    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            new.to_str().unwrap(),
            "--yes",
            "--allow-managed",
            "--watch-recreate",
            "30s",
            "-o",
            "json",
        ],
        &[],
    );
    stop.store(true, Ordering::SeqCst);
    let recreated = task.await.unwrap();
    assert_eq!(out.code, 8, "{}", out.stderr);
    assert!(recreated >= 1);
    let line = one_error_line(&out);
    assert!(
        line.contains("reappeared") && line.contains("agent-v2"),
        "{line}"
    );
    let report: MigrateReportJson = parse(&out);
    let result = report.result.as_ref().unwrap();
    assert!(result.adopt.as_ref().unwrap().verified);
    let again = result.recreated.as_ref().expect("result.recreated");
    assert_eq!(again.name, "agent");
    assert_ne!(again.uid, report.orphan.as_ref().unwrap().daemon_set.uid);

    // No pod was lost: every original UID runs, controlled by the new DaemonSet (the recreated
    // one starts pods of its own beside them: the duplicates the exit code reports).
    let new_uid = get_ds(&env, "agent-v2")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let now = pods_of(&env, "agent").await;
    for uid in &uids {
        let (node, owner) = now
            .get(uid)
            .unwrap_or_else(|| panic!("pod {uid} lost: {now:#?}"));
        assert_eq!(
            owner.as_deref(),
            Some(new_uid.as_str()),
            "pod {uid} on {node}"
        );
    }
    env.ds_api()
        .delete("agent", &Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_foreign_finalizer_on_the_old_daemon_set_does_not_stall_the_migration() {
    let mut env = TestEnv::new("wf-finalizer").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut old = old_manifest(&env, "agent", "agent");
    old["metadata"]["finalizers"] = json!(["example.com/hold"]);
    env.create_ds(old).await;
    env.wait_rolled_out("agent", 2).await;
    let before = pods_of(&env, "agent").await;
    let old_uid = old_uid(&env, "agent").await;

    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let args = [
        "migrate",
        "agent",
        "-f",
        new.to_str().unwrap(),
        "--yes",
        "--timeout",
        "60s",
        "-o",
        "json",
    ];
    let out = cli(&env, dir.path(), &args, &[]);
    // Cleaned up whatever happened.
    let unhold = json!({"metadata": {"finalizers": null}});
    let release = || async {
        let _ = env
            .ds_api()
            .patch("agent", &PatchParams::default(), &Patch::Merge(&unhold))
            .await;
    };
    if out.code != 0 {
        release().await;
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("kept only by finalizer(s) example.com/hold"),
        "{}",
        out.stderr
    );
    let report: MigrateReportJson = parse(&out);
    let orphan = report.result.as_ref().unwrap().orphan.as_ref().unwrap();
    assert!(orphan.verified && !orphan.daemon_set_gone);
    assert_eq!(
        orphan.held_by_finalizers,
        vec!["example.com/hold".to_string()]
    );
    assert_migrated(&env, "agent-v2", "agent", &before).await;
    let held = get_ds(&env, "agent").await.expect("kept by its finalizer");
    assert_eq!(held.metadata.uid.as_deref(), Some(old_uid.as_str()));
    assert!(held.metadata.deletion_timestamp.is_some());

    // Run again: the held old object does not look like a migration still to do.
    let again = cli(&env, dir.path(), &args, &[]);
    release().await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(parse::<MigrateReportJson>(&again).stage, "Created");
    wait_for(
        Duration::from_secs(30),
        "the old DaemonSet to go",
        || async { get_ds(&env, "agent").await.is_none() },
    )
    .await;
    assert_migrated(&env, "agent-v2", "agent", &before).await;
}

#[tokio::test]
async fn a_planned_pod_lost_mid_run_is_not_success_whatever_the_allow_flags() {
    let mut env = TestEnv::new("wf-lost").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let args = [
        "migrate",
        "agent",
        "-f",
        new.to_str().unwrap(),
        "--yes",
        "--allow-restarts",
        "--allow-pod-deletion",
        "--allow-leftover-pods",
    ];
    let out = cli(
        &env,
        dir.path(),
        &args,
        &[("KUBECTL_DS_FAILPOINT", "after-orphan")],
    );
    assert_eq!(out.code, FAILPOINT_EXIT, "{}", out.stderr);
    // While the pods are orphaned, one of them is deleted.
    let victim = env.pods("agent").await.into_iter().next().unwrap();
    let victim_name = victim.metadata.name.clone().unwrap();
    env.pod_api()
        .delete(&victim_name, &Default::default())
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the pod to be gone", || async {
        env.pod_api()
            .get_opt(&victim_name)
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;

    let out = cli(&env, dir.path(), &args, &[]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("gone since the backup") && line.contains(&victim_name),
        "{line}"
    );
    // The other pod was adopted with its UID unchanged.
    let new_uid = get_ds(&env, "agent-v2")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let now = pods_of(&env, "agent").await;
    let kept: Vec<_> = before
        .keys()
        .filter(|u| Some(u.as_str()) != victim.metadata.uid.as_deref())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        now.get(kept[0]).and_then(|(_, o)| o.as_deref()),
        Some(new_uid.as_str())
    );
}

#[tokio::test]
async fn two_concurrent_migrations_one_is_refused_and_no_pod_is_split() {
    let mut env = TestEnv::new("wf-twice").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let a = write(
        dir.path(),
        "a.yaml",
        &new_manifest(&env, "agent-a", "agent"),
    );
    let b = write(
        dir.path(),
        "b.yaml",
        &new_manifest(&env, "agent-b", "agent"),
    );
    let run = |file: &std::path::Path, backup: &str| {
        command(
            &env,
            dir.path(),
            &[
                "migrate",
                "agent",
                "-f",
                file.to_str().unwrap(),
                "--backup",
                backup,
                "--yes",
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl-ds")
    };
    let first = run(&a, "a.backup.yaml");
    let second = run(&b, "b.backup.yaml");
    let outs: Vec<Output> = [first, second]
        .into_iter()
        .map(|c| Output::from(c.wait_with_output().unwrap()))
        .collect();
    let codes: BTreeSet<i32> = outs.iter().map(|o| o.code).collect();
    assert_eq!(
        codes,
        BTreeSet::from([0, 6]),
        "{:#?}",
        outs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
    );
    let (winner, loser) = if outs[0].code == 0 {
        ("agent-a", &outs[1])
    } else {
        ("agent-b", &outs[0])
    };
    let line = one_error_line(loser);
    assert!(
        line.contains("is being changed by another run")
            && line.contains(&format!("lease {}/kubectl-ds-migrate-agent", env.ns))
            && line.contains("held by kubectl-ds on host"),
        "{line}"
    );
    let other = if winner == "agent-a" {
        "agent-b"
    } else {
        "agent-a"
    };
    assert!(
        get_ds(&env, other).await.is_none(),
        "the refused run created nothing"
    );
    assert_migrated(&env, winner, "agent", &before).await;
    assert!(
        lease_api(&env)
            .get_opt("kubectl-ds-migrate-agent")
            .await
            .unwrap()
            .is_none(),
        "released"
    );
}

/// A Lease time as the apiserver wants it (MicroTime: microseconds).
fn micro(t: k8s_openapi::jiff::Timestamp) -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(t)).unwrap()
}

#[tokio::test]
async fn a_lease_held_elsewhere_refuses_until_it_expires() {
    let mut env = TestEnv::new("wf-lease").await;
    nodes(&mut env, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 1).await;
    let uid = old_uid(&env, "agent").await;
    // Another host's run holds the lock, renewed a moment ago.
    let now = k8s_openapi::jiff::Timestamp::now();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "kubectl-ds-migrate-agent", "namespace": env.ns},
        "spec": {
            "holderIdentity": "kubectl-ds:ci-runner-7:4242:ab12",
            "leaseDurationSeconds": 30,
            "renewTime": micro(now)
        }
    }))
    .unwrap();
    let leases = lease_api(&env);
    leases.create(&PostParams::default(), &lease).await.unwrap();

    let out = cli(&env, dir.path(), &["orphan", "agent", "--yes"], &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("held by kubectl-ds on host ci-runner-7 (pid 4242)")
            && line.contains("nothing was changed"),
        "{line}"
    );
    assert_untouched(&env, "agent", "agent", &uid, &before).await;
    // Plans change nothing and take no lock.
    let plan = cli(&env, dir.path(), &["orphan", "agent", "--dry-run"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);

    // It expired (renewed 31 s ago, for 30 s): taken over, and released at the end.
    let stale = micro(now - k8s_openapi::jiff::SignedDuration::from_secs(31));
    let patch = json!({"spec": {"renewTime": stale}});
    leases
        .patch(
            "kubectl-ds-migrate-agent",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let out = cli(&env, dir.path(), &["orphan", "agent", "--yes"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("taking over lease") && out.stderr.contains("(expired)"),
        "{}",
        out.stderr
    );
    let now_pods = pods_of(&env, "agent").await;
    assert_eq!(
        now_pods.keys().collect::<BTreeSet<_>>(),
        before.keys().collect::<BTreeSet<_>>(),
        "the orphaned pods keep running"
    );
    assert!(leases
        .get_opt("kubectl-ds-migrate-agent")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_recreated_while_its_pods_are_orphaned_stops_before_the_create() {
    let mut env = TestEnv::new("wf-recreate-early").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut old = old_manifest(&env, "agent", "agent");
    old["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "infra"});
    env.create_ds(old.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let before = pods_of(&env, "agent").await;
    // A reconciler that recreates it the moment it is gone (Flux with a short interval).
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let api = env.ds_api();
    let manifest: DaemonSet = serde_json::from_value(old).unwrap();
    let task = tokio::spawn(async move {
        let mut recreated = 0;
        while !flag.load(Ordering::SeqCst) {
            if matches!(api.get_opt("agent").await, Ok(None))
                && api.create(&PostParams::default(), &manifest).await.is_ok()
            {
                recreated += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        recreated
    });

    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate",
            "agent",
            "-f",
            new.to_str().unwrap(),
            "--yes",
            "--allow-managed",
        ],
        // Two seconds between the orphaning and the re-plan, for the reconciler (which looks
        // every 100 ms) to recreate it however loaded the machine is: without the window the
        // migration may win the race and create agent-v2, which is not what is tested here.
        &[("KUBECTL_DS_FAILPOINT", "after-orphan:sleep=2000")],
    );
    stop.store(true, Ordering::SeqCst);
    assert!(task.await.unwrap() >= 1, "{}", out.stderr);
    assert_eq!(out.code, 8, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("reappeared during the migration")
            && line.contains("agent-v2 was not created"),
        "{line}"
    );
    assert!(get_ds(&env, "agent-v2").await.is_none());
    // No pod lost: the recreated DaemonSet adopted the orphans (and deletes any extra pod it
    // started meanwhile, keeping the oldest per node).
    let recreated_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    wait_for(
        Duration::from_secs(60),
        "the recreated DaemonSet to hold the pods",
        || async {
            let now = pods_of(&env, "agent").await;
            before.keys().all(|uid| {
                now.get(uid)
                    .is_some_and(|(_, owner)| owner.as_deref() == Some(recreated_uid.as_str()))
            })
        },
    )
    .await;
}

/// Cluster-scoped admission objects a test creates, deleted when it ends (even when it fails).
struct AdmissionPolicy(String);

impl Drop for AdmissionPolicy {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = crate::e2e_rollout_preview::kubectl(&[
                "delete",
                kind,
                &self.0,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
    }
}

/// With `--yes`, every mutation is sent with dryRun=All before anything is changed: an
/// admission policy that forbids deleting the DaemonSet (a ValidatingAdmissionPolicy on
/// DELETE, this test's namespace only) makes orphan and migrate refuse with the apiserver's
/// message (exit 5) before the backup is written, the lease is left behind or a pod changes.
#[tokio::test]
async fn a_rejected_server_dry_run_refuses_before_anything_changes() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let mut env = TestEnv::new("wf-dryrun").await;
    nodes(&mut env, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 1).await;
    let uid = old_uid(&env, "agent").await;
    let name = format!("kds-freeze-{}", env.ns);
    let _cleanup = AdmissionPolicy(name.clone());
    let scope = json!({"matchLabels": {"kubernetes.io/metadata.name": env.ns}});
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": scope,
                "resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["DELETE"], "resources": ["daemonsets"]}]
            },
            "validations": [{"expression": "oldObject.metadata.name != 'agent'",
                "message": "daemonset agent is frozen by policy"}]
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": scope}}
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
        .create(&pp, &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
        .create(&pp, &binding)
        .await
        .unwrap();
    // The apiserver applies a new policy within a second or so: wait until a dry-run delete
    // is denied.
    let ds_api = env.ds_api();
    let dry = kube::api::DeleteParams {
        dry_run: true,
        ..kube::api::DeleteParams::orphan()
    };
    wait_for(Duration::from_secs(30), "the policy to be in force", || async {
        matches!(ds_api.delete("agent", &dry).await, Err(kube::Error::Api(s)) if s.code == 422 || s.code == 403)
    })
    .await;

    let new = new_manifest_file(&env, dir.path(), "agent-v2", "agent");
    let runs: [Vec<&str>; 2] = [
        vec!["orphan", "agent", "--backup", "b.yaml", "--yes"],
        vec![
            "migrate",
            "agent",
            "-f",
            new.to_str().unwrap(),
            "--backup",
            "b.yaml",
            "--yes",
        ],
    ];
    for args in runs {
        let out = cli(&env, dir.path(), &args, &[]);
        assert_eq!(out.code, 5, "{args:?}: {}", out.stderr);
        let line = one_error_line(&out);
        assert!(
            line.contains("server dry run rejected, nothing was changed")
                && line.contains("daemonset agent is frozen by policy"),
            "{line}"
        );
        assert!(
            !dir.path().join("b.yaml").exists(),
            "{args:?}: no backup is written before the dry run passed"
        );
        assert!(
            get_ds(&env, "agent-v2").await.is_none(),
            "{args:?}: nothing created"
        );
        assert!(
            lease_api(&env)
                .get_opt("kubectl-ds-migrate-agent")
                .await
                .unwrap()
                .is_none(),
            "{args:?}: the lease is released"
        );
        assert_untouched(&env, "agent", "agent", &uid, &before).await;
    }
}
