// SPDX-License-Identifier: GPL-2.0
//! `import`: an image's extents into a volume device, only the 4 KiB blocks
//! that are not all zeros (a thin volume reads zeros where nothing was
//! written).

use super::ImageReader;
use crate::devio::VolumeDev;
use crate::progress::Progress;

pub const BLOCK: usize = 4096;
/// Bytes moved per device I/O.
pub const RUN: usize = 1 << 20;

/// What an import wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of data written to the device.
    pub written: u64,
    /// Bytes of all-zero blocks skipped within the image's data.
    pub zero_skipped: u64,
}

pub fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Collects consecutive non-zero blocks into one write of up to 1 MiB.
struct Runs<'d> {
    dev: &'d mut dyn VolumeDev,
    start: u64,
    buf: Vec<u8>,
    stats: Stats,
}

impl Runs<'_> {
    fn block(&mut self, offset: u64, b: &[u8]) -> Result<(), String> {
        if is_zero(b) {
            self.stats.zero_skipped += b.len() as u64;
            return self.flush();
        }
        if !self.buf.is_empty() && self.start + self.buf.len() as u64 != offset {
            self.flush()?;
        }
        if self.buf.is_empty() {
            self.start = offset;
        }
        self.buf.extend_from_slice(b);
        if self.buf.len() >= RUN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.dev.write_at(self.start, &self.buf).map_err(|e| {
            format!(
                "write {} bytes at volume offset {}: {}",
                self.buf.len(),
                self.start,
                crate::error::io_text(&e)
            )
        })?;
        self.stats.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Writes the image's data into `dev` (block-aligned, zero blocks left
/// out; extents need not be aligned: a block is written once all of its
/// bytes are known). Nothing beyond `dev.size()` is written.
pub fn import(
    img: &mut dyn ImageReader,
    dev: &mut dyn VolumeDev,
    progress: &mut Progress,
) -> Result<Stats, String> {
    let size = dev.size();
    let mut runs = Runs {
        dev,
        start: 0,
        buf: Vec::with_capacity(RUN),
        stats: Stats::default(),
    };
    // The block being assembled: (block number, bytes).
    let mut cur: Option<(u64, Vec<u8>)> = None;
    let mut last_end = 0u64;
    while let Some(ext) = img.next_extent()? {
        let end = ext
            .offset
            .checked_add(ext.data.len() as u64)
            .filter(|&e| e <= size && ext.offset >= last_end)
            .ok_or_else(|| {
                format!(
                    "image extent at {} of {} bytes is out of order or beyond the volume",
                    ext.offset,
                    ext.data.len()
                )
            })?;
        last_end = end;
        let mut pos = ext.offset;
        while pos < end {
            let bno = pos / BLOCK as u64;
            let in_block = (pos % BLOCK as u64) as usize;
            let n = (BLOCK - in_block).min((end - pos) as usize);
            let src = &ext.data[(pos - ext.offset) as usize..][..n];
            if in_block == 0 && n == BLOCK && cur.is_none() {
                runs.block(pos, src)?;
            } else {
                if cur.as_ref().is_some_and(|(b, _)| *b != bno) {
                    let (b, data) = cur.take().unwrap_or_default();
                    runs.block(b * BLOCK as u64, &data)?;
                }
                let (_, data) = cur.get_or_insert_with(|| (bno, vec![0u8; BLOCK]));
                data[in_block..in_block + n].copy_from_slice(src);
                if in_block + n == BLOCK {
                    let (b, data) = cur.take().unwrap_or_default();
                    runs.block(b * BLOCK as u64, &data)?;
                }
            }
            pos += n as u64;
        }
        progress.add(ext.data.len() as u64);
    }
    if let Some((b, data)) = cur.take() {
        // The image's last, partial block (the volume is rounded up).
        let o = b * BLOCK as u64;
        let n = (size - o).min(BLOCK as u64) as usize;
        runs.block(o, &data[..n])?;
    }
    runs.flush()?;
    Ok(runs.stats)
}
