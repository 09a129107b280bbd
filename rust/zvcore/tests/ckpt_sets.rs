// SPDX-License-Identifier: GPL-2.0
//! Checkpoint sets of several zones a member, under the model test's random
//! operations and crashes: members with small zones, so that every
//! checkpoint spans several zones of its set (resets, the open-zone slot
//! moving from zone to zone, the finish of the zone a member's part ends
//! in, crashes between any two of its blocks).
//!
//! `ZVCORE_SEED` replays a run, `ZVCORE_OPS` scales it.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::format::layout::{checkpoint_capacity, set_meta_zones};
use zvcore::geom::{DevKind, DeviceGeometry, PoolGeometry, META_ZONES_PER_DEV};

/// A ZNS member of zones of 6 blocks (open and active limits as tight as
/// the model's; it holds the journal and the start of every checkpoint) and
/// an SMR member of 16-block zones.
fn members(k: u32) -> Vec<DeviceGeometry> {
    let zns = DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones: 1200,
        zone_blocks: 8,
        zone_cap_blocks: 6,
        nr_conv_zones: 0,
        max_open: 4,
        max_active: 5,
        zone_append: true,
        meta_zones: META_ZONES_PER_DEV,
    };
    let smr = DeviceGeometry {
        kind: DevKind::Smr,
        nr_zones: 400,
        zone_blocks: 16,
        zone_cap_blocks: 16,
        nr_conv_zones: 2,
        max_open: 0,
        max_active: 0,
        zone_append: false,
        meta_zones: META_ZONES_PER_DEV,
    };
    let mut devs = vec![zns, smr];
    set_meta_zones(&mut devs, k);
    devs
}

#[test]
fn checkpoints_spanning_several_zones_survive_crashes() {
    let seed = seed_from_env("ckpt_sets");
    let ops = ops_from_env(60_000);
    let mut srng = Rng::new(seed);
    let mut most = 0u64;
    let mut checkpoints = 0u64;
    let mut crashes = 0u64;
    let zone = members(1)[0].zone_cap_blocks;
    // With checkpoint copies a set holds one phase (half the smaller part)
    // a member: the largest checkpoints here (about 14 blocks) need k >= 3.
    for (k, copies) in [(2u32, false), (3, true), (4, true)] {
        let geoms = members(k);
        let mut geo = PoolGeometry::new(&geoms[..]).unwrap();
        geo.set_ckpt_copies(copies);
        let cap = u64::from(checkpoint_capacity(&geo, 0));
        let s = srng.next_u64();
        let r = std::panic::catch_unwind(|| {
            let mut w = World::with_geoms(Rng::new(s), s, geoms.clone());
            w.checkpoint_copies_pct = if copies { 100 } else { 0 };
            w.populate(ops / 3);
            assert_eq!(w.pool_ref().geom().ckpt_copies(), copies);
            w.crash_and_recover();
            let blocks = w.pool_ref().stats().checkpoint_blocks;
            (w.st, blocks)
        });
        let (st, blocks) = r.unwrap_or_else(|e| {
            eprintln!("ckpt_sets: k {k} failed (seed {seed:#x}, world seed {s:#x})");
            std::panic::resume_unwind(e)
        });
        assert!(blocks <= cap);
        most = most.max(st.max_checkpoint_blocks);
        checkpoints += st.checkpoints;
        crashes += st.crashes;
    }
    eprintln!(
        "ckpt_sets: {checkpoints} checkpoints, the largest {most} blocks (zones of {zone}), {crashes} crashes"
    );
    // Checkpoints must have spanned zones for the test to mean anything.
    assert!(
        most > zone,
        "largest checkpoint {most} blocks: no set spanned zones"
    );
    assert!(checkpoints > 100 && crashes > 10);
}
