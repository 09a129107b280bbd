// SPDX-License-Identifier: GPL-2.0
//! Membership changes of an active pool, with I/O going on: a member
//! added (`devices` written while the pool is enabled; `zvpoolctl pool
//! add`), a member's data evacuated (`evacuate`; `zvpoolctl pool
//! evacuate`: the engine excludes it and GC moves its data, see
//! `zvcore::pool::members`), and a member removed (`remove`; `zvpoolctl
//! pool remove`: once evacuated, or missing with `force`).
//!
//! Adding a member:
//!
//! 1. **Without any lock**: the device is opened exclusively and probed;
//!    it must not narrow the pool's I/O limits (the volumes' queue limits
//!    are set already); its written zones are reset (a member's zones start
//!    empty); the engine's larger storage is allocated.
//! 2. **Commit lock, then engine lock** (no I/O): the engine takes the new
//!    member (`Pool::member_add`: its zones appended, fenced, the superblock
//!    of the next generation names it); the member, its geometry and its
//!    read counters are appended to the pool's lock-free tables.
//! 3. **Commit lock only**: the commit that writes the new superblock (on
//!    the new member, then the journal member: the commit point; then the
//!    others). The engine lifts the fence when it ends: the member takes
//!    data from then on.
//!
//! The engine refuses the add (`EBUSY` from the core) while a checkpoint
//! is due or the journal cannot switch log zones now: the commit lock is
//! held, so a commit (or a checkpoint) is run here and the add retried.
//! Crash safety is the core's (`zvcore::pool::members`).

use crate::commitbuf::CommitBuf;
use crate::engine::core_err;
use crate::kwrap::{
    bdev::{self, LowerDev},
    noio::NoIo,
    random,
};
use crate::members::{probe_geometry, reset_written_zones, Member};
use crate::pool::ActivePool;
use crate::zonereads::ZoneReads;
use crate::zvcore::{
    alloc::{DevState, ZoneInfo},
    error::Error as CoreError,
    format::{Uuid, BLOCK_SIZE},
    geom::{DeviceGeometry, MAX_DEVICES},
    pool::Grown,
};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, str::CString, sync::Arc, time::Instant};

/// Times the engine may refuse the add as busy (each followed by a commit
/// or a checkpoint) before it gives up.
const ADD_TRIES: u32 = 4;

/// The engine's storage grown by one member of geometry `g`.
type KGrown = Grown<KVec<DeviceGeometry>, KVec<ZoneInfo>, KVec<u64>, KVec<DevState>>;

/// Storage for the engine of a pool of members `geoms` plus `g`.
fn grown_storage(geoms: &[DeviceGeometry], g: DeviceGeometry) -> Result<KGrown> {
    let mut all = KVec::with_capacity(geoms.len().saturating_add(1), GFP_KERNEL)?;
    all.extend_from_slice(geoms, GFP_KERNEL)?;
    all.push(g, GFP_KERNEL)?;
    let nz: usize = all.iter().map(|g| g.nr_zones as usize).sum();
    Ok(Grown {
        zones: KVec::from_elem(ZoneInfo::default(), nz, GFP_KERNEL)?,
        zone_epochs: KVec::from_elem(0u64, nz, GFP_KERNEL)?,
        devs: KVec::from_elem(DevState::EMPTY, all.len(), GFP_KERNEL)?,
        geoms: all,
    })
}

impl ActivePool {
    /// Adds the block device at `path` as a member (opened exclusively for
    /// the pool's holder, told if it dies). Sleeps; call without any pool
    /// lock.
    pub(crate) fn add_member(&self, path: &CStr) -> Result {
        let name = &*self.name;
        if self.read_only {
            pr_err!("{}: assembled read-only: cannot add {}\n", name, path);
            return Err(EROFS);
        }
        if self.members.len() >= MAX_DEVICES {
            pr_err!("{}: at most {} members\n", name, MAX_DEVICES);
            return Err(ENOSPC);
        }
        let dev = LowerDev::open(path, &self.watch).inspect_err(|e| {
            pr_err!("{}: cannot open {} exclusively: {:?}\n", name, path, e);
        })?;
        let mut geom = probe_geometry(name, path, &dev)?;
        geom.meta_zones = self.geoms.first().map_or(0, |g| g.meta_zones);
        if let Err(e) = geom.validate() {
            pr_err!(
                "{}: {}: too small for the pool's {} metadata zones: {:?}\n",
                name,
                path,
                geom.meta_zones,
                e
            );
            return Err(EINVAL);
        }
        if !self.limits.admits(&dev.io_limits()) {
            pr_err!(
                "{}: {}: its I/O limits are narrower than the pool's (the volumes' limits are set): add it to a new pool, or stop the pool and add it then\n",
                name,
                path
            );
            return Err(EINVAL);
        }
        reset_written_zones(&dev, &geom).inspect_err(|e| {
            pr_err!("{}: {}: cannot reset its zones: {:?}\n", name, path, e);
        })?;
        let counts = ZoneReads::counters(&geom)?;
        let mut uuid: Uuid = [0; 16];
        random::fill(&mut uuid);
        let member = Member::new(path, dev, geom)?;
        let _noio = NoIo::enter();
        let mut cb = self.committer.lock();
        cb.ensure_members(self.members.len().saturating_add(1))?;
        self.engine_add(&mut cb, uuid, member, counts)?;
        // The commit that makes it a member.
        self.commit_with(&mut cb).inspect_err(|e| {
            pr_err!("{}: the commit adding {} failed: {:?}\n", name, path, e);
        })?;
        drop(cb);
        let (cap, zones) = {
            let st = self.state.lock();
            (
                st.engine.geom().data_capacity_blocks(),
                st.engine.geom().nr_zones(),
            )
        };
        pr_info!(
            "{}: added {} as member {} ({} zones): {} members, {} MiB of data capacity, {} zones\n",
            name,
            path,
            self.members.len().saturating_sub(1),
            geom.nr_zones,
            self.members.len(),
            cap / 256,
            zones
        );
        Ok(())
    }

    /// Step 2 of [`Self::add_member`]: the engine takes the member (retried
    /// after a commit or a checkpoint while it is busy), which is then
    /// appended to the pool's tables. The caller holds the commit lock.
    fn engine_add(
        &self,
        cb: &mut CommitBuf,
        uuid: Uuid,
        member: Member,
        counts: KVec<core::sync::atomic::AtomicU32>,
    ) -> Result {
        let name = &*self.name;
        let first_zone: u32 = self.geoms.iter().map(|g| g.nr_zones).sum();
        let mut tries = 0u32;
        loop {
            let grown = grown_storage(&self.geoms, member.geom)?;
            let mut st = self.state.lock();
            let dirty = st.engine.superblock_dirty();
            match st.engine.member_add(uuid, grown) {
                Ok(old) => {
                    // No I/O and no allocation: the tables have room for
                    // every member the engine accepts.
                    let r = self
                        .geoms
                        .push(member.geom)
                        .and_then(|()| self.zone_reads.add_member(counts, first_zone))
                        .and_then(|()| self.members.push(member));
                    drop(st);
                    drop(old);
                    return r;
                }
                Err(CoreError::Busy) if tries < ADD_TRIES => {
                    drop(st);
                    tries = tries.saturating_add(1);
                    if dirty {
                        // A superblock change waits for its commit.
                        self.commit_with(cb)?;
                    } else {
                        self.checkpoint_when_slots(cb)?;
                    }
                }
                Err(e) => {
                    drop(st);
                    pr_err!("{}: cannot add {}: {:?}\n", name, &*member.path, e);
                    return Err(core_err(e));
                }
            }
        }
    }
}

/// What [`ActivePool::evacuation_text`] reports of an evacuation.
pub(crate) struct EvacView {
    pub(crate) member: u16,
    pub(crate) start_bytes: u64,
    pub(crate) left_bytes: u64,
    pub(crate) elapsed_ms: i64,
}

impl ActivePool {
    /// Starts evacuating member `member` (its live data moved to the other
    /// members by GC; it takes no new blocks), or cancels (`None`). Sleeps
    /// only for the engine lock.
    pub(crate) fn evacuate(self: &Arc<Self>, member: Option<u16>) -> Result {
        let name = &*self.name;
        if self.read_only {
            pr_err!("{}: assembled read-only: nothing can move\n", name);
            return Err(EROFS);
        }
        // Kept on disk: committed like a volume operation.
        let mut live = 0;
        let r = self.policy_op(|e| {
            live = member.map_or(0, |d| e.alloc().dev_valid_blocks(d));
            e.evacuate(member)
        });
        match (r, member) {
            (Ok(()), Some(d)) => {
                let mut since = self.gc.evac_since.lock();
                if since.is_none() {
                    *since = Some(Instant::now());
                }
                drop(since);
                pr_info!(
                    "{}: evacuating member {} ({}): {} MiB of live data to move\n",
                    name,
                    d,
                    self.member_path(d),
                    live / 256
                );
                self.kick_gc();
                Ok(())
            }
            (Ok(()), None) => {
                *self.gc.evac_since.lock() = None;
                pr_info!("{}: evacuation ended\n", name);
                Ok(())
            }
            (Err((_, Some(CoreError::NoSpace))), Some(d)) => {
                pr_err!(
                    "{}: cannot evacuate member {} ({}): the other members cannot hold its {} MiB of live data\n",
                    name,
                    d,
                    self.member_path(d),
                    live / 256
                );
                Err(ENOSPC)
            }
            (Err((_, Some(CoreError::Busy))), _) => {
                pr_err!(
                    "{}: another member is being evacuated or added (cancel with 'cancel' first)\n",
                    name
                );
                Err(EBUSY)
            }
            (Err((e, why)), _) => {
                pr_err!("{}: cannot evacuate: {:?}\n", name, why);
                Err(e)
            }
        }
    }

    /// The evacuation in progress (or done), if any.
    pub(crate) fn evacuation(&self) -> Option<EvacView> {
        let e = self.state.lock().engine.evacuation()?;
        let elapsed_ms = self
            .gc
            .evac_since
            .lock()
            .map_or(0, |t| t.elapsed().as_millis());
        Some(EvacView {
            member: e.member,
            start_bytes: e.start_blocks.saturating_mul(BLOCK_SIZE as u64),
            left_bytes: e.left_blocks.saturating_mul(BLOCK_SIZE as u64),
            elapsed_ms,
        })
    }

    /// The member whose path or index is `what` (trimmed input).
    pub(crate) fn member_named(&self, what: &str) -> Option<u16> {
        if let Ok(i) = what.parse::<u16>() {
            return (usize::from(i) < self.members.len()).then_some(i);
        }
        let devt = bdev::lookup(&CString::try_from_fmt(fmt!("{}", what)).ok()?).ok()?;
        self.members
            .iter()
            .position(|m| bdev::lookup(&m.path).ok() == Some(devt))
            .and_then(|i| u16::try_from(i).ok())
    }
}

impl ActivePool {
    /// Removes member `d` from the pool (`remove`; `zvpoolctl pool
    /// remove`): it must hold no live data (evacuated), or be missing and
    /// `force` given (its blocks are then lost: they read as I/O errors).
    /// The commit that names the removal, then a checkpoint laid out
    /// without it; then its device's written zones are reset so that no
    /// scan offers it again, and the device is closed (it can be used
    /// elsewhere at once; a missing member's, removed with `force`, stays
    /// open until the pool stops: I/O to it may still be failing).
    /// Sleeps; call without any pool lock.
    pub(crate) fn remove_member(self: &Arc<Self>, d: u16, force: bool) -> Result {
        let name = &*self.name;
        if self.read_only {
            pr_err!("{}: assembled read-only: no member can be removed\n", name);
            return Err(EROFS);
        }
        let m = self.members.get(usize::from(d)).ok_or(ENOENT)?;
        let path = m.path.to_str().unwrap_or("?");
        if m.is_removed() {
            pr_err!("{}: member {} was removed already\n", name, d);
            return Err(EINVAL);
        }
        let _noio = NoIo::enter();
        let mut cb = self.committer.lock();
        let mut tries = 0u32;
        loop {
            let mut st = self.state.lock();
            let dirty = st.engine.superblock_dirty();
            let r = st.engine.member_remove(d, force);
            if r.is_ok() {
                m.removed.store(true, Ordering::Release);
                self.note_levels(&st.engine);
            }
            drop(st);
            match r {
                Ok(()) => break,
                Err(CoreError::Busy) if tries < ADD_TRIES => {
                    tries = tries.saturating_add(1);
                    if dirty {
                        self.commit_with(&mut cb)?;
                    } else {
                        self.checkpoint_when_slots(&mut cb)?;
                    }
                }
                Err(CoreError::Invalid(why)) => {
                    pr_err!(
                        "{}: cannot remove member {} ({}): {}\n",
                        name,
                        d,
                        path,
                        why.trim_start_matches("member remove: ")
                    );
                    return Err(EINVAL);
                }
                Err(e) => {
                    pr_err!("{}: cannot remove member {} ({}): {:?}\n", name, d, path, e);
                    return Err(core_err(e));
                }
            }
        }
        *self.gc.evac_since.lock() = None;
        // The commit that removes it, then the first checkpoint without it
        // (until then the newest checkpoint has blocks on it).
        self.commit_with(&mut cb)
            .and_then(|()| self.checkpoint_when_slots(&mut cb))
            .inspect_err(|e| {
                pr_err!(
                    "{}: the commit removing member {} failed: {:?}\n",
                    name,
                    d,
                    e
                );
            })?;
        drop(cb);
        let wiped = match m.dev() {
            Ok(dev) if dev.is_live() => reset_written_zones(&dev, &m.geom).is_ok(),
            _ => false,
        };
        // Nothing is sent to it any more (no live block, its zones reset,
        // no metadata): its device is closed once its last borrow drops.
        let closed = !force && m.release_device();
        pr_info!(
            "{}: removed member {} ({}){}{}\n",
            name,
            d,
            path,
            if wiped { ": its zones are reset" } else { "" },
            if closed { ", its device is closed" } else { "" }
        );
        self.health.dirty.store(true, Ordering::Release);
        self.health_kick();
        Ok(())
    }
}
