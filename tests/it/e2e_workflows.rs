//! `orphan`, `adopt` and `migrate` against the real control plane: the real garbage collector
//! orphans, the real DaemonSet controller adopts, and every pod keeps its UID. The JSON reports
//! are parsed into strict structs (unknown fields fail), so a schema change fails a test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{kubeconfig, wait_for, NodeSpec, Output, TestEnv, TEST_LABEL};

// ------------------------------------------------------------------------------------------
// The JSON contract, strictly.

pub(crate) use schema::*;

/// The report schema. Every field is declared so that an unknown or missing one fails; many are
/// only there to be checked, not read.
#[allow(dead_code)]
pub(crate) mod schema {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct CheckJson {
        pub code: String,
        pub verdict: String,
        pub message: String,
        #[serde(default)]
        pub override_flag: Option<String>,
        #[serde(default)]
        pub overridden: bool,
        #[serde(default)]
        pub pods: Vec<String>,
        #[serde(default)]
        pub handoff: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PodPlanJson {
        pub name: String,
        pub uid: String,
        pub node: Option<String>,
        pub revision_hash: Option<String>,
        pub template_generation: Option<String>,
        pub fate: String,
        pub detail: Option<String>,
        pub from_predecessor: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct RevisionPlanJson {
        pub name: String,
        pub uid: String,
        pub revision: i64,
        pub hash: String,
        pub matches_new_template: bool,
        pub adopted: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ObjectRefJson {
        pub namespace: String,
        pub name: String,
        #[serde(default)]
        pub uid: Option<String>,
        #[serde(default)]
        pub resource_version: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PredecessorJson {
        pub name: String,
        pub uid: Option<String>,
        pub source: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AdoptPlanJson {
        pub daemon_set: ObjectRefJson,
        pub predecessor: Option<PredecessorJson>,
        pub steps: Vec<String>,
        pub pods: Vec<PodPlanJson>,
        pub revisions: Vec<RevisionPlanJson>,
        pub new_nodes: Vec<String>,
        pub desired: usize,
        pub template_generation: i64,
        pub checks: Vec<CheckJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PodOutcomeJson {
        pub name: String,
        pub uid: String,
        pub node: Option<String>,
        #[serde(default)]
        pub replaced_by: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct StatusJson {
        pub desired: i32,
        pub current: i32,
        pub ready: i32,
        pub up_to_date: i32,
        pub available: i32,
        pub misscheduled: i32,
        pub observed: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct RecordJson {
        pub name: String,
        pub uid: String,
        #[serde(default)]
        pub node: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AdoptResultJson {
        pub verified: bool,
        pub daemon_set: ObjectRefJson,
        pub adopted: Vec<PodOutcomeJson>,
        pub restarted: Vec<PodOutcomeJson>,
        pub unexpected_restarts: Vec<PodOutcomeJson>,
        pub deleted: Vec<PodOutcomeJson>,
        pub created: Vec<PodOutcomeJson>,
        pub lost: Vec<PodOutcomeJson>,
        pub duplicates: Vec<String>,
        pub waiting_for: Vec<String>,
        pub status: StatusJson,
        pub gone_since_backup: Vec<RecordJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct OrphanResultJson {
        pub verified: bool,
        pub backup: String,
        pub daemon_set_gone: bool,
        #[serde(default)]
        pub held_by_finalizers: Vec<String>,
        pub owned_pods: Vec<String>,
        pub owned_revisions: Vec<String>,
        pub running: Vec<PodOutcomeJson>,
        pub gone: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct OrphanPodJson {
        pub name: String,
        pub uid: String,
        pub node: Option<String>,
        pub ready: bool,
        pub revision_hash: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct OrphanRevisionJson {
        pub name: String,
        pub uid: String,
        pub revision: i64,
        pub hash: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct OrphanPlanJson {
        pub daemon_set: ObjectRefJson,
        pub backup: String,
        pub steps: Vec<String>,
        pub pods: Vec<OrphanPodJson>,
        pub revisions: Vec<OrphanRevisionJson>,
        pub checks: Vec<CheckJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ServerDryRunJson {
        pub operation: String,
        pub accepted: bool,
        pub detail: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct OrphanReportJson {
        pub api_version: String,
        pub kind: String,
        pub dry_run: String,
        pub plan: OrphanPlanJson,
        pub server_dry_run: Vec<ServerDryRunJson>,
        pub result: Option<OrphanResultJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AdoptReportJson {
        pub api_version: String,
        pub kind: String,
        pub dry_run: String,
        pub resumed: bool,
        pub plan: AdoptPlanJson,
        pub server_dry_run: Vec<ServerDryRunJson>,
        pub result: Option<AdoptResultJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct MigrateResultJson {
        pub orphan: Option<OrphanResultJson>,
        pub adopt: Option<AdoptResultJson>,
        #[serde(default)]
        pub recreated: Option<ObjectRefJson>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct MigrateReportJson {
        pub api_version: String,
        pub kind: String,
        pub dry_run: String,
        pub stage: String,
        pub backup: String,
        pub orphan: Option<OrphanPlanJson>,
        pub adopt: AdoptPlanJson,
        pub server_dry_run: Vec<ServerDryRunJson>,
        pub result: Option<MigrateResultJson>,
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(o: &Output) -> T {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "report JSON does not match the schema: {e}\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        )
    })
}

// ------------------------------------------------------------------------------------------
// Helpers.

/// The failpoint exit code (documented as test-only).
pub(crate) const FAILPOINT_EXIT: i32 = 99;

pub(crate) fn command(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"));
    cmd.args(args)
        .args(["-n", &env.ns])
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .env_remove("KUBECTL_DS_FAILPOINT")
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs kubectl-ds in `dir` (where relative backup paths land) in the test's namespace.
pub(crate) fn cli(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let out = command(env, dir, args, vars)
        .output()
        .expect("run kubectl-ds");
    Output::from(out)
}

pub(crate) fn spawn(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Child {
    command(env, dir, args, vars)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl-ds")
}

/// The error lines of a failed run: exactly one `error: ...` (plus an optional hint).
pub(crate) fn one_error_line(o: &Output) -> String {
    let lines: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line: {}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    lines[0].to_string()
}

/// The old DaemonSet: selector {app, release}; its template adds component=<app>-node, which
/// the new selector uses.
pub(crate) fn old_manifest(env: &TestEnv, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": env.ns},
        "spec": {
            "selector": {"matchLabels": {"app": app, "release": "r1"}},
            "template": {
                "metadata": {"labels": {"app": app, "release": "r1", "component": format!("{app}-node")}},
                "spec": {
                    "nodeSelector": {TEST_LABEL: env.ns},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "agent", "image": "registry.example/agent:1"}]
                }
            }
        }
    })
}

/// The new DaemonSet: another name, the compatible selector component=<app>-node, the same
/// template.
pub(crate) fn new_manifest(env: &TestEnv, name: &str, app: &str) -> Value {
    let mut m = old_manifest(env, name, app);
    m["spec"]["selector"] = json!({"matchLabels": {"component": format!("{app}-node")}});
    m
}

/// The new DaemonSet's manifest (see [`new_manifest`]) written to `dir/new.yaml`.
pub(crate) fn new_manifest_file(env: &TestEnv, dir: &Path, name: &str, app: &str) -> PathBuf {
    write(dir, "new.yaml", &new_manifest(env, name, app))
}

pub(crate) fn write(dir: &Path, file: &str, v: &Value) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

pub(crate) fn controller_uid(
    p: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    p.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// Live (non-terminating) pods of `app`: uid -> (node, controller uid).
pub(crate) async fn pods_of(
    env: &TestEnv,
    app: &str,
) -> BTreeMap<String, (String, Option<String>)> {
    env.pods(app)
        .await
        .into_iter()
        .filter(|p: &Pod| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (
                p.metadata.uid.clone().unwrap(),
                (node, controller_uid(&p.metadata)),
            )
        })
        .collect()
}

/// Creates the old DaemonSet, waits for it, and returns its pods' UIDs by node.
pub(crate) async fn start_old(
    env: &TestEnv,
    name: &str,
    app: &str,
    nodes: i32,
) -> BTreeMap<String, (String, Option<String>)> {
    env.create_ds(old_manifest(env, name, app)).await;
    env.wait_rolled_out(name, nodes).await;
    let before = pods_of(env, app).await;
    assert_eq!(before.len(), nodes as usize);
    before
}

/// Every pod of `before` runs with the same UID, controlled by `new_name`; one pod per node;
/// the new DaemonSet counts all of them up to date; its revisions are its own.
pub(crate) async fn assert_migrated(
    env: &TestEnv,
    new_name: &str,
    app: &str,
    before: &BTreeMap<String, (String, Option<String>)>,
) {
    let ds = env
        .ds_api()
        .get(new_name)
        .await
        .expect("the new DaemonSet exists");
    let uid = ds.metadata.uid.clone().unwrap();
    let after = pods_of(env, app).await;
    let before_uids: BTreeSet<&String> = before.keys().collect();
    let after_uids: BTreeSet<&String> = after.keys().collect();
    assert_eq!(
        after_uids, before_uids,
        "the same pods (UIDs) before and after"
    );
    let nodes: BTreeSet<&String> = after.values().map(|(n, _)| n).collect();
    assert_eq!(nodes.len(), after.len(), "one pod per node, no duplicate");
    for (pod_uid, (node, owner)) in &after {
        assert_eq!(
            owner.as_deref(),
            Some(uid.as_str()),
            "pod {pod_uid} on {node} is controlled by {new_name}"
        );
    }
    let n = before.len() as i32;
    let api = env.ds_api();
    wait_for(
        Duration::from_secs(30),
        "the new DaemonSet counts every pod up to date",
        || async {
            let Ok(d) = api.get(new_name).await else {
                return false;
            };
            let st = d.status.unwrap_or_default();
            st.observed_generation == d.metadata.generation
                && st.desired_number_scheduled == n
                && st.current_number_scheduled == n
                && st.updated_number_scheduled == Some(n)
        },
    )
    .await;
    let ann = ds.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get("deprecated.daemonset.template.generation")
            .map(String::as_str),
        Some("2")
    );
    assert!(ann.contains_key("kubectl-ds.dev/adopted-from"));
    let revs: Api<ControllerRevision> = Api::namespaced(env.client.clone(), &env.ns);
    let revs = revs
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items;
    assert!(!revs.is_empty());
    for r in &revs {
        assert_eq!(
            controller_uid(&r.metadata).as_deref(),
            Some(uid.as_str()),
            "revision adopted"
        );
    }
}

pub(crate) async fn get_ds(env: &TestEnv, name: &str) -> Option<DaemonSet> {
    env.ds_api().get_opt(name).await.unwrap()
}

/// The old DaemonSet is untouched: same UID, not being deleted, its pods still its own.
pub(crate) async fn assert_untouched(
    env: &TestEnv,
    name: &str,
    app: &str,
    uid: &str,
    before: &BTreeMap<String, (String, Option<String>)>,
) {
    let ds = get_ds(env, name)
        .await
        .expect("the old DaemonSet still exists");
    assert_eq!(ds.metadata.uid.as_deref(), Some(uid));
    assert!(ds.metadata.deletion_timestamp.is_none());
    let now = pods_of(env, app).await;
    assert_eq!(&now, before, "pods and their owners unchanged");
}

pub(crate) async fn nodes(env: &mut TestEnv, n: usize) {
    for i in 0..n {
        env.node(&format!("n{i}"), NodeSpec::default()).await;
    }
}

// ------------------------------------------------------------------------------------------
// The tests.

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

/// Creates RBAC objects with kubectl (admin kubeconfig) and deletes the cluster-scoped ones on drop.
struct Rbac {
    cluster_objects: Vec<String>,
}

impl Rbac {
    fn apply(&mut self, yaml: &str) {
        let mut child = Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig().to_str().unwrap(),
                "apply",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Rbac {
    fn drop(&mut self) {
        for o in &self.cluster_objects {
            let _ = Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    kubeconfig().to_str().unwrap(),
                    "delete",
                    o,
                    "--wait=false",
                ])
                .output();
        }
    }
}

fn role(ns: &str, ds_verbs: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: kds-tester, namespace: {ns}}}
rules:
- {{apiGroups: [apps], resources: [daemonsets], verbs: [{ds_verbs}]}}
- {{apiGroups: [apps], resources: [controllerrevisions], verbs: [get, list]}}
- {{apiGroups: [''], resources: [pods], verbs: [get, list]}}
- {{apiGroups: [apps], resources: [replicasets, statefulsets], verbs: [list]}}
- {{apiGroups: [''], resources: [replicationcontrollers], verbs: [list]}}
- {{apiGroups: [batch], resources: [jobs], verbs: [list]}}
- {{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update, delete]}}
"
    )
}

#[tokio::test]
async fn bad_input_is_refused_with_one_line_and_changes_nothing() {
    let mut env = TestEnv::new("wf-bad").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    let backup = dir.path().join("backup.yaml");
    let backup_s = backup.to_str().unwrap().to_string();
    let good = new_manifest(&env, "node-agent", "agent");

    let mut deployment = good.clone();
    deployment["kind"] = json!("Deployment");
    let mut mismatch = good.clone();
    mismatch["spec"]["selector"] = json!({"matchLabels": {"component": "something-else"}});
    let wrong_kind = write(dir.path(), "deployment.yaml", &deployment);
    let bad_selector = write(dir.path(), "mismatch.yaml", &mismatch);
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x\nspec: [",
    )
    .unwrap();

    for (path, code, text) in [
        (wrong_kind.as_path(), 2, "expected kind DaemonSet"),
        (invalid.as_path(), 2, "not valid YAML"),
        (
            bad_selector.as_path(),
            2,
            "does not match the template's labels",
        ),
        (Path::new("/nonexistent/new.yaml"), 2, "reading"),
    ] {
        for cmd in ["migrate", "adopt"] {
            let mut args = vec![cmd];
            if cmd == "migrate" {
                args.push("agent");
            }
            args.extend(["-f", path.to_str().unwrap(), "--backup", &backup_s, "--yes"]);
            if cmd == "adopt" {
                args.retain(|a| *a != "--backup" && *a != backup_s.as_str());
            }
            let out = cli(&env, dir.path(), &args, &[]);
            assert_eq!(out.code, code, "{cmd} {}: {}", path.display(), out.stderr);
            assert!(one_error_line(&out).contains(text), "{cmd}: {}", out.stderr);
        }
    }

    // A DaemonSet of the new name exists already (selecting nothing of ours).
    let mut taken = env.daemon_set("node-agent", json!({}));
    taken["spec"]["selector"] = json!({"matchLabels": {"app": "taken"}});
    taken["spec"]["template"]["metadata"]["labels"] = json!({"app": "taken"});
    env.create_ds(taken).await;
    let good_path = write(dir.path(), "good.yaml", &good);
    let good_path = good_path.to_str().unwrap();
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate", "agent", "-f", good_path, "--backup", &backup_s, "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(one_error_line(&out).contains("NameTaken"), "{}", out.stderr);
    let out = cli(&env, dir.path(), &["adopt", "-f", good_path, "--yes"], &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    // The old name does not exist: not found, with nothing to resume from.
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate", "nope", "-f", good_path, "--backup", &backup_s, "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    one_error_line(&out);
    env.ds_api()
        .delete("node-agent", &Default::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the squatter to be gone",
        || async { get_ds(&env, "node-agent").await.is_none() },
    )
    .await;
    assert!(!backup.exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    // RBAC: a user who may delete DaemonSets but not create them is refused before the delete.
    let user = format!("kds-tester-{}", env.ns);
    let nodes_role = format!("kds-nodes-{}", env.ns);
    let mut rbac = Rbac {
        cluster_objects: vec![
            format!("clusterrole/{nodes_role}"),
            format!("clusterrolebinding/{nodes_role}"),
        ],
    };
    rbac.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {nodes_role}}}
rules: [{{apiGroups: [''], resources: [nodes], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {nodes_role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {nodes_role}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
---
{}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: kds-tester, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kds-tester}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
",
        role(&env.ns, "get, list, delete"),
        ns = env.ns
    ));
    let as_user = [
        "migrate", "agent", "-f", good_path, "--backup", &backup_s, "--yes", "--as", &user,
    ];
    let api = env.ds_api();
    wait_for(Duration::from_secs(10), "RBAC to apply", || async {
        Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig().to_str().unwrap(),
                "auth",
                "can-i",
                "delete",
                "daemonsets.apps",
            ])
            .args(["-n", &env.ns, "--as", &user])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("forbidden") && line.contains("nothing was changed"),
        "{line}"
    );
    assert!(!backup.exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    // Denied part-way: the permission to create disappears after the orphaning delete. The
    // re-run is refused in one line with the pods still running (orphaned, backup on disk);
    // once the permission is back, the same command finishes the job.
    rbac.apply(&role(&env.ns, "get, list, delete, create"));
    let out = cli(
        &env,
        dir.path(),
        &as_user,
        &[("KUBECTL_DS_FAILPOINT", "after-orphan")],
    );
    assert_eq!(out.code, FAILPOINT_EXIT, "{}", out.stderr);
    rbac.apply(&role(&env.ns, "get, list, delete"));
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    one_error_line(&out);
    assert!(api.get_opt("node-agent").await.unwrap().is_none());
    let now = pods_of(&env, "agent").await;
    assert_eq!(now.keys().collect::<BTreeSet<_>>(), before.keys().collect());
    assert!(backup.exists());
    rbac.apply(&role(&env.ns, "get, list, delete, create"));
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_migrated(&env, "node-agent", "agent", &before).await;
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
