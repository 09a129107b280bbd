// SPDX-License-Identifier: GPL-2.0
//! Changes to a block table: mapping, unmapping, resizing, GC relocation
//! and destruction, each plain or with reference counting (`*_shared`).

use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::super::sparse::RefMap;
use super::{
    add_ref, child, entry, height_for, index, run_addr, run_entry, span, BlockTable, Counted,
    Hooks, MapExtent, NodeId, NodeStore, Plain, Run, Walk, ADDR_MASK, FANOUT, MAX_HEIGHT,
    MAX_VOLUME_BLOCKS, PRESENT,
};

/// The first lba of the leaf range after the one holding `l`.
fn next_leaf(l: u64) -> u64 {
    (l / span(2)).saturating_add(1).saturating_mul(span(2))
}

impl BlockTable {
    pub(super) fn check_range(&self, lba: u64, len: u64) -> Result<u64> {
        let end = lba.checked_add(len).ok_or(Error::Invalid("range"))?;
        if len == 0 || end > self.size {
            return Err(Error::Invalid("range outside volume"));
        }
        Ok(end)
    }

    /// Whether `[l, stop)` (inside one leaf range) is a whole leaf range
    /// that a run entry can map.
    fn whole_leaf(&self, l: u64, stop: u64) -> bool {
        self.height >= 2 && l & (FANOUT as u64 - 1) == 0 && stop.saturating_sub(l) == FANOUT as u64
    }

    /// Maps `[lba, lba+len)` to pool addresses `[addr, addr+len)`. Every
    /// previous mapping replaced is reported as `on_old(lba, old_addr, len)`
    /// (runs merged), so the caller can invalidate it in the allocator.
    ///
    /// [`Error::NoSpace`] when the store runs out of nodes: the mapping is
    /// unchanged (nodes allocated on the way are freed again).
    /// [`Error::Invalid`] on a shared table (use [`Self::map_range_shared`]).
    pub fn map_range<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        addr: u64,
        mut on_old: impl FnMut(u64, u64, u64),
    ) -> Result<()> {
        self.not_shared()?;
        self.map_impl(store, lba, len, addr, &mut Plain(&mut on_old))
    }

    /// [`Self::map_range`] for every table of a pool with snapshots or
    /// clones: shared nodes on the way are copied first (a copied leaf adds
    /// a reference to each of its blocks in `refs`), and every replaced
    /// mapping drops a reference in `refs`; blocks whose last reference goes
    /// are reported as `on_dead(addr, len)` runs (invalidate them). On
    /// [`Error::NoSpace`] (nodes of the table or of `refs`) the mapping is
    /// unchanged (copies already made are equivalent).
    pub fn map_range_shared<S: NodeStore>(
        &mut self,
        store: &mut S,
        refs: &mut RefMap,
        lba: u64,
        len: u64,
        addr: u64,
        mut on_dead: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut h = Counted {
            refs,
            on_dead: &mut on_dead,
        };
        self.map_impl(store, lba, len, addr, &mut h)
    }

    fn map_impl<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        addr: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        let r = self.map_inner(store, lba, len, addr, hooks);
        self.mark_range(store, lba, lba.saturating_add(len));
        r
    }

    fn map_inner<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        addr: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        let end = self.check_range(lba, len)?;
        if addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false) {
            return Err(Error::Invalid("address outside the pool"));
        }
        // Pass 1: every leaf range is reachable through nodes exclusive to
        // this table: down to the level-2 node for a whole leaf range
        // (mapped by a run entry), else down to an existing leaf (a run
        // entry covering part of the range is split).
        let mut l = lba;
        while l < end {
            let stop = end.min(next_leaf(l));
            let level = if self.whole_leaf(l, stop) { 2 } else { 1 };
            let r = match self.unshare(store, l, level, hooks) {
                Ok(()) => self.ensure_path(store, l, level).map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                self.tidy(store, lba, l.saturating_add(1).min(end));
                return Err(e);
            }
            l = stop;
        }
        // Pass 2: write the entries (no node borrow is held while the hooks
        // run: they may use the store).
        let mut run = Run(None);
        let mut l = lba;
        while l < end {
            let stop = end.min(next_leaf(l));
            if self.whole_leaf(l, stop) {
                let node = self
                    .node_at(store, l, 2)
                    .ok_or(Error::Corrupt("map: missing node"))?;
                self.drop_entry(store, node, index(l, 2), l, &mut run, hooks)?;
                let slot = store
                    .get_mut(node)
                    .and_then(|n| n.get_mut(index(l, 2)))
                    .ok_or(Error::Corrupt("map: bad node id"))?;
                *slot = run_entry(addr.saturating_add(l - lba));
                self.mapped = self.mapped.saturating_add(FANOUT as u64);
                l = stop;
                continue;
            }
            let Walk::Leaf(p) = self.walk(store, l) else {
                return Err(Error::Corrupt("map: missing leaf"));
            };
            let leaf = self.leaf_id(&p);
            let mut i = index(l, 1);
            while i < FANOUT && l < end {
                let new = PRESENT | addr.saturating_add(l.saturating_sub(lba));
                let old = match store.get_mut(leaf).and_then(|n| n.get_mut(i)) {
                    Some(slot) => core::mem::replace(slot, new),
                    None => return Err(Error::Corrupt("map: bad node id")),
                };
                if old & PRESENT != 0 {
                    if let Some((rl, ra, rn)) = run.push(l, old & ADDR_MASK) {
                        hooks.dropped(store, rl, ra, rn);
                    }
                } else {
                    self.mapped = self.mapped.saturating_add(1);
                }
                i += 1;
                l += 1;
            }
        }
        if let Some((rl, ra, rn)) = run.0 {
            hooks.dropped(store, rl, ra, rn);
        }
        // Leaves now mapping one contiguous run become run entries.
        self.tidy(store, lba, end);
        Ok(())
    }

    /// Clears entry `i` of this table's exclusive level-2 node `node` (leaf
    /// range from `l`): the mappings it held are dropped (through `run`,
    /// in lba order) and a leaf no other parent holds is freed; a shared
    /// leaf only loses this reference (its blocks keep their holder).
    fn drop_entry<S: NodeStore>(
        &mut self,
        store: &mut S,
        node: NodeId,
        i: usize,
        l: u64,
        run: &mut Run,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        let old = store
            .get_mut(node)
            .and_then(|n| n.get_mut(i))
            .map(|slot| core::mem::replace(slot, 0))
            .ok_or(Error::Corrupt("map: bad node id"))?;
        if let Some(a) = run_addr(old) {
            self.mapped = self.mapped.saturating_sub(FANOUT as u64);
            if let Some((rl, ra, rn)) = run.push_n(l, a, FANOUT as u64) {
                hooks.dropped(store, rl, ra, rn);
            }
        } else if let Some(c) = child(old) {
            let refs = store.refs(c);
            for j in 0..FANOUT {
                let e = entry(store, c, j);
                if e & PRESENT == 0 {
                    continue;
                }
                self.mapped = self.mapped.saturating_sub(1);
                if refs <= 1 {
                    if let Some((rl, ra, rn)) = run.push(l.saturating_add(j as u64), e & ADDR_MASK)
                    {
                        hooks.dropped(store, rl, ra, rn);
                    }
                }
            }
            if refs > 1 {
                store.set_refs(c, refs - 1)?;
            } else {
                store.free(c);
            }
        }
        Ok(())
    }

    /// Unmaps `[lba, lba+len)` (trim / discard / write zeroes), reporting the
    /// old mappings like [`Self::map_range`], and frees nodes left empty.
    /// Allocates only to split a run entry unmapped in part:
    /// [`Error::NoSpace`] then, with the range unmapped up to that run and
    /// the run unchanged. [`Error::Invalid`] on a shared table (use
    /// [`Self::unmap_range_shared`]).
    pub fn unmap_range<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        mut on_old: impl FnMut(u64, u64, u64),
    ) -> Result<()> {
        self.not_shared()?;
        self.unmap_impl(store, lba, len, &mut Plain(&mut on_old))
    }

    /// [`Self::unmap_range`] with reference counting (see
    /// [`Self::map_range_shared`]): shared leaves are copied before being
    /// changed. May fail with [`Error::NoSpace`] when a copy is needed: the
    /// range is then partly unmapped (consistently counted).
    pub fn unmap_range_shared<S: NodeStore>(
        &mut self,
        store: &mut S,
        refs: &mut RefMap,
        lba: u64,
        len: u64,
        mut on_dead: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut h = Counted {
            refs,
            on_dead: &mut on_dead,
        };
        self.unmap_impl(store, lba, len, &mut h)
    }

    fn unmap_impl<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        let r = self.unmap_inner(store, lba, len, hooks);
        self.mark_range(store, lba, lba.saturating_add(len));
        r
    }

    fn unmap_inner<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        len: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        let end = self.check_range(lba, len)?;
        let h = usize::from(self.height);
        let mut run = Run(None);
        let mut l = lba;
        while l < end {
            let stop = end.min(next_leaf(l));
            match self.walk(store, l) {
                Walk::Hole { end, .. } => l = end.max(l.saturating_add(1)),
                Walk::Run { path, base, .. } => {
                    let whole = l == base && stop == base.saturating_add(FANOUT as u64);
                    let shared = self.cow
                        && path
                            .iter()
                            .take(h.saturating_sub(1))
                            .any(|&id| store.refs(id) > 1);
                    let mut r = if shared {
                        self.unshare(store, l, 2, hooks)
                    } else {
                        Ok(())
                    };
                    if r.is_ok() && !whole {
                        // Part of a run: split it into a leaf, then unmap
                        // in the leaf (next round).
                        r = self.ensure_path(store, l, 1).map(|_| ());
                    }
                    if let Err(e) = r {
                        if let Some((rl, ra, rn)) = run.0.take() {
                            hooks.dropped(store, rl, ra, rn);
                        }
                        self.tidy(store, lba, l.max(lba.saturating_add(1)));
                        return Err(e);
                    }
                    if whole {
                        let node = self
                            .node_at(store, l, 2)
                            .ok_or(Error::Corrupt("map: missing node"))?;
                        self.drop_entry(store, node, index(l, 2), l, &mut run, hooks)?;
                        l = stop;
                    }
                }
                Walk::Leaf(p) => {
                    let mut leaf = self.leaf_id(&p);
                    if self.cow && p.iter().take(h).any(|&id| store.refs(id) > 1) {
                        let any = store
                            .get(leaf)
                            .map(|n| {
                                (l..stop).any(|x| {
                                    n.get(index(x, 1)).map(|e| e & PRESENT != 0) == Some(true)
                                })
                            })
                            .unwrap_or(false);
                        if !any {
                            l = stop;
                            continue;
                        }
                        if let Err(e) = self.unshare(store, l, 1, hooks) {
                            if let Some((rl, ra, rn)) = run.0.take() {
                                hooks.dropped(store, rl, ra, rn);
                            }
                            self.tidy(store, lba, l.max(lba.saturating_add(1)));
                            return Err(e);
                        }
                        let Walk::Leaf(p2) = self.walk(store, l) else {
                            return Err(Error::Corrupt("map: missing leaf"));
                        };
                        leaf = self.leaf_id(&p2);
                    }
                    let mut i = index(l, 1);
                    while i < FANOUT && l < end {
                        let old = match store.get_mut(leaf).and_then(|n| n.get_mut(i)) {
                            Some(slot) => core::mem::replace(slot, 0),
                            None => return Err(Error::Corrupt("map: bad node id")),
                        };
                        if old & PRESENT != 0 {
                            self.mapped = self.mapped.saturating_sub(1);
                            if let Some((rl, ra, rn)) = run.push(l, old & ADDR_MASK) {
                                hooks.dropped(store, rl, ra, rn);
                            }
                        }
                        i += 1;
                        l += 1;
                    }
                }
            }
        }
        if let Some((rl, ra, rn)) = run.0 {
            hooks.dropped(store, rl, ra, rn);
        }
        self.tidy(store, lba, end);
        Ok(())
    }

    /// Changes the volume size. Shrinking unmaps everything beyond the new
    /// end (reported through `on_old`) and lowers the tree (a new end inside
    /// a run entry, or a tree lowered to one level over one, splits it: may
    /// fail with [`Error::NoSpace`] like [`Self::unmap_range`]); growing may
    /// add levels above the root ([`Error::NoSpace`] leaves the table
    /// unchanged).
    /// [`Error::Invalid`] on a shared table (use [`Self::resize_shared`]).
    pub fn resize<S: NodeStore>(
        &mut self,
        store: &mut S,
        new_size: u64,
        mut on_old: impl FnMut(u64, u64, u64),
    ) -> Result<()> {
        self.not_shared()?;
        self.resize_impl(store, new_size, &mut Plain(&mut on_old))
    }

    /// [`Self::resize`] with reference counting (see
    /// [`Self::unmap_range_shared`] for shrinking).
    pub fn resize_shared<S: NodeStore>(
        &mut self,
        store: &mut S,
        refs: &mut RefMap,
        new_size: u64,
        mut on_dead: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut h = Counted {
            refs,
            on_dead: &mut on_dead,
        };
        self.resize_impl(store, new_size, &mut h)
    }

    fn resize_impl<S: NodeStore>(
        &mut self,
        store: &mut S,
        new_size: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if new_size > MAX_VOLUME_BLOCKS {
            return Err(Error::Invalid("volume too large"));
        }
        let new_h = height_for(new_size);
        if new_size < self.size {
            if new_h == 1 && self.height >= 2 {
                // A table of one level has no run entries: split the one
                // that may stay (before changing anything).
                if let Walk::Run { .. } = self.walk(store, 0) {
                    self.unshare(store, 0, 2, hooks)?;
                    self.ensure_path(store, 0, 1)?;
                }
            }
            self.unmap_impl(store, new_size, self.size - new_size, hooks)?;
            while self.height > new_h {
                if let Some(r) = self.root {
                    let first = store.get(r).and_then(|n| n.first().copied()).unwrap_or(0);
                    let c = child(first);
                    let refs = store.refs(r);
                    if refs > 1 {
                        // The old root stays in the other tables; its child
                        // gains our reference.
                        if let Some(c) = c {
                            add_ref(store, c)?;
                        }
                        store.set_refs(r, refs - 1)?;
                    } else {
                        store.free(r);
                    }
                    self.root = c;
                }
                self.height -= 1;
            }
        } else if new_h > self.height {
            if let Some(r) = self.root {
                let mut ids = [0 as NodeId; MAX_HEIGHT as usize];
                let extra = usize::from(new_h - self.height);
                for k in 0..extra {
                    match store.alloc() {
                        Some(id) => {
                            if let Some(s) = ids.get_mut(k) {
                                *s = id;
                            }
                        }
                        None => {
                            for &id in ids.iter().take(k) {
                                store.free(id);
                            }
                            return Err(Error::NoSpace);
                        }
                    }
                }
                // ids[0] is the new root; each points to the next; the last to the old root.
                let mut below = r;
                for k in (0..extra).rev() {
                    let id = ids.get(k).copied().unwrap_or(0);
                    if let Some(slot) = store.get_mut(id).and_then(|n| n.first_mut()) {
                        *slot = PRESENT | u64::from(below);
                    }
                    below = id;
                }
                self.root = Some(below);
            }
            self.height = new_h;
        }
        self.size = new_size;
        Ok(())
    }

    /// GC relocation of `ext` (a live extent found by the relocation plan,
    /// `ext.addr` = old address): for each block of `[ext.lba, ext.lba +
    /// ext.len)` still mapped to `ext.addr + i`, maps it to `new_addr + i`.
    /// Blocks changed meanwhile (overwritten or trimmed by the user while GC
    /// copied them) are left alone. Reports runs: `on_moved(old_addr, n)`
    /// (caller invalidates the old copies) and `on_skipped(new_addr, n)`
    /// (caller invalidates the unused new copies). Returns the blocks moved.
    ///
    /// Nodes are changed in place, shared or not (every sharer sees the
    /// move). Moving part of a run entry splits it into a new leaf (and a
    /// leaf left mapping one contiguous run becomes a run entry again): if
    /// no node can be allocated for a split, the blocks of that run are
    /// reported as skipped, the rest is done, and the result is
    /// [`Error::NoSpace`] (the reports are complete and consistent).
    pub fn relocate<S: NodeStore>(
        &mut self,
        store: &mut S,
        ext: &MapExtent,
        new_addr: u64,
        on_moved: impl FnMut(u64, u64),
        on_skipped: impl FnMut(u64, u64),
    ) -> Result<u64> {
        let r = self.relocate_inner(store, ext, new_addr, on_moved, on_skipped);
        if ext.vol == self.vol {
            self.mark_range(store, ext.lba, ext.lba.saturating_add(ext.len));
        }
        r
    }

    fn relocate_inner<S: NodeStore>(
        &mut self,
        store: &mut S,
        ext: &MapExtent,
        new_addr: u64,
        mut on_moved: impl FnMut(u64, u64),
        mut on_skipped: impl FnMut(u64, u64),
    ) -> Result<u64> {
        let (lba, len, old_addr) = (ext.lba, ext.len, ext.addr);
        if ext.vol != self.vol {
            return Err(Error::Invalid("extent of another volume"));
        }
        let end = self.check_range(lba, len)?;
        if old_addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false)
            || new_addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false)
        {
            return Err(Error::Invalid("address outside the pool"));
        }
        // Runs of (moved?, first offset, length).
        let mut run: Option<(bool, u64, u64)> = None;
        let mut flush = |r: (bool, u64, u64)| {
            if r.0 {
                on_moved(old_addr + r.1, r.2);
            } else {
                on_skipped(new_addr + r.1, r.2);
            }
        };
        let mut step = |off: u64, ok: bool, n: u64, run: &mut Option<(bool, u64, u64)>| {
            *run = match *run {
                Some((m, o, k)) if m == ok && o + k == off => Some((m, o, k + n)),
                Some(r) => {
                    flush(r);
                    Some((ok, off, n))
                }
                None => Some((ok, off, n)),
            };
        };
        let h = usize::from(self.height);
        let mut err = Ok(());
        let mut moved = 0u64;
        let mut l = lba;
        while l < end {
            match self.walk(store, l) {
                Walk::Hole { end: e, .. } => {
                    let stop = e.min(end).max(l + 1);
                    step(l - lba, false, stop - l, &mut run);
                    l = stop;
                }
                Walk::Run { path, base, addr } => {
                    let stop = end.min(base.saturating_add(FANOUT as u64));
                    let node = path.get(h.wrapping_sub(2)).copied().unwrap_or(0);
                    let i = index(l, 2);
                    let here = addr.saturating_add(l - base);
                    if here != old_addr + (l - lba) {
                        step(l - lba, false, stop - l, &mut run);
                        l = stop;
                        continue;
                    }
                    let slot = store
                        .get_mut(node)
                        .and_then(|n| n.get_mut(i))
                        .ok_or(Error::Corrupt("map: bad node id"))?;
                    if l == base && stop == base.saturating_add(FANOUT as u64) {
                        *slot = run_entry(new_addr + (l - lba));
                        moved += FANOUT as u64;
                        step(l - lba, true, FANOUT as u64, &mut run);
                        l = stop;
                        continue;
                    }
                    // Part of the run moves: split it (in place), then move
                    // in the leaf (next round).
                    match Self::split(store, addr) {
                        Ok(leaf) => {
                            if let Some(slot) = store.get_mut(node).and_then(|n| n.get_mut(i)) {
                                *slot = PRESENT | u64::from(leaf);
                            }
                        }
                        Err(e) => {
                            err = Err(e);
                            step(l - lba, false, stop - l, &mut run);
                            l = stop;
                        }
                    }
                }
                Walk::Leaf(p) => {
                    let leaf = self.leaf_id(&p);
                    let node = store
                        .get_mut(leaf)
                        .ok_or(Error::Corrupt("map: bad node id"))?;
                    let mut i = index(l, 1);
                    while i < FANOUT && l < end {
                        let off = l - lba;
                        let ok = match node.get_mut(i) {
                            Some(slot) if *slot == PRESENT | (old_addr + off) => {
                                *slot = PRESENT | (new_addr + off);
                                true
                            }
                            _ => false,
                        };
                        moved += u64::from(ok);
                        step(off, ok, 1, &mut run);
                        i += 1;
                        l += 1;
                    }
                }
            }
        }
        if let Some(r) = run {
            flush(r);
        }
        // Leaves now mapping one contiguous run become run entries.
        self.tidy(store, lba, end);
        err.map(|()| moved)
    }

    /// Unmaps everything and frees all nodes no other table references
    /// (volume or snapshot deletion). Mappings of freed leaves are reported
    /// through `on_old`; shared subtrees only lose a reference. Never
    /// allocates. (Without reference counting of blocks: see
    /// [`Self::destroy_shared`].)
    pub fn destroy<S: NodeStore>(
        &mut self,
        store: &mut S,
        mut on_old: impl FnMut(u64, u64, u64),
    ) -> Result<()> {
        self.destroy_impl(store, &mut Plain(&mut on_old))
    }

    /// [`Self::destroy`] with reference counting: every block held by a
    /// freed leaf loses a reference in `refs`; `on_dead` gets the blocks no
    /// other leaf holds (exactly the space the deletion frees).
    pub fn destroy_shared<S: NodeStore>(
        &mut self,
        store: &mut S,
        refs: &mut RefMap,
        mut on_dead: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut h = Counted {
            refs,
            on_dead: &mut on_dead,
        };
        self.destroy_impl(store, &mut h)
    }

    fn destroy_impl<S: NodeStore>(
        &mut self,
        store: &mut S,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if self.cow {
            if let Some(r) = self.root.take() {
                Self::release(store, r, self.height, 0, hooks);
            }
            self.mapped = 0;
            return Ok(());
        }
        if self.size > 0 {
            self.unmap_impl(store, 0, self.size, hooks)?;
        }
        if let Some(r) = self.root.take() {
            store.free(r);
        }
        Ok(())
    }
}
