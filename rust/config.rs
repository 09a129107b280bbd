// SPDX-License-Identifier: GPL-2.0
//! The configfs interface: `/sys/kernel/config/zvpool/`.
//!
//! See `Documentation/configfs-abi.md` for the ABI. Every refusal returns an
//! errno and logs one line saying why.

use crate::damage::AssembleMode;
use crate::kwrap::bdev;
use crate::nodes;
use crate::pool::ActivePool;
use crate::registry;
use crate::volcfg::{self, VolumeConfig};
use crate::volinfo;
use crate::zvcore::{
    format::{policy::Placement, BLOCK_SIZE},
    geom::MAX_DEVICES,
    space::Thresholds,
};
use core::sync::atomic::Ordering;
use kernel::{
    configfs, configfs_attrs,
    fmt::Write as _,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{CStr, CString, Formatter},
    sync::{Arc, Mutex},
};

/// On-disk format version this module reads and writes.
pub(crate) const FORMAT_VERSION: u32 = crate::zvcore::format::FORMAT_VERSION;

/// Features this build supports, one word each, as listed in `features`.
const FEATURES: &[&str] = &[
    "zoned-members",
    "thin-volumes",
    "snapshots",
    "read-only-assembly",
    "rewind",
    "journal-copies",
    "checkpoint-copies",
    "degraded-assembly",
    "member-remove",
    "placement-policies",
    "zone-history",
    "scrub",
];

/// Data of the subsystem's root directory.
#[pin_data]
pub(crate) struct Root {}

/// The `zvpool` configfs subsystem.
pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Root>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Root>,
        data: Root,
        child: PoolDir,
        attributes: [
            features: 0,
        ],
    };
    configfs::Subsystem::new(c"zvpool", item_type, try_pin_init!(Root {}))
}

/// User input quoted in a log line: at most 64 bytes (then how long it
/// was), control and non-ASCII bytes as `?`.
pub(crate) struct Shown<'a>(pub(crate) &'a [u8]);

impl kernel::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        const MAX: usize = 64;
        for &c in self.0.iter().take(MAX) {
            let c = if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '?'
            };
            f.write_char(c)?;
        }
        if self.0.len() > MAX {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Text of a store, without the trailing newline `echo` adds.
fn input(page: &[u8]) -> Result<&str> {
    let s = core::str::from_utf8(page).map_err(|_| EINVAL)?;
    Ok(s.strip_suffix('\n').unwrap_or(s))
}

/// `features` (read-only): the on-disk format version and feature words.
#[vtable]
impl configfs::AttributeOperations<0> for Root {
    type Data = Root;

    fn show(_this: &Root, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_fmt(fmt!("format_version {}\n", FORMAT_VERSION))?;
        w.write_str("features")?;
        for f in FEATURES {
            w.write_fmt(fmt!(" {}", f))?;
        }
        w.write_str("\n")?;
        Ok(w.bytes_written())
    }
}

#[vtable]
impl configfs::GroupOperations for Root {
    type Child = PoolDir;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<PoolDir>, Error>> {
        if !volcfg::valid_name(name.to_bytes()) {
            pr_err!(
                "pool name '{}' invalid: 1-31 characters of [A-Za-z0-9_.-]\n",
                Shown(name.to_bytes())
            );
            return Err(EINVAL);
        }
        let item_type = configfs_attrs! {
            container: configfs::Group<PoolDir>,
            data: PoolDir,
            child: VolumeConfig,
            attributes: [
                devices: 0,
                format: 1,
                enable: 2,
                status: 3,
                members: 4,
                volumes: 5,
                delete_volume: 6,
                snapshot: 7,
                clone: 8,
                promote: 9,
                rollback: 10,
                assemble_mode: 11,
                table_memory_limit: 12,
                checkpoint_zones: 13,
                evacuate: 14,
                migrate: 15,
                space_low_pct: 16,
                space_critical_pct: 17,
                no_space_timeout: 18,
                pool_reserve_pct: 19,
                remove: 20,
                tiering: 21,
                member_class: 22,
                scrub: 23,
                scrub_errors: 24,
            ],
        };
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(PoolDir {
                name: name.try_into()?,
                inner <- new_mutex!(PoolInner {
                    paths: KVec::new(),
                    format: 0,
                    mode: AssembleMode::Normal,
                    table_limit: 0,
                    space: Thresholds::DEFAULT,
                    no_space_timeout: 0,
                    pool_reserve_pct: 0,
                    tiering: None,
                    ckpt_zones: 0,
                    active: None,
                }),
            }),
        ))
    }
}

/// A pool directory, `/sys/kernel/config/zvpool/POOL/`.
#[pin_data]
pub(crate) struct PoolDir {
    name: CString,
    #[pin]
    inner: Mutex<PoolInner>,
}

struct PoolInner {
    /// Member paths, in member order.
    paths: KVec<CString>,
    /// 0 assemble, 1 format if blank, 2 format always.
    format: u8,
    /// How the next assembly treats damaged metadata.
    mode: AssembleMode,
    /// `table_memory_limit` as written (0: the default).
    table_limit: u64,
    /// `space_low_pct`, `space_critical_pct`.
    space: Thresholds,
    /// `no_space_timeout`, seconds.
    no_space_timeout: u64,
    /// `pool_reserve_pct`.
    pool_reserve_pct: u64,
    /// `tiering` as written while not enabled (applied, and so kept on
    /// disk, at the next enable).
    tiering: Option<bool>,
    /// `checkpoint_zones` as written (0: chosen at format).
    ckpt_zones: u32,
    active: Option<Arc<ActivePool>>,
}

impl PoolInner {
    /// Commits the pool's metadata and closes its members.
    fn stop(&mut self, name: &CStr) -> Result {
        if let Some(p) = &self.active {
            let n = p.bound();
            if n > 0 {
                pr_err!(
                    "{}: {} volume(s) still bound; remove their directories first\n",
                    name,
                    n
                );
                return Err(EBUSY);
            }
        }
        if let Some(p) = self.active.take() {
            registry::remove_pool(&p);
            // Breaks the cycle pool -> members -> holder -> pool; then no
            // health check runs any more.
            p.watch.detach();
            p.health_stop();
            p.stop_gc();
            let r = p.commit();
            match r {
                Err(e) => pr_err!("{}: final metadata commit failed: {:?}\n", name, e),
                Ok(()) if !p.read_only => {
                    // The closing commit block: damage to the newest commit
                    // is told from a torn tail at the next assembly.
                    if let Err(e) = p.close_metadata() {
                        pr_warn!("{}: closing journal block not written: {:?}\n", name, e);
                    }
                }
                Ok(()) => {}
            }
            drop(p);
            pr_info!("{}: stopped\n", name);
            return r;
        }
        Ok(())
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // `rmdir` of an active pool: stop it cleanly.
        let _ = self.stop(c"(removed pool)");
        if let Some(p) = &self.active {
            registry::remove_pool(p);
        }
    }
}

/// `devices`: add a member by path (to an active pool: online, see
/// `membership.rs`); read the member list.
#[vtable]
impl configfs::AttributeOperations<0> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        for (i, p) in this.inner.lock().paths.iter().enumerate() {
            w.write_fmt(fmt!("{} {}\n", i, &**p))?;
        }
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let path = input(page)?.trim();
        let name = &*this.name;
        let mut g = this.inner.lock();
        if path.is_empty() {
            pr_err!("{}: empty device path\n", name);
            return Err(EINVAL);
        }
        let cpath = CString::try_from_fmt(fmt!("{}", path))?;
        let devt = bdev::lookup(&cpath).inspect_err(|e| {
            pr_err!(
                "{}: {} is not a block device: {:?}\n",
                name,
                Shown(path.as_bytes()),
                e
            );
        })?;
        for p in g.paths.iter() {
            if bdev::lookup(p).ok() == Some(devt) {
                pr_err!(
                    "{}: {} is already a member (as {})\n",
                    name,
                    Shown(path.as_bytes()),
                    &**p
                );
                return Err(EEXIST);
            }
        }
        if g.paths.len() >= MAX_DEVICES {
            pr_err!("{}: at most {} members\n", name, MAX_DEVICES);
            return Err(ENOSPC);
        }
        g.paths.reserve(1, GFP_KERNEL)?;
        if let Some(pool) = g.active.clone() {
            // Online: the pool grows (`membership.rs`); the directory's
            // lock keeps other configuration changes out meanwhile.
            pool.add_member(&cpath)?;
        }
        g.paths.push(cpath, GFP_KERNEL)?;
        Ok(())
    }
}

/// `format`: 0 assemble, 1 format blank members, 2 format even if not blank.
#[vtable]
impl configfs::AttributeOperations<1> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.inner.lock().format))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let v = match input(page)?.trim() {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            other => {
                pr_err!(
                    "{}: format must be 0, 1 or 2, not '{}'\n",
                    &*this.name,
                    Shown(other.as_bytes())
                );
                return Err(EINVAL);
            }
        };
        let mut g = this.inner.lock();
        if g.active.is_some() {
            pr_err!(
                "{}: pool is active; format applies when enabling\n",
                &*this.name
            );
            return Err(EBUSY);
        }
        g.format = v;
        Ok(())
    }
}

/// `enable`: 1 assembles (or formats) the pool, 0 stops it.
#[vtable]
impl configfs::AttributeOperations<2> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_str(if this.inner.lock().active.is_some() {
            "1\n"
        } else {
            "0\n"
        })?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let name = &*this.name;
        let on = match input(page)?.trim() {
            "1" => true,
            "0" => false,
            other => {
                pr_err!(
                    "{}: enable must be 0 or 1, not '{}'\n",
                    name,
                    Shown(other.as_bytes())
                );
                return Err(EINVAL);
            }
        };
        let mut g = this.inner.lock();
        match (on, g.active.is_some()) {
            (true, true) => {
                pr_err!("{}: already enabled\n", name);
                Err(EBUSY)
            }
            (false, false) => {
                pr_err!("{}: not enabled\n", name);
                Err(EBUSY)
            }
            (true, false) => {
                let pool = if g.format == 0 {
                    ActivePool::assemble(name, &g.paths, g.mode)
                        .inspect_err(|e| pr_err!("{}: assembly failed: {:?}\n", name, e))?
                } else {
                    ActivePool::create(name, &g.paths, g.format, g.ckpt_zones)
                        .inspect_err(|e| pr_err!("{}: format failed: {:?}\n", name, e))?
                };
                pool.tables.set_limit(nodes::effective_limit(g.table_limit));
                pool.set_space_thresholds(g.space);
                pool.gc
                    .no_space_timeout_ms
                    .store(g.no_space_timeout.saturating_mul(1000), Ordering::Relaxed);
                // Checked when written: cannot fail.
                let _ = pool.set_pool_reserve(g.pool_reserve_pct);
                // What the metadata says was under way goes on.
                pool.resume_policies();
                if let Some(on) = g.tiering.take() {
                    // Logged; the pool runs on without it.
                    let _ = pool.set_tiering(on);
                }
                if let Err(e) = registry::add_pool(&pool) {
                    // Only the control device would miss it: go on.
                    pr_warn!("{}: not listed on the control device: {:?}\n", name, e);
                }
                // From now on a member that dies is told to the pool (until
                // `stop` detaches it).
                pool.watch.attach(pool.clone());
                g.active = Some(pool);
                g.format = 0;
                g.mode = AssembleMode::Normal;
                Ok(())
            }
            (false, true) => g.stop(name),
        }
    }
}

/// `assemble_mode`: how the next `enable=1` assembles: `normal` (refuses
/// damaged metadata with `EUCLEAN`, a missing member with `ENODEV`),
/// `read-only`, `rewind` or `degraded` (one member may be missing). Back
/// to `normal` after a successful enable.
#[vtable]
impl configfs::AttributeOperations<11> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.inner.lock().mode.word()))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let text = input(page)?.trim();
        let Some(mode) = AssembleMode::parse(text) else {
            pr_err!(
                "{}: assemble_mode must be normal, read-only, rewind or degraded, not '{}'\n",
                &*this.name,
                Shown(text.as_bytes())
            );
            return Err(EINVAL);
        };
        let mut g = this.inner.lock();
        if g.active.is_some() {
            pr_err!(
                "{}: pool is active; assemble_mode applies when enabling\n",
                &*this.name
            );
            return Err(EBUSY);
        }
        g.mode = mode;
        Ok(())
    }
}

/// `evacuate`: write a member (index or device path) to move its data to
/// the other members online, `cancel` to stop; reads show the evacuation
/// (`none`, or the member with its progress).
#[vtable]
impl configfs::AttributeOperations<14> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let pool = this.inner.lock().active.clone();
        match pool.as_ref().and_then(|p| p.evacuation().map(|e| (p, e))) {
            None => w.write_str("none\n")?,
            Some((p, e)) => {
                let path = p
                    .members
                    .get(usize::from(e.member))
                    .and_then(|m| m.path.to_str().ok())
                    .unwrap_or("?");
                let state = if e.left_bytes == 0 { "done" } else { "running" };
                w.write_fmt(fmt!(
                    "{} {} {} start_bytes={} left_bytes={} elapsed_ms={}\n",
                    e.member,
                    path,
                    state,
                    e.start_bytes,
                    e.left_bytes,
                    e.elapsed_ms
                ))?
            }
        }
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let what = input(page)?.trim();
        let name = &*this.name;
        let Some(pool) = this.inner.lock().active.clone() else {
            pr_err!("{}: not enabled: nothing to evacuate\n", name);
            return Err(EINVAL);
        };
        if what == "cancel" {
            return pool.evacuate(None);
        }
        let Some(d) = pool.member_named(what) else {
            pr_err!(
                "{}: {} is not a member (give its index or device path, or cancel)\n",
                name,
                Shown(what.as_bytes())
            );
            return Err(ENOENT);
        };
        pool.evacuate(Some(d))
    }
}

/// `remove`: write a member (index or device path) to remove it from the
/// pool once evacuated, `force MEMBER` for a missing one (its blocks are
/// lost); reads list the removed members (`none`, or `INDEX` lines).
#[vtable]
impl configfs::AttributeOperations<20> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let pool = this.inner.lock().active.clone();
        let mut any = false;
        for (i, m) in pool.iter().flat_map(|p| p.members.iter().enumerate()) {
            if m.is_removed() {
                w.write_fmt(fmt!("{}\n", i))?;
                any = true;
            }
        }
        if !any {
            w.write_str("none\n")?;
        }
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let what = input(page)?.trim();
        let name = &*this.name;
        let (force, what) = match what.strip_prefix("force ") {
            Some(w) => (true, w.trim()),
            None => (false, what),
        };
        // The directory's lock keeps other configuration changes out.
        let mut g = this.inner.lock();
        let Some(pool) = g.active.clone() else {
            pr_err!("{}: not enabled: enable it to remove a member\n", name);
            return Err(EINVAL);
        };
        let Some(d) = pool.member_named(what) else {
            pr_err!(
                "{}: {} is not a member (give its index or device path)\n",
                name,
                Shown(what.as_bytes())
            );
            return Err(ENOENT);
        };
        pool.remove_member(d, force)?;
        // The next assembly goes without it.
        let path = pool.members.get(usize::from(d)).map(|m| &*m.path);
        if let Some(i) = g.paths.iter().position(|p| Some(&**p) == path) {
            let _ = g.paths.remove(i);
        }
        Ok(())
    }
}

/// `tiering`: `1` to place user writes on the fast members and GC's
/// copies on the slow ones (`member_class`), `0` (default) not to. Kept
/// in the pool's metadata: applies at once to an active pool (committed
/// before the write returns); written while not enabled, it applies at
/// the next enable. Reads show the active pool's setting, else what was
/// written (or `0`).
#[vtable]
impl configfs::AttributeOperations<21> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let (active, written) = {
            let g = this.inner.lock();
            (g.active.clone(), g.tiering)
        };
        let on = match active {
            Some(p) => p.state.lock().engine.alloc().tiering_asked(),
            None => written.unwrap_or(false),
        };
        w.write_fmt(fmt!("{}\n", u8::from(on)))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let on = match input(page)?.trim() {
            "1" => true,
            "0" => false,
            other => {
                pr_err!(
                    "{}: tiering '{}' invalid: 0 or 1\n",
                    &*this.name,
                    Shown(other.as_bytes())
                );
                return Err(EINVAL);
            }
        };
        let active = {
            let mut g = this.inner.lock();
            if g.active.is_none() {
                g.tiering = Some(on);
            }
            g.active.clone()
        };
        match active {
            Some(p) => p.set_tiering(on),
            None => Ok(()),
        }
    }
}

/// `scrub`: write `start [MIBS]` to read every written block of the pool
/// in the background (a pass under way starts again; at most MIBS MiB/s),
/// `stop` to stop it; reads show the pass (`scrub.rs`). Active pools only.
#[vtable]
impl configfs::AttributeOperations<23> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_active(this, page, |p, w| {
            let zones = p.state.lock().engine.geom().nr_zones();
            p.scrub.write_line(w, zones)
        })
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let arg = input(page)?.trim();
        let mut w = arg.split_ascii_whitespace();
        // `Some(rate)`: start (0: no limit); `None`: stop.
        let cmd = match (w.next(), w.next(), w.next()) {
            (Some("start"), None, None) => Some(Some(0)),
            (Some("start"), Some(r), None) => r.parse::<u32>().ok().map(Some),
            (Some("stop"), None, None) => Some(None),
            _ => None,
        };
        let Some(start) = cmd else {
            pr_err!(
                "{}: scrub '{}' invalid: start [MIBS] or stop\n",
                &*this.name,
                Shown(arg.as_bytes())
            );
            return Err(EINVAL);
        };
        let Some(p) = this.inner.lock().active.clone() else {
            pr_err!("{}: scrub: pool is not active\n", &*this.name);
            return Err(EBUSY);
        };
        p.scrub_ctl(start)
    }
}

/// `scrub_errors` (read-only): what the pass under way or the last one
/// found unreadable in volumes, one `VOLUME OFFSET BYTES` line per volume
/// extent (byte offset and length in the volume; `-` for a volume deleted
/// since), at most 32 (`scrub.rs`). Active pools only.
#[vtable]
impl configfs::AttributeOperations<24> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_active(this, page, |p, w| {
            let st = p.state.lock();
            p.scrub.each_found(|vol, lba, blocks| {
                match st.engine.volume(vol) {
                    Some(v) => {
                        for b in v.name.as_bytes() {
                            w.write_char(char::from(*b))?;
                        }
                    }
                    None => w.write_char('-')?,
                }
                let bs = BLOCK_SIZE as u64;
                writeln!(
                    w,
                    " {} {}",
                    lba.saturating_mul(bs),
                    blocks.saturating_mul(bs)
                )
            })
        })
    }
}

/// `member_class`: write `MEMBER fast|slow` (member by index or device
/// path) to set its class; reads list `INDEX fast|slow`, one a line. The
/// default follows the device: SMR slow, others fast. Active pools only;
/// kept in the pool's metadata (committed before the write returns).
#[vtable]
impl configfs::AttributeOperations<22> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        if let Some(p) = this.inner.lock().active.clone() {
            for i in 0..p.members.len() {
                let slow = p.state.lock().engine.member_class(i as u16);
                w.write_fmt(fmt!("{} {}\n", i, if slow { "slow" } else { "fast" }))?;
            }
        }
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let text = input(page)?.trim();
        let name = &*this.name;
        let Some((who, class)) = text.rsplit_once(' ') else {
            pr_err!("{}: member_class: write 'MEMBER fast|slow'\n", name);
            return Err(EINVAL);
        };
        let slow = match class {
            "slow" => true,
            "fast" => false,
            _ => {
                pr_err!(
                    "{}: member_class '{}' invalid: fast or slow\n",
                    name,
                    Shown(class.as_bytes())
                );
                return Err(EINVAL);
            }
        };
        let Some(pool) = this.inner.lock().active.clone() else {
            pr_err!("{}: not enabled: enable it to set a member's class\n", name);
            return Err(EINVAL);
        };
        let Some(d) = pool.member_named(who.trim()) else {
            pr_err!(
                "{}: {} is not a member (give its index or device path)\n",
                name,
                Shown(who.as_bytes())
            );
            return Err(ENOENT);
        };
        pool.set_member_class(d, slow)
    }
}

/// `migrate`: write `VOLUME MEMBER[,MEMBER...]` (members by index or
/// device path) or `VOLUME fast|slow` (a class) to place a volume's data
/// there and move it online, `VOLUME any` to end a volume's placement,
/// `cancel` to end the placement of the volume walked last. Placements
/// are kept in the pool's metadata (committed before the write returns):
/// the volume's new blocks and GC's copies of them stay there, and an
/// assembly walks every placed volume again. Reads show the walk under
/// way or done last (`none`, or the volume, its placement and progress).
#[vtable]
impl configfs::AttributeOperations<15> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        match this.inner.lock().active.clone() {
            None => w.write_str("none\n")?,
            Some(p) => p.migration_line(&mut w)?,
        }
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let what = input(page)?.trim();
        let name = &*this.name;
        let Some(pool) = this.inner.lock().active.clone() else {
            pr_err!("{}: not enabled: nothing to migrate\n", name);
            return Err(EINVAL);
        };
        if what == "cancel" {
            return pool.migrate(None);
        }
        let mut words = what.split_whitespace();
        let (Some(vol), Some(list), None) = (words.next(), words.next(), words.next()) else {
            pr_err!(
                "{}: migrate takes 'VOLUME MEMBER[,MEMBER...]', 'VOLUME fast|slow|any' or 'cancel'\n",
                name
            );
            return Err(EINVAL);
        };
        let class = match list {
            "fast" => Some(Placement::Fast),
            "slow" => Some(Placement::Slow),
            "any" => Some(Placement::Any),
            _ => None,
        };
        if let Some(place) = class {
            return pool.migrate(Some((vol.as_bytes(), place)));
        }
        let mut members = 0u64;
        for m in list.split(',') {
            let Some(d) = pool.member_named(m) else {
                pr_err!(
                    "{}: {} is not a member (give indexes or device paths)\n",
                    name,
                    Shown(m.as_bytes())
                );
                return Err(ENOENT);
            };
            members |= 1u64.checked_shl(u32::from(d)).unwrap_or(0);
        }
        pool.migrate(Some((vol.as_bytes(), Placement::Members(members))))
    }
}

/// `table_memory_limit`: bytes the pool's block tables may use in memory
/// (0: the default, half of the machine's memory). Applies at once to an
/// active pool; reads show the limit in force.
#[vtable]
impl configfs::AttributeOperations<12> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let g = this.inner.lock();
        let limit = match &g.active {
            Some(p) => p.tables.limit(),
            None => nodes::effective_limit(g.table_limit),
        };
        w.write_fmt(fmt!("{}\n", limit))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let Some(v) = volcfg::parse_u64(page) else {
            pr_err!(
                "{}: table_memory_limit takes bytes (decimal; 0 for the default)\n",
                &*this.name
            );
            return Err(EINVAL);
        };
        let mut g = this.inner.lock();
        g.table_limit = v;
        if let Some(p) = &g.active {
            p.tables.set_limit(nodes::effective_limit(v));
        }
        Ok(())
    }
}

/// `space_low_pct` and `space_critical_pct`: the percentages of the
/// capacity holding live data at which the pool's space event says `low`
/// and `critical` (0: off; configfs-abi.md, "Events"). Any state; apply at
/// once to an active pool.
fn space_show(this: &PoolDir, page: &mut [u8; PAGE_SIZE], critical: bool) -> Result<usize> {
    let mut w = Formatter::new(page);
    let t = this.inner.lock().space;
    w.write_fmt(fmt!(
        "{}\n",
        if critical { t.critical_pct } else { t.low_pct }
    ))?;
    Ok(w.bytes_written())
}

fn space_store(this: &PoolDir, page: &[u8], critical: bool) -> Result {
    let what = if critical {
        "space_critical_pct"
    } else {
        "space_low_pct"
    };
    let Some(v) = volcfg::parse_u64(page).filter(|v| *v <= 100) else {
        pr_err!("{}: {} takes 0 (off) to 100\n", &*this.name, what);
        return Err(EINVAL);
    };
    let mut g = this.inner.lock();
    let mut t = g.space;
    if critical {
        t.critical_pct = v;
    } else {
        t.low_pct = v;
    }
    if t.low_pct > 0 && t.critical_pct > 0 && t.low_pct >= t.critical_pct {
        pr_err!(
            "{}: space_low_pct ({}) must be below space_critical_pct ({})\n",
            &*this.name,
            t.low_pct,
            t.critical_pct
        );
        return Err(EINVAL);
    }
    g.space = t;
    if let Some(p) = &g.active {
        p.set_space_thresholds(t);
    }
    Ok(())
}

#[vtable]
impl configfs::AttributeOperations<16> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        space_show(this, page, false)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        space_store(this, page, false)
    }
}

#[vtable]
impl configfs::AttributeOperations<17> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        space_show(this, page, true)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        space_store(this, page, true)
    }
}

/// `no_space_timeout`: seconds a write waits for space from outside (a
/// member added, data discarded) once GC can free none, before it fails
/// with ENOSPC (0, the default: at once). Any state; applies at once.
#[vtable]
impl configfs::AttributeOperations<18> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.inner.lock().no_space_timeout))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let Some(v) = volcfg::parse_u64(page).filter(|v| *v <= NO_SPACE_TIMEOUT_MAX_S) else {
            pr_err!(
                "{}: no_space_timeout takes seconds, 0 (fail at once) to {}\n",
                &*this.name,
                NO_SPACE_TIMEOUT_MAX_S
            );
            return Err(EINVAL);
        };
        let mut g = this.inner.lock();
        g.no_space_timeout = v;
        if let Some(p) = &g.active {
            p.gc.no_space_timeout_ms
                .store(v.saturating_mul(1000), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// `pool_reserve_pct`: percent of the capacity no volume may take (kept for
/// GC and the administrator; `zvcore::pool::quota`). 0 (default) to 50.
/// Any state; applies at once to an active pool's later writes.
#[vtable]
impl configfs::AttributeOperations<19> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.inner.lock().pool_reserve_pct))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let max = crate::zvcore::pool::quota::POOL_RESERVE_MAX_PCT;
        let Some(v) = volcfg::parse_u64(page).filter(|v| *v <= max) else {
            pr_err!("{}: pool_reserve_pct takes 0 to {}\n", &*this.name, max);
            return Err(EINVAL);
        };
        let mut g = this.inner.lock();
        if let Some(p) = &g.active {
            p.set_pool_reserve(v)?;
        }
        g.pool_reserve_pct = v;
        Ok(())
    }
}

/// Longest `no_space_timeout` (one day).
const NO_SPACE_TIMEOUT_MAX_S: u64 = 86_400;

/// `checkpoint_zones`: zones of each member in each of the two checkpoint
/// sets of a pool about to be formatted (0: chosen from the pool's size,
/// see `format::layout`). Fixed at format: reads show an active pool's.
#[vtable]
impl configfs::AttributeOperations<13> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let g = this.inner.lock();
        let k = match &g.active {
            Some(p) => p.checkpoint_zones(),
            None => g.ckpt_zones,
        };
        w.write_fmt(fmt!("{}\n", k))?;
        Ok(w.bytes_written())
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let most = u64::from(crate::zvcore::format::layout::ckpt_zones_of(
            crate::zvcore::geom::MAX_META_ZONES,
        ));
        let Some(v) = volcfg::parse_u64(page).filter(|v| *v <= most) else {
            pr_err!(
                "{}: checkpoint_zones takes 0 (chosen at format) to {}\n",
                &*this.name,
                most
            );
            return Err(EINVAL);
        };
        let mut g = this.inner.lock();
        if g.active.is_some() {
            pr_err!(
                "{}: checkpoint_zones is fixed once the pool is formatted\n",
                &*this.name
            );
            return Err(EBUSY);
        }
        g.ckpt_zones = u32::try_from(v).map_err(|_| EINVAL)?;
        Ok(())
    }
}

/// Shows the text an active pool produces, or `state inactive`.
fn show_active(
    this: &PoolDir,
    page: &mut [u8; PAGE_SIZE],
    f: impl FnOnce(&ActivePool, &mut Formatter<'_>) -> core::fmt::Result,
) -> Result<usize> {
    let mut w = Formatter::new(page);
    let g = this.inner.lock();
    match &g.active {
        Some(p) => f(p, &mut w)?,
        None => w.write_str("state inactive\n")?,
    }
    Ok(w.bytes_written())
}

/// `status` (read-only).
#[vtable]
impl configfs::AttributeOperations<3> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_active(this, page, |p, w| p.status(w))
    }
}

/// `members` (read-only).
#[vtable]
impl configfs::AttributeOperations<4> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = Formatter::new(page);
        let g = this.inner.lock();
        if let Some(p) = &g.active {
            p.members_text(&mut w)?;
        }
        Ok(w.bytes_written())
    }
}

/// `volumes` (read-only).
#[vtable]
impl configfs::AttributeOperations<5> for PoolDir {
    type Data = PoolDir;

    fn show(this: &PoolDir, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let g = this.inner.lock();
        Ok(g.active.as_ref().map_or(0, |p| p.volumes_text(page)))
    }
}

/// `delete_volume` (write-only): deletes the named volume from the pool's
/// metadata; its blocks return to the pool. The volume must not be bound.
#[vtable]
impl configfs::AttributeOperations<6> for PoolDir {
    type Data = PoolDir;

    fn show(_this: &PoolDir, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let vol = input(page)?.trim();
        let name = &*this.name;
        let g = this.inner.lock();
        let Some(p) = &g.active else {
            pr_err!("{}: pool is not active\n", name);
            return Err(EBUSY);
        };
        let Some(id) = p.find_volume(vol.as_bytes()) else {
            pr_err!("{}: no volume named '{}'\n", name, Shown(vol.as_bytes()));
            return Err(ENOENT);
        };
        if p.is_bound(vol.as_bytes()) {
            pr_err!(
                "{}: volume '{}' is bound; remove its directory first\n",
                name,
                Shown(vol.as_bytes())
            );
            return Err(EBUSY);
        }
        p.vol_delete(id).inspect_err(|e| {
            pr_err!(
                "{}: cannot delete volume '{}': {:?}\n",
                name,
                Shown(vol.as_bytes()),
                e
            )
        })?;
        pr_info!("{}: deleted volume '{}'\n", name, vol);
        Ok(())
    }
}

impl PoolDir {
    /// Runs `f` on the active pool for a write to attribute `attr` (or
    /// fails with `EBUSY`), holding the pool directory's lock: `enable=0`
    /// waits until the operation is over, so that nothing commits after
    /// "stopped" and a new activation never meets an old one. `f` logs its
    /// success itself, under this lock (a configuration mutex no logging
    /// path takes; the engine lock is not held): the log's order is then
    /// the commits' order, and no success line follows "stopped".
    /// The outer error is the pool's state (logged), the inner `f`'s.
    fn with_active<R>(
        &self,
        attr: &str,
        f: impl FnOnce(&ActivePool) -> Result<R>,
    ) -> Result<Result<R>> {
        let g = self.inner.lock();
        let Some(p) = &g.active else {
            drop(g);
            pr_err!("{}: {}: pool is not active\n", &*self.name, attr);
            return Err(EBUSY);
        };
        Ok(f(p))
    }
}

/// Logs why a snapshot operation was refused and passes the error on.
fn refused(pool: &CStr, what: &str, arg: &str, e: Error) -> Error {
    let why = if e == EEXIST {
        "the name exists"
    } else if e == ENOENT {
        "no such volume"
    } else if e == EINVAL {
        "invalid name or kind of volume"
    } else if e == EROFS {
        "the volume is a snapshot, or the pool is read-only"
    } else if e == ENOSPC {
        "no room for another volume"
    } else {
        "error"
    };
    pr_err!(
        "{}: cannot {} '{}': {} ({:?})\n",
        pool,
        what,
        Shown(arg.as_bytes()),
        why,
        e
    );
    e
}

/// `snapshot` (write-only): `VOLUME@SNAP` takes a snapshot of VOLUME.
#[vtable]
impl configfs::AttributeOperations<7> for PoolDir {
    type Data = PoolDir;

    fn show(_this: &PoolDir, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let arg = input(page)?.trim();
        if !volcfg::valid_volume_name(arg.as_bytes())
            || volinfo::snapshot_split(arg.as_bytes()).is_none()
        {
            pr_err!(
                "{}: snapshot name '{}' invalid: VOLUME@SNAP, at most 31 characters\n",
                &*this.name,
                Shown(arg.as_bytes())
            );
            return Err(EINVAL);
        }
        this.with_active("snapshot", |p| {
            let id = p
                .snap_create(arg.as_bytes())
                .map_err(|e| refused(&this.name, "take snapshot", arg, e))?;
            pr_info!(
                "{}: snapshot '{}' taken (volume {})\n",
                &*this.name,
                arg,
                id
            );
            Ok(())
        })?
    }
}

/// `clone` (write-only): `SNAPSHOT NAME` makes writable volume NAME from
/// SNAPSHOT.
#[vtable]
impl configfs::AttributeOperations<8> for PoolDir {
    type Data = PoolDir;

    fn show(_this: &PoolDir, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let arg = input(page)?.trim();
        let mut words = arg.split_ascii_whitespace();
        let (Some(snap), Some(name), None) = (words.next(), words.next(), words.next()) else {
            pr_err!("{}: clone takes 'SNAPSHOT NAME'\n", &*this.name);
            return Err(EINVAL);
        };
        if !volcfg::valid_name(name.as_bytes()) || name.contains('@') {
            pr_err!(
                "{}: volume name '{}' invalid: 1-31 characters of [A-Za-z0-9_.-]\n",
                &*this.name,
                Shown(name.as_bytes())
            );
            return Err(EINVAL);
        }
        this.with_active("clone", |p| {
            let id = p
                .clone_volume(snap.as_bytes(), name.as_bytes())
                .map_err(|e| refused(&this.name, "clone", snap, e))?;
            pr_info!(
                "{}: volume '{}' cloned from '{}' (volume {})\n",
                &*this.name,
                name,
                snap,
                id
            );
            Ok(())
        })?
    }
}

/// `promote` (write-only): `VOLUME` stops sharing metadata with its origin.
#[vtable]
impl configfs::AttributeOperations<9> for PoolDir {
    type Data = PoolDir;

    fn show(_this: &PoolDir, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let arg = input(page)?.trim();
        this.with_active("promote", |p| {
            p.promote(arg.as_bytes())
                .map_err(|e| refused(&this.name, "promote", arg, e))?;
            pr_info!("{}: volume '{}' promoted\n", &*this.name, arg);
            Ok(())
        })?
    }
}

/// `rollback` (write-only): `VOLUME@SNAP` rolls VOLUME back to that
/// snapshot; VOLUME must not be bound.
#[vtable]
impl configfs::AttributeOperations<10> for PoolDir {
    type Data = PoolDir;

    fn show(_this: &PoolDir, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    fn store(this: &PoolDir, page: &[u8]) -> Result {
        let arg = input(page)?.trim();
        let Some(at) = volinfo::snapshot_split(arg.as_bytes()) else {
            pr_err!("{}: rollback takes 'VOLUME@SNAP'\n", &*this.name);
            return Err(EINVAL);
        };
        let vol = arg.get(..at).ok_or(EINVAL)?;
        // Under the pool's lock: no directory can bind VOLUME meanwhile.
        let g = this.inner.lock();
        let Some(p) = &g.active else {
            pr_err!("{}: rollback: pool is not active\n", &*this.name);
            return Err(EBUSY);
        };
        if p.is_bound(vol.as_bytes()) {
            pr_err!(
                "{}: cannot roll back '{}': it is bound; remove its directory first\n",
                &*this.name,
                Shown(vol.as_bytes())
            );
            return Err(EBUSY);
        }
        p.rollback(arg.as_bytes())
            .map_err(|e| refused(&this.name, "roll back to", arg, e))?;
        pr_info!(
            "{}: volume '{}' rolled back to '{}'\n",
            &*this.name,
            vol,
            arg
        );
        Ok(())
    }
}

#[vtable]
impl configfs::GroupOperations for PoolDir {
    type Child = VolumeConfig;

    fn make_group(
        &self,
        name: &CStr,
    ) -> Result<impl PinInit<configfs::Group<VolumeConfig>, Error>> {
        let pool = &*self.name;
        if !volcfg::valid_volume_name(name.to_bytes()) {
            pr_err!(
                "{}: volume name '{}' invalid: 1-31 characters of [A-Za-z0-9_.-], snapshots VOLUME@SNAP\n",
                pool,
                Shown(name.to_bytes())
            );
            return Err(EINVAL);
        }
        let g = self.inner.lock();
        let Some(p) = &g.active else {
            pr_err!(
                "{}: cannot add volume '{}': pool is not active\n",
                pool,
                Shown(name.to_bytes())
            );
            return Err(EBUSY);
        };
        volcfg::new_group(p, name)
    }
}
