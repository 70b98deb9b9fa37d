//! Priority and preemption against the real control plane: PriorityClasses, a low-priority
//! filler pod bound to a small node, a DaemonSet whose pod does not fit there. `explain` and
//! `rollout-preview` predict; then the real scheduler acts (DefaultPreemption evicts the filler,
//! or cannot) and the test compares node by node. The new reasons are parsed into strict structs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{
    codes, kubeconfig, node_verdict, server_version, wait_for, NodeSpec, TestEnv,
};

// ---- the new reasons (kubectl-ds/v1), strictly ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreemptionReason {
    code: String,
    message: String,
    priority_class: Option<String>,
    priority: Option<i32>,
    victims: Vec<String>,
    pdb_violations: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NotHelpfulReason {
    code: String,
    message: String,
    priority_class: Option<String>,
    priority: Option<i32>,
    why: String,
}

fn find_reason<T: for<'de> Deserialize<'de>>(verdict: &Value, code: &str) -> T {
    let r = verdict["reasons"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["code"] == code))
        .unwrap_or_else(|| panic!("no {code}: {verdict:#}"));
    serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{code} schema: {e}: {r:#}"))
}

// ---- helpers ----

/// Cluster-scoped PriorityClasses named after the test's namespace, deleted on drop.
struct Classes(Vec<String>);

impl Classes {
    async fn create(env: &TestEnv, classes: &[(&str, i32)]) -> Classes {
        let api: Api<k8s_openapi::api::scheduling::v1::PriorityClass> =
            Api::all(env.client.clone());
        let mut names = Vec::new();
        for (suffix, value) in classes {
            let name = format!("{}-{suffix}", env.ns);
            let pc = serde_json::from_value(json!({
                "metadata": {"name": name}, "value": value
            }))
            .unwrap();
            api.create(&PostParams::default(), &pc)
                .await
                .expect("create priorityclass");
            names.push(name);
        }
        Classes(names)
    }
}

impl Drop for Classes {
    fn drop(&mut self) {
        let mut args = vec![
            "--kubeconfig".to_string(),
            kubeconfig().display().to_string(),
            "delete".into(),
            "priorityclass".into(),
            "--wait=false".into(),
        ];
        args.extend(self.0.iter().cloned());
        let _ = Command::new("kubectl").args(&args).output();
    }
}

/// A filler pod bound straight to `node` with a priority class and a cpu request.
async fn filler(env: &TestEnv, name: &str, node: &str, class: &str, cpu: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": env.ns, "labels": {"app": name}},
        "spec": {"nodeName": node, "priorityClassName": class, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "filler",
                                 "resources": {"requests": {"cpu": cpu}}}]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create filler");
}

/// Pods of the namespace that are not the DaemonSet's, by node (terminating ones left out).
async fn others_by_node(env: &TestEnv) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in env
        .pod_api()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let app = p.metadata.labels.as_ref().and_then(|l| l.get("app"));
        if app.map(String::as_str) == Some("agent") || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
        out.entry(node).or_default().insert(format!(
            "{}/{}",
            env.ns,
            p.metadata.name.unwrap_or_default()
        ));
    }
    out
}

/// Waits until explain shows `node` with reason `code`.
async fn explain_until(env: &TestEnv, node: &str, code: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = env.explain_json("agent");
        if codes(node_verdict(&last, node)).iter().any(|c| c == code) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{node} never got {code}: {:#}", node_verdict(&last, node));
}

/// `rollout-preview agent -f MANIFEST -o json`.
fn preview(env: &TestEnv, manifest: &Value) -> Value {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(manifest.to_string().as_bytes()).unwrap();
    let out = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        f.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.code, 0, "rollout-preview: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn preview_node<'a>(p: &'a Value, node: &str) -> &'a Value {
    p["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("{node} not in preview: {p:#}"))
}

/// The DaemonSet's pod on `node` is bound and Running.
async fn agent_running_on(env: &TestEnv, node: &str) -> bool {
    env.pods("agent").await.iter().any(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
}

/// Waits for the scheduler's verdict on the agent pod with `image` (PodScheduled=False,
/// Unschedulable), checks its preemption part says `scheduler_says`, gives it time to (not)
/// preempt, then checks nothing was evicted and the agent does not run on `node`.
///
/// The preemption part (". preemption: ...") is in the message from Kubernetes 1.24
/// (FitError.Error appends Diagnosis.PostFilterMsg, kubernetes PR 107775); up to 1.23 the
/// message is the Filter histogram alone (core/generic_scheduler.go FitError.Error in
/// v1.20.2), so there the test checks that message and that it says nothing of preemption.
async fn stays_pending(
    env: &TestEnv,
    node: &str,
    image: &str,
    scheduler_says: &str,
    before: &BTreeMap<String, BTreeSet<String>>,
) {
    let pods = env.pod_api();
    wait_for(
        Duration::from_secs(60),
        "the new pod's scheduler verdict",
        || async {
            pods.list(&ListParams::default().labels("app=agent"))
                .await
                .map(|l| {
                    l.items.iter().any(|p| {
                        let spec_image =
                            p.spec.as_ref().and_then(|s| s.containers[0].image.clone());
                        let unschedulable = p
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| {
                                    c.type_ == "PodScheduled"
                                        && c.reason.as_deref() == Some("Unschedulable")
                                })
                            });
                        spec_image.as_deref() == Some(image) && unschedulable
                    })
                })
                .unwrap_or(false)
        },
    )
    .await;
    let messages: Vec<String> = env
        .pods("agent")
        .await
        .iter()
        .filter_map(|p| p.status.as_ref()?.conditions.clone())
        .flatten()
        .filter(|c| c.type_ == "PodScheduled")
        .filter_map(|c| c.message)
        .collect();
    let (minor, version) = server_version(&env.client).await;
    if minor >= 24 {
        assert!(
            messages.iter().any(|m| m.contains(scheduler_says)),
            "the scheduler's own verdict: {messages:?}"
        );
    } else {
        assert!(
            messages
                .iter()
                .any(|m| m.contains("Insufficient cpu") && !m.contains("preemption")),
            "{version}: the scheduler's own verdict, without a preemption part: {messages:?}"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !agent_running_on(env, node).await,
        "the agent runs on {node}?"
    );
    assert_eq!(&others_by_node(env).await, before, "nothing was evicted");
}

async fn apply(env: &TestEnv, manifest: &Value) {
    env.ds_api()
        .patch(
            "agent",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(manifest),
        )
        .await
        .expect("apply daemonset");
}

#[tokio::test]
async fn preemption_evicts_the_lower_priority_filler() {
    let mut env = TestEnv::new("preempt").await;
    let _classes = Classes::create(&env, &[("low", 1000), ("high", 1_000_000)]).await;
    let (low, high) = (format!("{}-low", env.ns), format!("{}-high", env.ns));
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    let roomy = env.node("roomy", NodeSpec::default()).await;
    filler(&env, "filler", &small, &low, "900m").await;
    // A PDB that allows no disruption of the filler: preemption minimises PDB violations but
    // does not refuse them.
    // policy/v1 from 1.21; 1.20 serves PDBs only as policy/v1beta1 (the scheduler's
    // preemption reads them there, and so does kubectl-ds).
    let (minor, _) = server_version(&env.client).await;
    let version = if minor >= 21 { "v1" } else { "v1beta1" };
    let gvk = kube::api::GroupVersionKind::gvk("policy", version, "PodDisruptionBudget");
    let pdb: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("policy/{version}"), "kind": "PodDisruptionBudget",
        "metadata": {"name": "filler", "namespace": env.ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "filler"}}}
    }))
    .unwrap();
    Api::<kube::api::DynamicObject>::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::from_gvk(&gvk),
    )
    .create(&PostParams::default(), &pdb)
    .await
    .expect("create pdb");

    // v1 has no priorityClassName: priority 0 cannot preempt the filler (1000).
    let container = json!([{"name": "agent", "image": "registry.example/agent:1",
                            "resources": {"requests": {"cpu": "200m"}}}]);
    let v1 = env.daemon_set("agent", json!({"containers": container}));
    apply(&env, &v1).await;
    let e = explain_until(&env, &small, "PreemptionNotHelpful").await;
    let v = node_verdict(&e, &small);
    assert_eq!(v["state"], "Pending");
    let nh: NotHelpfulReason = find_reason(v, "PreemptionNotHelpful");
    assert_eq!(
        (nh.why.as_str(), nh.priority, nh.priority_class.as_deref()),
        ("noLowerPriorityPods", Some(0), None)
    );
    assert!(
        nh.message.contains("equal or higher priority"),
        "{}",
        nh.code
    );
    let all = codes(v);
    assert!(
        all.contains(&"InsufficientResources".to_string())
            && all.contains(&"NoPriorityClass".to_string()),
        "{all:?}"
    );

    // v2 sets the high class: the preview says Restart on both nodes, the filler is the victim.
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["priorityClassName"] = json!(high);
    let p = preview(&env, &v2);
    let s = preview_node(&p, &small);
    assert_eq!(s["action"], "Restart", "{s:#}");
    let pr: PreemptionReason = find_reason(s, "Preemption");
    assert_eq!(pr.code, "Preemption");
    assert_eq!(
        (pr.priority_class.as_deref(), pr.priority),
        (Some(high.as_str()), Some(1_000_000))
    );
    assert_eq!(pr.victims, vec![format!("{}/filler", env.ns)]);
    assert_eq!(
        pr.pdb_violations, 1,
        "the filler's PDB allows no disruption"
    );
    assert!(
        pr.message.contains("fits by preempting 1"),
        "{}",
        pr.message
    );
    assert_eq!(preview_node(&p, &roomy)["action"], "Restart");
    assert!(codes(preview_node(&p, &roomy))
        .iter()
        .all(|c| c != "Preemption"));
    assert!(
        p["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(&format!("{}/filler", env.ns))),
        "{:#}",
        p["notes"]
    );
    // Predicted victims per node.
    let mut predicted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in [&small, &roomy] {
        let victims = preview_node(&p, node)["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["code"] == "Preemption")
            .flat_map(|r| r["victims"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        predicted.insert(node.clone(), victims);
    }

    // Apply for real: the scheduler preempts, the pod runs.
    let before = others_by_node(&env).await;
    apply(&env, &v2).await;
    env.wait_rolled_out("agent", 2).await;
    for node in [&small, &roomy] {
        assert!(
            agent_running_on(&env, node).await,
            "{node}: no running agent"
        );
    }
    let after = others_by_node(&env).await;
    for node in [&small, &roomy] {
        let gone: BTreeSet<String> = before
            .get(node.as_str())
            .cloned()
            .unwrap_or_default()
            .difference(&after.get(node.as_str()).cloned().unwrap_or_default())
            .cloned()
            .collect();
        assert_eq!(
            gone,
            predicted[node.as_str()],
            "{node}: evicted vs predicted"
        );
    }
    let e = env.explain_json("agent");
    assert_eq!(node_verdict(&e, &small)["state"], "Running");
}

#[tokio::test]
async fn equal_priority_cannot_preempt() {
    let mut env = TestEnv::new("nopreempt").await;
    let _classes = Classes::create(&env, &[("same", 5000)]).await;
    let same = format!("{}-same", env.ns);
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    filler(&env, "filler", &small, &same, "900m").await;
    let container = |image: &str| json!([{"name": "agent", "image": image, "resources": {"requests": {"cpu": "200m"}}}]);
    let v1 = env.daemon_set(
        "agent",
        json!({"priorityClassName": same, "containers": container("registry.example/agent:1")}),
    );
    apply(&env, &v1).await;
    let e = explain_until(&env, &small, "PreemptionNotHelpful").await;
    let v = node_verdict(&e, &small);
    let nh: NotHelpfulReason = find_reason(v, "PreemptionNotHelpful");
    assert_eq!(
        (nh.why.as_str(), nh.priority, nh.priority_class.as_deref()),
        ("noLowerPriorityPods", Some(5000), Some(same.as_str()))
    );
    assert!(
        !codes(v).contains(&"NoPriorityClass".to_string()),
        "the pod has a class"
    );

    // A new image: the preview says Blocked (preemption cannot help), and so it stays.
    let v2 = env.daemon_set(
        "agent",
        json!({"priorityClassName": same, "containers": container("registry.example/agent:2")}),
    );
    let p = preview(&env, &v2);
    let s = preview_node(&p, &small);
    assert_eq!(s["action"], "Blocked", "{s:#}");
    let nh: NotHelpfulReason = find_reason(s, "PreemptionNotHelpful");
    assert_eq!(nh.why, "noLowerPriorityPods");
    let before = others_by_node(&env).await;
    apply(&env, &v2).await;
    // The controller replaces the pending pod; the scheduler tries and gives up on preemption.
    stays_pending(
        &env,
        &small,
        "registry.example/agent:2",
        "No preemption victims found",
        &before,
    )
    .await;
    let e = env.explain_json("agent");
    let v = node_verdict(&e, &small);
    assert_eq!(v["state"], "Pending");
    assert!(codes(v).contains(&"PreemptionNotHelpful".to_string()));
}

#[tokio::test]
async fn preemption_policy_never_does_not_preempt() {
    let mut env = TestEnv::new("neverpreempt").await;
    let _classes = Classes::create(&env, &[("low", 1000)]).await;
    // A higher class that never preempts (the class's policy is copied into the pod).
    let polite = format!("{}-polite", env.ns);
    let pc = serde_json::from_value(json!({
        "metadata": {"name": polite}, "value": 1_000_000, "preemptionPolicy": "Never"
    }))
    .unwrap();
    Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(env.client.clone())
        .create(&PostParams::default(), &pc)
        .await
        .expect("create priorityclass");
    let _polite = Classes(vec![polite.clone()]);
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    filler(&env, "filler", &small, &format!("{}-low", env.ns), "900m").await;
    let before = others_by_node(&env).await;
    let image = "registry.example/agent:1";
    let v1 = env.daemon_set(
        "agent",
        json!({"priorityClassName": polite, "containers": [{"name": "agent", "image": image,
                "resources": {"requests": {"cpu": "200m"}}}]}),
    );
    apply(&env, &v1).await;
    let e = explain_until(&env, &small, "PreemptionNotHelpful").await;
    let nh: NotHelpfulReason = find_reason(node_verdict(&e, &small), "PreemptionNotHelpful");
    assert_eq!(
        (nh.why.as_str(), nh.priority),
        ("policyNever", Some(1_000_000))
    );
    assert!(
        nh.message.contains("preemptionPolicy is Never"),
        "{}",
        nh.message
    );
    stays_pending(&env, &small, image, "preemptionPolicy=Never", &before).await;
}

/// A ClusterRole and its ClusterRoleBinding for `user`, deleted on drop.
struct ClusterAccess(String);

impl ClusterAccess {
    async fn grant(env: &TestEnv, user: &str, rules: Value) -> ClusterAccess {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
        let name = format!("kds-{}", env.ns);
        let api = |kind: &str| {
            let gvk = GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
            Api::<DynamicObject>::all_with(env.client.clone(), &ApiResource::from_gvk(&gvk))
        };
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": rules
        });
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        });
        for (kind, obj) in [("ClusterRole", role), ("ClusterRoleBinding", binding)] {
            api(kind)
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(obj).unwrap(),
                )
                .await
                .expect("create rbac");
        }
        ClusterAccess(name)
    }
}

impl Drop for ClusterAccess {
    fn drop(&mut self) {
        let kc = kubeconfig().display().to_string();
        for kind in ["clusterrolebinding", "clusterrole"] {
            let _ = Command::new("kubectl")
                .args(["--kubeconfig", &kc, "delete", kind, &self.0, "--wait=false"])
                .output();
        }
    }
}

#[tokio::test]
async fn denied_priority_classes_and_pdbs_degrade_with_a_note() {
    let mut env = TestEnv::new("preemptrbac").await;
    let _classes = Classes::create(&env, &[("low", 1000), ("high", 1_000_000)]).await;
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    filler(&env, "filler", &small, &format!("{}-low", env.ns), "900m").await;
    let v1 = env.daemon_set("agent", json!({}));
    apply(&env, &v1).await;
    env.wait_rolled_out("agent", 1).await;
    // What rollout-preview needs, without priorityclasses and poddisruptionbudgets.
    let user = format!("kds-norbac-{}", env.ns);
    let _access = ClusterAccess::grant(
        &env,
        &user,
        json!([
            {"apiGroups": ["apps"], "resources": ["daemonsets"],
             "verbs": ["get", "list", "patch", "update"]},
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["nodes", "pods", "events"], "verbs": ["list"]}
        ]),
    )
    .await;
    let preview_as = |manifest: &Value| {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        f.write_all(manifest.to_string().as_bytes()).unwrap();
        let path = f.path().to_str().unwrap().to_string();
        let out = env.run(&[
            "rollout-preview",
            "agent",
            "-f",
            &path,
            "-o",
            "json",
            "--as",
            &user,
        ]);
        (out, f)
    };
    let requests = json!([{"name": "agent", "image": "registry.example/agent:1",
                           "resources": {"requests": {"cpu": "200m"}}}]);
    // A user class the user cannot look up: its priority is unknown; said, not an error.
    let mut v2 = env.daemon_set(
        "agent",
        json!({"priorityClassName": format!("{}-high", env.ns), "containers": requests}),
    );
    let mut out = preview_as(&v2).0;
    for _ in 0..50 {
        // The authorizer's cache may lag the new binding for a moment.
        if out.code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        out = preview_as(&v2).0;
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Value = serde_json::from_str(&out.stdout).unwrap();
    let s = preview_node(&p, &small);
    assert_eq!(s["action"], "Blocked", "{s:#}");
    let nh: NotHelpfulReason = find_reason(s, "PreemptionNotHelpful");
    assert_eq!((nh.why.as_str(), nh.priority), ("priorityUnknown", None));
    let notes = p["notes"].to_string();
    assert!(
        notes.contains("PriorityClasses could not be listed"),
        "{notes}"
    );
    // A built-in class is known without the list; the PDBs are unreadable: said, not an error.
    v2["spec"]["template"]["spec"]["priorityClassName"] = json!("system-node-critical");
    let (out, _f) = preview_as(&v2);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Value = serde_json::from_str(&out.stdout).unwrap();
    let s = preview_node(&p, &small);
    assert_eq!(s["action"], "Restart", "{s:#}");
    let pr: PreemptionReason = find_reason(s, "Preemption");
    assert_eq!(
        (pr.priority, pr.victims.clone()),
        (Some(2_000_001_000), vec![format!("{}/filler", env.ns)])
    );
    let notes = p["notes"].to_string();
    assert!(
        notes.contains("PodDisruptionBudgets could not be listed"),
        "{notes}"
    );
}

#[tokio::test]
async fn explain_names_the_victims_the_scheduler_evicts() {
    let mut env = TestEnv::new("preemptexplain").await;
    let _classes =
        Classes::create(&env, &[("low", 1000), ("mid", 2000), ("high", 1_000_000)]).await;
    let ns = env.ns.clone();
    let class = |c: &str| format!("{ns}-{c}");
    let small = env
        .node(
            "small",
            NodeSpec {
                cpu: Some("1"),
                ..Default::default()
            },
        )
        .await;
    filler(&env, "mid", &small, &class("mid"), "400m").await;
    filler(&env, "low", &small, &class("low"), "400m").await;
    // A scheduler nobody runs holds the pod Pending, so explain's prediction can be read
    // before anything acts on it.
    let spec = |scheduler: &str| {
        json!({"priorityClassName": class("high"), "schedulerName": scheduler,
               "containers": [{"name": "agent", "image": "registry.example/agent:1",
                               "resources": {"requests": {"cpu": "400m"}}}]})
    };
    apply(&env, &env.daemon_set("agent", spec("kds-nobody"))).await;
    let e = explain_until(&env, &small, "Preemption").await;
    let v = node_verdict(&e, &small);
    assert_eq!(v["state"], "Pending");
    let pr: PreemptionReason = find_reason(v, "Preemption");
    // 1 cpu, 800m used, 400m wanted: one pod goes, the lower-priority one (mid is reprieved
    // first).
    assert_eq!(pr.victims, vec![format!("{}/low", env.ns)]);
    assert_eq!(
        (pr.priority, pr.priority_class),
        (Some(1_000_000), Some(class("high")))
    );
    let predicted: BTreeSet<String> = pr.victims.into_iter().collect();

    // Hand the pod to the default scheduler (same priority and requests) and compare.
    let before = others_by_node(&env).await;
    apply(&env, &env.daemon_set("agent", spec("default-scheduler"))).await;
    env.wait_rolled_out("agent", 1).await;
    assert!(agent_running_on(&env, &small).await);
    let after = others_by_node(&env).await;
    let gone: BTreeSet<String> = before[&small]
        .difference(after.get(&small).unwrap_or(&BTreeSet::new()))
        .cloned()
        .collect();
    assert_eq!(gone, predicted, "evicted vs predicted");
}
