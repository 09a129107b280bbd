// SPDX-License-Identifier: GPL-2.0
//! Declarations of the functions in `helpers.c` (linked into the same module).

use kernel::{bindings, ffi::c_char};

/// Mirror of `struct zvpool_bdev_geom` in `helpers.c`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct BdevGeom {
    pub(crate) nr_sectors: u64,
    pub(crate) zone_sectors: u64,
    pub(crate) nr_zones: u32,
    pub(crate) max_open_zones: u32,
    pub(crate) max_active_zones: u32,
    pub(crate) max_zone_append_sectors: u32,
    pub(crate) logical_block_size: u32,
    pub(crate) physical_block_size: u32,
    pub(crate) max_discard_sectors: u32,
    pub(crate) zoned: u8,
    pub(crate) write_cache: u8,
    pub(crate) fua: u8,
    pub(crate) read_only: u8,
}

// `struct block_device` contains zero-sized C structs (lock_class_key, ...),
// which trip `improper_ctypes`; the kernel's own `bindings` crate allows it too.
#[allow(improper_ctypes)]
unsafe extern "C" {
    /// Returns the running kernel's release string (`init_utsname()->release`).
    ///
    /// # Safety
    ///
    /// No preconditions; the returned pointer is a NUL-terminated string that
    /// lives as long as the kernel.
    pub(crate) fn zvpool_kernel_release() -> *const c_char;

    /// `BLK_OPEN_READ | BLK_OPEN_WRITE | BLK_OPEN_EXCL`.
    ///
    /// # Safety
    ///
    /// No preconditions.
    pub(crate) fn zvpool_blk_open_mode_rw_excl() -> u32;

    /// Fills `g` with the geometry and capabilities of `bdev`.
    ///
    /// # Safety
    ///
    /// `bdev` must be an open block device and `g` valid for writes.
    pub(crate) fn zvpool_bdev_geometry(bdev: *mut bindings::block_device, g: *mut BdevGeom);

    /// `memalloc_noio_save()`: enters a no-I/O allocation scope.
    ///
    /// # Safety
    ///
    /// Must be paired with [`zvpool_memalloc_noio_restore`] on the same task,
    /// with the returned value, in LIFO order.
    pub(crate) fn zvpool_memalloc_noio_save() -> u32;

    /// `memalloc_noio_restore()`: leaves the scope entered by the matching save.
    ///
    /// # Safety
    ///
    /// `flags` must come from the matching [`zvpool_memalloc_noio_save`] on
    /// this task.
    pub(crate) fn zvpool_memalloc_noio_restore(flags: u32);
}
