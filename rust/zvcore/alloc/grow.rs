// SPDX-License-Identifier: GPL-2.0
//! A member added to a running pool (`Pool::member_add`): the allocator
//! moves to larger caller storage (the core allocates nothing), and the new
//! member's zones stay *fenced* (no block is placed there) until the caller
//! lifts the fence, once the superblock naming the member is durable.

use super::super::error::{Error, Result};
use super::super::geom::{DeviceGeometry, PoolGeometry};
use super::super::geom::{Stream, NR_STREAMS};
use super::place::dev_bit;
use super::{Allocator, DevState, ZoneInfo, ZoneState};
use core::ops::{Deref, DerefMut};

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    /// Moves to storage for one more member: `geoms` holds the current
    /// members' geometries followed by the new one's, `zones` one entry per
    /// zone of the grown pool, `devs` at least one entry per member (their
    /// contents are overwritten). The new member's data zones must be empty
    /// on the device (the caller reset them). Its zones are fenced until
    /// [`Self::unfence`]. Returns the storage given up. On error nothing
    /// changed.
    pub fn grow(&mut self, geoms: G, mut zones: Z, mut devs: D) -> Result<(G, Z, D)> {
        let mut geom = PoolGeometry::new(geoms)?;
        geom.set_ckpt_copies(self.geom.ckpt_copies());
        geom.set_conv_log_blocks(self.geom.conv_log_blocks());
        geom.set_removed(self.geom.removed())?;
        let n = self.geom.devices().len();
        if geom.devices().len() != n.saturating_add(1)
            || geom.devices().get(..n) != Some(self.geom.devices())
        {
            return Err(Error::Invalid("grow: not the members plus one"));
        }
        if zones.len() != geom.nr_zones() as usize || devs.len() <= n {
            return Err(Error::Invalid("grow: storage size"));
        }
        // The new member's class by default (the others keep theirs).
        let old_members = 1u64.checked_shl(n as u32).map_or(u64::MAX, |b| b - 1);
        let slow = self.slow | (super::tiers::default_slow(geom.devices()) & !old_members);
        let old = self.geom.nr_zones() as usize;
        for (d, s) in zones.iter_mut().zip(self.zones.iter()) {
            *d = *s;
        }
        let mut new = DevState::EMPTY;
        let mut free = 0u32;
        for (z, zi) in zones.iter_mut().enumerate().skip(old) {
            let Some(zg) = u32::try_from(z).ok().and_then(|z| geom.zone(z)) else {
                return Err(Error::Invalid("grow: zone"));
            };
            *zi = ZoneInfo {
                state: if zg.meta {
                    ZoneState::Meta
                } else {
                    ZoneState::Empty
                },
                ..ZoneInfo::default()
            };
            if new.tally(&zg, zi) {
                free = free.saturating_add(1);
            }
        }
        for (d, s) in devs.iter_mut().zip(self.dev.iter()) {
            *d = *s;
        }
        let slot = devs
            .get_mut(n)
            .ok_or(Error::Invalid("grow: storage size"))?;
        *slot = new;
        self.free_zones = self.free_zones.saturating_add(free);
        self.fenced |= dev_bit(n);
        let g = core::mem::replace(&mut self.geom, geom);
        self.slow = slow;
        let z = core::mem::replace(&mut self.zones, zones);
        let d = core::mem::replace(&mut self.dev, devs);
        Ok((g.into_devices(), z, d))
    }

    /// Members whose zones take no blocks yet ([`Self::grow`]), bit per
    /// member.
    pub fn fenced(&self) -> u64 {
        self.fenced
    }

    /// Lifts the fence of every member added by [`Self::grow`].
    pub fn unfence(&mut self) {
        self.fenced = 0;
    }

    /// Members (bit per member) that take no new blocks because their data
    /// is moved elsewhere (`Pool::evacuate`): their open data zones are
    /// closed (so that GC can collect them), and their free zones no longer
    /// count as free space ([`Self::usable_free_zones`]). 0 ends it.
    pub fn set_evacuating(&mut self, members: u64) {
        self.evacuating = members;
        self.close_open_zones(members);
    }

    /// Closes the open data zones of `members` (bit per member): they
    /// take no new blocks.
    fn close_open_zones(&mut self, members: u64) {
        for d in 0..self.geom.nr_devices() {
            if members & dev_bit(usize::from(d)) == 0 {
                continue;
            }
            for s in 0..NR_STREAMS {
                if let Some(z) = Stream::from_index(s).and_then(|s| self.open_zone(s, d)) {
                    let _ = self.close(z);
                }
            }
        }
    }

    /// Restricts the next allocations to `members` (bit per member; 0: any
    /// member): a migrating volume's writes and copies. The caller sets it
    /// around its allocations and clears it after.
    pub fn set_only(&mut self, members: u64) {
        self.only = members;
    }

    /// The next allocation continues in member `d`'s open zone of its
    /// stream if that zone can take it (ahead of the member with the most
    /// free zones, within the stream's tier): a sequential write's next
    /// piece stays contiguous with the one before, so a 2 MiB range of the
    /// volume maps to one run of the pool (`map`'s run entries). For the
    /// next allocation only.
    pub fn set_next_on(&mut self, d: u16) {
        self.next_on = d;
    }

    /// Marks the members of `members` (bit per member) as gone: their
    /// device was removed. Like an evacuated member they take no new
    /// blocks and their free zones stop counting as free space; in addition
    /// nothing is planned on their zones any more (no reset, no finish, no
    /// GC victim: every such I/O would fail). Their blocks stay mapped (a
    /// read of one fails). Cumulative: a member does not come back while
    /// the pool runs.
    pub fn set_lost(&mut self, members: u64) {
        self.lost |= members;
        self.close_open_zones(members);
    }

    /// Sets the members left out of the metadata layout
    /// ([`PoolGeometry::set_removed`]): removed from the pool, or (recovery)
    /// removed when the checkpoint being read was written.
    pub fn set_layout_removed(&mut self, removed: u64) -> Result<()> {
        self.geom.set_removed(removed)
    }

    /// The members set by [`Self::set_lost`].
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Whether zone `z` lies on a lost member ([`Self::set_lost`]).
    pub fn zone_lost(&self, z: u32) -> bool {
        self.lost != 0
            && self
                .geom
                .zone_dev(z)
                .is_some_and(|(d, _)| self.lost & dev_bit(usize::from(d)) != 0)
    }

    /// The members set by [`Self::set_evacuating`].
    pub fn evacuating(&self) -> u64 {
        self.evacuating
    }

    /// Empty data zones that can take blocks: those of members neither
    /// fenced, evacuated nor lost. GC's urgency and the writers' pacing
    /// follow this count.
    pub fn usable_free_zones(&self) -> u32 {
        let excluded = self.fenced | self.evacuating | self.lost;
        if excluded == 0 {
            return self.free_zones;
        }
        let held: u32 = self
            .dev
            .iter()
            .enumerate()
            .filter(|(d, _)| excluded & dev_bit(*d) != 0)
            .map(|(_, s)| s.free)
            .sum();
        self.free_zones.saturating_sub(held)
    }

    /// [`Self::usable_free_zones`] of the members of `mask` (bit per
    /// member).
    pub fn usable_free_zones_in(&self, mask: u64) -> u32 {
        let excluded = self.fenced | self.evacuating | self.lost;
        self.dev
            .iter()
            .enumerate()
            .filter(|(d, _)| mask & !excluded & dev_bit(*d) != 0)
            .map(|(_, s)| s.free)
            .fold(0u32, |a, f| a.saturating_add(f))
    }
}
