// SPDX-License-Identifier: GPL-2.0
//! Test harness shared by the model and corruption tests: a world of
//! simulated devices, the engine, and a reference model of the volumes.
#![allow(dead_code)]

use crate::sim::*;
use std::cell::Cell;
use std::collections::HashSet;
use zvcore::alloc::{DevState, ZoneInfo};
use zvcore::error::Error;
use zvcore::format::layout::{log_zone, set_meta_zones, LOG_ZONES};
use zvcore::format::{Record, Superblock, INCOMPAT_CHECKPOINT_COPIES, RO_COMPAT_JOURNAL_COPIES};
use zvcore::geom::{DevKind, DeviceGeometry, PoolGeometry, Stream, META_ZONES_PER_DEV};
use zvcore::pool::{
    copy_id, quota::SpaceRules, MetaOp, Pool, PoolConfig, PoolStorage, ReadRun, RelocItem,
    VolEntry, WritePlan, COPY_ID_BIT,
};
use zvcore::recovery::{recover, MetaReader, MISSING};
use zvcore::verify::{bitmap_words, verify, Problem};

pub mod ckpt_edit;
mod commit;
mod crash;
mod members;
mod model;
mod ops;
mod steps;
mod store;
mod verify;
mod vol_ops;
mod world;

pub use members::*;
pub use model::*;
pub use store::*;
pub use world::*;
