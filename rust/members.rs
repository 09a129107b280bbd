// SPDX-License-Identifier: GPL-2.0
//! The member devices of a pool: opening and probing them, their error
//! counters, where a pool address lives on them, and their metadata I/O
//! (the engine's [`MetaOp`]s, and the reads of an assembly).
//!
//! Metadata I/O here is synchronous and runs in process context (configfs
//! writes, the commit and flush paths), never in completion context and
//! never under the engine lock. This module knows nothing of the engine's
//! lock or of an active pool: it works on a slice of [`Member`]s.

use crate::engine::core_err;
use crate::healthstate::MemberState;
use crate::kwrap::{
    bdev::{IoLimits, LowerDev},
    holder::{DeadHook, DeadWatch},
    metaio::{self, MetaBuf, MetaRun},
    releasable::{Guard, Releasable},
    zone::{self, ZoneCond, ZoneOp, ZoneReport, ZoneType},
};
use crate::zvcore::{
    self,
    format::BLOCK_SIZE,
    geom::{DevKind, DeviceGeometry, PoolGeometry},
    pool::MetaOp,
    probe::{self, DeviceReport, ProbeError, ZoneScan},
    recovery::Phase,
};
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use kernel::{
    prelude::*,
    str::CString,
    sync::Arc,
    time::{Instant, Monotonic},
};

/// Sectors per block.
pub(crate) const SPB: u64 = (BLOCK_SIZE / 512) as u64;

/// One member device of an active pool.
///
/// # Invariants
///
/// `bdev` holds nothing for a member assembled without its device
/// (degraded assembly; gone from the start) or removed (before this
/// assembly, or since: [`Member::release_device`]).
pub(crate) struct Member {
    pub(crate) path: CString,
    bdev: Releasable<LowerDev>,
    pub(crate) geom: DeviceGeometry,
    /// Failed data reads and writes (user I/O and GC) since assembly.
    pub(crate) read_errors: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    /// Failed metadata writes, zone operations and flushes since assembly.
    pub(crate) meta_errors: AtomicU64,
    /// The block layer said the device is dead (`health.rs`).
    pub(crate) gone: AtomicBool,
    /// Removed from the pool (`membership.rs`): nothing is sent to it any
    /// more; its device is closed once its zones are reset
    /// ([`Member::release_device`]).
    pub(crate) removed: AtomicBool,
    /// The [`MemberState`] last reported (`health.rs`).
    pub(crate) reported: AtomicU8,
}

impl Member {
    /// A member opened as `dev` at `path`, of geometry `geom`: healthy.
    pub(crate) fn new(path: &CStr, dev: LowerDev, geom: DeviceGeometry) -> Result<Self> {
        Self::with(path, Some(dev), geom)
    }

    /// A member of geometry `geom` assembled without its device (degraded
    /// assembly): missing from the start. Its path reads `missing`; its
    /// state is reported by the first health check (a uevent).
    pub(crate) fn absent(geom: DeviceGeometry) -> Result<Self> {
        let m = Self::with(kernel::c_str!("missing"), None, geom)?;
        m.gone.store(true, Ordering::Release);
        Ok(m)
    }

    /// A member removed from the pool before this assembly: no device.
    pub(crate) fn removed(geom: DeviceGeometry) -> Result<Self> {
        let m = Self::with(kernel::c_str!("removed"), None, geom)?;
        m.removed.store(true, Ordering::Release);
        m.reported
            .store(MemberState::Removed as u8, Ordering::Relaxed);
        Ok(m)
    }

    fn with(path: &CStr, bdev: Option<LowerDev>, geom: DeviceGeometry) -> Result<Self> {
        Ok(Self {
            path: CString::try_from_fmt(fmt!("{}", path))?,
            bdev: Releasable::new(bdev),
            geom,
            read_errors: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            meta_errors: AtomicU64::new(0),
            gone: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            reported: AtomicU8::new(MemberState::Ok as u8),
        })
    }

    /// Its block device, borrowed for one use (the device of a removed
    /// member is closed once no borrow is left); `EIO` for a member
    /// without one (every I/O to it fails as to a device that died).
    pub(crate) fn dev(&self) -> Result<Guard<'_, LowerDev>> {
        self.bdev.get().ok_or(EIO)
    }

    /// Whether it is the block device `devt`.
    pub(crate) fn is_devt(&self, devt: u32) -> bool {
        self.bdev.get().is_some_and(|d| d.devt() == devt)
    }

    /// Closes the device of a member removed from the pool (its zones
    /// reset: nothing is sent to it any more), so that it can be used
    /// elsewhere at once. Sleeps until the last borrow of it is dropped.
    /// Whether a device was closed.
    pub(crate) fn release_device(&self) -> bool {
        self.removed.store(true, Ordering::Release);
        self.bdev.take().is_some()
    }

    /// Its state now: `missing` once the device is gone, `failed` once a
    /// metadata I/O failed on it, `degraded` once a data I/O did.
    pub(crate) fn state(&self) -> MemberState {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        if self.is_removed() {
            MemberState::Removed
        } else if self.is_gone() {
            MemberState::Missing
        } else if n(&self.meta_errors) > 0 {
            MemberState::Failed
        } else if n(&self.read_errors) > 0 || n(&self.write_errors) > 0 {
            MemberState::Degraded
        } else {
            MemberState::Ok
        }
    }

    /// Whether its device is gone (nothing written to it can matter any
    /// more: its flushes are skipped).
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
            || self.is_removed()
            || self.bdev.get().is_none_or(|d| !d.is_live())
    }

    /// Whether it was removed from the pool.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// A metadata I/O failed on it.
    pub(crate) fn meta_error(&self) {
        self.meta_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads a lower device's geometry into the core's terms
/// (`zvcore::probe`, which `zvpoolctl` uses too). Refuses devices zvpool
/// cannot use, with a logged reason.
pub(crate) fn probe_geometry(pool: &CStr, path: &CStr, dev: &LowerDev) -> Result<DeviceGeometry> {
    let g = dev.geometry();
    let r = DeviceReport {
        nr_sectors: g.nr_sectors,
        logical_block_size: g.logical_block_size,
        zoned: g.zoned != 0,
        zone_sectors: g.zone_sectors,
        nr_zones: g.nr_zones,
        max_open_zones: g.max_open_zones,
        max_active_zones: g.max_active_zones,
        max_zone_append_sectors: g.max_zone_append_sectors,
    };
    if g.read_only != 0 {
        pr_err!("{}: {}: device is read-only\n", pool, path);
        return Err(EROFS);
    }
    let refused = |e: ProbeError| {
        pr_err!("{}: {}: {}\n", pool, path, Why(e));
        EINVAL
    };
    if let Some(geom) = probe::start(&r).map_err(refused)? {
        return Ok(geom);
    }
    // Conventional zones (SMR) and the zone capacity come from a report.
    let mut scan = ZoneScan::default();
    zone::report_zones(dev, 0, g.nr_zones, &mut |_i, z: &ZoneReport| {
        let conventional = z.kind == ZoneType::Conventional;
        scan.zone(g.zone_sectors, conventional, z.len, z.capacity);
        Ok(())
    })?;
    probe::zoned(&r, &scan).map_err(refused)
}

/// A probe refusal in the kernel's formatting (its text is the core's).
struct Why(ProbeError);

impl kernel::fmt::Display for Why {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

/// Whether every sequential zone of `dev` is empty (a blank device).
fn is_blank(dev: &LowerDev, geom: &DeviceGeometry) -> Result<bool> {
    if geom.kind == DevKind::Conventional {
        let mut buf = MetaBuf::new()?;
        metaio::read_block(dev, 0, &mut buf)?;
        return Ok(buf.bytes().iter().all(|b| *b == 0));
    }
    let mut blank = true;
    zone::report_zones(dev, 0, geom.nr_zones, &mut |_i, z: &ZoneReport| {
        if z.kind != ZoneType::Conventional && z.cond != ZoneCond::Empty {
            blank = false;
        }
        Ok(())
    })?;
    Ok(blank)
}

/// Resets every written sequential zone of a member about to be formatted
/// (`format=2` over an old pool: the new pool's allocator starts with every
/// data zone empty, so the device's must be too).
pub(crate) fn reset_written_zones(dev: &LowerDev, geom: &DeviceGeometry) -> Result {
    if geom.kind == DevKind::Conventional {
        return Ok(());
    }
    let mut written = KVec::<(u64, u64)>::new();
    let mut alloc_err = false;
    zone::report_zones(dev, 0, geom.nr_zones, &mut |_i, z: &ZoneReport| {
        if z.kind != ZoneType::Conventional && z.cond != ZoneCond::Empty {
            alloc_err |= written.push((z.start, z.len), GFP_KERNEL).is_err();
        }
        Ok(())
    })?;
    if alloc_err {
        return Err(ENOMEM);
    }
    for (start, len) in written.iter() {
        zone::zone_mgmt(dev, ZoneOp::Reset, *start, *len)?;
    }
    Ok(())
}

/// Executes the engine's metadata operations on the members, one at a
/// time, synchronously (format, assembly, checkpoints, the closing block;
/// commits record them and run them without the engine lock, `commit.rs`).
pub(crate) struct MetaSink<'a> {
    pool: &'a CStr,
    members: &'a [Member],
    geom: PoolGeometry<&'a [DeviceGeometry]>,
    buf: MetaBuf,
    err: Option<Error>,
}

impl<'a> MetaSink<'a> {
    pub(crate) fn new(
        pool: &'a CStr,
        members: &'a [Member],
        geoms: &'a [DeviceGeometry],
    ) -> Result<Self> {
        Ok(Self {
            pool,
            members,
            geom: PoolGeometry::new(geoms).map_err(core_err)?,
            buf: MetaBuf::new()?,
            err: None,
        })
    }

    fn member(&self, d: u16) -> Result<&'a Member> {
        self.members.get(usize::from(d)).ok_or(EINVAL)
    }

    pub(crate) fn run(&mut self, op: MetaOp<'_>) -> Result {
        match op {
            MetaOp::Flush => {
                for m in self.members.iter().filter(|m| !m.is_gone()) {
                    m.dev()
                        .and_then(|d| zone::flush(&d))
                        .inspect_err(|_| m.meta_error())?;
                }
            }
            // Metadata zones only (checkpoint sets, log zones): no user
            // read is ever in flight in them.
            MetaOp::Reset(z) | MetaOp::Finish(z) => {
                let zg = self.geom.zone(z).ok_or(EINVAL)?;
                let base = self.geom.dev_base(zg.dev).ok_or(EINVAL)?;
                let m = self.member(zg.dev)?;
                let sector = (zg.start - base) * SPB;
                let op = if matches!(op, MetaOp::Reset(_)) {
                    ZoneOp::Reset
                } else {
                    ZoneOp::Finish
                };
                m.dev()
                    .and_then(|d| zone::zone_mgmt(&d, op, sector, zg.size * SPB))
                    .inspect_err(|_| m.meta_error())?;
            }
            MetaOp::Write(addr, data) => {
                let loc = self.geom.locate(addr).ok_or(EINVAL)?;
                let m = self.member(loc.dev)?;
                let dst = self.buf.bytes_mut();
                if data.len() != dst.len() {
                    return Err(EINVAL);
                }
                dst.copy_from_slice(data);
                m.dev()
                    .and_then(|d| metaio::write_block(&d, loc.dev_offset * SPB, &mut self.buf))
                    .inspect_err(|_| m.meta_error())?;
            }
        }
        Ok(())
    }

    /// The callback the engine calls for each operation.
    pub(crate) fn apply(&mut self, op: MetaOp<'_>) -> zvcore::error::Result<()> {
        match self.run(op) {
            Ok(()) => Ok(()),
            Err(e) => {
                pr_err!(
                    "{}: metadata I/O failed ({:?}): {:?}\n",
                    self.pool,
                    op_name(&op),
                    e
                );
                self.err = Some(e);
                Err(zvcore::error::Error::Corrupt("metadata I/O failed"))
            }
        }
    }

    /// The error to report for a failed engine call.
    pub(crate) fn error(&self, e: zvcore::error::Error) -> Error {
        self.err.unwrap_or_else(|| core_err(e))
    }
}

fn op_name(op: &MetaOp<'_>) -> &'static str {
    match op {
        MetaOp::Flush => "flush",
        MetaOp::Reset(_) => "zone reset",
        MetaOp::Finish(_) => "zone finish",
        MetaOp::Write(..) => "write",
    }
}

/// Blocks read ahead at once by assembly (128 KiB): log zones are scanned
/// block by block, and one synchronous 4 KiB read per block made assembly
/// of a conventional member (256 MiB log zones) take tens of seconds.
const READ_AHEAD_BLOCKS: usize = 32;

/// Reads metadata for recovery from the opened devices (caller's order),
/// ahead within a zone (never across a zone boundary: a ZNS namespace may
/// refuse reads across zones).
pub(crate) struct Reader<'a> {
    devs: &'a [Option<Member>],
    buf: MetaBuf,
    ahead: MetaRun,
    /// What `ahead` holds: device, first block, number of blocks.
    cached: Option<(u16, u64, u64)>,
    /// What the assembly cost in I/O (logged with its time).
    cost: ReadCost,
}

/// Metadata I/O of an assembly.
#[derive(Default)]
pub(crate) struct ReadCost {
    /// Blocks the recovery asked for.
    pub(crate) blocks: u64,
    /// Reads sent to the members, and the blocks they read.
    pub(crate) reads: u64,
    pub(crate) read_blocks: u64,
    /// Zone reports.
    pub(crate) reports: u64,
    /// Time spent waiting for those reads and reports.
    pub(crate) io_ms: i64,
    /// When the last phase ended, and how long each phase took
    /// ([`Phase::ALL`] order).
    pub(crate) mark: Option<Instant<Monotonic>>,
    pub(crate) phase_ms: [i64; 4],
    /// Blocks each phase asked for (same order).
    pub(crate) phase_blocks: [u64; 4],
    /// `blocks` when the last phase ended.
    pub(crate) mark_blocks: u64,
}

/// Milliseconds since `t0`.
pub(crate) fn ms_since(t0: Instant<Monotonic>) -> i64 {
    t0.elapsed().as_millis()
}

impl crate::zvcore::recovery::MetaReader for Reader<'_> {
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> zvcore::error::Result<()> {
        let io = zvcore::error::Error::Corrupt("metadata read failed");
        let m = self
            .devs
            .get(usize::from(dev))
            .and_then(|o| o.as_ref())
            .ok_or(io)?;
        let dst = buf.get_mut(..BLOCK_SIZE).ok_or(io)?;
        self.cost.blocks += 1;
        let hit = |c: Option<(u16, u64, u64)>| match c {
            Some((d, first, n)) if d == dev && block >= first && block - first < n => {
                Some((block - first) as usize)
            }
            _ => None,
        };
        if hit(self.cached).is_none() {
            self.cached = None;
            // The rest of the block's zone, at most the buffer.
            let zb = m.geom.zone_blocks.max(1);
            let end = (block / zb + 1).saturating_mul(zb);
            let n = (end - block).min(self.ahead.capacity() as u64);
            if n > 1 {
                let t0 = Instant::<Monotonic>::now();
                let r = m
                    .dev()
                    .and_then(|d| self.ahead.read(&d, block * SPB, n as usize));
                self.cost.io_ms += ms_since(t0);
                self.cost.reads += 1;
                if r.is_ok() {
                    self.cost.read_blocks += n;
                    self.cached = Some((dev, block, n));
                }
            }
        }
        if let Some(src) = hit(self.cached).and_then(|i| self.ahead.block(i)) {
            dst.copy_from_slice(src);
            return Ok(());
        }
        // One block (the last of a zone, or a read ahead that failed).
        let t0 = Instant::<Monotonic>::now();
        let r = m
            .dev()
            .and_then(|d| metaio::read_block(&d, block * SPB, &mut self.buf));
        self.cost.io_ms += ms_since(t0);
        self.cost.reads += 1;
        self.cost.read_blocks += 1;
        r.map_err(|_| io)?;
        dst.copy_from_slice(self.buf.bytes());
        Ok(())
    }

    fn phase_done(&mut self, done: Phase) {
        let now = Instant::<Monotonic>::now();
        let ms = self.cost.mark.map_or(0, |m| (now - m).as_millis());
        let i = Phase::ALL.iter().position(|p| *p == done);
        if let Some(slot) = i.and_then(|i| self.cost.phase_ms.get_mut(i)) {
            *slot = ms;
        }
        let blocks = self.cost.blocks;
        if let Some(slot) = i.and_then(|i| self.cost.phase_blocks.get_mut(i)) {
            *slot = blocks.saturating_sub(self.cost.mark_blocks);
        }
        self.cost.mark = Some(now);
        self.cost.mark_blocks = blocks;
    }

    fn zone_wp(&mut self, dev: u16, zone: u32) -> zvcore::error::Result<u64> {
        let io = zvcore::error::Error::Corrupt("zone report failed");
        let m = self
            .devs
            .get(usize::from(dev))
            .and_then(|o| o.as_ref())
            .ok_or(io)?;
        let start = u64::from(zone) * m.geom.zone_blocks * SPB;
        let mut wp = None;
        let t0 = Instant::<Monotonic>::now();
        self.cost.reports += 1;
        let dev = m.dev().map_err(|_| io)?;
        let r = zone::report_zones(&dev, start, 1, &mut |_i, z: &ZoneReport| {
            wp = Some(match z.cond {
                ZoneCond::Full => z.capacity,
                _ => z.wp.saturating_sub(z.start),
            });
            Ok(())
        });
        self.cost.io_ms += ms_since(t0);
        r.map_err(|_| io)?;
        wp.map(|w| w / SPB).ok_or(io)
    }
}

/// Opens every member exclusively for `holder` (told when one dies) and
/// reads its geometry;
/// with `blank`, refuses members that hold data.
pub(crate) fn open_members<T: DeadHook>(
    name: &CStr,
    paths: &[CString],
    holder: &Arc<DeadWatch<T>>,
    blank: bool,
) -> Result<(KVec<Member>, KVec<DeviceGeometry>)> {
    if paths.is_empty() {
        pr_err!(
            "{}: no member devices (write paths to `devices` first)\n",
            name
        );
        return Err(EINVAL);
    }
    let mut members = KVec::with_capacity(paths.len(), GFP_KERNEL)?;
    let mut geoms = KVec::with_capacity(paths.len(), GFP_KERNEL)?;
    for p in paths {
        let dev = LowerDev::open(p, holder).inspect_err(|e| {
            pr_err!("{}: cannot open {} exclusively: {:?}\n", name, &**p, e);
        })?;
        let geom = probe_geometry(name, p, &dev)?;
        if blank && !is_blank(&dev, &geom)? {
            pr_err!(
                "{}: {} is not blank (holds data or another pool); format=2 overwrites it\n",
                name,
                &**p
            );
            return Err(EBUSY);
        }
        geoms.push(geom, GFP_KERNEL)?;
        members.push(Member::new(p, dev, geom)?, GFP_KERNEL)?;
    }
    Ok((members, geoms))
}

/// The condition of the zone starting at `sector` of `dev`, from a zone
/// report; `None` if the report fails. Sleeps (zone report).
pub(crate) fn zone_cond(dev: &LowerDev, sector: u64) -> Option<ZoneCond> {
    let mut cond = None;
    zone::report_zones(dev, sector, 1, &mut |_i, z: &ZoneReport| {
        cond = Some(z.cond);
        Ok(())
    })
    .ok()?;
    cond
}

/// The I/O-shape limits of all members, stacked.
pub(crate) fn stacked_limits(members: &[Member]) -> IoLimits {
    let mut limits = IoLimits::default();
    for d in members.iter().filter_map(|m| m.dev().ok()) {
        limits.stack(&d.io_limits());
    }
    limits
}

/// The member and device sector of pool address `addr` under geometry `geo`.
pub(crate) fn member_sector<'m, S: Deref<Target = [DeviceGeometry]>>(
    members: &'m [Member],
    geo: &PoolGeometry<S>,
    addr: u64,
) -> Result<(&'m Member, u64)> {
    let loc = geo.locate(addr).ok_or(EIO)?;
    let m = members.get(usize::from(loc.dev)).ok_or(EIO)?;
    Ok((m, loc.dev_offset * SPB))
}

impl<'a> Reader<'a> {
    /// A reader of the opened devices `devs` (caller's order), whose phase
    /// times count from `t0`.
    pub(crate) fn new(devs: &'a [Option<Member>], t0: Instant<Monotonic>) -> Result<Self> {
        Ok(Self {
            devs,
            buf: MetaBuf::new()?,
            ahead: MetaRun::new(READ_AHEAD_BLOCKS)?,
            cached: None,
            cost: ReadCost {
                mark: Some(t0),
                ..ReadCost::default()
            },
        })
    }

    /// What the reads cost so far.
    pub(crate) fn take_cost(&mut self) -> ReadCost {
        core::mem::take(&mut self.cost)
    }
}
