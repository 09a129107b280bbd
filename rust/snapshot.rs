// SPDX-License-Identifier: GPL-2.0
//! Snapshots, clones, rollback and promote of a pool's volumes, and what a
//! volume is (`kind`, `origin`, exclusive and shared space) for configfs.
//!
//! The work is the core's (`zvcore::pool`: copy-on-write shared block
//! tables, O(1) snapshot creation); this file names volumes, picks ids and
//! commits each operation before it returns, so that a snapshot or clone
//! that was reported created survives a crash.

use crate::engine::{core_err, Engine};
use crate::pool::ActivePool;
use kernel::prelude::*;

/// What a volume is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VolKind {
    /// A writable volume with no origin.
    Volume,
    /// A read-only snapshot.
    Snapshot,
    /// A writable volume cloned from a snapshot, not yet promoted.
    Clone,
}

impl VolKind {
    /// The configfs word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            VolKind::Volume => "volume",
            VolKind::Snapshot => "snapshot",
            VolKind::Clone => "clone",
        }
    }
}

/// A volume's description for configfs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VolInfo {
    pub(crate) kind: VolKind,
    /// Id of the origin (snapshot: its volume; clone: its snapshot).
    pub(crate) origin: Option<u32>,
    /// Size in blocks.
    pub(crate) size: u64,
    /// Mapped blocks, of which exclusive (the rest is shared).
    pub(crate) mapped: u64,
    pub(crate) exclusive: u64,
}

impl VolInfo {
    /// Mapped blocks shared with other volumes.
    pub(crate) fn shared(&self) -> u64 {
        self.mapped.saturating_sub(self.exclusive)
    }
}

/// Where the `@` of a snapshot name `VOLUME@SNAP` is, if it is one: exactly
/// one `@`, neither first nor last.
pub(crate) fn snapshot_split(name: &[u8]) -> Option<usize> {
    let at = name.iter().position(|&c| c == b'@')?;
    let rest = name.get(at + 1..)?;
    (at > 0 && !rest.is_empty() && !rest.contains(&b'@')).then_some(at)
}

/// A volume id no volume of `e` has (ids are never reused while the pool
/// is assembled: the highest plus one).
pub(crate) fn next_id(e: &Engine) -> u32 {
    e.volumes()
        .iter()
        .filter(|v| v.table.is_some())
        .map(|v| v.id.saturating_add(1))
        .max()
        .unwrap_or(1)
}

/// Description of volume `id` of `e`.
pub(crate) fn info_of(e: &Engine, id: u32) -> Option<VolInfo> {
    let v = e.volume(id)?;
    let t = v.table?;
    let kind = if v.read_only() {
        VolKind::Snapshot
    } else if v.origin.is_some() {
        VolKind::Clone
    } else {
        VolKind::Volume
    };
    let (mapped, exclusive) = match e.vol_space(id) {
        Ok(s) => (s.mapped, s.exclusive),
        Err(_) => (t.mapped(), t.mapped()),
    };
    Some(VolInfo {
        kind,
        origin: v.origin,
        size: t.size(),
        mapped,
        exclusive,
    })
}

/// The id of the volume named `name` in `e`.
pub(crate) fn id_of(e: &Engine, name: &[u8]) -> Option<u32> {
    e.volumes()
        .iter()
        .find(|v| v.table.is_some() && v.name.as_bytes() == name)
        .map(|v| v.id)
}

impl ActivePool {
    /// Description of volume `id`.
    pub(crate) fn vol_info(&self, id: u32) -> Option<VolInfo> {
        info_of(&self.lock_engine().engine, id)
    }

    /// Block-table nodes volume `id` reaches, and those only it reaches
    /// (`(0, 0)` if it does not exist). Walks its table under the engine
    /// lock: for `usage`, not for listings.
    pub(crate) fn vol_table_nodes(&self, id: u32) -> (u64, u64) {
        self.lock_engine()
            .engine
            .vol_table_nodes(id)
            .unwrap_or((0, 0))
    }

    /// Calls `f` with the name of volume `id` (for origins in listings).
    pub(crate) fn with_name<R>(&self, id: u32, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let st = self.lock_engine();
        f(st.engine.volume(id).map(|v| v.name.as_bytes()))
    }

    /// Takes snapshot `name` (`VOLUME@SNAP`) of VOLUME and commits it.
    /// Errors: `EINVAL` (not a snapshot name), `ENOENT` (no VOLUME),
    /// `EEXIST` (the name exists), or the core's.
    pub(crate) fn snap_create(&self, name: &[u8]) -> Result<u32> {
        let at = snapshot_split(name).ok_or(EINVAL)?;
        let vol = name.get(..at).ok_or(EINVAL)?;
        let id = {
            let mut st = self.lock_config();
            if id_of(&st.engine, name).is_some() {
                return Err(EEXIST);
            }
            let src = id_of(&st.engine, vol).ok_or(ENOENT)?;
            let id = next_id(&st.engine);
            st.engine.snap_create(src, id, name).map_err(core_err)?;
            id
        };
        self.commit()?;
        Ok(id)
    }

    /// Clones snapshot `snap` into a new writable volume `name` and commits.
    pub(crate) fn clone_volume(&self, snap: &[u8], name: &[u8]) -> Result<u32> {
        let id = {
            let mut st = self.lock_config();
            if id_of(&st.engine, name).is_some() {
                return Err(EEXIST);
            }
            let src = id_of(&st.engine, snap).ok_or(ENOENT)?;
            let id = next_id(&st.engine);
            st.engine.clone_volume(src, id, name).map_err(core_err)?;
            id
        };
        self.commit()?;
        Ok(id)
    }

    /// Rolls volume VOLUME back to its snapshot `snap` (`VOLUME@SNAP`) and
    /// commits. The caller makes sure VOLUME has no block device.
    pub(crate) fn rollback(&self, snap: &[u8]) -> Result {
        let at = snapshot_split(snap).ok_or(EINVAL)?;
        let vol = snap.get(..at).ok_or(EINVAL)?;
        {
            let mut st = self.lock_config();
            let s = id_of(&st.engine, snap).ok_or(ENOENT)?;
            let v = id_of(&st.engine, vol).ok_or(ENOENT)?;
            st.engine.rollback(v, s).map_err(core_err)?;
        }
        self.commit()
    }

    /// Promotes (flattens) volume `name` and commits.
    pub(crate) fn promote(&self, name: &[u8]) -> Result {
        {
            let mut st = self.lock_config();
            let v = id_of(&st.engine, name).ok_or(ENOENT)?;
            st.engine.promote(v).map_err(core_err)?;
        }
        self.commit()
    }
}
