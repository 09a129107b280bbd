// SPDX-License-Identifier: GPL-2.0
//! The placement history (`INCOMPAT_ZONE_HISTORY`, `format::zone_history`)
//! survives a power cut: each full data zone's clock and hot flag, the
//! allocator's clock and the mean lifetime come back as the newest
//! checkpoint had them; a zone written after that checkpoint comes back
//! the youngest. Without the feature an assembly starts the history again
//! (every zone as old as the others, none hot): what GC's victim choice
//! and the placement by lifetime then lose is in `tests/gcsim.rs`
//! (`forget=`) and design.md.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::alloc::ZoneState;

/// A pool of one ZNS member, placement by lifetime on, the history kept
/// or not.
fn world(name: &str, history: bool) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(40)]);
    w.zone_history_pct = if history { 100 } else { 0 };
    w.separate_pct = 100;
    w.format();
    w
}

/// The history of the full data zones: (zone, clock, hot).
fn full_zones(p: &P) -> Vec<(u32, u64, bool)> {
    (0..p.geom().nr_zones())
        .filter_map(|z| {
            let zi = p.alloc().zone(z)?;
            (zi.state() == ZoneState::Full).then_some((z, zi.seq(), zi.hot()))
        })
        .collect()
}

/// The data zones holding data (open, closed or full): those a checkpoint
/// lists.
fn zones_with_data(w: &World) -> Vec<u32> {
    let p = w.pool_ref();
    (0..p.geom().nr_zones())
        .filter(|&z| {
            p.alloc().zone(z).is_some_and(|zi| {
                matches!(
                    zi.state(),
                    ZoneState::Open(_) | ZoneState::Closed | ZoneState::Full
                )
            })
        })
        .collect()
}

/// Overwrites a small hot range many times and a cold range once, so that
/// zones fill with both and the placement by lifetime sends the hot
/// range's rewrites to the hot stream; then a checkpoint.
fn age_the_pool(w: &mut World) {
    w.create_volume(1, b"v", 4000);
    for lba in (0..3000).step_by(8) {
        w.write_exact(1, lba, 8);
    }
    for round in 0..40 {
        for lba in (0..64).step_by(4) {
            w.write_exact(1, lba, 4);
        }
        if round % 8 == 0 {
            assert!(w.commit(false), "commit");
        }
    }
    assert!(w.commit(false), "commit");
    w.checkpoint_now();
}

/// Every zone of `before` is full in `after` with the same history.
fn same_history(before: &[(u32, u64, bool)], after: &[(u32, u64, bool)]) {
    for b in before {
        let a = after
            .iter()
            .find(|a| a.0 == b.0)
            .unwrap_or_else(|| panic!("zone {} not full after assembly", b.0));
        assert_eq!(a, b, "zone {}: history before {b:?}, after {a:?}", b.0);
    }
}

#[test]
fn placement_history_survives_a_power_cut() {
    let mut w = world("placement_history_survives_a_power_cut", true);
    age_the_pool(&mut w);
    let before = full_zones(w.pool_ref());
    let listed = zones_with_data(&w);
    let clock = w.pool_ref().alloc().clock();
    let life = w.pool_ref().life_avg();
    assert!(before.len() >= 4, "full zones: {before:?}");
    assert!(before.iter().any(|z| z.2), "no hot zone: {before:?}");
    assert!(before.iter().any(|z| !z.2), "no cold zone: {before:?}");
    assert!(
        before.windows(2).any(|p| p[0].1 != p[1].1),
        "zones of one age: {before:?}"
    );
    assert!(life > 0);
    // Zones partly written at the checkpoint (open: it lists them with the
    // clock of their allocation then).
    let open_then: Vec<(u32, u64)> = (0..w.pool_ref().geom().nr_zones())
        .filter_map(|z| {
            let zi = w.pool_ref().alloc().zone(z)?;
            matches!(zi.state(), ZoneState::Open(_)).then_some((z, zi.wp()))
        })
        .collect();
    // Zones first written after the checkpoint (in the journal only): the
    // checkpoint does not list them.
    let at = 3000;
    for lba in (at..at + 600).step_by(8) {
        w.write_exact(1, lba, 8);
    }
    assert!(w.commit(false), "commit");
    let mut later: Vec<u32> = zones_with_data(&w)
        .into_iter()
        .filter(|z| !listed.contains(z))
        .collect();
    assert!(!later.is_empty(), "no zone written after the checkpoint");
    // And the open ones written on after it: their history in the
    // checkpoint is not their last write's any more.
    let continued: Vec<u32> = open_then
        .iter()
        .filter(|&&(z, wp)| w.pool_ref().alloc().zone(z).is_some_and(|zi| zi.wp() > wp))
        .map(|&(z, _)| z)
        .collect();
    assert!(
        !continued.is_empty(),
        "no open zone written on: {open_then:?}"
    );
    later.extend(&continued);

    // The engine as assembly leaves it (before the model's checks, which
    // write again).
    w.crash();
    let (p, ..) = w.try_recover().expect("assembly");
    let after = full_zones(&p);
    same_history(&before, &after);
    assert!(
        p.alloc().clock() >= clock,
        "clock {} < {clock}",
        p.alloc().clock()
    );
    assert_eq!(p.life_avg(), life);
    for z in later {
        let zi = p.alloc().zone(z).expect("zone");
        assert!(
            zi.seq() >= clock,
            "zone {z} written after the checkpoint is not among the youngest: {} < {clock}",
            zi.seq()
        );
    }
}

#[test]
fn without_the_feature_the_history_starts_again() {
    let mut w = world("without_the_feature_the_history_starts_again", false);
    age_the_pool(&mut w);
    let before = full_zones(w.pool_ref());
    let clock = w.pool_ref().alloc().clock();
    assert!(before.iter().any(|z| z.1 > 0), "no zone with a clock");
    w.crash();
    let (p, ..) = w.try_recover().expect("assembly");
    let after = full_zones(&p);
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|&(_, seq, hot)| seq == 0 && !hot),
        "history kept without the feature: {after:?}"
    );
    assert!(clock > 0);
    assert_eq!(p.alloc().clock(), 0);
    assert_eq!(p.life_avg(), 0);
}

/// The zones whose history changed since the last checkpoint: holding
/// data, written at or after clock `since`.
fn written_since(p: &P, since: u64) -> Vec<u32> {
    (0..p.geom().nr_zones())
        .filter(|&z| {
            p.alloc().zone(z).is_some_and(|zi| {
                zi.seq() >= since
                    && matches!(
                        zi.state(),
                        ZoneState::Open(_) | ZoneState::Closed | ZoneState::Full
                    )
            })
        })
        .collect()
}

/// Writes `n` blocks from `lba` on, commits and takes a checkpoint: every
/// checkpoint since the writes (the commit may have been one too, when the
/// journal's log zone filled) must be a delta. Returns the history records
/// they wrote and the zones written since the checkpoint before.
fn delta_after_writes(w: &mut World, lba: u64, n: u64) -> (u64, Vec<u32>) {
    let s0 = w.pool_ref().stats();
    let since = w.pool_ref().alloc().clock();
    for l in (lba..lba + n).step_by(4) {
        w.write_exact(1, l, 4);
    }
    assert!(w.commit(false), "commit");
    let written = written_since(w.pool_ref(), since);
    w.checkpoint_now();
    let s1 = w.pool_ref().stats();
    assert!(
        s1.delta_checkpoints > s0.delta_checkpoints
            && s1.checkpoints - s0.checkpoints == s1.delta_checkpoints - s0.delta_checkpoints,
        "not deltas: {s0:?} -> {s1:?}"
    );
    (s1.zone_history_records - s0.zone_history_records, written)
}

/// A delta lists only the zones written since the checkpoint before it
/// (its size follows what changed, not the pool's size), and the chain
/// (the full checkpoint, then each delta over it) still restores every
/// zone's history after a power cut.
#[test]
fn deltas_list_what_changed_and_the_chain_restores_all() {
    let mut w = world("deltas_list_what_changed_and_the_chain_restores_all", true);
    age_the_pool(&mut w);
    // After assembly checkpoints until a delta follows (a full one first
    // unless the assembly kept the chain).
    w.crash_and_recover();
    for k in 0..8 {
        w.write_exact(1, 100 + k, 1);
        assert!(w.commit(false), "commit");
        w.checkpoint_now();
        if w.pool_ref().stats().delta_checkpoints > 0 {
            break;
        }
    }
    assert!(w.pool_ref().stats().delta_checkpoints > 0, "no delta");
    let holding = zones_with_data(&w).len();
    for (lba, n) in [(3000, 240), (3300, 40), (200, 320)] {
        let (records, written) = delta_after_writes(&mut w, lba, n);
        assert!(!written.is_empty());
        assert_eq!(
            records,
            written.len() as u64,
            "delta history of {records} zones, {} written since the last checkpoint ({written:?})",
            written.len()
        );
        assert!(
            written.len() * 3 < holding,
            "{} of {holding} zones written: the test needs a delta smaller than the whole",
            written.len()
        );
    }
    let before = full_zones(w.pool_ref());
    let clock = w.pool_ref().alloc().clock();
    let life = w.pool_ref().life_avg();
    assert!(before.iter().any(|z| z.2) && before.iter().any(|z| !z.2));
    w.crash();
    let (p, asm, ..) = w.try_recover().expect("assembly");
    assert!(
        asm.delta_checkpoints >= 3,
        "deltas loaded: {}",
        asm.delta_checkpoints
    );
    let after = full_zones(&p);
    same_history(&before, &after);
    assert_eq!(p.alloc().clock(), clock);
    assert_eq!(p.life_avg(), life);
}
