// SPDX-License-Identifier: GPL-2.0
//! Snapshots, clones, rollback and promote of a pool's volumes, and the
//! extents that differ between two snapshots (what a volume is, for
//! configfs, is `volinfo.rs`).
//!
//! The work is the core's (`zvcore::pool`: copy-on-write shared block
//! tables, O(1) snapshot creation); this file names volumes, picks ids and
//! commits each operation before it returns, so that a snapshot or clone
//! that was reported created survives a crash.

use crate::engine::{core_err, Engine};
use crate::pool::ActivePool;
use crate::volinfo::{id_of, info_of, next_id, snapshot_split, VolInfo};
use crate::zvcore::{
    format::BLOCK_SIZE,
    map::{BlockTable, Diff},
};
use core::fmt::Write as _;
use kernel::prelude::*;
use kernel::str::Formatter;

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

    /// Appends to `out` the extents of snapshot `snap` that differ from
    /// snapshot `base` (or, without a base, every extent `snap` maps), for
    /// `zvpoolctl snapshot send`: a line `size BYTES`, then one line per
    /// difference in volume order, `map OFFSET LENGTH` (data to send: the
    /// snapshot's blocks there) or `unmap OFFSET LENGTH` (zeros), in bytes.
    /// Subtrees both tables share are skipped, so the cost follows what
    /// changed between the two. Both must be snapshots (read-only: they do
    /// not change between the [`DIFF_BATCH`] differences listed per engine
    /// lock hold); nothing is allocated under the lock.
    pub(crate) fn diff_listing(
        &self,
        snap: &[u8],
        base: Option<&[u8]>,
        out: &mut KVVec<u8>,
    ) -> Result {
        let mut batch = KVVec::from_elem(0u8, (DIFF_BATCH + 1) * DIFF_LINE, GFP_KERNEL)?;
        let mut from = Some(0u64);
        while let Some(at) = from {
            let n = {
                let st = self.state.lock();
                let e = &*st.engine;
                let t = snapshot_table(e, snap)?;
                let b = match base {
                    Some(name) => snapshot_table(e, name)?,
                    None => BlockTable::new(t.vol(), 0).map_err(core_err)?,
                };
                let mut f = Formatter::new(&mut batch);
                if at == 0 {
                    writeln!(f, "size {}", t.size().saturating_mul(BS)).map_err(|_| EINVAL)?;
                }
                from = None;
                let mut cur = at;
                for _ in 0..DIFF_BATCH {
                    let (word, lba, len) = match t.next_diff(e.nodes(), &b, cur) {
                        Some(Diff::Map(x)) => ("map", x.lba, x.len),
                        Some(Diff::Unmap { lba, len }) => ("unmap", lba, len),
                        None => break,
                    };
                    writeln!(
                        f,
                        "{} {} {}",
                        word,
                        lba.saturating_mul(BS),
                        len.saturating_mul(BS)
                    )
                    .map_err(|_| EINVAL)?;
                    cur = lba.saturating_add(len.max(1));
                    from = Some(cur);
                }
                f.bytes_written()
            };
            out.extend_from_slice(batch.get(..n).unwrap_or(&[]), GFP_KERNEL)?;
        }
        Ok(())
    }
}

/// Differences listed per engine lock hold by [`ActivePool::diff_listing`].
const DIFF_BATCH: usize = 256;
/// Room for one line of it (`unmap`, two numbers of up to 20 digits).
const DIFF_LINE: usize = 48;
/// Bytes per block.
const BS: u64 = BLOCK_SIZE as u64;

/// The block table of snapshot `name` of `e`: `ENOENT` if there is none,
/// `EINVAL` if `name` is not a snapshot (a writable volume changes while it
/// is listed).
fn snapshot_table(e: &Engine, name: &[u8]) -> Result<BlockTable> {
    let v = id_of(e, name).and_then(|id| e.volume(id)).ok_or(ENOENT)?;
    if !v.read_only() {
        return Err(EINVAL);
    }
    v.table.ok_or(ENOENT)
}
