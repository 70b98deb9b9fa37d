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

/// A stand-in apiserver for kubectl's own `get` printer: discovery naming one resource
/// (configmaps), and a list whose items are `doc`'s nodes (each with a ConfigMap's
/// apiVersion/kind/metadata added; kubectl prints them as unstructured objects, so every other
/// field stays). `kubectl get cm -o custom-columns=... --sort-by=...` then runs kubectl's
/// custom-columns printer and its sorter (get's only; no `--local` command has `--sort-by`)
/// over the same rows `-o custom-columns` prints here. It answers until the test ends.
struct KubectlGet {
    dir: tempfile::TempDir,
}

impl KubectlGet {
    fn serving(rows: &[Value]) -> KubectlGet {
        use std::io::{BufRead, BufReader, Write as _};
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut item = r.clone();
                item["apiVersion"] = "v1".into();
                item["kind"] = "ConfigMap".into();
                item["metadata"] = serde_json::json!({"name": r["name"], "namespace": "default"});
                item
            })
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {}, "items": items});
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut head = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                while reader.read_line(&mut head).map(|n| n > 2).unwrap_or(false) {}
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let path = path.split('?').next().unwrap_or("");
                let body = match path {
                    "/version" => {
                        serde_json::json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
                    }
                    "/api" => serde_json::json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
                    "/apis" => {
                        serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
                    }
                    "/api/v1" => {
                        serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1",
                        "resources": [{"name": "configmaps", "singularName": "configmap", "namespaced": true,
                            "kind": "ConfigMap", "verbs": ["get", "list"]}]})
                    }
                    "/api/v1/namespaces/default/configmaps" => list.clone(),
                    _ => Value::Null,
                };
                let (status, body) = if body.is_null() {
                    ("404 Not Found", "{}".to_string())
                } else {
                    ("200 OK", body.to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://{addr}'}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, namespace: default}}}}]\ncurrent-context: x\n"),
        )
        .unwrap();
        KubectlGet { dir }
    }

    /// Does kubectl refuse these flags (a non-zero exit)?
    fn refuses(&self, flags: &[&str]) -> bool {
        !Command::new("kubectl")
            .args(["get", "configmaps"])
            .args(flags)
            .env("KUBECONFIG", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed")
            .status
            .success()
    }

    fn get(&self, flags: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(["get", "configmaps"])
            .args(flags)
            .env("KUBECONFIG", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed (the reference for kubectl's printers)");
        assert!(
            out.status.success(),
            "kubectl get {flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn custom_columns_and_sort_by_match_kubectl_get() {
    let doc = explanation();
    let nodes = doc["nodes"].as_array().unwrap();
    let kubectl = KubectlGet::serving(nodes);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("columns.txt");
    std::fs::write(
        &file,
        "NODE   RESTARTS       POD\n.name  .pod.restarts  .pod.name\n",
    )
    .unwrap();
    let file_flag = format!("custom-columns-file={}", file.display());
    // (flags, the column holding the --sort-by key). kubectl orders by the key only: its
    // sort.Sort is not stable and sorter.go RuntimeSort.Less answers true for any object
    // without the key, so the order among equal or missing keys is Go's sort algorithm's
    // accident. Those cases compare the key column in order and the rows as a set (ours keeps
    // the input order there, missing keys first); with distinct keys the output must be equal.
    let cases: Vec<(Vec<&str>, Option<usize>)> = vec![
        (vec!["-o", "custom-columns=NODE:.name,STATE:.state"], None),
        // Missing fields print <none>; a list, its values joined by commas.
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,POD:.pod.name,NOPE:.nope,CODES:.reasons[*].code",
            ],
            None,
        ),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,STATE:.state",
                "--sort-by=.name",
            ],
            Some(0),
        ),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,STATE:.state",
                "--sort-by={.state}",
            ],
            Some(1),
        ),
        // Numbers sort as numbers; objects without the field first.
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,RESTARTS:.pod.restarts",
                "--sort-by=.pod.restarts",
            ],
            Some(1),
        ),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,PHASE:.pod.phase",
                "--sort-by=.pod.phase",
            ],
            Some(1),
        ),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,POD:.pod.name",
                "--sort-by=.pod.name",
            ],
            Some(1),
        ),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,REVISION:.pod.revision",
                "--sort-by=.pod.revision",
                "--no-headers",
            ],
            Some(1),
        ),
        (vec!["-o", file_flag.as_str(), "--sort-by=.name"], Some(0)),
        (
            vec![
                "-o",
                "custom-columns=NODE:.name,SUMMARY:.summary.nodes",
                "--no-headers",
            ],
            None,
        ),
    ];
    // An index past a list's end is an error in both (jsonpath.go evalArray), sorted or not.
    for flags in [
        &[
            "-o",
            "custom-columns=NODE:.name",
            "--sort-by=.reasons[0].code",
        ][..],
        &["-o", "custom-columns=NODE:.name,FIRST:.reasons[0].code"][..],
    ] {
        let ours = explain(flags);
        assert!(
            nodes
                .iter()
                .any(|n| n["reasons"].as_array().is_some_and(Vec::is_empty)),
            "a node without reasons"
        );
        assert!(kubectl.refuses(flags), "{flags:?}");
        assert_eq!(ours.code, 2, "{flags:?}: {}", ours.stdout);
        assert!(
            ours.stderr.contains("array index out of bounds"),
            "{}",
            ours.stderr
        );
    }
    let cells =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    for (flags, key) in &cases {
        let ours = explain(flags);
        assert_eq!(ours.code, 0, "{flags:?}: {}", ours.stderr);
        let theirs = kubectl.get(flags);
        let Some(key) = key else {
            assert_eq!(ours.stdout, theirs, "{flags:?}");
            continue;
        };
        let headers = !flags.contains(&"--no-headers");
        let rows = |text: &str| -> Vec<Vec<String>> {
            text.lines().skip(usize::from(headers)).map(cells).collect()
        };
        let (a, b) = (rows(&ours.stdout), rows(&theirs));
        let keys =
            |r: &[Vec<String>]| -> Vec<String> { r.iter().map(|c| c[*key].clone()).collect() };
        assert_eq!(
            keys(&a),
            keys(&b),
            "{flags:?}: the sort keys in order\n{}\n{theirs}",
            ours.stdout
        );
        let mut distinct = keys(&a);
        distinct.sort();
        distinct.dedup();
        if distinct.len() == a.len() {
            assert_eq!(ours.stdout, theirs, "{flags:?}");
        } else {
            let sorted = |mut r: Vec<Vec<String>>| {
                r.sort();
                r
            };
            assert_eq!(sorted(a), sorted(b), "{flags:?}: the same rows");
            if headers {
                assert_eq!(
                    ours.stdout.lines().next(),
                    theirs.lines().next(),
                    "{flags:?}"
                );
            }
        }
    }
}

/// The explain JSON schema (README "JSON"), parsed strictly: an added, renamed or retyped field,
/// or a reason code not listed here, fails the test (ripgrep's printer tests do the same).
mod strict {
    // Fields exist to be checked by the parse, not read.
    #![allow(dead_code)]

    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Explanation {
        pub api_version: String,
        pub kind: String,
        pub daemon_set: DaemonSetInfo,
        pub rules: Rules,
        pub summary: Summary,
        pub nodes: Vec<NodeVerdict>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct DaemonSetInfo {
        pub namespace: String,
        pub name: String,
        pub uid: String,
        pub generation: Option<i64>,
        pub observed_generation: Option<i64>,
        pub update_strategy: String,
        pub current_revision: Option<String>,
        pub status: Counters,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Counters {
        pub desired: i32,
        pub current: i32,
        pub ready: i32,
        pub up_to_date: i32,
        pub available: i32,
        pub misscheduled: i32,
        pub unavailable: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Rules {
        pub server_version: Option<String>,
        pub template_generation_counts: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Summary {
        pub nodes: usize,
        pub shown: usize,
        pub computed: Counters,
        pub excluded: Vec<Exclusion>,
        pub reconciliation: String,
        pub states: BTreeMap<String, usize>,
        pub stale: bool,
        pub notes: Vec<String>,
        pub daemon_set_reasons: Vec<Reason>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Exclusion {
        pub code: String,
        pub nodes: usize,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct NodeVerdict {
        pub name: String,
        pub state: State,
        pub should_run: bool,
        pub should_continue_running: bool,
        pub pod: Option<PodInfo>,
        pub reasons: Vec<Reason>,
    }

    #[derive(Debug, Deserialize, PartialEq, Eq)]
    pub enum State {
        Missing,
        Pending,
        Unhealthy,
        Misscheduled,
        Terminating,
        Outdated,
        Running,
        NotEligible,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PodInfo {
        pub name: String,
        pub uid: String,
        pub phase: String,
        pub ready: bool,
        pub revision: Option<String>,
        pub revision_number: Option<i64>,
        pub restarts: i32,
        pub node_name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Fix {
        pub target: FixTarget,
        pub description: String,
        #[serde(default)]
        pub patch: Option<serde_json::Value>,
    }

    #[derive(Debug, Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "camelCase")]
    pub enum FixTarget {
        Manifest,
        Node,
        Cluster,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Entry {
        pub count: u32,
        pub reason: String,
        #[serde(default)]
        pub taint: Option<String>,
    }

    /// Every reason code with its facts, `message` and the optional `fix`.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "code", deny_unknown_fields, rename_all_fields = "camelCase")]
    pub enum Reason {
        NodeNameMismatch {
            message: String,
            fix: Option<Fix>,
            wanted: String,
        },
        NodeSelectorMismatch {
            message: String,
            fix: Option<Fix>,
            key: String,
            wanted: String,
            actual: Option<String>,
        },
        NodeAffinityMismatch {
            message: String,
            fix: Option<Fix>,
            term: Option<usize>,
            expression: String,
        },
        UntoleratedTaint {
            message: String,
            fix: Option<Fix>,
            key: String,
            value: Option<String>,
            effect: String,
            existing_pod: String,
        },
        NodeNotReady {
            message: String,
            fix: Option<Fix>,
            taint: String,
            ready_condition: Option<String>,
        },
        Cordoned {
            message: String,
            fix: Option<Fix>,
        },
        AutoTolerated {
            message: String,
            fix: Option<Fix>,
            taints: Vec<String>,
        },
        Unschedulable {
            message: String,
            fix: Option<Fix>,
            scheduler_message: String,
            entries: Vec<Entry>,
        },
        InsufficientResources {
            message: String,
            fix: Option<Fix>,
            resource: String,
            requested: String,
            allocatable: String,
            used_by_other_pods: String,
        },
        HostPortConflict {
            message: String,
            fix: Option<Fix>,
            port: i32,
            protocol: String,
            host_ip: String,
            held_by: String,
        },
        TooManyPods {
            message: String,
            fix: Option<Fix>,
            allocatable: i64,
            used: i64,
        },
        Preemption {
            message: String,
            fix: Option<Fix>,
            priority_class: Option<String>,
            priority: Option<i32>,
            victims: Vec<String>,
            pdb_violations: usize,
        },
        PreemptionNotHelpful {
            message: String,
            fix: Option<Fix>,
            priority_class: Option<String>,
            priority: Option<i32>,
            why: String,
        },
        NoPriorityClass {
            message: String,
            fix: Option<Fix>,
        },
        SchedulingGated {
            message: String,
            fix: Option<Fix>,
            gates: Vec<String>,
        },
        AwaitingScheduler {
            message: String,
            fix: Option<Fix>,
        },
        CrashLoopBackOff {
            message: String,
            fix: Option<Fix>,
            container: String,
            restarts: i32,
            last_exit_code: Option<i32>,
            last_reason: Option<String>,
        },
        ImagePullBackOff {
            message: String,
            fix: Option<Fix>,
            container: String,
            image: String,
            detail: Option<String>,
        },
        ErrImagePull {
            message: String,
            fix: Option<Fix>,
            container: String,
            image: String,
            detail: Option<String>,
        },
        ContainerCreating {
            message: String,
            fix: Option<Fix>,
            container: String,
        },
        ContainerWaiting {
            message: String,
            fix: Option<Fix>,
            container: String,
            reason: String,
            detail: Option<String>,
        },
        PodNotReady {
            message: String,
            fix: Option<Fix>,
            detail: Option<String>,
        },
        PodFailed {
            message: String,
            fix: Option<Fix>,
            pod: String,
            detail: Option<String>,
        },
        FailedCreate {
            message: String,
            fix: Option<Fix>,
            event_message: String,
            count: i32,
            last_seen: Option<String>,
        },
        FailedPodBackoff {
            message: String,
            fix: Option<Fix>,
            event_message: String,
        },
        NotYetCreated {
            message: String,
            fix: Option<Fix>,
        },
        OutdatedRevision {
            message: String,
            fix: Option<Fix>,
            pod_revision: Option<String>,
            current_revision: Option<String>,
            on_delete: bool,
        },
        DuplicatePods {
            message: String,
            fix: Option<Fix>,
            pods: Vec<String>,
        },
        DaemonSetDeleting {
            message: String,
            fix: Option<Fix>,
        },
        SelectingAll {
            message: String,
            fix: Option<Fix>,
        },
        Terminating {
            message: String,
            fix: Option<Fix>,
            pod: String,
            since: Option<String>,
        },
        AfterTerminating {
            message: String,
            fix: Option<Fix>,
            pods: Vec<String>,
            surge: bool,
        },
        AdmissionRefused {
            message: String,
            fix: Option<Fix>,
        },
        EvictionLoop {
            message: String,
            fix: Option<Fix>,
            taint: String,
            toleration_seconds: i64,
        },
    }
}

#[test]
fn explain_json_parses_into_strict_structs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let runs: [(&str, &str, &str); 4] = [
        ("bundle.yaml", "node-agent", "monitoring"),
        ("preemption.yaml", "node-agent", "kube-system"),
        ("fix-priority.yaml", "log-agent", "logging"),
        ("fix-resources.yaml", "log-agent", "logging"),
    ];
    let mut fixes = 0;
    for (file, name, ns) in runs {
        let path = format!("{dir}{file}");
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
            .args(["explain", name, "-n", ns, "-f", &path, "-o", "json"])
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .output()
            .expect("run kubectl-ds");
        let out = Output::from(out);
        assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        let e: strict::Explanation = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|err| panic!("{file}: {err}\n{}", out.stdout));
        assert_eq!(
            (e.api_version.as_str(), e.kind.as_str()),
            ("kubectl-ds/v1", "Explanation")
        );
        assert_eq!(e.daemon_set.name, name);
        assert_eq!(e.summary.shown, e.nodes.len());
        fixes += out.stdout.matches("\"fix\":").count();
    }
    assert!(
        fixes >= 3,
        "the fixtures carry fixes, parsed above: {fixes}"
    );
}
