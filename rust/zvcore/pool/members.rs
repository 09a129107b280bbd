// SPDX-License-Identifier: GPL-2.0
//! Membership changes of a running pool: a member added online, a member
//! removed (see [`Pool::member_remove`]).
//!
//! The new member is appended to the address space (its zones get the next
//! zone ids, its addresses follow the last member's), so nothing already
//! mapped moves. The change is a new superblock generation naming it,
//! written by the next journal commit at a log-zone switch, in this order:
//! 1. the new member (every zone of it empty, the caller reset them): the
//!    superblock at block 0 of both its log zones (then finished), a flush;
//! 2. the journal member: the switch to its other log zone, whose block 0
//!    is the new superblock: the **commit point**;
//! 3. the other members: the new superblock in one of their log zones
//!    (where a zone slot is free now; a copy left older is harmless, the
//!    newest generation wins at assembly).
//!
//! Until that commit is done the new member is *fenced*: no block is placed
//! on it ([`Allocator::grow`]), no checkpoint starts (its set layout would
//! include the new member's zones). So after a power cut at any point,
//! either the journal member names the new member (it is part of the pool,
//! with a superblock of its own) or nothing on the old members refers to it
//! (the pool assembles from the old members alone; the new device, if it
//! got its superblock, names a pool of one more member whose zones hold no
//! committed data, which assembles just as well when it is given too).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo, ZoneState};
use super::super::error::{Error, Result};
use super::super::format::layout::{ckpt_zones_of, copies_phase_blocks, log_zone};
use super::super::format::policy::Policy;
use super::super::format::{Record, Superblock, Uuid, RO_COMPAT_JOURNAL_COPIES};
use super::super::gc::background_level;
use super::super::geom::DeviceGeometry;
use super::super::map::NodeStore;
use super::{Commit, MetaOp, Pool, VolEntry};

// Only named by the links in the docs.
#[cfg(doc)]
use super::super::alloc::Allocator;

/// The evacuation of a member ([`Pool::evacuate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evacuation {
    /// The member.
    pub member: u16,
    /// Its live blocks when the evacuation started.
    pub start_blocks: u64,
    /// Its live blocks now (0: evacuated).
    pub left_blocks: u64,
}

/// Caller storage of a pool grown by one member ([`Pool::member_add`]), or
/// the storage it gave up.
pub struct Grown<G, Z, E, D> {
    /// The members' geometries, the new member's last.
    pub geoms: G,
    /// Zone table: one entry per zone of the grown pool.
    pub zones: Z,
    /// Zone epochs: one per zone of the grown pool.
    pub zone_epochs: E,
    /// Allocator state: at least one entry per member.
    pub devs: D,
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
    /// Adds a member (device UUID `uuid`, geometry last in `grown.geoms`)
    /// to the running pool, which moves to the larger storage `grown` and
    /// returns the storage it gave up. Every zone of the device must be
    /// empty (the caller reset them; on a conventional device, the blocks
    /// of its log zones past the first must not be journal blocks of this
    /// pool). The member takes data once the next
    /// commit ([`Self::flush`] or [`Self::flush_journal_only`], which now
    /// commit even with nothing queued) is done: call one at once.
    ///
    /// [`Error::Busy`] (nothing changed) while a commit or a checkpoint is
    /// in flight, a superblock change is not yet written, a checkpoint is
    /// due, or the journal cannot switch log zones now: commit (a
    /// checkpoint) and retry. On any error nothing changed.
    pub fn member_add(
        &mut self,
        uuid: Uuid,
        grown: Grown<G, Z, E, D>,
    ) -> Result<Grown<G, Z, E, D>> {
        self.live()?;
        if self.commit != Commit::None
            || self.ckpt_run.is_some()
            || self.sb_dirty
            || self.alloc.fenced() != 0
        {
            return Err(Error::Busy);
        }
        if self.needs_checkpoint() || self.log_switch_target().is_none() {
            return Err(Error::Busy);
        }
        let geom = grown
            .geoms
            .last()
            .copied()
            .ok_or(Error::Invalid("member add: no geometry"))?;
        self.sb.check_new_member(&uuid, &geom)?;
        if self.alloc.geom().ckpt_copies() {
            // Checkpoint copies: where member 0's part of a chain ends
            // depends on the number of members: no chain tail kept open
            // across the add. The next checkpoint is full and keeps none.
            if self.chain.tail != 0 {
                self.full_due = true;
                self.tails_barred = true;
                return Err(Error::Busy);
            }
            // The phase of every member stays what it is (the checkpoints
            // on disk keep their places).
            let part = geom
                .zone_cap_blocks
                .saturating_mul(u64::from(ckpt_zones_of(geom.meta_zones)));
            if part / 2 < copies_phase_blocks(self.alloc.geom()) {
                return Err(Error::Invalid(
                    "member add: its checkpoint zones hold less than the members'",
                ));
            }
        }
        if grown.zone_epochs.len() != grown.zones.len() {
            return Err(Error::Invalid("member add: storage size"));
        }
        let Grown {
            geoms,
            zones,
            mut zone_epochs,
            devs,
        } = grown;
        let (geoms, zones, devs) = self.alloc.grow(geoms, zones, devs)?;
        // Cannot fail: checked above, and the geometry is the one grown.
        self.sb.add_member(uuid, geom)?;
        for (d, s) in zone_epochs
            .iter_mut()
            .zip(self.zepoch.iter().copied().chain(core::iter::repeat(0)))
        {
            *d = s;
        }
        let zone_epochs = core::mem::replace(&mut self.zepoch, zone_epochs);
        self.sb_dirty = true;
        // With checkpoint copies the last phase's second copy moves to the
        // new member: the next checkpoint is a full one, into a set reset
        // first (a delta would write the new member's zones out of order).
        if self.alloc.geom().ckpt_copies() {
            self.full_due = true;
        }
        Ok(Grown {
            geoms,
            zones,
            zone_epochs,
            devs,
        })
    }

    /// Starts moving the data of member `d` to the other members, or ends
    /// that (`None`: cancel; what moved stays moved). The member takes no
    /// new blocks, its open data zones are closed, and GC collects its zones
    /// (whatever their live share) before any other victim, also when free
    /// space is plentiful ([`Self::gc_urgency`] is at least background)
    /// until it holds no live block ([`Self::evacuation`]); it stays
    /// excluded until cancelled or removed. Kept on disk (a `Policy`
    /// record: commit after): a re-assembled pool resumes it
    /// ([`Self::resume_policies`]).
    ///
    /// [`Error::NoSpace`] if the other members cannot take its live blocks
    /// (their data capacity less their live blocks, less GC's working room
    /// on them: the reserve and the background band, `gc::background_level`); [`Error::Busy`] while a member
    /// is being added, another is evacuated, or the record queue is full;
    /// [`Error::Invalid`] for a member that does not exist or is the only
    /// one. Nothing changes on error.
    pub fn evacuate(&mut self, member: Option<u16>) -> Result<()> {
        self.live()?;
        let Some(d) = member else {
            if self.evac.is_some() {
                self.journal_policy(Policy::Evacuation(None))?;
            }
            self.alloc.set_evacuating(0);
            self.evac = None;
            return Ok(());
        };
        let n = self.alloc.geom().nr_devices();
        if d >= n {
            return Err(Error::Invalid("evacuate: no such member"));
        }
        if n < 2 {
            return Err(Error::Invalid("evacuate: the only member"));
        }
        if self.alloc.fenced() != 0 || self.evac.is_some_and(|(m, _, _)| m != d) {
            return Err(Error::Busy);
        }
        let bit = 1u64.checked_shl(u32::from(d)).unwrap_or(0);
        if self.alloc.lost() & bit != 0 {
            // Its blocks cannot be read: nothing could move them.
            return Err(Error::Invalid("evacuate: the member is gone"));
        }
        if self.evac.is_some() {
            return Ok(());
        }
        let live = self.alloc.dev_valid_blocks(d);
        // Kept free on the others: GC's working room (its reserve and the
        // band where it runs in the background), else their GC could not
        // keep up with the overwrites that go on meanwhile.
        let other_zones: u32 = (0..n)
            .filter(|o| *o != d)
            .filter_map(|o| self.alloc.geom().device(o).map(|g| g.nr_data_zones()))
            .sum();
        let keep = background_level(other_zones, self.cfg.alloc.gc_reserve);
        let reserve = u64::from(keep).saturating_mul(
            self.alloc
                .geom()
                .devices()
                .iter()
                .map(|g| g.zone_cap_blocks)
                .max()
                .unwrap_or(0),
        );
        // What the others can hold once GC has compacted them: their data
        // capacity less their live blocks, less the GC reserve.
        let room = (0..n)
            .filter(|o| *o != d)
            .map(|o| {
                let cap = self.alloc.geom().device(o).map_or(0, |g| {
                    u64::from(g.nr_data_zones()).saturating_mul(g.zone_cap_blocks)
                });
                cap.saturating_sub(self.alloc.dev_valid_blocks(o))
            })
            .sum::<u64>()
            .saturating_sub(reserve);
        if live > room {
            return Err(Error::NoSpace);
        }
        self.journal_policy(Policy::Evacuation(Some(d)))?;
        self.start_evacuation(d);
        Ok(())
    }

    /// Excludes member `d` and starts GC's collection of its zones
    /// ([`Self::evacuate`], or resumed after an assembly).
    pub(super) fn start_evacuation(&mut self, d: u16) {
        let live = self.alloc.dev_valid_blocks(d);
        self.alloc
            .set_evacuating(1u64.checked_shl(u32::from(d)).unwrap_or(0));
        self.evac = Some((d, live, live));
    }

    /// Whether an evacuation or a migration still has data to move (cheap:
    /// the evacuation's count as of the last GC batch; for the write path
    /// and GC's pacing).
    pub fn moving_data(&self) -> bool {
        self.evac.is_some_and(|(_, _, left)| left > 0)
            || self.migration().is_some_and(|m| !m.done)
            || self.alloc.retired_readable() > 0
    }

    /// GC's next victim while retired zones hold readable blocks: one of
    /// them, nothing in flight, not in `avoid` (the device turned it
    /// read-only: its data goes before anything else).
    pub(super) fn retired_victim(&self, avoid: &[u32]) -> Option<u32> {
        let a = &self.alloc;
        if a.retired_readable() == 0 {
            return None;
        }
        (0..a.geom().nr_zones())
            .filter(|z| !avoid.contains(z))
            .find(|&z| {
                a.zone(z).is_some_and(|zi| {
                    zi.retired()
                        && !zi.unreadable()
                        && matches!(zi.state(), ZoneState::Full | ZoneState::Closed)
                        && zi.valid() > 0
                        && zi.inflight() == 0
                })
            })
    }

    /// Refreshes the evacuated member's live-block count (GC batches).
    pub(super) fn note_evacuation(&mut self) {
        if let Some((d, start, _)) = self.evac {
            self.evac = Some((d, start, self.alloc.dev_valid_blocks(d)));
        }
    }

    /// The evacuation in progress or done, if any (a walk over the
    /// member's zones: not for the write path).
    pub fn evacuation(&self) -> Option<Evacuation> {
        self.evac.map(|(member, start_blocks, _)| Evacuation {
            member,
            start_blocks,
            left_blocks: self.alloc.dev_valid_blocks(member),
        })
    }

    /// GC's next victim while a member is evacuated: one of its zones with
    /// live blocks and nothing in flight (the emptiest first), not in
    /// `avoid`.
    pub(super) fn evac_victim(&self, avoid: &[u32]) -> Option<u32> {
        let (d, _, _) = self.evac?;
        let a = &self.alloc;
        let first = a.geom().dev_first_zone(d)?;
        let nz = a.geom().device(d)?.nr_zones;
        (first..first.saturating_add(nz))
            .filter(|z| !avoid.contains(z))
            .filter_map(|z| a.zone(z).map(|zi| (z, *zi)))
            .filter(|(_, zi)| {
                matches!(zi.state(), ZoneState::Full | ZoneState::Closed)
                    && zi.valid() > 0
                    && zi.inflight() == 0
                    && !zi.unreadable()
            })
            .min_by_key(|(_, zi)| zi.valid())
            .map(|(z, _)| z)
    }

    /// Member `d`'s device is gone (removed while the pool runs): it takes
    /// no new blocks and nothing is planned on its zones any more
    /// (`Allocator::set_lost`); an evacuation of it ends
    /// (its blocks cannot be read). Its blocks stay mapped: reading one
    /// fails, overwriting one places the new data elsewhere. With journal
    /// copies the journal goes on on the other copy's member; other
    /// metadata that must go to it fails the next commit that writes it,
    /// as any metadata I/O error does. Not persistent: the pool cannot be assembled without
    /// the member.
    pub fn member_lost(&mut self, d: u16) -> Result<()> {
        if d >= self.alloc.geom().nr_devices() {
            return Err(Error::Invalid("member_lost: no such member"));
        }
        if self.evac.is_some_and(|(m, _, _)| m == d) {
            self.alloc.set_evacuating(0);
            self.evac = None;
        }
        self.alloc
            .set_lost(1u64.checked_shl(u32::from(d)).unwrap_or(0));
        // The journal goes on on the member that holds its copy (the two
        // log zones are written in step: the same offsets, superblocks of
        // the same generations).
        if self.jmirror == Some(d) {
            self.jmirror = None;
        } else if d == self.jdev {
            if let Some(m) = self.jmirror.take() {
                self.jdev = m;
                self.log_sb_gen = self.mlog_sb_gen;
            }
        }
        if self.gc_victim.is_some_and(|v| self.alloc.zone_lost(v)) {
            self.gc_victim = None;
        }
        // Its mirrored copies are rebuilt where their side has members
        // left (an assembly walks every placed volume anyway).
        if !self.replaying {
            self.rewalk_mirrored();
        }
        Ok(())
    }

    /// Whether a member added by [`Self::member_add`] or removed by
    /// [`Self::member_remove`] waits for the commit that makes the change.
    pub fn member_pending(&self) -> bool {
        self.alloc.fenced() != 0 || self.removing
    }

    /// Removes member `d` from the pool: it must hold no live block (an
    /// evacuation moved them: [`Self::evacuate`]), or be lost (its device
    /// gone) and `force` given: its blocks then stay mapped and read as
    /// errors until overwritten. The member keeps its index and address
    /// range, flagged removed in the superblock of the next generation
    /// (`format::INCOMPAT_REMOVED_MEMBERS`), written by the next commit at
    /// a log-zone switch (call [`Self::flush`] or
    /// [`Self::flush_journal_only`] at once). From then on it takes no
    /// block and no metadata, assembly does not look for its device, and
    /// checkpoints are laid out over the other members (the first one
    /// after the removal is full).
    ///
    /// Crash safety: until the commit, nothing on disk names the removal
    /// (the member's metadata and its empty zones are as before). The
    /// commit point is the superblock the journal member gets at the
    /// switch (the journal and its copy move off the member first, so
    /// that both name the removal). After it, the newest checkpoint may
    /// still be laid out with the member in: assembly reads it under the
    /// superblock's previous removed set (`Superblock::prev_removed`, named
    /// by the checkpoint's header), from the copies on the other members.
    /// So another removal waits for a checkpoint in the new layout
    /// ([`Error::Busy`]).
    ///
    /// Needs both copies of the metadata (journal and checkpoint copies)
    /// and two members left in the layout after the removal
    /// ([`Error::Invalid`] otherwise, also for a member that does not
    /// exist or is removed already, one that holds live blocks, a lost one
    /// without `force`, and while another member is lost). [`Error::Busy`]
    /// (nothing changed) while a commit or a checkpoint is in flight, a
    /// membership change waits for its commit, a checkpoint is due, the
    /// journal cannot switch log zones now, writes placed on the member
    /// are in flight, or the newest checkpoint is laid out for an earlier
    /// membership: commit (a checkpoint) and retry.
    pub fn member_remove(&mut self, d: u16, force: bool) -> Result<()> {
        self.live()?;
        let geo = self.alloc.geom();
        if d >= geo.nr_devices() || geo.is_removed(d) {
            return Err(Error::Invalid("member remove: no such member"));
        }
        if !geo.ckpt_copies() || self.sb.ro_compat & RO_COMPAT_JOURNAL_COPIES == 0 {
            return Err(Error::Invalid(
                "member remove: the pool keeps one copy of its metadata",
            ));
        }
        if geo.nr_layout_members() < 3 {
            return Err(Error::Invalid(
                "member remove: two members must stay (the metadata has two copies)",
            ));
        }
        let bit = 1u64.checked_shl(u32::from(d)).unwrap_or(0);
        let lost = self.alloc.lost() & !geo.removed();
        if lost & !bit != 0 {
            return Err(Error::Invalid("member remove: another member is missing"));
        }
        if lost & bit == 0 && self.alloc.dev_valid_blocks(d) > 0 {
            return Err(Error::Invalid(
                "member remove: the member holds live blocks (evacuate it first)",
            ));
        }
        if lost & bit != 0 && !force {
            return Err(Error::Invalid(
                "member remove: the member is missing: its blocks would be lost (force)",
            ));
        }
        if self.commit != Commit::None
            || self.ckpt_run.is_some()
            || self.sb_dirty
            || self.member_pending()
            || self.ckpt_removed != geo.removed()
        {
            if self.ckpt_removed != geo.removed() {
                self.full_due = true;
            }
            return Err(Error::Busy);
        }
        // Writes placed on it before it was excluded: their blocks would be
        // mapped to a member no longer in the pool.
        let first = geo.dev_first_zone(d).unwrap_or(0);
        let nz = geo.device(d).map_or(0, |g| g.nr_zones);
        if (first..first.saturating_add(nz))
            .any(|z| self.alloc.zone(z).is_some_and(|zi| zi.inflight() != 0))
        {
            return Err(Error::Busy);
        }
        if self.jdev == d && self.jmirror.is_none() {
            return Err(Error::Invalid("member remove: the journal has no copy"));
        }
        if self.needs_checkpoint() || self.log_switch_target().is_none() {
            return Err(Error::Busy);
        }
        if self.chain.tail != 0 {
            // The next checkpoint is laid out anew: no chain tail kept
            // open across the removal (as for an add).
            self.full_due = true;
            self.tails_barred = true;
            return Err(Error::Busy);
        }
        let removed = geo.removed() | bit;
        // Checked above: at least two members stay.
        self.sb.remove_member(d)?;
        self.alloc.set_layout_removed(removed)?;
        self.alloc.set_lost(bit);
        if self.evac.is_some_and(|(m, _, _)| m == d) {
            self.alloc.set_evacuating(0);
            self.evac = None;
        }
        if self.gc_victim.is_some_and(|v| self.alloc.zone_lost(v)) {
            self.gc_victim = None;
        }
        self.move_journal_off(d);
        self.sb_dirty = true;
        self.removing = true;
        self.full_due = true;
        Ok(())
    }

    /// The journal (and its copy) leave member `d` being removed: the
    /// mirror becomes the journal member (its log zones are in step with
    /// the journal member's), and the first other member in the layout the
    /// mirror, whose log zone the next switch opens. Before the switch that
    /// commits the removal, which writes the new superblock on both.
    fn move_journal_off(&mut self, d: u16) {
        if self.jdev == d {
            match self.jmirror.take() {
                Some(m) => {
                    self.jdev = m;
                    self.log_sb_gen = self.mlog_sb_gen;
                }
                None => return,
            }
        } else if self.jmirror == Some(d) {
            self.jmirror = None;
        } else if self.jmirror.is_some() {
            return;
        }
        let lost = self.alloc.lost();
        let jdev = self.jdev;
        let geo = self.alloc.geom();
        let m = geo
            .layout_members()
            .find(|&o| o != jdev && lost & 1u64.checked_shl(u32::from(o)).unwrap_or(0) == 0);
        if let Some(m) = m {
            self.jmirror = Some(m);
            // Unknown: the switch treats both log zones as older.
            self.mlog_sb_gen = [0; 2];
            self.jmirror_fresh = true;
        }
    }

    /// Step 1 of the membership commit (see the module documentation): the
    /// fenced new member's superblock copies written (its zones are empty:
    /// the caller reset them before [`Self::member_add`]; its checkpoint
    /// zones are reset like any set's before a checkpoint uses them), then
    /// a flush. Nothing without a member pending.
    pub(super) fn emit_new_member_sb<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        blk: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        if self.alloc.fenced() == 0 {
            return Ok(());
        }
        let d = self.alloc.geom().nr_devices().saturating_sub(1);
        self.encode_sb_for(d, blk)?;
        for i in 0..2u32 {
            let z = log_zone(self.alloc.geom(), d, i).ok_or(Error::Invalid("log zone"))?;
            let start = self
                .alloc
                .geom()
                .zone_start(z)
                .ok_or(Error::Invalid("log zone"))?;
            sink(MetaOp::Write(start, blk))?;
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
        }
        sink(MetaOp::Flush)
    }

    /// Step 3 of a superblock change (a member added, a feature bit set):
    /// the new superblock written to one log zone of every member other
    /// than the journal's and a new one, the zone `generation mod 2` (the
    /// other keeps an older copy), where that zone can be opened now;
    /// then a flush. Nothing unless the superblock changed.
    pub(super) fn emit_member_sb_copies<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        blk: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        if !self.sb_dirty {
            return Ok(());
        }
        let n = self.alloc.geom().nr_devices();
        let last = if self.alloc.fenced() != 0 {
            n.saturating_sub(1)
        } else {
            n
        };
        let i = (self.sb.generation & 1) as u32;
        let mut any = false;
        let (jdev, jmirror) = (self.jdev, self.jmirror);
        let lost = self.alloc.lost();
        // A lost member's copy cannot be written (its device is gone): the
        // other copies do. The journal's members got theirs at the switch.
        let here = |d: &u16| {
            *d != jdev
                && Some(*d) != jmirror
                && lost & 1u64.checked_shl(u32::from(*d)).unwrap_or(0) == 0
        };
        for d in (0..last).filter(here) {
            let z = log_zone(self.alloc.geom(), d, i).ok_or(Error::Invalid("log zone"))?;
            if self.alloc.meta_open(z, true).is_err() {
                // No zone slot there now (its data zones use them all).
                continue;
            }
            let start = self
                .alloc
                .geom()
                .zone_start(z)
                .ok_or(Error::Invalid("log zone"))?;
            self.encode_sb_for(d, blk)?;
            if !self.zone_conv(z) {
                sink(MetaOp::Reset(z))?;
            }
            sink(MetaOp::Write(start, blk))?;
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
            self.alloc.meta_close_later(z)?;
            any = true;
        }
        if any {
            sink(MetaOp::Flush)?;
        }
        Ok(())
    }
}
