// SPDX-License-Identifier: GPL-2.0
//! A member added to a running pool (`Pool::member_add`):
//! - a power cut at every operation of the commit that adds it leaves a
//!   pool that assembles with every flushed write: with the new member
//!   once the journal member's superblock names it (the commit point) or
//!   whenever the new device has its superblock and is given, without it
//!   otherwise;
//! - nothing is placed on the new member before that commit, and data is
//!   placed there after it;
//! - the engine refuses an add while its superblock or a checkpoint is due
//!   first, and an invalid member, changing nothing.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::format::layout::{copies_phase_blocks, log_zone};
use zvcore::format::policy::Placement;
use zvcore::geom::{DeviceGeometry, PoolGeometry, META_ZONES_PER_DEV};

/// A small ZNS member.
fn zns(nr_zones: u32) -> DeviceGeometry {
    small_zns(nr_zones)
}

const VOL_BLOCKS: u64 = 1500;

/// A pool of `members` ZNS members with volume 1 written once and
/// committed.
fn world(name: &str, members: usize) -> World {
    world_of(name, members, 24)
}

/// [`world`] with members of `zones` zones.
fn world_of(name: &str, members: usize, zones: u32) -> World {
    world_seeded(seed_from_env(name), members, zones)
}

/// [`world_of`] from `seed`: worlds of one seed make the same choices (the
/// format's features) and operations.
fn world_seeded(seed: u64, members: usize, zones: u32) -> World {
    world_set(seed, members, zones, |_| {})
}

/// [`world_seeded`], with `set` changing the world's knobs before it is
/// formatted.
fn world_set(seed: u64, members: usize, zones: u32, set: impl FnOnce(&mut World)) -> World {
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![zns(zones); members]);
    set(&mut w);
    w.format();
    w.pool()
        .vol_create(1, b"v", VOL_BLOCKS, 0)
        .expect("vol_create");
    w.vols.push(VolModel::new(1, VOL_BLOCKS));
    w.next_vol = 2;
    for l in (0..VOL_BLOCKS).step_by(8) {
        w.write_exact(1, l, 8);
    }
    while !w.commit(false) {}
    w
}

/// Writes the whole volume `rounds` times, committing (GC keeps up).
fn overwrite(w: &mut World, rounds: u64) {
    for r in 0..rounds {
        for l in (0..VOL_BLOCKS).step_by(16) {
            w.write_exact(1, (l + r * 5) % (VOL_BLOCKS - 16), 16);
        }
        w.gc_until_free(0);
        while !w.commit(false) {}
    }
}

/// Pool addresses of block 0 of the journal member's log zones.
fn journal_sb_addrs(w: &World) -> [u64; 2] {
    let geo = PoolGeometry::new(w.geoms.clone()).expect("geometry");
    [0, 1].map(|i| {
        let z = log_zone(&geo, 0, i).expect("log zone");
        geo.zone_start(z).expect("zone start")
    })
}

/// Adds a member and plans the commit that makes it part of the pool.
fn add_and_plan(w: &mut World) -> Vec<OwnedOp> {
    w.add_member_retrying(zns(20)).expect("member_add");
    let (r, ops) = w.meta_call(|p, s, mut sink| p.flush(s, &mut sink));
    r.expect("flush");
    ops
}

#[test]
fn add_member_survives_a_power_cut_anywhere() {
    let n = 2usize;
    // One seed for every world: the cases below cut the probe's
    // operations at each index.
    let seed = seed_from_env("members-cut");
    let mut probe = world_seeded(seed, n, 24);
    let ops = add_and_plan(&mut probe);
    let new_base = probe.bases[n];
    let jsb = journal_sb_addrs(&probe);
    let commit_at = ops
        .iter()
        .position(|o| o.kind == 3 && jsb.contains(&o.addr))
        .expect("the journal member's superblock is written");
    let new_sb_at = ops
        .iter()
        .position(|o| o.kind == 3 && o.addr >= new_base)
        .expect("the new member's superblock is written");
    assert!(
        new_sb_at < commit_at,
        "the new member's superblock comes before the commit point"
    );
    let mut cases = 0;
    for k in 0..=ops.len() {
        // With every device present, then (where it makes a difference)
        // without the new one, as an assembly from an old device list.
        for without_new in [false, true] {
            let mut w = world_seeded(seed, n, 24);
            let ops = add_and_plan(&mut w);
            let done = w.exec(&ops, Some(k).filter(|k| *k < ops.len()));
            if done {
                w.pool().flush_end(true).expect("flush_end");
                assert!(!w.pool_ref().member_pending(), "membership committed");
            }
            w.crash();
            let has_sb = w.has_pool_sb(n);
            if without_new && (k > commit_at || !has_sb) {
                // The pool needs it / nothing names it: a case below.
                continue;
            }
            if without_new || !has_sb {
                w.drop_last_device();
            }
            w.recover_pool();
            let want = if w.devs.len() > n { n + 1 } else { n };
            assert_eq!(w.nr_members(), want, "members after a cut at op {k}");
            assert!(
                k <= commit_at || want == n + 1,
                "the commit point passed, the member is in the pool"
            );
            // New data goes to the new member if it is one, and survives
            // another power cut.
            overwrite(&mut w, 3);
            if want == n + 1 {
                assert!(
                    w.member_valid_blocks(n) > 0,
                    "no data on the new member after a cut at op {k}"
                );
            }
            w.crash_and_recover();
            assert_eq!(w.nr_members(), want);
            cases += 1;
        }
    }
    assert!(cases > ops.len(), "both device lists were tried");
}

#[test]
fn the_new_member_takes_data_only_after_its_commit() {
    let n = 1usize;
    let mut w = world("members-fence", n);
    let cap_before = w.pool_ref().geom().data_capacity_blocks();
    w.add_member(zns(20)).expect("member_add");
    assert!(w.pool_ref().member_pending());
    assert!(
        w.pool_ref().geom().data_capacity_blocks() > cap_before,
        "capacity grows"
    );
    // Writes before the commit land on the old member only.
    for l in (0..VOL_BLOCKS).step_by(16) {
        w.write_exact(1, l, 16);
    }
    assert_eq!(
        w.member_valid_blocks(n),
        0,
        "data placed on a fenced member"
    );
    // No checkpoint while the member is pending.
    let (r, ops) = w.meta_call(|p, s, mut sink| p.checkpoint_begin(s, &mut sink));
    assert_eq!(
        r,
        Err(Error::Busy),
        "checkpoint before the membership commit"
    );
    assert!(ops.is_empty());
    while !w.commit(false) {}
    assert!(!w.pool_ref().member_pending());
    overwrite(&mut w, 2);
    assert!(w.member_valid_blocks(n) > 0, "no data on the new member");
    w.run_verify("after the add");
    w.crash_and_recover();
    assert_eq!(w.nr_members(), n + 1);
}

#[test]
fn member_add_refusals_change_nothing() {
    let n = 1usize;
    let mut w = world("members-refuse", n);
    let sb_before = w.pool_ref().superblock().generation;
    let zones_before = w.pool_ref().geom().nr_zones();
    // Metadata zones differ from the pool's.
    let mut g = zns(20);
    g.meta_zones = META_ZONES_PER_DEV + 2;
    let bad = zvcore::pool::Grown {
        geoms: vec![w.geoms[0], g],
        zones: vec![Default::default(); (24 + 20) as usize],
        zone_epochs: vec![0; (24 + 20) as usize],
        devs: vec![zvcore::alloc::DevState::EMPTY; 2],
    };
    assert!(w.pool().member_add([9; 16], bad).is_err());
    // A device UUID already in the pool.
    let dup = zvcore::pool::Grown {
        geoms: vec![w.geoms[0], zns(20)],
        zones: vec![Default::default(); (24 + 20) as usize],
        zone_epochs: vec![0; (24 + 20) as usize],
        devs: vec![zvcore::alloc::DevState::EMPTY; 2],
    };
    assert!(w.pool().member_add(member_uuid(0), dup).is_err());
    // Zone table of the wrong size.
    let short = zvcore::pool::Grown {
        geoms: vec![w.geoms[0], zns(20)],
        zones: vec![Default::default(); 24],
        zone_epochs: vec![0; 24],
        devs: vec![zvcore::alloc::DevState::EMPTY; 2],
    };
    assert!(w.pool().member_add([9; 16], short).is_err());
    assert_eq!(w.pool_ref().superblock().generation, sb_before);
    assert_eq!(w.pool_ref().geom().nr_zones(), zones_before);
    assert!(!w.pool_ref().member_pending());
    // A second add before the first one's commit: busy.
    w.add_member_retrying(zns(20)).expect("member_add");
    assert_eq!(w.add_member(zns(20)), Err(Error::Busy));
    while !w.commit(false) {}
    // After a power cut: busy while a checkpoint is due (a torn journal)
    // or the journal, gone on in its log zone, cannot switch zones yet
    // (the other one not covered): a checkpoint, then it is taken.
    w.crash();
    w.recover_pool();
    w.run_verify("after recovery");
    assert_eq!(w.nr_members(), n + 1);
    let due = w.pool_ref().needs_checkpoint();
    match w.add_member(zns(16)) {
        Ok(()) => assert!(!due, "a member added with a checkpoint due"),
        Err(e) => {
            assert_eq!(e, Error::Busy, "before the checkpoint");
            w.checkpoint_now();
            w.add_member(zns(16))
                .expect("a third member after the checkpoint");
        }
    }
    while !w.commit(false) {}
    w.crash_and_recover();
    assert_eq!(w.nr_members(), n + 2);
}

#[test]
fn a_stale_device_of_an_interrupted_add_is_refused_not_guessed() {
    let n = 1usize;
    let mut w = world("members-stale", n);
    let ops = add_and_plan(&mut w);
    let jsb = journal_sb_addrs(&w);
    let commit_at = ops
        .iter()
        .position(|o| o.kind == 3 && jsb.contains(&o.addr))
        .expect("commit point");
    // The power goes after the new device got its superblock, before the
    // journal member's: the pool assembles from the old device alone.
    assert!(!w.exec(&ops, Some(commit_at)));
    w.crash();
    assert!(w.has_pool_sb(n), "the new device has the new superblock");
    let stale = (w.devs.pop().unwrap(), w.geoms.pop().unwrap());
    let (b, z) = (w.bases.pop().unwrap(), w.zone_first.pop().unwrap());
    w.recover_pool();
    assert_eq!(w.nr_members(), n);
    // The pool changes its superblock since: a snapshot sets the
    // shared-blocks feature (the same generation the stale copy has).
    let gen = w.pool_ref().superblock().generation;
    w.pool().snap_create(1, 2, b"s").expect("snapshot");
    let m = w.vols[0].copy_as(2, true);
    w.vols.push(m);
    // Committed until it is on disk (the first commit after a recovery is
    // a checkpoint, which writes no superblock).
    for _ in 0..10 {
        w.write_exact(1, 0, 1);
        while !w.commit(false) {}
        if !w.pool_ref().superblock_dirty() {
            break;
        }
    }
    assert!(!w.pool_ref().superblock_dirty(), "superblock written");
    assert_eq!(w.pool_ref().superblock().generation, gen + 1);
    // Both devices given: two different superblocks of one generation.
    w.crash();
    w.devs.push(stale.0);
    w.geoms.push(stale.1);
    w.bases.push(b);
    w.zone_first.push(z);
    match w.try_recover() {
        Err(Error::Corrupt(s)) => assert!(s.contains("different members"), "{s}"),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("a pool assembled from superblocks that disagree"),
    }
    // Without the stale device the pool is intact, sharing included.
    w.drop_last_device();
    w.recover_pool();
    assert!(w.pool_ref().sharing());
}

/// Runs GC, commits and zone maintenance, with some user writes, until the
/// evacuation is done (at most `rounds` batches); returns the batches run.
fn evacuate_fully(w: &mut World, rounds: usize) -> usize {
    for i in 0..rounds {
        let e = w.pool_ref().evacuation().expect("an evacuation");
        if e.left_blocks == 0 {
            return i;
        }
        if i % 4 == 0 {
            w.write_exact(1, (i as u64 * 7) % (VOL_BLOCKS - 4), 4);
        }
        w.gc_batch();
        while !w.commit(false) {}
        w.maintenance();
    }
    panic!(
        "evacuation not done after {rounds} batches: {:?}",
        w.pool_ref().evacuation()
    );
}

#[test]
fn evacuation_moves_every_live_block_off_the_member() {
    let n = 2usize;
    let mut w = world("members-evac", n);
    overwrite(&mut w, 2);
    let live = w.member_valid_blocks(1);
    assert!(live > 0, "the member to evacuate holds data");
    w.pool().evacuate(Some(1)).expect("evacuate");
    let e = w.pool_ref().evacuation().expect("evacuation");
    assert_eq!((e.member, e.start_blocks), (1, live));
    // GC runs for it although free space is plentiful.
    assert_ne!(w.pool_ref().gc_urgency(), zvcore::gc::Urgency::Idle);
    let batches = evacuate_fully(&mut w, 5000);
    assert_eq!(
        w.member_valid_blocks(1),
        0,
        "live blocks left on the member"
    );
    eprintln!("members-evac: {live} blocks moved in {batches} GC batches");
    // New writes keep off it until the evacuation is cancelled.
    overwrite(&mut w, 1);
    assert_eq!(
        w.member_valid_blocks(1),
        0,
        "new data on an evacuated member"
    );
    w.run_verify("after the evacuation");
    // Every block reads back after a power cut (the recovery checks them).
    // The evacuation is kept on disk: the re-assembled pool resumes it.
    w.crash_and_recover();
    let e = w.pool_ref().evacuation().expect("evacuation resumed");
    assert_eq!((e.member, e.left_blocks), (1, 0));
    assert_eq!(w.pool_ref().alloc().evacuating(), 0b10);
    overwrite(&mut w, 1);
    assert_eq!(w.member_valid_blocks(1), 0, "new data on it after assembly");
    // Cancelled and committed: the next assembly uses it again.
    w.pool().evacuate(None).expect("cancel");
    while !w.commit(false) {}
    w.crash_and_recover();
    assert_eq!(w.pool_ref().evacuation(), None, "cancel kept");
    overwrite(&mut w, 2);
    assert!(w.member_valid_blocks(1) > 0, "the member takes data again");
}

#[test]
fn evacuation_refusals_and_cancel() {
    let mut one = world("members-evac-one", 1);
    assert!(matches!(
        one.pool().evacuate(Some(0)),
        Err(Error::Invalid(_))
    ));
    let mut w = world("members-evac-refuse", 2);
    assert!(matches!(w.pool().evacuate(Some(2)), Err(Error::Invalid(_))));
    // Fill the pool so that one member's data cannot fit on the other.
    let big = w.data_capacity() * 3 / 4;
    w.pool().vol_create(2, b"big", big, 0).expect("vol_create");
    w.vols.push(VolModel::new(2, big));
    for l in (0..big).step_by(32) {
        w.write_exact(2, l, 32.min(big - l));
        if l % 1024 == 0 {
            w.gc_until_free(0);
            while !w.commit(false) {}
        }
    }
    while !w.commit(false) {}
    let gen = w.pool_ref().superblock().generation;
    assert_eq!(w.pool().evacuate(Some(0)), Err(Error::NoSpace));
    assert_eq!(w.pool_ref().evacuation(), None);
    assert_eq!(w.pool_ref().alloc().evacuating(), 0, "nothing changed");
    // Free most of it: an evacuation fits, starts, is cancelled half way.
    // (Its writes complete first, as the kernel's delete waits for the
    // disk's I/O.)
    w.complete_all();
    w.pool().vol_delete(2).expect("delete");
    w.vols.retain(|v| v.id != 2);
    while !w.commit(false) {}
    w.pool().evacuate(Some(0)).expect("evacuate member 0");
    assert_eq!(
        w.pool().evacuate(Some(1)),
        Err(Error::Busy),
        "one at a time"
    );
    for _ in 0..3 {
        w.gc_batch();
        while !w.commit(false) {}
    }
    w.pool().evacuate(None).expect("cancel");
    assert_eq!(w.pool_ref().evacuation(), None);
    // Not a membership change: one superblock generation, for the
    // feature bit of the first policy record.
    assert_eq!(w.pool_ref().superblock().generation, gen + 1);
    assert_ne!(
        w.pool_ref().superblock().incompat & zvcore::format::INCOMPAT_PLACEMENT,
        0
    );
    overwrite(&mut w, 2);
    assert!(w.member_valid_blocks(0) > 0, "member 0 takes data again");
    w.run_verify("after the cancel");
}

#[test]
fn migration_moves_a_volume_and_keeps_its_sharing() {
    let mut w = world("members-migrate", 3);
    overwrite(&mut w, 1);
    // A snapshot and a clone of it share the volume's blocks.
    w.pool().snap_create(1, 2, b"s").expect("snapshot");
    let m = w.vols[0].copy_as(2, true);
    w.vols.push(m);
    w.pool().clone_volume(2, 3, b"c").expect("clone");
    let m = w.vols[1].copy_as(3, false);
    w.vols.push(m);
    w.next_vol = 4;
    for l in (0..VOL_BLOCKS).step_by(64) {
        w.write_exact(1, l, 8);
    }
    while !w.commit(false) {}
    let before: Vec<u64> = (0..3).map(|d| w.vol_blocks_on(1, d)).collect();
    assert!(
        before[0] > 0 && before[1] > 0,
        "spread over members: {before:?}"
    );
    // Blocks the volume shares with its snapshot.
    let shared: Vec<u64> = (0..VOL_BLOCKS)
        .filter(|l| w.addr_of(1, *l).is_some() && w.addr_of(1, *l) == w.addr_of(2, *l))
        .collect();
    assert!(!shared.is_empty());
    assert_eq!(
        w.pool().migrate(Some((2, Placement::Members(0b100)))),
        Err(Error::Invalid("migrate: a snapshot"))
    );
    assert_eq!(
        w.pool().migrate(Some((1, Placement::Members(0b1000)))),
        Err(Error::Invalid("migrate: members"))
    );
    w.pool()
        .migrate(Some((1, Placement::Members(0b100))))
        .expect("migrate to member 2");
    // Versions of the volume's blocks now: those written meanwhile (here,
    // and by the harness's races with GC) differ after.
    let vers = |w: &World| -> Vec<u64> {
        w.vols
            .iter()
            .flat_map(|v| v.blocks.iter().map(|b| b.cur))
            .collect()
    };
    let v0 = vers(&w);
    for i in 0..4000 {
        if w.pool_ref().migration().expect("migration").done {
            break;
        }
        if i % 3 == 0 {
            w.write_exact(1, (i as u64 * 13) % (VOL_BLOCKS - 2), 2);
        }
        w.gc_batch();
        while !w.commit(false) {}
        w.maintenance();
    }
    let m = w.pool_ref().migration().expect("migration");
    assert!(m.done, "migration not done: {m:?}");
    assert!(m.moved_blocks > 0);
    assert_eq!(
        w.vol_blocks_on(1, 0) + w.vol_blocks_on(1, 1),
        0,
        "blocks left behind"
    );
    assert!(w.vol_blocks_on(1, 2) > 0);
    // What the volume shared with its snapshot (and so its clone) and did
    // not overwrite meanwhile moved once, for all of them: still shared.
    let v1 = vers(&w);
    // (Volumes 1, 2 and 3 are `vols[0..3]`, each `VOL_BLOCKS` long.)
    let at = |v: &[u64], k: u64, l: u64| v[(k * VOL_BLOCKS + l) as usize];
    let same = |l: u64| (0..3).all(|k| at(&v0, k, l) == at(&v1, k, l));
    let kept = shared.iter().filter(|l| same(**l));
    for &l in kept {
        let a = w.addr_of(1, l);
        assert_eq!(
            a,
            w.addr_of(2, l),
            "lba {l}: the snapshot no longer shares it"
        );
        assert_eq!(a, w.addr_of(3, l), "lba {l}: the clone no longer shares it");
    }
    eprintln!(
        "members-migrate: moved {} blocks, {} shared blocks still shared",
        m.moved_blocks,
        shared.len()
    );
    w.run_verify("after the migration");
    // New writes of the volume stay on member 2 while the migration is set.
    for l in (0..VOL_BLOCKS).step_by(32) {
        w.write_exact(1, l, 4);
    }
    assert_eq!(w.vol_blocks_on(1, 0) + w.vol_blocks_on(1, 1), 0);
    while !w.commit(false) {}
    let on2: Vec<Option<u64>> = (0..VOL_BLOCKS).map(|l| w.addr_of(1, l)).collect();
    w.pool().migrate(None).expect("end");
    while !w.commit(false) {}
    // After a power cut the pool assembles with the volume where it moved
    // (checked before the harness's own post-recovery work, which writes),
    // its placement ended.
    w.crash();
    let (p, _, _, _) = w.try_recover().expect("recovery");
    assert_eq!(p.migration(), None, "no walk before resume_policies");
    assert_eq!(p.volume(1).map(|v| v.place), Some(Placement::Any));
    let t = p
        .volumes()
        .iter()
        .find(|v| v.id == 1 && v.table.is_some())
        .and_then(|v| v.table)
        .expect("volume 1");
    for (l, a) in on2.iter().enumerate() {
        assert_eq!(
            *a,
            t.lookup(p.nodes(), l as u64),
            "lba {l} after the power cut"
        );
    }
    drop(p);
    w.recover_pool();
}

#[test]
fn evacuation_under_overwrites_leaves_gc_room_on_the_others() {
    // Two members; the volume fills about 39 % of the pool (about what an
    // evacuation admits), so after it the second is about 80 % full, while the
    // volume keeps being overwritten: GC must keep reclaiming the second
    // member (an evacuation that used up its GC reserve left no way to
    // free anything: everything stalled).
    let n = 2usize;
    let seed = seed_from_env("members-evac-full");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![zns(24); n]);
    w.format();
    let size = w.data_capacity() * 39 / 100;
    w.pool().vol_create(1, b"v", size, 0).expect("vol_create");
    w.vols.push(VolModel::new(1, size));
    w.next_vol = 2;
    for l in (0..size).step_by(16) {
        w.write_exact(1, l, 16.min(size - l));
        if l % 512 == 0 {
            w.gc_until_free(0);
            while !w.commit(false) {}
        }
    }
    while !w.commit(false) {}
    w.pool().evacuate(Some(0)).expect("evacuate");
    let mut done_at = None;
    for i in 0..20_000u64 {
        let l = (i * 7919) % (size - 8);
        w.write_exact(1, l, 8);
        w.gc_batch();
        if i % 4 == 0 {
            while !w.commit(false) {}
            w.maintenance();
        }
        if w.pool_ref().evacuation().expect("evacuation").left_blocks == 0 {
            done_at = Some(i);
            break;
        }
    }
    let e = w.pool_ref().evacuation().expect("evacuation");
    assert!(
        done_at.is_some(),
        "evacuation stalled: {e:?}, free zones {} (usable {})",
        w.pool_ref().free_zones(),
        w.pool_ref().alloc().usable_free_zones()
    );
    w.run_verify("after the evacuation under overwrites");
}

/// The reports of member `d`'s data zones on its device.
fn data_zone_reports(w: &World, d: usize) -> Vec<(u32, Option<(Cond, u64)>)> {
    let p = w.pool_ref();
    let geo = p.geom();
    let first = geo.dev_first_zone(d as u16).expect("member");
    let n = geo.device(d as u16).expect("member").nr_zones;
    (first..first + n)
        .filter(|z| geo.zone(*z).is_some_and(|g| !g.meta))
        .map(|z| {
            let (dev, local) = w.zone_loc(z);
            (z, w.devs[dev].report(local))
        })
        .collect()
}

#[test]
fn a_lost_member_takes_nothing_and_nothing_touches_its_zones() {
    // Small members: GC must run once the lost member's space is gone.
    let mut w = world_of("members-lost", 3, 10);
    // Only the writes below: no stepped checkpoint with its own writes
    // and discards between the steps.
    w.stepped_pct = 0;
    overwrite(&mut w, 2);
    let d = 2usize;
    // Where the volume's blocks on the member are.
    let on: Vec<(u64, u64)> = (0..VOL_BLOCKS)
        .filter_map(|l| w.addr_of(1, l).map(|a| (l, a)))
        .filter(|&(_, a)| w.loc(a).0 == d)
        .collect();
    assert!(on.len() > 100, "the member holds data: {}", on.len());
    let reports = data_zone_reports(&w, d);
    assert!(matches!(w.pool().member_lost(9), Err(Error::Invalid(_))));
    w.pool().member_lost(d as u16).expect("member_lost");
    assert_eq!(w.pool_ref().alloc().lost(), 1 << d);
    let a = w.pool_ref().alloc();
    assert_eq!(
        a.usable_free_zones(),
        a.free_zones() - a.dev_free_zones(d as u16),
        "its free zones are not free space any more"
    );
    assert!(matches!(
        w.pool().evacuate(Some(d as u16)),
        Err(Error::Invalid(_))
    ));
    // Overwrites of the lower half only, with GC, commits and resets.
    let half = VOL_BLOCKS / 2;
    for r in 0..6u64 {
        for l in (0..half - 16).step_by(16) {
            w.write_exact(1, (l + r * 3) % (half - 16), 16);
        }
        w.gc_until_free(0);
        while !w.commit(false) {}
        w.maintenance();
        w.end_resets();
    }
    assert!(w.st.gc_batches > 0, "GC ran");
    assert_eq!(
        data_zone_reports(&w, d),
        reports,
        "a data zone of the lost member was written, reset or finished"
    );
    let mut kept = 0;
    for &(l, a) in &on {
        if l >= half {
            assert_eq!(
                w.addr_of(1, l),
                Some(a),
                "block {l} moved off the lost member"
            );
            kept += 1;
        } else if let Some(now) = w.addr_of(1, l) {
            assert!(now == a || w.loc(now).0 != d, "new data on the lost member");
        }
    }
    assert!(kept > 0);
    w.run_verify("with a lost member");
}

/// A full data zone holding valid blocks of volume 1 in its upper half
/// (`lba >= from`), other than `not`.
/// (The one with the fewest valid blocks: the first GC would pick.)
fn zone_with_upper_blocks(w: &World, from: u64, not: Option<u32>) -> u32 {
    let p = w.pool_ref();
    let geo = p.geom();
    (from..VOL_BLOCKS)
        .filter_map(|l| w.addr_of(1, l))
        .filter_map(|a| geo.zone_of(a))
        .filter(|z| Some(*z) != not)
        .filter_map(|z| p.alloc().zone(z).map(|zi| (z, *zi)))
        .filter(|(_, zi)| zi.state() == zvcore::alloc::ZoneState::Full && zi.valid() > 0)
        .min_by_key(|(_, zi)| zi.valid())
        .map(|(z, _)| z)
        .expect("a full zone with upper-half blocks")
}

#[test]
fn zones_the_device_made_read_only_or_offline_are_never_touched_again() {
    let mut w = world_of("zone-unusable", 2, 12);
    // Only the writes below (as in the lost-member test).
    w.stepped_pct = 0;
    overwrite(&mut w, 2);
    let half = VOL_BLOCKS / 2;
    let off = zone_with_upper_blocks(&w, half, None);
    let ro = zone_with_upper_blocks(&w, half, Some(off));
    let report = |w: &World, z: u32| {
        let (d, local) = w.zone_loc(z);
        w.devs[d].report(local)
    };
    let (ro0, off0) = (report(&w, ro), report(&w, off));
    let in_off: Vec<(u64, u64)> = (half..VOL_BLOCKS)
        .filter_map(|l| w.addr_of(1, l).map(|a| (l, a)))
        .filter(|&(_, a)| w.pool_ref().geom().zone_of(a) == Some(off))
        .collect();
    assert!(!in_off.is_empty());
    w.pool().zone_unusable(ro, true).expect("read-only");
    w.pool().zone_unusable(off, false).expect("offline");
    assert!(w.pool_ref().alloc().zone(ro).expect("zone").retired());
    // Overwrites of the lower half, GC, commits and resets: GC moves the
    // read-only zone's blocks (it is a victim like any other) but never
    // reads the offline one; neither is written, finished or reset.
    for r in 0..12u64 {
        for l in (0..half - 16).step_by(16) {
            w.write_exact(1, (l + r * 3) % (half - 16), 16);
        }
        for _ in 0..40 {
            if w.gc_batch() == 0 {
                break;
            }
        }
        while !w.commit(false) {}
        w.maintenance();
        w.end_resets();
    }
    assert_eq!(
        report(&w, ro),
        ro0,
        "the read-only zone was written, finished or reset"
    );
    assert_eq!(
        report(&w, off),
        off0,
        "the offline zone was written, finished or reset"
    );
    for &(l, a) in &in_off {
        assert_eq!(
            w.addr_of(1, l),
            Some(a),
            "GC moved block {l} off the offline zone"
        );
    }
    let zi = *w.pool_ref().alloc().zone(ro).expect("zone");
    assert_eq!(
        (zi.state(), zi.valid()),
        (zvcore::alloc::ZoneState::Offline, 0),
        "GC emptied the read-only zone and took it out of service"
    );
    w.run_verify("with retired zones");
    w.crash_and_recover();
    w.run_verify("after a power cut");
}

/// Write pointers of member `d`'s two log zones.
fn log_wps(w: &World, d: usize) -> Vec<Option<(Cond, u64)>> {
    let first = w.geoms[d].first_meta_zone();
    (0..2).map(|i| w.devs[d].report(first + i)).collect()
}

#[test]
fn the_journal_goes_on_on_its_copy_when_a_member_is_lost() {
    for lost in [0usize, 1] {
        let mut w = world_set(seed_from_env("journal-lost"), 2, 24, |w| {
            w.journal_copies_pct = 100;
            w.stepped_pct = 0;
            w.explicit_ckpt_pct = 0;
        });
        w.checkpoint_now();
        // Both members' log zones take the journal.
        let other = 1 - lost;
        let (l0, o0) = (log_wps(&w, lost), log_wps(&w, other));
        w.write_exact(1, 8, 8);
        while !w.commit(false) {}
        assert_ne!(log_wps(&w, lost), l0, "member {lost} holds a journal copy");
        assert_ne!(
            log_wps(&w, other),
            o0,
            "member {other} holds a journal copy"
        );
        w.pool().member_lost(lost as u16).expect("member_lost");
        let (l1, o1) = (log_wps(&w, lost), log_wps(&w, other));
        let ckpts = w.pool_ref().stats().checkpoints;
        for k in 0..6u64 {
            w.write_exact(1, 16 + 8 * k, 8);
            while !w.commit(false) {}
        }
        assert_eq!(
            w.pool_ref().stats().checkpoints,
            ckpts,
            "journal commits only"
        );
        assert_eq!(
            log_wps(&w, lost),
            l1,
            "a journal block went to the lost member {lost}"
        );
        assert_ne!(log_wps(&w, other), o1, "no journal block on member {other}");
        // The member comes back (assembly needs every member): what was
        // committed since is replayed from the one copy.
        w.crash_and_recover();
        for l in 16..64 {
            assert!(
                w.addr_of(1, l).is_some(),
                "lost={lost}: block {l} not replayed"
            );
        }
        w.run_verify("journal on one copy");
    }
}

/// Zone reports of every metadata zone of member `d`.
fn meta_reports(w: &World, d: usize) -> Vec<Option<(Cond, u64)>> {
    let g = w.geoms[d];
    let first = g.first_meta_zone();
    (first..first + g.meta_zones)
        .map(|z| w.devs[d].report(z))
        .collect()
}

#[test]
fn checkpoints_go_on_on_their_copies_when_a_member_is_lost() {
    for lost in [0usize, 1, 2] {
        let mut w = world_set(seed_from_env("ckpt-lost"), 3, 24, |w| {
            w.journal_copies_pct = 100;
            w.checkpoint_copies_pct = 100;
            // Volume operations make the next checkpoint a full one (into
            // a set the lost member holds an older checkpoint of).
            w.volume_deltas_pct = 0;
            w.stepped_pct = 30;
        });
        assert!(w.pool_ref().geom().ckpt_copies());
        w.checkpoint_now();
        w.pool().member_lost(lost as u16).expect("member_lost");
        let before = meta_reports(&w, lost);
        let ckpts = w.pool_ref().stats().checkpoints;
        // Overwrites of blocks on the other members, full checkpoints and
        // deltas, journal commits.
        for r in 0..12u64 {
            for l in (0..VOL_BLOCKS / 2).step_by(4) {
                let l = (l + r * 5) % (VOL_BLOCKS / 2);
                if w.addr_of(1, l).is_none_or(|a| w.loc(a).0 != lost) {
                    w.write_exact(1, l, 1);
                }
            }
            if r % 3 == 1 {
                let id = 100 + r as u32;
                w.pool().vol_create(id, b"t", 8, 0).expect("vol_create");
                w.pool().vol_delete(id).expect("vol_delete");
            }
            while !w.commit(false) {}
            w.checkpoint_now();
        }
        assert!(
            w.pool_ref().stats().checkpoints >= ckpts + 12,
            "checkpoints go on without member {lost}"
        );
        assert_eq!(
            meta_reports(&w, lost),
            before,
            "metadata written to the lost member {lost}"
        );
        // The member comes back with its older metadata: the newer copies
        // on the others win (the newest checkpoint is loaded: no damage, no
        // fallback to an older set).
        let gen = w.pool_ref().checkpoint_generation();
        let full = w.pool_ref().stats().checkpoints - w.pool_ref().stats().delta_checkpoints;
        w.crash();
        let (_, asm, _, _) = w.try_recover().expect("recovery");
        assert_eq!(asm.damage, None, "lost {lost}");
        assert_eq!(
            asm.checkpoint_generation, gen,
            "lost {lost}: an older checkpoint loaded"
        );
        assert!(full >= 3, "lost {lost}: {full} full checkpoints");
        if lost == 0 {
            assert!(
                asm.ckpt_copy_reads > 0,
                "member 0 held the newest chain's first blocks"
            );
        }
        w.recover_pool();
        w.run_verify("checkpoints without a lost member");
        assert!(w.pool_ref().geom().ckpt_copies());
    }
}

/// A pool of three members keeping two copies of its metadata.
fn copies_world(name: &str) -> World {
    world_set(seed_from_env(name), 3, 24, |w| {
        w.journal_copies_pct = 100;
        w.checkpoint_copies_pct = 100;
    })
}

#[test]
fn a_pool_assembles_without_any_one_member_and_takes_it_back() {
    for lost in [0usize, 1, 2] {
        let mut w = copies_world("degraded");
        overwrite(&mut w, 2);
        w.checkpoint_now();
        // Journal blocks after the checkpoint.
        for l in (0..64).step_by(8) {
            w.write_exact(1, l, 8);
            while !w.commit(false) {}
        }
        w.crash();
        // Assembled without its device: every block still mapped where it
        // was (the model's check in `recover_pool`), nothing asked of the
        // device (the harness's reader), nothing written to it.
        w.missing = 1 << lost;
        let before = w.devs[lost].clone();
        w.recover_pool();
        assert_eq!(w.pool_ref().alloc().lost(), 1 << lost, "lost {lost}");
        // Writes, GC, journal commits and checkpoints go on without it.
        for r in 0..6u64 {
            for l in (0..VOL_BLOCKS).step_by(16) {
                w.write_exact(1, (l + r * 3) % (VOL_BLOCKS - 16), 16);
            }
            w.gc_until_free(0);
            while !w.commit(false) {}
            if r % 2 == 1 {
                w.checkpoint_now();
            }
        }
        // Again without it: what was committed since has its copies on the
        // others.
        w.crash();
        w.recover_pool();
        assert!(
            w.devs[lost].same_contents(&before),
            "the missing member {lost} was written, reset or finished"
        );
        // The member comes back: the newest metadata wins, its blocks are
        // read from it again.
        w.missing = 0;
        w.crash();
        let (_, asm, _, _) = w.try_recover().expect("recovery with every member");
        assert_eq!(asm.damage, None, "lost {lost}");
        assert_eq!(asm.missing, 0);
        w.recover_pool();
        assert_eq!(w.pool_ref().alloc().lost(), 0);
        overwrite(&mut w, 1);
        w.crash_and_recover();
        w.run_verify("the missing member back");
    }
}

#[test]
fn degraded_assembly_refuses_what_the_metadata_cannot_survive() {
    let refused = |w: &mut World, missing: u64, why: &str| {
        w.crash();
        w.missing = missing;
        match w.try_recover() {
            Err(Error::Invalid(m)) => assert!(m.contains(why), "{m}"),
            Err(e) => panic!("missing {missing:#b}: {e:?}"),
            Ok(_) => panic!("missing {missing:#b}: assembled"),
        }
        w.missing = 0;
        w.recover_pool();
    };
    // Two members of three.
    let mut w = copies_world("degraded-refusals");
    refused(&mut w, 0b011, "more than one member missing");
    refused(&mut w, 0b110, "more than one member missing");
    // One copy of the checkpoints, or of the journal.
    for (j, c) in [(100, 0), (0, 100)] {
        let mut w = world_set(seed_from_env("degraded-one-copy"), 2, 24, |w| {
            w.journal_copies_pct = j;
            w.checkpoint_copies_pct = c;
        });
        refused(&mut w, 0b10, "one copy of its metadata");
    }
}

/// Runs `f` on the world's devices `given` as a scan presents them (their
/// geometries as they report them, a reader of them, storage for the
/// superblock and a block of scratch).
fn with_given<T>(
    w: &World,
    given: &[usize],
    f: impl FnOnce(&[DeviceGeometry], &mut Reader<'_>, &mut zvcore::format::Superblock, &mut [u8]) -> T,
) -> T {
    let geoms: Vec<DeviceGeometry> = given
        .iter()
        .map(|&i| DeviceGeometry {
            meta_zones: META_ZONES_PER_DEV,
            ..w.geoms[i]
        })
        .collect();
    let mut rd = Reader {
        devs: &w.devs,
        order: given,
        absent: 0,
    };
    let mut sb = Box::new(zvcore::format::Superblock::EMPTY);
    let mut scratch = vec![0u8; zvcore::format::BLOCK_SIZE];
    f(&geoms, &mut rd, &mut sb, &mut scratch)
}

#[test]
fn the_members_not_given_are_counted_from_the_superblock() {
    let mut w = copies_world("missing-count");
    w.crash();
    for given in [vec![0usize, 1, 2], vec![0, 2], vec![1], vec![]] {
        let (r, sb) = with_given(&w, &given, |geoms, rd, sb, scratch| {
            (
                zvcore::recovery::missing_members(geoms, rd, sb, scratch),
                sb.clone(),
            )
        });
        if given.is_empty() {
            assert_eq!(r, Err(Error::NotFound), "no device: not a pool");
        } else {
            assert_eq!(r, Ok(3 - given.len() as u16), "given {given:?}");
            assert_eq!(sb.nr_members, 3);
        }
    }
    w.recover_pool();
}

/// Removes member `d` (retrying after a checkpoint while the engine is
/// busy) and plans the commit that removes it.
fn remove_and_plan(w: &mut World, d: u16, force: bool) -> Vec<OwnedOp> {
    // Zone resets planned before are done (on the device, still there).
    w.end_resets();
    let mut r = Err(Error::Busy);
    for _ in 0..4 {
        r = w.pool().member_remove(d, force);
        if r != Err(Error::Busy) {
            break;
        }
        w.checkpoint_now();
    }
    r.expect("member_remove");
    assert!(
        w.pool_ref().member_pending(),
        "the removal waits for its commit"
    );
    let (r, ops) = w.meta_call(|p, s, mut sink| p.flush(s, &mut sink));
    r.expect("flush");
    ops
}

/// A [`copies_world`] of `members` members whose member `d` is evacuated.
fn evacuated_world(seed: u64, members: usize, d: u16) -> World {
    let mut w = world_set(seed, members, 24, |w| {
        w.journal_copies_pct = 100;
        w.checkpoint_copies_pct = 100;
    });
    overwrite(&mut w, 2);
    w.pool().evacuate(Some(d)).expect("evacuate");
    evacuate_fully(&mut w, 5000);
    assert_eq!(w.member_valid_blocks(usize::from(d)), 0);
    w
}

#[test]
fn member_removal_survives_a_power_cut_anywhere() {
    // The journal member, the journal's copy, and another one.
    for d in [0u16, 1, 2] {
        let seed = seed_from_env("members-remove-cut");
        let probe_ops = remove_and_plan(&mut evacuated_world(seed, 3, d), d, false);
        let bit = 1u64 << d;
        let mut seen_removed = false;
        for k in 0..=probe_ops.len() {
            let mut w = evacuated_world(seed, 3, d);
            let ops = remove_and_plan(&mut w, d, false);
            assert_eq!(ops.len(), probe_ops.len(), "one seed, one plan");
            // Nothing of the commit goes to the member (the world asserts
            // it of every operation).
            w.removed = bit;
            let done = w.exec(&ops, Some(k).filter(|k| *k < ops.len()));
            if done {
                w.pool().flush_end(true).expect("flush_end");
                assert!(!w.pool_ref().member_pending(), "removal committed");
            }
            w.crash();
            // Without the member's device first: that assembles once the
            // commit point passed; before it, the pool needs the device
            // (its superblocks name the member) and is given it.
            w.removed = bit;
            let removed = match w.try_recover() {
                Ok((p, asm, _, _)) if p.superblock().removed_mask() & bit != 0 => {
                    assert_eq!(asm.missing, 0, "a removed member is not missing");
                    true
                }
                // Before the commit point: a degraded assembly (the
                // member's metadata has copies), or none.
                Ok((_, asm, _, _)) => {
                    assert_eq!(asm.missing, bit, "member {d}, cut at op {k}");
                    false
                }
                Err(Error::Invalid(_)) => false,
                Err(e) => panic!("member {d}, cut at op {k}: {e:?}"),
            };
            // (Before the flush that follows it, whether the commit point
            // is durable is up to the crash.)
            assert!(removed || !done, "member {d}: the removal's commit is done");
            seen_removed |= removed;
            if !removed {
                w.removed = 0;
            }
            w.recover_pool();
            assert_eq!(
                w.pool_ref().superblock().removed_mask(),
                if removed { bit } else { 0 }
            );
            // Nothing goes to a removed member (the world asserts that no
            // operation reaches its device); checkpoints in the new layout
            // and another power cut keep every flushed write.
            overwrite(&mut w, 3);
            w.checkpoint_now();
            overwrite(&mut w, 1);
            w.crash_and_recover();
            if removed {
                assert_eq!(w.member_valid_blocks(usize::from(d)), 0);
            }
            w.run_verify("after a removal");
        }
        assert!(seen_removed, "member {d}: the removal never committed");
    }
}

#[test]
fn removal_refusals_change_nothing() {
    let seed = seed_from_env("members-remove-refusals");
    let invalid = |w: &mut World, d: u16, force: bool, why: &str| {
        let gen = w.pool_ref().superblock().generation;
        match w.pool().member_remove(d, force) {
            Err(Error::Invalid(m)) => assert!(m.contains(why), "{m}"),
            r => panic!("member {d}: {r:?}, not '{why}'"),
        }
        assert_eq!(w.pool_ref().superblock().generation, gen);
        assert!(!w.pool_ref().member_pending());
    };
    // Live blocks, no such member.
    let mut w = world_set(seed, 3, 24, |w| {
        w.journal_copies_pct = 100;
        w.checkpoint_copies_pct = 100;
    });
    overwrite(&mut w, 1);
    invalid(&mut w, 1, false, "live blocks");
    invalid(&mut w, 3, false, "no such member");
    // Two members: the metadata's two copies need both.
    let mut w = evacuated_world(seed, 2, 1);
    invalid(&mut w, 1, false, "two members must stay");
    // One copy of the metadata.
    let mut w = world_set(seed, 3, 24, |w| {
        w.journal_copies_pct = 0;
        w.checkpoint_copies_pct = 100;
    });
    invalid(&mut w, 2, false, "one copy of its metadata");
    // A missing member: only with force; and no other while one is.
    let mut w = evacuated_world(seed, 4, 3);
    w.crash();
    w.missing = 1 << 2;
    w.recover_pool();
    invalid(&mut w, 2, false, "force");
    invalid(&mut w, 3, false, "another member is missing");
}

#[test]
fn members_removed_one_after_another_and_a_lost_one_forced_out() {
    let seed = seed_from_env("members-remove-two");
    let mut w = evacuated_world(seed, 4, 1);
    let cap = w.pool_ref().geom().data_capacity_blocks();
    let ops = remove_and_plan(&mut w, 1, false);
    assert!(w.exec(&ops, None));
    w.pool().flush_end(true).expect("flush_end");
    w.removed = 1 << 1;
    let g = w.geoms[1];
    assert_eq!(
        w.pool_ref().geom().data_capacity_blocks(),
        cap - u64::from(g.nr_data_zones()) * g.zone_cap_blocks,
        "the capacity drops by the removed member's"
    );
    // The newest checkpoint is laid out with member 1: the next removal
    // waits for one without it.
    w.pool().evacuate(Some(0)).expect("evacuate");
    evacuate_fully(&mut w, 5000);
    assert_eq!(w.pool().member_remove(0, false), Err(Error::Busy));
    // A power cut here reads the old layout's checkpoint from its copies.
    // The removed device, given with the others, is told apart (its
    // superblocks name the pool and a removed member).
    w.crash();
    let all: Vec<usize> = (0..4).collect();
    with_given(&w, &all, |geoms, rd, sb, scratch| {
        assert_eq!(
            zvcore::recovery::removed_devices(geoms, rd, sb, scratch),
            Ok(1 << 1)
        );
        assert_eq!(
            zvcore::recovery::missing_members(geoms, rd, sb, scratch),
            Ok(0)
        );
    });
    w.recover_pool();
    assert_eq!(w.pool_ref().superblock().removed_mask(), 0b10);
    w.pool().evacuate(Some(0)).expect("evacuate");
    evacuate_fully(&mut w, 5000);
    let ops = remove_and_plan(&mut w, 0, false);
    assert!(w.exec(&ops, None));
    w.pool().flush_end(true).expect("flush_end");
    w.removed = 0b11;
    assert_eq!(
        w.pool_ref().journal_members(),
        (2, Some(3)),
        "the journal on the members left"
    );
    overwrite(&mut w, 2);
    w.crash_and_recover();
    assert_eq!(w.pool_ref().superblock().removed_mask(), 0b11);
    assert_eq!(w.member_valid_blocks(0) + w.member_valid_blocks(1), 0);
    overwrite(&mut w, 1);
    w.checkpoint_now();
    w.crash_and_recover();
    w.run_verify("two members removed");
    // A member added after removals takes the next index and data.
    w.add_member_retrying(zns(24)).expect("member_add");
    while !w.commit(false) {}
    overwrite(&mut w, 3);
    assert!(w.member_valid_blocks(4) > 0, "the new member takes data");
    w.crash_and_recover();
    w.run_verify("a member added after removals");

    // A member lost for good, forced out: its blocks stay mapped (they
    // read from nowhere), the rest of the pool goes on with two copies.
    let mut w = copies_world("members-remove-lost");
    overwrite(&mut w, 3);
    let d = (0..3usize)
        .max_by_key(|&d| w.member_valid_blocks(d))
        .expect("members");
    assert!(w.member_valid_blocks(d) > 0);
    w.crash();
    w.missing = 1 << d;
    w.recover_pool();
    w.add_member_retrying(zns(24)).expect("member_add");
    while !w.commit(false) {}
    let ops = remove_and_plan(&mut w, d as u16, true);
    assert!(w.exec(&ops, None));
    w.pool().flush_end(true).expect("flush_end");
    w.missing = 0;
    w.removed = 1 << d;
    w.checkpoint_now();
    w.crash();
    let (p, asm, _, _) = w
        .try_recover()
        .expect("assembly without the removed member");
    assert_eq!(asm.missing, 0, "removed, not missing");
    assert_eq!(p.alloc().lost(), 1 << d);
    assert!(
        p.alloc().dev_valid_blocks(d as u16) > 0,
        "its blocks stay mapped"
    );
    drop(p);
}

/// A checkpoint step of `max_blocks` blocks emits at most `max_blocks +
/// 4` blocks, each written twice with checkpoint copies: the bound the
/// driver's commit buffer is sized for (`commitbuf.rs`, `data_blocks`; it
/// held fewer once, and a pool with copies failed its first checkpoint of
/// more than 19 blocks).
#[test]
fn checkpoint_steps_write_both_copies_within_the_bound() {
    const STEP: u32 = 28;
    let mut w = world_set(seed_from_env("members-step-bound"), 3, 96, |w| {
        w.journal_copies_pct = 100;
        w.checkpoint_copies_pct = 100;
    });
    w.pool()
        .vol_create(2, b"big", 40000, 0)
        .expect("vol_create");
    w.vols.push(VolModel::new(2, 40000));
    w.next_vol = 3;
    for l in (0..40000).step_by(3) {
        w.write_exact(2, l, 1);
        if l % 1024 == 0 {
            while !w.commit(false) {}
        }
    }
    while !w.commit(false) {}
    // A full checkpoint after an assembly (the journal and the chain may
    // go on there: asked for).
    w.crash_and_recover();
    w.pool().request_full_checkpoint();
    let (r, ops) = w.meta_call(|p, s, mut sink| p.checkpoint_begin(s, &mut sink));
    r.expect("checkpoint_begin");
    assert!(w.exec(&ops, None));
    let mut most = 0;
    loop {
        let (r, ops) = w.meta_call(|p, s, mut sink| p.checkpoint_step(s, STEP, &mut sink));
        most = most.max(ops.iter().filter(|o| o.kind == 3).count());
        assert!(w.exec(&ops, None));
        if r.expect("checkpoint_step") {
            break;
        }
    }
    w.pool().checkpoint_end(true).expect("checkpoint_end");
    assert!(
        most > STEP as usize,
        "a step wrote {most} blocks: the image is too small to tell"
    );
    assert!(
        most <= 2 * (STEP as usize + 4),
        "a step of {STEP} blocks wrote {most}"
    );
    w.crash_and_recover();
}

/// A chain written before a member joined keeps the second copies of the
/// old ring's last phase where they were (on the first member, past its
/// own phase); from the next full checkpoint on, the new member holds
/// them. Assembled in between without the member of the first copies,
/// the pool reads that chain from those old places: nothing is lost (a
/// spare added to a degraded pool, then a crash, was refused as a lost
/// checkpoint).
#[test]
fn a_chain_from_before_a_member_joined_is_read_without_its_first_copies() {
    // Conventional members (their checkpoint zones keep no tail open
    // between checkpoints: a member may join while a chain goes on) with
    // zones of 64 blocks: phases of 32, which a chain of deltas passes.
    let g = DeviceGeometry {
        zone_blocks: 64,
        zone_cap_blocks: 64,
        ..small_conv(160)
    };
    let mut w = copies_world_of("joined-chain", vec![g; 2], VOL_BLOCKS);
    let geo = PoolGeometry::new(w.geoms.clone()).expect("geometry");
    let h = copies_phase_blocks(&geo);
    w.checkpoint_now();
    // Deltas until the chain reaches the last phase (member 1's).
    let mut reached = false;
    for r in 0..64u64 {
        w.write_exact(1, (r * 24) % (VOL_BLOCKS - 8), 8);
        while !w.commit(false) {}
        w.checkpoint_now();
        if w.pool_ref()
            .scrub_chain()
            .is_some_and(|c| u64::from(c.blocks) > h + 4)
        {
            reached = true;
            break;
        }
    }
    assert!(
        reached,
        "the chain did not reach the last phase ({h} blocks a phase)"
    );
    let chain = w.pool_ref().scrub_chain().expect("chain");
    // The member joins; its commit writes no checkpoint.
    w.add_member(g).expect("member_add");
    while !w.commit(false) {}
    assert!(!w.pool_ref().member_pending());
    assert_eq!(
        w.pool_ref().scrub_chain().map(|c| c.newest),
        Some(chain.newest),
        "a checkpoint was written after the add"
    );
    // Member 1 (the first copies of the last phase) missing: the chain is
    // read whole from member 0 (checked against the model), nothing
    // reported lost.
    w.crash();
    w.missing = 1 << 1;
    let (_, asm, _, _) = w.try_recover().expect("assembly without member 1");
    assert_eq!(
        asm.damage, None,
        "a chain from before the add, member 1 missing"
    );
    assert!(asm.ckpt_copy_reads > 0, "no block read from a second copy");
    w.recover_pool();
    w.run_verify("without member 1");
    w.missing = 0;
    w.crash_and_recover();
}
