// SPDX-License-Identifier: GPL-2.0
//! The aggregated-space allocator: zone states, write pointers, valid-block
//! counts, open/active zone accounting and placement of writes across members.
//!
//! Storage for the per-zone table ([`ZoneInfo`], 24 bytes per zone) is handed
//! in by the caller; everything else is a fixed-size part of [`Allocator`].
//!
//! Accounting rules (see `Documentation/design-space.md`):
//! - The write pointer (`wp`) advances when space is handed out ([`Allocator::alloc`]
//!   or [`Allocator::reserve_append`]), so capacity accounting is exact even
//!   with zone appends completing in any order.
//! - Handed-out blocks count as *valid* at once and as *in flight* until the
//!   caller reports completion ([`Allocator::complete_write`] /
//!   [`Allocator::complete_append`]) or failure ([`Allocator::abort`]). Do not
//!   [`Allocator::validate`] them again when mapping them; `validate` is for
//!   rebuilding counts (recovery, checkpoint load).
//! - A zone may be reset only when it has no valid and no in-flight block.
//! - Only [`Stream::Gc`] and [`Stream::Meta`] may open one of the last
//!   `gc_reserve` empty zones; user streams get [`Error::NoSpace`] there. A
//!   failing call never changes any state.

use super::codec::{Reader, Writer};
use super::error::{Error, Result};
use super::geom::{DeviceGeometry, PoolGeometry, Stream, ZoneGeom, MAX_DEVICES, NR_STREAMS};
use core::ops::{Deref, DerefMut};

/// No zone (in the open-zone table).
const NO_ZONE: u32 = u32::MAX;

/// State of one zone as the allocator sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZoneState {
    /// Erased data zone, free for allocation.
    #[default]
    Empty,
    /// Data zone being filled by a stream.
    Open(Stream),
    /// Partially written zone no longer being filled (still *active* on the device).
    Closed,
    /// Written to capacity (or finished).
    Full,
    /// Reserved metadata zone (never data; managed by the journal/checkpoint code).
    Meta,
    /// Zone unusable (device reported it offline / read-only).
    Offline,
}

impl ZoneState {
    /// On-disk code of the state.
    pub const fn code(self) -> u8 {
        match self {
            ZoneState::Empty => 0,
            ZoneState::Closed => 1,
            ZoneState::Full => 2,
            ZoneState::Meta => 3,
            ZoneState::Offline => 4,
            ZoneState::Open(s) => 0x10 + s.index() as u8,
        }
    }

    /// State from its on-disk code.
    pub const fn from_code(c: u8) -> Option<ZoneState> {
        match c {
            0 => Some(ZoneState::Empty),
            1 => Some(ZoneState::Closed),
            2 => Some(ZoneState::Full),
            3 => Some(ZoneState::Meta),
            4 => Some(ZoneState::Offline),
            0x10..=0x13 => match Stream::from_index((c - 0x10) as usize) {
                Some(s) => Some(ZoneState::Open(s)),
                None => None,
            },
            _ => None,
        }
    }

    /// Whether the zone holds (or may hold) data blocks.
    pub const fn is_data(self) -> bool {
        matches!(
            self,
            ZoneState::Open(_) | ZoneState::Closed | ZoneState::Full
        )
    }
}

/// Per-zone allocator state (caller-provided storage, one per global zone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneInfo {
    state: ZoneState,
    /// Meta zone currently open (counts toward the device's open limit).
    meta_open: bool,
    /// The last reservation was for a zone append (in-flight writes of one
    /// zone are all of one mode).
    append: bool,
    wp: u32,
    valid: u32,
    inflight: u32,
    /// Write clock at the zone's last allocation (age for cost-benefit GC).
    seq: u64,
}

impl ZoneInfo {
    /// Zone state.
    pub fn state(&self) -> ZoneState {
        self.state
    }
    /// Blocks handed out so far (write pointer, relative to the zone start).
    pub fn wp(&self) -> u64 {
        u64::from(self.wp)
    }
    /// Valid blocks (mapped or in flight).
    pub fn valid(&self) -> u64 {
        u64::from(self.valid)
    }
    /// Blocks handed out whose write has not completed.
    pub fn inflight(&self) -> u64 {
        u64::from(self.inflight)
    }
    /// Write clock of the last allocation in this zone.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Whether this (meta) zone is marked open.
    pub fn meta_open(&self) -> bool {
        self.meta_open
    }
}

/// Space handed out by [`Allocator::alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Global zone id.
    pub zone: u32,
    /// Pool address of the first block (write here).
    pub addr: u64,
    /// Blocks (`1..=n`; shorter than asked at a zone end — call again).
    pub len: u64,
    /// The zone supports zone append.
    pub append: bool,
}

/// Allocator configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocConfig {
    /// Empty zones only [`Stream::Gc`] / [`Stream::Meta`] may open (>= 1).
    pub gc_reserve: u32,
}

impl AllocConfig {
    /// Default: `max(2, members)` reserve zones.
    pub fn default_for(nr_devices: u16) -> AllocConfig {
        AllocConfig {
            gc_reserve: u32::from(nr_devices).max(2),
        }
    }
}

/// The allocator's state of one member (caller storage: one per member,
/// see [`Allocator::with_devs`]; contents are the allocator's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevState {
    /// Empty data zones.
    free: u32,
    /// Open zones counted against the open limit (sequential zones only).
    open: u32,
    /// Open + closed zones counted against the active limit.
    active: u32,
    /// Open meta zones.
    meta_open: u32,
    /// Where the next empty-zone search starts (device-local).
    cursor: u32,
    /// `zone[stream]` = the stream's open zone on this member.
    zone: [u32; NR_STREAMS],
}

impl DevState {
    /// Initial contents of a storage slot.
    pub const EMPTY: DevState = DevState {
        free: 0,
        open: 0,
        active: 0,
        meta_open: 0,
        cursor: 0,
        zone: [NO_ZONE; NR_STREAMS],
    };

    /// Counts zone `zi` (geometry `zg`) in this member's counters; returns
    /// whether it is empty (free).
    fn tally(&mut self, zg: &ZoneGeom, zi: &ZoneInfo) -> bool {
        match zi.state {
            ZoneState::Empty => {
                self.free = self.free.saturating_add(1);
                return true;
            }
            ZoneState::Open(_) if !zg.conventional => {
                self.open = self.open.saturating_add(1);
                self.active = self.active.saturating_add(1);
            }
            ZoneState::Closed if !zg.conventional => self.active = self.active.saturating_add(1),
            ZoneState::Meta if zi.meta_open => {
                self.meta_open = self.meta_open.saturating_add(1);
                self.open = self.open.saturating_add(1);
                self.active = self.active.saturating_add(1);
            }
            _ => {}
        }
        false
    }
}

impl Default for DevState {
    fn default() -> Self {
        DevState::EMPTY
    }
}

/// Inline member-state storage for every possible member (about 2.3 KiB):
/// the default of [`Allocator::new`] for host code. The kernel passes heap
/// storage to [`Allocator::with_devs`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevTable(pub [DevState; MAX_DEVICES]);

impl Deref for DevTable {
    type Target = [DevState];
    fn deref(&self) -> &[DevState] {
        &self.0
    }
}

impl DerefMut for DevTable {
    fn deref_mut(&mut self) -> &mut [DevState] {
        &mut self.0
    }
}

/// The allocator of a pool. `G` holds the member geometries, `Z` the zone
/// table, `D` the per-member state (at least one entry per member). Small
/// itself (no per-member or per-zone array inline).
pub struct Allocator<G, Z, D = DevTable> {
    geom: PoolGeometry<G>,
    zones: Z,
    cfg: AllocConfig,
    dev: D,
    /// Next member to try first, per stream (round robin among equals).
    rr: [u16; NR_STREAMS],
    free_zones: u32,
    valid_total: u64,
    clock: u64,
    written: [u64; NR_STREAMS],
}

impl<G, Z> Allocator<G, Z, DevTable>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
{
    /// [`Self::with_devs`] with inline member storage (host code; the value
    /// is about 2.5 KiB).
    pub fn new(geom: PoolGeometry<G>, zones: Z, cfg: AllocConfig) -> Result<Self> {
        Self::with_devs(geom, zones, DevTable([DevState::EMPTY; MAX_DEVICES]), cfg)
    }
}

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    /// An allocator over a freshly formatted pool: every data zone empty, the
    /// reserved metadata zones in state [`ZoneState::Meta`]. `zones` must have
    /// exactly `geom.nr_zones()` entries, `devs` at least one per member
    /// (their contents are overwritten).
    pub fn with_devs(geom: PoolGeometry<G>, zones: Z, devs: D, cfg: AllocConfig) -> Result<Self> {
        if zones.len() != geom.nr_zones() as usize {
            return Err(Error::Invalid("alloc: zone table size"));
        }
        if devs.len() < geom.devices().len() {
            return Err(Error::Invalid("alloc: member state table size"));
        }
        let data: u64 = geom
            .devices()
            .iter()
            .map(|g| u64::from(g.nr_data_zones()))
            .sum();
        if cfg.gc_reserve == 0 || u64::from(cfg.gc_reserve) >= data {
            return Err(Error::Invalid("alloc: gc reserve"));
        }
        let mut a = Allocator {
            geom,
            zones,
            cfg,
            dev: devs,
            rr: [0; NR_STREAMS],
            free_zones: 0,
            valid_total: 0,
            clock: 0,
            written: [0; NR_STREAMS],
        };
        for z in 0..a.geom.nr_zones() {
            let meta = a.geom.zone_is_meta(z);
            if let Some(zi) = a.zones.get_mut(z as usize) {
                *zi = ZoneInfo {
                    state: if meta {
                        ZoneState::Meta
                    } else {
                        ZoneState::Empty
                    },
                    ..ZoneInfo::default()
                };
            }
        }
        a.rebuild();
        Ok(a)
    }

    /// The pool geometry.
    pub fn geom(&self) -> &PoolGeometry<G> {
        &self.geom
    }

    /// The configuration.
    pub fn config(&self) -> AllocConfig {
        self.cfg
    }

    /// The zone table.
    pub fn zones(&self) -> &[ZoneInfo] {
        &self.zones
    }

    /// State of zone `zone`.
    pub fn zone(&self, zone: u32) -> Option<&ZoneInfo> {
        self.zones.get(zone as usize)
    }

    /// Empty data zones in the pool.
    pub fn free_zones(&self) -> u32 {
        self.free_zones
    }

    /// Empty data zones of member `d`.
    pub fn dev_free_zones(&self, d: u16) -> u32 {
        self.dev.get(usize::from(d)).map(|s| s.free).unwrap_or(0)
    }

    /// Open and active zones of member `d` (as counted against its limits).
    pub fn dev_open_active(&self, d: u16) -> (u32, u32) {
        self.dev
            .get(usize::from(d))
            .map(|s| (s.open, s.active))
            .unwrap_or((0, 0))
    }

    /// Number of data zones (all zones but the reserved metadata ones).
    pub fn data_zones(&self) -> u32 {
        self.geom
            .devices()
            .iter()
            .fold(0u32, |a, g| a.saturating_add(g.nr_data_zones()))
    }

    /// Blocks writable without GC: empty zones' capacity plus what is left in
    /// open zones.
    pub fn free_blocks(&self) -> u64 {
        let mut f = 0u64;
        for (d, g) in self.geom.devices().iter().enumerate() {
            let free = self.dev.get(d).map(|s| s.free).unwrap_or(0);
            f = f.saturating_add(u64::from(free).saturating_mul(g.zone_cap_blocks));
        }
        for s in self.dev.iter().take(self.geom.devices().len()) {
            for &z in s.zone.iter() {
                if z != NO_ZONE {
                    f = f.saturating_add(self.room(z));
                }
            }
        }
        f
    }

    /// Valid blocks in the whole pool (used space).
    pub fn used_blocks(&self) -> u64 {
        self.valid_total
    }

    /// The write clock: blocks handed out since the pool was created.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Blocks handed out to stream `s` since this allocator was set up.
    pub fn written(&self, s: Stream) -> u64 {
        self.written.get(s.index()).copied().unwrap_or(0)
    }

    /// The open zone of stream `s` on member `d`, if any.
    pub fn open_zone(&self, s: Stream, d: u16) -> Option<u32> {
        let z = *self.dev.get(usize::from(d))?.zone.get(s.index())?;
        (z != NO_ZONE).then_some(z)
    }

    fn cap(&self, zone: u32) -> u64 {
        self.geom.zone_cap(zone).unwrap_or(0)
    }

    fn room(&self, zone: u32) -> u64 {
        let wp = self.zones.get(zone as usize).map(|z| z.wp()).unwrap_or(0);
        self.cap(zone).saturating_sub(wp)
    }

    fn may_open_on(&self, d: usize, data: bool) -> bool {
        let (Some(g), Some(s)) = (self.geom.devices().get(d), self.dev.get(d)) else {
            return false;
        };
        // Keep one open/active slot for the journal's meta zones unless one
        // is already open.
        let keep = u32::from(data && s.meta_open == 0);
        let lim_ok =
            |cur: u32, lim: u32| lim == 0 || cur.saturating_add(1).saturating_add(keep) <= lim;
        lim_ok(s.open, g.open_limit()) && lim_ok(s.active, g.max_active)
    }

    /// First empty data zone of member `d` (append-capable if asked).
    fn find_empty(&self, d: usize, append: bool) -> Option<u32> {
        let g = self.geom.devices().get(d)?;
        let s = self.dev.get(d)?;
        if s.free == 0 {
            return None;
        }
        let first = self.geom.dev_first_zone(d as u16)?;
        let n = g.nr_zones;
        for i in 0..n {
            let local = (s.cursor.wrapping_add(i)) % n;
            if append && !g.zone_can_append(local) {
                continue;
            }
            let z = first.checked_add(local)?;
            if self.zones.get(z as usize).map(|zi| zi.state) == Some(ZoneState::Empty) {
                return Some(z);
            }
        }
        None
    }

    /// Chooses the member (and zone) for the next allocation of `stream`:
    /// the member with the most free zones among those that can serve the
    /// stream (an open zone of the stream counts as one more free zone),
    /// ties broken round robin. Read-only.
    fn pick(&self, stream: Stream, append: bool) -> Result<(usize, u32, bool)> {
        let n = self.geom.devices().len();
        let si = stream.index();
        let user = matches!(stream, Stream::UserHot | Stream::UserCold);
        let floor = if user { self.cfg.gc_reserve } else { 0 };
        let global_ok = self.free_zones > floor;
        let start = usize::from(self.rr.get(si).copied().unwrap_or(0));
        let mut limited = false;
        // Members found unable to open a suitable zone (bit per member).
        let mut excluded = 0u64;
        // Each round either succeeds or excludes one member: at most n + 1.
        for _round in 0..=n {
            let mut best: Option<(u64, usize, u32, bool)> = None;
            for i in 0..n {
                let d = start.wrapping_add(i) % n;
                if excluded & dev_bit(d) != 0 {
                    continue;
                }
                let free = u64::from(self.dev.get(d).map(|s| s.free).unwrap_or(0));
                let cand = match self.open_zone(stream, d as u16) {
                    Some(z) => {
                        // Appends only where supported; no mixing of write
                        // modes while writes of the other mode are in flight.
                        let zi = self.zones.get(z as usize).copied().unwrap_or_default();
                        let can = !append || self.geom.zone(z).map(|g| g.append) == Some(true);
                        if can && zi.inflight != 0 && zi.append != append {
                            limited = true; // busy until those writes complete
                        }
                        (can && (zi.inflight == 0 || zi.append == append)).then_some((
                            free.saturating_add(1),
                            d,
                            z,
                            false,
                        ))
                    }
                    None => {
                        let dev_append = self
                            .geom
                            .devices()
                            .get(d)
                            .map(|g| g.zone_append)
                            .unwrap_or(false);
                        if !global_ok || free == 0 || (append && !dev_append) {
                            None
                        } else if !self.may_open_on(d, stream != Stream::Meta) {
                            limited = true;
                            None
                        } else {
                            // The zone is searched only for the chosen member.
                            Some((free, d, NO_ZONE, true))
                        }
                    }
                };
                if let Some(c) = cand {
                    if best.map(|b| c.0 > b.0).unwrap_or(true) {
                        best = Some(c);
                    }
                }
            }
            match best {
                Some((_, d, z, false)) => return Ok((d, z, false)),
                Some((_, d, _, true)) => match self.find_empty(d, append) {
                    Some(z) => return Ok((d, z, true)),
                    None => excluded |= dev_bit(d),
                },
                None if limited => return Err(Error::Busy),
                None => return Err(Error::NoSpace),
            }
        }
        Err(Error::NoSpace)
    }

    fn take(&mut self, stream: Stream, n: u64, append: bool) -> Result<Extent> {
        if n == 0 {
            return Err(Error::Invalid("alloc: zero length"));
        }
        let (d, z, new) = self.pick(stream, append)?;
        let zg = self.geom.zone(z).ok_or(Error::Corrupt("alloc: zone"))?;
        let si = stream.index();
        let limited = !zg.conventional;
        if new {
            if let Some(s) = self.dev.get_mut(d) {
                s.free = s.free.saturating_sub(1);
                if limited {
                    s.open = s.open.saturating_add(1);
                    s.active = s.active.saturating_add(1);
                }
                s.cursor = zg.local.saturating_add(1);
            }
            self.free_zones = self.free_zones.saturating_sub(1);
            if let Some(slot) = self.dev.get_mut(d).and_then(|s| s.zone.get_mut(si)) {
                *slot = z;
            }
        }
        let clock = self.clock;
        let zi = self
            .zones
            .get_mut(z as usize)
            .ok_or(Error::Corrupt("alloc: zone"))?;
        let room = zg.cap.saturating_sub(u64::from(zi.wp));
        let len = n.min(room);
        let off = u64::from(zi.wp);
        // len <= cap <= u32::MAX (geometry rule).
        zi.wp = zi.wp.saturating_add(len as u32);
        zi.valid = zi.valid.saturating_add(len as u32);
        zi.inflight = zi.inflight.saturating_add(len as u32);
        zi.seq = clock;
        zi.append = append;
        zi.state = if u64::from(zi.wp) >= zg.cap {
            ZoneState::Full
        } else {
            ZoneState::Open(stream)
        };
        let full = zi.state == ZoneState::Full;
        if full {
            if let Some(slot) = self.dev.get_mut(d).and_then(|s| s.zone.get_mut(si)) {
                *slot = NO_ZONE;
            }
            if limited {
                if let Some(s) = self.dev.get_mut(d) {
                    s.open = s.open.saturating_sub(1);
                    s.active = s.active.saturating_sub(1);
                }
            }
        }
        self.clock = self.clock.saturating_add(len);
        self.valid_total = self.valid_total.saturating_add(len);
        if let Some(w) = self.written.get_mut(si) {
            *w = w.saturating_add(len);
        }
        if let Some(r) = self.rr.get_mut(si) {
            let next = d
                .saturating_add(1)
                .checked_rem(self.geom.devices().len())
                .unwrap_or(0);
            *r = u16::try_from(next).unwrap_or(0);
        }
        Ok(Extent {
            zone: z,
            addr: zg.start.saturating_add(off),
            len,
            append: zg.append,
        })
    }

    /// Hands out up to `n` blocks for `stream` at a write pointer (regular
    /// writes). The blocks count as valid and in flight; report the end of
    /// the write with [`Self::complete_write`] (or [`Self::abort`] on failure).
    ///
    /// Errors (nothing changed): [`Error::NoSpace`] when no zone is available
    /// to the stream (user streams may not take the GC reserve),
    /// [`Error::Busy`] when free zones exist only on members at their
    /// open/active limits, or the stream's open zone has writes of the other
    /// mode (append / regular) in flight; [`Error::Invalid`] for `n == 0`.
    pub fn alloc(&mut self, stream: Stream, n: u64) -> Result<Extent> {
        self.take(stream, n, false)
    }

    /// Reserves up to `n` blocks for a zone append of `stream` (on members
    /// supporting it). Returns the zone and the reserved length; the write
    /// pointer advances now. Report the location the device chose with
    /// [`Self::complete_append`]. Errors as [`Self::alloc`].
    pub fn reserve_append(&mut self, stream: Stream, n: u64) -> Result<(u32, u64)> {
        if !self.geom.devices().iter().any(|g| g.zone_append) {
            return Err(Error::Unsupported("zone append"));
        }
        self.take(stream, n, true).map(|e| (e.zone, e.len))
    }

    /// Checks `[addr, addr+len)` lies in zone `zone` below its write pointer
    /// and has `len` blocks in flight.
    fn check_inflight(&self, zone: u32, addr: u64, len: u64) -> Result<usize> {
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zi = self
            .zones
            .get(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        let end = addr.checked_add(len).ok_or(Error::Invalid("range"))?;
        let wp_end = zg.start.saturating_add(zi.wp());
        if len == 0 || addr < zg.start || end > wp_end {
            return Err(Error::Invalid("completion outside reserved space"));
        }
        if zi.inflight() < len {
            return Err(Error::Invalid("completion without reservation"));
        }
        Ok(zone as usize)
    }

    /// A zone append of `len` blocks reserved in `zone` completed at `addr`
    /// (completions may arrive in any order).
    pub fn complete_append(&mut self, zone: u32, addr: u64, len: u64) -> Result<()> {
        let i = self.check_inflight(zone, addr, len)?;
        if let Some(zi) = self.zones.get_mut(i) {
            zi.inflight = zi.inflight.saturating_sub(len as u32);
        }
        Ok(())
    }

    /// A regular write of `[addr, addr+len)` (inside one [`Extent`]) completed.
    pub fn complete_write(&mut self, addr: u64, len: u64) -> Result<()> {
        let zone = self.geom.zone_of(addr).ok_or(Error::Invalid("address"))?;
        self.complete_append(zone, addr, len)
    }

    /// A write of `len` blocks reserved in `zone` failed: they are neither in
    /// flight nor valid any more (the space stays consumed).
    pub fn abort(&mut self, zone: u32, len: u64) -> Result<()> {
        let zi = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        if len == 0 || zi.inflight() < len || zi.valid() < len {
            return Err(Error::Invalid("abort without reservation"));
        }
        zi.inflight = zi.inflight.saturating_sub(len as u32);
        zi.valid = zi.valid.saturating_sub(len as u32);
        self.valid_total = self.valid_total.saturating_sub(len);
        Ok(())
    }

    /// Walks `[addr, addr+len)` zone by zone: `f(zone, blocks)`; checks only.
    fn split(&self, addr: u64, len: u64, mut f: impl FnMut(u32, u64) -> Result<()>) -> Result<()> {
        if len == 0 {
            return Err(Error::Invalid("empty range"));
        }
        let mut a = addr;
        let end = addr.checked_add(len).ok_or(Error::Invalid("range"))?;
        while a < end {
            let l = self.geom.locate(a).ok_or(Error::Invalid("address"))?;
            let zi = self
                .zones
                .get(l.zone as usize)
                .ok_or(Error::Invalid("zone id"))?;
            if !zi.state.is_data() {
                return Err(Error::Invalid("address not in a data zone"));
            }
            let size = self.geom.zone(l.zone).map(|z| z.size).unwrap_or(0);
            let n = end.saturating_sub(a).min(size.saturating_sub(l.offset));
            if n == 0 || l.offset.saturating_add(n) > zi.wp() {
                return Err(Error::Invalid("address beyond write pointer"));
            }
            f(l.zone, n)?;
            a = a.saturating_add(n);
        }
        Ok(())
    }

    /// Blocks `[addr, addr+len)` are no longer referenced (overwritten,
    /// trimmed, relocated). All or nothing.
    pub fn invalidate(&mut self, addr: u64, len: u64) -> Result<()> {
        self.split(addr, len, |z, n| {
            if self.zones.get(z as usize).map(|zi| zi.valid()).unwrap_or(0) < n {
                Err(Error::Corrupt("alloc: valid count underflow"))
            } else {
                Ok(())
            }
        })?;
        let mut a = addr;
        let end = addr.saturating_add(len);
        while a < end {
            let Some(l) = self.geom.locate(a) else { break };
            let size = self.geom.zone(l.zone).map(|z| z.size).unwrap_or(0);
            let n = end.saturating_sub(a).min(size.saturating_sub(l.offset));
            if let Some(zi) = self.zones.get_mut(l.zone as usize) {
                zi.valid = zi.valid.saturating_sub(n as u32);
            }
            self.valid_total = self.valid_total.saturating_sub(n);
            a = a.saturating_add(n.max(1));
        }
        Ok(())
    }

    /// Blocks `[addr, addr+len)` are referenced (used when rebuilding valid
    /// counts from the block tables). All or nothing.
    pub fn validate(&mut self, addr: u64, len: u64) -> Result<()> {
        self.split(addr, len, |z, n| match self.zones.get(z as usize) {
            Some(zi) if zi.valid().saturating_add(n) <= zi.wp() => Ok(()),
            _ => Err(Error::Corrupt("alloc: valid count above write pointer")),
        })?;
        let mut a = addr;
        let end = addr.saturating_add(len);
        while a < end {
            let Some(l) = self.geom.locate(a) else { break };
            let size = self.geom.zone(l.zone).map(|z| z.size).unwrap_or(0);
            let n = end.saturating_sub(a).min(size.saturating_sub(l.offset));
            if let Some(zi) = self.zones.get_mut(l.zone as usize) {
                zi.valid = zi.valid.saturating_add(n as u32);
            }
            self.valid_total = self.valid_total.saturating_add(n);
            a = a.saturating_add(n.max(1));
        }
        Ok(())
    }

    /// Blocks `[addr, addr+len)` gained a reference because a block-table
    /// leaf shared with a snapshot or clone was copied (the `on_ref`
    /// callback of `BlockTable::map_range_shared`). Like [`Self::validate`]
    /// but without the `valid <= wp` bound: with sharing, `valid` counts leaf
    /// entries and a block may be referenced from several leaves.
    pub fn add_refs(&mut self, addr: u64, len: u64) -> Result<()> {
        self.split(addr, len, |z, n| match self.zones.get(z as usize) {
            Some(zi) if zi.valid().saturating_add(n) <= u64::from(u32::MAX) => Ok(()),
            _ => Err(Error::Invalid("alloc: too many references")),
        })?;
        let mut a = addr;
        let end = addr.saturating_add(len);
        while a < end {
            let Some(l) = self.geom.locate(a) else { break };
            let size = self.geom.zone(l.zone).map(|z| z.size).unwrap_or(0);
            let n = end.saturating_sub(a).min(size.saturating_sub(l.offset));
            if let Some(zi) = self.zones.get_mut(l.zone as usize) {
                zi.valid = zi.valid.saturating_add(n as u32);
            }
            self.valid_total = self.valid_total.saturating_add(n);
            a = a.saturating_add(n.max(1));
        }
        Ok(())
    }

    /// Sets every valid count to zero (before rebuilding them with
    /// [`Self::validate`] from the block tables). Fails if writes are in flight.
    pub fn clear_valid(&mut self) -> Result<()> {
        if self.zones.iter().any(|z| z.inflight != 0) {
            return Err(Error::Busy);
        }
        for z in self.zones.iter_mut() {
            z.valid = 0;
        }
        self.valid_total = 0;
        Ok(())
    }

    fn detach_open(&mut self, zone: u32) {
        for s in self.dev.iter_mut() {
            for slot in s.zone.iter_mut() {
                if *slot == zone {
                    *slot = NO_ZONE;
                }
            }
        }
    }

    /// Stops filling an open zone. An unwritten zone becomes empty again,
    /// otherwise closed (still active on the device). Other states: no-op.
    pub fn close(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let ZoneState::Open(_) = zi.state else {
            return Ok(());
        };
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        self.detach_open(zone);
        let d = usize::from(zg.dev);
        let empty = zi.wp == 0;
        if let Some(s) = self.dev.get_mut(d) {
            if !zg.conventional {
                s.open = s.open.saturating_sub(1);
                if empty {
                    s.active = s.active.saturating_sub(1);
                }
            }
            if empty {
                s.free = s.free.saturating_add(1);
            }
        }
        if empty {
            self.free_zones = self.free_zones.saturating_add(1);
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = if empty {
                ZoneState::Empty
            } else {
                ZoneState::Closed
            };
        }
        Ok(())
    }

    /// Makes a closed zone the open zone of `stream` on its member again, so
    /// writing continues at its write pointer instead of wasting the rest of
    /// the zone (e.g. after recovery, where every partly written zone comes
    /// back closed). [`Error::Busy`] if the stream already has an open zone
    /// there or the member is at its open limit; [`Error::Invalid`] unless
    /// the zone is closed with room left. Nothing changes on error.
    pub fn reopen(&mut self, zone: u32, stream: Stream) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Closed || zi.wp() >= zg.cap {
            return Err(Error::Invalid("reopen: not a closed zone with room"));
        }
        let d = usize::from(zg.dev);
        if self.open_zone(stream, zg.dev).is_some() {
            return Err(Error::Busy);
        }
        if !zg.conventional {
            let g = self.geom.devices().get(d).ok_or(Error::Invalid("member"))?;
            let s = self.dev.get(d).ok_or(Error::Invalid("member"))?;
            let keep = u32::from(stream != Stream::Meta && s.meta_open == 0);
            let lim = g.open_limit();
            if lim != 0 && s.open.saturating_add(1).saturating_add(keep) > lim {
                return Err(Error::Busy);
            }
        }
        if let Some(s) = self.dev.get_mut(d) {
            if !zg.conventional {
                s.open = s.open.saturating_add(1);
            }
        }
        if let Some(slot) = self
            .dev
            .get_mut(d)
            .and_then(|s| s.zone.get_mut(stream.index()))
        {
            *slot = zone;
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = ZoneState::Open(stream);
        }
        Ok(())
    }

    /// Marks a data zone full (the caller issues the device's zone finish):
    /// open, closed or empty zones become [`ZoneState::Full`] with the write
    /// pointer at capacity. Full zones: no-op.
    pub fn finish(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let d = usize::from(zg.dev);
        match zi.state {
            ZoneState::Full => return Ok(()),
            ZoneState::Meta | ZoneState::Offline => {
                return Err(Error::Invalid("finish: not a data zone"))
            }
            ZoneState::Open(_) => {
                self.detach_open(zone);
                if let Some(s) = self.dev.get_mut(d) {
                    if !zg.conventional {
                        s.open = s.open.saturating_sub(1);
                        s.active = s.active.saturating_sub(1);
                    }
                }
            }
            ZoneState::Closed => {
                if let Some(s) = self.dev.get_mut(d) {
                    if !zg.conventional {
                        s.active = s.active.saturating_sub(1);
                    }
                }
            }
            ZoneState::Empty => {
                if let Some(s) = self.dev.get_mut(d) {
                    s.free = s.free.saturating_sub(1);
                }
                self.free_zones = self.free_zones.saturating_sub(1);
            }
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = ZoneState::Full;
            z.wp = zg.cap as u32;
        }
        Ok(())
    }

    /// Returns a data zone to [`ZoneState::Empty`] (the caller issues the
    /// device's zone reset first or after, as its ordering rules need).
    /// [`Error::Busy`] while it has valid or in-flight blocks; nothing changes.
    pub fn reset(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if !zi.state.is_data() {
            return match zi.state {
                ZoneState::Empty => Ok(()),
                _ => Err(Error::Invalid("reset: not a data zone")),
            };
        }
        if zi.valid != 0 || zi.inflight != 0 {
            return Err(Error::Busy);
        }
        if let ZoneState::Open(_) = zi.state {
            self.close(zone)?;
        }
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state == ZoneState::Empty {
            return Ok(());
        }
        if let Some(s) = self.dev.get_mut(usize::from(zg.dev)) {
            if zi.state == ZoneState::Closed && !zg.conventional {
                s.active = s.active.saturating_sub(1);
            }
            s.free = s.free.saturating_add(1);
        }
        self.free_zones = self.free_zones.saturating_add(1);
        if let Some(z) = self.zones.get_mut(zone as usize) {
            *z = ZoneInfo::default();
        }
        Ok(())
    }

    /// Marks a reserved metadata zone open or closed, so it counts against
    /// its device's open/active limits.
    pub fn meta_open(&mut self, zone: u32, open: bool) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Meta {
            return Err(Error::Invalid("not a meta zone"));
        }
        if zi.meta_open == open {
            return Ok(());
        }
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let d = usize::from(zg.dev);
        if open && !self.may_open_on(d, false) {
            return Err(Error::Busy);
        }
        if let Some(s) = self.dev.get_mut(d) {
            if open {
                s.meta_open = s.meta_open.saturating_add(1);
                s.open = s.open.saturating_add(1);
                s.active = s.active.saturating_add(1);
            } else {
                s.meta_open = s.meta_open.saturating_sub(1);
                s.open = s.open.saturating_sub(1);
                s.active = s.active.saturating_sub(1);
            }
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.meta_open = open;
        }
        Ok(())
    }

    /// Takes a zone out of service (device reported it offline). Its valid
    /// blocks are dropped from the counters; the caller handles data loss.
    pub fn set_offline(&mut self, zone: u32) -> Result<()> {
        let z = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        z.state = ZoneState::Offline;
        z.meta_open = false;
        z.valid = 0;
        z.inflight = 0;
        self.rebuild();
        Ok(())
    }

    /// Overwrites one zone's state (recovery: e.g. the write pointer the
    /// device reports). Checked against the geometry; call [`Self::rebuild`]
    /// after a batch of changes.
    pub fn set_zone(&mut self, zone: u32, state: ZoneState, wp: u64, valid: u64) -> Result<()> {
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let info = check_zone(&zg, state, wp, valid, 0)?;
        let z = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        *z = ZoneInfo { seq: z.seq, ..info };
        Ok(())
    }

    /// Recomputes every derived counter (free zones, open/active per member,
    /// open-zone table, valid total, clock) from the zone table. An open zone
    /// whose stream already has one on that member becomes closed; an open
    /// zone at capacity becomes full. In-flight counts are kept.
    pub fn rebuild(&mut self) {
        for s in self.dev.iter_mut() {
            *s = DevState::EMPTY;
        }
        self.free_zones = 0;
        self.valid_total = 0;
        let mut clock = self.clock;
        for z in 0..self.geom.nr_zones() {
            let Some(zg) = self.geom.zone(z) else {
                continue;
            };
            let Some(zi) = self.zones.get_mut(z as usize) else {
                continue;
            };
            if let ZoneState::Open(s) = zi.state {
                let slot = self
                    .dev
                    .get_mut(usize::from(zg.dev))
                    .and_then(|d| d.zone.get_mut(s.index()));
                if u64::from(zi.wp) >= zg.cap {
                    zi.state = ZoneState::Full;
                } else if let Some(slot) = slot {
                    if *slot == NO_ZONE {
                        *slot = z;
                    } else {
                        zi.state = ZoneState::Closed;
                    }
                }
            }
            clock = clock.max(zi.seq);
            self.valid_total = self.valid_total.saturating_add(zi.valid());
            let Some(s) = self.dev.get_mut(usize::from(zg.dev)) else {
                continue;
            };
            if s.tally(&zg, zi) {
                self.free_zones = self.free_zones.saturating_add(1);
            }
        }
        self.clock = clock;
    }

    /// Verifies the allocator without changing it (for the verifier and
    /// tests): per-zone invariants (metadata state exactly on metadata
    /// zones, empty zones unwritten, `wp <= capacity`, `inflight <= wp`,
    /// `valid <= wp` unless `shared` (snapshots: see [`Self::add_refs`]),
    /// open zones below capacity and registered as their stream's open zone
    /// on their member) and every derived counter against a recomputation.
    pub fn check(&self, shared: bool) -> Result<()> {
        let (mut free, mut valid) = (0u32, 0u64);
        for z in 0..self.geom.nr_zones() {
            let zg = self
                .geom
                .zone(z)
                .ok_or(Error::Corrupt("alloc: zone geometry"))?;
            let zi = self
                .zones
                .get(z as usize)
                .ok_or(Error::Corrupt("alloc: zone table"))?;
            if zg.meta != (zi.state == ZoneState::Meta) {
                return Err(Error::Corrupt("alloc: meta state mismatch"));
            }
            if zi.meta_open && zi.state != ZoneState::Meta {
                return Err(Error::Corrupt("alloc: open flag on a data zone"));
            }
            if zi.wp() > zg.cap || zi.inflight > zi.wp || (!shared && zi.valid > zi.wp) {
                return Err(Error::Corrupt("alloc: write pointer / valid / in-flight"));
            }
            if matches!(zi.state, ZoneState::Empty | ZoneState::Meta)
                && (zi.wp != 0 || zi.valid != 0 || zi.inflight != 0)
            {
                return Err(Error::Corrupt("alloc: empty zone with data"));
            }
            if let ZoneState::Open(st) = zi.state {
                if zi.wp() >= zg.cap || self.open_zone(st, zg.dev) != Some(z) {
                    return Err(Error::Corrupt("alloc: open zone not registered"));
                }
            }
            valid = valid.saturating_add(zi.valid());
            if zi.state == ZoneState::Empty {
                free = free.saturating_add(1);
            }
        }
        // Member counters, one member at a time (its zones are contiguous).
        for (d, b) in self.dev.iter().enumerate() {
            let mut a = DevState::EMPTY;
            if let (Some(g), Some(first)) = (
                self.geom.device(d as u16),
                self.geom.dev_first_zone(d as u16),
            ) {
                for z in first..first.saturating_add(g.nr_zones) {
                    let zg = self
                        .geom
                        .zone(z)
                        .ok_or(Error::Corrupt("alloc: zone geometry"))?;
                    let zi = self
                        .zones
                        .get(z as usize)
                        .ok_or(Error::Corrupt("alloc: zone table"))?;
                    a.tally(&zg, zi);
                }
            }
            if (a.free, a.open, a.active, a.meta_open) != (b.free, b.open, b.active, b.meta_open) {
                return Err(Error::Corrupt("alloc: member counters"));
            }
            for (si, &z) in b.zone.iter().enumerate() {
                if z == NO_ZONE {
                    continue;
                }
                let ok = self.geom.zone(z).map(|g| usize::from(g.dev)) == Some(d)
                    && self.zone(z).map(|zi| zi.state)
                        == Stream::from_index(si).map(ZoneState::Open);
                if !ok {
                    return Err(Error::Corrupt("alloc: open-zone table"));
                }
            }
        }
        if free != self.free_zones || valid != self.valid_total {
            return Err(Error::Corrupt("alloc: totals"));
        }
        Ok(())
    }

    /// Size of one encoded zone record.
    pub const ZONE_RECORD_BYTES: usize = 18;

    /// Encodes the zone table into `w` as one chunk, starting at zone
    /// `*cursor` and taking as many zones as fit; advances `*cursor`.
    /// Returns `Ok(true)` once every zone is encoded. Chunk format:
    /// `first_zone: u32, count: u32`, then `count` records of
    /// `state: u8, flags: u8 (bit 0 = meta open), wp: u32, valid: u32, seq: u64`.
    /// [`Error::Truncated`] if not even one record fits (nothing written).
    pub fn encode_zones(&self, cursor: &mut u32, w: &mut Writer<'_>) -> Result<bool> {
        let nr = self.geom.nr_zones();
        if *cursor >= nr {
            return Ok(true);
        }
        let fit = w.remaining().saturating_sub(8) / Self::ZONE_RECORD_BYTES;
        if fit == 0 {
            return Err(Error::Truncated);
        }
        let count = nr
            .saturating_sub(*cursor)
            .min(u32::try_from(fit).unwrap_or(u32::MAX));
        w.put_u32(*cursor)?;
        w.put_u32(count)?;
        for z in *cursor..cursor.saturating_add(count) {
            let zi = self.zone(z).copied().unwrap_or_default();
            w.put_u8(zi.state.code())?;
            w.put_u8(u8::from(zi.meta_open))?;
            w.put_u32(zi.wp)?;
            w.put_u32(zi.valid)?;
            w.put_u64(zi.seq)?;
        }
        *cursor = cursor.saturating_add(count);
        Ok(*cursor >= nr)
    }

    /// Decodes one chunk written by [`Self::encode_zones`] into the zone
    /// table (each record checked against the geometry). Returns the zone id
    /// after the chunk. On error the zone table may be partly overwritten and
    /// the allocator must be discarded. Call [`Self::rebuild`] after the last
    /// chunk.
    pub fn decode_zones(&mut self, r: &mut Reader<'_>) -> Result<u32> {
        let first = r.get_u32()?;
        let count = r.get_u32()?;
        let end = first
            .checked_add(count)
            .filter(|e| *e <= self.geom.nr_zones())
            .ok_or(Error::BadField("zone chunk range"))?;
        for z in first..end {
            let code = r.get_u8()?;
            let flags = r.get_u8()?;
            let wp = r.get_u32()?;
            let valid = r.get_u32()?;
            let seq = r.get_u64()?;
            let state = ZoneState::from_code(code).ok_or(Error::BadField("zone state"))?;
            if flags > 1 || (flags == 1 && state != ZoneState::Meta) {
                return Err(Error::BadField("zone flags"));
            }
            let zg = self.geom.zone(z).ok_or(Error::BadField("zone id"))?;
            let info = check_zone(&zg, state, u64::from(wp), u64::from(valid), seq)
                .map_err(|_| Error::BadField("zone record"))?;
            if let Some(slot) = self.zones.get_mut(z as usize) {
                *slot = ZoneInfo {
                    meta_open: flags == 1,
                    ..info
                };
            }
        }
        Ok(end)
    }
}

/// Builds a zone record after checking it against the zone's geometry.
fn check_zone(
    zg: &super::geom::ZoneGeom,
    state: ZoneState,
    wp: u64,
    valid: u64,
    seq: u64,
) -> Result<ZoneInfo> {
    if zg.meta != (state == ZoneState::Meta) {
        return Err(Error::Invalid("zone: meta state mismatch"));
    }
    if wp > zg.cap || valid > wp {
        return Err(Error::Invalid("zone: write pointer or valid count"));
    }
    match state {
        ZoneState::Empty | ZoneState::Meta if wp != 0 => {
            return Err(Error::Invalid("zone: write pointer of empty zone"))
        }
        ZoneState::Offline if valid != 0 => return Err(Error::Invalid("zone: offline")),
        _ => {}
    }
    Ok(ZoneInfo {
        state,
        meta_open: false,
        append: false,
        wp: wp as u32,
        valid: valid as u32,
        inflight: 0,
        seq,
    })
}

/// Bit of member `d` in a 64-bit member set (none beyond bit 63).
fn dev_bit(d: usize) -> u64 {
    u32::try_from(d)
        .ok()
        .and_then(|d| 1u64.checked_shl(d))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
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
                (x.free, x.open, x.active, x.meta_open, x.zone),
                (y.free, y.open, y.active, y.meta_open, y.zone)
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
    fn append_out_of_order() {
        let mut smr = zns(8, 16, 16);
        smr.kind = DevKind::Smr;
        smr.zone_append = false;
        smr.max_open = 0;
        smr.max_active = 0;
        let mut a = mk(&[smr, zns(8, 16, 16)], 1);
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
        let only = mk(&[smr], 1);
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
}
