// SPDX-License-Identifier: GPL-2.0
//! Unit tests of the block tables, and the `Vec`-backed node store the
//! other modules' tests use.

use super::super::codec::{Reader, Writer};
use super::*;
use std::vec;
use std::vec::Vec;

/// A `Vec`-backed node store with an optional node limit.
pub struct VecStore {
    pub nodes: Vec<Option<std::boxed::Box<Node>>>,
    pub free_ids: Vec<NodeId>,
    pub limit: usize,
    pub live: usize,
    /// Reference counts (only used when `sharing`).
    pub refs: Vec<u32>,
    pub sharing: bool,
    /// Change marks and their current generation.
    pub marks: Vec<NodeMarks>,
    pub cur: u8,
    pub walking: bool,
    /// Node lookups so far (what a walk costs).
    pub gets: core::cell::Cell<u64>,
}

impl VecStore {
    pub fn new(limit: usize) -> Self {
        VecStore {
            nodes: Vec::new(),
            free_ids: Vec::new(),
            limit,
            live: 0,
            refs: Vec::new(),
            sharing: false,
            marks: Vec::new(),
            cur: 0,
            walking: false,
            gets: core::cell::Cell::new(0),
        }
    }

    pub fn with_sharing(limit: usize) -> Self {
        VecStore {
            sharing: true,
            ..VecStore::new(limit)
        }
    }
}

impl NodeStore for VecStore {
    fn alloc(&mut self) -> Option<NodeId> {
        if self.live >= self.limit {
            return None;
        }
        self.live += 1;
        let n = std::boxed::Box::new([0u64; FANOUT]);
        if let Some(id) = self.free_ids.pop() {
            self.nodes[id as usize] = Some(n);
            self.refs[id as usize] = 1;
            self.marks[id as usize] = NodeMarks::fresh(self.cur, self.walking);
            Some(id)
        } else {
            self.nodes.push(Some(n));
            self.refs.push(1);
            self.marks.push(NodeMarks::fresh(self.cur, self.walking));
            Some((self.nodes.len() - 1) as NodeId)
        }
    }
    fn free(&mut self, id: NodeId) {
        assert!(self.nodes[id as usize].take().is_some(), "double free");
        assert_eq!(self.refs[id as usize], 1, "freeing a shared node");
        self.live -= 1;
        self.free_ids.push(id);
    }
    fn get(&self, id: NodeId) -> Option<&Node> {
        self.gets.set(self.gets.get() + 1);
        self.nodes.get(id as usize)?.as_deref()
    }
    fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id as usize)?.as_deref_mut()
    }
    fn refs(&self, id: NodeId) -> u32 {
        self.refs.get(id as usize).copied().unwrap_or(1)
    }
    fn set_refs(&mut self, id: NodeId, refs: u32) -> Result<()> {
        if !self.sharing {
            return Err(Error::Unsupported("node sharing"));
        }
        assert!(refs >= 1 && self.nodes[id as usize].is_some());
        self.refs[id as usize] = refs;
        Ok(())
    }
    fn tracks_changes(&self) -> bool {
        true
    }
    fn mark(&mut self, id: NodeId, marks: u64) {
        self.marks[id as usize].mark(self.cur, marks);
    }
    fn changed(&self, id: NodeId) -> u64 {
        self.marks[id as usize].changed(self.cur)
    }
    fn mark_walked(&mut self, id: NodeId, marks: u64) {
        if self.walking {
            self.marks[id as usize].mark(self.cur ^ 1, marks);
        }
    }
    fn swap_marks(&mut self) {
        self.cur ^= 1;
        self.walking = true;
    }
    fn clear_changed(&mut self) {
        let cur = self.cur;
        self.marks.iter_mut().for_each(|m| m.clear_changed(cur));
        self.walking = false;
    }
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Extents of the reference model, maximal runs.
fn model_extents(m: &[Option<u64>]) -> Vec<(u64, u64, u64)> {
    let mut v: Vec<(u64, u64, u64)> = Vec::new();
    for (i, e) in m.iter().enumerate() {
        if let Some(a) = *e {
            if let Some(last) = v.last_mut() {
                if last.0 + last.2 == i as u64 && last.1 + last.2 == a {
                    last.2 += 1;
                    continue;
                }
            }
            v.push((i as u64, a, 1));
        }
    }
    v
}

fn check_against(t: &BlockTable, s: &VecStore, m: &[Option<u64>]) {
    let st = t.check(s).unwrap();
    assert_eq!(st.nodes, s.live as u64);
    // Every leaf range the model maps to one contiguous run is a run entry
    // (map_range and relocate collapse what they complete; unmap and
    // resize never leave one either).
    let full = (0..m.len() / 512)
        .filter(|&r| {
            let a = m[r * 512];
            a.is_some() && (0..512).all(|k| m[r * 512 + k] == a.map(|a| a + k as u64))
        })
        .count() as u64;
    if t.height() >= 2 {
        assert_eq!(st.runs, full, "leaf ranges mapping one run");
    }
    assert_eq!(t.mapped(), m.iter().filter(|e| e.is_some()).count() as u64);
    let ext: Vec<(u64, u64, u64)> = t.extents(s).map(|e| (e.lba, e.addr, e.len)).collect();
    assert_eq!(ext, model_extents(m));
    if t.mapped() == 0 {
        assert_eq!(s.live, 0, "empty table keeps nodes");
    }
}

#[test]
fn heights() {
    assert_eq!(height_for(0), 1);
    assert_eq!(height_for(512), 1);
    assert_eq!(height_for(513), 2);
    assert_eq!(height_for(512 * 512), 2);
    assert_eq!(height_for(512 * 512 + 1), 3);
    assert_eq!(height_for(MAX_VOLUME_BLOCKS), 6);
    assert!(BlockTable::new(0, MAX_VOLUME_BLOCKS + 1).is_err());
}

#[test]
fn basic_map_unmap() {
    let mut s = VecStore::new(100);
    let mut t = BlockTable::new(7, 2000).unwrap();
    assert_eq!(t.lookup(&s, 5), None);
    assert_eq!(t.lookup_run(&s, 0, 5000), (None, 2000));
    t.map_range(&mut s, 500, 20, 1000, |_, _, _| panic!())
        .unwrap();
    assert_eq!(s.live, 3); // root + 2 leaves
    assert_eq!(t.lookup(&s, 511), Some(1011));
    assert_eq!(t.lookup(&s, 512), Some(1012));
    assert_eq!(t.lookup_run(&s, 505, 100), (Some(1005), 15));
    assert_eq!(t.lookup_run(&s, 0, 1000), (None, 500));
    assert_eq!(t.lookup_run(&s, 520, 10000), (None, 1480));
    assert_eq!(
        t.check(&s),
        Ok(TableStats {
            nodes: 3,
            mapped: 20,
            leaves: 2,
            runs: 0,
        })
    );
    // Corruptions are found.
    let root = t.root().unwrap();
    let leaf = (s.get(root).unwrap()[0] & ID_MASK) as NodeId;
    s.get_mut(leaf).unwrap()[500] |= 1 << 50;
    assert!(t.check(&s).is_err());
    s.get_mut(leaf).unwrap()[500] &= !(1 << 50);
    s.get_mut(root).unwrap()[3] = PRESENT | 999;
    assert!(t.check(&s).is_err());
    s.get_mut(root).unwrap()[3] = 0;
    t.check(&s).unwrap();
    let mut old = Vec::new();
    t.map_range(&mut s, 510, 4, 50, |l, a, n| old.push((l, a, n)))
        .unwrap();
    assert_eq!(old, vec![(510, 1010, 4)]);
    assert_eq!(t.mapped(), 20);
    old.clear();
    t.unmap_range(&mut s, 0, 2000, |l, a, n| old.push((l, a, n)))
        .unwrap();
    assert_eq!(old, vec![(500, 1000, 10), (510, 50, 4), (514, 1014, 6)]);
    assert_eq!(s.live, 0);
    assert_eq!(t.root(), None);
    assert!(t.map_range(&mut s, 1990, 11, 0, |_, _, _| {}).is_err());
    assert!(t.map_range(&mut s, 0, 0, 0, |_, _, _| {}).is_err());
    assert!(t
        .map_range(&mut s, 0, 2, MAX_POOL_BLOCKS - 1, |_, _, _| {})
        .is_err());
    assert!(t.unmap_range(&mut s, u64::MAX, 2, |_, _, _| {}).is_err());
}

#[test]
fn out_of_nodes_leaves_table_unchanged() {
    let mut s = VecStore::new(3);
    let mut t = BlockTable::new(1, 512 * 512 * 4).unwrap(); // height 3
    t.map_range(&mut s, 0, 1, 9, |_, _, _| {}).unwrap();
    assert_eq!(s.live, 3);
    // Needs a new leaf (and an interior node).
    let before = s.live;
    assert_eq!(
        t.map_range(&mut s, 100, 1000, 5, |_, _, _| {}),
        Err(Error::NoSpace)
    );
    assert_eq!(s.live, before);
    assert_eq!(t.lookup(&s, 0), Some(9));
    assert_eq!(t.lookup(&s, 100), None);
    assert_eq!(t.mapped(), 1);
    // (Whole leaf ranges need no leaf: run entries.)
    let mut s2 = VecStore::new(2);
    let mut t2 = BlockTable::new(1, 512 * 512 * 4).unwrap();
    assert_eq!(
        t2.map_range(&mut s2, 1, 512 * 3, 5, |_, _, _| {}),
        Err(Error::NoSpace)
    );
    assert_eq!(s2.live, 0);
    assert_eq!(t2.root(), None);
    let mut s3 = VecStore::new(0);
    assert_eq!(
        t2.map_range(&mut s3, 0, 1, 5, |_, _, _| {}),
        Err(Error::NoSpace)
    );
}

#[test]
fn random_against_model() {
    for seed in 1..6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let size = 512 * 512 + 700 + rng.below(5000);
        let mut s = VecStore::new(usize::MAX);
        let mut t = BlockTable::new(3, size).unwrap();
        let mut m: Vec<Option<u64>> = vec![None; size as usize];
        let mut next_addr = 0u64;
        let mut runs_seen = 0u64;
        let mut max_runs = 0u64;
        for step in 0..1500 {
            let hot = rng.below(4) == 0;
            let mut lba = if hot {
                rng.below(2000)
            } else {
                rng.below(size)
            };
            let big = rng.below(10) == 0;
            let mut len = 1 + rng.below(if big { 3000 } else { 40 }).min(size - lba - 1);
            if rng.below(6) == 0 {
                // Whole aligned 2 MiB leaf ranges (run entries), or a
                // sequential run of small writes ending on one.
                lba = (lba / 512) * 512;
                len = (512 * (1 + rng.below(3))).min(size - lba);
            }
            let op = rng.below(12);
            if op == 0 && rng.below(2) == 0 {
                // Sequential small writes filling a leaf range.
                let base = (lba / 512) * 512;
                if base + 512 <= size {
                    let addr = next_addr;
                    next_addr += 512 + 1;
                    let mut o = 0;
                    while o < 512 {
                        let n = (1 + rng.below(100)).min(512 - o);
                        t.map_range(&mut s, base + o, n, addr + o, |_, _, _| {})
                            .unwrap();
                        o += n;
                    }
                    for k in 0..512 {
                        m[(base + k) as usize] = Some(addr + k);
                    }
                    assert_eq!(t.leaf_at(&s, base), None, "full leaf not collapsed");
                    assert_eq!(t.lookup_run(&s, base, 512), (Some(addr), 512));
                    continue;
                }
            }
            match op {
                9..=10 => {
                    // GC relocation of part of an extent (the model moves
                    // the blocks still at their old address).
                    if let Some(e) = t.next_extent(&s, lba) {
                        let off = rng.below(e.len);
                        let n = (1 + rng.below(1200)).min(e.len - off);
                        let x = MapExtent {
                            vol: 3,
                            lba: e.lba + off,
                            len: n,
                            addr: e.addr + off,
                        };
                        // A block overwritten meanwhile is skipped.
                        if rng.below(3) == 0 {
                            let k = x.lba + rng.below(n);
                            t.map_range(&mut s, k, 1, 1 << 40, |_, _, _| {}).unwrap();
                            m[k as usize] = Some(1 << 40);
                        }
                        let new = next_addr;
                        next_addr += n + 1;
                        let (mut mv, mut sk) = (0, 0);
                        let got = t
                            .relocate(&mut s, &x, new, |_, k| mv += k, |_, k| sk += k)
                            .unwrap();
                        let mut exp = 0;
                        for k in 0..n {
                            let slot = &mut m[(x.lba + k) as usize];
                            if *slot == Some(x.addr + k) {
                                *slot = Some(new + k);
                                exp += 1;
                            }
                        }
                        assert_eq!((got, mv, sk), (exp, exp, n - exp));
                    }
                }
                0..=5 => {
                    let addr = next_addr;
                    next_addr += len + rng.below(3);
                    let mut old = Vec::new();
                    t.map_range(&mut s, lba, len, addr, |l, a, n| old.push((l, a, n)))
                        .unwrap();
                    let mut exp = Vec::new();
                    for i in 0..len {
                        if let Some(a) = m[(lba + i) as usize] {
                            exp.push((lba + i, a));
                        }
                        m[(lba + i) as usize] = Some(addr + i);
                    }
                    let got: Vec<(u64, u64)> = old
                        .iter()
                        .flat_map(|&(l, a, n)| (0..n).map(move |k| (l + k, a + k)))
                        .collect();
                    assert_eq!(got, exp);
                }
                6..=8 => {
                    let mut old = Vec::new();
                    t.unmap_range(&mut s, lba, len, |l, a, n| old.push((l, a, n)))
                        .unwrap();
                    let mut exp = 0;
                    for i in 0..len {
                        exp += m[(lba + i) as usize].take().is_some() as u64;
                    }
                    assert_eq!(old.iter().map(|o| o.2).sum::<u64>(), exp);
                }
                _ => {
                    let max = 1 + rng.below(5000);
                    let (a, n) = t.lookup_run(&s, lba, max);
                    assert_eq!(a, m[lba as usize]);
                    let lim = max.min(size - lba);
                    assert!(n >= 1 && n <= lim);
                    for k in 0..n {
                        assert_eq!(m[(lba + k) as usize], a.map(|a| a + k));
                    }
                    if n < lim {
                        assert_ne!(m[(lba + n) as usize], a.map(|a| a + n));
                    }
                }
            }
            if step % 100 == 0 {
                check_against(&t, &s, &m);
            }
            let runs = t.check(&s).unwrap().runs;
            runs_seen += runs;
            max_runs = max_runs.max(runs);
        }
        assert!(
            max_runs >= 3,
            "seed {seed}: run entries never used ({runs_seen})"
        );
        check_against(&t, &s, &m);
        // Resize down and up.
        let new = size / 3;
        let mut gone = 0;
        t.resize(&mut s, new, |_, _, n| gone += n).unwrap();
        let exp: u64 = m[new as usize..].iter().filter(|e| e.is_some()).count() as u64;
        assert_eq!(gone, exp);
        m.truncate(new as usize);
        assert_eq!(t.height(), height_for(new));
        check_against(&t, &s, &m);
        t.resize(&mut s, size * 600, |_, _, _| panic!()).unwrap();
        assert_eq!(t.height(), 4);
        m.resize((size * 600) as usize / 512, None);
        let ext: Vec<_> = t.extents(&s).map(|e| (e.lba, e.addr, e.len)).collect();
        assert_eq!(ext, model_extents(&m));
        for (i, e) in m.iter().enumerate().step_by(97) {
            assert_eq!(t.lookup(&s, i as u64), *e);
        }
        t.map_range(&mut s, size * 600 - 1, 1, 77, |_, _, _| {})
            .unwrap();
        t.destroy(&mut s, |_, _, _| {}).unwrap();
        assert_eq!(s.live, 0);
    }
}

fn ext(vol: u32, lba: u64, len: u64, addr: u64) -> MapExtent {
    MapExtent {
        vol,
        lba,
        len,
        addr,
    }
}

#[test]
fn relocate_skips_changed_blocks() {
    let mut s = VecStore::new(100);
    let mut t = BlockTable::new(1, 4096).unwrap();
    t.map_range(&mut s, 500, 30, 1000, |_, _, _| {}).unwrap();
    // User overwrote 505..508 and trimmed 520..530 (a whole leaf tail).
    t.map_range(&mut s, 505, 3, 7000, |_, _, _| {}).unwrap();
    t.unmap_range(&mut s, 520, 10, |_, _, _| {}).unwrap();
    let (mut moved, mut skipped) = (Vec::new(), Vec::new());
    let n = t
        .relocate(
            &mut s,
            &ext(1, 500, 30, 1000),
            2000,
            |a, n| moved.push((a, n)),
            |a, n| skipped.push((a, n)),
        )
        .unwrap();
    assert_eq!(n, 17);
    assert_eq!(moved, vec![(1000, 5), (1008, 12)]);
    assert_eq!(skipped, vec![(2005, 3), (2020, 10)]);
    assert_eq!(t.lookup(&s, 500), Some(2000));
    assert_eq!(t.lookup(&s, 506), Some(7001));
    assert_eq!(t.lookup(&s, 519), Some(2019));
    assert_eq!(t.lookup(&s, 525), None);
    assert_eq!(t.mapped(), 20);
    // Entirely unmapped range.
    let mut sk = 0;
    assert_eq!(
        t.relocate(
            &mut s,
            &ext(1, 3000, 600, 0),
            0,
            |_, _| panic!(),
            |_, n| sk += n
        ),
        Ok(0)
    );
    assert_eq!(sk, 600);
    assert!(t
        .relocate(&mut s, &ext(1, 4000, 100, 0), 0, |_, _| {}, |_, _| {})
        .is_err());
    assert!(t
        .relocate(&mut s, &ext(2, 500, 1, 1000), 0, |_, _| {}, |_, _| {})
        .is_err());
}

#[test]
fn clone_needs_refcounting_store() {
    let mut s = VecStore::new(100);
    let mut t = BlockTable::new(1, 1000).unwrap();
    // An empty table clones without sharing anything.
    let c = t.clone_root(&mut s, 2).unwrap();
    assert!(!c.is_shared() && !t.is_shared());
    t.map_range(&mut s, 0, 10, 100, |_, _, _| {}).unwrap();
    assert_eq!(
        t.clone_root(&mut s, 2),
        Err(Error::Unsupported("node sharing"))
    );
    assert!(!t.is_shared());
    let mut s = VecStore::with_sharing(100);
    let mut refs = RefMap::new(1 << 20);
    let mut t = BlockTable::new(1, 1000).unwrap();
    t.map_range(&mut s, 0, 10, 100, |_, _, _| {}).unwrap();
    let mut c = t.clone_root(&mut s, 2).unwrap();
    assert!(c.is_shared() && t.is_shared());
    assert_eq!(c.vol(), 2);
    assert_eq!(c.lookup(&s, 3), Some(103));
    assert!(t.map_range(&mut s, 0, 1, 5, |_, _, _| {}).is_err());
    assert!(c.unmap_range(&mut s, 0, 1, |_, _, _| {}).is_err());
    assert!(c.resize(&mut s, 10, |_, _, _| {}).is_err());
    // Writing the clone copies the shared path; the original is unchanged.
    let mut dead = Vec::new();
    c.map_range_shared(&mut s, &mut refs, 2, 2, 7000, |a, n| dead.push((a, n)))
        .unwrap();
    // The copy took a reference on every block, then dropped two: none died.
    assert!(dead.is_empty());
    assert_eq!(refs.extra(&s, 100), 1);
    assert_eq!(refs.extra(&s, 102), 0);
    assert_eq!(t.lookup(&s, 2), Some(102));
    assert_eq!(c.lookup(&s, 2), Some(7000));
    // Now both leaves are exclusive: overwriting an exclusive block kills it.
    c.map_range_shared(&mut s, &mut refs, 2, 1, 8000, |a, n| dead.push((a, n)))
        .unwrap();
    assert_eq!(dead, vec![(7000, 1)]);
    dead.clear();
    t.destroy_shared(&mut s, &mut refs, |a, n| dead.push((a, n)))
        .unwrap();
    assert_eq!(dead, vec![(102, 2)]);
    dead.clear();
    c.destroy_shared(&mut s, &mut refs, |a, n| dead.push((a, n)))
        .unwrap();
    assert_eq!(dead, vec![(100, 2), (8000, 1), (7001, 1), (104, 6)]);
    assert_eq!(s.live, 0);
    assert!(refs.map().is_empty());
}

/// Occurrences of each address in distinct leaves (through
/// `visit_distinct`), and the number of distinct nodes.
fn occurrences(
    s: &mut VecStore,
    tabs: &[BlockTable],
) -> (std::collections::HashMap<u64, u64>, usize) {
    let mut occ = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let refs_before: Vec<u32> = s.refs.clone();
    let done = visit_distinct(s, tabs.len(), &|i| tabs.get(i).copied(), &mut |st, v| {
        nodes += 1;
        for i in 0..FANOUT {
            if let Some((_, a, n)) = v.held(st, i) {
                for k in 0..n {
                    *occ.entry(a + k).or_insert(0) += 1;
                }
            }
        }
        true
    });
    assert!(done);
    assert_eq!(s.refs, refs_before, "marks left behind");
    (occ, nodes)
}

#[test]
fn snapshots_random_against_model() {
    use std::collections::{HashMap, HashSet};
    for seed in 1..6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let size = 3000 + rng.below(300_000);
        let mut s = VecStore::with_sharing(usize::MAX);
        let mut refs = RefMap::new(MAX_POOL_BLOCKS);
        // Content id per pool address (relocation copies content).
        let mut content: HashMap<u64, u64> = HashMap::new();
        // Live addresses (some table maps them).
        let mut live: HashSet<u64> = HashSet::new();
        let mut tabs: Vec<(BlockTable, HashMap<u64, u64>)> =
            vec![(BlockTable::new(0, size).unwrap(), HashMap::new())];
        let mut next_addr = 1u64;
        let mut next_content = 1u64;
        let mut next_vol = 1u32;
        let mut runs_seen = 0u64;
        for step in 0..600 {
            let ti = rng.below(tabs.len() as u64) as usize;
            let tsize = tabs[ti].0.size();
            let mut lba = rng.below(tsize.max(1));
            let big = rng.below(8) == 0;
            let mut len = (1 + rng.below(if big { 1500 } else { 30 })).min(tsize - lba.min(tsize));
            if rng.below(5) == 0 && tsize >= 1024 {
                // Whole aligned leaf ranges: run entries (in nodes shared
                // with snapshots after a clone).
                lba = (lba / 512) * 512;
                len = (512 * (1 + rng.below(3))).min(tsize - lba);
            }
            let mut dead: Vec<(u64, u64)> = Vec::new();
            match rng.below(14) {
                0..=5 if len > 0 => {
                    let addr = next_addr;
                    next_addr += len + 1;
                    let (t, m) = &mut tabs[ti];
                    for k in 0..len {
                        content.insert(addr + k, next_content);
                        m.insert(lba + k, addr + k);
                        next_content += 1;
                        live.insert(addr + k);
                    }
                    t.map_range_shared(&mut s, &mut refs, lba, len, addr, |a, n| dead.push((a, n)))
                        .unwrap();
                }
                6..=7 if len > 0 => {
                    let (t, m) = &mut tabs[ti];
                    for k in 0..len {
                        m.remove(&(lba + k));
                    }
                    t.unmap_range_shared(&mut s, &mut refs, lba, len, |a, n| dead.push((a, n)))
                        .unwrap();
                }
                8 if tabs.len() < 8 => {
                    let c = tabs[ti].0.clone_root(&mut s, next_vol).unwrap();
                    next_vol += 1;
                    let m = tabs[ti].1.clone();
                    tabs.push((c, m));
                }
                9 if tabs.len() > 1 => {
                    let (mut t, _) = tabs.swap_remove(ti);
                    t.destroy_shared(&mut s, &mut refs, |a, n| dead.push((a, n)))
                        .unwrap();
                }
                10 => {
                    // GC: move one extent of a table, with every leaf
                    // holding it (all tables).
                    if let Some(e) = tabs[ti].0.next_extent(&s, lba) {
                        let e = MapExtent {
                            len: e.len.min(if rng.below(2) == 0 { 64 } else { 1100 }),
                            ..e
                        };
                        let new = next_addr;
                        next_addr += e.len + 1;
                        for k in 0..e.len {
                            content.insert(new + k, content[&(e.addr + k)]);
                        }
                        refs.move_refs(&mut s, e.addr, new, e.len).unwrap();
                        let mut moved = 0u64;
                        for (t, m) in tabs.iter_mut() {
                            if e.lba >= t.size() {
                                continue;
                            }
                            let x = MapExtent {
                                vol: t.vol(),
                                len: e.len.min(t.size() - e.lba),
                                ..e
                            };
                            t.relocate(&mut s, &x, new, |_, n| moved += n, |_, _| {})
                                .unwrap();
                            for k in 0..x.len {
                                if m.get(&(e.lba + k)) == Some(&(e.addr + k)) {
                                    m.insert(e.lba + k, new + k);
                                }
                            }
                        }
                        assert!(moved >= e.len);
                        for k in 0..e.len {
                            live.insert(new + k);
                            dead.push((e.addr + k, 1));
                        }
                    }
                }
                11 => {
                    // Resize (shrink or grow).
                    let (t, m) = &mut tabs[ti];
                    let new = rng.below(size + size / 2) + 1;
                    t.resize_shared(&mut s, &mut refs, new, |a, n| dead.push((a, n)))
                        .unwrap();
                    m.retain(|l, _| *l < new);
                }
                12 => {
                    tabs[ti].0.flatten(&mut s, &mut refs).unwrap();
                    assert!(!tabs[ti].0.is_shared());
                }
                13 => {
                    // Diff against another table rebuilds the table.
                    let bi = rng.below(tabs.len() as u64) as usize;
                    let (t, _) = tabs[ti];
                    let mut c = tabs[bi].0.clone_root(&mut s, 999).unwrap();
                    c.resize_shared(&mut s, &mut refs, t.size(), |_, _| panic!())
                        .unwrap();
                    let mut at = 0u64;
                    while let Some(d) = t.next_diff(&s, &tabs[bi].0, at) {
                        match d {
                            Diff::Map(e) => {
                                assert!(e.lba >= at && e.len > 0);
                                c.map_range_shared(
                                    &mut s,
                                    &mut refs,
                                    e.lba,
                                    e.len,
                                    e.addr,
                                    |_, _| {},
                                )
                                .unwrap();
                                // The table holds these blocks too.
                                refs.acquire(&mut s, e.addr, e.len).unwrap();
                                at = e.lba + e.len;
                            }
                            Diff::Unmap { lba, len } => {
                                assert!(lba >= at && len > 0);
                                c.unmap_range_shared(&mut s, &mut refs, lba, len, |_, _| {})
                                    .unwrap();
                                at = lba + len;
                            }
                        }
                    }
                    let a: Vec<_> = t.extents(&s).map(|e| (e.lba, e.len, e.addr)).collect();
                    let b: Vec<_> = c.extents(&s).map(|e| (e.lba, e.len, e.addr)).collect();
                    assert_eq!(a, b, "diff of table {ti} against {bi}");
                    c.destroy_shared(&mut s, &mut refs, |a, n| panic!("diff clone freed {a}+{n}"))
                        .unwrap();
                }
                _ => {}
            }
            // Dead blocks: exactly those no table maps any more.
            let mapped: HashSet<u64> = tabs.iter().flat_map(|(_, m)| m.values().copied()).collect();
            for (a, n) in dead {
                for k in 0..n {
                    assert!(
                        !mapped.contains(&(a + k)),
                        "step {step}: live block {} died",
                        a + k
                    );
                    assert!(
                        live.remove(&(a + k)),
                        "step {step}: block {} died twice",
                        a + k
                    );
                }
            }
            assert_eq!(live, mapped, "step {step}: dead blocks not reported");
            // Every table reads its model; reference counts are exact.
            let tables: Vec<BlockTable> = tabs.iter().map(|t| t.0).collect();
            let (occ, _) = occurrences(&mut s, &tables);
            for (a, c) in &occ {
                assert_eq!(refs.extra(&s, *a), c - 1, "step {step}: refs of {a}");
            }
            assert_eq!(
                refs.shared_blocks(),
                occ.values().filter(|c| **c > 1).count() as u64
            );
            refs.check(&s).unwrap();
            for (t, m) in &tabs {
                assert_eq!(t.mapped(), m.len() as u64);
                runs_seen += t.check(&s).unwrap().runs;
                for _ in 0..20 {
                    let l = rng.below(t.size().max(1));
                    assert_eq!(t.lookup(&s, l), m.get(&l).copied());
                }
                // Exclusive space: blocks no other table maps.
                let sp = t.space(&s, &refs);
                let (mp, ex) = (sp.mapped, sp.exclusive);
                assert!(sp.exclusive_nodes <= sp.nodes);
                assert_eq!(sp.nodes, t.check(&s).unwrap().nodes);
                assert_eq!(mp, m.len() as u64);
                let others: HashSet<u64> = tabs
                    .iter()
                    .filter(|(o, _)| o.vol() != t.vol())
                    .flat_map(|(_, om)| om.values().copied())
                    .collect();
                let excl = m.values().filter(|a| !others.contains(a)).count() as u64;
                assert!(ex <= excl, "exclusive {ex} > {excl}");
                if !t.is_shared() {
                    assert_eq!(ex, excl);
                }
            }
        }
        assert!(runs_seen > 100, "seed {seed}: run entries never used");
        // Dropping every table releases every node and reference.
        for (mut t, _) in tabs {
            t.destroy_shared(&mut s, &mut refs, |a, n| {
                for k in 0..n {
                    assert!(live.remove(&(a + k)));
                }
            })
            .unwrap();
        }
        assert!(live.is_empty(), "leaked blocks");
        assert!(refs.map().is_empty());
        assert_eq!(s.live, 0);
    }
}

#[test]
fn visit_distinct_stops_and_restores() {
    let mut s = VecStore::with_sharing(usize::MAX);
    let mut refs = RefMap::new(1 << 30);
    let mut a = BlockTable::new(0, 1 << 20).unwrap();
    for l in (0..1 << 20).step_by(4096) {
        a.map_range_shared(&mut s, &mut refs, l, 3, l + 1, |_, _| {})
            .unwrap();
    }
    let b = a.clone_root(&mut s, 1).unwrap();
    let mut c = b;
    let mut c = c.clone_root(&mut s, 2).unwrap();
    c.map_range_shared(&mut s, &mut refs, 5, 1, 1 << 29, |_, _| {})
        .unwrap();
    let tabs = [a, b, c];
    let before = s.refs.clone();
    let (_, total) = occurrences(&mut s, &tabs);
    // a, b share everything; c copied one path (3 levels).
    assert_eq!(total, s.live - refs.check(&s).unwrap() as usize);
    for stop_after in [1usize, 2, 7, 100, total - 1] {
        let mut seen = 0usize;
        let done = visit_distinct(&mut s, 3, &|i| tabs.get(i).copied(), &mut |_, _| {
            seen += 1;
            seen < stop_after
        });
        assert!(!done);
        assert_eq!(seen, stop_after);
        assert_eq!(s.refs, before, "marks left after stopping at {stop_after}");
    }
}

/// `visit_distinct_from` visits what `visit_distinct` visits from its
/// starting point on (tables from `from.0`, in that table the nodes whose
/// lbas reach `from.1`), never a node twice, walks none of the nodes
/// wholly before the start, and leaves no mark behind, also when stopped.
#[test]
fn visit_distinct_from_starts_where_asked() {
    use std::collections::HashSet;
    let mut s = VecStore::with_sharing(usize::MAX);
    let mut refs = RefMap::new(1 << 30);
    // Two levels of leaves (two level-2 nodes), some run entries, and a
    // snapshot that shares most of them with its origin.
    let mut a = BlockTable::new(0, 1 << 20).unwrap();
    for l in (0..1 << 19).step_by(4096) {
        a.map_range_shared(&mut s, &mut refs, l, 3, l + 1, |_, _| {})
            .unwrap();
    }
    a.map_range_shared(&mut s, &mut refs, 1 << 19, 1024, 1 << 28, |_, _| {})
        .unwrap();
    let b = a.clone_root(&mut s, 1).unwrap();
    let mut c = a.clone_root(&mut s, 2).unwrap();
    c.map_range_shared(&mut s, &mut refs, 8192 + 5, 1, 1 << 29, |_, _| {})
        .unwrap();
    let tabs = [a, b, c];
    let key = |v: &Visit| (v.table, v.base, v.level);
    let mut all = Vec::new();
    assert!(visit_distinct(
        &mut s,
        3,
        &|i| tabs.get(i).copied(),
        &mut |_, v| {
            all.push(key(v));
            true
        }
    ));
    let before = s.refs.clone();
    let ends = |v: &(usize, u64, u8)| v.1.saturating_add(span(v.2.saturating_add(1)));
    for from in [
        (0usize, 0u64),
        (0, 4096),
        (0, 300_000),
        (0, 1 << 19),
        (1, 0),
        (2, 8192),
        (2, 1 << 20),
    ] {
        let wanted: HashSet<_> = all
            .iter()
            .filter(|v| v.0 > from.0 || (v.0 == from.0 && ends(v) > from.1))
            .copied()
            .collect();
        let mut seen = Vec::new();
        assert!(visit_distinct_from(
            &mut s,
            3,
            &|i| tabs.get(i).copied(),
            from,
            &mut |_, v| {
                seen.push(key(v));
                true
            }
        ));
        let got: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(got.len(), seen.len(), "from {from:?}: a node visited twice");
        assert!(
            got.iter().all(|v| v.0 >= from.0),
            "from {from:?}: an earlier table"
        );
        assert!(
            got.iter().all(|v| v.0 != from.0 || ends(v) > from.1),
            "from {from:?}: a node wholly before the start"
        );
        // Nodes shared with the tables before the start are visited from
        // a later table instead: everything wanted, perhaps more.
        assert!(
            wanted.is_subset(&got),
            "from {from:?}: {:?} missed",
            wanted.difference(&got)
        );
        assert_eq!(s.refs, before, "from {from:?}: marks left behind");
        // Not walked at all: looking up the nodes before the start is
        // not free, and a walk from the middle of a table costs less than
        // one from its start.
        if from == (0, 300_000) {
            let g0 = s.gets.get();
            visit_distinct_from(&mut s, 1, &|i| tabs.get(i).copied(), (0, 0), &mut |_, _| {
                true
            });
            let full = s.gets.get() - g0;
            let g1 = s.gets.get();
            visit_distinct_from(&mut s, 1, &|i| tabs.get(i).copied(), from, &mut |_, _| true);
            assert!(
                s.gets.get() - g1 < full,
                "from {from:?}: as costly as from the start"
            );
        }
        // Stopped early: no marks left either.
        let mut k = 0;
        visit_distinct_from(&mut s, 3, &|i| tabs.get(i).copied(), from, &mut |_, _| {
            k += 1;
            k < 3
        });
        assert_eq!(s.refs, before, "from {from:?}: marks left after a stop");
    }
}

#[test]
fn resize_grow_out_of_nodes() {
    let mut s = VecStore::new(1);
    let mut t = BlockTable::new(0, 100).unwrap();
    t.map_range(&mut s, 3, 1, 3, |_, _, _| {}).unwrap();
    let before = t;
    assert_eq!(t.resize(&mut s, 1 << 30, |_, _, _| {}), Err(Error::NoSpace));
    assert_eq!(t, before);
    assert_eq!(s.live, 1);
    // Growing an empty table needs no node.
    let mut e = BlockTable::new(0, 10).unwrap();
    e.resize(&mut s, 1 << 30, |_, _, _| {}).unwrap();
    assert_eq!(e.height(), 4);
}

#[test]
fn encode_decode_chunks() {
    let mut s = VecStore::new(usize::MAX);
    let mut t = BlockTable::new(9, 1 << 20).unwrap();
    let mut rng = Rng(42);
    for _ in 0..300 {
        let lba = rng.below((1 << 20) - 100);
        t.map_range(
            &mut s,
            lba,
            1 + rng.below(60),
            rng.below(1 << 40),
            |_, _, _| {},
        )
        .unwrap();
    }
    let mut chunks = Vec::new();
    let mut cur = 0u64;
    loop {
        let mut b = [0u8; 4096];
        let mut w = Writer::new(&mut b);
        let done = t.encode_chunk(&s, &mut cur, &mut w).unwrap();
        chunks.push(w.written().to_vec());
        if done {
            break;
        }
    }
    assert!(chunks.len() > 1);
    let mut s2 = VecStore::new(usize::MAX);
    let mut t2 = BlockTable::new(9, 1 << 20).unwrap();
    for c in &chunks {
        decode_chunk(&mut Reader::new(c), |e| t2.replay(&mut s2, &e)).unwrap();
    }
    let a: Vec<_> = t.extents(&s).collect();
    let b: Vec<_> = t2.extents(&s2).collect();
    assert_eq!(a, b);
    assert_eq!(t.mapped(), t2.mapped());
    // Replaying twice overlaps.
    let mut r = Reader::new(&chunks[0]);
    assert_eq!(
        decode_chunk(&mut r, |e| t2.replay(&mut s2, &e)),
        Err(Error::Corrupt("map: overlapping extents"))
    );
    // Truncation and corruption: errors, never panics.
    let c = &chunks[0];
    for cut in 0..c.len().min(200) {
        let mut s3 = VecStore::new(usize::MAX);
        let mut t3 = BlockTable::new(9, 1 << 20).unwrap();
        assert!(decode_chunk(&mut Reader::new(&c[..cut]), |e| t3.replay(&mut s3, &e)).is_err());
    }
    for _ in 0..500 {
        let mut bad = c.clone();
        let i = rng.below(bad.len() as u64) as usize;
        bad[i] ^= 1 << rng.below(8);
        let mut s3 = VecStore::new(usize::MAX);
        let mut t3 = BlockTable::new(9, 1 << 20).unwrap();
        let _ = decode_chunk(&mut Reader::new(&bad), |e| t3.replay(&mut s3, &e));
    }
    // Buffer too small for one record.
    let mut small = [0u8; 27];
    let mut cur = 0;
    assert_eq!(
        t.encode_chunk(&s, &mut cur, &mut Writer::new(&mut small)),
        Err(Error::Truncated)
    );
    // Empty table: one empty chunk.
    let e = BlockTable::new(1, 10).unwrap();
    let mut cur = 0;
    let mut b = [0u8; 64];
    assert_eq!(
        e.encode_chunk(&s, &mut cur, &mut Writer::new(&mut b)),
        Ok(true)
    );
    // Long extents split at u32::MAX blocks.
    let mut big = BlockTable::new(2, 1 << 33).unwrap();
    let mut sb = VecStore::new(usize::MAX);
    big.map_range(&mut sb, 0, 1 << 14, 0, |_, _, _| {}).unwrap();
    assert_eq!(big.next_extent(&sb, 0).unwrap().len, 1 << 14);
    assert!(MapExtent {
        vol: 0,
        lba: 0,
        len: 1 << 32,
        addr: 0
    }
    .encode(&mut Writer::new(&mut b))
    .is_err());
}

/// `node_runs` (chunked: one lookup of the node per few runs) gives the
/// same runs as merging `held` entry by entry, for leaves and level-2 nodes
/// with more runs than a chunk holds, and stops after `max` runs.
#[test]
fn node_runs_match_entry_by_entry_merging() {
    let mut rng = Rng(0x6e0d_e5ab_c0ff_ee01);
    let mut s = VecStore::new(4);
    let id = s.alloc().unwrap();
    for round in 0..400 {
        let level = if round % 3 == 0 { 2 } else { 1 };
        let mut a = rng.below(1 << 30);
        for i in 0..FANOUT {
            let e = match rng.below(8) {
                0 | 1 => 0,
                // A break in the addresses starts a new run.
                2 => {
                    a = rng.below(1 << 30);
                    if level == 1 {
                        PRESENT | a
                    } else {
                        run_entry(a)
                    }
                }
                _ => {
                    a += if level == 1 { 1 } else { FANOUT as u64 };
                    if level == 1 {
                        PRESENT | a
                    } else {
                        run_entry(a)
                    }
                }
            };
            s.get_mut(id).unwrap()[i] = e;
        }
        let mut want = Vec::new();
        let mut run = Run(None);
        for i in 0..=FANOUT {
            let h = if i < FANOUT {
                held(&s, id, level, i)
            } else {
                None
            };
            let ended = match h {
                Some((l, a, n)) => run.push_n(l, a, n),
                None => run.0.take(),
            };
            want.extend(ended);
        }
        let mut got = Vec::new();
        let (n, r) = node_runs(&mut s, id, level, usize::MAX, &mut |_, l, a, n| {
            got.push((l, a, n));
            Ok(())
        });
        r.unwrap();
        assert_eq!(n, want.len());
        assert_eq!(got, want, "round {round}, level {level}");
        assert!(want.len() > RUN_CHUNK || round % 3 == 0);
        let max = (rng.below(want.len() as u64 + 1)) as usize;
        let mut some = Vec::new();
        let (n, _) = node_runs(&mut s, id, level, max, &mut |_, l, a, n| {
            some.push((l, a, n));
            Ok(())
        });
        assert_eq!(n, max);
        assert_eq!(some[..], want[..max]);
    }
}
