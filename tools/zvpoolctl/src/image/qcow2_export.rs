// SPDX-License-Identifier: GPL-2.0
//! Writes a volume device as a qcow2 (version 3) image: 64 KiB clusters,
//! only clusters that are not all zeros are stored (the rest unallocated,
//! reading zeros), no backing file, no compression, refcounts of 16 bits.
//!
//! Layout: the header (cluster 0), the L1 table, the data clusters in
//! guest order as they are read, then the L2 tables and the refcount
//! table and blocks; the header is written last, so an interrupted export
//! is never a valid image.

use super::import::is_zero;
use crate::devio::VolumeDev;
use crate::progress::Progress;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

const CLUSTER_BITS: u32 = 16;
const CS: u64 = 1 << CLUSTER_BITS;
const L2_ENTRIES: u64 = CS / 8;
/// Refcounts of 16 bits: entries per refcount block.
const RC_ENTRIES: u64 = CS / 2;
const COPIED: u64 = 1 << 63;

fn io(what: &str, e: std::io::Error) -> String {
    format!("{what}: {}", crate::error::io_text(&e))
}

/// Exports `dev` into `out` (empty); returns the data bytes stored.
pub fn export_qcow2(
    dev: &mut dyn VolumeDev,
    out: &File,
    progress: &mut Progress,
) -> Result<u64, String> {
    let size = dev.size();
    let clusters = size.div_ceil(CS);
    let l1_size = clusters.div_ceil(L2_ENTRIES).max(1);
    let l1_clusters = (l1_size * 8).div_ceil(CS);
    // Host cluster of the next data cluster.
    let mut next = 1 + l1_clusters;
    // L2 tables with data: L1 index -> entries.
    let mut l2: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut buf = vec![0u8; CS as usize];
    let mut stored = 0u64;
    for g in 0..clusters {
        let off = g * CS;
        let n = (size - off).min(CS) as usize;
        buf[n..].fill(0);
        dev.read_at(off, &mut buf[..n])
            .map_err(|e| io(&format!("read the volume at {off}"), e))?;
        progress.add(n as u64);
        if is_zero(&buf) {
            continue;
        }
        out.write_all_at(&buf, next * CS)
            .map_err(|e| io("write a data cluster", e))?;
        let t = l2
            .entry(g / L2_ENTRIES)
            .or_insert_with(|| vec![0; L2_ENTRIES as usize]);
        t[(g % L2_ENTRIES) as usize] = (next * CS) | COPIED;
        next += 1;
        stored += n as u64;
    }
    // L2 tables.
    let mut l1 = vec![0u64; l1_size as usize];
    for (i, t) in &l2 {
        let bytes: Vec<u8> = t.iter().flat_map(|e| e.to_be_bytes()).collect();
        out.write_all_at(&bytes, next * CS)
            .map_err(|e| io("write an L2 table", e))?;
        l1[*i as usize] = (next * CS) | COPIED;
        next += 1;
    }
    // Refcount table and blocks after everything: find how many clusters
    // they need to cover themselves too.
    let (mut rt_clusters, mut rb) = (1u64, 1u64);
    loop {
        let total = next + rt_clusters + rb;
        let need_rb = total.div_ceil(RC_ENTRIES);
        let need_rt = (need_rb * 8).div_ceil(CS);
        if need_rb == rb && need_rt == rt_clusters {
            break;
        }
        (rb, rt_clusters) = (need_rb, need_rt);
    }
    let rt_start = next;
    let rb_start = rt_start + rt_clusters;
    let total = rb_start + rb;
    let mut table = vec![0u8; (rt_clusters * CS) as usize];
    for i in 0..rb {
        let at = (i * 8) as usize;
        table[at..at + 8].copy_from_slice(&((rb_start + i) * CS).to_be_bytes());
    }
    out.write_all_at(&table, rt_start * CS)
        .map_err(|e| io("write the refcount table", e))?;
    let mut blocks = vec![0u8; (rb * CS) as usize];
    for c in 0..total {
        let at = (c * 2) as usize;
        blocks[at..at + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    out.write_all_at(&blocks, rb_start * CS)
        .map_err(|e| io("write the refcount blocks", e))?;
    let l1b: Vec<u8> = l1.iter().flat_map(|e| e.to_be_bytes()).collect();
    out.write_all_at(&l1b, CS)
        .map_err(|e| io("write the L1 table", e))?;
    // The header, last.
    let mut h = vec![0u8; CS as usize];
    let p32 = |h: &mut Vec<u8>, at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let p64 = |h: &mut Vec<u8>, at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_be_bytes());
    h[0..4].copy_from_slice(super::qcow2::MAGIC);
    p32(&mut h, 4, 3);
    p32(&mut h, 20, CLUSTER_BITS);
    p64(&mut h, 24, size);
    p32(&mut h, 36, l1_size as u32);
    p64(&mut h, 40, CS);
    p64(&mut h, 48, rt_start * CS);
    p32(&mut h, 56, rt_clusters as u32);
    p32(&mut h, 96, 4);
    p32(&mut h, 100, 112);
    out.set_len(total * CS)
        .map_err(|e| io("set the image's size", e))?;
    out.sync_all().map_err(|e| io("flush the image", e))?;
    out.write_all_at(&h, 0)
        .map_err(|e| io("write the header", e))?;
    out.sync_all().map_err(|e| io("flush the image", e))?;
    Ok(stored)
}
