// SPDX-License-Identifier: GPL-2.0
//! What a table changed since the last checkpoint (incremental
//! checkpoints): every mutation marks the entry groups it touched along its
//! path ([`BlockTable::mark_range`]), and [`BlockTable::next_change`] walks
//! only the marked groups of the previous generation of marks.
//!
//! Encoding of a node's 64 mark bits (the store keeps them opaque):
//! - a leaf: bit `g` = entries `8g..8g+8` changed ([`LEAF_GROUP`]);
//! - an interior node: bits `0..32`, `ent`: in entries `16g..16g+16`
//!   ([`NODE_GROUP`]) a run entry or hole whose own value changed; bits
//!   `32..64`, `sub`: in those entries, a child node under which
//!   something changed. The two kinds keep an interior node's unchanged
//!   run entries and holes out of a delta when only a child beside them
//!   changed.
//!
//! Invariant (what makes a delta complete): an entry whose mapping changed
//! since the previous checkpoint's image was taken is under a group marked
//! `sub` in every interior node on its path and marked in its own node (a
//! leaf, or `ent` in the interior node of a run entry or hole), or under a
//! node allocated since (a new node is all marked,
//! [`super::NodeMarks::fresh`]). Marks only ever err on the side of too
//! many: an extra mark costs a few bytes in a delta. A subtree freed while
//! a checkpoint walks takes its marks with it: the hole or run entry left
//! in its place is marked in the walked generation too
//! ([`NodeStore::mark_walked`]).

use super::{
    child, entry, index, run_addr, span, BlockTable, Diff, MapExtent, NodeStore, ADDR_MASK, FANOUT,
    PRESENT,
};

/// Entries per mark bit of a leaf.
pub const LEAF_GROUP: usize = FANOUT / 64;
/// Entries per mark bit of an interior node (of each kind).
pub const NODE_GROUP: usize = FANOUT / 32;

/// Entries per mark bit of a node at `level`.
const fn group_size(level: u8) -> usize {
    if level <= 1 {
        LEAF_GROUP
    } else {
        NODE_GROUP
    }
}

/// The bits, `size` entries a bit (at most 64 bits), of entries
/// `first..=last`.
pub fn group_bits(first: usize, last: usize, size: usize) -> u64 {
    let size = size.max(1);
    let (a, b) = (first / size, (last / size).min(63));
    if a > b {
        return 0;
    }
    let high = if b == 63 {
        u64::MAX
    } else {
        (1u64 << (b + 1)) - 1
    };
    high & !((1u64 << a) - 1)
}

/// A node's marks decoded: per group ([`group_size`] entries a bit), the
/// entries whose own value changed (`ent`) and the children under which
/// something changed (`sub`; interior nodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Marks {
    ent: u64,
    sub: u64,
}

impl Marks {
    fn decode(level: u8, raw: u64) -> Marks {
        if level <= 1 {
            Marks { ent: raw, sub: 0 }
        } else {
            Marks {
                ent: raw & 0xffff_ffff,
                sub: raw >> 32,
            }
        }
    }

    fn encode(&self, level: u8) -> u64 {
        if level <= 1 {
            self.ent
        } else {
            (self.ent & 0xffff_ffff) | (self.sub << 32)
        }
    }

    fn any(&self) -> u64 {
        self.ent | self.sub
    }
}

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
                let gsz = group_size(level);
                let g = i / gsz;
                let m = Marks::decode(level, store.changed(id));
                let marks = m.any().checked_shr(g as u32).unwrap_or(0);
                if marks == 0 {
                    // Nothing marked from here to the end of this node.
                    l = base.saturating_add(cover);
                    continue 'outer;
                }
                if marks & 1 == 0 {
                    let next = g.saturating_add(marks.trailing_zeros() as usize);
                    l = base.saturating_add((next * gsz) as u64 * unit);
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
        let marks = store.changed(id);
        let stop = base.saturating_add(FANOUT as u64).min(end);
        let marked = |k: u64| {
            let g = (k - base) as usize / LEAF_GROUP;
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
        store.mark(id, group_bits(i, j, LEAF_GROUP));
        return;
    }
    let mut m = Marks::default();
    for k in i..=j {
        let bit = group_bits(k, k, NODE_GROUP);
        match child(entry(store, id, k)) {
            Some(c) => {
                m.sub |= bit;
                let b = base.saturating_add((k as u64).saturating_mul(unit));
                mark_node(store, c, level - 1, b, lba, end);
            }
            None => m.ent |= bit,
        }
    }
    store.mark(id, m.encode(level));
    if m.ent != 0 {
        let walked = Marks { ent: m.ent, sub: 0 };
        store.mark_walked(id, walked.encode(level));
    }
}
