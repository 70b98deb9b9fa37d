//! Shell completion through the real kubectl (1.26+ plugin completion) on the real control
//! plane: kubectl finds `kubectl-ds` and `krew/kubectl_complete-ds` on PATH, runs the latter with
//! the plugin's words and prints what it answers.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::harness::{kubeconfig, NodeSpec, TestEnv};

/// A PATH directory holding `kubectl-ds` (this build) and the repository's
/// `kubectl_complete-ds`, as an unpacked release archive has them.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-ds"),
        dir.path().join("kubectl-ds"),
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("krew/kubectl_complete-ds");
    std::os::unix::fs::symlink(script, dir.path().join("kubectl_complete-ds")).unwrap();
    dir
}

/// `kubectl __complete ds WORDS...`: the candidates (without descriptions) and the directive.
fn kubectl_complete(words: &[&str]) -> (Vec<String>, String) {
    let dir = plugin_dir();
    let mut path = vec![dir.path().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = Command::new("kubectl")
        .arg("__complete")
        .arg("ds")
        .args(words)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let directive = lines.pop().unwrap_or_default();
    let values = lines
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    (values, directive)
}

#[tokio::test]
async fn kubectl_completes_subcommands_flags_and_cluster_names() {
    let mut env = TestEnv::new("complete").await;
    let node = env.node("a", NodeSpec::default()).await;
    env.create_ds(env.daemon_set("agent-one", json!({}))).await;
    env.create_ds(env.daemon_set("agent-two", json!({}))).await;
    env.create_ds(env.daemon_set("other", json!({}))).await;
    let ns = env.ns.clone();

    let (subs, directive) = kubectl_complete(&["ex"]);
    assert_eq!(
        (subs, directive.as_str()),
        (vec!["explain".to_string()], ":4")
    );

    // DaemonSet names of the namespace typed, filtered by prefix.
    let (names, directive) = kubectl_complete(&["explain", "-n", &ns, ""]);
    assert_eq!(names, vec!["agent-one", "agent-two", "other"]);
    assert_eq!(directive, ":4");
    let (names, _) = kubectl_complete(&["orphan", "agent-"]);
    assert!(names.is_empty(), "namespace default has none: {names:?}");
    let (names, _) = kubectl_complete(&["--namespace", &ns, "orphan", "agent-"]);
    assert_eq!(names, vec!["agent-one", "agent-two"]);

    // Namespaces after -n, nodes after --node, flags from the definition.
    let (namespaces, _) = kubectl_complete(&["explain", "-n", &ns[..ns.len() - 1]]);
    assert!(namespaces.contains(&ns), "{namespaces:?}");
    let (nodes, _) = kubectl_complete(&["explain", "agent-one", "--node", &node[..node.len() - 1]]);
    assert_eq!(nodes, vec![node.clone()]);
    let (nodes, _) = kubectl_complete(&["explain", "agent-one", &format!("--node={}", &node)]);
    assert_eq!(nodes, vec![node]);
    let (flags, _) = kubectl_complete(&["explain", "--node-"]);
    assert_eq!(flags, vec!["--node-selector"]);

    // A cluster that cannot be reached: nothing offered, no noise, still the directive.
    let (names, directive) = kubectl_complete(&["explain", "--server", "https://127.0.0.1:1", ""]);
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(directive, ":4");
}
