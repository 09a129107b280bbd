// SPDX-License-Identifier: GPL-2.0
//! Random bytes from the kernel's CRNG (for pool and device UUIDs).

use kernel::bindings;

/// Fills `buf` with random bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}
