// SPDX-License-Identifier: GPL-2.0
//! `volume migrate`: places a volume's data on chosen members or a class
//! and moves it there online (configfs `migrate`), optionally waiting
//! with a progress line. The placement is kept in the pool's metadata.

use super::{split_volume, Ctx};
use crate::abi;
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure};
use crate::progress::follow;

pub const OPT_TO: OptSpec = OptSpec {
    long: "to",
    short: None,
    value: Some("DEV[,DEV...]|fast|slow|any"),
    help: "the members (device paths or indexes) or the class the volume's data is kept on (any: no placement)",
};

/// `--to fast` or `--to slow` for a module without placement policies:
/// the indexes of the pool's members of that class that take data (not
/// removed or missing), joined by commas.
fn class_members(ctx: &Ctx<'_>, pool: &Obj, class: &str, what: &str) -> Result<String, Error> {
    let members = super::pool::members(ctx, pool)?;
    let of: Vec<String> = members
        .iter()
        .filter(|m| m.class == class && m.state != "removed" && m.state != "missing")
        .map(|m| m.index.to_string())
        .collect();
    if of.is_empty() {
        return Err(Failure::new(
            what,
            format!("the pool has no {class} member (members: class=, NAME/member_class)"),
        )
        .into());
    }
    Ok(of.join(","))
}

/// One reading of `migrate`: the walk under way or done last (volume,
/// placement, done, bytes moved), and the volumes whose walks wait.
#[derive(Debug, PartialEq, Eq)]
pub struct MigState {
    pub volume: String,
    pub members: String,
    pub done: bool,
    pub moved_bytes: u64,
    /// Volumes whose walks wait (lines `VOL WHERE queued`).
    pub queued: Vec<String>,
    /// More wait than are listed (`# N more queued`).
    pub more_queued: bool,
}

/// Parses the `migrate` attribute (`None`: no migration).
pub fn parse(text: &str) -> Result<Option<MigState>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().unwrap_or("");
    if line == "none" || line.is_empty() {
        return Ok(None);
    }
    let mut queued = Vec::new();
    let mut more_queued = false;
    for l in lines {
        if l.starts_with('#') {
            more_queued = true;
        } else if let [v, _, "queued"] = l.split_whitespace().collect::<Vec<_>>()[..] {
            queued.push(v.to_string());
        }
    }
    let bad = || format!("malformed migrate line {line:?}");
    let w: Vec<&str> = line.split_whitespace().collect();
    let [volume, members, state, rest @ ..] = &w[..] else {
        return Err(bad());
    };
    let done = match *state {
        "done" => true,
        "running" => false,
        _ => return Err(bad()),
    };
    let moved_bytes = rest
        .iter()
        .find_map(|kv| kv.strip_prefix("moved_bytes="))
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)?;
    Ok(Some(MigState {
        volume: volume.to_string(),
        members: members.to_string(),
        done,
        moved_bytes,
        queued,
        more_queued,
    }))
}

pub fn migrate(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume migrate";
    let (pool_name, vol) = split_volume(&p.args[0], cmd)?;
    let pool = ctx.require_pool(pool_name)?;
    let policies = ctx
        .require_feature("placement-policies", "place a volume")
        .is_ok();
    if p.flag("cancel") {
        // The volume's placement ends (what moved stays moved).
        let line = if policies {
            format!("{vol} any")
        } else {
            "cancel".to_string()
        };
        ctx.write(&pool, "migrate", &line)
            .map_err(|e| e.fail(format!("end the placement of {pool_name}/{vol}")))?;
        ctx.say(&format!("placement of {pool_name}/{vol} ended"));
        return Ok(());
    }
    let Some(to) = p.value("to") else {
        return Err(Error::usage(
            "give --to DEV[,DEV...]|fast|slow|any (or --cancel)",
            cmd,
        ));
    };
    let what = format!("migrate {pool_name}/{vol} to {to}");
    let to = match to {
        "fast" | "slow" if !policies => class_members(ctx, &pool, to, &what)?,
        "any" if !policies => "cancel".to_string(),
        _ => to.to_string(),
    };
    if to == "any" || to == "cancel" {
        let line = if to == "any" {
            format!("{vol} any")
        } else {
            to
        };
        ctx.write(&pool, "migrate", &line)
            .map_err(|e| e.fail(what.clone()))?;
        ctx.say(&format!("placement of {pool_name}/{vol} ended"));
        return Ok(());
    }
    ctx.write(&pool, "migrate", &format!("{vol} {to}"))
        .map_err(|e| e.fail(what.clone()))?;
    ctx.say(&format!("migrating {pool_name}/{vol} to {to}"));
    if !p.flag("wait") {
        return Ok(());
    }
    let total = abi::parse_volumes(&ctx.read(&pool, "volumes")?)
        .ok()
        .and_then(|v| v.into_iter().find(|v| v.name == vol))
        .and_then(|v| v.mapped)
        .unwrap_or(0);
    let mut members = to.clone();
    let finished = follow(format!("migrate {pool_name}/{vol}"), total, || {
        let Some(n) = read(ctx, &pool, &what)? else {
            return Ok::<_, Error>(None);
        };
        if n.volume == vol {
            members = n.members;
            return Ok(Some((n.moved_bytes, n.done)));
        }
        // Another volume's walk: this one's waits, or is over.
        if n.more_queued || n.queued.iter().any(|q| q == vol) {
            return Ok(Some((0, false)));
        }
        let placed = abi::parse_volumes(&ctx.read(&pool, "volumes")?)
            .ok()
            .and_then(|v| v.into_iter().find(|v| v.name == vol))
            .and_then(|v| v.placement);
        Ok(match placed.as_deref() {
            // Its placement ended meanwhile (cancelled).
            Some("any") => None,
            _ => Some((total, true)),
        })
    })?;
    if !finished {
        return Err(Failure::new(what, "the migration was cancelled").into());
    }
    ctx.say(&format!(
        "{pool_name}/{vol} is on {}: its new writes and GC's copies stay there, also after a restart, until 'volume migrate --cancel'",
        match members.as_str() {
            "fast" | "slow" => format!("the {members} members"),
            _ => format!("members {members}"),
        }
    ));
    Ok(())
}

fn read(ctx: &Ctx<'_>, pool: &Obj, what: &str) -> Result<Option<MigState>, Error> {
    let text = ctx.read(pool, "migrate")?;
    parse(&text).map_err(|e| Failure::new(what, e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_attribute() {
        assert_eq!(parse("none\n"), Ok(None));
        assert_eq!(
            parse("vm1 0,2 running moved_bytes=8192\n"),
            Ok(Some(MigState {
                volume: "vm1".into(),
                members: "0,2".into(),
                done: false,
                moved_bytes: 8192,
                queued: vec![],
                more_queued: false,
            }))
        );
        let q = parse(
            "vm1 slow running moved_bytes=0\nvm2 0 queued\nvm3 fast queued\n# 2 more queued\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (q.members.as_str(), q.queued.clone(), q.more_queued),
            ("slow", vec!["vm2".to_string(), "vm3".to_string()], true)
        );
        assert!(parse("vm1 2 done moved_bytes=0").unwrap().unwrap().done);
        assert!(parse("vm1 2 maybe moved_bytes=0").is_err());
        assert!(parse("vm1 2 done").is_err());
        assert!(parse("vm1").is_err());
    }
}
