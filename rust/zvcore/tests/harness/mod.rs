// SPDX-License-Identifier: GPL-2.0
//! Test harness shared by the model and corruption tests: a world of
//! simulated devices, the engine, and a reference model of the volumes.
#![allow(dead_code)]

use crate::sim::*;
use std::cell::Cell;
use std::collections::HashSet;
use zvcore::alloc::{DevState, ZoneInfo};
use zvcore::error::Error;
use zvcore::format::layout::set_meta_zones;
use zvcore::format::{Record, Superblock};
use zvcore::geom::{DevKind, DeviceGeometry, PoolGeometry, Stream, META_ZONES_PER_DEV};
use zvcore::pool::{
    quota::SpaceRules, MetaOp, Pool, PoolConfig, PoolStorage, ReadRun, RelocItem, VolEntry,
    WritePlan,
};
use zvcore::recovery::{recover, MetaReader};
use zvcore::verify::{bitmap_words, verify, Problem};

pub mod ckpt_edit;
mod members;
pub use members::*;

// ---- node store ------------------------------------------------------------

thread_local! {
    /// Allocation-failure injection (the kernel's `fail_node_alloc`): while
    /// non-zero, one node allocation in N fails, pseudo-randomly.
    static FAIL_ONE_IN: Cell<u64> = const { Cell::new(0) };
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

// ---- data tags ---------------------------------------------------------------

pub const TAG: u64 = u64::from_le_bytes(*b"ZVTESTDB");

pub fn fill_block(b: &mut [u8], vol: u32, lba: u64, ver: u64) {
    let seed = ver.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lba.rotate_left(17) ^ u64::from(vol);
    for (i, c) in b.chunks_mut(8).enumerate() {
        c.copy_from_slice(
            &(seed
                .wrapping_add(i as u64)
                .wrapping_mul(0xff51_afd7_ed55_8ccd))
            .to_le_bytes(),
        );
    }
    b[0..8].copy_from_slice(&TAG.to_le_bytes());
    b[8..12].copy_from_slice(&vol.to_le_bytes());
    b[12..20].copy_from_slice(&lba.to_le_bytes());
    b[20..28].copy_from_slice(&ver.to_le_bytes());
}

/// The version a block holds (0 = zeros); Err if it is not a valid block of
/// (vol, lba).
pub fn block_version(b: &[u8], vol: u32, lba: u64) -> Result<u64, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(0);
    }
    let tag = u64::from_le_bytes(b[0..8].try_into().unwrap());
    let v = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let l = u64::from_le_bytes(b[12..20].try_into().unwrap());
    let ver = u64::from_le_bytes(b[20..28].try_into().unwrap());
    // Snapshots and clones read blocks written by their origin: the tag's
    // volume may differ (versions are unique in the whole world).
    if tag != TAG || l != lba {
        return Err(format!(
            "block of vol {vol} lba {lba} holds tag {tag:#x} vol {v} lba {l} ver {ver}"
        ));
    }
    let mut want = vec![0u8; BS];
    fill_block(&mut want, v, lba, ver);
    if want != b {
        return Err(format!(
            "block of vol {vol} lba {lba} ver {ver}: torn or corrupt contents"
        ));
    }
    Ok(ver)
}

// ---- reference model -----------------------------------------------------------

#[derive(Clone, Default)]
pub struct BlockModel {
    /// Last completed version (0 = zeros).
    pub cur: u64,
    /// Version known durable (committed).
    pub durable: u64,
    /// Completions since `durable`: (completion index, version).
    pub hist: Vec<(u64, u64)>,
}

pub struct VolModel {
    pub id: u32,
    pub blocks: Vec<BlockModel>,
    /// A snapshot (read-only).
    pub ro: bool,
    /// What it was made from (snapshot: its volume; clone: its snapshot).
    pub origin: Option<u32>,
    /// Quota and reservation in blocks (committed at once, like every
    /// volume operation).
    pub rules: SpaceRules,
}

impl VolModel {
    pub fn new(id: u32, size: u64) -> VolModel {
        VolModel {
            id,
            blocks: vec![BlockModel::default(); size as usize],
            ro: false,
            origin: None,
            rules: SpaceRules::default(),
        }
    }

    /// A copy holding the current contents, all durable (snapshot, clone,
    /// rollback: committed at once).
    pub fn copy_as(&self, id: u32, ro: bool) -> VolModel {
        VolModel {
            id,
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockModel {
                    cur: b.cur,
                    durable: b.cur,
                    hist: Vec::new(),
                })
                .collect(),
            ro,
            origin: Some(self.id),
            rules: SpaceRules::default(),
        }
    }
}

// ---- the world -------------------------------------------------------------------

pub struct OwnedOp {
    pub kind: u8, // 0 flush, 1 reset, 2 finish, 3 write
    pub zone: u32,
    pub addr: u64,
    pub data: Vec<u8>,
}

pub fn own(op: MetaOp<'_>) -> OwnedOp {
    match op {
        MetaOp::Flush => OwnedOp {
            kind: 0,
            zone: 0,
            addr: 0,
            data: Vec::new(),
        },
        MetaOp::Reset(z) => OwnedOp {
            kind: 1,
            zone: z,
            addr: 0,
            data: Vec::new(),
        },
        MetaOp::Finish(z) => OwnedOp {
            kind: 2,
            zone: z,
            addr: 0,
            data: Vec::new(),
        },
        MetaOp::Write(a, b) => OwnedOp {
            kind: 3,
            zone: 0,
            addr: a,
            data: b.to_vec(),
        },
    }
}

pub struct InFlight {
    pub plan: WritePlan,
    pub addrs: Vec<Option<u64>>,
    pub vers: Vec<u64>,
}

pub struct Stats {
    pub ckpt_busy: u64,
    pub ops: u64,
    pub writes: u64,
    pub reads: u64,
    pub discards: u64,
    pub flushes: u64,
    pub checkpoints: u64,
    /// Blocks of the largest checkpoint written.
    pub max_checkpoint_blocks: u64,
    pub gc_batches: u64,
    pub gc_races: u64,
    pub snapshots: u64,
    pub clones: u64,
    pub rollbacks: u64,
    pub promotes: u64,
    pub deletes: u64,
    pub ro_refused: u64,
    /// Space rules set, and writes they refused.
    pub rules_set: u64,
    pub rule_refusals: u64,
    pub crashes: u64,
    pub crash_mid_meta: u64,
    pub vol_ops: u64,
    pub write_failures: u64,
    /// Table updates at write completion that failed for want of memory.
    pub nomem: u64,
    /// Checkpoints written in steps, and operations run between the steps.
    pub stepped: u64,
    pub between_steps: u64,
    pub enospc: u64,
    pub fallbacks: u64,
    pub replayed: u64,
    pub torn_blocks: u64,
    /// Delta checkpoints written, and loaded by recoveries; of those,
    /// deltas that carried volume operations.
    pub deltas: u64,
    pub deltas_loaded: u64,
    pub volume_deltas: u64,
    pub volume_deltas_loaded: u64,
    /// Snapshots and clones written as copies in those deltas.
    pub delta_copies: u64,
    /// Members added to the running pool, and adds refused as busy.
    pub member_adds: u64,
    pub member_busy: u64,
    /// Evacuations started, cancelled, and refused for want of space.
    pub evacuations: u64,
    pub evac_cancels: u64,
    pub evac_nospace: u64,
    /// Volume migrations started.
    pub migrations: u64,
}

pub struct World {
    pub fill_pct: u64,
    /// Volume slots and table nodes of the engine's storage.
    pub vol_slots: usize,
    pub nodes: usize,
    /// One node allocation in N fails at write completion (0: none).
    pub nomem_one_in: u64,
    /// Percent of checkpoints written in steps with other operations in
    /// between (the kernel's way), the others at once.
    pub stepped_pct: u64,
    /// Percent of formats whose pools carry volume operations in deltas.
    pub volume_deltas_pct: u64,
    /// A checkpoint is being written in steps: nothing may commit.
    pub in_ckpt: bool,
    /// Delta checkpoints the pool reported when last looked at.
    pub seen_deltas: u64,
    pub seen_volume_deltas: u64,
    pub seen_delta_copies: u64,
    /// The model does not know the blocks' contents (a pool adopted from
    /// unknown metadata): no read checks.
    pub blind: bool,
    pub seed: u64,
    pub rng: Rng,
    pub geoms: Vec<DeviceGeometry>,
    pub devs: Vec<SimDev>,
    pub bases: Vec<u64>,
    pub zone_first: Vec<u32>,
    pub pool: Option<P>,
    pub vols: Vec<VolModel>,
    pub next_vol: u32,
    pub ver: u64,
    pub completions: u64,
    pub dirty: HashSet<(u32, u64)>,
    pub inflight: Vec<InFlight>,
    /// Zone resets planned by `maintenance_plan`, not done yet (the kernel
    /// does them outside the engine lock while other requests run).
    pub resets: Vec<u32>,
    pub scratch: Vec<u8>,
    pub st: Stats,
    pub uuid: [u8; 16],
}

pub fn sim_geom(g: &DeviceGeometry) -> SimGeom {
    SimGeom {
        kind: match g.kind {
            DevKind::Zns => SimKind::Zns,
            DevKind::Smr => SimKind::Smr,
            DevKind::Conventional => SimKind::Conventional,
        },
        nr_zones: g.nr_zones,
        zone_blocks: g.zone_blocks,
        zone_cap: g.zone_cap_blocks,
        nr_conv: g.nr_conv_zones,
        max_open: g.max_open,
        max_active: g.max_active,
        zone_append: g.zone_append,
    }
}

pub fn geometries(rng: &mut Rng) -> Vec<DeviceGeometry> {
    let zns = DeviceGeometry {
        kind: DevKind::Zns,
        nr_zones: 22 + rng.below(6) as u32,
        zone_blocks: 64,
        zone_cap_blocks: 40 + rng.below(17),
        nr_conv_zones: 0,
        max_open: 4,
        max_active: 5 + rng.below(3) as u32,
        zone_append: true,
        meta_zones: META_ZONES_PER_DEV,
    };
    let smr = DeviceGeometry {
        kind: DevKind::Smr,
        nr_zones: 22 + rng.below(6) as u32,
        zone_blocks: 64,
        zone_cap_blocks: 64,
        nr_conv_zones: 1 + rng.below(3) as u32,
        max_open: 0,
        max_active: 0,
        zone_append: false,
        meta_zones: META_ZONES_PER_DEV,
    };
    let conv = DeviceGeometry {
        kind: DevKind::Conventional,
        nr_zones: 20 + rng.below(8) as u32,
        zone_blocks: 32,
        zone_cap_blocks: 32,
        nr_conv_zones: 0,
        max_open: 0,
        max_active: 0,
        zone_append: false,
        meta_zones: META_ZONES_PER_DEV,
    };
    let mut zns2 = zns;
    zns2.zone_cap_blocks = 32 + rng.below(33);
    zns2.max_open = 3;
    zns2.max_active = 4;
    // Member 0 holds the journal: every kind gets that role.
    let mut devs = match rng.below(5) {
        0 => vec![zns, smr, conv],
        1 => vec![smr, zns],
        2 => vec![conv, zns, smr],
        3 => vec![zns, zns2],
        _ => vec![zns, conv, smr],
    };
    // A third of the pools have checkpoint sets of two zones a member
    // (the rest one, as every pool formatted before such sets existed).
    if rng.below(3) == 0 {
        set_meta_zones(&mut devs, 2);
    }
    devs
}

/// Journal records the engine can queue between commits.
pub const RECORD_QUEUE: usize = 256;

pub fn storage(geo: &[DeviceGeometry]) -> St {
    storage_with(geo, 16, 4096)
}

/// [`storage`] with `vol_slots` volume slots and `nodes` table nodes.
pub fn storage_with(geo: &[DeviceGeometry], vol_slots: usize, nodes: usize) -> St {
    let nz: u32 = geo.iter().map(|g| g.nr_zones).sum();
    PoolStorage {
        zones: vec![ZoneInfo::default(); nz as usize],
        zone_epochs: vec![0; nz as usize],
        vols: vec![VolEntry::default(); vol_slots],
        records: vec![
            Record::Unmap {
                vol: 0,
                lba: 0,
                len: 1
            };
            RECORD_QUEUE
        ],
        nodes: store(nodes),
        devs: vec![DevState::EMPTY; geo.len()],
        sb: Box::new(Superblock::EMPTY),
    }
}

pub struct Reader<'a> {
    pub devs: &'a [SimDev],
    pub order: &'a [usize],
}

impl MetaReader for Reader<'_> {
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> zvcore::error::Result<()> {
        let d = &self.devs[*self.order.get(dev as usize).ok_or(Error::NotFound)?];
        d.read(block, &mut buf[..BS]).map_err(|_| Error::Truncated)
    }
    fn zone_wp(&mut self, dev: u16, zone: u32) -> zvcore::error::Result<u64> {
        let d = &self.devs[*self.order.get(dev as usize).ok_or(Error::NotFound)?];
        let (_, wp) = d.report(zone).ok_or(Error::NotFound)?;
        Ok(wp - d.zone_start(zone))
    }
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let geoms = geometries(&mut rng);
        World::with_geoms(rng, seed, geoms)
    }

    /// A world of members `geoms` (random ones: [`World::new`]).
    pub fn with_geoms(rng: Rng, seed: u64, geoms: Vec<DeviceGeometry>) -> World {
        let mut rng = rng;
        let devs = geoms.iter().map(|g| SimDev::new(sim_geom(g))).collect();
        let mut bases = Vec::new();
        let mut zone_first = Vec::new();
        let (mut b, mut z) = (0u64, 0u32);
        for g in &geoms {
            bases.push(b);
            zone_first.push(z);
            b += g.nr_zones as u64 * g.zone_blocks;
            z += g.nr_zones;
        }
        let mut uuid = [0u8; 16];
        rng.fill(&mut uuid);
        uuid[0] |= 1;
        World {
            vol_slots: 16,
            nodes: 4096,
            nomem_one_in: 0,
            stepped_pct: 50,
            volume_deltas_pct: 75,
            in_ckpt: false,
            seen_deltas: 0,
            seen_volume_deltas: 0,
            seen_delta_copies: 0,
            blind: false,
            fill_pct: 45,
            seed,
            rng,
            geoms,
            devs,
            bases,
            zone_first,
            pool: None,
            vols: Vec::new(),
            next_vol: 1,
            ver: 0,
            completions: 0,
            dirty: HashSet::new(),
            inflight: Vec::new(),
            resets: Vec::new(),
            scratch: vec![0u8; 2 * BS],
            st: Stats {
                rules_set: 0,
                rule_refusals: 0,
                max_checkpoint_blocks: 0,
                ckpt_busy: 0,
                ops: 0,
                writes: 0,
                reads: 0,
                discards: 0,
                flushes: 0,
                checkpoints: 0,
                gc_batches: 0,
                gc_races: 0,
                snapshots: 0,
                clones: 0,
                rollbacks: 0,
                promotes: 0,
                deletes: 0,
                ro_refused: 0,
                crashes: 0,
                crash_mid_meta: 0,
                vol_ops: 0,
                write_failures: 0,
                nomem: 0,
                stepped: 0,
                between_steps: 0,
                enospc: 0,
                fallbacks: 0,
                replayed: 0,
                torn_blocks: 0,
                deltas: 0,
                deltas_loaded: 0,
                volume_deltas: 0,
                volume_deltas_loaded: 0,
                delta_copies: 0,
                member_adds: 0,
                member_busy: 0,
                evacuations: 0,
                evac_cancels: 0,
                evac_nospace: 0,
                migrations: 0,
            },
            uuid,
        }
    }

    pub fn pool(&mut self) -> &mut P {
        self.pool.as_mut().expect("pool")
    }

    pub fn loc(&self, addr: u64) -> (usize, u64) {
        let d = self.bases.iter().rposition(|&b| b <= addr).unwrap();
        (d, addr - self.bases[d])
    }

    pub fn zone_loc(&self, zone: u32) -> (usize, u32) {
        let d = self.zone_first.iter().rposition(|&f| f <= zone).unwrap();
        (d, zone - self.zone_first[d])
    }

    pub fn data_capacity(&self) -> u64 {
        PoolGeometry::new(self.geoms.clone())
            .unwrap()
            .data_capacity_blocks()
    }

    /// Executes metadata operations; with `crash_at = Some(k)` stops before
    /// operation k (returns false).
    pub fn exec(&mut self, ops: &[OwnedOp], crash_at: Option<usize>) -> bool {
        for (i, op) in ops.iter().enumerate() {
            if crash_at == Some(i) {
                return false;
            }
            match op.kind {
                0 => self.devs.iter_mut().for_each(|d| d.flush()),
                1 | 2 => {
                    let (d, local) = self.zone_loc(op.zone);
                    let r = if op.kind == 1 {
                        self.devs[d].reset(local)
                    } else {
                        self.devs[d].finish(local)
                    };
                    r.unwrap_or_else(|e| panic!("zone op {} on zone {}: {e:?}", op.kind, op.zone));
                }
                _ => {
                    let (d, off) = self.loc(op.addr);
                    self.devs[d]
                        .write(off, &op.data)
                        .unwrap_or_else(|e| panic!("meta write at {}: {e:?}", op.addr));
                }
            }
        }
        true
    }

    pub fn format(&mut self) {
        let mut ops = Vec::new();
        let n = self.geoms.len();
        let uuids: Vec<[u8; 16]> = (0..n).map(member_uuid).collect();
        let mut cfg = PoolConfig::default_for(n as u16);
        cfg.use_append = self.rng.pct(70);
        // Half the time placement by lifetime, which the default applies
        // only to members larger than the model's.
        if self.rng.pct(50) {
            cfg.separate_min_zones = 0;
        }
        // A quarter of the pools in the older format: a full checkpoint
        // after each volume operation.
        cfg.volume_deltas = self.rng.pct(self.volume_deltas_pct);
        let mut scratch = std::mem::take(&mut self.scratch);
        let pool = Pool::format(
            self.geoms.clone(),
            self.uuid,
            &uuids,
            cfg,
            storage_with(&self.geoms, self.vol_slots, self.nodes),
            &mut scratch,
            &mut |op| {
                ops.push(own(op));
                Ok(())
            },
        )
        .expect("format");
        self.scratch = scratch;
        assert!(self.exec(&ops, None));
        self.pool = Some(pool);
    }

    // ---- model commit helpers --------------------------------------------

    pub fn complete(&mut self, vol: u32, lba: u64, ver: u64) {
        self.completions += 1;
        let c = self.completions;
        if let Some(v) = self.vols.iter_mut().find(|v| v.id == vol) {
            if let Some(b) = v.blocks.get_mut(lba as usize) {
                b.cur = ver;
                b.hist.push((c, ver));
                self.dirty.insert((vol, lba));
            }
        }
    }

    /// Everything completed up to completion index `upto` is committed.
    pub fn committed(&mut self, upto: u64) {
        let dirty: Vec<(u32, u64)> = self.dirty.iter().copied().collect();
        for (vol, lba) in dirty {
            let Some(v) = self.vols.iter_mut().find(|v| v.id == vol) else {
                self.dirty.remove(&(vol, lba));
                continue;
            };
            let Some(b) = v.blocks.get_mut(lba as usize) else {
                self.dirty.remove(&(vol, lba));
                continue;
            };
            if let Some(&(_, ver)) = b.hist.iter().rev().find(|(i, _)| *i <= upto) {
                b.durable = ver;
            }
            b.hist.retain(|(i, _)| *i > upto);
            if b.hist.is_empty() {
                self.dirty.remove(&(vol, lba));
            }
        }
    }

    // ---- operations ---------------------------------------------------------

    pub fn pick_vol(&mut self) -> Option<(u32, u64)> {
        if self.vols.is_empty() {
            return None;
        }
        let v = &self.vols[self.rng.below(self.vols.len() as u64) as usize];
        Some((v.id, v.blocks.len() as u64))
    }

    /// A random writable volume (a snapshot now and then: the engine must
    /// refuse to write it).
    pub fn pick_writable(&mut self) -> Option<(u32, u64)> {
        let (vol, size) = self.pick_vol()?;
        let ro = self.vols.iter().any(|v| v.id == vol && v.ro);
        if !ro {
            return Some((vol, size));
        }
        if size > 0 && self.rng.pct(10) {
            let p = self.pool();
            assert_eq!(
                p.write_begin(vol, 0, 1, Stream::UserHot).err(),
                Some(Error::ReadOnly),
                "write to snapshot {vol}"
            );
            assert_eq!(p.discard(vol, 0, 1).err(), Some(Error::ReadOnly));
            self.st.ro_refused += 1;
        }
        let w: Vec<(u32, u64)> = self
            .vols
            .iter()
            .filter(|v| !v.ro)
            .map(|v| (v.id, v.blocks.len() as u64))
            .collect();
        if w.is_empty() {
            return None;
        }
        Some(w[self.rng.below(w.len() as u64) as usize])
    }

    pub fn do_write(&mut self) {
        let Some((vol, size)) = self.pick_writable() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 8.min(size));
        let lba = self.rng.below(size - n + 1);
        let stream = if self.rng.pct(20) {
            Stream::UserCold
        } else {
            Stream::UserHot
        };
        let mut plan = None;
        for attempt in 0..4 {
            match self.pool().write_begin(vol, lba, n, stream) {
                Ok(p) => {
                    plan = Some(p);
                    break;
                }
                // Busy: record queue full, or free zones only on members
                // at their open/active limits; NoSpace: no free zone.
                // Either way: commit, reset what is reclaimable, collect.
                Err(Error::Quota) | Err(Error::Reserved) => {
                    self.st.rule_refusals += 1;
                    break;
                }
                Err(Error::Busy) | Err(Error::NoSpace) if self.in_ckpt => break,
                Err(Error::Busy) | Err(Error::NoSpace) => {
                    self.complete_all();
                    self.gc_until_free(attempt);
                }
                Err(e) => panic!("write_begin: {e:?}"),
            }
        }
        let Some(plan) = plan else {
            self.st.enospc += 1;
            return;
        };
        self.st.writes += 1;
        let mut addrs = Vec::new();
        let mut vers = Vec::new();
        let mut failed = false;
        for ext in plan.extents() {
            let mut data = vec![0u8; BS * ext.len as usize];
            for k in 0..ext.len {
                self.ver += 1;
                vers.push(self.ver);
                fill_block(
                    &mut data[k as usize * BS..(k as usize + 1) * BS],
                    vol,
                    lba + ext.off + k,
                    self.ver,
                );
            }
            let (d, off) = self.loc(ext.addr);
            let inject = self.rng.below(400) == 0;
            if inject {
                self.devs[d].fail_writes = 1;
            }
            let r = if ext.append {
                let (_, local) = self.zone_loc(ext.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| ext.addr)
            };
            match r {
                Ok(a) => addrs.push(Some(a)),
                Err(SimErr::Injected) => {
                    failed = true;
                    addrs.push(None);
                }
                Err(e) => panic!(
                    "data write of extent {ext:?}: {e:?}\n{}",
                    self.active_zones(d)
                ),
            }
        }
        if failed {
            // Complete at once: the zone is closed for writing before anything
            // else is allocated in it.
            self.st.write_failures += 1;
            self.end_write(&plan, &addrs, &vers);
            if !self.in_ckpt {
                self.maintenance();
            }
            return;
        }
        self.inflight.push(InFlight { plan, addrs, vers });
        if self.inflight.len() > 6 || self.rng.pct(60) {
            self.complete_some();
        }
    }

    pub fn record_completion(&mut self, plan: &WritePlan, addrs: &[Option<u64>], vers: &[u64]) {
        let mut k = 0usize;
        for (i, ext) in plan.extents().iter().enumerate() {
            for j in 0..ext.len {
                if addrs[i].is_some() {
                    self.complete(plan.vol, plan.lba + ext.off + j, vers[k]);
                }
                k += 1;
            }
        }
    }

    pub fn complete_one(&mut self, i: usize) {
        let w = self.inflight.swap_remove(i);
        self.end_write(&w.plan, &w.addrs, &w.vers);
    }

    /// `write_end` of a completed write, with node allocations failing
    /// (one in `nomem_one_in`) as the kernel's can. A table update that
    /// fails for want of memory leaves each extent mapped or not (the
    /// others are unaffected and the failed ones keep their old blocks);
    /// the kernel then writes the request again, which the model sees as
    /// a later write.
    pub fn end_write(&mut self, plan: &WritePlan, addrs: &[Option<u64>], vers: &[u64]) {
        FAIL_ONE_IN.set(self.nomem_one_in);
        let r = self.pool().write_end(plan, addrs);
        FAIL_ONE_IN.set(0);
        match r {
            Ok(_) => self.record_completion(plan, addrs, vers),
            Err(Error::NoSpace) if self.nomem_one_in > 0 => {
                self.st.nomem += 1;
                let mut k = 0usize;
                for (i, ext) in plan.extents().iter().enumerate() {
                    let n = ext.len as usize;
                    let lba = plan.lba + ext.off;
                    if addrs[i].is_some() {
                        let got = self
                            .read_range(plan.vol, lba, ext.len)
                            .unwrap_or_else(|e| panic!("read after a failed table update: {e}"));
                        if got[..] == vers[k..k + n] {
                            for j in 0..n {
                                self.complete(plan.vol, lba + j as u64, vers[k + j]);
                            }
                        }
                    }
                    k += n;
                }
                // The request again (its blocks as a new write).
                let (vol, lba, n) = (plan.vol, plan.lba, plan.nblocks);
                if self.vols.iter().any(|v| v.id == vol && !v.ro) {
                    self.write_exact(vol, lba, n);
                }
            }
            Err(e) => panic!("write_end of volume {}: {e:?}", plan.vol),
        }
    }

    pub fn complete_some(&mut self) {
        let n = self.rng.range(1, self.inflight.len().max(1) as u64);
        for _ in 0..n {
            if self.inflight.is_empty() {
                break;
            }
            let i = self.rng.below(self.inflight.len() as u64) as usize;
            self.complete_one(i);
        }
    }

    pub fn complete_all(&mut self) {
        while !self.inflight.is_empty() {
            let i = self.rng.below(self.inflight.len() as u64) as usize;
            self.complete_one(i);
        }
    }

    pub fn read_check(&mut self) {
        let Some((vol, size)) = self.pick_vol() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 16.min(size));
        let lba = self.rng.below(size - n + 1);
        self.st.reads += 1;
        let got = self
            .read_range(vol, lba, n)
            .unwrap_or_else(|e| panic!("read: {e}"));
        let v = self.vols.iter().find(|v| v.id == vol).unwrap();
        for (k, ver) in got.iter().enumerate() {
            let want = v.blocks[lba as usize + k].cur;
            assert_eq!(
                *ver,
                want,
                "vol {vol} lba {}: read version {ver}, expected {want}",
                lba + k as u64
            );
        }
    }

    /// Reads through the engine; returns the version of each block.
    pub fn read_range(&mut self, vol: u32, lba: u64, n: u64) -> Result<Vec<u64>, String> {
        let mut out = Vec::new();
        let mut runs = [ReadRun::default(); 4];
        let mut l = lba;
        let mut buf = vec![0u8; BS];
        while l < lba + n {
            let k = self
                .pool
                .as_ref()
                .unwrap()
                .read_plan(vol, l, lba + n - l, &mut runs)
                .map_err(|e| format!("read_plan: {e:?}"))?;
            for r in &runs[..k] {
                match r.addr {
                    None => out.extend(std::iter::repeat_n(0, r.len as usize)),
                    Some(a) => {
                        // One device read per run, as the kernel does: a
                        // run must stay inside one zone of one member.
                        let (d, off) = self.loc(a);
                        let zb = self.geoms[d].zone_blocks;
                        if off / zb != (off + r.len - 1) / zb {
                            return Err(format!("read run {r:?} crosses a zone boundary"));
                        }
                        buf.resize(r.len as usize * BS, 0);
                        self.devs[d].read(off, &mut buf).map_err(|e| {
                            format!("vol {vol} lba {}: device read of {r:?}: {e:?}", r.lba)
                        })?;
                        for j in 0..r.len {
                            let b = &buf[j as usize * BS..(j as usize + 1) * BS];
                            out.push(block_version(b, vol, r.lba + j)?);
                        }
                    }
                }
                l += r.len;
            }
        }
        Ok(out)
    }

    pub fn do_discard(&mut self) {
        let Some((vol, size)) = self.pick_writable() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 32.min(size));
        let lba = self.rng.below(size - n + 1);
        match self.pool().discard(vol, lba, n) {
            Ok(()) => {}
            Err(Error::Busy) => return,
            Err(e) => panic!("discard: {e:?}"),
        }
        self.st.discards += 1;
        for k in 0..n {
            self.complete(vol, lba + k, 0);
        }
    }

    /// Flush (or checkpoint when needed / forced). With `may_crash`, a crash
    /// may hit in the middle of the metadata operations.
    pub fn commit(&mut self, may_crash: bool) -> bool {
        assert!(!self.in_ckpt, "commit between the steps of a checkpoint");
        let upto = self.completions;
        // Mostly the kernel's way (flush, which writes a checkpoint itself
        // when one is due), sometimes an explicit checkpoint.
        // (Not while a member added waits for its commit: the engine
        // refuses checkpoints until the journal has named it.)
        let explicit = self.rng.pct(3) && !self.pool().member_pending();
        if (explicit || self.pool().needs_checkpoint()) && self.rng.pct(self.stepped_pct) {
            return self.checkpoint_stepped(may_crash);
        }
        let ckpt_before = self.pool().stats().checkpoints;
        let mut ops = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = if explicit {
            self.pool().checkpoint(&mut scratch, &mut |op| {
                ops.push(own(op));
                Ok(())
            })
        } else {
            self.pool()
                .flush(&mut scratch, &mut |op| {
                    ops.push(own(op));
                    Ok(())
                })
                .map(|_| ())
        };
        self.scratch = scratch;
        if r == Err(Error::Busy) && !self.inflight.is_empty() {
            // No zone slot for the checkpoint while writes are in flight.
            self.st.ckpt_busy += 1;
            self.complete_all();
            return self.commit(may_crash);
        }
        if let Err(e) = r {
            let resets = self.resets.clone();
            let mut scratch = vec![0u8; 2 * BS];
            let jo = self
                .pool()
                .flush_journal_only(&mut scratch, 64, &mut |_| Ok(()));
            eprintln!(
                "journal only: {jo:?}, checkpoint generation {}",
                self.pool().checkpoint_generation()
            );
            let p = self.pool();
            panic!(
                "commit: {e:?} (free zones {}, resets pending {:?}, records {}, checkpoint due {})",
                p.free_zones(),
                resets,
                p.pending_records(),
                p.needs_checkpoint()
            );
        }
        if may_crash && !ops.is_empty() && self.rng.pct(4) {
            let at = self.rng.below(ops.len() as u64) as usize;
            self.exec(&ops, Some(at));
            self.st.crash_mid_meta += 1;
            self.crash_and_recover();
            return false;
        }
        assert!(self.exec(&ops, None));
        if explicit {
            self.pool().checkpoint_end(true).expect("checkpoint_end");
        } else if !ops.is_empty() {
            self.pool().flush_end(true).expect("flush_end");
        }
        if self.pool().stats().checkpoints > ckpt_before {
            self.st.checkpoints += 1;
            self.note_checkpoint_blocks();
        } else if !ops.is_empty() {
            self.st.flushes += 1;
        }
        self.committed(upto);
        true
    }

    /// A checkpoint written in steps of a few blocks, as the kernel writes
    /// it (its engine lock dropped for each step's I/O): writes, their
    /// completions, discards, GC batches and reads run between the steps,
    /// volume operations are refused (`Busy`), and with `may_crash` a crash
    /// may hit any step. Returns false after a crash.
    pub fn checkpoint_stepped(&mut self, may_crash: bool) -> bool {
        let upto = self.completions;
        let (r, mut ops) =
            self.meta_call(|p, scratch, mut sink| p.checkpoint_begin(scratch, &mut sink));
        match r {
            Ok(()) => {}
            Err(Error::Busy) if !self.inflight.is_empty() => {
                self.st.ckpt_busy += 1;
                self.complete_all();
                return self.checkpoint_stepped(may_crash);
            }
            Err(e) => panic!("checkpoint_begin: {e:?}"),
        }
        loop {
            if may_crash && !ops.is_empty() && self.crash_within(&ops) {
                return false;
            }
            assert!(self.exec(&ops, None));
            ops.clear();
            if !self.pool().checkpoint_in_flight() {
                unreachable!("checkpoint ended by itself");
            }
            // Other work between the steps.
            self.in_ckpt = true;
            for _ in 0..self.rng.below(6) {
                self.st.between_steps += 1;
                match self.rng.below(10) {
                    0..=3 => self.do_write(),
                    4..=5 => self.complete_some(),
                    6 => self.do_discard(),
                    7 => {
                        self.gc_batch();
                    }
                    _ if !self.blind => self.read_check(),
                    _ => {}
                }
            }
            if self.rng.pct(5) {
                let id = self.next_vol;
                let r = self.pool().vol_create(id, b"between-steps", 8, 0);
                assert_eq!(r, Err(Error::Busy), "volume created during a checkpoint");
            }
            self.in_ckpt = false;
            let budget = self.rng.range(1, 12) as u32;
            let r;
            (r, ops) = self
                .meta_call(|p, scratch, mut sink| p.checkpoint_step(scratch, budget, &mut sink));
            let blocks = ops.iter().filter(|o| o.kind > 2).count() as u32;
            assert!(blocks <= budget + 4, "step of {blocks} blocks for {budget}");
            if r.expect("checkpoint_step") {
                break;
            }
        }
        if may_crash && self.crash_within(&ops) {
            return false;
        }
        assert!(self.exec(&ops, None));
        self.pool().checkpoint_end(true).expect("checkpoint_end");
        self.st.checkpoints += 1;
        self.note_checkpoint_blocks();
        self.st.stepped += 1;
        self.committed(upto);
        true
    }

    /// Sometimes (3 %) a crash before a random one of `ops` (or after all),
    /// and recovery; returns whether it crashed.
    fn crash_within(&mut self, ops: &[OwnedOp]) -> bool {
        if !self.rng.pct(3) {
            return false;
        }
        let at = self.rng.below(ops.len() as u64 + 1) as usize;
        self.exec(ops, Some(at));
        self.st.crash_mid_meta += 1;
        self.crash_and_recover();
        true
    }

    /// Calls `f` with the pool, the scratch buffer and a sink that collects
    /// the metadata operations it emits; returns its result and them.
    pub fn meta_call<T>(
        &mut self,
        f: impl FnOnce(&mut P, &mut [u8], &mut dyn FnMut(MetaOp<'_>) -> zvcore::error::Result<()>) -> T,
    ) -> (T, Vec<OwnedOp>) {
        let mut ops = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut sink = |op: MetaOp<'_>| {
            ops.push(own(op));
            Ok(())
        };
        let r = f(self.pool.as_mut().expect("pool"), &mut scratch, &mut sink);
        self.scratch = scratch;
        (r, ops)
    }

    /// Clean stop: the engine's closing commit block. Returns whether one
    /// was written.
    pub fn close(&mut self) -> bool {
        let (r, ops) = self.meta_call(|p, scratch, mut sink| p.close(scratch, &mut sink));
        let wrote = r.expect("close");
        assert!(self.exec(&ops, None));
        wrote
    }

    /// Zone maintenance as the kernel does it: resets planned, done later
    /// (other operations run in between: nothing may be allocated in or
    /// read from a zone being reset), then ended.
    pub fn maintenance(&mut self) {
        if !self.resets.is_empty() && self.rng.pct(50) {
            self.end_resets();
            return;
        }
        let mut ops = Vec::new();
        let max = if self.rng.pct(30) {
            u32::MAX
        } else {
            self.rng.below(4) as u32 + 1
        };
        self.pool()
            .maintenance_plan(
                &mut |op| {
                    ops.push(own(op));
                    Ok(())
                },
                max,
            )
            .expect("maintenance");
        // Finishes now, resets later.
        let (resets, now): (Vec<OwnedOp>, Vec<OwnedOp>) =
            ops.into_iter().partition(|o| o.kind == 1);
        assert!(self.exec(&now, None));
        self.resets.extend(resets.iter().map(|o| o.zone));
    }

    /// Performs the planned zone resets and ends them in the engine.
    pub fn end_resets(&mut self) {
        for z in std::mem::take(&mut self.resets) {
            let (d, local) = self.zone_loc(z);
            self.devs[d]
                .reset(local)
                .unwrap_or_else(|e| panic!("zone reset of {z}: {e:?}"));
            self.pool().reset_end(z, true).expect("reset_end");
        }
    }

    /// One GC batch; user writes may race with it.
    pub fn gc_batch(&mut self) -> usize {
        let mut items = [RelocItem::default(); 8];
        let n = match self.pool().gc_begin(&mut items) {
            Ok(n) => n,
            Err(Error::Busy) | Err(Error::NoSpace) => return 0,
            Err(e) => panic!("gc_begin: {e:?}"),
        };
        if n == 0 {
            return 0;
        }
        self.st.gc_batches += 1;
        let mut addrs = Vec::new();
        let mut buf = vec![0u8; BS];
        for it in &items[..n] {
            let mut data = Vec::with_capacity(it.src.len as usize * BS);
            for k in 0..it.src.len {
                let (d, off) = self.loc(it.src.addr + k);
                self.devs[d]
                    .read(off, &mut buf)
                    .unwrap_or_else(|e| panic!("gc read {it:?}: {e:?}"));
                data.extend_from_slice(&buf);
            }
            let (d, off) = self.loc(it.dst.addr);
            let r = if it.dst.append {
                let (_, local) = self.zone_loc(it.dst.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| it.dst.addr)
            };
            addrs.push(Some(r.unwrap_or_else(|e| panic!("gc write {it:?}: {e:?}"))));
        }
        // Race: user overwrites of relocated blocks before the GC completes.
        if self.rng.pct(30) {
            let it = items[self.rng.below(n as u64) as usize];
            self.st.gc_races += 1;
            self.write_exact(it.src.vol, it.src.lba, it.src.len.min(4));
        }
        self.pool().gc_end(&items[..n], &addrs).expect("gc_end");
        n
    }

    /// A user write of exactly this range, completed at once (refusals
    /// ignored).
    pub fn write_exact(&mut self, vol: u32, lba: u64, n: u64) {
        let _ = self.write_checked(vol, lba, n);
    }

    /// A user write of this range (or the part one plan covers), completed
    /// at once; the blocks planned, or why the write was refused.
    pub fn write_checked(&mut self, vol: u32, lba: u64, n: u64) -> Result<u64, Error> {
        let plan = self.pool().write_begin(vol, lba, n, Stream::UserHot)?;
        let mut addrs = Vec::new();
        let mut vers = Vec::new();
        for ext in plan.extents() {
            let mut data = vec![0u8; BS * ext.len as usize];
            for k in 0..ext.len {
                self.ver += 1;
                vers.push(self.ver);
                fill_block(
                    &mut data[k as usize * BS..(k as usize + 1) * BS],
                    vol,
                    lba + ext.off + k,
                    self.ver,
                );
            }
            let (d, off) = self.loc(ext.addr);
            let r = if ext.append {
                let (_, local) = self.zone_loc(ext.zone);
                self.devs[d].append(local, &data).map(|a| a + self.bases[d])
            } else {
                self.devs[d].write(off, &data).map(|_| ext.addr)
            };
            addrs.push(Some(r.unwrap_or_else(|e| panic!("write: {e:?}"))));
        }
        self.end_write(&plan, &addrs, &vers);
        Ok(plan.nblocks)
    }

    pub fn gc_until_free(&mut self, attempt: usize) {
        for i in 0..20 + attempt * 20 {
            self.commit(false);
            self.maintenance();
            // Free zones may all be on members at their zone limits: collect
            // a little anyway.
            if i >= 2 * attempt && self.pool().free_zones() > 6 {
                return;
            }
            self.gc_batch();
        }
    }

    pub fn vol_op(&mut self) {
        self.complete_all();
        // A volume operation needs a free record slot (else `Busy`, which
        // the kernel answers by committing first): commit a nearly full
        // queue.
        if self.pool_ref().pending_records() + 4 > RECORD_QUEUE {
            while !self.commit(false) {}
        }
        self.st.vol_ops += 1;
        let cap = self.data_capacity();
        let total: u64 = self.vols.iter().map(|v| v.blocks.len() as u64).sum();
        let budget = cap * self.fill_pct / 100;
        let room = self.vols.len() < 10;
        // Snapshots and clones: each may end up holding its full size, so
        // they may use the pool up to 85% (volumes alone: `fill_pct`).
        let share_budget = cap * 85 / 100;
        let choice = match self.rng.below(11) {
            0 => 0,     // create
            1 => 1,     // delete
            2..=4 => 2, // snapshot
            5 => 3,     // clone
            6 => 4,     // rollback
            7 => 5,     // promote
            8 => 7,     // space rules
            _ => 6,     // resize
        };
        let idx = |w: &mut World, f: &dyn Fn(&VolModel) -> bool| -> Option<usize> {
            let c: Vec<usize> = (0..w.vols.len()).filter(|&i| f(&w.vols[i])).collect();
            (!c.is_empty()).then(|| c[w.rng.below(c.len() as u64) as usize])
        };
        match choice {
            0 if room => {
                let size = self.rng.range(0, 400).min(budget.saturating_sub(total));
                let id = self.next_vol;
                self.next_vol += 1;
                let name = format!("vol{id}");
                if self
                    .pool()
                    .vol_create(id, name.as_bytes(), size, 0)
                    .is_err()
                {
                    return;
                }
                self.vols.push(VolModel::new(id, size));
            }
            1 if self.vols.len() > 1 => {
                let i = self.rng.below(self.vols.len() as u64) as usize;
                let id = self.vols[i].id;
                if self.pool().vol_delete(id).is_err() {
                    return;
                }
                self.st.deletes += 1;
                self.vols.remove(i);
                for v in self.vols.iter_mut() {
                    if v.origin == Some(id) {
                        v.origin = None;
                    }
                }
                self.dirty.retain(|(v, _)| *v != id);
            }
            2 | 3 if room => {
                // Snapshot of a volume, or clone of a snapshot.
                let snap = choice == 2;
                let Some(i) = idx(self, &|v| v.ro != snap) else {
                    return;
                };
                let size = self.vols[i].blocks.len() as u64;
                if total + size > share_budget {
                    return;
                }
                let src = self.vols[i].id;
                let id = self.next_vol;
                self.next_vol += 1;
                let name = format!("{}{id}", if snap { "snap" } else { "clone" });
                let r = if snap {
                    self.pool().snap_create(src, id, name.as_bytes())
                } else {
                    self.pool().clone_volume(src, id, name.as_bytes())
                };
                r.unwrap_or_else(|e| panic!("snapshot/clone of {src}: {e:?}"));
                let m = self.vols[i].copy_as(id, snap);
                self.vols.push(m);
                if snap {
                    self.st.snapshots += 1;
                } else {
                    self.st.clones += 1;
                }
            }
            4 => {
                // Rollback of a volume to one of its snapshots.
                let Some(si) = idx(self, &|v| v.ro && v.origin.is_some()) else {
                    return;
                };
                let (sid, vid) = (self.vols[si].id, self.vols[si].origin.unwrap());
                let Some(vi) = self.vols.iter().position(|v| v.id == vid) else {
                    return;
                };
                self.pool()
                    .rollback(vid, sid)
                    .unwrap_or_else(|e| panic!("rollback of {vid} to {sid}: {e:?}"));
                let mut m = self.vols[si].copy_as(vid, false);
                m.origin = self.vols[vi].origin;
                m.rules = self.vols[vi].rules;
                self.vols[vi] = m;
                self.dirty.retain(|(v, _)| *v != vid);
                self.st.rollbacks += 1;
            }
            5 => {
                // Promote (flatten) a writable volume, mostly clones.
                let Some(i) =
                    idx(self, &|v| !v.ro && v.origin.is_some()).or_else(|| idx(self, &|v| !v.ro))
                else {
                    return;
                };
                let id = self.vols[i].id;
                match self.pool().promote(id) {
                    Ok(()) => {
                        self.vols[i].origin = None;
                        self.st.promotes += 1;
                    }
                    Err(Error::NoSpace) => return,
                    Err(e) => panic!("promote {id}: {e:?}"),
                }
            }
            7 => {
                // A quota and a reservation (or none), on a writable volume.
                let Some(i) = idx(self, &|v| !v.ro) else {
                    return;
                };
                let (id, size) = (self.vols[i].id, self.vols[i].blocks.len() as u64);
                let pick = |w: &mut World, div: u64| {
                    if w.rng.pct(40) {
                        0
                    } else {
                        w.rng.range(1, size / div + 2)
                    }
                };
                let quota = pick(self, 1);
                let reserve = pick(self, 4).min(size);
                let r = SpaceRules { quota, reserve };
                match self.pool().set_space_rules(id, r) {
                    Ok(()) => {
                        self.vols[i].rules = r;
                        self.st.rules_set += 1;
                    }
                    // The pool cannot hold the reservation now.
                    Err(Error::NoSpace) => return,
                    Err(e) => panic!("space rules of {id}: {e:?}"),
                }
            }
            _ if !self.vols.is_empty() => {
                let i = self.rng.below(self.vols.len() as u64) as usize;
                let id = self.vols[i].id;
                let old = self.vols[i].blocks.len() as u64;
                let size = self
                    .rng
                    .range(0, (old + 200).min(old + budget.saturating_sub(total)));
                if self.vols[i].ro {
                    assert_eq!(self.pool().vol_resize(id, size), Err(Error::ReadOnly));
                    self.st.ro_refused += 1;
                    return;
                }
                if self.pool().vol_resize(id, size).is_err() {
                    return;
                }
                let v = &mut self.vols[i];
                v.blocks.truncate(size as usize);
                v.blocks.resize(size as usize, BlockModel::default());
                self.dirty.retain(|(vv, l)| *vv != id || *l < size);
            }
            _ => {}
        }
        // Volume operations are committed at once.
        while !self.commit(false) {}
    }

    pub fn crash_and_recover(&mut self) {
        self.crash();
        self.recover_pool();
    }

    /// A power cut: the engine is gone, each device loses what it had not
    /// made durable.
    pub fn crash(&mut self) {
        self.st.crashes += 1;
        self.inflight.clear();
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
        // from its superblock.
        let geoms: Vec<DeviceGeometry> = order
            .iter()
            .map(|&i| DeviceGeometry {
                meta_zones: META_ZONES_PER_DEV,
                ..self.geoms[i]
            })
            .collect();
        let mut cfg = PoolConfig::default_for(n as u16);
        cfg.use_append = self.rng.pct(70);
        // Half the time placement by lifetime, which the default applies
        // only to members larger than the model's.
        if self.rng.pct(50) {
            cfg.separate_min_zones = 0;
        }
        let mut to_finish = Vec::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = {
            let mut rd = Reader {
                devs: &self.devs,
                order: &order,
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
        let (pool, asm, to_finish, order) = self
            .try_recover()
            .unwrap_or_else(|e| panic!("recovery failed: {e:?}"));
        // A crash (any unflushed write lost, commits torn anywhere) is never
        // damage: only a torn tail, which assembles without refusal.
        assert_eq!(asm.damage, None, "damage reported after a crash");
        assert!(asm.commit_blocks, "new pools write commit groups");
        self.st.torn_blocks += asm.torn_blocks;
        for m in 0..n {
            assert_eq!(order[asm.dev_of_member[m] as usize], m, "member mapping");
        }
        self.st.replayed += asm.replayed_blocks;
        self.st.deltas_loaded += u64::from(asm.delta_checkpoints);
        self.st.volume_deltas_loaded += u64::from(asm.volume_deltas);
        self.seen_deltas = 0;
        self.seen_volume_deltas = 0;
        self.seen_delta_copies = 0;
        if asm.fell_back {
            self.st.fallbacks += 1;
        }
        for z in to_finish {
            let (d, local) = self.zone_loc(z);
            self.devs[d]
                .finish(local)
                .unwrap_or_else(|e| panic!("finish after recovery {z}: {e:?}"));
        }
        self.pool = Some(pool);
        self.run_verify("after recovery");
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
                let ok = ver == b.durable || b.hist.iter().any(|(_, h)| *h == ver);
                assert!(
                    ok,
                    "after recovery vol {id} lba {lba}: read version {ver}, durable {} candidates {:?}",
                    b.durable,
                    b.hist.iter().map(|h| h.1).collect::<Vec<_>>()
                );
                *b = BlockModel {
                    cur: ver,
                    durable: ver,
                    hist: Vec::new(),
                };
            }
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
        // The engine needs a checkpoint before journalling again.
        while !self.commit(true) {}
    }

    pub fn run_verify(&mut self, when: &str) {
        let full = bitmap_words(self.pool_ref().geom().total_blocks());
        // Half the time a window of the pool (one pass over the tables per
        // window), as on pools too large for a whole bitmap.
        let words = if self.rng.pct(50) {
            full
        } else {
            self.rng.range(1, full as u64) as usize
        };
        let pool = self.pool.as_mut().unwrap();
        let mut bm = vec![0u64; words];
        let mut counts = vec![0u64; pool.geom().nr_zones() as usize];
        let mut probs: Vec<Problem> = Vec::new();
        let n = verify(pool, &mut bm, &mut counts, &mut |p| probs.push(p)).expect("verify");
        assert_eq!(n, 0, "verifier {when}: {:?}", &probs[..probs.len().min(10)]);
        self.check_space(when);
    }

    /// Pool used space is exactly the distinct live blocks (plus writes in
    /// flight), and each volume's exclusive / shared split matches who maps
    /// what.
    pub fn check_space(&mut self, when: &str) {
        let pool = self.pool.as_ref().unwrap();
        let mut owners: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
        let mut mapped: Vec<(u32, Vec<u64>)> = Vec::new();
        for v in pool.volumes().iter() {
            let Some(t) = v.table else { continue };
            let mut addrs = Vec::new();
            let mut runs = [ReadRun::default(); 8];
            let mut l = 0;
            while l < t.size() {
                let k = pool.read_plan(v.id, l, t.size() - l, &mut runs).unwrap();
                for r in &runs[..k] {
                    if let Some(a) = r.addr {
                        for j in 0..r.len {
                            addrs.push(a + j);
                            *owners.entry(a + j).or_insert(0) += 1;
                        }
                    }
                    l += r.len;
                }
            }
            mapped.push((v.id, addrs));
        }
        let inflight: u64 = pool.alloc().zones().iter().map(|z| z.inflight()).sum();
        assert_eq!(
            pool.alloc().used_blocks(),
            owners.len() as u64 + inflight,
            "{when}: used space is not the distinct live blocks"
        );
        assert_eq!(
            pool.shared_live_blocks(),
            owners.values().filter(|&&c| c > 1).count() as u64,
            "{when}: pool shared blocks"
        );
        for (id, addrs) in mapped {
            let sp = pool.vol_space(id).unwrap();
            let excl = addrs.iter().filter(|a| owners[a] == 1).count() as u64;
            assert_eq!(sp.mapped, addrs.len() as u64, "{when}: vol {id} mapped");
            assert_eq!(
                (sp.exclusive, sp.shared),
                (excl, addrs.len() as u64 - excl),
                "{when}: vol {id} exclusive/shared"
            );
        }
    }

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

    /// Completes every write in flight and commits until nothing is queued.
    /// One commit is not enough: a stepped checkpoint runs writes between
    /// its steps, and their records are left for the next commit.
    pub fn settle(&mut self) {
        loop {
            self.complete_all();
            if self.commit(false)
                && self.inflight.is_empty()
                && self.pool_ref().pending_records() == 0
            {
                return;
            }
        }
    }

    /// Like [`Self::adopt`] without any commit (a read-only or rewound
    /// pool the caller inspects first).
    pub fn adopt_raw(&mut self, pool: P) {
        self.pool = Some(pool);
        let p = self.pool.take().unwrap();
        self.adopt_model(&p);
        self.pool = Some(p);
    }

    /// Writes a checkpoint now.
    /// Member `d`'s zones active on the device next to what the allocator
    /// thinks of them (for a failure report).
    pub fn active_zones(&self, d: usize) -> String {
        let dv = &self.devs[d];
        let a = self.pool_ref().alloc();
        let mut out = format!(
            "allocator (open, active): {:?}",
            a.dev_open_active(d as u16)
        );
        for local in 0..dv.g.nr_zones {
            let Some((c, wp)) = dv.report(local) else {
                continue;
            };
            if matches!(c, Cond::Empty | Cond::Full) {
                continue;
            }
            let z = self.zone_first[d] + local;
            let zi = a
                .zone(z)
                .map(|zi| (zi.state(), zi.wp(), zi.inflight(), zi.held()));
            out += &format!("\n  zone {z}: device {c:?} at {wp}; allocator {zi:?}");
        }
        out
    }

    /// Keeps the size of the largest checkpoint written.
    fn note_checkpoint_blocks(&mut self) {
        let b = self.pool_ref().stats().checkpoint_blocks;
        self.st.max_checkpoint_blocks = self.st.max_checkpoint_blocks.max(b);
        let d = self.pool_ref().stats().delta_checkpoints;
        self.st.deltas += d.saturating_sub(self.seen_deltas);
        self.seen_deltas = d;
        let v = self.pool_ref().stats().volume_deltas;
        self.st.volume_deltas += v.saturating_sub(self.seen_volume_deltas);
        self.seen_volume_deltas = v;
        let c = self.pool_ref().stats().delta_copies;
        self.st.delta_copies += c.saturating_sub(self.seen_delta_copies);
        self.seen_delta_copies = c;
    }

    pub fn checkpoint_now(&mut self) {
        let (r, ops) = self.meta_call(|p, scratch, mut sink| p.checkpoint(scratch, &mut sink));
        r.expect("checkpoint");
        assert!(self.exec(&ops, None));
        self.pool().checkpoint_end(true).expect("checkpoint_end");
    }

    pub fn pool_ref(&self) -> &P {
        self.pool.as_ref().expect("pool")
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
