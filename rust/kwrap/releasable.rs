// SPDX-License-Identifier: GPL-2.0
//! A value shared lock-free that its owner can take away later: readers
//! borrow it through counted guards ([`Releasable::get`]), and
//! [`Releasable::take`] waits until no guard is left before it hands the
//! value out (e.g. a removed member's block device, closed while the
//! pool's lock-free member table stays). A short-lived reference count,
//! not RCU: a guard may sleep (it is held across a bio's submission).
//!
//! Guards must be short-lived: `take` waits for the last one to drop.

use core::cell::UnsafeCell;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use kernel::time::{delay::fsleep, Delta};

/// A value that readers borrow through [`Guard`]s and that
/// [`Releasable::take`] takes away once none is left.
///
/// # Invariants
///
/// `value` is written only by [`Releasable::take`], after `closed` was set
/// and while `users` is 0; a [`Guard`] exists only while `users` counts it
/// and it saw `closed` clear after counting itself.
pub(crate) struct Releasable<T> {
    value: UnsafeCell<Option<T>>,
    users: AtomicUsize,
    closed: AtomicBool,
}

// SAFETY: shared access to `value` goes through guards, which hand out `&T`
// only (needs `T: Sync`); the one write (`take`) moves the value out to
// another thread (needs `T: Send`) when no guard exists (type invariant).
unsafe impl<T: Send + Sync> Sync for Releasable<T> {}
// SAFETY: the value moves with the container (`T: Send`).
unsafe impl<T: Send> Send for Releasable<T> {}

/// A borrow of a [`Releasable`]'s value; `take` waits for it to drop.
pub(crate) struct Guard<'a, T> {
    owner: &'a Releasable<T>,
    value: &'a T,
}

impl<T> Releasable<T> {
    /// Holds `value` (`None`: nothing to borrow).
    pub(crate) fn new(value: Option<T>) -> Self {
        Self {
            value: UnsafeCell::new(value),
            users: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Borrows the value: `None` once it was taken (or there is none).
    pub(crate) fn get(&self) -> Option<Guard<'_, T>> {
        // Counted first, then `closed` checked (both sequentially
        // consistent, paired with `take`): either `take` sees this guard
        // and waits, or this sees `closed` and stays away.
        self.users.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.users.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        // SAFETY: counted while `closed` is clear: `take` does not write
        // `value` until this guard is gone (type invariant).
        let value = unsafe { (*self.value.get()).as_ref() };
        match value {
            Some(value) => Some(Guard { owner: self, value }),
            None => {
                self.users.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    /// Takes the value away once no guard is left; later [`Self::get`]s
    /// return `None`. Sleeps (process context only) while guards remain.
    /// `None` if it was taken already (or there was none).
    pub(crate) fn take(&self) -> Option<T> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        while self.users.load(Ordering::SeqCst) != 0 {
            fsleep(Delta::from_millis(1));
        }
        // SAFETY: `closed` is set and no guard exists: a new `get` sees
        // `closed` after counting itself and does not touch `value`; this
        // is the only `take` past the swap above (type invariant).
        unsafe { (*self.value.get()).take() }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.owner.users.fetch_sub(1, Ordering::SeqCst);
    }
}
