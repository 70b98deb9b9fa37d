//! Fetching what the engine needs, concurrently, and no more: the DaemonSet, every node, the
//! pods its selector matches, its revisions and events; other pods only on the nodes that need
//! a fit check (a `spec.nodeName` field selector per node).

use std::collections::BTreeMap;
use std::future::Future;

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::client::Cluster;
use super::list::ListPage;
use super::proto;
use super::slim;
use crate::engine::explain::{fit_check_node, nodes_needing_fit_check, preemption_namespaces};
use crate::engine::manifest::selector_text;
use crate::engine::snapshot::Snapshot;
use crate::error::{Error, Result};

/// Concurrent per-node pod lists for the fit check.
const FIT_CHECK_CONCURRENCY: usize = 16;
/// Page size for large lists (bounds memory per response).
const PAGE: u32 = 500;

/// One page as a list path hands it to [`paginate`]: the objects, the continue token if there
/// is more, the apiserver's count of the objects after this page (`remainingItemCount`), and
/// the list's resourceVersion.
struct PageParts<K> {
    items: Vec<K>,
    next: Option<String>,
    remaining: Option<i64>,
    resource_version: Option<String>,
}

/// A complete list and the resourceVersion it was read at: its first page's, the snapshot every
/// later page continues. A watch of the same objects started there misses no change made after
/// the list (client-go's Reflector: list, then watch from the list's resourceVersion).
pub struct Listed<K> {
    pub items: Vec<K>,
    pub resource_version: Option<String>,
}

/// The paging loop both list paths share: asks `get_page` for pages of [`PAGE`] objects,
/// following the continue token, until there is none. Each page is shaped as it arrives (its
/// bytes are gone before the next is asked for), and the result is sized once instead of
/// doubling (a `Vec<Pod>` of 5,000 holds 11 MB inline, and doubling it held 27 MB at once):
/// from the first page's `remainingItemCount`, or from `hint` (the caller's estimate of the
/// objects kept) when larger: a list with a label or field selector carries no count.
async fn paginate<K, E, F, Fut>(
    lp: ListParams,
    hint: usize,
    mut get_page: F,
) -> std::result::Result<Listed<K>, E>
where
    F: FnMut(ListParams) -> Fut,
    Fut: Future<Output = std::result::Result<PageParts<K>, E>>,
{
    let mut out = Listed {
        items: Vec::new(),
        resource_version: None,
    };
    let mut lp = lp.limit(PAGE);
    let mut first = true;
    loop {
        let page = get_page(lp.clone()).await?;
        if first {
            first = false;
            let rest = page
                .remaining
                .and_then(|r| usize::try_from(r).ok())
                .unwrap_or(0);
            reserve_once(&mut out.items, page.items.len() + rest, hint);
            out.resource_version = page.resource_version.filter(|v| !v.is_empty());
        }
        out.items.extend(page.items);
        match page.next {
            Some(c) => lp = lp.continue_token(&c),
            None => {
                give_back_slack(&mut out.items);
                return Ok(out);
            }
        }
    }
}

/// The largest size hint [`paginate`] reserves for (a hint comes from an object's status,
/// which is not to be trusted with an allocation of any size).
const MAX_HINT: usize = 1 << 20;

/// Sizes a list's result once, while it holds its first page: for `expected` objects in all,
/// or the caller's `hint` (capped at [`MAX_HINT`]) when larger.
fn reserve_once<T>(items: &mut Vec<T>, expected: usize, hint: usize) {
    let total = expected.max(hint.min(MAX_HINT));
    items.reserve_exact(total.saturating_sub(items.len()));
}

/// Once a list is read: a hint or count far above what was kept (a shape that drops objects)
/// gives the slack back.
fn give_back_slack<T>(items: &mut Vec<T>) {
    if items.capacity() > items.len() + items.len() / 4 + PAGE as usize {
        items.shrink_to_fit();
    }
}

/// What a list keeps of each object, applied as each page is read: the object as the caller
/// needs it (the engine's compact type, crate::engine::model, or the API object itself), or
/// None to drop it (see [`super::slim`]).
pub type Shape<'a, K, T = K> = &'a (dyn Fn(K) -> Option<T> + Sync);

/// [`Shape`] that keeps every object as it is.
fn keep<K>(k: K) -> Option<K> {
    Some(k)
}

/// How often a list restarts when its continue token expired (410 Gone).
const GONE_RESTARTS: usize = 3;

/// Lists every object, page by page, without their managedFields (see [`super::list`]). A
/// continue token that expired meanwhile (410 Gone: etcd compacted the revision the list
/// started at, on a busy cluster with a long list) restarts the list from the first page, as
/// client-go's pager falls back to a fresh list on ResourceExpired (tools/pager ListPages).
pub async fn list_all<K>(api: Api<K>, lp: ListParams, what: &str) -> Result<Vec<K>>
where
    K: Resource + DeserializeOwned,
{
    list_all_shaped(api, lp, what, &keep).await
}

/// [`list_all`], each object shaped by `shape` as its page is read.
pub async fn list_all_shaped<K, T>(
    api: Api<K>,
    lp: ListParams,
    what: &str,
    shape: Shape<'_, K, T>,
) -> Result<Vec<T>>
where
    K: Resource + DeserializeOwned,
{
    Ok(list_all_versioned(api, lp, what, shape, 0).await?.items)
}

/// [`list_all_shaped`], with the list's resourceVersion (a restarted list's, after 410);
/// `hint` is the caller's estimate of the objects kept, 0 for none (see [`paginate`]).
pub async fn list_all_versioned<K, T>(
    api: Api<K>,
    lp: ListParams,
    what: &str,
    shape: Shape<'_, K, T>,
    hint: usize,
) -> Result<Listed<T>>
where
    K: Resource + DeserializeOwned,
{
    let context = format!("listing {what}");
    let request = kube::core::Request::new(api.resource_url());
    let client = api.into_client();
    let mut restarts = 0;
    loop {
        let listed = paginate(lp.clone(), hint, |lp| {
            let req = request.list(&lp).map_err(kube::Error::BuildRequest);
            let client = client.clone();
            async move {
                let page: ListPage<K> = client.request(req?).await?;
                Ok(PageParts {
                    next: page.metadata.continue_.filter(|c| !c.is_empty()),
                    remaining: page.metadata.remaining_item_count,
                    resource_version: page.metadata.resource_version,
                    items: page.items.into_iter().filter_map(shape).collect(),
                })
            }
        })
        .await;
        match listed {
            Err(kube::Error::Api(s)) if s.code == 410 && restarts < GONE_RESTARTS => restarts += 1,
            other => return other.map_err(|e| Error::kube(&context, e)),
        }
    }
}

/// Lists nodes or pods in protobuf (see [`super::proto`]), page by page; if the apiserver's
/// answer cannot be read as protobuf, lists them again as JSON with [`list_all`].
/// With `cluster.protobuf` false (`KUBECTL_DS_WIRE=json`), lists them as JSON straight away.
/// Whole (one request) on a server that serves whole lists from its cache
/// ([`Cluster::lists_whole`]), else in pages; JSON always in pages (a JSON page is read whole
/// before it is decoded).
pub async fn list_fast<K, L>(
    api: Api<K>,
    lp: ListParams,
    what: &str,
    cluster: &Cluster,
) -> Result<Vec<K>>
where
    K: Resource + DeserializeOwned + Clone,
    L: proto::ProtoList<Item = K>,
{
    list_fast_shaped::<K, L, K>(api, lp, what, cluster, &keep).await
}

/// [`list_fast`], each object shaped by `shape` as its page is read, on either wire (the
/// dropped objects and fields never accumulate, and both wires give the same objects).
pub async fn list_fast_shaped<K, L, T>(
    api: Api<K>,
    lp: ListParams,
    what: &str,
    cluster: &Cluster,
    shape: Shape<'_, K, T>,
) -> Result<Vec<T>>
where
    K: Resource + DeserializeOwned + Clone,
    L: proto::ProtoList<Item = K>,
{
    Ok(
        list_fast_versioned::<K, L, T>(api, lp, what, cluster, shape, 0)
            .await?
            .items,
    )
}

/// [`list_fast_shaped`], with the list's resourceVersion (on either wire); `hint` as for
/// [`list_all_versioned`].
pub async fn list_fast_versioned<K, L, T>(
    api: Api<K>,
    lp: ListParams,
    what: &str,
    cluster: &Cluster,
    shape: Shape<'_, K, T>,
    hint: usize,
) -> Result<Listed<T>>
where
    K: Resource + DeserializeOwned + Clone,
    L: proto::ProtoList<Item = K>,
{
    if !cluster.protobuf {
        return list_all_versioned(api, lp, what, shape, hint).await;
    }
    let whole = cluster.lists_whole().await;
    let request = kube::core::Request::new(api.resource_url());
    let client = api.clone().into_client();
    match list_proto::<L, T>(&client, &request, lp.clone(), whole, hint, shape).await {
        Ok(listed) => Ok(listed),
        Err(proto::ProtoError::Transport(e)) => Err(Error::kube(&format!("listing {what}"), e)),
        Err(proto::ProtoError::Unusable) => list_all_versioned(api, lp, what, shape, hint).await,
    }
}

/// The protobuf list, page by page as [`paginate`] reads JSON, but streamed: each page's items
/// are decoded as its bytes arrive, and the next page is asked for as soon as this one's
/// continue token is read (at its start), so the apiserver prepares it while this one is still
/// arriving and being decoded (two pages in flight at most). The result is sized once, after
/// the first page, instead of doubling. With `whole`, one page: the whole list, no `limit`
/// (see [`Cluster::lists_whole`]), sized from `hint` before it is read.
async fn list_proto<L: proto::ProtoList, T>(
    client: &kube::Client,
    request: &kube::core::Request,
    lp: ListParams,
    whole: bool,
    hint: usize,
    shape: Shape<'_, L::Item, T>,
) -> std::result::Result<Listed<T>, proto::ProtoError> {
    let open = |lp: &ListParams| {
        let req = request
            .list(lp)
            .map_err(|e| proto::ProtoError::Transport(kube::Error::BuildRequest(e)));
        async move { proto::open_page::<L, T>(client, req?, shape).await }
    };
    let mut lp = if whole { lp } else { lp.limit(PAGE) };
    let mut page = open(&lp).await?;
    let head = page.head();
    let remaining = head
        .remaining
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(0);
    let mut out = Listed {
        items: Vec::new(),
        resource_version: head.resource_version,
    };
    let mut next = head.continue_;
    let mut first = true;
    if next.is_none() {
        // One page (a whole list, or a short one): no proportion to size from.
        reserve_once(&mut out.items, 0, hint);
    }
    loop {
        let Some(token) = next else {
            page.read_into(&mut out.items, shape).await?;
            break;
        };
        lp = lp.continue_token(&token);
        let (seen, following) =
            futures::try_join!(page.read_into(&mut out.items, shape), open(&lp))?;
        if std::mem::take(&mut first) {
            // Sized once, from the first page: the objects after it (remainingItemCount, which
            // a list with a selector does not give) kept in the first page's proportion, or
            // the caller's hint.
            let kept = out.items.len();
            let expected = kept + remaining.saturating_mul(kept) / seen.max(1);
            reserve_once(&mut out.items, expected, hint);
        }
        page = following;
        next = page.head().continue_;
    }
    give_back_slack(&mut out.items);
    Ok(out)
}

/// Gets the DaemonSet, or a NotFound error that suggests near names and other namespaces.
pub async fn fetch_daemon_set(cluster: &Cluster, ns: &str, name: &str) -> Result<DaemonSet> {
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(ds)) => Ok(ds),
        Ok(None) => Err(not_found(cluster, ns, name).await),
        Err(e) => Err(Error::kube(&format!("getting daemonset {ns}/{name}"), e)),
    }
}

async fn not_found(cluster: &Cluster, ns: &str, name: &str) -> Error {
    let mut hint = None;
    let all: Api<DaemonSet> = Api::all(cluster.client.clone());
    if let Ok(list) = all.list_metadata(&ListParams::default()).await {
        let elsewhere: Vec<String> = list
            .items
            .iter()
            .filter(|d| d.metadata.name.as_deref() == Some(name))
            .filter_map(|d| d.metadata.namespace.clone())
            .collect();
        let near: Vec<String> = list
            .items
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(ns))
            .filter_map(|d| d.metadata.name.clone())
            .filter(|n| is_near(n, name))
            .collect();
        if !elsewhere.is_empty() {
            hint = Some(format!(
                "it exists in namespace {}: add -n {}",
                elsewhere.join(", "),
                elsewhere[0]
            ));
        } else if !near.is_empty() {
            hint = Some(format!("did you mean {}?", near.join(", ")));
        }
    }
    Error::NotFound {
        message: format!("daemonset {name:?} not found in namespace {ns:?}"),
        hint,
    }
}

/// Near names: one contains the other, or an edit distance of at most 2.
fn is_near(a: &str, b: &str) -> bool {
    a.contains(b) || b.contains(a) || edit_distance(a, b) <= 2
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Fetches everything `explain` needs for one DaemonSet.
pub async fn fetch_snapshot(cluster: &Cluster, ns: &str, name: &str) -> Result<Snapshot> {
    let ds = fetch_daemon_set_before_lists(cluster, ns, name).await?;
    fetch_snapshot_for(cluster, ds).await
}

/// [`fetch_daemon_set`] for a command that lists the nodes and pods next: the server's version,
/// which decides how they are listed ([`Cluster::lists_whole`]), is read beside it, not after.
pub async fn fetch_daemon_set_before_lists(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<DaemonSet> {
    let (ds, _) = futures::try_join!(fetch_daemon_set(cluster, ns, name), async {
        Ok(cluster.server_version().await)
    })?;
    Ok(ds)
}

/// Fetches the rest of a snapshot for a DaemonSet already in hand.
pub async fn fetch_snapshot_for(cluster: &Cluster, ds: DaemonSet) -> Result<Snapshot> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let (mut snap, events) = futures::try_join!(
        fetch_workload_and_fit(cluster, ds),
        fetch_events(cluster, &ns, &name)
    )?;
    snap.events = events;
    // Most nodes to fit-check were seen (and their pods asked for) while the DaemonSet's pods
    // arrived; the rest now (none, unless a list restarted), and any extra dropped.
    let needed = nodes_needing_fit_check(&snap);
    let mut on_nodes = std::mem::take(&mut snap.pods_on_nodes);
    on_nodes.extend(fetch_pods_on_nodes_unread(cluster, &on_nodes, &needed).await?);
    on_nodes.retain(|n, _| needed.binary_search(n).is_ok());
    snap.pods_on_nodes = on_nodes;
    // A pending pod carries its priority (admission set it): no PriorityClasses needed here.
    snap.priorities.pdbs = fetch_pdbs(cluster, &preemption_namespaces(&snap)).await?;
    Ok(snap)
}

/// Lists a cluster-scoped or per-namespace kind; `None` when listing it is forbidden (RBAC):
/// preemption then says what it could not read instead of failing.
async fn list_unless_forbidden<K>(api: Api<K>, what: &str) -> Result<Option<Vec<K>>>
where
    K: Resource + DeserializeOwned,
{
    match list_all(api, ListParams::default(), what).await {
        Ok(items) => Ok(Some(items)),
        Err(Error::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every PriorityClass (for the priority of a pod not created yet), only when `needed`;
/// `None` when not needed or forbidden.
pub async fn fetch_priority_classes(
    cluster: &Cluster,
    needed: bool,
) -> Result<Option<Vec<PriorityClass>>> {
    if !needed {
        return Ok(None);
    }
    list_unless_forbidden(Api::all(cluster.client.clone()), "priorityclasses").await
}

/// The PodDisruptionBudgets of these namespaces (where preemption victims live); an empty list
/// when there are none to read, `None` when forbidden in any of them.
pub async fn fetch_pdbs(
    cluster: &Cluster,
    namespaces: &[String],
) -> Result<Option<Vec<PodDisruptionBudget>>> {
    let lists: Vec<Option<Vec<PodDisruptionBudget>>> = stream::iter(namespaces.iter().cloned())
        .map(|ns| {
            let api = Api::<PodDisruptionBudget>::namespaced(cluster.client.clone(), &ns);
            let client = cluster.client.clone();
            async move {
                match list_unless_forbidden(api, "poddisruptionbudgets").await {
                    // policy/v1 is served from Kubernetes 1.21; older servers have v1beta1.
                    Err(Error::NotFound { .. }) => list_pdbs_v1beta1(client, &ns).await,
                    other => other,
                }
            }
        })
        .buffer_unordered(FIT_CHECK_CONCURRENCY)
        .try_collect()
        .await?;
    // Forbidden in any namespace: the budgets are unknown.
    Ok(lists
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|lists| lists.into_iter().flatten().collect()))
}

/// The PodDisruptionBudgets of a namespace on a server without policy/v1 (before 1.21), read
/// as policy/v1beta1: the fields preemption reads (selector, status.disruptionsAllowed) have the
/// same shape. `None` when forbidden. One difference is kept as upstream has it: in v1beta1 an
/// empty selector matches no pod (v1: every pod), so such budgets are dropped.
async fn list_pdbs_v1beta1(
    client: kube::Client,
    ns: &str,
) -> Result<Option<Vec<PodDisruptionBudget>>> {
    let context = "listing poddisruptionbudgets (policy/v1beta1)";
    let url = format!("/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets");
    let req = kube::core::Request::new(url)
        .list(&ListParams::default())
        .map_err(|e| Error::kube(context, kube::Error::BuildRequest(e)))?;
    let mut list: serde_json::Value = match client.request(req).await {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
        Err(e) => return Err(Error::kube(context, e)),
    };
    let serde_json::Value::Array(items) = list["items"].take() else {
        return Ok(Some(Vec::new()));
    };
    let mut out = Vec::new();
    for mut item in items {
        item["apiVersion"] = serde_json::json!("policy/v1");
        let pdb: PodDisruptionBudget = serde_json::from_value(item)
            .map_err(|e| Error::Connection(format!("{context}: {e}")))?;
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let selects_something = selector.is_some_and(|s| {
            s.match_labels.as_ref().is_some_and(|l| !l.is_empty())
                || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
        });
        if selects_something {
            out.push(pdb);
        }
    }
    Ok(Some(out))
}

/// What placement, revisions and the fit check need, concurrently: every node, the pods and
/// ControllerRevisions the selector matches, and (its `pods_on_nodes`) the pods bound to each
/// node that one of the DaemonSet's pods makes a node to fit-check
/// ([`nodes_needing_fit_check`]), each node's asked for as soon as that pod is read from the
/// DaemonSet's pod list: the fit check's lists overlap the big lists instead of waiting a
/// round trip for them. No events. The caller checks the nodes against the finished snapshot
/// (a list restarted after 410 Gone may have shown a pod no longer there).
pub async fn fetch_workload_and_fit(cluster: &Cluster, ds: DaemonSet) -> Result<Snapshot> {
    Ok(fetch_workload_versioned(cluster, ds, FitCheck::Early)
        .await?
        .0)
}

/// When [`fetch_workload_versioned`] lists the pods on the nodes to fit-check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FitCheck {
    /// Not at all: the caller does, once the snapshot is read.
    Later,
    /// While the DaemonSet's pods are listed, each node as a pod shows it.
    Early,
}

/// Every node, and the pods and ControllerRevisions the selector matches, with the
/// resourceVersions the lists were read at (the DaemonSet's and the events' left unset); with
/// [`FitCheck::Early`], the pods on the nodes to fit-check too (see [`fetch_workload_and_fit`]).
async fn fetch_workload_versioned(
    cluster: &Cluster,
    ds: DaemonSet,
    fit: FitCheck,
) -> Result<(Snapshot, ListVersions)> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let client = cluster.client.clone();
    let selector = ds
        .spec
        .as_ref()
        .map(|s| selector_text(&s.selector))
        .unwrap_or_default();
    let by_selector = ListParams::default().labels(&selector);
    let nodes = list_fast_versioned::<_, crate::cluster::wire::NodeList, _>(
        Api::<Node>::all(client.clone()),
        ListParams::default(),
        "nodes",
        cluster,
        &slim::some_node,
        0,
    );
    // Each node to fit-check goes to `on_nodes` as the pod that makes it one is read; the
    // sender is dropped with the pods' list, which ends the node stream.
    let (to_check, checked) = futures::channel::mpsc::unbounded::<String>();
    let pods = {
        let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
        let ds = &ds;
        let by_selector = by_selector.clone();
        async move {
            let to_check = to_check;
            let shape = |p| {
                let pod = slim::pod(p);
                if fit == FitCheck::Early {
                    if let Some(node) = fit_check_node(ds, &pod) {
                        // The receiver outlives the list: sending cannot fail.
                        let _ = to_check.unbounded_send(node);
                    }
                }
                Some(pod)
            };
            list_fast_versioned::<_, crate::cluster::wire::PodList, _>(
                pods_api,
                by_selector,
                "pods",
                cluster,
                &shape,
                expected_pods(ds),
            )
            .await
        }
    };
    let on_nodes = pods_on_nodes_as_named(cluster, checked);
    let revisions = list_all_versioned(
        Api::<ControllerRevision>::namespaced(client.clone(), &ns),
        by_selector,
        "controllerrevisions",
        &keep,
        0,
    );
    let version = async { Ok::<_, Error>(cluster.server_version().await) };
    let (nodes, pods, revisions, server_version, on_nodes) =
        futures::try_join!(nodes, pods, revisions, version, on_nodes)?;
    let versions = ListVersions {
        nodes: nodes.resource_version,
        pods: pods.resource_version,
        revisions: revisions.resource_version,
        ..Default::default()
    };
    let snap = Snapshot {
        daemon_set: ds,
        nodes: nodes.items.into(),
        pods: pods.items,
        revisions: revisions.items,
        events: Vec::new(),
        pods_on_nodes: on_nodes,
        priorities: Default::default(),
        now: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        server_version,
    };
    Ok((snap, versions))
}

/// About how many pods a DaemonSet's selector list returns, from its status: one per node
/// it schedules to, plus the misscheduled ones, with a little room for pods being replaced
/// (a size hint for the pods' list, see [`paginate`]).
pub fn expected_pods(ds: &DaemonSet) -> usize {
    let Some(st) = ds.status.as_ref() else {
        return 0;
    };
    let n = [st.current_number_scheduled, st.number_misscheduled]
        .iter()
        .map(|&v| usize::try_from(v).unwrap_or(0))
        .sum::<usize>();
    n + n / 32 + 16
}

/// The resourceVersion each of `status`'s lists was read at, where its watch starts (None:
/// the watch lists first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListVersions {
    pub daemon_set: Option<String>,
    pub nodes: Option<String>,
    pub pods: Option<String>,
    pub revisions: Option<String>,
    pub events: Option<String>,
}

/// The DaemonSet as a list of one (a `metadata.name` field selector, as `status` watches it),
/// and that list's resourceVersion: a list's is recent, where a watch can start (the object's
/// own is its last write, often older than the apiserver's watch cache holds). When the list
/// finds nothing, [`fetch_daemon_set`] says why (near names, other namespaces).
pub async fn fetch_daemon_set_listed(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<(DaemonSet, Option<String>)> {
    let listed = list_all_versioned(
        Api::<DaemonSet>::namespaced(cluster.client.clone(), ns),
        ListParams::default().fields(&format!("metadata.name={name}")),
        "daemonsets",
        &keep,
        0,
    )
    .await?;
    match listed.items.into_iter().next() {
        Some(ds) => Ok((ds, listed.resource_version)),
        // Created since: its watch lists it first.
        None => Ok((fetch_daemon_set(cluster, ns, name).await?, None)),
    }
}

/// What `status` watches (every node, the DaemonSet's pods and ControllerRevisions, the events
/// about it) for a DaemonSet listed by [`fetch_daemon_set_listed`] at `ds_version`, fetched
/// once the way `explain` fetches it (protobuf lists, compact objects), with the
/// resourceVersion of each list: the watches start there, so this is their initial list
/// (nothing is listed twice) and no change made after it is missed. The same kinds and
/// selectors as the watches.
pub async fn fetch_watched(
    cluster: &Cluster,
    ds: DaemonSet,
    ds_version: Option<String>,
) -> Result<(Snapshot, ListVersions)> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let events = list_all_versioned(
        Api::<Event>::namespaced(cluster.client.clone(), &ns),
        ListParams::default().fields(&daemon_set_events_selector(&name)),
        "events",
        &keep,
        0,
    );
    let ((mut snap, mut versions), events) = futures::try_join!(
        fetch_workload_versioned(cluster, ds, FitCheck::Later),
        events
    )?;
    snap.events = events.items;
    versions.events = events.resource_version;
    versions.daemon_set = ds_version;
    Ok((snap, versions))
}

/// The field selector of the events about one DaemonSet (listed here, watched by `status`).
pub fn daemon_set_events_selector(name: &str) -> String {
    format!("involvedObject.kind=DaemonSet,involvedObject.name={name}")
}

/// The events about the DaemonSet.
async fn fetch_daemon_set_events(cluster: &Cluster, ns: &str, name: &str) -> Result<Vec<Event>> {
    list_all(
        Api::<Event>::namespaced(cluster.client.clone(), ns),
        ListParams::default().fields(&daemon_set_events_selector(name)),
        "events",
    )
    .await
}

/// Events about the DaemonSet, and the scheduler's FailedScheduling events of the namespace.
pub async fn fetch_events(cluster: &Cluster, ns: &str, name: &str) -> Result<Vec<Event>> {
    let ds_events = fetch_daemon_set_events(cluster, ns, name);
    let sched_events = list_all(
        Api::<Event>::namespaced(cluster.client.clone(), ns),
        ListParams::default().fields("involvedObject.kind=Pod,reason=FailedScheduling"),
        "events",
    );
    let (mut events, sched_events) = futures::try_join!(ds_events, sched_events)?;
    events.extend(sched_events);
    Ok(events)
}

/// The non-terminal pods bound to each node, as `kubectl describe node` lists them.
pub async fn fetch_pods_on_nodes(
    cluster: &Cluster,
    nodes: &[String],
) -> Result<BTreeMap<String, Vec<crate::engine::model::Pod>>> {
    pods_on_nodes_as_named(cluster, stream::iter(nodes.iter().cloned())).await
}

/// [`fetch_pods_on_nodes`] for those of `nodes` that `read` has no pods for yet.
pub async fn fetch_pods_on_nodes_unread(
    cluster: &Cluster,
    read: &BTreeMap<String, Vec<crate::engine::model::Pod>>,
    nodes: &[String],
) -> Result<BTreeMap<String, Vec<crate::engine::model::Pod>>> {
    let unread = nodes.iter().filter(|n| !read.contains_key(*n)).cloned();
    pods_on_nodes_as_named(cluster, stream::iter(unread)).await
}

/// [`fetch_pods_on_nodes`] for the nodes of a stream, each listed as soon as it is named
/// (once, however often it is named), [`FIT_CHECK_CONCURRENCY`] at a time.
async fn pods_on_nodes_as_named(
    cluster: &Cluster,
    nodes: impl stream::Stream<Item = String>,
) -> Result<BTreeMap<String, Vec<crate::engine::model::Pod>>> {
    let api: Api<Pod> = Api::all(cluster.client.clone());
    let mut named = std::collections::HashSet::new();
    nodes
        .filter(move |node| std::future::ready(named.insert(node.clone())))
        .map(|node| {
            let api = api.clone();
            async move {
                let fields =
                    format!("spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed");
                let pods = list_fast_shaped::<_, crate::cluster::wire::PodList, _>(
                    api,
                    ListParams::default().fields(&fields),
                    "pods on node",
                    cluster,
                    &slim::some_pod,
                )
                .await?;
                Ok::<_, Error>((node, pods))
            }
        })
        .buffer_unordered(FIT_CHECK_CONCURRENCY)
        .try_collect()
        .await
}

/// Gets a DaemonSet, or None when it does not exist.
pub async fn get_daemon_set_opt(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<DaemonSet>> {
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(|e| Error::kube(&format!("getting daemonset {ns}/{name}"), e))
}

/// Gets a DaemonSet as the apiserver sent it (raw JSON, every field kept, also those this
/// build's k8s-openapi does not model) and typed; None when it does not exist.
pub async fn get_daemon_set_raw(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<(serde_json::Value, DaemonSet)>> {
    let what = format!("getting daemonset {ns}/{name}");
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), ns);
    let req = kube::core::Request::new(api.resource_url())
        .get(name, &kube::api::GetParams::default())
        .map_err(|e| Error::kube(&what, kube::Error::BuildRequest(e)))?;
    let raw: serde_json::Value = match cluster.client.request(req).await {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(Error::kube(&what, e)),
    };
    let typed: DaemonSet = serde_json::from_value(raw.clone())
        .map_err(|e| Error::Api(format!("{what}: unreadable answer: {e}")))?;
    Ok(Some((raw, typed)))
}

/// Every pod, ControllerRevision and DaemonSet of a namespace, and every node: what the
/// orphan/adopt checks read (adoption considers every pod of the namespace, as ClaimPods does).
#[derive(Debug, Clone, Default)]
pub struct NamespaceObjects {
    /// As the engine reads them (crate::engine::model::Pod: metadata and status whole).
    pub pods: Vec<crate::engine::model::Pod>,
    pub revisions: Vec<ControllerRevision>,
    pub daemon_sets: Vec<DaemonSet>,
    /// As the engine reads them (the workflows pass them to the engine only).
    pub nodes: Vec<crate::engine::model::Node>,
}

/// A listed pod as the engine reads it, its metadata and status whole (the workflows' lists: a
/// namespace's pods, read once or a few times per workflow).
fn engine_pod(p: Pod) -> Option<crate::engine::model::Pod> {
    Some(p.into())
}

/// Lists a namespace's pods, ControllerRevisions and DaemonSets, and the nodes, concurrently.
pub async fn fetch_namespace_objects(cluster: &Cluster, ns: &str) -> Result<NamespaceObjects> {
    let c = cluster.client.clone();
    let lp = ListParams::default();
    let (pods, revisions, daemon_sets, nodes) = futures::try_join!(
        list_all_shaped(
            Api::<Pod>::namespaced(c.clone(), ns),
            lp.clone(),
            "pods",
            &engine_pod
        ),
        list_all(
            Api::<ControllerRevision>::namespaced(c.clone(), ns),
            lp.clone(),
            "controllerrevisions"
        ),
        list_all(
            Api::<DaemonSet>::namespaced(c.clone(), ns),
            lp.clone(),
            "daemonsets"
        ),
        list_all_shaped(
            Api::<Node>::all(c.clone()),
            lp.clone(),
            "nodes",
            &slim::some_node
        ),
    )?;
    Ok(NamespaceObjects {
        pods,
        revisions,
        daemon_sets,
        nodes,
    })
}

/// Lists a namespace's pods and ControllerRevisions (what the wait loops poll).
pub async fn fetch_pods_and_revisions(
    cluster: &Cluster,
    ns: &str,
) -> Result<(Vec<crate::engine::model::Pod>, Vec<ControllerRevision>)> {
    let c = cluster.client.clone();
    let lp = ListParams::default();
    futures::try_join!(
        list_all_shaped(
            Api::<Pod>::namespaced(c.clone(), ns),
            lp.clone(),
            "pods",
            &engine_pod
        ),
        list_all(
            Api::<ControllerRevision>::namespaced(c.clone(), ns),
            lp.clone(),
            "controllerrevisions"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn selector_rendering() {
        let sel: LabelSelector = crate::yaml::from_str(
            "matchLabels: {app: a}\nmatchExpressions: [{key: tier, operator: In, values: [x, y]}, {key: z, operator: DoesNotExist}]",
        )
        .unwrap();
        assert_eq!(selector_text(&sel), "app=a,tier in (x,y),!z");
    }

    /// A continue token that expired (410 Gone) restarts the list from its first page.
    #[tokio::test]
    async fn a_list_restarts_when_its_continue_token_expired() {
        use crate::cluster::mock::{self, Reply};
        use serde_json::json;
        let page = |names: &[&str], next: &str| {
            let items: Vec<_> = names
                .iter()
                .map(|n| json!({"metadata": {"name": n, "namespace": "ns"}}))
                .collect();
            Reply::json(
                200,
                json!({"kind": "PodList", "apiVersion": "v1",
                    "metadata": {"continue": next}, "items": items}),
            )
        };
        let (url, seen) = mock::serve(vec![
            page(&["a"], "c1"),
            Reply::status(410, "Expired"),
            page(&["a"], "c2"),
            page(&["b"], ""),
        ])
        .await;
        let api: Api<Pod> = Api::namespaced(mock::client(&url), "ns");
        let pods = list_all(api, ListParams::default(), "pods").await.unwrap();
        let names: Vec<_> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let lines = mock::request_lines(&seen);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[1].contains("continue=c1"), "{lines:?}");
        assert!(!lines[2].contains("continue="), "restarted: {lines:?}");
        assert!(lines[3].contains("continue=c2"), "{lines:?}");
    }

    /// Node and pod lists go whole (no `limit`) to a 1.34 server, in pages of 500 to a 1.33
    /// one, and the version is asked for once however many lists ask. (The scripted JSON
    /// answer is not protobuf: the list is then read again as JSON, in pages, both times.)
    #[tokio::test]
    async fn lists_are_whole_from_1_34_and_paged_before() {
        use crate::cluster::mock::{self, Reply};
        use serde_json::json;
        for (minor, whole) in [("33", false), ("34", true)] {
            let list = || {
                Reply::json(
                    200,
                    json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                        "items": [{"metadata": {"name": "n1"}}]}),
                )
            };
            let (url, seen) = mock::serve(vec![
                Reply::json(200, json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"),
                    "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""})),
                list(),
                list(),
                list(),
                list(),
            ])
            .await;
            let cluster = Cluster::new(mock::client(&url), "ns".into(), true);
            for _ in 0..2 {
                let nodes = list_fast::<_, crate::cluster::wire::NodeList>(
                    Api::<Node>::all(cluster.client.clone()),
                    ListParams::default(),
                    "nodes",
                    &cluster,
                )
                .await
                .unwrap();
                assert_eq!(nodes.len(), 1);
            }
            let lines = mock::request_lines(&seen);
            assert_eq!(lines.len(), 5, "{lines:?}");
            assert!(lines[0].contains("/version"), "{lines:?}");
            for (i, line) in lines.iter().enumerate().skip(1) {
                let proto = i % 2 == 1;
                let paged = line.contains("limit=500");
                assert_eq!(
                    paged,
                    !(whole && proto),
                    "1.{minor}, request {i}: {lines:?}"
                );
            }
        }
    }

    #[test]
    fn near_names() {
        assert!(is_near("node-exporter", "node-exportr"));
        assert!(is_near("fluent-bit", "fluent"));
        assert!(!is_near("kube-proxy", "calico-node"));
    }
}
