//! `kubectl ds endpoints NAME` against the real control plane: a headless Service, a ClusterIP
//! Service, a Service whose selector misses, host ports without hostNetwork and a not-Ready pod;
//! the EndpointSlice membership reported is the one the real EndpointSlice controller wrote.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{wait_for, NodeSpec, TestEnv};

/// The documented `Endpoints` schema, strictly: a renamed or added field fails here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Endpoints {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    cluster_domain: String,
    notes: Vec<String>,
    services: Vec<ServiceInfo>,
    nodes: Vec<PodEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct ServiceInfo {
    name: String,
    #[serde(rename = "type")]
    type_: String,
    headless: bool,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    selector: std::collections::BTreeMap<String, String>,
    selects_pods: bool,
    publish_not_ready_addresses: bool,
    dns_name: String,
    ports: Vec<Value>,
    endpoint_slices: Vec<String>,
    reasons: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct PodEndpoint {
    node: String,
    pod: String,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
    host_network: bool,
    ready: bool,
    host_ports: Vec<HostPort>,
    services: Vec<Membership>,
    reasons: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct HostPort {
    container: String,
    name: Option<String>,
    container_port: i32,
    host_port: i32,
    protocol: String,
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Membership {
    service: String,
    selected: bool,
    endpoint_slice: Option<String>,
    ready_in_slice: Option<bool>,
    expected_listed: bool,
    expected_ready: bool,
    serving: bool,
}

fn container() -> Value {
    json!({
        "name": "agent", "image": "registry.example/agent:1",
        "ports": [
            {"name": "metrics", "containerPort": 9100, "hostPort": 9100},
            {"name": "grpc", "containerPort": 7000}
        ]
    })
}

async fn service(env: &TestEnv, name: &str, spec: Value) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": env.ns},
        "spec": spec
    }))
    .unwrap();
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
}

/// The real slices of a Service (discovery.k8s.io/v1, or v1beta1 before 1.21), as
/// (pod, slice, conditions.ready).
async fn slice_members(env: &TestEnv, svc: &str) -> Vec<(String, String, Option<bool>)> {
    let mut list = Value::Null;
    for version in ["v1", "v1beta1"] {
        let url = format!(
            "/apis/discovery.k8s.io/{version}/namespaces/{}/endpointslices?labelSelector=kubernetes.io/service-name%3D{svc}",
            env.ns
        );
        let req = http::Request::get(url).body(Vec::new()).unwrap();
        match env.client.request::<Value>(req).await {
            Ok(v) => {
                list = v;
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => panic!("list endpointslices: {e}"),
        }
    }
    let mut out = Vec::new();
    for s in list["items"].as_array().expect("a slice list") {
        for ep in s["endpoints"].as_array().into_iter().flatten() {
            out.push((
                ep["targetRef"]["name"].as_str().unwrap_or("").to_string(),
                s["metadata"]["name"].as_str().unwrap().to_string(),
                ep["conditions"]["ready"].as_bool(),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn services_host_ports_and_a_not_ready_pod() {
    let mut env = TestEnv::new("endpoints").await;
    let a = env.node("a", NodeSpec::default()).await;
    let b = env.node("b", NodeSpec::default()).await;
    let c = env.node("c", NodeSpec::default()).await;
    // A pod on c that never turns Ready (KWOK knob), created before the DaemonSet: the real
    // controller adopts it (OnDelete: it is never replaced) instead of creating one there.
    let unready: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "agent-unready", "namespace": env.ns, "labels": {"app": "agent"},
            "annotations": {"kubectl-ds.dev/sim": "notready"}
        },
        "spec": {"nodeName": c, "terminationGracePeriodSeconds": 0, "containers": [container()]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &unready)
        .await
        .unwrap();
    // Running with an IP first, so the controller's informer has it before the DaemonSet.
    wait_for(
        Duration::from_secs(30),
        "the unready pod running",
        || async {
            let p = env.pod_api().get("agent-unready").await.unwrap();
            p.status.and_then(|s| s.pod_ip).is_some()
        },
    )
    .await;
    let mut ds = env.daemon_set("agent", json!({"containers": [container()]}));
    ds["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    env.create_ds(ds).await;
    service(
        &env,
        "agent-headless",
        json!({"clusterIP": "None", "selector": {"app": "agent"}, "ports": [{"port": 9100}]}),
    )
    .await;
    service(
        &env,
        "agent",
        json!({"selector": {"app": "agent"}, "ports": [{"port": 80, "targetPort": 9100}]}),
    )
    .await;
    service(
        &env,
        "agent-web",
        json!({"selector": {"app": "agent", "tier": "web"}, "ports": [{"port": 80}]}),
    )
    .await;
    // Wait for the real EndpointSlice controller: three pods listed, one not ready.
    let wait = || async {
        let m = slice_members(&env, "agent-headless").await;
        m.len() == 3 && m.iter().filter(|x| x.2 == Some(false)).count() == 1
    };
    wait_for(
        Duration::from_secs(60),
        "headless EndpointSlice filled",
        wait,
    )
    .await;
    wait_for(
        Duration::from_secs(30),
        "ClusterIP EndpointSlice filled",
        || async { slice_members(&env, "agent").await.len() == 3 },
    )
    .await;

    let out = env.run(&["endpoints", "agent", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "kubectl-ds/v1");
    assert_eq!(doc["kind"], "Endpoints");
    let strict: Endpoints = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not the documented schema: {e}\n{doc:#}"));
    assert_eq!(strict.nodes.len(), 3);
    assert!(doc["notes"][0].as_str().unwrap().contains("cluster.local"));

    let services = doc["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent", "agent-headless", "agent-web"]);
    let headless = &services[1];
    assert_eq!(headless["headless"], true);
    assert_eq!(headless["selectsPods"], true);
    assert_eq!(
        headless["dnsName"],
        format!("agent-headless.{}.svc.cluster.local", env.ns)
    );
    assert_eq!(services[0]["headless"], false);
    let web = &services[2];
    assert_eq!(web["selectsPods"], false);
    assert_eq!(web["reasons"][0]["code"], "ServiceSelectorMisses");
    assert_eq!(
        web["reasons"][0]["keys"][0],
        "tier=web (the pods have no tier label)"
    );

    let rows = doc["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{doc:#}");
    let pods: Vec<Pod> = env.pods("agent").await;
    for row in rows {
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == row["pod"].as_str())
            .unwrap_or_else(|| panic!("{row:#}"));
        let status = pod.status.clone().unwrap();
        assert_eq!(row["podIP"], json!(status.pod_ip), "{row:#}");
        assert_eq!(row["hostIP"], json!(status.host_ip), "{row:#}");
        assert_eq!(row["hostPorts"][0]["hostPort"], 9100);
        assert_eq!(row["hostPorts"].as_array().unwrap().len(), 1);
        let codes: Vec<&str> = row["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"HostPortWithoutHostNetwork"), "{codes:?}");
        assert!(!codes.contains(&"EndpointSliceOutOfDate"), "{row:#}");
        let is_unready = row["pod"] == "agent-unready";
        assert_eq!(
            row["node"],
            if is_unready {
                &c
            } else {
                row["node"].as_str().unwrap()
            }
        );
        assert_eq!(row["ready"], !is_unready);
        assert_eq!(codes.contains(&"PodNotReady"), is_unready, "{codes:?}");
        // Membership exactly as the real EndpointSlice controller wrote it.
        for svc in ["agent", "agent-headless"] {
            let real = slice_members(&env, svc).await;
            let (_, slice, ready) = real
                .iter()
                .find(|m| Some(m.0.as_str()) == row["pod"].as_str())
                .unwrap_or_else(|| panic!("{} not in {svc}'s slices", row["pod"]));
            let m = row["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["service"] == svc)
                .unwrap();
            assert_eq!(m["endpointSlice"], json!(slice));
            assert_eq!(m["readyInSlice"], json!(ready));
            assert_eq!(m["serving"], !is_unready);
        }
        let web = row["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["service"] == "agent-web")
            .unwrap();
        assert_eq!(web["selected"], false);
        assert!(web["endpointSlice"].is_null());
    }
    let nodes: Vec<&str> = rows.iter().map(|r| r["node"].as_str().unwrap()).collect();
    for n in [&a, &b, &c] {
        assert!(nodes.contains(&n.as_str()), "{nodes:?}");
    }
    // The not-Ready row comes first (problems first).
    assert_eq!(rows[0]["pod"], "agent-unready");

    // The table: the not-Ready pod first, its membership marked not-ready.
    let table = env.run(&["endpoints", "agent"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let row = table
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("NODE"))
        .nth(1)
        .expect("a pod row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[0], c);
    assert_eq!(cells[1], "agent-unready");
    assert_eq!(cells[4], "9100/TCP");
    assert_eq!(cells[5], "no");
    assert_eq!(cells[6], "agent(not-ready),agent-headless(not-ready)");
    assert_eq!(cells[7], "HostPortWithoutHostNetwork,PodNotReady");

    let missing = env.run(&["endpoints", "nosuch"]);
    assert_eq!(missing.code, 4, "{}", missing.stderr);
}
