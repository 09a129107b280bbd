// SPDX-License-Identifier: GPL-2.0
//! Per-volume block tables: volume block (lba) -> pool address.
//!
//! A table is a fixed-height radix tree of 4 KiB nodes of 512 `u64` entries
//! (9 address bits per level, like a page table or Parallax's block maps).
//! The height is the smallest that covers the volume size: 1 level maps
//! 2 MiB, 2 levels 1 GiB, 3 levels 512 GiB, 4 levels 256 TiB. Nodes come
//! from a caller-provided [`NodeStore`] (kernel pages in the module, a `Vec`
//! in tests), shared by all tables of a pool.
//!
//! Entry format (both levels): bit 63 [`PRESENT`]; bit 62 [`SHARED`]
//! (reserved for copy-on-write snapshots, always 0 today); bits 48..62
//! reserved (0); interior entries hold the child [`NodeId`] in bits 0..32,
//! leaf entries the pool address in bits 0..48. An all-zero entry is
//! unmapped / no child, so a freshly zeroed node is empty.
//!
//! Memory: a fully mapped leaf describes 512 blocks in 4 KiB, i.e. 8 bytes per
//! mapped 4 KiB block plus 1/512 of that per level above. Worst case (one
//! mapped block per leaf) a block costs a whole 4 KiB leaf; see
//! `Documentation/design-space.md` for the extent-leaf idea that bounds it.

use super::codec::{Reader, Writer};
use super::error::{Error, Result};
use super::geom::MAX_POOL_BLOCKS;
use super::sparse::RefMap;

/// Entries per node.
pub const FANOUT: usize = 512;
/// Address bits resolved per level.
pub const FANOUT_BITS: u32 = 9;
/// Most levels of a table.
pub const MAX_HEIGHT: u8 = 6;
/// Largest volume (blocks): `512^6 = 2^54` (64 EiB).
pub const MAX_VOLUME_BLOCKS: u64 = 1 << (FANOUT_BITS * MAX_HEIGHT as u32);

/// Entry bit: the entry maps a block / points to a child node.
pub const PRESENT: u64 = 1 << 63;
/// Entry bit reserved for copy-on-write sharing (see the design document).
pub const SHARED: u64 = 1 << 62;
/// Address bits of a leaf entry.
pub const ADDR_MASK: u64 = MAX_POOL_BLOCKS - 1;
/// Node-id bits of an interior entry.
pub const ID_MASK: u64 = u32::MAX as u64;

/// One 4 KiB node.
pub type Node = [u64; FANOUT];
/// Identifier of a node in a [`NodeStore`].
pub type NodeId = u32;

/// Where table nodes live (shared by all tables of a pool).
pub trait NodeStore {
    /// A new node, all entries zero; `None` when out of memory.
    fn alloc(&mut self) -> Option<NodeId>;
    /// Returns a node (it is never referenced again).
    fn free(&mut self, id: NodeId);
    /// The node `id`.
    fn get(&self, id: NodeId) -> Option<&Node>;
    /// The node `id`, mutable.
    fn get_mut(&mut self, id: NodeId) -> Option<&mut Node>;
    /// Number of tables / parent entries referencing node `id` (snapshots
    /// and clones share nodes). Stores without sharing support keep the
    /// default: always 1.
    fn refs(&self, _id: NodeId) -> u32 {
        1
    }
    /// Sets the reference count of node `id` (a freshly allocated node has
    /// 1). The default, for stores without sharing support, refuses.
    fn set_refs(&mut self, _id: NodeId, _refs: u32) -> Result<()> {
        Err(Error::Unsupported("node sharing"))
    }
}

/// Largest reference count of a node (bit 31 of the count is used as a
/// mark by [`visit_distinct`]).
pub const MAX_REFS: u32 = (1 << 31) - 1;
/// Mark bit set in a node's reference count while [`visit_distinct`] runs.
const MARK: u32 = 1 << 31;

/// What happens to block references when a table drops leaf entries or
/// copies a shared leaf.
trait Hooks<S> {
    /// Leaf entries for `[lba, lba+n)`, mapping `[addr, addr+n)`, were
    /// dropped (overwritten, unmapped, or their leaf was freed).
    fn dropped(&mut self, store: &mut S, lba: u64, addr: u64, n: u64);
    /// A copied leaf now also holds `[addr, addr+n)`. All or nothing.
    fn copied(&mut self, store: &mut S, addr: u64, n: u64) -> Result<()>;
    /// Undoes [`Hooks::copied`].
    fn uncopied(&mut self, store: &mut S, addr: u64, n: u64);
}

/// Hooks of the plain (unshared) operations: every dropped mapping is
/// reported to the callback; copies are impossible.
struct Plain<'f>(&'f mut dyn FnMut(u64, u64, u64));

impl<S> Hooks<S> for Plain<'_> {
    fn dropped(&mut self, _store: &mut S, lba: u64, addr: u64, n: u64) {
        (self.0)(lba, addr, n)
    }
    fn copied(&mut self, _store: &mut S, _addr: u64, _n: u64) -> Result<()> {
        Err(Error::Unsupported("node sharing"))
    }
    fn uncopied(&mut self, _store: &mut S, _addr: u64, _n: u64) {}
}

/// Hooks of the shared operations: block references are counted in a
/// [`RefMap`]; blocks losing their last reference go to `on_dead`.
struct Counted<'r, 'f> {
    refs: &'r mut RefMap,
    on_dead: &'f mut dyn FnMut(u64, u64),
}

impl<S: NodeStore> Hooks<S> for Counted<'_, '_> {
    fn dropped(&mut self, store: &mut S, _lba: u64, addr: u64, n: u64) {
        self.refs.release(store, addr, n, self.on_dead)
    }
    fn copied(&mut self, store: &mut S, addr: u64, n: u64) -> Result<()> {
        self.refs.acquire(store, addr, n)
    }
    fn uncopied(&mut self, store: &mut S, addr: u64, n: u64) {
        self.refs.unacquire(store, addr, n)
    }
}

/// Accumulates `(lba, addr)` pairs into runs of consecutive lbas and
/// addresses.
struct Run(Option<(u64, u64, u64)>);

impl Run {
    /// Adds one block; returns the run it ended, if any.
    fn push(&mut self, l: u64, a: u64) -> Option<(u64, u64, u64)> {
        match self.0 {
            Some((rl, ra, rn)) if rl.checked_add(rn) == Some(l) && ra.wrapping_add(rn) == a => {
                self.0 = Some((rl, ra, rn.saturating_add(1)));
                None
            }
            prev => {
                self.0 = Some((l, a, 1));
                prev
            }
        }
    }
}

/// Entry `i` of node `id` (0 if missing).
fn entry<S: NodeStore>(store: &S, id: NodeId, i: usize) -> u64 {
    store.get(id).and_then(|n| n.get(i).copied()).unwrap_or(0)
}

/// Adds one reference to node `id`.
fn add_ref<S: NodeStore>(store: &mut S, id: NodeId) -> Result<()> {
    let r = store.refs(id);
    if r >= MAX_REFS {
        return Err(Error::Invalid("too many references"));
    }
    store.set_refs(id, r.saturating_add(1))
}

/// Calls `f(store, index, addr, n)` for the first `max` runs of consecutive
/// addresses of leaf `id` (stopping at the first error). Returns the number
/// of runs passed to `f` successfully, and the error.
fn leaf_runs<S: NodeStore>(
    store: &mut S,
    id: NodeId,
    max: usize,
    f: &mut dyn FnMut(&mut S, u64, u64, u64) -> Result<()>,
) -> (usize, Result<()>) {
    let mut run = Run(None);
    let mut done = 0usize;
    for i in 0..=FANOUT {
        let e = if i < FANOUT { entry(store, id, i) } else { 0 };
        let ended = if e & PRESENT != 0 {
            run.push(i as u64, e & ADDR_MASK)
        } else {
            run.0.take()
        };
        if let Some((l, a, n)) = ended {
            if done >= max {
                return (done, Ok(()));
            }
            if let Err(x) = f(store, l, a, n) {
                return (done, Err(x));
            }
            done += 1;
        }
    }
    (done, Ok(()))
}

/// A run of mapped blocks: `[lba, lba+len)` of volume `vol` at pool
/// addresses `[addr, addr+len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapExtent {
    /// Volume id.
    pub vol: u32,
    /// First volume block.
    pub lba: u64,
    /// Blocks (>= 1).
    pub len: u64,
    /// Pool address of `lba`.
    pub addr: u64,
}

/// Encoded size of one [`MapExtent`] record.
pub const EXTENT_RECORD_BYTES: usize = 24;

impl MapExtent {
    /// Encodes `vol: u32, lba: u64, len: u32, addr: u64` (`len` must fit a u32).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let len = u32::try_from(self.len).map_err(|_| Error::Invalid("extent too long"))?;
        if w.remaining() < EXTENT_RECORD_BYTES {
            return Err(Error::Truncated);
        }
        w.put_u32(self.vol)?;
        w.put_u64(self.lba)?;
        w.put_u32(len)?;
        w.put_u64(self.addr)
    }

    /// Decodes and range-checks one record.
    pub fn decode(r: &mut Reader<'_>) -> Result<MapExtent> {
        let vol = r.get_u32()?;
        let lba = r.get_u64()?;
        let len = u64::from(r.get_u32()?);
        let addr = r.get_u64()?;
        if len == 0 {
            return Err(Error::BadField("extent length"));
        }
        if lba.checked_add(len).map(|e| e > MAX_VOLUME_BLOCKS) != Some(false) {
            return Err(Error::BadField("extent lba"));
        }
        if addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false) {
            return Err(Error::BadField("extent address"));
        }
        Ok(MapExtent {
            vol,
            lba,
            len,
            addr,
        })
    }
}

/// Decodes one chunk written by [`BlockTable::encode_chunk`] (a `u32` count
/// then that many records), handing each extent to `f`. Returns the count.
pub fn decode_chunk(r: &mut Reader<'_>, mut f: impl FnMut(MapExtent) -> Result<()>) -> Result<u32> {
    let count = r.get_u32()?;
    let bytes = (count as usize).checked_mul(EXTENT_RECORD_BYTES);
    if bytes.map(|b| b > r.remaining()) != Some(false) {
        return Err(Error::Truncated);
    }
    for _ in 0..count {
        f(MapExtent::decode(r)?)?;
    }
    Ok(count)
}

/// Blocks covered by one entry of a node at `level` (1 = leaf).
const fn span(level: u8) -> u64 {
    match 1u64.checked_shl(FANOUT_BITS * (level as u32).saturating_sub(1)) {
        Some(s) => s,
        None => u64::MAX,
    }
}

/// Index of `lba` in its node at `level`.
const fn index(lba: u64, level: u8) -> usize {
    let shifted = match lba.checked_shr(FANOUT_BITS * (level as u32).saturating_sub(1)) {
        Some(v) => v,
        None => 0,
    };
    (shifted & (FANOUT as u64 - 1)) as usize
}

/// Smallest height covering `size` blocks.
fn height_for(size: u64) -> u8 {
    let mut h = 1u8;
    while h < MAX_HEIGHT && span(h + 1) < size {
        h += 1;
    }
    h
}

fn child(e: u64) -> Option<NodeId> {
    (e & PRESENT != 0).then_some((e & ID_MASK) as NodeId)
}

/// Where a walk toward a leaf ended.
enum Walk {
    /// The leaf holding the lba, and the path of node ids from the root
    /// (`path[0]` = root, `path[h-1]` = leaf).
    Leaf([NodeId; MAX_HEIGHT as usize]),
    /// No node there: everything from the lba up to (excluding) `end` is
    /// unmapped; `path[..depth]` are the nodes found on the way.
    Hole {
        end: u64,
        path: [NodeId; MAX_HEIGHT as usize],
        depth: usize,
    },
}

/// The block table of one volume. Small and `Copy`: the nodes live in the
/// [`NodeStore`], which every operation takes as an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTable {
    vol: u32,
    root: Option<NodeId>,
    height: u8,
    /// The tree may contain nodes shared with other tables (set by
    /// [`BlockTable::clone_root`]); modifications copy shared nodes first.
    cow: bool,
    size: u64,
    mapped: u64,
}

impl BlockTable {
    /// An empty table for volume `vol` of `size` blocks (no node allocated).
    pub fn new(vol: u32, size: u64) -> Result<BlockTable> {
        if size > MAX_VOLUME_BLOCKS {
            return Err(Error::Invalid("volume too large"));
        }
        Ok(BlockTable {
            vol,
            root: None,
            height: height_for(size),
            cow: false,
            size,
            mapped: 0,
        })
    }

    /// Volume id.
    pub fn vol(&self) -> u32 {
        self.vol
    }

    /// Volume size in blocks.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Tree height (levels).
    pub fn height(&self) -> u8 {
        self.height
    }

    /// Mapped blocks.
    pub fn mapped(&self) -> u64 {
        self.mapped
    }

    /// Root node, if any.
    pub fn root(&self) -> Option<NodeId> {
        self.root
    }

    /// Whether this table may share nodes with another (after
    /// [`Self::clone_root`]); such a table must be modified with the
    /// `*_shared` methods.
    pub fn is_shared(&self) -> bool {
        self.cow
    }

    /// O(1) snapshot / clone: a new table for volume `vol` sharing this
    /// table's whole tree (the root's reference count grows by one). Both
    /// tables are then modified copy-on-write through the `*_shared`
    /// methods. Needs a store with reference counts
    /// ([`NodeStore::set_refs`]). Blocks keep their lbas in every sharer.
    pub fn clone_root<S: NodeStore>(&mut self, store: &mut S, vol: u32) -> Result<BlockTable> {
        if let Some(r) = self.root {
            add_ref(store, r)?;
            self.cow = true;
        }
        Ok(BlockTable { vol, ..*self })
    }

    fn not_shared(&self) -> Result<()> {
        if self.cow {
            return Err(Error::Invalid("shared table: use the *_shared methods"));
        }
        Ok(())
    }

    /// Copies shared node `id` (at `level`) into a new exclusive node:
    /// children gain a reference, a leaf's blocks gain one through
    /// `hooks.copied`; the original loses one reference. Returns the copy.
    /// On error nothing changed.
    fn copy_node<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<NodeId> {
        let refs = store.refs(id);
        if level > 1 {
            for i in 0..FANOUT {
                if let Some(c) = child(entry(store, id, i)) {
                    if store.refs(c) >= MAX_REFS {
                        return Err(Error::Invalid("too many references"));
                    }
                }
            }
        }
        let copy = store.alloc().ok_or(Error::NoSpace)?;
        if level == 1 {
            let (done, r) = leaf_runs(store, id, usize::MAX, &mut |s, _, a, n| {
                hooks.copied(s, a, n)
            });
            if let Err(e) = r {
                let _ = leaf_runs(store, id, done, &mut |s, _, a, n| {
                    hooks.uncopied(s, a, n);
                    Ok(())
                });
                store.free(copy);
                return Err(e);
            }
        }
        for i in 0..FANOUT {
            let e = entry(store, id, i);
            if let Some(slot) = store.get_mut(copy).and_then(|n| n.get_mut(i)) {
                *slot = e;
            }
            if level > 1 {
                if let Some(c) = child(e) {
                    add_ref(store, c)?;
                }
            }
        }
        store.set_refs(id, refs.saturating_sub(1).max(1))?;
        Ok(copy)
    }

    /// Makes every existing node on the path to `lba` exclusive to this
    /// table, copying shared ones (no-op unless the table shares nodes).
    fn unshare<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if !self.cow {
            return Ok(());
        }
        let Some(mut id) = self.root else {
            return Ok(());
        };
        let mut parent: Option<(NodeId, usize)> = None;
        let mut level = self.height;
        loop {
            if store.refs(id) > 1 {
                let copy = Self::copy_node(store, id, level, hooks)?;
                match parent {
                    None => self.root = Some(copy),
                    Some((p, i)) => {
                        if let Some(slot) = store.get_mut(p).and_then(|n| n.get_mut(i)) {
                            *slot = PRESENT | u64::from(copy);
                        }
                    }
                }
                id = copy;
            }
            if level <= 1 {
                return Ok(());
            }
            let i = index(lba, level);
            match child(entry(store, id, i)) {
                Some(c) => {
                    parent = Some((id, i));
                    id = c;
                }
                None => return Ok(()),
            }
            level -= 1;
        }
    }

    /// Drops one reference to the subtree at `id` (`level`, first lba
    /// `base`), freeing nodes no longer referenced; a freed leaf's entries
    /// go to `hooks.dropped`.
    fn release<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        base: u64,
        hooks: &mut dyn Hooks<S>,
    ) {
        let refs = store.refs(id);
        if refs > 1 {
            let _ = store.set_refs(id, refs.saturating_sub(1));
            return;
        }
        if level > 1 {
            for i in 0..FANOUT {
                if let Some(c) = child(entry(store, id, i)) {
                    let lba = base.saturating_add((i as u64).saturating_mul(span(level)));
                    Self::release(store, c, level - 1, lba, hooks);
                }
            }
        } else {
            let _ = leaf_runs(store, id, usize::MAX, &mut |s, i, a, n| {
                hooks.dropped(s, base.saturating_add(i), a, n);
                Ok(())
            });
        }
        store.free(id);
    }

    /// Makes the whole table exclusive (promote / flatten): every shared
    /// node is copied, so no other table's changes or deletion ever touch
    /// this table's nodes; blocks stay shared (a copied leaf adds a
    /// reference to each block in `refs`). O(nodes of the table). On
    /// [`Error::NoSpace`] the table is partly flattened (still correct, still
    /// shared); call again.
    pub fn flatten<S: NodeStore>(&mut self, store: &mut S, refs: &mut RefMap) -> Result<()> {
        if !self.cow {
            return Ok(());
        }
        let mut nop = |_: u64, _: u64| {};
        let mut hooks = Counted {
            refs,
            on_dead: &mut nop,
        };
        if let Some(mut r) = self.root {
            if store.refs(r) > 1 {
                r = Self::copy_node(store, r, self.height, &mut hooks)?;
                self.root = Some(r);
            }
            Self::flatten_node(store, r, self.height, &mut hooks)?;
        }
        self.cow = false;
        Ok(())
    }

    fn flatten_node<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if level <= 1 {
            return Ok(());
        }
        for i in 0..FANOUT {
            let Some(mut c) = child(entry(store, id, i)) else {
                continue;
            };
            if store.refs(c) > 1 {
                c = Self::copy_node(store, c, level - 1, hooks)?;
                if let Some(slot) = store.get_mut(id).and_then(|n| n.get_mut(i)) {
                    *slot = PRESENT | u64::from(c);
                }
            }
            Self::flatten_node(store, c, level - 1, hooks)?;
        }
        Ok(())
    }

    fn walk<S: NodeStore>(&self, store: &S, lba: u64) -> Walk {
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

    fn leaf_id(&self, path: &[NodeId; MAX_HEIGHT as usize]) -> NodeId {
        path.get(usize::from(self.height).wrapping_sub(1))
            .copied()
            .unwrap_or(0)
    }

    /// The leaf holding `lba`, if any.
    pub fn leaf_at<S: NodeStore>(&self, store: &S, lba: u64) -> Option<NodeId> {
        if lba >= self.size {
            return None;
        }
        match self.walk(store, lba) {
            Walk::Hole { .. } => None,
            Walk::Leaf(p) => Some(self.leaf_id(&p)),
        }
    }

    /// The pool address of `lba`, if mapped.
    pub fn lookup<S: NodeStore>(&self, store: &S, lba: u64) -> Option<u64> {
        if lba >= self.size {
            return None;
        }
        match self.walk(store, lba) {
            Walk::Hole { .. } => None,
            Walk::Leaf(p) => {
                let e = store.get(self.leaf_id(&p))?.get(index(lba, 1)).copied()?;
                (e & PRESENT != 0).then_some(e & ADDR_MASK)
            }
        }
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

    fn check_range(&self, lba: u64, len: u64) -> Result<u64> {
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

    /// The first mapped extent at or after `from` (maximal run of blocks
    /// mapped to consecutive addresses), if any.
    pub fn next_extent<S: NodeStore>(&self, store: &S, from: u64) -> Option<MapExtent> {
        let mut l = from;
        while l < self.size {
            match self.walk(store, l) {
                Walk::Hole { end, .. } => l = end.max(l.saturating_add(1)),
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

    /// Verifies the tree (for the verifier): height matches the size, every
    /// node id resolves, reserved entry bits are zero, leaf addresses lie in
    /// the pool, nothing is mapped at or beyond the volume size, no
    /// reachable node is empty (empty nodes are always freed), shared nodes
    /// only in shared tables, and the mapped count is right.
    pub fn check<S: NodeStore>(&self, store: &S) -> Result<TableStats> {
        if self.height != height_for(self.size) {
            return Err(Error::Corrupt("map: height does not match size"));
        }
        let mut st = TableStats::default();
        if let Some(r) = self.root {
            self.check_node(store, r, self.height, 0, &mut st)?;
        }
        if st.mapped != self.mapped {
            return Err(Error::Corrupt("map: mapped count"));
        }
        Ok(st)
    }

    fn check_node<S: NodeStore>(
        &self,
        store: &S,
        id: NodeId,
        level: u8,
        base: u64,
        st: &mut TableStats,
    ) -> Result<()> {
        let node = store.get(id).ok_or(Error::Corrupt("map: bad node id"))?;
        if !self.cow && store.refs(id) != 1 {
            return Err(Error::Corrupt("map: shared node in an unshared table"));
        }
        st.nodes += 1;
        let mut any = false;
        for (i, &e) in node.iter().enumerate() {
            if e == 0 {
                continue;
            }
            any = true;
            let lba = base.saturating_add((i as u64).saturating_mul(span(level)));
            if e & PRESENT == 0 || e & !(PRESENT | if level > 1 { ID_MASK } else { ADDR_MASK }) != 0
            {
                return Err(Error::Corrupt("map: reserved entry bits"));
            }
            if lba >= self.size {
                return Err(Error::Corrupt("map: entry beyond the volume end"));
            }
            if level > 1 {
                self.check_node(store, (e & ID_MASK) as NodeId, level - 1, lba, st)?;
            } else {
                st.mapped += 1;
            }
        }
        if !any {
            return Err(Error::Corrupt("map: empty node"));
        }
        Ok(())
    }

    /// Encodes mapped extents from `*cursor` (an lba) on into `w` as one chunk:
    /// a `u32` count then records of [`EXTENT_RECORD_BYTES`]; advances
    /// `*cursor`. Returns `Ok(true)` when the table is fully encoded.
    /// [`Error::Truncated`] (nothing written) if `w` cannot hold the count and
    /// one record.
    pub fn encode_chunk<S: NodeStore>(
        &self,
        store: &S,
        cursor: &mut u64,
        w: &mut Writer<'_>,
    ) -> Result<bool> {
        if w.remaining() < 4 + EXTENT_RECORD_BYTES {
            return match self.next_extent(store, *cursor) {
                None => Ok(true),
                Some(_) => Err(Error::Truncated),
            };
        }
        let at = w.pos();
        w.put_u32(0)?;
        let mut count = 0u32;
        loop {
            let Some(mut e) = self.next_extent(store, *cursor) else {
                *cursor = self.size;
                w.patch_u32(at, count)?;
                return Ok(true);
            };
            if w.remaining() < EXTENT_RECORD_BYTES {
                w.patch_u32(at, count)?;
                return Ok(false);
            }
            e.len = e.len.min(u64::from(u32::MAX));
            e.encode(w)?;
            count = count.saturating_add(1);
            *cursor = e.lba.saturating_add(e.len);
        }
    }

    /// Replays one decoded extent into this table (checkpoint load): it must
    /// belong to this volume, lie inside it and not overlap anything mapped.
    pub fn replay<S: NodeStore>(&mut self, store: &mut S, e: &MapExtent) -> Result<()> {
        if e.vol != self.vol {
            return Err(Error::Corrupt("map: extent of another volume"));
        }
        self.check_range(e.lba, e.len)
            .map_err(|_| Error::Corrupt("map: extent beyond volume end"))?;
        let (a, n) = self.lookup_run(store, e.lba, e.len);
        if a.is_some() || n < e.len {
            return Err(Error::Corrupt("map: overlapping extents"));
        }
        self.map_range(store, e.lba, e.len, e.addr, |_, _, _| {})
    }

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
            match child(entry(store, id, index(lba, l))) {
                Some(c) => id = c,
                None => return Side::Hole,
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
                    (Side::Node(_), Side::Hole) => match self.next_extent(store, l) {
                        Some(mut e) if e.lba < stop => {
                            e.len = e.len.min(stop.saturating_sub(e.lba));
                            return Some(Diff::Map(e));
                        }
                        _ => {
                            l = stop;
                            continue 'outer;
                        }
                    },
                    (Side::Node(x), b) => {
                        if level > 1 {
                            level -= 1;
                            continue;
                        }
                        let y = match b {
                            Side::Node(y) => Some(y),
                            _ => None,
                        };
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

    /// The first difference in `[l, stop)` (one leaf) between leaf `x` of
    /// this table and leaf `y` (or nothing) of the base.
    fn leaf_diff<S: NodeStore>(
        &self,
        store: &S,
        x: NodeId,
        y: Option<NodeId>,
        l: u64,
        stop: u64,
    ) -> Option<Diff> {
        let te = |k: u64| entry(store, x, index(k, 1));
        let be = |k: u64| y.map(|y| entry(store, y, index(k, 1))).unwrap_or(0);
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

    /// Space of this table: `(mapped, exclusive)` blocks, where exclusive
    /// blocks are those only this table references (no other table reaches
    /// their leaf, no other leaf holds them): what deleting this table
    /// alone would free. The rest of `mapped` is shared. O(nodes).
    pub fn space<S: NodeStore>(&self, store: &S, refs: &RefMap) -> (u64, u64) {
        let mut st = (0u64, 0u64);
        if let Some(r) = self.root {
            Self::space_node(store, refs, r, self.height, true, false, &mut st);
        }
        st
    }

    /// The exclusive blocks of [`Self::space`] alone, visiting only the
    /// nodes no other table reaches: O(exclusive nodes), so summing it over
    /// every table visits each node at most once.
    pub fn exclusive<S: NodeStore>(&self, store: &S, refs: &RefMap) -> u64 {
        let mut st = (0u64, 0u64);
        if let Some(r) = self.root {
            Self::space_node(store, refs, r, self.height, true, true, &mut st);
        }
        st.1
    }

    fn space_node<S: NodeStore>(
        store: &S,
        refs: &RefMap,
        id: NodeId,
        level: u8,
        excl: bool,
        prune: bool,
        st: &mut (u64, u64),
    ) {
        let excl = excl && store.refs(id) <= 1;
        if prune && !excl {
            return;
        }
        if level > 1 {
            for i in 0..FANOUT {
                if let Some(c) = child(entry(store, id, i)) {
                    Self::space_node(store, refs, c, level - 1, excl, prune, st);
                }
            }
            return;
        }
        let mut run = Run(None);
        let count = |r: Option<(u64, u64, u64)>, st: &mut (u64, u64)| {
            if let Some((_, a, n)) = r {
                st.0 = st.0.saturating_add(n);
                if excl {
                    let shared = refs.shared_in(store, a, n);
                    st.1 = st.1.saturating_add(n.saturating_sub(shared));
                }
            }
        };
        for i in 0..FANOUT {
            let e = entry(store, id, i);
            let ended = if e & PRESENT != 0 {
                run.push(i as u64, e & ADDR_MASK)
            } else {
                run.0.take()
            };
            count(ended, st);
        }
        count(run.0, st);
    }
}

/// A node position seen from one table (see [`BlockTable::next_diff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// No node.
    Hole,
    /// This node.
    Node(NodeId),
    /// A level the table would only get by growing (a new node).
    Virtual,
}

/// One difference between a table and its base (see
/// [`BlockTable::next_diff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diff {
    /// Map this extent (overriding the base).
    Map(MapExtent),
    /// Unmap `[lba, lba+len)`.
    Unmap {
        /// First volume block.
        lba: u64,
        /// Blocks.
        len: u64,
    },
}

/// A node found by [`visit_distinct`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visit {
    /// The caller's index of the first table reaching the node.
    pub table: usize,
    /// Volume of that table.
    pub vol: u32,
    /// The node.
    pub id: NodeId,
    /// Its level (1 = leaf).
    pub level: u8,
    /// First lba it covers.
    pub base: u64,
    /// Its reference count.
    pub refs: u32,
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
/// [`super::sparse::SparseMap`]), never change the tables' nodes.
pub fn visit_distinct<S: NodeStore>(
    store: &mut S,
    n: usize,
    table: &dyn Fn(usize) -> Option<BlockTable>,
    visit: &mut dyn FnMut(&mut S, &Visit) -> bool,
) -> bool {
    let mut stop: Option<(usize, u64, u8)> = None;
    for ti in 0..n {
        let Some(t) = table(ti) else { continue };
        let Some(root) = t.root else { continue };
        if let Some((b, l)) = mark_walk(store, ti, t.vol, root, t.height, 0, visit) {
            stop = Some((ti, b, l));
            break;
        }
    }
    let last = stop.map(|s| s.0).unwrap_or(n.saturating_sub(1));
    for ti in 0..n.min(last.saturating_add(1)) {
        let Some(t) = table(ti) else { continue };
        let Some(root) = t.root else { continue };
        let limit = match stop {
            Some((st, b, l)) if st == ti => Some((b, l)),
            _ => None,
        };
        unmark_walk(store, root, t.height, 0, limit);
    }
    stop.is_none()
}

/// Pass 1 of [`visit_distinct`]: returns where `visit` stopped it.
fn mark_walk<S: NodeStore>(
    store: &mut S,
    ti: usize,
    vol: u32,
    id: NodeId,
    level: u8,
    base: u64,
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
        for i in 0..FANOUT {
            if let Some(c) = child(entry(store, id, i)) {
                let b = base.saturating_add((i as u64).saturating_mul(span(level)));
                if let Some(s) = mark_walk(store, ti, vol, c, level - 1, b, visit) {
                    return Some(s);
                }
            }
        }
    }
    None
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
        for i in 0..FANOUT {
            if let Some(c) = child(entry(store, id, i)) {
                let b = base.saturating_add((i as u64).saturating_mul(span(level)));
                unmark_walk(store, c, level - 1, b, limit);
            }
        }
    }
}

/// What [`BlockTable::check`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Nodes reachable from the root (shared nodes counted once per path).
    pub nodes: u64,
    /// Mapped blocks.
    pub mapped: u64,
}

/// Iterator over a table's mapped extents (see [`BlockTable::extents`]).
pub struct Extents<'a, S> {
    table: &'a BlockTable,
    store: &'a S,
    next: u64,
}

impl<S: NodeStore> Iterator for Extents<'_, S> {
    type Item = MapExtent;

    fn next(&mut self) -> Option<MapExtent> {
        let e = self.table.next_extent(self.store, self.next)?;
        self.next = e.lba.saturating_add(e.len);
        Some(e)
    }
}

#[cfg(test)]
pub(super) mod tests {
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
                Some(id)
            } else {
                self.nodes.push(Some(n));
                self.refs.push(1);
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
                mapped: 20
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
        let mut s2 = VecStore::new(4);
        let mut t2 = BlockTable::new(1, 512 * 512 * 4).unwrap();
        assert_eq!(
            t2.map_range(&mut s2, 0, 512 * 3, 5, |_, _, _| {}),
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
            for step in 0..1500 {
                let hot = rng.below(4) == 0;
                let lba = if hot {
                    rng.below(2000)
                } else {
                    rng.below(size)
                };
                let big = rng.below(10) == 0;
                let len = 1 + rng.below(if big { 3000 } else { 40 }).min(size - lba - 1);
                match rng.below(10) {
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
            }
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
            if v.level == 1 {
                for &e in st.get(v.id).unwrap().iter() {
                    if e & PRESENT != 0 {
                        *occ.entry(e & ADDR_MASK).or_insert(0) += 1;
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
            for step in 0..600 {
                let ti = rng.below(tabs.len() as u64) as usize;
                let tsize = tabs[ti].0.size();
                let lba = rng.below(tsize.max(1));
                let big = rng.below(8) == 0;
                let len = (1 + rng.below(if big { 1500 } else { 30 })).min(tsize - lba.min(tsize));
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
                        t.map_range_shared(&mut s, &mut refs, lba, len, addr, |a, n| {
                            dead.push((a, n))
                        })
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
                                len: e.len.min(64),
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
                        c.destroy_shared(&mut s, &mut refs, |a, n| {
                            panic!("diff clone freed {a}+{n}")
                        })
                        .unwrap();
                    }
                    _ => {}
                }
                // Dead blocks: exactly those no table maps any more.
                let mapped: HashSet<u64> =
                    tabs.iter().flat_map(|(_, m)| m.values().copied()).collect();
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
                    t.check(&s).unwrap();
                    for _ in 0..20 {
                        let l = rng.below(t.size().max(1));
                        assert_eq!(t.lookup(&s, l), m.get(&l).copied());
                    }
                    // Exclusive space: blocks no other table maps.
                    let (mp, ex) = t.space(&s, &refs);
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
}
