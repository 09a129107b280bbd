// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume set POOL/VOL PROPERTY=VALUE...`: a volume's I/O
//! limits (issue 20), the read-write attributes `riops`, `wiops`, `rbps`,
//! `wbps` of its configfs directory (cgroup v2 `io.max` names), and its
//! space rules, `quota_bytes` and `reservation_bytes` (ZFS `refquota` and
//! `refreservation`). The space rules are pool metadata (the kernel commits
//! them). The kernel keeps no I/O limit across a stop, so those are
//! recorded with the volume in the pool cache (`cache.rs`) and applied
//! again when assembly (`pool assemble`, `pool import`) binds the volume.
//! New settings are one more entry in `SETTINGS`.

use super::volume::{active_pool, bind_existing};
use super::{split_volume, Ctx, Undo, UndoStep, Verb};
use crate::abi::KeyValues;
use crate::backend::Obj;
use crate::cache;
use crate::cli::Parsed;
use crate::error::{Error, Failure, OsFail, EACCES, EINVAL, ENOENT, ENOSPC, EROFS};
use crate::output::Value;
use crate::size;
use crate::uuid;

/// How a setting's VALUE reads and shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// I/Os per second: a decimal; 0 or `max` is unlimited.
    Iops,
    /// Bytes per second: a size; 0 or `max` is unlimited.
    Rate,
    /// Space in bytes: a size (the kernel rounds it up to 4 KiB); 0 or
    /// `none` is none.
    Space,
}

/// A setting of `volume set`.
#[derive(Debug)]
pub struct Setting {
    /// Its name in `volume set`, in the output columns and in the cache.
    pub name: &'static str,
    /// The attribute of the volume's configfs directory (decimal).
    pub attr: &'static str,
    pub kind: Kind,
    /// Kept in the pool cache and set again at assembly (the kernel forgets
    /// it at a stop); `false`: the pool's metadata keeps it.
    pub cached: bool,
}

/// The number of settings.
pub const N_SETTINGS: usize = 6;

/// Values of all settings, in the order of [`SETTINGS`] (0: unlimited or
/// none).
pub type Values = [u64; N_SETTINGS];

/// All settings of a volume, in the order of [`Values`].
pub const SETTINGS: [Setting; N_SETTINGS] = [
    Setting {
        name: "riops",
        attr: "riops",
        kind: Kind::Iops,
        cached: true,
    },
    Setting {
        name: "wiops",
        attr: "wiops",
        kind: Kind::Iops,
        cached: true,
    },
    Setting {
        name: "rbps",
        attr: "rbps",
        kind: Kind::Rate,
        cached: true,
    },
    Setting {
        name: "wbps",
        attr: "wbps",
        kind: Kind::Rate,
        cached: true,
    },
    Setting {
        name: "quota",
        attr: "quota_bytes",
        kind: Kind::Space,
        cached: false,
    },
    Setting {
        name: "reservation",
        attr: "reservation_bytes",
        kind: Kind::Space,
        cached: false,
    },
];

impl Setting {
    /// Parses `VALUE` (the error is a usage error's message).
    fn parse(&self, v: &str) -> Result<u64, String> {
        let name = self.name;
        match self.kind {
            Kind::Iops | Kind::Rate if v.eq_ignore_ascii_case("max") => Ok(0),
            Kind::Space if v.eq_ignore_ascii_case("none") => Ok(0),
            Kind::Iops => v
                .parse()
                .map_err(|_| format!("invalid {name} {v:?}: a number of I/Os per second, or max")),
            Kind::Rate | Kind::Space => size::parse_size(v).map_err(|e| format!("{name}: {e}")),
        }
    }

    /// A value as `volume set` reports it.
    fn show(&self, v: u64) -> String {
        match (self.kind, v) {
            (Kind::Iops | Kind::Rate, 0) => "unlimited".to_string(),
            (Kind::Space, 0) => "none".to_string(),
            (Kind::Space, v) => size::human(v),
            (_, v) => v.to_string(),
        }
    }

    /// A value as the output shows it (`None`: unknown).
    pub fn value(&self, v: Option<u64>) -> Value {
        match self.kind {
            Kind::Iops => Value::opt_count(v),
            Kind::Rate => Value::opt_bytes(v),
            Kind::Space => Value::opt_limit(v),
        }
    }

    /// What a module without the attribute lacks.
    fn feature(&self) -> &'static str {
        match self.kind {
            Kind::Iops | Kind::Rate => "no I/O limits",
            Kind::Space => "no quotas or reservations",
        }
    }
}

pub const SET: Verb = Verb {
    name: "set",
    usage: "set POOL/VOL PROPERTY=VALUE...",
    summary: "set I/O limits, quota and reservation of a volume",
    help: "Sets properties of volume VOL, online (also while it is open and busy),\n\
           in the order given; the next request sees them.\n\
           I/O limits (the names of cgroup v2's io.max):\n  \
             riops=N   read I/Os per second\n  \
             wiops=N   write I/Os per second\n  \
             rbps=SIZE read bytes per second: bytes or K M G T (powers of 1024)\n  \
             wbps=SIZE write bytes per second\n\
           0 or 'max' is unlimited (the default). Each limit is a token bucket\n\
           with a burst allowance of 100 ms at the limit; a request larger than\n\
           that still passes and the following ones wait for it. Only reads and\n\
           writes are limited (not flushes, discards, write zeroes); other\n\
           volumes are never slowed by this one's limits.\n\
           Space rules (sizes as above, rounded up to 4 KiB; 0 or 'none' is none,\n\
           the default):\n  \
             quota=SIZE        the most the volume may map: the data it refers\n                    \
                               to, shared with its snapshots or not (ZFS refquota)\n  \
             reservation=SIZE  space kept for the volume that no other volume\n                    \
                               may take (ZFS refreservation); at most the\n                    \
                               volume's size, refused if the pool cannot hold it\n\
           A write that would newly map blocks past the volume's quota, or into\n\
           space the reservations of other volumes and the pool reserve ('pool\n\
           set NAME pool_reserve_pct=PCT') hold, fails with ENOSPC for that volume\n\
           only; overwrites of mapped blocks go on. Snapshots take neither. If\n\
           one property cannot be set, the ones set before it get their old\n\
           values back.\n\
           The properties are set in the volume's configfs directory (a volume\n\
           that is not bound is bound). Quotas and reservations are pool\n\
           metadata (committed by the kernel, back with the pool). The I/O\n\
           limits are recorded in the pool cache (--cache FILE, default\n\
           /etc/zvpool/zvpool.cache): assembly ('pool assemble', 'pool import')\n\
           sets them again when it binds the volume, before enabling it.\n\
           configfs: POOL/VOL/riops, wiops, rbps, wbps <- N (decimal, 0 = unlimited);\n\
           POOL/VOL/quota_bytes, reservation_bytes <- bytes (decimal, 0 = none).",
    options: &[],
    min_args: 2,
    max_args: None,
    columns: &[],
    run: set,
};

/// The settings of a bound volume as its attributes say, in the order of
/// [`SETTINGS`]; `None` for one the module lacks or that does not parse.
pub fn read_values(ctx: &Ctx<'_>, vol: &Obj) -> [Option<u64>; N_SETTINGS] {
    SETTINGS.each_ref().map(|s| read_value(ctx, vol, s))
}

fn read_value(ctx: &Ctx<'_>, vol: &Obj, s: &Setting) -> Option<u64> {
    ctx.backend
        .read_attr(vol, s.attr)
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

fn set(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume set";
    let (pool, name) = split_volume(&p.args[0], cmd)?;
    // Every assignment is checked before anything is written.
    let mut todo: Vec<(&'static Setting, u64)> = Vec::new();
    for a in &p.args[1..] {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("expected PROPERTY=VALUE, got {a:?}"), cmd))?;
        let Some(s) = SETTINGS.iter().find(|s| s.name == k) else {
            let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
            return Err(Error::usage(
                format!("unknown property {k:?}; properties: {}", names.join(", ")),
                cmd,
            ));
        };
        if todo.iter().any(|(t, _)| t.name == s.name) {
            return Err(Error::usage(format!("property {k} given twice"), cmd));
        }
        let value = s.parse(v).map_err(|e| Error::usage(e, cmd))?;
        todo.push((s, value));
    }
    let what = format!("set properties of volume {pool}/{name}");
    let po = active_pool(ctx, pool, &what)?;
    let (vol, _) = bind_existing(ctx, &po, pool, name, &what)?;
    let mut undo = Undo::new();
    let mut done = Vec::new();
    let mut quota = None;
    for (s, value) in todo {
        let what = format!("set {} of volume {vol}", s.name);
        let old = match ctx.backend.read_attr(&vol, s.attr) {
            Ok(t) => t.trim().to_string(),
            Err(_) => {
                let f = Failure::new(
                    what,
                    format!(
                        "the loaded zvpool module has no {} attribute ({}); \
                         load a newer zvpool module",
                        s.attr,
                        s.feature()
                    ),
                );
                return Err(undo.rollback(ctx, f));
            }
        };
        if let Err(e) = ctx.write(&vol, s.attr, &value.to_string()) {
            let f = refused(ctx, &e, what, s, value, (pool, &vol));
            return Err(undo.rollback(ctx, f));
        }
        undo.push(
            UndoStep::Write(vol.clone(), s.attr, old.clone()),
            format!("{} of volume {vol} back to {old}", s.name),
        );
        // The value in force (the kernel rounds sizes up to blocks).
        let new = read_value(ctx, &vol, s).unwrap_or(value);
        if s.attr == "quota_bytes" {
            quota = Some(new);
        }
        let shown_old = old.parse().map_or(old, |v| s.show(v));
        done.push(format!(
            "set {} of volume {vol}: {shown_old} -> {}",
            s.name,
            s.show(new)
        ));
    }
    for line in done {
        ctx.say(&line);
    }
    if let Some(q) = quota.filter(|q| *q > 0) {
        warn_over_quota(ctx, &vol, q);
    }
    record(ctx, pool, name, &vol);
    Ok(())
}

/// The failure of a refused write of setting `s` (`value`) of volume
/// `vol` of `pool`.
fn refused(
    ctx: &Ctx<'_>,
    e: &OsFail,
    what: String,
    s: &Setting,
    value: u64,
    (pool, vol): (&str, &Obj),
) -> Failure {
    if e.is(ENOENT) || e.is(EACCES) {
        return e.fail_because(
            what,
            &format!("the loaded zvpool module has {}", s.feature()),
        );
    }
    if s.kind != Kind::Space {
        return e.fail(what);
    }
    if e.is(EROFS) {
        return e.fail_because(
            what,
            "the volume is read-only (a snapshot): snapshots take no quota or reservation",
        );
    }
    let reservation = s.attr == "reservation_bytes";
    if reservation && e.is(ENOSPC) {
        let available = ctx
            .status(&Obj::pool(pool))
            .ok()
            .and_then(|st| st.u64("available_bytes").ok().flatten());
        let avail = available.map_or(String::new(), |a| {
            format!(" ({} of the pool is available)", size::human(a))
        });
        return e.fail_because(
            what,
            &format!(
                "the pool cannot hold a reservation of {} now{avail}; see 'zvpoolctl pool \
                 status {pool}'",
                size::human(value)
            ),
        );
    }
    if reservation && e.is(EINVAL) {
        let vsize = ctx
            .backend
            .read_attr(vol, "size")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map_or(String::new(), |b| format!(" ({})", size::human(b)));
        return e.fail_because(
            what,
            &format!("a reservation cannot be larger than the volume{vsize}"),
        );
    }
    e.fail(what)
}

/// A warning if the volume already maps more than its new quota.
fn warn_over_quota(ctx: &mut Ctx<'_>, vol: &Obj, quota: u64) {
    let mapped = ctx
        .backend
        .read_attr(vol, "usage")
        .ok()
        .and_then(|t| KeyValues::parse(&t).u64("mapped_bytes").ok().flatten());
    if let Some(m) = mapped.filter(|m| *m > quota) {
        ctx.warn(&format!(
            "volume {vol} already maps {}, more than its quota {}: writes to blocks it \
             does not map fail with ENOSPC until data is discarded or the quota is raised",
            size::human(m),
            size::human(quota)
        ));
    }
}

/// Records the volume's settings in force in the pool cache (warnings
/// only).
fn record(ctx: &mut Ctx<'_>, pool: &str, name: &str, vol: &Obj) {
    let mut values = read_values(ctx, vol).map(|v| v.unwrap_or(0));
    for (v, s) in values.iter_mut().zip(SETTINGS.iter()) {
        if !s.cached {
            *v = 0;
        }
    }
    if let Err(e) = ctx.update_cache(pool, |c, u| c.set_limits(u, name, values)) {
        ctx.warn(&format!(
            "properties of {vol} not recorded in the pool cache: {e}"
        ));
    }
}

/// Forgets what the pool cache records of volume `name` of `pool` (the
/// volume was deleted): its settings and its NVMe-oF export; warnings
/// only.
pub fn forget(ctx: &mut Ctx<'_>, pool: &str, name: &str) {
    if ctx.pool_uuid(pool).is_none() {
        return;
    }
    if let Err(e) = ctx.update_cache(pool, |c, u| c.forget_volume(u, name)) {
        ctx.warn(&format!(
            "volume {pool}/{name} not removed from the pool cache: {e}"
        ));
    }
}

/// The settings the pool cache holds for the volumes of the pool whose
/// records these are (`Ctx::pool_records`, read once per assembly).
pub fn cached(records: Option<&(uuid::Uuid, cache::Cache)>) -> Vec<(String, Values)> {
    let Some((u, c)) = records else {
        return Vec::new();
    };
    c.limits
        .iter()
        .filter(|l| &l.pool == u)
        .map(|l| (l.volume.clone(), l.values))
        .collect()
}

/// Applies the cached settings of volume `name` (just bound as `vol`, so
/// its size is known) before it is enabled, in the order of [`SETTINGS`];
/// one that cannot be set is a warning (the volume still comes up,
/// without it).
pub fn apply(ctx: &mut Ctx<'_>, cached: &[(String, Values)], name: &str, vol: &Obj) {
    let Some((_, values)) = cached.iter().find(|(n, _)| n == name) else {
        return;
    };
    for (s, value) in SETTINGS.iter().zip(values) {
        // A quota or reservation in a cache written before they were
        // metadata: the pool's own value stands.
        if *value == 0 || !s.cached {
            continue;
        }
        if let Err(e) = ctx.write(vol, s.attr, &value.to_string()) {
            let f = e.fail(format!("set {} of volume {vol}", s.name));
            ctx.warn(&format!("{}: {}", f.what, f.reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_show_by_kind() {
        let [riops, _, rbps, _, quota, reservation] = &SETTINGS;
        assert_eq!(riops.parse("max"), Ok(0));
        assert_eq!(riops.parse("250"), Ok(250));
        assert!(riops.parse("1K").unwrap_err().starts_with("invalid riops"));
        assert_eq!(rbps.parse("MAX"), Ok(0));
        assert_eq!(rbps.parse("2M"), Ok(2 << 20));
        assert_eq!(quota.parse("none"), Ok(0));
        assert_eq!(quota.parse("0"), Ok(0));
        assert_eq!(quota.parse("10G"), Ok(10 << 30));
        assert_eq!(reservation.parse("1.5G"), Ok(3 << 29));
        assert!(quota
            .parse("max")
            .unwrap_err()
            .starts_with("quota: invalid size"));
        assert!(reservation
            .parse("1GB")
            .unwrap_err()
            .starts_with("reservation: invalid size \"1GB\": unit \"GB\" is ambiguous"));
        assert_eq!(riops.show(0), "unlimited");
        assert_eq!(rbps.show(1 << 20), "1048576");
        assert_eq!(quota.show(0), "none");
        assert_eq!(quota.show(10 << 30), "10.0G");
    }
}
