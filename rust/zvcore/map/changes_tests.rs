// SPDX-License-Identifier: GPL-2.0
//! Tests of change marks: a delta of the marked changes, applied to the
//! image of the previous checkpoint, then the "journal" of what changed
//! after the marks were swapped, gives the table (incremental checkpoints).

use super::tests::{Rng, VecStore};
use super::*;
use std::vec;
use std::vec::Vec;

/// One change, replayed like a journal record.
#[derive(Clone, Copy, Debug)]
enum Op {
    Map(u64, u64, u64),
    Unmap(u64, u64),
    Relocate(u64, u64, u64, u64),
}

fn apply(m: &mut [Option<u64>], op: Op) {
    match op {
        Op::Map(l, n, a) => (0..n).for_each(|k| m[(l + k) as usize] = Some(a + k)),
        Op::Unmap(l, n) => (0..n).for_each(|k| m[(l + k) as usize] = None),
        Op::Relocate(l, n, old, new) => (0..n).for_each(|k| {
            if m[(l + k) as usize] == Some(old + k) {
                m[(l + k) as usize] = Some(new + k);
            }
        }),
    }
}

fn read(t: &BlockTable, s: &VecStore) -> Vec<Option<u64>> {
    (0..t.size()).map(|l| t.lookup(s, l)).collect()
}

/// Applies the delta of `t` (its changes marked before the last swap) to
/// `image`; returns the number of diffs.
fn apply_delta(t: &BlockTable, s: &VecStore, image: &mut [Option<u64>]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while let Some(d) = t.next_change(s, at) {
        let (lba, len) = match d {
            Diff::Map(e) => {
                assert_eq!(e.vol, t.vol());
                apply(image, Op::Map(e.lba, e.len, e.addr));
                (e.lba, e.len)
            }
            Diff::Unmap { lba, len } => {
                apply(image, Op::Unmap(lba, len));
                (lba, len)
            }
        };
        assert!(
            lba >= at && len >= 1 && lba + len <= t.size(),
            "{d:?} at {at}"
        );
        at = lba + len;
        n += 1;
    }
    n
}

/// A random change of `t` (also applied to nothing else): dense enough
/// to fill, empty and free leaves, and to make run entries.
fn random_op(r: &mut Rng, t: &mut BlockTable, s: &mut VecStore, size: u64) -> Op {
    let cur = read(t, s);
    let l = r.below(size);
    let most = if r.below(4) == 0 { 1100 } else { 16 };
    let n = (1 + r.below(most)).min(size - l);
    let op = match r.below(10) {
        0..=4 => Op::Map(l, n, 1 + r.below(1 << 20)),
        5..=7 => Op::Unmap(l, n),
        _ => match cur[l as usize] {
            Some(a) => {
                let mut k = 1;
                while k < n && cur[(l + k) as usize] == Some(a + k) {
                    k += 1;
                }
                Op::Relocate(l, k, a, 2_000_000 + r.below(1 << 20))
            }
            None => Op::Unmap(l, n),
        },
    };
    match op {
        Op::Map(l, n, a) => t.map_range(s, l, n, a, |_, _, _| {}).unwrap(),
        Op::Unmap(l, n) => t.unmap_range(s, l, n, |_, _, _| {}).unwrap(),
        Op::Relocate(l, n, old, new) => {
            let ext = MapExtent {
                vol: t.vol(),
                lba: l,
                len: n,
                addr: old,
            };
            t.relocate(s, &ext, new, |_, _| {}, |_, _| {}).unwrap();
        }
    }
    op
}

#[test]
fn deltas_rebuild_the_table_across_checkpoints() {
    for seed in 1..=80u64 {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1234_5678_9abc));
        let size = [600u64, 3000, 40_000][(seed % 3) as usize];
        let mut s = VecStore::new(usize::MAX);
        let mut t = BlockTable::new(7, size).unwrap();
        // The image of the last checkpoint: the table when the first
        // (full) one was taken, empty here.
        let mut image = vec![None; size as usize];
        let mut journal: Vec<Op> = Vec::new();
        for round in 0..30 {
            for _ in 0..r.below(40) {
                journal.push(random_op(&mut r, &mut t, &mut s, size));
            }
            // Checkpoint begins: marks swap, the journal restarts (what
            // changes from now on is replayed after this delta).
            s.swap_marks();
            let before_walk = journal.len();
            let mut after = Vec::new();
            // Changes between the steps of the checkpoint.
            for _ in 0..r.below(6) {
                after.push(random_op(&mut r, &mut t, &mut s, size));
            }
            let diffs = apply_delta(&t, &s, &mut image);
            s.clear_changed();
            for _ in 0..r.below(6) {
                after.push(random_op(&mut r, &mut t, &mut s, size));
            }
            // Recovery: the chain's image, then the journal after it.
            let mut rec = image.clone();
            for op in &after {
                apply(&mut rec, *op);
            }
            assert_eq!(rec, read(&t, &s), "seed {seed} round {round}");
            // A delta follows what changed, not what is mapped.
            if before_walk == 0 && after.is_empty() && round > 0 {
                assert!(diffs <= 64, "seed {seed}: {diffs} diffs with no change");
            }
            journal = after;
        }
    }
}

#[test]
fn a_delta_costs_what_changed() {
    let mut s = VecStore::new(usize::MAX);
    let size = 1 << 24; // 64 GiB, height 3
    let mut t = BlockTable::new(1, size).unwrap();
    // One block every 64 KiB over the whole volume: 262,144 mappings.
    for k in 0..(size / 16) {
        t.map_range(&mut s, k * 16, 1, k, |_, _, _| {}).unwrap();
    }
    // A checkpoint: everything is new.
    s.swap_marks();
    assert!(t.next_change(&s, 0).is_some());
    s.clear_changed();
    s.swap_marks();
    assert_eq!(t.next_change(&s, 0), None, "nothing changed");
    // Ten scattered overwrites.
    for k in 0..10u64 {
        t.map_range(&mut s, k * 1_000_003, 1, 5_000_000 + k, |_, _, _| {})
            .unwrap();
    }
    s.swap_marks();
    let mut at = 0;
    let mut diffs = Vec::new();
    while let Some(d) = t.next_change(&s, at) {
        at = match d {
            Diff::Map(e) => e.lba + e.len,
            Diff::Unmap { lba, len } => lba + len,
        };
        diffs.push(d);
    }
    // Each overwrite's entry group (8 entries: the block, maybe one other
    // mapping, holes around them): at most 4 diffs a change, whatever is
    // mapped elsewhere (262,144 mappings).
    assert!(diffs.len() >= 10 && diffs.len() <= 40, "{}", diffs.len());
    for k in 0..10u64 {
        let lba = k * 1_000_003;
        assert!(diffs.iter().any(|d| matches!(d, Diff::Map(e)
            if e.lba == lba && e.addr == 5_000_000 + k)));
    }
}

#[test]
fn group_bits_cover_the_entries() {
    use super::changes::{group_bits, LEAF_GROUP, NODE_GROUP};
    assert_eq!(group_bits(0, 0, LEAF_GROUP), 1);
    assert_eq!(group_bits(0, 7, LEAF_GROUP), 1);
    assert_eq!(group_bits(7, 8, LEAF_GROUP), 3);
    assert_eq!(group_bits(0, FANOUT - 1, LEAF_GROUP), u64::MAX);
    assert_eq!(group_bits(FANOUT - 1, FANOUT - 1, LEAF_GROUP), 1 << 63);
    assert_eq!(group_bits(9, 3, LEAF_GROUP), 0);
    assert_eq!(group_bits(15, 16, NODE_GROUP), 3);
    assert_eq!(group_bits(0, FANOUT - 1, NODE_GROUP), 0xffff_ffff);
}
