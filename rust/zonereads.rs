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
//! zones), so a reset waits only for the reads of its own zone, never for the
//! pool's other traffic. A read's count is dropped by its last lower
//! completion, in any context (hard IRQ included): the waiter sleeps with
//! `wait_var_event` on the zone's counter, which the last read of the zone
//! wakes (`kwrap/varwait.rs`) only when someone waits.

use crate::kwrap::varwait;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

/// Reads in flight per zone.
pub(crate) struct ZoneReads {
    counts: KVec<AtomicU32>,
    /// Resets waiting (the wake-up is skipped when zero).
    waiting: AtomicU32,
}

impl ZoneReads {
    /// Counters for `nr_zones` zones.
    pub(crate) fn new(nr_zones: usize) -> Result<Self> {
        let mut counts = KVec::with_capacity(nr_zones, GFP_KERNEL)?;
        for _ in 0..nr_zones {
            counts.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        Ok(Self {
            counts,
            waiting: AtomicU32::new(0),
        })
    }

    /// Counts a read in zones `first..=last` (under the engine lock, before
    /// it is dropped). Zones out of range are ignored.
    pub(crate) fn get(&self, first: u32, last: u32) {
        for z in first..=last {
            if let Some(c) = self.counts.get(z as usize) {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The read counted by [`Self::get`] for `first..=last` ended. Any
    /// context; never sleeps.
    pub(crate) fn put(&self, first: u32, last: u32) {
        for z in first..=last {
            let Some(c) = self.counts.get(z as usize) else {
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
        let Some(c) = self.counts.get(z as usize) else {
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
