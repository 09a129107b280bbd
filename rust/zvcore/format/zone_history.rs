// SPDX-License-Identifier: GPL-2.0
//! The placement history (feature `INCOMPAT_ZONE_HISTORY`): what GC's
//! victim choice and the placement by expected lifetime learn while the
//! pool runs — the allocator's write clock, each data zone's clock at its
//! last write (its age, for cost-benefit) and whether the hot user stream
//! wrote it, and the running mean lifetime of overwritten blocks. Every
//! checkpoint (full or delta) holds it whole in its section
//! [`ZONE_HISTORY`]; assembly restores it, so a reassembly does not make
//! every zone look equally old and cold (the GC simulator: 80/20
//! overwrites at 80 % on 1024 zones, WA 2.43 without reassemblies, 2.53
//! with one per volume written and 2.96 with one per quarter of it when
//! the history is lost; `Documentation/design.md`, "Garbage collection").
//!
//! It is a hint: nothing read or mapped depends on it. A checkpoint takes
//! it while the pool runs (between its steps), so a zone's clock may be
//! past the pool's clock written before it; assembly takes the larger.
//!
//! Records of [`ZONE_HISTORY_RECORD_BYTES`] bytes, little-endian:
//!
//! | off | size | field                                                      |
//! |----:|-----:|------------------------------------------------------------|
//! | 0   | 4    | zone id, or [`POOL_CLOCK`] / [`POOL_LIFETIME`]             |
//! | 4   | 1    | flags: bit 0 written by the hot stream (zones only)        |
//! | 5   | 3    | reserved, zero                                             |
//! | 8   | 8    | the zone's clock at its last write, the pool's clock, or the mean lifetime (times its weight) |
//!
//! The two pool records come first, in that order; then the zones in
//! increasing order (only data zones with a history: written since the
//! pool began, not reset since).

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::checkpoint::section;

/// The section kind (incompat), number 10.
pub const ZONE_HISTORY: u32 = 10;
/// Bytes of a [`ZoneHistory`] record.
pub const ZONE_HISTORY_RECORD_BYTES: usize = 16;
/// The record of the allocator's write clock.
pub const POOL_CLOCK: u32 = u32::MAX;
/// The record of the running mean lifetime of overwritten blocks.
pub const POOL_LIFETIME: u32 = u32::MAX - 1;

// The number must not collide with another section's.
const _: () = assert!(ZONE_HISTORY > section::COPIES && ZONE_HISTORY > super::policy::POLICY);

/// Flag of a zone record: written by the hot user stream.
const FLAG_HOT: u8 = 1;

/// One record of the section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneHistory {
    /// The allocator's write clock.
    Clock(u64),
    /// The running mean lifetime of overwritten blocks.
    Lifetime(u64),
    /// Data zone `zone`: its clock at its last write, and whether the hot
    /// user stream wrote it.
    Zone { zone: u32, seq: u64, hot: bool },
}

impl ZoneHistory {
    /// Encodes the record into `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let (id, flags, value) = match *self {
            ZoneHistory::Clock(c) => (POOL_CLOCK, 0, c),
            ZoneHistory::Lifetime(l) => (POOL_LIFETIME, 0, l),
            ZoneHistory::Zone { zone, seq, hot } => {
                if zone >= POOL_LIFETIME {
                    return Err(Error::Invalid("zone history: zone id"));
                }
                (zone, if hot { FLAG_HOT } else { 0 }, seq)
            }
        };
        w.put_u32(id)?;
        w.put_u8(flags)?;
        w.put_bytes(&[0; 3])?;
        w.put_u64(value)
    }

    /// Decodes and validates one record (the zone id against the pool's
    /// zones by the caller).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let id = r.get_u32()?;
        let flags = r.get_u8()?;
        if r.get_bytes(3)? != [0; 3] {
            return Err(Error::BadField("zone history: reserved"));
        }
        let value = r.get_u64()?;
        match id {
            POOL_CLOCK | POOL_LIFETIME if flags != 0 => Err(Error::BadField("zone history: flags")),
            POOL_CLOCK => Ok(ZoneHistory::Clock(value)),
            POOL_LIFETIME => Ok(ZoneHistory::Lifetime(value)),
            _ if flags & !FLAG_HOT != 0 => Err(Error::BadField("zone history: flags")),
            zone => Ok(ZoneHistory::Zone {
                zone,
                seq: value,
                hot: flags & FLAG_HOT != 0,
            }),
        }
    }
}

/// Checks the order of a section's records as they are read: the clock,
/// then the lifetime, then zones in increasing order.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryOrder {
    /// Records seen: 0 none, 1 the clock, 2 the lifetime, 3 a zone.
    seen: u8,
    last_zone: u32,
}

impl HistoryOrder {
    /// Takes the next record: refuses one out of its place.
    pub fn next(&mut self, rec: &ZoneHistory) -> Result<()> {
        let bad = Err(Error::Corrupt("zone history: record out of order"));
        match *rec {
            ZoneHistory::Clock(_) if self.seen == 0 => self.seen = 1,
            ZoneHistory::Lifetime(_) if self.seen == 1 => self.seen = 2,
            ZoneHistory::Zone { zone, .. }
                if self.seen == 2 || (self.seen == 3 && zone > self.last_zone) =>
            {
                self.seen = 3;
                self.last_zone = zone;
            }
            _ => return bad,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(h: ZoneHistory) -> [u8; ZONE_HISTORY_RECORD_BYTES] {
        let mut b = [0u8; ZONE_HISTORY_RECORD_BYTES];
        h.encode(&mut Writer::new(&mut b)).unwrap();
        assert_eq!(ZoneHistory::decode(&mut Reader::new(&b)).unwrap(), h);
        b
    }

    fn bad(b: &[u8; ZONE_HISTORY_RECORD_BYTES]) -> Error {
        ZoneHistory::decode(&mut Reader::new(b)).unwrap_err()
    }

    #[test]
    fn every_record_round_trips() {
        round(ZoneHistory::Clock(0));
        round(ZoneHistory::Clock(u64::MAX));
        round(ZoneHistory::Lifetime(12_345));
        round(ZoneHistory::Zone {
            zone: 0,
            seq: 7,
            hot: true,
        });
        round(ZoneHistory::Zone {
            zone: POOL_LIFETIME - 1,
            seq: u64::MAX,
            hot: false,
        });
        let z = ZoneHistory::Zone {
            zone: POOL_LIFETIME,
            seq: 1,
            hot: false,
        };
        let mut b = [0u8; ZONE_HISTORY_RECORD_BYTES];
        assert!(z.encode(&mut Writer::new(&mut b)).is_err());
    }

    #[test]
    fn damaged_fields_are_refused() {
        let good = round(ZoneHistory::Zone {
            zone: 3,
            seq: 9,
            hot: true,
        });
        let mut b = good;
        b[5] = 1;
        assert_eq!(bad(&b), Error::BadField("zone history: reserved"));
        let mut b = good;
        b[4] = 2;
        assert_eq!(bad(&b), Error::BadField("zone history: flags"));
        let mut b = round(ZoneHistory::Clock(5));
        b[4] = 1;
        assert_eq!(bad(&b), Error::BadField("zone history: flags"));
        assert_eq!(
            ZoneHistory::decode(&mut Reader::new(&good[..15])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn records_out_of_order_are_refused() {
        let z = |zone| ZoneHistory::Zone {
            zone,
            seq: 1,
            hot: false,
        };
        let mut o = HistoryOrder::default();
        assert!(o.next(&ZoneHistory::Clock(1)).is_ok());
        assert!(o.next(&ZoneHistory::Lifetime(1)).is_ok());
        assert!(o.next(&z(4)).is_ok());
        assert!(o.next(&z(9)).is_ok());
        assert!(o.next(&z(9)).is_err());
        assert!(o.next(&ZoneHistory::Clock(1)).is_err());
        let mut o = HistoryOrder::default();
        assert!(o.next(&z(0)).is_err());
        let mut o = HistoryOrder::default();
        assert!(o.next(&ZoneHistory::Lifetime(1)).is_err());
        let mut o = HistoryOrder::default();
        assert!(o.next(&ZoneHistory::Clock(1)).is_ok());
        assert!(o.next(&z(0)).is_err());
    }
}
