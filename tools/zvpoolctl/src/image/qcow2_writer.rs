// SPDX-License-Identifier: GPL-2.0
//! A small qcow2 writer for tests (version 2 or 3, one L2 table): the
//! layout qemu writes (header, L1, refcount table and block with correct
//! counts, L2, data clusters), and the features the reader must refuse.

/// What a guest cluster holds.
#[derive(Clone, Debug)]
pub enum Cl {
    Unallocated,
    Data(Vec<u8>),
    /// The v3 zero flag (no data).
    Zero,
    /// The v3 zero flag on an allocated cluster (its data must be ignored).
    ZeroAllocated(Vec<u8>),
    /// A compressed cluster (its descriptor only; the reader refuses it).
    Compressed,
}

#[derive(Clone, Debug)]
pub struct Image {
    pub version: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub clusters: Vec<Cl>,
    pub backing: Option<String>,
    pub crypt: u32,
    pub incompat: u64,
    pub zstd: bool,
}

impl Image {
    pub fn new(version: u32, cluster_bits: u32, size: u64, clusters: Vec<Cl>) -> Self {
        Image {
            version,
            cluster_bits,
            size,
            clusters,
            backing: None,
            crypt: 0,
            incompat: 0,
            zstd: false,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let cs = 1usize << self.cluster_bits;
        assert!(self.clusters.len() <= cs / 8, "one L2 table only");
        // Clusters: 0 header, 1 L1, 2 refcount table, 3 refcount block,
        // 4 L2, then data.
        let mut img = vec![0u8; 5 * cs];
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        let put64 =
            |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_be_bytes());
        img[0..4].copy_from_slice(b"QFI\xfb");
        put32(&mut img, 4, self.version);
        if let Some(name) = &self.backing {
            let at = if self.version == 3 { 112 } else { 72 } + 8;
            img[at..at + name.len()].copy_from_slice(name.as_bytes());
            put64(&mut img, 8, at as u64);
            put32(&mut img, 16, name.len() as u32);
        }
        put32(&mut img, 20, self.cluster_bits);
        put64(&mut img, 24, self.size);
        put32(&mut img, 32, self.crypt);
        put32(&mut img, 36, 1);
        put64(&mut img, 40, cs as u64);
        put64(&mut img, 48, 2 * cs as u64);
        put32(&mut img, 56, 1);
        if self.version == 3 {
            let mut incompat = self.incompat;
            if self.zstd {
                incompat |= 8;
                img[104] = 1;
            }
            put64(&mut img, 72, incompat);
            put32(&mut img, 96, 4);
            put32(&mut img, 100, 112);
        }
        // L1 -> L2 at cluster 4 (copied flag set, as qemu writes it).
        put64(&mut img, cs, (4 * cs) as u64 | 1 << 63);
        let mut used = vec![0usize, 1, 2, 3, 4];
        for (i, c) in self.clusters.iter().enumerate() {
            let l2 = 4 * cs + 8 * i;
            let data_cluster = |img: &mut Vec<u8>, d: &[u8]| {
                let at = img.len();
                img.resize(at + cs, 0);
                img[at..at + d.len()].copy_from_slice(d);
                at
            };
            let e: u64 = match c {
                Cl::Unallocated => 0,
                Cl::Data(d) => {
                    let at = data_cluster(&mut img, d);
                    used.push(at / cs);
                    at as u64 | 1 << 63
                }
                Cl::Zero => 1,
                Cl::ZeroAllocated(d) => {
                    let at = data_cluster(&mut img, d);
                    used.push(at / cs);
                    at as u64 | 1 << 63 | 1
                }
                Cl::Compressed => 1 << 62 | (5 * cs as u64),
            };
            put64(&mut img, l2, e);
        }
        // Refcount table -> block at cluster 3; 16-bit counts.
        put64(&mut img, 2 * cs, 3 * cs as u64);
        for u in used {
            let at = 3 * cs + 2 * u;
            img[at..at + 2].copy_from_slice(&1u16.to_be_bytes());
        }
        img
    }
}
