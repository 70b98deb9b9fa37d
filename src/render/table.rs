//! kubectl-style tables: upper-case headers, columns separated by three spaces, no borders.

use std::io::Write;

use tabled::builder::Builder;
use tabled::settings::{Padding, Style};

use crate::error::Result;

/// Writes rows under headers, kubectl style (ANSI colour codes do not count towards widths).
pub fn write<W: Write + ?Sized>(
    out: &mut W,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<()> {
    let mut b = Builder::default();
    b.push_record(headers.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::empty()).with(Padding::new(0, 3, 0, 0));
    for line in t.to_string().lines() {
        writeln!(out, "{}", line.trim_end()).map_err(super::io_err)?;
    }
    Ok(())
}
