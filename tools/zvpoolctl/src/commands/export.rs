// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume export | unexport | exports`: volumes exported as NVMe
//! namespaces through the kernel's NVMe-oF target (nvmet), configured in
//! its configfs tree (`crate::nvmet`: the state read, the operations
//! planned). nvmet's tree is what is exported now (`exports` lists it);
//! it does not survive a reboot, so `export` also records the export in
//! the pool cache (`cache.rs`, an `export` line; not with `--no-persist`)
//! and assembly (`pool assemble`, `pool import`) re-creates the exports
//! recorded for its pool once the volumes are enabled ([`reexport`]: one
//! that is already in place is kept, one that cannot be made is a warning).
//! The same NQN and the volume's identity give initiators the same
//! namespace after every re-export. `unexport` removes the record with the
//! export. A snapshot (`POOL/VOL@SNAP`) is exported read-only: bound and
//! enabled for the export (its read-only device), through nvmet's file
//! backend (`ExportSpec::read_only`), and released again by `unexport`. Also what other volume commands ask of exports: `resize` tells
//! initiators the new size, `delete` refuses an exported volume (and
//! forgets a recorded one, `qos::forget`).

use super::device::attach;
use super::ident::{self, Ident};
use super::volume::{active_pool, find, VolInfo};
use super::{split_volume_or_snapshot, Ctx, Verb};
use crate::backend::Obj;
use crate::cache::{Cache, VolExport};
use crate::cli::{OptSpec, Parsed, OPT_COLUMNS, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::{io_text, Error, Failure, OsFail};
use crate::nvmet::plan::{self, ExportAs, ExportSpec, Op, Transport};
use crate::nvmet::{self, State, Tree};
use crate::output::{Layout, Section, Table, Value};
use crate::uuid;

const OPT_NQN: OptSpec = OptSpec {
    long: "nqn",
    short: None,
    value: Some("NQN"),
    help: "the subsystem's NVMe Qualified Name (nqn.YYYY-MM.reverse.domain:name)",
};
const OPT_TRANSPORT: OptSpec = OptSpec {
    long: "transport",
    short: None,
    value: Some("TRANSPORT"),
    help: "loop (this host only; the default) or tcp",
};
const OPT_ADDR: OptSpec = OptSpec {
    long: "addr",
    short: None,
    value: Some("ADDR"),
    help: "tcp: the IPv4 or IPv6 address to listen on (required with tcp)",
};
const OPT_PORT: OptSpec = OptSpec {
    long: "port",
    short: None,
    value: Some("PORT"),
    help: "tcp: the TCP port to listen on (default 4420)",
};
const OPT_HOST: OptSpec = OptSpec {
    long: "host",
    short: None,
    value: Some("HOSTNQN"),
    help: "only this host NQN may connect (default: any host)",
};
const OPT_NO_PERSIST: OptSpec = OptSpec {
    long: "no-persist",
    short: None,
    value: None,
    help: "do not record the export in the pool cache: it ends at reboot",
};

pub const EXPORT: Verb = Verb {
    name: "export",
    usage: "export --nqn NQN [--transport TRANSPORT] [--addr ADDR] [--port PORT] [--host HOSTNQN] [--no-persist] POOL/VOL[@SNAP]",
    summary: "export a volume or a snapshot (read-only) over NVMe-oF (the kernel's nvmet target)",
    help: "Exports the enabled volume VOL as namespace 1 of a new NVMe subsystem NQN\n\
           of the kernel's NVMe-oF target (modules nvmet and nvme-loop or nvmet-tcp).\n\
           Initiators see the volume's stable identity: namespace UUID = the volume's\n\
           UUID ('volume ident'), NGUID = the same 16 bytes, subsystem serial = the\n\
           volume's serial; the same after every reboot and re-export. Any host may\n\
           connect unless --host names the one that may. With tcp, a port already\n\
           listening on ADDR:PORT is shared; otherwise a new one is made. If a step\n\
           fails, the steps done are undone in reverse order. nvmet forgets its\n\
           exports at reboot, so the export is recorded in the pool cache (--cache\n\
           FILE, default /etc/zvpool/zvpool.cache; not with --no-persist, which\n\
           also forgets one recorded before): assembly ('pool assemble', 'pool\n\
           import') exports the volume again, the same way, once it is enabled.\n\
           A snapshot VOL@SNAP is exported read-only, with its own identity: it is\n\
           bound and enabled for the export (its device is read-only) and exported\n\
           through nvmet's file backend (buffered_io <- 1: nvmet's block backend\n\
           opens its device for writing, which the kernel refuses for a read-only\n\
           disk); initiators can read it, their writes fail. 'unexport' releases it.\n\
           configfs: in /sys/kernel/config/nvmet, mkdir subsystems/NQN;\n\
           attr_allow_any_host <- 1 (or mkdir hosts/HOSTNQN if needed and link it\n\
           into allowed_hosts); attr_serial; mkdir namespaces/1; device_path <-\n\
           /dev/zvpoolN; device_uuid; device_nguid; (a snapshot: buffered_io <- 1);\n\
           enable <- 1; mkdir ports/ID and\n\
           addr_trtype, addr_adrfam, addr_traddr, addr_trsvcid (unless a port\n\
           matches); ln -s subsystems/NQN ports/ID/subsystems/NQN.",
    options: &[
        OPT_NQN,
        OPT_TRANSPORT,
        OPT_ADDR,
        OPT_PORT,
        OPT_HOST,
        OPT_NO_PERSIST,
    ],
    min_args: 1,
    max_args: Some(1),
    columns: &[],
    run: export,
};

pub const UNEXPORT: Verb = Verb {
    name: "unexport",
    usage: "unexport POOL/VOL[@SNAP]",
    summary: "stop exporting a volume or snapshot over NVMe-oF",
    help: "Removes the NVMe-oF export of volume VOL: initiators connected to it lose\n\
           their controller (nvmet deletes it). Undoes 'volume export' in reverse\n\
           order; a port left with no subsystem is removed, host entries stay. A\n\
           subsystem that has other namespaces too (made by hand) keeps them: only\n\
           the volume's namespace is removed. The export recorded in the pool cache\n\
           is forgotten (assembly no longer re-creates it); fails if the volume is\n\
           neither exported nor recorded (a recorded export of a volume that is\n\
           gone is forgotten too). A snapshot's device is then disabled and\n\
           unbound again (a warning if something else holds it open).\n\
           If a step fails, the steps done stay done: run it again after fixing\n\
           the cause (it continues from what is left).\n\
           configfs: in /sys/kernel/config/nvmet, rm ports/ID/subsystems/NQN (and\n\
           rmdir ports/ID if left empty); namespaces/N/enable <- 0; rmdir\n\
           namespaces/N; rm allowed_hosts/*; rmdir subsystems/NQN.",
    options: &[],
    min_args: 1,
    max_args: Some(1),
    columns: &[],
    run: unexport,
};

pub const EXPORTS: Verb = Verb {
    name: "exports",
    usage: "exports [-Hpj] [-o COL,...] [POOL/VOL[@SNAP]...]",
    summary: "list volumes and snapshots exported over NVMe-oF",
    help: "Lists the namespaces of nvmet's subsystems whose device is a zvpool volume\n\
           (all of them, or those of the named volumes and snapshots), one line each.\n\
           configfs: in /sys/kernel/config/nvmet, subsystems/*/namespaces/*,\n\
           subsystems/*/allowed_hosts, ports/*/addr_*, ports/*/subsystems.",
    options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_COLUMNS, OPT_JSON],
    min_args: 0,
    max_args: None,
    columns: COLUMNS_HELP,
    run: exports,
};

const COLUMNS: &[&str] = &[
    "name",
    "nqn",
    "nsid",
    "device",
    "transport",
    "port",
    "hosts",
    "enabled",
    "uuid",
    "nguid",
];
const DEFAULTS: &[&str] = &["name", "nqn", "nsid", "device", "transport"];
const COLUMNS_HELP: &[(&str, &str)] = &[
    ("name", "POOL/VOL (- if no volume has the device any more)"),
    ("nqn", "the subsystem's NQN"),
    ("nsid", "the namespace id in the subsystem"),
    ("device", "the namespace's device_path (/dev/zvpoolN)"),
    (
        "transport",
        "how initiators reach it: loop, tcp ADDR:PORT (- if no port)",
    ),
    ("port", "nvmet port ids the subsystem is linked into"),
    ("hosts", "host NQNs allowed to connect, or any"),
    ("enabled", "whether the namespace is enabled (yes, no)"),
    ("uuid", "the namespace UUID initiators see"),
    ("nguid", "the namespace NGUID initiators see"),
];

/// nvmet's tree, or why it cannot be used.
fn tree<'b>(ctx: &Ctx<'b>, what: &str) -> Result<&'b dyn Tree, Failure> {
    match ctx.backend.nvmet() {
        Some(t) if t.available() => Ok(t),
        t => Err(Failure::new(
            what,
            format!(
                "the NVMe-oF target is not available: {} has no subsystems and ports \
                 (load it: modprobe nvmet, and nvme-loop or nvmet-tcp; is configfs mounted?)",
                t.map_or_else(|| nvmet::DEFAULT_ROOT.to_string(), |t| t.location())
            ),
        )),
    }
}

fn read_state(t: &dyn Tree, what: &str) -> Result<State, Failure> {
    State::read(t)
        .map_err(|e| Failure::new(what, format!("read {}: {}", t.location(), io_text(&e))))
}

/// Runs one operation, with nvmet's (or zvpool's) logged reason on failure.
fn run_op(ctx: &mut Ctx<'_>, t: &dyn Tree, op: &Op) -> Result<(), OsFail> {
    ctx.klog.mark();
    op.run(t)
        .map_err(|e| OsFail::new(&e, ctx.klog.since_mark()))
}

/// Runs `ops` in order; on a failure the steps done are undone in reverse
/// order, each outcome a note of the failure.
fn run_all(ctx: &mut Ctx<'_>, t: &dyn Tree, ops: &[Op], what: &str) -> Result<(), Failure> {
    for (i, op) in ops.iter().enumerate() {
        let Err(e) = run_op(ctx, t, op) else {
            continue;
        };
        let mut f = e.fail(format!("{what}: {op}"));
        for done in ops[..i].iter().rev() {
            let Some(inv) = done.inverse() else {
                continue;
            };
            f = f.note(match run_op(ctx, t, &inv) {
                Ok(()) => format!("rolled back: {inv}"),
                Err(e) => format!("rollback failed: {inv}: {}", e.reason()),
            });
        }
        return Err(f);
    }
    Ok(())
}

/// Whether `name` (VOL or VOL@SNAP) is a snapshot.
fn is_snapshot(name: &str) -> bool {
    name.contains('@')
}

/// The volume or snapshot POOL/NAME of an active pool (`what` names the
/// operation in errors).
fn lookup(ctx: &Ctx<'_>, pool: &str, name: &str, what: &str) -> Result<VolInfo, Failure> {
    active_pool(ctx, pool, what)?;
    match find(ctx, pool, name)? {
        Some(v) => Ok(v),
        None if is_snapshot(name) => Err(Failure::new(
            what,
            format!("no such snapshot (see 'zvpoolctl snapshot list {pool}')"),
        )),
        None => Err(Failure::new(
            what,
            format!("no such volume (see 'zvpoolctl volume list {pool}')"),
        )),
    }
}

/// The enabled volume (or bound and enabled snapshot) POOL/NAME: its
/// identity and disk (`zvpool3`).
fn volume_disk(
    ctx: &Ctx<'_>,
    pool: &str,
    name: &str,
    what: &str,
) -> Result<(Ident, String), Failure> {
    let v = lookup(ctx, pool, name, what)?;
    let Some(dev) = v.device else {
        return Err(Failure::new(
            what,
            if is_snapshot(name) {
                "the snapshot has no block device (it is not bound and enabled: not exported)"
                    .to_string()
            } else {
                format!(
                    "the volume has no block device (it is {}; enable it first)",
                    v.state
                )
            },
        ));
    };
    let disk = nvmet::disk_of_path(std::path::Path::new(&dev));
    Ok((ident::of_disk(ctx, &disk)?, disk))
}

/// `--transport`, `--addr`, `--port` (usage errors).
fn transport(p: &Parsed, cmd: &str) -> Result<Transport, Error> {
    let trtype = p.value("transport").unwrap_or("loop");
    Transport::parse(trtype, p.value("addr"), p.value("port")).map_err(|m| Error::usage(m, cmd))
}

fn export(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume export";
    let (pool, name) = split_volume_or_snapshot(&p.args[0], cmd)?;
    let nqn = p
        .value("nqn")
        .ok_or_else(|| Error::usage("--nqn NQN is required", cmd))?;
    nvmet::check_nqn(nqn).map_err(|m| Error::usage(m, cmd))?;
    let host = p.value("host");
    if let Some(h) = host {
        nvmet::check_nqn(h).map_err(|m| Error::usage(format!("--host: {m}"), cmd))?;
    }
    let how = ExportAs {
        nqn: nqn.to_string(),
        transport: transport(p, cmd)?,
        host: host.map(str::to_string),
    };
    let what = format!("export {} {pool}/{name}", noun(name));
    if let Some(line) = export_volume(ctx, pool, name, &how, &what, false)? {
        ctx.say(&line);
    }
    let persist = !p.flag("no-persist");
    let r = ctx.update_cache(pool, |c, u| {
        if persist {
            c.record_export(VolExport {
                pool: u,
                volume: name.to_string(),
                export: how,
            })
        } else {
            c.forget_export(&u, name).is_some()
        }
    });
    if let Err(e) = r {
        let n = noun(name);
        ctx.warn(&if persist {
            format!("the export of {n} {pool}/{name} is not recorded in the pool cache (it ends at reboot): {e}")
        } else {
            format!("an export of {n} {pool}/{name} recorded before may still be in the pool cache: {e}")
        });
    }
    Ok(())
}

/// "volume" or "snapshot".
fn noun(name: &str) -> &'static str {
    if is_snapshot(name) {
        "snapshot"
    } else {
        "volume"
    }
}

/// Exports the enabled volume POOL/NAME as `how` says, with its identity:
/// `volume export`, and assembly re-creating a recorded export (`keep`:
/// the same export already in place is kept, `Ok(None)`). The line that
/// says what was done. A snapshot is bound and enabled first (and
/// released again if its export fails).
fn export_volume(
    ctx: &mut Ctx<'_>,
    pool: &str,
    name: &str,
    how: &ExportAs,
    what: &str,
    keep: bool,
) -> Result<Option<String>, Failure> {
    let attached = if is_snapshot(name) {
        lookup(ctx, pool, name, what)?;
        Some(attach(ctx, pool, name, what).map_err(|e| failure(e, what))?)
    } else {
        None
    };
    let r = (|| -> Result<Option<String>, Failure> {
        let (id, disk) = volume_disk(ctx, pool, name, what)?;
        let t = tree(ctx, what)?;
        let st = read_state(t, what)?;
        let spec = ExportSpec {
            nqn: how.nqn.clone(),
            device_path: format!("/dev/{disk}"),
            uuid: uuid::format(&id.uuid),
            nguid: uuid::nguid(&id.uuid),
            serial: uuid::serial(&id.uuid),
            transport: how.transport.clone(),
            host: how.host.clone(),
            read_only: is_snapshot(name),
        };
        if keep && plan::in_place(&st, &spec) {
            return Ok(None);
        }
        if let Some((s, n)) = st.exports_of(&disk).first() {
            return Err(Failure::new(
                what,
                format!(
                    "already exported as {} (namespace {}); 'zvpoolctl volume unexport {pool}/{name}' first",
                    s.nqn, n.nsid
                ),
            ));
        }
        let ops = plan::export(&st, &spec).map_err(|m| Failure::new(what, m))?;
        run_all(ctx, t, &ops, what)?;
        let port = ops
            .iter()
            .rev()
            .find_map(|o| match o {
                Op::Link { link, .. } if link.starts_with("ports/") => link.split('/').nth(1),
                _ => None,
            })
            .unwrap_or("?");
        let via = match &spec.transport {
            Transport::Loop => "loop".to_string(),
            Transport::Tcp { addr, svcid } if addr.contains(':') => format!("tcp [{addr}]:{svcid}"),
            Transport::Tcp { addr, svcid } => format!("tcp {addr}:{svcid}"),
        };
        Ok(Some(format!(
            "exported {}{} {pool}/{name} (/dev/{disk}) as {} namespace {} over {via} (nvmet port {port}), uuid {}",
            if spec.read_only { "read-only " } else { "" },
            noun(name),
            spec.nqn,
            plan::NSID,
            spec.uuid
        )))
    })();
    match (r, attached) {
        // Released again: bound and enabled for the export only.
        (Err(f), Some(a)) => Err(match a.detach(ctx) {
            Ok(()) => f,
            Err(d) => f.note(format!("{}: {}", d.what, d.reason)),
        }),
        (r, _) => r,
    }
}

/// The failure an `Error` of a step holds.
fn failure(e: Error, what: &str) -> Failure {
    match e {
        Error::Failed(f) => f,
        Error::Usage { msg, .. } => Failure::new(what, msg),
        Error::Exit(code) => Failure::new(what, format!("exit {code}")),
    }
}

/// Re-creates the NVMe-oF exports the pool cache records (`records`,
/// `Ctx::pool_records`) for the volumes of pool `pool`, just assembled
/// with its volumes enabled. Each export made or kept (already in place)
/// is said; one that cannot be made is one warning line naming the volume
/// and the reason, and the assembly stands.
pub fn reexport(ctx: &mut Ctx<'_>, pool: &str, records: Option<&(uuid::Uuid, Cache)>) {
    let Some((u, c)) = records else {
        return;
    };
    for e in c.exports.iter().filter(|e| &e.pool == u) {
        let (vol, nqn) = (&e.volume, &e.export.nqn);
        let what = format!("re-export {} {pool}/{vol} as {nqn}", noun(vol));
        match export_volume(ctx, pool, vol, &e.export, &what, true) {
            Ok(Some(line)) => ctx.say(&line),
            Ok(None) => ctx.say(&format!(
                "{} {pool}/{vol} is already exported as {nqn}: kept",
                noun(vol)
            )),
            Err(f) => ctx.warn(&format!("{}: {}", f.what, f.reason)),
        }
    }
}

/// How an enabled volume is exported now.
struct Exported<'b> {
    tree: &'b dyn Tree,
    /// The volume's disk (`zvpool3`).
    disk: String,
    /// The (NQN, namespace id) of each namespace that exports it.
    exports: Vec<(String, String)>,
}

/// How the enabled volume POOL/NAME is exported now.
fn exported_now<'b>(
    ctx: &Ctx<'b>,
    pool: &str,
    name: &str,
    what: &str,
) -> Result<Exported<'b>, Failure> {
    let (_, disk) = volume_disk(ctx, pool, name, what)?;
    let tree = tree(ctx, what)?;
    let st = read_state(tree, what)?;
    let exports = st
        .exports_of(&disk)
        .iter()
        .map(|(s, n)| (s.nqn.clone(), n.nsid.clone()))
        .collect();
    Ok(Exported {
        tree,
        disk,
        exports,
    })
}

/// Forgets the export the pool cache records of volume POOL/NAME (warnings
/// only); the NQN it had.
fn forget_record(ctx: &mut Ctx<'_>, pool: &str, name: &str) -> Option<String> {
    // No UUID: no active pool, nothing of it to reach in the cache.
    ctx.pool_uuid(pool)?;
    let mut forgot = None;
    let r = ctx.update_cache(pool, |c, u| {
        forgot = c.forget_export(&u, name);
        forgot.is_some()
    });
    if let Err(e) = r {
        ctx.warn(&format!(
            "an export of {} {pool}/{name} may still be recorded in the pool cache: {e}",
            noun(name)
        ));
    }
    forgot.map(|e| e.export.nqn)
}

fn unexport(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let (pool, name) = split_volume_or_snapshot(&p.args[0], "volume unexport")?;
    let n = noun(name);
    let what = format!("unexport {n} {pool}/{name}");
    let now = exported_now(ctx, pool, name, &what);
    // Forgotten first: the export is not made again at boot even if its
    // removal from nvmet fails half-way.
    let forgot = forget_record(ctx, pool, name);
    let Exported {
        tree: t,
        disk,
        exports,
    } = match (now, forgot) {
        (Ok(now), _) if !now.exports.is_empty() => now,
        (_, Some(nqn)) => {
            ctx.say(&format!(
                "forgot the recorded export of {n} {pool}/{name} as {nqn} (it was not exported)"
            ));
            return Ok(());
        }
        (Err(f), None) => return Err(f.into()),
        (Ok(_), None) => {
            return Err(Failure::new(
                what,
                format!("the {n} is not exported over NVMe-oF (see 'zvpoolctl volume exports')"),
            )
            .into())
        }
    };
    for (nqn, nsid) in exports {
        // Read again: an earlier export's removal changed the ports.
        let st = read_state(t, &what)?;
        for op in plan::unexport(&st, &nqn, &nsid) {
            run_op(ctx, t, &op).map_err(|e| {
                e.fail(format!("{what}: {op}")).note(format!(
                    "the export {nqn} is partly removed; run 'zvpoolctl volume unexport \
                     {pool}/{name}' again once the cause is fixed"
                ))
            })?;
        }
        ctx.say(&format!(
            "unexported {n} {pool}/{name} (/dev/{disk}): {nqn} namespace {nsid}"
        ));
    }
    if is_snapshot(name) {
        release_snapshot(ctx, pool, name);
    }
    Ok(())
}

/// Disables and unbinds the snapshot POOL/NAME that `volume export` bound
/// and enabled for its export; a warning if it cannot be (something else
/// holds its device open).
fn release_snapshot(ctx: &mut Ctx<'_>, pool: &str, name: &str) {
    let o = Obj::volume(pool, name);
    let r = ctx
        .write(&o, "enable", "0")
        .map_err(|e| e.fail(format!("disable snapshot {pool}/{name}")))
        .and_then(|()| {
            ctx.rmdir(&o)
                .map_err(|e| e.fail(format!("unbind snapshot {pool}/{name}")))
        });
    if let Err(f) = r {
        ctx.warn(&format!(
            "{}: {} (its device stays; 'rmdir' its configfs directory once it is free)",
            f.what, f.reason
        ));
    }
}

fn exports(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume exports";
    let opts = p.output(cmd)?;
    let mut wanted = Vec::new();
    for a in &p.args {
        let (pool, name) = split_volume_or_snapshot(a, cmd)?;
        let what = format!("{} {pool}/{name}", noun(name));
        wanted.push(volume_disk(ctx, pool, name, &what)?.1);
    }
    let t = tree(ctx, "list NVMe-oF exports")?;
    let st = read_state(t, "list NVMe-oF exports")?;
    let mut table = Table::new(COLUMNS, DEFAULTS);
    for s in &st.subsystems {
        for n in &s.namespaces {
            let is_volume = n
                .disk
                .strip_prefix("zvpool")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            if !is_volume || (!p.args.is_empty() && !wanted.contains(&n.disk)) {
                continue;
            }
            let name = ident::of_disk(ctx, &n.disk).map_or(Value::Null, |i| {
                Value::Text(format!("{}/{}", i.pool, i.volume))
            });
            let ports = st.ports_of(&s.nqn);
            let text = |v: Vec<String>| {
                if v.is_empty() {
                    Value::Null
                } else {
                    Value::Text(v.join(","))
                }
            };
            table.push(vec![
                name,
                Value::text(s.nqn.as_str()),
                Value::text(n.nsid.as_str()),
                Value::text(n.device_path.as_str()),
                text(ports.iter().map(|p| p.address()).collect()),
                text(ports.iter().map(|p| p.id.clone()).collect()),
                if s.allow_any_host {
                    Value::text("any")
                } else {
                    text(s.hosts.clone())
                },
                Value::text(if n.enabled { "yes" } else { "no" }),
                Value::text(n.uuid.as_str()),
                Value::text(n.nguid.as_str()),
            ]);
        }
    }
    let doc = vec![Section {
        key: "exports",
        title: None,
        layout: Layout::Rows,
        table,
    }];
    ctx.print(&doc, &opts, cmd)
}

/// After a resize of the volume on `disk`: tells initiators of its NVMe-oF
/// exports the new size (`revalidate_size`). Returns the NQNs told; with
/// no nvmet or no export, none.
pub fn revalidate(ctx: &mut Ctx<'_>, disk: &str, what: &str) -> Result<Vec<String>, Failure> {
    let Some(t) = ctx.backend.nvmet().filter(|t| t.available()) else {
        return Ok(Vec::new());
    };
    let st = read_state(t, what)?;
    let mut told = Vec::new();
    for op in plan::revalidate(&st, disk) {
        run_op(ctx, t, &op).map_err(|e| {
            e.fail(format!("{what}: {op}")).note(
                "the volume has its new size, but initiators were not told: \
                 write 1 to that revalidate_size again",
            )
        })?;
        if let Op::Write { path, .. } = &op {
            told.extend(path.split('/').nth(1).map(str::to_string));
        }
    }
    Ok(told)
}

/// The NQNs that export `disk` (`volume delete` refuses such a volume).
pub fn exported_as(ctx: &Ctx<'_>, disk: &str) -> Vec<String> {
    let Some(t) = ctx.backend.nvmet().filter(|t| t.available()) else {
        return Vec::new();
    };
    State::read(t)
        .map(|st| {
            st.exports_of(disk)
                .iter()
                .map(|(s, _)| s.nqn.clone())
                .collect()
        })
        .unwrap_or_default()
}
