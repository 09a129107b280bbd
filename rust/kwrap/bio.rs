// SPDX-License-Identifier: GPL-2.0
//! Lower-device bios for the data path.
//!
//! A volume request's data goes to the members in bios that carry the
//! request's own pages (no copy): allocated from the pool's private
//! [`BioSet`] with `GFP_NOIO`, built with [`BioBuilder`], submitted, and
//! completed in the lower driver's completion context (often hard IRQ) into a
//! [`BioBatch`]: the completion callback only records the status and, for a
//! zone append, the sector the device chose, then drops a count and wakes
//! the waiter when it reaches zero. It takes no lock and never sleeps.
//!
//! The worker that submitted the bios waits for the batch (in process
//! context) and then hands the outcome to the pool engine. Dropping a batch
//! waits for every bio submitted on it, so the pages and the batch itself
//! (pinned, normally on the worker's stack) outlive their bios.
//!
//! Shaped like the in-flight upstream `Bio` work: a bio is owned until
//! submitted; after `submit` only the completion callback touches it.

use super::{bdev::LowerDev, ffi, metaio::Lent, segment::Segment};
use core::{
    marker::PhantomData,
    pin::Pin,
    ptr::NonNull,
    sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering},
};
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_uint},
    prelude::*,
    sync::Completion,
    types::Opaque,
};

/// Bios a fresh [`BioSet`] keeps in reserve for allocation under memory
/// pressure (the block layer's `BIO_POOL_SIZE`).
const POOL_BIOS: c_uint = 2;

/// A private `bio_set`: a mempool of bios (with inline vectors) that
/// guarantees forward progress of the data path under memory pressure.
///
/// # Invariants
///
/// `inner` was initialised by `bioset_init` and is exited only in `Drop`;
/// it is pinned (the mempools point into it).
pub(crate) struct BioSet {
    inner: Pin<KBox<Opaque<bindings::bio_set>>>,
}

// SAFETY: a bio_set is used through mempools, which do their own locking.
unsafe impl Send for BioSet {}
// SAFETY: as above.
unsafe impl Sync for BioSet {}

impl BioSet {
    /// A bio set with vectors and a reserve of a few bios. Sleeps.
    pub(crate) fn new() -> Result<Self> {
        let inner = KBox::pin(Opaque::<bindings::bio_set>::zeroed(), GFP_KERNEL)?;
        // SAFETY: `inner` is a zeroed, pinned `bio_set` nobody else uses.
        to_result(unsafe {
            bindings::bioset_init(
                inner.get(),
                POOL_BIOS,
                0,
                bindings::BIOSET_NEED_BVECS as c_int,
            )
        })?;
        // INVARIANT: initialised just now; `bioset_init` cleans up after
        // itself when it fails, so only a successful set reaches `Drop`.
        Ok(Self { inner })
    }

    fn as_ptr(&self) -> *mut bindings::bio_set {
        self.inner.get()
    }
}

impl Drop for BioSet {
    fn drop(&mut self) {
        // Every bio from the set was freed: bios are put by `end_io` or
        // `BioBuilder::drop`, and each user waits for its bios (`BioBatch`).
        // SAFETY: initialised (type invariant), and no bio is left (above).
        unsafe { bindings::bioset_exit(self.as_ptr()) };
    }
}

/// What a bio does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BioOp {
    /// Read into the pages.
    Read,
    /// Write the pages at the given sector.
    Write,
    /// Zone append: write the pages into the zone starting at the given
    /// sector, at a place the device chooses (reported on completion).
    ZoneAppend,
    /// Flush the device's volatile write cache (an empty preflush write;
    /// no pages, the sector is ignored).
    Flush,
}

impl BioOp {
    fn to_raw(self) -> bindings::blk_opf_t {
        (match self {
            BioOp::Read => bindings::req_op_REQ_OP_READ,
            BioOp::Write => bindings::req_op_REQ_OP_WRITE,
            BioOp::ZoneAppend => bindings::req_op_REQ_OP_ZONE_APPEND,
            BioOp::Flush => {
                bindings::req_op_REQ_OP_WRITE | 1 << bindings::req_flag_bits___REQ_PREFLUSH
            }
        }) as bindings::blk_opf_t
    }
}

/// The outcome of one part of a [`BioBatch`] (the caller provides the
/// slots): its first error status and the sector its last bio completed at.
pub(crate) struct Slot {
    /// Back pointer, set before a bio of this slot is submitted.
    batch: AtomicPtr<BatchCore>,
    /// First non-zero `blk_status_t` of the slot's bios.
    status: AtomicU8,
    /// `bi_iter.bi_sector` at completion (for a zone append: where the data
    /// landed).
    sector: AtomicU64,
}

impl Slot {
    /// A fresh slot.
    pub(crate) const fn new() -> Self {
        Slot {
            batch: AtomicPtr::new(core::ptr::null_mut()),
            status: AtomicU8::new(0),
            sector: AtomicU64::new(0),
        }
    }
}

impl Slot {
    /// Clears the outcome before the slot is used again.
    pub(super) fn reset(&self) {
        self.status.store(0, Ordering::Relaxed);
        self.sector.store(0, Ordering::Relaxed);
    }

    /// The outcome once every bio of the slot completed (and the caller
    /// synchronised with the last put): `Ok(sector)` with the sector its
    /// last bio completed at, or the first error.
    pub(super) fn result(&self) -> Result<u64> {
        match self.status.load(Ordering::Acquire) {
            0 => Ok(self.sector.load(Ordering::Acquire)),
            // SAFETY: no preconditions.
            st => Err(Error::from_errno(unsafe {
                bindings::blk_status_to_errno(st)
            })),
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// The part of a batch that completions touch: the count of bios in flight
/// (plus one while the owner may still submit) and what the last `put`
/// does. Embedded in a [`BioBatch`] (wakes the owner) or in a request's
/// PDU (`request.rs`: ends the request's asynchronous I/O).
///
/// # Invariants
///
/// `wake` may be called once `pending` dropped to zero, with a pointer to
/// this core derived from a pointer to its container.
pub(crate) struct BatchCore {
    pending: AtomicUsize,
    wake: unsafe fn(*const BatchCore),
}

impl BatchCore {
    /// A core whose last put calls `wake`, with no count (see [`Self::arm`]).
    ///
    /// # Safety
    ///
    /// `wake` must be sound to call from any context (hard IRQ included)
    /// with a pointer to this core inside its container once every count
    /// was dropped.
    pub(crate) const unsafe fn new(wake: unsafe fn(*const BatchCore)) -> Self {
        Self {
            pending: AtomicUsize::new(0),
            wake,
        }
    }

    /// Takes the owner's count before the first bio (a fresh batch).
    pub(super) fn arm(&self) {
        self.pending.store(1, Ordering::Relaxed);
    }

    /// Drops one count; the last one calls `wake`. Any context.
    ///
    /// # Safety
    ///
    /// `core` points to a live core (derived from its container) on which
    /// the caller holds a count, which it gives up.
    pub(super) unsafe fn put(core: *const BatchCore) {
        // AcqRel: the slot results written before a put are visible to the
        // waiter, which synchronises with the last put.
        // SAFETY: live (caller).
        let (last, wake) = unsafe {
            (
                (*core).pending.fetch_sub(1, Ordering::AcqRel) == 1,
                (*core).wake,
            )
        };
        if last {
            // Last access to the core by a completion: `wake` may end what
            // contains it.
            // SAFETY: every count was dropped (type invariant of `new`).
            unsafe { wake(core) };
        }
    }
}

/// Bios submitted together whose outcomes the owner waits for, reported per
/// slot (e.g. one slot per extent of a write plan). `'a` is the borrow of
/// the pages the bios carry and of the slots.
///
/// # Invariants
///
/// Every bio submitted on the batch holds one count of `core.pending` and
/// points to one of `slots` (whose `batch` points to `core`); the owner's
/// count is dropped exactly once (`wait`). Dropping the batch waits until
/// every bio completed, so the pages and slots borrowed for `'a` and the
/// batch itself outlive them. `core.wake` is [`batch_wake`].
#[pin_data(PinnedDrop)]
pub(crate) struct BioBatch<'a> {
    core: BatchCore,
    #[pin]
    done: Completion,
    slots: &'a [Slot],
    waited: bool,
}

/// The last put of a [`BioBatch`]'s core: wakes its owner.
///
/// # Safety
///
/// `core` is the `core` of a live `BioBatch`, pointer derived from the
/// batch's, and every count was dropped.
unsafe fn batch_wake(core: *const BatchCore) {
    // SAFETY: `core` is the field `core` of a live batch (caller).
    let batch = unsafe { kernel::container_of!(core, BioBatch<'static>, core) };
    // Once the owner sees `done` it may free the batch (`complete_all` has
    // released the completion's lock by then).
    // SAFETY: live (caller).
    unsafe { (*batch).done.complete_all() };
}

/// The completion callback of every bio submitted on a batch core.
///
/// # Safety
///
/// Called by the block layer with a bio built by [`BioBuilder`]:
/// `bi_private` points to a live slot whose `batch` pointer is set to a
/// live core, and the bio holds one count of that core.
unsafe extern "C" fn end_io(bio: *mut bindings::bio) {
    // SAFETY: the bio is valid during its completion; `bi_private` is the
    // slot pointer set by `BioBuilder::submit` (function safety section).
    let (slot, status, sector) = unsafe {
        (
            &*(*bio).bi_private.cast::<Slot>(),
            (*bio).bi_status,
            (*bio).bi_iter.bi_sector,
        )
    };
    if status != 0 {
        let _ = slot
            .status
            .compare_exchange(0, status, Ordering::Relaxed, Ordering::Relaxed);
    }
    slot.sector.store(sector, Ordering::Relaxed);
    // SAFETY: our reference from `bio_alloc_bioset`; the bio is not used
    // afterwards.
    unsafe { bindings::bio_put(bio) };
    let core = slot.batch.load(Ordering::Relaxed);
    // SAFETY: set before submission to a core that lives until its last
    // count is dropped (this bio holds one).
    unsafe { BatchCore::put(core) };
}

/// Allocates a bio for `dev` that reports into `slot` of `core`.
///
/// # Safety
///
/// `core` points to a live, armed core (derived from its container) that
/// outlives every bio built on it (its owner waits for them or is only
/// ended by its last put).
pub(super) unsafe fn new_bio<'b, 'a>(
    core: *const BatchCore,
    slot: &'b Slot,
    set: &'b BioSet,
    dev: &'b LowerDev,
    op: BioOp,
    sector: u64,
    nr_vecs: usize,
) -> Result<BioBuilder<'b, 'a>> {
    let nr = nr_vecs.clamp(1, bindings::BIO_MAX_VECS as usize) as u16;
    // SAFETY: no preconditions.
    let gfp = unsafe { ffi::zvpool_gfp_noio() };
    // SAFETY: `dev` is open, `set` initialised (type invariants); `nr`
    // is within `BIO_MAX_VECS`.
    let bio = unsafe { bindings::bio_alloc_bioset(dev.bdev(), nr, op.to_raw(), gfp, set.as_ptr()) };
    let bio = NonNull::new(bio).ok_or(ENOMEM)?;
    // SAFETY: `bio` is new and ours.
    unsafe { (*bio.as_ptr()).bi_iter.bi_sector = sector };
    // INVARIANT: `core` outlives the bio (caller).
    Ok(BioBuilder {
        bio: Some(bio),
        core,
        slot,
        bytes: 0,
        empty_ok: op == BioOp::Flush,
        _p: PhantomData,
    })
}

impl<'a> BioBatch<'a> {
    /// An empty batch reporting into `slots` (pin it, e.g. with
    /// `stack_pin_init!`). The slots are reset.
    pub(crate) fn new(slots: &'a [Slot]) -> impl PinInit<Self> {
        for s in slots {
            s.reset();
        }
        // SAFETY: `batch_wake` only needs the core to be a `BioBatch`'s,
        // which it is; it is IRQ-safe (`complete_all`).
        let core = unsafe { BatchCore::new(batch_wake) };
        core.arm();
        pin_init!(Self {
            core,
            done <- Completion::new(),
            slots,
            waited: false,
        })
    }

    /// The core, with the provenance of the whole batch.
    fn core_ptr(self: Pin<&Self>) -> *const BatchCore {
        let this: *const Self = self.get_ref();
        // SAFETY: `this` points to a live batch.
        unsafe { &raw const (*this).core }
    }

    /// Allocates a bio for `dev` that reports into `slot`: `op` at `sector`
    /// (for a zone append: the zone's first sector), room for `nr_vecs`
    /// page parts (at most `BIO_MAX_VECS`). May sleep (`GFP_NOIO`: never
    /// recurses into I/O, waits for the set's reserve instead of failing).
    pub(crate) fn bio<'b>(
        self: Pin<&'b Self>,
        set: &'b BioSet,
        dev: &'b LowerDev,
        slot: usize,
        op: BioOp,
        sector: u64,
        nr_vecs: usize,
    ) -> Result<BioBuilder<'b, 'a>> {
        let s = self.slots.get(slot).ok_or(EINVAL)?;
        if self.waited {
            return Err(EINVAL);
        }
        // SAFETY: the batch is pinned, armed until `wait`, and waits for
        // its bios before it goes away (type invariant).
        unsafe { new_bio(self.core_ptr(), s, set, dev, op, sector, nr_vecs) }
    }

    /// Waits until every bio submitted so far completed. Process context;
    /// sleeps. After this no bio can be added.
    pub(crate) fn wait(self: Pin<&mut Self>) {
        if self.waited {
            return;
        }
        let core = self.as_ref().core_ptr();
        // SAFETY: `waited` is not structurally pinned.
        unsafe { self.get_unchecked_mut().waited = true };
        // SAFETY: the owner's count, dropped once (`waited`).
        unsafe { BatchCore::put(core) };
        // SAFETY: `core` is this batch's; its `done` is alive.
        let batch = unsafe { kernel::container_of!(core, BioBatch<'static>, core) };
        // SAFETY: the batch is alive (we are its owner).
        unsafe { (*batch).done.wait_for_completion() };
    }

    /// The outcome of `slot` (after [`Self::wait`]): `Ok(sector)` with the
    /// sector its last bio completed at (a zone append's location), or the
    /// first error (`EIO`, `ENOSPC`, ... from the block status).
    pub(crate) fn result(&self, slot: usize) -> Result<u64> {
        if !self.waited {
            return Err(EINVAL);
        }
        self.slots.get(slot).ok_or(EINVAL)?.result()
    }
}

#[pinned_drop]
impl PinnedDrop for BioBatch<'_> {
    fn drop(self: Pin<&mut Self>) {
        // Never leave a bio pointing to a batch that is gone.
        self.wait();
    }
}

/// A bio being built: owned until [`Self::submit`]; put if dropped unsubmitted.
///
/// # Invariants
///
/// `bio` (while `Some`) was allocated by `bio_alloc_bioset` and is owned by
/// `self`; every page added to it is borrowed for `'a`; `core` is a live,
/// armed batch core that outlives the bio once submitted.
pub(crate) struct BioBuilder<'b, 'a> {
    bio: Option<NonNull<bindings::bio>>,
    core: *const BatchCore,
    slot: &'b Slot,
    bytes: usize,
    /// A flush: submitted without pages.
    empty_ok: bool,
    _p: PhantomData<(&'b BioSet, &'a ())>,
}

impl<'a> BioBuilder<'_, 'a> {
    /// Adds `len` bytes at byte `at` of `seg`. Returns `false` (nothing
    /// added) if the bio is full: submit it and continue in a new one.
    pub(crate) fn add(&mut self, seg: &Segment<'a>, at: usize, len: usize) -> Result<bool> {
        let bio = self.bio.ok_or(EINVAL)?;
        let (page, off) = seg.part(at, len)?;
        let len32 = u32::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: `bio` is ours and not submitted (type invariant); `page`,
        // `off` and `len` describe bytes of a page that stays valid for
        // `'a` (`Segment` invariant), which the batch outlives.
        let added = unsafe { bindings::bio_add_page(bio.as_ptr(), page, len32, off) };
        if added as usize == len {
            self.bytes += len;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Adds `len` bytes at byte `at` of the lent bounce buffer `buf` (which
    /// is kmalloc'ed, hence directly mapped). Returns `false` if they do not
    /// all fit (do not submit the bio then: use one with more vectors).
    pub(crate) fn add_bounce(&mut self, buf: Lent<'a>, at: usize, len: usize) -> Result<bool> {
        let bio = self.bio.ok_or(EINVAL)?;
        let part = buf.region(at, len)?;
        let len32 = u32::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: `bio` is ours and not submitted; `part` is `len` bytes of a
        // kmalloc'ed buffer exclusively lent for `'a` (`Lent` invariant),
        // which the batch outlives.
        let added = unsafe { ffi::zvpool_bio_add_kbuf(bio.as_ptr(), part.cast(), len32) };
        if added == len32 {
            self.bytes += len;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Bytes added so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bio, not submitted yet (`None` once it was).
    pub(super) fn raw_bio(&self) -> Option<NonNull<bindings::bio>> {
        self.bio
    }

    /// Submits the bio; its outcome goes to the batch's slot. May sleep
    /// (the lower queue may be full).
    pub(crate) fn submit(mut self) -> Result {
        let bio = self.bio.take().ok_or(EINVAL)?;
        if self.bytes == 0 && !self.empty_ok {
            // SAFETY: ours, never submitted.
            unsafe { bindings::bio_put(bio.as_ptr()) };
            return Err(EINVAL);
        }
        let core = self.core;
        let slot = self.slot;
        slot.batch.store(core.cast_mut(), Ordering::Relaxed);
        // SAFETY: live (type invariant).
        unsafe { (*core).pending.fetch_add(1, Ordering::Relaxed) };
        // SAFETY: the bio is ours; `end_io` gets a slot whose core lives
        // until the count just taken is dropped (type invariant); after
        // `submit_bio` only `end_io` touches the bio.
        unsafe {
            (*bio.as_ptr()).bi_private = core::ptr::from_ref(slot).cast_mut().cast();
            (*bio.as_ptr()).bi_end_io = Some(end_io);
            bindings::submit_bio(bio.as_ptr());
        }
        Ok(())
    }
}

impl Drop for BioBuilder<'_, '_> {
    fn drop(&mut self) {
        if let Some(bio) = self.bio.take() {
            // SAFETY: ours and never submitted (type invariant).
            unsafe { bindings::bio_put(bio.as_ptr()) };
        }
    }
}
