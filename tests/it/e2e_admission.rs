//! The admitted pod on the real control plane: a LimitRange's default requests, a RuntimeClass's
//! overhead and a sidecar injected by a mutating webhook (served here, over TLS, to the real
//! apiserver) each make a restarted pod too big for a node where the raw template fits.
//! rollout-preview must predict it (server dry-run create of the controller's pod), fall back
//! to its local model when RBAC denies `create pods` (and say webhooks were not consulted),
//! and match what the controller and scheduler then do, node by node. Also: the pod count on
//! surge, and the NoExecute tolerationSeconds loop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls;

use crate::e2e_rollout_preview::{
    apply, kubectl, manifest_file, observed, pods_by_node, preview, Preview,
};
use crate::harness::{node_verdict, wait_for, NodeSpec, TestEnv};

/// Cluster-scoped objects a test creates, deleted when it ends (even when it fails).
struct ClusterObjects(Vec<(&'static str, String)>);

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let _ = kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"]);
        }
    }
}

fn create(object: &Value) {
    let f = manifest_file(object);
    let out = kubectl(&["create", "-f", f.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "kubectl create: {}", out.stderr);
}

/// Nodes `a` (32 cpu) and `small` (1 cpu, 800m held by another pod), and the DaemonSet at v1
/// (no requests, maxUnavailable 2) running on both.
async fn setup(env: &mut TestEnv) -> (Vec<String>, Value) {
    let small = NodeSpec {
        cpu: Some("1"),
        ..Default::default()
    };
    let nodes = vec![
        env.node("a", NodeSpec::default()).await,
        env.node("small", small).await,
    ];
    let hog: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hog", "namespace": env.ns},
        "spec": {"nodeName": nodes[1], "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "hog", "resources": {"requests": {"cpu": "800m"}}}]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &hog)
        .await
        .unwrap();
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 2}});
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    (nodes, v1)
}

/// A user who may read everything rollout-preview reads and dry-run patch DaemonSets, but not
/// create pods. Returns the user name.
fn viewer_without_create_pods(env: &TestEnv, objects: &mut ClusterObjects) -> String {
    let name = format!("{}-viewer", env.ns);
    create(&json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["", "apps", "node.k8s.io", "events.k8s.io"],
             "resources": ["daemonsets", "pods", "nodes", "controllerrevisions", "events",
                           "limitranges", "runtimeclasses", "namespaces"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["patch"]}
        ]
    }));
    objects.0.push(("clusterrole", name.clone()));
    create(&json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]
    }));
    objects.0.push(("clusterrolebinding", name.clone()));
    name
}

fn preview_as(env: &TestEnv, manifest: &Value, user: Option<&str>) -> Preview {
    let f = manifest_file(manifest);
    let mut args = vec!["-f", f.path().to_str().unwrap()];
    if let Some(u) = user {
        args.extend(["--as", u]);
    }
    preview(env, &args)
}

fn admission_source(p: &Preview) -> (String, bool) {
    let a = p.admission.as_ref().expect("admission reported");
    (
        a["source"].as_str().unwrap_or("").to_string(),
        a["webhooksConsulted"].as_bool().unwrap(),
    )
}

/// The blocking reason of a node: InsufficientResources for cpu, and the request it saw.
fn cpu_blocked(p: &Preview, node: &str) -> String {
    let n = p.node(node);
    assert_eq!(n.action, "Blocked", "{node}: {:?}", n.reasons);
    let r = n
        .reasons
        .iter()
        .find(|r| r["code"] == "InsufficientResources")
        .unwrap_or_else(|| panic!("no InsufficientResources: {:?}", n.reasons));
    assert_eq!(r["resource"], "cpu");
    assert_eq!(r["usedByOtherPods"], "800m");
    r["requested"].as_str().unwrap().to_string()
}

/// Applies `v2` for real and waits until every node's pod is a new one that the scheduler
/// has either bound or found unschedulable; then compares with the prediction.
async fn apply_and_compare(env: &TestEnv, nodes: &[String], v2: &Value, p: &Preview) {
    apply_then_compare(env, nodes, p, || apply(env, v2)).await
}

/// apply_and_compare with the operator's own way of applying.
async fn apply_then_compare(env: &TestEnv, nodes: &[String], p: &Preview, apply: impl FnOnce()) {
    let before = pods_by_node(env).await;
    let old: BTreeSet<String> = before.values().map(|s| s.uid.clone()).collect();
    apply();
    wait_for(
        Duration::from_secs(90),
        "new pods bound or found unschedulable",
        || async {
            let pods = env.pods("agent").await;
            pods.len() == nodes.len()
                && pods.iter().all(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && !old.contains(p.metadata.uid.as_deref().unwrap_or(""))
                        && (is_bound(p) || is_unschedulable(p))
                })
        },
    )
    .await;
    let after = pods_by_node(env).await;
    assert_eq!(observed(nodes, &before, &after), p.actions(nodes));
}

/// explain on the node whose new pod stays Pending: its fit check uses the pod itself, which
/// is the admitted pod (no dry run needed), and agrees with the preview's request.
fn explain_agrees(env: &TestEnv, node: &str, requested: &str) {
    let e = env.explain_json("agent");
    let v = node_verdict(&e, node);
    assert_eq!(v["state"], "Pending", "{v:#}");
    let r = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "InsufficientResources")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        (r["resource"].as_str(), r["requested"].as_str()),
        (Some("cpu"), Some(requested))
    );
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "Unschedulable"),
        "the scheduler's own verdict is there too: {v:#}"
    );
}

fn is_bound(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
}

fn is_unschedulable(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

#[tokio::test]
async fn limit_range_default_requests_block_the_restart() {
    let mut env = TestEnv::new("adm-limitrange").await;
    let (nodes, v1) = setup(&mut env).await;
    let mut objects = ClusterObjects(Vec::new());
    let viewer = viewer_without_create_pods(&env, &mut objects);
    create(&json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": env.ns},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "500m"}}]}
    }));
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/agent:2");

    // The raw template requests nothing; the admitted pod requests 500m: only that blocks.
    let p = preview_as(&env, &v2, None);
    assert_eq!(admission_source(&p), ("ServerDryRun".into(), true));
    assert_eq!(cpu_blocked(&p, &nodes[1]), "500m");
    assert_eq!(p.node(&nodes[0]).action, "Restart");

    // Without `create pods`: the LimitRange is modelled locally, and the output says so.
    let local = preview_as(&env, &v2, Some(&viewer));
    assert_eq!(admission_source(&local), ("Local".into(), false));
    let reason = local.admission.as_ref().unwrap()["fallbackReason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("forbidden"), "{reason}");
    assert_eq!(cpu_blocked(&local, &nodes[1]), "500m");
    assert_eq!(local.actions(&nodes), p.actions(&nodes));
    let f = manifest_file(&v2);
    let table = env.run(&[
        "rollout-preview",
        "agent",
        "-f",
        f.path().to_str().unwrap(),
        "--as",
        &viewer,
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("mutating webhooks were NOT consulted"),
        "{}",
        table.stdout
    );

    apply_and_compare(&env, &nodes, &v2, &p).await;
    explain_agrees(&env, &nodes[1], "500m");
}

#[tokio::test]
async fn runtime_class_overhead_blocks_the_restart() {
    let mut env = TestEnv::new("adm-runtimeclass").await;
    let (nodes, v1) = setup(&mut env).await;
    let mut objects = ClusterObjects(Vec::new());
    let viewer = viewer_without_create_pods(&env, &mut objects);
    let rc = env.ns.clone();
    create(&json!({
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": rc}, "handler": "runc",
        "overhead": {"podFixed": {"cpu": "500m"}}
    }));
    objects.0.push(("runtimeclass", rc.clone()));
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["runtimeClassName"] = json!(rc);
    // The container asks for 100m: with the overhead the pod needs 600m, more than is free.
    v2["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "100m"}});

    let p = preview_as(&env, &v2, None);
    assert_eq!(admission_source(&p), ("ServerDryRun".into(), true));
    assert_eq!(cpu_blocked(&p, &nodes[1]), "600m", "requests + overhead");
    let local = preview_as(&env, &v2, Some(&viewer));
    assert_eq!(admission_source(&local), ("Local".into(), false));
    assert_eq!(cpu_blocked(&local, &nodes[1]), "600m");
    assert_eq!(local.actions(&nodes), p.actions(&nodes));

    apply_and_compare(&env, &nodes, &v2, &p).await;
    explain_agrees(&env, &nodes[1], "600m");
}

// Multi-threaded: the webhook answers the apiserver while the test thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_sidecar_blocks_the_restart() {
    let mut env = TestEnv::new("adm-webhook").await;
    let (nodes, v1) = setup(&mut env).await;
    let mut objects = ClusterObjects(Vec::new());
    let viewer = viewer_without_create_pods(&env, &mut objects);
    let hook = Webhook::start().await;
    // The webhook selects the test's namespace by a label the test sets. Not by
    // `kubernetes.io/metadata.name`: the apiserver writes that label only from 1.21
    // (NamespaceDefaultLabelName); on 1.20 a selector on it matches no namespace, and the
    // webhook is called neither for the dry run nor for the controller's pods.
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone())
        .patch(
            &env.ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"kubectl-ds.test/sidecar": "inject"}}}),
            ),
        )
        .await
        .expect("label the namespace");
    let name = format!("{}-sidecar", env.ns);
    create(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "sidecar.kubectl-ds.test",
            "clientConfig": {"url": format!("https://127.0.0.1:{}/mutate", hook.port), "caBundle": hook.ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubectl-ds.test/sidecar": "inject"}},
            "objectSelector": {"matchLabels": {"app": "agent"}},
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "timeoutSeconds": 10
        }]
    }));
    objects.0.push(("mutatingwebhookconfiguration", name));
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/agent:2");

    // The webhook registration takes a moment to reach the apiserver's admission chain.
    let mut p = preview_as(&env, &v2, None);
    for _ in 0..40 {
        if p.node(&nodes[1]).action == "Blocked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        p = preview_as(&env, &v2, None);
    }
    assert_eq!(admission_source(&p), ("ServerDryRun".into(), true));
    assert_eq!(
        cpu_blocked(&p, &nodes[1]),
        "500m",
        "the injected sidecar's request"
    );
    assert_eq!(p.node(&nodes[0]).action, "Restart");
    assert!(hook.calls() > 0, "the apiserver called the webhook");

    // Denied the dry run, kubectl-ds cannot see the sidecar, and says so.
    let local = preview_as(&env, &v2, Some(&viewer));
    assert_eq!(admission_source(&local), ("Local".into(), false));

    apply_and_compare(&env, &nodes, &v2, &p).await;
    let sidecars = env
        .pods("agent")
        .await
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers.iter().any(|c| c.name == "injected"))
        })
        .count();
    assert_eq!(sidecars, 2, "the real pods carry the injected sidecar");
    explain_agrees(&env, &nodes[1], "500m");
}

#[tokio::test]
async fn surge_checks_the_pod_count_when_nothing_is_requested() {
    let mut env = TestEnv::new("adm-surge-pods").await;
    let full = NodeSpec {
        pods: Some("1"),
        ..Default::default()
    };
    let nodes = [
        env.node("a", NodeSpec::default()).await,
        env.node("full", full).await,
    ];
    let surge = json!({"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}});
    let (minor, version) = crate::harness::server_version(&env.client).await;
    if minor < 22 {
        return no_surge_before_1_22(env, &nodes, surge, &version).await;
    }
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = surge;
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/agent:2");

    let p = preview_as(&env, &v2, None);
    let full_node = p.node(&nodes[1]);
    assert_eq!(full_node.action, "Blocked", "{:?}", full_node.reasons);
    assert!(full_node
        .reasons
        .iter()
        .any(|r| r["code"] == "TooManyPods" && r["allocatable"] == 1));
    assert_eq!(p.node(&nodes[0]).action, "Restart");

    let before = pods_by_node(&env).await;
    apply(&env, &v2);
    // Node a: the surge pod starts and replaces the old one. Node full: the surge pod stays
    // unschedulable (Too many pods) and the old pod keeps running.
    let old_full = before[&nodes[1]].uid.clone();
    let old_a = before[&nodes[0]].uid.clone();
    wait_for(Duration::from_secs(90), "surge outcome", || async {
        let pods = env.pods("agent").await;
        let on = |n: &str| -> Vec<Pod> {
            pods.iter()
                .filter(|p| crate::e2e_rollout_preview::target_node(p).as_deref() == Some(n))
                .cloned()
                .collect()
        };
        let a = on(&nodes[0]);
        let full = on(&nodes[1]);
        let a_replaced =
            a.len() == 1 && a[0].metadata.uid.as_deref() != Some(&old_a) && is_bound(&a[0]);
        let full_blocked = full.len() == 2
            && full
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(&old_full) && is_bound(p))
            && full.iter().any(|p| {
                p.metadata.uid.as_deref() != Some(&old_full)
                    && is_unschedulable(p)
                    && scheduler_message(p).contains("Too many pods")
            });
        a_replaced && full_blocked
    })
    .await;
}

/// Before 1.22 a DaemonSet has no maxSurge (alpha behind DaemonSetUpdateSurge in 1.21, on
/// by default from 1.22): the apiserver drops the field, so `maxSurge: 2, maxUnavailable: 0`
/// is refused (by server-side apply as an unknown field, by an update because maxUnavailable
/// cannot be 0), and rollout-preview reports that refusal. The
/// same nodes rolled with maxUnavailable: the old pod goes first, so the full node's pod
/// count never blocks: preview and controller both restart every node.
async fn no_surge_before_1_22(env: TestEnv, nodes: &[String; 2], surge: Value, version: &str) {
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 2}});
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/agent:2");

    let mut surging = v2.clone();
    surging["spec"]["updateStrategy"] = surge;
    let f = manifest_file(&surging);
    let out = env.run(&["rollout-preview", "agent", "-f", f.path().to_str().unwrap()]);
    // Refused by the dry run: server-side apply does not know the field, an update drops
    // it and then finds maxUnavailable 0. Exit code 2: the manifest is bad for this server.
    assert_eq!(out.code, 2, "{version}: {}{}", out.stdout, out.stderr);
    let first = out.stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ")
            && first.contains("the apiserver rejects it")
            && (first.contains(".maxSurge: field not declared in schema")
                || first.contains("maxUnavailable: Invalid value")),
        "{version}: {}",
        out.stderr
    );

    // Applied client-side (a replace), the server drops maxSurge silently: the preview says
    // so, and predicts the maxUnavailable roll the controller then does. (kubectl itself
    // validates against the server's OpenAPI and stops at the unknown field; tools that do
    // not validate, and `--validate=false`, reach the server.)
    let client_side_apply = |m: &Value| {
        let f = manifest_file(m);
        let path = f.path().to_str().unwrap();
        let out = kubectl(&["apply", "--validate=false", "-n", &env.ns, "-f", path]);
        assert_eq!(out.code, 0, "kubectl apply: {}", out.stderr);
    };
    client_side_apply(&v1);
    v2["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(1);
    let p = preview_as(&env, &v2, None);
    assert!(
        p.notes.iter().any(|n| n.starts_with(&format!(
            "Kubernetes {version} dropped rollingUpdate.maxSurge (1)"
        ))),
        "{:?}",
        p.notes
    );
    for node in nodes {
        let n = p.node(node);
        assert_eq!(n.action, "Restart", "{version} {node}: {:?}", n.reasons);
        assert!(
            n.reasons.iter().all(|r| r["code"] != "TooManyPods"),
            "{version} {node}: {:?}",
            n.reasons
        );
    }
    apply_then_compare(&env, nodes, &p, || client_side_apply(&v2)).await;
    assert!(env.pods("agent").await.iter().all(is_bound), "{version}");
}

fn scheduler_message(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn toleration_seconds_make_an_eviction_loop() {
    let mut env = TestEnv::new("adm-evict-loop").await;
    let tainted = NodeSpec {
        taints: vec![
            json!({"key": "kubectl-ds.test/evict", "value": "yes", "effect": "NoExecute"}),
        ],
        ..Default::default()
    };
    let node = env.node("t", tainted).await;
    let ds = env.daemon_set(
        "agent",
        json!({"tolerations": [{"key": "kubectl-ds.test/evict", "operator": "Exists",
                                "effect": "NoExecute", "tolerationSeconds": 2}]}),
    );
    env.create_ds(ds).await;
    let first = wait_pod_uid(&env, &BTreeSet::new()).await;
    let e = env.explain_json("agent");
    let v = node_verdict(&e, &node);
    let r = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "EvictionLoop")
        .unwrap_or_else(|| panic!("no EvictionLoop: {v:#}"));
    assert_eq!(r["tolerationSeconds"], 2);
    assert_eq!(r["taint"], "kubectl-ds.test/evict=yes:NoExecute");
    // What explain says happens: the taint-eviction controller evicts, the DaemonSet
    // controller recreates, and again.
    let second = wait_pod_uid(&env, &BTreeSet::from([first.clone()])).await;
    wait_pod_uid(&env, &BTreeSet::from([first, second])).await;
}

/// Waits for a pod of `agent` whose UID is not in `seen`; returns it.
async fn wait_pod_uid(env: &TestEnv, seen: &BTreeSet<String>) -> String {
    let found = std::sync::Mutex::new(None);
    wait_for(Duration::from_secs(60), "a new agent pod", || async {
        let pods = env.pods("agent").await;
        let new = pods
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .find(|u| !seen.contains(u));
        let ok = new.is_some();
        *found.lock().unwrap() = new;
        ok
    })
    .await;
    let uid = found.lock().unwrap().clone();
    uid.unwrap()
}

// ---- a mutating webhook, served over TLS to the apiserver ----

/// Injects a sidecar requesting 500m cpu into every pod it is asked about.
struct Webhook {
    port: u16,
    ca_bundle: String,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    async fn start() -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // A self-signed certificate for IP 127.0.0.1 is its own CA bundle.
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &path("key.pem"),
            "-out",
            &path("cert.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-in",
            &path("cert.pem"),
            "-outform",
            "der",
            "-out",
            &path("cert.der"),
        ]);
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &path("key.pem"),
            "-outform",
            "der",
            "-out",
            &path("key.der"),
        ]);
        let cert = std::fs::read(path("cert.der")).unwrap();
        let key = std::fs::read(path("key.der")).unwrap();
        let pem = std::fs::read(path("cert.pem")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, &counter).await;
                    }
                });
            }
        });
        Webhook {
            port,
            ca_bundle: base64(&pem),
            calls,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// HTTP/1.1 keep-alive: one AdmissionReview per request, until the apiserver hangs up.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    calls: &std::sync::atomic::AtomicUsize,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match read_some(&mut stream, &mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + length {
            let mut chunk = [0u8; 8192];
            match read_some(&mut stream, &mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[header_end..header_end + length]).unwrap_or(Value::Null);
        buf.drain(..header_end + length);
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let reply = serde_json::to_vec(&review(&body)).unwrap();
        let mut out = Vec::new();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        )
        .unwrap();
        out.extend_from_slice(&reply);
        if write_all(&mut stream, &out).await.is_err() {
            return;
        }
    }
}

// tokio's io-util extension traits are not among the features the project builds tokio with:
// these two poll the stream directly.

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut *buf);
        std::pin::Pin::new(&mut *s)
            .poll_read(cx, &mut rb)
            .map_ok(|()| rb.filled().len())
    })
    .await
}

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_flush(cx)).await
}

/// The AdmissionReview answer: allowed, with a JSONPatch adding the sidecar (once).
fn review(request: &Value) -> Value {
    let req = &request["request"];
    let has = req["object"]["spec"]["containers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["name"] == "injected"));
    let mut response = json!({"uid": req["uid"], "allowed": true});
    if !has {
        let patch = json!([{"op": "add", "path": "/spec/containers/-", "value":
            {"name": "injected", "image": "registry.example/sidecar:1",
             "resources": {"requests": {"cpu": "500m"}}}}]);
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64(&serde_json::to_vec(&patch).unwrap()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Standard base64 with padding (caBundle and the JSONPatch are base64 in the API).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_rfc_vectors() {
    let cases: BTreeMap<&str, &str> = BTreeMap::from([
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ]);
    for (plain, encoded) in cases {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}

/// Marks the app's pod so the simulated kubelet never confirms its deletion, and deletes it
/// with a long grace period: it stays Terminating.
async fn hold_terminating(env: &TestEnv, app: &str) -> String {
    let pods = env.pods(app).await;
    let pod = pods[0].metadata.name.clone().unwrap();
    set_sim_delete(env, &pod, json!("hang")).await;
    let grace = kube::api::DeleteParams {
        grace_period_seconds: Some(600),
        ..Default::default()
    };
    env.pod_api().delete(&pod, &grace).await.unwrap();
    pod
}

async fn set_sim_delete(env: &TestEnv, pod: &str, value: Value) {
    let patch = json!({"metadata": {"annotations": {"kubectl-ds.dev/sim-delete": value}}});
    env.pod_api()
        .patch(
            pod,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
}

fn reason<'a>(verdict: &'a Value, code: &str) -> Option<&'a Value> {
    verdict["reasons"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["code"] == code))
}

#[tokio::test]
async fn a_node_whose_only_pod_is_terminating() {
    let mut env = TestEnv::new("adm-terminating").await;
    let plain = env.node("plain", NodeSpec::default()).await;
    let surging = env.node("surging", NodeSpec::default()).await;
    let on = |node: &str| json!({"nodeSelector": {"kubernetes.io/hostname": node}});
    env.create_ds(env.daemon_set("agent", on(&plain))).await;
    // maxSurge exists from 1.22 (see no_surge_before_1_22); before, only the plain half.
    let (minor, version) = crate::harness::server_version(&env.client).await;
    if minor < 22 {
        env.wait_rolled_out("agent", 1).await;
        let old_agent = hold_terminating(&env, "agent").await;
        return without_surge_nothing_until_gone(&env, &plain, &old_agent, &version).await;
    }
    let mut surger = env.daemon_set(
        "surger",
        json!({"nodeSelector": {"kubernetes.io/hostname": surging},
               "containers": [{"name": "agent", "image": "registry.example/agent:1",
                               "ports": [{"containerPort": 9100, "hostPort": 9100}]}]}),
    );
    surger["spec"]["updateStrategy"] =
        json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    env.create_ds(surger).await;
    env.wait_rolled_out("agent", 1).await;
    env.wait_rolled_out("surger", 1).await;
    let old_agent = hold_terminating(&env, "agent").await;
    let old_surger = hold_terminating(&env, "surger").await;

    // With surge: a new pod at once, which cannot bind: the terminating pod holds the port.
    wait_for(
        Duration::from_secs(60),
        "the surge pod found unschedulable",
        || async { env.pods("surger").await.iter().any(is_unschedulable) },
    )
    .await;
    let e = env.explain_json("surger");
    let v = node_verdict(&e, &surging);
    assert_eq!(v["state"], "Pending", "{v:#}");
    let r = reason(v, "HostPortConflict").unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(r["heldBy"], format!("{}/{old_surger}", env.ns));
    without_surge_nothing_until_gone(&env, &plain, &old_agent, &version).await;
}

/// Without surge: explain says nothing is created until the pod is gone, and the controller
/// indeed creates nothing (podsShouldBeOnNode counts the terminating pod, 1.20 as today);
/// once it is gone, the controller creates the node's pod.
async fn without_surge_nothing_until_gone(env: &TestEnv, plain: &str, old: &str, version: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let e = env.explain_json("agent");
    let v = node_verdict(&e, plain);
    assert_eq!(v["state"], "Terminating", "{version}: {v:#}");
    let r = reason(v, "AfterTerminating").unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(r["surge"], false);
    assert_eq!(
        env.pods("agent").await.len(),
        1,
        "{version}: nothing created beside it"
    );
    set_sim_delete(env, old, Value::Null).await;
    wait_for(Duration::from_secs(60), "agent pod recreated", || async {
        let pods = env.pods("agent").await;
        pods.len() == 1 && pods[0].metadata.deletion_timestamp.is_none()
    })
    .await;
}

#[tokio::test]
async fn host_ip_ipv6_any_is_not_a_wildcard() {
    let mut env = TestEnv::new("adm-hostip").await;
    let nodes = vec![
        env.node("v6any", NodeSpec::default()).await,
        env.node("v4any", NodeSpec::default()).await,
    ];
    // Another pod on each node holds port 9100: on "::" and on 0.0.0.0.
    for (node, ip) in nodes.iter().zip(["::", "0.0.0.0"]) {
        let holder: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("holder-{}", node.rsplit('-').next().unwrap()), "namespace": env.ns},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "holder",
                                     "ports": [{"containerPort": 9100, "hostPort": 9100, "hostIP": ip}]}]}
        }))
        .unwrap();
        env.pod_api()
            .create(&PostParams::default(), &holder)
            .await
            .unwrap();
    }
    let mut v1 = env.daemon_set("agent", json!({}));
    v1["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 2}});
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 9100, "hostPort": 9100, "hostIP": "192.0.2.10"}]);

    let p = preview_as(&env, &v2, None);
    // mirrors HostPortInfo.CheckConflict: only "" and 0.0.0.0 are wildcards.
    assert_eq!(
        p.node(&nodes[0]).action,
        "Restart",
        "{:?}",
        p.node(&nodes[0]).reasons
    );
    let blocked = p.node(&nodes[1]);
    assert_eq!(blocked.action, "Blocked");
    assert!(blocked
        .reasons
        .iter()
        .any(|r| r["code"] == "HostPortConflict"));
    apply_and_compare(&env, &nodes, &v2, &p).await;
}

#[tokio::test]
async fn a_pod_the_apiserver_refuses_blocks_every_node() {
    let mut env = TestEnv::new("adm-refused").await;
    let (nodes, v1) = setup(&mut env).await;
    create(&json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "cap", "namespace": env.ns},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "200m"}}]}
    }));
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "500m"}});

    let p = preview_as(&env, &v2, None);
    let a = p.admission.as_ref().unwrap();
    assert_eq!(a["source"], "ServerDryRun");
    let refused = a["refused"].as_str().unwrap_or_else(|| panic!("{a}"));
    assert!(
        refused.contains("maximum cpu usage per Container is 200m"),
        "{refused}"
    );
    for n in &nodes {
        let item = p.node(n);
        assert_eq!(item.action, "Blocked");
        assert!(item.reasons.iter().any(|r| r["code"] == "AdmissionRefused"));
    }

    // For real: the rolling update deletes the old pods and every create fails, for the same
    // reason (the pod's generated name aside).
    let why = refused.rsplit("forbidden: ").next().unwrap();
    apply(&env, &v2);
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    wait_for(
        Duration::from_secs(90),
        "old pods gone, creates refused",
        || async {
            let failed = events
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items.iter().any(|e| {
                        e.reason.as_deref() == Some("FailedCreate")
                            && e.message.as_deref().is_some_and(|m| m.contains(why))
                    })
                })
                .unwrap_or(false);
            failed && env.pods("agent").await.is_empty()
        },
    )
    .await;
}

#[tokio::test]
async fn adopting_a_failed_pod_replaces_it() {
    let mut env = TestEnv::new("adm-adopt-failed").await;
    let nodes = [
        env.node("a", NodeSpec::default()).await,
        env.node("b", NodeSpec::default()).await,
    ];
    let v1 = env.daemon_set("agent", json!({}));
    env.create_ds(v1.clone()).await;
    env.wait_rolled_out("agent", 2).await;
    let out = kubectl(&["delete", "ds", "agent", "-n", &env.ns, "--cascade=orphan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    wait_for(Duration::from_secs(60), "pods orphaned", || async {
        env.pods("agent").await.iter().all(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty())
        })
    })
    .await;
    // The orphan on node a fails (as a kubelet would report it).
    let pods = env.pods("agent").await;
    let failed = pods
        .iter()
        .find(|p| crate::e2e_rollout_preview::target_node(p).as_deref() == Some(&nodes[0]))
        .unwrap();
    let failed_name = failed.metadata.name.clone().unwrap();
    let out = kubectl(&[
        "patch",
        "pod",
        &failed_name,
        "-n",
        &env.ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let mut v2 = v1.clone();
    v2["metadata"]["name"] = json!("agent-v2");
    let f = manifest_file(&v2);
    let path = f.path().to_str().unwrap();
    // Deleting an adopted pod is a pre-flight check of its own (PodDeletion), also for a
    // Failed one: allowed here.
    let plan = env.run(&[
        "adopt",
        "-f",
        path,
        "--dry-run",
        "--allow-pod-deletion",
        "-o",
        "json",
    ]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let report: Value = serde_json::from_str(&plan.stdout).unwrap();
    let fate = |name: &str| {
        report["plan"]["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["fate"].as_str().unwrap().to_string())
    };
    // mirrors podsShouldBeOnNode: the Failed pod is deleted and replaced, never kept.
    assert_eq!(fate(&failed_name).as_deref(), Some("Delete"), "{report:#}");
    assert_eq!(report["plan"]["newNodes"], json!([nodes[0]]));

    // For real: the controller deletes the Failed pod and creates a new one on node a.
    apply(&env, &v2);
    wait_for(Duration::from_secs(90), "failed pod replaced", || async {
        let pods = env.pods("agent").await;
        let on_a: Vec<&Pod> = pods
            .iter()
            .filter(|p| crate::e2e_rollout_preview::target_node(p).as_deref() == Some(&nodes[0]))
            .collect();
        on_a.len() == 1
            && on_a[0].metadata.name.as_deref() != Some(&failed_name)
            && on_a[0].status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
}
