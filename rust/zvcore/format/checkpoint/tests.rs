// SPDX-License-Identifier: GPL-2.0
//! Tests of checkpoint framing.
use super::super::testutil::{mutate, reseal, Rng};
use super::*;
use std::vec;
use std::vec::Vec;

const U: Uuid = [0x33; 16];

fn hdr(g: u64) -> CheckpointHeader {
    CheckpointHeader {
        pool_uuid: U,
        generation: g,
        journal_seq: 1000 + g,
        delta: None,
        removed: 0,
    }
}

/// Test sections: (kind, data, as_records).
fn sample_sections() -> Vec<(u32, Vec<u8>, bool)> {
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    vec![
        (section::VOLUMES, b"volume table".to_vec(), true),
        (section::ZONES, Vec::new(), false),
        (section::BLOCK_TABLE, big, false),
        (section::BLOCK_TABLE | SECTION_COMPAT, vec![7u8; 5000], true),
    ]
}

fn write(
    g: u64,
    secs: &[(u32, Vec<u8>, bool)],
    cap: u32,
) -> Result<(Vec<Vec<u8>>, CheckpointCommit)> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut sink = |i: u32, b: &[u8]| {
        assert_eq!(i as usize, blocks.len());
        assert_eq!(b.len(), BLOCK_SIZE);
        blocks.push(b.to_vec());
        Ok(())
    };
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(g), cap)?;
    for (kind, data, rec) in secs {
        w.begin_section(*kind, &mut sink)?;
        if *rec {
            for chunk in data.chunks(1000) {
                w.append_record(chunk, &mut sink)?;
            }
        } else {
            for chunk in data.chunks(777) {
                w.append(chunk, &mut sink)?;
            }
        }
    }
    let c = w.finish(&mut sink)?;
    Ok((blocks, c))
}

/// (section number, kind, bytes) of each non-empty section.
type Sections = Vec<(u16, u32, Vec<u8>)>;

/// Reads blocks; returns the per-section byte streams and the commit.
fn read(blocks: &[Vec<u8>]) -> Result<(Sections, CheckpointCommit)> {
    let mut r = CheckpointReader::new(blocks.first().ok_or(Error::Truncated)?)?;
    let mut out: Sections = Vec::new();
    for b in &blocks[1..] {
        match r.feed(b)? {
            CheckpointItem::Data {
                section,
                kind,
                data,
            } => {
                assert!(!data.is_empty());
                match out.last_mut() {
                    Some(l) if l.0 == section => l.2.extend_from_slice(data),
                    _ => out.push((section, kind, data.to_vec())),
                }
            }
            CheckpointItem::Commit => {
                assert!(r.is_committed());
                return Ok((out, *r.commit().unwrap()));
            }
        }
    }
    Err(Error::Corrupt("torn: no commit"))
}

#[test]
fn round_trip() {
    let secs = sample_sections();
    let (blocks, c) = write(7, &secs, 1000).unwrap();
    assert_eq!(c.nr_blocks as usize, blocks.len());
    assert_eq!(c.header.set(), 1);
    let (got, rc) = read(&blocks).unwrap();
    assert_eq!(rc, c);
    assert_eq!(CheckpointCommit::decode(blocks.last().unwrap()).unwrap(), c);
    // Non-empty sections come back in order with their kinds and bytes.
    let want: Sections = secs
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.1.is_empty())
        .map(|(i, s)| (i as u16, s.0, s.1.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.sections()[1].nr_blocks, 0);
    assert_eq!(c.sections()[1].first_block, 2);
    assert_eq!(c.sections()[2].nr_bytes, 20_000);
    assert_eq!(
        c.sections()[2].crc,
        super::super::super::crc32c::crc32c(&secs[2].1)
    );
    // Records never straddle blocks: 5 x 1000 bytes = 2 blocks (4 + 1).
    assert_eq!(c.sections()[3].nr_blocks, 2);

    // Empty checkpoint: header + commit.
    let (blocks, c) = write(2, &[], 2).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(c.header.set(), 0);
    assert_eq!(read(&blocks).unwrap().0.len(), 0);
    // Only empty sections.
    let (blocks, c) = write(2, &[(1, vec![], false), (2, vec![], true)], 2).unwrap();
    assert_eq!(c.nr_sections, 2);
    read(&blocks).unwrap();
}

/// A writer suspended after every record (its buffer reused for other
/// data in between) and resumed writes a checkpoint the reader takes,
/// with the same section streams as one written at once: only the
/// payload blocks are more, each ending where a step ended.
#[test]
fn suspend_and_resume() {
    let secs: Vec<_> = sample_sections().into_iter().filter(|s| s.2).collect();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut sink = |i: u32, b: &[u8]| {
        assert_eq!(i as usize, blocks.len());
        blocks.push(b.to_vec());
        Ok(())
    };
    let mut buf = vec![0u8; BLOCK_SIZE];
    let w = CheckpointWriter::new(&mut buf[..], hdr(3), 1000).unwrap();
    let mut st = w.suspend(&mut sink).unwrap();
    for (kind, data, _) in &secs {
        let mut w = CheckpointWriter::resume(&mut buf[..], st).unwrap();
        w.begin_section(*kind, &mut sink).unwrap();
        st = w.suspend(&mut sink).unwrap();
        for chunk in data.chunks(1000) {
            buf.fill(0xa5);
            let mut w = CheckpointWriter::resume(&mut buf[..], st).unwrap();
            w.append_record(chunk, &mut sink).unwrap();
            st = w.suspend(&mut sink).unwrap();
        }
    }
    let mut w = CheckpointWriter::resume(&mut buf[..], st).unwrap();
    let c = w.finish(&mut sink).unwrap();
    assert_eq!(c.nr_blocks as usize, blocks.len());
    let (got, _) = read(&blocks).unwrap();
    let (once, _) = write(3, &secs, 1000).unwrap();
    let (want, _) = read(&once).unwrap();
    assert_eq!(got, want);
    assert!(blocks.len() > once.len());
    // A poisoned or unsuspended state is refused.
    let mut bad = st;
    bad.fill = 1;
    assert!(CheckpointWriter::resume(&mut buf[..], bad).is_err());
}

#[test]
#[allow(clippy::assertions_on_constants)]
fn writer_limits() {
    assert!(CKPT_COMMIT_HEADER_LEN + MAX_SECTIONS * SECTION_ENTRY_LEN <= BLOCK_SIZE);
    let secs = sample_sections();
    let (blocks, _) = write(3, &secs, 1000).unwrap();
    let need = blocks.len() as u32;
    assert!(write(3, &secs, need).is_ok());
    assert_eq!(write(3, &secs, need - 1).err(), Some(Error::NoSpace));
    assert!(CheckpointWriter::new(vec![0u8; 10], hdr(1), 10).is_err());
    assert!(CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(0), 10).is_err());
    assert!(CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 1).is_err());
    let mut sink = |_: u32, _: &[u8]| Ok(());
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 100).unwrap();
    assert!(w.append(b"x", &mut sink).is_err()); // no section
    assert!(w.begin_section(1, &mut sink).is_err()); // poisoned
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 100).unwrap();
    for k in 0..MAX_SECTIONS as u32 {
        w.begin_section(k, &mut sink).unwrap();
    }
    assert!(w.begin_section(99, &mut sink).is_err());
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 100).unwrap();
    w.begin_section(1, &mut sink).unwrap();
    assert!(w.append_record(&[0; CKPT_DATA_MAX + 1], &mut sink).is_err());
    // A failing sink poisons the writer.
    let mut bad = |i: u32, _: &[u8]| if i == 2 { Err(Error::Busy) } else { Ok(()) };
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 100).unwrap();
    w.begin_section(1, &mut bad).unwrap();
    w.append(&[1; CKPT_DATA_MAX], &mut bad).unwrap();
    assert_eq!(w.append(&[1; CKPT_DATA_MAX], &mut bad), Err(Error::Busy));
    assert!(w.finish(&mut bad).is_err());
    // end_block splits blocks.
    let mut n = 0;
    let mut count = |_: u32, _: &[u8]| {
        n += 1;
        Ok(())
    };
    let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], hdr(1), 100).unwrap();
    w.begin_section(1, &mut count).unwrap();
    w.append(b"a", &mut count).unwrap();
    w.end_block(&mut count).unwrap();
    w.append(b"b", &mut count).unwrap();
    assert_eq!(w.blocks_written(), 2);
    let c = w.finish(&mut count).unwrap();
    assert_eq!(c.nr_blocks, 4);
    assert_eq!(n, 4);
}

/// Rewrites block `i` with `f` applied and a fresh CRC.
fn patched(blocks: &[Vec<u8>], i: usize, f: impl Fn(&mut [u8])) -> Vec<Vec<u8>> {
    let mut b = blocks.to_vec();
    f(&mut b[i]);
    reseal(&mut b[i]);
    b
}

#[test]
fn validation_errors() {
    let (blocks, _) = write(5, &sample_sections(), 1000).unwrap();
    let last = blocks.len() - 1;
    let bf = |s| Err(Error::BadField(s));
    let rd = |b: &[Vec<u8>]| read(b).map(|_| ());
    // Header.
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[12] = 9)),
        Err(Error::Unsupported("checkpoint: format version"))
    );
    // A generation with no room to count on (a forged or resealed
    // block) is refused like a zero one.
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[32..40]
            .copy_from_slice(&u64::MAX.to_le_bytes()))),
        bf("checkpoint: generation")
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[32..40].fill(0))),
        bf("checkpoint: generation")
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[48] = 0)),
        bf("checkpoint: set")
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[50] = 1)),
        bf("checkpoint: header reserved")
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[49] = 1)),
        bf("checkpoint: delta link")
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[49] = 7)),
        Err(Error::Unsupported("checkpoint: header kind"))
    );
    assert_eq!(
        rd(&patched(&blocks, 0, |b| b[40] ^= 1)),
        bf("checkpoint: commit of another checkpoint")
    );
    // Payload block.
    assert_eq!(
        rd(&patched(&blocks, 1, |b| b[16] ^= 1)),
        bf("checkpoint: stale block (generation)")
    );
    assert_eq!(
        rd(&patched(&blocks, 1, |b| b[24] = 2)),
        bf("checkpoint: block index")
    );
    assert_eq!(
        rd(&patched(&blocks, 1, |b| b[30..32].fill(0))),
        bf("checkpoint: payload length")
    );
    assert_eq!(
        rd(&patched(&blocks, 3, |b| b[30..32]
            .copy_from_slice(&4065u16.to_le_bytes()))),
        bf("checkpoint: payload length")
    );
    assert_eq!(
        rd(&patched(&blocks, 1, |b| b[4095] = 1)),
        bf("checkpoint: payload tail not zero")
    );
    assert_eq!(
        rd(&patched(&blocks, 3, |b| b[12] ^= 1)),
        bf("checkpoint: section kind")
    );
    assert_eq!(
        rd(&patched(&blocks, 3, |b| b[28] = 0)),
        bf("checkpoint: section order")
    );
    assert_eq!(
        rd(&patched(&blocks, 2, |b| {
            b[28] = 40;
        })),
        bf("checkpoint: section order")
    );
    // A payload byte changed and re-sealed: the chain catches it.
    assert_eq!(
        rd(&patched(&blocks, 2, |b| b[100] ^= 1)),
        Err(Error::Corrupt("checkpoint: block chain mismatch"))
    );
    // Commit block.
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[14] = 1)),
        bf("checkpoint commit: reserved")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[61] = 1)),
        bf("checkpoint commit: reserved")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[32..40].fill(0))),
        bf("checkpoint commit: generation")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[60] ^= 1)),
        bf("checkpoint commit: set")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[48..52].fill(0))),
        bf("checkpoint commit: block count")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[48] += 1)),
        bf("checkpoint commit: block count")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[12] = 33)),
        bf("checkpoint commit: section count")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[12] = 3)),
        bf("checkpoint commit: block count")
    );
    let s = |i: usize, off: usize| CKPT_COMMIT_HEADER_LEN + i * SECTION_ENTRY_LEN + off;
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(1, 12)] = 1)),
        bf("checkpoint commit: section reserved")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(1, 28)] = 1)),
        bf("checkpoint commit: section reserved")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(1, 4)] += 1)),
        bf("checkpoint commit: section placement")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(1, 24)] = 1)),
        bf("checkpoint commit: section size")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(0, 16)..s(0, 24)].fill(0))),
        bf("checkpoint commit: section size")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(0, 16)..s(0, 24)].fill(0xff))),
        bf("checkpoint commit: section size")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(4, 0)] = 1)),
        bf("checkpoint commit: tail not zero")
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[52] ^= 1)),
        Err(Error::Corrupt("checkpoint: block chain mismatch"))
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[56] ^= 1)),
        Err(Error::Corrupt("checkpoint: block chain mismatch"))
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(0, 0)] ^= 1)),
        Err(Error::Corrupt("checkpoint: section table mismatch"))
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(2, 24)] ^= 1)),
        Err(Error::Corrupt("checkpoint: section table mismatch"))
    );
    assert_eq!(
        rd(&patched(&blocks, last, |b| b[s(2, 16)] ^= 1)),
        Err(Error::Corrupt("checkpoint: section table mismatch"))
    );
    // Table says an empty section 1 has blocks: move blocks from 2 to 1.
    assert!(rd(&patched(&blocks, last, |b| {
        b[s(1, 8)] = 1;
        b[s(1, 16)] = 1;
        b[s(2, 4)] += 1;
        b[s(2, 8)] -= 1;
    }))
    .is_err());
    // Fewer sections in the table than seen.
    let (b2, _) = write(5, &[(1, vec![1; 10], false), (2, vec![2; 10], false)], 100).unwrap();
    assert!(rd(&patched(&b2, 3, |b| {
        b[12] = 1;
        b[s(1, 0)..s(2, 0)].fill(0);
        b[48] = 3;
    }))
    .is_err());
}

#[test]
fn torn_and_stale() {
    let (blocks, _) = write(9, &sample_sections(), 1000).unwrap();
    // Torn: any prefix without the commit block is not a checkpoint.
    for n in 1..blocks.len() {
        assert!(read(&blocks[..n]).is_err());
    }
    // A block missing in the middle.
    let mut gap = blocks.clone();
    gap.remove(3);
    assert_eq!(
        read(&gap).err(),
        Some(Error::BadField("checkpoint: block index"))
    );
    // Stale blocks of an older checkpoint in the same set (conventional
    // device, not reset): generation mismatch.
    let (old, _) = write(7, &sample_sections(), 1000).unwrap();
    let mut mix = blocks.clone();
    mix[4] = old[4].clone();
    assert_eq!(
        read(&mix).err(),
        Some(Error::BadField("checkpoint: stale block (generation)"))
    );
    let mut mix = blocks.clone();
    *mix.last_mut().unwrap() = old.last().unwrap().clone();
    assert_eq!(
        read(&mix).err(),
        Some(Error::BadField("checkpoint: commit of another checkpoint"))
    );
    // Bit flips anywhere are caught.
    for i in 0..blocks.len() {
        let mut f = blocks.clone();
        f[i][(i * 997) % BLOCK_SIZE] ^= 0x10;
        assert!(read(&f).is_err());
    }
    // Truncated block.
    let mut t = blocks.clone();
    t[2].truncate(100);
    assert_eq!(read(&t).err(), Some(Error::Truncated));
    // Feeding after commit or after an error.
    let mut r = CheckpointReader::new(&blocks[0]).unwrap();
    assert!(r.feed(&blocks[2]).is_err());
    assert!(r.feed(&blocks[1]).is_err()); // poisoned
    let (b2, _) = write(1, &[], 2).unwrap();
    let mut r = CheckpointReader::new(&b2[0]).unwrap();
    assert_eq!(r.next_index(), 1);
    assert!(r.commit().is_none());
    assert!(matches!(r.feed(&b2[1]), Ok(CheckpointItem::Commit)));
    assert_eq!(r.commit().unwrap().nr_blocks, 2);
    assert!(r.feed(&b2[1]).is_err());
    assert_eq!(r.header().generation, 1);
    assert_eq!(CheckpointReader::new(&b2[1]).err(), Some(Error::BadMagic));
}

/// Random section layouts (sizes around block boundaries, records and
/// streams, empty sections) round-trip exactly.
#[test]
fn random_layouts_round_trip() {
    let mut rng = Rng::new(7);
    for round in 0..200 {
        let nsec = rng.below(MAX_SECTIONS as u64 + 1) as usize;
        let secs: Vec<(u32, Vec<u8>, bool)> = (0..nsec)
            .map(|k| {
                let len = match rng.below(4) {
                    0 => 0,
                    1 => CKPT_DATA_MAX * (1 + rng.below(3) as usize),
                    2 => rng.below(100) as usize,
                    _ => rng.below(3 * CKPT_DATA_MAX as u64) as usize,
                };
                let mut d = vec![0u8; len];
                rng.fill(&mut d);
                (k as u32 * 3 + 1, d, rng.below(2) == 0)
            })
            .collect();
        let g = 1 + round as u64;
        let (blocks, c) = write(g, &secs, 10_000).unwrap();
        let (got, rc) = read(&blocks).unwrap();
        assert_eq!(rc, c);
        assert_eq!(c.nr_sections as usize, nsec);
        let want: Sections = secs
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.1.is_empty())
            .map(|(i, s)| (i as u16, s.0, s.1.clone()))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn fuzz() {
    let mut rng = Rng::new(0xc0ffee);
    let secs = vec![
        (section::VOLUMES, b"vols".to_vec(), true),
        (section::ZONES, vec![], false),
        (
            section::BLOCK_TABLE,
            (0..9000u32).map(|i| i as u8).collect(),
            false,
        ),
    ];
    let (blocks, _) = write(4, &secs, 100).unwrap();
    let mut accepted = 0;
    for i in 0..24_000 {
        let mut b = blocks.clone();
        let which = rng.below(b.len() as u64) as usize;
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut b[which]);
        }
        if i % 3 != 0 {
            reseal(&mut b[which]);
        }
        if rng.below(10) == 0 {
            // Also drop or duplicate a block.
            let j = rng.below(b.len() as u64) as usize;
            if rng.below(2) == 0 {
                b.remove(j);
            } else {
                let d = b[j].clone();
                b.insert(j, d);
            }
        }
        let _ = CheckpointHeader::decode(&b[0]);
        let _ = CheckpointCommit::decode(&b[b.len() - 1]);
        if read(&b).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted < 24_000);

    // Each block decoder on its own, 20,000 mutations each.
    let last = blocks.len() - 1;
    for (which, n) in [(0usize, 20_000), (last, 20_000), (2, 20_000)] {
        for i in 0..n {
            let mut b = blocks[which].clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut b);
            }
            if i % 3 != 0 {
                reseal(&mut b);
            }
            let _ = CheckpointHeader::decode(&b);
            let _ = CheckpointCommit::decode(&b);
            let mut r = CheckpointReader::new(&blocks[0]).unwrap();
            if which == 2 {
                r.feed(&blocks[1]).unwrap();
            }
            let _ = r.feed(&b);
        }
    }
}

#[test]
fn headers_name_the_removed_members() {
    let delta = DeltaLink {
        base: 3,
        prev: 5,
        first_block: 9,
    };
    for d in [None, Some(delta)] {
        for removed in [0u64, 1, 0b1010, 1 << 63] {
            let h = CheckpointHeader {
                delta: d,
                removed,
                ..hdr(7)
            };
            let mut b = vec![0u8; BLOCK_SIZE];
            h.encode(&mut b).unwrap();
            assert_eq!(CheckpointHeader::decode(&b).unwrap().0, h);
            // A byte between the link and the word is reserved.
            b[78] = 1;
            reseal(&mut b);
            assert_eq!(
                CheckpointHeader::decode(&b),
                Err(Error::BadField("checkpoint: header reserved"))
            );
        }
    }
}
