// SPDX-License-Identifier: GPL-2.0
//! The export and unexport plans against an emulated nvmet tree
//! (testutil::nvmet): the operations, in order, and what the tree holds
//! after running them.

use super::plan::{self, ExportSpec, Op, Transport};
use super::{check_nqn, State, Tree};
use crate::testutil::nvmet::FakeNvmet;
use crate::testutil::snapshot;

fn spec(nqn: &str, disk: &str, transport: Transport) -> ExportSpec {
    ExportSpec {
        nqn: nqn.into(),
        device_path: format!("/dev/{disk}"),
        uuid: "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab".into(),
        nguid: "6f1c2d3eaaaa4bbb8ccc1234567890ab".into(),
        serial: "6f1c2d3eaaaa4bbb8ccc".into(),
        transport,
        host: None,
        read_only: false,
    }
}

fn tcp(addr: &str, svcid: &str) -> Transport {
    Transport::Tcp {
        addr: addr.into(),
        svcid: svcid.into(),
    }
}

fn run(t: &dyn Tree, ops: &[Op]) {
    for op in ops {
        op.run(t).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

fn export(t: &dyn Tree, s: &ExportSpec) {
    let st = State::read(t).unwrap();
    run(t, &plan::export(&st, s).unwrap());
}

fn shown(ops: &[Op]) -> Vec<String> {
    ops.iter().map(Op::to_string).collect()
}

#[test]
fn loop_export_on_an_empty_tree() {
    let t = FakeNvmet::new();
    let st = State::read(&t).unwrap();
    let ops = plan::export(
        &st,
        &spec("nqn.2026-12.io.zvpool:a", "zvpool0", Transport::Loop),
    );
    let sub = "subsystems/nqn.2026-12.io.zvpool:a";
    assert_eq!(
        shown(&ops.unwrap()),
        [
            format!("mkdir {sub}"),
            format!("{sub}/attr_allow_any_host <- 1"),
            format!("{sub}/attr_serial <- 6f1c2d3eaaaa4bbb8ccc"),
            format!("mkdir {sub}/namespaces/1"),
            format!("{sub}/namespaces/1/device_path <- /dev/zvpool0"),
            format!("{sub}/namespaces/1/device_uuid <- 6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab"),
            format!("{sub}/namespaces/1/device_nguid <- 6f1c2d3eaaaa4bbb8ccc1234567890ab"),
            format!("{sub}/namespaces/1/enable <- 1"),
            "mkdir ports/1".to_string(),
            "ports/1/addr_trtype <- loop".to_string(),
            format!("ln -s {sub} ports/1/subsystems/nqn.2026-12.io.zvpool:a"),
        ]
    );
}

#[test]
fn tcp_ports_are_shared_by_address_and_new_ones_take_the_lowest_free_id() {
    let t = FakeNvmet::new();
    export(&t, &spec("nqn.x:a", "zvpool0", tcp("127.0.0.1", "4420")));
    export(&t, &spec("nqn.x:b", "zvpool1", Transport::Loop));
    // Same address: port 1 again, nothing made.
    let st = State::read(&t).unwrap();
    let ops = plan::export(&st, &spec("nqn.x:c", "zvpool2", tcp("127.0.0.1", "4420"))).unwrap();
    assert!(
        !ops.iter().any(|o| o.to_string().starts_with("mkdir ports")),
        "{ops:?}"
    );
    assert_eq!(
        ops.last().unwrap().to_string(),
        "ln -s subsystems/nqn.x:c ports/1/subsystems/nqn.x:c"
    );
    // Another TCP port, IPv6: a new port, the lowest free id (1 is tcp, 2
    // loop, 3 was made by hand and removed again).
    run(
        &t,
        &[
            Op::Mkdir("ports/3".into()),
            Op::Mkdir("ports/4".into()),
            Op::Rmdir("ports/3".into()),
        ],
    );
    let st = State::read(&t).unwrap();
    let ops = plan::export(&st, &spec("nqn.x:d", "zvpool3", tcp("::1", "4421"))).unwrap();
    let tail: Vec<String> = shown(&ops).split_off(ops.len() - 6);
    assert_eq!(
        tail,
        [
            "mkdir ports/3",
            "ports/3/addr_trtype <- tcp",
            "ports/3/addr_adrfam <- ipv6",
            "ports/3/addr_traddr <- ::1",
            "ports/3/addr_trsvcid <- 4421",
            "ln -s subsystems/nqn.x:d ports/3/subsystems/nqn.x:d",
        ]
    );
}

#[test]
fn a_host_nqn_is_linked_and_made_only_when_missing() {
    let t = FakeNvmet::new();
    let mut s = spec("nqn.x:a", "zvpool0", Transport::Loop);
    s.host = Some("nqn.2014-08.org.nvmexpress:uuid:h1".into());
    let st = State::read(&t).unwrap();
    let ops = shown(&plan::export(&st, &s).unwrap());
    assert_eq!(ops[1], "mkdir hosts/nqn.2014-08.org.nvmexpress:uuid:h1");
    assert_eq!(
        ops[2],
        "ln -s hosts/nqn.2014-08.org.nvmexpress:uuid:h1 \
         subsystems/nqn.x:a/allowed_hosts/nqn.2014-08.org.nvmexpress:uuid:h1"
    );
    assert!(!ops.iter().any(|o| o.contains("attr_allow_any_host")));
    run(&t, &plan::export(&st, &s).unwrap());
    let st = State::read(&t).unwrap();
    let sub = st.subsystem("nqn.x:a").unwrap();
    assert_eq!((sub.allow_any_host, sub.hosts.len()), (false, 1));
    s.nqn = "nqn.x:b".into();
    let ops = shown(&plan::export(&st, &s).unwrap());
    assert!(ops[1].starts_with("ln -s hosts/"), "{ops:?}");
}

#[test]
fn an_existing_subsystem_is_refused() {
    let t = FakeNvmet::new();
    export(&t, &spec("nqn.x:a", "zvpool0", Transport::Loop));
    let st = State::read(&t).unwrap();
    let e = plan::export(&st, &spec("nqn.x:a", "zvpool1", Transport::Loop)).unwrap_err();
    assert!(
        e.contains("already has a subsystem nqn.x:a (exporting /dev/zvpool0)"),
        "{e}"
    );
}

#[test]
fn state_reads_back_what_an_export_made_and_unexport_restores_the_tree() {
    let t = FakeNvmet::new();
    let empty = snapshot(t.root());
    export(&t, &spec("nqn.x:a", "zvpool0", tcp("127.0.0.1", "4420")));
    let st = State::read(&t).unwrap();
    let ex = st.exports_of("zvpool0");
    assert_eq!(ex.len(), 1);
    let (s, n) = ex[0];
    assert_eq!((s.nqn.as_str(), s.allow_any_host), ("nqn.x:a", true));
    assert_eq!(
        (n.nsid.as_str(), n.device_path.as_str(), n.enabled),
        ("1", "/dev/zvpool0", true)
    );
    assert_eq!(n.uuid, "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab");
    let ports = st.ports_of("nqn.x:a");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].address(), "tcp 127.0.0.1:4420");
    assert!(st.exports_of("zvpool1").is_empty());
    let ops = plan::unexport(&st, "nqn.x:a", "1");
    assert_eq!(
        shown(&ops),
        [
            "rm ports/1/subsystems/nqn.x:a",
            "rmdir ports/1",
            "subsystems/nqn.x:a/namespaces/1/enable <- 0",
            "rmdir subsystems/nqn.x:a/namespaces/1",
            "rmdir subsystems/nqn.x:a",
        ]
    );
    run(&t, &ops);
    assert_eq!(snapshot(t.root()), empty);
}

#[test]
fn unexport_keeps_a_shared_port_hosts_and_other_namespaces() {
    let t = FakeNvmet::new();
    let mut a = spec("nqn.x:a", "zvpool0", tcp("127.0.0.1", "4420"));
    a.host = Some("nqn.x:host1".into());
    export(&t, &a);
    export(&t, &spec("nqn.x:b", "zvpool1", tcp("127.0.0.1", "4420")));
    let st = State::read(&t).unwrap();
    let ops = shown(&plan::unexport(&st, "nqn.x:a", "1"));
    assert_eq!(ops[0], "rm ports/1/subsystems/nqn.x:a");
    assert!(!ops.iter().any(|o| o == "rmdir ports/1"), "{ops:?}");
    assert!(ops.contains(&"rm subsystems/nqn.x:a/allowed_hosts/nqn.x:host1".to_string()));
    assert!(!ops.iter().any(|o| o.starts_with("rmdir hosts")), "{ops:?}");
    run(&t, &plan::unexport(&st, "nqn.x:a", "1"));
    let st = State::read(&t).unwrap();
    assert_eq!(st.hosts, ["nqn.x:host1"]);
    assert_eq!(st.ports_of("nqn.x:b").len(), 1);
    // A second namespace made by hand in b: unexporting namespace 1 leaves
    // the subsystem, its port link and namespace 2.
    run(
        &t,
        &[
            Op::Mkdir("subsystems/nqn.x:b/namespaces/2".into()),
            Op::Write {
                path: "subsystems/nqn.x:b/namespaces/2/device_path".into(),
                value: "/dev/other".into(),
                undo: None,
            },
        ],
    );
    let st = State::read(&t).unwrap();
    assert_eq!(
        shown(&plan::unexport(&st, "nqn.x:b", "1")),
        [
            "subsystems/nqn.x:b/namespaces/1/enable <- 0",
            "rmdir subsystems/nqn.x:b/namespaces/1",
        ]
    );
    assert!(plan::unexport(&st, "nqn.x:none", "1").is_empty());
}

#[test]
fn every_step_undoes_in_reverse_order() {
    let t = FakeNvmet::new();
    let empty = snapshot(t.root());
    let mut s = spec("nqn.x:a", "zvpool0", tcp("127.0.0.1", "4420"));
    s.host = Some("nqn.x:h".into());
    let ops = plan::export(&State::read(&t).unwrap(), &s).unwrap();
    for n in 0..=ops.len() {
        run(&t, &ops[..n]);
        let undo: Vec<Op> = ops[..n].iter().rev().filter_map(Op::inverse).collect();
        run(&t, &undo);
        assert_eq!(snapshot(t.root()), empty, "after {n} steps");
    }
}

#[test]
fn revalidate_only_enabled_namespaces_of_the_disk() {
    let t = FakeNvmet::new();
    export(&t, &spec("nqn.x:a", "zvpool0", Transport::Loop));
    export(&t, &spec("nqn.x:b", "zvpool1", Transport::Loop));
    let st = State::read(&t).unwrap();
    assert_eq!(
        shown(&plan::revalidate(&st, "zvpool0")),
        ["subsystems/nqn.x:a/namespaces/1/revalidate_size <- 1"]
    );
    run(
        &t,
        &[Op::Write {
            path: "subsystems/nqn.x:a/namespaces/1/enable".into(),
            value: "0".into(),
            undo: None,
        }],
    );
    assert!(plan::revalidate(&State::read(&t).unwrap(), "zvpool0").is_empty());
}

#[test]
fn nqn_rules() {
    for ok in [
        "nqn.2026-12.io.zvpool:tank.vm1",
        "nqn.2014-08.org.nvmexpress:uuid:6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab",
    ] {
        assert_eq!(check_nqn(ok), Ok(()), "{ok}");
    }
    let long = format!("nqn.{}", "x".repeat(220));
    for (bad, why) in [
        ("", "expected nqn."),
        ("nqn.", "expected nqn."),
        ("iqn.2026-12.x:y", "expected nqn."),
        ("nqn.a/b", "without '/'"),
        ("nqn.a b", "without '/' or spaces"),
        (long.as_str(), "longer than 223"),
        ("nqn.2014-08.org.nvmexpress.discovery", "discovery NQN"),
    ] {
        let e = check_nqn(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn transport_families() {
    assert_eq!(Transport::Loop.adrfam(), "");
    assert_eq!(tcp("10.0.0.1", "4420").adrfam(), "ipv4");
    assert_eq!(tcp("fd00::1", "4420").adrfam(), "ipv6");
}
