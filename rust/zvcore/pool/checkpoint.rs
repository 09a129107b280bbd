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
use super::super::format::layout::{checkpoint_block_addr, checkpoint_capacity, checkpoint_zone};
use super::super::format::sharing::{
    encode_base, encode_link, DiffEntry, DiffWriter, SMALL_RECORD_BYTES,
};
use super::super::format::INCOMPAT_SHARED_BLOCKS;
use super::super::format::{CheckpointHeader, CheckpointWriter, Record, Superblock, BLOCK_SIZE};
use super::super::geom::{DeviceGeometry, Stream, NR_STREAMS};
use super::super::map::{Diff, NodeStore};
use super::{peek_commit, Commit, MetaOp, Pool, VolEntry, NO_SLOT, RESET_QUEUED, VOL_RECORD_BYTES};

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
    /// also commits every queued record. Emits the resets of the set's
    /// zones, the checkpoint blocks (with a `Flush` before the commit
    /// block, and one after), then finishes of the set's zones; call
    /// [`Self::checkpoint_end`] once they are done. `scratch` is 2 blocks.
    pub fn checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        self.live()?;
        if self.commit != Commit::None {
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
        let r = self.write_checkpoint(gen, scratch, sink);
        if r.is_err() {
            self.commit = Commit::None;
            self.failed = true;
        }
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
                (true, Some(p), Some(_)) => self
                    .vols
                    .iter()
                    .position(|w| w.table.is_some() && w.id == p)
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

    pub(super) fn write_checkpoint<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        gen: u64,
        scratch: &mut [u8],
        sink: &mut F,
    ) -> Result<()> {
        let set = set_of(gen);
        let n = self.alloc.geom().nr_devices();
        for d in 0..n {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            if !self.zone_conv(z) {
                sink(MetaOp::Reset(z))?;
            }
        }
        let cap = checkpoint_capacity(self.alloc.geom(), set);
        let (blk, rest) = scratch.split_at_mut(BLOCK_SIZE.min(scratch.len()));
        let chunk = rest
            .get_mut(..CKPT_DATA_MAX)
            .ok_or(Error::Invalid("scratch: 2 blocks"))?;
        let hdr = CheckpointHeader {
            pool_uuid: self.sb.pool_uuid,
            generation: gen,
            journal_seq: self.jseq.saturating_sub(1),
        };
        let mut w = CheckpointWriter::new(blk, hdr, cap)?;
        self.plan_bases();
        // The sink of the writer: translate indexes to addresses, open the
        // set's zones as they are entered, flush before the commit block.
        let mut cur_zone: Option<u32> = None;
        let mut opened = [false; super::super::geom::MAX_DEVICES];
        let mut err: Result<()> = Ok(());
        {
            let geom_alloc = &mut self.alloc;
            let mut wsink = |idx: u32, b: &[u8]| -> Result<()> {
                let addr =
                    checkpoint_block_addr(geom_alloc.geom(), set, idx).ok_or(Error::NoSpace)?;
                let z = geom_alloc.geom().zone_of(addr).ok_or(Error::NoSpace)?;
                if cur_zone != Some(z) {
                    cur_zone = Some(z);
                    let d = geom_alloc.geom().zone(z).map(|g| g.dev).unwrap_or(0);
                    if geom_alloc.meta_open(z, true).is_err() {
                        // Make room: finish one open data zone of the member.
                        let mut freed = false;
                        for s in Stream::ALL.iter().take(NR_STREAMS) {
                            if let Some(oz) = geom_alloc.open_zone(*s, d) {
                                let infl = geom_alloc.zone(oz).map(|zi| zi.inflight()).unwrap_or(1);
                                if infl == 0 && geom_alloc.finish(oz).is_ok() {
                                    sink(MetaOp::Finish(oz))?;
                                    freed = true;
                                    break;
                                }
                            }
                        }
                        if !freed {
                            return Err(Error::Busy);
                        }
                        geom_alloc.meta_open(z, true)?;
                    }
                    if let Some(o) = opened.get_mut(usize::from(d)) {
                        *o = true;
                    }
                }
                if peek_commit(b) {
                    sink(MetaOp::Flush)?;
                }
                sink(MetaOp::Write(addr, b))
            };
            let vols = &mut self.vols;
            let nodes = &self.nodes;
            let sharing = self.sb.incompat & INCOMPAT_SHARED_BLOCKS != 0;
            let rewind = self.last_rewind;
            // Volumes.
            let r = (|| -> Result<()> {
                w.begin_section(section::VOLUMES, &mut wsink)?;
                for v in vols.iter() {
                    let Some(t) = v.table else { continue };
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
                w.begin_section(section::BLOCK_TABLE, &mut wsink)?;
                for v in vols.iter() {
                    let Some(t) = v.table else { continue };
                    if v.ck_base != NO_SLOT {
                        continue;
                    }
                    let mut cursor = 0u64;
                    loop {
                        let mut cw = Writer::new(chunk);
                        let done = t.encode_chunk(nodes, &mut cursor, &mut cw)?;
                        let len = cw.pos();
                        if len > 4 {
                            w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                        }
                        if done {
                            break;
                        }
                    }
                }
                if sharing {
                    w.begin_section(section::SHARING, &mut wsink)?;
                    for v in vols.iter() {
                        if v.table.is_none() || (v.origin.is_none() && v.parent.is_none()) {
                            continue;
                        }
                        let mut rec = [0u8; SMALL_RECORD_BYTES];
                        encode_link(&mut Writer::new(&mut rec), v.id, v.origin, v.parent)?;
                        w.append_record(&rec, &mut wsink)?;
                    }
                    // Delta volumes, each after its base.
                    loop {
                        let mut progress = false;
                        for i in 0..vols.len() {
                            let Some(v) = vols.get(i).copied() else { break };
                            let Some(t) = v.table else { continue };
                            if v.ck_done {
                                continue;
                            }
                            let Some(b) = vols.get(v.ck_base as usize).copied() else {
                                continue;
                            };
                            let Some(bt) = b.table.filter(|_| b.ck_done) else {
                                continue;
                            };
                            let mut rec = [0u8; SMALL_RECORD_BYTES];
                            encode_base(&mut Writer::new(&mut rec), v.id, b.id)?;
                            w.append_record(&rec, &mut wsink)?;
                            let mut at = 0u64;
                            let mut pending = t.next_diff(nodes, &bt, at);
                            while pending.is_some() {
                                let mut dw = DiffWriter::new(chunk, v.id)?;
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
                                    pending = t.next_diff(nodes, &bt, at);
                                }
                                let len = dw.finish()?;
                                w.append_record(chunk.get(..len).unwrap_or(&[]), &mut wsink)?;
                            }
                            if let Some(e) = vols.get_mut(i) {
                                e.ck_done = true;
                            }
                            progress = true;
                        }
                        if !progress {
                            break;
                        }
                    }
                    if vols.iter().any(|v| v.table.is_some() && !v.ck_done) {
                        return Err(Error::Corrupt("checkpoint: delta base cycle"));
                    }
                }
                if let Some(rw) = rewind {
                    w.begin_section(HISTORY, &mut wsink)?;
                    let mut rec = [0u8; REWIND_RECORD_BYTES];
                    rw.encode(&mut Writer::new(&mut rec))?;
                    w.append_record(&rec, &mut wsink)?;
                }
                w.finish(&mut wsink).map(|_| ())
            })();
            if let Err(e) = r {
                err = Err(e);
            }
        }
        err?;
        sink(MetaOp::Flush)?;
        // The set's zones are no longer written: finish them (not active).
        for d in 0..n {
            let z = checkpoint_zone(self.alloc.geom(), set, d)
                .ok_or(Error::Corrupt("checkpoint zone"))?;
            if opened.get(usize::from(d)).copied().unwrap_or(false) {
                let _ = self.alloc.meta_open(z, false);
            }
            if !self.zone_conv(z) {
                sink(MetaOp::Finish(z))?;
            }
        }
        self.commit = Commit::Checkpoint {
            nrec: self.npend,
            epoch: self.cur_epoch,
            gen,
            seq: self.jseq.saturating_sub(1),
        };
        self.cur_epoch += 1;
        Ok(())
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
        self.stats.checkpoints = self.stats.checkpoints.saturating_add(1);
        self.stats.commits = self.stats.commits.saturating_add(1);
        Ok(())
    }
}
