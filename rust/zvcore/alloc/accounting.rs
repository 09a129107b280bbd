// SPDX-License-Identifier: GPL-2.0
//! Block accounting: completion or abort of in-flight writes and the valid
//! counts ([`Allocator::invalidate`], [`Allocator::validate`], ...).

use super::super::error::{Error, Result};
use super::super::geom::DeviceGeometry;
use super::{Allocator, DevState, ZoneInfo, ZoneState, NO_ZONE};
use core::ops::{Deref, DerefMut};

// Only named by the links in the docs.
#[cfg(doc)]
use super::Extent;

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
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
        self.tracking_held(zone, |zi| {
            zi.inflight = zi.inflight.saturating_sub(len as u32);
        });
        let _ = i;
        Ok(())
    }

    /// Changes zone `zone`'s state with `f`, keeping its device's count of
    /// held zones ([`ZoneInfo::held`]) right.
    pub(super) fn tracking_held(&mut self, zone: u32, f: impl FnOnce(&mut ZoneInfo)) {
        let Some(zi) = self.zones.get_mut(zone as usize) else {
            return;
        };
        let before = zi.held();
        f(zi);
        let after = zi.held();
        let Some(zg) = self.geom.zone(zone) else {
            return;
        };
        if before == after || zg.conventional {
            return;
        }
        if let Some(s) = self.dev.get_mut(usize::from(zg.dev)) {
            s.held = if after {
                s.held.saturating_add(1)
            } else {
                s.held.saturating_sub(1)
            };
        }
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
        self.tracking_held(zone, |zi| {
            zi.inflight = zi.inflight.saturating_sub(len as u32);
            zi.valid = zi.valid.saturating_sub(len as u32);
        });
        self.valid_total = self.valid_total.saturating_sub(len);
        Ok(())
    }

    /// Takes back the last `len` blocks handed out in open zone `zone` by
    /// the allocation just made (nothing was allocated in the zone since,
    /// nothing written): as if they had not been handed out. A zone the
    /// allocation opened is empty again. `Invalid` (nothing changed) when
    /// that cannot be: the allocation filled the zone, or the zone is not
    /// its stream's open zone; the caller then treats the blocks as a
    /// failed write ([`Self::abort`]).
    pub fn untake(&mut self, zone: u32, len: u64) -> Result<()> {
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zi = *self
            .zones
            .get(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        let ZoneState::Open(stream) = zi.state else {
            return Err(Error::Invalid("untake: not an open zone"));
        };
        let si = stream.index();
        let d = usize::from(zg.dev);
        let open_here = self
            .dev
            .get(d)
            .and_then(|s| s.zone.get(si))
            .is_some_and(|&z| z == zone);
        let n = u32::try_from(len).map_err(|_| Error::Invalid("untake: length"))?;
        if n == 0 || !open_here || zi.wp < n || zi.valid < n || zi.inflight < n {
            return Err(Error::Invalid("untake: not the last allocation"));
        }
        let empty = zi.wp == n;
        self.tracking_held(zone, |zi| {
            zi.wp -= n;
            zi.valid -= n;
            zi.inflight -= n;
            if empty {
                *zi = ZoneInfo::default();
            }
        });
        if empty {
            let limited = !zg.conventional;
            if let Some(s) = self.dev.get_mut(d) {
                s.free = s.free.saturating_add(1);
                if limited {
                    s.open = s.open.saturating_sub(1);
                    s.active = s.active.saturating_sub(1);
                }
                if let Some(slot) = s.zone.get_mut(si) {
                    *slot = NO_ZONE;
                }
            }
            self.free_zones = self.free_zones.saturating_add(1);
        }
        // (The write clock stays: zones stamped by allocations made since
        // must not be ahead of it.)
        self.valid_total = self.valid_total.saturating_sub(len);
        if let Some(w) = self.written.get_mut(si) {
            *w = w.saturating_sub(len);
        }
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
}
