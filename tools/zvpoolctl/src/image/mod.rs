// SPDX-License-Identifier: GPL-2.0
//! Disk image files for `volume import` / `volume export-image`: readers
//! that yield the image's allocated data as extents in ascending guest
//! order, whatever the format (`raw`: the file's data regions, found with
//! SEEK_DATA/SEEK_HOLE; `qcow2`: the allocated clusters of versions 2 and
//! 3), and the writer of sparse raw files.
//!
//! Image files are untrusted: every field is checked, every allocation is
//! bounded by the file's size and fixed limits, and a malformed file is an
//! error, never a panic.

pub mod export;
pub mod import;
pub mod qcow2;
pub mod qcow2_export;
#[cfg(test)]
pub mod qcow2_writer;
pub mod raw;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;

/// Guest bytes `data.len()` at `offset` (the rest of the image reads as
/// zeros). Extents come in ascending order and do not overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// An image being read.
pub trait ImageReader {
    /// The guest's size in bytes.
    fn virtual_size(&self) -> u64;
    /// Bytes of allocated data the image holds (what `next_extent` will
    /// return at most; for progress).
    fn allocated(&self) -> u64;
    /// The next extent of allocated data; `None` at the end.
    fn next_extent(&mut self) -> Result<Option<Extent>, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// The format by the file's magic: qcow2 (`QFI\xfb`), else raw.
pub fn detect(f: &mut File) -> std::io::Result<Format> {
    let mut m = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match f.read(&mut m[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(if n == 4 && &m == qcow2::MAGIC {
        Format::Qcow2
    } else {
        Format::Raw
    })
}

/// Opens an image file as `format`, or as its magic says.
pub fn open(
    path: &str,
    format: Option<Format>,
    follow_backing: bool,
) -> Result<(Format, Box<dyn ImageReader>), String> {
    let mut f = File::open(path).map_err(|e| crate::error::io_text(&e))?;
    let md = f.metadata().map_err(|e| crate::error::io_text(&e))?;
    if !md.is_file() {
        return Err("not a regular file".into());
    }
    let fmt = match format {
        Some(f) => f,
        None => detect(&mut f).map_err(|e| crate::error::io_text(&e))?,
    };
    let r: Box<dyn ImageReader> = match fmt {
        Format::Raw => Box::new(raw::RawReader::new(f)?),
        Format::Qcow2 => Box::new(qcow2::Qcow2Reader::new(f, follow_backing)?),
    };
    Ok((fmt, r))
}
