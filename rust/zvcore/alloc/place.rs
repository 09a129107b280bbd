// SPDX-License-Identifier: GPL-2.0
//! Placement: choosing the member and zone for each allocation and handing
//! out space ([`Allocator::alloc`], [`Allocator::reserve_append`]).

use super::super::error::{Error, Result};
use super::super::geom::{DeviceGeometry, Stream};
use super::{
    Allocator, DevState, Extent, ZoneInfo, ZoneState, NO_ZONE, ZF_APPEND, ZF_FILLING, ZF_HOT,
};
use core::ops::{Deref, DerefMut};

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    pub(super) fn may_open_on(&self, d: usize, data: bool) -> bool {
        let (Some(g), Some(s)) = (self.geom.devices().get(d), self.dev.get(d)) else {
            return false;
        };
        // Keep one open/active slot for the journal's meta zones unless one
        // is already open (a chain's tail kept open is not the journal's).
        let keep = u32::from(data && s.meta_open.saturating_sub(s.kept) == 0);
        let lim_ok =
            |cur: u32, lim: u32| lim == 0 || cur.saturating_add(1).saturating_add(keep) <= lim;
        lim_ok(s.open, g.open_limit()) && lim_ok(s.active.saturating_add(s.held), g.max_active)
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
    /// ties broken round robin; with tiering, among the members of the
    /// stream's class first (`tiers`). Member `next_on`'s open zone of the
    /// stream comes before the counts (a sequential write's next piece,
    /// [`Self::set_next_on`]). Read-only.
    fn pick(&self, stream: Stream, append: bool, next_on: u16) -> Result<(usize, u32, bool)> {
        let n = self.geom.devices().len();
        let si = stream.index();
        let user = matches!(stream, Stream::UserHot | Stream::UserCold) && !self.copying;
        let floor = if user { self.cfg.gc_reserve } else { 0 };
        // An allocation restricted to some members ([`Self::set_only`]:
        // a placed or mirrored volume's) keeps the reserve on those
        // members: GC must be able to collect their zones where their
        // blocks have to stay.
        let free_now = if self.only != 0 {
            self.usable_free_zones_in(self.only)
        } else {
            self.usable_free_zones()
        };
        let global_ok = free_now > floor;
        let start = usize::from(self.rr.get(si).copied().unwrap_or(0));
        // A stream at its spread opens no zone while one of its own is open.
        // Counted on the members of a restricted allocation only: GC's
        // copies of a mirrored volume's blocks get a zone of their own on
        // the volume's side (user writes cannot fill it), wherever GC's
        // other zone is.
        let capped = if self.only != 0 {
            let within = self.only.count_ones() as usize;
            self.open_count_in(stream, self.only) >= spread(stream, within.min(n))
        } else {
            self.open_count(stream) >= spread(stream, n)
        };
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
                if self.only != 0 && self.only & dev_bit(d) == 0 {
                    // Not a member this allocation may use (a migrating
                    // volume's blocks).
                    continue;
                }
                if (self.evacuating | self.lost) & dev_bit(d) != 0 {
                    // Evacuated: its space is not for new blocks (not a
                    // wait either: it does not come back by itself).
                    continue;
                }
                if self.fenced & dev_bit(d) != 0 {
                    // A member being added: no data before the superblock
                    // naming it is durable (`grow`); the commit that writes
                    // it is next.
                    limited = true;
                    continue;
                }
                if stream != Stream::Meta && self.draining & dev_bit(d) != 0 {
                    // Its writes drain for a checkpoint's zone slot.
                    limited = true;
                    continue;
                }
                let free = u64::from(self.dev.get(d).map(|s| s.free).unwrap_or(0));
                let cand = match self.open_zone(stream, d as u16) {
                    Some(z) => {
                        // Appends only where supported; no mixing of write
                        // modes while writes of the other mode are in flight.
                        let zi = self.zones.get(z as usize).copied().unwrap_or_default();
                        let can = !append || self.geom.zone(z).map(|g| g.append) == Some(true);
                        if can && zi.inflight != 0 && zi.flag(ZF_APPEND) != append {
                            limited = true; // busy until those writes complete
                        }
                        // A sequential write's next piece: here, ahead of
                        // the free-zone counts (below the tier bit).
                        let cont = if usize::from(next_on) == d {
                            1 << 39
                        } else {
                            0
                        };
                        (can && (zi.inflight == 0 || zi.flag(ZF_APPEND) == append)).then_some((
                            free.saturating_add(1) | cont,
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
                        if capped {
                            // Its open zones are busy (writes of the other
                            // mode in flight): wait, or borrow another's.
                            limited = true;
                            None
                        } else if !global_ok || free == 0 || (append && !dev_append) {
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
                // Tiering: the members of the stream's class first.
                let cand = cand.map(|(free, d, z, new)| {
                    let first = u64::from(self.tier_preferred(stream, d)) << 40;
                    (free | first, d, z, new)
                });
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

    /// Members on which `stream` has a zone open.
    fn open_count(&self, stream: Stream) -> usize {
        let n = self.geom.devices().len();
        self.dev
            .iter()
            .take(n)
            .filter(|s| s.zone.get(stream.index()).is_some_and(|&z| z != NO_ZONE))
            .count()
    }

    /// Members of `mask` on which `stream` has a zone open.
    fn open_count_in(&self, stream: Stream, mask: u64) -> usize {
        let n = self.geom.devices().len();
        self.dev
            .iter()
            .take(n)
            .enumerate()
            .filter(|(d, s)| {
                mask & dev_bit(*d) != 0 && s.zone.get(stream.index()).is_some_and(|&z| z != NO_ZONE)
            })
            .count()
    }

    fn take(&mut self, stream: Stream, n: u64, append: bool) -> Result<Extent> {
        if n == 0 {
            return Err(Error::Invalid("alloc: zero length"));
        }
        let next_on = core::mem::replace(&mut self.next_on, u16::MAX);
        let (d, z, new) = self.pick(stream, append, next_on)?;
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
        zi.set_flag(ZF_APPEND, append);
        zi.set_flag(ZF_HOT, stream == Stream::UserHot);
        zi.state = if u64::from(zi.wp) >= zg.cap {
            ZoneState::Full
        } else {
            ZoneState::Open(stream)
        };
        let full = zi.state == ZoneState::Full;
        zi.set_flag(ZF_FILLING, full);
        if full {
            if let Some(slot) = self.dev.get_mut(d).and_then(|s| s.zone.get_mut(si)) {
                *slot = NO_ZONE;
            }
            if limited {
                // Still active on the device until its last write lands
                // (the blocks just handed out are in flight): held.
                if let Some(s) = self.dev.get_mut(d) {
                    s.open = s.open.saturating_sub(1);
                    s.active = s.active.saturating_sub(1);
                    s.held = s.held.saturating_add(1);
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
    /// supporting it; with tiering in effect, only when the members of the
    /// stream's class do: else `Unsupported`, and the caller writes at a
    /// write pointer where tiering places it). Returns the zone and the reserved length; the write
    /// pointer advances now. Report the location the device chose with
    /// [`Self::complete_append`]. Errors as [`Self::alloc`].
    pub fn reserve_append(&mut self, stream: Stream, n: u64) -> Result<(u32, u64)> {
        if !self.geom.devices().iter().any(|g| g.zone_append) {
            return Err(Error::Unsupported("zone append"));
        }
        if !self.tier_appends(stream) {
            // The stream's tier cannot append (slow SMR members): an
            // append would land on the other tier, ahead of the stream's.
            return Err(Error::Unsupported("zone append on this tier"));
        }
        self.take(stream, n, true).map(|e| (e.zone, e.len))
    }
}

/// Members on which `stream` may have a zone open at a time, out of `n`:
/// all for user data and metadata, one for [`Stream::Gc`]. Every open zone
/// is space written only partly (about half a zone on average), which GC
/// cannot use to let victims empty themselves; GC copies gain nothing from
/// being spread, as a victim's blocks are read from one member anyway.
pub const fn spread(stream: Stream, n: usize) -> usize {
    match stream {
        Stream::Gc => 1,
        _ => n,
    }
}

/// Bit of member `d` in a 64-bit member set (none beyond bit 63).
pub(super) fn dev_bit(d: usize) -> u64 {
    u32::try_from(d)
        .ok()
        .and_then(|d| 1u64.checked_shl(d))
        .unwrap_or(0)
}
