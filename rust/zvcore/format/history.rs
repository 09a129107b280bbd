// SPDX-License-Identifier: GPL-2.0
//! Checkpoint section [`HISTORY`]: events in the pool's life that an
//! administrator must be able to see later, today the last explicit rewind
//! (assembly past damaged metadata, see `recovery`).
//!
//! A compat section (bit 31 set): a reader that does not know it skips it.
//! One record, 64 bytes, little-endian:
//!
//! | off | size | field                                                  |
//! |----:|-----:|--------------------------------------------------------|
//! | 0   | 1    | tag = 1 (`REWIND`)                                     |
//! | 1   | 3    | reserved, zero                                         |
//! | 4   | 4    | number of rewinds in the pool's life (>= 1)            |
//! | 8   | 8    | first journal sequence not replayed                    |
//! | 16  | 8    | highest journal sequence dropped                       |
//! | 24  | 8    | checkpoint generation lost (0 = none)                  |
//! | 32  | 8    | journal blocks dropped (valid ones after the damage)   |
//! | 40  | 8    | records in them                                        |
//! | 48  | 8    | checkpoint generation the pool was rewound to          |
//! | 56  | 8    | reserved, zero                                         |

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::checkpoint::{section, SECTION_COMPAT};

/// The section kind: compat, number 6.
pub const HISTORY: u32 = SECTION_COMPAT | 6;
/// Bytes of a [`Rewind`] record.
pub const REWIND_RECORD_BYTES: usize = 64;
const TAG_REWIND: u8 = 1;

// The number must not collide with a non-compat section.
const _: () = assert!(HISTORY & !SECTION_COMPAT > section::SHARING);

/// The last explicit rewind of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewind {
    /// Rewinds in the pool's life.
    pub count: u32,
    /// First journal sequence that was not replayed.
    pub from_seq: u64,
    /// Highest journal sequence dropped.
    pub to_seq: u64,
    /// Checkpoint generation that was lost (0 = none).
    pub lost_gen: u64,
    /// Valid journal blocks dropped.
    pub blocks: u64,
    /// Records in them.
    pub records: u64,
    /// Checkpoint generation the pool was rewound to.
    pub to_gen: u64,
}

impl Rewind {
    /// Encodes the record into `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put_u8(TAG_REWIND)?;
        w.put_bytes(&[0; 3])?;
        w.put_u32(self.count)?;
        w.put_u64(self.from_seq)?;
        w.put_u64(self.to_seq)?;
        w.put_u64(self.lost_gen)?;
        w.put_u64(self.blocks)?;
        w.put_u64(self.records)?;
        w.put_u64(self.to_gen)?;
        w.put_u64(0)
    }

    /// Decodes one record. Unknown tags are `Ok(None)` after skipping the
    /// rest of the section data (a later version may add records).
    pub fn decode(r: &mut Reader<'_>) -> Result<Option<Self>> {
        let tag = r.get_u8()?;
        if tag != TAG_REWIND {
            r.skip(r.remaining())?;
            return Ok(None);
        }
        let bad = Error::BadField("history: rewind");
        if r.get_bytes(3)? != [0; 3] {
            return Err(bad);
        }
        let v = Rewind {
            count: r.get_u32()?,
            from_seq: r.get_u64()?,
            to_seq: r.get_u64()?,
            lost_gen: r.get_u64()?,
            blocks: r.get_u64()?,
            records: r.get_u64()?,
            to_gen: r.get_u64()?,
        };
        let too_big = [v.from_seq, v.to_seq, v.lost_gen, v.to_gen]
            .iter()
            .any(|&g| g > super::MAX_GENERATION);
        if r.get_u64()? != 0 || too_big || v.count == 0 || v.to_seq < v.from_seq.saturating_sub(1) {
            return Err(bad);
        }
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let v = Rewind {
            count: 2,
            from_seq: 10,
            to_seq: 20,
            lost_gen: 7,
            blocks: 9,
            records: 300,
            to_gen: 5,
        };
        let mut b = [0u8; REWIND_RECORD_BYTES];
        v.encode(&mut Writer::new(&mut b)).unwrap();
        assert_eq!(Rewind::decode(&mut Reader::new(&b)), Ok(Some(v)));
        let mut bad = b;
        bad[2] = 1;
        assert!(Rewind::decode(&mut Reader::new(&bad)).is_err());
        let mut zero = b;
        zero[4..8].fill(0);
        assert!(Rewind::decode(&mut Reader::new(&zero)).is_err());
        let mut unknown = b;
        unknown[0] = 9;
        assert_eq!(Rewind::decode(&mut Reader::new(&unknown)), Ok(None));
        assert!(Rewind::decode(&mut Reader::new(&b[..20])).is_err());
    }
}
