// SPDX-License-Identifier: GPL-2.0
//! Where write requests wait, by cause: how many waits, their total and the
//! longest one. A write's latency is its lower I/O plus these waits; the
//! `status` lines `write_wait_CAUSE COUNT TOTAL_MS MAX_MS` tell which cause
//! makes the slowest writes slow (GC pacing, no free space, a commit the
//! write had to run first, its own FUA commit).
//!
//! Lock-free (relaxed atomics): recorded by each request after its wait,
//! read by `status` at any time (the three figures of a cause may be read
//! from different moments).
//!
//! Also the wake-ups of the tasks that wait for a commit to end
//! ([`CommitEnds`]).

use crate::kwrap::varwait;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::time::{Instant, Monotonic};

/// The waits of one cause (or any timed section: GC's engine-lock holds
/// use it too, `gcstate.rs`).
pub(crate) struct WaitStat {
    count: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

impl WaitStat {
    pub(crate) const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    /// Records a wait that began at `t0` and ends now.
    pub(crate) fn since(&self, t0: Instant<Monotonic>) {
        let us = u64::try_from(t0.elapsed().as_micros_ceil()).unwrap_or(0);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Total time waited (µs).
    pub(crate) fn total_us(&self) -> u64 {
        self.total_us.load(Ordering::Relaxed)
    }

    /// `(count, total_us, max_us)`.
    pub(crate) fn get(&self) -> (u64, u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.total_us.load(Ordering::Relaxed),
            self.max_us.load(Ordering::Relaxed),
        )
    }

    /// `write_wait_NAME COUNT TOTAL_MS MAX_MS`.
    fn line(&self, name: &str, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        writeln!(
            w,
            "write_wait_{} {} {} {}",
            name,
            self.count.load(Ordering::Relaxed),
            self.total_us.load(Ordering::Relaxed) / 1000,
            self.max_us.load(Ordering::Relaxed) / 1000
        )
    }
}

/// The causes a write request waits for.
pub(crate) struct WriteWaits {
    /// Held for GC's pacing (`paced.rs`).
    pub(crate) pace: WaitStat,
    /// No free space: waiting for GC to free some (`wait_for_space`).
    pub(crate) space: WaitStat,
    /// The journal record queue was full: the write waited for a commit
    /// (its own, or another's that made room).
    pub(crate) commit: WaitStat,
    /// Of those, the commits the writes ran themselves
    /// (`ActivePool::commit_for_room`).
    pub(crate) commit_runs: AtomicU64,
    /// A FUA write's own commit.
    pub(crate) fua: WaitStat,
    /// Requests (of any kind; writes, which allocate table nodes, mostly)
    /// requeued for want of memory, to be served again
    /// (`volume::end_request`).
    pub(crate) requeued: AtomicU64,
    /// Writes of mirrored volumes that ended while a checkpoint was being
    /// written, dropped and written again after it (`write_end_copies`).
    pub(crate) copy_rewrites: AtomicU64,
}

impl WriteWaits {
    pub(crate) const fn new() -> Self {
        Self {
            pace: WaitStat::new(),
            space: WaitStat::new(),
            commit: WaitStat::new(),
            commit_runs: AtomicU64::new(0),
            fua: WaitStat::new(),
            requeued: AtomicU64::new(0),
            copy_rewrites: AtomicU64::new(0),
        }
    }

    /// The `status` lines, one per cause.
    pub(crate) fn status(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.pace.line("pace", w)?;
        self.space.line("space", w)?;
        self.commit.line("commit", w)?;
        writeln!(
            w,
            "write_commit_runs {}",
            self.commit_runs.load(Ordering::Relaxed)
        )?;
        self.fua.line("fua", w)?;
        writeln!(
            w,
            "requeued_nomem {}",
            self.requeued.load(Ordering::Relaxed)
        )?;
        writeln!(
            w,
            "copy_rewrites {}",
            self.copy_rewrites.load(Ordering::Relaxed)
        )
    }
}

/// How long a task waiting for a commit without the commit lock sleeps at
/// most before it tries the lock again (its holder may release it without
/// ending a commit: a volume operation).
const COMMIT_WAIT_MS: u32 = 50;

/// Ends of commits, for the tasks that wait for one without taking the
/// commit lock (`ActivePool::commit_until`): flushes whose records a commit
/// running meanwhile may commit (a journal commit between checkpoint steps
/// included), writes refused while the record queue is full.
pub(crate) struct CommitEnds {
    /// Bumped at every commit's end (success or not).
    gen: AtomicU32,
    /// Tasks waiting.
    waiters: AtomicU32,
}

impl CommitEnds {
    pub(crate) const fn new() -> Self {
        Self {
            gen: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// The generation to wait past.
    pub(crate) fn gen(&self) -> u32 {
        self.gen.load(Ordering::SeqCst)
    }

    /// A commit ended: wakes the waiters.
    pub(crate) fn ended(&self) {
        self.gen.fetch_add(1, Ordering::SeqCst);
        // SeqCst with `wait`: either the waiter sees the new generation, or
        // this sees the waiter and wakes it.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            varwait::wake(&self.gen);
        }
    }

    /// Sleeps until a commit ends after generation `old` was read, or
    /// [`COMMIT_WAIT_MS`]. Process context.
    pub(crate) fn wait(&self, old: u32) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        varwait::wait_change(&self.gen, old, COMMIT_WAIT_MS);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a task waits for a commit now.
    pub(crate) fn waiting(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0
    }
}
