// SPDX-License-Identifier: GPL-2.0
//! Snapshots, clones, rollback and promote of a pool's volumes (what a
//! volume is, for configfs, is `volinfo.rs`).
//!
//! The work is the core's (`zvcore::pool`: copy-on-write shared block
//! tables, O(1) snapshot creation); this file names volumes, picks ids and
//! commits each operation before it returns, so that a snapshot or clone
//! that was reported created survives a crash.

use crate::engine::core_err;
use crate::pool::ActivePool;
use crate::volinfo::{id_of, info_of, next_id, snapshot_split, VolInfo};
use kernel::prelude::*;

impl ActivePool {
    /// Description of volume `id`.
    pub(crate) fn vol_info(&self, id: u32) -> Option<VolInfo> {
        info_of(&self.state.lock().engine, id)
    }

    /// Block-table nodes volume `id` reaches, and those only it reaches
    /// (`(0, 0)` if it does not exist). Walks its table under the engine
    /// lock: for `usage`, not for listings.
    pub(crate) fn vol_table_nodes(&self, id: u32) -> (u64, u64) {
        self.state
            .lock()
            .engine
            .vol_table_nodes(id)
            .unwrap_or((0, 0))
    }

    /// Calls `f` with the name of volume `id` (for origins in listings).
    pub(crate) fn with_name<R>(&self, id: u32, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let st = self.state.lock();
        f(st.engine.volume(id).map(|v| v.name.as_bytes()))
    }

    /// Takes snapshot `name` (`VOLUME@SNAP`) of VOLUME and commits it.
    /// Errors: `EINVAL` (not a snapshot name), `ENOENT` (no VOLUME),
    /// `EEXIST` (the name exists), or the core's.
    pub(crate) fn snap_create(&self, name: &[u8]) -> Result<u32> {
        let at = snapshot_split(name).ok_or(EINVAL)?;
        let vol = name.get(..at).ok_or(EINVAL)?;
        self.vol_op(|e| {
            if id_of(e, name).is_some() {
                return Err(EEXIST);
            }
            let src = id_of(e, vol).ok_or(ENOENT)?;
            let id = next_id(e);
            e.snap_create(src, id, name).map_err(core_err)?;
            Ok(id)
        })
    }

    /// Clones snapshot `snap` into a new writable volume `name` and commits.
    pub(crate) fn clone_volume(&self, snap: &[u8], name: &[u8]) -> Result<u32> {
        self.vol_op(|e| {
            if id_of(e, name).is_some() {
                return Err(EEXIST);
            }
            let src = id_of(e, snap).ok_or(ENOENT)?;
            let id = next_id(e);
            e.clone_volume(src, id, name).map_err(core_err)?;
            Ok(id)
        })
    }

    /// Rolls volume VOLUME back to its snapshot `snap` (`VOLUME@SNAP`) and
    /// commits. The caller makes sure VOLUME has no block device.
    pub(crate) fn rollback(&self, snap: &[u8]) -> Result {
        let at = snapshot_split(snap).ok_or(EINVAL)?;
        let vol = snap.get(..at).ok_or(EINVAL)?;
        self.vol_op(|e| {
            let s = id_of(e, snap).ok_or(ENOENT)?;
            let v = id_of(e, vol).ok_or(ENOENT)?;
            e.rollback(v, s).map_err(core_err)
        })
    }

    /// Promotes (flattens) volume `name` and commits.
    pub(crate) fn promote(&self, name: &[u8]) -> Result {
        self.vol_op(|e| {
            let v = id_of(e, name).ok_or(ENOENT)?;
            e.promote(v).map_err(core_err)
        })
    }
}
