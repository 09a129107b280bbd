// SPDX-License-Identifier: GPL-2.0
//! Synchronous 4 KiB block I/O for metadata (superblocks, journal,
//! checkpoints): simple, and only used outside the data path.

use super::bdev::LowerDev;
use core::marker::PhantomData;
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

/// A kmalloc'ed (physically contiguous) buffer of several metadata blocks,
/// for reading metadata ahead in one I/O (assembly scans log zones).
///
/// # Invariants
///
/// The vector's storage is kmalloc'ed and never reallocated after `new`.
pub(crate) struct MetaRun(KVec<u8>);

impl MetaRun {
    /// A zeroed buffer of `blocks` metadata blocks (kmalloc: keep it small,
    /// e.g. 128 KiB).
    pub(crate) fn new(blocks: usize) -> Result<Self> {
        let len = blocks.checked_mul(META_BLOCK).ok_or(EINVAL)?;
        Ok(Self(KVec::from_elem(0u8, len, GFP_KERNEL)?))
    }

    /// Blocks the buffer holds.
    pub(crate) fn capacity(&self) -> usize {
        self.0.len() / META_BLOCK
    }

    /// Reads `blocks` (at most [`Self::capacity`]) consecutive blocks from
    /// `sector` in one synchronous I/O. Process context.
    pub(crate) fn read(&mut self, dev: &LowerDev, sector: u64, blocks: usize) -> Result {
        self.rw(dev, sector, 0, blocks, bindings::req_op_REQ_OP_READ)
    }

    /// Writes blocks `first..first + blocks` of the buffer to `blocks`
    /// consecutive blocks from `sector` in one synchronous I/O (at the write
    /// pointer, for a sequential zone). Not durable until flushed. Process
    /// context.
    pub(crate) fn write(
        &mut self,
        dev: &LowerDev,
        sector: u64,
        first: usize,
        blocks: usize,
    ) -> Result {
        self.rw(dev, sector, first, blocks, bindings::req_op_REQ_OP_WRITE)
    }

    /// `op` on blocks `first..first + blocks` of the buffer, from `sector`.
    fn rw(
        &mut self,
        dev: &LowerDev,
        sector: u64,
        first: usize,
        blocks: usize,
        op: bindings::req_op,
    ) -> Result {
        let end = first.checked_add(blocks).ok_or(EINVAL)?;
        if blocks == 0 || end > self.capacity() {
            return Err(EINVAL);
        }
        // `first` blocks into a kmalloc'ed buffer (type invariant) that holds
        // `first + blocks` blocks (checked above).
        let data = self.0.as_mut_ptr().wrapping_add(first * META_BLOCK);
        // SAFETY: `dev.bdev()` is open; `data` (above) is exclusively
        // borrowed for the synchronous call.
        to_result(unsafe {
            bindings::bdev_rw_virt(dev.bdev(), sector, data.cast(), blocks * META_BLOCK, op)
        })
    }

    /// Block `i` of the buffer, writable.
    pub(crate) fn block_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.0
            .get_mut(i.checked_mul(META_BLOCK)?..i.checked_add(1)?.checked_mul(META_BLOCK)?)
    }

    /// Block `i` of the buffer.
    pub(crate) fn block(&self, i: usize) -> Option<&[u8]> {
        self.0
            .get(i.checked_mul(META_BLOCK)?..i.checked_add(1)?.checked_mul(META_BLOCK)?)
    }
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

/// A [`Bounce`] buffer lent to lower bios for `'a` (exclusively borrowed).
///
/// # Invariants
///
/// `ptr` is the start of a kmalloc'ed (directly mapped) buffer of `len`
/// bytes, exclusively borrowed for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct Lent<'a> {
    ptr: *mut u8,
    len: usize,
    _p: PhantomData<&'a mut [u8]>,
}

impl Lent<'_> {
    /// Pointer to `n` bytes at `at` of the buffer.
    pub(super) fn region(&self, at: usize, n: usize) -> Result<*mut u8> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(self.ptr.wrapping_add(at)),
            _ => Err(EINVAL),
        }
    }
}

/// A kmalloc'ed bounce buffer for data I/O on a lower device (GC copies).
pub(crate) struct Bounce(KVec<u8>);

impl Bounce {
    /// A zeroed buffer of `len` bytes (a multiple of 4096).
    pub(crate) fn new(len: usize) -> Result<Self> {
        Ok(Self(KVec::from_elem(0u8, len, GFP_KERNEL)?))
    }

    /// Block `i` (4 KiB) of the buffer, once no bio has it.
    pub(crate) fn block(&self, i: usize) -> Option<&[u8]> {
        self.0
            .get(i.checked_mul(META_BLOCK)?..i.checked_add(1)?.checked_mul(META_BLOCK)?)
    }

    /// Lends the whole buffer to lower bios (`bio.rs`) for `'a`: nothing
    /// else touches it meanwhile.
    pub(crate) fn lend(&mut self) -> Lent<'_> {
        Lent {
            ptr: self.0.as_mut_ptr(),
            len: self.0.len(),
            _p: PhantomData,
        }
    }
}
