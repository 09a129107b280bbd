// SPDX-License-Identifier: GPL-2.0
//! The blk-mq tag set of a zvpool disk: `struct blk_mq_tag_set` with the
//! `blk_mq_ops` trampolines that hand requests to a [`VolumeOps`]
//! implementation. Used by [`super::disk::Disk`], which owns one per disk.
//!
//! Callback contexts:
//! - `queue_rq` (the C callback): a dispatch context that may sleep
//!   (`BLK_MQ_F_BLOCKING`), possibly inside a task's `submit_bio`; it starts
//!   the request and offers it to `VolumeOps::queue_rq_fast`, which may
//!   plan and submit its lower bios without waiting for them; otherwise
//!   queues its work item (in the PDU) on the tag set's workqueue
//!   (`WQ_MEM_RECLAIM`).
//! - `io_wake`: the last lower completion of a request served that way;
//!   calls `VolumeOps::io_done` in that context (often hard IRQ).
//! - `serve` (the work function) calls `VolumeOps::queue_rq`: process
//!   context, may sleep, may submit and wait for lower I/O; it runs in a
//!   `GFP_NOIO` scope (`noio.rs`), so `GFP_KERNEL` allocations act as
//!   `GFP_NOIO`.
//! - `complete`: the block layer's completion context for
//!   `blk_mq_complete_request` (softirq or IPI on the submitting CPU, or the
//!   caller's context); never sleeps.
//! - `init_request` / `exit_request`: process context, when the tag set's
//!   requests are allocated and freed.
//!
//! There is no `timeout` callback on purpose: when a request exceeds the
//! block layer's timeout (30 s), `blk_mq_rq_timed_out` then only re-arms the
//! timer, so a request is never completed behind the back of the driver that
//! owns it (`Request` stays the only way to end it). A backend that can
//! cancel lower I/O would add a `timeout` here.

use super::{
    bio::BatchCore,
    disk::{Rejected, VolumeOps},
    ffi,
    noio::noio,
    request::{Pdu, Request, Status},
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    ffi::{c_int, c_uint},
    prelude::*,
    types::Opaque,
};

/// The `blk_mq_ops` of a tag set serving `T`.
struct OpsTable<T>(PhantomData<T>);

impl<T: VolumeOps> OpsTable<T> {
    const OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        complete: Some(Self::complete),
        init_request: Some(Self::init_request),
        exit_request: Some(Self::exit_request),
        ..pin_init::zeroed()
    };

    /// `blk_mq_ops.queue_rq`: starts the request and offers it to
    /// `T::queue_rq_fast`, which may serve it right here without waiting
    /// for lower I/O (plan, submit, and complete it later from the lower
    /// bios' completion: [`Self::io_wake`]); otherwise queues its work item
    /// on the tag set's workqueue, where [`Self::serve`] hands it to
    /// `T::queue_rq`.
    ///
    /// Nothing here waits for lower I/O: this callback may run in the
    /// context of a task inside `submit_bio` (direct issue, or a queue run
    /// while `current->bio_list` is set), where a bio submitted to a lower
    /// device is only queued on that list until this returns, so waiting
    /// for it (`submit_bio_wait`) would never return. Submitting and
    /// returning is fine (dm does the same). On the workqueue the backend
    /// may submit and wait for lower I/O freely (like the loop driver). The
    /// tag set is `BLK_MQ_F_BLOCKING`: this may sleep (locks, `GFP_NOIO`
    /// allocations, a lower queue out of tags), never in atomic context.
    ///
    /// # Safety
    ///
    /// Called by the block layer with a valid `hctx` of a queue of this tag
    /// set and a valid `bd` whose request is not started.
    unsafe extern "C" fn queue_rq(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: `hctx` and `bd` are valid for the call (block layer); the
        // queue's tag set is this tag set, whose `driver_data` is its
        // workqueue (`TagSet::new`), alive until the tag set is freed.
        let (rq, wq) = unsafe { ((*bd).rq, (*(*(*hctx).queue).tag_set).driver_data) };
        // SAFETY: `rq` is a valid request handed to this driver, not started.
        unsafe { bindings::blk_mq_start_request(rq) };
        let Some(raw) = NonNull::new(rq) else {
            return Status::IoErr.to_raw();
        };
        // `Disk::new` set `queuedata` to the `Arc<T>` that `Disk` holds until
        // after `del_gendisk`, which waits for every request.
        // SAFETY: the request is valid and its queue's `queuedata` a live
        // `T` (above).
        let ops = unsafe { &*(*(*rq).q).queuedata.cast::<T>() };
        // SAFETY: `rq` belongs to this tag set, is started, and the driver
        // owns it from here; this is its only owner.
        let req = unsafe { Request::<T::RequestData>::from_raw(raw) };
        // The task's plug may be the one being flushed right now (this runs
        // from `blk_finish_plug` or `schedule`): bios the backend submits
        // must not be added to it (the flush would be re-entered with a list
        // that grew under it), so the task has no plug meanwhile.
        // SAFETY: paired below, in this task, before returning.
        let plug = unsafe { ffi::zvpool_plug_detach() };
        let fast = noio(|| ops.queue_rq_fast(req));
        // SAFETY: the plug taken above; nothing here started another.
        unsafe { ffi::zvpool_plug_attach(plug) };
        let Some(req) = fast else {
            return bindings::BLK_STS_OK as bindings::blk_status_t;
        };
        let rq = req.into_raw();
        // SAFETY: the PDU was initialised by `init_request`.
        let work = unsafe { Pdu::<T::RequestData>::get(rq) }.work();
        // A request is dispatched once at a time and its work item is queued
        // only here, so the item is not pending.
        // SAFETY: `wq` is live (above); `work` is the request's work item,
        // valid while the request exists, and not pending.
        unsafe { ffi::zvpool_queue_work(wq.cast(), work) };
        bindings::BLK_STS_OK as bindings::blk_status_t
    }

    /// The last completion of a request's asynchronous I/O
    /// (`Request::into_async`): hands the request to `T::io_done`. Any
    /// context (often hard IRQ).
    ///
    /// # Safety
    ///
    /// `core` is the `aio` core of the PDU of an owned request of this tag
    /// set (pointer derived from the PDU's), every count of which was
    /// dropped.
    unsafe fn io_wake(core: *const BatchCore) {
        // SAFETY: the caller's guarantee.
        let rq = unsafe { Pdu::<T::RequestData>::request_of_core(core) };
        let Some(rq) = NonNull::new(rq) else {
            return;
        };
        // SAFETY: the request is owned and not ended, so its queue and the
        // `T` in its `queuedata` are alive (as in `queue_rq`).
        let ops = unsafe { &*(*(*rq.as_ptr()).q).queuedata.cast::<T>() };
        // SAFETY: the request's asynchronous I/O owned it; now `io_done`
        // does.
        let rq = unsafe { Request::<T::RequestData>::from_raw(rq) };
        ops.io_done(rq);
    }

    /// Work function of a request's work item: hands the request to `T` in
    /// process context, in a `GFP_NOIO` scope.
    ///
    /// # Safety
    ///
    /// Called by the workqueue for the work item of a request of this tag set
    /// queued by [`Self::queue_rq`], whose queue's `queuedata` is a live `T`.
    unsafe extern "C" fn serve(work: *mut bindings::work_struct) {
        // SAFETY: `work` belongs to a PDU initialised by `init_request`.
        let rq = unsafe { Pdu::<T::RequestData>::request_of_work(work) };
        let Some(rq) = NonNull::new(rq) else {
            return;
        };
        // `Disk::new` set `queuedata` to the `Arc<T>` that `Disk` holds until
        // after `del_gendisk` (which waits for every request) and the
        // destruction of this workqueue (which waits for this function).
        // SAFETY: the request is started and owned by the driver, and its
        // queue's `queuedata` is a live `T` (above).
        let ops = unsafe { &*(*(*rq.as_ptr()).q).queuedata.cast::<T>() };
        // SAFETY: `rq` belongs to this tag set (PDU `Pdu<T::RequestData>`),
        // is started, and its ownership passed from `queue_rq` to this work
        // item; this is its only owner.
        let rq = unsafe { Request::<T::RequestData>::from_raw(rq) };
        // The driver may allocate while serving the request: NOIO, so reclaim
        // cannot issue I/O that waits on this queue.
        if let Err(Rejected { rq, status }) = noio(|| ops.queue_rq(rq, true)) {
            match status {
                Status::Resource => {
                    let rq = rq.into_raw();
                    // SAFETY: `rq` is a started request owned by the driver;
                    // the block layer takes it back and dispatches it again.
                    unsafe { bindings::blk_mq_requeue_request(rq, true) };
                }
                Status::Ok => rq.end(Status::IoErr),
                s => rq.end(s),
            }
        }
    }

    /// `blk_mq_ops.complete`: ends a request passed to
    /// `blk_mq_complete_request` by `Request::complete`, with the status it
    /// stored.
    ///
    /// # Safety
    ///
    /// Called by the block layer for a request of this tag set that the
    /// driver completed with `Request::complete`.
    unsafe extern "C" fn complete(rq: *mut bindings::request) {
        // SAFETY: the PDU was initialised by `init_request`.
        let status = unsafe { Pdu::<T::RequestData>::get(rq) }.status();
        // SAFETY: `rq` is a started request whose ownership `Request::complete`
        // gave to the block layer, which passes it back here once.
        unsafe { bindings::blk_mq_end_request(rq, status) };
    }

    /// `blk_mq_ops.init_request`: initialises the PDU.
    ///
    /// # Safety
    ///
    /// Called by the block layer once for every request of the tag set,
    /// before its first use.
    unsafe extern "C" fn init_request(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
        _numa_node: c_int,
    ) -> c_int {
        // `serve` expects the work items of this tag set's PDUs; `io_wake` is
        // IRQ-safe when `T::io_done` is (its contract) and expects them too.
        // SAFETY: `cmd_size` is `size_of::<Pdu<T::RequestData>>()`
        // (`TagSet::new`), the PDU is not initialised yet; callbacks above.
        unsafe { Pdu::<T::RequestData>::init(rq, Self::serve, Self::io_wake) };
        0
    }

    /// `blk_mq_ops.exit_request`: drops the PDU.
    ///
    /// # Safety
    ///
    /// Called by the block layer once for every request whose
    /// `init_request` succeeded, after its last use.
    unsafe extern "C" fn exit_request(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
    ) {
        // SAFETY: initialised by `init_request`, no longer in use.
        unsafe { Pdu::<T::RequestData>::drop_in_place(rq) };
    }
}

/// A blk-mq tag set whose requests are served by `T`.
///
/// # Invariants
///
/// `inner` was initialised by a successful `blk_mq_alloc_tag_set` with the
/// ops of `OpsTable<T>`, `cmd_size` `size_of::<Pdu<T::RequestData>>()` and
/// `driver_data` `wq`, and is freed only by `Drop`. It is heap-allocated and
/// never moved. `wq` is a workqueue from `zvpool_alloc_io_workqueue`,
/// destroyed only by `Drop`.
pub(crate) struct TagSet<T: VolumeOps> {
    inner: Pin<KBox<Opaque<bindings::blk_mq_tag_set>>>,
    wq: NonNull<bindings::workqueue_struct>,
    _p: PhantomData<T>,
}

// SAFETY: the tag set is only used through the block layer's own locking;
// `T` is `Send + Sync`.
unsafe impl<T: VolumeOps> Send for TagSet<T> {}
// SAFETY: as above; `&TagSet` only exposes the raw pointer to `Disk`.
unsafe impl<T: VolumeOps> Sync for TagSet<T> {}

impl<T: VolumeOps> TagSet<T> {
    /// Allocates a tag set with `nr_hw_queues` hardware queues of
    /// `queue_depth` tags each, and the workqueue its requests are served on.
    /// Sleeps.
    pub(crate) fn new(nr_hw_queues: u32, queue_depth: u32) -> Result<Self> {
        let cmd_size = u32::try_from(core::mem::size_of::<Pdu<T::RequestData>>())?;
        let inner = KBox::pin(Opaque::<bindings::blk_mq_tag_set>::zeroed(), GFP_KERNEL)?;
        // SAFETY: process context; destroyed on the error path below or by
        // `Drop`.
        let Some(wq) = NonNull::new(unsafe { ffi::zvpool_alloc_io_workqueue() }) else {
            pr_err!("cannot allocate an I/O workqueue\n");
            return Err(ENOMEM);
        };
        let set = inner.get();
        // SAFETY: `set` points to a zeroed tag set that nobody else knows of;
        // `blk_mq_alloc_tag_set` only needs the fields set here (the rest zero).
        let ret = unsafe {
            (*set).ops = &OpsTable::<T>::OPS;
            (*set).nr_hw_queues = nr_hw_queues;
            (*set).nr_maps = 1;
            (*set).queue_depth = queue_depth;
            (*set).numa_node = bindings::NUMA_NO_NODE;
            (*set).cmd_size = cmd_size;
            // `queue_rq` may sleep (see there). No I/O scheduler by default:
            // requests are remapped to members that schedule their own I/O
            // (as bio-based dm has none and NVMe defaults to none); an
            // administrator can still pick one in sysfs.
            (*set).flags = bindings::BLK_MQ_F_BLOCKING | bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
            (*set).driver_data = wq.as_ptr().cast();
            bindings::blk_mq_alloc_tag_set(set)
        };
        if ret != 0 {
            // SAFETY: allocated above, never used.
            unsafe { bindings::destroy_workqueue(wq.as_ptr()) };
            let e = Error::from_errno(ret);
            pr_err!("cannot allocate a tag set ({:?})\n", e);
            return Err(e);
        }
        // INVARIANT: allocated above with the ops and `cmd_size` of `T`, and
        // `wq` as `driver_data`.
        Ok(Self {
            inner,
            wq,
            _p: PhantomData,
        })
    }

    /// The C tag set, for `blk_mq_alloc_disk`.
    pub(super) fn as_ptr(&self) -> *mut bindings::blk_mq_tag_set {
        self.inner.get()
    }
}

impl<T: VolumeOps> Drop for TagSet<T> {
    fn drop(&mut self) {
        // The disk (if any) was deleted first (`Disk` drops its gendisk before
        // its tag set): every request has completed, nothing queues work.
        // SAFETY: by the type invariant `wq` is live; destroying it drains
        // the work functions still returning.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
        // SAFETY: by the type invariant the tag set was allocated and not yet
        // freed; its disk was released and its work items have finished.
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}
