// SPDX-License-Identifier: GPL-2.0
//! The memory of the block tables: `pool status` columns `table_memory*`,
//! `pool set` and `pool get` against the fake kernel.

use super::{assert_fails, setup, setup_with_volumes, with_volumes};
use crate::error::{EBUSY, EINVAL, EIO};
use crate::testutil::fake::{FakeKernel, FAKE_RAM, NODE_BYTES};
use std::fs;

/// The default limit of the fake machine (half of its memory).
const DEFAULT: u64 = FAKE_RAM / 2;

fn limit_file(fk: &FakeKernel) -> String {
    fs::read_to_string(fk.root().join("tank/table_memory_limit")).unwrap()
}

/// `pool get -Hp tank table_memory_limit`, as a number.
fn get_limit(fk: &FakeKernel) -> u64 {
    let r = fk.run(&["pool", "get", "-Hp", "tank", "table_memory_limit"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.out
        .strip_prefix("tank\ttable_memory_limit\t")
        .and_then(|v| v.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{r:?}"))
        .parse()
        .unwrap()
}

/// A pool `tank` on /dev/zns0 that is defined but inactive (its enable
/// failed and so did the rollback's rmdir).
fn inactive_pool() -> FakeKernel {
    let fk = setup(&["/dev/zns0"]);
    fk.fail_on("write", "tank/enable", EBUSY, "zvpool: tank: busy");
    fk.fail_on("rmdir", "tank", EIO, "zvpool: tank: injected");
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 1);
    fk
}

// ---- pool status

#[test]
fn status_shows_table_memory() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "status", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want = "table_nodes           9\n\
                table_memory          36.0K\n\
                table_memory_limit    8.00G\n\
                table_memory_refused  0\n\
                table_alloc_failures  0\n\
                read_only             0\n";
    assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    assert_eq!(9 * NODE_BYTES, 36 << 10);

    fk.set_table_memory("tank", 3 << 30, 5);
    let r = fk.run(&["pool", "status", "-Hp", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want = format!(
        "table_nodes\t9\ntable_memory\t{}\ntable_memory_limit\t{DEFAULT}\ntable_memory_refused\t5\ntable_alloc_failures\t0\n",
        3u64 << 30
    );
    assert!(r.out.contains(&want), "missing {want:?} in\n{}", r.out);
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    let want = format!(
        "    \"table_nodes\": 9,\n    \"table_memory\": {},\n    \"table_memory_limit\": {DEFAULT},\n    \
         \"table_memory_refused\": 5,\n    \"table_alloc_failures\": 0,\n",
        3u64 << 30
    );
    assert!(r.out.contains(&want), "missing {want:?} in\n{}", r.out);
}

#[test]
fn status_shows_the_metadata_space() {
    // (With the copies of the metadata: the journal on members 0 and 1,
    // two copies of every checkpoint block.)
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "status", "-Hp", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want =
        "checkpoints\t2\ncheckpoint_blocks\t3\ndelta_checkpoints\t1\ncheckpoint_capacity\t4096\nmetadata_copies\t2\nmetadata_full\t0\n";
    assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
}

#[test]
fn status_of_a_module_without_the_limit_shows_dashes() {
    let fk = with_volumes(FakeKernel::new().without_table_memory());
    assert!(!fk.root().join("tank/table_memory_limit").exists());
    let r = fk.run(&["pool", "status", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want = "table_nodes           9\ntable_memory          -\n\
                table_memory_limit    -\ntable_memory_refused  -\ntable_alloc_failures  -\n";
    assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    let want = "\"table_memory\": null,\n    \"table_memory_limit\": null,\n    \
                \"table_memory_refused\": null,\n    \"table_alloc_failures\": null,\n";
    assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
}

// ---- pool set

#[test]
fn set_takes_the_usual_size_suffixes() {
    let fk = setup_with_volumes();
    let mut old = "8.00G";
    for (arg, bytes, human) in [
        ("2G", 2u64 << 30, "2.00G"),
        ("512M", 512 << 20, "512M"),
        ("1.5G", 3 << 29, "1.50G"),
        ("64KiB", 64 << 10, "64.0K"),
        ("3gib", 3 << 30, "3.00G"),
        ("1T", 1 << 40, "1.00T"),
        ("1073741824", 1 << 30, "1.00G"),
    ] {
        let a = format!("table_memory_limit={arg}");
        let r = fk.run(&["pool", "set", "tank", &a]);
        assert_eq!(
            (r.code, r.out.as_str(), r.err.as_str()),
            (
                0,
                format!("set table_memory_limit of pool tank: {old} -> {human}\n").as_str(),
                ""
            ),
            "{arg}"
        );
        // Exactly these bytes reached the kernel, and are in force.
        assert_eq!(limit_file(&fk), format!("{bytes}\n"), "{arg}");
        assert_eq!(get_limit(&fk), bytes, "{arg}");
        let r = fk.run(&["pool", "status", "-Hp", "tank"]);
        assert!(
            r.out.contains(&format!("table_memory_limit\t{bytes}\n")),
            "{arg}: {}",
            r.out
        );
        old = human;
    }
}

#[test]
fn set_default_writes_zero() {
    let fk = setup_with_volumes();
    assert_eq!(
        fk.run(&["pool", "set", "tank", "table_memory_limit=2G"])
            .code,
        0
    );
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=default"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (
            0,
            "set table_memory_limit of pool tank: 2.00G -> 8.00G (default)\n"
        ),
        "{r:?}"
    );
    assert_eq!(limit_file(&fk), format!("{DEFAULT}\n"));
    // The value written is 0 (a failure injected on exactly that write
    // fires), for `default` in any case and for `0`.
    for arg in ["default", "DEFAULT", "0"] {
        fk.fail_on(
            "write",
            "tank/table_memory_limit=0",
            EIO,
            "zvpool: tank: injected",
        );
        let a = format!("table_memory_limit={arg}");
        let r = fk.run(&["pool", "set", "tank", &a]);
        assert_fails(
            &r,
            1,
            "zvpoolctl: set table_memory_limit of pool tank: Input/output error (EIO); kernel: zvpool: tank: injected",
        );
    }
}

#[test]
fn set_usage_errors_change_nothing() {
    let fk = setup_with_volumes();
    let before = fk.snapshot();
    let ops = fk.ops();
    for (args, msg) in [
        (&["pool", "set", "tank"][..], "missing arguments"),
        (
            &["pool", "set", "tank", "quota=1G"],
            "unknown property \"quota\"; known properties: table_memory_limit",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit"],
            "expected PROPERTY=VALUE, got \"table_memory_limit\"",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit=20GB"],
            "table_memory_limit: invalid size \"20GB\": unit \"GB\" is ambiguous",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit=lots"],
            "table_memory_limit: invalid size \"lots\"",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit=-1"],
            "table_memory_limit: invalid size \"-1\"",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit=1.3K"],
            "not a whole number of bytes",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit="],
            "table_memory_limit: empty size",
        ),
        (
            &["pool", "set", "tank", "table_memory_limit=16E"],
            "too large",
        ),
        (
            &[
                "pool",
                "set",
                "tank",
                "table_memory_limit=1G",
                "table_memory_limit=2G",
            ],
            "property table_memory_limit given twice",
        ),
        // A bad later assignment stops the whole command before any write.
        (
            &["pool", "set", "tank", "table_memory_limit=1G", "nope=1"],
            "unknown property \"nope\"",
        ),
        (
            &["pool", "set", "bad/name", "table_memory_limit=1G"],
            "invalid pool name",
        ),
    ] {
        let r = fk.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.err.starts_with("zvpoolctl: ") && r.err.contains(msg),
            "{args:?}: {}",
            r.err
        );
        assert!(
            r.err
                .contains("usage: zvpoolctl pool set NAME PROPERTY=VALUE..."),
            "{}",
            r.err
        );
        assert_eq!(r.out, "");
    }
    assert_eq!(fk.ops(), ops);
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn set_and_get_an_unknown_pool() {
    let fk = setup_with_volumes();
    let before = fk.snapshot();
    for args in [
        &["pool", "set", "nosuch", "table_memory_limit=1G"][..],
        &["pool", "get", "nosuch"],
        &["pool", "get", "nosuch", "table_memory_limit"],
    ] {
        let r = fk.run(args);
        assert_fails(
            &r,
            1,
            "zvpoolctl: pool nosuch: no such pool (see 'zvpoolctl pool list')",
        );
    }
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn set_and_get_on_a_module_without_the_attribute() {
    let fk = with_volumes(FakeKernel::new().without_table_memory());
    let before = fk.snapshot();
    let why = "the loaded zvpool module has no table_memory_limit attribute (it is older than \
               the property); load a newer zvpool module [No such file or directory (ENOENT)]";
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=1G"]);
    assert_fails(
        &r,
        1,
        &format!("zvpoolctl: set table_memory_limit of pool tank: {why}"),
    );
    let r = fk.run(&["pool", "get", "tank", "table_memory_limit"]);
    assert_fails(
        &r,
        1,
        &format!("zvpoolctl: get table_memory_limit of pool tank: {why}"),
    );
    // All properties: the missing one is `-`, with a warning.
    let r = fk.run(&["pool", "get", "-H", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "tank\ttable_memory_limit\t-\ntank\tspace_low_pct\t-\ntank\tspace_critical_pct\t-\n\
         tank\tno_space_timeout\t-\ntank\tpool_reserve_pct\t-\ntank\ttiering\t-\n"
    );
    let warn = |a: &str| {
        format!(
            "zvpoolctl: warning: pool tank: the loaded zvpool module has no {a} \
             attribute (it is older than the property)\n"
        )
    };
    assert_eq!(
        r.err,
        warn("table_memory_limit")
            + &warn("space_low_pct")
            + &warn("space_critical_pct")
            + &warn("no_space_timeout")
            + &warn("pool_reserve_pct")
            + &warn("tiering")
    );
    assert_eq!(fk.snapshot(), before);
    // A kernel from before snapshots lacks it too.
    let fk = FakeKernel::legacy();
    fk.add_disk("/dev/zns0", false);
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 0);
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=1G"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("has no table_memory_limit attribute"),
        "{}",
        r.err
    );
}

#[test]
fn set_shows_the_kernels_refusal_and_keeps_the_limit() {
    let fk = setup_with_volumes();
    fk.fail_on(
        "write",
        "tank/table_memory_limit",
        EINVAL,
        "zvpool: tank: table_memory_limit takes bytes (decimal; 0 for the default)",
    );
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set table_memory_limit of pool tank: Invalid argument (EINVAL); kernel: \
         zvpool: tank: table_memory_limit takes bytes (decimal; 0 for the default)",
    );
    assert!(!r.err.contains("rolled back"), "{}", r.err);
    assert_eq!(get_limit(&fk), DEFAULT);
}

#[test]
fn set_below_the_use_warns() {
    let fk = setup_with_volumes();
    fk.set_table_memory("tank", 3 << 30, 0);
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=4G"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=1G"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "set table_memory_limit of pool tank: 4.00G -> 1.00G\n"
    );
    assert!(
        r.err.starts_with(
            "zvpoolctl: warning: the block tables of pool tank already use 3.00G, more than the \
             limit: writes that need new table nodes fail with ENOSPC"
        ),
        "{}",
        r.err
    );
    assert_eq!(get_limit(&fk), 1 << 30);
}

#[test]
fn set_on_an_inactive_pool() {
    let fk = inactive_pool();
    assert_eq!(get_limit(&fk), DEFAULT);
    let r = fk.run(&["pool", "set", "tank", "table_memory_limit=256M"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "set table_memory_limit of pool tank: 8.00G -> 256M\n",
            ""
        ),
    );
    assert_eq!(get_limit(&fk), 256 << 20);
    // An inactive pool's status has no counters.
    let r = fk.run(&["pool", "status", "-H", "tank"]);
    assert!(r.out.contains("table_memory_limit\t-\n"), "{}", r.out);
}

// ---- pool get

#[test]
fn space_thresholds_set_and_refused() {
    let fk = setup_with_volumes();
    let r = fk.run(&[
        "pool",
        "set",
        "tank",
        "space_low_pct=30",
        "space_critical_pct=60",
    ]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (
            0,
            "set space_low_pct of pool tank: 80% -> 30%\nset space_critical_pct of pool tank: 95% -> 60%\n"
        ),
        "{r:?}"
    );
    let r = fk.run(&[
        "pool",
        "get",
        "-H",
        "tank",
        "space_low_pct",
        "space_critical_pct",
    ]);
    assert_eq!(
        r.out,
        "tank\tspace_low_pct\t30\ntank\tspace_critical_pct\t60\n"
    );
    // Not a percentage: a usage error, nothing written.
    let r = fk.run(&["pool", "set", "tank", "space_low_pct=120"]);
    assert_eq!(r.code, 2, "{r:?}");
    // Low above critical: the kernel refuses; what was set before is undone.
    let r = fk.run(&[
        "pool",
        "set",
        "tank",
        "space_critical_pct=off",
        "space_low_pct=70",
    ]);
    assert_eq!(r.code, 0, "critical off: any low: {r:?}");
    let r = fk.run(&["pool", "set", "tank", "space_critical_pct=50"]);
    assert_eq!(r.code, 1, "{r:?}");
    let r = fk.run(&["pool", "get", "-H", "tank", "space_critical_pct"]);
    assert_eq!(r.out, "tank\tspace_critical_pct\t0\n");
}

#[test]
fn get_output_formats() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "get", "tank"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "NAME  PROPERTY            VALUE\ntank  table_memory_limit  8.00G\n\
             tank  space_low_pct          80\ntank  space_critical_pct     95\n\
             tank  no_space_timeout        0\ntank  pool_reserve_pct        0\n\
             tank  tiering               off\n",
            ""
        )
    );
    let r = fk.run(&["pool", "get", "-H", "tank", "table_memory_limit"]);
    assert_eq!(r.out, "tank\ttable_memory_limit\t8.00G\n");
    let r = fk.run(&["pool", "get", "-Hp", "-o", "value,property", "tank"]);
    assert_eq!(
        r.out,
        format!(
            "{DEFAULT}\ttable_memory_limit\n80\tspace_low_pct\n95\tspace_critical_pct\n\
             0\tno_space_timeout\n0\tpool_reserve_pct\noff\ttiering\n"
        )
    );
    let r = fk.run(&["pool", "get", "-j", "tank", "table_memory_limit"]);
    assert_eq!(
        r.out,
        format!(
            "{{\n  \"properties\": [\n    {{\n      \"name\": \"tank\",\n      \"property\": \
             \"table_memory_limit\",\n      \"value\": {DEFAULT}\n    }}\n  ]\n}}\n"
        )
    );
    for (args, msg) in [
        (
            &["pool", "get", "tank", "quota"][..],
            "unknown property \"quota\"; known properties: table_memory_limit",
        ),
        (&["pool", "get"], "missing arguments"),
        (&["pool", "get", "-o", "bogus", "tank"], "unknown column"),
        (
            &["pool", "get", "-j", "-H", "tank"],
            "-j cannot be combined",
        ),
    ] {
        let r = fk.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.contains(msg), "{args:?}: {}", r.err);
        assert_eq!(r.out, "");
    }
}

#[test]
fn the_attribute_is_no_volume_name() {
    let fk = setup_with_volumes();
    let r = fk.run(&[
        "volume",
        "create",
        "tank/table_memory_limit",
        "--size",
        "1G",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err
            .contains("invalid volume name \"table_memory_limit\": reserved"),
        "{}",
        r.err
    );
}

#[test]
fn tiering_is_a_switch() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "set", "tank", "tiering=on"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let r = fk.run(&["pool", "get", "-H", "tank", "tiering"]);
    assert_eq!(r.out, "tank\ttiering\ton\n");
    let r = fk.run(&["pool", "set", "tank", "tiering=0"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fk.run(&["pool", "get", "-H", "tank", "tiering"]);
    assert_eq!(r.out, "tank\ttiering\toff\n");
    let r = fk.run(&["pool", "set", "tank", "tiering=maybe"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err.contains("tiering: \"maybe\" is not on or off"),
        "{r:?}"
    );
}
