// SPDX-License-Identifier: GPL-2.0
//! `zvbench report --results DIR --out DIR`: the report of a `make bench` run.

const USAGE: &str = "usage: zvbench report --results DIR [--out DIR]\n\
  Reads the results of `make bench` (build/bench/results) and writes\n\
  benchmarks.md, benchmarks.json and benchmarks-overwrite.svg into --out\n\
  (default: Documentation).\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut results, mut out) = (None, String::from("Documentation"));
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("report") => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return;
        }
        _ => {
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    }
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--results", Some(v)) => results = Some(v.clone()),
            ("--out", Some(v)) => out = v.clone(),
            _ => {
                eprint!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let Some(results) = results else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    match zvbench::write_report(results.as_ref(), out.as_ref()) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
        }
        Err(e) => {
            eprintln!("zvbench: {e}");
            std::process::exit(1);
        }
    }
}
