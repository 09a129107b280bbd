// SPDX-License-Identifier: GPL-2.0
//! The pool engine: every action of the kernel module goes through it.
//!
//! The engine never does I/O. Operations return *what to do to the media*
//! (write plans, read plans, ordered metadata operations [`MetaOp`]) and take
//! back *what happened* (`*_end` calls). State:
//! - the allocator (member geometries, zone states, valid counts);
//! - the volume table (id, name, flags, block table per volume);
//! - the queue of journal records not yet committed;
//! - the journal / checkpoint position.
//!
//! Crash semantics (see `Documentation/design-recovery.md`): a write changes
//! the block table when it *completes* ([`Pool::write_end`]) and its record is
//! queued; [`Pool::flush`] is the commit point: once its operations are done
//! and [`Pool::flush_end`] is called with success, every write completed
//! before the flush is recoverable. Records queued after `flush` go to the
//! next commit. A checkpoint ([`Pool::checkpoint`]) is also a commit: it
//! contains every queued record.

use core::ops::{Deref, DerefMut};

use super::alloc::{AllocConfig, Allocator, DevState, Extent, ZoneInfo, ZoneState};
use super::codec::{Reader, Writer};
use super::error::{Error, Result};
use super::format::checkpoint::{section, set_of, CKPT_DATA_MAX};
use super::format::history::{Rewind, HISTORY, REWIND_RECORD_BYTES};
use super::format::journal::JOURNAL_PAYLOAD_MAX;
use super::format::journal::VOL_FLAG_READONLY;
use super::format::layout::{
    checkpoint_block_addr, checkpoint_capacity, checkpoint_zone, log_zone,
};
use super::format::sharing::{encode_base, encode_link, DiffEntry, DiffWriter, SMALL_RECORD_BYTES};
use super::format::{
    CheckpointHeader, CheckpointWriter, JournalBuilder, Record, Superblock, Uuid, VolName,
    BLOCK_SIZE,
};
use super::format::{INCOMPAT_COMMIT_BLOCKS, INCOMPAT_SHARED_BLOCKS};
use super::gc::{
    gc_urgency, pick_victim, relocation_cost_x1000, Policy, Urgency, RELOCATION_STREAM,
};
use super::geom::{DeviceGeometry, PoolGeometry, Stream, NR_STREAMS};
use super::map::{visit_distinct, BlockTable, Diff, MapExtent, NodeStore, ADDR_MASK, PRESENT};
use super::sparse::RefMap;

/// Most extents in one [`WritePlan`] (a longer write is planned partly: the
/// caller plans the rest after).
pub const MAX_PLAN_EXTENTS: usize = 4;

/// Longest GC relocation item (blocks; at most 64).
pub const MAX_GC_ITEM: u64 = 64;

const FANOUT_USIZE: usize = super::map::FANOUT;

/// No slot (`VolEntry::ck_base`).
pub(super) const NO_SLOT: u32 = u32::MAX;

/// Bytes of one volume record in the checkpoint's volume section:
/// `id u32, flags u32, size u64, name_len u8, name[32]`.
pub const VOL_RECORD_BYTES: usize = 49;

/// An ordered operation on the media, emitted by [`Pool::flush`],
/// [`Pool::checkpoint`], [`Pool::maintenance`] and the format. The caller
/// performs them in the order given; each must complete before the next one
/// starts (a `Write` of consecutive blocks may be merged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaOp<'a> {
    /// Flush the volatile write cache of every member.
    Flush,
    /// Reset zone (global id).
    Reset(u32),
    /// Finish zone (global id).
    Finish(u32),
    /// Write one 4 KiB block at a pool address.
    Write(u64, &'a [u8]),
}

/// One volume slot of the volume table (caller storage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolEntry {
    /// Volume id.
    pub id: u32,
    /// `VOL_FLAG_*` bits ([`VOL_FLAG_READONLY`]: a snapshot).
    pub flags: u32,
    /// Name.
    pub name: VolName,
    /// Block table; `None` = free slot.
    pub table: Option<BlockTable>,
    /// What the volume was made from: for a snapshot the volume it was
    /// taken of, for a clone the snapshot it was cloned from (cleared when
    /// that volume is deleted, and by [`Pool::promote`]).
    pub origin: Option<u32>,
    /// Delta base of the checkpoint encoding (internal): the volume this
    /// one is stored as a difference against. Snapshots of a volume form a
    /// chain (each against the previous one), the volume and its clones
    /// point at their newest snapshot / their snapshot. Never dangling.
    pub parent: Option<u32>,
    /// Slot of the delta base during a checkpoint write (internal).
    pub(super) ck_base: u32,
    /// Written / loaded during the current checkpoint write or load
    /// (internal).
    pub(super) ck_done: bool,
}

impl VolEntry {
    /// Whether the volume is read-only (a snapshot).
    pub fn read_only(&self) -> bool {
        self.flags & VOL_FLAG_READONLY != 0
    }
}

/// Space used by one volume (see [`Pool::vol_space`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolSpace {
    /// Mapped blocks (the volume's logical usage).
    pub mapped: u64,
    /// Blocks only this volume references: what deleting it would free.
    pub exclusive: u64,
    /// Blocks shared with other volumes (snapshots, clones):
    /// `mapped - exclusive`.
    pub shared: u64,
}

/// One extent of a [`WritePlan`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanExtent {
    /// Global zone id.
    pub zone: u32,
    /// Pool address to write at; for a zone append, the zone start.
    pub addr: u64,
    /// Blocks.
    pub len: u64,
    /// Use zone append (the device picks the address in `zone`).
    pub append: bool,
    /// Offset of the extent's first block in the planned volume range.
    pub off: u64,
}

/// Where to write a (part of a) volume write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// Volume id.
    pub vol: u32,
    /// First volume block.
    pub lba: u64,
    /// Blocks planned (may be less than asked: plan the rest afterwards).
    pub nblocks: u64,
    /// Number of extents used.
    pub nr: usize,
    /// The extents, in lba order.
    pub ext: [PlanExtent; MAX_PLAN_EXTENTS],
}

impl WritePlan {
    /// The used extents.
    pub fn extents(&self) -> &[PlanExtent] {
        self.ext.get(..self.nr).unwrap_or(&[])
    }
}

/// A run of a read plan: `len` volume blocks from `lba`, at pool addresses
/// from `addr` or unmapped (zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadRun {
    /// First volume block.
    pub lba: u64,
    /// Blocks.
    pub len: u64,
    /// Pool address of `lba`, or `None`: read zeros.
    pub addr: Option<u64>,
}

/// One GC relocation: copy `src.len` blocks from `src.addr` to `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocItem {
    /// The live extent found in the victim (volume, lba, old address).
    pub src: MapExtent,
    /// Where to write the copy (`dst.append`: zone append into `dst.zone`).
    pub dst: Extent,
}

impl Default for RelocItem {
    fn default() -> Self {
        RelocItem {
            src: MapExtent {
                vol: 0,
                lba: 0,
                len: 0,
                addr: 0,
            },
            dst: Extent {
                zone: 0,
                addr: 0,
                len: 0,
                append: false,
            },
        }
    }
}

/// Engine counters (status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// User blocks written (completed).
    pub user_blocks: u64,
    /// Blocks relocated by GC (completed and remapped).
    pub gc_blocks: u64,
    /// Data zones reset.
    pub zones_reset: u64,
    /// Journal blocks written.
    pub journal_blocks: u64,
    /// Checkpoints committed.
    pub checkpoints: u64,
    /// Commits (flushes with records, and checkpoints).
    pub commits: u64,
}

/// Caller-provided storage of a pool. Everything large lives here (the
/// kernel allocates it on the heap): the engine itself is small (well under
/// 1 KiB), so returning a [`Pool`] by value is cheap.
pub struct PoolStorage<Z, E, V, R, N, D, S> {
    /// Allocator zone table: one entry per zone.
    pub zones: Z,
    /// Per zone: the commit epoch that covers its last invalidation (one per zone).
    pub zone_epochs: E,
    /// Volume table (its length is the most volumes).
    pub vols: V,
    /// Queue of uncommitted journal records (its length bounds how much can
    /// be written between two commits).
    pub records: R,
    /// Block-table nodes.
    pub nodes: N,
    /// Allocator state per member (at least one entry per member; contents
    /// are overwritten), e.g. `vec![DevState::EMPTY; n]`.
    pub devs: D,
    /// The superblock (about 4 KiB; contents are overwritten by format and
    /// recovery), e.g. `Box::new(Superblock::EMPTY)`.
    pub sb: S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Commit {
    None,
    Journal {
        nrec: usize,
        epoch: u64,
        nblocks: u64,
        last_seq: u64,
        log: u8,
        /// Generation of the superblock the commit wrote (log-zone switch).
        sb: Option<u64>,
    },
    Checkpoint {
        nrec: usize,
        epoch: u64,
        gen: u64,
        seq: u64,
    },
}

/// Engine configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Use zone append where members support it.
    pub use_append: bool,
    /// GC victim policy.
    pub policy: Policy,
    /// Allocator configuration.
    pub alloc: AllocConfig,
    /// Longest GC relocation item in blocks (1..=[`MAX_GC_ITEM`]), e.g. what
    /// every member takes in one zone append.
    pub gc_item_max: u64,
}

impl PoolConfig {
    /// Defaults for a pool of `nr_devices` members.
    pub fn default_for(nr_devices: u16) -> Self {
        PoolConfig {
            use_append: true,
            policy: Policy::CostBenefit,
            alloc: AllocConfig::default_for(nr_devices),
            gc_item_max: MAX_GC_ITEM,
        }
    }
}

/// The pool engine.
pub struct Pool<G, Z, E, V, R, N, D, S> {
    pub(super) alloc: Allocator<G, Z, D>,
    pub(super) zepoch: E,
    pub(super) vols: V,
    pub(super) recs: R,
    pub(super) nodes: N,
    pub(super) sb: S,
    pub(super) cfg: PoolConfig,
    /// Records queued: `recs[..npend]`.
    pub(super) npend: usize,
    /// Record slots promised to plans in flight.
    pub(super) reserved: usize,
    commit: Commit,
    /// Epoch of the commit that will carry the records queued now.
    pub(super) cur_epoch: u64,
    /// Newest epoch known durable.
    pub(super) committed_epoch: u64,
    /// Journal member.
    pub(super) jdev: u16,
    /// Current log zone index (0/1) on the journal member, if open.
    pub(super) jlog: Option<u8>,
    /// Next free block offset in the current log zone.
    pub(super) jwp: u64,
    /// Next journal sequence number.
    pub(super) jseq: u64,
    /// Highest journal sequence number in each log zone of the journal member.
    pub(super) log_max_seq: [u64; 2],
    /// Whether each log zone of the journal member holds a durable
    /// superblock (a log zone is reset only if the other one does).
    pub(super) log_sb_ok: [bool; 2],
    /// Newest committed checkpoint and the last journal sequence it covers.
    pub(super) ckpt_gen: u64,
    pub(super) ckpt_seq: u64,
    pub(super) jblocks_since_ckpt: u64,
    /// A checkpoint must be written before the next journal block.
    pub(super) need_ckpt: bool,
    /// A metadata write failed: only re-assembly can continue.
    pub(super) failed: bool,
    /// Assembled read-only (damaged metadata, or asked for): nothing is
    /// ever written to a member; every change is refused with `ReadOnly`.
    pub(super) read_only: bool,
    /// The newest journal sequence known committed (the last commit block
    /// durable, or what the newest checkpoint covers): the commit sequence
    /// written into every journal block (see `format::journal`).
    pub(super) durable_seq: u64,
    /// The next checkpoint's generation is at least this (after recovery
    /// passed over a newer, unusable checkpoint: never reuse its
    /// generation, never overwrite the set recovery loaded).
    pub(super) ckpt_gen_min: u64,
    /// The last explicit rewind (kept in every checkpoint's history).
    pub(super) last_rewind: Option<Rewind>,
    /// Zone being collected and whether a batch is in flight.
    gc_victim: Option<u32>,
    gc_busy: bool,
    /// Relocation cost of `gc_victim` when it was picked (its valid count
    /// falls as GC copies it; the cost of freeing it does not).
    gc_victim_cost: u64,
    /// Zones GC does not pick as victims for now (some of their blocks could
    /// not be read): forgotten after [`GC_AVOID_BATCHES`] batches that moved
    /// blocks, so they are retried later.
    gc_avoid: [u32; 8],
    gc_navoid: usize,
    gc_avoid_age: u32,
    /// Where the next batch's scan for the victim's live blocks starts
    /// (table index, leaf base): each batch continues where the previous
    /// one stopped, so collecting a victim scans the tables about once
    /// rather than once per batch.
    gc_cursor: (usize, u64),
    /// Zones whose write failed: finished in the allocator, to be finished
    /// on the device by the next [`Pool::maintenance`].
    finish_q: [u32; 16],
    nfinish: usize,
    pub(super) stats: PoolStats,
    /// Extra leaf references of shared blocks (nodes in `nodes`).
    pub(super) refs: RefMap,
    /// The in-memory superblock has changes (feature bits) not yet written:
    /// the next journal commit switches log zones to write it.
    pub(super) sb_dirty: bool,
    /// Recovery is replaying: dropped blocks are not invalidated (the
    /// allocator is rebuilt afterwards).
    pub(super) replaying: bool,
}

/// Batches that moved blocks after which GC retries the zones it avoids.
const GC_AVOID_BATCHES: u32 = 64;

/// Marks a zone whose `ZoneReset` record is queued (`zepoch`: the flag and
/// the record's epoch); the zone is reset once that epoch is committed.
const RESET_QUEUED: u64 = 1 << 63;

/// Marks a zone whose reset was handed to the caller by
/// [`Pool::maintenance_plan`] and is not done yet ([`Pool::reset_end`]): not
/// allocatable, not planned again (`zepoch`, with [`RESET_QUEUED`]).
const RESETTING: u64 = RESET_QUEUED | 1 << 62;

/// The most of `recs` (from the first) whose journal blocks number at most
/// `max_blocks`.
fn records_within(recs: &[Record], max_blocks: u64) -> usize {
    let mut blocks = 0u64;
    let mut used = JOURNAL_PAYLOAD_MAX;
    for (i, r) in recs.iter().enumerate() {
        let l = r.encoded_len();
        if used.saturating_add(l) > JOURNAL_PAYLOAD_MAX {
            if blocks >= max_blocks {
                return i;
            }
            blocks = blocks.saturating_add(1);
            used = 0;
        }
        used = used.saturating_add(l);
    }
    recs.len()
}

/// Number of journal blocks needed for `recs`.
fn journal_blocks_for(recs: &[Record]) -> u64 {
    let mut blocks = 0u64;
    let mut used = JOURNAL_PAYLOAD_MAX;
    for r in recs {
        let l = r.encoded_len();
        if used.saturating_add(l) > JOURNAL_PAYLOAD_MAX {
            blocks = blocks.saturating_add(1);
            used = 0;
        }
        used = used.saturating_add(l);
    }
    blocks
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    /// Builds an engine around a fresh allocator (no volumes, nothing
    /// journalled) and the superblock already in `st.sb`. Used by format
    /// and recovery.
    #[inline(always)]
    pub(super) fn assemble(
        geom: PoolGeometry<G>,
        cfg: PoolConfig,
        st: PoolStorage<Z, E, V, R, N, D, S>,
    ) -> Result<Self> {
        let nz = geom.nr_zones() as usize;
        let mut zepoch = st.zone_epochs;
        if zepoch.len() != nz {
            return Err(Error::Invalid("pool: zone epoch table size"));
        }
        zepoch.fill(0);
        let mut vols = st.vols;
        if vols.is_empty() {
            return Err(Error::Invalid("pool: volume table"));
        }
        vols.fill(VolEntry::default());
        if st.records.len() < 16 {
            return Err(Error::Invalid("pool: record queue too small"));
        }
        let total = geom.total_blocks();
        let alloc = Allocator::with_devs(geom, st.zones, st.devs, cfg.alloc)?;
        Ok(Pool {
            alloc,
            zepoch,
            vols,
            recs: st.records,
            nodes: st.nodes,
            sb: st.sb,
            cfg,
            npend: 0,
            reserved: 0,
            commit: Commit::None,
            cur_epoch: 1,
            committed_epoch: 0,
            jdev: 0,
            jlog: None,
            jwp: 0,
            jseq: 1,
            log_max_seq: [0; 2],
            log_sb_ok: [true; 2],
            ckpt_gen: 0,
            ckpt_seq: 0,
            jblocks_since_ckpt: 0,
            need_ckpt: false,
            failed: false,
            read_only: false,
            durable_seq: 0,
            ckpt_gen_min: 0,
            last_rewind: None,
            gc_victim: None,
            gc_busy: false,
            gc_victim_cost: 0,
            gc_cursor: (0, 0),
            gc_avoid: [0; 8],
            gc_navoid: 0,
            gc_avoid_age: 0,
            finish_q: [0; 16],
            nfinish: 0,
            stats: PoolStats::default(),
            refs: RefMap::new(total),
            sb_dirty: false,
            replaying: false,
        })
    }

    /// Creates a new pool on members with geometries `devs` (member order)
    /// and device UUIDs `dev_uuids`. Emits the superblocks (block 0 of both
    /// log zones of every member) and an empty checkpoint (generation 1),
    /// ending with a `Flush`; the pool is usable once they are done.
    /// `scratch` is two blocks (8 KiB).
    // Out of line, like `recovery::recover`: bounds the callers' stack frames.
    #[inline(never)]
    pub fn format<F: FnMut(MetaOp<'_>) -> Result<()>>(
        devs: G,
        pool_uuid: Uuid,
        dev_uuids: &[Uuid],
        cfg: PoolConfig,
        mut st: PoolStorage<Z, E, V, R, N, D, S>,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<Self> {
        let geom = PoolGeometry::new(devs)?;
        if dev_uuids.len() != geom.devices().len() {
            return Err(Error::Invalid("format: one uuid per member"));
        }
        let n = geom.devices().len();
        st.sb.init_parts(pool_uuid, dev_uuids, geom.devices())?;
        // New pools write commit groups (see `format::journal`).
        st.sb.incompat |= INCOMPAT_COMMIT_BLOCKS;
        let mut pool = Self::assemble(geom, cfg, st)?;
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch"))?;
        for d in 0..n as u16 {
            pool.encode_sb_for(d, blk)?;
            for i in 0..2u32 {
                let z = log_zone(pool.alloc.geom(), d, i).ok_or(Error::Invalid("log zone"))?;
                let start = pool
                    .alloc
                    .geom()
                    .zone_start(z)
                    .ok_or(Error::Invalid("log zone"))?;
                if !pool.zone_conv(z) {
                    sink(MetaOp::Reset(z))?;
                }
                sink(MetaOp::Write(start, blk))?;
            }
        }
        // Every log zone but the journal's is finished (only the journal
        // zone stays active on the device).
        for d in 0..n as u16 {
            for i in 0..2u32 {
                if d == 0 && i == 0 {
                    continue;
                }
                let z = log_zone(pool.alloc.geom(), d, i).ok_or(Error::Invalid("log zone"))?;
                if !pool.zone_conv(z) {
                    sink(MetaOp::Finish(z))?;
                }
            }
        }
        let z0 = log_zone(pool.alloc.geom(), 0, 0).ok_or(Error::Invalid("log zone"))?;
        pool.alloc.meta_open(z0, true)?;
        pool.jlog = Some(0);
        pool.jwp = 1;
        // Initial checkpoint: generation 1 (set B).
        pool.write_checkpoint(1, scratch, sink)?;
        pool.checkpoint_end(true)?;
        Ok(pool)
    }

    // ---- accessors --------------------------------------------------------

    /// The allocator.
    pub fn alloc(&self) -> &Allocator<G, Z, D> {
        &self.alloc
    }

    /// The pool geometry.
    pub fn geom(&self) -> &PoolGeometry<G> {
        self.alloc.geom()
    }

    /// The volume table (free slots have `table == None`).
    pub fn volumes(&self) -> &[VolEntry] {
        &self.vols
    }

    /// The node store of the block tables.
    pub fn nodes(&self) -> &N {
        &self.nodes
    }

    /// The superblock (member 0's copy).
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Free (empty) data zones.
    pub fn free_zones(&self) -> u32 {
        self.alloc.free_zones()
    }

    /// Queued (uncommitted) records.
    pub fn pending_records(&self) -> usize {
        self.npend
    }

    /// Newest committed checkpoint generation.
    pub fn checkpoint_generation(&self) -> u64 {
        self.ckpt_gen
    }

    /// Last journal sequence the newest checkpoint covers.
    pub fn checkpoint_journal_seq(&self) -> u64 {
        self.ckpt_seq
    }

    /// Next journal sequence number.
    pub fn journal_seq(&self) -> u64 {
        self.jseq
    }

    /// Whether a metadata write failed (the pool must be re-assembled).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// How urgently GC should run.
    pub fn gc_urgency(&self) -> Urgency {
        gc_urgency(
            self.alloc.free_zones(),
            self.alloc.data_zones(),
            self.cfg.alloc.gc_reserve,
        )
    }

    /// What freeing one block costs GC now, in thousandths of a block
    /// ([`relocation_cost_x1000`]): of the victim being collected, else of
    /// the zone GC would pick next; 0 without any (nothing to copy).
    pub fn gc_cost_x1000(&self) -> u64 {
        let a = &self.alloc;
        match self.gc_victim {
            Some(v) if a.zone(v).map(|zi| zi.valid()).unwrap_or(0) > 0 => self.gc_victim_cost,
            _ => pick_victim(a, self.cfg.policy, |_| false)
                .map(|v| self.zone_cost_x1000(v))
                .unwrap_or(0),
        }
    }

    /// [`relocation_cost_x1000`] of zone `z` as it is now.
    fn zone_cost_x1000(&self, z: u32) -> u64 {
        let a = &self.alloc;
        match (a.zone(z), a.geom().zone_cap(z)) {
            (Some(zi), Some(cap)) => relocation_cost_x1000(zi.valid(), cap),
            _ => 0,
        }
    }

    /// Encodes member `d`'s copy of the superblock into `blk` (in place: the
    /// superblock is too large for a kernel stack copy).
    pub(super) fn encode_sb_for(&mut self, d: u16, blk: &mut [u8]) -> Result<()> {
        let uuid = self
            .sb
            .member(d)
            .map(|m| m.dev_uuid)
            .ok_or(Error::Invalid("member"))?;
        let (oi, ou) = (self.sb.member_index, self.sb.dev_uuid);
        self.sb.member_index = d;
        self.sb.dev_uuid = uuid;
        let r = self.sb.encode(blk);
        self.sb.member_index = oi;
        self.sb.dev_uuid = ou;
        r
    }

    fn zone_conv(&self, z: u32) -> bool {
        self.alloc
            .geom()
            .zone(z)
            .map(|g| g.conventional)
            .unwrap_or(false)
    }

    fn live(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else if self.failed {
            Err(Error::Invalid("pool failed: re-assemble"))
        } else {
            Ok(())
        }
    }

    /// Whether the pool was assembled read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Makes the pool read-only: from now on every change (writes,
    /// discards, volume operations, commits, checkpoints, zone resets, GC)
    /// is refused with [`Error::ReadOnly`] and nothing is written to any
    /// member; reads work. Used by read-only assembly.
    pub fn set_read_only(&mut self) {
        self.read_only = true;
    }

    /// The last explicit rewind recorded in the pool, if any.
    pub fn last_rewind(&self) -> Option<Rewind> {
        self.last_rewind
    }

    /// Whether journal blocks carry commit groups (`INCOMPAT_COMMIT_BLOCKS`).
    pub fn commit_blocks(&self) -> bool {
        self.sb.incompat & INCOMPAT_COMMIT_BLOCKS != 0
    }

    fn vol_index(&self, id: u32) -> Result<usize> {
        self.vols
            .iter()
            .position(|v| v.table.is_some() && v.id == id)
            .ok_or(Error::NotFound)
    }

    /// The block table of volume `id`.
    pub fn volume(&self, id: u32) -> Option<&VolEntry> {
        self.vols.iter().find(|v| v.table.is_some() && v.id == id)
    }

    // ---- record queue -----------------------------------------------------

    fn free_slots(&self) -> usize {
        self.recs
            .len()
            .saturating_sub(self.npend)
            .saturating_sub(self.reserved)
    }

    fn reserve(&mut self, n: usize) -> Result<()> {
        if self.free_slots() < n {
            return Err(Error::Busy);
        }
        self.reserved = self.reserved.saturating_add(n);
        Ok(())
    }

    fn unreserve(&mut self, n: usize) {
        self.reserved = self.reserved.saturating_sub(n);
    }

    /// Queues a record using a reserved slot.
    fn push_reserved(&mut self, rec: Record) {
        self.unreserve(1);
        self.push(rec);
    }

    fn push(&mut self, rec: Record) {
        if let Some(slot) = self.recs.get_mut(self.npend) {
            *slot = rec;
            self.npend = self.npend.saturating_add(1);
        } else {
            // Cannot happen with reservations; losing the record would break
            // durability, so stop the pool instead.
            self.failed = true;
        }
    }

    // ---- volumes ------------------------------------------------------------

    /// Whether blocks may be shared between volumes (the superblock has
    /// [`INCOMPAT_SHARED_BLOCKS`]: set by the first snapshot or clone, for
    /// good).
    pub fn sharing(&self) -> bool {
        self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0
    }

    /// Sets [`INCOMPAT_SHARED_BLOCKS`] in the superblock (once): a new
    /// superblock generation, written by the next journal commit.
    pub(super) fn enable_sharing(&mut self) {
        if !self.sharing() {
            self.sb.incompat |= INCOMPAT_SHARED_BLOCKS;
            self.sb.generation = self.sb.generation.saturating_add(1);
            self.sb_dirty = true;
        }
    }

    /// Whether the superblock has changes not yet on disk.
    pub fn superblock_dirty(&self) -> bool {
        self.sb_dirty
    }

    /// Pool blocks referenced by more than one block-table leaf (shared by
    /// snapshots or clones, counted once in [`Allocator::used_blocks`]).
    pub fn shared_blocks(&self) -> u64 {
        self.refs.shared_blocks()
    }

    /// Live blocks referenced more than once (by the tables of several
    /// volumes, snapshots or clones): the distinct live blocks minus those
    /// exactly one table references. Unlike [`Self::shared_blocks`] it also
    /// counts blocks of leaves shared whole (an untouched snapshot). Visits
    /// only the nodes a single table references, each once.
    pub fn shared_live_blocks(&self) -> u64 {
        let inflight = self
            .alloc
            .zones()
            .iter()
            .fold(0u64, |s, z| s.saturating_add(z.inflight()));
        let live = self.alloc.used_blocks().saturating_sub(inflight);
        let exclusive = self.vols.iter().filter_map(|v| v.table).fold(0u64, |s, t| {
            s.saturating_add(t.exclusive(&self.nodes, &self.refs))
        });
        live.saturating_sub(exclusive)
    }

    /// The reference map of shared blocks.
    pub fn refs(&self) -> &RefMap {
        &self.refs
    }

    /// Creates volume `id` (empty, `size` blocks).
    pub fn vol_create(&mut self, id: u32, name: &[u8], size: u64, flags: u32) -> Result<()> {
        self.live()?;
        if self.vol_index(id).is_ok() {
            return Err(Error::Busy);
        }
        let name = VolName::new(name)?;
        let rec = Record::VolumeCreate {
            vol: id,
            size_blocks: size,
            flags,
            name,
        };
        rec.validate()
            .map_err(|_| Error::Invalid("volume parameters"))?;
        let table = BlockTable::new(id, size)?;
        let slot = self
            .vols
            .iter()
            .position(|v| v.table.is_none())
            .ok_or(Error::NoSpace)?;
        self.reserve(1)?;
        if let Some(v) = self.vols.get_mut(slot) {
            *v = VolEntry {
                id,
                flags,
                name,
                table: Some(table),
                ..VolEntry::default()
            };
        }
        self.push_reserved(rec);
        Ok(())
    }

    /// Deletes volume `id` (a volume, snapshot or clone) and its mappings.
    /// Blocks still referenced by other volumes (snapshots, clones) stay;
    /// exactly the blocks nobody else references are freed. Volumes made
    /// from it keep their data (their origin is cleared).
    pub fn vol_delete(&mut self, id: u32) -> Result<()> {
        self.live()?;
        let i = self.vol_index(id)?;
        self.reserve(1)?;
        if let Err(e) = self.apply_delete(i) {
            self.unreserve(1);
            self.failed = true;
            return Err(e);
        }
        self.push_reserved(Record::VolumeDelete { vol: id });
        Ok(())
    }

    /// Deletes the volume in slot `i` (engine and replay).
    pub(super) fn apply_delete(&mut self, i: usize) -> Result<()> {
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut t = v.table.ok_or(Error::NotFound)?;
        let r = self.destroy_table(&mut t);
        if let Some(slot) = self.vols.get_mut(i) {
            *slot = VolEntry::default();
        }
        for w in self.vols.iter_mut().filter(|w| w.table.is_some()) {
            if w.origin == Some(v.id) {
                w.origin = None;
            }
            if w.parent == Some(v.id) {
                w.parent = v.parent;
            }
        }
        r
    }

    /// Releases table `t` (a volume's, or its old contents at a rollback):
    /// its exclusive nodes are freed and every block no other table
    /// references is invalidated (not during replay, which rebuilds counts).
    fn destroy_table(&mut self, t: &mut BlockTable) -> Result<()> {
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed, rep) = (
            &mut self.alloc,
            &mut self.zepoch,
            &mut self.failed,
            self.replaying,
        );
        t.destroy_shared(&mut self.nodes, &mut self.refs, |a, n| {
            if !rep {
                inval(alloc, zepoch, ep, failed, a, n)
            }
        })
    }

    /// Resizes volume `id` (shrinking drops the mappings beyond the end).
    /// Snapshots cannot be resized ([`Error::ReadOnly`]).
    pub fn vol_resize(&mut self, id: u32, size: u64) -> Result<()> {
        self.live()?;
        let i = self.vol_index(id)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        let rec = Record::VolumeResize {
            vol: id,
            size_blocks: size,
        };
        rec.validate().map_err(|_| Error::Invalid("volume size"))?;
        let old = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .map(|t| t.size())
            .unwrap_or(0);
        // Shrinking a shared table may run out of nodes half way: the
        // dropped range is then journalled as unmapped (see `discard`).
        let step = u64::from(u32::MAX);
        let nunmap = old.saturating_sub(size).div_ceil(step) as usize;
        let nrec = nunmap.saturating_add(1);
        self.reserve(nrec)?;
        match self.apply_resize(i, size) {
            Ok(()) => {
                self.unreserve(nunmap);
                self.push_reserved(rec);
                Ok(())
            }
            Err(e) => {
                self.unreserve(1);
                let mut l = size;
                while l < old {
                    let n = old.saturating_sub(l).min(step);
                    self.push_reserved(Record::Unmap {
                        vol: id,
                        lba: l,
                        len: n as u32,
                    });
                    l = l.saturating_add(n);
                }
                Err(e)
            }
        }
    }

    /// Resizes the volume in slot `i` (engine and replay).
    pub(super) fn apply_resize(&mut self, i: usize, size: u64) -> Result<()> {
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed, rep) = (
            &mut self.alloc,
            &mut self.zepoch,
            &mut self.failed,
            self.replaying,
        );
        let r = t.resize_shared(&mut self.nodes, &mut self.refs, size, |a, n| {
            if !rep {
                inval(alloc, zepoch, ep, failed, a, n)
            }
        });
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        r
    }

    /// Takes a snapshot of volume `vol`: a new read-only volume `new_id`
    /// named `name` holding exactly what `vol` holds now (every write
    /// completed before this call, none after). O(1): the block table's root
    /// is shared copy-on-write, nothing is copied and no block is written;
    /// both volumes pay for the copies of the paths they change later.
    /// Sets [`INCOMPAT_SHARED_BLOCKS`] on the first use.
    ///
    /// Errors: [`Error::NotFound`] (no `vol`), [`Error::Busy`] (`new_id`
    /// exists, or the record queue is full: flush first), [`Error::NoSpace`]
    /// (no free volume slot), [`Error::Invalid`] (`vol` is itself a
    /// snapshot, bad name, too many references to one node).
    pub fn snap_create(&mut self, vol: u32, new_id: u32, name: &[u8]) -> Result<()> {
        self.live()?;
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::Invalid("snapshot of a snapshot"));
        }
        self.share(i, new_id, name, VOL_FLAG_READONLY)
    }

    /// Clones snapshot `snap` into a new writable volume `new_id` named
    /// `name`, sharing all its blocks (O(1) like [`Self::snap_create`]);
    /// writes to the clone never change the snapshot, and the other way
    /// round. Errors as [`Self::snap_create`]; [`Error::Invalid`] if `snap`
    /// is not a snapshot.
    pub fn clone_volume(&mut self, snap: u32, new_id: u32, name: &[u8]) -> Result<()> {
        self.live()?;
        let i = self.vol_index(snap)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(true) {
            return Err(Error::Invalid("clone source is not a snapshot"));
        }
        self.share(i, new_id, name, 0)
    }

    fn share(&mut self, i: usize, new_id: u32, name: &[u8], flags: u32) -> Result<()> {
        if self.vol_index(new_id).is_ok() {
            return Err(Error::Busy);
        }
        let src = self.vols.get(i).map(|v| v.id).ok_or(Error::NotFound)?;
        let name = VolName::new(name)?;
        let rec = Record::Snapshot {
            vol: src,
            new_vol: new_id,
            flags,
            name,
        };
        rec.validate()
            .map_err(|_| Error::Invalid("snapshot parameters"))?;
        if !self.vols.iter().any(|v| v.table.is_none()) {
            return Err(Error::NoSpace);
        }
        self.reserve(1)?;
        if let Err(e) = self.apply_share(i, new_id, flags, name) {
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(rec);
        Ok(())
    }

    /// Creates volume `new_id` sharing the table of slot `i` (engine and
    /// replay of [`Record::Snapshot`]).
    pub(super) fn apply_share(
        &mut self,
        i: usize,
        new_id: u32,
        flags: u32,
        name: VolName,
    ) -> Result<()> {
        let src = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut t = src.table.ok_or(Error::NotFound)?;
        let slot = self
            .vols
            .iter()
            .position(|v| v.table.is_none())
            .ok_or(Error::NoSpace)?;
        let c = t.clone_root(&mut self.nodes, new_id)?;
        let snapshot = flags & VOL_FLAG_READONLY != 0;
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
            if snapshot {
                // The snapshot takes the volume's place in its delta chain.
                v.parent = Some(new_id);
            }
        }
        if let Some(v) = self.vols.get_mut(slot) {
            *v = VolEntry {
                id: new_id,
                flags,
                name,
                table: Some(c),
                origin: Some(src.id),
                parent: if snapshot { src.parent } else { Some(src.id) },
                ..VolEntry::default()
            };
        }
        self.enable_sharing();
        Ok(())
    }

    /// Rolls writable volume `vol` back to its snapshot `snap`: `vol` then
    /// holds exactly what `snap` holds (and has its size); blocks only the
    /// old contents referenced are freed. O(1) plus the release of the old
    /// contents' exclusive nodes. Writes in flight to `vol` that complete
    /// afterwards land on the rolled-back contents.
    ///
    /// Errors: [`Error::NotFound`], [`Error::ReadOnly`] (`vol` is a
    /// snapshot), [`Error::Invalid`] (`snap` is not a snapshot of `vol`),
    /// [`Error::Busy`] (record queue full).
    pub fn rollback(&mut self, vol: u32, snap: u32) -> Result<()> {
        self.live()?;
        let i = self.vol_index(vol)?;
        let j = self.vol_index(snap)?;
        let (v, s) = match (self.vols.get(i), self.vols.get(j)) {
            (Some(v), Some(s)) => (*v, *s),
            _ => return Err(Error::NotFound),
        };
        if v.read_only() {
            return Err(Error::ReadOnly);
        }
        if !s.read_only() || s.origin != Some(vol) {
            return Err(Error::Invalid("rollback: not a snapshot of this volume"));
        }
        self.reserve(1)?;
        if let Err(e) = self.apply_rollback(i, j) {
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(Record::Rollback { vol, snap });
        Ok(())
    }

    /// Replaces the table of slot `i` by a clone of slot `j`'s (engine and
    /// replay).
    pub(super) fn apply_rollback(&mut self, i: usize, j: usize) -> Result<()> {
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut old = v.table.ok_or(Error::NotFound)?;
        let s = *self.vols.get(j).ok_or(Error::NotFound)?;
        let mut st = s.table.ok_or(Error::NotFound)?;
        let new = st.clone_root(&mut self.nodes, v.id)?;
        if let Some(e) = self.vols.get_mut(j) {
            e.table = Some(st);
        }
        let r = self.destroy_table(&mut old);
        if let Some(e) = self.vols.get_mut(i) {
            e.table = Some(new);
            e.parent = Some(s.id);
        }
        self.enable_sharing();
        r
    }

    /// Promotes (flattens) writable volume `vol`: every block-table node it
    /// shares is copied, so it no longer depends on its origin's metadata;
    /// its origin is cleared. Data blocks stay shared (counted once) until
    /// one side overwrites them. O(nodes of the volume). No-op for a volume
    /// without shared nodes or origin.
    ///
    /// Errors: [`Error::ReadOnly`] (a snapshot), [`Error::NoSpace`] (out of
    /// nodes: the volume is partly flattened, still correct; retry),
    /// [`Error::Busy`] (record queue full).
    pub fn promote(&mut self, vol: u32) -> Result<()> {
        self.live()?;
        let i = self.vol_index(vol)?;
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        if v.read_only() {
            return Err(Error::ReadOnly);
        }
        let t = v.table.ok_or(Error::NotFound)?;
        if !t.is_shared() && v.origin.is_none() && v.parent.is_none() {
            return Ok(());
        }
        self.reserve(1)?;
        if let Err(e) = self.apply_promote(i) {
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(Record::Promote { vol });
        Ok(())
    }

    /// Flattens slot `i` (engine and replay).
    pub(super) fn apply_promote(&mut self, i: usize) -> Result<()> {
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let r = t.flatten(&mut self.nodes, &mut self.refs);
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
            if r.is_ok() {
                v.origin = None;
                v.parent = None;
            }
        }
        r
    }

    /// Space of volume `vol`: mapped blocks, of which exclusive (only this
    /// volume references them: freed by deleting it) and shared (with
    /// snapshots / clones). O(nodes of the volume).
    pub fn vol_space(&self, vol: u32) -> Result<VolSpace> {
        let t = self
            .volume(vol)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let (mapped, exclusive) = t.space(&self.nodes, &self.refs);
        Ok(VolSpace {
            mapped,
            exclusive,
            shared: mapped.saturating_sub(exclusive),
        })
    }

    // ---- writes ---------------------------------------------------------

    /// Plans a write of `nblocks` volume blocks from `lba` into `stream`.
    /// The plan may cover fewer blocks (at most [`MAX_PLAN_EXTENTS`]
    /// extents): write them, call [`Self::write_end`], plan the rest.
    /// Errors: `NoSpace` (pool full), `Busy` (record queue full: flush first;
    /// or zone limits), `Invalid`/`NotFound` for bad arguments.
    pub fn write_begin(
        &mut self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        stream: Stream,
    ) -> Result<WritePlan> {
        self.live()?;
        if nblocks == 0 || matches!(stream, Stream::Gc | Stream::Meta) {
            return Err(Error::Invalid("write: length or stream"));
        }
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        let size = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .map(|t| t.size())
            .unwrap_or(0);
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("write: range"))?;
        if end > size {
            return Err(Error::Invalid("write: beyond volume end"));
        }
        if self.free_slots() < MAX_PLAN_EXTENTS {
            return Err(Error::Busy);
        }
        let mut plan = WritePlan {
            vol,
            lba,
            ..WritePlan::default()
        };
        let mut off = 0u64;
        let mut err = Ok(());
        while off < nblocks && plan.nr < MAX_PLAN_EXTENTS {
            match self.take(stream, nblocks - off) {
                Ok(e) => {
                    if let Some(slot) = plan.ext.get_mut(plan.nr) {
                        *slot = PlanExtent {
                            zone: e.zone,
                            addr: e.addr,
                            len: e.len,
                            append: e.append,
                            off,
                        };
                    }
                    plan.nr = plan.nr.saturating_add(1);
                    off = off.saturating_add(e.len);
                }
                Err(e) => {
                    err = Err(e);
                    break;
                }
            }
        }
        if plan.nr == 0 {
            err?;
            return Err(Error::NoSpace);
        }
        plan.nblocks = off;
        self.reserved = self.reserved.saturating_add(plan.nr);
        Ok(plan)
    }

    /// Takes space: zone append where configured and possible, else a
    /// regular allocation.
    fn take(&mut self, stream: Stream, n: u64) -> Result<Extent> {
        match self.take_in(stream, n) {
            Err(Error::Busy) => {}
            r => return r,
        }
        // Free zones exist only on members at their open/active limits:
        // borrow the open zone of another data stream rather than stall
        // (mixing lifetimes costs some GC efficiency, stalling costs the
        // write; the zone limits of small devices make it necessary).
        let mut err = Error::Busy;
        for other in [Stream::UserHot, Stream::UserCold, Stream::Gc] {
            if other == stream {
                continue;
            }
            match self.take_in(other, n) {
                Ok(e) => return Ok(e),
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    fn take_in(&mut self, stream: Stream, n: u64) -> Result<Extent> {
        if self.cfg.use_append {
            match self.alloc.reserve_append(stream, n) {
                Ok((zone, len)) => {
                    let start = self
                        .alloc
                        .geom()
                        .zone_start(zone)
                        .ok_or(Error::Corrupt("zone"))?;
                    return Ok(Extent {
                        zone,
                        addr: start,
                        len,
                        append: true,
                    });
                }
                Err(Error::Unsupported(_)) | Err(Error::NoSpace) | Err(Error::Busy) => {}
                Err(e) => return Err(e),
            }
        }
        let mut e = self.alloc.alloc(stream, n)?;
        e.append = false;
        Ok(e)
    }

    /// The write of `plan` completed: `addrs[i]` is where extent `i` landed
    /// (`None`: that extent failed; its blocks keep their old mapping).
    /// Updates the block table, invalidates the old locations and queues the
    /// journal records. Returns the blocks mapped.
    pub fn write_end(&mut self, plan: &WritePlan, addrs: &[Option<u64>]) -> Result<u64> {
        let mut done = 0u64;
        let mut first_err = None;
        for (k, ext) in plan.extents().iter().enumerate() {
            let at = addrs.get(k).copied().flatten();
            match at {
                Some(a) => match self.map_extent(plan.vol, plan.lba + ext.off, ext, a) {
                    Ok(()) => {
                        done = done.saturating_add(ext.len);
                        self.stats.user_blocks = self.stats.user_blocks.saturating_add(ext.len);
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                },
                None => {
                    self.extent_failed(ext.zone, ext.len);
                    self.unreserve(1);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// A planned write failed entirely: nothing is mapped.
    pub fn write_failed(&mut self, plan: &WritePlan) {
        for ext in plan.extents() {
            self.extent_failed(ext.zone, ext.len);
            self.unreserve(1);
        }
    }

    /// A write into `zone` failed: the device's write pointer is now unknown
    /// (regular write) or behind the allocator's (append), so the zone is
    /// closed for writing: finished in the allocator now, on the device by
    /// the next [`Self::maintenance`].
    fn extent_failed(&mut self, zone: u32, len: u64) {
        let _ = self.alloc.abort(zone, len);
        if self.alloc.finish(zone).is_err() {
            return;
        }
        if self.zone_conv(zone)
            || self
                .finish_q
                .get(..self.nfinish)
                .unwrap_or(&[])
                .contains(&zone)
        {
            return;
        }
        match self.finish_q.get_mut(self.nfinish) {
            Some(s) => {
                *s = zone;
                self.nfinish = self.nfinish.saturating_add(1);
            }
            None => self.failed = true,
        }
    }

    fn map_extent(&mut self, vol: u32, lba: u64, ext: &PlanExtent, addr: u64) -> Result<()> {
        let ok_addr = if ext.append {
            self.alloc.geom().range_zone(addr, ext.len) == Some(ext.zone)
        } else {
            addr == ext.addr
        };
        let i = self.vol_index(vol);
        let (Ok(i), true) = (i, ok_addr) else {
            let _ = self.alloc.abort(ext.zone, ext.len);
            self.unreserve(1);
            return Err(if ok_addr {
                Error::NotFound
            } else {
                Error::Invalid("write: completion address")
            });
        };
        let Some(mut t) = self.vols.get(i).and_then(|v| v.table) else {
            return Err(Error::NotFound);
        };
        // Complete first: the old locations may be in the same zone, and the
        // new blocks must not count as in flight when they are invalidated.
        let c = if ext.append {
            self.alloc.complete_append(ext.zone, addr, ext.len)
        } else {
            self.alloc.complete_write(addr, ext.len)
        };
        if c.is_err() {
            self.failed = true;
        }
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed) = (&mut self.alloc, &mut self.zepoch, &mut self.failed);
        let r = t.map_range_shared(
            &mut self.nodes,
            &mut self.refs,
            lba,
            ext.len,
            addr,
            |a, n| inval(alloc, zepoch, ep, failed, a, n),
        );
        if let Err(e) = r {
            // Not mapped: the new blocks are garbage.
            inval(
                &mut self.alloc,
                &mut self.zepoch,
                ep,
                &mut self.failed,
                addr,
                ext.len,
            );
            self.unreserve(1);
            return Err(e);
        }
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        self.push_reserved(Record::MapExtent {
            vol,
            lba,
            len: ext.len as u32,
            addr,
        });
        Ok(())
    }

    // ---- reads and discards ---------------------------------------------------

    /// Resolves `nblocks` volume blocks from `lba` into runs (split at mapping
    /// boundaries) in `out`; returns how many runs were filled. If they cover
    /// fewer blocks than asked, call again for the rest.
    pub fn read_plan(
        &self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        out: &mut [ReadRun],
    ) -> Result<usize> {
        let v = self.volume(vol).ok_or(Error::NotFound)?;
        let t = v.table.ok_or(Error::NotFound)?;
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("read: range"))?;
        if end > t.size() {
            return Err(Error::Invalid("read: beyond volume end"));
        }
        let mut n = 0usize;
        let mut l = lba;
        for slot in out.iter_mut() {
            if l >= end {
                break;
            }
            let (addr, mut len) = t.lookup_run(&self.nodes, l, end.saturating_sub(l));
            if len == 0 {
                return Err(Error::Corrupt("read: empty run"));
            }
            // A run never crosses a zone (hence never a member) boundary:
            // consecutive pool addresses may lie on two devices.
            if let Some(a) = addr {
                let loc = self
                    .alloc
                    .geom()
                    .locate(a)
                    .ok_or(Error::Corrupt("read: address"))?;
                let size = self
                    .alloc
                    .geom()
                    .zone(loc.zone)
                    .map(|z| z.size)
                    .unwrap_or(1);
                len = len.min(size.saturating_sub(loc.offset)).max(1);
            }
            *slot = ReadRun { lba: l, len, addr };
            n = n.saturating_add(1);
            l = l.saturating_add(len);
        }
        Ok(n)
    }

    /// Discards (unmaps) `nblocks` volume blocks from `lba`
    /// ([`Error::ReadOnly`] on a snapshot).
    pub fn discard(&mut self, vol: u32, lba: u64, nblocks: u64) -> Result<()> {
        self.live()?;
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("discard: range"))?;
        if nblocks == 0 || end > t.size() {
            return Err(Error::Invalid("discard: range"));
        }
        let step = u64::from(u32::MAX);
        let nrec = nblocks.div_ceil(step) as usize;
        self.reserve(nrec)?;
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed) = (&mut self.alloc, &mut self.zepoch, &mut self.failed);
        let r = t.unmap_range_shared(&mut self.nodes, &mut self.refs, lba, nblocks, |a, k| {
            inval(alloc, zepoch, ep, failed, a, k)
        });
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        if let Err(e) = r {
            if e != Error::NoSpace {
                self.unreserve(nrec);
                self.failed = true;
                return Err(e);
            }
            // Out of nodes for a copy-on-write: the range is partly
            // unmapped (and its blocks maybe freed); journal all of it, so
            // that what is durable never maps a freed block.
        }
        let mut l = lba;
        while l < end {
            let n = end.saturating_sub(l).min(step);
            self.push_reserved(Record::Unmap {
                vol,
                lba: l,
                len: n as u32,
            });
            l = l.saturating_add(n);
        }
        r
    }

    // ---- commit: journal ------------------------------------------------------

    /// Whether the next commit must be a checkpoint (log zones full, journal
    /// interval reached, or after recovery).
    pub fn needs_checkpoint(&self) -> bool {
        if self.need_ckpt {
            return true;
        }
        if self.jblocks_since_ckpt >= u64::from(self.sb.checkpoint_interval) {
            return true;
        }
        // Current log zone more than half full and the other one not yet
        // covered by a checkpoint: checkpoint now, so that switching is
        // possible when the current one fills.
        let Some(cur) = self.jlog else {
            return self.log_max_seq.iter().any(|&s| s > self.ckpt_seq);
        };
        let other = 1 - cur;
        let cap = log_zone(self.alloc.geom(), self.jdev, u32::from(cur))
            .and_then(|z| self.alloc.geom().zone_cap(z))
            .unwrap_or(0);
        self.jwp.saturating_mul(2) >= cap
            && self
                .log_max_seq
                .get(usize::from(other))
                .copied()
                .unwrap_or(0)
                > self.ckpt_seq
    }

    /// FLUSH: commits every record queued so far; then call
    /// [`Self::flush_end`]. Normally emits `Flush` (data durable), the
    /// log-zone switch if needed, the journal blocks and a final `Flush`,
    /// and returns the number of journal blocks. When a checkpoint is due
    /// ([`Self::needs_checkpoint`], e.g. always after recovery) or the
    /// blocks cannot be placed in a log zone, it writes a checkpoint instead
    /// (see [`Self::checkpoint`]; returns 0) — a checkpoint commits too.
    /// Returns 0 without emitting anything when nothing is queued.
    /// `Busy` if a commit is in flight (or, rarely, a checkpoint zone cannot
    /// be opened while writes are in flight: retry after they complete).
    /// `scratch` is two blocks (one is enough when no checkpoint is needed).
    pub fn flush<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        if self.read_only {
            // Nothing can be queued: every change was refused.
            return Ok(0);
        }
        self.live()?;
        if self.commit != Commit::None {
            return Err(Error::Busy);
        }
        if self.npend == 0 {
            self.all_committed();
            return Ok(0);
        }
        if !self.needs_checkpoint() {
            match self.flush_journal(scratch, sink) {
                Err(Error::Busy) => {}
                r => return r,
            }
        }
        if scratch.len() < 2 * BLOCK_SIZE {
            return Err(Error::Busy);
        }
        self.checkpoint(scratch, sink).map(|()| 0)
    }

    /// The first phase of a journal commit done by the caller outside its
    /// lock: emits the operations of [`Self::flush`] for at most
    /// `max_blocks` journal blocks of the oldest queued records (plus the
    /// superblock block of a log-zone switch), without a checkpoint. The
    /// caller records them, performs them later (while other changes are
    /// queued) and calls [`Self::flush_end`]. `Ok(None)`: a checkpoint is
    /// due, nothing emitted (call [`Self::flush`]); `Ok(Some(0))`: nothing
    /// queued. Records queued after this call wait for the next commit.
    pub fn flush_journal_only<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        max_blocks: u64,
        sink: &mut F,
    ) -> Result<Option<u64>> {
        if self.read_only {
            return Ok(Some(0));
        }
        self.live()?;
        if self.commit != Commit::None {
            return Err(Error::Busy);
        }
        if self.npend == 0 {
            self.all_committed();
            return Ok(Some(0));
        }
        if self.needs_checkpoint() {
            return Ok(None);
        }
        let queued = self.recs.get(..self.npend).unwrap_or(&[]);
        let nrec = records_within(queued, max_blocks.max(1));
        let nblocks = journal_blocks_for(queued.get(..nrec).unwrap_or(&[]));
        if nrec == 0 {
            return Ok(None);
        }
        match self.flush_journal_blocks(nrec, nblocks, scratch, sink) {
            Err(Error::Busy) => Ok(None),
            r => r.map(Some),
        }
    }

    /// The journal part of [`Self::flush`]: `Busy` (nothing emitted) when a
    /// checkpoint is needed first.
    fn flush_journal<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        let nrec = self.npend;
        let nblocks = journal_blocks_for(self.recs.get(..nrec).unwrap_or(&[]));
        self.flush_journal_blocks(nrec, nblocks, scratch, sink)
    }

    /// [`Self::flush_journal`] of the first `nrec` queued records in
    /// `nblocks` blocks (`nrec == 0`: one empty commit block).
    fn flush_journal_blocks<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        nrec: usize,
        nblocks: u64,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        if self.need_ckpt {
            return Err(Error::Busy);
        }
        let geo_cap = |p: &Self, i: u8| {
            log_zone(p.alloc.geom(), p.jdev, u32::from(i))
                .and_then(|z| p.alloc.geom().zone_cap(z).map(|c| (z, c)))
        };
        let fits = match self.jlog.and_then(|i| geo_cap(self, i)) {
            Some((_, cap)) => self.jwp.saturating_add(nblocks) <= cap,
            None => false,
        };
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch"))?;
        let mut switch: Option<(u8, u32, Option<u32>)> = None;
        // A changed superblock (feature bits) is written at a log-zone
        // switch: force one.
        if !fits || self.sb_dirty {
            let next = match self.jlog {
                Some(c) => 1 - c,
                None => 0,
            };
            let covered = |p: &Self, i: u8| {
                p.log_max_seq.get(usize::from(i)).copied().unwrap_or(0) <= p.ckpt_seq
            };
            // The zone to reset must be covered by the checkpoint, and the
            // other log zone must hold a superblock (so that a crash right
            // after the reset leaves the member a copy); after recovery
            // (no current zone) either may do.
            let sb_ok = |p: &Self, i: u8| p.log_sb_ok.get(usize::from(i)).copied().unwrap_or(false);
            let usable = |p: &Self, i: u8| covered(p, i) && (sb_ok(p, 1 - i) || !sb_ok(p, i));
            let next = if usable(self, next) {
                next
            } else if self.jlog.is_none() && usable(self, 1) {
                1
            } else {
                return Err(Error::Busy);
            };
            let (z, cap) = geo_cap(self, next).ok_or(Error::Corrupt("log zone"))?;
            if nblocks.saturating_add(1) > cap {
                // More than a log zone holds: commit with a checkpoint.
                return Err(Error::Busy);
            }
            let old = self
                .jlog
                .and_then(|c| log_zone(self.alloc.geom(), self.jdev, u32::from(c)));
            switch = Some((next, z, old));
        }
        let r = self.emit_journal(nrec, nblocks, switch, blk, sink);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn emit_journal<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        nrec: usize,
        nblocks: u64,
        switch: Option<(u8, u32, Option<u32>)>,
        blk: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        sink(MetaOp::Flush)?;
        if let Some((next, z, old)) = switch {
            if let Some(o) = old {
                let _ = self.alloc.meta_open(o, false);
                let full = self
                    .alloc
                    .geom()
                    .zone_cap(o)
                    .map(|c| self.jwp >= c)
                    .unwrap_or(true);
                if !full && !self.zone_conv(o) {
                    sink(MetaOp::Finish(o))?;
                }
            }
            if !self.zone_conv(z) {
                sink(MetaOp::Reset(z))?;
            }
            if let Some(m) = self.log_max_seq.get_mut(usize::from(next)) {
                *m = 0;
            }
            if let Some(o) = self.log_sb_ok.get_mut(usize::from(next)) {
                *o = false;
            }
            self.encode_sb_for(self.jdev, blk)?;
            let start = self
                .alloc
                .geom()
                .zone_start(z)
                .ok_or(Error::Corrupt("log zone"))?;
            sink(MetaOp::Write(start, blk))?;
            self.alloc.meta_open(z, true)?;
            self.jlog = Some(next);
            self.jwp = 1;
        }
        let log = self.jlog.ok_or(Error::Corrupt("no log zone"))?;
        let z = log_zone(self.alloc.geom(), self.jdev, u32::from(log))
            .ok_or(Error::Corrupt("log zone"))?;
        let start = self
            .alloc
            .geom()
            .zone_start(z)
            .ok_or(Error::Corrupt("log zone"))?;
        let mut seq = self.jseq;
        let mut i = 0usize;
        let mut written = 0u64;
        let groups = self.commit_blocks();
        while i < nrec || written < nblocks.min(1) {
            let mut b = JournalBuilder::new(blk, self.sb.pool_uuid, seq, self.ckpt_gen)?;
            while i < nrec {
                let rec = *self.recs.get(i).ok_or(Error::Corrupt("record queue"))?;
                if !b.fits(&rec) {
                    break;
                }
                b.push(&rec)?;
                i = i.saturating_add(1);
            }
            if b.is_empty() && nrec > 0 {
                return Err(Error::Corrupt("journal record does not fit"));
            }
            let last = i >= nrec;
            if groups {
                // The group's last block is written only once all its
                // other blocks are durable: a commit-flagged block proves
                // the whole group was committed.
                b.set_commit(self.durable_seq, last)?;
                if last && written > 0 {
                    sink(MetaOp::Flush)?;
                }
            }
            b.finish()?;
            sink(MetaOp::Write(
                start.saturating_add(self.jwp).saturating_add(written),
                blk,
            ))?;
            written = written.saturating_add(1);
            seq = seq.saturating_add(1);
        }
        if written != nblocks {
            return Err(Error::Corrupt("journal block count"));
        }
        sink(MetaOp::Flush)?;
        self.commit = Commit::Journal {
            nrec,
            epoch: self.cur_epoch,
            nblocks,
            last_seq: seq.saturating_sub(1),
            log,
            sb: switch.map(|_| self.sb.generation),
        };
        self.cur_epoch = self.cur_epoch.saturating_add(1);
        Ok(nblocks)
    }

    /// The operations of the last [`Self::flush`] completed (`ok`) or one of
    /// them failed (this also ends a checkpoint that `flush` wrote). After a
    /// failure the pool stops accepting changes (the
    /// journal position is unknown): re-assemble it.
    pub fn flush_end(&mut self, ok: bool) -> Result<()> {
        if let Commit::Checkpoint { .. } = self.commit {
            return self.checkpoint_end(ok);
        }
        let Commit::Journal {
            nrec,
            epoch,
            nblocks,
            last_seq,
            log,
            sb,
        } = self.commit
        else {
            return Err(Error::Invalid("no flush in flight"));
        };
        self.commit = Commit::None;
        if !ok {
            self.failed = true;
            return Err(Error::Invalid("flush failed"));
        }
        self.drop_records(nrec);
        self.committed_epoch = epoch;
        self.durable_seq = last_seq;
        self.jseq = last_seq.saturating_add(1);
        self.jwp = self.jwp.saturating_add(nblocks);
        self.jblocks_since_ckpt = self.jblocks_since_ckpt.saturating_add(nblocks);
        if let Some(m) = self.log_max_seq.get_mut(usize::from(log & 1)) {
            *m = last_seq;
        }
        // The superblock written at the switch is durable now too.
        if let Some(o) = self.log_sb_ok.get_mut(usize::from(log & 1)) {
            *o = true;
        }
        if sb == Some(self.sb.generation) {
            self.sb_dirty = false;
        }
        self.stats.journal_blocks = self.stats.journal_blocks.saturating_add(nblocks);
        self.stats.commits = self.stats.commits.saturating_add(1);
        // A full log zone is no longer active on the device.
        if let Some(z) = log_zone(self.alloc.geom(), self.jdev, u32::from(log)) {
            if self.alloc.geom().zone_cap(z).map(|c| self.jwp >= c) == Some(true) {
                let _ = self.alloc.meta_open(z, false);
            }
        }
        Ok(())
    }

    /// Clean stop, after the last commit: appends an empty commit-flagged
    /// journal block (then `Flush`) naming the last commit, so that damage
    /// to the newest commit group is told from a torn tail at the next
    /// assembly. Returns whether a block was emitted (nothing on a
    /// read-only or failed pool, a pool without commit groups, with records
    /// queued, before the first checkpoint after assembly, or with the log
    /// zone full). The engine takes no more changes afterwards.
    pub fn close<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<bool> {
        if self.read_only
            || self.failed
            || !self.commit_blocks()
            || self.commit != Commit::None
            || self.npend != 0
            || self.need_ckpt
        {
            return Ok(false);
        }
        // One empty block, placed like any commit (a log-zone switch if
        // needed); the engine takes no change afterwards.
        let r = match self.flush_journal_blocks(0, 1, scratch, sink) {
            Ok(_) => self.flush_end(true).map(|()| true),
            Err(Error::Busy) => Ok(false),
            Err(e) => Err(e),
        };
        self.failed = true;
        r
    }

    /// Nothing is queued and no commit is in flight: every record ever
    /// queued is durable, so every invalidation stamped so far is covered
    /// (invalidations without a record — unused GC copies, blocks of failed
    /// mappings — never needed a commit).
    fn all_committed(&mut self) {
        if self.npend == 0 && self.commit == Commit::None {
            self.committed_epoch = self.cur_epoch;
            self.cur_epoch = self.cur_epoch.saturating_add(1);
        }
    }

    fn drop_records(&mut self, nrec: usize) {
        let n = nrec.min(self.npend);
        let end = self.npend.min(self.recs.len());
        self.recs.copy_within(n.min(end)..end, 0);
        self.npend = self.npend.saturating_sub(n);
    }

    // ---- commit: checkpoint -------------------------------------------------

    /// Writes a full checkpoint (generation + 1, into the other set) that
    /// also commits every queued record. Emits the resets of the set's
    /// zones, the checkpoint blocks (with a `Flush` before the commit
    /// block, and one after), then finishes of the set's zones; call
    /// [`Self::checkpoint_end`] once they are done. `scratch` is 2 blocks.
    pub fn checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.live()?;
        if self.commit != Commit::None {
            return Err(Error::Busy);
        }
        let gen = self
            .ckpt_gen
            .checked_add(1)
            .ok_or(Error::NoSpace)?
            .max(self.ckpt_gen_min);
        // Every member must be able to open its checkpoint zone (directly,
        // or after finishing an open data zone with nothing in flight);
        // otherwise retry once writes have completed. Nothing emitted yet.
        for d in 0..self.alloc.geom().nr_devices() {
            if !self.ckpt_slot_ok(d) {
                return Err(Error::Busy);
            }
        }
        let r = self.write_checkpoint(gen, scratch, sink);
        if r.is_err() {
            self.commit = Commit::None;
            self.failed = true;
        }
        r
    }

    /// Whether member `d` can open one more (metadata) zone, possibly after
    /// finishing an open data zone that has nothing in flight.
    fn ckpt_slot_ok(&self, d: u16) -> bool {
        let Some(g) = self.alloc.geom().device(d) else {
            return false;
        };
        let (open, active) = self.alloc.dev_open_active(d);
        let ok = |cur: u32, lim: u32| lim == 0 || cur.saturating_add(1) <= lim;
        if ok(open, g.open_limit()) && ok(active, g.max_active) {
            return true;
        }
        Stream::ALL.iter().any(|s| {
            self.alloc
                .open_zone(*s, d)
                .and_then(|z| self.alloc.zone(z))
                .map(|zi| zi.inflight() == 0)
                .unwrap_or(false)
        })
    }

    /// Chooses how each volume is stored in the next checkpoint: in full
    /// (`ck_base == NO_SLOT`, `ck_done`) or as differences against its
    /// delta base (the slot in `ck_base`). A chain of bases that does not
    /// end (impossible unless the links are corrupt) is cut.
    fn plan_bases(&mut self) {
        let sharing = self.sharing();
        let n = self.vols.len();
        for i in 0..n {
            let Some(v) = self.vols.get(i).copied() else {
                break;
            };
            let base = match (sharing, v.parent, v.table) {
                (true, Some(p), Some(_)) => self
                    .vols
                    .iter()
                    .position(|w| w.table.is_some() && w.id == p)
                    .filter(|&j| j != i)
                    .map(|j| j as u32)
                    .unwrap_or(NO_SLOT),
                _ => NO_SLOT,
            };
            if let Some(e) = self.vols.get_mut(i) {
                e.ck_base = base;
                e.ck_done = base == NO_SLOT;
            }
        }
        for i in 0..n {
            let mut j = i;
            let mut steps = 0usize;
            let ends = loop {
                let b = self.vols.get(j).map(|v| v.ck_base).unwrap_or(NO_SLOT);
                if b == NO_SLOT {
                    break true;
                }
                if steps > n {
                    break false;
                }
                j = b as usize;
                steps += 1;
            };
            if !ends {
                if let Some(e) = self.vols.get_mut(i) {
                    e.ck_base = NO_SLOT;
                    e.ck_done = true;
                }
            }
        }
    }

    fn write_checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        let set = set_of(gen);
        let n = self.alloc.geom().nr_devices();
        for d in 0..n {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            if !self.zone_conv(z) {
                sink(MetaOp::Reset(z))?;
            }
        }
        let cap = checkpoint_capacity(self.alloc.geom(), set);
        let (blk, rest) = scratch.split_at_mut(BLOCK_SIZE.min(scratch.len()));
        let chunk = rest
            .get_mut(..CKPT_DATA_MAX)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let hdr = CheckpointHeader {
            pool_uuid: self.sb.pool_uuid,
            generation: gen,
            journal_seq: self.jseq.saturating_sub(1),
        };
        let mut w = CheckpointWriter::new(blk, hdr, cap)?;
        self.plan_bases();
        // The sink of the writer: translate indexes to addresses, open the
        // set's zones as they are entered, flush before the commit block.
        let mut cur_zone: Option<u32> = None;
        let mut opened = [false; super::geom::MAX_DEVICES];
        let mut err: Result<()> = Ok(());
        {
            let geom_alloc = &mut self.alloc;
            let mut wsink = |idx: u32, b: &[u8]| -> Result<()> {
                let addr =
                    checkpoint_block_addr(geom_alloc.geom(), set, idx).ok_or(Error::NoSpace)?;
                let z = geom_alloc.geom().zone_of(addr).ok_or(Error::NoSpace)?;
                if cur_zone != Some(z) {
                    cur_zone = Some(z);
                    let d = geom_alloc.geom().zone(z).map(|g| g.dev).unwrap_or(0);
                    if geom_alloc.meta_open(z, true).is_err() {
                        // Make room: finish one open data zone of the member.
                        let mut freed = false;
                        for s in Stream::ALL.iter().take(NR_STREAMS) {
                            if let Some(oz) = geom_alloc.open_zone(*s, d) {
                                let infl = geom_alloc.zone(oz).map(|zi| zi.inflight()).unwrap_or(1);
                                if infl == 0 && geom_alloc.finish(oz).is_ok() {
                                    sink(MetaOp::Finish(oz))?;
                                    freed = true;
                                    break;
                                }
                            }
                        }
                        if !freed {
                            return Err(Error::Busy);
                        }
                        geom_alloc.meta_open(z, true)?;
                    }
                    if let Some(o) = opened.get_mut(usize::from(d)) {
                        *o = true;
                    }
                }
                if peek_commit(b) {
                    sink(MetaOp::Flush)?;
                }
                sink(MetaOp::Write(addr, b))
            };
            let vols = &mut self.vols;
            let nodes = &self.nodes;
            let sharing = self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0;
            let rewind = self.last_rewind;
            // Volumes.
            let r = (|| -> Result<()> {
                w.begin_section(section::VOLUMES, &mut wsink)?;
                for v in vols.iter() {
                    let Some(t) = v.table else { continue };
                    let mut rec = [0u8; VOL_RECORD_BYTES];
                    let mut wr = Writer::new(&mut rec);
                    wr.put_u32(v.id)?;
                    wr.put_u32(v.flags)?;
                    wr.put_u64(t.size())?;
                    let nb = v.name.as_bytes();
                    wr.put_u8(nb.len() as u8)?;
                    wr.put_bytes(nb)?;
                    w.append_record(&rec, &mut wsink)?;
                }
                w.begin_section(section::BLOCK_TABLE, &mut wsink)?;
                for v in vols.iter() {
                    let Some(t) = v.table else { continue };
                    if v.ck_base != NO_SLOT {
                        continue;
                    }
                    let mut cursor = 0u64;
                    loop {
                        let mut cw = Writer::new(chunk);
                        let done = t.encode_chunk(nodes, &mut cursor, &mut cw)?;
                        let len = cw.pos();
                        if len > 4 {
                            w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                        }
                        if done {
                            break;
                        }
                    }
                }
                if sharing {
                    w.begin_section(section::SHARING, &mut wsink)?;
                    for v in vols.iter() {
                        if v.table.is_none() || (v.origin.is_none() && v.parent.is_none()) {
                            continue;
                        }
                        let mut rec = [0u8; SMALL_RECORD_BYTES];
                        encode_link(&mut Writer::new(&mut rec), v.id, v.origin, v.parent)?;
                        w.append_record(&rec, &mut wsink)?;
                    }
                    // Delta volumes, each after its base.
                    loop {
                        let mut progress = false;
                        for i in 0..vols.len() {
                            let Some(v) = vols.get(i).copied() else { break };
                            let Some(t) = v.table else { continue };
                            if v.ck_done {
                                continue;
                            }
                            let Some(b) = vols.get(v.ck_base as usize).copied() else {
                                continue;
                            };
                            let Some(bt) = b.table.filter(|_| b.ck_done) else {
                                continue;
                            };
                            let mut rec = [0u8; SMALL_RECORD_BYTES];
                            encode_base(&mut Writer::new(&mut rec), v.id, b.id)?;
                            w.append_record(&rec, &mut wsink)?;
                            let mut at = 0u64;
                            let mut pending = t.next_diff(nodes, &bt, at);
                            while pending.is_some() {
                                let mut dw = DiffWriter::new(chunk, v.id)?;
                                while dw.has_room() {
                                    let Some(d) = pending else { break };
                                    let e = match d {
                                        Diff::Map(x) => DiffEntry {
                                            map: true,
                                            lba: x.lba,
                                            len: x.len.min(u64::from(u32::MAX)) as u32,
                                            addr: x.addr,
                                        },
                                        Diff::Unmap { lba, len } => DiffEntry {
                                            map: false,
                                            lba,
                                            len: len.min(u64::from(u32::MAX)) as u32,
                                            addr: 0,
                                        },
                                    };
                                    dw.push(&e)?;
                                    at = e.lba.saturating_add(u64::from(e.len));
                                    pending = t.next_diff(nodes, &bt, at);
                                }
                                let len = dw.finish()?;
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if let Some(e) = vols.get_mut(i) {
                                e.ck_done = true;
                            }
                            progress = true;
                        }
                        if !progress {
                            break;
                        }
                    }
                    if vols.iter().any(|v| v.table.is_some() && !v.ck_done) {
                        return Err(Error::Corrupt("checkpoint: delta base cycle"));
                    }
                }
                if let Some(rw) = rewind {
                    w.begin_section(HISTORY, &mut wsink)?;
                    let mut rec = [0u8; REWIND_RECORD_BYTES];
                    rw.encode(&mut Writer::new(&mut rec))?;
                    w.append_record(&rec, &mut wsink)?;
                }
                w.finish(&mut wsink).map(|_| ())
            })();
            if let Err(e) = r {
                err = Err(e);
            }
        }
        err?;
        sink(MetaOp::Flush)?;
        // The set's zones are no longer written: finish them (not active).
        for d in 0..n {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            if opened.get(usize::from(d)).copied().unwrap_or(false) {
                let _ = self.alloc.meta_open(z, false);
            }
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
        }
        self.commit = Commit::Checkpoint {
            nrec: self.npend,
            epoch: self.cur_epoch,
            gen,
            seq: self.jseq.saturating_sub(1),
        };
        self.cur_epoch += 1;
        Ok(())
    }

    /// The operations of the last [`Self::checkpoint`] completed (`ok`) or
    /// failed (the pool then stops accepting changes: re-assemble it).
    pub fn checkpoint_end(&mut self, ok: bool) -> Result<()> {
        let Commit::Checkpoint {
            nrec,
            epoch,
            gen,
            seq,
        } = self.commit
        else {
            return Err(Error::Invalid("no checkpoint in flight"));
        };
        self.commit = Commit::None;
        if !ok {
            self.failed = true;
            return Err(Error::Invalid("checkpoint failed"));
        }
        self.drop_records(nrec);
        self.committed_epoch = epoch;
        // `ZoneReset` records the checkpoint absorbed are in no journal
        // block: queue them again, so that the journal after this
        // checkpoint names the zone before it is reset (if this checkpoint
        // is ever lost, recovery from the older one must learn it).
        for e in self.zepoch.iter_mut() {
            if *e & RESET_QUEUED != 0 && *e & !RESET_QUEUED <= epoch {
                *e = 0;
            }
        }
        self.ckpt_gen = gen;
        self.ckpt_seq = seq;
        self.durable_seq = seq;
        self.jblocks_since_ckpt = 0;
        self.need_ckpt = false;
        self.stats.checkpoints = self.stats.checkpoints.saturating_add(1);
        self.stats.commits = self.stats.commits.saturating_add(1);
        Ok(())
    }

    // ---- maintenance: zone resets -----------------------------------------------

    /// Emits `Finish` for zones whose writes failed, then `Reset` for every
    /// data zone that holds no valid block and whose
    /// invalidations are committed (sequential zones; conventional ones are
    /// just marked empty). The zones are free for allocation at once: the
    /// caller must complete the resets before issuing new writes. Returns
    /// the number of zones reclaimed.
    ///
    /// On pools with commit groups a zone is reset in two steps: first a
    /// `ZoneReset` record is queued ([`Self::pending_records`] grows:
    /// commit, then call this again), and the zone is reset once that
    /// record is committed. So the journal names every zone reclaimed
    /// after any point in it, which recovery needs when it must stop
    /// before damaged metadata.
    pub fn maintenance<F: FnMut(MetaOp<'_>) -> Result<()>>(&mut self, sink: &mut F) -> Result<u32> {
        self.maintenance_inner(sink, u32::MAX, false)
    }

    /// [`Self::maintenance`] whose resets the caller performs later, outside
    /// its lock: the `Reset` operations of at most `max_resets` zones are
    /// emitted and those zones are marked resetting (neither allocatable nor
    /// planned again) until [`Self::reset_end`]. Returns the number of
    /// resets emitted.
    pub fn maintenance_plan<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        sink: &mut F,
        max_resets: u32,
    ) -> Result<u32> {
        self.maintenance_inner(sink, max_resets, true)
    }

    /// The reset of zone `z` planned by [`Self::maintenance_plan`] is done
    /// (`ok`: the zone is free) or failed (it is planned again later).
    pub fn reset_end(&mut self, z: u32, ok: bool) -> Result<()> {
        let e = self
            .zepoch
            .get_mut(z as usize)
            .ok_or(Error::Invalid("zone"))?;
        if *e != RESETTING {
            return Err(Error::Invalid("no reset planned"));
        }
        if !ok {
            // Committed already: the next maintenance retries it.
            *e = RESET_QUEUED;
            return Ok(());
        }
        self.reset_done(z)
    }

    /// Zone `z` was reset on the device (or needs none): free it.
    fn reset_done(&mut self, z: u32) -> Result<()> {
        self.alloc.reset(z)?;
        if let Some(x) = self.zepoch.get_mut(z as usize) {
            *x = 0;
        }
        if self.gc_victim == Some(z) {
            self.gc_victim = None;
        }
        self.stats.zones_reset = self.stats.zones_reset.saturating_add(1);
        Ok(())
    }

    fn maintenance_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        sink: &mut F,
        max_resets: u32,
        defer: bool,
    ) -> Result<u32> {
        self.live()?;
        let journal_resets = self.commit_blocks();
        for k in 0..self.nfinish {
            if let Some(&z) = self.finish_q.get(k) {
                sink(MetaOp::Finish(z))?;
            }
        }
        self.nfinish = 0;
        self.all_committed();
        let mut n = 0u32;
        for z in 0..self.alloc.geom().nr_zones() {
            if n >= max_resets {
                break;
            }
            let Some(zi) = self.alloc.zone(z).copied() else {
                continue;
            };
            if !matches!(zi.state(), ZoneState::Full | ZoneState::Closed)
                || zi.valid() != 0
                || zi.inflight() != 0
            {
                continue;
            }
            if self.gc_busy && self.gc_victim == Some(z) {
                continue;
            }
            let ze = self.zepoch.get(z as usize).copied().unwrap_or(u64::MAX);
            if ze == RESETTING {
                continue;
            }
            if ze & RESET_QUEUED == 0 {
                if ze > self.committed_epoch {
                    continue;
                }
                if journal_resets {
                    // Journal the reset first, reset once that is committed:
                    // recovery past damaged metadata then knows which zones
                    // were reclaimed after the damage (design-recovery §8a).
                    if self.free_slots() == 0 {
                        continue;
                    }
                    let e = self.cur_epoch;
                    self.push(Record::ZoneReset { zone: z });
                    if let Some(x) = self.zepoch.get_mut(z as usize) {
                        *x = RESET_QUEUED | e;
                    }
                    continue;
                }
            } else if ze & !RESET_QUEUED > self.committed_epoch {
                continue;
            }
            n = n.saturating_add(1);
            if self.zone_conv(z) {
                self.reset_done(z)?;
                continue;
            }
            sink(MetaOp::Reset(z))?;
            if defer {
                if let Some(x) = self.zepoch.get_mut(z as usize) {
                    *x = RESETTING;
                }
            } else {
                self.reset_done(z)?;
            }
        }
        Ok(n)
    }

    // ---- GC ----------------------------------------------------------------------

    /// Plans one GC batch into `out`: picks a victim zone if none is being
    /// collected, finds up to `out.len()` of its live extents and allocates
    /// their new place in the GC stream. Returns the number of items (0: no
    /// victim, or the victim has no live block left; it is reset by
    /// [`Self::maintenance`] once committed). Read each `src` and write it at
    /// `dst`, then call [`Self::gc_end`].
    ///
    /// Live blocks are found by walking every distinct block-table node once
    /// (nodes shared by snapshots and clones are not walked again), and a
    /// block referenced by several leaves is planned once: [`Self::gc_end`]
    /// moves every reference to the one copy. `src.vol` is one volume
    /// mapping the block.
    pub fn gc_begin(&mut self, out: &mut [RelocItem]) -> Result<usize> {
        self.gc_begin_limited(out, u64::MAX)
    }

    /// [`Self::gc_begin`] planning at most `max_blocks` blocks in total (the
    /// caller's copy buffer).
    pub fn gc_begin_limited(&mut self, out: &mut [RelocItem], max_blocks: u64) -> Result<usize> {
        self.live()?;
        if self.gc_busy {
            return Err(Error::Busy);
        }
        // The victim: the current one while it has live blocks, else the
        // best zone with live blocks (zones without any only need a reset,
        // done by `maintenance` once committed).
        let victim = loop {
            if let Some(v) = self.gc_victim {
                if self.alloc.zone(v).map(|zi| zi.valid()).unwrap_or(0) > 0 {
                    break v;
                }
                self.gc_victim = None;
            }
            let a = &self.alloc;
            let avoid = self.gc_avoid.get(..self.gc_navoid).unwrap_or(&[]);
            let skip =
                |z: u32| a.zone(z).map(|zi| zi.valid() == 0).unwrap_or(true) || avoid.contains(&z);
            match pick_victim(a, self.cfg.policy, skip) {
                Some(v) => {
                    self.gc_victim = Some(v);
                    self.gc_victim_cost = self.zone_cost_x1000(v);
                    self.gc_cursor = (0, 0);
                }
                // Only avoided zones are left: retry them now (their blocks
                // may be readable again) rather than leave writers without
                // space.
                None if self.gc_navoid > 0 => {
                    self.gc_navoid = 0;
                    self.gc_avoid_age = 0;
                }
                None => return Ok(0),
            }
        };
        let zi = self
            .alloc
            .zone(victim)
            .copied()
            .ok_or(Error::Corrupt("zone"))?;
        let start = self
            .alloc
            .geom()
            .zone_start(victim)
            .ok_or(Error::Corrupt("zone"))?;
        let end = start.saturating_add(zi.wp());
        // 1. The live extents of the victim (sources only), from the cursor
        // on. Blocks behind the cursor that still live in the victim (a
        // leaf shared with an earlier table, a failed copy) are found by a
        // scan from the start when the one from the cursor finds nothing:
        // the victim is only reset once it holds no valid block.
        let mut n = 0usize;
        let item_max = self.cfg.gc_item_max.clamp(1, MAX_GC_ITEM);
        let mut stopped = false;
        for from in [self.gc_cursor, (0, 0)] {
            if n > 0 {
                break;
            }
            let vols = &self.vols;
            let stopped = &mut stopped;
            let cap = out.len();
            let out = &mut *out;
            let n = &mut n;
            let covered = |out: &[RelocItem], a: u64| {
                out.iter()
                    .any(|it| a >= it.src.addr && a < it.src.addr.saturating_add(it.src.len))
            };
            visit_distinct(
                &mut self.nodes,
                vols.len(),
                &|i| vols.get(i).and_then(|v| v.table),
                &mut |st, v| {
                    if v.level != 1 {
                        return *n < cap;
                    }
                    if (v.table, v.base) < from {
                        return true;
                    }
                    let mut run: Option<MapExtent> = None;
                    for i in 0..=FANOUT_USIZE {
                        let e = if i < FANOUT_USIZE {
                            st.get(v.id).and_then(|nd| nd.get(i).copied()).unwrap_or(0)
                        } else {
                            0
                        };
                        let a = e & ADDR_MASK;
                        let take = e & PRESENT != 0
                            && a >= start
                            && a < end
                            && !covered(out.get(..*n).unwrap_or(&[]), a);
                        let lba = v.base.saturating_add(i as u64);
                        let extends = match run {
                            Some(r) => {
                                take && r.lba.saturating_add(r.len) == lba
                                    && r.addr.saturating_add(r.len) == a
                                    && r.len < item_max
                            }
                            None => false,
                        };
                        if extends {
                            if let Some(r) = run.as_mut() {
                                r.len += 1;
                            }
                            continue;
                        }
                        if let Some(r) = run.take() {
                            if let Some(slot) = out.get_mut(*n) {
                                slot.src = r;
                                *n += 1;
                            }
                            if *n >= cap {
                                *stopped = true;
                                return false;
                            }
                        }
                        if take {
                            run = Some(MapExtent {
                                vol: v.vol,
                                lba,
                                len: 1,
                                addr: a,
                            });
                        }
                    }
                    *stopped = *n >= cap;
                    !*stopped
                },
            );
            if from == (0, 0) {
                break;
            }
        }
        // 2. Their new place.
        let mut k = 0usize;
        let mut planned = 0u64;
        let mut err = Ok(());
        while k < n {
            let Some(src) = out.get(k).map(|it| it.src) else {
                break;
            };
            let want = src.len.min(max_blocks.saturating_sub(planned));
            if want == 0 {
                break;
            }
            let need = (want as usize).div_ceil(2) + 1;
            if self.free_slots() < need {
                err = Err(Error::Busy);
                break;
            }
            let dst = match self.take(RELOCATION_STREAM, want) {
                Ok(d) => d,
                Err(x) => {
                    err = Err(x);
                    break;
                }
            };
            if let Some(slot) = out.get_mut(k) {
                // A shorter allocation (zone end) moves a prefix; the rest
                // is found by the next batch.
                slot.src.len = dst.len.min(want);
                slot.dst = dst;
            }
            self.reserved = self.reserved.saturating_add(need);
            planned = planned.saturating_add(dst.len.min(want));
            k += 1;
        }
        if k == 0 {
            err?;
        }
        if k > 0 {
            self.gc_busy = true;
            // The next scan starts at the leaf of the last item planned
            // (it may have been cut at a zone end, and everything after it
            // is still to do), or from the start once the scan got through.
            self.gc_cursor = match out.get(k - 1) {
                Some(it) if stopped || k < n => (
                    self.vols
                        .iter()
                        .position(|v| v.table.map(|t| t.vol()) == Some(it.src.vol))
                        .unwrap_or(0),
                    it.src.lba & !(FANOUT_USIZE as u64 - 1),
                ),
                _ => (0, 0),
            };
        }
        Ok(k)
    }

    /// The copies of a GC batch completed: `addrs[i]` is where item `i`'s
    /// copy landed (`None`: failed, the block stays where it was). Every
    /// leaf of every volume still holding an old block moves to its copy
    /// (relocation never un-shares: a shared leaf is updated in place for
    /// all its sharers); a user write that happened meanwhile wins. Records
    /// are queued ([`Record::Relocate`] in pools with shared blocks,
    /// [`Record::MapExtent`] otherwise).
    pub fn gc_end(&mut self, items: &[RelocItem], addrs: &[Option<u64>]) -> Result<u64> {
        if !self.gc_busy {
            return Err(Error::Invalid("no GC batch in flight"));
        }
        self.gc_busy = false;
        let mut moved_total = 0u64;
        for (k, it) in items.iter().enumerate() {
            let slots = (it.dst.len as usize).div_ceil(2) + 1;
            let Some(new) = addrs.get(k).copied().flatten() else {
                self.extent_failed(it.dst.zone, it.dst.len);
                self.unreserve(slots);
                continue;
            };
            let ok = if it.dst.append {
                self.alloc.geom().range_zone(new, it.dst.len) == Some(it.dst.zone)
            } else {
                new == it.dst.addr
            };
            let len = it.dst.len.min(it.src.len).min(MAX_GC_ITEM);
            if !ok || len == 0 {
                let _ = self.alloc.abort(it.dst.zone, it.dst.len);
                self.unreserve(slots);
                continue;
            }
            let c = if it.dst.append {
                self.alloc.complete_append(it.dst.zone, new, it.dst.len)
            } else {
                self.alloc.complete_write(new, it.dst.len)
            };
            if c.is_err() {
                self.failed = true;
            }
            let ep = self.cur_epoch;
            if it.dst.len > len {
                inval(
                    &mut self.alloc,
                    &mut self.zepoch,
                    ep,
                    &mut self.failed,
                    new.saturating_add(len),
                    it.dst.len - len,
                );
            }
            let src = MapExtent { len, ..it.src };
            // Extra references move with the blocks (before any table
            // changes: this may run out of nodes).
            if self
                .refs
                .move_refs(&mut self.nodes, src.addr, new, len)
                .is_err()
            {
                inval(
                    &mut self.alloc,
                    &mut self.zepoch,
                    ep,
                    &mut self.failed,
                    new,
                    len,
                );
                self.unreserve(slots);
                continue;
            }
            // Every table: blocks still at the old address move.
            let mut mask = 0u64;
            for vi in 0..self.vols.len() {
                let Some(mut t) = self.vols.get(vi).and_then(|v| v.table) else {
                    continue;
                };
                if src.lba >= t.size() {
                    continue;
                }
                let ext = MapExtent {
                    vol: t.vol(),
                    len: len.min(t.size() - src.lba),
                    ..src
                };
                let r = t.relocate(
                    &mut self.nodes,
                    &ext,
                    new,
                    |a, n| {
                        let off = a.saturating_sub(src.addr);
                        for o in off..off.saturating_add(n).min(64) {
                            mask |= 1u64 << o;
                        }
                    },
                    |_, _| {},
                );
                if let Some(v) = self.vols.get_mut(vi) {
                    v.table = Some(t);
                }
                if r.is_err() {
                    self.failed = true;
                }
            }
            // Moved blocks: the old copy dies; others: the new copy is unused.
            let mut used = 0usize;
            let mut o = 0u64;
            while o < len {
                let moved = mask & (1u64 << o) != 0;
                let mut n = 1u64;
                while o + n < len && (mask & (1u64 << (o + n)) != 0) == moved {
                    n += 1;
                }
                if moved {
                    inval(
                        &mut self.alloc,
                        &mut self.zepoch,
                        ep,
                        &mut self.failed,
                        src.addr + o,
                        n,
                    );
                    self.push(if self.sharing() {
                        Record::Relocate {
                            lba: src.lba + o,
                            old: src.addr + o,
                            new: new + o,
                            len: n as u32,
                        }
                    } else {
                        Record::MapExtent {
                            vol: src.vol,
                            lba: src.lba + o,
                            len: n as u32,
                            addr: new + o,
                        }
                    });
                    used = used.saturating_add(1);
                    moved_total = moved_total.saturating_add(n);
                } else {
                    if self.refs.shared_in(&self.nodes, new + o, n) != 0 {
                        self.failed = true;
                    }
                    inval(
                        &mut self.alloc,
                        &mut self.zepoch,
                        ep,
                        &mut self.failed,
                        new + o,
                        n,
                    );
                }
                o += n;
            }
            self.unreserve(slots.max(used));
            if used > slots {
                self.failed = true;
            }
        }
        self.stats.gc_blocks = self.stats.gc_blocks.saturating_add(moved_total);
        if moved_total > 0 && self.gc_navoid > 0 {
            self.gc_avoid_age = self.gc_avoid_age.saturating_add(1);
            if self.gc_avoid_age >= GC_AVOID_BATCHES {
                self.gc_navoid = 0;
                self.gc_avoid_age = 0;
            }
        }
        Ok(moved_total)
    }

    /// Gives up the current victim after a batch that could not read some
    /// of its blocks (call after [`Self::gc_end`]): GC picks other victims
    /// and retries this one after [`GC_AVOID_BATCHES`] batches that moved
    /// blocks, instead of burning destination space on the same unreadable
    /// blocks batch after batch. At most eight zones are avoided (a ninth
    /// makes the oldest eligible again).
    pub fn gc_skip_victim(&mut self) {
        let Some(v) = self.gc_victim.take() else {
            return;
        };
        self.gc_cursor = (0, 0);
        self.gc_avoid_age = 0;
        if self
            .gc_avoid
            .get(..self.gc_navoid)
            .unwrap_or(&[])
            .contains(&v)
        {
            return;
        }
        // A full list drops its oldest entry (retried first).
        if self.gc_navoid >= self.gc_avoid.len() {
            self.gc_avoid.copy_within(1.., 0);
            self.gc_navoid = self.gc_avoid.len() - 1;
        }
        if let Some(slot) = self.gc_avoid.get_mut(self.gc_navoid) {
            *slot = v;
            self.gc_navoid += 1;
        }
    }

    /// Zones GC currently avoids as victims (see [`Self::gc_skip_victim`]).
    pub fn gc_avoided(&self) -> &[u32] {
        self.gc_avoid.get(..self.gc_navoid).unwrap_or(&[])
    }

    /// Whether a GC batch is between [`Self::gc_begin`] and [`Self::gc_end`].
    pub fn gc_in_flight(&self) -> bool {
        self.gc_busy
    }

    /// The zone being collected.
    pub fn gc_victim(&self) -> Option<u32> {
        self.gc_victim
    }
}

/// Invalidates `[addr, addr+len)` in the allocator and stamps the zones with
/// the epoch of the commit that will carry the change (free function so that
/// block-table callbacks can use it while the node store is borrowed).
fn inval<G, Z, D>(
    alloc: &mut Allocator<G, Z, D>,
    zepoch: &mut [u64],
    epoch: u64,
    failed: &mut bool,
    addr: u64,
    len: u64,
) where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    if alloc.invalidate(addr, len).is_err() {
        *failed = true;
        return;
    }
    let mut a = addr;
    let end = addr.saturating_add(len);
    while a < end {
        let Some(l) = alloc.geom().locate(a) else {
            break;
        };
        let size = alloc.geom().zone(l.zone).map(|z| z.size).unwrap_or(1);
        if let Some(e) = zepoch.get_mut(l.zone as usize) {
            *e = epoch;
        }
        a = a.saturating_add(size.saturating_sub(l.offset).max(1));
    }
}

fn peek_commit(b: &[u8]) -> bool {
    super::format::peek_magic(b) == Some(super::format::CKPT_COMMIT_MAGIC)
}

/// Decodes one volume record of the checkpoint's volume section.
pub(super) fn decode_vol_record(r: &mut Reader<'_>) -> Result<(u32, u32, u64, VolName)> {
    let id = r.get_u32()?;
    let flags = r.get_u32()?;
    let size = r.get_u64()?;
    let nl = usize::from(r.get_u8()?);
    let name = r.get_bytes(32)?;
    let name = VolName::new(
        name.get(..nl)
            .ok_or(Error::BadField("volume name length"))?,
    )
    .map_err(|_| Error::BadField("volume name"))?;
    Ok((id, flags, size, name))
}

#[cfg(test)]
mod tests {
    use super::super::alloc::DevState;
    use super::super::geom::tests::zns;
    use super::super::map::tests::VecStore;
    use super::*;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    type TestPool = Pool<
        Vec<DeviceGeometry>,
        Vec<ZoneInfo>,
        Vec<u64>,
        Vec<VolEntry>,
        Vec<Record>,
        VecStore,
        Vec<DevState>,
        Box<Superblock>,
    >;

    #[derive(Debug, PartialEq, Eq)]
    enum Op {
        Flush,
        Reset(u32),
        Finish(u32),
        Write(u64),
    }

    fn rec(ops: &mut Vec<Op>) -> impl FnMut(MetaOp<'_>) -> Result<()> + '_ {
        |op| {
            ops.push(match op {
                MetaOp::Flush => Op::Flush,
                MetaOp::Reset(z) => Op::Reset(z),
                MetaOp::Finish(z) => Op::Finish(z),
                MetaOp::Write(a, b) => {
                    assert_eq!(b.len(), BLOCK_SIZE);
                    Op::Write(a)
                }
            });
            Ok(())
        }
    }

    fn new_pool(ops: &mut Vec<Op>) -> TestPool {
        let devs = vec![zns(16, 32, 32), zns(16, 32, 24)];
        let nz = 32;
        let st = PoolStorage {
            zones: vec![ZoneInfo::default(); nz],
            zone_epochs: vec![0; nz],
            vols: vec![VolEntry::default(); 4],
            records: vec![Record::ZoneReset { zone: 0 }; 64],
            nodes: VecStore::new(64),
            devs: vec![DevState::EMPTY; 2],
            sb: Box::new(Superblock::EMPTY),
        };
        let mut cfg = PoolConfig::default_for(2);
        cfg.use_append = false;
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        Pool::format(
            devs,
            [7; 16],
            &[[1; 16], [2; 16]],
            cfg,
            st,
            &mut scratch,
            &mut rec(ops),
        )
        .unwrap()
    }

    fn write(p: &mut TestPool, vol: u32, lba: u64, n: u64) -> WritePlan {
        let plan = p.write_begin(vol, lba, n, Stream::UserHot).unwrap();
        let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
        assert_eq!(p.write_end(&plan, &addrs).unwrap(), plan.nblocks);
        plan
    }

    fn lookup(p: &TestPool, vol: u32, lba: u64) -> Option<u64> {
        let mut runs = [ReadRun::default(); 1];
        assert_eq!(p.read_plan(vol, lba, 1, &mut runs).unwrap(), 1);
        runs[0].addr
    }

    #[test]
    fn format_emits_superblocks_and_a_checkpoint() {
        let mut ops = Vec::new();
        let p = new_pool(&mut ops);
        // Superblocks at block 0 of both log zones of both members.
        for a in [0, 32, 16 * 32, 17 * 32] {
            assert!(ops.contains(&Op::Write(a)), "superblock at {a}");
        }
        assert_eq!(ops.last(), Some(&Op::Finish(16 + 3)));
        assert!(ops.contains(&Op::Flush));
        assert_eq!(p.checkpoint_generation(), 1);
        assert_eq!(p.pending_records(), 0);
    }

    #[test]
    fn flush_orders_data_before_journal() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 100, 0).unwrap();
        write(&mut p, 1, 0, 10);
        assert_eq!(p.pending_records(), 2);
        let mut ops = Vec::new();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)).unwrap(), 1);
        // Data durable first, then the journal block (after the superblock
        // of log zone 0), then durable.
        assert_eq!(ops, vec![Op::Flush, Op::Write(1), Op::Flush]);
        // A second commit may not start before the first ends.
        assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)), Err(Error::Busy));
        p.flush_end(true).unwrap();
        assert_eq!(p.pending_records(), 0);
        assert_eq!(p.journal_seq(), 2);
        // Nothing queued: nothing to do.
        let mut ops = Vec::new();
        assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)).unwrap(), 0);
        assert!(ops.is_empty());
    }

    #[test]
    fn records_queued_during_a_flush_go_to_the_next_commit() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 100, 0).unwrap();
        let plan = p.write_begin(1, 0, 4, Stream::UserHot).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let mut ops = Vec::new();
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        // The write completes while the flush is in flight.
        let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
        p.write_end(&plan, &addrs).unwrap();
        p.flush_end(true).unwrap();
        assert_eq!(p.pending_records(), 1);
    }

    #[test]
    fn zone_reset_waits_for_the_commit_of_its_invalidation() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 200, 0).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        // Fill whole zones, commit, then overwrite everything.
        for l in (0..128).step_by(8) {
            write(&mut p, 1, l, 8);
        }
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
        let full_before = p
            .alloc()
            .zones()
            .iter()
            .filter(|z| z.state() == ZoneState::Full)
            .count();
        assert!(full_before >= 2);
        for l in (0..128).step_by(8) {
            write(&mut p, 1, l, 8);
        }
        // Invalidated but not committed: no reset.
        let mut ops = Vec::new();
        assert_eq!(p.maintenance(&mut rec(&mut ops)).unwrap(), 0);
        assert!(ops.is_empty());
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
        // Committed: the resets are journalled first (no reset yet)...
        let mut ops = Vec::new();
        assert_eq!(p.maintenance(&mut rec(&mut ops)).unwrap(), 0);
        assert!(ops.is_empty());
        assert!(p.pending_records() >= 2, "ZoneReset records queued");
        // ... and done once those records are committed.
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
        let mut ops = Vec::new();
        let n = p.maintenance(&mut rec(&mut ops)).unwrap();
        assert!(n >= 2, "{n} zones reset");
        assert!(ops.iter().all(|o| matches!(o, Op::Reset(_))));
        assert_eq!(p.stats().zones_reset, u64::from(n));
    }

    #[test]
    fn deferred_resets_free_zones_only_when_done() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 200, 0).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let mut commit = |p: &mut TestPool| {
            let mut ops = Vec::new();
            let n = p
                .flush_journal_only(&mut scratch, 64, &mut rec(&mut ops))
                .unwrap();
            if n != Some(0) {
                p.flush_end(true).unwrap();
            }
        };
        for _ in 0..2 {
            for l in (0..128).step_by(8) {
                write(&mut p, 1, l, 8);
            }
            commit(&mut p);
        }
        // Journal the resets, commit them.
        let mut ops = Vec::new();
        assert_eq!(p.maintenance_plan(&mut rec(&mut ops), 100).unwrap(), 0);
        commit(&mut p);
        // Planned, at most 1: emitted but the zone is not free yet.
        let free = p.free_zones();
        let mut ops = Vec::new();
        assert_eq!(p.maintenance_plan(&mut rec(&mut ops), 1).unwrap(), 1);
        let Some(&Op::Reset(z)) = ops.iter().find(|o| matches!(o, Op::Reset(_))) else {
            panic!("no reset in {ops:?}");
        };
        assert_eq!(p.free_zones(), free);
        // Not planned again while in flight; the rest is.
        let mut ops2 = Vec::new();
        let more = p.maintenance_plan(&mut rec(&mut ops2), 100).unwrap();
        assert!(more >= 1);
        assert!(!ops2.contains(&Op::Reset(z)));
        // A failed reset is planned again; a done one frees the zone.
        p.reset_end(z, false).unwrap();
        assert_eq!(
            p.reset_end(z, true),
            Err(Error::Invalid("no reset planned"))
        );
        let mut ops3 = Vec::new();
        assert_eq!(p.maintenance_plan(&mut rec(&mut ops3), 100).unwrap(), 1);
        assert_eq!(ops3, vec![Op::Reset(z)]);
        p.reset_end(z, true).unwrap();
        for o in ops2 {
            if let Op::Reset(x) = o {
                p.reset_end(x, true).unwrap();
            }
        }
        assert_eq!(p.free_zones(), free + 1 + more);
        assert_eq!(p.stats().zones_reset, u64::from(1 + more));
    }

    #[test]
    fn records_within_stops_at_the_block_budget() {
        let r = Record::MapExtent {
            vol: 1,
            lba: 0,
            len: 1,
            addr: 0,
        };
        let recs = vec![r; 2000];
        let one = records_within(&recs, 1);
        assert!(one > 10 && one < 2000);
        assert_eq!(journal_blocks_for(&recs[..one]), 1);
        assert_eq!(journal_blocks_for(&recs[..one + 1]), 2);
        let three = records_within(&recs, 3);
        assert_eq!(journal_blocks_for(&recs[..three]), 3);
        assert_eq!(records_within(&recs, 1000), recs.len());
        assert_eq!(records_within(&[], 1), 0);
    }

    #[test]
    fn journal_only_commits_or_asks_for_a_checkpoint() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 100, 0).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        write(&mut p, 1, 0, 4);
        let mut ops = Vec::new();
        let n = p
            .flush_journal_only(&mut scratch, 4, &mut rec(&mut ops))
            .unwrap();
        assert_eq!(n, Some(1));
        assert_eq!(ops, vec![Op::Flush, Op::Write(1), Op::Flush]);
        // In flight: no second commit; records queued now wait.
        write(&mut p, 1, 8, 4);
        assert_eq!(
            p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
            Err(Error::Busy)
        );
        p.flush_end(true).unwrap();
        assert_eq!(p.pending_records(), 1);
        // A checkpoint due: nothing emitted, the caller checkpoints.
        p.need_ckpt = true;
        let mut ops = Vec::new();
        assert_eq!(
            p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
            Ok(None)
        );
        assert!(ops.is_empty());
        assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)), Ok(0));
        p.flush_end(true).unwrap();
        assert_eq!(p.pending_records(), 0);
        // Nothing queued.
        assert_eq!(
            p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
            Ok(Some(0))
        );
    }

    #[test]
    fn failed_write_keeps_the_old_mapping_and_finishes_the_zone() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 100, 0).unwrap();
        let first = write(&mut p, 1, 5, 1);
        let plan = p.write_begin(1, 5, 1, Stream::UserHot).unwrap();
        p.write_end(&plan, &[None]).unwrap();
        assert_eq!(lookup(&p, 1, 5), Some(first.ext[0].addr));
        let mut ops = Vec::new();
        p.maintenance(&mut rec(&mut ops)).unwrap();
        assert_eq!(ops.first(), Some(&Op::Finish(plan.ext[0].zone)));
        // The next write goes elsewhere.
        let next = write(&mut p, 1, 6, 1);
        assert_ne!(next.ext[0].zone, plan.ext[0].zone);
    }

    #[test]
    fn gc_skips_a_victim_it_cannot_read_and_retries_it_later() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 4096, 0).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let mut commit = |p: &mut TestPool| {
            let mut ops = Vec::new();
            if p.pending_records() > 0 {
                p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
                p.flush_end(true).unwrap();
            }
        };
        // Several zones half overwritten: several victims with live blocks.
        for l in (0..256).step_by(8) {
            write(&mut p, 1, l, 8);
        }
        for l in (0..256).step_by(16) {
            write(&mut p, 1, l, 8);
        }
        commit(&mut p);
        let mut items = [RelocItem::default(); 4];
        let n = p.gc_begin(&mut items).unwrap();
        assert!(n > 0);
        let bad = p.gc_victim().unwrap();
        let valid = p.alloc().zone(bad).unwrap().valid();
        // Every read failed: nothing moves, the victim is given up.
        p.gc_end(&items[..n], &vec![None; n]).unwrap();
        p.gc_skip_victim();
        assert_eq!(p.gc_victim(), None);
        assert_eq!(p.gc_avoided(), &[bad]);
        assert_eq!(p.alloc().zone(bad).unwrap().valid(), valid, "nothing moved");
        // Later batches collect other zones, the avoided one only when no
        // other zone has live blocks ...
        let mut batches = 0u32;
        while batches < GC_AVOID_BATCHES {
            let n = p.gc_begin(&mut items).unwrap();
            if n == 0 {
                break;
            }
            if p.gc_victim() == Some(bad) {
                let a = p.alloc();
                let skip = |z: u32| z == bad || a.zone(z).map(|zi| zi.valid() == 0).unwrap_or(true);
                let other = pick_victim(a, p.cfg.policy, skip);
                assert_eq!(
                    other, None,
                    "an avoided zone was picked while others were left"
                );
                assert!(p.gc_avoided().is_empty());
                break;
            }
            let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
            p.gc_end(&items[..n], &addrs).unwrap();
            commit(&mut p);
            batches += 1;
        }
        assert!(batches > 0, "no other victim was collected");
        // ... until enough batches moved blocks: then it is retried.
        if batches == GC_AVOID_BATCHES {
            assert!(p.gc_avoided().is_empty());
        }
        for l in 0..256 {
            assert!(lookup(&p, 1, l).is_some(), "lba {l} lost its mapping");
        }
    }

    #[test]
    fn gc_scan_resumes_across_batches_and_retries_failed_copies() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 4096, 0).unwrap();
        // One block of each of 8 leaves per round: every zone holds live
        // blocks of every leaf.
        let lbas: Vec<u64> = (0..24u64)
            .flat_map(|r| (0..8u64).map(move |leaf| leaf * 512 + r))
            .collect();
        let commit = |p: &mut TestPool| {
            if p.pending_records() == 0 {
                return;
            }
            let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
            let mut ops = Vec::new();
            p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
            p.flush_end(true).unwrap();
        };
        for (k, &l) in lbas.iter().chain(lbas.iter().step_by(3)).enumerate() {
            write(&mut p, 1, l, 1);
            if k % 16 == 15 {
                commit(&mut p);
            }
        }
        commit(&mut p);
        let mut items = [RelocItem::default(); 3];
        let n = p.gc_begin(&mut items).unwrap();
        assert!(n > 0);
        let victim = p.gc_victim().unwrap();
        let vstart = p.alloc().geom().zone_start(victim).unwrap();
        let vcap = p.alloc().geom().zone_cap(victim).unwrap();
        let in_victim = |a: u64| a >= vstart && a < vstart + vcap;
        // In the first batch that spans two leaves, the copy of the first
        // item fails: its block stays behind the cursor.
        let mut left = None;
        let mut n = n;
        let mut batches = 0;
        loop {
            let mut addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
            let leaf = |it: &RelocItem| it.src.lba / 512;
            if left.is_none() && leaf(&items[0]) != leaf(&items[n - 1]) {
                left = Some(items[0].src);
                addrs[0] = None;
            }
            p.gc_end(&items[..n], &addrs).unwrap();
            commit(&mut p);
            batches += 1;
            assert!(batches < 100);
            if p.gc_victim() != Some(victim) || p.alloc().zone(victim).unwrap().valid() == 0 {
                break;
            }
            n = p.gc_begin(&mut items).unwrap();
            assert!(n > 0, "victim {victim} still valid but nothing found");
        }
        let left = left.expect("no batch spanned two leaves");
        assert!(batches > 2, "the victim took {batches} batches");
        assert_eq!(p.alloc().zone(victim).unwrap().valid(), 0);
        // Everything still mapped, nothing in the victim: the failed copy
        // was found again by a later scan.
        for &l in &lbas {
            let a = lookup(&p, 1, l).unwrap();
            assert!(!in_victim(a), "lba {l} still in the victim");
        }
        assert!(!in_victim(lookup(&p, 1, left.lba).unwrap()));
        assert!(in_victim(left.addr));
    }

    #[test]
    fn gc_moves_live_blocks_unless_overwritten() {
        let mut ops = Vec::new();
        let mut p = new_pool(&mut ops);
        p.vol_create(1, b"a", 400, 0).unwrap();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        for l in (0..96).step_by(8) {
            write(&mut p, 1, l, 8);
        }
        // Half of the blocks overwritten: their first zones become victims.
        for l in (0..96).step_by(16) {
            write(&mut p, 1, l, 8);
        }
        let mut items = [RelocItem::default(); 4];
        let n = p.gc_begin(&mut items).unwrap();
        assert!(n > 0);
        let victim = p.gc_victim().unwrap();
        // The cost of freeing the victim: its valid / invalid blocks.
        let (valid, cap) = (
            p.alloc().zone(victim).unwrap().valid(),
            p.alloc().geom().zone_cap(victim).unwrap(),
        );
        let cost0 = p.gc_cost_x1000();
        assert!(cost0 > 0);
        assert_eq!(cost0, relocation_cost_x1000(valid, cap));
        // The user overwrites the first relocated extent meanwhile.
        let raced = items[0].src;
        let w = write(&mut p, 1, raced.lba, raced.len);
        let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
        let moved = p.gc_end(&items[..n], &addrs).unwrap();
        let total: u64 = items[..n].iter().map(|i| i.src.len).sum();
        assert_eq!(moved, total - raced.len);
        assert_eq!(lookup(&p, 1, raced.lba), Some(w.ext[0].addr));
        let it = items[1.min(n - 1)];
        if n > 1 {
            assert_eq!(lookup(&p, 1, it.src.lba), Some(it.dst.addr));
        }
        // Collect the rest, commit, reset.
        while p.gc_victim() == Some(victim) {
            let n = p.gc_begin(&mut items).unwrap();
            if n == 0 {
                break;
            }
            let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
            p.gc_end(&items[..n], &addrs).unwrap();
            // The cost of freeing the victim stays what it was when GC
            // picked it, however much of it is copied already.
            if p.gc_victim() == Some(victim) && p.alloc().zone(victim).unwrap().valid() > 0 {
                assert_eq!(p.gc_cost_x1000(), cost0);
            }
        }
        assert_eq!(p.alloc().zone(victim).unwrap().valid(), 0);
        let mut ops = Vec::new();
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
        let mut ops = Vec::new();
        p.maintenance(&mut rec(&mut ops)).unwrap();
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
        let mut ops = Vec::new();
        p.maintenance(&mut rec(&mut ops)).unwrap();
        assert!(ops.contains(&Op::Reset(victim)));
    }
}
