// SPDX-License-Identifier: GPL-2.0
//! Unit tests of the journal format.

use super::super::super::error::{Error, Result};
use super::super::super::geom::{PoolGeometry, MAX_POOL_BLOCKS};
use super::super::policy::{MemberClass, Placement, Policy};
use super::super::testutil::{mutate, reseal, Rng};
use super::super::{Uuid, INCOMPAT_SHARED_BLOCKS, JOURNAL_MAGIC, RO_COMPAT_RESERVATION};
use super::*;
use std::vec;
use std::vec::Vec;

const U: Uuid = [0x11; 16];

fn all_kinds() -> Vec<Record> {
    vec![
        Record::MapExtent {
            vol: 1,
            lba: 100,
            len: 8,
            addr: 4096,
        },
        Record::Unmap {
            vol: 2,
            lba: 0,
            len: u32::MAX,
        },
        Record::ZoneReset { zone: 17 },
        Record::ZoneFinish { zone: u32::MAX },
        Record::VolumeCreate {
            vol: 3,
            size_blocks: 1 << 30,
            flags: VOL_FLAG_READONLY,
            name: VolName::new(b"vm-disk-0").unwrap(),
        },
        Record::VolumeCreate {
            vol: 4,
            size_blocks: 0,
            flags: 0,
            name: VolName::new(&[0xff; 32]).unwrap(),
        },
        Record::VolumeDelete { vol: 3 },
        Record::VolumeResize {
            vol: 4,
            size_blocks: 77,
        },
        Record::VolumeReserve {
            vol: 4,
            reserve: 12,
            quota: 40,
        },
        Record::Snapshot {
            vol: 4,
            new_vol: 5,
            flags: VOL_FLAG_READONLY,
            name: VolName::new(b"snap@1").unwrap(),
        },
        Record::Rollback { vol: 4, snap: 5 },
        Record::Promote { vol: 6 },
        Record::Relocate {
            lba: 9,
            old: 1000,
            new: 2000,
            len: 64,
        },
        Record::CheckpointDone {
            generation: 9,
            journal_seq: 1234,
            set: 1,
        },
    ]
}

fn block(recs: &[Record], seq: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut b = JournalBuilder::new(&mut buf, U, seq, 3).unwrap();
    for r in recs {
        b.push(r).unwrap();
    }
    b.finish().unwrap();
    buf
}

fn decode_all(buf: &[u8]) -> Result<(JournalHeader, Vec<Record>)> {
    let (h, it) = decode_journal_block(buf)?;
    Ok((h, it.collect::<Result<Vec<_>>>()?))
}

#[test]
fn round_trip() {
    let recs = all_kinds();
    let buf = block(&recs, 42);
    let (h, got) = decode_all(&buf).unwrap();
    assert_eq!(got, recs);
    assert_eq!(h.seq, 42);
    assert_eq!(h.ckpt_gen, 3);
    assert_eq!(h.pool_uuid, U);
    assert_eq!(h.nr_records as usize, recs.len());
    let plen: usize = recs.iter().map(|r| r.encoded_len()).sum();
    assert_eq!(h.payload_len as usize, plen);
    // Empty block.
    let (h, got) = decode_all(&block(&[], 1)).unwrap();
    assert!(got.is_empty() && h.payload_len == 0);
    assert_eq!(VolName::new(b"abc").unwrap().as_bytes(), b"abc");
    assert!(VolName::new(&[1; 33]).is_err());
    assert_eq!(
        Record::Snapshot {
            vol: 1,
            new_vol: 2,
            flags: 0,
            name: VolName::default(),
        }
        .required_features(),
        (INCOMPAT_SHARED_BLOCKS, 0)
    );
    assert_eq!(
        Record::VolumeReserve {
            vol: 1,
            reserve: 2,
            quota: 0,
        }
        .required_features()
        .1,
        RO_COMPAT_RESERVATION
    );
    assert_eq!(Record::ZoneReset { zone: 1 }.required_features(), (0, 0));
}

#[test]
fn fills_and_reports_full() {
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut b = JournalBuilder::new(&mut buf, U, 7, 0).unwrap();
    b.push(&Record::ZoneFinish { zone: 2 }).unwrap();
    let r = Record::MapExtent {
        vol: 1,
        lba: 0,
        len: 1,
        addr: 0,
    };
    let mut n = 0;
    while b.push(&r).is_ok() {
        n += 1;
    }
    assert_eq!(n, (JOURNAL_PAYLOAD_MAX - 8) / 28);
    assert_eq!(b.push(&r), Err(Error::NoSpace));
    assert!(!b.fits(&r));
    assert!(b.fits(&Record::ZoneReset { zone: 1 }));
    b.push(&Record::ZoneReset { zone: 1 }).unwrap();
    assert_eq!(b.len() as usize, n + 2);
    assert!(!b.is_empty());
    b.finish().unwrap();
    let (h, got) = decode_all(&buf).unwrap();
    assert_eq!(got.len(), n + 2);
    assert_eq!(h.payload_len as usize, n * 28 + 16);

    // Many tiny records: the count field stays within u16.
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut b = JournalBuilder::new(&mut buf, U, 7, 0).unwrap();
    let mut n = 0;
    while b.push_raw(0x8123, &[]).is_ok() {
        n += 1;
    }
    assert_eq!(n, JOURNAL_PAYLOAD_MAX / 4);
    b.finish().unwrap();
    assert_eq!(decode_all(&buf).unwrap().1.len(), 0);
}

#[test]
fn builder_errors() {
    let mut buf = vec![0u8; BLOCK_SIZE];
    assert!(JournalBuilder::new(&mut buf[..100], U, 1, 0).is_err());
    assert!(JournalBuilder::new(&mut buf, U, 0, 0).is_err());
    let mut b = JournalBuilder::new(&mut buf, U, 1, 0).unwrap();
    let bad = [
        Record::MapExtent {
            vol: 1,
            lba: 0,
            len: 0,
            addr: 0,
        },
        Record::MapExtent {
            vol: 1,
            lba: u64::MAX,
            len: 1,
            addr: 0,
        },
        Record::MapExtent {
            vol: 1,
            lba: 0,
            len: 1,
            addr: MAX_POOL_BLOCKS,
        },
        Record::MapExtent {
            vol: 1,
            lba: 0,
            len: 2,
            addr: u64::MAX,
        },
        Record::Unmap {
            vol: 1,
            lba: 0,
            len: 0,
        },
        Record::Unmap {
            vol: 1,
            lba: u64::MAX,
            len: 1,
        },
        Record::VolumeCreate {
            vol: 1,
            size_blocks: 1,
            flags: 8,
            name: VolName::default(),
        },
        // A companion's flag on a user's id, a companion's id without it,
        // both mirrored and a companion.
        Record::VolumeCreate {
            vol: 1,
            size_blocks: 1,
            flags: VOL_FLAG_COPY,
            name: VolName::default(),
        },
        Record::VolumeCreate {
            vol: VOL_COPY_ID_BIT | 1,
            size_blocks: 1,
            flags: 0,
            name: VolName::default(),
        },
        Record::VolumeCreate {
            vol: VOL_COPY_ID_BIT | 1,
            size_blocks: 1,
            flags: VOL_FLAG_COPY | VOL_FLAG_MIRRORED,
            name: VolName::default(),
        },
        // A snapshot of a companion that is not one, and the other way.
        Record::Snapshot {
            vol: VOL_COPY_ID_BIT | 1,
            new_vol: 2,
            flags: 0,
            name: VolName::default(),
        },
        Record::Snapshot {
            vol: 1,
            new_vol: VOL_COPY_ID_BIT | 2,
            flags: VOL_FLAG_COPY,
            name: VolName::default(),
        },
        Record::Snapshot {
            vol: 1,
            new_vol: 1,
            flags: 0,
            name: VolName::default(),
        },
        Record::Snapshot {
            vol: 1,
            new_vol: 2,
            flags: 4,
            name: VolName::default(),
        },
        Record::Rollback { vol: 3, snap: 3 },
        Record::Relocate {
            lba: 0,
            old: 10,
            new: 12,
            len: 4,
        },
        Record::Relocate {
            lba: u64::MAX,
            old: 10,
            new: 100,
            len: 4,
        },
        Record::Relocate {
            lba: 0,
            old: MAX_POOL_BLOCKS - 1,
            new: 100,
            len: 4,
        },
        Record::Relocate {
            lba: 0,
            old: 10,
            new: 100,
            len: 0,
        },
        Record::CheckpointDone {
            generation: 0,
            journal_seq: 1,
            set: 0,
        },
        Record::CheckpointDone {
            generation: 1,
            journal_seq: 1,
            set: 2,
        },
    ];
    for r in &bad {
        assert!(matches!(b.push(r), Err(Error::Invalid(_))), "{r:?}");
    }
    assert!(b.is_empty());
    assert!(b.push_raw(5, &[]).is_err()); // not compat
    assert!(b.push_raw(TAG_COMPAT | 1, &[]).is_ok()); // compat, unknown
    assert_eq!(b.push_raw(0x8001, &[0; 5000]), Err(Error::NoSpace));
}

/// Patches a raw byte of an encoded block, reseals it, and decodes.
fn patched(recs: &[Record], f: impl Fn(&mut [u8])) -> Result<(JournalHeader, Vec<Record>)> {
    let mut b = block(recs, 5);
    f(&mut b);
    reseal(&mut b);
    decode_all(&b)
}

#[test]
fn validation_errors() {
    let r1 = [Record::MapExtent {
        vol: 1,
        lba: 2,
        len: 3,
        addr: 4,
    }];
    let bf = |s| Err(Error::BadField(s));
    let p = JOURNAL_HEADER_LEN; // first record
    assert_eq!(patched(&r1, |b| b[14] = 2), bf("journal: flags"));
    assert_eq!(patched(&r1, |b| b[20] = 1), bf("journal: reserved"));
    // The commit sequence must lie below the block's own sequence.
    assert_eq!(
        patched(&r1, |b| b[56..64].copy_from_slice(&u64::MAX.to_le_bytes())),
        bf("journal: commit sequence")
    );
    assert_eq!(patched(&r1, |b| b[40..48].fill(0)), bf("journal: sequence"));
    assert_eq!(
        patched(&r1, |b| b[16..20].copy_from_slice(&4033u32.to_le_bytes())),
        bf("journal: payload length")
    );
    assert_eq!(
        patched(&r1, |b| b[16..20].copy_from_slice(&u32::MAX.to_le_bytes())),
        bf("journal: payload length")
    );
    assert_eq!(patched(&r1, |b| b[4095] = 1), bf("journal: tail not zero"));
    // Payload length shorter than the record: the record's last byte is
    // then tail (non-zero) or the record is cut.
    assert_eq!(patched(&r1, |b| b[16] = 27), bf("record: length"));
    // Count vs records.
    assert_eq!(patched(&r1, |b| b[12] = 0), bf("journal: record count"));
    assert_eq!(patched(&r1, |b| b[12] = 2), bf("record: truncated"));
    // Record length mismatch, unknown tags.
    assert_eq!(patched(&r1, |b| b[p + 2] = 23), bf("record: length"));
    assert_eq!(patched(&r1, |b| b[p + 2] = 200), bf("record: length"));
    assert_eq!(
        patched(&r1, |b| b[p] = 99),
        Err(Error::Unsupported("journal: unknown incompat record"))
    );
    // Unknown compat tag with the same length is skipped.
    let (_, got) = patched(&r1, |b| b[p + 1] = 0x80 | 0x40).unwrap();
    assert!(got.is_empty());
    // Field validation behind the CRC.
    assert_eq!(
        patched(&r1, |b| b[p + 8..p + 12].fill(0)),
        bf("map extent: length")
    );
    assert_eq!(
        patched(&r1, |b| b[p + 12..p + 20].fill(0xff)),
        bf("map extent: lba overflow")
    );
    assert_eq!(
        patched(&r1, |b| b[p + 27] = 0x01),
        bf("map extent: address")
    );
    let cr = [Record::VolumeCreate {
        vol: 1,
        size_blocks: 1,
        flags: 0,
        name: VolName::new(b"ab").unwrap(),
    }];
    assert_eq!(
        patched(&cr, |b| b[p + 4 + 4] = 8),
        bf("volume create: flags")
    );
    assert_eq!(
        patched(&cr, |b| b[p + 4 + 17] = 1),
        bf("volume create: reserved")
    );
    assert_eq!(
        patched(&cr, |b| b[p + 4 + 16] = 33),
        bf("volume create: name")
    );
    assert_eq!(
        patched(&cr, |b| b[p + 4 + 16] = 1),
        bf("volume create: name")
    );
    let rs = [Record::VolumeResize {
        vol: 1,
        size_blocks: 2,
    }];
    assert_eq!(
        patched(&rs, |b| b[p + 8] = 1),
        bf("volume record: reserved")
    );
    let sn = [Record::Snapshot {
        vol: 1,
        new_vol: 2,
        flags: 0,
        name: VolName::new(b"s").unwrap(),
    }];
    assert_eq!(patched(&sn, |b| b[p + 17] = 1), bf("snapshot: reserved"));
    assert_eq!(patched(&sn, |b| b[p + 8] = 1), bf("snapshot: same volume"));
    assert_eq!(patched(&sn, |b| b[p + 12] = 8), bf("snapshot: flags"));
    assert_eq!(patched(&sn, |b| b[p + 12] = 4), bf("snapshot: flags"));
    assert_eq!(patched(&sn, |b| b[p + 16] = 0), bf("snapshot: name"));
    assert_eq!(patched(&sn, |b| b[p + 16] = 33), bf("snapshot: name"));
    let rb = [Record::Rollback { vol: 1, snap: 2 }];
    assert_eq!(patched(&rb, |b| b[p + 8] = 1), bf("rollback: same volume"));
    let pr = [Record::Promote { vol: 1 }];
    assert_eq!(patched(&pr, |b| b[p + 8] = 1), bf("promote: reserved"));
    let rl = [Record::Relocate {
        lba: 5,
        old: 100,
        new: 200,
        len: 8,
    }];
    assert_eq!(patched(&rl, |b| b[p + 32] = 1), bf("relocate: reserved"));
    assert_eq!(patched(&rl, |b| b[p + 28] = 0), bf("relocate: length"));
    assert_eq!(patched(&rl, |b| b[p + 20] = 101), bf("relocate: address"));
    assert_eq!(
        patched(&rl, |b| b[p + 4..p + 12].fill(0xff)),
        bf("relocate: lba overflow")
    );
    let cd = [Record::CheckpointDone {
        generation: 1,
        journal_seq: 1,
        set: 0,
    }];
    assert_eq!(patched(&cd, |b| b[p + 20] = 2), bf("checkpoint done: set"));
    assert_eq!(
        patched(&cd, |b| b[p + 21] = 1),
        bf("checkpoint done: reserved")
    );
    assert_eq!(
        patched(&cd, |b| b[p + 4] = 0),
        bf("checkpoint done: generation")
    );
    let un = [Record::Unmap {
        vol: 1,
        lba: 0,
        len: 1,
    }];
    assert_eq!(patched(&un, |b| b[p + 8] = 0), bf("unmap: length"));
    assert_eq!(
        patched(&un, |b| b[p + 12..p + 20].fill(0xff)),
        bf("unmap: lba overflow")
    );
}

#[test]
fn torn_truncated_flipped() {
    let buf = block(&all_kinds(), 9);
    assert_eq!(
        decode_journal_block(&buf[..BLOCK_SIZE - 1]).err(),
        Some(Error::Truncated)
    );
    assert_eq!(
        decode_journal_block(&[0u8; BLOCK_SIZE]).err(),
        Some(Error::BadMagic)
    );
    let mut t = buf.clone();
    t[100..].fill(0);
    assert_eq!(decode_journal_block(&t).err(), Some(Error::BadChecksum));
    for bit in (0..BLOCK_SIZE * 8).step_by(61) {
        let mut f = buf.clone();
        f[bit / 8] ^= 1 << (bit % 8);
        let e = decode_journal_block(&f).err().unwrap();
        assert!(e == Error::BadChecksum || e == Error::BadMagic, "{e:?}");
    }
}

fn random_record(rng: &mut Rng) -> Record {
    let vol = rng.below(8) as u32;
    let len = 1 + rng.below(1 << 20) as u32;
    match rng.below(14) {
        13 => Record::Policy(match rng.below(4) {
            0 => Policy::Placement {
                vol,
                place: Placement::Members(1 + rng.below(u64::MAX - 1)),
            },
            1 => Policy::Class {
                member: rng.below(64) as u16,
                class: MemberClass::Slow,
            },
            2 => Policy::Evacuation(Some(rng.below(64) as u16)),
            _ => Policy::Tiering(rng.below(2) == 1),
        }),
        9 => Record::Rollback { vol, snap: vol + 1 },
        10 => Record::Promote { vol },
        11 => {
            let old = rng.below(1 << 40);
            Record::Relocate {
                lba: rng.below(1 << 40),
                old,
                new: old + (1 << 41),
                len,
            }
        }
        0 => Record::MapExtent {
            vol,
            lba: rng.below(1 << 40),
            len,
            addr: rng.below(1 << 47),
        },
        1 => Record::Unmap {
            vol,
            lba: rng.below(1 << 40),
            len,
        },
        2 => Record::ZoneReset {
            zone: rng.next() as u32,
        },
        3 => Record::ZoneFinish {
            zone: rng.next() as u32,
        },
        4 => {
            let mut name = [0u8; 32];
            rng.fill(&mut name);
            let n = rng.below(33) as usize;
            Record::VolumeCreate {
                vol,
                size_blocks: rng.next(),
                flags: rng.below(2) as u32,
                name: VolName::new(&name[..n]).unwrap(),
            }
        }
        5 => Record::VolumeDelete { vol },
        6 => Record::VolumeResize {
            vol,
            size_blocks: rng.next(),
        },
        7 => Record::VolumeReserve {
            vol,
            reserve: rng.next(),
            quota: rng.next(),
        },
        8 => Record::Snapshot {
            vol,
            new_vol: vol + 1,
            flags: rng.below(2) as u32,
            name: VolName::new(b"x").unwrap(),
        },
        _ => Record::CheckpointDone {
            generation: 1 + rng.below(1000),
            journal_seq: rng.next(),
            set: rng.below(2) as u8,
        },
    }
}

/// Random record streams are split into blocks by the builder and come
/// back identical, in order, with consecutive sequence numbers.
#[test]
fn random_streams_round_trip() {
    let mut rng = Rng::new(42);
    for _ in 0..50 {
        let recs: Vec<Record> = (0..rng.below(600))
            .map(|_| random_record(&mut rng))
            .collect();
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        let mut seq = 1 + rng.below(1 << 40);
        let first = seq;
        while i < recs.len() || blocks.is_empty() {
            let mut buf = vec![0u8; BLOCK_SIZE];
            let mut b = JournalBuilder::new(&mut buf, U, seq, 1).unwrap();
            while i < recs.len() && b.push(&recs[i]).is_ok() {
                i += 1;
            }
            if rng.below(4) == 0 {
                let _ = b.push_raw(0x8000 | (rng.below(0x7000) as u16 + 100), &[1, 2, 3]);
            }
            b.finish().unwrap();
            blocks.push(buf);
            seq += 1;
        }
        let mut got = Vec::new();
        for (k, blk) in blocks.iter().enumerate() {
            let (h, it) = decode_journal_block(blk).unwrap();
            assert_eq!(h.seq, first + k as u64);
            for r in it {
                got.push(r.unwrap());
            }
        }
        assert_eq!(got, recs);
    }
}

#[test]
fn geometry_checks() {
    use super::super::super::geom::tests::zns;
    let devs = [zns(8, 16, 12), zns(6, 32, 32)];
    let p = PoolGeometry::new(&devs[..]).unwrap();
    let me = |addr, len| {
        Record::MapExtent {
            vol: 1,
            lba: 0,
            len,
            addr,
        }
        .check_geometry(&p)
    };
    assert!(me(4 * 16, 12).is_ok());
    assert!(me(4 * 16 + 11, 1).is_ok());
    assert!(me(4 * 16 + 11, 2).is_err()); // beyond capacity
    assert!(me(0, 1).is_err()); // metadata zone
    assert!(me(128 + 4 * 32, 32).is_ok());
    assert!(me(128 + 3 * 32, 1).is_err()); // member 1's metadata zone
    assert!(me(128 + 6 * 32, 1).is_err()); // beyond the pool
    assert!(Record::ZoneReset { zone: 4 }.check_geometry(&p).is_ok());
    assert!(Record::ZoneFinish { zone: 13 }.check_geometry(&p).is_ok());
    assert!(Record::ZoneReset { zone: 3 }.check_geometry(&p).is_err());
    assert!(Record::ZoneReset { zone: 14 }.check_geometry(&p).is_err());
    assert!(Record::VolumeDelete { vol: 1 }.check_geometry(&p).is_ok());
}

#[test]
fn scan_log_zone() {
    let sb = {
        let mut b = vec![0u8; BLOCK_SIZE];
        b[..8].copy_from_slice(&super::super::SUPERBLOCK_MAGIC.to_le_bytes());
        b
    };
    let mut zone = Vec::new();
    zone.extend_from_slice(&sb);
    zone.extend_from_slice(&block(&all_kinds(), 1));
    zone.extend_from_slice(&block(&[Record::ZoneReset { zone: 3 }], 2));
    let mut torn = block(&[], 3);
    torn[70] = 1;
    zone.extend_from_slice(&torn);
    zone.extend_from_slice(&block(&[], 4));
    zone.extend_from_slice(&[0u8; BLOCK_SIZE]); // end of the log
    zone.extend_from_slice(&block(&[], 5)); // not reached
    let items: Vec<(usize, LogBlock<'_>)> = JournalBlockIter::new(&zone).collect();
    assert_eq!(items.len(), 5);
    assert!(matches!(items[0], (0, LogBlock::Superblock(_))));
    match &items[1] {
        (1, LogBlock::Journal(h, it)) => {
            assert_eq!(h.seq, 1);
            assert_eq!(it.clone().count(), all_kinds().len());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(items[3], (3, LogBlock::Bad(Error::BadChecksum))));
    assert!(matches!(&items[4], (4, LogBlock::Journal(h, _)) if h.seq == 4));
    // A trailing partial block is ignored; an empty buffer yields nothing.
    assert_eq!(JournalBlockIter::new(&zone[..BLOCK_SIZE + 10]).count(), 1);
    assert_eq!(JournalBlockIter::new(&[]).count(), 0);
}

#[test]
fn fuzz() {
    let mut rng = Rng::new(0x0123_4567_89ab);
    let base = block(&all_kinds(), 77);
    let mut ok = 0u32;
    for i in 0..30_000 {
        let mut b = base.clone();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut b);
        }
        if i % 4 != 0 {
            reseal(&mut b);
        }
        if let Ok((_, it)) = decode_journal_block(&b) {
            // A decoded block never yields an error.
            for r in it {
                assert!(r.is_ok());
            }
            ok += 1;
        }
    }
    assert!(ok > 0 && ok < 30_000);
    // Fully random blocks with a valid magic and CRC.
    for _ in 0..2000 {
        let mut b = vec![0u8; BLOCK_SIZE];
        rng.fill(&mut b);
        b[..8].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
        b[16..20].copy_from_slice(&(rng.below(4096) as u32).to_le_bytes());
        reseal(&mut b);
        let _ = decode_journal_block(&b);
    }
}
