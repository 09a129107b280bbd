// SPDX-License-Identifier: GPL-2.0
//! Block-table nodes in kernel memory: the kernel's [`NodeStore`].
//!
//! Each node is one 4 KiB kmalloc'ed buffer, indexed by a dense id so the core
//! can refer to it by number. Freed ids are reused. Allocations happen while
//! I/O of the pool is in flight (block-table updates at write completion),
//! where reclaim must not recurse into the block layer: callers on the I/O
//! path hold a [`crate::kwrap::noio::NoIo`] scope, which makes these
//! `GFP_KERNEL` allocations behave as `GFP_KERNEL`.

use crate::zvcore::map::{Node, NodeId, NodeStore, FANOUT};
use kernel::prelude::*;

/// Nodes of all block tables of one pool.
pub(crate) struct KNodes {
    slots: KVec<Option<KVec<u64>>>,
    refs: KVec<u32>,
    free: KVec<NodeId>,
    live: usize,
}

impl KNodes {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            slots: KVec::new(),
            refs: KVec::new(),
            free: KVec::new(),
            live: 0,
        }
    }

    /// Nodes in use (each is 4 KiB of memory).
    pub(crate) fn live(&self) -> usize {
        self.live
    }
}

impl NodeStore for KNodes {
    fn alloc(&mut self) -> Option<NodeId> {
        // Built on the heap directly (a 4 KiB array on the kernel stack is too much).
        let node = KVec::from_elem(0u64, FANOUT, GFP_KERNEL).ok()?;
        // Room in `free` for every slot, so `free()` never needs to allocate.
        let want = self
            .slots
            .len()
            .checked_add(1)?
            .checked_sub(self.free.len())?;
        self.free.reserve(want, GFP_KERNEL).ok()?;
        let id = match self.free.pop() {
            Some(id) => {
                let slot = self.slots.get_mut(id as usize)?;
                *slot = Some(node);
                *self.refs.get_mut(id as usize)? = 1;
                id
            }
            None => {
                let id = NodeId::try_from(self.slots.len()).ok()?;
                self.refs.push(1, GFP_KERNEL).ok()?;
                if self.slots.push(Some(node), GFP_KERNEL).is_err() {
                    self.refs.pop();
                    return None;
                }
                id
            }
        };
        self.live += 1;
        Some(id)
    }

    fn free(&mut self, id: NodeId) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            if slot.take().is_some() {
                self.live -= 1;
                // Capacity was reserved by `alloc`, so this does not allocate.
                let _ = self.free.push(id, GFP_NOWAIT);
            }
        }
    }

    fn get(&self, id: NodeId) -> Option<&Node> {
        self.slots
            .get(id as usize)?
            .as_ref()?
            .as_slice()
            .try_into()
            .ok()
    }

    fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.slots
            .get_mut(id as usize)?
            .as_mut()?
            .as_mut_slice()
            .try_into()
            .ok()
    }

    fn refs(&self, id: NodeId) -> u32 {
        self.refs.get(id as usize).copied().unwrap_or(0)
    }

    fn set_refs(&mut self, id: NodeId, refs: u32) -> crate::zvcore::error::Result<()> {
        match self.refs.get_mut(id as usize) {
            Some(r) => {
                *r = refs;
                Ok(())
            }
            None => Err(crate::zvcore::error::Error::NotFound),
        }
    }
}
