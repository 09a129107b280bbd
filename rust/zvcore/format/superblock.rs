// SPDX-License-Identifier: GPL-2.0
//! The superblock: pool identity, feature flags, pool-wide parameters and the
//! full member list with every member's geometry.
//!
//! Every member carries copies of the same superblock (only `member_index` /
//! `dev_uuid` differ), so any single device identifies the whole pool and
//! assembly can tell which members are missing. The copy with the highest
//! `generation` (bumped on every membership change) wins.
//!
//! Layout (one 4 KiB block, little-endian):
//!
//! | off | size | field                                                  |
//! |-----|------|--------------------------------------------------------|
//! | 0   | 8    | magic [`SUPERBLOCK_MAGIC`]                             |
//! | 8   | 4    | CRC32C of the block (this field skipped)               |
//! | 12  | 4    | format version (= [`FORMAT_VERSION`])                  |
//! | 16  | 8    | compat features                                        |
//! | 24  | 8    | ro-compat features                                     |
//! | 32  | 8    | incompat features                                      |
//! | 40  | 16   | pool UUID                                              |
//! | 56  | 16   | this device's UUID                                     |
//! | 72  | 8    | generation (>= 1)                                      |
//! | 80  | 2    | this device's member index (< member count)            |
//! | 82  | 2    | member count (1..=64)                                  |
//! | 84  | 4    | block size (= 4096)                                    |
//! | 88  | 4    | metadata zones per device (even, 4..=8192; see below)  |
//! | 92  | 4    | checkpoint interval (journal blocks, >= 1)             |
//! | 96  | 8    | members removed before the last removal (bit per member; see below) |
//! | 104 | 4    | conventional log zone span (blocks; see below)         |
//! | 108 | 20   | reserved, zero                                         |
//! | 128 | 60*n | member entries ([`MEMBER_ENTRY_LEN`] bytes each)       |
//! | ... |      | zero up to the end of the block                        |
//!
//! Member entry:
//!
//! | off | size | field                                        |
//! |-----|------|----------------------------------------------|
//! | 0   | 16   | device UUID (nonzero, unique in the pool)    |
//! | 16  | 8    | base pool address (contiguous, member order) |
//! | 24  | 8    | zone size (blocks)                           |
//! | 32  | 8    | zone capacity (blocks, <= zone size)         |
//! | 40  | 4    | number of zones                              |
//! | 44  | 4    | leading conventional zones (SMR)             |
//! | 48  | 4    | max open zones (0 = unlimited)               |
//! | 52  | 4    | max active zones (0 = unlimited)             |
//! | 56  | 1    | kind (1 ZNS, 2 SMR, 3 conventional)          |
//! | 57  | 1    | flags (bit 0: zone append, bit 1: removed), others zero |
//! | 58  | 2    | reserved, zero                               |
//!
//! Removed members (feature `INCOMPAT_REMOVED_MEMBERS`): a member flagged
//! removed keeps its entry, index and address range, but its device is no
//! longer part of the pool: it holds no live block, gets no superblock and
//! no metadata, and assembly does not look for it. At least one member is
//! not removed. The word at offset 96 is the removed set *before* the last
//! removal (a subset of the current one): checkpoints written before that
//! removal are laid out over the members it names as present
//! (`format::layout`); zero in a pool without removed members.
//!
//! Conventional log zone span (feature `INCOMPAT_CONV_LOG_SPAN`): the
//! journal writes at most that many blocks (block 0 included) of a log zone
//! that is conventional, and assembly reads no further; at least
//! [`MIN_CONV_LOG_BLOCKS`]. Zero without the feature (the whole zone).
//!
//! Metadata zones per device: the first that many sequential zones of every
//! member are reserved for metadata, two log zones and then the two
//! checkpoint sets' parts, `(n - 2) / 2` zones each (`format::layout`).
//! Pools formatted before checkpoint sets could span several zones have 4;
//! a reader that knows only 4 refuses the others (`Unsupported`).

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::super::geom::{
    DevKind, DeviceGeometry, MAX_DEVICES, MAX_META_ZONES, MAX_POOL_BLOCKS, META_ZONES_PER_DEV,
};
use super::{
    all_zero, check_block, seal_block, to_invalid, Uuid, BLOCK_SIZE, BLOCK_SIZE_U32, COMPAT_KNOWN,
    FORMAT_VERSION, INCOMPAT_CONV_LOG_SPAN, INCOMPAT_KNOWN, INCOMPAT_REMOVED_MEMBERS,
    MAX_GENERATION, RO_COMPAT_KNOWN, SUPERBLOCK_MAGIC,
};

/// Offset of the member table.
pub const MEMBERS_OFFSET: usize = 128;
/// Size of one member entry.
pub const MEMBER_ENTRY_LEN: usize = 60;
/// Member flag: the device supports zone append.
pub const MEMBER_FLAG_ZONE_APPEND: u8 = 1 << 0;
/// Member flag: the member was removed from the pool
/// (`INCOMPAT_REMOVED_MEMBERS`).
pub const MEMBER_FLAG_REMOVED: u8 = 1 << 1;
/// Every member flag this version knows.
pub const MEMBER_FLAGS_KNOWN: u8 = MEMBER_FLAG_ZONE_APPEND | MEMBER_FLAG_REMOVED;
/// Default checkpoint interval (journal blocks between checkpoints).
pub const DEFAULT_CHECKPOINT_INTERVAL: u32 = 1024;
/// Default span of a conventional log zone (`INCOMPAT_CONV_LOG_SPAN`):
/// 8,192 blocks (32 MiB), eight times the default checkpoint interval.
pub const DEFAULT_CONV_LOG_BLOCKS: u32 = 8192;
/// Smallest span of a conventional log zone a superblock may name.
pub const MIN_CONV_LOG_BLOCKS: u32 = 16;

/// One member of the pool, as recorded in the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's device UUID (written in its own superblock copies).
    pub dev_uuid: Uuid,
    /// First pool address of the member (`sum` of the previous members' sizes).
    pub base: u64,
    /// The member's geometry.
    pub geom: DeviceGeometry,
    /// Removed from the pool ([`MEMBER_FLAG_REMOVED`]).
    pub removed: bool,
}

impl MemberInfo {
    /// An all-zero entry (unused table slot).
    pub const EMPTY: MemberInfo = MemberInfo {
        dev_uuid: [0; 16],
        base: 0,
        geom: DeviceGeometry {
            kind: DevKind::Zns,
            nr_zones: 0,
            zone_blocks: 0,
            zone_cap_blocks: 0,
            nr_conv_zones: 0,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: 0,
        },
        removed: false,
    };

    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let g = &self.geom;
        w.put_bytes(&self.dev_uuid)?;
        w.put_u64(self.base)?;
        w.put_u64(g.zone_blocks)?;
        w.put_u64(g.zone_cap_blocks)?;
        w.put_u32(g.nr_zones)?;
        w.put_u32(g.nr_conv_zones)?;
        w.put_u32(g.max_open)?;
        w.put_u32(g.max_active)?;
        w.put_u8(g.kind.code())?;
        let append = if g.zone_append {
            MEMBER_FLAG_ZONE_APPEND
        } else {
            0
        };
        let removed = if self.removed { MEMBER_FLAG_REMOVED } else { 0 };
        w.put_u8(append | removed)?;
        w.put_u16(0)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let dev_uuid = r.get_array::<16>()?;
        let base = r.get_u64()?;
        let zone_blocks = r.get_u64()?;
        let zone_cap_blocks = r.get_u64()?;
        let nr_zones = r.get_u32()?;
        let nr_conv_zones = r.get_u32()?;
        let max_open = r.get_u32()?;
        let max_active = r.get_u32()?;
        let kind = DevKind::from_code(r.get_u8()?).ok_or(Error::BadField("member kind"))?;
        let flags = r.get_u8()?;
        if flags & !MEMBER_FLAGS_KNOWN != 0 {
            return Err(Error::BadField("member flags"));
        }
        if r.get_u16()? != 0 {
            return Err(Error::BadField("member reserved"));
        }
        Ok(MemberInfo {
            dev_uuid,
            base,
            geom: DeviceGeometry {
                kind,
                nr_zones,
                zone_blocks,
                zone_cap_blocks,
                nr_conv_zones,
                max_open,
                max_active,
                zone_append: flags & MEMBER_FLAG_ZONE_APPEND != 0,
                // The pool's, set by the superblock's decoder.
                meta_zones: 0,
            },
            removed: flags & MEMBER_FLAG_REMOVED != 0,
        })
    }
}

/// The decoded superblock. About 4.7 KiB: the kernel should keep it in a
/// heap allocation (`KBox`), not on the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Compat feature bits (unknown ones are ignored).
    pub compat: u64,
    /// Ro-compat feature bits (unknown ones force a read-only mount).
    pub ro_compat: u64,
    /// Incompat feature bits (unknown ones refuse the pool).
    pub incompat: u64,
    /// Pool identity; every metadata block of the pool carries it.
    pub pool_uuid: Uuid,
    /// This device's UUID (= `members[member_index].dev_uuid`).
    pub dev_uuid: Uuid,
    /// Bumped on every membership change; highest valid copy wins.
    pub generation: u64,
    /// This device's index in the member table.
    pub member_index: u16,
    /// Journal blocks written between two checkpoints (policy, >= 1).
    pub checkpoint_interval: u32,
    /// Blocks of a conventional log zone the journal uses
    /// ([`INCOMPAT_CONV_LOG_SPAN`]; 0 without: the whole zone).
    pub conv_log_blocks: u32,
    /// Number of valid entries in `members`.
    pub nr_members: u16,
    /// Member table; entries `nr_members..` are [`MemberInfo::EMPTY`].
    pub members: [MemberInfo; MAX_DEVICES],
    /// The removed members (bit per member) before the last removal: the
    /// layout of the checkpoints written before it (0 without removals).
    pub prev_removed: u64,
}

impl Superblock {
    /// A generation-1 superblock for a new pool made of `members`
    /// (device UUID and geometry each, in member order); bases are assigned
    /// contiguously. The result describes member 0; use
    /// [`Superblock::for_member`] to get each device's copy.
    ///
    /// Builds the 4 KiB struct by value: for host code (the kernel
    /// initialises heap storage in place, [`Self::init_parts`]); inline, so
    /// that it is compiled only where it is used, never into the module.
    #[inline]
    pub fn new(pool_uuid: Uuid, members: &[(Uuid, DeviceGeometry)]) -> Result<Self> {
        let mut sb = Superblock::EMPTY;
        sb.init(pool_uuid, members)?;
        Ok(sb)
    }

    /// [`Self::new`] in place (for heap storage in the kernel). Sets every
    /// field; on error `*self` is unspecified.
    pub fn init(&mut self, pool_uuid: Uuid, members: &[(Uuid, DeviceGeometry)]) -> Result<()> {
        self.init_with(pool_uuid, members.len(), |i| members.get(i).copied())
    }

    /// [`Self::init`] from separate slices: `dev_uuids[i]` and `geoms[i]`
    /// describe member `i` (same lengths). In place, no temporary table.
    pub fn init_parts(
        &mut self,
        pool_uuid: Uuid,
        dev_uuids: &[Uuid],
        geoms: &[DeviceGeometry],
    ) -> Result<()> {
        if dev_uuids.len() != geoms.len() {
            return Err(Error::Invalid("superblock: one uuid per member"));
        }
        self.init_with(pool_uuid, geoms.len(), |i| {
            Some((*dev_uuids.get(i)?, *geoms.get(i)?))
        })
    }

    fn init_with(
        &mut self,
        pool_uuid: Uuid,
        n: usize,
        member: impl Fn(usize) -> Option<(Uuid, DeviceGeometry)>,
    ) -> Result<()> {
        if n == 0 || n > MAX_DEVICES {
            return Err(Error::Invalid("superblock: member count"));
        }
        self.compat = 0;
        self.ro_compat = 0;
        self.incompat = 0;
        self.pool_uuid = pool_uuid;
        self.dev_uuid = member(0).map(|m| m.0).unwrap_or([0; 16]);
        self.generation = 1;
        self.member_index = 0;
        self.checkpoint_interval = DEFAULT_CHECKPOINT_INTERVAL;
        self.conv_log_blocks = 0;
        self.nr_members = n as u16;
        self.prev_removed = 0;
        let mut base = 0u64;
        for (i, slot) in self.members.iter_mut().enumerate() {
            let Some((uuid, geom)) = member(i).filter(|_| i < n) else {
                *slot = MemberInfo::EMPTY;
                continue;
            };
            *slot = MemberInfo {
                dev_uuid: uuid,
                base,
                geom,
                removed: false,
            };
            let size = geom
                .size_blocks()
                .ok_or(Error::Invalid("superblock: device size"))?;
            base = base
                .checked_add(size)
                .ok_or(Error::Invalid("superblock: pool size"))?;
        }
        self.validate().map_err(to_invalid)
    }

    /// The copy of this superblock written on member `index`.
    pub fn for_member(&self, index: u16) -> Result<Self> {
        let m = self
            .member(index)
            .filter(|m| !m.removed)
            .ok_or(Error::Invalid("superblock: member index"))?;
        let mut sb = self.clone();
        sb.member_index = index;
        sb.dev_uuid = m.dev_uuid;
        Ok(sb)
    }

    /// Reserved metadata zones per member (the pool's, the same on every
    /// member: [`DeviceGeometry::meta_zones`]).
    pub fn meta_zones(&self) -> u32 {
        self.members
            .first()
            .map_or(META_ZONES_PER_DEV, |m| m.geom.meta_zones)
    }

    /// The valid member entries.
    pub fn members(&self) -> &[MemberInfo] {
        self.members
            .get(..usize::from(self.nr_members))
            .unwrap_or(&[])
    }

    /// Member `index`, if it exists.
    pub fn member(&self, index: u16) -> Option<&MemberInfo> {
        self.members().get(usize::from(index))
    }

    /// Index of the member with device UUID `uuid`.
    pub fn find_member(&self, uuid: &Uuid) -> Option<u16> {
        self.members()
            .iter()
            .position(|m| &m.dev_uuid == uuid)
            .map(|i| i as u16)
    }

    /// Copies the member geometries into `out` (e.g. to build a
    /// `geom::PoolGeometry`) and returns how many were written.
    pub fn geometries(&self, out: &mut [DeviceGeometry]) -> Result<usize> {
        let m = self.members();
        let dst = out
            .get_mut(..m.len())
            .ok_or(Error::Invalid("geometries: buffer"))?;
        for (d, s) in dst.iter_mut().zip(m) {
            *d = s.geom;
        }
        Ok(m.len())
    }

    /// Whether the engine can use this pool given the features it supports:
    /// `Err(Unsupported)` if an incompat bit is not supported, `Ok(true)` if an
    /// unsupported ro-compat bit forces a read-only mount, `Ok(false)` for a
    /// normal read-write mount. Unknown compat bits are ignored.
    pub fn check_features(
        &self,
        incompat_supported: u64,
        ro_compat_supported: u64,
    ) -> Result<bool> {
        if self.incompat & !incompat_supported != 0 {
            return Err(Error::Unsupported(
                "superblock: incompat feature not supported",
            ));
        }
        Ok(self.ro_compat & !ro_compat_supported != 0)
    }

    /// Checks every invariant of the structure (what `decode` enforces, apart
    /// from the encoding itself). Errors are [`Error::BadField`] /
    /// [`Error::Unsupported`].
    pub fn validate(&self) -> Result<()> {
        if self.incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::Unsupported("superblock: unknown incompat feature"));
        }
        if all_zero(&self.pool_uuid) {
            return Err(Error::BadField("superblock: pool uuid"));
        }
        if self.generation == 0 || self.generation > MAX_GENERATION {
            return Err(Error::BadField("superblock: generation"));
        }
        if self.checkpoint_interval == 0 {
            return Err(Error::BadField("superblock: checkpoint interval"));
        }
        let span = self.incompat & INCOMPAT_CONV_LOG_SPAN != 0;
        if span != (self.conv_log_blocks != 0)
            || (span && self.conv_log_blocks < MIN_CONV_LOG_BLOCKS)
        {
            return Err(Error::BadField("superblock: conventional log zone span"));
        }
        let n = usize::from(self.nr_members);
        if n == 0 || n > MAX_DEVICES {
            return Err(Error::BadField("superblock: member count"));
        }
        if self.member_index >= self.nr_members {
            return Err(Error::BadField("superblock: member index"));
        }
        let own = self
            .member(self.member_index)
            .ok_or(Error::BadField("superblock: member index"))?;
        if own.dev_uuid != self.dev_uuid {
            return Err(Error::BadField("superblock: device uuid mismatch"));
        }
        let members = self.members();
        let mut base = 0u64;
        let mut zones = 0u32;
        for (i, m) in members.iter().enumerate() {
            if all_zero(&m.dev_uuid) {
                return Err(Error::BadField("superblock: member uuid"));
            }
            if members
                .get(..i)
                .unwrap_or(&[])
                .iter()
                .any(|o| o.dev_uuid == m.dev_uuid)
            {
                return Err(Error::BadField("superblock: duplicate member uuid"));
            }
            if m.geom.meta_zones != self.meta_zones() {
                return Err(Error::BadField(
                    "superblock: metadata zones differ between members",
                ));
            }
            m.geom.validate().map_err(|e| match e {
                Error::Invalid(s) => Error::BadField(s),
                other => other,
            })?;
            if m.base != base {
                return Err(Error::BadField("superblock: member base"));
            }
            let size = m
                .geom
                .size_blocks()
                .ok_or(Error::BadField("superblock: member size"))?;
            base = base
                .checked_add(size)
                .filter(|b| *b <= MAX_POOL_BLOCKS)
                .ok_or(Error::BadField("superblock: pool size"))?;
            zones = zones
                .checked_add(m.geom.nr_zones)
                .ok_or(Error::BadField("superblock: zone count"))?;
        }
        if self
            .members
            .get(n..)
            .unwrap_or(&[])
            .iter()
            .any(|m| *m != MemberInfo::EMPTY)
        {
            return Err(Error::BadField("superblock: unused member slot"));
        }
        self.validate_removed()
    }

    /// The removed members' rules (see the module documentation).
    fn validate_removed(&self) -> Result<()> {
        let removed = self.removed_mask();
        if (removed != 0) != (self.incompat & INCOMPAT_REMOVED_MEMBERS != 0) {
            return Err(Error::BadField(
                "superblock: removed members without their feature bit",
            ));
        }
        if self.prev_removed & !removed != 0 {
            return Err(Error::BadField("superblock: previous removed members"));
        }
        if self.members().iter().all(|m| m.removed) {
            return Err(Error::BadField("superblock: every member removed"));
        }
        if self.member(self.member_index).is_some_and(|m| m.removed) {
            return Err(Error::BadField("superblock: copy of a removed member"));
        }
        Ok(())
    }

    /// The removed members, bit per member index.
    pub fn removed_mask(&self) -> u64 {
        self.members()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.removed)
            .fold(0, |acc, (i, _)| {
                acc | 1u64.checked_shl(i as u32).unwrap_or(0)
            })
    }

    /// Flags member `index` removed and moves to the next generation (a
    /// membership change); the removed set before it becomes
    /// [`Self::prev_removed`]. [`Error::Invalid`] (nothing changed) for a
    /// member that does not exist, is removed already, or is the last one
    /// not removed.
    pub fn remove_member(&mut self, index: u16) -> Result<()> {
        let before = self.removed_mask();
        let generation = self
            .generation
            .checked_add(1)
            .filter(|g| *g <= MAX_GENERATION)
            .ok_or(Error::Invalid("superblock: generation"))?;
        let live = self.members().iter().filter(|m| !m.removed).count();
        let slot = self
            .members
            .get_mut(..usize::from(self.nr_members))
            .and_then(|m| m.get_mut(usize::from(index)))
            .ok_or(Error::Invalid("superblock: member index"))?;
        if slot.removed {
            return Err(Error::Invalid("superblock: member removed already"));
        }
        if live < 2 {
            return Err(Error::Invalid("superblock: the last member"));
        }
        slot.removed = true;
        self.prev_removed = before;
        self.incompat |= INCOMPAT_REMOVED_MEMBERS;
        self.generation = generation;
        if self.member_index == index {
            // This copy is the removed member's no more: the first other.
            let other = (0..self.nr_members).find(|&i| self.member(i).is_some_and(|m| !m.removed));
            if let Some(i) = other {
                self.set_member(i)?;
            }
        }
        Ok(())
    }

    /// Encodes into `buf` (exactly [`BLOCK_SIZE`] bytes), sealing the CRC.
    /// Validates first ([`Error::Invalid`] on a bad field).
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() != BLOCK_SIZE {
            return Err(Error::Invalid("superblock: buffer size"));
        }
        self.validate().map_err(to_invalid)?;
        buf.fill(0);
        let mut w = Writer::new(buf);
        w.put_u64(SUPERBLOCK_MAGIC)?;
        w.put_u32(0)?; // crc, sealed below
        w.put_u32(FORMAT_VERSION)?;
        w.put_u64(self.compat)?;
        w.put_u64(self.ro_compat)?;
        w.put_u64(self.incompat)?;
        w.put_bytes(&self.pool_uuid)?;
        w.put_bytes(&self.dev_uuid)?;
        w.put_u64(self.generation)?;
        w.put_u16(self.member_index)?;
        w.put_u16(self.nr_members)?;
        w.put_u32(BLOCK_SIZE_U32)?;
        w.put_u32(self.meta_zones())?;
        w.put_u32(self.checkpoint_interval)?;
        w.put_u64(self.prev_removed)?;
        w.put_u32(self.conv_log_blocks)?;
        w.put_zeros(MEMBERS_OFFSET - 108)?;
        for m in self.members() {
            m.encode(&mut w)?;
        }
        seal_block(buf)
    }

    /// Decodes and fully validates a superblock read from disk.
    ///
    /// Errors: [`Error::Truncated`], [`Error::BadMagic`],
    /// [`Error::BadChecksum`], [`Error::Unsupported`] (version, block size,
    /// metadata zone count, unknown incompat feature), [`Error::BadField`].
    /// By value, like [`Self::new`]: the kernel decodes in place
    /// ([`Self::decode_into`]).
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut sb = Superblock::EMPTY;
        sb.decode_into(buf)?;
        Ok(sb)
    }

    /// An all-zero superblock (not valid; storage for [`Self::decode_into`]).
    pub const EMPTY: Superblock = Superblock {
        compat: 0,
        ro_compat: 0,
        incompat: 0,
        pool_uuid: [0; 16],
        dev_uuid: [0; 16],
        generation: 0,
        member_index: 0,
        checkpoint_interval: 0,
        conv_log_blocks: 0,
        nr_members: 0,
        members: [MemberInfo::EMPTY; MAX_DEVICES],
        prev_removed: 0,
    };

    /// Like [`Self::decode`], but into existing storage (the kernel keeps
    /// superblocks in heap memory: the struct is too large to move around
    /// on a kernel stack). On error `*self` holds unspecified (but memory-
    /// safe) contents and must not be used.
    pub fn decode_into(&mut self, buf: &[u8]) -> Result<()> {
        let (blk, _) = check_block(buf, SUPERBLOCK_MAGIC)?;
        let mut r = Reader::new(blk);
        r.skip(12)?;
        if r.get_u32()? != FORMAT_VERSION {
            return Err(Error::Unsupported("superblock: format version"));
        }
        self.compat = r.get_u64()?;
        self.ro_compat = r.get_u64()?;
        self.incompat = r.get_u64()?;
        if self.incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::Unsupported("superblock: unknown incompat feature"));
        }
        self.pool_uuid = r.get_array::<16>()?;
        self.dev_uuid = r.get_array::<16>()?;
        self.generation = r.get_u64()?;
        self.member_index = r.get_u16()?;
        self.nr_members = r.get_u16()?;
        if r.get_u32()? != BLOCK_SIZE_U32 {
            return Err(Error::Unsupported("superblock: block size"));
        }
        let meta_zones = r.get_u32()?;
        if !(META_ZONES_PER_DEV..=MAX_META_ZONES).contains(&meta_zones)
            || !meta_zones.is_multiple_of(2)
        {
            return Err(Error::Unsupported("superblock: metadata zones per device"));
        }
        self.checkpoint_interval = r.get_u32()?;
        self.prev_removed = r.get_u64()?;
        self.conv_log_blocks = r.get_u32()?;
        if !all_zero(r.get_bytes(MEMBERS_OFFSET - 108)?) {
            return Err(Error::BadField("superblock: reserved"));
        }
        let n = usize::from(self.nr_members);
        if n == 0 || n > MAX_DEVICES {
            return Err(Error::BadField("superblock: member count"));
        }
        for (i, slot) in self.members.iter_mut().enumerate() {
            *slot = if i < n {
                let mut m = MemberInfo::decode(&mut r)?;
                m.geom.meta_zones = meta_zones;
                m
            } else {
                MemberInfo::EMPTY
            };
        }
        if !all_zero(r.get_bytes(r.remaining())?) {
            return Err(Error::BadField("superblock: reserved tail"));
        }
        self.validate()
    }

    /// Pool UUID, device UUID and generation of an encoded superblock, after
    /// checking only its magic and CRC: for telling apart blocks that
    /// [`Self::decode_into`] already accepted, without decoding them again.
    pub fn peek_ids(buf: &[u8]) -> Result<(Uuid, Uuid, u64)> {
        let (blk, _) = check_block(buf, SUPERBLOCK_MAGIC)?;
        let mut r = Reader::new(blk);
        r.skip(40)?;
        let pool_uuid = r.get_array::<16>()?;
        let dev_uuid = r.get_array::<16>()?;
        Ok((pool_uuid, dev_uuid, r.get_u64()?))
    }

    /// Copies `other` into `self` in place (no temporary on the stack,
    /// unlike `clone`).
    pub fn copy_from(&mut self, other: &Superblock) {
        self.compat = other.compat;
        self.ro_compat = other.ro_compat;
        self.incompat = other.incompat;
        self.pool_uuid = other.pool_uuid;
        self.dev_uuid = other.dev_uuid;
        self.generation = other.generation;
        self.member_index = other.member_index;
        self.checkpoint_interval = other.checkpoint_interval;
        self.conv_log_blocks = other.conv_log_blocks;
        self.nr_members = other.nr_members;
        self.prev_removed = other.prev_removed;
        // Element by element: two arrays of one length, no length check
        // (`copy_from_slice`'s panic path, which objtool flags).
        for (d, s) in self.members.iter_mut().zip(other.members.iter()) {
            *d = *s;
        }
    }

    /// Appends a member (device UUID `uuid`, geometry `geom` with the
    /// pool's metadata zones) after the last one, at the end of the pool's
    /// address space, and moves to the next generation (a membership
    /// change). Checks everything first: on error nothing changed.
    pub fn add_member(&mut self, uuid: Uuid, geom: DeviceGeometry) -> Result<()> {
        let (base, generation) = self.check_new_member(&uuid, &geom)?;
        let slot = self
            .members
            .get_mut(usize::from(self.nr_members))
            .ok_or(Error::Invalid("superblock: member count"))?;
        *slot = MemberInfo {
            dev_uuid: uuid,
            base,
            geom,
            removed: false,
        };
        self.nr_members = self.nr_members.saturating_add(1);
        self.generation = generation;
        Ok(())
    }

    /// The checks of [`Self::add_member`]: the new member's base address
    /// and the next generation.
    pub fn check_new_member(&self, uuid: &Uuid, geom: &DeviceGeometry) -> Result<(u64, u64)> {
        let n = usize::from(self.nr_members);
        if n >= MAX_DEVICES {
            return Err(Error::Invalid("superblock: the pool has the most members"));
        }
        if all_zero(uuid) || self.find_member(uuid).is_some() {
            return Err(Error::Invalid("superblock: member uuid"));
        }
        if geom.meta_zones != self.meta_zones() {
            return Err(Error::Invalid("superblock: metadata zones differ"));
        }
        geom.validate()?;
        let base = match self.members().last() {
            Some(m) => m
                .geom
                .size_blocks()
                .and_then(|s| m.base.checked_add(s))
                .ok_or(Error::Invalid("superblock: pool size"))?,
            None => 0,
        };
        let size = geom
            .size_blocks()
            .ok_or(Error::Invalid("superblock: device size"))?;
        base.checked_add(size)
            .filter(|e| *e <= MAX_POOL_BLOCKS)
            .ok_or(Error::Invalid("superblock: pool size"))?;
        let zones: u64 = self
            .members()
            .iter()
            .map(|m| u64::from(m.geom.nr_zones))
            .sum::<u64>()
            .saturating_add(u64::from(geom.nr_zones));
        if zones > u64::from(u32::MAX) {
            return Err(Error::Invalid("superblock: zone count"));
        }
        let generation = self
            .generation
            .checked_add(1)
            .filter(|g| *g <= MAX_GENERATION)
            .ok_or(Error::Invalid("superblock: generation"))?;
        Ok((base, generation))
    }

    /// Makes this the copy written on member `index` (in place; see
    /// [`Self::for_member`]).
    pub fn set_member(&mut self, index: u16) -> Result<()> {
        let m = self
            .member(index)
            .filter(|m| !m.removed)
            .ok_or(Error::Invalid("superblock: member index"))?;
        self.dev_uuid = m.dev_uuid;
        self.member_index = index;
        Ok(())
    }

    /// Whether the compat word has bits this version does not know (harmless;
    /// reported for diagnostics).
    pub fn has_unknown_compat(&self) -> bool {
        self.compat & !COMPAT_KNOWN != 0
    }

    /// Whether the ro-compat word has bits this version does not know (the
    /// pool may then only be mounted read-only).
    pub fn has_unknown_ro_compat(&self) -> bool {
        self.ro_compat & !RO_COMPAT_KNOWN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::geom::tests::zns;
    use super::super::testutil::{mutate, reseal, Rng};
    use super::super::INCOMPAT_SHARED_BLOCKS;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn uuid(b: u8) -> Uuid {
        [b; 16]
    }

    fn smr() -> DeviceGeometry {
        DeviceGeometry {
            kind: DevKind::Smr,
            nr_zones: 20,
            zone_blocks: 64,
            zone_cap_blocks: 64,
            nr_conv_zones: 2,
            max_open: 0,
            max_active: 0,
            zone_append: false,
            meta_zones: META_ZONES_PER_DEV,
        }
    }

    pub(crate) fn sample() -> Superblock {
        Superblock::new(
            uuid(0xAA),
            &[
                (uuid(1), zns(8, 16, 12)),
                (uuid(2), smr()),
                (uuid(3), zns(6, 32, 32)),
            ],
        )
        .unwrap()
    }

    fn enc(sb: &Superblock) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_SIZE];
        sb.encode(&mut b).unwrap();
        b
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        assert_eq!(sb.members()[1].base, 128);
        assert_eq!(sb.members()[2].base, 128 + 20 * 64);
        for i in 0..3 {
            let c = sb.for_member(i).unwrap();
            assert_eq!(c.dev_uuid, uuid(i as u8 + 1));
            let b = enc(&c);
            assert_eq!(Superblock::decode(&b).unwrap(), c);
            // A longer buffer decodes its first block.
            let mut long = b.clone();
            long.extend_from_slice(&[1, 2, 3]);
            assert_eq!(Superblock::decode(&long).unwrap(), c);
        }
        assert!(sb.for_member(3).is_err());
        assert_eq!(sb.find_member(&uuid(3)), Some(2));
        assert_eq!(sb.find_member(&uuid(9)), None);
        let mut g = [MemberInfo::EMPTY.geom; 3];
        assert_eq!(sb.geometries(&mut g).unwrap(), 3);
        assert_eq!(g[1], smr());
        assert!(sb.geometries(&mut g[..2]).is_err());

        let mut f = sb.clone();
        f.incompat = INCOMPAT_SHARED_BLOCKS;
        f.ro_compat = 1 << 40;
        f.compat = 1 << 3;
        let d = Superblock::decode(&enc(&f)).unwrap();
        assert!(d.has_unknown_ro_compat() && d.has_unknown_compat());
        assert_eq!(
            d.check_features(INCOMPAT_SHARED_BLOCKS, RO_COMPAT_KNOWN),
            Ok(true)
        );
        assert!(d.check_features(0, u64::MAX).is_err());
        assert_eq!(sb.check_features(0, 0), Ok(false));

        // 64 members fit.
        let many: Vec<(Uuid, DeviceGeometry)> = (0..64u8)
            .map(|i| {
                let mut u = uuid(i + 1);
                u[0] = 0;
                (u, zns(8, 16, 16))
            })
            .collect();
        let big = Superblock::new(uuid(7), &many)
            .unwrap()
            .for_member(63)
            .unwrap();
        assert_eq!(Superblock::decode(&enc(&big)).unwrap(), big);
        let too_many: Vec<(Uuid, DeviceGeometry)> =
            (0..65u8).map(|i| (uuid(i + 1), zns(8, 16, 16))).collect();
        assert!(Superblock::new(uuid(7), &too_many).is_err());
        assert!(Superblock::new(uuid(7), &[]).is_err());
    }

    #[test]
    fn removed_members() {
        let mut sb = sample();
        let gen = sb.generation;
        sb.remove_member(0).unwrap();
        assert_eq!(sb.removed_mask(), 0b001);
        assert_eq!(sb.prev_removed, 0);
        assert_eq!(sb.generation, gen + 1);
        assert_ne!(sb.incompat & INCOMPAT_REMOVED_MEMBERS, 0);
        // The copy described member 0: it now describes the first other.
        assert_eq!(sb.member_index, 1);
        assert!(sb.for_member(0).is_err(), "no copy for a removed member");
        let c = sb.for_member(2).unwrap();
        assert_eq!(Superblock::decode(&enc(&c)).unwrap(), c);
        // The entry, index and address range stay.
        assert_eq!(sb.members()[0].base, 0);
        assert_eq!(sb.find_member(&uuid(1)), Some(0));
        assert!(sb.remove_member(0).is_err(), "removed already");
        assert!(sb.remove_member(3).is_err(), "no such member");
        sb.remove_member(2).unwrap();
        assert_eq!((sb.removed_mask(), sb.prev_removed), (0b101, 0b001));
        let before = sb.clone();
        assert!(sb.remove_member(1).is_err(), "the last member");
        assert_eq!(sb, before, "nothing changed");
        assert_eq!(Superblock::decode(&enc(&sb)).unwrap().removed_mask(), 0b101);
        // The feature bit without a removed member.
        let mut f = sample();
        f.incompat |= INCOMPAT_REMOVED_MEMBERS;
        assert!(f.validate().is_err());
    }

    /// Encodes `sb` bypassing validation by patching the raw block.
    fn patched(f: impl Fn(&mut [u8])) -> Result<()> {
        let mut b = enc(&sample());
        f(&mut b);
        reseal(&mut b);
        Superblock::decode(&b).map(|_| ())
    }

    #[test]
    fn validation_errors() {
        let bf = |s| Err(Error::BadField(s));
        assert_eq!(
            patched(|b| b[12] = 2),
            Err(Error::Unsupported("superblock: format version"))
        );
        assert_eq!(
            patched(|b| b[32 + 7] = 0x80),
            Err(Error::Unsupported("superblock: unknown incompat feature"))
        );
        assert_eq!(
            patched(|b| b[84..88].copy_from_slice(&512u32.to_le_bytes())),
            Err(Error::Unsupported("superblock: block size"))
        );
        for bad in [5u8, 2, 0] {
            assert_eq!(
                patched(|b| b[88] = bad),
                Err(Error::Unsupported("superblock: metadata zones per device"))
            );
        }
        assert_eq!(
            patched(|b| b[88..92].copy_from_slice(&(MAX_META_ZONES + 2).to_le_bytes())),
            Err(Error::Unsupported("superblock: metadata zones per device"))
        );
        assert_eq!(patched(|b| b[40..56].fill(0)), bf("superblock: pool uuid"));
        assert_eq!(patched(|b| b[72..80].fill(0)), bf("superblock: generation"));
        assert_eq!(
            patched(|b| b[92..96].fill(0)),
            bf("superblock: checkpoint interval")
        );
        assert_eq!(patched(|b| b[108] = 1), bf("superblock: reserved"));
        // The conventional log span: only with its feature, never below
        // the minimum (incompat bit 10 is in byte 33).
        let span = bf("superblock: conventional log zone span");
        assert_eq!(patched(|b| b[104] = 16), span);
        assert_eq!(patched(|b| b[33] |= 4), span);
        assert_eq!(
            patched(|b| {
                b[33] |= 4;
                b[104] = 15;
            }),
            span
        );
        let mut b = enc(&sample());
        b[33] |= 4;
        b[104] = 16;
        reseal(&mut b);
        let ok = Superblock::decode(&b).expect("a span of 16 blocks");
        assert_eq!(ok.conv_log_blocks, 16);
        assert_ne!(ok.incompat & INCOMPAT_CONV_LOG_SPAN, 0);
        assert_eq!(enc(&ok), b, "the span encodes as it decoded");
        assert_eq!(
            patched(|b| b[96] = 1),
            bf("superblock: previous removed members")
        );
        assert_eq!(patched(|b| b[82] = 0), bf("superblock: member count"));
        assert_eq!(patched(|b| b[82] = 65), bf("superblock: member count"));
        assert_eq!(patched(|b| b[80] = 3), bf("superblock: member index"));
        assert_eq!(
            patched(|b| b[56] = 9),
            bf("superblock: device uuid mismatch")
        );
        assert_eq!(patched(|b| b[4000] = 1), bf("superblock: reserved tail"));
        // Member count 2 leaves member 3's bytes in the tail.
        assert_eq!(patched(|b| b[82] = 2), bf("superblock: reserved tail"));
        let m = |i: usize, off: usize| MEMBERS_OFFSET + i * MEMBER_ENTRY_LEN + off;
        assert_eq!(patched(|b| b[m(1, 56)] = 0), bf("member kind"));
        assert_eq!(patched(|b| b[m(1, 56)] = 4), bf("member kind"));
        assert_eq!(patched(|b| b[m(1, 57)] = 4), bf("member flags"));
        assert_eq!(
            patched(|b| b[m(1, 57)] = 2),
            bf("superblock: removed members without their feature bit")
        );
        assert_eq!(patched(|b| b[m(1, 58)] = 1), bf("member reserved"));
        assert_eq!(
            patched(|b| b[m(1, 0)..m(1, 16)].fill(0)),
            bf("superblock: member uuid")
        );
        assert_eq!(
            patched(|b| b[m(2, 0)..m(2, 16)].fill(2)),
            bf("superblock: duplicate member uuid")
        );
        assert_eq!(patched(|b| b[m(1, 16)] += 1), bf("superblock: member base"));
        assert_eq!(patched(|b| b[m(2, 16)] += 1), bf("superblock: member base"));
        // Geometry: capacity > size, zero size, too few zones.
        assert_eq!(patched(|b| b[m(0, 32)] = 17), bf("geometry: zone capacity"));
        assert_eq!(patched(|b| b[m(0, 24)] = 0), bf("geometry: zone size"));
        assert_eq!(patched(|b| b[m(0, 40)] = 4), bf("geometry: no data zone"));
        assert_eq!(
            patched(|b| b[m(0, 44)] = 1),
            bf("geometry: conventional zones on non-SMR")
        );
        // Size overflow: huge zone count * zone size.
        assert!(patched(|b| {
            b[m(2, 24)..m(2, 32)].copy_from_slice(&(1u64 << 31).to_le_bytes());
            b[m(2, 40)..m(2, 44)].copy_from_slice(&u32::MAX.to_le_bytes());
        })
        .is_err());

        // Encoding validates too.
        let mut sb = sample();
        sb.generation = 0;
        let mut b = vec![0u8; BLOCK_SIZE];
        assert_eq!(
            sb.encode(&mut b),
            Err(Error::Invalid("superblock: generation"))
        );
        assert_eq!(
            sample().encode(&mut b[..100]),
            Err(Error::Invalid("superblock: buffer size"))
        );
        let mut sb = sample();
        sb.members[5].base = 1;
        assert_eq!(
            sb.validate(),
            Err(Error::BadField("superblock: unused member slot"))
        );
        let mut sb = sample();
        sb.incompat = 1 << 63;
        assert_eq!(
            sb.encode(&mut b),
            Err(Error::Unsupported("superblock: unknown incompat feature"))
        );
    }

    #[test]
    #[allow(clippy::assertions_on_constants)]
    fn member_table_fits_and_decode_into() {
        assert!(MEMBERS_OFFSET + MAX_DEVICES * MEMBER_ENTRY_LEN <= BLOCK_SIZE);
        let mut sb = Superblock::EMPTY;
        let src = sample().for_member(2).unwrap();
        sb.decode_into(&enc(&src)).unwrap();
        assert_eq!(sb, src);
        // Decoding a smaller pool into used storage clears the old slots.
        let small = Superblock::new(uuid(5), &[(uuid(9), zns(8, 16, 16))]).unwrap();
        sb.decode_into(&enc(&small)).unwrap();
        assert_eq!(sb, small);
        assert!(sb.decode_into(&[0u8; BLOCK_SIZE]).is_err());
        // From separate slices, and the raw ids.
        let mut p = Superblock::EMPTY;
        p.init_parts(
            uuid(0xAA),
            &[uuid(1), uuid(2), uuid(3)],
            &[zns(8, 16, 12), smr(), zns(6, 32, 32)],
        )
        .unwrap();
        assert_eq!(p, sample());
        assert!(p
            .init_parts(uuid(0xAA), &[uuid(1)], &[smr(), smr()])
            .is_err());
        assert!(p.init_parts(uuid(0xAA), &[], &[]).is_err());
        assert_eq!(
            Superblock::peek_ids(&enc(&src)),
            Ok((uuid(0xAA), uuid(3), 1))
        );
        let mut c = Superblock::EMPTY;
        c.copy_from(&src);
        assert_eq!(c, src);
        let mut m = sample();
        m.set_member(1).unwrap();
        assert_eq!(m, sample().for_member(1).unwrap());
        assert!(m.set_member(3).is_err());
    }

    #[test]
    fn torn_and_flipped() {
        let b = enc(&sample());
        assert_eq!(
            Superblock::decode(&b[..BLOCK_SIZE - 1]),
            Err(Error::Truncated)
        );
        assert_eq!(Superblock::decode(&[]), Err(Error::Truncated));
        let mut t = b.clone();
        t[100..].fill(0); // torn write: only the first sector landed
        assert_eq!(Superblock::decode(&t).err(), Some(Error::BadChecksum));
        for bit in (0..BLOCK_SIZE * 8).step_by(97) {
            let mut f = b.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let e = Superblock::decode(&f).unwrap_err();
            assert!(e == Error::BadChecksum || e == Error::BadMagic, "{e:?}");
        }
    }

    #[test]
    fn fuzz() {
        let mut rng = Rng::new(0x005e_ed5b);
        let base = enc(&sample().for_member(1).unwrap());
        let mut ok = 0;
        for i in 0..25_000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut b);
            }
            if i % 2 == 0 {
                reseal(&mut b);
            }
            if Superblock::decode(&b).is_ok() {
                ok += 1;
            }
        }
        assert!(ok < 25_000);
    }
}
