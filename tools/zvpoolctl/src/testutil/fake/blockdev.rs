// SPDX-License-Identifier: GPL-2.0
//! The fake kernel's volume block devices: the data of every volume,
//! snapshot and clone of the metadata, as a sparse map of 4 KiB blocks,
//! reachable through the `/dev/zvpoolN` its `dev` names while enabled
//! (read-only for snapshots: EROFS). Snapshots, clones and rollbacks copy
//! the map, deletes drop it, shrinks cut it. Each volume's writes and
//! zeroed ranges are recorded for tests, and its `mapped_bytes` follows
//! the blocks written.

use super::{err, FakeKernel, State};
use crate::devio::VolumeDev;
use crate::error::{EINVAL, ENOENT, EROFS};
use std::collections::BTreeMap;
use std::io;

const BS: u64 = 4096;

/// The data of one volume.
#[derive(Clone, Default, Debug)]
pub struct VolData {
    pub blocks: BTreeMap<u64, Vec<u8>>,
    /// Writes through the device: (offset, length).
    pub writes: Vec<(u64, u64)>,
    /// Ranges made to read zeros (discard / write zeroes).
    pub zeroed: Vec<(u64, u64)>,
}

fn key(pool: &str, vol: &str) -> (String, String) {
    (pool.to_string(), vol.to_string())
}

/// Copies `from`'s data to `to` (snapshot, clone, rollback); the copy's
/// write log starts empty.
pub(super) fn copy_data(st: &mut State, pool: &str, from: &str, to: &str) {
    let blocks = st
        .vol_data
        .get(&key(pool, from))
        .map(|d| d.blocks.clone())
        .unwrap_or_default();
    st.vol_data.insert(
        key(pool, to),
        VolData {
            blocks,
            ..VolData::default()
        },
    );
}

pub(super) fn drop_data(st: &mut State, pool: &str, vol: &str) {
    st.vol_data.remove(&key(pool, vol));
}

/// The volume's size became `size`: blocks past it are gone.
pub(super) fn cut_data(st: &mut State, pool: &str, vol: &str, size: u64) {
    if let Some(d) = st.vol_data.get_mut(&key(pool, vol)) {
        d.blocks.retain(|b, _| b * BS < size);
    }
}

/// mapped_bytes of the metadata volume = blocks held.
fn update_mapped(st: &mut State, pool: &str, vol: &str) {
    let n = st
        .vol_data
        .get(&key(pool, vol))
        .map_or(0, |d| d.blocks.len() as u64);
    if let Some(m) = st
        .metas
        .get_mut(pool)
        .and_then(|m| m.volumes.iter_mut().find(|v| v.name == vol))
    {
        m.mapped = n * BS;
        m.shared = m.shared.min(m.mapped);
    }
}

struct FakeDev<'a> {
    fk: &'a FakeKernel,
    pool: String,
    vol: String,
    size: u64,
}

impl FakeDev<'_> {
    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        if !offset.is_multiple_of(BS) || !len.is_multiple_of(BS) || offset + len > self.size {
            return Err(err(EINVAL));
        }
        Ok(())
    }
}

impl VolumeDev for FakeDev<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset + buf.len() as u64 > self.size {
            return Err(err(EINVAL));
        }
        let st = self.fk.st.borrow();
        let d = st.vol_data.get(&key(&self.pool, &self.vol));
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = d
                .and_then(|d| d.blocks.get(&(at / BS)))
                .map_or(0, |blk| blk[(at % BS) as usize]);
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check(offset, buf.len() as u64)?;
        let st = &mut *self.fk.st.borrow_mut();
        if let Some(e) = st.dev_write_errno {
            return Err(err(e));
        }
        let d = st.vol_data.entry(key(&self.pool, &self.vol)).or_default();
        for (i, c) in buf.chunks(BS as usize).enumerate() {
            d.blocks.insert(offset / BS + i as u64, c.to_vec());
        }
        d.writes.push((offset, buf.len() as u64));
        update_mapped(st, &self.pool, &self.vol);
        self.fk.sync(st);
        Ok(())
    }

    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        let st = &mut *self.fk.st.borrow_mut();
        let d = st.vol_data.entry(key(&self.pool, &self.vol)).or_default();
        d.blocks
            .retain(|b, _| *b < offset / BS || *b >= (offset + len) / BS);
        d.zeroed.push((offset, len));
        update_mapped(st, &self.pool, &self.vol);
        self.fk.sync(st);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FakeKernel {
    /// The device `/dev/zvpoolN` of an enabled volume.
    pub(super) fn open_fake_volume(
        &self,
        node: &str,
        write: bool,
    ) -> io::Result<Box<dyn VolumeDev + '_>> {
        let minor: u32 = node
            .strip_prefix("/dev/zvpool")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| err(ENOENT))?;
        let st = self.st.borrow();
        let (pool, vol, size) = st
            .pools
            .iter()
            .flat_map(|(p, rt)| rt.vols.iter().map(move |(v, r)| (p, v, r)))
            .find(|(_, _, r)| r.enabled && r.minor == Some(minor))
            .map(|(p, v, r)| (p.clone(), v.clone(), r.size))
            .ok_or_else(|| err(ENOENT))?;
        let snapshot = st
            .metas
            .get(&pool)
            .and_then(|m| m.volumes.iter().find(|v| v.name == vol))
            .is_some_and(|m| m.kind == "snapshot");
        if write && snapshot {
            return Err(err(EROFS));
        }
        Ok(Box::new(FakeDev {
            fk: self,
            pool,
            vol,
            size,
        }))
    }

    /// Writes to volume devices fail with `errno` (None: they work).
    pub fn fail_device_writes(&self, errno: Option<i32>) {
        self.st.borrow_mut().dev_write_errno = errno;
    }

    /// The whole content of a volume (`size` bytes).
    pub fn volume_data(&self, pool: &str, vol: &str, size: u64) -> Vec<u8> {
        let st = self.st.borrow();
        let mut out = vec![0u8; size as usize];
        if let Some(d) = st.vol_data.get(&key(pool, vol)) {
            for (b, data) in &d.blocks {
                let o = (b * BS) as usize;
                if o < out.len() {
                    out[o..o + BS as usize].copy_from_slice(data);
                }
            }
        }
        out
    }

    /// The volume's data record (writes, zeroed ranges, blocks).
    pub fn vol_data(&self, pool: &str, vol: &str) -> VolData {
        self.st
            .borrow()
            .vol_data
            .get(&key(pool, vol))
            .cloned()
            .unwrap_or_default()
    }

    /// Writes blocks into a volume directly (as a VM would), not logged.
    pub fn put_data(&self, pool: &str, vol: &str, offset: u64, data: &[u8]) {
        assert!(offset.is_multiple_of(BS) && (data.len() as u64).is_multiple_of(BS));
        let st = &mut *self.st.borrow_mut();
        let d = st.vol_data.entry(key(pool, vol)).or_default();
        for (i, c) in data.chunks(BS as usize).enumerate() {
            d.blocks.insert(offset / BS + i as u64, c.to_vec());
        }
        update_mapped(st, pool, vol);
        self.sync(st);
    }
}

impl FakeKernel {
    /// The control device's `diff POOL SNAP [BASE]`: the blocks of snapshot
    /// SNAP that BASE (or nothing) does not hold with the same contents
    /// (`map`), and those BASE holds and SNAP does not (`unmap`), in runs,
    /// after a `size` line: what the kernel lists, from the fake's data.
    pub(super) fn control_diff(&self, args: &[&str]) -> io::Result<String> {
        let st = &mut *self.st.borrow_mut();
        if st.no_diff {
            return Err(err(EINVAL));
        }
        let (pool, snap, base) = match args {
            [p, s] => (*p, *s, None),
            [p, s, b] => (*p, *s, Some(*b)),
            _ => return Err(err(EINVAL)),
        };
        if !st.pools.get(pool).is_some_and(|p| p.active) {
            return Err(err(ENOENT));
        }
        let meta = st.metas.get(pool).ok_or_else(|| err(ENOENT))?;
        let find = |n: &str| meta.volumes.iter().find(|v| v.name == n);
        let s = find(snap).ok_or_else(|| err(ENOENT))?;
        if s.kind != "snapshot"
            || base.is_some_and(|b| find(b).is_none_or(|v| v.kind != "snapshot"))
        {
            return Err(err(EINVAL));
        }
        let size = s.size;
        let empty = BTreeMap::new();
        let blocks = |n: &str| st.vol_data.get(&key(pool, n)).map_or(&empty, |d| &d.blocks);
        let sb = blocks(snap);
        let bb = base.map_or(&empty, blocks);
        let mut kinds: BTreeMap<u64, bool> = BTreeMap::new();
        for (b, data) in sb {
            if bb.get(b) != Some(data) {
                kinds.insert(*b, true);
            }
        }
        for b in bb.keys() {
            if !sb.contains_key(b) && b * BS < size {
                kinds.insert(*b, false);
            }
        }
        let mut out = format!("size {size}\n");
        let mut run: Option<(bool, u64, u64)> = None;
        for (b, map) in kinds {
            run = match run {
                Some((m, first, n)) if m == map && first + n == b => Some((m, first, n + 1)),
                other => {
                    if let Some((m, first, n)) = other {
                        out += &format!(
                            "{} {} {}\n",
                            if m { "map" } else { "unmap" },
                            first * BS,
                            n * BS
                        );
                    }
                    Some((map, b, 1))
                }
            };
        }
        if let Some((m, first, n)) = run {
            out += &format!(
                "{} {} {}\n",
                if m { "map" } else { "unmap" },
                first * BS,
                n * BS
            );
        }
        st.diffs += 1;
        Ok(out)
    }
}
