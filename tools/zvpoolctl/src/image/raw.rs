// SPDX-License-Identifier: GPL-2.0
//! Raw images: the file is the disk. Only its data regions are read
//! (SEEK_DATA/SEEK_HOLE; a filesystem that cannot tell makes the whole
//! file data), in chunks of at most 1 MiB aligned to 4 KiB.

use super::{Extent, ImageReader};
use crate::sys;
use std::fs::File;
use std::os::unix::fs::FileExt;

const CHUNK: u64 = 1 << 20;
const ALIGN: u64 = 4096;

pub struct RawReader {
    f: File,
    size: u64,
    pos: u64,
    /// The end of the current data region.
    region_end: u64,
    allocated: u64,
}

impl RawReader {
    pub fn new(f: File) -> Result<Self, String> {
        let md = f.metadata().map_err(|e| crate::error::io_text(&e))?;
        let size = md.len();
        // st_blocks counts allocated 512-byte sectors.
        use std::os::unix::fs::MetadataExt;
        let allocated = md.blocks().saturating_mul(512).min(size);
        Ok(RawReader {
            f,
            size,
            pos: 0,
            region_end: 0,
            allocated,
        })
    }
}

impl ImageReader for RawReader {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn allocated(&self) -> u64 {
        self.allocated
    }

    fn next_extent(&mut self) -> Result<Option<Extent>, String> {
        if self.pos >= self.size {
            return Ok(None);
        }
        if self.pos >= self.region_end {
            let start = match sys::seek_data(&self.f, self.pos) {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(_) => self.pos,
            };
            let end = match sys::seek_hole(&self.f, start) {
                Ok(Some(e)) => e,
                _ => self.size,
            };
            if start >= self.size {
                return Ok(None);
            }
            // pos is 4 KiB aligned: rounding down never goes back before it.
            self.pos = (start / ALIGN * ALIGN).max(self.pos);
            self.region_end = end.div_ceil(ALIGN).saturating_mul(ALIGN).min(self.size);
            if self.region_end <= self.pos {
                self.region_end = (self.pos + ALIGN).min(self.size);
            }
        }
        let len = (self.region_end - self.pos).min(CHUNK);
        let mut data = vec![0u8; len as usize];
        self.f
            .read_exact_at(&mut data, self.pos)
            .map_err(|e| format!("read at {}: {}", self.pos, crate::error::io_text(&e)))?;
        let e = Extent {
            offset: self.pos,
            data,
        };
        self.pos += len;
        Ok(Some(e))
    }
}
