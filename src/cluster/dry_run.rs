//! Server-side dry runs (`dryRun=All`): the admitted, defaulted DaemonSet the apiserver would
//! store for a change, without storing anything. Every request is conditioned on the
//! resourceVersion the preview was computed from; a conflict (409: the object moved since it was
//! read) is returned as [`Conflict`] so the caller can re-read and decide.

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::client::Cluster;
use crate::error::{Error, Result};

/// The field manager kubectl-ds applies as when no server-side applier owns the template.
pub const FIELD_MANAGER: &str = "kubectl-ds";
/// The field manager of a client-side `kubectl apply`.
pub const CLIENT_SIDE_APPLY_MANAGER: &str = "kubectl-client-side-apply";

/// Metadata the server sets: never sent back in an apply body.
const SERVER_SET: [&str; 8] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The server-side apply body for `manifest` over `live`: server-set metadata and status
/// dropped; the live resourceVersion as precondition (none when `live` carries none: an
/// unpinned dry run, see `commands::rollout_preview::dry_run_pinned`).
pub fn apply_body(manifest: &Value, live: &DaemonSet) -> Value {
    let mut body = manifest.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("status");
        obj.insert("apiVersion".into(), json!("apps/v1"));
        obj.insert("kind".into(), json!("DaemonSet"));
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            for k in SERVER_SET {
                meta.remove(k);
            }
            meta.insert("name".into(), json!(live.metadata.name));
            meta.insert("namespace".into(), json!(live.metadata.namespace));
            if let Some(rv) = &live.metadata.resource_version {
                meta.insert("resourceVersion".into(), json!(rv));
            }
        }
    }
    body
}

/// The apiserver answered 409: the DaemonSet's resourceVersion moved since it was read (any
/// write: the controller's status updates too).
#[derive(Debug)]
pub struct Conflict(pub String);

/// The dry-run result, or the conflict that kept the apiserver from computing it.
pub type Pinned = std::result::Result<DaemonSet, Conflict>;

fn pinned(live: &DaemonSet, res: kube::Result<DaemonSet>) -> Result<Pinned> {
    match res {
        Ok(ds) => Ok(Ok(ds)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Err(Conflict(status.message))),
        Err(e) => Err(refusal(live, e)),
    }
}

fn api(cluster: &Cluster, live: &DaemonSet) -> Api<DaemonSet> {
    let ns = live.metadata.namespace.as_deref().unwrap_or("default");
    Api::namespaced(cluster.client.clone(), ns)
}

fn name(live: &DaemonSet) -> &str {
    live.metadata.name.as_deref().unwrap_or("")
}

/// Server-side apply of `manifest` as `manager`, forcing conflicts (as
/// `kubectl apply --server-side --force-conflicts`), with dryRun=All.
pub async fn dry_run_apply(
    cluster: &Cluster,
    live: &DaemonSet,
    manifest: &Value,
    manager: &str,
) -> Result<Pinned> {
    let body = apply_body(manifest, live);
    let pp = PatchParams::apply(manager).dry_run().force();
    let res = api(cluster, live)
        .patch(name(live), &pp, &Patch::Apply(&body))
        .await;
    pinned(live, res)
}

/// A strategic-merge patch (as `kubectl set image`) with dryRun=All.
pub async fn dry_run_patch(cluster: &Cluster, live: &DaemonSet, patch: &Value) -> Result<Pinned> {
    let mut patch = patch.clone();
    if let Some(rv) = &live.metadata.resource_version {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    let pp = PatchParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let res = api(cluster, live)
        .patch(name(live), &pp, &Patch::Strategic(&patch))
        .await;
    pinned(live, res)
}

/// A replace of the whole object (what a client-side apply computed) with dryRun=All; the
/// object carries the live resourceVersion.
pub async fn dry_run_replace(
    cluster: &Cluster,
    live: &DaemonSet,
    object: &Value,
) -> Result<Pinned> {
    let ds: DaemonSet = serde_json::from_value(object.clone())
        .map_err(|e| Error::Input(format!("the merged manifest is not a valid DaemonSet: {e}")))?;
    let pp = PostParams {
        dry_run: true,
        field_manager: Some(CLIENT_SIDE_APPLY_MANAGER.into()),
    };
    let res = api(cluster, live).replace(name(live), &pp, &ds).await;
    pinned(live, res)
}

/// The apiserver's refusals, in the user's terms.
fn refusal(live: &DaemonSet, err: kube::Error) -> Error {
    let what = format!(
        "dry-run of the change to daemonset {}/{}",
        live.metadata.namespace.as_deref().unwrap_or(""),
        name(live)
    );
    let kube::Error::Api(status) = &err else {
        return Error::kube(&what, err);
    };
    match status.code {
        422 if is_selector_immutable(&status.message) => selector_change(name(live), "FILE"),
        400 | 422 => Error::Manifest {
            message: format!("{what}: the apiserver rejects it: {}", status.message),
            hint: None,
        },
        500 if is_unknown_field(&status.message) => Error::Manifest {
            message: format!("{what}: the apiserver rejects it: {}", status.message),
            hint: Some(
                "a field of the manifest is not in this server's schema (written for a newer Kubernetes release?)"
                    .into(),
            ),
        },
        _ => Error::kube(&what, err),
    }
}

/// A server-side apply whose manifest has a field the server's schema lacks (e.g.
/// `rollingUpdate.maxSurge` sent to 1.20): the apiserver answers 500 with this message
/// (apiserver fieldmanager structuredmerge.go Apply: a plain error from ObjectToTyped on the
/// patch, which the handler reports as an internal error). A bad manifest, not a server fault.
fn is_unknown_field(message: &str) -> bool {
    message.starts_with("failed to create typed patch object")
        && message.contains("field not declared in schema")
}

fn is_selector_immutable(message: &str) -> bool {
    message.contains("spec.selector") && message.contains("immutable")
}

/// The error for a manifest (`file`) that changes `spec.selector` (immutable in apps/v1).
pub fn selector_change(name: &str, file: &str) -> Error {
    Error::Manifest {
        message: format!(
            "the manifest changes spec.selector of daemonset {name:?}, which is immutable: no apply can roll it out"
        ),
        hint: Some(format!(
            "to move the pods to a DaemonSet with a new selector without restarting them, use kubectl ds migrate {name} -f {file}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_unknown_to_the_server_is_a_manifest_error() {
        let live: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent, namespace: ns}\nspec: {selector: {}, template: {}}",
        )
        .unwrap();
        // As v1.20.2 answers a server-side apply carrying maxSurge.
        let status = |code: u16, message: &str| {
            kube::Error::Api(
                serde_json::from_value(
                    json!({"status": "Failure", "code": code, "message": message}),
                )
                .unwrap(),
            )
        };
        let msg = "failed to create typed patch object: .spec.updateStrategy.rollingUpdate.maxSurge: field not declared in schema";
        let e = refusal(&live, status(500, msg));
        assert_eq!(e.exit_code(), crate::exit::Exit::Usage);
        assert!(e
            .to_string()
            .contains("the apiserver rejects it: failed to create typed patch object"));
        assert!(e.hint().unwrap().contains("not in this server's schema"));
        // Any other internal error stays one.
        let e = refusal(&live, status(500, "etcdserver: request timed out"));
        assert_ne!(e.exit_code(), crate::exit::Exit::Usage);
    }

    #[test]
    fn apply_body_drops_server_fields_and_pins_the_live_version() {
        let live: DaemonSet = crate::yaml::from_str(
            "metadata: {name: agent, namespace: ns, resourceVersion: '42', uid: u1}\nspec: {selector: {}, template: {}}",
        )
        .unwrap();
        let manifest = json!({
            "metadata": {"name": "agent", "uid": "old", "resourceVersion": "7", "generation": 3,
                "managedFields": [], "labels": {"a": "b"}},
            "spec": {"template": {}},
            "status": {"numberReady": 1}
        });
        let body = apply_body(&manifest, &live);
        assert_eq!(body["apiVersion"], "apps/v1");
        assert_eq!(body["kind"], "DaemonSet");
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["metadata"]["namespace"], "ns");
        assert_eq!(body["metadata"]["labels"]["a"], "b");
        for gone in ["uid", "generation", "managedFields"] {
            assert!(body["metadata"].get(gone).is_none(), "{gone}");
        }
        assert!(body.get("status").is_none());
        // Unpinned (a recompute bracketed by generation): no precondition at all, not even
        // the manifest's own stale resourceVersion.
        let mut unpinned = live.clone();
        unpinned.metadata.resource_version = None;
        let body = apply_body(&manifest, &unpinned);
        assert!(body["metadata"].get("resourceVersion").is_none(), "{body}");
    }

    #[test]
    fn selector_refusal_is_recognised() {
        assert!(is_selector_immutable(
            r#"DaemonSet.apps "agent" is invalid: spec.selector: Invalid value: {"matchLabels":{"app":"x"}}: field is immutable"#
        ));
        assert!(!is_selector_immutable(
            "spec.template.spec.containers: Required value"
        ));
        assert!(selector_change("agent", "x.yaml")
            .hint()
            .unwrap()
            .contains("kubectl ds migrate agent -f x.yaml"));
    }
}
