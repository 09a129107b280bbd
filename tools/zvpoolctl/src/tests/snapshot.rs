// SPDX-License-Identifier: GPL-2.0
//! `snapshot` commands, `volume clone`/`promote`, online resize and the new
//! columns against the fake kernel (and its legacy mode: a kernel from before
//! snapshots).

use super::{assert_fails, setup_legacy_with_volumes, setup_with_volumes};
use crate::backend::{Backend, Obj};
use crate::error::{EBUSY, EEXIST, EINVAL, EIO, ENOENT, ENOSPC, EROFS};
use crate::testutil::fake::FakeKernel;
use std::fs;

/// `setup_with_volumes` plus snapshot vm1@s1 (id 4) of vm1; since the
/// snapshot vm1 overwrote 1G: vm1 and the snapshot map 3G each, 2G shared.
fn setup_with_snapshot() -> FakeKernel {
    let fk = setup_with_volumes();
    let r = fk.run(&["snapshot", "create", "tank/vm1@s1"]);
    assert_eq!(r.code, 0, "{r:?}");
    fk.set_usage("tank", "vm1", 3 << 30, 2 << 30);
    fk.set_usage("tank", "vm1@s1", 3 << 30, 2 << 30);
    fk
}

fn read(fk: &FakeKernel, rel: &str) -> String {
    fs::read_to_string(fk.root().join(rel)).unwrap()
}

/// Disables a volume behind zvpoolctl's back (`enable` <- 0).
fn disable(fk: &FakeKernel, vol: &str) {
    fk.write_attr(&Obj::volume("tank", vol), "enable", "0")
        .unwrap();
}

// ---- snapshot create

#[test]
fn snapshot_create_writes_vol_at_snap() {
    let fk = setup_with_volumes();
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "create", "tank/vm1@s1"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (0, "created snapshot tank/vm1@s1\n", "")
    );
    // One write, nothing bound.
    assert_eq!(fk.ops(), ops + 1);
    assert!(!fk.root().join("tank/vm1@s1").exists());
    assert!(
        read(&fk, "tank/volumes").contains(
            "4 vm1@s1 size_bytes=21474836480 mapped_bytes=3221225472 kind=snapshot origin=vm1 \
             exclusive_bytes=0 shared_bytes=3221225472 placement=any copies=1\n"
        ),
        "{}",
        read(&fk, "tank/volumes")
    );
}

#[test]
fn snapshot_create_refusals() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "create", "tank/vm1@s1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create snapshot tank/vm1@s1: a snapshot of that name exists",
    );
    let r = fk.run(&["snapshot", "create", "tank/nope@s1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create snapshot tank/nope@s1: no such volume tank/nope (see 'zvpoolctl volume list tank')",
    );
    let r = fk.run(&["snapshot", "create", "other/vm1@s1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool other: no such pool (see 'zvpoolctl pool list')",
    );
    assert_eq!(fk.ops(), ops);
    // The kernel's refusals (a race, a full pool) with its reason.
    let before = fk.snapshot();
    fk.fail_on(
        "write",
        "tank/snapshot",
        EEXIST,
        "zvpool: tank: 'vm1@s2' exists",
    );
    let r = fk.run(&["snapshot", "create", "tank/vm1@s2"]);
    assert_fails(&r, 1, "zvpoolctl: create snapshot tank/vm1@s2: a snapshot of that name exists [File exists (EEXIST); kernel: zvpool: tank: 'vm1@s2' exists]");
    fk.fail_on(
        "write",
        "tank/snapshot=vm1@s2",
        ENOSPC,
        "zvpool: tank: no room for another volume (4096)",
    );
    let r = fk.run(&["snapshot", "create", "tank/vm1@s2"]);
    assert_fails(&r, 1, "zvpoolctl: create snapshot tank/vm1@s2: No space left on device (ENOSPC); kernel: zvpool: tank: no room for another volume (4096)");
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn snapshot_names_are_checked_before_anything_happens() {
    let fk = setup_with_volumes();
    let ops = fk.ops();
    for (args, msg) in [
        (
            &["snapshot", "create", "tank/vm1"][..],
            "expected POOL/VOL@SNAP, got \"tank/vm1\" (a volume, not a snapshot)",
        ),
        (
            &["snapshot", "create", "vm1@s1"],
            "expected POOL/VOL@SNAP, got \"vm1@s1\"",
        ),
        (
            &["snapshot", "create", "tank/vm1@"],
            "invalid snapshot name \"vm1@\": expected VOL@SNAP (neither part may be empty)",
        ),
        (
            &["snapshot", "create", "tank/@s1"],
            "invalid snapshot name \"@s1\": expected VOL@SNAP (neither part may be empty)",
        ),
        (
            &["snapshot", "create", "tank/vm1@s1@s2"],
            "invalid snapshot name \"vm1@s1@s2\": more than one '@'",
        ),
        (
            &["snapshot", "create", "tank/vm1@s/1"],
            "the snapshot part may only have A-Z a-z 0-9 _ . -",
        ),
        (
            &["snapshot", "create", "tank/vm1@s 1"],
            "the snapshot part may only have",
        ),
        (
            &[
                "snapshot",
                "create",
                "tank/vm1@0123456789012345678901234567",
            ],
            "longer than 31 characters",
        ),
        (
            &["snapshot", "create", "tank/status@s1"],
            "invalid volume name \"status\": reserved",
        ),
        (&["snapshot", "create"], "missing arguments"),
        (
            &["snapshot", "create", "tank/vm1@a", "tank/vm1@b"],
            "unexpected argument",
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
                .contains("usage: zvpoolctl snapshot create POOL/VOL@SNAP\n"),
            "{}",
            r.err
        );
        assert_eq!(r.out, "");
    }
    // 31 characters in all is the limit.
    let r = fk.run(&["snapshot", "create", "tank/vm1@012345678901234567890123456"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fk.ops(), ops + 1);
}

#[test]
fn old_kernel_without_snapshots_is_told_apart() {
    let fk = setup_legacy_with_volumes();
    let ops = fk.ops();
    let before = fk.snapshot();
    for (args, what) in [
        (
            &["snapshot", "create", "tank/vm1@s1"][..],
            "create snapshot tank/vm1@s1",
        ),
        (
            &["snapshot", "rollback", "tank/vm1@s1"],
            "roll back volume tank/vm1 to snapshot tank/vm1@s1",
        ),
        (
            &["volume", "clone", "tank/vm1@s1", "c1"],
            "clone tank/vm1@s1 as tank/c1",
        ),
        (
            &["volume", "promote", "tank/vm1"],
            "promote volume tank/vm1",
        ),
    ] {
        let r = fk.run(args);
        assert_fails(&r, 1, &format!("zvpoolctl: {what}: the loaded zvpool module does not support snapshots (features: zoned-members thin-volumes); load a newer zvpool module"));
    }
    assert_eq!(fk.ops(), ops);
    assert_eq!(fk.snapshot(), before);
    // Listing works and finds none.
    let r = fk.run(&["snapshot", "list"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "NAME  ORIGIN  SIZE  USED  UNIQUE\n")
    );
}

#[test]
fn without_a_features_file_the_kernel_answers() {
    // No features file: zvpoolctl writes and reports what the kernel says
    // (an old kernel has no such attribute file).
    let fk = setup_legacy_with_volumes();
    fs::remove_file(fk.root().join("features")).unwrap();
    let r = fk.run(&["snapshot", "create", "tank/vm1@s1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create snapshot tank/vm1@s1: no such volume tank/vm1 [No such file or directory (ENOENT)]",
    );
}

// ---- snapshot list, volume list/show with kinds

#[test]
fn snapshot_list_table_json_and_filters() {
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm2@daily"]).code, 0);
    let r = fk.run(&["snapshot", "list"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "NAME            ORIGIN     SIZE   USED  UNIQUE\n\
             tank/vm1@s1     tank/vm1  20.0G  3.00G   1.00G\n\
             tank/vm2@daily  tank/vm2  1.50G     0B      0B\n",
            ""
        )
    );
    let r = fk.run(&["snapshot", "list", "-Hp", "tank/vm1"]);
    assert_eq!(
        r.out,
        "tank/vm1@s1\ttank/vm1\t21474836480\t3221225472\t1073741824\n"
    );
    let r = fk.run(&[
        "snapshot",
        "list",
        "-H",
        "-o",
        "snapshot,volume,state",
        "tank/vm2",
        "tank",
    ]);
    assert_eq!(
        r.out,
        "daily\tvm2\tunbound\ns1\tvm1\tunbound\ndaily\tvm2\tunbound\n"
    );
    let r = fk.run(&["snapshot", "list", "-j", "tank/vm1"]);
    assert_eq!(
        r.out,
        "{\n  \"snapshots\": [\n    {\n      \"name\": \"tank/vm1@s1\",\n      \"pool\": \"tank\",\n      \
         \"volume\": \"vm1\",\n      \"snapshot\": \"s1\",\n      \"origin\": \"tank/vm1\",\n      \"id\": 4,\n      \
         \"size\": 21474836480,\n      \"used\": 3221225472,\n      \"unique\": 1073741824,\n      \
         \"shared\": 2147483648,\n      \"state\": \"unbound\",\n      \"device\": null,\n      \"devt\": null\n    }\n  ]\n}\n"
    );
    let r = fk.run(&["snapshot", "list", "tank/nope"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: volume tank/nope: no such volume (see 'zvpoolctl volume list tank')",
    );
    let r = fk.run(&["snapshot", "list", "nosuch"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: pool nosuch: no such pool (see 'zvpoolctl pool list')",
    );
    let r = fk.run(&["snapshot", "list", "-o", "name,bogus"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("valid columns: name,pool,volume,snapshot,origin,id,size,used,unique,shared,state,device,devt"), "{}", r.err);
    // A volume without snapshots lists none.
    assert_eq!(
        fk.run(&["volume", "create", "tank/empty", "-s", "1G"]).code,
        0
    );
    let r = fk.run(&["snapshot", "list", "-H", "tank/empty"]);
    assert_eq!((r.code, r.out.as_str()), (0, ""));
}

#[test]
fn volume_list_hides_snapshots_unless_asked() {
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]).code, 0);
    let r = fk.run(&["volume", "list"]);
    assert_eq!(
        r.out,
        "NAME       SIZE   USED  STATE    DEVICE\n\
         tank/vm1  20.0G  3.00G  enabled  /dev/zvpool0\n\
         tank/vm2  1.50G     0B  enabled  /dev/zvpool1\n\
         tank/c1   20.0G  3.00G  enabled  /dev/zvpool2\n"
    );
    let r = fk.run(&[
        "volume",
        "list",
        "-t",
        "all",
        "-o",
        "name,kind,origin,used,unique,shared",
    ]);
    assert_eq!(
        r.out,
        "NAME         KIND      ORIGIN        USED  UNIQUE  SHARED\n\
         tank/vm1     volume    -            3.00G   1.00G   2.00G\n\
         tank/vm2     volume    -               0B      0B      0B\n\
         tank/vm1@s1  snapshot  tank/vm1     3.00G   1.00G   2.00G\n\
         tank/c1      clone     tank/vm1@s1  3.00G      0B   3.00G\n"
    );
    let r = fk.run(&[
        "volume",
        "list",
        "-H",
        "-o",
        "name",
        "--type=snapshot,clone",
    ]);
    assert_eq!(r.out, "tank/vm1@s1\ntank/c1\n");
    let r = fk.run(&["volume", "list", "-H", "-o", "name", "-t", "volume"]);
    assert_eq!(r.out, "tank/vm1\ntank/vm2\n");
    let r = fk.run(&["volume", "list", "-t", "bogus"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.starts_with(
            "zvpoolctl: unknown type \"bogus\" for -t; valid types: volume, clone, snapshot, all\n"
        ),
        "{}",
        r.err
    );
    // JSON: every field, exact bytes.
    let r = fk.run(&[
        "volume",
        "list",
        "-j",
        "-o",
        "name,kind,origin,used,unique,shared",
    ]);
    assert!(
        r.out.contains(
            "    {\n      \"name\": \"tank/c1\",\n      \"kind\": \"clone\",\n      \"origin\": \"tank/vm1@s1\",\n      \
             \"used\": 3221225472,\n      \"unique\": 0,\n      \"shared\": 3221225472\n    }\n"
        ),
        "{}",
        r.out
    );
    assert!(r.out.contains("\"name\": \"tank/vm1\",\n      \"kind\": \"volume\",\n      \"origin\": null,\n      \"used\": 3221225472,\n      \"unique\": 1073741824,\n      \"shared\": 2147483648\n"), "{}", r.out);
    assert!(!r.out.contains("\"kind\": \"snapshot\""), "{}", r.out);
}

#[test]
fn volume_show_of_a_snapshot_and_bound_snapshot_usage() {
    let fk = setup_with_snapshot();
    // Bound and enabled, a snapshot's files say what it is.
    fk.create(&Obj::volume("tank", "vm1@s1")).unwrap();
    fk.write_attr(&Obj::volume("tank", "vm1@s1"), "enable", "1")
        .unwrap();
    assert!(read(&fk, "tank/vm1@s1/usage").contains(
        "kind snapshot\norigin vm1\nexclusive_bytes 1073741824\nshared_bytes 2147483648\n"
    ));
    let r = fk.run(&["volume", "show", "-H", "-p", "tank/vm1@s1"]);
    assert_eq!(
        r.out,
        "name\ttank/vm1@s1\npool\ttank\nvolume\tvm1@s1\nkind\tsnapshot\norigin\ttank/vm1\nid\t4\n\
         size\t21474836480\nused\t3221225472\nunique\t1073741824\nshared\t2147483648\n\
         mapped_blocks\t786432\nstate\tenabled\ndevice\t/dev/zvpool2\ndevt\t252:2\nplacement\tany\ncopies\t1\n\
         riops\t0\nwiops\t0\nrbps\t0\nwbps\t0\nquota\t0\nreservation\t0\n"
    );
    let r = fk.run(&["snapshot", "list", "-H", "-o", "name,state,device"]);
    assert_eq!(r.out, "tank/vm1@s1\tenabled\t/dev/zvpool2\n");
    // Not in volume list (nor in pool status' volumes).
    let r = fk.run(&["volume", "list", "-H", "-o", "name"]);
    assert_eq!(r.out, "tank/vm1\ntank/vm2\n");
    let r = fk.run(&["volume", "show", "tank/vm1@nope"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: volume tank/vm1@nope: no such volume (see 'zvpoolctl snapshot list tank')",
    );
}

#[test]
fn old_format_volumes_and_usage_still_work() {
    let fk = setup_legacy_with_volumes();
    assert!(!read(&fk, "tank/volumes").contains("kind="));
    assert!(!read(&fk, "tank/vm1/usage").contains("kind"));
    let r = fk.run(&[
        "volume",
        "list",
        "-H",
        "-o",
        "name,kind,origin,used,unique,shared",
    ]);
    assert_eq!(
        r.out,
        "tank/vm1\tvolume\t-\t3.00G\t3.00G\t0B\ntank/vm2\tvolume\t-\t0B\t0B\t0B\n"
    );
    // Unbound: from the volumes lines alone.
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
    let r = fk.run(&[
        "volume",
        "list",
        "-H",
        "-p",
        "-o",
        "name,kind,origin,unique,shared,state",
    ]);
    assert_eq!(
        r.out,
        "tank/vm1\tvolume\t-\t3221225472\t0\tunbound\ntank/vm2\tvolume\t-\t0\t0\tunbound\n"
    );
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(r.out.contains("\"shared\": null,"), "{}", r.out);
    assert!(r.out.contains("\"snapshots\": null,"), "{}", r.out);
}

// ---- pool status / list

#[test]
fn pool_status_and_list_show_snapshots_and_shared() {
    let fk = setup_with_snapshot();
    let r = fk.run(&["pool", "status", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "used                  4.00G\nfree                  27.9G\ncap                   12%\nshared                2.00G\n",
        "volumes               3\nsnapshots             1\n",
        "volumes:\nNAME       SIZE   USED  STATE    DEVICE\ntank/vm1  20.0G  3.00G  enabled  /dev/zvpool0\n\
         tank/vm2  1.50G     0B  enabled  /dev/zvpool1\n",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    assert!(!r.out.contains("vm1@s1"), "{}", r.out);
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(
        r.out
            .contains("    \"cap\": 12,\n    \"shared\": 2147483648,\n"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("    \"volumes\": 3,\n    \"snapshots\": 1,\n"),
        "{}",
        r.out
    );
    let r = fk.run(&["pool", "status", "-Hp", "tank"]);
    assert!(r.out.contains("\nshared\t2147483648\n"), "{}", r.out);
    let r = fk.run(&["pool", "list", "-Hp", "-o", "name,volumes,snapshots,shared"]);
    assert_eq!(r.out, "tank\t3\t1\t2147483648\n");
}

#[test]
fn assemble_leaves_snapshots_unbound() {
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]).code, 0);
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (
            0,
            "assembled pool tank: 2 members, 3 volumes enabled\n  tank/vm1  /dev/zvpool3\n  \
             tank/vm2  /dev/zvpool4\n  tank/c1  /dev/zvpool5\n"
        ),
        "{r:?}"
    );
    assert!(!fk.root().join("tank/vm1@s1").exists());
    let r = fk.run(&["snapshot", "list", "-H", "-o", "name,state"]);
    assert_eq!(r.out, "tank/vm1@s1\tunbound\n");
}

// ---- snapshot delete

#[test]
fn snapshot_delete_unbound_and_refusals() {
    let fk = setup_with_snapshot();
    let r = fk.run(&["snapshot", "delete", "tank/vm1"]);
    assert_fails(
        &r,
        2,
        "zvpoolctl: expected POOL/VOL@SNAP, got \"tank/vm1\" (a volume, not a snapshot)",
    );
    let r = fk.run(&["volume", "delete", "tank/vm1@s1"]);
    assert_fails(
        &r,
        2,
        "zvpoolctl: tank/vm1@s1 is a snapshot, not a volume (see 'zvpoolctl snapshot --help')",
    );
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "delete", "tank/vm1@s1"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (0, "deleted snapshot tank/vm1@s1\n", "")
    );
    // Only delete_volume.
    assert_eq!(fk.ops(), ops + 1);
    assert!(!read(&fk, "tank/volumes").contains("vm1@s1"));
    let r = fk.run(&["snapshot", "delete", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: delete snapshot tank/vm1@s1: no such snapshot (see 'zvpoolctl snapshot list tank')");
}

#[test]
fn snapshot_delete_of_a_bound_snapshot_disables_and_unbinds_first() {
    let fk = setup_with_snapshot();
    let s1 = Obj::volume("tank", "vm1@s1");
    fk.create(&s1).unwrap();
    fk.write_attr(&s1, "enable", "1").unwrap();
    fk.set_open("tank/vm1@s1", true);
    let before = fk.snapshot();
    let r = fk.run(&["snapshot", "delete", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: delete snapshot tank/vm1@s1: the snapshot is in use (its device is open) [Device or resource busy (EBUSY); kernel: zvpool: tank/vm1@s1: device is open]");
    assert_eq!(fk.snapshot(), before);
    fk.set_open("tank/vm1@s1", false);
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "delete", "tank/vm1@s1"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deleted snapshot tank/vm1@s1\n"),
        "{r:?}"
    );
    // enable=0, rmdir, delete_volume.
    assert_eq!(fk.ops(), ops + 3);
    assert!(!fk.root().join("tank/vm1@s1").exists());
}

#[test]
fn snapshot_delete_rolls_back_when_delete_volume_fails() {
    let fk = setup_with_snapshot();
    // Bound, disabled: the rollback restores the tree byte for byte.
    fk.create(&Obj::volume("tank", "vm1@s1")).unwrap();
    let before = fk.snapshot();
    fk.fail_on(
        "write",
        "tank/delete_volume=vm1@s1",
        EIO,
        "zvpool: tank: cannot delete volume 'vm1@s1': injected",
    );
    let r = fk.run(&["snapshot", "delete", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: delete snapshot tank/vm1@s1: Input/output error (EIO); kernel: zvpool: tank: cannot delete volume 'vm1@s1': injected");
    assert!(
        r.err
            .ends_with("\nzvpoolctl: rolled back: re-bound snapshot tank/vm1@s1\n"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn deleting_an_origin_clears_origins() {
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]).code, 0);
    assert_eq!(fk.run(&["snapshot", "delete", "tank/vm1@s1"]).code, 0);
    let r = fk.run(&["volume", "show", "-H", "-o", "kind,origin", "tank/c1"]);
    assert_eq!(r.out, "kind\tclone\norigin\t-\n");
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm2@s"]).code, 0);
    assert_eq!(fk.run(&["volume", "delete", "tank/vm2"]).code, 0);
    let r = fk.run(&["snapshot", "list", "-H", "-o", "name,origin"]);
    assert_eq!(r.out, "tank/vm2@s\t-\n");
}

// ---- snapshot rollback

#[test]
fn rollback_refuses_an_enabled_volume() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    let before = fk.snapshot();
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: roll back volume tank/vm1 to snapshot tank/vm1@s1: the volume is enabled as /dev/zvpool0; disable the volume first (a rollback changes its data under its users)");
    let hint = format!(
        "zvpoolctl: hint: once nothing uses /dev/zvpool0 (unmounted, no VM): echo 0 > {}/tank/vm1/enable\n",
        fk.root().display()
    );
    assert!(r.err.ends_with(&hint), "{}", r.err);
    assert_eq!(fk.ops(), ops);
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn rollback_of_a_bound_disabled_volume_unbinds_and_rebinds() {
    let fk = setup_with_snapshot();
    // After the snapshot, vm1 grew and was written.
    assert_eq!(
        fk.run(&["volume", "resize", "tank/vm1", "-s", "30G"]).code,
        0
    );
    fk.set_usage("tank", "vm1", 5 << 30, 1 << 30);
    disable(&fk, "vm1");
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "rolled back volume tank/vm1 to snapshot tank/vm1@s1\n",
            ""
        )
    );
    // rmdir, rollback, mkdir.
    assert_eq!(fk.ops(), ops + 3);
    assert_eq!(read(&fk, "tank/vm1/enable"), "0\n");
    assert_eq!(read(&fk, "tank/vm1/size"), "21474836480\n");
    let r = fk.run(&["volume", "show", "-H", "-o", "size,used,state", "tank/vm1"]);
    assert_eq!(r.out, "size\t20.0G\nused\t3.00G\nstate\tdisabled\n");
    // The snapshot stays.
    let r = fk.run(&["snapshot", "list", "-H", "-o", "name"]);
    assert_eq!(r.out, "tank/vm1@s1\n");
}

#[test]
fn rollback_of_an_unbound_volume_is_one_write() {
    let fk = setup_with_snapshot();
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
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "rolled back volume tank/vm1 to snapshot tank/vm1@s1\n"),
        "{r:?}"
    );
    assert_eq!(fk.ops(), ops + 1);
    assert!(!fk.root().join("tank/vm1").exists());
}

#[test]
fn rollback_restores_the_directory_when_refused() {
    // rmdir(1) rollback(2) mkdir(3): a refusal before the rollback took
    // effect leaves the tree byte for byte as it was.
    for step in 1..=2 {
        let fk = setup_with_snapshot();
        disable(&fk, "vm1");
        let before = fk.snapshot();
        fk.fail_at(
            step,
            EBUSY,
            "zvpool: tank: volume 'vm1' is bound; remove its directory first",
        );
        let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err.contains(
                "(EBUSY); kernel: zvpool: tank: volume 'vm1' is bound; remove its directory first"
            ),
            "{}",
            r.err
        );
        if step == 2 {
            assert!(r.err.starts_with("zvpoolctl: roll back volume tank/vm1 to snapshot tank/vm1@s1: the volume is bound or busy [Device or resource busy (EBUSY); kernel: "), "{}", r.err);
            assert!(
                r.err
                    .ends_with("\nzvpoolctl: rolled back: re-bound volume tank/vm1\n"),
                "{}",
                r.err
            );
        }
        assert!(!r.err.contains("rollback failed"), "{}", r.err);
        assert_eq!(fk.snapshot(), before, "step {step}");
    }
    // The rollback took effect, binding the volume again failed: said so.
    let fk = setup_with_snapshot();
    disable(&fk, "vm1");
    fk.fail_at(3, EIO, "zvpool: tank/vm1: injected");
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: bind volume tank/vm1 again: Input/output error (EIO); kernel: zvpool: tank/vm1: injected");
    assert!(r.err.ends_with("\nzvpoolctl: volume tank/vm1 was rolled back to tank/vm1@s1 but is unbound now (it was bound and disabled before)\n"), "{}", r.err);
    let r = fk.run(&["volume", "list", "-H", "-o", "name,state"]);
    assert_eq!(r.out, "tank/vm1\tunbound\ntank/vm2\tenabled\n");
}

#[test]
fn rollback_to_a_snapshot_of_another_volume_is_refused_by_the_kernel() {
    // vm1 deleted and made again: vm1@s1 is no snapshot of the new vm1.
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["volume", "delete", "tank/vm1"]).code, 0);
    assert_eq!(
        fk.run(&["volume", "create", "tank/vm1", "-s", "1G"]).code,
        0
    );
    disable(&fk, "vm1");
    let before = fk.snapshot();
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@s1"]);
    assert_fails(&r, 1, "zvpoolctl: roll back volume tank/vm1 to snapshot tank/vm1@s1: tank/vm1@s1 is not a snapshot of tank/vm1 [Invalid argument (EINVAL); kernel: zvpool: tank: 'vm1@s1' is not a snapshot of 'vm1']");
    assert!(
        r.err
            .ends_with("zvpoolctl: rolled back: re-bound volume tank/vm1\n"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn rollback_refusals_before_any_change() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    let r = fk.run(&["snapshot", "rollback", "tank/vm1@nope"]);
    assert_fails(&r, 1, "zvpoolctl: roll back volume tank/vm1 to snapshot tank/vm1@nope: no such snapshot (see 'zvpoolctl snapshot list tank/vm1')");
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm2@s"]).code, 0);
    assert_eq!(fk.run(&["volume", "delete", "tank/vm2"]).code, 0);
    let ops2 = fk.ops();
    let r = fk.run(&["snapshot", "rollback", "tank/vm2@s"]);
    assert_fails(&r, 1, "zvpoolctl: roll back volume tank/vm2 to snapshot tank/vm2@s: no such volume tank/vm2 (see 'zvpoolctl volume list tank')");
    let r = fk.run(&["snapshot", "rollback", "tank/vm1"]);
    assert_fails(
        &r,
        2,
        "zvpoolctl: expected POOL/VOL@SNAP, got \"tank/vm1\" (a volume, not a snapshot)",
    );
    assert_eq!(fk.ops(), ops2);
    // snapshot create (1), volume delete (enable=0, rmdir, delete_volume).
    assert_eq!(ops2, ops + 4);
}

// ---- volume clone

#[test]
fn clone_writes_snapshot_and_name_then_binds_and_enables() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    let r = fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "created clone tank/c1 of tank/vm1@s1: 20.0G, /dev/zvpool2\n",
            ""
        )
    );
    // clone, mkdir, enable.
    assert_eq!(fk.ops(), ops + 3);
    assert_eq!(read(&fk, "tank/c1/enable"), "1\n");
    assert!(read(&fk, "tank/volumes").contains("5 c1 size_bytes=21474836480 mapped_bytes=3221225472 kind=clone origin=vm1@s1 exclusive_bytes=0 shared_bytes=3221225472 placement=any copies=1\n"), "{}", read(&fk, "tank/volumes"));
    let r = fk.run(&[
        "volume",
        "show",
        "-j",
        "-o",
        "name,kind,origin,size,unique,shared,device",
        "tank/c1",
    ]);
    assert_eq!(
        r.out,
        "{\n  \"volume\": {\n    \"name\": \"tank/c1\",\n    \"kind\": \"clone\",\n    \"origin\": \"tank/vm1@s1\",\n    \
         \"size\": 21474836480,\n    \"unique\": 0,\n    \"shared\": 3221225472,\n    \"device\": \"/dev/zvpool2\"\n  }\n}\n"
    );
    // POOL/NEWVOL in the same pool is accepted.
    let r = fk.run(&["volume", "clone", "tank/vm1@s1", "tank/c2"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn clone_rolls_back_at_every_step() {
    // clone(1) mkdir(2) enable(3).
    for step in 1..=3 {
        let fk = setup_with_snapshot();
        let before = fk.snapshot();
        fk.fail_at(step, ENOSPC, "zvpool: tank: injected");
        let r = fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err
                .contains("No space left on device (ENOSPC); kernel: zvpool: tank: injected"),
            "{}",
            r.err
        );
        let what = [
            "clone tank/vm1@s1 as tank/c1",
            "bind clone tank/c1",
            "enable clone tank/c1",
        ][step - 1];
        assert!(
            r.err.starts_with(&format!("zvpoolctl: {what}: ")),
            "{}",
            r.err
        );
        if step > 1 {
            assert!(
                r.err
                    .ends_with("\nzvpoolctl: rolled back: deleted the new clone tank/c1\n"),
                "{}",
                r.err
            );
        }
        assert_eq!(fk.snapshot(), before, "step {step}");
    }
}

#[test]
fn clone_refusals() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    for (args, code, first) in [
        (&["volume", "clone", "tank/vm1@nope", "c1"][..], 1, "zvpoolctl: clone tank/vm1@nope as tank/c1: no such snapshot tank/vm1@nope (see 'zvpoolctl snapshot list tank')"),
        (&["volume", "clone", "tank/vm1@s1", "vm2"], 1, "zvpoolctl: clone tank/vm1@s1 as tank/vm2: a volume named tank/vm2 exists"),
        (&["volume", "clone", "tank/vm1@s1", "vm1@s1"], 2, "zvpoolctl: invalid volume name \"vm1@s1\": '@' only separates a volume and a snapshot (POOL/VOL@SNAP names a snapshot)"),
        (&["volume", "clone", "tank/vm1", "c1"], 2, "zvpoolctl: expected POOL/VOL@SNAP, got \"tank/vm1\" (a volume, not a snapshot)"),
        (&["volume", "clone", "tank/vm1@s1", "c@x"], 2, "zvpoolctl: invalid volume name \"c@x\": '@' only separates a volume and a snapshot (POOL/VOL@SNAP names a snapshot)"),
        (&["volume", "clone", "tank/vm1@s1", "other/c1"], 2, "zvpoolctl: a clone is created in the pool of its snapshot (tank), not in \"other\""),
        (&["volume", "clone", "tank/vm1@s1"], 2, "zvpoolctl: missing arguments"),
    ] {
        let r = fk.run(args);
        assert_fails(&r, code, first);
        if code == 2 {
            assert!(r.err.contains("usage: zvpoolctl volume clone POOL/VOL@SNAP NEWVOL\n"), "{}", r.err);
        }
    }
    assert_eq!(fk.ops(), ops);
    // The kernel's EINVAL (the source is not a snapshot) with its reason.
    fk.fail_on(
        "write",
        "tank/clone",
        EINVAL,
        "zvpool: tank: 'vm1@s1' is not a snapshot",
    );
    let before = fk.snapshot();
    let r = fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]);
    assert_fails(&r, 1, "zvpoolctl: clone tank/vm1@s1 as tank/c1: tank/vm1@s1 cannot be cloned [Invalid argument (EINVAL); kernel: zvpool: tank: 'vm1@s1' is not a snapshot]");
    assert_eq!(fk.snapshot(), before);
}

// ---- volume promote

#[test]
fn promote_a_clone() {
    let fk = setup_with_snapshot();
    assert_eq!(fk.run(&["volume", "clone", "tank/vm1@s1", "c1"]).code, 0);
    let ops = fk.ops();
    let r = fk.run(&["volume", "promote", "tank/c1"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "promoted volume tank/c1: no longer depends on tank/vm1@s1\n",
            ""
        )
    );
    assert_eq!(fk.ops(), ops + 1);
    let r = fk.run(&["volume", "show", "-H", "-o", "kind,origin,state", "tank/c1"]);
    assert_eq!(r.out, "kind\tvolume\norigin\t-\nstate\tenabled\n");
    // Promoting a volume without origin is the kernel's business.
    let r = fk.run(&["volume", "promote", "tank/vm2"]);
    assert_eq!((r.code, r.out.as_str()), (0, "promoted volume tank/vm2\n"));
}

#[test]
fn promote_refusals() {
    let fk = setup_with_snapshot();
    let r = fk.run(&["volume", "promote", "tank/nope"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: promote volume tank/nope: no such volume (see 'zvpoolctl volume list tank')",
    );
    let r = fk.run(&["volume", "promote", "tank/vm1@s1"]);
    assert_fails(
        &r,
        2,
        "zvpoolctl: tank/vm1@s1 is a snapshot, not a volume (see 'zvpoolctl snapshot --help')",
    );
    fk.fail_on(
        "write",
        "tank/promote=vm1",
        ENOSPC,
        "zvpool: tank: no space for table nodes",
    );
    let r = fk.run(&["volume", "promote", "tank/vm1"]);
    assert_fails(&r, 1, "zvpoolctl: promote volume tank/vm1: No space left on device (ENOSPC); kernel: zvpool: tank: no space for table nodes");
    fk.fail_on(
        "write",
        "tank/promote",
        ENOENT,
        "zvpool: tank: no volume named 'vm1'",
    );
    let r = fk.run(&["volume", "promote", "tank/vm1"]);
    assert_fails(&r, 1, "zvpoolctl: promote volume tank/vm1: no such volume [No such file or directory (ENOENT); kernel: zvpool: tank: no volume named 'vm1']");
}

// ---- online resize

#[test]
fn resize_is_online_for_an_enabled_open_volume() {
    let fk = setup_with_volumes();
    fk.set_open("tank/vm2", true);
    let dev = read(&fk, "tank/vm2/dev");
    let ops = fk.ops();
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "2G"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "resized volume tank/vm2: 1.50G -> 2.00G (online, /dev/zvpool1)\n",
            ""
        )
    );
    // One write; the device stayed (same minor, still enabled).
    assert_eq!(fk.ops(), ops + 1);
    assert_eq!(read(&fk, "tank/vm2/dev"), dev);
    assert_eq!(read(&fk, "tank/vm2/size"), "2147483648\n");
    // A shrink still needs --shrink, online too.
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "1G"]);
    assert_fails(&r, 1, "zvpoolctl: resize volume tank/vm2: shrinking from 2.00G to 1.00G discards the data beyond 1.00G; add --shrink to confirm");
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "1G", "--shrink"]);
    assert_eq!(
        r.out,
        "resized volume tank/vm2: 2.00G -> 1.00G (online, /dev/zvpool1)\n"
    );
    // --offline is accepted; the kernel resizes online, nothing is disabled.
    let ops = fk.ops();
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "3G", "--offline"]);
    assert_eq!(
        r.out,
        "resized volume tank/vm2: 1.00G -> 3.00G (online, /dev/zvpool1)\n"
    );
    assert_eq!(fk.ops(), ops + 1);
    // A disabled volume: no "online".
    fk.set_open("tank/vm2", false);
    disable(&fk, "vm2");
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "4G"]);
    assert_eq!(r.out, "resized volume tank/vm2: 3.00G -> 4.00G\n");
}

#[test]
fn resize_of_a_snapshot_is_refused() {
    let fk = setup_with_snapshot();
    let ops = fk.ops();
    let r = fk.run(&["volume", "resize", "tank/vm1@s1", "--size", "30G"]);
    assert_fails(&r, 1, "zvpoolctl: resize snapshot tank/vm1@s1: snapshots are read-only and cannot be resized (clone it: 'zvpoolctl volume clone')");
    // Usage errors first.
    let r = fk.run(&["volume", "resize", "tank/vm1@s1", "--size", "30GB"]);
    assert_eq!(r.code, 2);
    assert_eq!(fk.ops(), ops);
    // The kernel's EROFS, should a read-only volume get past the name.
    let s1 = Obj::volume("tank", "vm1@s1");
    fk.create(&s1).unwrap();
    let e = fk.write_attr(&s1, "size", "4096").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EROFS));
    fk.fail_on(
        "write",
        "tank/vm2/size",
        EROFS,
        "zvpool: tank/vm2: a snapshot cannot be resized",
    );
    let r = fk.run(&["volume", "resize", "tank/vm2", "--size", "2G"]);
    assert_fails(&r, 1, "zvpoolctl: resize volume tank/vm2: the volume is read-only (a snapshot) [Read-only file system (EROFS); kernel: zvpool: tank/vm2: a snapshot cannot be resized]");
}

// ---- the fake kernel's refusals (what the commands above rely on)

#[test]
fn fake_kernel_refuses_as_the_abi_says() {
    let fk = setup_with_snapshot();
    let tank = Obj::pool("tank");
    let errno = |attr: &str, v: &str| fk.write_attr(&tank, attr, v).unwrap_err().raw_os_error();
    assert_eq!(errno("snapshot", "vm1@s1"), Some(EEXIST));
    assert_eq!(errno("snapshot", "nope@s1"), Some(ENOENT));
    assert_eq!(errno("snapshot", "vm1"), Some(EINVAL));
    assert_eq!(errno("clone", "vm1 c1"), Some(EINVAL));
    assert_eq!(errno("clone", "vm1@s1"), Some(EINVAL));
    assert_eq!(errno("clone", "vm1@s1 vm2"), Some(EEXIST));
    assert_eq!(errno("clone", "vm1@s1 c@1"), Some(EINVAL));
    assert_eq!(errno("promote", "vm1@s1"), Some(EINVAL));
    assert_eq!(errno("rollback", "vm1@s1"), Some(EBUSY));
    assert_eq!(errno("rollback", "vm2@s1"), Some(ENOENT));
    // mkdir of a snapshot name binds existing snapshots only.
    let e = fk.create(&Obj::volume("tank", "vm1@s9")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT));
    // Each refusal logged its reason.
    let log = fs::read_to_string(fk.root().parent().unwrap().join("kmsg")).unwrap();
    for line in [
        "zvpool: tank: 'vm1@s1' exists",
        "zvpool: tank: no volume named 'nope'",
        "zvpool: tank: invalid snapshot name 'vm1' (VOLUME@SNAP)",
        "zvpool: tank: 'vm1' is not a snapshot",
        "zvpool: tank: expected 'SNAPSHOT NAME'",
        "zvpool: tank: 'vm2' exists",
        "zvpool: tank: invalid volume name 'c@1'",
        "zvpool: tank: 'vm1@s1' is a snapshot",
        "zvpool: tank: volume 'vm1' is bound; remove its directory first",
        "zvpool: tank: no snapshot 'vm2@s1' or no volume 'vm2'",
        "zvpool: tank: no snapshot named 'vm1@s9' (snapshots are made by 'snapshot')",
    ] {
        assert!(
            log.contains(&format!(";{line}\n")),
            "{line:?} not in\n{log}"
        );
    }
    // A legacy kernel has none of these attributes.
    let old = setup_legacy_with_volumes();
    let e = old.write_attr(&tank, "snapshot", "vm1@s1").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT));
    let e = old
        .write_attr(&Obj::volume("tank", "vm1"), "size", "4096")
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EBUSY));
}
