// SPDX-License-Identifier: GPL-2.0
//! zvpool's pure core: everything zvpool decides about the media, with no kernel
//! dependency, no allocation of its own and no panics on any input.
//!
//! Rules for every file under this directory:
//! - `core` only; no `alloc`, no `std` (tests may use `std`).
//! - refer to siblings with `super::`, never `crate::` (the module sits at
//!   different depths in the kernel and host crates).
//! - no `unsafe`, no `unwrap`/`expect`/`panic!`, no unchecked indexing or
//!   arithmetic on values read from disk.

pub mod alloc;
pub mod codec;
pub mod crc32c;
pub mod error;
pub mod format;
pub mod gc;
pub mod geom;
pub mod map;
pub mod pacing;
pub mod pool;
pub mod probe;
pub mod qos;
pub mod recovery;
pub mod space;
pub mod sparse;
pub mod verify;
pub mod volid;
