// SPDX-License-Identifier: GPL-2.0
//! zvpool: pools zoned block devices (NVMe ZNS, host-managed SMR) into one
//! aggregated space and carves it into thin-provisioned virtual disks.
//!
//! Layout of the module:
//! - `zvcore`: the pure core (format, allocator, block tables, GC policy,
//!   recovery); no kernel dependency, host-tested with `cargo test`.
//! - `kwrap`: thin safe wrappers over `kernel::bindings` and `helpers.c`; all
//!   `unsafe` code of the module lives there.
//! - the driver logic between them, one concern a file (`config`, ...).

mod commit;
mod config;
mod damage;
mod datapath;
mod fastpath;
mod gc;
mod kwrap;
mod nodes;
mod pool;
mod poolvol;
mod snapshot;
mod volcfg;
mod volume;
mod zonereads;
// The core is shared with the host crate, where its items are public API; the
// module does not use all of them (yet).
#[allow(dead_code, unreachable_pub, unused_imports)]
mod zvcore;

use kernel::prelude::*;

module! {
    type: ZvpoolModule,
    name: "zvpool",
    authors: ["zvpool developers"],
    description: "Thin-provisioned volumes over pooled zoned block devices",
    license: "GPL",
}

#[pin_data(PinnedDrop)]
struct ZvpoolModule {
    #[pin]
    configfs: kernel::configfs::Subsystem<config::Root>,
}

impl kernel::InPlaceModule for ZvpoolModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!(
            "loading (on-disk format v{}, kernel {})\n",
            config::FORMAT_VERSION,
            kwrap::uts::kernel_release()
        );
        try_pin_init!(Self {
            configfs <- config::subsystem(),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for ZvpoolModule {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("unloaded\n");
    }
}
