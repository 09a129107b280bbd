// SPDX-License-Identifier: GPL-2.0
//! The pool cache (`/etc/zvpool/zvpool.cache`, like `zpool.cache`): which
//! pools this machine imports at boot and under which name. The on-disk
//! format has no pool name (the name is the configfs directory chosen at
//! assembly), so this file is where `pool import` finds it.
//!
//! Format (version 1), a text file:
//!
//! ```text
//! # comment lines and empty lines are ignored
//! zvpool-cache 1
//! pool <pool-uuid> <name> <dev-uuid>[,<dev-uuid>...]
//! limits <pool-uuid> <volume> riops=N wiops=N rbps=N wbps=N quota=N reservation=N
//! export <pool-uuid> <volume> <nqn> transport=loop [host=<host-nqn>]
//! export <pool-uuid> <volume> <nqn> transport=tcp addr=<addr> port=<port> [host=<host-nqn>]
//! ```
//!
//! `limits` lines (issue 20) hold what `volume set` sets of a volume and
//! the on-disk format has no room for: its I/O limits and its space rules
//! (quota and reservation, in bytes). `volume set` records them, assembly
//! applies them when it binds the volume. Only non-zero values are
//! written. The version line is the lowest that says what the file holds:
//! `zvpool-cache 2` with `limits` lines, `zvpool-cache 3` when one of them
//! has a quota or a reservation (a tool that only knows an older version
//! then refuses the file as another version instead of misreading it;
//! a file without them stays version 1). Every version is read.
//!
//! `export` lines (issue 21) hold the NVMe-oF exports `volume export`
//! made (nvmet's configfs forgets them at reboot): the volume, the
//! subsystem NQN, the transport with its address and TCP port, and the one
//! host NQN allowed to connect (none: any host). One per volume; `volume
//! unexport` and `volume delete` remove it. Assembly re-creates them once
//! the pool's volumes are enabled (the volume's identity, hence the
//! namespace UUID, NGUID and serial, comes from the volume). A file with
//! `export` lines is `zvpool-cache 4`, whatever else it holds (a tool that
//! knows versions 1 to 3 refuses it); without them the version is as
//! above.
//!
//! The first line that is not a comment is the version line; then one `pool`
//! line per pool: its UUID, the name it was last assembled under and its
//! members' device UUIDs in member order (`-` when they could not be read).
//! A file that does not parse (another version, a malformed line) is
//! corrupt: it is never rewritten (the update is skipped with a warning),
//! `pool import` ignores it with a warning, `pool import -a --cached`
//! refuses. Writes go to a temporary file in the same directory, synced,
//! then renamed over the old one (atomic); a missing directory is created.

use crate::commands::qos::{Kind, Values, N_SETTINGS, SETTINGS};
use crate::nvmet::plan::{ExportAs, Transport};
use crate::uuid::{self, Uuid};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the cache lives unless `--cache FILE` says otherwise.
pub const DEFAULT_CACHE: &str = "/etc/zvpool/zvpool.cache";
const VERSION_LINE: &str = "zvpool-cache 1";
/// The version line of a cache with `limits` lines.
const VERSION_LINE_2: &str = "zvpool-cache 2";
/// The version line of a cache with a quota or a reservation.
const VERSION_LINE_3: &str = "zvpool-cache 3";
/// The version line of a cache with `export` lines.
const VERSION_LINE_4: &str = "zvpool-cache 4";
const VERSIONS: [&str; 4] = [VERSION_LINE, VERSION_LINE_2, VERSION_LINE_3, VERSION_LINE_4];

/// What `volume set` set of one volume (0: unlimited, none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolLimits {
    pub pool: Uuid,
    pub volume: String,
    /// In the order of [`SETTINGS`]: riops, wiops, rbps, wbps, quota,
    /// reservation.
    pub values: Values,
}

impl VolLimits {
    /// Whether it has a quota or a reservation (version 3).
    fn has_space_rules(&self) -> bool {
        SETTINGS
            .iter()
            .zip(self.values)
            .any(|(s, v)| s.kind == Kind::Space && v != 0)
    }
}

/// An NVMe-oF export of one volume, re-created at assembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolExport {
    pub pool: Uuid,
    pub volume: String,
    pub export: ExportAs,
}

/// One pool of the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub uuid: Uuid,
    pub name: String,
    /// Device UUIDs in member order; empty when unknown.
    pub members: Vec<Uuid>,
}

/// The parsed cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cache {
    pub entries: Vec<Entry>,
    /// Volumes with I/O limits or space rules.
    pub limits: Vec<VolLimits>,
    /// Volumes exported over NVMe-oF.
    pub exports: Vec<VolExport>,
}

impl Cache {
    /// Parses the text; the error names the line.
    pub fn parse(text: &str) -> Result<Cache, String> {
        let mut c = Cache::default();
        let mut version = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            if !version {
                if !VERSIONS.contains(&line) {
                    return Err(bad(
                        "expected a version line 'zvpool-cache 1' to 'zvpool-cache 4'",
                    ));
                }
                version = true;
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.first() {
                Some(&"limits") => {
                    let l = parse_limits(&f).map_err(|e| bad(&e))?;
                    add_once(&mut c.limits, l, |l| (&l.pool, &l.volume), "limits")
                        .map_err(|e| bad(&e))?;
                    continue;
                }
                Some(&"export") => {
                    let e = parse_export(&f).map_err(|e| bad(&e))?;
                    add_once(&mut c.exports, e, |e| (&e.pool, &e.volume), "export")
                        .map_err(|e| bad(&e))?;
                    continue;
                }
                _ => {}
            }
            let ["pool", u, name, members] = f[..] else {
                return Err(bad("expected 'pool UUID NAME DEV-UUID,...'"));
            };
            let uuid = uuid::parse(u).ok_or_else(|| bad("invalid pool UUID"))?;
            if crate::commands::check_name("pool", name, "").is_err() {
                return Err(bad("invalid pool name"));
            }
            let members = if members == "-" {
                Vec::new()
            } else {
                members
                    .split(',')
                    .map(uuid::parse)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("invalid member UUID"))?
            };
            if c.entries.iter().any(|e| e.uuid == uuid || e.name == name) {
                return Err(bad("a pool UUID or name recorded twice"));
            }
            c.entries.push(Entry {
                uuid,
                name: name.to_string(),
                members,
            });
        }
        if !version && !c.entries.is_empty() {
            return Err("no version line".into());
        }
        Ok(c)
    }

    pub fn render(&self) -> String {
        let version = if !self.exports.is_empty() {
            VERSION_LINE_4
        } else if self.limits.iter().any(VolLimits::has_space_rules) {
            VERSION_LINE_3
        } else if self.limits.is_empty() {
            VERSION_LINE
        } else {
            VERSION_LINE_2
        };
        let mut s = format!(
            "# zvpool pool cache: the pools 'zvpoolctl pool import -a --cached' imports\n\
             # (at boot), with their names. Written by zvpoolctl; see zvpoolctl(8).\n\
             {version}\n"
        );
        for e in &self.entries {
            let m = if e.members.is_empty() {
                "-".to_string()
            } else {
                e.members
                    .iter()
                    .map(uuid::format)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            s.push_str(&format!("pool {} {} {m}\n", uuid::format(&e.uuid), e.name));
        }
        for l in &self.limits {
            let kv: Vec<String> = SETTINGS
                .iter()
                .zip(l.values)
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| format!("{}={v}", k.name))
                .collect();
            s.push_str(&format!(
                "limits {} {} {}\n",
                uuid::format(&l.pool),
                l.volume,
                kv.join(" ")
            ));
        }
        for e in &self.exports {
            let x = &e.export;
            s.push_str(&format!(
                "export {} {} {} transport={}",
                uuid::format(&e.pool),
                e.volume,
                x.nqn,
                x.transport.trtype()
            ));
            if let Transport::Tcp { addr, svcid } = &x.transport {
                s.push_str(&format!(" addr={addr} port={svcid}"));
            }
            if let Some(h) = &x.host {
                s.push_str(&format!(" host={h}"));
            }
            s.push('\n');
        }
        s
    }

    /// Records the export of a volume (replacing the one recorded before).
    /// Whether the cache changed.
    pub fn record_export(&mut self, e: VolExport) -> bool {
        let old = self.forget_export(&e.pool, &e.volume);
        let changed = old.as_ref() != Some(&e);
        self.exports.push(e);
        changed
    }

    /// Forgets the export of volume `volume` of pool `pool`; the one it was.
    pub fn forget_export(&mut self, pool: &Uuid, volume: &str) -> Option<VolExport> {
        let i = self
            .exports
            .iter()
            .position(|e| &e.pool == pool && e.volume == volume)?;
        Some(self.exports.remove(i))
    }

    /// Forgets everything recorded of volume `volume` of pool `pool` (it
    /// was deleted): its limits and its export. Whether the cache changed.
    pub fn forget_volume(&mut self, pool: Uuid, volume: &str) -> bool {
        let limits = self.set_limits(pool, volume, [0; N_SETTINGS]);
        self.forget_export(&pool, volume).is_some() || limits
    }

    /// The settings recorded for volume `volume` of pool `pool` (all 0 if
    /// none).
    pub fn limits_of(&self, pool: &Uuid, volume: &str) -> Values {
        self.limits
            .iter()
            .find(|l| &l.pool == pool && l.volume == volume)
            .map_or([0; N_SETTINGS], |l| l.values)
    }

    /// Records the settings of a volume (all 0: forgets it). Whether the
    /// cache changed.
    pub fn set_limits(&mut self, pool: Uuid, volume: &str, values: Values) -> bool {
        let old = self.limits.clone();
        self.limits
            .retain(|l| !(l.pool == pool && l.volume == volume));
        if values != [0; N_SETTINGS] {
            self.limits.push(VolLimits {
                pool,
                volume: volume.to_string(),
                values,
            });
        }
        old != self.limits
    }

    pub fn by_uuid(&self, u: &Uuid) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.uuid == u)
    }

    /// Records `e`, replacing an entry of the same UUID and dropping another
    /// pool recorded under the same name (the name now means this pool).
    pub fn upsert(&mut self, e: Entry) {
        self.entries
            .retain(|x| x.uuid != e.uuid && x.name != e.name);
        self.entries.push(e);
    }

    /// Removes the pool recorded under `name`; whether there was one.
    pub fn remove_name(&mut self, name: &str) -> bool {
        let n = self.entries.len();
        self.entries.retain(|x| x.name != name);
        n != self.entries.len()
    }
}

/// Adds `x`, the `what` of a volume (`key`: its pool and name), to `list`;
/// `Err` if the volume has one already.
fn add_once<T>(
    list: &mut Vec<T>,
    x: T,
    key: fn(&T) -> (&Uuid, &str),
    what: &str,
) -> Result<(), String> {
    if list.iter().any(|y| key(y) == key(&x)) {
        return Err(format!("a volume's {what} recorded twice"));
    }
    list.push(x);
    Ok(())
}

/// A `limits POOL-UUID VOLUME NAME=N...` line, split in words.
fn parse_limits(f: &[&str]) -> Result<VolLimits, String> {
    let [_, u, volume, kvs @ ..] = f else {
        return Err("expected 'limits POOL-UUID VOLUME NAME=N...'".into());
    };
    let pool = uuid::parse(u).ok_or("invalid pool UUID")?;
    if crate::commands::check_name("volume", volume, "").is_err() {
        return Err("invalid volume name".into());
    }
    let mut values = [0u64; N_SETTINGS];
    for kv in kvs {
        let (k, v) = kv.split_once('=').ok_or("expected NAME=N")?;
        let i = SETTINGS
            .iter()
            .position(|n| n.name == k)
            .ok_or("unknown limit")?;
        values[i] = v.parse().map_err(|_| "invalid limit value")?;
    }
    Ok(VolLimits {
        pool,
        volume: volume.to_string(),
        values,
    })
}

/// An `export POOL-UUID VOLUME NQN transport=T [addr=A port=P] [host=H]`
/// line, split in words.
fn parse_export(f: &[&str]) -> Result<VolExport, String> {
    let [_, u, volume, nqn, kvs @ ..] = f else {
        return Err("expected 'export POOL-UUID VOLUME NQN transport=T...'".into());
    };
    let pool = uuid::parse(u).ok_or("invalid pool UUID")?;
    // A volume, or a snapshot (VOL@SNAP, exported read-only).
    if crate::commands::check_name("volume", volume, "").is_err()
        && crate::commands::check_snapshot_name(volume, "").is_err()
    {
        return Err("invalid volume name".into());
    }
    crate::nvmet::check_nqn(nqn)?;
    let (mut trtype, mut addr, mut port, mut host) = (None, None, None, None);
    for kv in kvs {
        let (k, v) = kv.split_once('=').ok_or("expected NAME=VALUE")?;
        let slot = match k {
            "transport" => &mut trtype,
            "addr" => &mut addr,
            "port" => &mut port,
            "host" => &mut host,
            _ => return Err(format!("unknown export setting {k:?}")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("{k} given twice"));
        }
    }
    let trtype = trtype.ok_or("no transport=")?;
    let transport = Transport::parse(trtype, addr, port)?;
    if let Some(h) = host {
        crate::nvmet::check_nqn(h).map_err(|e| format!("host: {e}"))?;
    }
    Ok(VolExport {
        pool,
        volume: volume.to_string(),
        export: ExportAs {
            nqn: nqn.to_string(),
            transport,
            host: host.map(str::to_string),
        },
    })
}

/// Reads the cache: `Ok(None)` when there is no file, `Err` when it cannot
/// be read or is corrupt (with the reason).
pub fn load(path: &Path) -> Result<Option<Cache>, String> {
    match fs::read_to_string(path) {
        Ok(t) => Cache::parse(&t)
            .map(Some)
            .map_err(|e| format!("{}: corrupt cache file ({e})", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {}", path.display(), crate::error::io_text(&e))),
    }
}

/// Writes the cache atomically: a temporary file next to it, synced, then
/// renamed; creates the directory if missing.
pub fn store(path: &Path, c: &Cache) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?
        .to_string_lossy();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let r = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(c.render().as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Loads, changes and stores the cache. The outcome is a warning or
/// nothing: a cache that cannot be updated never fails the command.
pub fn update(path: &Path, f: impl FnOnce(&mut Cache) -> bool) -> Result<(), String> {
    let mut c = load(path)
        .map_err(|e| format!("{e}; not updated (fix or remove it)"))?
        .unwrap_or_default();
    if !f(&mut c) {
        return Ok(());
    }
    store(path, &c).map_err(|e| {
        format!(
            "cannot write the cache {}: {}",
            path.display(),
            crate::error::io_text(&e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn entry(n: u8, name: &str) -> Entry {
        Entry {
            uuid: [n; 16],
            name: name.into(),
            members: vec![[n + 1; 16], [n + 2; 16]],
        }
    }

    #[test]
    fn round_trip_and_upsert() {
        let mut c = Cache::default();
        c.upsert(entry(1, "tank"));
        c.upsert(entry(5, "data"));
        let text = c.render();
        assert!(text.contains("\nzvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank 02020202-0202-0202-0202-020202020202,03030303-0303-0303-0303-030303030303\n"), "{text}");
        assert_eq!(Cache::parse(&text).unwrap(), c);
        // Same UUID under a new name: replaced; a name taken by another
        // UUID: that record goes.
        c.upsert(entry(1, "tank2"));
        c.upsert(entry(9, "data"));
        let names: Vec<&str> = c.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["tank2", "data"]);
        assert_eq!(c.by_uuid(&[9; 16]).map(|e| e.name.as_str()), Some("data"));
        assert!(c.remove_name("tank2") && !c.remove_name("tank2"));
        assert_eq!(c.entries.len(), 1);
    }

    #[test]
    fn volume_limits_round_trip() {
        let mut c = Cache::default();
        c.upsert(entry(1, "tank"));
        assert!(c.render().contains("\nzvpool-cache 1\n"));
        assert!(c.set_limits([1; 16], "vm1", [200, 0, 0, 1 << 20, 0, 0]));
        assert!(!c.set_limits([1; 16], "vm1", [200, 0, 0, 1 << 20, 0, 0]));
        assert!(c.set_limits([1; 16], "vm2", [0, 5, 0, 0, 0, 0]));
        let text = c.render();
        assert!(text.contains("\nzvpool-cache 2\n"), "{text}");
        assert!(
            text.contains(
                "\nlimits 01010101-0101-0101-0101-010101010101 vm1 riops=200 wbps=1048576\n"
            ),
            "{text}"
        );
        let back = Cache::parse(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.limits_of(&[1; 16], "vm1"), [200, 0, 0, 1 << 20, 0, 0]);
        assert_eq!(back.limits_of(&[1; 16], "vm3"), [0; 6]);
        assert_eq!(back.limits_of(&[2; 16], "vm1"), [0; 6]);
        // All zero: forgotten; no limits left: version 1 again.
        assert!(c.set_limits([1; 16], "vm1", [0; 6]));
        assert!(c.set_limits([1; 16], "vm2", [0; 6]));
        assert!(c.limits.is_empty() && c.render().contains("\nzvpool-cache 1\n"));
        for (bad, what) in [
            ("zvpool-cache 2\nlimits x vm1 riops=1\n", "line 2: invalid pool UUID"),
            ("zvpool-cache 2\nlimits 01010101-0101-0101-0101-010101010101 v/m riops=1\n", "line 2: invalid volume name"),
            ("zvpool-cache 2\nlimits 01010101-0101-0101-0101-010101010101 vm1 iops=1\n", "line 2: unknown limit"),
            ("zvpool-cache 2\nlimits 01010101-0101-0101-0101-010101010101 vm1 riops=x\n", "line 2: invalid limit value"),
            ("zvpool-cache 2\nlimits 01010101-0101-0101-0101-010101010101\n", "line 2: expected 'limits"),
            ("zvpool-cache 2\nlimits 01010101-0101-0101-0101-010101010101 vm1 riops=1\nlimits 01010101-0101-0101-0101-010101010101 vm1 wiops=1\n", "line 3: a volume's limits recorded twice"),
        ] {
            let e = Cache::parse(bad).unwrap_err();
            assert!(e.starts_with(what), "{bad:?}: {e}");
        }
    }

    #[test]
    fn quota_and_reservation_round_trip_as_version_3() {
        let mut c = Cache::default();
        c.upsert(entry(1, "tank"));
        assert!(c.set_limits([1; 16], "vm1", [0, 0, 0, 1 << 20, 0, 0]));
        assert!(c.render().contains("\nzvpool-cache 2\n"));
        assert!(c.set_limits([1; 16], "vm2", [0, 0, 0, 0, 10 << 30, 1 << 30]));
        let text = c.render();
        assert!(text.contains("\nzvpool-cache 3\n"), "{text}");
        assert!(
            text.contains(
                "\nlimits 01010101-0101-0101-0101-010101010101 vm2 quota=10737418240 reservation=1073741824\n"
            ),
            "{text}"
        );
        let back = Cache::parse(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.limits_of(&[1; 16], "vm2"),
            [0, 0, 0, 0, 10 << 30, 1 << 30]
        );
        // The quota alone, mixed with a limit: still version 3; without
        // space rules version 2 again.
        assert!(c.set_limits([1; 16], "vm2", [7, 0, 0, 0, 4096, 0]));
        let text = c.render();
        assert!(
            text.contains("\nzvpool-cache 3\n") && text.contains(" vm2 riops=7 quota=4096\n"),
            "{text}"
        );
        assert!(c.set_limits([1; 16], "vm2", [7, 0, 0, 0, 0, 0]));
        assert!(c.render().contains("\nzvpool-cache 2\n"));
        for (bad, what) in [
            (
                "zvpool-cache 3\nlimits 01010101-0101-0101-0101-010101010101 vm1 quota=1G\n",
                "line 2: invalid limit value",
            ),
            (
                "zvpool-cache 3\nlimits 01010101-0101-0101-0101-010101010101 vm1 refquota=1\n",
                "line 2: unknown limit",
            ),
            ("zvpool-cache 5\n", "line 1: expected a version line"),
        ] {
            let e = Cache::parse(bad).unwrap_err();
            assert!(e.starts_with(what), "{bad:?}: {e}");
        }
    }

    /// Files written by older versions of the tool (versions 1 and 2) are
    /// read as they were.
    #[test]
    fn older_versions_are_read() {
        let v1 = "# zvpool pool cache\nzvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank 02020202-0202-0202-0202-020202020202\n";
        let c = Cache::parse(v1).unwrap();
        assert_eq!(c.entries[0].name, "tank");
        assert!(c.limits.is_empty());
        let v2 =
            format!("{v1}limits 01010101-0101-0101-0101-010101010101 vm1 riops=200 wbps=1048576\n")
                .replace("zvpool-cache 1", "zvpool-cache 2");
        let c = Cache::parse(&v2).unwrap();
        assert_eq!(c.limits_of(&[1; 16], "vm1"), [200, 0, 0, 1 << 20, 0, 0]);
        // Written back unchanged (still version 2: no space rules).
        assert!(
            c.render()
                .ends_with(&v2[v2.find("zvpool-cache").unwrap()..]),
            "{}",
            c.render()
        );
    }

    fn vol_export(volume: &str, nqn: &str, transport: Transport, host: Option<&str>) -> VolExport {
        VolExport {
            pool: [1; 16],
            volume: volume.into(),
            export: ExportAs {
                nqn: nqn.into(),
                transport,
                host: host.map(str::to_string),
            },
        }
    }

    /// `export` lines (issue 21): version 4 whatever else the file holds,
    /// the version before once the last one goes.
    #[test]
    fn exports_round_trip_as_version_4() {
        let mut c = Cache::default();
        c.upsert(entry(1, "tank"));
        assert!(c.set_limits([1; 16], "vm1", [200, 0, 0, 0, 0, 0]));
        let tcp = Transport::Tcp {
            addr: "fd00::1".into(),
            svcid: "4421".into(),
        };
        let host = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        assert!(c.record_export(vol_export("vm1", "nqn.x:vm1", tcp.clone(), Some(host))));
        assert!(!c.record_export(vol_export("vm1", "nqn.x:vm1", tcp, Some(host))));
        assert!(c.record_export(vol_export("vm2", "nqn.x:vm2", Transport::Loop, None)));
        let text = c.render();
        let u = "01010101-0101-0101-0101-010101010101";
        assert!(
            text.contains("\nzvpool-cache 4\n")
                && text.ends_with(&format!(
                    "\nlimits {u} vm1 riops=200\n\
                     export {u} vm1 nqn.x:vm1 transport=tcp addr=fd00::1 port=4421 host={host}\n\
                     export {u} vm2 nqn.x:vm2 transport=loop\n"
                )),
            "{text}"
        );
        assert_eq!(Cache::parse(&text).unwrap(), c);
        // Recorded again another way: replaced.
        assert!(c.record_export(vol_export("vm2", "nqn.x:other", Transport::Loop, None)));
        assert_eq!(c.exports.len(), 2);
        assert!(c.render().contains(" vm2 nqn.x:other transport=loop\n"));
        // Deleted volumes: everything of them goes; without exports the
        // version of the limits again.
        assert_eq!(
            c.forget_export(&[1; 16], "vm2").map(|e| e.export.nqn),
            Some("nqn.x:other".into())
        );
        assert!(c.forget_export(&[1; 16], "vm2").is_none());
        assert!(c.forget_volume([1; 16], "vm1") && !c.forget_volume([1; 16], "vm1"));
        assert!(c.exports.is_empty() && c.limits.is_empty());
        assert!(c.render().contains("\nzvpool-cache 1\n"));
        // A default port is written out.
        let e = "zvpool-cache 4\nexport 01010101-0101-0101-0101-010101010101 vm1 nqn.x:a transport=tcp addr=10.0.0.1\n";
        let c = Cache::parse(e).unwrap();
        assert!(c.render().ends_with(" addr=10.0.0.1 port=4420\n"));
        let l = "zvpool-cache 4\nexport 01010101-0101-0101-0101-010101010101";
        for (bad, what) in [
            (format!("{l} vm1 nqn.x:a\n"), "line 2: no transport="),
            (format!("{l} vm1\n"), "line 2: expected 'export"),
            (
                format!("{l} vm1 iqn.x transport=loop\n"),
                "line 2: invalid NQN",
            ),
            (
                format!("{l} v/m nqn.x:a transport=loop\n"),
                "line 2: invalid volume name",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=rdma\n"),
                "line 2: unknown transport",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=tcp\n"),
                "line 2: --transport tcp needs --addr",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=loop port=1\n"),
                "line 2: --addr and --port",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=tcp addr=a;b\n"),
                "line 2: invalid --addr",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=loop host=h\n"),
                "line 2: host: invalid NQN",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=loop mode=1\n"),
                "line 2: unknown export setting",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=loop transport=loop\n"),
                "line 2: transport given twice",
            ),
            (
                format!("{l} vm1 nqn.x:a transport=loop\n{}", &l[15..])
                    + " vm1 nqn.x:b transport=loop\n",
                "line 3: a volume's export recorded twice",
            ),
            (
                "export 01010101-0101-0101-0101-010101010101 vm1 nqn.x:a transport=loop\n".into(),
                "line 1: expected a version line",
            ),
        ] {
            let e = Cache::parse(&bad).unwrap_err();
            assert!(e.starts_with(what), "{bad:?}: {e}");
        }
    }

    /// Every version a tool wrote is read; a file with a version this one
    /// does not know is refused (as older tools refuse version 4).
    #[test]
    fn every_version_is_read() {
        let pool = "pool 01010101-0101-0101-0101-010101010101 tank -\n";
        let limits = "limits 01010101-0101-0101-0101-010101010101 vm1 riops=1 quota=4096\n";
        for v in 1..=4 {
            let c = Cache::parse(&format!("zvpool-cache {v}\n{pool}{limits}")).unwrap();
            assert_eq!(c.entries.len(), 1, "version {v}");
            assert_eq!(c.limits_of(&[1; 16], "vm1"), [1, 0, 0, 0, 4096, 0]);
            assert!(c.render().contains("\nzvpool-cache 3\n"));
        }
        let e = Cache::parse(&format!("zvpool-cache 5\n{pool}")).unwrap_err();
        assert!(e.contains("'zvpool-cache 1' to 'zvpool-cache 4'"), "{e}");
    }

    #[test]
    fn corrupt_text_is_refused_with_the_line() {
        let ok = "# c\n\nzvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank -\n";
        assert!(Cache::parse(ok).unwrap().entries[0].members.is_empty());
        for (bad, what) in [
            ("zvpool-cache 5\n", "line 1: expected a version line"),
            ("pool 01010101-0101-0101-0101-010101010101 tank -\n", "line 1: expected a version"),
            ("zvpool-cache 1\npool x tank -\n", "line 2: invalid pool UUID"),
            ("zvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 ta/nk -\n", "line 2: invalid pool name"),
            ("zvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank 1,2\n", "line 2: invalid member UUID"),
            ("zvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank\n", "line 2: expected 'pool"),
            ("zvpool-cache 1\npool 01010101-0101-0101-0101-010101010101 tank -\npool 01010101-0101-0101-0101-010101010101 t2 -\n", "line 3: a pool UUID or name recorded twice"),
        ] {
            let e = Cache::parse(bad).unwrap_err();
            assert!(e.starts_with(what), "{bad:?}: {e}");
        }
    }

    #[test]
    fn store_is_atomic_and_creates_the_directory() {
        let d = TempDir::new("cache");
        let path = d.path().join("etc/zvpool/zvpool.cache");
        assert_eq!(load(&path), Ok(None));
        update(&path, |c| {
            c.upsert(entry(1, "tank"));
            true
        })
        .unwrap();
        assert_eq!(
            load(&path).unwrap().unwrap().entries,
            vec![entry(1, "tank")]
        );
        // A new file renamed over the old one (a reader never sees half a
        // file): the inode changes at every update.
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&path).unwrap().ino();
        update(&path, |c| {
            c.upsert(entry(5, "data"));
            true
        })
        .unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(load(&path).unwrap().unwrap().entries.len(), 2);
        // Only the cache itself is left (the temporary file was renamed).
        let files: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["zvpool.cache"]);
        // A corrupt cache is never overwritten.
        fs::write(&path, "garbage\n").unwrap();
        let e = update(&path, |c| {
            c.upsert(entry(7, "more"));
            true
        })
        .unwrap_err();
        assert!(
            e.contains("corrupt cache file (line 1")
                && e.ends_with("not updated (fix or remove it)"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage\n");
        // A directory that cannot be created: an error to warn about.
        let blocker = d.path().join("file");
        fs::write(&blocker, "").unwrap();
        assert!(update(&blocker.join("zvpool.cache"), |_| true).is_err());
    }
}
