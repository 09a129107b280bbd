// SPDX-License-Identifier: GPL-2.0
//! The pool engine's volume operations: create, delete, resize, snapshots,
//! clones, rollback and promote (each also applied by journal replay), and
//! the space a volume uses.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::journal::{VOL_FLAG_COPY, VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use super::super::format::{Record, Superblock, VolName};
use super::super::format::{INCOMPAT_DELTA_GROW, INCOMPAT_SHARED_BLOCKS};
use super::super::geom::DeviceGeometry;
use super::super::map::{BlockTable, NodeStore};
use super::super::sparse::RefMap;
use super::mirror::{copy_id, user_vol, COPY_ID_BIT};
use super::{inval, slots, Pool, VolEntry, VolSpace};

// Only named by the links in the docs.
#[cfg(doc)]
use super::super::alloc::Allocator;

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    // ---- volumes ------------------------------------------------------------

    /// Whether blocks may be shared between volumes (the superblock has
    /// [`INCOMPAT_SHARED_BLOCKS`]: set by the first snapshot or clone, for
    /// good).
    pub fn sharing(&self) -> bool {
        self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0
    }

    /// Sets [`INCOMPAT_SHARED_BLOCKS`] in the superblock (once): a new
    /// superblock generation, written by the next journal commit.
    pub(in super::super) fn enable_sharing(&mut self) {
        if !self.sharing() {
            self.sb.incompat |= INCOMPAT_SHARED_BLOCKS;
            self.sb.generation = self.sb.generation.saturating_add(1);
            self.sb_dirty = true;
        }
    }

    /// Whether the superblock has changes not yet on disk.
    pub fn superblock_dirty(&self) -> bool {
        self.sb_dirty
    }

    /// Pool blocks referenced by more than one block-table leaf (shared by
    /// snapshots or clones, counted once in [`Allocator::used_blocks`]).
    pub fn shared_blocks(&self) -> u64 {
        self.refs.shared_blocks()
    }

    /// Live blocks referenced more than once (by the tables of several
    /// volumes, snapshots or clones): the distinct live blocks minus those
    /// exactly one table references. Unlike [`Self::shared_blocks`] it also
    /// counts blocks of leaves shared whole (an untouched snapshot). Visits
    /// only the nodes a single table references, each once.
    pub fn shared_live_blocks(&self) -> u64 {
        // No block with a second holder and no table sharing a node:
        // nothing is shared. O(volumes) instead of a walk of every table
        // (`status` asks under the engine lock: 17 ms for 672 MiB mapped
        // under TCG, every read of the attribute).
        if self.refs.shared_blocks() == 0
            && self
                .vols
                .iter()
                .filter_map(|v| v.table)
                .all(|t| !t.is_shared())
        {
            return 0;
        }
        let inflight = self
            .alloc
            .zones()
            .iter()
            .fold(0u64, |s, z| s.saturating_add(z.inflight()));
        let live = self.alloc.used_blocks().saturating_sub(inflight);
        let exclusive = self.vols.iter().filter_map(|v| v.table).fold(0u64, |s, t| {
            s.saturating_add(t.exclusive(&self.nodes, &self.refs))
        });
        live.saturating_sub(exclusive)
    }

    /// The reference map of shared blocks.
    pub fn refs(&self) -> &RefMap {
        &self.refs
    }

    /// Creates volume `id` (empty, `size` blocks). With
    /// [`VOL_FLAG_MIRRORED`] in `flags`, a mirrored volume and its
    /// companion (`mirror`).
    pub fn vol_create(&mut self, id: u32, name: &[u8], size: u64, flags: u32) -> Result<()> {
        self.vol_live()?;
        if id & COPY_ID_BIT != 0 || flags & VOL_FLAG_COPY != 0 {
            return Err(Error::Invalid("volume id"));
        }
        if flags & VOL_FLAG_MIRRORED != 0 {
            return self.vol_create_mirrored(id, name, size);
        }
        self.vol_create_one(id, name, size, flags)
    }

    /// [`Self::vol_create`] of one volume.
    pub(super) fn vol_create_one(
        &mut self,
        id: u32,
        name: &[u8],
        size: u64,
        flags: u32,
    ) -> Result<()> {
        if self.vol_index(id).is_ok() {
            return Err(Error::Busy);
        }
        let name = VolName::new(name)?;
        let rec = Record::VolumeCreate {
            vol: id,
            size_blocks: size,
            flags,
            name,
        };
        rec.validate()
            .map_err(|_| Error::Invalid("volume parameters"))?;
        let table = BlockTable::new(id, size)?;
        let slot = slots::free_for(&self.vols, id).ok_or(Error::NoSpace)?;
        self.reserve(1)?;
        if let Some(v) = self.vols.get_mut(slot) {
            *v = VolEntry {
                id,
                flags,
                name,
                table: Some(table),
                ck_new: true,
                ..VolEntry::default()
            };
        }
        self.push_reserved(rec);
        Ok(())
    }

    /// Deletes volume `id` (a volume, snapshot or clone) and its mappings.
    /// Blocks still referenced by other volumes (snapshots, clones) stay;
    /// exactly the blocks nobody else references are freed. Volumes made
    /// from it keep their data (their origin is cleared).
    pub fn vol_delete(&mut self, id: u32) -> Result<()> {
        self.vol_live()?;
        user_vol(id)?;
        let i = self.vol_index(id)?;
        let ci = self.companion_slot(i)?;
        self.companion_room(i, 1)?;
        // The companion first (`mirror_safe_prefix`).
        if let Some(c) = ci.and_then(|c| self.vols.get(c)).map(|c| c.id) {
            self.vol_delete_one(c)?;
        }
        self.vol_delete_one(id)
    }

    /// [`Self::vol_delete`] of one volume.
    pub(super) fn vol_delete_one(&mut self, id: u32) -> Result<()> {
        self.ckpt_retry |= self.meta_full || self.meta_low;
        let i = self.vol_index(id)?;
        self.reserve(1)?;
        if let Err(e) = self.apply_delete(i) {
            self.unreserve(1);
            self.failed = true;
            return Err(e);
        }
        // Copies of it can no longer be made from its image in the chain
        // at assembly (its id may be given out again): stored whole.
        for v in self.vols.iter_mut().filter(|v| v.ck_copy_of == Some(id)) {
            v.ck_copy_of = None;
            v.ck_new = true;
        }
        self.push_reserved(Record::VolumeDelete { vol: id });
        Ok(())
    }

    /// Deletes the volume in slot `i` (engine and replay).
    pub(in super::super) fn apply_delete(&mut self, i: usize) -> Result<()> {
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut t = v.table.ok_or(Error::NotFound)?;
        let r = self.destroy_table(&mut t);
        slots::release(&mut self.vols, i);
        for w in self.vols.iter_mut().filter(|w| w.table.is_some()) {
            if w.origin == Some(v.id) {
                w.origin = None;
            }
            if w.parent == Some(v.id) {
                w.parent = v.parent;
            }
        }
        r
    }

    /// Releases table `t` (a volume's, or its old contents at a rollback):
    /// its exclusive nodes are freed and every block no other table
    /// references is invalidated (not during replay, which rebuilds counts).
    fn destroy_table(&mut self, t: &mut BlockTable) -> Result<()> {
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed, rep) = (
            &mut self.alloc,
            &mut self.zepoch,
            &mut self.failed,
            self.replaying,
        );
        t.destroy_shared(&mut self.nodes, &mut self.refs, |a, n| {
            if !rep {
                inval(alloc, zepoch, ep, failed, a, n)
            }
        })
    }

    /// Resizes volume `id` (shrinking drops the mappings beyond the end).
    /// Snapshots cannot be resized ([`Error::ReadOnly`]), nor a volume
    /// below its reservation (`Invalid`: lower the reservation first).
    pub fn vol_resize(&mut self, id: u32, size: u64) -> Result<()> {
        self.vol_live()?;
        user_vol(id)?;
        let i = self.vol_index(id)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::ReadOnly);
        }
        if self.vols.get(i).is_some_and(|v| v.reserve > size) {
            return Err(Error::Invalid("shrink below the volume's reservation"));
        }
        let ci = self.companion_slot(i)?;
        // A shrink may take more records: room for the companion's first.
        let old = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .map_or(0, |t| t.size());
        let nrec = old.saturating_sub(size).div_ceil(u64::from(u32::MAX)) as usize + 1;
        self.companion_room(i, nrec.saturating_mul(2))?;
        if let Some(c) = ci.and_then(|c| self.vols.get(c)).map(|c| c.id) {
            self.vol_resize_one(c, size)?;
        }
        self.vol_resize_one(id, size)
    }

    /// [`Self::vol_resize`] of one volume.
    fn vol_resize_one(&mut self, id: u32, size: u64) -> Result<()> {
        self.ckpt_retry |= self.meta_full || self.meta_low;
        let i = self.vol_index(id)?;
        if self.vols.get(i).is_some_and(|v| v.reserve > size) {
            return Err(Error::Invalid("shrink below the volume's reservation"));
        }
        let rec = Record::VolumeResize {
            vol: id,
            size_blocks: size,
        };
        rec.validate().map_err(|_| Error::Invalid("volume size"))?;
        let old = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .map(|t| t.size())
            .unwrap_or(0);
        // Shrinking a shared table may run out of nodes half way: the
        // dropped range is then journalled as unmapped (see `discard`).
        let step = u64::from(u32::MAX);
        let nunmap = old.saturating_sub(size).div_ceil(step) as usize;
        let nrec = nunmap.saturating_add(1);
        self.reserve(nrec)?;
        match self.apply_resize(i, size) {
            Ok(()) => {
                self.unreserve(nunmap);
                self.push_reserved(rec);
                Ok(())
            }
            Err(e) => {
                self.unreserve(1);
                let mut l = size;
                while l < old {
                    let n = old.saturating_sub(l).min(step);
                    self.push_reserved(Record::Unmap {
                        vol: id,
                        lba: l,
                        len: n as u32,
                    });
                    l = l.saturating_add(n);
                }
                Err(e)
            }
        }
    }

    /// Resizes the volume in slot `i` (engine and replay).
    pub(in super::super) fn apply_resize(&mut self, i: usize, size: u64) -> Result<()> {
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let old = t.size();
        let ep = self.cur_epoch;
        let (alloc, zepoch, failed, rep) = (
            &mut self.alloc,
            &mut self.zepoch,
            &mut self.failed,
            self.replaying,
        );
        let r = t.resize_shared(&mut self.nodes, &mut self.refs, size, |a, n| {
            if !rep {
                inval(alloc, zepoch, ep, failed, a, n)
            }
        });
        // A grow (with `INCOMPAT_DELTA_GROW`) keeps the table: what the
        // chain's image holds of it stays right, the next delta lists it
        // larger and carries its changes (the nodes a grow adds on top are
        // new, so all marked). A shrink redefines it: the change marks of
        // the range it drops go with the freed nodes.
        let grow = self.sb.incompat & INCOMPAT_DELTA_GROW != 0 && size >= old;
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
            if !grow {
                v.ck_new = true;
                v.ck_copy_of = None;
            } else if size > old && r.is_ok() {
                v.ck_grown = true;
            }
        }
        r
    }

    /// Takes a snapshot of volume `vol`: a new read-only volume `new_id`
    /// named `name` holding exactly what `vol` holds now (every write
    /// completed before this call, none after). O(1): the block table's root
    /// is shared copy-on-write, nothing is copied and no block is written;
    /// both volumes pay for the copies of the paths they change later.
    /// Sets [`INCOMPAT_SHARED_BLOCKS`] on the first use.
    ///
    /// Errors: [`Error::NotFound`] (no `vol`), [`Error::Busy`] (`new_id`
    /// exists, or the record queue is full: flush first), [`Error::NoSpace`]
    /// (no free volume slot), [`Error::Invalid`] (`vol` is itself a
    /// snapshot, bad name, too many references to one node).
    pub fn snap_create(&mut self, vol: u32, new_id: u32, name: &[u8]) -> Result<()> {
        self.vol_live()?;
        user_vol(vol)?;
        let i = self.vol_index(vol)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(false) {
            return Err(Error::Invalid("snapshot of a snapshot"));
        }
        self.share(i, new_id, name, VOL_FLAG_READONLY)
    }

    /// A snapshot or clone (`flags`) of the volume in slot `i`, and of its
    /// companion if it is mirrored.
    fn share(&mut self, i: usize, new_id: u32, name: &[u8], flags: u32) -> Result<()> {
        if new_id & COPY_ID_BIT != 0 {
            return Err(Error::Invalid("volume id"));
        }
        let mirrored = self.companion_slot(i)?.is_some();
        if mirrored {
            self.companion_room(i, 3)?;
            if self.vols.iter().filter(|v| v.table.is_none()).count() < 2 {
                return Err(Error::NoSpace);
            }
            let c = copy_id(new_id).ok_or(Error::Invalid("volume id"))?;
            if self.vol_index(c).is_ok() {
                return Err(Error::Busy);
            }
        }
        let mflag = if mirrored { VOL_FLAG_MIRRORED } else { 0 };
        self.share_raw(i, new_id, name, flags | mflag)?;
        let r = self.share_companion(i, new_id, name, flags);
        if r.is_err() {
            // (Room was checked: only a failure of the tables is left.)
            self.failed = true;
        }
        r
    }

    /// Clones snapshot `snap` into a new writable volume `new_id` named
    /// `name`, sharing all its blocks (O(1) like [`Self::snap_create`]);
    /// writes to the clone never change the snapshot, and the other way
    /// round. Errors as [`Self::snap_create`]; [`Error::Invalid`] if `snap`
    /// is not a snapshot.
    pub fn clone_volume(&mut self, snap: u32, new_id: u32, name: &[u8]) -> Result<()> {
        self.vol_live()?;
        user_vol(snap)?;
        let i = self.vol_index(snap)?;
        if self.vols.get(i).map(|v| v.read_only()) != Some(true) {
            return Err(Error::Invalid("clone source is not a snapshot"));
        }
        self.share(i, new_id, name, 0)
    }

    /// A snapshot or clone of the volume in slot `i` alone.
    pub(super) fn share_raw(
        &mut self,
        i: usize,
        new_id: u32,
        name: &[u8],
        flags: u32,
    ) -> Result<()> {
        if self.vol_index(new_id).is_ok() {
            return Err(Error::Busy);
        }
        let src = self.vols.get(i).map(|v| v.id).ok_or(Error::NotFound)?;
        let name = VolName::new(name)?;
        let rec = Record::Snapshot {
            vol: src,
            new_vol: new_id,
            flags,
            name,
        };
        rec.validate()
            .map_err(|_| Error::Invalid("snapshot parameters"))?;
        if !self.vols.iter().any(|v| v.table.is_none()) {
            return Err(Error::NoSpace);
        }
        self.reserve(1)?;
        if let Err(e) = self.apply_share(i, new_id, flags, name) {
            self.unreserve(1);
            return Err(e);
        }
        self.note_copy(i, new_id);
        self.push_reserved(rec);
        Ok(())
    }

    /// Volume `new_id` was just made sharing the table of slot `i`: if the
    /// newest checkpoint's chain holds that volume as it is (it was not
    /// redefined since), a delta can store the new one as a copy of it
    /// plus its changes (the nodes they share carry the marks of what
    /// changed since that checkpoint), rather than whole.
    fn note_copy(&mut self, i: usize, new_id: u32) {
        let Some(src) = self.vols.get(i).copied() else {
            return;
        };
        if src.ck_new || src.ck_copy_of.is_some() {
            return;
        }
        if let Some(v) = slots::find(&self.vols, new_id).and_then(|j| self.vols.get_mut(j)) {
            v.ck_new = false;
            v.ck_copy_of = Some(src.id);
            v.ck_rooted = src.ck_rooted;
        }
    }

    /// Creates volume `new_id` sharing the table of slot `i` (engine and
    /// replay of [`Record::Snapshot`]).
    pub(in super::super) fn apply_share(
        &mut self,
        i: usize,
        new_id: u32,
        flags: u32,
        name: VolName,
    ) -> Result<()> {
        let src = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut t = src.table.ok_or(Error::NotFound)?;
        let slot = slots::free_for(&self.vols, new_id).ok_or(Error::NoSpace)?;
        let c = t.clone_root(&mut self.nodes, new_id)?;
        let snapshot = flags & VOL_FLAG_READONLY != 0;
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
            if snapshot {
                // The snapshot takes the volume's place in its delta chain.
                v.parent = Some(new_id);
            }
        }
        if let Some(v) = self.vols.get_mut(slot) {
            *v = VolEntry {
                id: new_id,
                flags,
                name,
                table: Some(c),
                origin: Some(src.id),
                parent: if snapshot { src.parent } else { Some(src.id) },
                ck_new: true,
                ..VolEntry::default()
            };
        }
        self.enable_sharing();
        Ok(())
    }

    /// Rolls writable volume `vol` back to its snapshot `snap`: `vol` then
    /// holds exactly what `snap` holds (and has its size); blocks only the
    /// old contents referenced are freed. O(1) plus the release of the old
    /// contents' exclusive nodes. Writes in flight to `vol` that complete
    /// afterwards land on the rolled-back contents.
    ///
    /// Errors: [`Error::NotFound`], [`Error::ReadOnly`] (`vol` is a
    /// snapshot), [`Error::Invalid`] (`snap` is not a snapshot of `vol`),
    /// [`Error::Busy`] (record queue full).
    pub fn rollback(&mut self, vol: u32, snap: u32) -> Result<()> {
        self.vol_live()?;
        user_vol(vol)?;
        let i = self.vol_index(vol)?;
        let j = self.vol_index(snap)?;
        let (v, s) = match (self.vols.get(i), self.vols.get(j)) {
            (Some(v), Some(s)) => (*v, *s),
            _ => return Err(Error::NotFound),
        };
        if v.read_only() {
            return Err(Error::ReadOnly);
        }
        if !s.read_only() || s.origin != Some(vol) {
            return Err(Error::Invalid("rollback: not a snapshot of this volume"));
        }
        match (self.companion_slot(i)?, self.companion_slot(j)?) {
            (Some(ci), Some(cj)) => {
                self.companion_room(i, 1)?;
                let (cv, cs) = match (self.vols.get(ci), self.vols.get(cj)) {
                    (Some(a), Some(b)) => (a.id, b.id),
                    _ => return Err(Error::NotFound),
                };
                self.rollback_one(ci, cj, cv, cs)?;
            }
            (None, None) => {}
            _ => return Err(Error::Corrupt("rollback: one of the two mirrored")),
        }
        self.rollback_one(i, j, vol, snap)
    }

    /// [`Self::rollback`] of one volume (slot `i`, id `vol`) to one
    /// snapshot (slot `j`, id `snap`), checked.
    fn rollback_one(&mut self, i: usize, j: usize, vol: u32, snap: u32) -> Result<()> {
        self.reserve(1)?;
        if let Err(e) = self.apply_rollback(i, j) {
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(Record::Rollback { vol, snap });
        Ok(())
    }

    /// Replaces the table of slot `i` by a clone of slot `j`'s (engine and
    /// replay).
    pub(in super::super) fn apply_rollback(&mut self, i: usize, j: usize) -> Result<()> {
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        let mut old = v.table.ok_or(Error::NotFound)?;
        let s = *self.vols.get(j).ok_or(Error::NotFound)?;
        let mut st = s.table.ok_or(Error::NotFound)?;
        let new = st.clone_root(&mut self.nodes, v.id)?;
        if let Some(e) = self.vols.get_mut(j) {
            e.table = Some(st);
        }
        let r = self.destroy_table(&mut old);
        if let Some(e) = self.vols.get_mut(i) {
            e.table = Some(new);
            e.parent = Some(s.id);
            e.ck_new = true;
            e.ck_copy_of = None;
        }
        self.enable_sharing();
        r
    }

    /// Promotes (flattens) writable volume `vol`: every block-table node it
    /// shares is copied, so it no longer depends on its origin's metadata;
    /// its origin is cleared. Data blocks stay shared (counted once) until
    /// one side overwrites them. O(nodes of the volume). No-op for a volume
    /// without shared nodes or origin.
    ///
    /// Errors: [`Error::ReadOnly`] (a snapshot), [`Error::NoSpace`] (out of
    /// nodes: the volume is partly flattened, still correct; retry),
    /// [`Error::Busy`] (record queue full).
    pub fn promote(&mut self, vol: u32) -> Result<()> {
        self.vol_live()?;
        user_vol(vol)?;
        let i = self.vol_index(vol)?;
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        if v.read_only() {
            return Err(Error::ReadOnly);
        }
        if let Some(ci) = self.companion_slot(i)? {
            self.companion_room(i, 1)?;
            let c = self.vols.get(ci).map(|c| c.id).ok_or(Error::NotFound)?;
            self.promote_one(ci, c)?;
        }
        self.promote_one(i, vol)
    }

    /// [`Self::promote`] of the volume in slot `i` alone.
    fn promote_one(&mut self, i: usize, vol: u32) -> Result<()> {
        let v = *self.vols.get(i).ok_or(Error::NotFound)?;
        let t = v.table.ok_or(Error::NotFound)?;
        if !t.is_shared() && v.origin.is_none() && v.parent.is_none() {
            return Ok(());
        }
        self.reserve(1)?;
        if let Err(e) = self.apply_promote(i) {
            self.unreserve(1);
            return Err(e);
        }
        self.push_reserved(Record::Promote { vol });
        Ok(())
    }

    /// Flattens slot `i` (engine and replay).
    pub(in super::super) fn apply_promote(&mut self, i: usize) -> Result<()> {
        let mut t = self
            .vols
            .get(i)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let r = t.flatten(&mut self.nodes, &mut self.refs);
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
            v.ck_new = true;
            v.ck_copy_of = None;
            if r.is_ok() {
                v.origin = None;
                v.parent = None;
            }
        }
        r
    }

    /// Space of volume `vol`: mapped blocks, of which exclusive (only this
    /// volume references them: freed by deleting it) and shared (with
    /// snapshots / clones). O(nodes of the volume).
    pub fn vol_space(&self, vol: u32) -> Result<VolSpace> {
        let t = self
            .volume(vol)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        // A table that never shared a node, in a pool where no block has
        // a second holder, owns all it maps: O(1) instead of a walk of the
        // table (seconds for a large one, and listings ask for every
        // volume's).
        if !t.is_shared() && self.refs.shared_blocks() == 0 {
            return Ok(VolSpace {
                mapped: t.mapped(),
                exclusive: t.mapped(),
                shared: 0,
            });
        }
        let s = t.space(&self.nodes, &self.refs);
        Ok(VolSpace {
            mapped: s.mapped,
            exclusive: s.exclusive,
            shared: s.mapped.saturating_sub(s.exclusive),
        })
    }

    /// The table nodes of volume `vol`: all its table reaches, and those
    /// only it reaches. O(nodes of the table).
    pub fn vol_table_nodes(&self, vol: u32) -> Result<(u64, u64)> {
        let t = self
            .volume(vol)
            .and_then(|v| v.table)
            .ok_or(Error::NotFound)?;
        let s = t.space(&self.nodes, &self.refs);
        Ok((s.nodes, s.exclusive_nodes))
    }
}
