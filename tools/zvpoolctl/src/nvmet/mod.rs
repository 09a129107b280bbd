// SPDX-License-Identifier: GPL-2.0
//! The kernel's NVMe-oF target (nvmet) as zvpoolctl drives it through its
//! configfs tree (`/sys/kernel/config/nvmet`, the kernel's
//! drivers/nvme/target/configfs.c): [`Tree`] (the file operations, on
//! configfs or on a test tree), [`State`] (what is exported: subsystems,
//! their namespaces and allowed hosts, ports and the subsystems linked into
//! them) and [`plan`] (the operations an export or unexport takes, as a
//! list that can be checked without a kernel and undone in reverse order).
//!
//! The layout zvpoolctl makes, one subsystem per exported volume:
//!
//! ```text
//! subsystems/NQN/attr_allow_any_host      1 (or allowed_hosts/HOST -> hosts/HOST)
//! subsystems/NQN/attr_serial              the volume's serial
//! subsystems/NQN/namespaces/1/device_path /dev/zvpoolN
//! subsystems/NQN/namespaces/1/device_uuid the volume's UUID
//! subsystems/NQN/namespaces/1/device_nguid the NGUID (uuid::nguid)
//! subsystems/NQN/namespaces/1/enable      1
//! ports/ID/addr_{trtype,adrfam,traddr,trsvcid}
//! ports/ID/subsystems/NQN -> subsystems/NQN
//! ```

pub mod plan;
#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// nvmet's configfs directory.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/nvmet";

/// What a directory entry of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
    Link,
}

/// File operations on nvmet's configfs tree; paths are relative to its
/// root (`subsystems/NQN/namespaces/1/enable`). Errors carry the errno.
pub trait Tree {
    /// The root, for messages.
    fn location(&self) -> String;
    /// Whether the tree is there (nvmet loaded, configfs mounted).
    fn available(&self) -> bool;
    /// The entries of a directory, sorted by name.
    fn list(&self, rel: &str) -> io::Result<Vec<(String, Kind)>>;
    /// An attribute, without its trailing newline.
    fn read(&self, rel: &str) -> io::Result<String>;
    /// One `write(2)` of `value` to an attribute.
    fn write(&self, rel: &str, value: &str) -> io::Result<()>;
    fn mkdir(&self, rel: &str) -> io::Result<()>;
    fn rmdir(&self, rel: &str) -> io::Result<()>;
    /// A symbolic link at `link` to the directory `target`.
    fn symlink(&self, target: &str, link: &str) -> io::Result<()>;
    fn unlink(&self, link: &str) -> io::Result<()>;
    /// The disk (`zvpool3`) a namespace's `device_path` names, following
    /// symbolic links (`/dev/zvpool/tank/vm` -> `zvpool3`).
    fn device_disk(&self, device_path: &str) -> String;
}

/// The disk name of a device path: its last component.
pub fn disk_of_path(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// [`Tree`] on a directory with `std::fs` (nvmet's configfs).
pub struct StdTree {
    root: PathBuf,
}

impl StdTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StdTree { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Tree for StdTree {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn available(&self) -> bool {
        self.root.join("subsystems").is_dir() && self.root.join("ports").is_dir()
    }

    fn list(&self, rel: &str) -> io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.path(rel))? {
            let e = e?;
            let t = e.file_type()?;
            let kind = if t.is_symlink() {
                Kind::Link
            } else if t.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            };
            out.push((e.file_name().to_string_lossy().into_owned(), kind));
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, rel: &str) -> io::Result<String> {
        let b = fs::read(self.path(rel))?;
        let s = String::from_utf8_lossy(&b);
        Ok(s.trim_end_matches('\n').to_string())
    }

    fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        crate::backend::write_once(&self.path(rel), value)
    }

    fn mkdir(&self, rel: &str) -> io::Result<()> {
        fs::create_dir(self.path(rel))
    }

    fn rmdir(&self, rel: &str) -> io::Result<()> {
        fs::remove_dir(self.path(rel))
    }

    fn symlink(&self, target: &str, link: &str) -> io::Result<()> {
        std::os::unix::fs::symlink(self.path(target), self.path(link))
    }

    fn unlink(&self, link: &str) -> io::Result<()> {
        fs::remove_file(self.path(link))
    }

    fn device_disk(&self, device_path: &str) -> String {
        let p = Path::new(device_path);
        disk_of_path(&fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
    }
}

/// A namespace of a subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub nsid: String,
    pub device_path: String,
    /// The disk `device_path` names (`zvpool3`).
    pub disk: String,
    pub enabled: bool,
    pub uuid: String,
    pub nguid: String,
}

/// A subsystem (`subsystems/NQN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    pub nqn: String,
    pub allow_any_host: bool,
    /// Host NQNs linked into `allowed_hosts`.
    pub hosts: Vec<String>,
    pub namespaces: Vec<Namespace>,
}

/// A port (`ports/ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub id: String,
    pub trtype: String,
    pub adrfam: String,
    pub traddr: String,
    pub trsvcid: String,
    /// NQNs linked into the port's `subsystems`.
    pub subsystems: Vec<String>,
    /// Entries of the port's `referrals`.
    pub referrals: usize,
}

impl Port {
    /// `loop`, `tcp 127.0.0.1:4420`, ...
    pub fn address(&self) -> String {
        if self.traddr.is_empty() {
            self.trtype.clone()
        } else if self.adrfam == "ipv6" {
            format!("{} [{}]:{}", self.trtype, self.traddr, self.trsvcid)
        } else {
            format!("{} {}:{}", self.trtype, self.traddr, self.trsvcid)
        }
    }
}

/// Everything nvmet's tree holds that an export touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub subsystems: Vec<Subsystem>,
    pub ports: Vec<Port>,
    /// Entries of `hosts`.
    pub hosts: Vec<String>,
}

fn names(t: &dyn Tree, rel: &str, kind: Kind) -> io::Result<Vec<String>> {
    Ok(t.list(rel)?
        .into_iter()
        .filter(|(_, k)| *k == kind)
        .map(|(n, _)| n)
        .collect())
}

/// An attribute, or empty if it cannot be read (attributes of options the
/// kernel was built without, say).
fn attr(t: &dyn Tree, rel: &str) -> String {
    t.read(rel).unwrap_or_default()
}

impl State {
    /// Reads the tree.
    pub fn read(t: &dyn Tree) -> io::Result<State> {
        let mut st = State::default();
        for nqn in names(t, "subsystems", Kind::Dir)? {
            let base = format!("subsystems/{nqn}");
            let mut namespaces = Vec::new();
            for nsid in names(t, &format!("{base}/namespaces"), Kind::Dir)? {
                let ns = format!("{base}/namespaces/{nsid}");
                let device_path = attr(t, &format!("{ns}/device_path"));
                namespaces.push(Namespace {
                    disk: if device_path.is_empty() {
                        String::new()
                    } else {
                        t.device_disk(&device_path)
                    },
                    device_path,
                    enabled: attr(t, &format!("{ns}/enable")).trim() == "1",
                    uuid: attr(t, &format!("{ns}/device_uuid")),
                    nguid: attr(t, &format!("{ns}/device_nguid")),
                    nsid,
                });
            }
            st.subsystems.push(Subsystem {
                allow_any_host: attr(t, &format!("{base}/attr_allow_any_host")).trim() == "1",
                hosts: names(t, &format!("{base}/allowed_hosts"), Kind::Link)?,
                namespaces,
                nqn,
            });
        }
        for id in names(t, "ports", Kind::Dir)? {
            let base = format!("ports/{id}");
            st.ports.push(Port {
                trtype: attr(t, &format!("{base}/addr_trtype")),
                adrfam: attr(t, &format!("{base}/addr_adrfam")),
                traddr: attr(t, &format!("{base}/addr_traddr")),
                trsvcid: attr(t, &format!("{base}/addr_trsvcid")),
                subsystems: names(t, &format!("{base}/subsystems"), Kind::Link)?,
                referrals: t.list(&format!("{base}/referrals")).map_or(0, |l| l.len()),
                id,
            });
        }
        st.hosts = names(t, "hosts", Kind::Dir).unwrap_or_default();
        Ok(st)
    }

    pub fn subsystem(&self, nqn: &str) -> Option<&Subsystem> {
        self.subsystems.iter().find(|s| s.nqn == nqn)
    }

    /// The ports the subsystem is linked into.
    pub fn ports_of(&self, nqn: &str) -> Vec<&Port> {
        self.ports
            .iter()
            .filter(|p| p.subsystems.iter().any(|s| s == nqn))
            .collect()
    }

    /// Every namespace that exports the disk `disk` (`zvpool3`).
    pub fn exports_of(&self, disk: &str) -> Vec<(&Subsystem, &Namespace)> {
        self.subsystems
            .iter()
            .flat_map(|s| s.namespaces.iter().map(move |n| (s, n)))
            .filter(|(_, n)| n.disk == disk)
            .collect()
    }
}

/// Discovery NQN that cannot be a subsystem.
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
/// Longest NQN (NVMF_NQN_SIZE - 1).
pub const MAX_NQN: usize = 223;

/// Checks an NQN (subsystem or host): `nqn.` then printable characters
/// without '/' or white space, at most 223 bytes; `Err` says why not.
pub fn check_nqn(nqn: &str) -> Result<(), String> {
    if !nqn.starts_with("nqn.") || nqn.len() <= 4 {
        return Err(format!(
            "invalid NQN {nqn:?}: expected nqn.YYYY-MM.reverse.domain:name \
             (e.g. nqn.2026-12.org.example:tank.vm1)"
        ));
    }
    if nqn.len() > MAX_NQN {
        return Err(format!("invalid NQN {nqn:?}: longer than {MAX_NQN} bytes"));
    }
    if nqn
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(format!(
            "invalid NQN {nqn:?}: only printable ASCII without '/' or spaces"
        ));
    }
    if nqn == DISCOVERY_NQN {
        return Err(format!("{nqn} is the discovery NQN, not a subsystem's"));
    }
    Ok(())
}
