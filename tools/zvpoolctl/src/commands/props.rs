// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl pool set|get`: pool properties, each a read-write attribute of
//! the pool's configfs directory (like `zfs set|get`). New properties are one
//! more entry in `PROPS` (and a line in the help texts below).

use super::{check_name, Ctx, Undo, UndoStep, Verb};
use crate::backend::Obj;
use crate::cli::{Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{Error, Failure, OsFail, EACCES, ENOENT};
use crate::output::{Layout, Section, Table, Value};
use crate::size;

/// A pool property.
pub struct Prop {
    pub name: &'static str,
    /// The pool attribute that holds it.
    pub attr: &'static str,
    /// The bytes to write for a VALUE of `set` (the error is a usage error).
    parse: fn(&str) -> Result<u64, String>,
    /// The value written for `default` (shown as "(default)" by `set`).
    default: Option<u64>,
    /// How its value reads.
    unit: Unit,
}

/// The unit of a property's value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Percent,
    Seconds,
    /// 0 or 1, shown `off` or `on`.
    Switch,
}

impl Prop {
    /// A value as `get` shows it.
    fn value(&self, v: u64) -> Value {
        match self.unit {
            Unit::Bytes => Value::Bytes(v),
            Unit::Percent | Unit::Seconds => Value::Count(v),
            Unit::Switch => Value::text(if v == 0 { "off" } else { "on" }),
        }
    }

    /// A value as `set` reports it.
    fn human(&self, v: u64) -> String {
        match self.unit {
            Unit::Bytes => size::human(v),
            Unit::Percent => format!("{v}%"),
            Unit::Seconds => format!("{v}s"),
            Unit::Switch => (if v == 0 { "off" } else { "on" }).to_string(),
        }
    }
}

/// All pool properties.
pub const PROPS: &[Prop] = &[
    Prop {
        name: "table_memory_limit",
        attr: "table_memory_limit",
        parse: parse_table_limit,
        default: Some(0),
        unit: Unit::Bytes,
    },
    Prop {
        name: "space_low_pct",
        attr: "space_low_pct",
        parse: parse_pct,
        default: Some(80),
        unit: Unit::Percent,
    },
    Prop {
        name: "space_critical_pct",
        attr: "space_critical_pct",
        parse: parse_pct,
        default: Some(95),
        unit: Unit::Percent,
    },
    Prop {
        name: "no_space_timeout",
        attr: "no_space_timeout",
        parse: parse_seconds,
        default: Some(0),
        unit: Unit::Seconds,
    },
    Prop {
        name: "pool_reserve_pct",
        attr: "pool_reserve_pct",
        parse: parse_reserve_pct,
        default: Some(0),
        unit: Unit::Percent,
    },
    Prop {
        name: "tiering",
        attr: "tiering",
        parse: parse_switch,
        default: Some(0),
        unit: Unit::Switch,
    },
];

/// `on` or `off` (also 1 or 0).
fn parse_switch(v: &str) -> Result<u64, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "1" => Ok(1),
        "off" | "0" => Ok(0),
        _ => Err(format!("{v:?} is not on or off")),
    }
}

/// Seconds (an optional `s` suffix), at most a day.
fn parse_seconds(v: &str) -> Result<u64, String> {
    v.strip_suffix('s')
        .unwrap_or(v)
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= 86_400)
        .ok_or_else(|| format!("{v:?} is not a number of seconds (0 to 86400)"))
}

/// A percentage 0..=100 (0: off), or `off`.
fn parse_pct(v: &str) -> Result<u64, String> {
    parse_pct_upto(v, 100)
}

/// The pool reserve: a percentage 0..=50 (the kernel's
/// `POOL_RESERVE_MAX_PCT`), or `off`.
fn parse_reserve_pct(v: &str) -> Result<u64, String> {
    parse_pct_upto(v, 50)
}

/// A percentage 0..=max (0: off), or `off`.
fn parse_pct_upto(v: &str, max: u64) -> Result<u64, String> {
    if v.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    v.strip_suffix('%')
        .unwrap_or(v)
        .parse::<u64>()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("{v:?} is not a percentage (0 to {max}, or off)"))
}

/// `table_memory_limit`: a size (the tool's size syntax) or `default` (0,
/// which the kernel reads as half of the machine's memory).
fn parse_table_limit(v: &str) -> Result<u64, String> {
    if v.eq_ignore_ascii_case("default") {
        return Ok(0);
    }
    size::parse_size(v)
}

fn known() -> String {
    PROPS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// The property named `name` (a usage error listing the known ones if none).
fn lookup(name: &str, cmd: &str) -> Result<&'static Prop, Error> {
    PROPS.iter().find(|p| p.name == name).ok_or_else(|| {
        Error::usage(
            format!("unknown property {name:?}; known properties: {}", known()),
            cmd,
        )
    })
}

pub const SET: Verb = Verb {
    name: "set",
    usage: "set NAME PROPERTY=VALUE...",
    summary: "set properties of a pool (table memory, space thresholds, no-space timeout, reserve, tiering)",
    help: "Sets properties of pool NAME (active or not), in the order given. If one\n\
           cannot be set, the ones set before it get their old values back.\n\
           Properties:\n  \
             table_memory_limit=SIZE|default\n      \
               memory the pool's block tables may use: bytes or K M G T P (powers of\n      \
               1024), e.g. 2G; 'default' (or 0) is half of the machine's memory.\n      \
               Applies at once, also to an active pool. Writes that need new table\n      \
               nodes beyond it fail with ENOSPC (overwrites of mapped blocks go on).\n      \
               Kept in the pool's configfs directory, not on the members: after\n      \
               'pool stop' and 'pool assemble' the default is back.\n  \
             space_low_pct=PCT|off, space_critical_pct=PCT|off\n      \
               the live data, in percent of the capacity, at which the pool's space\n      \
               event says low (default 80) and critical (default 95); low must be\n      \
               below critical. Each change of the level is a uevent and a log line\n      \
               (see 'pool events'); 'full' when a write was refused or waits for\n      \
               space, until space comes back. Kept in configfs like table_memory_limit.\n  \
             no_space_timeout=SECONDS\n      \
               how long a write waits for space from outside (a member added, data\n      \
               discarded) once GC can free none, before it fails with ENOSPC; 0\n      \
               (the default) fails it at once. Like dm-thin's no_space_timeout.\n  \
             pool_reserve_pct=PCT|off\n      \
               percent of the capacity (0 to 50, default 0) no volume may take:\n      \
               kept for GC and the administrator. Writes that would newly map\n      \
               blocks into it fail with ENOSPC (see 'volume set' for quotas and\n      \
               reservations; 'pool status' shows available and held_back).\n      \
               Kept in configfs like table_memory_limit.\n  \
             tiering=on|off\n      \
               with members of both classes (members: class=fast|slow; SMR members\n      \
               are slow, the others fast; NAME/member_class <- 'MEMBER fast|slow'\n      \
               changes one), user writes go to the fast members and what GC moves\n      \
               to the slow ones, and GC keeps 20% of the fast members' zones free by\n      \
               moving their oldest data to the slow ones (default off). Applies at\n      \
               once; kept in the pool's metadata (as are the members' classes).\n\
           configfs: NAME/table_memory_limit <- bytes (0 for default);\n\
           NAME/space_low_pct, NAME/space_critical_pct <- percent (0: off);\n\
           NAME/no_space_timeout <- seconds; NAME/pool_reserve_pct <- percent;\n\
           NAME/tiering <- 1 or 0.",
    options: &[],
    min_args: 2,
    max_args: None,
    columns: &[],
    run: set,
};

const GET_COLUMNS: &[&str] = &["name", "property", "value"];
const GET_COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "pool name"),
    ("property", "property name"),
    (
        "value",
        "the value in force (table_memory_limit: bytes, human unless -p)",
    ),
];

pub const GET: Verb = Verb {
    name: "get",
    usage: "get [-Hpj] [-o COL,...] NAME [PROPERTY...]",
    summary: "show properties of a pool",
    help: "Shows the named properties of pool NAME (all without PROPERTY), one line\n\
           each. table_memory_limit shows the limit in force (the default, half of\n\
           the machine's memory, as bytes when not set). JSON: {\"properties\":\n\
           [...]}. A property the loaded module lacks is an error when named,\n\
           else '-' (null) with a warning.\n\
           configfs: NAME/table_memory_limit.",
    options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
    min_args: 1,
    max_args: None,
    columns: GET_COLUMNS_HELP,
    run: get,
};

/// The failure for a property whose attribute the pool lacks (ENOENT or
/// EACCES on a pool that exists): the module predates it.
fn too_old(e: &OsFail, what: String, prop: &Prop) -> Failure {
    e.fail_because(
        what,
        &format!(
            "the loaded zvpool module has no {} attribute (it is older than the property); \
             load a newer zvpool module",
            prop.attr
        ),
    )
}

/// Reads the property's attribute; `Ok(None)` if the module lacks it. The
/// failure names the operation `what`.
fn read_prop(
    ctx: &Ctx<'_>,
    pool: &Obj,
    prop: &Prop,
    what: &str,
) -> Result<Result<u64, OsFail>, Failure> {
    match ctx.backend.read_attr(pool, prop.attr) {
        Ok(text) => text.trim().parse().map(Ok).map_err(|_| {
            Failure::new(
                format!("read {pool}/{}", prop.attr),
                format!("malformed value {:?}", text.trim()),
            )
        }),
        Err(e) => {
            let f = OsFail::new(&e, Vec::new());
            if !ctx.backend.exists(pool) {
                Err(Failure::new(
                    format!("pool {pool}"),
                    "no such pool (see 'zvpoolctl pool list')",
                ))
            } else if f.is(ENOENT) || f.is(EACCES) {
                Ok(Err(f))
            } else {
                Err(f.fail(what.to_string()))
            }
        }
    }
}

fn set(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool set";
    let name = &p.args[0];
    check_name("pool", name, cmd)?;
    // All assignments are checked before anything is written.
    let mut todo: Vec<(&Prop, u64)> = Vec::new();
    for a in &p.args[1..] {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("expected PROPERTY=VALUE, got {a:?}"), cmd))?;
        let prop = lookup(k, cmd)?;
        if todo.iter().any(|(q, _)| q.name == prop.name) {
            return Err(Error::usage(format!("property {k} given twice"), cmd));
        }
        let bytes = (prop.parse)(v).map_err(|e| Error::usage(format!("{k}: {e}"), cmd))?;
        todo.push((prop, bytes));
    }
    let pool = ctx.require_pool(name)?;
    let mut undo = Undo::new();
    let mut done = Vec::new();
    for (prop, bytes) in todo {
        let what = format!("set {} of pool {name}", prop.name);
        let old = match read_prop(ctx, &pool, prop, &what) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(undo.rollback(ctx, too_old(&e, what, prop))),
            Err(f) => return Err(undo.rollback(ctx, f)),
        };
        if let Err(e) = ctx.write(&pool, prop.attr, &bytes.to_string()) {
            let f = if (e.is(ENOENT) || e.is(EACCES)) && ctx.backend.exists(&pool) {
                too_old(&e, what, prop)
            } else {
                e.fail(what)
            };
            return Err(undo.rollback(ctx, f));
        }
        // The old value is the limit that was in force: restoring it keeps
        // that limit (a default becomes that number).
        undo.push(
            UndoStep::Write(pool.clone(), prop.attr, old.to_string()),
            format!("{} of pool {name} back to {old}", prop.name),
        );
        let new = match read_prop(ctx, &pool, prop, &what) {
            Ok(Ok(v)) => v,
            _ => bytes,
        };
        let default = if prop.default == Some(bytes) {
            " (default)"
        } else {
            ""
        };
        done.push(format!(
            "set {} of pool {name}: {} -> {}{default}",
            prop.name,
            prop.human(old),
            prop.human(new)
        ));
        if prop.attr == "table_memory_limit" {
            warn_over_limit(ctx, &pool, new);
        }
    }
    for l in done {
        ctx.say(&l);
    }
    Ok(())
}

/// A warning if the pool's tables already use more than the new limit.
fn warn_over_limit(ctx: &mut Ctx<'_>, pool: &Obj, limit: u64) {
    let used = ctx
        .status(pool)
        .ok()
        .and_then(|s| s.u64("table_memory_bytes").ok().flatten());
    if let Some(used) = used.filter(|&u| u > limit) {
        let _ = writeln!(
            ctx.err,
            "zvpoolctl: warning: the block tables of pool {pool} already use {}, more than \
             the limit: writes that need new table nodes fail with ENOSPC until mappings are \
             freed (discard, deleted snapshots or volumes) or the limit is raised",
            size::human(used)
        );
    }
}

fn get(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool get";
    let opts = p.output(cmd)?;
    let name = &p.args[0];
    check_name("pool", name, cmd)?;
    let named = p.args.len() > 1;
    let props: Vec<&Prop> = if named {
        p.args[1..]
            .iter()
            .map(|a| lookup(a, cmd))
            .collect::<Result<_, _>>()?
    } else {
        PROPS.iter().collect()
    };
    let pool = ctx.require_pool(name)?;
    let mut t = Table::new(GET_COLUMNS, GET_COLUMNS);
    for prop in props {
        let what = format!("get {} of pool {name}", prop.name);
        let value = match read_prop(ctx, &pool, prop, &what)? {
            Ok(v) => prop.value(v),
            Err(e) if named => return Err(too_old(&e, what, prop).into()),
            Err(_) => {
                let _ = writeln!(
                    ctx.err,
                    "zvpoolctl: warning: pool {name}: the loaded zvpool module has no {} \
                     attribute (it is older than the property)",
                    prop.attr
                );
                Value::Null
            }
        };
        t.push(vec![
            Value::text(name.as_str()),
            Value::text(prop.name),
            value,
        ]);
    }
    let doc = vec![Section {
        key: "properties",
        title: None,
        layout: Layout::Rows,
        table: t,
    }];
    ctx.print(&doc, &opts, cmd)
}
