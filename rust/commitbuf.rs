// SPDX-License-Identifier: GPL-2.0
//! The buffer of a pool's commits: the metadata operations the engine
//! emits in a commit's prepare step, and copies of the blocks they write
//! (allocated once per pool; nothing is allocated on the way). The commit
//! protocol that fills and runs it is `commit.rs`.

use crate::kwrap::{bio::Slot, metaio::MetaRun};
use crate::zvcore::{self, pool::MetaOp};
use kernel::prelude::*;

/// Journal blocks one commit writes at most (the buffer: 128 KiB). A full
/// record queue of block mappings fits; more records commit in several
/// rounds.
pub(crate) const COMMIT_BLOCKS: usize = 32;

/// Operations one commit records at most: its blocks, the flushes, a
/// log-zone switch, and the finishes and resets of a maintenance round.
const COMMIT_OPS: usize = 2 * COMMIT_BLOCKS + 2 * RESETS_PER_ROUND as usize + 16;

/// Zone resets one maintenance round plans at most.
pub(crate) const RESETS_PER_ROUND: u32 = 64;

/// A metadata operation recorded for the I/O step.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Flush,
    Reset(u32),
    Finish(u32),
    /// Block `slot` of the buffer to pool address `addr`.
    Write {
        addr: u64,
        slot: usize,
    },
}

/// The operations of the commit being prepared or performed, and copies of
/// the blocks it writes. One per pool, behind the commit lock.
pub(crate) struct CommitBuf {
    pub(crate) ops: KVec<Op>,
    pub(crate) data: MetaRun,
    used: usize,
    /// One per member: the flushes of one [`Op::Flush`].
    pub(crate) slots: KVec<Slot>,
    /// Data zones whose finish or reset failed because the device made
    /// them read-only (`true`) or offline: told to the engine after the
    /// round (`commit.rs`, `maintain`). Capacity reserved at creation.
    pub(crate) unusable: KVec<(u32, bool)>,
}

/// Zones [`CommitBuf::unusable`] holds at most per round (more are found
/// again by the next round's attempt).
const UNUSABLE_MAX: usize = 16;

/// Blocks of the buffer of a pool of `members` members: a journal commit
/// or a checkpoint step ([`COMMIT_BLOCKS`] blocks at most), each block
/// twice (journal and checkpoint copies: a slot per write), the superblock
/// of a log-zone switch on the journal member and its mirror, two on a
/// member being added, and its copies on the other members.
fn data_blocks(members: usize) -> usize {
    2 * COMMIT_BLOCKS + 4 + members
}

/// Operations of the buffer of a pool of `members` members (the copies of
/// a superblock take four each at most).
fn op_count(members: usize) -> usize {
    COMMIT_OPS + 4 * members + 8
}

impl CommitBuf {
    /// The buffer of a pool of `members` members.
    pub(crate) fn new(members: usize) -> Result<Self> {
        let mut b = Self {
            ops: KVec::new(),
            data: MetaRun::new(0)?,
            used: 0,
            slots: KVec::new(),
            unusable: KVec::with_capacity(UNUSABLE_MAX, GFP_KERNEL)?,
        };
        b.ensure_members(members)?;
        Ok(b)
    }

    /// Grows the buffer for a pool of `members` members (a member added
    /// online); never shrinks it. On error it is unchanged but for spare
    /// capacity.
    pub(crate) fn ensure_members(&mut self, members: usize) -> Result {
        let ops = op_count(members);
        if self.ops.capacity() < ops {
            self.ops
                .reserve(ops.saturating_sub(self.ops.len()), GFP_KERNEL)?;
        }
        let blocks = data_blocks(members);
        if self.data.capacity() < blocks {
            let data = MetaRun::new(blocks)?;
            self.clear();
            self.data = data;
        }
        while self.slots.len() < members {
            self.slots.push(Slot::new(), GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Block slots taken so far (a block written to two members takes two).
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    pub(crate) fn clear(&mut self) {
        self.ops.clear();
        self.used = 0;
        self.unusable.clear();
    }

    /// Notes a data zone the device made unusable (dropped when the round
    /// already noted [`UNUSABLE_MAX`]: the next round finds it again).
    pub(crate) fn note_unusable(&mut self, zone: u32, readable: bool) -> bool {
        if self.unusable.len() >= UNUSABLE_MAX {
            return false;
        }
        // Within the reserved capacity: no allocation.
        self.unusable.push((zone, readable), GFP_NOWAIT).is_ok()
    }

    /// The engine's callback in the prepare step: records `op` (no
    /// allocation; the capacity covers what the engine is asked for).
    pub(crate) fn record(&mut self, op: MetaOp<'_>) -> zvcore::error::Result<()> {
        let full = zvcore::error::Error::Corrupt("commit buffer full");
        let rec = match op {
            MetaOp::Flush => Op::Flush,
            MetaOp::Reset(z) => Op::Reset(z),
            MetaOp::Finish(z) => Op::Finish(z),
            MetaOp::Write(addr, b) => {
                let slot = self.used;
                let dst = self.data.block_mut(slot).ok_or(full)?;
                if b.len() != dst.len() {
                    return Err(zvcore::error::Error::Invalid("metadata block size"));
                }
                dst.copy_from_slice(b);
                self.used += 1;
                Op::Write { addr, slot }
            }
        };
        self.ops.push_within_capacity(rec).map_err(|_| full)
    }
}
