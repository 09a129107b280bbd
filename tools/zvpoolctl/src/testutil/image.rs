// SPDX-License-Identifier: GPL-2.0
//! Synthetic pools for the checker's tests: in-memory zoned devices on
//! which zvcore itself formats a pool and commits volume creations, then
//! tests damage metadata blocks.

use crate::check::{storage, Engine};
use crate::devio::DeviceSet;
use std::io;
use zvcore::format::journal::{VOL_FLAG_MIRRORED, VOL_FLAG_READONLY};
use zvcore::format::{decode_journal_block, BLOCK_SIZE};
use zvcore::geom::{DevKind, DeviceGeometry, META_ZONES_PER_DEV};
use zvcore::pool::{MetaOp, Pool, PoolConfig};

const BS: usize = BLOCK_SIZE;

/// One in-memory device.
#[derive(Clone)]
pub struct MemDev {
    pub geom: DeviceGeometry,
    pub data: Vec<u8>,
    /// Write pointer of each zone (blocks).
    pub wps: Vec<u64>,
}

impl MemDev {
    pub fn new(geom: DeviceGeometry) -> Self {
        MemDev {
            geom,
            data: vec![0; geom.nr_zones as usize * geom.zone_blocks as usize * BS],
            wps: vec![0; geom.nr_zones as usize],
        }
    }

    fn write(&mut self, block: u64, buf: &[u8]) {
        let o = block as usize * BS;
        self.data[o..o + BS].copy_from_slice(&buf[..BS]);
        let z = (block / self.geom.zone_blocks) as usize;
        let off = block % self.geom.zone_blocks;
        self.wps[z] = self.wps[z].max(off + 1);
    }

    /// Flips a byte of a block.
    pub fn flip(&mut self, block: u64, byte: usize) {
        self.data[block as usize * BS + byte] ^= 0x10;
    }
}

/// Devices in the order given to the checker.
pub struct MemDevices {
    pub paths: Vec<String>,
    pub geoms: Vec<DeviceGeometry>,
    pub devs: Vec<MemDev>,
}

impl MemDevices {
    pub fn new(paths: &[String], devs: Vec<MemDev>) -> Self {
        MemDevices {
            paths: paths.to_vec(),
            geoms: devs.iter().map(|d| d.geom).collect(),
            devs,
        }
    }
}

impl DeviceSet for MemDevices {
    fn paths(&self) -> &[String] {
        &self.paths
    }
    fn geoms(&self) -> &[DeviceGeometry] {
        &self.geoms
    }
    fn read_block(&mut self, dev: usize, block: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.devs.get(dev).ok_or_else(|| io::Error::other("dev"))?;
        let o = block as usize * BS;
        let src = d
            .data
            .get(o..o + BS)
            .ok_or_else(|| io::Error::other("beyond the end"))?;
        buf[..BS].copy_from_slice(src);
        Ok(())
    }
    fn zone_wp(&mut self, dev: usize, zone: u32) -> io::Result<u64> {
        self.devs
            .get(dev)
            .and_then(|d| d.wps.get(zone as usize))
            .copied()
            .ok_or_else(|| io::Error::other("zone"))
    }
}

pub fn zns_geom() -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones: 24,
        zone_blocks: 64,
        zone_cap_blocks: 48,
        nr_conv_zones: 0,
        max_open: 4,
        max_active: 6,
        zone_append: false,
        meta_zones: META_ZONES_PER_DEV,
    }
}

/// A cleanly stopped pool on `n` ZNS devices whose journal (after the
/// format's checkpoint) holds `nvols` commits, each creating a volume
/// `vmN` (and every third a snapshot `vmN@s`); then the closing block.
/// Returns the devices in member order.
pub struct Image {
    pub devs: Vec<MemDev>,
    pub checkpoint_seq: u64,
}

fn apply(devs: &mut [MemDev], op: MetaOp<'_>) {
    let locate_zone = |devs: &[MemDev], z: u32| {
        let mut z = z;
        for (i, d) in devs.iter().enumerate() {
            if z < d.geom.nr_zones {
                return (i, z);
            }
            z -= d.geom.nr_zones;
        }
        panic!("zone {z}");
    };
    match op {
        MetaOp::Flush => {}
        MetaOp::Reset(z) => {
            let (d, l) = locate_zone(devs, z);
            let zb = devs[d].geom.zone_blocks as usize;
            let o = l as usize * zb * BS;
            devs[d].data[o..o + zb * BS].fill(0);
            devs[d].wps[l as usize] = 0;
        }
        MetaOp::Finish(z) => {
            let (d, l) = locate_zone(devs, z);
            devs[d].wps[l as usize] = devs[d].geom.zone_cap_blocks;
        }
        MetaOp::Write(addr, buf) => {
            let mut a = addr;
            for d in devs.iter_mut() {
                let size = u64::from(d.geom.nr_zones) * d.geom.zone_blocks;
                if a < size {
                    d.write(a, buf);
                    return;
                }
                a -= size;
            }
            panic!("address {addr}");
        }
    }
}

pub fn make_image(n: usize, nvols: u32) -> Image {
    make_pool_image(n, nvols, [0xab; 16], 1)
}

/// `make_image` of the pool `pool_uuid` whose member `i` has the device
/// UUID of all bytes `first_dev + i` (another pool: other UUIDs).
pub fn make_pool_image(n: usize, nvols: u32, pool_uuid: [u8; 16], first_dev: u8) -> Image {
    build_image(n, nvols, pool_uuid, first_dev, 0)
}

/// `make_image` whose volumes are mirrored (`copies=2`; two members or
/// more).
pub fn make_mirrored_image(n: usize, nvols: u32) -> Image {
    build_image(n, nvols, [0xab; 16], 1, VOL_FLAG_MIRRORED)
}

/// The image of a pool of `n` members with `nvols` volumes of `flags`
/// (a snapshot of every third one), closed cleanly.
fn build_image(n: usize, nvols: u32, pool_uuid: [u8; 16], first_dev: u8, flags: u32) -> Image {
    let geoms: Vec<DeviceGeometry> = (0..n).map(|_| zns_geom()).collect();
    let mut devs: Vec<MemDev> = geoms.iter().map(|g| MemDev::new(*g)).collect();
    let uuids: Vec<[u8; 16]> = (0..n).map(|i| [i as u8 + first_dev; 16]).collect();
    let mut scratch = vec![0u8; 2 * BS];
    let mut ops: Vec<(u8, u32, u64, Vec<u8>)> = Vec::new();
    let mut sink = |op: MetaOp<'_>| {
        ops.push(match op {
            MetaOp::Flush => (0, 0, 0, Vec::new()),
            MetaOp::Reset(z) => (1, z, 0, Vec::new()),
            MetaOp::Finish(z) => (2, z, 0, Vec::new()),
            MetaOp::Write(a, b) => (3, 0, a, b.to_vec()),
        });
        Ok(())
    };
    let mut pool: Engine = Pool::format(
        geoms.clone(),
        pool_uuid,
        &uuids,
        PoolConfig {
            mirrored_volumes: flags & VOL_FLAG_MIRRORED != 0,
            ..PoolConfig::default_for(n as u16)
        },
        storage(&geoms),
        &mut scratch,
        &mut sink,
    )
    .expect("format");
    let checkpoint_seq = pool.checkpoint_journal_seq();
    let mut id = 1;
    for i in 1..=nvols {
        let name = format!("vm{i}");
        pool.vol_create(id, name.as_bytes(), 64, flags)
            .expect("vol_create");
        id += 1;
        if i % 3 == 0 {
            pool.snap_create(id - 1, id, format!("{name}@s").as_bytes())
                .expect("snap_create");
            id += 1;
        }
        pool.flush(&mut scratch, &mut sink).expect("flush");
        pool.flush_end(true).expect("flush_end");
    }
    assert!(pool.close(&mut scratch, &mut sink).expect("close"));
    for (k, z, a, b) in &ops {
        let op = match k {
            0 => MetaOp::Flush,
            1 => MetaOp::Reset(*z),
            2 => MetaOp::Finish(*z),
            _ => MetaOp::Write(*a, b),
        };
        apply(&mut devs, op);
    }
    let _ = VOL_FLAG_READONLY;
    Image {
        devs,
        checkpoint_seq,
    }
}

/// (device, block, seq) of every valid journal block, by sequence.
pub fn journal(devs: &[MemDev]) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    for (d, dev) in devs.iter().enumerate() {
        for z in 0..2u64 {
            for off in 1..dev.wps[z as usize] {
                let b = z * dev.geom.zone_blocks + off;
                let o = b as usize * BS;
                if let Ok((h, _)) = decode_journal_block(&dev.data[o..o + BS]) {
                    out.push((d, b, h.seq));
                }
            }
        }
    }
    out.sort_by_key(|j| j.2);
    out
}
