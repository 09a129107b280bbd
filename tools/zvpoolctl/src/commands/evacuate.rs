// SPDX-License-Identifier: GPL-2.0
//! `pool evacuate`: moves a member's data to the other members online
//! (configfs `evacuate`), optionally waiting with a progress line; `pool
//! remove` takes an evacuated (or missing) member out of the pool (configfs
//! `remove`); `pool replace` does both for a new device.

use super::{check_name, Ctx};
use crate::abi;
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure};
use crate::progress::follow;

pub const OPT_CANCEL: OptSpec = OptSpec {
    long: "cancel",
    short: None,
    value: None,
    help: "end the evacuation, or the volume's placement (what moved stays moved)",
};
pub const OPT_FORCE_REMOVE: OptSpec = OptSpec {
    long: "force",
    short: Some('f'),
    value: None,
    help: "remove a member whose device is missing: its blocks are lost (they read as I/O errors)",
};
pub const OPT_WAIT: OptSpec = OptSpec {
    long: "wait",
    short: Some('w'),
    value: None,
    help: "wait until the member holds no live data, with a progress line",
};

/// One reading of `evacuate`: member index, state (`running`, `done`),
/// bytes at the start and bytes left.
#[derive(Debug, PartialEq, Eq)]
pub struct EvacState {
    pub member: u64,
    pub path: String,
    pub done: bool,
    pub start_bytes: u64,
    pub left_bytes: u64,
}

/// Parses the `evacuate` attribute (`None`: no evacuation).
pub fn parse(text: &str) -> Result<Option<EvacState>, String> {
    let line = text.trim();
    if line == "none" || line.is_empty() {
        return Ok(None);
    }
    let bad = || format!("malformed evacuate line {line:?}");
    let mut w = line.split_whitespace();
    let member = w.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let path = w.next().ok_or_else(bad)?.to_string();
    let done = match w.next() {
        Some("done") => true,
        Some("running") => false,
        _ => return Err(bad()),
    };
    let (mut start, mut left) = (None, None);
    for kv in w {
        match kv.split_once('=') {
            Some(("start_bytes", v)) => start = v.parse().ok(),
            Some(("left_bytes", v)) => left = v.parse().ok(),
            _ => {}
        }
    }
    Ok(Some(EvacState {
        member,
        path,
        done,
        start_bytes: start.ok_or_else(bad)?,
        left_bytes: left.ok_or_else(bad)?,
    }))
}

pub fn evacuate(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool evacuate";
    let name = &p.args[0];
    check_name("pool", name, cmd)?;
    let pool = ctx.require_pool(name)?;
    if p.flag("cancel") {
        if p.args.len() != 1 {
            return Err(Error::usage("--cancel takes no DEV", cmd));
        }
        ctx.write(&pool, "evacuate", "cancel")
            .map_err(|e| e.fail(format!("cancel the evacuation of pool {name}")))?;
        ctx.say(&format!("evacuation of pool {name} cancelled"));
        return Ok(());
    }
    let [_, dev] = &p.args[..] else {
        return Err(Error::usage(
            "give NAME and the member DEV (path or index)",
            cmd,
        ));
    };
    start(ctx, &pool, name, dev, p.flag("wait"))
}

/// `pool remove`: removes member DEV (evacuated, or missing with `-f`).
pub fn remove(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool remove";
    let [name, dev] = &p.args[..] else {
        return Err(Error::usage(
            "give NAME and the member DEV (path or index)",
            cmd,
        ));
    };
    check_name("pool", name, cmd)?;
    let pool = ctx.require_pool(name)?;
    remove_member(ctx, &pool, name, dev, p.flag("force"))
}

/// Writes `remove` for member `dev` of pool `name`, then records the
/// members left in the pool cache.
fn remove_member(
    ctx: &mut Ctx<'_>,
    pool: &Obj,
    name: &str,
    dev: &str,
    force: bool,
) -> Result<(), Error> {
    let pool = pool.clone();
    ctx.require_feature("member-remove", &format!("remove {dev} from pool {name}"))?;
    let what = if force {
        format!("force {dev}")
    } else {
        dev.to_string()
    };
    ctx.write(&pool, "remove", &what)
        .map_err(|e| e.fail(format!("remove {dev} from pool {name}")))?;
    ctx.say(&format!("removed {dev} from pool {name}"));
    let devs: Vec<String> = super::pool::members(ctx, &pool)
        .map(|m| {
            m.into_iter()
                .filter(|m| m.state != "removed")
                .map(|m| m.path)
                .collect()
        })
        .unwrap_or_default();
    super::import::record(ctx, name, &devs);
    Ok(())
}

/// `pool replace`: adds NEW, then evacuates OLD (waiting with `-w`, then
/// removes it).
pub fn replace(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool replace";
    let [name, old, new] = &p.args[..] else {
        return Err(Error::usage(
            "give NAME, the member OLD and the device NEW",
            cmd,
        ));
    };
    check_name("pool", name, cmd)?;
    let pool = ctx.require_pool(name)?;
    if !ctx.read(&pool, "enable").is_ok_and(|v| abi::parse_bool(&v)) {
        return Err(Failure::new(
            format!("replace {old} by {new} in pool {name}"),
            "the pool is not active (assemble it first)",
        )
        .into());
    }
    // The member's index before the add (a path stays valid).
    super::pool::add_device(ctx, name, &pool, new)?;
    start(ctx, &pool, name, old, p.flag("wait"))?;
    if p.flag("wait") {
        // A pool that keeps one copy of its metadata (made with one
        // member), or one of two members, cannot lose a member: the data
        // moved all the same, the member stays out of use.
        match remove_member(ctx, &pool, name, old, false) {
            Ok(()) => {}
            Err(Error::Failed(f)) => ctx.warn(&format!(
                "{old} holds no live data but stays in pool {name}, out of use: {}",
                f.reason
            )),
            Err(e) => return Err(e),
        }
    } else {
        ctx.say(&format!(
            "once it holds no live data: zvpoolctl pool remove {name} {old}"
        ));
    }
    Ok(())
}

/// Starts the evacuation of member `dev` of pool `name`; with `wait`,
/// follows it to the end.
fn start(ctx: &mut Ctx<'_>, pool: &Obj, name: &str, dev: &str, wait: bool) -> Result<(), Error> {
    let pool = pool.clone();
    ctx.write(&pool, "evacuate", dev)
        .map_err(|e| e.fail(format!("evacuate {dev} of pool {name}")))?;
    let st = read(ctx, &pool, name)?;
    let Some(st) = st else {
        return Err(Failure::new(
            format!("evacuate {dev} of pool {name}"),
            "the pool shows no evacuation",
        )
        .into());
    };
    ctx.say(&format!(
        "evacuating member {} ({}) of pool {name}: {} to move",
        st.member,
        st.path,
        crate::size::human(st.start_bytes)
    ));
    if !wait {
        return Ok(());
    }
    let finished = follow(format!("evacuate {}", st.path), st.start_bytes, || {
        Ok::<_, Error>(
            read(ctx, &pool, name)?.map(|n| (n.start_bytes.saturating_sub(n.left_bytes), n.done)),
        )
    })?;
    if !finished {
        return Err(Failure::new(
            format!("evacuate pool {name}"),
            "the evacuation was cancelled",
        )
        .into());
    }
    ctx.say(&format!(
        "member {} ({}) of pool {name} holds no live data: it takes none until 'pool evacuate --cancel' ('pool remove' takes it out of the pool)",
        st.member, st.path
    ));
    Ok(())
}

fn read(ctx: &Ctx<'_>, pool: &Obj, name: &str) -> Result<Option<EvacState>, Error> {
    let text = ctx.read(pool, "evacuate")?;
    parse(&text).map_err(|e| Failure::new(format!("read the evacuation of pool {name}"), e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_attribute() {
        assert_eq!(parse("none\n"), Ok(None));
        let s = parse("1 /dev/nvme1n1 running start_bytes=8192 left_bytes=4096 elapsed_ms=12\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            s,
            EvacState {
                member: 1,
                path: "/dev/nvme1n1".into(),
                done: false,
                start_bytes: 8192,
                left_bytes: 4096,
            }
        );
        assert!(
            parse("1 /dev/x done start_bytes=1 left_bytes=0")
                .unwrap()
                .unwrap()
                .done
        );
        assert!(parse("1 /dev/x maybe start_bytes=1 left_bytes=0").is_err());
        assert!(parse("x /dev/x done start_bytes=1 left_bytes=0").is_err());
        assert!(parse("1 /dev/x done left_bytes=0").is_err());
    }
}
