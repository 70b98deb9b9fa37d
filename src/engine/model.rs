//! The compact nodes the engine reads: only the fields it reads, with k8s-openapi's field
//! names and types, so engine code reads them as it reads the API objects
//! (`node.spec.as_ref().and_then(|s| s.taints.as_ref())`).
//!
//! Why: `explain`, `rollout-preview` and `status` hold every node of the cluster for the whole
//! run. A `k8s_openapi` `Node` is about 1.5 kB inline even with nearly every field None (its
//! spec, status and metadata declare every field); at 5,000 nodes that is 7.5 MB of `None`s.
//! A [`Node`] here is a few dozen words.
//!
//! What is kept is exactly what cluster::slim documents as read (the module header there):
//! name and labels, `spec.unschedulable` and taints, `status.allocatable`, and the Ready
//! condition's type and status. Objects are converted once, as a list's page is decoded
//! ([`From`] the API type); whole API objects (`why`'s node, `--assume-node`, the workflows'
//! lists) convert at the boundary where they enter the engine.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

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
    pub allocatable: Option<BTreeMap<String, Quantity>>,
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
                allocatable: s.allocatable,
                conditions: s.conditions.map(|cs| {
                    cs.into_iter()
                        .filter(|c| c.type_ == "Ready")
                        .map(|c| NodeCondition {
                            type_: c.type_,
                            status: c.status,
                        })
                        .collect()
                }),
            }),
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
        ];
        eprintln!("{sizes:?}");
        assert!(std::mem::size_of::<Node>() <= 250, "{sizes:?}");
    }
}
