//! Rendering: tables (kubectl style), JSON and YAML, to any writer. Pure formatting over
//! engine types; colour decided once by the caller.

pub mod diff;
pub mod endpoints;
pub mod explain;
pub mod explain_json;
pub mod jsonpath;
pub mod palette;
pub mod printer;
pub mod rollout;
pub mod sorted_json;
pub mod status;
pub mod table;
#[cfg(test)]
mod tables_tests;
pub mod term;
pub mod why;
pub mod workflow;

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `value` as pretty JSON followed by a newline.
pub fn json<W: Write, T: Serialize>(out: &mut W, value: &T) -> Result<()> {
    // serde_json hands I/O errors back as they were (BrokenPipe: the reader left).
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| io_err(e.into()))?;
    writeln!(out).map_err(io_err)
}

/// Writes `value` as YAML.
pub fn yaml<W: Write, T: Serialize>(out: &mut W, value: &T) -> Result<()> {
    out.write_all(yaml_text(value)?.as_bytes()).map_err(io_err)
}

/// `value` as YAML text.
pub fn yaml_text<T: Serialize>(value: &T) -> Result<String> {
    let yaml_err = |e: String| Error::Io(format!("rendering YAML: {e}"));
    // Through JSON so that serialize_with hooks and flattening behave exactly as in JSON.
    let v = serde_json::to_value(value).map_err(|e| yaml_err(e.to_string()))?;
    crate::yaml::to_string(&v).map_err(yaml_err)
}

pub fn io_err(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::OutputClosed;
    }
    Error::Io(format!("writing output: {e}"))
}
