// SPDX-License-Identifier: GPL-2.0
//! configfs: a volume directory, `.../VOLUME/` with `size`, `enable`, `dev`
//! and `usage` exactly as in `Documentation/configfs-abi.md`.
//!
//! For now volumes live under the temporary `_ramdisk` group (see
//! `config.rs`) and store their data in the RAM test backend
//! (`membackend.rs`); when pools exist this group type moves under the pool
//! directory unchanged, with the pool as its backend.

use crate::{
    membackend::MemBackend,
    volume::{VolumeDev, BLOCK_SIZE, MAX_VOLUME_BYTES},
};
use kernel::{
    configfs, configfs_attrs,
    fmt::Write as _,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{kstrtobool_bytes, CString},
    sync::{Arc, Mutex},
};

/// State of a volume, under its mutex.
struct VolumeState {
    /// Size in bytes; 0 until written.
    size: u64,
    /// The volume's data (kept while disabled).
    backend: Arc<MemBackend>,
    /// The block device while enabled.
    dev: Option<VolumeDev<MemBackend>>,
}

/// A volume directory.
#[pin_data]
pub(crate) struct VolumeConfig {
    /// `<group>/<volume>`, for log messages.
    path: CString,
    /// Volume id (`usage`).
    id: u32,
    #[pin]
    state: Mutex<VolumeState>,
}

/// Whether `name` is a valid pool or volume name: 1-31 characters
/// `[A-Za-z0-9_.-]`.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    (1..=31).contains(&name.len())
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The initializer of the configfs group of volume `name` with id `id`
/// under group `parent`.
pub(crate) fn new_group(
    parent: &str,
    name: &CStr,
    id: u32,
) -> Result<impl PinInit<configfs::Group<VolumeConfig>, Error>> {
    let item_type = configfs_attrs! {
        container: configfs::Group<VolumeConfig>,
        data: VolumeConfig,
        attributes: [
            size: 0,
            enable: 1,
            dev: 2,
            usage: 3,
        ],
    };
    let path = CString::try_from_fmt(fmt!("{}/{}", parent, name.to_str()?))?;
    let backend = MemBackend::new()?;
    Ok(configfs::Group::new(
        name.try_into()?,
        item_type,
        try_pin_init!(VolumeConfig {
            path,
            id,
            state <- new_mutex!(VolumeState {
                size: 0,
                backend,
                dev: None,
            }),
        }),
    ))
}

impl VolumeConfig {
    fn what(&self) -> &str {
        self.path.to_str().unwrap_or("?")
    }
}

/// Parses a decimal attribute value (one trailing newline allowed).
fn parse_u64(page: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(page).ok()?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `size` (read-write): bytes, multiple of 4096, 4096 ..= 2^50; EBUSY while
/// enabled.
#[vtable]
impl configfs::AttributeOperations<0> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.state.lock().size))?;
        Ok(w.bytes_written())
    }

    fn store(this: &VolumeConfig, page: &[u8]) -> Result {
        let Some(size) = parse_u64(page) else {
            pr_err!("volume {}: size is not a decimal number\n", this.what());
            return Err(EINVAL);
        };
        if size == 0 || size % BLOCK_SIZE != 0 || size > MAX_VOLUME_BYTES {
            pr_err!(
                "volume {}: size {} is not a multiple of {} between {} and {}\n",
                this.what(),
                size,
                BLOCK_SIZE,
                BLOCK_SIZE,
                MAX_VOLUME_BYTES
            );
            return Err(EINVAL);
        }
        let mut st = this.state.lock();
        if st.dev.is_some() {
            pr_err!("volume {}: cannot change size while enabled\n", this.what());
            return Err(EBUSY);
        }
        if size < st.size {
            st.backend.truncate(size);
        }
        st.size = size;
        Ok(())
    }
}

/// `enable` (read-write): 1 creates `/dev/zvpoolN`, 0 removes it (EBUSY while
/// open); writing the current value is EBUSY.
#[vtable]
impl configfs::AttributeOperations<1> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", u8::from(this.state.lock().dev.is_some())))?;
        Ok(w.bytes_written())
    }

    fn store(this: &VolumeConfig, page: &[u8]) -> Result {
        let Ok(on) = kstrtobool_bytes(page) else {
            pr_err!("volume {}: enable takes 0 or 1\n", this.what());
            return Err(EINVAL);
        };
        let mut st = this.state.lock();
        if on == st.dev.is_some() {
            pr_err!(
                "volume {}: already {}\n",
                this.what(),
                if on { "enabled" } else { "disabled" }
            );
            return Err(EBUSY);
        }
        if on {
            if st.size == 0 {
                pr_err!("volume {}: cannot enable: size is not set\n", this.what());
                return Err(EINVAL);
            }
            let dev = VolumeDev::new(&this.path, st.size, st.backend.clone())?;
            pr_info!(
                "volume {}: enabled as /dev/{}\n",
                this.what(),
                dev.name().to_str().unwrap_or("?")
            );
            st.dev = Some(dev);
        } else if let Some(dev) = st.dev.take() {
            if let Err((dev, e)) = dev.remove() {
                pr_err!(
                    "volume {}: cannot disable: /dev/{} is open\n",
                    this.what(),
                    dev.name().to_str().unwrap_or("?")
                );
                st.dev = Some(dev);
                return Err(e);
            }
            pr_info!("volume {}: disabled\n", this.what());
        }
        Ok(())
    }
}

/// `dev` (read-only): `<name> <major>:<minor>`, or nothing when disabled.
#[vtable]
impl configfs::AttributeOperations<2> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        if let Some(dev) = &this.state.lock().dev {
            let (major, minor) = dev.devt();
            w.write_fmt(fmt!("{} {}:{}\n", dev.name().to_str()?, major, minor))?;
        }
        Ok(w.bytes_written())
    }
}

/// `usage` (read-only): `key value` lines.
#[vtable]
impl configfs::AttributeOperations<3> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let (size, blocks) = {
            let st = this.state.lock();
            (st.size, st.backend.mapped_blocks())
        };
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!(
            "id {}\nsize_bytes {}\nmapped_bytes {}\nmapped_blocks {}\n",
            this.id,
            size,
            blocks * BLOCK_SIZE,
            blocks
        ))?;
        Ok(w.bytes_written())
    }
}
