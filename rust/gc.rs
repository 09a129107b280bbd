// SPDX-License-Identifier: GPL-2.0
//! Background garbage collection of a pool, driven by the core's policy.
//!
//! One work item per pool on the pool's own `WQ_MEM_RECLAIM` workqueue
//! (`kwrap/workq.rs`): GC is on the writeback path, so it must make progress
//! under memory pressure. It is kicked by writes when free zones fall to the
//! core's urgent level (`zvcore::gc::urgent_level`, plus one) and keeps
//! running while they stay there or a write waits for space. One batch:
//!
//! 1. `gc_begin` (engine lock): the victim zone's live extents and their new
//!    place in the GC stream (allocated from the GC-only zone reserve when
//!    needed, so GC progresses on a full pool);
//! 2. read each extent into a bounce buffer (no lock: the victim cannot be
//!    reset while its batch is in flight);
//! 3. write the copies (zone append where the member has it), submitted under
//!    the lock like user writes so regular writes keep zone order; wait;
//! 4. `gc_end` + commit (lock): block tables updated where the old location
//!    is still current (a user write meanwhile wins), journal written, and
//!    zones left without valid blocks reset.
//!
//! Foreground writes are throttled smoothly as free zones approach the
//! reserve (`zvcore::gc::throttle_permille`: a short sleep per write, growing
//! quadratically), and a write that finds no space waits for GC batches (each
//! frees at most one zone's worth) while they make progress; only when GC
//! cannot free anything does it fail with `ENOSPC`.

use crate::datapath::landed_addr;
use crate::kwrap::{
    bio::{BioBatch, BioOp, Slot},
    metaio::Bounce,
    noio::NoIo,
    workq::ReclaimQueue,
};
use crate::pool::{core_err, ActivePool, SPB};
use crate::zvcore::{
    error::Error as CoreError,
    format::BLOCK_SIZE,
    gc::{throttle_permille, urgent_level, Urgency},
    pool::RelocItem,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::{impl_has_work, WorkItem},
};
use pin_init::stack_pin_init;

/// Most relocation items per GC batch (a fragmented victim has many
/// one-block extents).
const GC_ITEMS: usize = 256;

/// Copy buffer of a GC batch, in blocks (1 MiB): the batch's budget.
const GC_BUF_BLOCKS: u64 = 256;

/// Longest foreground throttle sleep per write, in microseconds (at the
/// reserve; zero above the background level).
const THROTTLE_MAX_US: u64 = 2000;

/// How long a write that found no space waits for one GC batch.
const NOSPACE_WAIT_MS: u32 = 1000;

/// GC batches a write that found no space waits for before giving up.
const NOSPACE_TRIES: u32 = 64;

/// GC state of a pool.
#[pin_data]
pub(crate) struct Gc {
    queue: ReclaimQueue,
    /// No more GC runs (the pool is stopping).
    stopping: AtomicBool,
    /// GC disabled by the administrator (status/testing: `gc` attribute).
    pub(crate) disabled: AtomicBool,
    /// The last batch made no progress: nothing to reclaim.
    stalled: AtomicBool,
    /// Batches run.
    pub(crate) runs: AtomicU64,
    /// Time foreground writes spent throttled or waiting for GC (µs).
    pub(crate) throttled_us: AtomicU64,
    /// Buffers of the batch in flight; only the GC work uses them.
    #[pin]
    bufs: Mutex<GcBufs>,
}

/// What one GC batch works in.
struct GcBufs {
    items: KVec<RelocItem>,
    slots: KVec<Slot>,
    /// Per item: its source was read.
    read_ok: KVec<bool>,
    /// Per item: its copy was submitted.
    submitted: KVec<bool>,
    /// Per item: where its copy landed.
    addrs: KVec<Option<u64>>,
    /// The copies, item after item.
    data: Bounce,
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
            runs: AtomicU64::new(0),
            throttled_us: AtomicU64::new(0),
            bufs <- kernel::new_mutex!(bufs),
        }? Error))
    }
}

impl_has_work! {
    impl HasWork<Self> for ActivePool { self.gc_work }
}

impl WorkItem for ActivePool {
    type Pointer = Arc<ActivePool>;

    fn run(this: Arc<ActivePool>) {
        this.gc_run();
    }
}

impl ActivePool {
    /// Queues a GC run (no-op if one is queued or the pool is stopping).
    pub(crate) fn kick_gc(self: &Arc<Self>) {
        if self.gc.stopping.load(Ordering::Acquire) || self.gc.disabled.load(Ordering::Relaxed) {
            return;
        }
        let _ = self.gc.queue.queue().enqueue(self.clone());
    }

    /// Stops GC for good and waits for a running batch. Sleeps.
    pub(crate) fn stop_gc(&self) {
        self.gc.stopping.store(true, Ordering::Release);
        self.gc.queue.flush();
        self.gc_cv.notify_all();
    }

    /// The GC work: batches while the core says GC is needed.
    fn gc_run(&self) {
        let _noio = NoIo::enter();
        loop {
            if self.gc.stopping.load(Ordering::Acquire) || self.gc.disabled.load(Ordering::Relaxed)
            {
                break;
            }
            if !self.gc_needed() && !self.gc_cv_waiters() {
                break;
            }
            let progress = match self.gc_batch() {
                Ok(p) => p,
                Err(e) => {
                    pr_err!("{}: GC batch failed: {:?}\n", &*self.name, e);
                    false
                }
            };
            self.gc.stalled.store(!progress, Ordering::Release);
            self.gc_cv.notify_all();
            if !progress {
                break;
            }
        }
        self.gc_cv.notify_all();
    }

    /// Whether GC should run now: free zones at the core's urgent level (or
    /// one above). GC waits that long on purpose: the longer a zone waits,
    /// the more of its blocks are overwritten and need no copy (premature
    /// cleaning of hot data costs write amplification). Foreground writes are
    /// throttled from the background level down ([`Self::throttle`]).
    fn gc_needed(&self) -> bool {
        let st = self.state.lock();
        let a = st.engine.alloc();
        a.free_zones() <= urgent_level(a.data_zones(), a.config().gc_reserve).saturating_add(1)
    }

    /// Whether a write is waiting for space.
    fn gc_cv_waiters(&self) -> bool {
        self.space_waiters.load(Ordering::Acquire) > 0
    }

    /// One GC batch. Returns whether it made progress (blocks moved or zones
    /// freed).
    fn gc_batch(&self) -> Result<bool> {
        let mut guard = self.gc.bufs.lock();
        let b = &mut *guard;
        let (n, free_before) = {
            let mut st = self.state.lock();
            let free_before = st.engine.free_zones();
            let mut r = st.engine.gc_begin_limited(&mut b.items, GC_BUF_BLOCKS);
            if r == Err(CoreError::Busy) {
                // Record queue full or a commit due: commit and retry.
                self.commit(&mut st)?;
                r = st.engine.gc_begin_limited(&mut b.items, GC_BUF_BLOCKS);
            }
            match r {
                Ok(0) => {
                    // Nothing live left in the victim (or no victim): what
                    // remains is committing and resetting empty zones.
                    self.commit(&mut st)?;
                    self.gc.runs.fetch_add(1, Ordering::Relaxed);
                    return Ok(st.engine.free_zones() > free_before);
                }
                Ok(n) => (n, free_before),
                Err(CoreError::NoSpace) | Err(CoreError::Busy) => return Ok(false),
                Err(e) => return Err(core_err(e)),
            }
        };
        let items = b.items.get(..n).ok_or(EINVAL)?;
        let bs = BLOCK_SIZE;
        for f in Iterator::chain(b.read_ok.iter_mut(), b.submitted.iter_mut()) {
            *f = false;
        }
        // Read the live extents of the victim, in parallel (no lock: the
        // victim is not reset while its batch is in flight).
        {
            let data = b.data.lend();
            stack_pin_init!(let batch = BioBatch::new(&b.slots));
            {
                let st = self.state.lock();
                let mut off = 0usize;
                for (k, it) in items.iter().enumerate() {
                    let bytes = it.dst.len as usize * bs;
                    let r = self
                        .locate(&st.engine, it.src.addr)
                        .and_then(|(m, sector)| {
                            let mut bio = batch.as_ref().bio(
                                &self.bios,
                                &m.dev,
                                k,
                                BioOp::Read,
                                sector,
                                bytes / bs + 1,
                            )?;
                            if !bio.add_bounce(data, off, bytes)? {
                                return Err(EIO);
                            }
                            bio.submit()
                        });
                    if let (Ok(()), Some(f)) = (r, b.read_ok.get_mut(k)) {
                        *f = true;
                    }
                    off += bytes;
                }
            }
            batch.as_mut().wait();
            for (k, it) in items.iter().enumerate() {
                let ok = b.read_ok.get(k).copied().unwrap_or(false);
                if ok {
                    if let Err(e) = batch.result(k) {
                        self.io_error("GC read", it.src.addr, it.dst.len, e);
                        if let Some(f) = b.read_ok.get_mut(k) {
                            *f = false;
                        }
                    }
                }
            }
        }
        // Write the copies, submitted under the lock like user writes.
        {
            let data = b.data.lend();
            stack_pin_init!(let batch = BioBatch::new(&b.slots));
            {
                let st = self.state.lock();
                let mut off = 0usize;
                for (k, it) in items.iter().enumerate() {
                    let bytes = it.dst.len as usize * bs;
                    let at = off;
                    off += bytes;
                    if !b.read_ok.get(k).copied().unwrap_or(false) {
                        continue;
                    }
                    let op = if it.dst.append {
                        BioOp::ZoneAppend
                    } else {
                        BioOp::Write
                    };
                    let r = self
                        .locate(&st.engine, it.dst.addr)
                        .and_then(|(m, sector)| {
                            let mut bio = batch.as_ref().bio(
                                &self.bios,
                                &m.dev,
                                k,
                                op,
                                sector,
                                bytes / bs + 1,
                            )?;
                            if !bio.add_bounce(data, at, bytes)? {
                                return Err(EIO);
                            }
                            bio.submit()
                        });
                    match r {
                        Ok(()) => {
                            if let Some(f) = b.submitted.get_mut(k) {
                                *f = true;
                            }
                        }
                        Err(e) => pr_err!("{}: GC write not submitted: {:?}\n", &*self.name, e),
                    }
                }
            }
            batch.as_mut().wait();
            let st = self.state.lock();
            for (k, it) in items.iter().enumerate() {
                let mut at = None;
                if b.submitted.get(k).copied().unwrap_or(false) {
                    match batch.result(k) {
                        Ok(s) => {
                            at = landed_addr(&st.engine, it.dst.zone, it.dst.append, it.dst.addr, s)
                        }
                        Err(e) => self.io_error("GC write", it.dst.addr, it.dst.len, e),
                    }
                }
                if let Some(a) = b.addrs.get_mut(k) {
                    *a = at;
                }
            }
        }
        let mut st = self.state.lock();
        let moved = st
            .engine
            .gc_end(items, b.addrs.get(..n).ok_or(EINVAL)?)
            .map_err(core_err)?;
        self.commit(&mut st)?;
        self.gc.runs.fetch_add(1, Ordering::Relaxed);
        Ok(moved > 0 || st.engine.free_zones() > free_before)
    }

    /// Foreground throttle before a write: kicks GC when it is needed and
    /// sleeps a little when free zones approach the reserve.
    pub(crate) fn throttle(self: &Arc<Self>) {
        let (permille, urgency) = {
            let st = self.state.lock();
            let a = st.engine.alloc();
            (
                throttle_permille(a.free_zones(), a.data_zones(), a.config().gc_reserve),
                st.engine.gc_urgency(),
            )
        };
        if urgency == Urgency::Idle {
            return;
        }
        if self.gc_needed() {
            self.kick_gc();
        }
        if permille == 0 || self.gc.disabled.load(Ordering::Relaxed) {
            return;
        }
        let us = THROTTLE_MAX_US * u64::from(permille.min(1000)) / 1000;
        if us > 0 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_micros(us as i64));
            self.gc.throttled_us.fetch_add(us, Ordering::Relaxed);
        }
    }

    /// A write found no space: waits for GC while it makes progress. Returns
    /// `true` to retry the write, `false` when GC cannot free anything.
    /// Called with the engine lock held (through `guard`), which the wait
    /// releases.
    pub(crate) fn wait_for_space(
        self: &Arc<Self>,
        guard: &mut kernel::sync::MutexGuard<'_, crate::pool::EngineState>,
        tries: &mut u32,
    ) -> bool {
        if self.gc.disabled.load(Ordering::Relaxed) || *tries >= NOSPACE_TRIES {
            return false;
        }
        if *tries > 0 && self.gc.stalled.load(Ordering::Acquire) {
            return false;
        }
        *tries += 1;
        self.gc.stalled.store(false, Ordering::Release);
        self.space_waiters.fetch_add(1, Ordering::AcqRel);
        self.kick_gc();
        let t0 = kernel::time::Instant::<kernel::time::Monotonic>::now();
        let _ = self
            .gc_cv
            .wait_interruptible_timeout(guard, kernel::time::msecs_to_jiffies(NOSPACE_WAIT_MS));
        self.space_waiters.fetch_sub(1, Ordering::AcqRel);
        let waited = t0.elapsed().as_micros_ceil();
        self.gc
            .throttled_us
            .fetch_add(u64::try_from(waited).unwrap_or(0), Ordering::Relaxed);
        !self.gc.stopping.load(Ordering::Acquire)
    }

    /// Blocks per GC item: what every member takes in one zone append.
    pub(crate) fn gc_item_blocks(limits: &crate::kwrap::bdev::IoLimits) -> u64 {
        let mut b = crate::zvcore::pool::MAX_GC_ITEM;
        if limits.max_zone_append_sectors != 0 {
            b = b.min(u64::from(limits.max_zone_append_sectors) / SPB);
        }
        b.max(1)
    }
}
