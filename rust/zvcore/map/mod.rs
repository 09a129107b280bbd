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
//! Entry format (all levels): bit 63 [`PRESENT`]; bit 62 [`SHARED`]
//! (reserved for copy-on-write snapshots, always 0: sharing is tracked by
//! node reference counts); bit 61 [`RUN`] (level-2 nodes only); bits 48..61
//! otherwise reserved (0); interior entries hold the child [`NodeId`] in
//! bits 0..32, leaf entries the pool address in bits 0..48. An all-zero
//! entry is unmapped / no child, so a freshly zeroed node is empty.
//!
//! Run entries: an entry of a level-2 node (a parent of leaves) with
//! `PRESENT | RUN` and a pool address `a` in bits 0..48 maps the entry's
//! whole leaf range (512 blocks, inside the volume) to `[a, a + 512)`
//! without a leaf. Every walker resolves it arithmetically; a change to
//! part of it first splits it into a leaf (in the allocation pass, so
//! [`Error::NoSpace`] still changes nothing), and a leaf left mapping one
//! contiguous run by `map_range` or `relocate` collapses back into a run
//! entry (`runs.rs`). For block reference counting a run entry is a holder
//! of its blocks like a leaf (copied with its node, dropped when its node
//! is freed). The extents, hence checkpoints and journal records, do not
//! depend on the representation.
//!
//! Memory: a run entry maps 2 MiB in 8 bytes, so a sequentially written
//! TiB costs about 4 MiB of nodes (1027 nodes in `runs_tests.rs`); a
//! randomly written leaf range still costs a 4 KiB leaf, i.e. 8 bytes per
//! mapped 4 KiB block when full, plus 1/512 of that per level above; worst
//! case (one mapped block per leaf) a block costs a whole 4 KiB leaf; see
//! `Documentation/design-space.md` for the extent-leaf idea that bounds it.

use super::error::{Error, Result};
use super::geom::MAX_POOL_BLOCKS;
use super::sparse::RefMap;

mod changes;
mod check;
mod chunk;
mod cow;
mod diff;
mod runs;
mod table;
mod walk;

pub use chunk::decode_chunk;
pub use walk::{visit_distinct, visit_distinct_from};

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
/// Entry bit of a run entry (level-2 nodes only): the [`FANOUT`] blocks of
/// the entry's range map to consecutive pool addresses from the address in
/// bits 0..48, with no leaf node.
pub const RUN: u64 = 1 << 61;
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
    /// How many more nodes the store's limit admits now (allocations may
    /// still fail for want of memory). The default: no limit.
    fn headroom(&self) -> usize {
        usize::MAX
    }
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
    /// Whether the store keeps change marks ([`NodeMarks`]), which
    /// incremental checkpoints need. The default: no (the other mark
    /// methods do nothing, and every entry reads as changed).
    fn tracks_changes(&self) -> bool {
        false
    }
    /// Adds `marks` (an encoding of the map's, see `changes.rs`) to the
    /// current generation of node `id`'s marks.
    fn mark(&mut self, _id: NodeId, _marks: u64) {}
    /// While a checkpoint walks the previous generation (between
    /// [`NodeStore::swap_marks`] and [`NodeStore::clear_changed`]), adds
    /// `marks` to node `id`'s marks there too (interior entries that are
    /// now holes or run entries, whose former subtree may have carried
    /// marks of that generation). Nothing otherwise.
    fn mark_walked(&mut self, _id: NodeId, _marks: u64) {}
    /// The marks of node `id` in the previous generation (before the last
    /// [`NodeStore::swap_marks`]); all set for a store without marks.
    fn changed(&self, _id: NodeId) -> u64 {
        u64::MAX
    }
    /// Starts a new generation of marks: the current marks become what
    /// [`NodeStore::changed`] reads.
    fn swap_marks(&mut self) {}
    /// Clears every mark [`NodeStore::changed`] reads (memory only: one
    /// pass over the store).
    fn clear_changed(&mut self) {}
}

/// The change marks of one node, for a [`NodeStore`] that tracks changes:
/// two generations of 64 bits (their meaning is the map's, see
/// `changes.rs`); the store keeps which one is current (`cur`, 0 or 1) for
/// all its nodes. A new node is all marked ([`NodeMarks::fresh`]): whatever
/// its slot held before, everything under it counts as changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeMarks(pub [u64; 2]);

impl NodeMarks {
    /// The marks of a node allocated now, `cur` being the current
    /// generation: all marked in it, and also in the other one while a
    /// checkpoint walks that one (between [`NodeStore::swap_marks`] and
    /// [`NodeStore::clear_changed`]): the node may replace a subtree
    /// changed before the checkpoint began, whose marks it must carry.
    pub fn fresh(cur: u8, walking: bool) -> NodeMarks {
        let mut m = NodeMarks::default();
        m.mark(cur, u64::MAX);
        if walking {
            m.mark(cur ^ 1, u64::MAX);
        }
        m
    }

    /// Adds `marks` to generation `cur`.
    pub fn mark(&mut self, cur: u8, marks: u64) {
        if let Some(m) = self.0.get_mut(usize::from(cur & 1)) {
            *m |= marks;
        }
    }

    /// The marks of the generation before `cur`.
    pub fn changed(&self, cur: u8) -> u64 {
        self.0
            .get(usize::from((cur ^ 1) & 1))
            .copied()
            .unwrap_or(u64::MAX)
    }

    /// Clears the generation before `cur`.
    pub fn clear_changed(&mut self, cur: u8) {
        if let Some(m) = self.0.get_mut(usize::from((cur ^ 1) & 1)) {
            *m = 0;
        }
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
        self.push_n(l, a, 1)
    }

    /// Adds `n` blocks; returns the run it ended, if any.
    fn push_n(&mut self, l: u64, a: u64, n: u64) -> Option<(u64, u64, u64)> {
        match self.0 {
            Some((rl, ra, rn)) if rl.checked_add(rn) == Some(l) && ra.wrapping_add(rn) == a => {
                self.0 = Some((rl, ra, rn.saturating_add(n)));
                None
            }
            prev => {
                self.0 = Some((l, a, n));
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

/// The mapping held by entry `i` of node `id` at `level`: `(offset of the
/// first lba in the node, addr, blocks)` for a leaf entry (1 block) or a
/// run entry of a level-2 node ([`FANOUT`] blocks); `None` otherwise.
fn held<S: NodeStore>(store: &S, id: NodeId, level: u8, i: usize) -> Option<(u64, u64, u64)> {
    let e = entry(store, id, i);
    match level {
        1 => (e & PRESENT != 0).then_some((i as u64, e & ADDR_MASK, 1)),
        2 => run_addr(e).map(|a| ((i as u64).saturating_mul(FANOUT as u64), a, FANOUT as u64)),
        _ => None,
    }
}

/// Calls `f(store, offset, addr, n)` for the first `max` runs of
/// consecutive addresses held by node `id` at `level` (leaf entries, or the
/// run entries of a level-2 node; see [`held`]), stopping at the first
/// error. Returns the number of runs passed to `f` successfully, and the
/// error. The node is looked up once per [`RUN_CHUNK`] runs (not once per
/// entry: walks of every table at assembly spend their time here), and `f`
/// may change the store between chunks (not this node). Never inlined: its
/// buffer stays out of the frames of the (deep) walks that call it.
#[inline(never)]
fn node_runs<S: NodeStore>(
    store: &mut S,
    id: NodeId,
    level: u8,
    max: usize,
    f: &mut dyn FnMut(&mut S, u64, u64, u64) -> Result<()>,
) -> (usize, Result<()>) {
    let mut done = 0usize;
    let mut next = 0usize;
    let mut buf = [(0u64, 0u64, 0u64); RUN_CHUNK];
    while next < FANOUT {
        let Some(node) = store.get(id) else {
            break;
        };
        let (n, resume) = collect_runs(node, level, next, &mut buf);
        next = resume;
        for &(l, a, len) in buf.iter().take(n) {
            if done >= max {
                return (done, Ok(()));
            }
            if let Err(x) = f(store, l, a, len) {
                return (done, Err(x));
            }
            done += 1;
        }
    }
    (done, Ok(()))
}

/// Runs [`node_runs`] collects per lookup of the node.
const RUN_CHUNK: usize = 8;

/// Collects into `buf` the runs of `node` (at `level`) that start at entry
/// `from` or later, until `buf` is full; returns how many, and the entry to
/// resume from (`FANOUT`: the node is done). A run is never cut inside a
/// chunk; a run cut by a full `buf` continues in the next chunk.
fn collect_runs(
    node: &Node,
    level: u8,
    from: usize,
    buf: &mut [(u64, u64, u64); RUN_CHUNK],
) -> (usize, usize) {
    let mut run = Run(None);
    let mut n = 0usize;
    let mut i = from;
    while i < FANOUT {
        let e = node.get(i).copied().unwrap_or(0);
        let h = match level {
            1 => (e & PRESENT != 0).then_some((i as u64, e & ADDR_MASK, 1)),
            2 => run_addr(e).map(|a| ((i as u64).saturating_mul(FANOUT as u64), a, FANOUT as u64)),
            _ => None,
        };
        let ended = match h {
            Some((l, a, len)) => run.push_n(l, a, len),
            None => run.0.take(),
        };
        if let Some(r) = ended {
            if let Some(slot) = buf.get_mut(n) {
                *slot = r;
                n += 1;
            }
            if n == RUN_CHUNK {
                // Entry `i` ended the last run: resume there if it opened
                // the next one, after it if it is a hole.
                let resume = if run.0.is_some() {
                    i
                } else {
                    i.saturating_add(1)
                };
                return (n, resume);
            }
        }
        i += 1;
    }
    if let Some(r) = run.0.take() {
        if let Some(slot) = buf.get_mut(n) {
            *slot = r;
            n += 1;
        }
    }
    (n, FANOUT)
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

/// The child node of interior entry `e` (`None` for no child and for a run
/// entry).
fn child(e: u64) -> Option<NodeId> {
    (e & (PRESENT | RUN) == PRESENT).then_some((e & ID_MASK) as NodeId)
}

/// The first pool address of run entry `e`, if it is one.
fn run_addr(e: u64) -> Option<u64> {
    (e & (PRESENT | RUN) == PRESENT | RUN).then_some(e & ADDR_MASK)
}

/// The run entry mapping a leaf range to `[addr, addr + FANOUT)`.
fn run_entry(addr: u64) -> u64 {
    PRESENT | RUN | (addr & ADDR_MASK)
}

/// Where a walk toward a leaf ended.
enum Walk {
    /// The leaf holding the lba, and the path of node ids from the root
    /// (`path[0]` = root, `path[h-1]` = leaf).
    Leaf([NodeId; MAX_HEIGHT as usize]),
    /// A run entry of the level-2 node `path[h-2]` maps the leaf range
    /// `[base, base + FANOUT)` (holding the lba) to `[addr, addr + FANOUT)`.
    Run {
        path: [NodeId; MAX_HEIGHT as usize],
        base: u64,
        addr: u64,
    },
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
}

/// A node position seen from one table (see [`BlockTable::next_diff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// No node.
    Hole,
    /// This node.
    Node(NodeId),
    /// At level 1: a run entry, mapping the leaf range from this address.
    Run(u64),
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

/// A node found by [`visit_distinct`] (the mappings it holds: see
/// [`Visit::held`]).
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

impl Visit {
    /// The mapping held by entry `i` of the visited node: `(lba, addr, n)`,
    /// i.e. `[lba, lba+n)` maps to `[addr, addr+n)`: a leaf's mapped entry
    /// (1 block) or a run entry of a level-2 node ([`FANOUT`] blocks).
    /// `None` for an unmapped entry, a child pointer, or `i >= FANOUT`.
    /// Together the visited nodes hold every mapping of the tables, each
    /// distinct holder once.
    pub fn held<S: NodeStore>(&self, store: &S, i: usize) -> Option<(u64, u64, u64)> {
        held(store, self.id, self.level, i).map(|(o, a, n)| (self.base.saturating_add(o), a, n))
    }

    /// Calls `f(store, lba, addr, n)` for every run of consecutive
    /// mappings the visited node holds (what [`Self::held`] gives entry by
    /// entry, merged where lbas and addresses follow each other), stopping
    /// at the first error. Much cheaper than [`Self::held`] over every
    /// entry: the node is looked up once per few runs.
    pub fn runs<S: NodeStore>(
        &self,
        store: &mut S,
        f: &mut dyn FnMut(&mut S, u64, u64, u64) -> Result<()>,
    ) -> Result<()> {
        let base = self.base;
        node_runs(store, self.id, self.level, usize::MAX, &mut |s, o, a, n| {
            f(s, base.saturating_add(o), a, n)
        })
        .1
    }
}

/// What [`BlockTable::check`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Nodes reachable from the root (shared nodes counted once per path).
    pub nodes: u64,
    /// Mapped blocks.
    pub mapped: u64,
    /// Leaves among `nodes`.
    pub leaves: u64,
    /// Run entries (each maps [`FANOUT`] blocks without a leaf).
    pub runs: u64,
}

/// What one table uses (see [`BlockTable::space`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSpace {
    /// Mapped blocks.
    pub mapped: u64,
    /// Of those, blocks no other table references.
    pub exclusive: u64,
    /// Nodes the table reaches, and of those the nodes no other table
    /// reaches (what deleting it frees).
    pub nodes: u64,
    pub exclusive_nodes: u64,
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
mod changes_tests;
#[cfg(test)]
mod runs_tests;
#[cfg(test)]
pub(super) mod tests;
