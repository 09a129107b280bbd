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

use super::alloc::{AllocConfig, Allocator, DevState, Extent, ZoneInfo};
use super::codec::Reader;
use super::error::{Error, Result};
use super::format::history::Rewind;
use super::format::journal::JOURNAL_PAYLOAD_MAX;
use super::format::journal::{vol_flags_fit, VOL_FLAG_COPY, VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use super::format::layout::{log_zone, log_zone_blocks};
use super::format::policy::Placement;
use super::format::superblock::{DEFAULT_CONV_LOG_BLOCKS, MIN_CONV_LOG_BLOCKS};
use super::format::{Record, Superblock, Uuid, VolName, BLOCK_SIZE};
use super::format::{
    INCOMPAT_CHECKPOINT_COPIES, INCOMPAT_COMMIT_BLOCKS, INCOMPAT_CONV_LOG_SPAN,
    INCOMPAT_DELTA_CHECKPOINTS, INCOMPAT_DELTA_GROW, INCOMPAT_DELTA_VOLUMES, INCOMPAT_ZONE_HISTORY,
    RO_COMPAT_JOURNAL_COPIES,
};
use super::gc::{gc_urgency, pick_victim, relocation_cost_x1000, Policy, Urgency};
use super::geom::{DeviceGeometry, PoolGeometry};
use super::map::{BlockTable, MapExtent, NodeStore};
use super::sparse::RefMap;

mod checkpoint;
mod ckpt_journal;
mod delta_vols;
mod gc;
mod io;
mod journal;
mod maintenance;
mod members;
pub use members::{Evacuation, Grown};
mod migrate;
mod mirror;
pub use mirror::{copy_id, split_sides, COPY_ID_BIT};
mod policy;
pub mod quota;
mod reassembly;
mod repair;
mod scrub;
mod sequential;
pub use gc::GC_SCAN_NODES;
pub use migrate::{Migration, WalkEnd};
pub use scrub::{ChainExtent, MetaIds, OwnerCursor};
pub mod slots;
mod tiers;
mod volumes;

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
    /// The image of the newest checkpoint chain may map blocks of this
    /// volume (its table had a root when a checkpoint encoded it): a delta
    /// must say so if the table is now empty (internal).
    pub(super) ck_rooted: bool,
    /// A free slot that held a volume (see [`slots`]): lookups go on past
    /// it (internal).
    pub(super) tomb: bool,
    /// The table was made anew since the newest checkpoint (created,
    /// snapshot or clone, rolled back, promoted, resized): a delta
    /// checkpoint stores it whole rather than as changes (internal).
    pub(super) ck_new: bool,
    /// Made since the newest checkpoint as a snapshot or clone of this
    /// volume, which that checkpoint's chain holds and no operation has
    /// redefined since: a delta stores it as a copy of that volume's image
    /// in the chain plus its own changes (internal).
    pub(super) ck_copy_of: Option<u32>,
    /// Grown since the newest checkpoint and not redefined: a delta lists
    /// it with its new size, its changes follow ([`INCOMPAT_DELTA_GROW`];
    /// internal).
    pub(super) ck_grown: bool,
    /// Most blocks the volume may map (0: no quota; see [`quota`]).
    pub quota: u64,
    /// Blocks reserved for the volume (0: none; see [`quota`]).
    pub reserve: u64,
    /// Blocks planned by writes in flight that will newly map them
    /// (internal, see [`quota`]).
    pub(super) pending: u64,
    /// Where its new blocks and GC's copies of them go (`Pool::migrate`,
    /// kept on disk: `format::policy`).
    pub place: Placement,
    /// Placed, and some of its blocks may lie elsewhere: its walk is due
    /// (internal, `Pool::migrate`).
    pub(super) place_walk: bool,
}

impl VolEntry {
    /// Whether the volume is read-only (a snapshot).
    pub fn read_only(&self) -> bool {
        self.flags & VOL_FLAG_READONLY != 0
    }

    /// Whether the slot holds a volume users name: not free, not the
    /// hidden companion of a mirrored volume (`mirror`).
    pub fn listed(&self) -> bool {
        self.table.is_some() && self.flags & VOL_FLAG_COPY == 0
    }

    /// Whether the volume is mirrored (its second copies in a companion).
    pub fn mirrored(&self) -> bool {
        self.flags & VOL_FLAG_MIRRORED != 0
    }

    /// Whether the volume waits for its placement walk
    /// ([`Pool::migration`] names the one under way).
    pub fn walk_due(&self) -> bool {
        self.table.is_some() && self.place_walk
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
    /// Blocks of the plan counted pending by the space rules (internal).
    pub(super) grow: u64,
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

/// One GC relocation: copy `src.len` blocks from `read` (usually
/// `src.addr`) to `dst`, then map `dst` where `src.addr` is still mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocItem {
    /// The live extent found in the victim (volume, lba, old address).
    pub src: MapExtent,
    /// Where the data is read: `src.addr`, or, for a mirrored volume's
    /// copy on a lost member being rebuilt, the other copy's address of
    /// the same blocks (`mirror::rebuild_source`).
    pub read: u64,
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
            read: 0,
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
    /// Log-zone switches committed (the journal went on in the other log
    /// zone: it was full, a superblock changed, or it held
    /// `LOG_SPAN_FACTOR` times the checkpoint interval).
    pub log_switches: u64,
    /// Checkpoints committed.
    pub checkpoints: u64,
    /// Journal commits between the steps of a checkpoint (counted in
    /// `commits` too).
    pub side_commits: u64,
    /// Records queued since assembly, and of those the ones committed:
    /// every record queued before a moment is durable once
    /// `records_committed` reaches `records_queued` of that moment.
    pub records_queued: u64,
    pub records_committed: u64,
    /// Blocks of the newest full checkpoint written (0: none since
    /// assembly).
    pub checkpoint_blocks: u64,
    /// Checkpoints abandoned because the image did not fit in its set.
    pub checkpoint_overflows: u64,
    /// Delta checkpoints committed (also counted in `checkpoints`).
    pub delta_checkpoints: u64,
    /// Of those, deltas that carried volume operations (the volume table;
    /// feature [`INCOMPAT_DELTA_VOLUMES`]).
    pub volume_deltas: u64,
    /// Snapshots and clones those deltas stored as copies of a volume of
    /// the chain plus changes.
    pub delta_copies: u64,
    /// Volumes those deltas carried grown, as their new size plus their
    /// changes (feature [`INCOMPAT_DELTA_GROW`]), rather than whole.
    pub delta_grows: u64,
    /// Blocks of the deltas after the newest full checkpoint (its chain).
    pub delta_blocks: u64,
    /// Blocks of the newest delta checkpoint.
    pub last_delta_blocks: u64,
    /// Checkpoint blocks written since assembly (full and delta).
    pub checkpoint_blocks_written: u64,
    /// Placement-history records of data zones written since assembly
    /// (full checkpoints list every zone holding data, deltas only those
    /// written since the checkpoint before).
    pub zone_history_records: u64,
    /// Times a checkpoint had to wait for a zone slot on a member at its
    /// open/active zone limit (its data zones then take no new blocks until
    /// their writes in flight drained, see [`Pool::checkpoint_begin`]).
    pub checkpoint_slot_waits: u64,
    /// Commits (flushes with records, and checkpoints).
    pub commits: u64,
    /// Blocks of mirrored volumes written again from their other copy
    /// after a read of theirs failed ([`Pool::repair`]).
    pub copy_repairs: u64,
}

/// Share of a checkpoint set (percent) kept free as headroom: once the
/// newest checkpoint uses more, user writes are refused ([`Error::NoSpace`],
/// [`Pool::metadata_full`]) while deletes, discards and GC go on, so that the
/// tables never outgrow a checkpoint (which would leave the journal
/// unreclaimable).
pub const META_HEADROOM_PCT: u64 = 25;

/// Weight of one overwrite in [`Pool`]'s running mean block lifetime (an
/// exponential mean over about this many overwrites).
pub(super) const LIFE_WEIGHT: u64 = 256;

/// Data zones a member needs for placement by lifetime
/// ([`PoolConfig::separate`]): each stream keeps a zone open a member, and
/// on small members the extra partly written zone costs more than the
/// separation gains (`tests/gcsim.rs`: +8 % WA under uniform overwrites on
/// 60 zones, -6..-20 % under skewed ones from 128 zones a member).
pub const SEPARATE_MIN_ZONES: u32 = 96;

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
        /// A delta checkpoint (see `format::checkpoint::DeltaLink`).
        delta: bool,
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
    /// Block-table nodes one [`Pool::gc_begin`] scans at most for the
    /// victim's blocks (at least 1; [`GC_SCAN_NODES`] by default; the
    /// model tests scan a node or two at a time).
    pub gc_scan_nodes: u32,
    /// Place by expected lifetime ([`Pool::write_begin`], `gc_begin`): a
    /// user write that overwrites a block not older than twice the running
    /// mean age of overwritten blocks goes to [`Stream::UserHot`], any other
    /// user write to [`Stream::UserCold`]; GC copies the survivors of hot
    /// zones to [`Stream::Gc`], all others to [`Stream::UserCold`].
    pub separate: bool,
    /// Data zones a member needs on average for `separate` to apply
    /// ([`SEPARATE_MIN_ZONES`] by default).
    pub separate_min_zones: u32,
    /// [`Pool::format`] makes a pool whose delta checkpoints carry volume
    /// operations ([`INCOMPAT_DELTA_VOLUMES`]; without it, older engines
    /// can assemble the pool, and the checkpoint after a volume operation
    /// is a full image).
    pub volume_deltas: bool,
    /// With `volume_deltas`, [`Pool::format`] also makes a pool whose
    /// deltas carry the grow of a volume as its new size plus its changes
    /// ([`INCOMPAT_DELTA_GROW`]; without it, a grow redefines the volume:
    /// the next delta stores its whole table).
    pub delta_grow: bool,
    /// [`Pool::format`] of two members or more makes a pool that writes
    /// every journal block to two members ([`RO_COMPAT_JOURNAL_COPIES`]).
    pub journal_copies: bool,
    /// [`Pool::format`] of two members or more makes a pool that writes
    /// every checkpoint block to two members
    /// ([`INCOMPAT_CHECKPOINT_COPIES`]; a set holds half as much).
    pub checkpoint_copies: bool,
    /// [`Pool::format`] makes a pool whose checkpoints keep the placement
    /// history, restored at assembly ([`INCOMPAT_ZONE_HISTORY`]).
    pub zone_history: bool,
    /// [`Pool::format`] makes a pool whose journal uses this many blocks
    /// of a conventional log zone, so that assembly reads no more of it
    /// ([`INCOMPAT_CONV_LOG_SPAN`]; 0: the whole zone, as before).
    pub conv_log_blocks: u32,
    /// Mirrored volumes may be created, and pools that have them
    /// (`INCOMPAT_MIRROR`) assembled (`mirror`). Off until the kernel's
    /// data path writes both copies.
    pub mirrored_volumes: bool,
}

impl PoolConfig {
    /// Defaults for a pool of `nr_devices` members.
    pub fn default_for(nr_devices: u16) -> Self {
        PoolConfig {
            use_append: true,
            policy: Policy::CostBenefit,
            alloc: AllocConfig::default_for(nr_devices),
            gc_item_max: MAX_GC_ITEM,
            gc_scan_nodes: GC_SCAN_NODES,
            separate: true,
            separate_min_zones: SEPARATE_MIN_ZONES,
            volume_deltas: true,
            delta_grow: true,
            journal_copies: true,
            checkpoint_copies: true,
            zone_history: true,
            conv_log_blocks: DEFAULT_CONV_LOG_BLOCKS,
            mirrored_volumes: false,
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
    /// Recent sequential writers (`sequential`): the next piece of a
    /// 2 MiB range goes where the one before went.
    seq: sequential::SeqWriters,
    commit: Commit,
    /// A journal commit in flight between the steps of a checkpoint
    /// (`ckpt_journal.rs`): [`Commit::Journal`] or [`Commit::None`].
    side: Commit,
    /// The checkpoint in flight lets journal commits run between its steps
    /// (every record it commits replays over its image unchanged).
    side_ok: bool,
    /// Journal blocks and records committed between the steps of the
    /// checkpoint in flight (after its journal position: replayed over it).
    side_blocks: u64,
    side_recs: u64,
    /// Journal blocks between checkpoints instead of the superblock's
    /// (0: the superblock's; not persistent: a test hook).
    interval_override: u32,
    /// The checkpoint being written in steps (between
    /// [`Pool::checkpoint_begin`] and its last [`Pool::checkpoint_step`]).
    pub(super) ckpt_run: Option<checkpoint::CkptRun>,
    /// The chain of the newest checkpoint (delta checkpoints).
    pub(super) chain: checkpoint::Chain,
    /// The next checkpoint must be full (after an assembly that does not
    /// continue the chain, `reassembly.rs`; a rewind, a set
    /// found full; and a volume operation since the last one in pools
    /// without [`INCOMPAT_DELTA_VOLUMES`], whose deltas carry table
    /// contents only).
    pub(super) full_due: bool,
    /// A volume operation since the newest checkpoint: the next delta
    /// carries the volume table ([`INCOMPAT_DELTA_VOLUMES`]).
    pub(super) vols_changed: bool,
    /// Epoch of the commit that will carry the records queued now.
    pub(super) cur_epoch: u64,
    /// Newest epoch known durable.
    pub(super) committed_epoch: u64,
    /// Journal member.
    pub(super) jdev: u16,
    /// The member that holds a copy of the journal
    /// ([`RO_COMPAT_JOURNAL_COPIES`]): its log zone `jlog` is written in
    /// step with the journal member's, at the same offsets.
    pub(super) jmirror: Option<u16>,
    /// Current log zone index (0/1) on the journal member, if open.
    pub(super) jlog: Option<u8>,
    /// Next free block offset in the current log zone.
    pub(super) jwp: u64,
    /// Next journal sequence number.
    pub(super) jseq: u64,
    /// Highest journal sequence number in each log zone of the journal member.
    pub(super) log_max_seq: [u64; 2],
    /// The written end (next offset) of each log zone of the journal
    /// member, for the log zones this assembly wrote (0: not known): where
    /// a scrub finds the journal blocks of the log zone before the current
    /// one (`scrub.rs`).
    pub(super) log_end: [u64; 2],
    /// The journal member and mirror that wrote each log zone since its
    /// last switch (a removal or a loss may have moved the journal since).
    pub(super) log_writers: [(u16, Option<u16>); 2],
    /// Generation of the durable superblock each log zone of the journal
    /// member holds (0: none). A log zone is reset only if the other one
    /// holds a superblock at least as new: a crash between the reset and
    /// the rewrite never leaves the member only an older superblock (one
    /// without a feature bit the metadata on disk already uses).
    pub(super) log_sb_gen: [u64; 2],
    /// The same for the mirror's log zones ([`Self::jmirror`]).
    pub(super) mlog_sb_gen: [u64; 2],
    /// The mirror was chosen by a member removal and holds no journal yet:
    /// the log-zone switch that commits the removal leaves its log zones
    /// but the one it switches to alone.
    pub(super) jmirror_fresh: bool,
    /// The members removed when the newest committed checkpoint was
    /// written: its layout (`format::layout`). A member is removed only
    /// when it is the current one (the layout of the checkpoints on disk
    /// is then the superblock's current or previous one).
    pub(super) ckpt_removed: u64,
    /// A member removal waits for the commit of the superblock that names
    /// it (no checkpoint starts before: see `members`).
    pub(super) removing: bool,
    /// The next checkpoint keeps no chain tail open (a member add waits
    /// for that, with checkpoint copies).
    pub(super) tails_barred: bool,
    /// Checkpoint blocks recovery read from their second copy (checkpoint
    /// copies): the first was unreadable or unsound.
    pub(in super::super) ck_copy_reads: u32,
    /// Newest committed checkpoint and the last journal sequence it covers.
    pub(super) ckpt_gen: u64,
    pub(super) ckpt_seq: u64,
    pub(super) jblocks_since_ckpt: u64,
    /// Records in those journal blocks.
    pub(super) jrecords_since_ckpt: u64,
    /// A checkpoint must be written before the next journal block.
    pub(super) need_ckpt: bool,
    /// The last checkpoint did not fit in its set (metadata full): user
    /// writes are refused and no checkpoint is tried again until something
    /// that can shrink the image (a delete, a discard, a shrink) sets
    /// `ckpt_retry`.
    pub(super) meta_full: bool,
    pub(super) ckpt_retry: bool,
    /// The newest checkpoint used more than [`META_HEADROOM_PCT`]'s share
    /// of its set: user writes are refused (before a checkpoint can fail
    /// to fit).
    pub(super) meta_low: bool,
    /// Blocks of the checkpoint in flight, once its last step is emitted.
    pub(super) ckpt_blocks: u64,
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
    /// The member being evacuated, its live blocks when it started, and
    /// its live blocks as of the last GC batch (a walk over its zones: not
    /// redone on the write path) ([`Pool::evacuate`]; kept on disk, see
    /// [`policy`]).
    pub(super) evac: Option<(u16, u64, u64)>,
    /// The evacuation recovery found in the metadata, started again by
    /// [`Pool::resume_policies`].
    pub(super) evac_resume: Option<u16>,
    /// What the volumes are placed on, all together: recounted by every
    /// placement change, grown by recovery's records (at least what they
    /// are placed on; [`policy`]).
    placed: policy::PlacedUnion,
    /// Placed members short of free zones are not looked at again before
    /// the allocator has handed out this many blocks in all (GC found
    /// nothing to collect there: [`policy`]).
    placed_quiet_until: u64,
    /// The walk of a placed volume under way ([`Pool::migrate`]) and
    /// whether the batch in flight is one of it.
    mig: Option<migrate::MigState>,
    mig_batch: bool,
    walk_end: migrate::WalkEnd,
    /// Ranges of mirrored tables to write again from their other copy
    /// ([`Pool::repair`]), and whether the batch in flight is one of them.
    repairs: [repair::Repair; repair::REPAIR_QUEUE],
    repair_batch: bool,
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
    /// (`gc::ScanCursor`): each batch continues where the previous one
    /// stopped, so collecting a victim scans the tables about once rather
    /// than once per batch.
    gc_cursor: gc::ScanCursor,
    /// The scan from the cursor reached the end and goes on from the start.
    gc_wrapped: bool,
    /// The last plan stopped its scan at its budget ([`Pool::gc_scan_more`]).
    gc_more: bool,
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
    /// [`Pool::separating`], fixed with the configuration and the members
    /// (asked on every write).
    separating: bool,
    /// Running mean age (allocator clock ticks) of the blocks user writes
    /// overwrote, times [`LIFE_WEIGHT`] (see [`PoolConfig::separate`]).
    pub(super) life_avg: u64,
    /// Allocator clock at which the newest committed checkpoint took the
    /// placement history: a delta lists only the zones written since
    /// (`Allocator::next_zone_history`); 0 until a checkpoint commits.
    pub(super) history_base: u64,
    /// The same for the checkpoint in flight (becomes `history_base` when
    /// it commits).
    pub(super) history_taken: u64,
    /// Some volume may have a quota or a reservation ([`quota`]).
    pub(super) rules: bool,
    /// The pool reserve, percent of the capacity ([`quota`]).
    pub(super) reserve_pct: u64,
    /// Unused parts of the reservations, and whether a volume operation
    /// since the last count may have changed them.
    pub(super) rsv_total: u64,
    pub(super) rsv_dirty: bool,
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
        mut geom: PoolGeometry<G>,
        cfg: PoolConfig,
        st: PoolStorage<Z, E, V, R, N, D, S>,
    ) -> Result<Self> {
        geom.set_ckpt_copies(st.sb.incompat & INCOMPAT_CHECKPOINT_COPIES != 0);
        geom.set_conv_log_blocks(u64::from(st.sb.conv_log_blocks));
        let removed = st.sb.removed_mask();
        geom.set_removed(removed)?;
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
        let members = u32::from(alloc.geom().nr_devices()).max(1);
        let separating = cfg.separate && alloc.data_zones() / members >= cfg.separate_min_zones;
        // The journal on the first member in the layout, its copy on the
        // second (members removed from the pool hold neither).
        let jdev = alloc.geom().layout_members().next().unwrap_or(0);
        let jmirror = if st.sb.ro_compat & RO_COMPAT_JOURNAL_COPIES != 0 {
            alloc.geom().layout_members().nth(1)
        } else {
            None
        };
        Ok(Pool {
            seq: sequential::SeqWriters::default(),
            separating,
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
            side: Commit::None,
            side_ok: false,
            side_blocks: 0,
            side_recs: 0,
            interval_override: 0,
            cur_epoch: 1,
            committed_epoch: 0,
            jdev,
            jmirror,
            jmirror_fresh: false,
            ckpt_removed: removed,
            removing: false,
            jlog: None,
            jwp: 0,
            jseq: 1,
            log_max_seq: [0; 2],
            log_end: [0; 2],
            log_writers: [(jdev, jmirror); 2],
            log_sb_gen: [1; 2],
            mlog_sb_gen: [1; 2],
            ck_copy_reads: 0,
            tails_barred: false,
            ckpt_gen: 0,
            ckpt_seq: 0,
            jblocks_since_ckpt: 0,
            jrecords_since_ckpt: 0,
            need_ckpt: false,
            meta_full: false,
            ckpt_retry: false,
            meta_low: false,
            ckpt_blocks: 0,
            failed: false,
            read_only: false,
            durable_seq: 0,
            ckpt_gen_min: 0,
            last_rewind: None,
            rules: false,
            reserve_pct: 0,
            rsv_total: 0,
            rsv_dirty: false,
            ckpt_run: None,
            chain: checkpoint::Chain::CLOSED,
            full_due: true,
            vols_changed: false,
            gc_victim: None,
            evac: None,
            evac_resume: None,
            placed: policy::PlacedUnion::NONE,
            placed_quiet_until: 0,
            mig: None,
            mig_batch: false,
            walk_end: migrate::WalkEnd {
                seq: 0,
                vol: 0,
                moved_blocks: 0,
            },
            repairs: [repair::Repair {
                vol: 0,
                len: 0,
                lba: 0,
            }; repair::REPAIR_QUEUE],
            repair_batch: false,
            gc_busy: false,
            gc_victim_cost: 0,
            gc_cursor: gc::SCAN_START,
            gc_wrapped: false,
            gc_more: false,
            gc_avoid: [0; 8],
            gc_navoid: 0,
            gc_avoid_age: 0,
            finish_q: [0; 16],
            nfinish: 0,
            stats: PoolStats::default(),
            refs: RefMap::new(total),
            sb_dirty: false,
            replaying: false,
            life_avg: 0,
            history_base: 0,
            history_taken: 0,
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
        // ... and delta checkpoints (see `format::checkpoint`), which carry
        // volume operations too.
        st.sb.incompat |= INCOMPAT_DELTA_CHECKPOINTS;
        if cfg.volume_deltas {
            st.sb.incompat |= INCOMPAT_DELTA_VOLUMES;
            if cfg.delta_grow {
                st.sb.incompat |= INCOMPAT_DELTA_GROW;
            }
        }
        if cfg.journal_copies && n >= 2 {
            st.sb.ro_compat |= RO_COMPAT_JOURNAL_COPIES;
        }
        if cfg.checkpoint_copies && n >= 2 {
            st.sb.incompat |= INCOMPAT_CHECKPOINT_COPIES;
        }
        if cfg.zone_history {
            st.sb.incompat |= INCOMPAT_ZONE_HISTORY;
        }
        if cfg.conv_log_blocks != 0 {
            st.sb.incompat |= INCOMPAT_CONV_LOG_SPAN;
            st.sb.conv_log_blocks = cfg.conv_log_blocks.max(MIN_CONV_LOG_BLOCKS);
        }
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
        // Every log zone but the journal's (and its mirror's) is finished
        // (only the journal zones stay active on the devices).
        for d in 0..n as u16 {
            for i in 0..2u32 {
                if i == 0 && pool.is_journal_dev(d) {
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
        if let Some(m) = pool.jmirror {
            let mz = log_zone(pool.alloc.geom(), m, 0).ok_or(Error::Invalid("log zone"))?;
            pool.alloc.meta_open(mz, true)?;
        }
        pool.jlog = Some(0);
        pool.jwp = 1;
        // Initial checkpoint: generation 1 (set B).
        pool.checkpoint(scratch, sink)?;
        pool.checkpoint_end(true)?;
        Ok(pool)
    }

    // ---- accessors --------------------------------------------------------

    /// The running mean lifetime of overwritten blocks (placement by
    /// lifetime, [`PoolConfig::separate`]), times its weight.
    pub fn life_avg(&self) -> u64 {
        self.life_avg
    }

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

    /// Whether writes and GC copies are placed by expected lifetime: asked
    /// for ([`PoolConfig::separate`]) and every member large enough
    /// ([`PoolConfig::separate_min_zones`] data zones on average).
    pub fn separating(&self) -> bool {
        self.separating
    }

    /// Free (empty) data zones.
    pub fn free_zones(&self) -> u32 {
        self.alloc.free_zones()
    }

    /// Queued (uncommitted) records.
    pub fn pending_records(&self) -> usize {
        self.npend
    }

    /// Records the queue holds at most.
    pub fn record_capacity(&self) -> usize {
        self.recs.len()
    }

    /// Sets the journal blocks between checkpoints to `blocks` for this
    /// assembly (0: the superblock's interval again). Nothing is written:
    /// tests use it to have checkpoints often.
    pub fn set_checkpoint_interval(&mut self, blocks: u32) {
        self.interval_override = blocks;
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
        let u = gc_urgency(
            self.alloc.usable_free_zones(),
            self.alloc.data_zones(),
            self.cfg.alloc.gc_reserve,
        );
        // An evacuation, a migration, tiering or placed members short of
        // space move data in the background.
        if u == Urgency::Idle && self.gc_background() {
            Urgency::Background
        } else {
            u
        }
    }

    /// What freeing one block costs GC now, in thousandths of a block
    /// ([`relocation_cost_x1000`]): of the victim being collected, else of
    /// the zone GC would pick next; 0 without any (nothing to copy).
    pub fn gc_cost_x1000(&self) -> u64 {
        let a = &self.alloc;
        // Collecting a zone of a member that takes no blocks (evacuated,
        // added, gone) frees no usable space: not what paced writes pay
        // for (charging them an evacuated zone's full copy cost let one
        // write in a few through per batch: benchmarks.md, "Evacuating a
        // member under writes").
        let excluded = a.fenced() | a.evacuating() | a.lost();
        let off = |z: u32| excluded != 0 && self.zone_excluded(z, excluded);
        match self.gc_victim {
            Some(v) if !off(v) && a.zone(v).map(|zi| zi.valid()).unwrap_or(0) > 0 => {
                self.gc_victim_cost
            }
            _ => pick_victim(a, self.cfg.policy, off)
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

    /// The journal member and the member holding the journal's copy, if
    /// any ([`RO_COMPAT_JOURNAL_COPIES`]; none once one of them is lost).
    pub fn journal_members(&self) -> (u16, Option<u16>) {
        (self.jdev, self.jmirror)
    }

    /// Whether member `d` holds the journal or its copy.
    pub(super) fn is_journal_dev(&self, d: u16) -> bool {
        d == self.jdev || self.jmirror == Some(d)
    }

    /// Log zone `i` of the journal's mirror, if the pool has one.
    pub(super) fn mirror_log_zone(&self, i: u8) -> Option<u32> {
        log_zone(self.alloc.geom(), self.jmirror?, u32::from(i))
    }

    /// Log zone `i` of the journal member and the blocks a journal may
    /// use in it: its capacity, or the mirror's log zone's if smaller (the
    /// copies sit at the same offsets).
    pub(super) fn log_zone_cap(&self, i: u8) -> Option<(u32, u64)> {
        let geo = self.alloc.geom();
        let z = log_zone(geo, self.jdev, u32::from(i))?;
        let mut cap = log_zone_blocks(geo, self.jdev, u32::from(i))?;
        if let Some(m) = self.jmirror {
            cap = cap.min(log_zone_blocks(geo, m, u32::from(i))?);
        }
        Some((z, cap))
    }

    pub(super) fn zone_conv(&self, z: u32) -> bool {
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

    /// As [`Self::live`], for volume operations: [`Error::Busy`] while a
    /// checkpoint is written in steps (replaying a volume operation over a
    /// table image that already holds it would apply it twice).
    fn vol_live(&self) -> Result<()> {
        self.live()?;
        if matches!(self.commit, Commit::Checkpoint { .. }) {
            return Err(Error::Busy);
        }
        Ok(())
    }

    /// Whether a checkpoint is in flight (between
    /// [`Self::checkpoint_begin`] and [`Self::checkpoint_end`]).
    pub fn checkpoint_in_flight(&self) -> bool {
        matches!(self.commit, Commit::Checkpoint { .. })
    }

    /// Whether the newest checkpoint did not fit in its set: user writes are
    /// refused ([`Error::NoSpace`]) until a delete, discard or shrink lets
    /// a checkpoint fit again.
    pub fn metadata_full(&self) -> bool {
        self.meta_full || self.meta_low
    }

    /// Blocks a checkpoint may use (the set's capacity).
    pub fn checkpoint_capacity_blocks(&self) -> u64 {
        u64::from(super::format::layout::checkpoint_capacity(
            self.alloc.geom(),
            0,
        ))
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
        slots::find(&self.vols, id).ok_or(Error::NotFound)
    }

    /// The block table of volume `id`.
    pub fn volume(&self, id: u32) -> Option<&VolEntry> {
        slots::find(&self.vols, id).and_then(|i| self.vols.get(i))
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
        if rec.is_volume_op() {
            // With the metadata space nearly full, only a new full image
            // gives back what a delete or a shrink freed: no delta then.
            if self.sb.incompat & INCOMPAT_DELTA_VOLUMES != 0 && !self.meta_low && !self.meta_full {
                self.vols_changed = true;
            } else {
                self.full_due = true;
            }
            self.rsv_dirty = true;
        }
        if let Some(slot) = self.recs.get_mut(self.npend) {
            *slot = rec;
            self.npend = self.npend.saturating_add(1);
            self.stats.records_queued = self.stats.records_queued.saturating_add(1);
        } else {
            // Cannot happen with reservations; losing the record would break
            // durability, so stop the pool instead.
            self.failed = true;
        }
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
    if !vol_flags_fit(id, flags) {
        return Err(Error::BadField("volume flags"));
    }
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
mod ckpt_cost_tests;
#[cfg(test)]
mod tests;
