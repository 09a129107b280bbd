// SPDX-License-Identifier: GPL-2.0
//! Commits by checkpoint: a full checkpoint written into the other set
//! (volumes, block tables, sharing and delta volumes, rewind history), and
//! its completion.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::codec::Writer;
use super::super::error::{Error, Result};
use super::super::format::checkpoint::{section, set_of, CKPT_DATA_MAX};
use super::super::format::history::{HISTORY, REWIND_RECORD_BYTES};
use super::super::format::layout::{
    checkpoint_block_addr, checkpoint_capacity, checkpoint_last_zones, checkpoint_zone,
    checkpoint_zones,
};
use super::super::format::sharing::{
    encode_base, encode_link, DiffEntry, DiffWriter, SMALL_RECORD_BYTES,
};
use super::super::format::INCOMPAT_SHARED_BLOCKS;
use super::super::format::{
    CheckpointHeader, CheckpointWriter, Record, Superblock, WriterState, BLOCK_SIZE,
};
use super::super::geom::{DeviceGeometry, PoolGeometry, Stream, NR_STREAMS};
use super::super::map::{BlockTable, Diff, NodeStore};
use super::{
    peek_commit, slots, Commit, MetaOp, Pool, VolEntry, NO_SLOT, RESET_QUEUED, VOL_RECORD_BYTES,
};

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
    // ---- commit: checkpoint -------------------------------------------------

    /// Writes a full checkpoint (generation + 1, into the other set) that
    /// also commits every queued record, all at once: [`Self::checkpoint_begin`]
    /// and [`Self::checkpoint_step`] until it is done. Call
    /// [`Self::checkpoint_end`] once the emitted operations are done.
    /// `scratch` is 2 blocks.
    pub fn checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.checkpoint_begin(scratch, sink)?;
        while !self.checkpoint_step(scratch, u32::MAX, sink)? {}
        Ok(())
    }

    /// Starts a checkpoint written in steps, so that the caller can do the
    /// I/O of each step without its lock: emits the resets of the other
    /// set's zones (and finishes of idle data zones where a member has no
    /// zone slot left for the set's zone, which it opens now) and the
    /// checkpoint's header block. The checkpoint commits the records queued
    /// now; records queued later wait for the commit after it.
    ///
    /// Until the last step, the pool goes on taking writes, discards and GC
    /// (the image of each table is taken when its step encodes it: what
    /// changed before is in it or in the records replayed after it, and
    /// replaying these over it changes nothing twice) but no volume
    /// operation ([`Error::Busy`]: they are not idempotent).
    /// [`Error::Busy`] (nothing emitted) also when a member has no zone slot
    /// while its writes are in flight: retry once they completed.
    pub fn checkpoint_begin<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.live()?;
        if self.commit != Commit::None || self.ckpt_run.is_some() {
            return Err(Error::Busy);
        }
        let gen = self
            .ckpt_gen
            .checked_add(1)
            .ok_or(Error::NoSpace)?
            .max(self.ckpt_gen_min);
        // Every member must be able to open its checkpoint zone (directly,
        // or after finishing an open data zone with nothing in flight);
        // otherwise retry once writes have completed. Nothing emitted yet.
        for d in 0..self.alloc.geom().nr_devices() {
            if !self.ckpt_slot_ok(d) {
                return Err(Error::Busy);
            }
        }
        let r = self.begin_inner(gen, scratch, sink);
        if r.is_err() {
            self.ckpt_failed();
        }
        r
    }

    fn ckpt_failed(&mut self) {
        self.commit = Commit::None;
        self.ckpt_run = None;
        self.failed = true;
    }

    /// Goes on with the checkpoint started by [`Self::checkpoint_begin`]:
    /// emits about `max_blocks` more blocks (at most 4 more), then ends the
    /// step. Returns whether the checkpoint is complete (its commit block,
    /// the flushes and the finishes of the set's zones emitted): then call
    /// [`Self::checkpoint_end`] once the operations are done. An error
    /// fails the pool (re-assemble it).
    pub fn checkpoint_step<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        max_blocks: u32,
        sink: &mut F,
    ) -> Result<bool> {
        let Some(mut run) = self.ckpt_run.take() else {
            return Err(Error::Invalid("no checkpoint in flight"));
        };
        let r = self.step_inner(&mut run, scratch, max_blocks, sink);
        match r {
            Ok(false) => self.ckpt_run = Some(run),
            Ok(true) => {}
            Err(Error::NoSpace) => {
                // The image does not fit in the set: abandon this
                // checkpoint, not the pool (the newest committed checkpoint
                // and the journal still describe everything).
                if self.ckpt_overflow(run.gen, sink).is_err() {
                    self.ckpt_failed();
                }
            }
            Err(_) => self.ckpt_failed(),
        }
        r
    }

    /// Abandons the checkpoint in flight whose image did not fit in set
    /// `set_of(gen)`: finishes the set's zones (the next checkpoint resets
    /// them) and marks the metadata full. The records it was to commit stay
    /// queued for the journal.
    fn ckpt_overflow<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        sink: &mut F,
    ) -> Result<()> {
        self.commit = Commit::None;
        self.ckpt_run = None;
        self.meta_full = true;
        self.ckpt_retry = false;
        self.stats.checkpoint_overflows = self.stats.checkpoint_overflows.saturating_add(1);
        let set = set_of(gen);
        self.close_ckpt_zones(set, checkpoint_capacity(self.alloc.geom(), set), sink)
    }

    /// Ends the writing of set `set` after `blocks` blocks: releases each
    /// member's open-zone slot (taken on the set's first zone by
    /// [`Self::open_ckpt_zone`]) and finishes the zone each member's part
    /// ended in, so that no zone of the set stays active.
    fn close_ckpt_zones<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        set: u8,
        blocks: u32,
        sink: &mut F,
    ) -> Result<()> {
        for d in 0..self.alloc.geom().nr_devices() {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            let _ = self.alloc.meta_open(z, false);
        }
        let mut r = Ok(());
        let geo = self.alloc.geom();
        checkpoint_last_zones(geo, set, blocks, |_, z| {
            let conv = geo.zone(z).is_none_or(|zg| zg.conventional);
            if r.is_ok() && !conv {
                r = sink(MetaOp::Finish(z));
            }
        });
        r
    }

    /// Whether member `d` can open one more (metadata) zone, possibly after
    /// finishing an open data zone that has nothing in flight.
    fn ckpt_slot_ok(&self, d: u16) -> bool {
        let Some(g) = self.alloc.geom().device(d) else {
            return false;
        };
        let (open, active) = self.alloc.dev_open_active(d);
        let ok = |cur: u32, lim: u32| lim == 0 || cur.saturating_add(1) <= lim;
        if ok(open, g.open_limit()) && ok(active, g.max_active) {
            return true;
        }
        Stream::ALL.iter().any(|s| {
            self.alloc
                .open_zone(*s, d)
                .and_then(|z| self.alloc.zone(z))
                .map(|zi| zi.inflight() == 0)
                .unwrap_or(false)
        })
    }

    /// Chooses how each volume is stored in the next checkpoint: in full
    /// (`ck_base == NO_SLOT`, `ck_done`) or as differences against its
    /// delta base (the slot in `ck_base`). A chain of bases that does not
    /// end (impossible unless the links are corrupt) is cut.
    fn plan_bases(&mut self) {
        let sharing = self.sharing();
        let n = self.vols.len();
        for i in 0..n {
            let Some(v) = self.vols.get(i).copied() else {
                break;
            };
            let base = match (sharing, v.parent, v.table) {
                (true, Some(p), Some(_)) => slots::find(&self.vols, p)
                    .filter(|&j| j != i)
                    .map(|j| j as u32)
                    .unwrap_or(NO_SLOT),
                _ => NO_SLOT,
            };
            if let Some(e) = self.vols.get_mut(i) {
                e.ck_base = base;
                e.ck_done = base == NO_SLOT;
            }
        }
        for i in 0..n {
            let mut j = i;
            let mut steps = 0usize;
            let ends = loop {
                let b = self.vols.get(j).map(|v| v.ck_base).unwrap_or(NO_SLOT);
                if b == NO_SLOT {
                    break true;
                }
                if steps > n {
                    break false;
                }
                j = b as usize;
                steps += 1;
            };
            if !ends {
                if let Some(e) = self.vols.get_mut(i) {
                    e.ck_base = NO_SLOT;
                    e.ck_done = true;
                }
            }
        }
    }

    /// [`Self::checkpoint_begin`] after its checks.
    fn begin_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        let set = set_of(gen);
        let n = self.alloc.geom().nr_devices();
        for d in 0..n {
            for z in checkpoint_zones(self.alloc.geom(), set, d) {
                if !self.zone_conv(z) {
                    sink(MetaOp::Reset(z))?;
                }
            }
        }
        // Take every member's open-zone slot for the set now (on its first
        // zone; the checkpoint is written in order, so one zone of the set
        // at a time is written on a member): data zones opened between
        // the steps must not take them.
        for d in 0..n {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            self.open_ckpt_zone(z, d, sink)?;
        }
        let cap = checkpoint_capacity(self.alloc.geom(), set);
        let blk = scratch
            .get_mut(..BLOCK_SIZE)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let hdr = CheckpointHeader {
            pool_uuid: self.sb.pool_uuid,
            generation: gen,
            journal_seq: self.jseq.saturating_sub(1),
        };
        let w = CheckpointWriter::new(blk, hdr, cap)?;
        let geo = self.alloc.geom();
        let w = w.suspend(&mut |i, b| put_block(geo, set, i, b, sink))?;
        self.plan_bases();
        self.commit = Commit::Checkpoint {
            nrec: self.npend,
            epoch: self.cur_epoch,
            gen,
            seq: self.jseq.saturating_sub(1),
        };
        self.cur_epoch += 1;
        self.ckpt_run = Some(CkptRun {
            gen,
            w,
            phase: Phase::Volumes { next: 0 },
        });
        Ok(())
    }

    /// Opens checkpoint zone `z` of member `d`, finishing an idle open
    /// data zone of the member if it has no slot left.
    fn open_ckpt_zone<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        z: u32,
        d: u16,
        sink: &mut F,
    ) -> Result<()> {
        if self.alloc.meta_open(z, true).is_ok() {
            return Ok(());
        }
        for s in Stream::ALL.iter().take(NR_STREAMS) {
            if let Some(oz) = self.alloc.open_zone(*s, d) {
                let infl = self.alloc.zone(oz).map(|zi| zi.inflight()).unwrap_or(1);
                if infl == 0 && self.alloc.finish(oz).is_ok() {
                    sink(MetaOp::Finish(oz))?;
                    return self.alloc.meta_open(z, true);
                }
            }
        }
        Err(Error::Busy)
    }

    /// One step of [`Self::checkpoint_step`]: `Ok(true)` when complete.
    fn step_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        run: &mut CkptRun,
        scratch: &mut [u8],
        max_blocks: u32,
        sink: &mut F,
    ) -> Result<bool> {
        let set = set_of(run.gen);
        let (blk, rest) = scratch.split_at_mut(BLOCK_SIZE.min(scratch.len()));
        let chunk = rest
            .get_mut(..CKPT_DATA_MAX)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let mut w = CheckpointWriter::resume(blk, run.w)?;
        let stop = w.blocks_written().saturating_add(max_blocks);
        let geo = self.alloc.geom();
        let mut wsink = |i: u32, b: &[u8]| put_block(geo, set, i, b, sink);
        let vols = &mut self.vols;
        let nodes = &self.nodes;
        let sharing = self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0;
        loop {
            if w.blocks_written() >= stop {
                run.w = w.suspend(&mut wsink)?;
                return Ok(false);
            }
            run.phase = match run.phase {
                Phase::Volumes { next } => {
                    if next == 0 {
                        w.begin_section(section::VOLUMES, &mut wsink)?;
                    }
                    match vols.get(next).copied() {
                        None => {
                            w.begin_section(section::BLOCK_TABLE, &mut wsink)?;
                            Phase::Tables { vol: 0, cursor: 0 }
                        }
                        Some(v) => {
                            if let Some(t) = v.table {
                                let mut rec = [0u8; VOL_RECORD_BYTES];
                                let mut wr = Writer::new(&mut rec);
                                wr.put_u32(v.id)?;
                                wr.put_u32(v.flags)?;
                                wr.put_u64(t.size())?;
                                let nb = v.name.as_bytes();
                                wr.put_u8(nb.len() as u8)?;
                                wr.put_bytes(nb)?;
                                w.append_record(&rec, &mut wsink)?;
                            }
                            Phase::Volumes { next: next + 1 }
                        }
                    }
                }
                Phase::Tables { vol, mut cursor } => match vols.get(vol).copied() {
                    None if sharing => {
                        w.begin_section(section::SHARING, &mut wsink)?;
                        Phase::Links { next: 0 }
                    }
                    None => Phase::History,
                    Some(v) => match v.table.filter(|_| v.ck_base == NO_SLOT) {
                        None => Phase::Tables {
                            vol: vol + 1,
                            cursor: 0,
                        },
                        Some(t) => {
                            let mut cw = Writer::new(chunk);
                            let done = t.encode_chunk(nodes, &mut cursor, &mut cw)?;
                            let len = cw.pos();
                            if len > 4 {
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if done {
                                Phase::Tables {
                                    vol: vol + 1,
                                    cursor: 0,
                                }
                            } else {
                                Phase::Tables { vol, cursor }
                            }
                        }
                    },
                },
                Phase::Links { next } => match vols.get(next).copied() {
                    None => Phase::Deltas {
                        vol: 0,
                        at: 0,
                        open: false,
                        progress: false,
                    },
                    Some(v) => {
                        if v.table.is_some() && (v.origin.is_some() || v.parent.is_some()) {
                            let mut rec = [0u8; SMALL_RECORD_BYTES];
                            encode_link(&mut Writer::new(&mut rec), v.id, v.origin, v.parent)?;
                            w.append_record(&rec, &mut wsink)?;
                        }
                        Phase::Links { next: next + 1 }
                    }
                },
                Phase::Deltas {
                    vol,
                    at,
                    open,
                    progress,
                } => {
                    let Some(v) = vols.get(vol).copied() else {
                        if progress {
                            // Delta volumes, each after its base: another pass.
                            run.phase = Phase::Deltas {
                                vol: 0,
                                at: 0,
                                open: false,
                                progress: false,
                            };
                            continue;
                        }
                        if vols.iter().any(|v| v.table.is_some() && !v.ck_done) {
                            return Err(Error::Corrupt("checkpoint: delta base cycle"));
                        }
                        run.phase = Phase::History;
                        continue;
                    };
                    let base = vols
                        .get(v.ck_base as usize)
                        .copied()
                        .filter(|b| b.ck_done)
                        .and_then(|b| b.table.map(|bt| (b.id, bt)));
                    let next = Phase::Deltas {
                        vol: vol + 1,
                        at: 0,
                        open: false,
                        progress,
                    };
                    match (v.table, base) {
                        (Some(t), Some((bid, bt))) if !v.ck_done => {
                            if !open {
                                let mut rec = [0u8; SMALL_RECORD_BYTES];
                                encode_base(&mut Writer::new(&mut rec), v.id, bid)?;
                                w.append_record(&rec, &mut wsink)?;
                            }
                            let (at, done) = encode_diffs(&t, &bt, nodes, v.id, at, chunk)?;
                            if let Some(len) = done.len {
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if done.last {
                                if let Some(e) = vols.get_mut(vol) {
                                    e.ck_done = true;
                                }
                                Phase::Deltas {
                                    vol: vol + 1,
                                    at: 0,
                                    open: false,
                                    progress: true,
                                }
                            } else {
                                Phase::Deltas {
                                    vol,
                                    at,
                                    open: true,
                                    progress,
                                }
                            }
                        }
                        _ => next,
                    }
                }
                Phase::History => {
                    if let Some(rw) = self.last_rewind {
                        w.begin_section(HISTORY, &mut wsink)?;
                        let mut rec = [0u8; REWIND_RECORD_BYTES];
                        rw.encode(&mut Writer::new(&mut rec))?;
                        w.append_record(&rec, &mut wsink)?;
                    }
                    Phase::Finish
                }
                Phase::Finish => {
                    w.finish(&mut wsink)?;
                    self.ckpt_blocks = u64::from(w.blocks_written());
                    break;
                }
            };
        }
        sink(MetaOp::Flush)?;
        // The set's zones are no longer written: finish them (not active).
        let written = u32::try_from(self.ckpt_blocks).unwrap_or(u32::MAX);
        self.close_ckpt_zones(set, written, sink)?;
        Ok(true)
    }

    /// The operations of the last [`Self::checkpoint`] completed (`ok`) or
    /// failed (the pool then stops accepting changes: re-assemble it).
    pub fn checkpoint_end(&mut self, ok: bool) -> Result<()> {
        let Commit::Checkpoint {
            nrec,
            epoch,
            gen,
            seq,
        } = self.commit
        else {
            return Err(Error::Invalid("no checkpoint in flight"));
        };
        if self.ckpt_run.is_some() {
            // Steps left: the checkpoint is not written.
            self.ckpt_failed();
            return Err(Error::Invalid("checkpoint ended before its last step"));
        }
        self.commit = Commit::None;
        if !ok {
            self.failed = true;
            return Err(Error::Invalid("checkpoint failed"));
        }
        self.drop_records(nrec);
        self.committed_epoch = epoch;
        // `ZoneReset` records the checkpoint absorbed are in no journal
        // block: queue them again, so that the journal after this
        // checkpoint names the zone before it is reset (if this checkpoint
        // is ever lost, recovery from the older one must learn it).
        for e in self.zepoch.iter_mut() {
            if *e & RESET_QUEUED != 0 && *e & !RESET_QUEUED <= epoch {
                *e = 0;
            }
        }
        self.ckpt_gen = gen;
        self.ckpt_seq = seq;
        self.durable_seq = seq;
        self.jblocks_since_ckpt = 0;
        self.jrecords_since_ckpt = 0;
        self.need_ckpt = false;
        self.meta_full = false;
        self.ckpt_retry = false;
        let cap = self.checkpoint_capacity_blocks();
        self.meta_low = self.ckpt_blocks.saturating_mul(100)
            > cap.saturating_mul(100 - super::META_HEADROOM_PCT);
        self.stats.checkpoint_blocks = self.ckpt_blocks;
        self.stats.checkpoints = self.stats.checkpoints.saturating_add(1);
        self.stats.commits = self.stats.commits.saturating_add(1);
        Ok(())
    }
}

/// Where a checkpoint written in steps is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Volume records, from slot `next` on.
    Volumes { next: usize },
    /// Tables stored in full: slot `vol`, from block `cursor` on.
    Tables { vol: usize, cursor: u64 },
    /// Sharing links, from slot `next` on.
    Links { next: usize },
    /// Delta volumes, each after its base, in passes over the slots: slot
    /// `vol`, whose base record is written if `open` and whose differences
    /// go on at block `at`; `progress`: this pass completed a volume.
    Deltas {
        vol: usize,
        at: u64,
        open: bool,
        progress: bool,
    },
    /// The rewind history.
    History,
    /// The commit block.
    Finish,
}

/// A checkpoint written in steps: its generation, writer and position.
#[derive(Clone, Copy, Debug)]
pub(in super::super) struct CkptRun {
    gen: u64,
    w: WriterState,
    phase: Phase,
}

/// Emits checkpoint block `idx` of set `set` (a flush before the commit
/// block: everything before it must be durable first).
fn put_block<G, F>(geo: &PoolGeometry<G>, set: u8, idx: u32, b: &[u8], sink: &mut F) -> Result<()>
where
    G: Deref<Target = [DeviceGeometry]>,
    F: FnMut(MetaOp<'_>) -> Result<()>,
{
    let addr = checkpoint_block_addr(geo, set, idx).ok_or(Error::NoSpace)?;
    if peek_commit(b) {
        sink(MetaOp::Flush)?;
    }
    sink(MetaOp::Write(addr, b))
}

/// What [`encode_diffs`] left in the chunk.
struct DiffChunk {
    /// Bytes of the record to append, if any.
    len: Option<usize>,
    /// The volume's last differences are encoded.
    last: bool,
}

/// Encodes the differences of table `t` (volume `vol`) against `base` from
/// block `at` into one record in `chunk`, as many as fit. Returns where the
/// next record starts.
fn encode_diffs<S: NodeStore>(
    t: &BlockTable,
    base: &BlockTable,
    nodes: &S,
    vol: u32,
    mut at: u64,
    chunk: &mut [u8],
) -> Result<(u64, DiffChunk)> {
    let mut pending = t.next_diff(nodes, base, at);
    if pending.is_none() {
        return Ok((
            at,
            DiffChunk {
                len: None,
                last: true,
            },
        ));
    }
    let mut dw = DiffWriter::new(chunk, vol)?;
    while dw.has_room() {
        let Some(d) = pending else { break };
        let e = match d {
            Diff::Map(x) => DiffEntry {
                map: true,
                lba: x.lba,
                len: x.len.min(u64::from(u32::MAX)) as u32,
                addr: x.addr,
            },
            Diff::Unmap { lba, len } => DiffEntry {
                map: false,
                lba,
                len: len.min(u64::from(u32::MAX)) as u32,
                addr: 0,
            },
        };
        dw.push(&e)?;
        at = e.lba.saturating_add(u64::from(e.len));
        pending = t.next_diff(nodes, base, at);
    }
    let len = dw.finish()?;
    Ok((
        at,
        DiffChunk {
            len: Some(len),
            last: pending.is_none(),
        },
    ))
}
