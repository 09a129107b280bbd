// SPDX-License-Identifier: GPL-2.0
//! A zvpool block device: a blk-mq tag set plus a gendisk whose requests are
//! served by a [`VolumeOps`] implementation.
//!
//! # Why not `kernel::block::mq`
//!
//! Linux 7.3's `kernel::block::mq` cannot express what a disk a filesystem
//! relies on needs: `GenDiskBuilder` sets no write cache, FUA, discard or
//! write-zeroes limits (so the block layer silently drops every flush and
//! rejects discard), `Request` has no sector/op accessors and can only be
//! ended with success, and the per-request PDU is its own refcount, leaving
//! no room for driver state. Ending its `ARef<Request>` through a raw
//! `blk_mq_end_request` would bypass that refcount. So this layer is an
//! independent minimal tag set + gendisk wrapper over raw `kernel::bindings`
//! (`tagset.rs`, `request.rs`, `segment.rs`, this file), with its own
//! ownership model (one owned [`Request`] per started request, ended exactly
//! once) and its own PDU. Its API is shaped like the in-flight upstream
//! work (`Request::sector()`, ending with a status, gendisk with write cache,
//! FUA, discard and write zeroes) so it can be swapped for upstream later.
//!
//! Every disk carries identity attributes in sysfs (`/sys/block/<disk>/zvpool/`,
//! [`DiskAttr`], served by [`VolumeOps::show_attr`]) and announces them in a
//! change uevent when added.
//!
//! Contexts: [`Disk::new`], [`Disk::claim`], [`Disk::set_capacity`],
//! [`Disk::freeze`] and dropping a `Disk` sleep (process context only). `VolumeOps::queue_rq`
//! runs in process context and may sleep; requests may be ended from any
//! context (see `request.rs`).

use super::{bdev::IoLimits, ffi, noio::NoIo, request::Request, request::Status, tagset::TagSet};
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::{c_char, c_uint, c_void},
    fmt,
    page::PAGE_SIZE,
    prelude::*,
    str::{CStr, CStrExt, CString, Formatter},
    sync::Arc,
};

/// The driver side of a disk: serves its requests.
pub(crate) trait VolumeOps: Send + Sync + Sized + 'static {
    /// Per-request driver state, kept in the request's PDU (initialised
    /// once per tag, reused across requests).
    type RequestData: Default + Send + Sync;

    /// Serves a started request. Runs on the disk's workqueue (`tagset.rs`):
    /// process context, may sleep and may submit and wait for lower I/O, in
    /// a `GFP_NOIO` scope (`kwrap/noio.rs`). Either keep `rq` and end it later (from any context, see [`Request::end`] and
    /// [`Request::complete`]), or hand it back with a status in
    /// [`Rejected`]: [`Status::Resource`] requeues it, any other status ends
    /// it with that error.
    fn queue_rq(
        &self,
        rq: Request<Self::RequestData>,
        is_last: bool,
    ) -> Result<(), Rejected<Self::RequestData>>;

    /// Offered every request first, in the block layer's dispatch context
    /// (`tagset.rs`): may sleep briefly (locks, `GFP_NOIO` allocations) but
    /// must never wait for lower I/O — it may run inside a task's
    /// `submit_bio`, where lower bios only go out after it returns. Either
    /// take the request (return `None`: typically
    /// [`Request::into_async`], submit, and end it in [`Self::io_done`]),
    /// or hand it back for [`Self::queue_rq`] on the workqueue.
    fn queue_rq_fast(&self, rq: Request<Self::RequestData>) -> Option<Request<Self::RequestData>> {
        Some(rq)
    }

    /// Every lower bio of a request's asynchronous I/O completed (see
    /// [`Request::slot_result`]): end the request or pass it on. Any
    /// context (often hard IRQ): must not sleep.
    fn io_done(&self, rq: Request<Self::RequestData>) {
        rq.end(Status::IoErr);
    }

    /// Writes the value of the disk's identity attribute `attr`
    /// (`/sys/block/<disk>/zvpool/<attr>`, one line; nothing for no
    /// value). Also gives the variables of the uevent sent when the disk is
    /// added. Process context (a sysfs read): may take a lock briefly, must
    /// not wait for I/O.
    fn show_attr(&self, _attr: DiskAttr, _w: &mut Formatter<'_>) -> Result {
        Ok(())
    }
}

/// The identity attributes of a disk, in the order of the
/// `ZVPOOL_IDENT_ATTR` indices in `helpers.c` (sysfs name; uevent
/// variable). The last two are not in the uevent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DiskAttr {
    /// `pool`; `ZVPOOL_POOL`.
    Pool,
    /// `volume`; `ZVPOOL_VOLUME`.
    Volume,
    /// `uuid`; `ZVPOOL_UUID`.
    Uuid,
    /// `kind`; `ZVPOOL_KIND`.
    Kind,
    /// `origin`; `ZVPOOL_ORIGIN`.
    Origin,
    /// `pool_uuid`; `ZVPOOL_POOL_UUID`.
    PoolUuid,
    /// `id`; `ZVPOOL_VOLUME_ID`.
    Id,
    /// `/sys/block/zvpoolN/serial` (outside the `zvpool` directory).
    Serial,
    /// `/sys/block/zvpoolN/wwid` (outside the `zvpool` directory).
    Wwid,
}

impl DiskAttr {
    fn from_index(i: c_uint) -> Option<Self> {
        Some(match i {
            0 => Self::Pool,
            1 => Self::Volume,
            2 => Self::Uuid,
            3 => Self::Kind,
            4 => Self::Origin,
            5 => Self::PoolUuid,
            6 => Self::Id,
            7 => Self::Serial,
            8 => Self::Wwid,
            _ => return None,
        })
    }
}

/// Serves the identity attributes of a `Disk<T>` (`ffi::DiskShowFn`).
///
/// # Safety
///
/// `ops` is the `T` of a `Disk<T>` not yet dropped; `buf` points to a
/// writable buffer of `PAGE_SIZE` bytes (sysfs' page) used by nobody else
/// during the call.
unsafe extern "C" fn show_attr<T: VolumeOps>(
    ops: *const c_void,
    attr: c_uint,
    buf: *mut c_char,
) -> isize {
    // SAFETY: by the function's safety requirements `ops` is a live `T`
    // (the `Disk` keeps its `Arc` until the gendisk is deleted).
    let ops = unsafe { &*ops.cast::<T>() };
    // SAFETY: by the function's safety requirements `buf` is a page we may
    // write, not aliased during the call.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    let Some(attr) = DiskAttr::from_index(attr) else {
        return EINVAL.to_errno() as isize;
    };
    let mut w = Formatter::new(page);
    match ops.show_attr(attr, &mut w) {
        Ok(()) => w.bytes_written() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A request `queue_rq` hands back to the block layer.
pub(crate) struct Rejected<D> {
    /// The request.
    pub(crate) rq: Request<D>,
    /// Why (`BLK_STS_*` returned from `queue_rq`).
    pub(crate) status: Status,
}

/// Queue limits and tag-set shape of a disk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DiskParams {
    /// Capacity in 512-byte sectors.
    pub(crate) capacity_sectors: u64,
    /// Logical (addressable) block size in bytes.
    pub(crate) logical_block_size: u32,
    /// Physical (atomic write) block size in bytes.
    pub(crate) physical_block_size: u32,
    /// Largest read/write request, in sectors.
    pub(crate) max_hw_sectors: u32,
    /// Largest discard, in sectors; 0: no discard.
    pub(crate) max_hw_discard_sectors: u32,
    /// Largest write zeroes, in sectors; 0: no write zeroes.
    pub(crate) max_write_zeroes_sectors: u32,
    /// Volatile write cache: flushes are sent to the driver.
    pub(crate) write_cache: bool,
    /// FUA writes are sent to the driver (needs `write_cache`).
    pub(crate) fua: bool,
    /// The disk is read-only (`set_disk_ro`): the block layer refuses writes.
    pub(crate) read_only: bool,
    /// Hardware queues; 0: one per possible CPU (`nr_cpu_ids`).
    pub(crate) nr_hw_queues: u32,
    /// Tags per hardware queue.
    pub(crate) queue_depth: u32,
    /// Segment limits inherited from the lower devices (zero fields: the
    /// block layer's defaults), so that any block-aligned part of a request
    /// can be sent to a lower device as one bio without splitting.
    pub(crate) io_limits: IoLimits,
}

impl DiskParams {
    /// A 4 KiB-block disk with write cache, FUA, discard and write zeroes,
    /// one hardware queue per CPU and 128 tags each.
    pub(crate) fn new(capacity_sectors: u64) -> Self {
        Self {
            capacity_sectors,
            logical_block_size: 4096,
            physical_block_size: 4096,
            max_hw_sectors: 2048,
            max_hw_discard_sectors: 1 << 23,
            max_write_zeroes_sectors: 1 << 23,
            write_cache: true,
            fua: true,
            read_only: false,
            nr_hw_queues: 0,
            queue_depth: 128,
            io_limits: IoLimits::default(),
        }
    }
}

/// A block device added to the system (`/dev/<name>`).
///
/// # Invariants
///
/// `gendisk` was returned by `blk_mq_alloc_disk` on `tagset`'s tag set with
/// `queuedata` `Arc::as_ptr(&ops)`, `fops` `zvpool_bdev_fops()` and
/// `private_data` `priv_data` (from `zvpool_disk_priv_alloc` with
/// `Arc::as_ptr(&ops)` and `show_attr::<T>`), was added with
/// `device_add_disk` and the groups of `zvpool_disk_attr_groups()`, and is
/// deleted and put only by `Drop`, which then frees `priv_data`.
pub(crate) struct Disk<T: VolumeOps> {
    gendisk: NonNull<bindings::gendisk>,
    priv_data: NonNull<c_void>,
    // Dropped after `Drop::drop` released the gendisk: the tag set first,
    // then the `T` that `queue_rq` used.
    _tagset: TagSet<T>,
    ops: Arc<T>,
}

// SAFETY: the gendisk is only used through the block layer's own locking
// (`set_capacity_and_notify`, `del_gendisk`); `T` is `Send + Sync`.
unsafe impl<T: VolumeOps> Send for Disk<T> {}
// SAFETY: as above; `&Disk` methods are safe to call concurrently.
unsafe impl<T: VolumeOps> Sync for Disk<T> {}

impl<T: VolumeOps> Disk<T> {
    /// Creates the disk `name` (at most 31 bytes) served by `ops` and adds it
    /// to the system with its identity attributes
    /// ([`VolumeOps::show_attr`]): `/dev/<name>` exists when this returns,
    /// and a change uevent carrying the identity was sent. Sleeps.
    pub(crate) fn new(name: fmt::Arguments<'_>, p: &DiskParams, ops: Arc<T>) -> Result<Self> {
        let name = CString::try_from_fmt(name)?;
        let nr_hw_queues = match p.nr_hw_queues {
            // SAFETY: no preconditions.
            0 => unsafe { ffi::zvpool_nr_cpu_ids() },
            n => n,
        };
        let tagset = TagSet::<T>::new(nr_hw_queues, p.queue_depth)?;

        let mut lim: bindings::queue_limits = pin_init::zeroed();
        // SAFETY: both point to valid values for the call.
        unsafe { ffi::zvpool_apply_io_limits(&mut lim, &p.io_limits) };
        lim.logical_block_size = p.logical_block_size;
        lim.physical_block_size = p.physical_block_size;
        lim.max_hw_sectors = p.max_hw_sectors;
        lim.max_hw_discard_sectors = p.max_hw_discard_sectors;
        if p.max_hw_discard_sectors != 0 {
            lim.discard_granularity = p.logical_block_size;
        }
        lim.max_write_zeroes_sectors = p.max_write_zeroes_sectors;
        if p.write_cache {
            // SAFETY: no preconditions.
            lim.features |= unsafe { ffi::zvpool_blk_feat_write_cache() };
            if p.fua {
                // SAFETY: no preconditions.
                lim.features |= unsafe { ffi::zvpool_blk_feat_fua() };
            }
        }

        // SAFETY: the tag set is allocated (type invariant of `TagSet`) and
        // outlives the disk (field order, `Drop`); `lim` is valid for the
        // call; `queuedata` is the `T` kept alive by `ops` in the result.
        let gendisk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                tagset.as_ptr(),
                &mut lim,
                Arc::as_ptr(&ops).cast_mut().cast::<c_void>(),
                kernel::static_lock_class!().as_ptr(),
            )
        })
        .inspect_err(|e| {
            pr_err!(
                "{}: cannot allocate the disk ({:?})\n",
                name.to_str().unwrap_or("?"),
                e
            )
        })?;
        let Some(gendisk) = NonNull::new(gendisk) else {
            return Err(ENOMEM);
        };
        let g = gendisk.as_ptr();

        // SAFETY: `show_attr::<T>` may be called with the `T` of `ops` for as
        // long as the disk exists: `ops` is kept in the result, whose `Drop`
        // frees this after deleting the disk.
        let priv_data = unsafe {
            ffi::zvpool_disk_priv_alloc(Arc::as_ptr(&ops).cast::<c_void>(), show_attr::<T>)
        };
        let Some(priv_data) = NonNull::new(priv_data) else {
            pr_err!("{}: no memory for the disk\n", name.to_str().unwrap_or("?"));
            // SAFETY: allocated above, never added.
            unsafe { bindings::put_disk(g) };
            return Err(ENOMEM);
        };
        // Undoes the allocations when the disk could not be added.
        let undo = |g: *mut bindings::gendisk| {
            // SAFETY: allocated above, never added.
            unsafe { bindings::put_disk(g) };
            // SAFETY: allocated above; the disk that used it is gone.
            unsafe { ffi::zvpool_disk_priv_free(priv_data.as_ptr()) };
        };
        // SAFETY: `g` is a new gendisk not yet added; `priv_data` outlives
        // it (freed after the disk's last put, or by `undo`).
        unsafe { ffi::zvpool_disk_set_priv(g, priv_data.as_ptr()) };

        // SAFETY: `g` is a new gendisk nobody else uses until `device_add_disk`.
        let dst = unsafe { &mut (*g).disk_name };
        let bytes = name.to_bytes_with_nul();
        if bytes.len() > dst.len() {
            pr_err!("disk name too long\n");
            undo(g);
            return Err(EINVAL);
        }
        for (d, s) in dst.iter_mut().zip(bytes) {
            *d = c_char::from_ne_bytes([*s]);
        }
        // SAFETY: as above; the fops table lives as long as the module, and
        // the disk cannot outlive the module (`fops.owner`, configfs).
        unsafe {
            (*g).fops = ffi::zvpool_bdev_fops();
            bindings::set_capacity(g, p.capacity_sectors);
            bindings::set_disk_ro(g, p.read_only);
        }
        // SAFETY: `g` is a fully set up gendisk not yet added; the groups
        // live as long as the module, which the disk cannot outlive.
        let ret = to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), g, ffi::zvpool_disk_attr_groups())
        });
        if let Err(e) = ret {
            pr_err!(
                "{}: cannot add the disk ({:?})\n",
                name.to_str().unwrap_or("?"),
                e
            );
            undo(g);
            return Err(e);
        }
        // INVARIANT: allocated on `tagset` with `queuedata` from `ops`, fops
        // and private data set, added above with the groups.
        let disk = Self {
            gendisk,
            priv_data,
            _tagset: tagset,
            ops,
        };
        // SAFETY: `g` was added above with its private data set.
        if let Err(e) = to_result(unsafe { ffi::zvpool_disk_announce(g) }) {
            // The disk works; udev can still ask `zvpoolctl volume ident`.
            pr_err!(
                "{}: cannot send the identity uevent ({:?})\n",
                name.to_str().unwrap_or("?"),
                e
            );
        }
        Ok(disk)
    }

    fn raw(&self) -> *mut bindings::gendisk {
        self.gendisk.as_ptr()
    }

    /// The driver side serving this disk.
    pub(crate) fn ops(&self) -> &Arc<T> {
        &self.ops
    }

    /// The disk's name (`zvpool0`).
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: by the type invariant the gendisk is valid; `disk_name` is
        // NUL-terminated (written by `new`) and not changed afterwards.
        unsafe { CStr::from_char_ptr((*self.raw()).disk_name.as_ptr()) }
    }

    /// Major and minor number of the whole-disk device.
    pub(crate) fn devt(&self) -> (u32, u32) {
        // SAFETY: by the type invariant the gendisk is valid and added;
        // `major` and `first_minor` are set by `device_add_disk` and then
        // constant.
        unsafe { ((*self.raw()).major as u32, (*self.raw()).first_minor as u32) }
    }

    /// Changes the capacity (in sectors) and notifies user space (a
    /// `RESIZE=1` uevent). Sleeps.
    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: by the type invariant the gendisk is valid and added.
        unsafe { bindings::set_capacity_and_notify(self.raw(), sectors) };
    }

    /// Freezes the disk's queue: waits until every request in flight has
    /// completed (so the driver must be able to complete them meanwhile:
    /// call without locks that `queue_rq` or completions take); new requests
    /// wait until the returned guard is dropped. Enters a `GFP_NOIO` scope
    /// for the guard's lifetime (reclaim must not write to the frozen disk).
    /// Sleeps.
    pub(crate) fn freeze(&self) -> Frozen<'_, T> {
        let noio = NoIo::enter();
        // SAFETY: by the type invariant the gendisk is valid and added, so
        // its queue is; paired with the unfreeze in `Frozen::drop`.
        unsafe { bindings::blk_mq_freeze_queue_nomemsave((*self.raw()).queue) };
        // INVARIANT: frozen just above.
        Frozen {
            disk: self,
            _noio: noio,
        }
    }

    /// Reserves the disk for removal: `EBUSY` if it is open; once it
    /// succeeded every open fails with `ENXIO`, and the caller should drop
    /// the disk. Sleeps.
    pub(crate) fn claim(&self) -> Result {
        // SAFETY: by the type invariant the gendisk is valid and its fops are
        // `zvpool_bdev_fops()`.
        to_result(unsafe { ffi::zvpool_disk_claim(self.raw()) })
    }
}

/// A frozen disk queue (see [`Disk::freeze`]), unfrozen on drop.
///
/// # Invariants
///
/// `disk`'s queue was frozen once by `Disk::freeze` for this guard.
pub(crate) struct Frozen<'a, T: VolumeOps> {
    disk: &'a Disk<T>,
    // Dropped after `Drop::drop` unfroze the queue.
    _noio: NoIo,
}

impl<T: VolumeOps> Drop for Frozen<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the queue was frozen by this guard (type invariant) and
        // the disk outlives the guard (lifetime).
        unsafe { bindings::blk_mq_unfreeze_queue_nomemrestore((*self.disk.raw()).queue) };
    }
}

impl<T: VolumeOps> Drop for Disk<T> {
    /// Removes the disk: `del_gendisk` stops new I/O and waits for every
    /// `queue_rq` and in-flight request (so requests a backend still holds
    /// must complete for this to return), then the last reference is put;
    /// only afterwards the tag set and `T` are freed (field drop order).
    /// Sleeps. If the disk is still open, removal works too (later I/O
    /// fails), but callers should [`Disk::claim`] first.
    fn drop(&mut self) {
        // SAFETY: by the type invariant the gendisk was added and not yet
        // deleted.
        unsafe { bindings::del_gendisk(self.raw()) };
        // SAFETY: the reference from `blk_mq_alloc_disk`, put once here.
        unsafe { bindings::put_disk(self.raw()) };
        // SAFETY: from `zvpool_disk_priv_alloc` (type invariant); the disk
        // is deleted (no more opens or attribute shows) and freed once here.
        unsafe { ffi::zvpool_disk_priv_free(self.priv_data.as_ptr()) };
    }
}
