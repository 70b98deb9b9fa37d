//! `kubectl ds explain`: fetch, explain (pure), render.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use crate::engine::model::Pod;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{self as api, Event};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::cli::ExplainArgs;
use crate::cluster::client::{self, Cluster};
use crate::cluster::fetch::{self, list_all, list_fast_shaped};
use crate::cluster::slim;
use crate::engine::explain::{self, nodes_needing_fit_check, Explanation, NodeFilter, NodeVerdict};
use crate::engine::fix;
use crate::engine::labels;
use crate::engine::model::Node;
use crate::engine::preemption::ClusterPriorities;
use crate::engine::snapshot::{controller_of, is_claimed_by, Snapshot};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::printer::{self, split_label_columns, Format, TableOptions};
use crate::render::{self, palette::Palette, sorted_json};
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
            let exit = emit(out, e, &snap, &print, &palette);
            super::leave_to_exit(snap);
            exit
        }
        None => {
            let all = settings.global.all_namespaces;
            let (items, snaps) = overview(&cluster, all).await?;
            emit_overview(out, items, snaps, all, &print, &palette)
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
            let labels = &render::explain::node_labels(snap, &print.opts);
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

/// The overview: `items` are the DaemonSets' explanations without their node verdicts,
/// `snaps` their snapshots, in the same order. The outputs that print node verdicts (json,
/// yaml, jsonpath, custom-columns) make them again from the snapshot; json one DaemonSet at a
/// time as it is written. `--sort-by` sorts on what `items` keep (daemonSet, rules, summary).
fn emit_overview<W: Write>(
    out: &mut W,
    mut items: Vec<Explanation>,
    mut snaps: Vec<Snapshot>,
    all: bool,
    print: &Print,
    palette: &Palette,
) -> Result<Exit> {
    let problems = |e: &Explanation| render::explain::summary_problems(e) > 0;
    let exit = if print.exit_code && items.iter().any(problems) {
        Exit::Problems
    } else {
        Exit::Ok
    };
    if print.problems {
        let keep: Vec<usize> = (0..items.len()).filter(|&i| problems(&items[i])).collect();
        (items, snaps) = (
            printer::reorder(items, &keep),
            printer::reorder(snaps, &keep),
        );
    }
    if let Some(path) = &print.sort_by {
        let values = items.iter().map(to_value).collect::<Result<Vec<_>>>()?;
        let order = printer::sort_order_of(&values, path)?;
        (items, snaps) = (
            printer::reorder(items, &order),
            printer::reorder(snaps, &order),
        );
    }
    let full = |snaps: &[Snapshot]| -> Vec<Explanation> {
        snaps
            .iter()
            .map(|snap| explain::explain(snap, &NodeFilter::default()))
            .collect()
    };
    match &print.format {
        Format::Json => {
            crate::hold_freed_memory();
            overview_json(out, &items, &snaps)?
        }
        Format::Yaml => overview_yaml(out, &items, &snaps)?,
        Format::Table | Format::Wide => {
            render::explain::overview_table_with(out, &items, all, palette, print.opts.no_headers)?
        }
        Format::Name => {
            for e in &items {
                writeln!(out, "daemonset.apps/{}", e.daemon_set.name).map_err(render::io_err)?;
            }
        }
        Format::JsonPath(t) => {
            printer::jsonpath(out, t, &list_value(&items, &full(&snaps)), false)?
        }
        Format::JsonPathAsJson(t) => {
            printer::jsonpath(out, t, &list_value(&items, &full(&snaps)), true)?
        }
        Format::CustomColumns(cols) => {
            let values = full(&snaps)
                .iter()
                .map(to_value)
                .collect::<Result<Vec<_>>>()?;
            printer::custom_columns(out, cols, &values, print.opts.no_headers)?
        }
    }
    Ok(exit)
}

/// The overview's `-o json`: the ExplanationList, each item the DaemonSet's full explanation
/// made again from its snapshot; byte for byte `render::json(out, &list_value(..))`. At 100
/// DaemonSets and 5,000 nodes that is a quarter of a gigabyte: the items are made and written
/// to buffers (render::explain_json: no serde_json tree, each distinct reason list serialized
/// once per DaemonSet) on a thread per core, each thread
/// every n-th item, at most one buffer waiting per thread, while this one writes them out in
/// order and hands each buffer back to be filled again. A write that fails (the reader left)
/// stops the threads too.
fn overview_json<W: Write>(out: &mut W, items: &[Explanation], snaps: &[Snapshot]) -> Result<()> {
    let json_err = |e: serde_json::Error| Error::Io(format!("rendering JSON: {e}"));
    let mut top = Vec::new();
    sorted_json::write(&mut top, &list_top(items), 0).map_err(json_err)?;
    // The list's items, empty in `top`, go between its `[` and `]`.
    const EMPTY_ITEMS: &[u8] = b"\n  \"items\": []";
    let at = top
        .windows(EMPTY_ITEMS.len())
        .position(|w| w == EMPTY_ITEMS)
        .ok_or_else(|| Error::Io("rendering JSON: the list has no items".into()))?
        + EMPTY_ITEMS.len()
        - 1;
    let threads = cpu_threads().min(snaps.len().max(1));
    std::thread::scope(|scope| {
        // Per thread: its items, made; and the buffers written, back to it for the next.
        let channels: Vec<_> = (0..threads)
            .map(|first| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(1);
                let (back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
                scope.spawn(move || {
                    for snap in snaps.iter().skip(first).step_by(threads) {
                        let e = explain::explain(snap, &NodeFilter::default());
                        let mut buf = spare.try_recv().unwrap_or_default();
                        buf.clear();
                        let made = render::explain_json::write(&mut buf, &e, 2).map(|()| buf);
                        // The writer gone (it stopped early): nothing more to make.
                        if tx.send(made.map_err(json_err)).is_err() {
                            break;
                        }
                    }
                });
                (rx, back)
            })
            .collect();
        // The channels go with this closure, before the scope waits for the threads: a thread
        // blocked on a full channel then wakes to a closed one.
        let write = move |out: &mut W| -> Result<()> {
            out.write_all(&top[..at]).map_err(render::io_err)?;
            for i in 0..snaps.len() {
                let (made, back) = &channels[i % threads];
                let item = made.recv().unwrap_or_else(|_| {
                    Err(Error::Io("rendering JSON: an item was not made".into()))
                })?;
                let sep: &[u8] = if i == 0 { b"\n    " } else { b",\n    " };
                out.write_all(sep).map_err(render::io_err)?;
                out.write_all(&item).map_err(render::io_err)?;
                // The thread may have finished: then the buffer is freed here.
                let _ = back.send(item);
            }
            if !snaps.is_empty() {
                out.write_all(b"\n  ").map_err(render::io_err)?;
            }
            out.write_all(&top[at..]).map_err(render::io_err)?;
            writeln!(out).map_err(render::io_err)
        };
        write(out)
    })
}

/// The overview's `-o yaml`: byte for byte `render::yaml(out, &list_value(..))`, with each
/// item made again from its snapshot, rendered and written before the next is made (the whole
/// list as one tree is gigabytes at 100 DaemonSets and 5,000 nodes). An item of the list's
/// `items:` sequence is the item's own YAML, its first line after `- `, the others indented by
/// two spaces (the emitter's line widths do not depend on the nesting).
fn overview_yaml<W: Write>(out: &mut W, items: &[Explanation], snaps: &[Snapshot]) -> Result<()> {
    let top = render::yaml_text(&list_top(items))?;
    // A top-level key, never the first ("apiVersion" sorts before it).
    const EMPTY_ITEMS: &str = "\nitems: []\n";
    let at = top
        .find(EMPTY_ITEMS)
        .ok_or_else(|| Error::Io("rendering YAML: the list has no items".into()))?
        + 1;
    let mut buf = Vec::new();
    buf.extend_from_slice(&top.as_bytes()[..at]);
    if snaps.is_empty() {
        buf.extend_from_slice(b"items: []\n");
    } else {
        buf.extend_from_slice(b"items:\n");
    }
    for snap in snaps {
        let e = explain::explain(snap, &NodeFilter::default());
        sequence_item(&mut buf, &render::yaml_text(&e)?);
        out.write_all(&buf).map_err(render::io_err)?;
        buf.clear();
    }
    buf.extend_from_slice(&top.as_bytes()[at + EMPTY_ITEMS.len() - 1..]);
    out.write_all(&buf).map_err(render::io_err)
}

/// `text`, one value's YAML, as an item of a block sequence at the left margin (an empty line,
/// in a block scalar, stays empty).
fn sequence_item(out: &mut Vec<u8>, text: &str) {
    for (i, line) in text.split_terminator('\n').enumerate() {
        let prefix: &[u8] = match (i, line.is_empty()) {
            (0, _) => b"- ",
            (_, true) => b"",
            _ => b"  ",
        };
        out.extend_from_slice(prefix);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

/// Threads for the overview's CPU work: one per core, at most 4.
fn cpu_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// The ExplanationList: totals from the summaries, the full explanations as its items.
fn list_value(summaries: &[Explanation], items: &[Explanation]) -> Value {
    let mut list = list_top(summaries);
    list["items"] = serde_json::json!(items);
    list
}

/// The ExplanationList with its items left empty (filled in by [`overview_json`]).
fn list_top(items: &[Explanation]) -> Value {
    serde_json::json!({
        "apiVersion": explain::API_VERSION,
        "kind": "ExplanationList",
        "totals": render::explain::totals(items),
        "items": [],
    })
}

/// Every DaemonSet of the namespace (or all), explained from one list of each kind: one node
/// table shared by every DaemonSet's snapshot; the pods listed (in protobuf) once the
/// DaemonSets are known, keeping only those one of them could own (see [`Claimants`]); the
/// ControllerRevisions likewise. The other pods matter only on the nodes that need a fit
/// check; those are listed per node afterwards, for all DaemonSets at once, as single
/// `explain` does.
///
/// Returns each DaemonSet's explanation without its node verdicts, and its snapshot, in the
/// overview's order: memory holds the objects once and the verdicts of at most one DaemonSet
/// (a verdict list is ~1 MB per DaemonSet at 5,000 nodes; an overview has a hundred).
async fn overview(
    cluster: &Cluster,
    all_namespaces: bool,
) -> Result<(Vec<Explanation>, Vec<Snapshot>)> {
    let c = cluster.client.clone();
    let ns = cluster.namespace.as_str();
    let (dss, revs): (Api<DaemonSet>, Api<ControllerRevision>) = if all_namespaces {
        (Api::all(c.clone()), Api::all(c.clone()))
    } else {
        (
            Api::namespaced(c.clone(), ns),
            Api::namespaced(c.clone(), ns),
        )
    };
    let lp = ListParams::default();
    let version = async { Ok::<_, Error>(cluster.server_version().await) };
    // The DaemonSets first (one small list), then what they could own; the nodes meanwhile.
    let owned = async {
        let dss = list_all(dss, lp.clone(), "daemonsets").await?;
        if dss.is_empty() {
            return Ok::<_, Error>((dss, Vec::new(), Vec::new()));
        }
        let claimants = Claimants::new(&dss);
        let rev = |r: ControllerRevision| claimants.could_own(&r.metadata).then_some(r);
        let (pods, revs) = futures::try_join!(
            owned_pods(cluster, &dss, &claimants),
            fetch::list_all_shaped(revs, lp.clone(), "controllerrevisions", &rev),
        )?;
        Ok((dss, pods, revs))
    };
    let nodes = list_fast_shaped::<_, crate::cluster::wire::NodeList, _>(
        Api::<api::Node>::all(c.clone()),
        lp.clone(),
        "nodes",
        cluster,
        &slim::some_node,
    );
    let (nodes, (dss, pods, revs), server_version) = futures::try_join!(nodes, owned, version)?;
    let now = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let nodes = Arc::new(nodes);
    let mut pods = distribute(&dss, pods, |p| &p.metadata);
    let mut revs = distribute(&dss, revs, |r| &r.metadata);
    let mut snaps: Vec<Snapshot> = dss
        .into_iter()
        .enumerate()
        .map(|(i, ds)| {
            let own = (std::mem::take(&mut pods[i]), std::mem::take(&mut revs[i]));
            let mut snap = snapshot_of(ds, &nodes, own, &[], now.clone());
            snap.server_version = server_version.clone();
            snap
        })
        .collect();
    let fit: BTreeSet<String> = snaps.iter().flat_map(nodes_needing_fit_check).collect();
    let on_nodes =
        fetch::fetch_pods_on_nodes(cluster, &fit.into_iter().collect::<Vec<_>>()).await?;
    for snap in &mut snaps {
        for node in nodes_needing_fit_check(snap) {
            let pods = on_nodes.get(&node).cloned().unwrap_or_default();
            snap.pods_on_nodes.insert(node, pods);
        }
    }
    let items = summaries(&snaps);
    let order = render::explain::overview_order(&items);
    Ok((
        printer::reorder(items, &order),
        printer::reorder(snaps, &order),
    ))
}

/// Each DaemonSet's summary (explain::explain without node verdicts), in the order of
/// `snaps`: on a thread per core, each a run of DaemonSets (evaluating 100 DaemonSets on 5,000
/// nodes is CPU work of a few tenths of a second, and nothing else runs meanwhile).
fn summaries(snaps: &[Snapshot]) -> Vec<Explanation> {
    let run = snaps.len().div_ceil(cpu_threads()).max(1);
    let explain_run = |run: &[Snapshot]| -> Vec<Explanation> {
        run.iter()
            .map(|snap| explain::explain(snap, &NodeFilter::summary_only()))
            .collect()
    };
    if snaps.len() <= run {
        return explain_run(snaps);
    }
    std::thread::scope(|scope| {
        let mut runs = snaps.chunks(run);
        let first = runs.next().unwrap_or_default();
        let others: Vec<_> = runs.map(|r| scope.spawn(move || explain_run(r))).collect();
        let mut items = explain_run(first);
        for other in others {
            // A panic on another thread is one here too (as it would be on this one).
            items.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        items
    })
}

/// The pods the overview's DaemonSets could own (see [`Claimants`]), listed (in protobuf) only
/// in the namespaces that have DaemonSets: by its selector in a namespace with one DaemonSet,
/// the namespace's pods in one with several. The pods of every other namespace (most of a
/// large cluster's) are never read.
async fn owned_pods(
    cluster: &Cluster,
    dss: &[DaemonSet],
    claimants: &Claimants,
) -> Result<Vec<Pod>> {
    let mut by_ns: BTreeMap<&str, Vec<&DaemonSet>> = BTreeMap::new();
    for ds in dss {
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        by_ns.entry(ns).or_default().push(ds);
    }
    let keep = |p: api::Pod| claimants.could_own(&p.metadata).then(|| slim::pod(p));
    let keep: fetch::Shape<'_, api::Pod, Pod> = &keep;
    let lists = by_ns.into_iter().map(|(ns, dss)| {
        let (lp, hint) = match dss.as_slice() {
            [one] => {
                let selector = one
                    .spec
                    .as_ref()
                    .map(|s| crate::engine::manifest::selector_text(&s.selector))
                    .unwrap_or_default();
                (
                    ListParams::default().labels(&selector),
                    fetch::expected_pods(one),
                )
            }
            _ => (ListParams::default(), 0),
        };
        let api: Api<api::Pod> = Api::namespaced(cluster.client.clone(), ns);
        fetch::list_fast_versioned::<_, crate::cluster::wire::PodList, _>(
            api, lp, "pods", cluster, keep, hint,
        )
    });
    let mut pods = Vec::new();
    let mut lists = futures::stream::iter(lists).buffer_unordered(OWNED_PODS_CONCURRENCY);
    while let Some(listed) = lists.try_next().await? {
        if pods.is_empty() {
            pods = listed.items;
        } else {
            pods.extend(listed.items);
        }
    }
    Ok(pods)
}

/// Concurrent per-namespace pod lists of the overview.
const OWNED_PODS_CONCURRENCY: usize = 8;

/// The DaemonSets of an overview, for keeping only what one of them could own while a list is
/// read: an object controlled by one of them, or controlled by nothing and matched by the
/// selector of one in its namespace (an orphan it adopts: controller_ref_manager.go
/// ClaimObject). [`is_claimed_by`] decides, per DaemonSet, from what is kept.
struct Claimants {
    uids: BTreeSet<String>,
    selectors: BTreeMap<String, Vec<labels::Selector>>,
}

impl Claimants {
    fn new(dss: &[DaemonSet]) -> Claimants {
        let mut selectors: BTreeMap<String, Vec<labels::Selector>> = BTreeMap::new();
        for ds in dss {
            let sel = ds
                .spec
                .as_ref()
                .and_then(|s| labels::from_label_selector(Some(&s.selector)).ok());
            // An empty selector adopts nothing (SelectingAll).
            if let Some(sel) = sel.filter(|s| !s.is_everything()) {
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                selectors.entry(ns).or_default().push(sel);
            }
        }
        Claimants {
            uids: dss.iter().filter_map(|d| d.metadata.uid.clone()).collect(),
            selectors,
        }
    }

    fn could_own(&self, meta: &ObjectMeta) -> bool {
        match controller_of(meta) {
            Some((kind, _, uid)) => kind == "DaemonSet" && self.uids.contains(uid),
            None => {
                let ns = meta.namespace.as_deref().unwrap_or_default();
                self.selectors
                    .get(ns)
                    .is_some_and(|sels| sels.iter().any(|s| s.matches(meta.labels.as_ref())))
            }
        }
    }
}

/// Each DaemonSet's share of `objects` (aligned with `dss`), by [`is_claimed_by`]: an object
/// moves to the DaemonSet that claims it (a copy goes to any other that also does, which
/// only orphans matched by two selectors can be).
fn distribute<T: Clone>(
    dss: &[DaemonSet],
    objects: Vec<T>,
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Vec<Vec<T>> {
    let mut by_uid: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, ds) in dss.iter().enumerate() {
        by_uid.insert(ds.metadata.uid.as_deref().unwrap_or_default(), i);
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        by_ns.entry(ns).or_default().push(i);
    }
    let mut out: Vec<Vec<T>> = dss.iter().map(|_| Vec::new()).collect();
    for o in objects {
        let m = meta(&o);
        let ns = m.namespace.as_deref().unwrap_or_default();
        let candidates: Vec<usize> = match controller_of(m) {
            Some((_, _, uid)) => by_uid.get(uid).copied().into_iter().collect(),
            None => by_ns.get(ns).cloned().unwrap_or_default(),
        };
        let claimed: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| {
                dss[i].metadata.namespace.as_deref().unwrap_or_default() == ns
                    && is_claimed_by(&dss[i], m)
            })
            .collect();
        if let Some((&last, rest)) = claimed.split_last() {
            for &i in rest {
                out[i].push(o.clone());
            }
            out[last].push(o);
        }
    }
    out
}

/// A snapshot for one DaemonSet out of objects listed for many (no per-node pod lists): its
/// own pods and revisions (see [`distribute`]), the events of its namespace.
fn snapshot_of(
    ds: DaemonSet,
    nodes: &Arc<Vec<Node>>,
    (pods, revisions): (Vec<Pod>, Vec<ControllerRevision>),
    events: &[Event],
    now: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Snapshot {
    let events = events
        .iter()
        .filter(|e| e.metadata.namespace == ds.metadata.namespace)
        .cloned()
        .collect();
    Snapshot {
        daemon_set: ds,
        nodes: Arc::clone(nodes),
        pods,
        revisions,
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
            "Node" => nodes.push(Node::from(
                serde_json::from_value::<api::Node>(o).map_err(bad)?,
            )),
            "Pod" => pods.push(Pod::from(
                serde_json::from_value::<api::Pod>(o).map_err(bad)?,
            )),
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
    let one = std::slice::from_ref(&ds);
    let own = (
        distribute(one, pods.clone(), |p| &p.metadata).remove(0),
        distribute(one, revs, |r| &r.metadata).remove(0),
    );
    let mut snap = snapshot_of(ds, &Arc::new(nodes), own, &events, now);
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
    use crate::engine::testutil::{daemon_set, node, pod};

    /// The overview keeps, while the pods' list is read, what some DaemonSet could own, and
    /// gives each DaemonSet what it claims: its own pods, and the orphans its selector matches
    /// (to both DaemonSets when two match); never another controller's pods, nor the pods of a
    /// DaemonSet not listed, nor an orphan in another namespace.
    #[test]
    fn the_overview_keeps_and_shares_out_what_its_daemon_sets_could_own() {
        let ds = |name: &str, uid: &str, ns: &str, app: &str| {
            daemon_set(&format!(
                "metadata: {{name: {name}, namespace: {ns}, uid: {uid}}}
spec: {{selector: {{matchLabels: {{app: {app}}}}}, template: {{metadata: {{labels: {{app: {app}}}}}}}}}"
            ))
        };
        let dss = vec![
            ds("a", "u-a", "ns", "a"),
            ds("b", "u-b", "ns", "shared"),
            ds("c", "u-c", "ns", "shared"),
            ds("d", "u-d", "other", "a"),
        ];
        let owned = |name: &str, kind: &str, uid: &str, app: &str| {
            pod(&format!(
                "metadata: {{name: {name}, namespace: ns, labels: {{app: {app}}},
  ownerReferences: [{{apiVersion: apps/v1, kind: {kind}, name: x, uid: {uid}, controller: true}}]}}"
            ))
        };
        let orphan = |name: &str, ns: &str, app: &str| {
            pod(&format!(
                "metadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}"
            ))
        };
        let pods = vec![
            owned("a-1", "DaemonSet", "u-a", "a"),
            owned("rs-1", "ReplicaSet", "u-a", "a"),
            owned("gone-1", "DaemonSet", "u-gone", "a"),
            orphan("orphan-a", "ns", "a"),
            orphan("orphan-shared", "ns", "shared"),
            orphan("orphan-none", "ns", "web"),
            orphan("orphan-elsewhere", "third", "a"),
        ];
        let claimants = Claimants::new(&dss);
        let kept: Vec<Pod> = pods
            .into_iter()
            .filter(|p| claimants.could_own(&p.metadata))
            .collect();
        let names = |ps: &[Pod]| -> Vec<String> {
            ps.iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(&kept), ["a-1", "orphan-a", "orphan-shared"]);
        let shares: Vec<Vec<String>> = distribute(&dss, kept, |p| &p.metadata)
            .iter()
            .map(|ps| names(ps))
            .collect();
        assert_eq!(
            shares,
            [
                vec!["a-1", "orphan-a"],
                vec!["orphan-shared"],
                vec!["orphan-shared"],
                vec![]
            ]
        );
    }

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
        assert_streamed_is_tree(tree, streamed, &["\"fix\"", "\"gpu\""]);
        assert_eq!(e.nodes.len(), 2, "the explanation keeps its nodes");

        // The overview's list, each item's verdicts made again from its snapshot as it is
        // written, is the tree of the full explanations' JSON too.
        // More items than threads (each thread makes several, in buffers handed back), each
        // DaemonSet its own name: the items come out in order.
        let snaps: Vec<Snapshot> = (0..5)
            .map(|i| {
                let mut s = snap.clone();
                s.daemon_set.metadata.name = Some(format!("agent-{i}"));
                s
            })
            .collect();
        let items: Vec<Explanation> = snaps
            .iter()
            .map(|s| explain::explain(s, &NodeFilter::default()))
            .collect();
        let mut tree = Vec::new();
        render::json(&mut tree, &list_value(&items, &items)).unwrap();
        // And the YAML, item by item, is the YAML of the tree.
        let mut tree_yaml = Vec::new();
        render::yaml(&mut tree_yaml, &list_value(&items, &items)).unwrap();
        let summaries: Vec<Explanation> = items
            .into_iter()
            .map(|mut e| {
                e.nodes = Vec::new();
                e
            })
            .collect();
        let overview = |format: Format, summaries: Vec<Explanation>, snaps: Vec<Snapshot>| {
            let mut streamed = Vec::new();
            let print = Print {
                format,
                opts: TableOptions::default(),
                sort_by: None,
                problems: false,
                exit_code: false,
                fix: false,
            };
            emit_overview(
                &mut streamed,
                summaries,
                snaps,
                true,
                &print,
                &Palette::new(false),
            )
            .unwrap();
            streamed
        };
        let streamed = overview(Format::Json, summaries.clone(), snaps.clone());
        assert_streamed_is_tree(tree, streamed, &["\"totals\"", "\"gpu\""]);
        let streamed = overview(Format::Yaml, summaries, snaps);
        assert_streamed_is_tree(tree_yaml, streamed, &["\ntotals:", "name: gpu\n"]);
        // No DaemonSet at all: an empty list, in both.
        for format in [Format::Json, Format::Yaml] {
            let mut tree = Vec::new();
            match format {
                Format::Json => render::json(&mut tree, &list_value(&[], &[])).unwrap(),
                _ => render::yaml(&mut tree, &list_value(&[], &[])).unwrap(),
            }
            let streamed = overview(format, Vec::new(), Vec::new());
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(tree).unwrap()
            );
        }
    }

    /// A sequence item written from its own YAML is what the emitter writes for it inside
    /// the sequence, block scalars with empty lines and folded long strings included.
    #[test]
    fn a_sequence_item_is_its_yaml_indented() {
        let long = "word ".repeat(40);
        let items = [
            serde_json::json!({"a": {"b": [{"c": "one\n\ntwo\n", "d": long}], "e": {}}, "f": []}),
            serde_json::json!({"x": "q\"uote\u{e9}\t: - [", "y": [1, [2, 3]], "z": null}),
        ];
        let whole = crate::yaml::to_string(&serde_json::json!({"items": items})).unwrap();
        assert!(whole.contains("one\n\n"), "{whole}");
        let mut streamed = b"items:\n".to_vec();
        for item in &items {
            sequence_item(&mut streamed, &crate::yaml::to_string(item).unwrap());
        }
        assert_eq!(String::from_utf8(streamed).unwrap(), whole);
    }

    /// The summaries made on several threads are each DaemonSet's, in the snapshots' order.
    #[test]
    fn summaries_keep_the_snapshots_order() {
        let snaps: Vec<Snapshot> = (0..7)
            .map(|i| Snapshot {
                daemon_set: daemon_set(&format!(
                    "metadata: {{name: ds-{i}, namespace: ns, uid: u-{i}}}
spec:
  selector: {{matchLabels: {{app: a}}}}
  template:
    metadata: {{labels: {{app: a}}}}
    spec: {{nodeSelector: {{pool: p{}}}, containers: [{{name: c, image: i}}]}}",
                    i % 2
                )),
                nodes: Arc::new(vec![
                    node("metadata: {name: n0, labels: {pool: p0}}"),
                    node("metadata: {name: n1, labels: {pool: p1}}"),
                    node("metadata: {name: n2, labels: {pool: p1}}"),
                ]),
                ..Default::default()
            })
            .collect();
        let made: Vec<(String, i32)> = summaries(&snaps)
            .iter()
            .map(|e| (e.daemon_set.name.clone(), e.summary.computed.desired))
            .collect();
        let want: Vec<(String, i32)> = (0..7)
            .map(|i| (format!("ds-{i}"), if i % 2 == 0 { 1 } else { 2 }))
            .collect();
        assert_eq!(made, want);
    }

    /// The streamed output is byte for byte the tree's, which holds each of `marks` (a key, the
    /// gpu node).
    fn assert_streamed_is_tree(tree: Vec<u8>, streamed: Vec<u8>, marks: &[&str]) {
        let tree = String::from_utf8(tree).unwrap();
        assert!(marks.iter().all(|m| tree.contains(m)), "{tree}");
        assert_eq!(String::from_utf8(streamed).unwrap(), tree);
    }
}
