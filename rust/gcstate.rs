// SPDX-License-Identifier: GPL-2.0
//! The GC state of a pool: its workqueue, pacing counters and the buffers
//! of the batch in flight. What runs GC and paces writers is `gc.rs`.

use crate::kwrap::{bio::Slot, metaio::Bounce, workq::ReclaimQueue};
use crate::waits::WaitStat;
use crate::zvcore::{
    format::BLOCK_SIZE,
    pacing::{PaceQueue, WriteShares},
    pool::RelocItem,
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use kernel::{
    prelude::*,
    sync::Mutex,
    time::{Instant, Monotonic},
};

/// Most relocation items per GC batch (a fragmented victim has many
/// one-block extents).
const GC_ITEMS: usize = 256;

/// Copy buffer of a GC batch, in blocks (1 MiB): the batch's budget.
pub(crate) const GC_BUF_BLOCKS: u64 = 256;

/// Relocation cost assumed before GC has looked at a victim: one block
/// copied per block gained.
const COST_DEFAULT: u64 = 1000;

/// GC state of a pool.
#[pin_data]
pub(crate) struct Gc {
    pub(crate) queue: ReclaimQueue,
    /// No more GC runs (the pool is stopping).
    pub(crate) stopping: AtomicBool,
    /// GC disabled by the administrator (status/testing: `gc` attribute).
    pub(crate) disabled: AtomicBool,
    /// The last batch made no progress: nothing to reclaim.
    pub(crate) stalled: AtomicBool,
    /// GC was kicked since the GC work last looked: a work that found
    /// nothing to reclaim and scrubs meanwhile (`scrub.rs`) tries GC again,
    /// and a rate-limited scrub step does not sleep.
    pub(crate) kicked: AtomicBool,
    /// How long a write waits for space from outside once GC can free
    /// none (`no_space_timeout`, ms; 0: it fails at once with ENOSPC).
    pub(crate) no_space_timeout_ms: AtomicU64,
    /// Writes waiting that way now: GC commits what is queued for them.
    pub(crate) queued: AtomicU32,
    /// Pacing debt, in thousandths of a block: what GC still has to relocate
    /// for the blocks users wrote while GC runs, as tickets admitted in
    /// order (`zvcore::pacing`).
    pub(crate) pace: PaceQueue,
    /// Recent user writes per volume: writes of a light volume take no
    /// pacing ticket (`zvcore::pacing::WriteShares`).
    pub(crate) shares: WriteShares,
    /// Writes that found GC behind but were not paced (light volumes).
    pub(crate) light_writes: AtomicU64,
    /// Relocation cost of the current victim, in thousandths of a block per
    /// block gained (`zvcore::gc::relocation_cost_x1000`).
    pub(crate) cost_x1000: AtomicU64,
    /// Free data zones, as of the last engine call that changed them
    /// (`ActivePool::note_levels`, `gc.rs`): pacing reads it without the engine
    /// lock.
    pub(crate) free_zones: AtomicU32,
    /// Data zones of the pool and the GC-only reserve (fixed).
    pub(crate) data_zones: AtomicU32,
    pub(crate) reserve: AtomicU32,
    /// Journal records queued (published with the free zones).
    pub(crate) records: AtomicU32,
    /// A member being evacuated still holds live blocks, a volume
    /// migration is under way, or tiering wants the fast members' zones
    /// collected (`Pool::tier_demoting`): GC runs whatever the free zones
    /// (published with them).
    pub(crate) evacuating: AtomicBool,
    /// The sequence number of the last placement walk whose end was told
    /// (`ZVPOOL_EVENT=walk`, `Pool::walk_end`).
    pub(crate) walk_told: AtomicU64,
    /// When the evacuation in progress started (`status`).
    #[pin]
    pub(crate) evac_since: Mutex<Option<Instant<Monotonic>>>,
    /// Batches run since the last commit GC made.
    pub(crate) uncommitted: AtomicU32,
    /// Batches run.
    pub(crate) runs: AtomicU64,
    /// How long GC's planning (`gc_begin`: victim choice, the scan of the
    /// block tables for its live blocks, the copies' places) held the
    /// engine lock, per batch.
    pub(crate) hold_plan: WaitStat,
    /// The same for recording a batch (`gc_end`: the tables updated).
    pub(crate) hold_end: WaitStat,
    /// Buffers of the batch in flight; only the GC work uses them.
    #[pin]
    pub(crate) bufs: Mutex<GcBufs>,
}

/// What one GC batch works in.
pub(crate) struct GcBufs {
    pub(crate) items: KVec<RelocItem>,
    pub(crate) slots: KVec<Slot>,
    /// Per item: its source was read.
    pub(crate) read_ok: KVec<bool>,
    /// Per item: its copy was submitted.
    pub(crate) submitted: KVec<bool>,
    /// Per item: where its copy landed.
    pub(crate) addrs: KVec<Option<u64>>,
    /// The copies, item after item.
    pub(crate) data: Bounce,
}

impl Gc {
    /// GC state for the pool `name`.
    pub(crate) fn new(name: &CStr) -> Result<impl PinInit<Self, Error>> {
        let mut slots = KVec::with_capacity(GC_ITEMS, GFP_KERNEL)?;
        for _ in 0..GC_ITEMS {
            slots.push(Slot::new(), GFP_KERNEL)?;
        }
        let bufs = GcBufs {
            items: KVec::from_elem(RelocItem::default(), GC_ITEMS, GFP_KERNEL)?,
            slots,
            read_ok: KVec::from_elem(false, GC_ITEMS, GFP_KERNEL)?,
            submitted: KVec::from_elem(false, GC_ITEMS, GFP_KERNEL)?,
            addrs: KVec::from_elem(None, GC_ITEMS, GFP_KERNEL)?,
            data: Bounce::new(GC_BUF_BLOCKS as usize * BLOCK_SIZE)?,
        };
        let queue = ReclaimQueue::new(name)?;
        Ok(try_pin_init!(Self {
            queue,
            stopping: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
            no_space_timeout_ms: AtomicU64::new(0),
            queued: AtomicU32::new(0),
            pace: PaceQueue::new(),
            shares: WriteShares::new(),
            light_writes: AtomicU64::new(0),
            cost_x1000: AtomicU64::new(COST_DEFAULT),
            free_zones: AtomicU32::new(0),
            data_zones: AtomicU32::new(0),
            reserve: AtomicU32::new(0),
            records: AtomicU32::new(0),
            evacuating: AtomicBool::new(false),
            walk_told: AtomicU64::new(0),
            evac_since <- kernel::new_mutex!(None),
            uncommitted: AtomicU32::new(0),
            runs: AtomicU64::new(0),
            hold_plan: WaitStat::new(),
            hold_end: WaitStat::new(),
            bufs <- kernel::new_mutex!(bufs),
        }? Error))
    }
}
