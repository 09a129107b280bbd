// SPDX-License-Identifier: GPL-2.0
//! Differences between a table and its delta base (how the checkpoint
//! stores snapshots and clones).

use super::{
    child, entry, index, run_addr, span, BlockTable, Diff, MapExtent, NodeStore, Side, ADDR_MASK,
    MAX_VOLUME_BLOCKS, PRESENT,
};

impl BlockTable {
    /// The node of this table at `level` covering `lba`: [`Side::Node`],
    /// [`Side::Hole`], or (for a level above this table's height)
    /// [`Side::Virtual`] if growing the table to that height would create
    /// one there.
    fn side_at<S: NodeStore>(&self, store: &S, lba: u64, level: u8) -> Side {
        let Some(root) = self.root else {
            return Side::Hole;
        };
        if lba >= span(self.height.saturating_add(1)) {
            return Side::Hole;
        }
        if level > self.height {
            return Side::Virtual;
        }
        let mut id = root;
        let mut l = self.height;
        while l > level {
            let e = entry(store, id, index(lba, l));
            match child(e) {
                Some(c) => id = c,
                None => {
                    return match run_addr(e) {
                        Some(a) if l == 2 && level == 1 => Side::Run(a),
                        _ => Side::Hole,
                    }
                }
            }
            l -= 1;
        }
        Side::Node(id)
    }

    /// The first difference at or after `from` between this table and
    /// `base` as it reads once resized to this table's size (`base`'s
    /// mappings at or beyond this size do not count): either a mapped run
    /// of this table that `base` does not have ([`Diff::Map`]; in one leaf,
    /// or a whole extent where `base` has no node), or a range this table
    /// does not map but `base` may ([`Diff::Unmap`]). Applying every
    /// difference in order to a clone of `base` yields this table. Subtrees
    /// both tables share (same node) are skipped: the cost follows the
    /// differences, not the size.
    pub fn next_diff<S: NodeStore>(&self, store: &S, base: &BlockTable, from: u64) -> Option<Diff> {
        let mut l = from;
        'outer: while l < self.size {
            let mut level = self.height;
            loop {
                let cover = span(level.saturating_add(1)).min(MAX_VOLUME_BLOCKS);
                let stop = (l / cover)
                    .saturating_add(1)
                    .saturating_mul(cover)
                    .min(self.size);
                let t = self.side_at(store, l, level);
                let b = base.side_at(store, l, level);
                match (t, b) {
                    (Side::Node(x), Side::Node(y)) if x == y => {
                        l = stop;
                        continue 'outer;
                    }
                    (Side::Run(x), Side::Run(y)) if x == y => {
                        l = stop;
                        continue 'outer;
                    }
                    (Side::Hole | Side::Virtual, Side::Hole) => {
                        l = stop;
                        continue 'outer;
                    }
                    (Side::Hole | Side::Virtual, _) => {
                        return Some(Diff::Unmap {
                            lba: l,
                            len: stop.saturating_sub(l),
                        })
                    }
                    (Side::Node(_) | Side::Run(_), Side::Hole) => {
                        match self.next_extent(store, l) {
                            Some(mut e) if e.lba < stop => {
                                e.len = e.len.min(stop.saturating_sub(e.lba));
                                return Some(Diff::Map(e));
                            }
                            _ => {
                                l = stop;
                                continue 'outer;
                            }
                        }
                    }
                    (x @ (Side::Node(_) | Side::Run(_)), y) => {
                        if level > 1 {
                            level -= 1;
                            continue;
                        }
                        if let Some(d) = self.leaf_diff(store, x, y, l, stop) {
                            return Some(d);
                        }
                        l = stop;
                        continue 'outer;
                    }
                }
            }
        }
        None
    }

    /// The first difference in `[l, stop)` (one leaf range) between this
    /// table's leaf or run entry `x` and the base's `y` (leaf, run entry or
    /// nothing).
    fn leaf_diff<S: NodeStore>(
        &self,
        store: &S,
        x: Side,
        y: Side,
        l: u64,
        stop: u64,
    ) -> Option<Diff> {
        // The leaf entry of `k` (a run entry reads as its leaf would).
        let at = |s: Side, k: u64| match s {
            Side::Node(id) => entry(store, id, index(k, 1)),
            Side::Run(a) => PRESENT | a.saturating_add(index(k, 1) as u64),
            Side::Hole | Side::Virtual => 0,
        };
        let te = |k: u64| at(x, k);
        let be = |k: u64| at(y, k);
        let mut k = l;
        while k < stop && te(k) == be(k) {
            k += 1;
        }
        if k >= stop {
            return None;
        }
        let first = te(k);
        let mut n = 1u64;
        if first & PRESENT != 0 {
            let a = first & ADDR_MASK;
            while k + n < stop {
                let e = te(k + n);
                if e != PRESENT | a.saturating_add(n) || e == be(k + n) {
                    break;
                }
                n += 1;
            }
            Some(Diff::Map(MapExtent {
                vol: self.vol,
                lba: k,
                len: n,
                addr: a,
            }))
        } else {
            while k + n < stop && te(k + n) & PRESENT == 0 && be(k + n) & PRESENT != 0 {
                n += 1;
            }
            Some(Diff::Unmap { lba: k, len: n })
        }
    }
}
