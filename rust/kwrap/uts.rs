// SPDX-License-Identifier: GPL-2.0
//! The running kernel's identity.

use super::ffi;
use kernel::str::{CStr, CStrExt};

/// The running kernel's release string (e.g. `7.3.4-zvpool`).
pub(crate) fn kernel_release() -> &'static CStr {
    // SAFETY: `zvpool_kernel_release` has no preconditions.
    let p = unsafe { ffi::zvpool_kernel_release() };
    // SAFETY: `p` points to the kernel's `init_uts_ns.name.release`, a
    // NUL-terminated array that is never freed and only changed by
    // `sethostname`-like calls that do not touch `release`.
    unsafe { CStr::from_char_ptr(p) }
}
