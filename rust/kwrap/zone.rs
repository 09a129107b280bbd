// SPDX-License-Identifier: GPL-2.0
//! Zone reports and zone management of a lower device.

use super::bdev::LowerDev;
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_uint, c_void},
    prelude::*,
};

/// Type of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZoneType {
    /// Random writes allowed.
    Conventional,
    /// Sequential write required (ZNS, host-managed SMR).
    SeqRequired,
    /// Sequential write preferred (host-aware SMR).
    SeqPreferred,
}

/// Condition of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZoneCond {
    /// Conventional zone: no write pointer.
    NotWp,
    /// Empty.
    Empty,
    /// Implicitly or explicitly open.
    Open,
    /// Closed (active, not open).
    Closed,
    /// Full.
    Full,
    /// Read-only: readable, never writable again.
    ReadOnly,
    /// Offline (or a condition this build does not know): neither.
    Offline,
}

impl ZoneCond {
    /// Read-only or offline: no write, finish or reset will ever succeed.
    pub(crate) fn unusable(self) -> bool {
        matches!(self, Self::ReadOnly | Self::Offline)
    }
}

/// One zone as the device reports it; all values in 512-byte sectors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZoneReport {
    /// First sector of the zone.
    pub(crate) start: u64,
    /// Zone size.
    pub(crate) len: u64,
    /// Write pointer (absolute sector).
    pub(crate) wp: u64,
    /// Usable capacity (<= `len`).
    pub(crate) capacity: u64,
    /// Zone type.
    pub(crate) kind: ZoneType,
    /// Zone condition.
    pub(crate) cond: ZoneCond,
}

impl ZoneReport {
    fn from_raw(z: &bindings::blk_zone) -> Option<Self> {
        let kind = match u32::from(z.type_) {
            bindings::blk_zone_type_BLK_ZONE_TYPE_CONVENTIONAL => ZoneType::Conventional,
            bindings::blk_zone_type_BLK_ZONE_TYPE_SEQWRITE_REQ => ZoneType::SeqRequired,
            bindings::blk_zone_type_BLK_ZONE_TYPE_SEQWRITE_PREF => ZoneType::SeqPreferred,
            _ => return None,
        };
        let cond = match u32::from(z.cond) {
            bindings::blk_zone_cond_BLK_ZONE_COND_NOT_WP => ZoneCond::NotWp,
            bindings::blk_zone_cond_BLK_ZONE_COND_EMPTY => ZoneCond::Empty,
            bindings::blk_zone_cond_BLK_ZONE_COND_IMP_OPEN
            | bindings::blk_zone_cond_BLK_ZONE_COND_EXP_OPEN => ZoneCond::Open,
            bindings::blk_zone_cond_BLK_ZONE_COND_CLOSED
            | bindings::blk_zone_cond_BLK_ZONE_COND_ACTIVE => ZoneCond::Closed,
            bindings::blk_zone_cond_BLK_ZONE_COND_FULL => ZoneCond::Full,
            bindings::blk_zone_cond_BLK_ZONE_COND_READONLY => ZoneCond::ReadOnly,
            _ => ZoneCond::Offline,
        };
        // Devices without a zone capacity report 0: capacity is the size then.
        let capacity = if z.capacity == 0 { z.len } else { z.capacity };
        Some(Self {
            start: z.start,
            len: z.len,
            wp: z.wp,
            capacity,
            kind,
            cond,
        })
    }
}

type ReportFn<'a> = &'a mut dyn FnMut(u32, &ZoneReport) -> Result;

/// Calls `f(index, zone)` for up to `nr` zones of `dev` starting with the zone
/// that contains `sector`. Returns how many zones were reported. Runs in
/// process context and may sleep.
pub(crate) fn report_zones(
    dev: &LowerDev,
    sector: u64,
    nr: u32,
    f: &mut dyn FnMut(u32, &ZoneReport) -> Result,
) -> Result<u32> {
    /// # Safety
    ///
    /// Called by `blkdev_report_zones` only, with `data` as passed below.
    unsafe extern "C" fn trampoline(
        zone: *mut bindings::blk_zone,
        idx: c_uint,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut ReportFn` passed to
        // `blkdev_report_zones` below, alive and unaliased for the whole call;
        // `zone` is valid for the duration of this callback.
        let (f, zone) = unsafe { (&mut *data.cast::<ReportFn<'_>>(), &*zone) };
        match ZoneReport::from_raw(zone) {
            Some(z) => match f(idx, &z) {
                Ok(()) => 0,
                Err(e) => e.to_errno(),
            },
            None => EIO.to_errno(),
        }
    }
    let mut f: ReportFn<'_> = f;
    // SAFETY: `dev.bdev()` is open; the callback and its data outlive the
    // synchronous call.
    let ret = unsafe {
        bindings::blkdev_report_zones(
            dev.bdev(),
            sector,
            nr,
            Some(trampoline),
            core::ptr::from_mut(&mut f).cast(),
        )
    };
    to_result(ret)?;
    u32::try_from(ret).map_err(|_| EIO)
}

/// Zone management operations.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ZoneOp {
    /// Rewind the write pointer to the zone start (data is gone).
    Reset,
    /// Move the write pointer to the zone end (zone becomes full, inactive).
    Finish,
}

/// Applies `op` to the zones covering `nr_sectors` sectors from `sector`
/// (zone aligned). Process context, may sleep.
pub(crate) fn zone_mgmt(dev: &LowerDev, op: ZoneOp, sector: u64, nr_sectors: u64) -> Result {
    let op = match op {
        ZoneOp::Reset => bindings::req_op_REQ_OP_ZONE_RESET,
        ZoneOp::Finish => bindings::req_op_REQ_OP_ZONE_FINISH,
    };
    // SAFETY: `dev.bdev()` is open; the block layer validates the range.
    to_result(unsafe { bindings::blkdev_zone_mgmt(dev.bdev(), op, sector, nr_sectors) })
}

/// Flushes the device's volatile write cache. Process context, may sleep.
pub(crate) fn flush(dev: &LowerDev) -> Result {
    // SAFETY: `dev.bdev()` is open.
    to_result(unsafe { bindings::blkdev_issue_flush(dev.bdev()) })
}
