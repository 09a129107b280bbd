// SPDX-License-Identifier: GPL-2.0
//! Per-request state of a pool volume's request (in the request's PDU),
//! used by the asynchronous data path (`fastpath.rs`).

use crate::kwrap::request::ASYNC_SLOTS;
use crate::zvcore::pool::WritePlan;
use kernel::{
    prelude::*,
    time::{Instant, Monotonic},
};

/// What a request's asynchronous I/O is.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    #[default]
    None,
    Read,
    Write,
}

/// Per-request state of a pool volume's request (in its PDU, reused).
#[derive(Default)]
pub(crate) struct PoolReq {
    pub(crate) kind: Kind,
    pub(crate) vol: u32,
    /// Read: per slot, the run's pool address and blocks (0: no bio).
    pub(crate) runs: [(u64, u64); ASYNC_SLOTS],
    /// Read: the zones counted per slot (`zonereads.rs`), `nzones` of them.
    pub(crate) zones: [(u32, u32); ASYNC_SLOTS],
    pub(crate) nzones: usize,
    /// Write: the plan (its extent `k` in slot `k`).
    pub(crate) plan: WritePlan,
    /// Write of a mirrored volume: the second copy's plan (its extent `k`
    /// in slot `MAX_PLAN_EXTENTS + k`).
    pub(crate) cplan: Option<WritePlan>,
    /// Per slot: its bios were submitted.
    pub(crate) submitted: [bool; ASYNC_SLOTS],
    /// The first error while submitting.
    pub(crate) err: Option<Error>,
    /// Write held back for GC (`paced.rs`): its pacing ticket and when it
    /// was held.
    pub(crate) pace: Option<(u64, Instant<Monotonic>)>,
    /// Write let go by the pacing (`paced.rs`): served without pacing it
    /// again. Taken by the path that serves it.
    pub(crate) admitted: bool,
    /// Read of a mirrored volume (its failure is not final: the other
    /// copy).
    pub(crate) mirrored: bool,
    /// Read of a mirrored volume that failed on the asynchronous path,
    /// requeued: served the slow way, which reads the other copy of what
    /// the first cannot give. Taken by `read_fast`.
    pub(crate) copy_retry: bool,
    /// Write of a mirrored volume that ended on the asynchronous path
    /// while a checkpoint was written (dropped, `write_end_copies`),
    /// requeued: written again synchronously by a worker (which waits for
    /// the checkpoint), not by the completion work. Taken by
    /// `Volume::write`.
    pub(crate) copy_rewrite: bool,
}

impl PoolReq {
    pub(crate) fn start(&mut self, kind: Kind, vol: u32) {
        *self = PoolReq {
            kind,
            vol,
            ..PoolReq::default()
        };
    }
}
