// SPDX-License-Identifier: GPL-2.0
//! Volumes: the block device `/dev/zvpoolN` of a volume, and the
//! [`VolumeBackend`] interface through which it reaches its data.
//!
//! A [`VolumeDev`] owns the disk (`kwrap::disk::Disk`) and its index `N`;
//! [`Volume`] is the disk's `VolumeOps`: it decodes each request and hands
//! it, as an [`Io`], to the backend's method for its operation. The pool
//! implements [`VolumeBackend`] (reads through the block table, log-structured
//! writes, ...); until then `membackend::MemBackend`, a RAM test backend,
//! does.

use crate::kwrap::{
    disk::{Disk, DiskAttr, DiskParams, Rejected, VolumeOps},
    request::{Op, Request, Status, SECTOR_SHIFT},
};
use crate::registry;
use kernel::{prelude::*, str::CStr, str::Formatter, sync::Arc};

/// Block size of every volume: the logical and physical block size of its
/// disk, and the unit of sizes in the configfs ABI.
pub(crate) const BLOCK_SIZE: u64 = 4096;

/// Largest volume size in bytes (configfs ABI: at most 2^50).
pub(crate) const MAX_VOLUME_BYTES: u64 = 1 << 50;

/// The data side of a volume. Every method receives one request of a
/// volume and must complete it exactly once, with [`Io::end`] or
/// [`Io::complete`] (dropping an `Io` ends it with an I/O error). The methods
/// are called in process context and may sleep (they run in a `GFP_NOIO` scope, see `kwrap/noio.rs`);
/// completion may happen later from any context, including hard IRQ (a
/// lower bio's `end_io`).
///
/// Ranges are within the volume's capacity (checked by the block layer) and
/// aligned to [`BLOCK_SIZE`].
pub(crate) trait VolumeBackend: Send + Sync + Sized + 'static {
    /// Per-request state for asynchronous completion (e.g. a count of
    /// outstanding lower bios), reused across requests.
    type RequestData: Default + Send + Sync;

    /// Adjusts the queue limits of the volume's disk before it is created
    /// (e.g. to what the lower devices take in one bio).
    fn disk_params(&self, _p: &mut DiskParams) {}

    /// Fill the request's segments with the data at `io.offset()`;
    /// unmapped space reads as zeroes.
    fn read(&self, io: Io<Self>);
    /// Store the request's segments at `io.offset()`; durable on completion
    /// if `io.is_fua()`.
    fn write(&self, io: Io<Self>);
    /// Make every write completed so far durable.
    fn flush(&self, io: Io<Self>);
    /// The range is no longer needed: unmap it (reads return zeroes after).
    fn discard(&self, io: Io<Self>);
    /// The range must read back as zeroes.
    fn write_zeroes(&self, io: Io<Self>);

    /// Offered every request first, in the block layer's dispatch context
    /// (`VolumeOps::queue_rq_fast`): may take it (plan, submit lower bios
    /// with `Request::into_async`, never wait for them; return `None`) or
    /// hand it back for the methods above, on the disk's workqueue.
    fn queue_fast(&self, io: Io<Self>) -> Option<Io<Self>> {
        Some(io)
    }

    /// The lower bios of a request taken by [`Self::queue_fast`] completed
    /// (`VolumeOps::io_done`). Any context (often hard IRQ); never sleeps.
    fn io_done(&self, rq: Request<Self::RequestData>) {
        rq.end(Status::IoErr);
    }

    /// Writes the value of the disk's identity attribute `attr` (sysfs
    /// `zvpool/*` and the uevent sent when the disk is added; see
    /// `VolumeOps::show_attr`). Process context; must not wait for I/O.
    fn show_attr(&self, _attr: DiskAttr, _w: &mut Formatter<'_>) -> Result {
        Ok(())
    }
}

/// Delay before a request that ran out of memory is dispatched again.
const REQUEUE_DELAY_MS: u32 = 10;

/// Requeues of one request in a row before it fails (30 s).
const REQUEUE_MAX: u16 = 3000;

/// One request of a volume, handed to its [`VolumeBackend`].
pub(crate) struct Io<B: VolumeBackend> {
    rq: Request<B::RequestData>,
}

impl<B: VolumeBackend> Io<B> {
    /// Byte offset in the volume.
    pub(crate) fn offset(&self) -> u64 {
        self.rq.sector() << SECTOR_SHIFT
    }

    /// First sector (512 bytes) in the volume.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn sector(&self) -> u64 {
        self.rq.sector()
    }

    /// Length in bytes (0 for a flush).
    pub(crate) fn len(&self) -> u64 {
        u64::from(self.rq.bytes())
    }

    /// A write that must be durable when it completes.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn is_fua(&self) -> bool {
        self.rq.is_fua()
    }

    /// The backend's per-request state.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn data(&self) -> &B::RequestData {
        self.rq.data()
    }

    /// Completes the request with `result` in the caller's context, or
    /// requeues it (`true`, see [`end_request`]).
    pub(crate) fn end(self, result: Result) -> bool {
        end_request(self.rq, result)
    }

    /// The operation (the request was decoded before it got here).
    pub(crate) fn op(&self) -> Option<Op> {
        self.rq.op().ok()
    }

    /// The request itself (for asynchronous I/O: `Request::into_async`).
    pub(crate) fn into_request(self) -> Request<B::RequestData> {
        self.rq
    }

    /// A request handed back by the backend's fast path.
    pub(crate) fn from_request(rq: Request<B::RequestData>) -> Self {
        Self { rq }
    }

    /// The request (its segments, for the backend's data path).
    pub(crate) fn request(&self) -> &Request<B::RequestData> {
        &self.rq
    }

    /// Completes the request with `result`, deferring the upper layer's
    /// completion to the submitting CPU (for completions in hard IRQ). Any
    /// context; never sleeps.
    #[allow(dead_code, reason = "API for backends; the pool completes `Request`s")]
    pub(crate) fn complete(self, result: Result) {
        self.rq.complete(Status::from(result));
    }
}

/// Ends `rq` with `result` in the caller's context. A request that failed
/// for want of memory (`ENOMEM`) is requeued after [`REQUEUE_DELAY_MS`]
/// instead (memory comes back; a failed flush would abort a filesystem),
/// [`REQUEUE_MAX`] times in a row at most: returns whether it was. Any
/// context; never sleeps.
pub(crate) fn end_request<D>(rq: Request<D>, result: Result) -> bool {
    if result == Err(ENOMEM) {
        match rq.requeue(REQUEUE_DELAY_MS, REQUEUE_MAX) {
            Ok(()) => return true,
            Err(rq) => {
                pr_err!(
                    "request at sector {}: out of memory for {} s; failed\n",
                    rq.sector(),
                    u32::from(REQUEUE_MAX) * REQUEUE_DELAY_MS / 1000
                );
                rq.end(Status::Resource);
                return false;
            }
        }
    }
    rq.end(Status::from(result));
    false
}

/// The `VolumeOps` of a volume's disk: dispatches requests to `B`.
pub(crate) struct Volume<B: VolumeBackend> {
    backend: Arc<B>,
}

impl<B: VolumeBackend> VolumeOps for Volume<B> {
    type RequestData = B::RequestData;

    fn queue_rq(
        &self,
        rq: Request<B::RequestData>,
        _is_last: bool,
    ) -> Result<(), Rejected<B::RequestData>> {
        let op = match rq.op() {
            Ok(op) => op,
            Err(_) => {
                return Err(Rejected {
                    rq,
                    status: Status::NotSupp,
                })
            }
        };
        let io = Io { rq };
        let b = &*self.backend;
        match op {
            Op::Read => b.read(io),
            Op::Write => b.write(io),
            Op::Flush => b.flush(io),
            Op::Discard => b.discard(io),
            Op::WriteZeroes => b.write_zeroes(io),
        }
        Ok(())
    }

    fn queue_rq_fast(&self, rq: Request<B::RequestData>) -> Option<Request<B::RequestData>> {
        if rq.op().is_err() {
            // Refused by `queue_rq`.
            return Some(rq);
        }
        self.backend.queue_fast(Io { rq }).map(|io| io.rq)
    }

    fn io_done(&self, rq: Request<B::RequestData>) {
        self.backend.io_done(rq);
    }

    fn show_attr(&self, attr: DiskAttr, w: &mut Formatter<'_>) -> Result {
        self.backend.show_attr(attr, w)
    }
}

/// A claimed disk index `N` of `/dev/zvpoolN`, released on drop.
struct DiskIndex(usize);

impl DiskIndex {
    /// The lowest free index, or `ENOSPC`.
    fn alloc() -> Result<Self> {
        registry::claim_disk_index().map(Self)
    }
}

impl Drop for DiskIndex {
    fn drop(&mut self) {
        registry::release_disk_index(self.0);
    }
}

/// The block device `/dev/zvpoolN` of a volume, served by `B`.
pub(crate) struct VolumeDev<B: VolumeBackend> {
    // Dropped first: the disk is gone before its index is reused.
    disk: Disk<Volume<B>>,
    _index: DiskIndex,
}

impl<B: VolumeBackend> VolumeDev<B> {
    /// Creates `/dev/zvpoolN` (the lowest free `N`) of `size` bytes, served
    /// by `backend`. `size` must be a non-zero multiple of [`BLOCK_SIZE`].
    /// `what` names the volume in error messages. Sleeps.
    pub(crate) fn new(what: &CStr, size: u64, backend: Arc<B>) -> Result<Self> {
        let index = DiskIndex::alloc().inspect_err(|e| {
            pr_err!(
                "{}: no free volume disk index (at most {} disks): {:?}\n",
                what.to_str().unwrap_or("?"),
                registry::MAX_DISKS,
                e
            )
        })?;
        let mut params = DiskParams::new(size >> SECTOR_SHIFT);
        backend.disk_params(&mut params);
        let ops = Arc::new(Volume { backend }, GFP_KERNEL)?;
        let disk = Disk::new(fmt!("zvpool{}", index.0), &params, ops)?;
        Ok(Self {
            disk,
            _index: index,
        })
    }

    /// The disk's name (`zvpool0`).
    pub(crate) fn name(&self) -> &CStr {
        self.disk.name()
    }

    /// Major and minor number of the disk.
    pub(crate) fn devt(&self) -> (u32, u32) {
        self.disk.devt()
    }

    /// The backend serving the disk.
    #[allow(dead_code, reason = "API for the pool backend")]
    pub(crate) fn backend(&self) -> &Arc<B> {
        &self.disk.ops().backend
    }

    /// Resizes the open disk from `old` to `new` bytes (multiples of
    /// [`BLOCK_SIZE`]); `apply` resizes the backend. A grow resizes the
    /// backend first, then the disk. A shrink first lowers the disk's
    /// capacity (new requests past the end are refused), then drains the
    /// requests in flight (queue frozen) before the backend drops the tail,
    /// so no request still reaches it; the capacity is restored if `apply`
    /// fails. User space sees a `RESIZE=1` change event either way. Sleeps;
    /// the caller must hold no lock the data path takes.
    pub(crate) fn resize(&self, old: u64, new: u64, apply: impl FnOnce() -> Result) -> Result {
        if new >= old {
            apply()?;
            self.disk.set_capacity(new >> SECTOR_SHIFT);
            return Ok(());
        }
        self.disk.set_capacity(new >> SECTOR_SHIFT);
        let r = {
            let _frozen = self.disk.freeze();
            apply()
        };
        if r.is_err() {
            self.disk.set_capacity(old >> SECTOR_SHIFT);
        }
        r
    }

    /// Removes the disk, or hands it back with `EBUSY` if it is open.
    /// Sleeps until in-flight I/O has completed.
    pub(crate) fn remove(self) -> Result<(), (Self, Error)> {
        match self.disk.claim() {
            Ok(()) => {
                drop(self);
                Ok(())
            }
            Err(e) => Err((self, e)),
        }
    }
}
