//! What the workflow end-to-end tests (e2e_workflow_*, e2e_busy) share: the JSON reports as
//! strict structs (unknown fields fail, so a schema change fails a test), the old and new
//! manifests, and the assertions that every pod kept its UID. The command itself is built by
//! the harness (`harness::command`), re-exported here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) use crate::harness::{cli, command, spawn};
use crate::harness::{wait_for, NodeSpec, Output, TestEnv, TEST_LABEL};

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
