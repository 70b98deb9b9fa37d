//! Rendering an [`Endpoints`] document: the Services, then one row per node.

use std::io::Write;

use crate::engine::endpoints::{Endpoints, PodEndpoint};
use crate::error::Result;

use super::palette::Palette;
use super::term::escape;
use super::{io_err, table};

fn host_ports(ep: &PodEndpoint) -> String {
    if ep.host_ports.is_empty() {
        return "-".into();
    }
    ep.host_ports
        .iter()
        .map(|h| format!("{}/{}", h.host_port, h.protocol))
        .collect::<Vec<_>>()
        .join(",")
}

/// `svc` (ready in its slice), `svc(not-ready)`, `svc(unlisted)` for each selecting Service.
fn memberships(ep: &PodEndpoint) -> String {
    let list: Vec<String> = ep
        .services
        .iter()
        .filter(|m| m.selected || m.endpoint_slice.is_some())
        .map(|m| match (&m.endpoint_slice, m.serving) {
            (Some(_), true) => escape(&m.service).into_owned(),
            (Some(_), false) => format!("{}(not-ready)", escape(&m.service)),
            (None, _) => format!("{}(unlisted)", escape(&m.service)),
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

fn dash(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| escape(s).into_owned())
        .unwrap_or_else(|| "-".into())
}

/// The tables (`-o table`, `-o wide`).
pub fn table<W: Write>(out: &mut W, doc: &Endpoints, wide: bool, p: &Palette) -> Result<()> {
    writeln!(
        out,
        "DaemonSet {}/{}",
        p.bold(&escape(&doc.namespace)),
        p.bold(&escape(&doc.name))
    )
    .map_err(io_err)?;
    for n in &doc.notes {
        writeln!(out, "{} {}", p.warn("Note:"), escape(n)).map_err(io_err)?;
    }
    writeln!(out).map_err(io_err)?;
    if doc.services.is_empty() {
        writeln!(out, "No Service selects the pods.").map_err(io_err)?;
    } else {
        let rows = doc
            .services
            .iter()
            .map(|s| {
                let selects = if s.selects_pods {
                    p.good("yes")
                } else {
                    p.bad("no")
                };
                let reason = s
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.code, escape(&r.message)))
                    .collect::<Vec<_>>()
                    .join("; ");
                vec![
                    escape(&s.name).into_owned(),
                    if s.headless {
                        "headless".into()
                    } else {
                        s.type_.clone()
                    },
                    selects,
                    escape(&s.dns_name).into_owned(),
                    if reason.is_empty() {
                        "-".into()
                    } else {
                        reason
                    },
                ]
            })
            .collect();
        table::write(
            out,
            &["SERVICE", "TYPE", "SELECTS-PODS", "DNS", "REASON"],
            rows,
        )?;
    }
    writeln!(out).map_err(io_err)?;
    if doc.nodes.is_empty() {
        writeln!(out, "No pods.").map_err(io_err)?;
        return Ok(());
    }
    let rows = doc
        .nodes
        .iter()
        .map(|ep| {
            let ready = if ep.ready { p.good("yes") } else { p.bad("no") };
            let reasons: Vec<String> = ep
                .reasons
                .iter()
                .map(|r| {
                    if wide {
                        format!("{}: {}", r.code, escape(&r.message))
                    } else {
                        r.code.to_string()
                    }
                })
                .collect();
            let mut row = vec![
                escape(&ep.node).into_owned(),
                escape(&ep.pod).into_owned(),
                dash(&ep.pod_ip),
                dash(&ep.host_ip),
                host_ports(ep),
                ready,
                memberships(ep),
            ];
            if wide {
                row.insert(5, if ep.host_network { "yes" } else { "no" }.into());
            }
            row.push(if reasons.is_empty() {
                "-".into()
            } else {
                reasons.join(if wide { "; " } else { "," })
            });
            row
        })
        .collect();
    if wide {
        table::write(
            out,
            &[
                "NODE",
                "POD",
                "POD-IP",
                "HOST-IP",
                "HOST-PORTS",
                "HOST-NETWORK",
                "READY",
                "SERVICES",
                "REASONS",
            ],
            rows,
        )
    } else {
        table::write(
            out,
            &[
                "NODE",
                "POD",
                "POD-IP",
                "HOST-IP",
                "HOST-PORTS",
                "READY",
                "SERVICES",
                "REASONS",
            ],
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::endpoints::{Finding, HostPortInfo, Membership};

    #[test]
    fn one_row_per_node_with_ports_membership_and_reason_codes() {
        let doc = Endpoints {
            api_version: "kubectl-ds/v1",
            kind: "Endpoints",
            namespace: "mon".into(),
            name: "agent".into(),
            cluster_domain: "cluster.local",
            notes: vec![],
            services: vec![],
            nodes: vec![PodEndpoint {
                node: "node-a".into(),
                pod: "agent-x".into(),
                pod_ip: Some("10.0.0.1".into()),
                host_ip: None,
                host_network: false,
                ready: false,
                host_ports: vec![HostPortInfo {
                    container: "c".into(),
                    name: None,
                    container_port: 9100,
                    host_port: 9100,
                    protocol: "TCP".into(),
                    host_ip: None,
                }],
                services: vec![Membership {
                    service: "agent".into(),
                    selected: true,
                    endpoint_slice: Some("agent-1".into()),
                    ready_in_slice: Some(false),
                    expected_listed: true,
                    expected_ready: false,
                    serving: false,
                }],
                reasons: vec![Finding {
                    code: "PodNotReady",
                    message: "the pod is not Ready".into(),
                    service: None,
                    keys: vec![],
                    ports: vec![],
                }],
            }],
        };
        let mut out = Vec::new();
        table(&mut out, &doc, false, &Palette::new(false)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("No Service selects the pods."), "{text}");
        let row = text.lines().last().unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "node-a",
                "agent-x",
                "10.0.0.1",
                "-",
                "9100/TCP",
                "no",
                "agent(not-ready)",
                "PodNotReady"
            ]
        );
        insta::assert_snapshot!("endpoints_table", text);
        let mut wide = Vec::new();
        table(&mut wide, &doc, true, &Palette::new(false)).unwrap();
        insta::assert_snapshot!("endpoints_wide", String::from_utf8(wide).unwrap());
    }
}
