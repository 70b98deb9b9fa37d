//! Busy apiservers and hostile input on the real control plane: a writer that keeps changing
//! the DaemonSet during `migrate` (409 storm), an Event message carrying terminal escape
//! sequences, a backup that must restore fields this build's k8s-openapi does not model, and
//! credentials the apiserver rejects.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, ResourceQuota};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::harness::{kubeconfig, run_cli, wait_for, NodeSpec, TestEnv, TEST_LABEL};
use crate::workflow_support::{
    assert_migrated, cli, new_manifest_file, nodes, one_error_line, pods_of, start_old, write,
};

/// `migrate` while another writer patches the old DaemonSet's annotations back to back: the
/// delete's resourceVersion precondition is read right before the delete, so the run
/// succeeds, and every pod keeps its UID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_succeeds_during_a_409_storm() {
    let mut env = TestEnv::new("busy-storm").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let new = new_manifest_file(&env, dir.path(), "node-agent", "agent");

    let stop = Arc::new(AtomicBool::new(false));
    let patched = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (api, stop, patched) = (env.ds_api(), stop.clone(), patched.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let p = json!({"metadata": {"annotations": {"example.com/storm": i.to_string()}}});
                match api
                    .patch("agent", &PatchParams::default(), &Patch::Merge(&p))
                    .await
                {
                    Ok(_) => {
                        patched.fetch_add(1, Ordering::Relaxed);
                    }
                    // Gone (the delete went through): keep asking, as a controller would.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    };
    // The storm is on before the run starts.
    wait_for(
        Duration::from_secs(10),
        "the writer's first patches",
        || async { patched.load(Ordering::Relaxed) >= 5 },
    )
    .await;
    let at_start = patched.load(Ordering::Relaxed);
    let (env_ns, path, new_path) = (env.ns.clone(), dir.path().to_path_buf(), new.clone());
    let run = {
        let env_ref = &env;
        let args = [
            "migrate",
            "agent",
            "-f",
            new_path.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
        ];
        tokio::task::block_in_place(|| cli(env_ref, &path, &args, &[]))
    };
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let during = patched.load(Ordering::Relaxed) - at_start;
    eprintln!(
        "409 storm in {env_ns}: {during} patches during the run; stderr:\n{}",
        run.stderr
    );
    assert!(
        during >= 10,
        "the writer kept writing during the run ({during})"
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(report["kind"], "MigrateReport");
    assert_migrated(&env, "node-agent", "agent", &before).await;
}

/// An Event about the DaemonSet whose message carries ESC [ 31m, CR and BEL: `explain`'s
/// table shows it escaped (no raw control byte reaches the terminal); `-o json` keeps the
/// exact text.
#[tokio::test]
async fn explain_escapes_control_characters_from_events() {
    let mut env = TestEnv::new("busy-escape").await;
    env.node("n0", NodeSpec::default()).await;
    // No pod can be created: the node's verdict is Missing, with the latest FailedCreate event.
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the quota's status", || async {
        let q = Api::<ResourceQuota>::namespaced(env.client.clone(), &env.ns)
            .get("no-pods")
            .await
            .unwrap();
        q.status.and_then(|s| s.hard).is_some()
    })
    .await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    let hostile = "evil \x1b[31mred\x1b[0m\rhidden\x07bell \x1b]0;title\x07";
    let later =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(1);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "agent.hostile", "namespace": env.ns},
        "involvedObject": {"kind": "DaemonSet", "name": "agent", "namespace": env.ns, "apiVersion": "apps/v1"},
        "reason": "FailedCreate",
        "message": hostile,
        "type": "Warning",
        "count": 1,
        "firstTimestamp": later.to_string(),
        "lastTimestamp": later.to_string(),
        "source": {"component": "daemonset-controller"}
    }))
    .unwrap();
    Api::<Event>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
    let sel = format!("{TEST_LABEL}={}", env.ns);
    for output in ["table", "wide"] {
        let out = env.run(&["explain", "agent", "-l", &sel, "-o", output]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for (byte, name) in [('\x1b', "ESC"), ('\r', "CR"), ('\x07', "BEL")] {
            assert!(
                !out.stdout.contains(byte) && !out.stderr.contains(byte),
                "-o {output}: raw {name} in {:?}",
                out.stdout
            );
        }
        assert!(
            out.stdout
                .contains("evil ^[[31mred^[[0m\\rhidden^Gbell ^[]0;title^G"),
            "-o {output}: {}",
            out.stdout
        );
    }
    let json = env.explain_json("agent");
    let text = json.to_string();
    assert!(
        text.contains("evil \\u001b[31mred"),
        "JSON keeps the exact message: {text}"
    );
    let exact = json["nodes"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["eventMessage"].as_str())
        .any(|m| m == hostile);
    assert!(exact, "the exact message in -o json: {}", json["nodes"][0]);
}

fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .output()
        .expect("run kubectl")
}

/// The backup keeps the object as the apiserver sent it: a field this build's k8s-openapi does
/// not model (`hostnameOverride`, added in Kubernetes 1.34; the test cluster enables its gate)
/// and an annotation survive, the file is mode 0600, and `kubectl apply -f` of the backup
/// restores the DaemonSet, which adopts the orphans without restarting them.
#[tokio::test]
async fn backup_restores_fields_the_typed_structs_do_not_model() {
    let mut env = TestEnv::new("busy-backup").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = env.daemon_set("agent", json!({"hostnameOverride": "agent-host"}));
    m["metadata"]["annotations"] = json!({"example.com/note": "keep me"});
    let kc = kubeconfig().display().to_string();
    let file = write(dir.path(), "agent.json", &m);
    let created = kubectl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let live = |env_ns: String| {
        let kc = kc.clone();
        move || -> Value {
            let out = Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    &kc,
                    "get",
                    "ds",
                    "agent",
                    "-n",
                    &env_ns,
                    "-o",
                    "json",
                ])
                .output()
                .unwrap();
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
        }
    };
    let get = live(env.ns.clone());
    assert_eq!(
        get()["spec"]["template"]["spec"]["hostnameOverride"], "agent-host",
        "the test cluster must keep hostnameOverride (feature gate HostnameOverride, scripts/dev-cluster)"
    );
    env.wait_rolled_out("agent", 2).await;
    let before = pods_of(&env, "agent").await;

    let backup = dir.path().join("agent.backup.yaml");
    let b = backup.to_str().unwrap();
    let out = cli(
        &env,
        dir.path(),
        &["orphan", "agent", "--yes", "--backup", b],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup mode {mode:o}");
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(text.contains("hostnameOverride: agent-host"), "{text}");
    assert!(text.contains("example.com/note: keep me"), "{text}");
    for gone in [
        "resourceVersion:",
        "creationTimestamp:",
        "managedFields",
        "status:",
        "generation:",
    ] {
        let key = |l: &str| l.trim_start().trim_start_matches("- ").starts_with(gone);
        assert!(!text.lines().any(key), "{gone} in the backup:\n{text}");
    }
    // No temporary file is left next to it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(get().is_null(), "the DaemonSet is gone");

    let restored = kubectl(&["apply", "-n", &env.ns, "-f", b]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let live_ds = get();
    assert_eq!(
        live_ds["spec"]["template"]["spec"]["hostnameOverride"],
        "agent-host"
    );
    assert_eq!(
        live_ds["metadata"]["annotations"]["example.com/note"],
        "keep me"
    );
    let uid = live_ds["metadata"]["uid"].as_str().unwrap().to_string();
    let api: Api<DaemonSet> = env.ds_api();
    wait_for(
        Duration::from_secs(60),
        "the restored DaemonSet adopts its pods",
        || async {
            let now = pods_of(&env, "agent").await;
            let _ = api.get("agent").await;
            now.len() == 2
                && now
                    .values()
                    .all(|(_, o)| o.as_deref() == Some(uid.as_str()))
        },
    )
    .await;
    let after = pods_of(&env, "agent").await;
    let uids = |m: &std::collections::BTreeMap<String, (String, Option<String>)>| {
        m.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        uids(&after),
        uids(&before),
        "the same pods (UIDs) before and after"
    );
}

/// Credentials the apiserver rejects (401): exit 3 with the apiserver's word, one line.
#[tokio::test]
async fn rejected_credentials_are_exit_3() {
    let env = TestEnv::new("busy-401").await;
    let text = std::fs::read_to_string(kubeconfig()).unwrap();
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(
        &kc,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: not-a-valid-token}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"),
    )
    .unwrap();
    let out = run_cli(&[
        "explain",
        "agent",
        "-n",
        &env.ns,
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(line.contains("unauthorized"), "{line}");
    assert!(
        line.contains("Unauthorized"),
        "the apiserver's message: {line}"
    );
}

/// A failure after the old DaemonSet is deleted (here: `--timeout=1ms` runs out while the
/// garbage collector orphans the pods) says what state the cluster is in, where the backup is
/// and the exact command that resumes; `-o json` still prints its document. That command,
/// given time, finishes the migration with every pod kept.
#[tokio::test]
async fn a_failure_after_the_delete_names_the_backup_and_the_command_that_resumes() {
    let mut env = TestEnv::new("busy-resume").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let new = new_manifest_file(&env, dir.path(), "node-agent", "agent");
    let new = new.to_str().unwrap();
    let args = [
        "migrate",
        "agent",
        "-f",
        new,
        "--yes",
        "-o",
        "json",
        "--timeout=1ms",
    ];
    let out = cli(&env, dir.path(), &args, &[]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let line = one_error_line(&out);
    let backup = format!("{}-agent.daemonset.yaml", env.ns);
    // Which wait runs out first depends on how fast the garbage collector is: the orphaning
    // (usually) or, when it was done at the first look, the adoption. Both are after the delete.
    let orphaned_in_time = line.contains("the adoption is not verified");
    assert!(
        line.contains("timed out waiting for the garbage collector") || orphaned_in_time,
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "daemonset {}/agent is deleted (propagationPolicy=Orphan) and its pods keep running",
            env.ns
        )),
        "{line}"
    );
    assert!(line.contains(&format!("the backup is {backup}")), "{line}");
    let resume = format!(
        "kubectl ds migrate agent -f {new} --yes -o json --timeout=1ms -n {}",
        env.ns
    );
    assert!(
        line.ends_with(&format!("to resume, run: {resume}")),
        "{line}"
    );
    let report: Value = serde_json::from_str(&out.stdout).expect("the JSON document");
    assert_eq!(report["kind"], "MigrateReport");
    assert_eq!(report["result"]["orphan"]["verified"], orphaned_in_time);
    // The printed command (with time to wait) finishes the job.
    let again: Vec<String> = resume
        .replace("--timeout=1ms", "--timeout=60s")
        .split(' ')
        .skip(2)
        .map(String::from)
        .collect();
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let done = cli(&env, dir.path(), &again[..again.len() - 2], &[]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_migrated(&env, "node-agent", "agent", &before).await;
}

/// Absurd `--timeout` / `--request-timeout` values on a real cluster: one error line, exit 2,
/// nothing changed (the DaemonSet and its pods keep their UIDs). A huge but valid value works.
#[tokio::test]
async fn absurd_durations_are_refused_and_change_nothing() {
    let mut env = TestEnv::new("busy-durations").await;
    nodes(&mut env, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 1).await;
    let uid = env.ds_api().get("agent").await.unwrap().metadata.uid;
    for value in [
        "-1s",
        "99999999999999999999h",
        "18446744073709551616",
        "1e400s",
        "soon",
        "5s5",
        "",
    ] {
        let timeout = format!("--timeout={value}");
        let request_timeout = format!("--request-timeout={value}");
        for args in [
            vec!["orphan", "agent", "--yes", timeout.as_str()],
            vec![
                "migrate",
                "agent",
                "-f",
                "x.yaml",
                "--yes",
                timeout.as_str(),
            ],
            vec!["orphan", "agent", "--yes", request_timeout.as_str()],
            vec!["explain", "agent", request_timeout.as_str()],
        ] {
            let out = cli(&env, dir.path(), &args, &[]);
            assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
            let line = one_error_line(&out);
            assert!(line.contains("timeout"), "{args:?}: {line}");
        }
    }
    assert_eq!(env.ds_api().get("agent").await.unwrap().metadata.uid, uid);
    assert_eq!(
        pods_of(&env, "agent").await,
        before,
        "pods and owners unchanged"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no backup written"
    );
    // The limit itself is a valid value.
    let out = cli(
        &env,
        dir.path(),
        &["explain", "agent", "--request-timeout=2562047h"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}
