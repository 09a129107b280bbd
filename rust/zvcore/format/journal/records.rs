// SPDX-License-Identifier: GPL-2.0
//! Journal records: [`VolName`], the [`Record`] types, their validation
//! and their encoding.

use super::super::super::codec::{Reader, Writer};
use super::super::super::error::{Error, Result};
use super::super::super::geom::{DeviceGeometry, PoolGeometry, MAX_POOL_BLOCKS};
use super::super::policy::{Policy, POLICY_RECORD_BYTES};
use super::super::{
    all_zero, INCOMPAT_PLACEMENT, INCOMPAT_SHARED_BLOCKS, MAX_GENERATION, RO_COMPAT_RESERVATION,
};
use super::{tag, vol_flags_fit, RECORD_PREFIX_LEN, TAG_COMPAT, VOL_COPY_ID_BIT, VOL_NAME_MAX};
use core::ops::Deref;

// Only named by the links in the docs.
#[cfg(doc)]
use super::VOL_FLAG_READONLY;

/// A volume name: up to 32 arbitrary bytes (not necessarily UTF-8; the
/// control interface decides), stored zero-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VolName {
    len: u8,
    bytes: [u8; VOL_NAME_MAX],
}

impl VolName {
    /// A name from bytes (`Error::Invalid` if longer than 32).
    pub fn new(name: &[u8]) -> Result<Self> {
        let mut bytes = [0u8; VOL_NAME_MAX];
        let dst = bytes
            .get_mut(..name.len())
            .ok_or(Error::Invalid("volume name too long"))?;
        dst.copy_from_slice(name);
        Ok(VolName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length in range and zero padding (what decoding requires).
    pub fn is_valid(&self) -> bool {
        usize::from(self.len) <= VOL_NAME_MAX
            && all_zero(self.bytes.get(usize::from(self.len)..).unwrap_or(&[]))
    }
}

/// One journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Volume blocks `lba..lba+len` of `vol` are now at pool addresses
    /// `addr..addr+len` (the previous locations become garbage).
    MapExtent {
        /// Volume id.
        vol: u32,
        /// First volume block.
        lba: u64,
        /// Number of blocks (>= 1).
        len: u32,
        /// First pool address.
        addr: u64,
    },
    /// Volume blocks `lba..lba+len` of `vol` are unmapped (read as zeros).
    Unmap {
        /// Volume id.
        vol: u32,
        /// First volume block.
        lba: u64,
        /// Number of blocks (>= 1).
        len: u32,
    },
    /// Zone `zone` (global id) was reset: nothing maps into it any more.
    ZoneReset {
        /// Global zone id.
        zone: u32,
    },
    /// Zone `zone` was finished (no more writes until reset).
    ZoneFinish {
        /// Global zone id.
        zone: u32,
    },
    /// Volume `vol` was created, empty.
    VolumeCreate {
        /// Volume id.
        vol: u32,
        /// Size in blocks.
        size_blocks: u64,
        /// `VOL_FLAG_*` bits.
        flags: u32,
        /// Name.
        name: VolName,
    },
    /// Volume `vol` and all its mappings were deleted.
    VolumeDelete {
        /// Volume id.
        vol: u32,
    },
    /// Volume `vol` now has `size_blocks` blocks (mappings beyond are dropped).
    VolumeResize {
        /// Volume id.
        vol: u32,
        /// New size in blocks.
        size_blocks: u64,
    },
    /// Volume `vol`'s space rules are now `reserve` blocks reserved and a
    /// quota of `quota` blocks (0 = none; feature
    /// [`RO_COMPAT_RESERVATION`]).
    VolumeReserve {
        /// Volume id.
        vol: u32,
        /// Reserved blocks (0 = none).
        reserve: u64,
        /// Most blocks the volume may map (0 = no quota).
        quota: u64,
    },
    /// `new_vol` was created as a snapshot (`flags` has
    /// [`VOL_FLAG_READONLY`]; `vol` is a writable volume) or a clone (no
    /// read-only flag; `vol` is a snapshot) of `vol`, sharing all its
    /// blocks (feature [`INCOMPAT_SHARED_BLOCKS`]).
    Snapshot {
        /// Source volume.
        vol: u32,
        /// New volume (must differ from `vol`).
        new_vol: u32,
        /// `VOL_FLAG_*` bits of the new volume.
        flags: u32,
        /// Name of the new volume.
        name: VolName,
    },
    /// Writable volume `vol` now holds exactly what snapshot `snap` holds
    /// (its previous blocks are dropped; its size becomes the snapshot's).
    /// Feature [`INCOMPAT_SHARED_BLOCKS`].
    Rollback {
        /// The volume rolled back.
        vol: u32,
        /// The snapshot it now equals (must differ from `vol`).
        snap: u32,
    },
    /// Volume `vol` no longer shares block-table nodes with any other
    /// volume and has no origin any more (promote / flatten). Feature
    /// [`INCOMPAT_SHARED_BLOCKS`].
    Promote {
        /// The volume.
        vol: u32,
    },
    /// GC moved pool blocks `old..old+len` to `new..new+len`: every volume
    /// mapping `lba..lba+len` to the old blocks now maps the new ones (all
    /// sharers at once). Feature [`INCOMPAT_SHARED_BLOCKS`] (without it,
    /// GC writes `MapExtent` records).
    Relocate {
        /// First volume block (the same in every sharer).
        lba: u64,
        /// Old first pool address.
        old: u64,
        /// New first pool address.
        new: u64,
        /// Number of blocks (>= 1).
        len: u32,
    },
    /// Checkpoint `generation` covering the journal up to `journal_seq` was
    /// committed in set `set` (0 = A, 1 = B).
    CheckpointDone {
        /// Checkpoint generation (>= 1).
        generation: u64,
        /// Last journal sequence number it covers.
        journal_seq: u64,
        /// Checkpoint set (0 or 1).
        set: u8,
    },
    /// A placement policy was set (`format::policy`; feature
    /// [`INCOMPAT_PLACEMENT`]).
    Policy(Policy),
}

impl Record {
    /// The volumes the record changes (a placement moves no data: no
    /// volume's contents change).
    pub fn volumes(&self) -> (Option<u32>, Option<u32>) {
        match *self {
            Record::MapExtent { vol, .. }
            | Record::Unmap { vol, .. }
            | Record::VolumeCreate { vol, .. }
            | Record::VolumeDelete { vol }
            | Record::VolumeResize { vol, .. }
            | Record::VolumeReserve { vol, .. }
            | Record::Promote { vol } => (Some(vol), None),
            Record::Snapshot { vol, new_vol, .. } => (Some(vol), Some(new_vol)),
            Record::Rollback { vol, snap } => (Some(vol), Some(snap)),
            Record::Relocate { .. }
            | Record::ZoneReset { .. }
            | Record::ZoneFinish { .. }
            | Record::CheckpointDone { .. }
            | Record::Policy(_) => (None, None),
        }
    }

    /// Whether the record changes the volume table (create, delete,
    /// resize, reservation, snapshot, rollback, promote) rather than only
    /// mappings or zones: the next delta checkpoint carries the volume
    /// table (`INCOMPAT_DELTA_VOLUMES`), or, in pools without it, the next
    /// checkpoint is full.
    pub fn is_volume_op(&self) -> bool {
        !matches!(
            self,
            Record::MapExtent { .. }
                | Record::Unmap { .. }
                | Record::ZoneReset { .. }
                | Record::ZoneFinish { .. }
                | Record::Relocate { .. }
                | Record::CheckpointDone { .. }
                | Record::Policy(_)
        )
    }

    /// The record's tag.
    pub const fn tag(&self) -> u16 {
        match self {
            Record::MapExtent { .. } => tag::MAP_EXTENT,
            Record::Unmap { .. } => tag::UNMAP,
            Record::ZoneReset { .. } => tag::ZONE_RESET,
            Record::ZoneFinish { .. } => tag::ZONE_FINISH,
            Record::VolumeCreate { .. } => tag::VOLUME_CREATE,
            Record::VolumeDelete { .. } => tag::VOLUME_DELETE,
            Record::VolumeResize { .. } => tag::VOLUME_RESIZE,
            Record::VolumeReserve { .. } => tag::VOLUME_RESERVE,
            Record::Snapshot { .. } => tag::SNAPSHOT,
            Record::Rollback { .. } => tag::ROLLBACK,
            Record::Promote { .. } => tag::PROMOTE,
            Record::Relocate { .. } => tag::RELOCATE,
            Record::CheckpointDone { .. } => tag::CHECKPOINT_DONE,
            Record::Policy(_) => tag::POLICY,
        }
    }

    /// Body length of a known tag.
    pub const fn body_len_of(tag: u16) -> Option<usize> {
        Some(match tag {
            tag::MAP_EXTENT => 24,
            tag::UNMAP => 16,
            tag::ZONE_RESET | tag::ZONE_FINISH | tag::VOLUME_DELETE => 4,
            tag::VOLUME_CREATE => 56,
            tag::VOLUME_RESIZE => 16,
            tag::VOLUME_RESERVE => 24,
            tag::SNAPSHOT => 48,
            tag::CHECKPOINT_DONE => 24,
            tag::ROLLBACK | tag::PROMOTE => 8,
            tag::RELOCATE => 32,
            tag::POLICY => POLICY_RECORD_BYTES,
            _ => return None,
        })
    }

    /// Encoded size of the record (prefix + body).
    pub const fn encoded_len(&self) -> usize {
        match Self::body_len_of(self.tag()) {
            Some(n) => RECORD_PREFIX_LEN + n,
            None => RECORD_PREFIX_LEN,
        }
    }

    /// `(incompat, ro_compat)` feature bits the superblock must have for this
    /// record to be written.
    pub const fn required_features(&self) -> (u64, u64) {
        match self {
            Record::Snapshot { .. }
            | Record::Rollback { .. }
            | Record::Promote { .. }
            | Record::Relocate { .. } => (INCOMPAT_SHARED_BLOCKS, 0),
            Record::VolumeReserve { .. } => (0, RO_COMPAT_RESERVATION),
            Record::Policy(_) => (INCOMPAT_PLACEMENT, 0),
            _ => (0, 0),
        }
    }

    /// Checks the record's fields (what decoding enforces).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Record::MapExtent { lba, len, addr, .. } => {
                if len == 0 {
                    return Err(Error::BadField("map extent: length"));
                }
                lba.checked_add(u64::from(len))
                    .ok_or(Error::BadField("map extent: lba overflow"))?;
                match addr.checked_add(u64::from(len)) {
                    Some(end) if end <= MAX_POOL_BLOCKS => Ok(()),
                    _ => Err(Error::BadField("map extent: address")),
                }
            }
            Record::Unmap { lba, len, .. } => {
                if len == 0 {
                    return Err(Error::BadField("unmap: length"));
                }
                lba.checked_add(u64::from(len))
                    .map(|_| ())
                    .ok_or(Error::BadField("unmap: lba overflow"))
            }
            Record::VolumeCreate {
                vol, flags, name, ..
            } => {
                if !vol_flags_fit(vol, flags) {
                    return Err(Error::BadField("volume create: flags"));
                }
                if !name.is_valid() {
                    return Err(Error::BadField("volume create: name"));
                }
                Ok(())
            }
            Record::Snapshot {
                vol,
                new_vol,
                flags,
                name,
            } => {
                if vol == new_vol {
                    return Err(Error::BadField("snapshot: same volume"));
                }
                if !vol_flags_fit(new_vol, flags) || (vol ^ new_vol) & VOL_COPY_ID_BIT != 0 {
                    return Err(Error::BadField("snapshot: flags"));
                }
                if !name.is_valid() {
                    return Err(Error::BadField("snapshot: name"));
                }
                Ok(())
            }
            Record::Rollback { vol, snap } => {
                if vol == snap {
                    return Err(Error::BadField("rollback: same volume"));
                }
                Ok(())
            }
            Record::Relocate { lba, old, new, len } => {
                let n = u64::from(len);
                if len == 0 {
                    return Err(Error::BadField("relocate: length"));
                }
                lba.checked_add(n)
                    .ok_or(Error::BadField("relocate: lba overflow"))?;
                let oe = old.checked_add(n).filter(|e| *e <= MAX_POOL_BLOCKS);
                let ne = new.checked_add(n).filter(|e| *e <= MAX_POOL_BLOCKS);
                match (oe, ne) {
                    (Some(oe), Some(ne)) if ne <= old || oe <= new => Ok(()),
                    _ => Err(Error::BadField("relocate: address")),
                }
            }
            Record::CheckpointDone {
                generation, set, ..
            } => {
                if generation == 0 || generation > MAX_GENERATION {
                    return Err(Error::BadField("checkpoint done: generation"));
                }
                if set > 1 {
                    return Err(Error::BadField("checkpoint done: set"));
                }
                Ok(())
            }
            Record::ZoneReset { .. }
            | Record::ZoneFinish { .. }
            | Record::Promote { .. }
            | Record::VolumeDelete { .. }
            | Record::VolumeResize { .. }
            | Record::VolumeReserve { .. }
            | Record::Policy(_) => Ok(()),
        }
    }

    /// Checks the record against the pool geometry (what replay must also
    /// enforce, beyond [`Self::validate`]): a `MapExtent` lies within the
    /// writable capacity of a single data (non-metadata) zone, and a zone
    /// record names an existing data zone. Errors are [`Error::Corrupt`].
    pub fn check_geometry<S: Deref<Target = [DeviceGeometry]>>(
        &self,
        geo: &PoolGeometry<S>,
    ) -> Result<()> {
        match *self {
            Record::MapExtent { len, addr, .. } => match geo.range_zone(addr, u64::from(len)) {
                Some(z) if !geo.zone_is_meta(z) => Ok(()),
                _ => Err(Error::Corrupt("map extent outside a data zone")),
            },
            Record::Relocate { old, new, len, .. } => {
                for a in [old, new] {
                    match geo.range_zone(a, u64::from(len)) {
                        Some(z) if !geo.zone_is_meta(z) => {}
                        _ => return Err(Error::Corrupt("relocate outside a data zone")),
                    }
                }
                Ok(())
            }
            Record::ZoneReset { zone } | Record::ZoneFinish { zone } => match geo.zone(zone) {
                Some(z) if !z.meta => Ok(()),
                _ => Err(Error::Corrupt("zone record: not a data zone")),
            },
            _ => Ok(()),
        }
    }

    /// Encodes prefix + body.
    pub(super) fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let body = Self::body_len_of(self.tag()).ok_or(Error::Invalid("record tag"))?;
        w.put_u16(self.tag())?;
        w.put_u16(body as u16)?;
        match *self {
            Record::MapExtent {
                vol,
                lba,
                len,
                addr,
            } => {
                w.put_u32(vol)?;
                w.put_u32(len)?;
                w.put_u64(lba)?;
                w.put_u64(addr)
            }
            Record::Unmap { vol, lba, len } => {
                w.put_u32(vol)?;
                w.put_u32(len)?;
                w.put_u64(lba)
            }
            Record::ZoneReset { zone } | Record::ZoneFinish { zone } => w.put_u32(zone),
            Record::VolumeCreate {
                vol,
                size_blocks,
                flags,
                name,
            } => {
                w.put_u32(vol)?;
                w.put_u32(flags)?;
                w.put_u64(size_blocks)?;
                w.put_u8(name.len)?;
                w.put_zeros(7)?;
                w.put_bytes(&name.bytes)
            }
            Record::VolumeDelete { vol } => w.put_u32(vol),
            Record::VolumeResize {
                vol,
                size_blocks: v,
            } => {
                w.put_u32(vol)?;
                w.put_u32(0)?;
                w.put_u64(v)
            }
            Record::VolumeReserve {
                vol,
                reserve,
                quota,
            } => {
                w.put_u32(vol)?;
                w.put_u32(0)?;
                w.put_u64(reserve)?;
                w.put_u64(quota)
            }
            Record::Snapshot {
                vol,
                new_vol,
                flags,
                name,
            } => {
                w.put_u32(vol)?;
                w.put_u32(new_vol)?;
                w.put_u32(flags)?;
                w.put_u8(name.len)?;
                w.put_zeros(3)?;
                w.put_bytes(&name.bytes)
            }
            Record::Rollback { vol, snap } => {
                w.put_u32(vol)?;
                w.put_u32(snap)
            }
            Record::Promote { vol } => {
                w.put_u32(vol)?;
                w.put_u32(0)
            }
            Record::Relocate { lba, old, new, len } => {
                w.put_u64(lba)?;
                w.put_u64(old)?;
                w.put_u64(new)?;
                w.put_u32(len)?;
                w.put_u32(0)
            }
            Record::CheckpointDone {
                generation,
                journal_seq,
                set,
            } => {
                w.put_u64(generation)?;
                w.put_u64(journal_seq)?;
                w.put_u8(set)?;
                w.put_zeros(7)
            }
            Record::Policy(p) => p.encode(w),
        }
    }

    /// Decodes one record; `Ok(None)` for a skipped unknown compat record.
    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Option<Record>> {
        let t = r
            .get_u16()
            .map_err(|_| Error::BadField("record: truncated"))?;
        let len = r
            .get_u16()
            .map_err(|_| Error::BadField("record: truncated"))?;
        let body = r
            .get_bytes(usize::from(len))
            .map_err(|_| Error::BadField("record: length"))?;
        let Some(want) = Self::body_len_of(t) else {
            if t & TAG_COMPAT != 0 {
                return Ok(None);
            }
            return Err(Error::Unsupported("journal: unknown incompat record"));
        };
        if usize::from(len) != want {
            return Err(Error::BadField("record: length"));
        }
        let mut b = Reader::new(body);
        let rec = match t {
            tag::MAP_EXTENT => {
                let vol = b.get_u32()?;
                let len = b.get_u32()?;
                let lba = b.get_u64()?;
                let addr = b.get_u64()?;
                Record::MapExtent {
                    vol,
                    lba,
                    len,
                    addr,
                }
            }
            tag::UNMAP => {
                let vol = b.get_u32()?;
                let len = b.get_u32()?;
                let lba = b.get_u64()?;
                Record::Unmap { vol, lba, len }
            }
            tag::ZONE_RESET => Record::ZoneReset { zone: b.get_u32()? },
            tag::ZONE_FINISH => Record::ZoneFinish { zone: b.get_u32()? },
            tag::VOLUME_CREATE => {
                let vol = b.get_u32()?;
                let flags = b.get_u32()?;
                let size_blocks = b.get_u64()?;
                let nlen = b.get_u8()?;
                if !all_zero(b.get_bytes(7)?) {
                    return Err(Error::BadField("volume create: reserved"));
                }
                let bytes = b.get_array::<VOL_NAME_MAX>()?;
                Record::VolumeCreate {
                    vol,
                    size_blocks,
                    flags,
                    name: VolName { len: nlen, bytes },
                }
            }
            tag::VOLUME_DELETE => Record::VolumeDelete { vol: b.get_u32()? },
            tag::VOLUME_RESIZE | tag::VOLUME_RESERVE => {
                let vol = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("volume record: reserved"));
                }
                let v = b.get_u64()?;
                if t == tag::VOLUME_RESIZE {
                    Record::VolumeResize {
                        vol,
                        size_blocks: v,
                    }
                } else {
                    Record::VolumeReserve {
                        vol,
                        reserve: v,
                        quota: b.get_u64()?,
                    }
                }
            }
            tag::SNAPSHOT => {
                let vol = b.get_u32()?;
                let new_vol = b.get_u32()?;
                let flags = b.get_u32()?;
                let nlen = b.get_u8()?;
                if !all_zero(b.get_bytes(3)?) {
                    return Err(Error::BadField("snapshot: reserved"));
                }
                let bytes = b.get_array::<VOL_NAME_MAX>()?;
                Record::Snapshot {
                    vol,
                    new_vol,
                    flags,
                    name: VolName { len: nlen, bytes },
                }
            }
            tag::ROLLBACK => {
                let vol = b.get_u32()?;
                let snap = b.get_u32()?;
                Record::Rollback { vol, snap }
            }
            tag::PROMOTE => {
                let vol = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("promote: reserved"));
                }
                Record::Promote { vol }
            }
            tag::RELOCATE => {
                let lba = b.get_u64()?;
                let old = b.get_u64()?;
                let new = b.get_u64()?;
                let len = b.get_u32()?;
                if b.get_u32()? != 0 {
                    return Err(Error::BadField("relocate: reserved"));
                }
                Record::Relocate { lba, old, new, len }
            }
            tag::POLICY => Record::Policy(Policy::decode(&mut b)?),
            _ => {
                // tag::CHECKPOINT_DONE (the only other known tag).
                let generation = b.get_u64()?;
                let journal_seq = b.get_u64()?;
                let set = b.get_u8()?;
                if !all_zero(b.get_bytes(7)?) {
                    return Err(Error::BadField("checkpoint done: reserved"));
                }
                Record::CheckpointDone {
                    generation,
                    journal_seq,
                    set,
                }
            }
        };
        rec.validate()?;
        Ok(Some(rec))
    }
}
