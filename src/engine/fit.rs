//! Would the DaemonSet's pod fit on a node? Resources, pod count and host ports, computed from
//! API objects as `kubectl describe node` does.
//! mirrors scheduler plugins noderesources.Fit (fitsRequest) and nodeports.Fits, with
//! component-helpers resource.PodRequests

use std::collections::BTreeMap;

use crate::engine::model::Node;
use crate::engine::model::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::reason::Reason;

/// A quantity in milli-units, rounded up as the scheduler's `MilliValue` does. Exact integer
/// arithmetic: `950m` is 950, not 950.0000000000001 rounded up to 951.
/// mirrors apimachinery resource.ParseQuantity (decimal SI, binary SI and exponent suffixes)
pub fn parse_quantity(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (negative, digits) = match num.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let mantissa: i128 = format!("{whole}{frac}").parse().ok()?;
    // value = mantissa * 10^-frac_len * factor; factor = 10^exp10 * 1024^exp1024.
    let (exp10, exp1024): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        s if s.starts_with(['e', 'E']) => (s[1..].parse().ok()?, 0),
        _ => return None,
    };
    let scaled = mantissa.checked_mul(1024i128.checked_pow(exp1024)?)?;
    // Milli-units: one more factor of 10^3.
    let net = exp10 + 3 - i32::try_from(frac.len()).ok()?;
    let milli = if net >= 0 {
        scaled.checked_mul(10i128.checked_pow(net.unsigned_abs())?)?
    } else {
        let d = 10i128.checked_pow(net.unsigned_abs())?;
        (scaled + d - 1) / d
    };
    Some(if negative { -milli } else { milli })
}

/// Renders milli-units back for messages: cpu in cores/millicores, memory-like in Mi/Gi.
pub fn format_quantity(resource: &str, milli: i128) -> String {
    if resource == "cpu" {
        return if milli % 1000 == 0 {
            format!("{}", milli / 1000)
        } else {
            format!("{milli}m")
        };
    }
    let units = milli / 1000;
    const GI: i128 = 1 << 30;
    const MI: i128 = 1 << 20;
    if resource == "memory" || resource == "ephemeral-storage" || resource.starts_with("hugepages-")
    {
        if units != 0 && units % GI == 0 {
            return format!("{}Gi", units / GI);
        }
        if units != 0 && units % MI == 0 {
            return format!("{}Mi", units / MI);
        }
    }
    units.to_string()
}

type Resources = BTreeMap<String, i128>;

fn add(into: &mut Resources, from: &Resources) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn max_into(into: &mut Resources, from: &Resources) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn quantities(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    map.into_iter()
        .flatten()
        .filter_map(|(k, q)| parse_quantity(&q.0).map(|v| (k.clone(), v)))
        .collect()
}

pub fn container_requests(c: &Container) -> Resources {
    let res = c.resources.as_ref();
    // Requests default to limits when only limits are given (apiserver defaulting).
    let mut r = quantities(res.and_then(|r| r.limits.as_ref()));
    r.extend(quantities(res.and_then(|r| r.requests.as_ref())));
    r
}

/// The effective requests of a pod spec.
/// mirrors component-helpers resource.PodRequests: max(sum(app) + sum(sidecars), init peaks) + overhead
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut app = Resources::new();
    for c in &spec.containers {
        add(&mut app, &container_requests(c));
    }
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let req = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut sidecars, &req);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut step = sidecars.clone();
            add(&mut step, &req);
            max_into(&mut init_peak, &step);
        }
    }
    add(&mut app, &sidecars);
    max_into(&mut app, &init_peak);
    // Pod-level resources override the supported resources.
    let pod_level = quantities(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    app.extend(pod_level);
    add(&mut app, &quantities(spec.overhead.as_ref()));
    app
}

/// Is the pod still holding node resources (not Succeeded or Failed)?
pub fn is_active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// Why the DaemonSet pod (spec) would not fit on `node` beside `others` (the pods bound there).
pub fn misfits(spec: &PodSpec, node: &Node, others: &[Pod]) -> Vec<Reason> {
    let active: Vec<&Pod> = others.iter().filter(|p| is_active(p)).collect();
    let mut out = Vec::new();
    let allocatable = quantities(node.status.as_ref().and_then(|s| s.allocatable.as_deref()));
    // Too many pods (NodeResourcesFit "Too many pods").
    if let Some(max_pods) = allocatable.get("pods") {
        let max_pods = (max_pods / 1000) as i64;
        let used = active.len() as i64;
        if used + 1 > max_pods {
            out.push(Reason::TooManyPods {
                allocatable: max_pods,
                used,
            });
        }
    }
    // Resources (NodeResourcesFit "Insufficient <res>").
    let wanted = pod_requests(spec);
    let mut used = Resources::new();
    for p in &active {
        if let Some(s) = p.spec.as_ref() {
            add(&mut used, &pod_requests(s));
        }
    }
    for (res, req) in &wanted {
        if *req == 0 || res == "pods" {
            continue;
        }
        let alloc = allocatable.get(res).copied().unwrap_or(0);
        let in_use = used.get(res).copied().unwrap_or(0);
        if req + in_use > alloc {
            out.push(Reason::InsufficientResources {
                resource: res.clone(),
                requested: format_quantity(res, *req),
                allocatable: format_quantity(res, alloc),
                used_by_other_pods: format_quantity(res, in_use),
            });
        }
    }
    // Host ports (NodePorts).
    for want in host_ports(spec) {
        for p in &active {
            let Some(other) = p.spec.as_ref() else {
                continue;
            };
            if let Some(held) = host_ports(other).into_iter().find(|h| h.conflicts(&want)) {
                out.push(Reason::HostPortConflict {
                    port: want.port,
                    protocol: want.protocol.clone(),
                    host_ip: if held.ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        held.ip.clone()
                    },
                    held_by: format!(
                        "{}/{}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or("")
                    ),
                });
                break;
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostPort {
    pub ip: String,
    pub port: i32,
    pub protocol: String,
}

impl HostPort {
    /// mirrors scheduler framework types.go HostPortInfo.CheckConflict: same port and protocol,
    /// and the IPs overlap. Only "" (sanitized to 0.0.0.0) and 0.0.0.0 are wildcards: "::" is
    /// compared as any other address.
    fn conflicts(&self, other: &HostPort) -> bool {
        let wild = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
        self.port == other.port
            && self.protocol == other.protocol
            && (wild(&self.ip) || wild(&other.ip) || self.ip == other.ip)
    }
}

/// Host ports a pod occupies; hostNetwork pods occupy their container ports
/// (mirrors core/v1 defaults.go defaultHostNetworkPorts).
pub fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let host_network = spec.host_network == Some(true);
    let containers = spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
    );
    let mut out = Vec::new();
    for c in containers {
        for p in c.ports.iter().flatten() {
            let port = match p.host_port {
                Some(h) if h > 0 => h,
                _ if host_network => p.container_port,
                _ => continue,
            };
            out.push(HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{node, pod, pod_spec};

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m"), Some(100));
        assert_eq!(parse_quantity("2"), Some(2000));
        assert_eq!(parse_quantity("1Gi"), Some(1024 * 1024 * 1024 * 1000));
        assert_eq!(parse_quantity("1e3"), Some(1_000_000));
        assert_eq!(parse_quantity("bogus"), None);
        assert_eq!(
            parse_quantity("950m"),
            Some(950),
            "exact, no float rounding"
        );
        assert_eq!(parse_quantity("0.95"), Some(950));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 * 512 * 1024 * 1024 * 1000));
        assert_eq!(
            parse_quantity("100n"),
            Some(1),
            "rounded up to a milli-unit"
        );
        assert_eq!(parse_quantity("64Mi"), Some(64 * 1024 * 1024 * 1000));
        assert_eq!(format_quantity("cpu", 1500), "1500m");
        assert_eq!(format_quantity("cpu", 2000), "2");
        assert_eq!(format_quantity("memory", 512 * 1024 * 1024 * 1000), "512Mi");
    }

    #[test]
    fn requests_with_init_and_sidecars() {
        let spec = pod_spec(
            "
initContainers:
- {name: init, resources: {requests: {cpu: '2'}}}
- {name: side, restartPolicy: Always, resources: {requests: {cpu: 100m}}}
containers:
- {name: a, resources: {requests: {cpu: 200m, memory: 64Mi}}}
- {name: b, resources: {limits: {cpu: 300m}}}
",
        );
        let r = pod_requests(&spec);
        assert_eq!(r["cpu"], 2000, "init peak dominates");
        assert_eq!(r["memory"], 64 * 1024 * 1024 * 1000);
    }

    const NODE: &str = "
metadata: {name: n1}
status:
  allocatable: {cpu: '1', memory: 1Gi, pods: '3'}
";

    #[test]
    fn insufficient_cpu_counts_other_pods() {
        let other = pod("
metadata: {name: hog, namespace: other}
spec:
  nodeName: n1
  containers: [{name: c, resources: {requests: {cpu: 800m}}}]
status: {phase: Running}
");
        let done = pod("
metadata: {name: done, namespace: other}
spec:
  nodeName: n1
  containers: [{name: c, resources: {requests: {cpu: '1'}}}]
status: {phase: Succeeded}
");
        let spec = pod_spec("containers: [{name: c, resources: {requests: {cpu: 300m}}}]");
        let r = misfits(&spec, &node(NODE), &[other, done]);
        assert_eq!(
            r,
            vec![Reason::InsufficientResources {
                resource: "cpu".into(),
                requested: "300m".into(),
                allocatable: "1".into(),
                used_by_other_pods: "800m".into()
            }]
        );
    }

    #[test]
    fn host_port_conflict_and_too_many_pods() {
        let holder = |name: &str| {
            pod(&format!(
                "
metadata: {{name: {name}, namespace: web}}
spec:
  nodeName: n1
  containers: [{{name: c, ports: [{{containerPort: 80, hostPort: 8080}}]}}]
"
            ))
        };
        let spec = pod_spec("containers: [{name: c, ports: [{containerPort: 8080, hostPort: 8080, protocol: TCP}]}]");
        let r = misfits(&spec, &node(NODE), &[holder("a"), holder("b"), holder("c")]);
        assert!(r.contains(&Reason::TooManyPods {
            allocatable: 3,
            used: 3
        }));
        assert!(r.iter().any(|x| matches!(x, Reason::HostPortConflict { port: 8080, held_by, .. } if held_by == "web/a")));
        let udp = pod_spec("containers: [{name: c, ports: [{containerPort: 8080, hostPort: 8080, protocol: UDP}]}]");
        assert!(!misfits(&udp, &node(NODE), &[holder("a")])
            .iter()
            .any(|x| matches!(x, Reason::HostPortConflict { .. })));
    }

    #[test]
    fn only_empty_and_ipv4_any_are_wildcards() {
        let port = |ip: &str| HostPort {
            ip: ip.into(),
            port: 53,
            protocol: "UDP".into(),
        };
        assert!(port("").conflicts(&port("10.0.0.1")));
        assert!(port("0.0.0.0").conflicts(&port("::1")));
        assert!(port("10.0.0.1").conflicts(&port("0.0.0.0")));
        // mirrors HostPortInfo.CheckConflict: "::" is an address like any other.
        assert!(!port("::").conflicts(&port("10.0.0.1")));
        assert!(!port("10.0.0.1").conflicts(&port("::")));
        assert!(port("::").conflicts(&port("::")));
        assert!(!port("10.0.0.1").conflicts(&port("10.0.0.2")));
    }

    #[test]
    fn overhead_counts_for_the_pod_and_the_others() {
        let spec = pod_spec(
            "overhead: {cpu: 250m}\ncontainers: [{name: c, resources: {requests: {cpu: 100m}}}]",
        );
        assert_eq!(pod_requests(&spec)["cpu"], 350);
        let other = pod("
metadata: {name: kata, namespace: other}
spec:
  nodeName: n1
  overhead: {cpu: 300m}
  containers: [{name: c, resources: {requests: {cpu: 400m}}}]
");
        let r = misfits(&spec, &node(NODE), &[other]);
        assert!(
            matches!(&r[..], [Reason::InsufficientResources { requested, used_by_other_pods, .. }]
                if requested == "350m" && used_by_other_pods == "700m"),
            "{r:?}"
        );
    }

    #[test]
    fn host_network_occupies_container_ports() {
        let spec =
            pod_spec("hostNetwork: true\ncontainers: [{name: c, ports: [{containerPort: 9100}]}]");
        assert_eq!(host_ports(&spec)[0].port, 9100);
    }
}
