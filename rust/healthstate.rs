// SPDX-License-Identifier: GPL-2.0
//! The health of a pool and of its members: the states `status` and
//! `members` show and the events tell (`health.rs` computes and reports
//! them), and the state an active pool keeps for that.

use core::sync::atomic::AtomicBool;
use kernel::{new_mutex, prelude::*, sync::Mutex};

/// A member's state (`members`: `state=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum MemberState {
    /// No failed I/O since assembly.
    Ok = 0,
    /// Data reads or writes failed on it (counted in `read_errors` and
    /// `write_errors`); it is still used.
    Degraded = 1,
    /// A metadata write or flush failed on it: the pool's metadata cannot
    /// be committed there (the engine fails with it).
    Failed = 2,
    /// The device is gone (removed): nothing is placed on it and no I/O is
    /// planned there any more; reads of its blocks fail.
    Missing = 3,
}

impl MemberState {
    /// The word `members` and the events use.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Missing => "missing",
        }
    }

    /// The state of a stored value (unknown values read as `Ok`).
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Degraded,
            2 => Self::Failed,
            3 => Self::Missing,
            _ => Self::Ok,
        }
    }
}

/// A pool's health (`status`: `health`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum PoolHealth {
    /// Every member is `ok`.
    Ok = 0,
    /// A member is not `ok`; the pool still serves what it can.
    Degraded = 1,
    /// The engine failed (a metadata write failed): nothing more is
    /// committed until the pool is stopped and assembled again.
    Failed = 2,
}

impl PoolHealth {
    /// The word `status` and the events use.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
        }
    }
}

/// What an active pool keeps to report health changes once each.
#[pin_data]
pub(crate) struct Health {
    /// Something changed that may change a state (a failed I/O, a dead
    /// device): the next check reports it. Set from any context.
    pub(crate) dirty: AtomicBool,
    /// Whether checks may still be queued (cleared when the pool stops,
    /// before the queued check is waited for).
    #[pin]
    pub(crate) gate: Mutex<bool>,
    /// The pool health last reported; held across a check, so that checks
    /// report changes once and in order.
    #[pin]
    pub(crate) reported: Mutex<PoolHealth>,
}

impl Health {
    /// A pool just assembled: healthy, checks allowed.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            dirty: AtomicBool::new(false),
            gate <- new_mutex!(true),
            reported <- new_mutex!(PoolHealth::Ok),
        })
    }
}
