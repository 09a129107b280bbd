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
use zvcore::pool::slots::MAX_VOLUMES;

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
    let name = format!("vm{id}");
    w.pool()
        .vol_create(id, name.as_bytes(), size, 0)
        .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
    w.vols.push(VolModel::new(id, size));
}

fn snapshot(w: &mut World, src: u32, id: u32) {
    let name = format!("vm{src}@s{id}");
    w.pool()
        .snap_create(src, id, name.as_bytes())
        .unwrap_or_else(|e| panic!("snapshot {id} of {src}: {e:?}"));
    let i = w.vols.iter().position(|v| v.id == src).expect("source");
    let m = w.vols[i].copy_as(id, true);
    w.vols.push(m);
}

fn delete(w: &mut World, id: u32) {
    w.complete_all();
    w.pool()
        .vol_delete(id)
        .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
    w.vols.retain(|v| v.id != id);
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
    w.checkpoint_now();
    // The checkpoint spans more than one zone of its set.
    let blocks = w.pool_ref().stats().checkpoint_blocks;
    assert!(
        blocks > member().zone_cap_blocks,
        "checkpoint of {blocks} blocks"
    );
    let before = listing(&mut w);
    assert_eq!(before.len(), 12_000);
    assert_eq!(before.iter().filter(|v| v.2).count(), 5_000);
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
