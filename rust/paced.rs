// SPDX-License-Identifier: GPL-2.0
//! Writes paced to GC wait without a worker.
//!
//! Below GC's urgent level every user write adds its share of GC's work to
//! a debt and takes a ticket (`zvcore::pacing`); a write whose ticket GC
//! has not paid down yet waits. It used to wait in a kernel worker, asleep
//! on the pool's condition variable: under a sustained overwrite every
//! write in flight parked a worker, each woken after every GC batch to take
//! the engine lock and look again — CPU and lock traffic charged to no one,
//! which the other volumes of the pool paid for (`tenants.sh`).
//!
//! Now a write that must wait is *held*: the request goes on the pool's
//! list of held writes ([`ActivePool::paced`], a lock-free list), with its
//! ticket, and whatever was serving it returns (the fast path in the block
//! layer's dispatch context, or the worker). Nothing sleeps. After every
//! GC batch the GC work lets go of the writes whose tickets are paid
//! ([`ActivePool::release_paced`]); each goes to its disk's workqueue
//! (`Request::serve_later`) and is written there, not paced again
//! ([`PoolReq::admitted`]).
//!
//! Nothing else lets them go, so every way GC can stop lets all of them
//! go: a batch without progress (GC stalled), the end of a GC run, the
//! pool stopping, a write held after a run ended kicks GC again. A write
//! also goes once it has waited [`PACE_WAIT_MAX_MS`] (then it waits for
//! space if there is none), looked at after each GC batch: one batch that
//! takes longer (a checkpoint waiting for a zone slot) holds it until the
//! batch ends, where the worker of before gave up after 10 s.

use crate::kwrap::request::Request;
use crate::pool::ActivePool;
use crate::poolreq::PoolReq;
use crate::zvcore::gc::{gc_start_level, pace_permille};
use core::sync::atomic::{fence, Ordering};
use kernel::{
    sync::Arc,
    time::{Instant, Monotonic},
};

/// Pacing debt writers may run ahead of GC, in thousandths of a block: two
/// GC batches. Also the most credit GC can build up ahead of writers.
pub(crate) const DEBT_MAX: u64 = 2 * crate::gcstate::GC_BUF_BLOCKS * 1000;

/// Longest a paced write is held in all; then it goes ahead (and waits for
/// space if there is none).
const PACE_WAIT_MAX_MS: u64 = 10_000;

impl ActivePool {
    /// Pacing of write `rq` of volume `vol`: kicks GC from its start
    /// level; gives `rq` back (`Some`) when it may be written now — above
    /// the urgent level, a light volume's write (under half its fair share
    /// of the recent writes, `Gc::shares`: the heavy writers pay for GC),
    /// or a ticket GC has paid already — and holds it otherwise (`None`:
    /// it is written once [`Self::release_paced`] lets it go). A write
    /// requeued for want of memory after it was paced
    /// (`Request::requeued`) goes at once: its debt was taken. Never
    /// sleeps.
    pub(crate) fn pace_or_hold(
        self: &Arc<Self>,
        vol: u32,
        mut rq: Request<PoolReq>,
    ) -> Option<Request<PoolReq>> {
        if rq.requeued() {
            return Some(rq);
        }
        let g = &self.gc;
        let blocks = u64::from(rq.bytes()) / crate::zvcore::format::BLOCK_SIZE as u64;
        g.shares.note(vol, blocks);
        let (free, total, reserve) = self.levels();
        let permille = pace_permille(free, total, reserve);
        if free <= gc_start_level(total, reserve) || g.evacuating.load(Ordering::Relaxed) {
            self.kick_gc();
        }
        if permille == 0 {
            g.pace.forgive();
            return Some(rq);
        }
        if g.disabled.load(Ordering::Relaxed) || g.stopping.load(Ordering::Acquire) {
            return Some(rq);
        }
        if crate::pace_light() && g.shares.light(vol) {
            g.light_writes.fetch_add(1, Ordering::Relaxed);
            return Some(rq);
        }
        let add = blocks
            .saturating_mul(g.cost_x1000.load(Ordering::Relaxed))
            .saturating_mul(u64::from(permille))
            / 1000;
        // Writes go in the order they took their tickets: none waits for
        // more than the debt queued before it.
        let ticket = g.pace.issue(add);
        if g.pace.admitted(ticket, DEBT_MAX) {
            return Some(rq);
        }
        rq.data_mut().pace = Some((ticket, Instant::<Monotonic>::now()));
        self.paced.push(rq);
        // Ordered against GC's store of what it paid or of `stalled` /
        // `stopping` before it takes the list ([`Self::release_paced`]):
        // either it finds this write there, or this finds its store.
        fence(Ordering::SeqCst);
        // GC may have paid for it, ended its run or begun stopping since the
        // ticket was looked at, and let go of what was held before this
        // write was: look again. Then make sure GC runs (a run that is
        // ending is queued again and lets it go when it ends).
        if g.pace.admitted(ticket, DEBT_MAX)
            || g.stopping.load(Ordering::Acquire)
            || g.stalled.load(Ordering::Acquire)
        {
            self.release_paced(false);
        }
        self.kick_gc();
        None
    }

    /// Lets go of the held writes whose tickets GC has paid, or all of them
    /// (`all`: GC stopped, or ended its run). Also those held
    /// [`PACE_WAIT_MAX_MS`] or longer, and all when GC makes no progress,
    /// is stopping, or space came back. Any context but hard IRQ; never
    /// sleeps.
    pub(crate) fn release_paced(&self, all: bool) {
        let g = &self.gc;
        // See `pace_or_hold`: after what this GC batch paid or stored.
        fence(Ordering::SeqCst);
        let all = all
            || g.stopping.load(Ordering::Acquire)
            || g.stalled.load(Ordering::Acquire)
            || g.disabled.load(Ordering::Relaxed);
        let (free, total, reserve) = self.levels();
        if pace_permille(free, total, reserve) == 0 {
            // Space recovered: the debt is void.
            g.pace.forgive();
        }
        for mut rq in self.paced.take() {
            let Some((ticket, t0)) = rq.data().pace else {
                // Not held by the pacing: cannot happen; let it go.
                rq.data_mut().admitted = true;
                rq.serve_later();
                continue;
            };
            let timed_out =
                u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX) >= PACE_WAIT_MAX_MS;
            if all || timed_out || g.pace.admitted(ticket, DEBT_MAX) {
                self.waits.pace.since(t0);
                let d = rq.data_mut();
                d.pace = None;
                d.admitted = true;
                rq.serve_later();
            } else {
                self.paced.push(rq);
            }
        }
    }
}
