// SPDX-License-Identifier: GPL-2.0
//! An owned workqueue for background work on the writeback path (GC): the
//! kernel crate of 7.3 can use the system workqueues but cannot allocate one.

use super::ffi;
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, str::CStr, workqueue::Queue};

/// A workqueue allocated with `WQ_UNBOUND | WQ_MEM_RECLAIM` and one active
/// item; destroyed (after draining it) on drop.
///
/// # Invariants
///
/// `wq` was returned by `alloc_workqueue` and is destroyed only by `Drop`.
pub(crate) struct ReclaimQueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: workqueues may be used and destroyed from any thread.
unsafe impl Send for ReclaimQueue {}
// SAFETY: queueing and flushing do their own locking.
unsafe impl Sync for ReclaimQueue {}

impl ReclaimQueue {
    /// Allocates the queue `name`. Process context; sleeps.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; it is copied into the queue.
        let wq = unsafe { ffi::zvpool_alloc_reclaim_workqueue(name.as_char_ptr()) };
        // INVARIANT: allocated just now.
        Ok(Self {
            wq: NonNull::new(wq).ok_or(ENOMEM)?,
        })
    }

    /// The queue, to enqueue work items on.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: the workqueue lives as long as `self` (type invariant).
        unsafe { Queue::from_raw(self.wq.as_ptr()) }
    }

    /// Waits until every item queued so far has run. Sleeps; must not be
    /// called from an item of this queue.
    pub(crate) fn flush(&self) {
        // SAFETY: the workqueue is live (type invariant).
        unsafe { bindings::__flush_workqueue(self.wq.as_ptr()) };
    }
}

impl Drop for ReclaimQueue {
    fn drop(&mut self) {
        // SAFETY: live and destroyed only here (type invariant); it drains
        // pending items first.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}

/// Waits until work item `w` is neither queued nor running (if it was
/// queued before this call; `flush_work`). Sleeps; must not be called from
/// `w` itself.
pub(crate) fn flush_work<T: ?Sized, const ID: u64>(w: &kernel::workqueue::Work<T, ID>) {
    // SAFETY: `w` is a reference to an initialised work item, so the raw
    // `work_struct` it wraps is valid for the call.
    unsafe { bindings::flush_work(kernel::workqueue::Work::raw_get(w)) };
}
