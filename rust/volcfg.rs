// SPDX-License-Identifier: GPL-2.0
//! configfs: a volume directory, `.../VOLUME/` with `size`, `enable`, `dev`,
//! `usage`, the I/O limits `riops`, `wiops`, `rbps`, `wbps` and the space
//! rules `quota_bytes`, `reservation_bytes` exactly as in
//! `Documentation/configfs-abi.md`.
//!
//! A volume directory lives under an active pool's directory and binds a
//! volume of the pool's metadata by name: an existing one (its size is read
//! back) or a new one, created in the metadata when `size` is first written.
//! Removing the directory only unbinds; deleting a volume is the pool's
//! `delete_volume` attribute.

use crate::{
    nodes::NODE_BYTES,
    pool::{ActivePool, Binding},
    poolvol::PoolVolume,
    qos::VolQos,
    volinfo::{snapshot_split, VolKind},
    volume::{VolumeDev, BLOCK_SIZE, MAX_VOLUME_BYTES},
    zvcore::qos::Knob,
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
    /// Copies of each block asked for (1, or 2: a mirrored volume); set
    /// before `size` makes the volume.
    copies: u8,
    /// Size in bytes; 0 until written.
    size: u64,
    /// Id in the pool's metadata, once the volume exists there.
    id: Option<u32>,
    /// The block device while enabled.
    dev: Option<VolumeDev<PoolVolume>>,
}

/// A volume directory.
#[pin_data]
pub(crate) struct VolumeConfig {
    /// `<pool>/<volume>`, for log messages.
    path: CString,
    /// The volume's name in the pool's metadata.
    name: CString,
    pool: Arc<ActivePool>,
    #[pin]
    state: Mutex<VolumeState>,
    /// The volume's I/O limits, shared with its disk while enabled; they
    /// last as long as the directory.
    qos: Arc<VolQos>,
    /// Marks the name bound while the directory exists (dropped last).
    _binding: Binding,
}

/// Whether `name` is a valid pool or volume name: 1-31 characters
/// `[A-Za-z0-9_.-]`.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    (1..=31).contains(&name.len())
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `name` is a valid volume directory name: a [`valid_name`], or a
/// snapshot name `VOLUME@SNAP` of at most 31 characters whose parts are
/// valid names.
pub(crate) fn valid_volume_name(name: &[u8]) -> bool {
    match snapshot_split(name) {
        Some(at) => {
            name.len() <= 31
                && name.get(..at).is_some_and(valid_name)
                && name.get(at + 1..).is_some_and(valid_name)
        }
        None => valid_name(name),
    }
}

/// The initializer of the configfs group of volume `name` of `pool`.
pub(crate) fn new_group(
    pool: &Arc<ActivePool>,
    name: &CStr,
) -> Result<impl PinInit<configfs::Group<VolumeConfig>, Error>> {
    let item_type = configfs_attrs! {
        container: configfs::Group<VolumeConfig>,
        data: VolumeConfig,
        attributes: [
            size: 0,
            enable: 1,
            dev: 2,
            usage: 3,
            riops: 4,
            wiops: 5,
            rbps: 6,
            wbps: 7,
            quota_bytes: 8,
            reservation_bytes: 9,
            copies: 10,
        ],
    };
    let path = CString::try_from_fmt(fmt!("{}/{}", pool.name.to_str()?, name.to_str()?))?;
    let vname: CString = name.try_into()?;
    let pool = pool.clone();
    let id = pool.find_volume(name.to_bytes());
    if id.is_none() && snapshot_split(name.to_bytes()).is_some() {
        pr_err!(
            "volume {}: no such snapshot (snapshots are made by the pool's snapshot attribute)\n",
            path.to_str()?
        );
        return Err(ENOENT);
    }
    let qos = VolQos::new()?;
    let binding = pool.bind(name)?;
    let size = id.and_then(|id| pool.vol_blocks(id)).unwrap_or(0) * BLOCK_SIZE;
    if let Some(id) = id {
        pr_info!(
            "volume {}: bound to volume {} ({} bytes)\n",
            path.to_str()?,
            id,
            size
        );
    }
    Ok(configfs::Group::new(
        name.try_into()?,
        item_type,
        try_pin_init!(VolumeConfig {
            path,
            name: vname,
            pool,
            state <- new_mutex!(VolumeState {
                copies: 1,
                size,
                id,
                dev: None
            }),
            qos,
            _binding: binding,
        }),
    ))
}

impl VolumeConfig {
    fn what(&self) -> &str {
        self.path.to_str().unwrap_or("?")
    }
}

/// Parses a decimal attribute value (one trailing newline allowed).
pub(crate) fn parse_u64(page: &[u8]) -> Option<u64> {
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
        let blocks = size / BLOCK_SIZE;
        if let Some(id) = st.id {
            if this.pool.vol_info(id).map(|i| i.kind) == Some(VolKind::Snapshot) {
                pr_err!("volume {}: a snapshot cannot be resized\n", this.what());
                return Err(EROFS);
            }
        }
        if let (Some(id), Some(dev)) = (st.id, &st.dev) {
            // Online: the disk follows (see `VolumeDev::resize`).
            let old = st.size;
            dev.resize(old, size, || this.pool.vol_resize(id, blocks))
                .inspect_err(|e| {
                    pr_err!("volume {}: cannot resize: {:?}\n", this.what(), e);
                })?;
            pr_info!(
                "volume {}: resized online from {} to {} bytes\n",
                this.what(),
                old,
                size
            );
            st.size = size;
            return Ok(());
        }
        match st.id {
            None => {
                let id = this
                    .pool
                    .vol_create(this.name.to_bytes(), blocks, st.copies)
                    .inspect_err(|e| {
                        pr_err!("volume {}: cannot create: {:?}\n", this.what(), e);
                    })?;
                let what = if st.copies == 2 { ", mirrored" } else { "" };
                pr_info!(
                    "volume {}: created as volume {} ({} bytes{})\n",
                    this.what(),
                    id,
                    size,
                    what
                );
                st.id = Some(id);
            }
            Some(id) => this.pool.vol_resize(id, blocks).inspect_err(|e| {
                pr_err!("volume {}: cannot resize: {:?}\n", this.what(), e);
            })?,
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
            let Some(id) = st.id.filter(|_| st.size != 0) else {
                pr_err!("volume {}: cannot enable: size is not set\n", this.what());
                return Err(EINVAL);
            };
            let vname: CString = (&*this.name).try_into()?;
            let backend = Arc::new(
                PoolVolume::new(this.pool.clone(), id, vname, this.qos.clone()),
                GFP_KERNEL,
            )?;
            let dev = VolumeDev::new(&this.path, st.size, backend)?;
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
        let (size, id) = {
            let st = this.state.lock();
            (st.size, st.id)
        };
        let info = id.and_then(|id| this.pool.vol_info(id));
        let (nodes, excl_nodes) = id.map_or((0, 0), |id| this.pool.vol_table_nodes(id));
        let blocks = info.map_or(0, |i| i.mapped);
        let rules = id.map_or((0, 0), |id| this.pool.space_rules(id));
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!(
            "id {}\nsize_bytes {}\nmapped_bytes {}\nmapped_blocks {}\nkind {}\norigin ",
            id.unwrap_or(0),
            size,
            blocks * BLOCK_SIZE,
            blocks,
            info.map_or(VolKind::Volume, |i| i.kind).word()
        ))?;
        match info.and_then(|i| i.origin) {
            Some(o) => this.pool.with_name(o, |n| -> Result {
                for b in n.unwrap_or(b"-") {
                    w.write_char(char::from(*b))?;
                }
                Ok(())
            })?,
            None => w.write_str("-")?,
        }
        w.write_fmt(fmt!(
            "\nexclusive_bytes {}\nshared_bytes {}\ntable_bytes {}\ntable_exclusive_bytes {}\nqos_delayed {}\nqos_charged {}\nquota_bytes {}\nreservation_bytes {}\n",
            info.map_or(0, |i| i.exclusive) * BLOCK_SIZE,
            info.map_or(0, |i| i.shared()) * BLOCK_SIZE,
            nodes * NODE_BYTES,
            excl_nodes * NODE_BYTES,
            this.qos.delayed(),
            this.qos.charged(),
            rules.0,
            rules.1
        ))?;
        Ok(w.bytes_written())
    }
}

/// Shows limit `knob` of the volume (`riops`, ...): a decimal, 0 for none.
fn show_limit(this: &VolumeConfig, knob: Knob, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
    let mut w = kernel::str::Formatter::new(page);
    w.write_fmt(fmt!("{}\n", this.qos.get(knob)))?;
    Ok(w.bytes_written())
}

/// Sets limit `knob`: a decimal (I/Os or bytes per second), 0 for none;
/// online, the next request sees it.
fn store_limit(this: &VolumeConfig, knob: Knob, page: &[u8]) -> Result {
    let Some(v) = parse_u64(page) else {
        pr_err!(
            "volume {}: {} is not a decimal number (0 = unlimited)\n",
            this.what(),
            knob.name()
        );
        return Err(EINVAL);
    };
    this.qos.set(knob, v);
    pr_info!("volume {}: {} limit {}\n", this.what(), knob.name(), v);
    Ok(())
}

/// The limit attributes `riops`, `wiops`, `rbps`, `wbps` (read-write):
/// I/Os or bytes per second of reads or writes, 0 = unlimited (default).
macro_rules! limit_attr {
    ($n:literal, $knob:expr) => {
        #[vtable]
        impl configfs::AttributeOperations<$n> for VolumeConfig {
            type Data = VolumeConfig;

            fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                show_limit(this, $knob, page)
            }

            fn store(this: &VolumeConfig, page: &[u8]) -> Result {
                store_limit(this, $knob, page)
            }
        }
    };
}

limit_attr!(4, Knob::Riops);
limit_attr!(5, Knob::Wiops);
limit_attr!(6, Knob::Rbps);
limit_attr!(7, Knob::Wbps);

/// Shows space rule `reserve` (false: the quota) of the volume, in bytes.
fn show_rule(this: &VolumeConfig, reserve: bool, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
    let id = this.state.lock().id;
    let (quota, rsv) = id.map_or((0, 0), |id| this.pool.space_rules(id));
    let mut w = kernel::str::Formatter::new(page);
    w.write_fmt(fmt!("{}\n", if reserve { rsv } else { quota }))?;
    Ok(w.bytes_written())
}

/// Sets space rule `reserve` (false: the quota) of the volume: bytes, 0 for
/// none; online. The volume must exist (`size` written).
fn store_rule(this: &VolumeConfig, reserve: bool, page: &[u8]) -> Result {
    let attr = if reserve {
        "reservation_bytes"
    } else {
        "quota_bytes"
    };
    let Some(v) = parse_u64(page) else {
        pr_err!(
            "volume {}: {} is not a decimal number of bytes (0 = none)\n",
            this.what(),
            attr
        );
        return Err(EINVAL);
    };
    let Some(id) = this.state.lock().id else {
        pr_err!("volume {}: write size before {}\n", this.what(), attr);
        return Err(EINVAL);
    };
    let (quota, rsv) = this.pool.space_rules(id);
    let (quota, rsv) = if reserve { (quota, v) } else { (v, rsv) };
    this.pool.set_space_rules(this.what(), id, quota, rsv)
}

/// `quota_bytes` (read-write): the most the volume may map (what it refers
/// to, shared with its snapshots or not); 0 = none (default).
#[vtable]
impl configfs::AttributeOperations<8> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_rule(this, false, page)
    }

    fn store(this: &VolumeConfig, page: &[u8]) -> Result {
        store_rule(this, false, page)
    }
}

/// `reservation_bytes` (read-write): space kept for the volume that no
/// other volume may take; 0 = none (default).
#[vtable]
impl configfs::AttributeOperations<9> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_rule(this, true, page)
    }

    fn store(this: &VolumeConfig, page: &[u8]) -> Result {
        store_rule(this, true, page)
    }
}

/// `copies` (read-write): copies of each block, 1 (default) or 2 (a
/// mirrored volume: the two on disjoint halves of the pool's members, see
/// Documentation/design-space.md, "Mirrored volumes"). Set before `size`,
/// which makes the volume; EBUSY after.
#[vtable]
impl configfs::AttributeOperations<10> for VolumeConfig {
    type Data = VolumeConfig;

    fn show(this: &VolumeConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let st = this.state.lock();
        let n = match st.id {
            Some(id) => this.pool.vol_copies(id),
            None => st.copies,
        };
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", n))?;
        Ok(w.bytes_written())
    }

    fn store(this: &VolumeConfig, page: &[u8]) -> Result {
        let n = match parse_u64(page) {
            Some(n @ 1..=2) => n as u8,
            _ => {
                pr_err!("volume {}: copies is 1 or 2\n", this.what());
                return Err(EINVAL);
            }
        };
        let mut st = this.state.lock();
        if st.id.is_some() {
            pr_err!(
                "volume {}: copies is set before the size (the volume exists)\n",
                this.what()
            );
            return Err(EBUSY);
        }
        st.copies = n;
        Ok(())
    }
}
