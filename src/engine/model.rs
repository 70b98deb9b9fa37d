//! The compact nodes and pods the engine reads: only the fields it reads, with k8s-openapi's
//! field names and types, so engine code reads them as it reads the API objects
//! (`node.spec.as_ref().and_then(|s| s.taints.as_ref())`, `pod.spec.as_ref().map(|s|
//! &s.containers)`).
//!
//! Why: `explain`, `rollout-preview` and `status` hold every node of the cluster and every pod
//! of the DaemonSet for the whole run. A `k8s_openapi` `Node` is about 1.5 kB inline even with
//! nearly every field None (its spec, status and metadata declare every field); a `Pod` is
//! 2.2 kB and each of its `Container`s 2.1 kB more. At 5,000 nodes and 5,000 pods that is over
//! 28 MB of `None`s. A [`Node`] here is a few dozen words, a [`Pod`] about half of k8s-openapi's
//! and its [`Container`] a tenth.
//!
//! What is kept is exactly what cluster::slim documents as read (the module header there):
//! - node: name and labels, `spec.unschedulable` and taints, `status.allocatable`, and the
//!   Ready condition's type and status;
//! - pod: the whole metadata and status (k8s-openapi's types: slim trims them for the lists),
//!   the spec's scheduling fields ([`PodSpec`]) and each container's name, image, ports,
//!   resources and restart policy ([`Container`]).
//!
//! Objects are converted once, as a list's page is decoded ([`From`] the API type); whole API
//! objects (`why`'s node and pods, `--assume-node`, the workflows' lists, the DaemonSet's
//! template) convert at the boundary where they enter the engine.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A node as the engine reads it (see the module header).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub metadata: NodeMeta,
    pub spec: Option<NodeSpec>,
    pub status: Option<NodeStatus>,
}

/// A node's metadata as the engine reads it: placement, affinity, `--node-selector` and `-L`
/// read its name and labels (its uid is not read: a node is known by its name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMeta {
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `spec.unschedulable` and the taints (placement).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeSpec {
    pub unschedulable: Option<bool>,
    pub taints: Option<Vec<api::Taint>>,
}

/// `status.allocatable` (fit) and the Ready condition (placement `ready_condition`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeStatus {
    /// Shared (see [`shared`]): the nodes of a pool offer the same.
    pub allocatable: Option<Arc<BTreeMap<String, Quantity>>>,
    /// The Ready condition only (no other is read).
    pub conditions: Option<Vec<NodeCondition>>,
}

/// A node condition's type and status (the reason, message and times are not read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeCondition {
    pub type_: String,
    pub status: String,
}

impl From<api::Node> for Node {
    fn from(n: api::Node) -> Node {
        Node {
            metadata: NodeMeta {
                name: n.metadata.name,
                labels: n.metadata.labels,
            },
            spec: n.spec.map(|s| NodeSpec {
                unschedulable: s.unschedulable,
                taints: s.taints,
            }),
            status: n.status.map(|s| NodeStatus {
                allocatable: s.allocatable.map(shared),
                conditions: s.conditions.map(|cs| {
                    let mut ready = Vec::with_capacity(1);
                    ready.extend(cs.into_iter().filter(|c| c.type_ == "Ready").map(|c| {
                        NodeCondition {
                            type_: c.type_,
                            status: c.status,
                        }
                    }));
                    ready
                }),
            }),
        }
    }
}

/// A pod as the engine reads it (see the module header).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<api::PodStatus>,
}

/// The spec fields that placement, fit, preemption, admission and the target node read (a
/// DaemonSet's template converts to this too: the engine's "new pod").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSpec {
    pub init_containers: Option<Vec<Container>>,
    pub containers: Vec<Container>,
    pub restart_policy: Option<String>,
    /// Shared (see [`shared`]): a DaemonSet's pods all carry the same.
    pub node_selector: Option<Arc<BTreeMap<String, String>>>,
    pub node_name: Option<String>,
    pub host_network: Option<bool>,
    pub affinity: Option<api::Affinity>,
    /// Shared (see [`shared`]): a DaemonSet's pods all carry the same.
    pub tolerations: Option<Arc<Vec<api::Toleration>>>,
    pub priority_class_name: Option<String>,
    pub priority: Option<i32>,
    pub runtime_class_name: Option<String>,
    pub preemption_policy: Option<String>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    pub scheduling_gates: Option<Vec<api::PodSchedulingGate>>,
    /// Pod-level resources (`spec.resources`, PodLevelResources).
    pub resources: Option<api::ResourceRequirements>,
}

/// A container's name, image, ports (host ports), resources (fit) and restart policy (a
/// restartable init container, i.e. a sidecar, counts as a regular container in fit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    pub ports: Option<Vec<api::ContainerPort>>,
    /// Shared (see [`shared`]): the same container of a DaemonSet's pods asks the same.
    pub resources: Option<Arc<api::ResourceRequirements>>,
    pub restart_policy: Option<String>,
}

/// One allocation for a value that repeats from object to object of a list: the tolerations,
/// nodeSelector and container resources of a DaemonSet's pods (its template's), a node pool's
/// allocatable. Each conversion compares the value with the last few distinct ones seen on this
/// thread (most recent first) and hands out a clone of the `Arc` it equals, or keeps the new one.
/// At 5,000 pods and nodes that saves the four maps and vectors per object (a `BTreeMap` with
/// one entry allocates room for eleven), about 10 MB; the engine reads them through `Arc`'s
/// `Deref` as before. Values that differ from object to object (names, labels, the node
/// affinity the controller pins each pod with) are not offered.
pub fn shared<T: PartialEq + Send + Sync + 'static>(value: T) -> Arc<T> {
    // Distinct values of every kind together: a pod's tolerations, nodeSelector and each of
    // its containers' resources, a node's allocatable.
    const RECENT: usize = 16;
    type Seen = Arc<dyn Any + Send + Sync>;
    thread_local! {
        static RECENT_VALUES: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
    }
    RECENT_VALUES.with(|recent| {
        let mut recent = recent.borrow_mut();
        let hit = recent.iter().enumerate().find_map(|(i, seen)| {
            let seen = Arc::clone(seen).downcast::<T>().ok()?;
            (*seen == value).then_some((i, seen))
        });
        let arc = match hit {
            Some((i, arc)) => {
                recent.remove(i);
                arc
            }
            None => Arc::new(value),
        };
        recent.insert(0, Arc::clone(&arc) as Seen);
        recent.truncate(RECENT);
        arc
    })
}

/// `v` converted item by item into a new vector of exactly its length.
///
/// Not `v.into_iter().map(f).collect()`: when the new items are no larger than the old, std
/// collects in place, into the old allocation, and keeps its whole capacity (a converted
/// `Container`, 184 bytes, would keep the 2,120 bytes of k8s-openapi's; a node's one Ready
/// condition the room of all its conditions), for as long as the result lives.
pub fn convert_all<T, U>(v: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(v.len());
    out.extend(v.into_iter().map(f));
    out
}

impl From<api::Pod> for Pod {
    fn from(p: api::Pod) -> Pod {
        Pod {
            metadata: p.metadata,
            spec: p.spec.map(PodSpec::from),
            status: p.status,
        }
    }
}

impl From<api::PodSpec> for PodSpec {
    fn from(s: api::PodSpec) -> PodSpec {
        PodSpec {
            init_containers: s.init_containers.map(|cs| convert_all(cs, Container::from)),
            containers: convert_all(s.containers, Container::from),
            restart_policy: s.restart_policy,
            node_selector: s.node_selector.map(shared),
            node_name: s.node_name,
            host_network: s.host_network,
            affinity: s.affinity,
            tolerations: s.tolerations.map(shared),
            priority_class_name: s.priority_class_name,
            priority: s.priority,
            runtime_class_name: s.runtime_class_name,
            preemption_policy: s.preemption_policy,
            overhead: s.overhead,
            scheduling_gates: s.scheduling_gates,
            resources: s.resources,
        }
    }
}

impl From<api::Container> for Container {
    fn from(c: api::Container) -> Container {
        Container {
            name: c.name,
            image: c.image,
            ports: c.ports,
            resources: c.resources.map(shared),
            restart_policy: c.restart_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline sizes the memory budget counts on (14: a 5,000-node cluster's node
    /// table): a regression that makes them grow fails here.
    #[test]
    fn compact_types_stay_small() {
        let sizes = [
            ("api::Node", std::mem::size_of::<api::Node>()),
            ("model::Node", std::mem::size_of::<Node>()),
            ("api::Pod", std::mem::size_of::<api::Pod>()),
            ("model::Pod", std::mem::size_of::<Pod>()),
            ("api::Container", std::mem::size_of::<api::Container>()),
            ("model::Container", std::mem::size_of::<Container>()),
        ];
        eprintln!("{sizes:?}");
        assert!(std::mem::size_of::<Node>() <= 250, "{sizes:?}");
        assert!(std::mem::size_of::<Pod>() <= 1_400, "{sizes:?}");
        assert!(std::mem::size_of::<Container>() <= 250, "{sizes:?}");
    }

    /// Two pods of one template share their tolerations, nodeSelector and container resources
    /// (one allocation each); a pod asking for something else gets its own.
    #[test]
    fn repeated_values_are_shared_and_different_ones_are_not() {
        let pod = |cpu: &str| {
            Pod::from(
                crate::yaml::from_str::<api::Pod>(&format!(
                    "spec:
  nodeSelector: {{kubernetes.io/os: linux}}
  tolerations: [{{operator: Exists}}]
  containers: [{{name: c, resources: {{requests: {{cpu: {cpu}}}}}}}]"
                ))
                .unwrap(),
            )
        };
        let (a, b, c) = (pod("100m"), pod("100m"), pod("200m"));
        let spec = |p: &Pod| p.spec.clone().unwrap();
        let (a, b, c) = (spec(&a), spec(&b), spec(&c));
        let res = |s: &PodSpec| s.containers[0].resources.clone().unwrap();
        assert!(Arc::ptr_eq(&res(&a), &res(&b)));
        assert!(!Arc::ptr_eq(&res(&a), &res(&c)));
        assert_eq!(res(&c).requests.as_ref().unwrap()["cpu"].0, "200m");
        let tol = |s: &PodSpec| s.tolerations.clone().unwrap();
        assert!(Arc::ptr_eq(&tol(&a), &tol(&b)) && Arc::ptr_eq(&tol(&a), &tol(&c)));
        let sel = |s: &PodSpec| s.node_selector.clone().unwrap();
        assert!(Arc::ptr_eq(&sel(&a), &sel(&c)));
        // Values of another type never match, even when empty.
        let empty_map: Arc<BTreeMap<String, String>> = shared(BTreeMap::new());
        let empty_vec: Arc<Vec<api::Toleration>> = shared(Vec::new());
        assert!(empty_map.is_empty() && empty_vec.is_empty());
    }

    /// A converted pod's containers and a node's Ready condition take only their own room, not
    /// that of the API objects they were converted from (see [`convert_all`]).
    #[test]
    fn conversions_do_not_keep_the_api_objects_room() {
        let pod = api::Pod {
            spec: Some(api::PodSpec {
                containers: vec![api::Container::default(); 2],
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod::from(pod);
        let containers = &pod.spec.as_ref().unwrap().containers;
        assert_eq!((containers.len(), containers.capacity()), (2, 2));
        let node = api::Node {
            status: Some(api::NodeStatus {
                conditions: Some(
                    ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
                        .map(|t| api::NodeCondition {
                            type_: t.into(),
                            status: "False".into(),
                            ..Default::default()
                        })
                        .to_vec(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let node = Node::from(node);
        let ready = node.status.unwrap().conditions.unwrap();
        assert_eq!((ready.len(), ready.capacity()), (1, 1));
    }
}
