// SPDX-License-Identifier: GPL-2.0
//! `pool assemble --read-only / --rewind` and damage refusals against the
//! fake kernel; `pool status` with the new keys.

use super::{assert_fails, setup_legacy_with_volumes, setup_with_volumes};
use crate::testutil::image::{journal, make_image};
use std::fs;

const WHAT: &str = "journal block 1025 invalid (member 0 /dev/zns0 zone 0 block 1026)";

/// `tank` (vm1, vm2) stopped, its metadata on zns0 damaged.
fn damaged() -> crate::testutil::fake::FakeKernel {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    fk.set_damaged("/dev/zns0", WHAT);
    fk
}

#[test]
fn damage_is_refused_with_the_kernels_reasons_and_hints() {
    let fk = damaged();
    let before = fk.snapshot();
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: assemble pool tank: the pool's metadata is damaged [Structure needs cleaning (EUCLEAN)]",
    );
    // Every line about the pool, the warning-level hint too.
    assert!(
        r.err.contains(&format!(
            "zvpoolctl: kernel: zvpool: tank: cannot assemble: metadata damaged: {WHAT}\n\
             zvpoolctl: kernel: zvpool: tank: hint: assemble_mode=read-only"
        )),
        "{}",
        r.err
    );
    assert!(!r.err.contains("stale"), "{}", r.err);
    for h in [
        "hint: see what is damaged: zvpoolctl pool check /dev/zns0 /dev/zns1",
        "zvpoolctl pool assemble --read-only tank /dev/zns0 /dev/zns1",
        "zvpoolctl pool assemble --rewind tank /dev/zns0 /dev/zns1",
        "rolled back: removed pool directory tank",
    ] {
        assert!(r.err.contains(h), "{h}: {}", r.err);
    }
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn read_only_writes_the_mode_before_enable() {
    let fk = damaged();
    let r = fk.run(&[
        "pool",
        "assemble",
        "--read-only",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .starts_with("assembled pool tank read-only: 2 members, 2 volumes enabled\n"),
        "{}",
        r.out
    );
    // mkdir, 2 devices, format, assemble_mode, enable, 2 x (mkdir, enable)
    // after the stop; the kernel resets the mode after enable.
    let root = fk.root().join("tank");
    assert_eq!(
        fs::read_to_string(root.join("assemble_mode")).unwrap(),
        "normal\n"
    );
    let r = fk.run(&["pool", "status", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("read_only             1\n"), "{}", r.out);
    assert!(
        r.out.contains(&format!("damage                {WHAT}\n")),
        "{}",
        r.out
    );
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(r.out.contains("\"read_only\": 1,"), "{}", r.out);
    assert!(r.out.contains("\"last_rewind\": null,"), "{}", r.out);
}

#[test]
fn mode_is_written_between_format_and_enable() {
    let fk = damaged();
    // Steps after the stop: mkdir(1) devices(2,3) format(4) assemble_mode(5)
    // enable(6). A failing mode write rolls back.
    fk.fail_at(5, crate::error::EIO, "zvpool: tank: injected");
    let before = fk.snapshot();
    let r = fk.run(&[
        "pool",
        "assemble",
        "--rewind",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err
            .contains("zvpoolctl: set assemble_mode of pool tank: Input/output error (EIO)"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn rewind_shows_the_loss_then_assembles() {
    // The offline check reads a synthetic damaged image of the member.
    let mut img = make_image(1, 4);
    let &(d, block, seq) = journal(&img.devs)
        .iter()
        .find(|j| j.2 > img.checkpoint_seq)
        .unwrap();
    img.devs[d].flip(block, 200);
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    fk.set_damaged("/dev/zns0", WHAT);
    fk.set_image("/dev/zns0", img.devs[0].clone());
    fk.set_image("/dev/zns1", img.devs[0].clone());
    // Two devices, one-member image: the check says it does not match,
    // as a warning; the kernel decides.
    let r = fk.run(&[
        "pool",
        "assemble",
        "--rewind",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.err
            .contains("warning: offline check: the devices do not match"),
        "{}",
        r.err
    );
    assert!(
        r.out.contains("assembled pool tank (rewound): 2 members"),
        "{}",
        r.out
    );
    let r = fk.run(&["pool", "status", "tank"]);
    assert!(r.out.contains("rewinds               1\n"), "{}", r.out);
    assert!(
        r.out
            .contains("last_rewind           from_seq=1025 to_seq=1535 blocks=511"),
        "{}",
        r.out
    );
    // One member: the loss is shown before assembling.
    let fk = crate::testutil::fake::FakeKernel::new();
    fk.add_disk("/dev/zns0", false);
    assert_eq!(fk.run(&["pool", "create", "tank", "/dev/zns0"]).code, 0);
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    fk.set_damaged("/dev/zns0", WHAT);
    fk.set_image("/dev/zns0", img.devs[0].clone());
    let r = fk.run(&["pool", "assemble", "--rewind", "tank", "/dev/zns0"]);
    assert_eq!(r.code, 0, "{r:?}");
    let first = r.out.lines().next().unwrap();
    assert!(
        first.starts_with("rewinding pool tank: dropping ")
            && first.contains(&format!("from sequence {seq}; volumes affected: id 2")),
        "{}",
        r.out
    );
}

#[test]
fn old_kernels_refuse_the_modes_clearly() {
    let fk = setup_legacy_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let before = fk.snapshot();
    let r = fk.run(&[
        "pool",
        "assemble",
        "--read-only",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool tank read-only: the loaded zvpool module does not support read-only-assembly (features: zoned-members thin-volumes); load a newer zvpool module");
    let r = fk.run(&[
        "pool",
        "assemble",
        "--rewind",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_fails(&r, 1, "zvpoolctl: rewind pool tank: the loaded zvpool module does not support rewind (features: zoned-members thin-volumes); load a newer zvpool module");
    // Features unreadable: the missing attribute says it.
    fk.drop_features();
    let before_nf = fk.snapshot();
    let r = fk.run(&[
        "pool",
        "assemble",
        "--read-only",
        "tank",
        "/dev/zns0",
        "/dev/zns1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.starts_with("zvpoolctl: assemble pool tank with mode read-only: the loaded zvpool module has no assemble_mode attribute"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("rolled back: removed pool directory tank"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before_nf);
    drop(before);
    // Plain assembly still works, status has no new keys.
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/zns1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fk.run(&["pool", "status", "-j", "tank"]);
    assert!(r.out.contains("\"read_only\": null,"), "{}", r.out);
    assert!(r.out.contains("\"rewinds\": null,"), "{}", r.out);
}

#[test]
fn modes_exclude_each_other() {
    let fk = setup_with_volumes();
    let r = fk.run(&[
        "pool",
        "assemble",
        "--read-only",
        "--rewind",
        "t2",
        "/dev/zns0",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err
            .starts_with("zvpoolctl: --read-only, --rewind and --degraded exclude each other"),
        "{}",
        r.err
    );
}

#[test]
fn a_missing_member_is_refused_with_a_hint_then_assembled_degraded() {
    let fk = setup_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let before = fk.snapshot();
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns1"]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool tank: a member of the pool is not among the devices given [No such device (ENODEV)]");
    assert!(
        r.err.contains("hint: assemble without it (its blocks read as I/O errors until it is back): zvpoolctl pool assemble --degraded tank /dev/zns1"),
        "{}",
        r.err
    );
    assert!(
        r.err
            .contains("kernel: zvpool: tank: 1 member(s) of the pool not among the devices given"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("rolled back: removed pool directory tank"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
    let r = fk.run(&["pool", "assemble", "--degraded", "tank", "/dev/zns1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .starts_with("assembled pool tank degraded: 1 member, 2 volumes enabled"),
        "{}",
        r.out
    );
}

#[test]
fn degraded_assembly_needs_a_kernel_that_has_it() {
    let fk = setup_legacy_with_volumes();
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let r = fk.run(&["pool", "assemble", "--degraded", "tank", "/dev/zns0"]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool tank degraded: the loaded zvpool module does not support degraded-assembly (features: zoned-members thin-volumes); load a newer zvpool module");
}

#[test]
fn no_pool_and_mismatch_messages_differ() {
    let fk = setup_with_volumes();
    fk.add_disk("/dev/blank", false);
    let r = fk.run(&["pool", "assemble", "t2", "/dev/blank"]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool t2: no zvpool superblock on the devices given: they hold no pool (wrong devices?) [No such file or directory (ENOENT)]");
    assert!(
        r.err
            .contains("zvpoolctl: kernel: zvpool: t2: cannot assemble: no zvpool superblock"),
        "{}",
        r.err
    );
    // A pool member with a blank device: a mismatch.
    assert_eq!(fk.run(&["pool", "stop", "tank"]).code, 0);
    let r = fk.run(&["pool", "assemble", "tank", "/dev/zns0", "/dev/blank"]);
    assert_fails(&r, 1, "zvpoolctl: assemble pool tank: the devices given do not match the pool's members (missing, extra or another pool's devices; give all members) [Invalid argument (EINVAL)]");
}
