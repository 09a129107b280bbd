// SPDX-License-Identifier: GPL-2.0
//! Placement policies of an active pool, kept on disk
//! (`zvcore::pool::policy`): tiering (`tiering`), members' classes
//! (`member_class`), volumes' placements (`migrate`; `zvpoolctl volume
//! migrate`), and what an assembly resumes (the evacuation, the walks of
//! placed volumes).
//!
//! Each change is a journal record committed before the write returns,
//! like a volume operation ([`ActivePool::policy_op`]: the engine lock
//! dropped for the commit's I/O, logged after).

use crate::engine::{core_err, Engine};
use crate::pool::ActivePool;
use crate::zvcore::{
    error::Error as CoreError,
    format::{policy::Placement, BLOCK_SIZE},
};
use kernel::{prelude::*, sync::Arc};

impl ActivePool {
    /// Runs policy change `f` on the engine and commits it. On failure,
    /// the kernel error and the engine's, if `f` is what failed (else the
    /// commit did).
    pub(crate) fn policy_op(
        &self,
        mut f: impl FnMut(&mut Engine) -> core::result::Result<(), CoreError>,
    ) -> core::result::Result<(), (Error, Option<CoreError>)> {
        let mut why = None;
        let r = self.vol_op(|e| {
            let r = f(e);
            self.note_levels(e);
            r.map_err(|x| {
                why = Some(x);
                core_err(x)
            })
        });
        r.map_err(|e| (e, why))
    }

    /// The path of member `d`, for messages.
    pub(crate) fn member_path(&self, d: u16) -> &str {
        self.members
            .get(usize::from(d))
            .and_then(|m| m.path.to_str().ok())
            .unwrap_or("?")
    }

    /// Turns tiering on or off (`tiering`): user writes to the fast
    /// members, GC's copies to the slow ones (`zvcore::alloc::tiers`).
    pub(crate) fn set_tiering(self: &Arc<Self>, on: bool) -> Result {
        let name = &*self.name;
        if let Err((e, why)) = self.policy_op(|e| e.set_tiering(on)) {
            pr_err!(
                "{}: tiering not set: {:?}\n",
                name,
                why.unwrap_or(CoreError::Busy)
            );
            return Err(e);
        }
        let active = self.state.lock().engine.alloc().tiering();
        pr_info!(
            "{}: tiering {}{}\n",
            name,
            if on { "on" } else { "off" },
            if on && !active {
                " (not in effect while every member is of one class)"
            } else {
                ""
            }
        );
        self.kick_gc();
        Ok(())
    }

    /// Sets member `d`'s class (`member_class`).
    pub(crate) fn set_member_class(self: &Arc<Self>, d: u16, slow: bool) -> Result {
        let name = &*self.name;
        if let Err((e, why)) = self.policy_op(|e| e.set_member_class(d, slow)) {
            pr_err!(
                "{}: class of member {} not set: {:?}\n",
                name,
                d,
                why.unwrap_or(CoreError::Busy)
            );
            return Err(e);
        }
        pr_info!(
            "{}: member {} ({}) is {}\n",
            name,
            d,
            self.member_path(d),
            if slow { "slow" } else { "fast" }
        );
        self.kick_gc();
        Ok(())
    }

    /// Places volume `vol` on members or a class and moves its data there
    /// (`Placement::Any`: ends its placement), or ends the placement of the
    /// volume walked last (`None`).
    pub(crate) fn migrate(self: &Arc<Self>, target: Option<(&[u8], Placement)>) -> Result {
        let name = &*self.name;
        if self.read_only {
            pr_err!("{}: assembled read-only: nothing can move\n", name);
            return Err(EROFS);
        }
        let r = self.policy_op(|e| match target {
            None => e.migrate(None),
            Some((vol, place)) => match crate::volinfo::id_of(e, vol) {
                Some(id) => e.migrate(Some((id, place))),
                None => Err(CoreError::NotFound),
            },
        });
        let vol = target.map_or(&b"-"[..], |t| t.0);
        let shown = core::str::from_utf8(vol).unwrap_or("?");
        match r {
            Ok(()) => {
                match target {
                    Some((_, Placement::Any)) | None => {
                        pr_info!("{}: placement of {} ended\n", name, shown)
                    }
                    Some(_) => pr_info!("{}: migrating volume {}\n", name, shown),
                }
                self.kick_gc();
                Ok(())
            }
            Err((_, Some(CoreError::NotFound))) => {
                pr_err!("{}: no volume {} to migrate\n", name, shown);
                Err(ENOENT)
            }
            Err((_, Some(CoreError::NoSpace))) => {
                pr_err!(
                    "{}: cannot migrate {}: the chosen members cannot hold it\n",
                    name,
                    shown
                );
                Err(ENOSPC)
            }
            Err((e, Some(CoreError::Invalid(why)))) => {
                pr_err!("{}: cannot migrate {}: {}\n", name, shown, why);
                Err(e)
            }
            Err((e, why)) => {
                pr_err!("{}: cannot migrate {}: {:?}\n", name, shown, why);
                Err(e)
            }
        }
    }

    /// After an assembly: resumes what the metadata says was under way
    /// (the evacuation, the walks of placed volumes) and logs it.
    pub(crate) fn resume_policies(self: &Arc<Self>) {
        let (evac, walk) = {
            let mut st = self.state.lock();
            let d = st.engine.resume_policies();
            let walk = st.engine.migration().map(|m| m.vol);
            self.note_levels(&st.engine);
            (d, walk)
        };
        if let Some(d) = evac {
            *self.gc.evac_since.lock() = Some(kernel::time::Instant::now());
            pr_info!(
                "{}: resuming the evacuation of member {} ({})\n",
                &*self.name,
                d,
                self.member_path(d)
            );
        }
        if evac.is_some() || walk.is_some() {
            self.kick_gc();
        }
    }

    /// Writes the migration under way (`migrate`): `none`, or the walk
    /// under way or done last, `<volume> <where> <running|done>
    /// moved_bytes=<n>`, where the members' indexes joined by commas, or
    /// `fast` / `slow` (the class); then a line `<volume> <where> queued`
    /// per placed volume waiting for its walk (the first
    /// [`QUEUED_SHOWN`], then `# <n> more queued`: a page holds them).
    pub(crate) fn migration_line(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let st = self.state.lock();
        let Some(m) = st.engine.migration() else {
            return w.write_str("none\n");
        };
        let vol = st
            .engine
            .volume(m.vol)
            .and_then(|v| core::str::from_utf8(v.name.as_bytes()).ok())
            .unwrap_or("?");
        write!(w, "{} ", vol)?;
        write_placement(w, m.place)?;
        writeln!(
            w,
            " {} moved_bytes={}",
            if m.done { "done" } else { "running" },
            m.moved_blocks.saturating_mul(BLOCK_SIZE as u64)
        )?;
        let mut more = 0usize;
        for (k, v) in st
            .engine
            .volumes()
            .iter()
            .filter(|v| v.walk_due())
            .enumerate()
        {
            if k >= QUEUED_SHOWN {
                more += 1;
                continue;
            }
            let name = core::str::from_utf8(v.name.as_bytes()).unwrap_or("?");
            write!(w, "{} ", name)?;
            write_placement(w, v.place)?;
            w.write_str(" queued\n")?;
        }
        if more > 0 {
            writeln!(w, "# {} more queued", more)?;
        }
        Ok(())
    }
}

/// Queued walks `migrate` lists (each line under 240 bytes: with the
/// walk under way, they fit a page).
const QUEUED_SHOWN: usize = 12;

/// Writes a placement: `any`, `fast`, `slow`, or member indexes joined by
/// commas.
pub(crate) fn write_placement(w: &mut impl core::fmt::Write, p: Placement) -> core::fmt::Result {
    let m = match p {
        Placement::Any => return w.write_str("any"),
        Placement::Fast => return w.write_str("fast"),
        Placement::Slow => return w.write_str("slow"),
        Placement::Members(m) => m,
    };
    let mut first = true;
    for d in 0..64u32 {
        if m & (1u64 << d) != 0 {
            write!(w, "{}{}", if first { "" } else { "," }, d)?;
            first = false;
        }
    }
    Ok(())
}
