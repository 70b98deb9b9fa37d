//! The foundation on the real control plane: the real DaemonSet controller creates a pod for a
//! simulated node, the real scheduler binds it, the simulator makes it Ready, and a real
//! rolling update completes.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::{wait_for, NodeSpec, TestEnv};

#[tokio::test]
async fn controller_scheduler_simulator_and_rolling_update() {
    let mut env = TestEnv::new("found").await;
    let n1 = env.node("a", NodeSpec::default()).await;
    let n2 = env.node("b", NodeSpec::default()).await;
    let ds = env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 2).await;

    let pods = env.pods("agent").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let owner = p
            .metadata
            .owner_references
            .as_ref()
            .unwrap()
            .iter()
            .find(|o| o.controller == Some(true))
            .unwrap();
        assert_eq!(
            owner.uid,
            ds.metadata.uid.clone().unwrap(),
            "created by the real DaemonSet controller"
        );
        let spec = p.spec.as_ref().unwrap();
        // The controller pins with matchFields; the scheduler sets nodeName.
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        let pinned = terms[0].match_fields.as_ref().unwrap()[0]
            .values
            .as_ref()
            .unwrap()[0]
            .clone();
        assert_eq!(
            spec.node_name.as_deref(),
            Some(pinned.as_str()),
            "bound by the scheduler to the pinned node"
        );
        let conds = p.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert!(conds
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            "made Ready by the simulator"
        );
        assert!(p.status.as_ref().unwrap().pod_ip.is_some());
    }
    let mut nodes: Vec<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![n1, n2]);

    // A real rolling update: every pod replaced by one with the new image.
    let old_uids: Vec<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "registry.example/agent:2"}]}}}});
    env.ds_api()
        .patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    env.wait_rolled_out("agent", 2).await;
    wait_for(Duration::from_secs(60), "old pods gone", || async {
        let pods = env.pods("agent").await;
        pods.len() == 2
            && pods
                .iter()
                .all(|p| !old_uids.contains(p.metadata.uid.as_ref().unwrap()))
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref()
                    == Some("registry.example/agent:2")
            })
    })
    .await;
    let ds = env.ds_api().get("agent").await.unwrap();
    assert_eq!(ds.status.unwrap().updated_number_scheduled, Some(2));
}

fn dev_cluster(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dev-cluster"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dev-cluster")
}

/// `dev-cluster up` refuses bad situations with one line, a non-zero exit, and starts nothing.
#[test]
fn dev_cluster_bad_input() {
    // The shared test cluster is running: `up` of the same name is refused.
    let kc = crate::harness::kubeconfig();
    let name = kc
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let o = dev_cluster(&["up", &name], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(kc.exists(), "the running cluster was left alone");

    // Binaries missing (a version that is not installed).
    let o = dev_cluster(&["up", "kds-missing"], &[("K8S_VERSION", "9.99.0")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not installed") && err.contains("dev-cluster install"),
        "{err}"
    );
    assert!(
        !dev_cluster(&["kubeconfig", "kds-missing"], &[])
            .status
            .success(),
        "nothing was started"
    );

    // A port of the cluster's block already in use.
    let busy = "kds-busy";
    let base: u16 = {
        // Same derivation as the script: 21000 + (cksum(name) % 400) * 10, apiserver at +2.
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("printf '%s' {busy} | cksum | cut -d' ' -f1")])
            .output()
            .unwrap();
        let sum: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        (21000 + (sum % 400) * 10) as u16
    };
    // Hold the port; if something else already holds it (another cluster whose block
    // collides, 1 in 400 for the test cluster's PID-derived name), it is busy all the same.
    let _hold = match std::net::TcpListener::bind(("127.0.0.1", base + 2)) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("bind the apiserver port: {e}"),
    };
    let o = dev_cluster(&["up", busy], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        (base..=base + 5).any(|p| err.contains(&format!("port {p} ")))
            && err.contains("already in use"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !dev_cluster(&["kubeconfig", busy], &[]).status.success(),
        "nothing was started"
    );
    let o = dev_cluster(&["up", "Bad_Name"], &[]);
    assert!(!o.status.success());
}

/// KUBECONFIG with several paths is merged as kubectl merges it: missing files skipped, the
/// first file to set a value wins.
#[test]
fn kubeconfig_list_is_merged_like_kubectl() {
    let kc = crate::harness::kubeconfig();
    let text = std::fs::read_to_string(kc).unwrap();
    let ctx = text
        .lines()
        .find_map(|l| l.strip_prefix("current-context: "))
        .unwrap()
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    // The first file only names the context, with namespace kube-system.
    let first = dir.path().join("first");
    std::fs::write(
        &first,
        format!("apiVersion: v1\nkind: Config\ncurrent-context: {ctx}\ncontexts: [{{name: {ctx}, context: {{cluster: kubectl-ds-{n}, user: admin, namespace: kube-system}}}}]\n", n = ctx.trim_start_matches("kubectl-ds-")),
    )
    .unwrap();
    let list = format!(
        "{}:/nonexistent/kubeconfig:{}",
        first.display(),
        kc.display()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
        .args(["explain", "no-such-ds"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Reached the cluster (NotFound, not a config error) in the first file's namespace.
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("namespace \"kube-system\""), "{err}");
}

/// `kubectl ds` finds the plugin on PATH (kubectl's plugin discovery).
#[test]
fn kubectl_plugin_discovery() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-ds"),
        dir.path().join("kubectl-ds"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("kubectl")
        .args(["ds", "--help"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: kubectl ds"));
}
