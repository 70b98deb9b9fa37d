//! `kubectl ds explain` against the real control plane: every state and reason code a cluster
//! produces, checked in the strict JSON schema and against the real controller's counters.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{json, Value};

use crate::harness::{
    codes, node_verdict, server_version, wait_for, NodeSpec, TestEnv, TEST_LABEL,
};

fn state(e: &Value, node: &str) -> String {
    node_verdict(e, node)["state"].as_str().unwrap().to_string()
}

fn reason<'a>(e: &'a Value, node: &str, code: &str) -> &'a Value {
    node_verdict(e, node)["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("{node} has no {code}: {:#}", node_verdict(e, node)))
}

/// Waits until explain says `node` is in `want`, returning that explanation.
async fn wait_state(env: &TestEnv, ds: &str, node: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json(ds);
        if state(&last, node) == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{node} never became {want}: {:#}",
        node_verdict(&last, node)
    );
}

/// Waits until explain gives `node` the reason `code`, returning that explanation.
async fn wait_reason(env: &TestEnv, ds: &str, node: &str, code: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json(ds);
        if codes(node_verdict(&last, node)).iter().any(|c| c == code) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{node} never got {code}: {:#}", node_verdict(&last, node));
}

fn taint(key: &str, value: &str, effect: &str) -> Value {
    json!({"key": key, "value": value, "effect": effect})
}

/// A pod bound straight to a node (no scheduler), holding resources or ports there.
async fn holder(env: &TestEnv, name: &str, node: &str, container: Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": env.ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [container]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

#[tokio::test]
async fn placement_rules_and_counters() {
    let mut env = TestEnv::new("place").await;
    let plain = env.node("plain", NodeSpec::default()).await;
    let batch = env
        .node(
            "batch",
            NodeSpec {
                labels: vec![("tier", "batch")],
                ..Default::default()
            },
        )
        .await;
    let nosched = env
        .node(
            "nosched",
            NodeSpec {
                taints: vec![taint("dedicated", "db", "NoSchedule")],
                ..Default::default()
            },
        )
        .await;
    let noexec = env
        .node(
            "noexec",
            NodeSpec {
                taints: vec![taint("maintenance", "now", "NoExecute")],
                ..Default::default()
            },
        )
        .await;
    let tolerated = env
        .node(
            "tolerated",
            NodeSpec {
                taints: vec![taint("gpu", "yes", "NoSchedule")],
                ..Default::default()
            },
        )
        .await;
    let cordoned = env
        .node(
            "cordoned",
            NodeSpec {
                unschedulable: true,
                ..Default::default()
            },
        )
        .await;
    // The simulated kubelet reports MemoryPressure; the node lifecycle controller taints.
    let pressure = env
        .node(
            "pressure",
            NodeSpec {
                memory_pressure: true,
                ..Default::default()
            },
        )
        .await;
    let exec_taint = taint("drain", "soon", "NoExecute");
    let tolexec = env
        .node(
            "tolexec",
            NodeSpec {
                taints: vec![exec_taint],
                ..Default::default()
            },
        )
        .await;
    let manifest = env.daemon_set(
        "agent",
        json!({
            "tolerations": [
                {"key": "gpu", "operator": "Exists"},
                {"key": "drain", "operator": "Equal", "value": "soon", "effect": "NoExecute"}
            ],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]}
            ]}}}
        }),
    );
    env.create_ds(manifest).await;
    env.wait_rolled_out("agent", 5).await;
    let e = env.explain_json("agent");

    assert_eq!(
        state(&e, &tolexec),
        "Running",
        "a tolerated NoExecute taint"
    );
    let e = wait_reason(&env, "agent", &pressure, "AutoTolerated").await;
    assert_eq!(state(&e, &pressure), "Running");
    let auto = reason(&e, &pressure, "AutoTolerated");
    assert_eq!(
        auto["taints"][0],
        "node.kubernetes.io/memory-pressure:NoSchedule"
    );

    assert_eq!(state(&e, &plain), "Running");
    assert_eq!(state(&e, &tolerated), "Running");
    assert_eq!(state(&e, &cordoned), "Running");
    assert!(codes(node_verdict(&e, &cordoned)).contains(&"Cordoned".to_string()));
    assert_eq!(state(&e, &batch), "NotEligible");
    let aff = reason(&e, &batch, "NodeAffinityMismatch");
    assert_eq!(aff["term"], 0);
    assert!(aff["expression"]
        .as_str()
        .unwrap()
        .contains("tier NotIn [batch]"));
    assert_eq!(state(&e, &nosched), "NotEligible");
    let t = reason(&e, &nosched, "UntoleratedTaint");
    assert_eq!(
        (
            t["key"].as_str(),
            t["effect"].as_str(),
            t["existingPod"].as_str()
        ),
        (Some("dedicated"), Some("NoSchedule"), Some("kept"))
    );
    assert_eq!(
        reason(&e, &noexec, "UntoleratedTaint")["existingPod"],
        "deleted"
    );

    // The summary reconciles with the real controller's counters.
    let computed = &e["summary"]["computed"];
    let status = &e["daemonSet"]["status"];
    for k in [
        "desired",
        "current",
        "ready",
        "upToDate",
        "available",
        "misscheduled",
    ] {
        assert_eq!(
            computed[k], status[k],
            "{k}: computed vs the controller's status"
        );
    }
    assert_eq!(computed["desired"], 5);
    assert_eq!(e["summary"]["stale"], false, "{:#}", e["summary"]);
    // Other tests' nodes are excluded by the template's nodeSelector.
    let rec = e["summary"]["reconciliation"].as_str().unwrap();
    assert!(rec.starts_with("desired 5 = "), "{rec}");
    assert!(
        rec.contains("NodeAffinityMismatch") && rec.contains("UntoleratedTaint"),
        "{rec}"
    );
    assert_eq!(e["summary"]["shown"], 8);

    // Node selector mismatch: a node of this test without the label the DaemonSet selects.
    // Created with the other value (a patch after creation raced the controller, which could
    // place a pod first: Misscheduled under load).
    let elsewhere = NodeSpec {
        labels: vec![("kubernetes.io/os", "linux"), (TEST_LABEL, "elsewhere")],
        ..Default::default()
    };
    let other = env.node("unlabelled", elsewhere).await;
    let out = env.run(&["explain", "agent", "-o", "json", "--node", &other]);
    let e: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(state(&e, &other), "NotEligible");
    let sel = reason(&e, &other, "NodeSelectorMismatch");
    assert_eq!(
        (sel["key"].as_str(), sel["actual"].as_str()),
        (Some(TEST_LABEL), Some("elsewhere"))
    );
    assert_eq!(e["nodes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn taints_added_after_the_pod_started_and_not_ready() {
    let mut env = TestEnv::new("late").await;
    let n = env.node("n", NodeSpec::default()).await;
    let sick = env.node("sick", NodeSpec::default()).await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 2).await;

    // NoSchedule after the fact: the pod stays, counted misscheduled.
    env.patch_node(
        &n,
        json!({"spec": {"taints": [taint("dedicated", "db", "NoSchedule")]}}),
    )
    .await;
    let e = wait_state(&env, "agent", &n, "Misscheduled").await;
    assert_eq!(reason(&e, &n, "UntoleratedTaint")["existingPod"], "kept");
    assert!(node_verdict(&e, &n)["pod"]["name"].is_string());

    // The simulated kubelet reports NotReady: the real node lifecycle controller taints the
    // node; DaemonSet pods tolerate only the NoExecute taint, so the pod stays, misscheduled.
    env.patch_node(
        &sick,
        json!({"metadata": {"annotations": {"kubectl-ds.dev/sim-node": "notready"}}}),
    )
    .await;
    let e = wait_state(&env, "agent", &sick, "Misscheduled").await;
    let r = reason(&e, &sick, "NodeNotReady");
    assert_eq!(r["taint"], "node.kubernetes.io/not-ready");
    assert_eq!(r["readyCondition"], "False");

    // NoExecute after the fact: the controller deletes the pod.
    env.patch_node(
        &n,
        json!({"spec": {"taints": [taint("dedicated", "db", "NoExecute")]}}),
    )
    .await;
    let e = wait_state(&env, "agent", &n, "NotEligible").await;
    assert_eq!(reason(&e, &n, "UntoleratedTaint")["existingPod"], "deleted");
    assert!(node_verdict(&e, &n)["pod"].is_null());
}

#[tokio::test]
async fn pending_reasons_from_scheduler_and_objects() {
    let mut env = TestEnv::new("pend").await;
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    let ports = env.node("ports", NodeSpec::default()).await;
    let full = env
        .node(
            "full",
            NodeSpec {
                pods: Some("1"),
                ..Default::default()
            },
        )
        .await;
    holder(
        &env,
        "hog",
        &small,
        json!({"name": "c", "image": "hog", "resources": {"requests": {"cpu": "900m"}}}),
    )
    .await;
    holder(
        &env,
        "web",
        &ports,
        json!({"name": "c", "image": "web", "ports": [{"containerPort": 80, "hostPort": 8080}]}),
    )
    .await;
    holder(&env, "only", &full, json!({"name": "c", "image": "only"})).await;
    env.create_ds(env.daemon_set(
        "agent",
        json!({"containers": [{"name": "agent", "image": "agent:1",
            "resources": {"requests": {"cpu": "200m"}},
            "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}),
    ))
    .await;
    let e = wait_state(&env, "agent", &small, "Pending").await;
    let ins = reason(&e, &small, "InsufficientResources");
    assert_eq!(ins["resource"], "cpu");
    assert_eq!(ins["requested"], "200m");
    assert_eq!(ins["allocatable"], "1");
    assert_eq!(ins["usedByOtherPods"], "900m");
    // The scheduler's own message, parsed (wait for it: the scheduler reports asynchronously).
    let mut e = e;
    for _ in 0..120 {
        if codes(node_verdict(&e, &small)).contains(&"Unschedulable".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        e = env.explain_json("agent");
    }
    let u = reason(&e, &small, "Unschedulable");
    assert!(
        u["schedulerMessage"]
            .as_str()
            .unwrap()
            .contains("Insufficient cpu"),
        "{u:#}"
    );
    assert_eq!(u["entries"][0]["reason"], "Insufficient cpu");

    let e = wait_state(&env, "agent", &ports, "Pending").await;
    let hp = reason(&e, &ports, "HostPortConflict");
    assert_eq!(hp["port"], 8080);
    assert_eq!(hp["heldBy"], format!("{}/web", env.ns));
    let e = wait_state(&env, "agent", &full, "Pending").await;
    let tm = reason(&e, &full, "TooManyPods");
    assert_eq!(
        (tm["allocatable"].as_i64(), tm["used"].as_i64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn unhealthy_pods_crashloop_image_pull_not_ready() {
    let mut env = TestEnv::new("sick").await;
    let n = env.node("n", NodeSpec::default()).await;
    for (name, knob) in [
        ("crash", "crashloop"),
        ("pull", "imagepullbackoff"),
        ("slow", "notready"),
    ] {
        let mut m = env.daemon_set(name, json!({}));
        m["spec"]["template"]["metadata"]["annotations"] = json!({"kubectl-ds.dev/sim": knob});
        env.create_ds(m).await;
    }
    // Wait for the reason, not the state: on a loaded machine the pod can be Unhealthy for
    // another reason (created, not yet Ready) before KWOK's crash-loop stage has run.
    let e = wait_reason(&env, "crash", &n, "CrashLoopBackOff").await;
    assert_eq!(state(&e, &n), "Unhealthy");
    let c = reason(&e, &n, "CrashLoopBackOff");
    assert_eq!(
        (
            c["container"].as_str(),
            c["restarts"].as_i64(),
            c["lastExitCode"].as_i64()
        ),
        (Some("agent"), Some(5), Some(1))
    );
    let e = wait_reason(&env, "pull", &n, "ImagePullBackOff").await;
    assert_eq!(state(&e, &n), "Unhealthy");
    let p = reason(&e, &n, "ImagePullBackOff");
    assert_eq!(p["image"], "registry.example/agent:1");
    let e = wait_reason(&env, "slow", &n, "PodNotReady").await;
    assert_eq!(state(&e, &n), "Unhealthy");
}

#[tokio::test]
async fn quota_failed_create_and_scheduling_gates() {
    let mut env = TestEnv::new("quota").await;
    let a = env.node("a", NodeSpec::default()).await;
    let b = env.node("b", NodeSpec::default()).await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "pods", "namespace": env.ns}, "spec": {"hard": {"pods": "1"}}
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "quota status", || async {
        let q = Api::<ResourceQuota>::namespaced(env.client.clone(), &env.ns)
            .get("pods")
            .await
            .unwrap();
        q.status.and_then(|s| s.hard).is_some()
    })
    .await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    let mut found = None;
    for _ in 0..120 {
        let e = env.explain_json("agent");
        let missing: Vec<String> = [&a, &b]
            .iter()
            .filter(|n| state(&e, n) == "Missing")
            .map(|n| n.to_string())
            .collect();
        if let Some(m) = missing.first() {
            if codes(node_verdict(&e, m)).contains(&"FailedCreate".to_string()) {
                found = Some((e.clone(), m.clone()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (e, m) = found.expect("a Missing node with FailedCreate");
    let fc = reason(&e, &m, "FailedCreate");
    assert!(
        fc["eventMessage"]
            .as_str()
            .unwrap()
            .contains("exceeded quota"),
        "{fc:#}"
    );

    // Scheduling gates keep the pods Pending.
    let mut gated = env.daemon_set(
        "gated",
        json!({"schedulingGates": [{"name": "example.com/wait"}]}),
    );
    gated["spec"]["template"]["metadata"]["labels"] = json!({"app": "gated"});
    Api::<ResourceQuota>::namespaced(env.client.clone(), &env.ns)
        .patch(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "10"}}})),
        )
        .await
        .unwrap();
    let stored = env.create_ds(gated).await;
    let stored_gates = stored.spec.unwrap().template.spec.unwrap().scheduling_gates;
    let (minor, version) = server_version(&env.client).await;
    if minor >= 27 {
        // schedulingGates: alpha (off) in 1.26, on by default from 1.27.
        let e = wait_state(&env, "gated", &a, "Pending").await;
        assert_eq!(
            reason(&e, &a, "SchedulingGated")["gates"][0],
            "example.com/wait"
        );
    } else {
        // Older apiservers drop the unknown field: the pods are scheduled and run.
        assert_eq!(stored_gates, None, "{version} dropped schedulingGates");
        let e = wait_state(&env, "gated", &a, "Running").await;
        assert!(
            !codes(node_verdict(&e, &a)).contains(&"SchedulingGated".to_string()),
            "{version}: {e:#}"
        );
    }
}

#[tokio::test]
async fn on_delete_outdated_pods() {
    let mut env = TestEnv::new("ondel").await;
    let n = env.node("n", NodeSpec::default()).await;
    let mut m = env.daemon_set("agent", json!({}));
    m["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    env.create_ds(m).await;
    env.wait_rolled_out("agent", 1).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "registry.example/agent:2"}]}}}});
    env.ds_api()
        .patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let e = wait_state(&env, "agent", &n, "Outdated").await;
    let r = reason(&e, &n, "OutdatedRevision");
    assert_eq!(r["onDelete"], true);
    assert_ne!(r["podRevision"], r["currentRevision"]);
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("nothing replaces it until it is deleted"));
    // After the controller's status catches up, the counters agree: 0 up to date.
    wait_for(Duration::from_secs(30), "status up-to-date 0", || async {
        let e = env.explain_json("agent");
        e["daemonSet"]["status"]["upToDate"] == 0 && e["summary"]["computed"]["upToDate"] == 0
    })
    .await;
}

/// The namespace's Roles or RoleBindings.
fn rbac_api(env: &TestEnv, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn overview_not_found_and_yaml() {
    let mut env = TestEnv::new("over").await;
    env.node("n", NodeSpec::default()).await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 1).await;
    let out = env.run(&["explain"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.lines().next().unwrap().starts_with("NAME"));
    assert!(out.stdout.contains("agent"));
    let out = env.run(&["explain", "-o", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "ExplanationList");
    assert_eq!(v["items"][0]["daemonSet"]["name"], "agent");

    let out = env.run(&["explain", "agnet"]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr
            .starts_with("error: daemonset \"agnet\" not found"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean agent?"), "{}", out.stderr);
    let out = crate::harness::run_cli(&["explain", "agent", "-n", "default"]);
    assert_eq!(out.code, 4);
    let hint = out.stderr.lines().nth(1).unwrap_or("");
    assert!(
        hint.starts_with("hint: it exists in namespace") && hint.contains(&env.ns),
        "{}",
        out.stderr
    );

    // RBAC denial: one line naming the verb and the resource, exit 5.
    let out = env.run(&["explain", "agent", "--as", "nobody"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot get resource \"daemonsets\""),
        "{}",
        out.stderr
    );

    // Allowed to read the DaemonSet and its namespace, not the nodes: the node list (asked for
    // in protobuf) is denied, and the error still names the verb and the resource.
    let user = format!("kds-reader-{}", env.ns);
    let rbac = rbac_api(&env, "Role");
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["daemonsets", "controllerrevisions"],
             "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]}
        ]
    });
    rbac.create(
        &PostParams::default(),
        &serde_json::from_value(role).unwrap(),
    )
    .await
    .unwrap();
    let bindings = rbac_api(&env, "RoleBinding");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    });
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).unwrap(),
        )
        .await
        .unwrap();
    let mut out = env.run(&["explain", "agent", "--as", &user]);
    for _ in 0..50 {
        // The authorizer's cache may lag the new binding for a moment.
        if !out.stderr.contains("cannot get resource \"daemonsets\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        out = env.run(&["explain", "agent", "--as", &user]);
    }
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: listing nodes: forbidden:")
            && out.stderr.contains("cannot list resource \"nodes\""),
        "{}",
        out.stderr
    );

    let out = env.run(&["explain", "agent", "-o", "yaml"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("apiVersion: kubectl-ds/v1"));
    let table = env.run(&["explain", "agent"]);
    assert!(table.stdout.contains("NODE") && table.stdout.contains("Running"));
}

#[tokio::test]
async fn terminating_pod_blocks_its_replacement() {
    let mut env = TestEnv::new("term").await;
    let n = env.node("n", NodeSpec::default()).await;
    env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 1).await;
    let pod = env.pods("agent").await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    // This pod's (simulated) kubelet will never confirm its deletion.
    let hang = json!({"metadata": {"annotations": {"kubectl-ds.dev/sim-delete": "hang"}}});
    env.pod_api()
        .patch(&name, &PatchParams::default(), &Patch::Merge(hang))
        .await
        .unwrap();
    let grace = kube::api::DeleteParams {
        grace_period_seconds: Some(600),
        ..Default::default()
    };
    env.pod_api().delete(&name, &grace).await.unwrap();
    let e = wait_state(&env, "agent", &n, "Terminating").await;
    let t = reason(&e, &n, "Terminating");
    assert_eq!(t["pod"], name.as_str());
    // The controller does not replace a pod that is still terminating (podsShouldBeOnNode).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.pods("agent").await.len(), 1);
    let e = env.explain_json("agent");
    assert_eq!(state(&e, &n), "Terminating");
}

/// A quantity re-spelled under OnDelete: the controller creates a new revision (bytes differ,
/// templateGeneration stays) and restarts nothing. From 1.24 IsPodUpdated accepts the pod's
/// pod-template-generation, so the pod is up to date (Running); before, only the hash counts
/// and the pod is Outdated. explain must agree with the controller's own upToDate counter.
#[tokio::test]
async fn respelled_quantity_up_to_date_by_server_version() {
    let mut env = TestEnv::new("respell").await;
    let (minor, version) = server_version(&env.client).await;
    let n = env.node("n", NodeSpec::default()).await;
    let mut m = env.daemon_set(
        "agent",
        json!({"containers": [{"name": "agent", "image": "registry.example/agent:1",
            "resources": {"requests": {"memory": "64Mi"}}}]}),
    );
    m["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    env.create_ds(m).await;
    env.wait_rolled_out("agent", 1).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent",
        "resources": {"requests": {"memory": "67108864"}}}]}}}});
    let ds = env
        .ds_api()
        .patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let generation =
        ds.metadata.annotations.unwrap()["deprecated.daemonset.template.generation"].clone();
    assert_eq!(generation, "1", "the apiserver compares semantically");
    let revisions = Api::<ControllerRevision>::namespaced(env.client.clone(), &env.ns);
    wait_for(
        Duration::from_secs(30),
        "a second ControllerRevision",
        || async {
            revisions
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .len()
                == 2
        },
    )
    .await;
    let (want_state, want_up_to_date) = if minor >= 24 {
        ("Running", 1)
    } else {
        ("Outdated", 0)
    };
    let mut last = Value::Null;
    let env_ref = &env;
    let last_ref = &mut last;
    wait_for(
        Duration::from_secs(30),
        "explain and the controller agree",
        || {
            let e = env_ref.explain_json("agent");
            let ok = state(&e, &n) == want_state
                && e["daemonSet"]["status"]["upToDate"] == want_up_to_date
                && e["summary"]["computed"]["upToDate"] == want_up_to_date;
            *last_ref = e;
            async move { ok }
        },
    )
    .await;
    assert_eq!(last["rules"]["serverVersion"], version.as_str());
    assert_eq!(last["rules"]["templateGenerationCounts"], minor >= 24);
    let pods = env.pods("agent").await;
    assert_eq!(pods.len(), 1, "OnDelete: nothing restarted");
}

/// `explain NAME -o json` with `KUBECTL_DS_WIRE=json` or `=protobuf` (node and pod lists).
/// `v` with the digits of every text that quotes the scheduler's node count replaced by `#`.
fn mask_node_counts(v: Value) -> Value {
    match v {
        Value::String(t) if t.contains("nodes are available") => Value::String(
            t.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask_node_counts).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, mask_node_counts(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The summary's counts of the cluster's nodes (every node, not only the test's: the tests
/// beside this one add and remove theirs) masked; the rest of the summary is kept.
fn mask_cluster_counts(v: Value) -> Value {
    let mut v = mask_node_counts(v);
    if let Some(summary) = v.get_mut("summary").and_then(Value::as_object_mut) {
        for key in ["nodes", "excluded", "reconciliation"] {
            summary.insert(key.into(), Value::Null);
        }
        if let Some(states) = summary.get_mut("states").and_then(Value::as_object_mut) {
            states.remove("NotEligible");
        }
    }
    v
}

fn explain_wire(env: &TestEnv, name: &str, wire: &str) -> Value {
    let sel = format!("{TEST_LABEL}={}", env.ns);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ds"))
        .args(["explain", name, "-o", "json", "-l", &sel, "-n", &env.ns])
        .env("KUBECONFIG", crate::harness::kubeconfig())
        .env("KUBECTL_DS_WIRE", wire)
        .output()
        .expect("run kubectl-ds");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The protobuf and the JSON lists give the same explanation, fit check included; and the
/// overview (shared node table, only DaemonSet-owned pods listed, other pods fetched per node
/// for the fit check) gives each DaemonSet the verdicts single `explain` gives.
#[tokio::test]
async fn wire_encodings_and_overview_agree() {
    let mut env = TestEnv::new("wire").await;
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    let gpu = env
        .node(
            "gpu",
            NodeSpec {
                labels: vec![("pool", "gpu")],
                ..Default::default()
            },
        )
        .await;
    holder(
        &env,
        "hog",
        &small,
        json!({"name": "c", "image": "hog", "resources": {"requests": {"cpu": "900m"}}}),
    )
    .await;
    env.create_ds(env.daemon_set(
        "agent",
        json!({"containers": [{"name": "agent", "image": "agent:1",
            "resources": {"requests": {"cpu": "200m"}}}]}),
    ))
    .await;
    env.create_ds(env.daemon_set(
        "narrow",
        json!({"nodeSelector": {"pool": "gpu"},
            "containers": [{"name": "narrow", "image": "narrow:1"}]}),
    ))
    .await;
    let e = wait_state(&env, "agent", &small, "Pending").await;
    reason(&e, &small, "InsufficientResources");
    wait_state(&env, "narrow", &gpu, "Running").await;
    wait_state(&env, "agent", &gpu, "Running").await;

    // The scheduler's own message counts every node of the cluster ("0/57 nodes are
    // available"), as does the summary (nodes, excluded, NotEligible), and the tests running
    // beside this one add and remove nodes: those counts are masked. Anything else that
    // differs between two back-to-back runs must be the encoding, and persists over retries.
    for name in ["agent", "narrow"] {
        let mut last = None;
        for _ in 0..5 {
            let proto = mask_cluster_counts(explain_wire(&env, name, "protobuf"));
            let json = mask_cluster_counts(explain_wire(&env, name, "json"));
            if proto == json {
                last = None;
                break;
            }
            last = Some((proto, json));
        }
        if let Some((proto, json)) = last {
            assert_eq!(proto, json, "{name}: protobuf and JSON lists disagree");
        }
    }

    let out = env.run(&["explain", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list:#}");
    for item in items {
        let name = item["daemonSet"]["name"].as_str().unwrap();
        let single = env.explain_json(name);
        for node in [&small, &gpu] {
            let (o, s) = (node_verdict(item, node), node_verdict(&single, node));
            assert_eq!(o["state"], s["state"], "{name} on {node}: {o:#} vs {s:#}");
            assert_eq!(o["shouldRun"], s["shouldRun"], "{name} on {node}");
        }
        if name == "agent" {
            let ins = reason(item, &small, "InsufficientResources");
            assert_eq!(ins["usedByOtherPods"], "900m", "{ins:#}");
        }
    }
}
