// SPDX-License-Identifier: GPL-2.0
//! Step 1 of [`super::recover`]: the newest superblock of the devices given
//! and each member's device among them, or [`MISSING`] (degraded assembly:
//! see the parent module).

use super::super::format::layout::LOG_ZONES;
use super::super::format::{peek_magic, BLOCK_SIZE};
use super::super::geom::{DeviceGeometry, MAX_DEVICES};
use super::{
    Error, MetaReader, Result, Superblock, Uuid, INCOMPAT_CHECKPOINT_COPIES, INCOMPAT_SUPPORTED,
    MAX_MISSING, MISSING, RO_COMPAT_JOURNAL_COPIES, RO_COMPAT_SUPPORTED, SUPERBLOCK_MAGIC,
};

/// Reads superblock copy `i` (block 0 of log zone `i`) of device `j`.
fn read_sb_copy<M: MetaReader>(
    rd: &mut M,
    j: usize,
    g: &DeviceGeometry,
    i: u32,
    buf: &mut [u8],
) -> Result<()> {
    let local = g.first_meta_zone().saturating_add(i);
    let block = u64::from(local)
        .checked_mul(g.zone_blocks)
        .ok_or(Error::Corrupt("superblock address"))?;
    rd.read_block(j as u16, block, buf)
}

/// Step 1 of [`recover`]: decodes the newest valid superblock into `sb_store`
/// and finds each member's device (`perm[member]` = device index, or
/// [`MISSING`] for a member in place of an [`DeviceGeometry::ABSENT`]
/// device; entries past the member count are 0). Returns whether the pool
/// must be mounted read-only. Out of line: its temporaries stay off
/// `recover`'s frame.
#[inline(never)]
pub(super) fn find_members<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb_store: &mut Superblock,
    buf: &mut [u8],
    perm: &mut [u16; MAX_DEVICES],
) -> Result<bool> {
    let newest = newest_superblock(devs, rd, sb_store, buf)?;
    let sb = &*sb_store;
    let read_only = sb.check_features(INCOMPAT_SUPPORTED, RO_COMPAT_SUPPORTED)?;
    let ndev = devs.len();
    let n = usize::from(sb.nr_members);
    if n != ndev {
        return Err(if n > ndev {
            Error::Invalid("recover: fewer devices given than the pool has members")
        } else {
            Error::Invalid("recover: more devices given than the pool has members")
        });
    }
    let missing = match_members(devs, rd, sb, &newest, buf, perm)?;
    let absent = devs.iter().filter(|g| g.is_absent()).count();
    // Removed members have no device: an absent entry each.
    let removed = sb.removed_mask().count_ones() as usize;
    if missing == 0 && absent == removed {
        return Ok(read_only);
    }
    if missing.saturating_add(removed) > absent {
        return Err(Error::Invalid(
            "recover: a member of the pool is not among the devices given",
        ));
    }
    if missing > usize::from(MAX_MISSING) {
        return Err(Error::Invalid(
            "recover: more than one member missing (the pool's metadata has two copies)",
        ));
    }
    let copies = INCOMPAT_CHECKPOINT_COPIES;
    if sb.incompat & copies != copies || sb.ro_compat & RO_COMPAT_JOURNAL_COPIES == 0 {
        return Err(Error::Invalid(
            "recover: a member is missing and the pool keeps one copy of its metadata",
        ));
    }
    Ok(read_only)
}

/// Degraded assembly: how many members of the pool on `devs` (its newest
/// superblock, decoded into `sb_store`) none of `devs` holds, members
/// removed from the pool not counted. The caller passes that many
/// [`DeviceGeometry::ABSENT`] entries more to [`recover`] (which says
/// whether the pool can do without them), and one more per removed member
/// (`Superblock::removed_mask`).
pub fn missing_members<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb_store: &mut Superblock,
    scratch: &mut [u8],
) -> Result<u16> {
    let buf = scratch
        .get_mut(..BLOCK_SIZE)
        .ok_or(Error::Invalid("scratch"))?;
    let newest = newest_superblock(devs, rd, sb_store, buf)?;
    let mut perm = [0u16; MAX_DEVICES];
    let missing = match_members(devs, rd, sb_store, &newest, buf, &mut perm)?;
    u16::try_from(missing).map_err(|_| Error::Corrupt("member count"))
}

/// Devices among `devs` that were members removed from the pool they
/// hold (bit per device, in the caller's order): their own newest
/// superblock copy names a member that the pool's newest superblock
/// (decoded into `sb_store`) flags removed. The caller leaves them out of
/// the assembly (a removed device whose superblocks could not be wiped).
pub fn removed_devices<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb_store: &mut Superblock,
    scratch: &mut [u8],
) -> Result<u64> {
    let buf = scratch
        .get_mut(..BLOCK_SIZE)
        .ok_or(Error::Invalid("scratch"))?;
    let newest = newest_superblock(devs, rd, sb_store, buf)?;
    let sb = &*sb_store;
    let mut stale = 0u64;
    for (j, g) in devs.iter().enumerate() {
        let Some(i) = newest.get(j).copied().filter(|i| *i != NO_COPY) else {
            continue;
        };
        if read_sb_copy(rd, j, g, u32::from(i), buf).is_err() {
            continue;
        }
        let Ok((p, u, _)) = Superblock::peek_ids(buf) else {
            continue;
        };
        let removed = sb
            .find_member(&u)
            .and_then(|m| sb.member(m))
            .is_some_and(|m| m.removed);
        if p == sb.pool_uuid && removed {
            stale |= 1u64.checked_shl(j as u32).unwrap_or(0);
        }
    }
    Ok(stale)
}

/// No superblock copy of a device read ([`newest_superblock`]).
const NO_COPY: u8 = u8::MAX;

/// Decodes the newest valid superblock copy of `devs` into `sb_store`;
/// returns, per device, the log zone of its own newest valid copy
/// ([`NO_COPY`] if none).
fn newest_superblock<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb_store: &mut Superblock,
    buf: &mut [u8],
) -> Result<[u8; MAX_DEVICES]> {
    // Superblocks, decoded in place into `sb_store`: the newest valid copy
    // overall and, per device, the log zone of its own newest valid copy.
    let mut best: Option<(usize, u32, u64)> = None;
    let mut newest = [NO_COPY; MAX_DEVICES];
    // The first reason a block with the superblock magic did not decode.
    let mut damaged: Option<Error> = None;
    // What the newest copy says of the membership (pool, member count,
    // last member), and whether a copy of the same pool and generation
    // says otherwise.
    let mut best_members: (Uuid, u16, Uuid) = ([0; 16], 0, [0; 16]);
    let mut disagree = false;
    for (j, g) in devs.iter().enumerate() {
        if g.is_absent() {
            continue;
        }
        let mut own: Option<u64> = None;
        for i in 0..LOG_ZONES {
            if read_sb_copy(rd, j, g, i, buf).is_err() {
                continue;
            }
            if let Err(e) = sb_store.decode_into(buf) {
                if peek_magic(buf) == Some(SUPERBLOCK_MAGIC) && damaged.is_none() {
                    damaged = Some(e);
                }
                continue;
            }
            let gen = sb_store.generation;
            if own.map(|o| gen > o).unwrap_or(true) {
                own = Some(gen);
                if let Some(s) = newest.get_mut(j) {
                    *s = i as u8;
                }
            }
            let members = (
                sb_store.pool_uuid,
                sb_store.nr_members,
                sb_store.members().last().map_or([0; 16], |m| m.dev_uuid),
            );
            if best.map(|b| gen > b.2).unwrap_or(true) {
                best = Some((j, i, gen));
                best_members = members;
                disagree = false;
            } else if best.is_some_and(|b| gen == b.2)
                && members.0 == best_members.0
                && members != best_members
            {
                disagree = true;
            }
        }
    }
    let (bj, bi, bgen) = match (best, damaged) {
        (Some(b), _) => b,
        // No zvpool superblock at all: not a pool.
        (None, None) => return Err(Error::NotFound),
        (None, Some(e)) => return Err(superblock_damage(e)),
    };
    if disagree {
        // Two membership changes of one generation: a member add cut by a
        // power loss (its device got the new superblock), the pool then
        // assembled without that device and changed since. Which one is
        // the pool's cannot be told: refuse rather than guess.
        return Err(Error::Corrupt(
            "recover: two superblocks of the newest generation name different members (a device from an interrupted member add?)",
        ));
    }
    let bg = devs.get(bj).copied().ok_or(Error::NotFound)?;
    read_sb_copy(rd, bj, &bg, bi, buf)?;
    sb_store.decode_into(buf)?;
    if sb_store.generation != bgen {
        return Err(Error::Corrupt("recover: superblock changed"));
    }
    Ok(newest)
}

/// Finds the device of each member of `sb` (`perm[member]`; [`MISSING`]
/// when none of `devs` is it, and for a removed member; entries past the
/// member count are 0); returns how many members not removed are missing. A device whose newest copy belongs to
/// this pool is the member its device UUID names (the first such device
/// if several claim it); it must have the member's geometry.
fn match_members<M: MetaReader>(
    devs: &[DeviceGeometry],
    rd: &mut M,
    sb: &Superblock,
    newest: &[u8; MAX_DEVICES],
    buf: &mut [u8],
    perm: &mut [u16; MAX_DEVICES],
) -> Result<usize> {
    perm.fill(MISSING);
    for (j, g) in devs.iter().enumerate() {
        let Some(i) = newest.get(j).copied().filter(|i| *i != NO_COPY) else {
            continue;
        };
        if read_sb_copy(rd, j, g, u32::from(i), buf).is_err() {
            continue;
        }
        let Ok((p, u, _)) = Superblock::peek_ids(buf) else {
            continue;
        };
        if p != sb.pool_uuid {
            continue;
        }
        let Some(m) = sb
            .find_member(&u)
            .filter(|m| sb.member(*m).is_some_and(|i| !i.removed))
        else {
            // Not a member, or one removed (a device left with an older
            // superblock): not the pool's.
            continue;
        };
        if let Some(slot) = perm.get_mut(usize::from(m)).filter(|s| **s == MISSING) {
            *slot = j as u16;
        }
    }
    let mut missing = 0;
    for (m, info) in sb.members().iter().enumerate() {
        let Some(j) = perm.get(m).copied().filter(|j| *j != MISSING) else {
            if !info.removed {
                missing += 1;
            }
            continue;
        };
        // The device as probed, with the pool's metadata zones (a pool
        // property the device cannot report).
        let probed = devs.get(usize::from(j)).map(|g| DeviceGeometry {
            meta_zones: info.geom.meta_zones,
            ..*g
        });
        if probed != Some(info.geom) {
            return Err(Error::Corrupt("recover: member geometry mismatch"));
        }
    }
    let n = usize::from(sb.nr_members);
    for p in perm.iter_mut().skip(n) {
        *p = 0;
    }
    Ok(missing)
}

/// The error for superblocks that all failed to decode with `e` (the
/// first reason seen): damage, except for a feature or version this engine
/// does not know.
fn superblock_damage(e: Error) -> Error {
    match e {
        Error::Unsupported(s) => Error::Unsupported(s),
        Error::BadChecksum => Error::Corrupt("superblock: no valid copy (checksum mismatch)"),
        Error::BadField(_) => Error::Corrupt("superblock: no valid copy (invalid field)"),
        Error::Truncated => Error::Corrupt("superblock: no valid copy (truncated)"),
        _ => Error::Corrupt("superblock: no valid copy"),
    }
}
