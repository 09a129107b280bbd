// SPDX-License-Identifier: GPL-2.0
//! The command table and what the commands share: the context (backend,
//! kernel log, output), checked backend calls that fetch the kernel's reason
//! on failure, rollback of multi-step operations, and name checks.
//!
//! New nouns (`migrate`, ...) are a module with a `NOUN` entry added to
//! `NOUNS`; the parser, help and docs follow the table.

pub mod check;
pub mod device;
pub mod evacuate;
pub mod events;
pub mod export;
pub mod health;
pub mod ident;
pub mod image;
pub mod import;
pub mod migrate;
pub mod pool;
pub mod props;
pub mod qos;
pub mod scrub;
pub mod snapshot;
pub mod stream;
pub mod volume;

use crate::abi::{self, KeyValues};
use crate::backend::{Backend, Obj};
use crate::cache::{self, Cache};
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure, OsFail};
use crate::klog::KernelLog;
use crate::output::{self, Doc, OutputOpts};
use std::io::{Read, Write};

/// A subcommand: `pool create`, `volume list`, ...
#[derive(Debug)]
pub struct Verb {
    pub name: &'static str,
    /// Arguments after the verb, for usage lines (`[-f] NAME DEV...`).
    pub usage: &'static str,
    /// One line for the command lists.
    pub summary: &'static str,
    /// The description shown by `--help`.
    pub help: &'static str,
    pub options: &'static [OptSpec],
    pub min_args: usize,
    pub max_args: Option<usize>,
    /// Output columns (name, meaning) for `-o`, listed in `--help`.
    pub columns: &'static [(&'static str, &'static str)],
    pub run: fn(&mut Ctx<'_>, &Parsed) -> Result<(), Error>,
}

/// A command noun and its verbs.
#[derive(Debug)]
pub struct Noun {
    pub name: &'static str,
    pub help: &'static str,
    pub verbs: &'static [Verb],
}

/// All commands.
pub static NOUNS: &[Noun] = &[pool::NOUN, volume::NOUN, snapshot::NOUN];

/// What a command runs with.
pub struct Ctx<'a> {
    pub backend: &'a dyn Backend,
    pub klog: &'a mut dyn KernelLog,
    /// Standard input (`snapshot receive` reads its stream there).
    pub input: &'a mut dyn Read,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// The pool cache file (`--cache`; the default only with the kernel's
    /// configfs, never for a test root).
    pub cache: Option<std::path::PathBuf>,
}

impl Ctx<'_> {
    /// Fails unless the driver's configfs directory is there.
    pub fn require_driver(&self) -> Result<(), Failure> {
        if self.backend.exists(&Obj::Root) {
            Ok(())
        } else {
            Err(Failure::new(
                self.backend.location(),
                "zvpool is not available (is the zvpool module loaded and configfs mounted?)",
            ))
        }
    }

    /// Fails unless the pool is defined.
    pub fn require_pool(&self, pool: &str) -> Result<Obj, Failure> {
        self.require_driver()?;
        let o = Obj::pool(pool);
        if self.backend.exists(&o) {
            Ok(o)
        } else {
            Err(Failure::new(
                format!("pool {pool}"),
                "no such pool (see 'zvpoolctl pool list')",
            ))
        }
    }

    fn checked(
        &mut self,
        f: impl FnOnce(&dyn Backend) -> std::io::Result<()>,
    ) -> Result<(), OsFail> {
        self.klog.mark();
        f(self.backend).map_err(|e| OsFail::new(&e, self.klog.since_mark()))
    }

    /// `mkdir`, with the kernel's reason on failure.
    pub fn mkdir(&mut self, obj: &Obj) -> Result<(), OsFail> {
        self.checked(|b| b.create(obj))
    }

    /// `rmdir`, with the kernel's reason on failure.
    pub fn rmdir(&mut self, obj: &Obj) -> Result<(), OsFail> {
        self.checked(|b| b.remove(obj))
    }

    /// Attribute write, with the kernel's reason on failure.
    pub fn write(&mut self, obj: &Obj, attr: &str, value: &str) -> Result<(), OsFail> {
        self.checked(|b| b.write_attr(obj, attr, value))
    }

    /// Attribute write whose failure carries every `zvpool:` line about
    /// `pool` logged meanwhile (any level, oldest first, at most 20): a
    /// refused assembly logs its reason, what is damaged and hints.
    pub fn write_logged(
        &mut self,
        obj: &Obj,
        attr: &str,
        value: &str,
        pool: &str,
    ) -> Result<(), OsFail> {
        self.klog.mark();
        self.backend.write_attr(obj, attr, value).map_err(|e| {
            let a = format!("zvpool: {pool}:");
            let b = format!("zvpool: {pool}/");
            let mut lines: Vec<String> = self
                .klog
                .all_since_mark()
                .into_iter()
                .map(|(_, m)| m)
                .filter(|m| m.starts_with(&a) || m.starts_with(&b))
                .collect();
            if lines.len() > 20 {
                lines.drain(..lines.len() - 20);
            }
            OsFail::new(&e, lines)
        })
    }

    /// Attribute read; the failure names the attribute.
    pub fn read(&self, obj: &Obj, attr: &str) -> Result<String, Failure> {
        self.backend
            .read_attr(obj, attr)
            .map_err(|e| OsFail::new(&e, Vec::new()).fail(format!("read {obj}/{attr}")))
    }

    pub fn children(&self, obj: &Obj) -> Result<Vec<String>, Failure> {
        self.backend
            .children(obj)
            .map_err(|e| OsFail::new(&e, Vec::new()).fail(format!("list {obj}")))
    }

    /// A pool's `status`.
    pub fn status(&self, pool: &Obj) -> Result<KeyValues, Failure> {
        Ok(KeyValues::parse(&self.read(pool, "status")?))
    }

    /// The pool's UUID (from its status), for the pool cache.
    pub fn pool_uuid(&self, pool: &str) -> Option<crate::uuid::Uuid> {
        let st = self.status(&Obj::pool(pool)).ok()?;
        st.get("uuid").and_then(crate::uuid::parse)
    }

    /// The pool cache and the UUID of the active pool `pool` whose records
    /// assembly applies; `None` without a cache file or a UUID, and (with
    /// a warning) when the cache cannot be read.
    pub fn pool_records(&mut self, pool: &str) -> Option<(crate::uuid::Uuid, Cache)> {
        let path = self.cache.clone()?;
        let u = self.pool_uuid(pool)?;
        match cache::load(&path) {
            Ok(c) => Some((u, c?)),
            Err(e) => {
                self.warn(&format!(
                    "the volume I/O limits and NVMe-oF exports of pool {pool} recorded in \
                     the pool cache are not applied: {e}"
                ));
                None
            }
        }
    }

    /// Changes the pool cache: `f` gets it with the UUID of the active pool
    /// `pool` and says whether it changed it. Without a cache file nothing
    /// is done; `Err` is the text of a warning (the cache cannot be
    /// updated never fails a command).
    pub fn update_cache(
        &self,
        pool: &str,
        f: impl FnOnce(&mut Cache, crate::uuid::Uuid) -> bool,
    ) -> Result<(), String> {
        let Some(path) = &self.cache else {
            return Ok(());
        };
        let u = self
            .pool_uuid(pool)
            .ok_or_else(|| format!("pool {pool} shows no UUID"))?;
        cache::update(path, |c| f(c, u))
    }

    /// `zvpoolctl: warning: MSG` on stderr.
    pub fn warn(&mut self, msg: &str) {
        let _ = writeln!(self.err, "zvpoolctl: warning: {msg}");
    }

    /// Whether the pool is active (`state active` in `status`).
    pub fn pool_active(&self, pool: &Obj) -> Result<bool, Failure> {
        Ok(self.status(pool)?.get("state") == Some("active"))
    }

    /// Fails if the driver says (root `features`) that it lacks `feature`; a
    /// `features` file that cannot be read lets the operation go on (the
    /// kernel's answer to it will say what is wrong).
    pub fn require_feature(&self, feature: &str, what: &str) -> Result<(), Failure> {
        let Ok(text) = self.backend.read_attr(&Obj::Root, "features") else {
            return Ok(());
        };
        let words = abi::parse_features(&text);
        if words.iter().any(|w| w == feature) {
            return Ok(());
        }
        Err(Failure::new(
            what,
            format!(
                "the loaded zvpool module does not support {feature} (features: {}); \
                 load a newer zvpool module",
                if words.is_empty() {
                    "none".to_string()
                } else {
                    words.join(" ")
                }
            ),
        ))
    }

    /// The volumes in the pool's metadata: all of them from the control
    /// device; without one (an older module), the one page configfs lists,
    /// the rest reported on stderr.
    pub fn meta_volumes(&self, pool: &Obj) -> Result<Vec<abi::VolumeEntry>, Failure> {
        if let Obj::Pool(name) = pool {
            // A control device error (say, the pool is not active) leaves
            // it to configfs to answer.
            if let Ok(Some(text)) = self.backend.control(&format!("volumes {name}")) {
                return abi::parse_volumes(&text)
                    .map_err(|e| Failure::new(format!("{name}: control device listing"), e));
            }
        }
        let text = self.read(pool, "volumes")?;
        let n = abi::unlisted_volumes(&text);
        if n > 0 {
            eprintln!("zvpoolctl: {pool}: {n} more volumes exist than the kernel lists in one page; they are left out");
        }
        abi::parse_volumes(&text).map_err(|e| Failure::new(format!("read {pool}/volumes"), e))
    }

    /// Prints a line on stdout (output errors such as EPIPE are ignored).
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    pub fn print(&mut self, doc: &Doc, opts: &OutputOpts, cmd: &str) -> Result<(), Error> {
        let text = output::render(doc, opts).map_err(|m| Error::usage(m, cmd))?;
        let _ = self.out.write_all(text.as_bytes());
        Ok(())
    }
}

/// One undo step of a multi-step operation.
#[derive(Debug, Clone)]
pub enum UndoStep {
    Mkdir(Obj),
    Rmdir(Obj),
    Write(Obj, &'static str, String),
    /// Unbind (rmdir) a volume, then delete it from the pool's metadata
    /// (`delete_volume`, which refuses bound volumes).
    DeleteVolume(String, String),
}

/// Undo log: on failure the steps run in reverse order; each outcome becomes a
/// note of the failure (`rolled back: ...` or `rollback failed: ...`).
#[derive(Debug, Default)]
pub struct Undo {
    steps: Vec<(UndoStep, String)>,
}

impl Undo {
    pub fn new() -> Self {
        Undo::default()
    }

    /// Records how to undo a step; `done` describes the undo (`removed pool tank`).
    pub fn push(&mut self, step: UndoStep, done: impl Into<String>) {
        self.steps.push((step, done.into()));
    }

    /// Replaces the undo of the last step (a later step changed what undoing
    /// means, e.g. writing `size` put a new volume into the metadata).
    pub fn replace_last(&mut self, step: UndoStep, done: impl Into<String>) {
        self.steps.pop();
        self.push(step, done);
    }

    /// Runs the undo steps and attaches their outcome to the failure.
    pub fn rollback(self, ctx: &mut Ctx<'_>, f: Failure) -> Error {
        let mut notes = Vec::new();
        for (step, done) in self.steps.into_iter().rev() {
            let r = match &step {
                UndoStep::Mkdir(o) => ctx.mkdir(o),
                UndoStep::Rmdir(o) => ctx.rmdir(o),
                UndoStep::Write(o, a, v) => ctx.write(o, a, v),
                UndoStep::DeleteVolume(p, v) => {
                    let vol = Obj::volume(p, v);
                    let r = if ctx.backend.exists(&vol) {
                        ctx.rmdir(&vol)
                    } else {
                        Ok(())
                    };
                    r.and_then(|()| ctx.write(&Obj::pool(p), "delete_volume", v))
                }
            };
            notes.push(match r {
                Ok(()) => format!("rolled back: {done}"),
                Err(e) => format!("rollback failed: {done}: {}", e.reason()),
            });
        }
        Error::Failed(f.notes(notes))
    }
}

/// The ABI's name rule for pools (1-31 characters `[A-Za-z0-9_.-]`); volumes
/// follow it too, and may not take the name of a pool attribute. `@` is only
/// part of snapshot names (see `check_snapshot_name`).
pub fn check_name(kind: &str, name: &str, cmd: &str) -> Result<(), Error> {
    if kind == "volume" && name.contains('@') {
        return Err(Error::usage(
            format!(
                "invalid volume name {name:?}: '@' only separates a volume and a snapshot \
                 (POOL/VOL@SNAP names a snapshot)"
            ),
            cmd,
        ));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > 31 || !ok_chars || name == "." || name == ".." {
        return Err(Error::usage(
            format!("invalid {kind} name {name:?}: 1-31 characters A-Z a-z 0-9 _ . -"),
            cmd,
        ));
    }
    if name.starts_with('-') {
        return Err(Error::usage(
            format!("invalid {kind} name {name:?}: starts with '-'"),
            cmd,
        ));
    }
    if kind == "volume" && pool::ATTRS.contains(&name) {
        return Err(Error::usage(
            format!("invalid volume name {name:?}: reserved (a pool attribute)"),
            cmd,
        ));
    }
    Ok(())
}

/// A snapshot's name in its pool, `VOL@SNAP`: VOL a valid volume name, SNAP
/// 1 or more characters `[A-Za-z0-9_.-]`, the whole at most 31 characters
/// (it is the name of a volume of the pool and of its configfs directory).
/// Returns (VOL, SNAP).
pub fn check_snapshot_name<'s>(name: &'s str, cmd: &str) -> Result<(&'s str, &'s str), Error> {
    let bad = |why: &str| Error::usage(format!("invalid snapshot name {name:?}: {why}"), cmd);
    let (vol, snap) = name
        .split_once('@')
        .ok_or_else(|| bad("expected VOL@SNAP"))?;
    if snap.contains('@') {
        return Err(bad("more than one '@'"));
    }
    if vol.is_empty() || snap.is_empty() {
        return Err(bad("expected VOL@SNAP (neither part may be empty)"));
    }
    check_name("volume", vol, cmd)?;
    if !snap
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(bad("the snapshot part may only have A-Z a-z 0-9 _ . -"));
    }
    if name.len() > 31 {
        return Err(bad("longer than 31 characters (VOL@SNAP as a whole)"));
    }
    Ok((vol, snap))
}

/// `POOL/VOL`, both names checked. A snapshot name (`POOL/VOL@SNAP`) is
/// refused, with a pointer to the snapshot commands.
pub fn split_volume<'s>(spec: &'s str, cmd: &str) -> Result<(&'s str, &'s str), Error> {
    let (p, v) = spec
        .split_once('/')
        .ok_or_else(|| Error::usage(format!("expected POOL/VOLUME, got {spec:?}"), cmd))?;
    check_name("pool", p, cmd)?;
    if v.contains('@') && check_snapshot_name(v, cmd).is_ok() {
        return Err(Error::usage(
            format!("{spec} is a snapshot, not a volume (see 'zvpoolctl snapshot --help')"),
            cmd,
        ));
    }
    check_name("volume", v, cmd)?;
    Ok((p, v))
}

/// `POOL/VOL@SNAP`: (pool, `VOL@SNAP`, VOL).
pub fn split_snapshot<'s>(spec: &'s str, cmd: &str) -> Result<(&'s str, &'s str, &'s str), Error> {
    let (p, s) = spec
        .split_once('/')
        .ok_or_else(|| Error::usage(format!("expected POOL/VOL@SNAP, got {spec:?}"), cmd))?;
    check_name("pool", p, cmd)?;
    if !s.contains('@') {
        return Err(Error::usage(
            format!("expected POOL/VOL@SNAP, got {spec:?} (a volume, not a snapshot)"),
            cmd,
        ));
    }
    let (vol, _) = check_snapshot_name(s, cmd)?;
    Ok((p, s, vol))
}

/// `POOL/VOL` or `POOL/VOL@SNAP`: (pool, name in the pool).
pub fn split_volume_or_snapshot<'s>(spec: &'s str, cmd: &str) -> Result<(&'s str, &'s str), Error> {
    if spec.contains('@') {
        let (p, s, _) = split_snapshot(spec, cmd)?;
        Ok((p, s))
    } else {
        split_volume(spec, cmd)
    }
}
