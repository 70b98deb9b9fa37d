//! `kubectl ds explain`: fetch, explain (pure), render.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::cli::{ExplainArgs, Output};
use crate::cluster::client::{self, Cluster};
use crate::cluster::fetch::{self, list_all, list_fast, list_fast_filtered};
use crate::engine::explain::{self, nodes_needing_fit_check, Explanation, NodeFilter};
use crate::engine::preemption::ClusterPriorities;
use crate::engine::snapshot::{controller_of, is_claimed_by, Snapshot};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::{self, palette::Palette};
use crate::settings::Settings;

pub async fn run(args: ExplainArgs, settings: &Settings) -> Result<Exit> {
    // Buffered: stdout is line-buffered, and a JSON explanation of 5,000 nodes has ~100,000 lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let exit = explain_to(&mut out, args, settings).await?;
    out.flush().map_err(render::io_err)?;
    Ok(exit)
}

async fn explain_to<W: Write>(out: &mut W, args: ExplainArgs, settings: &Settings) -> Result<Exit> {
    let filter = NodeFilter::parse(&args.nodes, args.node_selector.as_deref())
        .map_err(|e| Error::Usage(format!("invalid --node-selector: {e}")))?;
    let palette = Palette::new(settings.color);
    if let Some(file) = &args.file {
        let name = args
            .name
            .as_deref()
            .ok_or_else(|| Error::Usage("explain -f needs the DaemonSet NAME".into()))?;
        let snap = snapshot_from_file(file, name, settings.global.namespace.as_deref())?;
        let e = explain::explain(&snap, &filter);
        return emit(out, &e, args.output, &palette);
    }
    let cluster = client::connect(settings).await?;
    match &args.name {
        Some(name) => {
            let snap = fetch::fetch_snapshot(&cluster, &cluster.namespace, name).await?;
            let e = explain::explain(&snap, &filter);
            emit(out, &e, args.output, &palette)
        }
        None => {
            let all = settings.global.all_namespaces;
            let items = overview(&cluster, all).await?;
            match args.output {
                Output::Json => render::json(out, &list_value(&items))?,
                Output::Yaml => render::yaml(out, &list_value(&items))?,
                Output::Table | Output::Wide => {
                    render::explain::overview_table(out, &items, all, &palette)?
                }
            }
            Ok(Exit::Ok)
        }
    }
}

fn emit<W: Write>(out: &mut W, e: &Explanation, output: Output, palette: &Palette) -> Result<Exit> {
    match output {
        Output::Json => render::json(out, e)?,
        Output::Yaml => render::yaml(out, e)?,
        Output::Table => render::explain::explanation_table(out, e, false, palette)?,
        Output::Wide => render::explain::explanation_table(out, e, true, palette)?,
    }
    Ok(Exit::Ok)
}

fn list_value(items: &[Explanation]) -> Value {
    serde_json::json!({
        "apiVersion": explain::API_VERSION,
        "kind": "ExplanationList",
        "items": items,
    })
}

/// Every DaemonSet of the namespace (or all), explained from one list of each kind: one node
/// table shared by every DaemonSet's snapshot, and only the pods a DaemonSet could own
/// (controlled by a DaemonSet, or by nobody: an orphan it could adopt), listed in protobuf.
/// The other pods matter only on the nodes that need a fit check; those are listed per node
/// afterwards, for all DaemonSets at once, as single `explain` does.
async fn overview(cluster: &Cluster, all_namespaces: bool) -> Result<Vec<Explanation>> {
    let c = cluster.client.clone();
    let ns = cluster.namespace.as_str();
    let (dss, pods, revs): (Api<DaemonSet>, Api<Pod>, Api<ControllerRevision>) = if all_namespaces {
        (
            Api::all(c.clone()),
            Api::all(c.clone()),
            Api::all(c.clone()),
        )
    } else {
        (
            Api::namespaced(c.clone(), ns),
            Api::namespaced(c.clone(), ns),
            Api::namespaced(c.clone(), ns),
        )
    };
    let lp = ListParams::default();
    let version = async { Ok::<_, Error>(fetch::fetch_server_version(cluster).await) };
    let (dss, nodes, pods, revs, server_version) = futures::try_join!(
        list_all(dss, lp.clone(), "daemonsets"),
        list_fast::<_, k8s_pb::api::core::v1::NodeList>(
            Api::<Node>::all(c.clone()),
            lp.clone(),
            "nodes",
            cluster.protobuf,
        ),
        list_fast_filtered::<_, k8s_pb::api::core::v1::PodList>(
            pods,
            lp.clone(),
            "pods",
            cluster.protobuf,
            could_be_daemon_set_pod,
        ),
        list_all(revs, lp.clone(), "controllerrevisions"),
        version,
    )?;
    let now = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let nodes = Arc::new(nodes);
    let mut snaps: Vec<Snapshot> = dss
        .into_iter()
        .map(|ds| {
            let mut snap = snapshot_of(ds, &nodes, &pods, &revs, &[], now.clone());
            snap.server_version = server_version.clone();
            snap
        })
        .collect();
    drop(pods);
    let fit: BTreeSet<String> = snaps.iter().flat_map(nodes_needing_fit_check).collect();
    let on_nodes =
        fetch::fetch_pods_on_nodes(cluster, &fit.into_iter().collect::<Vec<_>>()).await?;
    for snap in &mut snaps {
        for node in nodes_needing_fit_check(snap) {
            let pods = on_nodes.get(&node).cloned().unwrap_or_default();
            snap.pods_on_nodes.insert(node, pods);
        }
    }
    let mut items: Vec<Explanation> = snaps
        .iter()
        .map(|snap| explain::explain(snap, &NodeFilter::default()))
        .collect();
    items.sort_by(|a, b| {
        (a.daemon_set.namespace.as_str(), a.daemon_set.name.as_str())
            .cmp(&(b.daemon_set.namespace.as_str(), b.daemon_set.name.as_str()))
    });
    Ok(items)
}

/// A pod some DaemonSet could own: controlled by a DaemonSet, or by nothing (an orphan that
/// matches a selector is adopted: controller_ref_manager.go ClaimObject).
fn could_be_daemon_set_pod(pod: &Pod) -> bool {
    controller_of(&pod.metadata).is_none_or(|(kind, _, _)| kind == "DaemonSet")
}

/// A snapshot for one DaemonSet out of objects listed for many (no per-node pod lists).
fn snapshot_of(
    ds: DaemonSet,
    nodes: &Arc<Vec<Node>>,
    pods: &[Pod],
    revs: &[ControllerRevision],
    events: &[Event],
    now: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Snapshot {
    let ns = ds.metadata.namespace.clone();
    let same_ns =
        |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.namespace == ns;
    let own_pods: Vec<Pod> = pods
        .iter()
        .filter(|p| same_ns(&p.metadata) && is_claimed_by(&ds, &p.metadata))
        .cloned()
        .collect();
    let own_revs = revs
        .iter()
        .filter(|r| same_ns(&r.metadata) && is_claimed_by(&ds, &r.metadata))
        .cloned()
        .collect();
    let events = events
        .iter()
        .filter(|e| same_ns(&e.metadata))
        .cloned()
        .collect();
    Snapshot {
        daemon_set: ds,
        nodes: Arc::clone(nodes),
        pods: own_pods,
        revisions: own_revs,
        events,
        pods_on_nodes: BTreeMap::new(),
        priorities: Default::default(),
        now,
        server_version: None,
    }
}

/// The pods on the nodes that need a fit check, from every pod of a saved List.
fn add_pods_on_nodes(snap: &mut Snapshot, pods: &[Pod]) {
    for node in nodes_needing_fit_check(snap) {
        let on_node = pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()))
            .filter(|p| crate::engine::fit::is_active(p))
            .cloned()
            .collect();
        snap.pods_on_nodes.insert(node, on_node);
    }
}

/// Reads a saved `kubectl get ds,nodes,pods,controllerrevisions,events -o yaml|json` List.
pub fn snapshot_from_file(
    path: &std::path::Path,
    name: &str,
    namespace: Option<&str>,
) -> Result<Snapshot> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("reading {}: {e}", path.display())))?;
    let docs: Vec<Value> = crate::yaml::from_str_multi(&text)
        .map_err(|e| Error::Input(format!("{}: not valid YAML or JSON: {e}", path.display())))?;
    let mut objects = Vec::new();
    for d in docs {
        flatten_list(d, &mut objects);
    }
    let (mut dss, mut nodes, mut pods, mut revs, mut events) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut classes, mut pdbs) = (vec![], vec![]);
    for o in objects {
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let bad = |e: serde_json::Error| {
            Error::Input(format!("{}: a {kind} is malformed: {e}", path.display()))
        };
        match kind.as_str() {
            "DaemonSet" => dss.push(serde_json::from_value::<DaemonSet>(o).map_err(bad)?),
            "Node" => nodes.push(serde_json::from_value::<Node>(o).map_err(bad)?),
            "Pod" => pods.push(serde_json::from_value::<Pod>(o).map_err(bad)?),
            "ControllerRevision" => {
                revs.push(serde_json::from_value::<ControllerRevision>(o).map_err(bad)?)
            }
            "Event" => events.push(serde_json::from_value::<Event>(o).map_err(bad)?),
            "PriorityClass" => classes.push(serde_json::from_value(o).map_err(bad)?),
            "PodDisruptionBudget" => pdbs.push(serde_json::from_value(o).map_err(bad)?),
            _ => {}
        }
    }
    let candidates: Vec<&DaemonSet> = dss
        .iter()
        .filter(|d| d.metadata.name.as_deref() == Some(name))
        .filter(|d| namespace.is_none() || d.metadata.namespace.as_deref() == namespace)
        .collect();
    let ds = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::NotFound {
                message: format!("daemonset {name:?} not found in {}", path.display()),
                hint: None,
            })
        }
        _ => {
            return Err(Error::Usage(format!(
                "{} holds several DaemonSets named {name:?}: pass -n",
                path.display()
            )))
        }
    };
    let now = latest_time(&events);
    let mut snap = snapshot_of(ds, &Arc::new(nodes), &pods, &revs, &events, now);
    add_pods_on_nodes(&mut snap, &pods);
    // A saved List without PriorityClasses or PDBs says nothing about them: unknown.
    snap.priorities = ClusterPriorities {
        classes: (!classes.is_empty()).then_some(classes),
        pdbs: (!pdbs.is_empty()).then_some(pdbs),
    };
    Ok(snap)
}

fn latest_time(events: &[Event]) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    events
        .iter()
        .filter_map(|e| e.last_timestamp.clone())
        .max_by_key(|t| t.0)
}

fn flatten_list(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(ref m) if m.get("items").is_some_and(Value::is_array) => {
            if let Some(Value::Array(items)) = m.get("items") {
                for i in items.clone() {
                    flatten_list(i, out);
                }
            }
        }
        Value::Object(_) => out.push(v),
        _ => {}
    }
}
