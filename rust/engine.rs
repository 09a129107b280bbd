// SPDX-License-Identifier: GPL-2.0
//! The engine handle: the core's engine (`zvcore::pool::Pool`) with the
//! kernel's storage types, and its lock.
//!
//! The lock is private to this file: callers take it through
//! [`EngineCell::lock`], which always enters a `GFP_NOIO` scope (an
//! allocation under the lock must not recurse into reclaim that writes to a
//! zvpool disk, whose requests need the lock), and wait on a condition
//! variable only through [`EngineLock::wait_timeout`]. What runs under it
//! is planning and recording: no I/O, no `submit_bio`, no waiting for I/O
//! (Documentation/design.md, "Locks").

use crate::kwrap::noio::NoIo;
use crate::nodes::{KNodes, TableBudget};
use crate::zvcore::{
    self,
    alloc::{DevState, ZoneInfo},
    format::{MemberInfo, Record, Superblock},
    geom::DeviceGeometry,
    pool::{slots::MAX_VOLUMES, Pool, PoolStorage, VolEntry},
};
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use kernel::{
    prelude::*,
    sync::{Arc, CondVar, CondVarTimeoutResult, Mutex, MutexGuard},
    time::{Instant, Monotonic},
};

/// The engine with the kernel's storage types.
pub(crate) type Engine = Pool<
    KVec<DeviceGeometry>,
    KVec<ZoneInfo>,
    KVec<u64>,
    KVVec<VolEntry>,
    KVec<Record>,
    KNodes,
    KVec<DevState>,
    KBox<Superblock>,
>;

/// The engine's caller storage.
pub(crate) type Storage = PoolStorage<
    KVec<ZoneInfo>,
    KVec<u64>,
    KVVec<VolEntry>,
    KVec<Record>,
    KNodes,
    KVec<DevState>,
    KBox<Superblock>,
>;

/// Journal records that can wait for one commit.
const RECORD_QUEUE: usize = 4096;
/// Records queued from which the GC worker commits in the background, so
/// that writers rarely find the queue full and have to commit first
/// (`status` `write_wait_commit`).
pub(crate) const RECORD_HIGH_WATER: usize = RECORD_QUEUE / 2;
/// Converts a core error into an errno.
pub(crate) fn core_err(e: zvcore::error::Error) -> Error {
    Error::from_errno(-e.errno())
}

/// Engine state behind the pool lock.
pub(crate) struct EngineState {
    pub(crate) engine: KBox<Engine>,
    pub(crate) scratch: KVec<u8>,
    /// How long the lock was held (kept under the lock itself).
    pub(crate) holds: LockHolds,
}

/// The engine lock's holds: how many, their total and the longest, with
/// the place that took the lock for it (`status`: `engine_lock_hold`).
/// Every request and GC batch takes the lock; what holds it long delays
/// all of them.
#[derive(Default)]
pub(crate) struct LockHolds {
    pub(crate) holds: Durations,
    pub(crate) max_at: Option<&'static Location<'static>>,
    /// Asynchronous reads' waits to take the lock (`status`:
    /// `read_lock_wait`): what GC, commits and writes holding it cost them.
    pub(crate) read_wait: Durations,
}

/// How many durations, their total and the longest (µs), kept under the
/// engine lock: plain fields, no shared atomics on the request path.
#[derive(Default, Clone, Copy)]
pub(crate) struct Durations {
    pub(crate) count: u64,
    pub(crate) total_us: u64,
    pub(crate) max_us: u64,
    /// How many were 1 ms or longer, and 10 ms or longer: whether the long
    /// ones are a few or the tail of many.
    pub(crate) over_1ms: u64,
    pub(crate) over_10ms: u64,
}

impl Durations {
    /// Adds one duration of `us` µs.
    fn add(&mut self, us: u64) {
        self.count = self.count.saturating_add(1);
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        if us >= 1_000 {
            self.over_1ms = self.over_1ms.saturating_add(1);
        }
        if us >= 10_000 {
            self.over_10ms = self.over_10ms.saturating_add(1);
        }
    }

    /// `NAME COUNT TOTAL_US MAX_US` and `NAME_over OVER_1MS OVER_10MS`.
    pub(crate) fn lines(&self, name: &str, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        writeln!(w, "{name} {} {} {}", self.count, self.total_us, self.max_us)?;
        writeln!(w, "{name}_over {} {}", self.over_1ms, self.over_10ms)
    }
}

/// The engine lock, held in a `GFP_NOIO` scope (see [`EngineCell::lock`]).
pub(crate) struct EngineLock<'a> {
    // Dropped first: the lock is released before the scope ends.
    guard: MutexGuard<'a, EngineState>,
    _noio: NoIo,
    /// When the lock was taken (again, after a wait) and where.
    t0: Instant<Monotonic>,
    at: &'static Location<'static>,
}

impl EngineLock<'_> {
    /// Adds the hold since `t0` to the lock's figures (lock held).
    fn note_hold(&mut self) {
        let us = u64::try_from(self.t0.elapsed().as_micros_ceil()).unwrap_or(0);
        let h = &mut self.guard.holds;
        if us > h.holds.max_us {
            h.max_at = Some(self.at);
        }
        h.holds.add(us);
    }
}

impl Drop for EngineLock<'_> {
    fn drop(&mut self) {
        self.note_hold();
    }
}

impl Deref for EngineLock<'_> {
    type Target = EngineState;

    fn deref(&self) -> &EngineState {
        &self.guard
    }
}

impl DerefMut for EngineLock<'_> {
    fn deref_mut(&mut self) -> &mut EngineState {
        &mut self.guard
    }
}

/// Moves an engine just built by the core to the heap. Out of line, and
/// taking the core's `Result` as it is: every move of the engine (about 500
/// bytes) through a caller's frame would be one more copy on its stack.
#[inline(never)]
pub(crate) fn boxed<T>(r: zvcore::error::Result<T>) -> Result<zvcore::error::Result<KBox<T>>> {
    Ok(match r {
        Ok(v) => Ok(KBox::new(v, GFP_KERNEL)?),
        Err(e) => Err(e),
    })
}

/// Runs `f` in a stack frame of its own.
#[inline(never)]
pub(crate) fn out_of_line<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Heap storage for the engine. The superblock (4 KiB) is initialised in
/// place, field by field: built as a value it would sit on the stack.
pub(crate) fn storage(
    name: &CStr,
    geoms: &[DeviceGeometry],
    tables: &Arc<TableBudget>,
) -> Result<Storage> {
    let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
    Ok(PoolStorage {
        zones: KVec::from_elem(ZoneInfo::default(), nz, GFP_KERNEL)?,
        zone_epochs: KVec::from_elem(0u64, nz, GFP_KERNEL)?,
        vols: KVVec::from_elem(VolEntry::default(), MAX_VOLUMES, GFP_KERNEL)?,
        records: KVec::from_elem(Record::VolumeDelete { vol: 0 }, RECORD_QUEUE, GFP_KERNEL)?,
        nodes: KNodes::new(name, tables.clone())?,
        devs: KVec::from_elem(DevState::EMPTY, geoms.len(), GFP_KERNEL)?,
        sb: superblock_box()?,
    })
}

/// An empty superblock on the heap (64 member entries: too large for a
/// stack frame).
pub(crate) fn superblock_box() -> Result<KBox<Superblock>> {
    KBox::init(
        init!(Superblock {
            compat: 0,
            ro_compat: 0,
            incompat: 0,
            pool_uuid: [0; 16],
            dev_uuid: [0; 16],
            generation: 0,
            member_index: 0,
            checkpoint_interval: 0,
            conv_log_blocks: 0,
            nr_members: 0,
            members <- pin_init::init_array_from_fn(|_| MemberInfo::EMPTY),
            prev_removed: 0,
        }),
        GFP_KERNEL,
    )
}

/// The engine behind its lock.
#[pin_data]
pub(crate) struct EngineCell {
    #[pin]
    state: Mutex<EngineState>,
}

impl EngineCell {
    /// The cell of `engine`, with its scratch buffer.
    pub(crate) fn new(mut engine: KBox<Engine>, scratch: KVec<u8>) -> impl PinInit<Self> {
        engine.set_checkpoint_interval(crate::ckpt_interval());
        if crate::ckpt_at_assembly() {
            engine.request_full_checkpoint();
        }
        pin_init!(Self {
            state <- kernel::new_mutex!(EngineState {
                engine,
                scratch,
                holds: LockHolds::default(),
            }),
        })
    }

    /// Takes the engine lock in a `GFP_NOIO` scope. The hold is timed
    /// and charged to the caller's place ([`LockHolds`]).
    #[track_caller]
    pub(crate) fn lock(&self) -> EngineLock<'_> {
        let at = Location::caller();
        let noio = NoIo::enter();
        let guard = self.state.lock();
        EngineLock {
            guard,
            _noio: noio,
            t0: Instant::<Monotonic>::now(),
            at,
        }
    }

    /// [`Self::lock`] for an asynchronous read: the time it waited for the
    /// lock is added to [`LockHolds::read_wait`] (one more clock read: the
    /// hold's own start ends the wait).
    #[track_caller]
    pub(crate) fn lock_read(&self) -> EngineLock<'_> {
        let asked = Instant::<Monotonic>::now();
        let mut l = self.lock();
        let us = u64::try_from((l.t0 - asked).as_micros_ceil()).unwrap_or(0);
        l.guard.holds.read_wait.add(us);
        l
    }
}

impl EngineLock<'_> {
    /// Releases the lock, waits on `cv` for at most `ms` milliseconds (or a
    /// signal), and takes the lock again.
    pub(crate) fn wait_timeout(&mut self, cv: &CondVar, ms: u32) -> CondVarTimeoutResult {
        // The wait is not a hold: what came before it is one.
        self.note_hold();
        let r = cv.wait_interruptible_timeout(&mut self.guard, kernel::time::msecs_to_jiffies(ms));
        self.t0 = Instant::<Monotonic>::now();
        r
    }
}
