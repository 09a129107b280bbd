// SPDX-License-Identifier: GPL-2.0
//! Loading the volume records of a checkpoint, and of a delta checkpoint
//! that carries volume operations (feature `INCOMPAT_DELTA_VOLUMES`,
//! `format::checkpoint::section::REDEFINED`): the copies it starts with,
//! the volume table that keeps, creates and (by omission) deletes
//! volumes, and the checks that a delta redefines only what it says it
//! does. Assembly only (`recovery::checkpoint`).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::{Record, Superblock, VolName, INCOMPAT_DELTA_GROW};
use super::super::geom::DeviceGeometry;
use super::super::map::{BlockTable, NodeStore};
use super::{slots, Pool, VolEntry};

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
    /// Copy record of a delta: volume `new` starts as a copy of volume
    /// `src` as loaded so far (an older volume of id `new` is deleted
    /// first; the volume table that follows gives its flags and name).
    pub(in super::super) fn delta_vol_copy(&mut self, new: u32, src: u32) -> Result<()> {
        let bad = Error::Corrupt("checkpoint: copy of an unknown volume");
        let i = slots::find(&self.vols, src).ok_or(bad)?;
        let v = *self.vols.get(i).ok_or(bad)?;
        // The source is a volume of the chain's image, not a copy made here.
        if new == src || v.ck_copy_of.is_some() {
            return Err(bad);
        }
        if let Some(j) = slots::find(&self.vols, new) {
            if self.vols.get(j).is_some_and(|w| w.ck_copy_of.is_some()) {
                return Err(Error::Corrupt("checkpoint: volume copied twice"));
            }
            self.apply_delete(j)?;
        }
        let i = slots::find(&self.vols, src).ok_or(bad)?;
        let mut t = self.vols.get(i).and_then(|v| v.table).ok_or(bad)?;
        let c = t.clone_root(&mut self.nodes, new)?;
        if let Some(v) = self.vols.get_mut(i) {
            v.table = Some(t);
        }
        let slot = slots::free_for(&self.vols, new).ok_or(Error::NoSpace)?;
        if let Some(e) = self.vols.get_mut(slot) {
            *e = VolEntry {
                id: new,
                flags: v.flags,
                name: v.name,
                table: Some(c),
                ck_copy_of: Some(src),
                ..VolEntry::default()
            };
        }
        Ok(())
    }

    /// A delta's volume table begins: no volume is marked as staying yet.
    pub(in super::super) fn delta_vols_open(&mut self) {
        for v in self.vols.iter_mut() {
            v.ck_done = false;
        }
    }

    /// Volume record `id` of a delta's volume table: a volume loaded so far
    /// stays as it is (the record must describe it unchanged, but for the
    /// flags and name of a copy, and, with [`INCOMPAT_DELTA_GROW`], a
    /// larger size of a writable volume or a copy: it is grown to it, as
    /// the engine grew it; a shrink redefines a volume); another one is
    /// created empty and marked redefined (its table follows whole or
    /// against a base).
    pub(in super::super) fn delta_vol_keep(
        &mut self,
        id: u32,
        flags: u32,
        size: u64,
        name: VolName,
    ) -> Result<()> {
        if let Some(i) = slots::find(&self.vols, id) {
            let grows = self.sb.incompat & INCOMPAT_DELTA_GROW != 0;
            let v = self.vols.get_mut(i).ok_or(Error::Corrupt("volume"))?;
            let copy = v.ck_copy_of.is_some();
            let old = v.table.map(|t| t.size());
            // The engine resizes only writable volumes; a copy may have
            // been made of one after it grew.
            let grow = grows && old.is_some_and(|o| o < size) && (copy || !v.read_only());
            let same =
                (copy || (v.flags == flags && v.name == name)) && (old == Some(size) || grow);
            if v.ck_done || !same {
                return Err(Error::Corrupt(
                    "checkpoint: delta changes a volume it keeps",
                ));
            }
            if grow {
                // The engine's resize, as journal replay applies it: the
                // volume stays kept (its changes follow).
                self.apply_resize(i, size).map_err(|e| match e {
                    Error::NoSpace => e,
                    _ => Error::Corrupt("checkpoint: delta does not apply"),
                })?;
            }
            let v = self.vols.get_mut(i).ok_or(Error::Corrupt("volume"))?;
            v.flags = flags;
            v.name = name;
            v.ck_done = true;
            return Ok(());
        }
        let slot = self.load_volume(id, flags, size, name)?;
        if let Some(v) = self.vols.get_mut(slot) {
            v.ck_done = true;
            v.ck_new = true;
        }
        Ok(())
    }

    /// A volume record of a checkpoint: volume `id` created empty (its
    /// table follows). Returns its slot.
    pub(in super::super) fn load_volume(
        &mut self,
        id: u32,
        flags: u32,
        size: u64,
        name: VolName,
    ) -> Result<usize> {
        let t = BlockTable::new(id, size).map_err(|_| Error::BadField("volume size"))?;
        let slot = slots::free_for(&self.vols, id).ok_or(Error::NoSpace)?;
        if let Some(v) = self.vols.get_mut(slot) {
            *v = VolEntry {
                id,
                flags,
                name,
                table: Some(t),
                ..VolEntry::default()
            };
        }
        Ok(slot)
    }

    /// The end of a delta's volume table: the volumes it does not list are
    /// deleted; links and space rules are cleared (the delta holds them
    /// all).
    pub(in super::super) fn delta_vols_sweep(&mut self) -> Result<()> {
        for i in 0..self.vols.len() {
            if self
                .vols
                .get(i)
                .is_some_and(|v| v.table.is_some() && !v.ck_done)
            {
                self.apply_delete(i)?;
            }
        }
        for v in self.vols.iter_mut().filter(|v| v.table.is_some()) {
            v.ck_done = false;
            v.origin = None;
            v.parent = None;
            v.quota = 0;
            v.reserve = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::format::journal::VOL_FLAG_READONLY;
    use super::super::tests::one_member_pool;
    use super::*;

    fn name(s: &[u8]) -> VolName {
        VolName::new(s).unwrap()
    }

    /// A kept volume must be listed once and unchanged (a copy may take
    /// other flags and name); one not listed is deleted at the sweep; an
    /// unknown one is created empty, redefined.
    #[test]
    fn a_delta_volume_table_keeps_only_what_it_lists_unchanged() {
        let mut p = one_member_pool(16, 64, 256);
        p.vol_create(1, b"a", 100, 0).unwrap();
        p.vol_create(2, b"b", 50, 0).unwrap();
        p.delta_vols_open();
        let bad = Err(Error::Corrupt(
            "checkpoint: delta changes a volume it keeps",
        ));
        assert_eq!(p.delta_vol_keep(1, 0, 99, name(b"a")), bad, "smaller");
        p.sb.incompat &= !INCOMPAT_DELTA_GROW;
        assert_eq!(p.delta_vol_keep(1, 0, 101, name(b"a")), bad, "no grows");
        assert!(p.delta_vol_keep(1, 0, 100, name(b"other")).is_err());
        p.delta_vol_keep(1, 0, 100, name(b"a")).unwrap();
        assert!(
            p.delta_vol_keep(1, 0, 100, name(b"a")).is_err(),
            "listed twice"
        );
        p.delta_vol_keep(3, 0, 10, name(b"c")).unwrap();
        assert!(p.volume(3).is_some_and(|v| v.ck_new));
        p.delta_vols_sweep().unwrap();
        assert!(p.volume(2).is_none(), "not listed: deleted");
        assert!(p.volume(1).is_some() && p.volume(3).is_some());
    }

    /// With `INCOMPAT_DELTA_GROW` a kept writable volume or a copy listed
    /// larger is grown (kept: not redefined), a kept snapshot is not.
    #[test]
    fn a_delta_volume_table_grows_what_it_lists_larger() {
        let mut p = one_member_pool(16, 64, 256);
        assert!(p.sb.incompat & INCOMPAT_DELTA_GROW != 0, "new pools");
        p.nodes.sharing = true;
        p.vol_create(1, b"a", 100, 0).unwrap();
        p.snap_create(1, 2, b"a@s").unwrap();
        p.delta_vol_copy(3, 1).unwrap();
        for v in p.vols.iter_mut() {
            v.ck_new = false;
        }
        p.delta_vols_open();
        p.delta_vol_keep(1, 0, 5000, name(b"a")).unwrap();
        assert_eq!(
            p.delta_vol_keep(2, VOL_FLAG_READONLY, 200, name(b"a@s")),
            Err(Error::Corrupt(
                "checkpoint: delta changes a volume it keeps"
            )),
            "a snapshot"
        );
        p.delta_vol_keep(3, VOL_FLAG_READONLY, 300, name(b"a@t"))
            .unwrap();
        for (id, size) in [(1, 5000), (3, 300)] {
            let v = *p.volume(id).unwrap();
            assert_eq!(v.table.map(|t| t.size()), Some(size));
            assert!(v.ck_grown && !v.ck_new, "{id}: kept, grown");
        }
    }

    /// A copy starts as its source's table, replaces an older volume of
    /// its id, takes flags and name from the volume table; a copy of a
    /// copy, a volume copied twice and an unknown source are refused.
    #[test]
    fn a_delta_copy_clones_its_source_once() {
        let mut p = one_member_pool(16, 64, 256);
        p.nodes.sharing = true;
        p.vol_create(1, b"a", 100, 0).unwrap();
        p.vol_create(2, b"old", 7, 0).unwrap();
        let bad = Err(Error::Corrupt("checkpoint: copy of an unknown volume"));
        assert_eq!(p.delta_vol_copy(5, 9), bad);
        assert_eq!(p.delta_vol_copy(1, 1), bad);
        p.delta_vol_copy(2, 1).unwrap();
        let c = *p.volume(2).unwrap();
        assert_eq!(c.table.map(|t| t.size()), Some(100), "the source's table");
        assert_eq!(c.ck_copy_of, Some(1));
        assert_eq!(p.delta_vol_copy(3, 2), bad, "a copy of a copy");
        assert_eq!(
            p.delta_vol_copy(2, 1),
            Err(Error::Corrupt("checkpoint: volume copied twice"))
        );
        p.delta_vols_open();
        p.delta_vol_keep(1, 0, 100, name(b"a")).unwrap();
        p.delta_vol_keep(2, 1, 100, name(b"a@s")).unwrap();
        let c = *p.volume(2).unwrap();
        assert_eq!((c.flags, c.name), (1, name(b"a@s")));
    }
}
