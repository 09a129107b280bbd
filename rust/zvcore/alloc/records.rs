// SPDX-License-Identifier: GPL-2.0
//! The zone table as checkpoint records ([`Allocator::encode_zones`],
//! [`Allocator::decode_zones`]) and the checks a zone record must pass.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::super::geom::DeviceGeometry;
use super::{Allocator, DevState, ZoneInfo, ZoneState};
use core::ops::{Deref, DerefMut};

impl<G, Z, D> Allocator<G, Z, D>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    D: DerefMut<Target = [DevState]>,
{
    /// Size of one encoded zone record.
    pub const ZONE_RECORD_BYTES: usize = 18;

    /// Encodes the zone table into `w` as one chunk, starting at zone
    /// `*cursor` and taking as many zones as fit; advances `*cursor`.
    /// Returns `Ok(true)` once every zone is encoded. Chunk format:
    /// `first_zone: u32, count: u32`, then `count` records of
    /// `state: u8, flags: u8 (bit 0 = meta open), wp: u32, valid: u32, seq: u64`.
    /// [`Error::Truncated`] if not even one record fits (nothing written).
    pub fn encode_zones(&self, cursor: &mut u32, w: &mut Writer<'_>) -> Result<bool> {
        let nr = self.geom.nr_zones();
        if *cursor >= nr {
            return Ok(true);
        }
        let fit = w.remaining().saturating_sub(8) / Self::ZONE_RECORD_BYTES;
        if fit == 0 {
            return Err(Error::Truncated);
        }
        let count = nr
            .saturating_sub(*cursor)
            .min(u32::try_from(fit).unwrap_or(u32::MAX));
        w.put_u32(*cursor)?;
        w.put_u32(count)?;
        for z in *cursor..cursor.saturating_add(count) {
            let zi = self.zone(z).copied().unwrap_or_default();
            w.put_u8(zi.state.code())?;
            w.put_u8(u8::from(zi.meta_open))?;
            w.put_u32(zi.wp)?;
            w.put_u32(zi.valid)?;
            w.put_u64(zi.seq)?;
        }
        *cursor = cursor.saturating_add(count);
        Ok(*cursor >= nr)
    }

    /// Decodes one chunk written by [`Self::encode_zones`] into the zone
    /// table (each record checked against the geometry). Returns the zone id
    /// after the chunk. On error the zone table may be partly overwritten and
    /// the allocator must be discarded. Call [`Self::rebuild`] after the last
    /// chunk.
    pub fn decode_zones(&mut self, r: &mut Reader<'_>) -> Result<u32> {
        let first = r.get_u32()?;
        let count = r.get_u32()?;
        let end = first
            .checked_add(count)
            .filter(|e| *e <= self.geom.nr_zones())
            .ok_or(Error::BadField("zone chunk range"))?;
        for z in first..end {
            let code = r.get_u8()?;
            let flags = r.get_u8()?;
            let wp = r.get_u32()?;
            let valid = r.get_u32()?;
            let seq = r.get_u64()?;
            let state = ZoneState::from_code(code).ok_or(Error::BadField("zone state"))?;
            if flags > 1 || (flags == 1 && state != ZoneState::Meta) {
                return Err(Error::BadField("zone flags"));
            }
            let zg = self.geom.zone(z).ok_or(Error::BadField("zone id"))?;
            let info = check_zone(&zg, state, u64::from(wp), u64::from(valid), seq)
                .map_err(|_| Error::BadField("zone record"))?;
            if let Some(slot) = self.zones.get_mut(z as usize) {
                *slot = ZoneInfo {
                    meta_open: flags == 1,
                    ..info
                };
            }
        }
        Ok(end)
    }
}

/// Builds a zone record after checking it against the zone's geometry.
pub(super) fn check_zone(
    zg: &super::super::geom::ZoneGeom,
    state: ZoneState,
    wp: u64,
    valid: u64,
    seq: u64,
) -> Result<ZoneInfo> {
    if zg.meta != (state == ZoneState::Meta) {
        return Err(Error::Invalid("zone: meta state mismatch"));
    }
    if wp > zg.cap || valid > wp {
        return Err(Error::Invalid("zone: write pointer or valid count"));
    }
    match state {
        ZoneState::Empty | ZoneState::Meta if wp != 0 => {
            return Err(Error::Invalid("zone: write pointer of empty zone"))
        }
        ZoneState::Offline if valid != 0 => return Err(Error::Invalid("zone: offline")),
        _ => {}
    }
    Ok(ZoneInfo {
        state,
        meta_open: false,
        flags: 0,
        wp: wp as u32,
        valid: valid as u32,
        inflight: 0,
        seq,
    })
}
