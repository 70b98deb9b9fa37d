//! YAML through serde-saphyr, the crate kube itself uses. The one place that names it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses one YAML document into `T`. The error names the line and column where it can.
#[allow(dead_code)] // manifests for rollout-preview/adopt; fixtures in unit tests
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string().replace('\n', " "))
}

/// Parses every document of a multi-document YAML stream.
pub fn from_str_multi<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    serde_saphyr::from_multiple(text).map_err(|e| e.to_string().replace('\n', " "))
}

/// Renders `value` as YAML.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}
