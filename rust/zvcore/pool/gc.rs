// SPDX-License-Identifier: GPL-2.0
//! Garbage collection: victim choice, planning the relocation of a victim's
//! live blocks, remapping every table to the copies, and avoiding zones
//! that could not be read.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::{Record, Superblock};
use super::super::gc::{gc_urgency, pick_victim, urgent_level, Urgency, RELOCATION_STREAM};
use super::super::geom::{DeviceGeometry, Stream};
use super::super::map::{visit_distinct_from, MapExtent, NodeStore};
use super::{inval, slots, Pool, RelocItem, VolEntry, FANOUT_USIZE, GC_AVOID_BATCHES, MAX_GC_ITEM};

/// Block-table nodes (leaves, level-2 nodes) one [`Pool::gc_begin`] scans
/// at most for the victim's blocks: about 32,000 entries, well under a
/// millisecond natively, so that GC's planning never holds the engine lock
/// long whatever the tables' size.
pub const GC_SCAN_NODES: u32 = 64;

/// Where a scan of the block tables for a victim's blocks starts: table
/// slot, lba, and the level of the node to start at (2: the level-2 node
/// mapping the lba, its run entries then its leaves; 1: the leaf).
pub(super) type ScanCursor = (usize, u64, u8);

/// The scan from the start.
pub(super) const SCAN_START: ScanCursor = (0, 0, 2);

/// The first lba of the level-2 node that maps `lba`.
fn node_base(lba: u64) -> u64 {
    lba & !((FANOUT_USIZE * FANOUT_USIZE) as u64 - 1)
}

/// Whether an item of `planned` covers any block of `[lo, hi)`.
fn covered(planned: &[RelocItem], lo: u64, hi: u64) -> bool {
    planned
        .iter()
        .any(|it| lo < it.src.addr.saturating_add(it.src.len) && it.src.addr < hi)
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
        self.gc_more = false;
        self.live()?;
        if self.gc_busy {
            return Err(Error::Busy);
        }
        self.note_evacuation();
        // Evacuations and migrations move data only while GC is not
        // urgent: their copies take usable space, and freeing the zones of
        // an evacuated member gains none, so when usable space runs short
        // GC collects the usable members first (else their copies would
        // use up the GC reserve and nothing could be freed any more).
        let urgent = gc_urgency(
            self.alloc.usable_free_zones(),
            self.alloc.data_zones(),
            self.cfg.alloc.gc_reserve,
        ) == Urgency::Urgent;
        // What such a batch may take: the usable room above the urgent
        // level, so that it never eats into what GC needs to free zones.
        let room = self.move_room();
        // Copies a read could not get (a read error) first: written again
        // from the other copy, as a rebuild does.
        if !urgent && room > 0 && self.repair_due() {
            if let Ok(k) = self.repair_plan(out, max_blocks.min(room)) {
                if k > 0 {
                    return Ok(k);
                }
            }
        }
        if !urgent && room > 0 && self.migration().is_some_and(|m| !m.done) {
            // A migration that cannot place its copies now (its members
            // full, the record queue) leaves the batch to GC.
            if let Ok(k) = self.migrate_plan(out, max_blocks.min(room)) {
                if k > 0 {
                    return Ok(k);
                }
            }
        }
        let lost = self.alloc.lost();
        let excluded = self.alloc.fenced() | self.alloc.evacuating() | lost;
        let moving = !urgent && room > 0;
        if excluded != 0 {
            if let Some(v) = self.gc_victim {
                // A lost member's zones are never collected (their blocks
                // cannot be read); others' only while moving data.
                if self.zone_excluded(v, lost) || (!moving && self.zone_excluded(v, excluded)) {
                    self.gc_victim = None;
                }
            }
        }
        // The victim: the current one while it has live blocks, else the
        // best zone with live blocks (zones without any only need a reset,
        // done by `maintenance` once committed).
        let victim = loop {
            if let Some(v) = self.gc_victim {
                let live =
                    self.alloc
                        .zone(v)
                        .map_or(0, |zi| if zi.unreadable() { 0 } else { zi.valid() });
                if live > 0 {
                    break v;
                }
                self.gc_victim = None;
            }
            let a = &self.alloc;
            let avoid = self.gc_avoid.get(..self.gc_navoid).unwrap_or(&[]);
            // An evacuated member's zones are collected as such only
            // (below): collecting them frees no usable space.
            let off = |z: u32| excluded != 0 && self.zone_excluded(z, excluded);
            // An offline zone's blocks cannot be read.
            let skip = |z: u32| {
                a.zone(z)
                    .map(|zi| zi.valid() == 0 || zi.unreadable())
                    .unwrap_or(true)
                    || avoid.contains(&z)
                    || off(z)
            };
            // An evacuated member's zones go first, whatever their cost
            // (unless GC is urgent: then only zones that free usable space).
            let evac = if moving {
                self.evac_victim(avoid)
            } else {
                None
            };
            // Tiering: the fast members' zones while they run short (their
            // live blocks go to the slow members), unless GC is urgent.
            let tier = if urgent { None } else { self.tier_victim(skip) };
            // Placed members short of space: their zones (their volumes'
            // copies stay there).
            let placed = if urgent || tier.is_some() {
                None
            } else {
                self.placed_victim(skip)
            };
            let placed_miss = placed.is_none() && !urgent && self.placed_short() != 0;
            let pick = evac
                .or_else(|| self.retired_victim(avoid))
                .or(tier)
                .or(placed)
                .or_else(|| pick_victim(a, self.cfg.policy, skip));
            if placed_miss {
                self.placed_quiet();
            }
            match pick {
                Some(v) => {
                    self.gc_victim = Some(v);
                    self.gc_victim_cost = self.zone_cost_x1000(v);
                    self.gc_cursor = SCAN_START;
                    self.gc_wrapped = false;
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
        // An evacuated member's zone: its copies take usable space.
        let max_blocks = if self.zone_excluded(victim, excluded) {
            max_blocks.min(room.max(1))
        } else {
            max_blocks
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
        // the victim is only reset once it holds no valid block. A call
        // scans at most [`GC_SCAN_NODES`] nodes: when they hold none of the
        // victim's blocks it returns 0 with [`Self::gc_scan_more`] set, and
        // the next call goes on from there (the caller lets others take the
        // engine lock in between).
        let mut n = 0usize;
        let item_max = self.cfg.gc_item_max.clamp(1, MAX_GC_ITEM);
        let mut stopped = false;
        // The scan stops once the items cover what the batch may place
        // (an evacuation's batch may be a few blocks: scanning on for
        // items it cannot place held the engine lock for nothing).
        let mut want = 0u64;
        let mut budget = self.cfg.gc_scan_nodes.max(1);
        loop {
            let from = self.gc_cursor;
            let mut paused = None;
            {
                let vols = &self.vols;
                let stopped = &mut stopped;
                let want = &mut want;
                let budget = &mut budget;
                let paused_at = &mut paused;
                let cap = out.len();
                let out = &mut *out;
                let n = &mut n;
                // (The nodes wholly before the cursor are not even walked.)
                visit_distinct_from(
                    &mut self.nodes,
                    slots::used_end(vols),
                    &|i| vols.get(i).and_then(|v| v.table),
                    (from.0, from.1),
                    &mut |st, v| {
                        // Mappings are held by leaves and by the run entries
                        // of level-2 nodes.
                        if v.level > 2 {
                            return *n < cap;
                        }
                        // Before the cursor (the walk does not reach most
                        // of those nodes): the level-2 nodes of earlier
                        // lbas, that of the cursor's lba too when the
                        // cursor is at a leaf (its runs come first in the
                        // walk, so they were scanned), and earlier leaves.
                        if v.table == from.0 {
                            let before = if v.level == 2 {
                                v.base < node_base(from.1)
                                    || (v.base == node_base(from.1) && from.2 < 2)
                            } else {
                                v.base < from.1 & !(FANOUT_USIZE as u64 - 1)
                            };
                            if before {
                                return true;
                            }
                        }
                        if *budget == 0 {
                            // This node is the next call's first.
                            *paused_at = Some((v.table, v.base, v.level));
                            return false;
                        }
                        *budget -= 1;
                        // The node's runs (one lookup per few runs, not one per
                        // entry), cut to the victim's range: most runs miss it.
                        let _ = v.runs(st, &mut |_, lba, a, cnt| {
                            let lo = a.max(start);
                            let hi = a.saturating_add(cnt).min(end);
                            let mut x = lo;
                            while x < hi {
                                // Blocks planned already (a block several
                                // leaves map) are skipped.
                                let planned = out.get(..*n).unwrap_or(&[]);
                                if covered(planned, x, x + 1) {
                                    x += 1;
                                    continue;
                                }
                                let mut len = 1u64;
                                while x + len < hi
                                    && len < item_max
                                    && !covered(planned, x + len, x + len + 1)
                                {
                                    len += 1;
                                }
                                if let Some(slot) = out.get_mut(*n) {
                                    slot.src = MapExtent {
                                        vol: v.vol,
                                        lba: lba.saturating_add(x - a),
                                        len,
                                        addr: x,
                                    };
                                    slot.read = x;
                                    *n += 1;
                                    *want = want.saturating_add(len);
                                }
                                x += len;
                                if *n >= cap || *want >= max_blocks {
                                    *stopped = true;
                                    // Ends the walk of this node's runs.
                                    return Err(Error::NoSpace);
                                }
                            }
                            Ok(())
                        });
                        !*stopped
                    },
                );
            }
            if n > 0 {
                self.gc_wrapped = false;
                break;
            }
            if let Some(at) = paused {
                self.gc_cursor = at;
                self.gc_more = true;
                return Ok(0);
            }
            // The scan reached the end with nothing: once more from the
            // start (blocks left behind the cursor), then the victim holds
            // no mapped block.
            if self.gc_wrapped || self.gc_cursor == SCAN_START {
                self.gc_wrapped = false;
                self.gc_cursor = SCAN_START;
                break;
            }
            self.gc_wrapped = true;
            self.gc_cursor = SCAN_START;
        }
        // 2. Their new place: with placement by lifetime, the survivors of
        // a hot zone in the GC stream, those of any other zone (survivors
        // of GC already, or cold user data) with the cold user data: three
        // age groups, as MiDAS / SepBIT separate them.
        let copy_stream = if self.separating() && !zi.hot() {
            Stream::UserCold
        } else {
            RELOCATION_STREAM
        };
        let (k, err) = self.place_copies(out, n, max_blocks, copy_stream, true);
        if k == 0 {
            err?;
        }
        if k > 0 {
            self.gc_busy = true;
            // The next scan starts at the level-2 node of the last item
            // planned (it may have been cut at a zone end, and everything
            // after it is still to do; the node's run entries are scanned
            // before its leaves), or from the start once the scan got
            // through.
            self.gc_cursor = match out.get(k - 1) {
                Some(it) if stopped || k < n => {
                    let slot = slots::find(&self.vols, it.src.vol).unwrap_or(0);
                    // From the item's leaf when a leaf holds it (its
                    // level-2 node's run entries come before its leaves in
                    // the walk, so all of them were planned), else from its
                    // level-2 node.
                    let in_leaf = self
                        .vols
                        .get(slot)
                        .and_then(|v| v.table)
                        .is_some_and(|t| t.in_leaf(&self.nodes, it.src.lba));
                    if in_leaf {
                        (slot, it.src.lba & !(FANOUT_USIZE as u64 - 1), 1)
                    } else {
                        (slot, node_base(it.src.lba), 2)
                    }
                }
                _ => SCAN_START,
            };
        }
        Ok(k)
    }

    /// Blocks an evacuation or migration batch may place now: the usable
    /// free zones above GC's urgent level, at the smallest zone capacity.
    fn move_room(&self) -> u64 {
        let a = &self.alloc;
        let above = a
            .usable_free_zones()
            .saturating_sub(urgent_level(a.data_zones(), self.cfg.alloc.gc_reserve))
            .saturating_sub(1);
        let cap = a
            .geom()
            .devices()
            .iter()
            .map(|g| g.zone_cap_blocks)
            .min()
            .unwrap_or(0);
        u64::from(above).saturating_mul(cap)
    }

    /// Whether zone `z` is on a member of `members` (bit per member).
    pub(super) fn zone_excluded(&self, z: u32, members: u64) -> bool {
        self.alloc
            .geom()
            .zone_dev(z)
            .is_some_and(|(d, _)| members & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0)
    }

    /// Step 2 of a relocation batch (GC, a migration): places the copies of
    /// `out[..n]` (their sources set) in `stream`, at most `max_blocks` in
    /// all, reserving the journal record slots [`Self::gc_end`] releases.
    /// Returns the items placed (a shorter allocation at a zone end cuts an
    /// item's source to it) and why placing stopped early, if it did.
    pub(super) fn place_copies(
        &mut self,
        out: &mut [RelocItem],
        n: usize,
        max_blocks: u64,
        stream: Stream,
        placed: bool,
    ) -> (usize, Result<()>) {
        self.alloc.set_copying(true);
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
            // `placed`: each copy goes where its volume is placed (a
            // migration batch restricts the whole batch itself).
            let only = if placed {
                self.placement_of(src.vol)
            } else {
                0
            };
            let dst = match self.take_placed(stream, want, only, src.vol) {
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
            // Exactly what `gc_end` releases for this item (its slots
            // follow `dst.len`, which a zone end may have cut below
            // `want`): reserving `need` leaked record slots until GC got
            // `Busy` for good (found by tests/gcsim.rs at 90 % full).
            self.reserved = self
                .reserved
                .saturating_add((dst.len as usize).div_ceil(2) + 1);
            planned = planned.saturating_add(dst.len.min(want));
            k += 1;
        }
        self.alloc.set_copying(false);
        (k, err)
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
        // The tables that may map a relocated block: every table when
        // blocks are shared (snapshots, clones), else only the volume the
        // item came from. (Walking every slot of the volume table for
        // every item cost more than the relocation itself.)
        let sharing = self.sharing();
        let used = slots::used_end(&self.vols);
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
            let tables = if sharing {
                0..used
            } else {
                slots::find(&self.vols, src.vol).map_or(0..0, |i| i..i.saturating_add(1))
            };
            for vi in tables {
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
                // Out of nodes to split a run entry: those blocks were
                // skipped (reported), the batch goes on.
                if r.is_err() && r != Err(Error::NoSpace) {
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
        if core::mem::take(&mut self.repair_batch) {
            self.stats.copy_repairs = self.stats.copy_repairs.saturating_add(moved_total);
        }
        if core::mem::take(&mut self.mig_batch) {
            if let Some(s) = self.mig.as_mut() {
                s.m.moved_blocks = s.m.moved_blocks.saturating_add(moved_total);
            }
        }
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
        self.gc_cursor = SCAN_START;
        self.gc_wrapped = false;
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

    /// The last [`Self::gc_begin`] planned nothing because its scan for the
    /// victim's blocks stopped at [`GC_SCAN_NODES`] nodes: call it again
    /// (after letting others take the engine lock).
    pub fn gc_scan_more(&self) -> bool {
        self.gc_more
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
