//! The k9s plugin file (contrib/k9s/plugins.yaml): it parses as k9s's plugin schema (the
//! fields k9s requires, known scopes, shortcuts unique), and every command it defines is a
//! valid kubectl-ds invocation: run with k9s's variables filled in and a kubeconfig that points
//! nowhere, each gets past the command line and the manifest and stops at the connection
//! (exit 3), never at a usage error (exit 2).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginFile {
    plugins: BTreeMap<String, Plugin>,
}

/// k9s's plugin fields (internal/config/plugin.go `Plugin`), the required ones not optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Plugin {
    short_cut: String,
    description: String,
    scopes: Vec<String>,
    command: String,
    #[serde(default)]
    background: bool,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    confirm: bool,
}

#[test]
fn k9s_plugins_parse_and_run_valid_commands() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/k9s/plugins.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let file: PluginFile = serde_saphyr::from_str(&text).unwrap();
    assert!(file.plugins.len() >= 3);
    let mut shortcuts = BTreeSet::new();
    let mut scopes = BTreeSet::new();
    let dir = tempfile::tempdir().unwrap();
    // The manifest rollout-preview reads: NAME.yaml in k9s's working directory.
    std::fs::write(
        dir.path().join("agent.yaml"),
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: ops}\n\
         spec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n\
         \x20   spec: {containers: [{name: a, image: agent:2}]}\n",
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: ctx, context: {cluster: c, user: u}}]\n\
         current-context: ctx\n",
    )
    .unwrap();
    for (name, p) in &file.plugins {
        assert!(
            shortcuts.insert(p.short_cut.clone()),
            "{name}: shortcut reused"
        );
        assert!(
            !p.description.is_empty() && !p.background && !p.confirm,
            "{name}"
        );
        scopes.extend(p.scopes.iter().cloned());
        assert_eq!(p.command, "kubectl", "{name}");
        assert_eq!(p.args.first().map(String::as_str), Some("ds"), "{name}");
        let args: Vec<String> = p.args[1..]
            .iter()
            .map(|a| {
                a.replace("$NAMESPACE", "ops")
                    .replace("$NAME", "agent")
                    .replace("$CONTEXT", "ctx")
            })
            .collect();
        assert!(
            args.iter().all(|a| !a.contains('$')),
            "{name}: unknown variable in {args:?}"
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
            .args(&args)
            .args(["--request-timeout", "2s"])
            .env("KUBECONFIG", &kubeconfig)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
    }
    assert!(
        scopes.contains("daemonsets") && scopes.contains("nodes"),
        "{scopes:?}"
    );
}
