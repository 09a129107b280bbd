// SPDX-License-Identifier: GPL-2.0
//! completion/zvpoolctl.bash: it parses (`bash -n`), its command lists follow
//! the command table (every noun, verb and long option), and it completes
//! subcommands and pool, volume and snapshot names from a configfs tree
//! (the fake kernel's). Tests needing bash skip with a reason without it.

use crate::commands::NOUNS;
use std::collections::BTreeSet;
use std::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../completion/zvpoolctl.bash"
);

fn script() -> String {
    std::fs::read_to_string(SCRIPT).expect("completion/zvpoolctl.bash")
}

fn have_bash() -> bool {
    let ok = Command::new("bash").arg("-c").arg("true").output().is_ok();
    if !ok {
        eprintln!("skipped: bash is not installed");
    }
    ok
}

/// The words of `KEY="..."` on the script line that starts with `head`.
fn list(s: &str, head: &str, key: &str) -> Option<BTreeSet<String>> {
    let line = s.lines().map(str::trim).find(|l| l.starts_with(head))?;
    let i = line.find(&format!("{key}=\""))? + key.len() + 2;
    let end = line[i..].find('"')? + i;
    Some(line[i..end].split_whitespace().map(String::from).collect())
}

#[test]
fn lists_follow_the_command_table() {
    let s = script();
    let nouns = list(&s, "local nouns=", "nouns").expect("nouns line");
    for n in NOUNS {
        assert!(nouns.contains(n.name), "noun {} not completed", n.name);
        let verbs = list(&s, &format!("{}) verbs=", n.name), "verbs")
            .unwrap_or_else(|| panic!("no verbs line for {}", n.name));
        let want: BTreeSet<String> = n.verbs.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(verbs, want, "verbs of {}", n.name);
        for v in n.verbs {
            let opts = list(&s, &format!("\"{} {}\") opts=", n.name, v.name), "opts")
                .unwrap_or_else(|| panic!("no options line for {} {}", n.name, v.name));
            let want: BTreeSet<String> =
                v.options.iter().map(|o| format!("--{}", o.long)).collect();
            assert_eq!(opts, want, "options of {} {}", n.name, v.name);
        }
    }
}

/// The PROPERTY= keys of `pool set` and `volume set` are the tool's
/// property tables.
#[test]
fn keys_follow_the_property_tables() {
    let s = script();
    let pool = list(&s, "\"pool set\") opts=", "keys").expect("keys of pool set");
    let want: BTreeSet<String> = crate::commands::props::PROPS
        .iter()
        .map(|p| format!("{}=", p.name))
        .collect();
    assert_eq!(pool, want);
    let vol = list(&s, "\"volume set\") opts=", "keys").expect("keys of volume set");
    let want: BTreeSet<String> = crate::commands::qos::SETTINGS
        .iter()
        .map(|p| format!("{}=", p.name))
        .collect();
    assert_eq!(vol, want);
}

#[test]
fn script_parses() {
    if !have_bash() {
        return;
    }
    let o = Command::new("bash").arg("-n").arg(SCRIPT).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// What the completion function offers for the words (the last one is
/// being completed), against the configfs tree `root`.
fn complete(root: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{SCRIPT}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_zvpoolctl\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        quoted.join(" "),
        words.len() - 1
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(prog)
        .env("ZVPOOLCTL_CONFIGFS", root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn completes_commands_and_names() {
    if !have_bash() {
        return;
    }
    let fk = super::setup_with_volumes();
    assert_eq!(fk.run(&["snapshot", "create", "tank/vm1@gold"]).code, 0);
    let r = fk.root();
    assert_eq!(complete(r, &["zvpoolctl", "sn"]), ["snapshot"]);
    assert_eq!(
        complete(r, &["zvpoolctl", "pool", "st"]),
        ["status", "stop"]
    );
    assert_eq!(
        complete(r, &["zvpoolctl", "pool", "import", "--c"]),
        ["--cached"]
    );
    assert_eq!(complete(r, &["zvpoolctl", "pool", "status", ""]), ["tank"]);
    assert_eq!(
        complete(r, &["zvpoolctl", "volume", "delete", "t"]),
        ["tank/vm1", "tank/vm2"]
    );
    assert_eq!(
        complete(r, &["zvpoolctl", "snapshot", "delete", ""]),
        ["tank/vm1@gold"]
    );
    assert_eq!(
        complete(r, &["zvpoolctl", "volume", "list", "-t", "sn"]),
        ["snapshot"]
    );
    // Properties after the volume or pool; nothing after '='.
    assert_eq!(
        complete(r, &["zvpoolctl", "volume", "set", "t"]),
        ["tank/vm1", "tank/vm2"]
    );
    assert_eq!(
        complete(r, &["zvpoolctl", "volume", "set", "tank/vm1", "r"]),
        ["rbps=", "reservation=", "riops="]
    );
    assert_eq!(
        complete(
            r,
            &["zvpoolctl", "volume", "set", "tank/vm1", "quota=1G", "q"]
        ),
        ["quota="]
    );
    assert!(complete(r, &["zvpoolctl", "volume", "set", "tank/vm1", "quota=1"]).is_empty());
    assert_eq!(
        complete(r, &["zvpoolctl", "pool", "set", "tank", "pool_"]),
        ["pool_reserve_pct="]
    );
}
