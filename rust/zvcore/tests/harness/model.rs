// SPDX-License-Identifier: GPL-2.0
//! Data tags (each block written says what it is) and the reference
//! model of the volumes' contents.

use super::*;

// ---- data tags ---------------------------------------------------------------

pub const TAG: u64 = u64::from_le_bytes(*b"ZVTESTDB");

pub fn fill_block(b: &mut [u8], vol: u32, lba: u64, ver: u64) {
    let seed = ver.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lba.rotate_left(17) ^ u64::from(vol);
    for (i, c) in b.chunks_mut(8).enumerate() {
        c.copy_from_slice(
            &(seed
                .wrapping_add(i as u64)
                .wrapping_mul(0xff51_afd7_ed55_8ccd))
            .to_le_bytes(),
        );
    }
    b[0..8].copy_from_slice(&TAG.to_le_bytes());
    b[8..12].copy_from_slice(&vol.to_le_bytes());
    b[12..20].copy_from_slice(&lba.to_le_bytes());
    b[20..28].copy_from_slice(&ver.to_le_bytes());
}

/// The version a block holds (0 = zeros); Err if it is not a valid block of
/// (vol, lba).
pub fn block_version(b: &[u8], vol: u32, lba: u64) -> Result<u64, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(0);
    }
    let tag = u64::from_le_bytes(b[0..8].try_into().unwrap());
    let v = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let l = u64::from_le_bytes(b[12..20].try_into().unwrap());
    let ver = u64::from_le_bytes(b[20..28].try_into().unwrap());
    // Snapshots and clones read blocks written by their origin: the tag's
    // volume may differ (versions are unique in the whole world).
    if tag != TAG || l != lba {
        return Err(format!(
            "block of vol {vol} lba {lba} holds tag {tag:#x} vol {v} lba {l} ver {ver}"
        ));
    }
    let mut want = vec![0u8; BS];
    fill_block(&mut want, v, lba, ver);
    if want != b {
        return Err(format!(
            "block of vol {vol} lba {lba} ver {ver}: torn or corrupt contents"
        ));
    }
    Ok(ver)
}

// ---- reference model -----------------------------------------------------------

#[derive(Clone, Default)]
pub struct BlockModel {
    /// Last completed version (0 = zeros).
    pub cur: u64,
    /// Version known durable (committed).
    pub durable: u64,
    /// Completions since `durable`: (completion index, version).
    pub hist: Vec<(u64, u64)>,
}

pub struct VolModel {
    pub id: u32,
    pub blocks: Vec<BlockModel>,
    /// A snapshot (read-only).
    pub ro: bool,
    /// What it was made from (snapshot: its volume; clone: its snapshot).
    pub origin: Option<u32>,
    /// Quota and reservation in blocks (committed at once, like every
    /// volume operation).
    pub rules: SpaceRules,
}

impl VolModel {
    pub fn new(id: u32, size: u64) -> VolModel {
        VolModel {
            id,
            blocks: vec![BlockModel::default(); size as usize],
            ro: false,
            origin: None,
            rules: SpaceRules::default(),
        }
    }

    /// A copy holding the current contents, all durable (snapshot, clone,
    /// rollback: committed at once).
    pub fn copy_as(&self, id: u32, ro: bool) -> VolModel {
        VolModel {
            id,
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockModel {
                    cur: b.cur,
                    durable: b.cur,
                    hist: Vec::new(),
                })
                .collect(),
            ro,
            origin: Some(self.id),
            rules: SpaceRules::default(),
        }
    }
}
