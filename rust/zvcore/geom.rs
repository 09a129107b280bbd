// SPDX-License-Identifier: GPL-2.0
//! Geometry of the aggregated space: member devices, zones, pool addresses.
//!
//! Every member device `d` (in member order) owns the contiguous pool address
//! range `[base_d, base_d + nr_zones_d * zone_blocks_d)`; `base_0 = 0` and
//! `base_{d+1} = base_d + nr_zones_d * zone_blocks_d`. Zone ids are global `u32`
//! indices, device 0's zones first. The device, zone and offset of an address
//! are therefore pure arithmetic on the member geometries and are never stored.
//!
//! All addresses and lengths are in 4 KiB blocks.

use super::error::{Error, Result};
use core::ops::Deref;

/// Reserved metadata zones at the start of each device's sequential zones
/// in the original layout (two log zones, one zone per checkpoint set), and
/// the least a pool has. They never hold data (their use is defined by the
/// on-disk format). A pool may reserve more ([`DeviceGeometry::meta_zones`]):
/// its checkpoint sets then span several zones of every member.
pub const META_ZONES_PER_DEV: u32 = 4;

/// Most reserved metadata zones per device (two log zones and 2 x 4095
/// checkpoint zones).
pub const MAX_META_ZONES: u32 = 8192;

/// Most members a pool may have.
pub const MAX_DEVICES: usize = 64;

/// Pool addresses are below `1 << ADDR_BITS` (so block-table entries can keep
/// flag bits above the address). 2^48 blocks of 4 KiB = 1 EiB.
pub const ADDR_BITS: u32 = 48;

/// Exclusive upper bound of the aggregated address space.
pub const MAX_POOL_BLOCKS: u64 = 1 << ADDR_BITS;

/// Largest supported zone (so in-zone offsets and write pointers fit a `u32`).
pub const MAX_ZONE_BLOCKS: u64 = u32::MAX as u64;

/// Kind of a member device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevKind {
    /// NVMe zoned namespace SSD.
    Zns,
    /// Host-managed SMR hard disk (may have leading conventional zones).
    Smr,
    /// Conventional (randomly writable) device, modelled as fixed-size zones
    /// that zvpool still fills sequentially.
    Conventional,
}

impl DevKind {
    /// On-disk code of the kind.
    pub const fn code(self) -> u8 {
        match self {
            DevKind::Zns => 1,
            DevKind::Smr => 2,
            DevKind::Conventional => 3,
        }
    }

    /// Kind from its on-disk code.
    pub const fn from_code(c: u8) -> Option<DevKind> {
        match c {
            1 => Some(DevKind::Zns),
            2 => Some(DevKind::Smr),
            3 => Some(DevKind::Conventional),
            _ => None,
        }
    }
}

/// Geometry of one member device (shared vocabulary of the core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceGeometry {
    /// Device kind.
    pub kind: DevKind,
    /// Number of zones (the device's usable size is `nr_zones * zone_blocks`).
    pub nr_zones: u32,
    /// Zone size in blocks (address stride between zones).
    pub zone_blocks: u64,
    /// Writable blocks per zone (`<= zone_blocks`); a zone is full at capacity.
    pub zone_cap_blocks: u64,
    /// Leading conventional zones (SMR); 0 for ZNS and conventional devices.
    pub nr_conv_zones: u32,
    /// Most simultaneously open zones (0 = unlimited).
    pub max_open: u32,
    /// Most simultaneously active (open or closed, not full) zones (0 = unlimited).
    pub max_active: u32,
    /// The device supports zone append (sequential zones only).
    pub zone_append: bool,
    /// Reserved metadata zones at the start of its sequential zones: a
    /// property of the pool (chosen at format, the same on every member,
    /// stored once in the superblock), not of the device; even, from
    /// [`META_ZONES_PER_DEV`] to [`MAX_META_ZONES`]. A device probed
    /// outside a pool has [`META_ZONES_PER_DEV`].
    pub meta_zones: u32,
}

impl DeviceGeometry {
    /// A device not given to [`super::recovery::recover`]: the place of a
    /// member that may be missing (degraded assembly). No zones; never a
    /// member's geometry ([`Self::validate`] refuses it).
    pub const ABSENT: DeviceGeometry = DeviceGeometry {
        kind: DevKind::Conventional,
        nr_zones: 0,
        zone_blocks: 0,
        zone_cap_blocks: 0,
        nr_conv_zones: 0,
        max_open: 0,
        max_active: 0,
        zone_append: false,
        meta_zones: 0,
    };

    /// Whether this is [`Self::ABSENT`].
    pub fn is_absent(&self) -> bool {
        self.nr_zones == 0
    }

    /// Checks the geometry is usable by zvpool:
    /// nonzero sizes, `0 < zone_cap_blocks <= zone_blocks <= MAX_ZONE_BLOCKS`,
    /// `nr_conv_zones` only on SMR, a valid metadata zone count and at least
    /// that many sequential zones plus one data zone, the size fits the
    /// address space, and the
    /// open/active limits leave room for at least one metadata and one data
    /// zone open at a time.
    pub fn validate(&self) -> Result<()> {
        if self.nr_zones == 0 {
            return Err(Error::Invalid("geometry: no zones"));
        }
        if self.zone_blocks == 0 || self.zone_blocks > MAX_ZONE_BLOCKS {
            return Err(Error::Invalid("geometry: zone size"));
        }
        if self.zone_cap_blocks == 0 || self.zone_cap_blocks > self.zone_blocks {
            return Err(Error::Invalid("geometry: zone capacity"));
        }
        match self.kind {
            DevKind::Smr => {}
            _ if self.nr_conv_zones != 0 => {
                return Err(Error::Invalid("geometry: conventional zones on non-SMR"))
            }
            _ => {}
        }
        let seq = self
            .nr_zones
            .checked_sub(self.nr_conv_zones)
            .ok_or(Error::Invalid("geometry: conventional zones"))?;
        if self.meta_zones < META_ZONES_PER_DEV
            || self.meta_zones > MAX_META_ZONES
            || !self.meta_zones.is_multiple_of(2)
        {
            return Err(Error::Invalid("geometry: metadata zones"));
        }
        if seq < self.meta_zones {
            return Err(Error::Invalid("geometry: too few sequential zones"));
        }
        if self.nr_zones <= self.meta_zones {
            return Err(Error::Invalid("geometry: no data zone"));
        }
        match self.size_blocks() {
            Some(s) if s < MAX_POOL_BLOCKS => {}
            _ => return Err(Error::Invalid("geometry: device too large")),
        }
        if self.max_open != 0 && self.max_active != 0 && self.max_open > self.max_active {
            return Err(Error::Invalid("geometry: max_open > max_active"));
        }
        let lim = self.open_limit();
        if lim != 0 && lim < 2 {
            return Err(Error::Invalid("geometry: open zone limit below 2"));
        }
        if self.kind == DevKind::Conventional && self.zone_append {
            return Err(Error::Invalid(
                "geometry: zone append on conventional device",
            ));
        }
        Ok(())
    }

    /// Size of the device's address range (`nr_zones * zone_blocks`).
    pub fn size_blocks(&self) -> Option<u64> {
        u64::from(self.nr_zones).checked_mul(self.zone_blocks)
    }

    /// Effective limit on simultaneously open zones (0 = unlimited): the
    /// smaller nonzero of `max_open` and `max_active`.
    pub fn open_limit(&self) -> u32 {
        match (self.max_open, self.max_active) {
            (0, a) => a,
            (o, 0) => o,
            (o, a) => o.min(a),
        }
    }

    /// Whether device-local zone `local` is conventional (randomly writable).
    pub fn zone_is_conventional(&self, local: u32) -> bool {
        self.kind == DevKind::Conventional || local < self.nr_conv_zones
    }

    /// Device-local index of the first reserved metadata zone: the first
    /// sequential zone (after SMR conventional zones), or 0 on a conventional
    /// device.
    pub fn first_meta_zone(&self) -> u32 {
        match self.kind {
            DevKind::Conventional => 0,
            _ => self.nr_conv_zones,
        }
    }

    /// Whether device-local zone `local` is one of the reserved metadata zones.
    pub fn zone_is_meta(&self, local: u32) -> bool {
        let first = self.first_meta_zone();
        local >= first && local - first < self.meta_zones
    }

    /// Whether zone append may be used on device-local zone `local`.
    pub fn zone_can_append(&self, local: u32) -> bool {
        self.zone_append && !self.zone_is_conventional(local)
    }

    /// Number of zones that may hold data (all but the metadata zones).
    pub fn nr_data_zones(&self) -> u32 {
        self.nr_zones.saturating_sub(self.meta_zones)
    }
}

/// Allocation streams. Open zones are per stream and per device, so data of
/// different lifetimes (user overwrites, GC relocations, metadata) never
/// shares a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// User writes (default; likely to be overwritten soon).
    UserHot,
    /// User writes hinted as cold (e.g. sequential bulk writes).
    UserCold,
    /// GC relocations (survivors: cold by construction).
    Gc,
    /// Metadata (journal, checkpoints) outside the reserved metadata zones.
    Meta,
}

/// Number of [`Stream`] variants.
pub const NR_STREAMS: usize = 4;

impl Stream {
    /// All streams, in index order.
    pub const ALL: [Stream; NR_STREAMS] =
        [Stream::UserHot, Stream::UserCold, Stream::Gc, Stream::Meta];

    /// Dense index `0..NR_STREAMS` (also the on-disk code).
    pub const fn index(self) -> usize {
        match self {
            Stream::UserHot => 0,
            Stream::UserCold => 1,
            Stream::Gc => 2,
            Stream::Meta => 3,
        }
    }

    /// Stream from its index / on-disk code.
    pub const fn from_index(i: usize) -> Option<Stream> {
        match i {
            0 => Some(Stream::UserHot),
            1 => Some(Stream::UserCold),
            2 => Some(Stream::Gc),
            3 => Some(Stream::Meta),
            _ => None,
        }
    }
}

/// A pool address resolved to its device and zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Member index.
    pub dev: u16,
    /// Global zone id.
    pub zone: u32,
    /// Device-local zone index.
    pub local_zone: u32,
    /// Offset in the zone (blocks, `< zone_blocks`).
    pub offset: u64,
    /// Offset from the start of the device (blocks).
    pub dev_offset: u64,
}

/// Everything about one global zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneGeom {
    /// Member index.
    pub dev: u16,
    /// Device-local zone index.
    pub local: u32,
    /// Pool address of the zone's first block.
    pub start: u64,
    /// Zone size (address stride).
    pub size: u64,
    /// Writable capacity.
    pub cap: u64,
    /// Randomly writable (conventional) zone.
    pub conventional: bool,
    /// Reserved metadata zone (never holds data).
    pub meta: bool,
    /// Zone append may be used.
    pub append: bool,
}

/// Validated geometry of a whole pool: the member geometries (in storage `S`
/// handed in by the caller, e.g. `Vec`, `KVec` or a slice) plus the totals.
/// Small (no per-member table: it lives on kernel stacks and inside the
/// engine): device bases and first zone ids are found by a walk over the
/// members, O(members) per lookup.
#[derive(Clone, Debug)]
pub struct PoolGeometry<S> {
    devs: S,
    /// Total blocks (sum of member sizes).
    total: u64,
    /// Total zones.
    zones: u32,
    /// Checkpoints are written twice, on two members
    /// (`format::INCOMPAT_CHECKPOINT_COPIES`, see `format::layout`).
    ckpt_copies: bool,
    /// Members left out of the metadata layout (bit per member): removed
    /// from the pool (`format::INCOMPAT_REMOVED_MEMBERS`), or removed when
    /// the checkpoint being read was written (recovery).
    removed: u64,
    /// Blocks of a conventional log zone the journal uses, 0 for the whole
    /// zone (`format::INCOMPAT_CONV_LOG_SPAN`, see `format::layout`).
    conv_log_blocks: u64,
}

impl<S: Deref<Target = [DeviceGeometry]>> PoolGeometry<S> {
    /// Whether checkpoints are written twice (`format::layout`).
    pub fn ckpt_copies(&self) -> bool {
        self.ckpt_copies
    }

    /// Blocks of a conventional log zone the journal uses (0: the whole
    /// zone; `format::layout::log_zone_blocks`).
    pub fn conv_log_blocks(&self) -> u64 {
        self.conv_log_blocks
    }

    /// Sets the span of conventional log zones: the pool's superblock says
    /// (`format::INCOMPAT_CONV_LOG_SPAN`; 0 for the whole zone).
    pub fn set_conv_log_blocks(&mut self, blocks: u64) {
        self.conv_log_blocks = blocks;
    }

    /// Sets whether checkpoints are written twice: the pool's superblock
    /// says (`format::INCOMPAT_CHECKPOINT_COPIES`); never with one member.
    pub fn set_ckpt_copies(&mut self, copies: bool) {
        self.ckpt_copies = copies && self.devs.len() >= 2;
    }

    /// The members left out of the metadata layout (bit per member; see
    /// `format::layout`).
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// Sets the members left out of the metadata layout: the pool's
    /// removed members, or (recovery) those of the checkpoint being read.
    /// At least one member stays in and no bit names a member past the
    /// last ([`Error::Invalid`], nothing changed).
    pub fn set_removed(&mut self, removed: u64) -> Result<()> {
        let all = u32::from(self.nr_devices());
        let mask = 1u64.checked_shl(all).map_or(u64::MAX, |b| b - 1);
        if removed & !mask != 0 || removed == mask {
            return Err(Error::Invalid("pool: removed members"));
        }
        self.removed = removed;
        Ok(())
    }

    /// Whether member `d` is left out of the metadata layout.
    pub fn is_removed(&self, d: u16) -> bool {
        self.removed & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0
    }

    /// The members in the metadata layout, in order.
    pub fn layout_members(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.nr_devices()).filter(|d| !self.is_removed(*d))
    }

    /// Members in the metadata layout.
    pub fn nr_layout_members(&self) -> u16 {
        self.nr_devices()
            .saturating_sub(self.removed.count_ones() as u16)
    }

    /// Validates every member and the pool as a whole (1..=64 members, total
    /// address space below [`MAX_POOL_BLOCKS`], total zones fit a `u32`).
    pub fn new(devs: S) -> Result<Self> {
        let n = devs.len();
        if n == 0 || n > MAX_DEVICES {
            return Err(Error::Invalid("pool: member count"));
        }
        let mut base = 0u64;
        let mut zone = 0u32;
        for g in devs.iter() {
            g.validate()?;
            let size = g.size_blocks().ok_or(Error::Invalid("pool: too large"))?;
            base = base
                .checked_add(size)
                .filter(|b| *b <= MAX_POOL_BLOCKS)
                .ok_or(Error::Invalid("pool: too large"))?;
            zone = zone
                .checked_add(g.nr_zones)
                .ok_or(Error::Invalid("pool: too many zones"))?;
        }
        Ok(PoolGeometry {
            devs,
            total: base,
            zones: zone,
            ckpt_copies: false,
            conv_log_blocks: 0,
            removed: 0,
        })
    }

    /// Base address and first zone id of every member, in order (sizes were
    /// validated by `new`: the sums cannot overflow).
    fn spans(&self) -> impl Iterator<Item = (usize, &DeviceGeometry, u64, u32)> + '_ {
        self.devs
            .iter()
            .enumerate()
            .scan((0u64, 0u32), |acc, (d, g)| {
                let (base, zone) = *acc;
                acc.0 = base.saturating_add(g.size_blocks().unwrap_or(0));
                acc.1 = zone.saturating_add(g.nr_zones);
                Some((d, g, base, zone))
            })
    }

    /// The storage of the member geometries (given up).
    pub fn into_devices(self) -> S {
        self.devs
    }

    /// The member geometries.
    pub fn devices(&self) -> &[DeviceGeometry] {
        &self.devs
    }

    /// Number of members.
    pub fn nr_devices(&self) -> u16 {
        // At most MAX_DEVICES (checked in `new`).
        self.devs.len() as u16
    }

    /// Geometry of member `d`.
    pub fn device(&self, d: u16) -> Option<&DeviceGeometry> {
        self.devs.get(usize::from(d))
    }

    /// First pool address of member `d`.
    pub fn dev_base(&self, d: u16) -> Option<u64> {
        self.spans().nth(usize::from(d)).map(|s| s.2)
    }

    /// Global zone id of member `d`'s zone 0.
    pub fn dev_first_zone(&self, d: u16) -> Option<u32> {
        self.spans().nth(usize::from(d)).map(|s| s.3)
    }

    /// Size of the aggregated address space (sum of device sizes).
    pub fn total_blocks(&self) -> u64 {
        self.total
    }

    /// Total number of zones (all members).
    pub fn nr_zones(&self) -> u32 {
        self.zones
    }

    /// Writable data capacity: sum of zone capacities of all non-metadata
    /// zones of the members not removed ([`Self::removed`]).
    pub fn data_capacity_blocks(&self) -> u64 {
        self.layout_members()
            .filter_map(|d| self.device(d))
            .fold(0u64, |acc, g| {
                acc.saturating_add(u64::from(g.nr_data_zones()).saturating_mul(g.zone_cap_blocks))
            })
    }

    /// Member owning global zone `zone`, and its device-local index.
    pub fn zone_dev(&self, zone: u32) -> Option<(u16, u32)> {
        if zone >= self.nr_zones() {
            return None;
        }
        let (d, _, _, first) = self
            .spans()
            .find(|&(_, g, _, first)| zone < first.saturating_add(g.nr_zones))?;
        Some((d as u16, zone.checked_sub(first)?))
    }

    /// Everything about global zone `zone`.
    pub fn zone(&self, zone: u32) -> Option<ZoneGeom> {
        if zone >= self.nr_zones() {
            return None;
        }
        let (d, g, base, first) = self
            .spans()
            .find(|&(_, g, _, first)| zone < first.saturating_add(g.nr_zones))?;
        let (dev, local) = (d as u16, zone.checked_sub(first)?);
        let start = base.checked_add(u64::from(local).checked_mul(g.zone_blocks)?)?;
        Some(ZoneGeom {
            dev,
            local,
            start,
            size: g.zone_blocks,
            cap: g.zone_cap_blocks,
            conventional: g.zone_is_conventional(local),
            meta: g.zone_is_meta(local),
            append: g.zone_can_append(local),
        })
    }

    /// Pool address of the first block of global zone `zone`.
    pub fn zone_start(&self, zone: u32) -> Option<u64> {
        self.zone(zone).map(|z| z.start)
    }

    /// Writable capacity of global zone `zone`.
    pub fn zone_cap(&self, zone: u32) -> Option<u64> {
        self.zone(zone).map(|z| z.cap)
    }

    /// Whether global zone `zone` is a reserved metadata zone.
    pub fn zone_is_meta(&self, zone: u32) -> bool {
        self.zone(zone).map(|z| z.meta).unwrap_or(false)
    }

    /// Global id of member `d`'s `i`-th reserved metadata zone
    /// (`i < meta_zones`).
    pub fn meta_zone(&self, d: u16, i: u32) -> Option<u32> {
        let g = self.device(d)?;
        if i >= g.meta_zones {
            return None;
        }
        let first = self.dev_first_zone(d)?;
        first.checked_add(g.first_meta_zone())?.checked_add(i)
    }

    /// Pool address of `offset` blocks into global zone `zone`
    /// (`offset < zone size`).
    pub fn addr_of(&self, zone: u32, offset: u64) -> Option<u64> {
        let z = self.zone(zone)?;
        if offset >= z.size {
            return None;
        }
        z.start.checked_add(offset)
    }

    /// Pool address of device offset `dev_offset` on member `d`.
    pub fn dev_addr(&self, d: u16, dev_offset: u64) -> Option<u64> {
        let g = self.device(d)?;
        if dev_offset >= g.size_blocks()? {
            return None;
        }
        self.dev_base(d)?.checked_add(dev_offset)
    }

    /// Resolves a pool address to its member, zone and offsets.
    pub fn locate(&self, addr: u64) -> Option<Loc> {
        if addr >= self.total_blocks() {
            return None;
        }
        let (d, g, base, first) = self
            .spans()
            .find(|&(_, g, base, _)| addr < base.saturating_add(g.size_blocks().unwrap_or(0)))?;
        let dev_offset = addr.checked_sub(base)?;
        let local64 = dev_offset.checked_div(g.zone_blocks)?;
        let local = u32::try_from(local64).ok()?;
        if local >= g.nr_zones {
            return None;
        }
        let offset = dev_offset.checked_rem(g.zone_blocks)?;
        let zone = first.checked_add(local)?;
        Some(Loc {
            dev: d as u16,
            zone,
            local_zone: local,
            offset,
            dev_offset,
        })
    }

    /// Global zone id containing `addr`.
    pub fn zone_of(&self, addr: u64) -> Option<u32> {
        self.locate(addr).map(|l| l.zone)
    }

    /// Whether `[addr, addr + len)` (len > 0) lies within the writable
    /// capacity of a single zone; returns that zone.
    pub fn range_zone(&self, addr: u64, len: u64) -> Option<u32> {
        if len == 0 {
            return None;
        }
        let l = self.locate(addr)?;
        let g = self.devs.get(usize::from(l.dev))?;
        let end = l.offset.checked_add(len)?;
        if end > g.zone_cap_blocks {
            return None;
        }
        Some(l.zone)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A small ZNS member for tests: `nr_zones` zones of `size` blocks,
    /// capacity `cap`.
    pub fn zns(nr_zones: u32, size: u64, cap: u64) -> DeviceGeometry {
        DeviceGeometry {
            kind: DevKind::Zns,
            nr_zones,
            zone_blocks: size,
            zone_cap_blocks: cap,
            nr_conv_zones: 0,
            max_open: 8,
            max_active: 8,
            zone_append: true,
            meta_zones: META_ZONES_PER_DEV,
        }
    }

    fn smr(nr_zones: u32, conv: u32) -> DeviceGeometry {
        DeviceGeometry {
            kind: DevKind::Smr,
            nr_zones,
            zone_blocks: 64,
            zone_cap_blocks: 64,
            nr_conv_zones: conv,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
        }
    }

    #[test]
    fn validate_rules() {
        assert!(zns(8, 16, 12).validate().is_ok());
        assert!(zns(0, 16, 12).validate().is_err());
        assert!(zns(4, 16, 12).validate().is_err()); // only meta zones
        assert!(zns(8, 0, 0).validate().is_err());
        assert!(zns(8, 16, 17).validate().is_err());
        assert!(zns(8, 16, 0).validate().is_err());
        assert!(zns(8, 1 << 33, 1).validate().is_err());
        let with_meta = |m: u32| DeviceGeometry {
            meta_zones: m,
            ..zns(8, 16, 12)
        };
        assert!(with_meta(6).validate().is_ok());
        assert!(with_meta(8).validate().is_err()); // no data zone left
        assert!(with_meta(5).validate().is_err()); // odd
        assert!(with_meta(2).validate().is_err()); // below the minimum
        assert!(DeviceGeometry {
            meta_zones: MAX_META_ZONES + 2,
            ..zns(MAX_META_ZONES + 8, 16, 12)
        }
        .validate()
        .is_err());
        let mut g = zns(8, 16, 16);
        g.max_open = 1;
        assert!(g.validate().is_err());
        g.max_open = 9;
        assert!(g.validate().is_err()); // > max_active
        g.max_open = 0;
        assert_eq!(g.open_limit(), 8);
        assert!(g.validate().is_ok());
        g.nr_conv_zones = 1;
        assert!(g.validate().is_err()); // conv zones on ZNS
        assert!(smr(10, 6).validate().is_ok());
        assert!(smr(10, 7).validate().is_err()); // 3 sequential zones
        assert!(smr(10, 11).validate().is_err());
        let mut c = smr(10, 0);
        c.kind = DevKind::Conventional;
        assert!(c.validate().is_ok());
        c.zone_append = true;
        assert!(c.validate().is_err());
        let huge = zns(u32::MAX, 1 << 20, 1);
        assert!(huge.validate().is_err());
        for k in [DevKind::Zns, DevKind::Smr, DevKind::Conventional] {
            assert_eq!(DevKind::from_code(k.code()), Some(k));
        }
        assert_eq!(DevKind::from_code(0), None);
        for s in Stream::ALL {
            assert_eq!(Stream::from_index(s.index()), Some(s));
        }
        assert_eq!(Stream::from_index(4), None);
    }

    #[test]
    fn meta_zones_follow_conventional() {
        let g = smr(10, 2);
        assert!(!g.zone_is_meta(1));
        assert!(g.zone_is_meta(2) && g.zone_is_meta(5));
        assert!(!g.zone_is_meta(6));
        assert!(g.zone_is_conventional(1) && !g.zone_is_conventional(2));
        let z = zns(8, 16, 16);
        assert!(z.zone_is_meta(0) && z.zone_is_meta(3) && !z.zone_is_meta(4));
        assert!(z.zone_can_append(4));
    }

    #[test]
    fn pool_mapping() {
        let devs = [zns(8, 16, 12), smr(10, 2), zns(6, 32, 32)];
        let p = PoolGeometry::new(&devs[..]).unwrap();
        assert_eq!(p.nr_devices(), 3);
        assert_eq!(p.total_blocks(), 8 * 16 + 10 * 64 + 6 * 32);
        assert_eq!(p.nr_zones(), 24);
        assert_eq!(p.dev_base(1), Some(128));
        assert_eq!(p.dev_base(2), Some(768));
        assert_eq!(p.dev_base(3), None);
        assert_eq!(p.dev_first_zone(2), Some(18));
        assert_eq!(p.data_capacity_blocks(), 4 * 12 + 6 * 64 + 2 * 32);
        assert_eq!(p.meta_zone(1, 0), Some(10));
        assert_eq!(p.meta_zone(1, 4), None);
        assert!(p.zone_is_meta(10) && !p.zone_is_meta(9) && !p.zone_is_meta(14));

        // Exhaustive round trip over every address.
        for addr in 0..p.total_blocks() {
            let l = p.locate(addr).unwrap();
            assert_eq!(p.addr_of(l.zone, l.offset), Some(addr));
            assert_eq!(p.dev_addr(l.dev, l.dev_offset), Some(addr));
            let z = p.zone(l.zone).unwrap();
            assert_eq!(z.dev, l.dev);
            assert_eq!(z.local, l.local_zone);
            assert_eq!(p.zone_dev(l.zone), Some((l.dev, l.local_zone)));
            assert_eq!(p.zone_of(addr), Some(l.zone));
        }
        assert_eq!(p.locate(p.total_blocks()), None);
        assert_eq!(p.locate(u64::MAX), None);
        assert_eq!(p.zone(24), None);
        assert_eq!(p.zone_start(8), Some(128));
        assert_eq!(p.zone_start(23), Some(768 + 5 * 32));
        assert_eq!(p.addr_of(0, 16), None);
        assert_eq!(p.addr_of(u32::MAX, 0), None);
        assert_eq!(p.dev_addr(0, 128), None);
        assert_eq!(p.range_zone(4 * 16, 12), Some(4));
        assert_eq!(p.range_zone(4 * 16, 13), None); // beyond capacity
        assert_eq!(p.range_zone(4 * 16, 0), None);
        let z = p.zone(8).unwrap();
        assert!(z.conventional && !z.append && !z.meta);
    }

    #[test]
    fn pool_limits() {
        let none: [DeviceGeometry; 0] = [];
        assert!(PoolGeometry::new(&none[..]).is_err());
        let many: Vec<DeviceGeometry> = (0..65).map(|_| zns(8, 16, 16)).collect();
        assert!(PoolGeometry::new(many).is_err());
        let max: Vec<DeviceGeometry> = (0..64).map(|_| zns(8, 16, 16)).collect();
        let p = PoolGeometry::new(max).unwrap();
        assert_eq!(p.nr_zones(), 512);
        assert_eq!(p.locate(p.total_blocks() - 1).unwrap().dev, 63);
        let big = [
            zns(1 << 20, 1 << 27, 1),
            zns(1 << 20, 1 << 27, 1),
            zns(8, 16, 16),
        ];
        assert!(PoolGeometry::new(&big[..]).is_err());
        let bad = [zns(8, 16, 16), zns(8, 16, 17)];
        assert!(PoolGeometry::new(&bad[..]).is_err());
    }
}
