// SPDX-License-Identifier: GPL-2.0
//! A qcow2 reader (versions 2 and 3): the header, the L1 table and the L2
//! tables, nothing else (refcounts are not needed to read). It yields the
//! guest data of every allocated cluster; zero clusters (the v3 flag) and
//! unallocated ones read as zeros and are skipped.
//!
//! Refused with a clear message: backing files (`--follow-backing` is not
//! implemented), encryption, external data files, images marked corrupt,
//! extended L2 entries (subclusters), unknown incompatible features and
//! compressed clusters (deflate or zstd; the first one's guest offset is
//! named). Every table entry is checked against the file's size, and the
//! whole mapping is checked when the image is opened, so a refusal comes
//! before anything is written.

use super::{Extent, ImageReader};
use std::fs::File;
use std::os::unix::fs::FileExt;

pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// The largest L1 table qemu accepts (32 MiB).
const MAX_L1_BYTES: u64 = 32 << 20;
/// The largest virtual size a volume can have.
const MAX_SIZE: u64 = 1 << 50;
const L1E_OFFSET: u64 = 0x00ff_ffff_ffff_fe00;
const L1E_RESERVED: u64 = 0x7f00_0000_0000_01ff;
const L2E_OFFSET: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_RESERVED: u64 = 0x3f00_0000_0000_01fe;
const L2E_COMPRESSED: u64 = 1 << 62;
const L2E_ZERO: u64 = 1;

const INCOMPAT_DIRTY: u64 = 1;
const INCOMPAT_CORRUPT: u64 = 2;
const INCOMPAT_DATA_FILE: u64 = 4;
const INCOMPAT_COMPRESSION: u64 = 8;
const INCOMPAT_EXTL2: u64 = 16;

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// What a guest cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cluster {
    /// Reads zeros (unallocated, or the zero flag).
    Zero,
    /// Data at this host offset.
    Data(u64),
}

pub struct Qcow2Reader {
    f: File,
    file_len: u64,
    version: u32,
    cluster_bits: u32,
    size: u64,
    l1: Vec<u64>,
    /// The L2 table last read: (its file offset, entries).
    l2: Option<(u64, Vec<u64>)>,
    /// The next guest cluster to look at.
    next: u64,
    allocated: u64,
    compression: &'static str,
}

impl Qcow2Reader {
    /// Reads and checks the header and the L1 table, then checks every L2
    /// table (refusing compressed clusters before anything happens).
    pub fn new(f: File, follow_backing: bool) -> Result<Self, String> {
        let file_len = f.metadata().map_err(|e| crate::error::io_text(&e))?.len();
        let mut h = [0u8; 112];
        let hn = (file_len.min(112)) as usize;
        if hn < 72 {
            return Err(format!(
                "not a qcow2 image: {file_len} bytes, shorter than a qcow2 header"
            ));
        }
        f.read_exact_at(&mut h[..hn], 0)
            .map_err(|e| format!("read the qcow2 header: {}", crate::error::io_text(&e)))?;
        if &h[0..4] != MAGIC {
            return Err("not a qcow2 image (bad magic)".into());
        }
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(format!(
                "qcow2 version {version} is not supported (versions 2 and 3 are)"
            ));
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(format!(
                "invalid qcow2 header: cluster_bits {cluster_bits} (9 to 21)"
            ));
        }
        let cs = 1u64 << cluster_bits;
        let size = be64(&h, 24);
        if size == 0 || size > MAX_SIZE {
            return Err(format!(
                "qcow2 virtual size {size} bytes is not between 1 byte and 1P (the largest volume)"
            ));
        }
        let backing_off = be64(&h, 8);
        if backing_off != 0 {
            let n = be32(&h, 16).min(1023) as usize;
            let mut name = vec![0u8; n];
            let name = if backing_off
                .checked_add(n as u64)
                .is_some_and(|e| e <= file_len)
                && f.read_exact_at(&mut name, backing_off).is_ok()
            {
                String::from_utf8_lossy(&name).into_owned()
            } else {
                "?".into()
            };
            return Err(if follow_backing {
                format!(
                    "the image has a backing file ({name:?}) and --follow-backing is not implemented yet; \
                     flatten it first: qemu-img convert -O qcow2 IMAGE FLAT.qcow2"
                )
            } else {
                format!(
                    "the image has a backing file ({name:?}): its data is not all in this file; \
                     flatten it first: qemu-img convert -O qcow2 IMAGE FLAT.qcow2"
                )
            });
        }
        if be32(&h, 32) != 0 {
            return Err(format!(
                "the image is encrypted (crypt_method {}): encrypted images are not supported; \
                 decrypt it first with qemu-img convert",
                be32(&h, 32)
            ));
        }
        let mut compression = "deflate";
        if version == 3 {
            if hn < 104 {
                return Err("invalid qcow2 header: version 3 header shorter than 104 bytes".into());
            }
            let header_len = u64::from(be32(&h, 100));
            if header_len < 104 || header_len > cs || header_len > file_len {
                return Err(format!("invalid qcow2 header: header_length {header_len}"));
            }
            let incompat = be64(&h, 72);
            if incompat & INCOMPAT_CORRUPT != 0 {
                return Err(
                    "the image is marked corrupt; repair it with qemu-img check -r all".into(),
                );
            }
            if incompat & INCOMPAT_DATA_FILE != 0 {
                return Err(
                    "the image keeps its data in an external data file: not supported".into(),
                );
            }
            if incompat & INCOMPAT_EXTL2 != 0 {
                return Err(
                    "the image uses extended L2 entries (subclusters): not supported; \
                     convert it with qemu-img convert -O qcow2 -o extended_l2=off"
                        .into(),
                );
            }
            let known = INCOMPAT_DIRTY
                | INCOMPAT_CORRUPT
                | INCOMPAT_DATA_FILE
                | INCOMPAT_COMPRESSION
                | INCOMPAT_EXTL2;
            if incompat & !known != 0 {
                return Err(format!(
                    "the image uses unknown incompatible features {:#x}",
                    incompat & !known
                ));
            }
            if incompat & INCOMPAT_COMPRESSION != 0 {
                if header_len < 105 || hn < 105 {
                    return Err("invalid qcow2 header: compression type missing".into());
                }
                compression = match h[104] {
                    0 => "deflate",
                    1 => "zstd",
                    t => return Err(format!("unknown qcow2 compression type {t}")),
                };
            }
            if be32(&h, 96) > 6 {
                return Err(format!(
                    "invalid qcow2 header: refcount_order {}",
                    be32(&h, 96)
                ));
            }
        }
        let l1_size = u64::from(be32(&h, 36));
        let l1_off = be64(&h, 40);
        let l2_entries = cs / 8;
        let clusters = size.div_ceil(cs);
        let need = clusters.div_ceil(l2_entries);
        if l1_size < need {
            return Err(format!(
                "invalid qcow2 header: L1 table of {l1_size} entries, the virtual size needs {need}"
            ));
        }
        let l1_bytes = l1_size * 8;
        if l1_bytes > MAX_L1_BYTES
            || !l1_off.is_multiple_of(cs)
            || l1_off.checked_add(l1_bytes).is_none_or(|e| e > file_len)
        {
            return Err(format!(
                "invalid qcow2 header: L1 table at {l1_off} of {l1_size} entries is not within the file"
            ));
        }
        // Only the entries the virtual size uses.
        let mut raw = vec![0u8; (need * 8) as usize];
        f.read_exact_at(&mut raw, l1_off)
            .map_err(|e| format!("read the L1 table: {}", crate::error::io_text(&e)))?;
        let l1: Vec<u64> = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        let mut r = Qcow2Reader {
            f,
            file_len,
            version,
            cluster_bits,
            size,
            l1,
            l2: None,
            next: 0,
            allocated: 0,
            compression,
        };
        for (i, &e) in r.l1.iter().enumerate() {
            if e & L1E_RESERVED != 0 {
                return Err(format!("invalid L1 entry {i}: reserved bits set ({e:#x})"));
            }
            let off = e & L1E_OFFSET;
            if off != 0
                && (!off.is_multiple_of(cs) || off.checked_add(cs).is_none_or(|x| x > file_len))
            {
                return Err(format!(
                    "invalid L1 entry {i}: L2 table at {off} is not a cluster within the file"
                ));
            }
        }
        // Check the whole mapping now (and count the allocated data).
        // Unallocated L2 tables are skipped whole: the cost follows the
        // tables the image has, not its virtual size.
        let mut allocated = 0u64;
        let mut g = 0;
        while g < clusters {
            if r.l1_entry(g) == 0 {
                g = (g / l2_entries + 1) * l2_entries;
                continue;
            }
            if let Cluster::Data(_) = r.cluster(g)? {
                allocated += cs;
            }
            g += 1;
        }
        r.allocated = allocated.min(size);
        r.l2 = None;
        Ok(r)
    }

    fn cs(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The L2 table offset for guest cluster `g` (0: none).
    fn l1_entry(&self, g: u64) -> u64 {
        let per = self.cs() / 8;
        let l1i = (g / per) as usize;
        self.l1.get(l1i).copied().unwrap_or(0) & L1E_OFFSET
    }

    /// Guest cluster `g`: zero or data at a host offset (checked).
    fn cluster(&mut self, g: u64) -> Result<Cluster, String> {
        let cs = self.cs();
        let l2i = (g % (cs / 8)) as usize;
        let guest = g * cs;
        let l2_off = self.l1_entry(g);
        if l2_off == 0 {
            return Ok(Cluster::Zero);
        }
        // The cache is keyed by the table's offset.
        if self.l2.as_ref().map(|(o, _)| *o) != Some(l2_off) {
            let mut raw = vec![0u8; cs as usize];
            self.f.read_exact_at(&mut raw, l2_off).map_err(|e| {
                format!(
                    "read the L2 table at {l2_off}: {}",
                    crate::error::io_text(&e)
                )
            })?;
            let t = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
            self.l2 = Some((l2_off, t));
        }
        let e = self
            .l2
            .as_ref()
            .and_then(|(_, t)| t.get(l2i))
            .copied()
            .unwrap_or(0);
        if e & L2E_COMPRESSED != 0 {
            return Err(format!(
                "compressed cluster ({}) at guest offset {guest}: compressed images are not \
                 supported; convert it first: qemu-img convert -O qcow2 IMAGE PLAIN.qcow2",
                self.compression
            ));
        }
        if e & L2E_RESERVED != 0 {
            return Err(format!(
                "invalid L2 entry for guest offset {guest}: reserved bits set ({e:#x})"
            ));
        }
        if e & L2E_ZERO != 0 {
            if self.version == 2 {
                return Err(format!(
                    "invalid L2 entry for guest offset {guest}: zero flag in a version 2 image"
                ));
            }
            return Ok(Cluster::Zero);
        }
        let host = e & L2E_OFFSET;
        if host == 0 {
            return Ok(Cluster::Zero);
        }
        if !host.is_multiple_of(cs) || host >= self.file_len {
            return Err(format!(
                "invalid L2 entry for guest offset {guest}: data at {host} is not a cluster within the file"
            ));
        }
        Ok(Cluster::Data(host))
    }
}

impl ImageReader for Qcow2Reader {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn allocated(&self) -> u64 {
        self.allocated
    }

    fn next_extent(&mut self) -> Result<Option<Extent>, String> {
        let cs = self.cs();
        let clusters = self.size.div_ceil(cs);
        let per = cs / 8;
        while self.next < clusters {
            let g = self.next;
            if self.l1_entry(g) == 0 {
                self.next = (g / per + 1) * per;
                continue;
            }
            self.next += 1;
            let Cluster::Data(host) = self.cluster(g)? else {
                continue;
            };
            let guest = g * cs;
            let len = cs.min(self.size - guest);
            // A last cluster cut short by the end of the file reads zeros
            // past it (as qemu reads it).
            let avail = len.min(self.file_len - host);
            let mut data = vec![0u8; len as usize];
            self.f
                .read_exact_at(&mut data[..avail as usize], host)
                .map_err(|e| {
                    format!(
                        "read the cluster of guest offset {guest}: {}",
                        crate::error::io_text(&e)
                    )
                })?;
            return Ok(Some(Extent {
                offset: guest,
                data,
            }));
        }
        Ok(None)
    }
}
