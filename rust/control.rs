// SPDX-License-Identifier: GPL-2.0
//! The control device `/dev/zvpool-control`: what does not fit configfs's
//! one page per attribute. Write one command line, then read its answer
//! from offset 0 to end of file (each write replaces the answer and
//! rewinds the file):
//!
//! - `volumes POOL`: every volume, snapshot and clone of active pool POOL,
//!   one line each in the format of the pool's `volumes` attribute, with no
//!   length limit;
//! - `pools`: the names of the active pools, one a line;
//! - `diff POOL VOL@SNAP [VOL@BASE]`: the extents of snapshot VOL@SNAP that
//!   differ from snapshot VOL@BASE (or all it maps): `size BYTES`, then
//!   `map OFFSET LENGTH` / `unmap OFFSET LENGTH` lines in bytes
//!   (`ActivePool::diff_listing`; EINVAL if one is not a snapshot).
//!
//! Errors: EINVAL (unknown or malformed command), ENOENT (no active pool of
//! that name), ENOMEM; each with one `zvpool:` line in the kernel log.

use crate::registry;
use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_mutex,
    prelude::*,
    sync::Mutex,
};

/// Longest command line accepted.
const COMMAND_MAX: usize = 128;

/// The device's registration options.
pub(crate) fn options() -> MiscDeviceOptions {
    MiscDeviceOptions {
        name: c"zvpool-control",
    }
}

/// One open file of the control device.
#[pin_data]
pub(crate) struct Control {
    /// The answer to the last command.
    #[pin]
    answer: Mutex<KVVec<u8>>,
}

#[vtable]
impl MiscDevice for Control {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Control {
                answer <- new_mutex!(KVVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let me = kiocb.file();
        let answer = me.answer.lock();
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), &answer)
    }

    fn write_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let len = iov.len();
        if len > COMMAND_MAX {
            pr_err!("control: command longer than {} bytes\n", COMMAND_MAX);
            return Err(EINVAL);
        }
        let mut line = [0u8; COMMAND_MAX];
        let n = iov.copy_from_iter(&mut line);
        let cmd = line.get(..n).unwrap_or(&[]);
        let mut out = KVVec::new();
        run(cmd.trim_ascii(), &mut out)?;
        *kiocb.file().answer.lock() = out;
        // The answer is read from its start.
        *kiocb.ki_pos_mut() = 0;
        Ok(n)
    }
}

/// Runs command `cmd`, writing its answer into `out`.
fn run(cmd: &[u8], out: &mut KVVec<u8>) -> Result {
    let mut words = cmd
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(b"volumes"), Some(pool), None) => {
            let Some(p) = registry::find_pool(pool) else {
                pr_err!("control: no active pool '{}'\n", crate::config::Shown(pool));
                return Err(ENOENT);
            };
            p.volumes_listing(out)
        }
        (Some(b"diff"), Some(pool), Some(snap)) => {
            let base = words.next();
            if words.next().is_some() {
                pr_err!("control: diff takes POOL VOL@SNAP [VOL@BASE]\n");
                return Err(EINVAL);
            }
            let Some(p) = registry::find_pool(pool) else {
                pr_err!("control: no active pool '{}'\n", crate::config::Shown(pool));
                return Err(ENOENT);
            };
            p.diff_listing(snap, base, out).inspect_err(|e| {
                pr_err!(
                    "control: diff of '{}' in pool '{}': {:?} (both must be snapshots)\n",
                    crate::config::Shown(snap),
                    crate::config::Shown(pool),
                    e
                );
            })
        }
        (Some(b"pools"), None, None) => registry::pool_names(|name| {
            out.extend_from_slice(name.to_bytes(), GFP_KERNEL)?;
            out.push(b'\n', GFP_KERNEL)?;
            Ok(())
        }),
        _ => {
            pr_err!(
                "control: unknown command '{}' (volumes POOL, pools, diff POOL SNAP [BASE])\n",
                crate::config::Shown(cmd)
            );
            Err(EINVAL)
        }
    }
}
