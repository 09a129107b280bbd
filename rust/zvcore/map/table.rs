// SPDX-License-Identifier: GPL-2.0
//! Changes to a block table: mapping, unmapping, resizing, GC relocation
//! and destruction, each plain or with reference counting (`*_shared`).

use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::super::sparse::RefMap;
use super::{
    add_ref, child, height_for, index, span, BlockTable, Counted, Hooks, MapExtent, NodeId,
    NodeStore, Plain, Run, Walk, ADDR_MASK, FANOUT, MAX_HEIGHT, MAX_VOLUME_BLOCKS, PRESENT,
};

impl BlockTable {
    pub(super) fn check_range(&self, lba: u64, len: u64) -> Result<u64> {
        let end = lba.checked_add(len).ok_or(Error::Invalid("range"))?;
        if len == 0 || end > self.size {
            return Err(Error::Invalid("range outside volume"));
        }
        Ok(end)
    }

    /// Makes sure the leaf holding `lba` exists (allocating nodes on the way).
    fn ensure_leaf<S: NodeStore>(&mut self, store: &mut S, lba: u64) -> Result<()> {
        let mut id = match self.root {
            Some(r) => r,
            None => {
                let r = store.alloc().ok_or(Error::NoSpace)?;
                self.root = Some(r);
                r
            }
        };
        let mut level = self.height;
        while level > 1 {
            let i = index(lba, level);
            let e = store
                .get(id)
                .and_then(|n| n.get(i).copied())
                .ok_or(Error::Corrupt("map: bad node id"))?;
            id = match child(e) {
                Some(c) => c,
                None => {
                    let c = store.alloc().ok_or(Error::NoSpace)?;
                    if let Some(slot) = store.get_mut(id).and_then(|n| n.get_mut(i)) {
                        *slot = PRESENT | u64::from(c);
                    }
                    c
                }
            };
            level -= 1;
        }
        Ok(())
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
        let end = self.check_range(lba, len)?;
        if addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false) {
            return Err(Error::Invalid("address outside the pool"));
        }
        // Pass 1: every leaf exists and is exclusive to this table.
        let mut l = lba;
        while l < end {
            let r = match self.unshare(store, l, hooks) {
                Ok(()) => self.ensure_leaf(store, l),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                self.prune(store, lba, l.saturating_add(1).min(end));
                return Err(e);
            }
            l = (l / span(2)).saturating_add(1).saturating_mul(span(2));
        }
        // Pass 2: write the entries (no node borrow is held while the hooks
        // run: they may use the store).
        let mut run = Run(None);
        let mut l = lba;
        while l < end {
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
        Ok(())
    }

    /// Unmaps `[lba, lba+len)` (trim / discard / write zeroes), reporting the
    /// old mappings like [`Self::map_range`], and frees nodes left empty.
    /// Never allocates. [`Error::Invalid`] on a shared table (use
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
        let end = self.check_range(lba, len)?;
        let mut run = Run(None);
        let mut l = lba;
        while l < end {
            match self.walk(store, l) {
                Walk::Hole { end, .. } => l = end.max(l.saturating_add(1)),
                Walk::Leaf(p) => {
                    let mut leaf = self.leaf_id(&p);
                    if self.cow
                        && p.iter()
                            .take(usize::from(self.height))
                            .any(|&id| store.refs(id) > 1)
                    {
                        let stop = end.min((l / span(2)).saturating_add(1).saturating_mul(span(2)));
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
                        if let Err(e) = self.unshare(store, l, hooks) {
                            if let Some((rl, ra, rn)) = run.0.take() {
                                hooks.dropped(store, rl, ra, rn);
                            }
                            self.prune(store, lba, l.max(lba.saturating_add(1)));
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
        self.prune(store, lba, end);
        Ok(())
    }

    /// Frees empty nodes whose range intersects `[lba, end)`.
    fn prune<S: NodeStore>(&mut self, store: &mut S, lba: u64, end: u64) {
        let mut l = lba;
        while l < end {
            let (p, found, next) = match self.walk(store, l) {
                Walk::Leaf(p) => (
                    p,
                    usize::from(self.height),
                    (l / span(2)).saturating_add(1).saturating_mul(span(2)),
                ),
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

    /// Changes the volume size. Shrinking unmaps everything beyond the new
    /// end (reported through `on_old`) and lowers the tree; growing may add
    /// levels above the root ([`Error::NoSpace`] leaves the table unchanged).
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
    /// ext.len)` still mapped to `ext.addr + i`, maps it to `new_addr + i`. Blocks changed meanwhile
    /// (overwritten or trimmed by the user while GC copied them) are left
    /// alone. Reports runs: `on_moved(old_addr, n)` (caller invalidates the
    /// old copies) and `on_skipped(new_addr, n)` (caller invalidates the
    /// unused new copies). Never allocates nodes. Returns the blocks moved.
    pub fn relocate<S: NodeStore>(
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
        let mut moved = 0u64;
        let mut l = lba;
        while l < end {
            let mut step = |off: u64, ok: bool, run: &mut Option<(bool, u64, u64)>| {
                *run = match *run {
                    Some((m, o, n)) if m == ok && o + n == off => Some((m, o, n + 1)),
                    Some(r) => {
                        flush(r);
                        Some((ok, off, 1))
                    }
                    None => Some((ok, off, 1)),
                };
            };
            match self.walk(store, l) {
                Walk::Hole { end: h, .. } => {
                    let stop = h.min(end).max(l + 1);
                    while l < stop {
                        step(l - lba, false, &mut run);
                        l += 1;
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
                        step(off, ok, &mut run);
                        i += 1;
                        l += 1;
                    }
                }
            }
        }
        if let Some(r) = run {
            flush(r);
        }
        Ok(moved)
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
