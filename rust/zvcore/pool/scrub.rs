// SPDX-License-Identifier: GPL-2.0
//! What a scrub reads back of the metadata: the newest checkpoint's chain
//! (its full checkpoint and the deltas after it, each block on each of its
//! copies), and the repair when a copy is unreadable or unsound: a full
//! checkpoint, which writes the whole image again in the other set, so
//! that the damaged blocks are no longer what an assembly reads.

use super::super::format::checkpoint::{set_of, sound_block_generation};
use super::super::format::layout::{checkpoint_block_addr, checkpoint_copy_addr};
use super::super::geom::{DeviceGeometry, PoolGeometry};
use super::Pool;
use core::ops::Deref;

/// The blocks of the newest checkpoint's chain: blocks `0..blocks` of set
/// `set`, written by the checkpoints of generations `base` (the full one)
/// to `newest` (its deltas: same set, generations two apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainExtent {
    pub set: u8,
    pub base: u64,
    pub newest: u64,
    pub blocks: u32,
}

impl ChainExtent {
    /// Pool addresses of block `index`'s copies (the second only with
    /// checkpoint copies).
    pub fn copies<S: Deref<Target = [DeviceGeometry]>>(
        &self,
        geo: &PoolGeometry<S>,
        index: u32,
    ) -> [Option<u64>; 2] {
        [
            checkpoint_block_addr(geo, self.set, index),
            checkpoint_copy_addr(geo, self.set, index),
        ]
    }

    /// Whether `block` is a sound block of one of the chain's checkpoints.
    pub fn sound(&self, block: &[u8]) -> bool {
        sound_block_generation(block)
            .is_some_and(|g| g >= self.base && g <= self.newest && set_of(g) == self.set)
    }
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S> {
    /// The newest checkpoint's chain, if a checkpoint was committed since
    /// assembly (which read the chain before it whole).
    pub fn scrub_chain(&self) -> Option<ChainExtent> {
        let c = &self.chain;
        (c.base != 0 && c.next_block > 0).then_some(ChainExtent {
            set: set_of(c.base),
            base: c.base,
            newest: self.ckpt_gen.max(c.base),
            blocks: c.next_block,
        })
    }

    /// A copy of a block of the chain was found unreadable or unsound: the
    /// next checkpoint is a full one (in the other set), and the next
    /// commit of records a checkpoint (the caller may write one at once).
    pub fn request_full_checkpoint(&mut self) {
        self.full_due = true;
        self.need_ckpt = true;
    }
}
