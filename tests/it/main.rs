//! The one integration-test binary (ripgrep style): CLI behaviour, end-to-end tests on a real
//! control plane (kube-apiserver, etcd, kube-controller-manager, kube-scheduler; KWOK as the
//! kubelet) started by `scripts/dev-cluster`, and the release installed by the real krew.

mod bad_input;
mod cli;
mod difftest;
mod e2e_admission;
mod e2e_busy;
mod e2e_complete;
mod e2e_endpoints;
mod e2e_explain;
mod e2e_foundation;
mod e2e_output;
mod e2e_preemption;
mod e2e_rollout_preview;
mod e2e_status;
mod e2e_why;
mod e2e_workflow_input;
mod e2e_workflow_migrate;
mod e2e_workflow_orphan_adopt;
mod e2e_workflow_safety;
mod harness;
mod k9s;
mod krew;
mod output;
mod workflow_support;
