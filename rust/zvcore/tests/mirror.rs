// SPDX-License-Identifier: GPL-2.0
//! Mirrored volumes in the engine (`pool::mirror`): the two copies of
//! every block on two disjoint sets of members, through overwrites, GC,
//! power cuts and reassembly; volume operations applied to both copies;
//! a copy that failed maps neither.
//!
//! Each copy is written with its own table's volume id in the blocks (the
//! harness checks every block it reads against the table it read it
//! through); the versions must agree.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::format::journal::{VOL_FLAG_COPY, VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use zvcore::format::policy::Placement;
use zvcore::format::INCOMPAT_MIRROR;
use zvcore::geom::Stream;
use zvcore::pool::{copy_id, split_sides, PoolConfig, WritePlan};
use zvcore::recovery::recover;

const SIZE: u64 = 600;

/// A pool of `geoms`, with mirrored volume 1 of [`SIZE`] blocks (and the
/// model of both copies).
fn world_with(name: &str, geoms: Vec<zvcore::geom::DeviceGeometry>) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, geoms);
    // Checkpoints at once: no random operations between their steps (the
    // tests count what they wrote).
    w.stepped_pct = 0;
    w.format();
    w.pool()
        .vol_create(1, b"m", SIZE, VOL_FLAG_MIRRORED)
        .expect("mirrored vol_create");
    w.vols.push(VolModel::new(1, SIZE));
    w.vols.push(VolModel::new(cid(1), SIZE));
    w.next_vol = 2;
    w
}

fn cid(v: u32) -> u32 {
    copy_id(v).expect("copy id")
}

/// Writes the extents of `plan` with versions `vers` (blocks filled for
/// table `fill`); where each landed.
fn put(w: &mut World, plan: &WritePlan, fill: u32, vers: &[u64]) -> Vec<Option<u64>> {
    let mut addrs = Vec::new();
    let mut k = 0usize;
    for ext in plan.extents() {
        let mut data = vec![0u8; BS * ext.len as usize];
        for j in 0..ext.len as usize {
            fill_block(
                &mut data[j * BS..(j + 1) * BS],
                fill,
                plan.lba + ext.off + j as u64,
                vers[k],
            );
            k += 1;
        }
        let (d, off) = w.loc(ext.addr);
        let r = if ext.append {
            let (_, local) = w.zone_loc(ext.zone);
            w.devs[d].append(local, &data).map(|a| a + w.bases[d])
        } else {
            w.devs[d].write(off, &data).map(|_| ext.addr)
        };
        addrs.push(Some(r.unwrap_or_else(|e| panic!("write: {e:?}"))));
    }
    addrs
}

/// A mirrored write of (the part one plan pair covers of) `n` blocks from
/// `lba`, both copies completed at once; the blocks written.
fn write_mirrored(w: &mut World, vol: u32, lba: u64, n: u64) -> Result<u64, Error> {
    let (p, c) = w.pool().write_begin_copies(vol, lba, n, Stream::UserHot)?;
    assert_eq!(
        (p.lba, p.nblocks),
        (c.lba, c.nblocks),
        "the two plans cover one range"
    );
    assert_eq!(c.vol, cid(vol));
    let vers: Vec<u64> = (0..p.nblocks)
        .map(|_| {
            w.ver += 1;
            w.ver
        })
        .collect();
    let a = put(w, &p, vol, &vers);
    let ca = put(w, &c, cid(vol), &vers);
    let n = w
        .pool()
        .write_end_copies(&p, &a, &c, &ca)
        .expect("write_end_copies");
    assert_eq!(n, p.nblocks);
    w.record_completion(&p, &a, &vers);
    w.record_completion(&c, &ca, &vers);
    Ok(n)
}

/// Writes all of `[lba, lba + n)`, plan after plan; GC and commits when
/// the pool is short of space.
fn write_all(w: &mut World, vol: u32, lba: u64, n: u64) {
    let mut l = lba;
    let mut tries = 0;
    while l < lba + n {
        match write_mirrored(w, vol, l, lba + n - l) {
            Ok(k) => l += k,
            Err(Error::NoSpace) | Err(Error::Busy) if tries < 200 => {
                tries += 1;
                w.commit(false);
                w.maintenance();
                w.gc_batch();
            }
            Err(e) => {
                let a = w.pool_ref().alloc();
                panic!(
                    "mirrored write of {vol} at {l}: {e:?}; free zones {} / {}",
                    a.member_free_zones(0),
                    a.member_free_zones(1)
                )
            }
        }
    }
}

/// The size of table `vol` in blocks.
fn size_of(w: &World, vol: u32) -> u64 {
    w.pool_ref()
        .volume(vol)
        .and_then(|v| v.table)
        .expect("table")
        .size()
}

/// The member each block of table `vol` is on (`None`: unmapped).
fn members_of(w: &World, vol: u32) -> Vec<Option<usize>> {
    let size = size_of(w, vol);
    let mut out = Vec::new();
    let mut runs = [zvcore::pool::ReadRun::default(); 4];
    let mut l = 0;
    while l < size {
        let k = w
            .pool_ref()
            .read_plan(vol, l, size - l, &mut runs)
            .expect("read_plan");
        for r in &runs[..k] {
            for j in 0..r.len {
                out.push(r.addr.map(|a| w.loc(a + j).0));
            }
            l += r.len;
        }
    }
    out
}

/// The sides of mirrored volume `vol`: its members and its copy's.
fn sides(w: &World, vol: u32) -> (u64, u64) {
    let place = |v: u32| match w.pool_ref().volume(v).map(|v| v.place) {
        Some(Placement::Members(m)) => m,
        p => panic!("volume {v} placed {p:?}"),
    };
    (place(vol), place(cid(vol)))
}

/// Every block of `vol` and of its copy: the same version, each copy on
/// its side, never both on one member; returns the blocks mapped.
fn check_copies(w: &mut World, vol: u32, when: &str) -> u64 {
    let size = size_of(w, vol);
    let a = w
        .read_range(vol, 0, size)
        .unwrap_or_else(|e| panic!("{when}: {e}"));
    let b = w
        .read_range(cid(vol), 0, size)
        .unwrap_or_else(|e| panic!("{when}: copy: {e}"));
    assert_eq!(a, b, "{when}: the copies of volume {vol} differ");
    let (sa, sb) = sides(w, vol);
    assert_eq!(sa & sb, 0, "{when}: sides overlap");
    let (ma, mb) = (members_of(w, vol), members_of(w, cid(vol)));
    let mut mapped = 0;
    for (lba, (x, y)) in ma.iter().zip(&mb).enumerate() {
        match (x, y) {
            (Some(x), Some(y)) => {
                assert!(
                    sa & (1 << x) != 0,
                    "{when}: lba {lba} of {vol} on member {x}"
                );
                assert!(
                    sb & (1 << y) != 0,
                    "{when}: lba {lba} of its copy on member {y}"
                );
                mapped += 1;
            }
            (None, None) => {}
            _ => panic!("{when}: lba {lba} of {vol} mapped by one copy only: {x:?} {y:?}"),
        }
    }
    mapped
}

#[test]
fn mirrored_volume_keeps_its_copies_apart_through_gc_and_power_cuts() {
    let mut w = world_with("mirror_apart", vec![small_zns(40), small_zns(40)]);
    assert_eq!(sides(&w, 1), (0b01, 0b10));
    write_all(&mut w, 1, 0, SIZE);
    assert_eq!(check_copies(&mut w, 1, "after the fill"), SIZE);
    // Overwrites until GC has collected zones of both sides.
    let mut rounds = 0;
    while w.pool_ref().stats().zones_reset < 6 {
        for _ in 0..40 {
            let lba = w.rng.below(SIZE - 8);
            let n = w.rng.range(1, 8);
            write_all(&mut w, 1, lba, n);
        }
        w.commit(false);
        w.maintenance();
        for _ in 0..4 {
            w.gc_batch();
        }
        w.commit(false);
        w.maintenance();
        rounds += 1;
        assert!(rounds < 400, "GC reset no zone");
        if rounds % 25 == 0 {
            check_copies(&mut w, 1, "under overwrites");
        }
    }
    assert!(w.pool_ref().stats().gc_blocks > 0, "GC copied nothing");
    check_copies(&mut w, 1, "after GC");
    // Power cuts with writes not committed: both copies come back alike.
    for cut in 0..4 {
        for _ in 0..20 {
            let lba = w.rng.below(SIZE - 8);
            write_all(&mut w, 1, lba, 8);
        }
        if cut % 2 == 0 {
            w.commit(false);
        }
        w.crash_and_recover();
        let when = format!("after power cut {cut}");
        assert_eq!(check_copies(&mut w, 1, &when), SIZE, "{when}");
        assert_eq!(sides(&w, 1), (0b01, 0b10), "{when}: sides");
    }
}

#[test]
fn sides_are_balanced_by_capacity() {
    // Capacities 40, 20, 20 zones: the large member against the two small.
    let w = world_with(
        "mirror_sides",
        vec![small_zns(40), small_zns(20), small_zns(20)],
    );
    assert_eq!(sides(&w, 1), (0b001, 0b110));
    assert_eq!(split_sides(0b1, |_| 1), None);
    assert_eq!(split_sides(0b1011, |_| 1), Some((0b1001, 0b0010)));
    assert_eq!(split_sides(0b110, u64::from), Some((0b100, 0b010)));
}

#[test]
fn operations_on_a_mirrored_volume_apply_to_its_copy() {
    let mut w = world_with("mirror_ops", vec![small_zns(40), small_zns(40)]);
    write_all(&mut w, 1, 0, 200);
    let flags = |w: &World, v: u32| w.pool_ref().volume(v).map(|v| v.flags);
    assert_eq!(flags(&w, cid(1)), Some(VOL_FLAG_COPY));
    // Nothing names a copy, nor writes one table of a mirrored volume.
    assert!(matches!(
        w.pool().vol_delete(cid(1)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        w.pool().write_begin(1, 0, 1, Stream::UserHot),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        w.pool().vol_create(cid(7), b"x", 8, 0),
        Err(Error::Invalid(_))
    ));

    // A snapshot: a mirrored snapshot of the copy alongside.
    w.pool().snap_create(1, 2, b"m@s").expect("snapshot");
    assert_eq!(flags(&w, 2), Some(VOL_FLAG_READONLY | VOL_FLAG_MIRRORED));
    assert_eq!(flags(&w, cid(2)), Some(VOL_FLAG_READONLY | VOL_FLAG_COPY));
    assert_eq!(sides(&w, 2), sides(&w, 1));
    let snap = w.vols[0].copy_as(2, true);
    let csnap = w.vols[1].copy_as(cid(2), true);
    w.vols.push(snap);
    w.vols.push(csnap);
    write_all(&mut w, 1, 100, 200);
    check_copies(&mut w, 2, "snapshot after writes to its volume");

    // A clone of it: mirrored and writable.
    w.pool().clone_volume(2, 3, b"c").expect("clone");
    assert_eq!(flags(&w, 3), Some(VOL_FLAG_MIRRORED));
    assert_eq!(flags(&w, cid(3)), Some(VOL_FLAG_COPY));
    let clone = w.vols[2].copy_as(3, false);
    let cclone = w.vols[3].copy_as(cid(3), false);
    w.vols.push(clone);
    w.vols.push(cclone);
    write_all(&mut w, 3, 0, 50);
    check_copies(&mut w, 3, "clone after its writes");
    w.pool().promote(3).expect("promote");
    for v in [3, cid(3)] {
        assert_eq!(
            w.pool_ref().volume(v).and_then(|v| v.origin),
            None,
            "promoted {v}"
        );
    }

    // Rollback of the volume to its snapshot: both tables.
    w.pool().rollback(1, 2).expect("rollback");
    for (m, s) in [(0usize, 2usize), (1, 3)] {
        let id = w.vols[m].id;
        w.vols[m] = w.vols[s].copy_as(id, false);
    }
    check_copies(&mut w, 1, "after rollback");

    // Resize: both tables.
    w.pool().vol_resize(1, SIZE + 64).expect("grow");
    for v in [1, cid(1)] {
        let t = w.pool_ref().volume(v).and_then(|v| v.table).expect("table");
        assert_eq!(t.size(), SIZE + 64, "size of {v}");
    }
    for m in &mut w.vols[..2] {
        m.blocks.resize(SIZE as usize + 64, BlockModel::default());
    }
    write_all(&mut w, 1, SIZE, 64);
    check_copies(&mut w, 1, "after the grow");

    // Discard: both tables.
    w.pool().discard(1, 0, 16).expect("discard");
    for m in &mut w.vols[..2] {
        for b in &mut m.blocks[..16] {
            *b = BlockModel::default();
        }
    }
    check_copies(&mut w, 1, "after the discard");
    while !w.commit(false) {}
    w.crash_and_recover();
    check_copies(&mut w, 1, "after reassembly");
    check_copies(&mut w, 3, "clone after reassembly");

    // Deleting the snapshot and the volume deletes their copies.
    for v in [2u32, 1] {
        w.pool().vol_delete(v).expect("delete");
        for id in [v, cid(v)] {
            assert!(w.pool_ref().volume(id).is_none(), "{id} deleted");
            w.vols.retain(|m| m.id != id);
        }
    }
    while !w.commit(false) {}
    w.crash_and_recover();
    check_copies(&mut w, 3, "clone after the deletes");
}

#[test]
fn a_copy_that_failed_maps_neither() {
    let mut w = world_with("mirror_fail", vec![small_zns(40), small_zns(40)]);
    write_all(&mut w, 1, 0, 64);
    let before = w.read_range(1, 0, 64).expect("read");
    for failed_copy in [0usize, 1] {
        let (p, c) = w
            .pool()
            .write_begin_copies(1, 8, 32, Stream::UserHot)
            .expect("plan");
        let vers: Vec<u64> = (0..p.nblocks)
            .map(|_| {
                w.ver += 1;
                w.ver
            })
            .collect();
        let mut a = put(&mut w, &p, 1, &vers);
        let mut ca = put(&mut w, &c, cid(1), &vers);
        let lost = if failed_copy == 0 { &mut a } else { &mut ca };
        *lost.last_mut().expect("an extent") = None;
        assert_eq!(w.pool().write_end_copies(&p, &a, &c, &ca), Err(Error::Io));
        assert_eq!(w.read_range(1, 0, 64).expect("read"), before);
        check_copies(&mut w, 1, "after a failed copy");
        w.run_verify("after a failed copy");
    }
    // Nothing submitted.
    let (p, c) = w
        .pool()
        .write_begin_copies(1, 0, 8, Stream::UserHot)
        .expect("plan");
    w.pool().write_failed_copies(&p, &c);
    w.run_verify("after a plan dropped");
    while !w.commit(false) {}
    w.crash_and_recover();
    assert_eq!(w.read_range(1, 0, 64).expect("read"), before);
}

#[test]
fn a_lost_side_takes_both_copies_until_it_is_back() {
    let mut w = world_with("mirror_lost", vec![small_zns(40), small_zns(40)]);
    write_all(&mut w, 1, 0, 64);
    w.pool().member_lost(1).expect("member lost");
    assert!(!w.pool_ref().mirror_whole(1));
    // Degraded writes: both copies on member 0.
    write_all(&mut w, 1, 32, 64);
    let a = w.read_range(1, 0, 96).expect("read");
    assert_eq!(a, w.read_range(cid(1), 0, 96).expect("read copy"));
    let mc = members_of(&w, cid(1));
    assert!(
        mc[32..96].iter().all(|m| *m == Some(0)),
        "{:?}",
        &mc[32..96]
    );
    assert!(mc[..32].iter().all(|m| *m == Some(1)));
    // Member 1 back at the next assembly: the walk moves the copies home.
    while !w.commit(false) {}
    w.crash_and_recover();
    assert!(w.pool_ref().mirror_whole(1));
    walk_to_end(&mut w);
    // (GC batches race user writes of the blocks they move: the versions
    // are the model's, which the recovery checked; the copies agree.)
    assert!(check_copies(&mut w, 1, "after the walk") >= 96);
}

#[test]
fn a_removed_sides_copies_go_to_a_member_added_since() {
    // Three members: sides {0} and {1}; member 2 joins neither, until
    // member 1 is gone.
    let mut w = world_with("mirror_added", vec![small_zns(40), small_zns(40)]);
    add_member(&mut w);
    write_all(&mut w, 1, 0, 32);
    assert_eq!(sides(&w, 1), (0b001, 0b010));
    w.pool().member_lost(1).expect("member lost");
    write_all(&mut w, 1, 0, 32);
    let mc = members_of(&w, cid(1));
    assert!(mc[..32].iter().all(|m| *m == Some(2)), "{:?}", &mc[..32]);
    let mv = members_of(&w, 1);
    assert!(mv[..32].iter().all(|m| *m == Some(0)), "{:?}", &mv[..32]);
}

#[test]
fn a_single_member_pool_has_no_mirrored_volumes() {
    let seed = seed_from_env("mirror_single");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(40)]);
    w.format();
    assert!(matches!(
        w.pool().vol_create(1, b"m", 8, VOL_FLAG_MIRRORED),
        Err(Error::Invalid(_))
    ));
    assert!(w.pool_ref().volume(1).is_none());
}

#[test]
fn a_full_side_refuses_writes_rather_than_share_a_member() {
    // Side A is the large member, side B the small one: the volume is
    // larger than side B holds.
    let seed = seed_from_env("mirror_full_side");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(40), small_zns(12)]);
    w.stepped_pct = 0;
    w.format();
    let size = 3000;
    w.pool()
        .vol_create(1, b"m", size, VOL_FLAG_MIRRORED)
        .expect("mirrored vol_create");
    w.vols.push(VolModel::new(1, size));
    w.vols.push(VolModel::new(cid(1), size));
    assert_eq!(sides(&w, 1), (0b01, 0b10));
    let mut l = 0;
    let mut refused = None;
    while l < size {
        match write_mirrored(&mut w, 1, l, 8) {
            Ok(k) => l += k,
            Err(e) => {
                // GC cannot help: nothing was overwritten.
                w.commit(false);
                w.maintenance();
                w.gc_batch();
                match write_mirrored(&mut w, 1, l, 8) {
                    Ok(k) => l += k,
                    Err(e2) => {
                        refused = Some((e, e2));
                        break;
                    }
                }
            }
        }
    }
    assert_eq!(
        refused.map(|r| r.1),
        Some(Error::NoSpace),
        "written up to {l}"
    );
    let side_b = 8 * 200;
    assert!(
        l < side_b && l > side_b / 2,
        "refused at {l} of side B's {side_b} blocks"
    );
    assert_eq!(check_copies(&mut w, 1, "side B full"), l);
    // With a third of it discarded, overwrites of the rest go on: GC
    // collects side B's zones (member 0 has free zones to spare, so only
    // the side's shortage makes it run) into the reserve the user writes
    // left there.
    let written = l;
    let cut = written / 3;
    w.pool().discard(1, 0, cut).expect("discard");
    for m in &mut w.vols[..2] {
        for b in &mut m.blocks[..cut as usize] {
            *b = BlockModel::default();
        }
    }
    for _ in 0..300 {
        let lba = cut + w.rng.below(written - cut - 8);
        write_all(&mut w, 1, lba, 8);
    }
    assert!(w.pool_ref().stats().zones_reset > 0, "GC freed no zone");
    assert_eq!(
        check_copies(&mut w, 1, "overwrites of a full side"),
        written - cut
    );
    // Other volumes still write to either member.
    w.pool().vol_create(5, b"v", 64, 0).expect("vol_create");
    w.vols.push(VolModel::new(5, 64));
    assert_eq!(w.write_checked(5, 0, 8), Ok(8));
}

#[test]
fn an_engine_without_mirrored_volumes_refuses_their_pools() {
    let mut w = world_with("mirror_refused", vec![small_zns(40), small_zns(40)]);
    write_all(&mut w, 1, 0, 64);
    while !w.commit(false) {}
    assert_ne!(w.pool_ref().superblock().incompat & INCOMPAT_MIRROR, 0);
    w.crash();
    let n = w.geoms.len();
    let order: Vec<usize> = (0..n).collect();
    let mut scratch = vec![0u8; 2 * BS];
    let mut rd = Reader {
        devs: &w.devs,
        order: &order,
        absent: 0,
    };
    // The kernel's configuration until its data path writes both copies.
    let r = recover(
        w.geoms.clone(),
        &mut rd,
        PoolConfig::default_for(n as u16),
        storage(&w.geoms),
        &mut scratch,
        &mut |_| {},
        None,
    );
    assert!(
        matches!(r, Err(Error::Unsupported("mirrored volumes"))),
        "{:?}",
        r.as_ref().err()
    );
    // A pool that never had one is not refused.
    let seed = seed_from_env("mirror_refused_none");
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(40), small_zns(40)]);
    w.format();
    assert_eq!(w.pool_ref().superblock().incompat & INCOMPAT_MIRROR, 0);
    assert!(!PoolConfig::default_for(2).mirrored_volumes);
}

/// Runs GC batches (the placement walks) until no data is moving.
fn walk_to_end(w: &mut World) {
    for _ in 0..400 {
        if !w.pool_ref().moving_data() {
            break;
        }
        w.gc_batch();
        while !w.commit(false) {}
        w.maintenance();
    }
    assert!(!w.pool_ref().moving_data(), "the walk did not end");
}

/// Adds a member of `small_zns(40)`, retrying while the log needs a
/// switch first (`Busy`).
fn add_member(w: &mut World) {
    while !w.commit(false) {}
    let mut added = Err(Error::Busy);
    for _ in 0..40 {
        added = w.add_member_retrying(small_zns(40));
        if added.is_ok() {
            break;
        }
        write_all(w, 1, 0, 8);
        w.checkpoint_now();
        while !w.commit(false) {}
    }
    added.expect("member added");
    while !w.commit(false) {}
    assert!(!w.pool_ref().member_pending());
}

/// The copies a lost member held are rebuilt from the other copies onto a
/// member of neither side, whether it was there before the loss (a spare)
/// or added after: the volume is whole again without the lost member,
/// each block's copies on two members, read back from either.
#[test]
fn a_lost_sides_copies_are_rebuilt_on_another_member() {
    for spare in [true, false] {
        let mut w = world_with("mirror_rebuild", vec![small_zns(40), small_zns(40)]);
        if spare {
            add_member(&mut w);
        }
        write_all(&mut w, 1, 0, 96);
        while !w.commit(false) {}
        assert_eq!(sides(&w, 1), (0b001, 0b010));
        let before = w.st.rebuilt_blocks;
        w.pool().member_lost(1).expect("member lost");
        if !spare {
            // Nowhere apart from the volume's copies: nothing rebuilt.
            walk_to_end(&mut w);
            assert_eq!(
                w.st.rebuilt_blocks, before,
                "rebuilt next to the other copy"
            );
            add_member(&mut w);
        }
        walk_to_end(&mut w);
        let rebuilt = w.st.rebuilt_blocks - before;
        assert!(rebuilt >= 96, "spare {spare}: {rebuilt} blocks rebuilt");
        // The walk that moved them says so (the kernel's uevent).
        let end = w.pool_ref().walk_end();
        assert!(
            end.seq > 0 && end.vol == cid(1) && end.moved_blocks > 0,
            "spare {spare}: the walk's end {end:?}"
        );
        let mc = members_of(&w, cid(1));
        assert!(
            mc[..96].iter().all(|m| *m == Some(2)),
            "spare {spare}: {:?}",
            &mc[..96]
        );
        let mv = members_of(&w, 1);
        assert!(mv[..96].iter().all(|m| *m == Some(0)), "{:?}", &mv[..96]);
        // Both copies read the model's versions.
        let a = w.read_range(1, 0, 96).expect("read");
        assert_eq!(
            a,
            w.read_range(cid(1), 0, 96).expect("read the rebuilt copy")
        );
        // Kept across a power cut.
        while !w.commit(false) {}
        w.crash_and_recover();
        let mc = members_of(&w, cid(1));
        assert!(mc[..96].iter().all(|m| *m == Some(2)), "after recovery");
    }
}

/// The pool address of each block of `lba..lba + n` of table `vol`.
fn addrs_of(w: &World, vol: u32, lba: u64, n: u64) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    let mut runs = [zvcore::pool::ReadRun::default(); 4];
    let mut l = lba;
    while l < lba + n {
        let k = w
            .pool_ref()
            .read_plan(vol, l, lba + n - l, &mut runs)
            .expect("read_plan");
        for r in &runs[..k] {
            for j in 0..r.len {
                out.push(r.addr.map(|a| a + j));
            }
            l += r.len;
        }
    }
    out
}

/// A copy that could not be read is written again from the other copy
/// (`Pool::repair`, asked by the kernel when a read of it failed and the
/// other copy gave the data): the range moves to new places on its side,
/// read from the other copy (its old places hold garbage here), the other
/// copy stays where it was, and both read the same, also after a crash.
/// A table that is not mirrored is refused.
#[test]
fn an_unreadable_copy_is_repaired_from_the_other() {
    let mut w = world_with("mirror_repair", vec![small_zns(40), small_zns(40)]);
    // No user write races with GC here: every block repaired is counted.
    w.gc_race_pct = 0;
    write_all(&mut w, 1, 0, 96);
    while !w.commit(false) {}
    let bad = addrs_of(&w, 1, 16, 32);
    let other = addrs_of(&w, cid(1), 0, 96);
    // What the media returns from those places now: garbage.
    for a in bad.iter().flatten() {
        let (d, off) = w.loc(*a);
        w.devs[d].poke(off, &[0xa5; 4096]);
    }
    w.pool().vol_create(2, b"plain", 64, 0).expect("vol_create");
    w.vols.push(VolModel::new(2, 64));
    assert!(!w.pool().repair(2, 0, 8), "a table that is not mirrored");
    assert!(w.pool().repair(1, 16, 8), "queued");
    assert!(w.pool().repair(1, 20, 4), "within a range queued");
    assert!(w.pool().repair(1, 24, 24), "next to a range queued");
    // A full queue refuses a range that joins none.
    let mut queued = 0;
    for k in 0..16u64 {
        if w.pool().repair(1, 60 + 2 * k, 1) {
            queued += 1;
        }
    }
    assert!(queued < 16, "the queue took every range");
    let singles = addrs_of(&w, 1, 60, 8);
    let before = w.pool_ref().stats().copy_repairs;
    for _ in 0..50 {
        if !w.pool_ref().repair_due() {
            break;
        }
        w.gc_batch();
        while !w.commit(false) {}
        w.maintenance();
    }
    assert!(!w.pool_ref().repair_due(), "the repair did not end");
    let repaired = w.pool_ref().stats().copy_repairs - before;
    assert_eq!(repaired, 32 + queued, "blocks repaired");
    // The single blocks the queue took moved too.
    let moved = singles
        .iter()
        .zip(addrs_of(&w, 1, 60, 8))
        .filter(|(a, b)| **a != *b)
        .count();
    assert_eq!(moved as u64, queued, "single blocks repaired");
    let now = addrs_of(&w, 1, 16, 32);
    for (lba, (b, n)) in bad.iter().zip(&now).enumerate() {
        assert!(n.is_some() && n != b, "lba {}: still at {b:?}", 16 + lba);
    }
    assert_eq!(addrs_of(&w, cid(1), 0, 96), other, "the other copy moved");
    check_copies(&mut w, 1, "after the repair");
    w.crash_and_recover();
    check_copies(&mut w, 1, "after a crash");
}
