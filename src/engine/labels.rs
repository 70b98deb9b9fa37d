//! Label selectors: `metav1.LabelSelector` matching and the `-l` selector syntax.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One requirement of a label selector, as `labels.Requirement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    /// mirrors apimachinery labels.Requirement.Matches
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed selector: requirements ANDed. `None` inside means "matches nothing".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
    pub matches_nothing: bool,
}

impl Selector {
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.matches_nothing {
            return false;
        }
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Is this the empty selector `{}` (selects everything)?
    pub fn is_everything(&self) -> bool {
        !self.matches_nothing && self.requirements.is_empty()
    }
}

/// mirrors apimachinery metav1.LabelSelectorAsSelector: nil selects nothing, `{}` everything.
pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Selector, String> {
    let Some(sel) = sel else {
        return Ok(Selector {
            requirements: vec![],
            matches_nothing: true,
        });
    };
    let mut reqs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push(Requirement::Equals(k.clone(), v.clone()));
    }
    for expr in sel.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default();
        let key = expr.key.clone();
        let req = match expr.operator.as_str() {
            "In" if !values.is_empty() => Requirement::In(key, values),
            "NotIn" if !values.is_empty() => Requirement::NotIn(key, values),
            "Exists" if values.is_empty() => Requirement::Exists(key),
            "DoesNotExist" if values.is_empty() => Requirement::DoesNotExist(key),
            op => {
                return Err(format!(
                    "invalid label selector operator {op:?} for key {key:?}"
                ))
            }
        };
        reqs.push(req);
    }
    Ok(Selector {
        requirements: reqs,
        matches_nothing: false,
    })
}

/// Parses kubectl's `-l` syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
pub fn parse(text: &str) -> Result<Selector, String> {
    let mut reqs = Vec::new();
    for part in split_top_level(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        reqs.push(parse_requirement(part)?);
    }
    Ok(Selector {
        requirements: reqs,
        matches_nothing: false,
    })
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("invalid label selector {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(
            valid_key(key.trim()).ok_or_else(bad)?,
        ));
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = part.find(op) {
            let key = valid_key(part[..idx].trim()).ok_or_else(bad)?;
            let set = part[idx + op.len()..].trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            return Ok(if negate {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let key = valid_key(k.trim()).ok_or_else(bad)?;
            let value = v.trim().to_string();
            if value.contains(['=', '!', ' ']) {
                return Err(bad());
            }
            return Ok(if ne {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            });
        }
    }
    Ok(Requirement::Exists(valid_key(part).ok_or_else(bad)?))
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_kubectl_selectors() {
        let s = parse("pool=gpu,zone!=a,tier in (x, y),!spot,env").unwrap();
        assert_eq!(s.requirements.len(), 5);
        let l = labels(&[("pool", "gpu"), ("zone", "b"), ("tier", "y"), ("env", "p")]);
        assert!(s.matches(Some(&l)));
        let l2 = labels(&[("pool", "gpu"), ("zone", "a"), ("tier", "y"), ("env", "p")]);
        assert!(!s.matches(Some(&l2)));
        assert!(parse("a b").is_err());
        assert!(parse("a in b").is_err());
    }

    #[test]
    fn nil_selector_matches_nothing_empty_everything() {
        let nothing = from_label_selector(None).unwrap();
        assert!(!nothing.matches(Some(&labels(&[("a", "b")]))));
        let everything = from_label_selector(Some(&LabelSelector::default())).unwrap();
        assert!(everything.is_everything());
        assert!(everything.matches(None));
    }
}
