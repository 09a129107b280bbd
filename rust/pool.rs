// SPDX-License-Identifier: GPL-2.0
//! An active pool in the kernel: its member devices, the core's engine, and
//! the execution of the engine's metadata operations on the members.
//!
//! The engine (`zvcore::pool::Pool`) decides everything; this file only turns
//! its [`MetaOp`]s into I/O on the lower devices and its state into status
//! text. Metadata I/O is synchronous and runs in process context (configfs
//! writes, the flush worker), never in completion context.

use crate::commit::CommitBuf;
use crate::damage::{self, AssembleMode};
use crate::fastpath::PoolReq;
use crate::gc::Gc;
use crate::kwrap::{
    bdev::IoLimits,
    bdev::LowerDev,
    bio::BioSet,
    metaio::{self, MetaBuf, MetaRun},
    noio::NoIo,
    random,
    request::ReqList,
    workq::ReclaimQueue,
    zone::{self, ZoneCond, ZoneOp, ZoneReport, ZoneType},
};
use crate::nodes::{KNodes, TableBudget};
use crate::zonereads::ZoneReads;
use crate::zvcore::{
    self,
    alloc::{DevState, ZoneInfo},
    format::{MemberInfo, Record, Superblock, Uuid, BLOCK_SIZE},
    geom::{DevKind, DeviceGeometry, PoolGeometry, Stream},
    pool::{slots::MAX_VOLUMES, MetaOp, Pool, PoolConfig, PoolStorage, VolEntry},
    recovery::{Damage, Phase},
};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{
    prelude::*,
    str::{CString, Formatter},
    sync::{Arc, CondVar, Mutex, MutexGuard},
    time::{Instant, Monotonic},
    workqueue::Work,
};

/// The engine with the kernel's storage types.
pub(crate) type Engine = Pool<
    KVec<DeviceGeometry>,
    KVec<ZoneInfo>,
    KVec<u64>,
    KVVec<VolEntry>,
    KVec<Record>,
    KNodes,
    KVec<DevState>,
    KBox<Superblock>,
>;

/// The engine's caller storage.
type Storage = PoolStorage<
    KVec<ZoneInfo>,
    KVec<u64>,
    KVVec<VolEntry>,
    KVec<Record>,
    KNodes,
    KVec<DevState>,
    KBox<Superblock>,
>;

/// Journal records that can wait for one commit.
const RECORD_QUEUE: usize = 4096;
/// Zone size used to carve a conventional (non-zoned) member (256 MiB).
const CONV_ZONE_SECTORS: u64 = 256 * 2048;
/// Sectors per block.
pub(crate) const SPB: u64 = (BLOCK_SIZE / 512) as u64;

/// Converts a core error into an errno.
pub(crate) fn core_err(e: zvcore::error::Error) -> Error {
    Error::from_errno(-e.errno())
}

/// One member device of an active pool.
pub(crate) struct Member {
    pub(crate) path: CString,
    pub(crate) dev: LowerDev,
    pub(crate) geom: DeviceGeometry,
    /// Failed data reads and writes (user I/O and GC) since assembly.
    pub(crate) read_errors: AtomicU64,
    pub(crate) write_errors: AtomicU64,
}

/// Reads a lower device's geometry into the core's terms. Refuses devices
/// zvpool cannot use, with a logged reason.
fn probe_geometry(pool: &CStr, path: &CStr, dev: &LowerDev) -> Result<DeviceGeometry> {
    let g = dev.geometry();
    if g.read_only != 0 {
        pr_err!("{}: {}: device is read-only\n", pool, path);
        return Err(EROFS);
    }
    if g.logical_block_size == 0 || 4096 % g.logical_block_size != 0 {
        pr_err!(
            "{}: {}: logical block size {} does not divide 4096\n",
            pool,
            path,
            g.logical_block_size
        );
        return Err(EINVAL);
    }
    if g.zoned == 0 {
        let nr_zones = u32::try_from(g.nr_sectors / CONV_ZONE_SECTORS).map_err(|_| EINVAL)?;
        return Ok(DeviceGeometry {
            kind: DevKind::Conventional,
            nr_zones,
            zone_blocks: CONV_ZONE_SECTORS / SPB,
            zone_cap_blocks: CONV_ZONE_SECTORS / SPB,
            nr_conv_zones: 0,
            max_open: 0,
            max_active: 0,
            zone_append: false,
        });
    }
    if g.zone_sectors == 0 || g.zone_sectors % SPB != 0 {
        pr_err!(
            "{}: {}: zone size {} sectors is not a multiple of 4 KiB\n",
            pool,
            path,
            g.zone_sectors
        );
        return Err(EINVAL);
    }
    // Conventional zones (SMR) and the zone capacity come from a report.
    let mut nr_conv = 0u32;
    let mut seen_seq = false;
    let mut cap = 0u64;
    let mut bad = false;
    zone::report_zones(dev, 0, g.nr_zones, &mut |_i, z: &ZoneReport| {
        match z.kind {
            ZoneType::Conventional if !seen_seq => nr_conv += 1,
            ZoneType::Conventional => bad = true, // conventional zones after sequential ones
            _ if z.len != g.zone_sectors => bad = true,
            _ => {
                seen_seq = true;
                if cap == 0 {
                    cap = z.capacity;
                } else if cap != z.capacity {
                    bad = true;
                }
            }
        }
        Ok(())
    })?;
    if bad || cap == 0 || cap % SPB != 0 {
        pr_err!("{}: {}: unsupported zone layout (mixed capacities or interleaved conventional zones)\n", pool, path);
        return Err(EINVAL);
    }
    let geom = DeviceGeometry {
        kind: if nr_conv > 0 {
            DevKind::Smr
        } else {
            DevKind::Zns
        },
        nr_zones: g.nr_zones,
        zone_blocks: g.zone_sectors / SPB,
        zone_cap_blocks: cap / SPB,
        nr_conv_zones: nr_conv,
        max_open: g.max_open_zones,
        max_active: g.max_active_zones,
        zone_append: g.max_zone_append_sectors >= SPB as u32,
    };
    if let Err(e) = geom.validate() {
        pr_err!("{}: {}: unusable geometry: {:?}\n", pool, path, e);
        return Err(EINVAL);
    }
    Ok(geom)
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
fn reset_written_zones(dev: &LowerDev, geom: &DeviceGeometry) -> Result {
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

    fn run(&mut self, op: MetaOp<'_>) -> Result {
        match op {
            MetaOp::Flush => {
                for m in self.members {
                    zone::flush(&m.dev)?;
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
                zone::zone_mgmt(&m.dev, op, sector, zg.size * SPB)?;
            }
            MetaOp::Write(addr, data) => {
                let loc = self.geom.locate(addr).ok_or(EINVAL)?;
                let m = self.member(loc.dev)?;
                let dst = self.buf.bytes_mut();
                if data.len() != dst.len() {
                    return Err(EINVAL);
                }
                dst.copy_from_slice(data);
                metaio::write_block(&m.dev, loc.dev_offset * SPB, &mut self.buf)?;
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

/// Largest pool (in blocks, 4 TiB) verified at assembly: the verifier walks
/// every table once per window of [`VERIFY_WINDOW_BLOCKS`], so its time
/// grows with the pool; larger pools are verified offline by
/// `zvpoolctl pool check` (any size).
const VERIFY_MAX_BLOCKS: u64 = 1 << 30;
/// Pool blocks the assembly verifier's bitmap covers at once (1 TiB, a
/// 32 MiB bitmap).
const VERIFY_WINDOW_BLOCKS: u64 = 1 << 28;

/// Blocks read ahead at once by assembly (128 KiB): log zones are scanned
/// block by block, and one synchronous 4 KiB read per block made assembly
/// of a conventional member (256 MiB log zones) take tens of seconds.
const READ_AHEAD_BLOCKS: usize = 32;

/// Reads metadata for recovery from the opened devices (caller's order),
/// ahead within a zone (never across a zone boundary: a ZNS namespace may
/// refuse reads across zones).
struct Reader<'a> {
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
struct ReadCost {
    /// Blocks the recovery asked for.
    blocks: u64,
    /// Reads sent to the members, and the blocks they read.
    reads: u64,
    read_blocks: u64,
    /// Zone reports.
    reports: u64,
    /// Time spent waiting for those reads and reports.
    io_ms: i64,
    /// When the last phase ended, and how long each phase took
    /// ([`Phase::ALL`] order).
    mark: Option<Instant<Monotonic>>,
    phase_ms: [i64; 4],
}

/// Milliseconds since `t0`.
fn ms_since(t0: Instant<Monotonic>) -> i64 {
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
                let r = self.ahead.read(&m.dev, block * SPB, n as usize);
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
        let r = metaio::read_block(&m.dev, block * SPB, &mut self.buf);
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
        self.cost.mark = Some(now);
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
        let r = zone::report_zones(&m.dev, start, 1, &mut |_i, z: &ZoneReport| {
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

/// Engine state behind the pool lock.
pub(crate) struct EngineState {
    pub(crate) engine: KBox<Engine>,
    pub(crate) scratch: KVec<u8>,
}

/// The engine lock, held in a `GFP_NOIO` scope (see [`ActivePool::lock_engine`]).
pub(crate) struct EngineLock<'a> {
    // Dropped first: the lock is released before the scope ends.
    guard: MutexGuard<'a, EngineState>,
    _noio: NoIo,
}

impl Deref for EngineLock<'_> {
    type Target = EngineState;

    fn deref(&self) -> &EngineState {
        &self.guard
    }
}

impl DerefMut for EngineLock<'_> {
    fn deref_mut(&mut self) -> &mut EngineState {
        &mut self.guard
    }
}

/// The locks of a volume operation (create, delete, resize, snapshot,
/// clone, rollback, promote): the commit lock, then the engine lock. A
/// checkpoint holds the commit lock while it is written in steps (the
/// engine lock dropped for each step's I/O), and the engine refuses volume
/// operations meanwhile: they wait for it here instead.
pub(crate) struct ConfigLock<'a> {
    // Dropped first: the engine lock is released before the commit lock.
    lock: EngineLock<'a>,
    _commit: MutexGuard<'a, CommitBuf>,
}

impl Deref for ConfigLock<'_> {
    type Target = EngineState;

    fn deref(&self) -> &EngineState {
        &self.lock
    }
}

impl DerefMut for ConfigLock<'_> {
    fn deref_mut(&mut self) -> &mut EngineState {
        &mut self.lock
    }
}

/// A running pool.
#[pin_data]
pub(crate) struct ActivePool {
    pub(crate) name: CString,
    pub(crate) uuid: Uuid,
    pub(crate) members: KVec<Member>,
    geoms: KVec<DeviceGeometry>,
    #[pin]
    pub(crate) state: Mutex<EngineState>,
    /// The commit lock and buffer (`commit.rs`): taken before the engine
    /// lock, never while holding it.
    #[pin]
    pub(crate) committer: Mutex<CommitBuf>,
    /// Orders the submission of regular writes into sequential zones
    /// (members without zone append): taken under the engine lock right
    /// after allocation and held while submitting, without the engine lock.
    #[pin]
    pub(crate) write_order: Mutex<()>,
    /// Bios of the data path.
    pub(crate) bios: BioSet,
    /// Reads in flight per zone: a zone reset waits for its zone's (a read
    /// planned before an overwrite may still target the old zone).
    pub(crate) zone_reads: ZoneReads,
    /// I/O-shape limits of the members, stacked.
    pub(crate) limits: IoLimits,
    /// Background GC (`gc.rs`).
    #[pin]
    pub(crate) gc: Gc,
    #[pin]
    pub(crate) gc_work: Work<ActivePool>,
    /// Signalled after each GC batch (writes waiting for space).
    #[pin]
    pub(crate) gc_cv: CondVar,
    /// Writes of the asynchronous path whose bios completed, waiting for
    /// their block-table update (`fastpath.rs`).
    pub(crate) done_writes: ReqList<PoolReq>,
    /// The completion work that ends them, on its own `WQ_MEM_RECLAIM`
    /// queue (the writeback path depends on it).
    #[pin]
    pub(crate) end_work: Work<ActivePool, 1>,
    pub(crate) end_queue: ReclaimQueue,
    /// Writes waiting for GC to free space.
    pub(crate) space_waiters: AtomicU32,
    /// Names of the volumes bound to a configfs directory.
    #[pin]
    binds: Mutex<KVec<CString>>,
    /// Memory of the block tables and its limit (readable without the
    /// engine lock).
    pub(crate) tables: Arc<TableBudget>,
    /// Assembled read-only: every volume is a read-only disk, GC is off,
    /// nothing is written to any member.
    pub(crate) read_only: bool,
    /// The damage a read-only assembly went past (for `status`).
    damage: Option<Damage>,
}

/// A volume name bound to a configfs directory; unbinds on drop.
pub(crate) struct Binding {
    pool: Arc<ActivePool>,
    name: CString,
}

impl Drop for Binding {
    fn drop(&mut self) {
        let mut b = self.pool.binds.lock();
        if let Some(i) = b.iter().position(|n| n.to_bytes() == self.name.to_bytes()) {
            let _ = b.remove(i);
        }
    }
}

/// Moves an engine just built by the core to the heap. Out of line, and
/// taking the core's `Result` as it is: every move of the engine (about 500
/// bytes) through a caller's frame would be one more copy on its stack.
#[inline(never)]
fn boxed<T>(r: zvcore::error::Result<T>) -> Result<zvcore::error::Result<KBox<T>>> {
    Ok(match r {
        Ok(v) => Ok(KBox::new(v, GFP_KERNEL)?),
        Err(e) => Err(e),
    })
}

/// Runs `f` in a stack frame of its own.
#[inline(never)]
fn out_of_line<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// [`boxed`] for the first of a pair (the engine and what came with it).
#[inline(never)]
fn boxed_first<T, U>(
    r: zvcore::error::Result<(T, U)>,
) -> Result<zvcore::error::Result<(KBox<T>, U)>> {
    Ok(match r {
        Ok((v, u)) => Ok((KBox::new(v, GFP_KERNEL)?, u)),
        Err(e) => Err(e),
    })
}

/// Heap storage for the engine. The superblock (4 KiB) is initialised in
/// place, field by field: built as a value it would sit on the stack.
fn storage(name: &CStr, geoms: &[DeviceGeometry], tables: &Arc<TableBudget>) -> Result<Storage> {
    let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
    Ok(PoolStorage {
        zones: KVec::from_elem(ZoneInfo::default(), nz, GFP_KERNEL)?,
        zone_epochs: KVec::from_elem(0u64, nz, GFP_KERNEL)?,
        vols: KVVec::from_elem(VolEntry::default(), MAX_VOLUMES, GFP_KERNEL)?,
        records: KVec::from_elem(Record::VolumeDelete { vol: 0 }, RECORD_QUEUE, GFP_KERNEL)?,
        nodes: KNodes::new(name, tables.clone())?,
        devs: KVec::from_elem(DevState::EMPTY, geoms.len(), GFP_KERNEL)?,
        sb: KBox::init(
            init!(Superblock {
                compat: 0,
                ro_compat: 0,
                incompat: 0,
                pool_uuid: [0; 16],
                dev_uuid: [0; 16],
                generation: 0,
                member_index: 0,
                checkpoint_interval: 0,
                nr_members: 0,
                members <- pin_init::init_array_from_fn(|_| MemberInfo::EMPTY),
            }),
            GFP_KERNEL,
        )?,
    })
}

/// Opens every member exclusively for `holder` and reads its geometry;
/// with `blank`, refuses members that hold data.
fn open_members(
    name: &CStr,
    paths: &[CString],
    holder: *const kernel::ffi::c_void,
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
        let path = CString::try_from_fmt(fmt!("{}", &**p))?;
        members.push(
            Member {
                path,
                dev,
                geom,
                read_errors: AtomicU64::new(0),
                write_errors: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?;
    }
    Ok((members, geoms))
}

/// What the engine is built from: its copy of the geometries, its storage,
/// its configuration and a two-block scratch buffer.
type EngineParts = (KVec<DeviceGeometry>, Storage, PoolConfig, KVec<u8>);

/// The I/O-shape limits of all members, stacked.
fn stacked_limits(members: &[Member]) -> IoLimits {
    let mut limits = IoLimits::default();
    for m in members {
        limits.stack(&m.dev.io_limits());
    }
    limits
}

fn engine_parts(
    name: &CStr,
    geoms: &[DeviceGeometry],
    members: &[Member],
    tables: &Arc<TableBudget>,
) -> Result<EngineParts> {
    let mut engine_geoms = KVec::with_capacity(geoms.len(), GFP_KERNEL)?;
    engine_geoms.extend_from_slice(geoms, GFP_KERNEL)?;
    // Zone append where a member has it (the block layer emulates it for
    // zoned devices without native support): several writes can then be in
    // flight in one zone, and the device reports where each one landed.
    let cfg = PoolConfig {
        gc_item_max: ActivePool::gc_item_blocks(&stacked_limits(members)),
        ..PoolConfig::default_for(u16::try_from(geoms.len()).map_err(|_| EINVAL)?)
    };
    let scratch = KVec::from_elem(0u8, 2 * BLOCK_SIZE, GFP_KERNEL)?;
    Ok((engine_geoms, storage(name, geoms, tables)?, cfg, scratch))
}

impl ActivePool {
    /// Opens `paths` exclusively for `holder`, and formats them as a new pool
    /// (`format` = 1 only if blank, 2 = even if not).
    // Out of line: keeps the engine's temporaries off the configfs
    // callers' stack frames.
    #[inline(never)]
    pub(crate) fn create(
        name: &CStr,
        paths: &[CString],
        holder: *const kernel::ffi::c_void,
        format: u8,
    ) -> Result<Arc<Self>> {
        let (members, geoms) = open_members(name, paths, holder, format == 1)?;
        for m in members.iter() {
            reset_written_zones(&m.dev, &m.geom).inspect_err(|e| {
                pr_err!("{}: {}: cannot reset its zones: {:?}\n", name, &*m.path, e);
            })?;
        }
        let mut uuid: Uuid = [0; 16];
        random::fill(&mut uuid);
        let mut dev_uuids = KVec::from_elem([0u8; 16], paths.len(), GFP_KERNEL)?;
        for u in dev_uuids.iter_mut() {
            random::fill(u);
        }
        let tables = TableBudget::new()?;
        let (engine_geoms, st, cfg, mut scratch) = engine_parts(name, &geoms, &members, &tables)?;
        let engine = {
            let mut sink = MetaSink::new(name, &members, &geoms)?;
            let r = Engine::format(
                engine_geoms,
                uuid,
                &dev_uuids,
                cfg,
                st,
                &mut scratch,
                &mut |op| sink.apply(op),
            );
            boxed(r)?.map_err(|e| {
                pr_err!("{}: format failed: {:?}\n", name, e);
                sink.error(e)
            })?
        };
        pr_info!("{}: formatted {} member(s)\n", name, members.len());
        Self::new(
            name, uuid, members, geoms, engine, scratch, tables, false, None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &CStr,
        uuid: Uuid,
        members: KVec<Member>,
        geoms: KVec<DeviceGeometry>,
        engine: KBox<Engine>,
        scratch: KVec<u8>,
        tables: Arc<TableBudget>,
        read_only: bool,
        damage: Option<Damage>,
    ) -> Result<Arc<Self>> {
        let limits = stacked_limits(&members);
        let gc = Gc::new(name)?;
        let committer = CommitBuf::new(members.len())?;
        let end_queue = ReclaimQueue::new(name)?;
        let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
        let zone_reads = ZoneReads::new(nz)?;
        Arc::pin_init(
            try_pin_init!(Self {
                name: CString::try_from_fmt(fmt!("{}", name))?,
                uuid,
                members,
                geoms,
                state <- kernel::new_mutex!(EngineState { engine, scratch }),
                committer <- kernel::new_mutex!(committer),
                write_order <- kernel::new_mutex!(()),
                bios: BioSet::new()?,
                zone_reads,
                limits,
                gc <- gc,
                gc_work <- kernel::new_work!("zvpool::gc"),
                gc_cv <- kernel::new_condvar!("zvpool::gc_cv"),
                done_writes: ReqList::new(),
                end_work <- kernel::new_work!("zvpool::end_writes"),
                end_queue,
                space_waiters: AtomicU32::new(0),
                binds <- kernel::new_mutex!(KVec::new()),
                tables,
                read_only,
                damage,
            }),
            GFP_KERNEL,
        )
        .inspect(|p: &Arc<Self>| {
            p.note_levels(&p.state.lock().engine);
            if read_only {
                // Nothing may be written: no GC.
                p.gc.disabled.store(true, Ordering::Relaxed);
            }
        })
    }

    /// Opens `paths` exclusively for `holder` and assembles the pool they
    /// hold: superblocks, the newest valid checkpoint, then the journal.
    // Out of line: keeps the engine's temporaries off the configfs
    // callers' stack frames.
    #[inline(never)]
    pub(crate) fn assemble(
        name: &CStr,
        paths: &[CString],
        holder: *const kernel::ffi::c_void,
        mode: AssembleMode,
    ) -> Result<Arc<Self>> {
        let (opened, geoms) = open_members(name, paths, holder, false)?;
        let tables = TableBudget::new()?;
        let parts = engine_parts(name, &geoms, &opened, &tables)?;
        let mut opened = {
            let mut v = KVec::with_capacity(opened.len(), GFP_KERNEL)?;
            for m in opened {
                v.push(Some(m), GFP_KERNEL)?;
            }
            v
        };
        let (engine_geoms, st, cfg, mut scratch) = parts;
        let mut finish = KVec::<u32>::new();
        let mut finish_err = false;
        let t0 = Instant::<Monotonic>::now();
        let mut cost = ReadCost::default();
        // Out of line: the recovery's temporaries get their own frame.
        let (engine, asm) = out_of_line(|| -> Result<_> {
            let mut rd = Reader {
                devs: &opened,
                buf: MetaBuf::new()?,
                ahead: MetaRun::new(READ_AHEAD_BLOCKS)?,
                cached: None,
                cost: ReadCost {
                    mark: Some(t0),
                    ..ReadCost::default()
                },
            };
            // The verifier runs on the assembled state when its bitmap (one
            // bit per pool block) is affordable.
            let blocks: u64 = geoms
                .iter()
                .map(|g| u64::from(g.nr_zones) * g.zone_blocks)
                .sum();
            let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
            let verify = blocks <= VERIFY_MAX_BLOCKS;
            let mut bitmap = KVVec::from_elem(
                0u64,
                if verify {
                    zvcore::verify::bitmap_words(blocks.min(VERIFY_WINDOW_BLOCKS)).max(1)
                } else {
                    0
                },
                GFP_KERNEL,
            )?;
            let mut counts = KVVec::from_elem(0u64, if verify { nz } else { 0 }, GFP_KERNEL)?;
            let check = if verify {
                Some(crate::zvcore::recovery::Check {
                    bitmap: &mut bitmap,
                    counts: &mut counts,
                })
            } else {
                pr_info!(
                    "{}: pool too large to verify at assembly (run zvpoolctl pool check)\n",
                    name
                );
                None
            };
            let r = crate::zvcore::recovery::recover(
                engine_geoms,
                &mut rd,
                cfg,
                st,
                &mut scratch,
                &mut |z| {
                    finish_err |= finish.push(z, GFP_KERNEL).is_err();
                },
                check,
            );
            cost = core::mem::take(&mut rd.cost);
            boxed_first(r)?.map_err(|e| {
                pr_err!("{}: cannot assemble: {}\n", name, e.describe());
                core_err(e)
            })
        })?;
        if finish_err {
            return Err(ENOMEM);
        }
        let mut engine = engine;
        // Damage refuses a normal assembly; read-only writes nothing (not
        // even the zone finishes recovery asks for).
        let read_only = damage::decide(name, paths, &mut engine, &asm, mode)?;
        if read_only {
            engine.set_read_only();
            finish.clear();
        }
        // Members in the pool's order.
        let mut members = KVec::with_capacity(opened.len(), GFP_KERNEL)?;
        let mut mgeoms = KVec::with_capacity(opened.len(), GFP_KERNEL)?;
        for m in 0..usize::from(asm.nr_members) {
            let j = usize::from(*asm.dev_of_member.get(m).ok_or(EINVAL)?);
            let m = opened.get_mut(j).and_then(|o| o.take()).ok_or(EINVAL)?;
            mgeoms.push(m.geom, GFP_KERNEL)?;
            members.push(m, GFP_KERNEL)?;
        }
        if members.len() != paths.len() {
            pr_err!(
                "{}: {} device(s) given, the pool has {} member(s)\n",
                name,
                paths.len(),
                members.len()
            );
            return Err(EINVAL);
        }
        {
            let mut sink = MetaSink::new(name, &members, &mgeoms)?;
            for z in finish.iter() {
                sink.run(MetaOp::Finish(*z))?;
            }
        }
        let mut uuid: Uuid = [0; 16];
        uuid.copy_from_slice(&engine.superblock().pool_uuid);
        pr_info!(
            "{}: assembled {} member(s): checkpoint {}{}, {} journal block(s) replayed\n",
            name,
            members.len(),
            asm.checkpoint_generation,
            if asm.fell_back {
                " (newest was unusable)"
            } else {
                ""
            },
            asm.replayed_blocks
        );
        let [ckpt_ms, journal_ms, zones_ms, verify_ms] = cost.phase_ms;
        pr_info!(
            "{}: assembly took {} ms (checkpoint {}, journal {}, zones {}, verifier {}): {} metadata block(s) read ({} from the members in {} read(s)), {} zone report(s), {} ms waiting for them\n",
            name,
            ms_since(t0),
            ckpt_ms,
            journal_ms,
            zones_ms,
            verify_ms,
            cost.blocks,
            cost.read_blocks,
            cost.reads,
            cost.reports,
            cost.io_ms
        );
        if asm.torn_blocks > 0 {
            pr_info!(
                "{}: {} journal block(s) of an unfinished commit (torn tail) dropped\n",
                name,
                asm.torn_blocks
            );
        }
        if read_only {
            pr_info!(
                "{}: assembled read-only: nothing is written to the members\n",
                name
            );
        }
        let damage = if read_only { asm.damage } else { None };
        let rewound = asm.damage.is_some() && !read_only;
        let pool = Self::new(
            name, uuid, members, mgeoms, engine, scratch, tables, read_only, damage,
        )?;
        if rewound {
            // The rewind is recorded by the checkpoint, which also covers
            // every journal block seen: nothing after the damage is ever
            // replayed again.
            let _noio = NoIo::enter();
            let mut c = pool.committer.lock();
            pool.checkpoint_steps(&mut c)?;
        } else {
            // Recovery may leave records (e.g. after a torn tail): commit.
            pool.commit()?;
        }
        Ok(pool)
    }

    /// Takes the engine lock in a `GFP_NOIO` scope, for the configuration
    /// paths (configfs) that change the engine and commit: allocations under
    /// the lock (metadata buffers, table nodes) must not enter reclaim that
    /// writes to a zvpool disk, whose requests need this lock (and whose
    /// queue an online shrink freezes before taking it). The data path and
    /// GC run in such a scope already.
    pub(crate) fn lock_engine(&self) -> EngineLock<'_> {
        let noio = NoIo::enter();
        EngineLock {
            guard: self.state.lock(),
            _noio: noio,
        }
    }

    /// Takes the locks of a volume operation ([`ConfigLock`]). Call
    /// [`Self::commit`] only after dropping them.
    pub(crate) fn lock_config(&self) -> ConfigLock<'_> {
        let commit = self.committer.lock();
        ConfigLock {
            lock: self.lock_engine(),
            _commit: commit,
        }
    }

    /// The members' geometries, in the pool's order.
    pub(crate) fn geoms(&self) -> &[DeviceGeometry] {
        &self.geoms
    }

    /// Clean stop, after the last commit: the engine's closing journal
    /// block (it lets the next assembly tell damage to the newest commit
    /// from a torn tail). The engine takes no change afterwards.
    pub(crate) fn close_metadata(&self) -> Result {
        let _c = self.committer.lock();
        let mut st = self.lock_engine();
        let mut sink = MetaSink::new(&self.name, &self.members, &self.geoms)?;
        let EngineState {
            engine, scratch, ..
        } = &mut *st;
        engine
            .close(scratch, &mut |op| sink.apply(op))
            .map(|_| ())
            .map_err(|e| sink.error(e))
    }

    /// Writes the `status` attribute.
    pub(crate) fn status(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let st = self.state.lock();
        let e = &st.engine;
        let a = e.alloc();
        let s = e.stats();
        let cap = e.geom().data_capacity_blocks();
        let used = a.used_blocks();
        writeln!(w, "state active")?;
        w.write_str("uuid ")?;
        for (i, b) in self.uuid.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                w.write_str("-")?;
            }
            write!(w, "{:02x}", b)?;
        }
        writeln!(w)?;
        writeln!(w, "members {}", self.members.len())?;
        writeln!(w, "capacity_bytes {}", cap * BLOCK_SIZE as u64)?;
        writeln!(w, "used_bytes {}", used * BLOCK_SIZE as u64)?;
        writeln!(w, "free_bytes {}", a.free_blocks() * BLOCK_SIZE as u64)?;
        writeln!(w, "zones_total {}", a.data_zones())?;
        writeln!(w, "zones_free {}", a.free_zones())?;
        writeln!(w, "zones_gc_reserve {}", a.config().gc_reserve)?;
        writeln!(
            w,
            "volumes {}",
            e.volumes().iter().filter(|v| v.table.is_some()).count()
        )?;
        writeln!(w, "user_blocks_written {}", s.user_blocks)?;
        writeln!(w, "gc_blocks_written {}", s.gc_blocks)?;
        let wa = (s.user_blocks.saturating_add(s.gc_blocks))
            .saturating_mul(1000)
            .checked_div(s.user_blocks)
            .unwrap_or(1000);
        writeln!(w, "write_amplification {}.{:03}", wa / 1000, wa % 1000)?;
        writeln!(w, "zones_reset {}", s.zones_reset)?;
        writeln!(w, "gc_runs {}", self.gc.runs.load(Ordering::Relaxed))?;
        writeln!(
            w,
            "throttled_ms {}",
            self.gc.throttled_us.load(Ordering::Relaxed) / 1000
        )?;
        writeln!(w, "journal_blocks {}", s.journal_blocks)?;
        writeln!(w, "checkpoints {}", s.checkpoints)?;
        writeln!(
            w,
            "checkpoint_in_flight {}",
            u8::from(e.checkpoint_in_flight())
        )?;
        writeln!(w, "checkpoint_blocks {}", s.checkpoint_blocks)?;
        writeln!(w, "checkpoint_capacity {}", e.checkpoint_capacity_blocks())?;
        writeln!(w, "metadata_full {}", u8::from(e.metadata_full()))?;
        writeln!(w, "table_nodes {}", e.nodes().live())?;
        writeln!(w, "table_memory_bytes {}", self.tables.used())?;
        writeln!(w, "table_memory_limit {}", self.tables.limit())?;
        writeln!(w, "table_memory_refused {}", self.tables.refused())?;
        writeln!(w, "table_alloc_failures {}", self.tables.alloc_failures())?;
        writeln!(
            w,
            "snapshots {}",
            e.volumes()
                .iter()
                .filter(|v| v.table.is_some() && v.read_only())
                .count()
        )?;
        writeln!(
            w,
            "shared_bytes {}",
            e.shared_live_blocks() * BLOCK_SIZE as u64
        )?;
        damage::status(w, self.read_only, self.damage.as_ref(), e.last_rewind())
    }

    /// Writes the `members` attribute.
    pub(crate) fn members_text(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let st = self.state.lock();
        let a = st.engine.alloc();
        for (i, m) in self.members.iter().enumerate() {
            let g = &m.geom;
            let re = m.read_errors.load(Ordering::Relaxed);
            let we = m.write_errors.load(Ordering::Relaxed);
            let kind = match g.kind {
                DevKind::Zns => "zns",
                DevKind::Smr => "smr",
                DevKind::Conventional => "conventional",
            };
            writeln!(
                w,
                "{} {} {} zones={} zone_bytes={} cap_bytes={} max_open={} max_active={} free_zones={} read_errors={} write_errors={} state={}",
                i,
                m.path.to_str().unwrap_or("?"),
                kind,
                g.nr_zones,
                g.zone_blocks * BLOCK_SIZE as u64,
                g.zone_cap_blocks * BLOCK_SIZE as u64,
                g.max_open,
                g.max_active,
                a.dev_free_zones(i as u16),
                re,
                we,
                if re + we == 0 { "ok" } else { "errors" }
            )?;
        }
        Ok(())
    }

    /// Writes the `volumes` attribute into `page`; returns its length. A
    /// page holds a few dozen lines: the volumes that do not fit are
    /// counted in a last `# <n> more volumes not listed` line.
    pub(crate) fn volumes_text(&self, page: &mut [u8]) -> usize {
        use core::fmt::Write as _;
        /// Room kept for the last line.
        const TRAILER: usize = 64;
        let st = self.state.lock();
        let e = &*st.engine;
        let limit = page.len().saturating_sub(TRAILER);
        let mut pos = 0usize;
        let mut more = 0u32;
        for v in e.volumes().iter().filter(|v| v.table.is_some()) {
            if more > 0 {
                // The page is full: count the rest without describing them.
                more = more.saturating_add(1);
                continue;
            }
            let mut line = [0u8; LINE_MAX];
            let mut f = Formatter::new(&mut line);
            if volume_line(e, v, &mut f).is_err() {
                more = more.saturating_add(1);
                continue;
            }
            let n = f.bytes_written();
            let end = pos.saturating_add(n);
            match (page.get_mut(pos..end), line.get(..n)) {
                (Some(dst), Some(src)) if end <= limit => {
                    dst.copy_from_slice(src);
                    pos = end;
                }
                _ => more = more.saturating_add(1),
            }
        }
        if more > 0 {
            if let Some(rest) = page.get_mut(pos..) {
                let mut f = Formatter::new(rest);
                if writeln!(f, "# {} more volumes not listed", more).is_ok() {
                    pos = pos.saturating_add(f.bytes_written());
                }
            }
        }
        pos
    }

    /// Appends every volume's `volumes` line to `out` (the control
    /// device's listing, of any length). The engine lock is taken for
    /// [`LIST_BATCH`] slots at a time and nothing is allocated under it: a
    /// volume created or deleted meanwhile may or may not be listed, the
    /// others are listed once.
    pub(crate) fn volumes_listing(&self, out: &mut KVVec<u8>) -> Result {
        let mut batch = KVVec::from_elem(0u8, LIST_BATCH * LINE_MAX, GFP_KERNEL)?;
        let mut slot = 0usize;
        loop {
            let (n, next) = {
                let st = self.state.lock();
                let e = &*st.engine;
                let vols = e.volumes();
                let end = slot.saturating_add(LIST_BATCH).min(vols.len());
                let mut n = 0usize;
                for v in vols.get(slot..end).unwrap_or(&[]) {
                    if v.table.is_none() {
                        continue;
                    }
                    let Some(dst) = batch.get_mut(n..n.saturating_add(LINE_MAX)) else {
                        break;
                    };
                    let mut f = Formatter::new(dst);
                    if volume_line(e, v, &mut f).is_ok() {
                        n = n.saturating_add(f.bytes_written());
                    }
                }
                (n, (end < vols.len()).then_some(end))
            };
            out.extend_from_slice(batch.get(..n).unwrap_or(&[]), GFP_KERNEL)?;
            match next {
                Some(s) => slot = s,
                None => return Ok(()),
            }
        }
    }
}

/// Volume slots described per engine lock hold by
/// [`ActivePool::volumes_listing`].
const LIST_BATCH: usize = 16;
/// Room for one `volumes` line (a 31-character name and its origin's, and
/// seven numbers: under 256 bytes).
const LINE_MAX: usize = 256;

/// One line of the `volumes` attribute.
fn volume_line(e: &Engine, v: &VolEntry, w: &mut impl core::fmt::Write) -> core::fmt::Result {
    let Some(info) = crate::snapshot::info_of(e, v.id) else {
        return Err(core::fmt::Error);
    };
    write!(w, "{} ", v.id)?;
    for b in v.name.as_bytes() {
        w.write_char(char::from(*b))?;
    }
    write!(
        w,
        " size_bytes={} mapped_bytes={} kind={} origin=",
        info.size * BLOCK_SIZE as u64,
        info.mapped * BLOCK_SIZE as u64,
        info.kind.word()
    )?;
    match info.origin.and_then(|o| e.volume(o)) {
        Some(o) => {
            for b in o.name.as_bytes() {
                w.write_char(char::from(*b))?;
            }
        }
        None => w.write_char('-')?,
    }
    writeln!(
        w,
        " exclusive_bytes={} shared_bytes={}",
        info.exclusive * BLOCK_SIZE as u64,
        info.shared() * BLOCK_SIZE as u64
    )
}

/// The stream a user write goes to.
pub(crate) const USER_STREAM: Stream = Stream::UserHot;

impl ActivePool {
    /// The member and device sector of pool address `addr` (the engine's
    /// geometry: for callers holding the engine lock).
    pub(crate) fn locate(&self, e: &Engine, addr: u64) -> Result<(&Member, u64)> {
        self.member_sector(e.geom(), addr)
    }

    /// [`Self::locate`] from the members' fixed geometry, without the engine
    /// (and its lock): for error paths that may run with the lock held.
    pub(crate) fn locate_addr(&self, addr: u64) -> Result<(&Member, u64)> {
        let geo = PoolGeometry::new(&self.geoms[..]).map_err(core_err)?;
        self.member_sector(&geo, addr)
    }

    fn member_sector<S: Deref<Target = [DeviceGeometry]>>(
        &self,
        geo: &PoolGeometry<S>,
        addr: u64,
    ) -> Result<(&Member, u64)> {
        let loc = geo.locate(addr).ok_or(EIO)?;
        let m = self.members.get(usize::from(loc.dev)).ok_or(EIO)?;
        Ok((m, loc.dev_offset * SPB))
    }

    /// Binds volume name `name` to a configfs directory.
    pub(crate) fn bind(self: &Arc<Self>, name: &CStr) -> Result<Binding> {
        let name = CString::try_from_fmt(fmt!("{}", name))?;
        let copy = CString::try_from_fmt(fmt!("{}", &*name))?;
        self.binds.lock().push(copy, GFP_KERNEL)?;
        Ok(Binding {
            pool: self.clone(),
            name,
        })
    }

    /// Number of volumes bound to configfs directories.
    pub(crate) fn bound(&self) -> usize {
        self.binds.lock().len()
    }

    /// Whether volume name `name` is bound to a directory.
    pub(crate) fn is_bound(&self, name: &[u8]) -> bool {
        self.binds.lock().iter().any(|n| n.to_bytes() == name)
    }

    /// Resizes volume `id` to `blocks` blocks (a shrink unmaps the tail) and commits.
    pub(crate) fn vol_resize(&self, id: u32, blocks: u64) -> Result {
        self.lock_config()
            .engine
            .vol_resize(id, blocks)
            .map_err(core_err)?;
        self.commit()
    }

    /// Volume `id`'s size in blocks, if it exists.
    pub(crate) fn vol_blocks(&self, id: u32) -> Option<u64> {
        let st = self.state.lock();
        st.engine.volume(id).and_then(|v| v.table).map(|t| t.size())
    }

    /// The id of the volume named `name`, if the metadata has one.
    pub(crate) fn find_volume(&self, name: &[u8]) -> Option<u32> {
        crate::snapshot::id_of(&self.state.lock().engine, name)
    }

    /// Creates a volume of `blocks` blocks and commits it; returns its id.
    pub(crate) fn vol_create(&self, name: &[u8], blocks: u64) -> Result<u32> {
        let id = {
            let mut st = self.lock_config();
            let id = crate::snapshot::next_id(&st.engine);
            st.engine
                .vol_create(id, name, blocks, 0)
                .map_err(core_err)?;
            id
        };
        self.commit()?;
        Ok(id)
    }

    /// Deletes volume `id` (its blocks return to the pool) and commits.
    pub(crate) fn vol_delete(&self, id: u32) -> Result {
        self.lock_config().engine.vol_delete(id).map_err(core_err)?;
        self.commit()
    }
}
