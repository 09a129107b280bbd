// SPDX-License-Identifier: GPL-2.0
//! Placement policies kept on disk (`pool::policy`): volumes' placements,
//! members' classes, tiering and the evacuation survive power cuts, full
//! and delta checkpoints, and a power cut anywhere in the commit that
//! writes them; a later checkpoint replaces what an older one said; the
//! walks of several placed volumes run in turn; GC's copies of a placed
//! volume's blocks stay on its members.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::format::policy::Placement;
use zvcore::format::INCOMPAT_PLACEMENT;

const SIZE: u64 = 600;

/// A pool of a ZNS member, an SMR one and another ZNS one, with volumes
/// 1 and 2 of [`SIZE`] blocks written once.
fn world(name: &str) -> World {
    world_seeded(seed_from_env(name))
}

/// [`world`] of seed `seed`.
fn world_seeded(seed: u64) -> World {
    let mut w = World::with_geoms(
        Rng::new(seed),
        seed,
        vec![small_zns(40), small_smr(40), small_zns(40)],
    );
    w.format();
    for id in [1u32, 2] {
        w.pool().vol_create(id, b"v", SIZE, 0).expect("vol_create");
        w.vols.push(VolModel::new(id, SIZE));
    }
    w.next_vol = 3;
    for id in [1u32, 2] {
        for l in (0..SIZE).step_by(8) {
            w.write_exact(id, l, 8);
        }
    }
    while !w.commit(false) {}
    w
}

/// The settings the tests look at: tiering asked, slow members, the two
/// volumes' placements, the evacuated member.
fn settings(w: &World) -> (bool, u64, Placement, Placement, Option<u16>) {
    let p = w.pool_ref();
    let place = |v: u32| p.volume(v).map(|v| v.place).expect("volume");
    (
        p.alloc().tiering_asked(),
        p.alloc().slow(),
        place(1),
        place(2),
        p.evacuation().map(|e| e.member),
    )
}

/// GC batches (and commits) until nothing is left to move.
fn move_all(w: &mut World) {
    for _ in 0..4000 {
        if !w.pool_ref().moving_data() {
            return;
        }
        w.gc_batch();
        while !w.commit(false) {}
        w.maintenance();
    }
    panic!("data still moving");
}

/// Tiering on, member 2 slow and member 1 (SMR) fast, volume 1 on member
/// 0, volume 2 on the slow class, member 1 evacuated.
fn set_all(w: &mut World) {
    w.pool().set_tiering(true).expect("tiering");
    w.pool().set_member_class(2, true).expect("member 2 slow");
    w.pool().set_member_class(1, false).expect("member 1 fast");
    w.pool()
        .migrate(Some((1, Placement::Members(0b001))))
        .expect("volume 1 on member 0");
    w.pool()
        .migrate(Some((2, Placement::Slow)))
        .expect("volume 2 slow");
    w.pool().evacuate(Some(1)).expect("evacuate member 1");
}

#[test]
fn policies_survive_power_cuts_and_checkpoints() {
    let mut w = world("policy-keep");
    let gen = w.pool_ref().superblock().generation;
    let defaults = (false, 0b010, Placement::Any, Placement::Any, None);
    assert_eq!(settings(&w), defaults, "an SMR member is slow");
    set_all(&mut w);
    let set = (
        true,
        0b100,
        Placement::Members(0b001),
        Placement::Slow,
        Some(1),
    );
    assert_eq!(settings(&w), set);
    assert_eq!(w.pool_ref().superblock().generation, gen + 1);
    assert_ne!(w.pool_ref().superblock().incompat & INCOMPAT_PLACEMENT, 0);
    // Not committed: a power cut loses them (nothing else changed).
    w.crash_and_recover();
    assert_eq!(settings(&w), defaults, "uncommitted policies");
    set_all(&mut w);
    while !w.commit(false) {}
    // From the journal.
    w.crash_and_recover();
    assert_eq!(settings(&w), set, "from the journal");
    let m = w.pool_ref().migration().expect("a walk resumed");
    assert!(m.vol == 1 || m.vol == 2);
    move_all(&mut w);
    assert_eq!(w.vol_blocks_on(1, 1) + w.vol_blocks_on(1, 2), 0);
    assert_eq!(w.vol_blocks_on(2, 0) + w.vol_blocks_on(2, 1), 0);
    assert_eq!(w.member_valid_blocks(1), 0, "member 1 evacuated");
    // From a checkpoint (and the journal after it).
    w.checkpoint_now();
    for l in (0..SIZE).step_by(16) {
        w.write_exact(1, l, 4);
        w.write_exact(2, l, 4);
    }
    while !w.commit(false) {}
    w.crash_and_recover();
    assert_eq!(settings(&w), set, "from a checkpoint");
    assert_eq!(w.vol_blocks_on(1, 1) + w.vol_blocks_on(1, 2), 0);
    assert_eq!(w.vol_blocks_on(2, 0) + w.vol_blocks_on(2, 1), 0);
    // Changed back, then checkpointed: the newer checkpoint's set replaces
    // the older one's (whether it is a delta on it or a full image).
    w.pool()
        .migrate(Some((1, Placement::Any)))
        .expect("volume 1 anywhere");
    w.pool()
        .set_member_class(2, false)
        .expect("member 2 fast again");
    w.pool().set_tiering(false).expect("tiering off");
    w.pool().evacuate(None).expect("cancel");
    while !w.commit(false) {}
    w.checkpoint_now();
    w.crash_and_recover();
    let later = (false, 0b000, Placement::Any, Placement::Slow, None);
    assert_eq!(settings(&w), later, "after a later checkpoint");
    // And after a second one (a delta on a chain, or full).
    assert!(w.checkpoint_stepped(false));
    w.crash_and_recover();
    assert_eq!(settings(&w), later, "after a second checkpoint");
    // Every setting back to its default: the next checkpoint's section is
    // empty (a delta on one that held settings, in pools with deltas), and
    // still replaces what the chain said before it.
    assert!(w.checkpoint_stepped(false));
    for l in (0..SIZE).step_by(32) {
        w.write_exact(1, l, 2);
    }
    while !w.commit(false) {}
    assert!(w.checkpoint_stepped(false));
    w.pool()
        .migrate(Some((2, Placement::Any)))
        .expect("volume 2 anywhere");
    w.pool()
        .set_member_class(1, true)
        .expect("member 1 slow again");
    while !w.commit(false) {}
    let d0 = w.pool_ref().stats().delta_checkpoints;
    assert!(w.checkpoint_stepped(false));
    let delta = w.pool_ref().stats().delta_checkpoints > d0;
    eprintln!("policy-keep: the empty section in a delta: {delta}");
    w.crash_and_recover();
    assert_eq!(settings(&w), defaults, "after an empty policy section");
    w.run_verify("after the policies");
    eprintln!(
        "policy-keep: {} delta checkpoints loaded",
        w.st.deltas_loaded
    );
}

#[test]
fn a_policy_commit_survives_a_power_cut_anywhere() {
    let place = Placement::Members(0b100);
    let plan = |w: &mut World| {
        w.end_resets();
        w.pool().migrate(Some((1, place))).expect("migrate");
        w.pool().set_tiering(true).expect("tiering");
        let (r, ops) = w.meta_call(|p, s, mut sink| p.flush(s, &mut sink));
        r.expect("flush");
        ops
    };
    let seed = seed_from_env("policy-cut");
    let probe = plan(&mut world_seeded(seed));
    let mut seen = [false; 2];
    for k in 0..=probe.len() {
        let mut w = world_seeded(seed);
        let ops = plan(&mut w);
        assert_eq!(ops.len(), probe.len(), "one seed, one plan");
        let done = w.exec(&ops, Some(k).filter(|k| *k < ops.len()));
        if done {
            w.pool().flush_end(true).expect("flush_end");
        }
        w.crash_and_recover();
        let s = settings(&w);
        let kept = match s {
            (true, 0b010, p, Placement::Any, None) if p == place => true,
            (false, 0b010, Placement::Any, Placement::Any, None) => false,
            other => panic!("cut at op {k}: {other:?}"),
        };
        assert!(kept || !done, "cut at op {k}: the commit was done");
        seen[usize::from(kept)] = true;
        move_all(&mut w);
        if kept {
            assert_eq!(w.vol_blocks_on(1, 0) + w.vol_blocks_on(1, 1), 0);
        }
        w.run_verify("after the cut");
    }
    assert_eq!(seen, [true, true], "both outcomes");
}

#[test]
fn placed_volumes_are_walked_in_turn_and_gc_keeps_them_placed() {
    let mut w = world("policy-walks");
    w.pool()
        .migrate(Some((1, Placement::Members(0b001))))
        .expect("volume 1 on member 0");
    w.pool()
        .migrate(Some((2, Placement::Members(0b100))))
        .expect("volume 2 on member 2");
    assert_eq!(w.pool_ref().migration().map(|m| m.vol), Some(1), "first");
    move_all(&mut w);
    assert_eq!(w.vol_blocks_on(1, 1) + w.vol_blocks_on(1, 2), 0);
    assert_eq!(w.vol_blocks_on(2, 0) + w.vol_blocks_on(2, 1), 0);
    let m = w.pool_ref().migration().expect("the last walk");
    assert_eq!((m.vol, m.done, m.members), (2, true, 0b100));
    // A large volume placed on member 0, overwritten at random: the
    // member runs short of free zones while the pool has plenty, GC
    // collects its zones, and the copies stay there.
    const BIG: u64 = 5200;
    w.pool().vol_create(3, b"big", BIG, 0).expect("vol_create");
    w.vols.push(VolModel::new(3, BIG));
    w.next_vol = 4;
    w.pool()
        .migrate(Some((3, Placement::Members(0b001))))
        .expect("volume 3 on member 0");
    for l in (0..BIG).step_by(8) {
        w.write_exact(3, l, 8);
    }
    while !w.commit(false) {}
    let gc0 = w.pool_ref().stats().gc_blocks;
    let mut rng = Rng::new(seed_from_env("policy-walks-writes"));
    for k in 0..3000u64 {
        w.write_exact(3, rng.below(BIG / 8) * 8, 8);
        if k % 32 == 31 {
            while !w.commit(false) {}
            for _ in 0..16 {
                if w.pool().gc_urgency() == zvcore::gc::Urgency::Idle || w.gc_batch() == 0 {
                    break;
                }
                while !w.commit(false) {}
                w.maintenance();
            }
            w.maintenance();
        }
    }
    let moved = w.pool_ref().stats().gc_blocks - gc0;
    let free: Vec<u32> = (0..3)
        .map(|d| w.pool_ref().alloc().member_free_zones(d))
        .collect();
    assert!(moved > 0, "GC moved nothing (free zones {free:?})");
    move_all(&mut w);
    assert_eq!(w.vol_blocks_on(3, 1) + w.vol_blocks_on(3, 2), 0);
    assert_eq!(w.vol_blocks_on(1, 1) + w.vol_blocks_on(1, 2), 0);
    assert_eq!(w.vol_blocks_on(2, 0) + w.vol_blocks_on(2, 1), 0);
    // (How the other volumes' writes and GC's copies spread over members
    // 1 and 2 varies with the seed: their sum is what shows plenty.)
    assert!(
        free[0] < 8 && free[1] + free[2] >= 30,
        "member 0 short, the others not: {free:?}"
    );
    eprintln!("policy-walks: GC moved {moved} blocks, all on their members (free zones {free:?})");
    // Refusals change nothing.
    assert_eq!(
        w.pool().migrate(Some((1, Placement::Members(0))),),
        Err(Error::Invalid("migrate: members"))
    );
    assert_eq!(
        w.pool().migrate(Some((9, Placement::Fast))),
        Err(Error::NotFound)
    );
    w.pool().set_member_class(0, true).expect("member 0 slow");
    w.pool().set_member_class(2, true).expect("member 2 slow");
    assert_eq!(
        w.pool().migrate(Some((1, Placement::Fast))),
        Err(Error::Invalid("migrate: no member of that class")),
        "member 1 (SMR) is slow by its device"
    );
    assert_eq!(
        w.pool_ref().volume(1).map(|v| v.place),
        Some(Placement::Members(0b001))
    );
    w.run_verify("after the walks");
}

#[test]
fn a_policy_section_over_several_blocks_loads_whole() {
    // 300 placed volumes: 300 records of 16 bytes, more than one payload
    // block of a checkpoint holds (254).
    let seed = seed_from_env("policy-many");
    let mut w = World::with_geoms(
        Rng::new(seed),
        seed,
        vec![small_zns(40), small_smr(40), small_zns(40)],
    );
    w.vol_slots = 512;
    w.format();
    let place = |id: u32| match id % 4 {
        0 => Placement::Fast,
        1 => Placement::Slow,
        2 => Placement::Members(0b101),
        _ => Placement::Members(u64::from(id % 3 + 1)),
    };
    for id in 1..=300u32 {
        w.pool().vol_create(id, b"v", 8, 0).expect("vol_create");
        w.vols.push(VolModel::new(id, 8));
        w.write_exact(id, 0, 8);
        w.pool().migrate(Some((id, place(id)))).expect("place");
        if id % 8 == 0 {
            while !w.commit(false) {}
        }
    }
    w.next_vol = 301;
    while !w.commit(false) {}
    w.checkpoint_now();
    w.crash_and_recover();
    for id in 1..=300u32 {
        assert_eq!(
            w.pool_ref().volume(id).map(|v| v.place),
            Some(place(id)),
            "volume {id}"
        );
    }
    w.run_verify("after 300 placements");
}
