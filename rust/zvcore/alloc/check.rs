// SPDX-License-Identifier: GPL-2.0
//! The derived counters: recomputing them from the zone table
//! ([`Allocator::rebuild`]) and verifying the whole allocator
//! ([`Allocator::check`]).

use super::super::error::{Error, Result};
use super::super::geom::{DeviceGeometry, Stream};
use super::{Allocator, DevState, ZoneInfo, ZoneState, NO_ZONE};
use core::ops::{Deref, DerefMut};

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
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
            if (a.free, a.open, a.active, a.meta_open, a.held)
                != (b.free, b.open, b.active, b.meta_open, b.held)
            {
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
}
