//! kubectl's output conventions on the real control plane: `--exit-code` and `--problems` on
//! one DaemonSet, the overview sorted by problems with its totals, `-o name`, `-o jsonpath`
//! and `-L` on a live cluster's explanation.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{NodeSpec, TestEnv, TEST_LABEL};

/// Waits until every node of the explanation of `ds` is in `want`.
async fn wait_all(env: &TestEnv, ds: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json(ds);
        let nodes = last["nodes"].as_array().unwrap();
        if !nodes.is_empty() && nodes.iter().all(|n| n["state"] == want) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{ds} never {want} everywhere: {:#}", last["nodes"]);
}

#[tokio::test]
async fn exit_code_problems_and_overview() {
    let mut env = TestEnv::new("output").await;
    let a = env.node("a", NodeSpec::default()).await;
    let b = env.node("b", NodeSpec::default()).await;
    env.create_ds(env.daemon_set("healthy", json!({}))).await;
    // Requests more CPU than any node has: pods are created and stay Pending.
    let big = json!({"containers": [{"name": "agent", "image": "registry.example/agent:1",
        "resources": {"requests": {"cpu": "100"}}}]});
    env.create_ds(env.daemon_set("broken", big)).await;
    env.wait_rolled_out("healthy", 2).await;
    wait_all(&env, "healthy", "Running").await;
    wait_all(&env, "broken", "Pending").await;
    let sel = format!("{TEST_LABEL}={}", env.ns);

    // --exit-code: 0 when every node runs a current available pod, 9 otherwise.
    let ok = env.run(&["explain", "healthy", "-l", &sel, "--exit-code"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let bad = env.run(&["explain", "broken", "-l", &sel, "--exit-code", "-o", "name"]);
    assert_eq!(bad.code, 9, "{}", bad.stderr);
    let mut want = vec![format!("node/{a}"), format!("node/{b}")];
    want.sort();
    let mut got: Vec<String> = bad.stdout.lines().map(String::from).collect();
    got.sort();
    assert_eq!(got, want);

    // --problems: nothing for the healthy one, both nodes for the broken one.
    let none = env.run(&["explain", "healthy", "-l", &sel, "--problems", "-o", "name"]);
    assert_eq!((none.code, none.stdout.as_str()), (0, ""));
    let jp = env.run(&[
        "explain",
        "broken",
        "-l",
        &sel,
        "--problems",
        "--sort-by",
        ".name",
        "-o",
        r#"jsonpath={.nodes[?(@.state=="Pending")].name}"#,
    ]);
    let mut names = [a.clone(), b.clone()];
    names.sort();
    assert_eq!(jp.stdout, names.join(" "), "{}", jp.stderr);

    // -L: the test label as a column, its value on every row.
    let l = env.run(&[
        "explain",
        "healthy",
        "-l",
        &sel,
        "-L",
        TEST_LABEL,
        "--no-headers",
    ]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert_eq!(l.stdout.lines().count(), 2, "{}", l.stdout);
    for line in l.stdout.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1..3], ["Running", env.ns.as_str()], "{line}");
    }

    // The overview: the broken DaemonSet first, totals over both.
    let o = env.run(&["explain", "-o", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let list: Value = serde_json::from_str(&o.stdout).unwrap();
    let order: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["daemonSet"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["broken", "healthy"]);
    let t = &list["totals"];
    assert_eq!(
        (
            &t["daemonSets"],
            &t["withProblems"],
            &t["problems"],
            &t["desired"]
        ),
        (&json!(2), &json!(1), &json!(2), &json!(4)),
        "{t:#}"
    );
    let table = env.run(&["explain", "--exit-code"]);
    assert_eq!(table.code, 9, "{}", table.stderr);
    let last = table.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("Total: 2 DaemonSets (1 with problems), 4 desired, 2 ready, 2 nodes"),
        "{}",
        table.stdout
    );
    let names = env.run(&["explain", "--problems", "-o", "name"]);
    assert_eq!(names.stdout, "daemonset.apps/broken\n");
}

/// explain -> --fix -> rollout-preview -f -> kubectl apply -> the node runs the pod.
#[tokio::test]
async fn fix_round_trip_tolerates_the_taint() {
    let mut env = TestEnv::new("fix").await;
    let plain = env.node("plain", NodeSpec::default()).await;
    let tainted = env
        .node(
            "tainted",
            NodeSpec {
                taints: vec![
                    json!({"key": "kds.dev/gpu", "value": "true", "effect": "NoSchedule"}),
                ],
                ..NodeSpec::default()
            },
        )
        .await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 1).await;
    let sel = format!("{TEST_LABEL}={}", env.ns);

    // The JSON carries the fix on the reason; the table, one line.
    let e = env.explain_json("agent");
    let v = e["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == tainted.as_str())
        .unwrap();
    assert_eq!(v["state"], "NotEligible");
    let r = &v["reasons"][0];
    assert_eq!(r["code"], "UntoleratedTaint");
    assert_eq!(r["fix"]["target"], "manifest");
    assert_eq!(
        r["fix"]["patch"]["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "kds.dev/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])
    );
    let table = env.run(&["explain", "agent", "-l", &sel]);
    let line = format!("Fix {tainted} UntoleratedTaint: add a toleration for the taint kds.dev/gpu=true:NoSchedule");
    assert!(table.stdout.contains(&line), "{}", table.stdout);

    // --fix on a node with nothing to fix: one error line, exit 2.
    let none = env.run(&["explain", "agent", "--node", &plain, "--fix"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.starts_with("error: node "), "{}", none.stderr);

    let fixed = env.run(&["explain", "agent", "--node", &tainted, "--fix"]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let dir = tempfile::tempdir().unwrap();
    let patched = dir.path().join("patched.yaml");
    std::fs::write(&patched, &fixed.stdout).unwrap();
    let p = patched.to_str().unwrap();

    let preview = env.run(&["rollout-preview", "agent", "-f", p, "-o", "json"]);
    assert_eq!(preview.code, 0, "{}{}", preview.stdout, preview.stderr);
    let doc: Value = serde_json::from_str(&preview.stdout).unwrap();
    assert_eq!(
        action_of(&doc, &tainted).as_deref(),
        Some("Create"),
        "the preview creates the pod on the tainted node: {doc:#}"
    );

    // The same preview through kubectl's output flags.
    let name = env.run(&["rollout-preview", "agent", "-f", p, "-o", "name"]);
    // The toleration changes the template: the plain node's pod restarts too.
    assert_eq!(
        name.stdout,
        format!("node/{tainted}\nnode/{plain}\n"),
        "{}",
        name.stderr
    );
    let jp = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        p,
        "-o",
        r#"jsonpath={.nodes[?(@.action=="Create")].name}"#,
    ]);
    assert_eq!(jp.stdout, tainted, "{}", jp.stderr);
    let cc = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        p,
        "-o",
        "custom-columns=NODE:.name,ACTION:.action",
        "--no-headers",
        "--sort-by",
        ".name",
    ]);
    let mut want = [format!("{plain} Restart"), format!("{tainted} Create")];
    want.sort();
    // Other tests' nodes are listed too (Unchanged): keep this test's.
    let got: Vec<String> = cc
        .stdout
        .lines()
        .filter(|l| l.starts_with(env.ns.as_str()))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(got, want, "{}", cc.stderr);

    // -L / --show-labels: node label columns in the per-node table, before the reason.
    let table = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        p,
        "-L",
        &format!("{TEST_LABEL},kds.dev/nosuch"),
        "--show-labels",
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let header = table
        .stdout
        .lines()
        .find(|l| l.starts_with("NODE "))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NODE", "ACTION", "KDS-TEST", "NOSUCH", "LABELS", "REASON"]
    );
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{tainted} ")))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "Create", "{row}");
    assert_eq!(cells[2], env.ns, "{row}");
    assert!(
        cells[3].contains(&format!("{TEST_LABEL}={}", env.ns)),
        "the NOSUCH cell is empty, LABELS follows: {row}"
    );

    let kc = crate::harness::kubeconfig();
    let apply = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["apply", "-f", p])
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    env.wait_rolled_out("agent", 2).await;
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json("agent");
        if crate::harness::node_verdict(&last, &tainted)["state"] == "Running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{tainted} never Running: {last:#}");
}

/// A pod too big for its node: explain offers the largest request that fits; --fix writes it,
/// rollout-preview -f shows the node's pod replaced, kubectl apply makes it Running.
#[tokio::test]
async fn fix_round_trip_lowers_the_request() {
    let mut env = TestEnv::new("fixreq").await;
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..NodeSpec::default()
            },
        )
        .await;
    let manifest = env.daemon_set(
        "agent",
        json!({"containers": [{"name": "agent", "image": "registry.example/agent:1",
            "resources": {"requests": {"cpu": "1500m", "memory": "64Mi"}}}]}),
    );
    env.create_ds(manifest).await;
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json("agent");
        let v = crate::harness::node_verdict(&last, &small);
        let has = |code: &str| {
            v["reasons"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["code"] == code))
        };
        if v["state"] == "Pending" && has("InsufficientResources") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let v = crate::harness::node_verdict(&last, &small);
    let r = v["reasons"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["code"] == "InsufficientResources"))
        .unwrap_or_else(|| panic!("{last:#}"));
    assert_eq!(r["fix"]["target"], "manifest", "{r:#}");
    assert_eq!(
        r["fix"]["patch"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "agent", "resources": {"requests": {"cpu": "1"}}}])
    );

    let fixed = env.run(&["explain", "agent", "--node", &small, "--fix"]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let dir = tempfile::tempdir().unwrap();
    let patched = dir.path().join("patched.yaml");
    std::fs::write(&patched, &fixed.stdout).unwrap();
    let p = patched.to_str().unwrap();
    let preview = env.run(&["rollout-preview", "agent", "-f", p, "-o", "json"]);
    assert_eq!(preview.code, 0, "{}{}", preview.stdout, preview.stderr);
    let doc: Value = serde_json::from_str(&preview.stdout).unwrap();
    assert_eq!(
        action_of(&doc, &small).as_deref(),
        Some("Restart"),
        "the pending pod is replaced by one that fits: {doc:#}"
    );

    let apply = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(crate::harness::kubeconfig())
        .args(["apply", "-f", p])
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    for _ in 0..240 {
        last = env.explain_json("agent");
        if crate::harness::node_verdict(&last, &small)["state"] == "Running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{small} never Running: {last:#}");
}

/// The rollout-preview action of `node`, wherever the document lists it.
fn action_of(doc: &Value, node: &str) -> Option<String> {
    match doc {
        Value::Object(m) => {
            if m.get("name").and_then(Value::as_str) == Some(node) {
                if let Some(a) = m.get("action").and_then(Value::as_str) {
                    return Some(a.to_string());
                }
            }
            m.values().find_map(|v| action_of(v, node))
        }
        Value::Array(a) => a.iter().find_map(|v| action_of(v, node)),
        _ => None,
    }
}
