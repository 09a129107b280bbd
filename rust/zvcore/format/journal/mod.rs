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
//!
//! Submodules: `records` (the record types, their validation and
//! encoding), `builder` (filling a block) and `decode` (decoding blocks,
//! scanning a log zone).

use super::BLOCK_SIZE;

// Only named by the links in the docs.
#[cfg(doc)]
use super::super::error::Error;
#[cfg(doc)]
use super::JOURNAL_MAGIC;

mod builder;
mod decode;
mod records;

pub use builder::JournalBuilder;
pub use decode::{decode_journal_block, JournalBlockIter, JournalHeader, LogBlock, RecordIter};
pub use records::{Record, VolName};

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
    /// [`super::Record::Policy`].
    pub const POLICY: u16 = 14;
}

/// Longest volume name (bytes).
pub const VOL_NAME_MAX: usize = 32;
/// Volume flag: read-only (snapshots).
pub const VOL_FLAG_READONLY: u32 = 1 << 0;
/// Volume flag: mirrored (`INCOMPAT_MIRROR`): its blocks' second copies
/// are mapped by its companion, the volume of its id with
/// [`VOL_COPY_ID_BIT`] set.
pub const VOL_FLAG_MIRRORED: u32 = 1 << 1;
/// Volume flag: the companion of a mirrored volume (hidden; its id has
/// [`VOL_COPY_ID_BIT`] set, and only a companion's has).
pub const VOL_FLAG_COPY: u32 = 1 << 2;
/// Every volume flag this version knows.
pub const VOL_FLAGS_KNOWN: u32 = VOL_FLAG_READONLY | VOL_FLAG_MIRRORED | VOL_FLAG_COPY;
/// The bit of a companion's volume id.
pub const VOL_COPY_ID_BIT: u32 = 1 << 31;

/// Whether volume flags `flags` fit volume id `vol`: known bits, a
/// companion exactly when the id is a companion's, never both mirrored and
/// a companion.
pub const fn vol_flags_fit(vol: u32, flags: u32) -> bool {
    flags & !VOL_FLAGS_KNOWN == 0
        && (flags & VOL_FLAG_COPY != 0) == (vol & VOL_COPY_ID_BIT != 0)
        && flags & (VOL_FLAG_MIRRORED | VOL_FLAG_COPY) != VOL_FLAG_MIRRORED | VOL_FLAG_COPY
}

#[cfg(test)]
mod tests;
