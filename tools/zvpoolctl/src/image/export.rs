// SPDX-License-Identifier: GPL-2.0
//! `export_raw`: a volume device into a sparse raw file, seeking over zero
//! blocks.

use super::import::{is_zero, BLOCK, RUN};
use crate::devio::VolumeDev;
use crate::progress::Progress;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Writes `dev` into the raw file `out` (empty, opened for writing): the
/// blocks that are not all zeros, then the file's length, so that zero
/// blocks are holes. Returns the data bytes written.
pub fn export_raw(
    dev: &mut dyn VolumeDev,
    out: &File,
    progress: &mut Progress,
) -> Result<u64, String> {
    let size = dev.size();
    let mut buf = vec![0u8; RUN];
    let mut written = 0u64;
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(RUN as u64) as usize;
        let chunk = &mut buf[..n];
        dev.read_at(pos, chunk)
            .map_err(|e| format!("read the volume at {pos}: {}", crate::error::io_text(&e)))?;
        let mut i = 0;
        while i < n {
            // A run of non-zero blocks.
            let bl = |i: usize| &chunk[i..(i + BLOCK).min(n)];
            if is_zero(bl(i)) {
                i += BLOCK;
                continue;
            }
            let s = i;
            while i < n && !is_zero(bl(i)) {
                i += BLOCK;
            }
            let e = i.min(n);
            out.write_all_at(&chunk[s..e], pos + s as u64)
                .map_err(|e| {
                    format!(
                        "write the image at {}: {}",
                        pos + s as u64,
                        crate::error::io_text(&e)
                    )
                })?;
            written += (e - s) as u64;
        }
        pos += n as u64;
        progress.add(n as u64);
    }
    out.set_len(size)
        .map_err(|e| format!("set the image's size: {}", crate::error::io_text(&e)))?;
    out.sync_all()
        .map_err(|e| format!("flush the image: {}", crate::error::io_text(&e)))?;
    Ok(written)
}
