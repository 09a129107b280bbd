// SPDX-License-Identifier: GPL-2.0
//! systemd/zvpool-import.service: the ordering and kind the admin guide
//! describes, and command lines that the tool's parser accepts (so a
//! renamed command or option cannot silently break the boot). The unit
//! and the udev rule call the same zvpoolctl (`make install` rewrites it).

use crate::cli::{self, Invocation};

const TOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `(section, key, value)` of an ini-style unit file.
fn entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            out.push((section.clone(), k.to_string(), v.to_string()));
        }
    }
    out
}

fn values(e: &[(String, String, String)], section: &str, key: &str) -> Vec<String> {
    e.iter()
        .filter(|(s, k, _)| s == section && k == key)
        .flat_map(|(_, _, v)| v.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect()
}

/// The zvpoolctl arguments of a command line, checked to parse as `noun verb`
/// with these flags.
fn check_command(line: &str, noun: &str, verb: &str, flags: &[&str]) -> String {
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    assert!(
        argv[0].starts_with('/') && argv[0].ends_with("/zvpoolctl"),
        "{line}"
    );
    match cli::parse(&argv[1..]) {
        Ok(Invocation::Run {
            noun: n,
            verb: v,
            parsed,
            ..
        }) => {
            assert_eq!((n.name, v.name), (noun, verb), "{line}");
            for f in flags {
                assert!(parsed.flag(f), "{line}: --{f}");
            }
        }
        other => panic!("{line}: {other:?}"),
    }
    argv[0].clone()
}

#[test]
fn unit_imports_cached_pools_before_local_file_systems() {
    let text = std::fs::read_to_string(format!("{TOP}/systemd/zvpool-import.service")).unwrap();
    let e = entries(&text);
    let one = |s: &str, k: &str| values(&e, s, k).join(" ");
    assert_eq!(one("Unit", "DefaultDependencies"), "no");
    assert_eq!(one("Service", "Type"), "oneshot");
    assert_eq!(one("Service", "RemainAfterExit"), "yes");
    assert!(values(&e, "Unit", "Before").contains(&"local-fs-pre.target".to_string()));
    assert!(values(&e, "Unit", "After").contains(&"systemd-udev-settle.service".to_string()));
    assert!(values(&e, "Unit", "Conflicts").contains(&"shutdown.target".to_string()));
    let start = check_command(
        &one("Service", "ExecStart"),
        "pool",
        "import",
        &["all", "cached"],
    );
    let stop = check_command(&one("Service", "ExecStop"), "pool", "stop", &["all"]);
    assert_eq!(start, stop);
    assert!(one("Service", "ExecStartPre").contains("modprobe zvpool"));
    // The udev rule runs the same binary.
    let rules = std::fs::read_to_string(format!("{TOP}/udev/60-zvpool.rules")).unwrap();
    assert!(
        rules.contains(&format!("IMPORT{{program}}=\"{start} volume ident %k\"")),
        "{rules}"
    );
}
