// SPDX-License-Identifier: GPL-2.0
//! The health of a pool and of its members: the states `status` and
//! `members` show and the events tell (`health.rs` computes and reports
//! them), and the state an active pool keeps for that.

use crate::zvcore::space::{SpaceLevel, Thresholds};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
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
    /// Removed from the pool (`pool remove`): no longer part of it.
    Removed = 4,
}

impl MemberState {
    /// The word `members` and the events use.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Missing => "missing",
            Self::Removed => "removed",
        }
    }

    /// The state of a stored value (unknown values read as `Ok`).
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Degraded,
            2 => Self::Failed,
            3 => Self::Missing,
            4 => Self::Removed,
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

/// What was told last (`check_health`).
pub(crate) struct Told {
    pub(crate) health: PoolHealth,
    pub(crate) space: SpaceLevel,
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
    /// The pool health and space level last reported; held across a
    /// check, so that checks report changes once and in order.
    #[pin]
    pub(crate) reported: Mutex<Told>,
    /// Space thresholds in percent (`space_low_pct`, `space_critical_pct`;
    /// 0: off).
    pub(crate) space_low: AtomicU64,
    pub(crate) space_crit: AtomicU64,
    /// Live blocks and capacity as of the last engine call that changed
    /// them (`note_levels`), and the space code they gave
    /// (`Thresholds::code`): a new code calls for a check.
    pub(crate) used_blocks: AtomicU64,
    pub(crate) cap_blocks: AtomicU64,
    pub(crate) space_code: AtomicU8,
    /// The use (percent) when `full` was told, or `NOT_FULL`.
    pub(crate) space_full_at: AtomicU64,
    /// A write was refused for want of space since the last check.
    pub(crate) space_refused: AtomicBool,
    /// Writes refused by a volume's quota, and by reservations or the pool
    /// reserve (`spacerules.rs`).
    pub(crate) quota_refused: AtomicU64,
    pub(crate) reserve_refused: AtomicU64,
    /// Blocks of mirrored volumes read from their second copy because the
    /// first could not be read (`ActivePool::read`).
    pub(crate) copy_reads: AtomicU64,
    /// A check told the engine that a member is missing, which starts
    /// the walks that rebuild mirrored copies (`Pool::member_lost`): GC
    /// is to be kicked by whoever holds the pool's reference next (the
    /// check itself may run without one, from a `status` read).
    pub(crate) walk_kick: AtomicBool,
    /// The volume (id + 1; 0: none) whose write a quota, and one whose
    /// write the reservations refused, to be told by the next check.
    pub(crate) quota_vol: AtomicU32,
    pub(crate) reserve_vol: AtomicU32,
    /// The volume (id + 1) each kind of refusal was last logged for.
    pub(crate) quota_logged: AtomicU32,
    pub(crate) reserve_logged: AtomicU32,
}

impl Health {
    /// A pool just assembled: healthy, checks allowed.
    pub(crate) fn new() -> impl PinInit<Self> {
        let t = Thresholds::DEFAULT;
        pin_init!(Self {
            dirty: AtomicBool::new(false),
            walk_kick: AtomicBool::new(false),
            gate <- new_mutex!(true),
            reported <- new_mutex!(Told {
                health: PoolHealth::Ok,
                space: SpaceLevel::Ok,
            }),
            space_low: AtomicU64::new(t.low_pct),
            space_crit: AtomicU64::new(t.critical_pct),
            used_blocks: AtomicU64::new(0),
            cap_blocks: AtomicU64::new(0),
            space_code: AtomicU8::new(0),
            space_full_at: AtomicU64::new(crate::zvcore::space::NOT_FULL),
            space_refused: AtomicBool::new(false),
            quota_refused: AtomicU64::new(0),
            reserve_refused: AtomicU64::new(0),
            copy_reads: AtomicU64::new(0),
            quota_vol: AtomicU32::new(0),
            reserve_vol: AtomicU32::new(0),
            quota_logged: AtomicU32::new(0),
            reserve_logged: AtomicU32::new(0),
        })
    }

    /// A write was refused for want of space: the next check tells `full`.
    pub(crate) fn note_refused(&self) {
        self.space_refused.store(true, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Release);
    }

    /// The space thresholds in force.
    pub(crate) fn thresholds(&self) -> Thresholds {
        Thresholds {
            low_pct: self.space_low.load(Ordering::Relaxed),
            critical_pct: self.space_crit.load(Ordering::Relaxed),
        }
    }

    /// Percent of the capacity used, as last noted.
    pub(crate) fn used_pct(&self) -> u64 {
        crate::zvcore::space::percent(
            self.used_blocks.load(Ordering::Relaxed),
            self.cap_blocks.load(Ordering::Relaxed),
        )
    }

    /// Notes the live blocks and capacity (under the engine lock, after
    /// each change); asks for a check when the space code changed.
    pub(crate) fn note_space(&self, used: u64, cap: u64) {
        self.used_blocks.store(used, Ordering::Relaxed);
        self.cap_blocks.store(cap, Ordering::Relaxed);
        let code = self.thresholds().code(
            crate::zvcore::space::percent(used, cap),
            self.space_full_at.load(Ordering::Relaxed),
        );
        if self.space_code.swap(code, Ordering::Relaxed) != code {
            self.dirty.store(true, Ordering::Release);
        }
    }
}

/// A pool or device UUID as text, in the usual 8-4-4-4-12 form (`status`,
/// and the log line naming a missing member).
pub(crate) struct UuidText<'a>(pub(crate) &'a [u8; 16]);

impl core::fmt::Display for UuidText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

impl kernel::fmt::Display for UuidText<'_> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}
