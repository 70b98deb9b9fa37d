//! kubectl's output conventions on `explain` (no cluster: explain from the saved bundle):
//! `-o jsonpath` side by side with kubectl's own JSONPath printer on the same document
//! (`kubectl label --local -f DOC -o jsonpath=...` evaluates it offline), `-o name`,
//! `custom-columns`, `--sort-by`, `--no-headers`, `-L`, `--show-labels`, `--problems` and
//! `--exit-code`.

use std::process::Command;

use serde_json::Value;

use crate::harness::Output;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bundle.yaml");

fn explain(extra: &[&str]) -> Output {
    let mut args = vec!["explain", "node-agent", "-n", "monitoring", "-f", FIXTURE];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
        .args(&args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-ds");
    Output::from(out)
}

fn explanation() -> Value {
    let o = explain(&["-o", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

/// kubectl's JSONPath printer over `doc` (saved with a name so that `label --local` takes it;
/// the label it adds lands in `.metadata`, which no template below reads).
fn kubectl_jsonpath(doc: &Value, template: &str) -> String {
    let mut doc = doc.clone();
    doc["metadata"] = serde_json::json!({"name": "explanation"});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new("kubectl")
        .args(["label", "--local", "-f"])
        .arg(&path)
        .args(["kds-test=1", "-o"])
        .arg(format!("jsonpath={template}"))
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .expect("kubectl is installed (the reference for kubectl's JSONPath dialect)");
    assert!(
        out.status.success(),
        "kubectl refused {template}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn jsonpath_matches_kubectl_on_the_same_document() {
    let doc = explanation();
    let templates = [
        r#"{.nodes[?(@.state=="Missing")].name}"#,
        r#"{.nodes[?(@.state!="Running")].name}"#,
        r#"{range .nodes[*]}{.name}{"\t"}{.state}{"\n"}{end}"#,
        r#"{range .nodes[*]}{.name}:{range .reasons[*]}[{.code}]{end}{"\n"}{end}"#,
        "{.nodes[*].reasons[*].code}",
        "{.nodes[0]}",
        "{.summary.states}",
        "{.summary.computed.desired} of {.summary.nodes}",
        "{.nodes[-1:].name}",
        "{.nodes[0:2].name}",
        "{.nodes[*].pod.name}",
        "{.nodes[?(@.pod)].name}",
        "{.nodes[*].nosuchkey}{.no.such.path}",
        "{.daemonSet['name','namespace']}",
        "{.nodes[*].shouldRun}",
        "{.rules}",
    ];
    // Not compared: `{..key}` over maps, which kubectl walks in Go's random map order
    // (jsonpath.go evalRecursive ranges over MapKeys), so its own output varies run to run.
    for t in templates {
        let ours = explain(&["-o", &format!("jsonpath={t}")]);
        assert_eq!(ours.code, 0, "{t}: {}", ours.stderr);
        assert_eq!(ours.stdout, kubectl_jsonpath(&doc, t), "template {t}");
    }
    // The file form reads the same template (a trailing newline dropped, as kubectl).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jsonpath");
    std::fs::write(&file, "{range .nodes[*]}{.name}{\"\\n\"}{end}\n").unwrap();
    let o = explain(&["-o", &format!("jsonpath-file={}", file.display())]);
    assert_eq!(
        o.stdout,
        kubectl_jsonpath(&doc, "{range .nodes[*]}{.name}{\"\\n\"}{end}")
    );
}

#[test]
fn name_custom_columns_sort_and_headers() {
    let doc = explanation();
    let nodes = doc["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 2, "the bundle explains several nodes");
    let name = explain(&["-o", "name"]);
    let expected: String = nodes
        .iter()
        .map(|n| format!("node/{}\n", n["name"].as_str().unwrap()))
        .collect();
    assert_eq!(name.stdout, expected);

    let cc = explain(&[
        "-o",
        "custom-columns=NODE:.name,STATE:.state,CODES:.reasons[*].code,NOPE:.nope",
        "--sort-by",
        "{.name}",
    ]);
    assert_eq!(cc.code, 0, "{}", cc.stderr);
    let lines: Vec<&str> = cc.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NODE", "STATE", "CODES", "NOPE"]
    );
    let mut names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    names.sort();
    let rows: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, names, "sorted by name");
    for (line, node) in lines[1..].iter().zip(&names) {
        let n = nodes.iter().find(|n| n["name"] == *node).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], n["state"].as_str().unwrap());
        let codes: Vec<&str> = n["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        let want = if codes.is_empty() {
            "<none>".to_string()
        } else {
            codes.join(",")
        };
        assert_eq!(cells[2], want, "{line}");
        assert_eq!(*cells.last().unwrap(), "<none>");
    }

    let bare = explain(&["--no-headers"]);
    assert_eq!(bare.stdout.lines().count(), nodes.len(), "{}", bare.stdout);
    assert!(!bare.stdout.contains("NODE") && !bare.stdout.contains("DaemonSet"));

    let bad = explain(&["--sort-by", ".nosuchfield"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.starts_with("error: couldn't find any field"),
        "{}",
        bad.stderr
    );
    let bad = explain(&["-o", "jsonpath={.nodes[?(@.state==\"x\""]);
    assert_eq!(bad.code, 2);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    let bad = explain(&["-o", "xml"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("allowed formats"), "{}", bad.stderr);
}

#[test]
fn label_columns_problems_and_exit_code() {
    let doc = explanation();
    let nodes = doc["nodes"].as_array().unwrap();
    let is_problem = |n: &Value| !matches!(n["state"].as_str(), Some("Running" | "NotEligible"));
    let problems: Vec<&str> = nodes
        .iter()
        .filter(|n| is_problem(n))
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(!problems.is_empty(), "the bundle has nodes with problems");
    assert!(problems.len() < nodes.len(), "and nodes without");

    let o = explain(&["--problems", "-o", "name"]);
    assert_eq!(o.code, 0, "without --exit-code problems do not fail");
    let shown: Vec<&str> = o
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("node/"))
        .collect();
    assert_eq!(shown, problems);

    let o = explain(&["--exit-code", "-o", "name"]);
    assert_eq!(o.code, 9, "{}", o.stderr);
    // Only healthy nodes selected: the gate passes.
    let healthy: Vec<&str> = nodes
        .iter()
        .filter(|n| !is_problem(n))
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    let mut args = vec!["--exit-code"];
    for h in &healthy {
        args.extend(["--node", h]);
    }
    assert_eq!(explain(&args).code, 0);

    // -L: a column per label key, headed by the key's last segment.
    let o = explain(&["-L", "kubernetes.io/hostname,nosuch", "--show-labels"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let header = o.stdout.lines().find(|l| l.starts_with("NODE")).unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["NODE", "STATE", "HOSTNAME", "NOSUCH", "LABELS", "REASON"]
    );
    for n in nodes {
        let name = n["name"].as_str().unwrap();
        let row = o
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        assert!(
            row.contains(&format!("kubernetes.io/hostname={name}")),
            "{row}"
        );
    }
}

/// Snapshots (insta) of the rendered tables: explain's table and wide table, with label
/// columns, custom-columns, and the problems-only bare rows. A change to any of them shows as
/// a diff to review (`cargo insta review`, or INSTA_UPDATE=always to rewrite).
#[test]
fn rendered_tables_snapshots() {
    let cases: [(&str, &[&str]); 5] = [
        ("explain_table", &[]),
        ("explain_wide", &["-o", "wide"]),
        (
            "explain_label_columns",
            &["-L", "kubernetes.io/hostname", "--show-labels"],
        ),
        (
            "explain_custom_columns",
            &[
                "-o",
                "custom-columns=NODE:.name,STATE:.state,POD:.pod.name,CODES:.reasons[*].code",
                "--sort-by",
                ".state",
            ],
        ),
        ("explain_problems_bare", &["--problems", "--no-headers"]),
    ];
    for (name, args) in cases {
        let o = explain(args);
        assert_eq!(o.code, 0, "{name}: {}", o.stderr);
        insta::assert_snapshot!(name, o.stdout);
    }
}
