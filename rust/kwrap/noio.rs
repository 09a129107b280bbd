// SPDX-License-Identifier: GPL-2.0
//! Scoped `GFP_NOIO`: the kernel crate has no `GFP_NOIO` flag, and the kernel
//! recommends the scope API anyway (Documentation/core-api/gfp_mask-from-fs-io.rst).

use super::ffi;
use core::marker::PhantomData;

/// While alive, every allocation of the current task behaves as `GFP_NOIO`:
/// memory reclaim will not issue I/O (which could wait on zvpool itself).
///
/// # Invariants
///
/// `flags` is the value returned by `memalloc_noio_save` on this task; the
/// guard is not `Send`, so it is restored on the same task.
pub(crate) struct NoIo {
    flags: u32,
    _not_send: PhantomData<*mut ()>,
}

impl NoIo {
    /// Enters the scope.
    pub(crate) fn enter() -> Self {
        // SAFETY: paired with the restore in `Drop` on the same task (the
        // guard is `!Send`); nested guards drop in LIFO order by scoping.
        let flags = unsafe { ffi::zvpool_memalloc_noio_save() };
        Self {
            flags,
            _not_send: PhantomData,
        }
    }
}

impl Drop for NoIo {
    fn drop(&mut self) {
        // SAFETY: `flags` came from the matching save on this task (type invariant).
        unsafe { ffi::zvpool_memalloc_noio_restore(self.flags) };
    }
}

/// Runs `f` in an implicit `GFP_NOIO` allocation scope (process context).
pub(crate) fn noio<R>(f: impl FnOnce() -> R) -> R {
    let _scope = NoIo::enter();
    f()
}
