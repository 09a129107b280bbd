// SPDX-License-Identifier: GPL-2.0
//! Commits by checkpoint: a full checkpoint written into the other set
//! (volumes, block tables, sharing and delta volumes, rewind history), or
//! a delta checkpoint appended to the newest one's set (the table changes
//! since, see `format::checkpoint`), and its completion.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo, ZoneState};
use super::super::codec::Writer;
use super::super::error::{Error, Result};
use super::super::format::checkpoint::{section, set_of, DeltaLink, CKPT_DATA_MAX};
use super::super::format::history::{HISTORY, REWIND_RECORD_BYTES};
use super::super::format::layout::{
    checkpoint_block_addr, checkpoint_capacity, checkpoint_copy_addr, checkpoint_last_zone,
    checkpoint_zone, checkpoint_zones, log_zone,
};
use super::super::format::policy::{POLICY, POLICY_RECORD_BYTES};
use super::super::format::rules::{RULES, RULE_RECORD_BYTES};
use super::super::format::sharing::{
    encode_base, encode_link, DiffEntry, DiffWriter, SMALL_RECORD_BYTES,
};
use super::super::format::zone_history::{ZoneHistory, ZONE_HISTORY, ZONE_HISTORY_RECORD_BYTES};
use super::super::format::{
    CheckpointHeader, CheckpointWriter, Record, Superblock, WriterState, BLOCK_SIZE,
};
use super::super::format::{
    INCOMPAT_DELTA_CHECKPOINTS, INCOMPAT_SHARED_BLOCKS, INCOMPAT_ZONE_HISTORY,
};
use super::super::geom::{DeviceGeometry, PoolGeometry, Stream, NR_STREAMS};
use super::super::map::{Diff, NodeStore};
use super::{
    peek_commit, policy, quota, slots, Commit, MetaOp, Pool, VolEntry, NO_SLOT, RESET_QUEUED,
    VOL_RECORD_BYTES,
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
    // ---- commit: checkpoint -------------------------------------------------

    /// Writes a full checkpoint (generation + 1, into the other set) that
    /// also commits every queued record, all at once: [`Self::checkpoint_begin`]
    /// and [`Self::checkpoint_step`] until it is done. Call
    /// [`Self::checkpoint_end`] once the emitted operations are done.
    /// `scratch` is 2 blocks.
    pub fn checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.checkpoint_begin(scratch, sink)?;
        while !self.checkpoint_step(scratch, u32::MAX, sink)? {}
        Ok(())
    }

    /// Starts a checkpoint written in steps, so that the caller can do the
    /// I/O of each step without its lock: emits the resets of the other
    /// set's zones (and finishes of idle data zones where a member has no
    /// zone slot left for the set's zone, which it opens now) and the
    /// checkpoint's header block. The checkpoint commits the records queued
    /// now; records queued later wait for the commit after it.
    ///
    /// Until the last step, the pool goes on taking writes, discards and GC
    /// (the image of each table is taken when its step encodes it: what
    /// changed before is in it or in the records replayed after it, and
    /// replaying these over it changes nothing twice) but no volume
    /// operation ([`Error::Busy`]: they are not idempotent).
    /// [`Error::Busy`] (nothing emitted) also when a member has no zone slot
    /// while its writes are in flight: retry once they completed.
    pub fn checkpoint_begin<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.live()?;
        if self.commit != Commit::None || self.ckpt_run.is_some() || self.member_pending() {
            // A member being added: its superblock commit comes first (the
            // checkpoint set would include its zones).
            return Err(Error::Busy);
        }
        // No commit in flight: the operations emitted before are done.
        self.alloc.release_closing();
        self.begin_checked(scratch, sink)
    }

    /// [`Self::checkpoint_begin`] once no commit is in flight (operations
    /// emitted before may still be pending: a delta that found its set
    /// full continues here in the same step).
    fn begin_checked<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        let delta = self.delta_next();
        let gen = if delta {
            self.ckpt_gen.checked_add(2).ok_or(Error::NoSpace)?
        } else {
            self.ckpt_gen
                .checked_add(1)
                .ok_or(Error::NoSpace)?
                .max(self.ckpt_gen_min)
        };
        // Every member must be able to open its checkpoint zone (directly,
        // or after finishing an open data zone with nothing in flight; the
        // member of the chain's tail zone gives its slot back or keeps it);
        // otherwise the members without a slot take no new data blocks
        // until it begins, so that their writes in flight drain, and the
        // caller retries once writes have completed. Nothing emitted yet.
        let mut blocked = 0u64;
        for d in 0..self.alloc.geom().nr_devices() {
            let gone = self.ckpt_gone() & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0;
            if !gone && !self.ckpt_slot_ok(d) && !self.chain.holds_tail(d) {
                blocked |= 1u64.checked_shl(u32::from(d)).unwrap_or(0);
            }
        }
        if blocked != 0 {
            if self.alloc.draining() != blocked {
                self.stats.checkpoint_slot_waits =
                    self.stats.checkpoint_slot_waits.saturating_add(1);
            }
            self.alloc.set_draining(blocked);
            return Err(Error::Busy);
        }
        self.alloc.set_draining(0);
        let r = self.begin_inner(gen, delta, scratch, sink);
        if r.is_err() {
            self.ckpt_failed();
        }
        r
    }

    /// Ends the wait for zone slots that a [`Error::Busy`] from
    /// [`Self::checkpoint_begin`] started (the caller gives up retrying):
    /// the members' data zones take new blocks again.
    pub fn checkpoint_unblock(&mut self) {
        self.alloc.set_draining(0);
    }

    fn ckpt_failed(&mut self) {
        self.commit = Commit::None;
        self.ckpt_run = None;
        self.failed = true;
        self.nodes.clear_changed();
    }

    /// Whether the pool writes delta checkpoints: its format has them and
    /// its node store keeps change marks.
    pub(super) fn deltas_enabled(&self) -> bool {
        self.sb.incompat & INCOMPAT_DELTA_CHECKPOINTS != 0 && self.nodes.tracks_changes()
    }

    /// Whether the next checkpoint is a delta: the newest one's chain is
    /// open, no volume operation happened since, and the chain's deltas add
    /// up to less than its full checkpoint (or [`DELTA_MIN_BLOCKS`]), so
    /// that assembly reads at most about twice the full image.
    fn delta_next(&self) -> bool {
        let c = &self.chain;
        self.deltas_enabled()
            && c.open
            && !self.full_due
            && !self.meta_full
            && c.base != 0
            && self.ckpt_gen.saturating_add(2) >= self.ckpt_gen_min
            && c.delta_blocks < c.full_blocks.max(DELTA_MIN_BLOCKS)
            && c.next_block.saturating_add(DELTA_MIN_ROOM)
                <= checkpoint_capacity(self.alloc.geom(), set_of(self.ckpt_gen))
    }

    /// Ends the newest checkpoint's chain before a full checkpoint: the
    /// tail zones give back their members' slots and are finished.
    fn end_chain<F: FnMut(MetaOp<'_>) -> Result<()>>(&mut self, sink: &mut F) -> Result<()> {
        self.chain.open = false;
        let tails = core::mem::take(&mut self.chain.tail);
        if tails == 0 {
            return Ok(());
        }
        let set = set_of(self.chain.base);
        let gone = self.ckpt_gone();
        for d in 0..self.alloc.geom().nr_devices() {
            let bit = 1u64.checked_shl(u32::from(d)).unwrap_or(0);
            if tails & bit == 0 || gone & bit != 0 {
                continue;
            }
            let geo = self.alloc.geom();
            let (Some(first), Some((z, _))) = (
                checkpoint_zone(geo, set, d),
                checkpoint_last_zone(geo, set, d, self.chain.next_block),
            ) else {
                continue;
            };
            let _ = self.alloc.meta_open(first, false);
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
        }
        Ok(())
    }

    /// Goes on with the checkpoint started by [`Self::checkpoint_begin`]:
    /// emits about `max_blocks` more blocks (at most 4 more), then ends the
    /// step. Returns whether the checkpoint is complete (its commit block,
    /// the flushes and the finishes of the set's zones emitted): then call
    /// [`Self::checkpoint_end`] once the operations are done. An error
    /// fails the pool (re-assemble it).
    pub fn checkpoint_step<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        max_blocks: u32,
        sink: &mut F,
    ) -> Result<bool> {
        if self.side != Commit::None {
            // The journal commit between the steps must end first.
            self.side = Commit::None;
            self.ckpt_failed();
            return Err(Error::Invalid("checkpoint step during a journal commit"));
        }
        let Some(mut run) = self.ckpt_run.take() else {
            return Err(Error::Invalid("no checkpoint in flight"));
        };
        let r = self.step_inner(&mut run, scratch, max_blocks, sink);
        match r {
            Ok(false) => self.ckpt_run = Some(run),
            Ok(true) => {}
            Err(Error::NoSpace) => {
                // The image does not fit in the set: abandon this
                // checkpoint, not the pool (the newest committed checkpoint
                // and the journal still describe everything).
                let delta = matches!(self.commit, Commit::Checkpoint { delta: true, .. });
                if self.ckpt_overflow(run.gen, sink).is_err() {
                    self.ckpt_failed();
                } else if delta {
                    // A delta that found its set full: a full checkpoint
                    // into the other set takes over at once (the caller
                    // goes on stepping; `Busy` if a member has no slot).
                    return self.begin_checked(scratch, sink).map(|()| false);
                }
            }
            Err(_) => self.ckpt_failed(),
        }
        r
    }

    /// Abandons the checkpoint in flight whose image did not fit in set
    /// `set_of(gen)`: finishes the set's zones (the next checkpoint resets
    /// them) and marks the metadata full. The records it was to commit stay
    /// queued for the journal.
    fn ckpt_overflow<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        sink: &mut F,
    ) -> Result<()> {
        let delta = matches!(self.commit, Commit::Checkpoint { delta: true, .. });
        self.commit = Commit::None;
        self.ckpt_run = None;
        self.nodes.clear_changed();
        self.full_due = true;
        self.chain.open = false;
        self.chain.tail = 0;
        if delta {
            // The set has no room left for the delta: the next checkpoint
            // is full, in the other set (the records stay queued).
            self.need_ckpt = true;
        } else {
            self.meta_full = true;
            self.ckpt_retry = false;
            self.stats.checkpoint_overflows = self.stats.checkpoint_overflows.saturating_add(1);
        }
        let set = set_of(gen);
        self.close_ckpt_zones(
            set,
            checkpoint_capacity(self.alloc.geom(), set),
            false,
            sink,
        )
    }

    /// Ends the writing of set `set` after `blocks` blocks: releases each
    /// member's open-zone slot (taken on the set's first zone by
    /// [`Self::open_ckpt_zone`]) and finishes the zone each member's part
    /// ended in, so that no zone of the set stays active.
    ///
    /// With `keep_tail` (a chain that deltas may extend) nothing is
    /// finished: the set's zones written to capacity are full, the empty
    /// ones not active, and the one partly written, the tail, keeps its
    /// member's slot for the next delta ([`Chain::tail`]).
    fn close_ckpt_zones<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        set: u8,
        blocks: u32,
        keep_tail: bool,
        sink: &mut F,
    ) -> Result<()> {
        // The slots are given back once the finishes below are done (the
        // device counts the zones until then).
        let gone = self.ckpt_gone();
        let here = |d: u16| gone & 1u64.checked_shl(u32::from(d)).unwrap_or(0) == 0;
        for d in (0..self.alloc.geom().nr_devices()).filter(|d| here(*d)) {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            let _ = self.alloc.meta_close_later(z);
        }
        self.chain.tail = 0;
        // The tail takes a slot the journal's zone needs while it has none
        // (after assembly, until its first block): no chain then.
        self.chain.open = keep_tail && self.jlog.is_some();
        let n = self.alloc.geom().nr_devices();
        // Each member's last zone of the set, partly written or not.
        let last = |p: &Self, d: u16| {
            checkpoint_last_zone(p.alloc.geom(), set, d, blocks)
                .ok_or(Error::Corrupt("checkpoint zone"))
        };
        if self.chain.open {
            // The partly written zones stay open for the deltas that follow
            // (the tails), if each one's member has room for it; else all
            // are finished and the chain ends (the next checkpoint is full).
            let mut tails = 0u64;
            for d in (0..n).filter(|d| here(*d)) {
                let (z, partly) = last(self, d)?;
                if !partly || self.zone_conv(z) {
                    continue;
                }
                // (The set's zone still holds its slot, see above.)
                if self.keep_tail(set, d)? {
                    tails |= 1u64.checked_shl(u32::from(d)).unwrap_or(0);
                } else {
                    self.chain.open = false;
                }
            }
            if self.chain.open {
                self.chain.tail = tails;
                return Ok(());
            }
            // A zone that cannot stay open is finished: the chain ends. The
            // slots taken above go back once the finishes are done.
            for d in (0..n).filter(|d| here(*d)) {
                let (z, partly) = last(self, d)?;
                if tails & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0 {
                    let first = checkpoint_zone(self.alloc.geom(), set, d)
                        .ok_or(Error::Corrupt("checkpoint zone"))?;
                    let _ = self.alloc.meta_keep(first, false);
                    let _ = self.alloc.meta_close_later(first);
                }
                if partly && !self.zone_conv(z) {
                    sink(MetaOp::Finish(z))?;
                }
            }
            return Ok(());
        }
        for d in (0..n).filter(|d| here(*d)) {
            let (z, _) = last(self, d)?;
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
        }
        Ok(())
    }

    /// Keeps member `d`'s partly written last zone of checkpoint set `set`
    /// open for the deltas that follow (a chain's tail), if the member has
    /// room for it; the set's first zone holds the slot. Whether it did.
    ///
    /// The one rule for every chain that goes on: after a checkpoint
    /// (`close_ckpt_zones`) and after an assembly (`resume_chain`).
    pub(super) fn keep_tail(&mut self, set: u8, d: u16) -> Result<bool> {
        let geo = self.alloc.geom();
        let first = checkpoint_zone(geo, set, d).ok_or(Error::Corrupt("checkpoint zone"))?;
        // The journal's members must keep a slot for the journal's next
        // zone (data zones may have taken the others while the checkpoint
        // held one).
        let journal_open = self
            .jlog
            .and_then(|l| log_zone(geo, d, u32::from(l)))
            .and_then(|jz| self.alloc.zone(jz))
            .is_some_and(|zi| zi.meta_open());
        let room = self.tail_fits(d)
            && (!self.is_journal_dev(d) || journal_open || self.zone_slots_left(d) >= 1);
        if room && self.alloc.meta_open(first, true).is_ok() {
            let _ = self.alloc.meta_keep(first, true);
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether a full checkpoint of `blocks` blocks leaves its set short of
    /// headroom ([`super::META_HEADROOM_PCT`]; `meta_low`).
    pub(super) fn meta_low_after(&self, blocks: u64) -> bool {
        blocks.saturating_mul(100)
            > self
                .checkpoint_capacity_blocks()
                .saturating_mul(100 - super::META_HEADROOM_PCT)
    }

    /// The lost members (`Pool::member_lost`) that checkpoints leave out:
    /// with checkpoint copies every block has another copy; without, none
    /// (a checkpoint must then write to the member, and fails).
    pub(super) fn ckpt_gone(&self) -> u64 {
        if self.alloc.geom().ckpt_copies() {
            self.alloc.lost()
        } else {
            0
        }
    }

    /// Whether member `d`'s zone limits leave room for a chain's tail zone
    /// kept open between checkpoints: besides it (and the journal's zone on
    /// the journal's member), two data zones, so that writes never find
    /// every slot taken by metadata and a full checkpoint can still find a
    /// data zone to finish for its slot.
    pub(super) fn tail_fits(&self, d: u16) -> bool {
        let Some(g) = self.alloc.geom().device(d) else {
            return false;
        };
        let need = 3 + u32::from(self.is_journal_dev(d));
        let fits = |lim: u32| lim == 0 || lim >= need;
        fits(g.open_limit()) && fits(g.max_active)
    }

    /// Zones member `d` can still open (within its open and active
    /// limits), `u32::MAX` without limits.
    pub(super) fn zone_slots_left(&self, d: u16) -> u32 {
        let Some(g) = self.alloc.geom().device(d) else {
            return 0;
        };
        let (open, active) = self.alloc.dev_open_active(d);
        let left = |cur: u32, lim: u32| {
            if lim == 0 {
                u32::MAX
            } else {
                lim.saturating_sub(cur)
            }
        };
        left(open, g.open_limit()).min(left(active, g.max_active))
    }

    /// Whether member `d` can open one more (metadata) zone, possibly after
    /// finishing an open data zone that has nothing in flight.
    fn ckpt_slot_ok(&self, d: u16) -> bool {
        let Some(g) = self.alloc.geom().device(d) else {
            return false;
        };
        let (open, active) = self.alloc.dev_open_active(d);
        let ok = |cur: u32, lim: u32| lim == 0 || cur.saturating_add(1) <= lim;
        if ok(open, g.open_limit()) && ok(active, g.max_active) {
            return true;
        }
        Stream::ALL.iter().any(|s| {
            self.alloc
                .open_zone(*s, d)
                .and_then(|z| self.alloc.zone(z))
                .map(|zi| zi.inflight() == 0)
                .unwrap_or(false)
        }) || (ok(open, g.open_limit()) && self.idle_closed_zone(d).is_some())
    }

    /// A closed data zone of member `d` with nothing in flight (closed by
    /// a failed write, or left by a stream): finishing it gives back the
    /// active-zone slot it holds, which nothing else would while commits
    /// wait for the checkpoint. Looked for only at the member's limits.
    fn idle_closed_zone(&self, d: u16) -> Option<u32> {
        let geo = self.alloc.geom();
        let first = geo.dev_first_zone(d)?;
        let n = geo.device(d)?.nr_zones;
        (first..first.saturating_add(n)).find(|&z| {
            self.alloc
                .zone(z)
                .is_some_and(|zi| zi.state() == ZoneState::Closed && zi.inflight() == 0)
                && geo.zone(z).is_some_and(|zg| !zg.meta && !zg.conventional)
        })
    }

    /// Chooses how each volume is stored in the next checkpoint: in full
    /// (`ck_base == NO_SLOT`, `ck_done`) or as differences against its
    /// delta base (the slot in `ck_base`). A chain of bases that does not
    /// end (impossible unless the links are corrupt) is cut. In a `delta`,
    /// only the redefined volumes (`ck_new`) are stored so; the others are
    /// done (their changes go first) and keep what the chain's image holds
    /// of them (`ck_rooted`).
    fn plan_bases(&mut self, delta: bool) {
        let sharing = self.sharing();
        let n = self.vols.len();
        for i in 0..n {
            let Some(v) = self.vols.get(i).copied() else {
                break;
            };
            if delta && !v.ck_new {
                if let Some(e) = self.vols.get_mut(i) {
                    e.ck_base = NO_SLOT;
                    e.ck_done = true;
                }
                continue;
            }
            // A base must not change while the checkpoint is written in
            // steps but by relocation (the journal after the checkpoint
            // replays it on every sharer): a read-only volume. Were it
            // writable, a block it mapped when its own part was encoded
            // and unmapped before the difference was taken would be
            // missed (a hole in both) and stay mapped in the copy.
            // Parents are snapshots; in a delta, a base is any volume the
            // delta keeps or stores before.
            let base = match (sharing, v.table) {
                (true, Some(_)) => v
                    .parent
                    .and_then(|p| slots::find(&self.vols, p))
                    .filter(|&j| j != i)
                    .filter(|&j| self.vols.get(j).is_some_and(|b| b.read_only())),
                _ => None,
            }
            .map(|j| j as u32)
            .unwrap_or(NO_SLOT);
            if let Some(e) = self.vols.get_mut(i) {
                e.ck_base = base;
                e.ck_done = base == NO_SLOT;
                e.ck_rooted = v.table.is_some_and(|t| t.root().is_some());
            }
        }
        for i in 0..n {
            let mut j = i;
            let mut steps = 0usize;
            let ends = loop {
                let b = self.vols.get(j).map(|v| v.ck_base).unwrap_or(NO_SLOT);
                if b == NO_SLOT {
                    break true;
                }
                if steps > n {
                    break false;
                }
                j = b as usize;
                steps += 1;
            };
            if !ends {
                if let Some(e) = self.vols.get_mut(i) {
                    e.ck_base = NO_SLOT;
                    e.ck_done = true;
                }
            }
        }
    }

    /// [`Self::checkpoint_begin`] after its checks.
    fn begin_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        delta: bool,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        let set = set_of(gen);
        let n = self.alloc.geom().nr_devices();
        let first = if delta { self.chain.next_block } else { 0 };
        let gone = self.ckpt_gone();
        let here = |d: u16| gone & 1u64.checked_shl(u32::from(d)).unwrap_or(0) == 0;
        if !delta {
            self.end_chain(sink)?;
            for d in (0..n).filter(|d| here(*d)) {
                for z in checkpoint_zones(self.alloc.geom(), set, d) {
                    if !self.zone_conv(z) {
                        sink(MetaOp::Reset(z))?;
                    }
                }
            }
        }
        // Take every member's open-zone slot for the set now (on its first
        // zone; the checkpoint is written in order, so one zone of the set
        // at a time is written on a member): data zones opened between
        // the steps must not take them.
        for d in (0..n).filter(|d| here(*d)) {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            self.open_ckpt_zone(z, d, sink)?;
        }
        let cap = checkpoint_capacity(self.alloc.geom(), set).saturating_sub(first);
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let hdr = CheckpointHeader {
            pool_uuid: self.sb.pool_uuid,
            generation: gen,
            journal_seq: self.jseq.saturating_sub(1),
            delta: delta.then_some(DeltaLink {
                base: self.chain.base,
                prev: self.ckpt_gen,
                first_block: first,
            }),
            removed: self.alloc.geom().removed(),
        };
        let w = CheckpointWriter::new(blk, hdr, cap)?;
        let geo = self.alloc.geom();
        let w = w.suspend(&mut |i, b| put_block(geo, set, first, i, b, gone, sink))?;
        // What changes from now on goes into the next checkpoint's marks.
        self.nodes.swap_marks();
        // A delta after volume operations carries the volume table too.
        let vols = delta && self.vols_changed;
        let phase = if vols {
            self.plan_bases(true);
            Phase::Copies { next: 0 }
        } else if delta {
            Phase::ChangesStart
        } else {
            self.plan_bases(false);
            Phase::Volumes { next: 0 }
        };
        // Journal commits between its steps need records that replay over
        // its image (`ckpt_journal.rs`).
        self.side_ok = self.records_replay_over_image();
        self.side_blocks = 0;
        self.side_recs = 0;
        self.commit = Commit::Checkpoint {
            nrec: self.npend,
            epoch: self.cur_epoch,
            gen,
            seq: self.jseq.saturating_sub(1),
            delta,
        };
        self.cur_epoch += 1;
        self.ckpt_run = Some(CkptRun {
            gen,
            first,
            w,
            phase,
            vols,
        });
        Ok(())
    }

    /// Opens checkpoint zone `z` of member `d`, finishing an idle open
    /// data zone of the member (or an idle closed one) if it has no slot
    /// left.
    fn open_ckpt_zone<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        z: u32,
        d: u16,
        sink: &mut F,
    ) -> Result<()> {
        if self.alloc.meta_open(z, true).is_ok() {
            return Ok(());
        }
        for s in Stream::ALL.iter().take(NR_STREAMS) {
            if let Some(oz) = self.alloc.open_zone(*s, d) {
                let infl = self.alloc.zone(oz).map(|zi| zi.inflight()).unwrap_or(1);
                if infl == 0 && self.alloc.finish(oz).is_ok() {
                    sink(MetaOp::Finish(oz))?;
                    return self.alloc.meta_open(z, true);
                }
            }
        }
        // Only the active limit is reached: an idle closed zone finished.
        if let Some(cz) = self.idle_closed_zone(d) {
            if self.alloc.finish(cz).is_ok() {
                sink(MetaOp::Finish(cz))?;
                return self.alloc.meta_open(z, true);
            }
        }
        Err(Error::Busy)
    }

    /// One step of [`Self::checkpoint_step`]: `Ok(true)` when complete.
    fn step_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        run: &mut CkptRun,
        scratch: &mut [u8],
        max_blocks: u32,
        sink: &mut F,
    ) -> Result<bool> {
        let set = set_of(run.gen);
        let (blk, rest) = scratch.split_at_mut(BLOCK_SIZE.min(scratch.len()));
        let chunk = rest
            .get_mut(..CKPT_DATA_MAX)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let mut w = CheckpointWriter::resume(blk, run.w)?;
        let stop = w.blocks_written().saturating_add(max_blocks);
        let geo = self.alloc.geom();
        let first = run.first;
        let gone = self.ckpt_gone();
        let mut wsink = |i: u32, b: &[u8]| put_block(geo, set, first, i, b, gone, sink);
        let delta = matches!(self.commit, Commit::Checkpoint { delta: true, .. });
        let nodes = &self.nodes;
        let sharing = self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0;
        let keeps_policies = self.keeps_policies();
        let pstate = self.policy_state();
        let history = self.sb.incompat & INCOMPAT_ZONE_HISTORY != 0;
        let life_avg = self.life_avg;
        // A delta lists the zones written since the checkpoint before it.
        let since = if delta { self.history_base } else { 0 };
        let taken = &mut self.history_taken;
        let hist_recs = &mut self.stats.zone_history_records;
        let alloc = &self.alloc;
        let vols = &mut self.vols;
        loop {
            if w.blocks_written() >= stop {
                run.w = w.suspend(&mut wsink)?;
                return Ok(false);
            }
            run.phase = match run.phase {
                Phase::Copies { next } => {
                    if next == 0 {
                        w.begin_section(section::COPIES, &mut wsink)?;
                    }
                    match vols.get(next).copied() {
                        None => Phase::Redefined { next: 0 },
                        Some(v) => {
                            if let (Some(_), Some(src)) = (v.table, v.ck_copy_of) {
                                let mut rec = [0u8; section::COPY_RECORD_BYTES];
                                let mut wr = Writer::new(&mut rec);
                                wr.put_u32(v.id)?;
                                wr.put_u32(src)?;
                                w.append_record(&rec, &mut wsink)?;
                            }
                            Phase::Copies { next: next + 1 }
                        }
                    }
                }
                Phase::Redefined { next } => {
                    if next == 0 {
                        w.begin_section(section::REDEFINED, &mut wsink)?;
                    }
                    match vols.get(next).copied() {
                        None => Phase::Volumes { next: 0 },
                        Some(v) => {
                            if v.table.is_some() && v.ck_new {
                                w.append_record(&v.id.to_le_bytes(), &mut wsink)?;
                            }
                            Phase::Redefined { next: next + 1 }
                        }
                    }
                }
                Phase::Volumes { next } => {
                    if next == 0 {
                        w.begin_section(section::VOLUMES, &mut wsink)?;
                    }
                    match vols.get(next).copied() {
                        // A delta: the other volumes' changes first (the
                        // redefined ones may be stored against them).
                        None if delta => Phase::ChangesStart,
                        None => {
                            w.begin_section(section::BLOCK_TABLE, &mut wsink)?;
                            Phase::Tables { vol: 0, cursor: 0 }
                        }
                        Some(v) => {
                            if let Some(t) = v.table {
                                let mut rec = [0u8; VOL_RECORD_BYTES];
                                let mut wr = Writer::new(&mut rec);
                                wr.put_u32(v.id)?;
                                wr.put_u32(v.flags)?;
                                wr.put_u64(t.size())?;
                                let nb = v.name.as_bytes();
                                wr.put_u8(nb.len() as u8)?;
                                wr.put_bytes(nb)?;
                                w.append_record(&rec, &mut wsink)?;
                            }
                            Phase::Volumes { next: next + 1 }
                        }
                    }
                }
                Phase::Tables { vol, mut cursor } => match vols.get(vol).copied() {
                    None if sharing => {
                        w.begin_section(section::SHARING, &mut wsink)?;
                        Phase::Links { next: 0 }
                    }
                    None => Phase::Rules {
                        next: 0,
                        open: false,
                    },
                    Some(v) => match v
                        .table
                        .filter(|_| v.ck_base == NO_SLOT && (v.ck_new || !delta))
                    {
                        None => Phase::Tables {
                            vol: vol + 1,
                            cursor: 0,
                        },
                        Some(t) => {
                            if let Some(e) = vols.get_mut(vol) {
                                e.ck_rooted |= t.root().is_some();
                            }
                            let mut cw = Writer::new(chunk);
                            let done = t.encode_chunk(nodes, &mut cursor, &mut cw)?;
                            let len = cw.pos();
                            if len > 4 {
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if done {
                                Phase::Tables {
                                    vol: vol + 1,
                                    cursor: 0,
                                }
                            } else {
                                Phase::Tables { vol, cursor }
                            }
                        }
                    },
                },
                Phase::Links { next } => match vols.get(next).copied() {
                    None => Phase::Deltas {
                        vol: 0,
                        at: 0,
                        open: false,
                        progress: false,
                    },
                    Some(v) => {
                        if v.table.is_some() && (v.origin.is_some() || v.parent.is_some()) {
                            let mut rec = [0u8; SMALL_RECORD_BYTES];
                            encode_link(&mut Writer::new(&mut rec), v.id, v.origin, v.parent)?;
                            w.append_record(&rec, &mut wsink)?;
                        }
                        Phase::Links { next: next + 1 }
                    }
                },
                Phase::Deltas {
                    vol,
                    at,
                    open,
                    progress,
                } => {
                    let Some(v) = vols.get(vol).copied() else {
                        if progress {
                            // Delta volumes, each after its base: another pass.
                            run.phase = Phase::Deltas {
                                vol: 0,
                                at: 0,
                                open: false,
                                progress: false,
                            };
                            continue;
                        }
                        if vols.iter().any(|v| v.table.is_some() && !v.ck_done) {
                            return Err(Error::Corrupt("checkpoint: delta base cycle"));
                        }
                        run.phase = Phase::Rules {
                            next: 0,
                            open: false,
                        };
                        continue;
                    };
                    let base = vols
                        .get(v.ck_base as usize)
                        .copied()
                        .filter(|b| b.ck_done)
                        .and_then(|b| b.table.map(|bt| (b.id, bt)));
                    let next = Phase::Deltas {
                        vol: vol + 1,
                        at: 0,
                        open: false,
                        progress,
                    };
                    match (v.table, base) {
                        (Some(t), Some((bid, bt))) if !v.ck_done => {
                            if !open {
                                let mut rec = [0u8; SMALL_RECORD_BYTES];
                                encode_base(&mut Writer::new(&mut rec), v.id, bid)?;
                                w.append_record(&rec, &mut wsink)?;
                            }
                            if let Some(e) = vols.get_mut(vol) {
                                e.ck_rooted |= t.root().is_some();
                            }
                            let next = |a| t.next_diff(nodes, &bt, a);
                            let (at, done) = encode_diffs(next, v.id, at, chunk)?;
                            if let Some(len) = done.len {
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if done.last {
                                if let Some(e) = vols.get_mut(vol) {
                                    e.ck_done = true;
                                }
                                Phase::Deltas {
                                    vol: vol + 1,
                                    at: 0,
                                    open: false,
                                    progress: true,
                                }
                            } else {
                                Phase::Deltas {
                                    vol,
                                    at,
                                    open: true,
                                    progress,
                                }
                            }
                        }
                        _ => next,
                    }
                }
                Phase::ChangesStart => {
                    w.begin_section(section::CHANGES, &mut wsink)?;
                    Phase::Changes { vol: 0, at: 0 }
                }
                Phase::Changes { vol, at } => {
                    let next_vol = Phase::Changes {
                        vol: vol + 1,
                        at: 0,
                    };
                    match vols.get(vol).copied() {
                        // The redefined tables follow.
                        None if run.vols => {
                            w.begin_section(section::BLOCK_TABLE, &mut wsink)?;
                            Phase::Tables { vol: 0, cursor: 0 }
                        }
                        None => Phase::Policy { next: 0 },
                        Some(v) => match v.table {
                            None => next_vol,
                            Some(_) if v.ck_new => next_vol,
                            // Emptied since the image may have mapped it:
                            // all of it is unmapped.
                            Some(t) if t.root().is_none() && !v.ck_rooted => next_vol,
                            Some(t) => {
                                let size = t.size();
                                let next = |a: u64| match t.root() {
                                    None => (a < size).then_some(Diff::Unmap {
                                        lba: a,
                                        len: size - a,
                                    }),
                                    Some(_) => t.next_change(nodes, a),
                                };
                                let (at, done) = encode_diffs(next, v.id, at, chunk)?;
                                if let Some(len) = done.len {
                                    w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                                }
                                if done.last {
                                    if let Some(e) = vols.get_mut(vol) {
                                        e.ck_rooted = t.root().is_some();
                                    }
                                    next_vol
                                } else {
                                    if let Some(e) = vols.get_mut(vol) {
                                        e.ck_rooted |= t.root().is_some();
                                    }
                                    Phase::Changes { vol, at }
                                }
                            }
                        },
                    }
                }
                Phase::Rules { next, open } => match quota::next_rules(vols, next) {
                    // The rewind history changes only at assembly, which a
                    // full checkpoint follows.
                    None => Phase::Policy { next: 0 },
                    Some((i, rr)) => {
                        if !open {
                            w.begin_section(RULES, &mut wsink)?;
                        }
                        let mut rec = [0u8; RULE_RECORD_BYTES];
                        rr.encode(&mut Writer::new(&mut rec))?;
                        w.append_record(&rec, &mut wsink)?;
                        Phase::Rules {
                            next: i + 1,
                            open: true,
                        }
                    }
                },
                Phase::Policy { next } => {
                    let follow = Phase::ZoneHistory { next: 0 };
                    if !keeps_policies {
                        follow
                    } else {
                        if next == 0 {
                            // Even empty: loading it clears what an older
                            // checkpoint of the chain said.
                            w.begin_section(POLICY, &mut wsink)?;
                        }
                        match policy::next_policy(&pstate, vols, next) {
                            None => follow,
                            Some((at, p)) => {
                                let mut rec = [0u8; POLICY_RECORD_BYTES];
                                p.encode(&mut Writer::new(&mut rec))?;
                                w.append_record(&rec, &mut wsink)?;
                                Phase::Policy { next: at + 1 }
                            }
                        }
                    }
                }
                Phase::ZoneHistory { next } => {
                    let follow = if delta { Phase::Finish } else { Phase::History };
                    match (history, next) {
                        (false, _) => follow,
                        (true, 0) => {
                            w.begin_section(ZONE_HISTORY, &mut wsink)?;
                            *taken = alloc.clock();
                            history_record(ZoneHistory::Clock(*taken), &mut w, &mut wsink)?;
                            Phase::ZoneHistory { next: 1 }
                        }
                        (true, 1) => {
                            history_record(ZoneHistory::Lifetime(life_avg), &mut w, &mut wsink)?;
                            Phase::ZoneHistory { next: 2 }
                        }
                        (true, n) => match alloc.next_zone_history(n - 2, since) {
                            None => follow,
                            Some((zone, seq, hot)) => {
                                let rec = ZoneHistory::Zone { zone, seq, hot };
                                history_record(rec, &mut w, &mut wsink)?;
                                *hist_recs = hist_recs.saturating_add(1);
                                Phase::ZoneHistory {
                                    next: zone.saturating_add(3),
                                }
                            }
                        },
                    }
                }
                Phase::History => {
                    if let Some(rw) = self.last_rewind {
                        w.begin_section(HISTORY, &mut wsink)?;
                        let mut rec = [0u8; REWIND_RECORD_BYTES];
                        rw.encode(&mut Writer::new(&mut rec))?;
                        w.append_record(&rec, &mut wsink)?;
                    }
                    Phase::Finish
                }
                Phase::Finish => {
                    w.finish(&mut wsink)?;
                    self.ckpt_blocks = u64::from(w.blocks_written());
                    break;
                }
            };
        }
        sink(MetaOp::Flush)?;
        // The set's zones are no longer written: finish them (not active),
        // or leave the tail to the next delta.
        let written = u32::try_from(self.ckpt_blocks)
            .unwrap_or(u32::MAX)
            .saturating_add(run.first);
        let keep = self.deltas_enabled() && !core::mem::take(&mut self.tails_barred);
        self.close_ckpt_zones(set, written, keep, sink)?;
        Ok(true)
    }

    /// The operations of the last [`Self::checkpoint`] completed (`ok`) or
    /// failed (the pool then stops accepting changes: re-assemble it).
    pub fn checkpoint_end(&mut self, ok: bool) -> Result<()> {
        self.alloc.release_closing();
        let Commit::Checkpoint {
            nrec,
            epoch,
            gen,
            seq,
            delta,
        } = self.commit
        else {
            return Err(Error::Invalid("no checkpoint in flight"));
        };
        if self.ckpt_run.is_some() || self.side != Commit::None {
            // Steps left (or a journal commit between them in flight): the
            // checkpoint is not written.
            self.side = Commit::None;
            self.ckpt_failed();
            return Err(Error::Invalid("checkpoint ended before its last step"));
        }
        self.commit = Commit::None;
        // The marks of the checkpoint's changes are spent (a failed one
        // fails the pool).
        self.nodes.clear_changed();
        if !ok {
            self.failed = true;
            return Err(Error::Invalid("checkpoint failed"));
        }
        self.drop_records(nrec);
        // (Journal commits between its steps may have committed newer
        // records: `ckpt_journal.rs`.)
        self.committed_epoch = self.committed_epoch.max(epoch);
        // `ZoneReset` records the checkpoint absorbed are in no journal
        // block: queue them again, so that the journal after this
        // checkpoint names the zone before it is reset (if this checkpoint
        // is ever lost, recovery from the older one must learn it).
        for e in self.zepoch.iter_mut() {
            if *e & RESET_QUEUED != 0 && *e & !RESET_QUEUED <= epoch {
                *e = 0;
            }
        }
        self.ckpt_gen = gen;
        self.ckpt_seq = seq;
        self.history_base = self.history_taken;
        self.durable_seq = self.durable_seq.max(seq);
        // The journal blocks written between its steps come after its
        // journal position: replayed over it.
        self.jblocks_since_ckpt = self.side_blocks;
        self.jrecords_since_ckpt = self.side_recs;
        self.need_ckpt = false;
        self.meta_full = false;
        self.ckpt_retry = false;
        let blocks = u32::try_from(self.ckpt_blocks).unwrap_or(u32::MAX);
        let low = self.meta_low_after(self.ckpt_blocks);
        let st = &mut self.stats;
        st.checkpoint_blocks_written = st
            .checkpoint_blocks_written
            .saturating_add(self.ckpt_blocks);
        if delta && self.vols_changed {
            st.volume_deltas = st.volume_deltas.saturating_add(1);
            let copies = self.vols.iter().filter(|v| v.ck_copy_of.is_some()).count();
            st.delta_copies = st.delta_copies.saturating_add(copies as u64);
            let grows = self.vols.iter().filter(|v| v.ck_grown && !v.ck_new).count();
            st.delta_grows = st.delta_grows.saturating_add(grows as u64);
        }
        // What the volume operations changed is in this checkpoint.
        self.vols_changed = false;
        for v in self.vols.iter_mut() {
            v.ck_new = false;
            v.ck_copy_of = None;
            v.ck_grown = false;
        }
        let st = &mut self.stats;
        if delta {
            let c = &mut self.chain;
            c.next_block = c.next_block.saturating_add(blocks);
            c.delta_blocks = c.delta_blocks.saturating_add(blocks);
            st.delta_checkpoints = st.delta_checkpoints.saturating_add(1);
            st.delta_blocks = u64::from(c.delta_blocks);
            st.last_delta_blocks = self.ckpt_blocks;
        } else {
            self.chain = Chain {
                // Decided when the set's zones were closed.
                open: self.chain.open,
                base: gen,
                next_block: blocks,
                full_blocks: blocks,
                delta_blocks: 0,
                tail: self.chain.tail,
            };
            self.full_due = false;
            // Its layout (a removal waits for a checkpoint in the new one).
            self.ckpt_removed = self.alloc.geom().removed();
            self.meta_low = low;
            st.checkpoint_blocks = self.ckpt_blocks;
            st.delta_blocks = 0;
        }
        let st = &mut self.stats;
        st.checkpoints = st.checkpoints.saturating_add(1);
        st.commits = st.commits.saturating_add(1);
        Ok(())
    }
}

/// Appends one record of the placement history (`format::zone_history`).
fn history_record<B: DerefMut<Target = [u8]>, F: FnMut(u32, &[u8]) -> Result<()>>(
    rec: ZoneHistory,
    w: &mut CheckpointWriter<B>,
    sink: &mut F,
) -> Result<()> {
    let mut b = [0u8; ZONE_HISTORY_RECORD_BYTES];
    rec.encode(&mut Writer::new(&mut b))?;
    w.append_record(&b, sink)
}

/// Where a checkpoint written in steps is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// A delta after volume operations: the copies, from slot `next` on.
    Copies { next: usize },
    /// A delta after volume operations: the redefined volumes, from slot
    /// `next` on.
    Redefined { next: usize },
    /// Volume records, from slot `next` on.
    Volumes { next: usize },
    /// Tables stored in full: slot `vol`, from block `cursor` on.
    Tables { vol: usize, cursor: u64 },
    /// Sharing links, from slot `next` on.
    Links { next: usize },
    /// Delta volumes, each after its base, in passes over the slots: slot
    /// `vol`, whose base record is written if `open` and whose differences
    /// go on at block `at`; `progress`: this pass completed a volume.
    Deltas {
        vol: usize,
        at: u64,
        open: bool,
        progress: bool,
    },
    /// A delta: the start of its section of changes.
    ChangesStart,
    /// A delta: the changes of slot `vol`'s table, from block `at` on.
    Changes { vol: usize, at: u64 },
    /// The volumes' space rules, from slot `next` on (`open`: the section
    /// is begun).
    Rules { next: usize, open: bool },
    /// The placement policies, from position `next` on
    /// (`policy::next_policy`; its section begun at 0).
    Policy { next: usize },
    /// The placement history (`format::zone_history`): 0 the clock, 1 the
    /// mean lifetime, then the zones from zone `next - 2` on.
    ZoneHistory { next: u32 },
    /// The rewind history.
    History,
    /// The commit block.
    Finish,
}

/// A checkpoint written in steps: its generation, writer and position.
#[derive(Clone, Copy, Debug)]
pub(in super::super) struct CkptRun {
    gen: u64,
    /// Index of the checkpoint's header block in its set (0 but for a
    /// delta).
    first: u32,
    w: WriterState,
    phase: Phase,
    /// A delta that carries the volume table.
    vols: bool,
}

/// Blocks the deltas of a chain may add up to even when its full
/// checkpoint is smaller (a delta has at least 3).
pub(super) const DELTA_MIN_BLOCKS: u32 = 64;
/// Free blocks a set must have left for a delta to be tried.
const DELTA_MIN_ROOM: u32 = 16;

/// The chain the newest checkpoint belongs to: a full checkpoint and the
/// deltas appended after it in its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in super::super) struct Chain {
    /// A delta may follow (the pool writes deltas and the chain's set
    /// still takes them).
    pub(super) open: bool,
    /// Generation of the full checkpoint (0: none known: after an
    /// assembly that does not keep the chain it loaded).
    pub(super) base: u64,
    /// Index of the set's next free block.
    pub(super) next_block: u32,
    /// Blocks of the full checkpoint.
    pub(super) full_blocks: u32,
    /// Blocks of the deltas after it.
    pub(super) delta_blocks: u32,
    /// The members whose last zone of the chain's set is partly written
    /// and kept open between checkpoints (bit per member; one member
    /// without checkpoint copies, up to all with them): each member's
    /// first zone of the set holds its open-zone slot, the zone itself is
    /// found from `next_block` (`layout::checkpoint_last_zones`).
    pub(super) tail: u64,
}

impl Chain {
    /// No chain (after an assembly, unless `reassembly.rs` continues it).
    pub(super) const CLOSED: Chain = Chain {
        open: false,
        base: 0,
        next_block: 0,
        full_blocks: 0,
        delta_blocks: 0,
        tail: 0,
    };

    /// Whether a tail zone of member `d` holds an open-zone slot.
    fn holds_tail(&self, d: u16) -> bool {
        self.tail & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0
    }
}

/// Emits block `idx` of the checkpoint whose header is block `first` of
/// set `set` (a flush before the commit block: everything before it must be
/// durable first): both copies with checkpoint copies, but none on the
/// members of `gone` (lost: [`Pool::ckpt_gone`]); at least one must be
/// written.
fn put_block<G, F>(
    geo: &PoolGeometry<G>,
    set: u8,
    first: u32,
    idx: u32,
    b: &[u8],
    gone: u64,
    sink: &mut F,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    F: FnMut(MetaOp<'_>) -> Result<()>,
{
    let at = first.checked_add(idx).ok_or(Error::NoSpace)?;
    let addr = checkpoint_block_addr(geo, set, at).ok_or(Error::NoSpace)?;
    if peek_commit(b) {
        sink(MetaOp::Flush)?;
    }
    let here = |a: u64| {
        geo.locate(a)
            .is_some_and(|l| gone & 1u64.checked_shl(u32::from(l.dev)).unwrap_or(0) == 0)
    };
    let copy = checkpoint_copy_addr(geo, set, at);
    let mut written = false;
    for a in [Some(addr), copy]
        .into_iter()
        .flatten()
        .filter(|a| here(*a))
    {
        sink(MetaOp::Write(a, b))?;
        written = true;
    }
    if !written {
        return Err(Error::Invalid("checkpoint: every copy on a lost member"));
    }
    Ok(())
}

/// What [`encode_diffs`] left in the chunk.
struct DiffChunk {
    /// Bytes of the record to append, if any.
    len: Option<usize>,
    /// The volume's last differences are encoded.
    last: bool,
}

/// Encodes the differences `next(from)` gives (of volume `vol`'s table
/// against its delta base, or its changes since the last checkpoint) from
/// block `at` on into one record in `chunk`, as many as fit. Returns where
/// the next record starts.
fn encode_diffs(
    next: impl Fn(u64) -> Option<Diff>,
    vol: u32,
    mut at: u64,
    chunk: &mut [u8],
) -> Result<(u64, DiffChunk)> {
    let mut pending = next(at);
    if pending.is_none() {
        return Ok((
            at,
            DiffChunk {
                len: None,
                last: true,
            },
        ));
    }
    let mut dw = DiffWriter::new(chunk, vol)?;
    while dw.has_room() {
        let Some(d) = pending else { break };
        let e = match d {
            Diff::Map(x) => DiffEntry {
                map: true,
                lba: x.lba,
                len: x.len.min(u64::from(u32::MAX)) as u32,
                addr: x.addr,
            },
            Diff::Unmap { lba, len } => DiffEntry {
                map: false,
                lba,
                len: len.min(u64::from(u32::MAX)) as u32,
                addr: 0,
            },
        };
        dw.push(&e)?;
        at = e.lba.saturating_add(u64::from(e.len));
        pending = next(at);
    }
    let len = dw.finish()?;
    Ok((
        at,
        DiffChunk {
            len: Some(len),
            last: pending.is_none(),
        },
    ))
}
