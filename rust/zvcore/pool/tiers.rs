// SPDX-License-Identifier: GPL-2.0
//! Tiering of a pool with fast and slow members (`alloc::tiers`): user
//! writes go to the fast members, GC's copies to the slow ones, and GC
//! keeps [`TIER_FAST_FREE_PCT`] of the fast members' data zones free by
//! collecting their zones first (*demotion*: the live blocks of a fast
//! zone GC collects are the ones that outlived the rest of it, so they go
//! to the slow members), in the background, whenever GC is not urgent.
//! Kept on disk with the members' classes (`pool::policy`).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo, ZoneState};
use super::super::format::{Record, Superblock};
use super::super::geom::DeviceGeometry;
use super::super::map::NodeStore;
use super::{Pool, VolEntry};

/// Percent of the fast members' data zones tiering keeps free (GC
/// collects their zones, moving what lives there to the slow members,
/// while fewer are free).
pub const TIER_FAST_FREE_PCT: u32 = 20;

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    /// Whether member `d` is slow.
    pub fn member_class(&self, d: u16) -> bool {
        self.alloc.slow() & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0
    }

    /// Whether tiering wants the fast members' zones collected now: in
    /// effect, fewer than [`TIER_FAST_FREE_PCT`] percent of their data
    /// zones free (at least the GC reserve and two more), and room on the
    /// slow members (more free zones than the GC reserve and two more:
    /// else the copies would land on the fast members again).
    pub fn tier_demoting(&self) -> bool {
        if !self.alloc.tiering() {
            return false;
        }
        let floor = self.cfg.alloc.gc_reserve.saturating_add(2);
        if self.alloc.class_zones(true).0 <= floor {
            return false;
        }
        let (free, data) = self.alloc.class_zones(false);
        let keep = (data / 100)
            .saturating_mul(TIER_FAST_FREE_PCT)
            .saturating_add(data % 100 * TIER_FAST_FREE_PCT / 100)
            .max(floor)
            .min(data);
        free < keep
    }

    /// GC's victim while tiering demotes: the fast member's full zone
    /// written longest ago that `skip` does not exclude. What still lives
    /// there has outlived everything written since (cold: it goes to the
    /// slow members); a zone of data overwritten since is mostly invalid
    /// by then (cheap to collect). First in, first out, as a cache evicts.
    pub(super) fn tier_victim(&self, skip: impl Fn(u32) -> bool) -> Option<u32> {
        if !self.tier_demoting() {
            return None;
        }
        let a = &self.alloc;
        let slow = a.slow();
        let on_slow = |z: u32| {
            a.geom()
                .zone_dev(z)
                .is_none_or(|(d, _)| slow & 1u64.checked_shl(u32::from(d)).unwrap_or(0) != 0)
        };
        a.zones()
            .iter()
            .enumerate()
            .filter_map(|(i, zi)| u32::try_from(i).ok().map(|z| (z, zi)))
            .filter(|&(z, zi)| {
                matches!(zi.state(), ZoneState::Full | ZoneState::Closed)
                    && zi.valid() > 0
                    && zi.inflight() == 0
                    && !skip(z)
                    && !on_slow(z)
            })
            .min_by_key(|(_, zi)| zi.seq())
            .map(|(z, _)| z)
    }
}
