// SPDX-License-Identifier: GPL-2.0
//! Checkpoint framing: a full image of the pool's metadata state, written as
//! a sequence of 4 KiB blocks into one of two checkpoint sets (A/B).
//!
//! Checkpoint generation `g` (>= 1) is written to set `g % 2` (0 = A, 1 = B),
//! so consecutive checkpoints alternate and the previous complete one stays
//! untouched while the next is written. A checkpoint is:
//!
//! 1. a **header block** (index 0): pool UUID, generation, the last journal
//!    sequence number the image covers, the set;
//! 2. **payload blocks** (indices 1..n-1), each belonging to one *section*
//!    (an opaque typed byte stream, e.g. the volume table or the block
//!    tables, produced by the allocator / map encoders): generation,
//!    index, section number, section kind, payload length, CRC;
//! 3. a **commit block** (index n-1): the section table (kind, first block,
//!    block count, byte count, CRC32C of each section's bytes), the block
//!    count, the header's CRC and a CRC over the CRCs of the header and every
//!    payload block in order.
//!
//! A checkpoint without a valid commit block is torn and ignored. The section
//! table is at the end (not in the header) so the writer can stream sections
//! whose size it does not know in advance, with one block of memory.
//!
//! Header block: `magic[8] crc[4] version u32 | pool_uuid[16] | generation u64
//! | journal_seq u64 | set u8, kind u8, reserved[6] | zero...` for a full
//! checkpoint (kind 0); a delta (kind 1, see [`DeltaLink`]) continues
//! `| prev_generation u64 | first_block u32 | base_generation u64 | zero...`.
//! Either has at offset 80 `removed u64`: the members removed when it was
//! written (feature `INCOMPAT_REMOVED_MEMBERS`, bit per member; the
//! checkpoint is laid out over the others, see `layout`), zero before any
//! removal.
//!
//! Delta checkpoints (feature `INCOMPAT_DELTA_CHECKPOINTS`): the block-table
//! changes since the previous checkpoint of the set, framed like a full
//! checkpoint (its indices count from its header) and written after it in
//! the same set: a chain `full, delta, delta, ...` that the next full
//! checkpoint, in the other set, ends.
//!
//! Payload block: `magic[8] crc[4] kind u32 | generation u64 | index u32
//! | section u16 | len u16 | data[len] | zero...` (32-byte header,
//! `1 <= len <= 4064`).
//!
//! Commit block: `magic[8] crc[4] nr_sections u16 reserved u16 | pool_uuid[16]
//! | generation u64 | journal_seq u64 | nr_blocks u32 | header_crc u32
//! | chain_crc u32 | set u8 reserved[3] | sections[nr_sections] | zero...`,
//! section entry (32 bytes): `kind u32, first_block u32, nr_blocks u32,
//! reserved u32, nr_bytes u64, crc u32, reserved u32`.

use core::ops::DerefMut;

use super::super::codec::{Reader, Writer};
use super::super::crc32c::Crc32c;
use super::super::error::{Error, Result};
use super::{
    all_zero, check_block, peek_magic, seal_block, Uuid, BLOCK_SIZE, CKPT_COMMIT_MAGIC,
    CKPT_DATA_MAGIC, CKPT_HEADER_MAGIC, FORMAT_VERSION, MAX_GENERATION,
};

/// Bytes of a payload block's header.
pub const CKPT_DATA_HEADER_LEN: usize = 32;
/// Most payload bytes in one payload block.
pub const CKPT_DATA_MAX: usize = BLOCK_SIZE - CKPT_DATA_HEADER_LEN;
/// Most sections in one checkpoint. A section holds one *kind* of state
/// (e.g. all volumes' block tables, records tagged by volume), not one object,
/// so a handful is enough.
pub const MAX_SECTIONS: usize = 16;
/// Bytes of the commit block's fixed part (the section table follows).
pub const CKPT_COMMIT_HEADER_LEN: usize = 64;
/// Bytes of one section table entry.
pub const SECTION_ENTRY_LEN: usize = 32;
/// Section kind bit: a reader that does not know the kind may ignore the
/// section's contents (otherwise it must refuse the checkpoint).
pub const SECTION_COMPAT: u32 = 1 << 31;

/// Suggested section kinds (the encoders of each section own their payload
/// format; these numbers only have to be distinct). One section per kind of
/// state, not per object: e.g. every volume's block table goes into one
/// `BLOCK_TABLE` section as records that name their volume.
pub mod section {
    /// Volume table.
    pub const VOLUMES: u32 = 1;
    /// Zone / allocator state.
    pub const ZONES: u32 = 2;
    /// Block tables (all volumes; records name their volume).
    pub const BLOCK_TABLE: u32 = 3;
    /// Reference counts of shared blocks (reserved; not written: the
    /// counts are rebuilt from the block tables at assembly).
    pub const REFCOUNTS: u32 = 4;
    /// Sharing between volumes: origins, delta bases and the volumes stored
    /// as differences against another (see `format::sharing`).
    pub const SHARING: u32 = 5;
    /// A delta checkpoint's table changes: `DIFF` records (see
    /// `format::sharing`) applied to the volumes' tables as loaded so far.
    pub const CHANGES: u32 = 6;
    /// A delta checkpoint's redefined volumes (feature
    /// `INCOMPAT_DELTA_VOLUMES`): 4-byte volume ids whose tables were made
    /// anew since the previous checkpoint (created, snapshot or clone made,
    /// rolled back, promoted, resized). The delta then also holds the whole
    /// volume table (`VOLUMES`: volumes not listed are deleted), its
    /// `CHANGES` for the other volumes, the redefined tables (`BLOCK_TABLE`,
    /// or `SHARING` differences against a base), every sharing link and
    /// every volume's space rules, in that order.
    pub const REDEFINED: u32 = 7;
    /// Bytes of a `REDEFINED` record.
    pub const REDEFINED_RECORD_BYTES: usize = 4;
    /// A delta checkpoint's copies (feature `INCOMPAT_DELTA_VOLUMES`), its
    /// first section: records of two 4-byte volume ids, `new` then `src`:
    /// volume `new` (made since the previous checkpoint as a snapshot or
    /// clone of `src`) starts as a copy of `src` as loaded before this
    /// delta (an older volume of id `new` is deleted first); the delta's
    /// `CHANGES` then hold what differs.
    pub const COPIES: u32 = 8;
    /// Bytes of a `COPIES` record.
    pub const COPY_RECORD_BYTES: usize = 8;
}

/// The checkpoint set of generation `generation`: `generation % 2`.
pub const fn set_of(generation: u64) -> u8 {
    (generation & 1) as u8
}

/// Whether `block` is a sound block (magic, checksum, structure) of the
/// checkpoint of generation `generation`: what recovery asks of one copy
/// before it reads the other (`layout::checkpoint_copy_addr`).
pub fn sound_block_of(block: &[u8], generation: u64) -> bool {
    sound_block_generation(block) == Some(generation)
}

/// The generation of the checkpoint `block` belongs to, if it is a sound
/// checkpoint block (magic, checksum, structure).
pub fn sound_block_generation(block: &[u8]) -> Option<u64> {
    match peek_magic(block) {
        Some(CKPT_HEADER_MAGIC) => CheckpointHeader::decode(block)
            .ok()
            .map(|(h, _)| h.generation),
        Some(CKPT_COMMIT_MAGIC) => CheckpointCommit::decode(block)
            .ok()
            .map(|c| c.header.generation),
        Some(CKPT_DATA_MAGIC) => {
            check_block(block, CKPT_DATA_MAGIC).ok()?;
            let g: [u8; 8] = block.get(16..24)?.try_into().ok()?;
            Some(u64::from_le_bytes(g))
        }
        _ => None,
    }
}

/// Identity of a checkpoint (its header block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// Pool the checkpoint belongs to.
    pub pool_uuid: Uuid,
    /// Checkpoint generation (>= 1, +1 per checkpoint).
    pub generation: u64,
    /// Last journal sequence number covered: replay resumes at
    /// `journal_seq + 1` (0 = nothing journalled yet).
    pub journal_seq: u64,
    /// For a delta checkpoint (feature `INCOMPAT_DELTA_CHECKPOINTS`): its
    /// place in its chain. `None`: a full checkpoint.
    pub delta: Option<DeltaLink>,
    /// The members removed when it was written (bit per member): it is
    /// laid out over the others (`layout`; feature
    /// `INCOMPAT_REMOVED_MEMBERS`).
    pub removed: u64,
}

/// Where a delta checkpoint sits: after the full checkpoint `base` and the
/// deltas between, in the same set, from block `first_block` of the set on.
/// A delta holds the table changes since checkpoint `prev`; its generation
/// is `prev + 2` (generations of one set keep its parity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeltaLink {
    /// Generation of the chain's full checkpoint.
    pub base: u64,
    /// Generation of the checkpoint this delta follows (the full one or the
    /// previous delta).
    pub prev: u64,
    /// Index of this delta's header block in the set (its other blocks
    /// follow; their own indices count from 0 at the header).
    pub first_block: u32,
}

/// Offset of a header's `removed` word (after a delta's link).
const HEADER_REMOVED_OFFSET: usize = 80;

/// Header kind byte of a full checkpoint.
const KIND_FULL: u8 = 0;
/// Header kind byte of a delta checkpoint.
const KIND_DELTA: u8 = 1;

impl CheckpointHeader {
    /// The set this checkpoint is written to.
    pub const fn set(&self) -> u8 {
        set_of(self.generation)
    }

    /// Encodes the header block into `buf` ([`BLOCK_SIZE`] bytes).
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() != BLOCK_SIZE {
            return Err(Error::Invalid("checkpoint: buffer size"));
        }
        if self.generation == 0 {
            return Err(Error::Invalid("checkpoint: generation 0"));
        }
        buf.fill(0);
        let mut w = Writer::new(buf);
        w.put_u64(CKPT_HEADER_MAGIC)?;
        w.put_u32(0)?;
        w.put_u32(FORMAT_VERSION)?;
        w.put_bytes(&self.pool_uuid)?;
        w.put_u64(self.generation)?;
        w.put_u64(self.journal_seq)?;
        w.put_u8(self.set())?;
        match self.delta {
            None => w.put_u8(KIND_FULL)?,
            Some(d) => {
                if !d.valid_for(self.generation) {
                    return Err(Error::Invalid("checkpoint: delta link"));
                }
                w.put_u8(KIND_DELTA)?;
                w.put_bytes(&[0; 6])?;
                w.put_u64(d.prev)?;
                w.put_u32(d.first_block)?;
                w.put_u64(d.base)?;
            }
        }
        w.put_zeros(HEADER_REMOVED_OFFSET.saturating_sub(w.pos()))?;
        w.put_u64(self.removed)?;
        seal_block(buf)
    }

    /// Whether the identities (pool, generation, journal position) of two
    /// headers agree (a commit block repeats these; the rest of the header
    /// is covered by its CRC).
    pub fn same_identity(&self, o: &CheckpointHeader) -> bool {
        self.pool_uuid == o.pool_uuid
            && self.generation == o.generation
            && self.journal_seq == o.journal_seq
    }

    /// Decodes and validates a header block; also returns its CRC (the first
    /// link of the commit block's chain).
    pub fn decode(buf: &[u8]) -> Result<(Self, u32)> {
        let (blk, crc) = check_block(buf, CKPT_HEADER_MAGIC)?;
        let mut r = Reader::new(blk);
        r.skip(12)?;
        if r.get_u32()? != FORMAT_VERSION {
            return Err(Error::Unsupported("checkpoint: format version"));
        }
        let pool_uuid = r.get_array::<16>()?;
        let generation = r.get_u64()?;
        let journal_seq = r.get_u64()?;
        let set = r.get_u8()?;
        if generation == 0 || generation > MAX_GENERATION || journal_seq > MAX_GENERATION {
            return Err(Error::BadField("checkpoint: generation"));
        }
        if set != set_of(generation) {
            return Err(Error::BadField("checkpoint: set"));
        }
        let delta = match r.get_u8()? {
            KIND_FULL => None,
            KIND_DELTA => {
                if !all_zero(r.get_bytes(6)?) {
                    return Err(Error::BadField("checkpoint: header reserved"));
                }
                let prev = r.get_u64()?;
                let first_block = r.get_u32()?;
                let base = r.get_u64()?;
                let d = DeltaLink {
                    base,
                    prev,
                    first_block,
                };
                if !d.valid_for(generation) {
                    return Err(Error::BadField("checkpoint: delta link"));
                }
                Some(d)
            }
            _ => return Err(Error::Unsupported("checkpoint: header kind")),
        };
        if !all_zero(r.get_bytes(HEADER_REMOVED_OFFSET.saturating_sub(r.pos()))?) {
            return Err(Error::BadField("checkpoint: header reserved"));
        }
        let removed = r.get_u64()?;
        if !all_zero(r.get_bytes(r.remaining())?) {
            return Err(Error::BadField("checkpoint: header reserved"));
        }
        Ok((
            CheckpointHeader {
                pool_uuid,
                generation,
                journal_seq,
                delta,
                removed,
            },
            crc,
        ))
    }
}

impl DeltaLink {
    /// Whether this link is possible for a delta of generation `gen`: it
    /// follows `prev` by two generations, in a chain from `base` (same
    /// set), and starts after the full checkpoint's header.
    pub fn valid_for(&self, gen: u64) -> bool {
        self.base >= 1
            && self.base <= self.prev
            && self.prev.checked_add(2) == Some(gen)
            && set_of(self.base) == set_of(gen)
            && self.first_block >= 2
    }
}

/// One section of a checkpoint, as listed in the commit block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SectionInfo {
    /// Kind (see [`section`], [`SECTION_COMPAT`]).
    pub kind: u32,
    /// Index of its first payload block (where it would start if empty).
    pub first_block: u32,
    /// Number of payload blocks.
    pub nr_blocks: u32,
    /// Number of payload bytes.
    pub nr_bytes: u64,
    /// CRC32C of the section's bytes (concatenated payloads).
    pub crc: u32,
}

impl SectionInfo {
    /// An unused table entry (= `default()`, usable in constants).
    pub const EMPTY: SectionInfo = SectionInfo {
        kind: 0,
        first_block: 0,
        nr_blocks: 0,
        nr_bytes: 0,
        crc: 0,
    };
}

/// The decoded commit block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointCommit {
    /// Identity (must equal the header's).
    pub header: CheckpointHeader,
    /// Total blocks including header and commit block (>= 2).
    pub nr_blocks: u32,
    /// CRC of the header block.
    pub header_crc: u32,
    /// CRC32C over the CRCs (LE) of the header and every payload block.
    pub chain_crc: u32,
    /// Number of valid entries in `sections`.
    pub nr_sections: u16,
    /// Section table; entries `nr_sections..` are default.
    pub sections: [SectionInfo; MAX_SECTIONS],
}

impl CheckpointCommit {
    /// The valid section entries.
    pub fn sections(&self) -> &[SectionInfo] {
        self.sections
            .get(..usize::from(self.nr_sections))
            .unwrap_or(&[])
    }

    fn encode(&self, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let mut w = Writer::new(buf);
        w.put_u64(CKPT_COMMIT_MAGIC)?;
        w.put_u32(0)?;
        w.put_u16(self.nr_sections)?;
        w.put_u16(0)?;
        w.put_bytes(&self.header.pool_uuid)?;
        w.put_u64(self.header.generation)?;
        w.put_u64(self.header.journal_seq)?;
        w.put_u32(self.nr_blocks)?;
        w.put_u32(self.header_crc)?;
        w.put_u32(self.chain_crc)?;
        w.put_u8(self.header.set())?;
        w.put_zeros(3)?;
        for s in self.sections() {
            w.put_u32(s.kind)?;
            w.put_u32(s.first_block)?;
            w.put_u32(s.nr_blocks)?;
            w.put_u32(0)?;
            w.put_u64(s.nr_bytes)?;
            w.put_u32(s.crc)?;
            w.put_u32(0)?;
        }
        seal_block(buf)
    }

    /// Decodes and validates a commit block on its own (structure, section
    /// table contiguity and sizes). Recovery can read the block just below
    /// a checkpoint zone's write pointer with this to see whether the set
    /// holds a complete checkpoint before streaming it through a
    /// [`CheckpointReader`] (which re-checks everything).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let (blk, _) = check_block(buf, CKPT_COMMIT_MAGIC)?;
        let mut r = Reader::new(blk);
        r.skip(12)?;
        let nr_sections = r.get_u16()?;
        if r.get_u16()? != 0 {
            return Err(Error::BadField("checkpoint commit: reserved"));
        }
        let pool_uuid = r.get_array::<16>()?;
        let generation = r.get_u64()?;
        let journal_seq = r.get_u64()?;
        let nr_blocks = r.get_u32()?;
        let header_crc = r.get_u32()?;
        let chain_crc = r.get_u32()?;
        let set = r.get_u8()?;
        if !all_zero(r.get_bytes(3)?) {
            return Err(Error::BadField("checkpoint commit: reserved"));
        }
        if generation == 0 || generation > MAX_GENERATION {
            return Err(Error::BadField("checkpoint commit: generation"));
        }
        if set != set_of(generation) {
            return Err(Error::BadField("checkpoint commit: set"));
        }
        if nr_blocks < 2 {
            return Err(Error::BadField("checkpoint commit: block count"));
        }
        let n = usize::from(nr_sections);
        if n > MAX_SECTIONS {
            return Err(Error::BadField("checkpoint commit: section count"));
        }
        let mut sections = [SectionInfo::default(); MAX_SECTIONS];
        let mut next = 1u32;
        for s in sections.iter_mut().take(n) {
            let kind = r.get_u32()?;
            let first_block = r.get_u32()?;
            let nr = r.get_u32()?;
            let res1 = r.get_u32()?;
            let nr_bytes = r.get_u64()?;
            let crc = r.get_u32()?;
            let res2 = r.get_u32()?;
            if res1 != 0 || res2 != 0 {
                return Err(Error::BadField("checkpoint commit: section reserved"));
            }
            if first_block != next {
                return Err(Error::BadField("checkpoint commit: section placement"));
            }
            let max_bytes = u64::from(nr).saturating_mul(CKPT_DATA_MAX as u64);
            if nr_bytes < u64::from(nr) || nr_bytes > max_bytes || (nr == 0 && crc != 0) {
                return Err(Error::BadField("checkpoint commit: section size"));
            }
            next = next
                .checked_add(nr)
                .ok_or(Error::BadField("checkpoint commit: section placement"))?;
            *s = SectionInfo {
                kind,
                first_block,
                nr_blocks: nr,
                nr_bytes,
                crc,
            };
        }
        if next.checked_add(1) != Some(nr_blocks) {
            return Err(Error::BadField("checkpoint commit: block count"));
        }
        if !all_zero(r.get_bytes(r.remaining())?) {
            return Err(Error::BadField("checkpoint commit: tail not zero"));
        }
        Ok(CheckpointCommit {
            header: CheckpointHeader {
                pool_uuid,
                generation,
                journal_seq,
                delta: None,
                removed: 0,
            },
            nr_blocks,
            header_crc,
            chain_crc,
            nr_sections,
            sections,
        })
    }
}

/// Streams a checkpoint into 4 KiB blocks using one caller-provided block
/// buffer `S` (`Vec<u8>`, `KVec<u8>`, `&mut [u8]`... of [`BLOCK_SIZE`] bytes).
///
/// Every finished block is handed to `sink(index, block)`; the caller writes
/// it at position `index` of the checkpoint set (see
/// `layout::checkpoint_block_addr`). Blocks come in index order, starting
/// with the header (index 0), and the commit block last: once the sink has
/// durably written the commit block (and the device was flushed), the
/// checkpoint is committed.
///
/// ```text
/// let mut w = CheckpointWriter::new(buf, hdr, set_capacity)?;
/// w.begin_section(section::VOLUMES, &mut sink)?;
/// w.append_record(&vol_bytes, &mut sink)?;   // never split across blocks
/// w.begin_section(section::BLOCK_TABLE, &mut sink)?;
/// w.append(&table_bytes, &mut sink)?;        // plain byte stream
/// let commit = w.finish(&mut sink)?;
/// ```
///
/// After any error (including one returned by the sink) the writer is
/// poisoned and every further call fails: restart the checkpoint.
pub struct CheckpointWriter<S> {
    blk: S,
    s: WriterState,
}

/// The state of a [`CheckpointWriter`] without its block buffer, between
/// two parts of a checkpoint written in steps ([`CheckpointWriter::suspend`],
/// [`CheckpointWriter::resume`]): the caller may use the buffer for
/// something else meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct WriterState {
    hdr: CheckpointHeader,
    max_blocks: u32,
    /// Index of the next block to emit.
    next: u32,
    header_crc: u32,
    chain: Crc32c,
    /// Payload bytes in the open payload block.
    fill: usize,
    sections: [SectionInfo; MAX_SECTIONS],
    nr_sections: usize,
    sec_crc: Crc32c,
    failed: bool,
}

impl<S: DerefMut<Target = [u8]>> CheckpointWriter<S> {
    /// A writer for checkpoint `hdr` that may use at most `max_blocks` blocks
    /// (the set's capacity, at least 2).
    #[inline(always)]
    pub fn new(blk: S, hdr: CheckpointHeader, max_blocks: u32) -> Result<Self> {
        if blk.len() != BLOCK_SIZE {
            return Err(Error::Invalid("checkpoint: buffer size"));
        }
        if hdr.generation == 0 {
            return Err(Error::Invalid("checkpoint: generation 0"));
        }
        if max_blocks < 2 {
            return Err(Error::Invalid("checkpoint: capacity"));
        }
        Ok(CheckpointWriter {
            blk,
            s: WriterState {
                hdr,
                max_blocks,
                next: 0,
                header_crc: 0,
                chain: Crc32c::new(),
                fill: 0,
                sections: [SectionInfo::default(); MAX_SECTIONS],
                nr_sections: 0,
                sec_crc: Crc32c::new(),
                failed: false,
            },
        })
    }

    /// Blocks emitted so far.
    pub fn blocks_written(&self) -> u32 {
        self.s.next
    }

    /// Ends the open payload block (as [`Self::end_block`]) and returns the
    /// writer's state without its buffer, to go on later with
    /// [`Self::resume`]. A checkpoint written in steps thus has a partly
    /// filled payload block at each step's end, which readers take like any
    /// other (records never span blocks).
    pub fn suspend<F: FnMut(u32, &[u8]) -> Result<()>>(
        mut self,
        sink: &mut F,
    ) -> Result<WriterState> {
        self.end_block(sink)?;
        Ok(self.s)
    }

    /// Goes on with a writer [`Self::suspend`]ed earlier, in buffer `blk`
    /// (one block; its contents do not matter).
    pub fn resume(mut blk: S, s: WriterState) -> Result<Self> {
        if blk.len() != BLOCK_SIZE {
            return Err(Error::Invalid("checkpoint: buffer size"));
        }
        if s.failed || s.fill != 0 {
            return Err(Error::Invalid("checkpoint: writer not suspended"));
        }
        blk.fill(0);
        Ok(CheckpointWriter { blk, s })
    }

    /// Runs `f`, poisoning the writer on error.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.s.failed {
            return Err(Error::Invalid("checkpoint writer failed earlier"));
        }
        let r = f(self);
        if r.is_err() {
            self.s.failed = true;
        }
        r
    }

    fn emit<F: FnMut(u32, &[u8]) -> Result<()>>(&mut self, sink: &mut F) -> Result<()> {
        let idx = self.s.next;
        self.s.next = idx.checked_add(1).ok_or(Error::NoSpace)?;
        sink(idx, &self.blk)
    }

    fn start<F: FnMut(u32, &[u8]) -> Result<()>>(&mut self, sink: &mut F) -> Result<()> {
        if self.s.next != 0 {
            return Ok(());
        }
        self.s.hdr.encode(&mut self.blk)?;
        let (_, crc) = CheckpointHeader::decode(&self.blk)?;
        self.s.header_crc = crc;
        self.s.chain = Crc32c::new().update_u32(crc);
        self.emit(sink)?;
        self.blk.fill(0);
        Ok(())
    }

    /// Emits the open payload block, if any.
    fn flush<F: FnMut(u32, &[u8]) -> Result<()>>(&mut self, sink: &mut F) -> Result<()> {
        if self.s.fill == 0 {
            return Ok(());
        }
        // Keep one block for the commit.
        if self.s.next.saturating_add(1) >= self.s.max_blocks {
            return Err(Error::NoSpace);
        }
        let si = self
            .s
            .nr_sections
            .checked_sub(1)
            .ok_or(Error::Invalid("no section"))?;
        let sec = self
            .s
            .sections
            .get_mut(si)
            .ok_or(Error::Invalid("no section"))?;
        sec.nr_blocks = sec.nr_blocks.checked_add(1).ok_or(Error::NoSpace)?;
        sec.nr_bytes = sec.nr_bytes.saturating_add(self.s.fill as u64);
        let kind = sec.kind;
        let hdr = self
            .blk
            .get_mut(..CKPT_DATA_HEADER_LEN)
            .ok_or(Error::Truncated)?;
        let mut w = Writer::new(hdr);
        w.put_u64(CKPT_DATA_MAGIC)?;
        w.put_u32(0)?;
        w.put_u32(kind)?;
        w.put_u64(self.s.hdr.generation)?;
        w.put_u32(self.s.next)?;
        w.put_u16(si as u16)?;
        w.put_u16(self.s.fill as u16)?;
        seal_block(&mut self.blk)?;
        let (_, crc) = check_block(&self.blk, CKPT_DATA_MAGIC)?;
        self.s.chain = self.s.chain.update_u32(crc);
        self.emit(sink)?;
        self.blk.fill(0);
        self.s.fill = 0;
        Ok(())
    }

    fn close_section(&mut self) {
        if let Some(s) = self
            .s
            .nr_sections
            .checked_sub(1)
            .and_then(|i| self.s.sections.get_mut(i))
        {
            s.crc = self.s.sec_crc.finish();
        }
    }

    /// Ends the current section (emitting its last block) and starts a new one
    /// of `kind`. Sections may be empty.
    pub fn begin_section<F: FnMut(u32, &[u8]) -> Result<()>>(
        &mut self,
        kind: u32,
        sink: &mut F,
    ) -> Result<()> {
        self.guard(|w| {
            w.start(sink)?;
            w.flush(sink)?;
            w.close_section();
            let slot =
                w.s.sections
                    .get_mut(w.s.nr_sections)
                    .ok_or(Error::Invalid("checkpoint: too many sections"))?;
            *slot = SectionInfo {
                kind,
                first_block: w.s.next,
                ..SectionInfo::default()
            };
            w.s.nr_sections = w.s.nr_sections.saturating_add(1);
            w.s.sec_crc = Crc32c::new();
            Ok(())
        })
    }

    /// Appends bytes to the current section (split across blocks as needed).
    pub fn append<F: FnMut(u32, &[u8]) -> Result<()>>(
        &mut self,
        data: &[u8],
        sink: &mut F,
    ) -> Result<()> {
        self.guard(|w| w.append_inner(data, sink))
    }

    fn append_inner<F: FnMut(u32, &[u8]) -> Result<()>>(
        &mut self,
        mut data: &[u8],
        sink: &mut F,
    ) -> Result<()> {
        if self.s.nr_sections == 0 {
            return Err(Error::Invalid("checkpoint: no section"));
        }
        while !data.is_empty() {
            let room = CKPT_DATA_MAX.saturating_sub(self.s.fill);
            let n = room.min(data.len());
            let (now, rest) = data.split_at(n);
            let at = CKPT_DATA_HEADER_LEN.saturating_add(self.s.fill);
            let dst = self
                .blk
                .get_mut(at..at.saturating_add(n))
                .ok_or(Error::Truncated)?;
            dst.copy_from_slice(now);
            self.s.sec_crc = self.s.sec_crc.update(now);
            self.s.fill = self.s.fill.saturating_add(n);
            data = rest;
            if self.s.fill >= CKPT_DATA_MAX {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Appends `rec` so that it lies entirely within one payload block
    /// (starting a new block if it does not fit in the open one). Decoders
    /// can then parse each payload block on its own. `rec` must be at most
    /// [`CKPT_DATA_MAX`] bytes.
    pub fn append_record<F: FnMut(u32, &[u8]) -> Result<()>>(
        &mut self,
        rec: &[u8],
        sink: &mut F,
    ) -> Result<()> {
        self.guard(|w| {
            if rec.len() > CKPT_DATA_MAX {
                return Err(Error::Invalid("checkpoint: record too large"));
            }
            if w.s.fill.saturating_add(rec.len()) > CKPT_DATA_MAX {
                w.flush(sink)?;
            }
            w.append_inner(rec, sink)
        })
    }

    /// Ends the open payload block (the section continues): the next data starts a new
    /// block (useful to align a record group to a block).
    pub fn end_block<F: FnMut(u32, &[u8]) -> Result<()>>(&mut self, sink: &mut F) -> Result<()> {
        self.guard(|w| {
            w.start(sink)?;
            w.flush(sink)
        })
    }

    /// Emits the last payload block and the commit block; returns the
    /// commit's contents. The writer is done afterwards (every further
    /// call fails).
    // By reference and out of line: keeps the writer and the commit table
    // (about 400 bytes each) off the caller's stack frame.
    #[inline(never)]
    pub fn finish<F: FnMut(u32, &[u8]) -> Result<()>>(
        &mut self,
        sink: &mut F,
    ) -> Result<CheckpointCommit> {
        let r = self.guard(|w| {
            w.start(sink)?;
            w.flush(sink)?;
            w.close_section();
            if w.s.next >= w.s.max_blocks {
                return Err(Error::NoSpace);
            }
            let commit = CheckpointCommit {
                header: w.s.hdr,
                nr_blocks: w.s.next.checked_add(1).ok_or(Error::NoSpace)?,
                header_crc: w.s.header_crc,
                chain_crc: w.s.chain.finish(),
                nr_sections: w.s.nr_sections as u16,
                sections: w.s.sections,
            };
            commit.encode(&mut w.blk)?;
            w.emit(sink)?;
            Ok(commit)
        });
        self.s.failed = true;
        r
    }
}

/// What a payload or commit block fed to a [`CheckpointReader`] contained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointItem<'b> {
    /// Payload bytes of section number `section` (of kind `kind`). Several
    /// consecutive items of the same section form its byte stream.
    Data {
        /// Section number (position in the section table).
        section: u16,
        /// Section kind.
        kind: u32,
        /// The block's payload bytes. If the writer used only
        /// [`CheckpointWriter::append_record`], these are one or more whole
        /// records (e.g. chunks from `map::BlockTable::encode_chunk` of at
        /// most [`CKPT_DATA_MAX`] bytes): decode with a `codec::Reader` until
        /// it is empty. Records added with [`CheckpointWriter::append`] may
        /// continue in the next item of the same section.
        data: &'b [u8],
    },
    /// The commit block: everything fed so far is verified complete. Only
    /// now may state built from the data items be used. The decoded commit
    /// block is available from [`CheckpointReader::commit`].
    Commit,
}

/// Validates a checkpoint streamed block by block, in index order, and hands
/// the payload of each section back. No allocation: it keeps running
/// checksums and per-section counters only.
///
/// ```text
/// let mut r = CheckpointReader::new(&block0)?;   // header
/// loop {
///     match r.feed(&next_block)? {
///         CheckpointItem::Data { kind, data, .. } => decode(kind, data)?,
///         CheckpointItem::Commit => break,        // valid and complete
///     }
/// }
/// ```
///
/// Anything but a `Commit` at the end (an error, or running out of written
/// blocks) means the checkpoint is torn or corrupt: discard what was decoded
/// and fall back to the other set. After an error the reader is poisoned.
pub struct CheckpointReader {
    hdr: CheckpointHeader,
    header_crc: u32,
    next: u32,
    chain: Crc32c,
    sections: [SectionInfo; MAX_SECTIONS],
    /// Number of sections seen (the last one is open).
    nr_seen: usize,
    sec_crc: Crc32c,
    state: ReaderState,
    commit: Option<CheckpointCommit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReaderState {
    Reading,
    Committed,
    Failed,
}

impl CheckpointReader {
    /// Starts reading with the header block (index 0).
    pub fn new(header_block: &[u8]) -> Result<Self> {
        let mut r = Self::IDLE;
        r.start(header_block)?;
        Ok(r)
    }

    /// A reader that has read nothing and refuses every block: storage for
    /// [`Self::start`] (the reader is about 900 bytes; the kernel avoids
    /// moving it around its stack).
    pub const IDLE: CheckpointReader = CheckpointReader {
        hdr: CheckpointHeader {
            pool_uuid: [0; 16],
            generation: 0,
            journal_seq: 0,
            delta: None,
            removed: 0,
        },
        header_crc: 0,
        next: 0,
        chain: Crc32c::new(),
        sections: [SectionInfo::EMPTY; MAX_SECTIONS],
        nr_seen: 0,
        sec_crc: Crc32c::new(),
        state: ReaderState::Failed,
        commit: None,
    };

    /// [`Self::new`] in place: (re)starts reading a checkpoint with its
    /// header block (index 0). On error the reader refuses every block.
    pub fn start(&mut self, header_block: &[u8]) -> Result<()> {
        self.state = ReaderState::Failed;
        let (hdr, crc) = CheckpointHeader::decode(header_block)?;
        self.hdr = hdr;
        self.header_crc = crc;
        self.next = 1;
        self.chain = Crc32c::new().update_u32(crc);
        self.sections = [SectionInfo::EMPTY; MAX_SECTIONS];
        self.nr_seen = 0;
        self.sec_crc = Crc32c::new();
        self.commit = None;
        self.state = ReaderState::Reading;
        Ok(())
    }

    /// The checkpoint's identity.
    pub fn header(&self) -> &CheckpointHeader {
        &self.hdr
    }

    /// Index of the block expected next.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Whether the commit block was accepted.
    pub fn is_committed(&self) -> bool {
        self.state == ReaderState::Committed
    }

    /// The accepted commit block (after [`CheckpointItem::Commit`]).
    pub fn commit(&self) -> Option<&CheckpointCommit> {
        self.commit.as_ref()
    }

    /// Feeds block `next_index()`.
    // Out of line: keeps the commit table (about 400 bytes) off the
    // caller's stack frame.
    #[inline(never)]
    pub fn feed<'b>(&mut self, block: &'b [u8]) -> Result<CheckpointItem<'b>> {
        match self.state {
            ReaderState::Reading => {}
            ReaderState::Committed => return Err(Error::Invalid("checkpoint: already committed")),
            ReaderState::Failed => return Err(Error::Invalid("checkpoint reader failed earlier")),
        }
        let r = match peek_magic(block) {
            Some(CKPT_COMMIT_MAGIC) => self.check_commit(block).map(|c| {
                self.commit = Some(c);
                CheckpointItem::Commit
            }),
            _ => self.data(block),
        };
        self.state = match &r {
            Ok(CheckpointItem::Commit) => ReaderState::Committed,
            Ok(_) => ReaderState::Reading,
            Err(_) => ReaderState::Failed,
        };
        r
    }

    fn data<'b>(&mut self, block: &'b [u8]) -> Result<CheckpointItem<'b>> {
        let (blk, crc) = check_block(block, CKPT_DATA_MAGIC)?;
        let mut r = Reader::new(blk);
        r.skip(12)?;
        let kind = r.get_u32()?;
        let generation = r.get_u64()?;
        let index = r.get_u32()?;
        let section = r.get_u16()?;
        let len = usize::from(r.get_u16()?);
        if generation != self.hdr.generation {
            return Err(Error::BadField("checkpoint: stale block (generation)"));
        }
        if index != self.next {
            return Err(Error::BadField("checkpoint: block index"));
        }
        if len == 0 || len > CKPT_DATA_MAX {
            return Err(Error::BadField("checkpoint: payload length"));
        }
        let data = r.get_bytes(len)?;
        if !all_zero(r.get_bytes(r.remaining())?) {
            return Err(Error::BadField("checkpoint: payload tail not zero"));
        }
        let si = usize::from(section);
        let cur = self.nr_seen.checked_sub(1);
        if Some(si) != cur {
            // A new section starts: numbers only grow (skipped numbers are
            // empty sections).
            if si >= MAX_SECTIONS || cur.is_some_and(|c| si < c) {
                return Err(Error::BadField("checkpoint: section order"));
            }
            self.close_section();
            for (i, s) in self
                .sections
                .iter_mut()
                .enumerate()
                .take(si + 1)
                .skip(self.nr_seen)
            {
                *s = SectionInfo {
                    kind: if i == si { kind } else { 0 },
                    first_block: index,
                    ..SectionInfo::default()
                };
            }
            self.nr_seen = si + 1;
            self.sec_crc = Crc32c::new();
        }
        let s = self
            .sections
            .get_mut(si)
            .ok_or(Error::BadField("checkpoint: section order"))?;
        if s.kind != kind {
            return Err(Error::BadField("checkpoint: section kind"));
        }
        s.nr_blocks = s.nr_blocks.saturating_add(1);
        s.nr_bytes = s.nr_bytes.saturating_add(len as u64);
        self.sec_crc = self.sec_crc.update(data);
        self.chain = self.chain.update_u32(crc);
        self.next = self
            .next
            .checked_add(1)
            .ok_or(Error::BadField("checkpoint: block index"))?;
        Ok(CheckpointItem::Data {
            section,
            kind,
            data,
        })
    }

    fn close_section(&mut self) {
        if let Some(s) = self
            .nr_seen
            .checked_sub(1)
            .and_then(|i| self.sections.get_mut(i))
        {
            s.crc = self.sec_crc.finish();
        }
    }

    fn check_commit(&mut self, block: &[u8]) -> Result<CheckpointCommit> {
        let c = CheckpointCommit::decode(block)?;
        if !c.header.same_identity(&self.hdr) {
            return Err(Error::BadField("checkpoint: commit of another checkpoint"));
        }
        if c.nr_blocks != self.next.saturating_add(1) {
            return Err(Error::BadField("checkpoint: commit block count"));
        }
        if c.header_crc != self.header_crc || c.chain_crc != self.chain.finish() {
            return Err(Error::Corrupt("checkpoint: block chain mismatch"));
        }
        self.close_section();
        if self.nr_seen > usize::from(c.nr_sections) {
            return Err(Error::BadField("checkpoint: section not in table"));
        }
        for (i, t) in c.sections().iter().enumerate() {
            let seen = self.sections.get(i).copied().unwrap_or_default();
            let ok = if i < self.nr_seen && seen.nr_blocks > 0 {
                *t == seen
            } else {
                t.nr_blocks == 0
            };
            if !ok {
                return Err(Error::Corrupt("checkpoint: section table mismatch"));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
