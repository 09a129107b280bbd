// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl pool import`: find pools on the machine's block devices
//! (`scan`), list them, or assemble them without a device list through the
//! same code as `pool assemble`; and the pool cache (`cache`) that gives
//! the found pools their names and tells the boot unit what to import.

use super::pool::{assemble_devices, Mode, OPT_DEGRADED};
use super::{check_name, Ctx, Verb};
use crate::backend::Obj;
use crate::cache::{self, Cache, Entry};
use crate::check::device_superblock;
use crate::cli::{OptSpec, Parsed, OPT_JSON, OPT_SCRIPTED};
use crate::error::{Error, Failure};
use crate::output::{Layout, Section, Table, Value};
use crate::scan::{self, ScannedPool};
use crate::uuid;
use std::path::Path;

const OPT_ALL: OptSpec = OptSpec {
    long: "all",
    short: Some('a'),
    value: None,
    help: "import every importable pool found (with --cached: every pool of the cache)",
};
const OPT_CACHED: OptSpec = OptSpec {
    long: "cached",
    short: Some('c'),
    value: None,
    help: "only the pools recorded in the pool cache (what the boot unit imports)",
};
const OPT_DIR: OptSpec = OptSpec {
    long: "dir",
    short: Some('d'),
    value: Some("DIR"),
    help: "scan the device nodes and image files of DIR instead of /sys/class/block",
};
const OPT_NO_VOLUMES: OptSpec = OptSpec {
    long: "no-volumes",
    short: None,
    value: None,
    help: "do not bind and enable the imported pools' volumes",
};

pub const VERB: Verb = Verb {
    name: "import",
    usage: "import [-a] [-c] [-d DIR] [-Hj] [--no-volumes] [--degraded] [POOL [NEWNAME]]",
    summary: "find pools on the block devices; assemble them without a device list",
    help: "Without arguments: reads the superblocks of every block device (read-only;\n\
           nothing is changed) and lists the pools found: UUID, name (from the pool\n\
           cache, or of the active pool), state (importable, missing members, active),\n\
           members found and expected, and which device is which member.\n\
           With POOL (a name or a UUID): assembles that pool as 'pool assemble'\n\
           does, with the devices found, under NEWNAME or the name recorded in the\n\
           cache. With -a: every importable pool (each reported; exit 1 if any\n\
           failed; active pools are skipped). Refused: members missing (unless\n\
           --degraded: one member missing, as 'pool assemble --degraded'), the pool\n\
           already active, the name taken. create, assemble and import\n\
           record the pool in the cache (--cache FILE, default\n\
           /etc/zvpool/zvpool.cache); -c limits all this to the cached pools.\n\
           configfs: each POOL/status (uuid) to tell the active pools;\n\
           importing writes what 'pool assemble' writes.",
    options: &[
        OPT_ALL,
        OPT_CACHED,
        OPT_DIR,
        OPT_SCRIPTED,
        OPT_JSON,
        OPT_NO_VOLUMES,
        OPT_DEGRADED,
    ],
    min_args: 0,
    max_args: Some(2),
    columns: &[],
    run: import,
};

const POOL_COLUMNS: &[&str] = &["uuid", "name", "state", "found", "expected"];
const MEMBER_COLUMNS: &[&str] = &["pool", "index", "dev_uuid", "device"];
const STATE_IMPORTABLE: &str = "importable";
const STATE_MISSING: &str = "missing members";
const STATE_ACTIVE: &str = "active";

/// A pool found, with what configfs and the cache say about it.
struct Candidate {
    pool: ScannedPool,
    /// Name of the configfs pool that has it assembled.
    active: Option<String>,
    cached: Option<String>,
}

impl Candidate {
    fn uuid(&self) -> String {
        uuid::format(&self.pool.uuid)
    }

    fn name(&self) -> Option<&str> {
        self.active.as_deref().or(self.cached.as_deref())
    }

    fn state(&self) -> &'static str {
        if self.active.is_some() {
            STATE_ACTIVE
        } else if self.pool.complete() {
            STATE_IMPORTABLE
        } else {
            STATE_MISSING
        }
    }

    /// `pool NAME (UUID)` or `pool UUID`.
    fn label(&self) -> String {
        match self.name() {
            Some(n) => format!("pool {n} ({})", self.uuid()),
            None => format!("pool {}", self.uuid()),
        }
    }
}

/// The configfs pools: (name, UUID if active: `status` shows it).
fn defined_pools(ctx: &Ctx<'_>) -> Vec<(String, Option<uuid::Uuid>)> {
    if !ctx.backend.exists(&Obj::Root) {
        return Vec::new();
    }
    let names = ctx.backend.children(&Obj::Root).unwrap_or_default();
    names
        .into_iter()
        .map(|n| {
            let o = Obj::pool(&n);
            let u = ctx
                .status(&o)
                .ok()
                .and_then(|s| s.get("uuid").and_then(uuid::parse));
            (n, u)
        })
        .collect()
}

/// The cache, or `None` with a warning when it is corrupt or unreadable.
fn load_cache(ctx: &mut Ctx<'_>, required: bool) -> Result<Option<Cache>, Error> {
    let Some(path) = ctx.cache.clone() else {
        if required {
            return Err(Failure::new(
                "import cached pools",
                "no pool cache file (give one with --cache FILE)",
            )
            .into());
        }
        return Ok(None);
    };
    match cache::load(&path) {
        Ok(c) => Ok(c),
        Err(e) if required => Err(Failure::new("import cached pools", e)
            .note("hint: fix the file or remove it; 'zvpoolctl pool import' lists the pools found")
            .into()),
        Err(e) => {
            let _ = writeln!(ctx.err, "zvpoolctl: warning: {e}; ignored");
            Ok(None)
        }
    }
}

fn scan_all(ctx: &mut Ctx<'_>, p: &Parsed, cache: Option<&Cache>) -> Result<Vec<Candidate>, Error> {
    let dir = p.value("dir").map(Path::new);
    let (pools, bad) =
        scan::scan(ctx.backend, dir).map_err(|e| Failure::new("scan block devices", e))?;
    let denied = bad
        .iter()
        .filter(|(_, r)| r.contains("EACCES") || r.contains("EPERM"))
        .count();
    if denied > 0 {
        let _ = writeln!(
            ctx.err,
            "zvpoolctl: warning: {denied} device(s) could not be read (permission denied; run as root)"
        );
    }
    if dir.is_some() {
        // The files of a directory were named by the user: say why one
        // could not be read (the machine's own devices may be anything).
        for (path, why) in &bad {
            let _ = writeln!(ctx.err, "zvpoolctl: warning: {path}: {why}");
        }
    }
    let defined = defined_pools(ctx);
    let mut out = Vec::new();
    for pool in pools {
        let active = defined
            .iter()
            .find(|(_, u)| *u == Some(pool.uuid))
            .map(|(n, _)| n.clone());
        let cached = cache
            .and_then(|c| c.by_uuid(&pool.uuid))
            .map(|e| e.name.clone());
        out.push(Candidate {
            pool,
            active,
            cached,
        });
    }
    Ok(out)
}

fn import(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool import";
    let (all, cached_only) = (p.flag("all"), p.flag("cached"));
    if all && !p.args.is_empty() {
        return Err(Error::usage("-a imports every pool: give no NAME", cmd));
    }
    if let Some(n) = p.args.get(1) {
        check_name("pool", n, cmd)?;
    }
    let cache = load_cache(ctx, cached_only)?;
    let mut found = scan_all(ctx, p, cache.as_ref())?;
    if cached_only {
        found.retain(|c| c.cached.is_some());
    }
    if all {
        return import_all(ctx, p, &found, cache.as_ref());
    }
    let Some(target) = p.args.first() else {
        let opts = p.output(cmd)?;
        return ctx.print(&listing(&found), &opts, cmd);
    };
    let c = find(&found, target)?;
    import_one(ctx, p, c, p.args.get(1).map(String::as_str))
}

fn find<'c>(found: &'c [Candidate], target: &str) -> Result<&'c Candidate, Error> {
    let by_uuid = uuid::parse(target);
    found
        .iter()
        .find(|c| Some(c.pool.uuid) == by_uuid || c.name() == Some(target))
        .ok_or_else(|| {
            Failure::new(
                format!("import pool {target}"),
                "no such pool on the block devices (see 'zvpoolctl pool import')",
            )
            .into()
        })
}

fn listing(found: &[Candidate]) -> Vec<Section> {
    let mut pools = Table::new(POOL_COLUMNS, POOL_COLUMNS);
    let mut members = Table::new(MEMBER_COLUMNS, MEMBER_COLUMNS);
    for c in found {
        pools.push(vec![
            Value::text(c.uuid()),
            c.name().map_or(Value::Null, Value::text),
            Value::text(c.state()),
            Value::Count(c.pool.found() as u64),
            Value::Count(c.pool.members.len() as u64),
        ]);
        for (i, (m, d)) in c.pool.members.iter().zip(&c.pool.devices).enumerate() {
            members.push(vec![
                Value::text(c.name().map_or_else(|| c.uuid(), str::to_string)),
                Value::Count(i as u64),
                Value::text(uuid::format(m)),
                Value::text(d.as_deref().unwrap_or("missing")),
            ]);
        }
    }
    vec![
        Section {
            key: "pools",
            title: Some("pools"),
            layout: Layout::Rows,
            table: pools,
        },
        Section {
            key: "members",
            title: Some("members"),
            layout: Layout::Rows,
            table: members,
        },
    ]
}

/// Why the pool cannot be imported now, if it cannot (`degraded`: one
/// member may be missing).
fn refusal(ctx: &Ctx<'_>, c: &Candidate, name: Option<&str>, degraded: bool) -> Option<Failure> {
    let what = format!("import {}", c.label());
    if let Some(a) = &c.active {
        return Some(Failure::new(
            what,
            format!("the pool is already active as {a}"),
        ));
    }
    let nr_missing = c.pool.members.len().saturating_sub(c.pool.found());
    let allowed = c.pool.complete() || (degraded && nr_missing == 1);
    if !allowed {
        let missing: Vec<String> = c
            .pool
            .members
            .iter()
            .zip(&c.pool.devices)
            .enumerate()
            .filter(|(_, (_, d))| d.is_none())
            .map(|(i, (m, _))| format!("member {i} (device UUID {})", uuid::format(m)))
            .collect();
        let f = Failure::new(
            what,
            format!(
                "{} of {} members found; missing: {}",
                c.pool.found(),
                c.pool.members.len(),
                missing.join(", ")
            ),
        );
        return Some(if nr_missing > 1 {
            f.note("hint: a pool survives one missing member, not more: find the devices")
        } else {
            f.note(format!(
                "hint: import it without the missing member (its blocks read as I/O errors \
                 until it is back): zvpoolctl pool import --degraded {}",
                c.uuid()
            ))
        });
    }
    let Some(name) = name else {
        return Some(Failure::new(
            what,
            format!(
                "no name recorded for it in the pool cache; give one: zvpoolctl pool import {} NAME",
                c.uuid()
            ),
        ));
    };
    if ctx.backend.exists(&Obj::pool(name)) {
        return Some(Failure::new(
            what,
            format!("a pool named {name} is already defined (another pool); import it under another name: zvpoolctl pool import {} NEWNAME", c.uuid()),
        ));
    }
    None
}

fn import_one(
    ctx: &mut Ctx<'_>,
    p: &Parsed,
    c: &Candidate,
    newname: Option<&str>,
) -> Result<(), Error> {
    ctx.require_driver()?;
    let name = newname.or(c.cached.as_deref());
    let degraded = p.flag("degraded") && !c.pool.complete();
    if let Some(f) = refusal(ctx, c, name, p.flag("degraded")) {
        return Err(f.into());
    }
    if degraded {
        ctx.require_feature(
            "degraded-assembly",
            &format!("import {} degraded", c.label()),
        )?;
    }
    let name = name.unwrap_or_default();
    let devs = c.pool.device_list();
    ctx.say(&format!(
        "importing pool {} as {name}: {}",
        c.uuid(),
        devs.join(" ")
    ));
    let mode = if degraded {
        Mode::Degraded
    } else {
        Mode::Normal
    };
    assemble_devices(ctx, name, &devs, mode, p.flag("no-volumes"))?;
    record(ctx, name, &devs);
    Ok(())
}

fn import_all(
    ctx: &mut Ctx<'_>,
    p: &Parsed,
    found: &[Candidate],
    cache: Option<&Cache>,
) -> Result<(), Error> {
    ctx.require_driver()?;
    let mut failed = 0;
    // The cache names each pool once (a name recorded again replaces the
    // older pool's record), so two pools found cannot share a cached name.
    let mut imported = 0;
    for c in found {
        if let Some(a) = &c.active {
            ctx.say(&format!("{}: already active as {a}, skipped", c.label()));
            continue;
        }
        let r = import_one(ctx, p, c, None);
        match r {
            Ok(()) => imported += 1,
            Err(e) => {
                failed += 1;
                crate::report(&e, ctx.err);
            }
        }
    }
    // Cached pools of which no device was found at all.
    if p.flag("cached") {
        for e in cache.map(|c| c.entries.as_slice()).unwrap_or_default() {
            if !found.iter().any(|c| c.pool.uuid == e.uuid) {
                failed += 1;
                let _ = writeln!(
                    ctx.err,
                    "zvpoolctl: import pool {} ({}): no member found on the block devices",
                    e.name,
                    uuid::format(&e.uuid)
                );
            }
        }
    }
    ctx.say(&format!(
        "imported {imported} pool{}, {failed} failed",
        if imported == 1 { "" } else { "s" }
    ));
    if failed > 0 {
        return Err(Error::Exit(crate::error::EXIT_FAILED));
    }
    Ok(())
}

/// Records pool `name` (just created or assembled on `devs`) in the pool
/// cache: its UUID from `status`, its members' device UUIDs from the
/// superblock of the first device. Any failure is a warning on stderr.
pub fn record(ctx: &mut Ctx<'_>, name: &str, devs: &[String]) {
    let Some(path) = ctx.cache.clone() else {
        return;
    };
    let r = (|| -> Result<(), String> {
        let st = ctx.status(&Obj::pool(name)).map_err(|f| f.reason)?;
        let u = st
            .get("uuid")
            .and_then(uuid::parse)
            .ok_or_else(|| format!("pool {name} shows no UUID in its status"))?;
        let members = ctx
            .backend
            .open_devices(&devs[..1.min(devs.len())])
            .ok()
            .and_then(|mut set| {
                let g = set.geoms().first().copied()?;
                let sb = device_superblock(set.as_mut(), 0, &g)?;
                (sb.pool_uuid == u).then(|| {
                    sb.members
                        .iter()
                        .take(usize::from(sb.nr_members))
                        .filter(|m| !m.removed)
                        .map(|m| m.dev_uuid)
                        .collect()
                })
            })
            .unwrap_or_default();
        cache::update(&path, |c| {
            c.upsert(Entry {
                uuid: u,
                name: name.to_string(),
                members,
            });
            true
        })
    })();
    if let Err(e) = r {
        let _ = writeln!(
            ctx.err,
            "zvpoolctl: warning: pool {name} not recorded in the pool cache: {e}"
        );
    }
}
