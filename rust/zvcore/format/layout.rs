// SPDX-License-Identifier: GPL-2.0
//! Use of the reserved metadata zones (the first `meta_zones` sequential
//! zones of every member, see `geom::DeviceGeometry::first_meta_zone`;
//! `meta_zones = 2 + 2k`, `k >= 1` chosen at format, the same on every
//! member):
//!
//! | meta zone        | role                                               |
//! |------------------|----------------------------------------------------|
//! | 0                | log zone 0: superblock at block 0, then journal    |
//! | 1                | log zone 1: superblock at block 0, then journal    |
//! | 2 .. 2+k         | checkpoint set A (even generations), this member's part |
//! | 2+k .. 2+2k      | checkpoint set B (odd generations), this member's part  |
//!
//! * **Superblocks.** Block 0 of each log zone of every member is a
//!   superblock, so each member carries two copies and a pool of `n` members
//!   `2n` copies. A membership change appends the new superblock
//!   (generation + 1) to the active log zone of every member; when a log zone
//!   is reset, the current superblock is written at its block 0 before
//!   anything else. The two log zones of a member are never reset at the same
//!   time, so every member always holds a valid current superblock. The log
//!   zones are where they are whatever `k` is: assembly finds the superblock
//!   (and with it `k`) before it knows `k`.
//! * **Journal.** Journal blocks are appended to the log zones of one member
//!   at a time (the *journal member*, normally member 0), alternating between
//!   its two log zones. A log zone may be reset only when every journal block
//!   in it is covered by the newest *committed* checkpoint. Recovery does not
//!   depend on placement: it scans both log zones of every member up to the
//!   write pointer and orders journal blocks by sequence number (so zone
//!   append reordering and a change of journal member are harmless).
//! * **Checkpoints.** Set `s` is the concatenation, in member order, of
//!   each member's `k` zones of the set, each zone contributing its capacity;
//!   checkpoint block `i` lives at [`checkpoint_block_addr`]. A set is reset
//!   (all its zones) before a new checkpoint is written to it. A checkpoint
//!   is written in block order, so on each member one zone of the set at a
//!   time is being written: a member needs one open zone for it, whatever
//!   `k` is.
//! * **Choosing `k`** ([`checkpoint_zones_for`]): enough that a set holds
//!   the block tables of the whole data capacity written at random (8 bytes
//!   per 4 KiB block) twice over, so that the metadata headroom rule (writes
//!   refused once a checkpoint fills 3/4 of its set) is not what ends a
//!   pool's life; at most a quarter of a member's zones.

use core::ops::Deref;

use super::super::geom::{DeviceGeometry, PoolGeometry, MAX_META_ZONES, META_ZONES_PER_DEV};

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

/// Role of the `i`-th metadata zone of a member whose pool reserves
/// `meta_zones` (`i < meta_zones`).
pub const fn meta_role(i: u32, meta_zones: u32) -> Option<MetaRole> {
    let k = ckpt_zones_of(meta_zones);
    if i < LOG_ZONES {
        Some(MetaRole::Log(i as u8))
    } else if i < LOG_ZONES + k {
        Some(MetaRole::Checkpoint(0))
    } else if i < LOG_ZONES + 2 * k {
        Some(MetaRole::Checkpoint(1))
    } else {
        None
    }
}

/// Zones of each checkpoint set on each member (`k`) when the pool
/// reserves `meta_zones` per member.
pub const fn ckpt_zones_of(meta_zones: u32) -> u32 {
    meta_zones.saturating_sub(LOG_ZONES) / CHECKPOINT_SETS as u32
}

/// Zones a pool of `devs` reserves per member for metadata
/// ([`DeviceGeometry::meta_zones`]) for `k` zones per member per checkpoint
/// set (`k = 0`: chosen by [`checkpoint_zones_for`]).
pub fn meta_zones_for(devs: &[DeviceGeometry], k: u32) -> u32 {
    let k = if k == 0 {
        checkpoint_zones_for(devs)
    } else {
        k
    };
    LOG_ZONES
        .saturating_add(k.saturating_mul(u32::from(CHECKPOINT_SETS)))
        .clamp(META_ZONES_PER_DEV, MAX_META_ZONES)
}

/// Sets the reserved metadata zones of a new pool's members `devs` for `k`
/// zones per member per checkpoint set (`0`: [`checkpoint_zones_for`]):
/// what the caller of `Pool::format` does first.
pub fn set_meta_zones(devs: &mut [DeviceGeometry], k: u32) {
    let m = meta_zones_for(devs, k);
    for g in devs.iter_mut() {
        g.meta_zones = m;
    }
}

/// The `k` a new pool of `devs` gets (see the module's documentation):
/// `k * sum(zone capacity) >= 2 * 8 * data blocks / 4096`, at least 1, at
/// most what leaves three quarters of the smallest member's sequential
/// zones to data.
pub fn checkpoint_zones_for(devs: &[DeviceGeometry]) -> u32 {
    let mut data = 0u64;
    let mut per_zone = 0u64;
    let mut most = u32::MAX;
    for g in devs {
        let seq = g.nr_zones.saturating_sub(g.nr_conv_zones);
        let zones = u64::from(seq.saturating_sub(META_ZONES_PER_DEV));
        data = data.saturating_add(zones.saturating_mul(g.zone_cap_blocks));
        per_zone = per_zone.saturating_add(g.zone_cap_blocks);
        most = most.min(seq / 4 / u32::from(CHECKPOINT_SETS));
    }
    // Tables at 8 bytes a block: 1/512 of the data, twice over.
    let want = data / 256;
    let k = want.div_ceil(per_zone.max(1));
    let cap = ckpt_zones_of(MAX_META_ZONES).min(most).max(1);
    u32::try_from(k).unwrap_or(u32::MAX).clamp(1, cap)
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

/// Global zone id of the first zone of member `dev`'s part of checkpoint
/// set `set` (its `k` zones follow).
pub fn checkpoint_zone<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    dev: u16,
) -> Option<u32> {
    if set >= CHECKPOINT_SETS {
        return None;
    }
    let k = ckpt_zones_of(geo.device(dev)?.meta_zones);
    geo.meta_zone(dev, LOG_ZONES + u32::from(set) * k)
}

/// The zones of member `dev`'s part of checkpoint set `set`, in order
/// (empty for a bad set or member).
pub fn checkpoint_zones<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    dev: u16,
) -> core::ops::Range<u32> {
    let k = geo.device(dev).map_or(0, |g| ckpt_zones_of(g.meta_zones));
    match checkpoint_zone(geo, set, dev) {
        Some(z) => z..z.saturating_add(k),
        None => 0..0,
    }
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
    let total = geo.devices().iter().fold(0u64, |acc, g| {
        acc.saturating_add(
            g.zone_cap_blocks
                .saturating_mul(u64::from(ckpt_zones_of(g.meta_zones))),
        )
    });
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Pool address of block `index` of a checkpoint in set `set`: the set's
/// zones are filled in member order and, on a member, in zone order, each
/// up to its zone capacity.
pub fn checkpoint_block_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
) -> Option<u64> {
    let mut left = u64::from(index);
    for (d, g) in geo.devices().iter().enumerate() {
        let dev = u16::try_from(d).ok()?;
        let part = g
            .zone_cap_blocks
            .saturating_mul(u64::from(ckpt_zones_of(g.meta_zones)));
        if left < part {
            let cap = g.zone_cap_blocks.max(1);
            let zone =
                checkpoint_zone(geo, set, dev)?.checked_add(u32::try_from(left / cap).ok()?)?;
            return geo.zone_start(zone)?.checked_add(left % cap);
        }
        left -= part;
    }
    None
}

/// The zone of each member that holds the last of the first `blocks`
/// blocks of a checkpoint in set `set` that fall on that member, or the
/// member's first zone of the set if none do: the zones a finished
/// checkpoint leaves open or partly written. Calls `f(member, zone)`.
pub fn checkpoint_last_zones<S, F>(geo: &PoolGeometry<S>, set: u8, blocks: u32, mut f: F)
where
    S: Deref<Target = [DeviceGeometry]>,
    F: FnMut(u16, u32),
{
    let mut left = u64::from(blocks);
    for (d, g) in geo.devices().iter().enumerate() {
        let Ok(dev) = u16::try_from(d) else { return };
        let Some(first) = checkpoint_zone(geo, set, dev) else {
            continue;
        };
        let k = u64::from(ckpt_zones_of(g.meta_zones));
        let cap = g.zone_cap_blocks.max(1);
        let here = left.min(cap.saturating_mul(k));
        left -= here;
        let i = here.saturating_sub(1) / cap;
        f(dev, first.saturating_add(u32::try_from(i).unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::geom::tests::zns;
    use super::super::super::geom::{DevKind, META_ZONES_PER_DEV};
    use super::*;

    #[test]
    fn roles_and_addresses() {
        assert_eq!(LOG_ZONES + u32::from(CHECKPOINT_SETS), META_ZONES_PER_DEV);
        let m = META_ZONES_PER_DEV;
        assert_eq!(meta_role(0, m), Some(MetaRole::Log(0)));
        assert_eq!(meta_role(1, m), Some(MetaRole::Log(1)));
        assert_eq!(meta_role(2, m), Some(MetaRole::Checkpoint(0)));
        assert_eq!(meta_role(3, m), Some(MetaRole::Checkpoint(1)));
        assert_eq!(meta_role(4, m), None);
        // Three zones a set: 2..5 set A, 5..8 set B.
        assert_eq!(meta_role(4, 8), Some(MetaRole::Checkpoint(0)));
        assert_eq!(meta_role(5, 8), Some(MetaRole::Checkpoint(1)));
        assert_eq!(meta_role(7, 8), Some(MetaRole::Checkpoint(1)));
        assert_eq!(meta_role(8, 8), None);
        let smr = DeviceGeometry {
            kind: DevKind::Smr,
            nr_zones: 10,
            zone_blocks: 64,
            zone_cap_blocks: 64,
            nr_conv_zones: 2,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
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

    /// Sets of several zones a member: addresses run member by member and,
    /// on a member, zone by zone; every block is in a metadata zone of its
    /// set, no two blocks share an address, and the last zones are where
    /// the blocks end.
    #[test]
    fn sets_of_several_zones() {
        let mut devs = [zns(20, 16, 12), zns(30, 16, 10)];
        set_meta_zones(&mut devs, 3);
        assert!(devs
            .iter()
            .all(|g| g.meta_zones == 8 && g.validate().is_ok()));
        let p = PoolGeometry::new(&devs[..]).unwrap();
        assert_eq!(checkpoint_zone(&p, 0, 0), Some(2));
        assert_eq!(checkpoint_zone(&p, 1, 0), Some(5));
        assert_eq!(checkpoint_zone(&p, 0, 1), Some(20 + 2));
        assert_eq!(checkpoint_zones(&p, 1, 1), 25..28);
        assert_eq!(checkpoint_zones(&p, 2, 1), 0..0);
        assert_eq!(checkpoint_capacity(&p, 0), 3 * 12 + 3 * 10);
        assert_eq!(checkpoint_block_addr(&p, 0, 11), Some(2 * 16 + 11));
        assert_eq!(checkpoint_block_addr(&p, 0, 12), Some(3 * 16));
        assert_eq!(checkpoint_block_addr(&p, 1, 35), Some(7 * 16 + 11));
        assert_eq!(checkpoint_block_addr(&p, 1, 36), Some(20 * 16 + 5 * 16));
        assert_eq!(checkpoint_block_addr(&p, 1, 66), None);
        for set in 0..2u8 {
            let mut seen = std::collections::BTreeSet::new();
            for i in 0..checkpoint_capacity(&p, set) {
                let a = checkpoint_block_addr(&p, set, i).unwrap();
                let z = p.zone_of(a).unwrap();
                let (d, _) = p.zone_dev(z).unwrap();
                assert!(checkpoint_zones(&p, set, d).contains(&z), "block {i}");
                assert!(p.range_zone(a, 1).is_some());
                assert!(seen.insert(a));
            }
        }
        let last = |blocks| {
            let mut v = std::vec::Vec::new();
            checkpoint_last_zones(&p, 0, blocks, |d, z| v.push((d, z)));
            v
        };
        assert_eq!(last(0), [(0, 2), (1, 22)]);
        assert_eq!(last(1), [(0, 2), (1, 22)]);
        assert_eq!(last(13), [(0, 3), (1, 22)]);
        assert_eq!(last(36), [(0, 4), (1, 22)]);
        assert_eq!(last(37), [(0, 4), (1, 22)]);
        assert_eq!(last(66), [(0, 4), (1, 24)]);
    }

    /// The `k` of a new pool grows with its data capacity and stays within
    /// its bounds.
    #[test]
    fn zones_per_set_follow_the_capacity() {
        // 64 zones of 1,024 blocks: 1/256 of 60 zones' data fits one zone.
        assert_eq!(checkpoint_zones_for(&[zns(64, 1024, 1024)]), 1);
        // 4 TB of 1 GiB zones (262,144 blocks, capacity 270,000 blocks
        // below the zone size as on real drives): about 15 zones a set.
        let big = zns(3726, 1 << 18, 250_000);
        let k = checkpoint_zones_for(&[big]);
        let data = 3722u64 * 250_000;
        assert!(u64::from(k) * 250_000 >= data / 256, "k {k}");
        assert!(u64::from(k - 1) * 250_000 < data / 256, "k {k}");
        // Two such members: the set spans both, so the same k.
        assert_eq!(checkpoint_zones_for(&[big, big]), k);
        // A small member next to a large one: at most a quarter of its
        // sequential zones for metadata (2 x 2 of 16), not the 16 the
        // capacity asks for (16).
        let (large, small) = (zns(8000, 16, 16), zns(16, 16, 16));
        assert_eq!(checkpoint_zones_for(&[large, large]), 32);
        assert_eq!(checkpoint_zones_for(&[large, small]), 2);
        assert_eq!(meta_zones_for(&[big], 0), 2 + 2 * k);
        assert_eq!(meta_zones_for(&[big], 2), 6);
    }
}
