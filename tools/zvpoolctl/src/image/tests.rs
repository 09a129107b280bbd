// SPDX-License-Identifier: GPL-2.0
//! Image readers: raw with holes, qcow2 v2/v3 built by the test writer
//! (unallocated and zero clusters, refusals), fuzzing with truncated and
//! bit-flipped headers and tables, and a cross-check with qemu-img.

use super::export::export_raw;
use super::import::{import, Stats};
use super::qcow2_writer::{Cl, Image};
use super::*;
use crate::devio::VolumeDev;
use crate::progress::Progress;
use crate::testutil::TempDir;
use std::collections::BTreeMap;
use std::io;

/// A volume device in memory that records its writes.
pub struct MemVol {
    pub data: Vec<u8>,
    pub writes: Vec<(u64, u64)>,
}

impl VolumeDev for MemVol {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> io::Result<()> {
        b.copy_from_slice(&self.data[o as usize..o as usize + b.len()]);
        Ok(())
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> io::Result<()> {
        self.data[o as usize..o as usize + b.len()].copy_from_slice(b);
        self.writes.push((o, b.len() as u64));
        Ok(())
    }
    fn zero_range(&mut self, o: u64, l: u64) -> io::Result<()> {
        self.data[o as usize..(o + l) as usize].fill(0);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 253) as u8).wrapping_add(seed) | 1)
        .collect()
}

fn read_all(r: &mut dyn ImageReader) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; r.virtual_size() as usize];
    while let Some(e) = r.next_extent()? {
        out[e.offset as usize..e.offset as usize + e.data.len()].copy_from_slice(&e.data);
    }
    Ok(out)
}

fn open_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<Box<dyn ImageReader>, String> {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    open(p.to_str().unwrap(), None, false).map(|(_, r)| r)
}

/// A raw file: data, a 1 MiB hole, a zero block written as data, data.
#[test]
fn raw_import_skips_holes_and_zero_blocks() {
    let dir = TempDir::new("raw");
    let p = dir.path().join("disk.raw");
    let f = std::fs::File::create(&p).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&pattern(8192, 1), 0).unwrap();
    f.write_all_at(&vec![0u8; 4096], (1 << 20) + 8192).unwrap();
    f.write_all_at(&pattern(4096, 2), (1 << 20) + 12288)
        .unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    let (fmt, mut r) = open(p.to_str().unwrap(), None, false).unwrap();
    assert_eq!((fmt, r.virtual_size()), (Format::Raw, 3 << 20));
    let mut vol = MemVol {
        data: vec![0; 3 << 20],
        writes: Vec::new(),
    };
    let st = import(r.as_mut(), &mut vol, &mut Progress::with_sink("t", 0, None)).unwrap();
    assert_eq!(vol.data, std::fs::read(&p).unwrap());
    // Only the two data runs were written.
    assert_eq!(vol.writes, vec![(0, 8192), ((1 << 20) + 12288, 4096)]);
    assert_eq!(st.written, 12288);
    assert!(st.zero_skipped >= 4096, "{st:?}");
}

fn cs16() -> usize {
    1 << 16
}

fn sample(version: u32) -> (Image, Vec<u8>) {
    let cs = cs16();
    let mut c = vec![
        Cl::Data(pattern(cs, 3)),
        Cl::Unallocated,
        Cl::Data(pattern(100, 4)), // rest of the cluster zeros
        Cl::Data(vec![0; cs]),     // allocated, all zeros
    ];
    if version == 3 {
        c.push(Cl::Zero);
        c.push(Cl::ZeroAllocated(pattern(cs, 5)));
    }
    c.push(Cl::Data(pattern(cs, 6)));
    // The last cluster is cut; qcow2 sizes are whole 512-byte sectors
    // (qemu-img rounds any other size down).
    let size = (c.len() * cs - 5120) as u64;
    let mut want = vec![0u8; size as usize];
    for (i, cl) in c.iter().enumerate() {
        if let Cl::Data(d) = cl {
            let o = i * cs;
            let n = d.len().min(size as usize - o);
            want[o..o + n].copy_from_slice(&d[..n]);
        }
    }
    (Image::new(version, 16, size, c), want)
}

#[test]
fn qcow2_v2_and_v3_read_allocated_clusters_only() {
    let dir = TempDir::new("qcow2");
    for v in [2, 3] {
        let (img, want) = sample(v);
        let bytes = img.build();
        let mut r = open_bytes(&dir, "a.qcow2", &bytes).unwrap();
        assert_eq!(r.virtual_size(), img.size);
        let mut offsets = Vec::new();
        let mut got = vec![0u8; want.len()];
        while let Some(e) = r.next_extent().unwrap() {
            offsets.push(e.offset);
            got[e.offset as usize..][..e.data.len()].copy_from_slice(&e.data);
        }
        assert_eq!(got, want, "v{v}");
        let cs = cs16() as u64;
        let last = if v == 3 { 6 } else { 4 };
        assert_eq!(offsets, vec![0, 2 * cs, 3 * cs, last * cs], "v{v}");
        // Import writes only the non-zero blocks: not the zero cluster.
        let (_, mut r) = open(
            dir.path().join("a.qcow2").to_str().unwrap(),
            Some(Format::Qcow2),
            false,
        )
        .unwrap();
        let mut vol = MemVol {
            data: vec![0; img.size.div_ceil(4096) as usize * 4096],
            writes: Vec::new(),
        };
        let st: Stats =
            import(r.as_mut(), &mut vol, &mut Progress::with_sink("t", 0, None)).unwrap();
        assert_eq!(&vol.data[..want.len()], &want[..]);
        let written: u64 = vol.writes.iter().map(|w| w.1).sum();
        assert_eq!(written, st.written);
        assert_eq!(
            st.written,
            cs + 4096 + (cs - 5000).div_ceil(4096) * 4096,
            "v{v}"
        );
        let wmap: BTreeMap<u64, u64> = vol.writes.iter().copied().collect();
        assert!(
            !wmap.contains_key(&(3 * cs)),
            "the all-zero cluster was written"
        );
    }
}

#[test]
fn qcow2_refusals_are_clear() {
    let dir = TempDir::new("qcow2r");
    let cs = cs16();
    let refuse = |img: Image, want: &str| {
        let e = open_bytes(&dir, "r.qcow2", &img.build()).err().expect(want);
        assert!(e.contains(want), "{e:?} should say {want:?}");
    };
    let base = |v| Image::new(v, 16, 4 * cs as u64, vec![Cl::Data(pattern(cs, 1))]);
    let mut i = base(3);
    i.clusters.push(Cl::Unallocated);
    i.clusters.push(Cl::Compressed);
    refuse(
        i.clone(),
        &format!("compressed cluster (deflate) at guest offset {}", 2 * cs),
    );
    i.zstd = true;
    refuse(i, "compressed cluster (zstd)");
    let mut i = base(2);
    i.backing = Some("base.qcow2".into());
    refuse(i, "backing file (\"base.qcow2\")");
    let mut i = base(3);
    i.crypt = 2;
    refuse(i, "encrypted");
    for (bit, want) in [
        (2, "corrupt"),
        (4, "external data file"),
        (16, "subclusters"),
        (64, "unknown incompatible"),
    ] {
        let mut i = base(3);
        i.incompat = bit;
        refuse(i, want);
    }
    let mut i = base(2);
    i.clusters.push(Cl::Zero);
    refuse(i, "zero flag in a version 2 image");
    let mut i = base(3);
    i.backing = Some("b".into());
    let p = dir.path().join("b.qcow2");
    std::fs::write(&p, i.build()).unwrap();
    let e = open(p.to_str().unwrap(), None, true).err().unwrap();
    assert!(e.contains("--follow-backing is not implemented"), "{e}");
}

/// Truncated and bit-flipped images: a clean error or a clean read, never
/// a panic; reads stay within the virtual size.
#[test]
fn qcow2_fuzz_truncations_and_bit_flips() {
    let dir = TempDir::new("qfuzz");
    let (img, _) = sample(3);
    let bytes = img.build();
    let cs = cs16();
    // Every truncation inside the metadata clusters, then coarser.
    let cuts: Vec<usize> = (0..5 * cs)
        .step_by(61)
        .chain((5 * cs..bytes.len()).step_by(4093))
        .collect();
    for cut in cuts {
        if let Ok(mut r) = open_bytes(&dir, "t.qcow2", &bytes[..cut]) {
            let _ = read_all(r.as_mut());
        }
    }
    // Bit flips in the header, the L1 table and the L2 table.
    let spots: Vec<usize> = (0..112)
        .chain(cs..cs + 8)
        .chain(4 * cs..4 * cs + 8 * 8)
        .collect();
    let mut refused = 0;
    for at in spots {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            match open_bytes(&dir, "f.qcow2", &b) {
                Ok(mut r) => {
                    if let Ok(d) = read_all(r.as_mut()) {
                        assert!(d.len() as u64 <= 1 << 50);
                    }
                }
                Err(e) => {
                    assert!(!e.is_empty());
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 100, "only {refused} flips refused");
}

#[test]
fn export_raw_is_sparse_and_equal() {
    let dir = TempDir::new("export");
    let mut vol = MemVol {
        data: vec![0; 8 << 20],
        writes: Vec::new(),
    };
    vol.data[4096..12288].copy_from_slice(&pattern(8192, 7));
    vol.data[(5 << 20)..(5 << 20) + 4096].copy_from_slice(&pattern(4096, 8));
    let p = dir.path().join("out.raw");
    let f = std::fs::File::create(&p).unwrap();
    let n = export_raw(&mut vol, &f, &mut Progress::with_sink("t", 0, None)).unwrap();
    assert_eq!(n, 12288);
    assert_eq!(std::fs::read(&p).unwrap(), vol.data);
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&p).unwrap();
    assert!(
        md.blocks() * 512 < 1 << 20,
        "not sparse: {} bytes allocated",
        md.blocks() * 512
    );
    // And back: importing the export writes the same blocks only.
    let (_, mut r) = open(p.to_str().unwrap(), None, false).unwrap();
    let mut back = MemVol {
        data: vec![0; 8 << 20],
        writes: Vec::new(),
    };
    import(
        r.as_mut(),
        &mut back,
        &mut Progress::with_sink("t", 0, None),
    )
    .unwrap();
    assert_eq!(back.data, vol.data);
    assert_eq!(back.writes.iter().map(|w| w.1).sum::<u64>(), 12288);
}

/// qemu-img, when present, reads the test writer's images as this reader
/// does.
#[test]
fn qcow2_cross_check_with_qemu_img() {
    let ok = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipped: qemu-img not installed (the cross-check of the qcow2 reader needs it)");
        return;
    }
    let dir = TempDir::new("qemu");
    for v in [2, 3] {
        let (img, want) = sample(v);
        let src = dir.path().join("x.qcow2");
        let dst = dir.path().join("x.raw");
        std::fs::write(&src, img.build()).unwrap();
        let st = std::process::Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(&src)
            .arg(&dst)
            .status()
            .unwrap();
        assert!(st.success(), "qemu-img convert of the v{v} image");
        assert_eq!(std::fs::read(&dst).unwrap(), want, "v{v}");
    }
}

/// qcow2 export: read back by the reader (and by qemu-img when present)
/// as the volume's content; only the non-zero clusters are stored.
#[test]
fn qcow2_export_round_trip() {
    let dir = TempDir::new("qexp");
    let mut vol = MemVol {
        data: vec![0; (3 << 20) + 8192],
        writes: Vec::new(),
    };
    vol.data[4096..12288].copy_from_slice(&pattern(8192, 7));
    vol.data[(2 << 20)..(2 << 20) + 4096].copy_from_slice(&pattern(4096, 8));
    let n = vol.data.len();
    vol.data[n - 4096..].copy_from_slice(&pattern(4096, 9));
    let p = dir.path().join("out.qcow2");
    let f = std::fs::File::create(&p).unwrap();
    let stored =
        super::qcow2_export::export_qcow2(&mut vol, &f, &mut Progress::with_sink("t", 0, None))
            .unwrap();
    assert_eq!(stored, 2 * 65536 + 8192);
    let (fmt, mut r) = open(p.to_str().unwrap(), None, false).unwrap();
    assert_eq!(
        (fmt, r.virtual_size(), r.allocated()),
        (Format::Qcow2, n as u64, 3 * 65536)
    );
    assert_eq!(read_all(r.as_mut()).unwrap(), vol.data);
    let ok = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipped the qemu-img check: qemu-img not installed");
        return;
    }
    let st = std::process::Command::new("qemu-img")
        .args(["check", "-f", "qcow2"])
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success(), "qemu-img check");
    let raw = dir.path().join("out.raw");
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&p)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&raw).unwrap(), vol.data);
}
