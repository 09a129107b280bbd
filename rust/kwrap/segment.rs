// SPDX-License-Identifier: GPL-2.0
//! One single-page data segment of a block-layer request (a `bio_vec` as
//! `rq_for_each_segment` yields it), with bounds-checked copies to and from
//! it. Handed out by [`super::request::Request::for_each_segment`].

use super::ffi;
use core::marker::PhantomData;
use kernel::{bindings, prelude::*};

/// A single-page segment of a request's data: `len` bytes at `offset` in
/// `page`.
///
/// # Invariants
///
/// `page` is a valid page that stays valid for `'a` (the request that owns it
/// is neither ended nor completed during `'a`), and `offset + len <=
/// PAGE_SIZE`.
pub(crate) struct Segment<'a> {
    page: *mut bindings::page,
    offset: u32,
    len: u32,
    _p: PhantomData<&'a bindings::page>,
}

impl Segment<'_> {
    /// # Safety
    ///
    /// `page` is valid for the lifetime chosen by the caller and `offset +
    /// len <= PAGE_SIZE`.
    pub(super) unsafe fn from_raw(page: *mut bindings::page, offset: u32, len: u32) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            page,
            offset,
            len,
            _p: PhantomData,
        }
    }

    /// Length of the segment in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Byte offset in the page of `n` bytes at `at` in the segment, or
    /// `EINVAL` if they do not fit.
    fn page_offset(&self, at: usize, n: usize) -> Result<usize> {
        match at.checked_add(n) {
            Some(end) if end <= self.len() => Ok(self.offset as usize + at),
            _ => Err(EINVAL),
        }
    }

    /// The page and page offset of `n` bytes at byte `at` of the segment, for
    /// a lower bio (which must not outlive `'a`, see `bio.rs`).
    pub(super) fn part(&self, at: usize, n: usize) -> Result<(*mut bindings::page, u32)> {
        let off = self.page_offset(at, n)?;
        Ok((self.page, u32::try_from(off).map_err(|_| EINVAL)?))
    }

    /// Zeroes `n` bytes of the segment at `at` (a read of unmapped space).
    pub(crate) fn zero(&self, at: usize, n: usize) -> Result {
        let off = self.page_offset(at, n)?;
        // SAFETY: by the type invariant `page` is valid and `off + n` is
        // within the page.
        unsafe { ffi::zvpool_memzero_page(self.page, off, n) };
        Ok(())
    }
}
