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
