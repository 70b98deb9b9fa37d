//! Watching one DaemonSet and everything its explanation reads (its pods, its
//! ControllerRevisions, its events, every node) with kube-runtime's watcher: an initial list,
//! then watch events; on 410 Gone or a dropped connection the watcher lists again (the
//! relist replaces what it held, so a missed deletion cannot linger). The objects are kept in
//! one [`Snapshot`], in place: no second copy, and without their managedFields.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};

use super::client::Cluster;
use crate::engine::manifest::selector_text;
use crate::engine::snapshot::Snapshot;

/// One watch event of one of the five kinds, or a watch error (the watcher retries it).
pub enum Update {
    DaemonSet(watcher::Event<DaemonSet>),
    Node(watcher::Event<Node>),
    Pod(watcher::Event<Pod>),
    Revision(watcher::Event<ControllerRevision>),
    Event(watcher::Event<Event>),
    Error(String),
}

/// The five watches merged into one stream. Each resumes by itself (default backoff).
pub fn watch_all(cluster: &Cluster, ds: &DaemonSet) -> BoxStream<'static, Update> {
    let client = cluster.client.clone();
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let selector = ds
        .spec
        .as_ref()
        .map(|s| selector_text(&s.selector))
        .unwrap_or_default();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let by_selector = watcher::Config::default().labels(&selector);
    let events =
        watcher::Config::default().fields(&super::fetch::daemon_set_events_selector(&name));
    let streams: Vec<BoxStream<'static, Update>> = vec![
        watch(
            Api::namespaced(client.clone(), &ns),
            by_name,
            Update::DaemonSet,
        ),
        watch(
            Api::all(client.clone()),
            watcher::Config::default(),
            Update::Node,
        ),
        watch(
            Api::namespaced(client.clone(), &ns),
            by_selector.clone(),
            Update::Pod,
        ),
        watch(
            Api::namespaced(client.clone(), &ns),
            by_selector,
            Update::Revision,
        ),
        watch(Api::namespaced(client, &ns), events, Update::Event),
    ];
    stream::select_all(streams).boxed()
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(watcher::Event<K>) -> Update,
) -> BoxStream<'static, Update>
where
    K: Resource + Trim + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .modify(Trim::trim)
        .map(move |r| match r {
            Ok(e) => wrap(e),
            Err(e) => Update::Error(e.to_string()),
        })
        .boxed()
}

/// Keeps what the verdicts read, in the shape `explain` and status's first screen read
/// (cluster::slim): the watches keep every node and pod for the whole run.
pub trait Trim: Resource {
    /// By default the managedFields (no verdict reads them; they are most of a written
    /// object's size).
    fn trim(&mut self) {
        self.meta_mut().managed_fields = None;
    }

    /// `new`, an update of this object (both trimmed), changes nothing a verdict reads: the
    /// update is kept but no recompute follows.
    fn same_for_verdicts(&self, _new: &Self) -> bool {
        false
    }
}

impl Trim for DaemonSet {}
impl Trim for ControllerRevision {}
impl Trim for Event {}

impl Trim for Node {
    /// The engine's node (slim::node): name, labels, taints, unschedulable, the Ready
    /// condition's type and status, allocatable. A kubelet's status write keeps none of what
    /// it changes every time (resourceVersion, heartbeat times; KWOK also rewrites the
    /// conditions' lastTransitionTime), and a node's images, addresses and the other
    /// conditions are not held for the whole run.
    fn trim(&mut self) {
        *self = super::slim::node(std::mem::take(self));
    }

    /// Equal once trimmed: a heartbeat (every node every few minutes, most of a large
    /// cluster's watch traffic while nothing happens) asks for no recompute.
    fn same_for_verdicts(&self, new: &Self) -> bool {
        self == new
    }
}

impl Trim for Pod {
    /// The engine's pod (slim::pod), as the first screen's list shapes it.
    fn trim(&mut self) {
        *self = super::slim::pod(std::mem::take(self));
    }
}

/// One kind's objects inside the snapshot: an index by UID, and the relist in progress.
struct Kept<K> {
    index: HashMap<String, usize>,
    relist: Option<Vec<K>>,
    listed: bool,
}

impl<K: Resource + Trim> Kept<K> {
    fn new() -> Self {
        Kept {
            index: HashMap::new(),
            relist: None,
            listed: false,
        }
    }

    fn key(o: &K) -> String {
        o.meta()
            .uid
            .clone()
            .unwrap_or_else(|| o.meta().name.clone().unwrap_or_default())
    }

    /// Applies one watch event to `items`; true when `items` changed.
    fn apply(&mut self, items: &mut Vec<K>, event: watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relist = Some(Vec::new());
                false
            }
            watcher::Event::InitApply(o) => {
                self.relist.get_or_insert_with(Vec::new).push(o);
                false
            }
            watcher::Event::InitDone => {
                *items = self.relist.take().unwrap_or_default();
                self.index = items
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (Self::key(o), i))
                    .collect();
                self.listed = true;
                true
            }
            watcher::Event::Apply(o) => {
                let key = Self::key(&o);
                match self.index.get(&key) {
                    Some(&i) => {
                        let same = items[i].same_for_verdicts(&o);
                        items[i] = o;
                        !same
                    }
                    None => {
                        self.index.insert(key, items.len());
                        items.push(o);
                        true
                    }
                }
            }
            watcher::Event::Delete(o) => {
                let Some(i) = self.index.remove(&Self::key(&o)) else {
                    return false;
                };
                items.swap_remove(i);
                if let Some(moved) = items.get(i) {
                    self.index.insert(Self::key(moved), i);
                }
                true
            }
        }
    }
}

/// The snapshot kept up to date by watch events.
pub struct LiveSnapshot {
    pub snap: Snapshot,
    daemon_sets: Kept<DaemonSet>,
    /// The DaemonSet as a one-item list (the watch selects it by name).
    daemon_set_items: Vec<DaemonSet>,
    nodes: Kept<Node>,
    pods: Kept<Pod>,
    revisions: Kept<ControllerRevision>,
    events: Kept<Event>,
    /// The last watch error (cleared by the next event), for a note on the screen.
    pub last_error: Option<String>,
}

impl LiveSnapshot {
    pub fn new(snap: Snapshot) -> LiveSnapshot {
        LiveSnapshot {
            daemon_set_items: vec![snap.daemon_set.clone()],
            snap,
            daemon_sets: Kept::new(),
            nodes: Kept::new(),
            pods: Kept::new(),
            revisions: Kept::new(),
            events: Kept::new(),
            last_error: None,
        }
    }

    /// Applies an update; true when the snapshot changed.
    pub fn apply(&mut self, update: Update) -> bool {
        let s = &mut self.snap;
        let changed = match update {
            Update::DaemonSet(e) => {
                let changed = self.daemon_sets.apply(&mut self.daemon_set_items, e);
                if let Some(ds) = self.daemon_set_items.first() {
                    s.daemon_set = ds.clone();
                }
                changed
            }
            Update::Node(e) => self.nodes.apply(std::sync::Arc::make_mut(&mut s.nodes), e),
            Update::Pod(e) => self.pods.apply(&mut s.pods, e),
            Update::Revision(e) => self.revisions.apply(&mut s.revisions, e),
            Update::Event(e) => self.events.apply(&mut s.events, e),
            Update::Error(msg) => {
                self.last_error = Some(msg);
                return false;
            }
        };
        if changed {
            self.last_error = None;
        }
        changed
    }

    /// Every watch has delivered its first complete list.
    pub fn is_listed(&self) -> bool {
        self.daemon_sets.listed
            && self.nodes.listed
            && self.pods.listed
            && self.revisions.listed
            && self.events.listed
    }

    /// The DaemonSet was deleted (its watch lists nothing).
    pub fn is_deleted(&self) -> bool {
        self.daemon_sets.listed && self.daemon_set_items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::node;

    fn named(name: &str) -> Node {
        node(&format!("metadata: {{name: {name}, uid: u-{name}}}"))
    }

    fn names(live: &LiveSnapshot) -> Vec<String> {
        let mut n: Vec<String> = live.snap.nodes.iter().map(|n| n.name_any()).collect();
        n.sort();
        n
    }

    #[test]
    fn applies_lists_changes_deletions_and_relists() {
        let mut live = LiveSnapshot::new(Snapshot::default());
        assert!(!live.is_listed());
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(named("a")),
            watcher::Event::InitApply(named("b")),
            watcher::Event::InitApply(named("c")),
        ] {
            assert!(
                !live.apply(Update::Node(e)),
                "nothing changes before InitDone"
            );
        }
        assert!(live.apply(Update::Node(watcher::Event::InitDone)));
        assert_eq!(names(&live), ["a", "b", "c"]);
        assert!(live.apply(Update::Node(watcher::Event::Delete(named("a")))));
        assert!(live.apply(Update::Node(watcher::Event::Apply(named("d")))));
        let mut b2 = named("b");
        b2.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        assert!(live.apply(Update::Node(watcher::Event::Apply(b2))));
        assert_eq!(names(&live), ["b", "c", "d"]);
        assert_eq!(live.snap.nodes.len(), 3, "b replaced in place, not added");
        // The index still finds the node moved by swap_remove.
        assert!(live.apply(Update::Node(watcher::Event::Delete(named("c")))));
        assert!(live.apply(Update::Node(watcher::Event::Delete(named("d")))));
        assert_eq!(names(&live), ["b"]);
        assert!(!live.apply(Update::Node(watcher::Event::Delete(named("zz")))));
        // A relist (after 410 Gone) replaces everything: "b" was deleted meanwhile.
        live.apply(Update::Node(watcher::Event::Init));
        live.apply(Update::Node(watcher::Event::InitApply(named("e"))));
        live.apply(Update::Node(watcher::Event::InitDone));
        assert_eq!(names(&live), ["e"]);
        live.apply(Update::Error("connection refused".into()));
        assert_eq!(live.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn trimming_keeps_what_fit_and_pod_state_read() {
        let mut pod = crate::engine::testutil::pod(
            r#"
metadata: {name: p}
spec:
  nodeName: n1
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: agent:1
    env: [{name: A, value: b}]
    ports: [{containerPort: 80, hostPort: 8080}]
    resources: {requests: {cpu: 100m}}
    readinessProbe: {exec: {command: [true]}}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
"#,
        );
        let before = pod.clone();
        pod.trim();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert!(c.env.is_none() && c.readiness_probe.is_none());
        assert!(pod.spec.as_ref().unwrap().volumes.is_none());
        let c0 = &before.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            (&c.ports, &c.resources, &c.image),
            (&c0.ports, &c0.resources, &c0.image)
        );
        assert_eq!(pod.status, before.status);
        let mut n =
            node("metadata: {name: n}\nstatus: {images: [{names: [a]}], allocatable: {cpu: '4'}}");
        n.trim();
        let st = n.status.unwrap();
        assert!(st.images.is_none() && st.allocatable.is_some());
    }

    #[test]
    fn a_node_heartbeat_is_kept_but_asks_for_no_recompute() {
        // As the watch delivers them: trimmed. KWOK's status write changes the
        // resourceVersion, every heartbeat and the conditions' lastTransitionTime.
        let at = |rv: &str, beat: &str, ready: &str, since: &str| {
            let mut n = node(&format!(
                "metadata: {{name: n, uid: u-n, resourceVersion: '{rv}'}}
status:
  allocatable: {{cpu: '4'}}
  conditions:
  - {{type: Ready, status: '{ready}', reason: KubeletReady, lastHeartbeatTime: '{beat}', lastTransitionTime: '{since}'}}
  - {{type: DiskPressure, status: 'False', lastHeartbeatTime: '{beat}', lastTransitionTime: '{since}'}}"
            ));
            n.trim();
            n
        };
        let mut live = LiveSnapshot::new(Snapshot::default());
        live.apply(Update::Node(watcher::Event::Init));
        live.apply(Update::Node(watcher::Event::InitApply(at(
            "1",
            "2026-12-01T01:00:00Z",
            "True",
            "2026-11-30T10:00:00Z",
        ))));
        assert!(live.apply(Update::Node(watcher::Event::InitDone)));
        let beat = at("2", "2026-12-01T01:05:00Z", "True", "2026-11-30T10:02:24Z");
        assert!(
            !live.apply(Update::Node(watcher::Event::Apply(beat.clone()))),
            "a heartbeat alone changes no verdict"
        );
        assert_eq!(live.snap.nodes[0], beat, "but the newer object is kept");
        let ready = &live.snap.nodes[0].status.as_ref().unwrap().conditions;
        assert_eq!(ready.as_ref().map(Vec::len), Some(1), "only Ready is kept");
        let not_ready = at("3", "2026-12-01T01:06:00Z", "False", "2026-12-01T01:06:00Z");
        assert!(
            live.apply(Update::Node(watcher::Event::Apply(not_ready.clone()))),
            "a Ready condition that changed is a change"
        );
        let mut labelled = not_ready.clone();
        labelled.metadata.labels = Some([("pool".to_string(), "a".to_string())].into());
        assert!(live.apply(Update::Node(watcher::Event::Apply(labelled.clone()))));
        let mut tainted = labelled.clone();
        tainted.spec.get_or_insert_with(Default::default).taints =
            Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "dedicated".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]);
        assert!(live.apply(Update::Node(watcher::Event::Apply(tainted))));
        assert!(
            live.apply(Update::Node(watcher::Event::Apply(labelled))),
            "untainted"
        );
    }

    #[test]
    fn the_daemon_set_follows_its_watch_and_its_deletion_is_seen() {
        let ds: DaemonSet =
            crate::yaml::from_str("metadata: {name: agent, uid: u1, generation: 1}").unwrap();
        let mut live = LiveSnapshot::new(Snapshot {
            daemon_set: ds.clone(),
            ..Default::default()
        });
        live.apply(Update::DaemonSet(watcher::Event::Init));
        let mut newer = ds.clone();
        newer.metadata.generation = Some(2);
        live.apply(Update::DaemonSet(watcher::Event::InitApply(newer)));
        live.apply(Update::DaemonSet(watcher::Event::InitDone));
        assert_eq!(live.snap.daemon_set.metadata.generation, Some(2));
        assert!(!live.is_deleted());
        live.apply(Update::DaemonSet(watcher::Event::Delete(ds)));
        assert!(live.is_deleted());
    }
}
