// SPDX-License-Identifier: GPL-2.0
//! Zone resets: finishing zones whose writes failed, and resetting data
//! zones without valid blocks once their invalidations are committed.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo, ZoneState};
use super::super::error::{Error, Result};
use super::super::format::{Record, Superblock};
use super::super::geom::DeviceGeometry;
use super::super::map::NodeStore;
use super::{MetaOp, Pool, VolEntry, RESETTING, RESET_QUEUED};

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
    // ---- maintenance: zone resets -----------------------------------------------

    /// Emits `Finish` for zones whose writes failed, then `Reset` for every
    /// data zone that holds no valid block and whose
    /// invalidations are committed (sequential zones; conventional ones are
    /// just marked empty). The zones are free for allocation at once: the
    /// caller must complete the resets before issuing new writes. Returns
    /// the number of zones reclaimed.
    ///
    /// On pools with commit groups a zone is reset in two steps: first a
    /// `ZoneReset` record is queued ([`Self::pending_records`] grows:
    /// commit, then call this again), and the zone is reset once that
    /// record is committed. So the journal names every zone reclaimed
    /// after any point in it, which recovery needs when it must stop
    /// before damaged metadata.
    pub fn maintenance<F: FnMut(MetaOp<'_>) -> Result<()>>(&mut self, sink: &mut F) -> Result<u32> {
        self.alloc.release_closing();
        self.maintenance_inner(sink, u32::MAX, false)
    }

    /// [`Self::maintenance`] whose resets the caller performs later, outside
    /// its lock: the `Reset` operations of at most `max_resets` zones are
    /// emitted and those zones are marked resetting (neither allocatable nor
    /// planned again) until [`Self::reset_end`]. Returns the number of
    /// resets emitted.
    pub fn maintenance_plan<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        sink: &mut F,
        max_resets: u32,
    ) -> Result<u32> {
        self.alloc.release_closing();
        self.maintenance_inner(sink, max_resets, true)
    }

    /// The device turned data zone `z` read-only (`readable`) or offline:
    /// a write into it failed, or its finish or reset did. It is taken out
    /// of service (`Allocator::retire`): no finish or reset
    /// is planned for it any more (one planned is dropped), nothing is
    /// written to it, GC moves a readable zone's blocks like any victim's
    /// and never reads an offline one's (their reads fail until they are
    /// overwritten); empty, it is `ZoneState::Offline` for
    /// good. Not persistent until then: after a reassembly its first
    /// failed write finds it again.
    pub fn zone_unusable(&mut self, z: u32, readable: bool) -> Result<()> {
        let n = self.nfinish.min(self.finish_q.len());
        if let Some(k) = self
            .finish_q
            .get(..n)
            .and_then(|q| q.iter().position(|&f| f == z))
        {
            self.finish_q.copy_within(k + 1..n, k);
            self.nfinish = n.saturating_sub(1);
        }
        if let Some(e) = self.zepoch.get_mut(z as usize) {
            // A reset planned or queued is abandoned.
            if *e & RESET_QUEUED != 0 {
                *e = 0;
            }
        }
        self.alloc.retire(z, readable)?;
        if !readable && self.gc_victim == Some(z) {
            self.gc_victim = None;
        }
        Ok(())
    }

    /// The reset of zone `z` planned by [`Self::maintenance_plan`] is done
    /// (`ok`: the zone is free) or failed (it is planned again later).
    pub fn reset_end(&mut self, z: u32, ok: bool) -> Result<()> {
        let e = self
            .zepoch
            .get_mut(z as usize)
            .ok_or(Error::Invalid("zone"))?;
        if *e != RESETTING {
            return Err(Error::Invalid("no reset planned"));
        }
        if !ok {
            // Committed already: the next maintenance retries it.
            *e = RESET_QUEUED;
            return Ok(());
        }
        self.reset_done(z)
    }

    /// Zone `z` was reset on the device (or needs none): free it.
    fn reset_done(&mut self, z: u32) -> Result<()> {
        self.alloc.reset(z)?;
        if let Some(x) = self.zepoch.get_mut(z as usize) {
            *x = 0;
        }
        if self.gc_victim == Some(z) {
            self.gc_victim = None;
        }
        self.stats.zones_reset = self.stats.zones_reset.saturating_add(1);
        Ok(())
    }

    fn maintenance_inner<F: FnMut(MetaOp<'_>) -> Result<()>>(
        &mut self,
        sink: &mut F,
        max_resets: u32,
        defer: bool,
    ) -> Result<u32> {
        self.live()?;
        let journal_resets = self.commit_blocks();
        for k in 0..self.nfinish {
            if let Some(&z) = self.finish_q.get(k) {
                // A lost member's zone stays as it is (the device is gone).
                if !self.alloc.zone_lost(z) {
                    sink(MetaOp::Finish(z))?;
                }
                self.alloc.finish_issued(z);
            }
        }
        self.nfinish = 0;
        self.all_committed();
        let mut n = 0u32;
        for z in 0..self.alloc.geom().nr_zones() {
            if n >= max_resets {
                break;
            }
            let Some(zi) = self.alloc.zone(z).copied() else {
                continue;
            };
            if !matches!(zi.state(), ZoneState::Full | ZoneState::Closed)
                || zi.valid() != 0
                || zi.inflight() != 0
            {
                continue;
            }
            if self.gc_busy && self.gc_victim == Some(z) {
                continue;
            }
            if self.alloc.zone_lost(z) {
                // Its device is gone: it is never reused while the pool runs.
                continue;
            }
            if zi.retired() {
                // Read-only or offline on the device: never reset; out of
                // service once empty.
                self.alloc.retire_if_empty(z)?;
                continue;
            }
            let ze = self.zepoch.get(z as usize).copied().unwrap_or(u64::MAX);
            if ze == RESETTING {
                continue;
            }
            if ze & RESET_QUEUED == 0 {
                if ze > self.committed_epoch {
                    continue;
                }
                if journal_resets {
                    // Journal the reset first, reset once that is committed:
                    // recovery past damaged metadata then knows which zones
                    // were reclaimed after the damage (design-recovery §8a).
                    if self.free_slots() == 0 {
                        continue;
                    }
                    let e = self.cur_epoch;
                    self.push(Record::ZoneReset { zone: z });
                    if let Some(x) = self.zepoch.get_mut(z as usize) {
                        *x = RESET_QUEUED | e;
                    }
                    continue;
                }
            } else if ze & !RESET_QUEUED > self.committed_epoch {
                continue;
            }
            n = n.saturating_add(1);
            if self.zone_conv(z) {
                self.reset_done(z)?;
                continue;
            }
            sink(MetaOp::Reset(z))?;
            if defer {
                if let Some(x) = self.zepoch.get_mut(z as usize) {
                    *x = RESETTING;
                }
            } else {
                self.reset_done(z)?;
            }
        }
        Ok(n)
    }
}
