//! Test helpers: build k8s-openapi objects from inline YAML, as real `kubectl get -o yaml` reads.

use crate::engine::model::Node;
use crate::engine::model::{Pod, PodSpec};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::Value;

use super::snapshot::Snapshot;

/// A node as the engine reads it, from a `Node` manifest (as a list's page is converted).
pub fn node(yaml: &str) -> Node {
    crate::yaml::from_str::<k8s_openapi::api::core::v1::Node>(yaml)
        .expect("node yaml")
        .into()
}

/// A pod as the engine reads it, from a `Pod` manifest (as a list's page is converted).
pub fn pod(yaml: &str) -> Pod {
    crate::yaml::from_str::<k8s_openapi::api::core::v1::Pod>(yaml)
        .expect("pod yaml")
        .into()
}

pub fn pod_spec(yaml: &str) -> PodSpec {
    let mut spec: PodSpec = crate::yaml::from_str::<k8s_openapi::api::core::v1::PodSpec>(yaml)
        .expect("pod spec yaml")
        .into();
    if spec.containers.is_empty() {
        spec.containers = vec![Default::default()];
    }
    spec
}

/// A Running, Ready pod of the DaemonSet ns/agent (uid ds-uid) on `node` (a YAML scalar, quoted
/// when it must be), of revision `hash`; `extra` is more YAML under `metadata`. Its creation
/// second follows its name's length, so that pods of different names have an order.
pub fn agent_pod(name: &str, node: &str, hash: &str, extra: &str) -> Pod {
    pod(&format!(
        r#"
metadata:
  name: {name}
  namespace: ns
  uid: uid-{name}
  creationTimestamp: "2026-01-01T00:00:0{}Z"
  labels: {{app: agent, controller-revision-hash: {hash}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
{extra}
spec:
  nodeName: {node}
  containers: [{{name: agent, image: "agent:2"}}]
status:
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
"#,
        name.len() % 10
    ))
}

pub fn daemon_set(yaml: &str) -> DaemonSet {
    crate::yaml::from_str(yaml).expect("daemonset yaml")
}

/// A saved List (tests/fixtures) as the snapshot `explain -f` builds from it: the DaemonSet
/// `name`, every node, its pods (those bound to a node also as the pods on that node) and the
/// PriorityClasses.
pub fn snapshot_of_list(text: &str, name: &str) -> Snapshot {
    let list: Value = crate::yaml::from_str(text).expect("list yaml");
    let mut snap = Snapshot::default();
    let mut nodes = Vec::new();
    let mut classes: Vec<PriorityClass> = Vec::new();
    let mut pods: Vec<Pod> = Vec::new();
    for item in list["items"].as_array().expect("a List") {
        let o = item.clone();
        match item["kind"].as_str().unwrap_or("") {
            "DaemonSet" if item["metadata"]["name"] == name => {
                snap.daemon_set = serde_json::from_value(o).expect("daemonset")
            }
            "Node" => nodes.push(Node::from(
                serde_json::from_value::<k8s_openapi::api::core::v1::Node>(o).expect("node"),
            )),
            "Pod" => pods.push(
                serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(o)
                    .expect("pod")
                    .into(),
            ),
            "PriorityClass" => classes.push(serde_json::from_value(o).expect("class")),
            _ => {}
        }
    }
    let namespace = snap.daemon_set.metadata.namespace.clone();
    for pod in pods {
        if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            snap.pods_on_nodes.entry(n).or_default().push(pod.clone());
        }
        if pod.metadata.namespace == namespace {
            snap.pods.push(pod);
        }
    }
    snap.nodes = nodes.into();
    snap.priorities.classes = Some(classes);
    snap
}
