// SPDX-License-Identifier: GPL-2.0
//! `make install` and `make uninstall` into a temporary DESTDIR: the files
//! and where they go, the path of zvpoolctl written into the udev rule and
//! the unit, and nothing left after uninstall. Skipped without make.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn make(dest: &Path, target: &str) {
    let o = Command::new("make")
        .args(["-s", "-C", TOP, target])
        .arg(format!("DESTDIR={}", dest.display()))
        .args(["PREFIX=/usr", "MO=/nonexistent"])
        .arg(format!("ZVPOOLCTL_BIN={}", env!("CARGO_BIN_EXE_zvpoolctl")))
        .output()
        .expect("run make");
    assert!(
        o.status.success(),
        "make {target}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn install_and_uninstall_into_destdir() {
    if Command::new("make").arg("--version").output().is_err() {
        eprintln!("skipped: make is not installed");
        return;
    }
    let dest: PathBuf =
        std::env::temp_dir().join(format!("zvpoolctl-install-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir_all(&dest).unwrap();
    make(&dest, "install");
    assert_eq!(
        files(&dest),
        [
            "usr/lib/systemd/system/zvpool-import.service",
            "usr/lib/udev/rules.d/60-zvpool.rules",
            "usr/sbin/zvpoolctl",
            "usr/share/bash-completion/completions/zvpoolctl",
            "usr/share/man/man4/zvpool.4",
            "usr/share/man/man8/zvpoolctl.8",
        ]
    );
    let rules = fs::read_to_string(dest.join("usr/lib/udev/rules.d/60-zvpool.rules")).unwrap();
    assert!(
        rules.contains("IMPORT{program}=\"/usr/sbin/zvpoolctl volume ident %k\""),
        "{rules}"
    );
    let unit =
        fs::read_to_string(dest.join("usr/lib/systemd/system/zvpool-import.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/sbin/zvpoolctl pool import -a --cached\n"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local"), "{unit}");
    let o = Command::new(dest.join("usr/sbin/zvpoolctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("zvpoolctl "));
    make(&dest, "uninstall");
    assert_eq!(files(&dest), Vec::<String>::new());
    fs::remove_dir_all(&dest).unwrap();
}
