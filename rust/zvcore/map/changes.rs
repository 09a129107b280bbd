// SPDX-License-Identifier: GPL-2.0
//! What a table changed since the last checkpoint (incremental
//! checkpoints): every mutation marks the entry groups it touched along its
//! path ([`BlockTable::mark_range`]), and [`BlockTable::next_change`] walks
//! only the marked groups of the previous generation of marks.
//!
//! Invariant (what makes a delta complete): an entry whose mapping changed
//! since the previous checkpoint's image was taken is under a group marked
//! `sub` in every interior node on its path and marked `ent` in its own
//! node (a leaf, or the interior node of a run entry or hole), or under a
//! node allocated since (a new node is all marked,
//! [`super::NodeMarks::fresh`]). Marks only ever err on the side of too
//! many: an extra mark costs a few bytes in a delta. The two kinds keep an
//! interior node's unchanged run entries and holes out of a delta when only
//! a child beside them changed. A subtree freed while a checkpoint walks
//! takes its marks with it: the hole or run entry left in its place is
//! marked in the walked generation too ([`NodeStore::mark_walked`]).

use super::{
    child, entry, group_bits, index, run_addr, span, BlockTable, Diff, GroupMarks, MapExtent,
    NodeStore, ADDR_MASK, FANOUT, GROUP, PRESENT,
};

impl BlockTable {
    /// Marks `[lba, end)` changed in the current generation of `store`'s
    /// marks: on every node on the way down to the range's leaves, the
    /// groups of the entries that cover it. Call after every change of the
    /// table's mappings (also after one that failed half way: marks never
    /// hurt). Costs about what the change cost.
    pub(super) fn mark_range<S: NodeStore>(&self, store: &mut S, lba: u64, end: u64) {
        if let Some(root) = self.root {
            if store.tracks_changes() {
                mark_node(store, root, self.height, 0, lba, end);
            }
        }
    }

    /// The first change at or after `from` marked in the previous
    /// generation of `store`'s marks: the current mapping of a run of
    /// marked entries, as a [`Diff::Map`] or a [`Diff::Unmap`] (clipped to
    /// the table's size). Applying each change in order, from 0 on, to the
    /// table as it read when the marks were swapped (and any later state)
    /// yields this table. Unmarked subtrees are skipped: the cost follows
    /// what changed, not what is mapped.
    pub fn next_change<S: NodeStore>(&self, store: &S, from: u64) -> Option<Diff> {
        let root = self.root?;
        let end = self.size;
        let mut l = from;
        'outer: while l < end {
            let mut id = root;
            let mut level = self.height;
            loop {
                let unit = span(level);
                let cover = unit.saturating_mul(FANOUT as u64);
                let base = l.checked_div(cover).unwrap_or(0).saturating_mul(cover);
                let i = index(l, level);
                let g = i / GROUP;
                let m = store.changed(id);
                let marks = m.any().checked_shr(g as u32).unwrap_or(0);
                if marks == 0 {
                    // Nothing marked from here to the end of this node.
                    l = base.saturating_add(cover);
                    continue 'outer;
                }
                if marks & 1 == 0 {
                    let next = g.saturating_add(marks.trailing_zeros() as usize);
                    l = base.saturating_add((next * GROUP) as u64 * unit);
                    continue 'outer;
                }
                let e = entry(store, id, i);
                let ent_base = l / unit * unit;
                let ent_end = ent_base.saturating_add(unit).min(end);
                if level <= 1 {
                    return Some(self.leaf_change(store, id, l, base, end));
                }
                let bit = 1u64 << g;
                match child(e) {
                    Some(c) if m.sub & bit != 0 => {
                        id = c;
                        level -= 1;
                    }
                    Some(_) => {
                        l = ent_base.saturating_add(unit);
                        continue 'outer;
                    }
                    None if m.ent & bit == 0 => {
                        l = ent_base.saturating_add(unit);
                        continue 'outer;
                    }
                    None => {
                        return Some(match run_addr(e) {
                            Some(a) if level == 2 => Diff::Map(MapExtent {
                                vol: self.vol,
                                lba: l,
                                len: ent_end.saturating_sub(l),
                                addr: a.saturating_add(l - ent_base),
                            }),
                            _ => Diff::Unmap {
                                lba: l,
                                len: ent_end.saturating_sub(l),
                            },
                        })
                    }
                }
            }
        }
        None
    }

    /// The run of marked entries of leaf `id` (covering from `base`) that
    /// starts at `l` (marked): consecutive addresses, or holes, up to the
    /// end of the marked groups, the leaf or the table (`end`).
    fn leaf_change<S: NodeStore>(&self, store: &S, id: u32, l: u64, base: u64, end: u64) -> Diff {
        let marks = store.changed(id).any();
        let stop = base.saturating_add(FANOUT as u64).min(end);
        let marked = |k: u64| {
            let g = (k - base) as usize / GROUP;
            g < 64 && marks & (1u64 << g) != 0
        };
        let first = entry(store, id, index(l, 1));
        let mut n = 1u64;
        if first & PRESENT != 0 {
            let a = first & ADDR_MASK;
            while l + n < stop
                && marked(l + n)
                && entry(store, id, index(l + n, 1)) == PRESENT | a.saturating_add(n)
            {
                n += 1;
            }
            Diff::Map(MapExtent {
                vol: self.vol,
                lba: l,
                len: n,
                addr: a,
            })
        } else {
            while l + n < stop && marked(l + n) && entry(store, id, index(l + n, 1)) & PRESENT == 0
            {
                n += 1;
            }
            Diff::Unmap { lba: l, len: n }
        }
    }
}

/// [`BlockTable::mark_range`] below node `id` at `level`, which covers
/// blocks from `base` on. Recurses once per level (at most
/// [`super::MAX_HEIGHT`]).
fn mark_node<S: NodeStore>(store: &mut S, id: u32, level: u8, base: u64, lba: u64, end: u64) {
    let unit = span(level);
    let cover = unit.saturating_mul(FANOUT as u64);
    let lo = lba.max(base);
    let hi = end.min(base.saturating_add(cover));
    if lo >= hi {
        return;
    }
    let (i, j) = (index(lo, level), index(hi - 1, level));
    if level <= 1 {
        let ent = group_bits(i, j);
        store.mark(id, GroupMarks { ent, sub: 0 });
        return;
    }
    let mut m = GroupMarks::default();
    for k in i..=j {
        let bit = group_bits(k, k);
        match child(entry(store, id, k)) {
            Some(c) => {
                m.sub |= bit;
                let b = base.saturating_add((k as u64).saturating_mul(unit));
                mark_node(store, c, level - 1, b, lba, end);
            }
            None => m.ent |= bit,
        }
    }
    store.mark(id, m);
    if m.ent != 0 {
        store.mark_walked(id, m.ent);
    }
}
