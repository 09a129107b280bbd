// SPDX-License-Identifier: GPL-2.0
//! Power cuts and recovery of the world's pool, and pools adopted from
//! unknown metadata.

use super::*;

impl World {
    pub fn crash_and_recover(&mut self) {
        let copies = self.pool.as_ref().is_some_and(|p| {
            let sb = p.superblock();
            sb.incompat & INCOMPAT_CHECKPOINT_COPIES != 0
                && sb.ro_compat & RO_COMPAT_JOURNAL_COPIES != 0
                && !p.member_pending()
        });
        let members = self.pool.as_ref().map_or(0, |p| p.geom().nr_devices());
        self.crash();
        self.choose_missing(copies, members);
        self.recover_pool();
    }

    /// With `degraded_pct`: gives a missing member back (half the time),
    /// or takes a random one of `members` away from a pool keeping two
    /// copies of its metadata (`copies`) for the next assemblies, once the
    /// pool has two copies of all of it again (a full checkpoint with every
    /// member since the last one came back: losing another member before
    /// is a double fault, which recovery reports as damage).
    fn choose_missing(&mut self, copies: bool, members: u16) {
        if self.degraded_pct == 0 {
            return;
        }
        if self.missing != 0 {
            if self.rng.pct(50) {
                self.missing = 0;
                self.redundant = false;
            }
            return;
        }
        if copies && self.redundant && members >= 2 && self.rng.pct(self.degraded_pct) {
            self.missing = (1 << self.rng.below(u64::from(members))) & !self.removed;
            self.redundant = false;
        }
    }

    /// Every mirrored volume reads the same versions through its two
    /// tables.
    pub fn check_copies_agree(&mut self, when: &str) {
        let pairs: Vec<(u32, u32, u64)> = self
            .vols
            .iter()
            .filter_map(|v| {
                let c = self.pool_ref().copy_of(v.id)?;
                Some((v.id, c, v.blocks.len() as u64))
            })
            .collect();
        for (v, c, size) in pairs {
            let a = self
                .read_range(v, 0, size)
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            let b = self
                .read_range(c, 0, size)
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            if let Some(l) = (0..a.len()).find(|&l| a[l] != b[l]) {
                panic!(
                    "{when}: mirrored volume {v} lba {l}: version {} but {} in its copy",
                    a[l], b[l]
                );
            }
        }
    }

    /// A power cut: the engine is gone, each device loses what it had not
    /// made durable.
    pub fn crash(&mut self) {
        self.st.crashes += 1;
        if let Some(p) = &self.pool {
            if p.stats().checkpoints == 0 && p.stats().journal_blocks > 0 {
                // The journal went on after the last assembly, and no
                // checkpoint came since.
                self.st.resumed_crashes += 1;
            }
            let s = p.stats();
            if self.chain_resumed && s.delta_checkpoints > 0 && s.delta_checkpoints == s.checkpoints
            {
                // Only deltas since an assembly that kept the chain.
                self.st.resumed_delta_crashes += 1;
            }
            self.st.log_switches += p.stats().log_switches;
            if self.interval > 0 {
                self.st.short_log_switches += p.stats().log_switches;
            }
        }
        self.inflight.clear();
        self.deferred.clear();
        self.resets.clear();
        self.pool = None;
        let mut rng = self.rng.clone();
        for d in self.devs.iter_mut() {
            d.crash(&mut rng);
        }
        self.rng = rng;
    }

    /// Assembles the pool from the world's devices, given in a random
    /// order: the engine, the assembly report, the zones to finish and the
    /// order.
    #[allow(clippy::type_complexity)]
    pub fn try_recover(
        &mut self,
    ) -> Result<(P, zvcore::recovery::Assembly, Vec<u32>, Vec<usize>), Error> {
        // Present the devices in a random order.
        let n = self.devs.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        // As the devices report themselves: the pool's metadata zones come
        // from its superblock. A missing (or removed) member's device is
        // not given.
        let missing = self.missing | self.removed;
        let geoms: Vec<DeviceGeometry> = order
            .iter()
            .map(|&i| {
                if missing & (1 << i) != 0 {
                    DeviceGeometry::ABSENT
                } else {
                    DeviceGeometry {
                        meta_zones: META_ZONES_PER_DEV,
                        ..self.geoms[i]
                    }
                }
            })
            .collect();
        let mut cfg = engine_config(n as u16);
        cfg.use_append = self.rng.pct(70);
        // Half the time placement by lifetime, which the default applies
        // only to members larger than the model's.
        if self.rng.pct(50) {
            cfg.separate_min_zones = 0;
        }
        // Half the time GC scans a node or two per call (the kernel's 64
        // exceed the model's tables): scans that resume across calls.
        if self.rng.pct(50) {
            cfg.gc_scan_nodes = 1 + self.rng.below(2) as u32;
        }
        let mut to_finish = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = {
            let mut rd = Reader {
                devs: &self.devs,
                order: &order,
                absent: missing,
            };
            recover(
                geoms,
                &mut rd,
                cfg,
                storage_with(&self.geoms, self.vol_slots, self.nodes),
                &mut scratch,
                &mut |z| to_finish.push(z),
                None,
            )
        };
        self.scratch = scratch;
        r.map(|(p, a)| (p, a, to_finish, order))
    }

    pub fn recover_pool(&mut self) {
        // A device being added when the power went, still without the
        // pool's superblock, is not one of its devices (a scan would not
        // find it).
        while self.devs.len() > 1 && !self.has_pool_sb(self.devs.len() - 1) {
            self.drop_last_device();
        }
        let n = self.devs.len();
        let (pool, asm, to_finish, order) = self.try_recover().unwrap_or_else(|e| {
            panic!(
                "recovery failed: {e:?} (missing members {:#b})",
                self.missing
            )
        });
        // A crash (any unflushed write lost, commits torn anywhere) is never
        // damage: only a torn tail, which assembles without refusal.
        assert_eq!(
            asm.damage, None,
            "damage reported after a crash (missing members {:#b})",
            self.missing
        );
        assert!(asm.commit_blocks, "new pools write commit groups");
        self.st.torn_blocks += asm.torn_blocks;
        if asm.journal_resumed {
            self.st.resumed += 1;
        }
        assert!(
            asm.journal_resumed || !asm.chain_resumed,
            "the chain went on without the journal"
        );
        assert_eq!(
            asm.kept_why.is_none(),
            asm.chain_resumed,
            "a reason ({:?}) exactly when the chain does not go on",
            asm.kept_why
        );
        if asm.chain_resumed {
            self.st.chain_resumed += 1;
        }
        if let Some(why) = asm.kept_why {
            *self.st.kept_why.entry(why).or_default() += 1;
        }
        let g = pool.geom();
        if !(0..g.nr_zones()).any(|z| g.zone(z).is_some_and(|zg| zg.conventional && !zg.meta)) {
            self.st.seq_assemblies += 1;
        }
        self.chain_resumed = asm.chain_resumed;
        self.kept_why = asm.kept_why;
        self.resumes.push(asm.journal_resumed);
        assert_eq!(
            asm.missing, self.missing,
            "members assembled without a device"
        );
        if asm.missing != 0 {
            self.st.degraded += 1;
        }
        for m in 0..n {
            if (self.missing | self.removed) & (1 << m) != 0 {
                assert_eq!(asm.dev_of_member[m], MISSING, "missing member {m}");
            } else {
                assert_eq!(order[asm.dev_of_member[m] as usize], m, "member mapping");
            }
        }
        self.st.replayed += asm.replayed_blocks;
        self.st.deltas_loaded += u64::from(asm.delta_checkpoints);
        self.st.volume_deltas_loaded += u64::from(asm.volume_deltas);
        self.st.delta_grows_loaded += u64::from(asm.delta_grows);
        self.seen_deltas = 0;
        self.seen_volume_deltas = 0;
        self.seen_delta_copies = 0;
        self.seen_delta_grows = 0;
        if asm.fell_back {
            self.st.fallbacks += 1;
        }
        for z in to_finish {
            let (d, local) = self.zone_loc(z);
            assert!(
                (self.missing | self.removed) & (1 << d) == 0,
                "zone {z} of a missing or removed member to finish"
            );
            self.devs[d]
                .finish(local)
                .unwrap_or_else(|e| panic!("finish after recovery {z}: {e:?}"));
        }
        let mut pool = pool;
        // What the driver does after every assembly.
        pool.resume_policies();
        pool.set_checkpoint_interval(self.interval);
        self.pool = Some(pool);
        self.run_verify("after recovery");
        // An assembly without a member, or the first one with it back, may
        // show a state a later assembly with other members does not (a
        // commit torn by the crash, complete on one member only): until its
        // first checkpoint makes its state durable (the kernel writes it
        // before any volume is used), the versions allowed before it stay
        // allowed.
        let unsettled = self.missing != 0 || self.prev_missing != 0;
        self.prev_missing = self.missing;
        let mut pending = std::collections::HashMap::new();
        // Check every block against the model.
        let ids: Vec<(u32, u64)> = self
            .vols
            .iter()
            .map(|v| (v.id, v.blocks.len() as u64))
            .collect();
        for (id, size) in ids {
            let got = self
                .read_range(id, 0, size)
                .unwrap_or_else(|e| panic!("after recovery: {e}"));
            let v = self.vols.iter_mut().find(|v| v.id == id).unwrap();
            for (lba, ver) in got.into_iter().enumerate() {
                let b = &mut v.blocks[lba];
                let before = self.unsettled.get(&(id, lba as u64));
                let ok = ver == b.durable
                    || b.hist.iter().any(|(_, h)| *h == ver)
                    || before.is_some_and(|c: &Vec<u64>| c.contains(&ver));
                assert!(
                    ok,
                    "after recovery vol {id} lba {lba}: read version {ver}, durable {} candidates {:?}, from before an unsettled assembly {before:?}",
                    b.durable,
                    b.hist.iter().map(|h| h.1).collect::<Vec<_>>()
                );
                if unsettled {
                    let mut c: Vec<u64> = before.cloned().unwrap_or_default();
                    c.push(b.durable);
                    c.extend(b.hist.iter().map(|h| h.1));
                    c.sort_unstable();
                    c.dedup();
                    pending.insert((id, lba as u64), c);
                }
                *b = BlockModel {
                    cur: ver,
                    durable: ver,
                    hist: Vec::new(),
                };
            }
        }
        // Both copies of a mirrored volume were mapped in one call, hence
        // one commit: they agree (unless a table update ran out of nodes,
        // which maps one table's extents only until the write again).
        if self.nomem_one_in == 0 {
            self.check_copies_agree("after recovery");
        }
        // Volumes the pool has but the model does not (or vice versa) would
        // be a bug: volume operations are committed at once.
        let pv: Vec<u32> = self
            .pool()
            .volumes()
            .iter()
            .filter(|v| v.table.is_some())
            .map(|v| v.id)
            .collect();
        assert_eq!(pv.len(), self.vols.len(), "volume set after recovery");
        for v in &self.vols {
            assert_eq!(
                self.pool_ref().space_rules(v.id),
                Some(v.rules),
                "space rules of volume {} after recovery",
                v.id
            );
        }
        self.dirty.clear();
        self.unsettled = pending;
        // As the kernel: a checkpoint at once when the state assembled has
        // one copy somewhere (a member missing, journal blocks replayed from
        // one copy). Until a full one with every member, losing a member
        // would be a double fault.
        self.checkpoint_first = self.missing != 0 || asm.single_copy_blocks > 0;
        self.redundant = false;
        // The engine needs a checkpoint before journalling again.
        while !self.commit(true) {}
        // Its state is durable now.
        self.unsettled.clear();
    }

    /// Like [`Self::adopt`] without any commit (a read-only or rewound
    /// pool the caller inspects first).
    pub fn adopt_raw(&mut self, pool: P) {
        self.pool = Some(pool);
        let p = self.pool.take().unwrap();
        self.adopt_model(&p);
        self.pool = Some(p);
    }

    /// Takes over a pool assembled from unknown (e.g. corrupted) metadata:
    /// the model gets its volumes with unknown contents. Writes the
    /// post-recovery checkpoint.
    pub fn adopt(&mut self, pool: P) {
        self.adopt_model(&pool);
        self.pool = Some(pool);
        while !self.commit(false) {}
    }

    fn adopt_model(&mut self, pool: &P) {
        self.blind = true;
        self.inflight.clear();
        self.deferred.clear();
        self.resets.clear();
        self.dirty.clear();
        self.vols = pool
            .volumes()
            .iter()
            .filter_map(|v| {
                v.table.map(|t| VolModel {
                    id: v.id,
                    blocks: vec![BlockModel::default(); t.size().min(1 << 20) as usize],
                    ro: v.read_only(),
                    origin: v.origin,
                    rules: SpaceRules {
                        quota: v.quota,
                        reserve: v.reserve,
                    },
                })
            })
            .collect();
        self.next_vol = self
            .vols
            .iter()
            .map(|v| v.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
    }
}
