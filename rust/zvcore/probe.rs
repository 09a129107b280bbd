// SPDX-License-Identifier: GPL-2.0
//! A member device's geometry from what the device reports about itself:
//! one implementation for the kernel (its block device and zone report)
//! and for `zvpoolctl` (sysfs and `blkzone report`), so that both see a
//! device the same way.
//!
//! A non-zoned device is cut into [`CONV_ZONE_SECTORS`] conventional zones;
//! a zoned one takes its leading conventional zones (SMR), the capacity of
//! its sequential zones (all equal) and its limits, and must pass
//! [`DeviceGeometry::validate`].

use super::error::Error;
use super::format::BLOCK_SIZE;
use super::geom::{DevKind, DeviceGeometry, META_ZONES_PER_DEV};

/// Zone size used to carve a conventional (non-zoned) member (256 MiB).
pub const CONV_ZONE_SECTORS: u64 = 256 * 2048;
/// Sectors per block.
const SPB: u64 = (BLOCK_SIZE / 512) as u64;

/// What a block device reports (its queue limits), in 512-byte sectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceReport {
    pub nr_sectors: u64,
    pub logical_block_size: u32,
    pub zoned: bool,
    pub zone_sectors: u64,
    pub nr_zones: u32,
    pub max_open_zones: u32,
    pub max_active_zones: u32,
    pub max_zone_append_sectors: u32,
}

/// The zones of a zoned device, fed in order from its zone report.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZoneScan {
    zones: u32,
    nr_conv: u32,
    seen_seq: bool,
    cap: u64,
    bad: bool,
}

impl ZoneScan {
    /// Adds the next zone: conventional or not, its length and capacity
    /// (sectors) on a device of `zone_sectors` zones.
    pub fn zone(&mut self, zone_sectors: u64, conventional: bool, len: u64, capacity: u64) {
        self.zones = self.zones.saturating_add(1);
        if conventional {
            if self.seen_seq {
                // Conventional zones after sequential ones.
                self.bad = true;
            } else {
                self.nr_conv = self.nr_conv.saturating_add(1);
            }
        } else if len != zone_sectors {
            self.bad = true;
        } else {
            self.seen_seq = true;
            if self.cap == 0 {
                self.cap = capacity;
            } else if self.cap != capacity {
                self.bad = true;
            }
        }
    }
}

/// Why a device cannot be a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The logical block size does not divide 4096.
    BlockSize(u32),
    /// More conventional zones than a `u32` counts.
    TooLarge,
    /// The zone size (sectors) is not a multiple of 4 KiB.
    ZoneSize(u64),
    /// The zone report lists fewer zones than the device has: (listed, has).
    ShortReport(u32, u32),
    /// Mixed capacities, interleaved conventional zones or zones of another
    /// size.
    Layout,
    /// The geometry breaks a rule of [`DeviceGeometry::validate`].
    Geometry(Error),
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProbeError::BlockSize(b) => write!(f, "logical block size {b} does not divide 4096"),
            ProbeError::TooLarge => f.write_str("device too large"),
            ProbeError::ZoneSize(z) => {
                write!(f, "zone size {z} sectors is not a multiple of 4 KiB")
            }
            ProbeError::ShortReport(l, n) => {
                write!(f, "the zone report lists {l} zones, the device has {n}")
            }
            ProbeError::Layout => f.write_str(
                "unsupported zone layout (mixed capacities or interleaved conventional zones)",
            ),
            ProbeError::Geometry(e) => write!(f, "unusable geometry: {e:?}"),
        }
    }
}

/// Checks a device before its zones are reported: `Ok(Some(geometry))` for
/// a non-zoned device (no report needed), `Ok(None)` for a zoned one (scan
/// its report, then call [`zoned`]).
pub fn start(r: &DeviceReport) -> Result<Option<DeviceGeometry>, ProbeError> {
    if r.logical_block_size == 0 || !4096u32.is_multiple_of(r.logical_block_size) {
        return Err(ProbeError::BlockSize(r.logical_block_size));
    }
    if !r.zoned {
        let nr_zones =
            u32::try_from(r.nr_sectors / CONV_ZONE_SECTORS).map_err(|_| ProbeError::TooLarge)?;
        // Not validated here: a device too small for a pool is refused by
        // the pool's checks (format, assembly), and a scan passes over it
        // as a device that holds no pool.
        return Ok(Some(DeviceGeometry {
            kind: DevKind::Conventional,
            nr_zones,
            zone_blocks: CONV_ZONE_SECTORS / SPB,
            zone_cap_blocks: CONV_ZONE_SECTORS / SPB,
            nr_conv_zones: 0,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
        }));
    }
    if r.zone_sectors == 0 || !r.zone_sectors.is_multiple_of(SPB) {
        return Err(ProbeError::ZoneSize(r.zone_sectors));
    }
    Ok(None)
}

/// The geometry of zoned device `r` whose zone report gave `scan`.
pub fn zoned(r: &DeviceReport, scan: &ZoneScan) -> Result<DeviceGeometry, ProbeError> {
    if scan.zones < r.nr_zones {
        return Err(ProbeError::ShortReport(scan.zones, r.nr_zones));
    }
    if scan.bad || scan.cap == 0 || !scan.cap.is_multiple_of(SPB) {
        return Err(ProbeError::Layout);
    }
    checked(DeviceGeometry {
        kind: if scan.nr_conv > 0 {
            DevKind::Smr
        } else {
            DevKind::Zns
        },
        nr_zones: r.nr_zones,
        zone_blocks: r.zone_sectors / SPB,
        zone_cap_blocks: scan.cap / SPB,
        nr_conv_zones: scan.nr_conv,
        max_open: r.max_open_zones,
        max_active: r.max_active_zones,
        zone_append: r.max_zone_append_sectors >= SPB as u32,
        // The pool's, from its superblock at assembly or chosen at format.
        meta_zones: META_ZONES_PER_DEV,
    })
}

fn checked(g: DeviceGeometry) -> Result<DeviceGeometry, ProbeError> {
    g.validate().map_err(ProbeError::Geometry)?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned_report(nr_zones: u32) -> DeviceReport {
        DeviceReport {
            nr_sectors: u64::from(nr_zones) * 2048,
            logical_block_size: 4096,
            zoned: true,
            zone_sectors: 2048,
            nr_zones,
            max_open_zones: 14,
            max_active_zones: 14,
            max_zone_append_sectors: 256,
        }
    }

    #[test]
    fn conventional_devices_are_cut_into_zones() {
        let r = DeviceReport {
            nr_sectors: 5 * CONV_ZONE_SECTORS + 100,
            logical_block_size: 512,
            ..DeviceReport::default()
        };
        let g = start(&r).unwrap().unwrap();
        assert_eq!(
            (g.kind, g.nr_zones, g.zone_blocks),
            (DevKind::Conventional, 5, 65536)
        );
        // Too small for a pool: left to the pool's own checks.
        let small = DeviceReport {
            nr_sectors: 4 * CONV_ZONE_SECTORS,
            ..r
        };
        assert!(start(&small).unwrap().unwrap().validate().is_err());
        let odd = DeviceReport {
            logical_block_size: 3000,
            ..r
        };
        assert_eq!(start(&odd), Err(ProbeError::BlockSize(3000)));
    }

    #[test]
    fn zoned_devices_from_their_report() {
        let r = zoned_report(16);
        assert_eq!(start(&r), Ok(None));
        // SMR: two conventional zones first, capacity below the size.
        let mut s = ZoneScan::default();
        for i in 0..16 {
            s.zone(2048, i < 2, 2048, 1536);
        }
        let g = zoned(&r, &s).unwrap();
        assert_eq!(
            (g.kind, g.nr_conv_zones, g.zone_cap_blocks),
            (DevKind::Smr, 2, 192)
        );
        assert!(g.zone_append);
        // A short report, mixed capacities, conventional zones after
        // sequential ones, and a zone of another size are refused.
        let mut short = ZoneScan::default();
        short.zone(2048, false, 2048, 2048);
        assert_eq!(zoned(&r, &short), Err(ProbeError::ShortReport(1, 16)));
        for bad in 0..3 {
            let mut s = ZoneScan::default();
            for i in 0..16u64 {
                let conv = bad == 1 && i == 9;
                let len = if bad == 2 && i == 5 { 1024 } else { 2048 };
                let cap = if bad == 0 && i == 7 { 1024 } else { 2048 };
                s.zone(2048, conv, len, cap);
            }
            assert_eq!(zoned(&r, &s), Err(ProbeError::Layout), "case {bad}");
        }
        let r = DeviceReport {
            zone_sectors: 1001,
            ..r
        };
        assert_eq!(start(&r), Err(ProbeError::ZoneSize(1001)));
    }
}
