//! `kubectl ds rollout-preview`: complete and validate the change (a manifest or images) without
//! the cluster, then get the apiserver's dry-run result and the live state concurrently, preview
//! (pure), render. Nothing is ever stored: every request that could write is `dryRun=All`.

use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{json, Value};

use crate::cli::RolloutPreviewArgs;
use crate::cluster::client::{self, Cluster};
use crate::cluster::{admission, dry_run, fetch};
use crate::engine::preemption::ClusterPriorities;
use crate::engine::rollout::Action;
use crate::engine::{managed, revision, rollout, threeway};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::explain::NodeLabels;
use crate::render::printer::{self, split_label_columns, Format, TableOptions};
use crate::render::rollout::{Document, DryRun};
use crate::render::{self, palette::Palette};
use crate::settings::Settings;

pub async fn run(args: RolloutPreviewArgs, settings: &Settings) -> Result<Exit> {
    let change = Change::complete(&args)?;
    let format = Format::parse(&args.output)?;
    let cluster = client::connect(settings).await?;
    change.check_namespace(&cluster.namespace)?;
    let Computed {
        live,
        request,
        new,
        mut snap,
        attempts,
    } = dry_run_pinned(&change, &cluster, &args.name).await?;
    // The pods on the nodes whose DaemonSet pod is not scheduled, read with the workload.
    let early = std::mem::take(&mut snap.pods_on_nodes);
    let mut classified = rollout::classify(&snap, &new);
    // The pod the scheduler sees is the admitted one: asked for once, only when a pod is
    // created or restarted. Its admitted requests can only add nodes to the fit set (a restart
    // whose admitted pod grows), so the pods of the nodes already known to need a fit check
    // and the PriorityClasses are read in the same round trip as the admission dry run; only
    // the nodes it adds cost a second one.
    let admission_node = classified
        .needs_admission()
        .then(|| classified.admission_node().map(str::to_string))
        .flatten();
    let before = classified.nodes_needing_fit_check();
    let maybe_fit = !before.is_empty() || admission_node.is_some();
    let admit = async {
        match &admission_node {
            Some(node) => Some(admission::fetch_admitted(&cluster, &new, node).await),
            None => None,
        }
    };
    let (admitted, read, classes) = futures::try_join!(
        async { Ok(admit.await) },
        fetch::fetch_pods_on_nodes_unread(&cluster, &early, &before),
        async { Ok(fetch::fetch_priority_classes(&cluster, maybe_fit).await) }
    )?;
    let mut pods_on_nodes = early;
    pods_on_nodes.extend(read);
    let admission = admitted.map(|admitted| {
        match &admitted.refused {
            Some(message) => classified.refuse(message),
            None => classified.admit(admitted.spec.clone()),
        }
        admitted.info()
    });
    let fit_nodes = classified.nodes_needing_fit_check();
    let added = fetch::fetch_pods_on_nodes_unread(&cluster, &pods_on_nodes, &fit_nodes).await?;
    pods_on_nodes.extend(added);
    pods_on_nodes.retain(|n, _| fit_nodes.binary_search(n).is_ok());
    let mut priorities = ClusterPriorities {
        // Used (and its error reported) only when a fit check is made.
        classes: if fit_nodes.is_empty() { None } else { classes? },
        pdbs: None,
    };
    let namespaces = classified.preemption_namespaces(&pods_on_nodes, &priorities);
    priorities.pdbs = fetch::fetch_pdbs(&cluster, &namespaces).await?;
    let mut preview = classified.finish_with(&pods_on_nodes, &priorities);
    if let Some(note) = change.dropped_surge(&new, preview.rules.server_version.as_deref()) {
        preview.notes.push(note);
    }
    if attempts > 1 {
        preview.notes.push(format!(
            "the DaemonSet was written (status or metadata, not its spec) while the preview was computed: recomputed from a fresh read ({attempts} attempts)"
        ));
    }
    if let Some(path) = &args.sort_by {
        let values = preview
            .nodes
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Io(format!("rendering JSON: {e}")))?;
        let order = printer::sort_order_of(&values, path)?;
        preview.nodes = printer::reorder(std::mem::take(&mut preview.nodes), &order);
    }
    let doc = Document {
        preview: &preview,
        admission,
        dry_run: request.describe(),
        template_diff: template_diff(&live, &new)?,
    };
    let opts = TableOptions {
        no_headers: args.no_headers,
        label_columns: split_label_columns(&args.label_columns),
        show_labels: args.show_labels,
    };
    let labels: NodeLabels = render::explain::node_labels(&snap, &opts);
    // Buffered, as explain's: stdout is line-buffered (a write per line of 5,000 nodes' JSON).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    emit(
        &mut out,
        &doc,
        &format,
        (&opts, &labels),
        &Palette::new(settings.color),
    )?;
    out.flush().map_err(render::io_err)?;
    drop(doc);
    let exit = if args.exit_code && preview.would_roll {
        Exit::Differs
    } else {
        Exit::Ok
    };
    super::leave_to_exit((snap, preview, pods_on_nodes));
    Ok(exit)
}

/// Dry runs before giving up when the DaemonSet keeps moving without a spec change.
const ATTEMPTS: usize = 5;

/// A dry run that went through, with the live object it was pinned to.
struct Computed {
    live: DaemonSet,
    request: Request,
    new: DaemonSet,
    snap: crate::engine::snapshot::Snapshot,
    /// Dry runs it took (1 when nothing wrote the DaemonSet in between).
    attempts: usize,
}

/// Reads the DaemonSet, dry-runs the change pinned to that resourceVersion and fetches the live
/// state. A conflict means something wrote the DaemonSet in between: the controller's status
/// updates (constant during a rollout) or metadata. If the spec is what was first read, the
/// preview is recomputed from a fresh read (at most [`ATTEMPTS`] times); if the spec changed,
/// the preview refuses rather than describe a DaemonSet that no longer exists.
///
/// After a first conflict the recomputes are not pinned to a resourceVersion (a DaemonSet whose
/// status is written several times a second would conflict every time) but bracketed by
/// generation: the apiserver bumps `metadata.generation` on every change of the spec, so when
/// the same object has the same generation after the dry run as the read before it, the dry run
/// saw exactly the spec that was read.
async fn dry_run_pinned(change: &Change, cluster: &Cluster, name: &str) -> Result<Computed> {
    let ns = &cluster.namespace;
    let first = fetch::fetch_daemon_set_before_lists(cluster, ns, name).await?;
    let mut live = first.clone();
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let pinned = attempt == 1;
        let mut sent_against = live.clone();
        if !pinned {
            sent_against.metadata.resource_version = None;
        }
        let request = change.request(&sent_against)?;
        let (sent, snap) = futures::try_join!(
            request.send(cluster, &sent_against),
            fetch::fetch_workload_and_fit(cluster, live.clone())
        )?;
        match sent {
            Ok(new) if pinned => return Ok(computed(live, request, new, snap, attempt)),
            Ok(new) => {
                let after = fetch::fetch_daemon_set(cluster, ns, name).await?;
                if spec_moved(&live, &after).is_none() {
                    return Ok(computed(live, request, new, snap, attempt));
                }
                last = "the spec moved during an unpinned dry run".into();
                live = after;
            }
            Err(dry_run::Conflict(message)) => {
                last = message;
                live = fetch::fetch_daemon_set(cluster, ns, name).await?;
            }
        }
        if let Some(moved) = spec_moved(&first, &live) {
            return Err(Error::Forbidden(format!(
                "daemonset {ns}/{name}: {moved} while the preview was computed; run it again to preview against the new spec"
            )));
        }
    }
    Err(Error::Forbidden(format!(
        "daemonset {ns}/{name} kept changing while the preview was computed ({ATTEMPTS} attempts, its spec unchanged; last conflict: {last}); run it again"
    )))
}

fn computed(
    live: DaemonSet,
    request: Request,
    new: DaemonSet,
    snap: crate::engine::snapshot::Snapshot,
    attempts: usize,
) -> Computed {
    Computed {
        live,
        request,
        new,
        snap,
        attempts,
    }
}

/// What makes a fresh read of the DaemonSet a different object to preview: another object
/// under the same name, or another spec. Status, labels, annotations and managedFields are not.
/// The apiserver bumps `metadata.generation` on every spec write that changes the spec (and
/// never on a no-op write), so a new generation means the spec moved even when it has come back
/// to what was first read (a spec flipped and flipped back is still a spec someone is changing).
fn spec_moved(first: &DaemonSet, now: &DaemonSet) -> Option<String> {
    if first.metadata.uid != now.metadata.uid {
        return Some("the DaemonSet was deleted and created again".into());
    }
    let same_generation = match (first.metadata.generation, now.metadata.generation) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    if same_generation && first.spec == now.spec {
        return None;
    }
    let gen = |d: &DaemonSet| {
        d.metadata
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "?".into())
    };
    Some(format!(
        "its spec changed (generation {} -> {})",
        gen(first),
        gen(now)
    ))
}

fn emit<W: Write>(
    out: &mut W,
    doc: &Document,
    format: &Format,
    (opts, labels): (&TableOptions, &NodeLabels),
    palette: &Palette,
) -> Result<()> {
    let no_headers = opts.no_headers;
    let value = || serde_json::to_value(doc).map_err(|e| Error::Io(format!("rendering JSON: {e}")));
    match format {
        Format::Json => render::json(out, doc),
        Format::Yaml => render::yaml(out, doc),
        Format::Table | Format::Wide => {
            let wide = *format == Format::Wide;
            render::rollout::preview_table_with(out, doc, wide, palette, opts, labels)
        }
        // The nodes the change would touch (create, restart, delete) or cannot (blocked).
        Format::Name => {
            for n in &doc.preview.nodes {
                if !matches!(n.action, Action::Keep | Action::Unchanged) {
                    writeln!(out, "node/{}", n.name).map_err(render::io_err)?;
                }
            }
            Ok(())
        }
        Format::JsonPath(t) => printer::jsonpath(out, t, &value()?, false),
        Format::JsonPathAsJson(t) => printer::jsonpath(out, t, &value()?, true),
        Format::CustomColumns(cols) => {
            let nodes = value()?["nodes"].as_array().cloned().unwrap_or_default();
            printer::custom_columns(out, cols, &nodes, no_headers)
        }
    }
}

/// The unified diff of the pod template, live -> dry-run result (both defaulted by the
/// apiserver, so only real changes show).
fn template_diff(live: &DaemonSet, new: &DaemonSet) -> Result<String> {
    let yaml = |ds: &DaemonSet| -> Result<String> {
        let Some(spec) = ds.spec.as_ref() else {
            return Ok(String::new());
        };
        let v = serde_json::to_value(&spec.template)
            .map_err(|e| Error::Io(format!("rendering the pod template: {e}")))?;
        crate::yaml::to_string(&v)
            .map_err(|e| Error::Io(format!("rendering the pod template: {e}")))
    };
    Ok(render::diff::unified(
        &yaml(live)?,
        &yaml(new)?,
        "live spec.template",
        "new spec.template",
        3,
    ))
}

/// What the user asks to preview, read and checked before any request.
enum Change {
    /// `-f FILE`: one DaemonSet manifest.
    Manifest { path: PathBuf, manifest: Value },
    /// `--image CONTAINER=IMAGE ...` (`*` = every container).
    Images(Vec<(String, String)>),
}

/// The dry-run request for a change: what the user's own tool would send.
enum Request {
    /// Server-side apply as `manager` (the template's last server-side applier: it removes what
    /// its manifest no longer lists; else kubectl-ds, which removes nothing).
    Apply { manifest: Value, manager: String },
    /// A client-side `kubectl apply`, computed here (three-way merge with the last-applied
    /// manifest) and sent as a replace.
    Replace(Value),
    /// `--image`: a strategic-merge patch, as `kubectl set image`.
    Patch(Value),
}

impl Change {
    fn complete(args: &RolloutPreviewArgs) -> Result<Change> {
        if let Some(path) = &args.file {
            let manifest = read_manifest(path, &args.name)?;
            return Ok(Change::Manifest {
                path: path.clone(),
                manifest,
            });
        }
        if args.images.is_empty() {
            return Err(Error::Usage(
                "rollout-preview needs the change: -f FILE or --image CONTAINER=IMAGE".into(),
            ));
        }
        let images = args
            .images
            .iter()
            .map(|s| match s.split_once('=') {
                Some((c, i)) if !c.is_empty() && !i.is_empty() => {
                    Ok((c.to_string(), i.to_string()))
                }
                _ => Err(Error::Usage(format!(
                    "--image expects CONTAINER=IMAGE, got {s:?}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Change::Images(images))
    }

    /// The manifest asks for `rollingUpdate.maxSurge` and the dry-run DaemonSet has none: the
    /// apiserver does not know the field (DaemonSet maxSurge: alpha behind DaemonSetUpdateSurge
    /// in 1.21, on by default from 1.22, apps/v1 RollingUpdateDaemonSet) and dropped it, so the
    /// controller rolls with maxUnavailable alone. Said, with the server version, because the
    /// preview then differs from what the manifest reads like.
    fn dropped_surge(&self, new: &DaemonSet, server: Option<&str>) -> Option<String> {
        let Change::Manifest { manifest, .. } = self else {
            return None;
        };
        let asked = &manifest["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"];
        if asked.is_null() {
            return None;
        }
        let kept = new
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.max_surge.as_ref())
            .is_some();
        if kept {
            return None;
        }
        let server = server.map_or("this apiserver".to_string(), |v| format!("Kubernetes {v}"));
        Some(format!(
            "{server} dropped rollingUpdate.maxSurge ({asked}) from the manifest: DaemonSet surge exists from 1.22 (1.21 behind the DaemonSetUpdateSurge gate), so each old pod is deleted before its replacement is created"
        ))
    }

    /// A manifest that names a namespace must name the one previewed (as kubectl apply -n).
    fn check_namespace(&self, ns: &str) -> Result<()> {
        let Change::Manifest { path, manifest } = self else {
            return Ok(());
        };
        match manifest["metadata"]["namespace"].as_str() {
            Some(m) if !m.is_empty() && m != ns => Err(Error::Manifest {
                message: format!(
                    "{}: the manifest is in namespace {m:?}, the preview targets namespace {ns:?}",
                    path.display()
                ),
                hint: Some(format!("pass -n {m}")),
            }),
            _ => Ok(()),
        }
    }

    /// The dry-run request against the live object: the selector may not change; images must
    /// name existing containers.
    fn request(&self, live: &DaemonSet) -> Result<Request> {
        let name = live.metadata.name.as_deref().unwrap_or("");
        match self {
            Change::Manifest { manifest, path } => {
                if selector_changes(manifest, live) {
                    return Err(dry_run::selector_change(name, &path.display().to_string()));
                }
                if let Some(manager) = managed::apply_manager(live) {
                    return Ok(Request::Apply {
                        manifest: manifest.clone(),
                        manager,
                    });
                }
                let current = serde_json::to_value(live)
                    .map_err(|e| Error::Io(format!("reading the live DaemonSet: {e}")))?;
                let body = dry_run::apply_body(manifest, live);
                match threeway::client_side_apply(&body, &current) {
                    Some(object) => Ok(Request::Replace(object)),
                    None => Ok(Request::Apply {
                        manifest: manifest.clone(),
                        manager: dry_run::FIELD_MANAGER.into(),
                    }),
                }
            }
            Change::Images(images) => Ok(Request::Patch(image_patch(live, images)?)),
        }
    }
}

impl Request {
    async fn send(&self, cluster: &Cluster, live: &DaemonSet) -> Result<dry_run::Pinned> {
        match self {
            Request::Apply { manifest, manager } => {
                dry_run::dry_run_apply(cluster, live, manifest, manager).await
            }
            Request::Replace(object) => dry_run::dry_run_replace(cluster, live, object).await,
            Request::Patch(patch) => dry_run::dry_run_patch(cluster, live, patch).await,
        }
    }

    fn describe(&self) -> DryRun {
        let (method, manager) = match self {
            Request::Apply { manager, .. } => ("ServerSideApply", manager.as_str()),
            Request::Replace(_) => ("ClientSideApply", dry_run::CLIENT_SIDE_APPLY_MANAGER),
            Request::Patch(_) => ("StrategicMergePatch", dry_run::FIELD_MANAGER),
        };
        DryRun {
            method,
            field_manager: manager.to_string(),
        }
    }
}

/// Reads the one DaemonSet manifest of `path` (by the one `-f` reader: YAML or JSON, a List or
/// several documents, `-` for stdin) that is NAME; every refusal names the file.
fn read_manifest(path: &Path, name: &str) -> Result<Value> {
    let shown = crate::filename::shown(path);
    let objects = crate::filename::read_objects(path, "a DaemonSet object")?;
    let kind = |o: &Value| o["kind"].as_str().unwrap_or("").to_string();
    let daemon_sets: Vec<&Value> = objects.iter().filter(|o| kind(o) == "DaemonSet").collect();
    let manifest = match daemon_sets.as_slice() {
        [] => {
            let kinds: Vec<String> = objects
                .iter()
                .map(|o| match kind(o).as_str() {
                    "" => "an object without kind".to_string(),
                    k => k.to_string(),
                })
                .collect();
            let found = if kinds.is_empty() {
                "nothing".to_string()
            } else {
                kinds.join(", ")
            };
            return Err(Error::Input(format!(
                "{shown}: expected a DaemonSet manifest, found {found}"
            )));
        }
        [one] => *one,
        several => several
            .iter()
            .copied()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or(several[0]),
    };
    check_manifest(manifest, path, name)?;
    Ok(manifest.clone())
}

/// apps/v1, named NAME, and a well-formed DaemonSet.
fn check_manifest(manifest: &Value, path: &Path, name: &str) -> Result<()> {
    let shown = crate::filename::shown(path);
    if let Some(v) = manifest["apiVersion"].as_str().filter(|v| *v != "apps/v1") {
        return Err(Error::Input(format!(
            "{shown}: apiVersion {v:?} is not served for DaemonSets; use apps/v1"
        )));
    }
    match manifest["metadata"]["name"].as_str() {
        Some(n) if n == name => {}
        other => {
            return Err(Error::Manifest {
                message: format!(
                    "{shown}: the manifest is daemonset {:?}, not {name:?}",
                    other.unwrap_or("")
                ),
                hint: Some(format!(
                    "rollout-preview compares a new version of the same DaemonSet; to replace {name} by another DaemonSet without restarts, use kubectl ds migrate {name} -f {shown}"
                )),
            })
        }
    }
    serde_json::from_value::<DaemonSet>(manifest.clone())
        .map_err(|e| Error::Input(format!("{shown}: not a valid DaemonSet: {e}")))?;
    Ok(())
}

/// Does the manifest set a selector different from the live one? (The apiserver refuses:
/// spec.selector is immutable in apps/v1.)
fn selector_changes(manifest: &Value, live: &DaemonSet) -> bool {
    let Some(wanted) = manifest.get("spec").and_then(|s| s.get("selector")) else {
        return false;
    };
    let live = live
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.selector).ok())
        .unwrap_or(Value::Null);
    revision::normalise(wanted.clone()) != revision::normalise(live)
}

/// The strategic-merge patch `kubectl set image` sends, checked against the live containers.
fn image_patch(live: &DaemonSet, images: &[(String, String)]) -> Result<Value> {
    let spec = live
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .cloned()
        .unwrap_or_default();
    let names = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<String> {
        cs.iter().map(|c| c.name.clone()).collect()
    };
    let (containers, inits) = (
        names(&spec.containers),
        names(spec.init_containers.as_deref().unwrap_or(&[])),
    );
    let (mut set_containers, mut set_inits) = (Vec::new(), Vec::new());
    for (container, image) in images {
        let entry = |n: &String| json!({"name": n, "image": image});
        let all = container == "*";
        let hits = containers.iter().filter(|n| all || *n == container);
        let init_hits = inits.iter().filter(|n| all || *n == container);
        let before = set_containers.len() + set_inits.len();
        set_containers.extend(hits.map(entry));
        set_inits.extend(init_hits.map(entry));
        if set_containers.len() + set_inits.len() == before {
            let mut known = containers.join(", ");
            if !inits.is_empty() {
                known.push_str(&format!(" (init: {})", inits.join(", ")));
            }
            return Err(Error::Usage(format!(
                "--image {container}={image}: daemonset {:?} has no container {container:?}; its containers: {known}",
                live.metadata.name.as_deref().unwrap_or("")
            )));
        }
    }
    let mut pod_spec = json!({});
    if !set_containers.is_empty() {
        pod_spec["containers"] = json!(set_containers);
    }
    if !set_inits.is_empty() {
        pod_spec["initContainers"] = json!(set_inits);
    }
    Ok(json!({"spec": {"template": {"spec": pod_spec}}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::daemon_set;

    #[test]
    fn a_dropped_max_surge_is_said_with_the_server_version() {
        let manifest: Value = crate::yaml::from_str(
            "spec: {updateStrategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}}",
        )
        .unwrap();
        let change = Change::Manifest {
            path: PathBuf::from("ds.yaml"),
            manifest,
        };
        // As v1.20.2 returns it: maxSurge gone, maxUnavailable kept.
        let dropped: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent}\nspec: {selector: {}, template: {}, updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}}",
        )
        .unwrap();
        let note = change.dropped_surge(&dropped, Some("v1.20.2")).unwrap();
        assert!(
            note.starts_with("Kubernetes v1.20.2 dropped rollingUpdate.maxSurge (1)"),
            "{note}"
        );
        assert!(note.contains("deleted before its replacement"), "{note}");
        // Kept by the server, or not asked for, or an --image change: nothing to say.
        let kept: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent}\nspec: {selector: {}, template: {}, updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}}",
        )
        .unwrap();
        assert_eq!(change.dropped_surge(&kept, Some("v1.35.4")), None);
        let plain = Change::Manifest {
            path: PathBuf::from("ds.yaml"),
            manifest: json!({"spec": {}}),
        };
        assert_eq!(plain.dropped_surge(&dropped, None), None);
        let images = Change::Images(vec![("*".into(), "x:2".into())]);
        assert_eq!(images.dropped_surge(&dropped, None), None);
    }

    const LIVE: &str = "
metadata: {name: agent, namespace: ns}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      initContainers: [{name: setup, image: 'setup:1'}]
      containers: [{name: agent, image: 'agent:1'}, {name: sidecar, image: 'side:1'}]
";

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn read(text: &str, name: &str) -> Result<Value> {
        let f = write(text);
        read_manifest(f.path(), name)
    }

    #[test]
    fn image_patch_sets_named_containers_only() {
        let live = daemon_set(LIVE);
        let p = image_patch(&live, &[("sidecar".into(), "side:2".into())]).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "side:2"}]}}}})
        );
        let all = image_patch(&live, &[("*".into(), "x:9".into())]).unwrap();
        assert_eq!(
            all["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            all["spec"]["template"]["spec"]["initContainers"][0]["name"],
            "setup"
        );
        let err = image_patch(&live, &[("agnet".into(), "a:2".into())]).unwrap_err();
        assert_eq!(err.exit_code(), Exit::Usage);
        assert!(
            err.to_string()
                .contains("its containers: agent, sidecar (init: setup)"),
            "{err}"
        );
    }

    #[test]
    fn manifests_are_checked_before_any_request() {
        let ok = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec: {selector: {matchLabels: {app: agent}}, template: {}}\n";
        assert!(read(ok, "agent").is_ok());
        let e = read(ok, "other").unwrap_err();
        assert!(
            e.to_string()
                .contains("is daemonset \"agent\", not \"other\""),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("kubectl ds migrate other"));
        let e = read(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: agent}\n",
            "agent",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("expected a DaemonSet manifest, found Deployment"),
            "{e}"
        );
        let e = read(
            "kind: DaemonSet\nmetadata: {name: agent}\nspec: {template: {spec: {containers: 7}}}\n",
            "agent",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a valid DaemonSet"), "{e}");
        let e = read("a: [1, 2\nb: c\n", "agent").unwrap_err();
        assert!(e.to_string().contains("not valid YAML"), "{e}");
        let e = read_manifest(Path::new("/nonexistent/ds.yaml"), "agent").unwrap_err();
        assert!(
            e.to_string().starts_with("reading /nonexistent/ds.yaml"),
            "{e}"
        );
        // A List or several documents: the DaemonSet named NAME.
        let list = format!(
            "---\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n{}---\n{}",
            ok,
            ok.replace("name: agent}", "name: other}")
        );
        assert_eq!(read(&list, "other").unwrap()["metadata"]["name"], "other");
    }

    #[test]
    fn only_a_spec_change_or_a_new_object_stops_a_recompute() {
        let first = daemon_set(LIVE);
        let mut status_only = first.clone();
        status_only.metadata.resource_version = Some("99".into());
        status_only.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
        status_only.status = Some(Default::default());
        assert_eq!(spec_moved(&first, &status_only), None);
        let mut spec = first.clone();
        spec.metadata.generation = Some(3);
        spec.spec.as_mut().unwrap().min_ready_seconds = Some(5);
        let why = spec_moved(&first, &spec).unwrap();
        assert!(
            why.contains("its spec changed (generation ? -> 3)"),
            "{why}"
        );
        let mut other = first.clone();
        other.metadata.uid = Some("another".into());
        assert!(spec_moved(&first, &other)
            .unwrap()
            .contains("deleted and created again"));
        // Flipped and flipped back: the same spec under a newer generation still moved.
        let mut gen1 = first.clone();
        gen1.metadata.generation = Some(1);
        let mut back = gen1.clone();
        back.metadata.generation = Some(3);
        let why = spec_moved(&gen1, &back).unwrap();
        assert!(
            why.contains("its spec changed (generation 1 -> 3)"),
            "{why}"
        );
        assert_eq!(spec_moved(&gen1, &gen1.clone()), None);
    }

    #[test]
    fn selector_changes_are_caught() {
        let live = daemon_set(LIVE);
        let same = json!({"spec": {"selector": {"matchLabels": {"app": "agent"}, "matchExpressions": []}}});
        assert!(!selector_changes(&same, &live));
        assert!(
            !selector_changes(&json!({"spec": {}}), &live),
            "no selector: the live one stays"
        );
        let other = json!({"spec": {"selector": {"matchLabels": {"app": "agent2"}}}});
        assert!(selector_changes(&other, &live));
    }
}
