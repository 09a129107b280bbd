// SPDX-License-Identifier: GPL-2.0
//! Finding pools on the machine's block devices (`pool import`): every
//! block device of `/sys/class/block` (or every file and device node of a
//! directory) is opened read-only and its superblock read as `pool check`
//! reads it (`check::device_superblock`: block 0 of each log zone, the
//! newest valid copy). Devices are grouped by pool UUID; each pool's
//! members are placed by the member table of its newest superblock (device
//! UUIDs in member order). Nothing is ever written.

use crate::backend::Backend;
use crate::check::device_superblock;
use crate::uuid::Uuid;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Where the kernel lists block devices.
pub const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// One device carrying a zvpool superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: String,
    pub dev_uuid: Uuid,
    pub member_index: u16,
    pub generation: u64,
}

/// A pool found on the devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedPool {
    pub uuid: Uuid,
    /// Device UUIDs in member order (from the newest superblock seen),
    /// members removed from the pool left out.
    pub members: Vec<Uuid>,
    /// For each member, the device found (`None`: missing).
    pub devices: Vec<Option<String>>,
    /// Devices with this pool's UUID that the newest member table does not
    /// list (stale: removed from the pool, or an old copy).
    pub stale: Vec<String>,
}

impl ScannedPool {
    pub fn found(&self) -> usize {
        self.devices.iter().flatten().count()
    }

    pub fn complete(&self) -> bool {
        self.found() == self.members.len()
    }

    /// The member devices in member order (complete pools).
    pub fn device_list(&self) -> Vec<String> {
        self.devices.iter().flatten().cloned().collect()
    }
}

/// Devices that could not be read, with the reason.
pub type Unreadable = Vec<(String, String)>;

/// The candidate devices: `/dev/NAME` for every entry of `/sys/class/block`
/// with a non-zero size that is not a zvpool volume (`zvpoolN`) nor a
/// suspended device-mapper device, or every regular file and block device
/// of `dir`; sorted.
pub fn candidates(dir: Option<&Path>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match dir {
        Some(d) => {
            let rd = fs::read_dir(d)
                .map_err(|e| format!("{}: {}", d.display(), crate::error::io_text(&e)))?;
            for e in rd.flatten() {
                let p = e.path();
                let Ok(md) = fs::metadata(&p) else { continue };
                use std::os::unix::fs::FileTypeExt;
                if md.is_file() || md.file_type().is_block_device() {
                    out.push(p.to_string_lossy().into_owned());
                }
            }
        }
        None => out = sys_block_devices(Path::new(SYS_CLASS_BLOCK))?,
    }
    out.sort();
    Ok(out)
}

/// `/dev/NAME` for the entries of `sys` (`/sys/class/block`) to scan.
fn sys_block_devices(sys: &Path) -> Result<Vec<String>, String> {
    let rd = fs::read_dir(sys)
        .map_err(|e| format!("{}: {}", sys.display(), crate::error::io_text(&e)))?;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("zvpool") {
            continue;
        }
        let size = fs::read_to_string(e.path().join("size"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // A suspended device-mapper device would block the read (as
        // pvscan, skip it).
        let suspended =
            fs::read_to_string(e.path().join("dm/suspended")).is_ok_and(|s| s.trim() == "1");
        if size > 0 && !suspended {
            out.push(format!("/dev/{name}"));
        }
    }
    Ok(out)
}

/// Reads each candidate's superblock (read-only, through the backend's
/// device access so tests can serve images).
pub fn read_all(
    backend: &dyn Backend,
    paths: &[String],
) -> (Vec<(Found, Uuid, Vec<Uuid>)>, Unreadable) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        let mut set = match backend.open_devices(std::slice::from_ref(p)) {
            Ok(s) => s,
            Err(e) => {
                bad.push((p.clone(), e.reason));
                continue;
            }
        };
        let Some(g) = set.geoms().first().copied() else {
            continue;
        };
        let Some(sb) = device_superblock(set.as_mut(), 0, &g) else {
            continue;
        };
        // Members removed from the pool are not looked for.
        let members = sb
            .members
            .iter()
            .take(usize::from(sb.nr_members))
            .filter(|m| !m.removed)
            .map(|m| m.dev_uuid)
            .collect();
        found.push((
            Found {
                path: p.clone(),
                dev_uuid: sb.dev_uuid,
                member_index: sb.member_index,
                generation: sb.generation,
            },
            sb.pool_uuid,
            members,
        ));
    }
    (found, bad)
}

/// Groups the devices by pool, sorted by pool UUID.
pub fn group(found: Vec<(Found, Uuid, Vec<Uuid>)>) -> Vec<ScannedPool> {
    let mut by: BTreeMap<Uuid, Vec<(Found, Vec<Uuid>)>> = BTreeMap::new();
    for (f, u, m) in found {
        by.entry(u).or_default().push((f, m));
    }
    by.into_iter()
        .map(|(uuid, devs)| {
            let members = devs
                .iter()
                .max_by_key(|(f, _)| f.generation)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            let mut devices = vec![None; members.len()];
            let mut stale = Vec::new();
            for (f, _) in &devs {
                match members.iter().position(|m| *m == f.dev_uuid) {
                    // The first device with that identity wins (a copy of a
                    // member, e.g. a dd image, would be a second one).
                    Some(i) if devices[i].is_none() => devices[i] = Some(f.path.clone()),
                    _ => stale.push(f.path.clone()),
                }
            }
            ScannedPool {
                uuid,
                members,
                devices,
                stale,
            }
        })
        .collect()
}

/// Candidates, superblocks and pools in one call.
pub fn scan(
    backend: &dyn Backend,
    dir: Option<&Path>,
) -> Result<(Vec<ScannedPool>, Unreadable), String> {
    let c = candidates(dir)?;
    let (found, bad) = read_all(backend, &c);
    Ok((group(found), bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn sysfs_entries_to_scan() {
        let d = TempDir::new("sysblock");
        for (name, size, suspended) in [
            ("nvme0n1", "8388608", None),
            ("sr0", "0", None),
            ("zvpool0", "2048", None),
            ("dm-0", "2048", Some("1")),
            ("dm-1", "2048", Some("0")),
        ] {
            let e = d.path().join(name);
            fs::create_dir_all(e.join("dm")).unwrap();
            fs::write(e.join("size"), format!("{size}\n")).unwrap();
            if let Some(s) = suspended {
                fs::write(e.join("dm/suspended"), format!("{s}\n")).unwrap();
            }
        }
        let mut v = sys_block_devices(d.path()).unwrap();
        v.sort();
        assert_eq!(v, ["/dev/dm-1", "/dev/nvme0n1"]);
        assert!(sys_block_devices(&d.path().join("none")).is_err());
    }
}
