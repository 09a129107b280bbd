// SPDX-License-Identifier: GPL-2.0
//! `FakeNvmet`: nvmet's configfs tree emulated on a temporary directory, as
//! drivers/nvme/target/configfs.c behaves: mkdir of a subsystem, namespace
//! or port makes its attribute files and default groups; rmdir refuses a
//! group with children or links (ENOTEMPTY) and takes its attributes with
//! it; a namespace's identity cannot change while it is enabled (EBUSY),
//! enabling needs a device path, a port's address cannot change while a
//! subsystem is linked into it (EACCES), linking needs a transport type and
//! two TCP ports cannot listen on the same address (EADDRINUSE). Every
//! mutating operation is logged (`ops`) and failures can be injected at the
//! N-th one (`fail_at`).

use super::TempDir;
use crate::error::{EACCES, EBUSY, EEXIST, EINVAL, ENOENT, ENOTEMPTY};
use crate::nvmet::{Kind, StdTree, Tree};
use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const EPERM: i32 = 1;
const EADDRINUSE: i32 = 98;

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

pub struct FakeNvmet {
    _dir: TempDir,
    root: PathBuf,
    fs: StdTree,
    ops: RefCell<Vec<String>>,
    fail: RefCell<Option<(usize, i32)>>,
}

impl FakeNvmet {
    /// An empty nvmet tree (nvmet loaded, nothing configured).
    pub fn new() -> Self {
        let dir = TempDir::new("nvmet");
        let root = dir.path().join("nvmet");
        for d in ["subsystems", "ports", "hosts"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        FakeNvmet {
            fs: StdTree::new(&root),
            root,
            _dir: dir,
            ops: RefCell::new(Vec::new()),
            fail: RefCell::new(None),
        }
    }

    /// Empty again, as after a reboot (nvmet keeps nothing); the log of
    /// operations is kept.
    pub fn reboot(&self) {
        for d in ["subsystems", "ports", "hosts"] {
            let p = self.root.join(d);
            fs::remove_dir_all(&p).unwrap();
            fs::create_dir(&p).unwrap();
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mutating operations so far (`mkdir P`, `write P=V`, `link L`, ...).
    pub fn ops(&self) -> Vec<String> {
        self.ops.borrow().clone()
    }

    /// The `step`-th mutating operation from now on (1-based) fails with `errno`.
    pub fn fail_at(&self, step: usize, errno: i32) {
        *self.fail.borrow_mut() = Some((self.ops.borrow().len() + step, errno));
    }

    fn step(&self, op: String) -> io::Result<()> {
        let mut ops = self.ops.borrow_mut();
        ops.push(op);
        match *self.fail.borrow() {
            Some((n, errno)) if n == ops.len() => Err(err(errno)),
            _ => Ok(()),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn attr(&self, rel: &str) -> String {
        self.fs.read(rel).unwrap_or_default()
    }

    fn files(dir: &Path, attrs: &[(&str, &str)], groups: &[&str]) -> io::Result<()> {
        fs::create_dir(dir)?;
        for (a, v) in attrs {
            fs::write(dir.join(a), format!("{v}\n"))?;
        }
        for g in groups {
            fs::create_dir(dir.join(g))?;
        }
        Ok(())
    }

    fn has_children(dir: &Path, except: &[&str]) -> bool {
        fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let t = e.file_type().ok();
            let group = t.is_some_and(|t| t.is_dir() || t.is_symlink());
            group && !except.contains(&name.as_str())
        })
    }

    fn empty(dir: &Path) -> bool {
        fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
    }
}

impl Tree for FakeNvmet {
    fn location(&self) -> String {
        self.fs.location()
    }

    fn available(&self) -> bool {
        self.fs.available()
    }

    fn list(&self, rel: &str) -> io::Result<Vec<(String, Kind)>> {
        self.fs.list(rel)
    }

    fn read(&self, rel: &str) -> io::Result<String> {
        self.fs.read(rel)
    }

    fn device_disk(&self, device_path: &str) -> String {
        crate::nvmet::disk_of_path(Path::new(device_path))
    }

    fn mkdir(&self, rel: &str) -> io::Result<()> {
        self.step(format!("mkdir {rel}"))?;
        let p = self.p(rel);
        if p.exists() {
            return Err(err(EEXIST));
        }
        let parts: Vec<&str> = rel.split('/').collect();
        match parts[..] {
            ["subsystems", _] => Self::files(
                &p,
                &[
                    ("attr_allow_any_host", "0"),
                    ("attr_serial", "c0ffee0123456789"),
                    ("attr_model", "Linux"),
                ],
                &["namespaces", "allowed_hosts"],
            ),
            ["subsystems", s, "namespaces", _] if self.p(&format!("subsystems/{s}")).is_dir() => {
                Self::files(
                    &p,
                    &[
                        ("device_path", ""),
                        ("device_uuid", "00000000-0000-0000-0000-000000000000"),
                        ("device_nguid", "00000000-0000-0000-0000-000000000000"),
                        ("enable", "0"),
                        ("buffered_io", "0"),
                        ("revalidate_size", ""),
                    ],
                    &[],
                )
            }
            ["ports", id] => {
                if id.parse::<u16>().is_err() {
                    return Err(err(EINVAL));
                }
                Self::files(
                    &p,
                    &[
                        ("addr_trtype", ""),
                        ("addr_adrfam", ""),
                        ("addr_traddr", ""),
                        ("addr_trsvcid", ""),
                    ],
                    &["subsystems", "referrals", "ana_groups"],
                )
            }
            ["hosts", _] => Self::files(&p, &[], &[]),
            _ => Err(err(EPERM)),
        }
    }

    fn rmdir(&self, rel: &str) -> io::Result<()> {
        self.step(format!("rmdir {rel}"))?;
        let p = self.p(rel);
        if !p.is_dir() {
            return Err(err(ENOENT));
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let groups: &[&str] = match parts[..] {
            ["subsystems", _] => &["namespaces", "allowed_hosts"],
            ["ports", _] => &["subsystems", "referrals", "ana_groups"],
            ["subsystems", _, "namespaces", _] | ["hosts", _] => &[],
            _ => return Err(err(EPERM)),
        };
        if Self::has_children(&p, groups) || groups.iter().any(|g| !Self::empty(&p.join(g))) {
            return Err(err(ENOTEMPTY));
        }
        fs::remove_dir_all(&p)
    }

    fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        self.step(format!("write {rel}={value}"))?;
        let p = self.p(rel);
        if !p.is_file() {
            return Err(err(ENOENT));
        }
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parts: Vec<&str> = dir.split('/').collect();
        match parts[..] {
            ["subsystems", _, "namespaces", _] => {
                let enabled = self.attr(&format!("{dir}/enable")) == "1";
                match name {
                    "device_path" | "device_uuid" | "device_nguid" if enabled => {
                        return Err(err(EBUSY))
                    }
                    // "disable ns before setting buffered_io value."
                    "buffered_io" if enabled => return Err(err(EINVAL)),
                    "enable"
                        if value == "1" && self.attr(&format!("{dir}/device_path")).is_empty() =>
                    {
                        return Err(err(EINVAL))
                    }
                    "revalidate_size" if !enabled || value != "1" => return Err(err(EINVAL)),
                    "revalidate_size" => {
                        let n: u64 = self.attr(rel).parse().unwrap_or(0);
                        return fs::write(&p, format!("{}\n", n + 1));
                    }
                    _ => {}
                }
            }
            ["ports", id] if !Self::empty(&self.p(&format!("ports/{id}/subsystems"))) => {
                return Err(err(EACCES))
            }
            _ => {}
        }
        fs::write(&p, format!("{value}\n"))
    }

    fn symlink(&self, target: &str, link: &str) -> io::Result<()> {
        self.step(format!("link {link} -> {target}"))?;
        let l = self.p(link);
        if l.symlink_metadata().is_ok() {
            return Err(err(EEXIST));
        }
        if !self.p(target).is_dir() || !l.parent().is_some_and(Path::is_dir) {
            return Err(err(ENOENT));
        }
        let parts: Vec<&str> = link.split('/').collect();
        match parts[..] {
            ["ports", id, "subsystems", _] => {
                let port = format!("ports/{id}");
                let trtype = self.attr(&format!("{port}/addr_trtype"));
                if trtype.is_empty() {
                    return Err(err(EINVAL));
                }
                let addr = |p: &str| {
                    (
                        self.attr(&format!("{p}/addr_traddr")),
                        self.attr(&format!("{p}/addr_trsvcid")),
                    )
                };
                let busy = trtype == "tcp"
                    && Self::empty(&self.p(&format!("{port}/subsystems")))
                    && self.fs.list("ports")?.iter().any(|(other, _)| {
                        let o = format!("ports/{other}");
                        *other != id
                            && self.attr(&format!("{o}/addr_trtype")) == "tcp"
                            && addr(&o) == addr(&port)
                            && !Self::empty(&self.p(&format!("{o}/subsystems")))
                    });
                if busy {
                    return Err(err(EADDRINUSE));
                }
            }
            ["subsystems", _, "allowed_hosts", _] => {}
            _ => return Err(err(EPERM)),
        }
        std::os::unix::fs::symlink(self.p(target), &l)
    }

    fn unlink(&self, link: &str) -> io::Result<()> {
        self.step(format!("unlink {link}"))?;
        let l = self.p(link);
        if !l
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(err(ENOENT));
        }
        fs::remove_file(l)
    }
}
