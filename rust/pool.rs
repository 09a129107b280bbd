// SPDX-License-Identifier: GPL-2.0
//! An active pool in the kernel: its member devices, the core's engine, and
//! the execution of the engine's metadata operations on the members.
//!
//! The engine (`zvcore::pool::Pool`) decides everything; this file only turns
//! its [`MetaOp`]s into I/O on the lower devices and its state into status
//! text. Metadata I/O is synchronous and runs in process context (configfs
//! writes, the flush worker), never in completion context.

use crate::kwrap::{
    bdev::LowerDev,
    metaio::{self, MetaBuf},
    random,
    zone::{self, ZoneCond, ZoneOp, ZoneReport, ZoneType},
};
use crate::nodes::KNodes;
use crate::zvcore::{
    self,
    alloc::ZoneInfo,
    format::{Record, Uuid, BLOCK_SIZE},
    geom::{DevKind, DeviceGeometry, PoolGeometry, Stream},
    pool::{MetaOp, Pool, PoolConfig, PoolStorage, VolEntry},
};
use kernel::{prelude::*, str::CString, sync::Mutex};

/// The engine with the kernel's storage types.
pub(crate) type Engine =
    Pool<KVec<DeviceGeometry>, KVec<ZoneInfo>, KVec<u64>, KVec<VolEntry>, KVec<Record>, KNodes>;

/// Most volumes per pool.
pub(crate) const MAX_VOLUMES: usize = 256;
/// Journal records that can wait for one commit.
const RECORD_QUEUE: usize = 4096;
/// Zone size used to carve a conventional (non-zoned) member (256 MiB).
const CONV_ZONE_SECTORS: u64 = 256 * 2048;
/// Sectors per block.
const SPB: u64 = (BLOCK_SIZE / 512) as u64;

/// Converts a core error into an errno.
pub(crate) fn core_err(e: zvcore::error::Error) -> Error {
    Error::from_errno(-e.errno())
}

/// One member device of an active pool.
pub(crate) struct Member {
    pub(crate) path: CString,
    pub(crate) dev: LowerDev,
    pub(crate) geom: DeviceGeometry,
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
        pr_err!("{}: {}: logical block size {} does not divide 4096\n", pool, path, g.logical_block_size);
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
        pr_err!("{}: {}: zone size {} sectors is not a multiple of 4 KiB\n", pool, path, g.zone_sectors);
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
        kind: if nr_conv > 0 { DevKind::Smr } else { DevKind::Zns },
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

/// Executes the engine's metadata operations on the members.
struct MetaSink<'a> {
    pool: &'a CStr,
    members: &'a [Member],
    geom: PoolGeometry<&'a [DeviceGeometry]>,
    buf: MetaBuf,
    err: Option<Error>,
}

impl<'a> MetaSink<'a> {
    fn new(pool: &'a CStr, members: &'a [Member], geoms: &'a [DeviceGeometry]) -> Result<Self> {
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
            MetaOp::Reset(z) | MetaOp::Finish(z) => {
                let zg = self.geom.zone(z).ok_or(EINVAL)?;
                let base = self.geom.dev_base(zg.dev).ok_or(EINVAL)?;
                let m = self.member(zg.dev)?;
                let sector = (zg.start - base) * SPB;
                let op = if matches!(op, MetaOp::Reset(_)) { ZoneOp::Reset } else { ZoneOp::Finish };
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
    fn apply(&mut self, op: MetaOp<'_>) -> zvcore::error::Result<()> {
        match self.run(op) {
            Ok(()) => Ok(()),
            Err(e) => {
                pr_err!("{}: metadata I/O failed ({:?}): {:?}\n", self.pool, op_name(&op), e);
                self.err = Some(e);
                Err(zvcore::error::Error::Corrupt("metadata I/O failed"))
            }
        }
    }

    /// The error to report for a failed engine call.
    fn error(&self, e: zvcore::error::Error) -> Error {
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

/// Engine state behind the pool lock.
pub(crate) struct EngineState {
    pub(crate) engine: KBox<Engine>,
    scratch: KVec<u8>,
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
}

fn storage(geoms: &[DeviceGeometry]) -> Result<PoolStorage<KVec<ZoneInfo>, KVec<u64>, KVec<VolEntry>, KVec<Record>, KNodes>> {
    let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
    Ok(PoolStorage {
        zones: KVec::from_elem(ZoneInfo::default(), nz, GFP_KERNEL)?,
        zone_epochs: KVec::from_elem(0u64, nz, GFP_KERNEL)?,
        vols: KVec::from_elem(VolEntry::default(), MAX_VOLUMES, GFP_KERNEL)?,
        records: KVec::from_elem(Record::VolumeDelete { vol: 0 }, RECORD_QUEUE, GFP_KERNEL)?,
        nodes: KNodes::new(),
    })
}

impl ActivePool {
    /// Opens `paths` exclusively for `holder`, and formats them as a new pool
    /// (`format` = 1 only if blank, 2 = even if not).
    pub(crate) fn create(
        name: &CStr,
        paths: &[CString],
        holder: *const kernel::ffi::c_void,
        format: u8,
    ) -> Result<Pin<KBox<Self>>> {
        if paths.is_empty() {
            pr_err!("{}: no member devices (write paths to `devices` first)\n", name);
            return Err(EINVAL);
        }
        let mut members = KVec::with_capacity(paths.len(), GFP_KERNEL)?;
        let mut geoms = KVec::with_capacity(paths.len(), GFP_KERNEL)?;
        for p in paths {
            let dev = LowerDev::open(p, holder).inspect_err(|e| {
                pr_err!("{}: cannot open {} exclusively: {:?}\n", name, &**p, e);
            })?;
            let geom = probe_geometry(name, p, &dev)?;
            if format == 1 && !is_blank(&dev, &geom)? {
                pr_err!("{}: {} is not blank (holds data or another pool); format=2 overwrites it\n", name, &**p);
                return Err(EBUSY);
            }
            geoms.push(geom, GFP_KERNEL)?;
            members.push(
                Member {
                    path: CString::try_from_fmt(fmt!("{}", &**p))?,
                    dev,
                    geom,
                },
                GFP_KERNEL,
            )?;
        }
        let mut uuid: Uuid = [0; 16];
        random::fill(&mut uuid);
        let mut dev_uuids = KVec::from_elem([0u8; 16], paths.len(), GFP_KERNEL)?;
        for u in dev_uuids.iter_mut() {
            random::fill(u);
        }
        let mut scratch = KVec::from_elem(0u8, 2 * BLOCK_SIZE, GFP_KERNEL)?;
        let st = storage(&geoms)?;
        let mut engine_geoms = KVec::with_capacity(geoms.len(), GFP_KERNEL)?;
        engine_geoms.extend_from_slice(&geoms, GFP_KERNEL)?;
        let cfg = PoolConfig::default_for(u16::try_from(paths.len()).map_err(|_| EINVAL)?);
        let engine = {
            let mut sink = MetaSink::new(name, &members, &geoms)?;
            let r = Engine::format(engine_geoms, uuid, &dev_uuids, cfg, st, &mut scratch, &mut |op| {
                sink.apply(op)
            });
            r.map_err(|e| {
                pr_err!("{}: format failed: {:?}\n", name, e);
                sink.error(e)
            })?
        };
        let engine = KBox::new(engine, GFP_KERNEL)?;
        pr_info!("{}: formatted {} member(s)\n", name, members.len());
        KBox::pin_init(
            try_pin_init!(Self {
                name: CString::try_from_fmt(fmt!("{}", name))?,
                uuid,
                members,
                geoms,
                state <- kernel::new_mutex!(EngineState { engine, scratch }),
            }),
            GFP_KERNEL,
        )
    }

    /// Commits everything queued (a flush of the pool's metadata).
    pub(crate) fn commit(&self, st: &mut EngineState) -> Result {
        let mut sink = MetaSink::new(&self.name, &self.members, &self.geoms)?;
        let EngineState { engine, scratch } = st;
        let r = engine.flush(scratch, &mut |op| sink.apply(op));
        let ok = r.is_ok();
        let end = engine.flush_end(ok);
        match (r, end) {
            (Err(e), _) => Err(sink.error(e)),
            (Ok(_), Err(e)) => Err(core_err(e)),
            (Ok(_), Ok(())) => Ok(()),
        }
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
        writeln!(w, "volumes {}", e.volumes().iter().filter(|v| v.table.is_some()).count())?;
        writeln!(w, "user_blocks_written {}", s.user_blocks)?;
        writeln!(w, "gc_blocks_written {}", s.gc_blocks)?;
        let wa = if s.user_blocks == 0 { 1000 } else { (s.user_blocks + s.gc_blocks) * 1000 / s.user_blocks };
        writeln!(w, "write_amplification {}.{:03}", wa / 1000, wa % 1000)?;
        writeln!(w, "zones_reset {}", s.zones_reset)?;
        writeln!(w, "gc_runs 0")?;
        writeln!(w, "throttled_ms 0")?;
        writeln!(w, "journal_blocks {}", s.journal_blocks)?;
        writeln!(w, "checkpoints {}", s.checkpoints)?;
        writeln!(w, "table_nodes {}", e.nodes().live())
    }

    /// Writes the `members` attribute.
    pub(crate) fn members_text(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let st = self.state.lock();
        let a = st.engine.alloc();
        for (i, m) in self.members.iter().enumerate() {
            let g = &m.geom;
            let kind = match g.kind {
                DevKind::Zns => "zns",
                DevKind::Smr => "smr",
                DevKind::Conventional => "conventional",
            };
            writeln!(
                w,
                "{} {} {} zones={} zone_bytes={} cap_bytes={} max_open={} max_active={} free_zones={} read_errors=0 write_errors=0 state=ok",
                i,
                m.path.to_str().unwrap_or("?"),
                kind,
                g.nr_zones,
                g.zone_blocks * BLOCK_SIZE as u64,
                g.zone_cap_blocks * BLOCK_SIZE as u64,
                g.max_open,
                g.max_active,
                a.dev_free_zones(i as u16)
            )?;
        }
        Ok(())
    }

    /// Writes the `volumes` attribute.
    pub(crate) fn volumes_text(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let st = self.state.lock();
        for v in st.engine.volumes() {
            if let Some(t) = &v.table {
                w.write_fmt(format_args!("{} ", v.id))?;
                for b in v.name.as_bytes() {
                    w.write_char(char::from(*b))?;
                }
                writeln!(
                    w,
                    " size_bytes={} mapped_bytes={}",
                    t.size() * BLOCK_SIZE as u64,
                    t.mapped() * BLOCK_SIZE as u64
                )?;
            }
        }
        Ok(())
    }
}

/// The stream a user write goes to.
pub(crate) const USER_STREAM: Stream = Stream::UserHot;
