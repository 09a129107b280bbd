// SPDX-License-Identifier: GPL-2.0
//! Unit tests of the pool engine.

use super::super::alloc::{DevState, ZoneState};
use super::super::geom::tests::zns;
use super::super::geom::Stream;
use super::super::map::tests::VecStore;
use super::journal::{FULL_BLOCK_RECORDS, SPARSE_BLOCKS_FACTOR};
use super::*;
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

pub(super) type TestPool = Pool<
    Vec<DeviceGeometry>,
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    VecStore,
    Vec<DevState>,
    Box<Superblock>,
>;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Op {
    Flush,
    Reset(u32),
    Finish(u32),
    Write(u64),
}

pub(super) fn rec(ops: &mut Vec<Op>) -> impl FnMut(MetaOp<'_>) -> Result<()> + '_ {
    |op| {
        ops.push(match op {
            MetaOp::Flush => Op::Flush,
            MetaOp::Reset(z) => Op::Reset(z),
            MetaOp::Finish(z) => Op::Finish(z),
            MetaOp::Write(a, b) => {
                assert_eq!(b.len(), BLOCK_SIZE);
                Op::Write(a)
            }
        });
        Ok(())
    }
}

fn new_pool(ops: &mut Vec<Op>) -> TestPool {
    let devs = vec![zns(16, 32, 32), zns(16, 32, 24)];
    let nz = 32;
    let st = PoolStorage {
        zones: vec![ZoneInfo::default(); nz],
        zone_epochs: vec![0; nz],
        vols: vec![VolEntry::default(); 4],
        records: vec![Record::ZoneReset { zone: 0 }; 64],
        nodes: VecStore::new(64),
        devs: vec![DevState::EMPTY; 2],
        sb: Box::new(Superblock::EMPTY),
    };
    let mut cfg = PoolConfig::default_for(2);
    cfg.use_append = false;
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    Pool::format(
        devs,
        [7; 16],
        &[[1; 16], [2; 16]],
        cfg,
        st,
        &mut scratch,
        &mut rec(ops),
    )
    .unwrap()
}

/// A pool of one ZNS member of `nr_zones` zones of `zone_blocks` blocks
/// (regular writes, no zone append), with `nodes` table nodes.
pub(super) fn one_member_pool(nr_zones: u32, zone_blocks: u64, nodes: usize) -> TestPool {
    let mut cfg = PoolConfig::default_for(1);
    cfg.use_append = false;
    one_member_pool_with(nr_zones, zone_blocks, nodes, cfg)
}

/// [`one_member_pool`] with configuration `cfg`.
fn one_member_pool_with(
    nr_zones: u32,
    zone_blocks: u64,
    nodes: usize,
    cfg: PoolConfig,
) -> TestPool {
    one_member_pool_of(zns(nr_zones, zone_blocks, zone_blocks), nodes, cfg)
}

/// A pool of one member of geometry `g`.
fn one_member_pool_of(g: DeviceGeometry, nodes: usize, cfg: PoolConfig) -> TestPool {
    let nz = g.nr_zones as usize;
    let st = PoolStorage {
        zones: vec![ZoneInfo::default(); nz],
        zone_epochs: vec![0; nz],
        vols: vec![VolEntry::default(); 4],
        records: vec![Record::ZoneReset { zone: 0 }; 256],
        nodes: VecStore::new(nodes),
        devs: vec![DevState::EMPTY; 1],
        sb: Box::new(Superblock::EMPTY),
    };
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut ops = Vec::new();
    let devs = vec![g];
    let p = Pool::format(
        devs,
        [7; 16],
        &[[1; 16]],
        cfg,
        st,
        &mut scratch,
        &mut rec(&mut ops),
    );
    p.unwrap()
}

fn write(p: &mut TestPool, vol: u32, lba: u64, n: u64) -> WritePlan {
    let plan = p.write_begin(vol, lba, n, Stream::UserHot).unwrap();
    let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
    assert_eq!(p.write_end(&plan, &addrs).unwrap(), plan.nblocks);
    plan
}

fn lookup(p: &TestPool, vol: u32, lba: u64) -> Option<u64> {
    let mut runs = [ReadRun::default(); 1];
    assert_eq!(p.read_plan(vol, lba, 1, &mut runs).unwrap(), 1);
    runs[0].addr
}

#[test]
fn format_emits_superblocks_and_a_checkpoint() {
    let mut ops = Vec::new();
    let p = new_pool(&mut ops);
    // Superblocks at block 0 of both log zones of both members.
    for a in [0, 32, 16 * 32, 17 * 32] {
        assert!(ops.contains(&Op::Write(a)), "superblock at {a}");
    }
    // The checkpoint ends with a flush; its zone stays open for the
    // deltas that follow it (not finished).
    assert_eq!(ops.last(), Some(&Op::Flush));
    assert!(!ops.contains(&Op::Finish(16 + 3)));
    assert_eq!(p.checkpoint_generation(), 1);
    assert_eq!(p.pending_records(), 0);
}

#[test]
fn flush_orders_data_before_journal() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 100, 0).unwrap();
    write(&mut p, 1, 0, 10);
    assert_eq!(p.pending_records(), 2);
    let mut ops = Vec::new();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)).unwrap(), 1);
    // Data durable first, then the journal block (after the superblock
    // of log zone 0) and its copy at the same offset of member 1's log
    // zone 0 (block 16 x 32 of the pool), then durable.
    assert_eq!(
        ops,
        vec![Op::Flush, Op::Write(1), Op::Write(513), Op::Flush]
    );
    // A second commit may not start before the first ends.
    assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)), Err(Error::Busy));
    p.flush_end(true).unwrap();
    assert_eq!(p.pending_records(), 0);
    assert_eq!(p.journal_seq(), 2);
    // Nothing queued: nothing to do.
    let mut ops = Vec::new();
    assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)).unwrap(), 0);
    assert!(ops.is_empty());
}

#[test]
fn records_queued_during_a_flush_go_to_the_next_commit() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 100, 0).unwrap();
    let plan = p.write_begin(1, 0, 4, Stream::UserHot).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut ops = Vec::new();
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    // The write completes while the flush is in flight.
    let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
    p.write_end(&plan, &addrs).unwrap();
    p.flush_end(true).unwrap();
    assert_eq!(p.pending_records(), 1);
}

#[test]
fn zone_reset_waits_for_the_commit_of_its_invalidation() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 200, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    // Fill whole zones, commit, then overwrite everything.
    for l in (0..128).step_by(8) {
        write(&mut p, 1, l, 8);
    }
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    let full_before = p
        .alloc()
        .zones()
        .iter()
        .filter(|z| z.state() == ZoneState::Full)
        .count();
    assert!(full_before >= 2);
    for l in (0..128).step_by(8) {
        write(&mut p, 1, l, 8);
    }
    // Invalidated but not committed: no reset.
    let mut ops = Vec::new();
    assert_eq!(p.maintenance(&mut rec(&mut ops)).unwrap(), 0);
    assert!(ops.is_empty());
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    // Committed: the resets are journalled first (no reset yet)...
    let mut ops = Vec::new();
    assert_eq!(p.maintenance(&mut rec(&mut ops)).unwrap(), 0);
    assert!(ops.is_empty());
    assert!(p.pending_records() >= 2, "ZoneReset records queued");
    // ... and done once those records are committed.
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    let mut ops = Vec::new();
    let n = p.maintenance(&mut rec(&mut ops)).unwrap();
    assert!(n >= 2, "{n} zones reset");
    assert!(ops.iter().all(|o| matches!(o, Op::Reset(_))));
    assert_eq!(p.stats().zones_reset, u64::from(n));
}

#[test]
fn deferred_resets_free_zones_only_when_done() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 200, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut commit = |p: &mut TestPool| {
        let mut ops = Vec::new();
        let n = p
            .flush_journal_only(&mut scratch, 64, &mut rec(&mut ops))
            .unwrap();
        if n != Some(0) {
            p.flush_end(true).unwrap();
        }
    };
    for _ in 0..2 {
        for l in (0..128).step_by(8) {
            write(&mut p, 1, l, 8);
        }
        commit(&mut p);
    }
    // Journal the resets, commit them.
    let mut ops = Vec::new();
    assert_eq!(p.maintenance_plan(&mut rec(&mut ops), 100).unwrap(), 0);
    commit(&mut p);
    // Planned, at most 1: emitted but the zone is not free yet.
    let free = p.free_zones();
    let mut ops = Vec::new();
    assert_eq!(p.maintenance_plan(&mut rec(&mut ops), 1).unwrap(), 1);
    let Some(&Op::Reset(z)) = ops.iter().find(|o| matches!(o, Op::Reset(_))) else {
        panic!("no reset in {ops:?}");
    };
    assert_eq!(p.free_zones(), free);
    // Not planned again while in flight; the rest is.
    let mut ops2 = Vec::new();
    let more = p.maintenance_plan(&mut rec(&mut ops2), 100).unwrap();
    assert!(more >= 1);
    assert!(!ops2.contains(&Op::Reset(z)));
    // A failed reset is planned again; a done one frees the zone.
    p.reset_end(z, false).unwrap();
    assert_eq!(
        p.reset_end(z, true),
        Err(Error::Invalid("no reset planned"))
    );
    let mut ops3 = Vec::new();
    assert_eq!(p.maintenance_plan(&mut rec(&mut ops3), 100).unwrap(), 1);
    assert_eq!(ops3, vec![Op::Reset(z)]);
    p.reset_end(z, true).unwrap();
    for o in ops2 {
        if let Op::Reset(x) = o {
            p.reset_end(x, true).unwrap();
        }
    }
    assert_eq!(p.free_zones(), free + 1 + more);
    assert_eq!(p.stats().zones_reset, u64::from(1 + more));
}

#[test]
fn records_within_stops_at_the_block_budget() {
    let r = Record::MapExtent {
        vol: 1,
        lba: 0,
        len: 1,
        addr: 0,
    };
    let recs = vec![r; 2000];
    let one = records_within(&recs, 1);
    assert!(one > 10 && one < 2000);
    assert_eq!(journal_blocks_for(&recs[..one]), 1);
    assert_eq!(journal_blocks_for(&recs[..one + 1]), 2);
    let three = records_within(&recs, 3);
    assert_eq!(journal_blocks_for(&recs[..three]), 3);
    assert_eq!(records_within(&recs, 1000), recs.len());
    assert_eq!(records_within(&[], 1), 0);
}

#[test]
fn journal_only_commits_or_asks_for_a_checkpoint() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 100, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    write(&mut p, 1, 0, 4);
    let mut ops = Vec::new();
    let n = p
        .flush_journal_only(&mut scratch, 4, &mut rec(&mut ops))
        .unwrap();
    assert_eq!(n, Some(1));
    assert_eq!(
        ops,
        vec![Op::Flush, Op::Write(1), Op::Write(513), Op::Flush]
    );
    // In flight: no second commit; records queued now wait.
    write(&mut p, 1, 8, 4);
    assert_eq!(
        p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
        Err(Error::Busy)
    );
    p.flush_end(true).unwrap();
    assert_eq!(p.pending_records(), 1);
    // A checkpoint due: nothing emitted, the caller checkpoints.
    p.need_ckpt = true;
    let mut ops = Vec::new();
    assert_eq!(
        p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
        Ok(None)
    );
    assert!(ops.is_empty());
    assert_eq!(p.flush(&mut scratch, &mut rec(&mut ops)), Ok(0));
    p.flush_end(true).unwrap();
    assert_eq!(p.pending_records(), 0);
    // Nothing queued.
    assert_eq!(
        p.flush_journal_only(&mut scratch, 4, &mut rec(&mut ops)),
        Ok(Some(0))
    );
}

/// Journal commits between the steps of a checkpoint (`ckpt_journal.rs`):
/// declined while the checkpoint commits a volume operation; else they take
/// every queued record (the checkpoint's own first, which it then does not
/// commit again) and one at a time.
#[test]
fn journal_commits_between_checkpoint_steps() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 100, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    write(&mut p, 1, 0, 4);
    let steps = |p: &mut TestPool, scratch: &mut [u8]| {
        let mut ops = Vec::new();
        while !p.checkpoint_step(scratch, 8, &mut rec(&mut ops)).unwrap() {}
        p.checkpoint_end(true).unwrap();
    };
    let mut ops = Vec::new();
    p.checkpoint_begin(&mut scratch, &mut rec(&mut ops))
        .unwrap();
    write(&mut p, 1, 8, 4);
    assert_eq!(
        p.journal_in_checkpoint(&mut scratch, 8, &mut rec(&mut ops)),
        Ok(0),
        "a journal commit while the checkpoint commits a volume creation"
    );
    steps(&mut p, &mut scratch);
    assert_eq!(p.pending_records(), 1);
    // Only writes' records queued: journal commits between the steps.
    let mut ops = Vec::new();
    p.checkpoint_begin(&mut scratch, &mut rec(&mut ops))
        .unwrap();
    write(&mut p, 1, 16, 4);
    let seq = p.journal_seq();
    let mut ops = Vec::new();
    assert_eq!(
        p.journal_in_checkpoint(&mut scratch, 8, &mut rec(&mut ops)),
        Ok(1)
    );
    assert_eq!(ops.first(), Some(&Op::Flush));
    assert_eq!(ops.last(), Some(&Op::Flush));
    assert!(ops.iter().any(|o| matches!(o, Op::Write(_))));
    // One at a time; no step until it ends.
    let mut more = Vec::new();
    assert_eq!(
        p.journal_in_checkpoint(&mut scratch, 8, &mut rec(&mut more)),
        Ok(0)
    );
    assert!(more.is_empty());
    p.journal_in_checkpoint_end(true).unwrap();
    assert_eq!(p.pending_records(), 0);
    assert_eq!(p.journal_seq(), seq + 1);
    write(&mut p, 1, 24, 4);
    steps(&mut p, &mut scratch);
    // The checkpoint committed none of the journal commit's records again,
    // and not the one queued after it.
    assert_eq!(p.pending_records(), 1);
    assert_eq!(p.stats().side_commits, 1);
    assert_eq!(p.journal_seq(), seq + 1);
}

/// A checkpoint due while a volume operation is queued: the journal takes
/// the queue first, so that the checkpoint can take journal commits
/// between its steps.
#[test]
fn volume_operations_go_to_the_journal_before_a_checkpoint() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    p.vol_create(1, b"a", 100, 0).unwrap();
    write(&mut p, 1, 0, 4);
    p.set_checkpoint_interval(1);
    p.jblocks_since_ckpt = 8;
    assert!(p.needs_checkpoint());
    let mut ops = Vec::new();
    let n = p
        .flush_journal_only(&mut scratch, 8, &mut rec(&mut ops))
        .unwrap();
    assert_eq!(n, Some(1), "the volume creation goes to the journal first");
    p.flush_end(true).unwrap();
    assert_eq!(p.pending_records(), 0);
    // Then the checkpoint, with only mappings queued: it takes journal
    // commits between its steps.
    write(&mut p, 1, 8, 4);
    assert!(p.needs_checkpoint());
    assert_eq!(
        p.flush_journal_only(&mut scratch, 8, &mut rec(&mut ops)),
        Ok(None)
    );
    p.checkpoint_begin(&mut scratch, &mut rec(&mut ops))
        .unwrap();
    write(&mut p, 1, 16, 4);
    let mut ops = Vec::new();
    assert_eq!(
        p.journal_in_checkpoint(&mut scratch, 8, &mut rec(&mut ops)),
        Ok(1)
    );
}

#[test]
fn failed_write_keeps_the_old_mapping_and_finishes_the_zone() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 100, 0).unwrap();
    let first = write(&mut p, 1, 5, 1);
    let plan = p.write_begin(1, 5, 1, Stream::UserHot).unwrap();
    p.write_end(&plan, &[None]).unwrap();
    assert_eq!(lookup(&p, 1, 5), Some(first.ext[0].addr));
    let mut ops = Vec::new();
    p.maintenance(&mut rec(&mut ops)).unwrap();
    assert_eq!(ops.first(), Some(&Op::Finish(plan.ext[0].zone)));
    // The next write goes elsewhere.
    let next = write(&mut p, 1, 6, 1);
    assert_ne!(next.ext[0].zone, plan.ext[0].zone);
}

#[test]
fn gc_skips_a_victim_it_cannot_read_and_retries_it_later() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 4096, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut commit = |p: &mut TestPool| {
        let mut ops = Vec::new();
        if p.pending_records() > 0 {
            p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
            p.flush_end(true).unwrap();
        }
    };
    // Several zones half overwritten: several victims with live blocks.
    for l in (0..256).step_by(8) {
        write(&mut p, 1, l, 8);
    }
    for l in (0..256).step_by(16) {
        write(&mut p, 1, l, 8);
    }
    commit(&mut p);
    let mut items = [RelocItem::default(); 4];
    let n = p.gc_begin(&mut items).unwrap();
    assert!(n > 0);
    let bad = p.gc_victim().unwrap();
    let valid = p.alloc().zone(bad).unwrap().valid();
    // Every read failed: nothing moves, the victim is given up.
    p.gc_end(&items[..n], &vec![None; n]).unwrap();
    p.gc_skip_victim();
    assert_eq!(p.gc_victim(), None);
    assert_eq!(p.gc_avoided(), &[bad]);
    assert_eq!(p.alloc().zone(bad).unwrap().valid(), valid, "nothing moved");
    // Later batches collect other zones, the avoided one only when no
    // other zone has live blocks ...
    let mut batches = 0u32;
    while batches < GC_AVOID_BATCHES {
        let n = p.gc_begin(&mut items).unwrap();
        if n == 0 {
            break;
        }
        if p.gc_victim() == Some(bad) {
            let a = p.alloc();
            let skip = |z: u32| z == bad || a.zone(z).map(|zi| zi.valid() == 0).unwrap_or(true);
            let other = pick_victim(a, p.cfg.policy, skip);
            assert_eq!(
                other, None,
                "an avoided zone was picked while others were left"
            );
            assert!(p.gc_avoided().is_empty());
            break;
        }
        let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
        p.gc_end(&items[..n], &addrs).unwrap();
        commit(&mut p);
        batches += 1;
    }
    assert!(batches > 0, "no other victim was collected");
    // ... until enough batches moved blocks: then it is retried.
    if batches == GC_AVOID_BATCHES {
        assert!(p.gc_avoided().is_empty());
    }
    for l in 0..256 {
        assert!(lookup(&p, 1, l).is_some(), "lba {l} lost its mapping");
    }
}

#[test]
fn gc_scan_resumes_across_batches_and_retries_failed_copies() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 4096, 0).unwrap();
    // One block of each of 8 leaves per round: every zone holds live
    // blocks of every leaf.
    let lbas: Vec<u64> = (0..24u64)
        .flat_map(|r| (0..8u64).map(move |leaf| leaf * 512 + r))
        .collect();
    let commit = |p: &mut TestPool| {
        if p.pending_records() == 0 {
            return;
        }
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let mut ops = Vec::new();
        p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
        p.flush_end(true).unwrap();
    };
    for (k, &l) in lbas.iter().chain(lbas.iter().step_by(3)).enumerate() {
        write(&mut p, 1, l, 1);
        if k % 16 == 15 {
            commit(&mut p);
        }
    }
    commit(&mut p);
    let mut items = [RelocItem::default(); 3];
    let n = p.gc_begin(&mut items).unwrap();
    assert!(n > 0);
    let victim = p.gc_victim().unwrap();
    let vstart = p.alloc().geom().zone_start(victim).unwrap();
    let vcap = p.alloc().geom().zone_cap(victim).unwrap();
    let in_victim = |a: u64| a >= vstart && a < vstart + vcap;
    // In the first batch that spans two leaves, the copy of the first
    // item fails: its block stays behind the cursor.
    let mut left = None;
    let mut n = n;
    let mut batches = 0;
    loop {
        let mut addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
        let leaf = |it: &RelocItem| it.src.lba / 512;
        if left.is_none() && leaf(&items[0]) != leaf(&items[n - 1]) {
            left = Some(items[0].src);
            addrs[0] = None;
        }
        p.gc_end(&items[..n], &addrs).unwrap();
        commit(&mut p);
        batches += 1;
        assert!(batches < 100);
        if p.gc_victim() != Some(victim) || p.alloc().zone(victim).unwrap().valid() == 0 {
            break;
        }
        n = p.gc_begin(&mut items).unwrap();
        assert!(n > 0, "victim {victim} still valid but nothing found");
    }
    let left = left.expect("no batch spanned two leaves");
    assert!(batches > 2, "the victim took {batches} batches");
    assert_eq!(p.alloc().zone(victim).unwrap().valid(), 0);
    // Everything still mapped, nothing in the victim: the failed copy
    // was found again by a later scan.
    for &l in &lbas {
        let a = lookup(&p, 1, l).unwrap();
        assert!(!in_victim(a), "lba {l} still in the victim");
    }
    assert!(!in_victim(lookup(&p, 1, left.lba).unwrap()));
    assert!(in_victim(left.addr));
}

#[test]
fn gc_moves_live_blocks_unless_overwritten() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"a", 400, 0).unwrap();
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    for l in (0..96).step_by(8) {
        write(&mut p, 1, l, 8);
    }
    // Half of the blocks overwritten: their first zones become victims.
    for l in (0..96).step_by(16) {
        write(&mut p, 1, l, 8);
    }
    let mut items = [RelocItem::default(); 4];
    let n = p.gc_begin(&mut items).unwrap();
    assert!(n > 0);
    let victim = p.gc_victim().unwrap();
    // The cost of freeing the victim: its valid / invalid blocks.
    let (valid, cap) = (
        p.alloc().zone(victim).unwrap().valid(),
        p.alloc().geom().zone_cap(victim).unwrap(),
    );
    let cost0 = p.gc_cost_x1000();
    assert!(cost0 > 0);
    assert_eq!(cost0, relocation_cost_x1000(valid, cap));
    // The user overwrites the first relocated extent meanwhile.
    let raced = items[0].src;
    let w = write(&mut p, 1, raced.lba, raced.len);
    let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
    let moved = p.gc_end(&items[..n], &addrs).unwrap();
    let total: u64 = items[..n].iter().map(|i| i.src.len).sum();
    assert_eq!(moved, total - raced.len);
    assert_eq!(lookup(&p, 1, raced.lba), Some(w.ext[0].addr));
    let it = items[1.min(n - 1)];
    if n > 1 {
        assert_eq!(lookup(&p, 1, it.src.lba), Some(it.dst.addr));
    }
    // Collect the rest, commit, reset.
    while p.gc_victim() == Some(victim) {
        let n = p.gc_begin(&mut items).unwrap();
        if n == 0 {
            break;
        }
        let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
        p.gc_end(&items[..n], &addrs).unwrap();
        // The cost of freeing the victim stays what it was when GC
        // picked it, however much of it is copied already.
        if p.gc_victim() == Some(victim) && p.alloc().zone(victim).unwrap().valid() > 0 {
            assert_eq!(p.gc_cost_x1000(), cost0);
        }
    }
    assert_eq!(p.alloc().zone(victim).unwrap().valid(), 0);
    let mut ops = Vec::new();
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    let mut ops = Vec::new();
    p.maintenance(&mut rec(&mut ops)).unwrap();
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    let mut ops = Vec::new();
    p.maintenance(&mut rec(&mut ops)).unwrap();
    assert!(ops.contains(&Op::Reset(victim)));
}

/// A pool of 16 zones of 16 blocks placing by lifetime.
fn lifetime_pool() -> TestPool {
    let mut cfg = PoolConfig::default_for(1);
    cfg.use_append = false;
    cfg.separate_min_zones = 0;
    let mut p = one_member_pool_with(16, 16, 256, cfg);
    assert!(p.separating());
    let data = u64::from(p.alloc().data_zones()) * 16;
    p.vol_create(1, b"v", data, 0).unwrap();
    p
}

/// Placement by lifetime: data never overwritten goes to the cold stream,
/// a block rewritten while young to the hot one.
#[test]
fn young_rewrites_go_to_the_hot_stream() {
    let mut p = lifetime_pool();
    let hot = |p: &TestPool, plan: &WritePlan| p.alloc().zone(plan.ext[0].zone).unwrap().hot();
    let w = write(&mut p, 1, 0, 8);
    assert!(!hot(&p, &w));
    let w = write(&mut p, 1, 0, 8);
    assert!(hot(&p, &w));
    // An old block (a whole pool's worth of writes ago) goes cold again.
    for i in 1..6 {
        write(&mut p, 1, 8 * i, 8);
        write(&mut p, 1, 8, 8);
    }
    let w = write(&mut p, 1, 0, 8);
    assert!(!hot(&p, &w));
}

/// GC copies the survivors of a cold zone into the cold stream, taking the
/// GC reserve when user writes may not (a full pool must still collect).
#[test]
fn gc_copies_cold_survivors_from_the_reserve() {
    let mut p = lifetime_pool();
    let data = u64::from(p.alloc().data_zones()) * 16;
    // New (cold) data in the first half; then every other 8-block run of
    // its first half rewritten (hot: young), so that the first cold zones
    // hold garbage; then new data until user writes find no space (the GC
    // reserve is left).
    for lba in (0..data / 2).step_by(8) {
        write(&mut p, 1, lba, 8);
    }
    for lba in (0..data / 4).step_by(16) {
        write(&mut p, 1, lba, 8);
    }
    let mut lba = data / 2;
    while lba + 8 <= data {
        match p.write_begin(1, lba, 8, Stream::UserHot) {
            Ok(plan) => {
                let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
                p.write_end(&plan, &addrs).unwrap();
                lba += 8;
            }
            Err(Error::NoSpace) => break,
            Err(e) => panic!("write: {e:?}"),
        }
    }
    assert!(p.free_zones() <= p.alloc().config().gc_reserve);
    let mut items = [RelocItem::default(); 8];
    let n = p.gc_begin(&mut items).unwrap();
    assert!(n > 0, "GC found no space for a cold zone's survivors");
    let victim = p.gc_victim().unwrap();
    assert!(!p.alloc().zone(victim).unwrap().hot());
    let dz = items[0].dst.zone;
    assert_eq!(
        p.alloc().zone(dz).unwrap().state(),
        ZoneState::Open(Stream::UserCold)
    );
    let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
    p.gc_end(&items[..n], &addrs).unwrap();
}

#[test]
fn run_entries_through_writes_gc_and_the_verifier() {
    // Zones of 4096 blocks: sequential writes map whole 2 MiB leaf ranges
    // to consecutive addresses (run entries); GC moves them 64 blocks at a
    // time (splitting them) into the contiguous GC stream (collapsing them
    // again). One member (several: the next test).
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut p = one_member_pool(16, 4096, 256);
    p.vol_create(1, b"a", 16384, 0).unwrap();
    let runs = |p: &TestPool| {
        let t = p.volume(1).unwrap().table.unwrap();
        t.check(p.nodes()).unwrap().runs
    };
    let verify = |p: &mut TestPool| {
        let total = p.geom().total_blocks();
        let mut bits = vec![0u64; super::super::verify::bitmap_words(total)];
        let mut counts = vec![0u64; 16];
        let mut probs = Vec::new();
        super::super::verify::verify(p, &mut bits, &mut counts, &mut |x| probs.push(x)).unwrap();
        assert!(probs.is_empty(), "{probs:?}");
    };
    let mut model = vec![None; 16384];
    for l in (0..6144).step_by(128) {
        let plan = write(&mut p, 1, l, 128);
        for e in plan.extents() {
            for k in 0..e.len {
                model[(l + e.off + k) as usize] = Some(e.addr + k);
            }
        }
    }
    let r0 = runs(&p);
    assert!(r0 >= 4, "sequential writes made {r0} run entries");
    verify(&mut p);
    // Overwrite every other 64 blocks of the first 4096: victims with live
    // blocks (the rest of the runs).
    for l in (0..4096).step_by(128) {
        let plan = write(&mut p, 1, l, 64);
        for e in plan.extents() {
            for k in 0..e.len {
                model[(l + e.off + k) as usize] = Some(e.addr + k);
            }
        }
    }
    let mut items = [RelocItem::default(); 64];
    for _ in 0..200 {
        let n = p.gc_begin(&mut items).unwrap();
        if n == 0 {
            break;
        }
        let addrs: Vec<Option<u64>> = items[..n].iter().map(|i| Some(i.dst.addr)).collect();
        p.gc_end(&items[..n], &addrs).unwrap();
        for it in &items[..n] {
            for k in 0..it.src.len {
                if model[(it.src.lba + k) as usize] == Some(it.src.addr + k) {
                    model[(it.src.lba + k) as usize] = Some(it.dst.addr + k);
                }
            }
        }
        verify(&mut p);
    }
    assert!(p.stats().gc_blocks > 0);
    for (l, a) in model.iter().enumerate() {
        assert_eq!(lookup(&p, 1, l as u64), *a, "lba {l}");
    }
    // The untouched sequential part is still made of run entries.
    assert!(runs(&p) >= 2, "{} run entries left", runs(&p));
    let mut ops = Vec::new();
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
}

/// Two members: a volume written sequentially in pieces of 64 blocks (a
/// VM's requests of 256 KiB) keeps each 2 MiB range on one member,
/// contiguous (a run entry), while its ranges are spread over both
/// members (`sequential`). Before, the allocator sent each piece to the
/// next member: no range was contiguous. (Writers taking turns in one
/// stream still share its open zone, and interleave there, on one member
/// as on several.)
#[test]
fn sequential_writes_keep_their_ranges_together_on_several_members() {
    let st = PoolStorage {
        zones: vec![ZoneInfo::default(); 32],
        zone_epochs: vec![0; 32],
        vols: vec![VolEntry::default(); 4],
        records: vec![Record::ZoneReset { zone: 0 }; 512],
        nodes: VecStore::new(256),
        devs: vec![DevState::EMPTY; 2],
        sb: Box::new(Superblock::EMPTY),
    };
    let mut cfg = PoolConfig::default_for(2);
    cfg.use_append = false;
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut ops = Vec::new();
    let mut p = Pool::format(
        vec![zns(16, 4096, 4096), zns(16, 4096, 4096)],
        [7; 16],
        &[[1; 16], [2; 16]],
        cfg,
        st,
        &mut scratch,
        &mut rec(&mut ops),
    )
    .unwrap();
    p.vol_create(1, b"a", 16384, 0).unwrap();
    let mut members = [0u64; 2];
    for l in (0..8192).step_by(64) {
        for e in write(&mut p, 1, l, 64).extents() {
            members[usize::from(p.geom().zone(e.zone).unwrap().dev)] += e.len;
        }
        if l % 1024 == 0 {
            p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
            p.flush_end(true).unwrap();
        }
    }
    let t = p.volume(1).unwrap().table.unwrap();
    let runs = t.check(p.nodes()).unwrap().runs;
    assert_eq!(runs, 16, "{runs} of the volume's 16 ranges are run entries");
    assert!(
        members.iter().all(|&b| b >= 4096),
        "the ranges were not spread over the members: {members:?}"
    );
}

#[test]
fn checkpoint_interval_counts_full_journal_blocks() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.sb.checkpoint_interval = 4;
    assert!(!p.needs_checkpoint());
    // Four blocks of one record each (an fsync per small write): not yet.
    p.jblocks_since_ckpt = 4;
    p.jrecords_since_ckpt = 4;
    assert!(!p.needs_checkpoint());
    // Full blocks: due at the interval.
    p.jrecords_since_ckpt = 4 * FULL_BLOCK_RECORDS - 1;
    assert!(!p.needs_checkpoint());
    p.jrecords_since_ckpt = 4 * FULL_BLOCK_RECORDS;
    assert!(p.needs_checkpoint());
    // Sparse blocks: due at `SPARSE_BLOCKS_FACTOR` times the interval.
    p.jrecords_since_ckpt = 10;
    p.jblocks_since_ckpt = 4 * SPARSE_BLOCKS_FACTOR - 1;
    assert!(!p.needs_checkpoint());
    p.jblocks_since_ckpt = 4 * SPARSE_BLOCKS_FACTOR;
    assert!(p.needs_checkpoint());
}

/// One member, zones of 64 blocks: a checkpoint set of 64 blocks holds
/// about ten thousand extents, the data zones 15,000 blocks. Volume 1
/// (30,000 blocks) to fill, volume 2 with 8 blocks written.
fn meta_pool() -> (TestPool, Vec<u8>) {
    let mut p = one_member_pool(240, 64, 4096);
    p.vol_create(1, b"big", 30_000, 0).unwrap();
    p.vol_create(2, b"small", 64, 0).unwrap();
    write(&mut p, 2, 0, 8);
    (p, vec![0u8; 2 * BLOCK_SIZE])
}

/// Commits what is queued: the flush's result and its operations.
fn meta_commit(p: &mut TestPool, scratch: &mut [u8]) -> (Result<u64>, Vec<Op>) {
    let mut ops = Vec::new();
    let r = p.flush(scratch, &mut rec(&mut ops));
    if r.is_ok() && !ops.is_empty() {
        p.flush_end(true).unwrap();
    }
    (r, ops)
}

/// A commit of [`meta_fill`]'s caller: the flush's result and operations.
type MetaCommit<'a> = dyn FnMut(&mut TestPool) -> (Result<u64>, Vec<Op>) + 'a;

/// Isolated blocks of volume 1 (one extent each) from `lba` on until a
/// write is refused (`None`) or a commit is (its operations).
fn meta_fill(p: &mut TestPool, lba: &mut u64, commit: &mut MetaCommit<'_>) -> Option<Vec<Op>> {
    while *lba < 30_000 {
        let plan = match p.write_begin(1, *lba, 1, Stream::UserHot) {
            Ok(plan) => plan,
            Err(Error::NoSpace) => return None,
            Err(e) => panic!("write_begin: {e:?}"),
        };
        let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
        p.write_end(&plan, &addrs).unwrap();
        *lba += 2;
        if p.pending_records() > 100 {
            let (r, ops) = commit(p);
            if r == Err(Error::NoSpace) {
                return Some(ops);
            }
            r.unwrap();
        }
    }
    panic!("never refused");
}

/// The block tables never outgrow a checkpoint set silently: once the
/// newest checkpoint uses more than 3/4 of its set, user writes are refused
/// (`NoSpace`) while reads, deletes and commits go on; checkpoints come
/// often enough near the limit that the image cannot outgrow the set
/// between two. A checkpoint that does not fit anyway (here: the refusal
/// switched off) is abandoned, not the pool. A delete brings writes back.
#[test]
fn metadata_headroom_and_checkpoint_overflow() {
    // One member, zones of 64 blocks: a checkpoint set of 64 blocks holds
    // about ten thousand extents, the data zones 15,000 blocks.
    let (mut p, mut scratch) = meta_pool();
    let cap = p.checkpoint_capacity_blocks();
    let mut commit = |p: &mut TestPool| meta_commit(p, &mut scratch);
    let mut lba = 0u64;
    assert!(
        meta_fill(&mut p, &mut lba, &mut commit).is_none(),
        "a checkpoint overflowed"
    );
    let extents = lba / 2;
    assert!(extents > 5_000, "refused after {extents} extents");
    assert!(p.metadata_full() && !p.is_failed());
    assert!(p.stats().checkpoint_blocks * 4 > cap * 3);
    assert_eq!(p.stats().checkpoint_overflows, 0);
    assert!(lookup(&p, 1, lba - 2).is_some() && lookup(&p, 2, 7).is_some());
    // Switch the refusal off: checkpoints come more and more often, then
    // one does not fit; it is abandoned, not the pool.
    let ops = loop {
        assert!(
            p.metadata_full() && !p.meta_full,
            "refused for another reason"
        );
        p.meta_low = false;
        if let Some(ops) = meta_fill(&mut p, &mut lba, &mut commit) {
            break ops;
        }
    };
    assert!(ops.iter().any(|o| matches!(o, Op::Finish(_))));
    assert!(p.metadata_full() && !p.is_failed());
    assert_eq!(p.stats().checkpoint_overflows, 1);
    assert!(!p.needs_checkpoint(), "retried before anything was freed");
    assert_eq!(
        p.write_begin(2, 0, 1, Stream::UserHot).err(),
        Some(Error::NoSpace)
    );
    // The records the abandoned checkpoint was to commit go to the journal.
    assert!(p.pending_records() > 0);
    let (r, _) = commit(&mut p);
    r.unwrap();
    assert_eq!(p.pending_records(), 0);
    assert!(lookup(&p, 1, lba - 2).is_some() && lookup(&p, 2, 7).is_some());
    // Deleting the big volume lets the next checkpoint fit.
    p.vol_delete(1).unwrap();
    assert!(p.needs_checkpoint());
    let (r, _) = commit(&mut p);
    r.unwrap();
    assert!(!p.metadata_full());
    assert_eq!(p.stats().checkpoint_overflows, 1);
    assert!(p.stats().checkpoint_blocks >= 2);
    write(&mut p, 2, 0, 1);
    assert!(lookup(&p, 2, 7).is_some());
}

/// The verifier finds the same problems with a bitmap of the whole pool
/// and with windows of it (one pass per window), including windows that
/// split a zone: a block mapped by two volumes at different lbas (and
/// without the reference that sharing records), a mapping beyond its
/// zone's write pointer.
#[test]
fn verifier_windows_find_what_the_whole_bitmap_finds() {
    use super::super::verify::{bitmap_words, verify, Problem};
    let mut p = one_member_pool(16, 256, 256);
    p.vol_create(1, b"a", 4096, 0).unwrap();
    p.vol_create(2, b"b", 4096, 0).unwrap();
    for l in (0..2048).step_by(100) {
        write(&mut p, 1, l, 37);
        write(&mut p, 2, l + 3, 20);
    }
    let total = p.geom().total_blocks();
    let nz = p.geom().nr_zones() as usize;
    let run = |p: &mut TestPool, words: usize| {
        let mut bits = vec![0u64; words];
        let mut counts = vec![0u64; nz];
        let mut probs = Vec::new();
        let n = verify(p, &mut bits, &mut counts, &mut |x| probs.push(x)).unwrap();
        assert_eq!(n as usize, probs.len());
        probs.sort_by_key(|x| std::format!("{x:?}"));
        probs
    };
    let full = bitmap_words(total);
    // 3 words = 192 blocks: windows split the 256-block zones.
    for words in [full, 1, 3, full - 1] {
        assert_eq!(run(&mut p, words), vec![], "clean pool, {words} words");
    }
    // Volume 2 maps volume 1's block of lba 0 at lba 4000 (no reference
    // recorded), and lba 4001 beyond the write pointer of the block's zone.
    let a = lookup(&p, 1, 0).unwrap();
    // The zone of the newest write is open: past its write pointer is
    // unwritten space.
    let b = lookup(&p, 2, 2022).unwrap();
    let loc = p.geom().locate(b).unwrap();
    let wp = p.alloc.zone(loc.zone).unwrap().wp();
    assert!(wp < p.geom().zone_cap(loc.zone).unwrap());
    let zstart = b - loc.offset;
    let i = slots::find(&p.vols, 2).unwrap();
    let mut t = p.vols[i].table.unwrap();
    t.map_range(&mut p.nodes, 4000, 1, a, |_, _, _| {}).unwrap();
    t.map_range(&mut p.nodes, 4001, 1, zstart + wp, |_, _, _| {})
        .unwrap();
    p.vols[i].table = Some(t);
    let expect = run(&mut p, full);
    assert!(
        expect.iter().any(|x| matches!(
            x,
            Problem::MappedTwice {
                vol: 2,
                lba: 4000,
                ..
            }
        )),
        "{expect:?}"
    );
    assert!(
        expect.iter().any(|x| matches!(
            x,
            Problem::BeyondWritePointer {
                vol: 2,
                lba: 4001,
                ..
            }
        )),
        "{expect:?}"
    );
    assert!(
        expect
            .iter()
            .any(|x| matches!(x, Problem::BlockRefs { addr, .. } if *addr == a)),
        "{expect:?}"
    );
    for words in [1, 3, full - 1] {
        assert_eq!(run(&mut p, words), expect, "{words} words");
    }
    // An empty bitmap is refused.
    let mut counts = vec![0u64; nz];
    assert!(verify(&mut p, &mut [], &mut counts, &mut |_| {}).is_err());
}

/// A one-member pool whose member takes `limit` open and active zones,
/// with a volume 1 committed (its journal zone open), delta checkpoints
/// on or off; and a scratch buffer.
fn limited_pool(limit: u32, deltas: bool) -> (TestPool, Vec<u8>) {
    let mut g = zns(16, 32, 32);
    g.max_open = limit;
    g.max_active = limit;
    let mut cfg = PoolConfig::default_for(1);
    cfg.use_append = false;
    let mut p = one_member_pool_of(g, 64, cfg);
    if !deltas {
        p.sb.incompat &= !super::super::format::INCOMPAT_DELTA_CHECKPOINTS;
    }
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    p.vol_create(1, b"a", 200, 0).unwrap();
    let mut ops = Vec::new();
    p.flush(&mut scratch, &mut rec(&mut ops)).unwrap();
    p.flush_end(true).unwrap();
    (p, scratch)
}

/// A checkpoint that finds a member at its open/active zone limit with
/// writes in flight in every zone counted against it (a full zone whose
/// writes are in flight stays active) is not refused for good: the
/// member's data zones take no new blocks (writes get `Busy`) until one of
/// them has nothing in flight, which the checkpoint then finishes for its
/// slot; after that the member takes writes again.
#[test]
fn checkpoint_at_the_zone_limit_drains_a_data_zone() {
    let (mut p, mut scratch) = limited_pool(3, true);
    // A zone filled by writes still in flight, and a second one open with
    // writes in flight, beside the journal's zone: no slot left.
    let full = p.write_begin(1, 0, 32, Stream::UserHot).unwrap();
    let open = p.write_begin(1, 40, 4, Stream::UserHot).unwrap();
    assert_ne!(full.ext[0].zone, open.ext[0].zone);
    let mut ops = Vec::new();
    assert_eq!(
        p.checkpoint_begin(&mut scratch, &mut rec(&mut ops)),
        Err(Error::Busy)
    );
    assert!(ops.is_empty());
    assert_eq!(p.stats().checkpoint_slot_waits, 1);
    // The member drains: no new blocks in its data zones meanwhile.
    assert!(matches!(
        p.write_begin(1, 50, 1, Stream::UserHot),
        Err(Error::Busy)
    ));
    // Still in flight: retrying does not count another wait.
    assert_eq!(
        p.checkpoint_begin(&mut scratch, &mut rec(&mut ops)),
        Err(Error::Busy)
    );
    assert_eq!(p.stats().checkpoint_slot_waits, 1);
    // The open zone drained: the checkpoint finishes it and begins.
    let addrs: Vec<Option<u64>> = open.extents().iter().map(|e| Some(e.addr)).collect();
    p.write_end(&open, &addrs).unwrap();
    p.checkpoint_begin(&mut scratch, &mut rec(&mut ops))
        .unwrap();
    assert!(ops.contains(&Op::Finish(open.ext[0].zone)));
    while !p
        .checkpoint_step(&mut scratch, 8, &mut rec(&mut ops))
        .unwrap()
    {}
    p.checkpoint_end(true).unwrap();
    let addrs: Vec<Option<u64>> = full.extents().iter().map(|e| Some(e.addr)).collect();
    p.write_end(&full, &addrs).unwrap();
    // Writes are taken again, and everything maps where it was written.
    write(&mut p, 1, 50, 1);
    assert_eq!(lookup(&p, 1, 40), Some(open.ext[0].addr));
    assert_eq!(lookup(&p, 1, 0), Some(full.ext[0].addr));
}

/// A caller that gives up waiting for a slot ends the drain.
#[test]
fn checkpoint_unblock_ends_the_drain() {
    let (mut p, mut scratch) = limited_pool(2, true);
    let mut ops = Vec::new();
    let hot = p.write_begin(1, 0, 4, Stream::UserHot).unwrap();
    assert_eq!(
        p.checkpoint_begin(&mut scratch, &mut rec(&mut ops)),
        Err(Error::Busy)
    );
    assert!(matches!(
        p.write_begin(1, 8, 1, Stream::UserHot),
        Err(Error::Busy)
    ));
    p.checkpoint_unblock();
    let more = p.write_begin(1, 8, 1, Stream::UserHot).unwrap();
    assert_eq!(more.ext[0].zone, hot.ext[0].zone);
}

/// The zone slot of a checkpoint zone is given back only once the
/// operations that end the zone's activity (its finish) are done, not when
/// they are emitted: the device counts the zone until then, and a data
/// zone opened meanwhile would exceed its active limit.
#[test]
fn checkpoint_zone_slots_return_when_their_finishes_are_done() {
    // Full checkpoints only (no chain tail kept open).
    let (mut p, mut scratch) = limited_pool(4, false);
    // The journal's zone and two data zones open.
    p.alloc.alloc(Stream::UserHot, 1).unwrap();
    p.alloc.alloc(Stream::UserCold, 1).unwrap();
    let mut ops = Vec::new();
    p.checkpoint_begin(&mut scratch, &mut rec(&mut ops))
        .unwrap();
    while !p
        .checkpoint_step(&mut scratch, 8, &mut rec(&mut ops))
        .unwrap()
    {}
    assert!(ops.iter().any(|o| matches!(o, Op::Finish(_))));
    // Emitted, not done: the checkpoint zone still holds its slot.
    assert_eq!(p.alloc.closing_zones(), 1);
    assert_eq!(p.alloc.alloc(Stream::Gc, 1), Err(Error::Busy));
    p.checkpoint_end(true).unwrap();
    assert_eq!(p.alloc.closing_zones(), 0);
    p.alloc.alloc(Stream::Gc, 1).unwrap();
}

#[test]
fn pacing_cost_leaves_out_an_evacuated_members_victim() {
    let mut ops = Vec::new();
    let mut p = new_pool(&mut ops);
    p.vol_create(1, b"v", 160, 0).unwrap();
    for l in (0..160).step_by(8) {
        write(&mut p, 1, l, 8);
    }
    // Partly overwritten zones on both members.
    for l in (0..160).step_by(16) {
        write(&mut p, 1, l, 3);
    }
    let on = |p: &TestPool, z: u32, d: u16| p.alloc.geom().zone_dev(z).is_some_and(|(m, _)| m == d);
    let full_on_0 = (0..p.alloc.geom().nr_zones())
        .filter(|z| on(&p, *z, 0))
        .max_by_key(|z| p.alloc.zone(*z).map_or(0, |zi| zi.valid()))
        .unwrap();
    assert!(p.alloc.zone(full_on_0).unwrap().valid() > 0);
    // GC collects member 0's zone at the highest cost (an evacuation's
    // victim, all live).
    p.gc_victim = Some(full_on_0);
    p.gc_victim_cost = crate::gc::MAX_RELOCATION_COST_X1000;
    assert_eq!(
        p.gc_cost_x1000(),
        crate::gc::MAX_RELOCATION_COST_X1000,
        "a usable victim's cost"
    );
    p.alloc.set_evacuating(1);
    let usable = pick_victim(&p.alloc, p.cfg.policy, |z| on(&p, z, 0)).unwrap();
    assert!(on(&p, usable, 1));
    let want = p.zone_cost_x1000(usable);
    assert!(want < crate::gc::MAX_RELOCATION_COST_X1000);
    assert_eq!(
        p.gc_cost_x1000(),
        want,
        "paced writes pay for usable space only"
    );
}
