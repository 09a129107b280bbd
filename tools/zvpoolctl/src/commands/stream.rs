// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl snapshot send` and `snapshot receive`: snapshot streams
//! (`Documentation/stream-format.md`) on stdout and stdin. The format is
//! in `crate::stream`, the choice of extents in `stream::diff`, the
//! writing in `stream::apply`.

use super::device::{self, attach};
use super::volume::{active_pool, create_volume, FEATURE_SNAPSHOTS};
use super::{check_snapshot_name, split_snapshot, split_volume, Ctx};
use crate::abi::{self, KIND_SNAPSHOT};
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure, EINVAL};
use crate::progress::Progress;
use crate::size::human;
use crate::stream::apply::{apply, ApplyOpts};
use crate::stream::diff::{parse_listing, send as encode, BlockScan, KernelList};
use crate::stream::{Decoder, Header, Identity};

pub const OPT_INCREMENTAL: OptSpec = OptSpec {
    long: "incremental",
    short: Some('i'),
    value: Some("VOL@BASE"),
    help: "send only what differs from this older snapshot of the same volume \
           (POOL/VOL@BASE or VOL@BASE)",
};
pub const OPT_RESUME: OptSpec = OptSpec {
    long: "resume",
    short: None,
    value: None,
    help: "continue an interrupted receive: the stream is applied again into the \
           existing volume, writing only what it does not hold yet",
};

/// The newest snapshot (highest id) of `vol` in `meta`.
fn newest_snapshot<'m>(meta: &'m [abi::VolumeEntry], vol: &str) -> Option<&'m abi::VolumeEntry> {
    let prefix = format!("{vol}@");
    meta.iter()
        .filter(|m| m.kind == KIND_SNAPSHOT && m.name.starts_with(&prefix))
        .max_by_key(|m| m.id)
}

/// `snapshot send POOL/VOL@SNAP [-i VOL@BASE]`.
pub fn send(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "snapshot send";
    let (pool, snap, vol) = split_snapshot(&p.args[0], cmd)?;
    let base = match p.value("incremental") {
        None => None,
        Some(b) => {
            let name = match b.split_once('/') {
                Some((bp, bn)) if bp == pool => bn,
                Some((bp, _)) => {
                    return Err(Error::usage(
                        format!("the base must be in the snapshot's pool ({pool}), not {bp:?}"),
                        cmd,
                    ))
                }
                None => b,
            };
            let (bvol, _) = check_snapshot_name(name, cmd)?;
            if bvol != vol {
                return Err(Error::usage(
                    format!("the base {name} is not a snapshot of {vol}"),
                    cmd,
                ));
            }
            if name == snap {
                return Err(Error::usage("the base is the snapshot itself", cmd));
            }
            Some(name)
        }
    };
    let what = format!("send {pool}/{snap}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    let meta = ctx.meta_volumes(&po)?;
    let find = |n: &str| {
        meta.iter()
            .find(|m| m.name == n && m.kind == KIND_SNAPSHOT)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    what.clone(),
                    format!("no snapshot {pool}/{n} (see 'zvpoolctl snapshot list {pool}/{vol}')"),
                )
            })
    };
    let s = find(snap)?;
    let b = base.map(find).transpose()?;
    if let Some(b) = &b {
        if b.id > s.id {
            return Err(Failure::new(
                what,
                format!("the base {pool}/{} is newer than {pool}/{snap}", b.name),
            )
            .into());
        }
    }
    let uuid = ctx.status(&po)?.get("uuid").unwrap_or("").to_string();
    let ident = |name: &str| Identity {
        pool_uuid: uuid.clone(),
        volume: vol.to_string(),
        snapshot: name.split_once('@').map_or(name, |x| x.1).to_string(),
    };
    let size = s.size.ok_or_else(|| {
        Failure::new(
            what.clone(),
            format!("the kernel does not list the size of {snap}"),
        )
    })?;
    let header = Header {
        volume_size: size,
        snap: ident(snap),
        base: b.as_ref().map(|b| ident(&b.name)),
    };
    // The kernel's list of what differs, where the module has it (else the
    // devices are compared block by block).
    let cmdline = match base {
        Some(b) => format!("diff {pool} {snap} {b}"),
        None => format!("diff {pool} {snap}"),
    };
    let listed = match ctx.backend.control(&cmdline) {
        Ok(Some(text)) => {
            let (lsize, items) = parse_listing(&text).map_err(|e| Failure::new(what.clone(), e))?;
            if lsize != size {
                return Err(Failure::new(
                    what,
                    format!("the kernel lists {lsize} bytes for {snap}, configfs {size}"),
                )
                .into());
            }
            Some(items)
        }
        Ok(None) => None,
        // A module without the command.
        Err(e) if e.raw_os_error() == Some(EINVAL) => None,
        Err(e) => {
            return Err(Failure::new(
                what,
                format!("list the extents to send: {}", crate::error::io_text(&e)),
            )
            .into())
        }
    };
    // Only the snapshot's device is read when the kernel lists the extents.
    let read_base = base.filter(|_| listed.is_none());
    let sa = attach(ctx, pool, snap, &what)?;
    let ba = match read_base {
        Some(n) => match attach(ctx, pool, n, &what) {
            Ok(a) => Some(a),
            Err(e) => {
                let _ = sa.detach(ctx);
                return Err(e);
            }
        },
        None => None,
    };
    let backend = ctx.backend;
    let quiet = p.flag("quiet");
    let r = (|| -> Result<_, Failure> {
        let mut sd = device::open(backend, &sa, false, &what)?;
        if sd.size() != size {
            return Err(Failure::new(
                what.clone(),
                format!("{} has {} bytes, the snapshot {size}", sa.node, sd.size()),
            ));
        }
        let mut prog = Progress::new(format!("send {pool}/{snap}"), size, quiet);
        let io = |e: std::io::Error| Failure::new(what.clone(), crate::error::io_text(&e));
        let st = match (&ba, listed) {
            (_, Some(items)) => {
                let mut list = KernelList::new(sd.as_mut(), items);
                encode(&mut list, &header, &mut *ctx.out, &mut prog).map_err(io)?
            }
            (Some(ba), None) => {
                let mut bd = device::open(backend, ba, false, &what)?;
                let mut scan = BlockScan::incremental(sd.as_mut(), bd.as_mut());
                encode(&mut scan, &header, &mut *ctx.out, &mut prog).map_err(io)?
            }
            (None, None) => {
                let mut scan = BlockScan::full(sd.as_mut());
                encode(&mut scan, &header, &mut *ctx.out, &mut prog).map_err(io)?
            }
        };
        prog.finish();
        Ok(st)
    })();
    // Put both devices back; the first failure wins, later ones are notes.
    let mut f = r.as_ref().err().cloned();
    if let Some(ba) = ba {
        f = ba.settle(ctx, f);
    }
    let st = match (r, sa.settle(ctx, f)) {
        (Ok(st), None) => st,
        (_, Some(f)) | (Err(f), None) => return Err(f.into()),
    };
    if !quiet {
        let kind = match base {
            Some(b) => format!("incremental from {pool}/{b}"),
            None => "full".into(),
        };
        let _ = writeln!(
            ctx.err,
            "sent {pool}/{snap} ({kind}): {} of data, {} of holes, a stream of {}",
            human(st.data_bytes),
            human(st.hole_bytes),
            human(st.stream_bytes)
        );
    }
    Ok(())
}

/// `snapshot receive [--resume] POOL/VOL < STREAM`.
pub fn receive(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "snapshot receive";
    let (pool, vol) = split_volume(&p.args[0], cmd)?;
    let resume = p.flag("resume");
    let what = format!("receive into {pool}/{vol}");
    let po = active_pool(ctx, pool, &what)?;
    ctx.require_feature(FEATURE_SNAPSHOTS, &what)?;
    // The stream is this command's own: take it out of the context (an
    // empty reader, zero-sized, takes its place).
    let input = std::mem::replace(&mut ctx.input, Box::leak(Box::new(std::io::empty())));
    let (mut dec, h) = Decoder::new(input)
        .map_err(|e| Failure::new(what.clone(), format!("refused the stream: {e}")))?;
    let snap = format!("{vol}@{}", h.snap.snapshot);
    check_snapshot_name(&snap, cmd).map_err(|_| {
        Failure::new(
            what.clone(),
            format!("the stream's snapshot name gives {snap:?}, not a valid snapshot name here"),
        )
    })?;
    let meta = ctx.meta_volumes(&po)?;
    if meta.iter().any(|m| m.name == snap) {
        return Err(Failure::new(
            what,
            format!("snapshot {pool}/{snap} exists (this stream was received already)"),
        )
        .into());
    }
    let target = meta.iter().find(|m| m.name == vol);
    let refuse = |why: String| -> Error { Failure::new(what.clone(), why).into() };
    let mut fresh = false;
    match (&h.base, target, resume) {
        (None, None, false) => {
            create_volume(ctx, pool, vol, h.volume_size, 1)?;
            fresh = true;
        }
        (None, Some(_), false) => {
            return Err(refuse(format!(
                "volume {pool}/{vol} exists: a full stream ({}) is received into a new volume \
                 (or use --resume to continue an interrupted receive into it)",
                h.snap
            )))
        }
        (_, None, _) => {
            return Err(refuse(if h.base.is_some() {
                format!(
                    "no volume {pool}/{vol}: an incremental stream applies on top of its base {}",
                    h.base.as_ref().map(ToString::to_string).unwrap_or_default()
                )
            } else {
                format!("no volume {pool}/{vol} to resume into")
            }))
        }
        (None, Some(t), true) => {
            if t.size != Some(h.volume_size) || newest_snapshot(&meta, vol).is_some() {
                return Err(refuse(format!(
                    "{pool}/{vol} is not an interrupted full receive of {} (its size differs or it has snapshots)",
                    h.snap
                )));
            }
        }
        (Some(base), Some(t), _) => {
            let want = format!("{vol}@{}", base.snapshot);
            match newest_snapshot(&meta, vol) {
                Some(n) if n.name == want => {}
                Some(n) => {
                    return Err(refuse(format!(
                    "the stream's base is {} but the newest snapshot of {pool}/{vol} is {pool}/{}",
                    base, n.name
                )))
                }
                None => {
                    return Err(refuse(format!(
                        "the stream's base is {base} but {pool}/{vol} has no snapshot"
                    )))
                }
            }
            if t.size != Some(h.volume_size) {
                let v = Obj::volume(pool, vol);
                let bound = ctx.backend.exists(&v);
                if !bound {
                    ctx.mkdir(&v)
                        .map_err(|e| e.fail(format!("{what}: bind {v}")))?;
                }
                let r = ctx.write(&v, "size", &h.volume_size.to_string());
                if !bound {
                    let _ = ctx.rmdir(&v);
                }
                r.map_err(|e| e.fail(format!("{what}: resize {v} to {}", h.volume_size)))?;
            }
        }
    }
    let a = attach(ctx, pool, vol, &what)?;
    let backend = ctx.backend;
    let quiet = p.flag("quiet");
    let opts = ApplyOpts { fresh, resume };
    let r = device::open(backend, &a, true, &what).and_then(|mut dev| {
        let mut prog = Progress::new(format!("receive {pool}/{snap}"), h.volume_size, quiet);
        let st = apply(&mut dec, dev.as_mut(), opts, &mut prog).map_err(|e| {
            Failure::new(what.clone(), format!("stream refused: {}", e.msg))
                .note(format!(
                    "{pool}/{vol} holds the {} record(s) before the damage (up to volume offset {}); no snapshot was taken",
                    e.records, e.good_to
                ))
                .note(format!(
                    "hint: send the stream again into 'zvpoolctl snapshot receive --resume {pool}/{vol}'"
                ))
        })?;
        prog.finish();
        Ok(st)
    });
    let st = match r {
        Ok(st) => st,
        Err(f) => return Err(a.detach_after(ctx, f)),
    };
    a.detach(ctx)?;
    ctx.write(&po, "snapshot", &snap)
        .map_err(|e| e.fail(format!("{what}: take snapshot {pool}/{snap}")))?;
    let already = if st.already > 0 {
        format!(", {} already there", human(st.already))
    } else {
        String::new()
    };
    ctx.say(&format!(
        "received {pool}/{snap} ({}): {} record(s), {} written{already}, {} zeroed",
        match &h.base {
            Some(b) => format!("incremental on {pool}/{vol}@{}", b.snapshot),
            None => "full".into(),
        },
        st.records,
        human(st.written),
        human(st.zeroed)
    ));
    Ok(())
}
