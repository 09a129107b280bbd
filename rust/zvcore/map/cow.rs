// SPDX-License-Identifier: GPL-2.0
//! Copy-on-write sharing of block tables: O(1) clones of a whole table,
//! copying shared nodes before a change, releasing shared subtrees,
//! flattening, and the space a table shares with others.

use super::super::error::{Error, Result};
use super::super::sparse::RefMap;
use super::{
    add_ref, child, entry, held, index, node_runs, span, BlockTable, Counted, Hooks, NodeId,
    NodeStore, Run, TableSpace, FANOUT, MAX_REFS, PRESENT,
};

impl BlockTable {
    /// O(1) snapshot / clone: a new table for volume `vol` sharing this
    /// table's whole tree (the root's reference count grows by one). Both
    /// tables are then modified copy-on-write through the `*_shared`
    /// methods. Needs a store with reference counts
    /// ([`NodeStore::set_refs`]). Blocks keep their lbas in every sharer.
    pub fn clone_root<S: NodeStore>(&mut self, store: &mut S, vol: u32) -> Result<BlockTable> {
        if let Some(r) = self.root {
            add_ref(store, r)?;
            self.cow = true;
        }
        Ok(BlockTable { vol, ..*self })
    }

    pub(super) fn not_shared(&self) -> Result<()> {
        if self.cow {
            return Err(Error::Invalid("shared table: use the *_shared methods"));
        }
        Ok(())
    }

    /// Copies shared node `id` (at `level`) into a new exclusive node:
    /// children gain a reference, the blocks of a leaf or of a level-2
    /// node's run entries gain one through `hooks.copied` (the copy is a new
    /// holder); the original loses one reference. Returns the copy. On
    /// error nothing changed.
    fn copy_node<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<NodeId> {
        let refs = store.refs(id);
        if level > 1 {
            for i in 0..FANOUT {
                if let Some(c) = child(entry(store, id, i)) {
                    if store.refs(c) >= MAX_REFS {
                        return Err(Error::Invalid("too many references"));
                    }
                }
            }
        }
        let copy = store.alloc().ok_or(Error::NoSpace)?;
        if level <= 2 {
            let (done, r) = node_runs(store, id, level, usize::MAX, &mut |s, _, a, n| {
                hooks.copied(s, a, n)
            });
            if let Err(e) = r {
                let _ = node_runs(store, id, level, done, &mut |s, _, a, n| {
                    hooks.uncopied(s, a, n);
                    Ok(())
                });
                store.free(copy);
                return Err(e);
            }
        }
        for i in 0..FANOUT {
            let e = entry(store, id, i);
            if let Some(slot) = store.get_mut(copy).and_then(|n| n.get_mut(i)) {
                *slot = e;
            }
            if level > 1 {
                if let Some(c) = child(e) {
                    add_ref(store, c)?;
                }
            }
        }
        store.set_refs(id, refs.saturating_sub(1).max(1))?;
        Ok(copy)
    }

    /// Makes every existing node at levels `stop` and above on the path to
    /// `lba` exclusive to this table, copying shared ones (no-op unless the
    /// table shares nodes). A run entry ends the path.
    pub(super) fn unshare<S: NodeStore>(
        &mut self,
        store: &mut S,
        lba: u64,
        stop: u8,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if !self.cow {
            return Ok(());
        }
        let Some(mut id) = self.root else {
            return Ok(());
        };
        let mut parent: Option<(NodeId, usize)> = None;
        let mut level = self.height;
        loop {
            if store.refs(id) > 1 {
                let copy = Self::copy_node(store, id, level, hooks)?;
                match parent {
                    None => self.root = Some(copy),
                    Some((p, i)) => {
                        if let Some(slot) = store.get_mut(p).and_then(|n| n.get_mut(i)) {
                            *slot = PRESENT | u64::from(copy);
                        }
                    }
                }
                id = copy;
            }
            if level <= stop.max(1) {
                return Ok(());
            }
            let i = index(lba, level);
            match child(entry(store, id, i)) {
                Some(c) => {
                    parent = Some((id, i));
                    id = c;
                }
                None => return Ok(()),
            }
            level -= 1;
        }
    }

    /// Drops one reference to the subtree at `id` (`level`, first lba
    /// `base`), freeing nodes no longer referenced; the mappings a freed
    /// node held (leaf entries, run entries) go to `hooks.dropped`.
    pub(super) fn release<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        base: u64,
        hooks: &mut dyn Hooks<S>,
    ) {
        let refs = store.refs(id);
        if refs > 1 {
            let _ = store.set_refs(id, refs.saturating_sub(1));
            return;
        }
        if level > 1 {
            // In lba order: subtrees and run entries.
            for i in 0..FANOUT {
                let e = entry(store, id, i);
                let lba = base.saturating_add((i as u64).saturating_mul(span(level)));
                if let Some(c) = child(e) {
                    Self::release(store, c, level - 1, lba, hooks);
                } else if let Some((_, a, n)) = held(store, id, level, i) {
                    hooks.dropped(store, lba, a, n);
                }
            }
        } else {
            let _ = node_runs(store, id, level, usize::MAX, &mut |s, i, a, n| {
                hooks.dropped(s, base.saturating_add(i), a, n);
                Ok(())
            });
        }
        store.free(id);
    }

    /// Makes the whole table exclusive (promote / flatten): every shared
    /// node is copied, so no other table's changes or deletion ever touch
    /// this table's nodes; blocks stay shared (a copied leaf adds a
    /// reference to each block in `refs`). O(nodes of the table). On
    /// [`Error::NoSpace`] the table is partly flattened (still correct, still
    /// shared); call again.
    pub fn flatten<S: NodeStore>(&mut self, store: &mut S, refs: &mut RefMap) -> Result<()> {
        if !self.cow {
            return Ok(());
        }
        let mut nop = |_: u64, _: u64| {};
        let mut hooks = Counted {
            refs,
            on_dead: &mut nop,
        };
        if let Some(mut r) = self.root {
            if store.refs(r) > 1 {
                r = Self::copy_node(store, r, self.height, &mut hooks)?;
                self.root = Some(r);
            }
            Self::flatten_node(store, r, self.height, &mut hooks)?;
        }
        self.cow = false;
        Ok(())
    }

    fn flatten_node<S: NodeStore>(
        store: &mut S,
        id: NodeId,
        level: u8,
        hooks: &mut dyn Hooks<S>,
    ) -> Result<()> {
        if level <= 1 {
            return Ok(());
        }
        for i in 0..FANOUT {
            let Some(mut c) = child(entry(store, id, i)) else {
                continue;
            };
            if store.refs(c) > 1 {
                c = Self::copy_node(store, c, level - 1, hooks)?;
                if let Some(slot) = store.get_mut(id).and_then(|n| n.get_mut(i)) {
                    *slot = PRESENT | u64::from(c);
                }
            }
            Self::flatten_node(store, c, level - 1, hooks)?;
        }
        Ok(())
    }

    /// Space of this table: `(mapped, exclusive)` blocks, where exclusive
    /// blocks are those only this table references (no other table reaches
    /// their leaf, no other leaf holds them): what deleting this table
    /// alone would free. The rest of `mapped` is shared. Also the table's
    /// nodes: all it reaches, and those only it reaches. O(nodes).
    pub fn space<S: NodeStore>(&self, store: &S, refs: &RefMap) -> TableSpace {
        let mut st = TableSpace::default();
        if let Some(r) = self.root {
            Self::space_node(store, refs, r, self.height, true, false, &mut st);
        }
        st
    }

    /// The exclusive blocks of [`Self::space`] alone, visiting only the
    /// nodes no other table reaches: O(exclusive nodes), so summing it over
    /// every table visits each node at most once.
    pub fn exclusive<S: NodeStore>(&self, store: &S, refs: &RefMap) -> u64 {
        let mut st = TableSpace::default();
        if let Some(r) = self.root {
            Self::space_node(store, refs, r, self.height, true, true, &mut st);
        }
        st.exclusive
    }

    fn space_node<S: NodeStore>(
        store: &S,
        refs: &RefMap,
        id: NodeId,
        level: u8,
        excl: bool,
        prune: bool,
        st: &mut TableSpace,
    ) {
        let excl = excl && store.refs(id) <= 1;
        if prune && !excl {
            return;
        }
        st.nodes = st.nodes.saturating_add(1);
        if excl {
            st.exclusive_nodes = st.exclusive_nodes.saturating_add(1);
        }
        if level > 1 {
            for i in 0..FANOUT {
                if let Some(c) = child(entry(store, id, i)) {
                    Self::space_node(store, refs, c, level - 1, excl, prune, st);
                }
            }
            if level > 2 {
                return;
            }
        }
        let mut run = Run(None);
        let count = |r: Option<(u64, u64, u64)>, st: &mut TableSpace| {
            if let Some((_, a, n)) = r {
                st.mapped = st.mapped.saturating_add(n);
                if excl {
                    let shared = refs.shared_in(store, a, n);
                    st.exclusive = st.exclusive.saturating_add(n.saturating_sub(shared));
                }
            }
        };
        for i in 0..FANOUT {
            let ended = match held(store, id, level, i) {
                Some((o, a, n)) => run.push_n(o, a, n),
                None => run.0.take(),
            };
            count(ended, st);
        }
        count(run.0, st);
    }
}
