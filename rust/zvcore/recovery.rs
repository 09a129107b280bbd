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

use super::alloc::{ZoneInfo, ZoneState};
use super::codec::Reader;
use super::error::{Error, Result};
use super::format::checkpoint::{section, CheckpointItem, CheckpointReader, SECTION_COMPAT};
use super::format::layout::{checkpoint_block_addr, checkpoint_capacity, log_zone, LOG_ZONES};
use super::format::{decode_journal_block, CheckpointHeader, Record, Superblock, BLOCK_SIZE};
use super::geom::{DeviceGeometry, PoolGeometry, MAX_DEVICES};
use super::map::{decode_chunk, BlockTable, NodeStore};
use super::pool::{decode_vol_record, Pool, PoolConfig, PoolStorage, VolEntry};

/// Incompat features this engine supports (none yet).
pub const INCOMPAT_SUPPORTED: u64 = 0;
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

/// Assembles a pool. `devs` holds the geometries of the devices in the
/// caller's order (as reported by the devices); on success it holds them in
/// member order (and the returned [`Assembly`] maps members to the caller's
/// indexes). `on_finish(zone)` is called for every sequential zone (global
/// id, member order) the caller must finish on its device before writing.
/// `scratch` is one block.
#[allow(clippy::type_complexity)]
pub fn recover<G, Z, E, V, R, N, M, F>(
    mut devs: G,
    rd: &mut M,
    cfg: PoolConfig,
    st: PoolStorage<Z, E, V, R, N>,
    scratch: &mut [u8],
    on_finish: &mut F,
) -> Result<(Pool<G, Z, E, V, R, N>, Assembly)>
where
    G: DerefMut<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
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
    // 1. Superblocks.
    let mut best: Option<Superblock> = None;
    let mut dev_ids = [None::<([u8; 16], [u8; 16], u64)>; MAX_DEVICES];
    for (j, g) in devs.iter().enumerate() {
        for i in 0..LOG_ZONES {
            let local = g.first_meta_zone().saturating_add(i);
            let Some(block) = u64::from(local).checked_mul(g.zone_blocks) else {
                continue;
            };
            if rd.read_block(j as u16, block, buf).is_err() {
                continue;
            }
            let Ok(sb) = Superblock::decode(buf) else {
                continue;
            };
            if let Some(slot) = dev_ids.get_mut(j) {
                let newer = slot.map(|s| sb.generation > s.2).unwrap_or(true);
                if newer {
                    *slot = Some((sb.pool_uuid, sb.dev_uuid, sb.generation));
                }
            }
            let better = match &best {
                None => true,
                Some(b) => sb.generation > b.generation,
            };
            if better {
                best = Some(sb);
            }
        }
    }
    let sb = best.ok_or(Error::NotFound)?;
    let read_only = sb.check_features(INCOMPAT_SUPPORTED, RO_COMPAT_SUPPORTED)?;
    let n = usize::from(sb.nr_members);
    if n != ndev {
        return Err(if n > ndev {
            Error::NotFound
        } else {
            Error::Invalid("recover: device is not a member")
        });
    }
    let mut perm = [0u16; MAX_DEVICES];
    let mut used = [false; MAX_DEVICES];
    for (m, info) in sb.members().iter().enumerate() {
        let j = dev_ids
            .iter()
            .take(ndev)
            .position(|d| matches!(d, Some((p, u, _)) if *p == sb.pool_uuid && *u == info.dev_uuid))
            .ok_or(Error::NotFound)?;
        if used.get(j).copied().unwrap_or(true) {
            return Err(Error::Corrupt("recover: duplicate member"));
        }
        if let Some(u) = used.get_mut(j) {
            *u = true;
        }
        if devs.get(j) != Some(&info.geom) {
            return Err(Error::Corrupt("recover: member geometry mismatch"));
        }
        if let Some(p) = perm.get_mut(m) {
            *p = j as u16;
        }
    }
    sb.geometries(&mut devs)?;
    let geom = PoolGeometry::new(devs).map_err(|_| Error::Corrupt("recover: geometry"))?;
    let mut pool = Pool::assemble(geom, sb, cfg, st)?;
    let uuid = pool.sb.pool_uuid;

    // 2. Checkpoints: the valid headers, newest first.
    let mut heads: [Option<CheckpointHeader>; 2] = [None, None];
    for (set, h) in heads.iter_mut().enumerate() {
        let Some(a) = checkpoint_block_addr(pool.alloc.geom(), set as u8, 0) else {
            continue;
        };
        if read_pool(pool.alloc.geom(), &perm, rd, a, buf).is_err() {
            continue;
        }
        if let Ok((hdr, _)) = CheckpointHeader::decode(buf) {
            if hdr.pool_uuid == uuid && usize::from(hdr.set()) == set {
                *h = Some(hdr);
            }
        }
    }
    let mut order = [heads[0], heads[1]];
    if let [Some(a), Some(b)] = order {
        if b.generation > a.generation {
            order = [Some(b), Some(a)];
        }
    } else if order[0].is_none() {
        order = [order[1], None];
    }
    let mut chosen = None;
    for (k, h) in order.iter().enumerate() {
        let Some(h) = h else { continue };
        clear_volumes(&mut pool);
        match load_checkpoint(&mut pool, &perm, rd, h, buf) {
            Ok(()) => {
                chosen = Some((*h, k > 0));
                break;
            }
            Err(Error::Unsupported(s)) => return Err(Error::Unsupported(s)),
            Err(_) => continue,
        }
    }
    let Some((ckpt, fell_back)) = chosen else {
        clear_volumes(&mut pool);
        return Err(Error::Corrupt("recover: no valid checkpoint"));
    };

    // 3. Journal. Write pointers of every log zone first.
    let nm = pool.alloc.geom().nr_devices();
    let mut lim = [0u64; 2 * MAX_DEVICES];
    for d in 0..nm {
        for i in 0..LOG_ZONES {
            let Some(z) = log_zone(pool.alloc.geom(), d, i) else {
                continue;
            };
            let Some(zg) = pool.alloc.geom().zone(z) else {
                continue;
            };
            let w = if zg.conventional {
                zg.cap
            } else {
                let dev = perm.get(usize::from(d)).copied().unwrap_or(0);
                rd.zone_wp(dev, zg.local).unwrap_or(0).min(zg.cap)
            };
            if let Some(s) = lim.get_mut(usize::from(d) * 2 + i as usize) {
                *s = w;
            }
        }
    }
    // Highest sequence number anywhere (a full scan).
    let mut max_seen = ckpt.journal_seq;
    for d in 0..nm {
        for i in 0..LOG_ZONES {
            let Some(start) =
                log_zone(pool.alloc.geom(), d, i).and_then(|z| pool.alloc.geom().zone_start(z))
            else {
                continue;
            };
            let l = lim
                .get(usize::from(d) * 2 + i as usize)
                .copied()
                .unwrap_or(0);
            for off in 1..l {
                if read_pool(pool.alloc.geom(), &perm, rd, start + off, buf).is_err() {
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
        let found = find_journal_block(&pool, &perm, rd, &lim, uuid, next, hint, buf);
        let Some(pos) = found else { break };
        let Ok((h, recs)) = decode_journal_block(buf) else {
            break;
        };
        if h.ckpt_gen > ckpt.generation {
            break;
        }
        for rec in recs {
            apply_record(&mut pool, &rec?)?;
        }
        replayed += 1;
        hint = Some(pos);
        next = next
            .checked_add(1)
            .ok_or(Error::Corrupt("journal sequence"))?;
    }
    let last_seq = next - 1;

    // 4. Zones.
    rebuild_zones(&mut pool, &perm, rd, on_finish)?;

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
    let asm = Assembly {
        dev_of_member: perm,
        nr_members: nm,
        sb_generation: pool.sb.generation,
        checkpoint_generation: ckpt.generation,
        fell_back,
        replayed_blocks: replayed,
        last_seq,
        max_seq_seen: max_seen,
        read_only,
    };
    Ok((pool, asm))
}

/// Frees every volume (used before retrying with another checkpoint).
fn clear_volumes<G, Z, E, V, R, N>(pool: &mut Pool<G, Z, E, V, R, N>)
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
fn load_checkpoint<G, Z, E, V, R, N, M>(
    pool: &mut Pool<G, Z, E, V, R, N>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    h: &CheckpointHeader,
    buf: &mut [u8],
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
    M: MetaReader,
{
    let set = h.set();
    let a0 =
        checkpoint_block_addr(pool.alloc.geom(), set, 0).ok_or(Error::Corrupt("checkpoint"))?;
    read_pool(pool.alloc.geom(), perm, rd, a0, buf)?;
    let mut cr = CheckpointReader::new(buf)?;
    if cr.header() != h {
        return Err(Error::Corrupt("checkpoint header changed"));
    }
    let cap = checkpoint_capacity(pool.alloc.geom(), set);
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
                    k if k & SECTION_COMPAT != 0 => {}
                    _ => return Err(Error::Unsupported("checkpoint: unknown section")),
                }
            }
        }
    }
}

/// Finds the journal block with sequence `seq` (leaves it in `buf`):
/// first right after `hint`, else anywhere in a log zone.
#[allow(clippy::too_many_arguments)]
fn find_journal_block<G, Z, E, V, R, N, M>(
    pool: &Pool<G, Z, E, V, R, N>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    lim: &[u64; 2 * MAX_DEVICES],
    uuid: [u8; 16],
    seq: u64,
    hint: Option<(u16, u32, u64)>,
    buf: &mut [u8],
) -> Option<(u16, u32, u64)>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    M: MetaReader,
{
    let geo = pool.alloc.geom();
    let mut probe = |d: u16, i: u32, off: u64, buf: &mut [u8]| -> bool {
        let Some(start) = log_zone(geo, d, i).and_then(|z| geo.zone_start(z)) else {
            return false;
        };
        if off == 0
            || off
                >= lim
                    .get(usize::from(d) * 2 + i as usize)
                    .copied()
                    .unwrap_or(0)
        {
            return false;
        }
        if read_pool(geo, perm, rd, start + off, buf).is_err() {
            return false;
        }
        matches!(decode_journal_block(buf), Ok((h, _)) if h.pool_uuid == uuid && h.seq == seq)
    };
    if let Some((d, i, off)) = hint {
        if probe(d, i, off + 1, buf) {
            return Some((d, i, off + 1));
        }
    }
    for d in 0..geo.nr_devices() {
        for i in 0..LOG_ZONES {
            let l = lim
                .get(usize::from(d) * 2 + i as usize)
                .copied()
                .unwrap_or(0);
            for off in 1..l {
                if probe(d, i, off, buf) {
                    return Some((d, i, off));
                }
            }
        }
    }
    None
}

/// Applies one replayed record to the block tables.
fn apply_record<G, Z, E, V, R, N>(pool: &mut Pool<G, Z, E, V, R, N>, rec: &Record) -> Result<()>
where
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
{
    let bad = |_| Error::Corrupt("journal: record does not apply");
    let table = |pool: &Pool<G, Z, E, V, R, N>, vol: u32| -> Result<(usize, BlockTable)> {
        let i = vol_slot(&pool.vols, vol).ok_or(Error::Corrupt("journal: unknown volume"))?;
        let t = pool
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::Corrupt("volume"))?;
        Ok((i, t))
    };
    match *rec {
        Record::MapExtent {
            vol,
            lba,
            len,
            addr,
        } => {
            let (i, mut t) = table(pool, vol)?;
            let r = t.map_range(&mut pool.nodes, lba, u64::from(len), addr, |_, _, _| {});
            if let Some(v) = pool.vols.get_mut(i) {
                v.table = Some(t);
            }
            r.map_err(|e| if e == Error::NoSpace { e } else { bad(e) })
        }
        Record::Unmap { vol, lba, len } => {
            let (i, mut t) = table(pool, vol)?;
            let r = t.unmap_range(&mut pool.nodes, lba, u64::from(len), |_, _, _| {});
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
                };
            }
            Ok(())
        }
        Record::VolumeDelete { vol } => {
            let (i, mut t) = table(pool, vol)?;
            let r = t.destroy(&mut pool.nodes, |_, _, _| {});
            if let Some(v) = pool.vols.get_mut(i) {
                *v = VolEntry::default();
            }
            r.map_err(bad)
        }
        Record::VolumeResize { vol, size_blocks } => {
            let (i, mut t) = table(pool, vol)?;
            let r = t.resize(&mut pool.nodes, size_blocks, |_, _, _| {});
            if let Some(v) = pool.vols.get_mut(i) {
                v.table = Some(t);
            }
            r.map_err(|e| if e == Error::NoSpace { e } else { bad(e) })
        }
        Record::ZoneReset { .. } | Record::ZoneFinish { .. } | Record::CheckpointDone { .. } => {
            Ok(())
        }
        Record::VolumeReserve { .. } | Record::Snapshot { .. } => Err(Error::Unsupported(
            "journal: record of an unsupported feature",
        )),
    }
}

/// Rebuilds the allocator's zone table from the devices' write pointers and
/// the block tables.
fn rebuild_zones<G, Z, E, V, R, N, M, F>(
    pool: &mut Pool<G, Z, E, V, R, N>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    on_finish: &mut F,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
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
    // Conventional zones: filled up to the last mapped block.
    for vi in 0..pool.vols.len() {
        let Some(t) = pool.vols.get(vi).and_then(|v| v.table) else {
            continue;
        };
        for e in t.extents(&pool.nodes) {
            let mut a = e.addr;
            let end = e.addr.checked_add(e.len).ok_or(Error::Corrupt("extent"))?;
            while a < end {
                let l = pool
                    .alloc
                    .geom()
                    .locate(a)
                    .ok_or(Error::Corrupt("mapping outside the pool"))?;
                let zg = pool
                    .alloc
                    .geom()
                    .zone(l.zone)
                    .ok_or(Error::Corrupt("zone"))?;
                let n = (end - a).min(zg.size.saturating_sub(l.offset)).max(1);
                if zg.conventional && !zg.meta {
                    let top = l.offset.saturating_add(n);
                    if top > zg.cap {
                        return Err(Error::Corrupt("mapping beyond zone capacity"));
                    }
                    let cur = pool.alloc.zone(l.zone).map(|zi| zi.wp()).unwrap_or(0);
                    if top > cur {
                        pool.alloc
                            .set_zone(l.zone, ZoneState::Closed, top, 0)
                            .map_err(|_| Error::Corrupt("zone state"))?;
                    }
                }
                a += n;
            }
        }
    }
    // Valid counts from the mappings (each must be below its write pointer).
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
    // Every partly written zone is finished.
    for z in 0..nz {
        let Some(zi) = pool.alloc.zone(z).copied() else {
            continue;
        };
        if zi.state() != ZoneState::Closed {
            continue;
        }
        let zg = pool.alloc.geom().zone(z).ok_or(Error::Corrupt("zone"))?;
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
