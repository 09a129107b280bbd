// SPDX-License-Identifier: GPL-2.0
//! The world's writes, discards, zone maintenance and GC, and their
//! completions in the reference model.

use super::store::FAIL_ONE_IN;
use super::*;

impl World {
    // ---- model commit helpers --------------------------------------------

    pub fn complete(&mut self, vol: u32, lba: u64, ver: u64) {
        self.completions += 1;
        let c = self.completions;
        if let Some(v) = self.vols.iter_mut().find(|v| v.id == vol) {
            if let Some(b) = v.blocks.get_mut(lba as usize) {
                b.cur = ver;
                b.hist.push((c, ver));
                self.dirty.insert((vol, lba));
            }
        }
    }

    /// Everything completed up to completion index `upto` is committed.
    pub fn committed(&mut self, upto: u64) {
        let dirty: Vec<(u32, u64)> = self.dirty.iter().copied().collect();
        for (vol, lba) in dirty {
            let Some(v) = self.vols.iter_mut().find(|v| v.id == vol) else {
                self.dirty.remove(&(vol, lba));
                continue;
            };
            let Some(b) = v.blocks.get_mut(lba as usize) else {
                self.dirty.remove(&(vol, lba));
                continue;
            };
            if let Some(&(_, ver)) = b.hist.iter().rev().find(|(i, _)| *i <= upto) {
                b.durable = ver;
            }
            b.hist.retain(|(i, _)| *i > upto);
            if b.hist.is_empty() {
                self.dirty.remove(&(vol, lba));
            }
        }
    }

    // ---- operations ---------------------------------------------------------

    pub fn pick_vol(&mut self) -> Option<(u32, u64)> {
        if self.vols.is_empty() {
            return None;
        }
        let v = &self.vols[self.rng.below(self.vols.len() as u64) as usize];
        Some((v.id, v.blocks.len() as u64))
    }

    /// A random writable volume (a snapshot now and then: the engine must
    /// refuse to write it).
    pub fn pick_writable(&mut self) -> Option<(u32, u64)> {
        let (vol, size) = self.pick_vol()?;
        // Companions are written with their mirrored volume (and nothing
        // may name them).
        if vol & COPY_ID_BIT != 0 {
            return None;
        }
        let ro = self.vols.iter().any(|v| v.id == vol && v.ro);
        if !ro {
            return Some((vol, size));
        }
        if size > 0 && self.rng.pct(10) {
            let p = self.pool();
            assert_eq!(
                p.write_begin(vol, 0, 1, Stream::UserHot).err(),
                Some(Error::ReadOnly),
                "write to snapshot {vol}"
            );
            assert_eq!(p.discard(vol, 0, 1).err(), Some(Error::ReadOnly));
            self.st.ro_refused += 1;
        }
        let w: Vec<(u32, u64)> = self
            .vols
            .iter()
            .filter(|v| !v.ro && v.id & COPY_ID_BIT == 0)
            .map(|v| (v.id, v.blocks.len() as u64))
            .collect();
        if w.is_empty() {
            return None;
        }
        Some(w[self.rng.below(w.len() as u64) as usize])
    }

    pub fn do_write(&mut self) {
        // Mirrored writes dropped during a checkpoint, again.
        if !self.pool_ref().checkpoint_in_flight() {
            for (vol, lba, n) in std::mem::take(&mut self.deferred) {
                if self.vols.iter().any(|v| v.id == vol && !v.ro) {
                    self.write_again(vol, lba, n);
                }
            }
        }
        let Some((vol, size)) = self.pick_writable() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 8.min(size));
        let lba = self.rng.below(size - n + 1);
        let stream = if self.rng.pct(20) {
            Stream::UserCold
        } else {
            Stream::UserHot
        };
        let mirrored = self.pool_ref().copy_of(vol).is_some();
        let mut plan = None;
        for attempt in 0..4 {
            let r = if mirrored {
                self.pool()
                    .write_begin_copies(vol, lba, n, stream)
                    .map(|(p, c)| (p, Some(c)))
            } else {
                self.pool()
                    .write_begin(vol, lba, n, stream)
                    .map(|p| (p, None))
            };
            match r {
                Ok(p) => {
                    plan = Some(p);
                    break;
                }
                // Busy: record queue full, or free zones only on members
                // at their open/active limits; NoSpace: no free zone.
                // Either way: commit, reset what is reclaimable, collect.
                Err(Error::Quota) | Err(Error::Reserved) => {
                    self.st.rule_refusals += 1;
                    break;
                }
                Err(Error::Busy) | Err(Error::NoSpace) if self.in_ckpt => break,
                Err(Error::Busy) | Err(Error::NoSpace) => {
                    self.complete_all();
                    self.gc_until_free(attempt);
                }
                Err(e) => panic!("write_begin: {e:?}"),
            }
        }
        let Some((plan, cplan)) = plan else {
            self.st.enospc += 1;
            return;
        };
        self.st.writes += 1;
        let vers: Vec<u64> = (0..plan.nblocks)
            .map(|_| {
                self.ver += 1;
                self.ver
            })
            .collect();
        let (addrs, mut failed) = self.write_extents(&plan, &vers, false);
        let copy = cplan.map(|c| {
            self.st.mirrored_writes += 1;
            let (a, f) = self.write_extents(&c, &vers, failed);
            failed |= f;
            (c, a)
        });
        if failed {
            // Complete at once: the zone is closed for writing before anything
            // else is allocated in it.
            self.st.write_failures += 1;
            self.end_write(InFlight {
                plan,
                addrs,
                vers,
                copy,
            });
            if !self.in_ckpt {
                self.maintenance();
            }
            return;
        }
        self.inflight.push(InFlight {
            plan,
            addrs,
            vers,
            copy,
        });
        if self.inflight.len() > 6 || self.rng.pct(60) {
            self.complete_some();
        }
    }

    /// Writes the extents of `plan` (blocks of versions `vers`, one in
    /// 400 extents failing); where each landed, and whether one failed.
    fn write_extents(
        &mut self,
        plan: &WritePlan,
        vers: &[u64],
        after_failure: bool,
    ) -> (Vec<Option<u64>>, bool) {
        let mut addrs = Vec::new();
        let mut failed = false;
        let mut v = 0usize;
        for ext in plan.extents() {
            let mut data = vec![0u8; BS * ext.len as usize];
            for k in 0..ext.len {
                fill_block(
                    &mut data[k as usize * BS..(k as usize + 1) * BS],
                    plan.vol,
                    plan.lba + ext.off + k,
                    vers[v],
                );
                v += 1;
            }
            let (d, off) = self.loc(ext.addr);
            self.present(d, "data write");
            let inject = self.rng.below(400) == 0;
            if inject {
                self.devs[d].fail_writes = 1;
            }
            let r = if ext.append {
                let (_, local) = self.zone_loc(ext.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| ext.addr)
            };
            match r {
                Ok(a) => addrs.push(Some(a)),
                Err(SimErr::Injected) => {
                    failed = true;
                    addrs.push(None);
                }
                // A mirrored write whose copies share a zone (both on the
                // side left, degraded) after the first copy failed there:
                // this one fails too, as on a device.
                Err(SimErr::NotAtWp { .. }) if after_failure => {
                    failed = true;
                    addrs.push(None);
                }
                Err(e) => panic!(
                    "data write of extent {ext:?}: {e:?}\n{}",
                    self.active_zones(d)
                ),
            }
        }
        (addrs, failed)
    }

    pub fn record_completion(&mut self, plan: &WritePlan, addrs: &[Option<u64>], vers: &[u64]) {
        let mut k = 0usize;
        for (i, ext) in plan.extents().iter().enumerate() {
            for j in 0..ext.len {
                if addrs[i].is_some() {
                    self.complete(plan.vol, plan.lba + ext.off + j, vers[k]);
                }
                k += 1;
            }
        }
    }

    pub fn complete_one(&mut self, i: usize) {
        let w = self.inflight.swap_remove(i);
        self.end_write(w);
    }

    /// `write_end` of a completed write, with node allocations failing
    /// (one in `nomem_one_in`) as the kernel's can. A table update that
    /// fails for want of memory leaves each extent mapped or not (the
    /// others are unaffected and the failed ones keep their old blocks);
    /// the kernel then writes the request again, which the model sees as
    /// a later write.
    pub fn end_write(&mut self, w: InFlight) {
        let (plan, addrs, vers) = (&w.plan, &w.addrs[..], &w.vers[..]);
        FAIL_ONE_IN.set(self.nomem_one_in);
        let r = match &w.copy {
            Some((c, ca)) => self.pool().write_end_copies(plan, addrs, c, ca),
            None => self.pool().write_end(plan, addrs),
        };
        FAIL_ONE_IN.set(0);
        match r {
            Ok(_) => {
                self.record_completion(plan, addrs, vers);
                if let Some((c, ca)) = &w.copy {
                    self.record_completion(c, ca, vers);
                }
            }
            // A copy failed: neither is mapped.
            Err(Error::Io) if w.copy.is_some() => {}
            // Ended during a checkpoint: neither is mapped; written again
            // once it ended.
            Err(Error::Busy) if w.copy.is_some() => {
                self.st.mirror_retries += 1;
                self.deferred.push((plan.vol, plan.lba, plan.nblocks));
            }
            // A table update of a mirrored write ran out of nodes: each
            // table's extents are mapped or not; the kernel writes the
            // request again (both copies), which the model sees as a
            // later write.
            Err(Error::NoSpace) if self.nomem_one_in > 0 && w.copy.is_some() => {
                self.st.nomem += 1;
                let copy = w.copy.as_ref().map(|(c, ca)| (*c, ca.clone()));
                for (p, a) in [(*plan, addrs.to_vec())].into_iter().chain(copy) {
                    self.settle_nomem(&p, &a, vers);
                }
                let (vol, lba, n) = (plan.vol, plan.lba, plan.nblocks);
                if self.vols.iter().any(|v| v.id == vol && !v.ro) {
                    self.write_again(vol, lba, n);
                }
            }
            Err(Error::NoSpace) if self.nomem_one_in > 0 => {
                self.st.nomem += 1;
                self.settle_nomem(plan, addrs, vers);
                // The request again (its blocks as a new write).
                let (vol, lba, n) = (plan.vol, plan.lba, plan.nblocks);
                if self.vols.iter().any(|v| v.id == vol && !v.ro) {
                    self.write_again(vol, lba, n);
                }
            }
            Err(e) => panic!("write_end of volume {}: {e:?}", plan.vol),
        }
    }

    /// After a table update that ran out of nodes: the model takes the
    /// versions of the extents of `plan` that the table now maps.
    fn settle_nomem(&mut self, plan: &WritePlan, addrs: &[Option<u64>], vers: &[u64]) {
        let mut k = 0usize;
        for (i, ext) in plan.extents().iter().enumerate() {
            let n = ext.len as usize;
            let lba = plan.lba + ext.off;
            if addrs[i].is_some() {
                let got = self
                    .read_range(plan.vol, lba, ext.len)
                    .unwrap_or_else(|e| panic!("read after a failed table update: {e}"));
                if got[..] == vers[k..k + n] {
                    for j in 0..n {
                        self.complete(plan.vol, lba + j as u64, vers[k + j]);
                    }
                }
            }
            k += n;
        }
    }

    /// The kernel's answer to a table update that failed: the request
    /// written again, completed at once.
    fn write_again(&mut self, vol: u32, lba: u64, n: u64) {
        self.write_exact(vol, lba, n);
    }

    pub fn complete_some(&mut self) {
        let n = self.rng.range(1, self.inflight.len().max(1) as u64);
        for _ in 0..n {
            if self.inflight.is_empty() {
                break;
            }
            let i = self.rng.below(self.inflight.len() as u64) as usize;
            self.complete_one(i);
        }
    }

    pub fn complete_all(&mut self) {
        while !self.inflight.is_empty() {
            let i = self.rng.below(self.inflight.len() as u64) as usize;
            self.complete_one(i);
        }
    }

    pub fn do_discard(&mut self) {
        let Some((vol, size)) = self.pick_writable() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 32.min(size));
        let lba = self.rng.below(size - n + 1);
        match self.pool().discard(vol, lba, n) {
            Ok(()) => {}
            Err(Error::Busy) => return,
            Err(e) => panic!("discard: {e:?}"),
        }
        self.st.discards += 1;
        let copy = self.pool_ref().copy_of(vol);
        for v in [Some(vol), copy].into_iter().flatten() {
            for k in 0..n {
                self.complete(v, lba + k, 0);
            }
        }
    }

    /// Zone maintenance as the kernel does it: resets planned, done later
    /// (other operations run in between: nothing may be allocated in or
    /// read from a zone being reset), then ended.
    pub fn maintenance(&mut self) {
        if !self.resets.is_empty() && self.rng.pct(50) {
            self.end_resets();
            return;
        }
        let mut ops = Vec::new();
        let max = if self.rng.pct(30) {
            u32::MAX
        } else {
            self.rng.below(4) as u32 + 1
        };
        self.pool()
            .maintenance_plan(
                &mut |op| {
                    ops.push(own(op));
                    Ok(())
                },
                max,
            )
            .expect("maintenance");
        // Finishes now, resets later.
        let (resets, now): (Vec<OwnedOp>, Vec<OwnedOp>) =
            ops.into_iter().partition(|o| o.kind == 1);
        assert!(self.exec(&now, None));
        self.resets.extend(resets.iter().map(|o| o.zone));
    }

    /// Performs the planned zone resets and ends them in the engine.
    pub fn end_resets(&mut self) {
        for z in std::mem::take(&mut self.resets) {
            let (d, local) = self.zone_loc(z);
            self.present(d, "zone reset");
            self.devs[d]
                .reset(local)
                .unwrap_or_else(|e| panic!("zone reset of {z}: {e:?}"));
            self.pool().reset_end(z, true).expect("reset_end");
        }
    }

    /// A random range of a random table asked for repair (as the kernel
    /// does when a read of a mirrored volume's copy failed): GC's next
    /// batches write it again from the other copy (`Pool::repair`; a
    /// table that is not mirrored is refused).
    pub fn maybe_repair(&mut self) {
        let Some((vol, size)) = self.pick_vol() else {
            return;
        };
        if size == 0 {
            return;
        }
        let lba = self.rng.below(size);
        let len = 1 + self.rng.below((size - lba).min(64));
        let mirrored = self.pool_ref().volume(vol).is_some_and(|v| {
            v.flags
                & (zvcore::format::journal::VOL_FLAG_MIRRORED
                    | zvcore::format::journal::VOL_FLAG_COPY)
                != 0
        });
        let queued = self.pool().repair(vol, lba, len);
        assert!(
            queued || !mirrored || self.pool_ref().repair_due(),
            "repair of {vol} refused"
        );
        if queued {
            self.st.repairs += 1;
        }
    }

    /// One GC batch; user writes may race with it.
    pub fn gc_batch(&mut self) -> usize {
        let mut items = [RelocItem::default(); 8];
        // A plan whose scan stopped at its budget goes on, as the
        // kernel's GC does.
        let mut r = self.pool().gc_begin(&mut items);
        while r == Ok(0) && self.pool().gc_scan_more() {
            r = self.pool().gc_begin(&mut items);
        }
        let n = match r {
            Ok(n) => n,
            Err(Error::Busy) | Err(Error::NoSpace) => return 0,
            Err(e) => panic!("gc_begin: {e:?}"),
        };
        if n == 0 {
            return 0;
        }
        self.st.gc_batches += 1;
        let mut addrs = Vec::new();
        let mut buf = vec![0u8; BS];
        for it in &items[..n] {
            let mut data = Vec::with_capacity(it.src.len as usize * BS);
            if it.read != it.src.addr {
                // A lost copy rebuilt from the other one.
                self.st.rebuilt_blocks += it.src.len;
            }
            for k in 0..it.src.len {
                let (d, off) = self.loc(it.read + k);
                self.present(d, "GC read");
                self.devs[d]
                    .read(off, &mut buf)
                    .unwrap_or_else(|e| panic!("gc read {it:?}: {e:?}"));
                data.extend_from_slice(&buf);
            }
            let (d, off) = self.loc(it.dst.addr);
            self.present(d, "GC write");
            let r = if it.dst.append {
                let (_, local) = self.zone_loc(it.dst.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| it.dst.addr)
            };
            addrs.push(Some(r.unwrap_or_else(|e| panic!("gc write {it:?}: {e:?}"))));
        }
        // Race: user overwrites of relocated blocks before the GC completes.
        if self.rng.pct(self.gc_race_pct) {
            let it = items[self.rng.below(n as u64) as usize];
            self.st.gc_races += 1;
            // (A companion's blocks are written through their volume.)
            let vol = it.src.vol & !COPY_ID_BIT;
            self.write_exact(vol, it.src.lba, it.src.len.min(4));
        }
        self.pool().gc_end(&items[..n], &addrs).expect("gc_end");
        n
    }

    /// A user write of exactly this range, completed at once (refusals
    /// ignored).
    pub fn write_exact(&mut self, vol: u32, lba: u64, n: u64) {
        let _ = self.write_checked(vol, lba, n);
    }

    /// A user write of this range (or the part one plan covers), completed
    /// at once; the blocks planned, or why the write was refused.
    pub fn write_checked(&mut self, vol: u32, lba: u64, n: u64) -> Result<u64, Error> {
        if self.pool_ref().copy_of(vol).is_some() {
            let (plan, c) = self
                .pool()
                .write_begin_copies(vol, lba, n, Stream::UserHot)?;
            let vers: Vec<u64> = (0..plan.nblocks)
                .map(|_| {
                    self.ver += 1;
                    self.ver
                })
                .collect();
            let (addrs, f1) = self.write_extents(&plan, &vers, false);
            let (ca, f2) = self.write_extents(&c, &vers, f1);
            let copy = Some((c, ca));
            self.st.mirrored_writes += 1;
            let nb = plan.nblocks;
            self.end_write(InFlight {
                plan,
                addrs,
                vers,
                copy,
            });
            if f1 || f2 {
                self.st.write_failures += 1;
            }
            return Ok(nb);
        }
        let plan = self.pool().write_begin(vol, lba, n, Stream::UserHot)?;
        let mut addrs = Vec::new();
        let mut vers = Vec::new();
        for ext in plan.extents() {
            let mut data = vec![0u8; BS * ext.len as usize];
            for k in 0..ext.len {
                self.ver += 1;
                vers.push(self.ver);
                fill_block(
                    &mut data[k as usize * BS..(k as usize + 1) * BS],
                    vol,
                    lba + ext.off + k,
                    self.ver,
                );
            }
            let (d, off) = self.loc(ext.addr);
            self.present(d, "data write");
            let r = if ext.append {
                let (_, local) = self.zone_loc(ext.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| ext.addr)
            };
            addrs.push(Some(r.unwrap_or_else(|e| panic!("write: {e:?}"))));
        }
        let nb = plan.nblocks;
        self.end_write(InFlight {
            plan,
            addrs,
            vers,
            copy: None,
        });
        Ok(nb)
    }

    pub fn gc_until_free(&mut self, attempt: usize) {
        for i in 0..20 + attempt * 20 {
            self.commit(false);
            self.maintenance();
            // Free zones may all be on members at their zone limits: collect
            // a little anyway.
            if i >= 2 * attempt && self.pool().free_zones() > 6 {
                return;
            }
            self.gc_batch();
        }
    }
}
