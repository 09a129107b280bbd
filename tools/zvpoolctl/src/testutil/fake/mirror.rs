// SPDX-License-Identifier: GPL-2.0
//! The fake kernel's mirrored volumes (issue 19): the volume attribute
//! `copies`, 1 or 2, written before `size` (EINVAL for other values, EBUSY
//! once the volume is in the metadata), and the refusal of a mirrored
//! volume on a pool of one member when `size` would make it, as the
//! kernel's `volcfg.rs` and `zvcore::pool::mirror` define them. A module
//! without them (`legacy`) has no such file.

use super::{FakeKernel, State};
use crate::error::{EBUSY, EINVAL};
use std::io;

/// The `copies` file: the volume's in the metadata, else what the
/// directory was given (0: nothing, the default 1).
pub(super) fn copies_file(meta: Option<u8>, dir: u8) -> String {
    format!("{}\n", meta.unwrap_or(dir).max(1))
}

impl FakeKernel {
    /// A write of `copies` to volume `vol` of `pool` (`obj` for messages).
    pub(super) fn write_copies(
        &self,
        st: &mut State,
        pool: &str,
        vol: &str,
        obj: &str,
        value: &str,
    ) -> io::Result<()> {
        let n = match value.trim() {
            "1" => 1,
            "2" => 2,
            _ => return Err(self.refuse(st, EINVAL, obj, "copies is 1 or 2")),
        };
        let made = st
            .metas
            .get(pool)
            .is_some_and(|m| m.volumes.iter().any(|m| m.name == vol));
        if made {
            return Err(self.refuse(
                st,
                EBUSY,
                obj,
                "copies is set before the size (the volume exists)",
            ));
        }
        if let Some(v) = st.pools.get_mut(pool).and_then(|p| p.vols.get_mut(vol)) {
            v.copies = n;
        }
        Ok(())
    }

    /// The copies of a volume `size` is about to make in `pool`, from the
    /// directory's `copies` (0: not written); EINVAL for a mirrored one
    /// on a pool of one member.
    pub(super) fn copies_of_new(
        &self,
        st: &mut State,
        pool: &str,
        asked: u8,
        obj: &str,
    ) -> io::Result<u8> {
        let copies = asked.max(1);
        let members = st.metas.get(pool).map_or(0, |m| m.members);
        if copies == 2 && members < 2 {
            return Err(self.refuse(
                st,
                EINVAL,
                obj,
                "volume not created: a mirrored volume needs two members",
            ));
        }
        Ok(copies)
    }
}
