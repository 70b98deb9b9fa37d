//! The foundation on the real control plane: the real DaemonSet controller creates a pod for a
//! simulated node, the real scheduler binds it, the simulator makes it Ready, and a real
//! rolling update completes.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::{wait_for, NodeSpec, TestEnv};

#[tokio::test]
async fn controller_scheduler_simulator_and_rolling_update() {
    let mut env = TestEnv::new("found").await;
    let n1 = env.node("a", NodeSpec::default()).await;
    let n2 = env.node("b", NodeSpec::default()).await;
    let ds = env.create_ds(env.daemon_set("agent", json!({}))).await;
    env.wait_rolled_out("agent", 2).await;

    let pods = env.pods("agent").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let owner = p
            .metadata
            .owner_references
            .as_ref()
            .unwrap()
            .iter()
            .find(|o| o.controller == Some(true))
            .unwrap();
        assert_eq!(
            owner.uid,
            ds.metadata.uid.clone().unwrap(),
            "created by the real DaemonSet controller"
        );
        let spec = p.spec.as_ref().unwrap();
        // The controller pins with matchFields; the scheduler sets nodeName.
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        let pinned = terms[0].match_fields.as_ref().unwrap()[0]
            .values
            .as_ref()
            .unwrap()[0]
            .clone();
        assert_eq!(
            spec.node_name.as_deref(),
            Some(pinned.as_str()),
            "bound by the scheduler to the pinned node"
        );
        let conds = p.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert!(conds
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            "made Ready by the simulator"
        );
        assert!(p.status.as_ref().unwrap().pod_ip.is_some());
    }
    let mut nodes: Vec<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![n1, n2]);

    // A real rolling update: every pod replaced by one with the new image.
    let old_uids: Vec<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "registry.example/agent:2"}]}}}});
    env.ds_api()
        .patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    env.wait_rolled_out("agent", 2).await;
    wait_for(Duration::from_secs(60), "old pods gone", || async {
        let pods = env.pods("agent").await;
        pods.len() == 2
            && pods
                .iter()
                .all(|p| !old_uids.contains(p.metadata.uid.as_ref().unwrap()))
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref()
                    == Some("registry.example/agent:2")
            })
    })
    .await;
    let ds = env.ds_api().get("agent").await.unwrap();
    assert_eq!(ds.status.unwrap().updated_number_scheduled, Some(2));
}
