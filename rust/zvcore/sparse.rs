// SPDX-License-Identifier: GPL-2.0
//! Sparse maps kept in the block tables' node store, and the reference map
//! of shared blocks built on them.
//!
//! [`SparseMap`] is a radix tree of 4 KiB nodes (512 `u64` entries, 9 key
//! bits per level) mapping a `u64` key to a nonzero `u64` value; an absent
//! key reads as 0. Its nodes come from the same [`NodeStore`] as the block
//! tables (they are never shared, so their reference count stays 1). The
//! engine uses it for:
//! - [`RefMap`]: per pool block, the number of *extra* block-table leaves
//!   that reference it (see below);
//! - [`AddrSet`]: a set of pool addresses (a bitmap, 32768 addresses per
//!   node), used while rebuilding the reference map after recovery;
//! - transient tables of the verifier.
//!
//! ## Reference map
//!
//! With snapshots and clones, block-table nodes are shared copy-on-write
//! (see [`super::map`]): a leaf shared by several tables references its
//! blocks *once*. A block is referenced by several leaves only after a
//! shared leaf was copied (the copy and the original both hold it). The
//! reference map stores, for every pool block held by more than one leaf,
//! `leaves - 1`; blocks held by exactly one leaf are absent. So a block is
//! live exactly while some leaf holds it, and it dies (is invalidated in the
//! allocator) when a leaf drops it while its count is 0. The allocator's
//! valid counts thus count every live block exactly once.
//!
//! Invariant used everywhere: every leaf holding a block maps it at the same
//! volume lba (sharing starts with [`super::map::BlockTable::clone_root`],
//! which keeps positions, and copies keep positions too).

use super::error::{Error, Result};
use super::map::{NodeId, NodeStore, FANOUT, FANOUT_BITS, ID_MASK, PRESENT};

/// Most levels of a sparse map (9 * 7 = 63 key bits).
const MAX_LEVELS: u8 = 7;

/// Keys covered by one entry of a node at `level` (1 = leaf: one key).
const fn span(level: u8) -> u64 {
    match 1u64.checked_shl(FANOUT_BITS * (level as u32).saturating_sub(1)) {
        Some(s) => s,
        None => u64::MAX,
    }
}

/// Index of `key` in its node at `level`.
const fn index(key: u64, level: u8) -> usize {
    let shifted = match key.checked_shr(FANOUT_BITS * (level as u32).saturating_sub(1)) {
        Some(v) => v,
        None => 0,
    };
    (shifted & (FANOUT as u64 - 1)) as usize
}

/// First key of the leaf after the one holding `key` (saturating).
const fn next_leaf(key: u64) -> u64 {
    let s = FANOUT as u64;
    (key / s).saturating_add(1).saturating_mul(s)
}

fn child(e: u64) -> Option<NodeId> {
    (e & PRESENT != 0).then_some((e & ID_MASK) as NodeId)
}

/// A radix map `u64 -> nonzero u64` in a [`NodeStore`]. Small and `Copy`
/// (the nodes live in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseMap {
    root: Option<NodeId>,
    height: u8,
    len: u64,
}

impl SparseMap {
    /// An empty map for keys `< limit` (no node allocated).
    pub fn for_keys(limit: u64) -> SparseMap {
        let mut h = 1u8;
        while h < MAX_LEVELS && span(h + 1) < limit {
            h += 1;
        }
        SparseMap {
            root: None,
            height: h,
            len: 0,
        }
    }

    /// Number of keys with a nonzero value.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Keys must be below this.
    pub fn key_limit(&self) -> u64 {
        span(self.height.saturating_add(1))
    }

    /// The leaf holding `key`, if it exists.
    fn leaf<S: NodeStore>(&self, store: &S, key: u64) -> Option<NodeId> {
        if key >= self.key_limit() {
            return None;
        }
        let mut id = self.root?;
        let mut level = self.height;
        while level > 1 {
            let e = *store.get(id)?.get(index(key, level))?;
            id = child(e)?;
            level -= 1;
        }
        Some(id)
    }

    /// The value of `key` (0 if absent).
    pub fn get<S: NodeStore>(&self, store: &S, key: u64) -> u64 {
        self.leaf(store, key)
            .and_then(|l| store.get(l)?.get(index(key, 1)).copied())
            .unwrap_or(0)
    }

    /// Makes sure the leaf holding `key` exists. On [`Error::NoSpace`] the
    /// nodes allocated on the way are freed again.
    fn ensure_leaf<S: NodeStore>(&mut self, store: &mut S, key: u64) -> Result<NodeId> {
        if key >= self.key_limit() {
            return Err(Error::Invalid("sparse map: key"));
        }
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
            let i = index(key, level);
            let e = store
                .get(id)
                .and_then(|n| n.get(i).copied())
                .ok_or(Error::Corrupt("sparse map: bad node id"))?;
            id = match child(e) {
                Some(c) => c,
                None => {
                    let Some(c) = store.alloc() else {
                        self.prune(store, key);
                        return Err(Error::NoSpace);
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

    /// Frees the empty nodes on the path to `key` (bottom up).
    fn prune<S: NodeStore>(&mut self, store: &mut S, key: u64) {
        let mut path = [0 as NodeId; MAX_LEVELS as usize];
        let Some(mut id) = self.root else { return };
        let mut depth = 0usize;
        let mut level = self.height;
        loop {
            if let Some(p) = path.get_mut(depth) {
                *p = id;
            }
            depth += 1;
            if level <= 1 {
                break;
            }
            let e = store
                .get(id)
                .and_then(|n| n.get(index(key, level)).copied())
                .unwrap_or(0);
            match child(e) {
                Some(c) => id = c,
                None => break,
            }
            level -= 1;
        }
        // path[..depth] from the root; path[d] is at level height - d.
        while depth > 0 {
            depth -= 1;
            let id = path.get(depth).copied().unwrap_or(0);
            let empty = store
                .get(id)
                .map(|n| n.iter().all(|&e| e == 0))
                .unwrap_or(false);
            if !empty {
                return;
            }
            store.free(id);
            if depth == 0 {
                self.root = None;
                return;
            }
            let parent = path.get(depth - 1).copied().unwrap_or(0);
            let plevel = self.height.saturating_sub((depth as u8).saturating_sub(1));
            if let Some(slot) = store
                .get_mut(parent)
                .and_then(|n| n.get_mut(index(key, plevel)))
            {
                *slot = 0;
            }
        }
    }

    /// Sets `key` to `val` (0 removes it); returns the old value.
    pub fn set<S: NodeStore>(&mut self, store: &mut S, key: u64, val: u64) -> Result<u64> {
        if val == 0 {
            let Some(leaf) = self.leaf(store, key) else {
                return Ok(0);
            };
            let old = match store.get_mut(leaf).and_then(|n| n.get_mut(index(key, 1))) {
                Some(slot) => core::mem::replace(slot, 0),
                None => return Err(Error::Corrupt("sparse map: bad node id")),
            };
            if old != 0 {
                self.len = self.len.saturating_sub(1);
                self.prune(store, key);
            }
            return Ok(old);
        }
        let leaf = self.ensure_leaf(store, key)?;
        let slot = store
            .get_mut(leaf)
            .and_then(|n| n.get_mut(index(key, 1)))
            .ok_or(Error::Corrupt("sparse map: bad node id"))?;
        let old = core::mem::replace(slot, val);
        if old == 0 {
            self.len = self.len.saturating_add(1);
        }
        Ok(old)
    }

    /// The first key `>= from` with a value, and the value.
    pub fn next<S: NodeStore>(&self, store: &S, from: u64) -> Option<(u64, u64)> {
        let root = self.root?;
        let limit = self.key_limit();
        let mut k = from;
        'outer: while k < limit {
            let mut id = root;
            let mut level = self.height;
            while level > 1 {
                let node = store.get(id)?;
                let i = index(k, level);
                let j = (i..FANOUT).find(|&j| node.get(j).map(|e| e & PRESENT != 0) == Some(true));
                let cover = span(level.saturating_add(1));
                let base = (k / cover).checked_mul(cover)?;
                let Some(j) = j else {
                    k = base.checked_add(cover)?;
                    continue 'outer;
                };
                if j != i {
                    k = base.checked_add((j as u64).checked_mul(span(level))?)?;
                }
                id = child(*node.get(j)?)?;
                level -= 1;
            }
            let node = store.get(id)?;
            let base = (k / FANOUT as u64).checked_mul(FANOUT as u64)?;
            for j in index(k, 1)..FANOUT {
                let v = node.get(j).copied().unwrap_or(0);
                if v != 0 {
                    return Some((base.checked_add(j as u64)?, v));
                }
            }
            k = next_leaf(k);
            if k == u64::MAX {
                break;
            }
        }
        None
    }

    /// Frees every node (the map becomes empty).
    pub fn destroy<S: NodeStore>(&mut self, store: &mut S) {
        if let Some(r) = self.root.take() {
            Self::free_subtree(store, r, self.height);
        }
        self.len = 0;
    }

    fn free_subtree<S: NodeStore>(store: &mut S, id: NodeId, level: u8) {
        if level > 1 {
            for i in 0..FANOUT {
                let e = store.get(id).and_then(|n| n.get(i).copied()).unwrap_or(0);
                if let Some(c) = child(e) {
                    Self::free_subtree(store, c, level - 1);
                }
            }
        }
        store.free(id);
    }

    /// Verifies the structure (node ids resolve, interior entries well
    /// formed, no empty node, the entry count) and returns the number of
    /// nodes.
    pub fn check<S: NodeStore>(&self, store: &S) -> Result<u64> {
        let mut st = (0u64, 0u64);
        if let Some(r) = self.root {
            Self::check_node(store, r, self.height, &mut st)?;
        }
        if st.1 != self.len {
            return Err(Error::Corrupt("sparse map: entry count"));
        }
        Ok(st.0)
    }

    fn check_node<S: NodeStore>(
        store: &S,
        id: NodeId,
        level: u8,
        st: &mut (u64, u64),
    ) -> Result<()> {
        let node = store
            .get(id)
            .ok_or(Error::Corrupt("sparse map: bad node id"))?;
        st.0 = st.0.saturating_add(1);
        let mut any = false;
        for &e in node.iter() {
            if e == 0 {
                continue;
            }
            any = true;
            if level > 1 {
                if e & !(PRESENT | ID_MASK) != 0 || e & PRESENT == 0 {
                    return Err(Error::Corrupt("sparse map: reserved entry bits"));
                }
                Self::check_node(store, (e & ID_MASK) as NodeId, level - 1, st)?;
            } else {
                st.1 = st.1.saturating_add(1);
            }
        }
        if !any {
            return Err(Error::Corrupt("sparse map: empty node"));
        }
        Ok(())
    }
}

/// Extra leaf references of shared pool blocks (see the module
/// documentation). May be *off* (during recovery, where it is rebuilt at
/// the end): then every dropped reference is reported as the last one and
/// nothing is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefMap {
    map: SparseMap,
    off: bool,
}

impl RefMap {
    /// An empty map for a pool of `total_blocks` blocks.
    pub fn new(total_blocks: u64) -> RefMap {
        RefMap {
            map: SparseMap::for_keys(total_blocks.max(1)),
            off: false,
        }
    }

    /// A map that counts nothing (replay).
    pub fn disabled() -> RefMap {
        RefMap {
            map: SparseMap::for_keys(1),
            off: true,
        }
    }

    /// Whether the map counts nothing.
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// The underlying sparse map (pool address -> extra references).
    pub fn map(&self) -> &SparseMap {
        &self.map
    }

    /// Blocks held by more than one leaf.
    pub fn shared_blocks(&self) -> u64 {
        self.map.len()
    }

    /// Extra references of `addr` (0: held by at most one leaf).
    pub fn extra<S: NodeStore>(&self, store: &S, addr: u64) -> u64 {
        if self.off {
            return 0;
        }
        self.map.get(store, addr)
    }

    /// Number of blocks of `[addr, addr+len)` with extra references.
    pub fn shared_in<S: NodeStore>(&self, store: &S, addr: u64, len: u64) -> u64 {
        if self.off || self.map.is_empty() {
            return 0;
        }
        let end = addr.saturating_add(len).min(self.map.key_limit());
        let mut n = 0u64;
        let mut k = addr;
        while k < end {
            let stop = next_leaf(k).min(end);
            if let Some(node) = self.map.leaf(store, k).and_then(|l| store.get(l)) {
                for x in k..stop {
                    if node.get(index(x, 1)).map(|&v| v != 0) == Some(true) {
                        n = n.saturating_add(1);
                    }
                }
            }
            k = stop;
        }
        n
    }

    fn range(&self, addr: u64, len: u64) -> Result<u64> {
        match addr.checked_add(len) {
            Some(e) if e <= self.map.key_limit() => Ok(e),
            _ => Err(Error::Invalid("refs: address outside the pool")),
        }
    }

    /// Every block of `[addr, addr+len)` gained a leaf reference (a leaf
    /// holding them was copied). All or nothing: on [`Error::NoSpace`]
    /// nothing changed.
    pub fn acquire<S: NodeStore>(&mut self, store: &mut S, addr: u64, len: u64) -> Result<()> {
        if self.off || len == 0 {
            return Ok(());
        }
        let end = self.range(addr, len)?;
        let mut k = addr;
        while k < end {
            if let Err(e) = self.map.ensure_leaf(store, k) {
                self.prune_range(store, addr, k);
                return Err(e);
            }
            k = next_leaf(k);
        }
        let mut k = addr;
        while k < end {
            let stop = next_leaf(k).min(end);
            let leaf = self
                .map
                .leaf(store, k)
                .ok_or(Error::Corrupt("refs: missing leaf"))?;
            let node = store
                .get_mut(leaf)
                .ok_or(Error::Corrupt("refs: bad node id"))?;
            for x in k..stop {
                if let Some(v) = node.get_mut(index(x, 1)) {
                    if *v == 0 {
                        self.map.len = self.map.len.saturating_add(1);
                    }
                    *v = v.saturating_add(1);
                }
            }
            k = stop;
        }
        Ok(())
    }

    /// Frees the empty leaves (and interior nodes) holding `[addr, end)`.
    fn prune_range<S: NodeStore>(&mut self, store: &mut S, addr: u64, end: u64) {
        let mut k = addr;
        while k < end {
            self.map.prune(store, k);
            k = next_leaf(k);
        }
    }

    /// Every block of `[addr, addr+len)` lost a leaf reference. Blocks that
    /// had no extra reference are dead: reported as runs `on_dead(addr,
    /// len)`. Never allocates.
    pub fn release<S: NodeStore>(
        &mut self,
        store: &mut S,
        addr: u64,
        len: u64,
        on_dead: &mut dyn FnMut(u64, u64),
    ) {
        if len == 0 {
            return;
        }
        if self.off || self.map.is_empty() {
            on_dead(addr, len);
            return;
        }
        let end = addr.saturating_add(len);
        let mut run: Option<(u64, u64)> = None;
        let mut dead = |x: u64, run: &mut Option<(u64, u64)>| {
            *run = match *run {
                Some((a, n)) if a.saturating_add(n) == x => Some((a, n.saturating_add(1))),
                Some((a, n)) => {
                    on_dead(a, n);
                    Some((x, 1))
                }
                None => Some((x, 1)),
            };
        };
        let mut k = addr;
        while k < end {
            let stop = next_leaf(k).min(end);
            match self.map.leaf(store, k) {
                None => {
                    for x in k..stop {
                        dead(x, &mut run);
                    }
                }
                Some(leaf) => {
                    let mut emptied = false;
                    for x in k..stop {
                        let slot = store.get_mut(leaf).and_then(|n| n.get_mut(index(x, 1)));
                        match slot {
                            Some(v) if *v > 0 => {
                                *v -= 1;
                                if *v == 0 {
                                    self.map.len = self.map.len.saturating_sub(1);
                                    emptied = true;
                                }
                            }
                            _ => dead(x, &mut run),
                        }
                    }
                    if emptied {
                        self.map.prune(store, k);
                    }
                }
            }
            k = stop;
        }
        if let Some((a, n)) = run {
            on_dead(a, n);
        }
    }

    /// Undoes [`Self::acquire`] of `[addr, addr+len)` (nothing dies).
    pub fn unacquire<S: NodeStore>(&mut self, store: &mut S, addr: u64, len: u64) {
        self.release(store, addr, len, &mut |_, _| {});
    }

    /// GC moved the blocks `[from, from+len)` (with every leaf holding
    /// them) to `[to, to+len)`: their extra references move along. All or
    /// nothing for `len <= 64`; on [`Error::NoSpace`] nothing changed.
    pub fn move_refs<S: NodeStore>(
        &mut self,
        store: &mut S,
        from: u64,
        to: u64,
        len: u64,
    ) -> Result<()> {
        if self.off || self.map.is_empty() || len == 0 {
            return Ok(());
        }
        self.range(from, len)?;
        self.range(to, len)?;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(64);
            let (f, t) = (from.saturating_add(done), to.saturating_add(done));
            let mut c = [0u64; 64];
            let mut any = false;
            for (i, slot) in c.iter_mut().enumerate().take(n as usize) {
                *slot = self.map.get(store, f.saturating_add(i as u64));
                any |= *slot != 0;
            }
            if any {
                // Destination first (may allocate), then the source.
                for (i, &v) in c.iter().enumerate().take(n as usize) {
                    if v == 0 {
                        continue;
                    }
                    let key = t.saturating_add(i as u64);
                    if let Err(e) = self.map.ensure_leaf(store, key) {
                        for (j, &w) in c.iter().enumerate().take(i) {
                            if w != 0 {
                                self.map.prune(store, t.saturating_add(j as u64));
                            }
                        }
                        return Err(e);
                    }
                }
                for (i, &v) in c.iter().enumerate().take(n as usize) {
                    if v == 0 {
                        continue;
                    }
                    let old = self.map.get(store, t.saturating_add(i as u64));
                    self.map
                        .set(store, t.saturating_add(i as u64), old.saturating_add(v))?;
                    self.map.set(store, f.saturating_add(i as u64), 0)?;
                }
            }
            done = done.saturating_add(n);
        }
        Ok(())
    }

    /// Sets the extra references of `addr` (rebuilding the map).
    pub fn set<S: NodeStore>(&mut self, store: &mut S, addr: u64, extra: u64) -> Result<u64> {
        if self.off {
            return Ok(0);
        }
        self.range(addr, 1)?;
        self.map.set(store, addr, extra)
    }

    /// The first block `>= from` with extra references, and their number.
    pub fn next<S: NodeStore>(&self, store: &S, from: u64) -> Option<(u64, u64)> {
        if self.off {
            return None;
        }
        self.map.next(store, from)
    }

    /// Frees every node.
    pub fn destroy<S: NodeStore>(&mut self, store: &mut S) {
        self.map.destroy(store);
    }

    /// Structure check; returns the number of nodes.
    pub fn check<S: NodeStore>(&self, store: &S) -> Result<u64> {
        self.map.check(store)
    }
}

/// A set of pool addresses (a bitmap in a [`SparseMap`]: 64 addresses per
/// value, 32768 per node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrSet {
    map: SparseMap,
}

impl AddrSet {
    /// An empty set for addresses `< limit`.
    pub fn new(limit: u64) -> AddrSet {
        AddrSet {
            map: SparseMap::for_keys(limit.div_ceil(64).max(1)),
        }
    }

    /// Whether `addr` is in the set.
    pub fn contains<S: NodeStore>(&self, store: &S, addr: u64) -> bool {
        self.map.get(store, addr / 64) & (1u64 << (addr % 64)) != 0
    }

    /// Adds `addr`; returns whether it was new.
    pub fn insert<S: NodeStore>(&mut self, store: &mut S, addr: u64) -> Result<bool> {
        let w = self.map.get(store, addr / 64);
        let bit = 1u64 << (addr % 64);
        if w & bit != 0 {
            return Ok(false);
        }
        self.map.set(store, addr / 64, w | bit)?;
        Ok(true)
    }

    /// Adds `[addr, addr+len)`: calls `f(store, a, n, new)` for its runs of
    /// addresses that were not in the set before (`new`) and of those that
    /// were, in address order (consecutive runs of one kind merged), one
    /// word of 64 addresses at a time. Stops at the first error (of `f` or
    /// of the set: the addresses before it are added).
    pub fn insert_range<S: NodeStore>(
        &mut self,
        store: &mut S,
        addr: u64,
        len: u64,
        f: &mut dyn FnMut(&mut S, u64, u64, bool) -> Result<()>,
    ) -> Result<()> {
        let end = addr
            .checked_add(len)
            .ok_or(Error::Invalid("address range"))?;
        // The run not yet passed to `f`: (start, blocks, new).
        let mut pending: Option<(u64, u64, bool)> = None;
        let mut a = addr;
        while a < end {
            let word = a / 64;
            let lo = a % 64;
            let hi = (end - word * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let w = self.map.get(store, word);
            if mask & !w != 0 {
                self.map.set(store, word, w | mask)?;
            }
            // Runs of equal bits of `w` within `[lo, hi)`.
            let mut b = lo;
            while b < hi {
                let old = w & (1u64 << b) != 0;
                let same = if old { w >> b } else { !w >> b };
                let n = u64::from(same.trailing_ones()).min(hi - b);
                let start = word * 64 + b;
                pending = match pending {
                    Some((ps, pn, pk)) if pk != old && ps + pn == start => Some((ps, pn + n, pk)),
                    Some((ps, pn, pk)) => {
                        f(store, ps, pn, pk)?;
                        Some((start, n, !old))
                    }
                    None => Some((start, n, !old)),
                };
                b += n;
            }
            a = word * 64 + hi;
        }
        if let Some((ps, pn, pk)) = pending {
            f(store, ps, pn, pk)?;
        }
        Ok(())
    }

    /// Frees every node.
    pub fn destroy<S: NodeStore>(&mut self, store: &mut S) {
        self.map.destroy(store);
    }
}

#[cfg(test)]
mod tests {
    use super::super::map::tests::{Rng, VecStore};
    use super::*;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    /// `insert_range` reports exactly the addresses that were new and those
    /// that were not, in order, as maximal runs of each kind, and leaves
    /// the set holding the range.
    #[test]
    fn addr_set_insert_range_against_model() {
        let mut rng = Rng(0x05e7_0fad_d2e5);
        let mut s = VecStore::new(usize::MAX);
        let limit = 1u64 << 20;
        let mut set = AddrSet::new(limit);
        let mut model = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let len = match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(64),
                _ => 1 + rng.below(700),
            };
            let a = rng.below(8192 - len);
            let mut runs = Vec::new();
            set.insert_range(&mut s, a, len, &mut |_, x, n, new| {
                runs.push((x, n, new));
                Ok(())
            })
            .unwrap();
            // What the model says, as maximal runs.
            let mut want: Vec<(u64, u64, bool)> = Vec::new();
            for x in a..a + len {
                let new = model.insert(x);
                match want.last_mut() {
                    Some((ws, wn, wk)) if *wk == new && *ws + *wn == x => *wn += 1,
                    _ => want.push((x, 1, new)),
                }
            }
            assert_eq!(runs, want, "range {a}+{len}");
            for x in [a, a + len - 1, a + len / 2] {
                assert!(set.contains(&s, x));
            }
        }
        for x in 0..8192 {
            assert_eq!(set.contains(&s, x), model.contains(&x), "{x}");
        }
        set.destroy(&mut s);
    }

    #[test]
    fn sparse_map_against_model() {
        for (limit, seed) in [(1000u64, 1u64), (1 << 20, 2), (1 << 48, 3), (u64::MAX, 4)] {
            let mut s = VecStore::new(usize::MAX);
            let mut m = SparseMap::for_keys(limit);
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let klim = m.key_limit().min(limit);
            for _ in 0..3000 {
                let base = rng.below(klim);
                let k = (base + rng.below(40)).min(klim - 1);
                let v = if rng.below(3) == 0 {
                    0
                } else {
                    1 + rng.below(9)
                };
                let old = m.set(&mut s, k, v).unwrap();
                assert_eq!(old, model.get(&k).copied().unwrap_or(0));
                if v == 0 {
                    model.remove(&k);
                } else {
                    model.insert(k, v);
                }
                assert_eq!(m.get(&s, k), v);
            }
            assert_eq!(m.len(), model.len() as u64);
            m.check(&s).unwrap();
            let mut got = Vec::new();
            let mut k = 0u64;
            while let Some((key, v)) = m.next(&s, k) {
                got.push((key, v));
                match key.checked_add(1) {
                    Some(n) => k = n,
                    None => break,
                }
            }
            assert_eq!(got, model.iter().map(|(a, b)| (*a, *b)).collect::<Vec<_>>());
            for (k, _) in model.clone() {
                m.set(&mut s, k, 0).unwrap();
            }
            assert!(m.is_empty());
            assert_eq!(s.live, 0);
            assert!(m.set(&mut s, m.key_limit(), 1).is_err() || m.key_limit() == u64::MAX);
        }
    }

    #[test]
    fn refmap_acquire_release_move() {
        let mut s = VecStore::new(usize::MAX);
        let mut r = RefMap::new(1 << 20);
        r.acquire(&mut s, 1000, 600).unwrap();
        r.acquire(&mut s, 1200, 10).unwrap();
        assert_eq!(r.extra(&s, 999), 0);
        assert_eq!(r.extra(&s, 1000), 1);
        assert_eq!(r.extra(&s, 1205), 2);
        assert_eq!(r.shared_in(&s, 990, 30), 20);
        let mut dead = Vec::new();
        r.release(&mut s, 995, 20, &mut |a, n| dead.push((a, n)));
        assert_eq!(dead, vec![(995, 5)]);
        assert_eq!(r.extra(&s, 1000), 0);
        assert_eq!(r.check(&s).unwrap() as usize, s.live);
        // Moving counts.
        r.move_refs(&mut s, 1200, 50_000, 12).unwrap();
        assert_eq!(r.extra(&s, 1205), 0);
        assert_eq!(r.extra(&s, 50_005), 2);
        assert_eq!(r.extra(&s, 50_011), 1);
        assert_eq!(r.check(&s).unwrap() as usize, s.live);
        // Out of nodes: nothing changes.
        let mut tight = VecStore::new(s.live);
        tight.live = s.live;
        std::mem::swap(&mut tight.nodes, &mut s.nodes);
        std::mem::swap(&mut tight.free_ids, &mut s.free_ids);
        std::mem::swap(&mut tight.refs, &mut s.refs);
        let before = r;
        assert_eq!(r.acquire(&mut tight, 900_000, 2000), Err(Error::NoSpace));
        assert_eq!(r, before);
        assert_eq!(tight.live, before.check(&tight).unwrap() as usize);
        assert_eq!(
            r.move_refs(&mut tight, 50_000, 800_000, 12),
            Err(Error::NoSpace)
        );
        assert_eq!(r, before);
        std::mem::swap(&mut tight.nodes, &mut s.nodes);
        std::mem::swap(&mut tight.free_ids, &mut s.free_ids);
        std::mem::swap(&mut tight.refs, &mut s.refs);
        s.live = tight.live;
        assert_eq!(r.check(&s).unwrap() as usize, s.live);
        // Release everything: each block dies once its count is gone.
        let mut extra = 0u64;
        let mut k = 0;
        while let Some((a, v)) = r.next(&s, k) {
            extra += v;
            k = a + 1;
        }
        assert!(extra > 500);
        let mut dead = 0u64;
        for _ in 0..3 {
            r.release(&mut s, 0, 1 << 20, &mut |_, n| dead += n);
        }
        assert_eq!(dead, (3 << 20) - extra);
        assert!(r.map().is_empty());
        assert_eq!(s.live, 0);
        let lim = r.map().key_limit();
        assert!(r.acquire(&mut s, lim - 1, 2).is_err());
        // Disabled: everything dies, nothing counted.
        let mut d = RefMap::disabled();
        d.acquire(&mut s, 5, 5).unwrap();
        let mut dead = Vec::new();
        d.release(&mut s, 5, 5, &mut |a, n| dead.push((a, n)));
        assert_eq!(dead, vec![(5, 5)]);
        assert_eq!(s.live, 0);
    }

    #[test]
    fn addr_set() {
        let mut s = VecStore::new(usize::MAX);
        let mut a = AddrSet::new(1 << 30);
        assert!(a.insert(&mut s, 12345).unwrap());
        assert!(!a.insert(&mut s, 12345).unwrap());
        assert!(a.contains(&s, 12345));
        assert!(!a.contains(&s, 12346));
        a.destroy(&mut s);
        assert_eq!(s.live, 0);
    }
}
