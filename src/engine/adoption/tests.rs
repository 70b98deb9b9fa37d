//! The adoption analysis on inline fixtures, one scenario per check; and, on the same fixtures,
//! the progress assessments that verify it afterwards.

use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::json;

use super::*;
// The analysis with its checks, as the workflows run it.
use crate::engine::checks::analyse_adoption as analyse;
use crate::engine::progress::{assess_adoption, assess_orphaning, migrate_stage, Stage};
use crate::engine::safety::{
    apply_overrides, blocks, CheckCode, Overrides, Verdict, ALLOW_LEFTOVER_PODS,
    ALLOW_POD_DELETION, ALLOW_RESTARTS,
};
use crate::engine::testutil::{daemon_set, node, pod};

const OLD_UID: &str = "old-uid";

/// The old DaemonSet: selector app=agent,release=r1; template labels add component=agent.
fn old_ds() -> DaemonSet {
    daemon_set(
        "
metadata: {name: agent, namespace: ns, uid: old-uid}
spec:
  selector: {matchLabels: {app: agent, release: r1}}
  template:
    metadata: {labels: {app: agent, release: r1, component: agent}}
    spec:
      nodeSelector: {pool: a}
      containers: [{name: c, image: agent:1}]
",
    )
}

/// The new DaemonSet: another name, selector component=agent, same template unless changed.
fn new_ds(change: impl FnOnce(&mut Value)) -> DaemonSet {
    let mut v = serde_json::to_value(old_ds()).unwrap();
    v["metadata"] = json!({"name": "agent-v2", "namespace": "ns"});
    v["spec"]["selector"] = json!({"matchLabels": {"component": "agent"}});
    change(&mut v);
    serde_json::from_value(v).unwrap()
}

fn revision_of(ds: &DaemonSet, hash: &str, owner: Option<&str>) -> ControllerRevision {
    let mut template = serde_json::to_value(&ds.spec.as_ref().unwrap().template).unwrap();
    template["$patch"] = json!("replace");
    template["metadata"]["creationTimestamp"] = Value::Null;
    let mut labels = ds
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .clone()
        .unwrap()
        .labels
        .unwrap();
    labels.insert(HASH_LABEL.into(), hash.into());
    let mut cr: ControllerRevision = serde_json::from_value(json!({
        "metadata": {"name": format!("agent-{hash}"), "namespace": "ns", "uid": format!("cr-{hash}"), "labels": labels},
        "revision": 1,
    }))
    .unwrap();
    cr.data = Some(RawExtension(json!({"spec": {"template": template}})));
    if let Some(uid) = owner {
        cr.metadata.owner_references = Some(vec![owner_ref(uid)]);
    }
    cr
}

fn owner_ref(uid: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": uid, "controller": true}))
        .unwrap()
}

fn daemon_pod(name: &str, node_name: &str, owner: Option<&str>, extra_labels: Value) -> Pod {
    let mut labels = json!({"app": "agent", "release": "r1", "component": "agent",
        "controller-revision-hash": "h1", "pod-template-generation": "1"});
    if let (Some(l), Some(e)) = (labels.as_object_mut(), extra_labels.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                l.remove(k);
            } else {
                l.insert(k.clone(), v.clone());
            }
        }
    }
    let mut p = pod(&format!(
        "metadata: {{name: {name}, namespace: ns, uid: uid-{name}, creationTimestamp: '2025-01-01T00:00:00Z'}}\nspec: {{nodeName: {node_name}, containers: [{{name: c}}]}}"
    ));
    p.metadata.labels = serde_json::from_value(labels).unwrap();
    if let Some(uid) = owner {
        p.metadata.owner_references = Some(vec![owner_ref(uid)]);
    }
    p
}

fn nodes() -> Vec<Node> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|n| node(&format!("metadata: {{name: {n}, labels: {{pool: a}}}}")))
        .collect()
}

struct World {
    new: DaemonSet,
    pred: Predecessor,
    name: NameState,
    pods: Vec<Pod>,
    revs: Vec<ControllerRevision>,
    nodes: Vec<Node>,
    dss: Vec<DaemonSet>,
    requested: Option<i64>,
}

impl World {
    /// Migrate before the delete: three pods on three nodes, owned by the old DaemonSet.
    fn migrate() -> World {
        let old = old_ds();
        let pods: Vec<Pod> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| daemon_pod(&format!("agent-{n}"), n, Some(OLD_UID), json!({})))
            .collect();
        let pred = Predecessor::from_live(&old, &pods);
        World {
            new: new_ds(|_| {}),
            pred,
            name: NameState::Free,
            revs: vec![revision_of(&old, "h1", Some(OLD_UID))],
            pods,
            nodes: nodes(),
            dss: vec![old],
            requested: None,
        }
    }

    fn analyse(&self) -> AdoptAnalysis {
        analyse(&AdoptFacts {
            new_ds: &self.new,
            requested_generation: self.requested,
            predecessor: Some(&self.pred),
            name_state: &self.name,
            pods: &self.pods,
            revisions: &self.revs,
            nodes: &self.nodes,
            daemon_sets: &self.dss,
        })
    }
}

fn check(a: &AdoptAnalysis, code: CheckCode) -> &Check {
    a.checks
        .iter()
        .find(|c| c.code == code)
        .unwrap_or_else(|| panic!("no {code:?} in {:#?}", a.checks))
}

#[test]
fn compatible_selector_and_same_template_adopts_everything_without_restarts() {
    let a = World::migrate().analyse();
    assert_eq!(a.count(Fate::Adopt), 3, "{:#?}", a.pods);
    assert!(blocks(&a.checks).is_empty(), "{:#?}", a.checks);
    assert_eq!(check(&a, CheckCode::Restarts).verdict, Verdict::Ok);
    let reuse = check(&a, CheckCode::RevisionReuse);
    assert_eq!(reuse.verdict, Verdict::Ok);
    assert!(reuse.message.contains("agent-h1"), "{}", reuse.message);
    assert_eq!(a.revisions.len(), 1);
    assert!(a.revisions[0].adopted && a.revisions[0].matches_new_template);
    // The pods carry pod-template-generation=1: the new DaemonSet starts at 2.
    assert_eq!(a.template_generation, 2);
    assert_eq!(a.desired, 3);
    assert!(a.new_nodes.is_empty());
    assert!(a.pods.iter().all(|p| p.from_predecessor));
}

#[test]
fn a_selector_missing_pods_is_blocked_and_names_its_flag() {
    let mut w = World::migrate();
    w.pods[1] = daemon_pod("agent-n2", "n2", Some(OLD_UID), json!({"component": null}));
    let a = w.analyse();
    let c = check(&a, CheckCode::LeftBehind);
    assert_eq!(c.verdict, Verdict::Block);
    assert_eq!(c.override_flag.as_deref(), Some(ALLOW_LEFTOVER_PODS));
    assert_eq!(c.pods, vec!["agent-n2 (n2)".to_string()]);
    assert!(c.message.contains("1 with a duplicate"), "{}", c.message);
    assert_eq!(a.new_nodes, vec!["n2".to_string()]);
    let allowed = apply_overrides(
        a.checks.clone(),
        &Overrides {
            allow_leftover_pods: true,
            ..Default::default()
        },
    );
    assert!(blocks(&allowed).is_empty());
}

#[test]
fn nodes_the_new_daemon_set_no_longer_covers_lose_their_pods() {
    let mut w = World::migrate();
    w.nodes[2] = node("metadata: {name: n3, labels: {pool: b}}");
    let a = w.analyse();
    assert_eq!(a.count(Fate::Delete), 1);
    let c = check(&a, CheckCode::PodDeletion);
    assert_eq!(c.verdict, Verdict::Block);
    assert_eq!(c.override_flag.as_deref(), Some(ALLOW_POD_DELETION));
    assert!(
        c.message.contains("does not cover node n3"),
        "{}",
        c.message
    );
    assert_eq!(a.desired, 2);
}

#[test]
fn a_second_pod_on_a_node_is_pruned() {
    let mut w = World::migrate();
    let mut younger = daemon_pod("agent-n1-b", "n1", None, json!({"release": "r0"}));
    younger.metadata.creation_timestamp =
        serde_json::from_value(json!("2025-02-01T00:00:00Z")).unwrap();
    w.pods.push(younger);
    let a = w.analyse();
    let dup = a.pods.iter().find(|p| p.name == "agent-n1-b").unwrap();
    assert_eq!(dup.fate, Fate::Delete);
    assert!(dup
        .detail
        .as_deref()
        .unwrap()
        .contains("keeps the oldest (agent-n1)"));
    // It was not the old DaemonSet's: it is also reported as an extra adoption.
    assert_eq!(check(&a, CheckCode::AlsoAdopted).verdict, Verdict::Warn);
}

#[test]
fn failed_and_succeeded_pods_are_deleted_and_replaced_never_kept() {
    let mut w = World::migrate();
    // n1: the older pod Failed beside a younger running one: the running one is kept.
    let mut failed = daemon_pod("agent-n1-old", "n1", None, json!({"release": "r0"}));
    failed.metadata.creation_timestamp =
        serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap();
    failed.status = serde_json::from_value(json!({"phase": "Failed"})).unwrap();
    w.pods.push(failed);
    // n2: its only pod Succeeded: deleted, and the node gets a new pod.
    w.pods[1].status = serde_json::from_value(json!({"phase": "Succeeded"})).unwrap();
    let a = w.analyse();
    let fate = |name: &str| a.pods.iter().find(|p| p.name == name).unwrap().clone();
    assert_eq!(fate("agent-n1-old").fate, Fate::Delete);
    assert!(fate("agent-n1-old")
        .detail
        .unwrap()
        .contains("Failed on node n1"));
    assert_eq!(
        fate("agent-n1").fate,
        Fate::Adopt,
        "the running pod is kept"
    );
    assert_eq!(fate("agent-n2").fate, Fate::Delete);
    assert!(fate("agent-n2").detail.unwrap().starts_with("Succeeded"));
    assert_eq!(a.new_nodes, vec!["n2".to_string()]);
}

#[test]
fn a_template_change_restarts_pods_per_node() {
    let mut w = World::migrate();
    w.new = new_ds(|v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2"));
    let a = w.analyse();
    assert_eq!(a.count(Fate::Restart), 3);
    let c = check(&a, CheckCode::Restarts);
    assert_eq!(c.verdict, Verdict::Block);
    assert_eq!(c.override_flag.as_deref(), Some(ALLOW_RESTARTS));
    assert!(
        c.message.contains("at spec.containers[0].image"),
        "{}",
        c.message
    );
    assert!(!a.revisions[0].matches_new_template);
    // OnDelete: the pods stay on the old template, a warning.
    w.new = new_ds(|v| {
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        v["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    });
    let a = w.analyse();
    assert_eq!(a.count(Fate::Outdated), 3);
    assert_eq!(check(&a, CheckCode::Restarts).verdict, Verdict::Warn);
}

#[test]
fn adopt_alone_refuses_pods_the_old_daemon_set_still_controls() {
    let mut w = World::migrate();
    w.pred.orphaning_first = false;
    let a = w.analyse();
    let c = check(&a, CheckCode::ForeignController);
    assert_eq!(c.verdict, Verdict::Block);
    assert!(c.override_flag.is_none());
    assert!(c.message.contains("orphan it first"), "{}", c.message);
}

#[test]
fn adopt_without_a_backup_names_the_daemon_set_still_holding_the_pods() {
    let w = World::migrate();
    let a = analyse(&AdoptFacts {
        new_ds: &w.new,
        requested_generation: None,
        predecessor: None,
        name_state: &w.name,
        pods: &w.pods,
        revisions: &w.revs,
        nodes: &w.nodes,
        daemon_sets: &w.dss,
    });
    assert_eq!(a.count(Fate::Foreign), 3);
    let c = check(&a, CheckCode::ForeignController);
    assert_eq!(c.verdict, Verdict::Block);
    assert!(
        c.message.contains("kubectl ds orphan agent"),
        "{}",
        c.message
    );
}

#[test]
fn another_daemon_set_matching_the_orphans_blocks() {
    let mut w = World::migrate();
    w.dss.push(daemon_set(
        "metadata: {name: greedy, namespace: ns, uid: g}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
    ));
    let a = w.analyse();
    let c = check(&a, CheckCode::CompetingSelector);
    assert_eq!(c.verdict, Verdict::Block);
    assert!(c.message.contains("greedy matches 3"), "{}", c.message);
}

#[test]
fn a_requested_template_generation_the_pods_carry_is_raised() {
    let mut w = World::migrate();
    w.requested = Some(1);
    let a = w.analyse();
    assert_eq!(a.template_generation, 2);
    assert_eq!(
        check(&a, CheckCode::TemplateGeneration).verdict,
        Verdict::Warn
    );
    w.requested = Some(7);
    let a = w.analyse();
    assert_eq!(a.template_generation, 7);
    assert_eq!(
        check(&a, CheckCode::TemplateGeneration).verdict,
        Verdict::Ok
    );
}

#[test]
fn a_taken_name_blocks_and_nothing_overrides_it() {
    let mut w = World::migrate();
    w.name = NameState::Taken { uid: "x".into() };
    let a = w.analyse();
    let c = check(&a, CheckCode::NameTaken);
    assert_eq!(c.verdict, Verdict::Block);
    assert!(c.override_flag.is_none());
}

#[test]
fn without_a_predecessor_related_orphans_are_suspects() {
    let mut w = World::migrate();
    for p in &mut w.pods {
        p.metadata.owner_references = None;
    }
    w.pods[0] = daemon_pod("agent-n1", "n1", None, json!({"component": null}));
    let a = analyse(&AdoptFacts {
        new_ds: &w.new,
        requested_generation: None,
        predecessor: None,
        name_state: &w.name,
        pods: &w.pods,
        revisions: &w.revs,
        nodes: &w.nodes,
        daemon_sets: &[],
    });
    assert_eq!(a.count(Fate::Adopt), 2);
    assert_eq!(a.count(Fate::LeftBehind), 1);
    assert_eq!(check(&a, CheckCode::LeftBehind).verdict, Verdict::Block);
}

#[test]
fn a_pod_without_revision_is_a_warning() {
    let mut w = World::migrate();
    w.revs.clear();
    let a = w.analyse();
    assert_eq!(a.count(Fate::Adopt), 3);
    assert_eq!(check(&a, CheckCode::RevisionReuse).verdict, Verdict::Warn);
}

#[test]
fn nothing_to_adopt_is_a_warning() {
    let mut w = World::migrate();
    w.pods.clear();
    let a = w.analyse();
    assert_eq!(check(&a, CheckCode::NothingToAdopt).verdict, Verdict::Warn);
    assert_eq!(a.new_nodes.len(), 3);
    assert_eq!(a.template_generation, 1);
}

fn created(uid: &str, status: Value) -> DaemonSet {
    let mut ds = new_ds(|_| {});
    ds.metadata.uid = Some(uid.into());
    ds.metadata.generation = Some(1);
    ds.status = Some(serde_json::from_value(status).unwrap());
    ds
}

#[test]
fn adoption_progress_from_orphans_to_adopted() {
    let mut w = World::migrate();
    let a = w.analyse();
    for p in &mut w.pods {
        p.metadata.owner_references = None;
    }
    let settled = json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
        "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3, "numberMisscheduled": 0});
    let ds = created(
        "new-uid",
        json!({"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberReady": 0, "numberMisscheduled": 0}),
    );
    let pr = assess_adoption(&a, &ds, &w.pods);
    assert!(!pr.is_complete());
    assert_eq!(pr.adopted.len(), 0);
    for p in &mut w.pods {
        p.metadata.owner_references = Some(vec![owner_ref("new-uid")]);
    }
    let ds = created("new-uid", settled.clone());
    let pr = assess_adoption(&a, &ds, &w.pods);
    assert!(pr.is_complete() && pr.is_clean(), "{pr:#?}");
    assert_eq!(pr.adopted.len(), 3);
    // A pod replaced although no restart was planned is reported.
    w.pods[0] = daemon_pod("agent-n1-new", "n1", Some("new-uid"), json!({}));
    let pr = assess_adoption(&a, &ds, &w.pods);
    assert_eq!(pr.unexpected_restarts.len(), 1);
    assert_eq!(
        pr.unexpected_restarts[0].replaced_by.as_deref(),
        Some("agent-n1-new")
    );
    assert!(!pr.is_clean());
    // Two pods of the new DaemonSet on a node: not complete.
    w.pods
        .push(daemon_pod("extra", "n2", Some("new-uid"), json!({})));
    let pr = assess_adoption(&a, &ds, &w.pods);
    assert_eq!(pr.duplicates, vec!["n2".to_string()]);
    assert!(!pr.is_complete());
}

#[test]
fn orphaning_progress() {
    let w = World::migrate();
    let planned: Vec<String> = w
        .pods
        .iter()
        .map(|p| p.metadata.uid.clone().unwrap())
        .collect();
    let old = old_ds();
    let pr = assess_orphaning(OLD_UID, Some(&old), &planned, &w.pods, &w.revs);
    assert!(!pr.is_complete());
    assert_eq!(pr.owned_pods.len(), 3);
    assert_eq!(pr.owned_revisions.len(), 1);
    let mut pods = w.pods.clone();
    for p in &mut pods {
        p.metadata.owner_references = None;
    }
    let mut revs = w.revs.clone();
    revs[0].metadata.owner_references = Some(vec![]);
    let pr = assess_orphaning(OLD_UID, None, &planned, &pods[1..], &revs);
    assert!(pr.is_complete());
    assert_eq!(pr.running.len(), 2);
    assert_eq!(pr.gone, vec!["uid-agent-n1".to_string()]);
    assert!(
        !pr.is_verified(),
        "a planned pod that disappeared is not success"
    );
    let pr = assess_orphaning(OLD_UID, None, &planned, &pods, &revs);
    assert!(pr.is_verified());
}

#[test]
fn a_foreign_finalizer_does_not_hold_the_orphaning_forever() {
    let w = World::migrate();
    let planned: Vec<String> = w
        .pods
        .iter()
        .map(|p| p.metadata.uid.clone().unwrap())
        .collect();
    let mut pods = w.pods.clone();
    for p in &mut pods {
        p.metadata.owner_references = None;
    }
    let mut revs = w.revs.clone();
    revs[0].metadata.owner_references = None;
    let mut held = old_ds();
    held.metadata.deletion_timestamp =
        serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap();
    // The garbage collector still has to orphan: its own finalizer is there.
    held.metadata.finalizers = Some(vec!["orphan".into(), "example.com/hold".into()]);
    let pr = assess_orphaning(OLD_UID, Some(&held), &planned, &pods, &revs);
    assert!(!pr.is_complete());
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let pr = assess_orphaning(OLD_UID, Some(&held), &planned, &pods, &revs);
    assert!(pr.is_verified());
    assert!(!pr.daemon_set_gone);
    assert_eq!(pr.held_by_finalizers, vec!["example.com/hold".to_string()]);
    // Not deleted at all: not complete, whatever its finalizers.
    let mut live = old_ds();
    live.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    assert!(!assess_orphaning(OLD_UID, Some(&live), &planned, &pods, &revs).is_complete());
}

#[test]
fn migration_stages() {
    let old = old_ds();
    let manifest = crate::engine::manifest::parse_new_daemon_set(
        &serde_json::to_string(&serde_json::to_value(new_ds(|_| {})).unwrap()).unwrap(),
    )
    .unwrap();
    let journal = Journal {
        namespace: "ns".into(),
        name: "agent".into(),
        uid: OLD_UID.into(),
        resource_version: "1".into(),
        written_at: "t".into(),
        pods: vec![],
        revisions: vec![],
    };
    let mut deleting = old.clone();
    deleting.metadata.deletion_timestamp =
        serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap();
    let mut created = crate::engine::manifest::prepare_for_create(&manifest, "agent/old-uid", 2);
    created.metadata.uid = Some("new-uid".into());
    let j = Some(&journal);
    assert_eq!(
        migrate_stage("agent", Some(&old), None, &manifest, None),
        Some(Stage::Start)
    );
    assert_eq!(
        migrate_stage("agent", Some(&deleting), None, &manifest, j),
        Some(Stage::Orphaning)
    );
    assert_eq!(
        migrate_stage("agent", None, None, &manifest, j),
        Some(Stage::Orphaned)
    );
    assert_eq!(migrate_stage("agent", None, None, &manifest, None), None);
    assert_eq!(
        migrate_stage("agent", None, Some(&created), &manifest, j),
        Some(Stage::Created)
    );
    // The old one kept by a foreign finalizer after the new one was created: verify.
    assert_eq!(
        migrate_stage("agent", Some(&deleting), Some(&created), &manifest, j),
        Some(Stage::Created)
    );
    // A DaemonSet of the new name that kubectl-ds did not create: adopt stage, where NameTaken blocks.
    let stranger = manifest.clone();
    assert_eq!(
        migrate_stage("agent", None, Some(&stranger), &manifest, j),
        Some(Stage::Orphaned)
    );
    // Same name: the object is the old one until it carries the marker naming the old UID.
    let mut same = manifest.clone();
    same.metadata.name = Some("agent".into());
    let mut same_created = created.clone();
    same_created.metadata.name = Some("agent".into());
    assert_eq!(
        migrate_stage("agent", Some(&old), Some(&old), &same, j),
        Some(Stage::Start)
    );
    assert_eq!(
        migrate_stage("agent", Some(&same_created), Some(&same_created), &same, j),
        Some(Stage::Created)
    );
    assert_eq!(
        migrate_stage("agent", None, None, &same, j),
        Some(Stage::Orphaned)
    );
}

#[test]
fn template_differences_are_named_by_path() {
    let a = json!({"spec": {"containers": [{"image": "a:1", "name": "c"}]}, "metadata": {"labels": {"x": "1"}}});
    let b = json!({"spec": {"containers": [{"image": "a:2", "name": "c"}]}, "metadata": {"labels": {"x": "1", "y": "2"}}});
    assert_eq!(
        differing_paths(&a, &b, 5),
        vec![
            "metadata.labels.y".to_string(),
            "spec.containers[0].image".to_string()
        ]
    );
    assert!(differing_paths(&a, &a, 5).is_empty());
}
