// SPDX-License-Identifier: GPL-2.0
//! The text formats: aligned tables with headers, or tab-separated lines
//! without headers for scripts (`-H`).

use super::{OutputOpts, Value};

const GAP: &str = "  ";

/// Rows under an upper-case header: text left-aligned, numbers right-aligned,
/// no trailing blanks. Scripted: no header, one tab between cells.
pub fn rows(cols: &[&str], rows: &[Vec<Value>], opts: &OutputOpts) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.cell(opts.parsable)).collect())
        .collect();
    let mut out = String::new();
    if opts.scripted {
        for r in &cells {
            out.push_str(&r.join("\t"));
            out.push('\n');
        }
        return out;
    }
    let header: Vec<String> = cols.iter().map(|c| c.to_ascii_uppercase()).collect();
    let width: Vec<usize> = (0..cols.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(header[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    // A column is right-aligned if its values are numbers.
    let right: Vec<bool> = (0..cols.len())
        .map(|i| rows.iter().any(|r| r[i].right_aligned()))
        .collect();
    let mut line = |r: &[String]| {
        let mut l = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                l.push_str(GAP);
            }
            let pad = " ".repeat(width[i].saturating_sub(c.chars().count()));
            if right[i] {
                l.push_str(&pad);
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&pad);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &cells {
        line(r);
    }
    out
}

/// One record as `name  value` lines (names padded); scripted: `name<TAB>value`.
pub fn record(cols: &[&str], row: &[Value], opts: &OutputOpts) -> String {
    let w = cols.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (c, v) in cols.iter().zip(row) {
        let cell = v.cell(opts.parsable);
        if opts.scripted {
            out.push_str(&format!("{c}\t{cell}\n"));
        } else {
            out.push_str(format!("{c:<w$}{GAP}{cell}").trim_end());
            out.push('\n');
        }
    }
    out
}
