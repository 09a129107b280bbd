// SPDX-License-Identifier: GPL-2.0
//! Assembly of a pool from its devices' metadata (mount and crash recovery).
//!
//! 1. Superblocks: block 0 of both log zones of every device; the valid copy
//!    with the highest generation wins. Every member must be present (matched
//!    by device UUID) with the recorded geometry; unknown incompat features
//!    are refused.
//! 2. Checkpoint: the committed checkpoint with the highest generation of the
//!    two sets; if it is torn or corrupt, the other set's.
//! 3. Journal: blocks with sequence numbers following the checkpoint's are
//!    searched in the log zones of every member and applied one block at a
//!    time; replay stops at the first missing sequence number (torn tail,
//!    bad CRC) or at a block written after a newer checkpoint.
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

use super::alloc::{Allocator, DevState, ZoneInfo, ZoneState};
use super::codec::Reader;
use super::error::{Error, Result};
use super::format::checkpoint::{section, CheckpointItem, CheckpointReader, SECTION_COMPAT};
use super::format::journal::VOL_FLAG_READONLY;
use super::format::layout::{
    checkpoint_block_addr, checkpoint_capacity, log_zone, superblock_addr, LOG_ZONES,
};
use super::format::sharing::{decode_record, ShareRecord};
use super::format::{
    check_block, decode_journal_block, CheckpointHeader, Record, Superblock, BLOCK_SIZE,
    INCOMPAT_SHARED_BLOCKS, SUPERBLOCK_MAGIC,
};
use super::geom::{DeviceGeometry, PoolGeometry, Stream, MAX_DEVICES};
use super::map::{
    decode_chunk, visit_distinct, BlockTable, MapExtent, NodeStore, ADDR_MASK, FANOUT, PRESENT,
};
use super::pool::{decode_vol_record, Pool, PoolConfig, PoolStorage, VolEntry, NO_SLOT};
use super::sparse::{AddrSet, RefMap};
use super::verify::verify;

/// Offset of the pool UUID in a superblock block (see `format/superblock.rs`).
const SB_POOL_UUID_OFFSET: usize = 40;

/// Incompat features this engine supports.
pub const INCOMPAT_SUPPORTED: u64 = INCOMPAT_SHARED_BLOCKS;
/// Ro-compat features this engine supports (none yet).
pub const RO_COMPAT_SUPPORTED: u64 = 0;

/// Access to the devices being assembled. Device indexes are the caller's
/// (the order of the geometries passed to [`recover`]).
pub trait MetaReader {
    /// Reads the 4 KiB block at `block` (offset in blocks from the start of
    /// device `dev`) into `buf`.
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> Result<()>;
    /// Write pointer of device-local zone `zone` of device `dev`: blocks
    /// written from the zone start (0 = empty). Never asked for
    /// conventional zones.
    fn zone_wp(&mut self, dev: u16, zone: u32) -> Result<u64>;
}

/// Storage for the verifier run by [`recover`] (see
/// [`super::verify::bitmap_words`]).
pub struct Check<'a> {
    /// One bit per pool block.
    pub bitmap: &'a mut [u64],
    /// One counter per zone.
    pub counts: &'a mut [u64],
}

/// What assembly found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assembly {
    /// `dev_of_member[m]` = the caller's index of member `m`'s device.
    pub dev_of_member: [u16; MAX_DEVICES],
    /// Number of members.
    pub nr_members: u16,
    /// Superblock generation used.
    pub sb_generation: u64,
    /// Checkpoint generation loaded.
    pub checkpoint_generation: u64,
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
    rd.read_block(dev, l.dev_offset, buf)
}

/// Reads superblock copy `i` (block 0 of log zone `i`) of device `j`.
fn read_sb_copy<M: MetaReader>(
    rd: &mut M,
    j: usize,
    g: &DeviceGeometry,
    i: u32,
    buf: &mut [u8],
) -> Result<()> {
    let local = g.first_meta_zone().saturating_add(i);
    let block = u64::from(local)
        .checked_mul(g.zone_blocks)
        .ok_or(Error::Corrupt("superblock address"))?;
    rd.read_block(j as u16, block, buf)
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
    mut devs: G,
    rd: &mut M,
    cfg: PoolConfig,
    mut st: PoolStorage<Z, E, V, R, N, D, S>,
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
        sb_generation: 0,
        checkpoint_generation: 0,
        fell_back: false,
        replayed_blocks: 0,
        last_seq: 0,
        max_seq_seen: 0,
        read_only: false,
    };
    asm.read_only = find_members(&devs, rd, &mut st.sb, buf, &mut asm.dev_of_member)?;
    st.sb.geometries(&mut devs)?;
    let pool = build(devs, cfg, st, rd, buf, on_finish, check, &mut asm)?;
    Ok((pool, asm))
}

/// The engine of [`recover`] once the members are known: assembles it and
/// runs steps 2 to 5. Out of line (the engine is built in this frame, not
/// in `recover`'s, which also holds the result).
#[inline(never)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn build<G, Z, E, V, R, N, D, S, M, F>(
    devs: G,
    cfg: PoolConfig,
    st: PoolStorage<Z, E, V, R, N, D, S>,
    rd: &mut M,
    buf: &mut [u8],
    on_finish: &mut F,
    check: Option<Check<'_>>,
    asm: &mut Assembly,
) -> Result<Pool<G, Z, E, V, R, N, D, S>>
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
    let geom = PoolGeometry::new(devs).map_err(|_| Error::Corrupt("recover: geometry"))?;
    let mut pool = Pool::assemble(geom, cfg, st)?;
    load_and_replay(&mut pool, rd, buf, on_finish, check, asm)?;
    Ok(pool)
}

/// Step 1 of [`recover`]: decodes the newest valid superblock into `sb_store`
/// and finds each member's device (`perm[member]` = device index; entries
/// past the member count are 0). Returns whether the pool must be mounted
/// read-only. Out of line: its temporaries stay off `recover`'s frame.
#[inline(never)]
fn find_members<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb_store: &mut Superblock,
    buf: &mut [u8],
    perm: &mut [u16; MAX_DEVICES],
) -> Result<bool> {
    // 1. Superblocks, decoded in place into `sb_store`: the newest valid copy
    // overall and, per device, the log zone of its own newest valid copy.
    let mut best: Option<(usize, u32, u64)> = None;
    const NO_COPY: u8 = u8::MAX;
    let mut newest = [NO_COPY; MAX_DEVICES];
    for (j, g) in devs.iter().enumerate() {
        let mut own: Option<u64> = None;
        for i in 0..LOG_ZONES {
            if read_sb_copy(rd, j, g, i, buf).is_err() || sb_store.decode_into(buf).is_err() {
                continue;
            }
            let gen = sb_store.generation;
            if own.map(|o| gen > o).unwrap_or(true) {
                own = Some(gen);
                if let Some(s) = newest.get_mut(j) {
                    *s = i as u8;
                }
            }
            if best.map(|b| gen > b.2).unwrap_or(true) {
                best = Some((j, i, gen));
            }
        }
    }
    let (bj, bi, bgen) = best.ok_or(Error::NotFound)?;
    let bg = devs.get(bj).copied().ok_or(Error::NotFound)?;
    read_sb_copy(rd, bj, &bg, bi, buf)?;
    sb_store.decode_into(buf)?;
    if sb_store.generation != bgen {
        return Err(Error::Corrupt("recover: superblock changed"));
    }
    let sb = &*sb_store;
    let read_only = sb.check_features(INCOMPAT_SUPPORTED, RO_COMPAT_SUPPORTED)?;
    let ndev = devs.len();
    let n = usize::from(sb.nr_members);
    if n != ndev {
        return Err(if n > ndev {
            Error::NotFound
        } else {
            Error::Invalid("recover: device is not a member")
        });
    }
    // Each device whose newest copy belongs to this pool is the member its
    // device UUID names (the first such device if several claim it).
    const NO_DEV: u16 = u16::MAX;
    perm.fill(NO_DEV);
    for (j, g) in devs.iter().enumerate() {
        let Some(i) = newest.get(j).copied().filter(|i| *i != NO_COPY) else {
            continue;
        };
        if read_sb_copy(rd, j, g, u32::from(i), buf).is_err() {
            continue;
        }
        let Ok((p, u, _)) = Superblock::peek_ids(buf) else {
            continue;
        };
        if p != sb.pool_uuid {
            continue;
        }
        let Some(m) = sb.find_member(&u) else {
            continue;
        };
        if let Some(slot) = perm.get_mut(usize::from(m)).filter(|s| **s == NO_DEV) {
            *slot = j as u16;
        }
    }
    for (m, info) in sb.members().iter().enumerate() {
        let j = perm
            .get(m)
            .copied()
            .filter(|j| *j != NO_DEV)
            .ok_or(Error::NotFound)?;
        if devs.get(usize::from(j)) != Some(&info.geom) {
            return Err(Error::Corrupt("recover: member geometry mismatch"));
        }
    }
    for p in perm.iter_mut().skip(n) {
        *p = 0;
    }
    Ok(read_only)
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

    // 2. Checkpoints: the valid headers, newest first.
    let mut heads: [Option<CheckpointHeader>; 2] = [None, None];
    for (set, h) in heads.iter_mut().enumerate() {
        let Some(a) = checkpoint_block_addr(pool.alloc.geom(), set as u8, 0) else {
            continue;
        };
        if read_pool(pool.alloc.geom(), perm, rd, a, buf).is_err() {
            continue;
        }
        if let Ok((hdr, _)) = CheckpointHeader::decode(buf) {
            if hdr.pool_uuid == uuid && usize::from(hdr.set()) == set {
                *h = Some(hdr);
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
    for (k, h) in order.iter().enumerate() {
        let Some(h) = h else { continue };
        clear_volumes(pool);
        match load_checkpoint(pool, perm, rd, h, buf) {
            Ok(()) => {
                chosen = Some((*h, k > 0));
                break;
            }
            Err(Error::Unsupported(s)) => return Err(Error::Unsupported(s)),
            Err(_) => continue,
        }
    }
    let Some((ckpt, fell_back)) = chosen else {
        clear_volumes(pool);
        return Err(Error::Corrupt("recover: no valid checkpoint"));
    };

    // 3. Journal.
    let nm = pool.alloc.geom().nr_devices();
    // Highest sequence number anywhere (a full scan).
    let mut max_seen = ckpt.journal_seq;
    for d in 0..nm {
        for i in 0..LOG_ZONES {
            let Some(start) =
                log_zone(pool.alloc.geom(), d, i).and_then(|z| pool.alloc.geom().zone_start(z))
            else {
                continue;
            };
            let l = log_limit(pool.alloc.geom(), perm, rd, d, i);
            for off in 1..l {
                if read_pool(pool.alloc.geom(), perm, rd, start.saturating_add(off), buf).is_err() {
                    continue;
                }
                if let Ok((h, _)) = decode_journal_block(buf) {
                    if h.pool_uuid == uuid {
                        max_seen = max_seen.max(h.seq);
                    }
                }
            }
        }
    }
    let mut next = ckpt
        .journal_seq
        .checked_add(1)
        .ok_or(Error::Corrupt("journal sequence"))?;
    let mut hint: Option<(u16, u32, u64)> = None;
    let mut replayed = 0u64;
    loop {
        if next > max_seen {
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
            apply_record(pool, &rec?)?;
        }
        replayed = replayed.saturating_add(1);
        hint = Some(pos);
        next = next
            .checked_add(1)
            .ok_or(Error::Corrupt("journal sequence"))?;
    }
    let last_seq = next.saturating_sub(1);

    // 4. Zones and block references.
    pool.replaying = false;
    pool.refs = RefMap::new(pool.alloc.geom().total_blocks());
    rebuild_zones(pool, perm, rd, on_finish)?;

    if let Some(c) = check {
        let n = verify(pool, c.bitmap, c.counts, &mut |_| {})?;
        if n != 0 {
            clear_volumes(pool);
            return Err(Error::Corrupt("recover: verifier found problems"));
        }
    }

    // 5. Engine state.
    let top = max_seen.max(last_seq);
    pool.ckpt_gen = ckpt.generation;
    pool.ckpt_seq = ckpt.journal_seq;
    pool.jseq = top
        .checked_add(1)
        .ok_or(Error::Corrupt("journal sequence"))?;
    pool.log_max_seq = [top; 2];
    pool.jlog = None;
    pool.jwp = 0;
    pool.need_ckpt = true;
    // Which log zones of the journal member still hold a superblock: the
    // engine never resets one unless the other does (a crash between the
    // reset and the superblock rewrite must leave the member a copy).
    for i in 0..LOG_ZONES {
        let ok = superblock_addr(pool.alloc.geom(), pool.jdev, i)
            .map(|a| read_pool(pool.alloc.geom(), perm, rd, a, buf).is_ok())
            .unwrap_or(false)
            && check_block(buf, SUPERBLOCK_MAGIC).is_ok()
            && buf.get(SB_POOL_UUID_OFFSET..SB_POOL_UUID_OFFSET + 16) == Some(&uuid[..]);
        if let Some(s) = pool.log_sb_ok.get_mut(i as usize) {
            *s = ok;
        }
    }
    asm.nr_members = nm;
    asm.sb_generation = pool.sb.generation;
    asm.checkpoint_generation = ckpt.generation;
    asm.fell_back = fell_back;
    asm.replayed_blocks = replayed;
    asm.last_seq = last_seq;
    asm.max_seq_seen = max_seen;
    Ok(())
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
        if let Some(v) = pool.vols.get_mut(i) {
            *v = VolEntry::default();
        }
    }
}

fn vol_slot<V: DerefMut<Target = [VolEntry]>>(vols: &V, id: u32) -> Option<usize> {
    vols.iter().position(|v| v.table.is_some() && v.id == id)
}

/// Loads checkpoint `h` into the (empty) volume table.
#[inline(never)]
fn load_checkpoint<G, Z, E, V, R, N, D, S, M>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    h: &CheckpointHeader,
    buf: &mut [u8],
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    D: DerefMut<Target = [DevState]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
{
    let set = h.set();
    let a0 =
        checkpoint_block_addr(pool.alloc.geom(), set, 0).ok_or(Error::Corrupt("checkpoint"))?;
    read_pool(pool.alloc.geom(), perm, rd, a0, buf)?;
    // In place: the reader is about 900 bytes.
    let mut cr = CheckpointReader::IDLE;
    cr.start(buf)?;
    if cr.header() != h {
        return Err(Error::Corrupt("checkpoint header changed"));
    }
    let cap = checkpoint_capacity(pool.alloc.geom(), set);
    // The delta volume being loaded (slot).
    let mut current: Option<usize> = None;
    loop {
        let idx = cr.next_index();
        if idx >= cap {
            return Err(Error::Corrupt("checkpoint: no commit block"));
        }
        let a = checkpoint_block_addr(pool.alloc.geom(), set, idx)
            .ok_or(Error::Corrupt("checkpoint"))?;
        read_pool(pool.alloc.geom(), perm, rd, a, buf)?;
        match cr.feed(buf)? {
            CheckpointItem::Commit => return Ok(()),
            CheckpointItem::Data { kind, data, .. } => {
                let mut r = Reader::new(data);
                match kind {
                    section::VOLUMES => {
                        while r.remaining() > 0 {
                            let (id, flags, size, name) = decode_vol_record(&mut r)?;
                            if vol_slot(&pool.vols, id).is_some() {
                                return Err(Error::Corrupt("checkpoint: duplicate volume"));
                            }
                            let t = BlockTable::new(id, size)
                                .map_err(|_| Error::BadField("volume size"))?;
                            let slot = pool
                                .vols
                                .iter()
                                .position(|v| v.table.is_none())
                                .ok_or(Error::NoSpace)?;
                            if let Some(v) = pool.vols.get_mut(slot) {
                                *v = VolEntry {
                                    id,
                                    flags,
                                    name,
                                    table: Some(t),
                                    ..VolEntry::default()
                                };
                            }
                        }
                    }
                    section::BLOCK_TABLE => {
                        while r.remaining() > 0 {
                            let vols = &mut pool.vols;
                            let nodes = &mut pool.nodes;
                            decode_chunk(&mut r, |e| {
                                let i = vol_slot(vols, e.vol).ok_or(Error::Corrupt(
                                    "checkpoint: extent of unknown volume",
                                ))?;
                                let mut t = vols
                                    .get(i)
                                    .and_then(|v| v.table)
                                    .ok_or(Error::Corrupt("volume"))?;
                                let res = t.replay(nodes, &e);
                                if let Some(v) = vols.get_mut(i) {
                                    v.table = Some(t);
                                }
                                res
                            })?;
                        }
                    }
                    section::SHARING => {
                        while r.remaining() > 0 {
                            load_sharing(pool, decode_record(&mut r)?, &mut current)?;
                        }
                    }
                    k if k & SECTION_COMPAT != 0 => {}
                    _ => return Err(Error::Unsupported("checkpoint: unknown section")),
                }
            }
        }
    }
}

/// Blocks written in log zone `i` of member `d` (its device's write pointer,
/// a conventional zone's capacity): where its journal blocks end. Asked of
/// the device each time (no per-member table on the stack).
fn log_limit<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    d: u16,
    i: u32,
) -> u64
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let Some(zg) = log_zone(geo, d, i).and_then(|z| geo.zone(z)) else {
        return 0;
    };
    if zg.conventional {
        return zg.cap;
    }
    let dev = perm.get(usize::from(d)).copied().unwrap_or(0);
    rd.zone_wp(dev, zg.local).unwrap_or(0).min(zg.cap)
}

/// Finds the journal block with sequence `seq` (leaves it in `buf`):
/// first right after `hint`, else anywhere in a log zone.
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
        let l = log_limit(geo, perm, rd, d, i);
        let next = off.saturating_add(1);
        if probe(rd, d, i, next, l, buf) {
            return Some((d, i, next));
        }
    }
    for d in 0..geo.nr_devices() {
        for i in 0..LOG_ZONES {
            let l = log_limit(geo, perm, rd, d, i);
            for off in 1..l {
                if probe(rd, d, i, off, l, buf) {
                    return Some((d, i, off));
                }
            }
        }
    }
    None
}

/// Applies one record of the checkpoint's sharing section (see
/// `format::sharing`); `current` is the delta volume being loaded.
#[inline(never)]
fn load_sharing<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    rec: ShareRecord<'_>,
    current: &mut Option<usize>,
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
    pool.enable_sharing();
    let unknown = Error::Corrupt("checkpoint: sharing of an unknown volume");
    let bad = |e: Error| {
        if e == Error::NoSpace {
            e
        } else {
            Error::Corrupt("checkpoint: delta does not apply")
        }
    };
    match rec {
        ShareRecord::Link {
            vol,
            origin,
            parent,
        } => {
            let i = vol_slot(&pool.vols, vol).ok_or(unknown)?;
            for o in [origin, parent].into_iter().flatten() {
                vol_slot(&pool.vols, o).ok_or(unknown)?;
            }
            if let Some(v) = pool.vols.get_mut(i) {
                v.origin = origin;
                v.parent = parent;
            }
            Ok(())
        }
        ShareRecord::Base { vol, base } => {
            let i = vol_slot(&pool.vols, vol).ok_or(unknown)?;
            let j = vol_slot(&pool.vols, base).ok_or(unknown)?;
            let v = *pool.vols.get(i).ok_or(unknown)?;
            let mut bt = pool.vols.get(j).and_then(|b| b.table).ok_or(unknown)?;
            let t = v.table.ok_or(unknown)?;
            // A delta volume is defined once, before any use as a base.
            if t.root().is_some() || v.ck_done || v.ck_base == NO_SLOT {
                return Err(Error::Corrupt("checkpoint: delta volume redefined"));
            }
            let mut c = bt.clone_root(&mut pool.nodes, vol).map_err(bad)?;
            if let Some(b) = pool.vols.get_mut(j) {
                b.table = Some(bt);
                b.ck_base = NO_SLOT;
            }
            let r = c.resize_shared(&mut pool.nodes, &mut pool.refs, t.size(), |_, _| {});
            if let Some(e) = pool.vols.get_mut(i) {
                e.table = Some(c);
                e.ck_done = true;
            }
            *current = Some(i);
            r.map_err(bad)
        }
        ShareRecord::Diff { vol, entries } => {
            let i = current
                .filter(|&i| pool.vols.get(i).map(|v| v.id) == Some(vol))
                .ok_or(Error::Corrupt("checkpoint: difference without base"))?;
            for e in entries {
                let e = e?;
                let mut t = pool.vols.get(i).and_then(|v| v.table).ok_or(unknown)?;
                let n = u64::from(e.len);
                let r = if e.map {
                    t.map_range_shared(&mut pool.nodes, &mut pool.refs, e.lba, n, e.addr, |_, _| {})
                } else {
                    t.unmap_range_shared(&mut pool.nodes, &mut pool.refs, e.lba, n, |_, _| {})
                };
                if let Some(v) = pool.vols.get_mut(i) {
                    v.table = Some(t);
                }
                r.map_err(bad)?;
            }
            Ok(())
        }
    }
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
            let slot = pool
                .vols
                .iter()
                .position(|v| v.table.is_none())
                .ok_or(Error::NoSpace)?;
            if let Some(v) = pool.vols.get_mut(slot) {
                *v = VolEntry {
                    id: vol,
                    flags,
                    name,
                    table: Some(t),
                    ..VolEntry::default()
                };
            }
            Ok(())
        }
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
        Record::VolumeReserve { .. } => Err(Error::Unsupported(
            "journal: record of an unsupported feature",
        )),
    }
}

/// Raises the write pointer of the conventional data zone holding `addr`
/// (recovery: such zones are written up to their last mapped block).
fn conv_extend<G, Z, D>(alloc: &mut Allocator<G, Z, D>, addr: u64) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    let l = alloc
        .geom()
        .locate(addr)
        .ok_or(Error::Corrupt("mapping outside the pool"))?;
    let zg = alloc.geom().zone(l.zone).ok_or(Error::Corrupt("zone"))?;
    if zg.conventional && !zg.meta {
        let top = l.offset.saturating_add(1);
        if top > zg.cap {
            return Err(Error::Corrupt("mapping beyond zone capacity"));
        }
        let cur = alloc.zone(l.zone).map(|zi| zi.wp()).unwrap_or(0);
        if top > cur {
            alloc
                .set_zone(l.zone, ZoneState::Closed, top, 0)
                .map_err(|_| Error::Corrupt("zone state"))?;
        }
    }
    Ok(())
}

/// Rebuilds the allocator's zone table from the devices' write pointers and
/// the block tables.
#[inline(never)]
fn rebuild_zones<G, Z, E, V, R, N, D, S, M, F>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    on_finish: &mut F,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
    F: FnMut(u32),
{
    let nz = pool.alloc.geom().nr_zones();
    // Device write pointers (sequential zones).
    for z in 0..nz {
        let zg = pool.alloc.geom().zone(z).ok_or(Error::Corrupt("zone"))?;
        let dev = perm.get(usize::from(zg.dev)).copied().unwrap_or(0);
        if zg.meta {
            // Only the journal zone may stay active: finish partly written
            // metadata zones (their contents stay readable).
            if !zg.conventional {
                let wp = rd.zone_wp(dev, zg.local)?;
                if wp > 0 && wp < zg.cap {
                    on_finish(z);
                }
            }
            continue;
        }
        let wp = if zg.conventional {
            0
        } else {
            rd.zone_wp(dev, zg.local)?
        };
        if wp > zg.cap {
            return Err(Error::Corrupt("zone write pointer beyond capacity"));
        }
        let state = if wp == 0 {
            ZoneState::Empty
        } else {
            ZoneState::Closed
        };
        pool.alloc
            .set_zone(z, state, wp, 0)
            .map_err(|_| Error::Corrupt("zone state"))?;
    }
    // Conventional zones: filled up to the last mapped block. Every
    // distinct leaf is looked at once (snapshots share most of them).
    let mut err: Result<()> = Ok(());
    {
        let vols = &pool.vols;
        let alloc = &mut pool.alloc;
        visit_distinct(
            &mut pool.nodes,
            vols.len(),
            &|i| vols.get(i).and_then(|v| v.table),
            &mut |st, v| {
                if v.level != 1 {
                    return true;
                }
                for i in 0..FANOUT {
                    let e = st.get(v.id).and_then(|n| n.get(i).copied()).unwrap_or(0);
                    if e & PRESENT == 0 {
                        continue;
                    }
                    if let Err(x) = conv_extend(alloc, e & ADDR_MASK) {
                        err = Err(x);
                        return false;
                    }
                }
                true
            },
        );
    }
    err?;
    // Valid counts from the mappings (each must be below its write
    // pointer), each block once however many leaves hold it; with shared
    // blocks, the reference map is rebuilt at the same time.
    if pool.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0 {
        let mut seen = AddrSet::new(pool.alloc.geom().total_blocks());
        {
            let vols = &pool.vols;
            let alloc = &mut pool.alloc;
            let refs = &mut pool.refs;
            let seen = &mut seen;
            visit_distinct(
                &mut pool.nodes,
                vols.len(),
                &|i| vols.get(i).and_then(|v| v.table),
                &mut |st, v| {
                    if v.level != 1 {
                        return true;
                    }
                    for i in 0..FANOUT {
                        let e = st.get(v.id).and_then(|n| n.get(i).copied()).unwrap_or(0);
                        if e & PRESENT == 0 {
                            continue;
                        }
                        let a = e & ADDR_MASK;
                        let r = match seen.insert(st, a) {
                            Ok(true) => alloc
                                .validate(a, 1)
                                .map_err(|_| Error::Corrupt("mapping outside written data")),
                            Ok(false) => refs.acquire(st, a, 1),
                            Err(x) => Err(x),
                        };
                        if let Err(x) = r {
                            err = Err(x);
                            return false;
                        }
                    }
                    true
                },
            );
        }
        seen.destroy(&mut pool.nodes);
        err?;
    } else {
        for vi in 0..pool.vols.len() {
            let Some(t) = pool.vols.get(vi).and_then(|v| v.table) else {
                continue;
            };
            let mut cursor = 0u64;
            while let Some(e) = t.next_extent(&pool.nodes, cursor) {
                cursor = e.lba.saturating_add(e.len);
                pool.alloc
                    .validate(e.addr, e.len)
                    .map_err(|_| Error::Corrupt("mapping outside written data"))?;
            }
        }
    }
    // Partly written zones: writing continues in one per data stream and
    // member (at the write pointer: what lies past the last committed
    // mapping is garbage anyway); the others are finished, so that no more
    // zones stay active than the streams use.
    pool.alloc.rebuild();
    for z in 0..nz {
        let Some(zi) = pool.alloc.zone(z).copied() else {
            continue;
        };
        if zi.state() != ZoneState::Closed {
            continue;
        }
        let zg = pool.alloc.geom().zone(z).ok_or(Error::Corrupt("zone"))?;
        let reopened = zi.wp() < zg.cap
            && [Stream::UserHot, Stream::UserCold, Stream::Gc]
                .iter()
                .any(|s| pool.alloc.reopen(z, *s).is_ok());
        if reopened {
            continue;
        }
        if !zg.conventional && zi.wp() < zg.cap {
            on_finish(z);
        }
        pool.alloc
            .finish(z)
            .map_err(|_| Error::Corrupt("zone finish"))?;
    }
    pool.alloc.rebuild();
    Ok(())
}
