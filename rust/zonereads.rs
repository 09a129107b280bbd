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
//! pool's other traffic. Waiters sleep on one wait queue; the last read of a
//! zone wakes them only when someone waits.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    prelude::*,
    sync::{CondVar, Mutex},
};

/// Reads in flight per zone.
#[pin_data]
pub(crate) struct ZoneReads {
    counts: KVec<AtomicU32>,
    /// Resets waiting (the wake-up is skipped when zero).
    waiting: AtomicU32,
    #[pin]
    lock: Mutex<()>,
    #[pin]
    idle: CondVar,
}

impl ZoneReads {
    /// Counters for `nr_zones` zones.
    pub(crate) fn new(nr_zones: usize) -> Result<impl PinInit<Self, Error>> {
        let mut counts = KVec::with_capacity(nr_zones, GFP_KERNEL)?;
        for _ in 0..nr_zones {
            counts.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        Ok(try_pin_init!(Self {
            counts,
            waiting: AtomicU32::new(0),
            lock <- kernel::new_mutex!(()),
            idle <- kernel::new_condvar!("zvpool::zone_reads"),
        }? Error))
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

    /// The read counted by [`Self::get`] for `first..=last` ended. Process
    /// context (it may take the wait queue's lock).
    pub(crate) fn put(&self, first: u32, last: u32) {
        let mut idle = false;
        for z in first..=last {
            if let Some(c) = self.counts.get(z as usize) {
                idle |= c.fetch_sub(1, Ordering::SeqCst) == 1;
            }
        }
        // SeqCst with `wait_idle`: either the waiter sees the count at zero,
        // or this sees the waiter and wakes it under the lock it sleeps with.
        if idle && self.waiting.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock();
            self.idle.notify_all();
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
        let mut g = self.lock.lock();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while c.load(Ordering::SeqCst) > 0 {
            self.idle.wait(&mut g);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
