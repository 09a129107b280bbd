// SPDX-License-Identifier: GPL-2.0
//! Quotas, reservations and the pool reserve (issue 20): `volume set
//! POOL/VOL quota=SIZE reservation=SIZE`, their columns in `volume
//! list`/`show`, `pool set NAME pool_reserve_pct=PCT`, the space lines of
//! `pool status`/`list`, the kernel's refusals, and modules without them.
//! (The pool cache's part is in `import.rs`.)

use super::{assert_fails, setup_with_volumes, with_volumes};
use crate::backend::{Backend, Obj};
use crate::error::EROFS;
use crate::testutil::fake::{FakeKernel, ZONE};

const GIB: u64 = 1 << 30;
/// The fake's pool tank: two members of 255 data zones.
const CAP: u64 = 2 * 255 * ZONE;
/// What the fake holds back without a pool reserve (GC's room).
const GC_ROOM: u64 = 2 * ZONE;

fn attr(fk: &FakeKernel, vol: &str, a: &str) -> String {
    fk.read_attr(&Obj::volume("tank", vol), a)
        .unwrap()
        .trim()
        .to_string()
}

/// The `status` value of pool tank.
fn status(fk: &FakeKernel, key: &str) -> u64 {
    let st = fk.read_attr(&Obj::pool("tank"), "status").unwrap();
    crate::abi::KeyValues::parse(&st)
        .u64(key)
        .unwrap()
        .unwrap_or_else(|| panic!("no {key} in {st}"))
}

#[test]
fn set_show_list_and_clear_quota_and_reservation() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "set", "tank/vm1", "quota=10G", "reservation=5G"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        "set quota of volume tank/vm1: none -> 10.0G\n\
         set reservation of volume tank/vm1: none -> 5.00G\n"
    );
    assert_eq!(attr(&fk, "vm1", "quota_bytes"), (10 * GIB).to_string());
    assert_eq!(attr(&fk, "vm1", "reservation_bytes"), (5 * GIB).to_string());
    assert!(
        attr(&fk, "vm1", "usage")
            .ends_with("quota_bytes 10737418240\nreservation_bytes 5368709120"),
        "{}",
        attr(&fk, "vm1", "usage")
    );
    // show: human, -p, JSON.
    let r = fk.run(&["volume", "show", "tank/vm1"]);
    assert!(
        r.out
            .ends_with("quota          10.0G\nreservation    5.00G\n"),
        "{}",
        r.out
    );
    let r = fk.run(&[
        "volume",
        "show",
        "-Hp",
        "-o",
        "quota,reservation",
        "tank/vm1",
    ]);
    assert_eq!(r.out, "quota\t10737418240\nreservation\t5368709120\n");
    let r = fk.run(&[
        "volume",
        "show",
        "-j",
        "-o",
        "name,quota,reservation",
        "tank/vm2",
    ]);
    assert_eq!(
        r.out,
        "{\n  \"volume\": {\n    \"name\": \"tank/vm2\",\n    \"quota\": 0,\n    \
         \"reservation\": 0\n  }\n}\n"
    );
    // list: none for 0, - for a volume that is not bound.
    fk.remove(&Obj::volume("tank", "vm2")).unwrap();
    let r = fk.run(&["volume", "list", "-o", "name,quota,reservation,state"]);
    assert_eq!(
        r.out,
        "NAME      QUOTA  RESERVATION  STATE\n\
         tank/vm1  10.0G        5.00G  enabled\n\
         tank/vm2      -            -  unbound\n"
    );
    let r = fk.run(&["volume", "list", "-Hp", "-o", "name,quota,reservation"]);
    assert_eq!(r.out, "tank/vm1\t10737418240\t5368709120\ntank/vm2\t-\t-\n");
    let r = fk.run(&["volume", "list", "-j", "-o", "name,reservation"]);
    assert!(
        r.out
            .contains("\"name\": \"tank/vm1\",\n      \"reservation\": 5368709120\n")
            && r.out
                .contains("\"name\": \"tank/vm2\",\n      \"reservation\": null\n"),
        "{}",
        r.out
    );
    // Unbinding keeps the rules (they belong to the pool); setting binds.
    let r = fk.run(&["volume", "set", "tank/vm2", "quota=1G"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(fk.exists(&Obj::volume("tank", "vm2")));
    // Sizes round up to 4 KiB (the value in force is reported); mixed
    // with a limit; 0 and none clear.
    let r = fk.run(&[
        "volume",
        "set",
        "tank/vm1",
        "riops=100",
        "quota=none",
        "reservation=0",
    ]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        "set riops of volume tank/vm1: unlimited -> 100\n\
         set quota of volume tank/vm1: 10.0G -> none\n\
         set reservation of volume tank/vm1: 5.00G -> none\n"
    );
    assert_eq!(attr(&fk, "vm1", "quota_bytes"), "0");
    assert_eq!(attr(&fk, "vm1", "reservation_bytes"), "0");
    let r = fk.run(&[
        "volume",
        "set",
        "tank/vm2",
        "quota=10000",
        "reservation=1.5G",
    ]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        "set quota of volume tank/vm2: 1.00G -> 12.0K\n\
         set reservation of volume tank/vm2: none -> 1.50G\n"
    );
    assert_eq!(attr(&fk, "vm2", "quota_bytes"), "12288");
}

#[test]
fn a_quota_below_what_the_volume_maps_is_a_warning() {
    let fk = setup_with_volumes();
    // vm1 maps 3G.
    let r = fk.run(&["volume", "set", "tank/vm1", "quota=1G"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.out, "set quota of volume tank/vm1: none -> 1.00G\n");
    assert_eq!(
        r.err,
        "zvpoolctl: warning: volume tank/vm1 already maps 3.00G, more than its quota 1.00G: \
         writes to blocks it does not map fail with ENOSPC until data is discarded or the \
         quota is raised\n"
    );
    let r = fk.run(&["volume", "set", "tank/vm1", "quota=3G"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
}

#[test]
fn usage_errors_change_nothing() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm1@s1"]).code, 0);
    let before = fk.snapshot();
    let ops = fk.ops();
    for (args, first) in [
        (
            &["volume", "set", "tank/vm1", "quota=10GB"][..],
            "zvpoolctl: quota: invalid size \"10GB\": unit \"GB\" is ambiguous",
        ),
        (
            &["volume", "set", "tank/vm1", "reservation=lots"],
            "zvpoolctl: reservation: invalid size \"lots\"",
        ),
        (
            &["volume", "set", "tank/vm1", "quota=max"],
            "zvpoolctl: quota: invalid size \"max\"",
        ),
        (
            &["volume", "set", "tank/vm1", "reservation="],
            "zvpoolctl: reservation: empty size",
        ),
        (
            &["volume", "set", "tank/vm1", "riops=5", "refquota=1G"],
            "zvpoolctl: unknown property \"refquota\"; properties: riops, wiops, rbps, wbps, \
             quota, reservation",
        ),
        (
            &["volume", "set", "tank/vm1", "quota=1G", "quota=2G"],
            "zvpoolctl: property quota given twice",
        ),
        (
            &["volume", "set", "tank/vm1", "quota"],
            "zvpoolctl: expected PROPERTY=VALUE, got \"quota\"",
        ),
        (
            &["volume", "set", "tank/vm1@s1", "quota=1G"],
            "zvpoolctl: tank/vm1@s1 is a snapshot, not a volume (see 'zvpoolctl snapshot --help')",
        ),
        (
            &["pool", "set", "tank", "pool_reserve_pct=51"],
            "zvpoolctl: pool_reserve_pct: \"51\" is not a percentage (0 to 50, or off)",
        ),
        (
            &["pool", "set", "tank", "quota=1G"],
            "zvpoolctl: unknown property \"quota\"; known properties: table_memory_limit, \
             space_low_pct, space_critical_pct, no_space_timeout, pool_reserve_pct",
        ),
    ] {
        let r = fk.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.starts_with(first), "{args:?}: {}", r.err);
        assert_eq!(r.out, "");
    }
    assert_eq!(fk.ops(), ops);
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn kernel_refusals_are_clear_failures_and_roll_back() {
    let fk = setup_with_volumes();
    // Above the volume's size (vm2 is 1.5G): EINVAL.
    let r = fk.run(&["volume", "set", "tank/vm2", "reservation=2G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set reservation of volume tank/vm2: a reservation cannot be larger than \
         the volume (1.50G) [Invalid argument (EINVAL); kernel: zvpool: tank/vm2: reservation \
         above the volume size]",
    );
    // More than the pool can hold: ENOSPC; the quota set before it is
    // taken back.
    assert_eq!(
        fk.run(&["volume", "create", "tank/big", "--size", "1T"])
            .code,
        0
    );
    let avail = CAP - 3 * GIB - GC_ROOM;
    assert_eq!(status(&fk, "available_bytes"), avail);
    let r = fk.run(&["volume", "set", "tank/big", "quota=100G", "reservation=40G"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: set reservation of volume tank/big: the pool cannot hold a reservation \
             of 40.0G now (28.8G of the pool is available); see 'zvpoolctl pool status tank' \
             [No space left on device (ENOSPC); kernel: zvpool: tank/big: a reservation of \
             42949672960 bytes cannot be held: {avail} bytes of the pool are available]"
        ),
    );
    assert!(
        r.err
            .ends_with("zvpoolctl: rolled back: quota of volume tank/big back to 0\n"),
        "{}",
        r.err
    );
    assert_eq!(attr(&fk, "big", "quota_bytes"), "0");
    assert_eq!(attr(&fk, "big", "reservation_bytes"), "0");
    // What is available can be reserved, and then it is not available to
    // other volumes.
    let r = fk.run(&["volume", "set", "tank/big", &format!("reservation={avail}")]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(status(&fk, "available_bytes"), 0);
    assert_eq!(status(&fk, "reserved_bytes"), avail);
    let r = fk.run(&["volume", "set", "tank/vm1", "reservation=4G"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("(0B of the pool is available)"), "{}", r.err);
    // A snapshot takes neither (the kernel says EROFS; zvpoolctl refuses
    // snapshot names before asking it).
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm1@s1"]).code, 0);
    let snap = Obj::volume("tank", "vm1@s1");
    fk.create(&snap).unwrap();
    let e = fk.write_attr(&snap, "quota_bytes", "4096").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EROFS));
    fk.write_attr(&snap, "quota_bytes", "0").unwrap();
    fk.fail_on(
        "write",
        "tank/vm1/quota_bytes",
        EROFS,
        "zvpool: tank/vm1: a snapshot takes no quota or reservation",
    );
    let r = fk.run(&["volume", "set", "tank/vm1", "quota=1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set quota of volume tank/vm1: the volume is read-only (a snapshot): \
         snapshots take no quota or reservation [Read-only file system (EROFS); kernel: \
         zvpool: tank/vm1: a snapshot takes no quota or reservation]",
    );
}

#[test]
fn pool_reserve_pct_is_a_pool_property_and_holds_space_back() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "set", "tank", "pool_reserve_pct=10"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(r.out, "set pool_reserve_pct of pool tank: 0% -> 10%\n");
    let r = fk.run(&["pool", "get", "-Hp", "tank", "pool_reserve_pct"]);
    assert_eq!(r.out, "tank\tpool_reserve_pct\t10\n");
    let held = CAP / 10 + GC_ROOM;
    assert_eq!(status(&fk, "held_back_bytes"), held);
    assert_eq!(status(&fk, "available_bytes"), CAP - 3 * GIB - held);
    let r = fk.run(&["pool", "set", "tank", "pool_reserve_pct=50%"]);
    assert_eq!(r.out, "set pool_reserve_pct of pool tank: 10% -> 50%\n");
    // Half the pool held back: a reservation of 15G no longer fits.
    assert_eq!(
        fk.run(&["volume", "create", "tank/big", "--size", "1T"])
            .code,
        0
    );
    let r = fk.run(&["volume", "set", "tank/big", "reservation=15G"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("(12.8G of the pool is available)"),
        "{}",
        r.err
    );
    let r = fk.run(&["pool", "set", "tank", "pool_reserve_pct=off"]);
    assert_eq!(
        r.out,
        "set pool_reserve_pct of pool tank: 50% -> 0% (default)\n"
    );
    assert_eq!(
        fk.run(&["volume", "set", "tank/big", "reservation=15G"])
            .code,
        0
    );
}

#[test]
fn pool_status_and_list_show_available_and_reserved() {
    let fk = setup_with_volumes();
    // vm1 maps 3G: 2G of its reservation is unused.
    assert_eq!(
        fk.run(&["volume", "set", "tank/vm1", "reservation=5G"])
            .code,
        0
    );
    fk.set_rule_refusals("tank", 3, 1);
    let avail = CAP - 3 * GIB - 2 * GIB - GC_ROOM;
    let r = fk.run(&["pool", "status", "tank"]);
    let want = "cap                   9%\nshared                0B\n\
                available             26.8G\nreserved              2.00G\n\
                held_back             128M\npool_reserve_pct      0\n\
                quota_refusals        3\nreserve_refusals      1\n";
    assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    let want = format!(
        "\"available\": {avail},\n    \"reserved\": {},\n    \"held_back\": {GC_ROOM},\n    \
         \"pool_reserve_pct\": 0,\n    \"quota_refusals\": 3,\n    \"reserve_refusals\": 1,\n",
        2 * GIB
    );
    assert!(r.out.contains(&want), "missing {want:?} in\n{}", r.out);
    let r = fk.run(&["pool", "list", "-o", "name,free,available,reserved"]);
    assert_eq!(
        r.out,
        "NAME   FREE  AVAILABLE  RESERVED\ntank  28.9G      26.8G     2.00G\n"
    );
    let r = fk.run(&["pool", "list", "-Hp", "-o", "name,available,reserved"]);
    assert_eq!(r.out, format!("tank\t{avail}\t{}\n", 2 * GIB));
}

/// A module from before quotas and reservations: `volume set` says so,
/// the columns and lines are `-` (null), the pool property is missing.
#[test]
fn a_module_without_space_rules() {
    let fk = with_volumes(FakeKernel::new().without_space_rules());
    assert!(!fk.root().join("tank/vm1/quota_bytes").exists());
    let before = fk.snapshot();
    let r = fk.run(&["volume", "set", "tank/vm1", "quota=1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set quota of volume tank/vm1: the loaded zvpool module has no quota_bytes \
         attribute (no quotas or reservations); load a newer zvpool module",
    );
    // A limit set before it is taken back.
    let r = fk.run(&["volume", "set", "tank/vm1", "riops=5", "reservation=1G"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err
            .contains("rolled back: riops of volume tank/vm1 back to 0"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
    let r = fk.run(&[
        "volume",
        "show",
        "-Hp",
        "-o",
        "riops,quota,reservation",
        "tank/vm1",
    ]);
    assert_eq!(r.out, "riops\t0\nquota\t-\nreservation\t-\n");
    let r = fk.run(&["pool", "status", "-Hp", "tank"]);
    for want in [
        "\navailable\t-\n",
        "\nreserved\t-\n",
        "\nheld_back\t-\n",
        "\npool_reserve_pct\t-\n",
        "\nquota_refusals\t-\n",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    let r = fk.run(&["pool", "list", "-Hp", "-o", "name,available,reserved"]);
    assert_eq!(r.out, "tank\t-\t-\n");
    let r = fk.run(&["pool", "set", "tank", "pool_reserve_pct=5"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set pool_reserve_pct of pool tank: the loaded zvpool module has no \
         pool_reserve_pct attribute (it is older than the property); load a newer zvpool \
         module [No such file or directory (ENOENT)]",
    );
    let r = fk.run(&["pool", "get", "-H", "tank", "space_low_pct"]);
    assert_eq!(r.out, "tank\tspace_low_pct\t80\n");
}
