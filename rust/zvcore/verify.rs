// SPDX-License-Identifier: GPL-2.0
//! fsck-like verifier of a pool's in-memory state (run after recovery by the
//! tests, and on demand by the kernel's debug interface).
//!
//! Checks:
//! - every table's structure ([`super::map::BlockTable::check`]: height
//!   matches the size, node ids resolve, reserved bits zero, nothing mapped
//!   at or beyond the volume size, no empty node, mapped count, no shared
//!   node in a table not marked shared); no volume id twice;
//! - every mapped address is inside the pool, in a data zone (never a
//!   reserved metadata zone, never an empty or offline zone), below its
//!   zone's write pointer and inside its capacity;
//! - node references: every node's reference count equals the number of
//!   tables and distinct parent nodes pointing at it;
//! - block references: a pool block held by `k` distinct holders (leaves,
//!   run entries of distinct level-2 nodes) has `k - 1` extra references
//!   in the reference map (and the map holds nothing else); every holder
//!   of a block maps it at the same lba (otherwise the block is mapped
//!   twice);
//! - per zone, the allocator's valid count equals the distinct live blocks
//!   plus the blocks in flight (so used space counts a shared block once);
//! - the allocator's free-zone and used-block counters match its zone table.
//!
//! Problems are reported through a callback; the return value is their
//! number. Storage: a bitmap of pool blocks (or of a window of them: one
//! pass per window) and a counter per zone are the caller's; the node and block reference counts are computed in temporary
//! sparse maps in the pool's node store (freed before returning;
//! [`Error::NoSpace`] if the store is exhausted). Cost: one walk per table
//! plus one walk of the distinct nodes per window, plus, per shared block,
//! one lookup per table.

use core::ops::{Deref, DerefMut};

use super::alloc::{DevState, ZoneInfo, ZoneState};
use super::error::{Error, Result};
use super::format::{Record, Superblock};
use super::geom::DeviceGeometry;
use super::map::{visit_distinct, NodeId, NodeStore, FANOUT, ID_MASK, PRESENT, RUN};
use super::pool::{slots, Pool, VolEntry};
use super::sparse::SparseMap;

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
    /// A pool block is mapped twice (at different lbas, or by leaves not
    /// sharing it).
    MappedTwice { vol: u32, lba: u64, addr: u64 },
    /// Two volumes share an id.
    DuplicateVolume { vol: u32 },
    /// A zone's valid count differs from its live + in-flight blocks.
    ValidCount {
        zone: u32,
        counted: u64,
        recorded: u64,
    },
    /// The allocator's free-zone counter is wrong.
    FreeZones { counted: u32, recorded: u32 },
    /// The allocator's used-block counter is wrong.
    UsedBlocks { counted: u64, recorded: u64 },
    /// A block table is malformed.
    Table { vol: u32, what: &'static str },
    /// A node's reference count differs from its tables + parents.
    NodeRefs {
        node: NodeId,
        counted: u64,
        recorded: u64,
    },
    /// A block's extra references differ from its leaves - 1.
    BlockRefs {
        addr: u64,
        counted: u64,
        recorded: u64,
    },
    /// The reference map is malformed.
    RefMap { what: &'static str },
}

/// Bitmap words needed for a pool of `total_blocks` blocks.
pub const fn bitmap_words(total_blocks: u64) -> usize {
    total_blocks.div_ceil(64) as usize
}

/// Verifies `pool`. `bitmap` covers [`bitmap_words`]`(total blocks)` words
/// at most (one bit per pool block); a shorter one (at least one word) is a
/// window, and the tables are walked once per window of the pool's blocks
/// (bounded memory at any pool size, time growing with the number of
/// windows). `counts` needs one entry per zone. Both are overwritten. Returns the number
/// of problems, each also passed to `report`. Takes the pool mutably only
/// for the temporary maps and the walk marks (see
/// [`super::map::visit_distinct`]); its state is unchanged afterwards.
pub fn verify<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
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
    let total = pool.alloc.geom().total_blocks();
    let nz = pool.alloc.geom().nr_zones() as usize;
    // A bitmap shorter than the pool is used as a window: one pass over the
    // tables per window.
    let bits = bitmap
        .get_mut(..bitmap_words(total).min(bitmap.len()))
        .filter(|b| !b.is_empty())
        .ok_or(Error::Invalid("verify: bitmap"))?;
    let counts = counts
        .get_mut(..nz)
        .ok_or(Error::Invalid("verify: counts"))?;
    counts.fill(0);
    let mut problems = 0u64;
    let mut rep = |p: Problem| {
        problems = problems.saturating_add(1);
        report(p);
    };

    // 1. Each table on its own.
    let vols = &pool.vols;
    for (i, v) in vols.iter().enumerate() {
        let Some(t) = v.table else { continue };
        // The lookup finds one slot per id: any other is a duplicate.
        if slots::find(vols, v.id) != Some(i) {
            rep(Problem::DuplicateVolume { vol: v.id });
        }
        if let Err(e) = t.check(&pool.nodes) {
            let what = match e {
                Error::Corrupt(w) => w,
                _ => "check failed",
            };
            if what == "map: entry beyond the volume end" {
                rep(Problem::BeyondVolume { vol: v.id, lba: 0 });
            } else {
                rep(Problem::Table { vol: v.id, what });
            }
        }
    }

    // 2. Every distinct node once per window of pool blocks the bitmap
    //    covers: node references (first pass), blocks (those in the
    //    window), block references (those in the window).
    let mut arrivals = SparseMap::for_keys(u64::from(u32::MAX) + 1);
    let mut dups = SparseMap::for_keys(total.max(1));
    let mut err: Result<()> = Ok(());
    let window = (bits.len() as u64).saturating_mul(64).max(64);
    let passes = total.div_ceil(window).max(1);
    for pass in 0..passes {
        let base = pass.saturating_mul(window);
        let end = base.saturating_add(window).min(total);
        bits.fill(0);
        verify_window(
            pool,
            (pass == 0, base, end),
            &mut *bits,
            &mut *counts,
            (&mut arrivals, &mut dups),
            &mut err,
            &mut rep,
        );
        if err.is_err() {
            break;
        }
        // Block reference counts of the window: each recorded extra
        // reference of a live block matches its holders.
        let mut k = base;
        while let Some((a, extra)) = pool.refs.next(&pool.nodes, k) {
            if a >= end {
                break;
            }
            let live = bits
                .get(((a - base) / 64) as usize)
                .map(|w| w & (1u64 << ((a - base) % 64)) != 0)
                == Some(true);
            let counted = if live { dups.get(&pool.nodes, a) } else { 0 };
            if counted != extra {
                rep(Problem::BlockRefs {
                    addr: a,
                    counted,
                    recorded: extra,
                });
            }
            k = a.saturating_add(1);
        }
    }
    let r = err.map(|()| {
        // Node reference counts.
        let mut k = 0u64;
        while let Some((id, n)) = arrivals.next(&pool.nodes, k) {
            let recorded = u64::from(pool.nodes.refs(id as NodeId));
            if recorded != n {
                rep(Problem::NodeRefs {
                    node: id as NodeId,
                    counted: n,
                    recorded,
                });
            }
            k = id.saturating_add(1);
        }
        // Block reference counts the other way: every block with holders
        // beyond the first has extra references recorded.
        if let Err(Error::Corrupt(what)) = pool.refs.check(&pool.nodes) {
            rep(Problem::RefMap { what });
        }
        let mut k = 0u64;
        while let Some((a, d)) = dups.next(&pool.nodes, k) {
            let recorded = pool.refs.extra(&pool.nodes, a);
            if recorded == 0 {
                rep(Problem::BlockRefs {
                    addr: a,
                    counted: d,
                    recorded,
                });
            }
            k = a.saturating_add(1);
        }
    });
    arrivals.destroy(&mut pool.nodes);
    dups.destroy(&mut pool.nodes);
    r?;

    // 3. Allocator.
    let alloc = &pool.alloc;
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

/// One pass of [`verify`] over the distinct nodes: with `first`, counts node
/// arrivals (roots and interior entries) and reports mappings outside the
/// pool; for the blocks in `[base, end)`, checks their zone, marks them in
/// `bits` (bit `addr - base`), counts them per zone and records blocks
/// held more than once in `dups` (checking that every holder maps them at
/// the same lba). Errors of the temporary maps go to `err`.
#[allow(clippy::too_many_arguments, reason = "the verifier's state, split")]
fn verify_window<G, Z, E, V, R, N, D, S>(
    pool: &mut Pool<G, Z, E, V, R, N, D, S>,
    (first, base, end): (bool, u64, u64),
    bits: &mut [u64],
    counts: &mut [u64],
    (arrivals, dups): (&mut SparseMap, &mut SparseMap),
    err: &mut Result<()>,
    rep: &mut impl FnMut(Problem),
) where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    let vols = &pool.vols;
    let alloc = &pool.alloc;
    let geo = alloc.geom();
    let mut arrive = |st: &mut N, id: NodeId| -> Result<()> {
        let n = arrivals.get(st, u64::from(id));
        arrivals
            .set(st, u64::from(id), n.saturating_add(1))
            .map(|_| ())
    };
    if first {
        for v in vols.iter() {
            if let Some(r) = v.table.and_then(|t| t.root()) {
                if let Err(e) = arrive(&mut pool.nodes, r) {
                    *err = Err(e);
                    return;
                }
            }
        }
    }
    let tables = |i: usize| vols.get(i).and_then(|v| v.table);
    visit_distinct(
        &mut pool.nodes,
        vols.len(),
        &|i| vols.get(i).and_then(|v| v.table),
        &mut |st, nv| {
            if err.is_err() {
                return false;
            }
            for i in 0..FANOUT {
                let e = st.get(nv.id).and_then(|n| n.get(i).copied()).unwrap_or(0);
                if e & PRESENT == 0 {
                    continue;
                }
                if nv.level > 1 && e & RUN == 0 {
                    if first {
                        if let Err(x) = arrive(st, (e & ID_MASK) as NodeId) {
                            *err = Err(x);
                            return false;
                        }
                    }
                    continue;
                }
                // A leaf entry or a run entry: each block it maps.
                let Some((lba0, a0, cnt)) = nv.held(st, i) else {
                    continue;
                };
                let a1 = a0.saturating_add(cnt);
                if !first && (a1 <= base || a0 >= end) {
                    continue;
                }
                for k in 0..cnt {
                    let (vol, lba, addr) = (nv.vol, lba0.saturating_add(k), a0.saturating_add(k));
                    let Some(l) = geo.locate(addr) else {
                        if first {
                            rep(Problem::OutsidePool { vol, lba, addr });
                        }
                        continue;
                    };
                    if addr < base || addr >= end {
                        continue;
                    }
                    let zone = l.zone;
                    let zi = alloc.zone(zone).copied().unwrap_or_default();
                    let cap = geo.zone_cap(zone).unwrap_or(0);
                    if geo.zone_is_meta(zone) || !zi.state().is_data() {
                        rep(Problem::NotDataZone {
                            vol,
                            lba,
                            addr,
                            zone,
                        });
                    } else if l.offset >= cap {
                        rep(Problem::BeyondCapacity {
                            vol,
                            lba,
                            addr,
                            zone,
                        });
                    } else if l.offset >= zi.wp() {
                        rep(Problem::BeyondWritePointer {
                            vol,
                            lba,
                            addr,
                            zone,
                        });
                    }
                    let w = ((addr - base) / 64) as usize;
                    let bit = 1u64 << ((addr - base) % 64);
                    let Some(word) = bits.get_mut(w) else {
                        continue;
                    };
                    if *word & bit == 0 {
                        *word |= bit;
                        if let Some(c) = counts.get_mut(zone as usize) {
                            *c = c.saturating_add(1);
                        }
                        continue;
                    }
                    // Held by another holder too: it must be the same lba.
                    let d = dups.get(st, addr);
                    if d == 0 {
                        let same = (0..vols.len()).any(|j| {
                            tables(j).is_some_and(|t| {
                                t.holder_at(st, lba).is_some_and(|x| x != nv.id)
                                    && t.lookup(st, lba) == Some(addr)
                            })
                        });
                        if !same {
                            rep(Problem::MappedTwice { vol, lba, addr });
                        }
                    }
                    if let Err(x) = dups.set(st, addr, d.saturating_add(1)) {
                        *err = Err(x);
                        return false;
                    }
                }
            }
            true
        },
    );
}
