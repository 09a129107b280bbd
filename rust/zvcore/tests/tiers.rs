// SPDX-License-Identifier: GPL-2.0
//! Tiering (`Pool::set_tiering`) on a pool of a fast member (ZNS) and a
//! slow one (SMR, slow by default): a cold volume written once and a hot
//! one overwritten over and over, with GC, commits and power cuts going
//! on. With tiering the hot volume's blocks stay on the fast member, the
//! cold volume ends on the slow one, and the fast member keeps free zones;
//! without it (the same operations) both volumes are spread over both.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::geom::DeviceGeometry;
use zvcore::pool::ReadRun;

const COLD: u64 = 6000;
const HOT: u64 = 400;

/// A ZNS member of `nr_zones` zones of 256 blocks (capacity 200), 8 open
/// and 10 active zones at most (the user streams, GC and metadata each
/// keep one open: with fewer, user writes find no zone slot there now and
/// then and go to the slow member, as they must).
fn zns(nr_zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        max_open: 8,
        max_active: 10,
        ..small_zns(nr_zones)
    }
}

/// Blocks of volume `vol` (of `size` blocks) on member `d`.
fn on_member(w: &World, vol: u32, size: u64, d: usize) -> u64 {
    let mut runs = [ReadRun::default(); 64];
    let mut lba = 0;
    let mut n = 0;
    while lba < size {
        let k = w
            .pool_ref()
            .read_plan(vol, lba, size - lba, &mut runs)
            .expect("read_plan");
        for r in &runs[..k] {
            if r.addr.is_some_and(|a| w.loc(a).0 == d) {
                n += r.len;
            }
            lba = r.lba + r.len;
        }
    }
    n
}

/// Per-mille of `part` in `whole`.
fn pm(part: u64, whole: u64) -> u64 {
    part * 1000 / whole.max(1)
}

/// Runs the workload with or without tiering; returns the per-mille of
/// the cold volume on the slow member at the end, the mean per-mille of
/// the hot one on the fast member right after it was written, and the
/// fast member's free zones at the end.
fn run(seed: u64, tiering: bool) -> (u64, u64, u32) {
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![zns(40), small_smr(40)]);
    w.format();
    w.pool().set_tiering(tiering).expect("tiering");
    assert!(w.pool_ref().member_class(1), "an SMR member is slow");
    for (id, size) in [(1u32, COLD), (2, HOT)] {
        w.pool().vol_create(id, b"v", size, 0).expect("vol_create");
        w.vols.push(VolModel::new(id, size));
    }
    w.next_vol = 3;
    for l in (0..COLD).step_by(16) {
        if let Err(e) = w.write_checked(1, l, 16.min(COLD - l)) {
            panic!("cold write at {l}: {e:?}");
        }
        if l % 256 == 0 {
            while !w.commit(false) {}
        }
    }
    while !w.commit(false) {}
    // Where the hot volume's fresh writes land (per-mille on the fast
    // member, right after each round's writes), summed over the rounds.
    let mut fresh = 0;
    const ROUNDS: u64 = 60;
    for round in 0..ROUNDS {
        for k in 0..HOT / 8 {
            w.write_exact(2, k * 8, 8);
            if k % 16 == 15 {
                while !w.commit(false) {}
            }
        }
        fresh += pm(on_member(&w, 2, HOT, 0), HOT);
        // GC as the driver's worker runs it: while it is wanted.
        for _ in 0..64 {
            if w.pool().gc_urgency() == zvcore::gc::Urgency::Idle || w.gc_batch() == 0 {
                break;
            }
            while !w.commit(false) {}
            w.maintenance();
        }
        while !w.commit(false) {}
        w.maintenance();
        if round % 20 == 19 {
            // Not persistent: the driver sets it again at assembly.
            w.crash_and_recover();
            w.pool().set_tiering(tiering).expect("tiering");
        }
    }
    w.run_verify("after the workload");
    let fresh = fresh / ROUNDS;
    let cold = pm(on_member(&w, 1, COLD, 1), COLD);
    let free = w.pool_ref().alloc().class_zones(false).0;
    eprintln!(
        "tiering {tiering}: fresh hot writes on fast {fresh} permille (mean), cold on slow {cold} permille, fast free zones {free}"
    );
    (cold, fresh, free)
}

#[test]
fn fresh_writes_go_fast_and_cold_data_goes_slow() {
    let seed = seed_from_env("tiers");
    let (cold, fresh, free) = run(seed, true);
    assert!(
        fresh >= 950,
        "fresh hot writes on the fast member: {fresh} permille"
    );
    // Demotion moves the cold volume's zones (the oldest) to the slow
    // member: most of it ends there (68-99 % over 550 seeds). Appended
    // copies used to land on the fast member again, leaving 13-25 % there
    // in about one run in five (CI, seed 0xdb5cfbe19c113b49).
    assert!(
        cold >= 600,
        "cold volume on the slow member: {cold} permille"
    );
    assert!(free > 2, "the fast member keeps free zones: {free}");
    // The same workload without tiering spreads the writes.
    let (_, fresh0, _) = run(seed, false);
    // (Up to 836 over 550 seeds: the ZNS member takes the appends while
    // it has room; well apart from tiering's 950 or more.)
    assert!(
        fresh0 <= 900,
        "without tiering fresh hot writes on the fast member: {fresh0} permille"
    );
}

#[test]
fn tiering_needs_both_classes_and_follows_the_classes_set() {
    let seed = seed_from_env("tiers-classes");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![zns(40), zns(40)]);
    w.format();
    w.pool().set_tiering(true).expect("tiering");
    assert!(
        !w.pool_ref().alloc().tiering(),
        "two fast members: no tiers"
    );
    assert!(!w.pool_ref().tier_demoting());
    w.pool().set_member_class(1, true).expect("member class");
    assert!(w.pool_ref().member_class(1));
    assert!(w.pool_ref().alloc().tiering(), "a member set slow");
    assert!(w.pool().set_member_class(2, true).is_err(), "no member 2");
    // New data goes to the fast member while it has room.
    w.pool().vol_create(1, b"v", 1000, 0).expect("vol_create");
    w.vols.push(VolModel::new(1, 1000));
    w.next_vol = 2;
    for l in (0..1000).step_by(8) {
        w.write_exact(1, l, 8);
    }
    while !w.commit(false) {}
    assert_eq!(
        on_member(&w, 1, 1000, 0),
        1000,
        "all of it on the fast member"
    );
    w.pool().set_tiering(false).expect("tiering");
    assert!(!w.pool_ref().alloc().tiering());
}

#[test]
fn tmp_sizes() {
    eprintln!(
        "Pool {} PoolStats {} Allocator {} Superblock {} Assembly {} PoolConfig {}",
        std::mem::size_of::<P>(),
        std::mem::size_of::<zvcore::pool::PoolStats>(),
        std::mem::size_of::<
            zvcore::alloc::Allocator<
                Vec<DeviceGeometry>,
                Vec<zvcore::alloc::ZoneInfo>,
                Vec<zvcore::alloc::DevState>,
            >,
        >(),
        std::mem::size_of::<zvcore::format::Superblock>(),
        std::mem::size_of::<zvcore::recovery::Assembly>(),
        std::mem::size_of::<zvcore::pool::PoolConfig>()
    );
}
