//! `kubectl ds why NODE`: fetch the node and what runs on it, one verdict per DaemonSet
//! (explain's, pure), render.

use std::io::Write;
use std::path::Path;

use k8s_openapi::api::core::v1::Node;

use crate::cli::{Output, WhyArgs};
use crate::cluster::client;
use crate::cluster::node_view;
use crate::engine::why::{self, NodeExplanation};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::{self, palette::Palette};
use crate::settings::Settings;

pub async fn run(args: WhyArgs, settings: &Settings) -> Result<Exit> {
    // Bad input before any request: the manifest is read first.
    let assumed = args.assume_node.as_deref().map(read_node).transpose()?;
    let cluster = client::connect(settings).await?;
    let namespace = settings.global.namespace.as_deref();
    let (daemon_sets, objects) = match (assumed, args.node.as_ref()) {
        (Some(node), _) => {
            let (dss, mut objects) =
                node_view::fetch_node_objects(&cluster, None, namespace).await?;
            objects.node = node.into();
            (dss, objects)
        }
        (None, Some(name)) => {
            let (node, (dss, mut objects)) = futures::try_join!(
                node_view::fetch_node(&cluster, name),
                node_view::fetch_node_objects(&cluster, Some(name), namespace),
            )?;
            objects.node = node.into();
            (dss, objects)
        }
        (None, None) => return Err(Error::Usage("why needs a NODE or --assume-node".into())),
    };
    // First pass from what is in hand; the rows that need events (Missing, Pending) are
    // recomputed with them, as explain computes them.
    let mut rows = Vec::with_capacity(daemon_sets.len());
    let mut incomplete = Vec::new();
    for ds in &daemon_sets {
        let snap = why::node_snapshot(ds, &objects);
        let row = why::row(&snap, objects.assumed);
        if !objects.assumed && why::needs_events(&row) {
            incomplete.push(snap);
        } else {
            rows.push(row);
        }
    }
    for snap in node_view::complete_snapshots(&cluster, incomplete).await? {
        rows.push(why::row(&snap, false));
    }
    why::sort_rows(&mut rows);
    let doc = why::document(rows, &objects);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    emit(&mut out, &doc, args.output, &Palette::new(settings.color))?;
    out.flush().map_err(render::io_err)?;
    Ok(Exit::Ok)
}

fn emit<W: Write>(out: &mut W, doc: &NodeExplanation, output: Output, p: &Palette) -> Result<()> {
    match output {
        Output::Json => render::json(out, doc),
        Output::Yaml => render::yaml(out, doc),
        Output::Table => render::why::table(out, doc, false, p),
        Output::Wide => render::why::table(out, doc, true, p),
    }
}

/// Reads a Node manifest for `--assume-node` through the one `-f` reader (`crate::filename`:
/// YAML or JSON, a List, several documents, `-` for stdin): exactly one object of kind Node.
pub fn read_node(path: &Path) -> Result<Node> {
    let shown = crate::filename::shown(path);
    let objects = crate::filename::read_objects(path, "a Node manifest")?;
    let kind = |o: &serde_json::Value| o["kind"].as_str().unwrap_or("(none)").to_string();
    let value = match objects.as_slice() {
        [one] if kind(one) == "Node" => one.clone(),
        [one] => {
            return Err(Error::Input(format!(
                "{shown}: --assume-node wants a Node manifest, found kind {}",
                kind(one)
            )))
        }
        several => {
            return Err(Error::Input(format!(
                "{shown}: --assume-node wants one Node manifest, found {} objects",
                several.len()
            )))
        }
    };
    let mut node: Node = serde_json::from_value(value)
        .map_err(|e| Error::Input(format!("{shown}: a Node is malformed: {e}")))?;
    if node.metadata.name.as_deref().unwrap_or("").is_empty() {
        node.metadata.name = Some("assumed-node".into());
    }
    Ok(node)
}
