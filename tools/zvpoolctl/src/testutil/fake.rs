// SPDX-License-Identifier: GPL-2.0
//! `FakeKernel`: a backend that emulates the zvpool configfs ABI on a real
//! directory tree in a temporary directory. mkdir creates the attribute files
//! a kernel would show, writes are checked as the ABI says (EBUSY, EINVAL,
//! ...), refusals log `zvpool: <object>: <reason>` to a kmsg-format file, and
//! failures can be injected at the N-th mutating step or on a given operation.
//! Reads go through `FsBackend` on the rendered files.
//!
//! By default it is a kernel with the `snapshots` feature (snapshot, clone,
//! promote, rollback, online resize, the new `volumes`/`status`/`usage`
//! keys); `FakeKernel::legacy()` is a kernel from before it (old formats, no
//! such attributes, EBUSY when resizing an enabled volume). Space sharing is
//! modelled coarsely: a snapshot or clone shares all mapped bytes of its
//! source, and `set_usage` sets any split a test needs.
//!
//! Both have the pool attribute `table_memory_limit` and the `status` lines
//! `table_memory_bytes/limit/refused` unless `without_table_memory()` (a
//! module from before them; `legacy()` lacks them too). The machine has
//! `FAKE_RAM` bytes of memory, so the default limit is half of that; a
//! pool's table memory use and refusals are set with `set_table_memory`.
//!
//! Quotas, reservations and the pool reserve are in `space.rs` (not in a
//! `legacy()` kernel nor after `without_space_rules()`).

mod blockdev;
mod mirror;
mod sharing;
mod space;

use super::image::{MemDev, MemDevices};
use super::nvmet::FakeNvmet;
use super::{run_io_with, run_with, snapshot, Run, RunBytes, TempDir};
use crate::backend::{Backend, FsBackend, Obj};
use crate::commands::qos::{Kind, SETTINGS};
use crate::devio::{DeviceSet, FileDevices, OpenError, VolumeDev};
use crate::error::{
    EACCES, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOSPC, ENOTEMPTY, EROFS, EUCLEAN,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const DISK_ZONES: u64 = 256;
pub const ZONE: u64 = 64 << 20;
/// The fake machine's memory: the default `table_memory_limit` is half of it.
pub const FAKE_RAM: u64 = 16 << 30;
/// Bytes of one block-table node in memory (`table_nodes` * this is the
/// default `table_memory_bytes`).
pub const NODE_BYTES: u64 = 4096;

#[derive(Clone, Default)]
struct Disk {
    data: bool,
    pool: Option<String>,
    busy: bool,
    /// The metadata is damaged (what the kernel would say).
    damage: Option<String>,
}

#[derive(Clone)]
struct MetaVol {
    id: u64,
    name: String,
    size: u64,
    mapped: u64,
    /// Of `mapped`, the bytes shared with other volumes.
    shared: u64,
    /// `volume`, `snapshot` or `clone`.
    kind: &'static str,
    origin: Option<String>,
    /// Quota and reservation in bytes (`space.rs`): pool metadata, kept
    /// across a stop like the size.
    quota: u64,
    reserve: u64,
    /// Copies of each block (2: mirrored).
    copies: u8,
}

impl MetaVol {
    fn new(id: u64, name: &str, size: u64) -> Self {
        MetaVol {
            id,
            name: name.to_string(),
            size,
            mapped: 0,
            shared: 0,
            kind: "volume",
            origin: None,
            quota: 0,
            reserve: 0,
            copies: 1,
        }
    }
}

/// A pool's `volumes` lines, as the kernel writes them.
fn listing(vols: &[MetaVol], legacy: bool) -> String {
    vols.iter()
        .map(|v| {
            let mut l = format!(
                "{} {} size_bytes={} mapped_bytes={}",
                v.id, v.name, v.size, v.mapped
            );
            if !legacy {
                l += &format!(
                    " kind={} origin={} exclusive_bytes={} shared_bytes={} placement=any copies={}",
                    v.kind,
                    v.origin.as_deref().unwrap_or("-"),
                    v.mapped - v.shared,
                    v.shared,
                    v.copies.max(1)
                );
            }
            l + "\n"
        })
        .collect()
}

/// What configfs shows of `text`: one page (the kernel keeps 64 bytes for
/// a `# <n> more volumes not listed` trailer).
fn one_page(text: &str) -> String {
    let (mut out, mut more) = (String::new(), 0);
    for line in text.split_inclusive('\n') {
        if more == 0 && out.len() + line.len() <= 4096 - 64 {
            out += line;
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out += &format!("# {more} more volumes not listed\n");
    }
    out
}

/// The kernel's rule for volume names (1-31 of `[A-Za-z0-9_.-]`).
fn plain_name(n: &str) -> bool {
    (1..=31).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `VOL@SNAP`: (VOL, SNAP) if well-formed.
fn snap_name(n: &str) -> Option<(&str, &str)> {
    let (v, s) = n.split_once('@')?;
    (n.len() <= 31 && plain_name(v) && plain_name(s)).then_some((v, s))
}

#[derive(Clone, Default)]
struct Meta {
    volumes: Vec<MetaVol>,
    next_id: u64,
    /// Members the pool was formatted with.
    members: usize,
}

#[derive(Default)]
struct VolRt {
    enabled: bool,
    minor: Option<u32>,
    size: u64,
    /// I/O limits riops, wiops, rbps, wbps (not in a legacy kernel).
    limits: [u64; 4],
    /// `copies` written before the volume was made (0: not written).
    copies: u8,
}

#[derive(Default)]
struct PoolRt {
    active: bool,
    devices: Vec<String>,
    format: u8,
    vols: BTreeMap<String, VolRt>,
    /// `assemble_mode` (empty = normal).
    mode: String,
    read_only: bool,
    rewinds: u64,
    last_rewind: Option<String>,
    damage: Option<String>,
    /// `table_memory_limit` as written (0: the default).
    table_limit: u64,
    /// `space_low_pct`, `space_critical_pct` (None: the defaults 80, 95).
    space: Option<(u64, u64)>,
    /// `no_space_timeout`, seconds.
    no_space_timeout: u64,
    /// `checkpoint_zones` as written (0: chosen at format, 1 here).
    ckpt_zones: u32,
    /// `pool_reserve_pct`.
    reserve_pct: u64,
    /// `tiering`.
    tiering: bool,
    /// The last scrub pass (`start [MIBS]`: done at once, nothing found),
    /// as `scrub` and the `status` line show it.
    scrub: Option<String>,
    /// What the next pass finds unreadable: `scrub_errors` lines.
    scrub_bad: Vec<String>,
    /// `quota_refusals`, `reserve_refusals` of `status`.
    refusals: (u64, u64),
    /// `table_memory_bytes` (None: `table_nodes` * NODE_BYTES).
    table_bytes: Option<u64>,
    table_refused: u64,
}

impl PoolRt {
    /// The limit in force (what `table_memory_limit` shows).
    fn table_limit(&self) -> u64 {
        match self.table_limit {
            0 => FAKE_RAM / 2,
            v => v,
        }
    }
}

/// `table_nodes` of every active pool in the fake.
const TABLE_NODES: u64 = 9;

struct Fault {
    /// The operation is carried out, then fails (e.g. a pool that stops but
    /// reports a failed final commit).
    after: bool,
    step: Option<usize>,
    op: Option<&'static str>,
    target: Option<String>,
    errno: i32,
    msg: String,
}

#[derive(Default)]
struct State {
    /// A kernel without the `snapshots` feature.
    legacy: bool,
    /// A module without `table_memory_limit` (and its status lines).
    no_table_memory: bool,
    /// A module without quotas, reservations and the pool reserve.
    no_space_rules: bool,
    ops: usize,
    faults: Vec<Fault>,
    pending: Option<Fault>,
    disks: BTreeMap<String, Disk>,
    metas: BTreeMap<String, Meta>,
    pools: BTreeMap<String, PoolRt>,
    open: BTreeSet<String>,
    next_minor: u32,
    seq: u64,
    /// A module without the control device.
    no_control: bool,
    /// A module with the volume disks' sysfs identity attributes.
    sysfs_ident: bool,
    /// A module whose control device has no `diff` (EINVAL).
    no_diff: bool,
    /// `diff` commands answered.
    diffs: u64,
    /// The data of each volume (pool, name).
    vol_data: BTreeMap<(String, String), blockdev::VolData>,
    /// Writes to volume devices fail with this errno.
    dev_write_errno: Option<i32>,
    /// Pool UUIDs `status` shows, set by tests (`set_pool_uuid`).
    pool_uuids: BTreeMap<String, String>,
}

pub struct FakeKernel {
    _dir: TempDir,
    root: PathBuf,
    kmsg: PathBuf,
    fs: FsBackend,
    st: RefCell<State>,
    /// In-memory device images the offline checker reads (by path).
    images: RefCell<BTreeMap<String, MemDev>>,
    /// nvmet's configfs tree, if the machine has one (`with_nvmet`).
    nvmet: Option<FakeNvmet>,
}

/// The index of I/O limit attribute `attr` in `VolRt::limits` (the first
/// settings of `volume set`).
fn limit_index(attr: &str) -> Option<usize> {
    SETTINGS
        .iter()
        .position(|s| s.attr == attr && s.kind != Kind::Space)
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl FakeKernel {
    /// A kernel with snapshots, clones and online resize.
    pub fn new() -> Self {
        Self::with(false)
    }

    /// A kernel from before snapshots (the ABI zvpoolctl must still serve).
    pub fn legacy() -> Self {
        Self::with(true)
    }

    fn with(legacy: bool) -> Self {
        let dir = TempDir::new("fake");
        let root = dir.path().join("zvpool");
        fs::create_dir(&root).unwrap();
        fs::write(
            root.join("features"),
            if legacy {
                "format_version 1\nfeatures zoned-members thin-volumes\n"
            } else {
                "format_version 2\nfeatures zoned-members thin-volumes snapshots read-only-assembly rewind degraded-assembly scrub future-word\n"
            },
        )
        .unwrap();
        let kmsg = dir.path().join("kmsg");
        fs::write(
            &kmsg,
            "3,1,100,-;zvpool: old: a stale reason that must not be shown\n",
        )
        .unwrap();
        FakeKernel {
            fs: FsBackend::new(&root),
            root,
            kmsg,
            _dir: dir,
            images: RefCell::new(BTreeMap::new()),
            nvmet: None,
            st: RefCell::new(State {
                seq: 2,
                legacy,
                no_table_memory: legacy,
                no_space_rules: legacy,
                ..State::default()
            }),
        }
    }

    /// A module with the volume disks' identity attributes in sysfs
    /// (`/sys/block/zvpoolN/zvpool/*`, derived here from configfs as the
    /// kernel derives them from its metadata).
    pub fn enable_sysfs_ident(&self) {
        self.st.borrow_mut().sysfs_ident = true;
    }

    /// The sysfs identity attribute `attr` of disk `disk`.
    fn sysfs_ident_attr(&self, disk: &str, attr: &str) -> io::Result<String> {
        for pool in self.fs.children(&Obj::Root)? {
            for vol in self.fs.children(&Obj::pool(&pool)).unwrap_or_default() {
                let o = Obj::volume(&pool, &vol);
                let dev = self.fs.read_attr(&o, "dev").unwrap_or_default();
                if dev.split_whitespace().next() != Some(disk) {
                    continue;
                }
                let usage = self.fs.read_attr(&o, "usage")?;
                let get = |k: &str| {
                    usage
                        .lines()
                        .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                        .unwrap_or("")
                        .to_string()
                };
                let status = self.fs.read_attr(&Obj::pool(&pool), "status")?;
                let pu = status
                    .lines()
                    .find_map(|l| l.strip_prefix("uuid "))
                    .and_then(crate::uuid::parse)
                    .ok_or_else(|| err(EINVAL))?;
                let id: u64 = get("id").parse().map_err(|_| err(EINVAL))?;
                return Ok(match attr {
                    "pool" => pool,
                    "volume" => vol.clone(),
                    "kind" => get("kind"),
                    "origin" => Some(get("origin")).filter(|o| o != "-").unwrap_or_default(),
                    "id" => id.to_string(),
                    "pool_uuid" => crate::uuid::format(&pu),
                    "uuid" => {
                        crate::uuid::format(&zvcore::volid::volume_uuid(&pu, id, vol.as_bytes()))
                    }
                    _ => return Err(err(ENOENT)),
                });
            }
        }
        Err(err(ENOENT))
    }

    /// The UUID the pool's `status` shows (instead of the superblock's or
    /// a made-up word).
    pub fn set_pool_uuid(&self, pool: &str, uuid: &str) {
        let st = &mut *self.st.borrow_mut();
        st.pool_uuids.insert(pool.to_string(), uuid.to_string());
        self.sync(st);
    }

    /// A machine with the NVMe-oF target loaded (an empty nvmet tree).
    pub fn with_nvmet(mut self) -> Self {
        self.nvmet = Some(FakeNvmet::new());
        self
    }

    /// The nvmet tree (`with_nvmet` must have been called).
    pub fn nvmet_tree(&self) -> &FakeNvmet {
        self.nvmet.as_ref().expect("FakeKernel::with_nvmet")
    }

    /// A module from before the control device (`/dev/zvpool-control`).
    pub fn without_control(self) -> Self {
        self.st.borrow_mut().no_control = true;
        self
    }

    /// A module whose control device has no `diff` command.
    pub fn without_diff(self) -> Self {
        self.st.borrow_mut().no_diff = true;
        self
    }

    /// How many `diff` commands the control device answered.
    pub fn diffs(&self) -> u64 {
        self.st.borrow().diffs
    }

    /// A module from before `table_memory_limit`: pools have no such
    /// attribute (writes fail with ENOENT) and `status` no `table_memory_*`;
    /// nor the later space rules (`without_space_rules`).
    pub fn without_table_memory(self) -> Self {
        self.st.borrow_mut().no_table_memory = true;
        self.without_space_rules()
    }

    /// The pool's block tables use `bytes` of memory, and `refused` node
    /// allocations were refused by the limit.
    pub fn set_table_memory(&self, pool: &str, bytes: u64, refused: u64) {
        let mut st = self.st.borrow_mut();
        if let Some(p) = st.pools.get_mut(pool) {
            p.table_bytes = Some(bytes);
            p.table_refused = refused;
        }
        self.sync(&st);
    }

    /// The next scrub pass of `pool` finds `lines` (`VOLUME OFFSET BYTES`)
    /// unreadable, one block each.
    pub fn set_scrub_bad(&self, pool: &str, lines: &[&str]) {
        let mut st = self.st.borrow_mut();
        if let Some(p) = st.pools.get_mut(pool) {
            p.scrub_bad = lines.iter().map(|l| l.to_string()).collect();
        }
        self.sync(&st);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A block device the fake knows: blank or holding foreign data.
    pub fn add_disk(&self, path: &str, data: bool) {
        self.st.borrow_mut().disks.insert(
            path.to_string(),
            Disk {
                data,
                ..Disk::default()
            },
        );
    }

    /// The contents the offline checker reads for `path`.
    pub fn set_image(&self, path: &str, dev: MemDev) {
        self.images.borrow_mut().insert(path.to_string(), dev);
    }

    /// The pool metadata on the device is damaged: assembly is refused
    /// (EUCLEAN) unless read-only or rewinding.
    pub fn set_damaged(&self, path: &str, what: &str) {
        if let Some(d) = self.st.borrow_mut().disks.get_mut(path) {
            d.damage = Some(what.to_string());
        }
    }

    /// Removes the root's `features` file (a kernel whose features cannot
    /// be read).
    pub fn drop_features(&self) {
        let _ = fs::remove_file(self.root.join("features"));
    }

    /// The device is opened exclusively by someone else.
    pub fn set_disk_busy(&self, path: &str) {
        if let Some(d) = self.st.borrow_mut().disks.get_mut(path) {
            d.busy = true;
        }
    }

    /// Someone holds the volume's block device open.
    pub fn set_open(&self, vol: &str, open: bool) {
        let mut st = self.st.borrow_mut();
        if open {
            st.open.insert(vol.to_string());
        } else {
            st.open.remove(vol);
        }
    }

    /// Sets a volume's mapped bytes in the metadata.
    pub fn set_mapped(&self, pool: &str, vol: &str, bytes: u64) {
        let mut st = self.st.borrow_mut();
        if let Some(v) = st
            .metas
            .get_mut(pool)
            .and_then(|m| m.volumes.iter_mut().find(|v| v.name == vol))
        {
            v.mapped = bytes;
            v.shared = v.shared.min(bytes);
        }
        self.sync(&st);
    }

    /// Adds `n` unbound volumes `<prefix><i>` of `size` bytes to the
    /// pool's metadata (as if created by another tool).
    pub fn add_meta_volumes(&self, pool: &str, prefix: &str, n: usize, size: u64) {
        let mut st = self.st.borrow_mut();
        if let Some(m) = st.metas.get_mut(pool) {
            for i in 0..n {
                m.next_id += 1;
                let v = MetaVol::new(m.next_id, &format!("{prefix}{i:03}"), size);
                m.volumes.push(v);
            }
        }
        self.sync(&st);
    }

    /// Sets a volume's mapped and shared bytes in the metadata.
    pub fn set_usage(&self, pool: &str, vol: &str, mapped: u64, shared: u64) {
        let mut st = self.st.borrow_mut();
        if let Some(v) = st
            .metas
            .get_mut(pool)
            .and_then(|m| m.volumes.iter_mut().find(|v| v.name == vol))
        {
            v.mapped = mapped;
            v.shared = shared.min(mapped);
        }
        self.sync(&st);
    }

    /// The N-th mutating operation from now fails with `errno` and logs `msg`.
    pub fn fail_at(&self, step: usize, errno: i32, msg: &str) {
        let mut st = self.st.borrow_mut();
        let step = st.ops + step;
        st.faults.push(Fault {
            after: false,
            step: Some(step),
            op: None,
            target: None,
            errno,
            msg: msg.to_string(),
        });
    }

    /// The next `op` (`mkdir`, `rmdir`, `write`) on `target` (`tank`,
    /// `tank/vm1`, `tank/vm1/enable`, `tank/enable=0`) fails with `errno` and logs `msg`.
    pub fn fail_on(&self, op: &'static str, target: &str, errno: i32, msg: &str) {
        self.st.borrow_mut().faults.push(Fault {
            after: false,
            step: None,
            op: Some(op),
            target: Some(target.to_string()),
            errno,
            msg: msg.to_string(),
        });
    }

    /// Like `fail_on`, but the operation takes effect before failing.
    pub fn fail_on_after(&self, op: &'static str, target: &str, errno: i32, msg: &str) {
        self.st.borrow_mut().faults.push(Fault {
            after: true,
            step: None,
            op: Some(op),
            target: Some(target.to_string()),
            errno,
            msg: msg.to_string(),
        });
    }

    /// A pending after-fault fires once the operation succeeded.
    fn finish(&self, st: &mut State) -> io::Result<()> {
        self.sync(st);
        match st.pending.take() {
            Some(f) => {
                self.log(st, &f.msg);
                Err(err(f.errno))
            }
            None => Ok(()),
        }
    }

    /// Mutating operations performed so far.
    pub fn ops(&self) -> usize {
        self.st.borrow().ops
    }

    pub fn snapshot(&self) -> BTreeMap<String, Option<String>> {
        snapshot(&self.root)
    }

    /// Runs zvpoolctl against this fake (with `--kmsg` on its log).
    pub fn run(&self, args: &[&str]) -> Run {
        let kmsg = self.kmsg.display().to_string();
        let mut all = vec!["--kmsg", kmsg.as_str()];
        all.extend_from_slice(args);
        run_with(Some(self), &all)
    }

    /// Runs zvpoolctl with `input` on stdin; stdout as bytes.
    pub fn run_io(&self, args: &[&str], input: &[u8]) -> RunBytes {
        let kmsg = self.kmsg.display().to_string();
        let mut all = vec!["--kmsg", kmsg.as_str()];
        all.extend_from_slice(args);
        run_io_with(Some(self), &all, input)
    }

    /// Logs an error-level line (a refusal's reason).
    fn log(&self, st: &mut State, line: &str) {
        self.log_level(st, 3, line);
    }

    fn log_level(&self, st: &mut State, level: u32, line: &str) {
        st.seq += 1;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&self.kmsg)
            .unwrap();
        writeln!(f, "{level},{},{},-;{line}", st.seq, st.seq * 1000).unwrap();
    }

    fn refuse(&self, st: &mut State, errno: i32, obj: &str, reason: &str) -> io::Error {
        self.log(st, &format!("zvpool: {obj}: {reason}"));
        err(errno)
    }

    /// Counts a mutating step and fires a matching fault. A write's target
    /// matches as `tank/enable` or with its value, `tank/enable=0`.
    fn step(&self, st: &mut State, op: &str, target: &str, value: Option<&str>) -> io::Result<()> {
        st.ops += 1;
        st.pending = None;
        let n = st.ops;
        let with_value = value.map(|v| format!("{target}={v}"));
        let hit = st.faults.iter().position(|f| {
            f.step.is_none_or(|s| s == n)
                && f.op.is_none_or(|o| o == op)
                && f.target
                    .as_deref()
                    .is_none_or(|t| t == target || Some(t) == with_value.as_deref())
        });
        if let Some(i) = hit {
            let f = st.faults.remove(i);
            if f.after {
                st.pending = Some(f);
                return Ok(());
            }
            self.log(st, &f.msg);
            return Err(err(f.errno));
        }
        Ok(())
    }

    fn path(&self, obj: &Obj) -> PathBuf {
        let mut p = self.root.clone();
        for c in obj.components() {
            p.push(c);
        }
        p
    }

    /// Renders every attribute file from the state.
    fn sync(&self, st: &State) {
        for (name, p) in &st.pools {
            let dir = self.path(&Obj::pool(name));
            let w = |f: &str, s: String| fs::write(dir.join(f), s).unwrap();
            let devices: String = p
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| format!("{i} {d}\n"))
                .collect();
            w("devices", devices);
            w("format", format!("{}\n", p.format));
            if !st.legacy {
                let mode = if p.mode.is_empty() { "normal" } else { &p.mode };
                w("assemble_mode", format!("{mode}\n"));
            }
            if !st.no_table_memory {
                w("table_memory_limit", format!("{}\n", p.table_limit()));
                let (lo, cr) = p.space.unwrap_or((80, 95));
                w("space_low_pct", format!("{lo}\n"));
                w("space_critical_pct", format!("{cr}\n"));
                w("no_space_timeout", format!("{}\n", p.no_space_timeout));
            }
            if !st.no_space_rules {
                w("pool_reserve_pct", format!("{}\n", p.reserve_pct));
                w("tiering", format!("{}\n", u8::from(p.tiering)));
                let idle = "idle zone=0/8 read_bytes=0 errors=0 skipped_zones=0 passes=0";
                w("scrub", format!("{}\n", p.scrub.as_deref().unwrap_or(idle)));
                if p.scrub.is_some() {
                    w(
                        "scrub_errors",
                        p.scrub_bad.iter().map(|l| format!("{l}\n")).collect(),
                    );
                }
            }
            if !st.legacy {
                let k = if p.active {
                    p.ckpt_zones.max(1)
                } else {
                    p.ckpt_zones
                };
                w("checkpoint_zones", format!("{k}\n"));
            }
            w("enable", format!("{}\n", u8::from(p.active)));
            let meta = st.metas.get(name).filter(|_| p.active);
            let vols = meta.map(|m| m.volumes.clone()).unwrap_or_default();
            let n = p.devices.len() as u64;
            let legacy = st.legacy;
            if p.active {
                let sp = space::space(p, &vols);
                let (cap, used, shared) = (sp.cap, sp.used, sp.shared);
                let rules = space::status_lines(st, p, &vols);
                let snaps = vols.iter().filter(|v| v.kind == "snapshot").count();
                let extra = if legacy {
                    String::new()
                } else {
                    let mut e = format!(
                        "snapshots {snaps}\nshared_bytes {shared}\nread_only {}\nrewinds {}\n",
                        u8::from(p.read_only),
                        p.rewinds
                    );
                    if let Some(r) = &p.last_rewind {
                        e += &format!("last_rewind {r}\n");
                    }
                    if let Some(d) = &p.damage {
                        e += &format!("damage {d}\n");
                    }
                    if let Some(s) = &p.scrub {
                        e += &format!("scrub {s}\n");
                    }
                    e
                };
                let tables = if st.no_table_memory {
                    String::new()
                } else {
                    format!(
                        "table_memory_bytes {}\ntable_memory_limit {}\ntable_memory_refused {}\ntable_alloc_failures 0\n",
                        p.table_bytes.unwrap_or(TABLE_NODES * NODE_BYTES),
                        p.table_limit(),
                        p.table_refused
                    )
                };
                w(
                    "status",
                    format!(
                        "state active\nuuid {}\nmembers {n}\ncapacity_bytes {cap}\nused_bytes {used}\n\
                         free_bytes {}\n{rules}zones_total {}\nzones_free {}\nzones_gc_reserve 2\nvolumes {}\n\
                         user_blocks_written 1000\ngc_blocks_written 250\nwrite_amplification 1.250\n\
                         zones_reset 3\ngc_runs 0\nthrottled_ms 0\njournal_blocks 40\n\
                         checkpoints 2\ncheckpoint_blocks 3\ndelta_checkpoints 1\ncheckpoint_capacity {}\ncheckpoint_zones {}\njournal_members 0 1\ncheckpoint_copies 2\nmetadata_full 0\ntable_nodes {TABLE_NODES}\n{tables}{extra}future_key 7\n",
                        st.pool_uuids
                            .get(name)
                            .cloned()
                            .unwrap_or_else(|| self.pool_uuid(name, &p.devices)),
                        cap.saturating_sub(used),
                        n * DISK_ZONES,
                        n * DISK_ZONES - 2,
                        vols.len(),
                        4096 * p.ckpt_zones.max(1),
                        p.ckpt_zones.max(1)
                    ),
                );
            } else {
                w("status", "state inactive\n".to_string());
            }
            let members: String = p
                .devices
                .iter()
                .enumerate()
                .filter(|_| p.active)
                .map(|(i, d)| {
                    format!(
                        "{i} {d} zns zones={DISK_ZONES} zone_bytes={ZONE} cap_bytes={ZONE} max_open=14 \
                         max_active=28 free_zones={} read_errors=0 write_errors={i} state=ok\n",
                        DISK_ZONES - 1
                    )
                })
                .collect();
            w("members", members);
            w("volumes", one_page(&listing(&vols, legacy)));
            for (vn, v) in &p.vols {
                let vdir = dir.join(vn);
                let m = vols.iter().find(|m| &m.name == vn);
                let vw = |f: &str, s: String| fs::write(vdir.join(f), s).unwrap();
                vw("size", format!("{}\n", v.size));
                if !legacy {
                    vw("copies", mirror::copies_file(m.map(|m| m.copies), v.copies));
                }
                vw("enable", format!("{}\n", u8::from(v.enabled)));
                vw(
                    "dev",
                    match (v.enabled, v.minor) {
                        (true, Some(mi)) => format!("zvpool{mi} 252:{mi}\n"),
                        _ => String::new(),
                    },
                );
                let mapped = m.map_or(0, |m| m.mapped);
                let mut usage = format!(
                    "id {}\nsize_bytes {}\nmapped_bytes {mapped}\nmapped_blocks {}\n",
                    m.map_or(0, |m| m.id),
                    v.size,
                    mapped / 4096
                );
                if !legacy {
                    let shared = m.map_or(0, |m| m.shared);
                    usage += &format!(
                        "kind {}\norigin {}\nexclusive_bytes {}\nshared_bytes {shared}\n",
                        m.map_or("volume", |m| m.kind),
                        m.and_then(|m| m.origin.as_deref()).unwrap_or("-"),
                        mapped - shared
                    );
                }
                if !st.no_space_rules {
                    let (q, r) = m.map_or((0, 0), |m| (m.quota, m.reserve));
                    usage += &format!("quota_bytes {q}\nreservation_bytes {r}\n");
                    vw("quota_bytes", format!("{q}\n"));
                    vw("reservation_bytes", format!("{r}\n"));
                }
                vw("usage", usage);
                if !legacy {
                    // The I/O limits: the first settings.
                    for (s, l) in SETTINGS.iter().zip(v.limits) {
                        vw(s.attr, format!("{l}\n"));
                    }
                }
            }
        }
    }

    /// The UUID `status` shows: that of the superblock on the first
    /// member's image when the test served one, else a made-up word.
    fn pool_uuid(&self, name: &str, devices: &[String]) -> String {
        let images = self.images.borrow();
        let sb = devices.first().and_then(|d| images.get(d)).and_then(|d| {
            let mut set = MemDevices::new(&devices[..1], vec![d.clone()]);
            crate::check::device_superblock(&mut set, 0, &d.geom)
        });
        match sb {
            Some(sb) => crate::uuid::format(&sb.pool_uuid),
            None => format!("0000-{name}"),
        }
    }

    fn remove_files(dir: &Path) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::remove_file(p).unwrap();
            }
        }
    }

    fn write_pool(&self, st: &mut State, name: &str, attr: &str, value: &str) -> io::Result<()> {
        let Some(p) = st.pools.get(name) else {
            return Err(err(ENOENT));
        };
        let active = p.active;
        match attr {
            "devices" => {
                if active {
                    return Err(self.refuse(
                        st,
                        EBUSY,
                        name,
                        "cannot add members to an active pool",
                    ));
                }
                if !st.disks.contains_key(value) {
                    return Err(self.refuse(
                        st,
                        ENODEV,
                        name,
                        &format!("{value} is not a block device"),
                    ));
                }
                let p = &st.pools[name];
                if p.devices.iter().any(|d| d == value) {
                    return Err(self.refuse(
                        st,
                        EEXIST,
                        name,
                        &format!("{value} is already a member"),
                    ));
                }
                if p.devices.len() >= 64 {
                    return Err(self.refuse(st, ENOSPC, name, "too many members"));
                }
                if let Some(p) = st.pools.get_mut(name) {
                    p.devices.push(value.to_string());
                }
            }
            "assemble_mode" if st.legacy => return Err(err(ENOENT)),
            "checkpoint_zones" if st.legacy => return Err(err(ENOENT)),
            "checkpoint_zones" => {
                let v = value.strip_suffix('\n').unwrap_or(value);
                let n = (!v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| v.parse::<u32>().ok())
                    .flatten()
                    .filter(|n| *n <= 4095);
                let Some(n) = n else {
                    let why = "checkpoint_zones takes 0 (chosen at format) to 4095";
                    return Err(self.refuse(st, EINVAL, name, why));
                };
                if st.pools.get(name).is_some_and(|p| p.active) {
                    let why = "checkpoint_zones is fixed once the pool is formatted";
                    return Err(self.refuse(st, EBUSY, name, why));
                }
                if let Some(p) = st.pools.get_mut(name) {
                    p.ckpt_zones = n;
                }
            }
            "pool_reserve_pct" => self.write_reserve_pct(st, name, value)?,
            "scrub" => {
                let mut w = value.split_whitespace();
                let line = match (w.next(), w.next().map(str::parse::<u32>), w.next()) {
                    (Some("start"), None, None) => 0,
                    (Some("start"), Some(Ok(r)), None) => r,
                    (Some("stop"), None, None) => return Ok(()),
                    _ => return Err(self.refuse(st, EINVAL, name, "scrub: start [MIBS] or stop")),
                };
                if let Some(p) = st.pools.get_mut(name) {
                    p.scrub = Some(format!(
                        "done zone=8/8 read_bytes=1048576 errors={} skipped_zones=0 passes=1 meta_blocks=3 meta_errors=0 repairs=0 rate_mibs={line}",
                        p.scrub_bad.len()
                    ));
                }
            }
            "tiering" if st.no_space_rules => return Err(err(ENOENT)),
            "tiering" => {
                let on = match value.trim() {
                    "1" => true,
                    "0" => false,
                    _ => return Err(self.refuse(st, EINVAL, name, "tiering: 0 or 1")),
                };
                if let Some(p) = st.pools.get_mut(name) {
                    p.tiering = on;
                }
            }
            "table_memory_limit" | "space_low_pct" | "space_critical_pct" | "no_space_timeout"
                if st.no_table_memory =>
            {
                return Err(err(ENOENT))
            }
            "no_space_timeout" => {
                let v = value.strip_suffix('\n').unwrap_or(value);
                let Some(n) = v.parse::<u64>().ok().filter(|n| *n <= 86_400) else {
                    let why = "no_space_timeout takes seconds, 0 (fail at once) to 86400";
                    return Err(self.refuse(st, EINVAL, name, why));
                };
                if let Some(p) = st.pools.get_mut(name) {
                    p.no_space_timeout = n;
                }
            }
            "space_low_pct" | "space_critical_pct" => {
                let v = value.strip_suffix('\n').unwrap_or(value);
                let Some(n) = v.parse::<u64>().ok().filter(|n| *n <= 100) else {
                    let why = format!("{attr} takes 0 (off) to 100");
                    return Err(self.refuse(st, EINVAL, name, &why));
                };
                if let Some(p) = st.pools.get_mut(name) {
                    let (mut lo, mut cr) = p.space.unwrap_or((80, 95));
                    if attr == "space_low_pct" {
                        lo = n;
                    } else {
                        cr = n;
                    }
                    if lo > 0 && cr > 0 && lo >= cr {
                        let why =
                            format!("space_low_pct ({lo}) must be below space_critical_pct ({cr})");
                        return Err(self.refuse(st, EINVAL, name, &why));
                    }
                    p.space = Some((lo, cr));
                }
            }
            "table_memory_limit" => {
                // The kernel's parse_u64: decimal digits, one optional
                // trailing newline; any pool state.
                let v = value.strip_suffix('\n').unwrap_or(value);
                let n = (!v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| v.parse::<u64>().ok())
                    .flatten();
                let Some(n) = n else {
                    let why = "table_memory_limit takes bytes (decimal; 0 for the default)";
                    return Err(self.refuse(st, EINVAL, name, why));
                };
                if let Some(p) = st.pools.get_mut(name) {
                    p.table_limit = n;
                }
            }
            "assemble_mode" => {
                let m = value.trim();
                if !["normal", "read-only", "rewind", "degraded"].contains(&m) {
                    let why = "assemble_mode must be normal, read-only, rewind or degraded";
                    return Err(self.refuse(st, EINVAL, name, why));
                }
                if active {
                    return Err(self.refuse(st, EBUSY, name, "pool is active"));
                }
                if let Some(p) = st.pools.get_mut(name) {
                    p.mode = m.to_string();
                }
            }
            "format" => {
                let f = match value.trim() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(self.refuse(st, EINVAL, name, "format must be 0, 1 or 2")),
                };
                if active {
                    return Err(self.refuse(st, EBUSY, name, "pool is active"));
                }
                if let Some(p) = st.pools.get_mut(name) {
                    p.format = f;
                }
            }
            "enable" => match value.trim() {
                "1" => {
                    if active {
                        return Err(self.refuse(st, EBUSY, name, "already enabled"));
                    }
                    let p = &st.pools[name];
                    let (devs, format) = (p.devices.clone(), p.format);
                    if devs.is_empty() {
                        return Err(self.refuse(st, EINVAL, name, "no members"));
                    }
                    // The pool's name is not on its members: assembling them
                    // under another name (pool import NEWNAME) renames it.
                    let owners: BTreeSet<Option<String>> =
                        devs.iter().map(|d| st.disks[d].pool.clone()).collect();
                    if let (0, [Some(old)]) = (format, &owners.into_iter().collect::<Vec<_>>()[..])
                    {
                        if old != name && !st.pools.contains_key(old) {
                            if let Some(m) = st.metas.remove(old) {
                                st.metas.insert(name.to_string(), m);
                            }
                            for d in st.disks.values_mut() {
                                if d.pool.as_deref() == Some(old.as_str()) {
                                    d.pool = Some(name.to_string());
                                }
                            }
                        }
                    }
                    if format == 0 && devs.iter().all(|d| st.disks[d].pool.is_none()) {
                        let why = "cannot assemble: no zvpool superblock on the devices";
                        return Err(self.refuse(st, ENOENT, name, why));
                    }
                    for d in &devs {
                        let disk = st.disks[d].clone();
                        if disk.busy {
                            return Err(self.refuse(
                                st,
                                EBUSY,
                                name,
                                &format!("{d} is opened by someone else"),
                            ));
                        }
                        let blank = !disk.data && disk.pool.is_none();
                        if format == 1 && !blank {
                            return Err(self.refuse(st, EBUSY, name, &format!("{d} is not blank")));
                        }
                        if format == 0 && disk.pool.as_deref() != Some(name) {
                            return Err(self.refuse(
                                st,
                                EINVAL,
                                name,
                                &format!("{d} carries no metadata of pool {name}"),
                            ));
                        }
                    }
                    let mode = st.pools[name].mode.clone();
                    // Members none of the devices given is (degraded
                    // assembly: one, in modes degraded and read-only).
                    let missing = st
                        .metas
                        .get(name)
                        .map_or(0, |m| m.members.saturating_sub(devs.len()));
                    if format == 0 && missing > 0 {
                        if !["degraded", "read-only"].contains(&mode.as_str()) {
                            let why = format!(
                                "{missing} member(s) of the pool not among the devices given; \
                                 assemble_mode 'degraded' (or 'read-only') assembles without them"
                            );
                            return Err(self.refuse(st, ENODEV, name, &why));
                        }
                        if missing > 1 {
                            let why = "cannot assemble: recover: more than one member missing";
                            return Err(self.refuse(st, EINVAL, name, why));
                        }
                    }
                    let damage = devs.iter().find_map(|d| st.disks[d].damage.clone());
                    let (mut read_only, mut rewound) = (false, false);
                    if let (Some(what), 0) = (&damage, format) {
                        match mode.as_str() {
                            "read-only" => read_only = true,
                            "rewind" => rewound = true,
                            _ => {
                                let why = format!("cannot assemble: metadata damaged: {what}");
                                let e = self.refuse(st, EUCLEAN, name, &why);
                                self.log_level(
                                    st,
                                    4,
                                    &format!(
                                        "zvpool: {name}: hint: assemble_mode=read-only to copy data out, \
                                         assemble_mode=rewind to drop the damaged part"
                                    ),
                                );
                                return Err(e);
                            }
                        }
                    } else if mode == "read-only" {
                        read_only = true;
                    }
                    if rewound {
                        for d in &devs {
                            if let Some(disk) = st.disks.get_mut(d) {
                                disk.damage = None;
                            }
                        }
                        self.log_level(
                            st,
                            4,
                            &format!("zvpool: {name}: rewound: dropped 511 journal blocks"),
                        );
                    }
                    if let Some(p) = st.pools.get_mut(name) {
                        p.read_only = read_only;
                        p.damage = if read_only { damage.clone() } else { None };
                        if rewound {
                            p.rewinds += 1;
                            p.last_rewind = Some(
                                "from_seq=1025 to_seq=1535 blocks=511 records=9300 lost_checkpoint=0"
                                    .into(),
                            );
                        }
                        p.mode.clear();
                    }
                    if format != 0 {
                        for d in &devs {
                            if let Some(disk) = st.disks.get_mut(d) {
                                disk.data = true;
                                disk.pool = Some(name.to_string());
                            }
                        }
                        st.metas.insert(
                            name.to_string(),
                            Meta {
                                volumes: Vec::new(),
                                next_id: 1,
                                members: devs.len(),
                            },
                        );
                    }
                    if let Some(p) = st.pools.get_mut(name) {
                        p.active = true;
                        p.format = 0;
                    }
                }
                "0" => {
                    if !active {
                        return Err(self.refuse(st, EBUSY, name, "not enabled"));
                    }
                    let bound = st.pools[name].vols.len();
                    if bound > 0 {
                        let why = format!(
                            "{bound} volume(s) still bound; remove their directories first"
                        );
                        return Err(self.refuse(st, EBUSY, name, &why));
                    }
                    if let Some(p) = st.pools.get_mut(name) {
                        p.active = false;
                    }
                    self.log_level(st, 6, &format!("zvpool: {name}: stopped"));
                }
                _ => return Err(self.refuse(st, EINVAL, name, "enable must be 0 or 1")),
            },
            "delete_volume" => {
                let vol = value.trim();
                if !active {
                    return Err(self.refuse(st, EBUSY, name, "pool is not active"));
                }
                let found = st
                    .metas
                    .get(name)
                    .is_some_and(|m| m.volumes.iter().any(|v| v.name == vol));
                if !found {
                    let why = format!("no volume named '{vol}'");
                    return Err(self.refuse(st, ENOENT, name, &why));
                }
                if st.pools[name].vols.contains_key(vol) {
                    let why = format!("volume '{vol}' is bound; remove its directory first");
                    return Err(self.refuse(st, EBUSY, name, &why));
                }
                blockdev::drop_data(st, name, vol);
                if let Some(m) = st.metas.get_mut(name) {
                    m.volumes.retain(|v| v.name != vol);
                    for v in &mut m.volumes {
                        if v.origin.as_deref() == Some(vol) {
                            v.origin = None;
                        }
                    }
                }
            }
            "snapshot" | "clone" | "promote" | "rollback" if st.legacy => {
                // No such attribute file in an old kernel's pool directory.
                return Err(err(ENOENT));
            }
            "snapshot" | "clone" | "promote" | "rollback" => {
                if !active {
                    return Err(self.refuse(st, EBUSY, name, "pool is not active"));
                }
                self.write_sharing(st, name, attr, value.trim())?;
            }
            _ => return Err(err(EACCES)),
        }
        Ok(())
    }

    fn write_volume(
        &self,
        st: &mut State,
        pool: &str,
        vol: &str,
        attr: &str,
        value: &str,
    ) -> io::Result<()> {
        let obj = format!("{pool}/{vol}");
        let Some(v) = st.pools.get(pool).and_then(|p| p.vols.get(vol)) else {
            return Err(err(ENOENT));
        };
        let (enabled, size) = (v.enabled, v.size);
        match attr {
            "copies" if !st.legacy => self.write_copies(st, pool, vol, &obj, value)?,
            "size" => {
                let is_snapshot = st
                    .metas
                    .get(pool)
                    .and_then(|m| m.volumes.iter().find(|m| m.name == vol))
                    .is_some_and(|m| m.kind == "snapshot");
                if is_snapshot {
                    return Err(self.refuse(st, EROFS, &obj, "a snapshot cannot be resized"));
                }
                if enabled && st.legacy {
                    return Err(self.refuse(st, EBUSY, &obj, "cannot resize an enabled volume"));
                }
                let Ok(n) = value.trim().parse::<u64>() else {
                    return Err(self.refuse(st, EINVAL, &obj, "size is not a number"));
                };
                if n == 0 || n % 4096 != 0 || n > 1 << 50 {
                    return Err(self.refuse(st, EINVAL, &obj, "bad size"));
                }
                let meta = st.metas.entry(pool.to_string()).or_default();
                match meta.volumes.iter_mut().find(|m| m.name == vol) {
                    Some(m) => {
                        m.size = n;
                        m.mapped = m.mapped.min(n);
                        m.shared = m.shared.min(m.mapped);
                    }
                    None => {
                        let copies = self.copies_of_new(st, pool, v.copies, &obj)?;
                        let meta = st.metas.entry(pool.to_string()).or_default();
                        meta.next_id += 1;
                        let id = meta.next_id;
                        let mut m = MetaVol::new(id, vol, n);
                        m.copies = copies;
                        meta.volumes.push(m);
                    }
                }
                if let Some(v) = st.pools.get_mut(pool).and_then(|p| p.vols.get_mut(vol)) {
                    v.size = n;
                }
                blockdev::cut_data(st, pool, vol, n);
            }
            "enable" => match value.trim() {
                "1" => {
                    if enabled {
                        return Err(self.refuse(st, EBUSY, &obj, "already enabled"));
                    }
                    if size == 0 {
                        return Err(self.refuse(st, EINVAL, &obj, "size is 0"));
                    }
                    let minor = st.next_minor;
                    st.next_minor += 1;
                    if let Some(v) = st.pools.get_mut(pool).and_then(|p| p.vols.get_mut(vol)) {
                        v.enabled = true;
                        v.minor = Some(minor);
                    }
                }
                "0" => {
                    if !enabled {
                        return Err(self.refuse(st, EBUSY, &obj, "not enabled"));
                    }
                    if st.open.contains(&obj) {
                        return Err(self.refuse(st, EBUSY, &obj, "device is open"));
                    }
                    if let Some(v) = st.pools.get_mut(pool).and_then(|p| p.vols.get_mut(vol)) {
                        v.enabled = false;
                        v.minor = None;
                    }
                }
                _ => return Err(self.refuse(st, EINVAL, &obj, "enable must be 0 or 1")),
            },
            "quota_bytes" | "reservation_bytes" if !st.no_space_rules => {
                self.write_rule(st, pool, vol, attr, value)?;
            }
            l if !st.legacy && limit_index(l).is_some() => {
                let Ok(n) = value.trim().parse::<u64>() else {
                    return Err(self.refuse(
                        st,
                        EINVAL,
                        &obj,
                        &format!("{l} is not a decimal number"),
                    ));
                };
                if let (Some(i), Some(v)) = (
                    limit_index(l),
                    st.pools.get_mut(pool).and_then(|p| p.vols.get_mut(vol)),
                ) {
                    v.limits[i] = n;
                }
            }
            _ => return Err(err(EACCES)),
        }
        Ok(())
    }
}

impl Backend for FakeKernel {
    fn location(&self) -> String {
        self.fs.location()
    }

    fn exists(&self, obj: &Obj) -> bool {
        self.fs.exists(obj)
    }

    fn children(&self, obj: &Obj) -> io::Result<Vec<String>> {
        self.fs.children(obj)
    }

    fn read_attr(&self, obj: &Obj, attr: &str) -> io::Result<String> {
        self.fs.read_attr(obj, attr)
    }

    fn nvmet(&self) -> Option<&dyn crate::nvmet::Tree> {
        self.nvmet.as_ref().map(|t| t as &dyn crate::nvmet::Tree)
    }

    fn disk_attr(&self, disk: &str, attr: &str) -> io::Result<String> {
        if !self.st.borrow().sysfs_ident {
            return Err(err(ENOENT));
        }
        self.sysfs_ident_attr(disk, attr)
    }

    /// `volumes POOL` as the kernel answers it: every volume of an active
    /// pool, ENOENT for another pool, EINVAL for another command.
    fn control(&self, cmd: &str) -> io::Result<Option<String>> {
        if self.st.borrow().no_control {
            return Ok(None);
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if words.first() == Some(&"diff") {
            return self.control_diff(&words[1..]).map(Some);
        }
        let st = &*self.st.borrow();
        let ["volumes", pool] = words[..] else {
            return Err(err(EINVAL));
        };
        if !st.pools.get(pool).is_some_and(|p| p.active) {
            return Err(err(ENOENT));
        }
        let vols = st
            .metas
            .get(pool)
            .map(|m| m.volumes.clone())
            .unwrap_or_default();
        Ok(Some(listing(&vols, st.legacy)))
    }

    fn create(&self, obj: &Obj) -> io::Result<()> {
        let st = &mut *self.st.borrow_mut();
        self.step(st, "mkdir", &obj.to_string(), None)?;
        match obj {
            Obj::Root => return Err(err(EEXIST)),
            Obj::Pool(name) => {
                if st.pools.contains_key(name) {
                    return Err(err(EEXIST));
                }
                fs::create_dir(self.path(obj))?;
                st.pools.insert(name.clone(), PoolRt::default());
            }
            Obj::Volume(pool, vol) => {
                let Some(p) = st.pools.get(pool) else {
                    return Err(err(ENOENT));
                };
                if !p.active {
                    return Err(self.refuse(st, EBUSY, pool, "pool is not active"));
                }
                if p.vols.contains_key(vol) {
                    return Err(err(EEXIST));
                }
                let m = st
                    .metas
                    .get(pool)
                    .and_then(|m| m.volumes.iter().find(|v| &v.name == vol));
                if vol.contains('@') && m.is_none() {
                    let why =
                        format!("no snapshot named '{vol}' (snapshots are made by 'snapshot')");
                    return Err(self.refuse(st, ENOENT, pool, &why));
                }
                let size = m.map_or(0, |v| v.size);
                fs::create_dir(self.path(obj))?;
                if let Some(p) = st.pools.get_mut(pool) {
                    p.vols.insert(
                        vol.clone(),
                        VolRt {
                            size,
                            ..VolRt::default()
                        },
                    );
                }
            }
        }
        self.finish(st)
    }

    fn remove(&self, obj: &Obj) -> io::Result<()> {
        let st = &mut *self.st.borrow_mut();
        self.step(st, "rmdir", &obj.to_string(), None)?;
        match obj {
            Obj::Root => return Err(err(EBUSY)),
            Obj::Pool(name) => {
                let Some(p) = st.pools.get(name) else {
                    return Err(err(ENOENT));
                };
                // configfs refuses rmdir of a group with children; an
                // active pool is stopped first.
                if !p.vols.is_empty() {
                    return Err(err(ENOTEMPTY));
                }
                st.pools.remove(name);
            }
            Obj::Volume(pool, vol) => {
                let Some(p) = st.pools.get(pool) else {
                    return Err(err(ENOENT));
                };
                // Only unbinds; an enabled volume loses its block device
                // (configfs gives drivers no veto on rmdir).
                if !p.vols.contains_key(vol) {
                    return Err(err(ENOENT));
                }
                if let Some(p) = st.pools.get_mut(pool) {
                    p.vols.remove(vol);
                }
            }
        }
        let dir = self.path(obj);
        Self::remove_files(&dir);
        fs::remove_dir(&dir)?;
        self.finish(st)
    }

    fn open_devices(&self, paths: &[String]) -> Result<Box<dyn DeviceSet>, OpenError> {
        let images = self.images.borrow();
        let mut devs = Vec::new();
        for p in paths {
            match images.get(p) {
                Some(d) => devs.push(d.clone()),
                None => return FileDevices::open(paths).map(|d| Box::new(d) as Box<dyn DeviceSet>),
            }
        }
        Ok(Box::new(MemDevices::new(paths, devs)))
    }

    fn open_volume(&self, node: &str, write: bool) -> io::Result<Box<dyn VolumeDev + '_>> {
        self.open_fake_volume(node, write)
    }

    fn write_attr(&self, obj: &Obj, attr: &str, value: &str) -> io::Result<()> {
        let st = &mut *self.st.borrow_mut();
        self.step(st, "write", &format!("{obj}/{attr}"), Some(value))?;
        match obj {
            Obj::Root => return Err(err(EACCES)),
            Obj::Pool(p) => self.write_pool(st, p, attr, value)?,
            Obj::Volume(p, v) => self.write_volume(st, p, v, attr, value)?,
        }
        self.finish(st)
    }
}
