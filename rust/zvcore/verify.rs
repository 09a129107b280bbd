// SPDX-License-Identifier: GPL-2.0
//! fsck-like verifier of a pool's in-memory state (run after recovery by the
//! tests, and on demand by the kernel's debug interface).
//!
//! Checks:
//! - every mapped address is inside the pool, in a data zone (never a
//!   reserved metadata zone, never an empty or offline zone), below its
//!   zone's write pointer and inside its capacity;
//! - no mapping beyond its volume's size; no volume id twice;
//! - no pool block mapped twice (snapshots will mark shared blocks; none
//!   exist today);
//! - per zone, the allocator's valid count equals the mapped blocks plus the
//!   blocks in flight;
//! - the allocator's free-zone and used-block counters match its zone table.
//!
//! Problems are reported through a callback; the return value is their
//! number. Storage (a bitmap of pool blocks, a counter per zone) is the
//! caller's.

use core::ops::{Deref, DerefMut};

use super::alloc::{DevState, ZoneInfo, ZoneState};
use super::error::{Error, Result};
use super::format::{Record, Superblock};
use super::geom::DeviceGeometry;
use super::map::NodeStore;
use super::pool::{Pool, VolEntry};

/// One inconsistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A mapping points outside the pool.
    OutsidePool { vol: u32, lba: u64, addr: u64 },
    /// A mapping points into a metadata, empty or offline zone.
    NotDataZone {
        vol: u32,
        lba: u64,
        addr: u64,
        zone: u32,
    },
    /// A mapping points at or beyond its zone's write pointer.
    BeyondWritePointer {
        vol: u32,
        lba: u64,
        addr: u64,
        zone: u32,
    },
    /// A mapping points beyond its zone's capacity.
    BeyondCapacity {
        vol: u32,
        lba: u64,
        addr: u64,
        zone: u32,
    },
    /// A mapping beyond the volume's size.
    BeyondVolume { vol: u32, lba: u64 },
    /// A pool block is mapped twice.
    MappedTwice { vol: u32, lba: u64, addr: u64 },
    /// Two volumes share an id.
    DuplicateVolume { vol: u32 },
    /// A zone's valid count differs from its mapped + in-flight blocks.
    ValidCount {
        zone: u32,
        counted: u64,
        recorded: u64,
    },
    /// The allocator's free-zone counter is wrong.
    FreeZones { counted: u32, recorded: u32 },
    /// The allocator's used-block counter is wrong.
    UsedBlocks { counted: u64, recorded: u64 },
}

/// Bitmap words needed for a pool of `total_blocks` blocks.
pub const fn bitmap_words(total_blocks: u64) -> usize {
    total_blocks.div_ceil(64) as usize
}

/// Verifies `pool`. `bitmap` needs [`bitmap_words`]`(total blocks)` words,
/// `counts` one entry per zone (both are overwritten). Returns the number
/// of problems, each also passed to `report`.
pub fn verify<G, Z, E, V, R, N, D, S>(
    pool: &Pool<G, Z, E, V, R, N, D, S>,
    bitmap: &mut [u64],
    counts: &mut [u64],
    report: &mut impl FnMut(Problem),
) -> Result<u64>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    let geo = pool.geom();
    let alloc = pool.alloc();
    let total = geo.total_blocks();
    let nz = geo.nr_zones() as usize;
    let bits = bitmap
        .get_mut(..bitmap_words(total))
        .ok_or(Error::Invalid("verify: bitmap"))?;
    bits.fill(0);
    let counts = counts
        .get_mut(..nz)
        .ok_or(Error::Invalid("verify: counts"))?;
    counts.fill(0);
    let mut problems = 0u64;
    let mut rep = |p: Problem| {
        problems = problems.saturating_add(1);
        report(p);
    };
    let vols = pool.volumes();
    for (i, v) in vols.iter().enumerate() {
        let Some(t) = v.table else { continue };
        if vols
            .iter()
            .skip(i.saturating_add(1))
            .any(|w| w.table.is_some() && w.id == v.id)
        {
            rep(Problem::DuplicateVolume { vol: v.id });
        }
        for e in t.extents(pool.nodes()) {
            if e.lba.saturating_add(e.len) > t.size() {
                rep(Problem::BeyondVolume {
                    vol: v.id,
                    lba: e.lba,
                });
            }
            for k in 0..e.len {
                let (lba, addr) = (e.lba.saturating_add(k), e.addr.saturating_add(k));
                let Some(l) = geo.locate(addr) else {
                    rep(Problem::OutsidePool {
                        vol: v.id,
                        lba,
                        addr,
                    });
                    continue;
                };
                let zone = l.zone;
                let zi = alloc.zone(zone).copied().unwrap_or_default();
                let cap = geo.zone_cap(zone).unwrap_or(0);
                if geo.zone_is_meta(zone) || !zi.state().is_data() {
                    rep(Problem::NotDataZone {
                        vol: v.id,
                        lba,
                        addr,
                        zone,
                    });
                } else if l.offset >= cap {
                    rep(Problem::BeyondCapacity {
                        vol: v.id,
                        lba,
                        addr,
                        zone,
                    });
                } else if l.offset >= zi.wp() {
                    rep(Problem::BeyondWritePointer {
                        vol: v.id,
                        lba,
                        addr,
                        zone,
                    });
                }
                if let Some(c) = counts.get_mut(zone as usize) {
                    *c = c.saturating_add(1);
                }
                let w = (addr / 64) as usize;
                let bit = 1u64 << (addr % 64);
                if let Some(word) = bits.get_mut(w) {
                    if *word & bit != 0 {
                        rep(Problem::MappedTwice {
                            vol: v.id,
                            lba,
                            addr,
                        });
                    }
                    *word |= bit;
                }
            }
        }
    }
    let mut free = 0u32;
    let mut used = 0u64;
    for (z, c) in counts.iter().enumerate() {
        let zi = alloc.zone(z as u32).copied().unwrap_or_default();
        if zi.state() == ZoneState::Empty {
            free = free.saturating_add(1);
        }
        used = used.saturating_add(zi.valid());
        let expect = c.saturating_add(zi.inflight());
        if zi.valid() != expect {
            rep(Problem::ValidCount {
                zone: z as u32,
                counted: expect,
                recorded: zi.valid(),
            });
        }
    }
    if free != alloc.free_zones() {
        rep(Problem::FreeZones {
            counted: free,
            recorded: alloc.free_zones(),
        });
    }
    if used != alloc.used_blocks() {
        rep(Problem::UsedBlocks {
            counted: used,
            recorded: alloc.used_blocks(),
        });
    }
    Ok(problems)
}
