// SPDX-License-Identifier: GPL-2.0
//! The whole command line: help for every command, version, exit codes.

use crate::commands::NOUNS;
use crate::testutil::run_with;

#[test]
fn help_everywhere() {
    let top = run_with(None, &["--help"]);
    assert_eq!(top.code, 0);
    assert!(top.out.starts_with("usage: zvpoolctl "), "{}", top.out);
    assert_eq!(run_with(None, &["-h"]).out, top.out);
    assert_eq!(run_with(None, &["help"]).out, top.out);
    for n in NOUNS {
        let r = run_with(None, &[n.name, "--help"]);
        assert_eq!(r.code, 0, "{}", n.name);
        assert_eq!(run_with(None, &["help", n.name]).out, r.out);
        for v in n.verbs {
            // Every command is described at the top level and in its noun.
            let line = format!("  {} {}", n.name, v.usage);
            assert!(top.out.contains(&line), "top help lacks {line:?}");
            assert!(
                r.out.contains(v.usage) && r.out.contains(v.summary),
                "{}",
                r.out
            );
            for args in [
                &[n.name, v.name, "--help"][..],
                &[n.name, v.name, "-h"],
                &["help", n.name, v.name],
            ] {
                let h = run_with(None, args);
                assert_eq!(h.code, 0, "{args:?}");
                assert!(
                    h.out
                        .starts_with(&format!("usage: zvpoolctl {} {}\n", n.name, v.usage)),
                    "{}",
                    h.out
                );
                assert!(h.out.contains(v.help), "{args:?}");
                for o in v.options {
                    assert!(
                        h.out.contains(&format!("--{}", o.long)),
                        "{args:?} lacks --{}",
                        o.long
                    );
                }
                for (c, _) in v.columns {
                    assert!(
                        h.out.contains(&format!("  {c} ")),
                        "{args:?} lacks column {c}"
                    );
                }
            }
            // Help wins over missing arguments and bad options.
            assert_eq!(
                run_with(None, &[n.name, v.name, "--bogus", "--help"]).code,
                2
            );
            assert_eq!(run_with(None, &[n.name, v.name, "x", "--help"]).code, 0);
        }
    }
    let h = run_with(None, &["volume", "delete", "--help"]);
    assert!(h.out.contains("ALL ITS DATA IS DESTROYED"), "{}", h.out);
    let h = run_with(None, &["pool", "create", "--help"]);
    assert!(h.out.contains("  -f, --force"), "{}", h.out);
    assert!(!top.out.contains("configfs-root") && !top.out.contains("--kmsg"));
}

#[test]
fn version() {
    for a in ["--version", "-V"] {
        let r = run_with(None, &[a]);
        assert_eq!(
            (r.code, r.out.as_str()),
            (0, concat!("zvpoolctl ", env!("CARGO_PKG_VERSION"), "\n"))
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for (args, msg, usage) in [
        (&[][..], "zvpoolctl: no command given\n", "usage: zvpoolctl [--version]"),
        (&["frobnicate"], "zvpoolctl: unknown command \"frobnicate\"; commands: pool, volume, snapshot\n", "Try 'zvpoolctl --help'."),
        (&["--bogus"], "zvpoolctl: unknown option --bogus\n", "usage:"),
        (&["pool"], "zvpoolctl: pool needs a subcommand\n", "usage: zvpoolctl pool create"),
        (&["pool", "explode"], "zvpoolctl: unknown subcommand \"pool explode\"; subcommands: create, assemble, add, scrub, evacuate, replace, remove, stop, list, status, health, events, set, get, check, import\n", "Try 'zvpoolctl pool --help'."),
        (&["volume", "show"], "zvpoolctl: missing arguments\n", "usage: zvpoolctl volume show"),
        (&["pool", "list", "-x"], "zvpoolctl: unknown option -x\n", "usage: zvpoolctl pool list"),
        (&["pool", "list", "-o"], "zvpoolctl: option -o needs a value\n", "usage: zvpoolctl pool list"),
        (&["pool", "list", "-o", "name,,size"], "zvpoolctl: empty column name in -o \"name,,size\"\n", "usage:"),
        (&["pool", "list", "--json=yes"], "zvpoolctl: option --json takes no value\n", "usage:"),
        (&["--configfs-root"], "zvpoolctl: option --configfs-root needs a value\n", "usage:"),
        (&["help", "nope"], "zvpoolctl: unknown command \"nope\"; commands: pool, volume, snapshot\n", "usage:"),
    ] {
        let r = run_with(None, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.starts_with(msg), "{args:?}: {}", r.err);
        assert!(r.err.contains(usage), "{args:?}: {}", r.err);
        assert_eq!(r.out, "");
    }
}

#[test]
fn unknown_column_is_a_usage_error_before_any_change() {
    let fk = super::setup_with_volumes();
    let r = fk.run(&["volume", "list", "-o", "size,bogus"]);
    assert_eq!(r.code, 2);
    assert!(r.err.starts_with("zvpoolctl: unknown column \"bogus\" for -o; valid columns: name,pool,volume,kind,origin,id,size,used,unique,shared,mapped_blocks,state,device,devt,placement,copies,riops,wiops,rbps,wbps,quota,reservation\n"), "{}", r.err);
}

#[test]
fn documentation_follows_the_command_table() {
    // The synopsis and the pool commands, then the volume and snapshot
    // commands.
    let doc: String = ["zvpoolctl.md", "zvpoolctl-volumes.md"]
        .iter()
        .map(|f| {
            let path = format!("{}/../../Documentation/{f}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect();
    for n in NOUNS {
        for v in n.verbs {
            let row = format!("| `{} {}` |", n.name, v.usage);
            assert!(doc.contains(&row), "synopsis lacks {row:?}");
            let section = format!("\n### {} {}", n.name, v.name);
            assert!(doc.contains(&section), "no section {section:?}");
            for (c, _) in v.columns {
                assert!(
                    doc.contains(&format!("`{c}`")),
                    "column {c} of {} {} undocumented",
                    n.name,
                    v.name
                );
            }
        }
    }
}
