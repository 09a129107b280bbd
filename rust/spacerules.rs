// SPDX-License-Identifier: GPL-2.0
//! Quotas, reservations and the pool reserve of an active pool (the rules
//! themselves are in the core, `zvcore::pool::quota`): setting them from
//! configfs, and the refusals they cause on the write path, counted and
//! logged after the engine lock is dropped.

use crate::engine::core_err;
use crate::pool::ActivePool;
use crate::zvcore::{error::Error as CoreError, format::BLOCK_SIZE, pool::quota::SpaceRules};
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Bytes per block.
const BS: u64 = BLOCK_SIZE as u64;

/// A refusal is logged (and told as an event) when it concerns another
/// volume than the one logged last, and otherwise once every this many.
const LOG_EVERY: u64 = 1024;

impl ActivePool {
    /// Sets the quota and reservation of volume `id`, in bytes (rounded up
    /// to whole blocks; 0: none). Errors, each with one log line: `EROFS`
    /// (a snapshot), `EINVAL` (a reservation above the volume's size),
    /// `ENOSPC` (the pool cannot hold the reservation now).
    pub(crate) fn set_space_rules(&self, what: &str, id: u32, quota: u64, reserve: u64) -> Result {
        let r = SpaceRules {
            quota: quota.div_ceil(BS),
            reserve: reserve.div_ceil(BS),
        };
        // Metadata like a volume's size: journalled and committed (the
        // lock dropped for the commit's I/O, logged after it).
        let mut why = None;
        let res = self.vol_op(|e| {
            e.set_space_rules(id, r).map_err(|x| {
                why = Some(x);
                core_err(x)
            })
        });
        let avail = self.state.lock().engine.space_report().available;
        match (res, why) {
            (Ok(()), _) => {
                pr_info!(
                    "volume {}: quota {} bytes, reservation {} bytes\n",
                    what,
                    r.quota * BS,
                    r.reserve * BS
                );
                Ok(())
            }
            (Err(_), Some(CoreError::NoSpace)) => {
                pr_err!(
                    "volume {}: a reservation of {} bytes cannot be held: {} bytes of the pool are available\n",
                    what,
                    r.reserve * BS,
                    avail * BS
                );
                Err(ENOSPC)
            }
            (Err(_), Some(CoreError::ReadOnly)) if !self.read_only => {
                pr_err!(
                    "volume {}: a snapshot takes no quota or reservation\n",
                    what
                );
                Err(EROFS)
            }
            (Err(_), Some(e)) => {
                pr_err!("volume {}: space rules not set: {}\n", what, e.describe());
                Err(core_err(e))
            }
            (Err(e), None) => {
                pr_err!("volume {}: space rules not committed: {:?}\n", what, e);
                Err(e)
            }
        }
    }

    /// The quota and reservation of volume `id`, in bytes.
    pub(crate) fn space_rules(&self, id: u32) -> (u64, u64) {
        let r = self.state.lock().engine.space_rules(id).unwrap_or_default();
        (r.quota * BS, r.reserve * BS)
    }

    /// Sets the pool reserve (percent of the capacity no volume may take).
    pub(crate) fn set_pool_reserve(&self, pct: u64) -> Result {
        self.state
            .lock()
            .engine
            .set_pool_reserve_pct(pct)
            .map_err(core_err)
    }

    /// Tells the refusals noted since the last check as events
    /// (`ZVPOOL_EVENT=quota` or `reserved`, with the volume). Called by the
    /// health check: process context, no lock held.
    pub(crate) fn tell_rule_refusals(&self) {
        for (slot, what) in [
            (&self.health.quota_vol, "quota"),
            (&self.health.reserve_vol, "reserved"),
        ] {
            let v = slot.swap(0, Ordering::Relaxed);
            let Some(id) = v.checked_sub(1) else {
                continue;
            };
            let mut name = [0u8; 32];
            let len = self.with_name(id, |n| {
                let n = n.unwrap_or(b"?");
                let k = n.len().min(name.len());
                if let (Some(d), Some(s)) = (name.get_mut(..k), n.get(..k)) {
                    d.copy_from_slice(s);
                }
                k
            });
            let name = core::str::from_utf8(name.get(..len).unwrap_or(&[])).unwrap_or("?");
            self.event(
                what,
                &[
                    ("ZVPOOL_VOLUME", &fmt!("{}", name)),
                    ("ZVPOOL_VOLUME_ID", &fmt!("{}", id)),
                ],
            );
        }
    }

    /// A write of `n` blocks of volume `vol` was refused by a space rule
    /// (`e`: [`CoreError::Quota`] or [`CoreError::Reserved`]): counted, and
    /// logged (see [`LOG_EVERY`]). Without the engine lock.
    pub(crate) fn note_rule_refusal(&self, vol: u32, n: u64, e: CoreError) {
        let quota = matches!(e, CoreError::Quota);
        let c = if quota {
            &self.health.quota_refused
        } else {
            &self.health.reserve_refused
        };
        let before = c.fetch_add(1, Ordering::Relaxed);
        let logged = if quota {
            &self.health.quota_logged
        } else {
            &self.health.reserve_logged
        };
        let tag = vol.saturating_add(1);
        if logged.swap(tag, Ordering::Relaxed) == tag && before % LOG_EVERY != 0 {
            return;
        }
        // Told as an event by the next health check (process context).
        let slot = if quota {
            &self.health.quota_vol
        } else {
            &self.health.reserve_vol
        };
        slot.store(tag, Ordering::Relaxed);
        self.health.dirty.store(true, Ordering::Release);
        if quota {
            pr_err!(
                "{}: volume {} reached its quota: write of {} blocks refused (ENOSPC; {} refusals so far)\n",
                &*self.name,
                vol,
                n,
                before + 1
            );
        } else {
            pr_err!(
                "{}: volume {}: write of {} blocks refused (ENOSPC): the rest of the pool is reserved (reservations, pool reserve; {} refusals so far)\n",
                &*self.name,
                vol,
                n,
                before + 1
            );
        }
    }
}
