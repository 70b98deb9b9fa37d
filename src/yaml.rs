//! YAML through serde-saphyr, the crate kube itself uses. The one place that names it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses one YAML document into `T`. The error names the line and column where it can.
#[allow(dead_code)] // manifests for rollout-preview/adopt; fixtures in unit tests
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| one_line(&e.to_string()))
}

/// Parses every document of a multi-document YAML stream.
pub fn from_str_multi<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    serde_saphyr::from_multiple(text).map_err(|e| one_line(&e.to_string()))
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
    #[test]
    fn parse_errors_are_one_line_with_the_location() {
        let e = super::from_str_multi::<serde_json::Value>("a:\n  b: c\n   d: [x\n").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("line 3 column"), "{e}");
    }
}
