//! Cluster access, kube-rs only: a client from kubeconfig flags, concurrent fetches of the
//! objects the engine needs, and mutations with preconditions and dry-run.

pub mod admission;
pub mod claimers;
pub mod client;
pub mod dry_run;
pub mod fetch;
pub mod lease;
pub mod list;
#[cfg(test)]
pub mod mock;
pub mod mutate;
pub mod names;
pub mod node_view;
pub mod proto;
pub mod retry;
pub mod slim;
pub mod watch;
pub mod wire;
