// SPDX-License-Identifier: GPL-2.0
//! Zone state changes: close, reopen, finish, reset, metadata zones open or
//! closed, offline zones, and zone states set by recovery.

use super::super::error::{Error, Result};
use super::super::geom::{DeviceGeometry, Stream};
use super::records::check_zone;
use super::{
    Allocator, DevState, ZoneInfo, ZoneState, NO_ZONE, ZF_CLOSING, ZF_FILLING, ZF_FIN_PENDING,
    ZF_HOT, ZF_KEPT, ZF_RETIRED, ZF_UNREADABLE,
};
use core::ops::{Deref, DerefMut};

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    fn detach_open(&mut self, zone: u32) {
        for s in self.dev.iter_mut() {
            for slot in s.zone.iter_mut() {
                if *slot == zone {
                    *slot = NO_ZONE;
                }
            }
        }
    }

    /// Stops filling an open zone. An unwritten zone becomes empty again,
    /// otherwise closed (still active on the device). Other states: no-op.
    pub fn close(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let ZoneState::Open(_) = zi.state else {
            return Ok(());
        };
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        self.detach_open(zone);
        let d = usize::from(zg.dev);
        let empty = zi.wp == 0;
        if let Some(s) = self.dev.get_mut(d) {
            if !zg.conventional {
                s.open = s.open.saturating_sub(1);
                if empty {
                    s.active = s.active.saturating_sub(1);
                }
            }
            if empty {
                s.free = s.free.saturating_add(1);
            }
        }
        if empty {
            self.free_zones = self.free_zones.saturating_add(1);
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = if empty {
                ZoneState::Empty
            } else {
                ZoneState::Closed
            };
        }
        Ok(())
    }

    /// Makes a closed zone the open zone of `stream` on its member again, so
    /// writing continues at its write pointer instead of wasting the rest of
    /// the zone (e.g. after recovery, where every partly written zone comes
    /// back closed). [`Error::Busy`] if the stream already has an open zone
    /// there or the member is at its open limit; [`Error::Invalid`] unless
    /// the zone is closed with room left. Nothing changes on error.
    pub fn reopen(&mut self, zone: u32, stream: Stream) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Closed || zi.wp() >= zg.cap || zi.retired() {
            return Err(Error::Invalid("reopen: not a closed zone with room"));
        }
        let d = usize::from(zg.dev);
        if self.open_zone(stream, zg.dev).is_some() {
            return Err(Error::Busy);
        }
        if !zg.conventional {
            let g = self.geom.devices().get(d).ok_or(Error::Invalid("member"))?;
            let s = self.dev.get(d).ok_or(Error::Invalid("member"))?;
            let keep = u32::from(stream != Stream::Meta && s.meta_open == 0);
            let lim = g.open_limit();
            if lim != 0 && s.open.saturating_add(1).saturating_add(keep) > lim {
                return Err(Error::Busy);
            }
        }
        if let Some(s) = self.dev.get_mut(d) {
            if !zg.conventional {
                s.open = s.open.saturating_add(1);
            }
        }
        if let Some(slot) = self
            .dev
            .get_mut(d)
            .and_then(|s| s.zone.get_mut(stream.index()))
        {
            *slot = zone;
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = ZoneState::Open(stream);
        }
        Ok(())
    }

    /// Marks a data zone full (the caller issues the device's zone finish):
    /// open, closed or empty zones become [`ZoneState::Full`] with the write
    /// pointer at capacity. Full zones: no-op.
    pub fn finish(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let d = usize::from(zg.dev);
        match zi.state {
            ZoneState::Full => return Ok(()),
            ZoneState::Meta | ZoneState::Offline => {
                return Err(Error::Invalid("finish: not a data zone"))
            }
            ZoneState::Open(_) => {
                self.detach_open(zone);
                if let Some(s) = self.dev.get_mut(d) {
                    if !zg.conventional {
                        s.open = s.open.saturating_sub(1);
                        s.active = s.active.saturating_sub(1);
                    }
                }
            }
            ZoneState::Closed => {
                if let Some(s) = self.dev.get_mut(d) {
                    if !zg.conventional {
                        s.active = s.active.saturating_sub(1);
                    }
                }
            }
            ZoneState::Empty => {
                if let Some(s) = self.dev.get_mut(d) {
                    s.free = s.free.saturating_sub(1);
                }
                self.free_zones = self.free_zones.saturating_sub(1);
            }
        }
        // The device's finish makes it full there too, whatever is in
        // flight (those writes fail).
        self.tracking_held(zone, |z| {
            z.state = ZoneState::Full;
            z.wp = zg.cap as u32;
            z.set_flag(ZF_FILLING, false);
        });
        Ok(())
    }

    /// [`Self::finish`] for a zone whose device finish the caller issues
    /// later (after a failed write, at the next maintenance): the zone
    /// stays active on the device until then ([`ZoneInfo::held`]); call
    /// [`Self::finish_issued`] once the finish is issued.
    pub fn finish_deferred(&mut self, zone: u32) -> Result<()> {
        self.finish(zone)?;
        let conv = self.geom.zone(zone).is_none_or(|zg| zg.conventional);
        if !conv {
            self.tracking_held(zone, |z| z.set_flag(ZF_FIN_PENDING, true));
        }
        Ok(())
    }

    /// The device finish of a zone finished by [`Self::finish_deferred`]
    /// was issued.
    pub fn finish_issued(&mut self, zone: u32) {
        self.tracking_held(zone, |z| z.set_flag(ZF_FIN_PENDING, false));
    }

    /// Returns a data zone to [`ZoneState::Empty`] (the caller issues the
    /// device's zone reset first or after, as its ordering rules need).
    /// [`Error::Busy`] while it has valid or in-flight blocks; nothing changes.
    pub fn reset(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if !zi.state.is_data() {
            return match zi.state {
                ZoneState::Empty => Ok(()),
                _ => Err(Error::Invalid("reset: not a data zone")),
            };
        }
        if zi.valid != 0 || zi.inflight != 0 {
            return Err(Error::Busy);
        }
        // A reset ends a finish still to be issued as well.
        self.tracking_held(zone, |z| z.set_flag(ZF_FIN_PENDING, false));
        if let ZoneState::Open(_) = zi.state {
            self.close(zone)?;
        }
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state == ZoneState::Empty {
            return Ok(());
        }
        if let Some(s) = self.dev.get_mut(usize::from(zg.dev)) {
            if zi.state == ZoneState::Closed && !zg.conventional {
                s.active = s.active.saturating_sub(1);
            }
            s.free = s.free.saturating_add(1);
        }
        self.free_zones = self.free_zones.saturating_add(1);
        if let Some(z) = self.zones.get_mut(zone as usize) {
            *z = ZoneInfo::default();
        }
        Ok(())
    }

    /// Marks a reserved metadata zone open or closed, so it counts against
    /// its device's open/active limits. Either ends a
    /// [`Self::meta_close_later`] of the zone (opening it keeps it open).
    pub fn meta_open(&mut self, zone: u32, open: bool) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Meta {
            return Err(Error::Invalid("not a meta zone"));
        }
        self.unlist_closing(zone);
        if zi.meta_open == open {
            return Ok(());
        }
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let d = usize::from(zg.dev);
        if open && !self.may_open_on(d, false) {
            return Err(Error::Busy);
        }
        if let Some(s) = self.dev.get_mut(d) {
            if open {
                s.meta_open = s.meta_open.saturating_add(1);
                s.open = s.open.saturating_add(1);
                s.active = s.active.saturating_add(1);
            } else {
                s.meta_open = s.meta_open.saturating_sub(1);
                s.open = s.open.saturating_sub(1);
                s.active = s.active.saturating_sub(1);
                if zi.flag(ZF_KEPT) {
                    s.kept = s.kept.saturating_sub(1);
                }
            }
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.meta_open = open;
            z.set_flag(ZF_KEPT, false);
        }
        Ok(())
    }

    /// Closes open meta zone `zone` ([`Self::meta_open`] `false`) only at
    /// the next [`Self::release_closing`]: the caller has emitted the
    /// operation that ends the zone's activity on the device (its finish,
    /// or its last block) but not performed it yet, and until then the
    /// device still counts the zone against its limits, so no data zone
    /// may take its slot.
    pub fn meta_close_later(&mut self, zone: u32) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Meta {
            return Err(Error::Invalid("not a meta zone"));
        }
        if !zi.meta_open || zi.flag(ZF_CLOSING) {
            return Ok(());
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.set_flag(ZF_CLOSING, true);
            self.nclosing = self.nclosing.saturating_add(1);
        }
        Ok(())
    }

    /// The operations emitted before are done: closes the meta zones of
    /// [`Self::meta_close_later`] (a look at each member's few metadata
    /// zones, only when some wait).
    pub fn release_closing(&mut self) {
        if self.nclosing == 0 {
            return;
        }
        for d in 0..self.geom.nr_devices() {
            let (Some(g), Some(first)) = (self.geom.device(d), self.geom.dev_first_zone(d)) else {
                continue;
            };
            let (m0, nm) = (g.first_meta_zone(), g.meta_zones);
            for i in 0..nm {
                let z = first.saturating_add(m0).saturating_add(i);
                if self.zone(z).is_some_and(|zi| zi.flag(ZF_CLOSING)) {
                    let _ = self.meta_open(z, false);
                }
            }
        }
        self.nclosing = 0;
    }

    /// Meta zones waiting in [`Self::meta_close_later`].
    pub fn closing_zones(&self) -> u32 {
        self.nclosing
    }

    /// Ends a [`Self::meta_close_later`] of `zone`, if any.
    fn unlist_closing(&mut self, zone: u32) {
        if let Some(z) = self.zones.get_mut(zone as usize) {
            if z.flag(ZF_CLOSING) {
                z.set_flag(ZF_CLOSING, false);
                self.nclosing = self.nclosing.saturating_sub(1);
            }
        }
    }

    /// Marks open meta zone `zone` as kept open between checkpoints (the
    /// tail of a delta chain) or not: such a zone still counts against the
    /// limits, but data zones still leave the journal's slot free.
    pub fn meta_keep(&mut self, zone: u32, kept: bool) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if zi.state != ZoneState::Meta || !zi.meta_open {
            return Err(Error::Invalid("not an open meta zone"));
        }
        if zi.flag(ZF_KEPT) == kept {
            return Ok(());
        }
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if let Some(s) = self.dev.get_mut(usize::from(zg.dev)) {
            s.kept = if kept {
                s.kept.saturating_add(1)
            } else {
                s.kept.saturating_sub(1)
            };
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.set_flag(ZF_KEPT, kept);
        }
        Ok(())
    }

    /// Takes data zone `zone` out of service: the device turned it
    /// read-only (`readable`) or offline. It is never written, finished or
    /// reset again; its blocks stay valid (a readable zone's are moved by
    /// GC, an offline one's fail their reads until overwritten), and once
    /// it holds none it becomes [`ZoneState::Offline`]
    /// ([`Self::retire_if_empty`]).
    pub fn retire(&mut self, zone: u32, readable: bool) -> Result<()> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if !zi.state.is_data() && zi.state != ZoneState::Empty {
            return Err(Error::Invalid("retire: not a data zone"));
        }
        if let ZoneState::Open(_) = zi.state {
            self.close(zone)?;
        }
        // Not active on the device any more: no finish to wait for.
        self.tracking_held(zone, |z| z.set_flag(ZF_FIN_PENDING, false));
        let was = zi.retired() && !zi.unreadable();
        match (was, readable) {
            (false, true) => self.retired_readable = self.retired_readable.saturating_add(1),
            (true, false) => self.retired_readable = self.retired_readable.saturating_sub(1),
            _ => {}
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.set_flag(ZF_RETIRED, true);
            z.set_flag(ZF_UNREADABLE, !readable);
        }
        self.retire_if_empty(zone)?;
        Ok(())
    }

    /// A retired zone that holds nothing (valid or in flight) becomes
    /// [`ZoneState::Offline`]; whether it did.
    pub fn retire_if_empty(&mut self, zone: u32) -> Result<bool> {
        let zi = *self.zone(zone).ok_or(Error::Invalid("zone id"))?;
        if !zi.retired()
            || zi.state == ZoneState::Offline
            || zi.valid != 0
            || zi.inflight != 0
            || matches!(zi.state, ZoneState::Open(_))
        {
            return Ok(false);
        }
        if !zi.unreadable() {
            self.retired_readable = self.retired_readable.saturating_sub(1);
        }
        // Out of the counters of its state (what `rebuild` would find).
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let s = self.dev.get_mut(usize::from(zg.dev));
        match (zi.state, s) {
            (ZoneState::Empty, Some(s)) => {
                s.free = s.free.saturating_sub(1);
                self.free_zones = self.free_zones.saturating_sub(1);
            }
            (ZoneState::Closed, Some(s)) if !zg.conventional => {
                s.active = s.active.saturating_sub(1);
            }
            _ => {}
        }
        if let Some(z) = self.zones.get_mut(zone as usize) {
            z.state = ZoneState::Offline;
            z.meta_open = false;
        }
        Ok(true)
    }

    /// Retired zones that still hold readable blocks (GC's first victims).
    pub fn retired_readable(&self) -> u32 {
        self.retired_readable
    }

    /// Takes a zone out of service (device reported it offline). Its valid
    /// blocks are dropped from the counters; the caller handles data loss.
    pub fn set_offline(&mut self, zone: u32) -> Result<()> {
        let z = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        z.state = ZoneState::Offline;
        z.meta_open = false;
        z.valid = 0;
        z.inflight = 0;
        self.rebuild();
        Ok(())
    }

    /// The first data zone from `from` on that holds data and was written
    /// at or after clock `since`, with its placement history (its clock at
    /// its last write, written by the hot stream): what a checkpoint keeps
    /// of it (`format::zone_history`). A zone's history changes only when
    /// it is written (its clock becomes the allocator's, which then
    /// advances), so `since` = the clock at an earlier checkpoint gives
    /// the zones whose history changed since it; 0 gives all.
    pub fn next_zone_history(&self, from: u32, since: u64) -> Option<(u32, u64, bool)> {
        (from..self.geom.nr_zones()).find_map(|z| {
            let zi = self.zones.get(z as usize)?;
            (zi.holds_data() && zi.seq >= since).then_some((z, zi.seq, zi.flag(ZF_HOT)))
        })
    }

    /// Restores zone `zone`'s placement history from a checkpoint (before
    /// the zones are rebuilt from the devices: [`Self::set_zone`] keeps
    /// it). Refuses a zone that is not a data zone.
    pub fn restore_zone_history(&mut self, zone: u32, seq: u64, hot: bool) -> Result<()> {
        let zg = self
            .geom
            .zone(zone)
            .ok_or(Error::Corrupt("zone history: zone id"))?;
        if zg.meta {
            return Err(Error::Corrupt("zone history: a metadata zone"));
        }
        let z = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Corrupt("zone history: zone id"))?;
        z.seq = seq;
        z.set_flag(ZF_HOT, hot);
        // A checkpoint takes the zones after the clock: the clock is at
        // least every zone's.
        self.clock = self.clock.max(seq);
        Ok(())
    }

    /// Restores the write clock from a checkpoint (its zones' clocks come
    /// next, [`Self::restore_zone_history`]).
    pub fn restore_clock(&mut self, clock: u64) {
        self.clock = clock;
    }

    /// Journal replay: blocks `addr..addr + len` were written after the
    /// checkpoint that restored the history, so their zones' history there
    /// is not their last write's: they become the youngest
    /// ([`Self::date_unknown_zones`]). With `reset`, `addr` is a zone
    /// reset after it: its hot flag goes too.
    pub fn history_unknown(&mut self, addr: u64, len: u64, reset: bool) {
        let last = addr.saturating_add(len.max(1) - 1);
        let (Some(first), Some(end)) = (self.geom.zone_of(addr), self.geom.zone_of(last)) else {
            return;
        };
        for z in first..=end {
            if let Some(zi) = self.zones.get_mut(z as usize) {
                zi.seq = 0;
                if reset {
                    zi.set_flag(ZF_HOT, false);
                }
            }
        }
    }

    /// After assembly: zones written since the checkpoint that restored
    /// the history (data but no clock of their own) are the youngest.
    pub fn date_unknown_zones(&mut self) {
        let clock = self.clock;
        for z in self.zones.iter_mut() {
            if z.holds_data() && z.seq == 0 {
                z.seq = clock;
            }
        }
    }

    /// Forgets the placement history: the write clock, each zone's clock
    /// of its last write and its hot flag start again from zero (before a
    /// checkpoint's history is restored, and what an assembly of a pool
    /// without `INCOMPAT_ZONE_HISTORY` leaves; the GC simulator's runs
    /// with reassemblies).
    #[doc(hidden)]
    pub fn forget_history(&mut self) {
        self.clock = 0;
        for z in self.zones.iter_mut() {
            z.seq = 0;
            z.set_flag(ZF_HOT, false);
        }
    }

    /// Overwrites one zone's state (recovery: e.g. the write pointer the
    /// device reports). Checked against the geometry; call [`Self::rebuild`]
    /// after a batch of changes.
    pub fn set_zone(&mut self, zone: u32, state: ZoneState, wp: u64, valid: u64) -> Result<()> {
        let zg = self.geom.zone(zone).ok_or(Error::Invalid("zone id"))?;
        let info = check_zone(&zg, state, wp, valid, 0)?;
        let z = self
            .zones
            .get_mut(zone as usize)
            .ok_or(Error::Invalid("zone id"))?;
        // The placement history restored from a checkpoint stays.
        let hot = z.flag(ZF_HOT) && state != ZoneState::Empty;
        *z = ZoneInfo { seq: z.seq, ..info };
        z.set_flag(ZF_HOT, hot);
        Ok(())
    }
}
