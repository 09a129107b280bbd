// SPDX-License-Identifier: GPL-2.0
//! Unit tests of the allocator.

use super::super::codec::{Reader, Writer};
use super::super::geom::tests::zns;
use super::super::geom::DevKind;
use super::*;
use std::vec;
use std::vec::Vec;

type A = Allocator<Vec<DeviceGeometry>, Vec<ZoneInfo>>;

fn mk(devs: &[DeviceGeometry], reserve: u32) -> A {
    let g = PoolGeometry::new(devs.to_vec()).unwrap();
    let n = g.nr_zones() as usize;
    Allocator::new(
        g,
        vec![ZoneInfo::default(); n],
        AllocConfig {
            gc_reserve: reserve,
        },
    )
    .unwrap()
}

/// Every counter agrees with a recomputation from the zone table.
fn check(a: &mut A) {
    a.check(false).unwrap();
    let dev = a.dev;
    let (free, valid, clock) = (a.free_zones, a.valid_total, a.clock);
    a.rebuild();
    for (x, y) in dev.iter().zip(a.dev.iter()) {
        assert_eq!(
            (x.free, x.open, x.active, x.meta_open, x.held, x.zone),
            (y.free, y.open, y.active, y.meta_open, y.held, y.zone)
        );
    }
    assert_eq!((free, valid, clock), (a.free_zones, a.valid_total, a.clock));
    for (i, zi) in a.zones().iter().enumerate() {
        assert!(zi.valid <= zi.wp && u64::from(zi.wp) <= a.cap(i as u32));
    }
}

#[test]
fn fresh_pool() {
    let a = mk(&[zns(8, 16, 12), zns(6, 16, 16)], 2);
    assert_eq!(a.free_zones(), 6);
    assert_eq!(a.data_zones(), 6);
    assert_eq!(a.free_blocks(), 4 * 12 + 2 * 16);
    assert_eq!(a.used_blocks(), 0);
    assert_eq!(a.zone(0).unwrap().state(), ZoneState::Meta);
    assert_eq!(a.zone(4).unwrap().state(), ZoneState::Empty);
    let g = PoolGeometry::new(vec![zns(8, 16, 16)]).unwrap();
    assert!(Allocator::new(
        g.clone(),
        vec![ZoneInfo::default(); 7],
        AllocConfig { gc_reserve: 1 }
    )
    .is_err());
    assert!(Allocator::new(
        g.clone(),
        vec![ZoneInfo::default(); 8],
        AllocConfig { gc_reserve: 0 }
    )
    .is_err());
    assert!(Allocator::new(
        g,
        vec![ZoneInfo::default(); 8],
        AllocConfig { gc_reserve: 4 }
    )
    .is_err());
}

#[test]
fn capacity_below_size_and_zone_end() {
    let mut a = mk(&[zns(8, 16, 12)], 1);
    let e = a.alloc(Stream::UserHot, 10).unwrap();
    assert_eq!((e.zone, e.addr, e.len), (4, 64, 10));
    let e2 = a.alloc(Stream::UserHot, 10).unwrap();
    assert_eq!((e2.zone, e2.addr, e2.len), (4, 74, 2)); // capacity 12, not 16
    assert_eq!(a.zone(4).unwrap().state(), ZoneState::Full);
    assert_eq!(a.open_zone(Stream::UserHot, 0), None);
    let e3 = a.alloc(Stream::UserHot, 1).unwrap();
    assert_eq!(e3.addr, 5 * 16);
    assert_eq!(a.used_blocks(), 13);
    assert_eq!(a.free_blocks(), 11 + 2 * 12);
    check(&mut a);
}

#[test]
fn gc_reserve_and_enospc() {
    let mut a = mk(&[zns(8, 16, 16)], 2);
    a.alloc(Stream::UserHot, 16).unwrap();
    a.alloc(Stream::UserHot, 16).unwrap();
    // 2 free zones left = the reserve.
    let before = a.zones().to_vec();
    let (f, u) = (a.free_blocks(), a.used_blocks());
    assert_eq!(a.alloc(Stream::UserHot, 1), Err(Error::NoSpace));
    assert_eq!(a.alloc(Stream::UserCold, 1), Err(Error::NoSpace));
    assert_eq!(a.zones(), &before[..]);
    assert_eq!((a.free_blocks(), a.used_blocks()), (f, u));
    // GC may take the reserve.
    let e = a.alloc(Stream::Gc, 20).unwrap();
    assert_eq!(e.len, 16);
    a.alloc(Stream::Gc, 4).unwrap();
    // A user stream's already open zone stays usable... but there is none.
    assert_eq!(a.alloc(Stream::Gc, 20).unwrap().len, 12);
    assert_eq!(a.alloc(Stream::Gc, 1), Err(Error::NoSpace));
    assert_eq!(a.alloc(Stream::Meta, 1), Err(Error::NoSpace));
    check(&mut a);
}

#[test]
fn open_zone_survives_reserve() {
    let mut a = mk(&[zns(8, 16, 16)], 2);
    a.alloc(Stream::UserHot, 16).unwrap();
    a.alloc(Stream::UserHot, 8).unwrap(); // zone 5 open, 2 free
    assert_eq!(a.alloc(Stream::UserHot, 100).unwrap().len, 8);
    assert_eq!(a.alloc(Stream::UserHot, 1), Err(Error::NoSpace));
}

#[test]
fn open_and_active_limits() {
    let mut g = zns(12, 8, 8);
    g.max_open = 3;
    g.max_active = 4;
    let mut a = mk(&[g], 1);
    // One slot kept for meta: data streams get 2 open zones.
    a.alloc(Stream::UserHot, 1).unwrap();
    a.alloc(Stream::UserCold, 1).unwrap();
    let before = a.zones().to_vec();
    assert_eq!(a.alloc(Stream::Gc, 1), Err(Error::Busy));
    assert_eq!(a.zones(), &before[..]);
    // Meta zones may use the kept slot.
    a.meta_open(0, true).unwrap();
    assert_eq!(a.dev_open_active(0), (3, 3));
    assert_eq!(a.meta_open(1, true), Err(Error::Busy));
    a.meta_open(0, false).unwrap();
    // Closing a written zone frees an open slot but not an active one.
    let z = a.open_zone(Stream::UserHot, 0).unwrap();
    a.close(z).unwrap();
    assert_eq!(a.zone(z).unwrap().state(), ZoneState::Closed);
    assert_eq!(a.dev_open_active(0), (1, 2));
    a.alloc(Stream::Gc, 1).unwrap();
    assert_eq!(a.dev_open_active(0), (2, 3));
    // active 3 + 1 + kept 1 > 4.
    a.close(a.open_zone(Stream::Gc, 0).unwrap()).unwrap();
    assert_eq!(a.alloc(Stream::UserHot, 1), Err(Error::Busy));
    a.finish(z).unwrap();
    assert_eq!(a.dev_open_active(0), (1, 2));
    a.alloc(Stream::UserHot, 1).unwrap();
    check(&mut a);
}

/// A zone full in the allocator stays active on the device while writes
/// into it are in flight, or until its deferred finish is issued: it keeps
/// counting against the active limit until then (a fifth zone opened
/// meanwhile on a device allowing four fails its writes).
#[test]
fn held_zones_count_against_the_active_limit() {
    let mut g = zns(12, 4, 4);
    g.max_open = 0;
    g.max_active = 3;
    let mut a = mk(&[g], 1);
    // Fill a zone by allocation, its writes still in flight.
    let e = a.alloc(Stream::UserHot, 4).unwrap();
    assert_eq!(a.zone(e.zone).unwrap().state(), ZoneState::Full);
    assert!(a.zone(e.zone).unwrap().held());
    assert_eq!(a.dev_open_active(0), (0, 1));
    check(&mut a);
    // One more data zone fits (3 active with the slot kept for meta)...
    let f = a.alloc(Stream::UserCold, 1).unwrap();
    assert_eq!(a.dev_open_active(0), (1, 2));
    // ... a third does not while the first is held.
    assert_eq!(a.alloc(Stream::Gc, 1), Err(Error::Busy));
    a.complete_write(e.addr, 3).unwrap();
    assert!(a.zone(e.zone).unwrap().held());
    a.complete_write(e.addr + 3, 1).unwrap();
    assert!(!a.zone(e.zone).unwrap().held());
    assert_eq!(a.dev_open_active(0), (1, 1));
    let gz = a.alloc(Stream::Gc, 1).unwrap();
    check(&mut a);
    // A write into `f` failed: finished here, on the device later.
    a.finish_deferred(f.zone).unwrap();
    a.abort(f.zone, 1).unwrap();
    assert!(a.zone(f.zone).unwrap().held());
    assert_eq!(a.dev_open_active(0), (1, 2));
    check(&mut a);
    assert_eq!(a.alloc(Stream::UserCold, 1), Err(Error::Busy));
    a.finish_issued(f.zone);
    assert!(!a.zone(f.zone).unwrap().held());
    assert_eq!(a.dev_open_active(0), (1, 1));
    a.alloc(Stream::UserCold, 1).unwrap();
    check(&mut a);
    // A finish issued at once (not deferred) ends it whatever is in
    // flight; a reset ends a deferred one.
    a.finish(gz.zone).unwrap();
    assert!(!a.zone(gz.zone).unwrap().held());
    a.complete_write(gz.addr, 1).unwrap();
    check(&mut a);
}

#[test]
fn reopen_closed_zone() {
    let mut g = zns(10, 16, 16);
    g.max_open = 3;
    g.max_active = 6;
    let mut a = mk(&[g], 1);
    let e = a.alloc(Stream::UserHot, 5).unwrap();
    a.complete_write(e.addr, 5).unwrap();
    a.close(e.zone).unwrap();
    assert_eq!(a.dev_open_active(0), (0, 1));
    let e2 = a.alloc(Stream::UserHot, 1).unwrap();
    // The stream has an open zone again.
    assert_eq!(a.reopen(e.zone, Stream::UserHot), Err(Error::Busy));
    a.reopen(e.zone, Stream::UserCold).unwrap();
    assert_eq!(a.dev_open_active(0), (2, 2));
    let x = a.alloc(Stream::UserCold, 100).unwrap();
    assert_eq!((x.zone, x.addr, x.len), (e.zone, e.addr + 5, 11));
    assert_eq!(a.zone(e.zone).unwrap().state(), ZoneState::Full);
    // Open limit (3, one kept for meta): a second closed zone cannot reopen.
    a.complete_write(e2.addr, 1).unwrap();
    a.close(e2.zone).unwrap();
    let e3 = a.alloc(Stream::Gc, 1).unwrap();
    let e4 = a.alloc(Stream::UserHot, 1).unwrap();
    a.complete_write(e3.addr, 1).unwrap();
    a.complete_write(e4.addr, 1).unwrap();
    assert_eq!(a.reopen(e2.zone, Stream::UserCold), Err(Error::Busy));
    a.close(e4.zone).unwrap();
    a.reopen(e2.zone, Stream::UserCold).unwrap();
    assert!(a.reopen(e.zone, Stream::Meta).is_err()); // full
    assert!(a.reopen(0, Stream::Meta).is_err()); // meta zone
    check(&mut a);
}

#[test]
fn spread_over_devices() {
    let mut a = mk(&[zns(10, 8, 8), zns(10, 8, 8), zns(12, 8, 8)], 2);
    // Device 2 has most free zones: it gets the first zone.
    let e = a.alloc(Stream::UserHot, 1).unwrap();
    assert_eq!(a.geom().zone(e.zone).unwrap().dev, 2);
    let mut per_dev = [0u32; 3];
    for _ in 0..30 {
        let e = a.alloc(Stream::UserHot, 4).unwrap();
        per_dev[a.geom().zone(e.zone).unwrap().dev as usize] += 1;
    }
    assert!(per_dev.iter().all(|&c| c >= 5), "{per_dev:?}");
    // Streams never share a zone.
    let h = a.alloc(Stream::UserHot, 1).unwrap();
    let c = a.alloc(Stream::UserCold, 1).unwrap();
    assert_ne!(h.zone, c.zone);
    check(&mut a);
}

#[test]
fn gc_stream_keeps_one_zone_open() {
    let devs = [zns(10, 8, 8), zns(10, 8, 8), zns(10, 8, 8)];
    let open = |a: &A, s: Stream| (0..3u16).filter(|&d| a.open_zone(s, d).is_some()).count();
    // User streams rotate over equal members: a zone open on each.
    let mut a = mk(&devs, 2);
    for _ in 0..3 {
        a.alloc(Stream::UserCold, 1).unwrap();
    }
    assert_eq!(open(&a, Stream::UserCold), 3);
    // GC copies fill one zone before opening the next (on the member with
    // the most free zones).
    let mut a = mk(&devs, 2);
    let first = a.alloc(Stream::Gc, 1).unwrap();
    for _ in 0..7 {
        assert_eq!(a.alloc(Stream::Gc, 1).unwrap().zone, first.zone);
    }
    assert_eq!(open(&a, Stream::Gc), 0);
    let next = a.alloc(Stream::Gc, 1).unwrap();
    let dev = |a: &A, z: u32| a.geom().zone(z).unwrap().dev;
    assert_ne!(dev(&a, next.zone), dev(&a, first.zone));
    assert_eq!(open(&a, Stream::Gc), 1);
    // The open GC zone busy with a write of the other mode in flight:
    // `Busy` (the engine then borrows another stream's zone), not a second
    // open zone.
    a.complete_write(next.addr, 1).unwrap();
    let (z, _) = a.reserve_append(Stream::Gc, 1).unwrap();
    assert_eq!(z, next.zone);
    assert_eq!(a.alloc(Stream::Gc, 1), Err(Error::Busy));
    assert_eq!(open(&a, Stream::Gc), 1);
    assert_eq!(spread(Stream::Gc, 3), 1);
    assert_eq!(spread(Stream::UserHot, 3), 3);
    assert_eq!(AllocConfig::default_for(1).gc_reserve, 2);
    assert_eq!(AllocConfig::default_for(5).gc_reserve, 2);
    assert_eq!(AllocConfig::default_for(8).gc_reserve, 4);
    check(&mut a);
}

/// An SMR member of 8 zones of 16 blocks: no zone append, no zone limits.
fn smr() -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Smr,
        zone_append: false,
        max_open: 0,
        max_active: 0,
        ..zns(8, 16, 16)
    }
}

#[test]
fn append_out_of_order() {
    let mut a = mk(&[smr(), zns(8, 16, 16)], 1);
    let (z1, l1) = a.reserve_append(Stream::UserHot, 4).unwrap();
    let (z2, l2) = a.reserve_append(Stream::UserHot, 4).unwrap();
    assert_eq!((z1, z2, l1, l2), (12, 12, 4, 4));
    assert_eq!(a.zone(12).unwrap().wp(), 8);
    assert_eq!(a.zone(12).unwrap().inflight(), 8);
    let s = a.geom().zone_start(12).unwrap();
    // The device placed the second append first.
    a.complete_append(12, s, 4).unwrap();
    a.complete_append(12, s + 4, 4).unwrap();
    assert_eq!(a.zone(12).unwrap().inflight(), 0);
    assert!(a.complete_append(12, s, 1).is_err());
    assert!(a.complete_append(12, s + 8, 1).is_err());
    let (z3, _) = a.reserve_append(Stream::UserHot, 2).unwrap();
    assert!(a.complete_append(z3, s + 9, 2).is_err()); // beyond wp
    a.abort(z3, 2).unwrap();
    assert_eq!(a.zone(12).unwrap().valid(), 8);
    let only = mk(&[smr()], 1);
    let mut only = only;
    assert_eq!(
        only.reserve_append(Stream::UserHot, 1),
        Err(Error::Unsupported("zone append"))
    );
    check(&mut a);
}

#[test]
fn write_modes_do_not_mix_in_flight() {
    let mut a = mk(&[zns(8, 16, 16)], 1);
    let e = a.alloc(Stream::UserHot, 2).unwrap();
    assert_eq!(a.reserve_append(Stream::UserHot, 2), Err(Error::Busy));
    a.complete_write(e.addr, 2).unwrap();
    let (z, l) = a.reserve_append(Stream::UserHot, 2).unwrap();
    assert_eq!((z, l), (e.zone, 2));
    assert_eq!(a.alloc(Stream::UserHot, 1), Err(Error::Busy));
    // Another stream is independent.
    assert!(a.alloc(Stream::UserCold, 1).is_ok());
    a.complete_append(z, e.addr + 2, 2).unwrap();
    assert_eq!(a.alloc(Stream::UserHot, 1).unwrap().addr, e.addr + 4);
    check(&mut a);
}

#[test]
fn append_skips_conventional_zones() {
    let mut smr = zns(10, 16, 16);
    smr.kind = DevKind::Smr;
    smr.nr_conv_zones = 5; // zones 0..5 conventional, 5..9 meta, 9 data
    smr.max_open = 0;
    smr.max_active = 0;
    let mut a = mk(&[smr, zns(6, 16, 16)], 1);
    // The SMR member has the most free zones, but only zone 9 can append.
    let (z, l) = a.reserve_append(Stream::Gc, 16).unwrap();
    assert_eq!((z, l), (9, 16));
    let (z, _) = a.reserve_append(Stream::Gc, 1).unwrap();
    assert_eq!(a.geom().zone(z).unwrap().dev, 1);
    // Regular writes use the conventional zones.
    let e = a.alloc(Stream::UserHot, 1).unwrap();
    assert!(a.geom().zone(e.zone).unwrap().conventional);
    assert!(!e.append);
    check(&mut a);
}

#[test]
fn reset_rules_and_validity() {
    let mut a = mk(&[zns(8, 16, 16)], 1);
    let e = a.alloc(Stream::UserHot, 16).unwrap();
    assert_eq!(a.reset(e.zone), Err(Error::Busy));
    a.complete_write(e.addr, 16).unwrap();
    assert_eq!(a.reset(e.zone), Err(Error::Busy));
    a.invalidate(e.addr, 10).unwrap();
    assert_eq!(a.used_blocks(), 6);
    assert_eq!(
        a.invalidate(e.addr, 7),
        Err(Error::Corrupt("alloc: valid count underflow"))
    );
    assert_eq!(a.used_blocks(), 6);
    a.invalidate(e.addr + 10, 6).unwrap();
    let free = a.free_zones();
    a.reset(e.zone).unwrap();
    assert_eq!(a.free_zones(), free + 1);
    assert_eq!(a.zone(e.zone).unwrap().state(), ZoneState::Empty);
    assert!(a.reset(0).is_err()); // meta
    assert!(a.reset(99).is_err());
    assert!(a.invalidate(e.addr, 1).is_err()); // empty zone
    assert!(a.validate(0, 1).is_err()); // meta zone
                                        // Ranges spanning two zones.
    let e1 = a.alloc(Stream::UserHot, 16).unwrap();
    let e2 = a.alloc(Stream::UserHot, 16).unwrap();
    assert_eq!(e1.addr + 16, e2.addr);
    a.complete_write(e1.addr, 16).unwrap();
    a.complete_write(e2.addr, 16).unwrap();
    a.invalidate(e1.addr + 8, 16).unwrap();
    assert_eq!(a.zone(e1.zone).unwrap().valid(), 8);
    assert_eq!(a.zone(e2.zone).unwrap().valid(), 8);
    assert!(a.validate(e1.addr + 8, 17).is_err());
    a.validate(e1.addr + 8, 16).unwrap();
    assert_eq!(a.used_blocks(), 32);
    a.add_refs(e1.addr, 16).unwrap(); // shared blocks: above wp is fine
    assert_eq!(a.zone(e1.zone).unwrap().valid(), 32);
    assert!(a.add_refs(0, 1).is_err());
    a.clear_valid().unwrap();
    assert_eq!(a.used_blocks(), 0);
    // Resetting an open, unwritten-valid zone.
    let e = a.alloc(Stream::Gc, 3).unwrap();
    a.abort(e.zone, 3).unwrap();
    a.reset(e.zone).unwrap();
    assert_eq!(a.open_zone(Stream::Gc, 0), None);
    check(&mut a);
}

#[test]
fn encode_decode_round_trip() {
    let devs = [zns(8, 16, 12), zns(9, 16, 16)];
    let mut a = mk(&devs, 2);
    for i in 0..20 {
        let s = Stream::from_index(i % 3).unwrap();
        let e = a.alloc(s, 5).unwrap();
        a.complete_write(e.addr, e.len).unwrap();
    }
    a.meta_open(1, true).unwrap();
    let mut out = Vec::new();
    let mut cur = 0u32;
    loop {
        let mut blk = [0u8; 64];
        let mut w = Writer::new(&mut blk);
        let done = a.encode_zones(&mut cur, &mut w).unwrap();
        out.push(w.written().to_vec());
        if done {
            break;
        }
    }
    assert!(out.len() > 2);
    let mut b = mk(&devs, 2);
    let mut next = 0;
    for c in &out {
        next = b.decode_zones(&mut Reader::new(c)).unwrap();
    }
    assert_eq!(next, 17);
    b.rebuild();
    assert_eq!(
        a.zones()
            .iter()
            .map(|z| (z.state, z.wp, z.valid, z.seq, z.meta_open))
            .collect::<Vec<_>>(),
        b.zones()
            .iter()
            .map(|z| (z.state, z.wp, z.valid, z.seq, z.meta_open))
            .collect::<Vec<_>>()
    );
    assert_eq!(a.free_blocks(), b.free_blocks());
    assert_eq!(a.used_blocks(), b.used_blocks());
    assert!(a.clock() >= b.clock());
    assert!(a
        .dev
        .iter()
        .zip(b.dev.iter())
        .all(|(x, y)| x.zone == y.zone));
    // Too small a buffer.
    let mut tiny = [0u8; 20];
    let mut cur = 0;
    assert_eq!(
        a.encode_zones(&mut cur, &mut Writer::new(&mut tiny)),
        Err(Error::Truncated)
    );
    // Truncations and corruptions are errors, never panics.
    let c = &out[0];
    for cut in 0..c.len() {
        let mut x = mk(&devs, 2);
        assert!(x.decode_zones(&mut Reader::new(&c[..cut])).is_err());
    }
    let mut rng = 0x1234_5678_9abc_def0u64;
    for _ in 0..2000 {
        let mut bad = c.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % bad.len() as u64) as usize;
        bad[i] ^= 1 << (rng >> 60 & 7);
        let mut x = mk(&devs, 2);
        let _ = x.decode_zones(&mut Reader::new(&bad));
        x.rebuild();
    }
    let mut bad = c.clone();
    bad[0..4].copy_from_slice(&16u32.to_le_bytes());
    assert!(mk(&devs, 2).decode_zones(&mut Reader::new(&bad)).is_err());
}

#[test]
fn set_zone_and_rebuild() {
    let mut a = mk(&[zns(8, 16, 16)], 1);
    a.set_zone(4, ZoneState::Open(Stream::UserHot), 5, 5)
        .unwrap();
    a.set_zone(5, ZoneState::Open(Stream::UserHot), 6, 2)
        .unwrap();
    a.set_zone(6, ZoneState::Open(Stream::Gc), 16, 2).unwrap();
    assert!(a.set_zone(7, ZoneState::Full, 17, 0).is_err());
    assert!(a.set_zone(7, ZoneState::Full, 3, 4).is_err());
    assert!(a.set_zone(0, ZoneState::Full, 3, 3).is_err());
    assert!(a.set_zone(7, ZoneState::Meta, 0, 0).is_err());
    a.rebuild();
    assert_eq!(a.zone(5).unwrap().state(), ZoneState::Closed);
    assert_eq!(a.zone(6).unwrap().state(), ZoneState::Full);
    assert_eq!(a.open_zone(Stream::UserHot, 0), Some(4));
    assert_eq!(a.free_zones(), 1);
    assert_eq!(a.used_blocks(), 9);
    a.set_offline(7).unwrap();
    assert_eq!(a.free_zones(), 0);
    a.check(false).unwrap();
    // Changes without rebuild() are caught by check().
    a.set_zone(7, ZoneState::Full, 4, 4).unwrap();
    assert!(a.check(false).is_err());
    a.rebuild();
    a.check(false).unwrap();
    a.add_refs(a.geom().zone_start(7).unwrap(), 4).unwrap();
    assert!(a.check(false).is_err());
    a.check(true).unwrap();
    a.invalidate(a.geom().zone_start(7).unwrap(), 4).unwrap();
    check(&mut a);
}

#[test]
fn zone_info_is_small() {
    assert!(core::mem::size_of::<ZoneInfo>() <= 24);
}

#[test]
fn tiering_appends_only_within_the_streams_class() {
    // A fast ZNS member (appends) and a slow SMR one (none).
    let mut a = mk(&[zns(8, 16, 16), smr()], 1);
    let dev = |a: &A, z: u32| a.geom().zone(z).unwrap().dev;
    // Without tiering GC's copies may be appended (to the ZNS member).
    a.set_copying(true);
    let (z, _) = a.reserve_append(Stream::Gc, 1).unwrap();
    assert_eq!(dev(&a, z), 0);
    a.complete_append(z, a.geom().zone_start(z).unwrap(), 1)
        .unwrap();
    a.set_copying(false);
    a.set_tiering(true);
    assert!(a.tiering());
    // GC's copies go to the slow class, which cannot append: no append
    // (it would land on the fast member); a write at a write pointer goes
    // to the SMR member.
    a.set_copying(true);
    assert!(matches!(
        a.reserve_append(Stream::Gc, 1),
        Err(Error::Unsupported(_))
    ));
    let e = a.alloc(Stream::UserCold, 1).unwrap();
    assert_eq!(dev(&a, e.zone), 1, "copies on the slow member");
    a.set_copying(false);
    // User writes go to the fast class, which can.
    let (z, _) = a.reserve_append(Stream::UserHot, 1).unwrap();
    assert_eq!(dev(&a, z), 0);
    // The SMR member set fast as well: no tiers, appends as before.
    a.set_slow(0);
    a.set_copying(true);
    assert!(a.reserve_append(Stream::Gc, 1).is_ok());
    a.set_copying(false);
}
