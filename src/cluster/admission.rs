//! The admitted pod: a server dry-run create (`POST pods?dryRun=All`) of the pod the controller
//! would create returns it after every admission plugin and webhook, and stores nothing. When
//! that is denied (it needs `create pods`) or fails, LimitRanges and the RuntimeClass are read
//! and modelled locally (engine::admission), and the answer says webhooks were not consulted.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, ListParams, PostParams};

use super::client::Cluster;
use crate::engine::admission::{admit_locally, controller_pod, Admission, AdmissionSource};
use crate::engine::placement::template_spec;
use crate::error::Error;

/// The admitted pod spec of `ds` (the new version), once per template.
pub async fn fetch_admitted(cluster: &Cluster, ds: &DaemonSet, node: &str) -> Admission {
    let ns = ds.metadata.namespace.as_deref().unwrap_or("default");
    let pod = controller_pod(ds, node);
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let pp = PostParams {
        dry_run: true,
        field_manager: Some(super::dry_run::FIELD_MANAGER.into()),
    };
    match api.create(&pp, &pod).await {
        Ok(admitted) => Admission {
            source: AdmissionSource::ServerDryRun,
            spec: admitted.spec.unwrap_or_default().into(),
            fallback_reason: None,
            gaps: Vec::new(),
            refused: None,
        },
        Err(kube::Error::Api(status)) if is_refusal(&status) => Admission {
            source: AdmissionSource::ServerDryRun,
            spec: template_spec(ds),
            fallback_reason: None,
            gaps: Vec::new(),
            refused: Some(status.message.clone()),
        },
        Err(e) => {
            let reason = Error::kube("dry-run create of the DaemonSet's pod", e).to_string();
            admit_here(cluster, ds, ns, reason).await
        }
    }
}

/// Does the apiserver refuse the pod itself (admission denied it, or it is invalid), rather
/// than refusing us (RBAC) or failing? A quota refusal is not one: during the rollout the old
/// pods go first and free their share.
fn is_refusal(status: &kube::core::Status) -> bool {
    let m = &status.message;
    matches!(status.code, 400 | 403 | 422)
        && !m.contains("cannot create resource")
        && !m.contains("exceeded quota")
        && !m.contains("failed calling webhook")
}

/// The local model: the namespace's LimitRanges and the pod's RuntimeClass, each read if allowed.
async fn admit_here(cluster: &Cluster, ds: &DaemonSet, ns: &str, reason: String) -> Admission {
    let spec = template_spec(ds);
    let mut gaps = Vec::new();
    let lr_api: Api<LimitRange> = Api::namespaced(cluster.client.clone(), ns);
    let limit_ranges = match lr_api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            // The LimitRanger's lister order: by name.
            items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            items
        }
        Err(e) => {
            gaps.push(format!(
                "LimitRange defaults not applied: {}",
                Error::kube("listing limitranges", e)
            ));
            Vec::new()
        }
    };
    let mut runtime_class = None;
    if let Some(name) = spec.runtime_class_name.as_deref() {
        let rc_api: Api<RuntimeClass> = Api::all(cluster.client.clone());
        match rc_api.get_opt(name).await {
            Ok(Some(rc)) => runtime_class = Some(rc),
            Ok(None) => gaps.push(format!(
                "RuntimeClass {name:?} does not exist: the apiserver will refuse the pod"
            )),
            Err(e) => gaps.push(format!(
                "RuntimeClass overhead not applied: {}",
                Error::kube(&format!("reading runtimeclass {name}"), e)
            )),
        }
    }
    Admission {
        source: AdmissionSource::Local,
        spec: admit_locally(&spec, &limit_ranges, runtime_class.as_ref()),
        fallback_reason: Some(reason),
        gaps,
        refused: None,
    }
}
