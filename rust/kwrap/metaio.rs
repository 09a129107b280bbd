// SPDX-License-Identifier: GPL-2.0
//! Synchronous 4 KiB block I/O for metadata (superblocks, journal,
//! checkpoints): simple, and only used outside the data path.

use super::bdev::LowerDev;
use kernel::{bindings, error::to_result, prelude::*};

/// Size of a metadata block.
pub(crate) const META_BLOCK: usize = 4096;

/// A kmalloc'ed 4 KiB buffer, suitable for `bdev_rw_virt` (which needs a
/// directly mapped kernel address, not the stack or vmalloc).
pub(crate) struct MetaBuf(KBox<[u8; META_BLOCK]>);

impl MetaBuf {
    /// A zeroed buffer.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(KBox::new([0u8; META_BLOCK], GFP_KERNEL)?))
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8; META_BLOCK] {
        &self.0
    }

    /// The bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; META_BLOCK] {
        &mut self.0
    }
}

fn rw(dev: &LowerDev, sector: u64, buf: &mut MetaBuf, op: bindings::req_op) -> Result {
    let data = buf.0.as_mut_ptr();
    // SAFETY: `dev.bdev()` is open; `data` is a kmalloc'ed buffer of
    // META_BLOCK bytes, exclusively borrowed for the synchronous call.
    to_result(unsafe { bindings::bdev_rw_virt(dev.bdev(), sector, data.cast(), META_BLOCK, op) })
}

/// Reads the 4 KiB block at `sector` into `buf`. Process context.
pub(crate) fn read_block(dev: &LowerDev, sector: u64, buf: &mut MetaBuf) -> Result {
    rw(dev, sector, buf, bindings::req_op_REQ_OP_READ)
}

/// Writes `buf` to the 4 KiB block at `sector` (at the write pointer, for a
/// sequential zone). Not durable until [`super::zone::flush`]. Process context.
pub(crate) fn write_block(dev: &LowerDev, sector: u64, buf: &mut MetaBuf) -> Result {
    rw(dev, sector, buf, bindings::req_op_REQ_OP_WRITE)
}

/// A kmalloc'ed bounce buffer for synchronous data I/O on a lower device.
#[allow(dead_code, reason = "GC relocation copies through it")]
pub(crate) struct Bounce(KVec<u8>);

#[allow(dead_code, reason = "GC relocation copies through it")]
impl Bounce {
    /// A zeroed buffer of `len` bytes (a multiple of 4096).
    pub(crate) fn new(len: usize) -> Result<Self> {
        Ok(Self(KVec::from_elem(0u8, len, GFP_KERNEL)?))
    }

    /// Capacity in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The first `n` bytes.
    pub(crate) fn get(&self, n: usize) -> Result<&[u8]> {
        self.0.get(..n).ok_or(EINVAL)
    }

    /// The first `n` bytes, writable.
    pub(crate) fn get_mut(&mut self, n: usize) -> Result<&mut [u8]> {
        self.0.get_mut(..n).ok_or(EINVAL)
    }

    fn rw(&mut self, dev: &LowerDev, sector: u64, n: usize, op: bindings::req_op) -> Result {
        if n == 0 || n > self.0.len() || n % META_BLOCK != 0 {
            return Err(EINVAL);
        }
        let data = self.0.as_mut_ptr();
        // SAFETY: `dev.bdev()` is open; `data` is a kmalloc'ed buffer of at
        // least `n` bytes, exclusively borrowed for the synchronous call.
        to_result(unsafe { bindings::bdev_rw_virt(dev.bdev(), sector, data.cast(), n, op) })
    }

    /// Reads `n` bytes at `sector` into the start of the buffer. Process context.
    pub(crate) fn read(&mut self, dev: &LowerDev, sector: u64, n: usize) -> Result {
        self.rw(dev, sector, n, bindings::req_op_REQ_OP_READ)
    }

    /// Writes the first `n` bytes at `sector`. Process context.
    pub(crate) fn write(&mut self, dev: &LowerDev, sector: u64, n: usize) -> Result {
        self.rw(dev, sector, n, bindings::req_op_REQ_OP_WRITE)
    }
}
