// SPDX-License-Identifier: GPL-2.0
//! The configfs operations of an export and an unexport, computed from the
//! [`State`] of nvmet's tree before anything is changed: a list that tests
//! check without a kernel, that runs in order and whose done steps undo in
//! reverse order ([`Op::inverse`]).
//!
//! Export: the subsystem and its host access, its namespace (path,
//! identity, enable), then a port (an existing one of the same transport
//! and address is shared; else a new one with the lowest free id) and the
//! link that makes the subsystem reachable through it, last: initiators
//! can only connect once everything else is in place.
//!
//! Unexport, the reverse: the links from ports (a port left with no
//! subsystem and no referral is removed), the namespace (disabled first),
//! the allowed-host links and the subsystem. A subsystem that has other
//! namespaces too (made by hand) keeps them: only the volume's namespace
//! goes. Host entries (`hosts/HOST`) are left: they may hold keys.

use super::{State, Tree};
use std::fmt;
use std::io;

/// One configfs operation; paths relative to nvmet's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mkdir(String),
    Rmdir(String),
    /// Writes `value`; `undo` is what a rollback writes back (`None`: the
    /// attribute goes with its directory).
    Write {
        path: String,
        value: String,
        undo: Option<String>,
    },
    /// A link at `link` to `target`.
    Link {
        target: String,
        link: String,
    },
    /// Removes the link at `link` (to `target`).
    Unlink {
        target: String,
        link: String,
    },
}

impl Op {
    fn write(path: String, value: impl Into<String>) -> Op {
        Op::Write {
            path,
            value: value.into(),
            undo: None,
        }
    }

    /// Performs the operation.
    pub fn run(&self, t: &dyn Tree) -> io::Result<()> {
        match self {
            Op::Mkdir(p) => t.mkdir(p),
            Op::Rmdir(p) => t.rmdir(p),
            Op::Write { path, value, .. } => t.write(path, value),
            Op::Link { target, link } => t.symlink(target, link),
            Op::Unlink { link, .. } => t.unlink(link),
        }
    }

    /// What undoes the operation, if anything needs to.
    pub fn inverse(&self) -> Option<Op> {
        Some(match self {
            Op::Mkdir(p) => Op::Rmdir(p.clone()),
            Op::Rmdir(p) => Op::Mkdir(p.clone()),
            Op::Write { path, undo, .. } => Op::write(path.clone(), undo.clone()?),
            Op::Link { target, link } => Op::Unlink {
                target: target.clone(),
                link: link.clone(),
            },
            Op::Unlink { target, link } => Op::Link {
                target: target.clone(),
                link: link.clone(),
            },
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Mkdir(p) => write!(f, "mkdir {p}"),
            Op::Rmdir(p) => write!(f, "rmdir {p}"),
            Op::Write { path, value, .. } => write!(f, "{path} <- {value}"),
            Op::Link { target, link } => write!(f, "ln -s {target} {link}"),
            Op::Unlink { link, .. } => write!(f, "rm {link}"),
        }
    }
}

/// How initiators reach the subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// nvme-loop: the same host only (testing, local use).
    Loop,
    /// NVMe/TCP on `addr` (IPv4 or IPv6) port `svcid`.
    Tcp { addr: String, svcid: String },
}

impl Transport {
    pub fn trtype(&self) -> &'static str {
        match self {
            Transport::Loop => "loop",
            Transport::Tcp { .. } => "tcp",
        }
    }

    /// `ipv4` or `ipv6` (an address with ':').
    pub fn adrfam(&self) -> &'static str {
        match self {
            Transport::Tcp { addr, .. } if addr.contains(':') => "ipv6",
            Transport::Tcp { .. } => "ipv4",
            Transport::Loop => "",
        }
    }

    /// The transport `trtype` (`loop`, `tcp`) with the address `addr` and
    /// port `port` (tcp only; `port` defaults to [`DEFAULT_TCP_PORT`]), as
    /// `volume export` is given them and the pool cache records them; `Err`
    /// says what is wrong, in the words of `volume export`'s options.
    pub fn parse(trtype: &str, addr: Option<&str>, port: Option<&str>) -> Result<Self, String> {
        match trtype {
            "loop" if addr.is_some() || port.is_some() => {
                Err("--addr and --port are for --transport tcp (loop has no address)".into())
            }
            "loop" => Ok(Transport::Loop),
            "tcp" => {
                let addr = addr.ok_or(
                    "--transport tcp needs --addr (the address to listen on, e.g. 192.0.2.10)",
                )?;
                if addr.is_empty()
                    || addr
                        .chars()
                        .any(|c| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
                {
                    return Err(format!("invalid --addr {addr:?}: an IPv4 or IPv6 address"));
                }
                let svcid = port.unwrap_or(DEFAULT_TCP_PORT);
                if !svcid.parse::<u16>().is_ok_and(|n| n > 0) {
                    return Err(format!("invalid --port {svcid:?}: a TCP port 1-65535"));
                }
                Ok(Transport::Tcp {
                    addr: addr.to_string(),
                    svcid: svcid.to_string(),
                })
            }
            t => Err(format!("unknown transport {t:?}: loop or tcp")),
        }
    }

    /// Whether an existing port serves this transport and address.
    fn matches(&self, p: &super::Port) -> bool {
        match self {
            Transport::Loop => p.trtype == "loop",
            Transport::Tcp { addr, svcid } => {
                p.trtype == "tcp" && p.traddr == *addr && p.trsvcid == *svcid
            }
        }
    }
}

/// The NVMe/TCP port when none is given (IANA's NVMe-oF port).
pub const DEFAULT_TCP_PORT: &str = "4420";

/// How a volume is exported, as `volume export` is told and the pool cache
/// records it (the volume's identity comes from the volume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportAs {
    pub nqn: String,
    pub transport: Transport,
    /// Only this host NQN may connect (else any host).
    pub host: Option<String>,
}

/// What to export and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub nqn: String,
    /// `/dev/zvpoolN`.
    pub device_path: String,
    /// `8-4-4-4-12`.
    pub uuid: String,
    /// 32 hex digits.
    pub nguid: String,
    /// The subsystem's serial number (at most 20 ASCII characters).
    pub serial: String,
    pub transport: Transport,
    /// Only this host NQN may connect (else any host).
    pub host: Option<String>,
    /// The device is read-only (a snapshot's): nvmet's block-device
    /// backend opens its device for writing, which the kernel refuses for
    /// a read-only disk (EACCES), so the namespace uses nvmet's file
    /// backend (`buffered_io` 1: the device opened as a file, through the
    /// page cache), where only writes fail.
    pub read_only: bool,
}

/// The namespace id zvpoolctl gives its volume in its subsystem.
pub const NSID: &str = "1";

/// The operations that export `spec`; `Err` if the tree is in the way (a
/// subsystem of that NQN exists).
pub fn export(st: &State, spec: &ExportSpec) -> Result<Vec<Op>, String> {
    let nqn = &spec.nqn;
    if let Some(s) = st.subsystem(nqn) {
        let what = s
            .namespaces
            .iter()
            .map(|n| n.device_path.as_str())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "nvmet already has a subsystem {nqn}{} (choose another NQN, or \
             'zvpoolctl volume unexport' what it exports)",
            if what.is_empty() {
                String::new()
            } else {
                format!(" (exporting {what})")
            }
        ));
    }
    let sub = format!("subsystems/{nqn}");
    let mut ops = vec![Op::Mkdir(sub.clone())];
    match &spec.host {
        None => ops.push(Op::write(format!("{sub}/attr_allow_any_host"), "1")),
        Some(h) => {
            if !st.hosts.iter().any(|x| x == h) {
                ops.push(Op::Mkdir(format!("hosts/{h}")));
            }
            ops.push(Op::Link {
                target: format!("hosts/{h}"),
                link: format!("{sub}/allowed_hosts/{h}"),
            });
        }
    }
    ops.push(Op::write(format!("{sub}/attr_serial"), spec.serial.clone()));
    let ns = format!("{sub}/namespaces/{NSID}");
    ops.push(Op::Mkdir(ns.clone()));
    ops.push(Op::write(
        format!("{ns}/device_path"),
        spec.device_path.clone(),
    ));
    ops.push(Op::write(format!("{ns}/device_uuid"), spec.uuid.clone()));
    ops.push(Op::write(format!("{ns}/device_nguid"), spec.nguid.clone()));
    if spec.read_only {
        ops.push(Op::write(format!("{ns}/buffered_io"), "1"));
    }
    ops.push(Op::Write {
        path: format!("{ns}/enable"),
        value: "1".into(),
        undo: Some("0".into()),
    });
    let port = match st.ports.iter().find(|p| spec.transport.matches(p)) {
        Some(p) => p.id.clone(),
        None => {
            let id = (1u32..)
                .map(|i| i.to_string())
                .find(|i| !st.ports.iter().any(|p| &p.id == i))
                .unwrap_or_default();
            let base = format!("ports/{id}");
            ops.push(Op::Mkdir(base.clone()));
            ops.push(Op::write(
                format!("{base}/addr_trtype"),
                spec.transport.trtype(),
            ));
            if let Transport::Tcp { addr, svcid } = &spec.transport {
                ops.push(Op::write(
                    format!("{base}/addr_adrfam"),
                    spec.transport.adrfam(),
                ));
                ops.push(Op::write(format!("{base}/addr_traddr"), addr.clone()));
                ops.push(Op::write(format!("{base}/addr_trsvcid"), svcid.clone()));
            }
            id
        }
    };
    ops.push(Op::Link {
        target: sub,
        link: format!("ports/{port}/subsystems/{nqn}"),
    });
    Ok(ops)
}

/// Whether `spec` is exported as [`export`] makes it: the subsystem with
/// the same host access, its namespace enabled on the same device with the
/// same identity, linked into a port of the same transport and address.
pub fn in_place(st: &State, spec: &ExportSpec) -> bool {
    let Some(s) = st.subsystem(&spec.nqn) else {
        return false;
    };
    let hosts_same = match &spec.host {
        None => s.allow_any_host,
        Some(h) => !s.allow_any_host && s.hosts == [h.as_str()],
    };
    let disk = super::disk_of_path(std::path::Path::new(&spec.device_path));
    hosts_same
        && s.namespaces
            .iter()
            .any(|n| n.enabled && n.disk == disk && n.uuid == spec.uuid && n.nguid == spec.nguid)
        && st
            .ports_of(&spec.nqn)
            .iter()
            .any(|p| spec.transport.matches(p))
}

/// The operations that remove namespace `nsid` of subsystem `nqn` (and the
/// subsystem, with its port links, when that was its only namespace).
pub fn unexport(st: &State, nqn: &str, nsid: &str) -> Vec<Op> {
    let Some(s) = st.subsystem(nqn) else {
        return Vec::new();
    };
    let sub = format!("subsystems/{nqn}");
    let ns = format!("{sub}/namespaces/{nsid}");
    let whole = s.namespaces.iter().all(|n| n.nsid == nsid);
    let mut ops = Vec::new();
    if whole {
        for p in st.ports_of(nqn) {
            ops.push(Op::Unlink {
                target: sub.clone(),
                link: format!("ports/{}/subsystems/{nqn}", p.id),
            });
            if p.subsystems.len() == 1 && p.referrals == 0 {
                ops.push(Op::Rmdir(format!("ports/{}", p.id)));
            }
        }
    }
    if s.namespaces.iter().any(|n| n.nsid == nsid && n.enabled) {
        ops.push(Op::Write {
            path: format!("{ns}/enable"),
            value: "0".into(),
            undo: Some("1".into()),
        });
    }
    if s.namespaces.iter().any(|n| n.nsid == nsid) {
        ops.push(Op::Rmdir(ns));
    }
    if whole {
        for h in &s.hosts {
            ops.push(Op::Unlink {
                target: format!("hosts/{h}"),
                link: format!("{sub}/allowed_hosts/{h}"),
            });
        }
        ops.push(Op::Rmdir(sub));
    }
    ops
}

/// The operations that tell initiators of every enabled namespace
/// exporting `disk` its new size (`revalidate_size`: nvmet reads the
/// device's size again and sends a namespace-changed event).
pub fn revalidate(st: &State, disk: &str) -> Vec<Op> {
    st.exports_of(disk)
        .into_iter()
        .filter(|(_, n)| n.enabled)
        .map(|(s, n)| {
            Op::write(
                format!("subsystems/{}/namespaces/{}/revalidate_size", s.nqn, n.nsid),
                "1",
            )
        })
        .collect()
}
