// SPDX-License-Identifier: GPL-2.0
//! The fake kernel's `snapshot`, `clone`, `promote` and `rollback` pool
//! attributes.

use super::{err, plain_name, snap_name, FakeKernel, MetaVol, State};
use crate::error::{EACCES, EBUSY, EEXIST, EINVAL, ENOENT};
use std::io;

impl FakeKernel {
    /// The pool's `snapshot`, `clone`, `promote` and `rollback` attributes
    /// (active pool).
    pub(super) fn write_sharing(
        &self,
        st: &mut State,
        pool: &str,
        attr: &str,
        value: &str,
    ) -> io::Result<()> {
        let meta = st.metas.get(pool).cloned().unwrap_or_default();
        let find = |n: &str| meta.volumes.iter().find(|v| v.name == n).cloned();
        let new_vol = |st: &mut State, mut v: MetaVol| {
            if let Some(m) = st.metas.get_mut(pool) {
                m.next_id += 1;
                v.id = m.next_id;
                m.volumes.push(v);
            }
        };
        match attr {
            "snapshot" => {
                let Some((vol, _)) = snap_name(value) else {
                    let why = format!("invalid snapshot name '{value}' (VOLUME@SNAP)");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                };
                let Some(src) = find(vol) else {
                    let why = format!("no volume named '{vol}'");
                    return Err(self.refuse(st, ENOENT, pool, &why));
                };
                if find(value).is_some() {
                    let why = format!("'{value}' exists");
                    return Err(self.refuse(st, EEXIST, pool, &why));
                }
                self.log_level(st, 6, &format!("zvpool: {pool}: snapshot {value}"));
                super::blockdev::copy_data(st, pool, vol, value);
                if let Some(v) = st
                    .metas
                    .get_mut(pool)
                    .and_then(|m| m.volumes.iter_mut().find(|v| v.name == vol))
                {
                    v.shared = v.mapped;
                }
                new_vol(
                    st,
                    MetaVol {
                        mapped: src.mapped,
                        shared: src.mapped,
                        kind: "snapshot",
                        origin: Some(vol.to_string()),
                        ..MetaVol::new(0, value, src.size)
                    },
                );
            }
            "clone" => {
                let mut w = value.split_whitespace();
                let (Some(snap), Some(new), None) = (w.next(), w.next(), w.next()) else {
                    return Err(self.refuse(st, EINVAL, pool, "expected 'SNAPSHOT NAME'"));
                };
                let Some(src) = find(snap) else {
                    let why = format!("no volume named '{snap}'");
                    return Err(self.refuse(st, ENOENT, pool, &why));
                };
                if src.kind != "snapshot" {
                    let why = format!("'{snap}' is not a snapshot");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                }
                if !plain_name(new) {
                    let why = format!("invalid volume name '{new}'");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                }
                if find(new).is_some() {
                    let why = format!("'{new}' exists");
                    return Err(self.refuse(st, EEXIST, pool, &why));
                }
                super::blockdev::copy_data(st, pool, snap, new);
                new_vol(
                    st,
                    MetaVol {
                        mapped: src.mapped,
                        shared: src.mapped,
                        kind: "clone",
                        origin: Some(snap.to_string()),
                        ..MetaVol::new(0, new, src.size)
                    },
                );
            }
            "promote" => {
                let Some(v) = find(value) else {
                    let why = format!("no volume named '{value}'");
                    return Err(self.refuse(st, ENOENT, pool, &why));
                };
                if v.kind == "snapshot" {
                    let why = format!("'{value}' is a snapshot");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                }
                if let Some(v) = st
                    .metas
                    .get_mut(pool)
                    .and_then(|m| m.volumes.iter_mut().find(|v| v.name == value))
                {
                    v.kind = "volume";
                    v.origin = None;
                }
            }
            "rollback" => {
                let Some((vol, _)) = snap_name(value) else {
                    let why = format!("invalid snapshot name '{value}'");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                };
                let (Some(snap), Some(_)) = (find(value), find(vol)) else {
                    let why = format!("no snapshot '{value}' or no volume '{vol}'");
                    return Err(self.refuse(st, ENOENT, pool, &why));
                };
                if snap.kind != "snapshot" || snap.origin.as_deref() != Some(vol) {
                    let why = format!("'{value}' is not a snapshot of '{vol}'");
                    return Err(self.refuse(st, EINVAL, pool, &why));
                }
                if st.pools[pool].vols.contains_key(vol) {
                    let why = format!("volume '{vol}' is bound; remove its directory first");
                    return Err(self.refuse(st, EBUSY, pool, &why));
                }
                super::blockdev::copy_data(st, pool, value, vol);
                if let Some(v) = st
                    .metas
                    .get_mut(pool)
                    .and_then(|m| m.volumes.iter_mut().find(|v| v.name == vol))
                {
                    v.size = snap.size;
                    v.mapped = snap.mapped;
                    v.shared = snap.mapped;
                }
            }
            _ => return Err(err(EACCES)),
        }
        Ok(())
    }
}
