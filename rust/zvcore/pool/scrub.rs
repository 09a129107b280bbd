// SPDX-License-Identifier: GPL-2.0
//! What a scrub reads back of the metadata: the newest checkpoint's chain
//! (its full checkpoint and the deltas after it, each block on each of its
//! copies), the superblock at the head of every log zone of every member,
//! and the journal blocks an assembly would replay over that chain (each
//! on the journal member and its mirror). The repair when a copy of a
//! chain or journal block is unreadable or unsound: a full checkpoint,
//! which writes the whole image again in the other set and covers the
//! whole journal, so that the damaged blocks are no longer what an
//! assembly reads. A damaged superblock copy is reported only: the others
//! (two per member) stand for it, and it is rewritten with its log zone.

use super::super::alloc::{DevState, ZoneInfo};
use super::super::format::checkpoint::{set_of, sound_block_generation};
use super::super::format::journal::decode_journal_block;
use super::super::format::layout::{
    checkpoint_block_addr, checkpoint_copy_addr, log_zone, superblock_addr,
};
use super::super::format::{Superblock, Uuid};
use super::super::geom::{DeviceGeometry, PoolGeometry};
use super::super::map::{MapExtent, NodeStore};
use super::{Pool, VolEntry};
use core::ops::{Deref, DerefMut};

/// The blocks of the newest checkpoint's chain: blocks `0..blocks` of set
/// `set`, written by the checkpoints of generations `base` (the full one)
/// to `newest` (its deltas: same set, generations two apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainExtent {
    pub set: u8,
    pub base: u64,
    pub newest: u64,
    pub blocks: u32,
}

impl ChainExtent {
    /// Pool addresses of block `index`'s copies (the second only with
    /// checkpoint copies).
    pub fn copies<S: Deref<Target = [DeviceGeometry]>>(
        &self,
        geo: &PoolGeometry<S>,
        index: u32,
    ) -> [Option<u64>; 2] {
        [
            checkpoint_block_addr(geo, self.set, index),
            checkpoint_copy_addr(geo, self.set, index),
        ]
    }

    /// Whether `block` is a sound block of one of the chain's checkpoints.
    pub fn sound(&self, block: &[u8]) -> bool {
        sound_block_generation(block)
            .is_some_and(|g| g >= self.base && g <= self.newest && set_of(g) == self.set)
    }
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S> {
    /// The newest checkpoint's chain, if a checkpoint was committed since
    /// assembly (which read the chain before it whole).
    pub fn scrub_chain(&self) -> Option<ChainExtent> {
        let c = &self.chain;
        (c.base != 0 && c.next_block > 0).then_some(ChainExtent {
            set: set_of(c.base),
            base: c.base,
            newest: self.ckpt_gen.max(c.base),
            blocks: c.next_block,
        })
    }

    /// A copy of a block of the chain was found unreadable or unsound: the
    /// next checkpoint is a full one (in the other set), and the next
    /// commit of records a checkpoint (the caller may write one at once).
    pub fn request_full_checkpoint(&mut self) {
        self.full_due = true;
        self.need_ckpt = true;
    }
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    /// The journal blocks an assembly would replay over the newest
    /// committed checkpoint: sequence numbers `from..to` (empty before the
    /// first log-zone switch of this assembly, whose checkpoint covers
    /// everything older). Ask with no commit in flight (the commit lock).
    pub fn scrub_journal_seqs(&self) -> (u64, u64) {
        match self.jlog {
            Some(_) => (self.ckpt_seq.saturating_add(1), self.jseq),
            None => (self.jseq, self.jseq),
        }
    }

    /// Pool addresses of journal block `seq` on the journal member and on
    /// its mirror that wrote it, if the block is in a log zone this
    /// assembly wrote: the
    /// current one (blocks `1..jwp`, the last one `jseq - 1`) or the one
    /// before it (ending at its `log_end`, the last one `log_max_seq`). Ask
    /// with no commit in flight.
    pub fn journal_block_addrs(&self, seq: u64) -> Option<[Option<u64>; 2]> {
        let cur = self.jlog?;
        if seq == 0 || seq >= self.jseq {
            return None;
        }
        let first = self.jseq.saturating_sub(self.jwp.saturating_sub(1));
        let (log, off) = if seq >= first {
            (cur, self.jwp.checked_sub(self.jseq - seq)?)
        } else {
            let prev = 1 - (cur & 1);
            let end = self.log_end.get(usize::from(prev)).copied().unwrap_or(0);
            let last = self
                .log_max_seq
                .get(usize::from(prev))
                .copied()
                .unwrap_or(0);
            // The block before the current zone's first is the previous
            // zone's last.
            if end == 0 || last.checked_add(1) != Some(first) || seq > last {
                return None;
            }
            (prev, end.checked_sub(1 + (last - seq))?)
        };
        if off == 0 {
            // Block 0 is the superblock.
            return None;
        }
        let geo = self.alloc.geom();
        let at = |d: Option<u16>| {
            d.and_then(|d| log_zone(geo, d, u32::from(log)))
                .and_then(|z| geo.zone_start(z))
                .map(|s| s.saturating_add(off))
        };
        // The members that wrote that log zone (the journal may have moved
        // since: a removal, a member lost).
        let (jdev, jmirror) = self.log_writers.get(usize::from(log & 1)).copied()?;
        Some([at(Some(jdev)), at(jmirror)])
    }

    /// What tells a sound journal block or superblock copy of this pool.
    pub fn meta_ids(&self) -> MetaIds {
        MetaIds {
            pool_uuid: self.sb.pool_uuid,
            sb_generation: self.sb.generation,
        }
    }

    /// The superblock copies of member `d`: the pool addresses of the heads
    /// of its two log zones, and the member's device UUID (which its copies
    /// carry). None for a member removed or out of range.
    pub fn superblock_copies(&self, d: u16) -> Option<([Option<u64>; 2], Uuid)> {
        let m = self.sb.member(d).filter(|m| !m.removed)?;
        let geo = self.alloc.geom();
        Some((
            [superblock_addr(geo, d, 0), superblock_addr(geo, d, 1)],
            m.dev_uuid,
        ))
    }
}

/// A pool's identity as its metadata blocks carry it (taken under the
/// engine lock, used without it: checking a block costs its checksum).
#[derive(Clone, Copy, Debug)]
pub struct MetaIds {
    pub pool_uuid: Uuid,
    pub sb_generation: u64,
}

impl MetaIds {
    /// Whether `block` is a sound copy of journal block `seq` of the pool.
    pub fn sound_journal_block(&self, block: &[u8], seq: u64) -> bool {
        decode_journal_block(block)
            .is_ok_and(|(h, _)| h.seq == seq && h.pool_uuid == self.pool_uuid)
    }

    /// Whether `block` is a sound superblock copy of the member whose
    /// device UUID is `dev_uuid`: this pool's and that member's, its
    /// checksum right, no newer than the pool's (an older generation is
    /// what a log zone keeps until it is written again).
    pub fn sound_superblock(&self, block: &[u8], dev_uuid: &Uuid) -> bool {
        Superblock::peek_ids(block).is_ok_and(|(p, dev, g)| {
            p == self.pool_uuid && dev == *dev_uuid && g >= 1 && g <= self.sb_generation
        })
    }
}

/// Where a search for the tables that map some pool blocks goes on: the
/// volume slot and the lba in its table.
pub type OwnerCursor = (usize, u64);

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    V: Deref<Target = [VolEntry]>,
    N: NodeStore,
{
    /// The volumes and snapshots that map pool blocks `addr..addr + len`
    /// (what a scrub names when it cannot read them): their extents, cut to
    /// those blocks (`vol` the volume id), into `out`, from `cursor` on
    /// (`(0, 0)` first), looking at `budget` mapped extents of the tables
    /// at most. Returns how many were found and where to go on (`None`:
    /// every table was looked at). The tables map volume blocks to pool
    /// blocks, not back, so the search costs one walk of every table: the
    /// caller takes it in steps, letting others have the engine lock in
    /// between (it runs only for blocks found unreadable).
    pub fn owners_of(
        &self,
        addr: u64,
        len: u64,
        cursor: OwnerCursor,
        mut budget: u32,
        out: &mut [MapExtent],
    ) -> (usize, Option<OwnerCursor>) {
        let end = addr.saturating_add(len);
        let (mut slot, mut lba) = cursor;
        let mut n = 0usize;
        while let Some(v) = self.vols.get(slot) {
            if let Some(t) = v.table {
                while let Some(e) = t.next_extent(&self.nodes, lba) {
                    if budget == 0 {
                        return (n, Some((slot, lba)));
                    }
                    let lo = e.addr.max(addr);
                    let hi = e.addr.saturating_add(e.len).min(end);
                    if lo < hi {
                        let Some(o) = out.get_mut(n) else {
                            // No room: this extent is the next call's first.
                            return (n, Some((slot, e.lba)));
                        };
                        *o = MapExtent {
                            vol: v.id,
                            lba: e.lba.saturating_add(lo - e.addr),
                            len: hi - lo,
                            addr: lo,
                        };
                        n += 1;
                    }
                    budget -= 1;
                    lba = e.lba.saturating_add(e.len.max(1));
                }
            }
            slot += 1;
            lba = 0;
        }
        (n, None)
    }
}
