// SPDX-License-Identifier: GPL-2.0
//! The holder of a pool's member devices, with the block layer's holder
//! operations: a member that goes away (surprise removal, `del_gendisk` of
//! the device under the pool) is told to its pool through `mark_dead`, as
//! the block layer tells file systems (`fs_holder_ops`).
//!
//! The callback runs in process context with the device's `bd_holder_lock`
//! held: [`DeadHook::device_dead`] must only note the fact and queue work
//! (it must not open or close block devices, nor wait for I/O).

use core::ffi::c_void;
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// What a pool does when one of its devices goes away.
pub(crate) trait DeadHook: Send + Sync + 'static {
    /// The device `dev` (its `dev_t`) opened with this hook's
    /// [`DeadWatch`] is dead (`surprise`: already gone) or about to be
    /// removed. Process context, the device's holder lock held: note it
    /// and queue work; never sleep on I/O or open or close devices.
    fn device_dead(this: &Arc<Self>, dev: u32, surprise: bool);
}

/// The holder of a pool's member devices: the object the block layer calls
/// back through, forwarding to the pool once it is attached.
///
/// # Invariants
///
/// Every device opened with it ([`super::bdev::LowerDev::open`]) holds a
/// reference to it (an `Arc` given up only after the device's claim is
/// released), so the block layer's holder pointer stays valid for as long
/// as it can call back.
#[pin_data]
pub(crate) struct DeadWatch<T: DeadHook> {
    /// The pool told of dead devices (none before it is attached, or once
    /// it stopped: [`Self::detach`] breaks the reference cycle pool ->
    /// member -> watch -> pool).
    #[pin]
    target: Mutex<Option<Arc<T>>>,
}

impl<T: DeadHook> DeadWatch<T> {
    /// The block layer's holder operations of this kind of watch.
    const OPS: bindings::blk_holder_ops = bindings::blk_holder_ops {
        mark_dead: Some(mark_dead::<T>),
        sync: None,
        freeze: None,
        thaw: None,
    };

    /// A watch attached to nothing yet.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                target <- new_mutex!(None),
            }),
            GFP_KERNEL,
        )
    }

    /// From now on dead devices are told to `t`.
    pub(crate) fn attach(&self, t: Arc<T>) {
        *self.target.lock() = Some(t);
    }

    /// Dead devices are no longer told to anyone; returns once no callback
    /// is forwarding to the old target.
    pub(crate) fn detach(&self) -> Option<Arc<T>> {
        self.target.lock().take()
    }

    /// The holder operations to open devices with.
    pub(super) fn ops() -> &'static bindings::blk_holder_ops {
        &Self::OPS
    }
}

/// Keeps a [`DeadWatch`] alive for as long as a device claimed with it is
/// open (`LowerDev`'s last field): a type-erased `Arc`.
///
/// # Invariants
///
/// `ptr` came from `Arc::<DeadWatch<T>>::into_raw` and `release` is
/// `release_arc::<T>` of the same `T`; it is released exactly once, in
/// `Drop`.
pub(crate) struct HolderRef {
    ptr: *const c_void,
    release: unsafe fn(*const c_void),
}

// SAFETY: the referenced watch is `Send + Sync` (its target is, and the
// mutex is), and dropping an `Arc` may happen on any thread.
unsafe impl Send for HolderRef {}
// SAFETY: `HolderRef` has no method that reads through `ptr` on `&self`.
unsafe impl Sync for HolderRef {}

impl HolderRef {
    /// A reference to `w`, and the pointer the block layer keeps as the
    /// holder.
    pub(super) fn new<T: DeadHook>(w: &Arc<DeadWatch<T>>) -> Self {
        let ptr = Arc::into_raw(w.clone()).cast::<c_void>();
        // INVARIANT: `ptr` from `into_raw` of an `Arc<DeadWatch<T>>`,
        // released by the matching `release_arc::<T>`.
        Self {
            ptr,
            release: release_arc::<T>,
        }
    }

    /// The holder pointer given to the block layer.
    pub(super) fn holder(&self) -> *mut c_void {
        self.ptr.cast_mut()
    }
}

impl Drop for HolderRef {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ptr` and `release` match and this
        // is the one release.
        unsafe { (self.release)(self.ptr) };
    }
}

/// Gives back one reference taken by [`HolderRef::new`].
///
/// # Safety
///
/// `ptr` must come from `Arc::<DeadWatch<T>>::into_raw` and not have been
/// given back yet.
unsafe fn release_arc<T: DeadHook>(ptr: *const c_void) {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { Arc::from_raw(ptr.cast::<DeadWatch<T>>()) });
}

/// `blk_holder_ops.mark_dead` of a [`DeadWatch<T>`].
///
/// # Safety
///
/// Called by the block layer with `bdev` live, its `bd_holder_lock` held
/// and `bd_holder` the holder it was claimed with: a `DeadWatch<T>` (these
/// operations are only given together with such a holder, in
/// `LowerDev::open`). Must release `bd_holder_lock`.
unsafe extern "C" fn mark_dead<T: DeadHook>(bdev: *mut bindings::block_device, surprise: bool) {
    // SAFETY: `bdev` is live (caller); `bd_holder` is read under the holder
    // lock, which the caller holds.
    let (holder, dev) = unsafe { ((*bdev).bd_holder, (*bdev).bd_dev) };
    if !holder.is_null() {
        // SAFETY: the holder is a `DeadWatch<T>` (caller), kept alive by
        // the `HolderRef` of the open device, which is released only after
        // the claim: that takes `bd_holder_lock`, held across this call.
        let w = unsafe { &*holder.cast::<DeadWatch<T>>() };
        // The target is cloned out so that the hook runs without the
        // watch's lock.
        let target = w.target.lock().clone();
        if let Some(t) = target {
            T::device_dead(&t, dev, surprise);
        }
    }
    // SAFETY: the holder lock is held on entry (caller) and this callback
    // must release it.
    unsafe { bindings::mutex_unlock(&raw mut (*bdev).bd_holder_lock) };
}
