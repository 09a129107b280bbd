// SPDX-License-Identifier: GPL-2.0
//! What a scrub reads back of the metadata (`Pool::scrub_chain`,
//! `ChainExtent`): every block the newest checkpoint's chain (its full
//! checkpoint and the deltas after it) wrote, on each of its copies, is
//! named and sound; a block of another checkpoint, a changed byte or a
//! block past the chain is not; the repair (`request_full_checkpoint`)
//! writes a full checkpoint in the other set. The journal blocks an
//! assembly would replay (`journal_block_addrs`) and the superblock copies
//! (`superblock_copies`) are found where they are and sound, also when
//! the journal spans two log zones. `owners_of` names every volume and
//! snapshot mapping given pool blocks, in steps as small as one extent.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::format::BLOCK_SIZE;
use zvcore::map::MapExtent;
use zvcore::pool::ChainExtent;

/// A formatted world of `members` ZNS members of 40 zones (metadata
/// copies from two members on) with volume 1 of `size` blocks.
fn copies_world(name: &str, members: usize, size: u64) -> World {
    copies_world_of(name, (0..members).map(|_| small_zns(40)).collect(), size)
}

/// A pool of `members` ZNS members (with checkpoint copies from two on)
/// whose newest chain is a full checkpoint and at least two deltas.
fn chain_world(name: &str, members: usize) -> World {
    let mut w = copies_world(name, members, 4000);
    for lba in (0..1200).step_by(8) {
        w.write_exact(1, lba, 8);
    }
    assert!(w.commit(false), "commit");
    // After assembly, checkpoints until the chain has two deltas.
    w.crash_and_recover();
    for k in 0..12 {
        w.write_exact(1, 100 + 8 * k, 4);
        assert!(w.commit(false), "commit");
        w.checkpoint_now();
        if w.pool_ref().stats().delta_checkpoints >= 2 {
            break;
        }
    }
    assert!(w.pool_ref().stats().delta_checkpoints >= 2, "deltas");
    w
}

/// Reads the block at pool address `addr` from the world's devices.
fn read_block(w: &World, addr: u64) -> Option<Vec<u8>> {
    let l = w.pool_ref().geom().locate(addr)?;
    let mut b = vec![0u8; BLOCK_SIZE];
    w.devs
        .get(usize::from(l.dev))?
        .read(l.dev_offset, &mut b)
        .ok()?;
    Some(b)
}

/// Every copy of every block of chain `c`: (index, address, contents).
fn chain_blocks(w: &World, c: &ChainExtent) -> Vec<(u32, u64, Option<Vec<u8>>)> {
    let geo = w.pool_ref().geom();
    let mut out = Vec::new();
    for i in 0..c.blocks {
        for a in c.copies(geo, i).into_iter().flatten() {
            out.push((i, a, read_block(w, a)));
        }
    }
    out
}

fn check_chain(name: &str, members: usize) {
    let mut w = chain_world(name, members);
    let c = w.pool_ref().scrub_chain().expect("a chain");
    assert_eq!(c.newest, w.pool_ref().checkpoint_generation());
    assert!(
        c.newest >= c.base + 4,
        "a full checkpoint and 2 deltas: {c:?}"
    );
    let blocks = chain_blocks(&w, &c);
    let copies = if members >= 2 { 2 } else { 1 };
    assert_eq!(blocks.len(), c.blocks as usize * copies, "{c:?}");
    for (i, a, b) in &blocks {
        let b = b
            .as_ref()
            .unwrap_or_else(|| panic!("block {i} at {a}: unreadable"));
        assert!(c.sound(b), "block {i} at {a} of {c:?} not sound");
        let mut bad = b.clone();
        bad[BLOCK_SIZE / 2] ^= 0x40;
        assert!(!c.sound(&bad), "block {i} with a changed byte is sound");
    }
    // The block past the chain is not written (or not this chain's).
    let geo = w.pool_ref().geom();
    if let Some(a) = c.copies(geo, c.blocks)[0] {
        assert!(read_block(&w, a).is_none_or(|b| !c.sound(&b)));
    }
    // Another chain: the same blocks are not sound for it.
    let other = ChainExtent {
        set: c.set ^ 1,
        base: c.base + 1,
        newest: c.newest + 1,
        ..c
    };
    let (_, _, b0) = &blocks[0];
    assert!(!other.sound(b0.as_ref().expect("block 0")));
    // The repair: a full checkpoint, in the other set.
    let s0 = w.pool_ref().stats();
    w.pool().request_full_checkpoint();
    w.checkpoint_now();
    let s1 = w.pool_ref().stats();
    assert_eq!(s1.checkpoints, s0.checkpoints + 1, "no checkpoint");
    assert_eq!(
        s1.delta_checkpoints, s0.delta_checkpoints,
        "a delta, not a full one"
    );
    let n = w.pool_ref().scrub_chain().expect("the new chain");
    assert_eq!(n.set, c.set ^ 1, "{n:?} after {c:?}");
    assert_eq!(n.base, n.newest);
    for (i, a, b) in chain_blocks(&w, &n) {
        assert!(b.is_some_and(|b| n.sound(&b)), "new chain block {i} at {a}");
    }
    // And the pool assembles from it.
    w.crash_and_recover();
}

#[test]
fn the_chain_of_a_one_member_pool() {
    check_chain("the_chain_of_a_one_member_pool", 1);
}

#[test]
fn the_chain_and_its_copies_on_two_members() {
    check_chain("the_chain_and_its_copies_on_two_members", 2);
}

/// Checks every journal block an assembly would replay now: found on each
/// copy, sound for its own sequence number only. Returns the log zones the
/// blocks are in.
fn check_journal(w: &World, copies: usize) -> Vec<u32> {
    let p = w.pool_ref();
    let ids = p.meta_ids();
    let (from, to) = p.scrub_journal_seqs();
    let mut zones = Vec::new();
    for seq in from..to {
        let addrs = p
            .journal_block_addrs(seq)
            .unwrap_or_else(|| panic!("journal block {seq} of {from}..{to}: not found"));
        let found: Vec<u64> = addrs.iter().flatten().copied().collect();
        assert_eq!(found.len(), copies, "block {seq}: copies {addrs:?}");
        for a in found {
            let b = read_block(w, a).unwrap_or_else(|| panic!("block {seq} at {a} unreadable"));
            assert!(
                ids.sound_journal_block(&b, seq),
                "block {seq} at {a} not sound"
            );
            assert!(
                !ids.sound_journal_block(&b, seq + 1),
                "block {seq} sound as {}",
                seq + 1
            );
            let mut bad = b.clone();
            bad[100] ^= 1;
            assert!(
                !ids.sound_journal_block(&bad, seq),
                "block {seq}: a changed byte is sound"
            );
            let z = p.geom().zone_of(a).expect("zone");
            if !zones.contains(&z) {
                zones.push(z);
            }
        }
    }
    assert!(
        p.journal_block_addrs(to).is_none(),
        "block {to} is not written yet"
    );
    zones
}

fn check_journal_and_superblocks(name: &str, members: usize) {
    let mut w = copies_world(name, members, 4000);
    let copies = if members >= 2 { 2 } else { 1 };
    // One journal block or two per commit: the journal fills a log zone
    // (200 blocks), checkpoints come at half of it, and the journal since
    // the newest checkpoint spans two log zones after a switch.
    let mut spanned = false;
    let mut seen = 0u64;
    for k in 0..600u64 {
        w.write_exact(1, (k * 8) % 3000, 4);
        assert!(w.commit(false), "commit {k}");
        let (from, to) = w.pool_ref().scrub_journal_seqs();
        seen = seen.max(to.saturating_sub(from));
        if check_journal(&w, copies).len() > copies {
            if !spanned {
                // A clean stop there: the journal goes on across the
                // switch (its first blocks at the end of the other log
                // zone) and is found where it is.
                let r = w.st.resumed;
                assert!(w.close(), "closing block");
                w.crash_and_recover();
                assert_eq!(w.st.resumed, r + 1, "the journal did not go on");
                assert!(
                    check_journal(&w, copies).len() > copies,
                    "the journal to replay no longer spans two log zones"
                );
            }
            spanned = true;
        }
    }
    assert!(
        seen >= 10,
        "at most {seen} journal blocks since a checkpoint"
    );
    assert!(
        spanned,
        "the journal since the checkpoint never spanned two log zones"
    );
    // A checkpoint covers them all.
    w.checkpoint_now();
    let (from, to) = w.pool_ref().scrub_journal_seqs();
    assert_eq!(from, to, "blocks to replay after a checkpoint");
    // Superblocks: two per member, each sound for its member only.
    let p = w.pool_ref();
    let ids = p.meta_ids();
    for d in 0..members as u16 {
        let (addrs, uuid) = p.superblock_copies(d).expect("member");
        for (i, a) in addrs.iter().enumerate() {
            let a = a.expect("superblock address");
            let b = read_block(&w, a).expect("superblock readable");
            assert!(ids.sound_superblock(&b, &uuid), "member {d} log zone {i}");
            if members > 1 {
                let other = (d + 1) % members as u16;
                let (_, ou) = p.superblock_copies(other).expect("member");
                assert!(!ids.sound_superblock(&b, &ou), "member {d}'s as {other}'s");
            }
            let mut bad = b.clone();
            bad[200] ^= 0x10;
            assert!(
                !ids.sound_superblock(&bad, &uuid),
                "a changed byte is sound"
            );
        }
    }
    assert!(p.superblock_copies(members as u16).is_none());
    // After a power cut (and the checkpoint the engine writes first, and
    // what the harness commits after it): what is to replay is found.
    w.crash_and_recover();
    check_journal(&w, copies);
    for k in 0..40u64 {
        w.write_exact(1, k * 8, 4);
        assert!(w.commit(false), "commit {k} after assembly");
        check_journal(&w, copies);
    }
}

#[test]
fn journal_and_superblocks_of_a_one_member_pool() {
    check_journal_and_superblocks("journal_and_superblocks_of_a_one_member_pool", 1);
}

#[test]
fn journal_and_superblocks_with_copies_on_two_members() {
    check_journal_and_superblocks("journal_and_superblocks_with_copies_on_two_members", 2);
}

/// Every (volume id, lba, pool address) that maps a block of
/// `addr..addr + len`, by looking up every lba of every table.
fn owners_brute(w: &World, addr: u64, len: u64) -> Vec<(u32, u64, u64)> {
    let p = w.pool_ref();
    let mut out = Vec::new();
    for v in p.volumes() {
        let Some(t) = v.table else { continue };
        for lba in 0..t.size() {
            if let Some(a) = t.lookup(p.nodes(), lba) {
                if a >= addr && a < addr + len {
                    out.push((v.id, lba, a));
                }
            }
        }
    }
    out.sort();
    out
}

/// `owners_of` in steps of `budget` extents with room for `room` at a time.
fn owners_stepped(
    w: &World,
    addr: u64,
    len: u64,
    budget: u32,
    room: usize,
) -> Vec<(u32, u64, u64)> {
    let p = w.pool_ref();
    let mut out = Vec::new();
    let mut buf = vec![
        MapExtent {
            vol: 0,
            lba: 0,
            len: 0,
            addr: 0
        };
        room
    ];
    let mut cursor = Some((0, 0));
    let mut calls = 0;
    while let Some(c) = cursor {
        let (n, next) = p.owners_of(addr, len, c, budget, &mut buf);
        for e in &buf[..n] {
            assert!(
                e.len >= 1 && e.addr >= addr && e.addr + e.len <= addr + len,
                "{e:?}"
            );
            for k in 0..e.len {
                out.push((e.vol, e.lba + k, e.addr + k));
            }
        }
        cursor = next;
        calls += 1;
        assert!(calls < 100_000, "no end");
    }
    out.sort();
    out
}

#[test]
fn owners_of_names_every_volume_and_snapshot() {
    let name = "owners_of_names_every_volume_and_snapshot";
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(40)]);
    w.degraded_pct = 0;
    w.format();
    w.create_volume(1, b"a", 600);
    w.create_volume(2, b"b", 600);
    for k in 0..60u64 {
        w.write_exact(1 + (k % 2) as u32, (k * 37) % 590, 1 + k % 9);
    }
    w.complete_all();
    // A snapshot of a shares its blocks until a is overwritten.
    w.pool().snap_create(1, 3, b"a@s").expect("snapshot");
    for k in 0..20u64 {
        w.write_exact(1, (k * 53) % 590, 4);
    }
    w.complete_all();
    assert!(w.commit(false), "commit");
    // Blocks of a, of b, shared with the snapshot, overwritten (no owner).
    let mut shared = 0;
    let mut dead = 0;
    let mut rng = Rng::new(seed ^ 0x5a);
    let geo_end = w.pool_ref().geom().total_blocks();
    for round in 0..60u64 {
        // Mostly around a block written above (of a, of b, or of a as the
        // snapshot has it); sometimes anywhere.
        let near = if round % 4 == 3 {
            None
        } else {
            let k = rng.below(60);
            let mut vol = 1 + (k % 2) as u32;
            if vol == 1 && rng.below(2) == 0 {
                vol = 3;
            }
            let t = w
                .pool_ref()
                .volumes()
                .iter()
                .find(|v| v.id == vol)
                .and_then(|v| v.table);
            t.and_then(|t| t.lookup(w.pool_ref().nodes(), (k * 37) % 590))
        };
        let addr = match near {
            Some(a) => a.saturating_sub(rng.below(4)),
            None => rng.below(geo_end),
        };
        let len = 1 + rng.below(16);
        let want = owners_brute(&w, addr, len);
        if want.iter().any(|o| o.0 == 3) && want.iter().any(|o| o.0 == 1) {
            shared += 1;
        }
        if want.is_empty() {
            dead += 1;
        }
        for (budget, room) in [(u32::MAX, 64), (1, 1), (3, 2)] {
            let got = owners_stepped(&w, addr, len, budget, room);
            assert_eq!(
                got, want,
                "round {round}: blocks {addr}+{len}, budget {budget}, room {room}"
            );
        }
    }
    // The rounds above are random: the written blocks, with a snapshot.
    let t = w
        .pool_ref()
        .volumes()
        .iter()
        .find(|v| v.id == 3)
        .and_then(|v| v.table)
        .expect("snapshot");
    let mut checked = 0;
    for lba in (0..600).step_by(7) {
        if let Some(a) = t.lookup(w.pool_ref().nodes(), lba) {
            let want = owners_brute(&w, a, 1);
            assert!(want.contains(&(3, lba, a)), "snapshot block {lba} at {a}");
            assert_eq!(
                owners_stepped(&w, a, 1, 2, 1),
                want,
                "snapshot block {lba} at {a}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} snapshot blocks");
    eprintln!("{shared} shared, {dead} without owner of 60 ranges; {checked} snapshot blocks");
    assert!(
        shared >= 10 && dead >= 5,
        "{shared} shared, {dead} without owner"
    );
}

/// After the journal's mirror is removed (the next member becomes the
/// mirror at the log-zone switch that commits the removal), the journal
/// blocks of the log zone before the switch are still found where they
/// were written: on the journal member and the old mirror, not the new one.
#[test]
fn journal_blocks_after_the_mirror_is_removed() {
    let mut w = copies_world("journal_blocks_after_the_mirror_is_removed", 3, 3000);
    for k in 0..40u64 {
        w.write_exact(1, k * 8, 8);
        assert!(w.commit(false), "commit {k}");
    }
    let (jdev, mirror) = w.pool_ref().journal_members();
    assert_eq!(mirror, Some(1), "member 1 mirrors the journal of {jdev}");
    // Member 1 emptied, then removed.
    w.pool().evacuate(Some(1)).expect("evacuate");
    for _ in 0..400 {
        if w.pool_ref().evacuation().is_none_or(|e| e.left_blocks == 0) {
            break;
        }
        w.gc_batch();
        w.complete_all();
        assert!(w.commit(false), "commit");
        w.maintenance();
        w.end_resets();
    }
    assert_eq!(
        w.pool_ref().evacuation().map(|e| e.left_blocks),
        Some(0),
        "evacuated"
    );
    // A checkpoint, a few journal blocks after it, then the removal (a
    // removal refused until the checkpoint is laid out for it: again).
    let mut before = Vec::new();
    for attempt in 0.. {
        assert!(attempt < 5, "the removal is refused");
        w.checkpoint_now();
        for k in 0..6u64 {
            w.write_exact(1, 2000 + k * 8, 8);
            assert!(w.commit(false), "commit {k}");
        }
        w.complete_all();
        w.end_resets();
        before = check_journal(&w, 2);
        match w.pool().member_remove(1, false) {
            Ok(()) => break,
            Err(Error::Busy) => continue,
            Err(e) => panic!("remove: {e:?}"),
        }
    }
    assert!(w.commit(false), "the removal's commit");
    let (_, m2) = w.pool_ref().journal_members();
    assert_eq!(m2, Some(2), "member 2 mirrors the journal now");
    let (from, to) = w.pool_ref().scrub_journal_seqs();
    assert!(
        to > from + 6,
        "the blocks before the removal still to replay: {from}..{to}"
    );
    let after = check_journal(&w, 2);
    assert!(
        before.iter().all(|z| after.contains(z)),
        "log zones {before:?} before the removal, {after:?} after"
    );
}
