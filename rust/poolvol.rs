// SPDX-License-Identifier: GPL-2.0
//! A pool volume as the data side of its block device: the pool's
//! [`VolumeBackend`]. Requests run in process context (the disk's workqueue,
//! see `kwrap/tagset.rs`) inside a `GFP_NOIO` scope, and go through the pool
//! engine (block-table lookups, log-structured writes, commits).

use crate::kwrap::segment::Segment;
use crate::pool::{ActivePool, DataIo};
use crate::volume::{Io, VolumeBackend};
use kernel::{prelude::*, sync::Arc};

/// Volume `id` of `pool`.
pub(crate) struct PoolVolume {
    pub(crate) pool: Arc<ActivePool>,
    pub(crate) id: u32,
}

/// A request's data as the byte range `0..len` for [`DataIo`].
struct ReqData<'a>(&'a Io<PoolVolume>);

impl ReqData<'_> {
    /// Calls `f(segment, offset in segment, offset in range, length)` for
    /// the parts of the segments that overlap bytes `at..at + n`.
    fn each(
        &self,
        at: usize,
        n: usize,
        mut f: impl FnMut(&Segment<'_>, usize, usize, usize) -> Result,
    ) -> Result {
        let end = at.checked_add(n).ok_or(EINVAL)?;
        let mut pos = 0usize;
        self.0.for_each_segment(|seg| {
            let (s, e) = (pos, pos + seg.len());
            pos = e;
            let (lo, hi) = (s.max(at), e.min(end));
            if lo < hi {
                f(seg, lo - s, lo - at, hi - lo)?;
            }
            Ok(())
        })?;
        if pos < end {
            return Err(EINVAL);
        }
        Ok(())
    }
}

impl DataIo for ReqData<'_> {
    fn copy_out(&self, at: usize, dst: &mut [u8]) -> Result {
        let n = dst.len();
        self.each(at, n, |seg, so, ro, len| {
            let d = dst.get_mut(ro..ro + len).ok_or(EINVAL)?;
            seg.copy_to_slice(so, d)
        })
    }

    fn copy_in(&self, at: usize, src: &[u8]) -> Result {
        self.each(at, src.len(), |seg, so, ro, len| {
            let s = src.get(ro..ro + len).ok_or(EINVAL)?;
            seg.copy_from_slice(so, s)
        })
    }

    fn zero(&self, at: usize, n: usize) -> Result {
        self.each(at, n, |seg, so, _ro, len| seg.zero(so, len))
    }
}

impl VolumeBackend for PoolVolume {
    type RequestData = ();

    fn read(&self, io: Io<Self>) {
        let r = self
            .pool
            .read(self.id, io.offset(), io.len(), &ReqData(&io));
        io.end(r);
    }

    fn write(&self, io: Io<Self>) {
        let r = self
            .pool
            .write(self.id, io.offset(), io.len(), io.is_fua(), &ReqData(&io));
        io.end(r);
    }

    fn flush(&self, io: Io<Self>) {
        let r = self.pool.flush();
        io.end(r);
    }

    fn discard(&self, io: Io<Self>) {
        let r = self.pool.discard(self.id, io.offset(), io.len());
        io.end(r);
    }

    fn write_zeroes(&self, io: Io<Self>) {
        // Unmapped blocks read as zeros.
        let r = self.pool.discard(self.id, io.offset(), io.len());
        io.end(r);
    }
}
