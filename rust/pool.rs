// SPDX-License-Identifier: GPL-2.0
//! An active pool in the kernel: the life of one pool from creation or
//! assembly to stop, and what ties its parts together.
//!
//! The parts live in files of their own: the engine and its lock
//! (`engine.rs`), the member devices and their metadata I/O
//! (`members.rs`), commits (`commit.rs`), the data path (`datapath.rs`,
//! `fastpath.rs`), GC (`gc.rs`), snapshots (`snapshot.rs`) and the text the
//! pool shows (`status.rs`). This file holds [`ActivePool`], its creation
//! (format), its assembly (recovery through [`Reader`]) and the volume
//! operations that need only the engine.

use crate::commitbuf::CommitBuf;
use crate::damage::{self, AssembleMode};
use crate::degraded;
use crate::engine::{
    boxed, core_err, out_of_line, storage, Engine, EngineCell, EngineLock, EngineState, Storage,
};
use crate::gcstate::Gc;
use crate::healthstate::Health;
use crate::kwrap::{
    append::AppendVec, bdev::IoLimits, bio::BioSet, holder::DeadWatch, noio::NoIo, random,
    request::ReqList, workq::ReclaimQueue,
};
use crate::members::{
    member_sector, ms_since, open_members, reset_written_zones, stacked_limits, Member, MetaSink,
    ReadCost, Reader,
};
use crate::nodes::TableBudget;
use crate::poolreq::PoolReq;
use crate::scrubstate::Scrub;
use crate::waits::{CommitEnds, WriteWaits};
use crate::zonereads::ZoneReads;
use crate::zvcore::{
    self,
    format::{
        journal::VOL_FLAG_MIRRORED,
        layout::{ckpt_zones_of, set_meta_zones},
        Uuid, BLOCK_SIZE,
    },
    geom::{DeviceGeometry, PoolGeometry, Stream, MAX_DEVICES},
    pool::{MetaOp, PoolConfig},
    recovery::Damage,
};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    prelude::*,
    str::CString,
    sync::{Arc, CondVar, Mutex, MutexGuard},
    time::{Instant, Monotonic},
    workqueue::Work,
};

/// Largest pool (in blocks, 4 TiB) verified at assembly: the verifier walks
/// every table once per window of [`VERIFY_WINDOW_BLOCKS`], so its time
/// grows with the pool; larger pools are verified offline by
/// `zvpoolctl pool check` (any size).
const VERIFY_MAX_BLOCKS: u64 = 1 << 30;
/// Pool blocks the assembly verifier's bitmap covers at once (1 TiB, a
/// 32 MiB bitmap).
const VERIFY_WINDOW_BLOCKS: u64 = 1 << 28;

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
    /// The members in the pool's order, and their geometries (a member
    /// added online is appended: `membership.rs`).
    pub(crate) members: AppendVec<Member>,
    pub(crate) geoms: AppendVec<DeviceGeometry>,
    /// The engine and its lock (`engine.rs`).
    #[pin]
    pub(crate) state: EngineCell,
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
    /// Scrub state (`scrubstate.rs`; the pass, `scrub.rs`, runs in the GC
    /// work).
    pub(crate) scrub: Scrub,
    /// Writes of the asynchronous path whose bios completed, waiting for
    /// their block-table update (`fastpath.rs`).
    pub(crate) done_writes: ReqList<PoolReq>,
    /// The completion work that ends them, on its own `WQ_MEM_RECLAIM`
    /// queue (the writeback path depends on it).
    #[pin]
    pub(crate) end_work: Work<ActivePool, 1>,
    pub(crate) end_queue: ReclaimQueue,
    /// Writes held until GC has paid for them (`paced.rs`).
    pub(crate) paced: ReqList<PoolReq>,
    /// Writes waiting for GC to free space.
    pub(crate) space_waiters: AtomicU32,
    /// Where write requests waited (`status`).
    pub(crate) waits: WriteWaits,
    /// Commit ends, woken for the tasks waiting for one without the commit
    /// lock (`commit.rs`).
    pub(crate) commit_ends: CommitEnds,
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
    pub(crate) damage: Option<Damage>,
    /// Health reporting (`health.rs`): what was last told, and its work.
    #[pin]
    pub(crate) health: Health,
    #[pin]
    pub(crate) health_work: Work<ActivePool, 2>,
    /// The members' holder: the block layer tells the pool through it when
    /// a member dies (attached once the pool is registered, detached when
    /// it stops).
    pub(crate) watch: Arc<DeadWatch<ActivePool>>,
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

/// What the engine is built from: its copy of the geometries, its storage,
/// its configuration and a two-block scratch buffer.
type EngineParts = (KVec<DeviceGeometry>, Storage, PoolConfig, KVec<u8>);

/// The parts of an engine over `geoms` (as given to the core: with
/// `ABSENT` entries for missing members), its storage sized for the
/// members `sizing`, of stacked I/O limits `limits`.
fn engine_parts(
    name: &CStr,
    geoms: &[DeviceGeometry],
    sizing: &[DeviceGeometry],
    limits: &IoLimits,
    tables: &Arc<TableBudget>,
) -> Result<EngineParts> {
    let mut engine_geoms = KVec::with_capacity(geoms.len(), GFP_KERNEL)?;
    engine_geoms.extend_from_slice(geoms, GFP_KERNEL)?;
    // Zone append where a member has it (the block layer emulates it for
    // zoned devices without native support): several writes can then be in
    // flight in one zone, and the device reports where each one landed.
    let cfg = PoolConfig {
        gc_item_max: ActivePool::gc_item_blocks(limits),
        // The data path writes both copies (`datapath.rs`).
        mirrored_volumes: true,
        ..PoolConfig::default_for(u16::try_from(sizing.len()).map_err(|_| EINVAL)?)
    };
    let scratch = KVec::from_elem(0u8, 2 * BLOCK_SIZE, GFP_KERNEL)?;
    Ok((engine_geoms, storage(name, sizing, tables)?, cfg, scratch))
}

/// The core's recovery, its engine built on the heap: no frame on the
/// deep path of the assembly holds the engine (about 2 KiB) by value
/// (`zvcore::recovery::recover_into`; three such frames overflowed the
/// 16 KiB stack in a degraded assembly of a pool with snapshots).
#[inline(never)]
#[allow(clippy::type_complexity)]
fn recover_boxed(
    geoms: KVec<DeviceGeometry>,
    rd: &mut Reader<'_>,
    cfg: PoolConfig,
    st: Storage,
    scratch: &mut [u8],
    on_finish: &mut dyn FnMut(u32),
    check: Option<crate::zvcore::recovery::Check<'_>>,
) -> Result<zvcore::error::Result<(KBox<Engine>, crate::zvcore::recovery::Assembly)>> {
    let mut slot = KBox::<Option<Engine>>::new_uninit(GFP_KERNEL)?.write(None);
    let r = crate::zvcore::recovery::recover_into(
        &mut slot,
        geoms,
        rd,
        cfg,
        st,
        scratch,
        &mut |z| on_finish(z),
        check,
    );
    match r {
        Ok(asm) => Ok(unwrap_engine(slot).map(|e| (e, asm))),
        Err(e) => Ok(Err(e)),
    }
}

/// The engine [`recover_boxed`] built, in a box of its own (moved once,
/// in this frame, after the assembly's deep path returned).
#[inline(never)]
fn unwrap_engine(mut slot: KBox<Option<Engine>>) -> zvcore::error::Result<KBox<Engine>> {
    let e = slot
        .take()
        .ok_or(zvcore::error::Error::Invalid("recover: no engine"))?;
    KBox::new(e, GFP_KERNEL).map_err(|_| zvcore::error::Error::NoSpace)
}

impl ActivePool {
    /// Opens `paths` exclusively (for a new holder, told when a member
    /// dies), and formats them as a new pool (`format` = 1 only if blank,
    /// 2 = even if not).
    // Out of line: keeps the engine's temporaries off the configfs
    // callers' stack frames.
    #[inline(never)]
    pub(crate) fn create(
        name: &CStr,
        paths: &[CString],
        format: u8,
        ckpt_zones: u32,
    ) -> Result<Arc<Self>> {
        let watch = DeadWatch::new()?;
        let (mut members, mut geoms) = open_members(name, paths, &watch, format == 1)?;
        // The pool's metadata zones: chosen now, fixed for its life.
        set_meta_zones(&mut geoms, ckpt_zones);
        for (m, g) in members.iter_mut().zip(geoms.iter()) {
            m.geom = *g;
        }
        for (m, g) in members.iter().zip(geoms.iter()) {
            if let Err(e) = g.validate() {
                pr_err!(
                    "{}: {}: {} metadata zones leave no room for data: {:?}\n",
                    name,
                    &*m.path,
                    g.meta_zones,
                    e
                );
                return Err(EINVAL);
            }
        }
        for m in members.iter() {
            m.dev()
                .and_then(|d| reset_written_zones(&d, &m.geom))
                .inspect_err(|e| {
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
        let limits = stacked_limits(&members);
        let (engine_geoms, st, cfg, mut scratch) =
            engine_parts(name, &geoms, &geoms, &limits, &tables)?;
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
        pr_info!(
            "{}: formatted {} member(s), checkpoint sets of {} zone(s) a member\n",
            name,
            members.len(),
            ckpt_zones_of(geoms.first().map_or(0, |g| g.meta_zones))
        );
        Self::new(
            name, uuid, members, geoms, engine, scratch, tables, false, None, watch,
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
        watch: Arc<DeadWatch<ActivePool>>,
    ) -> Result<Arc<Self>> {
        let limits = stacked_limits(&members);
        let gc = Gc::new(name)?;
        let committer = CommitBuf::new(members.len())?;
        let end_queue = ReclaimQueue::new(name)?;
        let zone_reads = ZoneReads::new(&geoms)?;
        let members = {
            let mut v = AppendVec::with_capacity(MAX_DEVICES)?;
            v.extend(members)?;
            v
        };
        let geoms = {
            let mut v = AppendVec::with_capacity(MAX_DEVICES)?;
            v.extend(geoms)?;
            v
        };
        Arc::pin_init(
            try_pin_init!(Self {
                name: CString::try_from_fmt(fmt!("{}", name))?,
                uuid,
                members,
                geoms,
                state <- EngineCell::new(engine, scratch),
                committer <- kernel::new_mutex!(committer),
                write_order <- kernel::new_mutex!(()),
                bios: BioSet::new()?,
                zone_reads,
                limits,
                gc <- gc,
                gc_work <- kernel::new_work!("zvpool::gc"),
                gc_cv <- kernel::new_condvar!("zvpool::gc_cv"),
                scrub: Scrub::new(),
                done_writes: ReqList::new(),
                end_work <- kernel::new_work!("zvpool::end_writes"),
                end_queue,
                paced: ReqList::new(),
                space_waiters: AtomicU32::new(0),
                waits: WriteWaits::new(),
                commit_ends: CommitEnds::new(),
                binds <- kernel::new_mutex!(KVec::new()),
                tables,
                read_only,
                damage,
                health <- Health::new(),
                health_work <- kernel::new_work!("zvpool::health"),
                watch,
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

    /// Opens `paths` exclusively (for a new holder, told when a member
    /// dies) and assembles the pool they hold: superblocks, the newest
    /// valid checkpoint, then the journal.
    // Out of line: keeps the engine's temporaries off the configfs
    // callers' stack frames.
    #[inline(never)]
    pub(crate) fn assemble(
        name: &CStr,
        paths: &[CString],
        mode: AssembleMode,
    ) -> Result<Arc<Self>> {
        let watch = DeadWatch::new()?;
        let (opened, mut geoms) = open_members(name, paths, &watch, false)?;
        let tables = TableBudget::new()?;
        let limits = stacked_limits(&opened);
        let mut opened = {
            let mut v = KVec::with_capacity(opened.len(), GFP_KERNEL)?;
            for m in opened {
                v.push(Some(m), GFP_KERNEL)?;
            }
            v
        };
        // Members none of the devices holds (degraded assembly): `geoms`
        // gets their places, the storage is sized for every member.
        let (sizing, stale) = degraded::plan(name, &mut opened, &mut geoms, mode)?;
        let (engine_geoms, st, cfg, mut scratch) =
            engine_parts(name, &geoms, &sizing, &limits, &tables)?;
        let mut finish = KVec::<u32>::new();
        let mut finish_err = false;
        let t0 = Instant::<Monotonic>::now();
        let mut cost = ReadCost::default();
        // Out of line: the recovery's temporaries get their own frame.
        let (engine, asm) = out_of_line(|| -> Result<_> {
            let mut rd = Reader::new(&opened, t0)?;
            // The verifier runs on the assembled state when its bitmap (one
            // bit per pool block) is affordable.
            let blocks: u64 = sizing
                .iter()
                .map(|g| u64::from(g.nr_zones) * g.zone_blocks)
                .sum();
            let nz: usize = sizing.iter().map(|g| g.nr_zones as usize).sum();
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
            let r = recover_boxed(
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
            cost = rd.take_cost();
            r?.map_err(|e| {
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
        let n = usize::from(asm.nr_members);
        let mut members = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut mgeoms = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..asm.nr_members {
            let m = degraded::member(name, &mut opened, &engine, &asm, i)?;
            mgeoms.push(m.geom, GFP_KERNEL)?;
            members.push(m, GFP_KERNEL)?;
        }
        let removed = engine.geom().removed().count_ones() as usize;
        let given = n.saturating_sub(asm.missing.count_ones() as usize + removed);
        if given.saturating_add(stale) != paths.len() {
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
        let degraded = if asm.missing != 0 {
            " (degraded: one missing)"
        } else {
            ""
        };
        pr_info!(
            "{}: assembled {} member(s){}: checkpoint {}{} ({} delta checkpoint(s) loaded), {} journal block(s) replayed, {}{}{}\n",
            name,
            members.len(),
            degraded,
            asm.checkpoint_generation,
            if asm.fell_back {
                " (newest was unusable)"
            } else {
                ""
            },
            asm.delta_checkpoints,
            asm.replayed_blocks,
            if asm.chain_resumed {
                "the journal and the checkpoint chain go on where they ended"
            } else if asm.journal_resumed {
                "the journal goes on where it ended, a full checkpoint next"
            } else {
                "a checkpoint before the next journal block"
            },
            if asm.kept_why.is_some() { ": " } else { "" },
            asm.kept_why.unwrap_or("")
        );
        let [ckpt_ms, journal_ms, zones_ms, verify_ms] = cost.phase_ms;
        let [ckpt_b, journal_b, zones_b, verify_b] = cost.phase_blocks;
        pr_info!(
            "{}: assembly took {} ms (checkpoint {} ms/{} blocks, journal {}/{}, zones {}/{}, verifier {}/{}): {} metadata block(s) read ({} from the members in {} read(s)), {} zone report(s), {} ms waiting for them\n",
            name,
            ms_since(t0),
            ckpt_ms,
            ckpt_b,
            journal_ms,
            journal_b,
            zones_ms,
            zones_b,
            verify_ms,
            verify_b,
            cost.blocks,
            cost.read_blocks,
            cost.reads,
            cost.reports,
            cost.io_ms
        );
        if asm.repaired_blocks > 0 {
            pr_warn!(
                "{}: {} damaged journal block(s) read from their copy on another member (a checkpoint now covers them)\n",
                name,
                asm.repaired_blocks
            );
        }
        if asm.ckpt_copy_reads > 0 {
            pr_warn!(
                "{}: {} checkpoint block(s) read from their second copy on another member (a checkpoint now writes both copies again)\n",
                name,
                asm.ckpt_copy_reads
            );
        }
        if asm.single_copy_blocks > 0 {
            pr_info!(
                "{}: {} journal block(s) replayed from one copy (a checkpoint now writes two)\n",
                name,
                asm.single_copy_blocks
            );
        }
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
            name, uuid, members, mgeoms, engine, scratch, tables, read_only, damage, watch,
        )?;
        if asm.missing != 0 {
            // Told now like a member that goes missing: log line, uevent.
            pool.health.dirty.store(true, Ordering::Release);
            pool.check_health();
        }
        // Metadata read from its other copy: a checkpoint now writes every
        // copy again (into the other set) and covers the journal, so that
        // the newest metadata has two copies again. Without a member: a
        // checkpoint before any volume is used, so that what the missing
        // member alone may hold (a commit torn by the crash) stays dropped
        // when it is back (`zvcore::recovery::DEGRADED_SKIP`).
        let repaired = !read_only
            && (asm.repaired_blocks > 0
                || asm.ckpt_copy_reads > 0
                || asm.single_copy_blocks > 0
                || asm.missing != 0);
        if rewound || repaired {
            // The rewind is recorded by the checkpoint, which also covers
            // every journal block seen: nothing after the damage is ever
            // replayed again.
            let _noio = NoIo::enter();
            let mut c = pool.committer.lock();
            pool.checkpoint_when_slots(&mut c)?;
        } else {
            // Recovery may leave records (e.g. after a torn tail): commit.
            pool.commit()?;
        }
        Ok(pool)
    }

    /// Takes the locks of a volume operation ([`ConfigLock`]). Call
    /// [`Self::commit`] only after dropping them.
    #[track_caller]
    pub(crate) fn lock_config(&self) -> ConfigLock<'_> {
        let commit = self.committer.lock();
        ConfigLock {
            lock: self.state.lock(),
            _commit: commit,
        }
    }

    /// The members' geometries, in the pool's order.
    pub(crate) fn geoms(&self) -> &[DeviceGeometry] {
        &self.geoms
    }

    /// Zones of each member in each checkpoint set (fixed at format).
    pub(crate) fn checkpoint_zones(&self) -> u32 {
        ckpt_zones_of(self.geoms.first().map_or(0, |g| g.meta_zones))
    }

    /// Clean stop, after the last commit: the engine's closing journal
    /// block (it lets the next assembly tell damage to the newest commit
    /// from a torn tail). The engine takes no change afterwards.
    pub(crate) fn close_metadata(&self) -> Result {
        let _c = self.committer.lock();
        let mut st = self.state.lock();
        let mut sink = MetaSink::new(&self.name, &self.members, &self.geoms)?;
        let EngineState {
            engine, scratch, ..
        } = &mut *st;
        engine
            .close(scratch, &mut |op| sink.apply(op))
            .map(|_| ())
            .map_err(|e| sink.error(e))
    }
}

/// The stream a user write goes to.
pub(crate) const USER_STREAM: Stream = Stream::UserHot;

impl ActivePool {
    /// The member and device sector of pool address `addr` (the engine's
    /// geometry: for callers holding the engine lock).
    pub(crate) fn locate(&self, e: &Engine, addr: u64) -> Result<(&Member, u64)> {
        member_sector(&self.members, e.geom(), addr)
    }

    /// [`Self::locate`] from the members' fixed geometry, without the engine
    /// (and its lock): for error paths that may run with the lock held.
    pub(crate) fn locate_addr(&self, addr: u64) -> Result<(&Member, u64)> {
        let geo = PoolGeometry::new(&self.geoms[..]).map_err(core_err)?;
        member_sector(&self.members, &geo, addr)
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

    /// Runs volume operation `f` (create, delete, resize, snapshot, clone,
    /// rollback, promote) on the engine under the volume-operation locks
    /// ([`ConfigLock`]), then commits, so that an operation reported done
    /// survives a crash. An operation that finds the record queue full
    /// (`EBUSY`: writes queued records since the last commit) commits
    /// first and runs once more.
    pub(crate) fn vol_op<T>(&self, mut f: impl FnMut(&mut Engine) -> Result<T>) -> Result<T> {
        let mut r = f(&mut self.lock_config().engine);
        if r.as_ref().err() == Some(&EBUSY) {
            self.commit()?;
            r = f(&mut self.lock_config().engine);
        }
        let v = r?;
        self.commit()?;
        Ok(v)
    }

    /// Resizes volume `id` to `blocks` blocks (a shrink unmaps the tail) and commits.
    pub(crate) fn vol_resize(&self, id: u32, blocks: u64) -> Result {
        self.vol_op(|e| e.vol_resize(id, blocks).map_err(core_err))
    }

    /// Volume `id`'s size in blocks, if it exists.
    pub(crate) fn vol_blocks(&self, id: u32) -> Option<u64> {
        let st = self.state.lock();
        st.engine.volume(id).and_then(|v| v.table).map(|t| t.size())
    }

    /// The id of the volume named `name`, if the metadata has one.
    pub(crate) fn find_volume(&self, name: &[u8]) -> Option<u32> {
        crate::volinfo::id_of(&self.state.lock().engine, name)
    }

    /// Creates a volume of `blocks` blocks with `copies` copies of each
    /// block (2: mirrored) and commits it; returns its id.
    pub(crate) fn vol_create(&self, name: &[u8], blocks: u64, copies: u8) -> Result<u32> {
        let flags = if copies == 2 { VOL_FLAG_MIRRORED } else { 0 };
        let mut why = None;
        let r = self.vol_op(|e| {
            let id = crate::volinfo::next_id(e);
            e.vol_create(id, name, blocks, flags).map_err(|err| {
                why = Some(err.describe());
                core_err(err)
            })?;
            Ok(id)
        });
        if let (Err(_), Some(why)) = (&r, why) {
            pr_err!("{}: volume not created: {}\n", &*self.name, why);
        }
        r
    }

    /// Copies of each block of volume `id` (2: mirrored).
    pub(crate) fn vol_copies(&self, id: u32) -> u8 {
        if self.state.lock_read().engine.copy_of(id).is_some() {
            2
        } else {
            1
        }
    }

    /// Deletes volume `id` (its blocks return to the pool) and commits.
    pub(crate) fn vol_delete(&self, id: u32) -> Result {
        self.vol_op(|e| e.vol_delete(id).map_err(core_err))
    }
}
