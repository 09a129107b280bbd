// SPDX-License-Identifier: GPL-2.0
//! A lower block device, opened exclusively by path (like dm and md members).

pub(crate) use super::ffi::IoLimits;
use super::ffi::{self, BdevGeom};
use super::holder::{DeadHook, DeadWatch, HolderRef};
use core::ptr::NonNull;
use kernel::{bindings, error::from_err_ptr, prelude::*, str::CStr, sync::Arc};

/// An exclusively opened block device.
///
/// # Invariants
///
/// `file` is a block-device file returned by `bdev_file_open_by_path` with
/// `BLK_OPEN_EXCL` for the holder `holder` refers to; it is released (with
/// `bdev_fput`) only in `Drop`, so the `block_device` behind it stays valid
/// and claimed while `self` lives, and `_holder` is released after it.
pub(crate) struct LowerDev {
    file: NonNull<bindings::file>,
    /// Dropped after `Drop::drop` released the claim.
    _holder: HolderRef,
}

// SAFETY: a bdev file may be used and released from any thread; `LowerDev` has
// no thread-affine state.
unsafe impl Send for LowerDev {}
// SAFETY: all methods taking `&self` only read immutable state or call block
// layer functions that do their own locking.
unsafe impl Sync for LowerDev {}

impl LowerDev {
    /// Opens `path` for reading and writing, exclusively for `watch`.
    ///
    /// `watch` identifies the owner to the block layer (a second exclusive
    /// open with another holder fails with `EBUSY`) and is told when the
    /// device dies ([`DeadHook`]).
    pub(crate) fn open<T: DeadHook>(path: &CStr, watch: &Arc<DeadWatch<T>>) -> Result<Self> {
        let holder = HolderRef::new(watch);
        // SAFETY: no preconditions.
        let mode = unsafe { ffi::zvpool_blk_open_mode_rw_excl() };
        // The holder is a `DeadWatch<T>` kept alive by `holder` until after
        // the claim is released (`Drop`); its operations are that type's.
        // SAFETY: `path` is NUL-terminated and outlives the call; see above.
        let file = from_err_ptr(unsafe {
            bindings::bdev_file_open_by_path(
                path.as_char_ptr(),
                mode,
                holder.holder(),
                DeadWatch::<T>::ops(),
            )
        })?;
        let file = NonNull::new(file).ok_or(ENODEV)?;
        // INVARIANT: `file` was just opened exclusively for `holder`'s watch
        // and is owned by us.
        Ok(Self {
            file,
            _holder: holder,
        })
    }

    /// The `block_device` of this file.
    pub(crate) fn bdev(&self) -> *mut bindings::block_device {
        // SAFETY: by the type invariant `file` is an open bdev file.
        unsafe { bindings::file_bdev(self.file.as_ptr()) }
    }

    /// Geometry and capabilities, as the block layer reports them now.
    pub(crate) fn geometry(&self) -> BdevGeom {
        let mut g = BdevGeom::default();
        // SAFETY: `bdev()` is open (type invariant); `g` is a valid
        // `struct zvpool_bdev_geom` mirror on our stack.
        unsafe { ffi::zvpool_bdev_geometry(self.bdev(), &mut g) };
        g
    }

    /// Whether the device is still there: `false` once its disk was
    /// deleted (removed, surprise or not).
    pub(crate) fn is_live(&self) -> bool {
        // SAFETY: `bdev()` is open (type invariant), so its disk is valid.
        unsafe { bindings::disk_live((*self.bdev()).bd_disk) }
    }

    /// The device's `dev_t` (as [`DeadHook::device_dead`] names it).
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: `bdev()` is open (type invariant).
        unsafe { (*self.bdev()).bd_dev }
    }
}

impl LowerDev {
    /// The I/O-shape limits of the device's queue (what a bio sent to it
    /// must respect without being split, e.g. a zone append).
    pub(crate) fn io_limits(&self) -> IoLimits {
        let mut l = IoLimits::default();
        // SAFETY: `bdev()` is open (type invariant); `l` is a valid
        // `struct zvpool_io_limits` mirror on our stack.
        unsafe { ffi::zvpool_bdev_io_limits(self.bdev(), &mut l) };
        l
    }
}

/// The smaller of two limits where 0 means "no limit".
fn min_not_zero<T: Ord + Default + Copy>(a: T, b: T) -> T {
    let zero = T::default();
    match (a == zero, b == zero) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
}

impl IoLimits {
    /// Combines `self` with the limits of one more lower device so that a
    /// bio respecting the result respects both: sizes and counts take the
    /// smaller non-zero value, alignment masks the larger one.
    pub(crate) fn stack(&mut self, b: &IoLimits) {
        *self = self.stacked(b);
    }

    /// Whether a device of limits `b` stacks under these without
    /// narrowing them (a member added online: the volumes' queue limits
    /// are already set).
    pub(crate) fn admits(&self, b: &IoLimits) -> bool {
        self.stacked(b) == *self
    }

    /// [`Self::stack`], as a new value.
    fn stacked(mut self, b: &IoLimits) -> IoLimits {
        self.virt_boundary_mask = self.virt_boundary_mask.max(b.virt_boundary_mask);
        self.seg_boundary_mask = min_not_zero(self.seg_boundary_mask, b.seg_boundary_mask);
        self.max_sectors = min_not_zero(self.max_sectors, b.max_sectors);
        self.max_zone_append_sectors =
            min_not_zero(self.max_zone_append_sectors, b.max_zone_append_sectors);
        self.max_segment_size = min_not_zero(self.max_segment_size, b.max_segment_size);
        self.dma_alignment = self.dma_alignment.max(b.dma_alignment);
        self.max_segments = min_not_zero(self.max_segments, b.max_segments);
        self
    }
}

impl Drop for LowerDev {
    fn drop(&mut self) {
        // The claim is released before `bdev_fput` returns; `_holder` is
        // dropped after this.
        // SAFETY: `file` is exclusively ours (type invariant), not used again.
        unsafe { bindings::bdev_fput(self.file.as_ptr()) };
    }
}

/// Checks that `path` names a block device; returns its `(major, minor)`.
pub(crate) fn lookup(path: &CStr) -> Result<(u32, u32)> {
    let mut dev: bindings::dev_t = 0;
    // SAFETY: `path` is NUL-terminated; `dev` is valid for writes.
    kernel::error::to_result(unsafe { bindings::lookup_bdev(path.as_char_ptr(), &mut dev) })?;
    Ok((dev >> 20, dev & ((1 << 20) - 1)))
}
