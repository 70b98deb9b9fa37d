//! The command line without a cluster: flags, exit codes, one-line errors, explain from a file.

use std::io::Write;

use crate::harness::Output;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ds"));
    cmd.args(args).env("NO_COLOR", "1").env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kubectl-ds");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn one_error_line(o: &Output) {
    let lines: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| !l.starts_with("hint:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one error line, got: {:?}",
        o.stderr
    );
    assert!(lines[0].starts_with("error: "), "{:?}", o.stderr);
    assert!(!o.stderr.contains("panicked"));
}

#[test]
fn help_reads_like_kubectl() {
    let o = run(&["--help"], &[]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("Usage: kubectl ds"));
    assert!(o.stdout.contains("Exit codes:"));
    for sub in [
        "explain",
        "rollout-preview",
        "orphan",
        "adopt",
        "migrate",
        "completion",
    ] {
        assert!(o.stdout.contains(sub), "{sub} missing from help");
        let h = run(&[sub, "--help"], &[]);
        assert_eq!(h.code, 0);
        assert!(
            h.stdout.contains("Examples:"),
            "{sub} --help has no examples"
        );
        assert!(
            h.stdout.contains("Exit codes:"),
            "{sub} --help has no exit codes"
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let o = run(&["explain", "--bogus"], &[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--bogus"));
}

#[test]
fn missing_kubeconfig_is_a_connection_error() {
    let o = run(
        &["explain", "x"],
        &[
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
            ("HOME", "/nonexistent"),
        ],
    );
    assert_eq!(o.code, 3, "{}", o.stderr);
    one_error_line(&o);
    assert!(o.stderr.contains("no kubeconfig found"));
}

#[test]
fn unknown_context_is_a_connection_error() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let o = run(
        &[
            "explain",
            "ds",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "nope",
        ],
        &[],
    );
    assert_eq!(o.code, 3);
    one_error_line(&o);
    assert!(o.stderr.contains("\"nope\""));
    // Reachable kubeconfig but nothing listening: a connection error within the timeout.
    let o = run(
        &[
            "explain",
            "ds",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--request-timeout",
            "2s",
        ],
        &[],
    );
    assert_eq!(o.code, 3, "{}", o.stderr);
    one_error_line(&o);
}

#[test]
fn bad_request_timeout() {
    let o = run(&["explain", "x", "--request-timeout", "soon"], &[]);
    assert_eq!(o.code, 2);
    one_error_line(&o);
}

#[test]
fn malformed_file_is_an_input_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "items: [\n  - kind: Node\n   bad indent").unwrap();
    let o = run(&["explain", "x", "-f", f.path().to_str().unwrap()], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    one_error_line(&o);
    let o = run(&["explain", "x", "-f", "/nonexistent.yaml"], &[]);
    assert_eq!(o.code, 2);
    one_error_line(&o);
}

#[test]
fn explain_from_saved_list() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bundle.yaml");
    let o = run(
        &[
            "explain",
            "node-agent",
            "-n",
            "monitoring",
            "-f",
            fixture,
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["apiVersion"], "kubectl-ds/v1");
    assert_eq!(v["kind"], "Explanation");
    let state = |n: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("worker-1"), "Running");
    assert_eq!(state("worker-2"), "NotEligible");
    assert_eq!(state("worker-3"), "Missing");
    assert_eq!(v["summary"]["computed"]["desired"], 2);
    assert_eq!(
        v["summary"]["reconciliation"],
        "desired 2 = 3 nodes - 1 UntoleratedTaint"
    );
    let o = run(&["explain", "nope", "-f", fixture], &[]);
    assert_eq!(o.code, 4);
    one_error_line(&o);
}

#[test]
fn complete_subcommands_cobra_style() {
    let o = run(&["__complete", "ex"], &[]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stderr, "");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert!(lines[0].starts_with("explain\t"), "{}", o.stdout);
    assert_eq!(lines[1], ":4");
    let o = run(&["__completeNoDesc", "ex"], &[]);
    assert_eq!(o.stdout, "explain\n:4\n");
}

#[test]
fn complete_without_a_cluster_offers_nothing_quietly() {
    // No kubeconfig at all.
    let o = run(
        &["__complete", "explain", ""],
        &[
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
            ("HOME", "/nonexistent"),
        ],
    );
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, ":4\n", "")
    );
    // A kubeconfig whose apiserver is not listening.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}, {name: y, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let o = run(
        &[
            "__complete",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "explain",
            "",
        ],
        &[],
    );
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, ":4\n", "")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Contexts come from the kubeconfig, no request sent.
    let o = run(
        &[
            "__complete",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "",
        ],
        &[],
    );
    assert_eq!(o.stdout, "x\ny\n:4\n");
}

#[test]
fn completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completion", shell], &[]);
        assert_eq!(o.code, 0, "{shell}: {}", o.stderr);
        assert!(o.stdout.contains("kubectl-ds"), "{shell}");
    }
}
