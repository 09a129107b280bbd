// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume set POOL/VOL riops=N wiops=N rbps=N wbps=N`: a
//! volume's I/O limits (issue 20), the read-write attributes `riops`,
//! `wiops`, `rbps`, `wbps` of its configfs directory (cgroup v2 `io.max`
//! names). The on-disk format has no room for them, so they are recorded
//! with the volume in the pool cache (`cache.rs`) and applied again when
//! assembly (`pool assemble`, `pool import`) binds the volume.

use super::volume::{active_pool, bind_existing};
use super::{split_volume, Ctx, Undo, UndoStep, Verb};
use crate::backend::Obj;
use crate::cache::{self, LIMIT_NAMES};
use crate::cli::Parsed;
use crate::error::{Error, Failure, EACCES, ENOENT};
use crate::size;
use crate::uuid;

pub const SET: Verb = Verb {
    name: "set",
    usage: "set POOL/VOL LIMIT=VALUE...",
    summary: "set I/O limits of a volume (riops, wiops, rbps, wbps)",
    help: "Sets I/O limits of volume VOL, online (also while it is open and busy);\n\
           the next request sees them. Limits (the names of cgroup v2's io.max):\n  \
             riops=N   read I/Os per second\n  \
             wiops=N   write I/Os per second\n  \
             rbps=SIZE read bytes per second: bytes or K M G T (powers of 1024)\n  \
             wbps=SIZE write bytes per second\n\
           0 or 'max' is unlimited (the default). Each limit is a token bucket\n\
           with a burst allowance of 100 ms at the limit; a request larger than\n\
           that still passes and the following ones wait for it. Only reads and\n\
           writes are limited (not flushes, discards, write zeroes); other\n\
           volumes are never slowed by this one's limits. If one limit cannot be\n\
           set, the ones set before it get their old values back.\n\
           The limits live in the volume's configfs directory (a volume that is\n\
           not bound is bound) and are recorded in the pool cache (--cache FILE,\n\
           default /etc/zvpool/zvpool.cache): assembly ('pool assemble', 'pool\n\
           import') sets them again when it binds the volume.\n\
           configfs: POOL/VOL/riops, wiops, rbps, wbps <- N (decimal, 0 = unlimited).",
    options: &[],
    min_args: 2,
    max_args: None,
    columns: &[],
    run: set,
};

/// Parses `VALUE` of limit `name`: IOPS a decimal, bytes a size; `max` or
/// `0` is unlimited.
fn parse_value(name: &str, v: &str) -> Result<u64, String> {
    if v.eq_ignore_ascii_case("max") {
        return Ok(0);
    }
    if name.ends_with("iops") {
        v.parse()
            .map_err(|_| format!("invalid {name} {v:?}: a number of I/Os per second, or max"))
    } else {
        size::parse_size(v).map_err(|e| format!("{name}: {e}"))
    }
}

/// The limits of a bound volume as its attributes say (riops, wiops,
/// rbps, wbps); `None` for one the module lacks or that does not parse.
pub fn read_limits(ctx: &Ctx<'_>, vol: &Obj) -> [Option<u64>; 4] {
    LIMIT_NAMES.map(|n| {
        ctx.backend
            .read_attr(vol, n)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
}

/// The pool's UUID (from its status), for the cache.
fn pool_uuid(ctx: &Ctx<'_>, pool: &str) -> Option<uuid::Uuid> {
    let st = ctx.status(&Obj::pool(pool)).ok()?;
    st.get("uuid").and_then(uuid::parse)
}

fn warn(ctx: &mut Ctx<'_>, msg: &str) {
    let _ = writeln!(ctx.err, "zvpoolctl: warning: {msg}");
}

fn set(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume set";
    let (pool, name) = split_volume(&p.args[0], cmd)?;
    // Every assignment is checked before anything is written.
    let mut todo: Vec<(&'static str, u64)> = Vec::new();
    for a in &p.args[1..] {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("expected LIMIT=VALUE, got {a:?}"), cmd))?;
        let Some(&limit) = LIMIT_NAMES.iter().find(|n| **n == k) else {
            return Err(Error::usage(
                format!("unknown limit {k:?}; limits: {}", LIMIT_NAMES.join(", ")),
                cmd,
            ));
        };
        if todo.iter().any(|(n, _)| *n == limit) {
            return Err(Error::usage(format!("limit {k} given twice"), cmd));
        }
        let value = parse_value(limit, v).map_err(|e| Error::usage(e, cmd))?;
        todo.push((limit, value));
    }
    let what = format!("set limits of volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    let (vol, _) = bind_existing(ctx, &po, pool, name, &what)?;
    let mut undo = Undo::new();
    let mut done = Vec::new();
    for (limit, value) in todo {
        let what = format!("set {limit} of volume {vol}");
        let old = match ctx.backend.read_attr(&vol, limit) {
            Ok(t) => t.trim().to_string(),
            Err(_) => {
                let f = Failure::new(
                    what,
                    format!(
                        "the loaded zvpool module has no {limit} attribute (no I/O limits); \
                         load a newer zvpool module"
                    ),
                );
                return Err(undo.rollback(ctx, f));
            }
        };
        if let Err(e) = ctx.write(&vol, limit, &value.to_string()) {
            let f = if e.is(ENOENT) || e.is(EACCES) {
                e.fail_because(what, "the loaded zvpool module has no I/O limits")
            } else {
                e.fail(what)
            };
            return Err(undo.rollback(ctx, f));
        }
        undo.push(
            UndoStep::Write(vol.clone(), limit, old.clone()),
            format!("{limit} of volume {vol} back to {old}"),
        );
        let shown = |v: &str| {
            if v == "0" {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        done.push(format!(
            "set {limit} of volume {vol}: {} -> {}",
            shown(&old),
            shown(&value.to_string())
        ));
    }
    for line in done {
        ctx.say(&line);
    }
    record(ctx, pool, name, &vol);
    Ok(())
}

/// Records the volume's limits in force in the pool cache (warnings only).
fn record(ctx: &mut Ctx<'_>, pool: &str, name: &str, vol: &Obj) {
    let Some(path) = ctx.cache.clone() else {
        return;
    };
    let values = read_limits(ctx, vol).map(|v| v.unwrap_or(0));
    let Some(u) = pool_uuid(ctx, pool) else {
        warn(
            ctx,
            &format!("limits of {vol} not recorded in the pool cache: pool {pool} shows no UUID"),
        );
        return;
    };
    if let Err(e) = cache::update(&path, |c| c.set_limits(u, name, values)) {
        warn(
            ctx,
            &format!("limits of {vol} not recorded in the pool cache: {e}"),
        );
    }
}

/// Forgets the limits of volume `name` of `pool` in the pool cache (the
/// volume was deleted); warnings only.
pub fn forget(ctx: &mut Ctx<'_>, pool: &str, name: &str) {
    let Some(path) = ctx.cache.clone() else {
        return;
    };
    let Some(u) = pool_uuid(ctx, pool) else {
        return;
    };
    if let Err(e) = cache::update(&path, |c| c.set_limits(u, name, [0; 4])) {
        warn(
            ctx,
            &format!("limits of {pool}/{name} not removed from the pool cache: {e}"),
        );
    }
}

/// The limits the pool cache holds for the volumes of the active pool
/// `pool` (empty without a cache or an entry); read once per assembly.
pub fn cached(ctx: &mut Ctx<'_>, pool: &str) -> Vec<(String, [u64; 4])> {
    let Some(path) = ctx.cache.clone() else {
        return Vec::new();
    };
    let Some(u) = pool_uuid(ctx, pool) else {
        return Vec::new();
    };
    match cache::load(&path) {
        Ok(Some(c)) => c
            .limits
            .iter()
            .filter(|l| l.pool == u)
            .map(|l| (l.volume.clone(), l.values))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            warn(ctx, &format!("I/O limits of pool {pool} not applied: {e}"));
            Vec::new()
        }
    }
}

/// Applies the cached limits of volume `name` (just bound as `vol`) before
/// it is enabled; a limit that cannot be set is a warning (the volume
/// still comes up, unlimited).
pub fn apply(ctx: &mut Ctx<'_>, cached: &[(String, [u64; 4])], name: &str, vol: &Obj) {
    let Some((_, values)) = cached.iter().find(|(n, _)| n == name) else {
        return;
    };
    for (limit, value) in LIMIT_NAMES.iter().zip(values) {
        if *value == 0 {
            continue;
        }
        if let Err(e) = ctx.write(vol, limit, &value.to_string()) {
            let f = e.fail(format!("set {limit} of volume {vol}"));
            warn(ctx, &format!("{}: {}", f.what, f.reason));
        }
    }
}
