// SPDX-License-Identifier: GPL-2.0
//! GC simulator: write amplification of the real engine under sustained
//! 4 KiB overwrites.
//!
//! The simulated pool is the real [`Pool`] (allocator, block tables, journal,
//! checkpoints, zone resets after their commit) driven the way the kernel
//! drives it (`rust/gc.rs`, `rust/commit.rs`): GC batches of at most 256
//! blocks (`gc_begin_limited` / `gc_end`) run while the free zones are at the
//! core's start level ([`gc_start_level`]) or a write found no space; a
//! commit (journal, then zone resets) follows when the victim is done or
//! every 8 batches. Data is not stored: only the metadata operations are
//! performed (and discarded), so a pool of 1000+ zones runs in seconds.
//!
//! A run fills the volume, warms up with one volume's worth of random
//! overwrites and measures WA = (user + GC blocks) / user blocks over the
//! next `measure` volumes of overwrites. The analytic reference is the
//! LFS / Desnoyers model of greedy (and FIFO) cleaning under uniform random
//! writes: the victim's valid share `x` solves `1 - x = -u ln x`, WA =
//! `1 / (1 - x)` (about 2.69 at u = 0.8; greedy over small zones does a
//! little better thanks to the spread of valid counts).
//!
//! `cargo test --release -p zvcore --test gcsim -- --ignored --nocapture`
//! prints the full table; the default cases are regression thresholds.

mod sim;

use sim::Rng;
use std::sync::atomic::Ordering;
use std::time::Instant;
use zvcore::alloc::{DevState, ZoneInfo};
use zvcore::error::Error;
use zvcore::format::{Record, Superblock, BLOCK_SIZE};
use zvcore::gc::{background_level, gc_start_level, Policy};
use zvcore::geom::{DevKind, DeviceGeometry, Stream, META_ZONES_PER_DEV};
use zvcore::pool::{MetaOp, Pool, PoolConfig, PoolStorage, RelocItem, VolEntry};

// ---- node store ------------------------------------------------------------

/// Block-table nodes on the heap (no limit).
/// The simulator's node store.
type Nodes = zvcore::VecStore;

type SimPool = Pool<
    Vec<DeviceGeometry>,
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    Nodes,
    Vec<DevState>,
    Box<Superblock>,
>;

// ---- configuration ----------------------------------------------------------

/// Pool shape: `members` ZNS members of `zones` zones of `zone_blocks`
/// blocks each (4 of every member's zones are metadata zones).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub members: u16,
    pub zones: u32,
    pub zone_blocks: u64,
}

/// About 60 data zones (gc.sh's 64 x 4 MiB zones, scaled down to 1 MiB).
pub const SMALL: Shape = Shape {
    members: 1,
    zones: 64,
    zone_blocks: 256,
};

/// 256 data zones of 1 MiB on 2 members (the regression tests).
pub const MEDIUM: Shape = Shape {
    members: 2,
    zones: 132,
    zone_blocks: 256,
};

/// 1024 data zones of 1 MiB on 8 members (a checkpoint set is one zone
/// per member and holds about 25 bytes per randomly written block: fewer
/// members of such small zones cannot checkpoint a 90 % full pool).
pub const LARGE: Shape = Shape {
    members: 8,
    zones: 132,
    zone_blocks: 256,
};

/// Which blocks the overwrites hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Workload {
    Uniform,
    /// `writes` % of the writes go to `space` % of the volume.
    HotCold {
        writes: u64,
        space: u64,
    },
    /// Zipf with exponent `theta` over the volume's blocks (ranks spread
    /// over the volume by a fixed permutation).
    Zipf(f64),
}

impl Workload {
    pub fn name(&self) -> String {
        match *self {
            Workload::Uniform => "uniform".into(),
            Workload::HotCold { writes, space } => format!("{writes}/{space}"),
            Workload::Zipf(t) => format!("zipf {t:.2}"),
        }
    }
}

/// When GC runs (free zones at or below the level) and which victims it
/// picks.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    pub policy: Policy,
    /// GC start level; `None`: the core's [`gc_start_level`].
    pub start: Option<fn(u32, u32) -> u32>,
    /// User writes placed by expected lifetime ([`PoolConfig::separate`]).
    pub separate: bool,
    /// ... even on members smaller than the default minimum.
    pub force_separate: bool,
    /// GC reserve; `None`: the core's default.
    pub reserve: Option<u32>,
    /// The volume has a quota (its size) and a reservation (half of it):
    /// the space rules are checked on every write, never refuse one.
    pub rules: bool,
    /// A reassembly (the placement history forgotten, as assembly leaves
    /// it) after every this many thousandths of the volume written.
    pub forget_every: Option<u64>,
}

impl Knobs {
    pub const DEFAULT: Knobs = Knobs {
        policy: Policy::CostBenefit,
        start: None,
        separate: true,
        force_separate: false,
        reserve: None,
        rules: false,
        forget_every: None,
    };
}

/// One simulation.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub shape: Shape,
    pub util_pct: u64,
    pub load: Workload,
    pub knobs: Knobs,
    /// Overwrites for warm-up and measurement, in volumes.
    pub warmup: f64,
    pub measure: f64,
    pub seed: u64,
}

/// What a simulation measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub user: u64,
    pub gc: u64,
    /// Data zones and the free zones held on average during measurement.
    pub data_zones: u32,
    pub avg_free: f64,
    /// Unwritten space of the open zones on average, in zones.
    pub avg_open: f64,
    pub zone_cap: u64,
    pub vol_blocks: u64,
    pub secs: f64,
    /// The pool ran out of space (GC could free nothing).
    pub stuck: bool,
    /// Node lookups per GC plan (finding the victim's live blocks).
    pub gets_per_plan: f64,
    /// `gc_begin_limited` calls per plan (each scans a bounded part).
    pub calls_per_plan: f64,
}

impl Outcome {
    pub fn wa(&self) -> f64 {
        (self.user + self.gc) as f64 / self.user.max(1) as f64
    }
}

// ---- analytic reference ----------------------------------------------------

/// Victim valid share of greedy / FIFO cleaning under uniform random writes
/// at utilisation `u` (LFS / Desnoyers): the root in (0, 1) of
/// `1 - x + u ln x = 0` (bisection; the function rises then falls on (0, 1)
/// with a root at 1: search below its maximum at `x = u`).
pub fn victim_share(u: f64) -> f64 {
    assert!(u > 0.0 && u < 1.0);
    let f = |x: f64| 1.0 - x + u * x.ln();
    let (mut lo, mut hi) = (1e-12, u);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Analytic WA of greedy / FIFO cleaning under uniform random writes.
pub fn analytic_wa(u: f64) -> f64 {
    1.0 / (1.0 - victim_share(u))
}

// ---- workload generators -----------------------------------------------------

struct Gen {
    load: Workload,
    size: u64,
    /// Zipf: cumulative probabilities by rank; and rank -> lba.
    cdf: Vec<f64>,
    perm: Vec<u32>,
}

impl Gen {
    fn new(load: Workload, size: u64, rng: &mut Rng) -> Gen {
        let (mut cdf, mut perm) = (Vec::new(), Vec::new());
        if let Workload::Zipf(theta) = load {
            let mut acc = 0.0;
            cdf.reserve(size as usize);
            for r in 1..=size {
                acc += 1.0 / (r as f64).powf(theta);
                cdf.push(acc);
            }
            for c in cdf.iter_mut() {
                *c /= acc;
            }
            perm = (0..size as u32).collect();
            for i in (1..perm.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                perm.swap(i, j);
            }
        }
        Gen {
            load,
            size,
            cdf,
            perm,
        }
    }

    fn next(&self, rng: &mut Rng) -> u64 {
        match self.load {
            Workload::Uniform => rng.below(self.size),
            Workload::HotCold { writes, space } => {
                let hot = (self.size * space / 100).max(1);
                if rng.below(100) < writes {
                    rng.below(hot)
                } else {
                    hot + rng.below(self.size - hot)
                }
            }
            Workload::Zipf(_) => {
                let p = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let r = self.cdf.partition_point(|&c| c < p).min(self.cdf.len() - 1);
                u64::from(self.perm[r])
            }
        }
    }
}

// ---- the driver --------------------------------------------------------------

/// GC batch budget and commit interval of the kernel (`rust/gc.rs`).
const GC_ITEMS: usize = 256;
const GC_BUF_BLOCKS: u64 = 256;
const GC_COMMIT_BATCHES: u32 = 8;
/// The kernel's record queue (`rust/pool.rs`: `RECORD_QUEUE`).
const RECORD_QUEUE: usize = 4096;

struct Driver {
    p: SimPool,
    knobs: Knobs,
    scratch: Vec<u8>,
    items: Vec<RelocItem>,
    addrs: Vec<Option<u64>>,
    uncommitted: u32,
    /// A write found no space and GC could not free any: the pool is too
    /// full to run (the kernel fails such writes with ENOSPC).
    stuck: bool,
    stuck_diag: bool,
    /// GC plans (`gc_begin_limited` calls that planned blocks) and the
    /// node lookups they made: the cost of finding a victim's live blocks.
    plans: u64,
    plan_gets: u64,
    /// `gc_begin_limited` calls those plans took (scans in steps).
    calls: u64,
}

fn ignore(_: MetaOp<'_>) -> zvcore::error::Result<()> {
    Ok(())
}

impl Driver {
    fn new(shape: Shape, knobs: Knobs) -> Driver {
        let g = DeviceGeometry {
            kind: DevKind::Zns,
            nr_zones: shape.zones,
            zone_blocks: shape.zone_blocks,
            zone_cap_blocks: shape.zone_blocks,
            nr_conv_zones: 0,
            max_open: 14,
            max_active: 14,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
        };
        let devs = vec![g; usize::from(shape.members)];
        let nz = shape.zones as usize * usize::from(shape.members);
        let st = PoolStorage {
            zones: vec![ZoneInfo::default(); nz],
            zone_epochs: vec![0; nz],
            vols: vec![VolEntry::default(); 4],
            records: vec![Record::VolumeDelete { vol: 0 }; RECORD_QUEUE],
            nodes: Nodes::unlimited(),
            devs: vec![DevState::EMPTY; devs.len()],
            sb: Box::new(Superblock::EMPTY),
        };
        let mut cfg = PoolConfig::default_for(shape.members);
        // One checkpoint zone a member and set, sized for the data of the
        // simulation's first pools: copies would halve what a set holds
        // (the simulation is about data placement, not metadata).
        cfg.checkpoint_copies = false;
        cfg.use_append = false;
        cfg.policy = knobs.policy;
        cfg.separate = knobs.separate;
        if knobs.force_separate {
            cfg.separate_min_zones = 0;
        }
        if let Some(r) = knobs.reserve {
            cfg.alloc.gc_reserve = r;
        }
        let uuids: Vec<[u8; 16]> = (0..shape.members).map(|i| [i as u8 + 1; 16]).collect();
        let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
        let p = Pool::format(devs, [9; 16], &uuids, cfg, st, &mut scratch, &mut ignore)
            .expect("format");
        Driver {
            p,
            knobs,
            scratch,
            items: vec![RelocItem::default(); GC_ITEMS],
            addrs: vec![None; GC_ITEMS],
            uncommitted: 0,
            stuck: false,
            stuck_diag: false,
            plans: 0,
            plan_gets: 0,
            calls: 0,
        }
    }

    fn levels(&self) -> (u32, u32, u32) {
        let a = self.p.alloc();
        (a.free_zones(), a.data_zones(), a.config().gc_reserve)
    }

    /// The kernel's `gc_needed`.
    fn gc_needed(&self) -> bool {
        let (free, total, reserve) = self.levels();
        let start = self.knobs.start.unwrap_or(gc_start_level);
        free <= start(total, reserve)
    }

    /// A commit as `rust/commit.rs` does it: journal (or a checkpoint when
    /// due), then zone resets (journalled first, so twice).
    fn commit(&mut self) {
        for _ in 0..2 {
            loop {
                match self
                    .p
                    .flush_journal_only(&mut self.scratch, 64, &mut ignore)
                    .expect("commit")
                {
                    Some(0) => break,
                    Some(_) => self.p.flush_end(true).expect("flush_end"),
                    None => {
                        self.p.flush(&mut self.scratch, &mut ignore).expect("flush");
                        self.p.flush_end(true).expect("flush_end");
                    }
                }
            }
            self.p.maintenance(&mut ignore).expect("maintenance");
            if self.p.pending_records() == 0 {
                break;
            }
        }
    }

    /// One GC batch as `rust/gc.rs` runs it (copies always succeed).
    /// Returns whether it made progress.
    fn gc_batch(&mut self) -> bool {
        let free_before = self.p.free_zones();
        let gets = |p: &SimPool| p.nodes().gets.load(Ordering::Relaxed);
        let mut g0 = gets(&self.p);
        let mut r = self.p.gc_begin_limited(&mut self.items, GC_BUF_BLOCKS);
        if r == Err(Error::Busy) {
            self.commit();
            g0 = gets(&self.p);
            r = self.p.gc_begin_limited(&mut self.items, GC_BUF_BLOCKS);
        }
        // A plan whose scan stopped at its budget goes on (the kernel
        // drops the engine lock in between).
        let mut calls = 1u64;
        while r == Ok(0) && self.p.gc_scan_more() {
            r = self.p.gc_begin_limited(&mut self.items, GC_BUF_BLOCKS);
            calls += 1;
        }
        if matches!(r, Ok(n) if n > 0) {
            self.plans += 1;
            self.calls += calls;
            self.plan_gets += gets(&self.p) - g0;
        }
        let n = match r {
            Ok(0) => {
                self.commit();
                return self.p.free_zones() > free_before;
            }
            Ok(n) => n,
            Err(e @ (Error::NoSpace | Error::Busy)) => {
                if self.stuck_diag {
                    eprintln!(
                        "gc_begin: {e:?}, free {}, victim {:?}",
                        self.p.free_zones(),
                        self.p.gc_victim()
                    );
                }
                return false;
            }
            Err(e) => panic!("gc_begin: {e:?}"),
        };
        for (a, it) in self.addrs.iter_mut().zip(&self.items[..n]) {
            *a = Some(it.dst.addr);
        }
        let moved = self
            .p
            .gc_end(&self.items[..n], &self.addrs[..n])
            .expect("gc_end");
        let done = self
            .p
            .gc_victim()
            .and_then(|v| self.p.alloc().zone(v))
            .is_none_or(|z| z.valid() == 0);
        self.uncommitted += 1;
        if done || moved == 0 || self.uncommitted >= GC_COMMIT_BATCHES {
            self.uncommitted = 0;
            self.commit();
        }
        moved > 0 || self.p.free_zones() > free_before
    }

    /// Writes `n` blocks at `lba` (GC first while it is needed; a write
    /// that finds no space waits for GC).
    fn write(&mut self, lba: u64, n: u64) {
        while self.gc_needed() {
            if !self.gc_batch() {
                break;
            }
        }
        let mut stuck = 0;
        loop {
            match self.p.write_begin(1, lba, n, Stream::UserHot) {
                Ok(plan) => {
                    let addrs: Vec<Option<u64>> =
                        plan.extents().iter().map(|e| Some(e.addr)).collect();
                    self.p.write_end(&plan, &addrs).expect("write_end");
                    if plan.nblocks < n {
                        return self.write(lba + plan.nblocks, n - plan.nblocks);
                    }
                    return;
                }
                Err(Error::Busy) => self.commit(),
                Err(Error::NoSpace) => {
                    if !self.gc_batch() {
                        self.commit();
                    }
                }
                Err(e) => panic!("write_begin: {e:?}"),
            }
            stuck += 1;
            self.stuck_diag = stuck >= 998;
            if stuck >= 1000 {
                self.stuck = true;
                return;
            }
        }
    }
}

/// Runs one simulation.
pub fn simulate(r: &Run) -> Outcome {
    let t0 = Instant::now();
    let mut d = Driver::new(r.shape, r.knobs);
    let (_, data_zones, _) = d.levels();
    let cap = r.shape.zone_blocks;
    let size = u64::from(data_zones) * cap * r.util_pct / 100;
    d.p.vol_create(1, b"sim", size, 0).expect("vol_create");
    if r.knobs.rules {
        let rules = zvcore::pool::quota::SpaceRules {
            quota: size,
            reserve: size / 2,
        };
        d.p.set_space_rules(1, rules).expect("space rules");
    }
    let mut rng = Rng::new(r.seed);
    let gen = Gen::new(r.load, size, &mut rng);
    // Fill, then warm up.
    let mut lba = 0;
    while lba < size {
        let n = 64.min(size - lba);
        d.write(lba, n);
        lba += n;
    }
    let warm = (size as f64 * r.warmup) as u64;
    let forget = r.knobs.forget_every.map(|m| (size * m / 1000).max(1));
    let mut written = 0u64;
    let mut reassemble = |d: &mut Driver| {
        written += 1;
        if forget.is_some_and(|f| written.is_multiple_of(f)) {
            d.p.forget_placement_history();
        }
    };
    for _ in 0..warm {
        if d.stuck {
            break;
        }
        d.write(gen.next(&mut rng), 1);
        reassemble(&mut d);
    }
    let s0 = d.p.stats();
    let meas = (size as f64 * r.measure) as u64;
    let (mut free_sum, mut open_sum) = (0u64, 0u64);
    for _ in 0..meas {
        if d.stuck {
            break;
        }
        let a = d.p.alloc();
        free_sum += u64::from(a.free_zones());
        open_sum += a.free_blocks() - u64::from(a.free_zones()) * cap;
        d.write(gen.next(&mut rng), 1);
        reassemble(&mut d);
    }
    let s1 = d.p.stats();
    d.commit();
    if !d.stuck {
        assert_eq!(d.p.alloc().used_blocks(), size, "valid = mapped blocks");
    }
    Outcome {
        user: s1.user_blocks - s0.user_blocks,
        gc: s1.gc_blocks - s0.gc_blocks,
        data_zones,
        avg_free: free_sum as f64 / meas.max(1) as f64,
        avg_open: open_sum as f64 / (meas.max(1) * cap) as f64,
        zone_cap: cap,
        vol_blocks: size,
        secs: t0.elapsed().as_secs_f64(),
        stuck: d.stuck,
        gets_per_plan: d.plan_gets as f64 / d.plans.max(1) as f64,
        calls_per_plan: d.calls as f64 / d.plans.max(1) as f64,
    }
}

fn run(shape: Shape, util_pct: u64, load: Workload, knobs: Knobs) -> Run {
    Run {
        shape,
        util_pct,
        load,
        knobs,
        warmup: 1.0,
        measure: 2.0,
        seed: 0x5eed_0017,
    }
}

/// Analytic bounds for a run: at the nominal utilisation (volume / data
/// capacity), and at the effective one (volume / the capacity that is
/// neither held free in empty zones nor unwritten in open zones, on
/// average).
fn bounds(o: &Outcome, util_pct: u64) -> (f64, f64) {
    let nominal = analytic_wa(util_pct as f64 / 100.0);
    let usable = (f64::from(o.data_zones) - o.avg_free - o.avg_open) * o.zone_cap as f64;
    let eff = o.vol_blocks as f64 / usable;
    (
        nominal,
        if eff < 1.0 {
            analytic_wa(eff)
        } else {
            f64::NAN
        },
    )
}

fn print_header() {
    println!(
        "| zones | util | workload  | policy       | WA    | bound | bound@held | free held | open held | lookups/plan | secs |"
    );
    println!(
        "|-------|------|-----------|--------------|-------|-------|------------|-----------|-----------|--------------|------|"
    );
}

fn print_row(r: &Run, o: &Outcome, label: &str) {
    let (b, be) = bounds(o, r.util_pct);
    if o.stuck {
        println!(
            "| {:5} | {:3}% | {:9} | {:12} | out of space: GC frees nothing |",
            o.data_zones,
            r.util_pct,
            r.load.name(),
            label
        );
        return;
    }
    println!(
        "| {:5} | {:3}% | {:9} | {:12} | {:5.2} | {:5.2} | {:10.2} | {:9.1} | {:9.1} | {:12.0} | {:4.1} |",
        o.data_zones,
        r.util_pct,
        r.load.name(),
        label,
        o.wa(),
        b,
        be,
        o.avg_free,
        o.avg_open,
        o.gets_per_plan,
        o.secs
    );
}

const LOADS: [Workload; 4] = [
    Workload::Uniform,
    Workload::HotCold {
        writes: 80,
        space: 20,
    },
    Workload::HotCold {
        writes: 90,
        space: 10,
    },
    Workload::Zipf(0.95),
];

// ---- tests ---------------------------------------------------------------------

#[test]
fn analytic_model_matches_the_literature() {
    // Desnoyers / LFS: about 2.69 at 80 %, 1.8 at 65 % is well known
    // (x = 0.628 at 0.8); check the equation holds at the root.
    for u in [0.5, 0.7, 0.8, 0.9, 0.95] {
        let x = victim_share(u);
        assert!((1.0 - x + u * x.ln()).abs() < 1e-9, "u {u}: x {x}");
        assert!(x > 0.0 && x < u);
    }
    let wa = analytic_wa(0.8);
    assert!((2.6..2.75).contains(&wa), "{wa}");
    assert!(analytic_wa(0.7) < wa && wa < analytic_wa(0.9));
}

/// Regression thresholds (WA measured with the default policy, seed
/// 0x5eed0017, plus about 10 %): a change that makes GC copy more fails here.
/// Also checks the simulation against the model: uniform WA within 15 % of
/// the analytic value at the utilisation of the space not held back (free
/// or unwritten in open zones), and skewed overwrites cheaper than uniform ones.
fn check(shape: Shape, util: u64, load: Workload, max_wa: f64) -> (f64, f64) {
    let r = run(shape, util, load, Knobs::DEFAULT);
    let o = simulate(&r);
    print_row(&r, &o, "cost-benefit");
    let wa = o.wa();
    assert!(!o.stuck, "out of space");
    assert!(o.gc > 0, "GC never ran: {o:?}");
    assert!(
        wa <= max_wa,
        "{} at {util} %: WA {wa:.3} > {max_wa}",
        load.name()
    );
    (wa, bounds(&o, util).1)
}

#[test]
fn gcsim_regression_small_pool() {
    print_header();
    let (u, held) = check(SMALL, 80, Workload::Uniform, 4.82);
    assert!(
        (u / held - 1.0).abs() < 0.15,
        "uniform {u:.3} vs model {held:.3}"
    );
    let (s, _) = check(SMALL, 80, LOADS[1], 4.32);
    assert!(s < u, "80/20 {s:.3} not below uniform {u:.3}");
    let (z, _) = check(SMALL, 80, LOADS[3], 4.14);
    assert!(z < u, "zipf {z:.3} not below uniform {u:.3}");
}

#[test]
fn gcsim_regression_medium_pool() {
    print_header();
    let (u, held) = check(MEDIUM, 80, Workload::Uniform, 3.31);
    assert!(
        (u / held - 1.0).abs() < 0.15,
        "uniform {u:.3} vs model {held:.3}"
    );
    let (s, _) = check(MEDIUM, 80, LOADS[1], 2.82);
    assert!(s < u, "80/20 {s:.3} not below uniform {u:.3}");
}

/// A pool of 1024 zones on 8 members: WA under 90/10 overwrites at 80 %
/// (1.68 at seed 0x5eed0017) and the space held back, free or unwritten
/// in open zones (13 zones: GC reserve 4, pacing band 1, start level and
/// the zone just freed 2, open zones about 6; it was 24 before the reserve
/// became `members / 2`, the band one zone and the GC stream one open zone).
#[test]
fn gcsim_regression_large_pool() {
    print_header();
    let r = run(LARGE, 80, LOADS[2], Knobs::DEFAULT);
    let o = simulate(&r);
    print_row(&r, &o, "cost-benefit");
    assert!(!o.stuck, "out of space");
    assert!(o.wa() <= 1.85, "90/10 at 80 %: WA {:.3} > 1.85", o.wa());
    let held = o.avg_free + o.avg_open;
    assert!(held <= 15.0, "{held:.1} zones held: {o:?}");
}

/// Finding a victim's live blocks: each GC plan continues the scan of the
/// block tables where the previous one stopped, leaf by leaf, and reads
/// each node's runs rather than every entry. Zones of 16 MiB (a victim
/// takes 4-16 plans of 256 blocks) under a volume of 70 % of 60 zones
/// (`tenants.sh`'s shape): the scans used to start over at the volume's
/// first level-2 node (1 GiB of lbas) each plan and look the leaf up for
/// every entry: 86,519 node lookups per plan at seed 0x5eed0017; now 1,619
/// (scans of at most `GC_SCAN_NODES` nodes per call, 1.14 calls a plan).
#[test]
fn gcsim_victim_scan_continues() {
    print_header();
    let shape = Shape {
        members: 1,
        zones: 64,
        zone_blocks: 4096,
    };
    let r = Run {
        warmup: 0.5,
        measure: 0.5,
        ..run(shape, 70, Workload::Uniform, Knobs::DEFAULT)
    };
    let o = simulate(&r);
    print_row(&r, &o, "cost-benefit");
    assert!(!o.stuck && o.gc > 0, "{o:?}");
    assert!(
        o.gets_per_plan < 10_000.0,
        "{:.0} node lookups per GC plan",
        o.gets_per_plan
    );
    // Plans take one call but for the scans that found nothing in
    // `GC_SCAN_NODES` nodes.
    println!("calls per plan {:.2}", o.calls_per_plan);
    assert!(o.calls_per_plan > 1.0 && o.calls_per_plan < 4.0, "{o:?}");
}

/// Placement by expected lifetime (`PoolConfig::separate`: user writes by
/// the age of what they overwrite, GC copies by the zone they leave) pays
/// under skewed overwrites and costs little under uniform ones, on a pool
/// of 128 zones a member (measured at 0x5eed0017: 80/20 2.56 against 2.70
/// mixed, zipf 2.43 against 2.62, uniform 3.01 against 2.96).
#[test]
fn gcsim_lifetime_placement_pays() {
    print_header();
    let mixed = Knobs {
        separate: false,
        ..Knobs::DEFAULT
    };
    let wa = |load: Workload, knobs: Knobs, label: &str| {
        let r = run(MEDIUM, 80, load, knobs);
        let o = simulate(&r);
        print_row(&r, &o, label);
        assert!(!o.stuck, "out of space");
        o.wa()
    };
    for load in [LOADS[1], LOADS[3]] {
        let sep = wa(load, Knobs::DEFAULT, "by lifetime");
        let mix = wa(load, mixed, "mixed");
        assert!(
            sep < mix * 0.97,
            "{}: {sep:.3} by lifetime, {mix:.3} mixed",
            load.name()
        );
    }
    let sep = wa(Workload::Uniform, Knobs::DEFAULT, "by lifetime");
    let mix = wa(Workload::Uniform, mixed, "mixed");
    assert!(
        sep < mix * 1.05,
        "uniform: {sep:.3} by lifetime, {mix:.3} mixed"
    );
}

/// A 90 % full 60-zone pool keeps running: GC batches cut at a zone end
/// once leaked record-queue reservations until `gc_begin` returned `Busy`
/// for good and writes found no space.
#[test]
fn gcsim_full_pool_keeps_collecting() {
    let r = run(SMALL, 90, LOADS[1], Knobs::DEFAULT);
    let o = simulate(&r);
    print_header();
    print_row(&r, &o, "cost-benefit");
    assert!(!o.stuck, "GC stopped making progress");
    assert!(o.wa() > analytic_wa(0.9), "{o:?}");
}

/// Space rules that refuse nothing change nothing: the same writes, the
/// same placement and GC, the same WA to the block. Prints the cost of the
/// checks (the simulation's time per user block, with and without: the
/// run walk of each write's range and the reservation bookkeeping).
#[test]
fn gcsim_space_rules_change_nothing() {
    print_header();
    let with = Knobs {
        rules: true,
        ..Knobs::DEFAULT
    };
    let r0 = run(SMALL, 80, Workload::Uniform, Knobs::DEFAULT);
    let r1 = run(SMALL, 80, Workload::Uniform, with);
    let (o0, o1) = (simulate(&r0), simulate(&r1));
    print_row(&r0, &o0, "no rules");
    print_row(&r1, &o1, "rules");
    println!(
        "time per user block: {:.3} us without rules, {:.3} us with",
        o0.secs * 1e6 / o0.user as f64,
        o1.secs * 1e6 / o1.user as f64
    );
    assert!(!o0.stuck && !o1.stuck, "out of space");
    assert_eq!((o0.user, o0.gc), (o1.user, o1.gc), "rules changed the run");
}

/// The full sweep (`-- --ignored --nocapture`).
#[test]
#[ignore]
fn gcsim_sweep() {
    print_header();
    for load in LOADS {
        let r = run(MEDIUM, 80, load, Knobs::DEFAULT);
        print_row(&r, &simulate(&r), "cost-benefit");
    }
    for shape in [SMALL, LARGE] {
        for util in [70, 80, 90] {
            for load in LOADS {
                let r = run(shape, util, load, Knobs::DEFAULT);
                let o = simulate(&r);
                print_row(&r, &o, "cost-benefit");
            }
        }
    }
}

/// The policy alternatives at 80 % (`-- --ignored --nocapture`): victim
/// choice (greedy against cost-benefit), GC starting earlier (at the
/// background level, as background GC would) and later (at the urgent level
/// instead of one zone above it).
#[test]
#[ignore]
fn gcsim_policies() {
    type Level = fn(u32, u32) -> u32;
    let at_urgent: Level = zvcore::gc::urgent_level;
    let variants: [(&str, Policy, Option<Level>); 4] = [
        ("cost-benefit", Policy::CostBenefit, None),
        ("greedy", Policy::Greedy, None),
        ("start@bg", Policy::CostBenefit, Some(background_level)),
        ("start@urgent", Policy::CostBenefit, Some(at_urgent)),
    ];
    print_header();
    for shape in [SMALL, LARGE] {
        for load in LOADS {
            for (label, policy, start) in variants {
                let r = run(
                    shape,
                    80,
                    load,
                    Knobs {
                        policy,
                        start,
                        ..Knobs::DEFAULT
                    },
                );
                print_row(&r, &simulate(&r), label);
            }
        }
    }
}

/// One configuration from the environment, for experiments:
/// `GCSIM="large 80 uniform greedy"`; `forget=N`: a reassembly of a pool
/// without the placement history after every N thousandths of the volume
/// written (design.md's table of what that costs).
#[test]
#[ignore]
fn gcsim_one() {
    let spec = std::env::var("GCSIM").unwrap_or_else(|_| "small 80 uniform cb".into());
    let w: Vec<&str> = spec.split_whitespace().collect();
    let shape = match w[0] {
        "large" => LARGE,
        "medium" => MEDIUM,
        _ => SMALL,
    };
    let util = w[1].parse().unwrap();
    let load = match w[2] {
        "uniform" => Workload::Uniform,
        "80/20" => LOADS[1],
        "90/10" => LOADS[2],
        _ => LOADS[3],
    };
    let mut k = Knobs::DEFAULT;
    let mut seed = None;
    for opt in w.iter().skip(3) {
        match *opt {
            "greedy" => k.policy = Policy::Greedy,
            "mixed" => k.separate = false,
            "forced" => k.force_separate = true,
            "early" => k.start = Some(background_level),
            "late" => k.start = Some(|_, r| r + 1),
            "late200" => k.start = Some(|t, r| r + (t / 200).max(1) + 1),
            "urgent" => k.start = Some(zvcore::gc::urgent_level),
            "s2" => k.start = Some(|_, r| r + 2),
            "s3" => k.start = Some(|_, r| r + 3),
            o if o.starts_with("r=") => k.reserve = o[2..].parse().ok(),
            o if o.starts_with("forget=") => k.forget_every = o[7..].parse().ok(),
            o if o.starts_with("seed=") => {
                seed = u64::from_str_radix(o[5..].trim_start_matches("0x"), 16).ok()
            }
            _ => {}
        }
    }
    let mut r = run(shape, util, load, k);
    r.seed = seed.unwrap_or(r.seed);
    let o = simulate(&r);
    print_header();
    print_row(&r, &o, &w[3..].join(","));
}
