// SPDX-License-Identifier: GPL-2.0
//! Assembly over damaged metadata: the `assemble_mode` a pool is enabled
//! with (`normal`, `read-only`, `rewind`; `degraded` is `normal` without
//! one member, see `degraded.rs`), the kernel log lines that say
//! what is damaged and what a rewind drops, and the status lines of a pool
//! assembled read-only or rewound.
//!
//! The core decides what is damage (`zvcore::recovery::Damage`: committed
//! metadata that cannot be read, told from a torn tail by the journal's
//! commit groups); this file turns its report into words and the policy
//! into errnos: damage refuses a normal assembly with `EUCLEAN`, like
//! `zpool import` without `-F` and dm-thin's `needs_check`.

use crate::engine::Engine;
use crate::zvcore::format::history::Rewind;
use crate::zvcore::recovery::{Assembly, Damage, DamageKind};
use kernel::{prelude::*, str::CString};

/// How `enable=1` assembles a pool (configfs `assemble_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AssembleMode {
    /// Read-write; refused (`EUCLEAN`) when committed metadata is damaged.
    Normal,
    /// Every volume read-only, nothing written to any member (no commit,
    /// GC, zone reset or finish); over damage: the newest consistent state.
    ReadOnly,
    /// Read-write from the newest consistent state before any damage,
    /// dropping what follows it; recorded in the pool.
    Rewind,
    /// As `Normal`, and one member may be missing (its device not given):
    /// the pool keeps two copies of its metadata (`degraded.rs`).
    Degraded,
}

impl AssembleMode {
    /// The configfs word.
    pub(crate) fn word(self) -> &'static str {
        match self {
            AssembleMode::Normal => "normal",
            AssembleMode::ReadOnly => "read-only",
            AssembleMode::Rewind => "rewind",
            AssembleMode::Degraded => "degraded",
        }
    }

    /// Whether an assembly in this mode may do without a member's device
    /// (`read-only` writes nothing, so it may too).
    pub(crate) fn allows_missing(self) -> bool {
        matches!(self, AssembleMode::Degraded | AssembleMode::ReadOnly)
    }

    /// Parses the configfs word.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(AssembleMode::Normal),
            "read-only" => Some(AssembleMode::ReadOnly),
            "rewind" => Some(AssembleMode::Rewind),
            "degraded" => Some(AssembleMode::Degraded),
            _ => None,
        }
    }
}

/// What damage means for an assembly in `mode`: `Ok(read_only)` to go on
/// (after logging what is lost), `Err(EUCLEAN)` to refuse (after logging
/// why). Rewinds are recorded in the engine here.
pub(crate) fn decide(
    name: &CStr,
    paths: &[CString],
    engine: &mut Engine,
    asm: &Assembly,
    mode: AssembleMode,
) -> Result<bool> {
    let Some(d) = asm.damage else {
        if asm.suspect_gap {
            // Pools formatted before commit groups: damage cannot be told
            // from a torn tail there.
            pr_warn!(
                "{}: journal replay stopped after sequence {}: valid blocks up to {} follow a missing or invalid one (pool without commit groups: damage cannot be told from a torn tail), not replayed\n",
                name,
                asm.last_seq,
                asm.max_seq_seen
            );
        }
        return Ok(mode == AssembleMode::ReadOnly);
    };
    if d.unusable {
        log_damage(name, paths, engine, asm, &d, "cannot assemble");
        pr_err!(
            "{}: the state before the damage maps space reclaimed since: the pool cannot be assembled, not even read-only\n",
            name
        );
        return Err(EUCLEAN);
    }
    match mode {
        AssembleMode::Normal | AssembleMode::Degraded => {
            log_damage(name, paths, engine, asm, &d, "cannot assemble");
            pr_err!(
                "{}: refused read-write assembly; write 'read-only' (copy data out) or 'rewind' (accept the loss) to assemble_mode, or run 'zvpoolctl pool check' for details\n",
                name
            );
            Err(EUCLEAN)
        }
        AssembleMode::ReadOnly => {
            log_damage(name, paths, engine, asm, &d, "assembling read-only");
            Ok(true)
        }
        AssembleMode::Rewind => {
            log_damage(name, paths, engine, asm, &d, "rewinding");
            let rw = engine.record_rewind(&d, asm);
            pr_warn!(
                "{}: rewound to checkpoint {} and journal sequence {} (rewind {} of this pool): journal sequences {}..{} dropped\n",
                name,
                asm.checkpoint_generation,
                d.seq.saturating_sub(1),
                rw.count,
                rw.from_seq,
                rw.to_seq
            );
            Ok(false)
        }
    }
}

/// Logs what is damaged and what the state assembled lacks.
fn log_damage(
    name: &CStr,
    paths: &[CString],
    engine: &Engine,
    asm: &Assembly,
    d: &Damage,
    what: &str,
) {
    let dev = |m: u16| {
        asm.dev_of_member
            .get(usize::from(m))
            .and_then(|j| paths.get(usize::from(*j)))
            .map(|p| p.to_str().unwrap_or("?"))
            .unwrap_or("?")
    };
    match (d.kind, d.bad) {
        (DamageKind::CheckpointLost, _) => pr_err!(
            "{}: {}: metadata damaged: checkpoint generation {} is {}{} (the journal shows it was committed); loaded checkpoint {} instead\n",
            name,
            what,
            d.lost_gen,
            match (d.lost_header_found, d.lost_error.is_some()) {
                (true, _) => "unreadable: ",
                (false, true) => "in a checkpoint chain that was refused: ",
                (false, false) => "missing",
            },
            d.lost_error.map_or("", |e| e.describe()),
            asm.checkpoint_generation
        ),
        (DamageKind::JournalInvalid, Some(b)) => pr_err!(
            "{}: {}: metadata damaged: committed journal block {} is invalid (member {} {}, zone {}, block {}; committed up to {})\n",
            name,
            what,
            d.seq,
            b.member,
            dev(b.member),
            b.zone,
            b.block,
            d.committed_seq
        ),
        _ => pr_err!(
            "{}: {}: metadata damaged: committed journal block {} is missing (committed up to {}, {} invalid journal block(s) found)\n",
            name,
            what,
            d.seq,
            d.committed_seq,
            d.bad_blocks
        ),
    }
    pr_err!(
        "{}: the newest consistent state is checkpoint {} plus journal up to {}; a rewind drops {} journal block(s) ({} committed) with {} record(s)\n",
        name,
        asm.checkpoint_generation,
        d.seq.saturating_sub(1),
        d.lost_blocks,
        d.lost_committed_blocks,
        d.lost_records
    );
    if d.reclaimed_blocks > 0 {
        pr_err!(
            "{}: {} mapped block(s) of that state lie in {} zone(s) reclaimed after the damage: they read as zeros\n",
            name,
            d.reclaimed_blocks,
            d.reclaimed_zones
        );
    }
    for id in d.volume_ids() {
        match engine.volume(*id) {
            Some(v) => pr_err!(
                "{}: affected: volume '{}' (id {})\n",
                name,
                core::str::from_utf8(v.name.as_bytes()).unwrap_or("?"),
                id
            ),
            None => pr_err!(
                "{}: affected: volume id {} (created after the damage)\n",
                name,
                id
            ),
        }
    }
    if d.more_volumes {
        pr_err!("{}: affected: more volumes\n", name);
    }
}

/// Writes the status lines about damage and rewinds.
pub(crate) fn status(
    w: &mut impl core::fmt::Write,
    read_only: bool,
    damage: Option<&Damage>,
    rewind: Option<Rewind>,
) -> core::fmt::Result {
    writeln!(w, "read_only {}", u8::from(read_only))?;
    writeln!(w, "rewinds {}", rewind.map_or(0, |r| r.count))?;
    if let Some(r) = rewind {
        writeln!(
            w,
            "last_rewind from_seq={} to_seq={} blocks={} records={} lost_checkpoint={} to_checkpoint={}",
            r.from_seq, r.to_seq, r.blocks, r.records, r.lost_gen, r.to_gen
        )?;
    }
    if let Some(d) = damage {
        let kind = match d.kind {
            DamageKind::JournalMissing => "journal-missing",
            DamageKind::JournalInvalid => "journal-invalid",
            DamageKind::CheckpointLost => "checkpoint-lost",
        };
        writeln!(
            w,
            "damage {} seq={} committed_seq={} lost_checkpoint={} lost_blocks={} lost_records={} reclaimed_blocks={}",
            kind,
            d.seq,
            d.committed_seq,
            d.lost_gen,
            d.lost_blocks,
            d.lost_records,
            d.reclaimed_blocks
        )?;
    }
    Ok(())
}
