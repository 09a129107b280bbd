// SPDX-License-Identifier: GPL-2.0
//! Many volumes: a pool with over ten thousand volumes and snapshots (the
//! kernel's full volume table) survives checkpoints, journal replay and
//! power cuts with every volume, name and block intact, and deletes and
//! new ids (past the table size, so slots wrap) keep lookups right.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::geom::{DevKind, DeviceGeometry};
use zvcore::pool::quota::SpaceRules;
use zvcore::pool::slots::MAX_VOLUMES;
use zvcore::pool::PoolStats;

/// One ZNS member of 40 zones of 256 blocks (capacity 200) with checkpoint
/// sets of three zones: the volume section of 16,384 volumes (about 280
/// blocks) spans two of them.
fn member() -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones: 40,
        zone_blocks: 256,
        zone_cap_blocks: 200,
        nr_conv_zones: 0,
        max_open: 8,
        max_active: 10,
        zone_append: true,
        meta_zones: 8,
    }
}

/// A volume as listed: id, name, read-only, size, origin.
type Listed = (u32, Vec<u8>, bool, u64, Option<u32>);

/// Names, flags, sizes and origins of every volume, sorted by id.
fn listing(w: &mut World) -> Vec<Listed> {
    let mut v: Vec<_> = w
        .pool()
        .volumes()
        .iter()
        .filter_map(|v| {
            v.table.map(|t| {
                (
                    v.id,
                    v.name.as_bytes().to_vec(),
                    v.read_only(),
                    t.size(),
                    v.origin,
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// Completes the writes in flight (a volume with writes in flight is
/// never deleted: its disk is gone first) and commits.
fn commit(w: &mut World) {
    w.settle();
}

/// Commits when the record queue is half full.
fn maybe_commit(w: &mut World) {
    if w.pool().pending_records() > 100 {
        commit(w);
    }
}

fn create(w: &mut World, id: u32, size: u64) {
    w.create_volume(id, format!("vm{id}").as_bytes(), size);
}

fn snapshot(w: &mut World, src: u32, id: u32) {
    w.snapshot_volume(src, id, format!("vm{src}@s{id}").as_bytes());
}

/// Checkpoints (each after a write to volume 1) until one is a delta: the
/// chain is open (a member at its zone limits may end a chain).
fn open_chain(w: &mut World) {
    for k in 0..8 {
        w.write_exact(1, k, 1);
        commit(w);
        w.checkpoint_now();
        if w.pool_ref().stats().delta_checkpoints > 0 {
            break;
        }
    }
}

fn delete(w: &mut World, id: u32) {
    w.delete_volume(id);
}

#[test]
fn ten_thousand_volumes_and_snapshots_survive_power_cuts() {
    let seed = seed_from_env("volumes");
    let t0 = std::time::Instant::now();
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![member()]);
    w.vol_slots = MAX_VOLUMES;
    w.nodes = 1 << 16;
    w.stepped_pct = 50;
    w.format();
    // 7,000 volumes of 8 blocks, one block written in every tenth, and a
    // snapshot of 5,000 of them (after the write, so they share it).
    let mut id = 1u32;
    for _ in 0..7_000 {
        create(&mut w, id, 8);
        if id.is_multiple_of(10) {
            w.write_exact(id, u64::from(id % 8), 1);
        }
        id += 1;
        maybe_commit(&mut w);
    }
    for src in 1..=5_000u32 {
        snapshot(&mut w, src, id);
        id += 1;
        maybe_commit(&mut w);
    }
    commit(&mut w);
    let before = listing(&mut w);
    assert_eq!(before.len(), 12_000);
    assert_eq!(before.iter().filter(|v| v.2).count(), 5_000);
    // A full checkpoint (asked for: the assembly may keep the chain, whose
    // next checkpoint is a delta) spans more than one zone of its set. (A
    // delta after the volume operations may not: how much of the tables it
    // holds depends on the checkpoints the seed steps through before it.)
    w.crash_and_recover();
    assert_eq!(
        listing(&mut w),
        before,
        "after the power cut before the full checkpoint"
    );
    w.pool().request_full_checkpoint();
    w.checkpoint_now();
    let blocks = w.pool_ref().stats().checkpoint_blocks;
    assert!(
        blocks > member().zone_cap_blocks,
        "full checkpoint of {blocks} blocks"
    );
    // Power cut: the checkpoint's volume section holds all of them.
    w.crash_and_recover();
    assert_eq!(listing(&mut w), before, "after the first power cut");

    // Delete 3,000 (volumes and snapshots), create 4,300 with new ids: ids
    // pass the table size, so their home slots wrap onto older volumes.
    for k in 0..3_000u32 {
        let victim = 1 + k * 4;
        delete(&mut w, victim);
        maybe_commit(&mut w);
    }
    // (Ids given out and deleted meanwhile are skipped.)
    id = 15_000;
    for _ in 0..4_300 {
        create(&mut w, id, 4);
        w.write_exact(id, 0, 1);
        id += 1;
        maybe_commit(&mut w);
    }
    assert!(id as usize > MAX_VOLUMES);
    commit(&mut w);
    let after = listing(&mut w);
    assert_eq!(after.len(), 12_000 - 3_000 + 4_300);
    for v in [1u32, 5, 12_000, id - 1] {
        let found = w.pool().volume(v).map(|e| e.id);
        let expect = after.iter().any(|x| x.0 == v).then_some(v);
        assert_eq!(found, expect, "lookup of {v}");
    }
    // Power cut again: checkpoints or journal replay bring the same set.
    w.crash_and_recover();
    assert_eq!(listing(&mut w), after, "after the second power cut");
    // The table is full: one more volume is refused, a delete makes room.
    let room = MAX_VOLUMES - after.len();
    for _ in 0..room {
        create(&mut w, id, 1);
        id += 1;
        maybe_commit(&mut w);
    }
    assert_eq!(
        w.pool().vol_create(id, b"one-more", 1, 0),
        Err(zvcore::error::Error::NoSpace)
    );
    delete(&mut w, 2);
    create(&mut w, id, 1);
    commit(&mut w);
    w.crash_and_recover();
    assert_eq!(listing(&mut w).len(), MAX_VOLUMES);
    eprintln!(
        "volumes: {} volumes and snapshots, 3 power cuts, {:?} (seed {seed:#x})",
        MAX_VOLUMES,
        t0.elapsed()
    );
}

/// One ZNS member of 64 zones of 4,096 blocks.
fn big_member() -> DeviceGeometry {
    DeviceGeometry {
        nr_zones: 64,
        zone_blocks: 4096,
        zone_cap_blocks: 4096,
        ..member()
    }
}

/// Volume 1 with a table of many leaves (40,000 blocks written in an
/// order that keeps no two neighbours together on the media) in a full
/// checkpoint; then its first snapshot (a copy of the volume's image in
/// the chain plus changes), a clone of the snapshot
/// written to, a small volume created, resized and given space rules, and
/// another deleted. Returns the pool's statistics before and after the
/// checkpoint that follows, then checks the volumes after a power cut.
fn volume_ops_checkpoint(volume_deltas: bool) -> (PoolStats, PoolStats) {
    let seed = seed_from_env("volume-deltas");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![big_member()]);
    w.nodes = 1 << 16;
    w.volume_deltas_pct = if volume_deltas { 100 } else { 0 };
    w.format();
    create(&mut w, 1, 200_000);
    create(&mut w, 5, 64);
    for i in 0..40_000u64 {
        w.write_exact(1, i * 7_919 % 200_000, 1);
        maybe_commit(&mut w);
    }
    commit(&mut w);
    // After assembly a full checkpoint (asked for: the chain the assembly
    // kept may have no room left for the deltas below), then checkpoints
    // until a delta extends it.
    w.crash_and_recover();
    w.pool().request_full_checkpoint();
    open_chain(&mut w);
    let before = w.pool_ref().stats();
    assert!(before.delta_checkpoints > 0, "a chain that deltas extend");
    assert!(before.checkpoint_blocks > 0, "a full checkpoint");
    snapshot(&mut w, 1, 2);
    w.pool()
        .clone_volume(2, 3, b"vm1-clone")
        .unwrap_or_else(|e| panic!("clone: {e:?}"));
    let m = w
        .vols
        .iter()
        .find(|v| v.id == 2)
        .expect("snapshot")
        .copy_as(3, false);
    w.vols.push(m);
    w.write_exact(3, 8, 2);
    w.write_exact(1, 9, 1);
    create(&mut w, 4, 16);
    w.write_exact(4, 0, 4);
    w.pool().vol_resize(4, 32).expect("resize");
    let v = w.vols.iter_mut().find(|v| v.id == 4).expect("volume 4");
    v.blocks.resize(32, BlockModel::default());
    let rules = SpaceRules {
        quota: 32,
        reserve: 8,
    };
    w.pool().set_space_rules(4, rules).expect("space rules");
    w.vols
        .iter_mut()
        .find(|v| v.id == 4)
        .expect("volume 4")
        .rules = rules;
    delete(&mut w, 5);
    commit(&mut w);
    w.checkpoint_now();
    let after = w.pool_ref().stats();
    let listed = listing(&mut w);
    let loaded = w.st.volume_deltas_loaded;
    // The power cut: assembly loads the chain (and checks every block,
    // volume and rule against the model).
    w.crash_and_recover();
    assert_eq!(listing(&mut w), listed, "volumes after the power cut");
    assert_eq!(
        w.st.volume_deltas_loaded > loaded,
        volume_deltas,
        "a delta with volume operations loaded"
    );
    (before, after)
}

/// With `INCOMPAT_DELTA_VOLUMES`, the checkpoint after volume operations is
/// a delta of a few blocks, not a new image of every table; in the older
/// format it is a full image.
#[test]
fn volume_operations_checkpoint_as_deltas() {
    let (b, a) = volume_ops_checkpoint(true);
    let fulls = |b: &PoolStats, a: &PoolStats| {
        (a.checkpoints - b.checkpoints) - (a.delta_checkpoints - b.delta_checkpoints)
    };
    assert!(a.volume_deltas > b.volume_deltas, "a volume delta");
    assert_eq!(fulls(&b, &a), 0, "no new full image");
    assert!(
        a.last_delta_blocks * 5 < b.checkpoint_blocks,
        "delta of {} blocks against a full image of {}",
        a.last_delta_blocks,
        b.checkpoint_blocks
    );
    let (ob, oa) = volume_ops_checkpoint(false);
    assert_eq!(oa.volume_deltas, 0);
    assert!(fulls(&ob, &oa) > 0, "older format: a full image");
    eprintln!(
        "volume deltas: after volume operations a delta of {} blocks (full image {} blocks; \
         older format: a full image of {} blocks)",
        a.last_delta_blocks, b.checkpoint_blocks, oa.checkpoint_blocks
    );
}

/// Resizes volume `id` of the world and its model.
fn resize(w: &mut World, id: u32, size: u64) {
    w.pool()
        .vol_resize(id, size)
        .unwrap_or_else(|e| panic!("resize {id}: {e:?}"));
    let v = w.vols.iter_mut().find(|v| v.id == id).expect("volume");
    v.blocks.resize(size as usize, BlockModel::default());
}

/// Grows in one interval between checkpoints, with and without
/// `INCOMPAT_DELTA_GROW`: volume 1 (a table of many leaves) snapshot
/// before its grow (2) and after it (3), written past its old end around
/// both; a clone (4) of an older snapshot (5) grown; volume 6 grown past
/// the height of its table (new nodes on top); volume 7 grown then shrunk
/// (redefined). Returns the statistics before and after the checkpoint
/// that follows, and the grows the assembly after a power cut loaded (it
/// checks every block against the model). Worlds where another checkpoint
/// came between the operations are made again with another seed.
fn grows_checkpoint(delta_grow: bool) -> (PoolStats, PoolStats, u64) {
    let seed = seed_from_env("delta-grows");
    let mut rng = Rng::new(seed);
    (0..32)
        .find_map(|_| try_grows_checkpoint(rng.next_u64(), delta_grow))
        .expect("no world with one delta after the grows")
}

fn try_grows_checkpoint(seed: u64, delta_grow: bool) -> Option<(PoolStats, PoolStats, u64)> {
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![big_member()]);
    w.nodes = 1 << 16;
    w.volume_deltas_pct = 100;
    w.delta_grow_pct = if delta_grow { 100 } else { 0 };
    w.format();
    create(&mut w, 1, 100_000);
    create(&mut w, 6, 300);
    create(&mut w, 7, 64);
    for i in 0..20_000u64 {
        w.write_exact(1, i * 7_919 % 100_000, 1);
        maybe_commit(&mut w);
    }
    w.write_exact(6, 290, 10);
    w.write_exact(7, 0, 64);
    snapshot(&mut w, 1, 5);
    w.write_exact(1, 3, 1);
    commit(&mut w);
    w.crash_and_recover();
    open_chain(&mut w);
    let before = w.pool_ref().stats();
    assert!(before.delta_checkpoints > 0, "a chain that deltas extend");
    snapshot(&mut w, 1, 2);
    w.write_exact(1, 99_999, 1);
    resize(&mut w, 1, 150_000);
    w.write_exact(1, 100_000, 3);
    w.write_exact(1, 120_000, 2);
    snapshot(&mut w, 1, 3);
    w.write_exact(1, 100_001, 1);
    w.write_exact(1, 149_999, 1);
    w.pool()
        .clone_volume(5, 4, b"vm1-clone")
        .unwrap_or_else(|e| panic!("clone: {e:?}"));
    let m = w
        .vols
        .iter()
        .find(|v| v.id == 5)
        .expect("5")
        .copy_as(4, false);
    w.vols.push(m);
    resize(&mut w, 4, 200_000);
    w.write_exact(4, 199_990, 4);
    resize(&mut w, 6, 1_000_000);
    w.write_exact(6, 999_000, 2);
    resize(&mut w, 7, 128);
    w.write_exact(7, 100, 1);
    resize(&mut w, 7, 32);
    commit(&mut w);
    w.checkpoint_now();
    let after = w.pool_ref().stats();
    if after.checkpoints != before.checkpoints + 1
        || after.delta_checkpoints != before.delta_checkpoints + 1
    {
        return None;
    }
    let listed = listing(&mut w);
    let loaded = w.st.delta_grows_loaded;
    w.crash_and_recover();
    assert_eq!(listing(&mut w), listed, "volumes after the power cut");
    Some((before, after, w.st.delta_grows_loaded - loaded))
}

/// With `INCOMPAT_DELTA_GROW`, the checkpoint after the grows is a delta
/// of a few blocks that carries them (1, 4 and 6; 7 was shrunk after),
/// and the assembly after a power cut grows them again, and the copy of 1
/// made after its grow (3); without it, the grown tables are stored
/// whole.
#[test]
fn grows_checkpoint_as_deltas() {
    let fulls = |b: &PoolStats, a: &PoolStats| {
        (a.checkpoints - b.checkpoints) - (a.delta_checkpoints - b.delta_checkpoints)
    };
    let written =
        |b: &PoolStats, a: &PoolStats| a.checkpoint_blocks_written - b.checkpoint_blocks_written;
    let (b, a, loaded) = grows_checkpoint(true);
    assert_eq!(a.delta_checkpoints, b.delta_checkpoints + 1, "a delta");
    assert_eq!(fulls(&b, &a), 0, "no new full image");
    assert_eq!(a.delta_grows - b.delta_grows, 3, "grows carried");
    // (Each assembly of the chain: a power cut may hit the one after.)
    assert!(loaded > 0 && loaded % 4 == 0, "grows loaded: {loaded}");
    // The volume with snapshots made in the interval costs its changes
    // (its nodes copied on write since the snapshots), not its table.
    assert!(
        written(&b, &a) * 3 < b.checkpoint_blocks,
        "delta of {} blocks against a full image of {}",
        written(&b, &a),
        b.checkpoint_blocks
    );
    let (ob, oa, oloaded) = grows_checkpoint(false);
    assert_eq!(fulls(&ob, &oa), 0, "deltas without the feature too");
    assert_eq!(
        (oa.delta_grows, oloaded),
        (0, 0),
        "no grow without the feature"
    );
    eprintln!(
        "delta grows: the delta after the grows {} blocks (without the feature, the grown \
         volumes redefined: {} blocks; full image {} blocks)",
        written(&b, &a),
        written(&ob, &oa),
        b.checkpoint_blocks
    );
}
