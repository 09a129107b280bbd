// SPDX-License-Identifier: GPL-2.0
//! The world's volume operations: create, delete, snapshot, clone,
//! rollback, promote, space rules and resize.

use super::*;
use zvcore::format::journal::VOL_FLAG_MIRRORED;

impl World {
    /// Creates volume `id` named `name` of `size` blocks, in the pool and
    /// the model (the tests' own volumes; random ones take later ids).
    pub fn create_volume(&mut self, id: u32, name: &[u8], size: u64) {
        self.pool()
            .vol_create(id, name, size, 0)
            .unwrap_or_else(|e| panic!("create volume {id}: {e:?}"));
        self.vols.push(VolModel::new(id, size));
        self.next_vol = self.next_vol.max(id + 1);
    }

    /// Snapshot `id` of volume `src` (named `name`), in the pool and the
    /// model.
    pub fn snapshot_volume(&mut self, src: u32, id: u32, name: &[u8]) {
        self.pool()
            .snap_create(src, id, name)
            .unwrap_or_else(|e| panic!("snapshot {id} of {src}: {e:?}"));
        let i = self.vols.iter().position(|v| v.id == src).expect("source");
        let m = self.vols[i].copy_as(id, true);
        self.vols.push(m);
        self.next_vol = self.next_vol.max(id + 1);
    }

    /// Resizes volume `id` to `size` blocks, in the pool and the model.
    pub fn resize_volume(&mut self, id: u32, size: u64) {
        self.pool()
            .vol_resize(id, size)
            .unwrap_or_else(|e| panic!("resize {id}: {e:?}"));
        let v = self.vols.iter_mut().find(|v| v.id == id).expect("volume");
        v.blocks.resize(size as usize, BlockModel::default());
    }

    /// Deletes volume `id` (writes in flight completed first), in the pool
    /// and the model.
    pub fn delete_volume(&mut self, id: u32) {
        self.complete_all();
        self.pool()
            .vol_delete(id)
            .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
        self.vols.retain(|v| v.id != id);
    }

    pub fn vol_op(&mut self) {
        self.complete_all();
        // A volume operation needs a free record slot (else `Busy`, which
        // the kernel answers by committing first): commit a nearly full
        // queue.
        if self.pool_ref().pending_records() + 4 > RECORD_QUEUE {
            while !self.commit(false) {}
        }
        self.st.vol_ops += 1;
        let cap = self.data_capacity();
        let total: u64 = self.vols.iter().map(|v| v.blocks.len() as u64).sum();
        let budget = cap * self.fill_pct / 100;
        let room = self.vols.len() < 10;
        // Snapshots and clones: each may end up holding its full size, so
        // they may use the pool up to 85% (volumes alone: `fill_pct`).
        let share_budget = cap * 85 / 100;
        let choice = match self.rng.below(11) {
            0 => 0,     // create
            1 => 1,     // delete
            2..=4 => 2, // snapshot
            5 => 3,     // clone
            6 => 4,     // rollback
            7 => 5,     // promote
            8 => 7,     // space rules
            _ => 6,     // resize
        };
        // Companions are never named: their volume's operations apply to
        // them too (`mirror_model` follows).
        let idx = |w: &mut World, f: &dyn Fn(&VolModel) -> bool| -> Option<usize> {
            let c: Vec<usize> = (0..w.vols.len())
                .filter(|&i| f(&w.vols[i]) && w.vols[i].id & COPY_ID_BIT == 0)
                .collect();
            (!c.is_empty()).then(|| c[w.rng.below(c.len() as u64) as usize])
        };
        match choice {
            0 if room => {
                let size = self.rng.range(0, 400).min(budget.saturating_sub(total));
                let id = self.next_vol;
                self.next_vol += 1;
                let name = format!("vol{id}");
                // A quarter mirrored, where two members take blocks.
                let flags = if self.geoms.len() >= 2 && self.rng.pct(25) {
                    VOL_FLAG_MIRRORED
                } else {
                    0
                };
                if self
                    .pool()
                    .vol_create(id, name.as_bytes(), size, flags)
                    .is_err()
                {
                    return;
                }
                self.vols.push(VolModel::new(id, size));
                if let Some(c) = self.pool_ref().copy_of(id) {
                    self.st.mirrored_vols += 1;
                    self.vols.push(VolModel::new(c, size));
                }
            }
            1 if self.vols.len() > 1 => {
                let Some(i) = idx(self, &|_| true) else {
                    return;
                };
                let id = self.vols[i].id;
                let copy = self.pool_ref().copy_of(id);
                if self.pool().vol_delete(id).is_err() {
                    return;
                }
                self.st.deletes += 1;
                for gone in [Some(id), copy].into_iter().flatten() {
                    self.vols.retain(|v| v.id != gone);
                    for v in self.vols.iter_mut() {
                        if v.origin == Some(gone) {
                            v.origin = None;
                        }
                    }
                    self.dirty.retain(|(v, _)| *v != gone);
                }
            }
            2 | 3 if room => {
                // Snapshot of a volume, or clone of a snapshot.
                let snap = choice == 2;
                let Some(i) = idx(self, &|v| v.ro != snap) else {
                    return;
                };
                let size = self.vols[i].blocks.len() as u64;
                if total + size > share_budget {
                    return;
                }
                let src = self.vols[i].id;
                let id = self.next_vol;
                self.next_vol += 1;
                let name = format!("{}{id}", if snap { "snap" } else { "clone" });
                let r = if snap {
                    self.pool().snap_create(src, id, name.as_bytes())
                } else {
                    self.pool().clone_volume(src, id, name.as_bytes())
                };
                r.unwrap_or_else(|e| panic!("snapshot/clone of {src}: {e:?}"));
                let m = self.vols[i].copy_as(id, snap);
                self.vols.push(m);
                if let (Some(cs), Some(cn)) = (self.pool_ref().copy_of(src), copy_id(id)) {
                    let c = self.vols.iter().find(|v| v.id == cs).expect("companion");
                    let m = c.copy_as(cn, snap);
                    self.vols.push(m);
                }
                if snap {
                    self.st.snapshots += 1;
                } else {
                    self.st.clones += 1;
                }
            }
            4 => {
                // Rollback of a volume to one of its snapshots.
                let Some(si) = idx(self, &|v| v.ro && v.origin.is_some()) else {
                    return;
                };
                let (sid, vid) = (self.vols[si].id, self.vols[si].origin.unwrap());
                if !self.vols.iter().any(|v| v.id == vid) {
                    return;
                }
                self.pool()
                    .rollback(vid, sid)
                    .unwrap_or_else(|e| panic!("rollback of {vid} to {sid}: {e:?}"));
                let copies = self.pool_ref().copy_of(vid).zip(copy_id(sid));
                for (v, s) in [(vid, sid)].into_iter().chain(copies) {
                    let vi = self.vols.iter().position(|m| m.id == v).expect("volume");
                    let si = self.vols.iter().position(|m| m.id == s).expect("snapshot");
                    let mut m = self.vols[si].copy_as(v, false);
                    m.origin = self.vols[vi].origin;
                    m.rules = self.vols[vi].rules;
                    self.vols[vi] = m;
                    self.dirty.retain(|(d, _)| *d != v);
                }
                self.st.rollbacks += 1;
            }
            5 => {
                // Promote (flatten) a writable volume, mostly clones.
                let Some(i) =
                    idx(self, &|v| !v.ro && v.origin.is_some()).or_else(|| idx(self, &|v| !v.ro))
                else {
                    return;
                };
                let id = self.vols[i].id;
                let copy = self.pool_ref().copy_of(id);
                match self.pool().promote(id) {
                    Ok(()) => {
                        self.vols[i].origin = None;
                        if let Some(v) = self.vols.iter_mut().find(|v| Some(v.id) == copy) {
                            v.origin = None;
                        }
                        self.st.promotes += 1;
                    }
                    Err(Error::NoSpace) => return,
                    Err(e) => panic!("promote {id}: {e:?}"),
                }
            }
            7 => {
                // A quota and a reservation (or none), on a writable volume.
                let Some(i) = idx(self, &|v| !v.ro) else {
                    return;
                };
                let (id, size) = (self.vols[i].id, self.vols[i].blocks.len() as u64);
                let pick = |w: &mut World, div: u64| {
                    if w.rng.pct(40) {
                        0
                    } else {
                        w.rng.range(1, size / div + 2)
                    }
                };
                let quota = pick(self, 1);
                let reserve = pick(self, 4).min(size);
                let r = SpaceRules { quota, reserve };
                match self.pool().set_space_rules(id, r) {
                    Ok(()) => {
                        self.vols[i].rules = r;
                        self.st.rules_set += 1;
                    }
                    // The pool cannot hold the reservation now.
                    Err(Error::NoSpace) => return,
                    Err(e) => panic!("space rules of {id}: {e:?}"),
                }
            }
            _ if !self.vols.is_empty() => {
                let Some(i) = idx(self, &|_| true) else {
                    return;
                };
                let id = self.vols[i].id;
                let old = self.vols[i].blocks.len() as u64;
                let size = self
                    .rng
                    .range(0, (old + 200).min(old + budget.saturating_sub(total)));
                if self.vols[i].ro {
                    assert_eq!(self.pool().vol_resize(id, size), Err(Error::ReadOnly));
                    self.st.ro_refused += 1;
                    return;
                }
                if self.pool().vol_resize(id, size).is_err() {
                    return;
                }
                let copy = self.pool_ref().copy_of(id);
                for id in [Some(id), copy].into_iter().flatten() {
                    let v = self.vols.iter_mut().find(|v| v.id == id).expect("volume");
                    v.blocks.truncate(size as usize);
                    v.blocks.resize(size as usize, BlockModel::default());
                    self.dirty.retain(|(vv, l)| *vv != id || *l < size);
                }
            }
            _ => {}
        }
        // Volume operations are committed at once.
        while !self.commit(false) {}
    }
}
