// SPDX-License-Identifier: GPL-2.0
//! Read-only access to member devices for the offline checker: the device
//! geometry computed exactly as the kernel computes it (`probe_geometry` in
//! rust/pool.rs) from sysfs (`queue/zoned`, `chunk_sectors`, `nr_zones`,
//! `max_open_zones`, `max_active_zones`, `zone_append_max_bytes`,
//! `logical_block_size`) and the zone report of util-linux `blkzone report`,
//! and 4 KiB block reads with `O_DIRECT` (never stale page cache after the
//! kernel wrote with bios). Nothing here ever writes.
//!
//! A regular file is read as an image of a conventional (non-zoned) device.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zvcore::format::BLOCK_SIZE;
use zvcore::geom::DeviceGeometry;
use zvcore::probe::{self, ZoneScan};

/// `O_DIRECT` (x86_64, arm64 differ; see `open_block_device`).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const O_DIRECT: i32 = 0o40000;
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const O_DIRECT: i32 = 0o200000;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
const O_DIRECT: i32 = 0;

pub use zvcore::probe::CONV_ZONE_SECTORS;
/// Sectors per 4 KiB block.
const SPB: u64 = (BLOCK_SIZE / 512) as u64;

/// Zone condition codes (`enum blk_zone_cond`).
pub const ZC_FULL: u8 = 0xe;

/// One zone of a `blkzone report`, in 512-byte sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneRep {
    pub start: u64,
    pub len: u64,
    /// Capacity (`len` when the report has no `cap`, util-linux < 2.37).
    pub cap: u64,
    /// Write pointer relative to the zone start.
    pub wptr: u64,
    /// Condition code (`zcond`).
    pub cond: u8,
    /// Type 1 (CONVENTIONAL).
    pub conventional: bool,
}

impl ZoneRep {
    /// Blocks written from the zone start, as the kernel's assembly reads
    /// it: a full zone is written up to its capacity.
    pub fn written_blocks(&self) -> u64 {
        let s = if self.cond == ZC_FULL {
            self.cap
        } else {
            self.wptr
        };
        s / SPB
    }
}

fn hex(v: &str) -> Option<u64> {
    let v = v.trim().trim_end_matches(',');
    let h = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"))?;
    u64::from_str_radix(h, 16).ok()
}

/// The leading decimal number of `s` (after spaces).
fn lead_num(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Parses the output of `blkzone report DEV`: one line per zone,
/// `  start: 0x000000000, len 0x020000, cap 0x01f000, wptr 0x000000
/// reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]`
/// (`cap` is absent before util-linux 2.37). Other lines are ignored.
pub fn parse_blkzone(text: &str) -> Result<Vec<ZoneRep>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix("start:") else {
            continue;
        };
        let bad = || format!("unexpected blkzone report line {l:?}");
        let field = |key: &str| -> Option<u64> {
            let i = rest.find(key)?;
            let v = rest[i + key.len()..].split_whitespace().next()?;
            hex(v)
        };
        let start = hex(rest.split_whitespace().next().ok_or_else(bad)?).ok_or_else(bad)?;
        let len = field("len ").ok_or_else(bad)?;
        let cap = match rest.find("cap ") {
            Some(_) => field("cap ").ok_or_else(bad)?,
            None => len,
        };
        let wptr = field("wptr ").ok_or_else(bad)?;
        let cond = rest
            .find("zcond:")
            .and_then(|i| lead_num(&rest[i + 6..]))
            .and_then(|c| u8::try_from(c).ok())
            .ok_or_else(bad)?;
        let ztype = rest
            .find("type:")
            .and_then(|i| lead_num(&rest[i + 5..]))
            .ok_or_else(bad)?;
        out.push(ZoneRep {
            start,
            len,
            cap,
            wptr,
            cond,
            conventional: ztype == 1,
        });
    }
    Ok(out)
}

/// What the kernel reads from a block device's queue (sectors of 512
/// bytes): the core's probe input.
pub use zvcore::probe::DeviceReport as QueueInfo;

/// The device's geometry in the core's terms, computed as the kernel does
/// (both use `zvcore::probe`): a non-zoned device is cut into 256 MiB
/// conventional zones; a zoned one takes its leading conventional zones
/// (SMR), the capacity of its sequential zones (all equal) and its limits.
pub fn geometry(q: &QueueInfo, zones: &[ZoneRep]) -> Result<DeviceGeometry, String> {
    if let Some(g) = probe::start(q).map_err(|e| e.to_string())? {
        return Ok(g);
    }
    let mut scan = ZoneScan::default();
    for z in zones.iter().take(q.nr_zones as usize) {
        scan.zone(q.zone_sectors, z.conventional, z.len, z.cap);
    }
    probe::zoned(q, &scan).map_err(|e| e.to_string())
}

/// Devices opened for checking, in the order given.
pub trait DeviceSet {
    fn paths(&self) -> &[String];
    fn geoms(&self) -> &[DeviceGeometry];
    /// Reads 4 KiB block `block` (from the device start) of device `dev`.
    fn read_block(&mut self, dev: usize, block: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Blocks written in device-local zone `zone` (sequential zones).
    fn zone_wp(&mut self, dev: usize, zone: u32) -> io::Result<u64>;
}

/// Why a device could not be opened for checking.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenError {
    pub path: String,
    pub reason: String,
}

/// Real devices (block devices, or image files).
pub struct FileDevices {
    paths: Vec<String>,
    geoms: Vec<DeviceGeometry>,
    files: Vec<File>,
    zones: Vec<Vec<ZoneRep>>,
    /// `AHEAD_BLOCKS` + 1 blocks, read through the 4096-aligned part
    /// (`O_DIRECT`): blocks are read ahead within a zone, since the
    /// recovery scans log zones block by block (a conventional member's
    /// are 256 MiB each).
    buf: Vec<u8>,
    /// What the aligned part holds: device, first block, blocks.
    cached: Option<(usize, u64, u64)>,
}

/// Blocks read at once (1 MiB).
const AHEAD_BLOCKS: usize = 256;

fn sysfs_dir(rdev: u64) -> PathBuf {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    PathBuf::from(format!("/sys/dev/block/{major}:{minor}"))
}

fn read_num<T: std::str::FromStr>(dir: &Path, name: &str) -> Result<T, String> {
    let p = dir.join(name);
    let t = fs::read_to_string(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
    t.trim()
        .parse()
        .map_err(|_| format!("unexpected contents {:?} of {}", t.trim(), p.display()))
}

/// The queue attributes of the block device `rdev` from sysfs.
fn queue_info(rdev: u64) -> Result<QueueInfo, String> {
    let dir = sysfs_dir(rdev);
    let dir = fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A partition's queue is its disk's.
    let qdir = if dir.join("partition").exists() {
        dir.parent().unwrap_or(&dir).join("queue")
    } else {
        dir.join("queue")
    };
    let zoned = fs::read_to_string(qdir.join("zoned"))
        .map(|z| z.trim() != "none")
        .unwrap_or(false);
    let opt = |name: &str| read_num::<u64>(&qdir, name).unwrap_or(0);
    Ok(QueueInfo {
        nr_sectors: read_num(&dir, "size")?,
        zoned,
        zone_sectors: if zoned {
            read_num(&qdir, "chunk_sectors")?
        } else {
            0
        },
        nr_zones: if zoned {
            read_num(&qdir, "nr_zones")?
        } else {
            0
        },
        max_open_zones: opt("max_open_zones") as u32,
        max_active_zones: opt("max_active_zones") as u32,
        max_zone_append_sectors: if zoned {
            (opt("zone_append_max_bytes") / 512) as u32
        } else {
            0
        },
        logical_block_size: read_num(&qdir, "logical_block_size")?,
    })
}

/// `/dev/NAME` of the block device `rdev` (NAME from sysfs), if that node
/// is the same device: `blkzone` finds a device's zone size through its
/// name, and fails on a node made elsewhere (e.g. in a directory given to
/// `pool import -d`).
fn dev_node(rdev: u64) -> Option<String> {
    let dir = fs::canonicalize(sysfs_dir(rdev)).ok()?;
    let node = format!("/dev/{}", dir.file_name()?.to_str()?);
    let md = fs::metadata(&node).ok()?;
    (md.file_type().is_block_device() && md.rdev() == rdev).then_some(node)
}

/// `blkzone report DEV`, parsed.
fn report_zones(path: &str) -> Result<Vec<ZoneRep>, String> {
    let out = Command::new("blkzone")
        .args(["report", path])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run 'blkzone report' (util-linux): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "'blkzone report {path}' failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_blkzone(&String::from_utf8_lossy(&out.stdout))
}

impl FileDevices {
    /// Opens every path read-only and computes its geometry.
    pub fn open(paths: &[String]) -> Result<FileDevices, OpenError> {
        let mut d = FileDevices {
            paths: paths.to_vec(),
            geoms: Vec::new(),
            files: Vec::new(),
            zones: Vec::new(),
            buf: vec![0u8; (AHEAD_BLOCKS + 1) * BLOCK_SIZE],
            cached: None,
        };
        for p in paths {
            let fail = |reason: String| OpenError {
                path: p.clone(),
                reason,
            };
            let md = fs::metadata(p).map_err(|e| fail(crate::error::io_text(&e)))?;
            let (file, geom, zones) = if md.file_type().is_block_device() {
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(O_DIRECT)
                    .open(p)
                    .map_err(|e| fail(crate::error::io_text(&e)))?;
                let q = queue_info(md.rdev()).map_err(fail)?;
                let zones = if q.zoned {
                    report_zones(&dev_node(md.rdev()).unwrap_or_else(|| p.clone())).map_err(fail)?
                } else {
                    Vec::new()
                };
                let g = geometry(&q, &zones).map_err(fail)?;
                (f, g, zones)
            } else if md.is_file() {
                let f = File::open(p).map_err(|e| fail(crate::error::io_text(&e)))?;
                let q = QueueInfo {
                    nr_sectors: md.len() / 512,
                    logical_block_size: 512,
                    ..QueueInfo::default()
                };
                (f, geometry(&q, &[]).map_err(fail)?, Vec::new())
            } else {
                return Err(fail("not a block device or an image file".into()));
            };
            d.files.push(file);
            d.geoms.push(geom);
            d.zones.push(zones);
        }
        Ok(d)
    }
}

impl DeviceSet for FileDevices {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn geoms(&self) -> &[DeviceGeometry] {
        &self.geoms
    }

    fn read_block(&mut self, dev: usize, block: u64, buf: &mut [u8]) -> io::Result<()> {
        let f = self
            .files
            .get(dev)
            .ok_or_else(|| io::Error::other("no such device"))?;
        let dst = buf
            .get_mut(..BLOCK_SIZE)
            .ok_or_else(|| io::Error::other("short buffer"))?;
        let off = self.buf.as_ptr().align_offset(BLOCK_SIZE);
        let hit = |c: Option<(usize, u64, u64)>| match c {
            Some((d, first, n)) if d == dev && block >= first && block - first < n => {
                Some((block - first) as usize)
            }
            _ => None,
        };
        if hit(self.cached).is_none() {
            self.cached = None;
            // Up to the end of the block's zone and of the device: a ZNS
            // namespace may refuse reads across zones.
            let g = self.geoms.get(dev).copied();
            let zb = g.map_or(1, |g| g.zone_blocks.max(1));
            let dev_end = g.map_or(0, |g| u64::from(g.nr_zones).saturating_mul(g.zone_blocks));
            let end = (block / zb + 1)
                .saturating_mul(zb)
                .min(dev_end.max(block + 1));
            let n = (end - block).min(AHEAD_BLOCKS as u64);
            let pos = block
                .checked_mul(BLOCK_SIZE as u64)
                .ok_or_else(|| io::Error::other("block address"))?;
            let mut ok = false;
            if n > 1 {
                if let Some(b) = self.buf.get_mut(off..off + n as usize * BLOCK_SIZE) {
                    ok = f.read_exact_at(b, pos).is_ok();
                }
            }
            if !ok {
                // One block (the last of a zone, or a read ahead that failed).
                let b = self
                    .buf
                    .get_mut(off..off + BLOCK_SIZE)
                    .ok_or_else(|| io::Error::other("buffer alignment"))?;
                f.read_exact_at(b, pos)?;
            }
            self.cached = Some((dev, block, if ok { n } else { 1 }));
        }
        let i = hit(self.cached).ok_or_else(|| io::Error::other("read ahead"))?;
        let src = self
            .buf
            .get(off + i * BLOCK_SIZE..off + (i + 1) * BLOCK_SIZE)
            .ok_or_else(|| io::Error::other("buffer alignment"))?;
        dst.copy_from_slice(src);
        Ok(())
    }

    fn zone_wp(&mut self, dev: usize, zone: u32) -> io::Result<u64> {
        self.zones
            .get(dev)
            .and_then(|z| z.get(zone as usize))
            .map(ZoneRep::written_blocks)
            .ok_or_else(|| io::Error::other("zone not in the report"))
    }
}

/// Adapts a device set to the core's reader (device indexes as given).
pub struct Reader<'a>(pub &'a mut dyn DeviceSet);

impl zvcore::recovery::MetaReader for Reader<'_> {
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> zvcore::error::Result<()> {
        self.0
            .read_block(usize::from(dev), block, buf)
            .map_err(|_| zvcore::error::Error::Corrupt("metadata read failed"))
    }

    fn zone_wp(&mut self, dev: u16, zone: u32) -> zvcore::error::Result<u64> {
        self.0
            .zone_wp(usize::from(dev), zone)
            .map_err(|_| zvcore::error::Error::Corrupt("zone report failed"))
    }
}

/// A volume's or snapshot's block device (`/dev/zvpoolN`) for image
/// import and export and snapshot streams: byte-addressed reads and writes
/// (4 KiB aligned by the callers), ranges made to read zeros, a flush.
pub trait VolumeDev {
    /// The device's size in bytes.
    fn size(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes `len` bytes at `offset` read as zeros, freeing their space
    /// where the device can (discard / write zeroes with unmap).
    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Makes every write durable (a flush of the device).
    fn sync(&mut self) -> io::Result<()>;
}

/// A block device (or a file standing for one), opened without `O_DIRECT`
/// (the page cache of a block device is coherent with its own writes; the
/// writer flushes with `sync`).
pub struct BlockFile {
    f: File,
    size: u64,
}

impl BlockFile {
    pub fn open(path: &str, write: bool) -> io::Result<BlockFile> {
        use std::io::{Seek, SeekFrom};
        let mut f = OpenOptions::new().read(true).write(write).open(path)?;
        // A block device's size is where its end is.
        let size = f.seek(SeekFrom::End(0))?;
        Ok(BlockFile { f, size })
    }
}

impl VolumeDev for BlockFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.f.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.f.write_all_at(buf, offset)
    }

    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if crate::sys::punch_hole(&self.f, offset, len).is_ok() {
            return Ok(());
        }
        // No discard: write zeros.
        let zeros = vec![0u8; (len.min(1 << 20)) as usize];
        let mut o = offset;
        while o < offset + len {
            let n = (offset + len - o).min(zeros.len() as u64) as usize;
            self.f.write_all_at(&zeros[..n], o)?;
            o += n as u64;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvcore::geom::DevKind;

    const REPORT: &str = "  start: 0x000000000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 0(nw) [type: 1(CONVENTIONAL)]
  start: 0x000020000, len 0x020000, cap 0x01f000, wptr 0x000010 reset:0 non-seq:0, zcond: 2(oi) [type: 2(SEQ_WRITE_REQUIRED)]
  start: 0x000040000, len 0x020000, cap 0x01f000, wptr 0x020000 reset:0 non-seq:0, zcond:14(fu) [type: 2(SEQ_WRITE_REQUIRED)]
  start: 0x000060000, len 0x020000, cap 0x01f000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]
";

    #[test]
    fn blkzone_lines() {
        let z = parse_blkzone(REPORT).unwrap();
        assert_eq!(z.len(), 4);
        assert!(z[0].conventional);
        assert_eq!(
            z[1],
            ZoneRep {
                start: 0x20000,
                len: 0x20000,
                cap: 0x1f000,
                wptr: 0x10,
                cond: 2,
                conventional: false
            }
        );
        assert_eq!(z[1].written_blocks(), 2);
        // A full zone is written up to its capacity, whatever wptr says.
        assert_eq!(z[2].cond, ZC_FULL);
        assert_eq!(z[2].written_blocks(), 0x1f000 / 8);
        assert_eq!(z[3].written_blocks(), 0);
    }

    #[test]
    fn blkzone_old_format_and_errors() {
        // util-linux before 2.37: no cap (= len).
        let z = parse_blkzone(
            "  start: 0x000000000, len 0x080000, wptr 0x000008 reset:0 non-seq:0, zcond: 2(oi) [type: 2(SEQ_WRITE_REQUIRED)]\n\nnoise\n",
        )
        .unwrap();
        assert_eq!((z.len(), z[0].cap, z[0].wptr), (1, 0x80000, 8));
        assert!(parse_blkzone("  start: 0x0, len zz, wptr 0x0 zcond: 1(em) [type: 2(X)]").is_err());
        assert!(parse_blkzone("  start: 0x0, len 0x8, wptr 0x0 [type: 2(X)]").is_err());
        assert_eq!(parse_blkzone("").unwrap(), vec![]);
    }

    fn zns_queue(n: u32) -> QueueInfo {
        QueueInfo {
            nr_sectors: u64::from(n) * 0x20000,
            zoned: true,
            zone_sectors: 0x20000,
            nr_zones: n,
            max_open_zones: 14,
            max_active_zones: 14,
            max_zone_append_sectors: 1024,
            logical_block_size: 4096,
        }
    }

    fn seq_zones(n: u64, conv: u64, cap: u64) -> Vec<ZoneRep> {
        (0..n)
            .map(|i| ZoneRep {
                start: i * 0x20000,
                len: 0x20000,
                cap: if i < conv { 0x20000 } else { cap },
                wptr: 0,
                cond: if i < conv { 0 } else { 1 },
                conventional: i < conv,
            })
            .collect()
    }

    #[test]
    fn geometry_as_the_kernel() {
        let g = geometry(&zns_queue(8), &seq_zones(8, 0, 0x1f000)).unwrap();
        assert_eq!(g.kind, DevKind::Zns);
        assert_eq!(
            (g.nr_zones, g.zone_blocks, g.zone_cap_blocks),
            (8, 0x4000, 0x3e00)
        );
        assert_eq!((g.max_open, g.max_active, g.zone_append), (14, 14, true));
        let mut q = zns_queue(10);
        q.max_zone_append_sectors = 0;
        let g = geometry(&q, &seq_zones(10, 2, 0x20000)).unwrap();
        assert_eq!(
            (g.kind, g.nr_conv_zones, g.zone_append),
            (DevKind::Smr, 2, false)
        );
        // Mixed capacities, conventional zones after sequential ones.
        let mut z = seq_zones(8, 0, 0x1f000);
        z[5].cap = 0x1e000;
        assert!(geometry(&zns_queue(8), &z).is_err());
        let mut z = seq_zones(8, 0, 0x1f000);
        z[6].conventional = true;
        assert!(geometry(&zns_queue(8), &z).is_err());
        assert!(geometry(&zns_queue(8), &seq_zones(4, 0, 0x1f000)).is_err());
        // Non-zoned: 256 MiB conventional zones.
        let q = QueueInfo {
            nr_sectors: 5 * CONV_ZONE_SECTORS + 100,
            logical_block_size: 512,
            ..QueueInfo::default()
        };
        let g = geometry(&q, &[]).unwrap();
        assert_eq!(
            (g.kind, g.nr_zones, g.zone_blocks),
            (DevKind::Conventional, 5, 65536)
        );
        let q = QueueInfo {
            logical_block_size: 3000,
            ..q
        };
        assert!(geometry(&q, &[]).is_err());
    }

    /// A file standing for a volume device: writes, reads, and a range
    /// zeroed by punching a hole (the space is freed).
    #[test]
    fn block_file_zero_range_frees_space() {
        use std::os::unix::fs::MetadataExt;
        let dir = crate::testutil::TempDir::new("blockfile");
        let p = dir.path().join("dev");
        fs::write(&p, vec![0u8; 1 << 20]).unwrap();
        let ps = p.to_str().unwrap();
        let mut d = BlockFile::open(ps, true).unwrap();
        assert_eq!(d.size(), 1 << 20);
        d.write_at(65536, &[7u8; 65536]).unwrap();
        d.sync().unwrap();
        let before = fs::metadata(&p).unwrap().blocks();
        d.zero_range(65536, 65536).unwrap();
        let mut b = vec![1u8; 65536];
        d.read_at(65536, &mut b).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        assert!(
            fs::metadata(&p).unwrap().blocks() < before,
            "no space freed"
        );
        assert!(BlockFile::open(ps, false)
            .unwrap()
            .write_at(0, &[1])
            .is_err());
    }
}
