// SPDX-License-Identifier: GPL-2.0
//! The stream format: round trips, and every truncation and single-bit
//! flip refused before any damaged record is handed out.

use super::*;

fn ident(v: &str, s: &str) -> Identity {
    Identity {
        pool_uuid: "6f1c2d3e-aaaa-bbbb-cccc-1234567890ab".into(),
        volume: v.into(),
        snapshot: s.into(),
    }
}

fn header(base: bool) -> Header {
    Header {
        volume_size: 64 * BLOCK,
        snap: ident("vm1", "s2"),
        base: base.then(|| ident("vm1", "s1")),
    }
}

fn block(seed: u8) -> Vec<u8> {
    (0..BLOCK as usize)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// A stream: data at 0 (2 blocks), a hole at 8..16, data at 20.
fn sample(base: bool) -> (Vec<u8>, Vec<Record>) {
    let mut two = block(1);
    two.extend(block(2));
    let recs = vec![
        Record::Data {
            offset: 0,
            data: two,
        },
        Record::Hole {
            offset: 8 * BLOCK,
            len: 8 * BLOCK,
        },
        Record::Data {
            offset: 20 * BLOCK,
            data: block(3),
        },
    ];
    let mut e = Encoder::new(Vec::new(), &header(base)).unwrap();
    for r in &recs {
        match r {
            Record::Data { offset, data } => e.data(*offset, data).unwrap(),
            Record::Hole { offset, len } => e.hole(*offset, *len).unwrap(),
        }
    }
    (e.finish().unwrap(), recs)
}

fn decode_all(bytes: &[u8]) -> Result<(Header, Vec<Record>), (StreamError, usize)> {
    let (mut d, h) = Decoder::new(bytes).map_err(|e| (e, 0))?;
    let mut out = Vec::new();
    loop {
        match d.next_record() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return Ok((h, out)),
            Err(e) => return Err((e, out.len())),
        }
    }
}

#[test]
fn round_trip_full_and_incremental() {
    for base in [false, true] {
        let (bytes, recs) = sample(base);
        let (h, got) = decode_all(&bytes).unwrap();
        assert_eq!(h, header(base));
        assert_eq!(got, recs);
    }
}

#[test]
fn encoder_refuses_bad_extents_and_headers() {
    let mut e = Encoder::new(Vec::new(), &header(false)).unwrap();
    e.data(4 * BLOCK, &block(1)).unwrap();
    // Backwards, unaligned, past the end, empty.
    assert!(e.data(0, &block(1)).is_err());
    assert!(e.hole(5 * BLOCK + 1, BLOCK).is_err());
    assert!(e.hole(60 * BLOCK, 8 * BLOCK).is_err());
    assert!(e.hole(10 * BLOCK, 0).is_err());
    let mut h = header(false);
    h.volume_size = 4095;
    assert!(encode_header(&h).is_err());
    let mut h = header(false);
    h.snap.volume = "a/b".into();
    assert!(encode_header(&h).is_err());
}

#[test]
fn large_data_is_split_into_bounded_records() {
    let mut h = header(false);
    h.volume_size = 4 * MAX_DATA;
    let data: Vec<u8> = (0..(MAX_DATA + 2 * BLOCK) as usize)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut e = Encoder::new(Vec::new(), &h).unwrap();
    e.data(BLOCK, &data).unwrap();
    let bytes = e.finish().unwrap();
    let (_, recs) = decode_all(&bytes).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].len(), MAX_DATA);
    let mut joined = Vec::new();
    for r in recs {
        if let Record::Data { data, .. } = r {
            joined.extend(data);
        }
    }
    assert_eq!(joined, data);
}

/// Cut at every byte: refused, and the records handed out before the
/// error are exactly the ones wholly before the cut.
#[test]
fn every_truncation_is_refused() {
    let (bytes, recs) = sample(true);
    let hlen = encode_header(&header(true)).unwrap().len();
    // Byte offset where each record ends.
    let mut ends = Vec::new();
    let mut at = hlen;
    for r in &recs {
        at += FRAME
            + match r {
                Record::Data { data, .. } => data.len(),
                Record::Hole { .. } => 0,
            };
        ends.push(at);
    }
    for cut in 0..bytes.len() {
        let (e, n) = decode_all(&bytes[..cut]).expect_err(&format!("cut at {cut} accepted"));
        assert!(
            e.msg.contains("truncated") || e.msg.contains("empty"),
            "cut {cut}: {e}"
        );
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(n, whole, "cut {cut}: records handed out");
    }
}

/// Flip every bit: refused; nothing after the damaged byte is handed out.
#[test]
fn every_bit_flip_is_refused() {
    let (bytes, recs) = sample(true);
    let hlen = encode_header(&header(true)).unwrap().len();
    let mut ends = Vec::new();
    let mut at = hlen;
    for r in &recs {
        at += FRAME
            + match r {
                Record::Data { data, .. } => data.len(),
                Record::Hole { .. } => 0,
            };
        ends.push(at);
    }
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let (e, n) = decode_all(&b).expect_err(&format!("flip {i}.{bit} accepted"));
            assert!(!e.msg.is_empty());
            // Records handed out all start and end before the damage.
            let before = ends.iter().filter(|&&end| end <= i).count();
            assert!(n <= before, "flip at {i}: {n} records handed out: {e}");
            assert_eq!(&recs[..n], &decode_all(&bytes).unwrap().1[..n]);
        }
    }
}

#[test]
fn trailing_garbage_and_unknown_versions_are_refused() {
    let (mut bytes, _) = sample(false);
    bytes.push(0);
    assert!(decode_all(&bytes)
        .unwrap_err()
        .0
        .msg
        .contains("after the trailer"));
    let (mut bytes, _) = sample(false);
    bytes[8] = 2;
    assert!(decode_all(&bytes).unwrap_err().0.msg.contains("version 2"));
    assert!(decode_all(b"").unwrap_err().0.msg.contains("empty"));
    assert!(
        decode_all(b"QFI\xfb not a stream at all, longer than 32 bytes")
            .unwrap_err()
            .0
            .msg
            .contains("bad magic")
    );
}

/// A record spliced in from another stream (each frame and its data valid,
/// the counts equal) is caught by the trailer's running CRC.
#[test]
fn spliced_records_are_refused_by_the_trailer() {
    let h = header(false);
    let make = |seed: u8| {
        let mut e = Encoder::new(Vec::new(), &h).unwrap();
        e.data(0, &block(seed)).unwrap();
        e.data(4 * BLOCK, &block(9)).unwrap();
        e.finish().unwrap()
    };
    let (a, b) = (make(1), make(2));
    let hlen = encode_header(&h).unwrap().len();
    let mut spliced = a.clone();
    let rec = hlen..hlen + FRAME + BLOCK as usize;
    spliced[rec.clone()].copy_from_slice(&b[rec]);
    assert_ne!(spliced, a);
    let (e, n) = decode_all(&spliced).unwrap_err();
    assert_eq!(n, 2, "both records verify on their own");
    assert!(e.msg.contains("stream checksum mismatch"), "{e}");
}

/// Records swapped (each valid on its own): refused as out of order before
/// the second one is handed out.
#[test]
fn reordered_records_are_refused() {
    let h = header(false);
    let mut e = Encoder::new(Vec::new(), &h).unwrap();
    e.data(0, &block(1)).unwrap();
    e.data(4 * BLOCK, &block(2)).unwrap();
    let a = e.finish().unwrap();
    let hlen = encode_header(&h).unwrap().len();
    let r = FRAME + BLOCK as usize;
    let mut b = a.clone();
    b[hlen..hlen + r].copy_from_slice(&a[hlen + r..hlen + 2 * r]);
    b[hlen + r..hlen + 2 * r].copy_from_slice(&a[hlen..hlen + r]);
    let (e, n) = decode_all(&b).unwrap_err();
    assert_eq!(n, 1);
    assert!(e.msg.contains("out of order"), "{e}");
}
