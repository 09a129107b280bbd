// SPDX-License-Identifier: GPL-2.0
//! `pool import` (scan, list, import by name or UUID, -a, --cached), the
//! pool cache kept by create/assemble/import, and `volume ident`, on pools
//! made by zvcore (testutil::image) served by the fake kernel.

use super::assert_fails;
use crate::backend::{Backend, Obj};
use crate::testutil::fake::FakeKernel;
use crate::testutil::image::make_pool_image;
use crate::testutil::TempDir;
use crate::uuid;
use std::fs;

const TANK: [u8; 16] = [0x11; 16];
const DATA: [u8; 16] = [0x22; 16];
const SMALL: [u8; 16] = [0x33; 16];

fn u(b: [u8; 16]) -> String {
    uuid::format(&b)
}

/// A directory of device nodes: a, b (pool tank, members 0 and 1), c
/// (pool data, one member), d (member 0 of pool small, whose member 1 is
/// missing) and `foreign` (zeros); the fake kernel knows a, b, c as disks
/// with their pools (tank recorded in the cache at creation, data not)
/// and serves the images.
struct Machine {
    fk: FakeKernel,
    dir: TempDir,
    cache: String,
}

impl Machine {
    fn new() -> Self {
        Machine::on(FakeKernel::new())
    }

    fn on(fk: FakeKernel) -> Self {
        let dir = TempDir::new("import");
        let cache = dir.path().join("etc/zvpool.cache").display().to_string();
        let m = Machine { fk, dir, cache };
        let tank = make_pool_image(2, 3, TANK, 0x41);
        let data = make_pool_image(1, 1, DATA, 0x51);
        let small = make_pool_image(2, 1, SMALL, 0x61);
        let devdir = m.dir.path().join("dev");
        fs::create_dir(&devdir).unwrap();
        for (n, img) in [
            ("a", &tank.devs[0]),
            ("b", &tank.devs[1]),
            ("c", &data.devs[0]),
            ("d", &small.devs[0]),
        ] {
            fs::write(devdir.join(n), "").unwrap();
            m.fk.set_image(&m.dev(n), img.clone());
        }
        fs::write(devdir.join("foreign"), vec![0u8; 8192]).unwrap();
        for n in ["a", "b", "c"] {
            m.fk.add_disk(&m.dev(n), false);
        }
        let r = m.run(&["pool", "create", "tank", &m.dev("a"), &m.dev("b")]);
        assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
        for args in [
            vec!["volume", "create", "tank/vm1", "--size", "1G"],
            vec!["pool", "stop", "tank"],
            // data: created without a cache (on another machine, say).
            vec!["pool", "create", "data", &m.dev("c")],
            vec!["pool", "stop", "data"],
        ] {
            let r = m.fk.run(&args);
            assert_eq!(r.code, 0, "{args:?}: {r:?}");
        }
        m
    }

    fn dev(&self, n: &str) -> String {
        self.dir.path().join("dev").join(n).display().to_string()
    }

    fn devdir(&self) -> String {
        self.dir.path().join("dev").display().to_string()
    }

    /// zvpoolctl --cache CACHE ARGS... (import with -d DIR added).
    fn run(&self, args: &[&str]) -> crate::testutil::Run {
        let mut a = vec!["--cache", &self.cache];
        a.extend_from_slice(args);
        let d = self.devdir();
        if args.get(1) == Some(&"import") {
            a.extend_from_slice(&["-d", &d]);
        }
        self.fk.run(&a)
    }

    fn cache_text(&self) -> String {
        fs::read_to_string(&self.cache).unwrap_or_default()
    }
}

#[test]
fn create_records_the_pool_in_the_cache() {
    let m = Machine::new();
    let text = m.cache_text();
    assert!(text.contains("zvpool-cache 1\n"), "{text}");
    assert!(
        text.contains(&format!(
            "pool {} tank {},{}\n",
            u(TANK),
            u([0x41; 16]),
            u([0x42; 16])
        )),
        "{text}"
    );
    // data was created with no cache: not recorded.
    assert!(!text.contains(&u(DATA)), "{text}");
}

#[test]
fn list_shows_pools_states_and_members() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "-H"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let (pools, members) = r.out.split_once("\n\n").expect("two sections");
    assert_eq!(
        pools,
        format!(
            "{}\ttank\timportable\t2\t2\n{}\t-\timportable\t1\t1\n{}\t-\tmissing members\t1\t2",
            u(TANK),
            u(DATA),
            u(SMALL)
        )
    );
    assert_eq!(
        members,
        format!(
            "tank\t0\t{}\t{}\ntank\t1\t{}\t{}\n{}\t0\t{}\t{}\n{}\t0\t{}\t{}\n{}\t1\t{}\tmissing\n",
            u([0x41; 16]),
            m.dev("a"),
            u([0x42; 16]),
            m.dev("b"),
            u(DATA),
            u([0x51; 16]),
            m.dev("c"),
            u(SMALL),
            u([0x61; 16]),
            m.dev("d"),
            u(SMALL),
            u([0x62; 16]),
        )
    );
    assert!(!r.out.contains("foreign"));
    // JSON: the same in two arrays; nothing changed in the kernel.
    let before = m.fk.snapshot();
    let r = m.run(&["pool", "import", "-j"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.contains("\"state\": \"missing members\""),
        "{}",
        r.out
    );
    assert!(r.out.contains("\"device\": \"missing\""), "{}", r.out);
    assert_eq!(m.fk.snapshot(), before);
    // Once assembled, tank is active (found by its UUID in configfs).
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = m.run(&["pool", "import", "-H"]);
    assert!(
        r.out
            .starts_with(&format!("{}\ttank\tactive\t2\t2\n", u(TANK))),
        "{}",
        r.out
    );
}

#[test]
fn import_by_cached_name_assembles_in_member_order() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out.lines().next().unwrap(),
        format!(
            "importing pool {} as tank: {} {}",
            u(TANK),
            m.dev("a"),
            m.dev("b")
        )
    );
    assert!(
        r.out
            .contains("assembled pool tank: 2 members, 1 volume enabled\n"),
        "{}",
        r.out
    );
    let devices = m.fk.read_attr(&Obj::pool("tank"), "devices").unwrap();
    assert_eq!(devices, format!("0 {}\n1 {}\n", m.dev("a"), m.dev("b")));
    // Again: refused, it is active.
    let r = m.run(&["pool", "import", &u(TANK)]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: import pool tank ({}): the pool is already active as tank",
            u(TANK)
        ),
    );
}

#[test]
fn import_degraded_assembles_without_the_missing_member() {
    let m = Machine::new();
    // Member 1 of tank (device b) is gone.
    fs::remove_file(m.dir.path().join("dev/b")).unwrap();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("1 of 2 members found"), "{}", r.err);
    let r = m.run(&["pool", "import", "--degraded", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.contains("assembled pool tank degraded: 1 member"),
        "{}",
        r.out
    );
    let devices = m.fk.read_attr(&Obj::pool("tank"), "devices").unwrap();
    assert!(
        devices.contains(&m.dev("a")) && !devices.contains(&m.dev("b")),
        "only the device found: {devices}"
    );
}

#[test]
fn import_refuses_missing_members_and_names_them() {
    let m = Machine::new();
    let before = m.fk.snapshot();
    let r = m.run(&["pool", "import", &u(SMALL), "small"]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: import pool {}: 1 of 2 members found; missing: member 1 (device UUID {})",
            u(SMALL),
            u([0x62; 16])
        ),
    );
    assert!(
        r.err.contains(&format!(
            "hint: import it without the missing member (its blocks read as I/O errors until it \
             is back): zvpoolctl pool import --degraded {}",
            u(SMALL)
        )),
        "{}",
        r.err
    );
    assert_eq!(m.fk.snapshot(), before);
    let r = m.run(&["pool", "import", "nosuch"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: import pool nosuch: no such pool on the block devices (see 'zvpoolctl pool import')",
    );
}

#[test]
fn nameless_pool_needs_a_name_then_is_recorded() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", &u(DATA)]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: import pool {0}: no name recorded for it in the pool cache; give one: \
             zvpoolctl pool import {0} NAME",
            u(DATA)
        ),
    );
    // A name taken by another pool is refused too.
    assert_eq!(m.run(&["pool", "import", "tank"]).code, 0);
    let r = m.run(&["pool", "import", &u(DATA), "tank"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("a pool named tank is already defined"),
        "{r:?}"
    );
    let r = m.run(&["pool", "import", &u(DATA), "archive"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert!(m.fk.exists(&Obj::pool("archive")));
    assert!(
        m.cache_text()
            .contains(&format!("pool {} archive {}\n", u(DATA), u([0x51; 16]))),
        "{}",
        m.cache_text()
    );
}

#[test]
fn import_all_reports_each_and_fails_if_any_failed() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "-a"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(m.fk.exists(&Obj::pool("tank")));
    assert!(r.out.ends_with("imported 1 pool, 2 failed\n"), "{}", r.out);
    assert!(
        r.err.contains(&format!(
            "zvpoolctl: import pool {}: no name recorded",
            u(DATA)
        )),
        "{}",
        r.err
    );
    assert!(
        r.err.contains(&format!(
            "zvpoolctl: import pool {}: 1 of 2 members found",
            u(SMALL)
        )),
        "{}",
        r.err
    );
    // Run again: tank is skipped (active), not a failure.
    let r = m.run(&["pool", "import", "-a", "--cached"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        format!(
            "pool tank ({}): already active as tank, skipped\nimported 0 pools, 0 failed\n",
            u(TANK)
        )
    );
}

#[test]
fn import_cached_imports_only_the_cache_and_reports_absent_pools() {
    let m = Machine::new();
    // A cached pool none of whose members is present.
    let mut text = m.cache_text();
    text.push_str(&format!("pool {} gone -\n", u([0x77; 16])));
    fs::write(&m.cache, text).unwrap();
    let r = m.run(&["pool", "import", "-a", "-c"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(m.fk.exists(&Obj::pool("tank")));
    assert!(!m.fk.exists(&Obj::pool("data")));
    assert_eq!(
        r.err,
        format!(
            "zvpoolctl: import pool gone ({}): no member found on the block devices\n",
            u([0x77; 16])
        )
    );
    assert!(r.out.ends_with("imported 1 pool, 1 failed\n"), "{}", r.out);
}

#[test]
fn corrupt_cache_is_ignored_for_listing_and_refused_for_cached_import() {
    let m = Machine::new();
    fs::write(&m.cache, "zvpool-cache 9\n").unwrap();
    let r = m.run(&["pool", "import", "-H"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.err,
        format!(
            "zvpoolctl: warning: {}: corrupt cache file (line 1: expected a version line \
             'zvpool-cache 1' to 'zvpool-cache 4': \"zvpool-cache 9\"); ignored\n",
            m.cache
        )
    );
    assert!(
        r.out.starts_with(&format!("{}\t-\timportable", u(TANK))),
        "{}",
        r.out
    );
    let before = m.fk.snapshot();
    let r = m.run(&["pool", "import", "-a", "--cached"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.starts_with(&format!(
            "zvpoolctl: import cached pools: {}: corrupt cache file",
            m.cache
        )),
        "{}",
        r.err
    );
    assert_eq!(m.fk.snapshot(), before);
    // An assembly does not overwrite it; it warns.
    let r = m.run(&["pool", "assemble", "tank", &m.dev("b"), &m.dev("a")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.err
            .contains("warning: pool tank not recorded in the pool cache"),
        "{}",
        r.err
    );
    assert_eq!(m.cache_text(), "zvpool-cache 9\n");
}

#[test]
fn usage_errors() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "-a", "tank"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = m.run(&["pool", "import", &u(DATA), "bad/name"]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// The disk name (`zvpoolN`) of an enabled volume of the only pool.
fn disk(fk: &FakeKernel, vol: &str) -> String {
    let pool = fk.children(&Obj::Root).unwrap().remove(0);
    let dev = fk.read_attr(&Obj::volume(&pool, vol), "dev").unwrap();
    dev.split_whitespace().next().unwrap().to_string()
}

/// The id the kernel shows in a bound volume's `usage`.
fn volume_id(fk: &FakeKernel, vol: &str) -> String {
    let pool = fk.children(&Obj::Root).unwrap().remove(0);
    let usage = fk.read_attr(&Obj::volume(&pool, vol), "usage").unwrap();
    usage
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .unwrap()
        .to_string()
}

#[test]
fn ident_of_a_volume_and_a_snapshot() {
    ident_test(Machine::new());
}

/// The same output from the disks' sysfs identity attributes (modules
/// from issue 22 on; the fake computes `uuid` with zvcore::volid, as the
/// kernel does).
#[test]
fn ident_from_sysfs_attributes() {
    let m = Machine::new();
    m.fk.enable_sysfs_ident();
    assert_eq!(m.run(&["pool", "import", "tank"]).code, 0);
    let d = disk(&m.fk, "vm1");
    assert_eq!(m.fk.disk_attr(&d, "volume").unwrap(), "vm1");
    assert_eq!(m.fk.disk_attr(&d, "origin").unwrap(), "");
    let r = m.run(&["volume", "ident", &d]);
    let kernel_uuid = m.fk.disk_attr(&d, "uuid").unwrap();
    assert!(
        r.out.ends_with(&format!("ZVPOOL_UUID={kernel_uuid}\n")),
        "{}",
        r.out
    );
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    ident_test(m);
}

/// volume ident of a volume and a bound snapshot, before and after a stop
/// and an import under another name.
fn ident_test(m: Machine) {
    assert_eq!(m.run(&["pool", "import", "tank"]).code, 0);
    assert_eq!(m.run(&["snapshot", "create", "tank/vm1@gold"]).code, 0);
    let snap = Obj::volume("tank", "vm1@gold");
    m.fk.create(&snap).unwrap();
    m.fk.write_attr(&snap, "enable", "1").unwrap();
    let vm1_id = volume_id(&m.fk, "vm1");
    let vm1 = uuid::v5(
        &uuid::NAMESPACE,
        format!("{}/{vm1_id}/vm1", u(TANK)).as_bytes(),
    );
    let r = m.run(&["volume", "ident", &format!("/dev/{}", disk(&m.fk, "vm1"))]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        format!(
            "ZVPOOL_POOL=tank\nZVPOOL_VOLUME=vm1\nZVPOOL_KIND=volume\nZVPOOL_VOLUME_ID={vm1_id}\n\
             ZVPOOL_POOL_UUID={}\nZVPOOL_UUID={}\n",
            u(TANK),
            u(vm1)
        )
    );
    let r = m.run(&["volume", "ident", &disk(&m.fk, "vm1@gold")]);
    assert_eq!(r.code, 0, "{r:?}");
    let id = volume_id(&m.fk, "vm1@gold");
    assert_ne!(id, vm1_id);
    let snap_uuid = uuid::v5(
        &uuid::NAMESPACE,
        format!("{}/{id}/vm1@gold", u(TANK)).as_bytes(),
    );
    assert_eq!(
        r.out,
        format!(
            "ZVPOOL_POOL=tank\nZVPOOL_VOLUME=vm1@gold\nZVPOOL_KIND=snapshot\nZVPOOL_ORIGIN=vm1\n\
             ZVPOOL_VOLUME_ID={id}\nZVPOOL_POOL_UUID={}\nZVPOOL_UUID={}\n",
            u(TANK),
            u(snap_uuid)
        )
    );
    assert_ne!(snap_uuid, vm1);
    // The same UUID after a stop and an import under another pool name
    // (whichever disk number the volume gets).
    m.fk.remove(&snap).unwrap();
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    assert_eq!(m.run(&["pool", "import", &u(TANK), "tank2"]).code, 0);
    let r = m.run(&["volume", "ident", &disk(&m.fk, "vm1")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.starts_with("ZVPOOL_POOL=tank2\nZVPOOL_VOLUME=vm1\n"),
        "{}",
        r.out
    );
    assert!(
        r.out.ends_with(&format!("ZVPOOL_UUID={}\n", u(vm1))),
        "{}",
        r.out
    );
    // Not a volume's disk.
    let r = m.run(&["volume", "ident", "sda"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: identify sda: no zvpool volume has this disk (see 'zvpoolctl volume list')",
    );
}

#[test]
fn stop_all_stops_every_pool_and_reports_failures() {
    let m = Machine::new();
    assert_eq!(m.run(&["pool", "import", "tank"]).code, 0);
    assert_eq!(m.run(&["pool", "import", &u(DATA), "archive"]).code, 0);
    assert_eq!(
        m.run(&["volume", "create", "archive/v", "--size", "1G"])
            .code,
        0
    );
    m.fk.set_open("archive/v", true);
    let r = m.run(&["pool", "stop", "-a"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.out, "stopped pool tank\n");
    assert!(
        r.err
            .starts_with("zvpoolctl: stop pool archive: volume archive/v is in use"),
        "{}",
        r.err
    );
    assert!(!m.fk.exists(&Obj::pool("tank")) && m.fk.exists(&Obj::pool("archive")));
    m.fk.set_open("archive/v", false);
    let r = m.run(&["pool", "stop", "--all"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "stopped pool archive\n"),
        "{r:?}"
    );
    assert_eq!(m.fk.children(&Obj::Root).unwrap(), Vec::<String>::new());
    // The cache keeps both: they come back at boot.
    let r = m.run(&["pool", "import", "-a", "--cached"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.ends_with("imported 2 pools, 0 failed\n"), "{}", r.out);
    for args in [&["pool", "stop"][..], &["pool", "stop", "-a", "tank"]] {
        assert_eq!(m.run(args).code, 2, "{args:?}");
    }
}

#[test]
fn volume_limits_are_set_online_recorded_and_applied_at_import() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let vol = Obj::volume("tank", "vm1");
    let limits = |fk: &FakeKernel| {
        ["riops", "wiops", "rbps", "wbps"]
            .map(|a| fk.read_attr(&vol, a).unwrap().trim().to_string())
            .join(" ")
    };
    assert_eq!(limits(&m.fk), "0 0 0 0");
    // Usage errors change nothing.
    for (args, first) in [
        (
            vec!["volume", "set", "tank/vm1", "iops=5"],
            "zvpoolctl: unknown property \"iops\"; properties: riops, wiops, rbps, wbps, quota, reservation",
        ),
        (
            vec!["volume", "set", "tank/vm1", "riops=5", "wbps=1x"],
            "zvpoolctl: wbps: invalid size \"1x\"",
        ),
        (
            vec!["volume", "set", "tank/vm1", "riops=1.5"],
            "zvpoolctl: invalid riops \"1.5\"",
        ),
        (
            vec!["volume", "set", "tank/vm1", "riops=1", "riops=2"],
            "zvpoolctl: property riops given twice",
        ),
        (
            vec!["volume", "set", "tank/vm1", "riops"],
            "zvpoolctl: expected PROPERTY=VALUE",
        ),
    ] {
        let r = m.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.err.starts_with(first), "{args:?}: {}", r.err);
        assert_eq!(limits(&m.fk), "0 0 0 0");
    }
    let r = m.run(&["volume", "set", "tank/vm1", "riops=200", "wbps=1M"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(
        r.out,
        "set riops of volume tank/vm1: unlimited -> 200\nset wbps of volume tank/vm1: unlimited -> 1048576\n"
    );
    assert_eq!(limits(&m.fk), "200 0 0 1048576");
    let text = m.cache_text();
    assert!(text.contains("zvpool-cache 2\n"), "{text}");
    assert!(
        text.contains(&format!("limits {} vm1 riops=200 wbps=1048576\n", u(TANK))),
        "{text}"
    );
    let r = m.run(&["volume", "list", "-Hp", "-o", "name,riops,wiops,rbps,wbps"]);
    assert_eq!(r.out, "tank/vm1\t200\t0\t0\t1048576\n");
    let r = m.run(&["volume", "show", "-j", "-o", "riops,wbps", "tank/vm1"]);
    assert!(
        r.out.contains("\"riops\": 200,") && r.out.contains("\"wbps\": 1048576"),
        "{}",
        r.out
    );
    // Stopped (the directory and its limits go) and imported again: the
    // cache's limits are set before the volume is enabled.
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(limits(&m.fk), "200 0 0 1048576");
    // Unlimited again: the cache forgets the volume (version 1 again).
    let r = m.run(&["volume", "set", "tank/vm1", "riops=0", "wbps=max"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(limits(&m.fk), "0 0 0 0");
    let text = m.cache_text();
    assert!(
        text.contains("zvpool-cache 1\n") && !text.contains("limits "),
        "{text}"
    );
    // Deleting a volume forgets its limits.
    assert_eq!(m.run(&["volume", "set", "tank/vm1", "wiops=7"]).code, 0);
    assert!(m.cache_text().contains("vm1 wiops=7\n"));
    assert_eq!(m.run(&["volume", "delete", "tank/vm1"]).code, 0);
    assert!(!m.cache_text().contains("limits "), "{}", m.cache_text());
}

#[test]
fn volume_set_on_a_module_without_limits_is_refused() {
    let fk = super::setup_legacy_with_volumes();
    let r = fk.run(&["volume", "set", "tank/vm1", "riops=10"]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: set riops of volume tank/vm1: the loaded zvpool module has no riops attribute (no I/O limits); load a newer zvpool module",
    );
}

/// Quotas and reservations (issue 20) are pool metadata: set online, not
/// in the cache (only the I/O limit is), still there after a stop and an
/// import, gone with the volume.
#[test]
fn quota_and_reservation_are_metadata_not_cached() {
    let m = Machine::new();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    let vol = Obj::volume("tank", "vm1");
    let rules = |fk: &FakeKernel| {
        ["riops", "quota_bytes", "reservation_bytes"]
            .map(|a| fk.read_attr(&vol, a).unwrap().trim().to_string())
            .join(" ")
    };
    assert_eq!(rules(&m.fk), "0 0 0");
    let r = m.run(&[
        "volume",
        "set",
        "tank/vm1",
        "riops=5",
        "quota=512M",
        "reservation=256M",
    ]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(rules(&m.fk), "5 536870912 268435456");
    let text = m.cache_text();
    assert!(
        text.contains("\nzvpool-cache 2\n")
            && text.contains(&format!("\nlimits {} vm1 riops=5\n", u(TANK))),
        "{text}"
    );
    // Stopped and imported again: the limit from the cache, the rules from
    // the pool.
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert_eq!(rules(&m.fk), "5 536870912 268435456");
    let r = m.run(&[
        "volume",
        "list",
        "-Hp",
        "-o",
        "name,quota,reservation,state",
    ]);
    assert_eq!(r.out, "tank/vm1\t536870912\t268435456\tenabled\n");
    // Cleared: the cache is unchanged.
    let r = m.run(&["volume", "set", "tank/vm1", "quota=none", "reservation=0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(rules(&m.fk), "5 0 0");
    assert_eq!(m.cache_text(), text);
    // Deleting the volume forgets it.
    assert_eq!(m.run(&["volume", "set", "tank/vm1", "quota=1G"]).code, 0);
    assert_eq!(m.run(&["volume", "delete", "tank/vm1"]).code, 0);
    let text = m.cache_text();
    assert!(
        !text.contains("limits ") && text.contains("\nzvpool-cache 1\n"),
        "{text}"
    );
}

/// A cache an older zvpoolctl wrote (version 2, I/O limits only) is read
/// and applied; a version 3 cache (quotas and reservations kept there
/// before they were pool metadata) is read, and its rules are left to the
/// pool's metadata.
#[test]
fn older_caches_are_applied_and_refused_settings_are_warnings() {
    let m = Machine::new();
    let pool_line = m
        .cache_text()
        .lines()
        .find(|l| l.starts_with("pool "))
        .unwrap()
        .to_string();
    fs::write(
        &m.cache,
        format!(
            "zvpool-cache 2\n{pool_line}\nlimits {} vm1 wiops=9\n",
            u(TANK)
        ),
    )
    .unwrap();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let vol = Obj::volume("tank", "vm1");
    assert_eq!(m.fk.read_attr(&vol, "wiops").unwrap().trim(), "9");
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    fs::write(
        &m.cache,
        format!(
            "zvpool-cache 3\n{pool_line}\nlimits {} vm1 wiops=8 quota=1073741824 reservation=2147483648\n",
            u(TANK)
        ),
    )
    .unwrap();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    assert!(r.out.contains("1 volume enabled"), "{}", r.out);
    assert_eq!(m.fk.read_attr(&vol, "wiops").unwrap().trim(), "8");
    assert_eq!(m.fk.read_attr(&vol, "quota_bytes").unwrap().trim(), "0");
    assert_eq!(
        m.fk.read_attr(&vol, "reservation_bytes").unwrap().trim(),
        "0"
    );
}

/// `pool import` makes the NVMe-oF exports the cache records again (issue
/// 21), with the same NQN and identity; without nvmet it warns and imports.
#[test]
fn import_recreates_recorded_exports() {
    let nqn = "nqn.2026-12.io.zvpool:tank.vm1";
    let m = Machine::on(FakeKernel::new().with_nvmet());
    assert_eq!(m.run(&["pool", "import", "tank"]).code, 0);
    let disk = m.fk.read_attr(&Obj::volume("tank", "vm1"), "dev").unwrap();
    let disk = disk.split_whitespace().next().unwrap().to_string();
    let ident = m.run(&["volume", "ident", &disk]).out;
    let r = m.run(&["volume", "export", "--nqn", nqn, "tank/vm1"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let line = format!("export {} vm1 {nqn} transport=loop", u(TANK));
    let text = m.cache_text();
    assert!(
        text.contains("\nzvpool-cache 4\n") && text.contains(&line),
        "{text}"
    );
    // A reboot: the pool stopped, nvmet emptied.
    assert_eq!(m.run(&["pool", "stop", "tank"]).code, 0);
    m.fk.nvmet_tree().reboot();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{r:?}");
    let disk = m.fk.read_attr(&Obj::volume("tank", "vm1"), "dev").unwrap();
    let disk = disk.split_whitespace().next().unwrap().to_string();
    assert_eq!(m.run(&["volume", "ident", &disk]).out, ident);
    let id = ident
        .lines()
        .find_map(|l| l.strip_prefix("ZVPOOL_UUID="))
        .unwrap();
    assert!(
        r.out.ends_with(&format!(
            "exported volume tank/vm1 (/dev/{disk}) as {nqn} namespace 1 over loop \
             (nvmet port 1), uuid {id}\n"
        )),
        "{}",
        r.out
    );
    let ns =
        m.fk.nvmet_tree()
            .root()
            .join(format!("subsystems/{nqn}/namespaces/1"));
    let attr = |a: &str| fs::read_to_string(ns.join(a)).unwrap().trim().to_string();
    assert_eq!(attr("device_path"), format!("/dev/{disk}"));
    assert_eq!(attr("device_uuid"), id);
    assert_eq!(attr("enable"), "1");
    let r = m.run(&["volume", "exports", "-H", "-o", "name,nqn,transport"]);
    assert_eq!(r.out, format!("tank/vm1\t{nqn}\tloop\n"));

    // Without nvmet: one warning, the pool imported.
    let m = Machine::new();
    let text = m.cache_text().replace("zvpool-cache 1", "zvpool-cache 4");
    fs::write(&m.cache, format!("{text}{line}\n")).unwrap();
    let r = m.run(&["pool", "import", "tank"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("1 volume enabled"), "{}", r.out);
    assert_eq!(
        r.err,
        format!(
            "zvpoolctl: warning: re-export volume tank/vm1 as {nqn}: the NVMe-oF target is \
             not available: /sys/kernel/config/nvmet has no subsystems and ports (load it: \
             modprobe nvmet, and nvme-loop or nvmet-tcp; is configfs mounted?)\n"
        )
    );
}
