// SPDX-License-Identifier: GPL-2.0
//! Output model and formats. A command builds a `Doc` (sections of rows or a
//! single record); the options pick the format: aligned table (default),
//! scripted (`-H`), exact numbers (`-p`), columns (`-o`), JSON (`-j`).

pub mod json;
mod table;

use crate::size;
use json::Json;

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent or not applicable: `-` in tables, `null` in JSON.
    Null,
    Text(String),
    /// A size in bytes: human (`20.0G`) unless `-p`.
    Bytes(u64),
    /// A size limit in bytes, 0 for none (a quota, a reservation): `none`
    /// or human, the number with `-p` and in JSON.
    Limit(u64),
    Count(u64),
    /// A percentage: `42%`, `42` with `-p`.
    Percent(u64),
    /// A decimal number as the kernel printed it (`1.250`).
    Number(String),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(s.into())
    }

    pub fn opt_bytes(v: Option<u64>) -> Self {
        v.map_or(Value::Null, Value::Bytes)
    }

    pub fn opt_limit(v: Option<u64>) -> Self {
        v.map_or(Value::Null, Value::Limit)
    }

    pub fn opt_count(v: Option<u64>) -> Self {
        v.map_or(Value::Null, Value::Count)
    }

    fn right_aligned(&self) -> bool {
        !matches!(self, Value::Text(_) | Value::Null)
    }

    fn cell(&self, parsable: bool) -> String {
        match self {
            Value::Null => "-".to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) if parsable => b.to_string(),
            Value::Bytes(b) => size::human(*b),
            Value::Limit(b) if parsable => b.to_string(),
            Value::Limit(0) => "none".to_string(),
            Value::Limit(b) => size::human(*b),
            Value::Count(n) => n.to_string(),
            Value::Percent(p) if parsable => p.to_string(),
            Value::Percent(p) => format!("{p}%"),
            Value::Number(n) => n.clone(),
        }
    }

    fn json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::Str(s.clone()),
            Value::Bytes(n) | Value::Limit(n) | Value::Count(n) | Value::Percent(n) => {
                Json::int(*n)
            }
            Value::Number(n) => Json::number(n),
        }
    }
}

/// Rows with named columns (lower-case names: `-o` and JSON keys; the table
/// header is the upper-case name).
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: &'static [&'static str],
    /// Columns shown when `-o` is not given (JSON shows all).
    pub defaults: &'static [&'static str],
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: &'static [&'static str], defaults: &'static [&'static str]) -> Self {
        Table {
            columns,
            defaults,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// Keeps the named columns in the given order.
    fn select(&self, names: &[&str]) -> (Vec<&'static str>, Vec<Vec<Value>>) {
        let idx: Vec<usize> = names
            .iter()
            .filter_map(|n| self.columns.iter().position(|c| c == n))
            .collect();
        let cols = idx.iter().map(|&i| self.columns[i]).collect();
        let rows = self
            .rows
            .iter()
            .map(|r| {
                idx.iter()
                    .map(|&i| r.get(i).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        (cols, rows)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    /// One line per row, a header above.
    Rows,
    /// The first row shown as `name value` lines.
    Record,
}

#[derive(Debug, Clone)]
pub struct Section {
    /// JSON key of the section.
    pub key: &'static str,
    /// Title line above the section in the human format (multi-section docs).
    pub title: Option<&'static str>,
    pub layout: Layout,
    pub table: Table,
}

pub type Doc = Vec<Section>;

/// Output options of the listing commands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputOpts {
    pub scripted: bool,
    pub parsable: bool,
    pub json: bool,
    pub columns: Option<Vec<String>>,
}

/// Renders a document; the error is a usage error (unknown `-o` column).
pub fn render(doc: &Doc, opts: &OutputOpts) -> Result<String, String> {
    let mut selected = Vec::new();
    for s in doc {
        let names: Vec<&str> = match &opts.columns {
            Some(cols) => {
                for c in cols {
                    if !s.table.columns.contains(&c.as_str()) {
                        return Err(format!(
                            "unknown column {c:?} for -o; valid columns: {}",
                            s.table.columns.join(",")
                        ));
                    }
                }
                cols.iter().map(String::as_str).collect()
            }
            None if opts.json => s.table.columns.to_vec(),
            None => s.table.defaults.to_vec(),
        };
        selected.push(s.table.select(&names));
    }
    if opts.json {
        let obj = doc
            .iter()
            .zip(&selected)
            .map(|(s, (cols, rows))| {
                let objs: Vec<Json> = rows
                    .iter()
                    .map(|r| {
                        Json::Obj(
                            cols.iter()
                                .zip(r)
                                .map(|(c, v)| (c.to_string(), v.json()))
                                .collect(),
                        )
                    })
                    .collect();
                let j = match s.layout {
                    Layout::Rows => Json::Arr(objs),
                    Layout::Record => objs.into_iter().next().unwrap_or(Json::Null),
                };
                (s.key.to_string(), j)
            })
            .collect();
        return Ok(Json::Obj(obj).render() + "\n");
    }
    let mut out = String::new();
    let multi = doc.len() > 1;
    for (i, (s, (cols, rows))) in doc.iter().zip(&selected).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if multi && !opts.scripted {
            if let Some(t) = s.title {
                out.push_str(t);
                out.push_str(":\n");
            }
        }
        out.push_str(&match s.layout {
            Layout::Rows => table::rows(cols, rows, opts),
            Layout::Record => table::record(cols, rows.first().map_or(&[][..], |r| r), opts),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
