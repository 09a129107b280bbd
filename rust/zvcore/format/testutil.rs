// SPDX-License-Identifier: GPL-2.0
//! Test helpers of the format module: a seeded PRNG and a mutation fuzzer.

use std::vec::Vec;

/// xorshift64* (Vigna): small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next() as u8;
        }
    }
}

/// Applies one random mutation to `b`: bit flips, byte overwrites, zeroed or
/// randomised runs, or truncation (returns the length to use).
pub fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        return;
    }
    let n = b.len() as u64;
    match rng.below(8) {
        0 | 1 => {
            let i = rng.below(n) as usize;
            b[i] ^= 1 << rng.below(8);
        }
        2 => {
            let i = rng.below(n) as usize;
            b[i] = rng.next() as u8;
        }
        3 => {
            // Small field: one of the first 256 bytes (headers live there).
            let i = rng.below(n.min(256)) as usize;
            b[i] = rng.next() as u8;
        }
        4 => {
            let i = rng.below(n) as usize;
            let len = (rng.below(64) as usize).min(b.len() - i);
            for x in &mut b[i..i + len] {
                *x = 0;
            }
        }
        5 => {
            let i = rng.below(n) as usize;
            let len = (rng.below(64) as usize).min(b.len() - i);
            rng.fill(&mut b[i..i + len]);
        }
        6 => {
            let l = rng.below(n) as usize;
            b.truncate(l);
        }
        _ => {
            // Several flips at once.
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n) as usize;
                b[i] ^= 1 << rng.below(8);
            }
        }
    }
}

/// Recomputes the CRC of a (possibly mutated) full block, so the fuzzer also
/// reaches the field validation behind the checksum.
pub fn reseal(b: &mut [u8]) {
    if b.len() == super::BLOCK_SIZE {
        let _ = super::seal_block(b);
    }
}
