// SPDX-License-Identifier: GPL-2.0
//! The offline checker (`zvpoolctl pool check`): runs the kernel's assembly
//! (`zvcore::recovery::recover`, with the verifier) on the devices' metadata
//! in memory and describes what it found. Nothing is ever written: the
//! zones the assembly would finish are ignored and the engine is dropped.
//!
//! Also lists the journal blocks in the log zones (`--journal`), for tests
//! and for finding what is damaged.

use crate::devio::{DeviceSet, Reader};
use zvcore::alloc::{DevState, ZoneInfo};
use zvcore::error::Error as CoreError;
use zvcore::format::history::Rewind;
use zvcore::format::journal::JF_COMMIT;
use zvcore::format::layout::LOG_ZONES;
use zvcore::format::JOURNAL_MAGIC;
use zvcore::format::{decode_journal_block, peek_magic, Record, Superblock, BLOCK_SIZE};
use zvcore::geom::DeviceGeometry;
use zvcore::pool::slots::MAX_VOLUMES;
use zvcore::pool::{Pool, PoolConfig, PoolStorage, VolEntry};
use zvcore::recovery::{recover, Check, Damage, DamageKind};
use zvcore::verify::bitmap_words;

/// Queued records, as the kernel sizes them (and the volume table: the
/// core's [`MAX_VOLUMES`]).
const RECORD_QUEUE: usize = 4096;
/// Pool blocks the verifier's bitmap covers at once (4 TiB, 128 MiB): a
/// larger pool is verified in windows of this size, one pass over the
/// tables each, so the checker verifies pools of any size.
const VERIFY_WINDOW_BLOCKS: u64 = 1 << 30;

/// Block-table nodes on the heap (the core's host store).
pub(crate) type Nodes = zvcore::VecStore;

pub(crate) type Engine = Pool<
    Vec<DeviceGeometry>,
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    Nodes,
    Vec<DevState>,
    Box<Superblock>,
>;

/// The engine's storage.
pub(crate) type Storage = PoolStorage<
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    Nodes,
    Vec<DevState>,
    Box<Superblock>,
>;

pub(crate) fn storage(geoms: &[DeviceGeometry]) -> Storage {
    let nz: usize = geoms.iter().map(|g| g.nr_zones as usize).sum();
    PoolStorage {
        zones: vec![ZoneInfo::default(); nz],
        zone_epochs: vec![0; nz],
        vols: vec![VolEntry::default(); MAX_VOLUMES],
        records: vec![Record::VolumeDelete { vol: 0 }; RECORD_QUEUE],
        nodes: Nodes::unlimited(),
        devs: vec![DevState::EMPTY; geoms.len()],
        sb: Box::new(Superblock::EMPTY),
    }
}

/// Why assembly refused the devices.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// No zvpool superblock on any device (ENOENT).
    NoPool,
    /// The devices do not match the pool (EINVAL).
    Mismatch(String),
    /// Damaged metadata (EUCLEAN).
    Damaged(String),
    /// Another reason (unsupported features, ...), with its errno.
    Other(String, i32),
}

impl Refusal {
    fn from_core(e: CoreError) -> Self {
        let strip = |s: &str| s.strip_prefix("recover: ").unwrap_or(s).to_string();
        match e {
            CoreError::NotFound => Refusal::NoPool,
            CoreError::Invalid(s) => Refusal::Mismatch(strip(s)),
            CoreError::Corrupt(s) => Refusal::Damaged(strip(s)),
            CoreError::BadField(s) => Refusal::Damaged(format!("bad field: {}", strip(s))),
            CoreError::BadChecksum => Refusal::Damaged("bad checksum".into()),
            CoreError::BadMagic => Refusal::Damaged("bad magic number".into()),
            CoreError::Truncated => Refusal::Damaged("truncated metadata".into()),
            CoreError::Unsupported(s) => Refusal::Other(format!("unsupported: {}", strip(s)), 95),
            e => Refusal::Other(format!("{e:?}"), e.errno()),
        }
    }

    pub fn errno(&self) -> i32 {
        match self {
            Refusal::NoPool => 2,
            Refusal::Mismatch(_) => 22,
            Refusal::Damaged(_) => 117,
            Refusal::Other(_, e) => *e,
        }
    }
}

/// What assembly found on damage, with names resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct DamageReport {
    pub damage: Damage,
    /// Device path of the bad block's member.
    pub bad_path: Option<String>,
    /// Affected volumes: names where the assembled state knows the id,
    /// else `id N`.
    pub volumes: Vec<String>,
}

/// A successful assembly (possibly of the state before damage).
#[derive(Clone, Debug, PartialEq)]
pub struct Assembled {
    /// Device path of each member, in member order.
    pub members: Vec<String>,
    pub sb_generation: u64,
    pub checkpoint_generation: u64,
    pub fell_back: bool,
    /// Journal sequence the loaded checkpoint covers.
    pub checkpoint_seq: u64,
    pub replayed_blocks: u64,
    pub last_seq: u64,
    pub max_seq_seen: u64,
    pub commit_blocks: bool,
    pub committed_seq: u64,
    pub torn_blocks: u64,
    /// Damaged journal blocks replayed from their copy on another member.
    pub repaired_blocks: u32,
    /// Checkpoint blocks read from their second copy on another member.
    pub ckpt_copy_reads: u32,
    pub suspect_gap: bool,
    /// An unknown ro-compat feature: the kernel mounts read-only.
    pub ro_compat: bool,
    pub volumes: usize,
    /// The block tables were verified: always, at any pool size (windows);
    /// kept in the output for the scripts that read it.
    pub verified: bool,
    pub last_rewind: Option<Rewind>,
    pub damage: Option<DamageReport>,
}

/// The checker's result.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Refused(Refusal),
    Assembled(Box<Assembled>),
}

impl Report {
    /// Problems found (each a line).
    pub fn problems(&self, paths: &[String]) -> Vec<String> {
        match self {
            Report::Refused(r) => vec![refusal_text(r, paths)],
            Report::Assembled(a) => {
                let mut p = Vec::new();
                if let Some(d) = &a.damage {
                    p.push(damage_summary(&d.damage));
                }
                if a.suspect_gap {
                    p.push(format!(
                        "journal replay stopped after sequence {}: blocks up to {} exist but \
                         follow a missing or invalid one (this pool has no commit groups: \
                         damage cannot be told from a torn tail)",
                        a.last_seq, a.max_seq_seen
                    ));
                }
                p
            }
        }
    }
}

pub fn refusal_text(r: &Refusal, paths: &[String]) -> String {
    match r {
        Refusal::NoPool => format!("no zvpool superblock on {}", paths.join(" ")),
        Refusal::Mismatch(s) => format!("the devices do not match the pool: {s}"),
        Refusal::Damaged(s) => format!("metadata damaged: {s}"),
        Refusal::Other(s, _) => format!("cannot assemble: {s}"),
    }
}

/// One line naming what is damaged.
pub fn damage_summary(d: &Damage) -> String {
    match d.kind {
        DamageKind::JournalMissing => format!(
            "metadata damaged: journal block {} is missing (the journal is committed up to {})",
            d.seq, d.committed_seq
        ),
        DamageKind::JournalInvalid => format!(
            "metadata damaged: journal block {} is invalid (the journal is committed up to {})",
            d.seq, d.committed_seq
        ),
        DamageKind::CheckpointLost => format!(
            "metadata damaged: checkpoint generation {} is lost ({}); journal replay stops at {}",
            d.lost_gen,
            match (d.lost_header_found, d.lost_error) {
                (true, Some(e)) =>
                    format!("its header exists, its body was refused: {}", e.describe()),
                (true, None) => "its header exists, its body cannot be read".into(),
                (false, Some(e)) => format!("its checkpoint chain was refused: {}", e.describe()),
                (false, None) => "not found".into(),
            },
            d.seq
        ),
    }
}

pub fn kind_word(k: DamageKind) -> &'static str {
    match k {
        DamageKind::JournalMissing => "journal-missing",
        DamageKind::JournalInvalid => "journal-invalid",
        DamageKind::CheckpointLost => "checkpoint-lost",
    }
}

/// `vm1, vm2@s1, id 7 and more` (or `none`).
pub fn volume_list(d: &DamageReport) -> String {
    let mut s = if d.volumes.is_empty() {
        "none".to_string()
    } else {
        d.volumes.join(", ")
    };
    if d.damage.more_volumes {
        s.push_str(" and more");
    }
    s
}

/// What a rewind drops: `N journal blocks (R records) from sequence S`.
pub fn rewind_loss(d: &Damage) -> String {
    let mut s = format!(
        "{} journal block{} ({} record{}) from sequence {}",
        d.lost_blocks,
        if d.lost_blocks == 1 { "" } else { "s" },
        d.lost_records,
        if d.lost_records == 1 { "" } else { "s" },
        d.seq
    );
    if d.kind == DamageKind::CheckpointLost {
        s.push_str(&format!(" and checkpoint generation {}", d.lost_gen));
    }
    s
}

fn vol_name(v: &VolEntry) -> String {
    String::from_utf8_lossy(v.name.as_bytes()).into_owned()
}

/// Runs the kernel's assembly, with the verifier, on the devices.
pub fn check(devs: &mut dyn DeviceSet) -> Report {
    let mut geoms: Vec<DeviceGeometry> = devs.geoms().to_vec();
    let paths: Vec<String> = devs.paths().to_vec();
    // Members removed from the pool have no device: a place each, and the
    // storage sized for every member (as the kernel's assembly).
    let mut sizing = geoms.clone();
    {
        let mut sb = Box::new(Superblock::EMPTY);
        let mut scratch = vec![0u8; BLOCK_SIZE];
        let mut rd = Reader(&mut *devs);
        if zvcore::recovery::missing_members(&geoms, &mut rd, &mut sb, &mut scratch).is_ok() {
            let removed = sb.removed_mask().count_ones() as usize;
            if removed > 0 {
                geoms.extend(std::iter::repeat_n(DeviceGeometry::ABSENT, removed));
                sizing = sb.members().iter().map(|m| m.geom).collect();
            }
        }
    }
    let n = geoms.len();
    let Ok(n16) = u16::try_from(n) else {
        return Report::Refused(Refusal::Mismatch("too many devices".into()));
    };
    let blocks: u64 = sizing
        .iter()
        .map(|g| u64::from(g.nr_zones).saturating_mul(g.zone_blocks))
        .fold(0, u64::saturating_add);
    let nz: usize = sizing.iter().map(|g| g.nr_zones as usize).sum();
    let mut bitmap = vec![0u64; bitmap_words(blocks.min(VERIFY_WINDOW_BLOCKS)).max(1)];
    let mut counts = vec![0u64; nz];
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let st = storage(&sizing);
    let mut rd = Reader(devs);
    let r: Result<(Engine, _), _> = recover(
        geoms,
        &mut rd,
        // (Read-only: a pool with mirrored volumes is checked like any.)
        PoolConfig {
            mirrored_volumes: true,
            ..PoolConfig::default_for(n16)
        },
        st,
        &mut scratch,
        &mut |_| {},
        Some(Check {
            bitmap: &mut bitmap,
            counts: &mut counts,
        }),
    );
    let (pool, asm) = match r {
        Ok(x) => x,
        Err(e) => return Report::Refused(Refusal::from_core(e)),
    };
    let members: Vec<String> = asm
        .dev_of_member
        .iter()
        .take(usize::from(asm.nr_members))
        .map(|&d| paths.get(usize::from(d)).cloned().unwrap_or_default())
        .collect();
    let damage = asm.damage.map(|d| DamageReport {
        damage: d,
        bad_path: d
            .bad
            .and_then(|b| members.get(usize::from(b.member)).cloned()),
        volumes: d
            .volume_ids()
            .iter()
            .map(|&id| match pool.volume(id) {
                Some(v) if !d.unusable => vol_name(v),
                _ => format!("id {id}"),
            })
            .collect(),
    });
    Report::Assembled(Box::new(Assembled {
        members,
        sb_generation: asm.sb_generation,
        checkpoint_generation: asm.checkpoint_generation,
        fell_back: asm.fell_back,
        checkpoint_seq: pool.checkpoint_journal_seq(),
        replayed_blocks: asm.replayed_blocks,
        last_seq: asm.last_seq,
        max_seq_seen: asm.max_seq_seen,
        commit_blocks: asm.commit_blocks,
        committed_seq: asm.committed_seq,
        torn_blocks: asm.torn_blocks,
        repaired_blocks: asm.repaired_blocks,
        ckpt_copy_reads: asm.ckpt_copy_reads,
        suspect_gap: asm.suspect_gap,
        ro_compat: asm.read_only,
        volumes: pool.volumes().iter().filter(|v| v.listed()).count(),
        verified: true,
        last_rewind: pool.last_rewind(),
        damage,
    }))
}

/// A journal block found in a log zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalBlock {
    /// Index of the device in the order given.
    pub dev: usize,
    /// Member index (from the device's own superblock), if known.
    pub member: Option<u16>,
    /// Device-local zone index.
    pub zone: u32,
    /// Block offset in the zone.
    pub block: u64,
    /// Sequence number (claimed, for an invalid block).
    pub seq: u64,
    /// Header fields of a valid block.
    pub ckpt_gen: Option<u64>,
    pub commit_seq: Option<u64>,
    pub flags: Option<u16>,
    pub valid: bool,
}

/// `commit`, `-`, or unknown bits in hex.
pub fn flag_words(flags: u16) -> String {
    let mut w = Vec::new();
    if flags & JF_COMMIT != 0 {
        w.push("commit".to_string());
    }
    let rest = flags & !JF_COMMIT;
    if rest != 0 {
        w.push(format!("{rest:#x}"));
    }
    if w.is_empty() {
        "-".into()
    } else {
        w.join(",")
    }
}

/// The newest valid superblock of device `d` (block 0 of each log zone):
/// also what `pool import` reads to find pools.
pub fn device_superblock(
    devs: &mut dyn DeviceSet,
    d: usize,
    g: &DeviceGeometry,
) -> Option<Box<Superblock>> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut best: Option<Box<Superblock>> = None;
    for i in 0..LOG_ZONES {
        let block = u64::from(g.first_meta_zone() + i) * g.zone_blocks;
        if devs.read_block(d, block, &mut buf).is_err() {
            continue;
        }
        let mut sb = Box::new(Superblock::EMPTY);
        if sb.decode_into(&buf).is_ok()
            && best.as_ref().is_none_or(|b| sb.generation > b.generation)
        {
            best = Some(sb);
        }
    }
    best
}

/// Every journal block in the log zones of every device (up to the write
/// pointer; the whole zone on conventional zones), valid ones of the pool
/// and ones that carry the journal magic and the pool's identity but do
/// not decode; in sequence order. Blocks of another pool are stale and
/// left out. The pool is the one of the newest superblock found.
pub fn journal_blocks(devs: &mut dyn DeviceSet) -> Vec<JournalBlock> {
    let geoms = devs.geoms().to_vec();
    let sbs: Vec<Option<Box<Superblock>>> = geoms
        .iter()
        .enumerate()
        .map(|(d, g)| device_superblock(devs, d, g))
        .collect();
    let uuid = sbs
        .iter()
        .flatten()
        .max_by_key(|s| s.generation)
        .map(|s| s.pool_uuid);
    let mut out = Vec::new();
    let mut buf = vec![0u8; BLOCK_SIZE];
    for (d, g) in geoms.iter().enumerate() {
        let member = sbs[d]
            .as_ref()
            .filter(|s| Some(s.pool_uuid) == uuid)
            .map(|s| s.member_index);
        for i in 0..LOG_ZONES {
            let zone = g.first_meta_zone() + i;
            let limit = if g.zone_is_conventional(zone) {
                g.zone_cap_blocks
            } else {
                devs.zone_wp(d, zone).unwrap_or(0).min(g.zone_cap_blocks)
            };
            let start = u64::from(zone) * g.zone_blocks;
            for off in 1..limit {
                if devs.read_block(d, start + off, &mut buf).is_err() {
                    continue;
                }
                if peek_magic(&buf) != Some(JOURNAL_MAGIC) {
                    continue;
                }
                let jb = match decode_journal_block(&buf) {
                    Ok((h, _)) => {
                        if uuid.is_some_and(|u| u != h.pool_uuid) {
                            continue;
                        }
                        JournalBlock {
                            dev: d,
                            member,
                            zone,
                            block: off,
                            seq: h.seq,
                            ckpt_gen: Some(h.ckpt_gen),
                            commit_seq: Some(h.commit_seq),
                            flags: Some(h.flags),
                            valid: true,
                        }
                    }
                    Err(_) => {
                        // Pool UUID at 24, sequence at 40 (format::journal).
                        if uuid.is_some_and(|u| buf.get(24..40) != Some(&u[..])) {
                            continue;
                        }
                        let seq = buf
                            .get(40..48)
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .map(u64::from_le_bytes)
                            .unwrap_or(0);
                        JournalBlock {
                            dev: d,
                            member,
                            zone,
                            block: off,
                            seq,
                            ckpt_gen: None,
                            commit_seq: None,
                            flags: None,
                            valid: false,
                        }
                    }
                };
                out.push(jb);
            }
        }
    }
    out.sort_by_key(|j| (j.seq, j.dev, j.zone, j.block));
    out
}
