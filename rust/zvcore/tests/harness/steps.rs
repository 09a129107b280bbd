// SPDX-License-Identifier: GPL-2.0
//! Populated worlds and the random steps that drive them.

use super::*;

impl World {
    /// A formatted world with three volumes (~40% of the space), after
    /// `ops` random steps, everything completed and committed.
    pub fn populated(seed: u64, ops: u64) -> World {
        Self::populated_with(seed, ops, 0)
    }

    /// [`Self::populated`] with node allocations failing at write
    /// completion, one in `nomem_one_in`.
    pub fn populated_with(seed: u64, ops: u64, nomem_one_in: u64) -> World {
        let mut w = World::new(seed);
        w.nomem_one_in = nomem_one_in;
        w.populate(ops);
        w
    }

    /// [`Self::populated`] on members `geoms`.
    pub fn populated_on(seed: u64, ops: u64, geoms: Vec<DeviceGeometry>) -> World {
        let mut w = World::with_geoms(Rng::new(seed), seed, geoms);
        w.populate(ops);
        w
    }

    /// Formats, creates three volumes filling 30-75 % of the pool, and runs
    /// `ops` random operations.
    pub fn populate(&mut self, ops: u64) {
        let w = self;
        w.format();
        let cap = w.data_capacity();
        // Space used by volumes: 30-75% of the data capacity (GC pressure).
        w.fill_pct = w.rng.range(30, 75);
        let f = w.fill_pct;
        let sizes = [cap * f * 3 / 800, cap * f * 2 / 800, cap * f * 3 / 800];
        for s in sizes {
            let id = w.next_vol;
            w.next_vol += 1;
            w.pool().vol_create(id, b"v", s, 0).expect("vol_create");
            w.vols.push(VolModel::new(id, s));
        }
        while !w.commit(false) {}
        for _ in 0..ops {
            w.step();
        }
        w.settle();
    }

    /// A random step that does not check contents (no reads, no crashes).
    pub fn step_blind(&mut self) {
        self.st.ops += 1;
        match self.rng.below(100) {
            0..=49 => self.do_write(),
            50..=59 => self.complete_some(),
            60..=69 => self.do_discard(),
            70..=84 => {
                self.complete_some();
                self.commit(false);
            }
            85..=94 => {
                self.gc_batch();
            }
            _ => self.maintenance(),
        }
    }

    pub fn step(&mut self) {
        self.st.ops += 1;
        let r = self.rng.below(1000);
        match r {
            0..=449 => self.do_write(),
            450..=549 => self.complete_some(),
            550..=699 => self.read_check(),
            700..=759 => self.do_discard(),
            760..=849 => {
                self.complete_some();
                self.commit(true);
            }
            850..=929 => {
                if self.rng.pct(10) {
                    self.maybe_repair();
                }
                if self.pool().gc_urgency() != zvcore::gc::Urgency::Idle || self.rng.pct(20) {
                    self.gc_batch();
                }
            }
            930..=969 => self.maintenance(),
            970 => self.maybe_add_member(),
            971..=972 => self.maybe_evacuate(),
            973..=993 => self.vol_op(),
            _ => {
                if self.rng.pct(60) {
                    // Flush first sometimes, so that crashes hit committed state too.
                    self.complete_some();
                }
                self.crash_and_recover();
            }
        }
        if self.st.ops.is_multiple_of(997) {
            self.run_verify("periodic");
        }
    }
}
