//! `-o` as kubectl spells it: table, wide, json, yaml, name, jsonpath=, jsonpath-file=,
//! jsonpath-as-json=, custom-columns=, custom-columns-file=, with `--no-headers`, `--sort-by`,
//! `-L/--label-columns` and `--show-labels`. Parsing mirrors kubectl's printer flags
//! (cli-runtime `JSONPathPrintFlags`, kubectl `CustomColumnsPrintFlags`); printing a list of
//! items mirrors kubectl get's printers (`CustomColumnsPrinter.printOneObject`,
//! `RuntimeSort`).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use super::jsonpath::{go_fmt, sort_order, Template};
use super::term::escape;
use super::{io_err, table};
use crate::error::{Error, Result};

/// A resolved `-o` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    /// `kind/name`, one per line.
    Name,
    JsonPath(Template),
    JsonPathAsJson(Template),
    CustomColumns(Vec<Column>),
}

/// One `HEADER:.path` column of `-o custom-columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    pub path: Template,
}

/// The accepted `-o` values, for help texts and errors.
pub const FORMATS: &str = "table, wide, json, yaml, name, jsonpath=TEMPLATE, \
jsonpath-file=FILE, jsonpath-as-json=TEMPLATE, custom-columns=SPEC, custom-columns-file=FILE";

impl Format {
    /// Parses an `-o` value, reading the file of the `-file` forms.
    pub fn parse(spec: &str) -> Result<Format> {
        let usage = |m: String| Error::Usage(m);
        let (kind, arg) = match spec.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (spec, None),
        };
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|e| Error::Input(format!("reading {path}: {e}")))
        };
        let jsonpath = |t: &str| {
            Template::parse(t).map_err(|e| usage(format!("invalid jsonpath template {t:?}: {e}")))
        };
        Ok(match (kind, arg) {
            ("table", None) | ("", None) => Format::Table,
            ("wide", None) => Format::Wide,
            ("json", None) => Format::Json,
            ("yaml", None) => Format::Yaml,
            ("name", None) => Format::Name,
            ("jsonpath", Some(t)) => Format::JsonPath(jsonpath(t)?),
            ("jsonpath-as-json", Some(t)) => Format::JsonPathAsJson(jsonpath(t)?),
            // kubectl trims the file's trailing newline (JSONPathPrintFlags.ToPrinter).
            ("jsonpath-file", Some(f)) => {
                Format::JsonPath(jsonpath(read(f)?.trim_end_matches('\n'))?)
            }
            ("custom-columns", Some(s)) => Format::CustomColumns(parse_columns(s)?),
            ("custom-columns-file", Some(f)) => Format::CustomColumns(columns_file(&read(f)?)?),
            ("jsonpath" | "jsonpath-as-json" | "jsonpath-file", None) => {
                return Err(usage(format!("-o {kind} needs a template: -o {kind}=...")))
            }
            ("custom-columns" | "custom-columns-file", None) => {
                return Err(usage(format!(
                    "-o {kind} needs a spec: -o custom-columns=NAME:.path,..."
                )))
            }
            _ => {
                return Err(usage(format!(
                    "unable to match a printer suitable for the output format {spec:?}, the \
                     allowed formats are: {FORMATS}"
                )))
            }
        })
    }
}

/// `NAME:.path,NAME2:.path2` (customcolumn.go `NewCustomColumnsPrinterFromSpec`).
fn parse_columns(spec: &str) -> Result<Vec<Column>> {
    if spec.is_empty() {
        return Err(Error::Usage(
            "custom-columns format specified but no custom columns given".into(),
        ));
    }
    spec.split(',')
        .map(|part| {
            let (header, path) = part
                .split_once(':')
                .filter(|(_, p)| !p.contains(':'))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
                    ))
                })?;
            column(header, path)
        })
        .collect()
}

fn column(header: &str, path: &str) -> Result<Column> {
    let path = Template::parse_relaxed(path)
        .map_err(|e| Error::Usage(format!("invalid custom-columns path {path:?}: {e}")))?;
    Ok(Column {
        header: header.to_string(),
        path,
    })
}

/// A custom-columns file: headers on the first line, paths on the second, separated by blanks
/// (customcolumn.go `NewCustomColumnsPrinterFromTemplate`).
fn columns_file(text: &str) -> Result<Vec<Column>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (Some(headers), Some(paths)) = (lines.next(), lines.next()) else {
        return Err(Error::Usage(format!(
            "invalid template, expected two lines (headers, then paths), got {}",
            text.lines().filter(|l| !l.trim().is_empty()).count()
        )));
    };
    let headers: Vec<&str> = headers.split_whitespace().collect();
    let paths: Vec<&str> = paths.split_whitespace().collect();
    if headers.len() != paths.len() {
        return Err(Error::Usage(format!(
            "number of headers ({}) and field specifications ({}) don't match",
            headers.len(),
            paths.len()
        )));
    }
    headers
        .iter()
        .zip(paths)
        .map(|(h, p)| column(h, p))
        .collect()
}

/// Table options shared by every list printed as rows.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub no_headers: bool,
    /// `-L`: label keys, each a column headed by its last path segment in upper case.
    pub label_columns: Vec<String>,
    pub show_labels: bool,
}

impl TableOptions {
    /// `-L` headers, as kubectl `formatLabelHeaders`.
    pub fn label_headers(&self) -> Vec<String> {
        let mut h: Vec<String> = self
            .label_columns
            .iter()
            .map(|k| k.rsplit('/').next().unwrap_or(k).to_uppercase())
            .collect();
        if self.show_labels {
            h.push("LABELS".into());
        }
        h
    }

    /// The `-L` and `--show-labels` cells for one object's labels (escaped: cluster text).
    pub fn label_cells(&self, labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
        let mut cells: Vec<String> = self
            .label_columns
            .iter()
            .map(|k| {
                labels
                    .and_then(|l| l.get(k))
                    .map(|v| escape(v).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        if self.show_labels {
            cells.push(match labels {
                Some(l) if !l.is_empty() => escape(
                    &l.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                )
                .into_owned(),
                _ => "<none>".into(),
            });
        }
        cells
    }
}

/// `-L` keys: `-L a,b -L c` (kubectl splits each value on commas).
pub fn split_label_columns(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

/// The order of items under a `--sort-by` path (kubectl sorter.go `SortObjects`): by the
/// first value of each, absent values first, stable. Errors when no item has the field.
pub fn sort_order_of(items: &[Value], path: &str) -> Result<Vec<usize>> {
    let template = Template::parse_relaxed(path)
        .map_err(|e| Error::Usage(format!("invalid --sort-by {path:?}: {e}")))?;
    let mut keys: Vec<Option<Value>> = Vec::with_capacity(items.len());
    for item in items {
        let found = template
            .find(item)
            .map_err(|e| Error::Usage(format!("--sort-by {path:?}: {e}")))?;
        let key = found
            .into_iter()
            .next()
            .and_then(|g| g.into_iter().next())
            .map(|v| v.into_owned());
        keys.push(key);
    }
    if !keys.is_empty() && keys.iter().all(Option::is_none) {
        return Err(Error::Usage(format!(
            "couldn't find any field with path {path:?} in the list of objects"
        )));
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| sort_order(keys[a].as_ref(), keys[b].as_ref()));
    Ok(order)
}

/// `items` rearranged in `order` (a permutation from [`sort_order_of`]).
pub fn reorder<T>(items: Vec<T>, order: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.iter().filter_map(|&i| slots[i].take()).collect()
}

/// `-o custom-columns`: one row per item; a column with no value shows `<none>`, several
/// values are joined by commas (customcolumn.go `printOneObject`). Cells are escaped.
pub fn custom_columns<W: Write>(
    out: &mut W,
    columns: &[Column],
    items: &[Value],
    no_headers: bool,
) -> Result<()> {
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let mut row = Vec::with_capacity(columns.len());
        for c in columns {
            let groups = c
                .path
                .find(item)
                .map_err(|e| Error::Usage(format!("custom-columns {}: {e}", c.header)))?;
            let values: Vec<String> = groups
                .iter()
                .flatten()
                .map(|v| escape(&go_fmt(v)).into_owned())
                .collect();
            row.push(if values.is_empty() {
                "<none>".into()
            } else {
                values.join(",")
            });
        }
        rows.push(row);
    }
    let headers: Vec<&str> = columns.iter().map(|c| c.header.as_str()).collect();
    write_table(out, &headers, rows, no_headers)
}

/// A kubectl table, with or without its header line.
pub fn write_table<W: Write>(
    out: &mut W,
    headers: &[&str],
    rows: Vec<Vec<String>>,
    no_headers: bool,
) -> Result<()> {
    if !no_headers {
        return table::write(out, headers, rows);
    }
    if rows.is_empty() {
        return Ok(());
    }
    // The widths come from the rows alone, as kubectl's tabwriter without the header line.
    let mut buf = Vec::new();
    let blank: Vec<&str> = headers.iter().map(|_| "").collect();
    table::write(&mut buf, &blank, rows)?;
    let text = String::from_utf8_lossy(&buf);
    for line in text.lines().skip(1) {
        writeln!(out, "{line}").map_err(io_err)?;
    }
    Ok(())
}

/// `-o jsonpath`: the template over the whole document, no newline added (as kubectl).
pub fn jsonpath<W: Write>(
    out: &mut W,
    template: &Template,
    doc: &Value,
    as_json: bool,
) -> Result<()> {
    let text = if as_json {
        template.render_json(doc)
    } else {
        template.render(doc)
    }
    .map_err(|e| Error::Usage(format!("error executing jsonpath: {e}")))?;
    out.write_all(text.as_bytes()).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_kubectl_form() {
        assert_eq!(Format::parse("wide").unwrap(), Format::Wide);
        assert_eq!(Format::parse("name").unwrap(), Format::Name);
        assert!(matches!(
            Format::parse("jsonpath={.a}").unwrap(),
            Format::JsonPath(_)
        ));
        match Format::parse("custom-columns=NODE:.name,STATE:{.state}").unwrap() {
            Format::CustomColumns(c) => assert_eq!(c[1].header, "STATE"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "jsonpath",
            "custom-columns=",
            "custom-columns=A",
            "xml",
            "jsonpath={.a",
        ] {
            assert!(
                matches!(Format::parse(bad), Err(Error::Usage(_))),
                "{bad} accepted"
            );
        }
        assert!(matches!(
            Format::parse("jsonpath-file=/nonexistent/t"),
            Err(Error::Input(_))
        ));
    }

    #[test]
    fn columns_files_and_rows() {
        let cols = columns_file("NODE   STATE\n.name  .state\n").unwrap();
        let items = vec![
            json!({"name": "a", "state": "Running"}),
            json!({"name": "b"}),
        ];
        let mut out = Vec::new();
        custom_columns(&mut out, &cols, &items, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NODE   STATE\na      Running\nb      <none>\n"
        );
        let mut out = Vec::new();
        custom_columns(&mut out, &cols, &items, true).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a   Running\nb   <none>\n");
        assert!(columns_file("A B\n.a\n").is_err());
    }

    #[test]
    fn sorts_naturally_and_refuses_an_unknown_field() {
        let items = vec![json!({"n": "node-10"}), json!({"n": "node-2"}), json!({})];
        let order = sort_order_of(&items, ".n").unwrap();
        assert_eq!(order, [2, 1, 0]);
        assert_eq!(reorder(vec!["a", "b", "c"], &order), ["c", "b", "a"]);
        assert!(sort_order_of(&items, ".zzz").is_err());
    }

    #[test]
    fn label_columns() {
        let opts = TableOptions {
            no_headers: false,
            label_columns: split_label_columns(&["topology.kubernetes.io/zone,pool".into()]),
            show_labels: true,
        };
        assert_eq!(opts.label_headers(), ["ZONE", "POOL", "LABELS"]);
        let labels = BTreeMap::from([("pool".to_string(), "gpu".to_string())]);
        assert_eq!(opts.label_cells(Some(&labels)), ["", "gpu", "pool=gpu"]);
        assert_eq!(opts.label_cells(None), ["", "", "<none>"]);
    }
}
