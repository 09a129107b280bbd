// SPDX-License-Identifier: GPL-2.0
//! The node store of the engine in tests, with allocation-failure
//! injection, and the engine's types over it.

use super::*;

thread_local! {
    /// Allocation-failure injection (the kernel's `fail_node_alloc`): while
    /// non-zero, one node allocation in N fails, pseudo-randomly.
    pub(super) static FAIL_ONE_IN: Cell<u64> = const { Cell::new(0) };
    static FAIL_STATE: Cell<u64> = const { Cell::new(0x5eed) };
}

/// Whether this allocation is failed by the injection.
fn alloc_injected() -> bool {
    let n = FAIL_ONE_IN.get();
    if n == 0 {
        return false;
    }
    let mut r = Rng::new(FAIL_STATE.get());
    let v = r.next_u64();
    FAIL_STATE.set(r.0);
    v.is_multiple_of(n)
}

/// The tests' node store: the host store, with allocations failing while
/// the injection above is on.
pub type Store = zvcore::VecStore;

/// A store of at most `limit` nodes, failing allocations on injection.
pub fn store(limit: usize) -> Store {
    let mut s = Store::new(limit);
    s.fail = Some(alloc_injected);
    s
}

/// The engine's storage in tests.
pub type St = PoolStorage<
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    Store,
    Vec<DevState>,
    Box<Superblock>,
>;

pub type P = Pool<
    Vec<DeviceGeometry>,
    Vec<ZoneInfo>,
    Vec<u64>,
    Vec<VolEntry>,
    Vec<Record>,
    Store,
    Vec<DevState>,
    Box<Superblock>,
>;
