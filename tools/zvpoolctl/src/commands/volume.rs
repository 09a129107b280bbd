// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume ...`: create, clone, promote, delete, resize, list,
//! show; and what the snapshot commands share with them (the volumes of a
//! pool with kind, origin and space, delete).

use super::qos::{N_SETTINGS, SETTINGS};
use super::{
    check_name, split_snapshot, split_volume, split_volume_or_snapshot, Ctx, Noun, Undo, UndoStep,
    Verb,
};
use crate::abi::{self, KeyValues, KIND_CLONE, KIND_SNAPSHOT, KIND_VOLUME};
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{Error, Failure, EBUSY, EEXIST, EINVAL, ENOENT, EROFS};
use crate::output::{Layout, Section, Table, Value};
use crate::size::{self, human};

/// The feature word of snapshots, clones, rollback, promote and online
/// resize in the root's `features`.
pub const FEATURE_SNAPSHOTS: &str = "snapshots";

const OPT_SIZE: OptSpec = OptSpec {
    long: "size",
    short: Some('s'),
    value: Some("SIZE"),
    help: "volume size: bytes or K M G T P (powers of 1024), a multiple of 4096",
};
const OPT_COPIES: OptSpec = OptSpec {
    long: "copies",
    short: None,
    value: Some("N"),
    help: "copies of each block: 1 (default) or 2 (mirrored: one copy on each half of the\n\
           pool's members, so that either half may be lost; needs two members)",
};
const OPT_OFFLINE: OptSpec = OptSpec {
    long: "offline",
    short: None,
    value: None,
    help: "if the kernel cannot resize the enabled volume (kernels without online \
           resize), disable it, resize, enable it",
};
const OPT_TYPE: OptSpec = OptSpec {
    long: "type",
    short: Some('t'),
    value: Some("TYPE,..."),
    help: "kinds to list: volume, clone, snapshot or all (default: volume,clone)",
};
const OPT_SHRINK: OptSpec = OptSpec {
    long: "shrink",
    short: None,
    value: None,
    help: "allow a smaller size (the data beyond the new end is discarded)",
};

pub const NOUN: Noun = Noun {
    name: "volume",
    help: "Volumes: thin-provisioned virtual disks /dev/zvpoolN of a pool, named POOL/VOL.\n\
           Clones (writable volumes made from snapshots) are volumes too; snapshots\n\
           have their own commands ('zvpoolctl snapshot --help').",
    verbs: &[
        Verb {
            name: "create",
            usage: "create --size SIZE [--copies 2] POOL/VOL",
            summary: "create a thin volume and its block device",
            help: "Creates volume VOL in the active pool POOL with the given size and\n\
                   enables it: the block device /dev/zvpoolN appears. Space is allocated\n\
                   on write (thin provisioning). --copies 2 makes a mirrored volume: every\n\
                   block is written twice, on the two halves of the pool's members, and\n\
                   reads go to the other copy when one cannot be read (a member missing);\n\
                   it uses twice the space.\n\
                   configfs: mkdir POOL/VOL; [POOL/VOL/copies <- 2;] POOL/VOL/size <- SIZE\n\
                   (creates the volume in the pool's metadata); POOL/VOL/enable <- 1. If a\n\
                   step fails, the new volume is removed again (rmdir POOL/VOL;\n\
                   POOL/delete_volume <- VOL).",
            options: &[OPT_SIZE, OPT_COPIES],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: create,
        },
        Verb {
            name: "migrate",
            usage: "migrate [-w] [--cancel] [--to WHERE] POOL/VOL",
            summary: "keep a volume's data on chosen members or a class, moving it online",
            help: "Places volume VOL where --to says: members (DEV[,DEV...]: device\n\
                   paths or indexes), 'fast' or 'slow' (the members of that class, see\n\
                   'pool set tiering'), or 'any' (the placement ends) and moves its data there while it stays in use: GC copies\n\
                   each extent that lies elsewhere and updates the block table as the\n\
                   copy lands; blocks shared with snapshots and clones move once, for all\n\
                   of them. The volume's new writes and GC's copies of its blocks stay\n\
                   there until --cancel (or --to any): the placement is kept in the\n\
                   pool's metadata, and after a stop or power cut the assembly walks the\n\
                   volume again. When those members are full, blocks go elsewhere and\n\
                   come back later. Several volumes may be placed; their moves run one\n\
                   after the other. -w waits with a progress line until nothing is left\n\
                   to move.\n\
                   configfs: POOL/migrate <- \"VOL DEV[,DEV...]\" | \"VOL fast|slow|any\" | cancel.",
            options: &[
                super::migrate::OPT_TO,
                super::evacuate::OPT_WAIT,
                super::evacuate::OPT_CANCEL,
            ],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: super::migrate::migrate,
        },
        Verb {
            name: "clone",
            usage: "clone POOL/VOL@SNAP NEWVOL",
            summary: "create a writable volume from a snapshot",
            help: "Creates volume NEWVOL in the pool of snapshot VOL@SNAP, holding what\n\
                   the snapshot holds and sharing all its blocks (no data is copied;\n\
                   writes to either never change the other), and enables it: the block\n\
                   device /dev/zvpoolN appears. NEWVOL is a plain volume name (or\n\
                   POOL/NEWVOL in the same pool). The clone depends on its snapshot's\n\
                   metadata until 'zvpoolctl volume promote'.\n\
                   configfs: POOL/clone <- \"VOL@SNAP NEWVOL\"; mkdir POOL/NEWVOL;\n\
                   POOL/NEWVOL/enable <- 1. If a step fails, the clone is removed again\n\
                   (rmdir POOL/NEWVOL; POOL/delete_volume <- NEWVOL).",
            options: &[],
            min_args: 2,
            max_args: Some(2),
            columns: &[],
            run: clone,
        },
        Verb {
            name: "promote",
            usage: "promote POOL/VOL",
            summary: "make a clone independent of its origin snapshot",
            help: "Flattens volume VOL (a clone): its block table stops sharing metadata\n\
                   with its origin snapshot, so the snapshot can be deleted without\n\
                   affecting it; its kind becomes volume and its origin -. Data blocks\n\
                   stay shared until either side overwrites them. Works while the\n\
                   volume is enabled and in use.\n\
                   configfs: POOL/promote <- VOL.",
            options: &[],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: promote,
        },
        Verb {
            name: "delete",
            usage: "delete POOL/VOL",
            summary: "delete a volume and ALL ITS DATA",
            help: "Deletes volume VOL of the active pool POOL: its block device is removed\n\
                   and ALL ITS DATA IS DESTROYED (its blocks return to the pool; blocks\n\
                   its snapshots or clones share stay with them). There is no\n\
                   confirmation question. Fails if the device is open. Snapshots are\n\
                   deleted with 'zvpoolctl snapshot delete'.\n\
                   configfs: POOL/VOL/enable <- 0 (if enabled); rmdir POOL/VOL (if bound;\n\
                   this only unbinds); POOL/delete_volume <- VOL (this deletes). If the\n\
                   last step fails, the volume is bound and enabled again.",
            options: &[],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: delete,
        },
        Verb {
            name: "resize",
            usage: "resize --size SIZE [--offline] [--shrink] POOL/VOL",
            summary: "change the size of a volume",
            help: "Sets the size of volume VOL. Growing adds unallocated space; shrinking\n\
                   discards the data beyond the new end and needs --shrink (shrink a\n\
                   filesystem on it first). An enabled volume is resized online, even\n\
                   while open: its /dev/zvpoolN changes capacity (grow the filesystem\n\
                   afterwards, e.g. resize2fs). Snapshots are read-only: not resizable.\n\
                   configfs: POOL/VOL/size <- SIZE. Kernels without online resize\n\
                   refuse an enabled volume (EBUSY): without --offline zvpoolctl then\n\
                   stops with \"online resize not supported yet; disable the volume\n\
                   first\"; with --offline it does POOL/VOL/enable <- 0, size <- SIZE,\n\
                   enable <- 1 (the device must not be open), restoring the old state if\n\
                   a step fails. A volume that is not bound is bound for the resize and\n\
                   unbound after.",
            options: &[OPT_SIZE, OPT_OFFLINE, OPT_SHRINK],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: resize,
        },
        Verb {
            name: "import",
            usage: "import [-q] [--format FORMAT] [--follow-backing] POOL/VOL FILE",
            summary: "create a thin volume from a disk image (raw, qcow2)",
            help: "Creates volume VOL of the image's virtual size (rounded up to 4 KiB)\n\
                   as 'volume create' does, then writes the image's data into its block\n\
                   device: only allocated data, and of it only the 4 KiB blocks that are\n\
                   not all zeros (holes, unallocated and zero clusters are skipped: the\n\
                   thin volume reads zeros there and uses no space for them). The format\n\
                   is detected by the file's magic unless --format is given. qcow2:\n\
                   versions 2 and 3; refused before anything is created: backing files\n\
                   (--follow-backing is not implemented yet), encryption, external data\n\
                   files, extended L2 entries, compressed clusters (the first one's guest\n\
                   offset is named). If writing fails, the new volume is deleted again.\n\
                   A progress line is shown on stderr when it is a terminal (-q: none).\n\
                   configfs: as 'volume create' (mkdir POOL/VOL; size; enable <- 1), then\n\
                   the data goes to /dev/zvpoolN; on failure POOL/VOL/enable <- 0,\n\
                   rmdir POOL/VOL, POOL/delete_volume <- VOL.",
            options: &[
                super::image::OPT_QUIET,
                super::image::OPT_FORMAT,
                super::image::OPT_FOLLOW_BACKING,
            ],
            min_args: 2,
            max_args: Some(2),
            columns: &[],
            run: super::image::import,
        },
        Verb {
            name: "export-image",
            usage: "export-image [-q] [--format FORMAT] POOL/VOL[@SNAP] FILE",
            summary: "write a volume or snapshot into an image file (raw, qcow2)",
            help: "Writes the content of volume VOL (or of the snapshot VOL@SNAP: a\n\
                   consistent image of a volume in use) into the new file FILE: raw (the\n\
                   default; blocks of zeros are left as holes, the file is sparse) or\n\
                   qcow2 (version 3, 64 KiB clusters, only clusters that are not all\n\
                   zeros stored). FILE must not exist. A device that is not enabled (a\n\
                   snapshot) is bound and enabled for the export and put back after.\n\
                   configfs: mkdir POOL/NAME and POOL/NAME/enable <- 1 if needed (undone\n\
                   after); the data is read from /dev/zvpoolN.",
            options: &[super::image::OPT_QUIET, super::image::OPT_FORMAT],
            min_args: 2,
            max_args: Some(2),
            columns: &[],
            run: super::image::export_image,
        },
        Verb {
            name: "list",
            usage: "list [-Hpj] [-o COL,...] [-t TYPE,...] [POOL...]",
            summary: "list volumes of all pools (or of the named pools)",
            help: "Lists volumes and clones (with -t snapshot or -t all also snapshots),\n\
                   one line each: the volumes in each pool's metadata and the ones bound\n\
                   in configfs. State: enabled (has a block device), disabled (bound, no\n\
                   device), unbound (in the metadata only). Kind: volume, clone (made\n\
                   from a snapshot, until promoted) or snapshot.\n\
                   configfs: POOL/volumes; POOL/VOL/enable, dev, usage.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON, OPT_TYPE],
            min_args: 0,
            max_args: None,
            columns: COLUMNS_HELP,
            run: list,
        },
        Verb {
            name: "show",
            usage: "show [-Hpj] [-o COL,...] POOL/VOL",
            summary: "show one volume: device node, size, space used",
            help: "Shows volume VOL of pool POOL (or the snapshot POOL/VOL@SNAP) as\n\
                   name/value lines (JSON: an object under the key \"volume\").\n\
                   configfs: POOL/VOL/dev, POOL/VOL/usage, POOL/VOL/enable, POOL/volumes.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
            min_args: 1,
            max_args: Some(1),
            columns: COLUMNS_HELP,
            run: show,
        },
        super::qos::SET,
        super::ident::VERB,
        super::export::EXPORT,
        super::export::UNEXPORT,
        super::export::EXPORTS,
    ],
};

const COLUMNS: &[&str] = &[
    "name",
    "pool",
    "volume",
    "kind",
    "origin",
    "id",
    "size",
    "used",
    "unique",
    "shared",
    "mapped_blocks",
    "state",
    "device",
    "devt",
    "placement",
    "copies",
    "riops",
    "wiops",
    "rbps",
    "wbps",
    "quota",
    "reservation",
];
const DEFAULTS: &[&str] = &["name", "size", "used", "state", "device"];
const COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "POOL/VOL"),
    ("pool", "pool name"),
    ("volume", "volume name"),
    ("kind", "volume, clone or snapshot"),
    (
        "origin",
        "POOL/VOL@SNAP a clone was made from (POOL/VOL of a snapshot), or -",
    ),
    ("id", "volume id in the pool's metadata"),
    ("size", "volume size"),
    ("used", "space mapped (written and not discarded)"),
    (
        "unique",
        "mapped space only this volume references (what deleting it frees)",
    ),
    ("shared", "mapped space shared with snapshots or clones"),
    ("mapped_blocks", "4 KiB blocks mapped"),
    ("state", "enabled, disabled or unbound"),
    ("device", "block device node (/dev/zvpoolN) when enabled"),
    ("devt", "MAJOR:MINOR of the block device"),
    (
        "placement",
        "where its data is kept ('volume migrate'): any, fast, slow or member indexes",
    ),
    (
        "copies",
        "copies of each block: 2 for a mirrored volume (one on each half of the members), else 1",
    ),
    (
        "riops",
        "read I/Os per second limit, 0 unlimited (bound volumes; 'volume set')",
    ),
    ("wiops", "write I/Os per second limit, 0 unlimited"),
    ("rbps", "read bytes per second limit, 0 unlimited"),
    ("wbps", "write bytes per second limit, 0 unlimited"),
    (
        "quota",
        "the most the volume may map, none (0) when not set (bound volumes; 'volume set')",
    ),
    (
        "reservation",
        "space kept for the volume that no other volume may take, or none (0)",
    ),
];

/// Which kinds a listing shows; kinds unknown to this tool count as volumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kinds {
    pub volumes: bool,
    pub clones: bool,
    pub snapshots: bool,
}

impl Kinds {
    /// `volume list` and `pool status`: volumes and clones.
    pub const VOLUMES: Kinds = Kinds {
        volumes: true,
        clones: true,
        snapshots: false,
    };
    pub const SNAPSHOTS: Kinds = Kinds {
        volumes: false,
        clones: false,
        snapshots: true,
    };

    pub fn admits(&self, kind: &str) -> bool {
        match kind {
            KIND_SNAPSHOT => self.snapshots,
            KIND_CLONE => self.clones,
            _ => self.volumes,
        }
    }

    /// `-t volume,clone,snapshot,all`.
    fn parse(list: &str, cmd: &str) -> Result<Kinds, Error> {
        let mut k = Kinds {
            volumes: false,
            clones: false,
            snapshots: false,
        };
        for w in list.split(',').map(str::trim) {
            match w {
                "volume" | "volumes" => k.volumes = true,
                "clone" | "clones" => k.clones = true,
                "snapshot" | "snapshots" => k.snapshots = true,
                "all" => {
                    k = Kinds {
                        volumes: true,
                        clones: true,
                        snapshots: true,
                    }
                }
                _ => {
                    return Err(Error::usage(
                        format!(
                            "unknown type {w:?} for -t; valid types: volume, clone, snapshot, all"
                        ),
                        cmd,
                    ))
                }
            }
        }
        Ok(k)
    }
}

/// What the kernel says about one volume (of any kind) of a pool: its line
/// of `volumes` and, if bound, its `usage`, `enable` and `dev`.
#[derive(Debug, Clone, PartialEq)]
pub struct VolInfo {
    pub pool: String,
    pub name: String,
    pub id: Option<u64>,
    pub size: Option<u64>,
    pub mapped: Option<u64>,
    pub blocks: Option<u64>,
    pub kind: String,
    /// The origin's name in the pool, if any.
    pub origin: Option<String>,
    pub exclusive: Option<u64>,
    pub shared: Option<u64>,
    /// `any`, `fast`, `slow` or member indexes (`None`: a module without
    /// placement policies).
    pub placement: Option<String>,
    /// Copies of each block (`None`: a module without mirrored volumes).
    pub copies: Option<u64>,
    /// `enabled`, `disabled` or `unbound`.
    pub state: &'static str,
    /// `/dev/zvpoolN`.
    pub device: Option<String>,
    pub devt: Option<String>,
    /// What `volume set` sets of a bound volume, in the order of
    /// `qos::SETTINGS`: the I/O limits riops, wiops, rbps, wbps, the quota
    /// and the reservation (0: unlimited, none; `None`: not bound, or a
    /// module without them).
    pub settings: [Option<u64>; N_SETTINGS],
}

impl VolInfo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.pool, self.name)
    }

    /// `POOL/ORIGIN`, or null.
    pub fn origin_value(&self) -> Value {
        self.origin
            .as_ref()
            .map_or(Value::Null, |o| Value::Text(format!("{}/{o}", self.pool)))
    }
}

/// `/dev/<name>` of an enabled volume.
pub fn device_node(ctx: &Ctx<'_>, vol: &Obj) -> Option<String> {
    let dev = ctx.backend.read_attr(vol, "dev").ok()?;
    abi::parse_dev(&dev).map(|(n, _)| format!("/dev/{n}"))
}

/// The volume `name` of `pool` as its `volumes` line and (bound) its files
/// say; the files of a bound volume win.
fn info(
    ctx: &Ctx<'_>,
    pool: &str,
    name: &str,
    meta: Option<&abi::VolumeEntry>,
    bound: bool,
) -> Result<VolInfo, Failure> {
    let default_kind = if name.contains('@') {
        KIND_SNAPSHOT
    } else {
        KIND_VOLUME
    };
    let mut v = VolInfo {
        pool: pool.to_string(),
        name: name.to_string(),
        id: meta.map(|m| m.id),
        size: meta.and_then(|m| m.size),
        mapped: meta.and_then(|m| m.mapped),
        blocks: None,
        kind: meta.map_or(default_kind, |m| m.kind.as_str()).to_string(),
        origin: meta.and_then(|m| m.origin.clone()),
        exclusive: meta.and_then(|m| m.exclusive),
        shared: meta.and_then(|m| m.shared),
        placement: meta.and_then(|m| m.placement.clone()),
        copies: meta.and_then(|m| m.copies),
        state: "unbound",
        device: None,
        devt: None,
        settings: [None; N_SETTINGS],
    };
    if !bound {
        return Ok(v);
    }
    let vol = Obj::volume(pool, name);
    let usage = KeyValues::parse(&ctx.read(&vol, "usage")?);
    let num = |k| {
        usage
            .u64(k)
            .map_err(|e| Failure::new(format!("read {vol}/usage"), e))
    };
    v.id = num("id")?.or(v.id);
    v.size = num("size_bytes")?.or(v.size);
    v.mapped = num("mapped_bytes")?.or(v.mapped);
    v.blocks = num("mapped_blocks")?;
    v.exclusive = num("exclusive_bytes")?.or(v.exclusive);
    v.shared = num("shared_bytes")?.or(v.shared);
    if let Some(k) = usage.get("kind").filter(|k| !k.is_empty()) {
        v.kind = k.to_string();
    }
    if let Some(o) = usage.get("origin") {
        v.origin = abi::parse_origin(o);
    }
    if meta.is_none() {
        // Bound, not (yet) in the metadata, an old kernel: nothing shared.
        v.shared = v.shared.or(v.mapped.map(|_| 0));
        v.exclusive = v.exclusive.or(v.mapped);
    }
    v.settings = super::qos::read_values(ctx, &vol);
    v.state = "disabled";
    if abi::parse_bool(&ctx.read(&vol, "enable")?) {
        v.state = "enabled";
        if let Some((n, d)) = abi::parse_dev(&ctx.read(&vol, "dev")?) {
            v.device = Some(format!("/dev/{n}"));
            v.devt = (!d.is_empty()).then_some(d);
        }
    }
    Ok(v)
}

/// Every volume of the pool (all kinds): metadata order, then the bound
/// directories not (yet) in the metadata.
pub fn infos(ctx: &Ctx<'_>, pool: &str) -> Result<Vec<VolInfo>, Failure> {
    let p = Obj::pool(pool);
    let meta = ctx.meta_volumes(&p)?;
    let bound = ctx.children(&p)?;
    let mut names: Vec<&str> = meta.iter().map(|m| m.name.as_str()).collect();
    for b in &bound {
        if !names.contains(&b.as_str()) {
            names.push(b);
        }
    }
    names
        .into_iter()
        .map(|n| {
            let m = meta.iter().find(|m| m.name == n);
            info(ctx, pool, n, m, bound.iter().any(|b| b == n))
        })
        .collect()
}

/// One volume (any kind), if the pool has it.
pub fn find(ctx: &Ctx<'_>, pool: &str, name: &str) -> Result<Option<VolInfo>, Failure> {
    let p = Obj::pool(pool);
    let meta = ctx.meta_volumes(&p)?;
    let m = meta.iter().find(|m| m.name == name);
    let bound = ctx.backend.exists(&Obj::volume(pool, name));
    if m.is_none() && !bound {
        return Ok(None);
    }
    info(ctx, pool, name, m, bound).map(Some)
}

fn row(v: &VolInfo) -> Vec<Value> {
    let mut row = vec![
        Value::Text(v.full_name()),
        Value::text(v.pool.as_str()),
        Value::text(v.name.as_str()),
        Value::text(v.kind.as_str()),
        v.origin_value(),
        Value::opt_count(v.id),
        Value::opt_bytes(v.size),
        Value::opt_bytes(v.mapped),
        Value::opt_bytes(v.exclusive),
        Value::opt_bytes(v.shared),
        Value::opt_count(v.blocks),
        Value::text(v.state),
        v.device.clone().map_or(Value::Null, Value::Text),
        v.devt.clone().map_or(Value::Null, Value::Text),
        v.placement.clone().map_or(Value::Null, Value::Text),
        Value::opt_count(v.copies),
    ];
    row.extend(SETTINGS.iter().zip(v.settings).map(|(s, l)| s.value(l)));
    row
}

/// The volume table of these pools, of the given kinds (used by `pool
/// status` too).
pub fn table(ctx: &Ctx<'_>, pools: &[String], kinds: Kinds) -> Result<Table, Failure> {
    let mut t = Table::new(COLUMNS, DEFAULTS);
    for p in pools {
        for v in infos(ctx, p)? {
            if kinds.admits(&v.kind) {
                t.push(row(&v));
            }
        }
    }
    Ok(t)
}

/// Parses and checks `--size` (usage errors).
fn size_arg(p: &Parsed, cmd: &str) -> Result<u64, Error> {
    let s = p
        .value("size")
        .ok_or_else(|| Error::usage("--size is required", cmd))?;
    let bytes = size::parse_size(s).map_err(|e| Error::usage(e, cmd))?;
    size::check_volume_size(bytes).map_err(|e| Error::usage(e, cmd))?;
    Ok(bytes)
}

/// The pool of a volume command, which must be active.
pub fn active_pool(ctx: &Ctx<'_>, pool: &str, what: &str) -> Result<Obj, Failure> {
    let p = ctx.require_pool(pool)?;
    if !ctx.pool_active(&p)? {
        return Err(Failure::new(
            what,
            format!("pool {pool} is not active (run 'zvpoolctl pool assemble {pool} DEV...')"),
        ));
    }
    Ok(p)
}

/// Makes sure the volume is bound (mkdir binds a volume of the metadata);
/// fails if the pool has no such volume. Returns whether it bound it.
pub fn bind_existing(
    ctx: &mut Ctx<'_>,
    p: &Obj,
    pool: &str,
    name: &str,
    what: &str,
) -> Result<(Obj, bool), Failure> {
    let vol = Obj::volume(pool, name);
    if ctx.backend.exists(&vol) {
        return Ok((vol, false));
    }
    if !ctx.meta_volumes(p)?.iter().any(|m| m.name == name) {
        return Err(Failure::new(
            what,
            format!("no such volume (see 'zvpoolctl volume list {pool}')"),
        ));
    }
    ctx.mkdir(&vol)
        .map_err(|e| e.fail(format!("bind volume {vol}")))?;
    Ok((vol, true))
}

fn create(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume create";
    let (pool, name) = split_volume(&p.args[0], cmd)?;
    let bytes = size_arg(p, cmd)?;
    let copies = match p.value("copies") {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(v) => return Err(Error::usage(format!("--copies is 1 or 2, not '{v}'"), cmd)),
    };
    let vol = create_volume(ctx, pool, name, bytes, copies)?;
    let dev = device_node(ctx, &vol).unwrap_or_else(|| "-".into());
    let mirrored = if copies == 2 { ", mirrored" } else { "" };
    ctx.say(&format!(
        "created volume {vol}: {}{mirrored}, {dev}",
        human(bytes)
    ));
    Ok(())
}

/// Creates and enables volume `name` of `bytes` (checked by the caller)
/// with `copies` copies of each block (2: mirrored): `volume create`,
/// also used by `volume import` and `snapshot receive`. Rolls back on
/// failure.
pub fn create_volume(
    ctx: &mut Ctx<'_>,
    pool: &str,
    name: &str,
    bytes: u64,
    copies: u8,
) -> Result<Obj, Error> {
    let what = format!("create volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    let vol = Obj::volume(pool, name);
    if ctx.backend.exists(&vol) || ctx.meta_volumes(&po)?.iter().any(|m| m.name == name) {
        return Err(Failure::new(what, "a volume of that name exists").into());
    }
    ctx.mkdir(&vol).map_err(|e| {
        if e.is(EEXIST) {
            e.fail_because(what.clone(), "a volume of that name exists")
        } else {
            e.fail(what.clone())
        }
    })?;
    let mut undo = Undo::new();
    undo.push(
        UndoStep::Rmdir(vol.clone()),
        format!("removed the new volume directory {vol}"),
    );
    if copies != 1 {
        if let Err(e) = ctx.write(&vol, "copies", &copies.to_string()) {
            return Err(undo.rollback(ctx, e.fail(format!("set copies of {vol} to {copies}"))));
        }
    }
    if let Err(e) = ctx.write(&vol, "size", &bytes.to_string()) {
        return Err(undo.rollback(ctx, e.fail(format!("set size of {vol} to {bytes}"))));
    }
    // The first size write created the volume in the pool's metadata.
    undo.replace_last(
        UndoStep::DeleteVolume(pool.to_string(), name.to_string()),
        format!("deleted the new volume {vol}"),
    );
    if let Err(e) = ctx.write(&vol, "enable", "1") {
        return Err(undo.rollback(ctx, e.fail(format!("enable volume {vol}"))));
    }
    Ok(vol)
}

fn delete(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, name) = split_volume(&p.args[0], "volume delete")?;
    delete_one(ctx, pool, name, "volume")
}

/// Deletes a volume or snapshot (`noun`, for messages): disable if enabled,
/// unbind if bound, `delete_volume`; re-bind and re-enable if the last step
/// fails.
pub fn delete_one(ctx: &mut Ctx<'_>, pool: &str, name: &str, noun: &str) -> Result<(), Error> {
    let what = format!("delete {noun} {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    let vol = Obj::volume(pool, name);
    let bound = ctx.backend.exists(&vol);
    let listed = ctx.meta_volumes(&po)?.iter().any(|m| m.name == name);
    if !bound && !listed {
        let list = if noun == "snapshot" {
            "snapshot list"
        } else {
            "volume list"
        };
        return Err(Failure::new(
            what,
            format!("no such {noun} (see 'zvpoolctl {list} {pool}')"),
        )
        .into());
    }
    let mut undo = Undo::new();
    if let Some(dev) = device_node(ctx, &vol) {
        let nqns = super::export::exported_as(ctx, dev.trim_start_matches("/dev/"));
        if !nqns.is_empty() {
            return Err(Failure::new(
                what,
                format!(
                    "the {noun} is exported over NVMe-oF as {} (nvmet holds its device \
                     open); 'zvpoolctl volume unexport {pool}/{name}' first",
                    nqns.join(", ")
                ),
            )
            .into());
        }
    }
    if bound {
        if abi::parse_bool(&ctx.read(&vol, "enable")?) {
            ctx.write(&vol, "enable", "0").map_err(|e| {
                if e.is(EBUSY) {
                    e.fail_because(
                        what.clone(),
                        &format!("the {noun} is in use (its device is open)"),
                    )
                } else {
                    e.fail(format!("disable {noun} {vol}"))
                }
            })?;
            undo.push(
                UndoStep::Write(vol.clone(), "enable", "1".into()),
                format!("re-enabled {noun} {vol}"),
            );
        }
        if let Err(e) = ctx.rmdir(&vol) {
            return Err(undo.rollback(ctx, e.fail(format!("unbind {noun} {vol}"))));
        }
        undo.push(
            UndoStep::Mkdir(vol.clone()),
            format!("re-bound {noun} {vol}"),
        );
    }
    // A bound volume whose size was never written is not in the metadata:
    // unbinding it was all there was to delete.
    if listed {
        if let Err(e) = ctx.write(&po, "delete_volume", name) {
            return Err(undo.rollback(ctx, e.fail(what)));
        }
    }
    ctx.say(&format!("deleted {noun} {vol}"));
    super::qos::forget(ctx, pool, name);
    Ok(())
}

/// `volume clone POOL/VOL@SNAP NEWVOL`.
fn clone(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume clone";
    let (pool, snap, _) = split_snapshot(&p.args[0], cmd)?;
    let new = match p.args[1].split_once('/') {
        Some((np, nv)) => {
            if np != pool {
                return Err(Error::usage(
                    format!(
                        "a clone is created in the pool of its snapshot ({pool}), not in {np:?}"
                    ),
                    cmd,
                ));
            }
            nv
        }
        None => p.args[1].as_str(),
    };
    check_name("volume", new, cmd)?;
    let what = format!("clone {pool}/{snap} as {pool}/{new}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    let meta = ctx.meta_volumes(&po)?;
    if !meta.iter().any(|m| m.name == snap) {
        return Err(Failure::new(
            what,
            format!("no such snapshot {pool}/{snap} (see 'zvpoolctl snapshot list {pool}')"),
        )
        .into());
    }
    let vol = Obj::volume(pool, new);
    if ctx.backend.exists(&vol) || meta.iter().any(|m| m.name == new) {
        return Err(Failure::new(what, format!("a volume named {pool}/{new} exists")).into());
    }
    ctx.write(&po, "clone", &format!("{snap} {new}"))
        .map_err(|e| {
            if e.is(EEXIST) {
                e.fail_because(what.clone(), &format!("a volume named {pool}/{new} exists"))
            } else if e.is(EINVAL) {
                e.fail_because(what.clone(), &format!("{pool}/{snap} cannot be cloned"))
            } else {
                e.fail(what.clone())
            }
        })?;
    let mut undo = Undo::new();
    // DeleteVolume unbinds first if the directory exists.
    undo.push(
        UndoStep::DeleteVolume(pool.to_string(), new.to_string()),
        format!("deleted the new clone {vol}"),
    );
    if let Err(e) = ctx.mkdir(&vol) {
        return Err(undo.rollback(ctx, e.fail(format!("bind clone {vol}"))));
    }
    if let Err(e) = ctx.write(&vol, "enable", "1") {
        return Err(undo.rollback(ctx, e.fail(format!("enable clone {vol}"))));
    }
    let size = ctx
        .read(&vol, "size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or_else(|| "-".to_string(), human);
    let dev = device_node(ctx, &vol).unwrap_or_else(|| "-".into());
    ctx.say(&format!(
        "created clone {vol} of {pool}/{snap}: {size}, {dev}"
    ));
    Ok(())
}

/// `volume promote POOL/VOL`.
fn promote(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, name) = split_volume(&p.args[0], "volume promote")?;
    let what = format!("promote volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    let Some(v) = find(ctx, pool, name)? else {
        return Err(Failure::new(
            what,
            format!("no such volume (see 'zvpoolctl volume list {pool}')"),
        )
        .into());
    };
    ctx.write(&po, "promote", name).map_err(|e| {
        if e.is(ENOENT) {
            e.fail_because(what.clone(), "no such volume")
        } else if e.is(EINVAL) {
            e.fail_because(what.clone(), "the volume cannot be promoted")
        } else {
            e.fail(what.clone())
        }
    })?;
    match &v.origin {
        Some(o) if v.kind == KIND_CLONE => ctx.say(&format!(
            "promoted volume {pool}/{name}: no longer depends on {pool}/{o}"
        )),
        _ => ctx.say(&format!("promoted volume {pool}/{name}")),
    }
    Ok(())
}

fn resize(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume resize";
    let (pool, name) = split_volume_or_snapshot(&p.args[0], cmd)?;
    let bytes = size_arg(p, cmd)?;
    let what = format!("resize volume {pool}/{name}");
    let read_only = |what: String| {
        Error::from(Failure::new(
            what,
            "snapshots are read-only and cannot be resized (clone it: 'zvpoolctl volume clone')",
        ))
    };
    if name.contains('@') {
        return Err(read_only(format!("resize snapshot {pool}/{name}")));
    }
    let po = active_pool(ctx, pool, &what)?;
    if ctx
        .meta_volumes(&po)?
        .iter()
        .any(|m| m.name == name && m.kind == KIND_SNAPSHOT)
    {
        return Err(read_only(what));
    }
    let (vol, bound_now) = bind_existing(ctx, &po, pool, name, &what)?;
    let r = resize_bound(ctx, p, &vol, bytes, &what);
    if bound_now {
        // Leave it unbound, as it was.
        if let Err(e) = ctx.rmdir(&vol) {
            let note = format!("could not unbind {vol} again: {}", e.reason());
            return match r {
                Ok(()) => Err(Failure::new(format!("unbind volume {vol}"), e.reason()).into()),
                Err(Error::Failed(f)) => Err(f.note(note).into()),
                Err(u) => Err(u),
            };
        }
    }
    r
}

/// Resizes a bound volume (offline if allowed and needed).
fn resize_bound(
    ctx: &mut Ctx<'_>,
    p: &Parsed,
    vol: &Obj,
    bytes: u64,
    what: &str,
) -> Result<(), Error> {
    let vol = vol.clone();
    let what = what.to_string();
    let old_text = ctx.read(&vol, "size")?;
    let old: u64 = old_text.trim().parse().map_err(|_| {
        Failure::new(
            format!("read {vol}/size"),
            format!("malformed value {old_text:?}"),
        )
    })?;
    if bytes == old {
        ctx.say(&format!("volume {vol} is already {}", human(bytes)));
        return Ok(());
    }
    if bytes < old && !p.flag("shrink") {
        return Err(Failure::new(
            what,
            format!(
                "shrinking from {} to {} discards the data beyond {}; add --shrink to confirm",
                human(old),
                human(bytes),
                human(bytes)
            ),
        )
        .into());
    }
    let value = bytes.to_string();
    let enabled = abi::parse_bool(&ctx.read(&vol, "enable")?);
    let e = match ctx.write(&vol, "size", &value) {
        Ok(()) => {
            let online = match device_node(ctx, &vol).filter(|_| enabled) {
                Some(dev) => format!(" (online, {dev})"),
                None => String::new(),
            };
            ctx.say(&format!(
                "resized volume {vol}: {} -> {}{online}",
                human(old),
                human(bytes)
            ));
            if let Some(dev) = device_node(ctx, &vol).filter(|_| enabled) {
                let disk = dev.trim_start_matches("/dev/");
                for nqn in super::export::revalidate(ctx, disk, &what)? {
                    ctx.say(&format!("initiators of {nqn} were told the new size"));
                }
            }
            return Ok(());
        }
        Err(e) => e,
    };
    if e.is(EROFS) {
        return Err(e
            .fail_because(what, "the volume is read-only (a snapshot)")
            .into());
    }
    if !(e.is(EBUSY) && enabled) {
        return Err(e.fail(what).into());
    }
    if !p.flag("offline") {
        return Err(e
            .fail_because(
                what,
                "online resize not supported yet; disable the volume first (or use --offline)",
            )
            .into());
    }
    let mut undo = Undo::new();
    ctx.write(&vol, "enable", "0").map_err(|e| {
        if e.is(EBUSY) {
            e.fail_because(
                what.clone(),
                "cannot take the volume offline: it is in use (open)",
            )
        } else {
            e.fail(format!("disable volume {vol}"))
        }
    })?;
    undo.push(
        UndoStep::Write(vol.clone(), "enable", "1".into()),
        format!("re-enabled volume {vol}"),
    );
    if let Err(e) = ctx.write(&vol, "size", &value) {
        return Err(undo.rollback(ctx, e.fail(what)));
    }
    undo.push(
        UndoStep::Write(vol.clone(), "size", old.to_string()),
        format!("restored size {old} of {vol}"),
    );
    if let Err(e) = ctx.write(&vol, "enable", "1") {
        // Undo in reverse: the size first, then enable.
        return Err(undo.rollback(ctx, e.fail(format!("enable volume {vol} after resizing"))));
    }
    ctx.say(&format!(
        "resized volume {vol} offline: {} -> {}",
        human(old),
        human(bytes)
    ));
    Ok(())
}

fn list(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("volume list")?;
    let kinds = match p.value("type") {
        Some(t) => Kinds::parse(t, "volume list")?,
        None => Kinds::VOLUMES,
    };
    ctx.require_driver()?;
    let pools = if p.args.is_empty() {
        ctx.children(&Obj::Root)?
    } else {
        for n in &p.args {
            check_name("pool", n, "volume list")?;
            ctx.require_pool(n)?;
        }
        p.args.clone()
    };
    let doc = vec![Section {
        key: "volumes",
        title: None,
        layout: Layout::Rows,
        table: table(ctx, &pools, kinds)?,
    }];
    ctx.print(&doc, &opts, "volume list")
}

fn show(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("volume show")?;
    let (pool, name) = split_volume_or_snapshot(&p.args[0], "volume show")?;
    ctx.require_pool(pool)?;
    let Some(v) = find(ctx, pool, name)? else {
        let list = if name.contains('@') {
            "snapshot list"
        } else {
            "volume list"
        };
        return Err(Failure::new(
            format!("volume {pool}/{name}"),
            format!("no such volume (see 'zvpoolctl {list} {pool}')"),
        )
        .into());
    };
    let mut t = Table::new(COLUMNS, COLUMNS);
    t.push(row(&v));
    let doc = vec![Section {
        key: "volume",
        title: None,
        layout: Layout::Record,
        table: t,
    }];
    ctx.print(&doc, &opts, "volume show")
}
