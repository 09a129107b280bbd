// SPDX-License-Identifier: GPL-2.0
//! The block device of a volume or snapshot for the commands that move
//! data (`volume import`, `volume export-image`, `snapshot send`,
//! `snapshot receive`): bound (mkdir) and enabled for the command if it
//! was not (a snapshot's device is read-only), and put back as it was.

use super::volume::device_node;
use super::Ctx;
use crate::abi;
use crate::backend::{Backend, Obj};
use crate::devio::VolumeDev;
use crate::error::{Error, Failure};

/// A volume or snapshot whose device this command may have set up.
pub struct Attached {
    pub vol: Obj,
    pub node: String,
    bound_now: bool,
    enabled_now: bool,
}

/// Makes sure `name` (a volume or `VOL@SNAP`) of `pool` has a block
/// device; `what` names the operation in errors.
pub fn attach(ctx: &mut Ctx<'_>, pool: &str, name: &str, what: &str) -> Result<Attached, Error> {
    let vol = Obj::volume(pool, name);
    let mut a = Attached {
        vol: vol.clone(),
        node: String::new(),
        bound_now: false,
        enabled_now: false,
    };
    if !ctx.backend.exists(&vol) {
        ctx.mkdir(&vol)
            .map_err(|e| e.fail(format!("{what}: bind {vol}")))?;
        a.bound_now = true;
    }
    if !abi::parse_bool(&ctx.read(&vol, "enable")?) {
        if let Err(e) = ctx.write(&vol, "enable", "1") {
            let f = e.fail(format!("{what}: enable {vol}"));
            return Err(a.detach_after(ctx, f));
        }
        a.enabled_now = true;
    }
    match device_node(ctx, &vol) {
        Some(n) => a.node = n,
        None => {
            let f = Failure::new(
                what,
                format!("{vol} has no block device (its dev is empty)"),
            );
            return Err(a.detach_after(ctx, f));
        }
    }
    Ok(a)
}

/// Opens the device (the backend's reference outlives `ctx`'s borrow).
pub fn open<'b>(
    backend: &'b dyn Backend,
    a: &Attached,
    write: bool,
    what: &str,
) -> Result<Box<dyn VolumeDev + 'b>, Failure> {
    backend.open_volume(&a.node, write).map_err(|e| {
        Failure::new(
            what,
            format!("open {} ({}): {}", a.node, a.vol, crate::error::io_text(&e)),
        )
    })
}

impl Attached {
    /// Puts the device back as it was (disabled, unbound).
    pub fn detach(self, ctx: &mut Ctx<'_>) -> Result<(), Failure> {
        if self.enabled_now {
            ctx.write(&self.vol, "enable", "0")
                .map_err(|e| e.fail(format!("disable {} again", self.vol)))?;
        }
        if self.bound_now {
            ctx.rmdir(&self.vol)
                .map_err(|e| e.fail(format!("unbind {} again", self.vol)))?;
        }
        Ok(())
    }

    /// Detaches after the failure `f`, noting a failed detach.
    pub fn detach_after(self, ctx: &mut Ctx<'_>, f: Failure) -> Error {
        match self.detach(ctx) {
            Ok(()) => f.into(),
            Err(d) => f.note(format!("{}: {}", d.what, d.reason)).into(),
        }
    }

    /// Detaches at the end of an operation that failed with `f` (kept; a
    /// failed detach becomes a note of it) or succeeded (`None`: a failed
    /// detach is the failure).
    pub fn settle(self, ctx: &mut Ctx<'_>, f: Option<Failure>) -> Option<Failure> {
        match (self.detach(ctx), f) {
            (Ok(()), f) => f,
            (Err(d), Some(f)) => Some(f.note(format!("{}: {}", d.what, d.reason))),
            (Err(d), None) => Some(d),
        }
    }
}
