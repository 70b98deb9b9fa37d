//! The README's bad-input table, row by row, without a cluster: each input gives one
//! `error: ...` line, first (a hint, or clap's usage lines, may follow), naming the problem,
//! the documented exit code, and never a panic. Rows that need an apiserver point at nothing
//! listening or at a failing credential plugin; the 401 row is
//! `e2e_busy::rejected_credentials_are_exit_3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::Output;

const DS: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {app: a}}\n  template: {metadata: {labels: {app: a}}}\n";

/// Files the rows use, in one temp dir.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let f = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        let w = |name: &str, text: &[u8]| std::fs::write(f.path(name), text).unwrap();
        w(
            "deploy.yaml",
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
        );
        w(
            "mismatch.yaml",
            DS.replace("labels: {app: a}", "labels: {app: b}")
                .as_bytes(),
        );
        w("empty.yaml", b"# nothing here\n");
        w("two.yaml", format!("{DS}---\n{DS}").as_bytes());
        w(
            "beta.yaml",
            DS.replace("apps/v1", "extensions/v1beta1").as_bytes(),
        );
        w(
            "noname.yaml",
            DS.replace("metadata: {name: x}", "metadata: {}").as_bytes(),
        );
        w(
            "nosel.yaml",
            DS.replace("selector: {matchLabels: {app: a}}", "selector: {}")
                .as_bytes(),
        );
        w("list.yaml", b"- 1\n- 2\n");
        w("binary.yaml", &[0xff, 0xfe, 0x00, 0x80, b'\n']);
        w("bad.yaml", b"items: [\n  - kind: Node\n   bad indent\n");
        w("bad.json", b"{\"a\": ,}\n");
        w("ok.yaml", DS.as_bytes());
        std::fs::create_dir(f.path("dir.yaml")).unwrap();
        let kc = |name: &str, server: &str, user: &str, current: &str| {
            format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {user}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, namespace: ns}}}}]\ncurrent-context: '{current}'\n")
                .replace("NAME", name)
        };
        w(
            "kc-down",
            kc("", "https://127.0.0.1:1", "{token: t}", "x").as_bytes(),
        );
        w(
            "kc-nocurrent",
            kc("", "https://127.0.0.1:1", "{token: t}", "").as_bytes(),
        );
        let plugin = f.path("plugin.sh");
        w(
            "plugin.sh",
            b"#!/bin/sh\necho 'token expired: run sso-login again' >&2\nexit 1\n",
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = |mode: &str| {
            format!(
                "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: '{}', interactiveMode: {mode}}}}}",
                plugin.display()
            )
        };
        w(
            "kc-exec",
            kc("", "https://127.0.0.1:1", &exec("Never"), "x").as_bytes(),
        );
        w(
            "kc-exec-tty",
            kc("", "https://127.0.0.1:1", &exec("IfAvailable"), "x").as_bytes(),
        );
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn run(args: &[String], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-ds");
    Output::from(out)
}

/// One row: the command line (`@name` is a file of [`Files`]), what the error line must say,
/// and the exit code.
struct Row {
    args: &'static str,
    says: &'static str,
    code: i32,
}

const fn row(args: &'static str, says: &'static str, code: i32) -> Row {
    Row { args, says, code }
}

/// The rows of README "Bad input", in its order.
const ROWS: &[Row] = &[
    // Durations.
    row(
        "orphan x --timeout soon",
        "invalid --timeout: \"soon\": expected a number",
        2,
    ),
    row(
        "orphan x --timeout=-5s",
        "invalid --timeout: \"-5s\": a duration cannot be negative",
        2,
    ),
    row(
        "orphan x --timeout 99999999999999999999h",
        "invalid --timeout: \"99999999999999999999h\": too long",
        2,
    ),
    row(
        "orphan x --timeout 18446744073709551616",
        "too long (the limit is 2562047h)",
        2,
    ),
    row("orphan x --timeout 1e400s", "unknown unit \"e\"", 2),
    row("orphan x --timeout 5x", "unknown unit \"x\"", 2),
    row("orphan x --timeout 5s5", "missing unit", 2),
    row(
        "orphan x --timeout=",
        "invalid --timeout: empty duration",
        2,
    ),
    row(
        "explain x --request-timeout soon",
        "invalid --request-timeout: \"soon\": expected a number",
        2,
    ),
    row(
        "explain x --request-timeout=-1",
        "invalid --request-timeout: \"-1\": a duration cannot be negative",
        2,
    ),
    row(
        "explain x --request-timeout 9999999999999999999999s",
        "invalid --request-timeout: \"9999999999999999999999s\": too long",
        2,
    ),
    row("explain x --request-timeout 1.2.3s", "bad number", 2),
    row("explain x --request-timeout NaN", "expected a number", 2),
    // Flags.
    row("explain x --bogus", "unexpected argument '--bogus'", 2),
    row(
        "explain x -o xml",
        "unable to match a printer suitable for the output format",
        2,
    ),
    row(
        "explain x --color sometimes",
        "invalid value 'sometimes'",
        2,
    ),
    row("orphan x -o wide", "-o wide is not supported here", 2),
    row(
        "orphan",
        "the following required arguments were not provided",
        2,
    ),
    row(
        "migrate x",
        "the following required arguments were not provided",
        2,
    ),
    row(
        "explain x --server ::: --kubeconfig @kc-down",
        "invalid --server \":::\"",
        2,
    ),
    // Files.
    row("explain x -f @missing.yaml", "reading", 2),
    row("explain x -f @dir.yaml", "reading", 2),
    row(
        "explain x -f @bad.yaml",
        "not valid YAML or JSON: line 2 column 3",
        2,
    ),
    row(
        "explain x -f @bad.json",
        "not valid YAML or JSON: line 1 column 7",
        2,
    ),
    row(
        "explain x -f @binary.yaml",
        "stream did not contain valid UTF-8",
        2,
    ),
    row(
        "adopt -f @deploy.yaml",
        "expected kind DaemonSet (apps/v1), got Deployment",
        2,
    ),
    row(
        "migrate x -f @deploy.yaml",
        "expected kind DaemonSet (apps/v1), got Deployment",
        2,
    ),
    row(
        "adopt -f @mismatch.yaml",
        "does not match the template's labels",
        2,
    ),
    row("adopt -f @empty.yaml", "the file holds no object", 2),
    row(
        "adopt -f @two.yaml",
        "the file holds 2 objects; expected exactly one DaemonSet",
        2,
    ),
    row(
        "adopt -f @beta.yaml",
        "expected apiVersion apps/v1 for a DaemonSet, got \"extensions/v1beta1\"",
        2,
    ),
    row("adopt -f @noname.yaml", "metadata.name is required", 2),
    row("adopt -f @nosel.yaml", "spec.selector is empty", 2),
    row("adopt -f @list.yaml", "expected a DaemonSet object", 2),
    row(
        "adopt -f @binary.yaml",
        "stream did not contain valid UTF-8",
        2,
    ),
    row("why --assume-node @missing-node.yaml", "reading", 2),
    row(
        "why --assume-node @deploy.yaml",
        "--assume-node wants a Node manifest, found kind Deployment",
        2,
    ),
    row(
        "why",
        "the following required arguments were not provided",
        2,
    ),
    row("why n --assume-node @ok.yaml", "cannot be used with", 2),
    // Kubeconfig, connection, credentials.
    row("explain x", "no kubeconfig found", 3),
    row(
        "explain x --kubeconfig @missing-kubeconfig",
        "reading kubeconfig",
        3,
    ),
    row(
        "explain x --kubeconfig @kc-down --context nope",
        "context \"nope\" does not exist in the kubeconfig",
        3,
    ),
    row(
        "explain x --kubeconfig @kc-nocurrent",
        "the kubeconfig has no current-context; pass --context",
        3,
    ),
    row(
        "explain x --kubeconfig @kc-down",
        "cannot reach the apiserver",
        3,
    ),
    row(
        "explain x --kubeconfig @kc-down --request-timeout 2562047h",
        "cannot reach the apiserver",
        3,
    ),
    row(
        "explain x --kubeconfig @kc-exec",
        "the exec credential plugin",
        3,
    ),
    row(
        "orphan x --yes --kubeconfig @kc-exec",
        "token expired: run sso-login again",
        3,
    ),
];

fn expand(args: &str, files: &Files) -> Vec<String> {
    args.split(' ')
        .map(|a| match a.split_once('@') {
            Some((pre, name)) => format!("{pre}{}", files.path(name).display()),
            None => a.to_string(),
        })
        .collect()
}

#[test]
fn every_bad_input_row_is_one_error_line_and_its_exit_code() {
    let files = Files::new();
    let mut failures = Vec::new();
    for r in ROWS {
        let o = run(&expand(r.args, &files), files.dir.path());
        // One `error:` line, first; clap's usage errors follow theirs with tip/usage lines.
        let errors: Vec<&str> = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        let ok = o.code == r.code
            && errors.len() == 1
            && o.stderr.starts_with("error: ")
            && errors[0].contains(r.says)
            && !o.stderr.contains("panicked")
            && o.stdout.is_empty();
        if !ok {
            failures.push(format!("{}: exit {} {:?}", r.args, o.code, o.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}

/// An exec plugin in interactive mode writes to the terminal itself (stderr inherited, as
/// kubectl does); kubectl-ds adds its one error line and exits 3.
#[test]
fn exec_plugin_in_interactive_mode_speaks_for_itself() {
    let files = Files::new();
    let o = run(
        &expand("explain x --kubeconfig @kc-exec-tty", &files),
        files.dir.path(),
    );
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stderr.contains("token expired: run sso-login again"),
        "{}",
        o.stderr
    );
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", o.stderr);
    assert!(
        errors[0].contains("the exec credential plugin"),
        "{}",
        o.stderr
    );
}
