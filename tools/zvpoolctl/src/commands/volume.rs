// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume ...`: create, delete, resize, list, show.

use super::{check_name, split_volume, Ctx, Noun, Undo, UndoStep, Verb};
use crate::abi::{self, KeyValues};
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{Error, Failure, EBUSY, EEXIST};
use crate::output::{Layout, Section, Table, Value};
use crate::size::{self, human};

const OPT_SIZE: OptSpec = OptSpec {
    long: "size",
    short: Some('s'),
    value: Some("SIZE"),
    help: "volume size: bytes or K M G T P (powers of 1024), a multiple of 4096",
};
const OPT_OFFLINE: OptSpec = OptSpec {
    long: "offline",
    short: None,
    value: None,
    help: "if the kernel cannot resize the enabled volume, disable it, resize, enable it",
};
const OPT_SHRINK: OptSpec = OptSpec {
    long: "shrink",
    short: None,
    value: None,
    help: "allow a smaller size (the data beyond the new end is discarded)",
};

pub const NOUN: Noun = Noun {
    name: "volume",
    help: "Volumes: thin-provisioned virtual disks /dev/zvpoolN of a pool, named POOL/VOL.",
    verbs: &[
        Verb {
            name: "create",
            usage: "create --size SIZE POOL/VOL",
            summary: "create a thin volume and its block device",
            help: "Creates volume VOL in the active pool POOL with the given size and\n\
                   enables it: the block device /dev/zvpoolN appears. Space is allocated\n\
                   on write (thin provisioning).\n\
                   configfs: mkdir POOL/VOL; POOL/VOL/size <- SIZE (creates the volume in\n\
                   the pool's metadata); POOL/VOL/enable <- 1. If a step fails, the new\n\
                   volume is removed again (rmdir POOL/VOL; POOL/delete_volume <- VOL).",
            options: &[OPT_SIZE],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: create,
        },
        Verb {
            name: "delete",
            usage: "delete POOL/VOL",
            summary: "delete a volume and ALL ITS DATA",
            help: "Deletes volume VOL of the active pool POOL: its block device is removed\n\
                   and ALL ITS DATA IS DESTROYED (its blocks return to the pool). There is\n\
                   no confirmation question. Fails if the device is open.\n\
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
                   discards the data beyond the new end and needs --shrink.\n\
                   configfs: POOL/VOL/size <- SIZE. The current kernel resizes disabled\n\
                   volumes only (EBUSY otherwise): without --offline zvpoolctl then stops\n\
                   with \"online resize not supported yet; disable the volume first\"; with\n\
                   --offline it does POOL/VOL/enable <- 0, size <- SIZE, enable <- 1 (the\n\
                   device must not be open), restoring the old state if a step fails.\n\
                   A volume that is not bound is bound for the resize and unbound after.",
            options: &[OPT_SIZE, OPT_OFFLINE, OPT_SHRINK],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: resize,
        },
        Verb {
            name: "list",
            usage: "list [-Hpj] [-o COL,...] [POOL...]",
            summary: "list volumes of all pools (or of the named pools)",
            help: "Lists volumes, one line each: the volumes in each pool's metadata and\n\
                   the ones bound in configfs. State: enabled (has a block device),\n\
                   disabled (bound, no device), unbound (in the metadata only).\n\
                   configfs: POOL/volumes; POOL/VOL/enable, dev, usage.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
            min_args: 0,
            max_args: None,
            columns: COLUMNS_HELP,
            run: list,
        },
        Verb {
            name: "show",
            usage: "show [-Hpj] [-o COL,...] POOL/VOL",
            summary: "show one volume: device node, size, space used",
            help: "Shows volume VOL of pool POOL as name/value lines (JSON: an object under\n\
                   the key \"volume\").\n\
                   configfs: POOL/VOL/dev, POOL/VOL/usage, POOL/VOL/enable, POOL/volumes.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
            min_args: 1,
            max_args: Some(1),
            columns: COLUMNS_HELP,
            run: show,
        },
    ],
};

const COLUMNS: &[&str] = &[
    "name",
    "pool",
    "volume",
    "id",
    "size",
    "used",
    "mapped_blocks",
    "state",
    "device",
    "devt",
];
const DEFAULTS: &[&str] = &["name", "size", "used", "state", "device"];
const COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "POOL/VOL"),
    ("pool", "pool name"),
    ("volume", "volume name"),
    ("id", "volume id in the pool's metadata"),
    ("size", "volume size"),
    ("used", "space mapped (written and not discarded)"),
    ("mapped_blocks", "4 KiB blocks mapped"),
    ("state", "enabled, disabled or unbound"),
    ("device", "block device node (/dev/zvpoolN) when enabled"),
    ("devt", "MAJOR:MINOR of the block device"),
];

/// `/dev/<name>` of an enabled volume.
pub fn device_node(ctx: &Ctx<'_>, vol: &Obj) -> Option<String> {
    let dev = ctx.backend.read_attr(vol, "dev").ok()?;
    abi::parse_dev(&dev).map(|(n, _)| format!("/dev/{n}"))
}

/// One row of the volume table.
fn row(
    ctx: &Ctx<'_>,
    pool: &str,
    name: &str,
    meta: Option<&abi::VolumeEntry>,
    bound: bool,
) -> Result<Vec<Value>, Failure> {
    let (mut id, mut size, mut mapped) = (
        meta.map(|m| m.id),
        meta.and_then(|m| m.size),
        meta.and_then(|m| m.mapped),
    );
    let (mut blocks, mut state, mut device, mut devt) = (None, "unbound", Value::Null, Value::Null);
    if bound {
        let vol = Obj::volume(pool, name);
        let usage = KeyValues::parse(&ctx.read(&vol, "usage")?);
        let num = |k| {
            usage
                .u64(k)
                .map_err(|e| Failure::new(format!("read {vol}/usage"), e))
        };
        id = num("id")?.or(id);
        size = num("size_bytes")?.or(size);
        mapped = num("mapped_bytes")?.or(mapped);
        blocks = num("mapped_blocks")?;
        state = "disabled";
        if abi::parse_bool(&ctx.read(&vol, "enable")?) {
            state = "enabled";
            if let Some((n, d)) = abi::parse_dev(&ctx.read(&vol, "dev")?) {
                device = Value::Text(format!("/dev/{n}"));
                if !d.is_empty() {
                    devt = Value::Text(d);
                }
            }
        }
    }
    Ok(vec![
        Value::Text(format!("{pool}/{name}")),
        Value::text(pool),
        Value::text(name),
        Value::opt_count(id),
        Value::opt_bytes(size),
        Value::opt_bytes(mapped),
        Value::opt_count(blocks),
        Value::text(state),
        device,
        devt,
    ])
}

/// Rows of the volumes of these pools: metadata order, then bound-only ones.
fn rows(ctx: &Ctx<'_>, pool: &str, only: Option<&str>) -> Result<Vec<Vec<Value>>, Failure> {
    let p = Obj::pool(pool);
    let meta = ctx.meta_volumes(&p)?;
    let bound = ctx.children(&p)?;
    let mut names: Vec<&str> = meta.iter().map(|m| m.name.as_str()).collect();
    for b in &bound {
        if !names.contains(&b.as_str()) {
            names.push(b);
        }
    }
    let mut out = Vec::new();
    for n in names.into_iter().filter(|n| only.is_none_or(|o| o == *n)) {
        let m = meta.iter().find(|m| m.name == n);
        out.push(row(ctx, pool, n, m, bound.iter().any(|b| b == n))?);
    }
    Ok(out)
}

/// The volume table of these pools (used by `pool status` too).
pub fn table(ctx: &Ctx<'_>, pools: &[String]) -> Result<Table, Failure> {
    let mut t = Table::new(COLUMNS, DEFAULTS);
    for p in pools {
        for r in rows(ctx, p, None)? {
            t.push(r);
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
fn active_pool(ctx: &Ctx<'_>, pool: &str, what: &str) -> Result<Obj, Failure> {
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
fn bind_existing(
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
    let dev = device_node(ctx, &vol).unwrap_or_else(|| "-".into());
    ctx.say(&format!("created volume {vol}: {}, {dev}", human(bytes)));
    Ok(())
}

fn delete(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, name) = split_volume(&p.args[0], "volume delete")?;
    let what = format!("delete volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    let vol = Obj::volume(pool, name);
    let bound = ctx.backend.exists(&vol);
    let listed = ctx.meta_volumes(&po)?.iter().any(|m| m.name == name);
    if !bound && !listed {
        return Err(Failure::new(
            what,
            format!("no such volume (see 'zvpoolctl volume list {pool}')"),
        )
        .into());
    }
    let mut undo = Undo::new();
    if bound {
        if abi::parse_bool(&ctx.read(&vol, "enable")?) {
            ctx.write(&vol, "enable", "0").map_err(|e| {
                if e.is(EBUSY) {
                    e.fail_because(what.clone(), "the volume is in use (its device is open)")
                } else {
                    e.fail(format!("disable volume {vol}"))
                }
            })?;
            undo.push(
                UndoStep::Write(vol.clone(), "enable", "1".into()),
                format!("re-enabled volume {vol}"),
            );
        }
        if let Err(e) = ctx.rmdir(&vol) {
            return Err(undo.rollback(ctx, e.fail(format!("unbind volume {vol}"))));
        }
        undo.push(
            UndoStep::Mkdir(vol.clone()),
            format!("re-bound volume {vol}"),
        );
    }
    // A bound volume whose size was never written is not in the metadata:
    // unbinding it was all there was to delete.
    if listed {
        if let Err(e) = ctx.write(&po, "delete_volume", name) {
            return Err(undo.rollback(ctx, e.fail(what)));
        }
    }
    ctx.say(&format!("deleted volume {vol}"));
    Ok(())
}

fn resize(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume resize";
    let (pool, name) = split_volume(&p.args[0], cmd)?;
    let bytes = size_arg(p, cmd)?;
    let what = format!("resize volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
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
    let e = match ctx.write(&vol, "size", &value) {
        Ok(()) => {
            ctx.say(&format!(
                "resized volume {vol}: {} -> {}",
                human(old),
                human(bytes)
            ));
            return Ok(());
        }
        Err(e) => e,
    };
    let enabled = abi::parse_bool(&ctx.read(&vol, "enable")?);
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
        table: table(ctx, &pools)?,
    }];
    ctx.print(&doc, &opts, "volume list")
}

fn show(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("volume show")?;
    let (pool, name) = split_volume(&p.args[0], "volume show")?;
    ctx.require_pool(pool)?;
    let mut r = rows(ctx, pool, Some(name))?;
    let Some(row) = r.pop() else {
        return Err(Failure::new(
            format!("volume {pool}/{name}"),
            format!("no such volume (see 'zvpoolctl volume list {pool}')"),
        )
        .into());
    };
    let mut t = Table::new(COLUMNS, COLUMNS);
    t.push(row);
    let doc = vec![Section {
        key: "volume",
        title: None,
        layout: Layout::Record,
        table: t,
    }];
    ctx.print(&doc, &opts, "volume show")
}
