// SPDX-License-Identifier: GPL-2.0
//! An append-only vector readable without a lock: a pool's members (a
//! member added online is appended while the data path reads the others).

use core::cell::UnsafeCell;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use kernel::prelude::*;

/// A vector of fixed capacity whose elements, once published, never move
/// or change until it is dropped: readers see a prefix through [`Deref`],
/// without a lock; [`Self::push`] appends one element and publishes it.
///
/// # Invariants
///
/// - `vec`'s buffer was allocated with capacity `cap` at construction and
///   never reallocates (only `push_within_capacity` is used), so `ptr`
///   stays its address;
/// - the first `len` elements of the buffer are initialised and are never
///   written again while `self` lives; `len <= vec.len()`;
/// - `vec` itself (its length field) is only touched by the holder of
///   `pushing`, or through `&mut self`.
pub(crate) struct AppendVec<T> {
    vec: UnsafeCell<KVec<T>>,
    ptr: *const T,
    len: AtomicUsize,
    pushing: AtomicBool,
}

// SAFETY: elements are shared between threads (`Sync` readers through
// `Deref`) and moved in by whichever thread pushes (`Send`); the vector's
// own fields are only changed by the one pusher (`pushing`).
unsafe impl<T: Send + Sync> Sync for AppendVec<T> {}
// SAFETY: owning the vector moves its elements with it.
unsafe impl<T: Send> Send for AppendVec<T> {}

impl<T> AppendVec<T> {
    /// An empty vector that can hold `cap` elements.
    pub(crate) fn with_capacity(cap: usize) -> Result<Self> {
        let vec = KVec::with_capacity(cap, GFP_KERNEL)?;
        let ptr = vec.as_ptr();
        Ok(Self {
            vec: UnsafeCell::new(vec),
            ptr,
            len: AtomicUsize::new(0),
            pushing: AtomicBool::new(false),
        })
    }

    /// Appends `v` and publishes it. [`EBUSY`] while another push runs,
    /// [`ENOSPC`] when the capacity is used up (`v` is dropped).
    pub(crate) fn push(&self, v: T) -> Result {
        if self
            .pushing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(EBUSY);
        }
        // SAFETY: this thread holds `pushing`, so no other thread touches
        // the `KVec` struct; readers only use `ptr` and `len` (invariant).
        let vec = unsafe { &mut *self.vec.get() };
        let r = vec.push_within_capacity(v).map_err(|_| ENOSPC);
        if r.is_ok() {
            // Publishes the element written above.
            self.len.store(vec.len(), Ordering::Release);
        }
        self.pushing.store(false, Ordering::Release);
        r
    }

    /// Appends every element of `items` (initial contents, owned).
    pub(crate) fn extend(&mut self, items: KVec<T>) -> Result {
        for v in items {
            self.push(v)?;
        }
        Ok(())
    }
}

impl<T> Deref for AppendVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        let len = self.len.load(Ordering::Acquire);
        // The `Acquire` load pairs with the `Release` store of `push`.
        // SAFETY: the first `len` elements at `ptr` are set, never written again.
        unsafe { core::slice::from_raw_parts(self.ptr, len) }
    }
}
