// SPDX-License-Identifier: GPL-2.0
//! `FsBackend` on a real directory tree laid out like the kernel's configfs,
//! and the read-only commands through it.

use crate::backend::{Backend, FsBackend, Obj};
use crate::error::ENOENT;
use crate::testutil::{run_with, Run, TempDir};
use std::fs;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A tree as the kernel would show it: an active pool `fast` with a failed
/// member and volumes (one enabled, one disabled, one unbound), an inactive
/// pool `slow`, and a status key unknown to this tool.
fn kernel_tree() -> TempDir {
    let t = TempDir::new("fsb");
    let r = t.path();
    write(
        r,
        "features",
        "format_version 1\nfeatures zoned-members thin-volumes\n",
    );
    write(
        r,
        "fast/status",
        "state active\nuuid 6f1c2d3e-aaaa-bbbb-cccc-1234567890ab\nmembers 2\ncapacity_bytes 6442450944\n\
         used_bytes 1073741824\nfree_bytes 5368709120\nzones_total 96\nzones_free 80\nzones_gc_reserve 4\n\
         volumes 3\nuser_blocks_written 262144\ngc_blocks_written 13107\nwrite_amplification 1.050\n\
         zones_reset 12\ngc_runs 0\nthrottled_ms 0\njournal_blocks 77\ncheckpoints 5\n\
         table_nodes 31\nsome_new_counter 99\n",
    );
    write(
        r,
        "fast/members",
        "0 /dev/nvme0n1 zns zones=64 zone_bytes=67108864 cap_bytes=65011712 max_open=14 max_active=28 \
         free_zones=50 read_errors=0 write_errors=0 state=ok\n\
         1 /dev/nvme0n2 zns zones=64 zone_bytes=33554432 cap_bytes=33554432 max_open=8 max_active=12 \
         free_zones=30 read_errors=5 write_errors=1 state=failed\n",
    );
    write(r, "fast/devices", "0 /dev/nvme0n1\n1 /dev/nvme0n2\n");
    write(r, "fast/enable", "1\n");
    write(r, "fast/format", "0\n");
    write(
        r,
        "fast/volumes",
        "1 web size_bytes=10737418240 mapped_bytes=536870912\n2 db size_bytes=4294967296 mapped_bytes=536870912\n\
         3 \"odd\" size_bytes=4096 mapped_bytes=0\n",
    );
    write(r, "fast/web/size", "10737418240\n");
    write(r, "fast/web/enable", "1\n");
    write(r, "fast/web/dev", "zvpool0 252:0\n");
    write(
        r,
        "fast/web/usage",
        "id 1\nsize_bytes 10737418240\nmapped_bytes 536870912\nmapped_blocks 131072\n",
    );
    write(r, "fast/db/size", "4294967296\n");
    write(r, "fast/db/enable", "0\n");
    write(r, "fast/db/dev", "");
    write(
        r,
        "fast/db/usage",
        "id 2\nsize_bytes 4294967296\nmapped_bytes 536870912\nmapped_blocks 131072\n",
    );
    // An inactive pool shows its paths in devices only.
    write(r, "slow/status", "state inactive\n");
    write(r, "slow/members", "");
    write(r, "slow/devices", "0 /dev/sdb\n");
    write(r, "slow/volumes", "");
    write(r, "slow/enable", "0\n");
    t
}

fn run(t: &TempDir, args: &[&str]) -> Run {
    let root = t.path().display().to_string();
    let mut all = vec![
        "--configfs-root",
        root.as_str(),
        "--kmsg",
        "/nonexistent/kmsg",
    ];
    all.extend_from_slice(args);
    run_with(None, &all)
}

#[test]
fn backend_primitives() {
    let t = kernel_tree();
    let b = FsBackend::new(t.path());
    assert!(b.exists(&Obj::Root));
    assert!(b.exists(&Obj::pool("fast")));
    assert!(!b.exists(&Obj::pool("features")));
    assert_eq!(b.children(&Obj::Root).unwrap(), vec!["fast", "slow"]);
    assert_eq!(b.children(&Obj::pool("fast")).unwrap(), vec!["db", "web"]);
    assert_eq!(
        b.read_attr(&Obj::volume("fast", "web"), "dev").unwrap(),
        "zvpool0 252:0\n"
    );
    // One write, exactly the value (no newline), replacing the content.
    b.write_attr(&Obj::volume("fast", "db"), "size", "8192")
        .unwrap();
    assert_eq!(
        fs::read_to_string(t.path().join("fast/db/size")).unwrap(),
        "8192"
    );
    let e = b.write_attr(&Obj::pool("fast"), "nosuch", "1").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT));
    b.create(&Obj::pool("new")).unwrap();
    assert!(t.path().join("new").is_dir());
    assert_eq!(
        b.create(&Obj::pool("new")).unwrap_err().raw_os_error(),
        Some(crate::error::EEXIST)
    );
    b.remove(&Obj::pool("new")).unwrap();
    assert!(b.remove(&Obj::pool("fast")).is_err());
}

#[test]
fn pool_list_from_files() {
    let t = kernel_tree();
    let r = run(&t, &["pool", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "NAME  STATE     HEALTH     SIZE   USED   FREE  CAP  MEMBERS  VOLUMES\n\
         fast  active    degraded  6.00G  1.00G  5.00G  16%        2        3\n\
         slow  inactive  -             -      -      -    -        1        -\n"
    );
    let r = run(
        &t,
        &[
            "pool",
            "list",
            "-H",
            "-o",
            "uuid,wa,zones,zones_free",
            "fast",
        ],
    );
    assert_eq!(
        r.out,
        "6f1c2d3e-aaaa-bbbb-cccc-1234567890ab\t1.050\t96\t80\n"
    );
}

#[test]
fn pool_health_from_files() {
    let t = kernel_tree();
    // Without a `health` line (an older kernel): made from the members.
    let r = run(&t, &["pool", "health", "-H", "fast"]);
    assert_eq!(r.code, 1, "degraded exits 1: {r:?}");
    assert!(r.out.contains("health\tdegraded\n"), "{}", r.out);
    assert!(
        r.out
            .contains("1\t/dev/nvme0n2\tfailed\t5\t1\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n"),
        "{}",
        r.out
    );
    // The kernel's own `health` wins, with its meta_errors.
    let st = std::fs::read_to_string(t.path().join("fast/status")).expect("status");
    write(
        t.path(),
        "fast/status",
        &st.replace("state active\n", "state active\nhealth ok\n"),
    );
    write(
        t.path(),
        "fast/members",
        "0 /dev/nvme0n1 zns zones=64 read_errors=0 write_errors=0 meta_errors=0 state=ok\n",
    );
    let r = run(&t, &["pool", "health", "-j", "fast"]);
    assert_eq!(r.code, 0, "ok exits 0: {r:?}");
    assert!(r.out.contains("\"health\": \"ok\""), "{}", r.out);
    assert!(r.out.contains("\"meta_errors\": 0,"), "{}", r.out);
    // An inactive pool is not healthy.
    assert_eq!(run(&t, &["pool", "health", "slow"]).code, 1);
}

#[test]
fn pool_status_from_files() {
    let t = kernel_tree();
    let r = run(&t, &["pool", "status", "fast"]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "health                degraded\n",
        "journal_blocks        77\ncheckpoints           5\ncheckpoint_blocks     -\n\
         delta_checkpoints     -\ncheckpoint_capacity   -\nmetadata_copies       -\nmetadata_full         -\ntable_nodes           31\n",
        "    1  /dev/nvme0n2  zns   failed     64          30  53%      32.0M     32.0M         8          12            5             1  -      -\n",
        "fast/db     4.00G  512M  disabled  -\nfast/\"odd\"  4.00K    0B  unbound   -\n",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    let r = run(&t, &["pool", "status", "-j", "slow"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .contains("\"state\": \"inactive\",\n    \"health\": null,"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("\"path\": \"/dev/sdb\",\n      \"kind\": null,\n      \"state\": null,"),
        "{}",
        r.out
    );
    assert!(r.out.ends_with("  \"volumes\": []\n}\n"), "{}", r.out);
}

#[test]
fn volume_list_and_show_from_files() {
    let t = kernel_tree();
    let r = run(
        &t,
        &[
            "volume",
            "list",
            "-o",
            "name,id,size,used,mapped_blocks,state,device,devt",
        ],
    );
    assert_eq!(
        r.out,
        "NAME        ID   SIZE  USED  MAPPED_BLOCKS  STATE     DEVICE        DEVT\n\
         fast/web     1  10.0G  512M         131072  enabled   /dev/zvpool0  252:0\n\
         fast/db      2  4.00G  512M         131072  disabled  -             -\n\
         fast/\"odd\"   3  4.00K    0B              -  unbound   -             -\n"
    );
    // A name with quotes (from the kernel) is escaped in JSON.
    let r = run(
        &t,
        &["volume", "show", "-j", "-o", "name,volume", "fast/web"],
    );
    assert_eq!(
        r.out,
        "{\n  \"volume\": {\n    \"name\": \"fast/web\",\n    \"volume\": \"web\"\n  }\n}\n"
    );
    let r = run(&t, &["volume", "list", "-j", "-o", "volume", "fast"]);
    assert!(r.out.contains("\"volume\": \"\\\"odd\\\"\""), "{}", r.out);
}

#[test]
fn malformed_kernel_output_is_an_error_not_a_panic() {
    let t = kernel_tree();
    write(t.path(), "fast/status", "state active\nused_bytes many\n");
    let r = run(&t, &["pool", "list"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "zvpoolctl: read fast/status: malformed value \"many\" for used_bytes\n"
    );
    write(t.path(), "slow/members", "garbage\n");
    let r = run(&t, &["pool", "status", "slow"]);
    assert_eq!(
        r.err,
        "zvpoolctl: read slow/members: malformed members line \"garbage\"\n"
    );
}

#[test]
fn write_failures_report_errno_without_a_log() {
    let t = kernel_tree();
    // No such device node: the write goes to a regular file here, so use a
    // missing attribute to get a real errno from the file system.
    fs::remove_file(t.path().join("slow/devices")).unwrap();
    let r = run(&t, &["pool", "add", "slow", "/dev/sdc"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "zvpoolctl: add device /dev/sdc to pool slow: No such file or directory (ENOENT)\n"
    );
}

#[test]
fn environment_variable_selects_the_root() {
    let t = kernel_tree();
    let argv: Vec<String> = ["--kmsg", "/nonexistent", "pool", "list", "-H", "-o", "name"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = crate::run(
        &argv,
        Some(t.path().display().to_string()),
        &mut out,
        &mut err,
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8(out).unwrap(), "fast\nslow\n");
}

#[test]
fn snapshot_writes_are_exact_values_through_configfs_files() {
    let t = kernel_tree();
    let r = t.path();
    write(
        r,
        "features",
        "format_version 2\nfeatures zoned-members thin-volumes snapshots\n",
    );
    write(
        r,
        "fast/volumes",
        "1 web size_bytes=10737418240 mapped_bytes=536870912 kind=volume origin=- exclusive_bytes=0 shared_bytes=536870912\n\
         2 db size_bytes=4294967296 mapped_bytes=536870912\n\
         4 arch size_bytes=8192 mapped_bytes=0 kind=volume origin=- exclusive_bytes=0 shared_bytes=0\n\
         5 web@s0 size_bytes=10737418240 mapped_bytes=536870912 kind=snapshot origin=web exclusive_bytes=0 shared_bytes=536870912 new_key=1\n\
         6 arch@s0 size_bytes=4096 mapped_bytes=0 kind=snapshot origin=arch exclusive_bytes=0 shared_bytes=0\n",
    );
    for a in ["snapshot", "clone", "promote", "rollback", "delete_volume"] {
        write(r, &format!("fast/{a}"), "");
    }
    let file = |a: &str| fs::read_to_string(r.join("fast").join(a)).unwrap();
    let ok = |args: &[&str], out: &str| {
        let res = run(&t, args);
        assert_eq!((res.code, res.out.as_str()), (0, out), "{args:?}: {res:?}");
    };
    ok(
        &["snapshot", "create", "fast/web@s1"],
        "created snapshot fast/web@s1\n",
    );
    assert_eq!(file("snapshot"), "web@s1");
    ok(
        &["volume", "promote", "fast/db"],
        "promoted volume fast/db\n",
    );
    assert_eq!(file("promote"), "db");
    // arch is not bound: the rollback is the one write.
    ok(
        &["snapshot", "rollback", "fast/arch@s0"],
        "rolled back volume fast/arch to snapshot fast/arch@s0\n",
    );
    assert_eq!(file("rollback"), "arch@s0");
    // The clone is written and bound; a real directory has no enable file, so
    // enabling fails and the clone is removed again.
    let res = run(&t, &["volume", "clone", "fast/web@s0", "c1"]);
    assert_eq!(res.code, 1, "{res:?}");
    assert_eq!(
        res.err,
        "zvpoolctl: enable clone fast/c1: No such file or directory (ENOENT)\n\
         zvpoolctl: rolled back: deleted the new clone fast/c1\n"
    );
    assert_eq!(file("clone"), "web@s0 c1");
    assert_eq!(file("delete_volume"), "c1");
    assert!(!r.join("fast/c1").exists());
    // The listings read the new keys (and the old format of db's line).
    let res = run(&t, &["snapshot", "list", "-Hp", "fast"]);
    assert_eq!(
        res.out,
        "fast/web@s0\tfast/web\t10737418240\t536870912\t0\nfast/arch@s0\tfast/arch\t4096\t0\t0\n"
    );
    let res = run(
        &t,
        &[
            "volume",
            "list",
            "-H",
            "-o",
            "name,kind,origin,unique,shared",
            "fast",
        ],
    );
    assert_eq!(
        res.out,
        "fast/web\tvolume\t-\t0B\t512M\nfast/db\tvolume\t-\t512M\t0B\nfast/arch\tvolume\t-\t0B\t0B\n"
    );
}

#[test]
fn pool_set_through_configfs_files() {
    let t = kernel_tree();
    // This tree's module predates table_memory_limit: no such file.
    let r = run(&t, &["pool", "set", "fast", "table_memory_limit=1G"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.err,
        "zvpoolctl: set table_memory_limit of pool fast: the loaded zvpool module has no \
         table_memory_limit attribute (it is older than the property); load a newer zvpool \
         module [No such file or directory (ENOENT)]\n"
    );
    assert!(!t.path().join("fast/table_memory_limit").exists());
    // A newer module: one write of the bytes, without a newline.
    write(t.path(), "fast/table_memory_limit", "8589934592\n");
    let r = run(&t, &["pool", "set", "fast", "table_memory_limit=1.5G"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "set table_memory_limit of pool fast: 8.00G -> 1.50G\n"),
        "{r:?}"
    );
    assert_eq!(
        fs::read_to_string(t.path().join("fast/table_memory_limit")).unwrap(),
        "1610612736"
    );
    let r = run(&t, &["pool", "set", "fast", "table_memory_limit=default"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        fs::read_to_string(t.path().join("fast/table_memory_limit")).unwrap(),
        "0"
    );
}
