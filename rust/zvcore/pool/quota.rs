// SPDX-License-Identifier: GPL-2.0
//! Space rules of a shared pool (the tenants issue): a **quota** caps what a
//! volume maps, a **reservation** keeps space for a volume that no other
//! volume may take, and the **pool reserve** keeps a share of the pool out
//! of every volume's reach (for GC and for the administrator).
//!
//! What a volume uses is what its table maps ([`BlockTable::mapped`], kept
//! by the table in O(1)): the data it refers to, shared with its snapshots
//! or not, never what only its snapshots hold — ZFS's `refquota` and
//! `refreservation`. A write is checked before it is planned, by the
//! blocks it would newly map in its range (overwrites of mapped blocks never
//! grow a volume); blocks planned and not yet mapped count as *pending* for
//! their volume's quota and reservation, so writes in flight cannot pass a
//! limit together (the pool's live count has them from planning on).
//!
//! A write of volume `w` that newly maps `g` blocks is refused with
//! - [`Error::Quota`] if `mapped(w) + pending(w) + g > quota(w)`;
//! - [`Error::Reserved`] if `live + g + held(others) > limit` (`live`
//!   counts the writes in flight),
//!   where `held(v) = max(0, reserve(v) - mapped(v) - pending(v))` is the
//!   unused part of a reservation and `limit` is the capacity less the
//!   pool reserve and the zones GC and the open streams need
//!   ([`Pool::rules_limit`]).
//!
//! Both are refusals for that volume only: the pool has space, so they
//! never wait for GC, and they are not pool-full events.
//!
//! A volume's rules are metadata like its size: a change is a journal
//! record (`VolumeReserve`) and full checkpoints carry them all (section
//! `format::rules::RULES`). The first one sets the ro-compat feature
//! `RO_COMPAT_RESERVATION` (a module that does not know it assembles the
//! pool read-only: writing without the rules could take reserved space).
//! The pool reserve is a setting of the running pool, not metadata.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::rules::RuleRecord;
use super::super::format::{Record, Superblock, RO_COMPAT_RESERVATION};
use super::super::geom::{DeviceGeometry, NR_STREAMS};
use super::super::map::NodeStore;
use super::{Pool, VolEntry, WritePlan};

// Only named by the links in the docs.
#[cfg(doc)]
use super::super::map::BlockTable;

/// Highest pool reserve, in percent of the capacity.
pub const POOL_RESERVE_MAX_PCT: u64 = 50;

/// The space rules of one volume, in blocks (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceRules {
    /// Most blocks the volume may map.
    pub quota: u64,
    /// Blocks kept for the volume: the unused part is held from others.
    pub reserve: u64,
}

/// A pool's space as its users see it, in blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceReport {
    /// Data capacity of the members.
    pub capacity: u64,
    /// Live blocks (mapped by some volume or snapshot).
    pub live: u64,
    /// Unused parts of the volumes' reservations.
    pub reserved: u64,
    /// Held back from every volume: the pool reserve, and the zones GC and
    /// the open streams need.
    pub held_back: u64,
    /// What a volume without a reservation may still newly map.
    pub available: u64,
}

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
    /// Sets the quota and reservation of volume `vol` and queues the
    /// journal record (commit to make it durable). Refused for a snapshot
    /// (`ReadOnly`), a reservation above the volume's size (`Invalid`), a
    /// reservation the pool cannot hold now (`NoSpace`: what is live and
    /// held already leaves too little), and when the record queue is full
    /// (`Busy`: commit first).
    pub fn set_space_rules(&mut self, vol: u32, r: SpaceRules) -> Result<()> {
        self.live()?;
        let i = self.vol_index(vol)?;
        let v = self.vols.get(i).copied().ok_or(Error::NotFound)?;
        let t = v.table.ok_or(Error::NotFound)?;
        if v.read_only() && (r.quota > 0 || r.reserve > 0) {
            return Err(Error::ReadOnly);
        }
        if r.reserve > t.size() {
            return Err(Error::Invalid("reservation above the volume size"));
        }
        self.rsv_refresh();
        let before = self.held(i);
        let after = held_of(&VolEntry {
            reserve: r.reserve,
            ..v
        });
        if after > before && !self.fits(self.rsv_total.saturating_sub(before).saturating_add(after))
        {
            return Err(Error::NoSpace);
        }
        if r == (SpaceRules {
            quota: v.quota,
            reserve: v.reserve,
        }) {
            return Ok(());
        }
        self.reserve(1)?;
        self.apply_space_rules(i, r);
        self.push_reserved(Record::VolumeReserve {
            vol,
            reserve: r.reserve,
            quota: r.quota,
        });
        Ok(())
    }

    /// Sets the rules of the volume in slot `i` (a change, its record, or
    /// the checkpoint's section). The totals are recounted at their next
    /// use.
    pub(in super::super) fn apply_space_rules(&mut self, i: usize, r: SpaceRules) {
        if let Some(e) = self.vols.get_mut(i) {
            e.quota = r.quota;
            e.reserve = r.reserve;
        }
        if r.quota > 0 || r.reserve > 0 {
            self.rules = true;
            if self.sb.ro_compat & RO_COMPAT_RESERVATION == 0 {
                self.sb.ro_compat |= RO_COMPAT_RESERVATION;
                self.sb.generation = self.sb.generation.saturating_add(1);
                self.sb_dirty = true;
            }
        }
        self.rsv_dirty = true;
    }

    /// The space rules of volume `vol`.
    pub fn space_rules(&self, vol: u32) -> Option<SpaceRules> {
        self.volume(vol).map(|v| SpaceRules {
            quota: v.quota,
            reserve: v.reserve,
        })
    }

    /// Sets the pool reserve (percent of the capacity no volume may take;
    /// at most [`POOL_RESERVE_MAX_PCT`]). It applies to later writes: what
    /// is mapped already stays.
    pub fn set_pool_reserve_pct(&mut self, pct: u64) -> Result<()> {
        if pct > POOL_RESERVE_MAX_PCT {
            return Err(Error::Invalid("pool reserve above 50 %"));
        }
        self.reserve_pct = pct;
        Ok(())
    }

    /// The pool reserve in percent.
    pub fn pool_reserve_pct(&self) -> u64 {
        self.reserve_pct
    }

    /// The pool's space as its users see it. O(volumes) after a volume
    /// operation, O(1) otherwise.
    pub fn space_report(&self) -> SpaceReport {
        let capacity = self.alloc.geom().data_capacity_blocks();
        let live = self.alloc.used_blocks();
        let reserved = if self.rsv_dirty {
            self.vols.iter().map(held_of).fold(0, u64::saturating_add)
        } else {
            self.rsv_total
        };
        let limit = self.rules_limit();
        SpaceReport {
            capacity,
            live,
            reserved,
            held_back: capacity.saturating_sub(limit),
            available: limit.saturating_sub(live).saturating_sub(reserved),
        }
    }

    /// Whether writes are checked against space rules at all (a quota or
    /// reservation set, or a pool reserve): one test on the write path
    /// otherwise.
    pub(super) fn rules_on(&self) -> bool {
        self.rules || self.reserve_pct > 0
    }

    /// The live blocks the rules let the pool reach: the capacity less the
    /// pool reserve, GC's reserve zones (of the largest zone) and one open
    /// zone per stream on each member not removed (of that member's zone
    /// size): space no write can count on.
    pub(super) fn rules_limit(&self) -> u64 {
        let g = self.alloc.geom();
        let cap = g.data_capacity_blocks();
        let pct = cap / 100 * self.reserve_pct + cap % 100 * self.reserve_pct / 100;
        let members = || g.layout_members().filter_map(|d| g.device(d));
        let zone = members().map(|d| d.zone_cap_blocks).max().unwrap_or(0);
        let open = members().fold(0u64, |acc, d| {
            acc.saturating_add((NR_STREAMS as u64).saturating_mul(d.zone_cap_blocks))
        });
        cap.saturating_sub(pct)
            .saturating_sub(u64::from(self.cfg.alloc.gc_reserve).saturating_mul(zone))
            .saturating_sub(open)
    }

    /// Checks a write of `n` blocks from `lba` of the volume in slot `i`
    /// against the rules ([`Error::Quota`], [`Error::Reserved`]).
    pub(super) fn space_admit(&mut self, i: usize, lba: u64, n: u64) -> Result<()> {
        let grow = self.unmapped_in(i, lba, n);
        if grow == 0 {
            return Ok(());
        }
        self.rsv_refresh();
        let Some(v) = self.vols.get(i).copied() else {
            return Ok(());
        };
        let mapped = v.table.map(|t| t.mapped()).unwrap_or(0);
        if v.quota > 0 && mapped.saturating_add(v.pending).saturating_add(grow) > v.quota {
            return Err(Error::Quota);
        }
        // The volume's own reservation is its to use.
        let others = self.rsv_total.saturating_sub(held_of(&v));
        if !self.fits(grow.saturating_add(others)) {
            return Err(Error::Reserved);
        }
        Ok(())
    }

    /// Whether `more` blocks (growth, reservations held) fit beside what is
    /// live within [`Self::rules_limit`]. Live blocks include those of the
    /// writes in flight: the allocator counts a block from planning on.
    fn fits(&self, more: u64) -> bool {
        self.alloc.used_blocks().saturating_add(more) <= self.rules_limit()
    }

    /// Counts the blocks the write planned in `plan_blocks` blocks from
    /// `lba` of the volume in slot `i` will newly map as pending; returns
    /// them (the plan's `grow`, given back by [`Self::unpend`]).
    pub(super) fn pend(&mut self, i: usize, lba: u64, plan_blocks: u64) -> u64 {
        let grow = self.unmapped_in(i, lba, plan_blocks);
        let before = self.held(i);
        if let Some(v) = self.vols.get_mut(i) {
            v.pending = v.pending.saturating_add(grow);
        }
        self.retally(i, before);
        grow
    }

    /// What the end of `plan` must settle for the space rules: the slot of
    /// its volume and that volume's [`Self::held`] before its mapping
    /// changes. `None` (nothing to look up on the completion path) when
    /// the plan has no pending blocks and no volume has rules.
    pub(super) fn rules_track(&self, plan: &WritePlan) -> Option<(usize, u64)> {
        if plan.grow == 0 && !self.rules {
            return None;
        }
        let i = self.vol_index(plan.vol).ok()?;
        Some((i, self.held(i)))
    }

    /// The pending blocks of `plan` are mapped or given up (`track`: what
    /// [`Self::rules_track`] returned before).
    pub(super) fn unpend(&mut self, plan: &WritePlan, track: Option<(usize, u64)>) {
        let Some((i, before)) = track else {
            return;
        };
        if let Some(v) = self.vols.get_mut(i) {
            v.pending = v.pending.saturating_sub(plan.grow);
        }
        self.retally(i, before);
    }

    /// The unused reservation of the volume in slot `i`.
    pub(super) fn held(&self, i: usize) -> u64 {
        self.vols.get(i).map(held_of).unwrap_or(0)
    }

    /// The mapping of the volume in slot `i` changed: `before` was its
    /// [`Self::held`] before.
    pub(super) fn retally(&mut self, i: usize, before: u64) {
        let after = self.held(i);
        self.rsv_total = self.rsv_total.saturating_sub(before).saturating_add(after);
    }

    /// Recounts the reservations after volume operations (deletes, resizes,
    /// rollbacks change what volumes map or drop their rules).
    fn rsv_refresh(&mut self) {
        if !self.rsv_dirty {
            return;
        }
        let (total, any) = self.vols.iter().fold((0u64, false), |(t, a), v| {
            (
                t.saturating_add(held_of(v)),
                a || (v.table.is_some() && (v.quota > 0 || v.reserve > 0)),
            )
        });
        self.rsv_total = total;
        self.rules = any;
        self.rsv_dirty = false;
    }

    /// Blocks in `[lba, lba + n)` the volume in slot `i` does not map.
    /// O(runs in the range).
    fn unmapped_in(&self, i: usize, lba: u64, n: u64) -> u64 {
        let Some(t) = self.vols.get(i).and_then(|v| v.table) else {
            return 0;
        };
        let end = lba.saturating_add(n).min(t.size());
        let (mut l, mut free) = (lba, 0u64);
        while l < end {
            let (addr, len) = t.lookup_run(&self.nodes, l, end - l);
            if len == 0 {
                break;
            }
            if addr.is_none() {
                free = free.saturating_add(len);
            }
            l = l.saturating_add(len);
        }
        free
    }
}

/// Volumes with rules in `vols`, from slot `from` on: the next one's slot
/// and record (checkpoints).
pub(super) fn next_rules(vols: &[VolEntry], from: usize) -> Option<(usize, RuleRecord)> {
    vols.iter()
        .enumerate()
        .skip(from)
        .find(|(_, v)| v.table.is_some() && (v.quota > 0 || v.reserve > 0))
        .map(|(i, v)| {
            (
                i,
                RuleRecord {
                    vol: v.id,
                    reserve: v.reserve,
                    quota: v.quota,
                },
            )
        })
}

/// The unused part of `v`'s reservation.
fn held_of(v: &VolEntry) -> u64 {
    match v.table {
        Some(t) if v.reserve > 0 => v
            .reserve
            .saturating_sub(t.mapped().saturating_add(v.pending)),
        _ => 0,
    }
}
