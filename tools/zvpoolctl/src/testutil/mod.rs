// SPDX-License-Identifier: GPL-2.0
//! Test helpers: temporary directories, tree snapshots, the fake kernel and
//! a runner that captures stdout, stderr and the exit code.

pub mod fake;
pub mod image;
pub mod nvmet;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique directory under `std::env::temp_dir()`, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "zvpoolctl-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every directory (`None`) and file (`Some(contents)`) below `root`.
pub fn snapshot(root: &Path) -> BTreeMap<String, Option<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<String>>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Output of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs zvpoolctl with the given arguments against a backend.
pub fn run_with(backend: Option<&dyn crate::backend::Backend>, args: &[&str]) -> Run {
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = crate::run(&argv, None, &mut out, &mut err, backend);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// Output of one run whose stdout is bytes (a stream).
#[derive(Debug)]
pub struct RunBytes {
    pub code: i32,
    pub out: Vec<u8>,
    pub err: String,
}

/// Runs zvpoolctl with `input` as its standard input.
pub fn run_io_with(
    backend: Option<&dyn crate::backend::Backend>,
    args: &[&str],
    input: &[u8],
) -> RunBytes {
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut inp = input;
    let code = crate::run_io(&argv, None, &mut inp, &mut out, &mut err, backend);
    RunBytes {
        code,
        out,
        err: String::from_utf8(err).unwrap(),
    }
}
