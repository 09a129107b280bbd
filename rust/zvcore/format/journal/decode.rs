// SPDX-License-Identifier: GPL-2.0
//! Reading journal blocks: the decoded [`JournalHeader`], the records of a
//! block ([`RecordIter`], [`decode_journal_block`]) and the scan of a log
//! zone ([`JournalBlockIter`]).

use super::super::super::codec::Reader;
use super::super::super::error::{Error, Result};
use super::super::{all_zero, check_block, Uuid, BLOCK_SIZE, JOURNAL_MAGIC, MAX_GENERATION};
use super::{Record, JF_COMMIT, JF_KNOWN, JOURNAL_PAYLOAD_MAX};

/// The decoded header of a journal block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// Pool the block belongs to (the caller checks it against the superblock;
    /// blocks of another pool are stale).
    pub pool_uuid: Uuid,
    /// Sequence number (>= 1, +1 per block over the pool's life).
    pub seq: u64,
    /// Generation of the newest committed checkpoint when the block was
    /// written (0 = none yet). Replay from checkpoint `g` must never meet a
    /// block with a larger value (that would mean a newer checkpoint exists).
    pub ckpt_gen: u64,
    /// Number of records (including skipped compat records).
    pub nr_records: u16,
    /// Bytes of record payload.
    pub payload_len: u32,
    /// `JF_*` flags ([`JF_COMMIT`]: the block ends a commit group).
    pub flags: u16,
    /// The newest journal sequence known committed when the block was
    /// written (0 on pools without commit groups); always `< seq`.
    pub commit_seq: u64,
}

impl JournalHeader {
    /// The journal sequence this block proves committed: its own if it
    /// ends a commit group, else its commit sequence.
    pub const fn proves_committed(&self) -> u64 {
        if self.flags & JF_COMMIT != 0 {
            self.seq
        } else {
            self.commit_seq
        }
    }
}

/// Iterates over the records of a decoded journal block (unknown compat
/// records are skipped). After an error it yields nothing more.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    payload: &'a [u8],
    pos: usize,
    left: u16,
}

impl RecordIter<'_> {
    /// Payload bytes not consumed yet.
    fn rest(&self) -> usize {
        self.payload.len().saturating_sub(self.pos)
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        while self.left > 0 {
            self.left -= 1;
            let mut r = Reader::new(self.payload.get(self.pos..).unwrap_or(&[]));
            let res = Record::decode(&mut r);
            self.pos = self.pos.saturating_add(r.pos());
            match res {
                Ok(Some(rec)) => return Some(Ok(rec)),
                Ok(None) => continue,
                Err(e) => {
                    self.left = 0;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Decodes and validates a journal block. All records are validated before
/// this returns `Ok`, so a block is either applied whole or not at all; the
/// returned iterator then yields only `Ok` records.
///
/// Errors: [`Error::Truncated`] (short buffer), [`Error::BadMagic`],
/// [`Error::BadChecksum`] (torn / corrupt: replay stops here),
/// [`Error::BadField`], [`Error::Unsupported`] (unknown incompat record).
/// The caller checks `pool_uuid` and the sequence continuity.
pub fn decode_journal_block(buf: &[u8]) -> Result<(JournalHeader, RecordIter<'_>)> {
    let (blk, _) = check_block(buf, JOURNAL_MAGIC)?;
    let mut r = Reader::new(blk);
    r.skip(12)?;
    let nr_records = r.get_u16()?;
    let flags = r.get_u16()?;
    if flags & !JF_KNOWN != 0 {
        return Err(Error::BadField("journal: flags"));
    }
    let payload_len = r.get_u32()?;
    if r.get_u32()? != 0 {
        return Err(Error::BadField("journal: reserved"));
    }
    let pool_uuid = r.get_array::<16>()?;
    let seq = r.get_u64()?;
    let ckpt_gen = r.get_u64()?;
    let commit_seq = r.get_u64()?;
    if seq == 0 || seq > MAX_GENERATION {
        return Err(Error::BadField("journal: sequence"));
    }
    if ckpt_gen > MAX_GENERATION {
        return Err(Error::BadField("journal: checkpoint generation"));
    }
    if commit_seq >= seq {
        return Err(Error::BadField("journal: commit sequence"));
    }
    let plen =
        usize::try_from(payload_len).map_err(|_| Error::BadField("journal: payload length"))?;
    if plen > JOURNAL_PAYLOAD_MAX {
        return Err(Error::BadField("journal: payload length"));
    }
    let payload = r.get_bytes(plen)?;
    if !all_zero(r.get_bytes(r.remaining())?) {
        return Err(Error::BadField("journal: tail not zero"));
    }
    let hdr = JournalHeader {
        pool_uuid,
        seq,
        ckpt_gen,
        nr_records,
        payload_len,
        flags,
        commit_seq,
    };
    let iter = RecordIter {
        payload,
        pos: 0,
        left: nr_records,
    };
    // Validation pass: every record decodes and the count matches the length.
    let mut check = iter.clone();
    for rec in check.by_ref() {
        rec?;
    }
    if check.rest() != 0 {
        return Err(Error::BadField("journal: record count"));
    }
    Ok((hdr, iter))
}

/// One block found while scanning a log zone with [`JournalBlockIter`].
#[derive(Clone, Debug)]
pub enum LogBlock<'a> {
    /// A superblock copy (decode it with `Superblock::decode`).
    Superblock(&'a [u8]),
    /// A journal block that decoded and validated.
    Journal(JournalHeader, RecordIter<'a>),
    /// A block with the journal magic that failed to decode (torn or
    /// corrupt): for the replay it is a gap.
    Bad(Error),
}

/// Scans a contiguous buffer of log-zone blocks (e.g. a log zone read up to
/// its write pointer) block by block. Yields `(block index, LogBlock)` and
/// stops at the first block that is neither a superblock nor a journal block
/// (never-written space on a conventional device) or at the end of the
/// buffer (a trailing partial block is ignored). Blocks are not ordered or
/// filtered by pool: the caller sorts journal blocks by sequence number and
/// checks `pool_uuid`.
#[derive(Clone, Debug)]
pub struct JournalBlockIter<'a> {
    buf: &'a [u8],
    index: usize,
    done: bool,
}

impl<'a> JournalBlockIter<'a> {
    /// A scan of `buf` (a multiple of [`BLOCK_SIZE`] bytes).
    pub fn new(buf: &'a [u8]) -> Self {
        JournalBlockIter {
            buf,
            index: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for JournalBlockIter<'a> {
    type Item = (usize, LogBlock<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.index.checked_mul(BLOCK_SIZE)?;
        let end = start.checked_add(BLOCK_SIZE)?;
        let Some(blk) = self.buf.get(start..end) else {
            self.done = true;
            return None;
        };
        let item = match super::super::block_kind(blk) {
            super::super::BlockKind::Superblock => LogBlock::Superblock(blk),
            super::super::BlockKind::Journal => match decode_journal_block(blk) {
                Ok((h, it)) => LogBlock::Journal(h, it),
                Err(e) => LogBlock::Bad(e),
            },
            _ => {
                self.done = true;
                return None;
            }
        };
        let i = self.index;
        self.index = i.saturating_add(1);
        Some((i, item))
    }
}
