// SPDX-License-Identifier: GPL-2.0
//! `volume export | unexport | exports` (and what `resize` and `delete` do
//! with exports) against the fake kernel with an emulated nvmet tree.

use super::{assert_fails, setup_with_volumes, with_volumes};
use crate::error::{EINVAL, EIO};
use crate::testutil::fake::FakeKernel;
use crate::testutil::{snapshot, Run, TempDir};
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

/// `volume delete VOL` refused: VOL is exported as NQN.
fn refuses_delete(r: &Run, vol: &str) {
    assert_fails(
        r,
        1,
        &format!(
            "zvpoolctl: delete volume {vol}: the volume is exported over NVMe-oF as {NQN} \
             (nvmet holds its device open); 'zvpoolctl volume unexport {vol}' first"
        ),
    );
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
        // A snapshot is exported (read-only); a malformed name is not.
        (&["--nqn", NQN, "tank/vm1@"], "invalid snapshot name"),
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

    refuses_delete(&fk.run(&["volume", "delete", "tank/vm2"]), "tank/vm2");
    assert!(fk.root().join("tank/vm2").is_dir());
    assert_eq!(fk.run(&["volume", "unexport", "tank/vm2"]).code, 0);
    let r = fk.run(&["volume", "delete", "tank/vm2"]);
    assert_eq!(r.code, 0, "{r:?}");
}

const POOL_UUID: &str = "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427";

/// `setup` with a pool cache: every run gets `--cache FILE`.
struct Cached {
    fk: FakeKernel,
    _dir: TempDir,
    cache: String,
}

impl Cached {
    fn new() -> Self {
        let dir = TempDir::new("export-cache");
        let cache = dir.path().join("zvpool.cache").display().to_string();
        Cached {
            fk: setup(),
            _dir: dir,
            cache,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut a = vec!["--cache", &self.cache];
        a.extend_from_slice(args);
        self.fk.run(&a)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!((r.code, r.err.as_str()), (0, ""), "{args:?}: {r:?}");
        r
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.cache).unwrap_or_default()
    }

    /// The cache's `export` lines.
    fn exports(&self) -> Vec<String> {
        let text = self.text();
        text.lines()
            .filter(|l| l.starts_with("export "))
            .map(str::to_string)
            .collect()
    }

    /// nvmet emptied, as by a reboot.
    fn reboot(&self) {
        self.fk.nvmet_tree().reboot();
    }

    /// `pool assemble [OPTIONS] tank` (its volumes get new disks: zvpool2,
    /// zvpool3 after a stop).
    fn assemble(&self, options: &[&str]) -> Run {
        let mut a = vec!["pool", "assemble"];
        a.extend_from_slice(options);
        a.extend_from_slice(&["tank", "/dev/zns0", "/dev/zns1"]);
        self.run(&a)
    }
}

/// vm1 over TCP for one host, recorded in the cache.
fn export_vm1(m: &Cached) {
    let mut args = TCP_EXPORT.to_vec();
    args.splice(2..2, ["--host", HOST]);
    m.ok(&args);
}

#[test]
fn export_is_recorded_and_unexport_forgets_it() {
    let m = Cached::new();
    m.ok(&["pool", "list"]);
    assert_eq!(m.text(), "");
    export_vm1(&m);
    let line =
        format!("export {POOL_UUID} vm1 {NQN} transport=tcp addr=10.0.0.1 port=4421 host={HOST}\n");
    let text = m.text();
    assert!(
        text.contains("\nzvpool-cache 4\n") && text.ends_with(&line),
        "{text}"
    );
    // Not recorded: --no-persist.
    m.ok(&[
        "volume",
        "export",
        "--nqn",
        "nqn.x:vm2",
        "--no-persist",
        "tank/vm2",
    ]);
    assert_eq!(m.text(), text);
    let r = m.ok(&["volume", "exports", "-H", "-o", "name"]);
    assert_eq!(r.out, "tank/vm1\ntank/vm2\n");
    m.ok(&["volume", "unexport", "tank/vm1"]);
    let text = m.text();
    assert!(
        text.contains("\nzvpool-cache 1\n") && !text.contains("export "),
        "{text}"
    );
    m.ok(&["volume", "unexport", "tank/vm2"]);
    // Recorded, then gone from nvmet (a reboot with the pool active):
    // unexport forgets the record.
    export_vm1(&m);
    m.reboot();
    let r = m.ok(&["volume", "unexport", "tank/vm1"]);
    assert_eq!(
        r.out,
        format!("forgot the recorded export of volume tank/vm1 as {NQN} (it was not exported)\n")
    );
    assert!(!m.text().contains("export "), "{}", m.text());
    let r = m.run(&["volume", "unexport", "tank/vm1"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: unexport volume tank/vm1: the volume is not exported over NVMe-oF \
         (see 'zvpoolctl volume exports')",
    );
}

#[test]
fn delete_refuses_an_exported_volume_and_forgets_a_recorded_one() {
    let m = Cached::new();
    export_vm1(&m);
    let text = m.text();
    refuses_delete(&m.run(&["volume", "delete", "tank/vm1"]), "tank/vm1");
    assert_eq!(m.text(), text);
    // Exported no more (nvmet emptied) but recorded: deleted, forgotten.
    m.reboot();
    m.ok(&["volume", "delete", "tank/vm1"]);
    let text = m.text();
    assert!(
        text.contains("\nzvpool-cache 1\n") && !text.contains("export "),
        "{text}"
    );
}

/// Stopped, rebooted (nvmet empty) and assembled again: the recorded
/// exports are made again, the same ones: the tree differs only by the
/// volumes' new disks.
#[test]
fn assembly_recreates_the_recorded_exports() {
    let m = Cached::new();
    export_vm1(&m);
    m.ok(&["volume", "export", "--nqn", "nqn.x:vm2", "tank/vm2"]);
    let exported = snapshot(m.fk.nvmet_tree().root());
    let uuid = uuid_of(&m.fk, "zvpool0");
    let recorded = m.exports();
    assert_eq!(recorded.len(), 2);
    m.ok(&["pool", "stop", "tank"]);
    m.reboot();
    let r = m.assemble(&[]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert!(
        r.out.ends_with(&format!(
            "exported volume tank/vm1 (/dev/zvpool2) as {NQN} namespace 1 over tcp \
             10.0.0.1:4421 (nvmet port 1), uuid {uuid}\n\
             exported volume tank/vm2 (/dev/zvpool3) as nqn.x:vm2 namespace 1 over loop \
             (nvmet port 2), uuid {}\n",
            uuid_of(&m.fk, "zvpool3")
        )),
        "{}",
        r.out
    );
    let mut again = snapshot(m.fk.nvmet_tree().root());
    for v in again.values_mut().flatten() {
        *v = v.replace("/dev/zvpool2", "/dev/zvpool0");
        *v = v.replace("/dev/zvpool3", "/dev/zvpool1");
    }
    assert_eq!(again, exported);
    assert_eq!(m.exports(), recorded);
    let r = m.ok(&["volume", "exports", "-H", "-o", "name,nqn,hosts"]);
    assert_eq!(
        r.out,
        format!("tank/vm1\t{NQN}\t{HOST}\ntank/vm2\tnqn.x:vm2\tany\n")
    );
    // --no-volumes: nothing bound, nothing exported.
    m.ok(&["pool", "stop", "tank"]);
    m.reboot();
    let ops = m.fk.nvmet_tree().ops();
    let r = m.assemble(&["--no-volumes"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(m.fk.nvmet_tree().ops(), ops);
    assert!(!r.out.contains("exported"), "{}", r.out);
}

/// An export nvmet still has, identical, is kept: not made twice.
#[test]
fn an_export_in_place_is_kept_at_assembly() {
    let m = Cached::new();
    m.ok(&["volume", "export", "--nqn", NQN, "tank/vm1"]);
    m.ok(&["pool", "stop", "tank"]);
    // nvmet kept it (no reboot), on the disk vm1 is about to get.
    fs::write(
        m.fk.nvmet_tree()
            .root()
            .join(format!("subsystems/{NQN}/namespaces/1/device_path")),
        "/dev/zvpool2\n",
    )
    .unwrap();
    let ops = m.fk.nvmet_tree().ops();
    let r = m.assemble(&[]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert!(
        r.out.ends_with(&format!(
            "volume tank/vm1 is already exported as {NQN}: kept\n"
        )),
        "{}",
        r.out
    );
    assert_eq!(m.fk.nvmet_tree().ops(), ops);
    let r = m.ok(&["volume", "exports", "-H", "-o", "name,device"]);
    assert_eq!(r.out, "tank/vm1\t/dev/zvpool2\n");
}

/// A recorded export that cannot be made is one warning line naming the
/// volume and why; the assembly succeeds.
#[test]
fn a_recorded_export_that_cannot_be_made_is_a_warning() {
    let m = Cached::new();
    m.ok(&["volume", "export", "--nqn", NQN, "tank/vm1"]);
    // A volume that is gone (deleted by an older zvpoolctl, say).
    let mut text = m.text();
    text.push_str(&format!(
        "export {POOL_UUID} vm9 nqn.x:vm9 transport=loop\n"
    ));
    fs::write(&m.cache, &text).unwrap();
    let recorded = m.exports();
    // nvmet kept vm1's export on its old disk: the NQN is taken.
    m.ok(&["pool", "stop", "tank"]);
    let r = m.assemble(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("2 volumes enabled"), "{}", r.out);
    assert_eq!(
        r.err,
        format!(
            "zvpoolctl: warning: re-export volume tank/vm1 as {NQN}: nvmet already has a \
             subsystem {NQN} (exporting /dev/zvpool0) (choose another NQN, or 'zvpoolctl \
             volume unexport' what it exports)\n\
             zvpoolctl: warning: re-export volume tank/vm9 as nqn.x:vm9: no such volume \
             (see 'zvpoolctl volume list tank')\n"
        )
    );
    assert_eq!(m.exports(), recorded);
    // The record of the volume that is gone is forgotten by unexport.
    let r = m.ok(&["volume", "unexport", "tank/vm9"]);
    assert_eq!(
        r.out,
        "forgot the recorded export of volume tank/vm9 as nqn.x:vm9 (it was not exported)\n"
    );
    assert!(!m.text().contains(" vm9 "), "{}", m.text());
}

const SNAP_NQN: &str = "nqn.2026-12.io.zvpool:tank.vm1.gold";

/// `setup` with snapshot tank/vm1@gold (not bound).
fn with_snapshot(fk: &FakeKernel) {
    let r = fk.run(&["snapshot", "create", "tank/vm1@gold"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!fk.root().join("tank/vm1@gold").exists());
}

/// A snapshot is exported read-only: bound and enabled for the export,
/// its own identity, nvmet's file backend (buffered_io before enable);
/// delete refused while exported; unexport releases it and leaves nvmet's
/// tree as it was.
#[test]
fn a_snapshot_is_exported_read_only_and_released_by_unexport() {
    let fk = setup();
    with_snapshot(&fk);
    let empty = snapshot(fk.nvmet_tree().root());
    let r = fk.run(&["volume", "export", "--nqn", SNAP_NQN, "tank/vm1@gold"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let o = fk.root().join("tank/vm1@gold");
    assert_eq!(fs::read_to_string(o.join("enable")).unwrap().trim(), "1");
    let disk = fk
        .run(&["volume", "show", "-H", "-o", "device", "tank/vm1@gold"])
        .out
        .trim_end()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let uuid = uuid_of(&fk, &disk);
    assert_ne!(uuid, uuid_of(&fk, "zvpool0"));
    assert_eq!(
        r.out,
        format!(
            "exported read-only snapshot tank/vm1@gold (/dev/{disk}) as {SNAP_NQN} namespace 1 \
             over loop (nvmet port 1), uuid {uuid}\n"
        )
    );
    let ns = format!("subsystems/{SNAP_NQN}/namespaces/1");
    let ops = fk.nvmet_tree().ops();
    let at = |op: String| ops.iter().position(|o| *o == op).unwrap_or(usize::MAX);
    assert!(
        at(format!("write {ns}/buffered_io=1")) < at(format!("write {ns}/enable=1"))
            && at(format!("write {ns}/enable=1")) < ops.len(),
        "{ops:?}"
    );
    assert_eq!(
        attr(&fk, &format!("{ns}/device_path")),
        format!("/dev/{disk}")
    );
    assert_eq!(attr(&fk, &format!("{ns}/device_uuid")), uuid);
    let r = fk.run(&["volume", "exports", "-H", "-o", "name,nqn"]);
    assert_eq!(r.out, format!("tank/vm1@gold\t{SNAP_NQN}\n"));
    let r = fk.run(&["volume", "exports", "-H", "-o", "name", "tank/vm1@gold"]);
    assert_eq!((r.code, r.out.as_str()), (0, "tank/vm1@gold\n"), "{r:?}");
    // A second export, and delete, refused while it is exported.
    let r = fk.run(&["volume", "export", "--nqn", "nqn.x:again", "tank/vm1@gold"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: export snapshot tank/vm1@gold: already exported as {SNAP_NQN} \
             (namespace 1); 'zvpoolctl volume unexport tank/vm1@gold' first"
        ),
    );
    assert!(o.exists());
    let r = fk.run(&["snapshot", "delete", "tank/vm1@gold"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: delete snapshot tank/vm1@gold: the snapshot is exported over NVMe-oF \
             as {SNAP_NQN} (nvmet holds its device open); 'zvpoolctl volume unexport \
             tank/vm1@gold' first"
        ),
    );
    let r = fk.run(&["volume", "unexport", "tank/vm1@gold"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            format!("unexported snapshot tank/vm1@gold (/dev/{disk}): {SNAP_NQN} namespace 1\n")
                .as_str(),
            ""
        )
    );
    assert!(!o.exists());
    assert_eq!(snapshot(fk.nvmet_tree().root()), empty);
    let r = fk.run(&["volume", "unexport", "tank/vm1@gold"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: unexport snapshot tank/vm1@gold: the snapshot has no block device \
         (it is not bound and enabled: not exported)",
    );
    let r = fk.run(&["volume", "export", "--nqn", "nqn.x:none", "tank/vm1@none"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: export snapshot tank/vm1@none: no such snapshot \
         (see 'zvpoolctl snapshot list tank')",
    );
    assert!(!fk.root().join("tank/vm1@none").exists());
}

/// A failed export of a snapshot rolls nvmet back and releases the
/// snapshot (bound for the export only).
#[test]
fn a_failed_snapshot_export_releases_the_snapshot() {
    // mkdir, allow_any_host, serial, mkdir ns, path, uuid, nguid,
    // buffered_io, enable, mkdir port, trtype, link: 12 steps.
    for step in [1, 8, 9, 12] {
        let fk = setup();
        with_snapshot(&fk);
        let before = snapshot(fk.nvmet_tree().root());
        fk.nvmet_tree().fail_at(step, EIO);
        let r = fk.run(&["volume", "export", "--nqn", SNAP_NQN, "tank/vm1@gold"]);
        assert_eq!(r.code, 1, "step {step}: {r:?}");
        assert!(
            r.err
                .starts_with("zvpoolctl: export snapshot tank/vm1@gold: "),
            "step {step}: {r:?}"
        );
        assert_eq!(snapshot(fk.nvmet_tree().root()), before, "step {step}");
        assert!(!fk.root().join("tank/vm1@gold").exists(), "step {step}");
    }
}

/// A recorded snapshot export is made again at assembly (the snapshot
/// bound and enabled for it).
#[test]
fn assembly_recreates_a_recorded_snapshot_export() {
    let m = Cached::new();
    with_snapshot(&m.fk);
    m.ok(&["volume", "export", "--nqn", SNAP_NQN, "tank/vm1@gold"]);
    assert_eq!(
        m.exports(),
        [format!(
            "export {POOL_UUID} vm1@gold {SNAP_NQN} transport=loop"
        )]
    );
    m.ok(&["pool", "stop", "tank"]);
    m.reboot();
    let r = m.assemble(&[]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert!(
        r.out
            .contains("exported read-only snapshot tank/vm1@gold (/dev/")
            && r.out
                .contains(&format!("as {SNAP_NQN} namespace 1 over loop")),
        "{}",
        r.out
    );
    let r = m.ok(&["volume", "exports", "-H", "-o", "name,nqn"]);
    assert_eq!(r.out, format!("tank/vm1@gold\t{SNAP_NQN}\n"));
    m.ok(&["volume", "unexport", "tank/vm1@gold"]);
    assert!(m.exports().is_empty());
    assert!(!m.fk.root().join("tank/vm1@gold").exists());
}
