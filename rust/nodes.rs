// SPDX-License-Identifier: GPL-2.0
//! Block-table nodes in kernel memory: the kernel's [`NodeStore`], and the
//! pool's table-memory budget.
//!
//! Each node is one 4 KiB kmalloc'ed buffer, indexed by a dense id so the core
//! can refer to it by number. Ids are grouped in chunks of [`CHUNK`] slots;
//! the directory of chunks is `kvmalloc`ed. No allocation grows with the
//! number of nodes beyond one chunk (12 KiB) or the directory (24 bytes per
//! chunk: 384 KiB for 16 Mi nodes, i.e. 64 GiB of tables), and nothing is
//! ever copied when the store grows, so the store has no size cliff (the
//! former single slot vector stopped at 131,072 nodes, the kmalloc limit).
//!
//! Freed ids are reused, lowest chunk last freed first, through a free list
//! threaded through the free slots themselves: freeing never allocates.
//!
//! Each slot also holds its node's change marks (16 bytes, see
//! [`NodeMarks`]) for delta checkpoints; clearing the spent generation at
//! the end of a checkpoint is one pass over the slots (memory only, under
//! the engine lock; 8 bytes written per node id).
//!
//! Allocations happen while I/O of the pool is in flight (block-table
//! updates at write completion), where reclaim must not recurse into the
//! block layer: callers on the I/O path hold a [`crate::kwrap::noio::NoIo`]
//! scope, which makes these `GFP_KERNEL` allocations behave as `GFP_NOIO`.

use crate::zvcore::map::{Node, NodeId, NodeMarks, NodeStore, FANOUT};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

/// Slots per chunk (a power of two).
const CHUNK_SHIFT: u32 = 8;
/// Slots per chunk.
pub(crate) const CHUNK: usize = 1 << CHUNK_SHIFT;
/// End of the free list.
const NO_ID: u32 = u32::MAX;
/// Memory of one node: its 4 KiB and its vector header.
pub(crate) const NODE_BYTES: u64 = (FANOUT * 8 + core::mem::size_of::<KVec<u64>>()) as u64;
/// Memory of one chunk of slots.
const CHUNK_BYTES: u64 = (CHUNK * core::mem::size_of::<Slot>()) as u64;

/// One node id.
struct Slot {
    /// The node, while the id is in use.
    node: Option<KVec<u64>>,
    /// While in use: the node's reference count. While free: the next free
    /// id ([`NO_ID`] at the end of the list).
    refs: u32,
    /// The node's change marks (delta checkpoints), while in use.
    marks: NodeMarks,
}

/// The table memory of one pool: what its block tables use and what they
/// may use. Shared by the node store (under the engine lock) and readers
/// without the lock (`status`, the configfs attribute).
pub(crate) struct TableBudget {
    /// Bytes the node store holds (nodes, chunks, directory).
    used: AtomicU64,
    /// Bytes the store may hold; `u64::MAX` while the pool assembles.
    limit: AtomicU64,
    /// Node allocations refused because of the limit.
    refused: AtomicU64,
    /// A refusal was logged and the use has not fallen well below the limit
    /// since: one log line per episode.
    warned: AtomicBool,
    /// Node allocations of the active pool since assembly (for the test
    /// hook `fail_node_alloc`).
    allocs: AtomicU64,
    /// Node allocations that failed for want of memory (or by the test
    /// hook); their requests were requeued.
    failed: AtomicU64,
}

impl TableBudget {
    /// A budget without a limit (assembly loads what the pool has).
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                used: AtomicU64::new(0),
                limit: AtomicU64::new(u64::MAX),
                refused: AtomicU64::new(0),
                warned: AtomicBool::new(false),
                allocs: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// Bytes the block tables use.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes the block tables may use.
    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Sets the limit (applies to the next allocation; what is allocated
    /// stays).
    pub(crate) fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
    }

    /// Node allocations refused by the limit since the pool was assembled.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Node allocations that failed for want of memory since assembly.
    pub(crate) fn alloc_failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether the test hook `fail_node_alloc=N` (module parameter) fails
    /// this allocation: one node allocation in N of an active pool (not
    /// while it assembles: the limit is then `u64::MAX`), chosen by a hash
    /// of the allocation's number, so that an update needing several nodes
    /// is not failed at every retry the way a strict every-N-th would.
    fn injected(&self) -> bool {
        let every = u64::from(crate::fail_node_alloc());
        if every == 0 || self.limit() == u64::MAX {
            return false;
        }
        // splitmix64 of the allocation's number.
        let mut z = self
            .allocs
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % every == 0
    }

    /// Whether `more` bytes fit; counts and logs (once an episode) a refusal.
    fn admit(&self, pool: &CString, more: u64) -> bool {
        let used = self.used();
        let limit = self.limit();
        if used.saturating_add(more) <= limit {
            // Well below the limit again: the next refusal is news.
            if used < limit / 10 * 9 {
                self.warned.store(false, Ordering::Relaxed);
            }
            return true;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            pr_err!(
                "{}: block tables use {} MiB, their limit (table_memory_limit {} MiB): writes that need new table nodes fail with ENOSPC until mappings are freed or the limit is raised\n",
                &**pool,
                used >> 20,
                limit >> 20
            );
        }
        false
    }
}

/// The table memory limit for a `table_memory_limit` of `configured` bytes:
/// 0 means the default, half of the machine's memory (block tables are not
/// reclaimable; the rest is left to the guests and the page cache).
pub(crate) fn effective_limit(configured: u64) -> u64 {
    match configured {
        0 => crate::kwrap::uts::total_ram_bytes() / 2,
        v => v,
    }
}

/// Nodes of all block tables of one pool.
///
/// # Invariants
/// - every id below `ids` has a slot: `chunks[id / CHUNK][id % CHUNK]`;
/// - the free list from `free_head` visits exactly the slots below `ids`
///   whose `node` is `None`, each once;
/// - `live` is the number of slots whose `node` is `Some`;
/// - `budget.used` is [`KNodes::bytes`] after every operation.
pub(crate) struct KNodes {
    chunks: KVVec<KVec<Slot>>,
    free_head: u32,
    ids: u32,
    live: usize,
    /// Allocations that failed for want of memory (not by the budget):
    /// a caller whose update failed with `NoSpace` while this count grew
    /// retries later (`ENOMEM`) instead of failing (`ENOSPC`).
    ooms: u64,
    budget: Arc<TableBudget>,
    /// The pool's name, for the budget's log line.
    pool: CString,
    /// The current generation of change marks (0 or 1).
    cur: u8,
    /// A checkpoint walks the other generation (swapped, not yet cleared).
    walking: bool,
}

impl KNodes {
    /// An empty store of pool `pool`, accounted in `budget`.
    pub(crate) fn new(pool: &CStr, budget: Arc<TableBudget>) -> Result<Self> {
        let s = Self {
            chunks: KVVec::new(),
            free_head: NO_ID,
            ids: 0,
            live: 0,
            ooms: 0,
            budget,
            pool: CString::try_from_fmt(fmt!("{}", pool))?,
            cur: 0,
            walking: false,
        };
        s.account();
        Ok(s)
    }

    /// Nodes in use (each is 4 KiB of memory).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Allocations of this store that failed for want of memory rather
    /// than by the table memory limit (the core reports both as
    /// `NoSpace`): compared before and after an update, since one update
    /// may allocate again after a failure (the next extent of a write).
    pub(crate) fn oom_count(&self) -> u64 {
        self.ooms
    }

    /// Bytes this store holds: the nodes, the chunks of slots and the
    /// directory of chunks.
    pub(crate) fn bytes(&self) -> u64 {
        let dir = (self.chunks.capacity() * core::mem::size_of::<KVec<Slot>>()) as u64;
        (self.live as u64)
            .saturating_mul(NODE_BYTES)
            .saturating_add((self.chunks.len() as u64).saturating_mul(CHUNK_BYTES))
            .saturating_add(dir)
    }

    fn account(&self) {
        self.budget.used.store(self.bytes(), Ordering::Relaxed);
    }

    fn slot(&self, id: NodeId) -> Option<&Slot> {
        let id = id as usize;
        self.chunks.get(id >> CHUNK_SHIFT)?.get(id & (CHUNK - 1))
    }

    fn slot_mut(&mut self, id: NodeId) -> Option<&mut Slot> {
        let id = id as usize;
        self.chunks
            .get_mut(id >> CHUNK_SHIFT)?
            .get_mut(id & (CHUNK - 1))
    }

    /// A zeroed node and a free id for it; `None` when out of memory (or
    /// the test hook says so).
    fn new_node(&mut self) -> Option<(KVec<u64>, NodeId)> {
        if self.budget.injected() {
            return None;
        }
        // Built on the heap directly (a 4 KiB array on the kernel stack is too much).
        let node = KVec::from_elem(0u64, FANOUT, GFP_KERNEL).ok()?;
        let id = match self.free_head {
            NO_ID => self.fresh_id()?,
            id => id,
        };
        Some((node, id))
    }

    /// A never used id, with its slot (a new chunk every [`CHUNK`] ids).
    fn fresh_id(&mut self) -> Option<NodeId> {
        let id = self.ids;
        if id == NO_ID {
            return None;
        }
        let c = (id as usize) >> CHUNK_SHIFT;
        if c == self.chunks.len() {
            let chunk = KVec::with_capacity(CHUNK, GFP_KERNEL).ok()?;
            self.chunks.push(chunk, GFP_KERNEL).ok()?;
        }
        // Capacity for CHUNK slots was reserved with the chunk: no allocation.
        self.chunks
            .get_mut(c)?
            .push(
                Slot {
                    node: None,
                    refs: NO_ID,
                    marks: NodeMarks([0; 2]),
                },
                GFP_NOWAIT,
            )
            .ok()?;
        self.ids = id + 1;
        Some(id)
    }
}

impl NodeStore for KNodes {
    fn alloc(&mut self) -> Option<NodeId> {
        let more = NODE_BYTES
            + if self.free_head == NO_ID && (self.ids as usize) % CHUNK == 0 {
                CHUNK_BYTES
            } else {
                0
            };
        if !self.budget.admit(&self.pool, more) {
            return None;
        }
        let Some((node, id)) = self.new_node() else {
            self.ooms = self.ooms.wrapping_add(1);
            self.budget.failed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let (cur, walking) = (self.cur, self.walking);
        let slot = self.slot_mut(id)?;
        let next = slot.refs;
        slot.node = Some(node);
        slot.refs = 1;
        slot.marks = NodeMarks::fresh(cur, walking);
        if self.free_head == id {
            self.free_head = next;
        }
        self.live += 1;
        self.account();
        Some(id)
    }

    fn headroom(&self) -> usize {
        // Each node, and a chunk of slots now and then (counted as one
        // more node's worth per chunk).
        let left = self.budget.limit().saturating_sub(self.budget.used());
        let per = NODE_BYTES.saturating_add(CHUNK_BYTES / CHUNK as u64).max(1);
        usize::try_from(left / per).unwrap_or(usize::MAX)
    }

    fn free(&mut self, id: NodeId) {
        let head = self.free_head;
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        if slot.node.take().is_some() {
            slot.refs = head;
            self.free_head = id;
            self.live -= 1;
            self.account();
        }
    }

    fn get(&self, id: NodeId) -> Option<&Node> {
        self.slot(id)?.node.as_ref()?.as_slice().try_into().ok()
    }

    fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.slot_mut(id)?
            .node
            .as_mut()?
            .as_mut_slice()
            .try_into()
            .ok()
    }

    fn refs(&self, id: NodeId) -> u32 {
        match self.slot(id) {
            Some(s) if s.node.is_some() => s.refs,
            _ => 0,
        }
    }

    fn set_refs(&mut self, id: NodeId, refs: u32) -> crate::zvcore::error::Result<()> {
        match self.slot_mut(id) {
            Some(s) if s.node.is_some() => {
                s.refs = refs;
                Ok(())
            }
            _ => Err(crate::zvcore::error::Error::NotFound),
        }
    }

    fn tracks_changes(&self) -> bool {
        true
    }

    fn mark(&mut self, id: NodeId, marks: u64) {
        let cur = self.cur;
        if let Some(s) = self.slot_mut(id) {
            s.marks.mark(cur, marks);
        }
    }

    fn changed(&self, id: NodeId) -> u64 {
        self.slot(id)
            .map_or(u64::MAX, |s| s.marks.changed(self.cur))
    }

    fn mark_walked(&mut self, id: NodeId, marks: u64) {
        let (cur, walking) = (self.cur, self.walking);
        if walking {
            if let Some(s) = self.slot_mut(id) {
                s.marks.mark(cur ^ 1, marks);
            }
        }
    }

    fn swap_marks(&mut self) {
        self.cur ^= 1;
        self.walking = true;
    }

    fn clear_changed(&mut self) {
        let cur = self.cur;
        for chunk in self.chunks.iter_mut() {
            for s in chunk.iter_mut() {
                s.marks.clear_changed(cur);
            }
        }
        self.walking = false;
    }
}
