// SPDX-License-Identifier: GPL-2.0
//! Repair of a mirrored volume's copy that could not be read
//! ([`Pool::repair`]): self-healing, as ZFS and md RAID1 do it.
//!
//! When a read of one copy fails (a bio error, an unreadable sector) and
//! the other copy gives the data, the caller asks for a repair of the
//! range. Its blocks are then relocated as a GC batch whose reads come
//! from the other copy (`RelocItem::read`, as a rebuild's), onto the
//! table's own side, and [`Pool::gc_end`] remaps what is still mapped to
//! the unreadable place (a user write that happened meanwhile wins). The
//! queue holds a few ranges; a repair asked for while it is full is
//! dropped (the next failed read of the range asks again). Not kept on
//! disk: after a crash the next failed read asks again.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::Result;
use super::super::format::{Record, Superblock};
use super::super::geom::{DeviceGeometry, Stream};
use super::super::map::{MapExtent, NodeStore};
use super::{Pool, RelocItem, VolEntry, MAX_GC_ITEM};

/// Ranges a pool queues for repair at most (the queue lives in the
/// engine, whose frames the kernel's stack limit counts).
pub const REPAIR_QUEUE: usize = 4;

/// Blocks of one queued range at most (a longer range is queued cut).
const REPAIR_MAX_BLOCKS: u64 = 1 << 20;

/// Copies of a repair go with the volume's cold data (as a migration's).
const REPAIR_STREAM: Stream = Stream::UserCold;

/// A range of a mirrored table to write again from the other copy
/// (`len` 0: a free queue entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repair {
    /// The table (a mirrored volume or its companion).
    pub vol: u32,
    /// Blocks left from `lba`.
    pub len: u32,
    /// Its first block not repaired yet.
    pub lba: u64,
}

impl Repair {
    fn end(&self) -> u64 {
        self.lba.saturating_add(u64::from(self.len))
    }
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
    /// Blocks `lba..lba + len` of table `vol` (a mirrored volume or its
    /// companion, `copy_id`) could not be read where the table maps them,
    /// and the other copy gave them: GC's next batches write them again
    /// from the other copy, onto the table's side (kick GC). Returns
    /// whether the range was queued: false for a table that is not
    /// mirrored, an empty range, or a full queue (a range queued for the
    /// table that it overlaps or touches takes it in).
    pub fn repair(&mut self, vol: u32, lba: u64, len: u64) -> bool {
        if len == 0 || self.partner_of(vol).is_none() {
            return false;
        }
        let len = len.min(REPAIR_MAX_BLOCKS);
        let end = lba.saturating_add(len);
        // A range that overlaps or touches one queued for the table joins
        // it (a sequential read's failed runs make one range).
        for r in self
            .repairs
            .iter_mut()
            .filter(|r| r.len > 0 && r.vol == vol)
        {
            if lba <= r.end() && r.lba <= end {
                let (from, to) = (r.lba.min(lba), r.end().max(end));
                if to - from <= REPAIR_MAX_BLOCKS {
                    r.lba = from;
                    r.len = u32::try_from(to - from).unwrap_or(u32::MAX);
                    return true;
                }
            }
        }
        match self.repairs.iter_mut().find(|r| r.len == 0) {
            Some(slot) => {
                *slot = Repair {
                    vol,
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                    lba,
                };
                true
            }
            None => false,
        }
    }

    /// Whether a repair is queued ([`Self::repair`]).
    pub fn repair_due(&self) -> bool {
        self.repairs.iter().any(|r| r.len > 0)
    }

    /// A repair batch ([`Self::gc_begin_limited`] when GC is not urgent):
    /// the next extents of the first queued range that the table still
    /// maps and whose other copy is mapped and readable, read from that
    /// copy, placed on the table's side. Ranges with nothing left to do
    /// leave the queue. `Ok(0)` when nothing could be planned.
    pub(super) fn repair_plan(&mut self, out: &mut [RelocItem], max_blocks: u64) -> Result<usize> {
        let item_max = self.cfg.gc_item_max.clamp(1, MAX_GC_ITEM);
        for i in 0..REPAIR_QUEUE {
            let Some(mut r) = self.repairs.get(i).copied().filter(|r| r.len > 0) else {
                continue;
            };
            let end = r.end();
            let side = self.mirror_side(r.vol).unwrap_or(0);
            let table = self
                .vol_index(r.vol)
                .ok()
                .and_then(|k| self.vols.get(k)?.table);
            let Some(table) = table.filter(|_| side != 0) else {
                // Deleted meanwhile, or no side to write to.
                self.unqueue_repair(i, end, end);
                continue;
            };
            let start = r.lba;
            let mut n = 0usize;
            let mut want = 0u64;
            while r.lba < end && n < out.len() && want < max_blocks {
                let (addr, run) = table.lookup_run(&self.nodes, r.lba, end - r.lba);
                let run = run.max(1);
                let Some(a) = addr else {
                    // Unmapped (discarded or overwritten meanwhile).
                    r.lba = r.lba.saturating_add(run);
                    continue;
                };
                let g = self.alloc.geom();
                let zend = g
                    .zone_of(a)
                    .and_then(|z| Some(g.zone_start(z)?.saturating_add(g.zone_cap(z)?)))
                    .unwrap_or(a.saturating_add(1));
                let len = run
                    .min(zend.saturating_sub(a).max(1))
                    .min(item_max)
                    .min(max_blocks.saturating_sub(want));
                // The other copy, readable and off this side (else there
                // is nothing to repair from now).
                match self.rebuild_source(r.vol, r.lba, len, side) {
                    Some((read, m)) => {
                        if let Some(slot) = out.get_mut(n) {
                            let len = len.min(m);
                            slot.src = MapExtent {
                                vol: r.vol,
                                lba: r.lba,
                                len,
                                addr: a,
                            };
                            slot.read = read;
                            n += 1;
                            want = want.saturating_add(len);
                            r.lba = r.lba.saturating_add(len);
                        }
                    }
                    None => r.lba = r.lba.saturating_add(len),
                }
            }
            if n == 0 {
                // Nothing left that can be repaired (or no room now).
                self.unqueue_repair(i, r.lba, end);
                continue;
            }
            self.alloc.set_only(side);
            let (k, err) = self.place_copies(out, n, max_blocks, REPAIR_STREAM, false);
            self.alloc.set_only(0);
            if k == 0 {
                // Nothing placed: the range stays as it was.
                err?;
                return Ok(0);
            }
            // What was placed is repaired by this batch; the rest (a copy
            // cut at a zone end, items not placed) by the next.
            r.lba = out
                .get(k.saturating_sub(1))
                .map_or(start, |last| last.src.lba.saturating_add(last.src.len));
            self.unqueue_repair(i, r.lba, end);
            self.gc_busy = true;
            self.repair_batch = true;
            return Ok(k);
        }
        Ok(0)
    }

    /// Sets queue entry `i` to what is left of its range: `lba..end`
    /// (empty: done).
    fn unqueue_repair(&mut self, i: usize, lba: u64, end: u64) {
        if let Some(slot) = self.repairs.get_mut(i) {
            slot.lba = lba;
            slot.len = u32::try_from(end.saturating_sub(lba)).unwrap_or(0);
        }
    }
}
