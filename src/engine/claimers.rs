//! Controllers that claim orphaned pods by label selector: the moment a DaemonSet is deleted
//! with propagationPolicy=Orphan, any ReplicaSet, ReplicationController, StatefulSet, Job or
//! other DaemonSet of the namespace whose selector matches its pods adopts them, and scales
//! them down to its own replica count. This module says which controllers would.
//! mirrors controller_ref_manager.go ClaimPods as each controller calls it (ReplicaSet and
//! ReplicationController: replica_set.go syncReplicaSet -> claimPods; StatefulSet:
//! stateful_set.go getPodsForStatefulSet with its isMemberOf filter; Job: job_controller.go
//! getPodsForJob; DaemonSet: daemon_controller.go getDaemonPods).

use std::collections::BTreeMap;

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::labels::{self, Requirement, Selector};
use super::podstate::is_terminating;
use super::safety::{Check, CheckCode, ALLOW_COMPETING_CONTROLLERS};

/// A controller that adopts matching orphans in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimer {
    /// `ReplicaSet`, `ReplicationController`, `StatefulSet`, `Job` or `DaemonSet`.
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
    pub selector: Selector,
    /// A StatefulSet claims only pods named `<its name>-<ordinal>` (isMemberOf).
    pub by_name_too: bool,
    /// Being deleted: ClaimPods' canAdopt (RecheckDeletionTimestamp) refuses every adoption.
    pub deleting: bool,
    /// Owned by a Deployment (a ReplicaSet), for the message.
    pub owner: Option<String>,
}

fn meta_parts(meta: &ObjectMeta) -> (String, String, bool, Option<String>) {
    let owner = super::snapshot::controller_of(meta).map(|(k, n, _)| format!("{k} {n}"));
    (
        meta.name.clone().unwrap_or_default(),
        meta.uid.clone().unwrap_or_default(),
        meta.deletion_timestamp.is_some(),
        owner,
    )
}

/// mirrors metav1.LabelSelectorAsSelector: `{}` selects everything, nil nothing; an invalid
/// selector (which the apiserver's validation rejects) is read as selecting nothing.
fn label_selector(sel: Option<&LabelSelector>) -> Selector {
    labels::from_label_selector(sel).unwrap_or(Selector {
        requirements: vec![],
        matches_nothing: true,
    })
}

fn claimer(kind: &'static str, meta: &ObjectMeta, selector: Selector) -> Claimer {
    let (name, uid, deleting, owner) = meta_parts(meta);
    Claimer {
        kind,
        name,
        uid,
        selector,
        by_name_too: false,
        deleting,
        owner,
    }
}

impl Claimer {
    pub fn of_replica_set(rs: &ReplicaSet) -> Claimer {
        let sel = rs.spec.as_ref().map(|s| &s.selector);
        claimer("ReplicaSet", &rs.metadata, label_selector(sel))
    }

    /// mirrors replication_controller: `labels.Set(rc.Spec.Selector).AsSelectorPreValidated()`
    /// (an empty map selects everything; the apiserver defaults it from the template labels).
    pub fn of_replication_controller(rc: &ReplicationController) -> Claimer {
        let map: BTreeMap<String, String> = rc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let selector = Selector {
            requirements: map
                .into_iter()
                .map(|(k, v)| Requirement::Equals(k, v))
                .collect(),
            matches_nothing: false,
        };
        claimer("ReplicationController", &rc.metadata, selector)
    }

    pub fn of_stateful_set(sts: &StatefulSet) -> Claimer {
        let sel = sts.spec.as_ref().map(|s| &s.selector);
        Claimer {
            by_name_too: true,
            ..claimer("StatefulSet", &sts.metadata, label_selector(sel))
        }
    }

    /// A Job without `manualSelector` has the generated selector
    /// `batch.kubernetes.io/controller-uid=<its uid>`, which no DaemonSet pod carries: checking
    /// the actual selector covers both cases.
    pub fn of_job(job: &Job) -> Claimer {
        let sel = job.spec.as_ref().and_then(|s| s.selector.as_ref());
        claimer("Job", &job.metadata, label_selector(sel))
    }

    pub fn of_daemon_set(ds: &DaemonSet) -> Claimer {
        let sel = ds.spec.as_ref().map(|s| &s.selector);
        claimer("DaemonSet", &ds.metadata, label_selector(sel))
    }

    /// Would this controller adopt `pod` once it has no controller?
    /// mirrors controller_ref_manager.go ClaimObject (orphan, selector matches, not being
    /// deleted) and stateful_set_utils.go isMemberOf for StatefulSets.
    pub fn would_claim(&self, pod: &Pod) -> bool {
        if self.deleting || is_terminating(pod) {
            return false;
        }
        if self.by_name_too && !is_member_of(&self.name, pod) {
            return false;
        }
        self.selector.matches(pod.metadata.labels.as_ref())
    }
}

/// mirrors stateful_set_utils.go getParentNameAndOrdinal (`(.*)-([0-9]+)$`) and isMemberOf:
/// a StatefulSet claims only pods whose name is its own plus `-<digits>`. A DaemonSet pod's
/// generated five-character suffix can be all digits, so this is not always false.
pub fn is_member_of(set_name: &str, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    match name.rsplit_once('-') {
        Some((parent, ordinal)) => {
            parent == set_name
                && !ordinal.is_empty()
                && ordinal.bytes().all(|b| b.is_ascii_digit())
                && ordinal.parse::<i32>().is_ok()
        }
        None => false,
    }
}

/// Which controllers would adopt which of `pods` once they are orphaned. `exclude_uid`: the
/// DaemonSet being orphan-deleted (it stops claiming once it is being deleted).
pub fn competing<'a>(
    claimers: &'a [Claimer],
    pods: &[&Pod],
    exclude_uid: Option<&str>,
) -> Vec<(&'a Claimer, Vec<String>)> {
    claimers
        .iter()
        .filter(|c| exclude_uid != Some(c.uid.as_str()))
        .filter_map(|c| {
            let names: Vec<String> = pods
                .iter()
                .filter(|p| c.would_claim(p))
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
            (!names.is_empty()).then_some((c, names))
        })
        .collect()
}

/// Blocks when another controller's selector matches any pod about to be orphaned: it would
/// adopt the pods the moment they are orphaned (and delete those above its replica count).
pub fn check_competing_controllers(
    claimers: &[Claimer],
    pods: &[&Pod],
    exclude_uid: Option<&str>,
) -> Check {
    let hits = competing(claimers, pods, exclude_uid);
    if hits.is_empty() {
        return Check::ok(
            CheckCode::CompetingController,
            format!(
                "no ReplicaSet, ReplicationController, StatefulSet, Job or other DaemonSet of the namespace selects the {} pod(s) to orphan",
                pods.len()
            ),
        );
    }
    let mut all_pods: Vec<String> = Vec::new();
    let text: Vec<String> = hits
        .iter()
        .map(|(c, names)| {
            all_pods.extend(names.iter().cloned());
            let owned = c
                .owner
                .as_deref()
                .map(|o| format!(", owned by {o}"))
                .unwrap_or_default();
            format!(
                "{}/{}{owned} selects {} of them",
                c.kind.to_ascii_lowercase(),
                c.name,
                names.len()
            )
        })
        .collect();
    all_pods.sort();
    all_pods.dedup();
    Check::block(
        CheckCode::CompetingController,
        format!(
            "once orphaned, the pods would be adopted (and possibly deleted) by another controller: {}",
            text.join("; ")
        ),
        Some(ALLOW_COMPETING_CONTROLLERS),
    )
    .with_pods(all_pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::safety::Verdict;
    use crate::engine::testutil::pod;

    fn rs(yaml: &str) -> ReplicaSet {
        crate::yaml::from_str(yaml).unwrap()
    }

    const AGENT_POD: &str = r#"
metadata:
  name: agent-x7k2p
  uid: p1
  labels: {app: agent, controller-revision-hash: 6d4f8b9c5, pod-template-generation: "1"}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds1, controller: true}]
spec: {nodeName: n1, containers: [{name: a, image: x}]}
"#;

    #[test]
    fn a_bare_replica_set_with_zero_replicas_competes() {
        let bare = rs(
            "metadata: {name: thief, uid: rs1}\nspec: {replicas: 0, selector: {matchLabels: {app: agent}}, template: {}}",
        );
        let p = pod(AGENT_POD);
        let c = check_competing_controllers(&[Claimer::of_replica_set(&bare)], &[&p], Some("ds1"));
        assert_eq!(c.verdict, Verdict::Block);
        assert!(
            c.message.contains("replicaset/thief selects 1 of them"),
            "{}",
            c.message
        );
        assert_eq!(
            c.override_flag.as_deref(),
            Some(ALLOW_COMPETING_CONTROLLERS)
        );
        assert_eq!(c.pods, vec!["agent-x7k2p".to_string()]);
    }

    #[test]
    fn a_deployment_replica_set_cannot_match_daemon_set_pods() {
        // The Deployment controller adds pod-template-hash to its ReplicaSets' selectors.
        let owned = rs(r#"
metadata:
  name: web-5d8f9c7b6
  uid: rs2
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]
spec:
  replicas: 2
  selector: {matchLabels: {app: agent, pod-template-hash: 5d8f9c7b6}}
  template: {}
"#);
        let p = pod(AGENT_POD);
        let c = check_competing_controllers(&[Claimer::of_replica_set(&owned)], &[&p], Some("ds1"));
        assert_eq!(c.verdict, Verdict::Ok, "{}", c.message);
    }

    #[test]
    fn the_orphaned_daemon_set_itself_and_deleting_controllers_do_not_compete() {
        let ds: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent, uid: ds1}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
        )
        .unwrap();
        let going = rs(
            "metadata: {name: old, uid: rs3, deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
        );
        let p = pod(AGENT_POD);
        let claimers = [Claimer::of_daemon_set(&ds), Claimer::of_replica_set(&going)];
        let c = check_competing_controllers(&claimers, &[&p], Some("ds1"));
        assert_eq!(c.verdict, Verdict::Ok, "{}", c.message);
    }

    #[test]
    fn other_kinds_match_by_their_own_selector_rules() {
        let p = pod(AGENT_POD);
        let rc: ReplicationController =
            crate::yaml::from_str("metadata: {name: rc, uid: u1}\nspec: {selector: {app: agent}}")
                .unwrap();
        let manual: Job = crate::yaml::from_str(
            "metadata: {name: j, uid: u2}\nspec: {manualSelector: true, selector: {matchLabels: {app: agent}}, template: {spec: {containers: []}}}",
        )
        .unwrap();
        let generated: Job = crate::yaml::from_str(
            "metadata: {name: g, uid: u3}\nspec: {selector: {matchLabels: {batch.kubernetes.io/controller-uid: u3}}, template: {spec: {containers: []}}}",
        )
        .unwrap();
        let sts: StatefulSet = crate::yaml::from_str(
            "metadata: {name: agent, uid: u4}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
        )
        .unwrap();
        let other_ds: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent-v2, uid: u5}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
        )
        .unwrap();
        let claimers = [
            Claimer::of_replication_controller(&rc),
            Claimer::of_job(&manual),
            Claimer::of_job(&generated),
            Claimer::of_stateful_set(&sts),
            Claimer::of_daemon_set(&other_ds),
        ];
        let hits = competing(&claimers, &[&p], Some("ds1"));
        let names: Vec<String> = hits
            .iter()
            .map(|(c, _)| format!("{}/{}", c.kind, c.name))
            .collect();
        // The StatefulSet's selector matches, but agent-x7k2p is not "agent-<ordinal>".
        assert_eq!(
            names,
            ["ReplicationController/rc", "Job/j", "DaemonSet/agent-v2"]
        );
    }

    #[test]
    fn a_stateful_set_claims_a_daemon_pod_whose_suffix_is_all_digits() {
        let mut p = pod(AGENT_POD);
        p.metadata.name = Some("agent-24567".into());
        let sts: StatefulSet = crate::yaml::from_str(
            "metadata: {name: agent, uid: u4}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}",
        )
        .unwrap();
        assert!(Claimer::of_stateful_set(&sts).would_claim(&p));
        assert!(!is_member_of("agent-2", &p));
        assert!(!is_member_of("agent", &pod("metadata: {name: agent-}")));
    }
}
