// SPDX-License-Identifier: GPL-2.0
//! Declarations of the functions in `helpers.c` (linked into the same module).

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint, c_void};

/// The show callback of a disk's identity attributes (see
/// `zvpool_disk_priv_alloc`): `(ops, attribute index, page) -> length or -errno`.
pub(crate) type DiskShowFn = unsafe extern "C" fn(*const c_void, c_uint, *mut c_char) -> isize;

/// Mirror of `struct zvpool_io_limits` in `helpers.c`: the I/O-shape limits
/// of a block device's queue that a device stacked on it must not exceed.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct IoLimits {
    pub(crate) virt_boundary_mask: u64,
    pub(crate) seg_boundary_mask: u64,
    pub(crate) max_sectors: u32,
    pub(crate) max_zone_append_sectors: u32,
    pub(crate) max_segment_size: u32,
    pub(crate) dma_alignment: u32,
    pub(crate) max_segments: u16,
}

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

// `struct request`, `struct page` and `struct block_device` contain zero-sized C structs
// (`lock_class_key`, ...), which trip `improper_ctypes`; the kernel's own
// `bindings` crate allows this lint as well.
#[allow(improper_ctypes)]
unsafe extern "C" {
    /// Returns the running kernel's release string (`init_utsname()->release`).
    ///
    /// # Safety
    ///
    /// No preconditions; the returned pointer is a NUL-terminated string that
    /// lives as long as the kernel.
    pub(crate) fn zvpool_kernel_release() -> *const c_char;

    /// `totalram_pages() << PAGE_SHIFT`: the machine's memory in bytes.
    ///
    /// No preconditions.
    pub(crate) fn zvpool_totalram_bytes() -> u64;

    /// `req_op(rq)`.
    ///
    /// # Safety
    ///
    /// `rq` points to a valid request.
    pub(crate) fn zvpool_rq_op(rq: *mut bindings::request) -> c_uint;

    /// `blk_rq_pos(rq)`: the first sector (512 bytes) of the request.
    ///
    /// # Safety
    ///
    /// `rq` points to a valid request.
    pub(crate) fn zvpool_rq_pos(rq: *mut bindings::request) -> u64;

    /// `blk_rq_bytes(rq)`: bytes left in the request.
    ///
    /// # Safety
    ///
    /// `rq` points to a valid request.
    pub(crate) fn zvpool_rq_bytes(rq: *mut bindings::request) -> c_uint;

    /// `rq->cmd_flags & REQ_FUA`.
    ///
    /// # Safety
    ///
    /// `rq` points to a valid request.
    pub(crate) fn zvpool_rq_is_fua(rq: *mut bindings::request) -> bool;

    /// `rq->cmd_flags & REQ_PREFLUSH`.
    ///
    /// # Safety
    ///
    /// `rq` points to a valid request.
    pub(crate) fn zvpool_rq_is_preflush(rq: *mut bindings::request) -> bool;

    /// `rq_for_each_segment`: calls `f(ctx, page, offset, len)` for every
    /// single-page segment; returns the first non-zero value `f` returned.
    ///
    /// # Safety
    ///
    /// `rq` points to a started request with a data payload, owned by the
    /// caller; `f` may be called with `ctx` as its first argument.
    pub(crate) fn zvpool_rq_for_each_segment(
        rq: *mut bindings::request,
        f: unsafe extern "C" fn(*mut c_void, *mut bindings::page, c_uint, c_uint) -> c_int,
        ctx: *mut c_void,
    ) -> c_int;

    /// `memzero_page(page, off, len)`.
    ///
    /// # Safety
    ///
    /// `page` is a valid page, `off + len <= PAGE_SIZE`.
    pub(crate) fn zvpool_memzero_page(page: *mut bindings::page, off: usize, len: usize);

    /// `BLK_FEAT_WRITE_CACHE`.
    ///
    /// # Safety
    ///
    /// No preconditions.
    pub(crate) fn zvpool_blk_feat_write_cache() -> bindings::blk_features_t;

    /// `BLK_FEAT_FUA`.
    ///
    /// # Safety
    ///
    /// No preconditions.
    pub(crate) fn zvpool_blk_feat_fua() -> bindings::blk_features_t;

    /// `nr_cpu_ids`.
    ///
    /// # Safety
    ///
    /// No preconditions.
    pub(crate) fn zvpool_nr_cpu_ids() -> c_uint;

    /// The `block_device_operations` of every zvpool disk (owner
    /// `THIS_MODULE`; `open` fails once the disk is claimed).
    ///
    /// # Safety
    ///
    /// No preconditions; the table lives as long as the module.
    pub(crate) fn zvpool_bdev_fops() -> *const bindings::block_device_operations;

    /// Claims `disk` for removal: `-EBUSY` if it is open, else 0 and every
    /// later open fails with `-ENXIO`. Uses `disk->private_data`. Sleeps.
    ///
    /// # Safety
    ///
    /// `disk` points to a valid gendisk whose `fops` is `zvpool_bdev_fops()`.
    pub(crate) fn zvpool_disk_claim(disk: *mut bindings::gendisk) -> c_int;

    /// Allocates the private data of a zvpool disk (`struct
    /// zvpool_disk_priv`): `show(ops, i, buf)` serves its identity
    /// attributes. NULL without memory. Sleeps.
    ///
    /// # Safety
    ///
    /// `ops` must stay valid, and `show` callable with it, until the disk
    /// given this data with [`zvpool_disk_set_priv`] has been deleted.
    pub(crate) fn zvpool_disk_priv_alloc(ops: *const c_void, show: DiskShowFn) -> *mut c_void;

    /// Frees what [`zvpool_disk_priv_alloc`] returned.
    ///
    /// # Safety
    ///
    /// `p` came from `zvpool_disk_priv_alloc` and no disk uses it any more
    /// (deleted, or never added), and it is freed once.
    pub(crate) fn zvpool_disk_priv_free(p: *mut c_void);

    /// Sets `disk->private_data` to `p`.
    ///
    /// # Safety
    ///
    /// `disk` is a valid gendisk not yet added; `p` came from
    /// [`zvpool_disk_priv_alloc`] and outlives the disk.
    pub(crate) fn zvpool_disk_set_priv(disk: *mut bindings::gendisk, p: *mut c_void);

    /// The attribute groups of every zvpool disk (`zvpool/` with the
    /// identity attributes), for `device_add_disk`.
    ///
    /// # Safety
    ///
    /// No preconditions; the array lives as long as the module.
    pub(crate) fn zvpool_disk_attr_groups() -> *mut *const bindings::attribute_group;

    /// Sends the disk's `KOBJ_CHANGE` uevent with its identity variables
    /// (`ZVPOOL_POOL`, ...). Returns 0 or `-errno`. Sleeps.
    ///
    /// # Safety
    ///
    /// `disk` is a valid, added gendisk whose private data was set with
    /// [`zvpool_disk_set_priv`].
    pub(crate) fn zvpool_disk_announce(disk: *mut bindings::gendisk) -> c_int;

    /// Takes the current task's plug away and returns it (null if none).
    ///
    /// # Safety
    ///
    /// Must be paired with `zvpool_plug_attach` with the returned value in
    /// the same task before it returns to whoever started the plug.
    pub(crate) fn zvpool_plug_detach() -> *mut bindings::blk_plug;

    /// Gives the current task back the plug of `zvpool_plug_detach`.
    ///
    /// # Safety
    ///
    /// `plug` is the value of the matching `zvpool_plug_detach` in this
    /// task, and the task has no plug of its own now.
    pub(crate) fn zvpool_plug_attach(plug: *mut bindings::blk_plug);

    /// Sleeps until `*v` is zero (`wait_var_event`). Process context.
    ///
    /// # Safety
    ///
    /// `v` is a valid `atomic_t` for the whole call.
    pub(crate) fn zvpool_wait_var_zero(v: *mut bindings::atomic_t);

    /// Sleeps until `*v` differs from `old` or `ms` milliseconds passed
    /// (`wait_var_event_timeout`). Process context.
    ///
    /// # Safety
    ///
    /// `v` is a valid `atomic_t` for the whole call.
    pub(crate) fn zvpool_wait_var_change(v: *mut bindings::atomic_t, old: c_int, ms: c_uint);

    /// Wakes the waiters of `v` (`wake_up_var`). Any context.
    ///
    /// # Safety
    ///
    /// None beyond `v` being an address (it is only hashed).
    pub(crate) fn zvpool_wake_var(v: *mut bindings::atomic_t);

    /// `memalloc_noio_save()`: starts an implicit `GFP_NOIO` scope.
    ///
    /// # Safety
    ///
    /// Must be paired with `zvpool_memalloc_noio_restore` with the returned
    /// value, in the same task, in LIFO order.
    pub(crate) fn zvpool_memalloc_noio_save() -> c_uint;

    /// `memalloc_noio_restore(flags)`: ends the scope started by the
    /// matching `zvpool_memalloc_noio_save`.
    ///
    /// # Safety
    ///
    /// `flags` is the value of the matching `zvpool_memalloc_noio_save` in
    /// this task, and inner scopes are ended already.
    pub(crate) fn zvpool_memalloc_noio_restore(flags: c_uint);

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

    /// `alloc_workqueue("zvpool_io", WQ_UNBOUND | WQ_MEM_RECLAIM | WQ_HIGHPRI, 0)`; NULL
    /// on failure.
    ///
    /// # Safety
    ///
    /// Process context; the result is freed with `destroy_workqueue`.
    pub(crate) fn zvpool_alloc_io_workqueue() -> *mut bindings::workqueue_struct;

    /// `INIT_WORK(work, f)`.
    ///
    /// # Safety
    ///
    /// `work` is valid for writes and not queued.
    pub(crate) fn zvpool_init_work(
        work: *mut bindings::work_struct,
        f: unsafe extern "C" fn(*mut bindings::work_struct),
    );

    /// `queue_work(wq, work)`: false if it was already pending.
    ///
    /// # Safety
    ///
    /// `wq` is a live workqueue and `work` an initialised work item that
    /// stays valid until its function has run.
    pub(crate) fn zvpool_queue_work(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
    ) -> bool;

    /// Fills `l` with the I/O-shape limits of `bdev`'s queue.
    ///
    /// # Safety
    ///
    /// `bdev` must be an open block device and `l` valid for writes.
    pub(crate) fn zvpool_bdev_io_limits(bdev: *mut bindings::block_device, l: *mut IoLimits);

    /// Copies the stacked limits `l` into `lim` (zero fields keep the block
    /// layer's defaults).
    ///
    /// # Safety
    ///
    /// `lim` is valid for writes and `l` for reads.
    pub(crate) fn zvpool_apply_io_limits(lim: *mut bindings::queue_limits, l: *const IoLimits);

    /// Charges bio `dst` to the blkcg of `rq`'s first bio
    /// (`bio_clone_blkg_association`).
    ///
    /// # Safety
    ///
    /// `dst` is a bio being built (not submitted) and `rq` a started request,
    /// both valid for the call.
    pub(crate) fn zvpool_bio_charge_like(dst: *mut bindings::bio, rq: *mut bindings::request);

    /// `GFP_NOIO`.
    ///
    /// # Safety
    ///
    /// No preconditions.
    pub(crate) fn zvpool_gfp_noio() -> bindings::gfp_t;

    /// Adds `len` bytes of the directly mapped buffer `buf` to `bio`; returns
    /// the bytes added (fewer if the bio is full).
    ///
    /// # Safety
    ///
    /// `bio` is an unsubmitted bio owned by the caller; `buf` is a kmalloc'ed
    /// (directly mapped) buffer valid for `len` bytes for as long as the bio
    /// is in flight.
    pub(crate) fn zvpool_bio_add_kbuf(
        bio: *mut bindings::bio,
        buf: *mut c_void,
        len: c_uint,
    ) -> c_uint;

    /// `alloc_workqueue(name, WQ_UNBOUND | WQ_MEM_RECLAIM, 1)`; NULL on failure.
    ///
    /// # Safety
    ///
    /// `name` is NUL-terminated; process context; the result is freed with
    /// `destroy_workqueue`.
    pub(crate) fn zvpool_alloc_reclaim_workqueue(
        name: *const c_char,
    ) -> *mut bindings::workqueue_struct;
}
