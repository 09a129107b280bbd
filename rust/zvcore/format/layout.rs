// SPDX-License-Identifier: GPL-2.0
//! Use of the reserved metadata zones (the first `geom::META_ZONES_PER_DEV` = 4
//! sequential zones of every member, see `geom::DeviceGeometry::first_meta_zone`).
//!
//! | meta zone | role                                                      |
//! |-----------|-----------------------------------------------------------|
//! | 0         | log zone 0: superblock at block 0, then journal blocks     |
//! | 1         | log zone 1: superblock at block 0, then journal blocks     |
//! | 2         | checkpoint set A (even generations), this member's part   |
//! | 3         | checkpoint set B (odd generations), this member's part    |
//!
//! * **Superblocks.** Block 0 of each log zone of every member is a
//!   superblock, so each member carries two copies and a pool of `n` members
//!   `2n` copies. A membership change appends the new superblock
//!   (generation + 1) to the active log zone of every member; when a log zone
//!   is reset, the current superblock is written at its block 0 before
//!   anything else. The two log zones of a member are never reset at the same
//!   time, so every member always holds a valid current superblock.
//! * **Journal.** Journal blocks are appended to the log zones of one member
//!   at a time (the *journal member*, normally member 0), alternating between
//!   its two log zones. A log zone may be reset only when every journal block
//!   in it is covered by the newest *committed* checkpoint. Recovery does not
//!   depend on placement: it scans both log zones of every member up to the
//!   write pointer and orders journal blocks by sequence number (so zone
//!   append reordering and a change of journal member are harmless).
//! * **Checkpoints.** Set `s` is the concatenation, in member order, of meta
//!   zone `2 + s` of every member, each contributing its zone capacity;
//!   checkpoint block `i` lives at [`checkpoint_block_addr`]. A set is reset
//!   (all its zones) before a new checkpoint is written to it.

use core::ops::Deref;

use super::super::geom::{DeviceGeometry, PoolGeometry};

/// Number of log zones per member (meta zones `0..LOG_ZONES`).
pub const LOG_ZONES: u32 = 2;
/// Number of checkpoint sets.
pub const CHECKPOINT_SETS: u8 = 2;

/// What a reserved metadata zone is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaRole {
    /// Log zone `0` or `1` (superblock copies + journal).
    Log(u8),
    /// This member's part of checkpoint set `0` (A) or `1` (B).
    Checkpoint(u8),
}

/// Role of the `i`-th metadata zone of a member (`i < 4`).
pub const fn meta_role(i: u32) -> Option<MetaRole> {
    match i {
        0 | 1 => Some(MetaRole::Log(i as u8)),
        2 | 3 => Some(MetaRole::Checkpoint((i - 2) as u8)),
        _ => None,
    }
}

/// Global zone id of log zone `i` (0/1) of member `dev`.
pub fn log_zone<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    dev: u16,
    i: u32,
) -> Option<u32> {
    if i >= LOG_ZONES {
        return None;
    }
    geo.meta_zone(dev, i)
}

/// Pool address of the superblock at block 0 of log zone `i` of member `dev`.
pub fn superblock_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    dev: u16,
    i: u32,
) -> Option<u64> {
    geo.zone_start(log_zone(geo, dev, i)?)
}

/// Global zone id of member `dev`'s part of checkpoint set `set`.
pub fn checkpoint_zone<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    dev: u16,
) -> Option<u32> {
    if set >= CHECKPOINT_SETS {
        return None;
    }
    geo.meta_zone(dev, LOG_ZONES + u32::from(set))
}

/// Capacity of checkpoint set `set` in blocks (sum of its zones' capacities),
/// clamped to `u32::MAX` (the most blocks a checkpoint may have).
pub fn checkpoint_capacity<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
) -> u32 {
    if set >= CHECKPOINT_SETS {
        return 0;
    }
    let total = geo
        .devices()
        .iter()
        .fold(0u64, |acc, g| acc.saturating_add(g.zone_cap_blocks));
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Pool address of block `index` of a checkpoint in set `set`: the set's
/// zones are filled in member order, each up to its zone capacity.
pub fn checkpoint_block_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
) -> Option<u64> {
    let mut left = u64::from(index);
    for (d, g) in geo.devices().iter().enumerate() {
        let dev = u16::try_from(d).ok()?;
        if left < g.zone_cap_blocks {
            let zone = checkpoint_zone(geo, set, dev)?;
            return geo.zone_start(zone)?.checked_add(left);
        }
        left -= g.zone_cap_blocks;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::geom::tests::zns;
    use super::super::super::geom::{DevKind, META_ZONES_PER_DEV};
    use super::*;

    #[test]
    fn roles_and_addresses() {
        assert_eq!(LOG_ZONES + u32::from(CHECKPOINT_SETS), META_ZONES_PER_DEV);
        assert_eq!(meta_role(0), Some(MetaRole::Log(0)));
        assert_eq!(meta_role(1), Some(MetaRole::Log(1)));
        assert_eq!(meta_role(2), Some(MetaRole::Checkpoint(0)));
        assert_eq!(meta_role(3), Some(MetaRole::Checkpoint(1)));
        assert_eq!(meta_role(4), None);
        let smr = DeviceGeometry {
            kind: DevKind::Smr,
            nr_zones: 10,
            zone_blocks: 64,
            zone_cap_blocks: 64,
            nr_conv_zones: 2,
            max_open: 0,
            max_active: 0,
            zone_append: false,
        };
        let devs = [zns(8, 16, 12), smr];
        let p = PoolGeometry::new(&devs[..]).unwrap();
        assert_eq!(log_zone(&p, 0, 0), Some(0));
        assert_eq!(log_zone(&p, 0, 1), Some(1));
        assert_eq!(log_zone(&p, 0, 2), None);
        assert_eq!(log_zone(&p, 1, 0), Some(10)); // after 2 conventional zones
        assert_eq!(superblock_addr(&p, 1, 1), Some(128 + 3 * 64));
        assert_eq!(superblock_addr(&p, 2, 0), None);
        assert_eq!(checkpoint_zone(&p, 0, 0), Some(2));
        assert_eq!(checkpoint_zone(&p, 1, 1), Some(13));
        assert_eq!(checkpoint_zone(&p, 2, 0), None);
        assert_eq!(checkpoint_capacity(&p, 0), 12 + 64);
        assert_eq!(checkpoint_capacity(&p, 2), 0);
        assert_eq!(checkpoint_block_addr(&p, 0, 0), Some(2 * 16));
        assert_eq!(checkpoint_block_addr(&p, 0, 11), Some(2 * 16 + 11));
        assert_eq!(checkpoint_block_addr(&p, 0, 12), Some(128 + 4 * 64));
        assert_eq!(
            checkpoint_block_addr(&p, 1, 12 + 63),
            Some(128 + 5 * 64 + 63)
        );
        assert_eq!(checkpoint_block_addr(&p, 1, 12 + 64), None);
        assert_eq!(checkpoint_block_addr(&p, 5, 0), None);
        // Every checkpoint block is inside a metadata zone, within capacity.
        for set in 0..2 {
            for i in 0..checkpoint_capacity(&p, set) {
                let a = checkpoint_block_addr(&p, set, i).unwrap();
                let z = p.zone_of(a).unwrap();
                assert!(p.zone_is_meta(z));
                assert!(p.range_zone(a, 1).is_some());
            }
        }
    }
}
