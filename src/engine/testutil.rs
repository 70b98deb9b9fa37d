//! Test helpers: build k8s-openapi objects from inline YAML, as real `kubectl get -o yaml` reads.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};

pub fn node(yaml: &str) -> Node {
    crate::yaml::from_str(yaml).expect("node yaml")
}

pub fn pod(yaml: &str) -> Pod {
    crate::yaml::from_str(yaml).expect("pod yaml")
}

pub fn pod_spec(yaml: &str) -> PodSpec {
    let mut spec: PodSpec = crate::yaml::from_str(yaml).expect("pod spec yaml");
    if spec.containers.is_empty() {
        spec.containers = vec![Default::default()];
    }
    spec
}

pub fn daemon_set(yaml: &str) -> DaemonSet {
    crate::yaml::from_str(yaml).expect("daemonset yaml")
}
