// SPDX-License-Identifier: GPL-2.0
//! Delta checkpoints that carry volume operations (`INCOMPAT_DELTA_VOLUMES`,
//! `Documentation/on-disk-format.md` §5), well formed but saying something
//! the writer never says: every checksum, the chain CRC and the section
//! table valid (re-encoded by the engine's own checkpoint writer, see
//! `harness/ckpt_edit.rs`), one semantic change. Recovery must refuse each
//! (the delta's chain is unusable: assembly falls back to the older set
//! and reports the checkpoint lost, or fails with `Corrupt`), never panic,
//! never assemble it. A control case writes the same delta back unchanged
//! through the same path and must assemble it.
//!
//! The delta, after a full checkpoint (volumes 1, 3, 6, 9, 10) and a
//! delta of changes only:
//! - `COPIES`: snapshot 2 of volume 1 (written before and after it) and
//!   snapshot 7 of volume 6 (not written since the previous checkpoint:
//!   no changes of its own);
//! - `REDEFINED`: 3 (resized), 4 (created) and 5 (a snapshot of 4);
//! - `VOLUMES`: 1, 2, 3, 4, 5, 6, 7, 10 (9 deleted);
//! - `CHANGES` of 1 and 2, `BLOCK_TABLE` of 3 and 5, `SHARING` with links
//!   and 4 as differences against 5.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::ckpt_edit::*;
use harness::*;
use sim::*;
use zvcore::error::Error;
use zvcore::format::checkpoint::section;
use zvcore::format::checkpoint::DeltaLink;
use zvcore::format::rules::RULES;
use zvcore::format::sharing::tag;
use zvcore::format::zone_history::ZONE_HISTORY;
use zvcore::recovery::DamageKind;

fn create(w: &mut World, id: u32, size: u64) {
    w.create_volume(id, format!("v{id}").as_bytes(), size);
}

fn snapshot(w: &mut World, src: u32, id: u32) {
    w.snapshot_volume(src, id, format!("v{src}@{id}").as_bytes());
}

fn resize(w: &mut World, id: u32, size: u64) {
    w.resize_volume(id, size);
}

fn delete(w: &mut World, id: u32) {
    w.delete_volume(id);
}

/// Ids and sizes of the pool's volumes, sorted.
fn listing(p: &P) -> Vec<(u32, u64)> {
    let mut v: Vec<_> = p
        .volumes()
        .iter()
        .filter_map(|v| v.table.map(|t| (v.id, t.size())))
        .collect();
    v.sort();
    v
}

/// World, checkpoint chain, the engine's volumes.
type DeltaWorld = (World, Vec<CkptImage>, Vec<(u32, u64)>);

/// A stopped pool whose newest checkpoint chain ends with a delta: with
/// `volumes`, the volume delta described at the top (the pool formatted
/// with `INCOMPAT_DELTA_VOLUMES`), else a delta of changes only in a pool
/// without the feature. Journal blocks after it name its generation.
/// Returns the world (no engine), the chain and the volumes as the engine
/// had them. Worlds where a checkpoint came between the operations, or a
/// chain ended (a member at its zone limits), are made again with another
/// seed.
fn delta_world(volumes: bool) -> DeltaWorld {
    grow_delta_world(volumes, false)
}

/// [`delta_world`]; with `grows`, the pool has `INCOMPAT_DELTA_GROW`: the
/// grow of volume 3 does not redefine it (the delta lists it larger and
/// carries its changes).
fn grow_delta_world(volumes: bool, grows: bool) -> DeltaWorld {
    let seed = seed_from_env("delta-refusals");
    let mut rng = Rng::new(seed);
    (0..32)
        .find_map(|_| try_delta_world(rng.next_u64(), volumes, grows))
        .expect("no world with the delta wanted")
}

fn try_delta_world(seed: u64, volumes: bool, grows: bool) -> Option<DeltaWorld> {
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_zns(24)]);
    w.volume_deltas_pct = if volumes { 100 } else { 0 };
    w.delta_grow_pct = if grows { 100 } else { 0 };
    w.zone_history_pct = 100;
    w.format();
    for (id, size) in [(1, 64), (3, 32), (6, 16), (9, 8), (10, 8)] {
        create(&mut w, id, size);
        w.write_exact(id, 0, 4.min(size));
    }
    w.settle();
    // A checkpoint before the power cut; the first one after assembly is
    // full (a new chain, in the other set); then checkpoints until a delta
    // follows it.
    w.checkpoint_now();
    w.crash_and_recover();
    for k in 0..8 {
        w.write_exact(1, 20 + k, 1);
        w.settle();
        w.checkpoint_now();
        if w.pool_ref().stats().delta_checkpoints > 0 {
            break;
        }
    }
    if volumes {
        w.write_exact(1, 10, 1);
        snapshot(&mut w, 1, 2);
        w.write_exact(1, 11, 1);
        snapshot(&mut w, 6, 7);
        create(&mut w, 4, 16);
        w.write_exact(4, 0, 3);
        snapshot(&mut w, 4, 5);
        w.write_exact(4, 1, 1);
        resize(&mut w, 3, 40);
        w.write_exact(3, 36, 2);
        delete(&mut w, 9);
    } else {
        w.write_exact(3, 5, 2);
    }
    w.settle();
    let before = w.pool_ref().stats();
    w.checkpoint_now();
    let after = w.pool_ref().stats();
    // Journal blocks after the delta, naming its generation.
    w.write_exact(1, 12, 1);
    w.settle();
    if w.pool_ref().stats().checkpoints != after.checkpoints
        || after.delta_checkpoints != before.delta_checkpoints + 1
        || after.volume_deltas != before.volume_deltas + u64::from(volumes)
        || after.delta_copies != before.delta_copies + 2 * u64::from(volumes)
    {
        return None;
    }
    let vols = listing(w.pool_ref());
    w.complete_all();
    w.pool = None;
    let chain = w.ckpt_chain();
    let delta = chain.last().expect("chain");
    // (A delta that lists no zone's history, when the writes after the
    // chain's last checkpoint went to zones it listed: another world.)
    if delta.header.delta.is_none() || chain.len() < 3 || delta.records(ZONE_HISTORY).len() < 3 {
        return None;
    }
    if volumes {
        let mut copies = delta.records(section::COPIES);
        copies.sort();
        assert_eq!(copies, vec![le_u32s(&[2, 1]), le_u32s(&[7, 6])]);
        let mut redef: Vec<u32> = delta
            .records(section::REDEFINED)
            .iter()
            .map(|r| u32_at(r, 0))
            .collect();
        redef.sort();
        assert_eq!(redef, if grows { &[4, 5][..] } else { &[3, 4, 5] });
        assert!(sharing_record(delta, tag::BASE, 4).is_some());
        assert!(sharing_record(delta, tag::DIFF, 4).is_some());
        let changed: Vec<u32> = delta
            .records(section::CHANGES)
            .iter()
            .map(|r| u32_at(r, 4))
            .collect();
        assert!(changed.contains(&2) && !changed.contains(&7), "{changed:?}");
        assert_eq!(changed.contains(&3), grows, "{changed:?}");
    }
    Some((w, chain, vols))
}

/// Position of the `SHARING` record of tag `t` for volume `vol`.
fn sharing_record(img: &CkptImage, t: u8, vol: u32) -> Option<usize> {
    img.records(section::SHARING)
        .iter()
        .position(|r| r[0] == t && u32_at(r, 4) == vol)
}

/// The world's devices with `img` written in place of its checkpoint,
/// assembled.
fn assemble_with(w: &mut World, base: &[SimDev], img: &CkptImage) -> Result<Asm, Error> {
    w.devs = base.to_vec();
    w.write_ckpt(img);
    w.try_recover().map(|(p, asm, _, _)| Asm {
        vols: listing(&p),
        asm,
    })
}

struct Asm {
    vols: Vec<(u32, u64)>,
    asm: zvcore::recovery::Assembly,
}

/// Recovery refused the chain of `img`: it failed `Corrupt`, or fell back
/// to the older set and reported the delta's generation lost.
fn assert_refused(w: &mut World, base: &[SimDev], img: &CkptImage, what: &str) {
    match assemble_with(w, base, img) {
        Err(e) => assert!(matches!(e, Error::Corrupt(_)), "{what}: refused with {e:?}"),
        Ok(a) => {
            assert!(
                a.asm.fell_back,
                "{what}: assembled ({} deltas, {} with volumes; volumes {:?})",
                a.asm.delta_checkpoints, a.asm.volume_deltas, a.vols
            );
            let d = a.asm.damage.unwrap_or_else(|| panic!("{what}: no damage"));
            assert_eq!(d.kind, DamageKind::CheckpointLost, "{what}");
            assert_eq!(d.lost_gen, img.header.generation, "{what}");
            // The damage report says why: a check of the chain's contents.
            assert!(
                matches!(d.lost_error, Some(Error::Corrupt(_))),
                "{what}: reported as {:?}",
                d.lost_error
            );
        }
    }
}

/// One edit of the volume delta.
struct Case {
    what: &'static str,
    edit: fn(&mut CkptImage),
}

fn move_section(img: &mut CkptImage, kind: u32, to: usize) {
    let i = img.find(kind).expect("section");
    let s = img.sections.remove(i);
    img.sections.insert(to, s);
}

fn push_record(img: &mut CkptImage, kind: u32, rec: Vec<u8>) {
    let mut r = img.records(kind);
    r.push(rec);
    img.set_records(kind, r);
}

/// Sets the volume id (offset 4) of the `CHANGES` record of volume `from`.
fn change_names(img: &mut CkptImage, from: u32, to: u32) {
    let mut recs = img.records(section::CHANGES);
    let r = recs
        .iter_mut()
        .find(|r| u32_at(r, 4) == from)
        .expect("a change of the volume");
    r[4..8].copy_from_slice(&to.to_le_bytes());
    img.set_records(section::CHANGES, recs);
}

const CASES: &[Case] = &[
    Case {
        what: "REDEFINED before COPIES",
        edit: |d| move_section(d, section::REDEFINED, 0),
    },
    Case {
        what: "COPIES after VOLUMES",
        edit: |d| {
            let v = d.find(section::VOLUMES).expect("volumes");
            move_section(d, section::COPIES, v);
        },
    },
    Case {
        what: "a second COPIES section",
        edit: |d| {
            let c = d.records(section::COPIES);
            let i = d.find(section::COPIES).expect("copies");
            d.sections[i].recs = vec![c[0].clone()];
            let mut second = d.sections[i].clone();
            second.recs = vec![c[1].clone()];
            d.sections.insert(i + 1, second);
        },
    },
    Case {
        what: "CHANGES before COPIES",
        edit: |d| move_section(d, section::CHANGES, 0),
    },
    Case {
        // Else snapshot 2 would be a copy of volume 1 as changed since,
        // the write after the snapshot included.
        what: "CHANGES (of the copies' sources only) before COPIES",
        edit: |d| {
            let c: Vec<_> = d
                .records(section::CHANGES)
                .into_iter()
                .filter(|r| u32_at(r, 4) != 2)
                .collect();
            d.set_records(section::CHANGES, c);
            move_section(d, section::CHANGES, 0);
        },
    },
    Case {
        what: "VOLUMES after CHANGES",
        edit: |d| {
            let c = d.find(section::CHANGES).expect("changes");
            move_section(d, section::VOLUMES, c);
        },
    },
    Case {
        what: "CHANGES after BLOCK_TABLE",
        edit: |d| {
            let t = d.find(section::BLOCK_TABLE).expect("tables");
            move_section(d, section::CHANGES, t);
        },
    },
    Case {
        what: "a copy of an unknown volume",
        edit: |d| push_record(d, section::COPIES, le_u32s(&[8, 99])),
    },
    Case {
        what: "a copy of itself",
        edit: |d| push_record(d, section::COPIES, le_u32s(&[8, 8])),
    },
    Case {
        what: "a copy of a copy",
        edit: |d| push_record(d, section::COPIES, le_u32s(&[8, 2])),
    },
    Case {
        what: "a volume copied twice",
        edit: |d| push_record(d, section::COPIES, le_u32s(&[2, 1])),
    },
    Case {
        what: "a copy onto a kept volume of another size",
        edit: |d| push_record(d, section::COPIES, le_u32s(&[10, 1])),
    },
    Case {
        what: "a copy (with changes) also REDEFINED",
        edit: |d| push_record(d, section::REDEFINED, le_u32s(&[2])),
    },
    Case {
        what: "a copy (without changes) also REDEFINED",
        edit: |d| push_record(d, section::REDEFINED, le_u32s(&[7])),
    },
    Case {
        what: "REDEFINED names a volume with a table that VOLUMES does not list",
        edit: |d| {
            let v: Vec<_> = d
                .records(section::VOLUMES)
                .into_iter()
                .filter(|r| u32_at(r, 0) != 3)
                .collect();
            d.set_records(section::VOLUMES, v);
        },
    },
    Case {
        what: "a kept volume listed twice",
        edit: |d| {
            let r = d.records(section::VOLUMES);
            let ten = r.iter().find(|r| u32_at(r, 0) == 10).expect("10").clone();
            push_record(d, section::VOLUMES, ten);
        },
    },
    Case {
        // A pool without `INCOMPAT_DELTA_GROW`: no grow either.
        what: "a kept volume listed with another size",
        edit: |d| {
            let mut r = d.records(section::VOLUMES);
            let ten = r.iter_mut().find(|r| u32_at(r, 0) == 10).expect("10");
            ten[8..16].copy_from_slice(&9u64.to_le_bytes());
            d.set_records(section::VOLUMES, r);
        },
    },
    Case {
        what: "CHANGES of a redefined (resized) volume",
        edit: |d| change_names(d, 2, 3),
    },
    Case {
        what: "CHANGES of a new volume",
        edit: |d| change_names(d, 2, 4),
    },
    Case {
        what: "CHANGES of a volume not listed",
        edit: |d| change_names(d, 2, 9),
    },
    Case {
        what: "BLOCK_TABLE extents of a kept volume",
        edit: |d| {
            let mut t = d.records(section::BLOCK_TABLE);
            // The first chunk (`count u32`, then 24-byte records `vol u32,
            // lba u64, len u32, addr u64`), of volume 3 or 5 (at most 4
            // blocks mapped at lba 0): now of volume 10, of 8 blocks.
            let c = &mut t[0];
            for i in 0..u32_at(c, 0) as usize {
                let at = 4 + 24 * i;
                let vol = u32_at(c, at);
                assert!(vol == 3 || vol == 5, "chunk of volume {vol}");
                c[at..at + 4].copy_from_slice(&10u32.to_le_bytes());
            }
            d.set_records(section::BLOCK_TABLE, t);
        },
    },
    Case {
        what: "a SHARING difference without its base",
        edit: |d| {
            let mut s = d.records(section::SHARING);
            s.remove(sharing_record(d, tag::BASE, 4).expect("base of 4"));
            d.set_records(section::SHARING, s);
        },
    },
    Case {
        what: "a SHARING base for a kept volume",
        edit: |d| {
            let mut s = d.records(section::SHARING);
            let i = sharing_record(d, tag::BASE, 4).expect("base of 4");
            let mut b = s[i].clone();
            b[4..8].copy_from_slice(&10u32.to_le_bytes());
            s.insert(i, b);
            d.set_records(section::SHARING, s);
        },
    },
    Case {
        what: "RULES before SHARING",
        edit: |d| {
            let s = d.find(section::SHARING).expect("sharing");
            let mut rule = le_u32s(&[1, 0]);
            rule.extend_from_slice(&[0u8; 16]);
            let rules = CkptSection {
                kind: RULES,
                recs: vec![rule],
            };
            d.sections.insert(s, rules);
        },
    },
];

/// Every edit of the volume delta is refused; the delta written back
/// unchanged through the same path assembles, with the engine's volumes.
#[test]
fn semantically_wrong_volume_deltas_are_refused() {
    let t0 = std::time::Instant::now();
    let (mut w, chain, vols) = delta_world(true);
    let base = w.devs.clone();
    let delta = chain.last().expect("delta").clone();
    let ok = assemble_with(&mut w, &base, &delta).expect("the delta unchanged");
    assert!(!ok.asm.fell_back && ok.asm.damage.is_none());
    assert_eq!(ok.asm.delta_checkpoints as usize, chain.len() - 1);
    assert_eq!(ok.asm.volume_deltas, 1);
    assert_eq!(ok.vols, vols, "volumes of the delta unchanged");
    // Every case is tried; the ones assembled are listed at the end.
    let mut accepted = Vec::new();
    for c in CASES {
        let mut d = delta.clone();
        (c.edit)(&mut d);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_refused(&mut w, &base, &d, c.what)
        }));
        if r.is_err() {
            accepted.push(c.what);
        }
    }
    assert!(accepted.is_empty(), "not refused: {accepted:?}");
    eprintln!(
        "delta_refusals: {} wrong volume deltas refused ({:?})",
        CASES.len(),
        t0.elapsed()
    );
}

/// In a pool without `INCOMPAT_DELTA_VOLUMES`, a delta holds only
/// `CHANGES`: a `COPIES` or a `REDEFINED` section (with `VOLUMES`) is
/// refused, as a volume section in a pool with the feature would be if it
/// came where the writer never puts it.
#[test]
fn volume_sections_without_the_feature_are_refused() {
    let (mut w, chain, vols) = delta_world(false);
    let base = w.devs.clone();
    let delta = chain.last().expect("delta").clone();
    // Its table changes (and the placement history every checkpoint holds).
    assert!(delta
        .sections
        .iter()
        .all(|s| s.kind == section::CHANGES || s.kind == ZONE_HISTORY));
    let ok = assemble_with(&mut w, &base, &delta).expect("the delta unchanged");
    assert!(!ok.asm.fell_back && ok.asm.damage.is_none() && ok.asm.volume_deltas == 0);
    assert_eq!(ok.vols, vols);
    let full = &chain[0];
    let cases: [(&str, u32, Vec<u8>); 3] = [
        ("COPIES", section::COPIES, le_u32s(&[2, 1])),
        ("REDEFINED", section::REDEFINED, le_u32s(&[1])),
        (
            "VOLUMES",
            section::VOLUMES,
            full.records(section::VOLUMES).concat(),
        ),
    ];
    for (what, kind, rec) in cases {
        let mut d = delta.clone();
        d.sections.insert(
            0,
            CkptSection {
                kind,
                recs: vec![rec],
            },
        );
        assert_refused(&mut w, &base, &d, what);
    }
}

/// A checkpoint at block 0 of a set must be full: the chain's full
/// checkpoint written back with a delta header is refused.
#[test]
fn a_delta_at_the_start_of_a_set_is_refused() {
    let (mut w, chain, _) = delta_world(true);
    let base = w.devs.clone();
    let mut full = chain[0].clone();
    let g = full.header.generation;
    assert!(g > 2, "generation {g}");
    full.header.delta = Some(DeltaLink {
        base: g - 2,
        prev: g - 2,
        first_block: 2,
    });
    match assemble_with(&mut w, &base, &full) {
        Err(e) => assert!(matches!(e, Error::Corrupt(_)), "{e:?}"),
        Ok(a) => {
            assert!(a.asm.fell_back, "assembled");
            let d = a.asm.damage.expect("damage");
            assert_eq!(d.kind, DamageKind::CheckpointLost);
        }
    }
}

/// The placement history every checkpoint of the pool holds
/// (`INCOMPAT_ZONE_HISTORY`), in a delta: a record naming a metadata zone
/// or a zone the pool does not have, records out of their order, or a
/// clock older than the chain's, are refused like any other wrong content
/// (the history is a hint, but on-disk data is checked all the same).
#[test]
fn damaged_zone_history_is_refused() {
    let (mut w, chain, vols) = delta_world(false);
    let base = w.devs.clone();
    let delta = chain.last().expect("delta").clone();
    let recs = delta.records(ZONE_HISTORY);
    assert!(recs.len() >= 3, "history records: {}", recs.len());
    let ok = assemble_with(&mut w, &base, &delta).expect("the delta unchanged");
    assert!(!ok.asm.fell_back && ok.asm.damage.is_none());
    assert_eq!(ok.vols, vols);
    // Zone record 2 (the first zone) naming `zone`.
    let zone_rec = |zone: u32| {
        let mut r = recs[2].clone();
        r[0..4].copy_from_slice(&zone.to_le_bytes());
        r
    };
    let last = recs.len() - 1;
    let mut cases: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    let mut r = recs.clone();
    // Zone 0 of the first member is a log zone.
    r[2] = zone_rec(0);
    cases.push(("a metadata zone", r));
    let mut r = recs.clone();
    r[last] = zone_rec(1_000_000);
    cases.push(("a zone the pool does not have", r));
    let mut r = recs.clone();
    r.swap(0, 1);
    cases.push(("the mean lifetime before the clock", r));
    let mut r = recs.clone();
    r.insert(3, recs[2].clone());
    cases.push(("a zone twice", r));
    // A delta is applied over the chain: its clock cannot be older.
    let mut r = recs.clone();
    r[0][8..16].copy_from_slice(&1u64.to_le_bytes());
    cases.push(("a clock older than the chain's", r));
    for (what, r) in cases {
        let mut d = delta.clone();
        d.set_records(ZONE_HISTORY, r);
        assert_refused(&mut w, &base, &d, what);
    }
}

/// Sets the size of volume `vol` in the `VOLUMES` section.
fn set_size(img: &mut CkptImage, vol: u32, size: u64) {
    let mut r = img.records(section::VOLUMES);
    let v = r.iter_mut().find(|r| u32_at(r, 0) == vol).expect("volume");
    v[8..16].copy_from_slice(&size.to_le_bytes());
    img.set_records(section::VOLUMES, r);
}

/// With `INCOMPAT_DELTA_GROW` the delta carries the grow of volume 3 (its
/// new size, its changes past the old end) and assembles; a kept volume
/// listed larger is grown to that size, but listed smaller it is refused,
/// and so is the grown volume listed at its old size (its changes past
/// it do not apply), or smaller.
#[test]
fn grows_in_volume_deltas() {
    let (mut w, chain, vols) = grow_delta_world(true, true);
    let base = w.devs.clone();
    let delta = chain.last().expect("delta").clone();
    let ok = assemble_with(&mut w, &base, &delta).expect("the delta unchanged");
    assert!(!ok.asm.fell_back && ok.asm.damage.is_none());
    assert_eq!((ok.asm.volume_deltas, ok.asm.delta_grows), (1, 1));
    assert_eq!(ok.vols, vols, "volumes of the delta unchanged");
    assert!(vols.contains(&(3, 40)), "{vols:?}");
    let mut d = delta.clone();
    set_size(&mut d, 10, 9);
    let a = assemble_with(&mut w, &base, &d).expect("a kept volume listed larger");
    assert!(!a.asm.fell_back && a.asm.damage.is_none());
    assert!(a.vols.contains(&(10, 9)), "{:?}", a.vols);
    for (what, vol, size) in [
        ("a kept volume listed smaller", 10, 7),
        ("the grown volume listed at its old size", 3, 32),
        ("the grown volume listed smaller", 3, 31),
    ] {
        let mut d = delta.clone();
        set_size(&mut d, vol, size);
        assert_refused(&mut w, &base, &d, what);
    }
}
