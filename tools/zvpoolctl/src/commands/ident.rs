// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume ident DEV`: what a `zvpoolN` disk is, as `KEY=value`
//! lines for udev's `IMPORT{program}` (udev/60-zvpool.rules makes the
//! `/dev/zvpool/POOL/VOLUME` and `/dev/disk/by-id/zvpool-UUID` links from
//! them). Read from the disk's sysfs attributes
//! (`/sys/block/DISK/zvpool/*`, the kernel computes the UUID) when it has
//! them; with older modules found through configfs: the volume directory
//! whose `dev` names the disk; the pool's UUID from its `status`, the
//! volume's id, kind and origin from its `usage`; the stable UUID from
//! those (`uuid::volume_uuid`, the same function as the kernel's).

use super::{Ctx, Verb};
use crate::abi::{self, KeyValues};
use crate::backend::Obj;
use crate::cli::Parsed;
use crate::error::{Error, Failure};
use crate::uuid;

pub const VERB: Verb = Verb {
    name: "ident",
    usage: "ident DEV",
    summary: "print a volume disk's pool, volume, kind and stable UUID (for udev)",
    help: "Prints what the volume disk DEV (zvpoolN or /dev/zvpoolN) is, one KEY=value\n\
           line each, for udev's IMPORT{program} (udev/60-zvpool.rules):\n\
           ZVPOOL_POOL, ZVPOOL_VOLUME (VOL or VOL@SNAP), ZVPOOL_KIND (volume, clone,\n\
           snapshot), ZVPOOL_ORIGIN (a snapshot's volume, a clone's snapshot; only\n\
           when there is one), ZVPOOL_VOLUME_ID and ZVPOOL_UUID: a name-based UUID\n\
           (version 5) of the pool's UUID, the volume's id and its name, the same\n\
           after every reboot, reassembly or import under another pool name.\n\
           Read from /sys/block/DEV/zvpool/ (pool, volume, kind, origin, id,\n\
           pool_uuid, uuid); with older modules from configfs: each POOL/VOL/dev,\n\
           POOL/status (uuid), POOL/VOL/usage.\n\
           Exit 1 if no volume has that disk.",
    options: &[],
    min_args: 1,
    max_args: Some(1),
    columns: &[],
    run: ident,
};

/// The bound volume whose disk is `disk`: (pool, volume).
fn find(ctx: &Ctx<'_>, disk: &str) -> Result<Option<(String, String)>, Failure> {
    for pool in ctx.children(&Obj::Root)? {
        let p = Obj::pool(&pool);
        for vol in ctx.children(&p).unwrap_or_default() {
            let o = Obj::volume(&pool, &vol);
            let Ok(dev) = ctx.backend.read_attr(&o, "dev") else {
                continue;
            };
            if abi::parse_dev(&dev).is_some_and(|(n, _)| n == disk) {
                return Ok(Some((pool, vol)));
            }
        }
    }
    Ok(None)
}

/// What a volume disk is (`volume ident`; `volume export` exports it
/// with this UUID and serial).
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub pool: String,
    /// VOL or VOL@SNAP.
    pub volume: String,
    pub kind: String,
    /// Empty when there is none.
    pub origin: String,
    pub id: u64,
    pub pool_uuid: uuid::Uuid,
    pub uuid: uuid::Uuid,
}

impl Ident {
    /// The `KEY=value` lines of `volume ident`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("ZVPOOL_POOL={}", self.pool),
            format!("ZVPOOL_VOLUME={}", self.volume),
            format!("ZVPOOL_KIND={}", self.kind),
        ];
        if !self.origin.is_empty() {
            lines.push(format!("ZVPOOL_ORIGIN={}", self.origin));
        }
        lines.push(format!("ZVPOOL_VOLUME_ID={}", self.id));
        lines.push(format!(
            "ZVPOOL_POOL_UUID={}",
            uuid::format(&self.pool_uuid)
        ));
        lines.push(format!("ZVPOOL_UUID={}", uuid::format(&self.uuid)));
        lines
    }
}

/// The disk's sysfs identity attributes; `None` when it has none (an older
/// module, not a volume disk) or one is missing or malformed.
fn from_sysfs(ctx: &Ctx<'_>, disk: &str) -> Option<Ident> {
    let a = |attr: &str| ctx.backend.disk_attr(disk, attr).ok();
    let (pool, volume, kind, origin) = (a("pool")?, a("volume")?, a("kind")?, a("origin")?);
    let id: u64 = a("id")?.parse().ok()?;
    let pool_uuid = uuid::parse(&a("pool_uuid")?)?;
    let uuid = uuid::parse(&a("uuid")?)?;
    if pool.is_empty() || volume.is_empty() || kind.is_empty() {
        return None;
    }
    Some(Ident {
        pool,
        volume,
        kind,
        origin,
        id,
        pool_uuid,
        uuid,
    })
}

/// The identity from configfs (older modules): the volume whose `dev` is
/// the disk, the pool's `status`, the volume's `usage`.
fn from_configfs(ctx: &Ctx<'_>, disk: &str) -> Result<Ident, Failure> {
    ctx.require_driver()?;
    let what = format!("identify {disk}");
    let (pool, vol) = find(ctx, disk)?.ok_or_else(|| {
        Failure::new(
            &what,
            "no zvpool volume has this disk (see 'zvpoolctl volume list')",
        )
    })?;
    let st = ctx.status(&Obj::pool(&pool))?;
    let pool_uuid = st
        .get("uuid")
        .and_then(uuid::parse)
        .ok_or_else(|| Failure::new(&what, format!("pool {pool} shows no UUID in its status")))?;
    let usage = KeyValues::parse(&ctx.read(&Obj::volume(&pool, &vol), "usage")?);
    let id = usage.u64("id").ok().flatten().ok_or_else(|| {
        Failure::new(
            &what,
            format!("volume {pool}/{vol} shows no id in its usage"),
        )
    })?;
    // Kernels from before snapshots say no kind: a volume.
    let kind = usage.get("kind").unwrap_or(abi::KIND_VOLUME).to_string();
    let origin = usage
        .get("origin")
        .filter(|o| *o != "-")
        .unwrap_or("")
        .to_string();
    let uuid = uuid::volume_uuid(&pool_uuid, id, &vol);
    Ok(Ident {
        pool,
        volume: vol,
        kind,
        origin,
        id,
        pool_uuid,
        uuid,
    })
}

/// The identity of the volume disk `disk` (`zvpool3`): from sysfs where the
/// module shows it, else from configfs.
pub fn of_disk(ctx: &Ctx<'_>, disk: &str) -> Result<Ident, Failure> {
    match from_sysfs(ctx, disk) {
        Some(i) => Ok(i),
        None => from_configfs(ctx, disk),
    }
}

fn ident(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let arg = &p.args[0];
    let disk = arg.strip_prefix("/dev/").unwrap_or(arg);
    if disk.is_empty() || disk.contains('/') {
        return Err(Error::usage(
            format!("expected a disk name (zvpoolN or /dev/zvpoolN), got {arg:?}"),
            "volume ident",
        ));
    }
    for l in of_disk(ctx, disk)?.lines() {
        ctx.say(&l);
    }
    Ok(())
}
