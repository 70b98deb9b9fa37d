//! `kubectl ds endpoints NAME`: fetch the DaemonSet, its pods, the namespace's Services and
//! EndpointSlices; the document (pure); render.

use std::io::Write;

use crate::cli::{EndpointsArgs, Output};
use crate::cluster::{client, fetch, node_view};
use crate::engine::endpoints;
use crate::error::Result;
use crate::exit::Exit;
use crate::render::{self, palette::Palette};
use crate::settings::Settings;

pub async fn run(args: EndpointsArgs, settings: &Settings) -> Result<Exit> {
    let cluster = client::connect(settings).await?;
    let ds = fetch::fetch_daemon_set(&cluster, &cluster.namespace, &args.name).await?;
    let (pods, services, slices) = node_view::fetch_endpoint_objects(&cluster, &ds).await?;
    let pods: Vec<crate::engine::model::Pod> = pods.into_iter().map(Into::into).collect();
    let doc = endpoints::endpoints(&ds, &pods, &services, &slices);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let p = Palette::new(settings.color);
    match args.output {
        Output::Json => render::json(&mut out, &doc)?,
        Output::Yaml => render::yaml(&mut out, &doc)?,
        Output::Table => render::endpoints::table(&mut out, &doc, false, &p)?,
        Output::Wide => render::endpoints::table(&mut out, &doc, true, &p)?,
    }
    out.flush().map_err(render::io_err)?;
    Ok(Exit::Ok)
}
