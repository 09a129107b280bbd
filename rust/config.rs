// SPDX-License-Identifier: GPL-2.0
//! The configfs interface: `/sys/kernel/config/zvpool/`.
//!
//! See `Documentation/configfs-abi.md` for the ABI.

use kernel::{configfs, configfs_attrs, fmt::Write as _, page::PAGE_SIZE, prelude::*};

/// On-disk format version this module reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Features this build supports, one word each, as listed in `features`.
const FEATURES: &[&str] = &["zoned-members", "thin-volumes"];

/// Data of the subsystem's root directory.
#[pin_data]
pub(crate) struct Root {}

/// The `zvpool` configfs subsystem.
pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Root>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Root>,
        data: Root,
        attributes: [
            features: 0,
        ],
    };
    configfs::Subsystem::new(c"zvpool", item_type, try_pin_init!(Root {}))
}

/// `features` (read-only): the on-disk format version and feature words.
#[vtable]
impl configfs::AttributeOperations<0> for Root {
    type Data = Root;

    fn show(_this: &Root, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("format_version {}\n", FORMAT_VERSION))?;
        w.write_str("features")?;
        for f in FEATURES {
            w.write_fmt(fmt!(" {}", f))?;
        }
        w.write_str("\n")?;
        Ok(w.bytes_written())
    }
}
