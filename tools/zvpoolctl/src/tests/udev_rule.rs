// SPDX-License-Identifier: GPL-2.0
//! The shipped udev rule (udev/60-zvpool.rules), exercised: a small
//! interpreter of the udev rule syntax the file uses (match keys `==`/`!=`
//! with globs and `|`, `ENV{}`, `GOTO`/`LABEL`, `IMPORT{program}`,
//! `SYMLINK+=` with `$env{}` and `%k`) runs it for uevents of volume disks of
//! the fake kernel; `IMPORT{program}` runs `zvpoolctl volume ident` in
//! process. The links it makes are checked. (On a real system: `udevadm
//! test /sys/block/zvpool0`.)

use crate::backend::{Backend, Obj};
use crate::testutil::run_with;
use std::collections::BTreeMap;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../udev/60-zvpool.rules");

/// udev's glob (`*`, `?`, `[a-z0-9]`) for one alternative.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|&c| c == b']') else {
                return false;
            };
            let Some(&c) = s.first() else { return false };
            let set = &p[1..end];
            let mut ok = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    ok |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    ok |= set[i] == c;
                    i += 1;
                }
            }
            ok && glob(&p[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern
        .split('|')
        .any(|alt| glob(alt.as_bytes(), value.as_bytes()))
}

/// `KEY{attr}OP"value"` items of a rule line.
fn items(line: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let op_at = rest.find(['=', '!', '+']).expect("operator");
        let key = rest[..op_at].trim().to_string();
        let op_len = if rest[op_at..].starts_with("==")
            || rest[op_at..].starts_with("!=")
            || rest[op_at..].starts_with("+=")
        {
            2
        } else {
            1
        };
        let op = rest[op_at..op_at + op_len].to_string();
        let v = rest[op_at + op_len..].trim_start();
        assert!(v.starts_with('"'), "unquoted value in {line:?}");
        let end = v[1..].find('"').expect("closing quote") + 1;
        out.push((key, op, v[1..end].to_string()));
        rest = v[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    out
}

/// Runs the rules for a uevent; returns the symlinks made and the programs
/// run. `run` is what IMPORT{program} calls (argv after the program path).
fn apply(
    rules: &str,
    env: &BTreeMap<&str, &str>,
    run: &dyn Fn(&[&str]) -> (i32, String),
) -> (Vec<String>, Vec<String>) {
    // The uevent's own variables (the kernel's ZVPOOL_*) are properties.
    let mut vars: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("ZVPOOL_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (mut links, mut programs) = (Vec::new(), Vec::new());
    let kernel = env["KERNEL"];
    let subst = |s: &str, vars: &BTreeMap<String, String>| {
        let mut s = s.replace("%k", kernel);
        while let Some(i) = s.find("$env{") {
            let j = s[i..].find('}').unwrap() + i;
            let v = vars.get(&s[i + 5..j]).cloned().unwrap_or_default();
            s.replace_range(i..=j, &v);
        }
        s
    };
    let mut goto: Option<String> = None;
    for line in rules.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let its = items(line);
        if let Some(label) = &goto {
            if its.iter().any(|(k, _, v)| k == "LABEL" && v == label) {
                goto = None;
            }
            continue;
        }
        let mut ok = true;
        for (k, op, v) in its.iter().filter(|(_, op, _)| op == "==" || op == "!=") {
            let val = match k.strip_prefix("ENV{") {
                Some(name) => vars
                    .get(name.trim_end_matches('}'))
                    .cloned()
                    .unwrap_or_default(),
                None => env
                    .get(k.as_str())
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            };
            ok &= matches(v, &val) == (op == "==");
        }
        if !ok {
            continue;
        }
        for (k, op, v) in its.iter().filter(|(_, op, _)| op != "==" && op != "!=") {
            match (k.as_str(), op.as_str()) {
                ("GOTO", "=") => goto = Some(v.clone()),
                ("LABEL", "=") => {}
                ("IMPORT{program}", "=") => {
                    let cmd = subst(v, &vars);
                    programs.push(cmd.clone());
                    let argv: Vec<&str> = cmd.split_whitespace().collect();
                    assert!(
                        argv[0].starts_with('/'),
                        "udev needs an absolute program path: {cmd}"
                    );
                    let (code, out) = run(&argv[1..]);
                    if code == 0 {
                        for l in out.lines() {
                            let (key, val) = l.split_once('=').expect("KEY=value");
                            vars.insert(key.to_string(), val.to_string());
                        }
                    }
                }
                ("SYMLINK", "+=") => links.push(subst(v, &vars)),
                other => panic!("the interpreter does not know {other:?} in {line:?}"),
            }
        }
    }
    assert!(goto.is_none(), "GOTO without its LABEL");
    (links, programs)
}

fn uevent<'a>(action: &'a str, kernel: &'a str) -> BTreeMap<&'a str, &'a str> {
    BTreeMap::from([
        ("ACTION", action),
        ("SUBSYSTEM", "block"),
        ("KERNEL", kernel),
    ])
}

#[test]
fn globs_as_udev() {
    assert!(matches("zvpool[0-9]*", "zvpool12"));
    assert!(!matches("zvpool[0-9]*", "zvpoolx"));
    assert!(matches("?*", "a") && !matches("?*", ""));
    assert!(matches("add|change", "change") && !matches("add|change", "remove"));
}

#[test]
fn the_rule_links_volumes_and_snapshots_by_name_and_uuid() {
    let rules = std::fs::read_to_string(RULES).expect("udev/60-zvpool.rules");
    let fk = super::setup_with_volumes();
    // The fake's status shows no UUID unless it serves member images: give
    // it one through the pool's first member.
    let img = crate::testutil::image::make_pool_image(1, 0, [0x5a; 16], 1);
    fk.set_image("/dev/zns0", img.devs[0].clone());
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm1@gold"]).code, 0);
    let snap = Obj::volume("tank", "vm1@gold");
    fk.create(&snap).unwrap();
    fk.write_attr(&snap, "enable", "1").unwrap();
    let run = |args: &[&str]| {
        let r = run_with(Some(&fk), args);
        (r.code, r.out)
    };
    let disk = |v: &str| {
        let d = fk.read_attr(&Obj::volume("tank", v), "dev").unwrap();
        d.split_whitespace().next().unwrap().to_string()
    };
    let uuid_of = |k: &str| {
        let (_, out) = run(&["volume", "ident", k]);
        out.lines()
            .find_map(|l| l.strip_prefix("ZVPOOL_UUID="))
            .unwrap()
            .to_string()
    };
    for (vol, link) in [
        ("vm1", "zvpool/tank/vm1"),
        ("vm1@gold", "zvpool/tank/vm1@gold"),
    ] {
        let k = disk(vol);
        for action in ["add", "change"] {
            let (links, programs) = apply(&rules, &uevent(action, &k), &run);
            assert_eq!(
                links,
                [
                    link.to_string(),
                    format!("disk/by-id/zvpool-{}", uuid_of(&k))
                ],
                "{vol} {action}"
            );
            assert_eq!(programs.len(), 1);
            assert!(
                programs[0].ends_with(&format!("/zvpoolctl volume ident {k}")),
                "{programs:?}"
            );
        }
        // Removal: nothing is run.
        assert_eq!(apply(&rules, &uevent("remove", &k), &run), (vec![], vec![]));
    }
    // The kernel's change uevent after adding the disk carries the
    // variables: the links come from them, no program runs.
    let k = disk("vm1");
    let u = uuid_of(&k);
    let mut ev = uevent("change", &k);
    ev.extend([
        ("ZVPOOL_POOL", "tank"),
        ("ZVPOOL_VOLUME", "vm1"),
        ("ZVPOOL_KIND", "volume"),
        ("ZVPOOL_UUID", u.as_str()),
    ]);
    let (links, programs) = apply(&rules, &ev, &|_: &[&str]| -> (i32, String) {
        panic!("no program for an event with the variables")
    });
    assert_eq!(
        links,
        [
            "zvpool/tank/vm1".to_string(),
            format!("disk/by-id/zvpool-{u}")
        ]
    );
    assert!(programs.is_empty(), "{programs:?}");
    // Other disks are not looked at; a zvpool disk no volume has gets no link.
    assert_eq!(apply(&rules, &uevent("add", "sda"), &run), (vec![], vec![]));
    let (links, programs) = apply(&rules, &uevent("add", "zvpool99"), &run);
    assert_eq!((links.len(), programs.len()), (0, 1));
}
