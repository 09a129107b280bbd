// SPDX-License-Identifier: GPL-2.0
//! A pool volume as the data side of its block device: the pool's
//! [`VolumeBackend`]. Requests run in process context (the disk's workqueue,
//! see `kwrap/tagset.rs`) inside a `GFP_NOIO` scope, and go through the
//! pool's data path (`datapath.rs`).

use crate::datapath::ReqData;
use crate::kwrap::{disk::DiskParams, segment::Segment};
use crate::pool::ActivePool;
use crate::snapshot::VolKind;
use crate::volume::{Io, VolumeBackend};
use kernel::{prelude::*, sync::Arc};

/// Volume `id` of `pool`.
pub(crate) struct PoolVolume {
    pub(crate) pool: Arc<ActivePool>,
    pub(crate) id: u32,
}

/// A request's data as the byte range `0..len` for [`ReqData`].
struct Data<'a>(&'a Io<PoolVolume>);

impl<'r> ReqData<'r> for Data<'r> {
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
}

impl VolumeBackend for PoolVolume {
    type RequestData = ();

    fn disk_params(&self, p: &mut DiskParams) {
        p.io_limits = self.pool.limits;
        p.max_hw_sectors = self.pool.max_request_sectors();
        // Snapshots, and every volume of a pool assembled read-only, are
        // read-only block devices.
        p.read_only = self.pool.read_only
            || self
                .pool
                .vol_info(self.id)
                .is_some_and(|i| i.kind == VolKind::Snapshot);
    }

    fn read(&self, io: Io<Self>) {
        let r = self.pool.read(self.id, io.offset(), io.len(), &Data(&io));
        io.end(r);
    }

    fn write(&self, io: Io<Self>) {
        let r = self
            .pool
            .write(self.id, io.offset(), io.len(), io.is_fua(), &Data(&io));
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
