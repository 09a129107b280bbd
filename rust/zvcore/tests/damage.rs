// SPDX-License-Identifier: GPL-2.0
//! Damage test: metadata of a cleanly stopped pool is damaged the way media
//! fails (bit flips, zeroed blocks, blocks overwritten by other metadata
//! blocks, swapped blocks, a checkpoint zone reset). Recovery must either
//! rebuild exactly the committed state or report the damage
//! (`Assembly::damage`) or refuse: it never returns an older state as if it
//! were current. A rewind past the damage is recorded in the pool and the
//! pool keeps working.
//!
//! The one block whose loss cannot be told from a crash is the newest
//! journal block (the closing commit block, which carries no records): the
//! randomized part never damages it (see `Documentation/design-recovery.md`).
//!
//! `ZVCORE_SEED` replays a run, `ZVCORE_OPS` scales it.

mod harness;
mod sim;

use harness::*;
use sim::*;
use std::collections::BTreeMap;
use zvcore::format::layout::{ckpt_zones_of, LOG_ZONES};
use zvcore::format::{decode_journal_block, JOURNAL_MAGIC};
use zvcore::format::{
    peek_magic, BLOCK_SIZE, CKPT_COMMIT_MAGIC, CKPT_DATA_MAGIC, CKPT_HEADER_MAGIC,
};
use zvcore::geom::DeviceGeometry;
use zvcore::recovery::{recover, Assembly, Check, DamageKind};
use zvcore::verify::bitmap_words;

/// Every volume's block versions (0 = never written).
type State = Vec<(u32, Vec<u64>)>;

fn state_of(w: &mut World) -> State {
    try_state_of(w).unwrap_or_else(|e| panic!("read: {e}"))
}

/// The state, or the first read whose block holds another block's data.
fn try_state_of(w: &mut World) -> Result<State, String> {
    let ids: Vec<(u32, u64)> = w
        .pool()
        .volumes()
        .iter()
        .filter_map(|v| v.table.map(|t| (v.id, t.size().min(1 << 20))))
        .collect();
    let mut out = Vec::new();
    for (id, n) in ids {
        out.push((id, w.read_range(id, 0, n)?));
    }
    out.sort();
    Ok(out)
}

/// A pool with data, snapshots and checkpoints behind it, stopped cleanly
/// (`None` when its last commit left no room for the closing block: the
/// log zone could not be switched yet).
fn try_closed_world(seed: u64, ops: u64) -> Option<(World, State)> {
    try_closed_world_with(seed, ops, None)
}

/// [`try_closed_world`]; with `copies`, its pool has metadata copies (if it
/// has two members or more) or none.
fn try_closed_world_with(seed: u64, ops: u64, copies: Option<bool>) -> Option<(World, State)> {
    let mut w = World::new(seed);
    if let Some(c) = copies {
        let pct = if c { 100 } else { 0 };
        w.journal_copies_pct = pct;
        w.checkpoint_copies_pct = pct;
    }
    w.populate(ops);
    if !w.close() {
        return None;
    }
    let st = state_of(&mut w);
    Some((w, st))
}

fn closed_world(seed: u64, ops: u64) -> (World, State) {
    closed_world_with(seed, ops, None)
}

fn closed_world_with(seed: u64, ops: u64, copies: Option<bool>) -> (World, State) {
    let mut rng = Rng::new(seed);
    (0..8)
        .find_map(|_| try_closed_world_with(rng.next_u64(), ops, copies))
        .expect("no world could be closed")
}

/// (device, address, sequence) of every valid journal block of the pool.
fn journal_blocks(w: &World) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    for (d, (dev, g)) in w.devs.iter().zip(&w.geoms).enumerate() {
        let first = u64::from(g.first_meta_zone()) * g.zone_blocks;
        let end = first + u64::from(g.meta_zones) * g.zone_blocks;
        let mut b = vec![0u8; BLOCK_SIZE];
        for a in dev.written() {
            if a < first || a >= end {
                continue;
            }
            dev.read_raw(a, &mut b);
            if let Ok((h, _)) = decode_journal_block(&b) {
                if h.pool_uuid == w.uuid {
                    out.push((d, a, h.seq));
                }
            }
        }
    }
    out.sort_by_key(|x| x.2);
    out
}

/// (device, address) of every copy of journal block `seq`.
fn copies_of(journal: &[(usize, u64, u64)], seq: u64) -> Vec<(usize, u64)> {
    journal
        .iter()
        .filter(|j| j.2 == seq)
        .map(|j| (j.0, j.1))
        .collect()
}

/// Every written metadata block: (device, address).
fn meta_addrs(w: &World) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for (d, (dev, g)) in w.devs.iter().zip(&w.geoms).enumerate() {
        let first = u64::from(g.first_meta_zone()) * g.zone_blocks;
        let end = first + u64::from(g.meta_zones) * g.zone_blocks;
        out.extend(
            dev.written()
                .into_iter()
                .filter(|a| *a >= first && *a < end)
                .map(|a| (d, a)),
        );
    }
    out
}

#[allow(
    clippy::large_enum_variant,
    reason = "a test helper, built a few times"
)]
enum Outcome {
    Refused(String),
    Damaged(World, Assembly),
    Clean(World, Assembly),
}

/// Recovers `devs` (verifier on); on success wraps the pool in a world.
fn recover_devs(base: &World, devs: Vec<SimDev>, rewind: bool) -> Outcome {
    let n = devs.len();
    let geoms: Vec<DeviceGeometry> = base.geoms.clone();
    let order: Vec<usize> = (0..n).collect();
    let total: u64 = geoms
        .iter()
        .map(|g| u64::from(g.nr_zones) * g.zone_blocks)
        .sum();
    let nz: u32 = geoms.iter().map(|g| g.nr_zones).sum();
    let mut bm = vec![0u64; bitmap_words(total)];
    let mut counts = vec![0u64; nz as usize];
    let mut scratch = vec![0u8; 2 * BLOCK_SIZE];
    let mut to_finish = Vec::new();
    let r = {
        let mut rd = Reader {
            devs: &devs,
            order: &order,
            absent: 0,
        };
        recover(
            geoms.clone(),
            &mut rd,
            engine_config(n as u16),
            storage(&geoms),
            &mut scratch,
            &mut |z| to_finish.push(z),
            Some(Check {
                bitmap: &mut bm,
                counts: &mut counts,
            }),
        )
    };
    let (mut pool, asm) = match r {
        Ok(x) => x,
        Err(e) => return Outcome::Refused(format!("{e:?}")),
    };
    if let (Some(d), true) = (asm.damage, rewind) {
        let rw = pool.record_rewind(&d, &asm);
        assert_eq!(rw.from_seq, d.seq);
    } else if asm.damage.is_some() {
        // Read-only assembly: nothing may be written.
        pool.set_read_only();
    }
    let mut w = World::new(base.seed);
    w.take_members(base, devs);
    if !pool.is_read_only() {
        for z in to_finish {
            let (d, local) = w.zone_loc(z);
            w.devs[d]
                .finish(local)
                .unwrap_or_else(|e| panic!("finish {z}: {e:?}"));
        }
    }
    w.adopt_raw(pool);
    match asm.damage {
        Some(_) => Outcome::Damaged(w, asm),
        None => Outcome::Clean(w, asm),
    }
}

fn flip(devs: &mut [SimDev], d: usize, a: u64, byte: usize) {
    let mut b = vec![0u8; BLOCK_SIZE];
    devs[d].read_raw(a, &mut b);
    b[byte] ^= 0x10;
    devs[d].poke(a, &b);
}

/// Random damage to 1-3 metadata blocks of a pool without metadata copies,
/// then of one with them (two members or more): never a wrong state without
/// a damage report. Without copies some damage is reported; with them most
/// is repaired from the other copy.
#[test]
fn random_damage_is_reported_never_silent() {
    let seed = seed_from_env("damage");
    let runs = ops_from_env(200_000) / 1000;
    let mut rng = Rng::new(seed);
    let (base, expected) = closed_world_with(rng.next_u64(), 2500, Some(false));
    let outcomes = random_damage(&base, &expected, runs, &mut rng, seed);
    eprintln!("damage: {runs} runs (seed {seed:#x}), no copies: {outcomes:?}");
    assert!(outcomes.contains_key("exact"), "no damage was harmless");
    assert!(
        outcomes.keys().any(|k| k.starts_with("damage")),
        "no damage was reported"
    );
    let (base, expected) = closed_world_with(rng.next_u64(), 2500, Some(true));
    let outcomes = random_damage(&base, &expected, runs, &mut rng, seed);
    eprintln!(
        "damage: {runs} runs, {} member(s), copies: {outcomes:?}",
        base.geoms.len()
    );
    assert!(outcomes.contains_key("exact"), "no damage was harmless");
}

/// Damages 1-3 random metadata blocks of `base` (not its newest journal
/// block) `runs` times and recovers: counts the outcomes.
fn random_damage(
    base: &World,
    expected: &State,
    runs: u64,
    rng: &mut Rng,
    seed: u64,
) -> BTreeMap<String, u64> {
    let journal = journal_blocks(base);
    let newest = *journal.last().expect("journal blocks");
    let metas: Vec<(usize, u64)> = meta_addrs(base)
        .into_iter()
        .filter(|&(d, a)| (d, a) != (newest.0, newest.1))
        .collect();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..runs {
        let mut devs = base.devs.clone();
        let nr_damaged = rng.range(1, 4);
        for _ in 0..nr_damaged {
            let (d, a) = metas[rng.below(metas.len() as u64) as usize];
            let mut b = vec![0u8; BLOCK_SIZE];
            devs[d].read_raw(a, &mut b);
            match rng.below(4) {
                0 => {
                    for _ in 0..rng.range(1, 4) {
                        let bit = rng.below(BLOCK_SIZE as u64 * 8) as usize;
                        b[bit / 8] ^= 1 << (bit % 8);
                    }
                    devs[d].poke(a, &b);
                }
                1 => devs[d].poke(a, &vec![0u8; BLOCK_SIZE]),
                2 => {
                    let (od, oa) = metas[rng.below(metas.len() as u64) as usize];
                    let mut o = vec![0u8; BLOCK_SIZE];
                    devs[od].read_raw(oa, &mut o);
                    devs[d].poke(a, &o);
                }
                _ => {
                    let (od, oa) = metas[rng.below(metas.len() as u64) as usize];
                    let mut o = vec![0u8; BLOCK_SIZE];
                    devs[od].read_raw(oa, &mut o);
                    devs[d].poke(a, &o);
                    devs[od].poke(oa, &b);
                }
            }
        }
        let name = match recover_devs(base, devs, false) {
            Outcome::Refused(e) => format!("refused {e}"),
            Outcome::Damaged(mut w, asm) => {
                let d = asm.damage.unwrap();
                let u = if d.unusable { " (unusable)" } else { "" };
                // After one damaged journal block, the state before it never
                // reads another block's data: the journal after it names
                // every zone reclaimed since. (A lost checkpoint, or a
                // second damaged block holding such a name, can hide one:
                // design-recovery.md §8a.)
                if nr_damaged == 1 && d.kind != DamageKind::CheckpointLost {
                    if let Err(e) = try_state_of(&mut w) {
                        panic!(
                            "seed {seed:#x}: state before {:?} reads foreign data: {e}",
                            d.kind
                        );
                    }
                }
                format!("damage {:?}{u}", d.kind)
            }
            Outcome::Clean(mut w, _) => {
                let got = state_of(&mut w);
                assert!(
                    got == *expected,
                    "seed {seed:#x}: recovery returned another state without reporting damage"
                );
                "exact".to_string()
            }
        };
        *outcomes.entry(name).or_default() += 1;
    }
    outcomes
}

/// Runs `case` on worlds from seeds derived from `name`'s until one where
/// the state before the damage is usable (GC may have reclaimed zones it
/// maps since, which is reported as `Damage::unusable`).
fn on_usable_world(name: &str, case: impl Fn(u64) -> bool) {
    on_worlds(name, 1, 24, case);
}

/// Runs `case` on worlds from seeds derived from `name`'s until `want` of
/// them, out of at most `tries`, were of the kind it needs.
fn on_worlds(name: &str, want: usize, tries: usize, case: impl Fn(u64) -> bool) {
    let mut rng = Rng::new(seed_from_env(name));
    let mut done = 0;
    for _ in 0..tries {
        if case(rng.next_u64()) {
            done += 1;
            if done == want {
                return;
            }
        }
    }
    panic!("{name}: only {done} of {want} worlds were of the kind the case needs");
}

#[test]
fn mid_journal_damage_is_refused_then_rewound() {
    on_usable_world("damage-mid", mid_journal_case);
}

fn mid_journal_case(seed: u64) -> bool {
    let Some((base, expected)) = try_closed_world(seed, 800) else {
        return false;
    };
    let journal = journal_blocks(&base);
    let ckpt_seq = base.pool_ref().checkpoint_journal_seq();
    // The first journal block after the newest checkpoint.
    let &(d, a, seq) = journal
        .iter()
        .find(|j| j.2 > ckpt_seq)
        .expect("journal after the checkpoint");
    if journal.last().unwrap().2 <= seq + 1 {
        return false; // only the closing block follows: another world
    }
    let mut devs = base.devs.clone();
    // Every copy of it (journal copies: two members hold one each).
    let copies = copies_of(&journal, seq);
    for &(cd, ca) in &copies {
        flip(&mut devs, cd, ca, 200);
    }
    let (mut ro, asm) = match recover_devs(&base, devs.clone(), false) {
        Outcome::Damaged(w, asm) => (w, asm),
        Outcome::Clean(..) => panic!(
            "damage not reported: block {seq} at {d}:{a}, checkpoint covers {ckpt_seq}, journal {:?}",
            journal.iter().map(|j| j.2).collect::<Vec<_>>()
        ),
        Outcome::Refused(e) => panic!("refused: {e}"),
    };
    let dmg = asm.damage.unwrap();
    assert_eq!(dmg.kind, DamageKind::JournalInvalid);
    assert_eq!(dmg.seq, seq);
    if dmg.unusable {
        return false;
    }
    let bad = dmg.bad.expect("location of the bad block");
    assert_eq!(bad.claimed_seq, seq);
    let at = usize::from(bad.member);
    assert!(
        copies.contains(&(
            at,
            u64::from(bad.zone) * base.geoms[at].zone_blocks + bad.block
        )),
        "bad block reported at {bad:?}, damaged {copies:?} ({d}:{a} first)"
    );
    // Every damaged copy is counted; a torn block an earlier crash left
    // (invalid, claiming the number the journal then gave the next block)
    // may be counted too: it stays above the newest checkpoint while the
    // journal goes on after assemblies without a checkpoint.
    assert!(
        dmg.bad_blocks as usize >= copies.len(),
        "{} bad blocks counted, {} copies damaged",
        dmg.bad_blocks,
        copies.len()
    );
    assert_eq!(asm.repaired_blocks, 0);
    assert!(dmg.lost_blocks > 0 && dmg.lost_records > 0, "{dmg:?}");
    if dmg.nr_volumes == 0 {
        return false; // only zone records lost: another world
    }
    assert_eq!(dmg.lost_committed_blocks, dmg.lost_blocks);
    // Read-only: reads work, nothing can change, nothing was written.
    assert!(ro.pool().is_read_only());
    let vol = expected[0].0;
    assert!(ro.pool().discard(vol, 0, 1).is_err());
    // Blocks in zones reclaimed after the damage were dropped (they read
    // as zeros); no block may read another block's data.
    if let Err(e) = try_state_of(&mut ro) {
        panic!("seed {seed:#x}: read-only state reads foreign data: {e}");
    }
    for (x, y) in ro.devs.iter().zip(&devs) {
        assert!(x.same_contents(y), "read-only assembly wrote to a member");
    }
    // Rewind: accepted, recorded, the pool works and reassembles clean.
    let Outcome::Damaged(mut w, _) = recover_devs(&base, devs, true) else {
        panic!("damage not reported on the rewind");
    };
    let rw = w.pool().last_rewind().expect("rewind recorded");
    assert_eq!((rw.count, rw.from_seq), (1, seq));
    assert_eq!(rw.blocks, dmg.lost_blocks);
    w.checkpoint_now();
    for _ in 0..300 {
        w.step_blind();
    }
    w.settle();
    assert!(w.close());
    let before = state_of(&mut w);
    match recover_devs(&w, w.devs.clone(), false) {
        Outcome::Clean(mut w2, _) => {
            assert_eq!(state_of(&mut w2), before, "state after the rewind");
            assert_eq!(w2.pool().last_rewind(), Some(rw), "rewind kept in the pool");
        }
        Outcome::Damaged(_, a) => panic!("damage after a rewind: {:?}", a.damage),
        Outcome::Refused(e) => panic!("refused after a rewind: {e}"),
    }
    true
}

#[test]
fn newest_commit_group_damage_is_detected() {
    on_usable_world("damage-newest", newest_group_case);
}

fn newest_group_case(seed: u64) -> bool {
    let Some((base, _)) = try_closed_world(seed, 1500) else {
        return false;
    };
    let journal = journal_blocks(&base);
    // The newest block with records: the one before the closing block,
    // unless the last commit was a checkpoint (then try another world).
    let mut seqs: Vec<u64> = journal.iter().map(|j| j.2).collect();
    seqs.dedup();
    let seq = seqs[seqs.len() - 2];
    if seq <= base.pool_ref().checkpoint_journal_seq() {
        return false;
    }
    let mut devs = base.devs.clone();
    for (cd, ca) in copies_of(&journal, seq) {
        flip(&mut devs, cd, ca, 100);
    }
    match recover_devs(&base, devs, false) {
        Outcome::Damaged(_, asm) => {
            let dmg = asm.damage.unwrap();
            assert_eq!(dmg.seq, seq);
            assert_eq!(dmg.kind, DamageKind::JournalInvalid);
            true
        }
        _ => panic!("damage to the newest commit group not reported"),
    }
}

/// A journal block written to the wrong address, block 1 of the member's
/// other log zone, names a successor that never followed the zone the
/// journal is in; with a later block of that zone damaged to zeros, the
/// successor's word would end the zone before its committed blocks
/// (`recovery/log_limit.rs`). The zone is finished first, so that its
/// write pointer says nothing. The loss must be reported (or the state be
/// exact), never the state before it as if it were current.
#[test]
fn misplaced_journal_block_does_not_end_the_log() {
    on_worlds("damage-misplaced", 3, 24, misplaced_case);
}

fn misplaced_case(seed: u64) -> bool {
    let Some((base, expected)) = try_closed_world_with(seed, 1500, Some(false)) else {
        return false;
    };
    let ckpt_seq = base.pool_ref().checkpoint_journal_seq();
    let journal = journal_blocks(&base);
    let &(d, newest_at, newest) = journal.iter().max_by_key(|j| j.2).unwrap();
    let dev = &base.devs[d];
    let zone = dev.zone_of(newest_at);
    let at = |seq: u64| journal.iter().find(|j| j.2 == seq && j.0 == d);
    // Two blocks to replay in the newest block's zone, the second not the
    // newest: the first goes to the other zone's block 1, the second is
    // zeroed.
    let s = ckpt_seq + 1;
    let (Some(&(_, sa, _)), Some(&(_, ta, _))) = (at(s), at(s + 1)) else {
        return false;
    };
    // (A conventional log zone is read whole: no write pointer to trust.)
    if s + 1 >= newest || dev.is_conv(zone) || dev.zone_of(sa) != zone || dev.zone_of(ta) != zone {
        return false;
    }
    // The member's other log zone, its block 1 older than this zone's.
    let first = base.geoms[d].first_meta_zone();
    let Some(other) = (first..first + LOG_ZONES).find(|z| *z != zone) else {
        return false;
    };
    let b1 = dev.zone_start(other) + 1;
    let zone_first = journal
        .iter()
        .find(|j| j.0 == d && j.1 == dev.zone_start(zone) + 1)
        .map(|j| j.2);
    match (journal.iter().find(|j| j.0 == d && j.1 == b1), zone_first) {
        (Some(o), Some(f)) if o.2 < f => {}
        _ => return false,
    }
    let mut devs = base.devs.clone();
    if !matches!(devs[d].report(zone), Some((Cond::Full, _))) {
        devs[d].finish(zone).unwrap();
    }
    // Finished, undamaged: the exact state.
    match recover_devs(&base, devs.clone(), false) {
        Outcome::Clean(mut w, _) => assert_eq!(state_of(&mut w), expected, "seed {seed:#x}"),
        _ => panic!("seed {seed:#x}: a finished log zone, no damage: not assembled clean"),
    }
    let mut b = vec![0u8; BLOCK_SIZE];
    devs[d].read_raw(sa, &mut b);
    devs[d].poke(b1, &b);
    devs[d].poke(ta, &vec![0u8; BLOCK_SIZE]);
    match recover_devs(&base, devs, false) {
        Outcome::Damaged(_, asm) => {
            let dmg = asm.damage.unwrap();
            assert_eq!(dmg.seq, s + 1, "seed {seed:#x}: {dmg:?}");
        }
        Outcome::Clean(..) => panic!("seed {seed:#x}: block {} lost, not reported", s + 1),
        Outcome::Refused(e) => panic!("seed {seed:#x}: refused: {e}"),
    }
    true
}

/// Journal copies: one copy of every journal block after the checkpoint
/// damaged (on either member, in turn), each of them repaired from the
/// other: the exact committed state, no damage, the repair counted.
#[test]
fn one_damaged_journal_copy_is_repaired() {
    // (Worlds of two members or more, with a journal after the checkpoint.)
    on_worlds("damage-copies", 4, 60, copies_case);
}

/// A closed world of two members or more with both kinds of metadata
/// copies, and its state.
fn copies_world(seed: u64, ops: u64) -> Option<(World, State)> {
    if World::new(seed).geoms.len() < 2 {
        return None;
    }
    try_closed_world_with(seed, ops, Some(true))
}

fn copies_case(seed: u64) -> bool {
    let Some((w, expected)) = copies_world(seed, 1200) else {
        return false;
    };
    let journal = journal_blocks(&w);
    let ckpt_seq = w.pool_ref().checkpoint_journal_seq();
    let mut after: Vec<u64> = journal
        .iter()
        .map(|j| j.2)
        .filter(|s| *s > ckpt_seq)
        .collect();
    after.dedup();
    if after.len() < 3 {
        return false;
    }
    let mut devs = w.devs.clone();
    for (k, s) in after.iter().enumerate() {
        let c = copies_of(&journal, *s);
        assert_eq!(
            c.len(),
            2,
            "seed {seed:#x}: journal block {s} has copies {c:?}"
        );
        assert_ne!(c[0].0, c[1].0, "seed {seed:#x}: both copies on one member");
        let (d, a) = c[k % 2];
        flip(&mut devs, d, a, 64 + k % 512);
    }
    match recover_devs(&w, devs, false) {
        Outcome::Clean(mut w2, asm) => {
            assert_eq!(state_of(&mut w2), expected, "seed {seed:#x}: state");
            assert_eq!(asm.repaired_blocks as usize, after.len(), "seed {seed:#x}");
        }
        Outcome::Damaged(_, a) => panic!("seed {seed:#x}: damage: {:?}", a.damage),
        Outcome::Refused(e) => panic!("seed {seed:#x}: refused: {e}"),
    }
    // Without the copies (both damaged) the first one is damage.
    let mut devs = w.devs.clone();
    for (d, a) in copies_of(&journal, after[0]) {
        flip(&mut devs, d, a, 100);
    }
    match recover_devs(&w, devs, false) {
        Outcome::Damaged(_, a) => {
            assert_eq!(a.damage.map(|d| d.seq), Some(after[0]), "seed {seed:#x}");
        }
        _ => panic!("seed {seed:#x}: both copies damaged, not reported"),
    }
    true
}

#[test]
fn lost_checkpoint_zone_is_refused() {
    on_usable_world("damage-ckpt", lost_checkpoint_case);
}

fn lost_checkpoint_case(seed: u64) -> bool {
    let Some((base, _)) = try_closed_world(seed, 2500) else {
        return false;
    };
    let gen = base.pool_ref().checkpoint_generation();
    assert!(gen >= 3, "several checkpoints were written");
    // A world whose checkpoints are all one chain (a full checkpoint and
    // its deltas in one set) has no older checkpoint to fall back to:
    // losing that set leaves nothing to assemble, which is refused.
    let older = (0..base.geoms.len()).any(|d| set_blocks_on(&base, &base.devs, gen + 1, d) > 0);
    let mut devs = base.devs.clone();
    // Every zone of the set on every member.
    lose_set_zones(&base, &mut devs, gen, |_| true);
    if !older {
        match recover_devs(&base, devs, false) {
            Outcome::Refused(_) => return false,
            _ => panic!("seed {seed:#x}: the only checkpoint chain lost, not refused"),
        }
    }
    match recover_devs(&base, devs, false) {
        Outcome::Damaged(_, asm) => {
            let dmg = asm.damage.unwrap();
            assert_eq!(dmg.kind, DamageKind::CheckpointLost);
            assert_eq!(dmg.lost_gen, gen);
            assert!(!dmg.lost_header_found);
            !dmg.unusable
        }
        Outcome::Clean(..) => panic!("lost checkpoint not reported"),
        Outcome::Refused(e) => panic!("refused instead of reporting: {e}"),
    }
}

/// Loses the contents of every zone of checkpoint generation `gen`'s set
/// (`k` zones a member) on the members `on` says.
fn lose_set_zones(base: &World, devs: &mut [SimDev], gen: u64, on: impl Fn(usize) -> bool) {
    let lost = base.geoms.iter().enumerate().flat_map(|(d, g)| {
        let k = ckpt_zones_of(g.meta_zones);
        let first = g.first_meta_zone() + LOG_ZONES + (gen % 2) as u32 * k;
        (first..first + k).map(move |z| (d, *g, z))
    });
    for (d, g, z) in lost.filter(|x| on(x.0)).collect::<Vec<_>>() {
        if devs[d].reset(z).is_err() {
            // A conventional zone: lose its contents.
            let (lo, hi) = (
                u64::from(z) * g.zone_blocks,
                u64::from(z + 1) * g.zone_blocks,
            );
            for a in devs[d].written() {
                if a >= lo && a < hi {
                    devs[d].poke(a, &vec![0u8; BLOCK_SIZE]);
                }
            }
        }
    }
}

/// Checkpoint blocks in member `d`'s zones of checkpoint generation `gen`'s
/// set.
fn set_blocks_on(base: &World, devs: &[SimDev], gen: u64, d: usize) -> usize {
    let g = base.geoms[d];
    let k = ckpt_zones_of(g.meta_zones);
    let first = g.first_meta_zone() + LOG_ZONES + (gen % 2) as u32 * k;
    let (lo, hi) = (
        u64::from(first) * g.zone_blocks,
        u64::from(first + k) * g.zone_blocks,
    );
    let mut b = vec![0u8; BLOCK_SIZE];
    devs[d]
        .written()
        .into_iter()
        .filter(|a| *a >= lo && *a < hi)
        .filter(|a| {
            devs[d].read_raw(*a, &mut b);
            matches!(
                peek_magic(&b),
                Some(CKPT_HEADER_MAGIC | CKPT_DATA_MAGIC | CKPT_COMMIT_MAGIC)
            )
        })
        .count()
}

/// Checkpoint copies: the newest checkpoint's zones lost on one member (in
/// turn each), or one copy of random checkpoint blocks damaged: the other
/// copies make a whole checkpoint, the state is exact, no damage, the
/// blocks read from their second copy counted.
#[test]
fn checkpoint_copies_survive_one_members_metadata_zones() {
    // (Worlds of two members or more.)
    on_worlds("damage-ckpt-copies", 4, 60, ckpt_copies_case);
}

fn ckpt_copies_case(seed: u64) -> bool {
    let Some((w, expected)) = copies_world(seed, 2500) else {
        return false;
    };
    assert!(w.pool_ref().geom().ckpt_copies());
    let gen = w.pool_ref().checkpoint_generation();
    let n = w.geoms.len();
    for lost in 0..n {
        let mut devs = w.devs.clone();
        let held = set_blocks_on(&w, &devs, gen, lost) > 0;
        lose_set_zones(&w, &mut devs, gen, |d| d == lost);
        assert_eq!(set_blocks_on(&w, &devs, gen, lost), 0);
        match recover_devs(&w, devs, false) {
            Outcome::Clean(mut w2, asm) => {
                assert_eq!(
                    state_of(&mut w2),
                    expected,
                    "seed {seed:#x}: member {lost} lost"
                );
                assert_eq!(asm.checkpoint_generation, gen, "seed {seed:#x}");
                assert!(!asm.fell_back, "seed {seed:#x}: the older set was used");
                // Member 0 holds the first copy of the chain's first
                // blocks (its header among them); another member may hold
                // only second copies, or nothing of the chain.
                if lost == 0 {
                    assert!(
                        held && asm.ckpt_copy_reads > 0,
                        "seed {seed:#x}: no second copy read"
                    );
                }
                // The checkpoint written first rewrites the lost copies:
                // the next assembly needs no second copy.
                w2.checkpoint_now();
                assert!(w2.close(), "seed {seed:#x}: close");
                let st2 = state_of(&mut w2);
                match recover_devs(&w2, w2.devs.clone(), false) {
                    Outcome::Clean(mut w3, a3) => {
                        assert_eq!(state_of(&mut w3), st2, "seed {seed:#x}: state");
                        assert_eq!(a3.ckpt_copy_reads, 0, "seed {seed:#x}: member {lost}");
                    }
                    _ => panic!("seed {seed:#x}: member {lost}: reassembly not clean"),
                }
            }
            Outcome::Damaged(_, a) => {
                panic!(
                    "seed {seed:#x}: member {lost}'s set lost: damage {:?}",
                    a.damage
                )
            }
            Outcome::Refused(e) => panic!("seed {seed:#x}: member {lost}'s set lost: {e}"),
        }
    }
    // Every member's zones lost (both copies of every block): damage, or
    // (the world's checkpoints all one chain in that set: nothing older
    // to fall back to, as in `lost_checkpoint_case`) refused.
    let older = (0..w.geoms.len()).any(|d| set_blocks_on(&w, &w.devs, gen + 1, d) > 0);
    let mut devs = w.devs.clone();
    lose_set_zones(&w, &mut devs, gen, |_| true);
    match recover_devs(&w, devs, false) {
        Outcome::Refused(_) if !older => {}
        Outcome::Damaged(_, a) => {
            let d = a.damage.expect("damage");
            assert_eq!((d.kind, d.lost_gen), (DamageKind::CheckpointLost, gen));
        }
        Outcome::Clean(..) => panic!("seed {seed:#x}: both copies lost, not reported"),
        Outcome::Refused(e) => panic!("seed {seed:#x}: refused: {e}"),
    }
    true
}

#[test]
fn superblock_damage_is_told_from_no_pool() {
    let seed = seed_from_env("damage-sb");
    let (base, _) = closed_world(seed, 300);
    let sb_addrs: Vec<(usize, u64)> = base
        .geoms
        .iter()
        .enumerate()
        .flat_map(|(d, g)| {
            let f = u64::from(g.first_meta_zone()) * g.zone_blocks;
            [(d, f), (d, f + g.zone_blocks)]
        })
        .collect();
    // One flipped byte in every copy: damage (EUCLEAN), not "no pool".
    let mut devs = base.devs.clone();
    for &(d, a) in &sb_addrs {
        flip(&mut devs, d, a, 300);
    }
    match recover_devs(&base, devs, false) {
        Outcome::Refused(e) => assert!(e.starts_with("Corrupt("), "{e}"),
        _ => panic!("damaged superblocks accepted"),
    }
    // Nothing that looks like a superblock: no pool (ENOENT).
    let mut devs = base.devs.clone();
    for &(d, a) in &sb_addrs {
        devs[d].poke(a, &vec![0u8; BLOCK_SIZE]);
    }
    match recover_devs(&base, devs, false) {
        Outcome::Refused(e) => assert_eq!(e, "NotFound"),
        _ => panic!("zeroed superblocks accepted"),
    }
    assert_eq!(peek_magic(&[0u8; 8]), Some(0));
    let _ = JOURNAL_MAGIC;
}
