//! The pure decision engine: k8s-openapi objects in, typed verdicts out.
//!
//! No kube client, no tokio, no environment, no clock (`now` is a parameter), no stdout.
//! Each rule that mirrors upstream names the upstream function it mirrors.

pub mod admission;
pub mod adoption;
pub mod affinity;
pub mod budget;
pub mod checks;
pub mod claimers;
pub mod documents;
pub mod endpoints;
pub mod explain;
pub mod fit;
pub mod fix;
pub mod labels;
pub mod lease;
pub mod managed;
pub mod manifest;
pub mod model;
pub mod owner;
pub mod placement;
pub mod podstate;
pub mod preemption;
pub mod progress;
pub mod reason;
pub mod report;
pub mod revision;
pub mod rollout;
pub mod safety;
pub mod schedmsg;
pub mod snapshot;
pub mod status;
pub mod taints;
pub mod threeway;
pub mod version;
pub mod why;

#[cfg(test)]
pub mod testutil;
