// SPDX-License-Identifier: GPL-2.0
//! Corruption test: metadata produced by a real run of the engine, randomly
//! mutated (bit flips, random bytes, truncation, re-sealed checksums so that
//! field validation is reached, duplicated / swapped / zeroed blocks, lost
//! zone tails), fed to the decoders and to recovery. Nothing may panic;
//! recovery either fails or assembles a pool the verifier accepts and that
//! keeps working (checkpoint, writes, GC, flushes) — after an explicit
//! rewind where it reported damage (`tests/damage.rs` checks that damage is
//! never silent).
//!
//! `ZVCORE_SEED` replays a run, `ZVCORE_OPS` scales it (number of mutated
//! blocks fed to the decoders; recovery runs are a twentieth of that).

mod harness;
mod sim;

use harness::*;
use sim::*;
use std::collections::BTreeMap;
use zvcore::codec::Reader as CodecReader;
use zvcore::format::checkpoint::CheckpointCommit;
use zvcore::format::{
    decode_journal_block, peek_magic, seal_block, CheckpointHeader, CheckpointReader, Superblock,
    CKPT_HEADER_MAGIC,
};
use zvcore::geom::DeviceGeometry;
use zvcore::map::decode_chunk;
use zvcore::recovery::{recover, Check};
use zvcore::verify::bitmap_words;

/// A metadata block of the base image: device, block address, contents.
#[derive(Clone)]
struct MetaBlock {
    dev: usize,
    addr: u64,
    data: Vec<u8>,
}

fn meta_blocks(w: &World) -> Vec<MetaBlock> {
    let mut out = Vec::new();
    for (d, (dev, g)) in w.devs.iter().zip(&w.geoms).enumerate() {
        let first = u64::from(g.first_meta_zone()) * g.zone_blocks;
        let end = first + u64::from(g.meta_zones) * g.zone_blocks;
        for a in dev.written() {
            if a >= first && a < end {
                let mut b = vec![0u8; BS];
                dev.read_raw(a, &mut b);
                out.push(MetaBlock {
                    dev: d,
                    addr: a,
                    data: b,
                });
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    match rng.below(7) {
        0 => {
            for _ in 0..rng.range(1, 8) {
                let bit = rng.below(b.len() as u64 * 8) as usize;
                b[bit / 8] ^= 1 << (bit % 8);
            }
        }
        1 => {
            let off = rng.below(b.len() as u64) as usize;
            let n = (rng.range(1, 64) as usize).min(b.len() - off);
            rng.fill(&mut b[off..off + n]);
        }
        2 => {
            let n = rng.below(b.len() as u64) as usize;
            b.truncate(n);
        }
        3 => {
            let off = rng.below(b.len() as u64) as usize;
            b[off..].fill(0);
        }
        4 => rng.fill(b),
        _ => {
            // A header field (first 128 bytes): extreme or random value.
            let off = rng.range(12, 120) as usize;
            let v: u64 = match rng.below(5) {
                0 => 0,
                1 => u64::MAX,
                2 => rng.below(4),
                3 => 1 << rng.below(64),
                _ => rng.next_u64(),
            };
            let w = [1usize, 2, 4, 8][rng.below(4) as usize];
            b[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
    }
    // Often re-seal, so that decoding gets past the checksum.
    if b.len() == BS && rng.pct(60) {
        let _ = seal_block(b);
    }
}

/// Feeds one block to every decoder; returns how many accepted it.
fn decode_all(b: &[u8], ckpt_header: Option<&[u8]>) -> u32 {
    let mut ok = 0;
    ok += u32::from(Superblock::decode(b).is_ok());
    if let Ok((_, recs)) = decode_journal_block(b) {
        ok += 1;
        for r in recs {
            let _ = r;
        }
    }
    ok += u32::from(CheckpointHeader::decode(b).is_ok());
    ok += u32::from(CheckpointCommit::decode(b).is_ok());
    if let Some(h) = ckpt_header {
        if let Ok(mut r) = CheckpointReader::new(h) {
            ok += u32::from(r.feed(b).is_ok());
        }
    }
    for skip in [0usize, 32] {
        if let Some(p) = b.get(skip..) {
            let mut r = CodecReader::new(p);
            ok += u32::from(decode_chunk(&mut r, |_| Ok(())).is_ok());
        }
    }
    ok
}

#[test]
fn corrupt_metadata_never_panics() {
    let seed = seed_from_env("corrupt");
    let total = ops_from_env(100_000);
    let t0 = std::time::Instant::now();
    let mut rng = Rng::new(seed);
    let base_seed = rng.next_u64();
    let base = World::populated(base_seed, 3000);
    let blocks = meta_blocks(&base);
    assert!(blocks.len() > 10, "too little metadata to mutate");
    let header = blocks
        .iter()
        .find(|m| peek_magic(&m.data) == Some(CKPT_HEADER_MAGIC))
        .map(|m| m.data.clone());

    // 1. Decoders.
    let mut accepted = 0u64;
    for _ in 0..total {
        let m = &blocks[rng.below(blocks.len() as u64) as usize];
        let mut b = m.data.clone();
        mutate(&mut rng, &mut b);
        accepted += u64::from(decode_all(&b, header.as_deref()));
    }
    let t_dec = t0.elapsed();

    // 2. Recovery.
    let runs = total / 20;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut mutated_blocks = 0u64;
    for _ in 0..runs {
        let mut devs = base.devs.clone();
        for _ in 0..rng.range(1, 4) {
            let m = &blocks[rng.below(blocks.len() as u64) as usize];
            mutated_blocks += 1;
            match rng.below(6) {
                0 | 1 => {
                    let mut b = m.data.clone();
                    mutate(&mut rng, &mut b);
                    b.resize(BS, 0);
                    devs[m.dev].poke(m.addr, &b);
                }
                2 => {
                    // Duplicate another metadata block here.
                    let o = &blocks[rng.below(blocks.len() as u64) as usize];
                    devs[m.dev].poke(m.addr, &o.data);
                }
                3 => {
                    // Swap two blocks.
                    let o = &blocks[rng.below(blocks.len() as u64) as usize];
                    devs[m.dev].poke(m.addr, &o.data);
                    devs[o.dev].poke(o.addr, &m.data);
                }
                4 => devs[m.dev].poke(m.addr, &[0u8; BS]),
                _ => {
                    // Lose the tail of the zone.
                    let g = &base.geoms[m.dev];
                    let zone = (m.addr / g.zone_blocks) as u32;
                    let off = m.addr % g.zone_blocks;
                    devs[m.dev].truncate_zone(zone, rng.below(off + 1));
                }
            }
        }
        let outcome = try_recover(&base, devs, &mut rng);
        *outcomes.entry(outcome).or_default() += 1;
    }
    eprintln!(
        "corrupt: {total} mutated blocks through the decoders ({accepted} acceptances) in {t_dec:?}; \
         {runs} recoveries with {mutated_blocks} mutated blocks in {:?}: {outcomes:?}",
        t0.elapsed() - t_dec
    );
    assert!(
        outcomes.keys().any(|k| k == "ok"),
        "no recovery succeeded at all"
    );
}

/// Recovers from mutated devices; on success checks the verifier and keeps
/// using the pool. Returns the outcome's name.
fn try_recover(base: &World, devs: Vec<SimDev>, rng: &mut Rng) -> String {
    let n = devs.len();
    // A member the run removed has no device.
    let geoms: Vec<DeviceGeometry> = base
        .geoms
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if base.removed & (1 << i) != 0 {
                DeviceGeometry::ABSENT
            } else {
                *g
            }
        })
        .collect();
    let order: Vec<usize> = (0..n).collect();
    let total: u64 = base
        .geoms
        .iter()
        .map(|g| u64::from(g.nr_zones) * g.zone_blocks)
        .sum();
    let nz: u32 = base.geoms.iter().map(|g| g.nr_zones).sum();
    let mut bm = vec![0u64; bitmap_words(total)];
    let mut counts = vec![0u64; nz as usize];
    let mut scratch = vec![0u8; BS];
    let mut to_finish = Vec::new();
    let r = {
        let mut rd = Reader {
            devs: &devs,
            order: &order,
            absent: base.removed,
        };
        recover(
            geoms.clone(),
            &mut rd,
            engine_config(n as u16),
            storage(&base.geoms),
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
        Err(e) => return format!("{e:?}"),
    };
    // Damage: the state before it is used as after an explicit rewind
    // (unless unusable: then it is only reported).
    let outcome = match asm.damage {
        Some(d) if d.unusable => return format!("damage {:?} (unusable)", d.kind),
        Some(d) => {
            pool.record_rewind(&d, &asm);
            format!("rewound past {:?}", d.kind)
        }
        None => "ok".to_string(),
    };
    // Keep using it.
    let mut w = World::new(base.seed);
    w.take_members(base, devs);
    w.rng = Rng::new(rng.next_u64());
    for z in to_finish {
        let (d, local) = w.zone_loc(z);
        w.devs[d]
            .finish(local)
            .unwrap_or_else(|e| panic!("finish {z}: {e:?}"));
    }
    w.adopt(pool);
    w.run_verify("after recovery from corrupt metadata");
    let used = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..40 {
            w.step_blind();
        }
        w.complete_all();
        while !w.commit(false) {}
    }));
    if let Err(p) = used {
        // A re-sealed record can forge a well-formed state that no check at
        // assembly can refuse in a pool with shared blocks: a block held
        // at two different lbas (sharing only ever holds a block at the
        // same lba). GC, which relocates by lba, then finds the block's
        // valid count short and stops the pool. Stopping with an error is
        // the accepted reaction (no panic in the engine, no write after
        // it); anything else is a failure of the test.
        let p_ref = w.pool_ref();
        if p_ref.is_failed() && p_ref.sharing() {
            return "stopped by GC: forged sharing".to_string();
        }
        std::panic::resume_unwind(p);
    }
    w.run_verify("after using a pool recovered from corrupt metadata");
    outcome
}
