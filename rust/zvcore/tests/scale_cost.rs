// SPDX-License-Identifier: GPL-2.0
//! What the costs that follow the mapped size are, on the host engine:
//! what an assembly after a power cut reads, and how its time divides
//! between its phases (issue 16: "reassembly time after a power cut, 10
//! GiB vs 1 TiB mapped, and what it reads"), and what collecting one GC
//! victim costs (issue 17: "victim collection time vs mapped size"); on
//! the engine: the same `zvcore` the module runs, over a metadata
//! store that counts what recovery reads. Block counts are exact; times are
//! the host's (the module under TCG is some 20-50x slower), for the ratios.
//!
//! `cargo test --release -p zvcore --test scale_cost -- --ignored
//! --nocapture` prints the reports (`REASSEMBLY_DEBUG=1`: the blocks read
//! twice and those that are not metadata); the test that runs by default
//! checks that assembly reads each metadata block at most twice and
//! nothing else, its checkpoint phase the newest chain.

mod harness;
mod sim;

use harness::{St, P};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zvcore::alloc::{DevState, ZoneInfo};
use zvcore::error::Result;
use zvcore::format::{Record, Superblock, BLOCK_SIZE};
use zvcore::geom::{DevKind, DeviceGeometry, Stream, META_ZONES_PER_DEV};
use zvcore::pool::{MetaOp, Pool, PoolConfig, PoolStorage, RelocItem, VolEntry};
use zvcore::recovery::{recover, MetaReader, Phase};
use zvcore::VecStore;

/// Blocks per 1 GiB zone.
const GIB: u64 = 1 << 18;

/// One ZNS member of `zones` zones of 1 GiB (capacity below size, as on
/// real drives).
fn geometry(zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones: zones,
        zone_blocks: GIB,
        zone_cap_blocks: GIB - 6144,
        nr_conv_zones: 0,
        max_open: 14,
        max_active: 14,
        zone_append: true,
        meta_zones: META_ZONES_PER_DEV,
    }
}

fn storage(zones: u32) -> St {
    PoolStorage {
        zones: vec![ZoneInfo::default(); zones as usize],
        zone_epochs: vec![0; zones as usize],
        vols: vec![VolEntry::default(); 16],
        records: vec![
            Record::Unmap {
                vol: 0,
                lba: 0,
                len: 1
            };
            4096
        ],
        nodes: VecStore::new(usize::MAX),
        devs: vec![DevState::EMPTY; 1],
        sb: Box::new(Superblock::EMPTY),
    }
}

/// The member's metadata as written (one member: pool addresses are
/// device blocks, global zones device zones), the data zones' write
/// pointers at the power cut, and what recovery read.
#[derive(Default)]
struct Disk {
    blocks: HashMap<u64, Vec<u8>>,
    /// Written end of each zone (blocks from its start).
    wp: HashMap<u32, u64>,
    zone_blocks: u64,
    /// Zone capacity: where a finished zone's write pointer is reported
    /// (as real devices report it); 0 for the zone size.
    zone_cap: u64,
    /// Blocks recovery read, and when each phase ended.
    reads: u64,
    phases: Vec<(Phase, Instant, u64)>,
    /// Reads by block (which blocks are read twice, which are not
    /// metadata).
    by_block: HashMap<u64, u32>,
    /// The member's two log zones, how often they were reset, and the
    /// most blocks either held.
    log_zones: [u32; 2],
    log_resets: u64,
    log_max: u64,
}

impl Disk {
    fn apply(&mut self, op: MetaOp<'_>) -> Result<()> {
        match op {
            MetaOp::Flush => {}
            MetaOp::Finish(z) => {
                let cap = if self.zone_cap == 0 {
                    self.zone_blocks
                } else {
                    self.zone_cap
                };
                self.wp.insert(z, cap);
            }
            MetaOp::Reset(z) => {
                if self.log_zones.contains(&z) {
                    self.log_resets += 1;
                }
                let s = u64::from(z) * self.zone_blocks;
                self.blocks
                    .retain(|a, _| *a < s || *a >= s + self.zone_blocks);
                self.wp.insert(z, 0);
            }
            MetaOp::Write(a, b) => {
                self.blocks.insert(a, b.to_vec());
                let z = (a / self.zone_blocks) as u32;
                let off = a % self.zone_blocks + 1;
                let wp = self.wp.entry(z).or_insert(0);
                *wp = (*wp).max(off);
                if self.log_zones.contains(&z) {
                    self.log_max = self.log_max.max(*wp);
                }
            }
        }
        Ok(())
    }
}

impl MetaReader for Disk {
    fn read_block(&mut self, _dev: u16, block: u64, buf: &mut [u8]) -> Result<()> {
        self.reads += 1;
        *self.by_block.entry(block).or_insert(0) += 1;
        match self.blocks.get(&block) {
            Some(b) => buf[..BLOCK_SIZE].copy_from_slice(b),
            // Data blocks (not stored: recovery reads none) and unwritten
            // blocks read as zeros.
            None => buf[..BLOCK_SIZE].fill(0),
        }
        Ok(())
    }
    fn zone_wp(&mut self, _dev: u16, zone: u32) -> Result<u64> {
        Ok(self.wp.get(&zone).copied().unwrap_or(0))
    }
    fn phase_done(&mut self, done: Phase) {
        self.phases.push((done, Instant::now(), self.reads));
    }
}

/// A flush: the journal commit (or checkpoint) of what is queued.
fn commit(p: &mut P, disk: &mut Disk, scratch: &mut [u8]) {
    let mut any = false;
    p.flush(scratch, &mut |op| {
        any = true;
        disk.apply(op)
    })
    .expect("flush");
    // (Nothing queued: no commit in flight.)
    if any {
        p.flush_end(true).expect("flush_end");
    }
}

fn write(p: &mut P, disk: &mut Disk, scratch: &mut [u8], lba: u64, n: u64) {
    let plan = loop {
        match p.write_begin(1, lba, n, Stream::UserHot) {
            Ok(plan) => break plan,
            Err(zvcore::error::Error::Busy) => commit(p, disk, scratch),
            Err(e) => panic!("write_begin: {e:?}"),
        }
    };
    // Appends land where planned here (the zone start's offset is the
    // allocator's reservation).
    let addrs: Vec<Option<u64>> = plan.extents().iter().map(|e| Some(e.addr)).collect();
    assert_eq!(p.write_end(&plan, &addrs).expect("write_end"), plan.nblocks);
}

/// What one assembly measured.
#[derive(Debug)]
struct Cost {
    nodes: usize,
    /// Blocks of the newest checkpoint's chain.
    ckpt_blocks: u64,
    journal_blocks: u64,
    /// Metadata blocks on the member at the power cut (superblocks,
    /// journal, checkpoint sets).
    meta_blocks: u64,
    /// Blocks recovery read in all, and in its checkpoint phase.
    reads: u64,
    ckpt_reads: u64,
    /// Log-zone resets before the power cut, and the most blocks a log
    /// zone held.
    log_resets: u64,
    log_max: u64,
    /// Time of each phase (checkpoint, journal, zones) and in all.
    phase: [Duration; 3],
    total: Duration,
    /// The assembly continued the journal and the checkpoint chain; the
    /// first checkpoint after it (after 1,000 more random overwrites): a
    /// delta or not, its blocks, and those of a full image right after it
    /// (what the assembly used to write first).
    resumed: (bool, bool),
    first_delta: bool,
    first_ckpt_blocks: u64,
    full_blocks: u64,
}

/// The order a volume is first mapped in, extent after extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Sequential,
    /// Every other extent first: no two neighbours contiguous on the
    /// media (a zone still holds one region of the volume).
    Fragmented,
    /// A permutation of the extents: a zone holds extents of the whole
    /// volume.
    Scattered,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A pool over one member with room for `mapped_gib` GiB twice (zone
/// appends if `append`), its volume 1 mapped in extents of `extent` blocks
/// in `order`, committed and checkpointed: the pool, its member, a
/// scratch and the volume's size.
fn mapped(
    mapped_gib: u64,
    extent: u64,
    order: Order,
    interval: u32,
    append: bool,
) -> (P, Disk, Vec<u8>, u64) {
    let zones = (mapped_gib * 2 + 64) as u32;
    let g = geometry(zones);
    let mut disk = Disk {
        zone_blocks: g.zone_blocks,
        zone_cap: g.zone_cap_blocks,
        // Meta zones come first: log zones 0 and 1 (`format::layout`).
        log_zones: [0, 1],
        ..Disk::default()
    };
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut cfg = PoolConfig::default_for(1);
    cfg.use_append = append;
    let mut p: P = Pool::format(
        vec![g],
        [7; 16],
        &[[8; 16]],
        cfg,
        storage(zones),
        &mut scratch,
        &mut |op| disk.apply(op),
    )
    .expect("format");
    let size = mapped_gib * (GIB - 6144);
    p.set_checkpoint_interval(interval);
    p.vol_create(1, b"big", size, 0).expect("volume");
    let n = size / extent;
    // Scattered: a permutation of the extents (a stride coprime with
    // their count), so that every zone holds extents of the whole volume.
    let stride = (n / 3 + 1..).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    for k in 0..n {
        let i = match order {
            Order::Sequential => k,
            Order::Fragmented if k < n.div_ceil(2) => 2 * k,
            Order::Fragmented => 2 * (k - n.div_ceil(2)) + 1,
            Order::Scattered => (k * stride) % n,
        };
        write(&mut p, &mut disk, &mut scratch, i * extent, extent);
        if k % 64 == 63 {
            commit(&mut p, &mut disk, &mut scratch);
        }
    }
    commit(&mut p, &mut disk, &mut scratch);
    p.checkpoint(&mut scratch, &mut |op| disk.apply(op))
        .expect("checkpoint");
    p.checkpoint_end(true).expect("checkpoint_end");
    (p, disk, scratch, size)
}

/// A pool over one member with room for `mapped_gib` GiB twice, a volume
/// mapped in extents of `extent` blocks in `order` (fragmented:
/// every other extent first, so that no two neighbours are contiguous),
/// committed and checkpointed; then `overwrites` random 4 KiB overwrites
/// (a flush every 64), and a power cut: what assembly reads and takes.
fn run(mapped_gib: u64, extent: u64, order: Order, overwrites: u64) -> Cost {
    run_with(mapped_gib, extent, order, overwrites, 64, 0)
}

/// [`run`] with a flush every `per_commit` overwrites and a checkpoint
/// interval of `interval` journal blocks (0: the default).
fn run_with(
    mapped_gib: u64,
    extent: u64,
    order: Order,
    overwrites: u64,
    per_commit: u64,
    interval: u32,
) -> Cost {
    let (mut p, mut disk, mut scratch, size) = mapped(mapped_gib, extent, order, interval, true);
    let zones = (mapped_gib * 2 + 64) as u32;
    let g = geometry(zones);
    let mut r = 0x5eed_0016_u64 ^ mapped_gib;
    for i in 0..overwrites {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        write(&mut p, &mut disk, &mut scratch, r % size, 1);
        if i % per_commit == per_commit - 1 {
            commit(&mut p, &mut disk, &mut scratch);
        }
    }
    commit(&mut p, &mut disk, &mut scratch);
    let nodes = p.nodes().live();
    // The newest checkpoint's chain (its full image and deltas).
    let ckpt_blocks = p.scrub_chain().map_or(0, |c| u64::from(c.blocks));
    // The power cut: data zones' write pointers as the allocator has them.
    for z in 0..zones {
        if let Some(zi) = p.alloc().zone(z) {
            if !p.geom().zone(z).is_some_and(|zg| zg.meta) {
                disk.wp.insert(z, zi.wp());
            }
        }
    }
    drop(p);
    let meta_blocks = disk.blocks.len() as u64;
    let (log_resets, log_max) = (disk.log_resets, disk.log_max);
    disk.reads = 0;
    disk.phases.clear();
    let t0 = Instant::now();
    let (p, asm) = recover(
        vec![g],
        &mut disk,
        PoolConfig::default_for(1),
        storage(zones),
        &mut scratch,
        &mut |_| {},
        None,
    )
    .expect("recover");
    let total = t0.elapsed();
    if std::env::var("REASSEMBLY_DEBUG").is_ok() {
        let mut twice: Vec<_> = disk.by_block.iter().filter(|(_, n)| **n > 1).collect();
        twice.sort();
        let mut other: Vec<_> = disk
            .by_block
            .keys()
            .filter(|a| !disk.blocks.contains_key(a))
            .collect();
        other.sort();
        eprintln!("read more than once: {twice:?}\nnot metadata: {other:?}");
    }
    assert_eq!(p.nodes().live(), nodes, "the tables as they were");
    // The first checkpoint after the assembly, after some more overwrites.
    let mut p = p;
    for _ in 0..1000 {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        write(&mut p, &mut disk, &mut scratch, r % size, 1);
    }
    commit(&mut p, &mut disk, &mut scratch);
    let before = p.stats().checkpoint_blocks_written;
    p.checkpoint(&mut scratch, &mut |op| disk.apply(op))
        .expect("checkpoint");
    p.checkpoint_end(true).expect("checkpoint_end");
    let first_ckpt_blocks = p.stats().checkpoint_blocks_written - before;
    let first_delta = p.stats().delta_checkpoints == 1;
    p.request_full_checkpoint();
    let before = p.stats().checkpoint_blocks_written;
    p.checkpoint(&mut scratch, &mut |op| disk.apply(op))
        .expect("checkpoint");
    p.checkpoint_end(true).expect("checkpoint_end");
    let full_blocks = p.stats().checkpoint_blocks_written - before;
    let mut phase = [Duration::ZERO; 3];
    let mut prev = t0;
    let mut ckpt_reads = 0;
    for (ph, at, reads) in &disk.phases {
        let i = match ph {
            Phase::Checkpoint => {
                ckpt_reads = *reads;
                0
            }
            Phase::Journal => 1,
            Phase::Zones => 2,
            Phase::Verify => continue,
        };
        phase[i] = at.duration_since(prev);
        prev = *at;
    }
    Cost {
        nodes,
        log_resets,
        log_max,
        ckpt_blocks,
        journal_blocks: asm.replayed_blocks,
        meta_blocks,
        reads: disk.reads,
        ckpt_reads,
        phase,
        total,
        resumed: (asm.journal_resumed, asm.chain_resumed),
        first_delta,
        first_ckpt_blocks,
        full_blocks,
    }
}

/// Assembly reads the metadata and nothing else, each block at most
/// twice (the journal is scanned, then replayed; the checkpoint chain is
/// checked whole before it is applied, so that a damaged one changes
/// nothing), plus a probe past the chain and one of the other set; its
/// checkpoint phase reads the newest chain (twice) and the superblocks,
/// however much is mapped.
#[test]
fn assembly_reads_the_metadata_at_most_twice() {
    let small = run(2, 2048, Order::Sequential, 2000);
    let large = run(32, 2048, Order::Sequential, 2000);
    let frag = run(2, 32, Order::Fragmented, 2000);
    eprintln!("2 GiB: {small:?}\n32 GiB: {large:?}\n2 GiB fragmented: {frag:?}");
    // The first checkpoint after the assembly is a delta of what changed
    // (the fragmented chain's deltas already add up to its full image: the
    // chain rule makes that one full), and follows what changed, not what
    // is mapped: 16 times the mapping, not twice the blocks.
    for c in [&small, &large] {
        assert!(c.first_delta, "{c:?}");
    }
    assert!(
        large.first_ckpt_blocks <= 2 * small.first_ckpt_blocks,
        "first checkpoint after the assembly {} / {} blocks",
        small.first_ckpt_blocks,
        large.first_ckpt_blocks
    );
    for c in [&small, &large, &frag] {
        assert!(c.journal_blocks > 0 && c.ckpt_blocks > 0, "{c:?}");
        // After a power cut between commits the journal and the chain go
        // on.
        assert_eq!(c.resumed, (true, true), "{c:?}");
        assert!(
            c.reads <= 2 * c.meta_blocks + 4,
            "{} blocks read of {} metadata blocks",
            c.reads,
            c.meta_blocks
        );
        assert!(
            c.ckpt_reads <= 2 * c.ckpt_blocks + 16,
            "{} blocks read in the checkpoint phase for a chain of {}",
            c.ckpt_reads,
            c.ckpt_blocks
        );
    }
}

/// What the scan of GC's collection of one victim costs with `mapped_gib`
/// GiB mapped (extents of `extent` blocks, first written in `order`):
/// 2^17 random 4 KiB overwrites over the whole volume, then GC batches of
/// up to 256 blocks until the victim it picks holds no live block. Returns
/// the node lookups of `gc_begin` (the scan for the victim's live blocks),
/// its calls, the blocks moved, the scan's time and the tables' nodes.
fn victim_cost(mapped_gib: u64, extent: u64, order: Order) -> (u64, u64, u64, Duration, usize) {
    let (p, mut disk, mut scratch, _) = mapped(mapped_gib, extent, order, 0, false);
    let (mut p, size) = (p, mapped_gib * (GIB - 6144));
    let mut r = 0x5eed_0017_u64;
    for i in 0..(1u64 << 17) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        write(&mut p, &mut disk, &mut scratch, r % size, 1);
        if i % 1024 == 1023 {
            commit(&mut p, &mut disk, &mut scratch);
        }
    }
    commit(&mut p, &mut disk, &mut scratch);
    let mut items = vec![RelocItem::default(); 256];
    let gets = |p: &P| p.nodes().gets.load(Ordering::Relaxed);
    let (mut lookups, mut scan_time) = (0u64, Duration::ZERO);
    let (mut calls, mut moved, mut victim) = (0u64, 0u64, None);
    loop {
        calls += 1;
        assert!(calls < 100_000, "no end");
        // The scan for the victim's blocks (the relocation and the commits
        // after it are not counted).
        let (g0, t0) = (gets(&p), Instant::now());
        let n = p.gc_begin_limited(&mut items, 256).expect("gc_begin");
        lookups += gets(&p) - g0;
        scan_time += t0.elapsed();
        if victim.is_none() {
            victim = p.gc_victim();
        }
        if n == 0 {
            if p.gc_scan_more() {
                continue;
            }
            break;
        }
        let addrs: Vec<Option<u64>> = items[..n].iter().map(|it| Some(it.dst.addr)).collect();
        moved += p.gc_end(&items[..n], &addrs).expect("gc_end");
        commit(&mut p, &mut disk, &mut scratch);
        if victim.is_some_and(|v| p.alloc().zone(v).is_none_or(|zi| zi.valid() == 0)) {
            break;
        }
    }
    let v = victim.expect("a victim");
    assert_eq!(
        p.alloc().zone(v).map(|zi| zi.valid()),
        Some(0),
        "victim {v} emptied"
    );
    (lookups, calls, moved, scan_time, p.nodes().live())
}

/// A log zone is left for the other once it holds twice the checkpoint
/// interval and the other is covered, full or not: with one flush per write
/// (a journal block each) and an interval of 16 blocks, no log zone holds
/// more than a checkpoint's worth of sparse blocks (8 x 16) plus twice the
/// interval, and assembly reads about that, not the zone (1 GiB here).
/// A conventional member (no write pointer) with log zones of 256 MiB and
/// about 500 journal blocks (issue 16's case: such a pool took 24-59 s to
/// assemble in the module): assembly reads its log zones up to the pool's
/// span (`INCOMPAT_CONV_LOG_SPAN`, 8,192 blocks by default), not whole as
/// a pool of the older format (span 0) does.
#[test]
fn conventional_log_zones_are_read_to_their_span() {
    let zone = 65_536u64;
    let journal_reads = |span: u32| {
        let g = DeviceGeometry {
            kind: DevKind::Conventional,
            nr_zones: 40,
            zone_blocks: zone,
            zone_cap_blocks: zone,
            nr_conv_zones: 0,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
        };
        let mut disk = Disk {
            zone_blocks: zone,
            log_zones: [0, 1],
            ..Disk::default()
        };
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let mut cfg = PoolConfig::default_for(1);
        cfg.use_append = false;
        cfg.conv_log_blocks = span;
        let mut p: P = Pool::format(
            vec![g],
            [7; 16],
            &[[8; 16]],
            cfg,
            storage(40),
            &mut scratch,
            &mut |op| disk.apply(op),
        )
        .expect("format");
        p.vol_create(1, b"v", 1 << 18, 0).expect("volume");
        for k in 0..500 {
            write(&mut p, &mut disk, &mut scratch, (k * 97) % (1 << 18), 1);
            commit(&mut p, &mut disk, &mut scratch);
        }
        assert!(disk.log_max <= u64::from(if span == 0 { u32::MAX } else { span }));
        drop(p);
        disk.reads = 0;
        disk.phases.clear();
        let (_, asm) = recover(
            vec![g],
            &mut disk,
            PoolConfig::default_for(1),
            storage(40),
            &mut scratch,
            &mut |_| {},
            None,
        )
        .expect("recover");
        let at = |ph: Phase| {
            disk.phases
                .iter()
                .find(|(p, _, _)| *p == ph)
                .map_or(0, |(_, _, r)| *r)
        };
        let journal = at(Phase::Journal) - at(Phase::Checkpoint);
        eprintln!(
            "conventional log zones of {zone} blocks, span {span}: {} journal blocks replayed, the journal phase read {journal} blocks",
            asm.replayed_blocks
        );
        journal
    };
    let with = journal_reads(8192);
    let without = journal_reads(0);
    assert!(with <= 2 * 8192 + 1024, "{with} blocks read with a span");
    assert!(without >= 2 * (zone - 1), "{without} blocks read without");
}

#[test]
fn log_zones_stay_short() {
    let c = run_with(1, 2048, Order::Sequential, 3000, 1, 16);
    eprintln!("{c:?}");
    assert!(c.journal_blocks > 0, "{c:?}");
    assert!(c.log_resets >= 10, "{} log-zone switches", c.log_resets);
    assert!(
        c.log_max <= 8 * 16 + 2 * 16 + 2,
        "a log zone held {} blocks",
        c.log_max
    );
    assert!(c.reads <= 2 * (2 * c.log_max + c.ckpt_blocks) + 16, "{c:?}");
}

/// The figures of `Documentation/benchmarks.md` ("Reassembly against the
/// mapped size", and one GC victim's scan): `cargo test --release -p
/// zvcore --test scale_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn reassembly_cost_report() {
    for (mapped, extent, order) in [
        (10, 2048, Order::Sequential),
        (1024, 2048, Order::Sequential),
        (10, 32, Order::Fragmented),
        (100, 32, Order::Fragmented),
    ] {
        let c = run(mapped, extent, order, 20_000);
        eprintln!(
            "| {mapped} GiB, extents of {} KiB, {order:?} | {} | {} | {} | {} of {} ({} in the checkpoint phase) | {:.0} / {:.0} / {:.0} ms | {:.0} ms | {:?}, delta {}: {} blocks (a full image {}) |",
            extent * 4,
            c.nodes,
            c.ckpt_blocks,
            c.journal_blocks,
            c.reads,
            c.meta_blocks,
            c.ckpt_reads,
            c.phase[0].as_secs_f64() * 1e3,
            c.phase[1].as_secs_f64() * 1e3,
            c.phase[2].as_secs_f64() * 1e3,
            c.total.as_secs_f64() * 1e3,
            c.resumed,
            c.first_delta,
            c.first_ckpt_blocks,
            c.full_blocks,
        );
    }
    // One victim's scan.
    for (mapped, extent, order) in [
        (1, 8, Order::Scattered),
        (10, 8, Order::Scattered),
        (100, 8, Order::Scattered),
        (10, 2048, Order::Sequential),
        (1024, 2048, Order::Sequential),
    ] {
        let (lookups, calls, moved, t, nodes) = victim_cost(mapped, extent, order);
        eprintln!(
            "| {mapped} GiB, extents of {} KiB, {order:?} | {nodes} | {lookups} | {calls} | {moved} | {:.0} ms |",
            extent * 4,
            t.as_secs_f64() * 1e3
        );
    }
}
