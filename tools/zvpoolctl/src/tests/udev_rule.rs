// SPDX-License-Identifier: GPL-2.0
//! The shipped udev rule (udev/60-zvpool.rules), exercised: the udev rules
//! interpreter the guest's tests use (selftests/zvpool/udev_rules.awk: match
//! keys `==`/`!=` with globs and `|`, `ENV{}`, `ATTR{}`, `GOTO`/`LABEL`,
//! `IMPORT{program}`, `SYMLINK+=` and `ENV{}=` with `$env{}`, `$attr{}` and
//! `%k`) runs it with `awk` for uevents of volume disks of the fake kernel,
//! with a fake sysfs; `IMPORT{program}` runs a stub that logs its arguments
//! and prints what `zvpoolctl volume ident` printed in process for that
//! disk. The links and variables it makes are checked. (On a real system:
//! `udevadm test /sys/block/zvpool0`.)

use crate::backend::{Backend, Obj};
use crate::testutil::{run_with, TempDir};
use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../udev/60-zvpool.rules");
const AWK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../selftests/zvpool/udev_rules.awk"
);

/// What a run of the rules made.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    links: Vec<String>,
    /// Variables the rules set or imported.
    vars: BTreeMap<String, String>,
    /// Command lines of the programs run.
    programs: Vec<String>,
}

/// Runs `rules` (with `/usr/local/sbin/zvpoolctl` replaced by a stub that
/// prints `ident` = (exit code, output)) for the uevent `env` (`KERNEL`
/// names the disk; `sysfs`: its attributes) through the awk interpreter.
fn apply(
    rules: &str,
    env: &BTreeMap<&str, &str>,
    sysfs: &[(&str, &str)],
    ident: (i32, &str),
) -> Outcome {
    let t = TempDir::new("udev");
    let kernel = env["KERNEL"];
    let devpath = format!("/devices/virtual/block/{kernel}");
    let sys = t.path().join(format!("sys{devpath}"));
    fs::create_dir_all(&sys).unwrap();
    for (name, v) in sysfs {
        fs::write(sys.join(name), format!("{v}\n")).unwrap();
    }
    let log = t.path().join("programs");
    let stub = t.path().join("zvpoolctl");
    fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >>'{}'\ncat <<'EOF'\n{}\nEOF\nexit {}\n",
            log.display(),
            ident.1.trim_end(),
            ident.0
        ),
    )
    .unwrap();
    let mut perm = fs::metadata(&stub).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&stub, perm).unwrap();
    let rules_file = t.path().join("60-zvpool.rules");
    fs::write(
        &rules_file,
        rules.replace("/usr/local/sbin/zvpoolctl", &stub.display().to_string()),
    )
    .unwrap();
    let mut cmd = Command::new("awk");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SYSFS", t.path().join("sys"))
        .env("DEVPATH", &devpath)
        .env("DEVNAME", kernel)
        .args(["-f", AWK])
        .arg(&rules_file);
    for (k, v) in env.iter().filter(|(k, _)| **k != "KERNEL") {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("awk");
    assert!(
        out.status.success(),
        "udev_rules.awk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut o = Outcome::default();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        if let Some(link) = l.strip_prefix("LINK ") {
            o.links.push(link.to_string());
        } else if let Some((k, v)) = l.strip_prefix("ENV ").and_then(|kv| kv.split_once('=')) {
            o.vars.insert(k.to_string(), v.to_string());
        } else {
            panic!("unexpected output line {l:?}");
        }
    }
    let stub_path = stub.display().to_string();
    o.programs = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.replacen(&stub_path, "/usr/local/sbin/zvpoolctl", 1))
        .collect();
    o
}

fn uevent<'a>(action: &'a str, kernel: &'a str) -> BTreeMap<&'a str, &'a str> {
    BTreeMap::from([
        ("ACTION", action),
        ("SUBSYSTEM", "block"),
        ("KERNEL", kernel),
    ])
}

/// Links of `rules` for a change uevent of disk `kernel`.
fn links_of(rules: &str, kernel: &str) -> Vec<String> {
    apply(rules, &uevent("change", kernel), &[], (1, "")).links
}

#[test]
fn globs_as_udev() {
    let rule = r#"KERNEL=="zvpool[0-9]*|sd?", SYMLINK+="ok/%k""#;
    for (k, ok) in [
        ("zvpool12", true),
        ("zvpoolx", false),
        ("sdb", true),
        ("sdbb", false),
    ] {
        assert_eq!(links_of(rule, k).len(), usize::from(ok), "{k}");
    }
    let empty = r#"ENV{X}=="?*", SYMLINK+="set"
ENV{X}!="?*", SYMLINK+="unset""#;
    assert_eq!(links_of(empty, "a"), ["unset"]);
}

#[test]
fn keys_outside_the_subset_are_refused() {
    let t = TempDir::new("udev-bad");
    let f = t.path().join("bad.rules");
    fs::write(&f, "KERNEL==\"x\", OWNER=\"root\"\n").unwrap();
    let out = Command::new("awk")
        .args(["-f", AWK])
        .arg(&f)
        .env("DEVPATH", "/a/x")
        .output()
        .expect("awk");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported key OWNER"));
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
    let ident = |k: &str| {
        let r = run_with(Some(&fk), &["volume", "ident", k]);
        (r.code, r.out)
    };
    let disk = |v: &str| {
        let d = fk.read_attr(&Obj::volume("tank", v), "dev").unwrap();
        d.split_whitespace().next().unwrap().to_string()
    };
    let uuid_of = |k: &str| {
        let (_, out) = ident(k);
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
        let (code, out) = ident(&k);
        for action in ["add", "change"] {
            let o = apply(&rules, &uevent(action, &k), &[], (code, &out));
            assert_eq!(
                o.links,
                [
                    link.to_string(),
                    format!("disk/by-id/zvpool-{}", uuid_of(&k))
                ],
                "{vol} {action}"
            );
            assert_eq!(
                o.programs,
                [format!("/usr/local/sbin/zvpoolctl volume ident {k}")]
            );
        }
        // Removal: nothing is run.
        assert_eq!(
            apply(&rules, &uevent("remove", &k), &[], (code, &out)),
            Outcome::default()
        );
    }
    // The kernel's change uevent after adding the disk carries the
    // variables: the links come from them, no program runs; the disk's
    // serial and WWID in sysfs become udev's ID_SERIAL(_SHORT) and ID_WWN.
    let k = disk("vm1");
    let u = uuid_of(&k);
    let mut ev = uevent("change", &k);
    ev.extend([
        ("ZVPOOL_POOL", "tank"),
        ("ZVPOOL_VOLUME", "vm1"),
        ("ZVPOOL_KIND", "volume"),
        ("ZVPOOL_UUID", u.as_str()),
    ]);
    let serial: String = u.chars().filter(|&c| c != '-').take(20).collect();
    let wwid = format!("uuid.{u}");
    let o = apply(
        &rules,
        &ev,
        &[("serial", serial.as_str()), ("wwid", wwid.as_str())],
        (1, "no program for an event with the variables"),
    );
    assert_eq!(
        o.links,
        [
            "zvpool/tank/vm1".to_string(),
            format!("disk/by-id/zvpool-{u}")
        ]
    );
    assert!(o.programs.is_empty(), "{:?}", o.programs);
    assert_eq!(
        o.vars,
        BTreeMap::from([
            ("ID_SERIAL".to_string(), format!("zvpool-{serial}")),
            ("ID_SERIAL_SHORT".to_string(), serial.clone()),
            ("ID_WWN".to_string(), wwid.clone()),
        ])
    );
    // Without the attributes (older modules): no serial, no WWN.
    let o = apply(&rules, &ev, &[], (1, ""));
    assert!(o.vars.is_empty(), "{:?}", o.vars);
    // Other disks are not looked at; a zvpool disk no volume has gets no
    // link: its ident fails, and what a failed program prints is ignored.
    let named = "ZVPOOL_POOL=x\nZVPOOL_VOLUME=y\nZVPOOL_UUID=z";
    assert_eq!(
        apply(&rules, &uevent("add", "sda"), &[], (0, named)),
        Outcome::default()
    );
    assert_ne!(ident("zvpool99").0, 0);
    let o = apply(&rules, &uevent("add", "zvpool99"), &[], (1, named));
    assert_eq!((o.links.len(), o.programs.len()), (0, 1));
}
