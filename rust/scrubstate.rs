// SPDX-License-Identifier: GPL-2.0
//! Scrub state of a pool (the pass itself: `scrub.rs`), lock-free so that
//! `status` reads it without waiting for a step.

use crate::zvcore::format::BLOCK_SIZE;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// How the last pass ended.
pub(crate) const ENDED_NONE: u32 = 0;
pub(crate) const ENDED_DONE: u32 = 1;
pub(crate) const ENDED_STOPPED: u32 = 2;

/// Cursor zones of the pass's metadata parts, after the data zones: the
/// newest checkpoint's chain (the low 32 bits its next block), the
/// superblock copies (the low 32 bits the next member), then the journal
/// blocks an assembly would replay (the next one in
/// [`Scrub::journal_next`]).
pub(crate) const META_PHASE: u32 = u32::MAX - 3;
pub(crate) const SB_PHASE: u32 = u32::MAX - 2;
pub(crate) const JOURNAL_PHASE: u32 = u32::MAX - 1;

/// Most volume extents of unreadable blocks a pass keeps for
/// `scrub_errors` (the log has every one it names).
pub(crate) const MAX_FOUND: usize = 32;

/// Scrub state of a pool, lock-free: the GC work advances it, `scrub`
/// writes start and stop it, `status` reads it.
pub(crate) struct Scrub {
    /// A pass is requested or under way.
    pub(crate) running: AtomicBool,
    /// Where the pass goes on: zone id (high 32 bits) and block in it.
    pub(crate) cursor: AtomicU64,
    /// Of the pass under way or the last one: blocks read, unreadable
    /// blocks, zones skipped (being written, offline, member gone).
    pub(crate) blocks: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// The chain the metadata part reads (its full checkpoint's
    /// generation), its block copies read, those unreadable or unsound,
    /// and the full checkpoints written to replace a damaged chain.
    pub(crate) meta_base: AtomicU64,
    pub(crate) meta_blocks: AtomicU64,
    pub(crate) meta_errors: AtomicU64,
    pub(crate) repairs: AtomicU64,
    /// The journal part's next sequence number (0: from the first one
    /// after the newest checkpoint).
    pub(crate) journal_next: AtomicU64,
    /// Where the journal part ends: the journal's end when the part began
    /// (what writers commit after it is the next pass's).
    pub(crate) journal_stop: AtomicU64,
    /// Runs of unreadable blocks whose volumes the pass under way named.
    pub(crate) named_runs: AtomicU32,
    /// The volume extents the pass named (for `scrub_errors`): entry `i` is
    /// words `2i` (volume id << 32 | blocks) and `2i + 1` (first lba);
    /// `nfound` of them are set. One writer (the pass, in the GC work);
    /// a reader racing it may see an entry being replaced by the next
    /// pass's (display only).
    found: [AtomicU64; 2 * MAX_FOUND],
    nfound: AtomicU32,
    /// Most MiB/s the pass under way reads (0: as fast as it can).
    pub(crate) rate_mibs: AtomicU32,
    /// Passes completed since assembly.
    pub(crate) passes: AtomicU64,
    /// How the last pass ended (`ENDED_*`).
    pub(crate) ended: AtomicU32,
}

impl Scrub {
    pub(crate) const fn new() -> Self {
        Self {
            running: AtomicBool::new(false),
            cursor: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            meta_base: AtomicU64::new(0),
            meta_blocks: AtomicU64::new(0),
            meta_errors: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            journal_next: AtomicU64::new(0),
            journal_stop: AtomicU64::new(0),
            named_runs: AtomicU32::new(0),
            found: [const { AtomicU64::new(0) }; 2 * MAX_FOUND],
            nfound: AtomicU32::new(0),
            rate_mibs: AtomicU32::new(0),
            passes: AtomicU64::new(0),
            ended: AtomicU32::new(ENDED_NONE),
        }
    }

    /// Starts a pass from the first zone (a pass under way starts again),
    /// reading at most `rate_mibs` MiB/s (0: no limit).
    pub(crate) fn start(&self, rate_mibs: u32) {
        self.rate_mibs.store(rate_mibs, Ordering::Relaxed);
        self.blocks.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.skipped.store(0, Ordering::Relaxed);
        self.meta_blocks.store(0, Ordering::Relaxed);
        self.meta_errors.store(0, Ordering::Relaxed);
        self.journal_next.store(0, Ordering::Relaxed);
        self.named_runs.store(0, Ordering::Relaxed);
        self.nfound.store(0, Ordering::Release);
        self.cursor.store(0, Ordering::Release);
        self.running.store(true, Ordering::Release);
    }

    /// Keeps a volume extent the pass found unreadable (`blocks` blocks of
    /// volume `vol` from `lba`), if there is room. Returns whether it was
    /// kept.
    pub(crate) fn note_found(&self, vol: u32, lba: u64, blocks: u64) -> bool {
        let i = self.nfound.load(Ordering::Relaxed) as usize;
        let (Some(w0), Some(w1)) = (self.found.get(2 * i), self.found.get(2 * i + 1)) else {
            return false;
        };
        let n = blocks.min(u64::from(u32::MAX));
        w0.store((u64::from(vol) << 32) | n, Ordering::Relaxed);
        w1.store(lba, Ordering::Relaxed);
        self.nfound.store(i as u32 + 1, Ordering::Release);
        true
    }

    /// Calls `f(volume id, lba, blocks)` for each extent kept by the pass
    /// under way or the last one.
    pub(crate) fn each_found(
        &self,
        mut f: impl FnMut(u32, u64, u64) -> core::fmt::Result,
    ) -> core::fmt::Result {
        let n = (self.nfound.load(Ordering::Acquire) as usize).min(MAX_FOUND);
        for i in 0..n {
            let (Some(w0), Some(w1)) = (self.found.get(2 * i), self.found.get(2 * i + 1)) else {
                break;
            };
            let w = w0.load(Ordering::Relaxed);
            f(
                (w >> 32) as u32,
                w1.load(Ordering::Relaxed),
                w & u64::from(u32::MAX),
            )?;
        }
        Ok(())
    }

    /// Stops the pass under way; whether one was.
    pub(crate) fn stop(&self) -> bool {
        let was = self.running.swap(false, Ordering::AcqRel);
        if was {
            self.ended.store(ENDED_STOPPED, Ordering::Relaxed);
        }
        was
    }

    /// Whether a pass is under way.
    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Writes the scrub line of `status` and the `scrub` attribute:
    /// `<idle|running|done|stopped> zone=<z>/<zones> read_bytes=<n>
    /// errors=<n> skipped_zones=<n> passes=<n> meta_blocks=<n>
    /// meta_errors=<n> repairs=<n> rate_mibs=<n>`.
    pub(crate) fn write_line(
        &self,
        w: &mut impl core::fmt::Write,
        zones: u32,
    ) -> core::fmt::Result {
        let state = if self.running() {
            "running"
        } else {
            match self.ended.load(Ordering::Relaxed) {
                ENDED_DONE => "done",
                ENDED_STOPPED => "stopped",
                _ => "idle",
            }
        };
        let z = ((self.cursor.load(Ordering::Relaxed) >> 32) as u32).min(zones);
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        writeln!(
            w,
            "{} zone={}/{} read_bytes={} errors={} skipped_zones={} passes={} meta_blocks={} meta_errors={} repairs={} rate_mibs={}",
            state,
            z,
            zones,
            n(&self.blocks).saturating_mul(BLOCK_SIZE as u64),
            n(&self.errors),
            n(&self.skipped),
            n(&self.passes),
            n(&self.meta_blocks),
            n(&self.meta_errors),
            n(&self.repairs),
            self.rate_mibs.load(Ordering::Relaxed)
        )
    }
}
