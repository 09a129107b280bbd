// SPDX-License-Identifier: GPL-2.0
//! `volume import` and `volume export-image` against the fake kernel, whose
//! volume devices record what is written to them.

use super::{assert_fails, setup_with_volumes};
use crate::image::qcow2_writer::{Cl, Image};
use crate::testutil::TempDir;
use std::fs;
use std::os::unix::fs::FileExt;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn import_raw_writes_only_non_zero_data() {
    let fk = setup_with_volumes();
    let dir = TempDir::new("imp");
    let p = dir.path().join("disk.img");
    let f = fs::File::create(&p).unwrap();
    f.write_all_at(&pattern(8192, 1), 0).unwrap();
    f.write_all_at(&[0u8; 4096], 8192).unwrap(); // zero block, allocated
    f.write_all_at(&pattern(4096, 2), 3 << 20).unwrap();
    f.set_len((4 << 20) + 1000).unwrap(); // not a multiple of 4 KiB
    drop(f);
    let ps = p.to_str().unwrap();
    let r = fk.run(&["volume", "import", "tank/img", ps]);
    assert_eq!(r.code, 0, "{r:?}");
    let size = (4 << 20) + 4096;
    assert_eq!(
        r.out,
        format!(
            "imported {ps} (raw, 4.00M virtual (rounded up from {} bytes)) into volume tank/img: 12.0K written, /dev/zvpool2\n",
            (4 << 20) + 1000
        )
    );
    let mut want = fs::read(&p).unwrap();
    want.resize(size, 0);
    assert_eq!(fk.volume_data("tank", "img", size as u64), want);
    assert_eq!(
        fk.vol_data("tank", "img").writes,
        vec![(0, 8192), (3 << 20, 4096)]
    );
    // The volume's usage counts only that data.
    let show = fk.run(&["volume", "show", "-Hp", "-o", "size,used", "tank/img"]);
    assert_eq!(show.out, format!("size\t{size}\nused\t12288\n"));
}

#[test]
fn import_qcow2_v2_and_v3() {
    let cs = 1usize << 16;
    for v in [2u32, 3] {
        let fk = setup_with_volumes();
        let dir = TempDir::new("impq");
        let mut cl = vec![
            Cl::Data(pattern(cs, 3)),
            Cl::Unallocated,
            Cl::Data(vec![0; cs]),
        ];
        if v == 3 {
            cl.push(Cl::Zero);
            cl.push(Cl::ZeroAllocated(pattern(cs, 9)));
        }
        cl.push(Cl::Data(pattern(cs, 4)));
        let n = cl.len();
        let img = Image::new(v, 16, (n * cs) as u64, cl);
        let p = dir.path().join("vm.qcow2");
        fs::write(&p, img.build()).unwrap();
        let r = fk.run(&["volume", "import", "tank/q", p.to_str().unwrap()]);
        assert_eq!(r.code, 0, "v{v}: {r:?}");
        assert!(r.out.contains("(qcow2, "), "{}", r.out);
        let mut want = vec![0u8; n * cs];
        want[..cs].copy_from_slice(&pattern(cs, 3));
        want[(n - 1) * cs..].copy_from_slice(&pattern(cs, 4));
        assert_eq!(fk.volume_data("tank", "q", (n * cs) as u64), want, "v{v}");
        let written: u64 = fk.vol_data("tank", "q").writes.iter().map(|w| w.1).sum();
        assert_eq!(written, 2 * cs as u64, "v{v}: only the two data clusters");
    }
}

#[test]
fn import_refusals_create_nothing() {
    let fk = setup_with_volumes();
    let dir = TempDir::new("impr");
    let cs = 1usize << 16;
    let mut img = Image::new(
        3,
        16,
        4 * cs as u64,
        vec![Cl::Data(pattern(cs, 1)), Cl::Compressed],
    );
    let p = dir.path().join("c.qcow2");
    fs::write(&p, img.build()).unwrap();
    let ps = p.to_str().unwrap();
    let before = fk.snapshot();
    let r = fk.run(&["volume", "import", "tank/c", ps]);
    assert_fails(
        &r,
        1,
        &format!(
            "zvpoolctl: import {ps} into tank/c: compressed cluster (deflate) at guest offset 65536: \
             compressed images are not supported; convert it first: qemu-img convert -O qcow2 IMAGE PLAIN.qcow2"
        ),
    );
    assert_eq!(fk.snapshot(), before);
    img.clusters.pop();
    img.backing = Some("base.qcow2".into());
    fs::write(&p, img.build()).unwrap();
    let r = fk.run(&["volume", "import", "--format", "qcow2", "tank/c", ps]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("backing file (\"base.qcow2\")"), "{}", r.err);
    let r = fk.run(&["volume", "import", "--format", "vmdk", "tank/c", ps]);
    assert_eq!(r.code, 2);
    // An existing volume: refused by volume create's check.
    let raw = dir.path().join("r.img");
    fs::write(&raw, pattern(4096, 1)).unwrap();
    let r = fk.run(&["volume", "import", "tank/vm1", raw.to_str().unwrap()]);
    assert_fails(
        &r,
        1,
        "zvpoolctl: create volume tank/vm1: a volume of that name exists",
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn import_failure_deletes_the_new_volume() {
    let fk = setup_with_volumes();
    let dir = TempDir::new("impf");
    let p = dir.path().join("r.img");
    fs::write(&p, pattern(8192, 1)).unwrap();
    let before = fk.snapshot();
    fk.fail_device_writes(Some(crate::error::ENOSPC));
    let r = fk.run(&["volume", "import", "tank/new", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    let ps = p.to_str().unwrap();
    assert_eq!(
        r.err,
        format!(
            "zvpoolctl: import {ps} into tank/new: write 8192 bytes at volume offset 0: No space left on device (ENOSPC)\n\
             zvpoolctl: rolled back: disabled the new volume tank/new\n\
             zvpoolctl: rolled back: deleted the new volume tank/new\n"
        )
    );
    assert_eq!(fk.snapshot(), before);
}

#[test]
fn export_image_round_trip_is_sparse() {
    let fk = setup_with_volumes();
    let size = 2u64 << 30; // vm2 is 1.5G; use a new small volume
    let _ = size;
    let r = fk.run(&["volume", "create", "tank/e", "--size", "8M"]);
    assert_eq!(r.code, 0);
    fk.put_data("tank", "e", 4096, &pattern(8192, 5));
    fk.put_data("tank", "e", 6 << 20, &pattern(4096, 6));
    let dir = TempDir::new("exp");
    let out = dir.path().join("e.raw");
    let os = out.to_str().unwrap();
    let r = fk.run(&["volume", "export-image", "tank/e", os]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, format!("exported tank/e (/dev/zvpool2) to {os}: raw, 8.00M, 12.0K of data (the rest is holes)\n").as_str()),
        "{r:?}"
    );
    let data = fs::read(&out).unwrap();
    assert_eq!(data, fk.volume_data("tank", "e", 8 << 20));
    use std::os::unix::fs::MetadataExt;
    assert!(
        fs::metadata(&out).unwrap().blocks() * 512 < 1 << 20,
        "not sparse"
    );
    // Never overwritten.
    let r = fk.run(&["volume", "export-image", "tank/e", os]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("never overwritten"), "{}", r.err);
    // Import it back: equal content.
    let r = fk.run(&["volume", "import", "tank/back", os]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fk.volume_data("tank", "back", 8 << 20), data);
    // qcow2 output, read back by import.
    let q = dir.path().join("e.qcow2");
    let qs = q.to_str().unwrap();
    let r = fk.run(&["volume", "export-image", "--format", "qcow2", "tank/e", qs]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains(": qcow2, 8.00M, 128K of data"), "{}", r.out);
    let r = fk.run(&["volume", "import", "tank/backq", qs]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fk.volume_data("tank", "backq", 8 << 20), data);
    let r = fk.run(&[
        "volume",
        "export-image",
        "-f",
        "vmdk",
        "tank/e",
        "/nonexistent/x",
    ]);
    assert_eq!(r.code, 2);
}

#[test]
fn export_image_of_a_snapshot_binds_it_for_the_export_only() {
    let fk = setup_with_volumes();
    assert_eq!(
        fk.run(&["volume", "create", "tank/e", "--size", "1M"]).code,
        0
    );
    fk.put_data("tank", "e", 0, &pattern(4096, 1));
    assert_eq!(fk.run(&["snapshot", "create", "tank/e@s"]).code, 0);
    fk.put_data("tank", "e", 0, &pattern(4096, 2));
    let before = fk.snapshot();
    let dir = TempDir::new("exps");
    let out = dir.path().join("s.raw");
    let r = fk.run(&["volume", "export-image", "tank/e@s", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut want = pattern(4096, 1);
    want.resize(1 << 20, 0);
    assert_eq!(fs::read(&out).unwrap(), want);
    // Unbound again; apart from the minor counter, nothing changed.
    assert!(!fk.root().join("tank/e@s").exists());
    assert_eq!(fk.snapshot(), before);
}
