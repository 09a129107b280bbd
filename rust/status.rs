// SPDX-License-Identifier: GPL-2.0
//! The text an active pool shows: the `status`, `members` and `volumes`
//! attributes of its configfs directory, and the control device's volume
//! listing of any length.

use crate::damage;
use crate::engine::Engine;
use crate::healthstate::UuidText;
use crate::pool::ActivePool;
use crate::zvcore::{
    format::BLOCK_SIZE,
    geom::{DevKind, Stream},
    pool::VolEntry,
};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, str::Formatter};

impl ActivePool {
    /// Writes the `status` attribute.
    pub(crate) fn status(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.check_health_if_dirty();
        // Before the engine lock: a check holds this lock, then the engine's.
        let space = self.health.reported.lock().space;
        let st = self.state.lock();
        let e = &st.engine;
        let a = e.alloc();
        let s = e.stats();
        let cap = e.geom().data_capacity_blocks();
        let used = a.used_blocks();
        writeln!(w, "state active")?;
        writeln!(w, "health {}", self.pool_health(e.is_failed()).word())?;
        let t = self.health.thresholds();
        writeln!(
            w,
            "space {} used_pct={} low_pct={} critical_pct={}",
            space.word(),
            self.health.used_pct(),
            t.low_pct,
            t.critical_pct
        )?;
        writeln!(w, "uuid {}", UuidText(&self.uuid))?;
        // Members in the pool; removed ones keep their index (`members`).
        let removed = self.members.iter().filter(|m| m.is_removed()).count();
        writeln!(w, "members {}", self.members.len().saturating_sub(removed))?;
        writeln!(w, "removed_members {}", removed)?;
        // The members whose log zones hold the journal (two: a copy each).
        match e.journal_members() {
            (j, Some(m)) => writeln!(w, "journal_members {} {}", j, m)?,
            (j, None) => writeln!(w, "journal_members {}", j)?,
        }
        // Tiering (`tiering`): off, on, or on but without members of both
        // classes; the fast members' free and data zones.
        let tier = match (e.alloc().tiering_asked(), e.alloc().tiering()) {
            (false, _) => "off",
            (true, true) => "on",
            (true, false) => "inactive",
        };
        let (ffree, fdata) = e.alloc().class_zones(false);
        writeln!(
            w,
            "tiering {} fast_free_zones={} fast_zones={}",
            tier, ffree, fdata
        )?;
        // Every checkpoint block on two members (or one: a single copy).
        writeln!(
            w,
            "checkpoint_copies {}",
            if e.geom().ckpt_copies() { 2 } else { 1 }
        )?;
        writeln!(w, "capacity_bytes {}", cap * BLOCK_SIZE as u64)?;
        writeln!(w, "used_bytes {}", used * BLOCK_SIZE as u64)?;
        let free = a.free_blocks();
        writeln!(w, "free_bytes {}", free * BLOCK_SIZE as u64)?;
        // Written but no longer live (and the unwritten tails of finished
        // zones): what GC can give back.
        writeln!(
            w,
            "reclaimable_bytes {}",
            cap.saturating_sub(free).saturating_sub(used) * BLOCK_SIZE as u64
        )?;
        let r = e.space_report();
        writeln!(w, "available_bytes {}", r.available * BLOCK_SIZE as u64)?;
        writeln!(w, "reserved_bytes {}", r.reserved * BLOCK_SIZE as u64)?;
        writeln!(w, "held_back_bytes {}", r.held_back * BLOCK_SIZE as u64)?;
        writeln!(w, "pool_reserve_pct {}", e.pool_reserve_pct())?;
        writeln!(
            w,
            "quota_refusals {}",
            self.health.quota_refused.load(Ordering::Relaxed)
        )?;
        writeln!(
            w,
            "reserve_refusals {}",
            self.health.reserve_refused.load(Ordering::Relaxed)
        )?;
        writeln!(
            w,
            "copy_read_blocks {}",
            self.health.copy_reads.load(Ordering::Relaxed)
        )?;
        writeln!(w, "copy_repair_blocks {}", e.stats().copy_repairs)?;
        writeln!(w, "zones_total {}", a.data_zones())?;
        writeln!(w, "zones_free {}", a.free_zones())?;
        writeln!(w, "zones_gc_reserve {}", a.config().gc_reserve)?;
        if let Some(v) = e.evacuation() {
            // (`evac_since` is never taken before the engine lock.)
            let ms = self
                .gc
                .evac_since
                .lock()
                .map_or(0, |t| t.elapsed().as_millis());
            writeln!(w, "evacuating_member {}", v.member)?;
            writeln!(
                w,
                "evacuation_start_bytes {}",
                v.start_blocks * BLOCK_SIZE as u64
            )?;
            writeln!(
                w,
                "evacuation_left_bytes {}",
                v.left_blocks * BLOCK_SIZE as u64
            )?;
            writeln!(w, "evacuation_ms {}", ms)?;
        }
        if let Some(m) = e.migration() {
            let vol = e
                .volume(m.vol)
                .and_then(|v| core::str::from_utf8(v.name.as_bytes()).ok())
                .unwrap_or("?");
            writeln!(w, "migrating_volume {}", vol)?;
            writeln!(
                w,
                "migration_moved_bytes {}",
                m.moved_blocks * BLOCK_SIZE as u64
            )?;
            writeln!(w, "migration_done {}", u8::from(m.done))?;
        }
        writeln!(
            w,
            "volumes {}",
            e.volumes().iter().filter(|v| v.listed()).count()
        )?;
        writeln!(w, "user_blocks_written {}", s.user_blocks)?;
        writeln!(w, "gc_blocks_written {}", s.gc_blocks)?;
        let wa = (s.user_blocks.saturating_add(s.gc_blocks))
            .saturating_mul(1000)
            .checked_div(s.user_blocks)
            .unwrap_or(1000);
        writeln!(w, "write_amplification {}.{:03}", wa / 1000, wa % 1000)?;
        writeln!(w, "placement_by_lifetime {}", u8::from(e.separating()))?;
        writeln!(w, "stream_hot_blocks {}", a.written(Stream::UserHot))?;
        writeln!(w, "stream_cold_blocks {}", a.written(Stream::UserCold))?;
        writeln!(w, "stream_gc_blocks {}", a.written(Stream::Gc))?;
        writeln!(w, "zones_reset {}", s.zones_reset)?;
        writeln!(w, "gc_runs {}", self.gc.runs.load(Ordering::Relaxed))?;
        w.write_str("scrub ")?;
        self.scrub.write_line(w, e.geom().nr_zones())?;
        // The engine lock: all its holds (and where the longest was taken,
        // a place in the module's source), GC's holds, and reads' waits
        // for it: COUNT TOTAL_US MAX_US.
        let h = &st.holds;
        h.holds.lines("engine_lock_hold", w)?;
        if let Some(at) = h.max_at {
            writeln!(w, "engine_lock_hold_max_at {}:{}", at.file(), at.line())?;
        }
        for (name, h) in [
            ("gc_hold_plan", &self.gc.hold_plan),
            ("gc_hold_end", &self.gc.hold_end),
        ] {
            let (n, total, max) = h.get();
            writeln!(w, "{name} {n} {total} {max}")?;
        }
        h.read_wait.lines("read_lock_wait", w)?;
        writeln!(
            w,
            "throttled_ms {}",
            (self.waits.pace.total_us() + self.waits.space.total_us()) / 1000
        )?;
        self.waits.status(w)?;
        writeln!(
            w,
            "write_pace_light {}",
            self.gc.light_writes.load(Ordering::Relaxed)
        )?;
        writeln!(w, "journal_blocks {}", s.journal_blocks)?;
        writeln!(w, "log_switches {}", s.log_switches)?;
        writeln!(w, "checkpoints {}", s.checkpoints)?;
        writeln!(w, "checkpoint_generation {}", e.checkpoint_generation())?;
        writeln!(
            w,
            "checkpoint_in_flight {}",
            u8::from(e.checkpoint_in_flight())
        )?;
        writeln!(w, "checkpoint_journal_commits {}", s.side_commits)?;
        writeln!(w, "checkpoint_blocks {}", s.checkpoint_blocks)?;
        writeln!(w, "delta_checkpoints {}", s.delta_checkpoints)?;
        writeln!(w, "volume_deltas {}", s.volume_deltas)?;
        writeln!(w, "delta_copies {}", s.delta_copies)?;
        writeln!(w, "delta_grows {}", s.delta_grows)?;
        writeln!(w, "delta_blocks {}", s.delta_blocks)?;
        writeln!(w, "last_delta_blocks {}", s.last_delta_blocks)?;
        writeln!(
            w,
            "checkpoint_blocks_written {}",
            s.checkpoint_blocks_written
        )?;
        writeln!(w, "zone_history_records {}", s.zone_history_records)?;
        writeln!(w, "checkpoint_slot_waits {}", s.checkpoint_slot_waits)?;
        writeln!(w, "checkpoint_capacity {}", e.checkpoint_capacity_blocks())?;
        writeln!(w, "checkpoint_zones {}", self.checkpoint_zones())?;
        writeln!(w, "metadata_full {}", u8::from(e.metadata_full()))?;
        writeln!(w, "table_nodes {}", e.nodes().live())?;
        writeln!(w, "table_memory_bytes {}", self.tables.used())?;
        writeln!(w, "table_memory_limit {}", self.tables.limit())?;
        writeln!(w, "table_memory_refused {}", self.tables.refused())?;
        writeln!(w, "table_alloc_failures {}", self.tables.alloc_failures())?;
        writeln!(
            w,
            "snapshots {}",
            e.volumes()
                .iter()
                .filter(|v| v.listed() && v.read_only())
                .count()
        )?;
        writeln!(
            w,
            "shared_bytes {}",
            e.shared_live_blocks() * BLOCK_SIZE as u64
        )?;
        damage::status(w, self.read_only, self.damage.as_ref(), e.last_rewind())
    }

    /// Writes the `members` attribute.
    pub(crate) fn members_text(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.check_health_if_dirty();
        let st = self.state.lock();
        let a = st.engine.alloc();
        for (i, m) in self.members.iter().enumerate() {
            let g = &m.geom;
            let re = m.read_errors.load(Ordering::Relaxed);
            let we = m.write_errors.load(Ordering::Relaxed);
            let kind = match g.kind {
                DevKind::Zns => "zns",
                DevKind::Smr => "smr",
                DevKind::Conventional => "conventional",
            };
            writeln!(
                w,
                "{} {} {} zones={} zone_bytes={} cap_bytes={} max_open={} max_active={} free_zones={} used_bytes={} read_errors={} write_errors={} meta_errors={} class={} state={}",
                i,
                m.path.to_str().unwrap_or("?"),
                kind,
                g.nr_zones,
                g.zone_blocks * BLOCK_SIZE as u64,
                g.zone_cap_blocks * BLOCK_SIZE as u64,
                g.max_open,
                g.max_active,
                a.dev_free_zones(i as u16),
                a.dev_valid_blocks(i as u16) * BLOCK_SIZE as u64,
                re,
                we,
                m.meta_errors.load(Ordering::Relaxed),
                if st.engine.member_class(i as u16) {
                    "slow"
                } else {
                    "fast"
                },
                m.state().word()
            )?;
        }
        Ok(())
    }

    /// Writes the `volumes` attribute into `page`; returns its length. A
    /// page holds a few dozen lines: the volumes that do not fit are
    /// counted in a last `# <n> more volumes not listed` line.
    pub(crate) fn volumes_text(&self, page: &mut [u8]) -> usize {
        use core::fmt::Write as _;
        /// Room kept for the last line.
        const TRAILER: usize = 64;
        let st = self.state.lock();
        let e = &*st.engine;
        let limit = page.len().saturating_sub(TRAILER);
        let mut pos = 0usize;
        let mut more = 0u32;
        for v in e.volumes().iter().filter(|v| v.listed()) {
            if more > 0 {
                // The page is full: count the rest without describing them.
                more = more.saturating_add(1);
                continue;
            }
            let mut line = [0u8; LINE_MAX];
            let mut f = Formatter::new(&mut line);
            if volume_line(e, v, &mut f).is_err() {
                more = more.saturating_add(1);
                continue;
            }
            let n = f.bytes_written();
            let end = pos.saturating_add(n);
            match (page.get_mut(pos..end), line.get(..n)) {
                (Some(dst), Some(src)) if end <= limit => {
                    dst.copy_from_slice(src);
                    pos = end;
                }
                _ => more = more.saturating_add(1),
            }
        }
        if more > 0 {
            if let Some(rest) = page.get_mut(pos..) {
                let mut f = Formatter::new(rest);
                if writeln!(f, "# {} more volumes not listed", more).is_ok() {
                    pos = pos.saturating_add(f.bytes_written());
                }
            }
        }
        pos
    }

    /// Appends every volume's `volumes` line to `out` (the control
    /// device's listing, of any length). The engine lock is taken for
    /// [`LIST_BATCH`] slots at a time and nothing is allocated under it: a
    /// volume created or deleted meanwhile may or may not be listed, the
    /// others are listed once.
    pub(crate) fn volumes_listing(&self, out: &mut KVVec<u8>) -> Result {
        let mut batch = KVVec::from_elem(0u8, LIST_BATCH * LINE_MAX, GFP_KERNEL)?;
        let mut slot = 0usize;
        loop {
            let (n, next) = {
                let st = self.state.lock();
                let e = &*st.engine;
                let vols = e.volumes();
                let end = slot.saturating_add(LIST_BATCH).min(vols.len());
                let mut n = 0usize;
                for v in vols.get(slot..end).unwrap_or(&[]) {
                    if !v.listed() {
                        continue;
                    }
                    let Some(dst) = batch.get_mut(n..n.saturating_add(LINE_MAX)) else {
                        break;
                    };
                    let mut f = Formatter::new(dst);
                    if volume_line(e, v, &mut f).is_ok() {
                        n = n.saturating_add(f.bytes_written());
                    }
                }
                (n, (end < vols.len()).then_some(end))
            };
            out.extend_from_slice(batch.get(..n).unwrap_or(&[]), GFP_KERNEL)?;
            match next {
                Some(s) => slot = s,
                None => return Ok(()),
            }
        }
    }
}

/// Volume slots described per engine lock hold by
/// [`ActivePool::volumes_listing`].
const LIST_BATCH: usize = 16;
/// Room for one `volumes` line (a 32-character name and its origin's,
/// seven numbers, a placement of up to 64 member indexes, the copies:
/// under 448 bytes).
const LINE_MAX: usize = 448;

/// One line of the `volumes` attribute.
fn volume_line(e: &Engine, v: &VolEntry, w: &mut impl core::fmt::Write) -> core::fmt::Result {
    let Some(info) = crate::volinfo::info_of(e, v.id) else {
        return Err(core::fmt::Error);
    };
    write!(w, "{} ", v.id)?;
    for b in v.name.as_bytes() {
        w.write_char(char::from(*b))?;
    }
    write!(
        w,
        " size_bytes={} mapped_bytes={} kind={} origin=",
        info.size * BLOCK_SIZE as u64,
        info.mapped * BLOCK_SIZE as u64,
        info.kind.word()
    )?;
    match info.origin.and_then(|o| e.volume(o)) {
        Some(o) => {
            for b in o.name.as_bytes() {
                w.write_char(char::from(*b))?;
            }
        }
        None => w.write_char('-')?,
    }
    write!(
        w,
        " exclusive_bytes={} shared_bytes={} placement=",
        info.exclusive * BLOCK_SIZE as u64,
        info.shared() * BLOCK_SIZE as u64
    )?;
    // `any`, `fast`, `slow` or member indexes (`migrate`).
    crate::placement::write_placement(w, v.place)?;
    // Copies of each block (a mirrored volume's second ones are in its
    // companion, never listed).
    writeln!(w, " copies={}", if v.mirrored() { 2 } else { 1 })
}
