// SPDX-License-Identifier: GPL-2.0
//! The data path of a pool: volume reads, writes, flushes and discards.
//!
//! Each request runs on its disk's workqueue (process context, `GFP_NOIO`
//! scope), so several requests of a pool are served at once. The engine lock
//! is held only to plan (block-table lookups, allocation) and to record what
//! happened (block-table update at write completion, commits): never while
//! data moves. Data moves in lower bios that carry the request's own pages
//! (`kwrap/bio.rs`), completed in the lower driver's completion context into
//! a batch the request's worker waits for.
//!
//! - READ: plan runs under the lock, count the read in the zones it reads
//!   (`zonereads.rs`: a zone reset waits for them), unlock, zero unmapped
//!   runs, read mapped runs from the members.
//! - WRITE: plan under the lock (zone append where members have it, else
//!   writes at the write pointer), unlock, submit the bios, wait; then
//!   update the block table (`write_end`). Regular writes into a sequential
//!   zone must reach it in allocation order: they take the write-order lock
//!   before the engine lock is dropped and submit under it. A failed extent
//!   is reported to the engine, which closes its zone (finished on the
//!   device by the next commit); the zone's state is read back from the
//!   device and logged.
//! - FLUSH / FUA: commit (`commit.rs`: every write completed before is
//!   durable: member flush, journal, member flush, without the engine lock).
//!   Concurrent flushes queue on the commit lock and form a group: the first
//!   commits what everyone queued, the others find little or nothing
//!   pending.
//! - DISCARD / WRITE ZEROES: unmap in the engine.

use crate::engine::{core_err, Engine};
use crate::kwrap::{
    bio::{BioBatch, BioOp, Slot},
    noio::NoIo,
    zone::{self, ZoneCond, ZoneReport},
};
use crate::lowerio::{landed_addr, submit_range, ReqData};
use crate::members::{Member, SPB};
use crate::pool::{ActivePool, USER_STREAM};
use crate::zonereads::ZoneReads;
use crate::zvcore::{
    error::Error as CoreError,
    format::BLOCK_SIZE,
    geom::DevKind,
    pool::{PlanExtent, ReadRun, WritePlan, MAX_PLAN_EXTENTS},
};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::{Arc, MutexGuard},
    time::{Instant, Monotonic},
};
use pin_init::stack_pin_init;

/// Read runs planned (and bios waited for) at a time.
const MAX_SLOTS: usize = 16;

/// Bytes per block.
const BS: u64 = BLOCK_SIZE as u64;
/// Times a discard refused with `Busy` waits for a commit and tries again.
const DISCARD_TRIES: u32 = 4;

/// Most sectors of one volume request: the block layer splits larger ones.
const MAX_REQUEST_SECTORS: u32 = 1024;

/// Counts a read in flight in the zones it reads from until dropped
/// (`zonereads.rs`: a zone reset waits for them).
struct ReadRefs<'a> {
    reads: &'a ZoneReads,
    /// First and last zone of each counted run.
    zones: [(u32, u32); MAX_SLOTS],
    n: usize,
}

impl<'a> ReadRefs<'a> {
    fn new(reads: &'a ZoneReads) -> Self {
        Self {
            reads,
            zones: [(0, 0); MAX_SLOTS],
            n: 0,
        }
    }

    /// Counts the run of `len` blocks at pool address `addr` (engine lock
    /// held: the address is current).
    fn add(&mut self, e: &Engine, addr: u64, len: u64) -> Result {
        let zone_of = |a: u64| e.geom().locate(a).map(|l| l.zone).ok_or(EIO);
        let first = zone_of(addr)?;
        let last = zone_of(addr + len.max(1) - 1)?;
        let slot = self.zones.get_mut(self.n).ok_or(EINVAL)?;
        *slot = (first, last);
        self.reads.get(first, last);
        self.n += 1;
        Ok(())
    }
}

impl Drop for ReadRefs<'_> {
    fn drop(&mut self) {
        for &(first, last) in self.zones.iter().take(self.n) {
            self.reads.put(first, last);
        }
    }
}

/// Ends write plan `plan` in the engine (engine lock held): `result(k)` is
/// the outcome of extent `k`'s bios (`None`: not submitted), a completion
/// sector or an error. Returns the write's result and which extents failed
/// (to log, see [`ActivePool::write_failed`]).
#[inline(never)]
pub(crate) fn end_plan(
    e: &mut Engine,
    plan: &WritePlan,
    mut result: impl FnMut(usize) -> Option<Result<u64>>,
) -> (Result, [bool; MAX_PLAN_EXTENTS]) {
    let mut failed = [false; MAX_PLAN_EXTENTS];
    let (addrs, mut r) = landed(e, plan, 0, &mut result, &mut failed);
    let ooms = e.nodes().oom_count();
    let end = e.write_end(plan, &addrs);
    if r.is_ok() {
        r = end.map(|_| ()).map_err(|err| table_err(e, err, ooms));
    }
    (r, failed)
}

/// [`end_plan`] of a mirrored volume's two plans (`result(k)` for extent
/// `k` of `plan`, `result(MAX_PLAN_EXTENTS + k)` for extent `k` of
/// `cplan`): both mapped, or neither when an extent of either failed
/// (`EIO`; the core's `write_end_copies`).
#[inline(never)]
pub(crate) fn end_copies(
    e: &mut Engine,
    plan: &WritePlan,
    cplan: &WritePlan,
    mut result: impl FnMut(usize) -> Option<Result<u64>>,
) -> (Result, [bool; 2 * MAX_PLAN_EXTENTS]) {
    let mut failed = [false; 2 * MAX_PLAN_EXTENTS];
    let (addrs, r1) = landed(e, plan, 0, &mut result, &mut failed);
    let (caddrs, r2) = landed(e, cplan, MAX_PLAN_EXTENTS, &mut result, &mut failed);
    let ooms = e.nodes().oom_count();
    let end = e.write_end_copies(plan, &addrs, cplan, &caddrs);
    let mut r = r1.and(r2);
    if r.is_ok() {
        r = end.map(|_| ()).map_err(|err| table_err(e, err, ooms));
    }
    (r, failed)
}

/// The extents of a write's plans with their slots: extent `k` of `plan`
/// in slot `k`, extent `k` of a mirrored volume's second copy (`cplan`)
/// in slot `MAX_PLAN_EXTENTS + k` (both paths' numbering, as
/// [`end_copies`] reads the results).
pub(crate) fn write_slots<'a>(
    plan: &'a WritePlan,
    cplan: Option<&'a WritePlan>,
) -> impl Iterator<Item = (usize, &'a PlanExtent)> {
    let copies = cplan.into_iter().map(|c| (c, MAX_PLAN_EXTENTS));
    Iterator::chain([(plan, 0usize)].into_iter(), copies).flat_map(|(p, base)| {
        p.extents()
            .iter()
            .enumerate()
            .map(move |(k, e)| (base + k, e))
    })
}

/// Where the extents of `plan` landed (`result(base + k)` for extent `k`),
/// the first error, and the failed ones marked in `failed[base + k]`.
fn landed(
    e: &Engine,
    plan: &WritePlan,
    base: usize,
    result: &mut impl FnMut(usize) -> Option<Result<u64>>,
    failed: &mut [bool],
) -> ([Option<u64>; MAX_PLAN_EXTENTS], Result) {
    let mut addrs = [None; MAX_PLAN_EXTENTS];
    let mut r = Ok(());
    for (k, ext) in plan.extents().iter().enumerate() {
        match result(base + k) {
            None => {}
            Some(Ok(s)) => {
                if let Some(a) = addrs.get_mut(k) {
                    *a = landed_addr(e, ext.zone, ext.append, ext.addr, s);
                }
            }
            Some(Err(err)) => {
                r = Err(err);
                if let Some(f) = failed.get_mut(base + k) {
                    *f = true;
                }
            }
        }
    }
    (addrs, r)
}

/// A planned write: the plan, a mirrored volume's second copy, and the
/// write-order lock when the extents need it.
pub(crate) type Planned<'a> = (WritePlan, Option<WritePlan>, Option<MutexGuard<'a, ()>>);

/// The errno of a block-table update that failed with `err`: a node
/// allocation that failed for want of memory during the update (the
/// store's count of such failures is no longer `ooms`, its value before)
/// is `ENOMEM` (the request is requeued and retried, see
/// [`crate::volume::end_request`]), not the `NoSpace` the core reports for
/// it and for the table memory limit. Called under the engine lock, right
/// after the update.
pub(crate) fn table_err(e: &Engine, err: CoreError, ooms: u64) -> Error {
    if matches!(err, CoreError::NoSpace) && e.nodes().oom_count() != ooms {
        return ENOMEM;
    }
    core_err(err)
}

impl ActivePool {
    /// Largest request (sectors) the volumes accept: what every member takes
    /// in one bio, including a zone append.
    pub(crate) fn max_request_sectors(&self) -> u32 {
        let l = &self.limits;
        let mut m = MAX_REQUEST_SECTORS;
        for v in [l.max_sectors, l.max_zone_append_sectors] {
            if v != 0 {
                m = m.min(v);
            }
        }
        (m & !(SPB as u32 - 1)).max(SPB as u32)
    }

    /// Reads `bytes` at byte `offset` of volume `vol` into `io`: mapped runs
    /// from the members, unmapped runs as zeros.
    pub(crate) fn read<'r>(
        self: &Arc<Self>,
        vol: u32,
        offset: u64,
        bytes: u64,
        io: &impl ReqData<'r>,
    ) -> Result {
        let _noio = NoIo::enter();
        let r = self.read_blocks(vol, offset / BS, offset / BS, bytes / BS, io);
        // A copy that could not be read was queued for repair: GC writes
        // it again from the other copy.
        self.kick_walks();
        r
    }

    /// [`Self::read`] of `n` blocks of volume `vol` from `from` into `io`,
    /// whose byte 0 is block `start`'s (the same `io` for a run read again
    /// from a mirrored volume's other copy: one instance of the function
    /// for every request type).
    fn read_blocks<'r>(
        &self,
        vol: u32,
        start: u64,
        from: u64,
        n: u64,
        io: &impl ReqData<'r>,
    ) -> Result {
        let lba = from;
        let mut done = 0u64;
        while done < n {
            let mut runs = [ReadRun::default(); MAX_SLOTS];
            let mut targets: [Option<(&Member, u64)>; MAX_SLOTS] = [None; MAX_SLOTS];
            // Declared before the batch: dropped after it, once every bio
            // completed.
            let mut refs = ReadRefs::new(&self.zone_reads);
            let (cnt, copy) = {
                let st = self.state.lock();
                let cnt = st
                    .engine
                    .read_plan(vol, lba + done, n - done, &mut runs)
                    .map_err(core_err)?;
                let copy = st.engine.copy_of(vol);
                for (run, t) in runs.iter().take(cnt).zip(targets.iter_mut()) {
                    if let Some(a) = run.addr {
                        *t = Some(self.locate(&st.engine, a)?);
                        // Counted before the lock is dropped: a reset of
                        // the zone waits for this read.
                        refs.add(&st.engine, a, run.len)?;
                    }
                }
                (cnt, copy)
            };
            if cnt == 0 {
                return Err(EIO);
            }
            let slots = [const { Slot::new() }; MAX_SLOTS];
            stack_pin_init!(let batch = BioBatch::new(&slots));
            let mut submitted = [false; MAX_SLOTS];
            // Runs of a mirrored volume whose copy could not be read here:
            // read from the other copy.
            let mut retry = [None; MAX_SLOTS];
            let mut err = Ok(());
            {
                for (k, run) in runs.iter().take(cnt).enumerate() {
                    let at = ((run.lba - start) * BS) as usize;
                    let len = (run.len * BS) as usize;
                    match targets.get(k).copied().flatten() {
                        None => io.parts(at, len, |seg, so, l| seg.zero(so, l))?,
                        Some((m, sector)) => {
                            let r = m.dev().and_then(|dev| {
                                submit_range(
                                    &self.name,
                                    m,
                                    BioOp::Read,
                                    sector,
                                    at,
                                    len,
                                    io,
                                    |s, nr| {
                                        batch.as_ref().bio(&self.bios, &dev, k, BioOp::Read, s, nr)
                                    },
                                )
                            });
                            match r {
                                Ok(()) => {
                                    if let Some(s) = submitted.get_mut(k) {
                                        *s = true;
                                    }
                                }
                                // (A member gone: the other copy.)
                                Err(e) if copy.is_some() => {
                                    if let Some(t) = retry.get_mut(k) {
                                        *t = Some(e);
                                    }
                                }
                                Err(e) => {
                                    err = Err(e);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            batch.as_mut().wait();
            for (k, run) in runs.iter().take(cnt).enumerate() {
                if !submitted.get(k).copied().unwrap_or(false) {
                    continue;
                }
                if let Err(e) = batch.result(k) {
                    self.io_error("read", run.addr.unwrap_or(0), run.len, e);
                    match (copy, retry.get_mut(k)) {
                        (Some(_), Some(t)) => *t = Some(e),
                        _ => err = Err(e),
                    }
                }
            }
            // The other copy of what could not be read (its table maps the
            // same data: `zvcore::pool::mirror`).
            if let Some(c) = copy {
                for (k, run) in runs.iter().take(cnt).enumerate() {
                    let Some(e) = retry.get(k).copied().flatten() else {
                        continue;
                    };
                    if self.read_blocks(c, start, run.lba, run.len, io).is_err() {
                        err = Err(e);
                    } else {
                        self.health.copy_reads.fetch_add(run.len, Ordering::Relaxed);
                        // Written again from the copy just read, unless the
                        // member is gone (its rebuild does that).
                        let gone = run.addr.is_some_and(|a| {
                            self.locate_addr(a).map_or(true, |(m, _)| m.dev().is_err())
                        });
                        if !gone {
                            let mut st = self.state.lock();
                            if st.engine.repair(vol, run.lba, run.len) {
                                // GC has work now (`gc_needed`).
                                self.note_levels(&st.engine);
                                self.health.walk_kick.store(true, Ordering::Release);
                            }
                        }
                    }
                }
            }
            err?;
            done += runs.iter().take(cnt).map(|r| r.len).sum::<u64>();
        }
        Ok(())
    }

    /// Logs a failed lower I/O (one line, with the member and address) and
    /// counts it. Never takes the engine lock: it runs where the lock may be
    /// held (a GC batch ending, a read racing a commit's zone reset), and
    /// the address needs only the pool's fixed geometry.
    pub(crate) fn io_error(&self, what: &str, addr: u64, blocks: u64, e: Error) {
        let (path, sector) = match self.locate_addr(addr) {
            Ok((m, s)) => {
                let c = if what.ends_with("read") {
                    &m.read_errors
                } else {
                    &m.write_errors
                };
                c.fetch_add(1, Ordering::Relaxed);
                // The next health check reports the member degraded.
                self.health.dirty.store(true, Ordering::Release);
                (m.path.to_str().unwrap_or("?"), s)
            }
            Err(_) => ("?", 0),
        };
        pr_err!(
            "{}: {} error on {} at sector {} ({} blocks): {:?}\n",
            &*self.name,
            what,
            path,
            sector,
            blocks,
            e
        );
    }

    /// Plans the next part of a write: commits first when the journal record
    /// queue is full, waits for GC when the pool has no free space. With a
    /// regular write into a sequential zone (a member without zone append),
    /// also returns the write-order lock, taken before the engine lock is
    /// dropped: such writes must reach the zone in allocation order.
    fn plan_write(self: &Arc<Self>, vol: u32, lba: u64, n: u64) -> Result<Planned<'_>> {
        let mut since = None;
        let mut st = self.state.lock();
        loop {
            match self.begin_write(&mut st.engine, vol, lba, n) {
                Ok(planned) => return Ok(planned),
                Err(CoreError::Busy) => {
                    // The record queue is full: commit (without the engine
                    // lock) and plan again; or only plan again if another
                    // writer's commit ends meanwhile (`commit_for_room`).
                    let seen = st.engine.stats().commits;
                    drop(st);
                    let t0 = Instant::<Monotonic>::now();
                    let r = self.commit_for_room(seen);
                    self.waits.commit.since(t0);
                    r?;
                    st = self.state.lock();
                    continue;
                }
                Err(CoreError::NoSpace) if st.engine.metadata_full() => {
                    // GC cannot help: the block tables no longer fit in a
                    // checkpoint (logged when it was abandoned).
                    drop(st);
                    pr_err!(
                        "{}: metadata full: volume {} write refused\n",
                        &*self.name,
                        vol
                    );
                    self.health.note_refused();
                    return Err(ENOSPC);
                }
                Err(CoreError::NoSpace) => {}
                Err(e) => {
                    drop(st);
                    return Err(self.write_plan_error(vol, n, e));
                }
            }
            // No space: GC may free some.
            if !self.wait_for_space(&mut st, &mut since) {
                return Err(self.write_plan_error(vol, n, CoreError::NoSpace));
            }
        }
    }

    /// The write-order lock, if one of the extents `(address, append)` is a
    /// regular write into a sequential zone. Called with the engine lock
    /// held (lock order: engine, then write order). The block layer
    /// emulates zone append for zoned devices without it, so this is the
    /// exception (e.g. a member stacked on a target without emulation).
    /// Plans a write of `n` blocks of volume `vol` from `lba` under the
    /// engine lock (`e`): both copies of the same range for a mirrored
    /// volume; notes the space levels, kicks GC when a commit is due, and
    /// takes the write-order lock the plan needs ([`Self::order_for`]).
    /// The one planning step of both paths (`fastpath.rs`).
    pub(crate) fn begin_write(
        self: &Arc<Self>,
        e: &mut Engine,
        vol: u32,
        lba: u64,
        n: u64,
    ) -> core::result::Result<Planned<'_>, CoreError> {
        let (p, c) = if e.copy_of(vol).is_some() {
            e.write_begin_copies(vol, lba, n, USER_STREAM)
                .map(|(p, c)| (p, Some(c)))?
        } else {
            e.write_begin(vol, lba, n, USER_STREAM).map(|p| (p, None))?
        };
        self.note_levels(e);
        if self.commit_due() {
            self.kick_gc();
        }
        let order = self.order_for(
            Iterator::chain(
                p.extents().iter(),
                c.iter().flat_map(|c| c.extents().iter()),
            )
            .map(|x| (x.addr, x.append)),
        );
        Ok((p, c, order))
    }

    pub(crate) fn order_for(
        &self,
        mut exts: impl Iterator<Item = (u64, bool)>,
    ) -> Option<MutexGuard<'_, ()>> {
        let ordered = exts.any(|(addr, append)| {
            !append
                && self
                    .locate_addr(addr)
                    .map(|(m, _)| m.geom.kind != DevKind::Conventional)
                    .unwrap_or(false)
        });
        ordered.then(|| self.write_order.lock())
    }

    fn write_plan_error(&self, vol: u32, n: u64, e: CoreError) -> Error {
        if matches!(e, CoreError::Quota | CoreError::Reserved) {
            // The pool has space: this volume may not take it.
            self.note_rule_refusal(vol, n, e);
            return ENOSPC;
        }
        if matches!(e, CoreError::NoSpace) {
            pr_err!(
                "{}: out of space (volume {} write of {} blocks)\n",
                &*self.name,
                vol,
                n
            );
            self.health.note_refused();
            return ENOSPC;
        }
        core_err(e)
    }

    /// Writes `bytes` from `io` at byte `offset` of volume `vol`
    /// (log-structured: new locations, block table updated on completion).
    /// The caller paced the request first ([`Self::pace_or_hold`]).
    pub(crate) fn write<'r>(
        self: &Arc<Self>,
        vol: u32,
        offset: u64,
        bytes: u64,
        fua: bool,
        io: &impl ReqData<'r>,
    ) -> Result {
        let _noio = NoIo::enter();
        let (lba, n) = (offset / BS, bytes / BS);
        let mut done = 0u64;
        while done < n {
            // Slot `k` for extent `k` of the plan, `MAX_PLAN_EXTENTS + k`
            // for extent `k` of a mirrored volume's second copy.
            let slots = [const { Slot::new() }; 2 * MAX_PLAN_EXTENTS];
            stack_pin_init!(let batch = BioBatch::new(&slots));
            let mut submitted = [false; 2 * MAX_PLAN_EXTENTS];
            let mut err = Ok(());
            let (plan, cplan) = {
                // Submitted without the engine lock (regular writes into a
                // sequential zone under the write-order lock).
                let (plan, cplan, _order) = self.plan_write(vol, lba + done, n - done)?;
                for (k, ext) in write_slots(&plan, cplan.as_ref()) {
                    let (m, sector) = match self.locate_addr(ext.addr) {
                        Ok(v) => v,
                        Err(e) => {
                            err = Err(e);
                            break;
                        }
                    };
                    let op = if ext.append {
                        BioOp::ZoneAppend
                    } else {
                        BioOp::Write
                    };
                    let at = ((done + ext.off) * BS) as usize;
                    let len = (ext.len * BS) as usize;
                    let r = m.dev().and_then(|dev| {
                        submit_range(&self.name, m, op, sector, at, len, io, |s, nr| {
                            batch.as_ref().bio(&self.bios, &dev, k, op, s, nr)
                        })
                    });
                    match r {
                        Ok(()) => {
                            if let Some(s) = submitted.get_mut(k) {
                                *s = true;
                            }
                        }
                        Err(e) => {
                            err = Err(e);
                            break;
                        }
                    }
                }
                (plan, cplan)
            };
            batch.as_mut().wait();
            let result = |k: usize| {
                submitted
                    .get(k)
                    .copied()
                    .unwrap_or(false)
                    .then(|| batch.result(k))
            };
            let (r, failed) = match &cplan {
                None => {
                    let (r, f) = end_plan(&mut self.state.lock().engine, &plan, result);
                    let mut failed = [false; 2 * MAX_PLAN_EXTENTS];
                    for (d, s) in failed.iter_mut().zip(f) {
                        *d = s;
                    }
                    (r, failed)
                }
                Some(c) => end_copies(&mut self.state.lock().engine, &plan, c, result),
            };
            if err.is_ok() {
                err = r;
            }
            for (k, ext) in write_slots(&plan, cplan.as_ref()) {
                if failed.get(k).copied().unwrap_or(false) {
                    self.write_failed(ext, err.err().unwrap_or(EIO));
                }
            }
            // A mirrored write that ended during a checkpoint was dropped
            // (`write_end_copies`): once the checkpoint ended (the commit
            // lock is free again: this commits what is queued, or waits),
            // the same range is written again.
            if cplan.is_some() && err == Err(EBUSY) && failed.iter().all(|f| !f) {
                self.waits.copy_rewrites.fetch_add(1, Ordering::Relaxed);
                self.commit()?;
                continue;
            }
            err?;
            done += plan.nblocks;
        }
        if fua {
            let t0 = Instant::<Monotonic>::now();
            let r = self.flush();
            self.waits.fua.since(t0);
            r?;
        }
        Ok(())
    }

    /// A write extent failed: log it with the zone's state on the device
    /// (its write pointer, read back with a zone report, as zonefs does).
    /// The engine has closed the zone for writing; the next commit finishes
    /// it on the device, and the blocks written in it before stay valid.
    pub(crate) fn write_failed(&self, ext: &PlanExtent, e: Error) {
        self.io_error("write", ext.addr, ext.len, e);
        let st = self.state.lock();
        let Some(zg) = st.engine.geom().zone(ext.zone) else {
            return;
        };
        let Some(base) = st.engine.geom().dev_base(zg.dev) else {
            return;
        };
        drop(st);
        let Some(m) = self.members.get(usize::from(zg.dev)) else {
            return;
        };
        let start = (zg.start - base) * SPB;
        let mut seen = None;
        let Ok(dev) = m.dev() else {
            return;
        };
        let r = zone::report_zones(&dev, start, 1, &mut |_i, z: &ZoneReport| {
            seen = Some((z.wp.saturating_sub(z.start), z.cond));
            Ok(())
        });
        if let (Ok(_), Some((_, cond))) = (&r, seen) {
            if cond.unusable() {
                // Read-only or offline: out of service (no finish, no
                // reset; GC moves a read-only zone's data).
                let ro = cond == ZoneCond::ReadOnly;
                let _ = self.state.lock().engine.zone_unusable(ext.zone, ro);
            }
        }
        match (r, seen) {
            (Ok(_), Some((wp, cond))) => pr_err!(
                "{}: zone {} of {} (sector {}): device write pointer +{} sectors, {:?}; closed for writing\n",
                &*self.name,
                ext.zone,
                m.path.to_str().unwrap_or("?"),
                start,
                wp,
                cond
            ),
            _ => pr_err!(
                "{}: zone {} of {}: cannot read its state back; closed for writing\n",
                &*self.name,
                ext.zone,
                m.path.to_str().unwrap_or("?")
            ),
        }
    }

    /// Unmaps `bytes` at byte `offset` of volume `vol` (discard, write zeroes).
    pub(crate) fn discard(&self, vol: u32, offset: u64, bytes: u64) -> Result {
        let _noio = NoIo::enter();
        let mut st = self.state.lock();
        let mut ooms = st.engine.nodes().oom_count();
        let mut r = st.engine.discard(vol, offset / BS, bytes / BS);
        // The record queue is full, or (a mirrored volume) a checkpoint is
        // being written: a commit (another's, or its own) makes room or
        // ends it, then unmap. (A few times: another checkpoint may have
        // begun meanwhile.)
        for _ in 0..DISCARD_TRIES {
            let Err(CoreError::Busy) = r else { break };
            let seen = st.engine.stats().commits;
            let ckpt = st.engine.checkpoint_in_flight();
            drop(st);
            if ckpt {
                // (The commit lock is free once the checkpoint ended.)
                self.commit()?;
            } else {
                self.commit_until(|s| s.commits != seen, None)?;
            }
            st = self.state.lock();
            ooms = st.engine.nodes().oom_count();
            r = st.engine.discard(vol, offset / BS, bytes / BS);
        }
        // Live data went down: the space level may too.
        self.note_levels(&st.engine);
        r.map_err(|e| table_err(&st.engine, e, ooms))
    }
}
