// SPDX-License-Identifier: GPL-2.0
//! Journal commits between the steps of a checkpoint.
//!
//! A checkpoint written in steps takes a while (about 1,500 blocks for a
//! few GiB mapped, written in steps of 32), and the pool goes on taking
//! writes meanwhile. Their records used to wait for the checkpoint's end:
//! the record queue filled and every write in flight waited for the whole
//! checkpoint. A journal commit between two steps commits them:
//!
//! - it writes every queued record (the checkpoint's own ones first, in
//!   queue order) after the journal position the checkpoint names, in the
//!   log zone the journal uses now (never a log-zone switch: the other log
//!   zone is covered only by the checkpoint in flight);
//! - if the checkpoint is lost (a crash before its last block), the newest
//!   checkpoint before it and the journal since describe everything,
//!   these blocks included: the journal stays one unbroken sequence;
//! - if the checkpoint completes, recovery replays these blocks over its
//!   image, as it replays the records of the writes that ran between its
//!   steps: an image taken later than a record holds its effect or a
//!   newer one, and replaying map, unmap and relocation records in order
//!   over it ends in the same tables. Records that do not replay that way
//!   (volume operations: a volume created twice) are refused during a
//!   checkpoint; a checkpoint that commits some (queued before it began)
//!   takes no journal commit between its steps (`Pool::side_ok`). So when
//!   a checkpoint is due with such a record queued, the journal takes the
//!   queue first if it can (`Pool::flush_journal_only`).
//!
//! The blocks name the newest committed checkpoint generation, as every
//! journal block does: recovery from it (the one in flight lost) does not
//! take them for proof of a newer checkpoint.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::{Record, Superblock, BLOCK_SIZE};
use super::super::geom::DeviceGeometry;
use super::super::map::NodeStore;
use super::{journal_blocks_for, records_within, Commit, MetaOp, Pool, VolEntry};

/// Whether `rec` may be replayed over a checkpoint image that already
/// holds its effect: mappings and relocations (the same tables after it),
/// zone notes (no effect on the tables).
pub(super) fn replays_over_image(rec: &Record) -> bool {
    matches!(
        rec,
        Record::MapExtent { .. }
            | Record::Unmap { .. }
            | Record::Relocate { .. }
            | Record::ZoneReset { .. }
            | Record::ZoneFinish { .. }
    )
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
    /// Whether the checkpoint about to begin may take journal commits
    /// between its steps: every record it commits replays over its image.
    pub(super) fn records_replay_over_image(&self) -> bool {
        self.recs
            .get(..self.npend)
            .is_some_and(|q| q.iter().all(replays_over_image))
    }

    /// A journal commit between two steps of the checkpoint in flight
    /// (after a step's operations are done, before the next step): emits
    /// `Flush`, the journal blocks of the oldest queued records (at most
    /// `max_blocks`) and `Flush`, and returns how many blocks; call
    /// [`Self::journal_in_checkpoint_end`] once they are done. `Ok(0)`,
    /// nothing emitted, when nothing is queued or the journal cannot take
    /// them now (its log zone full, a superblock to write, a checkpoint
    /// that commits volume operations, its last step emitted, or such a
    /// commit in flight already): the records wait for the checkpoint's
    /// end. `scratch` is one block.
    pub fn journal_in_checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        max_blocks: u64,
        sink: &mut F,
    ) -> Result<u64> {
        self.live()?;
        if !matches!(self.commit, Commit::Checkpoint { .. }) {
            return Err(Error::Invalid("no checkpoint in flight"));
        }
        if self.npend == 0
            || self.ckpt_run.is_none()
            || self.side != Commit::None
            || !self.side_ok
            || self.sb_dirty
            || self.need_ckpt
            || self.alloc.fenced() != 0
        {
            return Ok(0);
        }
        let queued = self.recs.get(..self.npend).unwrap_or(&[]);
        let nrec = self.mirror_safe_prefix(records_within(queued, max_blocks.max(1)));
        if nrec == 0 {
            return Ok(0);
        }
        let queued = self.recs.get(..self.npend).unwrap_or(&[]);
        let nblocks = journal_blocks_for(queued.get(..nrec).unwrap_or(&[])).max(1);
        let fits = self
            .jlog
            .and_then(|i| self.log_zone_cap(i))
            .is_some_and(|(_, cap)| self.jwp.saturating_add(nblocks) <= cap);
        if !fits {
            return Ok(0);
        }
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch"))?;
        let r = self.emit_journal(nrec, nblocks, None, blk, sink);
        self.side = self.or_fail(r)?;
        Ok(nblocks)
    }

    /// The operations of the last [`Self::journal_in_checkpoint`] are done
    /// (`ok`) or one failed: its records are committed (the checkpoint in
    /// flight commits fewer), or the pool fails (its journal position is
    /// unknown: re-assemble it).
    pub fn journal_in_checkpoint_end(&mut self, ok: bool) -> Result<()> {
        let c = core::mem::replace(&mut self.side, Commit::None);
        let (nrec, nblocks) = self.journal_end(c, ok)?;
        // The checkpoint's own records (the oldest queued) went first.
        if let Commit::Checkpoint { nrec: n, .. } = &mut self.commit {
            *n = n.saturating_sub(nrec);
        }
        self.side_blocks = self.side_blocks.saturating_add(nblocks);
        self.side_recs = self.side_recs.saturating_add(nrec as u64);
        self.stats.side_commits = self.stats.side_commits.saturating_add(1);
        Ok(())
    }

    /// Whether a journal commit between checkpoint steps is in flight.
    pub fn journal_in_checkpoint_pending(&self) -> bool {
        self.side != Commit::None
    }
}
