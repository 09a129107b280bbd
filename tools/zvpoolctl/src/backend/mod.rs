// SPDX-License-Identifier: GPL-2.0
//! The backend layer: the operations zvpoolctl performs on the driver, named
//! by configfs object and attribute. `FsBackend` performs them on configfs; a
//! future backend may route some of them through a control device (ioctls)
//! where configfs is awkward, without changing the commands.

mod fs;

pub use fs::{write_once, FsBackend};

use crate::devio::{BlockFile, DeviceSet, FileDevices, OpenError, VolumeDev};
use std::fmt;
use std::io;

/// The default configfs directory of zvpool.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/zvpool";
/// Where the kernel shows block devices (`DISK/zvpool/ATTR`: a volume
/// disk's identity attributes, modules from issue 22 on).
pub const DEFAULT_SYS_BLOCK: &str = "/sys/block";
/// The control device (`volumes` listings of any length).
pub const DEFAULT_CONTROL: &str = "/dev/zvpool-control";

/// A configfs object: the zvpool root, a pool or a volume of a pool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Obj {
    Root,
    Pool(String),
    Volume(String, String),
}

impl Obj {
    pub fn pool(name: &str) -> Self {
        Obj::Pool(name.to_string())
    }

    pub fn volume(pool: &str, vol: &str) -> Self {
        Obj::Volume(pool.to_string(), vol.to_string())
    }

    /// Path components below the root.
    pub fn components(&self) -> Vec<&str> {
        match self {
            Obj::Root => vec![],
            Obj::Pool(p) => vec![p],
            Obj::Volume(p, v) => vec![p, v],
        }
    }
}

impl fmt::Display for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obj::Root => write!(f, "zvpool"),
            Obj::Pool(p) => write!(f, "{p}"),
            Obj::Volume(p, v) => write!(f, "{p}/{v}"),
        }
    }
}

/// What zvpoolctl needs from the driver. Errors carry the errno of the
/// failed system call (`io::Error::raw_os_error`).
pub trait Backend {
    /// Where the backend talks to, for messages (`/sys/kernel/config/zvpool`).
    fn location(&self) -> String;
    /// Whether the object exists (the root: whether the driver is reachable).
    fn exists(&self, obj: &Obj) -> bool;
    /// Names of the child objects (pools of the root, volumes of a pool), sorted.
    fn children(&self, obj: &Obj) -> io::Result<Vec<String>>;
    /// Creates the object (configfs `mkdir`).
    fn create(&self, obj: &Obj) -> io::Result<()>;
    /// Removes the object (configfs `rmdir`).
    fn remove(&self, obj: &Obj) -> io::Result<()>;
    /// Reads an attribute.
    fn read_attr(&self, obj: &Obj, attr: &str) -> io::Result<String>;
    /// Writes an attribute (one `write(2)`).
    fn write_attr(&self, obj: &Obj, attr: &str, value: &str) -> io::Result<()>;
    /// Runs a command of the control device (`volumes POOL`: the whole
    /// volume listing, which configfs cuts at one page) and returns its
    /// answer; `None` when there is no control device (an older module, or
    /// a configfs root of tests).
    fn control(&self, _cmd: &str) -> io::Result<Option<String>> {
        Ok(None)
    }
    /// The identity attribute `attr` (`pool`, `volume`, `uuid`, `kind`,
    /// `origin`, `pool_uuid`, `id`) of the volume disk `disk` (`zvpoolN`),
    /// from `/sys/block/DISK/zvpool/ATTR`; `NotFound` where there is none
    /// (older modules, other disks, test roots).
    fn disk_attr(&self, _disk: &str, _attr: &str) -> io::Result<String> {
        Err(io::ErrorKind::NotFound.into())
    }
    /// What the member device at `path` says about itself (sysfs, an NVMe
    /// controller's health log: `devhealth`); nothing where there is no
    /// sysfs to read (test roots).
    fn device_health(&self, _path: &str) -> crate::devhealth::DeviceHealth {
        crate::devhealth::DeviceHealth::default()
    }
    /// The kernel's uevents as they are sent, one per `read` (`pool
    /// events`); unsupported where there is no kernel to listen to (test
    /// roots).
    fn uevents(&self) -> io::Result<Box<dyn io::Read>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Opens member devices read-only for the offline checker (not through
    /// the driver: the devices themselves).
    fn open_devices(&self, paths: &[String]) -> Result<Box<dyn DeviceSet>, OpenError> {
        FileDevices::open(paths).map(|d| Box::new(d) as Box<dyn DeviceSet>)
    }
    /// nvmet's configfs tree (`/sys/kernel/config/nvmet`: `volume export`);
    /// `None` where there is none to use (test roots).
    fn nvmet(&self) -> Option<&dyn crate::nvmet::Tree> {
        None
    }
    /// Opens the block device `node` (`/dev/zvpoolN`, as the volume's `dev`
    /// names it) of a volume or snapshot, for writing if `write`.
    fn open_volume(&self, node: &str, write: bool) -> io::Result<Box<dyn VolumeDev + '_>> {
        BlockFile::open(node, write).map(|d| Box::new(d) as Box<dyn VolumeDev>)
    }
}
