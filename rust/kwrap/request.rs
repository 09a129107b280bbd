// SPDX-License-Identifier: GPL-2.0
//! Block-layer requests of a zvpool disk: an owned handle to a started
//! `struct request` with the accessors the driver needs (operation, sector,
//! length, FUA/PREFLUSH, data segments) and completion with a status.
//!
//! Shaped like the in-flight upstream Rust block-layer API (`Request::sector()`,
//! ending with a status), but independent of `kernel::block::mq`: see
//! `disk.rs` for why.
//!
//! Ownership: the tag set's `queue_rq` starts the request and hands the
//! driver a [`Request`]; the driver owns it until it calls [`Request::end`]
//! or [`Request::complete`] (both consume it), from whatever context its
//! completion arrives in. A `Request` dropped without either is ended with
//! `BLK_STS_IOERR` (and a warning), so a request can never hang forever.
//!
//! Each request carries a PDU ([`Pdu`]): the completion status for
//! [`Request::complete`] plus the driver's own per-request data `D`.

use super::{
    bdev::LowerDev,
    bio::{new_bio, BatchCore, BioBuilder, BioOp, BioSet, Slot},
    ffi,
    segment::Segment,
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::ManuallyDrop,
    ptr::NonNull,
    sync::atomic::{AtomicI64, AtomicPtr, AtomicU16, AtomicU8, Ordering},
};
use kernel::{
    bindings,
    ffi::{c_int, c_uint, c_void},
    prelude::*,
    types::Opaque,
};

/// Slots of a request's asynchronous I/O ([`AsyncIo`]): one per read run
/// or write extent.
pub(crate) const ASYNC_SLOTS: usize = 16;

/// Sector size of the block layer's addressing (`SECTOR_SHIFT`).
pub(crate) const SECTOR_SHIFT: u32 = 9;

/// Operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE` (see [`Request::is_fua`]).
    Write,
    /// `REQ_OP_FLUSH`: make every completed write durable.
    Flush,
    /// `REQ_OP_DISCARD`: the range's contents are no longer needed.
    Discard,
    /// `REQ_OP_WRITE_ZEROES`: the range must read back as zeroes.
    WriteZeroes,
}

/// Completion status of a request (`blk_status_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// `BLK_STS_OK`.
    Ok,
    /// `BLK_STS_NOTSUPP` (`EOPNOTSUPP`).
    NotSupp,
    /// `BLK_STS_TIMEOUT` (`ETIMEDOUT`).
    Timeout,
    /// `BLK_STS_NOSPC` (`ENOSPC`): the pool is out of space.
    NoSpc,
    /// `BLK_STS_MEDIUM` (`ENODATA`): unreadable data.
    Medium,
    /// `BLK_STS_PROTECTION` (`EILSEQ`): checksum/integrity error.
    Protection,
    /// `BLK_STS_RESOURCE` (`ENOMEM`). Returned from `queue_rq` (see
    /// `disk::Rejected`) it means "requeue later", not failure.
    Resource,
    /// `BLK_STS_AGAIN` (`EAGAIN`).
    Again,
    /// `BLK_STS_IOERR` (`EIO` and every errno without a closer match).
    IoErr,
}

impl Status {
    /// The errno this status stands for; `None` for [`Status::Ok`].
    pub(crate) fn to_error(self) -> Option<Error> {
        Some(match self {
            Status::Ok => return None,
            Status::NotSupp => EOPNOTSUPP,
            Status::Timeout => ETIMEDOUT,
            Status::NoSpc => ENOSPC,
            Status::Medium => ENODATA,
            Status::Protection => EILSEQ,
            Status::Resource => ENOMEM,
            Status::Again => EAGAIN,
            Status::IoErr => EIO,
        })
    }

    /// The C `blk_status_t`.
    pub(crate) fn to_raw(self) -> bindings::blk_status_t {
        match self.to_error() {
            None => bindings::BLK_STS_OK as bindings::blk_status_t,
            // SAFETY: `errno_to_blk_status` only looks its argument up in a
            // table; any value is allowed.
            Some(e) => unsafe { bindings::errno_to_blk_status(e.to_errno()) },
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        const MAP: [(Error, Status); 8] = [
            (EOPNOTSUPP, Status::NotSupp),
            (ETIMEDOUT, Status::Timeout),
            (ENOSPC, Status::NoSpc),
            (ENODATA, Status::Medium),
            (EILSEQ, Status::Protection),
            (ENOMEM, Status::Resource),
            (EAGAIN, Status::Again),
            (EIO, Status::IoErr),
        ];
        MAP.iter()
            .find(|(err, _)| *err == e)
            .map_or(Status::IoErr, |(_, s)| *s)
    }
}

impl From<Result> for Status {
    fn from(r: Result) -> Self {
        match r {
            Ok(()) => Status::Ok,
            Err(e) => e.into(),
        }
    }
}

/// Per-request driver data (the tag set's `cmd_size` bytes after each
/// `struct request`), initialised by `init_request` and dropped by
/// `exit_request` (see `tagset.rs`).
#[repr(C)]
pub(super) struct Pdu<D> {
    /// The work item that serves the request on the disk's workqueue
    /// (first field: `Pdu::from_work` relies on it).
    work: Opaque<bindings::work_struct>,
    /// Status for `Request::complete`, read back by the `complete` callback.
    status: AtomicU8,
    /// Times the request was requeued in a row (`Request::requeue`); reset
    /// when it ends, however it ends (`Request::requeued` tells a retry from
    /// a new request by it).
    requeues: AtomicU16,
    /// The request's asynchronous lower I/O ([`AsyncIo`]): its last put
    /// calls the tag set's `io_done` trampoline.
    aio: BatchCore,
    /// Outcomes of the lower bios of [`AsyncIo`], per slot.
    slots: [Slot; ASYNC_SLOTS],
    /// Next request in a [`ReqList`].
    next: AtomicPtr<bindings::request>,
    /// The driver's own per-request state: only the request's owner
    /// touches it ([`Request::data_mut`]).
    data: UnsafeCell<D>,
}

impl<D: Default> Pdu<D> {
    /// Initialises the PDU of `rq`.
    ///
    /// # Safety
    ///
    /// `rq` is a request of a tag set whose `cmd_size` is `size_of::<Pdu<D>>()`
    /// and whose PDU is not initialised; `work_fn` may be called with the
    /// PDU's work item once it is queued.
    ///
    /// `io_wake` is called by the last completion of the request's
    /// asynchronous I/O, in any context, with a pointer to the PDU's `aio`:
    /// it must be IRQ-safe and treat the request as owned.
    pub(super) unsafe fn init(
        rq: *mut bindings::request,
        work_fn: unsafe extern "C" fn(*mut bindings::work_struct),
        io_wake: unsafe fn(*const BatchCore),
    ) {
        const { assert!(core::mem::align_of::<Pdu<D>>() <= core::mem::align_of::<usize>()) };
        // SAFETY: `rq` is a valid request (caller); its PDU is
        // `size_of::<Pdu<D>>()` bytes right after `*rq`, pointer-aligned
        // (checked above to be enough), and uninitialised.
        let pdu = unsafe { bindings::blk_mq_rq_to_pdu(rq).cast::<Pdu<D>>() };
        // SAFETY: as above, `pdu` is valid for writes.
        unsafe {
            pdu.write(Pdu {
                work: Opaque::uninit(),
                status: AtomicU8::new(0),
                requeues: AtomicU16::new(0),
                // SAFETY: `io_wake` is IRQ-safe and expects this core
                // inside a PDU (the caller's guarantee).
                aio: BatchCore::new(io_wake),
                slots: [const { Slot::new() }; ASYNC_SLOTS],
                next: AtomicPtr::new(core::ptr::null_mut()),
                data: UnsafeCell::new(D::default()),
            })
        };
        // SAFETY: the work item was just written and is not queued.
        unsafe { ffi::zvpool_init_work((*pdu).work.get(), work_fn) };
    }
}

impl<D> Pdu<D> {
    /// Drops the PDU of `rq`.
    ///
    /// # Safety
    ///
    /// The PDU of `rq` was initialised with [`Pdu::init`], no reference to it
    /// is alive, and it is not used again until initialised again.
    pub(super) unsafe fn drop_in_place(rq: *mut bindings::request) {
        // SAFETY: guaranteed by the caller.
        unsafe { core::ptr::drop_in_place(bindings::blk_mq_rq_to_pdu(rq).cast::<Pdu<D>>()) };
    }

    /// The PDU of `rq`.
    ///
    /// # Safety
    ///
    /// The PDU of `rq` was initialised with [`Pdu::init`] and is not dropped
    /// while the returned reference lives.
    pub(super) unsafe fn get<'a>(rq: *mut bindings::request) -> &'a Self {
        // SAFETY: guaranteed by the caller.
        unsafe { &*bindings::blk_mq_rq_to_pdu(rq).cast::<Pdu<D>>() }
    }

    /// The PDU's work item.
    pub(super) fn work(&self) -> *mut bindings::work_struct {
        self.work.get()
    }

    /// The request whose PDU holds the work item `work`.
    ///
    /// # Safety
    ///
    /// `work` is the work item of a `Pdu<D>` initialised by [`Pdu::init`].
    pub(super) unsafe fn request_of_work(
        work: *mut bindings::work_struct,
    ) -> *mut bindings::request {
        // SAFETY: `work` is the first field of a `#[repr(C)]` `Pdu<D>` (and
        // `Opaque` is `repr(transparent)`), so it points to the PDU, which
        // `blk_mq_rq_from_pdu` maps back to its request.
        unsafe { bindings::blk_mq_rq_from_pdu(work.cast()) }
    }

    /// The request whose PDU holds the asynchronous I/O core `core`.
    ///
    /// # Safety
    ///
    /// `core` is the `aio` of a `Pdu<D>` initialised by [`Pdu::init`],
    /// pointer derived from the PDU's.
    pub(super) unsafe fn request_of_core(core: *const BatchCore) -> *mut bindings::request {
        // SAFETY: `core` is the field `aio` of a PDU (caller).
        let pdu = unsafe { kernel::container_of!(core, Pdu<D>, aio) };
        // SAFETY: the PDU sits right after its request (`blk_mq_rq_to_pdu`).
        unsafe { bindings::blk_mq_rq_from_pdu(pdu.cast_mut().cast()) }
    }

    /// The status stored by [`Request::complete`].
    pub(super) fn status(&self) -> bindings::blk_status_t {
        self.status.load(Ordering::Acquire)
    }
}

/// A started block-layer request owned by the driver, with PDU data `D`.
///
/// # Invariants
///
/// `ptr` points to a request of a zvpool tag set whose PDU is a [`Pdu<D>`]
/// initialised by `init_request`; `blk_mq_start_request` was called on it and
/// it has been neither ended nor completed; this `Request` is its only owner.
pub(crate) struct Request<D> {
    ptr: NonNull<bindings::request>,
    _p: PhantomData<D>,
}

// SAFETY: a started request may be ended or completed from any thread and any
// context (`blk_mq_end_request` and `blk_mq_complete_request` are IRQ-safe);
// the PDU data is shared only as `&D`, hence `D: Sync`.
unsafe impl<D: Send + Sync> Send for Request<D> {}

// SAFETY: `&Request` only reads fields of the request that do not change while
// the driver owns it, and gives out `&D` (`D: Sync`).
unsafe impl<D: Sync> Sync for Request<D> {}

/// Calls the closure behind `ctx` for one segment (trampoline for
/// `zvpool_rq_for_each_segment`).
///
/// # Safety
///
/// `ctx` points to an `F`, `page` is a valid page of a request the caller owns
/// and `off + len <= PAGE_SIZE`.
unsafe extern "C" fn segment_trampoline<'r, F: FnMut(&Segment<'r>) -> Result>(
    ctx: *mut c_void,
    page: *mut bindings::page,
    off: c_uint,
    len: c_uint,
) -> c_int {
    // SAFETY: `ctx` is the `&mut F` passed by `for_each_segment`, exclusively
    // borrowed for the whole iteration.
    let f = unsafe { &mut *ctx.cast::<F>() };
    // SAFETY: `page`, `off` and `len` describe one segment of the request;
    // the page stays valid while the request is borrowed (`'r`, see
    // `for_each_segment`): a request's pages belong to it until it ends.
    let seg = unsafe { Segment::<'r>::from_raw(page, off, len) };
    match f(&seg) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

impl<D> Request<D> {
    /// Takes ownership of a started request.
    ///
    /// # Safety
    ///
    /// `ptr` satisfies the type invariant and no other `Request` owns it.
    pub(super) unsafe fn from_raw(ptr: NonNull<bindings::request>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// Gives up ownership without ending the request (`queue_rq` returns an
    /// error status for it; the block layer then ends or requeues it).
    pub(super) fn into_raw(self) -> *mut bindings::request {
        ManuallyDrop::new(self).ptr.as_ptr()
    }

    fn raw(&self) -> *mut bindings::request {
        self.ptr.as_ptr()
    }

    /// Hands the request to its tag set's workqueue, as `queue_rq` does
    /// with one the fast path handed back: the backend's `queue_rq` serves
    /// it there, in process context. For a request the driver held back
    /// without a worker (a write waiting for GC) and now lets go. Any
    /// context; never sleeps (`queue_work` is IRQ-safe).
    pub(crate) fn serve_later(self) {
        let rq = self.into_raw();
        // The request was owned here (type invariant), so its queue and tag
        // set are alive: the tag set is freed only after its disk is
        // deleted, which waits for every request.
        // SAFETY: as above; `driver_data` is the tag set's workqueue.
        let wq = unsafe { (*(*(*rq).q).tag_set).driver_data };
        // SAFETY: the PDU was initialised by `init_request` (type
        // invariant).
        let work = unsafe { Pdu::<D>::get(rq) }.work();
        // Ownership passes to the work item, whose function (`serve`)
        // takes it. The item is not pending: it is queued only when its
        // request is handed over (here or by `queue_rq`), and the request
        // was owned here; a run of it that handed the request over may
        // still be returning (a workqueue runs an item again only after
        // that run).
        // SAFETY: `wq` is live (above); `work` is the request's work item,
        // valid as long as the request, which is not ended before the item
        // has run.
        unsafe { ffi::zvpool_queue_work(wq.cast(), work) };
    }

    /// Charges lower bio `b` to the cgroup this request's I/O was submitted
    /// from (blkcg), whoever builds `b`: io.max and io.weight on a member
    /// then act on the VM that caused the I/O.
    pub(crate) fn charge(&self, b: &BioBuilder<'_, '_>) {
        if let Some(bio) = b.raw_bio() {
            // SAFETY: `bio` is being built and not submitted (`raw_bio`),
            // and the request is valid (type invariant).
            unsafe { ffi::zvpool_bio_charge_like(bio.as_ptr(), self.raw()) };
        }
    }

    /// The operation, or `EOPNOTSUPP` for one zvpool does not handle.
    pub(crate) fn op(&self) -> Result<Op> {
        // SAFETY: by the type invariant `self.ptr` is a valid request.
        let op = unsafe { ffi::zvpool_rq_op(self.raw()) };
        Ok(match op {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            _ => return Err(EOPNOTSUPP),
        })
    }

    /// First sector (512 bytes) of the request (`blk_rq_pos`).
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: by the type invariant `self.ptr` is a valid request.
        unsafe { ffi::zvpool_rq_pos(self.raw()) }
    }

    /// Length of the request in bytes (`blk_rq_bytes`); 0 for a flush.
    pub(crate) fn bytes(&self) -> u32 {
        // SAFETY: by the type invariant `self.ptr` is a valid request.
        unsafe { ffi::zvpool_rq_bytes(self.raw()) }
    }

    /// `REQ_FUA`: the write must be durable when it completes.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn is_fua(&self) -> bool {
        // SAFETY: by the type invariant `self.ptr` is a valid request.
        unsafe { ffi::zvpool_rq_is_fua(self.raw()) }
    }

    /// `REQ_PREFLUSH`. With a write cache advertised, the block layer turns
    /// preflushes into separate [`Op::Flush`] requests, so a driver normally
    /// never sees it set; exposed for completeness.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn is_preflush(&self) -> bool {
        // SAFETY: by the type invariant `self.ptr` is a valid request.
        unsafe { ffi::zvpool_rq_is_preflush(self.raw()) }
    }

    /// The driver's per-request data.
    pub(crate) fn data(&self) -> &D {
        // SAFETY: by the type invariant the PDU is initialised; it is only
        // dropped by `exit_request`, never while the request is owned, and
        // only the owner touches `data` (mutably only through `&mut self`).
        unsafe { &*Pdu::<D>::get(self.raw()).data.get() }
    }

    /// The driver's per-request data, writable.
    pub(crate) fn data_mut(&mut self) -> &mut D {
        // SAFETY: as in `data`; `&mut self` makes this the only access.
        unsafe { &mut *Pdu::<D>::get(self.raw()).data.get() }
    }

    /// The outcome of slot `slot` of the request's asynchronous I/O, once
    /// it ended (in the backend's `io_done`): `Ok(sector)` with the sector
    /// its last bio completed at (a zone append's location), or the first
    /// error.
    pub(crate) fn slot_result(&self, slot: usize) -> Result<u64> {
        // SAFETY: by the type invariant the PDU is initialised.
        let pdu = unsafe { Pdu::<D>::get(self.raw()) };
        pdu.slots.get(slot).ok_or(EINVAL)?.result()
    }

    /// Starts asynchronous lower I/O for the request: bios carrying its own
    /// pages (or other buffers) are added with [`AsyncIo::bio`]; once
    /// [`AsyncIo::go`] was called and every bio completed, the tag set hands
    /// the request to its backend's `io_done` (in the last completion's
    /// context, possibly hard IRQ).
    pub(crate) fn into_async(self) -> AsyncIo<D> {
        // SAFETY: by the type invariant the PDU is initialised.
        let pdu = unsafe { Pdu::<D>::get(self.raw()) };
        for s in pdu.slots.iter() {
            s.reset();
        }
        pdu.aio.arm();
        AsyncIo {
            rq: ManuallyDrop::new(self),
        }
    }

    /// Calls `f` for every single-page data segment, in order (only for
    /// [`Op::Read`] and [`Op::Write`], which carry data); stops at and returns
    /// the first error. Any context. The segments borrow the request: their
    /// pages stay valid (e.g. for a lower bio) until it is ended.
    pub(crate) fn for_each_segment<'r, F: FnMut(&Segment<'r>) -> Result>(
        &'r self,
        mut f: F,
    ) -> Result {
        // SAFETY: by the type invariant the request is started and owned by
        // `self`, borrowed for the whole call; `ctx` points to `f`, which
        // outlives the call and matches the trampoline's `F`.
        let ret = unsafe {
            ffi::zvpool_rq_for_each_segment(
                self.raw(),
                segment_trampoline::<'r, F>,
                core::ptr::from_mut(&mut f).cast(),
            )
        };
        match ret {
            0 => Ok(()),
            e => Err(Error::from_errno(e)),
        }
    }

    /// Whether this dispatch is a retry of the request after
    /// [`Self::requeue`] (a transient shortage while it was served): what
    /// it went through before that (its admission by I/O limits, its
    /// pacing) need not be done again.
    pub(crate) fn requeued(&self) -> bool {
        // SAFETY: by the type invariant the PDU is initialised.
        unsafe { Pdu::<D>::get(self.raw()) }
            .requeues
            .load(Ordering::Relaxed)
            != 0
    }

    /// Gives the request back to the block layer to be dispatched again
    /// after `delay_ms` (`blk_mq_requeue_request` and
    /// `blk_mq_delay_kick_requeue_list`, as dm-rq does for a
    /// `DM_MAPIO_DELAY_REQUEUE`): for a transient shortage (memory), where
    /// failing the request would fail the upper layer's I/O. Returns the
    /// request when it was requeued `max` times in a row already. Any
    /// context (the requeue list is IRQ-safe), never sleeps.
    pub(crate) fn requeue(self, delay_ms: u32, max: u16) -> Result<(), Self> {
        // SAFETY: by the type invariant the PDU is initialised.
        let pdu = unsafe { Pdu::<D>::get(self.raw()) };
        if pdu.requeues.load(Ordering::Relaxed) >= max {
            pdu.requeues.store(0, Ordering::Relaxed);
            return Err(self);
        }
        pdu.requeues.fetch_add(1, Ordering::Relaxed);
        let delay = kernel::ffi::c_ulong::try_from(delay_ms).unwrap_or(1000);
        // Ownership goes back to the block layer, which dispatches the
        // request again through `queue_rq`; its queue lives as long as it.
        let rq = self.into_raw();
        // SAFETY: `rq` was a started, owned, not yet ended request (type
        // invariant), and its queue is alive (above).
        unsafe {
            let q = (*rq).q;
            bindings::blk_mq_requeue_request(rq, false);
            bindings::blk_mq_delay_kick_requeue_list(q, delay);
        }
        Ok(())
    }

    /// Gives the request back to the block layer like [`Self::requeue`],
    /// for a wait the driver chose (an I/O limit): not counted against
    /// `requeue`'s limit. The request is on the requeue list first; then
    /// `kick(pending)` decides: `Some(ms)` dispatches the list after `ms`
    /// (`blk_mq_delay_kick_requeue_list`, which moves a kick already
    /// pending to the new time), `None` leaves the request to the pending
    /// kick. `pending` says whether the queue's requeue work was pending
    /// (queued, not started) after the request was put on the list: only
    /// then will a kick already issued find it. A kick's time says
    /// nothing about whether it ran: the work's timer counts whole jiffies
    /// and fires up to one jiffy before the time asked for. Any context,
    /// never sleeps.
    pub(crate) fn requeue_delayed(self, kick: impl FnOnce(bool) -> Option<u32>) {
        let rq = self.into_raw();
        // Ownership goes back to the block layer, which dispatches it again;
        // the caller runs in the queue's dispatch with the disk alive.
        // SAFETY: `rq` is started, owned, not ended (type invariant); `q` lives.
        let q = unsafe {
            let q = (*rq).q;
            bindings::blk_mq_requeue_request(rq, false);
            q
        };
        // The request went on the list under `q->requeue_lock`. The work
        // clears its pending bit before it takes that lock to splice the
        // list, so if it spliced before the request was added, this load
        // (after our unlock of the same lock) sees the bit clear, unless a
        // newer kick set it again, and that one runs later and finds the
        // request. A set bit therefore means: a run is still to come.
        // SAFETY: `q` is alive (above); `requeue_work.work.data` is the
        // work's `atomic_long_t`, only ever accessed atomically.
        let data = unsafe {
            let p = core::ptr::addr_of_mut!((*q).requeue_work.work.data.counter);
            AtomicI64::from_ptr(p).load(Ordering::Acquire)
        };
        let pending = data & (1 << bindings::work_bits_WORK_STRUCT_PENDING_BIT) != 0;
        if let Some(ms) = kick(pending) {
            // SAFETY: `q` is alive (above).
            unsafe {
                bindings::blk_mq_delay_kick_requeue_list(
                    q,
                    kernel::ffi::c_ulong::try_from(ms).unwrap_or(1000),
                )
            };
        }
    }

    /// Ends the request with `status` right here (`blk_mq_end_request`): the
    /// upper layer's completion runs in the caller's context. Any context,
    /// including hard IRQ; never sleeps.
    pub(crate) fn end(self, status: Status) {
        // SAFETY: by the type invariant the PDU is initialised.
        unsafe { Pdu::<D>::get(self.raw()) }
            .requeues
            .store(0, Ordering::Relaxed);
        let rq = self.into_raw();
        // SAFETY: `rq` was a started, owned, not yet ended request (type
        // invariant); ownership ends here.
        unsafe { bindings::blk_mq_end_request(rq, status.to_raw()) };
    }

    /// Completes the request with `status` through `blk_mq_complete_request`:
    /// the block layer ends it on the submitting CPU (softirq or IPI), so the
    /// upper layer's completion does not run in the caller's context. Meant
    /// for completions from hard IRQ (a lower bio's `end_io`). Any context;
    /// never sleeps.
    #[allow(
        dead_code,
        reason = "async completion from a lower bio's end_io; the pool engine completes synchronously for now"
    )]
    pub(crate) fn complete(self, status: Status) {
        // SAFETY: by the type invariant the PDU is initialised.
        let pdu = unsafe { Pdu::<D>::get(self.raw()) };
        pdu.requeues.store(0, Ordering::Relaxed);
        // Release pairs with the Acquire in `Pdu::status`, read by the
        // `complete` callback, possibly on another CPU.
        pdu.status.store(status.to_raw(), Ordering::Release);
        let rq = self.into_raw();
        // SAFETY: `rq` was a started, owned request; the tag set's `complete`
        // callback ends it with the status stored above.
        unsafe { bindings::blk_mq_complete_request(rq) };
    }
}

/// A request whose asynchronous lower I/O is being set up: bios are added
/// with [`Self::bio`], then [`Self::go`] (or dropping it) lets the last
/// completion hand the request to the backend's `io_done`.
///
/// # Invariants
///
/// `rq` is owned, its PDU's `aio` is armed (the owner's count is held until
/// `go`/drop) and every bio submitted on it holds one count; the request is
/// not ended before the last count is dropped, so its pages (which the bios
/// carry) stay valid for them.
pub(crate) struct AsyncIo<D> {
    rq: ManuallyDrop<Request<D>>,
}

impl<D> AsyncIo<D> {
    /// The request (sector, length, segments, data).
    pub(crate) fn request(&self) -> &Request<D> {
        &self.rq
    }

    /// The driver's per-request data, writable (before [`Self::go`]).
    pub(crate) fn data_mut(&mut self) -> &mut D {
        self.rq.data_mut()
    }

    /// Allocates a bio for `dev` that reports into slot `slot` (at most
    /// [`ASYNC_SLOTS`]): `op` at `sector`, room for `nr_vecs` page parts.
    /// Pages added come from the request's segments, borrowed from
    /// [`Self::request`]. May sleep (`GFP_NOIO`).
    pub(crate) fn bio<'b>(
        &'b self,
        set: &'b BioSet,
        dev: &'b LowerDev,
        slot: usize,
        op: BioOp,
        sector: u64,
        nr_vecs: usize,
    ) -> Result<BioBuilder<'b, 'b>> {
        let pdu = self.pdu();
        // SAFETY: the PDU lives while the request does.
        let s = unsafe { (*pdu).slots.get(slot) }.ok_or(EINVAL)?;
        // SAFETY: `pdu` points to the initialised PDU of the owned request.
        let core = unsafe { &raw const (*pdu).aio };
        // SAFETY: the core is armed (type invariant) and the request is not
        // ended before its last count is dropped, so the core and the
        // request's pages outlive the bio.
        unsafe { new_bio(core, s, set, dev, op, sector, nr_vecs) }
    }

    fn pdu(&self) -> *const Pdu<D> {
        // SAFETY: the request is valid and its PDU initialised.
        unsafe { bindings::blk_mq_rq_to_pdu(self.rq.raw()).cast::<Pdu<D>>() }
    }

    /// Lets the I/O finish: once every bio completed (maybe right here), the
    /// request goes to the backend's `io_done`.
    pub(crate) fn go(self) {
        drop(self);
    }
}

impl<D> Drop for AsyncIo<D> {
    fn drop(&mut self) {
        let pdu = self.pdu();
        // SAFETY: the PDU of the owned request.
        let core = unsafe { &raw const (*pdu).aio };
        // SAFETY: the owner's count (type invariant), given up once: after
        // this the request belongs to the completions.
        unsafe { BatchCore::put(core) };
    }
}

/// Requests handed from completion context to a worker: a lock-free stack
/// through the PDUs' `next` (push from any context, take all at once).
///
/// # Invariants
///
/// `head` is null or the first of a chain of owned requests with PDU
/// `Pdu<D>`, linked by `next`, that only the list owns.
pub(crate) struct ReqList<D> {
    head: AtomicPtr<bindings::request>,
    _p: PhantomData<D>,
}

// SAFETY: the requests it holds may be ended from any thread (`Request`).
unsafe impl<D: Send + Sync> Send for ReqList<D> {}
// SAFETY: pushes and takes are atomic exchanges.
unsafe impl<D: Send + Sync> Sync for ReqList<D> {}

impl<D> ReqList<D> {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(core::ptr::null_mut()),
            _p: PhantomData,
        }
    }

    /// Adds `rq`; returns whether the list was empty. Any context.
    pub(crate) fn push(&self, rq: Request<D>) -> bool {
        // SAFETY: by the type invariant the PDU is initialised.
        let pdu = unsafe { Pdu::<D>::get(rq.raw()) };
        let raw = rq.into_raw();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            pdu.next.store(head, Ordering::Relaxed);
            // Release: the link and the request's state are visible to the
            // taker.
            match self
                .head
                .compare_exchange_weak(head, raw, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return head.is_null(),
                Err(h) => head = h,
            }
        }
    }

    /// Takes every request pushed so far (newest first).
    pub(crate) fn take(&self) -> ReqIter<D> {
        ReqIter {
            cur: self.head.swap(core::ptr::null_mut(), Ordering::Acquire),
            _p: PhantomData,
        }
    }
}

impl<D> Drop for ReqList<D> {
    fn drop(&mut self) {
        // Ends what is left (with an error, see `Request`'s `Drop`).
        for rq in self.take() {
            drop(rq);
        }
    }
}

/// The requests taken from a [`ReqList`].
///
/// # Invariants
///
/// `cur` is null or the first of a chain of owned requests (as in
/// [`ReqList`]) that only this iterator owns.
pub(crate) struct ReqIter<D> {
    cur: *mut bindings::request,
    _p: PhantomData<D>,
}

impl<D> Iterator for ReqIter<D> {
    type Item = Request<D>;

    fn next(&mut self) -> Option<Request<D>> {
        let rq = NonNull::new(self.cur)?;
        // SAFETY: an owned request of the chain (type invariant).
        let pdu = unsafe { Pdu::<D>::get(rq.as_ptr()) };
        self.cur = pdu.next.load(Ordering::Relaxed);
        // SAFETY: the chain owned it; now the caller does.
        Some(unsafe { Request::from_raw(rq) })
    }
}

impl<D> Drop for ReqIter<D> {
    fn drop(&mut self) {
        for rq in self.by_ref() {
            drop(rq);
        }
    }
}

impl<D> Drop for Request<D> {
    fn drop(&mut self) {
        pr_warn!(
            "request at sector {} dropped without completion; ending it with an I/O error\n",
            self.sector()
        );
        // SAFETY: by the type invariant the request is started, owned and not
        // yet ended; `self` is going away, so it is not used again.
        unsafe { bindings::blk_mq_end_request(self.raw(), Status::IoErr.to_raw()) };
    }
}
