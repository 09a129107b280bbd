// SPDX-License-Identifier: GPL-2.0
//! `pool` commands against the fake kernel.

use super::{assert_fails, setup, setup_with_volumes};
use crate::error::{EBUSY, EINVAL, EIO, ENOSPC};
use crate::testutil::fake::FakeKernel;
use std::fs;

#[test]
fn create_formats_and_enables() {
    let fk = setup(&["/dev/zns0", "/dev/zns1"]);
    let r = fk.run(&["pool", "create", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.out, "created pool tank: 2 members, 31.9G capacity\n");
    assert_eq!(r.err, "");
    let root = fk.root().join("tank");
    assert_eq!(fs::read_to_string(root.join("enable")).unwrap(), "1\n");
    assert_eq!(
        fs::read_to_string(root.join("devices")).unwrap(),
        "0 /dev/zns0\n1 /dev/zns1\n"
    );
    // mkdir, 2 devices, format, enable.
    assert_eq!(fk.ops(), 5);
}

#[test]
fn create_with_checkpoint_zones() {
    let fk = setup(&["/dev/zns0"]);
    let r = fk.run(&[
        "pool",
        "create",
        "--checkpoint-zones",
        "3",
        "tank",
        "/dev/zns0",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let root = fk.root().join("tank");
    assert_eq!(
        fs::read_to_string(root.join("checkpoint_zones")).unwrap(),
        "3\n"
    );
    assert!(fs::read_to_string(root.join("status"))
        .unwrap()
        .contains("\ncheckpoint_zones 3\n"));
    // mkdir, device, checkpoint_zones, format, enable.
    assert_eq!(fk.ops(), 5);
    // Fixed once formatted.
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Out of range: refused before anything is written.
    let fk = setup(&["/dev/zns0"]);
    for bad in ["0", "4096", "x"] {
        let r = fk.run(&[
            "pool",
            "create",
            "--checkpoint-zones",
            bad,
            "tank",
            "/dev/zns0",
        ]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(
            r.err.contains("--checkpoint-zones takes 1 to 4095"),
            "{}",
            r.err
        );
    }
    assert_eq!(fk.ops(), 0);
}

#[test]
fn create_refuses_data_without_force() {
    let fk = setup(&["/dev/zns0"]);
    fk.add_disk("/dev/old", true);
    let before = fk.snapshot();
    let r = fk.run(&["pool", "create", "tank", "/dev/zns0", "/dev/old"]);
    assert_fails(&r, 1, "zvpoolctl: format and enable pool tank: Device or resource busy (EBUSY); kernel: zvpool: tank: /dev/old is not blank");
    assert!(r.err.contains("--force formats devices"), "{}", r.err);
    assert!(
        r.err.contains("rolled back: removed pool directory tank"),
        "{}",
        r.err
    );
    assert!(!r.err.contains("stale"), "{}", r.err);
    assert_eq!(fk.snapshot(), before);
    let r = fk.run(&["pool", "create", "--force", "tank", "/dev/zns0", "/dev/old"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        fs::read_to_string(fk.root().join("tank/enable")).unwrap(),
        "1\n"
    );
}

#[test]
fn create_rolls_back_at_every_step() {
    // mkdir(1) devices(2,3) format(4) enable(5): a failure at any step leaves
    // the tree as it was.
    for step in 1..=5 {
        let fk = setup(&["/dev/zns0", "/dev/zns1"]);
        let before = fk.snapshot();
        fk.fail_at(step, EIO, "zvpool: tank: injected failure");
        let r = fk.run(&["pool", "create", "tank", "/dev/zns0", "/dev/zns1"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err
                .contains("Input/output error (EIO); kernel: zvpool: tank: injected failure"),
            "{}",
            r.err
        );
        if step > 1 {
            assert!(
                r.err.contains("rolled back: removed pool directory tank"),
                "{}",
                r.err
            );
        }
        assert_eq!(fk.snapshot(), before, "step {step}");
    }
}

#[test]
fn create_reports_rollback_failure() {
    let fk = setup(&["/dev/zns0"]);
    fk.fail_on(
        "write",
        "tank/enable",
        EBUSY,
        "zvpool: tank: /dev/zns0 is busy",
    );
    fk.fail_on("rmdir", "tank", EIO, "zvpoolctl-test: rmdir failed");
    let r = fk.run(&["pool", "create", "tank", "/dev/zns0"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("rollback failed: removed pool directory tank: Input/output error (EIO)"),
        "{}",
        r.err
    );
}

#[test]
fn create_usage_errors() {
    let fk = setup(&["/dev/zns0"]);
    for (args, msg) in [
        (&["pool", "create", "tank"][..], "missing arguments"),
        (
            &["pool", "create", "bad/name", "/dev/zns0"],
            "invalid pool name",
        ),
        (
            &[
                "pool",
                "create",
                "a23456789012345678901234567890123",
                "/dev/zns0",
            ],
            "invalid pool name",
        ),
        (
            &["pool", "create", "tank", "/dev/zns0", "/dev/zns0"],
            "given twice",
        ),
        (
            &["pool", "create", "--bogus", "tank", "/dev/zns0"],
            "unknown option --bogus",
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
                .contains("usage: zvpoolctl pool create [-f] [--checkpoint-zones N] NAME DEV..."),
            "{}",
            r.err
        );
    }
    assert_eq!(fk.ops(), 0);
}

#[test]
fn create_existing_and_unknown_device() {
    let fk = setup(&["/dev/zns0", "/dev/zns1"]);
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 0);
    let r = fk.run(&["pool", "create", "tank", "/dev/zns1"]);
    assert_fails(&r, 1, "zvpoolctl: create pool tank: a pool of that name is already defined (see 'zvpoolctl pool list')");
    let before = fk.snapshot();
    let r = fk.run(&["pool", "create", "other", "/dev/nope"]);
    assert_fails(&r, 1, "zvpoolctl: add device /dev/nope to pool other: No such device (ENODEV); kernel: zvpool: other: /dev/nope is not a block device");
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn missing_driver() {
    let fk = FakeKernel::new();
    fs::remove_file(fk.root().join("features")).unwrap();
    fs::remove_dir(fk.root()).unwrap();
    let r = fk.run(&["pool", "list"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("zvpool is not available (is the zvpool module loaded"),
        "{}",
        r.err
    );
}

#[test]
fn stop_then_assemble_brings_volumes_back() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (0, "stopped pool tank\n", "")
    );
    // Only the root with its features file is left.
    assert_eq!(fk.snapshot().len(), 1);
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "assembled pool tank: 2 members, 2 volumes enabled\n  tank/vm1  /dev/zvpool2\n  tank/vm2  /dev/zvpool3\n"
    );
    let r = fk.run(&["volume", "list", "-H", "-o", "name,size,state"]);
    assert_eq!(
        r.out,
        "tank/vm1\t20.0G\tenabled\ntank/vm2\t1.50G\tenabled\n"
    );
}

#[test]
fn assemble_no_volumes() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let r = fk.run(&[
        "pool",
        "assemble",
        "--no-volumes",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fk.run(&["volume", "list", "-H", "-o", "name,state,device"]);
    assert_eq!(r.out, "tank/vm1\tunbound\t-\ntank/vm2\tunbound\t-\n");
}

#[test]
fn assemble_rolls_back_at_every_step() {
    // mkdir(1) devices(2,3) format(4) enable(5) mkdir vm1(6) enable vm1(7)
    // mkdir vm2(8) enable vm2(9): any failure leaves the tree as it was, and
    // the volumes survive (a second assemble finds them).
    for step in 1..=9 {
        let fk = setup_with_volumes();
        assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
        let before = fk.snapshot();
        fk.fail_at(step, ENOSPC, "zvpool: tank: injected");
        let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err.contains("(ENOSPC); kernel: zvpool: tank: injected"),
            "{}",
            r.err
        );
        assert!(!r.err.contains("rollback failed"), "{}", r.err);
        assert_eq!(fk.snapshot(), before, "step {step}");
        if step >= 8 {
            assert!(
                r.err.contains("rolled back: disabled volume tank/vm1"),
                "{}",
                r.err
            );
        }
        if step >= 7 {
            assert!(
                r.err.contains("rolled back: stopped pool tank"),
                "{}",
                r.err
            );
            assert!(
                r.err.contains("rolled back: unbound volume tank/vm1"),
                "{}",
                r.err
            );
        }
        let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
        assert_eq!(r.code, 0, "step {step}: {r:?}");
        assert!(r.out.contains("2 volumes enabled"), "{}", r.out);
    }
}

#[test]
fn assemble_rollback_reports_a_pool_that_cannot_stop() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    fk.fail_on("mkdir", "tank/vm2", EINVAL, "zvpool: tank/vm2: injected");
    fk.fail_on(
        "write",
        "tank/enable=0",
        EBUSY,
        "zvpool: tank: injected stop failure",
    );
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("rollback failed: stopped pool tank"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("pool tank is left assembled; see 'zvpoolctl pool status tank', then 'zvpoolctl pool stop tank'"),
        "{}",
        r.err
    );
    // Nothing was deleted; the pool is active with both volumes unbound.
    assert!(!r.err.contains("removed pool directory"), "{}", r.err);
    let r = fk.run(&["volume", "list", "-H", "-o", "name,state"]);
    assert_eq!(r.out, "tank/vm1\tunbound\ntank/vm2\tunbound\n");
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fk.snapshot().len(), 1);
}

#[test]
fn assemble_with_wrong_devices() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    fk.add_disk("/dev/zns9", false);
    let before = fk.snapshot();
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns9"]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool tank: the devices given do not match the pool's members (missing, extra or another pool's devices; give all members) [Invalid argument (EINVAL)]");
    assert!(
        r.err.contains(
            "zvpoolctl: kernel: zvpool: tank: /dev/zns9 carries no metadata of pool tank\n"
        ),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn stop_refuses_while_a_volume_is_open_and_rolls_back() {
    let fk = setup_with_volumes();
    fk.set_open("tank/vm2", true);
    let before = fk.snapshot();
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_fails(&r, 1, "zvpoolctl: stop pool tank: volume tank/vm2 is in use [Device or resource busy (EBUSY); kernel: zvpool: tank/vm2: device is open]");
    assert!(
        r.err.contains("rolled back: re-enabled volume tank/vm1"),
        "{}",
        r.err
    );
    // vm1 was re-enabled (with a new minor): same tree but for its dev.
    let after = fk.snapshot();
    assert_eq!(after.len(), before.len());
    assert_eq!(after.get("tank/vm1/enable"), before.get("tank/vm1/enable"));
    fk.set_open("tank/vm2", false);
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
}

#[test]
fn stop_inactive_pool_and_unknown_pool() {
    let fk = setup(&["/dev/zns0"]);
    let r = fk.run(&["pool", "stop", "nosuch"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool nosuch: no such pool (see 'zvpoolctl pool list')",
    );
    // A pool left defined but inactive (its enable failed and the rollback
    // failed too): stop only removes the directory.
    fk.fail_on("write", "tank/enable", EBUSY, "zvpool: tank: busy");
    fk.fail_on("rmdir", "tank", EIO, "zvpool: tank: injected");
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 1);
    let ops = fk.ops();
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_eq!((r.code, r.out.as_str()), (0, "stopped pool tank\n"));
    assert_eq!(fk.ops(), ops + 1);
    assert_eq!(fk.snapshot().len(), 1);
}

#[test]
fn add_device() {
    let fk = setup_with_volumes();
    fk.add_disk("/dev/zns2", false);
    let r = fk.run(&["pool", "add", "tank", "/dev/zns2"]);
    assert_fails(&r, 1, "zvpoolctl: add device /dev/zns2 to pool tank: the pool is active and this kernel cannot add members to an active pool yet [Device or resource busy (EBUSY); kernel: zvpool: tank: cannot add members to an active pool]");
    let r = fk.run(&["pool", "add", "tank"]);
    assert_eq!(r.code, 2);
    let r = fk.run(&["pool", "add", "tank", "/dev/a", "/dev/b"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains("unexpected argument \"/dev/b\""),
        "{}",
        r.err
    );
}

#[test]
fn list_and_status() {
    let fk = setup_with_volumes();
    let r = fk.run(&["pool", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "NAME  STATE   HEALTH   SIZE   USED   FREE  CAP  MEMBERS  VOLUMES\n\
         tank  active  ok      31.9G  3.00G  28.9G   9%        2        2\n"
    );
    let r = fk.run(&["pool", "list", "-Hp", "-o", "name,size,cap,wa"]);
    assert_eq!(r.out, "tank\t34225520640\t9\t1.250\n");
    let r = fk.run(&["pool", "list", "-o", "name,nope"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("unknown column \"nope\" for -o; valid columns: name,state,health,size,used,free,cap,members,volumes,wa,uuid,zones,zones_free"), "{}", r.err);
    let r = fk.run(&["pool", "status", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "pool:\nname                  tank\nstate                 active\nhealth                ok\n",
        "write_amplification   1.250\n",
        "members:\nINDEX  PATH       KIND  STATE  ZONES  FREE_ZONES  USE  ZONE_SIZE",
        "    1  /dev/zns1  zns   ok       256         255   0%      64.0M     64.0M        14          28            0             1  -      -\n",
        "volumes:\nNAME       SIZE   USED  STATE    DEVICE\ntank/vm1  20.0G  3.00G  enabled  /dev/zvpool0\n",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(
        r.out
            .starts_with("{\n  \"pool\": {\n    \"name\": \"tank\",\n"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("\"write_amplification\": 1.250,"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains(
            "  \"members\": [\n    {\n      \"index\": 0,\n      \"path\": \"/dev/zns0\","
        ),
        "{}",
        r.out
    );
    assert!(r.out.contains("\"devt\": \"252:1\""), "{}", r.out);
    // -o is not an option of status.
    assert_eq!(fk.run(&["pool", "status", "-o", "name", "tank"]).code, 2);
}

#[test]
fn list_inactive_pool_shows_dashes() {
    let fk = setup(&["/dev/zns0"]);
    fk.fail_on("write", "tank/enable", EBUSY, "zvpool: tank: busy");
    fk.fail_on("rmdir", "tank", EIO, "x");
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 1);
    let r = fk.run(&["pool", "list"]);
    assert_eq!(
        r.out,
        "NAME  STATE     HEALTH  SIZE  USED  FREE  CAP  MEMBERS  VOLUMES\n\
         tank  inactive  -       -     -     -     -          1  -\n"
    );
    let r = fk.run(&["pool", "list", "-j", "-o", "name,health,size"]);
    assert_eq!(r.out, "{\n  \"pools\": [\n    {\n      \"name\": \"tank\",\n      \"health\": null,\n      \"size\": null\n    }\n  ]\n}\n");
}

#[test]
fn create_with_busy_device_shows_kernel_reason() {
    let fk = setup(&["/dev/zns0"]);
    fk.set_disk_busy("/dev/zns0");
    let before = fk.snapshot();
    let r = fk.run(&["pool", "create", "tank", "/dev/zns0"]);
    assert_fails(&r, 1, "zvpoolctl: format and enable pool tank: Device or resource busy (EBUSY); kernel: zvpool: tank: /dev/zns0 is opened by someone else");
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn stop_when_the_kernel_stops_the_pool_but_reports_an_error() {
    let fk = setup_with_volumes();
    fk.fail_on_after(
        "write",
        "tank/enable=0",
        EINVAL,
        "zvpool: tank: final metadata commit failed: Error(22)",
    );
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "stopped pool tank\n"),
        "{r:?}"
    );
    assert_eq!(
        r.err,
        "zvpoolctl: warning: pool tank stopped, but the kernel reported an error: \
         Invalid argument (EINVAL); kernel: zvpool: tank: final metadata commit failed: Error(22)\n"
    );
    assert_eq!(fk.snapshot().len(), 1);
}

#[test]
fn stop_rolls_back_when_the_pool_refuses_to_stop() {
    let fk = setup_with_volumes();
    let before = fk.snapshot();
    fk.fail_on("write", "tank/enable=0", EIO, "zvpool: tank: injected");
    let r = fk.run(&["pool", "stop", "tank"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: stop pool tank: Input/output error (EIO); kernel: zvpool: tank: injected",
    );
    for done in [
        "re-bound volume tank/vm2",
        "re-bound volume tank/vm1",
        "re-enabled volume tank/vm2",
        "re-enabled volume tank/vm1",
    ] {
        assert!(
            r.err.contains(&format!("zvpoolctl: rolled back: {done}\n")),
            "{}",
            r.err
        );
    }
    let after = fk.snapshot();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(after.get("tank/vm1/enable"), before.get("tank/vm1/enable"));
}
