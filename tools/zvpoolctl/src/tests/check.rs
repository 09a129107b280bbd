// SPDX-License-Identifier: GPL-2.0
//! `pool check` on synthetic pools made by zvcore (testutil::image).

use crate::check::{self, Report};
use crate::testutil::fake::FakeKernel;
use crate::testutil::image::{
    journal, make_image, make_mirrored_image, zns_geom, Image, MemDev, MemDevices,
};
use zvcore::recovery::DamageKind;

const A: &str = "/dev/nvme0n1";
const B: &str = "/dev/nvme1n1";

/// A fake kernel serving the image's devices as A (and B).
fn serve(img: &Image) -> FakeKernel {
    let fk = FakeKernel::new();
    for (p, d) in [A, B].iter().zip(&img.devs) {
        fk.set_image(p, d.clone());
    }
    fk
}

/// The first journal block after the checkpoint: (dev, block, seq).
fn first_after_checkpoint(img: &Image) -> (usize, u64, u64) {
    *journal(&img.devs)
        .iter()
        .find(|j| j.2 > img.checkpoint_seq)
        .expect("journal after the checkpoint")
}

/// A pool with mirrored volumes: checked like any (the check writes
/// nothing); the hidden companions are not counted as volumes.
#[test]
fn mirrored_pool_is_checked() {
    let img = make_mirrored_image(2, 3);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A, B]);
    assert_eq!(r.code, 0, "{r:?}");
    // Three volumes and the snapshot of the third.
    assert!(r.out.contains("volumes: 4\n"), "{}", r.out);
    assert!(r.out.ends_with("no problems found\n"), "{}", r.out);
}

#[test]
fn clean_pool_has_no_problems() {
    let img = make_image(2, 6);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A, B]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .contains(" 2 members\n  member 0: /dev/nvme0n1\n  member 1: /dev/nvme1n1\n"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains(&format!(
            "checkpoint: generation 1, covers journal sequence {}\n",
            img.checkpoint_seq
        )),
        "{}",
        r.out
    );
    assert!(r.out.contains("volumes: 8\n"), "{}", r.out);
    assert!(r.out.ends_with("no problems found\n"), "{}", r.out);
    assert_eq!(r.err, "");
    // Any order of the devices.
    let r = fk.run(&["pool", "check", B, A]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("  member 0: /dev/nvme0n1\n"), "{}", r.out);
}

#[test]
fn mid_journal_damage_is_reported() {
    let mut img = make_image(1, 6);
    let (d, block, seq) = first_after_checkpoint(&img);
    img.devs[d].flip(block, 200);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out.contains(&format!(
            "problem: metadata damaged: journal block {seq} is invalid"
        )),
        "{}",
        r.out
    );
    let zone = block / zns_geom().zone_blocks;
    let off = block % zns_geom().zone_blocks;
    assert!(
        r.out.contains(&format!(
            "  bad block: member 0 (/dev/nvme0n1), zone {zone}, block {off} (claims sequence {seq})\n"
        )),
        "{}",
        r.out
    );
    // The state before the damage knows none of the volumes the dropped
    // blocks change (the damaged block created vm1: unreadable).
    assert!(
        r.out.contains(
            "  a rewind drops 5 journal blocks (7 records) from sequence 1 (5 blocks committed)\n"
        ) || r.out.contains(
            "  a rewind drops 6 journal blocks (7 records) from sequence 1 (6 blocks committed)\n"
        ),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("  volumes affected: id 2, id 3, "),
        "{}",
        r.out
    );
    assert!(r.out.ends_with("1 problem found\n"), "{}", r.out);
    assert!(
        r.err.contains("assemble --read-only NAME /dev/nvme0n1"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("assemble --rewind NAME /dev/nvme0n1"),
        "{}",
        r.err
    );

    // The core's report, directly.
    let mut devs = MemDevices::new(&[A.to_string()], img.devs.clone());
    let Report::Assembled(a) = check::check(&mut devs) else {
        panic!("refused");
    };
    let dmg = a.damage.expect("damage");
    assert_eq!(dmg.damage.kind, DamageKind::JournalInvalid);
    assert_eq!(dmg.damage.seq, seq);
    assert_eq!(dmg.bad_path.as_deref(), Some(A));
    assert_eq!(a.replayed_blocks, 0);

    // JSON.
    let r = fk.run(&["pool", "check", "-j", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("\"status\": \"damaged\""), "{}", r.out);
    assert!(r.out.contains("\"kind\": \"journal-invalid\""), "{}", r.out);
    assert!(r.out.contains(&format!("\"seq\": {seq},")), "{}", r.out);
}

#[test]
fn later_damage_names_known_volumes() {
    let mut img = make_image(1, 6);
    let j = journal(&img.devs);
    // The 4th block after the checkpoint: vm1..vm3 (and vm3@s) exist before.
    let &(d, block, seq) = j
        .iter()
        .filter(|j| j.2 > img.checkpoint_seq)
        .nth(3)
        .expect("journal");
    img.devs[d].flip(block, 300);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out.contains(&format!("journal block {seq} is invalid")),
        "{}",
        r.out
    );
    assert!(r.out.contains("volumes: 4\n"), "{}", r.out);
    assert!(r.out.contains("journal: 3 blocks replayed"), "{}", r.out);
}

#[test]
fn refusals_are_distinct() {
    // Blank devices: no pool.
    let fk = FakeKernel::new();
    fk.set_image(A, MemDev::new(zns_geom()));
    let r = fk.run(&["pool", "check", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.out,
        "problem: no zvpool superblock on /dev/nvme0n1\n1 problem found\n"
    );
    let r = fk.run(&["pool", "check", "--json", A]);
    assert!(
        r.out.contains("\"status\": \"refused\",\n  \"errno\": 2,"),
        "{}",
        r.out
    );
    // A member missing: mismatch.
    let img = make_image(2, 1);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out
            .contains("problem: the devices do not match the pool: fewer devices"),
        "{}",
        r.out
    );
    // Both superblock copies damaged: damage, not "no pool".
    let mut img = make_image(1, 1);
    let zb = zns_geom().zone_blocks;
    img.devs[0].flip(0, 300);
    img.devs[0].flip(zb, 300);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", A]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out.starts_with("problem: metadata damaged: "),
        "{}",
        r.out
    );
}

#[test]
fn journal_listing_is_script_friendly() {
    let mut img = make_image(1, 3);
    let (d, block, seq) = first_after_checkpoint(&img);
    img.devs[d].flip(block, 200);
    let fk = serve(&img);
    let r = fk.run(&["pool", "check", "--journal", "-H", A]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), journal(&img.devs).len() + 1, "{}", r.out);
    let zone = block / zns_geom().zone_blocks;
    let off = block % zns_geom().zone_blocks;
    assert!(
        lines.contains(&format!("0\t{zone}\t{off}\t{seq}\t-\t-\t-\tinvalid\t{A}").as_str()),
        "{}",
        r.out
    );
    // The closing block ends a commit group.
    let last: Vec<&str> = lines.last().unwrap().split('\t').collect();
    assert_eq!((last[6], last[7]), ("commit", "valid"), "{}", r.out);
    let r = fk.run(&["pool", "check", "--journal", A]);
    assert!(r.out.starts_with("MEMBER  ZONE  BLOCK  SEQ"), "{}", r.out);
}

#[test]
fn usage_and_unreadable_devices() {
    let fk = FakeKernel::new();
    let r = fk.run(&["pool", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = fk.run(&["pool", "check", "-H", A]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = fk.run(&["pool", "check", "/nonexistent/zvpoolctl-dev"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err
            .starts_with("zvpoolctl: cannot read /nonexistent/zvpoolctl-dev: No such file"),
        "{}",
        r.err
    );
    assert_eq!(r.out, "");
}
