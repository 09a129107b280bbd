// SPDX-License-Identifier: GPL-2.0
//! Walks of block tables: lookups, runs of a mapping, extent iteration, and
//! [`visit_distinct`] (every node of several tables, once).

use super::{
    child, entry, index, run_addr, span, BlockTable, Extents, MapExtent, NodeId, NodeStore, Visit,
    Walk, ADDR_MASK, FANOUT, MARK, MAX_HEIGHT, MAX_VOLUME_BLOCKS, PRESENT,
};

// Only named by the links in the docs.
#[cfg(doc)]
use super::MAX_REFS;

impl BlockTable {
    pub(super) fn walk<S: NodeStore>(&self, store: &S, lba: u64) -> Walk {
        let h = self.height;
        let mut path = [0 as NodeId; MAX_HEIGHT as usize];
        let hole_end = |level: u8| {
            let s = span(level.saturating_add(1)).min(MAX_VOLUME_BLOCKS);
            (lba / s).saturating_add(1).saturating_mul(s)
        };
        let Some(mut id) = self.root else {
            return Walk::Hole {
                end: hole_end(h).max(self.size),
                path,
                depth: 0,
            };
        };
        let mut level = h;
        let mut depth = 0usize;
        loop {
            if let Some(p) = path.get_mut(depth) {
                *p = id;
            }
            if level <= 1 {
                return Walk::Leaf(path);
            }
            let e = store
                .get(id)
                .and_then(|n| n.get(index(lba, level)).copied())
                .unwrap_or(0);
            if level == 2 {
                if let Some(addr) = run_addr(e) {
                    return Walk::Run {
                        path,
                        base: lba & !(FANOUT as u64 - 1),
                        addr,
                    };
                }
            }
            match child(e) {
                Some(c) => id = c,
                None => {
                    return Walk::Hole {
                        end: hole_end(level.saturating_sub(1)),
                        path,
                        depth: depth.saturating_add(1),
                    }
                }
            }
            level = level.saturating_sub(1);
            depth = depth.saturating_add(1);
        }
    }

    pub(super) fn leaf_id(&self, path: &[NodeId; MAX_HEIGHT as usize]) -> NodeId {
        path.get(usize::from(self.height).wrapping_sub(1))
            .copied()
            .unwrap_or(0)
    }

    /// The leaf holding `lba`, if any (`None` where a run entry maps it).
    pub fn leaf_at<S: NodeStore>(&self, store: &S, lba: u64) -> Option<NodeId> {
        if lba >= self.size {
            return None;
        }
        match self.walk(store, lba) {
            Walk::Hole { .. } | Walk::Run { .. } => None,
            Walk::Leaf(p) => Some(self.leaf_id(&p)),
        }
    }

    /// The node whose entry maps `lba`, if mapped: its leaf, or the level-2
    /// node holding the run entry (the holder [`Visit::held`] reports).
    pub fn holder_at<S: NodeStore>(&self, store: &S, lba: u64) -> Option<NodeId> {
        if lba >= self.size {
            return None;
        }
        match self.walk(store, lba) {
            Walk::Hole { .. } => None,
            Walk::Run { path, .. } => path.get(usize::from(self.height).wrapping_sub(2)).copied(),
            Walk::Leaf(p) => {
                let leaf = self.leaf_id(&p);
                (entry(store, leaf, index(lba, 1)) & PRESENT != 0).then_some(leaf)
            }
        }
    }

    /// The pool address of `lba`, if mapped.
    pub fn lookup<S: NodeStore>(&self, store: &S, lba: u64) -> Option<u64> {
        if lba >= self.size {
            return None;
        }
        match self.walk(store, lba) {
            Walk::Hole { .. } => None,
            Walk::Run { base, addr, .. } => Some(addr.saturating_add(lba.saturating_sub(base))),
            Walk::Leaf(p) => {
                let e = store.get(self.leaf_id(&p))?.get(index(lba, 1)).copied()?;
                (e & PRESENT != 0).then_some(e & ADDR_MASK)
            }
        }
    }

    /// Whether a leaf holds the mapping of `lba` (not a level-2 run entry
    /// nor a hole).
    pub fn in_leaf<S: NodeStore>(&self, store: &S, lba: u64) -> bool {
        lba < self.size && matches!(self.walk(store, lba), Walk::Leaf(_))
    }

    /// The mapping of `lba` and how many blocks from `lba` on (at most `max`,
    /// never past the volume end) share it: either all unmapped, or mapped to
    /// consecutive pool addresses. `(None, 0)` for `lba >= size` or `max == 0`.
    pub fn lookup_run<S: NodeStore>(&self, store: &S, lba: u64, max: u64) -> (Option<u64>, u64) {
        if lba >= self.size || max == 0 {
            return (None, 0);
        }
        let limit = max.min(self.size.saturating_sub(lba));
        let first = self.lookup(store, lba);
        let mut n = 0u64;
        while n < limit {
            let cur = lba.saturating_add(n);
            match self.walk(store, cur) {
                Walk::Hole { end, .. } => {
                    if first.is_some() {
                        break;
                    }
                    n = n.saturating_add(end.saturating_sub(cur).max(1));
                }
                Walk::Run { base, addr, .. } => {
                    let here = addr.saturating_add(cur.saturating_sub(base));
                    match first {
                        Some(a) if a.wrapping_add(n) == here => {
                            let avail = base.saturating_add(FANOUT as u64).saturating_sub(cur);
                            n = n.saturating_add(avail.max(1));
                        }
                        _ => break,
                    }
                }
                Walk::Leaf(p) => {
                    let Some(node) = store.get(self.leaf_id(&p)) else {
                        break;
                    };
                    let mut i = index(cur, 1);
                    let mut stop = false;
                    while i < FANOUT && n < limit {
                        let e = node.get(i).copied().unwrap_or(0);
                        let ok = match first {
                            None => e & PRESENT == 0,
                            Some(a) => e & PRESENT != 0 && e & ADDR_MASK == a.wrapping_add(n),
                        };
                        if !ok {
                            stop = true;
                            break;
                        }
                        n = n.saturating_add(1);
                        i = i.saturating_add(1);
                    }
                    if stop {
                        break;
                    }
                }
            }
        }
        (first, n.min(limit))
    }

    /// The first mapped extent at or after `from` (maximal run of blocks
    /// mapped to consecutive addresses), if any.
    pub fn next_extent<S: NodeStore>(&self, store: &S, from: u64) -> Option<MapExtent> {
        let mut l = from;
        while l < self.size {
            match self.walk(store, l) {
                Walk::Hole { end, .. } => l = end.max(l.saturating_add(1)),
                Walk::Run { .. } => {
                    let (addr, len) = self.lookup_run(store, l, u64::MAX);
                    return addr.map(|addr| MapExtent {
                        vol: self.vol,
                        lba: l,
                        len,
                        addr,
                    });
                }
                Walk::Leaf(p) => {
                    let node = store.get(self.leaf_id(&p))?;
                    let mut i = index(l, 1);
                    while i < FANOUT && l < self.size {
                        if node.get(i).map(|e| e & PRESENT != 0) == Some(true) {
                            let (addr, len) = self.lookup_run(store, l, u64::MAX);
                            return addr.map(|addr| MapExtent {
                                vol: self.vol,
                                lba: l,
                                len,
                                addr,
                            });
                        }
                        i += 1;
                        l += 1;
                    }
                }
            }
        }
        None
    }

    /// Iterator over the mapped extents in lba order.
    pub fn extents<'a, S: NodeStore>(&'a self, store: &'a S) -> Extents<'a, S> {
        Extents {
            table: self,
            store,
            next: 0,
        }
    }
}

/// Visits every node reachable from the tables `table(0)..table(n-1)`
/// exactly once (a shared node only from the first table reaching it), in
/// table order then in lba order, parents before children. `visit` returns
/// `false` to stop the walk. Returns whether the walk completed.
///
/// No extra memory: a shared node is marked while the walk runs by setting
/// bit 31 of its reference count (see [`MAX_REFS`]), and the marks are
/// cleared before returning, so `visit` must not rely on
/// [`NodeStore::refs`] ([`Visit::refs`] has the real count). `visit` may
/// allocate and free nodes that no table reaches (e.g. of a
/// [`super::super::sparse::SparseMap`]), never change the tables' nodes.
pub fn visit_distinct<S: NodeStore>(
    store: &mut S,
    n: usize,
    table: &dyn Fn(usize) -> Option<BlockTable>,
    visit: &mut dyn FnMut(&mut S, &Visit) -> bool,
) -> bool {
    visit_distinct_from(store, n, table, (0, 0), visit)
}

/// [`visit_distinct`] from table `from.0` on, and in that table only the
/// subtrees that map lbas from `from.1` on (the nodes wholly before are
/// not visited at all: a walk that resumes where an earlier one stopped
/// costs the path down to there, not everything before). A shared node
/// is still visited once, unless the tables before `from` reach it.
pub fn visit_distinct_from<S: NodeStore>(
    store: &mut S,
    n: usize,
    table: &dyn Fn(usize) -> Option<BlockTable>,
    from: (usize, u64),
    visit: &mut dyn FnMut(&mut S, &Visit) -> bool,
) -> bool {
    let skip = |ti: usize| if ti == from.0 { from.1 } else { 0 };
    let mut stop: Option<(usize, u64, u8)> = None;
    for ti in from.0..n {
        let Some(t) = table(ti) else { continue };
        let Some(root) = t.root else { continue };
        if let Some((b, l)) = mark_walk(store, ti, t.vol, root, t.height, 0, skip(ti), visit) {
            stop = Some((ti, b, l));
            break;
        }
    }
    let last = stop.map(|s| s.0).unwrap_or(n.saturating_sub(1));
    for ti in from.0..n.min(last.saturating_add(1)) {
        let Some(t) = table(ti) else { continue };
        let Some(root) = t.root else { continue };
        let limit = match stop {
            Some((st, b, l)) if st == ti => Some((b, l)),
            _ => None,
        };
        unmark_walk(store, root, t.height, 0, skip(ti), limit);
    }
    stop.is_none()
}

/// Pass 1 of [`visit_distinct`]: returns where `visit` stopped it.
#[allow(clippy::too_many_arguments)]
fn mark_walk<S: NodeStore>(
    store: &mut S,
    ti: usize,
    vol: u32,
    id: NodeId,
    level: u8,
    base: u64,
    from: u64,
    visit: &mut dyn FnMut(&mut S, &Visit) -> bool,
) -> Option<(u64, u8)> {
    let r = store.refs(id);
    if r & MARK != 0 {
        return None;
    }
    if r > 1 {
        let _ = store.set_refs(id, r | MARK);
    }
    let v = Visit {
        table: ti,
        vol,
        id,
        level,
        base,
        refs: r,
    };
    if !visit(store, &v) {
        return Some((base, level));
    }
    if level > 1 {
        for i in first_child(base, level, from)..FANOUT {
            if let Some(c) = child(entry(store, id, i)) {
                let b = base.saturating_add((i as u64).saturating_mul(span(level)));
                if let Some(s) = mark_walk(store, ti, vol, c, level - 1, b, from, visit) {
                    return Some(s);
                }
            }
        }
    }
    None
}

/// The first child of a node at `level` mapping lbas from `base` that maps
/// any lba at or after `from`.
fn first_child(base: u64, level: u8, from: u64) -> usize {
    let k = from.saturating_sub(base) / span(level).max(1);
    usize::try_from(k).unwrap_or(FANOUT).min(FANOUT)
}

/// Pass 2 of [`visit_distinct`]: clears the marks of the nodes pass 1
/// reached (in the table where it stopped, only up to where it stopped:
/// nodes before `limit` in pre-order, i.e. with a smaller base, or the same
/// base and a level not below the stop node's).
fn unmark_walk<S: NodeStore>(
    store: &mut S,
    id: NodeId,
    level: u8,
    base: u64,
    from: u64,
    limit: Option<(u64, u8)>,
) {
    if let Some((sb, sl)) = limit {
        if base > sb || (base == sb && level < sl) {
            return;
        }
    }
    let r = store.refs(id);
    if r & MARK != 0 {
        let _ = store.set_refs(id, r & !MARK);
    } else if r > 1 {
        // Cleared already (reached before in this pass), or never marked.
        return;
    }
    if level > 1 {
        for i in first_child(base, level, from)..FANOUT {
            if let Some(c) = child(entry(store, id, i)) {
                let b = base.saturating_add((i as u64).saturating_mul(span(level)));
                unmark_walk(store, c, level - 1, b, from, limit);
            }
        }
    }
}
