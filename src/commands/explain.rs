//! `kubectl ds explain`: fetch, explain (pure), render.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::cli::ExplainArgs;
use crate::cluster::client::{self, Cluster};
use crate::cluster::fetch::{self, list_all, list_fast_shaped};
use crate::cluster::slim;
use crate::engine::explain::{self, nodes_needing_fit_check, Explanation, NodeFilter, NodeVerdict};
use crate::engine::fix;
use crate::engine::preemption::ClusterPriorities;
use crate::engine::snapshot::{controller_of, is_claimed_by, Snapshot};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::explain::NodeLabels;
use crate::render::printer::{self, split_label_columns, Format, TableOptions};
use crate::render::{self, palette::Palette};
use crate::settings::Settings;

pub async fn run(args: ExplainArgs, settings: &Settings) -> Result<Exit> {
    if args.watch {
        // `explain NAME --watch` is `status NAME` with its defaults.
        let name = args
            .name
            .ok_or_else(|| Error::Usage("explain --watch needs the DaemonSet NAME".into()))?;
        let output = match args.output.as_str() {
            "table" => crate::cli::Output::Table,
            "wide" => crate::cli::Output::Wide,
            "json" => crate::cli::Output::Json,
            "yaml" => crate::cli::Output::Yaml,
            other => {
                return Err(Error::Usage(format!(
                    "explain --watch prints a table or json (as status does), not -o {other}"
                )))
            }
        };
        let status = crate::cli::StatusArgs {
            name,
            output,
            timeout: "0".into(),
            stuck_after: "2m".into(),
            fail_on_stuck: false,
        };
        return super::status::run(status, settings).await;
    }
    // Buffered: stdout is line-buffered, and a JSON explanation of 5,000 nodes has ~100,000 lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let exit = explain_to(&mut out, args, settings).await?;
    out.flush().map_err(render::io_err)?;
    Ok(exit)
}

async fn explain_to<W: Write>(out: &mut W, args: ExplainArgs, settings: &Settings) -> Result<Exit> {
    let filter = NodeFilter::parse(&args.nodes, args.node_selector.as_deref())
        .map_err(|e| Error::Usage(format!("invalid --node-selector: {e}")))?;
    let format = Format::parse(&args.output)?;
    let palette = Palette::new(settings.color);
    let print = Print {
        format,
        opts: TableOptions {
            no_headers: args.print.no_headers,
            label_columns: split_label_columns(&args.print.label_columns),
            show_labels: args.print.show_labels,
        },
        sort_by: args.print.sort_by.clone(),
        problems: args.problems,
        exit_code: args.exit_code,
        fix: args.fix,
    };
    if args.fix && args.nodes.len() != 1 {
        return Err(Error::Usage("--fix needs exactly one --node".into()));
    }
    if let Some(file) = &args.file {
        let name = args
            .name
            .as_deref()
            .ok_or_else(|| Error::Usage("explain -f needs the DaemonSet NAME".into()))?;
        let snap = snapshot_from_file(file, name, settings.global.namespace.as_deref())?;
        let e = explain::explain(&snap, &filter);
        return emit(out, e, &snap, &print, &palette);
    }
    if args.name.is_none() && (!print.opts.label_columns.is_empty() || print.opts.show_labels) {
        return Err(Error::Usage(
            "-L and --show-labels add node label columns to one DaemonSet's node table; the overview lists DaemonSets, not nodes: pass the DaemonSet NAME (kubectl get ds -L KEY shows DaemonSet labels)".into(),
        ));
    }
    let cluster = client::connect(settings).await?;
    match &args.name {
        Some(name) => {
            let snap = fetch::fetch_snapshot(&cluster, &cluster.namespace, name).await?;
            let e = explain::explain(&snap, &filter);
            emit(out, e, &snap, &print, &palette)
        }
        None => {
            let all = settings.global.all_namespaces;
            let items = overview(&cluster, all).await?;
            emit_overview(out, items, all, &print, &palette)
        }
    }
}

/// How to print: the resolved `-o` and kubectl get's list flags.
struct Print {
    format: Format,
    opts: TableOptions,
    sort_by: Option<String>,
    problems: bool,
    exit_code: bool,
    fix: bool,
}

/// The nodes' labels for `-L` and `--show-labels`; none when no label column is shown (a copy
/// of every node's labels is several MB at 5,000 nodes).
fn node_labels(snap: &Snapshot, opts: &TableOptions) -> NodeLabels {
    if opts.label_columns.is_empty() && !opts.show_labels {
        return NodeLabels::new();
    }
    snap.nodes
        .iter()
        .map(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            (n.metadata.name.clone().unwrap_or_default(), labels)
        })
        .collect()
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Io(format!("rendering JSON: {e}")))
}

fn emit<W: Write>(
    out: &mut W,
    mut e: Explanation,
    snap: &Snapshot,
    print: &Print,
    palette: &Palette,
) -> Result<Exit> {
    if print.fix {
        return emit_fixed_manifest(out, &e, snap);
    }
    // The gate looks at every node explained (after --node and -l), not only those shown.
    let exit = if print.exit_code && render::explain::problem_count(&e) > 0 {
        Exit::Problems
    } else {
        Exit::Ok
    };
    if print.problems {
        e.nodes.retain(|v| render::explain::is_problem(v.state));
        e.summary.shown = e.nodes.len();
    }
    if let Some(path) = &print.sort_by {
        let values = e.nodes.iter().map(to_value).collect::<Result<Vec<_>>>()?;
        let order = printer::sort_order_of(&values, path)?;
        e.nodes = printer::reorder(std::mem::take(&mut e.nodes), &order);
    }
    match &print.format {
        Format::Json => json_with_fixes(out, &mut e, snap)?,
        Format::Yaml => render::yaml(out, &with_fixes(&e, snap)?)?,
        Format::Table | Format::Wide => {
            let wide = print.format == Format::Wide;
            let labels = &node_labels(snap, &print.opts);
            render::explain::explanation_table_with(out, &e, wide, palette, &print.opts, labels)?;
            if !print.opts.no_headers {
                fix_lines(out, &e, snap)?;
            }
        }
        Format::Name => {
            for v in &e.nodes {
                writeln!(out, "node/{}", v.name).map_err(render::io_err)?;
            }
        }
        Format::JsonPath(t) => printer::jsonpath(out, t, &with_fixes(&e, snap)?, false)?,
        Format::JsonPathAsJson(t) => printer::jsonpath(out, t, &with_fixes(&e, snap)?, true)?,
        Format::CustomColumns(cols) => {
            let doc = with_fixes(&e, snap)?;
            let values = doc["nodes"].as_array().cloned().unwrap_or_default();
            printer::custom_columns(out, cols, &values, print.opts.no_headers)?
        }
    }
    Ok(exit)
}

/// The explanation's JSON with each reason's suggested `fix` (engine::fix) beside its facts.
fn with_fixes(e: &Explanation, snap: &Snapshot) -> Result<Value> {
    let spec = fix::template_spec(&snap.daemon_set);
    let mut doc = to_value(e)?;
    let nodes = e
        .nodes
        .iter()
        .map(|v| node_with_fixes(v, &spec, snap))
        .collect::<Result<Vec<_>>>()?;
    doc["nodes"] = Value::Array(nodes);
    Ok(doc)
}

/// One node's JSON with each reason's suggested `fix` beside its facts.
fn node_with_fixes(v: &NodeVerdict, spec: &Value, snap: &Snapshot) -> Result<Value> {
    let mut node = to_value(v)?;
    for (f, reason) in fix::node_fixes(snap, spec, v)
        .into_iter()
        .zip(node["reasons"].as_array_mut().into_iter().flatten())
    {
        if let Some(f) = f {
            reason["fix"] = to_value(&f)?;
        }
    }
    Ok(node)
}

/// `-o json`: what `render::json(out, &with_fixes(e, snap)?)` writes, byte for byte, without
/// the whole document as one JSON tree (at 5,000 nodes that tree is several times the size of
/// the explanation it is made from): the top level is a tree with the nodes left out, and each
/// node is made a tree only while it is written.
fn json_with_fixes<W: Write>(out: &mut W, e: &mut Explanation, snap: &Snapshot) -> Result<()> {
    let nodes = std::mem::take(&mut e.nodes);
    let top = to_value(&*e);
    e.nodes = nodes;
    let spec = fix::template_spec(&snap.daemon_set);
    let doc = Streamed {
        top: &top?,
        key: "nodes",
        items: &e.nodes,
        each: |v: &NodeVerdict| node_with_fixes(v, &spec, snap),
    };
    render::json(out, &doc)
}

/// A JSON document whose `key` holds a long list: the rest of the document is a tree (`top`,
/// which has `key` with any value), each item of the list is made a tree (`each`) only while it
/// is written. Written as the whole tree would be, byte for byte: a tree's map keeps its keys
/// in its own order, and this writes them in that order.
struct Streamed<'a, T, F> {
    top: &'a Value,
    key: &'a str,
    items: &'a [T],
    each: F,
}

impl<T, F: Fn(&T) -> Result<Value>> serde::Serialize for Streamed<'_, T, F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap, SerializeSeq};
        struct Items<'b, T, F>(&'b [T], &'b F);
        impl<T, F: Fn(&T) -> Result<Value>> serde::Serialize for Items<'_, T, F> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for item in self.0 {
                    seq.serialize_element(&(self.1)(item).map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
        }
        let Value::Object(top) = self.top else {
            return self.top.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            if k == self.key {
                map.serialize_entry(k, &Items(self.items, &self.each))?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// One line per suggested fix under the table.
fn fix_lines<W: Write>(out: &mut W, e: &Explanation, snap: &Snapshot) -> Result<()> {
    let spec = fix::template_spec(&snap.daemon_set);
    let mut first = true;
    for v in &e.nodes {
        for (r, f) in v.reasons.iter().zip(fix::node_fixes(snap, &spec, v)) {
            let Some(f) = f else {
                continue;
            };
            if first {
                writeln!(out).map_err(render::io_err)?;
                first = false;
            }
            let how = match f.target {
                fix::FixTarget::Manifest => format!(" (explain --node {} --fix)", v.name),
                fix::FixTarget::Node => " (node change: not applied)".into(),
                fix::FixTarget::Cluster => " (cluster change: not applied)".into(),
            };
            writeln!(
                out,
                "Fix {} {}: {}{how}",
                v.name,
                r.code(),
                render::term::escape(&f.description)
            )
            .map_err(render::io_err)?;
        }
    }
    Ok(())
}

/// `--fix`: the DaemonSet's manifest with the node's template fixes applied
/// (fix::patches_to_apply), as YAML.
fn emit_fixed_manifest<W: Write>(out: &mut W, e: &Explanation, snap: &Snapshot) -> Result<Exit> {
    let spec = fix::template_spec(&snap.daemon_set);
    let mut manifest = fix::manifest_of(&snap.daemon_set);
    let mut applied = 0;
    let mut described = Vec::new();
    for v in &e.nodes {
        let fixes = fix::node_fixes(snap, &spec, v);
        for p in fix::patches_to_apply(&v.reasons, &fixes) {
            fix::apply_patch(&mut manifest, p);
            applied += 1;
        }
        for (r, f) in v.reasons.iter().zip(&fixes) {
            if let Some(f) = f.as_ref().filter(|f| f.patch.is_none()) {
                described.push(format!("{}: {}", r.code(), f.description));
            }
        }
    }
    if applied == 0 {
        let node = e.nodes.first().map(|v| v.name.as_str()).unwrap_or("?");
        let why = if described.is_empty() {
            String::new()
        } else {
            format!(" (changes elsewhere: {})", described.join("; "))
        };
        return Err(Error::Usage(format!(
            "node {node} has nothing a template change fixes{why}"
        )));
    }
    render::yaml(out, &manifest)?;
    Ok(Exit::Ok)
}

fn emit_overview<W: Write>(
    out: &mut W,
    mut items: Vec<Explanation>,
    all: bool,
    print: &Print,
    palette: &Palette,
) -> Result<Exit> {
    let exit = if print.exit_code && items.iter().any(|e| render::explain::problem_count(e) > 0) {
        Exit::Problems
    } else {
        Exit::Ok
    };
    if print.problems {
        items.retain(|e| render::explain::problem_count(e) > 0);
    }
    if let Some(path) = &print.sort_by {
        let values = items.iter().map(to_value).collect::<Result<Vec<_>>>()?;
        let order = printer::sort_order_of(&values, path)?;
        items = printer::reorder(items, &order);
    }
    match &print.format {
        Format::Json => {
            let top = list_top(&items);
            let doc = Streamed {
                top: &top,
                key: "items",
                items: &items,
                each: to_value,
            };
            render::json(out, &doc)?
        }
        Format::Yaml => render::yaml(out, &list_value(&items))?,
        Format::Table | Format::Wide => {
            render::explain::overview_table_with(out, &items, all, palette, print.opts.no_headers)?
        }
        Format::Name => {
            for e in &items {
                writeln!(out, "daemonset.apps/{}", e.daemon_set.name).map_err(render::io_err)?;
            }
        }
        Format::JsonPath(t) => printer::jsonpath(out, t, &list_value(&items), false)?,
        Format::JsonPathAsJson(t) => printer::jsonpath(out, t, &list_value(&items), true)?,
        Format::CustomColumns(cols) => {
            let values = items.iter().map(to_value).collect::<Result<Vec<_>>>()?;
            printer::custom_columns(out, cols, &values, print.opts.no_headers)?
        }
    }
    Ok(exit)
}

fn list_value(items: &[Explanation]) -> Value {
    let mut list = list_top(items);
    list["items"] = serde_json::json!(items);
    list
}

/// The ExplanationList with its items left empty (see [`Streamed`]).
fn list_top(items: &[Explanation]) -> Value {
    serde_json::json!({
        "apiVersion": explain::API_VERSION,
        "kind": "ExplanationList",
        "totals": render::explain::totals(items),
        "items": [],
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
        list_fast_shaped::<_, crate::cluster::wire::NodeList>(
            Api::<Node>::all(c.clone()),
            lp.clone(),
            "nodes",
            cluster.protobuf,
            slim::some_node,
        ),
        list_fast_shaped::<_, crate::cluster::wire::PodList>(
            pods,
            lp.clone(),
            "pods",
            cluster.protobuf,
            daemon_set_pod,
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
    render::explain::sort_overview(&mut items);
    Ok(items)
}

/// A pod some DaemonSet could own, as the engine reads it; None for the others.
fn daemon_set_pod(pod: Pod) -> Option<Pod> {
    could_be_daemon_set_pod(&pod).then(|| slim::pod(pod))
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

/// Reads a saved `kubectl get ds,nodes,pods,controllerrevisions,events -o yaml|json` List (by
/// the one `-f` reader: `-` for stdin).
pub fn snapshot_from_file(
    path: &std::path::Path,
    name: &str,
    namespace: Option<&str>,
) -> Result<Snapshot> {
    let shown = crate::filename::shown(path);
    let objects = crate::filename::read_objects(path, "Kubernetes objects")?;
    let (mut dss, mut nodes, mut pods, mut revs, mut events) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut classes, mut pdbs) = (vec![], vec![]);
    for o in objects {
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let bad =
            |e: serde_json::Error| Error::Input(format!("{shown}: a {kind} is malformed: {e}"));
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
                message: format!("daemonset {name:?} not found in {shown}"),
                hint: None,
            })
        }
        _ => {
            return Err(Error::Usage(format!(
                "{shown} holds several DaemonSets named {name:?}: pass -n"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{daemon_set, node};

    /// `-o json` written node by node is the whole document's JSON tree, byte for byte, fixes
    /// included.
    #[test]
    fn streamed_json_is_the_documents_json() {
        let ds = daemon_set(
            "metadata: {name: agent, namespace: ns, uid: u-1}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: agent:1}]}",
        );
        let snap = Snapshot {
            daemon_set: ds.clone(),
            nodes: Arc::new(vec![
                node("metadata: {name: plain}"),
                node("metadata: {name: gpu}\nspec: {taints: [{key: dedicated, value: gpu, effect: NoSchedule}]}"),
            ]),
            ..Default::default()
        };
        let mut e = explain::explain(&snap, &NodeFilter::default());
        let mut tree = Vec::new();
        render::json(&mut tree, &with_fixes(&e, &snap).unwrap()).unwrap();
        let mut streamed = Vec::new();
        json_with_fixes(&mut streamed, &mut e, &snap).unwrap();
        assert_streamed_is_tree(tree, streamed, "\"fix\"");
        assert_eq!(e.nodes.len(), 2, "the explanation keeps its nodes");

        // The overview's list, streamed item by item, is its tree's JSON too.
        let items = vec![e.clone(), e];
        let mut tree = Vec::new();
        render::json(&mut tree, &list_value(&items)).unwrap();
        let mut streamed = Vec::new();
        let print = Print {
            format: Format::Json,
            opts: TableOptions::default(),
            sort_by: None,
            problems: false,
            exit_code: false,
            fix: false,
        };
        emit_overview(&mut streamed, items, true, &print, &Palette::new(false)).unwrap();
        assert_streamed_is_tree(tree, streamed, "\"totals\"");
    }

    /// The streamed JSON is byte for byte the tree's, which holds `key` and the gpu node.
    fn assert_streamed_is_tree(tree: Vec<u8>, streamed: Vec<u8>, key: &str) {
        let tree = String::from_utf8(tree).unwrap();
        assert!(tree.contains(key) && tree.contains("\"gpu\""), "{tree}");
        assert_eq!(String::from_utf8(streamed).unwrap(), tree);
    }
}
