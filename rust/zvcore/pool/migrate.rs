// SPDX-License-Identifier: GPL-2.0
//! Moving a volume's data to chosen members ([`Pool::migrate`]): "(1) move,
//! (2) update the block table", with GC's relocation.
//!
//! A migration walks the volume's block table from a cursor and plans, as a
//! GC batch, the extents whose blocks lie on other members than the chosen
//! ones; their copies are placed on the chosen members only, and
//! [`Pool::gc_end`] remaps what is still mapped to the old places (a user
//! write that happened meanwhile wins; blocks shared with snapshots and
//! clones move for every sharer, so they keep sharing). The volume's new
//! writes go to the chosen members too. The GC worker runs these batches
//! whenever GC is not urgent; the migration is done once a walk from the
//! start finds nothing left to move. The placement is kept on disk
//! (`pool::policy`): the volume's new writes and GC's copies of its blocks
//! keep going to its members after the walk, and after a re-assembly every
//! placed volume is walked again. Several volumes may be placed; their
//! walks run one after the other.

use core::ops::{Deref, DerefMut};

use super::super::alloc::{DevState, ZoneInfo};
use super::super::error::{Error, Result};
use super::super::format::policy::{Placement, Policy};
use super::super::format::{Record, Superblock};
use super::super::geom::{DeviceGeometry, Stream};
use super::super::map::{MapExtent, NodeStore};
use super::policy::all_members;
use super::{Pool, RelocItem, VolEntry, MAX_GC_ITEM};

/// A migration in progress or done ([`Pool::migration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// The volume.
    pub vol: u32,
    /// Its placement.
    pub place: Placement,
    /// The members that placement stands for now (bit per member).
    pub members: u64,
    /// Blocks moved so far.
    pub moved_blocks: u64,
    /// A walk of the whole volume found nothing left to move.
    pub done: bool,
}

/// A placement walk that ended after moving data ([`Pool::walk_end`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkEnd {
    /// One more per such walk since assembly (0: none yet).
    pub seq: u32,
    /// The table walked (a volume, or a mirrored volume's companion).
    pub vol: u32,
    /// Blocks it moved.
    pub moved_blocks: u64,
}

/// The engine's state of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MigState {
    pub(super) m: Migration,
    /// Where the next batch's walk starts (volume block).
    pub(super) cursor: u64,
}

/// Bit of member `d` in a member set.
fn bit(d: u16) -> u64 {
    1u64.checked_shl(u32::from(d)).unwrap_or(0)
}

/// Copies of a migration go with the volume's cold data.
const MIGRATION_STREAM: Stream = Stream::UserCold;

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
    /// Places volume `vol`'s data on chosen members (or a class) and
    /// moves what lies elsewhere, or ends a placement (`Placement::Any`;
    /// what moved stays moved); `None` ends the placement of the volume
    /// walked last. Kept on disk: commit after (a `Policy` record).
    /// Several volumes may be placed; their walks run in turn.
    ///
    /// [`Error::NotFound`] for no such volume; [`Error::Invalid`] for an
    /// empty member set, a member that does not exist, is added or is being
    /// evacuated, a class without a member that takes blocks, a read-only
    /// volume (a snapshot: migrate the volume, its snapshots' shared blocks
    /// move with it); [`Error::NoSpace`] if the members cannot hold the
    /// volume (their capacity less their live blocks); [`Error::Busy`] when
    /// the record queue is full (commit, retry). Nothing changes on error.
    pub fn migrate(&mut self, target: Option<(u32, Placement)>) -> Result<()> {
        self.live()?;
        let (vol, place) = match target {
            Some(t) => t,
            None => match self.mig {
                Some(s) => (s.m.vol, Placement::Any),
                None => return Ok(()),
            },
        };
        if self.mirror_side(vol).is_some() {
            if target.is_none() {
                // A walk of it ends; its placement stays.
                self.mig = None;
                self.next_walk();
                return Ok(());
            }
            return Err(Error::Invalid(
                "migrate: a mirrored volume keeps its two sides",
            ));
        }
        let i = match self.vol_index(vol) {
            Ok(i) => i,
            // The volume walked last was deleted: its walk is over.
            Err(_) if target.is_none() => {
                self.mig = None;
                self.next_walk();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if place == Placement::Any {
            self.journal_policy(Policy::Placement { vol, place })?;
            if let Some(v) = self.vols.get_mut(i) {
                v.place = place;
                v.place_walk = false;
            }
            self.refresh_placed();
            if self.mig.is_some_and(|s| s.m.vol == vol) {
                self.mig = None;
                self.next_walk();
            }
            return Ok(());
        }
        if self.vols.get(i).is_none_or(|v| v.read_only()) {
            return Err(Error::Invalid("migrate: a snapshot"));
        }
        let n = self.alloc.geom().nr_devices();
        let usable = self.alloc.usable_members();
        let members = match place {
            Placement::Members(m) => {
                if m == 0 || m & !all_members(n) != 0 || m & !usable != 0 {
                    return Err(Error::Invalid("migrate: members"));
                }
                m
            }
            Placement::Fast => !self.alloc.slow() & usable,
            Placement::Slow => self.alloc.slow() & usable,
            Placement::Any => 0,
        };
        if members == 0 {
            return Err(Error::Invalid("migrate: no member of that class"));
        }
        let mapped = self.vol_space(vol).map(|s| s.mapped).unwrap_or(0);
        let room: u64 = (0..n)
            .filter(|d| members & bit(*d) != 0)
            .map(|d| {
                let cap = self.alloc.geom().device(d).map_or(0, |g| {
                    u64::from(g.nr_data_zones()).saturating_mul(g.zone_cap_blocks)
                });
                cap.saturating_sub(self.alloc.dev_valid_blocks(d))
            })
            .sum();
        if mapped > room {
            return Err(Error::NoSpace);
        }
        self.journal_policy(Policy::Placement { vol, place })?;
        if let Some(v) = self.vols.get_mut(i) {
            v.place = place;
            v.place_walk = true;
        }
        self.refresh_placed();
        if self.mig.is_some_and(|s| s.m.vol == vol) {
            self.mig = None;
        }
        self.next_walk();
        Ok(())
    }

    /// Starts the walk of the next placed volume waiting for one, unless
    /// a walk is under way.
    pub(super) fn next_walk(&mut self) {
        if self.mig.is_some_and(|s| !s.m.done) {
            return;
        }
        let Some(v) = self.vols.iter_mut().find(|v| v.place_walk) else {
            return;
        };
        v.place_walk = false;
        let (vol, place) = (v.id, v.place);
        if v.table.is_none() || place == Placement::Any {
            return;
        }
        self.mig = Some(MigState {
            m: Migration {
                vol,
                place,
                members: 0,
                moved_blocks: 0,
                done: false,
            },
            cursor: 0,
        });
    }

    /// The last placement walk that ended after moving data: its
    /// sequence number (one more per such walk since assembly), table and
    /// blocks moved (`seq` 0: none yet). Walks follow each other at once
    /// (several placed volumes, a mirrored volume's two tables), so
    /// [`Self::migration`] may already show the next one.
    pub fn walk_end(&self) -> WalkEnd {
        self.walk_end
    }

    /// The migration in progress or done, if any.
    pub fn migration(&self) -> Option<Migration> {
        self.mig.map(|s| Migration {
            members: self.placement_members(s.m.place),
            ..s.m
        })
    }

    /// The members volume `vol`'s new blocks and copies go to (0: any).
    pub(super) fn placement_of(&self, vol: u32) -> u64 {
        if !self.keeps_policies() {
            return 0;
        }
        self.vol_index(vol)
            .ok()
            .and_then(|i| self.vols.get(i))
            .map_or(0, |v| self.placement_members(v.place))
    }

    /// Volume `vol`'s blocks went elsewhere than its placement (its
    /// members could not take them): walk it again later.
    pub(super) fn placement_missed(&mut self, vol: u32) {
        if let Some(v) = self.vol_index(vol).ok().and_then(|i| self.vols.get_mut(i)) {
            v.place_walk = v.place != Placement::Any;
        }
        self.next_walk();
    }

    /// A migration batch ([`Self::gc_begin_limited`] when a migration is
    /// under way and GC is not urgent): the next extents of the volume not
    /// on its members, with their copies placed there. `Ok(0)` once the
    /// migration is done (or the volume is gone).
    pub(super) fn migrate_plan(&mut self, out: &mut [RelocItem], max_blocks: u64) -> Result<usize> {
        let Some(mut st) = self.mig.filter(|s| !s.m.done) else {
            return Ok(0);
        };
        // A mirrored volume's copies go to its side (or, with none of it
        // left, to members apart from the other copy's: `mirror_side`).
        let members = self
            .mirror_side(st.m.vol)
            .unwrap_or_else(|| self.placement_members(st.m.place));
        let Some(table) = self
            .vol_index(st.m.vol)
            .ok()
            .and_then(|i| self.vols.get(i)?.table)
        else {
            // Deleted meanwhile: nothing left to move.
            st.m.done = true;
            self.mig = Some(st);
            self.next_walk();
            return Ok(0);
        };
        let item_max = self.cfg.gc_item_max.clamp(1, MAX_GC_ITEM);
        let mut n = 0usize;
        let mut want = 0u64;
        // At most two walks: from the cursor to the end, then from the
        // start; a walk from the start to the end that finds nothing ends
        // the migration.
        for _ in 0..2 {
            let from_start = st.cursor == 0;
            let mut lba = st.cursor;
            while n < out.len() && want < max_blocks {
                let Some(e) = table.next_extent(&self.nodes, lba) else {
                    lba = table.size();
                    break;
                };
                let mut off = 0u64;
                while off < e.len && n < out.len() && want < max_blocks {
                    let a = e.addr.saturating_add(off);
                    let g = self.alloc.geom();
                    let (Some(loc), Some(z)) = (g.locate(a), g.zone_of(a)) else {
                        return Err(Error::Corrupt("migrate: address"));
                    };
                    let zend = g
                        .zone_start(z)
                        .zip(g.zone_cap(z))
                        .map_or(a.saturating_add(1), |(s, c)| s.saturating_add(c));
                    let mut len = (e.len - off)
                        .min(item_max)
                        .min(zend.saturating_sub(a).max(1))
                        .min(max_blocks.saturating_sub(want));
                    let lba = e.lba.saturating_add(off);
                    // Blocks on a lost member cannot be read: they stay,
                    // unless they are a mirrored volume's copies, rebuilt
                    // from the other copies.
                    let read = if members == 0 || members & bit(loc.dev) != 0 {
                        None
                    } else if self.alloc.lost() & bit(loc.dev) == 0 {
                        Some(a)
                    } else {
                        self.rebuild_source(st.m.vol, lba, len, members)
                            .map(|(r, n)| {
                                len = len.min(n);
                                r
                            })
                    };
                    if let (Some(read), Some(slot)) = (read, out.get_mut(n)) {
                        slot.src = MapExtent {
                            vol: st.m.vol,
                            lba,
                            len,
                            addr: a,
                        };
                        slot.read = read;
                        n += 1;
                        want = want.saturating_add(len);
                    }
                    off = off.saturating_add(len);
                }
                lba = e.lba.saturating_add(off);
            }
            st.cursor = lba;
            if n > 0 {
                break;
            }
            if from_start {
                st.m.done = true;
                if st.m.moved_blocks > 0 {
                    self.walk_end = WalkEnd {
                        seq: self.walk_end.seq.wrapping_add(1),
                        vol: st.m.vol,
                        moved_blocks: st.m.moved_blocks,
                    };
                }
                break;
            }
            st.cursor = 0;
        }
        if n == 0 {
            self.mig = Some(st);
            self.next_walk();
            return Ok(0);
        }
        self.alloc.set_only(members);
        let (k, err) = self.place_copies(out, n, max_blocks, MIGRATION_STREAM, false);
        self.alloc.set_only(0);
        if k == 0 {
            // Nothing placed: the walk resumes where this batch began
            // (`self.mig` is unchanged).
            err?;
            return Ok(0);
        }
        // The next walk starts after the last item placed (cut at a zone
        // end: its rest is found then).
        if let Some(last) = out.get(k.saturating_sub(1)) {
            st.cursor = last.src.lba.saturating_add(last.src.len);
        }
        self.mig = Some(st);
        self.gc_busy = true;
        self.mig_batch = true;
        Ok(k)
    }
}
