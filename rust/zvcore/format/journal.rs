// SPDX-License-Identifier: GPL-2.0
//! The metadata journal: a log of 4 KiB blocks of typed records describing
//! every metadata change since the last checkpoint.
//!
//! A journal block is self-contained (never split records), carries the pool
//! UUID and a sequence number that is monotonic over the pool's whole life
//! (consecutive blocks differ by exactly 1), and is checksummed as a whole, so
//! replay can apply each block atomically and stops at the first block that
//! is missing, torn (bad CRC) or out of sequence.
//!
//! Block layout:
//!
//! | off | size | field                                                   |
//! |-----|------|---------------------------------------------------------|
//! | 0   | 8    | magic [`JOURNAL_MAGIC`]                                 |
//! | 8   | 4    | CRC32C of the block (this field skipped)                |
//! | 12  | 2    | record count                                            |
//! | 14  | 2    | flags ([`JF_COMMIT`]; other bits zero)                  |
//! | 16  | 4    | payload length (bytes of records, <= 4032)              |
//! | 20  | 4    | reserved, zero                                          |
//! | 24  | 16   | pool UUID                                               |
//! | 40  | 8    | sequence number (>= 1)                                  |
//! | 48  | 8    | generation of the newest committed checkpoint at write  |
//! | 56  | 8    | commit sequence: last block known committed (< seq)     |
//! | 64  | len  | records                                                 |
//! | ... |      | zero up to the end of the block                         |
//!
//! Commit groups (pools with `INCOMPAT_COMMIT_BLOCKS`): the blocks of one
//! commit are written, flushed, and the group's last block, flagged
//! [`JF_COMMIT`], is written after that flush and flushed itself. Every
//! block names in its commit sequence the newest block that ended a
//! durable commit (or the journal sequence the newest checkpoint covers)
//! when it was written. Hence every block up to the largest commit
//! sequence or commit-flagged block found is committed: recovery treats a
//! missing or invalid one as damage, never as a torn tail (see
//! `Documentation/on-disk-format.md`, "Journal"). Pools without the
//! feature write zero in both fields.
//!
//! Record: `tag: u16, len: u16, body[len]`. Tags with bit 15
//! ([`TAG_COMPAT`]) set are *compat* records: a reader that does not know
//! them skips them. An unknown tag without that bit is
//! [`Error::Unsupported`]. Known tags must have exactly their body length.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use core::ops::Deref;

use super::super::geom::{DeviceGeometry, PoolGeometry, MAX_POOL_BLOCKS};
use super::{
    all_zero, check_block, seal_block, Uuid, BLOCK_SIZE, INCOMPAT_SHARED_BLOCKS, JOURNAL_MAGIC,
    MAX_GENERATION, RO_COMPAT_RESERVATION,
};

/// Bytes of the journal block header.
pub const JOURNAL_HEADER_LEN: usize = 64;
/// Header flag: the block ends a commit group (every block of the group was
/// durable before it was written).
pub const JF_COMMIT: u16 = 1 << 0;
/// Every journal header flag this version knows.
pub const JF_KNOWN: u16 = JF_COMMIT;
/// Most payload (record) bytes in one journal block.
pub const JOURNAL_PAYLOAD_MAX: usize = BLOCK_SIZE - JOURNAL_HEADER_LEN;
/// Bytes of a record's tag + length prefix.
pub const RECORD_PREFIX_LEN: usize = 4;
/// Tag bit marking a record that unknown readers may skip.
pub const TAG_COMPAT: u16 = 0x8000;

/// Record tags.
pub mod tag {
    /// [`super::Record::MapExtent`].
    pub const MAP_EXTENT: u16 = 1;
    /// [`super::Record::Unmap`].
    pub const UNMAP: u16 = 2;
    /// [`super::Record::ZoneReset`].
    pub const ZONE_RESET: u16 = 3;
    /// [`super::Record::ZoneFinish`].
    pub const ZONE_FINISH: u16 = 4;
    /// [`super::Record::VolumeCreate`].
    pub const VOLUME_CREATE: u16 = 5;
    /// [`super::Record::VolumeDelete`].
    pub const VOLUME_DELETE: u16 = 6;
    /// [`super::Record::VolumeResize`].
    pub const VOLUME_RESIZE: u16 = 7;
    /// [`super::Record::VolumeReserve`].
    pub const VOLUME_RESERVE: u16 = 8;
    /// [`super::Record::Snapshot`].
    pub const SNAPSHOT: u16 = 9;
    /// [`super::Record::CheckpointDone`].
    pub const CHECKPOINT_DONE: u16 = 10;
    /// [`super::Record::Rollback`].
    pub const ROLLBACK: u16 = 11;
    /// [`super::Record::Promote`].
    pub const PROMOTE: u16 = 12;
    /// [`super::Record::Relocate`].
    pub const RELOCATE: u16 = 13;
}

/// Longest volume name (bytes).
pub const VOL_NAME_MAX: usize = 32;
/// Volume flag: read-only (snapshots).
pub const VOL_FLAG_READONLY: u32 = 1 << 0;
/// Every volume flag this version knows.
pub const VOL_FLAGS_KNOWN: u32 = VOL_FLAG_READONLY;

/// A volume name: up to 32 arbitrary bytes (not necessarily UTF-8; the
/// control interface decides), stored zero-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VolName {
    len: u8,
    bytes: [u8; VOL_NAME_MAX],
}

impl VolName {
    /// A name from bytes (`Error::Invalid` if longer than 32).
    pub fn new(name: &[u8]) -> Result<Self> {
        let mut bytes = [0u8; VOL_NAME_MAX];
        let dst = bytes
            .get_mut(..name.len())
            .ok_or(Error::Invalid("volume name too long"))?;
        dst.copy_from_slice(name);
        Ok(VolName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length in range and zero padding (what decoding requires).
    pub fn is_valid(&self) -> bool {
        usize::from(self.len) <= VOL_NAME_MAX
            && all_zero(self.bytes.get(usize::from(self.len)..).unwrap_or(&[]))
    }
}

/// One journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Volume blocks `lba..lba+len` of `vol` are now at pool addresses
    /// `addr..addr+len` (the previous locations become garbage).
    MapExtent {
        /// Volume id.
        vol: u32,
        /// First volume block.
        lba: u64,
        /// Number of blocks (>= 1).
        len: u32,
        /// First pool address.
        addr: u64,
    },
    /// Volume blocks `lba..lba+len` of `vol` are unmapped (read as zeros).
    Unmap {
        /// Volume id.
        vol: u32,
        /// First volume block.
        lba: u64,
        /// Number of blocks (>= 1).
        len: u32,
    },
    /// Zone `zone` (global id) was reset: nothing maps into it any more.
    ZoneReset {
        /// Global zone id.
        zone: u32,
    },
    /// Zone `zone` was finished (no more writes until reset).
    ZoneFinish {
        /// Global zone id.
        zone: u32,
    },
    /// Volume `vol` was created, empty.
    VolumeCreate {
        /// Volume id.
        vol: u32,
        /// Size in blocks.
        size_blocks: u64,
        /// `VOL_FLAG_*` bits.
        flags: u32,
        /// Name.
        name: VolName,
    },
    /// Volume `vol` and all its mappings were deleted.
    VolumeDelete {
        /// Volume id.
        vol: u32,
    },
    /// Volume `vol` now has `size_blocks` blocks (mappings beyond are dropped).
    VolumeResize {
        /// Volume id.
        vol: u32,
        /// New size in blocks.
        size_blocks: u64,
    },
    /// Volume `vol` has `blocks` of space reserved
    /// (feature [`RO_COMPAT_RESERVATION`]).
    VolumeReserve {
        /// Volume id.
        vol: u32,
        /// Reserved blocks (0 = none).
        blocks: u64,
    },
    /// `new_vol` was created as a snapshot (`flags` has
    /// [`VOL_FLAG_READONLY`]; `vol` is a writable volume) or a clone (no
    /// read-only flag; `vol` is a snapshot) of `vol`, sharing all its
    /// blocks (feature [`INCOMPAT_SHARED_BLOCKS`]).
    Snapshot {
        /// Source volume.
        vol: u32,
        /// New volume (must differ from `vol`).
        new_vol: u32,
        /// `VOL_FLAG_*` bits of the new volume.
        flags: u32,
        /// Name of the new volume.
        name: VolName,
    },
    /// Writable volume `vol` now holds exactly what snapshot `snap` holds
    /// (its previous blocks are dropped; its size becomes the snapshot's).
    /// Feature [`INCOMPAT_SHARED_BLOCKS`].
    Rollback {
        /// The volume rolled back.
        vol: u32,
        /// The snapshot it now equals (must differ from `vol`).
        snap: u32,
    },
    /// Volume `vol` no longer shares block-table nodes with any other
    /// volume and has no origin any more (promote / flatten). Feature
    /// [`INCOMPAT_SHARED_BLOCKS`].
    Promote {
        /// The volume.
        vol: u32,
    },
    /// GC moved pool blocks `old..old+len` to `new..new+len`: every volume
    /// mapping `lba..lba+len` to the old blocks now maps the new ones (all
    /// sharers at once). Feature [`INCOMPAT_SHARED_BLOCKS`] (without it,
    /// GC writes `MapExtent` records).
    Relocate {
        /// First volume block (the same in every sharer).
        lba: u64,
        /// Old first pool address.
        old: u64,
        /// New first pool address.
        new: u64,
        /// Number of blocks (>= 1).
        len: u32,
    },
    /// Checkpoint `generation` covering the journal up to `journal_seq` was
    /// committed in set `set` (0 = A, 1 = B).
    CheckpointDone {
        /// Checkpoint generation (>= 1).
        generation: u64,
        /// Last journal sequence number it covers.
        journal_seq: u64,
        /// Checkpoint set (0 or 1).
        set: u8,
    },
}

impl Record {
    /// The record's tag.
    pub const fn tag(&self) -> u16 {
        match self {
            Record::MapExtent { .. } => tag::MAP_EXTENT,
            Record::Unmap { .. } => tag::UNMAP,
            Record::ZoneReset { .. } => tag::ZONE_RESET,
            Record::ZoneFinish { .. } => tag::ZONE_FINISH,
            Record::VolumeCreate { .. } => tag::VOLUME_CREATE,
            Record::VolumeDelete { .. } => tag::VOLUME_DELETE,
            Record::VolumeResize { .. } => tag::VOLUME_RESIZE,
            Record::VolumeReserve { .. } => tag::VOLUME_RESERVE,
            Record::Snapshot { .. } => tag::SNAPSHOT,
            Record::Rollback { .. } => tag::ROLLBACK,
            Record::Promote { .. } => tag::PROMOTE,
            Record::Relocate { .. } => tag::RELOCATE,
            Record::CheckpointDone { .. } => tag::CHECKPOINT_DONE,
        }
    }

    /// Body length of a known tag.
    pub const fn body_len_of(tag: u16) -> Option<usize> {
        Some(match tag {
            tag::MAP_EXTENT => 24,
            tag::UNMAP => 16,
            tag::ZONE_RESET | tag::ZONE_FINISH | tag::VOLUME_DELETE => 4,
            tag::VOLUME_CREATE => 56,
            tag::VOLUME_RESIZE | tag::VOLUME_RESERVE => 16,
            tag::SNAPSHOT => 48,
            tag::CHECKPOINT_DONE => 24,
            tag::ROLLBACK | tag::PROMOTE => 8,
            tag::RELOCATE => 32,
            _ => return None,
        })
    }

    /// Encoded size of the record (prefix + body).
    pub const fn encoded_len(&self) -> usize {
        match Self::body_len_of(self.tag()) {
            Some(n) => RECORD_PREFIX_LEN + n,
            None => RECORD_PREFIX_LEN,
        }
    }

    /// `(incompat, ro_compat)` feature bits the superblock must have for this
    /// record to be written.
    pub const fn required_features(&self) -> (u64, u64) {
        match self {
            Record::Snapshot { .. }
            | Record::Rollback { .. }
            | Record::Promote { .. }
            | Record::Relocate { .. } => (INCOMPAT_SHARED_BLOCKS, 0),
            Record::VolumeReserve { .. } => (0, RO_COMPAT_RESERVATION),
            _ => (0, 0),
        }
    }

    /// Checks the record's fields (what decoding enforces).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Record::MapExtent { lba, len, addr, .. } => {
                if len == 0 {
                    return Err(Error::BadField("map extent: length"));
                }
                lba.checked_add(u64::from(len))
                    .ok_or(Error::BadField("map extent: lba overflow"))?;
                match addr.checked_add(u64::from(len)) {
                    Some(end) if end <= MAX_POOL_BLOCKS => Ok(()),
                    _ => Err(Error::BadField("map extent: address")),
                }
            }
            Record::Unmap { lba, len, .. } => {
                if len == 0 {
                    return Err(Error::BadField("unmap: length"));
                }
                lba.checked_add(u64::from(len))
                    .map(|_| ())
                    .ok_or(Error::BadField("unmap: lba overflow"))
            }
            Record::VolumeCreate { flags, name, .. } => {
                if flags & !VOL_FLAGS_KNOWN != 0 {
                    return Err(Error::BadField("volume create: flags"));
                }
                if !name.is_valid() {
                    return Err(Error::BadField("volume create: name"));
                }
                Ok(())
            }
            Record::Snapshot {
                vol,
                new_vol,
                flags,
                name,
            } => {
                if vol == new_vol {
                    return Err(Error::BadField("snapshot: same volume"));
                }
                if flags & !VOL_FLAGS_KNOWN != 0 {
                    return Err(Error::BadField("snapshot: flags"));
                }
                if !name.is_valid() {
                    return Err(Error::BadField("snapshot: name"));
                }
                Ok(())
            }
            Record::Rollback { vol, snap } => {
                if vol == snap {
                    return Err(Error::BadField("rollback: same volume"));
                }
                Ok(())
            }
            Record::Relocate { lba, old, new, len } => {
                let n = u64::from(len);
                if len == 0 {
                    return Err(Error::BadField("relocate: length"));
                }
                lba.checked_add(n)
                    .ok_or(Error::BadField("relocate: lba overflow"))?;
                let oe = old.checked_add(n).filter(|e| *e <= MAX_POOL_BLOCKS);
                let ne = new.checked_add(n).filter(|e| *e <= MAX_POOL_BLOCKS);
                match (oe, ne) {
                    (Some(oe), Some(ne)) if ne <= old || oe <= new => Ok(()),
                    _ => Err(Error::BadField("relocate: address")),
                }
            }
            Record::CheckpointDone {
                generation, set, ..
            } => {
                if generation == 0 || generation > MAX_GENERATION {
                    return Err(Error::BadField("checkpoint done: generation"));
                }
                if set > 1 {
                    return Err(Error::BadField("checkpoint done: set"));
                }
                Ok(())
            }
            Record::ZoneReset { .. }
            | Record::ZoneFinish { .. }
            | Record::Promote { .. }
            | Record::VolumeDelete { .. }
            | Record::VolumeResize { .. }
            | Record::VolumeReserve { .. } => Ok(()),
        }
    }

    /// Checks the record against the pool geometry (what replay must also
    /// enforce, beyond [`Self::validate`]): a `MapExtent` lies within the
    /// writable capacity of a single data (non-metadata) zone, and a zone
    /// record names an existing data zone. Errors are [`Error::Corrupt`].
    pub fn check_geometry<S: Deref<Target = [DeviceGeometry]>>(
        &self,
        geo: &PoolGeometry<S>,
    ) -> Result<()> {
        match *self {
            Record::MapExtent { len, addr, .. } => match geo.range_zone(addr, u64::from(len)) {
                Some(z) if !geo.zone_is_meta(z) => Ok(()),
                _ => Err(Error::Corrupt("map extent outside a data zone")),
            },
            Record::Relocate { old, new, len, .. } => {
                for a in [old, new] {
                    match geo.range_zone(a, u64::from(len)) {
                        Some(z) if !geo.zone_is_meta(z) => {}
                        _ => return Err(Error::Corrupt("relocate outside a data zone")),
                    }
                }
                Ok(())
            }
            Record::ZoneReset { zone } | Record::ZoneFinish { zone } => match geo.zone(zone) {
                Some(z) if !z.meta => Ok(()),
                _ => Err(Error::Corrupt("zone record: not a data zone")),
            },
            _ => Ok(()),
        }
    }

    /// Encodes prefix + body.
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let body = Self::body_len_of(self.tag()).ok_or(Error::Invalid("record tag"))?;
        w.put_u16(self.tag())?;
        w.put_u16(body as u16)?;
        match *self {
            Record::MapExtent {
                vol,
                lba,
                len,
                addr,
            } => {
                w.put_u32(vol)?;
                w.put_u32(len)?;
                w.put_u64(lba)?;
                w.put_u64(addr)
            }
            Record::Unmap { vol, lba, len } => {
                w.put_u32(vol)?;
                w.put_u32(len)?;
                w.put_u64(lba)
            }
            Record::ZoneReset { zone } | Record::ZoneFinish { zone } => w.put_u32(zone),
            Record::VolumeCreate {
                vol,
                size_blocks,
                flags,
                name,
            } => {
                w.put_u32(vol)?;
                w.put_u32(flags)?;
                w.put_u64(size_blocks)?;
                w.put_u8(name.len)?;
                w.put_zeros(7)?;
                w.put_bytes(&name.bytes)
            }
            Record::VolumeDelete { vol } => w.put_u32(vol),
            Record::VolumeResize {
                vol,
                size_blocks: v,
            }
            | Record::VolumeReserve { vol, blocks: v } => {
                w.put_u32(vol)?;
                w.put_u32(0)?;
                w.put_u64(v)
            }
            Record::Snapshot {
                vol,
                new_vol,
                flags,
                name,
            } => {
                w.put_u32(vol)?;
                w.put_u32(new_vol)?;
                w.put_u32(flags)?;
                w.put_u8(name.len)?;
                w.put_zeros(3)?;
                w.put_bytes(&name.bytes)
            }
            Record::Rollback { vol, snap } => {
                w.put_u32(vol)?;
                w.put_u32(snap)
            }
            Record::Promote { vol } => {
                w.put_u32(vol)?;
                w.put_u32(0)
            }
            Record::Relocate { lba, old, new, len } => {
                w.put_u64(lba)?;
                w.put_u64(old)?;
                w.put_u64(new)?;
                w.put_u32(len)?;
                w.put_u32(0)
            }
            Record::CheckpointDone {
                generation,
                journal_seq,
                set,
            } => {
                w.put_u64(generation)?;
                w.put_u64(journal_seq)?;
                w.put_u8(set)?;
                w.put_zeros(7)
            }
        }
    }

    /// Decodes one record; `Ok(None)` for a skipped unknown compat record.
    fn decode(r: &mut Reader<'_>) -> Result<Option<Record>> {
        let t = r
            .get_u16()
            .map_err(|_| Error::BadField("record: truncated"))?;
        let len = r
            .get_u16()
            .map_err(|_| Error::BadField("record: truncated"))?;
        let body = r
            .get_bytes(usize::from(len))
            .map_err(|_| Error::BadField("record: length"))?;
        let Some(want) = Self::body_len_of(t) else {
            if t & TAG_COMPAT != 0 {
                return Ok(None);
            }
            return Err(Error::Unsupported("journal: unknown incompat record"));
        };
        if usize::from(len) != want {
            return Err(Error::BadField("record: length"));
        }
        let mut b = Reader::new(body);
        let rec = match t {
            tag::MAP_EXTENT => {
                let vol = b.get_u32()?;
                let len = b.get_u32()?;
                let lba = b.get_u64()?;
                let addr = b.get_u64()?;
                Record::MapExtent {
                    vol,
                    lba,
                    len,
                    addr,
                }
            }
            tag::UNMAP => {
                let vol = b.get_u32()?;
                let len = b.get_u32()?;
                let lba = b.get_u64()?;
                Record::Unmap { vol, lba, len }
            }
            tag::ZONE_RESET => Record::ZoneReset { zone: b.get_u32()? },
            tag::ZONE_FINISH => Record::ZoneFinish { zone: b.get_u32()? },
            tag::VOLUME_CREATE => {
                let vol = b.get_u32()?;
                let flags = b.get_u32()?;
                let size_blocks = b.get_u64()?;
                let nlen = b.get_u8()?;
                if !all_zero(b.get_bytes(7)?) {
                    return Err(Error::BadField("volume create: reserved"));
                }
                let bytes = b.get_array::<VOL_NAME_MAX>()?;
                Record::VolumeCreate {
                    vol,
                    size_blocks,
                    flags,
                    name: VolName { len: nlen, bytes },
                }
            }
            tag::VOLUME_DELETE => Record::VolumeDelete { vol: b.get_u32()? },
            tag::VOLUME_RESIZE | tag::VOLUME_RESERVE => {
                let vol = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("volume record: reserved"));
                }
                let v = b.get_u64()?;
                if t == tag::VOLUME_RESIZE {
                    Record::VolumeResize {
                        vol,
                        size_blocks: v,
                    }
                } else {
                    Record::VolumeReserve { vol, blocks: v }
                }
            }
            tag::SNAPSHOT => {
                let vol = b.get_u32()?;
                let new_vol = b.get_u32()?;
                let flags = b.get_u32()?;
                let nlen = b.get_u8()?;
                if !all_zero(b.get_bytes(3)?) {
                    return Err(Error::BadField("snapshot: reserved"));
                }
                let bytes = b.get_array::<VOL_NAME_MAX>()?;
                Record::Snapshot {
                    vol,
                    new_vol,
                    flags,
                    name: VolName { len: nlen, bytes },
                }
            }
            tag::ROLLBACK => {
                let vol = b.get_u32()?;
                let snap = b.get_u32()?;
                Record::Rollback { vol, snap }
            }
            tag::PROMOTE => {
                let vol = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("promote: reserved"));
                }
                Record::Promote { vol }
            }
            tag::RELOCATE => {
                let lba = b.get_u64()?;
                let old = b.get_u64()?;
                let new = b.get_u64()?;
                let len = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("relocate: reserved"));
                }
                Record::Relocate { lba, old, new, len }
            }
            _ => {
                // tag::CHECKPOINT_DONE (the only other known tag).
                let generation = b.get_u64()?;
                let journal_seq = b.get_u64()?;
                let set = b.get_u8()?;
                if !all_zero(b.get_bytes(7)?) {
                    return Err(Error::BadField("checkpoint done: reserved"));
                }
                Record::CheckpointDone {
                    generation,
                    journal_seq,
                    set,
                }
            }
        };
        rec.validate()?;
        Ok(Some(rec))
    }
}

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
        rec.validate().map_err(super::to_invalid)?;
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
        let item = match super::block_kind(blk) {
            super::BlockKind::Superblock => LogBlock::Superblock(blk),
            super::BlockKind::Journal => match decode_journal_block(blk) {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::{mutate, reseal, Rng};
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const U: Uuid = [0x11; 16];

    fn all_kinds() -> Vec<Record> {
        vec![
            Record::MapExtent {
                vol: 1,
                lba: 100,
                len: 8,
                addr: 4096,
            },
            Record::Unmap {
                vol: 2,
                lba: 0,
                len: u32::MAX,
            },
            Record::ZoneReset { zone: 17 },
            Record::ZoneFinish { zone: u32::MAX },
            Record::VolumeCreate {
                vol: 3,
                size_blocks: 1 << 30,
                flags: VOL_FLAG_READONLY,
                name: VolName::new(b"vm-disk-0").unwrap(),
            },
            Record::VolumeCreate {
                vol: 4,
                size_blocks: 0,
                flags: 0,
                name: VolName::new(&[0xff; 32]).unwrap(),
            },
            Record::VolumeDelete { vol: 3 },
            Record::VolumeResize {
                vol: 4,
                size_blocks: 77,
            },
            Record::VolumeReserve { vol: 4, blocks: 12 },
            Record::Snapshot {
                vol: 4,
                new_vol: 5,
                flags: VOL_FLAG_READONLY,
                name: VolName::new(b"snap@1").unwrap(),
            },
            Record::Rollback { vol: 4, snap: 5 },
            Record::Promote { vol: 6 },
            Record::Relocate {
                lba: 9,
                old: 1000,
                new: 2000,
                len: 64,
            },
            Record::CheckpointDone {
                generation: 9,
                journal_seq: 1234,
                set: 1,
            },
        ]
    }

    fn block(recs: &[Record], seq: u64) -> Vec<u8> {
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut b = JournalBuilder::new(&mut buf, U, seq, 3).unwrap();
        for r in recs {
            b.push(r).unwrap();
        }
        b.finish().unwrap();
        buf
    }

    fn decode_all(buf: &[u8]) -> Result<(JournalHeader, Vec<Record>)> {
        let (h, it) = decode_journal_block(buf)?;
        Ok((h, it.collect::<Result<Vec<_>>>()?))
    }

    #[test]
    fn round_trip() {
        let recs = all_kinds();
        let buf = block(&recs, 42);
        let (h, got) = decode_all(&buf).unwrap();
        assert_eq!(got, recs);
        assert_eq!(h.seq, 42);
        assert_eq!(h.ckpt_gen, 3);
        assert_eq!(h.pool_uuid, U);
        assert_eq!(h.nr_records as usize, recs.len());
        let plen: usize = recs.iter().map(|r| r.encoded_len()).sum();
        assert_eq!(h.payload_len as usize, plen);
        // Empty block.
        let (h, got) = decode_all(&block(&[], 1)).unwrap();
        assert!(got.is_empty() && h.payload_len == 0);
        assert_eq!(VolName::new(b"abc").unwrap().as_bytes(), b"abc");
        assert!(VolName::new(&[1; 33]).is_err());
        assert_eq!(
            Record::Snapshot {
                vol: 1,
                new_vol: 2,
                flags: 0,
                name: VolName::default(),
            }
            .required_features(),
            (INCOMPAT_SHARED_BLOCKS, 0)
        );
        assert_eq!(
            Record::VolumeReserve { vol: 1, blocks: 2 }
                .required_features()
                .1,
            RO_COMPAT_RESERVATION
        );
        assert_eq!(Record::ZoneReset { zone: 1 }.required_features(), (0, 0));
    }

    #[test]
    fn fills_and_reports_full() {
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut b = JournalBuilder::new(&mut buf, U, 7, 0).unwrap();
        b.push(&Record::ZoneFinish { zone: 2 }).unwrap();
        let r = Record::MapExtent {
            vol: 1,
            lba: 0,
            len: 1,
            addr: 0,
        };
        let mut n = 0;
        while b.push(&r).is_ok() {
            n += 1;
        }
        assert_eq!(n, (JOURNAL_PAYLOAD_MAX - 8) / 28);
        assert_eq!(b.push(&r), Err(Error::NoSpace));
        assert!(!b.fits(&r));
        assert!(b.fits(&Record::ZoneReset { zone: 1 }));
        b.push(&Record::ZoneReset { zone: 1 }).unwrap();
        assert_eq!(b.len() as usize, n + 2);
        assert!(!b.is_empty());
        b.finish().unwrap();
        let (h, got) = decode_all(&buf).unwrap();
        assert_eq!(got.len(), n + 2);
        assert_eq!(h.payload_len as usize, n * 28 + 16);

        // Many tiny records: the count field stays within u16.
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut b = JournalBuilder::new(&mut buf, U, 7, 0).unwrap();
        let mut n = 0;
        while b.push_raw(0x8123, &[]).is_ok() {
            n += 1;
        }
        assert_eq!(n, JOURNAL_PAYLOAD_MAX / 4);
        b.finish().unwrap();
        assert_eq!(decode_all(&buf).unwrap().1.len(), 0);
    }

    #[test]
    fn builder_errors() {
        let mut buf = vec![0u8; BLOCK_SIZE];
        assert!(JournalBuilder::new(&mut buf[..100], U, 1, 0).is_err());
        assert!(JournalBuilder::new(&mut buf, U, 0, 0).is_err());
        let mut b = JournalBuilder::new(&mut buf, U, 1, 0).unwrap();
        let bad = [
            Record::MapExtent {
                vol: 1,
                lba: 0,
                len: 0,
                addr: 0,
            },
            Record::MapExtent {
                vol: 1,
                lba: u64::MAX,
                len: 1,
                addr: 0,
            },
            Record::MapExtent {
                vol: 1,
                lba: 0,
                len: 1,
                addr: MAX_POOL_BLOCKS,
            },
            Record::MapExtent {
                vol: 1,
                lba: 0,
                len: 2,
                addr: u64::MAX,
            },
            Record::Unmap {
                vol: 1,
                lba: 0,
                len: 0,
            },
            Record::Unmap {
                vol: 1,
                lba: u64::MAX,
                len: 1,
            },
            Record::VolumeCreate {
                vol: 1,
                size_blocks: 1,
                flags: 2,
                name: VolName::default(),
            },
            Record::Snapshot {
                vol: 1,
                new_vol: 1,
                flags: 0,
                name: VolName::default(),
            },
            Record::Snapshot {
                vol: 1,
                new_vol: 2,
                flags: 4,
                name: VolName::default(),
            },
            Record::Rollback { vol: 3, snap: 3 },
            Record::Relocate {
                lba: 0,
                old: 10,
                new: 12,
                len: 4,
            },
            Record::Relocate {
                lba: u64::MAX,
                old: 10,
                new: 100,
                len: 4,
            },
            Record::Relocate {
                lba: 0,
                old: MAX_POOL_BLOCKS - 1,
                new: 100,
                len: 4,
            },
            Record::Relocate {
                lba: 0,
                old: 10,
                new: 100,
                len: 0,
            },
            Record::CheckpointDone {
                generation: 0,
                journal_seq: 1,
                set: 0,
            },
            Record::CheckpointDone {
                generation: 1,
                journal_seq: 1,
                set: 2,
            },
        ];
        for r in &bad {
            assert!(matches!(b.push(r), Err(Error::Invalid(_))), "{r:?}");
        }
        assert!(b.is_empty());
        assert!(b.push_raw(5, &[]).is_err()); // not compat
        assert!(b.push_raw(TAG_COMPAT | 1, &[]).is_ok()); // compat, unknown
        assert_eq!(b.push_raw(0x8001, &[0; 5000]), Err(Error::NoSpace));
    }

    /// Patches a raw byte of an encoded block, reseals it, and decodes.
    fn patched(recs: &[Record], f: impl Fn(&mut [u8])) -> Result<(JournalHeader, Vec<Record>)> {
        let mut b = block(recs, 5);
        f(&mut b);
        reseal(&mut b);
        decode_all(&b)
    }

    #[test]
    fn validation_errors() {
        let r1 = [Record::MapExtent {
            vol: 1,
            lba: 2,
            len: 3,
            addr: 4,
        }];
        let bf = |s| Err(Error::BadField(s));
        let p = JOURNAL_HEADER_LEN; // first record
        assert_eq!(patched(&r1, |b| b[14] = 2), bf("journal: flags"));
        assert_eq!(patched(&r1, |b| b[20] = 1), bf("journal: reserved"));
        // The commit sequence must lie below the block's own sequence.
        assert_eq!(
            patched(&r1, |b| b[56..64].copy_from_slice(&u64::MAX.to_le_bytes())),
            bf("journal: commit sequence")
        );
        assert_eq!(patched(&r1, |b| b[40..48].fill(0)), bf("journal: sequence"));
        assert_eq!(
            patched(&r1, |b| b[16..20].copy_from_slice(&4033u32.to_le_bytes())),
            bf("journal: payload length")
        );
        assert_eq!(
            patched(&r1, |b| b[16..20].copy_from_slice(&u32::MAX.to_le_bytes())),
            bf("journal: payload length")
        );
        assert_eq!(patched(&r1, |b| b[4095] = 1), bf("journal: tail not zero"));
        // Payload length shorter than the record: the record's last byte is
        // then tail (non-zero) or the record is cut.
        assert_eq!(patched(&r1, |b| b[16] = 27), bf("record: length"));
        // Count vs records.
        assert_eq!(patched(&r1, |b| b[12] = 0), bf("journal: record count"));
        assert_eq!(patched(&r1, |b| b[12] = 2), bf("record: truncated"));
        // Record length mismatch, unknown tags.
        assert_eq!(patched(&r1, |b| b[p + 2] = 23), bf("record: length"));
        assert_eq!(patched(&r1, |b| b[p + 2] = 200), bf("record: length"));
        assert_eq!(
            patched(&r1, |b| b[p] = 99),
            Err(Error::Unsupported("journal: unknown incompat record"))
        );
        // Unknown compat tag with the same length is skipped.
        let (_, got) = patched(&r1, |b| b[p + 1] = 0x80 | 0x40).unwrap();
        assert!(got.is_empty());
        // Field validation behind the CRC.
        assert_eq!(
            patched(&r1, |b| b[p + 8..p + 12].fill(0)),
            bf("map extent: length")
        );
        assert_eq!(
            patched(&r1, |b| b[p + 12..p + 20].fill(0xff)),
            bf("map extent: lba overflow")
        );
        assert_eq!(
            patched(&r1, |b| b[p + 27] = 0x01),
            bf("map extent: address")
        );
        let cr = [Record::VolumeCreate {
            vol: 1,
            size_blocks: 1,
            flags: 0,
            name: VolName::new(b"ab").unwrap(),
        }];
        assert_eq!(
            patched(&cr, |b| b[p + 4 + 4] = 8),
            bf("volume create: flags")
        );
        assert_eq!(
            patched(&cr, |b| b[p + 4 + 17] = 1),
            bf("volume create: reserved")
        );
        assert_eq!(
            patched(&cr, |b| b[p + 4 + 16] = 33),
            bf("volume create: name")
        );
        assert_eq!(
            patched(&cr, |b| b[p + 4 + 16] = 1),
            bf("volume create: name")
        );
        let rs = [Record::VolumeResize {
            vol: 1,
            size_blocks: 2,
        }];
        assert_eq!(
            patched(&rs, |b| b[p + 8] = 1),
            bf("volume record: reserved")
        );
        let sn = [Record::Snapshot {
            vol: 1,
            new_vol: 2,
            flags: 0,
            name: VolName::new(b"s").unwrap(),
        }];
        assert_eq!(patched(&sn, |b| b[p + 17] = 1), bf("snapshot: reserved"));
        assert_eq!(patched(&sn, |b| b[p + 8] = 1), bf("snapshot: same volume"));
        assert_eq!(patched(&sn, |b| b[p + 12] = 2), bf("snapshot: flags"));
        assert_eq!(patched(&sn, |b| b[p + 16] = 0), bf("snapshot: name"));
        assert_eq!(patched(&sn, |b| b[p + 16] = 33), bf("snapshot: name"));
        let rb = [Record::Rollback { vol: 1, snap: 2 }];
        assert_eq!(patched(&rb, |b| b[p + 8] = 1), bf("rollback: same volume"));
        let pr = [Record::Promote { vol: 1 }];
        assert_eq!(patched(&pr, |b| b[p + 8] = 1), bf("promote: reserved"));
        let rl = [Record::Relocate {
            lba: 5,
            old: 100,
            new: 200,
            len: 8,
        }];
        assert_eq!(patched(&rl, |b| b[p + 32] = 1), bf("relocate: reserved"));
        assert_eq!(patched(&rl, |b| b[p + 28] = 0), bf("relocate: length"));
        assert_eq!(patched(&rl, |b| b[p + 20] = 101), bf("relocate: address"));
        assert_eq!(
            patched(&rl, |b| b[p + 4..p + 12].fill(0xff)),
            bf("relocate: lba overflow")
        );
        let cd = [Record::CheckpointDone {
            generation: 1,
            journal_seq: 1,
            set: 0,
        }];
        assert_eq!(patched(&cd, |b| b[p + 20] = 2), bf("checkpoint done: set"));
        assert_eq!(
            patched(&cd, |b| b[p + 21] = 1),
            bf("checkpoint done: reserved")
        );
        assert_eq!(
            patched(&cd, |b| b[p + 4] = 0),
            bf("checkpoint done: generation")
        );
        let un = [Record::Unmap {
            vol: 1,
            lba: 0,
            len: 1,
        }];
        assert_eq!(patched(&un, |b| b[p + 8] = 0), bf("unmap: length"));
        assert_eq!(
            patched(&un, |b| b[p + 12..p + 20].fill(0xff)),
            bf("unmap: lba overflow")
        );
    }

    #[test]
    fn torn_truncated_flipped() {
        let buf = block(&all_kinds(), 9);
        assert_eq!(
            decode_journal_block(&buf[..BLOCK_SIZE - 1]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            decode_journal_block(&[0u8; BLOCK_SIZE]).err(),
            Some(Error::BadMagic)
        );
        let mut t = buf.clone();
        t[100..].fill(0);
        assert_eq!(decode_journal_block(&t).err(), Some(Error::BadChecksum));
        for bit in (0..BLOCK_SIZE * 8).step_by(61) {
            let mut f = buf.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let e = decode_journal_block(&f).err().unwrap();
            assert!(e == Error::BadChecksum || e == Error::BadMagic, "{e:?}");
        }
    }

    fn random_record(rng: &mut Rng) -> Record {
        let vol = rng.below(8) as u32;
        let len = 1 + rng.below(1 << 20) as u32;
        match rng.below(13) {
            9 => Record::Rollback { vol, snap: vol + 1 },
            10 => Record::Promote { vol },
            11 => {
                let old = rng.below(1 << 40);
                Record::Relocate {
                    lba: rng.below(1 << 40),
                    old,
                    new: old + (1 << 41),
                    len,
                }
            }
            0 => Record::MapExtent {
                vol,
                lba: rng.below(1 << 40),
                len,
                addr: rng.below(1 << 47),
            },
            1 => Record::Unmap {
                vol,
                lba: rng.below(1 << 40),
                len,
            },
            2 => Record::ZoneReset {
                zone: rng.next() as u32,
            },
            3 => Record::ZoneFinish {
                zone: rng.next() as u32,
            },
            4 => {
                let mut name = [0u8; 32];
                rng.fill(&mut name);
                let n = rng.below(33) as usize;
                Record::VolumeCreate {
                    vol,
                    size_blocks: rng.next(),
                    flags: rng.below(2) as u32,
                    name: VolName::new(&name[..n]).unwrap(),
                }
            }
            5 => Record::VolumeDelete { vol },
            6 => Record::VolumeResize {
                vol,
                size_blocks: rng.next(),
            },
            7 => Record::VolumeReserve {
                vol,
                blocks: rng.next(),
            },
            8 => Record::Snapshot {
                vol,
                new_vol: vol + 1,
                flags: rng.below(2) as u32,
                name: VolName::new(b"x").unwrap(),
            },
            _ => Record::CheckpointDone {
                generation: 1 + rng.below(1000),
                journal_seq: rng.next(),
                set: rng.below(2) as u8,
            },
        }
    }

    /// Random record streams are split into blocks by the builder and come
    /// back identical, in order, with consecutive sequence numbers.
    #[test]
    fn random_streams_round_trip() {
        let mut rng = Rng::new(42);
        for _ in 0..50 {
            let recs: Vec<Record> = (0..rng.below(600))
                .map(|_| random_record(&mut rng))
                .collect();
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            let mut i = 0;
            let mut seq = 1 + rng.below(1 << 40);
            let first = seq;
            while i < recs.len() || blocks.is_empty() {
                let mut buf = vec![0u8; BLOCK_SIZE];
                let mut b = JournalBuilder::new(&mut buf, U, seq, 1).unwrap();
                while i < recs.len() && b.push(&recs[i]).is_ok() {
                    i += 1;
                }
                if rng.below(4) == 0 {
                    let _ = b.push_raw(0x8000 | (rng.below(0x7000) as u16 + 100), &[1, 2, 3]);
                }
                b.finish().unwrap();
                blocks.push(buf);
                seq += 1;
            }
            let mut got = Vec::new();
            for (k, blk) in blocks.iter().enumerate() {
                let (h, it) = decode_journal_block(blk).unwrap();
                assert_eq!(h.seq, first + k as u64);
                for r in it {
                    got.push(r.unwrap());
                }
            }
            assert_eq!(got, recs);
        }
    }

    #[test]
    fn geometry_checks() {
        use super::super::super::geom::tests::zns;
        let devs = [zns(8, 16, 12), zns(6, 32, 32)];
        let p = PoolGeometry::new(&devs[..]).unwrap();
        let me = |addr, len| {
            Record::MapExtent {
                vol: 1,
                lba: 0,
                len,
                addr,
            }
            .check_geometry(&p)
        };
        assert!(me(4 * 16, 12).is_ok());
        assert!(me(4 * 16 + 11, 1).is_ok());
        assert!(me(4 * 16 + 11, 2).is_err()); // beyond capacity
        assert!(me(0, 1).is_err()); // metadata zone
        assert!(me(128 + 4 * 32, 32).is_ok());
        assert!(me(128 + 3 * 32, 1).is_err()); // member 1's metadata zone
        assert!(me(128 + 6 * 32, 1).is_err()); // beyond the pool
        assert!(Record::ZoneReset { zone: 4 }.check_geometry(&p).is_ok());
        assert!(Record::ZoneFinish { zone: 13 }.check_geometry(&p).is_ok());
        assert!(Record::ZoneReset { zone: 3 }.check_geometry(&p).is_err());
        assert!(Record::ZoneReset { zone: 14 }.check_geometry(&p).is_err());
        assert!(Record::VolumeDelete { vol: 1 }.check_geometry(&p).is_ok());
    }

    #[test]
    fn scan_log_zone() {
        let sb = {
            let mut b = vec![0u8; BLOCK_SIZE];
            b[..8].copy_from_slice(&super::super::SUPERBLOCK_MAGIC.to_le_bytes());
            b
        };
        let mut zone = Vec::new();
        zone.extend_from_slice(&sb);
        zone.extend_from_slice(&block(&all_kinds(), 1));
        zone.extend_from_slice(&block(&[Record::ZoneReset { zone: 3 }], 2));
        let mut torn = block(&[], 3);
        torn[70] = 1;
        zone.extend_from_slice(&torn);
        zone.extend_from_slice(&block(&[], 4));
        zone.extend_from_slice(&[0u8; BLOCK_SIZE]); // end of the log
        zone.extend_from_slice(&block(&[], 5)); // not reached
        let items: Vec<(usize, LogBlock<'_>)> = JournalBlockIter::new(&zone).collect();
        assert_eq!(items.len(), 5);
        assert!(matches!(items[0], (0, LogBlock::Superblock(_))));
        match &items[1] {
            (1, LogBlock::Journal(h, it)) => {
                assert_eq!(h.seq, 1);
                assert_eq!(it.clone().count(), all_kinds().len());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(items[3], (3, LogBlock::Bad(Error::BadChecksum))));
        assert!(matches!(&items[4], (4, LogBlock::Journal(h, _)) if h.seq == 4));
        // A trailing partial block is ignored; an empty buffer yields nothing.
        assert_eq!(JournalBlockIter::new(&zone[..BLOCK_SIZE + 10]).count(), 1);
        assert_eq!(JournalBlockIter::new(&[]).count(), 0);
    }

    #[test]
    fn fuzz() {
        let mut rng = Rng::new(0x0123_4567_89ab);
        let base = block(&all_kinds(), 77);
        let mut ok = 0u32;
        for i in 0..30_000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut b);
            }
            if i % 4 != 0 {
                reseal(&mut b);
            }
            if let Ok((_, it)) = decode_journal_block(&b) {
                // A decoded block never yields an error.
                for r in it {
                    assert!(r.is_ok());
                }
                ok += 1;
            }
        }
        assert!(ok > 0 && ok < 30_000);
        // Fully random blocks with a valid magic and CRC.
        for _ in 0..2000 {
            let mut b = vec![0u8; BLOCK_SIZE];
            rng.fill(&mut b);
            b[..8].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
            b[16..20].copy_from_slice(&(rng.below(4096) as u32).to_le_bytes());
            reseal(&mut b);
            let _ = decode_journal_block(&b);
        }
    }
}
