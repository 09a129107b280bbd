// SPDX-License-Identifier: GPL-2.0
//! The model behind `zvcrash`: which blocks each round writes, what a block
//! written in a round contains, and what may be found in a block after a
//! power cut.
//!
//! A run is a seed. Round `r` (1, 2, ...) writes the blocks
//! [`round_blocks`]`(seed, r)` with content [`stamp`]`(seed, lba, r)` and
//! then flushes; only once the flush returned is round `r` durable. After a
//! power cut during round `R + 1` (round `R` the last durable one), block
//! `lba` must hold the content of the newest round `<= R` that wrote it (or
//! zeros if none did), or the content of a later round that wrote it: round
//! `R + 1` (its writes may or may not have reached stable media), or `R + 2`
//! (the line reporting round `R + 1` durable may still have been in the
//! guest's serial buffer at the cut). Anything else is a lost durable write
//! or data that was never written there.

/// Block size of the workload.
pub const BLOCK: usize = 4096;
const MAGIC: &[u8; 8] = b"ZVCRASH1";

/// splitmix64: small, good enough, reproducible everywhere.
pub mod meta;
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Blocks written by round `r` of run `seed` on a device of `nblocks`
/// blocks: `per_round` blocks, some runs of neighbours, some scattered.
pub fn round_blocks(seed: u64, r: u64, nblocks: u64, per_round: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut s = mix(seed ^ mix(r));
    while (out.len() as u64) < per_round {
        s = mix(s);
        let start = s % nblocks;
        let run = 1 + (mix(s) % 8).min(per_round - out.len() as u64 - 1);
        for k in 0..run {
            out.push((start + k) % nblocks);
        }
    }
    out
}

/// The content of block `lba` written by round `r` of run `seed`: a header
/// (magic, seed, lba, round) then bytes derived from all three, and a
/// checksum of everything before it in the last 8 bytes.
pub fn stamp(seed: u64, lba: u64, r: u64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seed.to_le_bytes());
    b[16..24].copy_from_slice(&lba.to_le_bytes());
    b[24..32].copy_from_slice(&r.to_le_bytes());
    let mut s = mix(seed ^ mix(lba) ^ mix(r.rotate_left(17)));
    for c in b[32..BLOCK - 8].chunks_mut(8) {
        s = mix(s);
        c.copy_from_slice(&s.to_le_bytes()[..c.len()]);
    }
    let sum = checksum(&b[..BLOCK - 8]);
    b[BLOCK - 8..].copy_from_slice(&sum.to_le_bytes());
    b
}

fn checksum(b: &[u8]) -> u64 {
    b.chunks(8).fold(0x5a5a_5a5a_u64, |acc, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        mix(acc ^ u64::from_le_bytes(w))
    })
}

/// What a block read back holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// All zeros.
    Zeros,
    /// A valid stamp of this run for this block, of round `r`.
    Round(u64),
    /// Anything else.
    Garbage,
}

/// Decodes block `lba` read back from a device written by run `seed`.
pub fn decode(seed: u64, lba: u64, b: &[u8]) -> Found {
    if b.iter().all(|&x| x == 0) {
        return Found::Zeros;
    }
    if b.len() != BLOCK || &b[..8] != MAGIC {
        return Found::Garbage;
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let r = word(24);
    if word(8) != seed || word(16) != lba || r == 0 {
        return Found::Garbage;
    }
    if stamp(seed, lba, r) != b {
        return Found::Garbage;
    }
    Found::Round(r)
}

/// Rounds after the last durable one that may have reached the media.
pub const IN_FLIGHT_ROUNDS: u64 = 2;

/// Per block: the newest round `<= durable` that wrote it (0: none), and a
/// bit mask of the rounds `durable + 1 ..= durable + IN_FLIGHT_ROUNDS` that
/// wrote it (bit 0: `durable + 1`).
pub fn expectations(seed: u64, durable: u64, nblocks: u64, per_round: u64) -> (Vec<u64>, Vec<u8>) {
    let mut last = vec![0u64; nblocks as usize];
    for r in 1..=durable {
        for b in round_blocks(seed, r, nblocks, per_round) {
            last[b as usize] = r;
        }
    }
    let mut later = vec![0u8; nblocks as usize];
    for k in 0..IN_FLIGHT_ROUNDS {
        for b in round_blocks(seed, durable + 1 + k, nblocks, per_round) {
            later[b as usize] |= 1 << k;
        }
    }
    (last, later)
}

/// Checks one block: `Ok` or a description of the violation.
pub fn check(found: &Found, last: u64, later: u8, durable: u64) -> Result<(), String> {
    let wrote_later = |r: u64| {
        r > durable && r - durable <= IN_FLIGHT_ROUNDS && later & (1 << (r - durable - 1)) != 0
    };
    match *found {
        Found::Zeros if last == 0 => Ok(()),
        Found::Zeros => Err(format!("zeros, but round {last} was durable")),
        Found::Round(r) if r == last || wrote_later(r) => Ok(()),
        Found::Round(r) if r < last => Err(format!("round {r}: lost durable round {last}")),
        Found::Round(r) => Err(format!("round {r} never wrote it (newest durable {last})")),
        Found::Garbage => Err("data that was never written there".into()),
    }
}

/// What a reader racing the writer may see: per block, the newest round
/// read so far. A read that starts after another read of the same block
/// completed must return that round or a newer one, and a block never goes
/// back to zeros (the workload never discards). Anything else — another
/// block's data, garbage, an older round — is a read served from a place
/// the block no longer lives (e.g. a zone reset or reused under the read).
pub struct ScanState {
    seen: Vec<u64>,
}

impl ScanState {
    /// For a device of `nblocks` blocks.
    pub fn new(nblocks: u64) -> Self {
        Self {
            seen: vec![0; nblocks as usize],
        }
    }

    /// Records what block `lba` read as; `Err` describes a violation.
    pub fn saw(&mut self, lba: u64, found: &Found) -> Result<(), String> {
        let Some(prev) = self.seen.get_mut(lba as usize) else {
            return Err(format!("block {lba} out of range"));
        };
        match *found {
            Found::Zeros if *prev == 0 => Ok(()),
            Found::Zeros => Err(format!("block {lba}: zeros after round {prev}")),
            Found::Round(r) if r >= *prev => {
                *prev = r;
                Ok(())
            }
            Found::Round(r) => Err(format!("block {lba}: round {r} after round {prev}")),
            Found::Garbage => Err(format!("block {lba}: data never written there")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_decode_and_differ() {
        let a = stamp(7, 3, 2);
        assert_eq!(decode(7, 3, &a), Found::Round(2));
        assert_eq!(decode(7, 4, &a), Found::Garbage, "another block's data");
        assert_eq!(decode(8, 3, &a), Found::Garbage, "another run's data");
        assert_ne!(a, stamp(7, 3, 3));
        let mut torn = a.clone();
        torn[2048] ^= 1;
        assert_eq!(decode(7, 3, &torn), Found::Garbage);
        assert_eq!(decode(7, 3, &[0u8; BLOCK]), Found::Zeros);
    }

    #[test]
    fn rounds_are_reproducible_and_in_range() {
        let a = round_blocks(1, 5, 1000, 64);
        assert_eq!(a, round_blocks(1, 5, 1000, 64));
        assert_eq!(a.len(), 64);
        assert!(a.iter().all(|&b| b < 1000));
        assert_ne!(a, round_blocks(1, 6, 1000, 64));
    }

    #[test]
    fn check_accepts_only_allowed_states() {
        // durable = 4; the block's newest durable round is 3.
        assert!(check(&Found::Zeros, 0, 0, 4).is_ok());
        assert!(check(&Found::Zeros, 3, 0, 4).is_err());
        assert!(check(&Found::Round(3), 3, 0, 4).is_ok());
        assert!(check(&Found::Round(5), 3, 0b01, 4).is_ok());
        assert!(check(&Found::Round(6), 3, 0b10, 4).is_ok());
        assert!(
            check(&Found::Round(5), 3, 0b10, 4).is_err(),
            "round 5 did not write it"
        );
        assert!(
            check(&Found::Round(7), 3, 0b11, 4).is_err(),
            "beyond the rounds in flight"
        );
        assert!(check(&Found::Round(2), 3, 0b01, 4).is_err(), "lost round 3");
        assert!(
            check(&Found::Round(4), 3, 0b01, 4).is_err(),
            "round 4 did not write it"
        );
        assert!(check(&Found::Garbage, 0, 0b11, 4).is_err());
    }

    #[test]
    fn expectations_track_the_newest_durable_round() {
        let (last, later) = expectations(9, 3, 200, 16);
        for r in 1..=3 {
            for b in round_blocks(9, r, 200, 16) {
                assert!(last[b as usize] >= r);
            }
        }
        for b in round_blocks(9, 4, 200, 16) {
            assert!(later[b as usize] & 1 != 0);
        }
        for b in round_blocks(9, 5, 200, 16) {
            assert!(later[b as usize] & 2 != 0);
        }
        assert_eq!(last.iter().filter(|&&l| l > 3).count(), 0);
    }

    #[test]
    fn scan_accepts_newer_rounds_only() {
        let mut st = ScanState::new(4);
        assert!(st.saw(1, &Found::Zeros).is_ok());
        assert!(st.saw(1, &Found::Round(3)).is_ok());
        assert!(st.saw(1, &Found::Round(3)).is_ok());
        assert!(st.saw(1, &Found::Round(5)).is_ok());
        assert!(st.saw(1, &Found::Round(4)).is_err());
        assert!(st.saw(1, &Found::Zeros).is_err());
        assert!(st.saw(2, &Found::Garbage).is_err());
        assert!(st.saw(9, &Found::Zeros).is_err());
        // Another block's stamp decodes as garbage for this one.
        assert_eq!(decode(7, 2, &stamp(7, 3, 1)), Found::Garbage);
    }
}
