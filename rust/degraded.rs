// SPDX-License-Identifier: GPL-2.0
//! Degraded assembly: a pool assembled without one of its members.
//!
//! A pool of two members or more keeps two copies of its metadata
//! (journal copies, checkpoint copies): any one member's metadata is all
//! on the others. The core assembles such a pool without one member's
//! device (`zvcore::recovery`, "Degraded assembly"): nothing is read from
//! it, its zones are lost from the start and its blocks stay mapped. Here:
//! how many members the devices given lack (read from their newest
//! superblock before the engine's storage is sized, since it is sized for
//! every member), whether the `assemble_mode` allows it (`degraded`, or
//! `read-only` which writes nothing), and the log lines.
//!
//! The member is then a [`Member`] without a block device, `missing` from
//! the start: every I/O to it fails with `EIO`, as to a device that died
//! while the pool ran (`health.rs`); the first health check reports it
//! (log line, uevent) like any member that goes missing.

use crate::damage::AssembleMode;
use crate::engine::{superblock_box, Engine};
use crate::healthstate::UuidText;
use crate::members::{Member, Reader};
use crate::zvcore::{
    format::BLOCK_SIZE,
    geom::DeviceGeometry,
    recovery::{self, Assembly},
};
use kernel::{
    prelude::*,
    time::{Instant, Monotonic},
};

/// What the devices given lack: `geoms` (their probed geometries, in the
/// caller's order) gets one [`DeviceGeometry::ABSENT`] entry per member
/// none of them holds and per member removed from the pool; returns the
/// geometries to size the engine's storage for (every member's, from the
/// pool's superblock, when one has no device). Refuses (`ENODEV`) a
/// missing member (not a removed one) unless `mode` allows it. A device
/// given that was a member removed from the pool (its superblocks could
/// not be wiped) is left out of `opened` and `geoms`, with a log line;
/// how many in `.1`. Anything else wrong is left to the assembly, which
/// says what.
pub(crate) fn plan(
    name: &CStr,
    opened: &mut KVec<Option<Member>>,
    geoms: &mut KVec<DeviceGeometry>,
    mode: AssembleMode,
) -> Result<(KVec<DeviceGeometry>, usize)> {
    let mut sb = superblock_box()?;
    let mut scratch = KVec::from_elem(0u8, BLOCK_SIZE, GFP_KERNEL)?;
    let (missing, stale) = {
        let mut rd = Reader::new(opened, Instant::<Monotonic>::now())?;
        match recovery::missing_members(geoms, &mut rd, &mut sb, &mut scratch) {
            Ok(m) => (
                m,
                recovery::removed_devices(geoms, &mut rd, &mut sb, &mut scratch).unwrap_or(0),
            ),
            // Not a pool, or no valid superblock: the assembly says.
            Err(_) => (0, 0),
        }
    };
    for j in (0..geoms.len()).rev() {
        if stale & 1u64.checked_shl(j as u32).unwrap_or(0) == 0 {
            continue;
        }
        if let Ok(Some(m)) = opened.remove(j) {
            pr_warn!(
                "{}: {} was removed from the pool: left out (wipe it to reuse it)\n",
                name,
                &*m.path
            );
        }
        let _ = geoms.remove(j);
    }
    let stale = stale.count_ones() as usize;
    let mut sizing = KVec::with_capacity(geoms.len(), GFP_KERNEL)?;
    sizing.extend_from_slice(geoms, GFP_KERNEL)?;
    let removed = sb.removed_mask().count_ones();
    if missing == 0 && removed == 0 {
        return Ok((sizing, stale));
    }
    if missing > 0 && !mode.allows_missing() {
        pr_err!(
            "{}: {} member(s) of the pool not among the devices given; assemble_mode 'degraded' (or 'read-only') assembles without them\n",
            name,
            missing
        );
        return Err(ENODEV);
    }
    for _ in 0..u32::from(missing).saturating_add(removed) {
        geoms.push(DeviceGeometry::ABSENT, GFP_KERNEL)?;
    }
    sizing.clear();
    for m in sb.members() {
        sizing.push(m.geom, GFP_KERNEL)?;
    }
    Ok((sizing, stale))
}

/// Member `i` of the assembled pool: its opened device (caller's index
/// `j` of `opened`), or a member without one when the assembly did without
/// it (logged: which member, by device UUID).
pub(crate) fn member(
    name: &CStr,
    opened: &mut [Option<Member>],
    engine: &Engine,
    asm: &Assembly,
    i: u16,
) -> Result<Member> {
    let geom = *engine.geom().device(i).ok_or(EINVAL)?;
    let j = *asm.dev_of_member.get(usize::from(i)).ok_or(EINVAL)?;
    if j == recovery::MISSING && engine.geom().is_removed(i) {
        return Member::removed(geom);
    }
    if j == recovery::MISSING {
        let uuid = engine
            .superblock()
            .members()
            .get(usize::from(i))
            .map_or([0; 16], |m| m.dev_uuid);
        pr_warn!(
            "{}: member {} (device uuid {}) missing: assembled degraded without it; reads of its blocks fail with EIO until it is back (stop, then assemble with it) or replaced\n",
            name,
            i,
            UuidText(&uuid)
        );
        return Member::absent(geom);
    }
    let mut m = opened
        .get_mut(usize::from(j))
        .and_then(|o| o.take())
        .ok_or(EINVAL)?;
    // As recorded in the pool (its metadata zones, which no device
    // reports).
    m.geom = geom;
    Ok(m)
}
