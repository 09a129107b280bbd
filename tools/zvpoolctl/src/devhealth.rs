// SPDX-License-Identifier: GPL-2.0
//! What a member device says about itself, for `pool health`: its identity
//! and state from sysfs (`/sys/block/NAME/device/{model,serial,
//! firmware_rev,rev,state}`) and, for an NVMe namespace, its controller's
//! SMART / health log page (log page 2, read through the controller's
//! character device `/dev/nvmeN` with the admin command ioctl).
//!
//! Everything here is best effort: a device that has no such attribute (a
//! null_blk, a loop device) or a controller that refuses the log page
//! shows `-`, never an error of the command.

use std::fs::{self, File};
use std::path::Path;

/// The NVMe SMART / Health Information log page (NVMe base spec, log
/// identifier 02h), 512 bytes.
pub const SMART_LOG_ID: u8 = 0x02;
pub const SMART_LOG_LEN: usize = 512;

/// The fields of the SMART / health log `pool health` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Smart {
    /// Critical warning bits (0: none): spare below threshold,
    /// temperature, reliability degraded, read-only, volatile backup.
    pub critical_warning: u8,
    /// Composite temperature, degrees Celsius.
    pub temperature_c: i64,
    /// Remaining spare capacity, percent.
    pub available_spare: u8,
    pub spare_threshold: u8,
    /// Vendor estimate of the life used, percent (may pass 100).
    pub percentage_used: u8,
    pub power_on_hours: u64,
    pub unsafe_shutdowns: u64,
    /// Unrecovered data integrity errors.
    pub media_errors: u64,
    pub error_log_entries: u64,
}

/// The low 64 bits of a 128-bit little-endian counter at `at`.
fn le128_low(log: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = log.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Decodes a SMART / health log page; `None` if it is too short.
pub fn parse_smart(log: &[u8]) -> Option<Smart> {
    if log.len() < SMART_LOG_LEN {
        return None;
    }
    let kelvin = u16::from_le_bytes([log[1], log[2]]);
    Some(Smart {
        critical_warning: log[0],
        temperature_c: i64::from(kelvin) - 273,
        available_spare: log[3],
        spare_threshold: log[4],
        percentage_used: log[5],
        power_on_hours: le128_low(log, 128)?,
        unsafe_shutdowns: le128_low(log, 144)?,
        media_errors: le128_low(log, 160)?,
        error_log_entries: le128_low(log, 176)?,
    })
}

/// What a device says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceHealth {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// The device's (or its NVMe controller's) state: `live`, `running`, ...
    pub state: Option<String>,
    pub smart: Option<Smart>,
}

/// A trimmed attribute; `None` if absent or empty.
fn attr(dir: &Path, name: &str) -> Option<String> {
    let s = fs::read_to_string(dir.join(name)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Reads what the block device at `dev_path` says about itself, with sysfs
/// at `sys_block` (`/sys/block`) and device nodes under `dev_dir` (`/dev`).
pub fn read(sys_block: &Path, dev_dir: &Path, dev_path: &str) -> DeviceHealth {
    let Some(name) = fs::canonicalize(dev_path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        return DeviceHealth::default();
    };
    // The device behind the disk: an NVMe controller for a namespace, the
    // SCSI device of a disk; none for virtual disks.
    let dev = sys_block.join(&name).join("device");
    let mut h = DeviceHealth {
        model: attr(&dev, "model"),
        serial: attr(&dev, "serial"),
        firmware: attr(&dev, "firmware_rev").or_else(|| attr(&dev, "rev")),
        state: attr(&dev, "state"),
        smart: None,
    };
    let ctrl = fs::canonicalize(&dev)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(c) = ctrl.filter(|c| is_nvme_controller(c)) {
        h.smart = File::open(dev_dir.join(&c)).ok().and_then(|f| {
            let mut log = [0u8; SMART_LOG_LEN];
            crate::sys::nvme_get_log(&f, SMART_LOG_ID, &mut log).ok()?;
            parse_smart(&log)
        });
    }
    h
}

/// `nvme0`, `nvme12`: an NVMe controller's name.
fn is_nvme_controller(name: &str) -> bool {
    name.strip_prefix("nvme")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_log_fields() {
        let mut log = [0u8; SMART_LOG_LEN];
        log[0] = 0x04; // reliability degraded
        log[1..3].copy_from_slice(&(273u16 + 41).to_le_bytes());
        log[3] = 97;
        log[4] = 10;
        log[5] = 3;
        log[128..136].copy_from_slice(&1234u64.to_le_bytes());
        log[144..152].copy_from_slice(&5u64.to_le_bytes());
        log[160..168].copy_from_slice(&7u64.to_le_bytes());
        log[176..184].copy_from_slice(&9u64.to_le_bytes());
        let s = parse_smart(&log).expect("a full page");
        assert_eq!(
            s,
            Smart {
                critical_warning: 4,
                temperature_c: 41,
                available_spare: 97,
                spare_threshold: 10,
                percentage_used: 3,
                power_on_hours: 1234,
                unsafe_shutdowns: 5,
                media_errors: 7,
                error_log_entries: 9,
            }
        );
        assert_eq!(parse_smart(&log[..511]), None);
    }

    #[test]
    fn controller_names() {
        assert!(is_nvme_controller("nvme0"));
        assert!(is_nvme_controller("nvme12"));
        assert!(!is_nvme_controller("nvme0n1"));
        assert!(!is_nvme_controller("nvme"));
        assert!(!is_nvme_controller("nullb0"));
    }

    #[test]
    fn sysfs_attributes_of_a_scsi_like_disk() {
        let t = std::env::temp_dir().join(format!("zvh-{}", std::process::id()));
        let sys = t.join("block");
        let dev = sys.join("sdq").join("device");
        fs::create_dir_all(&dev).expect("mkdir");
        fs::write(dev.join("model"), "ST20000NM002H  \n").expect("write");
        fs::write(dev.join("rev"), "SN02\n").expect("write");
        fs::write(dev.join("state"), "running\n").expect("write");
        let node = t.join("sdq");
        fs::write(&node, "").expect("node");
        let h = read(&sys, &t, node.to_str().expect("utf-8"));
        assert_eq!(h.model.as_deref(), Some("ST20000NM002H"));
        assert_eq!(h.firmware.as_deref(), Some("SN02"));
        assert_eq!(h.state.as_deref(), Some("running"));
        assert_eq!((h.serial, h.smart), (None, None));
        let none = read(&sys, &t, "/nonexistent/dev");
        assert_eq!(none, DeviceHealth::default());
        fs::remove_dir_all(&t).ok();
    }
}
