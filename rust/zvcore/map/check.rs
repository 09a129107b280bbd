// SPDX-License-Identifier: GPL-2.0
//! Verification of a block table's tree (for the verifier).

use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::{
    height_for, span, BlockTable, NodeId, NodeStore, TableStats, ADDR_MASK, FANOUT, ID_MASK,
    PRESENT, RUN,
};

impl BlockTable {
    /// Verifies the tree (for the verifier): height matches the size, every
    /// node id resolves, reserved entry bits are zero, leaf addresses lie in
    /// the pool, nothing is mapped at or beyond the volume size, no
    /// reachable node is empty (empty nodes are always freed), run entries
    /// only in level-2 nodes and inside the volume, shared nodes only in
    /// shared tables, and the mapped count is right.
    pub fn check<S: NodeStore>(&self, store: &S) -> Result<TableStats> {
        if self.height != height_for(self.size) {
            return Err(Error::Corrupt("map: height does not match size"));
        }
        let mut st = TableStats::default();
        if let Some(r) = self.root {
            self.check_node(store, r, self.height, 0, &mut st)?;
        }
        if st.mapped != self.mapped {
            return Err(Error::Corrupt("map: mapped count"));
        }
        Ok(st)
    }

    fn check_node<S: NodeStore>(
        &self,
        store: &S,
        id: NodeId,
        level: u8,
        base: u64,
        st: &mut TableStats,
    ) -> Result<()> {
        let node = store.get(id).ok_or(Error::Corrupt("map: bad node id"))?;
        if !self.cow && store.refs(id) != 1 {
            return Err(Error::Corrupt("map: shared node in an unshared table"));
        }
        st.nodes += 1;
        if level == 1 {
            st.leaves += 1;
        }
        let mut any = false;
        for (i, &e) in node.iter().enumerate() {
            if e == 0 {
                continue;
            }
            any = true;
            let lba = base.saturating_add((i as u64).saturating_mul(span(level)));
            let run = level == 2 && e & RUN != 0;
            let allowed = match (level, run) {
                (1, _) => ADDR_MASK,
                (_, true) => RUN | ADDR_MASK,
                _ => ID_MASK,
            };
            if e & PRESENT == 0 || e & !(PRESENT | allowed) != 0 {
                return Err(Error::Corrupt("map: reserved entry bits"));
            }
            if lba >= self.size {
                return Err(Error::Corrupt("map: entry beyond the volume end"));
            }
            if run {
                // A run entry maps a whole leaf range, inside the volume and
                // the pool.
                let n = FANOUT as u64;
                if lba.checked_add(n).map(|x| x > self.size) != Some(false) {
                    return Err(Error::Corrupt("map: entry beyond the volume end"));
                }
                if (e & ADDR_MASK).checked_add(n).map(|x| x > MAX_POOL_BLOCKS) != Some(false) {
                    return Err(Error::Corrupt("map: run beyond the pool"));
                }
                st.mapped += n;
                st.runs += 1;
            } else if level > 1 {
                self.check_node(store, (e & ID_MASK) as NodeId, level - 1, lba, st)?;
            } else {
                st.mapped += 1;
            }
        }
        if !any {
            return Err(Error::Corrupt("map: empty node"));
        }
        Ok(())
    }
}
