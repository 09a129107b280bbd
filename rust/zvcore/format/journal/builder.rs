// SPDX-License-Identifier: GPL-2.0
//! Writing a journal block: [`JournalBuilder`].

use super::super::super::codec::Writer;
use super::super::super::error::{Error, Result};
use super::super::{seal_block, Uuid, BLOCK_SIZE, JOURNAL_MAGIC};
use super::{Record, JF_COMMIT, JOURNAL_HEADER_LEN, RECORD_PREFIX_LEN, TAG_COMPAT};

/// Fills a caller-provided 4 KiB buffer with journal records.
///
/// ```text
/// let mut b = JournalBuilder::new(&mut buf, pool_uuid, seq, ckpt_gen)?;
/// while b.push(&rec).is_ok() { ... }   // Err(NoSpace): block full
/// b.finish()?;                          // seals header + CRC; write `buf`
/// ```
pub struct JournalBuilder<'a> {
    buf: &'a mut [u8],
    pool_uuid: Uuid,
    seq: u64,
    ckpt_gen: u64,
    flags: u16,
    commit_seq: u64,
    pos: usize,
    count: u16,
}

impl<'a> JournalBuilder<'a> {
    /// Starts block `seq` (>= 1) in `buf` (exactly [`BLOCK_SIZE`] bytes, zeroed
    /// here).
    pub fn new(buf: &'a mut [u8], pool_uuid: Uuid, seq: u64, ckpt_gen: u64) -> Result<Self> {
        if buf.len() != BLOCK_SIZE {
            return Err(Error::Invalid("journal: buffer size"));
        }
        if seq == 0 {
            return Err(Error::Invalid("journal: sequence 0"));
        }
        buf.fill(0);
        Ok(JournalBuilder {
            buf,
            pool_uuid,
            seq,
            ckpt_gen,
            flags: 0,
            commit_seq: 0,
            pos: JOURNAL_HEADER_LEN,
            count: 0,
        })
    }

    /// Sets the commit fields: `commit_seq` (must be below the block's
    /// sequence) and whether the block ends its commit group.
    pub fn set_commit(&mut self, commit_seq: u64, ends_group: bool) -> Result<()> {
        if commit_seq >= self.seq {
            return Err(Error::Invalid("journal: commit sequence"));
        }
        self.commit_seq = commit_seq;
        self.flags = if ends_group { JF_COMMIT } else { 0 };
        Ok(())
    }

    /// Records added so far.
    pub fn len(&self) -> u16 {
        self.count
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes still free.
    pub fn remaining(&self) -> usize {
        BLOCK_SIZE.saturating_sub(self.pos)
    }

    /// Whether `rec` still fits.
    pub fn fits(&self, rec: &Record) -> bool {
        rec.encoded_len() <= self.remaining() && self.count < u16::MAX
    }

    /// Appends `rec`. [`Error::NoSpace`] if the block is full (the block is
    /// unchanged: finish it and start the next), [`Error::Invalid`] if the
    /// record is invalid.
    pub fn push(&mut self, rec: &Record) -> Result<()> {
        rec.validate().map_err(super::super::to_invalid)?;
        if !self.fits(rec) {
            return Err(Error::NoSpace);
        }
        let dst = self.buf.get_mut(self.pos..).ok_or(Error::NoSpace)?;
        let mut w = Writer::new(dst);
        rec.encode(&mut w)?;
        self.pos = self.pos.saturating_add(w.pos());
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// Appends a raw record with an *unknown compat* tag (forward-compat
    /// testing, or future writers). The tag must have [`TAG_COMPAT`] set and
    /// not be a known tag.
    pub fn push_raw(&mut self, tag: u16, body: &[u8]) -> Result<()> {
        if tag & TAG_COMPAT == 0 || Record::body_len_of(tag).is_some() {
            return Err(Error::Invalid("journal: raw record tag"));
        }
        let len = u16::try_from(body.len()).map_err(|_| Error::NoSpace)?;
        let need = RECORD_PREFIX_LEN.saturating_add(body.len());
        if need > self.remaining() || self.count == u16::MAX {
            return Err(Error::NoSpace);
        }
        let dst = self.buf.get_mut(self.pos..).ok_or(Error::NoSpace)?;
        let mut w = Writer::new(dst);
        w.put_u16(tag)?;
        w.put_u16(len)?;
        w.put_bytes(body)?;
        self.pos = self.pos.saturating_add(need);
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// Writes the header and CRC. The buffer then holds the finished block.
    pub fn finish(self) -> Result<()> {
        let payload_len = self.pos.saturating_sub(JOURNAL_HEADER_LEN) as u32;
        let mut w = Writer::new(
            self.buf
                .get_mut(..JOURNAL_HEADER_LEN)
                .ok_or(Error::Truncated)?,
        );
        w.put_u64(JOURNAL_MAGIC)?;
        w.put_u32(0)?;
        w.put_u16(self.count)?;
        w.put_u16(self.flags)?;
        w.put_u32(payload_len)?;
        w.put_u32(0)?;
        w.put_bytes(&self.pool_uuid)?;
        w.put_u64(self.seq)?;
        w.put_u64(self.ckpt_gen)?;
        w.put_u64(self.commit_seq)?;
        seal_block(self.buf)
    }
}
