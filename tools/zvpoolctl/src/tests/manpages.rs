// SPDX-License-Identifier: GPL-2.0
//! The man pages stay true to the tool and the module: every command of
//! the command table appears in zvpoolctl(8) with its usage line, every
//! module parameter of the `module!` block in zvpool(4); both render with
//! groff with all warnings enabled and none given (skipped without groff).

use crate::commands::NOUNS;
use std::process::Command;

const TOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{TOP}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The text of roff source with font escapes and `\-` undone.
fn plain(roff: &str) -> String {
    let mut s = roff.replace("\\-", "-").replace("\\&", "");
    for f in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        s = s.replace(f, "");
    }
    s
}

#[test]
fn zvpoolctl_8_has_every_command_with_its_usage() {
    let page = plain(&read("man/zvpoolctl.8"));
    for n in NOUNS {
        for v in n.verbs {
            let line = format!("{} {}", n.name, v.usage);
            assert!(page.contains(&line), "zvpoolctl.8 lacks {line:?}");
        }
    }
    for word in [
        "EXIT STATUS",
        "FILES",
        "EXAMPLES",
        "/etc/zvpool/zvpool.cache",
    ] {
        assert!(page.contains(word), "zvpoolctl.8 lacks {word}");
    }
}

/// The parameter names of the `params: { ... }` block of `module!`.
fn module_params(src: &str) -> Vec<String> {
    let start = src.find("params: {").expect("module! params block");
    let mut depth = 0;
    let mut names = Vec::new();
    for line in src[start..].lines() {
        let t = line.trim();
        if depth == 1 {
            if let Some((name, rest)) = t.split_once(':') {
                if rest.trim_start().ends_with('{') {
                    names.push(name.trim().to_string());
                }
            }
        }
        depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
        if depth == 0 {
            break;
        }
    }
    names
}

#[test]
fn zvpool_4_has_every_module_parameter() {
    let params = module_params(&read("rust/zvpool_main.rs"));
    assert!(params.contains(&"fastpath".to_string()), "{params:?}");
    let page = plain(&read("man/zvpool.4"));
    for p in &params {
        assert!(
            page.contains(&format!(".BR {p} ")),
            "zvpool.4 lacks module parameter {p}"
        );
    }
    for word in [
        "/dev/zvpool-control",
        "/sys/kernel/config/zvpool",
        "CONTROL DEVICE",
        "MODULE PARAMETERS",
    ] {
        assert!(page.contains(word), "zvpool.4 lacks {word}");
    }
}

/// The sysfs identity attributes and uevent variables of `rust/kwrap/helpers.c`.
fn ident_attrs_and_vars() -> (Vec<String>, Vec<String>) {
    let c = read("rust/kwrap/helpers.c");
    let attrs: Vec<String> = c
        .lines()
        .filter_map(|l| l.strip_prefix("ZVPOOL_IDENT_ATTR("))
        .filter_map(|l| l.split(',').next())
        .map(str::to_string)
        .collect();
    let env = c
        .split("zvpool_ident_env[] = {")
        .nth(1)
        .and_then(|r| r.split("};").next())
        .unwrap_or("");
    let vars: Vec<String> = env
        .split('"')
        .filter(|w| w.starts_with("ZVPOOL_"))
        .map(str::to_string)
        .collect();
    (attrs, vars)
}

#[test]
fn zvpool_4_and_the_abi_list_every_sysfs_attribute_and_uevent_variable() {
    let (attrs, vars) = ident_attrs_and_vars();
    // Seven in the zvpool directory, each with its uevent variable, then
    // serial and wwid directly in the disk's directory.
    assert_eq!(attrs.len(), 9, "{attrs:?}");
    assert_eq!(vars.len(), 7, "{vars:?}");
    let page = plain(&read("man/zvpool.4"));
    let abi = read("Documentation/configfs-abi.md");
    assert!(page.contains("/sys/block/zvpoolN/zvpool/"));
    for (i, a) in attrs.iter().enumerate() {
        // The page names the zvpool directory's attributes in bold, the
        // two others by their path.
        let named = if i < vars.len() {
            format!(".B {a}\n")
        } else {
            format!("/sys/block/zvpoolN/{a}")
        };
        assert!(page.contains(&named), "zvpool.4 lacks attribute {a}");
        assert!(
            abi.contains(&format!("| `{a}` ")),
            "configfs-abi.md lacks attribute {a}"
        );
    }
    for v in &vars {
        assert!(page.contains(v.as_str()), "zvpool.4 lacks variable {v}");
        assert!(
            abi.contains(&format!("`{v}`")),
            "configfs-abi.md lacks variable {v}"
        );
    }
}

#[test]
fn pages_render_without_warnings() {
    if Command::new("groff").arg("-v").output().is_err() {
        eprintln!("skipped: groff is not installed");
        return;
    }
    for page in ["man/zvpoolctl.8", "man/zvpool.4"] {
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(format!("{TOP}/{page}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.is_empty(), "{page}: {err}");
    }
}
