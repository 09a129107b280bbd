// SPDX-License-Identifier: GPL-2.0
//! The pool engine's data path: planning and completing user writes (and
//! their failures), read plans, and discards.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, Extent, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::zone_history::ZoneHistory;
use super::super::format::{Record, Superblock};
use super::super::geom::{DeviceGeometry, Stream};
use super::super::map::NodeStore;
use super::mirror::user_vol;
use super::{
    inval, Commit, PlanExtent, Pool, ReadRun, VolEntry, WritePlan, LIFE_WEIGHT, MAX_PLAN_EXTENTS,
};

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
    // ---- writes ---------------------------------------------------------

    /// Plans a write of `nblocks` volume blocks from `lba` into `stream`.
    /// The plan may cover fewer blocks (at most [`MAX_PLAN_EXTENTS`]
    /// extents): write them, call [`Self::write_end`], plan the rest.
    /// Errors: `NoSpace` (pool full), `Busy` (record queue full: flush first;
    /// or zone limits), `Invalid`/`NotFound` for bad arguments.
    pub fn write_begin(
        &mut self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        stream: Stream,
    ) -> Result<WritePlan> {
        user_vol(vol)?;
        if self.copy_of(vol).is_some() {
            if self.volume(vol).is_some_and(|v| v.read_only()) {
                return Err(Error::ReadOnly);
            }
            return Err(Error::Invalid(
                "write: a mirrored volume has two copies to plan",
            ));
        }
        self.write_begin_one(vol, lba, nblocks, stream)
    }

    /// [`Self::write_begin`] of one table (a volume, or one copy of a
    /// mirrored volume).
    pub(super) fn write_begin_one(
        &mut self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        stream: Stream,
    ) -> Result<WritePlan> {
        self.live()?;
        if nblocks == 0 || matches!(stream, Stream::Gc | Stream::Meta) {
            return Err(Error::Invalid("write: length or stream"));
        }
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        // (A snapshot is read-only whatever the space.)
        if self.meta_full || self.meta_low {
            return Err(Error::NoSpace);
        }
        let size = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .map(|t| t.size())
            .unwrap_or(0);
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("write: range"))?;
        if end > size {
            return Err(Error::Invalid("write: beyond volume end"));
        }
        let rules = self.rules_on();
        if rules {
            self.space_admit(i, lba, nblocks)?;
        }
        if self.free_slots() < MAX_PLAN_EXTENTS {
            return Err(Error::Busy);
        }
        let stream = if self.separating() {
            self.lifetime_stream(i, lba)
        } else {
            stream
        };
        let mut plan = WritePlan {
            vol,
            lba,
            ..WritePlan::default()
        };
        let mut off = 0u64;
        let mut err = Ok(());
        // A placed volume's new blocks go to its members.
        let only = self
            .vols
            .get(i)
            .map_or(0, |v| self.placement_members(v.place));
        // A write that follows the volume's last one inside a 2 MiB range
        // goes on where that one went (`sequential`).
        if let Some(d) = self.seq.member_for(vol, lba) {
            self.alloc.set_next_on(d);
        }
        while off < nblocks && plan.nr < MAX_PLAN_EXTENTS {
            match self.take_placed(stream, nblocks - off, only, vol) {
                Ok(e) => {
                    if let Some(slot) = plan.ext.get_mut(plan.nr) {
                        *slot = PlanExtent {
                            zone: e.zone,
                            addr: e.addr,
                            len: e.len,
                            append: e.append,
                            off,
                        };
                    }
                    plan.nr = plan.nr.saturating_add(1);
                    off = off.saturating_add(e.len);
                }
                Err(e) => {
                    err = Err(e);
                    break;
                }
            }
        }
        // (Taken by the first allocation; never left for another one.)
        self.alloc.set_next_on(u16::MAX);
        if plan.nr == 0 {
            err?;
            return Err(Error::NoSpace);
        }
        plan.nblocks = off;
        let last = plan.nr.checked_sub(1).and_then(|k| plan.ext.get(k));
        if let Some(zg) = last.and_then(|e| self.alloc.geom().zone(e.zone)) {
            self.seq.note(vol, lba, lba.saturating_add(off), zg.dev);
        }
        self.reserved = self.reserved.saturating_add(plan.nr);
        if rules {
            plan.grow = self.pend(i, lba, off);
        }
        Ok(plan)
    }

    /// What an assembly of a pool without `INCOMPAT_ZONE_HISTORY` keeps
    /// of the placement history: nothing (zone ages, hot flags and the
    /// mean lifetime start again). For the GC simulator's runs with
    /// reassemblies (`tests/gcsim.rs`).
    #[doc(hidden)]
    pub fn forget_placement_history(&mut self) {
        self.alloc.forget_history();
        self.life_avg = 0;
        self.history_base = 0;
    }

    /// Applies one record of a checkpoint's placement history (assembly,
    /// `format::zone_history`). A full checkpoint lists every zone holding
    /// data: its first record, the clock, clears what an older checkpoint
    /// said. A delta (`delta`) lists only the zones written since the
    /// checkpoint before it, over which it is applied.
    pub(in super::super) fn apply_zone_history(
        &mut self,
        rec: ZoneHistory,
        delta: bool,
    ) -> Result<()> {
        match rec {
            ZoneHistory::Clock(c) => {
                if !delta {
                    self.alloc.forget_history();
                } else if c < self.alloc.clock() {
                    // Every zone the chain listed was written before it.
                    return Err(Error::Corrupt("zone history: a delta's clock goes back"));
                }
                self.alloc.restore_clock(c);
            }
            ZoneHistory::Lifetime(l) => self.life_avg = l,
            ZoneHistory::Zone { zone, seq, hot } => {
                self.alloc.restore_zone_history(zone, seq, hot)?
            }
        }
        Ok(())
    }

    /// The user stream of a write at `lba` of the volume in slot `slot`,
    /// by the age of the block it overwrites (SepBIT's idea: a block that
    /// replaces a short-lived block tends to be short-lived itself). The age
    /// is the allocator clock since the old block's zone was last written;
    /// new data (nothing overwritten) is taken as cold.
    fn lifetime_stream(&mut self, slot: usize, lba: u64) -> Stream {
        let old = self
            .vols
            .get(slot)
            .and_then(|v| v.table)
            .and_then(|t| t.lookup(&self.nodes, lba));
        let born = old
            .and_then(|a| self.alloc.geom().zone_of(a))
            .and_then(|z| self.alloc.zone(z))
            .map(|zi| zi.seq());
        let Some(born) = born else {
            return Stream::UserCold;
        };
        let age = self.alloc.clock().saturating_sub(born).min(1 << 40);
        // Mean over about the last LIFE_WEIGHT overwrites (the first one
        // sets it).
        self.life_avg = if self.life_avg == 0 {
            age.saturating_mul(LIFE_WEIGHT)
        } else {
            self.life_avg
                .saturating_sub(self.life_avg / LIFE_WEIGHT)
                .saturating_add(age)
        };
        // Hot: not older than twice the mean (measured in tests/gcsim.rs:
        // the mean itself sends too many short-lived blocks to the cold
        // stream, 4 times it nearly nothing).
        if age.saturating_mul(LIFE_WEIGHT) <= self.life_avg.saturating_mul(2) {
            Stream::UserHot
        } else {
            Stream::UserCold
        }
    }

    /// Takes space: zone append where configured and possible, else a
    /// regular allocation.
    /// [`Self::take`] on the members of `only` (0: any member): a placed
    /// volume's (`vol`) new blocks and copies. When those members have no
    /// room, anywhere (the volume is walked again later: `migrate`).
    pub(super) fn take_placed(
        &mut self,
        stream: Stream,
        n: u64,
        only: u64,
        vol: u32,
    ) -> Result<Extent> {
        // A copy of a mirrored volume goes to its side or nowhere: the two
        // copies of a block never share a member.
        if let Some(side) = self.mirror_side(vol) {
            if side == 0 {
                return Err(Error::NoSpace);
            }
            self.alloc.set_only(side);
            let r = self.take(stream, n);
            self.alloc.set_only(0);
            return r;
        }
        if only == 0 {
            return self.take(stream, n);
        }
        self.alloc.set_only(only);
        let r = self.take(stream, n);
        self.alloc.set_only(0);
        match r {
            Err(Error::NoSpace) => {
                self.placement_missed(vol);
                self.take(stream, n)
            }
            r => r,
        }
    }

    pub(super) fn take(&mut self, stream: Stream, n: u64) -> Result<Extent> {
        match self.take_in(stream, n) {
            Err(Error::Busy) => {}
            r => return r,
        }
        // Free zones exist only on members at their open/active limits:
        // borrow the open zone of another data stream rather than stall
        // (mixing lifetimes costs some GC efficiency, stalling costs the
        // write; the zone limits of small devices make it necessary).
        let mut err = Error::Busy;
        for other in [Stream::UserHot, Stream::UserCold, Stream::Gc] {
            if other == stream {
                continue;
            }
            match self.take_in(other, n) {
                Ok(e) => return Ok(e),
                Err(e) => err = e,
            }
        }
        Err(err)
    }

    fn take_in(&mut self, stream: Stream, n: u64) -> Result<Extent> {
        if self.cfg.use_append {
            match self.alloc.reserve_append(stream, n) {
                Ok((zone, len)) => {
                    let start = self
                        .alloc
                        .geom()
                        .zone_start(zone)
                        .ok_or(Error::Corrupt("zone"))?;
                    return Ok(Extent {
                        zone,
                        addr: start,
                        len,
                        append: true,
                    });
                }
                Err(Error::Unsupported(_)) | Err(Error::NoSpace) | Err(Error::Busy) => {}
                Err(e) => return Err(e),
            }
        }
        let mut e = self.alloc.alloc(stream, n)?;
        e.append = false;
        Ok(e)
    }

    /// The write of `plan` completed: `addrs[i]` is where extent `i` landed
    /// (`None`: that extent failed; its blocks keep their old mapping).
    /// Updates the block table, invalidates the old locations and queues the
    /// journal records. Returns the blocks mapped.
    pub fn write_end(&mut self, plan: &WritePlan, addrs: &[Option<u64>]) -> Result<u64> {
        self.write_end_tries(plan, addrs, 1)
    }

    /// [`Self::write_end`], each table update tried up to `tries` times
    /// when it runs out of nodes (a mirrored write: `mirror.rs`).
    pub(super) fn write_end_tries(
        &mut self,
        plan: &WritePlan,
        addrs: &[Option<u64>],
        tries: u32,
    ) -> Result<u64> {
        let track = self.rules_track(plan);
        let mut done = 0u64;
        let mut first_err = None;
        for (k, ext) in plan.extents().iter().enumerate() {
            let at = addrs.get(k).copied().flatten();
            match at {
                Some(a) => match self.map_extent(plan.vol, plan.lba + ext.off, ext, a, tries) {
                    Ok(()) => {
                        done = done.saturating_add(ext.len);
                        self.stats.user_blocks = self.stats.user_blocks.saturating_add(ext.len);
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                },
                None => {
                    self.extent_failed(ext.zone, ext.len);
                    self.unreserve(1);
                }
            }
        }
        self.unpend(plan, track);
        match first_err {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// A planned write failed entirely: nothing is mapped.
    pub fn write_failed(&mut self, plan: &WritePlan) {
        for ext in plan.extents() {
            self.extent_failed(ext.zone, ext.len);
            self.unreserve(1);
        }
        let track = self.rules_track(plan);
        self.unpend(plan, track);
    }

    /// A write into `zone` failed: the device's write pointer is now unknown
    /// (regular write) or behind the allocator's (append), so the zone is
    /// closed for writing: finished in the allocator now, on the device by
    /// the next [`Self::maintenance`].
    pub(super) fn extent_failed(&mut self, zone: u32, len: u64) {
        // Finished first: the zone stays counted active until its device
        // finish is issued, even once nothing is in flight in it.
        let finished = self.alloc.finish_deferred(zone);
        let _ = self.alloc.abort(zone, len);
        if finished.is_err() {
            return;
        }
        if self.zone_conv(zone)
            || self
                .finish_q
                .get(..self.nfinish)
                .unwrap_or(&[])
                .contains(&zone)
        {
            return;
        }
        match self.finish_q.get_mut(self.nfinish) {
            Some(s) => {
                *s = zone;
                self.nfinish = self.nfinish.saturating_add(1);
            }
            None => self.failed = true,
        }
    }

    fn map_extent(
        &mut self,
        vol: u32,
        lba: u64,
        ext: &PlanExtent,
        addr: u64,
        tries: u32,
    ) -> Result<()> {
        let ok_addr = if ext.append {
            self.alloc.geom().range_zone(addr, ext.len) == Some(ext.zone)
        } else {
            addr == ext.addr
        };
        let i = self.vol_index(vol);
        let (Ok(i), true) = (i, ok_addr) else {
            let _ = self.alloc.abort(ext.zone, ext.len);
            self.unreserve(1);
            return Err(if ok_addr {
                Error::NotFound
            } else {
                Error::Invalid("write: completion address")
            });
        };
        let Some(mut t) = self.vols.get(i).and_then(|v| v.table) else {
            return Err(Error::NotFound);
        };
        // Complete first: the old locations may be in the same zone, and the
        // new blocks must not count as in flight when they are invalidated.
        let c = if ext.append {
            self.alloc.complete_append(ext.zone, addr, ext.len)
        } else {
            self.alloc.complete_write(addr, ext.len)
        };
        if c.is_err() {
            self.failed = true;
        }
        let ep = self.cur_epoch;
        let mut left = tries.max(1);
        let r = loop {
            let (alloc, zepoch, failed) = (&mut self.alloc, &mut self.zepoch, &mut self.failed);
            let r = t.map_range_shared(
                &mut self.nodes,
                &mut self.refs,
                lba,
                ext.len,
                addr,
                |a, n| inval(alloc, zepoch, ep, failed, a, n),
            );
            left -= 1;
            // (A failed update changed no mapping: it is tried again on
            // the table as it left it.)
            if r.is_ok() || left == 0 {
                break r;
            }
        };
        // Stored even when the update failed: it may have copied shared
        // nodes on the way (a new root; the originals lost this table's
        // reference), and the old root would then be referenced once more
        // than counted — written in place as exclusive, into the snapshots
        // that still share it (found by the model test with allocation
        // failures; in the kernel, EUCLEAN after a retried write).
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        if let Err(e) = r {
            // Not mapped: the new blocks are garbage.
            inval(
                &mut self.alloc,
                &mut self.zepoch,
                ep,
                &mut self.failed,
                addr,
                ext.len,
            );
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(Record::MapExtent {
            vol,
            lba,
            len: ext.len as u32,
            addr,
        });
        Ok(())
    }

    // ---- reads and discards ---------------------------------------------------

    /// Resolves `nblocks` volume blocks from `lba` into runs (split at mapping
    /// boundaries) in `out`; returns how many runs were filled. If they cover
    /// fewer blocks than asked, call again for the rest.
    pub fn read_plan(
        &self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        out: &mut [ReadRun],
    ) -> Result<usize> {
        let v = self.volume(vol).ok_or(Error::NotFound)?;
        let t = v.table.ok_or(Error::NotFound)?;
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("read: range"))?;
        if end > t.size() {
            return Err(Error::Invalid("read: beyond volume end"));
        }
        let mut n = 0usize;
        let mut l = lba;
        for slot in out.iter_mut() {
            if l >= end {
                break;
            }
            let (addr, mut len) = t.lookup_run(&self.nodes, l, end.saturating_sub(l));
            if len == 0 {
                return Err(Error::Corrupt("read: empty run"));
            }
            // A run never crosses a zone (hence never a member) boundary:
            // consecutive pool addresses may lie on two devices.
            if let Some(a) = addr {
                let loc = self
                    .alloc
                    .geom()
                    .locate(a)
                    .ok_or(Error::Corrupt("read: address"))?;
                let size = self
                    .alloc
                    .geom()
                    .zone(loc.zone)
                    .map(|z| z.size)
                    .unwrap_or(1);
                len = len.min(size.saturating_sub(loc.offset)).max(1);
            }
            *slot = ReadRun { lba: l, len, addr };
            n = n.saturating_add(1);
            l = l.saturating_add(len);
        }
        Ok(n)
    }

    /// Discards (unmaps) `nblocks` volume blocks from `lba`
    /// ([`Error::ReadOnly`] on a snapshot).
    pub fn discard(&mut self, vol: u32, lba: u64, nblocks: u64) -> Result<()> {
        user_vol(vol)?;
        if let Some(c) = self.copy_of(vol) {
            // (A snapshot is refused as one, whatever the record queue.)
            self.live()?;
            if self.volume(vol).is_some_and(|v| v.read_only()) {
                return Err(Error::ReadOnly);
            }
            // Not while a checkpoint is written: its steps encode the two
            // tables at different times, so its image could hold one
            // copy's unmapping and not the other's (as for a write,
            // `write_end_copies`; found by the model test). `Busy`: again
            // once it ended.
            if matches!(self.commit, Commit::Checkpoint { .. }) {
                return Err(Error::Busy);
            }
            let n = nblocks.div_ceil(u64::from(u32::MAX)) as usize;
            if self.free_slots() < n.saturating_mul(2) {
                return Err(Error::Busy);
            }
            self.discard_one(c, lba, nblocks)?;
        }
        self.discard_one(vol, lba, nblocks)
    }

    /// [`Self::discard`] of one table.
    fn discard_one(&mut self, vol: u32, lba: u64, nblocks: u64) -> Result<()> {
        self.live()?;
        self.ckpt_retry |= self.meta_full || self.meta_low;
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let end = lba
            .checked_add(nblocks)
            .ok_or(Error::Invalid("discard: range"))?;
        if nblocks == 0 || end > t.size() {
            return Err(Error::Invalid("discard: range"));
        }
        let step = u64::from(u32::MAX);
        let nrec = nblocks.div_ceil(step) as usize;
        self.reserve(nrec)?;
        let held = self.held(i);
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed) = (&mut self.alloc, &mut self.zepoch, &mut self.failed);
        let r = t.unmap_range_shared(&mut self.nodes, &mut self.refs, lba, nblocks, |a, k| {
            inval(alloc, zepoch, ep, failed, a, k)
        });
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        self.retally(i, held);
        if let Err(e) = r {
            if e != Error::NoSpace {
                self.unreserve(nrec);
                self.failed = true;
                return Err(e);
            }
            // Out of nodes for a copy-on-write: the range is partly
            // unmapped (and its blocks maybe freed); journal all of it, so
            // that what is durable never maps a freed block.
        }
        let mut l = lba;
        while l < end {
            let n = end.saturating_sub(l).min(step);
            self.push_reserved(Record::Unmap {
                vol,
                lba: l,
                len: n as u32,
            });
            l = l.saturating_add(n);
        }
        r
    }
}
