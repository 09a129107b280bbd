// SPDX-License-Identifier: GPL-2.0
//! `pool health`: a pool's health with its members' states and error
//! counters (what the driver counted since assembly), next to what each
//! member device says about itself (sysfs identity and state, an NVMe
//! controller's SMART / health log: `devhealth`). Like `zpool status`.

use super::pool::{health, members, pool_and_members};
use super::{check_name, Ctx, Verb};
use crate::cli::{Parsed, OPT_JSON, OPT_PARSABLE, OPT_SCRIPTED};
use crate::error::Error;
use crate::output::{Table, Value};

const POOL_COLUMNS: &[&str] = &["name", "state", "health", "space", "scrub"];

const MEMBER_COLUMNS: &[&str] = &[
    "index",
    "path",
    "state",
    "read_errors",
    "write_errors",
    "meta_errors",
    "model",
    "serial",
    "firmware",
    "device_state",
    "temperature_c",
    "spare_pct",
    "used_pct",
    "media_errors",
    "critical_warning",
];

pub const VERB: Verb = Verb {
    name: "health",
    usage: "health [-Hpj] NAME",
    summary: "show a pool's health: member states, error counters, device health",
    help: "Shows the health of pool NAME (ok, degraded: a member is not ok, failed:\n\
           its metadata cannot be committed), its space level (ok, low, critical,\n\
           full: see 'pool set' space_low_pct) and one line per member: its state\n\
           (ok; degraded: data reads or writes failed on it; failed: a metadata\n\
           write failed on it; missing: its device is gone), the driver's error\n\
           counters since assembly (read_errors, write_errors, meta_errors), and\n\
           what the device says about itself: model, serial, firmware and state\n\
           from sysfs and, for an NVMe namespace, its controller's SMART / health\n\
           log (composite temperature, available spare, percentage used, media\n\
           errors, critical warning bits); '-' where the device has none.\n\
           The pool line also shows the last scrub ('pool scrub'): its state and\n\
           what it found (errors, meta_errors, repairs, and volumes=NAME,... the\n\
           volumes holding the unreadable blocks), as 'zpool status' its scan.\n\
           Exit status 0 when the pool is ok, 1 when it is degraded or failed (or\n\
           inactive). JSON: an object with the keys \"pool\" and \"members\".\n\
           configfs: NAME/status, NAME/members, NAME/scrub_errors; sysfs /sys/block/DEV/device;\n\
           /dev/nvmeN (the admin command ioctl, read-only).",
    options: &[OPT_SCRIPTED, OPT_PARSABLE, OPT_JSON],
    min_args: 1,
    max_args: Some(1),
    columns: &[],
    run,
};

fn text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

fn run(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let opts = p.output("pool health")?;
    let name = &p.args[0];
    check_name("pool", name, "pool health")?;
    let pool = ctx.require_pool(name)?;
    let st = ctx.status(&pool)?;
    let mem = members(ctx, &pool)?;
    let state = st.get("state").unwrap_or("unknown").to_string();
    let h = health(&st, &mem);
    let ok = matches!(&h, Value::Text(t) if t == "ok");
    let mut rec = Table::new(POOL_COLUMNS, POOL_COLUMNS);
    // `space LEVEL used_pct=..` (kernels with space events).
    let space = st
        .get("space")
        .and_then(|v| v.split_whitespace().next())
        .map_or(Value::Null, Value::text);
    // The last scrub pass (kernels with scrub): its state and findings.
    // With the volumes holding what it found unreadable (`scrub_errors`).
    let found = super::scrub::unreadable(ctx, &pool);
    let vols = super::scrub::volumes_of(&found);
    let scrub = st
        .get("scrub")
        .and_then(|v| super::scrub::parse(v).ok())
        .map_or(Value::Null, |s| {
            let mut t = format!(
                "{} errors={} meta_errors={} repairs={}",
                s.state, s.errors, s.meta_errors, s.repairs
            );
            if !vols.is_empty() {
                t += &format!(" volumes={}", vols.join(","));
            }
            Value::Text(t)
        });
    rec.push(vec![
        Value::text(name.as_str()),
        Value::text(state),
        h,
        space,
        scrub,
    ]);
    let mut mt = Table::new(MEMBER_COLUMNS, MEMBER_COLUMNS);
    for m in &mem {
        let d = ctx.backend.device_health(&m.path);
        let s = d.smart;
        mt.push(vec![
            Value::Count(m.index),
            Value::text(m.path.as_str()),
            if m.state.is_empty() {
                Value::Null
            } else {
                Value::text(m.state.as_str())
            },
            Value::opt_count(m.read_errors),
            Value::opt_count(m.write_errors),
            Value::opt_count(m.meta_errors),
            text(d.model),
            text(d.serial),
            text(d.firmware),
            text(d.state),
            s.map_or(Value::Null, |s| Value::Number(s.temperature_c.to_string())),
            Value::opt_count(s.map(|s| u64::from(s.available_spare))),
            Value::opt_count(s.map(|s| u64::from(s.percentage_used))),
            Value::opt_count(s.map(|s| s.media_errors)),
            Value::opt_count(s.map(|s| u64::from(s.critical_warning))),
        ]);
    }
    ctx.print(&pool_and_members(rec, mt), &opts, "pool health")?;
    if ok {
        Ok(())
    } else {
        Err(Error::Exit(1))
    }
}
