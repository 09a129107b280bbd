// SPDX-License-Identifier: GPL-2.0
//! The world: simulated devices, the engine and the reference model;
//! its construction, its geometry and its metadata operations.

use super::*;

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
    /// A mirrored volume's second copy (its companion's plan and where
    /// its extents landed; the same versions).
    pub copy: Option<(WritePlan, Vec<Option<u64>>)>,
}

pub struct Stats {
    pub ckpt_busy: u64,
    /// Writes of mirrored volumes (both copies), mirrored volumes made.
    pub mirrored_writes: u64,
    pub mirrored_vols: u64,
    /// Mirrored writes dropped because they ended during a checkpoint.
    pub mirror_retries: u64,
    /// Blocks of a lost member rebuilt from their other copy (GC items
    /// whose read address is not their source).
    pub rebuilt_blocks: u64,
    /// Ranges of mirrored tables queued for repair (`maybe_repair`).
    pub repairs: u64,
    /// Journal blocks written into conventional log zones of a limited
    /// span (`PoolConfig::conv_log_blocks`; none past it, `exec` checks).
    pub conv_span_blocks: u64,
    /// Log-zone switches, and those of pools with a short checkpoint
    /// interval (switches before the log zone is full).
    pub log_switches: u64,
    pub short_log_switches: u64,
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
    /// Journal commits between the steps, and crashes after one before
    /// its checkpoint's end.
    pub side_commits: u64,
    pub side_crashes: u64,
    pub enospc: u64,
    pub fallbacks: u64,
    pub replayed: u64,
    pub torn_blocks: u64,
    /// Assemblies after which the journal went on where it ended (no
    /// checkpoint first), and crashes that then hit before any checkpoint.
    pub resumed: u64,
    pub resumed_crashes: u64,
    /// Assemblies after which the checkpoint chain went on (the next
    /// checkpoint a delta), and crashes after such a delta was written
    /// (every checkpoint since the assembly a delta).
    pub chain_resumed: u64,
    pub resumed_delta_crashes: u64,
    /// Assemblies of a pool without conventional data zones (whose
    /// journal and chain may go on).
    pub seq_assemblies: u64,
    /// Why assemblies did not keep the chain (`Assembly::kept_why`).
    pub kept_why: std::collections::BTreeMap<&'static str, u64>,
    /// Delta checkpoints written, and loaded by recoveries; of those,
    /// deltas that carried volume operations.
    pub deltas: u64,
    pub deltas_loaded: u64,
    pub volume_deltas: u64,
    pub volume_deltas_loaded: u64,
    /// Snapshots and clones written as copies in those deltas.
    pub delta_copies: u64,
    /// Volumes those deltas carried grown (`INCOMPAT_DELTA_GROW`), and
    /// grown by the deltas recoveries loaded.
    pub delta_grows: u64,
    pub delta_grows_loaded: u64,
    /// Members added to the running pool, and adds refused as busy.
    pub member_adds: u64,
    pub member_busy: u64,
    /// Evacuations started, cancelled, and refused for want of space.
    pub evacuations: u64,
    pub evac_cancels: u64,
    pub evac_nospace: u64,
    /// Volume migrations started.
    pub migrations: u64,
    /// Members removed (after their evacuation), and removals refused.
    pub member_removals: u64,
    pub remove_refused: u64,
    /// Assemblies without a member's device (degraded).
    pub degraded: u64,
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
    /// Percent of commits that are explicit checkpoints instead of the
    /// kernel's flush (which checkpoints only when one is due).
    pub explicit_ckpt_pct: u64,
    /// Percent of formats whose pools carry volume operations in deltas.
    pub volume_deltas_pct: u64,
    /// Percent of those whose deltas carry grows (`INCOMPAT_DELTA_GROW`).
    pub delta_grow_pct: u64,
    /// Percent of formats of two members or more whose journal is written
    /// to two members (`RO_COMPAT_JOURNAL_COPIES`).
    pub journal_copies_pct: u64,
    /// Percent of formats of two members or more whose checkpoints are
    /// written to two members (`INCOMPAT_CHECKPOINT_COPIES`).
    pub checkpoint_copies_pct: u64,
    /// Pools that keep the placement history in their checkpoints
    /// (`PoolConfig::zone_history`), and pools placing by lifetime
    /// whatever their size (`separate_min_zones` 0).
    pub zone_history_pct: u64,
    pub separate_pct: u64,
    /// The span of conventional log zones (`PoolConfig::conv_log_blocks`)
    /// if set; else, by the seed, half the pools 16 to 47 blocks (a few
    /// checkpoint intervals: the journal switches or checkpoints for it)
    /// and half the whole zone (pools of the older format).
    pub conv_log_blocks: Option<u32>,
    /// Pools run with a short checkpoint interval (8 to 31 journal blocks
    /// instead of the default): checkpoints often, and log-zone switches
    /// before the log zone is full (`LOG_SPAN_FACTOR`); the interval chosen.
    pub short_interval_pct: u64,
    pub interval: u32,
    /// Members whose device is not given to the next assemblies (bit per
    /// member: degraded assembly). Nothing may read or change them.
    pub missing: u64,
    /// Members removed from the pool (bit per member): their devices are
    /// not given to the next assemblies either, and they are not missing.
    pub removed: u64,
    /// Percent of crashes of a pool keeping two copies of its metadata
    /// after which it is assembled without a random member (which a later
    /// crash gives back, half the time).
    pub degraded_pct: u64,
    /// Percent of GC batches a user write of a relocated range races with
    /// (`gc_batch`).
    pub gc_race_pct: u64,
    /// Random runs may remove a member once its evacuation is done
    /// (`maybe_remove_member`).
    pub removals: bool,
    /// Every member was there for the newest full checkpoint (and the
    /// journal since): another member may go missing without a double
    /// fault.
    pub redundant: bool,
    /// `missing` at the last assembly.
    pub prev_missing: u64,
    /// The next commit is a checkpoint (as the kernel writes one at once
    /// after an assembly without a member: what it dropped of the
    /// missing member's stays dropped).
    pub checkpoint_first: bool,
    /// Versions each block may read after the next crash besides the
    /// model's, while the state of an assembly without a member (or the
    /// first with it back) is not durable yet: what was allowed before it.
    pub unsettled: std::collections::HashMap<(u32, u64), Vec<u64>>,
    /// A checkpoint is being written in steps: nothing may commit.
    pub in_ckpt: bool,
    /// Mirrored writes the engine dropped because they ended during a
    /// checkpoint (`write_end_copies`: `Busy`), written again after it,
    /// as the kernel does: (volume, lba, blocks).
    pub deferred: Vec<(u32, u64, u64)>,
    /// Delta checkpoints the pool reported when last looked at.
    pub seen_deltas: u64,
    pub seen_volume_deltas: u64,
    pub seen_delta_copies: u64,
    pub seen_delta_grows: u64,
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
    /// The last assembly kept the checkpoint chain going, or why not.
    pub chain_resumed: bool,
    pub kept_why: Option<&'static str>,
    /// Commits that may crash do so now and then (off: the tests' own
    /// crashes only).
    pub meta_crashes: bool,
    /// Every assembly: whether the journal went on (a recovery may run
    /// another one inside when the commit after it crashes).
    pub resumes: Vec<bool>,
    pub uuid: [u8; 16],
}

/// The engine configuration the harness runs: the defaults, and mirrored
/// volumes (which the random worlds make).
pub fn engine_config(n: u16) -> PoolConfig {
    let mut cfg = PoolConfig::default_for(n);
    cfg.mirrored_volumes = true;
    cfg
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
    /// Devices not given (bit per device of `devs`): never to be asked.
    pub absent: u64,
}

impl Reader<'_> {
    fn dev(&self, dev: u16) -> zvcore::error::Result<&SimDev> {
        let i = *self.order.get(dev as usize).ok_or(Error::NotFound)?;
        assert!(
            self.absent & (1 << i) == 0,
            "recovery asked about device {i}, which was not given"
        );
        Ok(&self.devs[i])
    }
}

impl MetaReader for Reader<'_> {
    fn read_block(&mut self, dev: u16, block: u64, buf: &mut [u8]) -> zvcore::error::Result<()> {
        let d = self.dev(dev)?;
        d.read(block, &mut buf[..BS]).map_err(|_| Error::Truncated)
    }
    fn zone_wp(&mut self, dev: u16, zone: u32) -> zvcore::error::Result<u64> {
        let d = self.dev(dev)?;
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
            explicit_ckpt_pct: 3,
            missing: 0,
            removed: 0,
            degraded_pct: 0,
            gc_race_pct: 30,
            removals: false,
            redundant: true,
            prev_missing: 0,
            checkpoint_first: false,
            unsettled: std::collections::HashMap::new(),
            volume_deltas_pct: 75,
            delta_grow_pct: 75,
            journal_copies_pct: 75,
            checkpoint_copies_pct: 75,
            zone_history_pct: 75,
            separate_pct: 50,
            conv_log_blocks: None,
            short_interval_pct: 30,
            interval: 0,
            in_ckpt: false,
            deferred: Vec::new(),
            seen_deltas: 0,
            seen_volume_deltas: 0,
            seen_delta_copies: 0,
            seen_delta_grows: 0,
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
            chain_resumed: false,
            kept_why: None,
            resumes: Vec::new(),
            meta_crashes: true,
            st: Stats {
                mirrored_writes: 0,
                mirrored_vols: 0,
                mirror_retries: 0,
                rebuilt_blocks: 0,
                repairs: 0,
                log_switches: 0,
                conv_span_blocks: 0,
                short_log_switches: 0,
                rules_set: 0,
                degraded: 0,
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
                side_commits: 0,
                side_crashes: 0,
                enospc: 0,
                fallbacks: 0,
                replayed: 0,
                torn_blocks: 0,
                resumed: 0,
                resumed_crashes: 0,
                chain_resumed: 0,
                resumed_delta_crashes: 0,
                seq_assemblies: 0,
                kept_why: Default::default(),
                deltas: 0,
                deltas_loaded: 0,
                volume_deltas: 0,
                volume_deltas_loaded: 0,
                delta_copies: 0,
                delta_grows: 0,
                delta_grows_loaded: 0,
                member_adds: 0,
                member_busy: 0,
                evacuations: 0,
                evac_cancels: 0,
                member_removals: 0,
                remove_refused: 0,
                evac_nospace: 0,
                migrations: 0,
            },
            uuid,
        }
    }

    pub fn pool(&mut self) -> &mut P {
        self.pool.as_mut().expect("pool")
    }

    pub fn pool_ref(&self) -> &P {
        self.pool.as_ref().expect("pool")
    }

    pub fn loc(&self, addr: u64) -> (usize, u64) {
        let d = self.bases.iter().rposition(|&b| b <= addr).unwrap();
        (d, addr - self.bases[d])
    }

    /// Asserts that member `d`'s device is given (not missing) before the
    /// engine's `what` reaches it.
    pub fn present(&self, d: usize, what: &str) {
        assert!(
            self.missing & (1 << d) == 0,
            "{what} sent to member {d}, whose device is missing"
        );
        assert!(
            self.removed & (1 << d) == 0,
            "{what} sent to member {d}, removed from the pool"
        );
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
                0 => {
                    let missing = self.missing;
                    self.devs
                        .iter_mut()
                        .enumerate()
                        .filter(|(i, _)| missing & (1 << i) == 0)
                        .for_each(|(_, d)| d.flush())
                }
                1 | 2 => {
                    let (d, local) = self.zone_loc(op.zone);
                    self.present(d, "zone operation");
                    let r = if op.kind == 1 {
                        self.devs[d].reset(local)
                    } else {
                        self.devs[d].finish(local)
                    };
                    r.unwrap_or_else(|e| panic!("zone op {} on zone {}: {e:?}", op.kind, op.zone));
                }
                _ => {
                    self.check_log_span(op);
                    let (d, off) = self.loc(op.addr);
                    self.present(d, "metadata write");
                    self.devs[d]
                        .write(off, &op.data)
                        .unwrap_or_else(|e| panic!("meta write at {}: {e:?}", op.addr));
                }
            }
        }
        true
    }

    /// A metadata write into a conventional log zone stays within the
    /// pool's span (`format::layout::log_zone_blocks`): assembly reads no
    /// further.
    fn check_log_span(&mut self, op: &OwnedOp) {
        let Some(p) = self.pool.as_ref() else {
            return;
        };
        let g = p.geom();
        let span = g.conv_log_blocks();
        let Some((z, zg)) = g.zone_of(op.addr).and_then(|z| Some((z, g.zone(z)?))) else {
            return;
        };
        let is_log = (0..LOG_ZONES).any(|i| log_zone(g, zg.dev, i) == Some(z));
        if span == 0 || !zg.conventional || !is_log {
            return;
        }
        let off = op.addr - zg.start;
        let n = (op.data.len() / BS) as u64;
        assert!(
            off + n <= span,
            "journal write at block {off} (+{n}) of a conventional log zone of span {span}"
        );
        self.st.conv_span_blocks += n;
    }

    pub fn format(&mut self) {
        let mut ops = Vec::new();
        let n = self.geoms.len();
        let uuids: Vec<[u8; 16]> = (0..n).map(member_uuid).collect();
        let mut cfg = engine_config(n as u16);
        cfg.use_append = self.rng.pct(70);
        // Half the time placement by lifetime, which the default applies
        // only to members larger than the model's.
        if self.rng.pct(self.separate_pct) {
            cfg.separate_min_zones = 0;
        }
        // Half the time GC scans a node or two per call (the kernel's 64
        // exceed the model's tables): scans that resume across calls.
        if self.rng.pct(50) {
            cfg.gc_scan_nodes = 1 + self.rng.below(2) as u32;
        }
        // A quarter of the pools in the older format: a full checkpoint
        // after each volume operation.
        cfg.volume_deltas = self.rng.pct(self.volume_deltas_pct);
        // Most of those carry grows in deltas too.
        cfg.delta_grow = cfg.volume_deltas && self.rng.pct(self.delta_grow_pct);
        // Pools of two members or more: most with journal copies.
        cfg.journal_copies = self.rng.pct(self.journal_copies_pct);
        cfg.checkpoint_copies = self.rng.pct(self.checkpoint_copies_pct);
        // From the seed, not the random stream (which the other choices
        // of a seed's replay depend on).
        cfg.zone_history =
            (self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % 100 < self.zone_history_pct;
        let span = self.seed.wrapping_mul(0xa076_1d64_78bd_642f) >> 33;
        cfg.conv_log_blocks = self.conv_log_blocks.unwrap_or(if span.is_multiple_of(2) {
            16 + (span >> 1) as u32 % 32
        } else {
            0
        });
        // From the seed too.
        let pick = self.seed.wrapping_mul(0xd6e8_feb8_6659_fd93);
        self.interval = if (pick >> 40) % 100 < self.short_interval_pct {
            8 + ((pick >> 20) % 24) as u32
        } else {
            0
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut pool = Pool::format(
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
        pool.set_checkpoint_interval(self.interval);
        self.pool = Some(pool);
    }
}
