// SPDX-License-Identifier: GPL-2.0
use super::*;

const SPEC: &[OptSpec] = &[
    OPT_SCRIPTED,
    OPT_PARSABLE,
    OPT_COLUMNS,
    OPT_JSON,
    OptSpec {
        long: "size",
        short: Some('s'),
        value: Some("SIZE"),
        help: "",
    },
    OptSpec {
        long: "force",
        short: None,
        value: None,
        help: "",
    },
];

fn parse(args: &[&str]) -> Result<Option<Parsed>, Error> {
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    parse_opts(SPEC, &argv, "test cmd")
}

#[test]
fn options_anywhere_and_bundled() {
    let p = parse(&["a", "-Hp", "b", "--size", "1G", "-oname,size", "--force"])
        .unwrap()
        .unwrap();
    assert_eq!(p.args, vec!["a", "b"]);
    assert!(p.flag("scripted") && p.flag("parsable") && p.flag("force") && !p.flag("json"));
    assert_eq!(p.value("size"), Some("1G"));
    assert_eq!(p.value("columns"), Some("name,size"));
    let o = p.output("x").unwrap();
    assert_eq!(
        o.columns,
        Some(vec!["name".to_string(), "size".to_string()])
    );
    let p = parse(&["-s20G", "--size=30G", "-Ho", "name"])
        .unwrap()
        .unwrap();
    assert_eq!(p.value("size"), Some("30G"));
    assert_eq!(p.value("columns"), Some("name"));
    assert!(p.args.is_empty());
}

#[test]
fn double_dash_and_dash_values() {
    let p = parse(&["--", "-H", "--size"]).unwrap().unwrap();
    assert_eq!(p.args, vec!["-H", "--size"]);
    assert!(!p.flag("scripted"));
    let p = parse(&["--size", "-5"]).unwrap().unwrap();
    assert_eq!(p.value("size"), Some("-5"));
    let p = parse(&["-"]).unwrap().unwrap();
    assert_eq!(p.args, vec!["-"]);
}

#[test]
fn help_and_errors() {
    assert!(parse(&["x", "--help"]).unwrap().is_none());
    assert!(parse(&["-Hh"]).unwrap().is_none());
    let e = |args: &[&str]| match parse(args) {
        Err(Error::Usage { msg, cmd }) => {
            assert_eq!(cmd, "test cmd");
            msg
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(e(&["--nope"]), "unknown option --nope");
    assert_eq!(e(&["-Hz"]), "unknown option -z");
    assert_eq!(e(&["--size"]), "option --size needs a value");
    assert_eq!(e(&["-s"]), "option -s needs a value");
    assert_eq!(e(&["--force=1"]), "option --force takes no value");
    let p = parse(&["-j", "-p"]).unwrap().unwrap();
    assert!(matches!(p.output("x"), Err(Error::Usage { .. })));
}

#[test]
fn global_options() {
    let argv: Vec<String> = [
        "--configfs-root",
        "/tmp/x",
        "--kmsg=/tmp/k",
        "pool",
        "list",
        "-H",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match super::parse(&argv).unwrap() {
        Invocation::Run {
            globals,
            noun,
            verb,
            parsed,
        } => {
            assert_eq!(globals.configfs_root.as_deref(), Some("/tmp/x"));
            assert_eq!(globals.kmsg.as_deref(), Some("/tmp/k"));
            assert_eq!((noun.name, verb.name), ("pool", "list"));
            assert!(parsed.flag("scripted"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_table_is_consistent() {
    for n in NOUNS {
        for v in n.verbs {
            assert!(
                !v.summary.is_empty() && !v.help.is_empty(),
                "{} {}",
                n.name,
                v.name
            );
            assert!(v.max_args.is_none_or(|m| m >= v.min_args));
            let mut seen = Vec::new();
            for o in v.options {
                assert!(!seen.contains(&o.long), "duplicate --{}", o.long);
                assert_ne!(o.short, Some('h'));
                seen.push(o.long);
            }
            assert!(
                v.help.contains("configfs:"),
                "{} {} help does not say how it maps to configfs",
                n.name,
                v.name
            );
        }
    }
}
