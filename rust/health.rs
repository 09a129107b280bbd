// SPDX-License-Identifier: GPL-2.0
//! Member and pool health, told once per change: a log line, and a
//! uevent (`KOBJ_CHANGE` of `/dev/zvpool-control` with `ZVPOOL_*`
//! variables, `kwrap::uevent`).
//!
//! States come from counters the I/O paths keep without locks (failed data
//! and metadata I/O) and from the block layer: a member whose device dies
//! is told through the pool's holder operations (`kwrap::holder`, the
//! `mark_dead` callback). Anything that can change a state sets
//! `health.dirty` (any context); the check itself runs in process context,
//! from a work item ([`ActivePool::health_kick`]) or inline when `status`
//! or `members` is read, and takes no lock across I/O.
//!
//! A missing member is told to the engine (`Pool::member_lost`): nothing is
//! placed on it and nothing is planned on its zones any more. Its blocks
//! stay mapped; reading one fails with EIO.

use crate::healthstate::{MemberState, PoolHealth};
use crate::kwrap::{holder::DeadHook, noio::NoIo, uevent::MAX_VARS, workq};
use crate::pool::ActivePool;
use crate::registry;
use crate::zvcore::space::{SpaceLevel, Thresholds, NOT_FULL};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    str::CString,
    sync::Arc,
    workqueue::{self, impl_has_work, WorkItem},
};

impl_has_work! {
    impl HasWork<Self, 2> for ActivePool { self.health_work }
}

impl WorkItem<2> for ActivePool {
    type Pointer = Arc<ActivePool>;

    fn run(this: Arc<ActivePool>) {
        this.check_health();
        this.kick_walks();
    }
}

impl DeadHook for ActivePool {
    fn device_dead(this: &Arc<Self>, dev: u32, _surprise: bool) {
        for m in this.members.iter() {
            if m.is_devt(dev) {
                m.gone.store(true, Ordering::Release);
            }
        }
        this.health.dirty.store(true, Ordering::Release);
        this.health_kick();
    }
}

impl ActivePool {
    /// Kicks GC if a check started walks (a member went missing: its
    /// mirrored copies are rebuilt by GC, which would otherwise wait for
    /// the next write).
    pub(crate) fn kick_walks(self: &Arc<Self>) {
        if self.health.walk_kick.swap(false, Ordering::AcqRel) {
            self.kick_gc();
        }
    }

    /// Queues a health check when something may have changed (cheap when
    /// nothing did). Process context: takes a mutex.
    pub(crate) fn health_kick(self: &Arc<Self>) {
        if !self.health.dirty.load(Ordering::Acquire) {
            return;
        }
        let open = self.health.gate.lock();
        if *open {
            // Already queued: that check sees the change.
            let _ = workqueue::system_long().enqueue::<_, 2>(self.clone());
        }
    }

    /// No more health checks are queued; returns once none is queued or
    /// running. Sleeps (the pool stops).
    pub(crate) fn health_stop(&self) {
        *self.health.gate.lock() = false;
        workq::flush_work(&self.health_work);
    }

    /// Sets the space thresholds; the next check tells the level they give.
    pub(crate) fn set_space_thresholds(&self, t: Thresholds) {
        self.health.space_low.store(t.low_pct, Ordering::Relaxed);
        self.health
            .space_crit
            .store(t.critical_pct, Ordering::Relaxed);
        // A new code for the same use: the next `note_levels` or read of
        // `status` checks.
        self.health.space_code.store(u8::MAX, Ordering::Relaxed);
        self.health.dirty.store(true, Ordering::Release);
    }

    /// The pool's health now (`engine_failed`: the engine's own state).
    pub(crate) fn pool_health(&self, engine_failed: bool) -> PoolHealth {
        if engine_failed {
            PoolHealth::Failed
        } else if self
            .members
            .iter()
            .any(|m| !matches!(m.state(), MemberState::Ok | MemberState::Removed))
        {
            PoolHealth::Degraded
        } else {
            PoolHealth::Ok
        }
    }

    /// [`Self::check_health`] when something may have changed (`status` and
    /// `members` reads: what they show has been told). Process context, no
    /// pool lock held.
    pub(crate) fn check_health_if_dirty(&self) {
        if self.health.dirty.load(Ordering::Acquire) {
            self.check_health();
        }
    }

    /// Reports every state change since the last check, in order. Process
    /// context, no pool lock held; sleeps.
    pub(crate) fn check_health(&self) {
        let _noio = NoIo::enter();
        let mut reported = self.health.reported.lock();
        self.health.dirty.store(false, Ordering::Release);
        for (i, m) in self.members.iter().enumerate() {
            let now = m.state();
            let was = MemberState::from_u8(m.reported.swap(now as u8, Ordering::AcqRel));
            if now == was {
                continue;
            }
            let lost = if now == MemberState::Missing {
                let mut st = self.state.lock();
                let r = st.engine.member_lost(i as u16);
                self.note_levels(&st.engine);
                self.health.walk_kick.store(true, Ordering::Release);
                Some(r)
            } else {
                None
            };
            // Writers waiting for space see the space that is left.
            self.gc_cv.notify_all();
            let path = m.path.to_str().unwrap_or("?");
            let (re, we, me) = (
                m.read_errors.load(Ordering::Relaxed),
                m.write_errors.load(Ordering::Relaxed),
                m.meta_errors.load(Ordering::Relaxed),
            );
            match now {
                MemberState::Ok => pr_info!("{}: member {} ({}) is ok\n", &*self.name, i, path),
                MemberState::Degraded => pr_warn!(
                    "{}: member {} ({}) is degraded: read_errors={} write_errors={}\n",
                    &*self.name,
                    i,
                    path,
                    re,
                    we
                ),
                MemberState::Failed => pr_err!(
                    "{}: member {} ({}) failed: {} metadata I/O error(s)\n",
                    &*self.name,
                    i,
                    path,
                    me
                ),
                MemberState::Missing => pr_err!(
                    "{}: member {} ({}) is missing: its device is gone; its blocks read as I/O errors, new data goes to the other members\n",
                    &*self.name,
                    i,
                    path
                ),
                MemberState::Removed => pr_info!(
                    "{}: member {} ({}) removed from the pool\n",
                    &*self.name,
                    i,
                    path
                ),
            }
            if let Some(Err(e)) = lost {
                pr_err!(
                    "{}: member {}: the engine did not take it out: {:?}\n",
                    &*self.name,
                    i,
                    e
                );
            }
            self.event(
                "member",
                &[
                    ("ZVPOOL_MEMBER_INDEX", &fmt!("{}", i)),
                    ("ZVPOOL_MEMBER", &fmt!("{}", path)),
                    ("ZVPOOL_STATE", &fmt!("{}", now.word())),
                ],
            );
        }
        let failed = self.state.lock().engine.is_failed();
        let now = self.pool_health(failed);
        self.check_space(&mut reported.space);
        self.tell_rule_refusals();
        let reported = &mut reported.health;
        if now != *reported {
            match now {
                PoolHealth::Ok => pr_info!("{}: pool health: ok\n", &*self.name),
                PoolHealth::Degraded => pr_warn!("{}: pool health: degraded\n", &*self.name),
                PoolHealth::Failed => pr_err!(
                    "{}: pool health: failed (metadata cannot be committed: stop the pool and assemble it again)\n",
                    &*self.name
                ),
            }
            self.event("health", &[("ZVPOOL_HEALTH", &fmt!("{}", now.word()))]);
            *reported = now;
        }
    }

    /// Tells a change of the space level (`told`: the level told last).
    fn check_space(&self, told: &mut SpaceLevel) {
        let h = &self.health;
        let refused = h.space_refused.swap(false, Ordering::Relaxed);
        let t = h.thresholds();
        let pct = h.used_pct();
        let now = t.level(pct, *told, refused, h.space_full_at.load(Ordering::Relaxed));
        if now == *told {
            return;
        }
        let full_at = if now == SpaceLevel::Full {
            pct
        } else {
            NOT_FULL
        };
        h.space_full_at.store(full_at, Ordering::Relaxed);
        match now {
            SpaceLevel::Ok | SpaceLevel::Low => pr_info!(
                "{}: space {}: {}% of the capacity holds live data (thresholds: low {}%, critical {}%)\n",
                &*self.name,
                now.word(),
                pct,
                t.low_pct,
                t.critical_pct
            ),
            SpaceLevel::Critical => pr_warn!(
                "{}: space critical: {}% of the capacity holds live data; writes fail with ENOSPC once it is full (delete or discard data, or add a member)\n",
                &*self.name,
                pct
            ),
            SpaceLevel::Full => pr_err!(
                "{}: space full: a write found no free space (refused with ENOSPC, or waiting under no_space_timeout) with {}% of the capacity holding live data\n",
                &*self.name,
                pct
            ),
        }
        self.event(
            "space",
            &[
                ("ZVPOOL_SPACE", &fmt!("{}", now.word())),
                ("ZVPOOL_USED_PCT", &fmt!("{}", pct)),
            ],
        );
        *told = now;
    }

    /// Sends event `what` of this pool with `vars` (`ZVPOOL_POOL` and
    /// `ZVPOOL_EVENT` first). A failure is logged, never fatal.
    pub(crate) fn event(&self, what: &str, vars: &[(&str, &core::fmt::Arguments<'_>)]) {
        let r = (|| -> Result {
            let mut owned = KVec::<CString>::with_capacity(MAX_VARS, GFP_KERNEL)?;
            owned.push(
                CString::try_from_fmt(fmt!("ZVPOOL_POOL={}", &*self.name))?,
                GFP_KERNEL,
            )?;
            owned.push(
                CString::try_from_fmt(fmt!("ZVPOOL_EVENT={}", what))?,
                GFP_KERNEL,
            )?;
            for (k, v) in vars {
                owned.push(CString::try_from_fmt(fmt!("{}={}", k, v))?, GFP_KERNEL)?;
            }
            let mut refs: [&CStr; MAX_VARS] = [c""; MAX_VARS];
            let n = owned.len().min(MAX_VARS);
            for (r, s) in refs.iter_mut().zip(owned.iter()) {
                *r = s;
            }
            registry::send_event(refs.get(..n).unwrap_or(&[]))
        })();
        if let Err(e) = r {
            pr_warn!("{}: {} event not sent: {:?}\n", &*self.name, what, e);
        }
    }
}
