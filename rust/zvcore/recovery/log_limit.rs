// SPDX-License-Identifier: GPL-2.0
//! How far assembly reads a log zone: where its journal ends.
//!
//! A sequential log zone's write pointer says where its blocks end, except
//! when the zone was finished: the engine finishes the log zone it leaves
//! at a switch (its zone slot goes to the next one at once), and a
//! finished zone reports its write pointer at its capacity. A log zone is
//! left early (`pool::journal::LOG_SPAN_FACTOR`), so the zone read would be
//! mostly never written: 256,000 blocks of a 1 GiB ZNS zone and 65,536 of
//! a 256 MiB SMR zone for some 2,000 journal blocks in `make scale`.
//!
//! The member's other log zone says where it ended. Both were reset before
//! their journal's first block (block 1, after the superblock at 0), and
//! the journal writes one block per sequence number, in sequence from one
//! zone to the next: when the other zone's first block is a valid journal
//! block of the same pool with a higher sequence number than this zone's,
//! this zone is the older one, and its blocks up to that sequence number
//! lie in its first `1 + (other first - this first)` blocks, whatever the
//! order zone appends landed them in. A commit torn by a power cut may
//! have left blocks after them (never committed: the journal that went on
//! reused their sequence numbers); they are read too, up to the first
//! block never written (zeros), at most [`TORN_SLACK`].
//!
//! The successor's word is checked first: its next blocks must be never
//! written or newer than this zone's first block, and what is read past
//! the estimate must look like a torn commit's leftovers (no block older
//! than this zone's first, none proving a commit at or after the
//! successor's first block). A journal block that damage put at the wrong
//! address (block 1 of the other zone) and a damaged block read as zeros
//! past it would otherwise end the zone early and drop committed blocks
//! without a report; when anything disagrees, the zone is read to its
//! write pointer.
//!
//! A full log zone whose block 1 was never written (reads as zeros) holds
//! no journal: format and member additions write the superblock at block
//! 0 of both log zones and finish the one the journal does not use. (A
//! block 1 lost to damage in a zone the journal needs is still found out:
//! the other log zone's blocks prove commits the replay then cannot reach,
//! which is damage, section 8a of on-disk-format.md.) Otherwise, when
//! either first block is not a valid journal block of the pool, the zone
//! is read to its write pointer, as before.

use core::ops::Deref;

use super::super::format::layout::{log_zone, log_zone_blocks, LOG_ZONES};
use super::super::format::{all_zero, decode_journal_block, BLOCK_SIZE};
use super::super::geom::{DeviceGeometry, PoolGeometry, MAX_DEVICES};
use super::{read_pool, MetaReader, MISSING};

/// Most blocks read past the end a full log zone's successor implies (a
/// torn commit's leftovers).
pub(super) const TORN_SLACK: u64 = 1024;

/// Blocks of log zone `i` of member `d` assembly reads: its device's write
/// pointer (for a full zone, where its successor says its journal ended),
/// a conventional zone's span. Asked of the device each time (no
/// per-member table on the stack); `buf` (one block) is read into.
pub(super) fn log_limit<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    d: u16,
    i: u32,
    buf: &mut [u8],
) -> u64
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let Some(zg) = log_zone(geo, d, i).and_then(|z| geo.zone(z)) else {
        return 0;
    };
    if zg.conventional {
        // No write pointer: as far as the journal may go.
        return log_zone_blocks(geo, d, i).unwrap_or(0);
    }
    let wp = match perm.get(usize::from(d)).copied() {
        Some(dev) if dev != MISSING => rd.zone_wp(dev, zg.local).unwrap_or(0).min(zg.cap),
        _ => return 0,
    };
    if wp < zg.cap {
        return wp;
    }
    // Full: filled, or finished when the journal left it (or unused).
    let mine = match first_block(geo, perm, rd, d, i, buf) {
        First::Journal(uuid, seq) => (uuid, seq),
        First::Zeros => return 1,
        First::Other => return wp,
    };
    let other = (i + 1) % LOG_ZONES;
    let First::Journal(uuid, next) = first_block(geo, perm, rd, d, other, buf) else {
        return wp;
    };
    if uuid != mine.0 || next <= mine.1 {
        return wp;
    }
    if !successor_holds(geo, perm, rd, d, other, &uuid, mine.1, buf) {
        return wp;
    }
    // Its journal's blocks, then what a torn commit may have left after
    // them: up to the first block never written (the zone is written in
    // order), at most `TORN_SLACK`.
    let est = (next - mine.1).saturating_add(1).min(wp);
    let Some(start) = log_zone(geo, d, i).and_then(|z| geo.zone_start(z)) else {
        return wp;
    };
    let mut end = est;
    while end < wp && end < est.saturating_add(TORN_SLACK) {
        if read_pool(geo, perm, rd, start.saturating_add(end), buf).is_ok() {
            if buf.get(..BLOCK_SIZE).is_some_and(all_zero) {
                break;
            }
            if let Ok((h, _)) = decode_journal_block(buf) {
                // A torn commit's leftover never proves a commit the
                // successor's first block does not follow, and no block
                // of this zone is older than its first: the successor's
                // first block is not what it claims (damage moved a block
                // there), so the whole zone is read.
                if h.pool_uuid == uuid && (h.seq < mine.1 || h.proves_committed() >= next) {
                    return wp;
                }
            }
        }
        end = end.saturating_add(1);
    }
    end
}

/// Blocks of the successor zone read to corroborate its first block.
const SUCCESSOR_CHECK: u64 = 4;

/// Whether the first blocks after block 1 of log zone `other` of member `d`
/// are those of a journal that followed the zone whose first block has
/// sequence `first`: never written (zeros) or journal blocks of the pool
/// with higher sequence numbers. The successor was reset before its first
/// block, after that zone's first block was written; an older block there
/// means its block 1 is not its own (damage, say a block written to the
/// wrong address, put it there) and the estimate it gives cannot be
/// trusted.
#[allow(clippy::too_many_arguments)]
fn successor_holds<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    d: u16,
    other: u32,
    uuid: &[u8; 16],
    first: u64,
    buf: &mut [u8],
) -> bool
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let Some((start, cap)) =
        log_zone(geo, d, other).and_then(|z| Some((geo.zone_start(z)?, geo.zone(z)?.cap)))
    else {
        return false;
    };
    for off in (2..2 + SUCCESSOR_CHECK).take_while(|o| *o < cap) {
        if read_pool(geo, perm, rd, start.saturating_add(off), buf).is_err() {
            return true;
        }
        if buf.get(..BLOCK_SIZE).is_some_and(all_zero) {
            return true;
        }
        if let Ok((h, _)) = decode_journal_block(buf) {
            if h.pool_uuid == *uuid && h.seq <= first {
                return false;
            }
        }
    }
    true
}

/// What block 1 of a log zone holds.
enum First {
    /// A valid journal block: its pool UUID and sequence number.
    Journal([u8; 16], u64),
    /// Zeros: never written.
    Zeros,
    /// Anything else (unreadable, damaged, foreign).
    Other,
}

/// Block 1 of log zone `i` of member `d`.
fn first_block<G, M>(
    geo: &PoolGeometry<G>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    d: u16,
    i: u32,
    buf: &mut [u8],
) -> First
where
    G: Deref<Target = [DeviceGeometry]>,
    M: MetaReader,
{
    let Some(start) = log_zone(geo, d, i).and_then(|z| geo.zone_start(z)) else {
        return First::Other;
    };
    if read_pool(geo, perm, rd, start.saturating_add(1), buf).is_err() {
        return First::Other;
    }
    if let Ok((h, _)) = decode_journal_block(buf) {
        return First::Journal(h.pool_uuid, h.seq);
    }
    match buf.get(..BLOCK_SIZE) {
        Some(b) if all_zero(b) => First::Zeros,
        _ => First::Other,
    }
}
