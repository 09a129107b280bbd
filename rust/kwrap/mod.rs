// SPDX-License-Identifier: GPL-2.0
//! zvpool's kernel wrappers: the only place in the module where `unsafe` code
//! lives. Each wrapper is shaped like the upstream Rust block-layer API that is
//! still in flight, so it can be swapped for upstream later.

pub(crate) mod append;
pub(crate) mod bdev;
pub(crate) mod bio;
pub(crate) mod disk;
pub(crate) mod ffi;
pub(crate) mod global;
pub(crate) mod holder;
pub(crate) mod metaio;
pub(crate) mod noio;
pub(crate) mod random;
pub(crate) mod releasable;
pub(crate) mod request;
pub(crate) mod segment;
pub(crate) mod tagset;
pub(crate) mod uevent;
pub(crate) mod uts;
pub(crate) mod varwait;
pub(crate) mod workq;
pub(crate) mod zone;
