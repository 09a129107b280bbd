// SPDX-License-Identifier: GPL-2.0
//! The built binary: exit codes and streams as a shell sees them.

use std::process::{Command, Output};

fn zvpoolctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zvpoolctl"))
        .args(args)
        .env_remove("ZVPOOLCTL_CONFIGFS")
        .output()
        .expect("run zvpoolctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [
        &["--help"][..],
        &["pool", "--help"],
        &["volume", "resize", "--help"],
        &["--version"],
    ] {
        let o = zvpoolctl(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(!o.stdout.is_empty() && o.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    for args in [
        &[][..],
        &["pool"],
        &["pool", "frob"],
        &["volume", "create", "tank/x"],
        &["volume", "create", "tank/x", "--size", "12GB"],
        &["pool", "list", "--no-such-option"],
    ] {
        let o = zvpoolctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(text(&o.stderr).starts_with("zvpoolctl: "), "{args:?}");
    }
}

#[test]
fn missing_driver_exits_1() {
    let dir = std::env::temp_dir().join(format!("zvpoolctl-bin-{}-none", std::process::id()));
    let root = dir.display().to_string();
    let o = zvpoolctl(&[
        "--configfs-root",
        &root,
        "--kmsg",
        "/nonexistent",
        "pool",
        "list",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("zvpoolctl: {root}: zvpool is not available (is the zvpool module loaded and configfs mounted?)\n")
    );
}

#[test]
fn environment_root_and_real_tree() {
    let dir = std::env::temp_dir().join(format!("zvpoolctl-bin-{}-tree", std::process::id()));
    std::fs::create_dir_all(dir.join("tank")).unwrap();
    std::fs::write(dir.join("tank/status"), "state inactive\n").unwrap();
    std::fs::write(dir.join("tank/members"), "").unwrap();
    std::fs::write(dir.join("tank/devices"), "0 /dev/zns0\n").unwrap();
    std::fs::write(dir.join("tank/volumes"), "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zvpoolctl"))
        .args([
            "--kmsg",
            "/nonexistent",
            "pool",
            "list",
            "-H",
            "-o",
            "name,state,members",
        ])
        .env("ZVPOOLCTL_CONFIGFS", &dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "tank\tinactive\t1\n");
}
