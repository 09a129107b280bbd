// SPDX-License-Identifier: GPL-2.0
//! Module-wide state behind one global mutex ([`crate::kwrap::global`]):
//! the active pools by name (the control device finds them there) and the
//! indexes `N` of the volume disks `/dev/zvpoolN`.
//!
//! The mutex is a leaf: nothing is called with it held but allocation, and
//! it is never taken with another zvpool lock held that it could wait on
//! (pools are looked up, their `Arc` cloned, and the mutex released before
//! any pool lock is taken).

use crate::kwrap::{global::registry, uevent::EventSlot};
use crate::pool::ActivePool;
use kernel::{prelude::*, sync::Arc};

/// Most volume disks at once: the kernel's dynamic block minors (one per
/// disk, `MINORMASK + 1`) bound them before this does.
pub(crate) const MAX_DISKS: usize = 1 << 20;
/// Bits in a word of the disk index bitmap.
const WORD_BITS: usize = u64::BITS as usize;

/// What the registry holds.
pub(crate) struct Registry {
    /// Active pools, in the order they were enabled.
    pools: KVec<Arc<ActivePool>>,
    /// Disk indexes in use, one bit each; grows a word at a time.
    disks: KVec<u64>,
    /// Where pool events go (the control device, once registered).
    pub(crate) events: EventSlot,
}

impl Registry {
    /// An empty registry (the static's initial value).
    pub(crate) const fn new() -> Self {
        Self {
            pools: KVec::new(),
            disks: KVec::new(),
            events: EventSlot::empty(),
        }
    }
}

/// Records `pool` as active (its name is unique: configfs directories).
pub(crate) fn add_pool(pool: &Arc<ActivePool>) -> Result {
    registry()?.pools.push(pool.clone(), GFP_KERNEL)?;
    Ok(())
}

/// Forgets `pool` (stopped).
pub(crate) fn remove_pool(pool: &Arc<ActivePool>) {
    if let Ok(mut g) = registry() {
        g.pools.retain(|p| !Arc::ptr_eq(p, pool));
    }
}

/// Sends a pool event (`KOBJ_CHANGE` of the control device with `vars`).
/// Sleeps; process context, no pool lock held.
pub(crate) fn send_event(vars: &[&CStr]) -> Result {
    registry()?.events.change(vars)
}

/// The active pool named `name`.
pub(crate) fn find_pool(name: &[u8]) -> Option<Arc<ActivePool>> {
    registry()
        .ok()?
        .pools
        .iter()
        .find(|p| p.name.to_bytes() == name)
        .cloned()
}

/// Calls `f` with the name of every active pool (registry locked: `f` must
/// not take zvpool locks).
pub(crate) fn pool_names(mut f: impl FnMut(&CStr) -> Result) -> Result {
    for p in registry()?.pools.iter() {
        f(&p.name)?;
    }
    Ok(())
}

/// Claims the lowest free disk index; `ENOSPC` when all [`MAX_DISKS`] are
/// taken, `ENOMEM` when the bitmap cannot grow.
pub(crate) fn claim_disk_index() -> Result<usize> {
    let mut g = registry()?;
    for (w, word) in g.disks.iter_mut().enumerate() {
        if *word != u64::MAX {
            let bit = word.trailing_ones() as usize;
            *word |= 1u64 << bit;
            return Ok(w * WORD_BITS + bit);
        }
    }
    let w = g.disks.len();
    if w.saturating_add(1) * WORD_BITS > MAX_DISKS {
        return Err(ENOSPC);
    }
    g.disks.push(1, GFP_KERNEL)?;
    Ok(w * WORD_BITS)
}

/// Releases disk index `i`.
pub(crate) fn release_disk_index(i: usize) {
    if let Ok(mut g) = registry() {
        if let Some(word) = g.disks.get_mut(i / WORD_BITS) {
            *word &= !(1u64 << (i % WORD_BITS));
        }
    }
}

/// Empties the registry when the module goes (dropped after everything
/// that used it): frees what it allocated.
pub(crate) struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        let Ok(mut g) = registry() else {
            return;
        };
        let old = core::mem::replace(&mut *g, Registry::new());
        drop(g);
        if !old.pools.is_empty() {
            pr_warn!("{} pool(s) still registered at unload\n", old.pools.len());
        }
        drop(old);
    }
}
