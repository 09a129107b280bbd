// SPDX-License-Identifier: GPL-2.0
//! What checkpoints cost while random overwrites run on a large mapping:
//! with delta checkpoints it follows what changed, not what is mapped.

use super::super::format::{
    INCOMPAT_DELTA_CHECKPOINTS, INCOMPAT_DELTA_GROW, INCOMPAT_DELTA_VOLUMES,
};
use super::super::geom::Stream;
use super::super::map::tests::Rng;
use super::tests::{one_member_pool, rec, TestPool};
use super::*;
use std::vec;
use std::vec::Vec;

/// Blocks per 1 GiB zone.
const GIB: u64 = 1 << 18;

/// Commits what is queued (a checkpoint when one is due).
fn commit(p: &mut TestPool, scratch: &mut [u8]) {
    let mut ops = Vec::new();
    p.flush(scratch, &mut rec(&mut ops)).unwrap();
    if !ops.is_empty() {
        p.flush_end(true).unwrap();
    }
}

fn checkpoint(p: &mut TestPool, scratch: &mut [u8]) {
    let mut ops = Vec::new();
    p.checkpoint(scratch, &mut rec(&mut ops)).unwrap();
    p.checkpoint_end(true).unwrap();
}

fn write(p: &mut TestPool, scratch: &mut [u8], lba: u64, n: u64) {
    let plan = loop {
        match p.write_begin(1, lba, n, Stream::UserHot) {
            Ok(plan) => break plan,
            Err(Error::Busy) => commit(p, scratch),
            Err(e) => panic!("write_begin: {e:?}"),
        }
    };
    let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
    assert_eq!(p.write_end(&plan, &addrs).unwrap(), plan.nblocks);
}

/// Which extent of `n` to write `k`th: in order, or (`fragmented`) the
/// even ones first, then the odd ones, so that no two consecutive extents
/// are contiguous on the media.
fn extent_order(k: u64, n: u64, fragmented: bool) -> u64 {
    if !fragmented {
        k
    } else if k < n.div_ceil(2) {
        2 * k
    } else {
        2 * (k - n.div_ceil(2)) + 1
    }
}

/// A pool of 1 GiB zones (incompat features `clear` cleared, snapshots
/// possible, a checkpoint every 8 full journal blocks: about 1,300
/// records) whose volume 1 of `mapped_gib` GiB is mapped in extents of
/// `extent` blocks (see [`extent_order`]), committed; and a scratch.
fn mapped_pool(mapped_gib: u64, extent: u64, fragmented: bool, clear: u64) -> (TestPool, Vec<u8>) {
    let zones = (mapped_gib * 2 + 64) as u32;
    let mut p = one_member_pool(zones, GIB, usize::MAX);
    p.nodes.sharing = true;
    p.sb.incompat &= !clear;
    p.sb.checkpoint_interval = 8;
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let size = mapped_gib * GIB;
    p.vol_create(1, b"big", size, 0).unwrap();
    let n = size / extent;
    for k in 0..n {
        let i = extent_order(k, n, fragmented);
        write(&mut p, &mut scratch, i * extent, extent);
        if k % 64 == 63 {
            commit(&mut p, &mut scratch);
        }
    }
    commit(&mut p, &mut scratch);
    (p, scratch)
}

/// What one run measured.
#[derive(Debug)]
struct Cost {
    /// Blocks of the full checkpoint after the volume was mapped.
    full_blocks: u64,
    /// Checkpoints while the overwrites ran, and their blocks.
    checkpoints: u64,
    blocks: u64,
    /// Delta checkpoints among them, and their blocks.
    deltas: u64,
    delta_blocks: u64,
}

/// A pool of 1 GiB zones, a volume of `mapped_gib` GiB mapped in extents
/// of `extent` blocks (consecutive extents not contiguous on the media if
/// `fragmented`), then `overwrites` random 4 KiB overwrites with a commit
/// every `per_commit`; deltas on or off.
fn run(
    mapped_gib: u64,
    extent: u64,
    fragmented: bool,
    overwrites: u64,
    per_commit: u64,
    deltas: bool,
) -> Cost {
    let clear = if deltas {
        0
    } else {
        INCOMPAT_DELTA_CHECKPOINTS
    };
    let (mut p, mut scratch) = mapped_pool(mapped_gib, extent, fragmented, clear);
    let size = mapped_gib * GIB;
    checkpoint(&mut p, &mut scratch);
    checkpoint(&mut p, &mut scratch);
    let full_blocks = p.stats().checkpoint_blocks;
    let before = p.stats();
    let mut r = Rng(0x5eed_0fc0_ffee ^ mapped_gib);
    let mut delta_blocks = 0;
    let mut seen = before.delta_checkpoints;
    for i in 0..overwrites {
        write(&mut p, &mut scratch, r.below(size), 1);
        if (i + 1) % per_commit == 0 {
            commit(&mut p, &mut scratch);
            if p.stats().delta_checkpoints > seen {
                seen = p.stats().delta_checkpoints;
                delta_blocks += p.stats().last_delta_blocks;
            }
        }
    }
    commit(&mut p, &mut scratch);
    checkpoint(&mut p, &mut scratch);
    let after = p.stats();
    if after.delta_checkpoints > seen {
        delta_blocks += after.last_delta_blocks;
    }
    Cost {
        full_blocks,
        checkpoints: after.checkpoints - before.checkpoints,
        blocks: after.checkpoint_blocks_written - before.checkpoint_blocks_written,
        deltas: after.delta_checkpoints - before.delta_checkpoints,
        delta_blocks,
    }
}

/// The deltas written while 20,000 random overwrites run (about 20 of
/// them) cost about the same on a pool with 16 times more mapped
/// (fragmented: every extent is one record of a full image), and far less
/// than full images would.
#[test]
fn delta_checkpoints_cost_what_changed() {
    let small = run(1, 32, true, 20_000, 200, true);
    let large = run(16, 32, true, 20_000, 200, true);
    let full = run(16, 32, true, 20_000, 200, false);
    std::eprintln!("small {small:?}\nlarge {large:?}\nfull images {full:?}");
    assert!(large.full_blocks > 10 * small.full_blocks, "{large:?}");
    assert!(small.deltas > 0 && large.deltas > 0);
    // Per delta (full checkpoints, which follow what is mapped, come when a
    // chain reaches its full image's size).
    let per_delta = |c: &Cost| c.delta_blocks as f64 / c.deltas as f64;
    assert!(
        per_delta(&large) <= 2.0 * per_delta(&small),
        "{large:?} against {small:?}"
    );
    assert_eq!(full.deltas, 0);
    assert!(
        full.blocks > 10 * large.blocks,
        "{full:?} against {large:?}"
    );
}

/// The figures of `Documentation/benchmarks-history.md` ("Checkpoint cost"):
/// `cargo test --release -p zvcore --lib checkpoint_cost_report -- --ignored --nocapture`.
#[test]
#[ignore]
fn checkpoint_cost_report() {
    let gib_overwrites = GIB; // 1 GiB of random 4 KiB overwrites
    for (mapped, extent, frag) in [(10, 2048, false), (1024, 2048, false), (10, 32, true)] {
        for deltas in [true, false] {
            let t = std::time::Instant::now();
            let c = run(mapped, extent, frag, gib_overwrites, 1000, deltas);
            std::eprintln!(
                "mapped {mapped} GiB (extents of {extent} blocks{}), deltas {deltas}: full image {} blocks; \
                 during 1 GiB of random overwrites: {} checkpoints, {} blocks = {:.1} MiB, \
                 {:.1} blocks per checkpoint; {} deltas of {:.1} blocks on average, {} full of {:.1} ({:?})",
                if frag { ", fragmented" } else { "" },
                c.full_blocks,
                c.checkpoints,
                c.blocks,
                c.blocks as f64 / 256.0,
                c.blocks as f64 / c.checkpoints.max(1) as f64,
                c.deltas,
                c.delta_blocks as f64 / c.deltas.max(1) as f64,
                c.checkpoints - c.deltas,
                (c.blocks - c.delta_blocks) as f64 / (c.checkpoints - c.deltas).max(1) as f64,
                t.elapsed()
            );
        }
    }
}

/// Checkpoints until a full one begins a chain that deltas extend (the
/// deltas of what came before may have reached its size).
fn new_chain(p: &mut TestPool, scratch: &mut [u8]) {
    checkpoint(p, scratch);
    for _ in 0..100 {
        if p.stats().delta_blocks == 0 && p.chain.open {
            return;
        }
        checkpoint(p, scratch);
    }
    panic!("no chain");
}

/// Blocks of the full image, and of the checkpoint after a snapshot, a
/// clone of it (written to) and a new volume, on a pool with a volume
/// of `mapped_gib` GiB mapped in extents of `extent` blocks (fragmented),
/// with volume operations in deltas or not; and whether that checkpoint
/// was a delta.
fn volume_ops_cost(mapped_gib: u64, extent: u64, volume_deltas: bool) -> (u64, u64, bool) {
    let clear = if volume_deltas {
        0
    } else {
        INCOMPAT_DELTA_VOLUMES
    };
    let (mut p, mut scratch) = mapped_pool(mapped_gib, extent, true, clear);
    new_chain(&mut p, &mut scratch);
    let full = p.stats().checkpoint_blocks;
    let before = p.stats();
    p.snap_create(1, 2, b"big@daily").unwrap();
    p.clone_volume(2, 3, b"big-clone").unwrap();
    for lba in 0..16 {
        let plan = p.write_begin(3, lba * 4096, 1, Stream::UserHot).unwrap();
        let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
        p.write_end(&plan, &addrs).unwrap();
    }
    p.vol_create(4, b"vm", 1 << 20, 0).unwrap();
    commit(&mut p, &mut scratch);
    checkpoint(&mut p, &mut scratch);
    let after = p.stats();
    (
        full,
        after.checkpoint_blocks_written - before.checkpoint_blocks_written,
        after.delta_checkpoints > before.delta_checkpoints,
    )
}

/// With volume operations in deltas, the checkpoint after a snapshot, a
/// clone and a new volume is a delta of a few blocks; without, a full image.
#[test]
fn volume_operations_cost_a_delta() {
    let (full, blocks, delta) = volume_ops_cost(2, 32, true);
    std::eprintln!("full image {full} blocks, after volume operations {blocks} (delta {delta})");
    assert!(
        delta && blocks * 10 < full,
        "{blocks} blocks against {full}"
    );
    let (full, blocks, delta) = volume_ops_cost(2, 32, false);
    assert!(
        !delta && blocks >= full,
        "older format: {blocks} blocks against {full}"
    );
}

/// The figures of `Documentation/benchmarks-history.md` ("Volume operations"):
/// `cargo test --release -p zvcore --lib volume_ops_cost_report -- --ignored --nocapture`.
#[test]
#[ignore]
fn volume_ops_cost_report() {
    for (mapped, extent) in [(10, 32), (1024, 2048)] {
        for deltas in [true, false] {
            let t = std::time::Instant::now();
            let (full, blocks, delta) = volume_ops_cost(mapped, extent, deltas);
            std::eprintln!(
                "mapped {mapped} GiB (extents of {extent} blocks), volume deltas {deltas}: full image \
                 {full} blocks; the checkpoint after a snapshot, a clone and a new volume: {blocks} \
                 blocks ({}) ({:?})",
                if delta { "a delta" } else { "full" },
                t.elapsed()
            );
        }
    }
}

/// Near the metadata limit (`meta_low`: writes refused), a delete is
/// followed by a full checkpoint, the only kind that gives back the space
/// the deleted tables held; otherwise by a delta.
#[test]
fn a_delete_near_the_metadata_limit_checkpoints_in_full() {
    for low in [false, true] {
        let mut p = one_member_pool(64, 4096, usize::MAX);
        p.sb.checkpoint_interval = 8;
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        p.vol_create(1, b"big", 100_000, 0).unwrap();
        p.vol_create(2, b"small", 64, 0).unwrap();
        for i in 0..2_000u64 {
            write(&mut p, &mut scratch, i * 37 % 100_000, 1);
        }
        commit(&mut p, &mut scratch);
        new_chain(&mut p, &mut scratch);
        p.meta_low = low;
        let before = p.stats();
        p.vol_delete(1).unwrap();
        commit(&mut p, &mut scratch);
        checkpoint(&mut p, &mut scratch);
        let after = p.stats();
        assert_eq!(
            after.volume_deltas > before.volume_deltas,
            !low,
            "metadata low {low}: {before:?} -> {after:?}"
        );
        assert!(after.checkpoint_blocks < before.checkpoint_blocks || !low);
    }
}

/// Blocks of the full image, and of the checkpoint after resizing volume 1
/// (`mapped_gib` GiB mapped in extents of 16 blocks, fragmented) to
/// `size` and writing past its old end, with grows in deltas
/// ([`INCOMPAT_DELTA_GROW`]) or not; whether that checkpoint was a delta,
/// and the grows it carried.
fn resize_cost(mapped_gib: u64, size: u64, grow_deltas: bool) -> (u64, u64, bool, u64) {
    let clear = if grow_deltas { 0 } else { INCOMPAT_DELTA_GROW };
    let (mut p, mut scratch) = mapped_pool(mapped_gib, 16, true, clear);
    new_chain(&mut p, &mut scratch);
    let full = p.stats().checkpoint_blocks;
    let old = p.volume(1).and_then(|v| v.table).unwrap().size();
    let before = p.stats();
    p.vol_resize(1, size).unwrap();
    if size > old {
        for k in 0..16 {
            write(&mut p, &mut scratch, old + k * 1000, 8);
        }
    }
    commit(&mut p, &mut scratch);
    checkpoint(&mut p, &mut scratch);
    let after = p.stats();
    (
        full,
        after.checkpoint_blocks_written - before.checkpoint_blocks_written,
        after.delta_checkpoints > before.delta_checkpoints,
        after.delta_grows - before.delta_grows,
    )
}

/// With [`INCOMPAT_DELTA_GROW`], growing a mapped volume (within its
/// table's height, and past it: new nodes on top) costs a delta of a few
/// blocks; a shrink, and a grow in a pool without the feature, store the
/// volume's whole table.
#[test]
fn a_grow_costs_a_delta_a_shrink_the_table() {
    let old = 2 * GIB;
    for (size, what) in [(old + 20_000, "a grow"), (old * 8, "a grow in height")] {
        let (full, blocks, delta, grows) = resize_cost(2, size, true);
        std::eprintln!("{what}: full image {full} blocks, the checkpoint after it {blocks}");
        assert!(
            delta && grows == 1 && blocks * 10 < full,
            "{what}: {blocks} blocks against {full} (delta {delta}, grows {grows})"
        );
    }
    let (full, blocks, delta, grows) = resize_cost(2, old + 20_000, false);
    std::eprintln!("a grow without the feature: full image {full} blocks, after it {blocks}");
    assert!(
        delta && grows == 0 && blocks * 2 > full,
        "without the feature: {blocks} blocks against {full}"
    );
    let (full, blocks, delta, grows) = resize_cost(2, old - 1, true);
    std::eprintln!("a shrink: full image {full} blocks, after it {blocks}");
    assert!(
        delta && grows == 0 && blocks * 2 > full,
        "a shrink: {blocks} blocks against {full}"
    );
}
