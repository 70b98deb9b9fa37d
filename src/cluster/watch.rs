//! Watching one DaemonSet and everything its explanation reads (its pods, its
//! ControllerRevisions, its events, every node) as client-go's Reflector does: the first
//! fetch (cluster::fetch::fetch_watched) is the initial list, and each kind's watch starts from
//! the resourceVersion of its list, so nothing is listed twice and nothing changed after the
//! list is missed. A watch that ends (the apiserver's timeout) or fails (a dropped connection,
//! an apiserver restart) resumes from the last resourceVersion it saw (an object's or a
//! bookmark's), after a backoff when it failed. When that version is too old for the
//! apiserver (410 Gone) the kind is listed again and the list replaces what was held (so a
//! missed deletion cannot linger), then watched from the new list's version. The objects are
//! kept in one [`Snapshot`], in place: no second copy, each in the shape the verdicts read
//! ([`Trim`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::client::Cluster;
use super::fetch::{self, ListVersions};
use crate::engine::manifest::selector_text;
use crate::engine::model;
use crate::engine::snapshot::Snapshot;

/// One watch event of one of the five kinds (a relist as Init, InitApply..., InitDone), or a
/// watch error (the watch is resumed).
// One update at a time flows through the merged stream and is applied at once: the variants'
// sizes (a DaemonSet's event is the largest) cost nothing worth a box per event.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    DaemonSet(watcher::Event<DaemonSet>),
    Node(watcher::Event<model::Node>),
    Pod(watcher::Event<model::Pod>),
    Revision(watcher::Event<ControllerRevision>),
    Event(watcher::Event<Event>),
    Error(String),
}

/// The five watches merged into one stream, each started from the resourceVersion its seed list
/// was read at (`versions`); each resumes by itself.
pub fn watch_all(
    cluster: &Cluster,
    ds: &DaemonSet,
    versions: ListVersions,
) -> BoxStream<'static, Update> {
    let client = cluster.client.clone();
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let selector = ds
        .spec
        .as_ref()
        .map(|s| selector_text(&s.selector))
        .unwrap_or_default();
    let by_name = Selectors::fields(&format!("metadata.name={name}"));
    let by_selector = Selectors::labels(&selector);
    let events = Selectors::fields(&fetch::daemon_set_events_selector(&name));
    let streams: Vec<BoxStream<'static, Update>> = vec![
        watch(
            Api::<DaemonSet>::namespaced(client.clone(), &ns),
            by_name,
            versions.daemon_set,
            Update::DaemonSet,
        ),
        watch(
            Api::<Node>::all(client.clone()),
            Selectors::default(),
            versions.nodes,
            Update::Node,
        ),
        watch(
            Api::<Pod>::namespaced(client.clone(), &ns),
            by_selector.clone(),
            versions.pods,
            Update::Pod,
        ),
        watch(
            Api::<ControllerRevision>::namespaced(client.clone(), &ns),
            by_selector,
            versions.revisions,
            Update::Revision,
        ),
        watch(
            Api::<Event>::namespaced(client, &ns),
            events,
            versions.events,
            Update::Event,
        ),
    ];
    stream::select_all(streams).boxed()
}

/// The same label and field selectors for a kind's watch and its relist.
#[derive(Clone, Default)]
struct Selectors {
    watch: WatchParams,
    list: ListParams,
}

impl Selectors {
    fn labels(s: &str) -> Selectors {
        Selectors {
            watch: WatchParams::default().labels(s),
            list: ListParams::default().labels(s),
        }
    }

    fn fields(s: &str) -> Selectors {
        Selectors {
            watch: WatchParams::default().fields(s),
            list: ListParams::default().fields(s),
        }
    }
}

/// A kind one watch follows: typed (its API path known statically), trimmed as it arrives,
/// read from JSON (what `Api::watch` and `Api::list` need), moved into the merged stream.
trait Watched:
    Resource<DynamicType = ()> + Trim + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Trim
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + 'static
{
}

/// One kind watched from `version` (None: listed first), as a stream of updates.
fn watch<K>(
    api: Api<K>,
    selectors: Selectors,
    version: Option<String>,
    wrap: fn(watcher::Event<K::Kept>) -> Update,
) -> BoxStream<'static, Update>
where
    K: Watched,
{
    // Bookmarks (WatchParams' default) keep the version recent on a quiet watch, so a resumed
    // watch is less often too old; servers that send none are fine too.
    let follow = Follow {
        api,
        selectors,
        version,
        events: None,
        failures: 0,
        wrap,
    };
    stream::unfold(follow, |mut f| async move {
        let updates = f.step().await;
        Some((stream::iter(updates), f))
    })
    .flatten()
    .boxed()
}

/// What a watch event means for the loop.
#[derive(Debug)]
enum Seen<K> {
    /// An object changed (trimmed); the version moved to its resourceVersion.
    Change(watcher::Event<K>),
    /// A bookmark: only the version moved.
    Bookmark,
    /// 410 Gone: the version is too old, list again.
    Gone,
    /// Another error from the apiserver: watch again from the same version.
    Failed(String),
}

/// Maps one watch event, moving `version` to the event's resourceVersion (read before the
/// object is trimmed: a trimmed node keeps none). Mirrors client-go reflector.go
/// watchHandler (Added/Modified/Deleted/Bookmark, each setting the last sync resourceVersion;
/// an Error event ends the watch, a 410 one makes the next list start afresh).
fn on_event<K: Trim>(version: &mut Option<String>, event: WatchEvent<K>) -> Seen<K::Kept> {
    let mut changed = |o: K, wrap: fn(K::Kept) -> watcher::Event<K::Kept>| {
        if let Some(v) = o.meta().resource_version.clone() {
            *version = Some(v);
        }
        Seen::Change(wrap(o.trim()))
    };
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => changed(o, watcher::Event::Apply),
        WatchEvent::Deleted(o) => changed(o, watcher::Event::Delete),
        WatchEvent::Bookmark(b) => {
            if !b.metadata.resource_version.is_empty() {
                *version = Some(b.metadata.resource_version);
            }
            Seen::Bookmark
        }
        WatchEvent::Error(s) if s.code == 410 => Seen::Gone,
        WatchEvent::Error(s) => Seen::Failed(format!("{} ({})", s.message, s.code)),
    }
}

/// An error that says the version asked for is too old (410 Gone, on the watch request or in
/// its stream).
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

/// The wait before trying again after `failures` failures in a row: 0.5 s, doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let ms = 500u64.saturating_mul(1 << (failures - 1).min(6));
    Duration::from_millis(ms).min(Duration::from_secs(30))
}

/// A watch that ended this soon after it opened without an event counts as a failure (no tight
/// loop against a server that closes every watch at once).
const SHORTEST_WATCH: Duration = Duration::from_secs(1);

/// A watch request's answer being read.
struct OpenWatch<K> {
    events: BoxStream<'static, kube::Result<WatchEvent<K>>>,
    opened: Instant,
    /// An event came through it.
    got_one: bool,
}

/// One kind's watch loop.
struct Follow<K: Trim> {
    api: Api<K>,
    selectors: Selectors,
    /// Where the next watch starts; None: list first.
    version: Option<String>,
    events: Option<OpenWatch<K>>,
    failures: u32,
    wrap: fn(watcher::Event<K::Kept>) -> Update,
}

impl<K> Follow<K>
where
    K: Watched,
{
    /// The next step: list, open the watch, or read its next event; what it gives.
    async fn step(&mut self) -> Vec<Update> {
        // The backoff delays the next request (a list or a watch), never the reading of a
        // watch that is open: its events are read as they come.
        if self.events.is_none() && self.failures > 0 {
            tokio::time::sleep(backoff(self.failures)).await;
        }
        let Some(version) = self.version.clone() else {
            return self.relist().await;
        };
        let Some(open) = self.events.as_mut() else {
            return match self.api.watch(&self.selectors.watch, &version).await {
                Ok(events) => {
                    self.events = Some(OpenWatch {
                        events: events.boxed(),
                        opened: Instant::now(),
                        got_one: false,
                    });
                    Vec::new()
                }
                Err(e) => self.failed(&e),
            };
        };
        match open.events.next().await {
            // The apiserver's timeout: watch again from the version reached.
            None => {
                if !open.got_one && open.opened.elapsed() < SHORTEST_WATCH {
                    self.failures += 1;
                }
                self.events = None;
                Vec::new()
            }
            Some(Err(e)) => {
                self.events = None;
                self.failed(&e)
            }
            Some(Ok(event)) => {
                open.got_one = true;
                match on_event(&mut self.version, event) {
                    Seen::Change(e) => {
                        self.failures = 0;
                        vec![(self.wrap)(e)]
                    }
                    Seen::Bookmark => {
                        self.failures = 0;
                        Vec::new()
                    }
                    Seen::Gone => {
                        self.gone();
                        Vec::new()
                    }
                    Seen::Failed(msg) => {
                        self.events = None;
                        self.failures += 1;
                        vec![Update::Error(msg)]
                    }
                }
            }
        }
    }

    /// A failed request or stream: 410 lists again, anything else is retried after a backoff.
    fn failed(&mut self, e: &kube::Error) -> Vec<Update> {
        if is_gone(e) {
            self.gone();
            return Vec::new();
        }
        self.failures += 1;
        vec![Update::Error(e.to_string())]
    }

    fn gone(&mut self) {
        self.events = None;
        self.version = None;
    }

    /// Lists the kind again (JSON, paginated, trimmed), as Init, InitApply..., InitDone (the
    /// list replaces what was held); the watch goes on from its resourceVersion.
    async fn relist(&mut self) -> Vec<Update> {
        let api = self.api.clone();
        let what = K::plural(&()).into_owned();
        let lp = self.selectors.list.clone();
        let listed = fetch::list_all_versioned(api, lp, &what, &trimmed::<K>, 0);
        match listed.await {
            Ok(listed) => {
                self.failures = 0;
                self.version = listed.resource_version;
                if self.version.is_none() {
                    // Nothing to watch from: list again, after a backoff.
                    self.failures = 1;
                }
                let wrap = self.wrap;
                let mut out = Vec::with_capacity(listed.items.len() + 2);
                out.push(wrap(watcher::Event::Init));
                out.extend(
                    listed
                        .items
                        .into_iter()
                        .map(|o| wrap(watcher::Event::InitApply(o))),
                );
                out.push(wrap(watcher::Event::InitDone));
                out
            }
            Err(e) => {
                self.failures += 1;
                vec![Update::Error(e.to_string())]
            }
        }
    }
}

/// [`Trim::trim`] as a list's shape.
fn trimmed<K: Trim>(o: K) -> Option<K::Kept> {
    Some(o.trim())
}

/// Keeps what the verdicts read, in the shape `explain` and status's first screen read
/// (cluster::slim): the watches keep every node and pod for the whole run.
pub trait Trim: Resource + Sized {
    /// The object as the snapshot holds it.
    type Kept: Keyed + Clone + std::fmt::Debug + Send + 'static;

    /// The object as the snapshot holds it.
    fn trim(self) -> Self::Kept;
}

/// An object as the snapshot holds it: found again by its key when a watch event comes.
pub trait Keyed {
    /// Its UID, or its name when it has none (the engine's node keeps no UID).
    fn key(&self) -> String;

    /// `new`, an update of this object (both trimmed), changes nothing a verdict reads: the
    /// update is kept but no recompute follows.
    fn same_for_verdicts(&self, _new: &Self) -> bool {
        false
    }
}

/// `impl Keyed` by the object's metadata: its UID, or its name.
macro_rules! keyed_by_meta {
    ($($kind:ty),*) => {$(
        impl Keyed for $kind {
            fn key(&self) -> String {
                let m = self.meta();
                m.uid.clone().unwrap_or_else(|| m.name.clone().unwrap_or_default())
            }
        }
    )*};
}

keyed_by_meta!(DaemonSet, ControllerRevision, Event);

impl Keyed for model::Pod {
    fn key(&self) -> String {
        let m = &self.metadata;
        m.uid
            .clone()
            .unwrap_or_else(|| m.name.clone().unwrap_or_default())
    }
}

/// `impl Trim` for a kind kept whole but for its managedFields (no verdict reads them; they
/// are most of a written object's size).
macro_rules! kept_whole {
    ($($kind:ty),*) => {$(
        impl Trim for $kind {
            type Kept = $kind;
            fn trim(mut self) -> $kind {
                self.meta_mut().managed_fields = None;
                self
            }
        }
    )*};
}

kept_whole!(DaemonSet, ControllerRevision, Event);

impl Trim for Node {
    type Kept = model::Node;

    /// The engine's node (engine::model::Node): name, labels, taints, unschedulable, the Ready
    /// condition's type and status, allocatable. A kubelet's status write keeps none of what
    /// it changes every time (resourceVersion, heartbeat times; KWOK also rewrites the
    /// conditions' lastTransitionTime), and a node's images, addresses and the other
    /// conditions are not held for the whole run.
    fn trim(self) -> model::Node {
        self.into()
    }
}

impl Keyed for model::Node {
    fn key(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    /// Equal once trimmed: a heartbeat (every node every few minutes, most of a large
    /// cluster's watch traffic while nothing happens) asks for no recompute.
    fn same_for_verdicts(&self, new: &Self) -> bool {
        self == new
    }
}

impl Trim for Pod {
    type Kept = model::Pod;
    /// The engine's pod (slim::pod), as the first screen's list shapes it.
    fn trim(self) -> model::Pod {
        super::slim::pod(self)
    }
}

/// One kind's objects inside the snapshot: an index by UID, and the relist in progress.
struct Kept<K> {
    index: HashMap<String, usize>,
    relist: Option<Vec<K>>,
}

impl<K: Keyed> Kept<K> {
    /// The seed's `items` are the kind's list (its watch starts at the list's version).
    fn listed(items: &[K]) -> Self {
        Kept {
            index: Self::index(items),
            relist: None,
        }
    }

    fn index(items: &[K]) -> HashMap<String, usize> {
        items
            .iter()
            .enumerate()
            .map(|(i, o)| (Self::key(o), i))
            .collect()
    }

    fn key(o: &K) -> String {
        o.key()
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
                self.index = Self::index(items);
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

/// The snapshot kept up to date by watch events, from a seed that is every kind's list.
pub struct LiveSnapshot {
    pub snap: Snapshot,
    daemon_sets: Kept<DaemonSet>,
    /// The DaemonSet as a one-item list (the watch selects it by name).
    daemon_set_items: Vec<DaemonSet>,
    nodes: Kept<model::Node>,
    pods: Kept<model::Pod>,
    revisions: Kept<ControllerRevision>,
    events: Kept<Event>,
    /// The last watch error (cleared by the next event), for a note on the screen.
    pub last_error: Option<String>,
}

impl LiveSnapshot {
    /// `seed` holds each kind's list, read at the versions its watch starts from
    /// (cluster::fetch::fetch_watched): it is complete from the start.
    pub fn new(seed: Snapshot) -> LiveSnapshot {
        let daemon_set_items = vec![seed.daemon_set.clone()];
        LiveSnapshot {
            daemon_sets: Kept::listed(&daemon_set_items),
            nodes: Kept::listed(&seed.nodes),
            pods: Kept::listed(&seed.pods),
            revisions: Kept::listed(&seed.revisions),
            events: Kept::listed(&seed.events),
            daemon_set_items,
            snap: seed,
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

    /// The DaemonSet was deleted (a Deleted event, or a relist that finds nothing).
    pub fn is_deleted(&self) -> bool {
        self.daemon_set_items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::node;

    fn named(name: &str) -> model::Node {
        node(&format!("metadata: {{name: {name}, uid: u-{name}}}"))
    }

    /// A node as the watch decodes it, before trimming.
    fn api_node(yaml: &str) -> Node {
        crate::yaml::from_str(yaml).unwrap()
    }

    fn name_of(n: &model::Node) -> String {
        n.metadata.name.clone().unwrap_or_default()
    }

    fn names(live: &LiveSnapshot) -> Vec<String> {
        let mut n: Vec<String> = live.snap.nodes.iter().map(name_of).collect();
        n.sort();
        n
    }

    #[test]
    fn applies_changes_to_the_seed_deletions_and_relists() {
        // The seed is the list the watches start from: its objects are found by UID at once.
        let mut live = LiveSnapshot::new(Snapshot {
            nodes: vec![named("a"), named("b"), named("c")].into(),
            ..Default::default()
        });
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
        for e in [watcher::Event::Init, watcher::Event::InitApply(named("e"))] {
            assert!(
                !live.apply(Update::Node(e)),
                "nothing changes before InitDone"
            );
        }
        assert_eq!(names(&live), ["b"], "kept until the relist is complete");
        assert!(live.apply(Update::Node(watcher::Event::InitDone)));
        assert_eq!(names(&live), ["e"]);
        assert!(live.apply(Update::Node(watcher::Event::Delete(named("e")))));
        assert!(names(&live).is_empty());
        live.apply(Update::Error("connection refused".into()));
        assert_eq!(live.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn trimming_keeps_what_fit_and_pod_state_read() {
        let pod: Pod = crate::yaml::from_str(
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
        )
        .unwrap();
        let before = pod.clone();
        // The engine's pod (model::Pod) has no env, probes or volumes to keep.
        let pod: model::Pod = pod.trim();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let c0 = &before.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            (&c.ports, c.resources.as_deref(), &c.image),
            (&c0.ports, c0.resources.as_ref(), &c0.image)
        );
        assert_eq!(pod.status, before.status);
        let n = api_node(
            "metadata: {name: n}\nstatus: {images: [{names: [a]}], allocatable: {cpu: '4'}}",
        );
        let st = n.trim().status.unwrap();
        assert!(st.allocatable.is_some());
    }

    #[test]
    fn a_node_heartbeat_is_kept_but_asks_for_no_recompute() {
        // As the watch delivers them: trimmed. KWOK's status write changes the
        // resourceVersion, every heartbeat and the conditions' lastTransitionTime.
        let at = |rv: &str, beat: &str, ready: &str, since: &str| {
            let n = api_node(&format!(
                "metadata: {{name: n, uid: u-n, resourceVersion: '{rv}'}}
status:
  allocatable: {{cpu: '4'}}
  conditions:
  - {{type: Ready, status: '{ready}', reason: KubeletReady, lastHeartbeatTime: '{beat}', lastTransitionTime: '{since}'}}
  - {{type: DiskPressure, status: 'False', lastHeartbeatTime: '{beat}', lastTransitionTime: '{since}'}}"
            ));
            n.trim()
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
        let seed = Snapshot {
            daemon_set: ds.clone(),
            ..Default::default()
        };
        let mut live = LiveSnapshot::new(seed.clone());
        let mut newer = ds.clone();
        newer.metadata.generation = Some(2);
        assert!(live.apply(Update::DaemonSet(watcher::Event::Apply(newer.clone()))));
        assert_eq!(live.snap.daemon_set.metadata.generation, Some(2));
        assert_eq!(live.daemon_set_items.len(), 1, "the seed's, replaced");
        assert!(!live.is_deleted());
        live.apply(Update::DaemonSet(watcher::Event::Delete(ds)));
        assert!(live.is_deleted());
        // A relist finding nothing (the deletion missed while the watch was down).
        let mut live = LiveSnapshot::new(seed);
        live.apply(Update::DaemonSet(watcher::Event::Init));
        assert!(!live.is_deleted());
        live.apply(Update::DaemonSet(watcher::Event::InitDone));
        assert!(live.is_deleted());
    }

    #[test]
    fn watch_events_move_the_version_and_map_to_changes() {
        let mut n = api_node("metadata: {name: a, uid: u-a}");
        n.metadata.resource_version = Some("6".into());
        n.metadata.managed_fields = Some(vec![Default::default()]);
        let mut version = Some("5".to_string());
        let Seen::Change(watcher::Event::Apply(got)) =
            on_event(&mut version, WatchEvent::Modified(n.clone()))
        else {
            panic!("Modified is an Apply")
        };
        assert_eq!(version.as_deref(), Some("6"), "read before trimming");
        assert_eq!(got, named("a"), "trimmed (the engine's node)");
        n.metadata.resource_version = Some("8".into());
        assert!(matches!(
            on_event(&mut version, WatchEvent::Deleted(n)),
            Seen::Change(watcher::Event::Delete(_))
        ));
        assert_eq!(version.as_deref(), Some("8"));
        let bookmark: WatchEvent<Node> = serde_json::from_value(serde_json::json!({
            "type": "BOOKMARK",
            "object": {"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}
        }))
        .unwrap();
        assert!(matches!(on_event(&mut version, bookmark), Seen::Bookmark));
        assert_eq!(version.as_deref(), Some("12"));
        let error = |code: u16| -> WatchEvent<Node> {
            serde_json::from_value(serde_json::json!({
                "type": "ERROR",
                "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "too old resource version: 12 (40)", "reason": "Expired",
                    "code": code}
            }))
            .unwrap()
        };
        assert!(matches!(on_event(&mut version, error(410)), Seen::Gone));
        assert!(matches!(
            on_event(&mut version, error(500)),
            Seen::Failed(_)
        ));
        assert_eq!(version.as_deref(), Some("12"), "errors leave the version");
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (0..10).map(|f| backoff(f).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    fn kinds(updates: &[Update]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u {
                Update::Node(watcher::Event::Apply(n)) => format!("apply {}", name_of(n)),
                Update::Node(watcher::Event::Delete(n)) => format!("delete {}", name_of(n)),
                Update::Node(watcher::Event::Init) => "init".into(),
                Update::Node(watcher::Event::InitApply(n)) => format!("list {}", name_of(n)),
                Update::Node(watcher::Event::InitDone) => "done".into(),
                Update::Error(_) => "error".into(),
                _ => "other".into(),
            })
            .collect()
    }

    /// After failures, the backoff comes before the next request, not before each event of
    /// the watch that request opened (else a watch reopened after an outage would wait up to
    /// 30 s before its first event was read).
    #[tokio::test]
    async fn an_open_watch_is_read_without_waiting_out_the_backoff() {
        use serde_json::json;
        let added: WatchEvent<Node> = serde_json::from_value(json!({"type": "ADDED",
            "object": {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": "a", "uid": "u-a", "resourceVersion": "9"}}}))
        .unwrap();
        let mut follow = Follow {
            // Never contacted: the watch is already open.
            api: Api::all(crate::cluster::mock::client("http://127.0.0.1:9")),
            selectors: Selectors::default(),
            version: Some("5".into()),
            events: Some(OpenWatch {
                events: stream::iter(vec![Ok(added)]).boxed(),
                opened: Instant::now(),
                got_one: false,
            }),
            failures: 4,
            wrap: Update::Node,
        };
        let started = Instant::now();
        let updates = follow.step().await;
        assert!(
            started.elapsed() < backoff(4) / 2,
            "waited {:?} before reading an open watch",
            started.elapsed()
        );
        assert_eq!(kinds(&updates), ["apply a"]);
        assert_eq!((follow.failures, follow.version.as_deref()), (0, Some("9")));
    }

    /// The loop against scripted answers: it watches from the seed's version (no list), resumes
    /// from a bookmark's version when the watch ends, and lists again (as Init..InitDone) on a
    /// 410 Gone, either the watch request's status or an ERROR event, then watches from the
    /// new list's version.
    #[tokio::test]
    async fn watches_from_the_seed_version_and_relists_on_410() {
        use crate::cluster::mock::{self, Reply};
        use serde_json::json;
        let lines = |events: Vec<serde_json::Value>| Reply {
            status: 200,
            headers: Vec::new(),
            body: events.iter().map(|e| format!("{e}\n")).collect(),
        };
        let node = |name: &str, rv: &str| {
            json!({"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "uid": format!("u-{name}"), "resourceVersion": rv}})
        };
        let list = |rv: &str, items: Vec<serde_json::Value>| {
            Reply::json(
                200,
                json!({"kind": "NodeList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": rv}, "items": items}),
            )
        };
        let (url, seen) = mock::serve(vec![
            lines(vec![
                json!({"type": "ADDED", "object": node("a", "6")}),
                json!({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "7"}}}),
            ]),
            Reply::status(410, "Expired"),
            list("20", vec![node("b", "15")]),
            lines(vec![
                json!({"type": "DELETED", "object": node("b", "21")}),
                json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "message": "too old resource version: 21 (30)",
                    "reason": "Expired", "code": 410}}),
            ]),
            list("30", vec![]),
        ])
        .await;
        let api: Api<Node> = Api::all(mock::client(&url));
        let updates: Vec<Update> = watch(
            api,
            Selectors::labels("pool=a"),
            Some("5".into()),
            Update::Node,
        )
        .take(9)
        .collect()
        .await;
        assert_eq!(
            kinds(&updates),
            [
                "apply a", "init", "list b", "done", "delete b", "init", "done",
                // The script is out: the next watch fails (500), reported.
                "error", "error"
            ]
        );
        let requests = mock::request_lines(&seen);
        let watch_at = |r: &str, rv: &str| {
            r.contains("watch=true")
                && r.split(['?', '&'])
                    .any(|p| p == format!("resourceVersion={rv}"))
                && r.contains("labelSelector=pool%3Da")
                && r.contains("allowWatchBookmarks=true")
        };
        let list_at = |r: &str| {
            !r.contains("watch=") && !r.contains("resourceVersion=") && r.contains("pool%3Da")
        };
        assert!(watch_at(&requests[0], "5"), "{requests:?}");
        assert!(
            watch_at(&requests[1], "7"),
            "from the bookmark: {requests:?}"
        );
        assert!(list_at(&requests[2]), "{requests:?}");
        assert!(watch_at(&requests[3], "20"), "{requests:?}");
        assert!(list_at(&requests[4]), "{requests:?}");
        assert!(watch_at(&requests[5], "30"), "{requests:?}");
    }
}
