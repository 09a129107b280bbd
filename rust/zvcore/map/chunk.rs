// SPDX-License-Identifier: GPL-2.0
//! Block tables in the checkpoint: extent records, the chunks of the
//! block-table section, and replaying decoded extents into a table.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::super::geom::MAX_POOL_BLOCKS;
use super::{BlockTable, MapExtent, NodeStore, EXTENT_RECORD_BYTES, MAX_VOLUME_BLOCKS};

impl MapExtent {
    /// Encodes `vol: u32, lba: u64, len: u32, addr: u64` (`len` must fit a u32).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let len = u32::try_from(self.len).map_err(|_| Error::Invalid("extent too long"))?;
        if w.remaining() < EXTENT_RECORD_BYTES {
            return Err(Error::Truncated);
        }
        w.put_u32(self.vol)?;
        w.put_u64(self.lba)?;
        w.put_u32(len)?;
        w.put_u64(self.addr)
    }

    /// Decodes and range-checks one record.
    pub fn decode(r: &mut Reader<'_>) -> Result<MapExtent> {
        let vol = r.get_u32()?;
        let lba = r.get_u64()?;
        let len = u64::from(r.get_u32()?);
        let addr = r.get_u64()?;
        if len == 0 {
            return Err(Error::BadField("extent length"));
        }
        if lba.checked_add(len).map(|e| e > MAX_VOLUME_BLOCKS) != Some(false) {
            return Err(Error::BadField("extent lba"));
        }
        if addr.checked_add(len).map(|e| e > MAX_POOL_BLOCKS) != Some(false) {
            return Err(Error::BadField("extent address"));
        }
        Ok(MapExtent {
            vol,
            lba,
            len,
            addr,
        })
    }
}

/// Decodes one chunk written by [`BlockTable::encode_chunk`] (a `u32` count
/// then that many records), handing each extent to `f`. Returns the count.
pub fn decode_chunk(r: &mut Reader<'_>, mut f: impl FnMut(MapExtent) -> Result<()>) -> Result<u32> {
    let count = r.get_u32()?;
    let bytes = (count as usize).checked_mul(EXTENT_RECORD_BYTES);
    if bytes.map(|b| b > r.remaining()) != Some(false) {
        return Err(Error::Truncated);
    }
    for _ in 0..count {
        f(MapExtent::decode(r)?)?;
    }
    Ok(count)
}

impl BlockTable {
    /// Encodes mapped extents from `*cursor` (an lba) on into `w` as one chunk:
    /// a `u32` count then records of [`EXTENT_RECORD_BYTES`]; advances
    /// `*cursor`. Returns `Ok(true)` when the table is fully encoded.
    /// [`Error::Truncated`] (nothing written) if `w` cannot hold the count and
    /// one record.
    pub fn encode_chunk<S: NodeStore>(
        &self,
        store: &S,
        cursor: &mut u64,
        w: &mut Writer<'_>,
    ) -> Result<bool> {
        if w.remaining() < 4 + EXTENT_RECORD_BYTES {
            return match self.next_extent(store, *cursor) {
                None => Ok(true),
                Some(_) => Err(Error::Truncated),
            };
        }
        let at = w.pos();
        w.put_u32(0)?;
        let mut count = 0u32;
        loop {
            let Some(mut e) = self.next_extent(store, *cursor) else {
                *cursor = self.size;
                w.patch_u32(at, count)?;
                return Ok(true);
            };
            if w.remaining() < EXTENT_RECORD_BYTES {
                w.patch_u32(at, count)?;
                return Ok(false);
            }
            e.len = e.len.min(u64::from(u32::MAX));
            e.encode(w)?;
            count = count.saturating_add(1);
            *cursor = e.lba.saturating_add(e.len);
        }
    }

    /// Replays one decoded extent into this table (checkpoint load): it must
    /// belong to this volume, lie inside it and not overlap anything mapped.
    pub fn replay<S: NodeStore>(&mut self, store: &mut S, e: &MapExtent) -> Result<()> {
        if e.vol != self.vol {
            return Err(Error::Corrupt("map: extent of another volume"));
        }
        self.check_range(e.lba, e.len)
            .map_err(|_| Error::Corrupt("map: extent beyond volume end"))?;
        let (a, n) = self.lookup_run(store, e.lba, e.len);
        if a.is_some() || n < e.len {
            return Err(Error::Corrupt("map: overlapping extents"));
        }
        self.map_range(store, e.lba, e.len, e.addr, |_, _, _| {})
    }
}
