// SPDX-License-Identifier: GPL-2.0
//! The fake kernel's space rules (issue 20): the volume attributes
//! `quota_bytes` and `reservation_bytes`, the pool attribute
//! `pool_reserve_pct` and the `status` and `usage` lines they add, as the
//! kernel's `spacerules.rs` and `zvcore::pool::quota` define them. Sizes
//! round up to 4 KiB blocks; the volume must be in the metadata (EINVAL);
//! a snapshot takes neither (EROFS); a reservation is at most the volume's
//! size (EINVAL) and is refused when the pool cannot hold it now (ENOSPC).
//! The rules belong to the pool's metadata, not to the volume's directory:
//! unbinding, a stop and an assembly keep them. A module without them (`without_space_rules`, `legacy`)
//! has none of the files or lines.

use super::{FakeKernel, MetaVol, PoolRt, State, DISK_ZONES, ZONE};
use crate::error::{EINVAL, ENOENT, ENOSPC, EROFS};
use std::io;

/// What GC and the open streams keep out of every volume's reach, besides
/// the pool reserve.
const GC_ROOM: u64 = 2 * ZONE;
/// The highest `pool_reserve_pct` (the kernel's `POOL_RESERVE_MAX_PCT`).
const RESERVE_MAX_PCT: u64 = 50;
const BLOCK: u64 = 4096;

/// The space of an active pool, in bytes.
pub(super) struct Space {
    pub cap: u64,
    /// Live data: what the volumes map, shared data once.
    pub used: u64,
    /// Of `used`, the data shared by volumes (the snapshots' shares).
    pub shared: u64,
    /// The unused parts of the reservations.
    pub reserved: u64,
    /// The pool reserve and GC's room.
    pub held_back: u64,
}

impl Space {
    /// What a volume without a reservation may still newly map.
    pub fn available(&self) -> u64 {
        self.cap
            .saturating_sub(self.used)
            .saturating_sub(self.reserved)
            .saturating_sub(self.held_back)
    }
}

/// The unused part of volume `v`'s reservation.
fn held(v: &MetaVol) -> u64 {
    v.reserve.saturating_sub(v.mapped)
}

/// The space of pool `p` whose metadata holds `vols`.
pub(super) fn space(p: &PoolRt, vols: &[MetaVol]) -> Space {
    let n = p.devices.len() as u64;
    let cap = n * DISK_ZONES * ZONE - n * ZONE;
    // Shared bytes count once: the snapshots' shares.
    let shared: u64 = vols
        .iter()
        .filter(|v| v.kind == "snapshot")
        .map(|v| v.shared)
        .sum();
    let used = vols.iter().map(|v| v.mapped - v.shared).sum::<u64>() + shared;
    Space {
        cap,
        used,
        shared,
        reserved: vols.iter().map(held).sum(),
        held_back: cap * p.reserve_pct / 100 + GC_ROOM,
    }
}

/// The `status` lines of the space rules (after `free_bytes`).
pub(super) fn status_lines(st: &State, p: &PoolRt, vols: &[MetaVol]) -> String {
    if st.no_space_rules {
        return String::new();
    }
    let s = space(p, vols);
    format!(
        "available_bytes {}\nreserved_bytes {}\nheld_back_bytes {}\npool_reserve_pct {}\n\
         quota_refusals {}\nreserve_refusals {}\n",
        s.available(),
        s.reserved,
        s.held_back,
        p.reserve_pct,
        p.refusals.0,
        p.refusals.1
    )
}

/// The kernel's `parse_u64`: decimal digits, one optional newline.
fn parse_u64(value: &str) -> Option<u64> {
    let v = value.strip_suffix('\n').unwrap_or(value);
    (!v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

impl FakeKernel {
    /// A module from before quotas and reservations: no `quota_bytes`,
    /// `reservation_bytes`, `pool_reserve_pct`, nor their `status` and
    /// `usage` lines.
    pub fn without_space_rules(self) -> Self {
        self.st.borrow_mut().no_space_rules = true;
        self
    }

    /// The refusal counters of pool `pool`'s `status`.
    pub fn set_rule_refusals(&self, pool: &str, quota: u64, reserve: u64) {
        let mut st = self.st.borrow_mut();
        if let Some(p) = st.pools.get_mut(pool) {
            p.refusals = (quota, reserve);
        }
        self.sync(&st);
    }

    /// The pool attribute `pool_reserve_pct` (any state).
    pub(super) fn write_reserve_pct(
        &self,
        st: &mut State,
        pool: &str,
        value: &str,
    ) -> io::Result<()> {
        if st.no_space_rules {
            return Err(super::err(ENOENT));
        }
        let Some(v) = parse_u64(value).filter(|v| *v <= RESERVE_MAX_PCT) else {
            let why = format!("pool_reserve_pct takes 0 to {RESERVE_MAX_PCT}");
            return Err(self.refuse(st, EINVAL, pool, &why));
        };
        if let Some(p) = st.pools.get_mut(pool) {
            p.reserve_pct = v;
        }
        Ok(())
    }

    /// The volume attributes `quota_bytes` and `reservation_bytes`.
    pub(super) fn write_rule(
        &self,
        st: &mut State,
        pool: &str,
        vol: &str,
        attr: &str,
        value: &str,
    ) -> io::Result<()> {
        let obj = format!("{pool}/{vol}");
        let Some(v) = parse_u64(value) else {
            let why = format!("{attr} is not a decimal number of bytes (0 = none)");
            return Err(self.refuse(st, EINVAL, &obj, &why));
        };
        let v = v.div_ceil(BLOCK) * BLOCK;
        let vols = st
            .metas
            .get(pool)
            .map(|m| m.volumes.clone())
            .unwrap_or_default();
        let Some(m) = vols.iter().find(|m| m.name == vol) else {
            let why = format!("write size before {attr}");
            return Err(self.refuse(st, EINVAL, &obj, &why));
        };
        let Some(p) = st.pools.get(pool) else {
            return Err(super::err(ENOENT));
        };
        let (mut quota, mut reserve) = (m.quota, m.reserve);
        if attr == "quota_bytes" {
            quota = v;
        } else {
            reserve = v;
        }
        if m.kind == "snapshot" && (quota > 0 || reserve > 0) {
            let why = "a snapshot takes no quota or reservation";
            return Err(self.refuse(st, EROFS, &obj, why));
        }
        if reserve > m.size {
            let why = "reservation above the volume size";
            return Err(self.refuse(st, EINVAL, &obj, why));
        }
        let s = space(p, &vols);
        let before = held(m);
        let after = reserve.saturating_sub(m.mapped);
        let limit = s.cap.saturating_sub(s.held_back);
        if after > before && s.used + (s.reserved - before) + after > limit {
            let why = format!(
                "a reservation of {reserve} bytes cannot be held: {} bytes of the pool are available",
                s.available()
            );
            return Err(self.refuse(st, ENOSPC, &obj, &why));
        }
        if let Some(mv) = st
            .metas
            .get_mut(pool)
            .and_then(|mm| mm.volumes.iter_mut().find(|v| v.name == vol))
        {
            mv.quota = quota;
            mv.reserve = reserve;
        }
        Ok(())
    }
}
