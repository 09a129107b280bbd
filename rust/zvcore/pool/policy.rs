// SPDX-License-Identifier: GPL-2.0
//! Placement policies kept across re-assembly (`format::policy`, feature
//! `INCOMPAT_PLACEMENT`): each volume's placement ([`Pool::migrate`]),
//! each member's class ([`Pool::set_member_class`]), tiering
//! ([`Pool::set_tiering`]) and the member being evacuated
//! ([`Pool::evacuate`]).
//!
//! A change is a journal record `Policy`, queued with the change (the
//! caller commits, as for a volume operation); every checkpoint holds the
//! whole set ([`next_policy`]). Recovery applies the newest checkpoint's
//! set and the records after it ([`Pool::apply_policy`]), then
//! [`Pool::resume_policies`] starts again what was under way: the
//! evacuation, and a walk over every placed volume (a walk of a volume
//! already in place finds nothing to move).

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::policy::{MemberClass, Placement, Policy};
use super::super::format::{Record, Superblock, INCOMPAT_PLACEMENT};
use super::super::gc::pick_victim;
use super::super::geom::{DeviceGeometry, MAX_DEVICES};
use super::super::map::NodeStore;
use super::{Pool, VolEntry};

/// Bit of member `d` in a member set.
fn bit(d: u16) -> u64 {
    1u64.checked_shl(u32::from(d)).unwrap_or(0)
}

/// What a checkpoint's policy section is made of besides the volumes'
/// placements (read before the volumes are borrowed for writing).
#[derive(Clone, Copy, Debug)]
pub(super) struct PolicyState {
    /// Tiering asked for.
    pub(super) tiering: bool,
    /// The member being evacuated.
    pub(super) evac: Option<u16>,
    /// Slow members, and those slow by their device.
    pub(super) slow: u64,
    pub(super) default_slow: u64,
    /// Number of members.
    pub(super) members: u16,
}

/// What the volumes are placed on, all together: the members named, and
/// whether some volume is placed on the fast or the slow class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PlacedUnion {
    members: u64,
    fast: bool,
    slow: bool,
}

impl PlacedUnion {
    /// No volume placed.
    pub(super) const NONE: PlacedUnion = PlacedUnion {
        members: 0,
        fast: false,
        slow: false,
    };

    fn add(&mut self, p: Placement) {
        match p {
            Placement::Any => {}
            Placement::Members(m) => self.members |= m,
            Placement::Fast => self.fast = true,
            Placement::Slow => self.slow = true,
        }
    }
}

/// Where the volumes' records start in [`next_policy`]'s positions
/// (before: tiering, the evacuation, one per member).
const VOLS_AT: usize = 2 + MAX_DEVICES;

/// The policy record at position `from` or the next one that has a
/// record: its position and the record (checkpoints; positions: tiering,
/// evacuation, each member's class, each volume slot's placement). Only
/// settings that differ from the defaults have one.
pub(super) fn next_policy(
    st: &PolicyState,
    vols: &[VolEntry],
    from: usize,
) -> Option<(usize, Policy)> {
    let mut at = from;
    loop {
        match at {
            0 if st.tiering => return Some((at, Policy::Tiering(true))),
            1 if st.evac.is_some() => return Some((at, Policy::Evacuation(st.evac))),
            0 | 1 => {}
            _ if at < VOLS_AT => {
                let d = u16::try_from(at - 2).ok()?;
                if d < st.members && (st.slow ^ st.default_slow) & bit(d) != 0 {
                    let class = if st.slow & bit(d) != 0 {
                        MemberClass::Slow
                    } else {
                        MemberClass::Fast
                    };
                    return Some((at, Policy::Class { member: d, class }));
                }
            }
            _ => {
                let v = vols.get(at - VOLS_AT)?;
                if v.table.is_some() && v.place != Placement::Any {
                    return Some((
                        at,
                        Policy::Placement {
                            vol: v.id,
                            place: v.place,
                        },
                    ));
                }
            }
        }
        at += 1;
    }
}

impl<G, Z, E, V, R, N, D, S> Pool<G, Z, E, V, R, N, D, S>
where
    G: Deref<Target = [DeviceGeometry]>,
    Z: DerefMut<Target = [ZoneInfo]>,
    E: DerefMut<Target = [u64]>,
    V: DerefMut<Target = [VolEntry]>,
    R: DerefMut<Target = [Record]>,
    N: NodeStore,
    D: DerefMut<Target = [DevState]>,
    S: DerefMut<Target = Superblock>,
{
    /// Sets [`INCOMPAT_PLACEMENT`] in the superblock (once): a new
    /// superblock generation, written by the next journal commit before
    /// the first `Policy` record (as for `enable_sharing`).
    pub(in super::super) fn enable_placement(&mut self) {
        if self.sb.incompat & INCOMPAT_PLACEMENT == 0 {
            self.sb.incompat |= INCOMPAT_PLACEMENT;
            self.sb.generation = self.sb.generation.saturating_add(1);
            self.sb_dirty = true;
        }
    }

    /// Whether the pool keeps placement policies (checkpoints then hold
    /// a policy section, even an empty one).
    pub fn keeps_policies(&self) -> bool {
        self.sb.incompat & INCOMPAT_PLACEMENT != 0
    }

    /// Queues the record of a policy change ([`Error::Busy`]: the record
    /// queue is full; commit and retry). The caller applies the change
    /// after this succeeded.
    pub(super) fn journal_policy(&mut self, p: Policy) -> Result<()> {
        self.reserve(1)?;
        self.enable_placement();
        self.push_reserved(Record::Policy(p));
        Ok(())
    }

    /// The settings a checkpoint's policy section is made of.
    pub(super) fn policy_state(&self) -> PolicyState {
        PolicyState {
            tiering: self.alloc.tiering_asked(),
            // Recovery's, until the assembly resumes it.
            evac: self.evac.map(|(d, _, _)| d).or(self.evac_resume),
            slow: self.alloc.slow(),
            default_slow: self.alloc.default_slow_members(),
            members: self.alloc.geom().nr_devices(),
        }
    }

    /// A checkpoint's policy section begins: every setting back to its
    /// default (the section holds them all).
    pub(in super::super) fn policy_clear(&mut self) {
        self.enable_placement();
        self.alloc.set_tiering(false);
        self.alloc.set_slow(self.alloc.default_slow_members());
        self.evac_resume = None;
        for v in self.vols.iter_mut() {
            v.place = Placement::Any;
        }
        self.placed = PlacedUnion::NONE;
    }

    /// Applies policy `p` read from a checkpoint or the journal (no
    /// record). [`Error::Corrupt`] for a volume or member that does not
    /// exist. The evacuation is only noted: [`Self::resume_policies`]
    /// starts it once the pool is assembled.
    pub(in super::super) fn apply_policy(&mut self, p: Policy) -> Result<()> {
        self.enable_placement();
        let n = self.alloc.geom().nr_devices();
        match p {
            Policy::Placement { vol, place } => {
                if let Placement::Members(m) = place {
                    if m & !all_members(n) != 0 {
                        return Err(Error::Corrupt("policy: placement on no member"));
                    }
                }
                let i = self
                    .vol_index(vol)
                    .map_err(|_| Error::Corrupt("policy: unknown volume"))?;
                if let Some(v) = self.vols.get_mut(i) {
                    v.place = place;
                }
                // O(1) per record (a checkpoint or a replay may bring one
                // per volume): the union only grows here, which costs at
                // most a look at members no volume is placed on any more.
                self.placed.add(place);
            }
            Policy::Class { member, class } => {
                if member >= n {
                    return Err(Error::Corrupt("policy: unknown member"));
                }
                self.apply_class(member, class);
            }
            Policy::Evacuation(m) => {
                if m.is_some_and(|d| d >= n) {
                    return Err(Error::Corrupt("policy: unknown member"));
                }
                self.evac_resume = m;
            }
            Policy::Tiering(on) => self.alloc.set_tiering(on),
        }
        Ok(())
    }

    /// Recounts [`PlacedUnion`] over the volumes (a placement changed).
    pub(super) fn refresh_placed(&mut self) {
        let mut u = PlacedUnion::NONE;
        for v in self.vols.iter().filter(|v| v.table.is_some()) {
            u.add(v.place);
        }
        self.placed = u;
        self.placed_quiet_until = 0;
    }

    /// Members some volume is placed on whose free zones ran short (fewer
    /// than the GC reserve and two more), bit per member: GC collects
    /// their zones in the background, as their volumes' copies must stay
    /// there. O(members).
    pub(super) fn placed_short(&self) -> u64 {
        let u = self.placed;
        if u == PlacedUnion::NONE || self.alloc.written_total() < self.placed_quiet_until {
            return 0;
        }
        let slow = self.alloc.slow();
        let mut m = u.members;
        if u.fast {
            m |= !slow;
        }
        if u.slow {
            m |= slow;
        }
        m &= self.alloc.usable_members();
        let floor = self.cfg.alloc.gc_reserve.saturating_add(2);
        (0..self.alloc.geom().nr_devices())
            .filter(|d| m & bit(*d) != 0 && self.alloc.member_free_zones(*d) < floor)
            .fold(0, |a, d| a | bit(d))
    }

    /// GC's victim while placed members run short ([`Self::placed_short`]):
    /// the best zone there that `skip` does not exclude and that is at
    /// most three quarters live (collecting a fuller one frees nothing
    /// when its copies stay on the same member). When there is none, call
    /// [`Self::placed_quiet`].
    pub(super) fn placed_victim(&self, skip: impl Fn(u32) -> bool) -> Option<u32> {
        let short = self.placed_short();
        if short == 0 {
            return None;
        }
        let a = &self.alloc;
        let g = a.geom();
        pick_victim(a, self.cfg.policy, |z| {
            skip(z)
                || g.zone_dev(z).is_none_or(|(d, _)| short & bit(d) == 0)
                || a.zone(z)
                    .zip(g.zone_cap(z))
                    .is_none_or(|(zi, cap)| zi.valid().saturating_mul(4) > cap.saturating_mul(3))
        })
    }

    /// The placed members short of space have nothing GC can collect:
    /// they are not looked at again before a zone's worth of blocks was
    /// written.
    pub(super) fn placed_quiet(&mut self) {
        let zone = self
            .alloc
            .geom()
            .devices()
            .iter()
            .map(|d| d.zone_cap_blocks)
            .max();
        self.placed_quiet_until = self.alloc.written_total().saturating_add(zone.unwrap_or(1));
    }

    /// Whether GC has work besides freeing space: an evacuation or a
    /// migration with data to move, tiering's demotion, placed members
    /// short of space, copies to repair (`repair.rs`). Cheap (the write
    /// path's pacing asks).
    pub fn gc_background(&self) -> bool {
        self.moving_data() || self.tier_demoting() || self.placed_short() != 0 || self.repair_due()
    }

    /// Sets member `d`'s class in the allocator.
    fn apply_class(&mut self, d: u16, class: MemberClass) {
        let slow = match class {
            MemberClass::Default => self.alloc.default_slow_members() & bit(d) != 0,
            MemberClass::Fast => false,
            MemberClass::Slow => true,
        };
        let m = self.alloc.slow();
        self.alloc
            .set_slow(if slow { m | bit(d) } else { m & !bit(d) });
    }

    /// After an assembly: starts again the evacuation the metadata names
    /// (unless its member is gone or removed: then it is dropped) and a
    /// walk over every placed volume. Returns the evacuated member, if
    /// any. Nothing to do on a read-only pool.
    pub fn resume_policies(&mut self) -> Option<u16> {
        if self.live().is_err() {
            return None;
        }
        // (Mirrored volumes too: a degraded write may have put a copy on
        // the other side, `mirror`.)
        for v in self.vols.iter_mut() {
            v.place_walk = v.table.is_some() && v.place != Placement::Any;
        }
        self.next_walk();
        let d = self.evac_resume.take()?;
        let off = self.alloc.lost() | self.alloc.geom().removed();
        if off & bit(d) != 0 {
            // Journalled so that the next assembly does not try again.
            let _ = self.journal_policy(Policy::Evacuation(None));
            return None;
        }
        self.start_evacuation(d);
        Some(d)
    }

    /// Sets member `d`'s class (`slow`: an SMR disk, or any member the
    /// administrator wants used for cold data), kept on disk (commit
    /// after). [`Error::Invalid`] for a member that does not exist;
    /// [`Error::Busy`] when the record queue is full (commit, retry).
    pub fn set_member_class(&mut self, d: u16, slow: bool) -> Result<()> {
        self.live()?;
        if d >= self.alloc.geom().nr_devices() {
            return Err(Error::Invalid("member class: no such member"));
        }
        if self.member_class(d) == slow {
            return Ok(());
        }
        let class = if (self.alloc.default_slow_members() & bit(d) != 0) == slow {
            MemberClass::Default
        } else if slow {
            MemberClass::Slow
        } else {
            MemberClass::Fast
        };
        self.journal_policy(Policy::Class { member: d, class })?;
        self.apply_class(d, class);
        Ok(())
    }

    /// Turns tiering on or off (in effect only with members of both
    /// classes: [`Self::member_class`]), kept on disk (commit after).
    /// [`Error::Busy`] when the record queue is full (commit, retry).
    pub fn set_tiering(&mut self, on: bool) -> Result<()> {
        self.live()?;
        if self.alloc.tiering_asked() == on {
            return Ok(());
        }
        self.journal_policy(Policy::Tiering(on))?;
        self.alloc.set_tiering(on);
        Ok(())
    }

    /// Members a placement stands for now (0: any member): the members
    /// named or of the class that take blocks; none of them (all
    /// evacuated, removed or gone, or no member of the class) means any.
    pub(super) fn placement_members(&self, place: Placement) -> u64 {
        let usable = self.alloc.usable_members();
        let m = match place {
            Placement::Any => return 0,
            Placement::Members(m) => m,
            Placement::Fast => !self.alloc.slow(),
            Placement::Slow => self.alloc.slow(),
        } & usable;
        if m == usable {
            0
        } else {
            m
        }
    }
}

/// Every member of a pool of `n`, bit per member.
pub(super) fn all_members(n: u16) -> u64 {
    1u64.checked_shl(u32::from(n)).map_or(u64::MAX, |b| b - 1)
}
