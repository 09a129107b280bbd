// SPDX-License-Identifier: GPL-2.0
//! Device classes and tiering. A member is *fast* (ZNS SSD, conventional)
//! or *slow* (host-managed SMR HDD by default; any member can be set
//! either way: [`Allocator::set_slow`]). With tiering on and members of
//! both classes, user writes are placed on the fast members while they
//! have room, and GC's copies (data that survived its zone: cold) on the
//! slow ones; either spills to the other class when its own is full.
//! `Pool::tier_demoting` keeps GC collecting the fast members' zones so
//! that they keep room for new writes.

use super::super::geom::{DevKind, DeviceGeometry, Stream};
use super::place::dev_bit;
use super::{Allocator, DevState, ZoneInfo};
use core::ops::{Deref, DerefMut};

/// The members of `devs` that are slow by default (SMR), bit per member.
pub(super) fn default_slow(devs: &[DeviceGeometry]) -> u64 {
    devs.iter()
        .enumerate()
        .filter(|(_, g)| g.kind == DevKind::Smr)
        .fold(0, |m, (d, _)| m | dev_bit(d))
}

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    /// The slow members, bit per member.
    pub fn slow(&self) -> u64 {
        self.slow
    }

    /// Sets the slow members (bit per member; bits past the last member
    /// are dropped).
    pub fn set_slow(&mut self, members: u64) {
        let n = self.geom.devices().len();
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.slow = members & all;
    }

    /// The members slow by their device (SMR), bit per member: the class
    /// a member has unless the administrator set another.
    pub fn default_slow_members(&self) -> u64 {
        default_slow(self.geom.devices())
    }

    /// Whether tiering was asked for ([`Self::set_tiering`]).
    pub fn tiering_asked(&self) -> bool {
        self.tiering
    }

    /// Turns tiering on or off.
    pub fn set_tiering(&mut self, on: bool) {
        self.tiering = on;
    }

    /// Whether tiering is in effect: asked for, and members of both
    /// classes take blocks.
    pub fn tiering(&self) -> bool {
        if !self.tiering {
            return false;
        }
        let usable = self.usable_members();
        usable & self.slow != 0 && usable & !self.slow != 0
    }

    /// Members that take new blocks (not fenced, evacuated, lost or
    /// removed), bit per member.
    pub fn usable_members(&self) -> u64 {
        let n = self.geom.devices().len();
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        all & !(self.fenced | self.evacuating | self.lost | self.geom.removed())
    }

    /// Whether an allocation of `stream` goes to member `d` before the
    /// others: with tiering in effect, user writes to the fast members,
    /// GC's copies to the slow ones; metadata nowhere in particular.
    pub(super) fn tier_preferred(&self, stream: Stream, d: usize) -> bool {
        if stream == Stream::Meta || !self.tiering() {
            return false;
        }
        let slow = self.slow & dev_bit(d) != 0;
        if self.copying {
            slow
        } else {
            !slow
        }
    }

    /// Whether an allocation of `stream` may be a zone append: always
    /// without tiering; with tiering, when a member of the stream's class
    /// (`tier_preferred`) that takes blocks supports appends. Appends are
    /// placed among the members that support them only, so a stream whose
    /// class has none (GC's copies to SMR disks) would otherwise keep
    /// landing on the other class while it has room (demotion moved the
    /// cold data from one fast zone to another).
    pub(super) fn tier_appends(&self, stream: Stream) -> bool {
        if stream == Stream::Meta || !self.tiering() {
            return true;
        }
        let class = if self.copying { self.slow } else { !self.slow };
        let members = self.usable_members() & class;
        self.geom
            .devices()
            .iter()
            .enumerate()
            .any(|(d, g)| members & dev_bit(d) != 0 && g.zone_append)
    }

    /// Free and data zones of the fast (`slow` false) or slow members
    /// that take blocks.
    pub fn class_zones(&self, slow: bool) -> (u32, u32) {
        let fast = self.usable_members() & if slow { self.slow } else { !self.slow };
        let mut free = 0u32;
        let mut data = 0u32;
        for (d, (g, s)) in self.geom.devices().iter().zip(self.dev.iter()).enumerate() {
            if fast & dev_bit(d) != 0 {
                free = free.saturating_add(s.free);
                data = data.saturating_add(g.nr_data_zones());
            }
        }
        (free, data)
    }
}
