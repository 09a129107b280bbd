// SPDX-License-Identifier: GPL-2.0
//! What an assembly keeps of the metadata's places, so that the pool goes
//! on after it as if it had not stopped (`recovery/resume.rs` decides
//! when): the journal in its log zone, and the newest checkpoint's chain,
//! whose next checkpoint is then a delta holding only what changed since
//! it (the replayed journal and what follows) instead of a full image.
//!
//! Both keep zones open that assembly would otherwise finish, and take
//! their members' zone slots before the data zones do, exactly as the
//! engine holds them between two commits: the journal's zone (and its
//! mirror's), and each member's partly written last zone of the chain's
//! set (the slot on the member's first zone of the set,
//! `Chain::tail`).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::format::checkpoint::set_of;
use super::super::format::layout::{checkpoint_last_zone, checkpoint_zone, log_zone};
use super::super::format::{Record, Superblock, INCOMPAT_DELTA_VOLUMES};
use super::super::geom::DeviceGeometry;
use super::super::map::NodeStore;
use super::checkpoint::Chain;
use super::{Pool, VolEntry};

/// Bit of member `d` in a member set.
fn bit(d: u16) -> u64 {
    1u64.checked_shl(u32::from(d)).unwrap_or(0)
}

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
    /// The journal goes on in log zone `log` at block `next` (of the
    /// journal member and its mirror): takes their zone slots. False, with
    /// nothing taken, if a member has no slot (the journal then starts
    /// after a checkpoint, as after a torn tail).
    pub(crate) fn resume_journal_zone(&mut self, log: u8, next: u64) -> bool {
        let zones = [
            log_zone(self.alloc.geom(), self.jdev, u32::from(log)),
            self.mirror_log_zone(log),
        ];
        let mut taken = [false; 2];
        for (t, z) in taken.iter_mut().zip(zones) {
            *t = z.is_some_and(|z| self.alloc.meta_open(z, true).is_ok());
        }
        if zones.iter().zip(taken).any(|(z, t)| z.is_some() && !t) {
            for (z, t) in zones.iter().zip(taken) {
                if let (Some(z), true) = (z, t) {
                    let _ = self.alloc.meta_open(*z, false);
                }
            }
            return false;
        }
        self.jlog = Some(log);
        self.jwp = next;
        true
    }

    /// The chain of full checkpoint `base` (`full_blocks` blocks) goes on
    /// at block `next_block` of its set: the next checkpoint is a delta
    /// appended there (when `delta_next` allows, as for any chain). Takes
    /// the tail slots of the members whose last zone of the set is partly
    /// written, by the rule of a checkpoint's end (`close_ckpt_zones`).
    /// `history_base`: the pool's write clock as the chain left it (the
    /// delta lists the zones written since). False, with nothing taken or
    /// changed, when deltas are off, the journal has no zone, or a member
    /// cannot keep its tail open. `vol_ops`: the journal replayed volume
    /// operations, whose volumes replay marked as the engine's own
    /// operations do (`ck_new` and the like); the delta then carries the
    /// volume table, as after them (`vols_changed`), unless the metadata
    /// space runs short (only a full image gives back what a delete freed).
    pub(crate) fn resume_chain(
        &mut self,
        base: u64,
        full_blocks: u32,
        next_block: u32,
        history_base: u64,
        vol_ops: bool,
    ) -> bool {
        if !self.deltas_enabled() || self.jlog.is_none() || next_block < full_blocks || base == 0 {
            return false;
        }
        if vol_ops
            && (self.sb.incompat & INCOMPAT_DELTA_VOLUMES == 0
                || self.meta_low_after(u64::from(full_blocks)))
        {
            return false;
        }
        let set = set_of(base);
        let mut tails = 0u64;
        let mut ok = true;
        for d in 0..self.alloc.geom().nr_devices() {
            let geo = self.alloc.geom();
            if geo.is_removed(d) {
                continue;
            }
            let Some((z, partly)) = checkpoint_last_zone(geo, set, d, next_block) else {
                ok = false;
                break;
            };
            if !partly || self.zone_conv(z) {
                continue;
            }
            if self.keep_tail(set, d).unwrap_or(false) {
                tails |= bit(d);
            } else {
                ok = false;
                break;
            }
        }
        if !ok {
            for d in 0..self.alloc.geom().nr_devices() {
                if tails & bit(d) == 0 {
                    continue;
                }
                if let Some(first) = checkpoint_zone(self.alloc.geom(), set, d) {
                    let _ = self.alloc.meta_keep(first, false);
                    let _ = self.alloc.meta_open(first, false);
                }
            }
            return false;
        }
        let delta_blocks = next_block - full_blocks;
        self.chain = Chain {
            open: true,
            base,
            next_block,
            full_blocks,
            delta_blocks,
            tail: tails,
        };
        // (A pool starts with a full checkpoint due: this one has its chain.)
        self.full_due = false;
        self.vols_changed = vol_ops;
        self.history_base = history_base;
        self.meta_low = self.meta_low_after(u64::from(full_blocks));
        self.stats.checkpoint_blocks = u64::from(full_blocks);
        self.stats.delta_blocks = u64::from(delta_blocks);
        true
    }
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    /// The chain assembly loaded when it does not go on (the next
    /// checkpoint is full): kept, closed, so that a scrub reads back what
    /// a later assembly would read until then (`Pool::scrub_chain`).
    pub(crate) fn note_loaded_chain(&mut self, base: u64, full_blocks: u32, next_block: u32) {
        if self.chain.open || base == 0 || next_block < full_blocks {
            return;
        }
        self.chain = Chain {
            open: false,
            base,
            next_block,
            full_blocks,
            delta_blocks: next_block - full_blocks,
            tail: 0,
        };
    }

    /// Whether metadata zone `z` stays open after assembly (not finished):
    /// the journal's zone, or a tail of the chain ([`Self::resume_journal_zone`],
    /// [`Self::resume_chain`]).
    pub(crate) fn kept_open(&self, z: u32) -> bool {
        let geo = self.alloc.geom();
        if let Some(l) = self.jlog {
            let mirror = self.jmirror.and_then(|m| log_zone(geo, m, u32::from(l)));
            if log_zone(geo, self.jdev, u32::from(l)) == Some(z) || mirror == Some(z) {
                return true;
            }
        }
        if !self.chain.open || self.chain.tail == 0 {
            return false;
        }
        let set = set_of(self.chain.base);
        (0..geo.nr_devices()).any(|d| {
            self.chain.tail & bit(d) != 0
                && checkpoint_last_zone(geo, set, d, self.chain.next_block) == Some((z, true))
        })
    }
}
