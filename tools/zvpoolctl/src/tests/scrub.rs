// SPDX-License-Identifier: GPL-2.0
//! `pool scrub` against the fake kernel: what it writes to `P/scrub`, what
//! `-w` reports, `--rate` checked before anything is written, the
//! `scrub` row of `pool status` and the `scrub` of `pool health`.

use std::fs;

#[test]
fn scrub_starts_waits_and_shows_in_status() {
    let fk = super::setup_with_volumes();
    let r = fk.run(&["pool", "scrub", "-w", "--rate", "50", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("scrub of pool tank started"), "{}", r.out);
    assert!(
        r.out
            .contains("scrub of pool tank done: 1.00M read, 0 unreadable block(s)"),
        "{}",
        r.out
    );
    let attr = fs::read_to_string(fk.root().join("tank/scrub")).unwrap();
    assert!(attr.ends_with("rate_mibs=50\n"), "{attr}");
    let r = fk.run(&["pool", "status", "tank"]);
    assert!(
        r.out
            .contains("scrub                 done zone=8/8 read_bytes=1048576"),
        "{}",
        r.out
    );
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(r.out.contains("\"scrub\": \"done zone=8/8"), "{}", r.out);
    let r = fk.run(&["pool", "health", "-j", "tank"]);
    assert!(
        r.out
            .contains("\"scrub\": \"done errors=0 meta_errors=0 repairs=0\""),
        "{}",
        r.out
    );
    let r = fk.run(&["pool", "scrub", "--stop", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_bad_rate_is_a_usage_error_before_anything_is_written() {
    let fk = super::setup_with_volumes();
    for bad in ["0", "-1", "fast", "1.5"] {
        let r = fk.run(&["pool", "scrub", "--rate", bad, "tank"]);
        assert_eq!(r.code, 2, "--rate {bad}: {r:?}");
        assert!(r.err.contains("--rate takes MiB/s"), "{}", r.err);
    }
    let attr = fs::read_to_string(fk.root().join("tank/scrub")).unwrap();
    assert!(attr.starts_with("idle "), "{attr}");
}

#[test]
fn a_pass_that_finds_unreadable_data_names_its_volumes() {
    let fk = super::setup_with_volumes();
    fk.set_scrub_bad("tank", &["vm1 409600 12288", "vm2 0 4096"]);
    let r = fk.run(&["pool", "scrub", "-w", "tank"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("2 unreadable block(s)"), "{}", r.err);
    assert!(
        r.err.contains(
            "unreadable data in volumes: vm1 at byte offset 409600 (12.0K), vm2 at byte offset 0 (4.00K)"
        ),
        "{}",
        r.err
    );
    let r = fk.run(&["pool", "health", "-j", "tank"]);
    assert!(
        r.out
            .contains("\"scrub\": \"done errors=2 meta_errors=0 repairs=0 volumes=vm1,vm2\""),
        "{}",
        r.out
    );
}
