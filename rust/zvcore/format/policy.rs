// SPDX-License-Identifier: GPL-2.0
//! Placement policies (feature `INCOMPAT_PLACEMENT`): where a volume's
//! blocks go, each member's class, whether tiering is on, and the member
//! being evacuated. Journal records `Policy` carry each change; every
//! checkpoint (full or delta) holds the whole set in its section
//! [`POLICY`], so loading a checkpoint replaces what an earlier one of its
//! chain said, and the journal after it replays the changes since.
//!
//! An incompat section: a reader that does not know it refuses the
//! checkpoint (the feature bit makes it refuse the pool first). One
//! record, [`POLICY_RECORD_BYTES`] bytes, little-endian, the same in the
//! journal and the checkpoint:
//!
//! | off | size | field                                                       |
//! |----:|-----:|-------------------------------------------------------------|
//! | 0   | 1    | what: 1 volume placement, 2 member class, 3 evacuation, 4 tiering |
//! | 1   | 1    | value (below)                                               |
//! | 2   | 2    | reserved, zero                                              |
//! | 4   | 4    | target: volume id (1), member index < 64 (2, 3), zero (4)  |
//! | 8   | 8    | members, bit per member (placement 1 only, nonzero), else zero |
//!
//! Values: placement 0 any member, 1 the members named, 2 the fast class,
//! 3 the slow class; member class 0 the device's default (SMR slow, others
//! fast), 1 fast, 2 slow; evacuation 0 none (target zero), 1 the target
//! member; tiering 0 off, 1 on.

use super::super::codec::{Reader, Writer};
use super::super::error::{Error, Result};
use super::super::geom::MAX_DEVICES;
use super::checkpoint::section;

/// The section kind (incompat), number 9.
pub const POLICY: u32 = 9;
/// Bytes of a [`Policy`] record.
pub const POLICY_RECORD_BYTES: usize = 16;

// The number must not collide with another section's.
const _: () = assert!(POLICY > section::COPIES);

const WHAT_PLACEMENT: u8 = 1;
const WHAT_CLASS: u8 = 2;
const WHAT_EVACUATION: u8 = 3;
const WHAT_TIERING: u8 = 4;

/// Where a volume's new blocks and copies go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Any member (no policy).
    #[default]
    Any,
    /// The members named (bit per member, nonzero).
    Members(u64),
    /// The members of the fast class.
    Fast,
    /// The members of the slow class.
    Slow,
}

/// A member's class as set by the administrator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemberClass {
    /// The device's default: SMR slow, others fast.
    #[default]
    Default,
    /// Fast.
    Fast,
    /// Slow.
    Slow,
}

/// One placement policy setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Volume `vol`'s placement.
    Placement {
        /// Volume id.
        vol: u32,
        /// Where its blocks go.
        place: Placement,
    },
    /// Member `member`'s class.
    Class {
        /// Member index.
        member: u16,
        /// Its class.
        class: MemberClass,
    },
    /// The member being evacuated (`None`: none).
    Evacuation(Option<u16>),
    /// Tiering on or off.
    Tiering(bool),
}

impl Policy {
    /// Encodes the record into `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let (what, value, target, members) = match *self {
            Policy::Placement { vol, place } => {
                let (v, m) = match place {
                    Placement::Any => (0, 0),
                    Placement::Members(m) => (1, m),
                    Placement::Fast => (2, 0),
                    Placement::Slow => (3, 0),
                };
                (WHAT_PLACEMENT, v, vol, m)
            }
            Policy::Class { member, class } => {
                let v = match class {
                    MemberClass::Default => 0,
                    MemberClass::Fast => 1,
                    MemberClass::Slow => 2,
                };
                (WHAT_CLASS, v, u32::from(member), 0)
            }
            Policy::Evacuation(m) => (
                WHAT_EVACUATION,
                u8::from(m.is_some()),
                m.map_or(0, u32::from),
                0,
            ),
            Policy::Tiering(on) => (WHAT_TIERING, u8::from(on), 0, 0),
        };
        w.put_u8(what)?;
        w.put_u8(value)?;
        w.put_u16(0)?;
        w.put_u32(target)?;
        w.put_u64(members)
    }

    /// Decodes and validates one record.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let what = r.get_u8()?;
        let value = r.get_u8()?;
        if r.get_u16()? != 0 {
            return Err(Error::BadField("policy: reserved"));
        }
        let target = r.get_u32()?;
        let members = r.get_u64()?;
        let member = || {
            u16::try_from(target)
                .ok()
                .filter(|m| usize::from(*m) < MAX_DEVICES)
                .ok_or(Error::BadField("policy: member"))
        };
        if members != 0 && !(what == WHAT_PLACEMENT && value == 1) {
            return Err(Error::BadField("policy: members"));
        }
        Ok(match (what, value) {
            (WHAT_PLACEMENT, _) => {
                let place = match value {
                    0 => Placement::Any,
                    1 if members != 0 => Placement::Members(members),
                    2 => Placement::Fast,
                    3 => Placement::Slow,
                    _ => return Err(Error::BadField("policy: placement")),
                };
                Policy::Placement { vol: target, place }
            }
            (WHAT_CLASS, 0..=2) => Policy::Class {
                member: member()?,
                class: match value {
                    0 => MemberClass::Default,
                    1 => MemberClass::Fast,
                    _ => MemberClass::Slow,
                },
            },
            (WHAT_EVACUATION, 0) if target == 0 => Policy::Evacuation(None),
            (WHAT_EVACUATION, 1) => Policy::Evacuation(Some(member()?)),
            (WHAT_TIERING, 0 | 1) if target == 0 => Policy::Tiering(value == 1),
            (WHAT_CLASS | WHAT_EVACUATION | WHAT_TIERING, _) => {
                return Err(Error::BadField("policy: value"))
            }
            _ => return Err(Error::BadField("policy: kind")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(p: Policy) -> [u8; POLICY_RECORD_BYTES] {
        let mut b = [0u8; POLICY_RECORD_BYTES];
        p.encode(&mut Writer::new(&mut b)).unwrap();
        assert_eq!(Policy::decode(&mut Reader::new(&b)).unwrap(), p);
        b
    }

    fn bad(b: &[u8; POLICY_RECORD_BYTES]) -> Error {
        Policy::decode(&mut Reader::new(b)).unwrap_err()
    }

    #[test]
    fn every_setting_round_trips() {
        for place in [
            Placement::Any,
            Placement::Members(0b101),
            Placement::Members(1 << 63),
            Placement::Fast,
            Placement::Slow,
        ] {
            round(Policy::Placement { vol: 7, place });
        }
        for class in [MemberClass::Default, MemberClass::Fast, MemberClass::Slow] {
            round(Policy::Class { member: 63, class });
        }
        round(Policy::Evacuation(None));
        round(Policy::Evacuation(Some(0)));
        round(Policy::Evacuation(Some(5)));
        round(Policy::Tiering(true));
        round(Policy::Tiering(false));
    }

    #[test]
    fn damaged_fields_are_refused() {
        let good = round(Policy::Placement {
            vol: 1,
            place: Placement::Members(3),
        });
        let mut b = good;
        b[2] = 1;
        assert_eq!(bad(&b), Error::BadField("policy: reserved"));
        let mut b = good;
        b[0] = 0;
        assert_eq!(bad(&b), Error::BadField("policy: members"));
        let mut b = good;
        b[8..].fill(0);
        assert_eq!(bad(&b), Error::BadField("policy: placement"));
        let mut b = good;
        b[1] = 4;
        assert_eq!(bad(&b), Error::BadField("policy: members"));
        // Members only with placement 1.
        let mut b = round(Policy::Placement {
            vol: 1,
            place: Placement::Fast,
        });
        b[8] = 1;
        assert_eq!(bad(&b), Error::BadField("policy: members"));
        let mut b = round(Policy::Class {
            member: 1,
            class: MemberClass::Slow,
        });
        b[4] = 64;
        assert_eq!(bad(&b), Error::BadField("policy: member"));
        b[4] = 1;
        b[1] = 3;
        assert_eq!(bad(&b), Error::BadField("policy: value"));
        let mut b = round(Policy::Evacuation(None));
        b[4] = 1;
        assert_eq!(bad(&b), Error::BadField("policy: value"));
        let mut b = round(Policy::Tiering(true));
        b[1] = 2;
        assert_eq!(bad(&b), Error::BadField("policy: value"));
        b[1] = 1;
        b[5] = 1;
        assert_eq!(bad(&b), Error::BadField("policy: value"));
        let mut b = good;
        b[0] = 5;
        b[8..].fill(0);
        assert_eq!(bad(&b), Error::BadField("policy: kind"));
    }
}
