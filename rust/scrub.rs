// SPDX-License-Identifier: GPL-2.0
//! Scrub: reads every written block of the pool's data zones in the
//! background, so that what a member can no longer read (latent sector
//! errors of a disk, worn flash) is found and reported before a VM or GC
//! needs it — what `md`'s `check` action does for a RAID set.
//!
//! A pass walks the data zones in order, 1 MiB at a time (one read of the
//! GC buffer in flight), in the pool's GC work between GC batches: GC goes
//! first, the scrub takes the time GC leaves. Each step is planned under the
//! engine lock (the next written part of a zone holding live data; the read
//! is counted in the zone, `zonereads.rs`, so that no reset reuses the zone
//! under it) and read without it. A zone being written (blocks in flight),
//! a zone the device took offline and a member that is gone are skipped and
//! counted. A failed read is read again block by block; each run of
//! unreadable blocks counts as the member's read errors (`members`,
//! `pool health`: the member turns degraded) and is logged with its member
//! and sector, as a failed user or GC read is.
//!
//! After the data zones the pass reads back the metadata an assembly would
//! read: every copy of the newest checkpoint's chain, the superblock copies
//! of every member and the journal blocks since that checkpoint; a damaged
//! chain or journal copy is repaired by a full checkpoint.
//!
//! The volumes and snapshots that map a run of unreadable blocks are named
//! in the log (a search of every table, in steps: the tables map volume
//! blocks to pool addresses, not back).
//!
//! What a pass cannot do yet: check data against a checksum (the pool
//! keeps none), and repair data (no second copy): those come with the
//! block checksums and mirrored volumes of the reliability work. The pass
//! is not kept across an assembly.

use crate::gcstate::{GcBufs, GC_BUF_BLOCKS};
use crate::kwrap::{
    bio::{BioBatch, BioOp, Slot},
    metaio::Bounce,
};
use crate::lowerio::submit_bounce;
use crate::pool::ActivePool;
use crate::scrubstate::{ENDED_DONE, JOURNAL_PHASE, META_PHASE, SB_PHASE};
use crate::zvcore::alloc::ZoneState;
use crate::zvcore::format::{VolName, BLOCK_SIZE};
use crate::zvcore::map::MapExtent;
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
};
use pin_init::stack_pin_init;

/// Most blocks of the checkpoint chain one step reads (each on up to two
/// copies, one bio slot each).
const META_STEP_BLOCKS: u32 = 64;

/// Most mapped extents one step of the search for the volumes of
/// unreadable blocks looks at (under the engine lock).
const OWNER_STEP_EXTENTS: u32 = 1024;

/// Most volume extents one such step names (each logged after the step).
const OWNER_STEP_NAMES: usize = 4;

/// Most runs of unreadable blocks a pass names the volumes of: each search
/// walks every table, so a member failing everywhere must not make the
/// pass walk them for every run.
const MAX_NAMED_RUNS: u32 = 16;

/// The next step of a pass in zone `z`.
enum Step {
    /// Read `n` blocks from pool address `addr` (block `off` of zone `z`).
    Read { z: u32, off: u64, addr: u64, n: u64 },
    /// The pass is over.
    End,
}

impl ActivePool {
    /// `scrub` written: `start` (a new pass from the first zone; with
    /// `Some(rate)`, reading at most `rate` MiB/s) or `stop` (`None`).
    pub(crate) fn scrub_ctl(self: &Arc<Self>, start: Option<u32>) -> Result {
        let Some(rate) = start else {
            if self.scrub.stop() {
                pr_info!("{}: scrub stopped\n", &*self.name);
            }
            return Ok(());
        };
        if self.gc.disabled.load(Ordering::Relaxed) {
            // The pass runs in the GC work, which a read-only pool has not.
            pr_err!(
                "{}: scrub: the pool is read-only (no background work)\n",
                &*self.name
            );
            return Err(EROFS);
        }
        self.scrub.start(rate);
        pr_info!("{}: scrub started\n", &*self.name);
        self.kick_gc();
        Ok(())
    }

    /// One step of the pass under way (GC work, when GC has nothing to
    /// do): reads the next part of a zone holding data, or once the data
    /// zones are done the next blocks of the newest checkpoint's chain.
    /// Returns whether the pass goes on. Sleeps (the reads).
    pub(crate) fn scrub_step(&self) -> bool {
        let s = &self.scrub;
        if !s.running() {
            return false;
        }
        let cur = s.cursor.load(Ordering::Acquire);
        let (zone, low) = ((cur >> 32) as u32, cur & u64::from(u32::MAX));
        let meta = u64::from(META_PHASE) << 32;
        let phase = |p: u32, low: u32| (u64::from(p) << 32) | u64::from(low);
        // A pass started again meanwhile keeps its own cursor.
        let advance = |next: u64| {
            let _ = s
                .cursor
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Relaxed);
        };
        match zone {
            META_PHASE => {
                advance(match self.scrub_meta(low as u32) {
                    Some(next) => phase(META_PHASE, next),
                    None => phase(SB_PHASE, 0),
                });
                return true;
            }
            SB_PHASE => {
                advance(match self.scrub_superblocks(low as u32) {
                    Some(next) => phase(SB_PHASE, next),
                    None => phase(JOURNAL_PHASE, 0),
                });
                return true;
            }
            JOURNAL_PHASE => {
                if self.scrub_journal() {
                    return true;
                }
                self.scrub_done(cur);
                return false;
            }
            _ => {}
        }
        let Step::Read { z, off, addr, n } = self.scrub_plan(zone, low) else {
            // The data zones are done: the metadata next.
            advance(meta);
            return true;
        };
        let t0 = Instant::<Monotonic>::now();
        let bad = self.scrub_read(addr, n);
        self.zone_reads.put(z, z);
        self.scrub_pace(t0, n);
        s.blocks.fetch_add(n, Ordering::Relaxed);
        s.errors.fetch_add(bad, Ordering::Relaxed);
        advance((u64::from(z) << 32) | off.saturating_add(n));
        true
    }

    /// With a rate limit, sleeps until the step that read `n` blocks from
    /// `t0` on took as long as the rate allows (unless GC was kicked
    /// meanwhile: GC goes first).
    fn scrub_pace(&self, t0: Instant<Monotonic>, n: u64) {
        let rate = u64::from(self.scrub.rate_mibs.load(Ordering::Relaxed));
        if rate == 0 || self.gc.kicked.load(Ordering::Relaxed) {
            return;
        }
        // n blocks of 4 KiB at `rate` MiB/s: n * 1000 / (256 * rate) ms.
        let want_ms = n.saturating_mul(1000) / rate.saturating_mul(256).max(1);
        let took_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(ms) = want_ms.checked_sub(took_ms).filter(|&ms| ms > 0) {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(ms.min(1000) as i64));
        }
    }

    /// The pass at cursor `cur` is over.
    fn scrub_done(&self, cur: u64) {
        let s = &self.scrub;
        let _ = s
            .cursor
            .compare_exchange(cur, u64::MAX, Ordering::AcqRel, Ordering::Relaxed);
        if s.running.swap(false, Ordering::AcqRel) {
            s.ended.store(ENDED_DONE, Ordering::Relaxed);
            s.passes.fetch_add(1, Ordering::Relaxed);
            let n = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            pr_info!(
                "{}: scrub done: {} blocks read, {} unreadable, {} zones skipped; {} metadata block copies read, {} damaged\n",
                &*self.name,
                n(&s.blocks),
                n(&s.errors),
                n(&s.skipped),
                n(&s.meta_blocks),
                n(&s.meta_errors)
            );
        }
    }

    /// The metadata part of the pass: reads back the copies of blocks
    /// `idx..` of the newest checkpoint's chain (up to
    /// [`META_STEP_BLOCKS`]) and checks each is a sound block of it. A copy
    /// unreadable or unsound counts as the member's read error and is
    /// logged; then a full checkpoint, written at once, replaces the chain
    /// (the repair: what an assembly reads is sound again). Returns the
    /// next block, or `None` when the metadata part is over (the chain
    /// read, replaced, or none since assembly).
    fn scrub_meta(&self, idx: u32) -> Option<u32> {
        let s = &self.scrub;
        let mut guard = self.gc.bufs.lock();
        let b = &mut *guard;
        let slots = b.slots.len().min(b.addrs.len()).min(b.read_ok.len());
        // The copies of the next blocks (engine lock; the GC buffers'
        // lock first, as GC takes them).
        let (chain, end, count) = {
            let st = self.state.lock();
            let c = st.engine.scrub_chain()?;
            if idx == 0 {
                s.meta_base.store(c.base, Ordering::Relaxed);
            } else if s.meta_base.load(Ordering::Relaxed) != c.base {
                // A checkpoint of this assembly replaced it.
                return None;
            }
            if idx >= c.blocks {
                return None;
            }
            let max = u32::try_from(slots / 2).unwrap_or(0).min(META_STEP_BLOCKS);
            let end = c.blocks.min(idx.saturating_add(max.max(1)));
            let geo = st.engine.geom();
            let mut k = 0usize;
            for i in idx..end {
                for a in c.copies(geo, i) {
                    self.plan_copy(b, &mut k, a);
                }
            }
            (c, end, k.min(slots))
        };
        // One block each, without the engine lock.
        self.read_copies(b, count);
        // Still the chain planned: its zones cannot have been reset under
        // the reads (that needs a newer chain first).
        if self.state.lock().engine.scrub_chain().map(|c| c.base) != Some(chain.base) {
            return None;
        }
        let damaged = self.judge_copies(b, count, "scrub metadata read", |_, blk| chain.sound(blk));
        drop(guard);
        if !damaged {
            return Some(end);
        }
        self.scrub_repair();
        None
    }

    /// Sets copy `*k` of a metadata step to be read from `a` (none for a
    /// copy on a member that is gone) and moves `k` on.
    fn plan_copy(&self, b: &mut GcBufs, k: &mut usize, a: Option<u64>) {
        let a = a.filter(|&a| self.locate_addr(a).is_ok_and(|(m, _)| !m.is_gone()));
        if let Some(slot) = b.addrs.get_mut(*k) {
            *slot = a;
        }
        *k += 1;
    }

    /// Reads the copies `b.addrs[..count]` of a metadata step, one block
    /// each, into the GC buffer, all in flight at once.
    fn read_copies(&self, b: &mut GcBufs, count: usize) {
        let GcBufs {
            slots,
            data,
            read_ok,
            addrs,
            ..
        } = b;
        self.read_parts(slots, data, read_ok, count, |k| {
            addrs.get(k).copied().flatten().map(|a| (a, 1, k))
        });
    }

    /// Checks the copies [`Self::read_copies`] read: each with
    /// `sound(k, block)`. A copy unreadable or unsound counts in
    /// `meta_errors` and as the member's read error, logged as `what`.
    /// Returns whether one was damaged.
    fn judge_copies(
        &self,
        b: &GcBufs,
        count: usize,
        what: &str,
        sound: impl Fn(usize, &[u8]) -> bool,
    ) -> bool {
        let s = &self.scrub;
        let mut damaged = false;
        for k in 0..count {
            let Some(Some(a)) = b.addrs.get(k).copied() else {
                continue;
            };
            s.meta_blocks.fetch_add(1, Ordering::Relaxed);
            let read = b.read_ok.get(k).copied().unwrap_or(false);
            if read && b.data.block(k).is_some_and(|blk| sound(k, blk)) {
                continue;
            }
            damaged = true;
            s.meta_errors.fetch_add(1, Ordering::Relaxed);
            self.io_error(what, a, 1, if read { EBADMSG } else { EIO });
        }
        damaged
    }

    /// The repair of damaged metadata (a copy of a block of the newest
    /// checkpoint's chain or of the journal since): a full checkpoint,
    /// written at once, in the other set; it covers the whole journal, so
    /// what an assembly reads is sound again. Takes the commit lock.
    fn scrub_repair(&self) {
        self.state.lock().engine.request_full_checkpoint();
        let r = {
            let mut cb = self.committer.lock();
            let r = self.checkpoint_when_slots(&mut cb);
            self.commit_ends.ended();
            r
        };
        match r {
            Ok(()) => {
                self.scrub.repairs.fetch_add(1, Ordering::Relaxed);
                pr_info!(
                    "{}: scrub: damaged metadata replaced by a full checkpoint\n",
                    &*self.name
                );
            }
            Err(e) => pr_err!(
                "{}: scrub: the full checkpoint to replace damaged metadata failed: {:?}\n",
                &*self.name,
                e
            ),
        }
    }

    /// The superblock part of the pass: reads back the two superblock
    /// copies of member `d` (the heads of its log zones) and checks each is
    /// a sound copy of this pool's and this member's. A damaged copy counts
    /// as the member's read error and is logged; it is not rewritten now
    /// (its log zone's next reset writes it again; the member's other copy
    /// and the other members' stand for it). Under the commit lock: a
    /// log-zone switch resets a zone before it writes its superblock.
    /// Returns the next member, or `None` after the last one.
    fn scrub_superblocks(&self, d: u32) -> Option<u32> {
        let d = u16::try_from(d).ok()?;
        let mut guard = self.gc.bufs.lock();
        let b = &mut *guard;
        let cb = self.committer.lock();
        let (uuid, ids, count) = {
            let st = self.state.lock();
            let e = &st.engine;
            if d >= e.geom().nr_devices() {
                return None;
            }
            // A member removed: the next one.
            let (addrs, uuid) = match e.superblock_copies(d) {
                Some(c) => c,
                None => return Some(u32::from(d) + 1),
            };
            let mut k = 0usize;
            for a in addrs {
                self.plan_copy(b, &mut k, a);
            }
            (uuid, e.meta_ids(), k.min(b.slots.len()))
        };
        self.read_copies(b, count);
        drop(cb);
        self.judge_copies(b, count, "scrub superblock read", |_, blk| {
            ids.sound_superblock(blk, &uuid)
        });
        Some(u32::from(d) + 1)
    }

    /// The journal part of the pass: reads back the next journal blocks an
    /// assembly would replay over the newest checkpoint (from
    /// `journal_next` on, up to [`META_STEP_BLOCKS`] and no further than
    /// the journal's end when the part began, each on the journal
    /// member and its mirror) and checks each is a sound block of this pool
    /// with its sequence number. Under the commit lock, so that no commit
    /// moves the journal meanwhile (a step's reads hold commits for their
    /// time). A damaged copy counts as the member's read error and is
    /// logged; then a full checkpoint covers the journal (the repair).
    /// Returns whether the pass goes on.
    fn scrub_journal(&self) -> bool {
        let s = &self.scrub;
        let mut guard = self.gc.bufs.lock();
        let b = &mut *guard;
        let slots = b.slots.len().min(b.addrs.len()).min(b.read_ok.len());
        let cb = self.committer.lock();
        let (next, end, count, ids) = {
            let st = self.state.lock();
            let e = &st.engine;
            let (from, mut to) = e.scrub_journal_seqs();
            // The part reads the journal as it was when it began: under a
            // stream of commits it would never end.
            if s.journal_next.load(Ordering::Relaxed) == 0 {
                s.journal_stop.store(to, Ordering::Relaxed);
            }
            to = to.min(s.journal_stop.load(Ordering::Relaxed));
            // Blocks a checkpoint covered meanwhile are not needed.
            let next = s.journal_next.load(Ordering::Relaxed).max(from);
            if next >= to {
                return false;
            }
            let max = u64::try_from(slots / 2)
                .unwrap_or(0)
                .min(u64::from(META_STEP_BLOCKS));
            let end = to.min(next.saturating_add(max.max(1)));
            let mut k = 0usize;
            for seq in next..end {
                // Two copies a block (the second only with journal copies).
                for a in e.journal_block_addrs(seq).unwrap_or([None, None]) {
                    self.plan_copy(b, &mut k, a);
                }
            }
            (next, end, k.min(slots), e.meta_ids())
        };
        self.read_copies(b, count);
        drop(cb);
        let damaged = self.judge_copies(b, count, "scrub journal read", |k, blk| {
            ids.sound_journal_block(blk, next.saturating_add((k / 2) as u64))
        });
        drop(guard);
        s.journal_next.store(end, Ordering::Relaxed);
        if damaged {
            self.scrub_repair();
            return false;
        }
        true
    }

    /// The next read of the pass from block `off` of zone `z` on (engine
    /// lock): the written part of a zone holding live data, up to
    /// [`GC_BUF_BLOCKS`] blocks, counted in the zone's reads in flight.
    fn scrub_plan(&self, mut z: u32, mut off: u64) -> Step {
        let st = self.state.lock();
        let e = &st.engine;
        let nz = e.geom().nr_zones();
        let mut skipped = 0u64;
        let step = loop {
            if z >= nz {
                break Step::End;
            }
            let (Some(zg), Some(zi)) = (e.geom().zone(z), e.alloc().zone(z)) else {
                break Step::End;
            };
            let wp = zi.wp();
            let data = matches!(
                zi.state(),
                ZoneState::Open(_) | ZoneState::Closed | ZoneState::Full
            );
            if zg.meta || !data || zi.valid() == 0 || off >= wp {
                z += 1;
                off = 0;
                continue;
            }
            let gone = self
                .members
                .get(usize::from(zg.dev))
                .is_none_or(|m| m.is_gone());
            if zi.inflight() > 0 || zi.unreadable() || gone {
                // Being written (its blocks in flight may not be on the
                // device yet), offline, or on a member that is gone.
                skipped += 1;
                z += 1;
                off = 0;
                continue;
            }
            let n = (wp - off).min(GC_BUF_BLOCKS);
            self.zone_reads.get(z, z);
            break Step::Read {
                z,
                off,
                addr: zg.start.saturating_add(off),
                n,
            };
        };
        drop(st);
        self.scrub.skipped.fetch_add(skipped, Ordering::Relaxed);
        step
    }

    /// Reads `n` blocks from pool address `addr` into the GC buffer; a
    /// failure is read again block by block. Returns the unreadable blocks
    /// (each run counted and logged as the member's read error).
    fn scrub_read(&self, addr: u64, n: u64) -> u64 {
        let mut guard = self.gc.bufs.lock();
        let GcBufs {
            slots,
            data,
            read_ok,
            ..
        } = &mut *guard;
        let n = n.min(slots.len() as u64);
        self.read_parts(slots, data, read_ok, 1, |_| Some((addr, n, 0)));
        if read_ok.first().copied().unwrap_or(false) {
            return 0;
        }
        // Block by block; runs of unreadable blocks, one error each.
        self.read_parts(slots, data, read_ok, n as usize, |k| {
            Some((addr.saturating_add(k as u64), 1, k))
        });
        let mut bad = 0u64;
        let mut run: Option<u64> = None;
        for k in 0..=n {
            let failed = k < n && !read_ok.get(k as usize).copied().unwrap_or(false);
            match (failed, run) {
                (true, None) => run = Some(k),
                (false, Some(first)) => {
                    self.io_error("scrub read", addr.saturating_add(first), k - first, EIO);
                    self.scrub_owners(addr.saturating_add(first), k - first);
                    bad += k - first;
                    run = None;
                }
                _ => {}
            }
        }
        bad
    }

    /// Logs which volumes and snapshots map the unreadable pool blocks
    /// `addr..addr + n` (name, byte offset, blocks), or that none does
    /// (dead blocks: nothing is lost). The tables map volume blocks to pool
    /// blocks only, so this walks every table, in steps of
    /// [`OWNER_STEP_EXTENTS`] extents under the engine lock, logging after
    /// each; at most [`MAX_NAMED_RUNS`] runs a pass.
    fn scrub_owners(&self, addr: u64, n: u64) {
        let s = &self.scrub;
        let runs = s.named_runs.fetch_add(1, Ordering::Relaxed);
        if runs >= MAX_NAMED_RUNS {
            if runs == MAX_NAMED_RUNS {
                pr_err!(
                    "{}: scrub: more runs of unreadable blocks: their volumes are not named\n",
                    &*self.name
                );
            }
            return;
        }
        let none = MapExtent {
            vol: 0,
            lba: 0,
            len: 0,
            addr: 0,
        };
        let mut found = [none; OWNER_STEP_NAMES];
        let mut names = [VolName::default(); OWNER_STEP_NAMES];
        let mut cursor = Some((0usize, 0u64));
        let mut any = false;
        while let Some(c) = cursor {
            let k = {
                let st = self.state.lock();
                let e = &st.engine;
                let (k, next) = e.owners_of(addr, n, c, OWNER_STEP_EXTENTS, &mut found);
                cursor = next;
                for (f, name) in found.iter().zip(names.iter_mut()).take(k) {
                    *name = e.volume(f.vol).map_or_else(VolName::default, |v| v.name);
                }
                k
            };
            for (f, name) in found.iter().zip(names.iter()).take(k) {
                any = true;
                s.note_found(f.vol, f.lba, f.len);
                pr_err!(
                    "{}: scrub: volume '{}': {} unreadable block(s) at byte offset {}\n",
                    &*self.name,
                    core::str::from_utf8(name.as_bytes()).unwrap_or("?"),
                    f.len,
                    f.lba.saturating_mul(BLOCK_SIZE as u64)
                );
            }
        }
        if !any {
            pr_info!(
                "{}: scrub: no volume maps the unreadable blocks (dead data, nothing lost)\n",
                &*self.name
            );
        }
    }

    /// Reads `count` parts into the GC buffer, all in flight at once: part
    /// `k` is `part(k)` = (pool address, blocks, first block of the
    /// buffer), or nothing. Then `ok[k]` says whether part `k` was read.
    fn read_parts(
        &self,
        slots: &[Slot],
        data: &mut Bounce,
        ok: &mut [bool],
        count: usize,
        part: impl Fn(usize) -> Option<(u64, u64, usize)>,
    ) {
        for f in ok.iter_mut() {
            *f = false;
        }
        let data = data.lend();
        stack_pin_init!(let batch = BioBatch::new(slots));
        for k in 0..count.min(slots.len()) {
            let Some((addr, blocks, at)) = part(k) else {
                continue;
            };
            let r = self.locate_addr(addr).and_then(|(m, sector)| {
                let (set, op) = (&self.bios, BioOp::Read);
                let off = at.saturating_mul(BLOCK_SIZE);
                let bytes = (blocks as usize).saturating_mul(BLOCK_SIZE);
                submit_bounce(batch.as_ref(), set, m, k, op, sector, data, off, bytes)
            });
            if let (Ok(()), Some(f)) = (r, ok.get_mut(k)) {
                *f = true;
            }
        }
        batch.as_mut().wait();
        for (k, f) in ok.iter_mut().enumerate().take(count) {
            if *f && batch.result(k).is_err() {
                *f = false;
            }
        }
    }
}
