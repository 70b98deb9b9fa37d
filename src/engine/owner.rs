//! The owner of record of a DaemonSet: a package manager (Helm), a GitOps controller (Argo CD,
//! Flux) or an operator (an ownerReference) that recreates or prunes it behind kubectl-ds's
//! back. Read from the markers those tools write on the objects they manage; each finding comes
//! with the steps that hand the object over safely.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde::{Deserialize, Serialize};

use super::safety::{Check, CheckCode, ALLOW_MANAGED};

pub const HELM_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
pub const ARGO_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const FLUX_KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io/";
pub const FLUX_HELM: &str = "helm.toolkit.fluxcd.io/";

/// The tool that owns a DaemonSet, with what its markers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "camelCase")]
pub enum OwnerOfRecord {
    /// `meta.helm.sh/release-name` (+ `-namespace`) annotations or `managed-by: Helm`.
    Helm {
        release: Option<String>,
        namespace: Option<String>,
    },
    /// `argocd.argoproj.io/tracking-id` (annotation tracking); `ambiguous` when only the
    /// `app.kubernetes.io/instance` label says so (label tracking, which Helm charts and others
    /// set too).
    ArgoCd {
        application: String,
        ambiguous: bool,
    },
    /// `kustomize.toolkit.fluxcd.io/*` or `helm.toolkit.fluxcd.io/*` labels.
    Flux {
        kind: String,
        name: String,
        namespace: Option<String>,
    },
    /// An ownerReference: the object's parent (an operator's custom resource, usually).
    Operator {
        kind: String,
        name: String,
        controller: bool,
    },
}

impl OwnerOfRecord {
    /// One line: who owns it and how we know.
    pub fn describe(&self) -> String {
        match self {
            OwnerOfRecord::Helm { release, namespace } => match (release, namespace) {
                (Some(r), Some(n)) => format!("Helm release {r} (namespace {n})"),
                (Some(r), None) => format!("Helm release {r}"),
                _ => format!("Helm ({HELM_MANAGED_BY}: Helm)"),
            },
            OwnerOfRecord::ArgoCd {
                application,
                ambiguous: false,
            } => format!("Argo CD application {application} ({ARGO_TRACKING_ID})"),
            OwnerOfRecord::ArgoCd {
                application,
                ambiguous: true,
            } => format!(
                "possibly Argo CD application {application} (label {INSTANCE_LABEL}={application}: Argo CD's label tracking sets it, but so do Helm charts and other tools, so this is ambiguous)"
            ),
            OwnerOfRecord::Flux {
                kind,
                name,
                namespace,
            } => match namespace {
                Some(n) => format!("Flux {kind} {n}/{name}"),
                None => format!("Flux {kind} {name}"),
            },
            OwnerOfRecord::Operator {
                kind,
                name,
                controller,
            } => format!(
                "{kind} {name} ({}ownerReference)",
                if *controller { "controller " } else { "" }
            ),
        }
    }

    /// What to do before letting kubectl-ds replace the object, so the tool neither recreates
    /// the old one nor prunes the new one. `old`/`new`: the DaemonSet names; `ns`: namespace.
    pub fn handoff(&self, ns: &str, old: &str, new: &str) -> Vec<String> {
        match self {
            OwnerOfRecord::Helm { release, namespace } => {
                let r = release.as_deref().unwrap_or("<release>");
                let n = namespace.as_deref().unwrap_or(ns);
                vec![
                    format!("do not run helm upgrade or rollback of release {r} until this has finished (it would recreate daemonset {old})"),
                    format!("change the chart to render daemonset {new} instead of {old}, and put Helm's ownership metadata on {new}'s manifest: label {HELM_MANAGED_BY}=Helm, annotations {HELM_RELEASE_NAME}={r} and {HELM_RELEASE_NAMESPACE}={n}; the next helm upgrade then adopts it (or use helm upgrade --take-ownership, Helm 3.17+)"),
                    format!("run this command again with {ALLOW_MANAGED}"),
                ]
            }
            OwnerOfRecord::ArgoCd { application, .. } => vec![
                format!("suspend automated sync of Argo CD application {application} (argocd app set {application} --sync-policy none), or it recreates {old} and prunes {new}"),
                format!("change the application's source to hold daemonset {new} instead of {old}"),
                format!("run this command again with {ALLOW_MANAGED}, then re-enable sync (argocd app set {application} --sync-policy automated)"),
            ],
            OwnerOfRecord::Flux { kind, name, namespace } => {
                let n = namespace.as_deref().unwrap_or(ns);
                let what = kind.to_ascii_lowercase();
                vec![
                    format!("suspend it: flux suspend {what} {name} -n {n} (or it recreates {old} and prunes {new})"),
                    format!("change its source to hold daemonset {new} instead of {old}"),
                    format!("run this command again with {ALLOW_MANAGED}, then: flux resume {what} {name} -n {n}"),
                ]
            }
            OwnerOfRecord::Operator { kind, name, .. } => vec![
                format!("pause or scale down the operator that reconciles {kind} {name}, or change that resource instead (it may recreate {old} and take the pods back)"),
                format!("run this command again with {ALLOW_MANAGED}"),
            ],
        }
    }
}

fn flux(ds: &DaemonSet, prefix: &str, kind: &str) -> Option<OwnerOfRecord> {
    let labels = ds.metadata.labels.as_ref()?;
    if !labels.keys().any(|k| k.starts_with(prefix)) {
        return None;
    }
    let get = |k: &str| labels.get(&format!("{prefix}{k}")).cloned();
    Some(OwnerOfRecord::Flux {
        kind: kind.into(),
        name: get("name").unwrap_or_else(|| "<unknown>".into()),
        namespace: get("namespace"),
    })
}

/// Every owner of record the DaemonSet's metadata names.
pub fn owners_of_record(ds: &DaemonSet) -> Vec<OwnerOfRecord> {
    let m = &ds.metadata;
    let label = |k: &str| m.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let annotation = |k: &str| m.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let mut out = Vec::new();
    for r in m.owner_references.iter().flatten() {
        out.push(OwnerOfRecord::Operator {
            kind: r.kind.clone(),
            name: r.name.clone(),
            controller: r.controller == Some(true),
        });
    }
    let release = annotation(HELM_RELEASE_NAME);
    let helm = release.is_some() || label(HELM_MANAGED_BY).is_some_and(|v| v == "Helm");
    if helm {
        out.push(OwnerOfRecord::Helm {
            release,
            namespace: annotation(HELM_RELEASE_NAMESPACE),
        });
    }
    // The tracking id reads `<app>:<group>/<kind>:<namespace>/<name>`; the app may carry a
    // `<namespace>_` prefix (apps in any namespace).
    if let Some(id) = annotation(ARGO_TRACKING_ID) {
        let app = id.split(':').next().unwrap_or(&id).to_string();
        out.push(OwnerOfRecord::ArgoCd {
            application: app,
            ambiguous: false,
        });
    } else if let Some(instance) = label(INSTANCE_LABEL) {
        if !helm {
            out.push(OwnerOfRecord::ArgoCd {
                application: instance,
                ambiguous: true,
            });
        }
    }
    out.extend(flux(ds, FLUX_KUSTOMIZE, "Kustomization"));
    out.extend(flux(ds, FLUX_HELM, "HelmRelease"));
    out
}

/// Blocks when a tool owns the DaemonSet: it would recreate it mid-way (two pods per node) or
/// prune the new one (with background cascade: every adopted pod deleted).
pub fn check_owner_of_record(ds: &DaemonSet, new_name: Option<&str>) -> Check {
    let owners = owners_of_record(ds);
    if owners.is_empty() {
        return Check::ok(
            CheckCode::OwnerOfRecord,
            "no Helm, Argo CD, Flux or ownerReference marker: no tool is known to reconcile the DaemonSet",
        );
    }
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");
    let old = ds.metadata.name.as_deref().unwrap_or("");
    let new = new_name.unwrap_or("<new name>");
    let who: Vec<String> = owners.iter().map(OwnerOfRecord::describe).collect();
    let mut handoff: Vec<String> = Vec::new();
    for o in &owners {
        for step in o.handoff(ns, old, new) {
            if !handoff.contains(&step) {
                handoff.push(step);
            }
        }
    }
    let mut c = Check::block(
        CheckCode::OwnerOfRecord,
        format!(
            "daemonset {old} is managed by {}: it may recreate the old DaemonSet or prune the new one mid-way; hand it over first",
            who.join(" and ")
        ),
        Some(ALLOW_MANAGED),
    );
    c.handoff = handoff;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::safety::Verdict;
    use crate::engine::testutil::daemon_set;

    #[test]
    fn helm_release_is_named_with_its_hand_off() {
        let ds = daemon_set(
            "metadata: {name: agent, namespace: logging, labels: {app.kubernetes.io/managed-by: Helm, app.kubernetes.io/instance: rel}, annotations: {meta.helm.sh/release-name: rel, meta.helm.sh/release-namespace: logging}}",
        );
        assert_eq!(
            owners_of_record(&ds),
            vec![OwnerOfRecord::Helm {
                release: Some("rel".into()),
                namespace: Some("logging".into())
            }],
            "the instance label of a Helm chart is not read as Argo CD"
        );
        let c = check_owner_of_record(&ds, Some("agent-v2"));
        assert_eq!(c.verdict, Verdict::Block);
        assert_eq!(c.override_flag.as_deref(), Some(ALLOW_MANAGED));
        assert!(
            c.message.contains("Helm release rel (namespace logging)"),
            "{}",
            c.message
        );
        assert!(c
            .handoff
            .iter()
            .any(|s| s.contains("meta.helm.sh/release-name=rel")
                && s.contains("agent-v2")
                && s.contains("--take-ownership")));
    }

    #[test]
    fn argo_cd_tracking_id_and_the_ambiguous_instance_label() {
        let tracked = daemon_set(
            "metadata: {name: agent, annotations: {argocd.argoproj.io/tracking-id: 'infra:apps/DaemonSet:logging/agent'}}",
        );
        assert_eq!(
            owners_of_record(&tracked),
            vec![OwnerOfRecord::ArgoCd {
                application: "infra".into(),
                ambiguous: false
            }]
        );
        let labelled =
            daemon_set("metadata: {name: agent, labels: {app.kubernetes.io/instance: infra}}");
        let c = check_owner_of_record(&labelled, None);
        assert_eq!(c.verdict, Verdict::Block);
        assert!(c.message.contains("ambiguous"), "{}", c.message);
        assert!(c.handoff[0].contains("argocd app set infra --sync-policy none"));
    }

    #[test]
    fn flux_and_operators() {
        let ds = daemon_set(
            "metadata: {name: agent, labels: {kustomize.toolkit.fluxcd.io/name: infra, kustomize.toolkit.fluxcd.io/namespace: flux-system}, ownerReferences: [{apiVersion: x/v1, kind: Agent, name: op, uid: u, controller: true}]}",
        );
        let owners = owners_of_record(&ds);
        assert_eq!(owners.len(), 2);
        let c = check_owner_of_record(&ds, Some("b"));
        assert!(
            c.message.contains("Agent op (controller ownerReference)"),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("Flux Kustomization flux-system/infra"),
            "{}",
            c.message
        );
        assert!(c
            .handoff
            .iter()
            .any(|s| s.contains("flux suspend kustomization infra -n flux-system")));
        let helm_release =
            daemon_set("metadata: {name: a, labels: {helm.toolkit.fluxcd.io/name: r}}");
        assert!(
            matches!(&owners_of_record(&helm_release)[..], [OwnerOfRecord::Flux { kind, .. }] if kind == "HelmRelease")
        );
    }

    #[test]
    fn an_unmarked_daemon_set_passes() {
        let ds = daemon_set("metadata: {name: agent, labels: {app: agent}}");
        assert_eq!(check_owner_of_record(&ds, None).verdict, Verdict::Ok);
    }
}
