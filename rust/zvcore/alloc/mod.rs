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
//!
//! Submodules (each adds methods to [`Allocator`]):
//! - `place`: choosing a member and zone, handing out space;
//! - `accounting`: completion of in-flight writes, valid counts;
//! - `zones`: zone state changes (close, reopen, finish, reset, ...);
//! - `check`: rebuilding and verifying the derived counters;
//! - `grow`: a member added to the pool (larger caller storage);
//! - `records`: the zone table as checkpoint records.

use super::error::{Error, Result};
use super::geom::{DeviceGeometry, PoolGeometry, Stream, ZoneGeom, MAX_DEVICES, NR_STREAMS};
use core::ops::{Deref, DerefMut};

mod accounting;
mod check;
mod grow;
mod place;
pub use place::spread;
mod records;
mod tiers;
mod zones;

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
    /// [`ZF_APPEND`], [`ZF_FILLING`], [`ZF_FIN_PENDING`] (one byte: the
    /// struct stays at 24 bytes a zone).
    flags: u8,
    wp: u32,
    valid: u32,
    inflight: u32,
    /// Write clock at the zone's last allocation (age for cost-benefit GC).
    seq: u64,
}

/// [`ZoneInfo`] flag: the last reservation was for a zone append (in-flight
/// writes of one zone are all of one mode).
const ZF_APPEND: u8 = 1 << 0;
/// [`ZoneInfo`] flag: filled by allocation (not finished): the device's
/// write pointer reaches capacity only when the writes in flight land.
const ZF_FILLING: u8 = 1 << 1;
/// [`ZoneInfo`] flag: finished here, but the device's finish is still to be
/// issued ([`Allocator::finish_deferred`]).
const ZF_FIN_PENDING: u8 = 1 << 2;
/// [`ZoneInfo`] flag: written by [`Stream::UserHot`] (its data is expected
/// to die young; GC places what survives apart from cold data).
const ZF_HOT: u8 = 1 << 3;
/// A meta zone kept open between checkpoints (the tail of a delta chain,
/// see [`Allocator::meta_keep`]): not the journal's slot.
const ZF_KEPT: u8 = 1 << 4;
/// An open meta zone to close once the operations emitted before are done
/// ([`Allocator::meta_close_later`]).
const ZF_CLOSING: u8 = 1 << 5;
/// [`ZoneInfo`] flag: the device turned the zone read-only or offline
/// ([`Allocator::retire`]): never written, finished or reset again.
const ZF_RETIRED: u8 = 1 << 6;
/// [`ZoneInfo`] flag: retired and its blocks cannot be read (offline).
const ZF_UNREADABLE: u8 = 1 << 7;

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
    /// Full here but still active on the device: writes into it are in
    /// flight (its write pointer reaches its capacity only when the last
    /// lands), or its finish is yet to be issued. It counts against the
    /// device's active limit until then.
    pub fn held(&self) -> bool {
        self.state == ZoneState::Full
            && ((self.flag(ZF_FILLING) && self.inflight != 0) || self.flag(ZF_FIN_PENDING))
    }
    fn flag(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    /// The device turned it read-only or offline ([`Allocator::retire`]).
    pub fn retired(&self) -> bool {
        self.flag(ZF_RETIRED)
    }
    /// Retired and unreadable (offline): GC must not read it.
    pub fn unreadable(&self) -> bool {
        self.flag(ZF_UNREADABLE)
    }
    fn set_flag(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }
    /// Write clock of the last allocation in this zone.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Written by [`Stream::UserHot`].
    pub fn hot(&self) -> bool {
        self.flag(ZF_HOT)
    }
    /// A data zone holding data (open, closed or full).
    fn holds_data(&self) -> bool {
        matches!(
            self.state,
            ZoneState::Open(_) | ZoneState::Closed | ZoneState::Full
        )
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
    /// Default: `max(2, members / 2)` reserve zones.
    ///
    /// GC must be able to place one victim's live blocks before the victim
    /// is reset: less than a zone, so two zones suffice for members of one
    /// zone size (the copies may open a zone in each of the two streams GC
    /// writes, [`Stream::Gc`] and [`Stream::UserCold`]); half a zone per
    /// member beyond that leaves room for copies spread over members. The
    /// reserve is held free for good, so it costs write amplification: it
    /// was `max(2, members)`, and on 8 members of 128 zones the 4 zones
    /// fewer took WA at 80 % full from 2.92 to 2.83 (`tests/gcsim.rs`).
    pub fn default_for(nr_devices: u16) -> AllocConfig {
        AllocConfig {
            gc_reserve: (u32::from(nr_devices) / 2).max(2),
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
    /// Those of them kept open between checkpoints (`ZF_KEPT`).
    kept: u32,
    /// Full zones still active on the device ([`ZoneInfo::held`]),
    /// counted against the active limit besides `active`.
    held: u32,
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
        kept: 0,
        held: 0,
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
                if zi.flag(ZF_KEPT) {
                    self.kept = self.kept.saturating_add(1);
                }
                self.open = self.open.saturating_add(1);
                self.active = self.active.saturating_add(1);
            }
            ZoneState::Full if zi.held() && !zg.conventional => {
                self.held = self.held.saturating_add(1);
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
    /// GC copies are being placed ([`Self::set_copying`]).
    copying: bool,
    /// Members whose open data zones take no new blocks
    /// ([`Self::set_draining`]), bit per member.
    draining: u64,
    /// Meta zones closed by operations not yet done
    /// ([`Self::meta_close_later`], flag [`ZF_CLOSING`]).
    nclosing: u32,
    /// Members whose zones take no blocks at all (added, their membership
    /// not durable yet: [`Self::grow`]), bit per member.
    fenced: u64,
    /// Members being evacuated: no new blocks either
    /// ([`Self::set_evacuating`]), bit per member.
    evacuating: u64,
    /// The only members the next allocations may use (0: any;
    /// [`Self::set_only`]).
    only: u64,
    /// The member whose open zone of the stream the next allocation
    /// continues in if it can (a sequential write's next piece;
    /// [`Self::set_next_on`]), `u16::MAX` for none. One allocation only.
    next_on: u16,
    /// Members that are gone (the device was removed): no new blocks, no
    /// zone operation ([`Self::set_lost`]), bit per member.
    lost: u64,
    /// Retired zones still holding readable blocks (GC moves them first:
    /// [`Self::retire`]).
    retired_readable: u32,
    /// Slow members (SMR by default), bit per member (`tiers`).
    slow: u64,
    /// Tiering asked for (`tiers`).
    tiering: bool,
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
            copying: false,
            draining: 0,
            nclosing: 0,
            fenced: 0,
            evacuating: 0,
            only: 0,
            next_on: u16::MAX,
            lost: 0,
            retired_readable: 0,
            written: [0; NR_STREAMS],
            slow: 0,
            tiering: false,
        };
        a.slow = tiers::default_slow(a.geom.devices());
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
            .map(|s| (s.open, s.active.saturating_add(s.held)))
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
        // A removed member's zones are no longer the pool's.
        self.free_blocks_except(self.geom.removed())
    }

    /// [`Self::free_blocks`] of the members not in `members` (bit per
    /// member).
    pub fn free_blocks_except(&self, members: u64) -> u64 {
        let mut f = 0u64;
        let n = self.geom.devices().len();
        for (d, (g, s)) in self.geom.devices().iter().zip(self.dev.iter()).enumerate() {
            if members & place::dev_bit(d) != 0 || d >= n {
                continue;
            }
            f = f.saturating_add(u64::from(s.free).saturating_mul(g.zone_cap_blocks));
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

    /// GC copies are placed (`true`) until further notice: they may take
    /// the reserve of empty zones kept for GC in any data stream (GC
    /// places the survivors of cold zones with cold user data).
    pub fn set_copying(&mut self, on: bool) {
        self.copying = on;
    }

    /// Members (bit per member) whose data zones take no new blocks until
    /// further notice, so that their writes in flight drain: a checkpoint
    /// waits for a zone slot there, which a data zone with nothing in
    /// flight can give up (`Pool::checkpoint_begin`). Allocations that
    /// only such members could serve get [`Error::Busy`] (retry once the
    /// checkpoint has begun). 0 ends it.
    pub fn set_draining(&mut self, members: u64) {
        self.draining = members;
    }

    /// The members set by [`Self::set_draining`].
    pub fn draining(&self) -> u64 {
        self.draining
    }

    /// Valid blocks in the zones of member `d` (a walk over its zones).
    pub fn dev_valid_blocks(&self, d: u16) -> u64 {
        let (Some(first), Some(g)) = (self.geom.dev_first_zone(d), self.geom.device(d)) else {
            return 0;
        };
        let start = first as usize;
        self.zones
            .get(start..start.saturating_add(g.nr_zones as usize))
            .map_or(0, |z| z.iter().map(|z| z.valid()).sum())
    }

    /// Empty data zones of member `d`.
    pub fn member_free_zones(&self, d: u16) -> u32 {
        self.dev.get(usize::from(d)).map_or(0, |s| s.free)
    }

    /// Blocks handed out to every stream since this allocator was set up.
    pub fn written_total(&self) -> u64 {
        self.written.iter().fold(0u64, |a, w| a.saturating_add(*w))
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
}

#[cfg(test)]
mod tests;
