// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl pool ...`: create, assemble, add, stop, list, status (`set`
//! and `get` are in `props.rs`, `check` in `check.rs`).

use super::volume;
use super::{check_name, Ctx, Noun, Undo, UndoStep, Verb};
use crate::abi::{self, KeyValues};
use crate::backend::Obj;
use crate::check::{self, Report};
use crate::cli::{OptSpec, Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{
    Error, Failure, OsFail, EACCES, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, EUCLEAN,
};
use crate::output::{Layout, Section, Table, Value};

/// Attribute names of a pool directory.
pub const ATTRS: &[&str] = &[
    "devices",
    "format",
    "enable",
    "status",
    "members",
    "volumes",
    "delete_volume",
    "snapshot",
    "clone",
    "promote",
    "rollback",
    "assemble_mode",
    "table_memory_limit",
    "pool_reserve_pct",
];

const OPT_FORCE: OptSpec = OptSpec {
    long: "force",
    short: Some('f'),
    value: None,
    help: "format devices even if they hold data (DESTROYS the data; format=2)",
};
const OPT_CKPT_ZONES: OptSpec = OptSpec {
    long: "checkpoint-zones",
    short: None,
    value: Some("N"),
    help: "zones of each member in each of the two checkpoint sets (default: chosen from the pool's size)",
};
const OPT_READ_ONLY: OptSpec = OptSpec {
    long: "read-only",
    short: None,
    value: None,
    help: "assemble without writing anything to the members, every volume read-only \
           (also a damaged pool, from the newest state that can be reconstructed)",
};
const OPT_REWIND: OptSpec = OptSpec {
    long: "rewind",
    short: None,
    value: None,
    help: "assemble a damaged pool read-write from its last consistent state, dropping \
           the metadata after the damage (shown first)",
};
pub(super) const OPT_DEGRADED: OptSpec = OptSpec {
    long: "degraded",
    short: None,
    value: None,
    help: "assemble read-write without one member whose device is missing (pools of two \
           members or more: their metadata has two copies); its blocks read as I/O errors",
};
const OPT_ALL: OptSpec = OptSpec {
    long: "all",
    short: Some('a'),
    value: None,
    help: "stop every pool",
};
const OPT_NO_VOLUMES: OptSpec = OptSpec {
    long: "no-volumes",
    short: None,
    value: None,
    help: "do not bind and enable the pool's volumes",
};

pub const NOUN: Noun = Noun {
    name: "pool",
    help: "Pools: sets of zoned devices (members) whose space the volumes share.",
    verbs: &[
        Verb {
            name: "create",
            usage: "create [-f] [--checkpoint-zones N] NAME DEV...",
            summary: "format blank devices as a new pool and activate it",
            help: "Defines pool NAME with the devices DEV... as members, formats them and\n\
                   activates the pool. Every device must be blank (all sequential zones\n\
                   empty, no zvpool superblock) unless --force is given, which formats\n\
                   devices holding data and DESTROYS that data.\n\
                   configfs: mkdir NAME; NAME/devices <- DEV (each); NAME/format <- 1\n\
                   (2 with --force); NAME/enable <- 1. If a step fails, the pool\n\
                   directory is removed again.\n\
                   --checkpoint-zones N writes NAME/checkpoint_zones <- N before format:\n\
                   the metadata zones a member reserves for checkpoints (2 x N), fixed for\n\
                   the pool's life. By default the kernel chooses N so that the block\n\
                   tables of the whole pool, written at random, fit twice over.",
            options: &[OPT_FORCE, OPT_CKPT_ZONES],
            min_args: 2,
            max_args: None,
            columns: &[],
            run: create,
        },
        Verb {
            name: "assemble",
            usage: "assemble [--no-volumes] [--read-only] [--rewind] [--degraded] NAME DEV...",
            summary: "activate an existing pool (after a reboot) and its volumes",
            help: "Activates the existing pool NAME from the metadata on its members DEV...\n\
                   (all of them), then binds and enables every volume and clone the pool\n\
                   holds, creating /dev/zvpoolN for each (unless --no-volumes); snapshots\n\
                   stay unbound. The volumes' I/O limits and NVMe-oF exports recorded in\n\
                   the pool cache are set again, the exports once the volumes are enabled\n\
                   (as 'volume export' makes them; one already in place is kept); one\n\
                   that cannot be made is a warning naming the volume and the reason.\n\
                   configfs: mkdir NAME; NAME/devices <- DEV (each); NAME/format <- 0;\n\
                   NAME/enable <- 1; for each volume of NAME/volumes that is not a\n\
                   snapshot: mkdir NAME/VOL,\n\
                   NAME/VOL/enable <- 1. If a step fails, the volumes enabled so far are\n\
                   disabled and unbound, the pool is stopped and its directory removed\n\
                   (no data is deleted).\n\
                   --read-only, --rewind and --degraded (one of them) write\n\
                   NAME/assemble_mode <- read-only, rewind or degraded before enable\n\
                   (kernels with the features read-only-assembly, rewind and\n\
                   degraded-assembly). --rewind first runs 'pool check' on DEV... and\n\
                   shows what will be lost. --degraded (and --read-only) accept one\n\
                   member missing from DEV.... If the kernel refuses because the\n\
                   metadata is damaged (EUCLEAN) or a member is missing (ENODEV), its\n\
                   reasons are shown with what to do next.",
            options: &[OPT_NO_VOLUMES, OPT_READ_ONLY, OPT_REWIND, OPT_DEGRADED],
            min_args: 2,
            max_args: None,
            columns: &[],
            run: assemble,
        },
        Verb {
            name: "add",
            usage: "add NAME DEV",
            summary: "add a device to a pool",
            help: "Adds the device DEV as a member of pool NAME.\n\
                   configfs: NAME/devices <- DEV. An active pool grows online, with\n\
                   I/O going on: DEV's written zones are reset and it is committed\n\
                   as a new member; its space is usable when the command returns.\n\
                   The pool cache is updated. Older kernels refuse an active pool\n\
                   with EBUSY; zvpoolctl then says so.",
            options: &[],
            min_args: 2,
            max_args: Some(2),
            columns: &[],
            run: add,
        },
        Verb {
            name: "scrub",
            usage: "scrub [-w] [--stop] [--rate MIBS] NAME",
            summary: "read every written block of a pool, in the background",
            help: "Starts a pass over active pool NAME that reads every written block of\n\
                   its data zones in the background (after GC's work), so that blocks\n\
                   a member can no longer read are found before a VM needs them: each\n\
                   run of them counts as the member's read errors ('pool health': the\n\
                   member turns degraded) and is logged with its device and sector.\n\
                   Zones being written, offline zones and missing members are skipped\n\
                   and counted. Then it reads back every copy of the newest checkpoint's\n\
                   blocks: a damaged one is replaced at once by a full checkpoint. A\n\
                   pass under way starts again. -w waits for the end of the pass and\n\
                   fails if it found unreadable or damaged blocks; --stop stops it;\n\
                   --rate MIBS reads at most MIBS MiB/s (GC's work still goes first).\n\
                   Not kept across an assembly. The pool has no data checksums and no\n\
                   second copy of data yet: for data, the pass finds what cannot be\n\
                   read, it does not repair. configfs: NAME/scrub <- start [MIBS] | stop.",
            options: &[
                super::scrub::OPT_WAIT,
                super::scrub::OPT_STOP,
                super::scrub::OPT_RATE,
            ],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: super::scrub::scrub,
        },
        Verb {
            name: "evacuate",
            usage: "evacuate [-w] [--cancel] NAME [DEV]",
            summary: "move a member's data to the other members, online",
            help: "Moves the live data of member DEV (its path or index) of active pool\n\
                   NAME to the other members while volumes stay in use: the member\n\
                   takes no new data, and GC moves its blocks (block tables updated as\n\
                   each extent lands). Refused when the other members cannot hold its\n\
                   data. -w waits with a progress line until the member holds no live\n\
                   data; the member then stays out of use until --cancel, or until\n\
                   'pool remove' takes it out of the pool. Kept in the pool's metadata:\n\
                   after a stop or power cut the assembly resumes it.\n\
                   configfs: NAME/evacuate <- DEV | cancel.",
            options: &[super::evacuate::OPT_WAIT, super::evacuate::OPT_CANCEL],
            min_args: 1,
            max_args: Some(2),
            columns: &[],
            run: super::evacuate::evacuate,
        },
        Verb {
            name: "replace",
            usage: "replace [-w] NAME OLD NEW",
            summary: "add a device, move a member's data to it and remove the member, online",
            help: "Adds device NEW to active pool NAME (as 'pool add'), then evacuates\n\
                   member OLD (its path or index; as 'pool evacuate'). -w waits with a\n\
                   progress line until OLD holds no live data, then removes it from the\n\
                   pool (as 'pool remove'); without -w, run 'pool remove' once it is\n\
                   evacuated.\n\
                   configfs: NAME/devices <- NEW; NAME/evacuate <- OLD; NAME/remove <- OLD.",
            options: &[super::evacuate::OPT_WAIT],
            min_args: 3,
            max_args: Some(3),
            columns: &[],
            run: super::evacuate::replace,
        },
        Verb {
            name: "remove",
            usage: "remove [-f] NAME DEV",
            summary: "take an evacuated (or missing) member out of a pool, online",
            help: "Removes member DEV (its path or index) from active pool NAME. The\n\
                   member must hold no live data ('pool evacuate -w' first), or be\n\
                   missing (its device gone) and -f given: its blocks are then lost and\n\
                   read as I/O errors until overwritten. The pool's metadata must have\n\
                   two copies and two members must stay. The member keeps its index\n\
                   (shown with state 'removed'); its written zones are reset so that no\n\
                   scan offers it again, then its device is closed (usable elsewhere at\n\
                   once; with -f a missing member's stays open until the pool stops).\n\
                   The pool cache is updated. Crash-safe: after a power cut the pool\n\
                   assembles with the member or without it, never half-way.\n\
                   configfs: NAME/remove <- DEV (force DEV with -f).",
            options: &[super::evacuate::OPT_FORCE_REMOVE],
            min_args: 2,
            max_args: Some(2),
            columns: &[],
            run: super::evacuate::remove,
        },
        Verb {
            name: "stop",
            usage: "stop [-a] [NAME]",
            summary: "deactivate a pool and forget its definition until assembled again",
            help: "Disables every volume of pool NAME (removing /dev/zvpoolN), stops the\n\
                   pool (its metadata is committed and the members are closed) and\n\
                   removes its configfs directories. Data is kept: 'zvpoolctl pool\n\
                   assemble' brings the pool back. Fails without changing anything if a\n\
                   volume is open (in use).\n\
                   configfs: NAME/VOL/enable <- 0 (each enabled volume); rmdir NAME/VOL\n\
                   (each; this only unbinds); NAME/enable <- 0 (if active); rmdir NAME.\n\
                   If a step before the pool is stopped fails, the volumes are bound and\n\
                   enabled again. -a stops every pool (each reported; exit 1 if any\n\
                   failed): what the boot unit runs at shutdown.",
            options: &[OPT_ALL],
            min_args: 0,
            max_args: Some(1),
            columns: &[],
            run: stop,
        },
        Verb {
            name: "list",
            usage: "list [-Hpj] [-o COL,...] [NAME...]",
            summary: "list pools with state, health and space",
            help: "Lists the pools (or the named ones), one line each.\n\
                   configfs: the directories under the root; NAME/status, NAME/members.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
            min_args: 0,
            max_args: None,
            columns: LIST_COLUMNS_HELP,
            run: list,
        },
        Verb {
            name: "status",
            usage: "status [-Hpj] NAME",
            summary: "show a pool in detail: members, zones, errors, GC, volumes",
            help: "Shows pool NAME: state, health, space (and the part of it shared by\n\
                   snapshots and clones), what volumes may still map (available: free\n\
                   less the unused parts of reservations, reserved, and what is held\n\
                   back: the pool reserve and GC's room, held_back) and the writes\n\
                   quotas and reservations refused (quota_refusals, reserve_refusals;\n\
                   see 'volume set', 'pool set'), zones, garbage collection and write\n\
                   amplification counters, the memory the block tables use, their\n\
                   limit, the allocations it refused and those that failed for want\n\
                   of memory (table_memory, table_memory_limit, table_memory_refused,\n\
                   table_alloc_failures; see 'pool set'); then one\n\
                   line per member (zone usage, read and write errors, state); then\n\
                   its volumes and clones (as 'volume list'; snapshots: 'zvpoolctl\n\
                   snapshot list'). With -H the three sections are separated by an\n\
                   empty line. JSON: an object with the keys \"pool\", \"members\" and\n\
                   \"volumes\".\n\
                   configfs: NAME/status, NAME/members, NAME/volumes and each volume's\n\
                   enable, dev, usage.",
            options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_JSON],
            min_args: 1,
            max_args: Some(1),
            columns: &[],
            run: status,
        },
        super::health::VERB,
        super::events::VERB,
        super::props::SET,
        super::props::GET,
        super::check::VERB,
        super::import::VERB,
    ],
};

const LIST_COLUMNS: &[&str] = &[
    "name",
    "state",
    "health",
    "size",
    "used",
    "free",
    "cap",
    "members",
    "volumes",
    "wa",
    "uuid",
    "zones",
    "zones_free",
    "snapshots",
    "shared",
    "available",
    "reserved",
];
const LIST_DEFAULTS: &[&str] = &[
    "name", "state", "health", "size", "used", "free", "cap", "members", "volumes",
];
const LIST_COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "pool name"),
    ("state", "active or inactive"),
    (
        "health",
        "ok, degraded (a member is not ok), failed (metadata cannot be committed), - (inactive)",
    ),
    (
        "size",
        "data capacity (zone capacity of all members minus metadata zones)",
    ),
    ("used", "live data"),
    ("free", "free space"),
    ("cap", "used / size in percent"),
    ("members", "number of member devices"),
    ("volumes", "number of volumes"),
    (
        "wa",
        "write amplification ((user + GC writes) / user writes)",
    ),
    ("uuid", "pool UUID"),
    ("zones", "zones in total"),
    ("zones_free", "free (empty) zones"),
    ("snapshots", "number of snapshots (counted in volumes too)"),
    (
        "shared",
        "live data shared by volumes, snapshots and clones (counted once in used)",
    ),
    (
        "available",
        "what a volume without a reservation may still newly map (free less reservations, \
         pool reserve and GC's room)",
    ),
    ("reserved", "unused parts of the volumes' reservations"),
];

const STATUS_COLUMNS: &[&str] = &[
    "name",
    "state",
    "health",
    "uuid",
    "members",
    "size",
    "used",
    "free",
    "cap",
    "shared",
    "available",
    "reserved",
    "held_back",
    "pool_reserve_pct",
    "quota_refusals",
    "reserve_refusals",
    "zones_total",
    "zones_free",
    "zones_gc_reserve",
    "volumes",
    "snapshots",
    "user_blocks_written",
    "gc_blocks_written",
    "write_amplification",
    "zones_reset",
    "gc_runs",
    "throttled_ms",
    "journal_blocks",
    "checkpoints",
    "checkpoint_blocks",
    "delta_checkpoints",
    "checkpoint_capacity",
    "metadata_copies",
    "metadata_full",
    "table_nodes",
    "table_memory",
    "table_memory_limit",
    "table_memory_refused",
    "table_alloc_failures",
    "read_only",
    "rewinds",
    "last_rewind",
    "damage",
    "scrub",
];

const MEMBER_COLUMNS: &[&str] = &[
    "index",
    "path",
    "kind",
    "state",
    "zones",
    "free_zones",
    "use",
    "zone_size",
    "zone_cap",
    "max_open",
    "max_active",
    "read_errors",
    "write_errors",
    "class",
    "used",
];

/// Checks DEV arguments: non-empty, no duplicates.
pub fn check_devices<'a>(devs: &'a [String], cmd: &str) -> Result<&'a [String], Error> {
    for (i, d) in devs.iter().enumerate() {
        if d.is_empty() || d.contains('\n') {
            return Err(Error::usage(format!("invalid device path {d:?}"), cmd));
        }
        if devs[..i].contains(d) {
            return Err(Error::usage(format!("device {d} given twice"), cmd));
        }
    }
    Ok(devs)
}

/// mkdir POOL and write its members; the undo log gets the rmdir.
fn define(
    ctx: &mut Ctx<'_>,
    name: &str,
    devs: &[String],
    undo: &mut Undo,
    what: &str,
) -> Result<Obj, Error> {
    ctx.require_driver()?;
    let pool = Obj::pool(name);
    if ctx.backend.exists(&pool) {
        return Err(Failure::new(
            format!("{what} pool {name}"),
            "a pool of that name is already defined (see 'zvpoolctl pool list')",
        )
        .into());
    }
    ctx.mkdir(&pool).map_err(|e| {
        if e.is(EEXIST) {
            e.fail_because(
                format!("{what} pool {name}"),
                "a pool of that name is already defined",
            )
        } else {
            e.fail(format!("{what} pool {name}"))
        }
    })?;
    undo.push(
        UndoStep::Rmdir(pool.clone()),
        format!("removed pool directory {name}"),
    );
    for d in devs {
        ctx.write(&pool, "devices", d)
            .map_err(|e| e.fail(format!("add device {d} to pool {name}")))?;
    }
    Ok(pool)
}

fn create(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool create";
    let name = &p.args[0];
    check_name("pool", name, cmd)?;
    let devs = check_devices(&p.args[1..], cmd)?;
    let force = p.flag("force");
    let ckpt_zones = p.value("checkpoint-zones");
    if let Some(n) = ckpt_zones {
        if !n.parse::<u32>().is_ok_and(|k| (1..=4095).contains(&k)) {
            let msg = format!("--checkpoint-zones takes 1 to 4095, not '{n}'");
            return Err(Error::usage(msg, cmd));
        }
    }
    let mut undo = Undo::new();
    let r = (|| -> Result<Obj, Error> {
        let pool = define(ctx, name, devs, &mut undo, "create")?;
        if let Some(n) = ckpt_zones {
            ctx.write(&pool, "checkpoint_zones", n)
                .map_err(|e| e.fail(format!("set checkpoint_zones of pool {name}")))?;
        }
        ctx.write(&pool, "format", if force { "2" } else { "1" })
            .map_err(|e| e.fail(format!("set format of pool {name}")))?;
        ctx.write(&pool, "enable", "1").map_err(|e| {
            let f = e.fail(format!("format and enable pool {name}"));
            if e.is(EBUSY) && !force {
                f.note(
                    "hint: every device must be blank and not in use; --force formats devices \
                     that hold data (destroying it)",
                )
            } else {
                f
            }
        })?;
        Ok(pool)
    })();
    let pool = match r {
        Ok(p) => p,
        Err(Error::Failed(f)) => return Err(undo.rollback(ctx, f)),
        Err(e) => return Err(e),
    };
    let cap = ctx
        .status(&pool)
        .ok()
        .and_then(|s| s.u64("capacity_bytes").ok().flatten());
    let cap = cap
        .map(|c| format!(", {} capacity", crate::size::human(c)))
        .unwrap_or_default();
    ctx.say(&format!(
        "created pool {name}: {} member{}{cap}",
        devs.len(),
        if devs.len() == 1 { "" } else { "s" }
    ));
    super::import::record(ctx, name, devs);
    Ok(())
}

/// `assemble_mode` values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    Normal,
    ReadOnly,
    Rewind,
    Degraded,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ReadOnly => "read-only",
            Mode::Rewind => "rewind",
            Mode::Degraded => "degraded",
        }
    }
}

/// `--rewind`: the offline check's account of what will be lost.
fn announce_rewind(ctx: &mut Ctx<'_>, name: &str, devs: &[String]) {
    let mut set = match ctx.backend.open_devices(devs) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                ctx.err,
                "zvpoolctl: warning: cannot check {} before the rewind ({}); the kernel's log says \
                 what it dropped",
                e.path, e.reason
            );
            return;
        }
    };
    match check::check(set.as_mut()) {
        Report::Assembled(a) => match &a.damage {
            Some(d) => ctx.say(&format!(
                "rewinding pool {name}: dropping {}; volumes affected: {}",
                check::rewind_loss(&d.damage),
                check::volume_list(d)
            )),
            None => ctx.say(&format!(
                "pool {name}: the offline check found no damage; nothing to rewind"
            )),
        },
        Report::Refused(r) => {
            let _ = writeln!(
                ctx.err,
                "zvpoolctl: warning: offline check: {}",
                check::refusal_text(&r, devs)
            );
        }
    }
}

/// The failure of `enable=1` on assembly, by errno.
fn assemble_failure(e: &OsFail, name: &str, devs: &[String], mode: Mode) -> Failure {
    let what = format!("assemble pool {name}");
    let list = devs.join(" ");
    let kernel = |f: Failure| {
        let notes: Vec<String> = e.kernel.iter().map(|l| format!("kernel: {l}")).collect();
        f.notes(notes)
    };
    if e.is(EUCLEAN) {
        let mut f = kernel(Failure::new(
            what,
            format!("the pool's metadata is damaged [{}]", e.text),
        ));
        f = f.note(format!(
            "hint: see what is damaged: zvpoolctl pool check {list}"
        ));
        if mode != Mode::ReadOnly {
            f = f.note(format!(
                "hint: copy data out without writing anything: zvpoolctl pool assemble --read-only {name} {list}"
            ));
        }
        if mode != Mode::Rewind {
            f = f.note(format!(
                "hint: drop the damaged part and use the pool again (loses the changes after it): \
                 zvpoolctl pool assemble --rewind {name} {list}"
            ));
        }
        f
    } else if e.is(ENODEV) {
        let f = kernel(Failure::new(
            what,
            format!(
                "a member of the pool is not among the devices given [{}]",
                e.text
            ),
        ));
        if mode == Mode::Normal {
            f.note(format!(
                "hint: assemble without it (its blocks read as I/O errors until it is back): \
                 zvpoolctl pool assemble --degraded {name} {list}"
            ))
        } else {
            f
        }
    } else if e.is(ENOENT) {
        kernel(Failure::new(
            what,
            format!(
                "no zvpool superblock on the devices given: they hold no pool (wrong devices?) [{}]",
                e.text
            ),
        ))
    } else if e.is(EINVAL) {
        kernel(Failure::new(
            what,
            format!(
                "the devices given do not match the pool's members (missing, extra or another \
                 pool's devices; give all members) [{}]",
                e.text
            ),
        ))
    } else {
        Failure::new(what, e.reason())
    }
}

fn assemble(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool assemble";
    let name = &p.args[0];
    check_name("pool", name, cmd)?;
    let devs = check_devices(&p.args[1..], cmd)?;
    let mode = match (p.flag("read-only"), p.flag("rewind"), p.flag("degraded")) {
        (false, false, false) => Mode::Normal,
        (true, false, false) => Mode::ReadOnly,
        (false, true, false) => Mode::Rewind,
        (false, false, true) => Mode::Degraded,
        _ => {
            return Err(Error::usage(
                "--read-only, --rewind and --degraded exclude each other",
                cmd,
            ))
        }
    };
    match mode {
        Mode::ReadOnly => ctx.require_feature(
            "read-only-assembly",
            &format!("assemble pool {name} read-only"),
        )?,
        Mode::Rewind => ctx.require_feature("rewind", &format!("rewind pool {name}"))?,
        Mode::Degraded => ctx.require_feature(
            "degraded-assembly",
            &format!("assemble pool {name} degraded"),
        )?,
        Mode::Normal => {}
    }
    if mode == Mode::Rewind {
        ctx.require_driver()?;
        announce_rewind(ctx, name, devs);
    }
    assemble_devices(ctx, name, devs, mode, p.flag("no-volumes"))?;
    super::import::record(ctx, name, devs);
    Ok(())
}

/// Assembles pool `name` from `devs` (checked) and binds and enables its
/// volumes unless `no_volumes`: `pool assemble` and `pool import`.
pub(super) fn assemble_devices(
    ctx: &mut Ctx<'_>,
    name: &str,
    devs: &[String],
    mode: Mode,
    no_volumes: bool,
) -> Result<(), Error> {
    let mut undo = Undo::new();
    let r = (|| -> Result<Obj, Error> {
        let pool = define(ctx, name, devs, &mut undo, "assemble")?;
        ctx.write(&pool, "format", "0")
            .map_err(|e| e.fail(format!("set format of pool {name}")))?;
        if mode != Mode::Normal {
            ctx.write(&pool, "assemble_mode", mode.word())
                .map_err(|e| {
                    if e.is(ENOENT) || e.is(EACCES) {
                        e.fail_because(
                            format!("assemble pool {name} with mode {}", mode.word()),
                            "the loaded zvpool module has no assemble_mode attribute (it cannot \
                         assemble read-only or rewind); load a newer zvpool module",
                        )
                    } else {
                        e.fail(format!("set assemble_mode of pool {name}"))
                    }
                })?;
        }
        ctx.write_logged(&pool, "enable", "1", name)
            .map_err(|e| assemble_failure(&e, name, devs, mode))?;
        Ok(pool)
    })();
    let pool = match r {
        Ok(p) => p,
        Err(Error::Failed(f)) => return Err(undo.rollback(ctx, f)),
        Err(e) => return Err(e),
    };
    let mut bound: Vec<String> = Vec::new();
    let mut enabled: Vec<String> = Vec::new();
    // What the pool cache records of the volumes: I/O limits and exports.
    let records = if no_volumes {
        None
    } else {
        ctx.pool_records(name)
    };
    if !no_volumes {
        let r = (|| -> Result<(), Failure> {
            // Snapshots stay unbound: they get a (read-only) device only
            // when asked for.
            let vols = ctx.meta_volumes(&pool)?;
            // I/O limits from the pool cache, set before the device exists.
            let limits = super::qos::cached(records.as_ref());
            for v in vols.into_iter().filter(|v| v.kind != abi::KIND_SNAPSHOT) {
                let vol = Obj::volume(name, &v.name);
                ctx.mkdir(&vol)
                    .map_err(|e| e.fail(format!("bind volume {vol}")))?;
                bound.push(v.name.clone());
                super::qos::apply(ctx, &limits, &v.name, &vol);
                ctx.write(&vol, "enable", "1")
                    .map_err(|e| e.fail(format!("enable volume {vol}")))?;
                enabled.push(v.name);
            }
            Ok(())
        })();
        if let Err(f) = r {
            let notes = teardown(ctx, name, &enabled, &bound);
            return Err(f.notes(notes).into());
        }
    }
    let how = match mode {
        Mode::Normal => "",
        Mode::ReadOnly => " read-only",
        Mode::Rewind => " (rewound)",
        Mode::Degraded => " degraded",
    };
    ctx.say(&format!(
        "assembled pool {name}{how}: {} member{}, {} volume{} enabled",
        devs.len(),
        if devs.len() == 1 { "" } else { "s" },
        enabled.len(),
        if enabled.len() == 1 { "" } else { "s" }
    ));
    for v in &enabled {
        let dev = volume::device_node(ctx, &Obj::volume(name, v)).unwrap_or_else(|| "-".into());
        ctx.say(&format!("  {name}/{v}  {dev}"));
    }
    // NVMe-oF exports from the pool cache, once the devices exist.
    super::export::reexport(ctx, name, records.as_ref());
    Ok(())
}

/// Rollback of assemble: disable the volumes enabled, unbind the volumes
/// bound (rmdir only unbinds), stop the pool and remove its directory. If a
/// volume cannot be disabled (its new device was opened meanwhile), nothing
/// more is undone: removing its directory would pull the device from under
/// its user.
fn teardown(ctx: &mut Ctx<'_>, name: &str, enabled: &[String], bound: &[String]) -> Vec<String> {
    let pool = Obj::pool(name);
    let mut notes = Vec::new();
    let mut ok = true;
    let mut record = |r: Result<(), OsFail>, done: String, ok: &mut bool| match r {
        Ok(()) => notes.push(format!("rolled back: {done}")),
        Err(e) => {
            notes.push(format!("rollback failed: {done}: {}", e.reason()));
            *ok = false;
        }
    };
    for v in enabled.iter().rev() {
        let vol = Obj::volume(name, v);
        if ok {
            let r = ctx.write(&vol, "enable", "0");
            record(r, format!("disabled volume {vol}"), &mut ok);
        }
    }
    for v in bound.iter().rev() {
        let vol = Obj::volume(name, v);
        if ok {
            let r = ctx.rmdir(&vol);
            record(r, format!("unbound volume {vol}"), &mut ok);
        }
    }
    if ok {
        let r = stop_pool(ctx, &pool);
        record(r, format!("stopped pool {name}"), &mut ok);
    }
    if ok {
        let r = ctx.rmdir(&pool);
        record(r, format!("removed pool directory {name}"), &mut ok);
    }
    if !ok {
        notes.push(format!(
            "pool {name} is left assembled; see 'zvpoolctl pool status {name}', then 'zvpoolctl pool stop {name}'"
        ));
    }
    notes
}

/// `enable=0`. A failure after which the pool is inactive anyway (the kernel
/// stops the pool and then reports, e.g., a failed final commit) is reported
/// but counts as stopped.
fn stop_pool(ctx: &mut Ctx<'_>, pool: &Obj) -> Result<(), OsFail> {
    match ctx.write(pool, "enable", "0") {
        Err(e) if ctx.pool_active(pool).ok() == Some(false) => {
            let _ = writeln!(
                ctx.err,
                "zvpoolctl: warning: pool {pool} stopped, but the kernel reported an error: {}",
                e.reason()
            );
            Ok(())
        }
        r => r,
    }
}

fn add(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (name, dev) = (&p.args[0], &p.args[1]);
    check_name("pool", name, "pool add")?;
    check_devices(&p.args[1..], "pool add")?;
    let pool = ctx.require_pool(name)?;
    add_device(ctx, name, &pool, dev)
}

/// Adds device `dev` to pool `name` (`pool add`, `pool replace`).
pub fn add_device(ctx: &mut Ctx<'_>, name: &str, pool: &Obj, dev: &str) -> Result<(), Error> {
    let pool = pool.clone();
    ctx.write(&pool, "devices", dev).map_err(|e| {
        let what = format!("add device {dev} to pool {name}");
        if e.is(EBUSY) {
            e.fail_because(
                what,
                "the pool is active and this kernel cannot add members to an active pool yet",
            )
        } else {
            e.fail(what)
        }
    })?;
    ctx.say(&format!("added {dev} to pool {name}"));
    if ctx.read(&pool, "enable").is_ok_and(|v| abi::parse_bool(&v)) {
        // Active: the pool cache learns the new member.
        let devs: Vec<String> = members(ctx, &pool)
            .map(|m| m.into_iter().map(|m| m.path).collect())
            .unwrap_or_default();
        super::import::record(ctx, name, &devs);
    }
    Ok(())
}

fn stop(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool stop";
    if !p.flag("all") {
        let [name] = &p.args[..] else {
            return Err(Error::usage("give one pool NAME, or -a", cmd));
        };
        check_name("pool", name, cmd)?;
        return stop_one(ctx, name);
    }
    if !p.args.is_empty() {
        return Err(Error::usage("-a stops every pool: give no NAME", cmd));
    }
    ctx.require_driver()?;
    let mut failed = 0;
    for name in ctx.children(&Obj::Root)? {
        if let Err(e) = stop_one(ctx, &name) {
            failed += 1;
            crate::report(&e, ctx.err);
        }
    }
    if failed > 0 {
        return Err(Error::Exit(crate::error::EXIT_FAILED));
    }
    Ok(())
}

fn stop_one(ctx: &mut Ctx<'_>, name: &str) -> Result<(), Error> {
    let pool = ctx.require_pool(name)?;
    let vols = ctx.children(&pool)?;
    let active = ctx.pool_active(&pool)?;
    let mut undo = Undo::new();
    // Disable first: removing the directory of an enabled volume would remove
    // its block device even while open; enable=0 refuses that (EBUSY).
    for v in &vols {
        let vol = Obj::volume(name, v);
        if !abi::parse_bool(&ctx.read(&vol, "enable")?) {
            continue;
        }
        if let Err(e) = ctx.write(&vol, "enable", "0") {
            let f = if e.is(EBUSY) {
                e.fail_because(
                    format!("stop pool {name}"),
                    &format!("volume {vol} is in use"),
                )
            } else {
                e.fail(format!("disable volume {vol}"))
            };
            return Err(undo.rollback(ctx, f));
        }
        undo.push(
            UndoStep::Write(vol.clone(), "enable", "1".into()),
            format!("re-enabled volume {vol}"),
        );
    }
    // Unbind (the volumes and their data stay in the pool's metadata).
    for v in &vols {
        let vol = Obj::volume(name, v);
        if let Err(e) = ctx.rmdir(&vol) {
            return Err(undo.rollback(ctx, e.fail(format!("unbind volume {vol}"))));
        }
        undo.push(
            UndoStep::Mkdir(vol.clone()),
            format!("re-bound volume {vol}"),
        );
    }
    if active {
        if let Err(e) = stop_pool(ctx, &pool) {
            return Err(undo.rollback(ctx, e.fail(format!("stop pool {name}"))));
        }
    }
    if let Err(e) = ctx.rmdir(&pool) {
        let f = e.fail(format!("remove pool directory {name}"));
        let f = if active {
            f.note(format!(
                "the pool is stopped (data committed); to use it again: 'zvpoolctl pool stop {name}' \
                 then 'zvpoolctl pool assemble {name} DEV...'"
            ))
        } else {
            f
        };
        return Err(f.into());
    }
    ctx.say(&format!("stopped pool {name}"));
    Ok(())
}

/// The pool's health: the kernel's own `health` (kernels that report it),
/// else made from the members' states.
pub(super) fn health(st: &KeyValues, members: &[abi::Member]) -> Value {
    let state = st.get("state").unwrap_or("unknown");
    if let (true, Some(h)) = (state == "active", st.get("health")) {
        return Value::text(h);
    }
    if state != "active" || members.is_empty() {
        return Value::Null;
    }
    let bad = members
        .iter()
        .filter(|m| m.state != "ok" && m.state != "removed")
        .count();
    Value::text(if bad == 0 {
        "ok"
    } else if bad == members.len() {
        "failed"
    } else {
        "degraded"
    })
}

fn percent(used: Option<u64>, total: Option<u64>) -> Value {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => Value::Percent((u128::from(u) * 100 / u128::from(t)) as u64),
        _ => Value::Null,
    }
}

/// The first two sections of `pool status` and `pool health`: the pool (a
/// record) and its members (rows).
pub(super) fn pool_and_members(pool: Table, members: Table) -> Vec<Section> {
    vec![
        Section {
            key: "pool",
            title: Some("pool"),
            layout: Layout::Record,
            table: pool,
        },
        Section {
            key: "members",
            title: Some("members"),
            layout: Layout::Rows,
            table: members,
        },
    ]
}

/// Status values with the pool's name in the failure.
fn status_u64(st: &KeyValues, key: &str, pool: &str) -> Result<Option<u64>, Failure> {
    st.u64(key)
        .map_err(|e| Failure::new(format!("read {pool}/status"), e))
}

/// The members with geometry and health (`members`); for an inactive pool,
/// which shows none, the paths from `devices`.
pub(super) fn members(ctx: &Ctx<'_>, pool: &Obj) -> Result<Vec<abi::Member>, Failure> {
    let m = abi::parse_members(&ctx.read(pool, "members")?)
        .map_err(|e| Failure::new(format!("read {pool}/members"), e))?;
    if !m.is_empty() {
        return Ok(m);
    }
    Ok(abi::parse_devices(&ctx.read(pool, "devices")?)
        .into_iter()
        .enumerate()
        .map(|(i, path)| abi::Member {
            index: i as u64,
            path,
            ..abi::Member::default()
        })
        .collect())
}

fn list(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("pool list")?;
    ctx.require_driver()?;
    let names = if p.args.is_empty() {
        ctx.children(&Obj::Root)?
    } else {
        for n in &p.args {
            check_name("pool", n, "pool list")?;
            ctx.require_pool(n)?;
        }
        p.args.clone()
    };
    let mut t = Table::new(LIST_COLUMNS, LIST_DEFAULTS);
    for name in &names {
        let pool = Obj::pool(name);
        let st = ctx.status(&pool)?;
        let state = st.get("state").unwrap_or("unknown").to_string();
        let mem = members(ctx, &pool)?;
        let n = |k| status_u64(&st, k, name);
        let (size, used) = (n("capacity_bytes")?, n("used_bytes")?);
        t.push(vec![
            Value::text(name.as_str()),
            Value::text(state.as_str()),
            health(&st, &mem),
            Value::opt_bytes(size),
            Value::opt_bytes(used),
            Value::opt_bytes(n("free_bytes")?),
            percent(used, size),
            Value::opt_count(n("members")?.or(Some(mem.len() as u64))),
            Value::opt_count(n("volumes")?),
            st.get("write_amplification")
                .map_or(Value::Null, |w| Value::Number(w.into())),
            st.get("uuid").map_or(Value::Null, Value::text),
            Value::opt_count(n("zones_total")?),
            Value::opt_count(n("zones_free")?),
            Value::opt_count(n("snapshots")?),
            Value::opt_bytes(n("shared_bytes")?),
            // Kernels with quotas and reservations (absent before).
            Value::opt_bytes(n("available_bytes")?),
            Value::opt_bytes(n("reserved_bytes")?),
        ]);
    }
    let doc = vec![Section {
        key: "pools",
        title: None,
        layout: Layout::Rows,
        table: t,
    }];
    ctx.print(&doc, &opts, "pool list")
}

/// Copies of the pool's metadata (`status` lines `journal_members`: one
/// member number a copy, and `checkpoint_copies`); `Null` from a kernel
/// without them.
fn metadata_copies(st: &KeyValues) -> Value {
    let journal = st
        .get("journal_members")
        .map(|j| j.split_whitespace().count() as u64);
    let ckpt = st
        .get("checkpoint_copies")
        .and_then(|c| c.trim().parse::<u64>().ok());
    match (journal, ckpt) {
        (Some(j), Some(c)) => Value::Count(j.min(c)),
        _ => Value::Null,
    }
}

fn status(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("pool status")?;
    let name = &p.args[0];
    check_name("pool", name, "pool status")?;
    let pool = ctx.require_pool(name)?;
    let st = ctx.status(&pool)?;
    let mem = members(ctx, &pool)?;
    let state = st.get("state").unwrap_or("unknown").to_string();
    let n = |k| status_u64(&st, k, name);
    let (size, used) = (n("capacity_bytes")?, n("used_bytes")?);
    let mut rec = Table::new(STATUS_COLUMNS, STATUS_COLUMNS);
    rec.push(vec![
        Value::text(name.as_str()),
        Value::text(state.as_str()),
        health(&st, &mem),
        st.get("uuid").map_or(Value::Null, Value::text),
        Value::opt_count(n("members")?.or(Some(mem.len() as u64))),
        Value::opt_bytes(size),
        Value::opt_bytes(used),
        Value::opt_bytes(n("free_bytes")?),
        percent(used, size),
        Value::opt_bytes(n("shared_bytes")?),
        // Kernels with quotas and reservations (absent before).
        Value::opt_bytes(n("available_bytes")?),
        Value::opt_bytes(n("reserved_bytes")?),
        Value::opt_bytes(n("held_back_bytes")?),
        Value::opt_count(n("pool_reserve_pct")?),
        Value::opt_count(n("quota_refusals")?),
        Value::opt_count(n("reserve_refusals")?),
        Value::opt_count(n("zones_total")?),
        Value::opt_count(n("zones_free")?),
        Value::opt_count(n("zones_gc_reserve")?),
        Value::opt_count(n("volumes")?),
        Value::opt_count(n("snapshots")?),
        Value::opt_count(n("user_blocks_written")?),
        Value::opt_count(n("gc_blocks_written")?),
        st.get("write_amplification")
            .map_or(Value::Null, |w| Value::Number(w.into())),
        Value::opt_count(n("zones_reset")?),
        Value::opt_count(n("gc_runs")?),
        Value::opt_count(n("throttled_ms")?),
        Value::opt_count(n("journal_blocks")?),
        Value::opt_count(n("checkpoints")?),
        // Kernels with the metadata headroom (absent before).
        Value::opt_count(n("checkpoint_blocks")?),
        // Kernels with delta checkpoints (absent before).
        Value::opt_count(n("delta_checkpoints")?),
        Value::opt_count(n("checkpoint_capacity")?),
        // Kernels with metadata copies (absent before): the copies of the
        // journal and of every checkpoint block, the fewer of the two.
        metadata_copies(&st),
        Value::opt_count(n("metadata_full")?),
        Value::opt_count(n("table_nodes")?),
        // Kernels with the table memory limit (absent before).
        Value::opt_bytes(n("table_memory_bytes")?),
        Value::opt_bytes(n("table_memory_limit")?),
        Value::opt_count(n("table_memory_refused")?),
        Value::opt_count(n("table_alloc_failures")?),
        // Kernels with read-only assembly and rewind (absent before).
        Value::opt_count(n("read_only")?),
        Value::opt_count(n("rewinds")?),
        st.get("last_rewind").map_or(Value::Null, Value::text),
        st.get("damage").map_or(Value::Null, Value::text),
        // Kernels with scrub (absent before): the pass as `P/scrub` shows it.
        st.get("scrub").map_or(Value::Null, Value::text),
    ]);
    let mut mt = Table::new(MEMBER_COLUMNS, MEMBER_COLUMNS);
    for m in &mem {
        let used_zones = match (m.zones, m.free_zones) {
            (Some(z), Some(f)) => Some(z.saturating_sub(f)),
            _ => None,
        };
        mt.push(vec![
            Value::Count(m.index),
            Value::text(m.path.as_str()),
            if m.kind.is_empty() {
                Value::Null
            } else {
                Value::text(m.kind.as_str())
            },
            if m.state.is_empty() {
                Value::Null
            } else {
                Value::text(m.state.as_str())
            },
            Value::opt_count(m.zones),
            Value::opt_count(m.free_zones),
            percent(used_zones, m.zones),
            Value::opt_bytes(m.zone_bytes),
            Value::opt_bytes(m.cap_bytes),
            Value::opt_count(m.max_open),
            Value::opt_count(m.max_active),
            Value::opt_count(m.read_errors),
            Value::opt_count(m.write_errors),
            // Per-member class and live data (tiering, placement).
            if m.class.is_empty() {
                Value::Null
            } else {
                Value::text(m.class.as_str())
            },
            Value::opt_bytes(m.used_bytes),
        ]);
    }
    let mut doc = pool_and_members(rec, mt);
    doc.push(Section {
        key: "volumes",
        title: Some("volumes"),
        layout: Layout::Rows,
        table: volume::table(ctx, std::slice::from_ref(name), volume::Kinds::VOLUMES)?,
    });
    ctx.print(&doc, &opts, "pool status")
}
