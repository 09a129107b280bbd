// SPDX-License-Identifier: GPL-2.0
//! What a volume is, read from the engine (engine lock held by the caller):
//! its kind, origin and space for configfs and the control device, the id
//! a new volume gets, and volume names (`VOLUME@SNAP`).

use crate::engine::Engine;
use crate::zvcore::pool::VolEntry;

/// What a volume is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VolKind {
    /// A writable volume with no origin.
    Volume,
    /// A read-only snapshot.
    Snapshot,
    /// A writable volume cloned from a snapshot, not yet promoted.
    Clone,
}

impl VolKind {
    /// The configfs word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            VolKind::Volume => "volume",
            VolKind::Snapshot => "snapshot",
            VolKind::Clone => "clone",
        }
    }
}

/// A volume's description for configfs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VolInfo {
    pub(crate) kind: VolKind,
    /// Id of the origin (snapshot: its volume; clone: its snapshot).
    pub(crate) origin: Option<u32>,
    /// Size in blocks.
    pub(crate) size: u64,
    /// Mapped blocks, of which exclusive (the rest is shared).
    pub(crate) mapped: u64,
    pub(crate) exclusive: u64,
}

impl VolInfo {
    /// Mapped blocks shared with other volumes.
    pub(crate) fn shared(&self) -> u64 {
        self.mapped.saturating_sub(self.exclusive)
    }
}

/// Where the `@` of a snapshot name `VOLUME@SNAP` is, if it is one: exactly
/// one `@`, neither first nor last.
pub(crate) fn snapshot_split(name: &[u8]) -> Option<usize> {
    let at = name.iter().position(|&c| c == b'@')?;
    let rest = name.get(at + 1..)?;
    (at > 0 && !rest.is_empty() && !rest.contains(&b'@')).then_some(at)
}

/// A volume id no volume of `e` has (ids are never reused while the pool
/// is assembled: the highest plus one).
pub(crate) fn next_id(e: &Engine) -> u32 {
    e.volumes()
        .iter()
        .filter(|v| v.listed())
        .map(|v| v.id.saturating_add(1))
        .max()
        .unwrap_or(1)
}

/// Kind of volume `id` of `e` and its origin's name (`None`: no origin, or
/// no such volume), without the space accounting of [`info_of`]: cheap,
/// for sysfs.
pub(crate) fn kind_origin_of(e: &Engine, id: u32) -> (VolKind, Option<&[u8]>) {
    let Some(v) = e.volume(id) else {
        return (VolKind::Volume, None);
    };
    let kind = kind_of(v);
    let origin = v
        .origin
        .and_then(|o| e.volume(o))
        .map(|o| o.name.as_bytes());
    (kind, origin)
}

/// What kind of volume `v` is: a snapshot (read-only), a clone (writable,
/// made from a snapshot) or a volume.
fn kind_of(v: &VolEntry) -> VolKind {
    if v.read_only() {
        VolKind::Snapshot
    } else if v.origin.is_some() {
        VolKind::Clone
    } else {
        VolKind::Volume
    }
}

/// Description of volume `id` of `e`.
pub(crate) fn info_of(e: &Engine, id: u32) -> Option<VolInfo> {
    let v = e.volume(id)?;
    let t = v.table?;
    let kind = kind_of(v);
    let (mapped, exclusive) = match e.vol_space(id) {
        Ok(s) => (s.mapped, s.exclusive),
        Err(_) => (t.mapped(), t.mapped()),
    };
    Some(VolInfo {
        kind,
        origin: v.origin,
        size: t.size(),
        mapped,
        exclusive,
    })
}

/// The id of the volume named `name` in `e`.
pub(crate) fn id_of(e: &Engine, name: &[u8]) -> Option<u32> {
    e.volumes()
        .iter()
        .find(|v| v.listed() && v.name.as_bytes() == name)
        .map(|v| v.id)
}
