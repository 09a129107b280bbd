// SPDX-License-Identifier: GPL-2.0
//! `pool events`: prints pool events as the kernel sends them (uevents of
//! `/dev/zvpool-control` with `ZVPOOL_EVENT`: a member's state, the pool's
//! health, its space, refusals, the end of a placement walk), one line
//! each, until interrupted or `-n` events were printed.
//! Like `udevadm monitor`, filtered and formatted for zvpool.

use super::{check_name, Ctx, Verb};
use crate::cli::{OptSpec, Parsed, OPT_JSON};
use crate::error::{Error, Failure};
use crate::output::json;

pub const OPT_COUNT: OptSpec = OptSpec {
    long: "count",
    short: Some('n'),
    value: Some("N"),
    help: "exit after N events",
};

pub const VERB: Verb = Verb {
    name: "events",
    usage: "events [-j] [-n N] [NAME]",
    summary: "print pool events as they happen: member states, pool health",
    help: "Listens to the kernel's uevents and prints each zvpool pool event (of\n\
           pool NAME, or of every pool) as it comes, one line each:\n\
           POOL EVENT KEY=VALUE... (the event's ZVPOOL_* variables, lower case,\n\
           without the prefix), e.g. 'tank member member_index=2\n\
           member=/dev/sdc state=missing' or 'tank health health=degraded'.\n\
           With -j one JSON object a line. Runs until interrupted, or until N\n\
           events were printed (-n). Events that happened before it started are\n\
           not shown: read 'pool health' for the state now.\n\
           configfs: none (the kernel's NETLINK_KOBJECT_UEVENT socket: the\n\
           uevents of /dev/zvpool-control).",
    options: &[OPT_JSON, OPT_COUNT],
    min_args: 0,
    max_args: Some(1),
    columns: &[],
    run,
};

/// One pool event: its pool, its kind and its other `ZVPOOL_*` variables
/// (lower case, without the prefix), in the order sent.
#[derive(Debug, PartialEq, Eq)]
pub struct PoolEvent {
    pub pool: String,
    pub event: String,
    pub vars: Vec<(String, String)>,
}

/// Decodes one uevent datagram (`ACTION@DEVPATH\0KEY=VALUE\0...`); `None`
/// unless it is a zvpool pool event.
pub fn parse(msg: &[u8]) -> Option<PoolEvent> {
    let mut pool = None;
    let mut event = None;
    let mut vars = Vec::new();
    // The header (`change@/devices/...`) has no '=' and is skipped.
    for field in msg.split(|b| *b == 0) {
        let Ok(f) = std::str::from_utf8(field) else {
            continue;
        };
        let Some((k, v)) = f.split_once('=') else {
            continue;
        };
        match k {
            "ZVPOOL_POOL" => pool = Some(v.to_string()),
            "ZVPOOL_EVENT" => event = Some(v.to_string()),
            _ => {
                if let Some(name) = k.strip_prefix("ZVPOOL_") {
                    vars.push((name.to_ascii_lowercase(), v.to_string()));
                }
            }
        }
    }
    Some(PoolEvent {
        pool: pool?,
        event: event?,
        vars,
    })
}

impl PoolEvent {
    /// `POOL EVENT key=value ...`
    pub fn line(&self) -> String {
        let mut s = format!("{} {}", self.pool, self.event);
        for (k, v) in &self.vars {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// `{"pool": ..., "event": ..., "key": "value", ...}`
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"pool\": {}, \"event\": {}",
            json::escape(&self.pool),
            json::escape(&self.event)
        );
        for (k, v) in &self.vars {
            s.push_str(&format!(", {}: {}", json::escape(k), json::escape(v)));
        }
        s.push('}');
        s
    }
}

fn run(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool events";
    let only = p.args.first();
    if let Some(n) = only {
        check_name("pool", n, cmd)?;
    }
    let count: Option<u64> =
        match p.value("count") {
            None => None,
            Some(v) => Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::usage(format!("-n needs a positive count, not {v:?}"), cmd)
            })?),
        };
    let mut src = ctx
        .backend
        .uevents()
        .map_err(|e| Failure::new("listen to the kernel's uevents", e.to_string()))?;
    let mut buf = vec![0u8; 8192];
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let n = src
            .read(&mut buf)
            .map_err(|e| Failure::new("read a uevent", e.to_string()))?;
        if n == 0 {
            break;
        }
        let Some(ev) = buf.get(..n).and_then(parse) else {
            continue;
        };
        if only.is_some_and(|o| *o != ev.pool) {
            continue;
        }
        let line = if p.flag("json") { ev.json() } else { ev.line() };
        let _ = writeln!(ctx.out, "{line}");
        let _ = ctx.out.flush();
        seen += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: &[u8] = b"change@/devices/virtual/misc/zvpool-control\0ACTION=change\0\
        DEVPATH=/devices/virtual/misc/zvpool-control\0SUBSYSTEM=misc\0ZVPOOL_POOL=hp\0\
        ZVPOOL_EVENT=member\0ZVPOOL_MEMBER_INDEX=2\0ZVPOOL_MEMBER=/dev/hpc\0\
        ZVPOOL_STATE=missing\0SEQNUM=1234\0";

    #[test]
    fn a_member_event() {
        let e = parse(MEMBER).expect("a pool event");
        assert_eq!(
            e.line(),
            "hp member member_index=2 member=/dev/hpc state=missing"
        );
        assert_eq!(
            e.json(),
            "{\"pool\": \"hp\", \"event\": \"member\", \"member_index\": \"2\", \
             \"member\": \"/dev/hpc\", \"state\": \"missing\"}"
        );
    }

    #[test]
    fn other_uevents_are_not_pool_events() {
        // A volume disk's identity event has ZVPOOL_POOL but no ZVPOOL_EVENT.
        let disk = b"change@/devices/virtual/block/zvpool0\0ACTION=change\0ZVPOOL_POOL=hp\0ZVPOOL_VOLUME=a\0";
        assert_eq!(parse(disk), None);
        assert_eq!(
            parse(b"add@/devices/virtual/block/loop0\0ACTION=add\0"),
            None
        );
        assert_eq!(parse(b""), None);
        // Not UTF-8 fields are skipped, the rest still decodes.
        let mut odd = MEMBER.to_vec();
        odd.extend_from_slice(b"X=\xff\0");
        assert!(parse(&odd).is_some());
    }
}
