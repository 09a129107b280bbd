// SPDX-License-Identifier: GPL-2.0
//! Test support shared by the integration tests: a small PRNG and a simulated
//! zoned block device that enforces the zone rules and models a volatile
//! write cache (what a crash keeps and what it loses).
//!
//! Included by the other test crates with `mod sim;`; compiled on its own it
//! runs the simulator's self-tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::rc::Rc;

/// Block size of the simulator (same as the core's block).
pub const BS: usize = 4096;

/// splitmix64: tiny, fast, good enough for test generation, replayable.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0; returns 0 for `n` == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `pct`/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            let n = c.len();
            c.copy_from_slice(&v[..n]);
        }
    }
}

/// The seed of a test run: `ZVCORE_SEED` if set (decimal or 0x-hex), else
/// derived from the clock. Always printed so that a failure can be replayed.
pub fn seed_from_env(test: &str) -> u64 {
    let seed = match std::env::var("ZVCORE_SEED") {
        Ok(s) => {
            let s = s.trim();
            if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(h, 16).expect("ZVCORE_SEED: bad hex")
            } else {
                s.parse().expect("ZVCORE_SEED: bad number")
            }
        }
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            Rng::new(t).next_u64()
        }
    };
    eprintln!("{test}: seed {seed:#x} (replay with ZVCORE_SEED={seed:#x})");
    seed
}

/// Operation count scaling: `ZVCORE_OPS` if set, else `default`.
pub fn ops_from_env(default: u64) -> u64 {
    std::env::var("ZVCORE_OPS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Kind of simulated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimKind {
    Zns,
    Smr,
    Conventional,
}

/// Geometry of a simulated device (blocks of 4 KiB).
#[derive(Clone, Copy, Debug)]
pub struct SimGeom {
    pub kind: SimKind,
    pub nr_zones: u32,
    pub zone_blocks: u64,
    pub zone_cap: u64,
    /// Leading conventional zones (SMR); every zone of a conventional device.
    pub nr_conv: u32,
    /// 0 = unlimited.
    pub max_open: u32,
    /// 0 = unlimited.
    pub max_active: u32,
    pub zone_append: bool,
}

/// Zone condition, as a zone report shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    NotWp,
    Empty,
    ImplOpen,
    ExplOpen,
    Closed,
    Full,
}

/// Why the simulated device refused a command: in a correct engine none of
/// these ever happens, so the model test treats them as failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimErr {
    OutOfRange,
    /// Write not at the write pointer of a sequential zone.
    NotAtWp {
        zone: u32,
        wp: u64,
        addr: u64,
    },
    /// Write past the zone capacity, or into a full zone.
    ZoneFull(u32),
    /// Opening the zone would exceed max_active (or max_open with only
    /// explicitly opened zones).
    TooManyActive(u32),
    TooManyOpen(u32),
    /// Read of a sequential zone block at or past its write pointer.
    ReadPastWp {
        zone: u32,
        addr: u64,
    },
    /// Zone command on a conventional zone.
    Conventional(u32),
    /// Zone append on a device without it.
    NoAppend,
    BadLength,
    /// Injected I/O error.
    Injected,
}

/// A cached write: (block address, data).
type Cached = (u64, Blk);

/// A stored block (shared: cloning a device is cheap).
type Blk = Rc<[u8; BS]>;

#[derive(Clone, Debug)]
struct Zone {
    cond: Cond,
    /// Write pointer, offset in the zone (what the host sees).
    wp: u64,
    /// Durable write pointer (survives a crash).
    dwp: u64,
}

/// A simulated zoned (or conventional) block device with a volatile cache.
///
/// Every write goes to the cache and is visible to reads at once; `flush`
/// makes everything cached durable. `crash` keeps, per zone, a random prefix
/// of the cached writes (sequential zones) or a random subset (conventional
/// zones), possibly tearing the last kept block, and forgets the rest. Zone
/// resets and finishes are durable when they complete (the harsher choice for
/// the host: they can never be undone by a crash).
#[derive(Clone)]
pub struct SimDev {
    pub g: SimGeom,
    zones: Vec<Zone>,
    /// Durable contents.
    durable: HashMap<u64, Blk>,
    /// Cached (not yet durable) writes in order: (block address, data).
    cache: Vec<Cached>,
    /// Latest contents as seen by reads (durable overlaid by cache).
    current: HashMap<u64, Blk>,
    /// Fail the next N write commands (error injection).
    pub fail_writes: u32,
    pub stats: SimStats,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub writes: u64,
    pub appends: u64,
    pub blocks_written: u64,
    pub resets: u64,
    pub finishes: u64,
    pub flushes: u64,
    pub crashes: u64,
    pub torn: u64,
}

impl SimDev {
    /// Whether both devices hold the same blocks and zone states (nothing
    /// was written, reset or finished between them).
    pub fn same_contents(&self, o: &SimDev) -> bool {
        let wp = |d: &SimDev| d.zones.iter().map(|z| format!("{z:?}")).collect::<Vec<_>>();
        self.current == o.current && wp(self) == wp(o)
    }

    pub fn new(g: SimGeom) -> Self {
        assert!(g.zone_cap <= g.zone_blocks && g.zone_cap > 0);
        let zones = (0..g.nr_zones)
            .map(|z| Zone {
                cond: if Self::conv_of(&g, z) {
                    Cond::NotWp
                } else {
                    Cond::Empty
                },
                wp: 0,
                dwp: 0,
            })
            .collect();
        SimDev {
            g,
            zones,
            durable: HashMap::new(),
            cache: Vec::new(),
            current: HashMap::new(),
            fail_writes: 0,
            stats: SimStats::default(),
        }
    }

    fn conv_of(g: &SimGeom, z: u32) -> bool {
        g.kind == SimKind::Conventional || z < g.nr_conv
    }

    pub fn is_conv(&self, zone: u32) -> bool {
        Self::conv_of(&self.g, zone)
    }

    pub fn nr_blocks(&self) -> u64 {
        self.g.nr_zones as u64 * self.g.zone_blocks
    }

    pub fn zone_of(&self, addr: u64) -> u32 {
        (addr / self.g.zone_blocks) as u32
    }

    pub fn zone_start(&self, zone: u32) -> u64 {
        zone as u64 * self.g.zone_blocks
    }

    /// Zone report: (condition, absolute write pointer). Conventional zones
    /// report their start.
    pub fn report(&self, zone: u32) -> Option<(Cond, u64)> {
        let z = self.zones.get(zone as usize)?;
        Some((z.cond, self.zone_start(zone) + z.wp))
    }

    fn count(&self, f: impl Fn(Cond) -> bool) -> u32 {
        self.zones.iter().filter(|z| f(z.cond)).count() as u32
    }

    pub fn nr_open(&self) -> u32 {
        self.count(|c| matches!(c, Cond::ImplOpen | Cond::ExplOpen))
    }

    pub fn nr_active(&self) -> u32 {
        self.count(|c| matches!(c, Cond::ImplOpen | Cond::ExplOpen | Cond::Closed))
    }

    /// Makes `zone` (implicitly) open for a write, following the ZNS/ZBC
    /// rules: an implicitly opened zone may be closed to respect max_open.
    fn open_for_write(&mut self, zone: u32, explicit: bool) -> Result<(), SimErr> {
        let cond = self.zones[zone as usize].cond;
        match cond {
            Cond::ImplOpen | Cond::ExplOpen => {
                if explicit {
                    self.zones[zone as usize].cond = Cond::ExplOpen;
                }
                return Ok(());
            }
            Cond::Full => return Err(SimErr::ZoneFull(zone)),
            Cond::NotWp => return Ok(()),
            Cond::Empty | Cond::Closed => {}
        }
        if cond == Cond::Empty && self.g.max_active != 0 && self.nr_active() >= self.g.max_active {
            return Err(SimErr::TooManyActive(zone));
        }
        if self.g.max_open != 0 && self.nr_open() >= self.g.max_open {
            // Close one implicitly opened zone, as the device would.
            match self.zones.iter().position(|z| z.cond == Cond::ImplOpen) {
                Some(i) => self.zones[i].cond = Cond::Closed,
                None => return Err(SimErr::TooManyOpen(zone)),
            }
        }
        self.zones[zone as usize].cond = if explicit {
            Cond::ExplOpen
        } else {
            Cond::ImplOpen
        };
        Ok(())
    }

    fn put(&mut self, addr: u64, data: &[u8]) {
        let mut a = [0u8; BS];
        a.copy_from_slice(data);
        let b = Rc::new(a);
        self.current.insert(addr, b.clone());
        self.cache.push((addr, b));
    }

    /// Writes whole blocks at `addr` (device block address).
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimErr> {
        if data.is_empty() || !data.len().is_multiple_of(BS) {
            return Err(SimErr::BadLength);
        }
        let n = (data.len() / BS) as u64;
        let end = addr.checked_add(n).ok_or(SimErr::OutOfRange)?;
        if end > self.nr_blocks() {
            return Err(SimErr::OutOfRange);
        }
        let zone = self.zone_of(addr);
        let off = addr - self.zone_start(zone);
        if off + n > self.g.zone_blocks {
            return Err(SimErr::OutOfRange); // crosses a zone boundary
        }
        if self.fail_writes > 0 {
            self.fail_writes -= 1;
            return Err(SimErr::Injected);
        }
        if !self.is_conv(zone) {
            let z = &self.zones[zone as usize];
            if z.cond == Cond::Full || off + n > self.g.zone_cap {
                return Err(SimErr::ZoneFull(zone));
            }
            if off != z.wp {
                return Err(SimErr::NotAtWp {
                    zone,
                    wp: self.zone_start(zone) + z.wp,
                    addr,
                });
            }
            self.open_for_write(zone, false)?;
        }
        for (i, c) in data.chunks(BS).enumerate() {
            self.put(addr + i as u64, c);
        }
        if !self.is_conv(zone) {
            let cap = self.g.zone_cap;
            let z = &mut self.zones[zone as usize];
            z.wp += n;
            if z.wp == cap {
                z.cond = Cond::Full;
            }
        }
        self.stats.writes += 1;
        self.stats.blocks_written += n;
        Ok(())
    }

    /// Zone append: writes at the zone's write pointer and returns where.
    pub fn append(&mut self, zone: u32, data: &[u8]) -> Result<u64, SimErr> {
        if !self.g.zone_append {
            return Err(SimErr::NoAppend);
        }
        if zone >= self.g.nr_zones {
            return Err(SimErr::OutOfRange);
        }
        if self.is_conv(zone) {
            return Err(SimErr::Conventional(zone));
        }
        let at = self.zone_start(zone) + self.zones[zone as usize].wp;
        self.write(at, data)?;
        self.stats.appends += 1;
        Ok(at)
    }

    /// Reads whole blocks; never-written blocks of conventional zones read as
    /// zeros; reading a sequential zone at or past its write pointer is an
    /// error (a correct engine never does it).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), SimErr> {
        if !buf.len().is_multiple_of(BS) {
            return Err(SimErr::BadLength);
        }
        let n = (buf.len() / BS) as u64;
        if addr.checked_add(n).is_none_or(|e| e > self.nr_blocks()) {
            return Err(SimErr::OutOfRange);
        }
        for (i, c) in buf.chunks_mut(BS).enumerate() {
            let a = addr + i as u64;
            let zone = self.zone_of(a);
            if !self.is_conv(zone) && a - self.zone_start(zone) >= self.zones[zone as usize].wp {
                return Err(SimErr::ReadPastWp { zone, addr: a });
            }
            match self.current.get(&a) {
                Some(b) => c.copy_from_slice(&b[..]),
                None => c.fill(0),
            }
        }
        Ok(())
    }

    /// Reads regardless of the write pointer (recovery probing, tests).
    pub fn read_raw(&self, addr: u64, buf: &mut [u8]) {
        for (i, c) in buf.chunks_mut(BS).enumerate() {
            match self.current.get(&(addr + i as u64)) {
                Some(b) => c.copy_from_slice(&b[..]),
                None => c.fill(0),
            }
        }
    }

    fn drop_cached_in_zone(&mut self, zone: u32) {
        let zb = self.g.zone_blocks;
        self.cache.retain(|(a, _)| (a / zb) as u32 != zone);
    }

    /// Zone reset (durable at completion).
    pub fn reset(&mut self, zone: u32) -> Result<(), SimErr> {
        if zone >= self.g.nr_zones {
            return Err(SimErr::OutOfRange);
        }
        if self.is_conv(zone) {
            return Err(SimErr::Conventional(zone));
        }
        self.drop_cached_in_zone(zone);
        let start = self.zone_start(zone);
        for a in start..start + self.g.zone_blocks {
            self.current.remove(&a);
            self.durable.remove(&a);
        }
        let z = &mut self.zones[zone as usize];
        z.cond = Cond::Empty;
        z.wp = 0;
        z.dwp = 0;
        self.stats.resets += 1;
        Ok(())
    }

    /// Zone finish (durable at completion; cached writes of the zone are made
    /// durable first, as the write pointer moves to the end).
    pub fn finish(&mut self, zone: u32) -> Result<(), SimErr> {
        if zone >= self.g.nr_zones {
            return Err(SimErr::OutOfRange);
        }
        if self.is_conv(zone) {
            return Err(SimErr::Conventional(zone));
        }
        let zb = self.g.zone_blocks;
        let mut keep = Vec::new();
        for (a, b) in self.cache.drain(..) {
            if (a / zb) as u32 == zone {
                self.durable.insert(a, b);
            } else {
                keep.push((a, b));
            }
        }
        self.cache = keep;
        let cap = self.g.zone_cap;
        let z = &mut self.zones[zone as usize];
        z.cond = Cond::Full;
        z.wp = cap;
        z.dwp = cap;
        self.stats.finishes += 1;
        Ok(())
    }

    /// Explicit open / close (not needed by the engine, but supported).
    pub fn open(&mut self, zone: u32) -> Result<(), SimErr> {
        if self.is_conv(zone) {
            return Err(SimErr::Conventional(zone));
        }
        self.open_for_write(zone, true)
    }

    pub fn close(&mut self, zone: u32) -> Result<(), SimErr> {
        if self.is_conv(zone) {
            return Err(SimErr::Conventional(zone));
        }
        let z = &mut self.zones[zone as usize];
        if matches!(z.cond, Cond::ImplOpen | Cond::ExplOpen) {
            z.cond = if z.wp == 0 { Cond::Empty } else { Cond::Closed };
        }
        Ok(())
    }

    /// Overwrites a written block in place, ignoring every rule (corruption
    /// tests: what the media returns from now on).
    pub fn poke(&mut self, addr: u64, data: &[u8]) {
        let mut a = [0u8; BS];
        let n = data.len().min(BS);
        a[..n].copy_from_slice(&data[..n]);
        let b = Rc::new(a);
        self.current.insert(addr, b.clone());
        self.durable.insert(addr, b);
    }

    /// Loses the tail of a sequential zone: its write pointer moves back to
    /// offset `wp` (corruption tests).
    pub fn truncate_zone(&mut self, zone: u32, wp: u64) {
        if self.is_conv(zone) || zone >= self.g.nr_zones {
            return;
        }
        let start = self.zone_start(zone);
        let cur = self.zones[zone as usize].wp;
        if wp >= cur {
            return;
        }
        self.drop_cached_in_zone(zone);
        for a in start + wp..start + cur {
            self.current.remove(&a);
            self.durable.remove(&a);
        }
        let z = &mut self.zones[zone as usize];
        z.wp = wp;
        z.dwp = wp;
        z.cond = if wp == 0 { Cond::Empty } else { Cond::Closed };
    }

    /// Addresses of every block holding data (sorted).
    pub fn written(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.current.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Cache flush: everything written so far becomes durable.
    pub fn flush(&mut self) {
        for (a, b) in self.cache.drain(..) {
            self.durable.insert(a, b);
        }
        for z in self.zones.iter_mut() {
            z.dwp = z.wp;
        }
        self.stats.flushes += 1;
    }

    /// Power loss. Per zone, a PRNG-chosen prefix (sequential zones) or
    /// subset (conventional zones) of the cached writes survives; the last
    /// surviving block of a sequential zone may be torn (partly old zeros,
    /// partly new data). Open zones become closed (or empty / full).
    pub fn crash(&mut self, rng: &mut Rng) {
        let zb = self.g.zone_blocks;
        let cache = std::mem::take(&mut self.cache);
        // Group by zone, keeping order.
        let mut per_zone: HashMap<u32, Vec<Cached>> = HashMap::new();
        for (a, b) in cache {
            per_zone.entry((a / zb) as u32).or_default().push((a, b));
        }
        let mut zones: Vec<u32> = per_zone.keys().copied().collect();
        zones.sort_unstable();
        for zone in zones {
            let list = per_zone.remove(&zone).unwrap_or_default();
            if self.is_conv(zone) {
                let mode = rng.below(3);
                for (a, b) in list {
                    let keep = match mode {
                        0 => false,
                        1 => true,
                        _ => rng.pct(50),
                    };
                    if keep {
                        self.durable.insert(a, b);
                    }
                }
            } else {
                let n = list.len();
                let keep = match rng.below(4) {
                    0 => 0,
                    1 => n,
                    _ => rng.below(n as u64 + 1) as usize,
                };
                let tear = keep > 0 && rng.pct(25);
                for (i, (a, b)) in list.into_iter().enumerate().take(keep) {
                    let mut b = b;
                    if tear && i + 1 == keep {
                        // Torn block: a random-length prefix of new data,
                        // then what was there (zeros) or garbage.
                        let cut = rng.below(BS as u64) as usize;
                        if rng.pct(50) {
                            Rc::make_mut(&mut b)[cut..].fill(0);
                        } else {
                            rng.fill(&mut Rc::make_mut(&mut b)[cut..]);
                        }
                        self.stats.torn += 1;
                    }
                    self.durable.insert(a, b);
                    let z = &mut self.zones[zone as usize];
                    z.dwp = z.dwp.max(a - zone as u64 * zb + 1);
                }
            }
        }
        self.current = self.durable.clone();
        let cap = self.g.zone_cap;
        for z in self.zones.iter_mut() {
            if z.cond == Cond::NotWp {
                continue;
            }
            z.wp = z.dwp;
            z.cond = if z.wp == 0 {
                Cond::Empty
            } else if z.wp >= cap {
                Cond::Full
            } else {
                Cond::Closed
            };
        }
        self.stats.crashes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom() -> SimGeom {
        SimGeom {
            kind: SimKind::Zns,
            nr_zones: 8,
            zone_blocks: 16,
            zone_cap: 12,
            nr_conv: 0,
            max_open: 2,
            max_active: 3,
            zone_append: true,
        }
    }

    fn blk(v: u8) -> Vec<u8> {
        vec![v; BS]
    }

    #[test]
    fn sequential_rules() {
        let mut d = SimDev::new(geom());
        assert!(d.write(0, &blk(1)).is_ok());
        assert!(matches!(d.write(0, &blk(1)), Err(SimErr::NotAtWp { .. })));
        assert!(matches!(d.write(2, &blk(1)), Err(SimErr::NotAtWp { .. })));
        assert_eq!(d.append(0, &blk(2)), Ok(1));
        let mut b = blk(0);
        assert!(d.read(1, &mut b).is_ok());
        assert_eq!(b[0], 2);
        assert!(matches!(d.read(2, &mut b), Err(SimErr::ReadPastWp { .. })));
        // Capacity.
        let big = vec![3u8; BS * 10];
        assert!(d.write(2, &big).is_ok());
        assert_eq!(d.report(0).unwrap().0, Cond::Full);
        assert!(matches!(d.write(12, &blk(1)), Err(SimErr::ZoneFull(0))));
        // Active limit: zone 0 full, open 1, 2, 3 -> 3 active ok, 4th fails.
        assert!(d.write(16, &blk(1)).is_ok());
        assert!(d.write(32, &blk(1)).is_ok());
        assert!(d.write(48, &blk(1)).is_ok());
        assert_eq!(d.nr_open(), 2);
        assert!(matches!(
            d.write(64, &blk(1)),
            Err(SimErr::TooManyActive(4))
        ));
        assert!(d.finish(1).is_ok());
        assert!(d.write(64, &blk(1)).is_ok());
        assert!(d.reset(0).is_ok());
        assert_eq!(d.report(0).unwrap(), (Cond::Empty, 0));
    }

    #[test]
    fn crash_keeps_flushed() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let mut d = SimDev::new(geom());
            d.write(0, &blk(1)).unwrap();
            d.write(1, &blk(2)).unwrap();
            d.flush();
            for i in 2..8 {
                d.write(i, &blk(i as u8 + 1)).unwrap();
            }
            d.crash(&mut rng);
            let (_, wp) = d.report(0).unwrap();
            assert!((2..=8).contains(&wp));
            let mut b = blk(0);
            d.read(0, &mut b).unwrap();
            assert_eq!(b, blk(1));
            d.read(1, &mut b).unwrap();
            assert_eq!(b, blk(2));
            // Every surviving block but the last is intact.
            for a in 2..wp.saturating_sub(1) {
                d.read(a, &mut b).unwrap();
                assert_eq!(b, blk(a as u8 + 1));
            }
        }
    }

    #[test]
    fn conventional_zones() {
        let mut g = geom();
        g.kind = SimKind::Smr;
        g.nr_conv = 2;
        g.zone_append = false;
        let mut d = SimDev::new(g);
        assert!(d.write(5, &blk(1)).is_ok());
        assert!(d.write(3, &blk(1)).is_ok());
        assert!(d.reset(0).is_err());
        assert!(matches!(d.append(2, &blk(1)), Err(SimErr::NoAppend)));
        let mut b = blk(9);
        d.read(7, &mut b).unwrap();
        assert_eq!(b, blk(0));
    }
}
