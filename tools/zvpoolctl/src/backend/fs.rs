// SPDX-License-Identifier: GPL-2.0
//! `FsBackend`: the configfs backend (std::fs on `/sys/kernel/config/zvpool`).

use super::{Backend, Obj};
use crate::nvmet::{StdTree, Tree};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub struct FsBackend {
    root: PathBuf,
    /// The control device, if used.
    control: Option<PathBuf>,
    /// `/sys/block`, if used (volume disks' identity attributes).
    sys_block: Option<PathBuf>,
    /// nvmet's configfs tree, if used.
    nvmet: Option<StdTree>,
}

impl FsBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBackend {
            root: root.into(),
            control: None,
            sys_block: None,
            nvmet: None,
        }
    }

    /// Reads volume disks' identity attributes under `path` (`/sys/block`).
    pub fn with_sys_block(mut self, path: impl Into<PathBuf>) -> Self {
        self.sys_block = Some(path.into());
        self
    }

    /// Exports volumes through nvmet's configfs tree at `path`
    /// (`/sys/kernel/config/nvmet`).
    pub fn with_nvmet(mut self, path: impl Into<PathBuf>) -> Self {
        self.nvmet = Some(StdTree::new(path));
        self
    }

    /// Uses the control device at `path` (`/dev/zvpool-control`).
    pub fn with_control(mut self, path: impl Into<PathBuf>) -> Self {
        self.control = Some(path.into());
        self
    }

    fn path(&self, obj: &Obj) -> PathBuf {
        let mut p = self.root.clone();
        for c in obj.components() {
            p.push(c);
        }
        p
    }
}

impl Backend for FsBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn nvmet(&self) -> Option<&dyn Tree> {
        self.nvmet.as_ref().map(|t| t as &dyn Tree)
    }

    fn uevents(&self) -> io::Result<Box<dyn io::Read>> {
        // Only with the kernel's sysfs (not a test root).
        if self.sys_block.is_none() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        Ok(Box::new(crate::sys::uevent_socket()?))
    }

    fn device_health(&self, path: &str) -> crate::devhealth::DeviceHealth {
        match &self.sys_block {
            Some(dir) => crate::devhealth::read(dir, std::path::Path::new("/dev"), path),
            None => crate::devhealth::DeviceHealth::default(),
        }
    }

    fn disk_attr(&self, disk: &str, attr: &str) -> io::Result<String> {
        let Some(dir) = &self.sys_block else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let mut s = fs::read_to_string(dir.join(disk).join("zvpool").join(attr))?;
        if s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    fn exists(&self, obj: &Obj) -> bool {
        self.path(obj).is_dir()
    }

    fn children(&self, obj: &Obj) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.path(obj))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&self, obj: &Obj) -> io::Result<()> {
        fs::create_dir(self.path(obj))
    }

    fn remove(&self, obj: &Obj) -> io::Result<()> {
        fs::remove_dir(self.path(obj))
    }

    fn read_attr(&self, obj: &Obj, attr: &str) -> io::Result<String> {
        let bytes = fs::read(self.path(obj).join(attr))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One `write(2)` of the command, then the answer read to its end. A
    /// missing device is `None` (an older module).
    fn control(&self, cmd: &str) -> io::Result<Option<String>> {
        let Some(path) = &self.control else {
            return Ok(None);
        };
        let mut f = match fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = f.write(cmd.as_bytes())?;
        if n != cmd.len() {
            return Err(io::Error::other(format!(
                "short write ({n} of {} bytes)",
                cmd.len()
            )));
        }
        let mut answer = Vec::new();
        f.read_to_end(&mut answer)?;
        Ok(Some(String::from_utf8_lossy(&answer).into_owned()))
    }

    /// configfs passes each `write(2)` to the attribute's store method as a
    /// whole, so the value goes out in exactly one call, without a newline.
    fn write_attr(&self, obj: &Obj, attr: &str, value: &str) -> io::Result<()> {
        write_once(&self.path(obj).join(attr), value)
    }
}

/// Writes `value` to the configfs attribute `path` in one `write(2)`
/// (configfs hands each write to the attribute's store method whole).
pub fn write_once(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    let n = f.write(value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::other(format!(
            "short write ({n} of {} bytes)",
            value.len()
        )));
    }
    Ok(())
}
