// SPDX-License-Identifier: GPL-2.0
//! A heap-backed [`NodeStore`] for host builds only (tests, simulators and
//! `zvpoolctl pool check`); the kernel module has its own store
//! (rust/nodes.rs) and never compiles this file.

extern crate alloc;

use super::error::{Error, Result};
use super::map::{Node, NodeId, NodeMarks, NodeStore, FANOUT};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Block-table nodes on the heap, with reference counts (snapshots share
/// nodes), at most `limit` of them at once, and an optional hook that fails
/// allocations (allocation-failure tests).
pub struct VecStore {
    nodes: Vec<Option<Box<Node>>>,
    refs: Vec<u32>,
    /// Change marks (incremental checkpoints), and the current generation.
    marks: Vec<NodeMarks>,
    cur: u8,
    /// A checkpoint walks the other generation (swapped, not yet cleared).
    walking: bool,
    free: Vec<NodeId>,
    /// Most nodes in use at once (`alloc` fails beyond).
    pub limit: usize,
    live: usize,
    /// Called before each allocation: `true` fails it.
    pub fail: Option<fn() -> bool>,
    /// Node lookups ([`NodeStore::get`]) so far: what a walk costs
    /// (the GC simulator's scan cost per batch).
    pub gets: core::sync::atomic::AtomicU64,
}

impl VecStore {
    /// A store of at most `limit` nodes.
    pub fn new(limit: usize) -> Self {
        VecStore {
            nodes: Vec::new(),
            refs: Vec::new(),
            marks: Vec::new(),
            cur: 0,
            walking: false,
            free: Vec::new(),
            limit,
            live: 0,
            fail: None,
            gets: core::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A store without a limit.
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// Nodes in use.
    pub fn live(&self) -> usize {
        self.live
    }
}

impl Default for VecStore {
    fn default() -> Self {
        Self::unlimited()
    }
}

impl NodeStore for VecStore {
    fn alloc(&mut self) -> Option<NodeId> {
        if self.live >= self.limit || self.fail.is_some_and(|f| f()) {
            return None;
        }
        let n = Box::new([0u64; FANOUT]);
        let id = match self.free.pop() {
            Some(id) => {
                *self.nodes.get_mut(id as usize)? = Some(n);
                *self.refs.get_mut(id as usize)? = 1;
                *self.marks.get_mut(id as usize)? = NodeMarks::fresh(self.cur, self.walking);
                id
            }
            None => {
                let id = NodeId::try_from(self.nodes.len()).ok()?;
                self.nodes.push(Some(n));
                self.refs.push(1);
                self.marks.push(NodeMarks::fresh(self.cur, self.walking));
                id
            }
        };
        self.live += 1;
        Some(id)
    }

    fn headroom(&self) -> usize {
        self.limit.saturating_sub(self.live)
    }

    fn free(&mut self, id: NodeId) {
        debug_assert!(
            self.refs.get(id as usize).copied() == Some(1),
            "freeing a node with references"
        );
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            if slot.take().is_some() {
                self.live -= 1;
                self.free.push(id);
            }
        }
    }

    fn get(&self, id: NodeId) -> Option<&Node> {
        self.gets
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.nodes.get(id as usize)?.as_deref()
    }

    fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id as usize)?.as_deref_mut()
    }

    fn refs(&self, id: NodeId) -> u32 {
        match self.nodes.get(id as usize) {
            Some(Some(_)) => self.refs.get(id as usize).copied().unwrap_or(0),
            _ => 0,
        }
    }

    fn set_refs(&mut self, id: NodeId, refs: u32) -> Result<()> {
        debug_assert!(refs >= 1, "reference count 0");
        match (self.nodes.get(id as usize), self.refs.get_mut(id as usize)) {
            (Some(Some(_)), Some(r)) if refs >= 1 => {
                *r = refs;
                Ok(())
            }
            _ => Err(Error::NotFound),
        }
    }

    fn tracks_changes(&self) -> bool {
        true
    }

    fn mark(&mut self, id: NodeId, marks: u64) {
        if let Some(m) = self.marks.get_mut(id as usize) {
            m.mark(self.cur, marks);
        }
    }

    fn changed(&self, id: NodeId) -> u64 {
        self.marks
            .get(id as usize)
            .map_or(u64::MAX, |m| m.changed(self.cur))
    }

    fn mark_walked(&mut self, id: NodeId, marks: u64) {
        if self.walking {
            if let Some(m) = self.marks.get_mut(id as usize) {
                m.mark(self.cur ^ 1, marks);
            }
        }
    }

    fn swap_marks(&mut self) {
        self.cur ^= 1;
        self.walking = true;
    }

    fn clear_changed(&mut self) {
        for m in self.marks.iter_mut() {
            m.clear_changed(self.cur);
        }
        self.walking = false;
    }
}
