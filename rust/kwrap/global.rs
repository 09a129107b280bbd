// SPDX-License-Identifier: GPL-2.0
//! The module's one global: the [`Registry`] behind a mutex. A static lock
//! must be initialised before first use: [`init_registry`] does it (from the
//! module's init), and [`registry`] refuses to lock it before that.

use crate::registry::Registry;
use core::{
    ops::{Deref, DerefMut},
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{prelude::*, sync::GlobalGuard};

kernel::sync::global_lock! {
    // SAFETY: `init` is called once, by `init_registry` (guarded by
    // `CLAIMED`), and nothing locks the mutex before `READY` says it ran.
    unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

/// Set by the one call of [`init_registry`] that initialises the mutex.
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// Set once the mutex is initialised.
static READY: AtomicBool = AtomicBool::new(false);

/// Initialises the registry's mutex (the first call; later ones do
/// nothing).
pub(crate) fn init_registry() {
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `CLAIMED` lets exactly one call get here, and no lock of the
    // mutex happens before `READY` is set below.
    unsafe { REGISTRY.init() };
    READY.store(true, Ordering::Release);
}

/// The locked registry.
pub(crate) struct RegistryGuard(GlobalGuard<REGISTRY>);

impl Deref for RegistryGuard {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.0
    }
}

impl DerefMut for RegistryGuard {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.0
    }
}

/// Locks the registry; `EAGAIN` before [`init_registry`] ran.
pub(crate) fn registry() -> Result<RegistryGuard> {
    if !READY.load(Ordering::Acquire) {
        return Err(EAGAIN);
    }
    Ok(RegistryGuard(REGISTRY.lock()))
}
