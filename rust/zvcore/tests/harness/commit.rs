// SPDX-License-Identifier: GPL-2.0
//! The world's commits: flushes, checkpoints (at once or in steps) and
//! the clean stop, with crashes in the middle of their metadata writes.

use super::*;

impl World {
    /// Flush (or checkpoint when needed / forced). With `may_crash`, a crash
    /// may hit in the middle of the metadata operations.
    pub fn commit(&mut self, may_crash: bool) -> bool {
        assert!(!self.in_ckpt, "commit between the steps of a checkpoint");
        let upto = self.completions;
        // Mostly the kernel's way (flush, which writes a checkpoint itself
        // when one is due), sometimes an explicit checkpoint.
        // (Not while a member added waits for its commit: the engine
        // refuses checkpoints until the journal has named it.)
        let explicit = (self.checkpoint_first || self.rng.pct(self.explicit_ckpt_pct))
            && !self.pool().member_pending();
        if (explicit || self.pool().needs_checkpoint()) && self.rng.pct(self.stepped_pct) {
            return self.checkpoint_stepped(may_crash);
        }
        let ckpt_before = self.pool().stats().checkpoints;
        let mut ops = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = if explicit {
            self.pool().checkpoint(&mut scratch, &mut |op| {
                ops.push(own(op));
                Ok(())
            })
        } else {
            self.pool()
                .flush(&mut scratch, &mut |op| {
                    ops.push(own(op));
                    Ok(())
                })
                .map(|_| ())
        };
        self.scratch = scratch;
        if r == Err(Error::Busy) && !self.inflight.is_empty() {
            // No zone slot for the checkpoint while writes are in flight.
            self.st.ckpt_busy += 1;
            self.complete_all();
            return self.commit(may_crash);
        }
        if r == Err(Error::Busy) && !self.resets.is_empty() {
            // Nor while zone resets are under way (the kernel waits for
            // them).
            self.st.ckpt_busy += 1;
            self.end_resets();
            return self.commit(may_crash);
        }
        if let Err(e) = r {
            let resets = self.resets.clone();
            let mut scratch = vec![0u8; 2 * BS];
            let jo = self
                .pool()
                .flush_journal_only(&mut scratch, 64, &mut |_| Ok(()));
            eprintln!(
                "journal only: {jo:?}, checkpoint generation {}",
                self.pool().checkpoint_generation()
            );
            let (first, nin) = (self.checkpoint_first, self.inflight.len());
            let p = self.pool();
            panic!(
                "commit: {e:?} (free zones {}, resets pending {:?}, records {}, checkpoint due {}, explicit {explicit}, first {}, draining {:#b}, in flight {}, checkpoint in flight {}, member pending {})",
                p.free_zones(),
                resets,
                p.pending_records(),
                p.needs_checkpoint(),
                first,
                p.alloc().draining(),
                nin,
                p.checkpoint_in_flight(),
                p.member_pending(),
            );
        }
        if may_crash && self.meta_crashes && !ops.is_empty() && self.rng.pct(4) {
            let at = self.rng.below(ops.len() as u64) as usize;
            self.exec(&ops, Some(at));
            self.st.crash_mid_meta += 1;
            self.crash_and_recover();
            return false;
        }
        assert!(self.exec(&ops, None));
        if explicit {
            self.pool().checkpoint_end(true).expect("checkpoint_end");
        } else if !ops.is_empty() {
            self.pool().flush_end(true).expect("flush_end");
        }
        if self.pool().stats().checkpoints > ckpt_before {
            self.checkpoint_first = false;
            self.st.checkpoints += 1;
            self.note_checkpoint_blocks();
        } else if !ops.is_empty() {
            self.st.flushes += 1;
        }
        self.committed(upto);
        true
    }

    /// A checkpoint written in steps of a few blocks, as the kernel writes
    /// it (its engine lock dropped for each step's I/O): writes, their
    /// completions, discards, GC batches and reads run between the steps,
    /// volume operations are refused (`Busy`), and with `may_crash` a crash
    /// may hit any step. Returns false after a crash.
    pub fn checkpoint_stepped(&mut self, may_crash: bool) -> bool {
        let upto = self.completions;
        let (r, mut ops) =
            self.meta_call(|p, scratch, mut sink| p.checkpoint_begin(scratch, &mut sink));
        match r {
            Ok(()) => {}
            Err(Error::Busy) if !self.inflight.is_empty() => {
                self.st.ckpt_busy += 1;
                self.complete_all();
                return self.checkpoint_stepped(may_crash);
            }
            Err(Error::Busy) if !self.resets.is_empty() => {
                self.st.ckpt_busy += 1;
                self.end_resets();
                return self.checkpoint_stepped(may_crash);
            }
            Err(e) => panic!("checkpoint_begin: {e:?}"),
        }
        loop {
            if may_crash && !ops.is_empty() && self.crash_within(&ops) {
                return false;
            }
            assert!(self.exec(&ops, None));
            ops.clear();
            if !self.pool().checkpoint_in_flight() {
                unreachable!("checkpoint ended by itself");
            }
            // Other work between the steps.
            self.in_ckpt = true;
            for _ in 0..self.rng.below(6) {
                self.st.between_steps += 1;
                match self.rng.below(10) {
                    0..=3 => self.do_write(),
                    4..=5 => self.complete_some(),
                    6 => self.do_discard(),
                    7 => {
                        self.gc_batch();
                    }
                    _ if !self.blind => self.read_check(),
                    _ => {}
                }
            }
            if self.rng.pct(5) {
                let id = self.next_vol;
                let r = self.pool().vol_create(id, b"between-steps", 8, 0);
                assert_eq!(r, Err(Error::Busy), "volume created during a checkpoint");
            }
            self.in_ckpt = false;
            // Sometimes a journal commit of what is queued, as the kernel
            // does when the record queue fills during a checkpoint.
            if self.rng.pct(30) && !self.side_commit(may_crash) {
                return false;
            }
            let budget = self.rng.range(1, 12) as u32;
            let r;
            (r, ops) = self
                .meta_call(|p, scratch, mut sink| p.checkpoint_step(scratch, budget, &mut sink));
            // (Each block written twice with checkpoint copies.)
            let copies = if self.pool_ref().geom().ckpt_copies() {
                2
            } else {
                1
            };
            let blocks = ops.iter().filter(|o| o.kind > 2).count() as u32 / copies;
            assert!(blocks <= budget + 4, "step of {blocks} blocks for {budget}");
            if r.expect("checkpoint_step") {
                break;
            }
        }
        if may_crash && self.crash_within(&ops) {
            return false;
        }
        assert!(self.exec(&ops, None));
        self.pool().checkpoint_end(true).expect("checkpoint_end");
        self.checkpoint_first = false;
        self.st.checkpoints += 1;
        self.note_checkpoint_blocks();
        self.st.stepped += 1;
        self.committed(upto);
        true
    }

    /// A journal commit between two steps of the checkpoint in flight
    /// (nothing if the engine declines); with `may_crash`, a crash may hit
    /// in it or, more often, after it before the checkpoint's end: what it
    /// committed must survive either checkpoint. Returns false after a
    /// crash.
    fn side_commit(&mut self, may_crash: bool) -> bool {
        let upto = self.completions;
        let (r, ops) =
            self.meta_call(|p, scratch, mut sink| p.journal_in_checkpoint(scratch, 64, &mut sink));
        if r.expect("journal_in_checkpoint") == 0 {
            assert!(ops.is_empty(), "operations emitted for no journal block");
            return true;
        }
        if may_crash && self.crash_within(&ops) {
            return false;
        }
        assert!(self.exec(&ops, None));
        self.pool()
            .journal_in_checkpoint_end(true)
            .expect("journal_in_checkpoint_end");
        self.st.side_commits += 1;
        if self.pool_ref().pending_records() == 0 {
            // Everything completed before it is durable now.
            self.committed(upto);
        }
        if may_crash && self.meta_crashes && self.rng.pct(10) {
            self.st.side_crashes += 1;
            self.st.crash_mid_meta += 1;
            self.crash_and_recover();
            return false;
        }
        true
    }

    /// Sometimes (3 %) a crash before a random one of `ops` (or after all),
    /// and recovery; returns whether it crashed.
    fn crash_within(&mut self, ops: &[OwnedOp]) -> bool {
        if !self.meta_crashes || !self.rng.pct(3) {
            return false;
        }
        let at = self.rng.below(ops.len() as u64 + 1) as usize;
        self.exec(ops, Some(at));
        self.st.crash_mid_meta += 1;
        self.crash_and_recover();
        true
    }

    /// Calls `f` with the pool, the scratch buffer and a sink that collects
    /// the metadata operations it emits; returns its result and them.
    pub fn meta_call<T>(
        &mut self,
        f: impl FnOnce(&mut P, &mut [u8], &mut dyn FnMut(MetaOp<'_>) -> zvcore::error::Result<()>) -> T,
    ) -> (T, Vec<OwnedOp>) {
        let mut ops = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut sink = |op: MetaOp<'_>| {
            ops.push(own(op));
            Ok(())
        };
        let r = f(self.pool.as_mut().expect("pool"), &mut scratch, &mut sink);
        self.scratch = scratch;
        (r, ops)
    }

    /// Clean stop: the engine's closing commit block. Returns whether one
    /// was written.
    pub fn close(&mut self) -> bool {
        let (r, ops) = self.meta_call(|p, scratch, mut sink| p.close(scratch, &mut sink));
        let wrote = r.expect("close");
        assert!(self.exec(&ops, None));
        wrote
    }

    /// Completes every write in flight and commits until nothing is queued.
    /// One commit is not enough: a stepped checkpoint runs writes between
    /// its steps, and their records are left for the next commit.
    pub fn settle(&mut self) {
        loop {
            self.complete_all();
            if self.commit(false)
                && self.inflight.is_empty()
                && self.pool_ref().pending_records() == 0
            {
                return;
            }
        }
    }

    /// Keeps the size of the largest checkpoint written.
    fn note_checkpoint_blocks(&mut self) {
        let b = self.pool_ref().stats().checkpoint_blocks;
        self.st.max_checkpoint_blocks = self.st.max_checkpoint_blocks.max(b);
        let d = self.pool_ref().stats().delta_checkpoints;
        // A full checkpoint with every member: two copies of all the
        // metadata again (see `degraded_pct`).
        if d == self.seen_deltas && self.missing == 0 {
            self.redundant = true;
        }
        self.st.deltas += d.saturating_sub(self.seen_deltas);
        self.seen_deltas = d;
        let v = self.pool_ref().stats().volume_deltas;
        self.st.volume_deltas += v.saturating_sub(self.seen_volume_deltas);
        self.seen_volume_deltas = v;
        let c = self.pool_ref().stats().delta_copies;
        self.st.delta_copies += c.saturating_sub(self.seen_delta_copies);
        self.seen_delta_copies = c;
        let g = self.pool_ref().stats().delta_grows;
        self.st.delta_grows += g.saturating_sub(self.seen_delta_grows);
        self.seen_delta_grows = g;
    }

    pub fn checkpoint_now(&mut self) {
        let (r, ops) = self.meta_call(|p, scratch, mut sink| p.checkpoint(scratch, &mut sink));
        r.expect("checkpoint");
        assert!(self.exec(&ops, None));
        self.pool().checkpoint_end(true).expect("checkpoint_end");
    }
}
