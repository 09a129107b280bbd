// SPDX-License-Identifier: GPL-2.0
//! Assembly of a pool from its devices' metadata (mount and crash recovery).
//!
//! 1. Superblocks: block 0 of both log zones of every device; the valid copy
//!    with the highest generation wins. Every member must be present (matched
//!    by device UUID) with the recorded geometry; unknown incompat features
//!    are refused. **Degraded assembly**: the caller may put
//!    [`DeviceGeometry::ABSENT`] entries in place of devices it does not
//!    have ([`missing_members`] says how many); one member may then be
//!    missing when the pool keeps two copies of its metadata (journal and
//!    checkpoint copies): nothing is read from it, its zones are lost from
//!    the start ([`Pool::member_lost`]) and its blocks stay mapped. The
//!    engine then uses generations and sequence numbers far above those
//!    seen ([`DEGRADED_SKIP`]), and the caller writes a checkpoint before
//!    any I/O: what the member alone may hold (a commit torn by the crash)
//!    is never taken up when it is back.
//! 2. Checkpoint: the committed checkpoint with the highest generation of the
//!    two sets; if it is torn or corrupt, the other set's.
//! 3. Journal: blocks with sequence numbers following the checkpoint's are
//!    searched in the log zones of every member and applied one block at a
//!    time, up to the newest block proven committed (commit groups, see
//!    `format::journal`). A missing or invalid block up to there, or any
//!    block written after a checkpoint newer than the one loaded, is
//!    **damage** ([`Damage`]): the state returned is the newest consistent
//!    one before it, and the caller refuses read-write use unless told to
//!    rewind. Valid blocks past the committed end are a torn tail (their
//!    commit never completed) and are dropped.
//! 4. Zones: data-zone write pointers come from the devices' zone reports;
//!    every mapping must lie below its zone's write pointer; valid counts
//!    are rebuilt from the block tables; every non-empty data zone is
//!    finished (its tail past the last committed mapping is garbage).
//! 5. The engine must write a checkpoint before its next journal block: it
//!    covers any journal block seen beyond the replayed ones and lets both
//!    log zones be reused.
//!
//! Nothing here panics on any input: every failure is an [`Error`].

use core::ops::{Deref, DerefMut};

use super::alloc::{DevState, ZoneInfo};
use super::error::{Error, Result};
use super::format::checkpoint::set_of;
use super::format::journal::{VOL_FLAG_COPY, VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use super::format::layout::{
    checkpoint_block_addr, checkpoint_copy_addr, checkpoint_copy_addr_before_join, log_zone,
    superblock_addr, LOG_ZONES,
};
use super::format::{
    decode_journal_block, CheckpointHeader, Record, Superblock, Uuid, BLOCK_SIZE,
    INCOMPAT_CHECKPOINT_COPIES, INCOMPAT_COMMIT_BLOCKS, INCOMPAT_CONV_LOG_SPAN,
    INCOMPAT_DELTA_CHECKPOINTS, INCOMPAT_DELTA_GROW, INCOMPAT_DELTA_VOLUMES, INCOMPAT_MIRROR,
    INCOMPAT_PLACEMENT, INCOMPAT_REMOVED_MEMBERS, INCOMPAT_SHARED_BLOCKS, INCOMPAT_ZONE_HISTORY,
    RO_COMPAT_JOURNAL_COPIES, RO_COMPAT_RESERVATION, SUPERBLOCK_MAGIC,
};
use super::geom::{DeviceGeometry, PoolGeometry, MAX_DEVICES};
use super::map::{BlockTable, MapExtent, NodeStore};
use super::pool::{quota::SpaceRules, slots, ChainExtent, Pool, PoolConfig, PoolStorage, VolEntry};
use super::sparse::RefMap;
use super::verify::verify;

mod checkpoint;
mod damage;
mod log_limit;
mod members;
mod resume;
mod zones;
use checkpoint::load_checkpoint;
use damage::{bad_block_at, count_dropped, count_repaired, drop_reclaimed, has_copy, scan_log};
use log_limit::log_limit;
use members::find_members;
pub use members::{missing_members, removed_devices};
use resume::{chain_copies_sound, chain_tail_ok, journal_resume, JournalEnd, Resume};
use zones::{conv_data, conv_extend, extend_conventional, rebuild_zones};

/// Incompat features this engine supports.
pub const INCOMPAT_SUPPORTED: u64 = INCOMPAT_SHARED_BLOCKS
    | INCOMPAT_COMMIT_BLOCKS
    | INCOMPAT_DELTA_CHECKPOINTS
    | INCOMPAT_DELTA_VOLUMES
    | INCOMPAT_DELTA_GROW
    | INCOMPAT_CHECKPOINT_COPIES
    | INCOMPAT_REMOVED_MEMBERS
    | INCOMPAT_PLACEMENT
    | INCOMPAT_ZONE_HISTORY
    | INCOMPAT_CONV_LOG_SPAN
    | INCOMPAT_MIRROR;
/// Ro-compat features this engine supports.
pub const RO_COMPAT_SUPPORTED: u64 = RO_COMPAT_RESERVATION | RO_COMPAT_JOURNAL_COPIES;

/// [`Assembly::dev_of_member`] of a missing member (degraded assembly).
pub const MISSING: u16 = u16::MAX;

/// Most members a degraded assembly may miss: the metadata has two copies.
pub const MAX_MISSING: u16 = 1;

/// Checkpoint generations and journal sequence numbers a degraded assembly
/// leaves unused above every one it saw: more than a missing member can
/// hold above them (what a crash left on it alone: the checkpoint and the
/// journal blocks then in flight, for each of the runs since its last
/// complete checkpoint, at most a few each).
pub const DEGRADED_SKIP: u64 = 1 << 20;

/// Access to the devices being assembled. Device indexes are the caller's
/// (the order of the geometries passed to [`recover`]); it is never asked
/// about an [`DeviceGeometry::ABSENT`] one.
pub trait MetaReader {
    /// Reads the 4 KiB block at `block` (offset in blocks from the start of
    /// device `dev`) into `buf`.
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> Result<()>;
    /// Write pointer of device-local zone `zone` of device `dev`: blocks
    /// written from the zone start (0 = empty). Never asked for
    /// conventional zones.
    fn zone_wp(&mut self, dev: u16, zone: u32) -> Result<u64>;
    /// Phase `done` of the recovery just ended (for the caller's timing of
    /// an assembly; nothing by default).
    fn phase_done(&mut self, _done: Phase) {}
}

/// The phases of [`recover`], in order (see [`MetaReader::phase_done`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Superblocks read and the newest usable checkpoint loaded.
    Checkpoint,
    /// The journal scanned and replayed.
    Journal,
    /// Zones and block references rebuilt.
    Zones,
    /// The verifier ran.
    Verify,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 4] = [
        Phase::Checkpoint,
        Phase::Journal,
        Phase::Zones,
        Phase::Verify,
    ];
}

/// Storage for the verifier run by [`recover`] (see
/// [`super::verify::bitmap_words`]).
pub struct Check<'a> {
    /// One bit per pool block.
    pub bitmap: &'a mut [u64],
    /// One counter per zone.
    pub counts: &'a mut [u64],
}

/// What is damaged (see [`Damage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// A journal block proven committed is missing.
    JournalMissing,
    /// A journal block proven committed is unreadable (checksum or fields).
    JournalInvalid,
    /// A checkpoint that the journal proves committed cannot be read.
    CheckpointLost,
}

/// An invalid metadata block that carries this pool's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadBlock {
    /// Member index.
    pub member: u16,
    /// Zone index on the member's device.
    pub zone: u32,
    /// Block offset in that zone.
    pub block: u64,
    /// The sequence number the block claims (unverified).
    pub claimed_seq: u64,
}

/// Most volume ids a [`Damage`] report lists.
pub const DAMAGE_VOLUMES: usize = 8;

/// Committed metadata that cannot be read: assembly found a consistent state
/// only before it. What a rewind to that state drops is counted here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// What is damaged.
    pub kind: DamageKind,
    /// First journal sequence not replayed.
    pub seq: u64,
    /// Journal sequence proven committed (every block up to it must exist).
    pub committed_seq: u64,
    /// [`DamageKind::CheckpointLost`]: the lost checkpoint's generation.
    pub lost_gen: u64,
    /// The lost checkpoint's header block was found (its body is unreadable)
    /// rather than missing.
    pub lost_header_found: bool,
    /// Why the newest checkpoint set that could not be loaded was refused,
    /// when the lost checkpoint is in it (its full image, or a delta of its
    /// chain): the first check the chain failed ([`Error::describe`] for a
    /// log line).
    pub lost_error: Option<Error>,
    /// Where the invalid journal block claiming sequence [`Self::seq`] (or
    /// else the first invalid one of this pool) lies.
    pub bad: Option<BadBlock>,
    /// Invalid journal blocks of this pool found in the log zones.
    pub bad_blocks: u32,
    /// Valid journal blocks after the damage, which a rewind drops.
    pub lost_blocks: u64,
    /// Records in them.
    pub lost_records: u64,
    /// Of those, blocks proven committed (the rest were a torn tail anyway).
    pub lost_committed_blocks: u64,
    /// Volumes those records change (ids; the first [`DAMAGE_VOLUMES`]).
    pub volumes: [u32; DAMAGE_VOLUMES],
    /// Entries of `volumes` in use.
    pub nr_volumes: u8,
    /// More volumes are affected than `volumes` lists.
    pub more_volumes: bool,
    /// Mapped blocks of the state before the damage that lie in zones
    /// reclaimed after it (the journal after the damage names them): their
    /// data is gone, they are unmapped (read as zeros).
    pub reclaimed_blocks: u64,
    /// Zones reclaimed after the damage.
    pub reclaimed_zones: u32,
    /// The state before the damage maps space reclaimed since (GC reset
    /// zones after the damaged metadata was committed): it cannot be
    /// assembled at all, not even read-only; the engine returned holds no
    /// volumes and must not be used.
    pub unusable: bool,
}

impl Damage {
    fn new(kind: DamageKind, seq: u64, committed_seq: u64) -> Self {
        Damage {
            kind,
            seq,
            committed_seq,
            lost_gen: 0,
            lost_header_found: false,
            lost_error: None,
            bad: None,
            bad_blocks: 0,
            lost_blocks: 0,
            lost_records: 0,
            lost_committed_blocks: 0,
            volumes: [0; DAMAGE_VOLUMES],
            nr_volumes: 0,
            more_volumes: false,
            reclaimed_blocks: 0,
            reclaimed_zones: 0,
            unusable: false,
        }
    }

    /// The affected volume ids.
    pub fn volume_ids(&self) -> &[u32] {
        self.volumes
            .get(..usize::from(self.nr_volumes))
            .unwrap_or(&[])
    }

    fn add_volume(&mut self, id: u32) {
        if self.volume_ids().contains(&id) {
            return;
        }
        match self.volumes.get_mut(usize::from(self.nr_volumes)) {
            Some(slot) => {
                *slot = id;
                self.nr_volumes = self.nr_volumes.saturating_add(1);
            }
            None => self.more_volumes = true,
        }
    }
}

/// What assembly found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assembly {
    /// `dev_of_member[m]` = the caller's index of member `m`'s device, or
    /// [`MISSING`].
    pub dev_of_member: [u16; MAX_DEVICES],
    /// Number of members.
    pub nr_members: u16,
    /// Members assembled without their device (bit per member; degraded
    /// assembly): lost from the start.
    pub missing: u64,
    /// Superblock generation used.
    pub sb_generation: u64,
    /// Checkpoint generation loaded.
    pub checkpoint_generation: u64,
    /// Delta checkpoints loaded after the full one (its chain).
    pub delta_checkpoints: u32,
    /// Of those, deltas that carried volume operations.
    pub volume_deltas: u32,
    /// Volumes those deltas grew (feature [`INCOMPAT_DELTA_GROW`]).
    pub delta_grows: u32,
    /// The newest checkpoint was unusable and the older set was used.
    pub fell_back: bool,
    /// Journal blocks replayed.
    pub replayed_blocks: u64,
    /// Last journal sequence number applied (the checkpoint's if none).
    pub last_seq: u64,
    /// Highest journal sequence number seen in any log zone.
    pub max_seq_seen: u64,
    /// An unknown ro-compat feature is set: mount read-only.
    pub read_only: bool,
    /// Journal blocks carry commit groups (`INCOMPAT_COMMIT_BLOCKS`): damage
    /// is told from a torn tail. Pools without it fall back to the old rule
    /// (replay the unbroken prefix; see [`Self::suspect_gap`]).
    pub commit_blocks: bool,
    /// Journal sequence proven committed.
    pub committed_seq: u64,
    /// Valid journal blocks past the committed end (a torn tail: their
    /// commit never completed), dropped.
    pub torn_blocks: u64,
    /// Pools without commit groups: valid blocks follow a gap (damage
    /// cannot be told from a torn tail there; the caller warns).
    pub suspect_gap: bool,
    /// Invalid journal blocks of sequence numbers that were replayed from
    /// a valid copy on another member ([`RO_COMPAT_JOURNAL_COPIES`]): damage
    /// repaired (the checkpoint written first after assembly covers them:
    /// the journal does not go on over them,
    /// and their log zones are reset in turn).
    pub repaired_blocks: u32,
    /// Checkpoint blocks read from their second copy (checkpoint copies:
    /// the first was unreadable or damaged). Repaired by the checkpoint
    /// written first after assembly, into the other set.
    pub ckpt_copy_reads: u32,
    /// Journal blocks replayed from one copy (journal copies: the other
    /// member of the pair lacks them: a commit a crash left on one member,
    /// the journal written while the other was lost, or missing). The
    /// caller writes a checkpoint at once so that what they hold has two
    /// copies before the pool is used.
    pub single_copy_blocks: u32,
    /// The journal goes on where it ended (`recovery/resume.rs`): the
    /// first commit is a journal block, not a full checkpoint.
    pub journal_resumed: bool,
    /// The newest checkpoint's chain goes on: the next checkpoint is a
    /// delta after it, not a full image (only with `journal_resumed`).
    pub chain_resumed: bool,
    /// Why the journal, or the chain, does not go on (none when both do).
    pub kept_why: Option<&'static str>,
    /// Committed metadata is damaged: the state assembled is the newest
    /// consistent one before it. The caller must not use the pool
    /// read-write unless it rewinds ([`Pool::record_rewind`]).
    pub damage: Option<Damage>,
}

/// Reads pool address `addr` of the assembled geometry.
fn read_pool<G: Deref<Target = [DeviceGeometry]>, M: MetaReader>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    addr: u64,
    buf: &mut [u8],
) -> Result<()> {
    let l = geo
        .locate(addr)
        .ok_or(Error::Corrupt("address outside the pool"))?;
    let dev = *perm
        .get(usize::from(l.dev))
        .ok_or(Error::Corrupt("member"))?;
    if dev == MISSING {
        return Err(Error::NotFound);
    }
    rd.read_block(dev, l.dev_offset, buf)
}

/// Reads block `index` of a checkpoint in set `set` into `buf`. With
/// checkpoint copies, the second copy when the first cannot be read or is
/// not what `ok` wants (e.g. a sound block of the checkpoint being read:
/// a member that was lost while the pool ran keeps older blocks where the
/// newer checkpoints were written without it), then where the second copy
/// was before the newest member joined (a chain written before the add:
/// `checkpoint_copy_addr_before_join`); `copies_used` counts the blocks
/// read from a second copy. Fails only when no copy could be read; when
/// none is what `ok` wants, `buf` holds the first (the reader then says
/// what is wrong with it).
#[allow(clippy::too_many_arguments)]
fn read_ckpt_block<G: Deref<Target = [DeviceGeometry]>, M: MetaReader>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    set: u8,
    index: u32,
    ok: &dyn Fn(&[u8]) -> bool,
    buf: &mut [u8],
    copies_used: &mut u32,
) -> Result<()> {
    let a = checkpoint_block_addr(geo, set, index).ok_or(Error::Corrupt("checkpoint"))?;
    let first = read_pool(geo, perm, rd, a, buf);
    if first.is_ok() && ok(buf) {
        return Ok(());
    }
    let others = [
        checkpoint_copy_addr(geo, set, index),
        checkpoint_copy_addr_before_join(geo, set, index),
    ];
    // The first copy that could be read, else the last error.
    let mut readable = first.map(|()| a);
    for c in others.into_iter().flatten() {
        match read_pool(geo, perm, rd, c, buf) {
            Ok(()) if ok(buf) => {
                *copies_used = copies_used.saturating_add(1);
                return Ok(());
            }
            Ok(()) => readable = readable.or(Ok(c)),
            Err(e) => readable = readable.or(Err(e)),
        }
    }
    read_pool(geo, perm, rd, readable?, buf)
}

/// The checkpoint header at block 0 of set `set` of pool `uuid`, if any:
/// with checkpoint copies, the newer of the two (a member lost while the
/// pool ran keeps an older checkpoint's header there). (Reading the chain
/// chosen counts the copies used.)
fn read_set_header<G: Deref<Target = [DeviceGeometry]>, M: MetaReader>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    set: u8,
    uuid: &Uuid,
    buf: &mut [u8],
) -> Option<CheckpointHeader> {
    let header = |b: &[u8]| match CheckpointHeader::decode(b) {
        Ok((h, _)) if h.pool_uuid == *uuid && h.set() == set => Some(h),
        _ => None,
    };
    let a = checkpoint_block_addr(geo, set, 0)?;
    let first = read_pool(geo, perm, rd, a, buf)
        .ok()
        .and_then(|()| header(buf));
    let mut copy = |c: Option<u64>| {
        c.and_then(|c| read_pool(geo, perm, rd, c, buf).ok())
            .and_then(|()| header(buf))
    };
    // Where the copy was before the newest member joined, a full
    // checkpoint's header only: that place now holds later blocks' copies
    // (a delta's header there is not this set's start).
    let joined = copy(checkpoint_copy_addr_before_join(geo, set, 0)).filter(|h| h.delta.is_none());
    let second = copy(checkpoint_copy_addr(geo, set, 0))
        .into_iter()
        .chain(joined)
        .max_by_key(|h| h.generation);
    match (first, second) {
        (Some(f), Some(s)) if s.generation > f.generation => Some(s),
        (Some(f), _) => Some(f),
        (None, s) => s,
    }
}

/// Assembles a pool. `devs` holds the geometries of the devices in the
/// caller's order (as reported by the devices); on success it holds them in
/// member order (and the returned [`Assembly`] maps members to the caller's
/// indexes). `on_finish(zone)` is called for every sequential zone (global
/// id, member order) the caller must finish on its device before writing.
/// `scratch` is one block. With `check`, the assembled state is also run
/// through the verifier ([`super::verify::verify`]) and any problem makes
/// assembly fail: this catches what per-block checksums cannot (e.g. a
/// pool block mapped twice by well-formed but wrong records).
#[allow(clippy::type_complexity)]
#[inline(never)]
pub fn recover<G, Z, E, V, R, N, D, S, M, F>(
    devs: G,
    rd: &mut M,
    cfg: PoolConfig,
    st: PoolStorage<Z, E, V, R, N, D, S>,
    scratch: &mut [u8],
    on_finish: &mut F,
    check: Option<Check<'_>>,
) -> Result<(Pool<G, Z, E, V, R, N, D, S>, Assembly)>
where
    G: DerefMut<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
    F: FnMut(u32),
{
    let mut slot = None;
    let asm = recover_into(&mut slot, devs, rd, cfg, st, scratch, on_finish, check)?;
    let pool = slot.ok_or(Error::Invalid("recover: no engine"))?;
    Ok((pool, asm))
}

/// [`recover`] into `slot` (the engine is placed there: the caller's heap
/// in the kernel, so that no frame on the deep path of the checkpoint's
/// and the journal's loading holds it by value; about 2 KiB each, three
/// of them overflowed a 16 KiB kernel stack in a degraded assembly of a
/// pool with snapshots). `slot` is `None` on error.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
#[inline(never)]
pub fn recover_into<G, Z, E, V, R, N, D, S, M, F>(
    slot: &mut Option<Pool<G, Z, E, V, R, N, D, S>>,
    mut devs: G,
    rd: &mut M,
    cfg: PoolConfig,
    mut st: PoolStorage<Z, E, V, R, N, D, S>,
    scratch: &mut [u8],
    on_finish: &mut F,
    check: Option<Check<'_>>,
) -> Result<Assembly>
where
    G: DerefMut<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
    F: FnMut(u32),
{
    *slot = None;
    let buf = scratch
        .get_mut(..BLOCK_SIZE)
        .ok_or(Error::Invalid("scratch"))?;
    let ndev = devs.len();
    if ndev == 0 || ndev > MAX_DEVICES {
        return Err(Error::Invalid("recover: device count"));
    }
    let mut asm = Assembly {
        dev_of_member: [0; MAX_DEVICES],
        nr_members: 0,
        missing: 0,
        sb_generation: 0,
        checkpoint_generation: 0,
        delta_checkpoints: 0,
        volume_deltas: 0,
        delta_grows: 0,
        fell_back: false,
        replayed_blocks: 0,
        last_seq: 0,
        max_seq_seen: 0,
        read_only: false,
        commit_blocks: false,
        committed_seq: 0,
        torn_blocks: 0,
        suspect_gap: false,
        repaired_blocks: 0,
        ckpt_copy_reads: 0,
        single_copy_blocks: 0,
        journal_resumed: false,
        chain_resumed: false,
        kept_why: None,
        damage: None,
    };
    asm.read_only = find_members(&devs, rd, &mut st.sb, buf, &mut asm.dev_of_member)?;
    if st.sb.incompat & INCOMPAT_MIRROR != 0 && !cfg.mirrored_volumes {
        return Err(Error::Unsupported("mirrored volumes"));
    }
    st.sb.geometries(&mut devs)?;
    place(slot, devs, cfg, st)?;
    let Some(pool) = slot.as_mut() else {
        return Err(Error::Invalid("recover: no engine"));
    };
    if let Err(e) = load_and_replay(pool, rd, buf, on_finish, check, &mut asm) {
        *slot = None;
        return Err(e);
    }
    // Also by what was loaded: the superblock with `INCOMPAT_MIRROR` is
    // written at the journal's next log-zone switch, and a checkpoint
    // written before it (the first commit after an assembly or a format
    // is one) may already hold mirrored volumes.
    let mirrored = pool
        .vols
        .iter()
        .any(|v| v.table.is_some() && v.flags & (VOL_FLAG_MIRRORED | VOL_FLAG_COPY) != 0);
    if mirrored && !pool.cfg.mirrored_volumes {
        *slot = None;
        return Err(Error::Unsupported("mirrored volumes"));
    }
    Ok(asm)
}

/// The engine of [`recover_into`] once the members are known, built into
/// `slot`. Out of line: the engine built by value lives in this frame
/// only, not in the frames under which the checkpoint is loaded.
#[inline(never)]
#[allow(clippy::type_complexity)]
fn place<G, Z, E, V, R, N, D, S>(
    slot: &mut Option<Pool<G, Z, E, V, R, N, D, S>>,
    devs: G,
    cfg: PoolConfig,
    st: PoolStorage<Z, E, V, R, N, D, S>,
) -> Result<()>
where
    G: DerefMut<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
{
    let geom = PoolGeometry::new(devs).map_err(|_| Error::Corrupt("recover: geometry"))?;
    *slot = Some(Pool::assemble(geom, cfg, st)?);
    Ok(())
}

/// Steps 2 to 5 of [`recover`] on the assembled engine; fills `asm` (whose
/// `dev_of_member` is already set). Out of line: its temporaries stay off
/// `recover`'s frame.
#[inline(never)]
fn load_and_replay<G, Z, E, V, R, N, D, S, M, F>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    rd: &mut M,
    buf: &mut [u8],
    on_finish: &mut F,
    check: Option<Check<'_>>,
    asm: &mut Assembly,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
    F: FnMut(u32),
{
    let perm = &asm.dev_of_member.clone();
    let uuid = pool.sb.pool_uuid;
    // Tables are loaded and replayed without counting block references;
    // the counts and the allocator are rebuilt from the result (step 4).
    pool.refs = RefMap::disabled();
    pool.replaying = true;

    // 2. Checkpoints: the valid headers, newest first. A set is laid out
    // over the members not removed when it was written: now, or before
    // the last removal (its header says which).
    let removed = pool.sb.removed_mask();
    // (One layout when no member was removed, or before the first removal
    // only: the set is read once.)
    let prev = Some(pool.sb.prev_removed).filter(|p| *p != removed);
    let mut heads: [Option<CheckpointHeader>; 2] = [None, None];
    for (set, h) in heads.iter_mut().enumerate() {
        for m in core::iter::once(removed).chain(prev) {
            if pool.alloc.set_layout_removed(m).is_err() {
                continue;
            }
            let found = read_set_header(pool.alloc.geom(), perm, rd, set as u8, &uuid, buf);
            if let Some(f) = found.filter(|f| f.removed == m) {
                *h = Some(f);
                break;
            }
        }
    }
    // Newest first; a missing header goes last.
    let order = match heads {
        [Some(a), Some(b)] if b.generation > a.generation => [Some(b), Some(a)],
        [None, b] => [b, None],
        other => other,
    };
    let mut chosen = None;
    // The chain loaded: its full checkpoint's generation and its extent.
    let mut chain = None;
    // Generation of a checkpoint whose header is valid but whose body is
    // not, and why.
    let mut unusable_gen = 0u64;
    let mut unusable_error = None;
    for (k, h) in order.iter().enumerate() {
        let Some(h) = h else { continue };
        clear_volumes(pool);
        pool.last_rewind = None;
        pool.alloc.set_layout_removed(h.removed)?;
        let loaded = load_checkpoint(pool, perm, rd, h, buf);
        pool.alloc.set_layout_removed(removed)?;
        match loaded {
            Ok((last, d)) => {
                pool.ckpt_removed = h.removed;
                chosen = Some((last, k > 0));
                chain = Some((h.generation, d));
                asm.delta_checkpoints = d.deltas;
                asm.volume_deltas = d.volume_deltas;
                asm.delta_grows = d.grows;
                break;
            }
            Err(Error::Unsupported(s)) => return Err(Error::Unsupported(s)),
            Err(e) => {
                if h.generation >= unusable_gen {
                    unusable_gen = h.generation;
                    unusable_error = Some(e);
                }
            }
        }
    }
    pool.alloc.set_layout_removed(removed)?;
    let Some((ckpt, fell_back)) = chosen else {
        clear_volumes(pool);
        return Err(Error::Corrupt("recover: no valid checkpoint"));
    };

    // What changes from now on (the journal replayed, then the engine's
    // work) is what a delta continuing this chain holds: the tables as
    // loaded count as unchanged (`recovery/resume.rs`).
    pool.nodes.swap_marks();
    pool.nodes.clear_changed();
    let loaded_clock = pool.alloc.clock();
    // The chain's image maps the blocks of every volume loaded with a
    // root: a delta must say so when the replay empties one.
    for v in pool.vols.iter_mut() {
        v.ck_rooted = v.table.is_some_and(|t| t.root().is_some());
    }
    // Conventional data zones as far as the tables as loaded map them; the
    // replay raises them for what it maps (`zones.rs`).
    extend_conventional(pool)?;
    let conv = conv_data(pool.alloc.geom());

    rd.phase_done(Phase::Checkpoint);

    // 3. Journal.
    let strict = pool.sb.incompat & INCOMPAT_COMMIT_BLOCKS != 0;
    let scan = scan_log(pool.alloc.geom(), perm, rd, uuid, ckpt.journal_seq, buf);
    let max_seen = scan.max_seen;
    // Replay up to the newest block proven committed (strict), or as far
    // as the journal is unbroken (pools without commit groups).
    let end = if strict { scan.committed } else { max_seen };
    let mut next = ckpt
        .journal_seq
        .checked_add(1)
        .ok_or(Error::Corrupt("journal sequence"))?;
    // Where the scan saw the first block to replay (a hint is probed one
    // block after it).
    let mut hint: Option<(u16, u32, u64)> = scan
        .first_at
        .map(|(d, i, off)| (d, i, off.saturating_sub(1)));
    let mut replayed = 0u64;
    let mut replayed_recs = 0u64;
    // Per log zone index, where the last block replayed from the journal
    // member was (block after it) and its sequence number (`resume.rs`).
    let mut zone_last: [Option<(u64, u64)>; LOG_ZONES as usize] = [None; LOG_ZONES as usize];
    // Volume operations replayed (a delta continuing the chain then
    // carries the volume table, as after the engine's own: `resume.rs`).
    let mut vol_ops = false;
    // Replayed blocks without their copy (journal copies): a commit a
    // crash left on one member only, or journalled while the other member
    // of the pair was lost.
    let copies = pool.sb.ro_compat & RO_COMPAT_JOURNAL_COPIES != 0;
    let mut single = 0u32;
    loop {
        if next > end {
            break;
        }
        let found = find_journal_block(pool.alloc.geom(), perm, rd, uuid, next, hint, buf);
        let Some(pos) = found else { break };
        let Ok((h, recs)) = decode_journal_block(buf) else {
            break;
        };
        if h.ckpt_gen > ckpt.generation {
            break;
        }
        for rec in recs {
            let rec = rec?;
            apply_record(pool, &rec)?;
            replayed_recs = replayed_recs.saturating_add(1);
            vol_ops |= rec.is_volume_op();
            // Written or reset after the checkpoint: the zone's placement
            // history there is not its own any more.
            // Every block a replayed record maps: its conventional zone
            // is taken as written up to it (`extend_conventional`).
            let mapped = match rec {
                Record::MapExtent { addr, len, .. } => Some((addr, len)),
                Record::Relocate { new, len, .. } => Some((new, len)),
                _ => None,
            };
            if let (true, Some((a, n))) = (conv, mapped) {
                (0..u64::from(n))
                    .try_for_each(|k| conv_extend(&mut pool.alloc, a.saturating_add(k)))?;
            }
            match rec {
                Record::MapExtent { addr, len, .. } => {
                    pool.alloc.history_unknown(addr, u64::from(len), false)
                }
                Record::ZoneReset { zone } => {
                    if let Some(a) = pool.alloc.geom().zone_start(zone) {
                        pool.alloc.history_unknown(a, 1, true);
                    }
                }
                _ => {}
            }
        }
        if copies && !has_copy(pool.alloc.geom(), perm, rd, uuid, pos, next, buf) {
            single = single.saturating_add(1);
        }
        replayed = replayed.saturating_add(1);
        if pos.0 == pool.jdev {
            if let Some(z) = zone_last.get_mut(pos.1 as usize) {
                *z = Some((pos.2.saturating_add(1), next));
            }
        }
        hint = Some(pos);
        next = next
            .checked_add(1)
            .ok_or(Error::Corrupt("journal sequence"))?;
    }
    let last_seq = next.saturating_sub(1);

    // Damage: a checkpoint the journal proves committed (blocks name it)
    // that could not be loaded, or a committed journal block that could
    // not be replayed.
    let kind = if scan.max_gen > ckpt.generation {
        Some(DamageKind::CheckpointLost)
    } else if strict && last_seq < end {
        Some(DamageKind::JournalMissing)
    } else {
        None
    };
    let mut damage = kind.map(|k| Damage::new(k, next, scan.committed));
    if let Some(d) = damage.as_mut() {
        d.bad_blocks = scan.nr_bad;
        d.lost_gen = if d.kind == DamageKind::CheckpointLost {
            scan.max_gen
        } else {
            0
        };
        d.lost_header_found = d.lost_gen != 0 && unusable_gen == d.lost_gen;
        // The refused set holds the lost checkpoint when it is not newer
        // (its header names the chain's full image; a delta comes later).
        d.lost_error = if d.lost_gen != 0 && unusable_gen != 0 && unusable_gen <= d.lost_gen {
            unusable_error
        } else {
            None
        };
        // The invalid block where the next one was expected, or one that
        // claims the missing sequence number.
        let at_hint = hint.and_then(|(m, i, off)| {
            bad_block_at(
                pool.alloc.geom(),
                perm,
                rd,
                uuid,
                m,
                i,
                off.saturating_add(1),
                buf,
            )
        });
        d.bad = at_hint.or(scan.first_bad.filter(|b| b.claimed_seq == next));
        if d.kind == DamageKind::JournalMissing && d.bad.is_some() {
            d.kind = DamageKind::JournalInvalid;
        }
        if d.bad.is_none() {
            d.bad = scan.first_bad;
        }
    }
    // What lies past the replayed prefix: dropped (torn tail, or what a
    // rewind loses).
    let mut torn = 0u64;
    if max_seen > last_seq {
        count_dropped(
            pool.alloc.geom(),
            perm,
            rd,
            uuid,
            last_seq,
            scan.committed,
            buf,
            &mut torn,
            damage.as_mut(),
        );
    }

    // Zones reclaimed after the damage: what the state before it still
    // maps there is gone (the zone was reset, maybe written again).
    if let Some(d) = damage.as_mut() {
        drop_reclaimed(pool, perm, rd, uuid, last_seq, buf, d)?;
    }

    // Whether the journal goes on where it ended (no full checkpoint
    // first): only when nothing keeps the old rule.
    let geo = pool.alloc.geom();
    let missing_now = (0..geo.nr_devices())
        .any(|m| perm.get(usize::from(m)) == Some(&MISSING) && !geo.is_removed(m));
    // The chain loaded, in the current layout, with two sound copies of
    // every block: the journal may go on over it (`resume.rs`).
    let chain_sound = |pool: &Pool<G, Z, E, V, R, N, D, S>, rd: &mut M, buf: &mut [u8]| {
        let Some((base, d)) = chain else {
            return false;
        };
        let c = ChainExtent {
            set: set_of(base),
            base,
            newest: ckpt.generation,
            blocks: d.next_block,
        };
        pool.ck_copy_reads == 0
            && pool.ckpt_removed == removed
            && chain_copies_sound(pool.alloc.geom(), perm, rd, &c, buf)
    };
    // Why the journal does not go on, if it does not (the first that
    // holds; the assembly's log line says it).
    let mut why: Option<&'static str> = if damage.is_some() {
        Some("damaged metadata")
    } else if fell_back {
        Some("the newest checkpoint was unusable")
    } else if missing_now {
        Some("a member is missing")
    } else if torn > 0 || max_seen != last_seq {
        Some("a torn commit")
    } else if scan.nr_bad > 0 {
        Some("invalid journal blocks")
    } else if single > 0 {
        Some("journal blocks with one copy")
    } else if scan.max_gen > ckpt.generation || unusable_gen > ckpt.generation {
        Some("a newer checkpoint was seen")
    } else if !chain_sound(pool, rd, buf) {
        Some("the checkpoint chain lacks copies or was laid out for other members")
    } else {
        None
    };
    let sound = why.is_none();
    let geo = pool.alloc.geom();
    let jend = JournalEnd {
        ckpt_seq: ckpt.journal_seq,
        last_seq,
        last_at: if replayed > 0 { hint } else { None },
        index_max: scan.index_max,
        zone_last,
        max_seen,
        jdev: pool.jdev,
        jmirror: pool.jmirror,
        sound,
    };
    let mut resume = journal_resume(geo, perm, rd, uuid, &jend, buf);
    if sound && resume.is_none() {
        why = Some("the journal is not where it would go on");
    }
    // The journal's zone keeps its slot (taken before the data zones take
    // theirs in step 4), then the chain's tails theirs.
    if let Some(Resume::InPlace { log, next, .. }) = resume {
        if !pool.resume_journal_zone(log, next) {
            resume = None;
            why = Some("no zone slot for the journal");
        }
    }
    let chain_resumed = match (resume, chain) {
        (Some(Resume::InPlace { .. }), Some((base, d))) => {
            if vol_ops && pool.sb.incompat & INCOMPAT_DELTA_VOLUMES == 0 {
                why = Some("volume operations were replayed (no volume deltas in this pool)");
                false
            } else if !chain_tail_ok(pool.alloc.geom(), perm, rd, set_of(base), d.next_block) {
                why = Some("blocks past the chain in its set");
                false
            } else if !pool.resume_chain(base, d.full_blocks, d.next_block, loaded_clock, vol_ops) {
                why = Some("no delta after the chain or no zone slot for its tail");
                false
            } else {
                true
            }
        }
        (Some(Resume::Switch), _) => {
            why = Some("the journal starts a log zone");
            false
        }
        _ => false,
    };
    if let (Some(_), false, Some((base, d))) = (resume, chain_resumed, chain) {
        // The journal goes on over the chain: a scrub reads it back.
        pool.note_loaded_chain(base, d.full_blocks, d.next_block);
    }

    rd.phase_done(Phase::Journal);

    // 4. Zones and block references.
    pool.replaying = false;
    pool.refs = RefMap::new(pool.alloc.geom().total_blocks());
    let rebuilt = rebuild_zones(pool, perm, rd, on_finish);
    match (rebuilt, damage.as_mut()) {
        (Err(Error::Corrupt(_)), Some(d)) => {
            // The consistent state before the damage maps space that was
            // reclaimed since: not even a read-only assembly can use it.
            // Report the damage on an empty engine (never to be used).
            d.unusable = true;
            empty_engine(pool, perm, rd)?;
        }
        (r, _) => r?,
    }

    rd.phase_done(Phase::Zones);

    if let Some(c) = check {
        let n = verify(pool, c.bitmap, c.counts, &mut |_| {})?;
        rd.phase_done(Phase::Verify);
        match damage.as_mut() {
            // The state before the damage is inconsistent with the space
            // (reclaimed and reused since): unusable, as above.
            Some(d) if n != 0 => {
                d.unusable = true;
                empty_engine(pool, perm, rd)?;
            }
            _ if n != 0 => {
                clear_volumes(pool);
                return Err(Error::Corrupt("recover: verifier found problems"));
            }
            _ => {}
        }
    }

    // Missing members are lost from the start (before the journal's
    // members are settled below); so are removed ones (no device, no
    // block: not missing).
    let n = pool.alloc.geom().nr_devices();
    for m in 0..n {
        if perm.get(usize::from(m)) == Some(&MISSING) {
            pool.member_lost(m)?;
            if !pool.alloc.geom().is_removed(m) {
                asm.missing |= 1u64.checked_shl(u32::from(m)).unwrap_or(0);
            }
        }
    }

    // 5. Engine state.
    let top = max_seen.max(last_seq).max(scan.committed);
    pool.ckpt_gen = ckpt.generation;
    pool.ckpt_seq = ckpt.journal_seq;
    pool.durable_seq = last_seq;
    // Never reuse the generation of a checkpoint seen (even unusable), and
    // never write into the set just loaded: the next checkpoint goes to the
    // other set with a generation above every one seen.
    // Degraded: the missing member may hold a checkpoint or journal blocks
    // that reached it alone (their copies torn by a crash), of generations
    // and sequence numbers above those seen: the engine goes on above them
    // (`DEGRADED_SKIP`), so that when the member is back nothing it holds
    // is taken for something newer or for a block of the same number.
    let skip = if asm.missing != 0 { DEGRADED_SKIP } else { 0 };
    let seen = ckpt
        .generation
        .max(scan.max_gen)
        .max(unusable_gen)
        .saturating_add(skip);
    let mut g = seen.saturating_add(1);
    if g & 1 == ckpt.generation & 1 {
        g = g.saturating_add(1);
    }
    pool.ckpt_gen_min = g;
    pool.jseq = top
        .checked_add(1)
        .and_then(|s| s.checked_add(skip))
        .ok_or(Error::Corrupt("journal sequence"))?;
    pool.log_max_seq = [top; 2];
    pool.log_end = [0; 2];
    if !matches!(resume, Some(Resume::InPlace { .. })) {
        pool.jlog = None;
        pool.jwp = 0;
    }
    pool.need_ckpt = resume.is_none();
    if resume.is_some() {
        // What each log zone holds: only blocks the checkpoint covers, or
        // (the zone before the journal's) blocks up to its last one.
        pool.log_max_seq = scan.index_max;
        pool.jblocks_since_ckpt = replayed;
        pool.jrecords_since_ckpt = replayed_recs;
    }
    if let Some(Resume::InPlace {
        log,
        next,
        prev_end,
    }) = resume
    {
        let i = usize::from(log);
        if let Some(end) = prev_end {
            // The journal began in the other log zone: it ends at `end`.
            let j = 1 - (i & 1);
            if let Some(e) = pool.log_end.get_mut(j) {
                *e = end;
            }
            if let Some(w) = pool.log_writers.get_mut(j) {
                *w = (pool.jdev, pool.jmirror);
            }
        }
        if let Some(m) = pool.log_max_seq.get_mut(i) {
            *m = last_seq;
        }
        if let Some(e) = pool.log_end.get_mut(i) {
            *e = next;
        }
        if let Some(w) = pool.log_writers.get_mut(i) {
            *w = (pool.jdev, pool.jmirror);
        }
    }
    // Which superblock each log zone of the journal member still holds:
    // the engine resets one only if the other holds one at least as new (a
    // crash between the reset and the superblock rewrite must leave the
    // member its newest superblock).
    // The same for the mirror's log zones (journal copies).
    for i in 0..LOG_ZONES {
        let mut sb_gen = |d: u16| {
            let read = superblock_addr(pool.alloc.geom(), d, i)
                .map(|a| read_pool(pool.alloc.geom(), perm, rd, a, buf).is_ok())
                .unwrap_or(false);
            match Superblock::peek_ids(buf) {
                Ok((u, _, g)) if read && u == uuid => g,
                _ => 0,
            }
        };
        let gen = sb_gen(pool.jdev);
        let mgen = pool.jmirror.map_or(0, &mut sb_gen);
        if let Some(s) = pool.log_sb_gen.get_mut(i as usize) {
            *s = gen;
        }
        if let Some(s) = pool.mlog_sb_gen.get_mut(i as usize) {
            *s = mgen;
        }
    }
    asm.nr_members = pool.alloc.geom().nr_devices();
    asm.sb_generation = pool.sb.generation;
    asm.checkpoint_generation = ckpt.generation;
    asm.fell_back = fell_back;
    asm.replayed_blocks = replayed;
    asm.last_seq = last_seq;
    asm.max_seq_seen = max_seen;
    asm.commit_blocks = strict;
    asm.committed_seq = scan.committed;
    asm.torn_blocks = torn;
    asm.suspect_gap = !strict && damage.is_none() && last_seq < max_seen;
    asm.ckpt_copy_reads = pool.ck_copy_reads;
    asm.single_copy_blocks = single;
    asm.journal_resumed = resume.is_some();
    asm.chain_resumed = chain_resumed;
    asm.kept_why = why;
    if scan.nr_bad > 0 {
        asm.repaired_blocks = count_repaired(
            pool.alloc.geom(),
            perm,
            rd,
            uuid,
            ckpt.journal_seq,
            last_seq,
            buf,
        );
    }
    asm.damage = damage;
    Ok(())
}

/// Leaves an engine without volumes whose space accounting is consistent
/// (for an unusable damaged state that is only reported).
fn empty_engine<G, Z, E, V, R, N, D, S, M>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
{
    clear_volumes(pool);
    pool.refs.destroy(&mut pool.nodes);
    pool.refs = RefMap::new(pool.alloc.geom().total_blocks());
    rebuild_zones(pool, perm, rd, &mut |_| {})
}

/// Frees every volume (used before retrying with another checkpoint).
fn clear_volumes<G, Z, E, V, R, N, D, S>(pool: &mut Pool<G, Z, E, V, R, N, D, S>)
where
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
{
    for i in 0..pool.vols.len() {
        let Some(mut t) = pool.vols.get(i).and_then(|v| v.table) else {
            continue;
        };
        let _ = t.destroy(&mut pool.nodes, |_, _, _| {});
    }
    // No tombstones either: the table starts afresh.
    pool.vols.fill(VolEntry::default());
}

fn vol_slot<V: DerefMut<Target = [VolEntry]>>(vols: &V, id: u32) -> Option<usize> {
    slots::find(vols, id)
}

/// Finds the journal block with sequence `seq` (leaves it in `buf`):
/// first right after `hint`, then at the start of each log zone (after a
/// switch), else anywhere in a log zone.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn find_journal_block<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    seq: u64,
    hint: Option<(u16, u32, u64)>,
    buf: &mut [u8],
) -> Option<(u16, u32, u64)>
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let probe = |rd: &mut M, d: u16, i: u32, off: u64, l: u64, buf: &mut [u8]| -> bool {
        let Some(start) = log_zone(geo, d, i).and_then(|z| geo.zone_start(z)) else {
            return false;
        };
        if off == 0 || off >= l {
            return false;
        }
        if read_pool(geo, perm, rd, start.saturating_add(off), buf).is_err() {
            return false;
        }
        matches!(decode_journal_block(buf), Ok((h, _)) if h.pool_uuid == uuid && h.seq == seq)
    };
    if let Some((d, i, off)) = hint {
        let l = log_limit(geo, perm, rd, d, i, buf);
        let next = off.saturating_add(1);
        if probe(rd, d, i, next, l, buf) {
            return Some((d, i, next));
        }
        // Past the end of a log zone the journal goes on at the start of
        // another (a log-zone switch): its first blocks before a search.
        for d in 0..geo.nr_devices() {
            for i in 0..LOG_ZONES {
                let l = log_limit(geo, perm, rd, d, i, buf);
                if probe(rd, d, i, 1, l, buf) {
                    return Some((d, i, 1));
                }
            }
        }
    }
    for d in 0..geo.nr_devices() {
        for i in 0..LOG_ZONES {
            let l = log_limit(geo, perm, rd, d, i, buf);
            for off in 1..l {
                if probe(rd, d, i, off, l, buf) {
                    return Some((d, i, off));
                }
            }
        }
    }
    None
}

/// Applies one replayed record to the block tables (the engine's own
/// operations, with block references not counted: see `load_and_replay`).
#[inline(never)]
fn apply_record<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    rec: &Record,
) -> Result<()>
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
    let bad = |e: Error| {
        if e == Error::NoSpace {
            e
        } else {
            Error::Corrupt("journal: record does not apply")
        }
    };
    let unknown = Error::Corrupt("journal: unknown volume");
    let slot = |pool: &Pool<G, Z, E, V, R, N, D, S>, vol: u32| -> Result<(usize, VolEntry)> {
        let i = vol_slot(&pool.vols, vol).ok_or(unknown)?;
        let v = pool.vols.get(i).copied().ok_or(unknown)?;
        Ok((i, v))
    };
    match *rec {
        Record::MapExtent {
            vol,
            lba,
            len,
            addr,
        } => {
            let (i, v) = slot(pool, vol)?;
            let mut t = v.table.ok_or(unknown)?;
            let r = t.map_range_shared(
                &mut pool.nodes,
                &mut pool.refs,
                lba,
                u64::from(len),
                addr,
                |_, _| {},
            );
            if let Some(v) = pool.vols.get_mut(i) {
                v.table = Some(t);
            }
            r.map_err(bad)
        }
        Record::Unmap { vol, lba, len } => {
            let (i, v) = slot(pool, vol)?;
            let mut t = v.table.ok_or(unknown)?;
            let r = t.unmap_range_shared(
                &mut pool.nodes,
                &mut pool.refs,
                lba,
                u64::from(len),
                |_, _| {},
            );
            if let Some(v) = pool.vols.get_mut(i) {
                v.table = Some(t);
            }
            r.map_err(bad)
        }
        Record::VolumeCreate {
            vol,
            size_blocks,
            flags,
            name,
        } => {
            if vol_slot(&pool.vols, vol).is_some() {
                return Err(Error::Corrupt("journal: volume exists"));
            }
            let t = BlockTable::new(vol, size_blocks).map_err(bad)?;
            let slot = slots::free_for(&pool.vols, vol).ok_or(Error::NoSpace)?;
            if let Some(v) = pool.vols.get_mut(slot) {
                *v = VolEntry {
                    id: vol,
                    flags,
                    name,
                    table: Some(t),
                    // New since the checkpoint: a delta stores it whole.
                    ck_new: true,
                    ..VolEntry::default()
                };
            }
            Ok(())
        }
        Record::Policy(p) => pool.apply_policy(p),
        Record::VolumeDelete { vol } => {
            let (i, _) = slot(pool, vol)?;
            pool.apply_delete(i).map_err(bad)
        }
        Record::VolumeResize { vol, size_blocks } => {
            let (i, _) = slot(pool, vol)?;
            pool.apply_resize(i, size_blocks).map_err(bad)
        }
        Record::Snapshot {
            vol,
            new_vol,
            flags,
            name,
        } => {
            let (i, v) = slot(pool, vol)?;
            if vol_slot(&pool.vols, new_vol).is_some() {
                return Err(Error::Corrupt("journal: volume exists"));
            }
            // A snapshot of a writable volume, or a clone of a snapshot.
            if v.read_only() == (flags & VOL_FLAG_READONLY != 0) {
                return Err(Error::Corrupt("journal: snapshot of the wrong kind"));
            }
            pool.apply_share(i, new_vol, flags, name).map_err(bad)
        }
        Record::Rollback { vol, snap } => {
            let (i, v) = slot(pool, vol)?;
            let (j, s) = slot(pool, snap)?;
            if v.read_only() || !s.read_only() || s.origin != Some(vol) {
                return Err(Error::Corrupt("journal: rollback to a foreign snapshot"));
            }
            pool.apply_rollback(i, j).map_err(bad)
        }
        Record::Promote { vol } => {
            let (i, v) = slot(pool, vol)?;
            if v.read_only() {
                return Err(Error::Corrupt("journal: promote of a snapshot"));
            }
            pool.apply_promote(i).map_err(bad)
        }
        Record::Relocate { lba, old, new, len } => {
            let len = u64::from(len);
            for i in 0..pool.vols.len() {
                let Some(mut t) = pool.vols.get(i).and_then(|v| v.table) else {
                    continue;
                };
                if lba >= t.size() {
                    continue;
                }
                let ext = MapExtent {
                    vol: t.vol(),
                    lba,
                    len: len.min(t.size() - lba),
                    addr: old,
                };
                let r = t.relocate(&mut pool.nodes, &ext, new, |_, _| {}, |_, _| {});
                if let Some(v) = pool.vols.get_mut(i) {
                    v.table = Some(t);
                }
                r.map_err(bad)?;
            }
            pool.enable_sharing();
            Ok(())
        }
        Record::ZoneReset { .. } | Record::ZoneFinish { .. } | Record::CheckpointDone { .. } => {
            Ok(())
        }
        Record::VolumeReserve {
            vol,
            reserve,
            quota,
        } => {
            let (i, _) = slot(pool, vol)?;
            pool.apply_space_rules(i, SpaceRules { quota, reserve });
            Ok(())
        }
    }
}
