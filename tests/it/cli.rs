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
    Output::from(out)
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

/// A kubeconfig in a temp dir pointing at `server` (context `x`).
fn kubeconfig_for(server: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(
        &kc,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"),
    )
    .unwrap();
    let path = kc.to_str().unwrap().to_string();
    (dir, path)
}

/// `explain ds` against a kubeconfig with a request timeout.
fn explain_with_timeout(kubeconfig: &str, timeout: &str) -> Output {
    run(
        &[
            "explain",
            "ds",
            "--kubeconfig",
            kubeconfig,
            "--request-timeout",
            timeout,
        ],
        &[],
    )
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
        "status",
        "orphan",
        "adopt",
        "migrate",
        "completion",
        "why",
        "endpoints",
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

/// Usage lines say `kubectl ds` for the plugin executable and the binary's own name otherwise.
#[test]
fn usage_names_the_binary_as_it_was_run() {
    let o = run(&["explain", "--help"], &[]);
    assert!(
        o.stdout.contains("Usage: kubectl ds explain"),
        "{}",
        o.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("kds");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-ds"), &renamed).unwrap();
    let out = std::process::Command::new(&renamed)
        .args(["explain", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: kds explain"), "{help}");
    let out = std::process::Command::new(&renamed)
        .args(["explain", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: kds explain"));
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
    let (_dir, kc) = kubeconfig_for("https://127.0.0.1:1");
    let o = run(
        &["explain", "ds", "--kubeconfig", &kc, "--context", "nope"],
        &[],
    );
    assert_eq!(o.code, 3);
    one_error_line(&o);
    assert!(o.stderr.contains("\"nope\""));
    // Reachable kubeconfig but nothing listening: a connection error within the timeout.
    let o = explain_with_timeout(&kc, "2s");
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

/// `kubectl-ds ... | head`: once the reader has gone, no error message, status 141 (what a
/// shell shows for kubectl, which dies of SIGPIPE), in every output format.
#[test]
fn closed_stdout_is_quiet() {
    use std::process::{Command, Stdio};
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bundle.yaml");
    for output in ["table", "wide", "json", "yaml"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
            .args(["explain", "node-agent", "-n", "monitoring", "-f", fixture])
            .args(["-o", output])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl-ds");
        // Close the read end before the child writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "-o {output}: {stderr}");
        assert_eq!(stderr, "", "-o {output}");
    }
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

/// Runs kubectl-ds with `input` on stdin (no cluster).
fn run_with_stdin(args: &[&str], input: &str) -> Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-ds");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Output::from(child.wait_with_output().unwrap())
}

/// `-f -` reads stdin, by the same rules as a file, for explain and adopt/migrate.
#[test]
fn dash_f_dash_reads_stdin_by_the_same_rules() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bundle.yaml");
    let bundle = std::fs::read_to_string(fixture).unwrap();
    let args = ["explain", "node-agent", "-n", "monitoring", "-f", "-"];
    let o = run_with_stdin(&[&args[..], &["-o", "json"]].concat(), &bundle);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["summary"]["computed"]["desired"], 2);
    // The same saved List as JSON on stdin gives the same answer.
    let as_json: serde_json::Value = serde_saphyr::from_str(&bundle).unwrap();
    let o = run_with_stdin(&[&args[..], &["-o", "json"]].concat(), &as_json.to_string());
    assert_eq!(o.code, 0, "{}", o.stderr);
    let w: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(w["nodes"], v["nodes"]);

    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n";
    for args in [vec!["adopt", "-f", "-"], vec!["migrate", "x", "-f", "-"]] {
        let o = run_with_stdin(&args, deployment);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        one_error_line(&o);
        assert!(
            o.stderr
                .contains("error: stdin: expected kind DaemonSet (apps/v1), got Deployment"),
            "{args:?}: {}",
            o.stderr
        );
    }
    // A List holding one valid DaemonSet is read (then the missing cluster is the error: 3).
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: DaemonSet\n  metadata: {name: x}\n  spec:\n    selector: {matchLabels: {app: a}}\n    template:\n      metadata: {labels: {app: a}}\n      spec: {containers: [{name: c, image: i}]}\n";
    let o = run_with_stdin(&["adopt", "-f", "-", "--yes"], list);
    assert_eq!(o.code, 3, "{}", o.stderr);
    one_error_line(&o);
    let o = run_with_stdin(&["adopt", "-f", "-"], "- 1\n- 2\n");
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("stdin: found a list without kind; expected a DaemonSet object"),
        "{}",
        o.stderr
    );
}

#[test]
fn slow_apiserver_honours_request_timeout() {
    // Accepts connections and never answers: a hung apiserver.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(2) {
            held.push(conn);
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
    });
    let (_dir, kc) = kubeconfig_for(&format!("https://127.0.0.1:{port}"));
    let start = std::time::Instant::now();
    let o = explain_with_timeout(&kc, "1s");
    assert_eq!(o.code, 3, "{}", o.stderr);
    one_error_line(&o);
    assert!(o.stderr.contains("--request-timeout"), "{}", o.stderr);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    drop(hold);
}

#[test]
fn workflow_input_is_checked_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deploy.yaml");
    std::fs::write(
        &deployment,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
    )
    .unwrap();
    let mismatch = dir.path().join("mismatch.yaml");
    std::fs::write(
        &mismatch,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {app: a}}\n  template: {metadata: {labels: {app: b}}}\n",
    )
    .unwrap();
    let no_cluster = [
        ("KUBECONFIG", "/nonexistent/kubeconfig"),
        ("HOME", "/nonexistent"),
    ];
    let d = deployment.to_str().unwrap();
    let m = mismatch.to_str().unwrap();
    for (args, text) in [
        (vec!["adopt", "-f", d], "expected kind DaemonSet"),
        (vec!["migrate", "x", "-f", d], "expected kind DaemonSet"),
        (
            vec!["adopt", "-f", m],
            "does not match the template's labels",
        ),
        (vec!["adopt", "-f", "/nonexistent.yaml"], "reading"),
        (
            vec!["orphan", "x", "--timeout", "soon"],
            "invalid --timeout",
        ),
        (vec!["orphan", "x", "-o", "wide"], "-o wide"),
    ] {
        let o = run(&args, &no_cluster);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        one_error_line(&o);
        assert!(o.stderr.contains(text), "{args:?}: {}", o.stderr);
    }
    // Valid input, no cluster: a connection error (3), not a crash.
    let o = run(&["orphan", "x", "--yes"], &no_cluster);
    assert_eq!(o.code, 3, "{}", o.stderr);
    one_error_line(&o);
}

#[test]
fn mutating_commands_document_their_exit_codes() {
    for sub in ["orphan", "adopt", "migrate"] {
        let help = run(&[sub, "--help"], &[]);
        assert_eq!(help.code, 0);
        for code in ["0 done", "2 bad input", "6 refused", "7 could not verify"] {
            assert!(
                help.stdout.contains(code),
                "{code} missing from {sub} --help"
            );
        }
        for flag in ["--yes", "--dry-run", "--timeout"] {
            assert!(
                help.stdout.contains(flag),
                "{flag} missing from {sub} --help"
            );
        }
    }
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

#[test]
fn explain_from_saved_list_with_preemption() {
    // PriorityClasses and PodDisruptionBudgets in a saved List are read like the cluster's.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/preemption.yaml"
    );
    let args = ["explain", "node-agent", "-n", "kube-system", "-f", fixture];
    let o = run(&[&args[..], &["-o", "json"]].concat(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let node = &v["nodes"][0];
    assert_eq!(
        (node["name"].as_str(), node["state"].as_str()),
        (Some("small-1"), Some("Pending"))
    );
    let preemption = node["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "Preemption")
        .unwrap_or_else(|| panic!("{node:#}"));
    // report-2 started later than report-1 (equal priority): it is the one evicted; both are
    // covered by a PDB with no disruption left, so the one victim violates it.
    assert_eq!(preemption["victims"], serde_json::json!(["batch/report-2"]));
    assert_eq!(preemption["pdbViolations"], 1);
    assert_eq!(preemption["priority"], 100000);
    assert_eq!(preemption["priorityClass"], "node-agents");
    let table = run(&args, &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("Preemption: fits by preempting 1 lower-priority pod(s): batch/report-2"),
        "{}",
        table.stdout
    );
}

/// The priorityClassName and smaller-request fixes from saved Lists: JSON `fix`, one table
/// line each, and the manifest `--fix` writes.
#[test]
fn priority_and_request_fixes_from_saved_lists() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let priority = format!("{dir}fix-priority.yaml");
    let args = [
        "explain",
        "log-agent",
        "-n",
        "logging",
        "-f",
        priority.as_str(),
    ];
    let o = run(&[&args[..], &["-o", "json"]].concat(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let reasons = v["nodes"][0]["reasons"].as_array().unwrap();
    let by_code = |code: &str| reasons.iter().find(|r| r["code"] == code).cloned();
    let not_helpful = by_code("PreemptionNotHelpful").unwrap();
    assert_eq!(not_helpful["fix"]["target"], "manifest");
    assert_eq!(
        not_helpful["fix"]["patch"]["spec"]["template"]["spec"]["priorityClassName"],
        "node-agents"
    );
    assert!(by_code("NoPriorityClass").unwrap().get("fix").is_none());
    assert_eq!(
        by_code("InsufficientResources").unwrap()["fix"]["patch"]["spec"]["template"]["spec"]
            ["containers"][0]["resources"]["requests"]["cpu"],
        "200m"
    );
    let table = run(&args, &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    for line in [
        "Fix small-1 PreemptionNotHelpful: set priorityClassName node-agents (value 100000",
        "Fix small-1 InsufficientResources: lower the cpu request (agent 400m -> 200m)",
    ] {
        assert!(table.stdout.contains(line), "{line}\n{}", table.stdout);
    }
    // --fix applies the class, not both alternatives.
    let fixed = run(&[&args[..], &["--node", "small-1", "--fix"]].concat(), &[]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let m: serde_json::Value = serde_saphyr::from_str(&fixed.stdout).unwrap();
    let spec = &m["spec"]["template"]["spec"];
    assert_eq!(spec["priorityClassName"], "node-agents");
    assert_eq!(
        spec["containers"][0]["resources"]["requests"]["cpu"],
        "400m"
    );

    let resources = format!("{dir}fix-resources.yaml");
    let args = [
        "explain",
        "log-agent",
        "-f",
        resources.as_str(),
        "--node",
        "big-1",
    ];
    let fixed = run(&[&args[..], &["--fix"]].concat(), &[]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let m: serde_json::Value = serde_saphyr::from_str(&fixed.stdout).unwrap();
    let c = &m["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        (
            &c[0]["resources"]["requests"]["cpu"],
            &c[1]["resources"]["requests"]["cpu"]
        ),
        (&serde_json::json!("1058m"), &serde_json::json!("441m"))
    );
    assert_eq!(c[0]["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(
        m["spec"]["template"]["spec"]["priorityClassName"],
        "system-node-critical"
    );
}

/// -L on the overview: its rows are DaemonSets, not nodes; refused before any request.
#[test]
fn label_columns_are_refused_on_the_overview() {
    for args in [
        &["explain", "-L", "topology.kubernetes.io/zone"][..],
        &["explain", "-A", "--show-labels"][..],
    ] {
        let o = run(args, &[("KUBECONFIG", "/nonexistent/kubeconfig")]);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        one_error_line(&o);
        assert!(
            o.stderr
                .contains("the overview lists DaemonSets, not nodes"),
            "{}",
            o.stderr
        );
    }
}
