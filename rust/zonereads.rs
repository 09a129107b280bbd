// SPDX-License-Identifier: GPL-2.0
//! Reads in flight per zone, which a zone reset waits for.
//!
//! A read is planned under the engine lock and then reads the members
//! without it, so a block it was planned for can be overwritten, its zone
//! emptied and reset while the read is in flight: the read would return
//! another block's data. The read therefore counts itself in every zone it
//! reads from before the engine lock is dropped, and a zone reset (done
//! outside the engine lock by the commit, `commit.rs`) first waits until the
//! zone's count is zero. No new read can be planned into a zone being reset
//! (it holds no valid block), so the wait ends.
//!
//! The count is per zone (one 4-byte atomic per zone: 80 KiB for 20,000
//! zones, kept per member so that a member added online brings its own),
//! so a reset waits only for the reads of its own zone, never for the
//! pool's other traffic. A read's count is dropped by its last lower
//! completion, in any context (hard IRQ included): the waiter sleeps with
//! `wait_var_event` on the zone's counter, which the last read of the zone
//! wakes (`kwrap/varwait.rs`) only when someone waits.

use crate::kwrap::{append::AppendVec, varwait};
use crate::zvcore::geom::{DeviceGeometry, MAX_DEVICES};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

/// Reads in flight per zone.
pub(crate) struct ZoneReads {
    /// Per member, in member order: its first zone id and one counter per
    /// zone (a member added online appends its own).
    members: AppendVec<(u32, KVec<AtomicU32>)>,
    /// Resets waiting (the wake-up is skipped when zero).
    waiting: AtomicU32,
}

impl ZoneReads {
    /// Counters for the zones of members `geoms` (in member order).
    pub(crate) fn new(geoms: &[DeviceGeometry]) -> Result<Self> {
        let zr = Self {
            members: AppendVec::with_capacity(MAX_DEVICES)?,
            waiting: AtomicU32::new(0),
        };
        let mut first = 0u32;
        for g in geoms {
            zr.add_member(Self::counters(g)?, first)?;
            first = first.checked_add(g.nr_zones).ok_or(EINVAL)?;
        }
        Ok(zr)
    }

    /// Zeroed counters for a member of geometry `g` (allocated before
    /// [`Self::add_member`], which does not allocate).
    pub(crate) fn counters(g: &DeviceGeometry) -> Result<KVec<AtomicU32>> {
        let n = g.nr_zones as usize;
        let mut counts = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            counts.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        Ok(counts)
    }

    /// Counts the zones of the next member, whose first zone id is
    /// `first`. Does not allocate.
    pub(crate) fn add_member(&self, counts: KVec<AtomicU32>, first: u32) -> Result {
        self.members.push((first, counts))
    }

    /// The counter of zone `z`, if it is one of a member's.
    fn counter(&self, z: u32) -> Option<&AtomicU32> {
        let (first, counts) = self.members.iter().rev().find(|(f, _)| *f <= z)?;
        counts.get(z.checked_sub(*first)? as usize)
    }

    /// Counts a read in zones `first..=last` (under the engine lock, before
    /// it is dropped). Zones out of range are ignored.
    pub(crate) fn get(&self, first: u32, last: u32) {
        for z in first..=last {
            if let Some(c) = self.counter(z) {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The read counted by [`Self::get`] for `first..=last` ended. Any
    /// context; never sleeps.
    pub(crate) fn put(&self, first: u32, last: u32) {
        for z in first..=last {
            let Some(c) = self.counter(z) else {
                continue;
            };
            // SeqCst with `wait_idle`: either the waiter sees the count at
            // zero, or this sees the waiter and wakes it.
            if c.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiting.load(Ordering::SeqCst) > 0 {
                varwait::wake(c);
            }
        }
    }

    /// Waits until no read counted in zone `z` is in flight. Sleeps; call
    /// without the engine lock.
    pub(crate) fn wait_idle(&self, z: u32) {
        let Some(c) = self.counter(z) else {
            return;
        };
        if c.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        varwait::wait_zero(c);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
