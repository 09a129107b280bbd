// SPDX-License-Identifier: GPL-2.0
//! Mirrored volumes (issue 19, first part: the engine): every block of a
//! mirrored volume has two copies on two disjoint sets of members, so that
//! losing any one member leaves a copy.
//!
//! **Representation.** A mirrored volume `id` (flag
//! [`VOL_FLAG_MIRRORED`]) has a hidden *companion* volume
//! [`copy_id`]`(id)` (flag [`VOL_FLAG_COPY`]) of the same size whose block
//! table maps the second copies. The companion is an ordinary volume to
//! everything that handles tables (journal records, full and delta
//! checkpoints, GC's relocation, scrub, sharing, migration walks), so each
//! of those mechanisms keeps its one implementation. Volume operations on
//! a mirrored volume apply to its companion too, in the same call and the
//! same commit: a snapshot or clone of a mirrored volume is a mirrored
//! volume whose companion is the snapshot or clone of the companion.
//!
//! **Sides.** At creation the usable members are split into two disjoint
//! sets of about equal capacity ([`split_sides`]); the volume is placed on
//! one ([`Placement::Members`]), its companion on the other, with the
//! placement policy records the pool already keeps. Unlike other placed
//! volumes, a mirrored volume's placement is strict: when its side has no
//! room the write (or GC's copy) gets `NoSpace` rather than going
//! elsewhere, so the two copies of a block never share a member. Members
//! added later belong to neither side of existing mirrored volumes.
//!
//! **Writes.** [`Pool::write_begin_copies`] plans both copies of the same
//! volume range; [`Pool::write_end_copies`] maps them together when both
//! landed, and neither when any extent failed (the landed blocks become
//! garbage), so the two tables always hold the same data and a crash needs
//! no resynchronisation: the journal records of both are queued in one
//! call, hence in one commit.
//!
//! **Degraded.** When a side has no member left (lost, removed), its
//! copies go to the other side: writes go on with two copies on fewer
//! members. The volume is placed as before, so the placement walk that
//! every assembly starts moves them back once the side is there again.
//!
//! Not built yet: rebuilding a side lost for good onto a new member (the
//! walk would read the lost copies from the other side).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::journal::{VOL_FLAG_COPY, VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use super::super::format::policy::{Placement, Policy};
use super::super::format::{Record, Superblock, INCOMPAT_MIRROR};
use super::super::geom::{DeviceGeometry, Stream};
use super::super::map::{NodeStore, FANOUT};
use super::{inval, slots, Commit, Pool, VolEntry, WritePlan};

/// Times a mirrored write's table update is tried when it runs out of
/// nodes ([`Pool::write_end_copies`]): memory that failed once is usually
/// there the next time (the model test fails one allocation in five).
const MAP_TRIES: u32 = 64;

/// Bit of a volume id that marks a companion (the ids users give are
/// below it).
pub const COPY_ID_BIT: u32 = 1 << 31;

/// The id of the companion of mirrored volume `id` (`None` for an id that
/// is itself a companion's).
pub const fn copy_id(id: u32) -> Option<u32> {
    if id & COPY_ID_BIT != 0 {
        None
    } else {
        Some(id | COPY_ID_BIT)
    }
}

/// `Invalid` for the id of a companion: users and the kernel name only
/// the volumes they made.
pub(super) const fn user_vol(id: u32) -> Result<()> {
    if id & COPY_ID_BIT != 0 {
        Err(Error::Invalid("volume id"))
    } else {
        Ok(())
    }
}

/// Splits the members of `usable` (bit per member) into two disjoint,
/// nonempty sets of about equal capacity: the members in decreasing order
/// of `cap(d)`, each to the side with less so far (ties to the first).
/// `None` with fewer than two members.
pub fn split_sides(usable: u64, cap: impl Fn(u16) -> u64) -> Option<(u64, u64)> {
    let mut order = [0u16; 64];
    let mut n = 0usize;
    for d in 0..64u16 {
        if usable & (1u64 << d) != 0 {
            if let Some(s) = order.get_mut(n) {
                *s = d;
            }
            n += 1;
        }
    }
    if n < 2 {
        return None;
    }
    let order = order.get_mut(..n)?;
    // Largest first; equal capacities in member order.
    order.sort_unstable_by(|a, b| cap(*b).cmp(&cap(*a)).then(a.cmp(b)));
    let (mut a, mut b, mut ca, mut cb) = (0u64, 0u64, 0u64, 0u64);
    for &d in order.iter() {
        if ca <= cb {
            a |= 1u64 << d;
            ca = ca.saturating_add(cap(d));
        } else {
            b |= 1u64 << d;
            cb = cb.saturating_add(cap(d));
        }
    }
    Some((a, b))
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
    /// The companion of volume `vol` if it is mirrored.
    pub fn copy_of(&self, vol: u32) -> Option<u32> {
        let v = self.volume(vol)?;
        if v.flags & VOL_FLAG_MIRRORED == 0 {
            return None;
        }
        copy_id(vol)
    }

    /// The slot of the companion of the volume in slot `i`, if that volume
    /// is mirrored (`NotFound`: mirrored without a companion, which the
    /// checks of an assembly refuse).
    pub(super) fn companion_slot(&self, i: usize) -> Result<Option<usize>> {
        let Some(v) = self.vols.get(i) else {
            return Err(Error::NotFound);
        };
        if v.flags & VOL_FLAG_MIRRORED == 0 {
            return Ok(None);
        }
        let c = copy_id(v.id).ok_or(Error::Corrupt("mirrored companion"))?;
        slots::find(&self.vols, c)
            .map(Some)
            .ok_or(Error::Corrupt("mirrored volume without its companion"))
    }

    /// The members a copy of volume `vol` may go to if it is mirrored or a
    /// companion: its side, less the members that take no blocks now.
    /// When none of its side is left (lost, removed, evacuated): the
    /// members of neither side if there are (a member added since, e.g.
    /// the one that replaces a removed member), else the other side's (a
    /// degraded write: both copies there, until the placement walk of an
    /// assembly with the side back moves this one home). 0: no member at
    /// all. `None` for other volumes.
    pub(super) fn mirror_side(&self, vol: u32) -> Option<u64> {
        let v = self.volume(vol)?;
        if v.flags & (VOL_FLAG_MIRRORED | VOL_FLAG_COPY) == 0 {
            return None;
        }
        let place = |v: &VolEntry| match v.place {
            Placement::Members(m) => m,
            _ => 0,
        };
        let m = place(v);
        let usable = self.alloc.usable_members();
        if m & usable != 0 {
            return Some(m & usable);
        }
        // The other copy's volume: the companion's, or the volume's.
        let other = self
            .partner_of(vol)
            .and_then(|p| self.volume(p))
            .map_or(0, place);
        let apart = usable & !other;
        Some(if apart != 0 { apart } else { usable })
    }

    /// The table of the other copy of table `vol`: a mirrored volume's
    /// companion, a companion's volume; `None` for other volumes.
    pub(super) fn partner_of(&self, vol: u32) -> Option<u32> {
        let v = self.volume(vol)?;
        if v.flags & VOL_FLAG_COPY != 0 {
            Some(vol & !COPY_ID_BIT)
        } else if v.flags & VOL_FLAG_MIRRORED != 0 {
            copy_id(vol)
        } else {
            None
        }
    }

    /// Where blocks `lba..lba + len` of table `vol`, which lie on a lost
    /// member (or cannot be read: `repair.rs`), can be read to be rebuilt
    /// on the members of `target`: the
    /// other copy's address of `lba` and how many blocks from there are
    /// consecutive in one zone (at most `len`). `None` (not rebuilt now)
    /// for a volume that is not mirrored, another copy that is unmapped,
    /// lost too or on a member of `target`, and a `target` that shares a
    /// member with the other copy's side (the two copies would not be
    /// apart: the walk after a member is added, or the side is back, does
    /// it).
    pub(super) fn rebuild_source(
        &self,
        vol: u32,
        lba: u64,
        len: u64,
        target: u64,
    ) -> Option<(u64, u64)> {
        let p = self.volume(self.partner_of(vol)?)?;
        let side = match p.place {
            Placement::Members(m) => m,
            _ => 0,
        };
        if target == 0 || target & side != 0 {
            return None;
        }
        let (addr, n) = p.table?.lookup_run(&self.nodes, lba, len);
        let addr = addr?;
        let g = self.alloc.geom();
        let dev = 1u64
            .checked_shl(u32::from(g.locate(addr)?.dev))
            .unwrap_or(0);
        if (self.alloc.lost() | target) & dev != 0 {
            return None;
        }
        let z = g.zone_of(addr)?;
        let zend = g.zone_start(z)?.saturating_add(g.zone_cap(z)?);
        Some((addr, n.min(zend.saturating_sub(addr)))).filter(|(_, n)| *n > 0)
    }

    /// Walks every mirrored volume and companion again (the placement
    /// walk, `migrate.rs`): after a member was lost or added, the copies
    /// on lost members are rebuilt from the other copies onto their side's
    /// members left, or onto members of neither side (a member added).
    pub(super) fn rewalk_mirrored(&mut self) {
        for v in self.vols.iter_mut() {
            if v.table.is_some() && v.flags & (VOL_FLAG_MIRRORED | VOL_FLAG_COPY) != 0 {
                v.place_walk = v.place != Placement::Any;
            }
        }
        self.next_walk();
    }

    /// Whether volume `vol` (mirrored) has both sides: each copy of a
    /// write goes to its own side.
    pub fn mirror_whole(&self, vol: u32) -> bool {
        let usable = self.alloc.usable_members();
        let side = |v: u32| match self.volume(v).map(|v| v.place) {
            Some(Placement::Members(m)) => m & usable != 0,
            _ => false,
        };
        copy_id(vol).is_some_and(|c| side(vol) && side(c))
    }

    /// Sets [`INCOMPAT_MIRROR`] in the superblock (once), as
    /// `enable_placement` does for its records.
    fn enable_mirror(&mut self) {
        if self.sb.incompat & INCOMPAT_MIRROR == 0 {
            self.sb.incompat |= INCOMPAT_MIRROR;
            self.sb.generation = self.sb.generation.saturating_add(1);
            self.sb_dirty = true;
        }
    }

    /// Creates mirrored volume `id` and its companion, placed on the two
    /// sides ([`split_sides`]). `Unsupported` unless the engine was
    /// configured for mirrored volumes; `Invalid` with fewer than two
    /// usable members; `Busy` when the record queue cannot take the four
    /// records; `NoSpace` without two free volume slots.
    pub(super) fn vol_create_mirrored(&mut self, id: u32, name: &[u8], size: u64) -> Result<()> {
        if !self.cfg.mirrored_volumes {
            return Err(Error::Unsupported("mirrored volumes"));
        }
        let cid = copy_id(id).ok_or(Error::Invalid("volume id"))?;
        if self.vol_index(id).is_ok() || self.vol_index(cid).is_ok() {
            return Err(Error::Busy);
        }
        let geom = self.alloc.geom();
        let (a, b) = split_sides(self.alloc.usable_members(), |d| {
            geom.device(d).map_or(0, |g| {
                u64::from(g.nr_data_zones()).saturating_mul(g.zone_cap_blocks)
            })
        })
        .ok_or(Error::Invalid("a mirrored volume needs two members"))?;
        if self.free_slots() < 4 {
            return Err(Error::Busy);
        }
        if self.vols.iter().filter(|v| v.table.is_none()).count() < 2 {
            return Err(Error::NoSpace);
        }
        self.enable_mirror();
        // The companion first (`mirror_safe_prefix`).
        self.vol_create_one(cid, name, size, VOL_FLAG_COPY)?;
        if let Err(e) = self.vol_create_one(id, name, size, VOL_FLAG_MIRRORED) {
            // Nothing is journalled yet but the first create: undo it.
            self.failed |= self.vol_delete_one(cid).is_err();
            return Err(e);
        }
        self.place_pair(id, cid, Placement::Members(a), Placement::Members(b))
    }

    /// Places volume `id` and its companion `cid` (records and state).
    fn place_pair(&mut self, id: u32, cid: u32, a: Placement, b: Placement) -> Result<()> {
        for (vol, place) in [(id, a), (cid, b)] {
            self.journal_policy(Policy::Placement { vol, place })?;
            let i = self.vol_index(vol)?;
            if let Some(v) = self.vols.get_mut(i) {
                v.place = place;
                v.place_walk = false;
            }
        }
        self.refresh_placed();
        Ok(())
    }

    /// The snapshot or clone `new_id` of the volume in slot `i` was made:
    /// if that volume is mirrored, its companion gets the same, and the
    /// new pair keeps its sides. Called with the new volume's record
    /// queued; `Busy` before anything was made when the queue cannot take
    /// the three records.
    pub(super) fn share_companion(
        &mut self,
        i: usize,
        new_id: u32,
        name: &[u8],
        flags: u32,
    ) -> Result<()> {
        let Some(ci) = self.companion_slot(i)? else {
            return Ok(());
        };
        let (src, csrc) = match (self.vols.get(i), self.vols.get(ci)) {
            (Some(v), Some(c)) => (*v, *c),
            _ => return Err(Error::NotFound),
        };
        let ncid = copy_id(new_id).ok_or(Error::Invalid("volume id"))?;
        self.share_raw(ci, ncid, name, (flags & VOL_FLAG_READONLY) | VOL_FLAG_COPY)?;
        self.place_pair(new_id, ncid, src.place, csrc.place)
    }

    /// Whether an operation on the volume in slot `i` needs `n` more
    /// record slots for its companion, and has them (`Busy` if not).
    pub(super) fn companion_room(&self, i: usize, n: usize) -> Result<()> {
        if self.companion_slot(i)?.is_some() && self.free_slots() < n.saturating_add(1) {
            return Err(Error::Busy);
        }
        Ok(())
    }

    /// Whether journal record `r` belongs to a mirrored volume's
    /// operation (its volume, or its companion: the id's bit).
    fn mirror_record(&self, r: &Record) -> bool {
        let vol = match (r, r.volumes()) {
            (Record::Policy(Policy::Placement { vol, .. }), _) => *vol,
            (_, (Some(vol), _)) => vol,
            _ => return false,
        };
        vol & COPY_ID_BIT != 0 || self.copy_of(vol).is_some()
    }

    /// How many of the first `nrec` queued records a commit of only part
    /// of the queue may take: none of a mirrored volume's. Its operations
    /// queue their records together (the companion's first, which the
    /// id's bit marks even once the volume is gone), and a commit cut
    /// among them would leave the two copies different after a crash (a
    /// write mapped in one table only; a volume without its companion).
    /// They go with a commit of the whole queue, or a checkpoint. O(nrec).
    pub(super) fn mirror_safe_prefix(&self, nrec: usize) -> usize {
        if nrec >= self.npend {
            return nrec;
        }
        let queued = self.recs.get(..nrec).unwrap_or(&[]);
        queued
            .iter()
            .position(|r| self.mirror_record(r))
            .unwrap_or(nrec)
    }

    // ---- writes ---------------------------------------------------------

    /// Plans a write of both copies of `nblocks` blocks of mirrored volume
    /// `vol` from `lba`: the first plan for the volume, the second for its
    /// companion, covering the same range (which may be shorter than
    /// asked: plan the rest afterwards). Write both, then call
    /// [`Self::write_end_copies`] (or [`Self::write_failed_copies`] if
    /// nothing was submitted). `Invalid` for a volume that is not
    /// mirrored; `NoSpace` when either side is full; otherwise as
    /// [`Self::write_begin`].
    pub fn write_begin_copies(
        &mut self,
        vol: u32,
        lba: u64,
        nblocks: u64,
        stream: Stream,
    ) -> Result<(WritePlan, WritePlan)> {
        let cid = self
            .copy_of(vol)
            .ok_or(Error::Invalid("write: not a mirrored volume"))?;
        // (A side with no member left: both copies on the other side,
        // `mirror_side`.)
        // Two tries: a second copy split over more zones than the first
        // (both plans hold at most `MAX_PLAN_EXTENTS` extents) may cover
        // less; both are then dropped and planned again in new zones.
        for _ in 0..2 {
            let p = self.write_begin_one(vol, lba, nblocks, stream)?;
            let c = match self.write_begin_one(cid, lba, p.nblocks, stream) {
                Ok(c) => c,
                Err(e) => {
                    self.release_plan(&p);
                    return Err(e);
                }
            };
            if c.nblocks == p.nblocks {
                return Ok((p, c));
            }
            self.release_plan(&c);
            self.release_plan(&p);
        }
        Err(Error::Busy)
    }

    /// Gives back the space of `plan`, planned just now and not written:
    /// the allocations are taken back where they can be (the last one of
    /// an open zone), so that a copy refused on one side costs the other
    /// side nothing; a zone an allocation filled is handled as after a
    /// failed write (finished).
    fn release_plan(&mut self, plan: &WritePlan) {
        for ext in plan.extents().iter().rev() {
            if self.alloc.untake(ext.zone, ext.len).is_err() {
                self.extent_failed(ext.zone, ext.len);
            }
            self.unreserve(1);
        }
        let track = self.rules_track(plan);
        self.unpend(plan, track);
    }

    /// Both copies planned by [`Self::write_begin_copies`] were written:
    /// `addrs[k]` / `caddrs[k]` is where extent `k` of `plan` / `cplan`
    /// landed (`None`: it failed). When every extent of both landed, both
    /// tables map the range (returns the blocks mapped); otherwise neither
    /// does, what landed is garbage, and the call returns `Io`.
    ///
    /// `Busy` (nothing mapped, what landed is garbage: write the range
    /// again once the checkpoint ended) while a checkpoint is being
    /// written: its steps encode the two tables at different times, so
    /// its image could hold one copy's new mapping and not the other's,
    /// and a crash before the journal records of the write are durable
    /// would leave the two copies different (found by the model test).
    pub fn write_end_copies(
        &mut self,
        plan: &WritePlan,
        addrs: &[Option<u64>],
        cplan: &WritePlan,
        caddrs: &[Option<u64>],
    ) -> Result<u64> {
        let all = |p: &WritePlan, a: &[Option<u64>]| {
            (0..p.nr).all(|k| a.get(k).copied().flatten().is_some())
        };
        let landed = all(plan, addrs) && all(cplan, caddrs);
        if landed && matches!(self.commit, Commit::Checkpoint { .. }) {
            self.drop_landed(plan, addrs);
            self.drop_landed(cplan, caddrs);
            return Err(Error::Busy);
        }
        if landed {
            // Both tables are updated or, before either is touched,
            // neither: the nodes they may need must be within the store's
            // limit (else `NoSpace`, as for any write), and an update that
            // fails for want of memory is tried again. One that still
            // fails after the other table took the write would leave the
            // copies different: the pool fails instead, before any commit
            // takes it.
            let need = self.nodes_for(plan).saturating_add(self.nodes_for(cplan));
            if self.nodes.headroom() < need {
                self.drop_landed(plan, addrs);
                self.drop_landed(cplan, caddrs);
                return Err(Error::NoSpace);
            }
            // The companion's records first (`mirror_safe_prefix`).
            let r = match self.write_end_tries(cplan, caddrs, MAP_TRIES) {
                Ok(_) => self.write_end_tries(plan, addrs, MAP_TRIES),
                Err(e) => {
                    self.drop_landed(plan, addrs);
                    Err(e)
                }
            };
            if r.is_err() {
                self.failed = true;
            }
            return r;
        }
        self.drop_landed(plan, addrs);
        self.drop_landed(cplan, caddrs);
        Err(Error::Io)
    }

    /// Most table nodes mapping `plan` may allocate: a path from the root
    /// for each leaf its extents touch (copied when shared, or new).
    fn nodes_for(&self, plan: &WritePlan) -> usize {
        let height = self
            .volume(plan.vol)
            .and_then(|v| v.table)
            .map_or(0, |t| usize::from(t.height()));
        plan.extents()
            .iter()
            .map(|e| {
                let leaves = usize::try_from(e.len / FANOUT as u64).unwrap_or(usize::MAX);
                height.saturating_mul(leaves.saturating_add(2))
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Neither copy of the plans of [`Self::write_begin_copies`] was
    /// written: nothing is mapped.
    pub fn write_failed_copies(&mut self, plan: &WritePlan, cplan: &WritePlan) {
        self.write_failed(plan);
        self.write_failed(cplan);
    }

    /// A write of `plan` ended but must not be mapped: the extents that
    /// landed become garbage, the others are handled as failed.
    fn drop_landed(&mut self, plan: &WritePlan, addrs: &[Option<u64>]) {
        for (k, ext) in plan.extents().iter().enumerate() {
            match addrs.get(k).copied().flatten() {
                Some(a) => {
                    let c = if ext.append {
                        self.alloc.complete_append(ext.zone, a, ext.len)
                    } else {
                        self.alloc.complete_write(a, ext.len)
                    };
                    let ep = self.cur_epoch;
                    if c.is_err() {
                        self.failed = true;
                    } else {
                        inval(
                            &mut self.alloc,
                            &mut self.zepoch,
                            ep,
                            &mut self.failed,
                            a,
                            ext.len,
                        );
                    }
                }
                None => self.extent_failed(ext.zone, ext.len),
            }
            self.unreserve(1);
        }
        let track = self.rules_track(plan);
        self.unpend(plan, track);
    }
}
