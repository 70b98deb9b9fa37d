//! The one reader of `-f FILE` (explain, rollout-preview, adopt, migrate): a file, or stdin
//! when FILE is `-` (as kubectl). The text then goes through `engine::documents`, one set of
//! rules for every command; each error names the file.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::engine::documents;
use crate::error::{Error, Result};

/// Is FILE stdin?
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// FILE as messages name it: the path, or `stdin`.
pub fn shown(path: &Path) -> String {
    if is_stdin(path) {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

/// The text of FILE (stdin for `-`).
pub fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    let read = if is_stdin(path) {
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| Error::Input(format!("reading {}: {e}", shown(path))))?;
    Ok(text)
}

/// The objects of FILE by the rules of `engine::documents` (Lists expanded).
pub fn read_objects(path: &Path, expected: &str) -> Result<Vec<Value>> {
    let text = read_text(path)?;
    documents::parse_objects(&text, expected)
        .map_err(|e| Error::Input(format!("{}: {e}", shown(path))))
}
