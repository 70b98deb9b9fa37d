//! Required node affinity and nodeSelector, as the scheduler and the DaemonSet controller read it.
//! mirrors component-helpers/scheduling/corev1/nodeaffinity GetRequiredNodeAffinity(pod).Match(node)

use std::collections::BTreeMap;

use crate::engine::model::Node;
use crate::engine::model::PodSpec;
use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};

use super::reason::Reason;

/// Why the node fails the pod's nodeSelector / required node affinity. Empty means it matches.
pub fn mismatches(spec: &PodSpec, node: &Node) -> Vec<Reason> {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    // spec.nodeSelector: labels.SelectorFromSet, every pair must match exactly.
    for (key, wanted) in spec.node_selector.iter().flat_map(|s| s.iter()) {
        let actual = labels.get(key);
        if actual != Some(wanted) {
            out.push(Reason::NodeSelectorMismatch {
                key: key.clone(),
                wanted: wanted.clone(),
                actual: actual.cloned(),
            });
        }
    }
    if let Some(required) = required(spec) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        if let Some(reason) = terms_mismatch(&required.node_selector_terms, labels, name) {
            out.push(reason);
        }
    }
    out
}

/// The pod's required node affinity (requiredDuringSchedulingIgnoredDuringExecution), if any.
pub fn required(spec: &PodSpec) -> Option<&NodeSelector> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// mirrors nodeaffinity.LazyErrorNodeSelector.Match: terms are ORed; an empty term matches
/// nothing; a term with a parse error does not match.
fn terms_mismatch(
    terms: &[NodeSelectorTerm],
    labels: &BTreeMap<String, String>,
    name: &str,
) -> Option<Reason> {
    let mut first_failure: Option<(usize, String)> = None;
    let mut any_non_empty = false;
    for (i, term) in terms.iter().enumerate() {
        let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            continue; // "nil or empty term matches no objects"
        }
        any_non_empty = true;
        match term_failure(exprs, fields, labels, name) {
            None => return None,
            Some(why) => {
                if first_failure.is_none() {
                    first_failure = Some((i, why));
                }
            }
        }
    }
    Some(match first_failure {
        Some((i, why)) => Reason::NodeAffinityMismatch {
            term: Some(i),
            expression: why,
        },
        None => Reason::NodeAffinityMismatch {
            term: None,
            expression: if any_non_empty || terms.is_empty() {
                "no nodeSelectorTerms".into()
            } else {
                "every nodeSelectorTerm is empty (an empty term matches no node)".into()
            },
        },
    })
}

/// The first failing requirement of a term, as text; `None` when the term matches.
fn term_failure(
    exprs: &[NodeSelectorRequirement],
    fields: &[NodeSelectorRequirement],
    labels: &BTreeMap<String, String>,
    name: &str,
) -> Option<String> {
    for e in exprs {
        match label_requirement_matches(e, labels) {
            Ok(true) => {}
            Ok(false) => {
                let actual = match labels.get(&e.key) {
                    Some(v) => format!("{}={v}", e.key),
                    None => format!("no label {}", e.key),
                };
                return Some(format!("{} (node has {actual})", requirement_text(e)));
            }
            Err(err) => return Some(format!("{} is invalid: {err}", requirement_text(e))),
        }
    }
    for f in fields {
        match field_requirement_matches(f, name) {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "matchFields {} (node is {name})",
                    requirement_text(f)
                ))
            }
            Err(err) => {
                return Some(format!(
                    "matchFields {} is invalid: {err}",
                    requirement_text(f)
                ))
            }
        }
    }
    None
}

/// mirrors nodeaffinity nodeSelectorRequirementsAsSelector + labels.Requirement.Matches
pub fn label_requirement_matches(
    e: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let values = e.values.as_deref().unwrap_or(&[]);
    let actual = labels.get(&e.key);
    match e.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => Err("values must be non-empty".into()),
        "In" => Ok(actual.is_some_and(|a| values.contains(a))),
        "NotIn" => Ok(actual.is_none_or(|a| !values.contains(a))),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err("values must be empty".into()),
        "Exists" => Ok(actual.is_some()),
        "DoesNotExist" => Ok(actual.is_none()),
        "Gt" | "Lt" => {
            if values.len() != 1 {
                return Err("exactly one value is required".into());
            }
            let bound: i64 = values[0]
                .parse()
                .map_err(|_| format!("{:?} is not an integer", values[0]))?;
            // labels.Requirement.Matches: a missing or non-integer label does not match.
            let Some(Ok(v)) = actual.map(|a| a.parse::<i64>()) else {
                return Ok(false);
            };
            Ok(if e.operator == "Gt" {
                v > bound
            } else {
                v < bound
            })
        }
        other => Err(format!("unknown operator {other:?}")),
    }
}

/// mirrors nodeaffinity nodeSelectorRequirementsAsFieldSelector: only metadata.name is a node
/// field; only In/NotIn with exactly one value.
fn field_requirement_matches(f: &NodeSelectorRequirement, node_name: &str) -> Result<bool, String> {
    let values = f.values.as_deref().unwrap_or(&[]);
    if values.len() != 1 {
        return Err("must have one element".into());
    }
    let actual = if f.key == "metadata.name" {
        node_name
    } else {
        ""
    };
    match f.operator.as_str() {
        "In" => Ok(actual == values[0]),
        "NotIn" => Ok(actual != values[0]),
        other => Err(format!("{other:?} is not a valid field selector operator")),
    }
}

fn requirement_text(e: &NodeSelectorRequirement) -> String {
    let values = e.values.as_deref().unwrap_or(&[]);
    match e.operator.as_str() {
        "Exists" | "DoesNotExist" => format!("{} {}", e.key, e.operator),
        _ => format!("{} {} [{}]", e.key, e.operator, values.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{node, pod_spec};

    fn check(spec_yaml: &str, node_yaml: &str) -> Vec<Reason> {
        mismatches(&pod_spec(spec_yaml), &node(node_yaml))
    }

    const NODE: &str = "
metadata:
  name: n1
  labels: {pool: gpu, zone: a, cores: '16'}
";

    #[test]
    fn node_selector_all_pairs_must_match() {
        assert!(check("nodeSelector: {pool: gpu}", NODE).is_empty());
        let r = check("nodeSelector: {pool: gpu, disk: ssd}", NODE);
        assert_eq!(
            r,
            vec![Reason::NodeSelectorMismatch {
                key: "disk".into(),
                wanted: "ssd".into(),
                actual: None
            }]
        );
        let r = check("nodeSelector: {zone: b}", NODE);
        assert!(matches!(&r[0], Reason::NodeSelectorMismatch { actual: Some(a), .. } if a == "a"));
    }

    #[test]
    fn terms_are_ored_expressions_anded() {
        let spec = "
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: pool, operator: In, values: [cpu]}
      - matchExpressions:
        - {key: zone, operator: In, values: [a, b]}
        - {key: cores, operator: Gt, values: ['8']}
";
        assert!(check(spec, NODE).is_empty());
        let spec_and = "
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: zone, operator: In, values: [a]}
        - {key: cores, operator: Lt, values: ['8']}
";
        let r = check(spec_and, NODE);
        assert!(
            matches!(&r[0], Reason::NodeAffinityMismatch { term: Some(0), expression } if expression.contains("cores Lt"))
        );
    }

    #[test]
    fn empty_terms_match_nothing_and_are_skipped() {
        let spec = "
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - {}
      - matchExpressions: [{key: pool, operator: Exists}]
";
        assert!(check(spec, NODE).is_empty());
        let only_empty = "
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{}]
";
        assert!(matches!(
            &check(only_empty, NODE)[0],
            Reason::NodeAffinityMismatch { term: None, .. }
        ));
    }

    #[test]
    fn operators() {
        let labels: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x".to_string()),
        ]
        .into();
        let req = |key: &str, op: &str, vals: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(vals.iter().map(|v| v.to_string()).collect()),
        };
        assert_eq!(
            label_requirement_matches(&req("a", "NotIn", &["2"]), &labels),
            Ok(true)
        );
        assert_eq!(
            label_requirement_matches(&req("z", "NotIn", &["2"]), &labels),
            Ok(true)
        );
        assert_eq!(
            label_requirement_matches(&req("z", "DoesNotExist", &[]), &labels),
            Ok(true)
        );
        assert_eq!(
            label_requirement_matches(&req("a", "Gt", &["0"]), &labels),
            Ok(true)
        );
        assert_eq!(
            label_requirement_matches(&req("b", "Gt", &["0"]), &labels),
            Ok(false)
        );
        assert!(label_requirement_matches(&req("a", "Gt", &["x"]), &labels).is_err());
        assert!(label_requirement_matches(&req("a", "In", &[]), &labels).is_err());
        assert!(label_requirement_matches(&req("a", "Exists", &["1"]), &labels).is_err());
    }

    #[test]
    fn match_fields_on_metadata_name() {
        let spec = "
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchFields: [{key: metadata.name, operator: In, values: [n1]}]
";
        assert!(check(spec, NODE).is_empty());
        let other = spec.replace("[n1]", "[n2]");
        assert_eq!(check(&other, NODE).len(), 1);
        let two_values = spec.replace("[n1]", "[n1, n2]");
        assert!(
            matches!(&check(&two_values, NODE)[0], Reason::NodeAffinityMismatch { expression, .. } if expression.contains("invalid"))
        );
        let exists = spec.replace(
            "operator: In, values: [n1]",
            "operator: Exists, values: [n1]",
        );
        assert_eq!(check(&exists, NODE).len(), 1);
    }
}
