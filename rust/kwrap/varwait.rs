// SPDX-License-Identifier: GPL-2.0
//! Waiting for a counter to drop to zero (or to change), woken from any
//! context: the kernel's `wait_var_event` / `wake_up_var` on an
//! [`AtomicU32`] (which has the layout of an `atomic_t`).

use super::ffi;
use core::sync::atomic::AtomicU32;

fn as_atomic_t(v: &AtomicU32) -> *mut kernel::bindings::atomic_t {
    // `AtomicU32` has the size and alignment of `u32`, as `atomic_t`
    // (`{ int counter; }`) does.
    const {
        assert!(
            core::mem::size_of::<AtomicU32>() == core::mem::size_of::<kernel::bindings::atomic_t>()
        )
    };
    v.as_ptr().cast()
}

/// Sleeps (uninterruptibly) until `v` reads zero. Process context.
pub(crate) fn wait_zero(v: &AtomicU32) {
    // SAFETY: `v` is a live 32-bit atomic for the call; the kernel reads
    // it with `atomic_read`, compatible with Rust's atomic accesses.
    unsafe { ffi::zvpool_wait_var_zero(as_atomic_t(v)) };
}

/// Sleeps (uninterruptibly) until `v` reads other than `old`, or for `ms`
/// milliseconds at most. Process context.
pub(crate) fn wait_change(v: &AtomicU32, old: u32, ms: u32) {
    // SAFETY: `v` is a live 32-bit atomic for the call; the kernel reads
    // it with `atomic_read`, compatible with Rust's atomic accesses. The
    // value is passed as the `int` the kernel compares it with.
    unsafe { ffi::zvpool_wait_var_change(as_atomic_t(v), old as i32, ms) };
}

/// Wakes the waiters of `v` (after the change that may satisfy them, with
/// a `SeqCst` operation or fence in between). Any context, never sleeps.
pub(crate) fn wake(v: &AtomicU32) {
    // SAFETY: the address is only hashed to find a wait queue.
    unsafe { ffi::zvpool_wake_var(as_atomic_t(v)) };
}
