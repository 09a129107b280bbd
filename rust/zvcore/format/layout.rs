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
//!   pool's life; at most a quarter of a member's zones. Twice that with two
//!   members or more, whose new pools write checkpoint copies.
//! * **Checkpoint copies** (`INCOMPAT_CHECKPOINT_COPIES`, pools of two
//!   members or more): every checkpoint block is written twice, on two
//!   members ([`checkpoint_block_addr`], [`checkpoint_copy_addr`]), so the
//!   loss or damage of one member's metadata zones leaves a whole
//!   checkpoint. A set then holds one *phase* `H` per member (half the
//!   smallest member's part of a set): each member's part is still written
//!   as a prefix, one zone at a time.

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
/// `k * sum(zone capacity) >= 2 * 8 * data blocks / 4096` (twice that with
/// two members or more: checkpoint copies), at least 1, at most what leaves
/// three quarters of the smallest member's sequential zones to data.
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
    // Tables at 8 bytes a block: 1/512 of the data, twice over; and twice
    // that with two members or more (checkpoint copies, the default: a
    // set holds half as much).
    let want = if devs.len() >= 2 {
        data / 128
    } else {
        data / 256
    };
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

/// Blocks of member `dev`'s log zone `i` the journal may use (block 0
/// included): the zone's capacity, or for a conventional zone at most the
/// pool's span (`INCOMPAT_CONV_LOG_SPAN`), past which nothing of the
/// journal lies and assembly reads nothing.
pub fn log_zone_blocks<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    dev: u16,
    i: u32,
) -> Option<u64> {
    let zg = geo.zone(log_zone(geo, dev, i)?)?;
    let span = geo.conv_log_blocks();
    Some(if zg.conventional && span != 0 {
        zg.cap.min(span)
    } else {
        zg.cap
    })
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

/// Blocks of member `g`'s part of a checkpoint set.
fn part_blocks(g: &DeviceGeometry) -> u64 {
    g.zone_cap_blocks
        .saturating_mul(u64::from(ckpt_zones_of(g.meta_zones)))
}

/// With checkpoint copies: the blocks of a *phase* (`H`), half the
/// smallest part of a set of a member in the layout (see
/// [`checkpoint_copy_addr`]).
pub fn copies_phase_blocks<S: Deref<Target = [DeviceGeometry]>>(geo: &PoolGeometry<S>) -> u64 {
    geo.layout_members()
        .filter_map(|d| geo.device(d))
        .map(|g| part_blocks(g) / 2)
        .min()
        .unwrap_or(0)
}

/// Member `dev`'s place in the ring of members in the layout (removed
/// members are left out, see the module documentation).
fn ring_pos<S: Deref<Target = [DeviceGeometry]>>(geo: &PoolGeometry<S>, dev: u16) -> Option<u64> {
    if dev >= geo.nr_devices() || geo.is_removed(dev) {
        return None;
    }
    Some(u64::from(
        (0..dev).filter(|d| !geo.is_removed(*d)).count() as u16
    ))
}

/// The member at place `pos` of the ring of members in the layout.
fn ring_member<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    pos: u64,
) -> Option<u16> {
    geo.layout_members().nth(usize::try_from(pos).ok()?)
}

/// Capacity of checkpoint set `set` in blocks (sum of its zones' capacities;
/// with checkpoint copies, one phase per member), clamped to `u32::MAX`
/// (the most blocks a checkpoint may have).
pub fn checkpoint_capacity<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
) -> u32 {
    if set >= CHECKPOINT_SETS {
        return 0;
    }
    let total = if geo.ckpt_copies() {
        copies_phase_blocks(geo).saturating_mul(u64::from(geo.nr_layout_members()))
    } else {
        geo.layout_members()
            .filter_map(|d| geo.device(d))
            .fold(0u64, |acc, g| acc.saturating_add(part_blocks(g)))
    };
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Pool address of block `off` of member `dev`'s part of set `set`.
fn part_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    dev: u16,
    off: u64,
) -> Option<u64> {
    let g = geo.device(dev)?;
    if off >= part_blocks(g) {
        return None;
    }
    let cap = g.zone_cap_blocks.max(1);
    let zone = checkpoint_zone(geo, set, dev)?.checked_add(u32::try_from(off / cap).ok()?)?;
    geo.zone_start(zone)?.checked_add(off % cap)
}

/// With checkpoint copies, where block `index` and its copy are: the
/// block is in phase `p = index / H` at offset `o = index % H` (`H`:
/// [`copies_phase_blocks`]); its first copy on the member at place `p` of
/// the ring of members in the layout (every member but the removed ones,
/// in order), its second on the one at place `p + 1` (place 0 for the last
/// phase). A member writes the phase it copies first, then its own: the
/// member at place `m >= 1` holds the copy of phase `m - 1` at offsets
/// `0..H` of its part and phase `m` at `H..2H`; the one at place 0 holds
/// phase 0 at `0..H` and the copy of the last phase at `H..2H`. So each
/// member's part is written in order, as a prefix, one zone at a time, and
/// the two copies of a block are on two members (on the one member left
/// when all others are removed: its two halves). The third place, for
/// the blocks of phase `n - 2` only, is where their second copy was
/// before the ring's last member joined (place 0, at `H + o`).
fn copies_place<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    index: u32,
) -> Option<[Option<(u16, u64)>; 3]> {
    let h = copies_phase_blocks(geo);
    if h == 0 {
        return None;
    }
    let n = u64::from(geo.nr_layout_members());
    let p = u64::from(index) / h;
    let o = u64::from(index) % h;
    if p >= n {
        return None;
    }
    let q = (p + 1) % n;
    let first = (ring_member(geo, p)?, if p == 0 { o } else { h + o });
    let second = (ring_member(geo, q)?, if q == 0 { h + o } else { o });
    // The old ring's last phase (see `checkpoint_copy_addr_before_join`).
    let joined = (n >= 2 && p == n - 2)
        .then(|| Some((ring_member(geo, 0)?, h.checked_add(o)?)))
        .flatten();
    Some([Some(first), Some(second), joined])
}

/// Pool address of copy `k` of block `index` of a checkpoint in set `set`
/// ([`copies_place`]; `None` without checkpoint copies).
fn copy_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
    k: usize,
) -> Option<u64> {
    if !geo.ckpt_copies() || set >= CHECKPOINT_SETS {
        return None;
    }
    let (d, off) = copies_place(geo, index)?.get(k).copied().flatten()?;
    part_addr(geo, set, d, off)
}

/// Pool address of the second copy of block `index` of a checkpoint in set
/// `set` (`None` without checkpoint copies).
pub fn checkpoint_copy_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
) -> Option<u64> {
    copy_addr(geo, set, index, 1)
}

/// Where the second copy of block `index` of a checkpoint in set `set`
/// was before the ring's last member joined, when that differs from
/// [`checkpoint_copy_addr`]: the old ring's last phase had its second
/// copy on place 0 (at `H + o`), which a member added takes over (the
/// phase `H` stays: `Pool::member_add` refuses a member whose part is
/// smaller). A chain written before the add is read there when the
/// first copy's member is missing (until the first full checkpoint in
/// the new layout). `None` for every other block, or without copies.
pub fn checkpoint_copy_addr_before_join<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
) -> Option<u64> {
    copy_addr(geo, set, index, 2)
}

/// Pool address of block `index` of a checkpoint in set `set`: the set's
/// zones are filled in member order and, on a member, in zone order, each
/// up to its zone capacity. With checkpoint copies, the first copy's
/// ([`checkpoint_copy_addr`] has the second).
pub fn checkpoint_block_addr<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    index: u32,
) -> Option<u64> {
    if geo.ckpt_copies() {
        return copy_addr(geo, set, index, 0);
    }
    let mut left = u64::from(index);
    for (d, g) in geo.devices().iter().enumerate() {
        let dev = u16::try_from(d).ok()?;
        if geo.is_removed(dev) {
            continue;
        }
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

/// How many blocks of member `dev`'s part of a set the first `blocks`
/// blocks of a checkpoint occupy: always a prefix of the part (see
/// [`checkpoint_block_addr`] and [`checkpoint_copy_addr`]).
pub fn checkpoint_member_blocks<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    dev: u16,
    blocks: u32,
) -> u64 {
    let b = u64::from(blocks);
    if geo.ckpt_copies() {
        // The phase written first, then the second one (`copies_place`).
        let h = copies_phase_blocks(geo);
        let n = u64::from(geo.nr_layout_members());
        let Some(m) = ring_pos(geo, dev) else {
            return 0;
        };
        let (lo, hi) = if m == 0 { (0, n - 1) } else { (m - 1, m) };
        let of = |p: u64| b.saturating_sub(p.saturating_mul(h)).min(h);
        return if of(hi) > 0 { h + of(hi) } else { of(lo) };
    }
    if geo.is_removed(dev) {
        return 0;
    }
    let mut before = 0u64;
    for (d, g) in geo.devices().iter().enumerate() {
        if geo.is_removed(d as u16) {
            continue;
        }
        let part = part_blocks(g);
        if d == usize::from(dev) {
            return b.saturating_sub(before).min(part);
        }
        before = before.saturating_add(part);
    }
    0
}

/// The zone of member `dev` that holds the last of the first `blocks`
/// blocks of a checkpoint in set `set` that fall on it, or its first zone
/// of the set if none do, and whether that zone is partly written: the
/// zone a finished checkpoint leaves open or partly written on the member.
pub fn checkpoint_last_zone<S: Deref<Target = [DeviceGeometry]>>(
    geo: &PoolGeometry<S>,
    set: u8,
    dev: u16,
    blocks: u32,
) -> Option<(u32, bool)> {
    let first = checkpoint_zone(geo, set, dev)?;
    let cap = geo.device(dev)?.zone_cap_blocks.max(1);
    let here = checkpoint_member_blocks(geo, dev, blocks);
    let i = u32::try_from(here.saturating_sub(1) / cap).ok()?;
    Some((first.checked_add(i)?, !here.is_multiple_of(cap)))
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
            (0..2u16)
                .map(|d| (d, checkpoint_last_zone(&p, 0, d, blocks).unwrap().0))
                .collect::<std::vec::Vec<_>>()
        };
        assert_eq!(last(0), [(0, 2), (1, 22)]);
        assert_eq!(last(1), [(0, 2), (1, 22)]);
        assert_eq!(last(13), [(0, 3), (1, 22)]);
        assert_eq!(last(36), [(0, 4), (1, 22)]);
        assert_eq!(last(37), [(0, 4), (1, 22)]);
        assert_eq!(last(66), [(0, 4), (1, 24)]);
    }

    /// Checkpoint copies on 2..=4 members of different capacities and `k`:
    /// every block has two copies on two members of its set's zones, no
    /// address is used twice, each member's part is written as a prefix in
    /// index order (so one zone of the set at a time), and the prefix and
    /// last zone computed match the writes.
    /// [`checkpoint_copies_on_two_members_each_written_in_order`] for `n`
    /// members, `k` zones a set, members `removed` left out.
    fn copies_in_order(n: usize, k: u32, removed: u64) {
        let mut devs: std::vec::Vec<DeviceGeometry> =
            (0..n).map(|d| zns(24, 16, 12 - d as u64 % 2)).collect();
        set_meta_zones(&mut devs, k);
        let mut p = PoolGeometry::new(&devs[..]).unwrap();
        p.set_removed(removed).unwrap();
        let live = n - removed.count_ones() as usize;
        let t = std::format!("{n} members, k {k}, removed {removed:#b}");
        let plain = checkpoint_capacity(&p, 0);
        p.set_ckpt_copies(true);
        let h = copies_phase_blocks(&p);
        let smallest = (0..n)
            .filter(|d| removed & (1 << d) == 0)
            .map(|d| 12 - d as u64 % 2)
            .min()
            .unwrap();
        assert_eq!(h, u64::from(k) * smallest / 2, "{t}");
        let cap = checkpoint_capacity(&p, 0);
        assert_eq!(u64::from(cap), h * live as u64, "{t}");
        assert!(cap * 2 <= plain, "{t}");
        for set in 0..2u8 {
            let mut seen = std::collections::BTreeSet::new();
            let mut next = std::vec![0u64; n];
            for i in 0..cap {
                let a = checkpoint_block_addr(&p, set, i).unwrap();
                let c = checkpoint_copy_addr(&p, set, i).unwrap();
                let mut devs_of = [0u16; 2];
                for (j, x) in [a, c].into_iter().enumerate() {
                    assert!(seen.insert(x), "{t}: address {x} twice");
                    let z = p.zone_of(x).unwrap();
                    let (d, _) = p.zone_dev(z).unwrap();
                    assert!(!p.is_removed(d), "{t}: block {i} on removed {d}");
                    assert!(checkpoint_zones(&p, set, d).contains(&z));
                    devs_of[j] = d;
                    // The offset in the member's part: the next one.
                    let first = checkpoint_zone(&p, set, d).unwrap();
                    let zi = u64::from(z - first);
                    let off =
                        zi * p.device(d).unwrap().zone_cap_blocks + (x - p.zone_start(z).unwrap());
                    assert_eq!(off, next[usize::from(d)], "{t}: block {i} on {d}");
                    next[usize::from(d)] += 1;
                }
                assert_ne!(devs_of[0], devs_of[1], "{t}: block {i}");
                for d in 0..n as u16 {
                    assert_eq!(
                        checkpoint_member_blocks(&p, d, i + 1),
                        next[usize::from(d)],
                        "{t}: member {d} after block {i}"
                    );
                }
            }
            assert_eq!(checkpoint_block_addr(&p, set, cap), None);
            assert_eq!(checkpoint_copy_addr(&p, set, cap), None);
        }
        // Without copies there is no second address, and the removed
        // members hold nothing either.
        p.set_ckpt_copies(false);
        assert_eq!(checkpoint_copy_addr(&p, 0, 0), None);
        for i in 0..checkpoint_capacity(&p, 0) {
            let a = checkpoint_block_addr(&p, 0, i).unwrap();
            let (d, _) = p.zone_dev(p.zone_of(a).unwrap()).unwrap();
            assert!(!p.is_removed(d), "{t}: block {i} on removed {d}");
        }
    }

    #[test]
    fn checkpoint_copies_on_two_members_each_written_in_order() {
        for (n, k) in [(2usize, 1u32), (2, 3), (3, 1), (3, 2), (4, 3)] {
            // Members removed: none, each one (two left at least), two.
            let mut masks = std::vec![0u64];
            if n >= 3 {
                masks.extend((0..n).map(|d| 1u64 << d));
            }
            if n >= 4 {
                masks.extend([0b0101, 0b0011, 0b1100]);
            }
            for removed in masks {
                copies_in_order(n, k, removed);
            }
        }
        // One member: never copies.
        let devs = [zns(24, 16, 12)];
        let mut p = PoolGeometry::new(&devs[..]).unwrap();
        p.set_ckpt_copies(true);
        assert!(!p.ckpt_copies());
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
        // Two such members: the set spans both but holds half as much
        // (checkpoint copies): twice the k.
        assert_eq!(checkpoint_zones_for(&[big, big]), 2 * k);
        // A small member next to a large one: at most a quarter of its
        // sequential zones for metadata (2 x 2 of 16), not the 16 the
        // capacity asks for (16).
        let (large, small) = (zns(8000, 16, 16), zns(16, 16, 16));
        // (Two large ones: 2 x 7,996 zones of 16 blocks, 1/128 of it in
        // zones of 32 blocks a set, checkpoint copies.)
        assert_eq!(checkpoint_zones_for(&[large, large]), 63);
        assert_eq!(checkpoint_zones_for(&[large, small]), 2);
        assert_eq!(meta_zones_for(&[big], 0), 2 + 2 * k);
        assert_eq!(meta_zones_for(&[big], 2), 6);
    }
}
