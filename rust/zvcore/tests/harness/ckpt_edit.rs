// SPDX-License-Identifier: GPL-2.0
//! Checkpoints read back from a world's devices as sections of records,
//! edited, and written back re-encoded by the engine's own
//! `CheckpointWriter`: every block checksum, the chain CRC and the commit
//! block's section table are valid again, so what recovery sees is a
//! well-formed checkpoint that says something else (`tests/delta_refusals.rs`).

use super::World;
use crate::sim::BS;
use zvcore::codec::Reader;
use zvcore::format::checkpoint::{section, CheckpointItem, CheckpointReader, CKPT_DATA_MAX};
use zvcore::format::layout::{checkpoint_block_addr, checkpoint_capacity};
use zvcore::format::sharing::decode_record;
use zvcore::format::{CheckpointHeader, CheckpointWriter, BLOCK_SIZE};
use zvcore::geom::PoolGeometry;
use zvcore::pool::VOL_RECORD_BYTES;

/// One section of a checkpoint: its kind and its records, each appended
/// with `append_record` when re-encoded (as read back, one record per
/// payload block: the block's whole payload, a sequence of whole records;
/// the writer may pack two partly filled ones into one block, which
/// readers take alike).
#[derive(Clone, Debug)]
pub struct CkptSection {
    pub kind: u32,
    pub recs: Vec<Vec<u8>>,
}

/// A checkpoint as read back: where it starts in its set, its header, its
/// sections in table order (empty ones included) and its block count.
#[derive(Clone, Debug)]
pub struct CkptImage {
    pub first: u32,
    pub header: CheckpointHeader,
    pub sections: Vec<CkptSection>,
    pub blocks: u32,
}

impl CkptImage {
    /// Position of the first section of `kind`.
    pub fn find(&self, kind: u32) -> Option<usize> {
        self.sections.iter().position(|s| s.kind == kind)
    }

    /// The section of `kind` (panics if there is none).
    pub fn section_mut(&mut self, kind: u32) -> &mut CkptSection {
        let i = self
            .find(kind)
            .unwrap_or_else(|| panic!("no section of kind {kind:#x}"));
        &mut self.sections[i]
    }

    /// The records of the first section of `kind`, split (see [`split_records`]).
    pub fn records(&self, kind: u32) -> Vec<Vec<u8>> {
        self.find(kind)
            .map(|i| {
                let s = &self.sections[i];
                s.recs.iter().flat_map(|b| split_records(kind, b)).collect()
            })
            .unwrap_or_default()
    }

    /// Replaces the records of the first section of `kind`.
    pub fn set_records(&mut self, kind: u32, recs: Vec<Vec<u8>>) {
        self.section_mut(kind).recs = recs;
    }
}

/// The records of one payload block of a section of `kind`: fixed-size
/// records for `COPIES`, `REDEFINED` and `VOLUMES`, `format::sharing`
/// records for `SHARING` and `CHANGES`, else the payload whole.
pub fn split_records(kind: u32, payload: &[u8]) -> Vec<Vec<u8>> {
    let fixed = match kind {
        section::COPIES => section::COPY_RECORD_BYTES,
        section::REDEFINED => section::REDEFINED_RECORD_BYTES,
        section::VOLUMES => VOL_RECORD_BYTES,
        section::SHARING | section::CHANGES => 0,
        zvcore::format::zone_history::ZONE_HISTORY => {
            zvcore::format::zone_history::ZONE_HISTORY_RECORD_BYTES
        }
        _ => return vec![payload.to_vec()],
    };
    if fixed > 0 {
        assert_eq!(payload.len() % fixed, 0, "records of kind {kind}");
        return payload.chunks(fixed).map(|c| c.to_vec()).collect();
    }
    let mut out = Vec::new();
    let mut r = Reader::new(payload);
    while r.remaining() > 0 {
        let at = r.pos();
        decode_record(&mut r).expect("sharing record");
        out.push(payload[at..r.pos()].to_vec());
    }
    out
}

/// Little-endian u32s, concatenated (a `COPIES` or `REDEFINED` record).
pub fn le_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The first little-endian u32 of `rec` (the volume id of a `VOLUMES`,
/// `REDEFINED` or `COPIES` record; of a sharing record at offset 4).
pub fn u32_at(rec: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(rec[off..off + 4].try_into().expect("4 bytes"))
}

impl World {
    fn ckpt_geom(&self) -> PoolGeometry<Vec<zvcore::geom::DeviceGeometry>> {
        PoolGeometry::new(self.geoms.clone()).expect("geometry")
    }

    /// Block `i` of checkpoint set `set`, as the media returns it.
    fn ckpt_block(&self, set: u8, i: u32) -> Option<Vec<u8>> {
        let a = checkpoint_block_addr(&self.ckpt_geom(), set, i)?;
        let (d, off) = self.loc(a);
        let mut b = vec![0u8; BS];
        self.devs[d].read(off, &mut b).ok()?;
        Some(b)
    }

    /// Reads the checkpoint whose header is block `first` of set `set`,
    /// whole (`None` if it does not read: no header, torn, bad chain).
    pub fn read_ckpt(&self, set: u8, first: u32) -> Option<CkptImage> {
        let hb = self.ckpt_block(set, first)?;
        let mut cr = CheckpointReader::new(&hb).ok()?;
        let header = *cr.header();
        let mut recs: Vec<Vec<Vec<u8>>> = Vec::new();
        loop {
            let b = self.ckpt_block(set, first + cr.next_index())?;
            match cr.feed(&b).ok()? {
                CheckpointItem::Data { section, data, .. } => {
                    let s = usize::from(section);
                    if recs.len() <= s {
                        recs.resize(s + 1, Vec::new());
                    }
                    recs[s].push(data.to_vec());
                }
                CheckpointItem::Commit => break,
            }
        }
        let c = cr.commit()?;
        let sections = c
            .sections()
            .iter()
            .enumerate()
            .map(|(i, s)| CkptSection {
                kind: s.kind,
                recs: recs.get(i).cloned().unwrap_or_default(),
            })
            .collect();
        Some(CkptImage {
            first,
            header,
            sections,
            blocks: c.nr_blocks,
        })
    }

    /// The newest checkpoint chain on the media: the full checkpoint of the
    /// highest generation at block 0 of a set, then each delta linked
    /// after it, as recovery walks them.
    pub fn ckpt_chain(&self) -> Vec<CkptImage> {
        let full = [0u8, 1]
            .iter()
            .filter_map(|&s| self.read_ckpt(s, 0))
            .filter(|c| c.header.delta.is_none())
            .max_by_key(|c| c.header.generation)
            .expect("a full checkpoint");
        let set = full.header.set();
        let mut chain = vec![full];
        loop {
            let last = chain.last().expect("chain");
            let next = last.first + last.blocks;
            let (base, prev) = (chain[0].header.generation, last.header.generation);
            match self.read_ckpt(set, next) {
                Some(c)
                    if c.header.delta.is_some_and(|l| {
                        l.base == base && l.prev == prev && l.first_block == next
                    }) =>
                {
                    chain.push(c)
                }
                _ => return chain,
            }
        }
    }

    /// Writes `img` back at block `img.first` of its set, re-encoded with
    /// the engine's checkpoint writer (valid checksums, chain and section
    /// table). Blocks below a zone's write pointer are overwritten in
    /// place, the others written at it. Returns the blocks written.
    pub fn write_ckpt(&mut self, img: &CkptImage) -> u32 {
        let set = img.header.set();
        let geo = self.ckpt_geom();
        let cap = checkpoint_capacity(&geo, set) - img.first;
        let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut sink = |i: u32, b: &[u8]| {
            out.push((i, b.to_vec()));
            Ok(())
        };
        let mut w = CheckpointWriter::new(vec![0u8; BLOCK_SIZE], img.header, cap).expect("writer");
        for s in &img.sections {
            w.begin_section(s.kind, &mut sink).expect("section");
            for r in &s.recs {
                assert!(r.len() <= CKPT_DATA_MAX);
                w.append_record(r, &mut sink).expect("record");
            }
        }
        w.finish(&mut sink).expect("finish");
        for (i, b) in &out {
            let a = checkpoint_block_addr(&geo, set, img.first + i).expect("address");
            let (d, off) = self.loc(a);
            let dev = &mut self.devs[d];
            let zone = dev.zone_of(off);
            if dev.is_conv(zone) || dev.report(zone).is_some_and(|(_, wp)| off < wp) {
                dev.poke(off, b);
            } else {
                dev.write(off, b)
                    .unwrap_or_else(|e| panic!("checkpoint block {i} at {off}: {e:?}"));
            }
        }
        out.len() as u32
    }
}
