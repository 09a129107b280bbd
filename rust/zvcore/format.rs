// SPDX-License-Identifier: GPL-2.0
//! zvpool on-disk format, version 1.
//!
//! Every metadata structure is exactly one 4 KiB block that starts with the
//! same 12-byte prefix:
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 8    | magic (little-endian `u64`, one per block type)   |
//! | 8      | 4    | CRC32C of the whole block with this field skipped |
//!
//! so any block read from a metadata zone can be classified ([`peek_magic`])
//! and verified ([`check_block`]) before a single other field is trusted.
//! Fields are little-endian and encoded/decoded explicitly through
//! [`super::codec`]; reserved bytes must be zero (so they can be given a
//! meaning later without a format break) and decoders validate every field.
//!
//! Submodules:
//! - [`superblock`]: pool identity, features and member geometry;
//! - [`journal`]: the metadata log (mapping changes since the last checkpoint);
//! - [`checkpoint`]: framing of full state images (A/B sets);
//! - [`layout`]: which metadata zone of each device holds what.
//!
//! See `Documentation/on-disk-format.md` for the full description.

pub mod checkpoint;
pub mod history;
pub mod journal;
pub mod layout;
pub mod policy;
pub mod rules;
pub mod sharing;
pub mod superblock;
pub mod zone_history;

#[cfg(test)]
pub(super) mod testutil;

pub use checkpoint::{
    CheckpointCommit, CheckpointHeader, CheckpointItem, CheckpointReader, CheckpointWriter,
    SectionInfo, WriterState,
};
pub use journal::{
    decode_journal_block, JournalBlockIter, JournalBuilder, JournalHeader, LogBlock, Record,
    RecordIter, VolName,
};
pub use superblock::{MemberInfo, Superblock};

use super::crc32c::Crc32c;
use super::error::{Error, Result};

/// Size of every metadata block, and zvpool's block size (fixed).
pub const BLOCK_SIZE: usize = 4096;

/// Upper bound (exclusive of nothing above it) of every generation and
/// sequence number on disk: counters start at 1 and grow by one per
/// checkpoint, commit or membership change, so they never come near it; a
/// decoded value above it is damage (or a forgery), and accepting it would
/// leave no room to count on (the next checkpoint generation would not
/// exist).
pub const MAX_GENERATION: u64 = 1 << 62;

/// [`BLOCK_SIZE`] as a `u32` (as stored in the superblock).
pub const BLOCK_SIZE_U32: u32 = 4096;

/// Version of the on-disk format described here.
pub const FORMAT_VERSION: u32 = 1;

/// Pool / device identifier (random, generated at creation).
pub type Uuid = [u8; 16];

/// Magic of a superblock: `"ZVPOOLSB"`.
pub const SUPERBLOCK_MAGIC: u64 = u64::from_le_bytes(*b"ZVPOOLSB");
/// Magic of a journal block: `"ZVJOURNL"`.
pub const JOURNAL_MAGIC: u64 = u64::from_le_bytes(*b"ZVJOURNL");
/// Magic of a checkpoint header block: `"ZVCKHEAD"`.
pub const CKPT_HEADER_MAGIC: u64 = u64::from_le_bytes(*b"ZVCKHEAD");
/// Magic of a checkpoint payload block: `"ZVCKDATA"`.
pub const CKPT_DATA_MAGIC: u64 = u64::from_le_bytes(*b"ZVCKDATA");
/// Magic of a checkpoint commit block: `"ZVCKCOMT"`.
pub const CKPT_COMMIT_MAGIC: u64 = u64::from_le_bytes(*b"ZVCKCOMT");

/// Offset of the CRC field in every metadata block.
pub const CRC_OFFSET: usize = 8;
/// Bytes of the common prefix (magic + crc).
pub const PREFIX_LEN: usize = 12;

// ---- Feature flags ---------------------------------------------------------
//
// Three 64-bit words in the superblock, as in ext4:
// - compat: a reader that does not know the bit may use the pool normally;
// - ro_compat: a reader that does not know the bit may only mount read-only
//   (writing could break an invariant the feature maintains);
// - incompat: a reader that does not know the bit must refuse the pool
//   (decoding returns `Error::Unsupported`).

/// No compat features are defined in version 1.
pub const COMPAT_KNOWN: u64 = 0;

/// Per-volume space reservations (`Record::VolumeReserve`). Read-only safe for
/// an old reader, but writing without honouring reservations could overcommit.
pub const RO_COMPAT_RESERVATION: u64 = 1 << 0;
/// Journal copies: every journal block (and the superblock at a log-zone
/// switch) is written to the log zones of two members, the journal member
/// and its mirror (member 1 when the journal member is member 0), at the
/// same offsets. A reader finds either copy (recovery looks for a valid
/// block of each sequence number in every log zone), so an old reader may
/// assemble the pool; writing without the copies would break the promise
/// that no single member holds the only copy of the journal.
pub const RO_COMPAT_JOURNAL_COPIES: u64 = 1 << 1;
/// Every ro-compat bit this version knows.
pub const RO_COMPAT_KNOWN: u64 = RO_COMPAT_RESERVATION | RO_COMPAT_JOURNAL_COPIES;

/// Snapshots and clones: blocks may be shared between volumes
/// (`Record::Snapshot`), so a reader without reference tracking would free
/// live blocks.
pub const INCOMPAT_SHARED_BLOCKS: u64 = 1 << 0;
/// Mirroring: data and metadata may have several copies on different members.
pub const INCOMPAT_MIRROR: u64 = 1 << 1;
/// Placement policies: journal records `Policy` and the checkpoint section
/// `policy::POLICY` (volumes' placement, members' classes, tiering, the
/// member being evacuated). Set by the first policy set, never cleared.
pub const INCOMPAT_PLACEMENT: u64 = 1 << 2;
/// Commit groups: journal blocks carry a commit sequence and the last block
/// of each commit is flagged (`journal::JF_COMMIT`), so recovery can tell a
/// torn tail from damage to committed metadata. A reader that ignored the
/// fields would truncate committed state silently at any damage.
pub const INCOMPAT_COMMIT_BLOCKS: u64 = 1 << 3;
/// Delta checkpoints: a checkpoint set may hold a full checkpoint followed
/// by deltas (`checkpoint::DeltaLink`); a reader that loaded only the full
/// one would replay the journal from the wrong place.
pub const INCOMPAT_DELTA_CHECKPOINTS: u64 = 1 << 4;
/// Volume operations in delta checkpoints: a delta may redefine the volume
/// table (sections `REDEFINED`, `VOLUMES`, block tables, sharing and rules
/// after its changes; see `checkpoint::section`), so a volume operation no
/// longer makes the next checkpoint a full image. A reader without it would
/// refuse such a delta as corrupt.
pub const INCOMPAT_DELTA_VOLUMES: u64 = 1 << 5;
/// Grows in delta checkpoints: a volume a delta keeps (or copies) may be
/// listed in its `VOLUMES` section larger than the chain holds it, and is
/// grown to that size before the delta's changes apply, so growing a
/// volume costs a delta of its changes rather than its whole table. A
/// reader without it would refuse such a delta as corrupt.
pub const INCOMPAT_DELTA_GROW: u64 = 1 << 6;
/// Checkpoint copies: every checkpoint block is written twice, on two
/// members (`layout::checkpoint_copy_addr`), and a set holds half as much.
/// A reader without it would look for checkpoint blocks in the wrong
/// places.
pub const INCOMPAT_CHECKPOINT_COPIES: u64 = 1 << 7;
/// Removed members: a member entry may be flagged removed
/// (`superblock::MEMBER_FLAG_REMOVED`): its device is no longer part of the
/// pool and is not looked for at assembly; checkpoints are laid out over
/// the other members, and a checkpoint header names the removed members it
/// was laid out without (`CheckpointHeader::removed`). A reader without it
/// would wait for the device and look for checkpoint blocks in the wrong
/// places.
pub const INCOMPAT_REMOVED_MEMBERS: u64 = 1 << 8;
/// Every checkpoint holds the placement history (`zone_history`: the
/// allocator's clock, each data zone's age and hot flag, the mean lifetime
/// of overwritten blocks) in section `zone_history::ZONE_HISTORY`, which
/// assembly restores. A reader without it would refuse the section.
pub const INCOMPAT_ZONE_HISTORY: u64 = 1 << 9;
/// Short conventional log zones: the journal uses a conventional log zone
/// up to [`superblock::Superblock::conv_log_blocks`] blocks only, so
/// assembly reads no further (a conventional zone has no write pointer,
/// and stale blocks of earlier journals lie past the current one's end).
/// A reader without it would read, and write, the whole zone.
pub const INCOMPAT_CONV_LOG_SPAN: u64 = 1 << 10;
/// Every incompat bit this version knows (decodes). The engine may still
/// support fewer: it checks with [`Superblock::check_features`].
pub const INCOMPAT_KNOWN: u64 = INCOMPAT_SHARED_BLOCKS
    | INCOMPAT_MIRROR
    | INCOMPAT_PLACEMENT
    | INCOMPAT_COMMIT_BLOCKS
    | INCOMPAT_DELTA_CHECKPOINTS
    | INCOMPAT_DELTA_VOLUMES
    | INCOMPAT_DELTA_GROW
    | INCOMPAT_CHECKPOINT_COPIES
    | INCOMPAT_REMOVED_MEMBERS
    | INCOMPAT_ZONE_HISTORY
    | INCOMPAT_CONV_LOG_SPAN;

/// The magic of a metadata block, if it has at least 8 bytes.
pub fn peek_magic(block: &[u8]) -> Option<u64> {
    let b: [u8; 8] = block.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Type of a metadata block, by magic only (nothing else is checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// [`SUPERBLOCK_MAGIC`].
    Superblock,
    /// [`JOURNAL_MAGIC`].
    Journal,
    /// [`CKPT_HEADER_MAGIC`].
    CheckpointHeader,
    /// [`CKPT_DATA_MAGIC`].
    CheckpointData,
    /// [`CKPT_COMMIT_MAGIC`].
    CheckpointCommit,
    /// Anything else (never written, zeroed, foreign data).
    Unknown,
}

/// Classifies a block by its magic, e.g. while scanning a log zone (which
/// holds superblocks and journal blocks).
pub fn block_kind(block: &[u8]) -> BlockKind {
    match peek_magic(block) {
        Some(SUPERBLOCK_MAGIC) => BlockKind::Superblock,
        Some(JOURNAL_MAGIC) => BlockKind::Journal,
        Some(CKPT_HEADER_MAGIC) => BlockKind::CheckpointHeader,
        Some(CKPT_DATA_MAGIC) => BlockKind::CheckpointData,
        Some(CKPT_COMMIT_MAGIC) => BlockKind::CheckpointCommit,
        _ => BlockKind::Unknown,
    }
}

/// CRC32C of a block with its CRC field (bytes 8..12) skipped.
pub fn block_crc(block: &[u8]) -> u32 {
    let head = block.get(..CRC_OFFSET).unwrap_or(block);
    let tail = block.get(PREFIX_LEN..).unwrap_or(&[]);
    Crc32c::new().update(head).update(tail).finish()
}

/// Computes and stores the CRC of a full block (used by every encoder).
pub fn seal_block(block: &mut [u8]) -> Result<()> {
    if block.len() != BLOCK_SIZE {
        return Err(Error::Invalid("block buffer size"));
    }
    let crc = block_crc(block);
    let dst = block
        .get_mut(CRC_OFFSET..PREFIX_LEN)
        .ok_or(Error::Truncated)?;
    dst.copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Checks the length, magic and CRC of a metadata block read from disk and
/// returns the block (its first [`BLOCK_SIZE`] bytes) and its stored CRC.
///
/// Errors: [`Error::Truncated`] if shorter than a block, [`Error::BadMagic`],
/// [`Error::BadChecksum`].
pub fn check_block(block: &[u8], magic: u64) -> Result<(&[u8], u32)> {
    let block = block.get(..BLOCK_SIZE).ok_or(Error::Truncated)?;
    if peek_magic(block) != Some(magic) {
        return Err(Error::BadMagic);
    }
    let stored: [u8; 4] = block
        .get(CRC_OFFSET..PREFIX_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Truncated)?;
    let stored = u32::from_le_bytes(stored);
    if stored != block_crc(block) {
        return Err(Error::BadChecksum);
    }
    Ok((block, stored))
}

/// Checks that every byte of `b` is zero (reserved space).
pub(crate) fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Turns a validation error into a caller error (used by encoders that reuse
/// the decoder's validation).
pub(crate) fn to_invalid(e: Error) -> Error {
    match e {
        Error::BadField(s) | Error::Corrupt(s) => Error::Invalid(s),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_distinct_and_prefix_checked() {
        let m = [
            SUPERBLOCK_MAGIC,
            JOURNAL_MAGIC,
            CKPT_HEADER_MAGIC,
            CKPT_DATA_MAGIC,
            CKPT_COMMIT_MAGIC,
        ];
        for (i, a) in m.iter().enumerate() {
            for b in &m[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let mut blk = [0u8; BLOCK_SIZE];
        blk[..8].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
        blk[100] = 7;
        seal_block(&mut blk).unwrap();
        assert!(check_block(&blk, JOURNAL_MAGIC).is_ok());
        assert_eq!(check_block(&blk, SUPERBLOCK_MAGIC), Err(Error::BadMagic));
        assert_eq!(
            check_block(&blk[..100], JOURNAL_MAGIC),
            Err(Error::Truncated)
        );
        blk[100] = 8;
        assert_eq!(check_block(&blk, JOURNAL_MAGIC), Err(Error::BadChecksum));
        blk[100] = 7;
        blk[9] ^= 1;
        assert_eq!(check_block(&blk, JOURNAL_MAGIC), Err(Error::BadChecksum));
        assert_eq!(
            seal_block(&mut blk[..10]),
            Err(Error::Invalid("block buffer size"))
        );
        assert_eq!(peek_magic(&blk[..7]), None);
        assert_eq!(block_kind(&blk), BlockKind::Journal);
        assert_eq!(block_kind(&blk[..7]), BlockKind::Unknown);
        for (m, k) in [
            (SUPERBLOCK_MAGIC, BlockKind::Superblock),
            (CKPT_HEADER_MAGIC, BlockKind::CheckpointHeader),
            (CKPT_DATA_MAGIC, BlockKind::CheckpointData),
            (CKPT_COMMIT_MAGIC, BlockKind::CheckpointCommit),
            (0, BlockKind::Unknown),
        ] {
            assert_eq!(block_kind(&m.to_le_bytes()), k);
        }
        assert!(all_zero(&[0, 0]) && !all_zero(&[0, 1]));
        assert_eq!(to_invalid(Error::BadField("x")), Error::Invalid("x"));
        assert_eq!(to_invalid(Error::Truncated), Error::Truncated);
    }
}
