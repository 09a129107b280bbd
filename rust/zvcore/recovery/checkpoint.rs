// SPDX-License-Identifier: GPL-2.0
//! Assembly step 2: loading the newest checkpoint chain (a full checkpoint
//! and its deltas) into the volume table.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::codec::Reader;
use super::super::error::{Error, Result};
use super::super::format::checkpoint::{
    section, sound_block_of, CheckpointItem, CheckpointReader, DeltaLink, SECTION_COMPAT,
};
use super::super::format::history::{Rewind, HISTORY};
use super::super::format::layout::{checkpoint_block_addr, checkpoint_capacity};
use super::super::format::policy::{Policy, POLICY};
use super::super::format::rules::{RuleRecord, RULES};
use super::super::format::sharing::{decode_record, ShareRecord};
use super::super::format::zone_history::{HistoryOrder, ZoneHistory, ZONE_HISTORY};
#[cfg(doc)]
use super::super::format::INCOMPAT_DELTA_GROW;
use super::super::format::{
    CheckpointHeader, Record, Superblock, INCOMPAT_DELTA_CHECKPOINTS, INCOMPAT_DELTA_VOLUMES,
    INCOMPAT_ZONE_HISTORY,
};
use super::super::geom::{DeviceGeometry, MAX_DEVICES};
use super::super::map::{decode_chunk, NodeStore};
use super::super::pool::quota::SpaceRules;
use super::super::pool::{decode_vol_record, Pool, VolEntry, NO_SLOT};
use super::{apply_record, read_ckpt_block, vol_slot, MetaReader};

/// Loads the chain of full checkpoint `h` into the (empty) volume table:
/// the full checkpoint, then each delta written after it in its set whose
/// header links to the previous one and that reads whole (verified before
/// it is applied, so a torn delta changes nothing). Returns the header of
/// the newest checkpoint loaded (the journal resumes after it) and what
/// its deltas were.
pub(super) fn load_checkpoint<G, Z, E, V, R, N, D, S, M>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    h: &CheckpointHeader,
    buf: &mut [u8],
) -> Result<(CheckpointHeader, ChainDeltas)>
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
    if h.delta.is_some() {
        return Err(Error::Corrupt("checkpoint: a delta at the start of a set"));
    }
    let set = h.set();
    let (mut next, _, _) = read_checkpoint(pool, perm, rd, h, 0, true, buf)?;
    let mut last = *h;
    let mut d = ChainDeltas {
        full_blocks: next,
        next_block: next,
        ..ChainDeltas::default()
    };
    if pool.sb.incompat & INCOMPAT_DELTA_CHECKPOINTS == 0 {
        return Ok((last, d));
    }
    while checkpoint_block_addr(pool.alloc.geom(), set, next).is_some() {
        let link = DeltaLink {
            base: h.generation,
            prev: last.generation,
            first_block: next,
        };
        // The delta that links to the chain (a lost member's copy may hold
        // an older chain's).
        let links = |b: &[u8]| {
            CheckpointHeader::decode(b)
                .is_ok_and(|(dh, _)| dh.pool_uuid == h.pool_uuid && dh.delta == Some(link))
        };
        let geo = pool.alloc.geom();
        let copies = &mut pool.ck_copy_reads;
        if read_ckpt_block(geo, perm, rd, set, next, &links, buf, copies).is_err() || !links(buf) {
            break;
        }
        let Ok((dh, _)) = CheckpointHeader::decode(buf) else {
            break;
        };
        if read_checkpoint(pool, perm, rd, &dh, next, false, buf).is_err() {
            break;
        }
        let (n, vols, grows) = read_checkpoint(pool, perm, rd, &dh, next, true, buf)?;
        last = dh;
        d.deltas = d.deltas.saturating_add(1);
        d.volume_deltas = d.volume_deltas.saturating_add(u32::from(vols));
        d.grows = d.grows.saturating_add(grows);
        next = next.checked_add(n).ok_or(Error::Corrupt("checkpoint"))?;
        d.next_block = next;
    }
    Ok((last, d))
}

/// The deltas of a chain loaded.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ChainDeltas {
    /// Deltas after the full checkpoint.
    pub(super) deltas: u32,
    /// Of those, deltas that carried the volume table.
    pub(super) volume_deltas: u32,
    /// Volumes they grew ([`INCOMPAT_DELTA_GROW`]).
    pub(super) grows: u32,
    /// Blocks of the full checkpoint, and the set's block after the chain
    /// (where a delta continuing it would begin).
    pub(super) full_blocks: u32,
    pub(super) next_block: u32,
}

/// Where a delta that carries the volume table is (feature
/// [`INCOMPAT_DELTA_VOLUMES`], see `section::REDEFINED`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum VolDelta {
    /// No volume section seen.
    None,
    /// The redefined volumes were dropped; the volume records being read
    /// mark the volumes that stay (`ck_done`).
    Open,
    /// The volumes not listed were deleted: the redefined tables, links
    /// and rules follow.
    Swept,
}

/// Reads checkpoint `h`, whose header is block `first` of its set, and
/// loads it into the volume table if `apply` (otherwise only checks that it
/// reads whole). Returns its number of blocks, whether it is a delta
/// that carried the volume table, and the volumes it grew.
#[inline(never)]
fn read_checkpoint<G, Z, E, V, R, N, D, S, M>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    h: &CheckpointHeader,
    first: u32,
    apply: bool,
    buf: &mut [u8],
) -> Result<(u32, bool, u32)>
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
    let geo = pool.alloc.geom();
    let sound = |b: &[u8]| sound_block_of(b, h.generation);
    read_ckpt_block(
        geo,
        perm,
        rd,
        set,
        first,
        &sound,
        buf,
        &mut pool.ck_copy_reads,
    )?;
    // In place: the reader is about 900 bytes.
    let mut cr = CheckpointReader::IDLE;
    cr.start(buf)?;
    if cr.header() != h {
        return Err(Error::Corrupt("checkpoint header changed"));
    }
    let cap = checkpoint_capacity(pool.alloc.geom(), set).saturating_sub(first);
    // The delta volume being loaded (slot).
    let mut current: Option<usize> = None;
    let vol_deltas = h.delta.is_some() && pool.sb.incompat & INCOMPAT_DELTA_VOLUMES != 0;
    let mut vd = VolDelta::None;
    // The delta's volume records began (its redefinitions come before).
    let mut listed = false;
    // Number and rank of the last section of a volume delta seen.
    let mut order: Option<(u16, u8)> = None;
    // The policy section replaces every setting: cleared once, before its
    // first payload (it may span several), or at the commit if it has none.
    let mut policies_cleared = false;
    // The placement history, checked in order as it is read.
    let mut horder = HistoryOrder::default();
    loop {
        let idx = cr.next_index();
        if idx >= cap {
            return Err(Error::Corrupt("checkpoint: no commit block"));
        }
        let at = first.saturating_add(idx);
        let geo = pool.alloc.geom();
        read_ckpt_block(geo, perm, rd, set, at, &sound, buf, &mut pool.ck_copy_reads)?;
        match cr.feed(buf)? {
            CheckpointItem::Commit => {
                // The writer adds a sharing section exactly when blocks may
                // be shared, even with no record in it (sharers whose
                // origins are gone): the superblock saying so may not be
                // durable yet (it is written at the next log-zone switch).
                let has = |k: u32| {
                    cr.commit()
                        .is_some_and(|c| c.sections().iter().any(|s| s.kind == k))
                };
                if apply && has(section::SHARING) {
                    pool.enable_sharing();
                }
                if apply && has(POLICY) && !policies_cleared {
                    pool.policy_clear();
                }
                let vol_table = vol_deltas && has(section::VOLUMES);
                // A volume table without records: every volume is gone.
                if apply && vol_table && vd != VolDelta::Swept {
                    if vd == VolDelta::None {
                        pool.delta_vols_open();
                    }
                    pool.delta_vols_sweep()?;
                }
                // The next delta changes the tables this one redefined.
                let mut grows = 0u32;
                if apply {
                    for v in pool.vols.iter_mut() {
                        grows = grows.saturating_add(u32::from(v.ck_grown));
                        v.ck_new = false;
                        v.ck_copy_of = None;
                        v.ck_grown = false;
                    }
                }
                return Ok((idx.saturating_add(1), vol_table, grows));
            }
            CheckpointItem::Data { .. } if !apply => {}
            CheckpointItem::Data {
                section: num,
                kind,
                data,
            } => {
                let mut r = Reader::new(data);
                if vol_deltas && order.is_none_or(|(n, _)| n != num) {
                    // Each section once, in the writer's order: a copy is
                    // of its source before this delta's changes, changes
                    // come after the volume table, tables after changes.
                    if let Some(rank) = vol_delta_rank(kind) {
                        if order.is_some_and(|(_, last)| rank <= last) {
                            return Err(Error::Corrupt("checkpoint: volume section out of order"));
                        }
                        order = Some((num, rank));
                    }
                }
                if vol_deltas {
                    let vols = matches!(kind, section::REDEFINED | section::VOLUMES);
                    if vols && vd == VolDelta::None {
                        pool.delta_vols_open();
                        vd = VolDelta::Open;
                    } else if vols && vd == VolDelta::Swept {
                        return Err(Error::Corrupt("checkpoint: volume section out of order"));
                    } else if !vols && vd == VolDelta::Open {
                        pool.delta_vols_sweep()?;
                        vd = VolDelta::Swept;
                    }
                }
                match kind {
                    section::COPIES if vol_deltas && vd == VolDelta::None => {
                        while r.remaining() > 0 {
                            let new = r.get_u32()?;
                            let src = r.get_u32()?;
                            pool.delta_vol_copy(new, src)?;
                        }
                    }
                    section::REDEFINED if vol_deltas && !listed => {
                        while r.remaining() > 0 {
                            if let Some(i) = vol_slot(&pool.vols, r.get_u32()?) {
                                // The writer never redefines a copy: that
                                // would drop it, leaving what follows (an
                                // empty table) in its place.
                                if pool.vols.get(i).is_some_and(|v| v.ck_copy_of.is_some()) {
                                    return Err(Error::Corrupt("checkpoint: copy redefined"));
                                }
                                pool.apply_delete(i)?;
                            }
                        }
                    }
                    section::VOLUMES if vd == VolDelta::Open => {
                        listed = true;
                        while r.remaining() > 0 {
                            let (id, flags, size, name) = decode_vol_record(&mut r)?;
                            pool.delta_vol_keep(id, flags, size, name)?;
                        }
                    }
                    section::VOLUMES if h.delta.is_none() => {
                        while r.remaining() > 0 {
                            let (id, flags, size, name) = decode_vol_record(&mut r)?;
                            if vol_slot(&pool.vols, id).is_some() {
                                return Err(Error::Corrupt("checkpoint: duplicate volume"));
                            }
                            pool.load_volume(id, flags, size, name)?;
                        }
                    }
                    section::BLOCK_TABLE if h.delta.is_none() || vd == VolDelta::Swept => {
                        while r.remaining() > 0 {
                            let vols = &mut pool.vols;
                            let nodes = &mut pool.nodes;
                            decode_chunk(&mut r, |e| {
                                let i = vol_slot(vols, e.vol).ok_or(Error::Corrupt(
                                    "checkpoint: extent of unknown volume",
                                ))?;
                                // A delta stores only redefined tables whole.
                                if vd == VolDelta::Swept && !vols.get(i).is_some_and(|v| v.ck_new) {
                                    return Err(Error::Corrupt("checkpoint: delta extent"));
                                }
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
                    section::SHARING if h.delta.is_none() || vd == VolDelta::Swept => {
                        while r.remaining() > 0 {
                            load_sharing(pool, decode_record(&mut r)?, &mut current, vd)?;
                        }
                    }
                    RULES if h.delta.is_none() || vd == VolDelta::Swept => {
                        while r.remaining() > 0 {
                            let rr = RuleRecord::decode(&mut r)?;
                            let i = vol_slot(&pool.vols, rr.vol)
                                .ok_or(Error::Corrupt("checkpoint: rules of an unknown volume"))?;
                            pool.apply_space_rules(
                                i,
                                SpaceRules {
                                    quota: rr.quota,
                                    reserve: rr.reserve,
                                },
                            );
                        }
                    }
                    HISTORY => {
                        while r.remaining() > 0 {
                            if let Some(rw) = Rewind::decode(&mut r)? {
                                pool.last_rewind = Some(rw);
                            }
                        }
                    }
                    section::CHANGES if h.delta.is_some() => {
                        while r.remaining() > 0 {
                            let ShareRecord::Diff { vol, entries } = decode_record(&mut r)? else {
                                return Err(Error::Corrupt("checkpoint: change record"));
                            };
                            // Redefined tables are stored whole, after.
                            if vol_slot(&pool.vols, vol)
                                .and_then(|i| pool.vols.get(i))
                                .is_some_and(|v| v.ck_new)
                            {
                                return Err(Error::Corrupt("checkpoint: change of a new table"));
                            }
                            for e in entries {
                                let e = e?;
                                let rec = if e.map {
                                    Record::MapExtent {
                                        vol,
                                        lba: e.lba,
                                        len: e.len,
                                        addr: e.addr,
                                    }
                                } else {
                                    Record::Unmap {
                                        vol,
                                        lba: e.lba,
                                        len: e.len,
                                    }
                                };
                                apply_record(pool, &rec)?;
                            }
                        }
                    }
                    POLICY => {
                        // The whole set: what an older checkpoint of the
                        // chain said is replaced.
                        if !policies_cleared {
                            pool.policy_clear();
                            policies_cleared = true;
                        }
                        while r.remaining() > 0 {
                            pool.apply_policy(Policy::decode(&mut r)?)?;
                        }
                    }
                    ZONE_HISTORY if pool.sb.incompat & INCOMPAT_ZONE_HISTORY != 0 => {
                        while r.remaining() > 0 {
                            let rec = ZoneHistory::decode(&mut r)?;
                            horder.next(&rec)?;
                            pool.apply_zone_history(rec, h.delta.is_some())?;
                        }
                    }
                    _ if h.delta.is_some() => {
                        return Err(Error::Corrupt("checkpoint: section of a delta"))
                    }
                    k if k & SECTION_COMPAT != 0 => {}
                    _ => return Err(Error::Unsupported("checkpoint: unknown section")),
                }
            }
        }
    }
}

/// The place of section `kind` in a delta that carries the volume table
/// (`on-disk-format.md` §5, "Volume operations in a delta"); `None` for
/// kinds a delta may not hold.
fn vol_delta_rank(kind: u32) -> Option<u8> {
    Some(match kind {
        section::COPIES => 0,
        section::REDEFINED => 1,
        section::VOLUMES => 2,
        section::CHANGES => 3,
        section::BLOCK_TABLE => 4,
        section::SHARING => 5,
        RULES => 6,
        _ => return None,
    })
}

/// Applies one record of the checkpoint's sharing section (see
/// `format::sharing`); `current` is the delta volume being loaded.
#[inline(never)]
fn load_sharing<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    rec: ShareRecord<'_>,
    current: &mut Option<usize>,
    vd: VolDelta,
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
            // A delta volume is defined once, before any use as a base (in
            // a delta checkpoint: a redefined one).
            if t.root().is_some()
                || v.ck_done
                || v.ck_base == NO_SLOT
                || (vd == VolDelta::Swept && !v.ck_new)
            {
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
