//! The pod the scheduler sees is the *admitted* pod: LimitRanger fills default requests and
//! limits, RuntimeClass admission adds `spec.overhead`, mutating webhooks inject sidecars. Fit
//! checks must use that pod, not the raw template.
//!
//! Two ways to get it: the apiserver's own answer to a server dry-run create of the pod the
//! controller would create (every admission plugin and webhook runs; see
//! `cluster::admission`), or, when that is denied or fails, a local model of the two built-in
//! plugins that change resources (LimitRanger and RuntimeClass; webhooks are not consulted).

use std::collections::BTreeMap;

use crate::engine::model::{Container, PodSpec};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    self as api, Affinity, LimitRange, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ResourceRequirements,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::revision::{template_generation, TEMPLATE_GENERATION_LABEL};
use super::taints;

/// How the admitted pod was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdmissionSource {
    /// `POST pods?dryRun=All`: the apiserver ran every admission plugin and webhook.
    ServerDryRun,
    /// The server dry run was denied or failed: LimitRange defaults and RuntimeClass overhead
    /// modelled here; mutating webhooks were not consulted.
    Local,
}

/// The admitted pod spec the fit checks use, and how it was obtained.
#[derive(Debug, Clone)]
pub struct Admission {
    pub source: AdmissionSource,
    pub spec: PodSpec,
    /// Why the server dry run was not used (its error), for `Local`.
    pub fallback_reason: Option<String>,
    /// What the local model could not read (LimitRanges or the RuntimeClass), for `Local`.
    pub gaps: Vec<String>,
    /// The apiserver refuses the pod itself (a webhook or admission plugin denies it, it is
    /// invalid): the controller's creates will fail the same way (FailedCreate).
    pub refused: Option<String>,
}

/// What `-o json` reports about admission (`admission` in a RolloutPreview document).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionInfo {
    pub source: AdmissionSource,
    pub webhooks_consulted: bool,
    pub fallback_reason: Option<String>,
    pub gaps: Vec<String>,
    pub refused: Option<String>,
}

impl Admission {
    pub fn info(&self) -> AdmissionInfo {
        AdmissionInfo {
            source: self.source,
            webhooks_consulted: self.source == AdmissionSource::ServerDryRun,
            fallback_reason: self.fallback_reason.clone(),
            gaps: self.gaps.clone(),
            refused: self.refused.clone(),
        }
    }
}

impl AdmissionInfo {
    /// One line for the table header.
    pub fn describe(&self) -> String {
        match self.source {
            AdmissionSource::ServerDryRun => match &self.refused {
                Some(m) => format!("the apiserver refuses the pod the controller would create (server dry-run create): {m}"),
                None => "fit checked with the admitted pod (server dry-run create: every admission plugin and webhook ran)".into(),
            },
            AdmissionSource::Local => {
                let mut s = String::from(
                    "fit checked with LimitRange defaults and RuntimeClass overhead modelled locally; mutating webhooks were NOT consulted",
                );
                if let Some(r) = &self.fallback_reason {
                    s.push_str(&format!(" (server dry run failed: {r})"));
                }
                for g in &self.gaps {
                    s.push_str(&format!("; {g}"));
                }
                s
            }
        }
    }
}

/// The pod the controller would create on `node` (without ownerReference and revision hash,
/// which admission does not depend on), for a server dry-run create.
/// mirrors daemonset_util.go CreatePodTemplate (tolerations, pod-template-generation label),
/// daemon_controller.go syncNodes (ReplaceDaemonSetPodNodeNameNodeAffinity) and
/// controller_utils.go GetPodFromTemplate (labels, annotations, generateName "<ds>-").
pub fn controller_pod(ds: &DaemonSet, node: &str) -> api::Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    spec.tolerations = Some(taints::effective_tolerations(&PodSpec::from(spec.clone())));
    pin_to_node(&mut spec, node);
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    let prefix = format!("{}-", ds.metadata.name.as_deref().unwrap_or("daemonset"));
    api::Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// mirrors daemonset_util.go ReplaceDaemonSetPodNodeNameNodeAffinity: the required node
/// affinity becomes one term `metadata.name In [node]` (preferred terms are kept).
fn pin_to_node(spec: &mut api::PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        ..Default::default()
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The local model of the admission plugins that change a pod's resources.
pub fn admit_locally(
    spec: &PodSpec,
    limit_ranges: &[LimitRange],
    runtime_class: Option<&RuntimeClass>,
) -> PodSpec {
    let mut spec = spec.clone();
    apply_limit_ranges(&mut spec, limit_ranges);
    apply_runtime_class(&mut spec, runtime_class);
    spec
}

/// mirrors plugin/pkg/admission/limitranger admission.go defaultContainerResourceRequirements
/// and mergeContainerResources: for every LimitRange item of type Container, `default` fills
/// missing limits and `defaultRequest` missing requests, in app and init containers; the first
/// LimitRange that sets a resource wins (later ones find it set). The apiserver has already
/// defaulted each LimitRange (defaultRequest = default when only default is given).
fn apply_limit_ranges(spec: &mut PodSpec, limit_ranges: &[LimitRange]) {
    for lr in limit_ranges {
        for item in lr.spec.iter().flat_map(|s| s.limits.iter()) {
            if item.type_ != "Container" {
                continue;
            }
            let defaults = (item.default.as_ref(), item.default_request.as_ref());
            for c in spec.containers.iter_mut() {
                merge_defaults(c, defaults);
            }
            for c in spec.init_containers.iter_mut().flatten() {
                merge_defaults(c, defaults);
            }
        }
    }
}

type Defaults<'a> = (
    Option<&'a BTreeMap<String, Quantity>>,
    Option<&'a BTreeMap<String, Quantity>>,
);

fn merge_defaults(c: &mut Container, (default_limits, default_requests): Defaults) {
    let res = std::sync::Arc::make_mut(
        c.resources
            .get_or_insert_with(|| std::sync::Arc::new(ResourceRequirements::default())),
    );
    // Pod defaulting ran before admission (core/v1 defaults.go SetDefaults_Pod): a request
    // missing where a limit is set is the limit. The raw template has not been through it.
    if let Some(limits) = res.limits.clone() {
        let requests = res.requests.get_or_insert_with(BTreeMap::new);
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
    fill(&mut res.limits, default_limits);
    fill(&mut res.requests, default_requests);
}

/// Sets every resource of `from` that `into` lacks.
fn fill(into: &mut Option<BTreeMap<String, Quantity>>, from: Option<&BTreeMap<String, Quantity>>) {
    let Some(from) = from.filter(|f| !f.is_empty()) else {
        return;
    };
    let into = into.get_or_insert_with(BTreeMap::new);
    for (k, v) in from {
        into.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// mirrors plugin/pkg/admission/runtimeclass admission.go setOverhead: the pod's
/// `spec.overhead` becomes the RuntimeClass's `overhead.podFixed`.
fn apply_runtime_class(spec: &mut PodSpec, runtime_class: Option<&RuntimeClass>) {
    let Some(fixed) = runtime_class
        .and_then(|rc| rc.overhead.as_ref())
        .and_then(|o| o.pod_fixed.clone())
    else {
        return;
    };
    if spec.overhead.is_none() {
        spec.overhead = Some(fixed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fit::pod_requests;
    use crate::engine::testutil::{daemon_set, pod_spec};

    fn limit_range(yaml: &str) -> LimitRange {
        crate::yaml::from_str(yaml).unwrap()
    }

    const LR: &str = "
metadata: {name: defaults, namespace: ns}
spec:
  limits:
  - type: Container
    default: {cpu: '1', memory: 256Mi}
    defaultRequest: {cpu: 500m, memory: 128Mi}
  - type: Pod
    max: {cpu: '4'}
";

    #[test]
    fn limit_range_defaults_fill_only_what_is_missing() {
        let spec = pod_spec(
            "
initContainers: [{name: init}]
containers:
- {name: bare}
- {name: own, resources: {requests: {cpu: 100m}}}
- {name: limited, resources: {limits: {cpu: 200m}}}
",
        );
        let out = admit_locally(&spec, &[limit_range(LR)], None);
        let req = |i: usize| {
            out.containers[i]
                .resources
                .as_ref()
                .unwrap()
                .requests
                .clone()
                .unwrap()
        };
        assert_eq!(req(0)["cpu"].0, "500m");
        assert_eq!(req(0)["memory"].0, "128Mi");
        assert_eq!(req(1)["cpu"].0, "100m", "an own request is kept");
        assert_eq!(
            req(2)["cpu"].0,
            "200m",
            "a request defaulted from the container's own limit is not replaced"
        );
        let init = out.init_containers.as_ref().unwrap()[0]
            .resources
            .as_deref()
            .cloned()
            .unwrap();
        assert_eq!(init.limits.unwrap()["cpu"].0, "1");
        // 500m + 100m + 200m for the app containers.
        assert_eq!(pod_requests(&out)["cpu"], 800);
        // Another LimitRange listed later does not override what the first set.
        let second = limit_range(
            "metadata: {name: z}\nspec: {limits: [{type: Container, defaultRequest: {cpu: '3'}}]}",
        );
        let out2 = admit_locally(&spec, &[limit_range(LR), second], None);
        assert_eq!(pod_requests(&out2)["cpu"], 800);
    }

    #[test]
    fn runtime_class_overhead_counts_in_requests() {
        let rc: RuntimeClass = crate::yaml::from_str(
            "metadata: {name: kata}\nhandler: kata\noverhead: {podFixed: {cpu: 250m, memory: 120Mi}}",
        )
        .unwrap();
        let spec = pod_spec(
            "runtimeClassName: kata\ncontainers: [{name: c, resources: {requests: {cpu: 100m}}}]",
        );
        let out = admit_locally(&spec, &[], Some(&rc));
        assert_eq!(out.overhead.as_ref().unwrap()["cpu"].0, "250m");
        // mirrors resource.PodRequests: requests + overhead.
        assert_eq!(pod_requests(&out)["cpu"], 350);
        assert_eq!(pod_requests(&out)["memory"], 120 * 1024 * 1024 * 1000);
    }

    #[test]
    fn controller_pod_is_pinned_and_tolerates() {
        let ds = daemon_set(
            r#"
metadata:
  name: agent
  namespace: ns
  annotations: {deprecated.daemonset.template.generation: "3"}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}, annotations: {a: b}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: role, operator: In, values: [x]}]}]
      containers: [{name: agent, image: "agent:1"}]
"#,
        );
        let p = controller_pod(&ds, "n1");
        assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["pod-template-generation"],
            "3"
        );
        let spec = p.spec.unwrap();
        let terms = &spec
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1, "the template's terms are replaced");
        assert_eq!(
            terms[0].match_fields.as_ref().unwrap()[0].values,
            Some(vec!["n1".into()])
        );
        assert!(spec
            .tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some(taints::UNSCHEDULABLE)));
    }
}
