// SPDX-License-Identifier: GPL-2.0
//! `snapshot send` and `snapshot receive` against the fake kernel: full and
//! incremental round trips, the base check, damaged and cut streams, and
//! `--resume`.

use super::{assert_fails, setup_with_volumes};
use crate::testutil::fake::FakeKernel;

const M: u64 = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 249) as u8).wrapping_add(seed) | 1)
        .collect()
}

/// Pool tank with volume src (8M): data at 0 (8K), 1M (4K), 5M (64K), and
/// a block of zeros written at 2M; snapshot src@s1. A module without the
/// control device's `diff`: the snapshots are compared block by block.
fn source() -> FakeKernel {
    source_on(setup_with_volumes().without_diff())
}

fn source_on(fk: FakeKernel) -> FakeKernel {
    assert_eq!(
        fk.run(&["volume", "create", "tank/src", "--size", "8M"])
            .code,
        0
    );
    fk.put_data("tank", "src", 0, &pattern(8192, 1));
    fk.put_data("tank", "src", M, &pattern(4096, 2));
    fk.put_data("tank", "src", 2 * M, &[0; 4096]);
    fk.put_data("tank", "src", 5 * M, &pattern(65536, 3));
    assert_eq!(fk.run(&["snapshot", "create", "tank/src@s1"]).code, 0);
    fk
}

fn send(fk: &FakeKernel, args: &[&str]) -> Vec<u8> {
    let mut a = vec!["snapshot", "send"];
    a.extend_from_slice(args);
    let r = fk.run_io(&a, b"");
    assert_eq!(r.code, 0, "{}", r.err);
    r.out
}

fn receive(fk: &FakeKernel, args: &[&str], stream: &[u8]) -> crate::testutil::RunBytes {
    let mut a = vec!["snapshot", "receive"];
    a.extend_from_slice(args);
    fk.run_io(&a, stream)
}

/// The changes after s1: overwrite at 1M, zeros over 5M's first block, new
/// data at 7M, grow to 12M with data at 10M; snapshot src@s2.
fn change(fk: &FakeKernel) {
    fk.put_data("tank", "src", M, &pattern(4096, 9));
    fk.put_data("tank", "src", 5 * M, &[0; 4096]);
    fk.put_data("tank", "src", 7 * M, &pattern(4096, 4));
    assert_eq!(
        fk.run(&["volume", "resize", "tank/src", "--size", "12M"])
            .code,
        0
    );
    fk.put_data("tank", "src", 10 * M, &pattern(4096, 5));
    assert_eq!(fk.run(&["snapshot", "create", "tank/src@s2"]).code, 0);
}

#[test]
fn full_then_incremental_round_trip() {
    let fk = source();
    let before = fk.snapshot();
    let full = send(&fk, &["tank/src@s1"]);
    // The snapshot was bound for the send only.
    assert_eq!(fk.snapshot(), before);
    let r = receive(&fk, &["tank/dst"], &full);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        String::from_utf8(r.out).unwrap(),
        "received tank/dst@s1 (full): 6 record(s), 76.0K written, 0B zeroed\n"
    );
    assert_eq!(
        fk.volume_data("tank", "dst@s1", 8 * M),
        fk.volume_data("tank", "src@s1", 8 * M)
    );
    // Only the non-zero data was written (the zero block at 2M was not).
    let w = fk.vol_data("tank", "dst").writes;
    assert_eq!(w, vec![(0, 8192), (M, 4096), (5 * M, 65536)]);

    change(&fk);
    let inc = send(&fk, &["-i", "src@s1", "tank/src@s2"]);
    // Proportional to the change: 4 blocks of data, not the volume.
    assert!(
        inc.len() < 5 * 4096 + 1024,
        "incremental of {} bytes",
        inc.len()
    );
    let r = receive(&fk, &["tank/dst"], &inc);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        fk.volume_data("tank", "dst@s2", 12 * M),
        fk.volume_data("tank", "src@s2", 12 * M)
    );
    let d = fk.vol_data("tank", "dst");
    assert_eq!(&d.writes[3..], &[(M, 4096), (7 * M, 4096), (10 * M, 4096)]);
    assert_eq!(d.zeroed, vec![(5 * M, 4096)]);
    let show = fk.run(&["volume", "show", "-Hp", "-o", "size", "tank/dst"]);
    assert_eq!(show.out, format!("size\t{}\n", 12 * M));
}

/// With the kernel's list of the extents that differ, only those are read
/// and sent, and the receiver ends with the same contents as with the
/// block-by-block comparison.
#[test]
fn kernel_listing_round_trip() {
    let fk = source_on(setup_with_volumes());
    let full = send(&fk, &["tank/src@s1"]);
    assert_eq!(fk.diffs(), 1);
    let r = receive(&fk, &["tank/dst"], &full);
    assert_eq!(r.code, 0, "{}", r.err);
    // Data at 0, 1M and 5M; the zero block at 2M as a hole.
    assert_eq!(
        String::from_utf8(r.out).unwrap(),
        "received tank/dst@s1 (full): 4 record(s), 76.0K written, 0B zeroed\n"
    );
    assert_eq!(
        fk.volume_data("tank", "dst@s1", 8 * M),
        fk.volume_data("tank", "src@s1", 8 * M)
    );
    change(&fk);
    let r = fk.run_io(&["snapshot", "send", "-i", "src@s1", "tank/src@s2"], b"");
    assert_eq!(r.code, 0, "{}", r.err);
    // Said as the incremental it is (the base device is not read).
    assert!(
        r.err
            .starts_with("sent tank/src@s2 (incremental from tank/src@s1): "),
        "{}",
        r.err
    );
    let inc = r.out;
    assert_eq!(fk.diffs(), 2);
    assert!(
        inc.len() < 5 * 4096 + 1024,
        "incremental of {} bytes",
        inc.len()
    );
    let r = receive(&fk, &["tank/dst"], &inc);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        fk.volume_data("tank", "dst@s2", 12 * M),
        fk.volume_data("tank", "src@s2", 12 * M)
    );
    let d = fk.vol_data("tank", "dst");
    assert_eq!(&d.writes[3..], &[(M, 4096), (7 * M, 4096), (10 * M, 4096)]);
    assert_eq!(d.zeroed, vec![(5 * M, 4096)]);
    // The same stream as the comparison of the two devices sends.
    let cmp = source();
    change(&cmp);
    assert_eq!(
        send(&cmp, &["-i", "src@s1", "tank/src@s2"]).len(),
        inc.len()
    );
}

#[test]
fn incremental_on_the_wrong_base_is_refused() {
    let fk = source();
    let full = send(&fk, &["tank/src@s1"]);
    assert_eq!(receive(&fk, &["tank/dst"], &full).code, 0);
    change(&fk);
    let inc = send(&fk, &["-i", "tank/src@s1", "tank/src@s2"]);
    // dst got another snapshot since: its newest is not the base.
    assert_eq!(fk.run(&["snapshot", "create", "tank/dst@other"]).code, 0);
    let before = fk.snapshot();
    let r = receive(&fk, &["tank/dst"], &inc);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "zvpoolctl: receive into tank/dst: the stream's base is src@s1 (pool 0000-tank) \
         but the newest snapshot of tank/dst is tank/dst@other\n"
    );
    assert_eq!(fk.snapshot(), before);
    // No volume at all; a full stream into an existing volume.
    let r = receive(&fk, &["tank/none"], &inc);
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("no volume tank/none: an incremental stream applies on top of its base"),
        "{}",
        r.err
    );
    let r = receive(&fk, &["tank/vm2"], &full);
    assert!(
        r.err.contains("volume tank/vm2 exists: a full stream"),
        "{}",
        r.err
    );
    assert_eq!(fk.snapshot(), before);
}

/// A shrink travels with the incremental: the receiver's volume is cut.
#[test]
fn incremental_after_a_shrink() {
    let fk = source();
    let full = send(&fk, &["tank/src@s1"]);
    assert_eq!(receive(&fk, &["tank/dst"], &full).code, 0);
    let r = fk.run(&["volume", "resize", "tank/src", "--size", "4M", "--shrink"]);
    assert_eq!(r.code, 0, "{r:?}");
    fk.put_data("tank", "src", 3 * M, &pattern(4096, 7));
    assert_eq!(fk.run(&["snapshot", "create", "tank/src@s2"]).code, 0);
    let inc = send(&fk, &["-i", "src@s1", "tank/src@s2"]);
    let r = receive(&fk, &["tank/dst"], &inc);
    assert_eq!(r.code, 0, "{}", r.err);
    let show = fk.run(&["volume", "show", "-Hp", "-o", "size", "tank/dst@s2"]);
    assert_eq!(show.out, format!("size\t{}\n", 4 * M));
    assert_eq!(
        fk.volume_data("tank", "dst@s2", 4 * M),
        fk.volume_data("tank", "src@s2", 4 * M)
    );
    assert_eq!(fk.vol_data("tank", "dst").writes[3..], [(3 * M, 4096)]);
}

#[test]
fn send_refusals() {
    let fk = source();
    let r = fk.run_io(&["snapshot", "send", "tank/src@nope"], b"");
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .starts_with("zvpoolctl: send tank/src@nope: no snapshot tank/src@nope"),
        "{}",
        r.err
    );
    assert!(r.out.is_empty());
    change(&fk);
    let r = fk.run_io(&["snapshot", "send", "-i", "src@s2", "tank/src@s1"], b"");
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("the base tank/src@s2 is newer than tank/src@s1"),
        "{}",
        r.err
    );
    let r = fk.run_io(&["snapshot", "send", "-i", "vm1@s1", "tank/src@s2"], b"");
    assert_eq!(r.code, 2);
    assert!(r.err.contains("is not a snapshot of src"), "{}", r.err);
}

/// Cut or damaged: refused, no snapshot, nothing written past the damage.
#[test]
fn damaged_streams_are_refused_and_leave_no_snapshot() {
    let fk = source();
    let full = send(&fk, &["tank/src@s1"]);
    // Cuts: the header, frames and data, sampled.
    let cuts: Vec<usize> = (0..200)
        .step_by(7)
        .chain((200..full.len()).step_by(9973))
        .chain([full.len() - 1])
        .collect();
    for (i, &cut) in cuts.iter().enumerate() {
        let vol = format!("tank/c{i}");
        let r = receive(&fk, &[&vol], &full[..cut]);
        assert_eq!(r.code, 1, "cut at {cut}: {}", r.err);
        assert!(
            r.err.contains("truncated") || r.err.contains("empty"),
            "cut {cut}: {}",
            r.err
        );
        let name = format!("c{i}@s1");
        assert!(!fk
            .run(&["snapshot", "list", "-H", "tank"])
            .out
            .contains(&name));
    }
    // A bit flipped in the data of the third record (at 1M... the 5M one):
    // the records before it are written, it is not.
    let mut bad = full.clone();
    let at = full.len() - 32 - 100; // inside the last record's data
    bad[at] ^= 4;
    let r = receive(&fk, &["tank/flip"], &bad);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.err.lines().collect();
    assert!(lines[0].contains("data checksum mismatch"), "{}", r.err);
    assert!(
        lines[1].contains("holds the 4 record(s) before the damage"),
        "{}",
        r.err
    );
    assert!(
        lines[2].contains("snapshot receive --resume tank/flip"),
        "{}",
        r.err
    );
    let w = fk.vol_data("tank", "flip").writes;
    assert_eq!(w, vec![(0, 8192), (M, 4096)]);
    assert!(!fk
        .run(&["snapshot", "list", "-H", "tank"])
        .out
        .contains("flip@"));
}

#[test]
fn resume_after_a_cut() {
    let fk = source();
    let full = send(&fk, &["tank/src@s1"]);
    let cut = full.len() - 32 - 1000;
    let r = receive(&fk, &["tank/dst"], &full[..cut]);
    assert_eq!(r.code, 1);
    // Without --resume the volume is in the way.
    let r = receive(&fk, &["tank/dst"], &full);
    assert_eq!(r.code, 1);
    let r = receive(&fk, &["--resume", "tank/dst"], &full);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        String::from_utf8(r.out).unwrap(),
        "received tank/dst@s1 (full): 6 record(s), 64.0K written, 12.0K already there, 7.93M zeroed\n"
    );
    assert_eq!(
        fk.volume_data("tank", "dst@s1", 8 * M),
        fk.volume_data("tank", "src@s1", 8 * M)
    );
    // The first two records were not written again.
    let w = fk.vol_data("tank", "dst").writes;
    assert_eq!(w, vec![(0, 8192), (M, 4096), (5 * M, 65536)]);
    // Done: resuming again is refused (the snapshot exists).
    let r = receive(&fk, &["--resume", "tank/dst"], &full);
    assert_fails_bytes(&r, "zvpoolctl: receive into tank/dst: snapshot tank/dst@s1 exists (this stream was received already)");
}

fn assert_fails_bytes(r: &crate::testutil::RunBytes, first: &str) {
    assert_eq!(r.code, 1, "{}", r.err);
    assert_eq!(r.err.lines().next(), Some(first));
    assert!(r.out.is_empty());
    let _ = assert_fails;
}
