// SPDX-License-Identifier: GPL-2.0
//! `volume` commands against the fake kernel.

use super::{assert_fails, setup, setup_legacy_with_volumes, setup_with_volumes};
use crate::error::{EBUSY, EINVAL, EIO, ENOSPC};
use std::fs;

#[test]
fn create_sets_size_and_enables() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "create", "--size=512MiB", "tank/db"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (0, "created volume tank/db: 512M, /dev/zvpool2\n", "")
    );
    let d = fk.root().join("tank/db");
    assert_eq!(fs::read_to_string(d.join("size")).unwrap(), "536870912\n");
    assert_eq!(fs::read_to_string(d.join("enable")).unwrap(), "1\n");
}

#[test]
fn create_mirrored() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "create", "--size=1G", "--copies", "2", "tank/m"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "created volume tank/m: 1.00G, mirrored, /dev/zvpool2\n",
            ""
        )
    );
    let d = fk.root().join("tank/m");
    assert_eq!(fs::read_to_string(d.join("copies")).unwrap(), "2\n");
    // The default, and what is refused before anything is made.
    assert_eq!(fk.run(&["volume", "create", "--size=1G", "tank/p"]).code, 0);
    assert_eq!(
        fs::read_to_string(fk.root().join("tank/p/copies")).unwrap(),
        "1\n"
    );
    // Listed with their copies.
    let r = fk.run(&["volume", "list", "-H", "-o", "name,copies", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("tank/m\t2\n"), "{}", r.out);
    assert!(r.out.contains("tank/p\t1\n"), "{}", r.out);
    let before = fk.snapshot();
    let r = fk.run(&["volume", "create", "--size=1G", "--copies", "3", "tank/x"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.err.contains("--copies is 1 or 2, not '3'"), "{}", r.err);
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn create_rolls_back_at_every_step() {
    // mkdir(1) size(2) enable(3).
    for step in 1..=3 {
        let fk = setup_with_volumes();
        let before = fk.snapshot();
        fk.fail_at(step, ENOSPC, "zvpool: tank/db: injected");
        let r = fk.run(&["volume", "create", "tank/db", "--size", "1G"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err
                .contains("No space left on device (ENOSPC); kernel: zvpool: tank/db: injected"),
            "{}",
            r.err
        );
        let undo = match step {
            1 => "",
            2 => "\nzvpoolctl: rolled back: removed the new volume directory tank/db\n",
            _ => "\nzvpoolctl: rolled back: deleted the new volume tank/db\n",
        };
        assert!(r.err.contains(undo), "{}", r.err);
        assert_eq!(fk.snapshot(), before, "step {step}");
    }
}

#[test]
fn create_refusals() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "create", "tank/vm1", "--size", "1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create volume tank/vm1: a volume of that name exists",
    );
    let r = fk.run(&["volume", "create", "nosuch/vm1", "--size", "1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool nosuch: no such pool (see 'zvpoolctl pool list')",
    );
    // A volume of the metadata that is not bound must not be taken over.
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let r = fk.run(&["volume", "create", "tank/vm1", "--size", "1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool tank: no such pool (see 'zvpoolctl pool list')",
    );
    assert_eq!(
        fk.run(&[
            "pool",
            "assemble",
            "--no-volumes",
            "tank",
            "/dev/zns0",
            "/dev/zns1"
        ])
        .code,
        0
    );
    let r = fk.run(&["volume", "create", "tank/vm1", "--size", "1G"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create volume tank/vm1: a volume of that name exists",
    );
}

#[test]
fn create_on_inactive_pool() {
    let fk = setup(&["/dev/zns0"]);
    fk.fail_on("write", "tank/enable", EBUSY, "zvpool: tank: busy");
    fk.fail_on("rmdir", "tank", EIO, "zvpool: tank: injected");
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 1);
    let r = fk.run(&["volume", "create", "tank/vm1", "--size", "1G"]);
    assert_fails(&r, 1, "zvpoolctl: create volume tank/vm1: pool tank is not active (run 'zvpoolctl pool assemble tank DEV...')");
}

#[test]
fn create_usage_errors() {
    let fk = setup_with_volumes();
    let ops = fk.ops();
    for (args, msg) in [
        (&["volume", "create", "tank/x"][..], "--size is required"),
        (
            &["volume", "create", "tank/x", "--size", "20GB"],
            "unit \"GB\" is ambiguous",
        ),
        (
            &["volume", "create", "tank/x", "--size", "lots"],
            "invalid size \"lots\"",
        ),
        (
            &["volume", "create", "tank/x", "--size", "1000"],
            "not a multiple of 4096",
        ),
        (
            &["volume", "create", "tank/x", "--size", "0"],
            "at least 4096",
        ),
        (
            &["volume", "create", "tank/x", "--size", "2P"],
            "largest volume size",
        ),
        (
            &[
                "volume",
                "create",
                "tank/x",
                "--size",
                "99999999999999999999",
            ],
            "too large",
        ),
        (
            &["volume", "create", "tank/x", "--size"],
            "option --size needs a value",
        ),
        (
            &["volume", "create", "tankx", "--size", "1G"],
            "expected POOL/VOLUME",
        ),
        (
            &["volume", "create", "tank/a/b", "--size", "1G"],
            "invalid volume name",
        ),
        (
            &["volume", "create", "tank/status", "--size", "1G"],
            "reserved",
        ),
        (
            &["volume", "create", "/vm", "--size", "1G"],
            "invalid pool name",
        ),
        (
            &["volume", "create", "tank/x", "tank/y", "--size", "1G"],
            "unexpected argument",
        ),
    ] {
        let r = fk.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.contains(msg), "{args:?}: {}", r.err);
        assert!(
            r.err
                .contains("usage: zvpoolctl volume create --size SIZE [--copies 2] POOL/VOL"),
            "{}",
            r.err
        );
    }
    assert_eq!(fk.ops(), ops);
}

#[test]
fn delete_disables_and_removes() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "delete", "tank/vm1"]);
    assert_eq!((r.code, r.out.as_str()), (0, "deleted volume tank/vm1\n"));
    assert!(!fk.root().join("tank/vm1").exists());
    let r = fk.run(&["volume", "list", "-H", "-o", "name"]);
    assert_eq!(r.out, "tank/vm2\n");
    let r = fk.run(&["volume", "delete", "tank/vm1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: delete volume tank/vm1: no such volume (see 'zvpoolctl volume list tank')",
    );
}

#[test]
fn delete_open_volume_fails_and_rmdir_failure_rolls_back() {
    let fk = setup_with_volumes();
    fk.set_open("tank/vm1", true);
    let before = fk.snapshot();
    let r = fk.run(&["volume", "delete", "tank/vm1"]);
    assert_fails(&r, 1, "zvpoolctl: delete volume tank/vm1: the volume is in use (its device is open) [Device or resource busy (EBUSY); kernel: zvpool: tank/vm1: device is open]");
    assert_eq!(fk.snapshot(), before);
    fk.set_open("tank/vm1", false);
    fk.fail_on("rmdir", "tank/vm1", EIO, "zvpool: tank/vm1: injected");
    let r = fk.run(&["volume", "delete", "tank/vm1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("rolled back: re-enabled volume tank/vm1"),
        "{}",
        r.err
    );
    assert_eq!(
        fs::read_to_string(fk.root().join("tank/vm1/enable")).unwrap(),
        "1\n"
    );
}

#[test]
fn delete_unbound_volume_binds_it_first() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    assert_eq!(
        fk.run(&[
            "pool",
            "assemble",
            "--no-volumes",
            "tank",
            "/dev/zns0",
            "/dev/zns1"
        ])
        .code,
        0
    );
    let r = fk.run(&["volume", "delete", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fk.run(&["volume", "list", "-H", "-o", "name,state"]);
    assert_eq!(r.out, "tank/vm1\tunbound\n");
}

#[test]
fn resize_online_refused_then_offline() {
    let fk = setup_legacy_with_volumes();
    let before = fk.snapshot();
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "2G"]);
    assert_fails(&r, 1, "zvpoolctl: resize volume tank/vm2: online resize not supported yet; disable the volume first (or use --offline) [Device or resource busy (EBUSY); kernel: zvpool: tank/vm2: cannot resize an enabled volume]");
    assert_eq!(fk.snapshot(), before);
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "2G", "--offline"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "resized volume tank/vm2 offline: 1.50G -> 2.00G\n"),
        "{r:?}"
    );
    assert_eq!(
        fs::read_to_string(fk.root().join("tank/vm2/size")).unwrap(),
        "2147483648\n"
    );
    assert_eq!(
        fs::read_to_string(fk.root().join("tank/vm2/enable")).unwrap(),
        "1\n"
    );
}

#[test]
fn resize_offline_rolls_back() {
    // The online attempt (1, EBUSY), enable=0 (2), size (3), enable=1 (4).
    for step in 2..=4 {
        let fk = setup_legacy_with_volumes();
        fk.fail_at(step, EINVAL, "zvpool: tank/vm2: injected");
        let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "2G", "--offline"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err.contains("kernel: zvpool: tank/vm2: injected"),
            "{}",
            r.err
        );
        assert!(!r.err.contains("rollback failed"), "{}", r.err);
        let d = fk.root().join("tank/vm2");
        assert_eq!(
            fs::read_to_string(d.join("size")).unwrap(),
            "1610612736\n",
            "step {step}"
        );
        assert_eq!(
            fs::read_to_string(d.join("enable")).unwrap(),
            "1\n",
            "step {step}"
        );
    }
}

#[test]
fn resize_disabled_and_shrink() {
    let fk = setup_legacy_with_volumes();
    let r = fk.run(&["volume", "resize", "tank/vm1", "--size", "10G", "--offline"]);
    assert_fails(&r, 1, "zvpoolctl: resize volume tank/vm1: shrinking from 20.0G to 10.0G discards the data beyond 10.0G; add --shrink to confirm");
    fk.set_open("tank/vm1", true);
    let r = fk.run(&[
        "volume",
        "resize",
        "tank/vm1",
        "--size",
        "10G",
        "--offline",
        "--shrink",
    ]);
    assert!(
        r.err
            .contains("cannot take the volume offline: it is in use (open)"),
        "{}",
        r.err
    );
    let r = fk.run(&["volume", "resize", "tank/vm1", "--size", "20G"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "volume tank/vm1 is already 20.0G\n")
    );
    // An unbound volume is bound (disabled) and resized in place.
    fk.set_open("tank/vm1", false);
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    assert_eq!(
        fk.run(&[
            "pool",
            "assemble",
            "--no-volumes",
            "tank",
            "/dev/zns0",
            "/dev/zns1"
        ])
        .code,
        0
    );
    let r = fk.run(&["volume", "resize", "tank/vm1", "--size", "10G", "--shrink"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "resized volume tank/vm1: 20.0G -> 10.0G\n"),
        "{r:?}"
    );
    let r = fk.run(&[
        "volume",
        "show",
        "-H",
        "-p",
        "-o",
        "size,used,state",
        "tank/vm1",
    ]);
    // Bound for the resize, unbound again after.
    assert_eq!(
        r.out,
        "size\t10737418240\nused\t3221225472\nstate\tunbound\n"
    );
}

#[test]
fn list_and_show() {
    let fk = setup_with_volumes();
    let r = fk.run(&["volume", "list"]);
    assert_eq!(
        r.out,
        "NAME       SIZE   USED  STATE    DEVICE\n\
         tank/vm1  20.0G  3.00G  enabled  /dev/zvpool0\n\
         tank/vm2  1.50G     0B  enabled  /dev/zvpool1\n"
    );
    let r = fk.run(&["volume", "list", "-Hp", "tank"]);
    assert_eq!(r.out, "tank/vm1\t21474836480\t3221225472\tenabled\t/dev/zvpool0\ntank/vm2\t1610612736\t0\tenabled\t/dev/zvpool1\n");
    let r = fk.run(&["volume", "list", "nosuch"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool nosuch: no such pool (see 'zvpoolctl pool list')",
    );
    let r = fk.run(&["volume", "show", "tank/vm1"]);
    assert_eq!(
        r.out,
        "name           tank/vm1\npool           tank\nvolume         vm1\nkind           volume\norigin         -\n\
         id             2\nsize           20.0G\nused           3.00G\nunique         3.00G\nshared         0B\n\
         mapped_blocks  786432\nstate          enabled\ndevice         /dev/zvpool0\ndevt           252:0\nplacement      any\ncopies         1\n\
         riops          0\nwiops          0\nrbps           0B\nwbps           0B\n\
         quota          none\nreservation    none\n"
    );
    let r = fk.run(&[
        "volume",
        "show",
        "--json",
        "-o",
        "name,size,device",
        "tank/vm2",
    ]);
    assert_eq!(r.out, "{\n  \"volume\": {\n    \"name\": \"tank/vm2\",\n    \"size\": 1610612736,\n    \"device\": \"/dev/zvpool1\"\n  }\n}\n");
    let r = fk.run(&["volume", "show", "tank/nope"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: volume tank/nope: no such volume (see 'zvpoolctl volume list tank')",
    );
    let r = fk.run(&["volume", "list", "-j"]);
    assert!(r.out.starts_with("{\n  \"volumes\": [\n    {\n      \"name\": \"tank/vm1\",\n      \"pool\": \"tank\",\n"), "{}", r.out);
    let r = fk.run(&["volume", "list", "-j", "-H"]);
    assert_eq!(r.code, 2);
}

#[test]
fn delete_rolls_back_when_delete_volume_fails() {
    let fk = setup_with_volumes();
    let before = fk.snapshot();
    fk.fail_on(
        "write",
        "tank/delete_volume",
        EIO,
        "zvpool: tank: cannot delete volume 'vm1': injected",
    );
    let r = fk.run(&["volume", "delete", "tank/vm1"]);
    assert_fails(&r, 1, "zvpoolctl: delete volume tank/vm1: Input/output error (EIO); kernel: zvpool: tank: cannot delete volume 'vm1': injected");
    assert!(r.err.contains("rolled back: re-bound volume tank/vm1\nzvpoolctl: rolled back: re-enabled volume tank/vm1\n"), "{}", r.err);
    // Bound and enabled again (under a new minor number).
    let after = fk.snapshot();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(after.get("tank/vm1/enable"), before.get("tank/vm1/enable"));
    assert_eq!(after.get("tank/volumes"), before.get("tank/volumes"));
}

#[test]
fn delete_a_bound_volume_without_size_only_unbinds() {
    use crate::backend::{Backend, Obj};
    let fk = setup_with_volumes();
    // mkdir without a size write: bound, not in the metadata.
    fk.create(&Obj::volume("tank", "empty")).unwrap();
    let ops = fk.ops();
    let r = fk.run(&["volume", "delete", "tank/empty"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deleted volume tank/empty\n"),
        "{r:?}"
    );
    // Only the rmdir: the volume never reached the metadata.
    assert_eq!(fk.ops(), ops + 1);
}

/// A pool with 150 volumes in its metadata, unbound (more than a
/// configfs page lists).
fn many_unbound(fk: &super::FakeKernel) {
    for d in ["/dev/zns0", "/dev/zns1"] {
        fk.add_disk(d, false);
    }
    let r = fk.run(&["pool", "create", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(r.code, 0, "{r:?}");
    fk.add_meta_volumes("tank", "volume-number-", 150, 1 << 20);
}
#[test]
fn list_of_more_volumes_than_a_page_uses_the_control_device() {
    let fk = super::FakeKernel::new();
    many_unbound(&fk);
    let r = fk.run(&["volume", "list", "-H", "-o", "name,state"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.out.lines().count(), 150, "{}", r.out);
    assert!(r.out.contains("tank/volume-number-149\tunbound\n"));
    assert_eq!(r.err, "");
    // A module without it: one page (the rest is reported on stderr).
    let fk = super::FakeKernel::new().without_control();
    many_unbound(&fk);
    let r = fk.run(&["volume", "list", "-H", "-o", "name"]);
    assert_eq!(r.code, 0, "{r:?}");
    let shown = r.out.lines().count();
    assert!((30..150).contains(&shown), "{shown} listed");
}
