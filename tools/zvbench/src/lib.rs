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

/// The line of benchmarks.md after which hand-written measurements follow
/// (partial reruns, scale runs): a regeneration keeps that part.
pub const KEPT_MARKER: &str =
    "<!-- zvbench: measurements below this line are not from this run; regeneration keeps them -->";

/// `generated`, followed by the kept part of the `previous` benchmarks.md
/// (from [`KEPT_MARKER`] on), if it has one.
pub fn with_kept(generated: String, previous: Option<&str>) -> String {
    match previous.and_then(|p| p.find(KEPT_MARKER).map(|i| &p[i..])) {
        Some(kept) => {
            let mut s = generated;
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s.push('\n');
            s.push_str(kept);
            s
        }
        None => generated,
    }
}

/// Writes benchmarks.md, benchmarks.json and the overwrite chart into `out`.
/// The part of an existing benchmarks.md after [`KEPT_MARKER`] is kept.
pub fn write_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let r = results::Results::load(results)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let md = out.join("benchmarks.md");
    let previous = std::fs::read_to_string(&md).ok();
    let files = [
        (md, with_kept(report::markdown(&r), previous.as_deref())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regeneration_keeps_the_hand_written_part() {
        let prev = format!("# old\nold table\n{KEPT_MARKER}\n## Scale\nrow\n");
        let out = with_kept("# new\nnew table".to_string(), Some(&prev));
        assert_eq!(
            out,
            format!("# new\nnew table\n\n{KEPT_MARKER}\n## Scale\nrow\n")
        );
        assert_eq!(with_kept("# new\n".to_string(), Some("# old\n")), "# new\n");
        assert_eq!(with_kept("# new\n".to_string(), None), "# new\n");
    }
}
