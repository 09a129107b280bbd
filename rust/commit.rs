// SPDX-License-Identifier: GPL-2.0
//! Commits of a pool, in two phases around the engine lock.
//!
//! A commit makes every change queued in the engine durable (a flush of
//! the members for the data, the journal blocks, a flush again), then resets
//! the zones left without valid blocks. It runs in three steps:
//!
//! 1. **prepare** (engine lock): the engine encodes the queued records into
//!    journal blocks and emits its metadata operations, which
//!    [`CommitBuf`] (`commitbuf.rs`) records (operations and block copies,
//!    in a buffer allocated once per pool; nothing is allocated on the way);
//! 2. **I/O** (no engine lock): the recorded operations run in order:
//!    flushes go to every member at once, consecutive journal blocks go out
//!    in one write, a zone reset first waits for the reads in flight in its
//!    zone (`zonereads.rs`). Reads, writes and GC go on meanwhile; what they
//!    queue joins the next commit;
//! 3. **end** (engine lock): the engine records the outcome
//!    (`flush_end`, `reset_end`). A failed journal write fails the engine
//!    (its journal position is unknown: the pool must be re-assembled); a
//!    failed zone reset is retried by a later commit.
//!
//! Commits are serialised by the commit lock, which is always taken before
//! the engine lock and never while holding it. Flushes and writes refused
//! for a full record queue do not queue on it: they wait for the end of
//! the commit running ([`CommitEnds`](crate::waits::CommitEnds)), which may
//! have committed their records (a group commit), and commit themselves
//! only when the lock is free.
//!
//! A checkpoint (when the journal since the last one is long enough, and
//! first after an assembly that found a torn or damaged journal: otherwise
//! the journal goes on where it ended, `zvcore::recovery`) is a full image
//! of the block tables or a delta of what changed: it is written the
//! same way in steps of up to [`COMMIT_BLOCKS`] blocks, each encoded under
//! the engine lock ([`HOLD_BLOCKS`] per hold) and written without it, so
//! reads, writes and GC go on while it is written (Documentation/design.md,
//! "Checkpoints in steps"); between the steps, the journal takes the
//! records queued meanwhile when the queue is half full or a task waits
//! for a commit. Volume operations wait for it (they take the commit lock
//! first, `ActivePool::lock_config`).

use crate::commitbuf::{CommitBuf, Op, COMMIT_BLOCKS, RESETS_PER_ROUND};
use crate::engine::{core_err, EngineState};
use crate::kwrap::{
    bio::{BioBatch, BioOp, Slot},
    noio::NoIo,
    zone::{self, ZoneCond, ZoneOp},
};
use crate::members::{zone_cond, SPB};
use crate::pool::ActivePool;
use crate::zvcore::{self, geom::PoolGeometry};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use pin_init::stack_pin_init;

/// Checkpoint blocks encoded per hold of the engine lock (the engine emits
/// at most 4 more: the commit block and the end of a payload block). A
/// step's blocks are encoded in several such holds, the lock dropped
/// between them, then written together: encoding is CPU work under the
/// lock (28 blocks held it about 10 ms under TCG, the longest hold in a
/// sustained overwrite), and every request waits for it.
const HOLD_BLOCKS: u32 = 7;

/// Whether a step whose buffer holds `used` block slots may encode
/// [`HOLD_BLOCKS`] more before it is written: each block may take two
/// slots (metadata copies), and the buffer has two per commit block.
fn step_has_room(used: usize) -> bool {
    used + 2 * (HOLD_BLOCKS as usize + 4) <= 2 * COMMIT_BLOCKS
}

/// Journal rounds of one commit at most (each up to [`COMMIT_BLOCKS`]).
const MAX_ROUNDS: usize = 8;

/// How long a checkpoint waits at most for a zone slot on a member at its
/// open/active zone limit (its data zones take no new blocks meanwhile, so
/// this is the time for the writes in flight there to complete).
const SLOT_WAIT_MS: u32 = 30_000;

/// The test hook after each checkpoint step but the last, and after each
/// journal commit between steps (no engine lock held).
fn step_delay() {
    let ms = crate::ckpt_step_delay_ms();
    if ms > 0 {
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(i64::from(ms.min(60_000))));
    }
}

/// What the I/O step did: the operations completed before the first
/// failure, and the failure.
struct Done {
    ops: usize,
    err: Option<Error>,
}

impl ActivePool {
    /// Commits everything queued (a flush of the pool's metadata): every
    /// write completed before the call is durable when it returns, and zones
    /// left without valid blocks are reset. Sleeps; call without the engine
    /// lock.
    pub(crate) fn commit(&self) -> Result {
        if self.read_only {
            // Nothing can be queued and nothing may be written.
            return Ok(());
        }
        let _noio = NoIo::enter();
        let mut guard = self.committer.lock();
        self.commit_with(&mut guard)
    }

    /// [`Self::commit`] for a write refused because the engine's record
    /// queue was full when `seen` commits had ended (`PoolStats::commits`,
    /// journal flushes of records): none if another one ends meanwhile —
    /// it made room, and the write plans again (and commits itself if
    /// refused again with no commit since). The writes in flight are
    /// refused together when the queue fills; each used to run a commit of
    /// its own after the one running, one after the other: 4 KiB random
    /// writes 4 x QD32 on a ZNS pool waited up to 15.5 s
    /// (`write_wait_commit`; then 0.19 s). The count of commits run here is
    /// `status` `write_commit_runs`.
    pub(crate) fn commit_for_room(&self, seen: u64) -> Result {
        self.commit_until(|s| s.commits != seen, Some(&self.waits.commit_runs))
    }

    /// A flush: every write completed before the call is durable when it
    /// returns. Done as soon as a commit (any caller's, or a journal commit
    /// between the steps of a checkpoint) has committed every record queued
    /// at the call; else commits itself once no commit runs. Concurrent
    /// flushes share commits (a group commit) without queueing on the
    /// commit lock one after the other.
    pub(crate) fn flush(&self) -> Result {
        if self.read_only {
            return Ok(());
        }
        let target = self.state.lock().engine.stats().records_queued;
        self.commit_until(|s| s.records_committed >= target, None)
    }

    /// Waits until `done` holds for the engine's statistics: each time a
    /// commit ends, or commits itself when the commit lock is free (and
    /// counts that in `runs`). Sleeps; call without the engine lock.
    pub(crate) fn commit_until(
        &self,
        done: impl Fn(&zvcore::pool::PoolStats) -> bool,
        runs: Option<&core::sync::atomic::AtomicU64>,
    ) -> Result {
        if self.read_only {
            return Ok(());
        }
        let _noio = NoIo::enter();
        loop {
            // Read before the check: a commit that ends after it wakes the
            // wait below.
            let gen = self.commit_ends.gen();
            if done(&self.state.lock().engine.stats()) {
                return Ok(());
            }
            if let Some(mut guard) = self.committer.try_lock() {
                if done(&self.state.lock().engine.stats()) {
                    return Ok(());
                }
                if let Some(r) = runs {
                    r.fetch_add(1, Ordering::Relaxed);
                }
                return self.commit_with(&mut guard);
            }
            self.commit_ends.wait(gen);
        }
    }

    /// [`Self::commit`] by the holder of the commit lock (`cb`).
    pub(crate) fn commit_with(&self, cb: &mut CommitBuf) -> Result {
        let r = self.commit_rounds(cb);
        // Waiters for a commit look again (also after a failure: the
        // engine failed, and they find out).
        self.commit_ends.ended();
        r
    }

    fn commit_rounds(&self, cb: &mut CommitBuf) -> Result {
        // What is queued now is the caller's to commit; what writers queue
        // meanwhile is not (it goes into the same journal blocks while
        // there is room, but the commit does not go on for it).
        let mut target = self.state.lock().engine.stats().records_queued;
        // Twice at most: zone resets are journalled (`ZoneReset`) by the
        // first round's maintenance and done by the second's.
        for _ in 0..2 {
            self.commit_records(cb, target)?;
            if !self.maintain(cb)? {
                break;
            }
            target = self.state.lock().engine.stats().records_queued;
        }
        Ok(())
    }

    /// The journal part of a commit, in rounds of at most
    /// [`COMMIT_BLOCKS`] blocks, until the records queued before the
    /// engine's count reached `target` are committed (`records_queued`;
    /// or [`MAX_ROUNDS`]). The first round always runs (a changed
    /// superblock is committed even with nothing queued). Writers keep
    /// queueing: going on until nothing was queued made a flush next to
    /// 4 x QD32 random writes wait for up to 16 rounds (a write and its
    /// fsync took about 330 ms on the ZNS pool, 10 ms on the raw
    /// conventional namespace).
    fn commit_records(&self, cb: &mut CommitBuf, target: u64) -> Result {
        let mut overflowed = false;
        for round in 0..MAX_ROUNDS {
            cb.clear();
            {
                let mut st = self.state.lock();
                if round > 0 && st.engine.stats().records_committed >= target {
                    return Ok(());
                }
                let EngineState {
                    engine, scratch, ..
                } = &mut *st;
                let r = engine
                    .flush_journal_only(scratch, COMMIT_BLOCKS as u64, &mut |op| cb.record(op));
                match r {
                    Ok(Some(0)) => return Ok(()),
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        // A checkpoint is due.
                        drop(st);
                        let r = self.checkpoint_when_slots(cb);
                        // It committed records: flushes waiting may be done.
                        self.commit_ends.ended();
                        match r {
                            // It did not fit (metadata full, logged): the
                            // journal takes the records, once.
                            Err(e) if e == ENOSPC && !overflowed => overflowed = true,
                            r => r?,
                        }
                        continue;
                    }
                    Err(e) => {
                        drop(st);
                        pr_err!("{}: commit refused: {:?}\n", &*self.name, e);
                        return Err(core_err(e));
                    }
                }
            }
            let done = self.run_ops(cb);
            let end = self.state.lock().engine.flush_end(done.err.is_none());
            self.commit_ends.ended();
            if let Some(e) = done.err {
                return Err(e);
            }
            end.map_err(core_err)?;
        }
        Ok(())
    }

    /// A journal commit between two steps of the checkpoint in flight
    /// (`zvcore::pool::ckpt_journal`), when the record queue is half full
    /// or a task waits for a commit: writes and flushes need not wait for
    /// the checkpoint's end. Nothing when the engine declines (the records
    /// wait for the checkpoint's end then). A failed write fails the
    /// engine, as a failed journal commit does.
    fn commit_between_steps(&self, cb: &mut CommitBuf) -> Result {
        cb.clear();
        let r = {
            let mut st = self.state.lock();
            let pending = st.engine.pending_records();
            let due = pending > 0
                && (self.commit_ends.waiting()
                    || pending.saturating_mul(2) >= st.engine.record_capacity());
            if !due {
                return Ok(());
            }
            let EngineState {
                engine, scratch, ..
            } = &mut *st;
            engine.journal_in_checkpoint(scratch, COMMIT_BLOCKS as u64, &mut |op| cb.record(op))
        };
        match r {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                pr_err!("{}: journal commit refused: {:?}\n", &*self.name, e);
                return Err(core_err(e));
            }
        }
        let done = self.run_ops(cb);
        let end = self
            .state
            .lock()
            .engine
            .journal_in_checkpoint_end(done.err.is_none());
        self.commit_ends.ended();
        if let Some(e) = done.err {
            return Err(e);
        }
        end.map_err(core_err)?;
        // (The test hook waits after it too: its waiters are seen done
        // while the checkpoint is still in flight.)
        step_delay();
        Ok(())
    }

    /// [`Self::checkpoint_steps`], retried while a member at its zone limit
    /// has no slot for the checkpoint's zone ([`EBUSY`]: the engine then
    /// stops giving out blocks in that member's data zones so that their
    /// writes in flight drain, and one of them is finished for the slot),
    /// for [`SLOT_WAIT_MS`] at most. Waits without the engine lock: writes
    /// in flight end without the commit lock.
    pub(crate) fn checkpoint_when_slots(&self, cb: &mut CommitBuf) -> Result {
        let mut waited = 0u32;
        let mut ms = 1u32;
        loop {
            match self.checkpoint_steps(cb) {
                Err(e) if e == EBUSY && waited < SLOT_WAIT_MS => {
                    kernel::time::delay::fsleep(kernel::time::Delta::from_millis(i64::from(ms)));
                    waited = waited.saturating_add(ms);
                    ms = ms.saturating_mul(2).min(64);
                }
                Err(e) if e == EBUSY => {
                    self.state.lock().engine.checkpoint_unblock();
                    pr_err!(
                        "{}: commit failed: no zone slot for a checkpoint after {} ms (writes in flight at the members' open/active zone limits)\n",
                        &*self.name,
                        waited
                    );
                    return Err(EBUSY);
                }
                r => return r,
            }
        }
    }

    /// Zone maintenance: finishes of zones whose writes failed, resets of
    /// zones without valid blocks (journalled first, see
    /// `zvcore::pool::Pool::maintenance`), done outside the engine lock.
    /// Returns whether it journalled resets (`ZoneReset` records queued:
    /// the next commit makes them durable, and its maintenance does them).
    fn maintain(&self, cb: &mut CommitBuf) -> Result<bool> {
        cb.clear();
        let journalled = {
            let mut st = self.state.lock();
            let before = st.engine.stats().records_queued;
            st.engine
                .maintenance_plan(&mut |op| cb.record(op), RESETS_PER_ROUND)
                .map_err(core_err)?;
            st.engine.stats().records_queued != before
        };
        if cb.ops.is_empty() {
            return Ok(journalled);
        }
        let done = self.run_ops(cb);
        let mut st = self.state.lock();
        for &(z, readable) in cb.unusable.iter() {
            // Its finish or reset failed: the device made it read-only or
            // offline (logged below, without the engine lock).
            let _ = st.engine.zone_unusable(z, readable);
        }
        for (i, op) in cb.ops.iter().enumerate() {
            if let Op::Reset(z) = *op {
                // Only a reset planned by this round ends here; it cannot
                // fail for another reason.
                let _ = st.engine.reset_end(z, i < done.ops);
            }
        }
        self.note_levels(&st.engine);
        drop(st);
        for &(z, readable) in cb.unusable.iter() {
            pr_warn!(
                "{}: data zone {} is {} on its device: taken out of service{}\n",
                &*self.name,
                z,
                if readable { "read-only" } else { "offline" },
                if readable {
                    "; GC moves its data"
                } else {
                    "; its blocks read as I/O errors until overwritten"
                }
            );
        }
        done.err.map_or(Ok(journalled), Err)
    }

    /// Writes a checkpoint in steps (the caller holds the commit lock,
    /// `cb`): each step is planned under the engine lock and written
    /// without it. A failed write fails the engine (as a failed journal
    /// write: re-assemble the pool); [`ENOSPC`] if the image does not fit
    /// in its set (abandoned, the engine goes on with its metadata full);
    /// [`EBUSY`] if a member has no zone slot for it now (nothing written).
    fn checkpoint_steps(&self, cb: &mut CommitBuf) -> Result {
        cb.clear();
        let (r, was_full) = {
            let mut st = self.state.lock();
            let EngineState {
                engine, scratch, ..
            } = &mut *st;
            let full = engine.metadata_full();
            (
                engine.checkpoint_begin(scratch, &mut |op| cb.record(op)),
                full,
            )
        };
        if let Err(e) = r {
            if e != zvcore::error::Error::Busy {
                pr_err!("{}: checkpoint refused: {:?}\n", &*self.name, e);
            }
            return Err(core_err(e));
        }
        loop {
            let done = self.run_ops(cb);
            if let Some(e) = done.err {
                // Logged by `run_ops`; the engine fails.
                let _ = self.state.lock().engine.checkpoint_end(false);
                return Err(e);
            }
            step_delay();
            if let Err(e) = self.commit_between_steps(cb) {
                // Logged; the engine fails.
                let _ = self.state.lock().engine.checkpoint_end(false);
                return Err(e);
            }
            cb.clear();
            let (r, failed) = loop {
                let (r, failed) = {
                    let mut st = self.state.lock();
                    let EngineState {
                        engine, scratch, ..
                    } = &mut *st;
                    let r = engine.checkpoint_step(scratch, HOLD_BLOCKS, &mut |op| cb.record(op));
                    (r, engine.is_failed())
                };
                // The lock is free here: requests waiting for it go first.
                if !matches!(r, Ok(false)) || !step_has_room(cb.used()) {
                    break (r, failed);
                }
            };
            match r {
                Ok(false) => {}
                Ok(true) => break,
                Err(zvcore::error::Error::Busy) if !failed => {
                    // A delta found its set full and the full checkpoint
                    // that takes over has no zone slot yet: the delta's
                    // zones are finished; the caller retries.
                    let done = self.run_ops(cb);
                    return Err(done.err.unwrap_or(EBUSY));
                }
                Err(e) if !failed => {
                    // The image does not fit in its set: the engine
                    // abandoned the checkpoint and goes on (metadata full);
                    // the set's zones are finished.
                    let done = self.run_ops(cb);
                    let cap = self.state.lock().engine.checkpoint_capacity_blocks();
                    pr_err!(
                        "{}: metadata full: the block tables do not fit in a checkpoint ({} blocks): writes are refused (ENOSPC) until volumes, snapshots or data are deleted or discarded\n",
                        &*self.name,
                        cap
                    );
                    return Err(done.err.unwrap_or_else(|| core_err(e)));
                }
                Err(e) => {
                    pr_err!("{}: checkpoint failed: {:?}\n", &*self.name, e);
                    return Err(core_err(e));
                }
            }
        }
        let done = self.run_ops(cb);
        let mut st = self.state.lock();
        let end = st.engine.checkpoint_end(done.err.is_none());
        self.note_levels(&st.engine);
        let full = st.engine.metadata_full();
        let (used, cap) = (
            st.engine.stats().checkpoint_blocks,
            st.engine.checkpoint_capacity_blocks(),
        );
        drop(st);
        if let Some(e) = done.err {
            return Err(e);
        }
        if full && !was_full {
            pr_err!(
                "{}: metadata nearly full: the last checkpoint used {} of its {} blocks: writes are refused (ENOSPC) until volumes, snapshots or data are deleted or discarded\n",
                &*self.name,
                used,
                cap
            );
        } else if was_full && !full && end.is_ok() {
            pr_info!(
                "{}: metadata space available again (checkpoint of {} of {} blocks): writes are taken\n",
                &*self.name,
                used,
                cap
            );
        }
        end.map_err(core_err)
    }

    /// The I/O step: runs the recorded operations in order, stopping at the
    /// first failure (logged).
    fn run_ops(&self, cb: &mut CommitBuf) -> Done {
        let mut i = 0usize;
        while i < cb.ops.len() {
            let (n, r) = self.run_op(cb, i);
            if let Err(e) = r {
                let what = match cb.ops.get(i) {
                    Some(Op::Flush) => "flush",
                    Some(Op::Reset(_)) => "zone reset",
                    Some(Op::Finish(_)) => "zone finish",
                    _ => "write",
                };
                pr_err!("{}: metadata I/O failed ({}): {:?}\n", &*self.name, what, e);
                self.health.dirty.store(true, Ordering::Release);
                return Done {
                    ops: i,
                    err: Some(e),
                };
            }
            i += n.max(1);
        }
        Done { ops: i, err: None }
    }

    /// Runs operation `i` (with the writes that directly follow it in the
    /// same zone, as one I/O); returns how many operations it covered.
    fn run_op(&self, cb: &mut CommitBuf, i: usize) -> (usize, Result) {
        let Some(op) = cb.ops.get(i).copied() else {
            return (1, Err(EINVAL));
        };
        let geo = match PoolGeometry::new(self.geoms()) {
            Ok(g) => g,
            Err(e) => return (1, Err(core_err(e))),
        };
        match op {
            Op::Flush => (1, self.flush_members(&cb.slots)),
            Op::Reset(z) | Op::Finish(z) => {
                let zop = if matches!(op, Op::Reset(_)) {
                    // A read planned before the zone emptied may still be
                    // reading it.
                    self.zone_reads.wait_idle(z);
                    ZoneOp::Reset
                } else {
                    ZoneOp::Finish
                };
                let r = (|| {
                    let zg = geo.zone(z).ok_or(EINVAL)?;
                    let base = geo.dev_base(zg.dev).ok_or(EINVAL)?;
                    let m = self.members.get(usize::from(zg.dev)).ok_or(EINVAL)?;
                    let sector = (zg.start - base) * SPB;
                    let dev = m.dev().inspect_err(|_| m.meta_error())?;
                    let r = zone::zone_mgmt(&dev, zop, sector, zg.size * SPB);
                    if r.is_err() && !zg.meta {
                        // A data zone the device made read-only or offline
                        // is taken out of service, not a metadata failure.
                        if let Some(c) = zone_cond(&dev, sector).filter(|c| c.unusable()) {
                            if cb.note_unusable(z, c == ZoneCond::ReadOnly) {
                                return Ok(());
                            }
                        }
                    }
                    r.inspect_err(|_| m.meta_error())
                })();
                (1, r)
            }
            Op::Write { addr, slot } => {
                let Some(loc) = geo.locate(addr) else {
                    return (1, Err(EINVAL));
                };
                // The run of writes to the next addresses of the zone.
                let mut n = 1usize;
                while let Some(Op::Write { addr: a, slot: s }) = cb.ops.get(i + n).copied() {
                    let k = n as u64;
                    let same_zone = geo.locate(a).map(|l| l.zone) == Some(loc.zone);
                    if a != addr + k || s != slot + n || !same_zone {
                        break;
                    }
                    n += 1;
                }
                let r = match self.members.get(usize::from(loc.dev)) {
                    Some(m) => m
                        .dev()
                        .and_then(|d| cb.data.write(&d, loc.dev_offset * SPB, slot, n))
                        .inspect_err(|_| m.meta_error()),
                    None => Err(EINVAL),
                };
                (n, r)
            }
        }
    }

    /// Flushes every member's write cache, all at once.
    fn flush_members(&self, slots: &[Slot]) -> Result {
        stack_pin_init!(let batch = BioBatch::new(slots));
        let mut err = Ok(());
        // Submitted flushes, bit per member (a member gone has nothing left
        // to make durable: it is skipped).
        let mut sent = 0u64;
        for (k, m) in self.members.iter().enumerate() {
            if m.is_gone() {
                continue;
            }
            let r = m.dev().and_then(|d| {
                batch
                    .as_ref()
                    .bio(&self.bios, &d, k, BioOp::Flush, 0, 0)
                    .and_then(|b| b.submit())
            });
            if let Err(e) = r {
                err = Err(e);
                break;
            }
            sent |= 1u64.checked_shl(k as u32).unwrap_or(0);
        }
        batch.as_mut().wait();
        for (k, m) in self.members.iter().enumerate() {
            if sent & 1u64.checked_shl(k as u32).unwrap_or(0) == 0 {
                continue;
            }
            if let Err(e) = batch.result(k) {
                m.meta_error();
                err = Err(e);
            }
        }
        err
    }
}
