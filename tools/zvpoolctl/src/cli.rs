// SPDX-License-Identifier: GPL-2.0
//! Command-line parsing: global options, noun and verb lookup in the command
//! table, per-command options, and the help texts generated from the table.

use crate::commands::{Noun, Verb, NOUNS};
use crate::error::Error;
use crate::output::OutputOpts;

/// One option of a command.
#[derive(Debug)]
pub struct OptSpec {
    pub long: &'static str,
    pub short: Option<char>,
    /// Name of the value (`SIZE`); `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

pub const OPT_SCRIPTED: OptSpec = OptSpec {
    long: "scripted",
    short: Some('H'),
    value: None,
    help: "scripted output: no header, fields separated by one tab",
};
pub const OPT_PARSABLE: OptSpec = OptSpec {
    long: "parsable",
    short: Some('p'),
    value: None,
    help: "exact numbers (sizes in bytes) instead of human sizes",
};
pub const OPT_COLUMNS: OptSpec = OptSpec {
    long: "columns",
    short: Some('o'),
    value: Some("COL,..."),
    help: "show these columns, in this order (listed below)",
};
pub const OPT_JSON: OptSpec = OptSpec {
    long: "json",
    short: Some('j'),
    value: None,
    help: "machine-readable JSON (all columns unless -o)",
};

/// Parsed options and positional arguments of a command.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub args: Vec<String>,
    opts: Vec<(&'static str, Option<String>)>,
}

impl Parsed {
    pub fn flag(&self, long: &str) -> bool {
        self.opts.iter().any(|(l, _)| *l == long)
    }

    /// The last value given for the option.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The output options (`-H -p -o -j`), checked.
    pub fn output(&self, cmd: &str) -> Result<OutputOpts, Error> {
        let columns = match self.value("columns") {
            None => None,
            Some(list) => {
                let cols: Vec<String> = list.split(',').map(|c| c.trim().to_string()).collect();
                if cols.iter().any(String::is_empty) {
                    return Err(Error::usage(
                        format!("empty column name in -o {list:?}"),
                        cmd,
                    ));
                }
                Some(cols)
            }
        };
        let o = OutputOpts {
            scripted: self.flag("scripted"),
            parsable: self.flag("parsable"),
            json: self.flag("json"),
            columns,
        };
        if o.json && (o.scripted || o.parsable) {
            return Err(Error::usage("-j cannot be combined with -H or -p", cmd));
        }
        Ok(o)
    }
}

/// Parses options (anywhere among the arguments, `--` ends them) and
/// positional arguments. `-h`/`--help` is reported as `Ok(None)`.
pub fn parse_opts(spec: &[OptSpec], argv: &[String], cmd: &str) -> Result<Option<Parsed>, Error> {
    let mut p = Parsed::default();
    let mut i = 0;
    let usage = |m: String| Error::usage(m, cmd);
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            p.args.extend(argv[i..].iter().cloned());
            break;
        }
        if a == "-h" || a == "--help" {
            return Ok(None);
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let o = spec
                .iter()
                .find(|o| o.long == name)
                .ok_or_else(|| usage(format!("unknown option --{name}")))?;
            let v = match (o.value, inline) {
                (None, Some(_)) => return Err(usage(format!("option --{name} takes no value"))),
                (None, None) => None,
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => {
                    let v = argv
                        .get(i)
                        .ok_or_else(|| usage(format!("option --{name} needs a value")))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            p.opts.push((o.long, v));
        } else if a.len() > 1 && a.starts_with('-') {
            // Bundled short options: -Hp, -o name,size, -oname.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                if c == 'h' {
                    return Ok(None);
                }
                let o = spec
                    .iter()
                    .find(|o| o.short == Some(c))
                    .ok_or_else(|| usage(format!("unknown option -{c}")))?;
                if o.value.is_some() {
                    let rest: String = chars[j..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        let v = argv
                            .get(i)
                            .ok_or_else(|| usage(format!("option -{c} needs a value")))?;
                        i += 1;
                        v.clone()
                    };
                    p.opts.push((o.long, Some(v)));
                    break;
                }
                p.opts.push((o.long, None));
            }
        } else {
            p.args.push(a.clone());
        }
    }
    Ok(Some(p))
}

/// Global options (before the noun).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Globals {
    pub configfs_root: Option<String>,
    pub kmsg: Option<String>,
    /// The pool cache file (`--cache FILE`).
    pub cache: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Print this text to stdout and exit 0.
    Help(String),
    Version,
    Run {
        globals: Globals,
        noun: &'static Noun,
        verb: &'static Verb,
        parsed: Parsed,
    },
}

/// Parses the whole command line.
pub fn parse(argv: &[String]) -> Result<Invocation, Error> {
    let mut g = Globals::default();
    let mut i = 0;
    while let Some(a) = argv.get(i) {
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += 1;
        let mut value = |name: &str, inline: Option<&str>| -> Result<String, Error> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            let v = argv
                .get(i)
                .cloned()
                .ok_or_else(|| Error::usage(format!("option {name} needs a value"), ""))?;
            i += 1;
            Ok(v)
        };
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (a.as_str(), None),
        };
        match name {
            "-h" | "--help" => return Ok(Invocation::Help(top_help())),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--configfs-root" => g.configfs_root = Some(value(name, inline)?),
            "--kmsg" => g.kmsg = Some(value(name, inline)?),
            "--cache" => g.cache = Some(value(name, inline)?),
            _ => return Err(Error::usage(format!("unknown option {a}"), "")),
        }
    }
    let Some(noun_name) = argv.get(i) else {
        return Err(Error::usage("no command given", ""));
    };
    i += 1;
    if noun_name == "help" {
        return help_for(&argv[i..]);
    }
    let noun = NOUNS.iter().find(|n| n.name == noun_name).ok_or_else(|| {
        Error::usage(
            format!("unknown command {noun_name:?}; commands: {}", noun_names()),
            "",
        )
    })?;
    let Some(verb_name) = argv.get(i) else {
        return Err(Error::usage(
            format!("{} needs a subcommand", noun.name),
            noun.name,
        ));
    };
    i += 1;
    if verb_name == "-h" || verb_name == "--help" {
        return Ok(Invocation::Help(noun_help(noun)));
    }
    let verb = noun
        .verbs
        .iter()
        .find(|v| v.name == verb_name)
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "unknown subcommand \"{} {verb_name}\"; subcommands: {}",
                    noun.name,
                    noun.verbs
                        .iter()
                        .map(|v| v.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                noun.name,
            )
        })?;
    let cmd = format!("{} {}", noun.name, verb.name);
    let Some(parsed) = parse_opts(verb.options, &argv[i..], &cmd)? else {
        return Ok(Invocation::Help(verb_help(noun, verb)));
    };
    let n = parsed.args.len();
    if n < verb.min_args {
        return Err(Error::usage("missing arguments", &cmd));
    }
    if verb.max_args.is_some_and(|m| n > m) {
        return Err(Error::usage(
            format!(
                "unexpected argument {:?}",
                parsed.args[verb.max_args.unwrap_or(0)]
            ),
            &cmd,
        ));
    }
    Ok(Invocation::Run {
        globals: g,
        noun,
        verb,
        parsed,
    })
}

fn help_for(rest: &[String]) -> Result<Invocation, Error> {
    let Some(n) = rest.first() else {
        return Ok(Invocation::Help(top_help()));
    };
    let noun = NOUNS.iter().find(|x| x.name == n).ok_or_else(|| {
        Error::usage(
            format!("unknown command {n:?}; commands: {}", noun_names()),
            "",
        )
    })?;
    let Some(v) = rest.get(1) else {
        return Ok(Invocation::Help(noun_help(noun)));
    };
    let verb = noun
        .verbs
        .iter()
        .find(|x| x.name == v)
        .ok_or_else(|| Error::usage(format!("unknown subcommand \"{n} {v}\""), noun.name))?;
    Ok(Invocation::Help(verb_help(noun, verb)))
}

fn noun_names() -> String {
    NOUNS.iter().map(|n| n.name).collect::<Vec<_>>().join(", ")
}

/// The `usage:` line(s) for a command path (`""`, `"pool"`, `"pool create"`).
pub fn usage_for(cmd: &str) -> String {
    let mut words = cmd.split_whitespace();
    let noun = words
        .next()
        .and_then(|n| NOUNS.iter().find(|x| x.name == n));
    let verb = words
        .next()
        .and_then(|v| noun.and_then(|n| n.verbs.iter().find(|x| x.name == v)));
    match (noun, verb) {
        (Some(n), Some(v)) => format!(
            "usage: zvpoolctl {} {}\nTry 'zvpoolctl {} {} --help'.",
            n.name, v.usage, n.name, v.name
        ),
        (Some(n), None) => {
            let mut s = String::new();
            for v in n.verbs {
                s.push_str(&format!("usage: zvpoolctl {} {}\n", n.name, v.usage));
            }
            s + &format!("Try 'zvpoolctl {} --help'.", n.name)
        }
        _ => "usage: zvpoolctl [--version] [--help] <command> <subcommand> [options] [args]\n\
              Try 'zvpoolctl --help'."
            .to_string(),
    }
}

pub fn top_help() -> String {
    let mut s = String::from(
        "usage: zvpoolctl [--version] [--help] <command> <subcommand> [options] [args]\n\n\
         Administers zvpool: pools of zoned devices (NVMe ZNS, host-managed SMR) and\n\
         the thin-provisioned virtual disks /dev/zvpoolN carved from them, with\n\
         their snapshots and clones. It talks to the zvpool driver through configfs\n\
         (/sys/kernel/config/zvpool); the kernel is the only source of truth (no\n\
         daemon; the pool cache only records which pools to import at boot).\n\nCommands:\n",
    );
    for n in NOUNS {
        for v in n.verbs {
            s.push_str(&format!(
                "  {} {}\n        {}\n",
                n.name, v.usage, v.summary
            ));
        }
    }
    s.push_str(
        "\nListing commands take -H (scripted), -p (exact numbers), -o COL,... (columns)\n\
         and -j/--json (JSON). Sizes: bytes, or K M G T P (powers of 1024; also KiB,\n\
         MiB, ...).\n\n\
         Options:\n  -h, --help     show help (also: zvpoolctl <command> [<subcommand>] --help)\n  \
         -V, --version  show the version\n  \
         --cache FILE   the pool cache (default /etc/zvpool/zvpool.cache)\n\n\
         Exit status: 0 success, 1 operation failed, 2 usage error.\n\
         Documentation: zvpoolctl(8), zvpool(4), Documentation/zvpoolctl.md\n",
    );
    s
}

pub fn noun_help(n: &Noun) -> String {
    let mut s = format!(
        "usage: zvpoolctl {} <subcommand> [options] [args]\n\n{}\n\nSubcommands:\n",
        n.name, n.help
    );
    let w = n.verbs.iter().map(|v| v.usage.len()).max().unwrap_or(0);
    for v in n.verbs {
        s.push_str(&format!("  {:<w$}  {}\n", v.usage, v.summary));
    }
    s.push_str(&format!(
        "\nRun 'zvpoolctl {} <subcommand> --help' for details.\n",
        n.name
    ));
    s
}

pub fn verb_help(n: &Noun, v: &Verb) -> String {
    let mut s = format!(
        "usage: zvpoolctl {} {}\n\n{}\n\n{}\n",
        n.name, v.usage, v.summary, v.help
    );
    s.push_str("\nOptions:\n");
    let names: Vec<String> = v
        .options
        .iter()
        .map(|o| {
            let short = o
                .short
                .map(|c| format!("-{c}, "))
                .unwrap_or_else(|| "    ".into());
            let val = o.value.map(|x| format!(" {x}")).unwrap_or_default();
            format!("{short}--{}{val}", o.long)
        })
        .chain(std::iter::once("-h, --help".to_string()))
        .collect();
    let w = names.iter().map(String::len).max().unwrap_or(0);
    for (name, o) in names
        .iter()
        .zip(v.options.iter().map(Some).chain(std::iter::once(None)))
    {
        let help = o.map_or("show this help", |o| o.help);
        s.push_str(&format!("  {name:<w$}  {help}\n"));
    }
    if !v.columns.is_empty() {
        s.push_str("\nOutput columns (-o):\n");
        let w = v.columns.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        for (c, h) in v.columns {
            s.push_str(&format!("  {c:<w$}  {h}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests;
