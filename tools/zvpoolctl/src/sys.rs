// SPDX-License-Identifier: GPL-2.0
//! The two system calls std does not offer: `lseek` with `SEEK_DATA` /
//! `SEEK_HOLE` (the data of sparse image files) and `fallocate` with
//! `FALLOC_FL_PUNCH_HOLE` (discard a range of a volume, so that an
//! incremental stream's holes free space instead of writing zeros). They
//! are the only `unsafe` code of zvpoolctl: plain calls into the C library
//! std links anyway, on a file descriptor the caller owns.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;
const FALLOC_FL_KEEP_SIZE: i32 = 1;
const FALLOC_FL_PUNCH_HOLE: i32 = 2;
const ENXIO: i32 = 6;

extern "C" {
    fn lseek(fd: i32, offset: i64, whence: i32) -> i64;
    fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) -> i32;
}

fn off(v: u64) -> io::Result<i64> {
    i64::try_from(v).map_err(|_| io::Error::other("offset out of range"))
}

fn seek(f: &File, pos: u64, whence: i32) -> io::Result<Option<u64>> {
    let pos = off(pos)?;
    // SAFETY: lseek only reads its integer arguments; the descriptor is
    // open for the lifetime of `f`.
    let r = unsafe { lseek(f.as_raw_fd(), pos, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// The first byte of data at or after `pos`; `None` if only a hole
/// follows (ENXIO). Errors (EINVAL: the filesystem cannot tell) let the
/// caller treat everything as data.
pub fn seek_data(f: &File, pos: u64) -> io::Result<Option<u64>> {
    seek(f, pos, SEEK_DATA)
}

/// The first hole at or after `pos` (the end of the file is one).
pub fn seek_hole(f: &File, pos: u64) -> io::Result<Option<u64>> {
    seek(f, pos, SEEK_HOLE)
}

/// Deallocates `len` bytes at `offset` (they read as zeros afterwards);
/// on a block device the kernel turns it into write-zeroes with unmap.
pub fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    let (o, l) = (off(offset)?, off(len)?);
    // SAFETY: fallocate only reads its integer arguments; the descriptor
    // is open for the lifetime of `f`.
    let r = unsafe {
        fallocate(
            f.as_raw_fd(),
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            o,
            l,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
