// SPDX-License-Identifier: GPL-2.0
//! Commits through the journal: [`Pool::flush`], bounded journal-only
//! commits done outside the caller's lock, their completion, and the clean
//! close.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::layout::log_zone;
use super::super::format::{JournalBuilder, Record, Superblock, BLOCK_SIZE};
use super::super::geom::DeviceGeometry;
use super::super::map::{NodeStore, EXTENT_RECORD_BYTES};
use super::{journal_blocks_for, records_within, Commit, MetaOp, Pool, VolEntry};

/// Records per journal block that count as a full block for the checkpoint
/// interval (a block holds about 150 extent records).
pub const FULL_BLOCK_RECORDS: u64 = 64;
/// Sparse journal blocks (fewer records) postpone a checkpoint up to this
/// many times the checkpoint interval.
pub const SPARSE_BLOCKS_FACTOR: u64 = 8;
/// A log zone holding this many times the checkpoint interval in blocks is
/// left for the other one at the first commit that may switch (the other
/// covered by a checkpoint), full or not: assembly reads every written
/// block of the log zones, and a 1 GiB zone filled before switching would
/// be up to 2 GiB to read for a few MiB of journal to replay.
pub const LOG_SPAN_FACTOR: u64 = 2;

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
    // ---- commit: journal ------------------------------------------------------

    /// Whether the next commit must be a checkpoint (log zones full, journal
    /// interval reached, or after recovery).
    pub fn needs_checkpoint(&self) -> bool {
        if self.meta_full && !self.ckpt_retry {
            // It would not fit: nothing to try until the image can shrink.
            return false;
        }
        if self.alloc.fenced() != 0 {
            // A member being added: the journal commit that writes the
            // superblock naming it comes first (`member_add`).
            return false;
        }
        if self.need_ckpt || (self.meta_low && self.ckpt_retry) {
            return true;
        }
        // Checkpoint while the set's free room can still take what the
        // records since the last one may add (each at most two extents, a
        // split one): the image never outgrows the set between two.
        let room = self
            .checkpoint_capacity_blocks()
            .saturating_sub(self.stats.checkpoint_blocks)
            .saturating_mul(BLOCK_SIZE as u64);
        let recs = self.jrecords_since_ckpt.saturating_add(self.npend as u64);
        if self.stats.checkpoint_blocks > 0
            && recs.saturating_mul(2 * EXTENT_RECORD_BYTES as u64) >= room / 2
        {
            return true;
        }
        if self.need_ckpt {
            return true;
        }
        // The interval counts full journal blocks: commits of a few records
        // each (an fsync per small write) fill a block each, and a checkpoint
        // every `interval` of them rewrote the whole tables many times a
        // second. Sparse blocks count less, up to `SPARSE_BLOCKS_FACTOR`
        // times the interval (replay then reads at most that many blocks).
        let iv = self.interval();
        if self.jblocks_since_ckpt >= iv.saturating_mul(SPARSE_BLOCKS_FACTOR)
            || (self.jblocks_since_ckpt >= iv
                && self.jrecords_since_ckpt >= iv.saturating_mul(FULL_BLOCK_RECORDS))
        {
            return true;
        }
        // Current log zone more than half full and the other one not yet
        // covered by a checkpoint: checkpoint now, so that switching is
        // possible when the current one fills.
        let Some(cur) = self.jlog else {
            return self.log_max_seq.iter().any(|&s| s > self.ckpt_seq);
        };
        let other = 1 - cur;
        let cap = self.log_zone_cap(cur).map_or(0, |(_, c)| c);
        self.jwp.saturating_mul(2) >= cap
            && self
                .log_max_seq
                .get(usize::from(other))
                .copied()
                .unwrap_or(0)
                > self.ckpt_seq
    }

    /// FLUSH: commits every record queued so far; then call
    /// [`Self::flush_end`]. Normally emits `Flush` (data durable), the
    /// log-zone switch if needed, the journal blocks and a final `Flush`,
    /// and returns the number of journal blocks. When a checkpoint is due
    /// ([`Self::needs_checkpoint`], e.g. always after recovery) or the
    /// blocks cannot be placed in a log zone, it writes a checkpoint instead
    /// (see [`Self::checkpoint`]; returns 0) — a checkpoint commits too.
    /// Returns 0 without emitting anything when nothing is queued.
    /// `Busy` if a commit is in flight (or, rarely, a checkpoint zone cannot
    /// be opened while writes are in flight: retry after they complete).
    /// `scratch` is two blocks (one is enough when no checkpoint is needed).
    pub fn flush<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        if self.read_only {
            // Nothing can be queued: every change was refused.
            return Ok(0);
        }
        self.live()?;
        if self.commit != Commit::None {
            return Err(Error::Busy);
        }
        // No commit in flight: the operations emitted before are done.
        self.alloc.release_closing();
        if self.npend == 0 && !self.sb_dirty {
            self.all_committed();
            return Ok(0);
        }
        if !self.needs_checkpoint() {
            match self.flush_journal(scratch, sink) {
                Err(Error::Busy) => {}
                r => return r,
            }
        }
        if scratch.len() < 2 * BLOCK_SIZE {
            return Err(Error::Busy);
        }
        self.checkpoint(scratch, sink).map(|()| 0)
    }

    /// The first phase of a journal commit done by the caller outside its
    /// lock: emits the operations of [`Self::flush`] for at most
    /// `max_blocks` journal blocks of the oldest queued records (plus the
    /// superblock block of a log-zone switch), without a checkpoint. The
    /// caller records them, performs them later (while other changes are
    /// queued) and calls [`Self::flush_end`]. `Ok(None)`: a checkpoint is
    /// due, nothing emitted (call [`Self::flush`]); `Ok(Some(0))`: nothing
    /// queued. Records queued after this call wait for the next commit.
    pub fn flush_journal_only<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        max_blocks: u64,
        sink: &mut F,
    ) -> Result<Option<u64>> {
        if self.read_only {
            return Ok(Some(0));
        }
        self.live()?;
        if self.commit != Commit::None {
            return Err(Error::Busy);
        }
        self.alloc.release_closing();
        if self.npend == 0 && !self.sb_dirty {
            self.all_committed();
            return Ok(Some(0));
        }
        let queued = self.recs.get(..self.npend).unwrap_or(&[]);
        let nrec = self.mirror_safe_prefix(records_within(queued, max_blocks.max(1)));
        let queued = self.recs.get(..self.npend).unwrap_or(&[]);
        // A checkpoint is due. If the queue holds a volume operation, the
        // journal takes the whole queue first when it can (the checkpoint
        // that follows, committing none of it, can then take journal
        // commits between its steps: `ckpt_journal.rs`).
        if self.needs_checkpoint() && (self.records_replay_over_image() || nrec < self.npend) {
            return Ok(None);
        }
        // A changed superblock alone is committed with an empty block.
        let nblocks = journal_blocks_for(queued.get(..nrec).unwrap_or(&[])).max(1);
        if nrec == 0 && self.npend > 0 {
            return Ok(None);
        }
        match self.flush_journal_blocks(nrec, nblocks, scratch, sink) {
            Err(Error::Busy) => Ok(None),
            r => r.map(Some),
        }
    }

    /// The journal part of [`Self::flush`]: `Busy` (nothing emitted) when a
    /// checkpoint is needed first.
    fn flush_journal<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        let nrec = self.npend;
        // A changed superblock alone is committed with an empty block.
        let nblocks = journal_blocks_for(self.recs.get(..nrec).unwrap_or(&[])).max(1);
        self.flush_journal_blocks(nrec, nblocks, scratch, sink)
    }

    /// [`Self::flush_journal`] of the first `nrec` queued records in
    /// `nblocks` blocks (`nrec == 0`: one empty commit block).
    fn flush_journal_blocks<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        nrec: usize,
        nblocks: u64,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<u64> {
        if self.need_ckpt {
            return Err(Error::Busy);
        }
        let geo_cap = |p: &Self, i: u8| p.log_zone_cap(i);
        let fits = match self.jlog.and_then(|i| geo_cap(self, i)) {
            Some((_, cap)) => self.jwp.saturating_add(nblocks) <= cap,
            None => false,
        };
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch"))?;
        let mut switch: Option<(u8, u32, Option<u32>)> = None;
        // A changed superblock (feature bits) is written at a log-zone
        // switch: force one. A long log zone is left as soon as it may be
        // (`LOG_SPAN_FACTOR`).
        let long = self.jlog.is_some()
            && self.jwp >= self.interval().saturating_mul(LOG_SPAN_FACTOR)
            && self.log_switch_target().is_some();
        if !fits || self.sb_dirty || long {
            let next = self.log_switch_target().ok_or(Error::Busy)?;
            let (z, cap) = geo_cap(self, next).ok_or(Error::Corrupt("log zone"))?;
            if nblocks.saturating_add(1) > cap {
                // More than a log zone holds: commit with a checkpoint.
                return Err(Error::Busy);
            }
            let old = self
                .jlog
                .and_then(|c| log_zone(self.alloc.geom(), self.jdev, u32::from(c)));
            switch = Some((next, z, old));
        }
        let r = self.emit_journal(nrec, nblocks, switch, blk, sink);
        self.commit = self.or_fail(r)?;
        Ok(nblocks)
    }

    /// Journal blocks between checkpoints (the superblock's interval, or
    /// the override of [`Self::set_checkpoint_interval`]).
    pub(super) fn interval(&self) -> u64 {
        u64::from(match self.interval_override {
            0 => self.sb.checkpoint_interval,
            o => o,
        })
    }

    /// `r`, the pool failed if it is an error.
    pub(super) fn or_fail<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// The log zone the journal can switch to now, if any: it must be
    /// covered by the checkpoint, and the other log zone must hold a
    /// superblock at least as new as its own (so that a crash right after
    /// the reset leaves the member its newest superblock); after recovery
    /// (no current zone) either may do.
    pub(super) fn log_switch_target(&self) -> Option<u8> {
        let next = match self.jlog {
            Some(c) => 1 - c,
            None => 0,
        };
        let covered =
            |i: u8| self.log_max_seq.get(usize::from(i)).copied().unwrap_or(0) <= self.ckpt_seq;
        let gen = |i: u8| self.log_sb_gen.get(usize::from(i)).copied().unwrap_or(0);
        let mgen = |i: u8| self.mlog_sb_gen.get(usize::from(i)).copied().unwrap_or(0);
        let usable = |i: u8| {
            covered(i) && gen(1 - i) >= gen(i) && (self.jmirror.is_none() || mgen(1 - i) >= mgen(i))
        };
        if usable(next) {
            Some(next)
        } else if self.jlog.is_none() && usable(1) {
            Some(1)
        } else {
            None
        }
    }

    /// Emits the journal commit of the first `nrec` queued records in
    /// `nblocks` blocks (after a log-zone switch if `switch`); returns the
    /// commit in flight, for [`Self::flush_end`] (or
    /// `journal_in_checkpoint_end`). After an error the caller fails the
    /// pool ([`Self::or_fail`]: operations may have been emitted, the
    /// journal position is unknown).
    pub(super) fn emit_journal<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        nrec: usize,
        nblocks: u64,
        switch: Option<(u8, u32, Option<u32>)>,
        blk: &mut [u8],
        sink: &mut F,
    ) -> Result<Commit> {
        sink(MetaOp::Flush)?;
        if let Some((next, z, old)) = switch {
            // A member being added gets its superblock first (so that the
            // journal member's, the commit point, never names a member
            // without one).
            self.emit_new_member_sb(blk, sink)?;
            // The mirror's log zones switch with the journal member's (a
            // mirror chosen by a member removal holds no journal yet).
            let mold = self
                .jlog
                .filter(|_| !self.jmirror_fresh)
                .and_then(|c| self.mirror_log_zone(c));
            self.jmirror_fresh = false;
            for o in [old, mold].into_iter().flatten() {
                // Its slot goes to the next log zone at once: the finish
                // below runs before the next zone's first write.
                let _ = self.alloc.meta_open(o, false);
                let full = self
                    .alloc
                    .geom()
                    .zone_cap(o)
                    .map(|c| self.jwp >= c)
                    .unwrap_or(true);
                if !full && !self.zone_conv(o) {
                    sink(MetaOp::Finish(o))?;
                }
            }
            let mz = self.mirror_log_zone(next);
            for r in [Some(z), mz].into_iter().flatten() {
                if !self.zone_conv(r) {
                    sink(MetaOp::Reset(r))?;
                }
            }
            if let Some(m) = self.log_max_seq.get_mut(usize::from(next)) {
                *m = 0;
            }
            if let Some(e) = self.log_end.get_mut(usize::from(next)) {
                *e = 0;
            }
            if let Some(w) = self.log_writers.get_mut(usize::from(next)) {
                *w = (self.jdev, self.jmirror);
            }
            for g in [&mut self.log_sb_gen, &mut self.mlog_sb_gen] {
                if let Some(o) = g.get_mut(usize::from(next)) {
                    *o = 0;
                }
            }
            for (d, r) in [(Some(self.jdev), Some(z)), (self.jmirror, mz)] {
                let (Some(d), Some(r)) = (d, r) else { continue };
                self.encode_sb_for(d, blk)?;
                let start = self
                    .alloc
                    .geom()
                    .zone_start(r)
                    .ok_or(Error::Corrupt("log zone"))?;
                sink(MetaOp::Write(start, blk))?;
                self.alloc.meta_open(r, true)?;
            }
            self.jlog = Some(next);
            self.jwp = 1;
        }
        let log = self.jlog.ok_or(Error::Corrupt("no log zone"))?;
        let z = log_zone(self.alloc.geom(), self.jdev, u32::from(log))
            .ok_or(Error::Corrupt("log zone"))?;
        let start = self
            .alloc
            .geom()
            .zone_start(z)
            .ok_or(Error::Corrupt("log zone"))?;
        // The copy goes to the same offset of the mirror's log zone.
        let mstart = match self.mirror_log_zone(log) {
            Some(mz) => Some(
                self.alloc
                    .geom()
                    .zone_start(mz)
                    .ok_or(Error::Corrupt("log zone"))?,
            ),
            None => None,
        };
        let mut seq = self.jseq;
        let mut i = 0usize;
        let mut written = 0u64;
        let groups = self.commit_blocks();
        while i < nrec || written < nblocks.min(1) {
            let mut b = JournalBuilder::new(blk, self.sb.pool_uuid, seq, self.ckpt_gen)?;
            while i < nrec {
                let rec = *self.recs.get(i).ok_or(Error::Corrupt("record queue"))?;
                if !b.fits(&rec) {
                    break;
                }
                b.push(&rec)?;
                i = i.saturating_add(1);
            }
            if b.is_empty() && nrec > 0 {
                return Err(Error::Corrupt("journal record does not fit"));
            }
            let last = i >= nrec;
            if groups {
                // The group's last block is written only once all its
                // other blocks are durable: a commit-flagged block proves
                // the whole group was committed.
                b.set_commit(self.durable_seq, last)?;
                if last && written > 0 {
                    sink(MetaOp::Flush)?;
                }
            }
            b.finish()?;
            let off = self.jwp.saturating_add(written);
            sink(MetaOp::Write(start.saturating_add(off), blk))?;
            if let Some(ms) = mstart {
                sink(MetaOp::Write(ms.saturating_add(off), blk))?;
            }
            written = written.saturating_add(1);
            seq = seq.saturating_add(1);
        }
        if written != nblocks {
            return Err(Error::Corrupt("journal block count"));
        }
        sink(MetaOp::Flush)?;
        if switch.is_some() {
            // The other members' copies follow the commit point.
            self.emit_member_sb_copies(blk, sink)?;
        }
        // A commit of only some of the queued records proves nothing about
        // the invalidations stamped with this epoch by the others: it
        // leaves the committed epoch where it is (a zone emptied by a
        // record still queued is not reset on its account).
        let epoch = if nrec >= self.npend {
            self.cur_epoch
        } else {
            self.committed_epoch
        };
        self.cur_epoch = self.cur_epoch.saturating_add(1);
        Ok(Commit::Journal {
            nrec,
            epoch,
            nblocks,
            last_seq: seq.saturating_sub(1),
            log,
            sb: switch.map(|_| self.sb.generation),
        })
    }

    /// The operations of the last [`Self::flush`] completed (`ok`) or one of
    /// them failed (this also ends a checkpoint that `flush` wrote). After a
    /// failure the pool stops accepting changes (the
    /// journal position is unknown): re-assemble it.
    pub fn flush_end(&mut self, ok: bool) -> Result<()> {
        // The operations emitted are done: meta zones they closed give
        // their slots back.
        self.alloc.release_closing();
        if let Commit::Checkpoint { .. } = self.commit {
            return self.checkpoint_end(ok);
        }
        let c = core::mem::replace(&mut self.commit, Commit::None);
        self.journal_end(c, ok).map(|_| ())
    }

    /// Ends journal commit `c` (taken out of where it was in flight): its
    /// records are committed (returns how many, and its blocks), or the
    /// pool fails (`!ok`: its journal position is unknown).
    pub(super) fn journal_end(&mut self, c: Commit, ok: bool) -> Result<(usize, u64)> {
        let Commit::Journal {
            nrec,
            epoch,
            nblocks,
            last_seq,
            log,
            sb,
        } = c
        else {
            return Err(Error::Invalid("no journal commit in flight"));
        };
        if !ok {
            self.failed = true;
            return Err(Error::Invalid("journal commit failed"));
        }
        self.drop_records(nrec);
        self.committed_epoch = self.committed_epoch.max(epoch);
        self.durable_seq = last_seq;
        self.jseq = last_seq.saturating_add(1);
        self.jwp = self.jwp.saturating_add(nblocks);
        self.jblocks_since_ckpt = self.jblocks_since_ckpt.saturating_add(nblocks);
        self.jrecords_since_ckpt = self.jrecords_since_ckpt.saturating_add(nrec as u64);
        if let Some(m) = self.log_max_seq.get_mut(usize::from(log & 1)) {
            *m = last_seq;
        }
        if let Some(e) = self.log_end.get_mut(usize::from(log & 1)) {
            *e = self.jwp;
        }
        // The superblock written at the switch is durable now too.
        if let Some(g) = sb {
            self.stats.log_switches = self.stats.log_switches.saturating_add(1);
            for gens in [&mut self.log_sb_gen, &mut self.mlog_sb_gen] {
                if let Some(o) = gens.get_mut(usize::from(log & 1)) {
                    *o = g;
                }
            }
        }
        if sb == Some(self.sb.generation) {
            self.sb_dirty = false;
            // A member added (or removed) is named by a durable superblock
            // now.
            let added = self.alloc.fenced() != 0;
            self.alloc.unfence();
            self.removing = false;
            if added {
                // Mirrored copies lost with a member go to it.
                self.rewalk_mirrored();
            }
        }
        self.stats.journal_blocks = self.stats.journal_blocks.saturating_add(nblocks);
        self.stats.commits = self.stats.commits.saturating_add(1);
        // A full log zone is no longer active on the device.
        let zones = [
            log_zone(self.alloc.geom(), self.jdev, u32::from(log)),
            self.mirror_log_zone(log),
        ];
        for z in zones.into_iter().flatten() {
            if self.alloc.geom().zone_cap(z).map(|c| self.jwp >= c) == Some(true) {
                let _ = self.alloc.meta_open(z, false);
            }
        }
        Ok((nrec, nblocks))
    }

    /// Clean stop, after the last commit: appends an empty commit-flagged
    /// journal block (then `Flush`) naming the last commit, so that damage
    /// to the newest commit group is told from a torn tail at the next
    /// assembly. Returns whether a block was emitted (nothing on a
    /// read-only or failed pool, a pool without commit groups, with records
    /// queued, before the first checkpoint after an assembly that needs one
    /// first, or with the log
    /// zone full). The engine takes no more changes afterwards.
    pub fn close<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<bool> {
        if self.read_only
            || self.failed
            || !self.commit_blocks()
            || self.commit != Commit::None
            || self.npend != 0
            || self.need_ckpt
        {
            return Ok(false);
        }
        // One empty block, placed like any commit (a log-zone switch if
        // needed); the engine takes no change afterwards.
        let r = match self.flush_journal_blocks(0, 1, scratch, sink) {
            Ok(_) => self.flush_end(true).map(|()| true),
            Err(Error::Busy) => Ok(false),
            Err(e) => Err(e),
        };
        self.failed = true;
        r
    }

    /// Nothing is queued and no commit is in flight: every record ever
    /// queued is durable, so every invalidation stamped so far is covered
    /// (invalidations without a record — unused GC copies, blocks of failed
    /// mappings — never needed a commit).
    pub(super) fn all_committed(&mut self) {
        if self.npend == 0 && self.commit == Commit::None {
            self.committed_epoch = self.cur_epoch;
            self.cur_epoch = self.cur_epoch.saturating_add(1);
        }
    }

    pub(super) fn drop_records(&mut self, nrec: usize) {
        let n = nrec.min(self.npend);
        let end = self.npend.min(self.recs.len());
        self.recs.copy_within(n.min(end)..end, 0);
        self.npend = self.npend.saturating_sub(n);
        self.stats.records_committed = self.stats.records_committed.saturating_add(n as u64);
    }
}
