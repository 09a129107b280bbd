// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl pool check DEV...`: the offline checker's command (the checker
//! itself is `crate::check`, device access `crate::devio`). Also what
//! `pool assemble --rewind` shows before rewinding.

use super::{Ctx, Verb};
use crate::check::{self, Assembled, Report};
use crate::cli::{OptSpec, Parsed, OPT_JSON, OPT_SCRIPTED};
use crate::error::{Error, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::output::json::Json;
use crate::output::{Layout, Section, Table, Value};

const OPT_JOURNAL: OptSpec = OptSpec {
    long: "journal",
    short: None,
    value: None,
    help: "list every journal block found in the log zones instead (-H: tab-separated, no header)",
};

pub const JOURNAL_COLUMNS: &[&str] = &[
    "member",
    "zone",
    "block",
    "seq",
    "ckpt_gen",
    "commit_seq",
    "flags",
    "state",
    "device",
];

pub const VERB: Verb = Verb {
    name: "check",
    usage: "check [-j] [--journal [-H]] DEV...",
    summary: "check a pool's metadata offline (read-only), like thin_check",
    help: "Reads the metadata on the devices DEV... (all members of one pool, any\n\
           order; the pool should not be assembled) and runs the same assembly and\n\
           validation as the kernel, in memory: nothing is ever written. Reports\n\
           the superblock generation and members, the checkpoint used (and the\n\
           journal sequence it covers), the journal replayed, and then either 'no\n\
           problems found' or every problem: what is damaged (kind, journal\n\
           sequence, member, device, zone and block of the bad block) and what a\n\
           rewind ('pool assemble --rewind') would drop (journal blocks, records,\n\
           volumes). Devices are read with O_DIRECT; zoned devices need 'blkzone'\n\
           (util-linux). A regular file is read as a conventional device image.\n\
           --journal lists the journal blocks instead, one per line in sequence\n\
           order: member zone block seq ckpt_gen commit_seq flags state device\n\
           (state valid or invalid; zone is the device-local zone index, block the\n\
           offset in it; '-' where an invalid block has no value).\n\
           Exit status: 0 no problem, 1 problems found (or the devices hold no\n\
           pool / do not match it), 2 usage error or a device cannot be read.\n\
           configfs: none (reads the devices, never the driver; never writes).",
    options: &[OPT_JOURNAL, OPT_SCRIPTED, OPT_JSON],
    min_args: 1,
    max_args: None,
    columns: &[],
    run,
};

fn yes_no(b: bool) -> Json {
    Json::Bool(b)
}

fn report_json(r: &Report, paths: &[String]) -> Json {
    let problems = Json::Arr(r.problems(paths).into_iter().map(Json::Str).collect());
    let mut o: Vec<(String, Json)> = vec![(
        "devices".into(),
        Json::Arr(paths.iter().cloned().map(Json::Str).collect()),
    )];
    match r {
        Report::Refused(f) => {
            o.push(("status".into(), Json::Str("refused".into())));
            o.push(("errno".into(), Json::int(f.errno() as u64)));
        }
        Report::Assembled(a) => {
            let st = if a.damage.is_some() || a.suspect_gap {
                "damaged"
            } else {
                "ok"
            };
            o.push(("status".into(), Json::Str(st.into())));
            o.extend(assembled_json(a));
        }
    }
    o.push(("problems".into(), problems));
    Json::Obj(o)
}

fn assembled_json(a: &Assembled) -> Vec<(String, Json)> {
    let n = Json::int;
    let mut o = vec![
        ("superblock_generation".into(), n(a.sb_generation)),
        (
            "members".into(),
            Json::Arr(a.members.iter().cloned().map(Json::Str).collect()),
        ),
        (
            "checkpoint".into(),
            Json::Obj(vec![
                ("generation".into(), n(a.checkpoint_generation)),
                ("fell_back".into(), yes_no(a.fell_back)),
                ("copy_reads".into(), n(u64::from(a.ckpt_copy_reads))),
                ("journal_seq".into(), n(a.checkpoint_seq)),
            ]),
        ),
        (
            "journal".into(),
            Json::Obj(vec![
                ("commit_groups".into(), yes_no(a.commit_blocks)),
                ("replayed_blocks".into(), n(a.replayed_blocks)),
                ("last_seq".into(), n(a.last_seq)),
                ("committed_seq".into(), n(a.committed_seq)),
                ("max_seq_seen".into(), n(a.max_seq_seen)),
                ("torn_blocks".into(), n(a.torn_blocks)),
                ("repaired_blocks".into(), n(u64::from(a.repaired_blocks))),
            ]),
        ),
        ("volumes".into(), n(a.volumes as u64)),
        ("verified".into(), yes_no(a.verified)),
        ("read_only_features".into(), yes_no(a.ro_compat)),
    ];
    o.push((
        "last_rewind".into(),
        match &a.last_rewind {
            None => Json::Null,
            Some(r) => Json::Obj(vec![
                ("count".into(), n(u64::from(r.count))),
                ("from_seq".into(), n(r.from_seq)),
                ("to_seq".into(), n(r.to_seq)),
                ("blocks".into(), n(r.blocks)),
                ("records".into(), n(r.records)),
                ("lost_checkpoint".into(), n(r.lost_gen)),
                ("to_checkpoint".into(), n(r.to_gen)),
            ]),
        },
    ));
    o.push((
        "damage".into(),
        match &a.damage {
            None => Json::Null,
            Some(d) => {
                let g = &d.damage;
                let bad = match g.bad {
                    None => Json::Null,
                    Some(b) => Json::Obj(vec![
                        ("member".into(), n(u64::from(b.member))),
                        (
                            "device".into(),
                            d.bad_path.clone().map_or(Json::Null, Json::Str),
                        ),
                        ("zone".into(), n(u64::from(b.zone))),
                        ("block".into(), n(b.block)),
                        ("claimed_seq".into(), n(b.claimed_seq)),
                    ]),
                };
                Json::Obj(vec![
                    ("kind".into(), Json::Str(check::kind_word(g.kind).into())),
                    ("seq".into(), n(g.seq)),
                    ("committed_seq".into(), n(g.committed_seq)),
                    (
                        "lost_checkpoint".into(),
                        if g.lost_gen == 0 {
                            Json::Null
                        } else {
                            n(g.lost_gen)
                        },
                    ),
                    ("bad_block".into(), bad),
                    ("bad_blocks".into(), n(u64::from(g.bad_blocks))),
                    ("lost_blocks".into(), n(g.lost_blocks)),
                    ("lost_records".into(), n(g.lost_records)),
                    ("lost_committed_blocks".into(), n(g.lost_committed_blocks)),
                    (
                        "volumes".into(),
                        Json::Arr(d.volumes.iter().cloned().map(Json::Str).collect()),
                    ),
                    ("more_volumes".into(), yes_no(g.more_volumes)),
                    ("reclaimed_blocks".into(), n(g.reclaimed_blocks)),
                    ("unusable".into(), yes_no(g.unusable)),
                ])
            }
        },
    ));
    o
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The human report.
pub fn report_text(r: &Report, paths: &[String]) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    if let Report::Assembled(a) = r {
        line(format!(
            "superblock: generation {}, {}",
            a.sb_generation,
            plural(a.members.len() as u64, "member")
        ));
        for (i, m) in a.members.iter().enumerate() {
            line(format!("  member {i}: {m}"));
        }
        line(format!(
            "checkpoint: generation {}, covers journal sequence {}{}",
            a.checkpoint_generation,
            a.checkpoint_seq,
            if a.fell_back {
                " (the newest checkpoint was unusable: the older one is used)"
            } else {
                ""
            }
        ));
        line(format!(
            "journal: {} replayed, last sequence {}, committed sequence {}, highest seen {}, \
             {} dropped{}",
            plural(a.replayed_blocks, "block"),
            a.last_seq,
            a.committed_seq,
            a.max_seq_seen,
            plural(a.torn_blocks, "torn-tail block"),
            if a.commit_blocks {
                ""
            } else {
                " (no commit groups: an older pool)"
            }
        ));
        if a.ckpt_copy_reads > 0 {
            line(format!(
                "checkpoint copies: {} read from their second copy on another member (repaired by the next assembly)",
                plural(u64::from(a.ckpt_copy_reads), "block")
            ));
        }
        if a.repaired_blocks > 0 {
            line(format!(
                "journal copies: {} read from their copy on another member (repaired by the next assembly)",
                plural(u64::from(a.repaired_blocks), "damaged block")
            ));
        }
        line(format!("volumes: {}", a.volumes));
        if let Some(rw) = &a.last_rewind {
            line(format!(
                "last rewind: from sequence {} to {}, {} ({}){}, {} in the pool's life",
                rw.from_seq,
                rw.to_seq,
                plural(rw.blocks, "journal block"),
                plural(rw.records, "record"),
                if rw.lost_gen != 0 {
                    format!(", lost checkpoint {}", rw.lost_gen)
                } else {
                    String::new()
                },
                plural(u64::from(rw.count), "rewind")
            ));
        }
        if a.ro_compat {
            line("note: the pool has features this version only reads (read-only)".into());
        }
    }
    let problems = r.problems(paths);
    for p in &problems {
        line(format!("problem: {p}"));
    }
    if let Report::Assembled(a) = r {
        if let Some(d) = &a.damage {
            let g = &d.damage;
            if let Some(b) = g.bad {
                line(format!(
                    "  bad block: member {} ({}), zone {}, block {} (claims sequence {})",
                    b.member,
                    d.bad_path.as_deref().unwrap_or("?"),
                    b.zone,
                    b.block,
                    b.claimed_seq
                ));
            }
            if g.bad_blocks > 1 {
                line(format!(
                    "  invalid journal blocks of this pool found: {}",
                    g.bad_blocks
                ));
            }
            if g.unusable {
                line(
                    "  unusable: the state before the damage maps space reclaimed since; \
                     the pool cannot be assembled at all, not even read-only"
                        .into(),
                );
            } else {
                line(format!(
                    "  a rewind drops {} ({} committed)",
                    check::rewind_loss(g),
                    plural(g.lost_committed_blocks, "block")
                ));
                if g.reclaimed_blocks > 0 {
                    line(format!(
                        "  {} of the state before the damage lie in {} reclaimed since: they read as zeros",
                        plural(g.reclaimed_blocks, "mapped block"),
                        plural(u64::from(g.reclaimed_zones), "zone")
                    ));
                }
                line(format!("  volumes affected: {}", check::volume_list(d)));
            }
        }
    }
    match problems.len() {
        0 => line("no problems found".into()),
        n => line(plural(n as u64, "problem") + " found"),
    }
    s
}

/// Hints after a report with problems.
pub fn hints(r: &Report, paths: &[String]) -> Vec<String> {
    let devs = paths.join(" ");
    match r {
        Report::Assembled(a) if a.damage.as_ref().is_some_and(|d| !d.damage.unusable) => vec![
            format!(
                "to copy data out without writing anything: zvpoolctl pool assemble --read-only NAME {devs}"
            ),
            format!(
                "to drop the damaged part and use the pool again: zvpoolctl pool assemble --rewind NAME {devs}"
            ),
        ],
        _ => Vec::new(),
    }
}

fn journal_table(blocks: &[check::JournalBlock], paths: &[String]) -> Table {
    let mut t = Table::new(JOURNAL_COLUMNS, JOURNAL_COLUMNS);
    let opt = |v: Option<u64>| v.map_or(Value::Null, Value::Count);
    for b in blocks {
        t.push(vec![
            b.member.map_or(Value::Null, |m| Value::Count(u64::from(m))),
            Value::Count(u64::from(b.zone)),
            Value::Count(b.block),
            Value::Count(b.seq),
            opt(b.ckpt_gen),
            opt(b.commit_seq),
            b.flags
                .map_or(Value::Null, |f| Value::text(check::flag_words(f))),
            Value::text(if b.valid { "valid" } else { "invalid" }),
            Value::text(paths.get(b.dev).cloned().unwrap_or_default()),
        ]);
    }
    t
}

fn run(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "pool check";
    let opts = p.output(cmd)?;
    let paths = super::pool::check_devices(&p.args, cmd)?.to_vec();
    if opts.scripted && !p.flag("journal") {
        return Err(Error::usage("-H applies to --journal only", cmd));
    }
    let mut devs = match ctx.backend.open_devices(&paths) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(ctx.err, "zvpoolctl: cannot read {}: {}", e.path, e.reason);
            return Err(Error::Exit(EXIT_USAGE));
        }
    };
    if p.flag("journal") {
        let blocks = check::journal_blocks(devs.as_mut());
        let doc = vec![Section {
            key: "journal",
            title: None,
            layout: Layout::Rows,
            table: journal_table(&blocks, &paths),
        }];
        return ctx.print(&doc, &opts, cmd);
    }
    let r = check::check(devs.as_mut());
    if opts.json {
        let text = report_json(&r, &paths).render();
        ctx.say(&text);
    } else {
        let text = report_text(&r, &paths);
        let _ = ctx.out.write_all(text.as_bytes());
        for h in hints(&r, &paths) {
            let _ = writeln!(ctx.err, "zvpoolctl: hint: {h}");
        }
    }
    let code = if r.problems(&paths).is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    if code == EXIT_OK {
        Ok(())
    } else {
        Err(Error::Exit(code))
    }
}
