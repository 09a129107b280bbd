// SPDX-License-Identifier: GPL-2.0
//! The system calls std does not offer: `lseek` with `SEEK_DATA` /
//! `SEEK_HOLE` (the data of sparse image files), `fallocate` with
//! `FALLOC_FL_PUNCH_HOLE` (discard a range of a volume, so that an
//! incremental stream's holes free space instead of writing zeros) and the
//! NVMe admin command ioctl (a controller's SMART / health log page, for
//! `pool health`), and a netlink socket of the kernel's uevents (`pool
//! events`). They are the only `unsafe` code of zvpoolctl: plain calls into
//! the C library std links anyway, on a file descriptor the caller owns.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;
const FALLOC_FL_KEEP_SIZE: i32 = 1;
const FALLOC_FL_PUNCH_HOLE: i32 = 2;
const ENXIO: i32 = 6;

extern "C" {
    fn lseek(fd: i32, offset: i64, whence: i32) -> i64;
    fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) -> i32;
    fn ioctl(fd: i32, request: u64, arg: *mut NvmePassthru) -> i32;
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrNl, len: u32) -> i32;
}

/// `struct sockaddr_nl`.
#[repr(C)]
struct SockaddrNl {
    nl_family: u16,
    nl_pad: u16,
    nl_pid: u32,
    nl_groups: u32,
}

const AF_NETLINK: i32 = 16;
const SOCK_DGRAM: i32 = 2;
const SOCK_CLOEXEC: i32 = 0o2_000_000;
const NETLINK_KOBJECT_UEVENT: i32 = 15;
/// The multicast group the kernel sends uevents to (udev re-sends its own
/// on group 2).
const UEVENT_GROUP_KERNEL: u32 = 1;

/// A socket receiving the kernel's uevents as they are sent (what `udevadm
/// monitor --kernel` reads). Each `read` returns one event:
/// `ACTION@DEVPATH\0KEY=VALUE\0...`.
pub fn uevent_socket() -> io::Result<File> {
    // SAFETY: plain integer arguments.
    let fd = unsafe {
        socket(
            AF_NETLINK,
            SOCK_DGRAM | SOCK_CLOEXEC,
            NETLINK_KOBJECT_UEVENT,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody
    // else: the `File` owns (and closes) it from here on.
    let f = unsafe { File::from_raw_fd(fd) };
    let addr = SockaddrNl {
        nl_family: AF_NETLINK as u16,
        nl_pad: 0,
        nl_pid: 0,
        nl_groups: UEVENT_GROUP_KERNEL,
    };
    // SAFETY: `addr` is a valid `sockaddr_nl` of the length given, read
    // during the call only; the descriptor is open (owned by `f`).
    let r = unsafe {
        bind(
            f.as_raw_fd(),
            &addr,
            core::mem::size_of::<SockaddrNl>() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// `struct nvme_passthru_cmd` (linux/nvme_ioctl.h), 72 bytes.
#[repr(C)]
#[derive(Default)]
struct NvmePassthru {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
const NVME_IOCTL_ADMIN_CMD: u64 =
    (3 << 30) | ((core::mem::size_of::<NvmePassthru>() as u64) << 16) | ((b'N' as u64) << 8) | 0x41;
/// Admin opcode Get Log Page.
const NVME_ADMIN_GET_LOG_PAGE: u8 = 0x02;

fn off(v: u64) -> io::Result<i64> {
    i64::try_from(v).map_err(|_| io::Error::other("offset out of range"))
}

fn seek(f: &File, pos: u64, whence: i32) -> io::Result<Option<u64>> {
    let pos = off(pos)?;
    // SAFETY: lseek only reads its integer arguments; the descriptor is
    // open for the lifetime of `f`.
    let r = unsafe { lseek(f.as_raw_fd(), pos, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// The first byte of data at or after `pos`; `None` if only a hole
/// follows (ENXIO). Errors (EINVAL: the filesystem cannot tell) let the
/// caller treat everything as data.
pub fn seek_data(f: &File, pos: u64) -> io::Result<Option<u64>> {
    seek(f, pos, SEEK_DATA)
}

/// The first hole at or after `pos` (the end of the file is one).
pub fn seek_hole(f: &File, pos: u64) -> io::Result<Option<u64>> {
    seek(f, pos, SEEK_HOLE)
}

/// Deallocates `len` bytes at `offset` (they read as zeros afterwards);
/// on a block device the kernel turns it into write-zeroes with unmap.
pub fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    let (o, l) = (off(offset)?, off(len)?);
    // SAFETY: fallocate only reads its integer arguments; the descriptor
    // is open for the lifetime of `f`.
    let r = unsafe {
        fallocate(
            f.as_raw_fd(),
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            o,
            l,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads log page `lid` of the NVMe controller open as `f` (its character
/// device, `/dev/nvme0`) for all namespaces into `buf` (a multiple of 4
/// bytes, at most 4 KiB).
pub fn nvme_get_log(f: &File, lid: u8, buf: &mut [u8]) -> io::Result<()> {
    let len = buf.len();
    if len == 0 || !len.is_multiple_of(4) || len > 4096 {
        return Err(io::Error::other("log page length"));
    }
    let numd = (len / 4 - 1) as u32;
    let mut cmd = NvmePassthru {
        opcode: NVME_ADMIN_GET_LOG_PAGE,
        nsid: 0xffff_ffff,
        addr: buf.as_mut_ptr() as u64,
        data_len: len as u32,
        cdw10: ((numd & 0xffff) << 16) | u32::from(lid),
        cdw11: numd >> 16,
        ..NvmePassthru::default()
    };
    // SAFETY: `cmd` is a valid `nvme_passthru_cmd` for the duration of the
    // call; the kernel writes at most `data_len` bytes to `addr`, which is
    // `buf`, exclusively borrowed and that long; the descriptor is open for
    // the lifetime of `f`.
    let r = unsafe { ioctl(f.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, &mut cmd) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r > 0 {
        // An NVMe status code: the controller refused the command.
        return Err(io::Error::other(format!("NVMe status {r:#x}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nvme_admin_ioctl_number_and_layout() {
        assert_eq!(core::mem::size_of::<super::NvmePassthru>(), 72);
        assert_eq!(super::NVME_IOCTL_ADMIN_CMD, 0xc048_4e41);
    }
}
