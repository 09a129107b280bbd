// SPDX-License-Identifier: GPL-2.0
//! Lower I/O: the one place where planned extents become bios on the
//! members and where their completions become pool addresses. User reads
//! and writes (the worker's batches and the asynchronous path) and GC's
//! copies all go through it.
//!
//! - [`submit_range`] carries a request's own pages ([`ReqData`]);
//! - [`submit_bounce`] carries a kernel buffer (GC's reads and copies);
//! - [`landed_addr`] turns a completed extent into the pool address where
//!   its data landed (a zone append reports its sector).
//!
//! Nothing here takes a lock: callers submit without the engine lock
//! (regular writes into a sequential zone under the write-order lock).

use crate::engine::Engine;
use crate::kwrap::{
    bio::{BioBatch, BioBuilder, BioOp, BioSet},
    metaio::Lent,
    request::Request,
    segment::Segment,
};
use crate::members::{Member, SPB};
use crate::zvcore::format::BLOCK_SIZE;
use kernel::prelude::*;

/// The pool address where a write into `zone` landed: its planned address
/// `addr`, or for a zone append the sector its bio completed at.
pub(crate) fn landed_addr(
    e: &Engine,
    zone: u32,
    append: bool,
    addr: u64,
    done_sector: u64,
) -> Option<u64> {
    if !append {
        return Some(addr);
    }
    let dev = e.geom().zone(zone)?.dev;
    e.geom().dev_addr(dev, done_sector / SPB)
}

/// A volume request's data, as the byte range `0..len`: the parts of its
/// single-page segments, borrowed for `'r` (until the request ends).
pub(crate) trait ReqData<'r> {
    /// Calls `f(segment, offset in segment, length)` for the parts of the
    /// segments that cover bytes `at..at + n`, in order.
    fn parts<F: FnMut(&Segment<'r>, usize, usize) -> Result>(
        &self,
        at: usize,
        n: usize,
        f: F,
    ) -> Result;

    /// Charges lower bio `b` to the cgroup of the request's submitter.
    fn charge(&self, b: &BioBuilder<'_, '_>);
}

/// A request's data for [`ReqData`]: its single-page segments.
pub(crate) struct RqData<'a, D>(pub(crate) &'a Request<D>);

impl<'r, D> ReqData<'r> for RqData<'r, D> {
    fn parts<F: FnMut(&Segment<'r>, usize, usize) -> Result>(
        &self,
        at: usize,
        n: usize,
        mut f: F,
    ) -> Result {
        let end = at.checked_add(n).ok_or(EINVAL)?;
        let mut pos = 0usize;
        self.0.for_each_segment(|seg| {
            let (s, e) = (pos, pos + seg.len());
            pos = e;
            let (lo, hi) = (s.max(at), e.min(end));
            if lo < hi {
                f(seg, lo - s, hi - lo)?;
            }
            Ok(())
        })?;
        if pos < end {
            return Err(EINVAL);
        }
        Ok(())
    }

    fn charge(&self, b: &BioBuilder<'_, '_>) {
        self.0.charge(b);
    }
}

/// The data of `T` from byte `.1` on (the rest of a request).
pub(crate) struct Skip<T>(pub(crate) T, pub(crate) usize);

impl<'r, T: ReqData<'r>> ReqData<'r> for Skip<T> {
    fn parts<F: FnMut(&Segment<'r>, usize, usize) -> Result>(
        &self,
        at: usize,
        n: usize,
        f: F,
    ) -> Result {
        self.0.parts(at.checked_add(self.1).ok_or(EINVAL)?, n, f)
    }

    fn charge(&self, b: &BioBuilder<'_, '_>) {
        self.0.charge(b);
    }
}

/// Adds the request bytes `at..at + n` to bios for `op` on member `m` of
/// pool `pool` (for its log line) from
/// device sector `sector`, and submits them; `bio(sector, parts)` makes a
/// bio (reporting into the caller's slot). Reads and regular writes continue
/// in a new bio when one is full; a zone append must fit one bio (the
/// disk's limits make sure it does). Each bio is charged to the request's
/// cgroup. One implementation for the worker's batches and the
/// asynchronous path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn submit_range<'b, 'a, 'r: 'a>(
    pool: &CStr,
    m: &Member,
    op: BioOp,
    sector: u64,
    at: usize,
    n: usize,
    io: &impl ReqData<'r>,
    mut bio: impl FnMut(u64, usize) -> Result<BioBuilder<'b, 'a>>,
) -> Result {
    let mut parts = 0usize;
    io.parts(at, n, |_, _, _| {
        parts += 1;
        Ok(())
    })?;
    let new = |s: u64, bio: &mut dyn FnMut(u64, usize) -> Result<BioBuilder<'b, 'a>>| {
        let b = bio(s, parts)?;
        io.charge(&b);
        Ok::<_, Error>(b)
    };
    let mut cur = Some(new(sector, &mut bio)?);
    let mut next = sector;
    io.parts(at, n, |seg, so, len| {
        let b = cur.as_mut().ok_or(EINVAL)?;
        if b.add(seg, so, len)? {
            return Ok(());
        }
        if op == BioOp::ZoneAppend {
            pr_err!(
                "{}: zone append of {} bytes does not fit one bio on {}\n",
                pool,
                n,
                m.path.to_str().unwrap_or("?")
            );
            return Err(EIO);
        }
        let full = cur.take().ok_or(EINVAL)?;
        next += (full.bytes() as u64) >> 9;
        full.submit()?;
        let mut b = new(next, &mut bio)?;
        if !b.add(seg, so, len)? {
            return Err(EIO);
        }
        cur = Some(b);
        Ok(())
    })?;
    cur.take().ok_or(EINVAL)?.submit()
}

/// Submits one bio for `op` of the `len` bytes at `at` of `buf` on member
/// `m` from device sector `sector`, reporting into slot `k` of `batch`. The
/// extent must fit one bio: GC items are sized for that
/// (`ActivePool::gc_item_blocks`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn submit_bounce<'a>(
    batch: Pin<&BioBatch<'a>>,
    set: &BioSet,
    m: &Member,
    k: usize,
    op: BioOp,
    sector: u64,
    buf: Lent<'a>,
    at: usize,
    len: usize,
) -> Result {
    // The device stays borrowed until the bio is submitted.
    let dev = m.dev()?;
    let mut bio = batch.bio(set, &dev, k, op, sector, len / BLOCK_SIZE + 1)?;
    if !bio.add_bounce(buf, at, len)? {
        return Err(EIO);
    }
    bio.submit()
}
