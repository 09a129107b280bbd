// SPDX-License-Identifier: GPL-2.0
//! Declarations of the functions in `helpers.c` (linked into the same module).

use kernel::ffi::c_char;

unsafe extern "C" {
    /// Returns the running kernel's release string (`init_utsname()->release`).
    ///
    /// # Safety
    ///
    /// No preconditions; the returned pointer is a NUL-terminated string that
    /// lives as long as the kernel.
    pub(crate) fn zvpool_kernel_release() -> *const c_char;
}
