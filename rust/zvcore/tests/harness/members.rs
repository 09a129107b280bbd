// SPDX-License-Identifier: GPL-2.0
//! Members added to the world's running pool (`Pool::member_add`).

use super::*;
use zvcore::format::policy::Placement;
use zvcore::pool::Grown;

impl World {
    /// Adds a new empty simulated device of geometry `g` as a member (with
    /// the pool's metadata zones). On the engine's refusal nothing changed,
    /// in the pool or in the world.
    pub fn add_member(&mut self, g: DeviceGeometry) -> zvcore::error::Result<()> {
        let g = DeviceGeometry {
            meta_zones: self.pool_ref().superblock().meta_zones(),
            ..g
        };
        let n = self.geoms.len();
        let mut geoms = self.geoms.clone();
        geoms.push(g);
        let nz: u32 = geoms.iter().map(|g| g.nr_zones).sum();
        let grown = Grown {
            geoms: geoms.clone(),
            zones: vec![ZoneInfo::default(); nz as usize],
            zone_epochs: vec![0; nz as usize],
            devs: vec![DevState::EMPTY; n + 1],
        };
        let old = self.pool().member_add(member_uuid(n), grown)?;
        assert_eq!(old.geoms.len(), n, "the storage given up");
        let last = self.geoms[n - 1];
        self.bases
            .push(self.bases[n - 1] + u64::from(last.nr_zones) * last.zone_blocks);
        self.zone_first.push(self.zone_first[n - 1] + last.nr_zones);
        self.devs.push(SimDev::new(sim_geom(&g)));
        self.geoms.push(g);
        Ok(())
    }

    /// [`Self::add_member`] as the kernel does it: on `Busy` (a checkpoint
    /// due, a chain tail held with checkpoint copies) a checkpoint, then
    /// again, at most four times.
    pub fn add_member_retrying(&mut self, g: DeviceGeometry) -> zvcore::error::Result<()> {
        let mut r = Err(zvcore::error::Error::Busy);
        for _ in 0..4 {
            r = self.add_member(g);
            if r != Err(zvcore::error::Error::Busy) {
                break;
            }
            self.checkpoint_now();
        }
        r
    }

    /// Now and then (at most 2 times a run, up to 4 members) a random
    /// member added, then a commit that may crash.
    pub fn maybe_add_member(&mut self) {
        if self.geoms.len() >= 4 || self.st.member_adds >= 2 || self.blind {
            return;
        }
        let g = geometries(&mut self.rng)[0];
        match self.add_member(g) {
            Ok(()) => {
                self.st.member_adds += 1;
                self.commit(true);
            }
            Err(zvcore::error::Error::Busy) => self.st.member_busy += 1,
            // Checkpoint copies: a member whose checkpoint zones are
            // smaller than the others' would move every checkpoint block.
            Err(zvcore::error::Error::Invalid(
                "member add: its checkpoint zones hold less than the members'",
            )) => self.st.member_busy += 1,
            Err(e) => panic!("member_add: {e:?}"),
        }
    }

    /// Now and then an evacuation of a random member started, or the one
    /// in progress (or done) cancelled.
    pub fn maybe_evacuate(&mut self) {
        if self.blind {
            return;
        }
        if self.rng.pct(50) {
            self.maybe_migrate();
            return;
        }
        if let Some(e) = self.pool_ref().evacuation() {
            if self.removals && e.left_blocks == 0 && self.rng.pct(80) {
                self.maybe_remove_member(e.member);
                return;
            }
            if self.rng.pct(40) {
                match self.pool().evacuate(None) {
                    Ok(()) => self.st.evac_cancels += 1,
                    Err(zvcore::error::Error::Busy) => {}
                    Err(e) => panic!("cancel: {e:?}"),
                }
            }
            return;
        }
        let d = self.rng.below(self.geoms.len() as u64) as u16;
        match self.pool().evacuate(Some(d)) {
            Ok(()) => self.st.evacuations += 1,
            Err(zvcore::error::Error::NoSpace) => self.st.evac_nospace += 1,
            Err(zvcore::error::Error::Busy) | Err(zvcore::error::Error::Invalid(_)) => {}
            Err(zvcore::error::Error::ReadOnly) => {}
            Err(e) => panic!("evacuate: {e:?}"),
        }
    }

    /// Removes member `d`, evacuated (twice a run at most), and commits the removal
    /// without a crash (the world must know whether its device is still
    /// the pool's); crashes after it assemble without the device, the
    /// first ones from a checkpoint laid out with the member in.
    fn maybe_remove_member(&mut self, d: u16) {
        if self.st.member_removals >= 2 || self.in_ckpt {
            return;
        }
        // Zone resets planned before are done on the device.
        self.end_resets();
        match self.pool().member_remove(d, false) {
            Ok(()) => {}
            Err(zvcore::error::Error::Busy) | Err(zvcore::error::Error::Invalid(_)) => {
                self.st.remove_refused += 1;
                return;
            }
            Err(e) => panic!("member_remove: {e:?}"),
        }
        // Nothing of the commit, nor after it, may reach the device.
        self.removed |= 1 << d;
        // Until a checkpoint in the new layout, the old one needs the
        // removed member's copies: no other member may go missing.
        self.redundant = false;
        while !self.commit(false) {}
        assert!(!self.pool_ref().member_pending(), "removal committed");
        self.st.member_removals += 1;
    }

    /// A random volume's migration to random members started, or the one
    /// under way (or done) ended.
    pub fn maybe_migrate(&mut self) {
        if self.pool_ref().migration().is_some() {
            if self.rng.pct(40) {
                // Busy: the record queue is full (the next round retries).
                match self.pool().migrate(None) {
                    Ok(()) | Err(zvcore::error::Error::Busy) => {}
                    Err(e) => panic!("end the migration: {e:?}"),
                }
            }
            return;
        }
        let Some((vol, _)) = self.pick_writable() else {
            return;
        };
        let n = self.geoms.len() as u64;
        let place = match self.rng.below(8) {
            0 => Placement::Fast,
            1 => Placement::Slow,
            2 => Placement::Any,
            _ => Placement::Members(1 + self.rng.below((1u64 << n) - 1)),
        };
        match self.pool().migrate(Some((vol, place))) {
            Ok(()) => self.st.migrations += 1,
            Err(zvcore::error::Error::NoSpace)
            | Err(zvcore::error::Error::Busy)
            | Err(zvcore::error::Error::Invalid(_))
            | Err(zvcore::error::Error::NotFound)
            | Err(zvcore::error::Error::ReadOnly) => {}
            Err(e) => panic!("migrate: {e:?}"),
        }
    }

    /// Whether device `d` carries a superblock of this pool (what a scan
    /// for the pool's devices finds).
    pub fn has_pool_sb(&self, d: usize) -> bool {
        let geo = PoolGeometry::new(self.geoms.clone()).expect("geometry");
        let mut b = vec![0u8; zvcore::format::BLOCK_SIZE];
        (0..2).any(|i| {
            let Some(z) = zvcore::format::layout::log_zone(&geo, d as u16, i) else {
                return false;
            };
            let (dd, local) = self.zone_loc(z);
            self.devs[dd].read_raw(self.devs[dd].zone_start(local), &mut b);
            Superblock::peek_ids(&b).is_ok_and(|(p, _, _)| p == self.uuid)
        })
    }

    /// Takes `base`'s members (those added during its run included) with
    /// the devices `devs` (copies of `base`'s, possibly damaged).
    pub fn take_members(&mut self, base: &World, devs: Vec<SimDev>) {
        self.geoms = base.geoms.clone();
        self.bases = base.bases.clone();
        self.zone_first = base.zone_first.clone();
        self.devs = devs;
    }

    /// Takes the last device out of the world (an assembly without it).
    pub fn drop_last_device(&mut self) {
        self.devs.pop();
        self.geoms.pop();
        self.bases.pop();
        self.zone_first.pop();
    }

    /// Members of the running pool.
    pub fn nr_members(&self) -> usize {
        usize::from(self.pool_ref().superblock().nr_members)
    }

    /// Where block `lba` of volume `vol` is mapped.
    pub fn addr_of(&self, vol: u32, lba: u64) -> Option<u64> {
        let p = self.pool_ref();
        let t = p
            .volumes()
            .iter()
            .find(|v| v.id == vol && v.table.is_some())?
            .table?;
        t.lookup(p.nodes(), lba)
    }

    /// Blocks of volume `vol` mapped to member `d`.
    pub fn vol_blocks_on(&self, vol: u32, d: usize) -> u64 {
        let p = self.pool_ref();
        let Some(t) = p
            .volumes()
            .iter()
            .find(|v| v.id == vol && v.table.is_some())
        else {
            return 0;
        };
        let t = t.table.expect("table");
        let geo = p.geom();
        let mut n = 0;
        let mut lba = 0;
        while let Some(e) = t.next_extent(p.nodes(), lba) {
            for k in 0..e.len {
                if geo.locate(e.addr + k).map(|l| usize::from(l.dev)) == Some(d) {
                    n += 1;
                }
            }
            lba = e.lba + e.len;
        }
        n
    }

    /// Valid blocks in the zones of member `d`.
    pub fn member_valid_blocks(&self, d: usize) -> u64 {
        let p = self.pool_ref();
        let geo = p.geom();
        let first = geo.dev_first_zone(d as u16).expect("member");
        let n = geo.device(d as u16).expect("member").nr_zones;
        (first..first + n)
            .filter_map(|z| p.alloc().zone(z))
            .map(|z| z.valid())
            .sum()
    }
}

/// A small SMR member (sequential zones only, no limits) of `nr_zones`
/// zones of 256 blocks: slow by default.
pub fn small_smr(nr_zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Smr,
        nr_zones,
        zone_blocks: 256,
        zone_cap_blocks: 256,
        nr_conv_zones: 0,
        max_open: 0,
        max_active: 0,
        zone_append: false,
        meta_zones: META_ZONES_PER_DEV,
    }
}

/// A small conventional member of `nr_zones` zones of 256 blocks.
pub fn small_conv(nr_zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Conventional,
        ..small_smr(nr_zones)
    }
}

/// A formatted world of `geoms` keeping two copies of its metadata from
/// two members on (no degraded assembly, no checkpoint but the engine's
/// own and the caller's), with volume 1 of `size` blocks; `name` seeds it
/// (`ZVCORE_SEED` replays it).
pub fn copies_world_of(name: &str, geoms: Vec<DeviceGeometry>, size: u64) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, geoms);
    w.checkpoint_copies_pct = 100;
    w.journal_copies_pct = 100;
    w.degraded_pct = 0;
    w.explicit_ckpt_pct = 0;
    // As new pools are formatted: volume operations in deltas.
    w.volume_deltas_pct = 100;
    // Power cuts only where the test makes them.
    w.meta_crashes = false;
    w.format();
    w.create_volume(1, b"v", size);
    w
}

/// A small ZNS member of `nr_zones` zones of 256 blocks (capacity 200),
/// at most 4 open and 6 active.
pub fn small_zns(nr_zones: u32) -> DeviceGeometry {
    DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones,
        zone_blocks: 256,
        zone_cap_blocks: 200,
        nr_conv_zones: 0,
        max_open: 4,
        max_active: 6,
        zone_append: true,
        meta_zones: META_ZONES_PER_DEV,
    }
}

/// Device UUID of member `i` (as `World::format` gives them).
pub fn member_uuid(i: usize) -> [u8; 16] {
    [i as u8 + 1; 16]
}
