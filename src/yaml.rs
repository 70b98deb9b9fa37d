//! YAML through serde-saphyr, the crate kube itself uses. The one place that names it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses one YAML document into `T`. The error names the line and column where it can.
#[allow(dead_code)] // manifests for rollout-preview/adopt; fixtures in unit tests
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| one_line(&e.to_string()))
}

/// Parses every document of a multi-document YAML stream. JSON (what `kubectl get -o json`
/// writes: the text starts with `{` or `[`) goes through serde_json: faster, and free of the
/// YAML parser's size budget, which a saved list of 5,000 nodes exceeds.
pub fn from_str_multi<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    if text.trim_start().starts_with(['{', '[']) {
        return serde_json::Deserializer::from_str(text)
            .into_iter::<T>()
            .collect::<Result<Vec<T>, _>>()
            .map_err(|e| json_error(&e));
    }
    serde_saphyr::from_multiple(text).map_err(|e| one_line(&e.to_string()))
}

/// "line 3 column 7: expected value", in the YAML errors' shape.
fn json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let text = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    format!("line {} column {}: {text}", e.line(), e.column())
}

/// The first line of a parse error ("line 5 column 10: mapping values are not allowed ..."):
/// serde-saphyr follows it with a source snippet that does not fit a one-line error.
fn one_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Renders `value` as YAML.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    /// A list the size of `kubectl get nodes -o json` on 5,000 nodes (well over the YAML
    /// parser's budget of 250,000 nodes) is read as JSON.
    #[test]
    fn large_json_lists_are_read() {
        let items: Vec<String> = (0..150_000)
            .map(|i| format!(r#"{{"kind": "Node", "metadata": {{"name": "n{i}"}}}}"#))
            .collect();
        let text = format!(r#"  {{"kind": "List", "items": [{}]}}"#, items.join(","));
        let docs = super::from_str_multi::<serde_json::Value>(&text).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["items"].as_array().unwrap().len(), 150_000);
        assert_eq!(docs[0]["items"][149_999]["metadata"]["name"], "n149999");
        let two = super::from_str_multi::<serde_json::Value>("{\"a\": 1}\n{\"b\": 2}").unwrap();
        assert_eq!(two.len(), 2);
        let e = super::from_str_multi::<serde_json::Value>("{\n  \"a\": ,\n}").unwrap_err();
        assert!(e.starts_with("line 2 column"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn parse_errors_are_one_line_with_the_location() {
        let e = super::from_str_multi::<serde_json::Value>("a:\n  b: c\n   d: [x\n").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("line 3 column"), "{e}");
    }
}
