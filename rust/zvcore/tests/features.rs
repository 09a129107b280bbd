// SPDX-License-Identifier: GPL-2.0
//! The pool's feature bits survive power cuts at the points where the
//! superblock saying so is not the newest metadata on disk:
//! - a log zone of the journal member is reset (a log-zone switch) while
//!   the other log zone holds an older superblock: the crash between the
//!   reset and the rewrite must leave the newest superblock;
//! - a checkpoint of shared blocks is durable before the superblock with
//!   the shared-blocks feature (written at the next log-zone switch).
//!
//! Both once lost `INCOMPAT_SHARED_BLOCKS` after recovery: blocks shared by
//! two volumes were then counted twice and never reference-counted.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::format::layout::log_zone;
use zvcore::format::{Superblock, BLOCK_SIZE};
use zvcore::geom::{DeviceGeometry, PoolGeometry};

/// One ZNS member: the journal and both its log zones are on it.
fn member() -> DeviceGeometry {
    small_zns(24)
}

fn world(name: &str) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![member()]);
    w.format();
    w
}

/// Pool zone number of log zone `i` of the journal member.
fn log_zone_id(w: &World, i: u32) -> u32 {
    let geo = PoolGeometry::new(w.geoms.clone()).expect("geometry");
    log_zone(&geo, 0, i).expect("log zone")
}

/// Generation of the superblock at the start of log zone `i` (0: none).
fn sb_gen(w: &World, i: u32) -> u64 {
    let (d, local) = w.zone_loc(log_zone_id(w, i));
    let mut b = vec![0u8; BLOCK_SIZE];
    w.devs[d].read_raw(w.devs[d].zone_start(local), &mut b);
    Superblock::peek_ids(&b).map(|(_, _, g)| g).unwrap_or(0)
}

/// Whether the journal writes into log zone `i` (neither full nor empty).
fn journal_in(w: &World, i: u32) -> bool {
    let (d, local) = w.zone_loc(log_zone_id(w, i));
    matches!(
        w.devs[d].report(local),
        Some((Cond::ImplOpen | Cond::ExplOpen | Cond::Closed, _))
    )
}

/// Writes a block of volume 1 and commits, until the journal is in log
/// zone `i`.
fn journal_until_in(w: &mut World, i: u32) {
    for k in 0..1000u64 {
        if journal_in(w, i) {
            return;
        }
        w.write_exact(1, k % 16, 1);
        while !w.commit(false) {}
    }
    panic!("the journal never reached log zone {i}");
}

fn create(w: &mut World, id: u32, size: u64) {
    w.create_volume(id, b"v", size);
}

fn model_index(w: &World, id: u32) -> usize {
    w.vols
        .iter()
        .position(|v| v.id == id)
        .expect("volume in the model")
}

/// Snapshot (`snap`) of volume `src`, or clone of snapshot `src`.
fn share(w: &mut World, src: u32, id: u32, snap: bool) {
    let r = if snap {
        w.pool().snap_create(src, id, b"s")
    } else {
        w.pool().clone_volume(src, id, b"c")
    };
    r.expect("snapshot/clone");
    let m = w.vols[model_index(w, src)].copy_as(id, snap);
    w.vols.push(m);
    w.next_vol = w.next_vol.max(id + 1);
}

#[test]
fn log_zone_switch_keeps_the_newest_superblock() {
    let mut w = world("features-log");
    create(&mut w, 1, 16);
    // The journal moves to log zone 1 (generation 1 there too).
    journal_until_in(&mut w, 1);
    // A checkpoint covers log zone 0; the first snapshot raises the
    // superblock's generation, written into log zone 0 at the switch.
    w.checkpoint_now();
    share(&mut w, 1, 2, true);
    journal_until_in(&mut w, 0);
    let g = w.pool_ref().superblock().generation;
    assert_eq!(
        (sb_gen(&w, 0), sb_gen(&w, 1)),
        (g, g - 1),
        "the newest superblock only in log zone 0"
    );
    // Power cut, then the first log-zone switch after recovery (the
    // journal goes on in log zone 0 until it switches): a crash right
    // after its reset must leave the newest superblock.
    w.crash_and_recover();
    let logs = [0, 1].map(|i| log_zone_id(&w, i));
    let mut switch = None;
    for k in 0..4000u64 {
        w.write_exact(1, k % 16, 1);
        let upto = w.completions;
        let (r, ops) = w.meta_call(|p, s, mut sink| p.flush(s, &mut sink));
        r.expect("flush");
        if let Some(at) = ops
            .iter()
            .position(|o| o.kind == 1 && logs.contains(&o.zone))
        {
            switch = Some((ops, at));
            break;
        }
        assert!(w.exec(&ops, None));
        w.pool().flush_end(true).expect("flush_end");
        w.committed(upto);
    }
    let (ops, at) = switch.expect("a log-zone switch after recovery");
    assert_eq!(
        ops[at].zone, logs[1],
        "reset of the older superblock's zone"
    );
    w.exec(&ops, Some(at + 1));
    w.crash_and_recover();
    assert_eq!(w.pool_ref().superblock().generation, g, "superblock lost");
    assert!(w.pool_ref().sharing(), "shared-blocks feature lost");
    w.run_verify("after the switch");
}

#[test]
fn checkpoint_before_the_superblock_keeps_sharing() {
    let mut w = world("features-ckpt");
    create(&mut w, 1, 16);
    for l in 0..8 {
        w.write_exact(1, l, 1);
    }
    while !w.commit(false) {}
    let before = sb_gen(&w, 0).max(sb_gen(&w, 1));
    // Two volumes sharing blocks with no origin link between them: a
    // snapshot, its clone flattened, the original deleted.
    share(&mut w, 1, 2, true);
    share(&mut w, 2, 3, false);
    w.pool().promote(3).expect("promote");
    let i = model_index(&w, 3);
    w.vols[i].origin = None;
    w.pool().vol_delete(1).expect("delete");
    let i = model_index(&w, 1);
    w.vols.remove(i);
    let i = model_index(&w, 2);
    w.vols[i].origin = None;
    // A checkpoint (no log-zone switch): the superblock on disk does not
    // have the feature yet.
    w.checkpoint_now();
    assert!(w.pool_ref().sharing());
    assert_eq!(
        sb_gen(&w, 0).max(sb_gen(&w, 1)),
        before,
        "no superblock written"
    );
    w.crash_and_recover();
    assert!(w.pool_ref().sharing(), "shared-blocks feature lost");
    w.run_verify("after recovery");
    for l in 0..8 {
        w.read_range(3, l, 1).expect("clone reads its blocks");
    }
}
