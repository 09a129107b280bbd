// SPDX-License-Identifier: GPL-2.0
//! Background garbage collection of a pool, driven by the core's policy.
//!
//! One work item per pool on the pool's own `WQ_MEM_RECLAIM` workqueue
//! (`kwrap/workq.rs`): GC is on the writeback path, so it must make progress
//! under memory pressure. It is kicked by writes when free zones fall to the
//! core's start level (`zvcore::gc::gc_start_level`, one above the urgent
//! level) and keeps running while they stay there or a write waits for
//! space. One batch:
//!
//! 1. `gc_begin` (engine lock): the victim zone's live extents and their new
//!    place in the GC stream (allocated from the GC-only zone reserve when
//!    needed, so GC progresses on a full pool);
//! 2. read each extent into a bounce buffer (no lock: the victim cannot be
//!    reset while its batch is in flight);
//! 3. write the copies (zone append where the member has it), without the
//!    engine lock; wait;
//! 4. `gc_end` (lock): block tables updated where the old location is still
//!    current (a user write meanwhile wins); then, once the victim is done
//!    or every [`GC_COMMIT_BATCHES`] batches, a commit (`commit.rs`, its I/O
//!    without the lock): journal written, zones left without valid blocks
//!    reset. Until then the victim keeps its old copies, so a crash loses
//!    nothing.
//!
//! Foreground writes are paced to GC's progress: from the urgent level (one
//! zone below GC's start) each user block written adds a debt of what GC
//! must copy to gain one block (the victim's relocation cost,
//! `zvcore::gc::relocation_cost_x1000`, scaled by
//! `zvcore::gc::pace_permille`: all of it at the urgent level, up to twice
//! it at the reserve), and each block GC relocates pays one back. A write
//! waits until GC has paid all the debt issued before and with it but two
//! GC batches; writes are admitted in the order they took on their debt
//! (tickets, `zvcore::pacing`), so none waits longer than the debt queued
//! before it. Writers run as fast as GC can make room, whatever the zone size and
//! however full the victims are, instead of running into the reserve. A
//! write that still finds no space waits for GC while it makes progress;
//! only when GC cannot free anything does it fail with `ENOSPC`.

use crate::engine::{core_err, RECORD_HIGH_WATER};
use crate::gcstate::{GcBufs, GC_BUF_BLOCKS};
use crate::kwrap::{
    bio::{BioBatch, BioOp},
    noio::NoIo,
};
use crate::lowerio::{landed_addr, submit_bounce};
use crate::members::SPB;
use crate::pool::ActivePool;
use crate::zvcore::{
    error::Error as CoreError, format::BLOCK_SIZE, gc::gc_start_level, pool::COPY_ID_BIT,
};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
    workqueue::{impl_has_work, WorkItem},
};
use pin_init::stack_pin_init;

/// Batches whose relocations one commit covers at most (8 MiB), unless the
/// victim is done first.
const GC_COMMIT_BATCHES: u32 = 8;

/// How long a write that found no space waits for one GC batch.
const NOSPACE_WAIT_MS: u32 = 1000;
/// How often a write queued on a full pool (`no_space_timeout`) looks for
/// space again.
const QUEUED_POLL_MS: u64 = 100;

/// Longest a write that found no space waits for GC while GC makes
/// progress: freeing a zone can take seconds (a nearly full victim on a slow
/// member, a large zone), this is far beyond that.
const NOSPACE_WAIT_MAX_MS: u64 = 60_000;

impl_has_work! {
    impl HasWork<Self> for ActivePool { self.gc_work }
}

impl WorkItem for ActivePool {
    type Pointer = Arc<ActivePool>;

    fn run(this: Arc<ActivePool>) {
        this.gc_run();
        // GC's failed reads and writes, and its commits'.
        this.health_kick();
        // Walks a `status` read's check started meanwhile.
        this.kick_walks();
    }
}

impl ActivePool {
    /// Queues a GC run (no-op if one is queued or the pool is stopping).
    pub(crate) fn kick_gc(self: &Arc<Self>) {
        if self.gc.stopping.load(Ordering::Acquire) || self.gc.disabled.load(Ordering::Relaxed) {
            return;
        }
        self.gc.kicked.store(true, Ordering::Release);
        let _ = self.gc.queue.queue().enqueue::<_, 0>(self.clone());
    }

    /// Stops GC for good and waits for a running batch. Sleeps.
    pub(crate) fn stop_gc(&self) {
        self.gc.stopping.store(true, Ordering::SeqCst);
        self.gc.queue.flush();
        self.gc_cv.notify_all();
        self.release_paced(true);
    }

    /// The GC work: batches while the core says GC is needed; a scrub pass
    /// (`scrub.rs`) when GC has nothing to do — not needed, or its last
    /// batch found nothing to reclaim (then GC is tried again once kicked).
    fn gc_run(&self) {
        let _noio = NoIo::enter();
        // The last batch made no progress, and nothing kicked GC since.
        let mut gc_idle = false;
        loop {
            if self.gc.stopping.load(Ordering::Acquire) || self.gc.disabled.load(Ordering::Relaxed)
            {
                break;
            }
            let queued = self.gc.queued.load(Ordering::Relaxed) > 0
                && self.gc.records.load(Ordering::Relaxed) > 0;
            if self.commit_due() || queued {
                // Records piled up: commit them here, before a writer finds
                // the queue full and has to commit first. Or writers wait
                // for space: the records may be unmappings whose zones a
                // commit lets reset.
                if let Err(e) = self.commit() {
                    pr_err!("{}: background commit failed: {:?}\n", &*self.name, e);
                    break;
                }
                self.note_levels(&self.state.lock().engine);
            }
            // A kick since the last look: GC is tried again.
            if self.gc.kicked.swap(false, Ordering::AcqRel) {
                gc_idle = false;
            }
            if gc_idle || (!self.gc_needed() && !self.gc_cv_waiters()) {
                // Nothing for GC: the time goes to a scrub pass, if one
                // runs, one step at a time.
                if self.scrub_step() {
                    continue;
                }
                break;
            }
            let progress = match self.gc_batch() {
                Ok(p) => p,
                Err(e) => {
                    pr_err!("{}: GC batch failed: {:?}\n", &*self.name, e);
                    false
                }
            };
            self.tell_walk();
            self.gc.stalled.store(!progress, Ordering::SeqCst);
            self.gc_cv.notify_all();
            // Writes held for GC whose debt this batch paid (all of them
            // when it made no progress).
            self.release_paced(!progress);
            if !progress {
                if self.scrub.running() {
                    gc_idle = true;
                    continue;
                }
                break;
            }
        }
        self.gc_cv.notify_all();
        // No GC runs until kicked again (a write held from now on kicks it).
        self.release_paced(true);
    }

    /// Tells the end of a placement walk that moved data (a migration, a
    /// mirrored copy's rebuild or its way home) once: `ZVPOOL_EVENT=walk`
    /// with the volume, whether the walk was of its second copies, and the
    /// bytes moved (a walk that found everything in place, as most of
    /// those an assembly starts do, is not news). Process context, no lock
    /// held (the event is sent after unlocking).
    fn tell_walk(&self) {
        let (name, copy, moved) = {
            let st = self.state.lock();
            let w = st.engine.walk_end();
            let seq = u64::from(w.seq);
            if self.gc.walk_told.swap(seq, Ordering::Relaxed) == seq {
                return;
            }
            let base = w.vol & !COPY_ID_BIT;
            let Some(v) = st.engine.volume(base) else {
                return;
            };
            (v.name, w.vol != base, w.moved_blocks)
        };
        let name = core::str::from_utf8(name.as_bytes()).unwrap_or("?");
        self.event(
            "walk",
            &[
                ("ZVPOOL_VOLUME", &fmt!("{}", name)),
                ("ZVPOOL_COPY", &fmt!("{}", u8::from(copy))),
                (
                    "ZVPOOL_MOVED_BYTES",
                    &fmt!("{}", moved.saturating_mul(BLOCK_SIZE as u64)),
                ),
            ],
        );
    }

    /// Whether GC should run now: free zones at the core's start level
    /// (`zvcore::gc::gc_start_level`, one above the urgent level). GC waits
    /// that long on purpose: the longer a zone waits, the more of its blocks
    /// are overwritten and need no copy (premature cleaning of hot data costs
    /// write amplification). Foreground writes are paced from the same level
    /// down ([`Self::pace_or_hold`]).
    pub(crate) fn gc_needed(&self) -> bool {
        let (free, total, reserve) = self.levels();
        free <= gc_start_level(total, reserve) || self.gc.evacuating.load(Ordering::Relaxed)
    }

    /// Notes the engine's free zones for the lock-free readers (engine lock
    /// held: after every call that can change them).
    pub(crate) fn note_levels(&self, e: &crate::engine::Engine) {
        let a = e.alloc();
        // Free zones of members that take blocks (not those added or
        // evacuated): what writers and GC can use.
        self.gc
            .free_zones
            .store(a.usable_free_zones(), Ordering::Relaxed);
        self.gc
            .evacuating
            .store(e.gc_background(), Ordering::Relaxed);
        self.gc.data_zones.store(a.data_zones(), Ordering::Relaxed);
        self.gc
            .reserve
            .store(a.config().gc_reserve, Ordering::Relaxed);
        let records = u32::try_from(e.pending_records()).unwrap_or(u32::MAX);
        self.gc.records.store(records, Ordering::Relaxed);
        self.health
            .note_space(a.used_blocks(), e.geom().data_capacity_blocks());
    }

    /// Whether enough journal records are queued for a background commit
    /// ([`RECORD_HIGH_WATER`]); the GC worker runs it when kicked.
    pub(crate) fn commit_due(&self) -> bool {
        self.gc.records.load(Ordering::Relaxed) as usize >= RECORD_HIGH_WATER
    }

    /// Free zones, data zones and the GC reserve, without the engine lock.
    pub(crate) fn levels(&self) -> (u32, u32, u32) {
        let g = &self.gc;
        (
            g.free_zones.load(Ordering::Relaxed),
            g.data_zones.load(Ordering::Relaxed),
            g.reserve.load(Ordering::Relaxed),
        )
    }

    /// After a batch (engine lock held): `moved` blocks pay the writers'
    /// debt, a zone freed without copying forgives it, and the next
    /// victim's relocation cost is noted.
    fn gc_paid(&self, engine: &crate::engine::Engine, moved: u64, freed: bool) {
        let g = &self.gc;
        g.cost_x1000
            .store(engine.gc_cost_x1000(), Ordering::Relaxed);
        if freed && moved == 0 {
            g.pace.forgive();
        }
        g.pace
            .pay(moved.saturating_mul(1000), crate::paced::DEBT_MAX);
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
        // Each call scans a bounded part of the block tables for the
        // victim's blocks; one that found none there says so
        // (`gc_scan_more`) and the next goes on, the lock dropped in
        // between so that requests are never held behind a long scan.
        // The placement walk under way before the batch: one that ends
        // and starts the next volume's (several placed volumes, a
        // mirrored volume's two tables) is progress, or GC would stop
        // until the next write kicks it.
        let mut walk_before = None;
        let mut begin = |b: &mut GcBufs| loop {
            let mut st = self.state.lock();
            let t0 = Instant::<Monotonic>::now();
            if walk_before.is_none() {
                walk_before = Some(st.engine.migration().map(|m| (m.vol, m.done)));
            }
            let r = st.engine.gc_begin_limited(&mut b.items, GC_BUF_BLOCKS);
            let more = r == Ok(0) && st.engine.gc_scan_more();
            self.note_levels(&st.engine);
            drop(st);
            self.gc.hold_plan.since(t0);
            if !more || self.gc.stopping.load(Ordering::Relaxed) {
                break r;
            }
        };
        let free_before = self.levels().0;
        let mut r = begin(b);
        if r == Err(CoreError::Busy) {
            // Record queue full or a commit due: commit and retry.
            self.commit()?;
            r = begin(b);
        }
        let n = match r {
            Ok(0) => {
                // Nothing live left in the victim (or no victim): what
                // remains is committing and resetting empty zones.
                self.commit()?;
                self.gc.runs.fetch_add(1, Ordering::Relaxed);
                let st = self.state.lock();
                let freed = self.levels().0 > free_before;
                self.gc_paid(&st.engine, 0, freed);
                let walk = st.engine.migration().map(|m| (m.vol, m.done));
                let next_walk =
                    walk_before.is_some_and(|w| w != walk) && walk.is_some_and(|(_, done)| !done);
                return Ok(freed || next_walk);
            }
            Ok(n) => n,
            Err(CoreError::NoSpace) | Err(CoreError::Busy) => return Ok(false),
            Err(e) => return Err(core_err(e)),
        };
        let items = b.items.get(..n).ok_or(EINVAL)?;
        let bs = BLOCK_SIZE;
        // Some blocks of the victim could not be read: give it up for now.
        let mut unreadable = false;
        for f in Iterator::chain(b.read_ok.iter_mut(), b.submitted.iter_mut()) {
            *f = false;
        }
        // Read the live extents of the victim, in parallel (no lock: the
        // victim is not reset while its batch is in flight).
        {
            let data = b.data.lend();
            stack_pin_init!(let batch = BioBatch::new(&b.slots));
            {
                let mut off = 0usize;
                for (k, it) in items.iter().enumerate() {
                    let bytes = it.dst.len as usize * bs;
                    // (`read`: a mirrored volume's lost copy is read from
                    // the other one.)
                    let r = self.locate_addr(it.read).and_then(|(m, sector)| {
                        let (set, op) = (&self.bios, BioOp::Read);
                        submit_bounce(batch.as_ref(), set, m, k, op, sector, data, off, bytes)
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
                        self.io_error("GC read", it.read, it.dst.len, e);
                        unreadable = true;
                        if let Some(f) = b.read_ok.get_mut(k) {
                            *f = false;
                        }
                    }
                }
            }
        }
        // Write the copies, without the engine lock (regular writes into a
        // sequential zone under the write-order lock, like user writes).
        {
            let data = b.data.lend();
            stack_pin_init!(let batch = BioBatch::new(&b.slots));
            {
                // GC zones take only GC writes, one batch at a time: no
                // engine lock is needed to keep their order.
                let _order = self.order_for(items.iter().map(|it| (it.dst.addr, it.dst.append)));
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
                    let r = self.locate_addr(it.dst.addr).and_then(|(m, sector)| {
                        let set = &self.bios;
                        submit_bounce(batch.as_ref(), set, m, k, op, sector, data, at, bytes)
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
        let (moved, skipped, victim_done) = {
            let mut st = self.state.lock();
            let t0 = Instant::<Monotonic>::now();
            let moved = st
                .engine
                .gc_end(items, b.addrs.get(..n).ok_or(EINVAL)?)
                .map_err(core_err)?;
            let skipped = if unreadable {
                let v = st.engine.gc_victim();
                st.engine.gc_skip_victim();
                v
            } else {
                None
            };
            self.note_levels(&st.engine);
            let e = &st.engine;
            let done = e
                .gc_victim()
                .and_then(|v| e.alloc().zone(v))
                .is_none_or(|z| z.valid() == 0);
            drop(st);
            self.gc.hold_end.since(t0);
            (moved, skipped, done)
        };
        // Commit when the victim is done (its reset needs the commit) or
        // every few batches: one commit per MiB of relocation made GC a
        // commit storm (about 27 commits/s).
        let uncommitted = self.gc.uncommitted.fetch_add(1, Ordering::Relaxed) + 1;
        if victim_done || moved == 0 || uncommitted >= GC_COMMIT_BATCHES {
            self.gc.uncommitted.store(0, Ordering::Relaxed);
            self.commit()?;
        }
        self.gc.runs.fetch_add(1, Ordering::Relaxed);
        let st = self.state.lock();
        let freed = self.levels().0 > free_before;
        self.gc_paid(&st.engine, moved, freed);
        drop(st);
        if let Some(z) = skipped {
            pr_warn!(
                "{}: GC: zone {} has blocks that cannot be read; it is skipped and retried later\n",
                &*self.name,
                z
            );
        }
        Ok(moved > 0 || freed)
    }

    /// A write found no space: waits for GC while it makes progress. Returns
    /// `true` to retry the write, `false` when GC cannot free anything (a
    /// batch made no progress, GC is disabled or stopping), on a signal, or
    /// after [`NOSPACE_WAIT_MAX_MS`] in all (`since`: when the write first
    /// found no space). Called with the engine lock held (through `guard`),
    /// which the wait releases.
    pub(crate) fn wait_for_space(
        self: &Arc<Self>,
        guard: &mut crate::engine::EngineLock<'_>,
        since: &mut Option<Instant<Monotonic>>,
    ) -> bool {
        if self.gc.disabled.load(Ordering::Relaxed) || self.gc.stopping.load(Ordering::Acquire) {
            return false;
        }
        match since {
            Some(t) => {
                let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
                if self.gc.stalled.load(Ordering::Acquire) {
                    // GC can free nothing: fail, or wait for space from
                    // outside (a member added, a discard) as long as the
                    // pool's `no_space_timeout` says (dm-thin's
                    // `no_space_timeout`).
                    if ms >= self.gc.no_space_timeout_ms.load(Ordering::Relaxed) {
                        return false;
                    }
                    // A queued write tells `full` as a refused one does.
                    self.health.note_refused();
                    return self.wait_queued(guard);
                } else if ms >= NOSPACE_WAIT_MAX_MS {
                    pr_err!(
                        "{}: GC freed no space for a write in {} s\n",
                        &*self.name,
                        ms / 1000
                    );
                    return false;
                }
            }
            None => *since = Some(Instant::<Monotonic>::now()),
        }
        self.gc.stalled.store(false, Ordering::Release);
        self.space_waiters.fetch_add(1, Ordering::AcqRel);
        self.kick_gc();
        let t0 = Instant::<Monotonic>::now();
        let r = guard.wait_timeout(&self.gc_cv, NOSPACE_WAIT_MS);
        self.space_waiters.fetch_sub(1, Ordering::AcqRel);
        self.waits.space.since(t0);
        !self.gc.stopping.load(Ordering::Acquire)
            && !matches!(r, kernel::sync::CondVarTimeoutResult::Signal { .. })
    }

    /// A write queued on a full pool (`no_space_timeout`): waits one
    /// [`QUEUED_POLL_MS`] whatever GC signals meanwhile (a GC run that
    /// finds nothing signals at once: waking on it would spin), then kicks
    /// GC once, which commits what a discard unmapped (its zones are
    /// reset then) and collects what it can. Whether to try again.
    fn wait_queued(self: &Arc<Self>, guard: &mut crate::engine::EngineLock<'_>) -> bool {
        let t0 = Instant::<Monotonic>::now();
        self.space_waiters.fetch_add(1, Ordering::AcqRel);
        self.gc.queued.fetch_add(1, Ordering::AcqRel);
        let mut ok = true;
        loop {
            let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            if ms >= QUEUED_POLL_MS || self.gc.stopping.load(Ordering::Acquire) {
                break;
            }
            let left = u32::try_from(QUEUED_POLL_MS - ms).unwrap_or(1);
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                guard.wait_timeout(&self.gc_cv, left)
            {
                ok = false;
                break;
            }
        }
        self.space_waiters.fetch_sub(1, Ordering::AcqRel);
        self.gc.queued.fetch_sub(1, Ordering::AcqRel);
        self.waits.space.since(t0);
        self.gc.stalled.store(false, Ordering::Release);
        self.kick_gc();
        ok && !self.gc.stopping.load(Ordering::Acquire)
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
