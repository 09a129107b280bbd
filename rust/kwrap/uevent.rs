// SPDX-License-Identifier: GPL-2.0
//! Pool events as uevents: `KOBJ_CHANGE` on the control device
//! (`/dev/zvpool-control`), the one device a pool has before any volume is
//! bound, with `ZVPOOL_*` variables (udev rules and `zvpoolctl` match on
//! them).
//!
//! The control device is published in the module's registry
//! ([`super::global`]) by [`EventDevice`] once registered, and withdrawn
//! under the registry's lock before it is deregistered: an event is sent
//! with that lock held, so it never reaches a device that is going away.

use super::global::registry;
use core::ptr::NonNull;
use kernel::{
    bindings,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    str::CStr,
};

/// Most variables an event carries.
pub(crate) const MAX_VARS: usize = 8;

/// Where events go: the control device while it is registered.
///
/// # Invariants
///
/// When `Some`, the pointer is the `this_device` of the registered control
/// device; only [`EventDevice`] sets it (after registration) and clears it
/// (before deregistration), both under the registry's lock, and it is only
/// read under that lock.
pub(crate) struct EventSlot(Option<NonNull<bindings::device>>);

// SAFETY: the pointer is only used under the registry's mutex (type
// invariant), from any thread.
unsafe impl Send for EventSlot {}

impl EventSlot {
    /// No device (before registration, after deregistration).
    pub(crate) const fn empty() -> Self {
        Self(None)
    }

    /// Sends `KOBJ_CHANGE` with `vars` (`KEY=value` strings). Nothing when
    /// there is no device. Sleeps (allocates); process context.
    pub(crate) fn change(&self, vars: &[&CStr]) -> Result {
        let Some(dev) = self.0 else {
            return Ok(());
        };
        let mut envp = [core::ptr::null_mut::<kernel::ffi::c_char>(); MAX_VARS + 1];
        if vars.len() > MAX_VARS {
            return Err(EINVAL);
        }
        for (slot, v) in envp.iter_mut().zip(vars) {
            *slot = v.as_char_ptr().cast_mut();
        }
        // `envp`: NUL-terminated strings that outlive the call, then NULL.
        // SAFETY: `dev` is the registered control device (type invariant,
        // registry lock held through `&self`); `envp` as above, only read.
        let r = unsafe {
            bindings::kobject_uevent_env(
                &raw mut (*dev.as_ptr()).kobj,
                bindings::kobject_action_KOBJ_CHANGE,
                envp.as_mut_ptr(),
            )
        };
        kernel::error::to_result(r)
    }
}

/// The control device's registration, publishing the device for events.
#[pin_data(PinnedDrop)]
pub(crate) struct EventDevice<T: MiscDevice> {
    #[pin]
    reg: MiscDeviceRegistration<T>,
}

impl<T: MiscDevice> EventDevice<T> {
    /// Registers the misc device `opts` and publishes it for events.
    pub(crate) fn register(opts: MiscDeviceOptions) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            reg <- MiscDeviceRegistration::register(opts),
        })
        .pin_chain(|this| {
            let raw = this.reg.as_raw();
            // SAFETY: `raw` is the registered misc device (just initialised
            // and pinned in `this`); `misc_register` set `this_device`.
            let dev = NonNull::new(unsafe { (*raw).this_device }).ok_or(EINVAL)?;
            // INVARIANT: registered now; withdrawn in `drop` before the
            // registration goes.
            registry()?.events = EventSlot(Some(dev));
            Ok(())
        })
    }
}

#[pinned_drop]
impl<T: MiscDevice> PinnedDrop for EventDevice<T> {
    fn drop(self: Pin<&mut Self>) {
        // Withdrawn before `reg` (a field) deregisters the device.
        if let Ok(mut g) = registry() {
            g.events = EventSlot::empty();
        }
    }
}
