// SPDX-License-Identifier: GPL-2.0
//! A pool volume as the data side of its block device: the pool's
//! [`VolumeBackend`]. Reads and plain writes are served right in the block
//! layer's dispatch context when they can be (`fastpath.rs`); the rest run
//! in process context (the disk's workqueue, see `kwrap/tagset.rs`) inside
//! a `GFP_NOIO` scope, through the pool's data path (`datapath.rs`).

use crate::kwrap::{
    disk::{DiskAttr, DiskParams},
    request::{Op, Request},
};
use crate::lowerio::RqData;
use crate::pool::ActivePool;
use crate::poolreq::PoolReq;
use crate::qos::VolQos;
use crate::volinfo::{kind_origin_of, VolKind};
use crate::volume::{Io, VolumeBackend};
use crate::zvcore::volid;
use core::fmt::Write as _;
use kernel::{prelude::*, str::CString, str::Formatter, sync::Arc};

/// Volume `id` of `pool`, served under the name `name`.
pub(crate) struct PoolVolume {
    pub(crate) pool: Arc<ActivePool>,
    pub(crate) id: u32,
    /// The volume's name: its configfs directory's, which cannot be renamed
    /// and outlives the disk (`volcfg.rs`), so fixed while the disk exists.
    name: CString,
    /// The volume's stable UUID (`zvcore::volid`) from the pool's UUID, the
    /// id and the name: fixed too.
    uuid: volid::Uuid,
    /// The volume's I/O limits (owned with its configfs directory).
    qos: Arc<VolQos>,
}

impl PoolVolume {
    /// Volume `id` named `name` of `pool`, limited by `qos`.
    pub(crate) fn new(pool: Arc<ActivePool>, id: u32, name: CString, qos: Arc<VolQos>) -> Self {
        let uuid = volid::volume_uuid(&pool.uuid, u64::from(id), name.to_bytes());
        Self {
            pool,
            id,
            name,
            uuid,
            qos,
        }
    }

    /// Ends `io` with `r`, counting it when it is requeued for want of
    /// memory (`status` `requeued_nomem`).
    fn end(&self, io: Io<Self>, r: Result) {
        if io.end(r) {
            self.pool
                .waits
                .requeued
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Writes `b` (a name: ASCII) to `w`.
fn write_bytes(w: &mut Formatter<'_>, b: &[u8]) -> core::fmt::Result {
    b.iter().try_for_each(|c| w.write_char(char::from(*c)))
}

/// A request's data as the byte range `0..len` for [`ReqData`].
fn data(io: &Io<PoolVolume>) -> RqData<'_, PoolReq> {
    RqData(io.request())
}

impl VolumeBackend for PoolVolume {
    type RequestData = PoolReq;

    fn show_attr(&self, attr: DiskAttr, w: &mut Formatter<'_>) -> Result {
        match attr {
            DiskAttr::Pool => write_bytes(w, self.pool.name.to_bytes())?,
            DiskAttr::Volume => write_bytes(w, self.name.to_bytes())?,
            DiskAttr::Uuid => write_bytes(w, &volid::format(&self.uuid))?,
            DiskAttr::PoolUuid => write_bytes(w, &volid::format(&self.pool.uuid))?,
            DiskAttr::Id => write!(w, "{}", self.id)?,
            DiskAttr::Serial => write_bytes(w, &volid::serial(&self.uuid))?,
            DiskAttr::Wwid => {
                write_bytes(w, volid::WWID_PREFIX)?;
                write_bytes(w, &volid::format(&self.uuid))?;
            }
            // Promote turns a clone into a volume while its disk exists:
            // read under the engine lock (briefly, no space accounting).
            DiskAttr::Kind | DiskAttr::Origin => {
                let st = self.pool.state.lock();
                let (kind, origin) = kind_origin_of(&st.engine, self.id);
                if attr == DiskAttr::Kind {
                    w.write_str(kind.word())?;
                } else {
                    write_bytes(w, origin.unwrap_or(b""))?;
                }
            }
        }
        w.write_char('\n')?;
        Ok(())
    }

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
        self.end(io, r);
        self.pool.health_kick();
    }

    fn write(&self, io: Io<Self>) {
        let mut rq = io.into_request();
        // A mirrored write the asynchronous path dropped during a checkpoint
        // (`fastpath.rs`): written here, synchronously (paced before).
        if core::mem::take(&mut rq.data_mut().copy_rewrite) {
            rq.data_mut().admitted = false;
        // Paced to GC once: a write let go by the pacing comes back here.
        } else if !core::mem::take(&mut rq.data_mut().admitted) {
            match self.pool.pace_or_hold(self.id, rq) {
                Some(r) => rq = r,
                // Held; written when GC has paid for it (`paced.rs`).
                None => return,
            }
        } else if crate::fastpath_level() >= 2 {
            // Let go by the pacing: submitted without waiting here for
            // its bios (or handed back for the slow path below).
            match self.pool.write_async(self.id, rq) {
                Some(r) => rq = r,
                None => return,
            }
        }
        let io = Io::from_request(rq);
        let r = self
            .pool
            .write(self.id, io.offset(), io.len(), io.is_fua(), &data(&io));
        self.end(io, r);
        self.pool.health_kick();
    }

    fn flush(&self, io: Io<Self>) {
        let r = self.pool.flush();
        self.end(io, r);
        self.pool.health_kick();
    }

    fn discard(&self, io: Io<Self>) {
        let r = self.pool.discard(self.id, io.offset(), io.len());
        self.end(io, r);
        self.pool.health_kick();
    }

    fn queue_fast(&self, io: Io<Self>) -> Option<Io<Self>> {
        // Process context: a failed I/O of the asynchronous path (its
        // completion runs in IRQ context) is reported from here.
        self.pool.health_kick();
        // Every request comes here first: admitted by the volume's limits
        // (`qos.rs`) before either path, or requeued until it is.
        let io = Io::from_request(self.qos.admit(io.into_request())?);
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
        self.end(io, r);
    }
}
