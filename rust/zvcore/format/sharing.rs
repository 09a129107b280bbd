// SPDX-License-Identifier: GPL-2.0
//! Checkpoint section [`super::checkpoint::section::SHARING`]: how volumes
//! share blocks (snapshots, clones), written when the pool has
//! [`super::INCOMPAT_SHARED_BLOCKS`].
//!
//! Volumes without a delta base are stored in full in the `BLOCK_TABLE`
//! section (extents). This section follows it and holds, as records that
//! never span payload blocks (all little-endian):
//!
//! - `LINK` (16 bytes): `tag u8 = 1, flags u8, reserved u16, vol u32,
//!   origin u32, parent u32` — the volume's origin (flags bit 0) and delta
//!   base (flags bit 1); fields without their flag are zero.
//! - `BASE` (16 bytes): `tag u8 = 2, reserved[3], vol u32, base u32,
//!   reserved u32` — volume `vol`'s table starts as a copy-on-write clone
//!   of `base`'s (complete at this point), resized to `vol`'s size.
//! - `DIFF` (12 + 24 * count bytes): `tag u8 = 3, reserved[3], vol u32,
//!   count u32`, then `count` entries `kind u8 (1 map, 2 unmap),
//!   reserved[3], len u32, lba u64, addr u64` — applied in order to the
//!   volume of the preceding `BASE` (map: `[lba, lba+len)` to `[addr,
//!   addr+len)`; unmap: `addr` is zero).
//!
//! Every `LINK` comes first; then each delta volume's `BASE` and its
//! `DIFF`s, bases before the volumes built on them.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::super::map::MAX_VOLUME_BLOCKS;
use super::all_zero;

/// Record tags.
pub mod tag {
    /// Origin and delta base of a volume.
    pub const LINK: u8 = 1;
    /// Start of a delta volume.
    pub const BASE: u8 = 2;
    /// Differences of a delta volume.
    pub const DIFF: u8 = 3;
}

/// Bytes of a `LINK` or `BASE` record.
pub const SMALL_RECORD_BYTES: usize = 16;
/// Bytes of a `DIFF` record's header.
pub const DIFF_HEADER_BYTES: usize = 12;
/// Bytes of one `DIFF` entry.
pub const DIFF_ENTRY_BYTES: usize = 24;

const LINK_ORIGIN: u8 = 1 << 0;
const LINK_PARENT: u8 = 1 << 1;

/// One difference entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    /// Map (`true`) or unmap.
    pub map: bool,
    /// First volume block.
    pub lba: u64,
    /// Blocks (>= 1).
    pub len: u32,
    /// First pool address (map), 0 (unmap).
    pub addr: u64,
}

impl DiffEntry {
    fn validate(&self) -> Result<()> {
        let n = u64::from(self.len);
        if n == 0 {
            return Err(Error::BadField("diff: length"));
        }
        match self.lba.checked_add(n) {
            Some(e) if e <= MAX_VOLUME_BLOCKS => {}
            _ => return Err(Error::BadField("diff: lba")),
        }
        if self.map {
            match self.addr.checked_add(n) {
                Some(e) if e <= MAX_POOL_BLOCKS => Ok(()),
                _ => Err(Error::BadField("diff: address")),
            }
        } else if self.addr != 0 {
            Err(Error::BadField("diff: unmap address"))
        } else {
            Ok(())
        }
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        self.validate().map_err(super::to_invalid)?;
        w.put_u8(if self.map { 1 } else { 2 })?;
        w.put_zeros(3)?;
        w.put_u32(self.len)?;
        w.put_u64(self.lba)?;
        w.put_u64(self.addr)
    }

    fn decode(r: &mut Reader<'_>) -> Result<DiffEntry> {
        let kind = r.get_u8()?;
        if !all_zero(r.get_bytes(3)?) {
            return Err(Error::BadField("diff: reserved"));
        }
        let len = r.get_u32()?;
        let lba = r.get_u64()?;
        let addr = r.get_u64()?;
        let map = match kind {
            1 => true,
            2 => false,
            _ => return Err(Error::BadField("diff: kind")),
        };
        let e = DiffEntry {
            map,
            lba,
            len,
            addr,
        };
        e.validate()?;
        Ok(e)
    }
}

/// A decoded record of the section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareRecord<'a> {
    /// Origin and delta base of `vol`.
    Link {
        /// Volume.
        vol: u32,
        /// What it was made from.
        origin: Option<u32>,
        /// Its delta base.
        parent: Option<u32>,
    },
    /// `vol` starts as a clone of `base`.
    Base {
        /// Volume.
        vol: u32,
        /// Its base (complete).
        base: u32,
    },
    /// Differences applied to `vol`.
    Diff {
        /// Volume.
        vol: u32,
        /// The entries (iterate with [`DiffEntries`]).
        entries: DiffEntries<'a>,
    },
}

/// The entries of a `DIFF` record (each decoded and validated in turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffEntries<'a> {
    data: &'a [u8],
    count: u32,
}

impl DiffEntries<'_> {
    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Iterator for DiffEntries<'_> {
    type Item = Result<DiffEntry>;

    fn next(&mut self) -> Option<Result<DiffEntry>> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let mut r = Reader::new(self.data);
        let e = DiffEntry::decode(&mut r);
        self.data = self.data.get(DIFF_ENTRY_BYTES..).unwrap_or(&[]);
        if e.is_err() {
            self.count = 0;
        }
        Some(e)
    }
}

/// Decodes the next record (the reader holds one payload block's data).
pub fn decode_record<'a>(r: &mut Reader<'a>) -> Result<ShareRecord<'a>> {
    let t = r.get_u8()?;
    match t {
        tag::LINK => {
            let flags = r.get_u8()?;
            if r.get_u16()? != 0 || flags & !(LINK_ORIGIN | LINK_PARENT) != 0 {
                return Err(Error::BadField("link: reserved"));
            }
            let vol = r.get_u32()?;
            let origin = r.get_u32()?;
            let parent = r.get_u32()?;
            let opt = |bit: u8, v: u32| -> Result<Option<u32>> {
                match (flags & bit != 0, v) {
                    (true, v) if v != vol => Ok(Some(v)),
                    (true, _) => Err(Error::BadField("link: self reference")),
                    (false, 0) => Ok(None),
                    (false, _) => Err(Error::BadField("link: reserved")),
                }
            };
            Ok(ShareRecord::Link {
                vol,
                origin: opt(LINK_ORIGIN, origin)?,
                parent: opt(LINK_PARENT, parent)?,
            })
        }
        tag::BASE => {
            if !all_zero(r.get_bytes(3)?) {
                return Err(Error::BadField("base: reserved"));
            }
            let vol = r.get_u32()?;
            let base = r.get_u32()?;
            if r.get_u32()? != 0 {
                return Err(Error::BadField("base: reserved"));
            }
            if vol == base {
                return Err(Error::BadField("base: self reference"));
            }
            Ok(ShareRecord::Base { vol, base })
        }
        tag::DIFF => {
            if !all_zero(r.get_bytes(3)?) {
                return Err(Error::BadField("diff: reserved"));
            }
            let vol = r.get_u32()?;
            let count = r.get_u32()?;
            let bytes = (count as usize)
                .checked_mul(DIFF_ENTRY_BYTES)
                .ok_or(Error::Truncated)?;
            let data = r.get_bytes(bytes)?;
            Ok(ShareRecord::Diff {
                vol,
                entries: DiffEntries { data, count },
            })
        }
        _ => Err(Error::BadField("sharing: record tag")),
    }
}

/// Encodes a `LINK` record.
pub fn encode_link(
    w: &mut Writer<'_>,
    vol: u32,
    origin: Option<u32>,
    parent: Option<u32>,
) -> Result<()> {
    if origin == Some(vol) || parent == Some(vol) {
        return Err(Error::Invalid("link: self reference"));
    }
    if w.remaining() < SMALL_RECORD_BYTES {
        return Err(Error::Truncated);
    }
    let flags = if origin.is_some() { LINK_ORIGIN } else { 0 }
        | if parent.is_some() { LINK_PARENT } else { 0 };
    w.put_u8(tag::LINK)?;
    w.put_u8(flags)?;
    w.put_u16(0)?;
    w.put_u32(vol)?;
    w.put_u32(origin.unwrap_or(0))?;
    w.put_u32(parent.unwrap_or(0))
}

/// Encodes a `BASE` record.
pub fn encode_base(w: &mut Writer<'_>, vol: u32, base: u32) -> Result<()> {
    if vol == base {
        return Err(Error::Invalid("base: self reference"));
    }
    if w.remaining() < SMALL_RECORD_BYTES {
        return Err(Error::Truncated);
    }
    w.put_u8(tag::BASE)?;
    w.put_zeros(3)?;
    w.put_u32(vol)?;
    w.put_u32(base)?;
    w.put_u32(0)
}

/// Builds one `DIFF` record in a buffer (at most one payload block).
pub struct DiffWriter<'b> {
    w: Writer<'b>,
    count: u32,
}

impl<'b> DiffWriter<'b> {
    /// Starts a record for `vol` in `buf`.
    pub fn new(buf: &'b mut [u8], vol: u32) -> Result<Self> {
        let mut w = Writer::new(buf);
        if w.remaining() < DIFF_HEADER_BYTES + DIFF_ENTRY_BYTES {
            return Err(Error::Truncated);
        }
        w.put_u8(tag::DIFF)?;
        w.put_zeros(3)?;
        w.put_u32(vol)?;
        w.put_u32(0)?;
        Ok(DiffWriter { w, count: 0 })
    }

    /// Whether another entry fits.
    pub fn has_room(&self) -> bool {
        self.w.remaining() >= DIFF_ENTRY_BYTES
    }

    /// Number of entries.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Adds an entry ([`Error::Truncated`] when full).
    pub fn push(&mut self, e: &DiffEntry) -> Result<()> {
        if !self.has_room() {
            return Err(Error::Truncated);
        }
        e.encode(&mut self.w)?;
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// Finishes the record; returns its length in bytes.
    pub fn finish(mut self) -> Result<usize> {
        self.w.patch_u32(8, self.count)?;
        Ok(self.w.pos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let mut buf = [0u8; 4064];
        let mut w = Writer::new(&mut buf);
        encode_link(&mut w, 3, Some(1), None).unwrap();
        encode_link(&mut w, 4, None, Some(3)).unwrap();
        encode_base(&mut w, 4, 3).unwrap();
        let at = w.pos();
        let mut d = DiffWriter::new(&mut buf[at..], 4).unwrap();
        let es = [
            DiffEntry {
                map: true,
                lba: 7,
                len: 3,
                addr: 99,
            },
            DiffEntry {
                map: false,
                lba: 100,
                len: u32::MAX,
                addr: 0,
            },
        ];
        for e in &es {
            d.push(e).unwrap();
        }
        let n = d.finish().unwrap();
        let total = at + n;
        let mut r = Reader::new(&buf[..total]);
        let mut got = Vec::new();
        while r.remaining() > 0 {
            got.push(decode_record(&mut r).unwrap());
        }
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            ShareRecord::Link {
                vol: 3,
                origin: Some(1),
                parent: None
            }
        );
        assert_eq!(got[2], ShareRecord::Base { vol: 4, base: 3 });
        let ShareRecord::Diff { vol, entries } = got[3] else {
            panic!()
        };
        assert_eq!(vol, 4);
        assert_eq!(entries.collect::<Result<Vec<_>>>().unwrap(), es.to_vec());
        // Invalid entries are refused by the writer.
        let mut b2 = [0u8; 64];
        let mut d = DiffWriter::new(&mut b2, 1).unwrap();
        assert!(d
            .push(&DiffEntry {
                map: false,
                lba: 0,
                len: 1,
                addr: 5
            })
            .is_err());
        assert!(encode_base(&mut Writer::new(&mut b2), 1, 1).is_err());
        // Every byte flipped: an error or a valid record, never a panic.
        for i in 0..total {
            for bit in 0..8 {
                let mut c = buf;
                c[i] ^= 1 << bit;
                let mut r = Reader::new(&c[..total]);
                while r.remaining() > 0 {
                    match decode_record(&mut r) {
                        Ok(ShareRecord::Diff { entries, .. }) => {
                            for e in entries {
                                let _ = e;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        // Truncated.
        for cut in 0..total {
            let mut r = Reader::new(&buf[..cut]);
            while r.remaining() > 0 {
                if decode_record(&mut r).is_err() {
                    break;
                }
            }
        }
    }
}
