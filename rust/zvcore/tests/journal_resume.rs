// SPDX-License-Identifier: GPL-2.0
//! The journal after an assembly (`recovery/resume.rs`): when it is whole
//! (a clean stop, or a power cut that hit no commit) it goes on where it
//! ended, so the first commit is a journal block and no full checkpoint
//! is written at assembly; a crash after such commits, before any
//! checkpoint, loses nothing flushed. A torn tail keeps the old rule (a
//! full checkpoint first), so a block of it is never replayed after newer
//! commits. On one and two members (journal copies), ZNS, SMR and
//! conventional.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use zvcore::format::checkpoint::set_of;
use zvcore::format::layout::checkpoint_zones;
use zvcore::geom::{DevKind, DeviceGeometry, META_ZONES_PER_DEV};

/// A formatted world of `geoms` (metadata copies from two members on)
/// with volume 1.
fn world(name: &str, geoms: Vec<DeviceGeometry>) -> World {
    copies_world_of(name, geoms, 2000)
}

/// A ZNS member of `nr_zones` zones of 64 blocks (capacity 32) with
/// `meta_zones` metadata zones: small checkpoint phases.
fn zns_32(nr_zones: u32, meta_zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones,
        zone_blocks: 64,
        zone_cap_blocks: 32,
        nr_conv_zones: 0,
        max_open: 4,
        max_active: 6,
        zone_append: true,
        meta_zones,
    }
}

/// Writes `n` runs of 4 blocks and commits after each.
fn write_and_flush(w: &mut World, first: u64, n: u64) {
    for k in 0..n {
        w.write_exact(1, first + 8 * k, 4);
        assert!(w.commit(false), "commit");
    }
}

/// Checkpoints and journal blocks the pool wrote since its assembly.
fn written(w: &World) -> (u64, u64) {
    let s = w.pool_ref().stats();
    (s.checkpoints, s.journal_blocks)
}

fn clean_stop_resumes(name: &str, geoms: Vec<DeviceGeometry>) {
    let mut w = world(name, geoms);
    write_and_flush(&mut w, 0, 6);
    // A full checkpoint (its chain kept open: the journal has a zone),
    // then journal blocks after it.
    w.checkpoint_now();
    write_and_flush(&mut w, 50, 3);
    assert!(w.close(), "closing block");
    let resumed = w.st.resumed;
    w.crash_and_recover();
    assert_eq!(w.st.resumed, resumed + 1, "the journal did not go on");
    assert!(w.chain_resumed, "the chain did not go on: {:?}", w.kept_why);
    // The assembly wrote nothing (no checkpoint at once), and the next
    // commits are journal blocks.
    assert_eq!(written(&w), (0, 0));
    write_and_flush(&mut w, 100, 5);
    let (ckpts, jblocks) = written(&w);
    assert_eq!(ckpts, 0, "a checkpoint after a whole journal");
    assert!(jblocks >= 5, "{jblocks} journal blocks for 5 commits");
    // A power cut now (no checkpoint since the assembly): everything
    // flushed before and after the assembly is there (the world checks
    // every block against its model), and the journal goes on again.
    w.crash_and_recover();
    assert_eq!(w.st.resumed, resumed + 2, "the journal did not go on twice");
    write_and_flush(&mut w, 200, 3);
    assert!(w.chain_resumed, "the chain did not go on twice");
    // The first checkpoint after the assembly is a delta after the chain
    // loaded: what the journal replayed and what came since, not a full
    // image; a power cut after it loses nothing either.
    w.checkpoint_now();
    let s = w.pool_ref().stats();
    assert_eq!(
        (s.checkpoints, s.delta_checkpoints),
        (1, 1),
        "the first checkpoint after the assembly is not a delta: {s:?}"
    );
    write_and_flush(&mut w, 300, 2);
    w.crash_and_recover();
    assert!(
        w.st.deltas_loaded >= 1,
        "the delta was not loaded: {:?}",
        w.st.deltas_loaded
    );
}

#[test]
fn clean_stop_resumes_the_journal_zns() {
    clean_stop_resumes("resume_zns", vec![small_zns(40)]);
}

#[test]
fn clean_stop_resumes_the_journal_with_copies() {
    clean_stop_resumes("resume_copies", vec![small_zns(40), small_zns(40)]);
}

#[test]
fn clean_stop_resumes_the_journal_smr() {
    clean_stop_resumes("resume_smr", vec![small_smr(40), small_smr(40)]);
}

/// Conventional data zones too: the assembly takes them as written up to
/// the last block the checkpoint or any replayed record mapped, so the
/// journal kept live never maps a block written over since.
#[test]
fn clean_stop_resumes_the_journal_conventional() {
    clean_stop_resumes("resume_conv", vec![small_conv(40)]);
    clean_stop_resumes("resume_mixed", vec![small_smr(40), small_conv(40)]);
}

/// A power cut in the middle of a commit: its blocks (a torn tail) are not
/// replayed, and the journal must not go on after them (a later assembly
/// would replay them once newer blocks prove them committed). The first
/// commit is then a full checkpoint, as before.
#[test]
fn a_torn_tail_checkpoints_first() {
    let mut w = world("resume_torn", vec![small_zns(40), small_zns(40)]);
    write_and_flush(&mut w, 0, 4);
    // A commit of several journal blocks (single blocks apart do not
    // merge into one record) whose last block never reaches the disk; the
    // blocks before it do (made durable), then the power cut.
    for k in 0..400 {
        w.write_exact(1, 2 * k + 1, 1);
    }
    let (r, ops) = w.meta_call(|p, scratch, mut sink| p.flush(scratch, &mut sink));
    let nblocks = r.expect("flush");
    assert!(nblocks >= 2, "a commit of several blocks: {nblocks}");
    // The blocks before the commit block are made durable by the flush
    // between them (`Flush`, blocks, `Flush`, commit block, `Flush`): the
    // power goes before the commit block is written anywhere.
    let last_flush = ops[..ops.len() - 1]
        .iter()
        .rposition(|o| o.kind == 0)
        .expect("a flush before the commit block");
    assert!(
        ops.get(last_flush + 1).is_some_and(|o| o.kind == 3) && last_flush > 1,
        "blocks, a flush, the commit block: {:?}",
        ops.iter().map(|o| o.kind).collect::<Vec<_>>()
    );
    assert!(!w.exec(&ops, Some(last_flush + 1)));
    for d in w.devs.iter_mut() {
        d.flush();
    }
    w.crash();
    let k = w.resumes.len();
    w.recover_pool();
    assert!(w.st.torn_blocks > 0, "no torn tail");
    assert!(!w.resumes[k], "the journal went on after a torn tail");
    // (The harness commits what recovery left queued: a checkpoint then.)
    let s = w.pool_ref().stats();
    assert!(
        w.pool_ref().needs_checkpoint() || s.checkpoints >= 1,
        "no checkpoint due: {s:?}"
    );
    write_and_flush(&mut w, 100, 3);
    assert!(
        w.pool_ref().stats().checkpoints >= 1,
        "no checkpoint after a torn tail: {:?}",
        w.pool_ref().stats()
    );
    w.crash_and_recover();
}

/// A torn delta may leave blocks in a later zone of its set while losing
/// the ones before them (separate zones: the device keeps a write to one
/// and loses a write to another). The chain must not go on there: its
/// next delta would reach that zone and find it written. (Found by the
/// model test at 3M operations: "meta write at ...: ZoneFull".)
#[test]
fn blocks_in_a_later_zone_of_the_set_end_the_chain() {
    // Two zones a member in each checkpoint set, of 32 blocks.
    let g = zns_32(100, 6);
    let mut w = world("resume_later_zone", vec![g]);
    write_and_flush(&mut w, 0, 4);
    w.checkpoint_now();
    write_and_flush(&mut w, 50, 2);
    assert!(w.close(), "closing block");
    // The chain's set on the member: its tail in the first zone, the
    // second empty.
    let p = w.pool_ref();
    let zones = checkpoint_zones(p.geom(), set_of(p.checkpoint_generation()), 0);
    assert_eq!(zones.len(), 2, "two zones a set: {zones:?}");
    let wp = |w: &World, z: u32| {
        let (d, local) = w.zone_loc(z);
        let (_, at) = w.devs[d].report(local).expect("zone report");
        (d, local, at - w.devs[d].zone_start(local))
    };
    let (_, _, tail) = wp(&w, zones.start);
    assert!(
        tail > 0 && tail < 32,
        "the chain ends inside its first zone: {tail}"
    );
    let (d, local, next) = wp(&w, zones.start + 1);
    assert_eq!(next, 0, "the set's second zone is empty");
    // What a torn delta leaves there: its block in the second zone.
    let at = w.devs[d].zone_start(local);
    w.devs[d].write(at, &[0xa5; 4096]).expect("write");
    w.devs[d].flush();
    w.crash_and_recover();
    assert!(!w.chain_resumed, "the chain went on over a written zone");
    assert_eq!(w.kept_why, Some("blocks past the chain in its set"));
    // The next checkpoint is full, in the other set; checkpoints go on.
    for k in 0..3 {
        write_and_flush(&mut w, 100 + 40 * k, 3);
        w.checkpoint_now();
    }
    w.crash_and_recover();
}

/// A volume the replayed journal empties (every block discarded after the
/// checkpoint): the delta that continues the chain says so, so a later
/// assembly does not bring back what the chain's image maps of it.
#[test]
fn a_volume_emptied_by_the_replay_stays_empty() {
    let mut w = world("resume_emptied", vec![small_zns(40)]);
    write_and_flush(&mut w, 0, 6);
    w.checkpoint_now();
    // Every block of the volume unmapped, in the journal only.
    let size = 2000;
    w.pool().discard(1, 0, size).expect("discard");
    for lba in 0..size {
        w.complete(1, lba, 0);
    }
    assert!(w.commit(false), "commit");
    assert!(w.close(), "closing block");
    w.crash_and_recover();
    assert!(w.chain_resumed, "the chain did not go on: {:?}", w.kept_why);
    w.checkpoint_now();
    assert_eq!(w.pool_ref().stats().delta_checkpoints, 1, "not a delta");
    // The world reads every block back against its model: all unmapped.
    w.crash_and_recover();
}

/// An assembly without the members of `missing` (the harness writes a
/// checkpoint at once, as the kernel does), writes and a checkpoint of at
/// least `min_chain` blocks, a clean stop, then an assembly with every
/// member: the journal must not go on over what was written without them,
/// and the first commit is a full checkpoint.
fn back_after_degraded(w: &mut World, missing: u64, min_chain: u64) {
    w.crash();
    w.missing = missing;
    w.recover_pool();
    write_and_flush(w, 100, 2);
    w.checkpoint_now();
    assert!(
        w.pool_ref().stats().checkpoint_blocks >= min_chain,
        "a chain of fewer than {min_chain} blocks: {:?}",
        w.pool_ref().stats()
    );
    assert!(w.close(), "closing block");
    w.crash();
    w.missing = 0;
    let k = w.resumes.len();
    w.recover_pool();
    assert!(!w.resumes[k], "the journal went on over one copy");
    write_and_flush(w, 200, 2);
    assert!(
        w.pool_ref().stats().checkpoints >= 1,
        "no checkpoint with every member: {:?}",
        w.pool_ref().stats()
    );
    w.crash_and_recover();
}

/// After an assembly without a member, the checkpoints the pool wrote have
/// one copy of some blocks (the missing member's holds an older chain's).
/// When the member is back, the journal must not go on over that chain:
/// the first commit is a full checkpoint with every member, which gives
/// every block its two copies again (else removing the member that holds
/// the only copy would lose the chain).
#[test]
fn a_member_back_after_a_degraded_assembly_checkpoints_first() {
    let mut w = world("resume_degraded", vec![small_zns(40), small_zns(40)]);
    write_and_flush(&mut w, 0, 4);
    w.checkpoint_now();
    back_after_degraded(&mut w, 0b10, 1);
}

/// The same when the journal has both copies (the missing member is not
/// the journal's) and every block of the chain its first copy: only the
/// second copies of some blocks are missing (on the member that was not
/// there), which the assembly reads to tell.
#[test]
fn one_copy_of_the_chain_is_told_by_its_second_copies() {
    // Small checkpoint phases (16 blocks a member), so that a chain of
    // a few dozen blocks has second copies on the third member.
    let g = zns_32(200, META_ZONES_PER_DEV);
    let mut w = world("resume_second_copies", vec![g, g, g]);
    w.create_volume(2, b"w", 8000);
    // Tables of about 3,000 extents: a full checkpoint of some 20 blocks.
    for k in 0..3000 {
        w.write_exact(2, 2 * k, 1);
        if k % 200 == 199 {
            assert!(w.commit(false), "commit");
        }
    }
    assert!(w.commit(false), "commit");
    w.checkpoint_now();
    back_after_degraded(&mut w, 0b100, 17);
}

/// Volume operations in the journal replayed (a create, a snapshot, a grow,
/// a delete): the chain goes on, and its delta carries the volume table
/// and the volumes made anew, as after the engine's own operations; the
/// next assembly loads it with every volume and block as the model has
/// them.
#[test]
fn replayed_volume_operations_go_into_the_delta() {
    let mut w = world("resume_vol_ops", vec![small_zns(40)]);
    write_and_flush(&mut w, 0, 6);
    w.checkpoint_now();
    w.create_volume(2, b"w", 400);
    w.write_exact(2, 10, 4);
    w.snapshot_volume(1, 3, b"v@s");
    w.write_exact(1, 0, 4);
    w.resize_volume(1, 3000);
    w.write_exact(1, 2500, 4);
    w.create_volume(4, b"gone", 100);
    w.write_exact(4, 0, 4);
    w.delete_volume(4);
    assert!(w.commit(false), "commit");
    assert!(w.close(), "closing block");
    w.crash_and_recover();
    assert!(w.chain_resumed, "the chain did not go on: {:?}", w.kept_why);
    w.checkpoint_now();
    let s = w.pool_ref().stats();
    assert_eq!(
        (s.checkpoints, s.delta_checkpoints, s.volume_deltas),
        (1, 1, 1),
        "not a delta with the volume table: {s:?}"
    );
    // The world checks the volume set and every block against its model.
    w.crash_and_recover();
    assert!(w.st.deltas_loaded >= 1, "the delta was not loaded");
}
