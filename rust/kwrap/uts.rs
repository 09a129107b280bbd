// SPDX-License-Identifier: GPL-2.0
//! The running kernel's identity and the machine's size.

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

/// The machine's memory in bytes (what defaults such as the table memory
/// limit are derived from).
pub(crate) fn total_ram_bytes() -> u64 {
    // SAFETY: `zvpool_totalram_bytes` has no preconditions; it reads an
    // atomic counter.
    unsafe { ffi::zvpool_totalram_bytes() }
}
