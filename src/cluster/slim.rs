//! Compact nodes and pods for `explain` and `rollout-preview`: each listed object keeps only
//! the fields the engine reads, as its page is decoded, so a 5,000-node list never holds node
//! annotations, addresses, capacity, images, the conditions besides Ready, or a pod's command
//! lines, probe times and IPs.
//!
//! The same shaping runs on the protobuf and the JSON path (`KUBECTL_DS_WIRE=json`), so both
//! give the engine the same objects and the same answer.
//!
//! What is kept, by reader:
//! - node: name and labels (placement, affinity, `--node-selector`, `-L`), `spec.unschedulable`
//!   and taints (placement), the Ready condition's type and status (placement
//!   `ready_condition`), `status.allocatable` (fit). Nothing else of a listed node is read: the
//!   engine's node type (crate::engine::model::Node) holds only these.
//! - pod: metadata but annotations, resourceVersion and selfLink (ownership, revision hash
//!   label, ages, termination); the spec's scheduling fields, priority, overhead, pod-level
//!   resources and each container's name, image, ports, resources and restart policy (fit,
//!   preemption, target node); the status but the pod IPs, QoS class and the containers' ids
//!   (readiness, availability, waiting reasons, restarts, start time for preemption).
//!
//! `explain`, `rollout-preview` and `status` (its first fetch and its watches, cluster::watch)
//! read objects in this shape; `why`, `endpoints` and the workflows list whole objects and
//! hand the engine its types (crate::engine::model) with their metadata and status whole.

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::engine::model;

/// A node as the engine reads it (crate::engine::model::Node, see the module header); as a
/// list's shaping step (never drops one).
pub fn some_node(n: Node) -> Option<model::Node> {
    Some(n.into())
}

/// A pod as the engine reads it; as a list's shaping step (never drops one).
pub fn some_pod(p: Pod) -> Option<model::Pod> {
    Some(pod(p))
}

/// A pod as the engine reads it (see the module header): crate::engine::model::Pod, whose
/// spec keeps only the scheduling fields and each container's name, image, ports, resources
/// and restart policy; its metadata and status are trimmed here.
pub fn pod(p: Pod) -> model::Pod {
    let m = p.metadata;
    model::Pod {
        metadata: ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            uid: m.uid,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            labels: m.labels,
            owner_references: m.owner_references,
            finalizers: m.finalizers,
            ..Default::default()
        },
        spec: p.spec.map(model::PodSpec::from),
        status: p.status.map(pod_status),
    }
}

fn pod_status(s: PodStatus) -> PodStatus {
    PodStatus {
        observed_generation: s.observed_generation,
        phase: s.phase,
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| PodCondition {
                    last_probe_time: None,
                    ..c
                })
                .collect()
        }),
        message: s.message,
        reason: s.reason,
        nominated_node_name: s.nominated_node_name,
        start_time: s.start_time,
        init_container_statuses: s
            .init_container_statuses
            .map(|cs| cs.into_iter().map(container_status).collect()),
        container_statuses: s
            .container_statuses
            .map(|cs| cs.into_iter().map(container_status).collect()),
        ..Default::default()
    }
}

fn container_status(s: ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        name: s.name,
        state: s.state,
        last_state: s.last_state,
        ready: s.ready,
        restart_count: s.restart_count,
        image: s.image,
        started: s.started,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the engine reads of a node survives; what it never reads is gone.
    #[test]
    fn a_node_keeps_what_placement_and_fit_read() {
        let full: Node = crate::yaml::from_str(
            r#"
metadata:
  name: worker-1
  uid: u-1
  resourceVersion: "7"
  labels: {kubernetes.io/os: linux, pool: a}
  annotations: {kwok.x-k8s.io/node: fake}
spec:
  unschedulable: true
  podCIDR: 10.0.0.0/24
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
status:
  capacity: {cpu: "4", pods: "110"}
  allocatable: {cpu: 3900m, pods: "110"}
  addresses: [{type: InternalIP, address: 10.0.0.7}]
  images: [{names: [registry.example/big:1], sizeBytes: 1000}]
  conditions:
  - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory}
  - {type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status,
     lastHeartbeatTime: "2025-11-23T12:15:00Z"}
"#,
        )
        .unwrap();
        let want = crate::engine::testutil::node(
            r#"
metadata:
  name: worker-1
  labels: {kubernetes.io/os: linux, pool: a}
spec:
  unschedulable: true
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
status:
  allocatable: {cpu: 3900m, pods: "110"}
  conditions: [{type: Ready, status: "True"}]
"#,
        );
        let slim = some_node(full).unwrap();
        assert_eq!(slim, want);
        assert_eq!(
            slim.status.as_ref().unwrap().conditions,
            Some(vec![model::NodeCondition {
                type_: "Ready".into(),
                status: "True".into()
            }])
        );
        assert_eq!(
            crate::engine::placement::ready_condition(&slim).as_deref(),
            Some("True")
        );
    }

    /// A pod keeps its ownership, scheduling, resources and status; loses annotations, command
    /// lines, IPs and probe times.
    #[test]
    fn a_pod_keeps_what_the_engine_reads() {
        let full: Pod = crate::yaml::from_str(
            r#"
metadata:
  name: agent-x
  namespace: ns
  uid: u-2
  resourceVersion: "9"
  creationTimestamp: "2025-11-23T12:00:00Z"
  labels: {app: agent, controller-revision-hash: abc}
  annotations: {note: big}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u-ds, controller: true}]
spec:
  nodeName: worker-1
  priority: 10
  tolerations: [{operator: Exists}]
  containers:
  - name: agent
    image: registry.example/agent:1
    command: [run, --verbose]
    ports: [{containerPort: 9100, hostPort: 9100}]
    resources: {requests: {cpu: 100m}}
status:
  phase: Running
  podIP: 10.1.0.3
  qosClass: Burstable
  startTime: "2025-11-23T12:00:01Z"
  conditions:
  - {type: Ready, status: "True", lastProbeTime: "2025-11-23T12:00:05Z",
     lastTransitionTime: "2025-11-23T12:00:04Z"}
  containerStatuses:
  - {name: agent, ready: true, restartCount: 2, image: registry.example/agent:1,
     imageID: sha, containerID: c-1, state: {running: {startedAt: "2025-11-23T12:00:03Z"}}}
"#,
        )
        .unwrap();
        let want: Pod = crate::yaml::from_str(
            r#"
metadata:
  name: agent-x
  namespace: ns
  uid: u-2
  creationTimestamp: "2025-11-23T12:00:00Z"
  labels: {app: agent, controller-revision-hash: abc}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u-ds, controller: true}]
spec:
  nodeName: worker-1
  priority: 10
  tolerations: [{operator: Exists}]
  containers:
  - name: agent
    image: registry.example/agent:1
    ports: [{containerPort: 9100, hostPort: 9100}]
    resources: {requests: {cpu: 100m}}
status:
  phase: Running
  startTime: "2025-11-23T12:00:01Z"
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2025-11-23T12:00:04Z"}
  containerStatuses:
  - {name: agent, ready: true, restartCount: 2, image: registry.example/agent:1,
     state: {running: {startedAt: "2025-11-23T12:00:03Z"}}}
"#,
        )
        .unwrap();
        assert_eq!(pod(full), model::Pod::from(want));
    }
}
