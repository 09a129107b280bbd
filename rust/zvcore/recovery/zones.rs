// SPDX-License-Identifier: GPL-2.0
//! Assembly step 4: the allocator's zones and the block references,
//! rebuilt from the devices' write pointers and the block tables.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{Allocator, DevState, ZoneInfo, ZoneState};
use super::super::error::{Error, Result};
use super::super::format::{Superblock, INCOMPAT_SHARED_BLOCKS, INCOMPAT_ZONE_HISTORY};
use super::super::geom::{DeviceGeometry, PoolGeometry, Stream, MAX_DEVICES};
use super::super::map::{visit_distinct, NodeStore};
use super::super::pool::{Pool, VolEntry};
use super::super::sparse::AddrSet;
use super::{MetaReader, MISSING};

/// Whether the pool has conventional data zones.
pub(super) fn conv_data<S: Deref<Target = [DeviceGeometry]>>(geo: &PoolGeometry<S>) -> bool {
    (0..geo.nr_zones()).any(|z| geo.zone(z).is_some_and(|zg| zg.conventional && !zg.meta))
}

/// Conventional data zones: taken as written up to the last block the
/// tables as loaded map (before the journal is replayed; the replay then
/// raises them for every block it maps, [`conv_extend`]). So a block that
/// the checkpoint or any replayed record mapped is never written over
/// before a `ZoneReset` record names its zone, also when the journal
/// replayed stays live after the assembly (`resume.rs`): an assembly that
/// stops at damage in it maps only blocks still there. Every distinct leaf
/// is looked at once (snapshots share most of them). A walk of every table
/// is the largest part of assembly at scale (about 10 s for 400,000 nodes
/// under TCG): only on pools with conventional data zones.
pub(super) fn extend_conventional<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
{
    if !conv_data(pool.alloc.geom()) {
        return Ok(());
    }
    let mut err: Result<()> = Ok(());
    let vols = &pool.vols;
    let alloc = &mut pool.alloc;
    visit_distinct(
        &mut pool.nodes,
        vols.len(),
        &|i| vols.get(i).and_then(|v| v.table),
        &mut |st, v| {
            // Leaves and the run entries of level-2 nodes.
            if v.level > 2 {
                return true;
            }
            let r = v.runs(st, &mut |_, _, a, n| {
                (0..n).try_for_each(|k| conv_extend(alloc, a.saturating_add(k)))
            });
            if let Err(x) = r {
                err = Err(x);
                return false;
            }
            true
        },
    );
    err
}

/// Raises the write pointer of the conventional data zone holding `addr`
/// (recovery: such zones are written up to their last mapped block).
pub(super) fn conv_extend<G, Z, D>(alloc: &mut Allocator<G, Z, D>, addr: u64) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    let l = alloc
        .geom()
        .locate(addr)
        .ok_or(Error::Corrupt("mapping outside the pool"))?;
    let zg = alloc.geom().zone(l.zone).ok_or(Error::Corrupt("zone"))?;
    if zg.conventional && !zg.meta {
        let top = l.offset.saturating_add(1);
        if top > zg.cap {
            return Err(Error::Corrupt("mapping beyond zone capacity"));
        }
        let cur = alloc.zone(l.zone).map(|zi| zi.wp()).unwrap_or(0);
        if top > cur {
            alloc
                .set_zone(l.zone, ZoneState::Closed, top, 0)
                .map_err(|_| Error::Corrupt("zone state"))?;
        }
    }
    Ok(())
}

/// Rebuilds the allocator's zone table from the devices' write pointers and
/// the block tables.
#[inline(never)]
pub(super) fn rebuild_zones<G, Z, E, V, R, N, D, S, M, F>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    perm: &[u16; MAX_DEVICES],
    rd: &mut M,
    on_finish: &mut F,
) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
    V: DerefMut<Target = [VolEntry]>,
    N: NodeStore,
    S: DerefMut<Target = Superblock>,
    M: MetaReader,
    F: FnMut(u32),
{
    let nz = pool.alloc.geom().nr_zones();
    // Device write pointers (sequential zones).
    for z in 0..nz {
        let zg = pool.alloc.geom().zone(z).ok_or(Error::Corrupt("zone"))?;
        let dev = perm.get(usize::from(zg.dev)).copied().unwrap_or(0);
        if dev == MISSING {
            // A missing member's zones: taken as full (its blocks stay
            // mapped wherever they are; nothing is placed, planned or
            // reclaimed there: the member is lost).
            if !zg.meta {
                pool.alloc
                    .set_zone(z, ZoneState::Closed, zg.cap, 0)
                    .map_err(|_| Error::Corrupt("zone state"))?;
            }
            continue;
        }
        if zg.meta {
            // Only the journal zone may stay active: finish partly written
            // metadata zones (their contents stay readable).
            // (Unless the journal or the chain goes on in it: `resume.rs`.)
            if pool.kept_open(z) {
                continue;
            }
            if !zg.conventional {
                let wp = rd.zone_wp(dev, zg.local)?;
                if wp > 0 && wp < zg.cap {
                    on_finish(z);
                }
            }
            continue;
        }
        // (A conventional zone: as far as it was mapped, from the tables
        // as loaded and the journal replayed: `extend_conventional`.)
        let wp = if zg.conventional {
            pool.alloc.zone(z).map_or(0, |zi| zi.wp())
        } else {
            rd.zone_wp(dev, zg.local)?
        };
        if wp > zg.cap {
            return Err(Error::Corrupt("zone write pointer beyond capacity"));
        }
        let state = if wp == 0 {
            ZoneState::Empty
        } else {
            ZoneState::Closed
        };
        pool.alloc
            .set_zone(z, state, wp, 0)
            .map_err(|_| Error::Corrupt("zone state"))?;
    }
    let mut err: Result<()> = Ok(());
    // Valid counts from the mappings (each must be below its write
    // pointer), each block once however many leaves hold it; with shared
    // blocks, the reference map is rebuilt at the same time.
    if pool.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0 {
        let mut seen = AddrSet::new(pool.alloc.geom().total_blocks());
        {
            let vols = &pool.vols;
            let alloc = &mut pool.alloc;
            let refs = &mut pool.refs;
            let seen = &mut seen;
            visit_distinct(
                &mut pool.nodes,
                vols.len(),
                &|i| vols.get(i).and_then(|v| v.table),
                &mut |st, v| {
                    if v.level > 2 {
                        return true;
                    }
                    // By runs of blocks, new or seen before (a shared
                    // block: one more reference), not block by block.
                    let r = v.runs(st, &mut |st, _, a0, n| {
                        seen.insert_range(st, a0, n, &mut |st, a, len, new| {
                            if new {
                                alloc
                                    .validate(a, len)
                                    .map_err(|_| Error::Corrupt("mapping outside written data"))
                            } else {
                                refs.acquire(st, a, len)
                            }
                        })
                    });
                    if let Err(x) = r {
                        err = Err(x);
                        return false;
                    }
                    true
                },
            );
        }
        seen.destroy(&mut pool.nodes);
        err?;
    } else {
        for vi in 0..pool.vols.len() {
            let Some(t) = pool.vols.get(vi).and_then(|v| v.table) else {
                continue;
            };
            let mut cursor = 0u64;
            while let Some(e) = t.next_extent(&pool.nodes, cursor) {
                cursor = e.lba.saturating_add(e.len);
                pool.alloc
                    .validate(e.addr, e.len)
                    .map_err(|_| Error::Corrupt("mapping outside written data"))?;
            }
        }
    }
    // Partly written zones: writing continues in one per data stream and
    // member (at the write pointer: what lies past the last committed
    // mapping is garbage anyway); the others are finished, so that no more
    // zones stay active than the streams use.
    pool.alloc.rebuild();
    for z in 0..nz {
        let Some(zi) = pool.alloc.zone(z).copied() else {
            continue;
        };
        if zi.state() != ZoneState::Closed {
            continue;
        }
        let zg = pool.alloc.geom().zone(z).ok_or(Error::Corrupt("zone"))?;
        let reopened = zi.wp() < zg.cap
            && [Stream::UserHot, Stream::UserCold, Stream::Gc]
                .iter()
                .any(|s| pool.alloc.reopen(z, *s).is_ok());
        if reopened {
            continue;
        }
        if !zg.conventional && zi.wp() < zg.cap {
            on_finish(z);
        }
        pool.alloc
            .finish(z)
            .map_err(|_| Error::Corrupt("zone finish"))?;
    }
    if pool.sb.incompat & INCOMPAT_ZONE_HISTORY != 0 {
        // The placement history came from the checkpoint; zones written
        // since have none of their own: they are the youngest.
        pool.alloc.date_unknown_zones();
    }
    pool.alloc.rebuild();
    Ok(())
}
