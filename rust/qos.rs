// SPDX-License-Identifier: GPL-2.0
//! Per-volume I/O limits in the request path ([`VolQos`]).
//!
//! A volume's configfs directory (`volcfg.rs`) owns one `VolQos` for as
//! long as it exists and hands it to the volume's disk when it is enabled
//! (`poolvol.rs`), so limits can be set before, while and after the disk
//! exists, and one volume's limits never touch another's requests. The
//! buckets are `zvcore::qos::Limiter` (token buckets in virtual-time form)
//! under a spinlock of the volume; the clock is the monotonic clock in ns
//! since the `VolQos` was made.
//!
//! Every read and write is offered to [`VolQos::admit`] first, in the block
//! layer's dispatch context, before the fast or the slow path sees it. With
//! no limit in its direction that is one relaxed load of a flag. A request
//! the buckets do not admit yet goes back on the queue's requeue list, the
//! mechanism the data path already uses for a request out of memory
//! (`Request::requeue_delayed`), and the list is dispatched again when the
//! first waiting request becomes admissible (at most [`MAX_DELAY_MS`] from
//! now, so a limit raised online applies soon). Nothing waits, nothing
//! sleeps, no lock is held across I/O. Flushes, discards and write-zeroes
//! move no data and are not limited.
//!
//! The requeue list is kicked through `blk_mq_delay_kick_requeue_list`,
//! which *moves* a pending kick: a later kick would postpone an earlier
//! one. So the time of the last kick is kept ([`VolQos::kick_at`]) and the
//! list is only kicked again when no kick is queued or the new time is
//! earlier. The request is put on the list before that decision, which
//! asks the queue whether its requeue work is still queued then (so it
//! will find the request; `Request::requeue_delayed`), and the decision
//! and the kick are made under the volume's limiter lock (so `kick_at`
//! names the kick issued last).

use crate::kwrap::request::{Op, Request};
use crate::zvcore::qos::{Dir, Knob, Limiter, DEFAULT_BURST_NS};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
    time::{Instant, Monotonic},
};

/// Bit of [`VolQos::limited`]: reads have a limit.
const READS: u8 = 1;
/// Bit of [`VolQos::limited`]: writes have a limit.
const WRITES: u8 = 2;

/// Longest delay before a refused request is offered again.
pub(crate) const MAX_DELAY_MS: u32 = 100;

const NS_PER_MS: u64 = 1_000_000;

/// The I/O limits of one volume.
#[pin_data]
pub(crate) struct VolQos {
    /// [`READS`] | [`WRITES`]: the directions with a limit (the only state
    /// an unlimited request reads).
    limited: AtomicU8,
    /// Time 0 of the limiter's clock.
    origin: Instant<Monotonic>,
    /// When the kick of the requeue list pending is due (ns of the
    /// limiter's clock); in the past when none is.
    kick_at: AtomicU64,
    /// Requests delayed so far (`qos_delayed` in `usage`).
    delayed: AtomicU64,
    /// Requests charged against a limit so far (`qos_charged` in `usage`):
    /// each once, however often it was requeued.
    charged: AtomicU64,
    #[pin]
    limiter: SpinLock<Limiter>,
}

impl VolQos {
    /// No limits.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(VolQos {
                limited: AtomicU8::new(0),
                origin: Instant::<Monotonic>::now(),
                kick_at: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
                charged: AtomicU64::new(0),
                limiter <- new_spinlock!(Limiter::new(DEFAULT_BURST_NS), "zvpool_qos"),
            }),
            GFP_KERNEL,
        )
    }

    /// Nanoseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from((Instant::<Monotonic>::now() - self.origin).as_nanos()).unwrap_or(0)
    }

    /// The limit `knob` (0: unlimited).
    pub(crate) fn get(&self, knob: Knob) -> u64 {
        self.limiter.lock().get(knob)
    }

    /// Sets the limit `knob` (0: unlimited); applies to the next request.
    /// Any process context.
    pub(crate) fn set(&self, knob: Knob, rate: u64) {
        let now = self.now();
        let mut l = self.limiter.lock();
        l.set(knob, rate, now);
        let bits = if l.limited(Dir::Read) { READS } else { 0 }
            | if l.limited(Dir::Write) { WRITES } else { 0 };
        self.limited.store(bits, Ordering::Relaxed);
    }

    /// Requests delayed so far.
    pub(crate) fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// Requests charged against a limit so far.
    pub(crate) fn charged(&self) -> u64 {
        self.charged.load(Ordering::Relaxed)
    }

    /// Admits `rq` (handed back) or puts it back on its queue's requeue
    /// list until it is admissible (`None`). The block layer's dispatch
    /// context; never sleeps.
    /// A request requeued for want of memory after its admission
    /// (`Request::requeued`) is not charged again.
    pub(crate) fn admit<D>(&self, rq: Request<D>) -> Option<Request<D>> {
        let bits = self.limited.load(Ordering::Relaxed);
        if bits == 0 || rq.requeued() {
            return Some(rq);
        }
        let dir = match rq.op() {
            Ok(Op::Read) if bits & READS != 0 => Dir::Read,
            Ok(Op::Write) if bits & WRITES != 0 => Dir::Write,
            _ => return Some(rq),
        };
        let now = self.now();
        // Held until the kick is issued: `kick_at` then always names the
        // kick issued last, which is the one pending (a later kick moves
        // an earlier one).
        let mut l = self.limiter.lock();
        let wait = match l.admit(dir, u64::from(rq.bytes()), now) {
            Ok(()) => {
                self.charged.fetch_add(1, Ordering::Relaxed);
                return Some(rq);
            }
            Err(w) => w,
        };
        self.delayed.fetch_add(1, Ordering::Relaxed);
        let ms = u32::try_from(wait.div_ceil(NS_PER_MS))
            .unwrap_or(MAX_DELAY_MS)
            .clamp(1, MAX_DELAY_MS);
        let due = now.saturating_add(u64::from(ms) * NS_PER_MS);
        rq.requeue_delayed(|queued| {
            // The request is on the list now. A kick whose work is still
            // queued will find it: leave it to that kick when it is due no
            // later than this request. Whether a kick ran cannot be told
            // from its time: the work's timer counts whole jiffies and may
            // fire up to one jiffy (4 ms at HZ=250) before the time asked
            // for; relying on the time lost requests for good on a
            // two-CPU guest (the kick ran early, the request came back
            // refused, and no kick was issued for it). `kick_at` may name
            // a kick that ran, while another's (an out-of-memory requeue's)
            // is queued: the request then waits for that one, later than
            // needed but not lost.
            let pending = self.kick_at.load(Ordering::Relaxed);
            if queued && pending <= due {
                return None;
            }
            self.kick_at.store(due, Ordering::Relaxed);
            Some(ms)
        });
        drop(l);
        None
    }
}
