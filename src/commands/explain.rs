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
use crate::cluster::fetch::{self, list_all, list_fast, list_fast_filtered};
use crate::engine::explain::{self, nodes_needing_fit_check, Explanation, NodeFilter};
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

fn node_labels(snap: &Snapshot) -> NodeLabels {
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
    let labels = &node_labels(snap);
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
        Format::Json => render::json(out, &with_fixes(&e, snap)?)?,
        Format::Yaml => render::yaml(out, &with_fixes(&e, snap)?)?,
        Format::Table | Format::Wide => {
            let wide = print.format == Format::Wide;
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
    for (v, node) in e
        .nodes
        .iter()
        .zip(doc["nodes"].as_array_mut().into_iter().flatten())
    {
        for (f, reason) in fix::node_fixes(snap, &spec, v)
            .into_iter()
            .zip(node["reasons"].as_array_mut().into_iter().flatten())
        {
            if let Some(f) = f {
                reason["fix"] = to_value(&f)?;
            }
        }
    }
    Ok(doc)
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
        Format::Json => render::json(out, &list_value(&items))?,
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
    serde_json::json!({
        "apiVersion": explain::API_VERSION,
        "kind": "ExplanationList",
        "totals": render::explain::totals(items),
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
    render::explain::sort_overview(&mut items);
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
