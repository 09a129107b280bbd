// SPDX-License-Identifier: GPL-2.0
//! Command tests: the commands against the fake kernel (`pool`, `volume`),
//! against `FsBackend` on a hand-made tree (`fs_backend`), and the whole
//! command line (`cli`).

mod assemble;
mod check;
mod cli;
mod completion;
mod export;
mod fs_backend;
mod image;
mod import;
mod manpages;
mod pool;
mod props;
mod quota;
mod scrub;
mod snapshot;
mod stream;
mod systemd_unit;
mod udev_rule;
mod volume;

use crate::testutil::fake::FakeKernel;
use crate::testutil::Run;

/// A fake kernel with these blank disks.
pub fn setup(disks: &[&str]) -> FakeKernel {
    let fk = FakeKernel::new();
    for d in disks {
        fk.add_disk(d, false);
    }
    fk
}

/// Pool `tank` on zns0 and zns1 with volumes vm1 (20G, 3G mapped) and vm2
/// (1.5G), both enabled (zvpool0, zvpool1).
pub fn setup_with_volumes() -> FakeKernel {
    with_volumes(FakeKernel::new())
}

/// `setup_with_volumes` on a kernel from before snapshots.
pub fn setup_legacy_with_volumes() -> FakeKernel {
    with_volumes(FakeKernel::legacy())
}

pub fn with_volumes(fk: FakeKernel) -> FakeKernel {
    for d in ["/dev/zns0", "/dev/zns1"] {
        fk.add_disk(d, false);
    }
    for args in [
        &["pool", "create", "tank", "/dev/zns0", "/dev/zns1"][..],
        &["volume", "create", "tank/vm1", "--size", "20G"],
        &["volume", "create", "tank/vm2", "-s", "1.5G"],
    ] {
        let r = fk.run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    }
    fk.set_mapped("tank", "vm1", 3 << 30);
    fk
}

/// The run failed with `code`, its first stderr line is `first`, and nothing
/// was printed on stdout.
pub fn assert_fails(r: &Run, code: i32, first: &str) {
    assert_eq!(r.code, code, "{r:?}");
    assert_eq!(r.err.lines().next(), Some(first), "{r:?}");
    assert_eq!(r.out, "", "{r:?}");
}
