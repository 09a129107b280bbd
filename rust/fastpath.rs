// SPDX-License-Identifier: GPL-2.0
//! The asynchronous data path: reads and plain writes (both copies of a
//! mirrored volume's) served in the block layer's dispatch context,
//! without a worker per request. A mirrored volume's read that fails here
//! is requeued for the slow path, which reads the other copy.
//!
//! `queue_rq` offers every request to [`ActivePool::read_fast`] /
//! [`ActivePool::write_fast`] (through `poolvol.rs`). They plan under the
//! engine lock (never waiting for I/O), submit the lower bios with the
//! request's own pages (`Request::into_async`) and return; nothing waits
//! for the bios there, which is what makes this safe inside a task's
//! `submit_bio` (the bios then go out when it returns, as dm's do). The
//! last lower completion (`io_done`, often hard IRQ):
//!
//! - READ: drops the read's per-zone counts (`zonereads.rs`) and completes
//!   the request (`blk_mq_complete_request`: the upper layer's completion
//!   runs on the submitting CPU);
//! - WRITE (a mirrored volume's: both copies' bios, ended together by
//!   `end_copies`): the block-table update needs the engine lock, so the request is
//!   pushed on the pool's completion list (`kwrap::request::ReqList`) and
//!   the completion work (one per pool, `WQ_MEM_RECLAIM`) ends every
//!   request on the list under one acquisition of the lock (`write_end`),
//!   then completes them — one wake-up serves many writes (dm-thin's
//!   deferred list).
//!
//! Everything that may wait goes the slow way, on the disk's workqueue
//! (`datapath.rs`): flushes and FUA writes (a commit), discards, writes that
//! find no space, reads and writes whose plan does not cover the request at
//! once. A write paced to GC is held without a worker and let go to the
//! slow way once GC has paid for it (`paced.rs`).

use crate::datapath::{end_copies, end_plan, write_slots};
use crate::kwrap::{
    bio::BioOp,
    noio::NoIo,
    request::{Request, Status, ASYNC_SLOTS},
};
use crate::lowerio::{submit_range, ReqData, RqData, Skip};
use crate::members::SPB;
use crate::pool::ActivePool;
use crate::poolreq::{Kind, PoolReq};
use crate::volume::end_request;
use crate::zvcore::{
    format::BLOCK_SIZE,
    pool::{ReadRun, MAX_PLAN_EXTENTS},
};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::Arc,
    workqueue::{impl_has_work, WorkItem},
};

/// Bytes per block.
const BS: u64 = BLOCK_SIZE as u64;

/// Writes ended per acquisition of the engine lock by the completion work.
const END_BATCH: usize = 32;

/// Requeues a failed read of a mirrored volume may have (counted with
/// those for want of memory, `volume::end_request`) before it fails here.
const COPY_RETRY_MAX: u16 = 8;

impl ActivePool {
    /// Serves read `rq` of volume `vol` asynchronously, or hands it back
    /// (`Some`) when its plan does not fit one request's slots.
    pub(crate) fn read_fast(&self, vol: u32, mut rq: Request<PoolReq>) -> Option<Request<PoolReq>> {
        let _noio = NoIo::enter();
        let (lba, n) = (rq.sector() / SPB, u64::from(rq.bytes()) / BS);
        let mut runs = [ReadRun::default(); ASYNC_SLOTS];
        // A mirrored volume's read that failed here: the slow path reads
        // the other copy of what the first cannot give (`read`).
        if core::mem::take(&mut rq.data_mut().copy_retry) {
            return Some(rq);
        }
        rq.data_mut().start(Kind::Read, vol);
        {
            let st = self.state.lock_read();
            rq.data_mut().mirrored = st.engine.copy_of(vol).is_some();
            let cnt = match st.engine.read_plan(vol, lba, n, &mut runs) {
                Ok(c) => c,
                Err(_) => return Some(rq),
            };
            let covered: u64 = runs.iter().take(cnt).map(|r| r.len).sum();
            if cnt == 0 || covered != n {
                return Some(rq);
            }
            let geo = st.engine.geom();
            let zone_of = |a: u64| geo.locate(a).map(|l| l.zone);
            let d = rq.data_mut();
            for (k, run) in runs.iter().take(cnt).enumerate() {
                let Some(a) = run.addr else {
                    continue;
                };
                let (Some(first), Some(last)) = (zone_of(a), zone_of(a + run.len.max(1) - 1))
                else {
                    // Cannot happen for a planned run; the slow path reports it.
                    self.put_zones(d);
                    return Some(rq);
                };
                // Counted before the lock is dropped: a reset of the zone
                // waits for this read.
                self.zone_reads.get(first, last);
                if let (Some(z), Some(r)) = (d.zones.get_mut(d.nzones), d.runs.get_mut(k)) {
                    *z = (first, last);
                    *r = (a, run.len);
                    d.nzones += 1;
                }
            }
        }
        let mut err = None;
        for run in runs.iter().filter(|r| r.addr.is_none() && r.len > 0) {
            let at = ((run.lba - lba) * BS) as usize;
            let r = RqData(&rq).parts(at, (run.len * BS) as usize, |seg, so, l| seg.zero(so, l));
            if let Err(e) = r {
                err = Some(e);
                break;
            }
        }
        rq.data_mut().err = err;
        let mut aio = rq.into_async();
        for (k, run) in runs.iter().enumerate() {
            let Some(a) = run.addr else {
                continue;
            };
            if err.is_some() || run.len == 0 {
                break;
            }
            let r = self.locate_addr(a).and_then(|(m, sector)| {
                let dev = m.dev()?;
                let at = ((run.lba - lba) * BS) as usize;
                let io = RqData(aio.request());
                submit_range(
                    &self.name,
                    m,
                    BioOp::Read,
                    sector,
                    at,
                    (run.len * BS) as usize,
                    &io,
                    |s, nr| aio.bio(&self.bios, &dev, k, BioOp::Read, s, nr),
                )
            });
            match r {
                Ok(()) => {
                    if let Some(f) = aio.data_mut().submitted.get_mut(k) {
                        *f = true;
                    }
                }
                Err(e) => {
                    err = Some(e);
                    aio.data_mut().err = err;
                }
            }
        }
        aio.go();
        None
    }

    /// Drops the zone counts of a read.
    fn put_zones(&self, d: &mut PoolReq) {
        for &(first, last) in d.zones.iter().take(d.nzones) {
            self.zone_reads.put(first, last);
        }
        d.nzones = 0;
    }

    /// Serves write `rq` of volume `vol` asynchronously, or hands it back
    /// (`Some`) when it needs the slow path: FUA, pacing, no space, a full
    /// record queue.
    pub(crate) fn write_fast(
        self: &Arc<Self>,
        vol: u32,
        rq: Request<PoolReq>,
    ) -> Option<Request<PoolReq>> {
        // FUA, or a mirrored write to write again synchronously (it was
        // paced before).
        if rq.is_fua() || rq.data().copy_rewrite {
            return Some(rq);
        }
        // Held for GC (`None`), or written now; handed back, it goes the
        // slow way without being paced again.
        let rq = self.pace_or_hold(vol, rq)?;
        self.write_async(vol, rq).map(|mut r| {
            r.data_mut().admitted = true;
            r
        })
    }

    /// [`Self::write_fast`] of a write already paced (a held write GC let
    /// go, on the worker: it no longer parks the worker while its bios are
    /// in flight). Hands it back (`Some`) when it needs the slow path.
    pub(crate) fn write_async(
        self: &Arc<Self>,
        vol: u32,
        mut rq: Request<PoolReq>,
    ) -> Option<Request<PoolReq>> {
        if rq.is_fua() {
            return Some(rq);
        }
        let _noio = NoIo::enter();
        let (lba, n) = (rq.sector() / SPB, u64::from(rq.bytes()) / BS);
        // A mirrored volume: both copies of the same range, mapped together
        // when both landed (`end_writes`).
        let planned = self.begin_write(&mut self.state.lock().engine, vol, lba, n);
        let (plan, cplan, _order) = match planned {
            Ok(p) => p,
            // Busy (commit first), no space (wait for GC), errors: the slow
            // path.
            Err(_) => return Some(rq),
        };
        let d = rq.data_mut();
        d.start(Kind::Write, vol);
        d.plan = plan;
        d.cplan = cplan;
        let mut aio = rq.into_async();
        for (k, ext) in write_slots(&plan, cplan.as_ref()) {
            let op = if ext.append {
                BioOp::ZoneAppend
            } else {
                BioOp::Write
            };
            let r = self.locate_addr(ext.addr).and_then(|(m, sector)| {
                let dev = m.dev()?;
                let io = RqData(aio.request());
                let at = (ext.off * BS) as usize;
                submit_range(
                    &self.name,
                    m,
                    op,
                    sector,
                    at,
                    (ext.len * BS) as usize,
                    &io,
                    |s, nr| aio.bio(&self.bios, &dev, k, op, s, nr),
                )
            });
            match r {
                Ok(()) => {
                    if let Some(f) = aio.data_mut().submitted.get_mut(k) {
                        *f = true;
                    }
                }
                Err(e) => {
                    aio.data_mut().err = Some(e);
                    break;
                }
            }
        }
        aio.go();
        None
    }

    /// The lower bios of a request served asynchronously completed. Any
    /// context (often hard IRQ); never sleeps.
    pub(crate) fn io_done(self: &Arc<Self>, mut rq: Request<PoolReq>) {
        match rq.data().kind {
            Kind::Read => {
                self.put_zones(rq.data_mut());
                let d = rq.data();
                if d.mirrored {
                    let failed = d.err.is_some()
                        || (0..ASYNC_SLOTS).any(|k| {
                            d.submitted.get(k).copied().unwrap_or(false)
                                && rq.slot_result(k).is_err()
                        });
                    if failed {
                        // Not final: requeued for the slow path, which
                        // reads (and logs) the first copy again, then the
                        // other copy of what it cannot give.
                        rq.data_mut().copy_retry = true;
                        match rq.requeue(0, COPY_RETRY_MAX) {
                            Ok(()) => return,
                            Err(r) => rq = r,
                        }
                    }
                }
                let d = rq.data();
                let mut r = d.err.map_or(Ok(()), Err);
                for (k, &(addr, len)) in d.runs.iter().enumerate() {
                    if !d.submitted.get(k).copied().unwrap_or(false) {
                        continue;
                    }
                    if let Err(e) = rq.slot_result(k) {
                        self.io_error("read", addr, len, e);
                        r = Err(e);
                    }
                }
                rq.complete(Status::from(r));
            }
            Kind::Write => {
                if self.done_writes.push(rq) {
                    let _ = self.end_queue.queue().enqueue::<_, 1>(self.clone());
                }
            }
            Kind::None => rq.end(Status::IoErr),
        }
    }

    /// The completion work: ends the writes on the completion list, up to
    /// [`END_BATCH`] per acquisition of the engine lock.
    fn end_writes(self: &Arc<Self>) {
        let _noio = NoIo::enter();
        let mut list = self.done_writes.take();
        loop {
            let mut batch: [Option<Request<PoolReq>>; END_BATCH] = [const { None }; END_BATCH];
            let mut n = 0usize;
            for (slot, rq) in batch.iter_mut().zip(list.by_ref()) {
                *slot = Some(rq);
                n += 1;
            }
            if n == 0 {
                return;
            }
            let mut results = [Ok(()); END_BATCH];
            let mut failed = [[false; 2 * MAX_PLAN_EXTENTS]; END_BATCH];
            {
                let mut st = self.state.lock();
                for ((rq, res), fail) in batch.iter().zip(results.iter_mut()).zip(failed.iter_mut())
                {
                    let Some(rq) = rq else {
                        continue;
                    };
                    let d = rq.data();
                    let result = |k: usize| {
                        d.submitted
                            .get(k)
                            .copied()
                            .unwrap_or(false)
                            .then(|| rq.slot_result(k))
                    };
                    let r = match &d.cplan {
                        None => {
                            let (r, f) = end_plan(&mut st.engine, &d.plan, result);
                            for (to, from) in fail.iter_mut().zip(f) {
                                *to = from;
                            }
                            r
                        }
                        Some(c) => {
                            let (r, f) = end_copies(&mut st.engine, &d.plan, c, result);
                            *fail = f;
                            r
                        }
                    };
                    *res = d.err.map_or(r, Err);
                }
                self.note_levels(&st.engine);
            }
            for ((rq, res), fail) in batch.iter_mut().zip(results).zip(failed) {
                let Some(rq) = rq.take() else {
                    continue;
                };
                let d = rq.data();
                for (k, ext) in write_slots(&d.plan, d.cplan.as_ref()) {
                    if fail.get(k).copied().unwrap_or(false) {
                        self.write_failed(ext, res.err().unwrap_or(EIO));
                    }
                }
                let mut res = res;
                let from = d.plan.nblocks;
                if d.cplan.is_some() && res == Err(EBUSY) && !fail.iter().any(|&f| f) {
                    // A mirrored write that ended during a checkpoint was
                    // dropped (`write_end_copies`): the whole range again,
                    // the slow way (it waits for the checkpoint), by a
                    // worker: this work would hold every other write's end
                    // until the checkpoint ended. Here only if it cannot be
                    // requeued.
                    self.waits.copy_rewrites.fetch_add(1, Ordering::Relaxed);
                    let mut rq = rq;
                    rq.data_mut().copy_rewrite = true;
                    match rq.requeue(0, COPY_RETRY_MAX) {
                        Ok(()) => continue,
                        Err(mut r) => {
                            r.data_mut().copy_rewrite = false;
                            let total = u64::from(r.bytes()) / BS;
                            let vol = r.data().vol;
                            let res = self.write_rest(vol, r.sector() * 512, total * BS, 0, &r);
                            if end_request(r, res) {
                                self.waits.requeued.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                    }
                }
                if let Err(e) = res {
                    if e != ENOMEM && !fail.iter().any(|&f| f) {
                        pr_err!(
                            "{}: write of volume {} at sector {}: block-table update failed: {:?}\n",
                            &*self.name,
                            rq.data().vol,
                            rq.sector(),
                            e
                        );
                    }
                }
                let total = u64::from(rq.bytes()) / BS;
                if res.is_ok() && from < total {
                    // The plan covered the start: the rest the slow way
                    // (this work may wait for I/O).
                    let vol = rq.data().vol;
                    let at = rq.sector() * 512 + from * BS;
                    let rest = (total - from) * BS;
                    res = self.write_rest(vol, at, rest, from * BS, &rq);
                }
                if end_request(rq, res) {
                    self.waits.requeued.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes the part of `rq` from byte `skip` (`bytes` at volume byte
    /// `offset`) synchronously.
    fn write_rest(
        self: &Arc<Self>,
        vol: u32,
        offset: u64,
        bytes: u64,
        skip: u64,
        rq: &Request<PoolReq>,
    ) -> Result {
        let io = Skip(RqData(rq), skip as usize);
        self.write(vol, offset, bytes, false, &io)
    }
}

impl_has_work! {
    impl HasWork<Self, 1> for ActivePool { self.end_work }
}

impl WorkItem<1> for ActivePool {
    type Pointer = Arc<ActivePool>;

    fn run(this: Arc<ActivePool>) {
        this.end_writes();
    }
}
