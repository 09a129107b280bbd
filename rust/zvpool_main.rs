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

// Every `unsafe` block of the module lives in `kwrap`; the lint keeps it so.
#[deny(unsafe_code)]
mod commit;
#[deny(unsafe_code)]
mod commitbuf;
#[deny(unsafe_code)]
mod config;
#[deny(unsafe_code)]
mod control;
#[deny(unsafe_code)]
mod damage;
#[deny(unsafe_code)]
mod datapath;
#[deny(unsafe_code)]
mod degraded;
#[deny(unsafe_code)]
mod engine;
#[deny(unsafe_code)]
mod fastpath;
#[deny(unsafe_code)]
mod gc;
#[deny(unsafe_code)]
mod gcstate;
#[deny(unsafe_code)]
mod health;
#[deny(unsafe_code)]
mod healthstate;
mod kwrap;
#[deny(unsafe_code)]
mod lowerio;
#[deny(unsafe_code)]
mod members;
#[deny(unsafe_code)]
mod membership;
#[deny(unsafe_code)]
mod nodes;
#[deny(unsafe_code)]
mod paced;
#[deny(unsafe_code)]
mod placement;
#[deny(unsafe_code)]
mod pool;
#[deny(unsafe_code)]
mod poolreq;
#[deny(unsafe_code)]
mod poolvol;
#[deny(unsafe_code)]
mod qos;
#[deny(unsafe_code)]
mod registry;
#[deny(unsafe_code)]
mod scrub;
#[deny(unsafe_code)]
mod scrubstate;
#[deny(unsafe_code)]
mod snapshot;
#[deny(unsafe_code)]
mod spacerules;
#[deny(unsafe_code)]
mod status;
#[deny(unsafe_code)]
mod volcfg;
#[deny(unsafe_code)]
mod volinfo;
#[deny(unsafe_code)]
mod volume;
#[deny(unsafe_code)]
mod waits;
#[deny(unsafe_code)]
mod zonereads;
// The core is shared with the host crate, where its items are public API; the
// module does not use all of them (yet).
#[allow(dead_code, unreachable_pub, unused_imports)]
#[deny(unsafe_code)]
mod zvcore;

use kernel::prelude::*;

module! {
    type: ZvpoolModule,
    name: "zvpool",
    authors: ["zvpool developers"],
    description: "Thin-provisioned volumes over pooled zoned block devices",
    license: "GPL",
    params: {
        fastpath: u32 {
            default: 1,
            description: "Requests served in queue_rq without a worker: 0 none, 1 reads (default), 2 reads and plain writes",
        },
        pace_light: u32 {
            default: 1,
            description: "1 (default): writes of a volume under half its fair share of the recent writes take no GC pacing ticket; 0: every write is paced",
        },
        fail_node_alloc: u32 {
            default: 0,
            description: "Test hook: one in N block-table node allocations of an active pool fails as if out of memory (0: never)",
        },
        ckpt_interval: u32 {
            default: 0,
            description: "Test hook: journal blocks between checkpoints of every pool assembled (0: the pool's own interval)",
        },
        ckpt_step_delay_ms: u32 {
            default: 0,
            description: "Test hook: milliseconds a checkpoint waits after each step but the last and after each journal commit between steps, with the engine lock free (0: none)",
        },
        ckpt_at_assembly: u32 {
            default: 0,
            description: "Test hook: 1 makes the first commit after every assembly a full checkpoint, as after a torn journal (0: only then)",
        },
    },
}

/// Which requests take the asynchronous fast path (module parameter
/// `fastpath`, set at load time): 0 none, 1 reads, 2 reads and plain
/// writes. Writes default to the worker: in the same boot, 4 KiB random
/// writes at 4 x QD32 ran about 15 % slower through the fast path and its
/// completion work (Documentation/benchmarks-history.md, "Engine rerun").
pub(crate) fn fastpath_level() -> u32 {
    module_parameters::fastpath.value()
}

/// Whether light volumes' writes are exempt from GC pacing (module
/// parameter `pace_light`, set at load time; `gc.rs` `throttle`).
pub(crate) fn pace_light() -> bool {
    module_parameters::pace_light.value() != 0
}

/// The test hook `fail_node_alloc` (module parameter, set at load time):
/// one in N block-table node allocations of an active pool (chosen
/// pseudo-randomly) fails as if the kernel were out of memory; 0 (the
/// default) never. Used by
/// selftests/zvpool/nomem.sh to show that such failures delay requests
/// (requeued) and never fail them.
pub(crate) fn fail_node_alloc() -> u32 {
    module_parameters::fail_node_alloc.value()
}

/// The test hook `ckpt_interval` (module parameter, set at load time):
/// journal blocks between checkpoints of the pools assembled, instead of
/// their own interval (0, the default).
pub(crate) fn ckpt_interval() -> u32 {
    module_parameters::ckpt_interval.value()
}

/// The test hook `ckpt_at_assembly` (module parameter, set at load time):
/// the first commit after every assembly is a full checkpoint, as when the
/// journal cannot go on where it ended (`zvcore::recovery`, resume.rs).
/// selftests/zvpool/damage.sh builds its damaged pools with it: their
/// checkpoints come from the assemblies of its workload.
pub(crate) fn ckpt_at_assembly() -> bool {
    module_parameters::ckpt_at_assembly.value() != 0
}

/// The test hook `ckpt_step_delay_ms` (module parameter, set at load
/// time): a checkpoint written in steps waits this long after each step but
/// the last and after each journal commit between its steps, holding the
/// commit lock only. selftests/zvpool/ckpt_steps.sh uses it to show that
/// reads, writes, flushes and status go on meanwhile.
pub(crate) fn ckpt_step_delay_ms() -> u32 {
    module_parameters::ckpt_step_delay_ms.value()
}

// Fields drop in order: the control device and configfs (which stops the
// pools) go before the registry they use is emptied.
#[pin_data(PinnedDrop)]
struct ZvpoolModule {
    #[pin]
    control: kwrap::uevent::EventDevice<control::Control>,
    #[pin]
    configfs: kernel::configfs::Subsystem<config::Root>,
    registry: registry::Teardown,
}

impl kernel::InPlaceModule for ZvpoolModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!(
            "loading (on-disk format v{}, kernel {})\n",
            config::FORMAT_VERSION,
            kwrap::uts::kernel_release()
        );
        kwrap::global::init_registry();
        try_pin_init!(Self {
            control <- kwrap::uevent::EventDevice::register(control::options()),
            configfs <- config::subsystem(),
            registry: registry::Teardown,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for ZvpoolModule {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("unloaded\n");
    }
}
