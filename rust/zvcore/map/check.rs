// SPDX-License-Identifier: GPL-2.0
//! Verification of a block table's tree (for the verifier).

use super::super::error::{Error, Result};
use super::{
    height_for, span, BlockTable, NodeId, NodeStore, TableStats, ADDR_MASK, ID_MASK, PRESENT,
};

impl BlockTable {
    /// Verifies the tree (for the verifier): height matches the size, every
    /// node id resolves, reserved entry bits are zero, leaf addresses lie in
    /// the pool, nothing is mapped at or beyond the volume size, no
    /// reachable node is empty (empty nodes are always freed), shared nodes
    /// only in shared tables, and the mapped count is right.
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
        let mut any = false;
        for (i, &e) in node.iter().enumerate() {
            if e == 0 {
                continue;
            }
            any = true;
            let lba = base.saturating_add((i as u64).saturating_mul(span(level)));
            if e & PRESENT == 0 || e & !(PRESENT | if level > 1 { ID_MASK } else { ADDR_MASK }) != 0
            {
                return Err(Error::Corrupt("map: reserved entry bits"));
            }
            if lba >= self.size {
                return Err(Error::Corrupt("map: entry beyond the volume end"));
            }
            if level > 1 {
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
