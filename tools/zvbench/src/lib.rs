// SPDX-License-Identifier: GPL-2.0
//! `zvbench`: turns the results of `make bench` (fio JSON and logs, pool
//! status snapshots, device geometry; see `results.rs`) into
//! `Documentation/benchmarks.{md,json}` and an SVG chart. `std` only.

pub mod fio;
pub mod json;
pub mod report;
pub mod results;
pub mod svg;

use std::path::{Path, PathBuf};

/// Writes benchmarks.md, benchmarks.json and the overwrite chart into `out`.
pub fn write_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let r = results::Results::load(results)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let files = [
        (out.join("benchmarks.md"), report::markdown(&r)),
        (out.join("benchmarks.json"), report::json(&r).to_pretty()),
        (out.join(report::SVG_NAME), report::overwrite_svg(&r)),
    ];
    let mut written = Vec::new();
    for (p, text) in files {
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}
