// SPDX-License-Identifier: GPL-2.0
//! Tests of run entries: splitting and collapsing, all-or-nothing on
//! allocation failure, and the table memory of sequential and random
//! mappings (the compact-map targets of issue 16).

use super::tests::{Rng, VecStore};
use super::*;
use std::collections::HashSet;
use std::vec::Vec;

fn stats(t: &BlockTable, s: &VecStore) -> TableStats {
    let st = t.check(s).unwrap();
    assert_eq!(st.nodes, s.live as u64);
    st
}

#[test]
fn split_and_collapse() {
    let mut s = VecStore::new(usize::MAX);
    let mut t = BlockTable::new(1, 4096).unwrap(); // height 2
                                                   // Sequential small writes: each leaf range collapses when complete.
    for k in 0..8 {
        t.map_range(&mut s, k * 128, 128, 1000 + k * 128, |_, _, _| panic!())
            .unwrap();
    }
    let st = stats(&t, &s);
    assert_eq!((st.nodes, st.leaves, st.runs, st.mapped), (1, 0, 2, 1024));
    assert_eq!(t.lookup(&s, 700), Some(1700));
    assert_eq!(t.lookup_run(&s, 3, 5000), (Some(1003), 1021));
    assert_eq!(t.holder_at(&s, 5), t.root());
    assert_eq!(t.leaf_at(&s, 5), None);
    // Overwriting one block splits the run; the old block is reported.
    let mut old = Vec::new();
    t.map_range(&mut s, 600, 1, 77, |l, a, n| old.push((l, a, n)))
        .unwrap();
    assert_eq!(old, [(600, 1600, 1)]);
    let st = stats(&t, &s);
    assert_eq!((st.leaves, st.runs, st.mapped), (1, 1, 1024));
    assert_eq!(t.lookup_run(&s, 512, 5000), (Some(1512), 88));
    // Writing the run's address back collapses it again.
    t.map_range(&mut s, 600, 1, 1600, |_, _, _| {}).unwrap();
    assert_eq!(stats(&t, &s).runs, 2);
    assert_eq!(s.live, 1);
    // A whole-range write over a run: dropped as one run.
    old.clear();
    t.map_range(&mut s, 0, 1024, 5000, |l, a, n| old.push((l, a, n)))
        .unwrap();
    assert_eq!(old, [(0, 1000, 1024)]);
    // Partial unmap splits; unmapping a whole range drops the run.
    old.clear();
    t.unmap_range(&mut s, 100, 10, |l, a, n| old.push((l, a, n)))
        .unwrap();
    t.unmap_range(&mut s, 512, 512, |l, a, n| old.push((l, a, n)))
        .unwrap();
    assert_eq!(old, [(100, 5100, 10), (512, 5512, 512)]);
    let st = stats(&t, &s);
    assert_eq!((st.leaves, st.runs, st.mapped), (1, 0, 502));
    // GC relocation in 64-block items: the first splits, the last
    // collapses (the destination is contiguous).
    t.map_range(&mut s, 100, 10, 5100, |_, _, _| {}).unwrap();
    assert_eq!(stats(&t, &s).runs, 1);
    for k in 0..8u64 {
        let e = MapExtent {
            vol: 1,
            lba: 64 * k,
            len: 64,
            addr: 5000 + 64 * k,
        };
        let mut mv = 0;
        let n = t
            .relocate(&mut s, &e, 9000 + 64 * k, |_, n| mv += n, |_, _| panic!())
            .unwrap();
        assert_eq!((n, mv), (64, 64));
        let st = stats(&t, &s);
        assert_eq!((st.leaves, st.runs), if k < 7 { (1, 0) } else { (0, 1) });
    }
    assert_eq!(t.lookup_run(&s, 0, 5000), (Some(9000), 512));
    // A whole run relocated at once: the entry changes, nothing allocated.
    s.limit = s.live;
    let e = MapExtent {
        vol: 1,
        lba: 0,
        len: 512,
        addr: 9000,
    };
    assert_eq!(t.relocate(&mut s, &e, 20000, |_, _| {}, |_, _| {}), Ok(512));
    // No node for a split: those blocks are skipped, the rest is done.
    t.map_range(&mut s, 2000, 1, 30000, |_, _, _| {})
        .unwrap_err();
    let e = MapExtent {
        vol: 1,
        lba: 0,
        len: 100,
        addr: 20000,
    };
    let (mut mv, mut sk) = (0, Vec::new());
    assert_eq!(
        t.relocate(&mut s, &e, 40000, |_, n| mv += n, |a, n| sk.push((a, n))),
        Err(Error::NoSpace)
    );
    assert_eq!((mv, sk), (0, std::vec![(40000, 100)]));
    assert_eq!(t.lookup(&s, 50), Some(20050));
    // Plain unmap of part of a run needs a node too: unchanged on failure.
    assert_eq!(
        t.unmap_range(&mut s, 10, 1, |_, _, _| panic!()),
        Err(Error::NoSpace)
    );
    assert_eq!(t.lookup_run(&s, 0, 512), (Some(20000), 512));
    // Mapping across a run that must be split, out of nodes: unchanged
    // (the split leaf collapses again).
    s.limit = s.live + 1;
    t.map_range(&mut s, 3000, 1, 1, |_, _, _| {}).unwrap();
    let before = (s.live, t.mapped());
    assert_eq!(
        t.map_range(&mut s, 500, 2000, 50000, |_, _, _| panic!()),
        Err(Error::NoSpace)
    );
    assert_eq!((s.live, t.mapped()), before);
    assert_eq!(t.lookup_run(&s, 0, 512), (Some(20000), 512));
    stats(&t, &s);
    // Shrinking to one level keeps the run as a leaf.
    s.limit = usize::MAX;
    t.resize(&mut s, 512, |_, _, _| {}).unwrap();
    assert_eq!(t.height(), 1);
    assert_eq!(t.lookup_run(&s, 0, 512), (Some(20000), 512));
    let st = stats(&t, &s);
    assert_eq!((st.leaves, st.runs), (1, 0));
    t.destroy(&mut s, |_, _, _| {}).unwrap();
    assert_eq!(s.live, 0);
}

#[test]
fn runs_in_shared_nodes() {
    let mut s = VecStore::with_sharing(usize::MAX);
    let mut refs = RefMap::new(1 << 30);
    let mut a = BlockTable::new(0, 1 << 20).unwrap();
    a.map_range_shared(&mut s, &mut refs, 0, 2048, 100, |_, _| panic!())
        .unwrap();
    assert_eq!((stats(&a, &s).runs, s.live), (4, 2));
    let mut b = a.clone_root(&mut s, 1).unwrap();
    // Writing part of a shared run: the path is copied (the copy holds the
    // runs too: one more reference each), then the run splits.
    let mut dead = Vec::new();
    b.map_range_shared(&mut s, &mut refs, 10, 1, 7000, |x, n| dead.push((x, n)))
        .unwrap();
    assert!(dead.is_empty());
    assert_eq!(refs.extra(&s, 110), 0);
    assert_eq!(refs.extra(&s, 111), 1);
    assert_eq!(refs.extra(&s, 2147), 1);
    assert_eq!(a.lookup(&s, 10), Some(110));
    assert_eq!(b.lookup(&s, 10), Some(7000));
    // Deleting the original kills nothing but its own writes; b keeps all.
    a.destroy_shared(&mut s, &mut refs, |x, n| dead.push((x, n)))
        .unwrap();
    assert_eq!(dead, [(110, 1)]);
    dead.clear();
    b.destroy_shared(&mut s, &mut refs, |x, n| dead.push((x, n)))
        .unwrap();
    let mut blocks: Vec<u64> = dead.iter().flat_map(|&(x, n)| x..x + n).collect();
    blocks.sort();
    let mut exp: Vec<u64> = (100..2148).filter(|&x| x != 110).collect();
    exp.push(7000);
    assert_eq!(blocks, exp);
    assert_eq!(s.live, 0);
    assert!(refs.map().is_empty());
}

/// Blocks of 1 TiB.
const TIB: u64 = 1 << 28;

#[test]
fn memory_sequential_tib() {
    // 1 TiB written sequentially in extents of 4 KiB .. 16 MiB, at pool
    // addresses contiguous within 1 GiB zones (each zone elsewhere).
    let mut s = VecStore::new(usize::MAX);
    let mut t = BlockTable::new(0, TIB).unwrap();
    let mut rng = Rng(7);
    let zone = 1u64 << 18;
    let mut l = 0u64;
    while l < TIB {
        let n = (1 + rng.below(4096)).min(TIB - l);
        // Zone z of the volume lands in pool zone 3z+1 (never adjacent).
        let n = n.min(zone - l % zone);
        let addr = (l / zone * 3 + 1) * zone + l % zone;
        t.map_range(&mut s, l, n, addr, |_, _, _| panic!()).unwrap();
        l += n;
    }
    let st = stats(&t, &s);
    assert_eq!(st.mapped, TIB);
    let bytes = st.nodes * 4096;
    std::eprintln!(
        "sequential 1 TiB: {} nodes ({} leaves, {} run entries) = {} KiB of table (leaves only: {} MiB)",
        st.nodes,
        st.leaves,
        st.runs,
        bytes >> 10,
        ((TIB / 512 + st.nodes) * 4096) >> 20
    );
    assert!(bytes <= 64 << 20, "{bytes} bytes per TiB");
    // Checkpoint records: as many as before (one per zone).
    assert_eq!(t.extents(&s).count() as u64, TIB / zone);
    // The same, mapped with few large extents directly (checkpoint load).
    let mut s2 = VecStore::new(usize::MAX);
    let mut t2 = BlockTable::new(0, TIB).unwrap();
    for e in t.extents(&s) {
        t2.replay(&mut s2, &e).unwrap();
    }
    assert_eq!(stats(&t2, &s2).nodes, st.nodes);
    t.destroy(&mut s, |_, _, _| {}).unwrap();
    assert_eq!(s.live, 0);
}

#[test]
fn memory_random_4k() {
    // Random 4 KiB writes at scattered addresses over a 1 TiB volume: one
    // node per distinct leaf range and per distinct interior range, exactly
    // as with leaves only; and a densely written leaf range costs one leaf.
    let mut s = VecStore::new(usize::MAX);
    let mut t = BlockTable::new(0, TIB).unwrap();
    let mut rng = Rng(11);
    let mut ranges: [HashSet<u64>; 4] = Default::default();
    for k in 0..40_000u64 {
        let l = rng.below(TIB);
        t.map_range(&mut s, l, 1, 2 * k + 1, |_, _, _| {}).unwrap();
        for (lv, r) in ranges.iter_mut().enumerate() {
            r.insert(l >> (9 * (lv + 1)));
        }
    }
    // Dense random: every block of 64 leaf ranges, in random order.
    let mut order: Vec<u64> = (0..64 * 512).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (k, &o) in order.iter().enumerate() {
        let l = (1 << 27) + o;
        t.map_range(&mut s, l, 1, (1 << 40) + 2 * k as u64, |_, _, _| {})
            .unwrap();
        for (lv, r) in ranges.iter_mut().enumerate() {
            r.insert(l >> (9 * (lv + 1)));
        }
    }
    let old_nodes: u64 = ranges.iter().map(|r| r.len() as u64).sum::<u64>();
    let st = stats(&t, &s);
    std::eprintln!(
        "random 4 KiB: {} blocks in {} nodes ({} leaves, {} runs), {} with leaves only: {} bytes per mapped block",
        st.mapped,
        st.nodes,
        st.leaves,
        st.runs,
        old_nodes,
        st.nodes * 4096 / st.mapped
    );
    assert_eq!(st.runs, 0);
    assert_eq!(st.nodes, old_nodes);
}
