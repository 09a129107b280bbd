// SPDX-License-Identifier: GPL-2.0
//! Space rules (`zvcore::pool::quota`): quotas, reservations and the pool
//! reserve refuse exactly the writes they should, for the volume concerned
//! only, with writes in flight counted, and follow deletes and snapshots.
//! The verifier runs after each scenario (the rules never change what is
//! mapped).
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::geom::Stream;
use zvcore::pool::quota::SpaceRules;

/// One ZNS member of 24 zones of 200 blocks.
fn world(name: &str) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(24)]);
    // No checkpoints in steps: their random writes between the steps would
    // change what the volumes map.
    w.stepped_pct = 0;
    // Only checkpoints that are due: a test counts them.
    w.explicit_ckpt_pct = 0;
    w.format();
    w
}

fn create(w: &mut World, id: u32, size: u64) {
    w.create_volume(id, b"v", size);
}

fn discard(w: &mut World, vol: u32, lba: u64, n: u64) {
    w.pool().discard(vol, lba, n).expect("discard");
    for k in 0..n {
        w.complete(vol, lba + k, 0);
    }
}

/// Writes `[lba, lba + n)` of `vol` in writes of at most 16 blocks,
/// committing as the record queue asks; the first refusal, if any, and the
/// blocks written before it.
fn fill(w: &mut World, vol: u32, lba: u64, n: u64) -> (u64, Option<Error>) {
    let mut done = 0;
    while done < n {
        match w.write_checked(vol, lba + done, (n - done).min(16)) {
            Ok(k) => done += k,
            Err(Error::Busy) => while !w.commit(false) {},
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// Sets the rules of `vol`, and in the model (checked after each recovery)
/// when they are set.
fn set_rules(w: &mut World, vol: u32, r: SpaceRules) -> Result<(), Error> {
    w.pool().set_space_rules(vol, r)?;
    if let Some(m) = w.vols.iter_mut().find(|m| m.id == vol) {
        m.rules = r;
    }
    Ok(())
}

fn rules(quota: u64, reserve: u64) -> SpaceRules {
    SpaceRules { quota, reserve }
}

#[test]
fn quota_stops_its_volume_at_the_limit_and_only_it() {
    let mut w = world("quota-limit");
    create(&mut w, 1, 2000);
    create(&mut w, 2, 2000);
    set_rules(&mut w, 1, rules(100, 0)).expect("quota");
    assert_eq!(fill(&mut w, 1, 0, 100), (100, None));
    assert_eq!(
        fill(&mut w, 1, 100, 1),
        (0, Some(Error::Quota)),
        "one block past the quota"
    );
    // Overwrites of mapped blocks never grow the volume.
    assert_eq!(fill(&mut w, 1, 0, 100), (100, None));
    // A write that maps a new block in its range is refused whole.
    assert_eq!(fill(&mut w, 1, 90, 11).1, Some(Error::Quota));
    // The other volume is not limited.
    assert_eq!(fill(&mut w, 2, 0, 300), (300, None));
    // A discard makes room again.
    discard(&mut w, 1, 0, 10);
    assert_eq!(fill(&mut w, 1, 100, 10), (10, None));
    assert_eq!(fill(&mut w, 1, 110, 1).1, Some(Error::Quota));
    // Taking the quota off ends the refusals.
    set_rules(&mut w, 1, rules(0, 0)).expect("no quota");
    assert_eq!(fill(&mut w, 1, 110, 50), (50, None));
    w.run_verify("quota");
}

#[test]
fn snapshots_do_not_count_against_the_quota() {
    let mut w = world("quota-snap");
    create(&mut w, 1, 2000);
    set_rules(&mut w, 1, rules(64, 0)).expect("quota");
    assert_eq!(fill(&mut w, 1, 0, 64), (64, None));
    w.pool().snap_create(1, 2, b"s").expect("snapshot");
    let m = w.vols[0].copy_as(2, true);
    w.vols.push(m);
    // Every block overwritten: the snapshot now holds 64 blocks of its
    // own, the volume still maps 64.
    assert_eq!(fill(&mut w, 1, 0, 64), (64, None));
    assert_eq!(fill(&mut w, 1, 64, 1).1, Some(Error::Quota));
    // A snapshot takes no rules.
    assert_eq!(set_rules(&mut w, 2, rules(10, 0)), Err(Error::ReadOnly));
    w.run_verify("snapshot");
}

#[test]
fn writes_in_flight_cannot_pass_the_quota_together() {
    let mut w = world("quota-flight");
    create(&mut w, 1, 2000);
    set_rules(&mut w, 1, rules(40, 0)).expect("quota");
    let a = w
        .pool()
        .write_begin(1, 0, 30, Stream::UserHot)
        .expect("first plan");
    assert_eq!(
        w.pool().write_begin(1, 100, 20, Stream::UserHot).err(),
        Some(Error::Quota),
        "30 pending + 20 > 40"
    );
    // Given up: its blocks are no longer pending.
    w.pool().write_failed(&a);
    assert_eq!(fill(&mut w, 1, 100, 40), (40, None));
    assert_eq!(fill(&mut w, 1, 0, 1).1, Some(Error::Quota));
    w.run_verify("in flight");
}

#[test]
fn a_reservation_keeps_space_others_cannot_take() {
    let mut w = world("quota-reserve");
    create(&mut w, 1, 4000);
    create(&mut w, 2, 4000);
    let before = w.pool_ref().space_report();
    assert!(before.available > 1000, "{before:?}");
    w.pool()
        .set_space_rules(1, rules(0, 600))
        .expect("reservation");
    let r = w.pool_ref().space_report();
    assert_eq!(r.reserved, 600);
    assert_eq!(r.available, before.available - 600);
    // Volume 2 fills what is left, then is refused (for it only: the pool
    // is not full, nothing waits for GC).
    let (got, err) = fill(&mut w, 2, 0, 4000);
    assert_eq!(err, Some(Error::Reserved));
    assert!(
        got + 16 > before.available - 600 && got <= before.available - 600,
        "volume 2 wrote {got} of {} available",
        before.available - 600
    );
    // Volume 1 writes its whole reservation, the last 48 blocks in three
    // writes in flight at once (their blocks are live from planning: not
    // to be counted twice).
    assert_eq!(fill(&mut w, 1, 0, 552), (552, None));
    let plans: Vec<_> = (0..3u64)
        .map(|k| {
            w.pool()
                .write_begin(1, 552 + k * 16, 16, Stream::UserHot)
                .unwrap_or_else(|e| panic!("write {k} in flight: {e:?}"))
        })
        .collect();
    for p in &plans {
        w.pool().write_failed(p);
    }
    assert_eq!(fill(&mut w, 1, 552, 48), (48, None));
    assert_eq!(w.pool_ref().space_report().reserved, 0);
    // Past its reservation it shares the pool's fate.
    assert_eq!(fill(&mut w, 1, 600, 16).1, Some(Error::Reserved));
    // Overwrites go on for both.
    assert_eq!(fill(&mut w, 2, 0, 32), (32, None));
    assert_eq!(fill(&mut w, 1, 0, 32), (32, None));
    w.run_verify("reservation");
}

#[test]
fn a_reservation_the_pool_cannot_hold_is_refused_and_deletes_release_one() {
    let mut w = world("quota-refuse");
    create(&mut w, 1, 4000);
    create(&mut w, 2, 4000);
    create(&mut w, 3, 4000);
    let avail = w.pool_ref().space_report().available;
    assert_eq!(
        set_rules(&mut w, 1, rules(0, 4001)),
        Err(Error::Invalid("reservation above the volume size"))
    );
    assert_eq!(
        set_rules(&mut w, 1, rules(0, avail + 1)),
        Err(Error::NoSpace),
        "more than the pool has"
    );
    w.pool()
        .set_space_rules(1, rules(0, avail - 100))
        .expect("most");
    assert_eq!(set_rules(&mut w, 2, rules(0, 101)), Err(Error::NoSpace));
    w.pool()
        .set_space_rules(2, rules(0, 100))
        .expect("the rest");
    // A volume does not shrink below its reservation.
    assert_eq!(
        w.pool().vol_resize(2, 99),
        Err(Error::Invalid("shrink below the volume's reservation"))
    );
    w.pool()
        .vol_resize(2, 100)
        .expect("down to the reservation");
    w.vols
        .iter_mut()
        .find(|v| v.id == 2)
        .unwrap()
        .blocks
        .truncate(100);
    assert_eq!(w.pool_ref().space_report().available, 0);
    assert_eq!(fill(&mut w, 3, 0, 1).1, Some(Error::Reserved));
    // Deleting volume 1 gives its reservation back.
    w.complete_all();
    w.pool().vol_delete(1).expect("delete");
    w.vols.retain(|v| v.id != 1);
    assert_eq!(w.pool_ref().space_report().reserved, 100);
    assert_eq!(fill(&mut w, 3, 0, 200), (200, None));
    w.run_verify("deletes");
}

#[test]
fn the_pool_reserve_is_kept_from_every_volume() {
    let mut w = world("quota-pool");
    create(&mut w, 1, 4000);
    let full = w.pool_ref().space_report();
    assert_eq!(
        w.pool().set_pool_reserve_pct(51),
        Err(Error::Invalid("pool reserve above 50 %"))
    );
    w.pool().set_pool_reserve_pct(50).expect("50 %");
    let half = w.pool_ref().space_report();
    assert_eq!(half.capacity, full.capacity);
    assert_eq!(
        half.held_back,
        full.held_back + full.capacity / 2,
        "{full:?} {half:?}"
    );
    let (got, err) = fill(&mut w, 1, 0, 4000);
    assert_eq!(err, Some(Error::Reserved));
    assert!(got <= half.available && got + 16 > half.available);
    // Lowered: writes go on.
    w.pool().set_pool_reserve_pct(0).expect("off");
    assert_eq!(fill(&mut w, 1, got, 100), (100, None));
    w.run_verify("pool reserve");
}

/// Commits until the records queued are durable.
fn commit(w: &mut World) {
    while !w.commit(false) {}
}

fn rules_of(w: &mut World, vol: u32) -> Option<SpaceRules> {
    w.pool_ref().space_rules(vol)
}

#[test]
fn rules_are_metadata_journalled_then_checkpointed() {
    use zvcore::format::RO_COMPAT_RESERVATION;
    let mut w = world("quota-durable");
    create(&mut w, 1, 2000);
    create(&mut w, 2, 2000);
    create(&mut w, 3, 2000);
    commit(&mut w);
    assert_eq!(
        w.pool_ref().superblock().ro_compat & RO_COMPAT_RESERVATION,
        0
    );
    w.pool()
        .set_space_rules(1, rules(100, 50))
        .expect("rules 1");
    w.pool().set_space_rules(2, rules(0, 30)).expect("rules 2");
    // Not committed: lost with a power cut, as any volume operation.
    w.crash_and_recover();
    assert_eq!(rules_of(&mut w, 1), Some(rules(0, 0)));
    // The first commit after assembly is a checkpoint; the next ones are
    // journal commits.
    w.write_exact(1, 0, 1);
    commit(&mut w);
    let ckpts = w.pool_ref().stats().checkpoints;
    // Committed: replayed from the journal.
    set_rules(&mut w, 1, rules(100, 50)).expect("rules 1");
    set_rules(&mut w, 2, rules(0, 30)).expect("rules 2");
    set_rules(&mut w, 3, rules(7, 0)).expect("rules 3");
    commit(&mut w);
    assert_eq!(w.pool_ref().stats().checkpoints, ckpts, "a journal commit");
    w.crash_and_recover();
    assert_eq!(rules_of(&mut w, 1), Some(rules(100, 50)));
    assert_eq!(rules_of(&mut w, 2), Some(rules(0, 30)));
    assert_eq!(rules_of(&mut w, 3), Some(rules(7, 0)));
    assert_ne!(
        w.pool_ref().superblock().ro_compat & RO_COMPAT_RESERVATION,
        0,
        "the ro-compat feature is set"
    );
    assert_eq!(w.pool_ref().space_report().reserved, 49 + 30);
    assert_eq!(fill(&mut w, 3, 0, 8).1, Some(Error::Quota));
    // Changed, one taken off, one volume deleted; then a checkpoint holds
    // them (the journal before it is no longer read).
    set_rules(&mut w, 2, rules(0, 0)).expect("off");
    set_rules(&mut w, 1, rules(60, 10)).expect("change");
    w.complete_all();
    w.pool().vol_delete(3).expect("delete");
    w.vols.retain(|v| v.id != 3);
    w.checkpoint_now();
    assert!(fill(&mut w, 1, 0, 16).1.is_none());
    commit(&mut w);
    w.crash_and_recover();
    assert_eq!(rules_of(&mut w, 1), Some(rules(60, 10)));
    assert_eq!(rules_of(&mut w, 2), Some(rules(0, 0)));
    assert_eq!(rules_of(&mut w, 3), None);
    assert_eq!(w.pool_ref().space_report().reserved, 0, "1 maps 16 > 10");
    assert_eq!(fill(&mut w, 1, 16, 45).1, Some(Error::Quota));
    // Checkpoints after more writes (deltas where the pool has them) keep
    // them too.
    for k in 0..4 {
        assert!(fill(&mut w, 1, k * 4, 4).1.is_none());
        w.checkpoint_now();
    }
    w.crash_and_recover();
    assert_eq!(rules_of(&mut w, 1), Some(rules(60, 10)));
    w.run_verify("rules after recovery");
}

#[test]
fn a_read_only_pool_takes_no_rules() {
    let mut w = world("quota-ro");
    create(&mut w, 1, 2000);
    commit(&mut w);
    w.pool().set_read_only();
    assert_eq!(set_rules(&mut w, 1, rules(10, 0)), Err(Error::ReadOnly));
}
