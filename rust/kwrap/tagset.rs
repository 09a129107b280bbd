// SPDX-License-Identifier: GPL-2.0
//! The blk-mq tag set of a zvpool disk: `struct blk_mq_tag_set` with the
//! `blk_mq_ops` trampolines that hand requests to a [`VolumeOps`]
//! implementation. Used by [`super::disk::Disk`], which owns one per disk.
//!
//! Callback contexts:
//! - `queue_rq`: process context, may sleep (`BLK_MQ_F_BLOCKING`), so the
//!   driver can allocate and take mutexes there; it runs in a `GFP_NOIO`
//!   scope (`noio.rs`), so `GFP_KERNEL` allocations there act as `GFP_NOIO`.
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
    disk::{Rejected, VolumeOps},
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

    /// `blk_mq_ops.queue_rq`: starts the request and hands it to `T`.
    ///
    /// # Safety
    ///
    /// Called by the block layer with a valid `hctx` of a queue created by
    /// `Disk<T>` (whose `queuedata` is a live `T`) and a valid `bd` whose
    /// request is not started.
    unsafe extern "C" fn queue_rq(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: `hctx` and `bd` are valid for the call (block layer).
        let (rq, last, queue) = unsafe { ((*bd).rq, (*bd).last, (*hctx).queue) };
        // SAFETY: the queue was created by `Disk::new` with `queuedata` the
        // `Arc<T>` that `Disk` holds until after `del_gendisk`, which waits
        // for every `queue_rq` to return.
        let ops = unsafe { &*(*queue).queuedata.cast::<T>() };
        let Some(rq) = NonNull::new(rq) else {
            return Status::IoErr.to_raw();
        };
        // SAFETY: `rq` is a valid request handed to this driver, not started.
        unsafe { bindings::blk_mq_start_request(rq.as_ptr()) };
        // SAFETY: `rq` belongs to this tag set (PDU `Pdu<T::RequestData>`
        // initialised by `init_request`), is started, and this is its only
        // owner.
        let rq = unsafe { Request::<T::RequestData>::from_raw(rq) };
        // The driver may allocate while serving the request: NOIO, so reclaim
        // cannot issue I/O that waits on this queue.
        match noio(|| ops.queue_rq(rq, last)) {
            Ok(()) => bindings::BLK_STS_OK as bindings::blk_status_t,
            Err(Rejected { rq, status }) => {
                // The block layer ends (or, for `Resource`, requeues) it.
                rq.into_raw();
                match status {
                    Status::Ok => Status::IoErr.to_raw(),
                    s => s.to_raw(),
                }
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
        // SAFETY: the tag set's `cmd_size` is `size_of::<Pdu<T::RequestData>>()`
        // (`TagSet::new`) and the PDU is not initialised yet.
        unsafe { Pdu::<T::RequestData>::init(rq) };
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
/// ops of `OpsTable<T>` and `cmd_size` `size_of::<Pdu<T::RequestData>>()`, and
/// is freed only by `Drop`. It is heap-allocated and never moved.
pub(crate) struct TagSet<T: VolumeOps> {
    inner: Pin<KBox<Opaque<bindings::blk_mq_tag_set>>>,
    _p: PhantomData<T>,
}

// SAFETY: the tag set is only used through the block layer's own locking;
// `T` is `Send + Sync`.
unsafe impl<T: VolumeOps> Send for TagSet<T> {}
// SAFETY: as above; `&TagSet` only exposes the raw pointer to `Disk`.
unsafe impl<T: VolumeOps> Sync for TagSet<T> {}

impl<T: VolumeOps> TagSet<T> {
    /// Allocates a tag set with `nr_hw_queues` hardware queues of
    /// `queue_depth` tags each, with a blocking `queue_rq`. Sleeps.
    pub(crate) fn new(nr_hw_queues: u32, queue_depth: u32) -> Result<Self> {
        let cmd_size = u32::try_from(core::mem::size_of::<Pdu<T::RequestData>>())?;
        let inner = KBox::pin(Opaque::<bindings::blk_mq_tag_set>::zeroed(), GFP_KERNEL)?;
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
            (*set).flags = bindings::BLK_MQ_F_BLOCKING;
            bindings::blk_mq_alloc_tag_set(set)
        };
        if ret != 0 {
            let e = Error::from_errno(ret);
            pr_err!("cannot allocate a tag set ({:?})\n", e);
            return Err(e);
        }
        // INVARIANT: allocated above with the ops and `cmd_size` of `T`.
        Ok(Self {
            inner,
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
        // SAFETY: by the type invariant the tag set was allocated and not yet
        // freed; its disk (if any) was released first (`Disk` drops its
        // gendisk before its tag set).
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}
