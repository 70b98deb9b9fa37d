//! `kubectl ds why NODE` against the real control plane: one node with eligible, tainted,
//! selected-out and pending DaemonSets (states and reason codes from the JSON, as explain's),
//! `--assume-node` for a node that does not exist, and bad input.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{codes, NodeSpec, TestEnv, TEST_LABEL};

/// The documented `NodeExplanation` schema, strictly: a renamed or added field fails here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct NodeExplanation {
    api_version: String,
    kind: String,
    node: NodeInfo,
    rules: Value,
    summary: Summary,
    notes: Vec<String>,
    daemon_sets: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct NodeInfo {
    name: String,
    assumed: bool,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Summary {
    daemon_sets: usize,
    should_run: usize,
    running: usize,
    problems: usize,
    states: std::collections::BTreeMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Row {
    namespace: String,
    name: String,
    state: String,
    should_run: bool,
    should_continue_running: bool,
    pod: Option<Value>,
    reasons: Vec<Value>,
}

/// `why NODE -o json -n <test ns>` (or `--assume-node FILE`), parsed.
fn why_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["why"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let out = env.run(&all);
    assert_eq!(out.code, 0, "why failed: {}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("why JSON: {e}\n{}", out.stdout));
    assert_eq!(doc["apiVersion"], "kubectl-ds/v1");
    assert_eq!(doc["kind"], "NodeExplanation");
    let strict: NodeExplanation = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not the documented schema: {e}\n{doc:#}"));
    assert_eq!(strict.summary.daemon_sets, strict.daemon_sets.len());
    doc
}

fn rows(doc: &Value) -> Vec<(String, String, Vec<String>)> {
    doc["daemonSets"]
        .as_array()
        .expect("daemonSets")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
                codes(r),
            )
        })
        .collect()
}

fn row<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["daemonSets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {doc:#}"))
}

#[tokio::test]
async fn one_node_every_daemon_set_and_an_assumed_node() {
    let mut env = TestEnv::new("why").await;
    let taint = json!({"key": "dedicated", "value": "infra", "effect": "NoSchedule"});
    let node = env
        .node(
            "mix",
            NodeSpec {
                labels: vec![("pool", "general")],
                taints: vec![taint],
                cpu: Some("4"),
                ..Default::default()
            },
        )
        .await;
    let tolerate = json!([{"key": "dedicated", "operator": "Exists"}]);
    env.create_ds(env.daemon_set("tolerant", json!({"tolerations": tolerate})))
        .await;
    env.create_ds(env.daemon_set("tainted", json!({}))).await;
    env.create_ds(env.daemon_set(
        "selected-out",
        json!({"tolerations": tolerate, "nodeSelector": {TEST_LABEL: env.ns, "pool": "gpu"}}),
    ))
    .await;
    env.create_ds(env.daemon_set(
        "too-big",
        json!({"tolerations": tolerate, "containers": [{
            "name": "agent", "image": "registry.example/agent:1",
            "resources": {"requests": {"cpu": "8"}}
        }]}),
    ))
    .await;
    // Admission refuses its pods (no such PriorityClass): Missing, FailedCreate from the
    // DaemonSet's events, which why reads only for such rows.
    env.create_ds(env.daemon_set(
        "no-class",
        json!({"tolerations": tolerate, "priorityClassName": "kds-no-such-class"}),
    ))
    .await;
    env.wait_rolled_out("tolerant", 1).await;

    // The real scheduler leaves too-big's pod pending: wait until why sees it.
    let mut doc = Value::Null;
    for _ in 0..120 {
        doc = why_json(&env, &[&node]);
        if row(&doc, "too-big")["state"] == "Pending"
            && codes(row(&doc, "no-class")).contains(&"FailedCreate".to_string())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let got = rows(&doc);
    let names: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        ["no-class", "too-big", "tolerant", "selected-out", "tainted"],
        "problems first, NotEligible last: {doc:#}"
    );
    assert_eq!(got[0].1, "Missing");
    assert_eq!(got[0].2, ["FailedCreate"]);
    assert!(row(&doc, "no-class")["reasons"][0]["eventMessage"]
        .as_str()
        .unwrap()
        .contains("kds-no-such-class"));
    let got = &got[1..];
    assert!(
        got[0].2.contains(&"InsufficientResources".to_string()),
        "{got:?}"
    );
    assert_eq!(got[1].1, "Running");
    assert!(got[1].2.is_empty(), "{got:?}");
    assert_eq!(got[2].1, "NotEligible");
    assert_eq!(got[2].2[0], "NodeSelectorMismatch");
    assert_eq!(got[3].1, "NotEligible");
    assert_eq!(got[3].2[0], "UntoleratedTaint");
    // The pod named is the one the real controller created there.
    let pods = env.pods("tolerant").await;
    assert_eq!(
        row(&doc, "tolerant")["pod"]["name"],
        pods[0].metadata.name.clone().unwrap()
    );
    assert_eq!(doc["node"]["name"], node);
    assert_eq!(doc["node"]["assumed"], false);
    assert_eq!(doc["summary"]["problems"], 2);
    assert_eq!(doc["summary"]["shouldRun"], 3);
    // Every row is the verdict explain gives that node for that DaemonSet.
    for r in doc["daemonSets"].as_array().unwrap() {
        let explained = env.explain_json(r["name"].as_str().unwrap());
        let verdict = crate::harness::node_verdict(&explained, &node);
        assert_eq!(verdict["state"], r["state"], "{r:#}\n{verdict:#}");
        assert_eq!(codes(verdict), codes(r), "{r:#}\n{verdict:#}");
    }

    // The table and the wide table say the same, problems first.
    let table = env.run(&["why", &node]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines[0], format!("Node {node}"));
    let first = lines
        .iter()
        .position(|l| l.starts_with("NAMESPACE"))
        .expect("a table");
    let cells: Vec<&str> = lines[first + 1].split_whitespace().take(4).collect();
    assert_eq!(
        cells,
        [env.ns.as_str(), "no-class", "Missing", "FailedCreate:"]
    );
    let wide = env.run(&["why", &node, "-o", "wide"]);
    assert!(wide.stdout.contains("SHOULD-RUN"), "{}", wide.stdout);
    let yaml = env.run(&["why", &node, "-o", "yaml"]);
    let yaml: Value = serde_saphyr::from_str(&yaml.stdout).expect("YAML");
    assert_eq!(yaml["kind"], "NodeExplanation");
    assert_eq!(yaml["daemonSets"].as_array().unwrap().len(), 5);

    // A node of another shape, not in the cluster: untainted, pool=gpu, 4 CPUs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: planned-gpu\n  labels: {{{TEST_LABEL}: {}, pool: gpu}}\n\
             status:\n  allocatable: {{cpu: \"4\", memory: 8Gi, pods: \"110\"}}\n",
            env.ns
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let assumed = why_json(&env, &["--assume-node", &file]);
    assert_eq!(assumed["node"]["assumed"], true);
    assert!(assumed["notes"][0]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let got = rows(&assumed);
    assert_eq!(got[0].0, "too-big");
    assert_eq!(got[0].1, "WouldBePending");
    assert_eq!(got[0].2, ["InsufficientResources"]);
    for name in ["no-class", "selected-out", "tainted", "tolerant"] {
        let r = row(&assumed, name);
        assert_eq!(r["state"], "WouldRun", "{r:#}");
        assert!(r["pod"].is_null());
    }

    // Bad input: one line, documented codes, nothing else printed.
    let missing = env.run(&["why", &format!("{}-nosuch", env.ns)]);
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error: node "),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());
    let unreadable = env.run(&["why", "--assume-node", "/nonexistent/node.yaml"]);
    assert_eq!(unreadable.code, 2, "{}", unreadable.stderr);
    assert_eq!(
        unreadable.stderr.lines().count(),
        1,
        "{}",
        unreadable.stderr
    );
    std::fs::write(
        dir.path().join("pod.yaml"),
        "kind: Pod\nmetadata: {name: x}\n",
    )
    .unwrap();
    let wrong = env.run(&[
        "why",
        "--assume-node",
        &dir.path().join("pod.yaml").display().to_string(),
    ]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("wants a Node manifest"),
        "{}",
        wrong.stderr
    );
}
