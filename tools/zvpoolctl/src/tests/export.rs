// SPDX-License-Identifier: GPL-2.0
//! `volume export | unexport | exports` (and what `resize` and `delete` do
//! with exports) against the fake kernel with an emulated nvmet tree.

use super::{assert_fails, setup_with_volumes, with_volumes};
use crate::error::{EINVAL, EIO};
use crate::testutil::fake::FakeKernel;
use crate::testutil::snapshot;
use std::fs;

const NQN: &str = "nqn.2026-12.io.zvpool:tank.vm1";
/// An export over TCP: every step of the plan (a new port with an address).
const TCP_EXPORT: &[&str] = &[
    "volume",
    "export",
    "--nqn",
    NQN,
    "--transport",
    "tcp",
    "--addr",
    "10.0.0.1",
    "--port",
    "4421",
    "tank/vm1",
];

fn setup() -> FakeKernel {
    let fk = with_volumes(FakeKernel::new().with_nvmet());
    fk.set_pool_uuid("tank", "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab");
    fk
}

/// `ZVPOOL_UUID` of `volume ident DISK` (the identity the export must carry).
fn uuid_of(fk: &FakeKernel, disk: &str) -> String {
    let r = fk.run(&["volume", "ident", disk]);
    assert_eq!(r.code, 0, "{r:?}");
    r.out
        .lines()
        .find_map(|l| l.strip_prefix("ZVPOOL_UUID="))
        .unwrap()
        .to_string()
}

fn attr(fk: &FakeKernel, rel: &str) -> String {
    fs::read_to_string(fk.nvmet_tree().root().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .trim_end()
        .to_string()
}

#[test]
fn export_over_loop_carries_the_volume_identity() {
    let fk = setup();
    let uuid = uuid_of(&fk, "zvpool0");
    let r = fk.run(&["volume", "export", "--nqn", NQN, "tank/vm1"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        format!(
            "exported volume tank/vm1 (/dev/zvpool0) as {NQN} namespace 1 over loop \
             (nvmet port 1), uuid {uuid}\n"
        )
    );
    let sub = format!("subsystems/{NQN}");
    let ns = format!("{sub}/namespaces/1");
    // Exactly these configfs operations, in this order.
    assert_eq!(
        fk.nvmet_tree().ops(),
        [
            format!("mkdir {sub}"),
            format!("write {sub}/attr_allow_any_host=1"),
            format!("write {sub}/attr_serial={}", &uuid.replace('-', "")[..20]),
            format!("mkdir {ns}"),
            format!("write {ns}/device_path=/dev/zvpool0"),
            format!("write {ns}/device_uuid={uuid}"),
            format!("write {ns}/device_nguid={}", uuid.replace('-', "")),
            format!("write {ns}/enable=1"),
            "mkdir ports/1".to_string(),
            "write ports/1/addr_trtype=loop".to_string(),
            format!("link ports/1/subsystems/{NQN} -> {sub}"),
        ]
    );
    assert_eq!(attr(&fk, &format!("{ns}/device_path")), "/dev/zvpool0");
    assert_eq!(attr(&fk, &format!("{ns}/device_uuid")), uuid);
    assert_eq!(
        attr(&fk, &format!("{ns}/device_nguid")),
        uuid.replace('-', "")
    );
    assert_eq!(attr(&fk, &format!("{ns}/enable")), "1");
    assert_eq!(
        attr(&fk, &format!("subsystems/{NQN}/attr_allow_any_host")),
        "1"
    );
    assert_eq!(
        attr(&fk, &format!("subsystems/{NQN}/attr_serial")),
        uuid.replace('-', "")[..20]
    );
    assert_eq!(attr(&fk, "ports/1/addr_trtype"), "loop");
    let link = fk
        .nvmet_tree()
        .root()
        .join(format!("ports/1/subsystems/{NQN}"));
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());

    let r = fk.run(&[
        "volume",
        "exports",
        "-H",
        "-o",
        "name,nqn,nsid,device,transport,port,hosts,enabled,nguid",
    ]);
    assert_eq!(
        (r.code, r.out.clone()),
        (
            0,
            format!(
                "tank/vm1\t{NQN}\t1\t/dev/zvpool0\tloop\t1\tany\tyes\t{}\n",
                uuid.replace('-', "")
            )
        ),
        "{r:?}"
    );
    let r = fk.run(&["volume", "exports", "-H", "-o", "name", "tank/vm2"]);
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{r:?}");
}

#[test]
fn tcp_exports_share_a_port_and_unexport_restores_the_tree() {
    let fk = setup();
    let empty = snapshot(fk.nvmet_tree().root());
    for (vol, nqn) in [("tank/vm1", "nqn.x:vm1"), ("tank/vm2", "nqn.x:vm2")] {
        let r = fk.run(&[
            "volume",
            "export",
            "--nqn",
            nqn,
            "--transport",
            "tcp",
            "--addr",
            "127.0.0.1",
            vol,
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.out.contains("over tcp 127.0.0.1:4420 (nvmet port 1)"),
            "{r:?}"
        );
    }
    assert_eq!(attr(&fk, "ports/1/addr_adrfam"), "ipv4");
    assert_eq!(attr(&fk, "ports/1/addr_traddr"), "127.0.0.1");
    assert_eq!(attr(&fk, "ports/1/addr_trsvcid"), "4420");
    let r = fk.run(&["volume", "exports", "-H", "-o", "name,transport"]);
    assert_eq!(
        r.out,
        "tank/vm1\ttcp 127.0.0.1:4420\ntank/vm2\ttcp 127.0.0.1:4420\n"
    );
    let r = fk.run(&["volume", "unexport", "tank/vm1"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (
            0,
            "unexported volume tank/vm1 (/dev/zvpool0): nqn.x:vm1 namespace 1\n"
        )
    );
    assert!(fk.nvmet_tree().root().join("ports/1").is_dir());
    let r = fk.run(&["volume", "unexport", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(snapshot(fk.nvmet_tree().root()), empty);
    let r = fk.run(&["volume", "exports"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "NAME  NQN  NSID  DEVICE  TRANSPORT\n")
    );
}

#[test]
fn a_host_nqn_restricts_access() {
    let fk = setup();
    let host = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    let r = fk.run(&["volume", "export", "--nqn", NQN, "--host", host, "tank/vm1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        attr(&fk, &format!("subsystems/{NQN}/attr_allow_any_host")),
        "0"
    );
    let r = fk.run(&["volume", "exports", "-H", "-o", "hosts"]);
    assert_eq!(r.out, format!("{host}\n"));
    let r = fk.run(&["volume", "unexport", "tank/vm1"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The host entry stays (it may hold keys); the subsystem is gone.
    assert!(fk.nvmet_tree().root().join("hosts").join(host).is_dir());
    assert!(!fk.nvmet_tree().root().join("subsystems").join(NQN).exists());
}

#[test]
fn export_rolls_back_at_every_step() {
    // mkdir, allow_any_host, serial, mkdir ns, path, uuid, nguid, enable,
    // mkdir port, trtype, adrfam, traddr, trsvcid, link: 14 steps.
    for step in 1..=14 {
        let fk = setup();
        let before = snapshot(fk.nvmet_tree().root());
        fk.nvmet_tree().fail_at(step, EIO);
        let r = fk.run(TCP_EXPORT);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err.starts_with("zvpoolctl: export volume tank/vm1: ")
                && r.err
                    .lines()
                    .next()
                    .unwrap()
                    .ends_with("Input/output error (EIO)"),
            "step {step}: {r:?}"
        );
        assert_eq!(
            r.err.contains("rolled back"),
            step > 1,
            "step {step}: {r:?}"
        );
        assert!(!r.err.contains("rollback failed"), "step {step}: {r:?}");
        assert_eq!(snapshot(fk.nvmet_tree().root()), before, "step {step}");
    }
    // One more step would have been none: the whole export has 14.
    let fk = setup();
    fk.nvmet_tree().fail_at(15, EIO);
    let r = fk.run(TCP_EXPORT);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn refusals_are_clear_and_change_nothing() {
    let fk = setup();
    let r = fk.run(&["volume", "export", "--nqn", NQN, "tank/vm1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = snapshot(fk.nvmet_tree().root());
    let r = fk.run(&["volume", "export", "--nqn", "nqn.x:again", "tank/vm1"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: export volume tank/vm1: already exported as {NQN} (namespace 1); \
             'zvpoolctl volume unexport tank/vm1' first"
        ),
    );
    let r = fk.run(&["volume", "export", "--nqn", NQN, "tank/vm2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains(&format!(
            "nvmet already has a subsystem {NQN} (exporting /dev/zvpool0)"
        )),
        "{r:?}"
    );
    let r = fk.run(&["volume", "export", "--nqn", "nqn.x:y", "tank/nosuch"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: export volume tank/nosuch: no such volume (see 'zvpoolctl volume list tank')",
    );
    let r = fk.run(&["volume", "unexport", "tank/vm2"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: unexport volume tank/vm2: the volume is not exported over NVMe-oF \
         (see 'zvpoolctl volume exports')",
    );
    let r = fk.run(&["volume", "unexport", "tank/nosuch"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("no such volume"), "{r:?}");
    // A disabled volume has no device to export.
    fs::write(fk.root().join("tank/vm2/enable"), "0\n").unwrap();
    let r = fk.run(&["volume", "export", "--nqn", "nqn.x:y", "tank/vm2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(snapshot(fk.nvmet_tree().root()), before);
}

#[test]
fn usage_errors_exit_2_before_anything_changes() {
    let fk = setup();
    let before = snapshot(fk.nvmet_tree().root());
    for (args, msg) in [
        (&["tank/vm1"][..], "--nqn NQN is required"),
        (&["--nqn", "iqn.x", "tank/vm1"], "invalid NQN \"iqn.x\""),
        (
            &["--nqn", NQN, "--addr", "1.2.3.4", "tank/vm1"],
            "--addr and --port are for --transport tcp",
        ),
        (
            &["--nqn", NQN, "--transport", "tcp", "tank/vm1"],
            "--transport tcp needs --addr",
        ),
        (
            &[
                "--nqn",
                NQN,
                "--transport",
                "tcp",
                "--addr",
                "1.2.3.4",
                "--port",
                "0",
                "tank/vm1",
            ],
            "invalid --port \"0\"",
        ),
        (
            &[
                "--nqn",
                NQN,
                "--transport",
                "tcp",
                "--addr",
                "a;b",
                "tank/vm1",
            ],
            "invalid --addr \"a;b\"",
        ),
        (
            &["--nqn", NQN, "--transport", "rdma", "tank/vm1"],
            "unknown transport \"rdma\"",
        ),
        (
            &["--nqn", NQN, "--host", "h1", "tank/vm1"],
            "--host: invalid NQN \"h1\"",
        ),
        (&["--nqn", NQN, "tank/vm1@s1"], "is a snapshot"),
    ] {
        let mut argv = vec!["volume", "export"];
        argv.extend_from_slice(args);
        let r = fk.run(&argv);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.contains(msg), "{args:?}: {r:?}");
    }
    assert_eq!(snapshot(fk.nvmet_tree().root()), before);
}

#[test]
fn without_nvmet_export_says_how_to_get_it() {
    let fk = setup_with_volumes();
    fk.set_pool_uuid("tank", "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab");
    let r = fk.run(&["volume", "export", "--nqn", NQN, "tank/vm1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: export volume tank/vm1: the NVMe-oF target is not available: \
         /sys/kernel/config/nvmet has no subsystems and ports (load it: modprobe nvmet, \
         and nvme-loop or nvmet-tcp; is configfs mounted?)",
    );
    let r = fk.run(&["volume", "exports"]);
    assert_eq!(r.code, 1, "{r:?}");
    // Resize and delete go on without nvmet.
    let r = fk.run(&["volume", "resize", "-s", "2G", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn unexport_stops_at_a_failure_and_a_second_run_finishes() {
    let fk = setup();
    let empty = snapshot(fk.nvmet_tree().root());
    assert_eq!(
        fk.run(&["volume", "export", "--nqn", NQN, "tank/vm1"]).code,
        0
    );
    fk.nvmet_tree().fail_at(3, EINVAL);
    let r = fk.run(&["volume", "unexport", "tank/vm1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.starts_with(&format!(
            "zvpoolctl: unexport volume tank/vm1: subsystems/{NQN}/namespaces/1/enable <- 0: \
             Invalid argument (EINVAL)\nzvpoolctl: the export {NQN} is partly removed; run \
             'zvpoolctl volume unexport tank/vm1' again"
        )),
        "{r:?}"
    );
    let r = fk.run(&["volume", "unexport", "tank/vm1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(snapshot(fk.nvmet_tree().root()), empty);
}

#[test]
fn resize_tells_initiators_and_delete_refuses_an_exported_volume() {
    let fk = setup();
    assert_eq!(
        fk.run(&["volume", "export", "--nqn", NQN, "tank/vm2"]).code,
        0
    );
    let r = fk.run(&["volume", "resize", "-s", "2G", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .ends_with(&format!("initiators of {NQN} were told the new size\n")),
        "{r:?}"
    );
    assert_eq!(
        attr(
            &fk,
            &format!("subsystems/{NQN}/namespaces/1/revalidate_size")
        ),
        "1"
    );
    // Another volume's resize tells nobody.
    let r = fk.run(&["volume", "resize", "-s", "21G", "tank/vm1"]);
    assert!(!r.out.contains("initiators"), "{r:?}");
    assert_eq!(
        attr(
            &fk,
            &format!("subsystems/{NQN}/namespaces/1/revalidate_size")
        ),
        "1"
    );

    let r = fk.run(&["volume", "delete", "tank/vm2"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: delete volume tank/vm2: the volume is exported over NVMe-oF as {NQN} \
             (nvmet holds its device open); 'zvpoolctl volume unexport tank/vm2' first"
        ),
    );
    assert!(fk.root().join("tank/vm2").is_dir());
    assert_eq!(fk.run(&["volume", "unexport", "tank/vm2"]).code, 0);
    let r = fk.run(&["volume", "delete", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
}
