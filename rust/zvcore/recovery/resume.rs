// SPDX-License-Identifier: GPL-2.0
//! Assembly step 3b: whether the journal goes on where it ended, so that
//! the first commit after an assembly is a journal block rather than a
//! full checkpoint.
//!
//! After a clean stop (its closing block) or a power cut that hit no
//! commit, the journal after the checkpoint is whole: every block to
//! replay was found, with its copy, and nothing of this pool lies past
//! the last one. Its next block is then simply the next in sequence, at
//! the next offset of the same log zone, exactly as if the pool had not
//! stopped: a later assembly reads one journal, and finds it the same
//! way. Anything else (a torn tail, blocks past the replayed ones, damage,
//! a missing member, a journal that spans both log zones, a write pointer
//! that is not right after the last block) keeps the old rule: a full
//! checkpoint first, which covers every sequence number seen, so nothing
//! seen is ever replayed again.

use core::ops::Deref;

use super::super::format::decode_journal_block;
use super::super::format::layout::{
    checkpoint_member_blocks, checkpoint_zone, ckpt_zones_of, log_zone, LOG_ZONES,
};
use super::super::geom::{DeviceGeometry, PoolGeometry, MAX_DEVICES};
use super::super::pool::ChainExtent;
use super::{read_pool, MetaReader, MISSING};

/// Where the journal goes on after assembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resume {
    /// Nothing follows the checkpoint in either log zone: the first
    /// commit switches to a log zone as after any checkpoint.
    Switch,
    /// In log zone `log` of the journal member (and its mirror), at block
    /// `next`; `prev_end`: the journal to replay began in the other log
    /// zone, whose last block is the one before `prev_end`.
    InPlace {
        log: u8,
        next: u64,
        prev_end: Option<u64>,
    },
}

/// What recovery learnt of the journal, for [`journal_resume`].
#[derive(Clone, Copy, Debug)]
pub(super) struct JournalEnd {
    /// The checkpoint's sequence number and the last block replayed.
    pub(super) ckpt_seq: u64,
    pub(super) last_seq: u64,
    /// Where the last replayed block was found (member, log zone index,
    /// block), if any was.
    pub(super) last_at: Option<(u16, u32, u64)>,
    /// Highest sequence number seen in each log zone index, and anywhere.
    pub(super) index_max: [u64; LOG_ZONES as usize],
    /// Per log zone index, the block after the last one replayed from the
    /// journal member's zone and its sequence number.
    pub(super) zone_last: [Option<(u64, u64)>; LOG_ZONES as usize],
    pub(super) max_seen: u64,
    /// The journal member and its mirror.
    pub(super) jdev: u16,
    pub(super) jmirror: Option<u16>,
    /// Nothing that keeps the old rule: no damage, no invalid journal
    /// block, no missing member, no replayed block without its copy, no
    /// newer checkpoint seen than the one loaded (the caller's checks).
    pub(super) sound: bool,
}

/// Whether, and where, the journal goes on after assembly (see the module
/// documentation). `buf` is one block.
pub(super) fn journal_resume<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    uuid: [u8; 16],
    j: &JournalEnd,
    buf: &mut [u8],
) -> Option<Resume>
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    // Nothing past the last replayed block (a torn tail would be replayed
    // by the next assembly if the journal went on after it).
    if !j.sound || j.max_seen != j.last_seq {
        return None;
    }
    let covered = |i: u32| {
        j.index_max
            .get(i as usize)
            .is_some_and(|m| *m <= j.ckpt_seq)
    };
    if j.last_seq == j.ckpt_seq {
        return (0..LOG_ZONES).all(covered).then_some(Resume::Switch);
    }
    let (d, i, off) = j.last_at?;
    if d != j.jdev || off == 0 || i >= LOG_ZONES {
        return None;
    }
    let log = u8::try_from(i).ok()?;
    // The other log zone holds only blocks the checkpoint covers, or the
    // beginning of the journal to replay (a switch since the checkpoint):
    // its last block, replayed, just before this zone's first.
    let other = 1 - i;
    let prev = if covered(other) {
        None
    } else {
        let (end, seq) = j.zone_last.get(other as usize).copied().flatten()?;
        if j.index_max.get(other as usize) != Some(&seq) {
            return None;
        }
        Some((end, seq))
    };
    // Written from block 1 in sequence: block `k` holds `s1 + k - 1`, the
    // current zone as the engine knows it (`Pool::journal_block_addrs`).
    let start = log_zone(geo, d, i).and_then(|z| geo.zone_start(z))?;
    read_pool(geo, perm, rd, start.saturating_add(1), buf).ok()?;
    let s1 = match decode_journal_block(buf) {
        Ok((h, _)) if h.pool_uuid == uuid => h.seq,
        _ => return None,
    };
    if s1.checked_add(off - 1) != Some(j.last_seq) {
        return None;
    }
    // The journal to replay begins in this zone, or right before its first
    // block at the end of the other one.
    match prev {
        None if s1 > j.ckpt_seq.saturating_add(1) => return None,
        Some((_, seq)) if seq.checked_add(1) != Some(s1) => return None,
        _ => {}
    }
    // On a sequential zone the next block goes at the write pointer: it
    // must be right after the last block, on the mirror too.
    let next = off.checked_add(1)?;
    for m in core::iter::once(d).chain(j.jmirror) {
        let zg = log_zone(geo, m, i).and_then(|z| geo.zone(z))?;
        if zg.conventional {
            continue;
        }
        let dev = perm
            .get(usize::from(m))
            .copied()
            .filter(|v| *v != MISSING)?;
        if rd.zone_wp(dev, zg.local).ok()? != next {
            return None;
        }
    }
    Some(Resume::InPlace {
        log,
        next,
        prev_end: prev.map(|(end, _)| end),
    })
}

/// Whether a delta can go at block `next_block` of checkpoint set `set`
/// (after the chain assembly loaded): on each member's sequential zones the
/// write pointer is where its next block of the set goes and its later
/// zones of the set are empty (nothing of a torn checkpoint past the
/// chain, no zone finished). Conventional zones are written over in place.
pub(super) fn chain_tail_ok<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    set: u8,
    next_block: u32,
) -> bool
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    (0..geo.nr_devices()).all(|d| {
        if geo.is_removed(d) {
            return true;
        }
        let (Some(g), Some(first)) = (geo.device(d), checkpoint_zone(geo, set, d)) else {
            return false;
        };
        let cap = g.zone_cap_blocks.max(1);
        // This member's blocks of the set so far: a prefix of its part.
        let here = checkpoint_member_blocks(geo, d, next_block);
        let k = here / cap;
        let zones = u64::from(ckpt_zones_of(g.meta_zones));
        // The zone the next block goes to, and every later one of the
        // member's part (a torn checkpoint may have left blocks in a later
        // zone while losing the earlier ones: they are separate zones).
        (k..zones).all(|kk| {
            let Some(zg) = u32::try_from(kk)
                .ok()
                .and_then(|kk| first.checked_add(kk))
                .and_then(|z| geo.zone(z))
            else {
                return false;
            };
            if zg.conventional {
                return true;
            }
            let Some(dev) = perm.get(usize::from(d)).copied().filter(|v| *v != MISSING) else {
                return false;
            };
            let want = if kk == k { here % cap } else { 0 };
            rd.zone_wp(dev, zg.local).ok() == Some(want)
        })
    })
}

/// With checkpoint copies, whether every block of the chain loaded (`c`)
/// has its second copy too, sound for the chain: the loader read the first
/// copies. A chain written while a member was lost has only one copy of
/// some blocks (the lost member's holds an older chain's); until a full
/// checkpoint with every member is written, losing the member that holds
/// the only copy would lose the chain. So the journal goes on only over a
/// chain with both copies of every block (one read more of each block);
/// otherwise the first commit is a full checkpoint, as before.
pub(super) fn chain_copies_sound<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    c: &ChainExtent,
    buf: &mut [u8],
) -> bool
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    if !geo.ckpt_copies() {
        return true;
    }
    (0..c.blocks).all(|i| {
        let [_, second] = c.copies(geo, i);
        second.is_some_and(|a| read_pool(geo, perm, rd, a, buf).is_ok() && c.sound(buf))
    })
}
