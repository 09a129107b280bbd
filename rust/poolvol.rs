// SPDX-License-Identifier: GPL-2.0
//! A pool volume as the data side of its block device: the pool's
//! [`VolumeBackend`]. Reads and plain writes are served right in the block
//! layer's dispatch context when they can be (`fastpath.rs`); the rest run
//! in process context (the disk's workqueue, see `kwrap/tagset.rs`) inside
//! a `GFP_NOIO` scope, through the pool's data path (`datapath.rs`).

use crate::kwrap::{
    disk::DiskParams,
    request::{Op, Request},
};
use crate::lowerio::RqData;
use crate::pool::ActivePool;
use crate::poolreq::PoolReq;
use crate::volinfo::VolKind;
use crate::volume::{Io, VolumeBackend};
use kernel::sync::Arc;

/// Volume `id` of `pool`.
pub(crate) struct PoolVolume {
    pub(crate) pool: Arc<ActivePool>,
    pub(crate) id: u32,
}

/// A request's data as the byte range `0..len` for [`ReqData`].
fn data(io: &Io<PoolVolume>) -> RqData<'_, PoolReq> {
    RqData(io.request())
}

impl VolumeBackend for PoolVolume {
    type RequestData = PoolReq;

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
        let r = self.pool.read(self.id, io.offset(), io.len(), &data(&io));
        io.end(r);
    }

    fn write(&self, io: Io<Self>) {
        let r = self
            .pool
            .write(self.id, io.offset(), io.len(), io.is_fua(), &data(&io));
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

    fn queue_fast(&self, io: Io<Self>) -> Option<Io<Self>> {
        let level = crate::fastpath_level();
        let back = match io.op() {
            Some(Op::Read) if level >= 1 => self.pool.read_fast(self.id, io.into_request()),
            Some(Op::Write) if level >= 2 => self.pool.write_fast(self.id, io.into_request()),
            _ => return Some(io),
        };
        back.map(Io::from_request)
    }

    fn io_done(&self, rq: Request<PoolReq>) {
        self.pool.io_done(rq);
    }

    fn write_zeroes(&self, io: Io<Self>) {
        // Unmapped blocks read as zeros.
        let r = self.pool.discard(self.id, io.offset(), io.len());
        io.end(r);
    }
}
