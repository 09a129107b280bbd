// SPDX-License-Identifier: GPL-2.0
//! Metadata blocks for the damage tests: list a log zone's journal blocks,
//! flip a byte, and change a field while keeping the block's checksum
//! valid (so that field validation, not the CRC, must catch it). The
//! layouts are those of `Documentation/on-disk-format.md`; this tool keeps
//! its own small decoder on purpose (std only, and a second reading of the
//! format).

/// Bytes of a metadata block.
pub const BLOCK: usize = 4096;
/// `"ZVJOURNL"`.
pub const JOURNAL_MAGIC: &[u8; 8] = b"ZVJOURNL";
/// `"ZVPOOLSB"`.
pub const SUPERBLOCK_MAGIC: &[u8; 8] = b"ZVPOOLSB";

/// CRC32C (Castagnoli, reflected, init and final xor all ones).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The checksum a metadata block must carry (bytes 8..12 skipped).
pub fn block_crc(b: &[u8]) -> u32 {
    // The field is skipped, not zeroed: CRC over [0..8] ++ [12..].
    let mut d = Vec::with_capacity(b.len().saturating_sub(4));
    d.extend_from_slice(b.get(..8).unwrap_or(&[]));
    d.extend_from_slice(b.get(12..).unwrap_or(&[]));
    crc32c(&d)
}

fn le(b: &[u8], off: usize, n: usize) -> u64 {
    let mut v = 0u64;
    for i in (0..n).rev() {
        v = (v << 8) | u64::from(b.get(off + i).copied().unwrap_or(0));
    }
    v
}

/// A journal block's header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalInfo {
    pub seq: u64,
    pub ckpt_gen: u64,
    pub commit_seq: u64,
    pub flags: u16,
    pub records: u16,
    /// The stored checksum matches.
    pub valid: bool,
    /// Pool UUID (hex).
    pub pool: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The pool UUID of a superblock (hex), if the block is one.
pub fn superblock_pool(b: &[u8]) -> Option<String> {
    is_superblock(b).then(|| hex(b.get(40..56).unwrap_or(&[])))
}

/// The header of a journal block (any block with the journal magic).
pub fn journal_info(b: &[u8]) -> Option<JournalInfo> {
    if b.len() < BLOCK || &b[..8] != JOURNAL_MAGIC {
        return None;
    }
    Some(JournalInfo {
        seq: le(b, 40, 8),
        ckpt_gen: le(b, 48, 8),
        commit_seq: le(b, 56, 8),
        flags: le(b, 14, 2) as u16,
        records: le(b, 12, 2) as u16,
        valid: le(b, 8, 4) as u32 == block_crc(b),
        pool: hex(&b[24..40]),
    })
}

/// Whether the block is a superblock (by magic).
pub fn is_superblock(b: &[u8]) -> bool {
    b.get(..8) == Some(&SUPERBLOCK_MAGIC[..])
}

/// Stores `value` little-endian in `width` bytes at `off` and reseals the
/// block's checksum.
pub fn reseal(b: &mut [u8], off: usize, width: usize, value: u64) -> Result<(), String> {
    if b.len() != BLOCK || off + width > BLOCK || width > 8 || (8..12).contains(&off) {
        return Err(format!(
            "field {off}+{width} outside the block or over the CRC"
        ));
    }
    for i in 0..width {
        b[off + i] = (value >> (8 * i)) as u8;
    }
    let crc = block_crc(b);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn reseal_keeps_a_valid_checksum() {
        let mut b = vec![0u8; BLOCK];
        b[..8].copy_from_slice(JOURNAL_MAGIC);
        reseal(&mut b, 40, 8, 77).unwrap();
        let j = journal_info(&b).unwrap();
        assert!(j.valid);
        assert_eq!(j.seq, 77);
        b[100] ^= 1;
        assert!(!journal_info(&b).unwrap().valid);
        assert!(reseal(&mut b, 9, 1, 0).is_err());
        assert!(reseal(&mut b, 4095, 2, 0).is_err());
        assert!(!is_superblock(&b));
    }
}
