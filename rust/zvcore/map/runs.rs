// SPDX-License-Identifier: GPL-2.0
//! Run entries: splitting a run entry into a leaf when part of its range
//! changes, collapsing a leaf that maps one contiguous run back into a run
//! entry, and tidying a range after a change (collapsing such leaves,
//! freeing nodes left empty).

use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::{
    child, entry, index, run_addr, run_entry, span, BlockTable, NodeId, NodeStore, Walk, ADDR_MASK,
    FANOUT, PRESENT,
};

impl BlockTable {
    /// Allocates the nodes missing on the path to `lba` down to level
    /// `stop` (2: the level-2 node, for a table of height >= 2; 1: the leaf,
    /// splitting a run entry on the way into a leaf). Returns the node at
    /// level `stop`. Nodes are changed in place (make them exclusive first
    /// with [`Self::unshare`] where needed). On [`Error::NoSpace`] the nodes
    /// allocated so far stay (empty, or a split leaf equivalent to its run:
    /// see [`Self::tidy`]).
    pub(super) fn ensure_path<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        stop: u8,
    ) -> Result<NodeId> {
        let mut id = match self.root {
            Some(r) => r,
            None => {
                let r = store.alloc().ok_or(Error::NoSpace)?;
                self.root = Some(r);
                r
            }
        };
        let mut level = self.height;
        while level > stop.max(1) {
            let i = index(lba, level);
            let e = store
                .get(id)
                .and_then(|n| n.get(i).copied())
                .ok_or(Error::Corrupt("map: bad node id"))?;
            id = match child(e) {
                Some(c) => c,
                None => {
                    let c = match run_addr(e) {
                        Some(a) if level == 2 => Self::split(store, a)?,
                        _ => store.alloc().ok_or(Error::NoSpace)?,
                    };
                    if let Some(slot) = store.get_mut(id).and_then(|n| n.get_mut(i)) {
                        *slot = PRESENT | u64::from(c);
                    }
                    c
                }
            };
            level -= 1;
        }
        Ok(id)
    }

    /// A new leaf mapping its 512 blocks to `[addr, addr + FANOUT)` (the
    /// leaf form of a run entry).
    pub(super) fn split<S: NodeStore>(store: &mut S, addr: u64) -> Result<NodeId> {
        let leaf = store.alloc().ok_or(Error::NoSpace)?;
        if let Some(n) = store.get_mut(leaf) {
            for (j, slot) in n.iter_mut().enumerate() {
                *slot = PRESENT | (addr.saturating_add(j as u64) & ADDR_MASK);
            }
        }
        Ok(leaf)
    }

    /// If leaf `leaf` (entry `i` of level-2 node `parent`) maps all its
    /// blocks to consecutive addresses and no other parent holds it,
    /// replaces it by a run entry and frees it. The mapping, and the number
    /// of holders of every block, are unchanged (so this is done in place
    /// even in a node shared by several tables). Returns whether it did.
    pub(super) fn collapse<S: NodeStore>(
        store: &mut S,
        parent: NodeId,
        i: usize,
        leaf: NodeId,
    ) -> bool {
        if store.refs(leaf) != 1 || entry(store, parent, i) != PRESENT | u64::from(leaf) {
            return false;
        }
        let Some(n) = store.get(leaf) else {
            return false;
        };
        let first = n.first().copied().unwrap_or(0);
        let a = first & ADDR_MASK;
        if first & PRESENT == 0
            || a.checked_add(FANOUT as u64).map(|e| e > MAX_POOL_BLOCKS) != Some(false)
            || n.last().copied() != Some(PRESENT | (a + FANOUT as u64 - 1))
            || !n
                .iter()
                .enumerate()
                .all(|(j, &e)| e == PRESENT | (a + j as u64))
        {
            return false;
        }
        if let Some(slot) = store.get_mut(parent).and_then(|n| n.get_mut(i)) {
            *slot = run_entry(a);
            store.free(leaf);
            return true;
        }
        false
    }

    /// The node at `level` on the path to `lba`, if it exists.
    pub(super) fn node_at<S: NodeStore>(&self, store: &S, lba: u64, level: u8) -> Option<NodeId> {
        let mut id = self.root?;
        let mut l = self.height;
        while l > level {
            id = child(entry(store, id, index(lba, l)))?;
            l -= 1;
        }
        Some(id)
    }

    /// After a change of `[lba, end)`: collapses the leaves there that map
    /// one contiguous run (see [`Self::collapse`]) and frees the nodes left
    /// empty (not shared).
    pub(super) fn tidy<S: NodeStore>(&mut self, store: &mut S, lba: u64, end: u64) {
        let h = usize::from(self.height);
        let mut l = lba;
        while l < end {
            let next_leaf = (l / span(2)).saturating_add(1).saturating_mul(span(2));
            let (p, found, next) = match self.walk(store, l) {
                Walk::Run { .. } => {
                    l = next_leaf;
                    continue;
                }
                Walk::Leaf(p) => {
                    if h >= 2 {
                        let leaf = p.get(h - 1).copied().unwrap_or(0);
                        let parent = p.get(h - 2).copied().unwrap_or(0);
                        if Self::collapse(store, parent, index(l, 2), leaf) {
                            l = next_leaf;
                            continue;
                        }
                    }
                    (p, h, next_leaf)
                }
                Walk::Hole { end, path, depth } => (path, depth, end.max(l.saturating_add(1))),
            };
            // From the deepest node found up: free a node while it is all zero.
            let mut depth = found;
            while depth > 0 {
                depth = depth.saturating_sub(1);
                let id = p.get(depth).copied().unwrap_or(0);
                let empty = store
                    .get(id)
                    .map(|n| n.iter().all(|&e| e == 0))
                    .unwrap_or(false);
                if !empty || store.refs(id) > 1 {
                    break;
                }
                store.free(id);
                if depth == 0 {
                    self.root = None;
                    break;
                }
                let parent = p.get(depth.wrapping_sub(1)).copied().unwrap_or(0);
                let level = self.height.saturating_sub((depth as u8).saturating_sub(1));
                if let Some(slot) = store
                    .get_mut(parent)
                    .and_then(|n| n.get_mut(index(l, level)))
                {
                    *slot = 0;
                }
            }
            l = next;
        }
    }
}
