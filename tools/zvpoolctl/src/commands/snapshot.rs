// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl snapshot ...`: create, delete, list, rollback. A snapshot is a
//! read-only volume of its pool named `VOL@SNAP` (`POOL/VOL@SNAP` on the
//! command line); clones of snapshots are made by `volume clone`.

use super::volume::{self, active_pool, Kinds, VolInfo, FEATURE_SNAPSHOTS};
use super::{check_name, split_snapshot, split_volume, Ctx, Noun, Undo, UndoStep, Verb};
use crate::abi;
use crate::backend::Obj;
use crate::cli::{Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{Error, Failure, EBUSY, EEXIST, EINVAL, ENOENT};
use crate::output::{Layout, Section, Table, Value};

pub const NOUN: Noun = Noun {
    name: "snapshot",
    help: "Snapshots: read-only point-in-time copies of volumes, named POOL/VOL@SNAP.\n\
           They take no time and no space when made (blocks are shared until the\n\
           volume overwrites them). Clone one into a writable volume with\n\
           'zvpoolctl volume clone'.",
    verbs: &[
        Verb {
            name: "create",
            usage: "create POOL/VOL@SNAP",
            summary: "take a snapshot of a volume",
            help: "Takes snapshot SNAP of volume VOL of the active pool POOL: a read-only\n\
                   volume named VOL@SNAP holding exactly what VOL held at that instant\n\
                   (every write completed before it, none after). It takes the same\n\
                   short time for any volume size and is committed before the command\n\
                   returns. VOL may be enabled and in use. The snapshot is not bound\n\
                   (it gets no block device).\n\
                   configfs: POOL/snapshot <- VOL@SNAP.",
            options: &[],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: create,
        },
        Verb {
            name: "delete",
            usage: "delete POOL/VOL@SNAP",
            summary: "delete a snapshot",
            help: "Deletes snapshot VOL@SNAP of pool POOL: the blocks only it references\n\
                   return to the pool. Its volume is not affected; clones made from it\n\
                   keep their data (their origin becomes -). Fails if the snapshot's\n\
                   device is open.\n\
                   configfs: POOL/VOL@SNAP/enable <- 0 (if enabled); rmdir POOL/VOL@SNAP\n\
                   (if bound; this only unbinds); POOL/delete_volume <- VOL@SNAP. If the\n\
                   last step fails, the snapshot is bound and enabled again.",
            options: &[],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: delete,
        },
        Verb {
            name: "list",
            usage: "list [-Hpj] [-o COL,...] [POOL[/VOL]...]",
            summary: "list snapshots of all pools, of a pool or of a volume",
            help: "Lists snapshots, one line each: of all pools, of the named pools, or of\n\
                   the named volumes (POOL/VOL: the snapshots named VOL@...). USED is the\n\
                   space the snapshot maps, UNIQUE the part only it references (what\n\
                   deleting it frees). JSON: an array under the key \"snapshots\".\n\
                   configfs: POOL/volumes (kind=snapshot lines); POOL/VOL@SNAP/enable,\n\
                   dev, usage of bound snapshots.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
            min_args: 0,
            max_args: None,
            columns: COLUMNS_HELP,
            run: list,
        },
        Verb {
            name: "send",
            usage: "send [-q] [-i VOL@BASE] POOL/VOL@SNAP > STREAM",
            summary: "write a snapshot stream (full or incremental) to stdout",
            help: "Writes snapshot VOL@SNAP as a snapshot stream on stdout (format:\n\
                   Documentation/stream-format.md): a header with the volume size and\n\
                   the snapshot's identity (pool UUID, volume, snapshot), the extents\n\
                   that are not zero (zero runs as holes), each with its CRC32C, and a\n\
                   checksummed trailer. With -i, only what differs from the older\n\
                   snapshot VOL@BASE of the same volume (found by reading both snapshots\n\
                   in full and comparing them block by block). The snapshots' devices\n\
                   are bound and enabled (read-only) for the send and put back after.\n\
                   A progress line is shown on stderr when it is a terminal (-q: none).\n\
                   configfs: POOL/volumes, POOL/status (uuid); mkdir POOL/VOL@SNAP,\n\
                   enable <- 1 (the base's too), undone after.",
            options: &[super::image::OPT_QUIET, super::stream::OPT_INCREMENTAL],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: super::stream::send,
        },
        Verb {
            name: "receive",
            usage: "receive [-q] [--resume] POOL/VOL < STREAM",
            summary: "apply a snapshot stream from stdin and snapshot the result",
            help: "Reads a snapshot stream on stdin. A full stream creates volume VOL\n\
                   (which must not exist) of the stream's size; an incremental one\n\
                   applies to the existing VOL, whose newest snapshot must be the\n\
                   stream's base (VOL@BASE; VOL is resized to the stream's size). Every\n\
                   record is verified before it is written and the trailer before the\n\
                   snapshot VOL@SNAP is taken: a damaged or cut stream is refused, VOL\n\
                   then holds the records before the damage and no snapshot is taken.\n\
                   --resume applies the whole stream again into that VOL, reading it\n\
                   first and writing only what it does not hold yet.\n\
                   configfs: as 'volume create' (full stream) or POOL/VOL/size (an\n\
                   incremental that resizes); the data goes to /dev/zvpoolN; at the end\n\
                   POOL/snapshot <- VOL@SNAP.",
            options: &[super::image::OPT_QUIET, super::stream::OPT_RESUME],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: super::stream::receive,
        },
        Verb {
            name: "rollback",
            usage: "rollback POOL/VOL@SNAP",
            summary: "roll a volume back to one of its snapshots",
            help: "Rolls volume VOL back to its snapshot VOL@SNAP: VOL then holds exactly\n\
                   what the snapshot holds, and has its size. Everything written to VOL\n\
                   since the snapshot is DISCARDED. The snapshot stays. VOL must not be\n\
                   enabled (disable it first: its data would change under its users);\n\
                   a bound, disabled VOL is unbound for the rollback and bound again.\n\
                   configfs: rmdir POOL/VOL (if bound); POOL/rollback <- VOL@SNAP;\n\
                   mkdir POOL/VOL (if it was bound). If the rollback is refused, the\n\
                   directory is restored.",
            options: &[],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: rollback,
        },
    ],
};

const COLUMNS: &[&str] = &[
    "name", "pool", "volume", "snapshot", "origin", "id", "size", "used", "unique", "shared",
    "state", "device", "devt",
];
const DEFAULTS: &[&str] = &["name", "origin", "size", "used", "unique"];
const COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "POOL/VOL@SNAP"),
    ("pool", "pool name"),
    ("volume", "VOL, the volume part of the name"),
    ("snapshot", "SNAP, the snapshot part of the name"),
    (
        "origin",
        "POOL/VOL the snapshot was taken of, - once that volume is deleted",
    ),
    ("id", "volume id in the pool's metadata"),
    ("size", "size (of the volume when the snapshot was taken)"),
    ("used", "space mapped by the snapshot"),
    (
        "unique",
        "mapped space only the snapshot references (what deleting it frees)",
    ),
    (
        "shared",
        "mapped space shared with its volume, clones, snapshots",
    ),
    (
        "state",
        "enabled (read-only device), disabled (bound) or unbound",
    ),
    ("device", "block device node (/dev/zvpoolN) when enabled"),
    ("devt", "MAJOR:MINOR of the block device"),
];

fn row(v: &VolInfo) -> Vec<Value> {
    let (vol, snap) = v.name.split_once('@').unwrap_or((v.name.as_str(), ""));
    vec![
        Value::Text(v.full_name()),
        Value::text(v.pool.as_str()),
        Value::text(vol),
        if snap.is_empty() {
            Value::Null
        } else {
            Value::text(snap)
        },
        v.origin_value(),
        Value::opt_count(v.id),
        Value::opt_bytes(v.size),
        Value::opt_bytes(v.mapped),
        Value::opt_bytes(v.exclusive),
        Value::opt_bytes(v.shared),
        Value::text(v.state),
        v.device.clone().map_or(Value::Null, Value::Text),
        v.devt.clone().map_or(Value::Null, Value::Text),
    ]
}

fn create(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, snap, vol) = split_snapshot(&p.args[0], "snapshot create")?;
    let what = format!("create snapshot {pool}/{snap}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    let meta = ctx.meta_volumes(&po)?;
    if meta.iter().any(|m| m.name == snap) {
        return Err(Failure::new(what, "a snapshot of that name exists").into());
    }
    if !meta.iter().any(|m| m.name == vol) {
        return Err(Failure::new(
            what,
            format!("no such volume {pool}/{vol} (see 'zvpoolctl volume list {pool}')"),
        )
        .into());
    }
    ctx.write(&po, "snapshot", snap).map_err(|e| {
        if e.is(EEXIST) {
            e.fail_because(what.clone(), "a snapshot of that name exists")
        } else if e.is(ENOENT) {
            e.fail_because(what.clone(), &format!("no such volume {pool}/{vol}"))
        } else {
            e.fail(what.clone())
        }
    })?;
    ctx.say(&format!("created snapshot {pool}/{snap}"));
    Ok(())
}

fn delete(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, snap, _) = split_snapshot(&p.args[0], "snapshot delete")?;
    volume::delete_one(ctx, pool, snap, "snapshot")
}

fn list(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "snapshot list";
    let opts = p.output(cmd)?;
    // (pool, volume whose snapshots to show).
    let mut wanted: Vec<(String, Option<String>)> = Vec::new();
    for a in &p.args {
        if a.contains('/') {
            let (pool, vol) = split_volume(a, cmd)?;
            wanted.push((pool.to_string(), Some(vol.to_string())));
        } else {
            check_name("pool", a, cmd)?;
            wanted.push((a.clone(), None));
        }
    }
    ctx.require_driver()?;
    if wanted.is_empty() {
        wanted = ctx
            .children(&Obj::Root)?
            .into_iter()
            .map(|p| (p, None))
            .collect();
    }
    let mut t = Table::new(COLUMNS, DEFAULTS);
    for (pool, vol) in &wanted {
        ctx.require_pool(pool)?;
        let all = volume::infos(ctx, pool)?;
        if let Some(v) = vol {
            let prefix = format!("{v}@");
            let known = all
                .iter()
                .any(|i| &i.name == v || i.name.starts_with(&prefix));
            if !known {
                return Err(Failure::new(
                    format!("volume {pool}/{v}"),
                    format!("no such volume (see 'zvpoolctl volume list {pool}')"),
                )
                .into());
            }
        }
        for i in all.iter().filter(|i| Kinds::SNAPSHOTS.admits(&i.kind)) {
            let of_vol = vol
                .as_ref()
                .is_none_or(|v| i.name.split_once('@').is_some_and(|(n, _)| n == v));
            if of_vol {
                t.push(row(i));
            }
        }
    }
    let doc = vec![Section {
        key: "snapshots",
        title: None,
        layout: Layout::Rows,
        table: t,
    }];
    ctx.print(&doc, &opts, cmd)
}

fn rollback(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, snap, vname) = split_snapshot(&p.args[0], "snapshot rollback")?;
    let what = format!("roll back volume {pool}/{vname} to snapshot {pool}/{snap}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    let meta = ctx.meta_volumes(&po)?;
    if !meta.iter().any(|m| m.name == snap) {
        return Err(Failure::new(
            what,
            format!("no such snapshot (see 'zvpoolctl snapshot list {pool}/{vname}')"),
        )
        .into());
    }
    if !meta.iter().any(|m| m.name == vname) {
        return Err(Failure::new(
            what,
            format!("no such volume {pool}/{vname} (see 'zvpoolctl volume list {pool}')"),
        )
        .into());
    }
    let vol = Obj::volume(pool, vname);
    let bound = ctx.backend.exists(&vol);
    let mut undo = Undo::new();
    if bound {
        if abi::parse_bool(&ctx.read(&vol, "enable")?) {
            let dev = volume::device_node(ctx, &vol).unwrap_or_else(|| "a block device".into());
            let path = format!("{}/{pool}/{vname}/enable", ctx.backend.location());
            return Err(Failure::new(
                what,
                format!(
                    "the volume is enabled as {dev}; disable the volume first \
                     (a rollback changes its data under its users)"
                ),
            )
            .note(format!(
                "hint: once nothing uses {dev} (unmounted, no VM): echo 0 > {path}"
            ))
            .into());
        }
        ctx.rmdir(&vol)
            .map_err(|e| e.fail(format!("unbind volume {vol}")))?;
        undo.push(
            UndoStep::Mkdir(vol.clone()),
            format!("re-bound volume {vol}"),
        );
    }
    if let Err(e) = ctx.write(&po, "rollback", snap) {
        let f = if e.is(EBUSY) {
            e.fail_because(what, "the volume is bound or busy")
        } else if e.is(EINVAL) {
            e.fail_because(what, &format!("{pool}/{snap} is not a snapshot of {vol}"))
        } else {
            e.fail(what)
        };
        return Err(undo.rollback(ctx, f));
    }
    if bound {
        // The rollback is done and cannot be undone; only the binding is
        // missing (the volume is listed as unbound).
        if let Err(e) = ctx.mkdir(&vol) {
            return Err(e
                .fail(format!("bind volume {vol} again"))
                .note(format!(
                    "volume {vol} was rolled back to {pool}/{snap} but is unbound now \
                     (it was bound and disabled before)"
                ))
                .into());
        }
    }
    ctx.say(&format!(
        "rolled back volume {vol} to snapshot {pool}/{snap}"
    ));
    Ok(())
}
