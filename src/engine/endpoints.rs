//! `endpoints NAME`: how clients reach a DaemonSet's pods, node by node: pod IP, host IP and
//! host ports, readiness, and the Services that select the pods with their EndpointSlice
//! membership; mismatches are reasons.

use std::collections::BTreeMap;

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;

use super::explain::API_VERSION;
use super::podstate;
use super::snapshot::is_claimed_by;

/// The cluster's DNS domain is not readable through the API (it is a kubelet and DNS server
/// setting): the usual default is assumed and the output says so.
pub const ASSUMED_CLUSTER_DOMAIN: &str = "cluster.local";

/// The label an EndpointSlice names its Service with (discovery.k8s.io/v1 LabelServiceName).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A finding: a stable code, a message, and the facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Selector keys the pods miss, or carry with another value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
}

impl Finding {
    fn new(code: &'static str, message: String) -> Self {
        Finding {
            code,
            message,
            service: None,
            keys: Vec::new(),
            ports: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortInfo {
    pub name: Option<String>,
    pub port: i32,
    pub target_port: Option<String>,
    pub protocol: String,
}

/// A Service that selects the DaemonSet's pods, nearly does (shares a label with them but
/// misses on another), or lists them in its EndpointSlices without a selector.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub headless: bool,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    pub selector: BTreeMap<String, String>,
    /// The selector matches the pod template's labels.
    pub selects_pods: bool,
    pub publish_not_ready_addresses: bool,
    /// `NAME.NAMESPACE.svc.<cluster domain>`; the domain is assumed (see notes).
    pub dns_name: String,
    pub ports: Vec<ServicePortInfo>,
    /// The EndpointSlices labelled with this Service's name.
    pub endpoint_slices: Vec<String>,
    pub reasons: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPortInfo {
    pub container: String,
    pub name: Option<String>,
    pub container_port: i32,
    pub host_port: i32,
    pub protocol: String,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// One pod's place in one Service's EndpointSlices.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub service: String,
    /// The Service's selector matches this pod's labels.
    pub selected: bool,
    /// The EndpointSlice that lists the pod (by targetRef, else by address), if any.
    pub endpoint_slice: Option<String>,
    /// That endpoint's `conditions.ready` (absent means ready, as the API says).
    pub ready_in_slice: Option<bool>,
    /// What the EndpointSlice controller writes for this pod: listed or not, and ready.
    pub expected_listed: bool,
    pub expected_ready: bool,
    /// The pod receives this Service's traffic / is in its DNS answer (listed and ready).
    pub serving: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodEndpoint {
    pub node: String,
    pub pod: String,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    pub host_network: bool,
    pub ready: bool,
    pub host_ports: Vec<HostPortInfo>,
    pub services: Vec<Membership>,
    pub reasons: Vec<Finding>,
}

/// The `kubectl-ds/v1` `Endpoints` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub cluster_domain: &'static str,
    pub notes: Vec<String>,
    pub services: Vec<ServiceInfo>,
    pub nodes: Vec<PodEndpoint>,
}

fn template_labels(ds: &DaemonSet) -> BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// A Service selector matches labels: every pair present with the same value (a Service
/// selector is a plain map). An empty selector selects nothing (no EndpointSlices are managed).
fn selector_matches(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The selector keys the labels miss: `key (not on the pods)` or `key=want (pods have got)`.
fn missed_keys(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> Vec<String> {
    sel.iter()
        .filter(|(k, v)| labels.get(*k) != Some(*v))
        .map(|(k, v)| match labels.get(k) {
            None => format!("{k}={v} (the pods have no {k} label)"),
            Some(got) => format!("{k}={v} (the pods have {k}={got})"),
        })
        .collect()
}

/// mirrors endpointslice utils.go ShouldPodBeInEndpoints(pod, includeTerminating=true): a pod
/// with an IP, not in a terminal phase.
fn should_be_listed(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    has_ip && !matches!(podstate::phase(pod), "Succeeded" | "Failed")
}

/// mirrors endpointslice utils.go podToEndpoint:
/// `ready := service.Spec.PublishNotReadyAddresses || (serving && !terminating)`
fn expected_ready(pod: &Pod, publish_not_ready: bool) -> bool {
    publish_not_ready || (podstate::is_ready(pod) && !podstate::is_terminating(pod))
}

/// The slice and endpoint readiness listing the pod: by targetRef UID or name, else by address.
fn find_in_slices<'a>(pod: &Pod, slices: &[&'a EndpointSlice]) -> Option<(&'a str, Option<bool>)> {
    let uid = pod.metadata.uid.as_deref();
    let name = pod.metadata.name.as_deref();
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
    for slice in slices {
        for ep in &slice.endpoints {
            let by_ref = ep.target_ref.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Pod")
                    && ((uid.is_some() && r.uid.as_deref() == uid) || r.name.as_deref() == name)
            });
            let by_ip = ip.is_some_and(|ip| ep.addresses.iter().any(|a| a == ip));
            if by_ref || (ep.target_ref.is_none() && by_ip) {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready);
                return Some((slice.metadata.name.as_deref().unwrap_or(""), ready));
            }
        }
    }
    None
}

/// Host ports of the pod: container ports with a hostPort, and on hostNetwork every container
/// port (mirrors core/v1 defaults.go defaultHostNetworkPorts).
fn host_ports(pod: &Pod) -> Vec<HostPortInfo> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network == Some(true);
    let mut out = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let host_port = match p.host_port {
                Some(h) if h > 0 => h,
                _ if host_network => p.container_port,
                _ => continue,
            };
            out.push(HostPortInfo {
                container: c.name.clone(),
                name: p.name.clone(),
                container_port: p.container_port,
                host_port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                host_ip: p.host_ip.clone().filter(|ip| !ip.is_empty()),
            });
        }
    }
    out
}

fn service_info(
    svc: &Service,
    ns: &str,
    pod_labels: &BTreeMap<String, String>,
    slices: &[&EndpointSlice],
) -> ServiceInfo {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let selects_pods = selector_matches(&selector, pod_labels);
    let mut reasons = Vec::new();
    if !selector.is_empty() && !selects_pods {
        let keys = missed_keys(&selector, pod_labels);
        let mut f = Finding::new(
            "ServiceSelectorMisses",
            format!(
                "Service {name} shares labels with the pods but its selector misses them on {}: \
                 it sends them no traffic",
                keys.join(", ")
            ),
        );
        f.service = Some(name.clone());
        f.keys = keys;
        reasons.push(f);
    }
    ServiceInfo {
        dns_name: format!("{name}.{ns}.svc.{ASSUMED_CLUSTER_DOMAIN}"),
        headless: spec.cluster_ip.as_deref() == Some("None"),
        type_: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.cluster_ip.clone(),
        publish_not_ready_addresses: spec.publish_not_ready_addresses == Some(true),
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| ServicePortInfo {
                name: p.name.clone(),
                port: p.port,
                target_port: p.target_port.as_ref().map(|t| match t {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                        i.to_string()
                    }
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                        s.clone()
                    }
                }),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
            .collect(),
        endpoint_slices: slices
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect(),
        name,
        selector,
        selects_pods,
        reasons,
    }
}

/// Is the Service about these pods: its selector matches them or shares a label pair with them,
/// or its EndpointSlices list one of them?
fn is_relevant(
    svc: &Service,
    pod_labels: &BTreeMap<String, String>,
    pods: &[&Pod],
    slices: &[&EndpointSlice],
) -> bool {
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let shares = selector.iter().any(|(k, v)| pod_labels.get(k) == Some(v));
    shares || pods.iter().any(|p| find_in_slices(p, slices).is_some())
}

fn membership(pod: &Pod, svc: &ServiceInfo, slices: &[&EndpointSlice]) -> Membership {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let selected = selector_matches(&svc.selector, &labels);
    let found = find_in_slices(pod, slices);
    let expected_listed = selected && should_be_listed(pod);
    let expected_ready = expected_listed && expected_ready(pod, svc.publish_not_ready_addresses);
    let ready_in_slice = found.and_then(|(_, r)| r);
    Membership {
        service: svc.name.clone(),
        selected,
        endpoint_slice: found.map(|(s, _)| s.to_string()),
        ready_in_slice,
        expected_listed,
        expected_ready,
        serving: found.is_some() && ready_in_slice != Some(false),
    }
}

fn pod_reasons(ep: &PodEndpoint) -> Vec<Finding> {
    let mut out = Vec::new();
    let host_network = ep.host_network;
    let mapped: Vec<i32> = ep
        .host_ports
        .iter()
        .filter(|_| !host_network)
        .map(|h| h.host_port)
        .collect();
    if !mapped.is_empty() {
        let mut f = Finding::new(
            "HostPortWithoutHostNetwork",
            format!(
                "hostPort {} without hostNetwork: reachable on the host IP only if the CNI plugin \
                 maps host ports (the portmap plugin); whether it does cannot be known from the API",
                join_ints(&mapped)
            ),
        );
        f.ports = mapped;
        out.push(f);
    }
    if ep.pod_ip.is_none() {
        out.push(Finding::new(
            "NoPodIP",
            "the pod has no IP yet: no EndpointSlice lists it".into(),
        ));
    }
    if !ep.ready && ep.pod_ip.is_some() {
        let services: Vec<&str> = ep
            .services
            .iter()
            .filter(|m| m.selected && !m.expected_ready)
            .map(|m| m.service.as_str())
            .collect();
        let mut message = "the pod is not Ready".to_string();
        if !services.is_empty() {
            message.push_str(&format!(
                ": listed not-ready in the EndpointSlices of {}, so absent from their traffic \
                 and DNS answers",
                services.join(", ")
            ));
        }
        out.push(Finding::new("PodNotReady", message));
    }
    for m in &ep.services {
        let listed = m.endpoint_slice.is_some();
        let slice_ready = listed && m.ready_in_slice != Some(false);
        if m.expected_listed != listed || (listed && m.expected_ready != slice_ready) {
            let mut f = Finding::new(
                "EndpointSliceOutOfDate",
                format!(
                    "Service {}: expected {} in its EndpointSlices, found {} (the EndpointSlice \
                     controller has not caught up, or another writer manages them)",
                    m.service,
                    listing(m.expected_listed, m.expected_ready),
                    listing(listed, slice_ready)
                ),
            );
            f.service = Some(m.service.clone());
            out.push(f);
        }
    }
    out
}

fn listing(listed: bool, ready: bool) -> &'static str {
    match (listed, ready) {
        (false, _) => "unlisted",
        (true, true) => "listed ready",
        (true, false) => "listed not ready",
    }
}

fn join_ints(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

/// The document: every pod of the DaemonSet (one row per node), the Services about them.
pub fn endpoints(
    ds: &DaemonSet,
    pods: &[Pod],
    services: &[Service],
    slices: &[EndpointSlice],
) -> Endpoints {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let labels = template_labels(ds);
    let own: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_claimed_by(ds, &p.metadata))
        .collect();
    let slices_of = |svc: &str| -> Vec<&EndpointSlice> {
        slices
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .map(String::as_str)
                    == Some(svc)
            })
            .collect()
    };
    let mut svc_infos: Vec<(ServiceInfo, Vec<&EndpointSlice>)> = services
        .iter()
        .filter_map(|svc| {
            let name = svc.metadata.name.as_deref().unwrap_or("");
            let its = slices_of(name);
            is_relevant(svc, &labels, &own, &its)
                .then(|| (service_info(svc, &ns, &labels, &its), its))
        })
        .collect();
    svc_infos.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut nodes: Vec<PodEndpoint> = own
        .iter()
        .map(|pod| {
            let status = pod.status.as_ref();
            let mut ep = PodEndpoint {
                node: podstate::target_node(pod).unwrap_or_default(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                pod_ip: status
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|s| !s.is_empty()),
                host_ip: status
                    .and_then(|s| s.host_ip.clone())
                    .filter(|s| !s.is_empty()),
                host_network: pod.spec.as_ref().and_then(|s| s.host_network) == Some(true),
                ready: podstate::is_ready(pod),
                host_ports: host_ports(pod),
                services: svc_infos
                    .iter()
                    .map(|(svc, its)| membership(pod, svc, its))
                    .collect(),
                reasons: Vec::new(),
            };
            ep.reasons = pod_reasons(&ep);
            ep
        })
        .collect();
    // Problems first (not Ready, then any reason), then by node.
    nodes.sort_by(|a, b| {
        (a.ready, a.reasons.is_empty())
            .cmp(&(b.ready, b.reasons.is_empty()))
            .then_with(|| a.node.cmp(&b.node))
            .then_with(|| a.pod.cmp(&b.pod))
    });
    let mut notes = vec![format!(
        "DNS names assume the cluster domain {ASSUMED_CLUSTER_DOMAIN} (the API does not say which \
         domain the cluster's DNS serves)"
    )];
    if svc_infos.iter().any(|(s, _)| s.headless) {
        notes.push(
            "a headless Service's DNS name answers with the IPs of its ready endpoints (all of \
             them with publishNotReadyAddresses)"
                .into(),
        );
    }
    Endpoints {
        api_version: API_VERSION,
        kind: "Endpoints",
        namespace: ns,
        name: ds.metadata.name.clone().unwrap_or_default(),
        cluster_domain: ASSUMED_CLUSTER_DOMAIN,
        notes,
        services: svc_infos.into_iter().map(|(s, _)| s).collect(),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{daemon_set, pod};

    const DS: &str = r#"
metadata: {name: agent, namespace: mon, uid: ds-uid}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent, tier: node}}
    spec:
      containers:
      - name: agent
        image: agent:1
        ports:
        - {name: metrics, containerPort: 9100, hostPort: 9100}
        - {name: grpc, containerPort: 7000}
"#;

    fn agent_pod(name: &str, node: &str, ip: &str, ready: bool) -> Pod {
        pod(&format!(
            r#"
metadata:
  name: {name}
  namespace: mon
  uid: uid-{name}
  labels: {{app: agent, tier: node}}
  ownerReferences: [{{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: ds-uid, controller: true}}]
spec:
  nodeName: {node}
  containers:
  - name: agent
    image: agent:1
    ports:
    - {{name: metrics, containerPort: 9100, hostPort: 9100}}
    - {{name: grpc, containerPort: 7000}}
status:
  phase: Running
  podIP: {ip}
  hostIP: 192.0.2.1
  conditions: [{{type: Ready, status: "{}"}}]
"#,
            if ready { "True" } else { "False" }
        ))
    }

    fn service(yaml: &str) -> Service {
        crate::yaml::from_str(yaml).expect("service yaml")
    }

    fn slice(yaml: &str) -> EndpointSlice {
        crate::yaml::from_str(yaml).expect("endpointslice yaml")
    }

    fn fixture() -> Endpoints {
        let ds = daemon_set(DS);
        let pods = vec![
            agent_pod("agent-a", "node-a", "10.0.0.1", true),
            agent_pod("agent-b", "node-b", "10.0.0.2", false),
        ];
        let services = vec![
            service(
                r#"
metadata: {name: agent-headless, namespace: mon}
spec: {clusterIP: None, selector: {app: agent}, ports: [{port: 9100, targetPort: metrics}]}
"#,
            ),
            service(
                r#"
metadata: {name: agent-web, namespace: mon}
spec: {clusterIP: 10.96.0.10, selector: {app: agent, tier: web}, ports: [{port: 80}]}
"#,
            ),
            service(
                r#"
metadata: {name: unrelated, namespace: mon}
spec: {clusterIP: 10.96.0.11, selector: {app: other}, ports: [{port: 80}]}
"#,
            ),
        ];
        let slices = vec![slice(
            r#"
metadata:
  name: agent-headless-x1
  namespace: mon
  labels: {kubernetes.io/service-name: agent-headless}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: agent-a, namespace: mon, uid: uid-agent-a}
- addresses: [10.0.0.2]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: agent-b, namespace: mon, uid: uid-agent-b}
"#,
        )];
        endpoints(&ds, &pods, &services, &slices)
    }

    fn codes(ep: &PodEndpoint) -> Vec<&str> {
        ep.reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn services_about_the_pods_and_the_selector_that_misses() {
        let e = fixture();
        let names: Vec<&str> = e.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["agent-headless", "agent-web"],
            "unrelated is left out"
        );
        let headless = &e.services[0];
        assert!(headless.headless && headless.selects_pods);
        assert_eq!(headless.dns_name, "agent-headless.mon.svc.cluster.local");
        assert_eq!(headless.endpoint_slices, ["agent-headless-x1"]);
        let web = &e.services[1];
        assert!(!web.headless && !web.selects_pods);
        assert_eq!(web.reasons[0].code, "ServiceSelectorMisses");
        assert_eq!(web.reasons[0].keys, ["tier=web (the pods have tier=node)"]);
        assert!(e.notes[0].contains("cluster.local"));
    }

    #[test]
    fn pod_rows_host_ports_readiness_and_membership() {
        let e = fixture();
        // Both rows have a problem (hostPort); then by node.
        let b = e.nodes.iter().find(|n| n.pod == "agent-b").unwrap();
        let a = e.nodes.iter().find(|n| n.pod == "agent-a").unwrap();
        assert_eq!(a.host_ports.len(), 1);
        assert_eq!(a.host_ports[0].host_port, 9100);
        assert_eq!(codes(a), ["HostPortWithoutHostNetwork"]);
        assert_eq!(codes(b), ["HostPortWithoutHostNetwork", "PodNotReady"]);
        assert!(b.reasons[1].message.contains("agent-headless"));
        let m = &b.services[0];
        assert_eq!(m.endpoint_slice.as_deref(), Some("agent-headless-x1"));
        assert_eq!(m.ready_in_slice, Some(false));
        assert!(m.expected_listed && !m.expected_ready && !m.serving);
        assert!(a.services[0].serving);
        let web = &a.services[1];
        assert!(!web.selected && web.endpoint_slice.is_none() && !web.expected_listed);
    }

    #[test]
    fn host_network_exposes_every_container_port_without_a_portmap_reason() {
        let ds = daemon_set(DS);
        let mut p = agent_pod("agent-a", "node-a", "192.0.2.1", true);
        p.spec.as_mut().unwrap().host_network = Some(true);
        let e = endpoints(&ds, &[p], &[], &[]);
        let ports: Vec<i32> = e.nodes[0].host_ports.iter().map(|h| h.host_port).collect();
        assert_eq!(ports, [9100, 7000]);
        assert!(e.nodes[0].reasons.is_empty(), "{:?}", e.nodes[0].reasons);
    }

    #[test]
    fn a_slice_that_disagrees_with_the_controller_rule_is_a_reason() {
        let ds = daemon_set(DS);
        let pods = vec![agent_pod("agent-a", "node-a", "10.0.0.1", true)];
        let services = vec![service(
            "metadata: {name: s, namespace: mon}\nspec: {selector: {app: agent}}\n",
        )];
        let e = endpoints(&ds, &pods, &services, &[]);
        let codes = codes(&e.nodes[0]);
        assert!(codes.contains(&"EndpointSliceOutOfDate"), "{codes:?}");
    }
}
