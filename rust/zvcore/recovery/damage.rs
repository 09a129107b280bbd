// SPDX-License-Identifier: GPL-2.0
//! Recovery's damage analysis (see the parent module, step 3, and
//! `Documentation/design-recovery.md` §8a): one scan of every log zone for
//! what is proven committed and which blocks are invalid, what lies past
//! the replayed prefix (torn tail, or what a rewind drops), the zones
//! reclaimed after the damage, and recording an explicit rewind.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::history::Rewind;
use super::super::format::layout::{log_zone, LOG_ZONES};
use super::super::format::{decode_journal_block, peek_magic, Record, Superblock, JOURNAL_MAGIC};
use super::super::geom::{DeviceGeometry, PoolGeometry, MAX_DEVICES};
use super::super::map::NodeStore;
use super::super::pool::{Pool, VolEntry};
use super::log_limit::log_limit;
use super::{read_pool, Assembly, BadBlock, Damage, MetaReader};

/// What a scan of every log zone found (see [`scan_log`]).
pub(super) struct LogScan {
    /// Highest valid sequence number of this pool (at least the
    /// checkpoint's).
    pub(super) max_seen: u64,
    /// Highest sequence proven committed (`JournalHeader::proves_committed`).
    pub(super) committed: u64,
    /// Highest checkpoint generation a valid block names.
    pub(super) max_gen: u64,
    /// Invalid journal blocks of this pool (above the checkpoint, by their
    /// claimed sequence).
    pub(super) nr_bad: u32,
    pub(super) first_bad: Option<BadBlock>,
    /// Where the first block to replay (`ckpt_seq + 1`) was found: member,
    /// log zone index, block (replay starts there, not with a search of
    /// the log zones).
    pub(super) first_at: Option<(u16, u32, u64)>,
    /// Highest valid sequence number of this pool in the log zones of
    /// each index (any member; 0: none): whether a log zone holds journal
    /// the checkpoint does not cover (`resume.rs`).
    pub(super) index_max: [u64; LOG_ZONES as usize],
}

/// Calls `f(member, log zone index, pool address of the zone's start,
/// blocks written)` for every log zone of every member, with `buf` (one
/// block) to read into.
fn for_each_log_zone<G, M, F>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    buf: &mut [u8],
    mut f: F,
) where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
    F: FnMut(&mut M, &mut [u8], u16, u32, u64, u64),
{
    for d in 0..geo.nr_devices() {
        for i in 0..LOG_ZONES {
            let Some(start) = log_zone(geo, d, i).and_then(|z| geo.zone_start(z)) else {
                continue;
            };
            let l = log_limit(geo, perm, rd, d, i, buf);
            f(rd, buf, d, i, start, l);
        }
    }
}

/// If the block in `buf` carries this pool's journal identity but does not
/// decode, the sequence number it claims.
fn bad_journal_claim(buf: &[u8], uuid: &[u8; 16]) -> Option<u64> {
    if peek_magic(buf) != Some(JOURNAL_MAGIC) || decode_journal_block(buf).is_ok() {
        return None;
    }
    // Pool UUID at 24, sequence at 40 (`format::journal`).
    if buf.get(24..40) != Some(&uuid[..]) {
        return None;
    }
    let seq: [u8; 8] = buf.get(40..48)?.try_into().ok()?;
    Some(u64::from_le_bytes(seq))
}

/// Scans every log zone once (step 3 of [`recover`]).
pub(super) fn scan_log<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    ckpt_seq: u64,
    buf: &mut [u8],
) -> LogScan
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let mut s = LogScan {
        max_seen: ckpt_seq,
        committed: 0,
        max_gen: 0,
        nr_bad: 0,
        first_bad: None,
        first_at: None,
        index_max: [0; LOG_ZONES as usize],
    };
    for_each_log_zone(geo, perm, rd, buf, |rd, buf, d, i, start, l| {
        let local = log_zone(geo, d, i)
            .and_then(|z| geo.zone(z))
            .map(|zg| zg.local)
            .unwrap_or(0);
        for off in 1..l {
            if read_pool(geo, perm, rd, start.saturating_add(off), buf).is_err() {
                continue;
            }
            match decode_journal_block(buf) {
                Ok((h, _)) if h.pool_uuid == uuid => {
                    if s.first_at.is_none() && Some(h.seq) == ckpt_seq.checked_add(1) {
                        s.first_at = Some((d, i, off));
                    }
                    s.max_seen = s.max_seen.max(h.seq);
                    if let Some(m) = s.index_max.get_mut(i as usize) {
                        *m = (*m).max(h.seq);
                    }
                    s.committed = s.committed.max(h.proves_committed());
                    s.max_gen = s.max_gen.max(h.ckpt_gen);
                }
                Ok(_) => {}
                Err(_) => {
                    let Some(claimed) = bad_journal_claim(buf, &uuid) else {
                        continue;
                    };
                    if claimed <= ckpt_seq {
                        continue;
                    }
                    s.nr_bad = s.nr_bad.saturating_add(1);
                    if s.first_bad.is_none() {
                        s.first_bad = Some(BadBlock {
                            member: d,
                            zone: local,
                            block: off,
                            claimed_seq: claimed,
                        });
                    }
                }
            }
        }
    });
    s
}

/// Counts the invalid journal blocks of this pool that claim a sequence
/// number in `ckpt_seq + 1 ..= last_seq` (replayed) and whose copy, at the
/// same offset of the same log zone of another member, is valid: damaged
/// copies of the journal (journal copies). An invalid block elsewhere (a
/// torn write a crash left, its sequence number written again later) is
/// not a copy.
pub(super) fn count_repaired<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    ckpt_seq: u64,
    last_seq: u64,
    buf: &mut [u8],
) -> u32
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let mut n = 0u32;
    for_each_log_zone(geo, perm, rd, buf, |rd, buf, d, i, start, l| {
        for off in 1..l {
            if read_pool(geo, perm, rd, start.saturating_add(off), buf).is_err() {
                continue;
            }
            let Some(c) = bad_journal_claim(buf, &uuid).filter(|c| *c > ckpt_seq && *c <= last_seq)
            else {
                continue;
            };
            if has_copy(geo, perm, rd, uuid, (d, i, off), c, buf) {
                n = n.saturating_add(1);
            }
        }
    });
    n
}

/// Whether a member other than `d` holds a valid journal block of this
/// pool with sequence number `seq` at offset `off` of its log zone `i`
/// (`at` = `(d, i, off)`): a copy of the block there (journal copies).
pub(super) fn has_copy<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    at: (u16, u32, u64),
    seq: u64,
    buf: &mut [u8],
) -> bool
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let (d, i, off) = at;
    (0..geo.nr_devices()).filter(|o| *o != d).any(|o| {
        let Some(a) = log_zone(geo, o, i).and_then(|z| geo.zone_start(z)) else {
            return false;
        };
        read_pool(geo, perm, rd, a.saturating_add(off), buf).is_ok()
            && matches!(decode_journal_block(buf), Ok((h, _)) if h.pool_uuid == uuid && h.seq == seq)
    })
}

/// The invalid journal block of this pool at offset `off` of log zone `i`
/// of member `m`, if there is one.
#[allow(clippy::too_many_arguments)]
pub(super) fn bad_block_at<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    m: u16,
    i: u32,
    off: u64,
    buf: &mut [u8],
) -> Option<BadBlock>
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let z = log_zone(geo, m, i)?;
    let zg = geo.zone(z)?;
    if off >= log_limit(geo, perm, rd, m, i, buf) {
        return None;
    }
    let start = geo.zone_start(z)?;
    read_pool(geo, perm, rd, start.saturating_add(off), buf).ok()?;
    let claimed = bad_journal_claim(buf, &uuid)?;
    Some(BadBlock {
        member: m,
        zone: zg.local,
        block: off,
        claimed_seq: claimed,
    })
}

/// Counts the valid journal blocks after `last_seq` (not replayed): those
/// past `committed` are a torn tail (`torn`); with `damage`, all of them
/// are what a rewind drops (blocks, records, volumes).
#[allow(clippy::too_many_arguments)]
pub(super) fn count_dropped<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    last_seq: u64,
    committed: u64,
    buf: &mut [u8],
    torn: &mut u64,
    mut damage: Option<&mut Damage>,
) where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    for_each_log_zone(geo, perm, rd, buf, |rd, buf, _, _, start, l| {
        for off in 1..l {
            if read_pool(geo, perm, rd, start.saturating_add(off), buf).is_err() {
                continue;
            }
            let Ok((h, recs)) = decode_journal_block(buf) else {
                continue;
            };
            if h.pool_uuid != uuid || h.seq <= last_seq {
                continue;
            }
            if h.seq > committed {
                *torn = torn.saturating_add(1);
            }
            let Some(d) = damage.as_deref_mut() else {
                continue;
            };
            d.lost_blocks = d.lost_blocks.saturating_add(1);
            if h.seq <= committed {
                d.lost_committed_blocks = d.lost_committed_blocks.saturating_add(1);
            }
            for rec in recs.flatten() {
                d.lost_records = d.lost_records.saturating_add(1);
                let (a, b) = rec.volumes();
                for v in [a, b].into_iter().flatten() {
                    d.add_volume(v);
                }
            }
        }
    });
}

/// Unmaps, in the state replayed up to `last_seq`, every block that lies in
/// a zone a later journal block says was reset (`ZoneReset`, written before
/// every reset on pools with commit groups); counts them in `d`.
#[inline(never)]
pub(super) fn drop_reclaimed<G, Z, E, V, R, N, D, S, M>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    last_seq: u64,
    buf: &mut [u8],
    d: &mut Damage,
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
    for m in 0..pool.alloc.geom().nr_devices() {
        for i in 0..LOG_ZONES {
            let geo = pool.alloc.geom();
            let Some(start) = log_zone(geo, m, i).and_then(|z| geo.zone_start(z)) else {
                continue;
            };
            let l = log_limit(geo, perm, rd, m, i, buf);
            for off in 1..l {
                if read_pool(pool.alloc.geom(), perm, rd, start.saturating_add(off), buf).is_err() {
                    continue;
                }
                let Ok((h, recs)) = decode_journal_block(buf) else {
                    continue;
                };
                if h.pool_uuid != uuid || h.seq <= last_seq {
                    continue;
                }
                for rec in recs.flatten() {
                    if let Record::ZoneReset { zone } = rec {
                        let n = unmap_zone(pool, zone)?;
                        d.reclaimed_zones = d.reclaimed_zones.saturating_add(1);
                        d.reclaimed_blocks = d.reclaimed_blocks.saturating_add(n);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Unmaps every block of every volume that lies in data zone `zone`;
/// returns how many (a block shared by several volumes counts for each).
fn unmap_zone<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    zone: u32,
) -> Result<u64>
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
    let geo = pool.alloc.geom();
    let (Some(zs), Some(zg)) = (geo.zone_start(zone), geo.zone(zone)) else {
        return Err(Error::Corrupt("journal: reset of an unknown zone"));
    };
    let ze = zs.saturating_add(zg.size);
    let mut lost = 0u64;
    for i in 0..pool.vols.len() {
        let Some(mut t) = pool.vols.get(i).and_then(|v| v.table) else {
            continue;
        };
        let mut cursor = 0u64;
        let mut r = Ok(());
        while let Some(e) = t.next_extent(&pool.nodes, cursor) {
            cursor = e.lba.saturating_add(e.len);
            let a0 = e.addr.max(zs);
            let a1 = e.addr.saturating_add(e.len).min(ze);
            if a0 >= a1 {
                continue;
            }
            let lba = e.lba.saturating_add(a0 - e.addr);
            r = t.unmap_range_shared(&mut pool.nodes, &mut pool.refs, lba, a1 - a0, |_, _| {});
            if r.is_err() {
                break;
            }
            lost = lost.saturating_add(a1 - a0);
        }
        if let Some(v) = pool.vols.get_mut(i) {
            v.table = Some(t);
        }
        r.map_err(|e| {
            if e == Error::NoSpace {
                e
            } else {
                Error::Corrupt("recover: cannot drop reclaimed blocks")
            }
        })?;
    }
    Ok(lost)
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
    /// Accepts the state [`recover`] assembled before `damage` (an explicit
    /// rewind, like `zpool import -F`): records it in the pool's history
    /// (written with the checkpoint that must come first) and returns the
    /// record. The journal after the damage is never replayed again: the
    /// first checkpoint covers every sequence number seen.
    pub fn record_rewind(&mut self, damage: &Damage, asm: &Assembly) -> Rewind {
        let rw = Rewind {
            count: self
                .last_rewind
                .map(|r| r.count)
                .unwrap_or(0)
                .saturating_add(1),
            from_seq: damage.seq,
            to_seq: asm.max_seq_seen.max(damage.committed_seq).max(damage.seq),
            lost_gen: damage.lost_gen,
            blocks: damage.lost_blocks,
            records: damage.lost_records,
            to_gen: asm.checkpoint_generation,
        };
        self.last_rewind = Some(rw);
        self.need_ckpt = true;
        self.full_due = true;
        rw
    }
}
