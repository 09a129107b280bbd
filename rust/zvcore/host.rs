// SPDX-License-Identifier: GPL-2.0
//! Host build of zvpool's core, for `cargo test`. The kernel module compiles the
//! same files as its `zvcore` module (see `mod.rs`).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

#[path = "mod.rs"]
mod zvcore;
pub use zvcore::*;

/// The heap-backed node store of host builds (the kernel has its own).
#[path = "vecstore.rs"]
pub mod vecstore;
pub use vecstore::VecStore;
