// SPDX-License-Identifier: GPL-2.0
//! `pool scrub`: reads every written block of an active pool in the
//! background (configfs `scrub`), optionally waiting for the end of the
//! pass; the unreadable blocks it finds count as the members' read errors
//! (`pool health`).

use super::{check_name, Ctx};
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure};
use std::time::Duration;

pub const OPT_WAIT: OptSpec = OptSpec {
    long: "wait",
    short: Some('w'),
    value: None,
    help: "wait until the pass ends; fail if it found unreadable or damaged blocks",
};
pub const OPT_RATE: OptSpec = OptSpec {
    long: "rate",
    short: None,
    value: Some("MIBS"),
    help: "read at most MIBS MiB/s (default: as fast as GC's work allows)",
};
pub const OPT_STOP: OptSpec = OptSpec {
    long: "stop",
    short: None,
    value: None,
    help: "stop the pass under way",
};

/// One reading of `scrub`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrubState {
    /// `idle`, `running`, `done` or `stopped`.
    pub state: String,
    pub zone: u64,
    pub zones: u64,
    pub read_bytes: u64,
    pub errors: u64,
    pub skipped_zones: u64,
    pub passes: u64,
    /// Metadata block copies read back, those damaged, full checkpoints
    /// written to replace a damaged chain (0 from kernels without them).
    pub meta_blocks: u64,
    pub meta_errors: u64,
    pub repairs: u64,
    /// The pass's rate limit in MiB/s (0: none).
    pub rate_mibs: u64,
}

/// Parses the `scrub` attribute: `STATE zone=Z/N read_bytes=B errors=E
/// skipped_zones=S passes=P [meta_blocks=M meta_errors=D repairs=R]`
/// (unknown keys are ignored).
pub fn parse(text: &str) -> Result<ScrubState, String> {
    let line = text.trim();
    let bad = || format!("malformed scrub line {line:?}");
    let mut w = line.split_whitespace();
    let state = w.next().ok_or_else(bad)?;
    if !["idle", "running", "done", "stopped"].contains(&state) {
        return Err(bad());
    }
    let mut s = ScrubState {
        state: state.to_string(),
        ..ScrubState::default()
    };
    let mut seen = 0;
    for kv in w {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(bad());
        };
        let num = |v: &str| v.parse::<u64>().map_err(|_| bad());
        match k {
            "zone" => {
                let (z, n) = v.split_once('/').ok_or_else(bad)?;
                (s.zone, s.zones) = (num(z)?, num(n)?);
            }
            "read_bytes" => s.read_bytes = num(v)?,
            "errors" => s.errors = num(v)?,
            "skipped_zones" => s.skipped_zones = num(v)?,
            "passes" => s.passes = num(v)?,
            "meta_blocks" => {
                s.meta_blocks = num(v)?;
                continue;
            }
            "meta_errors" => {
                s.meta_errors = num(v)?;
                continue;
            }
            "repairs" => {
                s.repairs = num(v)?;
                continue;
            }
            "rate_mibs" => {
                s.rate_mibs = num(v)?;
                continue;
            }
            _ => continue,
        }
        seen += 1;
    }
    if seen < 5 {
        return Err(bad());
    }
    Ok(s)
}

/// One line of `scrub_errors`: a volume extent the pass found unreadable.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The volume's name (`-`: deleted since).
    pub volume: String,
    pub offset: u64,
    pub bytes: u64,
}

/// Parses `scrub_errors`: `VOLUME OFFSET BYTES` lines.
pub fn parse_unreadable(text: &str) -> Result<Vec<Unreadable>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bad = || format!("malformed scrub_errors line {l:?}");
            let mut w = l.rsplitn(3, ' ');
            let (Some(b), Some(o), Some(v)) = (w.next(), w.next(), w.next()) else {
                return Err(bad());
            };
            Ok(Unreadable {
                volume: v.to_string(),
                offset: o.parse().map_err(|_| bad())?,
                bytes: b.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// What the last pass found unreadable in volumes (empty from kernels
/// without `scrub_errors`).
pub fn unreadable(ctx: &Ctx<'_>, pool: &Obj) -> Vec<Unreadable> {
    ctx.read(pool, "scrub_errors")
        .ok()
        .and_then(|t| parse_unreadable(&t).ok())
        .unwrap_or_default()
}

/// The volumes of `u`, each once, in order of appearance.
pub fn volumes_of(u: &[Unreadable]) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for x in u {
        if !v.contains(&x.volume.as_str()) {
            v.push(&x.volume);
        }
    }
    v
}

fn read(ctx: &Ctx<'_>, pool: &Obj, name: &str) -> Result<ScrubState, Error> {
    let text = ctx.read(pool, "scrub")?;
    parse(&text).map_err(|e| Failure::new(format!("read the scrub of pool {name}"), e).into())
}

/// What a pass found, as a sentence.
fn summary(s: &ScrubState) -> String {
    format!(
        "{} read, {} unreadable block(s), {} zone(s) skipped (being written, offline or on a missing member); {} metadata block copies read back, {} damaged, {} repaired by a full checkpoint",
        crate::size::human(s.read_bytes),
        s.errors,
        s.skipped_zones,
        s.meta_blocks,
        s.meta_errors,
        s.repairs
    )
}

pub fn scrub(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let name = &p.args[0];
    check_name("pool", name, "pool scrub")?;
    let pool = ctx.require_pool(name)?;
    let what = format!("scrub pool {name}");
    ctx.require_feature("scrub", &what)?;
    if p.flag("stop") {
        ctx.write(&pool, "scrub", "stop")
            .map_err(|e| e.fail(format!("stop the scrub of pool {name}")))?;
        let s = read(ctx, &pool, name)?;
        ctx.say(&format!(
            "scrub of pool {name} {}: {}",
            s.state,
            summary(&s)
        ));
        return Ok(());
    }
    let cmd = match p.value("rate") {
        None => "start".to_string(),
        Some(r) => match r.parse::<u32>() {
            Ok(n) if n > 0 => format!("start {n}"),
            _ => {
                return Err(Error::usage(
                    format!("--rate takes MiB/s, a whole number above 0, not {r:?}"),
                    "pool scrub",
                ))
            }
        },
    };
    ctx.write(&pool, "scrub", &cmd)
        .map_err(|e| e.fail(what.clone()))?;
    ctx.say(&format!("scrub of pool {name} started"));
    if !p.flag("wait") {
        return Ok(());
    }
    let s = loop {
        let s = read(ctx, &pool, name)?;
        if s.state != "running" {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if s.state != "done" {
        return Err(Failure::new(what, format!("the pass {}: {}", s.state, summary(&s))).into());
    }
    if s.errors > 0 || s.meta_errors > 0 {
        let found: Vec<String> = unreadable(ctx, &pool)
            .iter()
            .map(|u| {
                format!(
                    "{} at byte offset {} ({})",
                    u.volume,
                    u.offset,
                    crate::size::human(u.bytes)
                )
            })
            .collect();
        let data = if found.is_empty() {
            String::new()
        } else {
            format!("; unreadable data in volumes: {}", found.join(", "))
        };
        return Err(Failure::new(
            what,
            format!(
                "{}{data}; see 'zvpoolctl pool health {name}' for the members",
                summary(&s)
            ),
        )
        .into());
    }
    ctx.say(&format!("scrub of pool {name} done: {}", summary(&s)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_attribute() {
        let s =
            parse("running zone=3/40 read_bytes=8192 errors=1 skipped_zones=2 passes=0 meta_blocks=6 meta_errors=1 repairs=1 rate_mibs=20 later=1\n")
                .unwrap();
        assert_eq!(
            s,
            ScrubState {
                state: "running".into(),
                zone: 3,
                zones: 40,
                read_bytes: 8192,
                errors: 1,
                skipped_zones: 2,
                passes: 0,
                meta_blocks: 6,
                meta_errors: 1,
                repairs: 1,
                rate_mibs: 20,
            }
        );
        assert_eq!(
            parse("done zone=40/40 read_bytes=0 errors=0 skipped_zones=0 passes=1")
                .unwrap()
                .passes,
            1
        );
        assert_eq!(
            parse_unreadable("vm1 409600 12288\nvm 2 0 4096\n\n").unwrap(),
            vec![
                Unreadable {
                    volume: "vm1".into(),
                    offset: 409600,
                    bytes: 12288
                },
                Unreadable {
                    volume: "vm 2".into(),
                    offset: 0,
                    bytes: 4096
                },
            ]
        );
        for bad in ["vm1 409600", "vm1 x 4096", "vm1 0 -1"] {
            assert!(parse_unreadable(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "busy zone=1/2 read_bytes=0 errors=0 skipped_zones=0 passes=0",
            "idle zone=1 read_bytes=0 errors=0 skipped_zones=0 passes=0",
            "idle zone=1/2 read_bytes=x errors=0 skipped_zones=0 passes=0",
            "idle zone=1/2 read_bytes=0",
            "idle zone=1/2 read_bytes=0 errors=0 skipped_zones=0 passes",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
