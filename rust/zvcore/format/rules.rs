// SPDX-License-Identifier: GPL-2.0
//! Checkpoint section [`RULES`]: the space rules of volumes (a reservation
//! and a quota, see `pool::quota`; feature `RO_COMPAT_RESERVATION`), one
//! record per volume that has one. Journal records `VolumeReserve` carry
//! the changes between checkpoints.
//!
//! A compat section (bit 31 set): a reader that does not know it skips it.
//! Such a reader also does not know the ro-compat feature, so it reads the
//! pool without writing it, and without rules nothing is refused wrongly.
//! One record, 24 bytes, little-endian:
//!
//! | off | size | field                                   |
//! |----:|-----:|-----------------------------------------|
//! | 0   | 4    | volume id                               |
//! | 4   | 4    | reserved, zero                          |
//! | 8   | 8    | reserved blocks (0 = none)              |
//! | 16  | 8    | quota in blocks (0 = none)              |
//!
//! A record with both fields 0 is never written; reading one is harmless.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::checkpoint::{section, SECTION_COMPAT};
use super::history::HISTORY;

/// The section kind: compat, number 7.
pub const RULES: u32 = SECTION_COMPAT | 7;
/// Bytes of a [`RuleRecord`].
pub const RULE_RECORD_BYTES: usize = 24;

// The number must not collide with another section's.
const _: () = assert!(RULES & !SECTION_COMPAT > section::CHANGES && RULES != HISTORY);

/// The space rules of one volume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleRecord {
    /// Volume id.
    pub vol: u32,
    /// Reserved blocks.
    pub reserve: u64,
    /// Quota in blocks.
    pub quota: u64,
}

impl RuleRecord {
    /// Encodes the record into `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put_u32(self.vol)?;
        w.put_u32(0)?;
        w.put_u64(self.reserve)?;
        w.put_u64(self.quota)
    }

    /// Decodes one record.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let vol = r.get_u32()?;
        if r.get_u32()? != 0 {
            return Err(Error::BadField("rules: reserved"));
        }
        Ok(RuleRecord {
            vol,
            reserve: r.get_u64()?,
            quota: r.get_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let v = RuleRecord {
            vol: 7,
            reserve: 1 << 40,
            quota: 3,
        };
        let mut b = [0u8; RULE_RECORD_BYTES];
        v.encode(&mut Writer::new(&mut b)).unwrap();
        assert_eq!(RuleRecord::decode(&mut Reader::new(&b)), Ok(v));
        let mut bad = b;
        bad[5] = 1;
        assert_eq!(
            RuleRecord::decode(&mut Reader::new(&bad)),
            Err(Error::BadField("rules: reserved"))
        );
        assert!(RuleRecord::decode(&mut Reader::new(&b[..20])).is_err());
    }
}
