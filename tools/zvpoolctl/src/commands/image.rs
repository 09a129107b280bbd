// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl volume import` and `volume export-image`: disk images (raw,
//! qcow2) into a new thin volume, and a volume or snapshot into a sparse
//! raw file or a qcow2 image. The data movement is in `crate::image`.

use super::device::{self, attach};
use super::volume::{active_pool, create_volume};
use super::{split_volume, split_volume_or_snapshot, Ctx, Undo, UndoStep};
use crate::backend::Obj;
use crate::cli::{OptSpec, Parsed};
use crate::error::{Error, Failure};
use crate::image::{self, export, import as imp, qcow2_export, Format};
use crate::progress::Progress;
use crate::size::{self, human};

pub const OPT_QUIET: OptSpec = OptSpec {
    long: "quiet",
    short: Some('q'),
    value: None,
    help: "no progress line on stderr (it is shown only when stderr is a terminal)",
};
pub const OPT_FORMAT: OptSpec = OptSpec {
    long: "format",
    short: Some('f'),
    value: Some("FORMAT"),
    help: "raw or qcow2 (import: detected by the file's magic when not given; \
           export-image: raw by default)",
};
pub const OPT_FOLLOW_BACKING: OptSpec = OptSpec {
    long: "follow-backing",
    short: None,
    value: None,
    help: "read a qcow2 image's backing file too (not implemented yet: refused)",
};

fn format_arg(p: &Parsed, cmd: &str) -> Result<Option<Format>, Error> {
    match p.value("format") {
        None => Ok(None),
        Some(f) => Format::parse(f).map(Some).ok_or_else(|| {
            Error::usage(format!("unknown image format {f:?}; use raw or qcow2"), cmd)
        }),
    }
}

/// `volume import POOL/VOL FILE`.
pub fn import(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume import";
    let (pool, name) = split_volume(&p.args[0], cmd)?;
    let file = p.args[1].as_str();
    let format = format_arg(p, cmd)?;
    let what = format!("import {file} into {pool}/{name}");
    active_pool(ctx, pool, &what)?;
    // Every refusal of the image comes before anything is created.
    let (fmt, mut img) = image::open(file, format, p.flag("follow-backing"))
        .map_err(|e| Failure::new(what.clone(), e))?;
    let vsize = img.virtual_size();
    let bytes = vsize.div_ceil(4096).saturating_mul(4096);
    size::check_volume_size(bytes).map_err(|e| {
        Failure::new(
            what.clone(),
            format!("the image's virtual size {vsize} bytes: {e}"),
        )
    })?;
    let vol = create_volume(ctx, pool, name, bytes, 1)?;
    let mut undo = Undo::new();
    undo.push(
        UndoStep::DeleteVolume(pool.to_string(), name.to_string()),
        format!("deleted the new volume {vol}"),
    );
    undo.push(
        UndoStep::Write(vol.clone(), "enable", "0".into()),
        format!("disabled the new volume {vol}"),
    );
    let r = (|| -> Result<(String, imp::Stats), Failure> {
        let node = super::volume::device_node(ctx, &vol)
            .ok_or_else(|| Failure::new(what.clone(), format!("{vol} has no block device")))?;
        let mut dev = ctx.backend.open_volume(&node, true).map_err(|e| {
            Failure::new(
                what.clone(),
                format!("open {node}: {}", crate::error::io_text(&e)),
            )
        })?;
        let mut prog = Progress::new(format!("import {vol}"), img.allocated(), p.flag("quiet"));
        let st = imp::import(img.as_mut(), dev.as_mut(), &mut prog)
            .map_err(|e| Failure::new(what.clone(), e))?;
        dev.sync().map_err(|e| {
            Failure::new(
                what.clone(),
                format!("flush {node}: {}", crate::error::io_text(&e)),
            )
        })?;
        prog.finish();
        Ok((node, st))
    })();
    let (node, st) = match r {
        Ok(v) => v,
        Err(f) => return Err(undo.rollback(ctx, f)),
    };
    let rounded = if bytes != vsize {
        format!(" (rounded up from {vsize} bytes)")
    } else {
        String::new()
    };
    ctx.say(&format!(
        "imported {file} ({}, {} virtual{rounded}) into volume {vol}: {} written, {node}",
        fmt.name(),
        human(bytes),
        human(st.written)
    ));
    Ok(())
}

/// `volume export-image POOL/VOL[@SNAP] FILE`.
pub fn export_image(ctx: &mut Ctx<'_>, p: &Parsed) -> Result<(), Error> {
    let cmd = "volume export-image";
    let (pool, name) = split_volume_or_snapshot(&p.args[0], cmd)?;
    let file = p.args[1].as_str();
    let fmt = format_arg(p, cmd)?.unwrap_or(Format::Raw);
    let what = format!("export {pool}/{name} to {file}");
    let po = active_pool(ctx, pool, &what)?;
    if !ctx.backend.exists(&Obj::volume(pool, name))
        && !ctx.meta_volumes(&po)?.iter().any(|m| m.name == name)
    {
        return Err(Failure::new(what, "no such volume or snapshot").into());
    }
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| {
            Failure::new(
                what.clone(),
                format!(
                    "create {file}: {} (it is never overwritten)",
                    crate::error::io_text(&e)
                ),
            )
        })?;
    let a = match attach(ctx, pool, name, &what) {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            return Err(e);
        }
    };
    let backend = ctx.backend;
    let r = device::open(backend, &a, false, &what).and_then(|mut dev| {
        let mut prog = Progress::new(format!("export {pool}/{name}"), dev.size(), p.flag("quiet"));
        let n = match fmt {
            Format::Raw => export::export_raw(dev.as_mut(), &out, &mut prog),
            Format::Qcow2 => qcow2_export::export_qcow2(dev.as_mut(), &out, &mut prog),
        }
        .map_err(|e| Failure::new(what.clone(), e))?;
        prog.finish();
        Ok((dev.size(), n))
    });
    let node = a.node.clone();
    match r {
        Ok((size, n)) => {
            a.detach(ctx)?;
            ctx.say(&format!(
                "exported {pool}/{name} ({node}) to {file}: {}, {}, {} of data (the rest is holes)",
                fmt.name(),
                human(size),
                human(n)
            ));
            Ok(())
        }
        Err(f) => {
            let _ = std::fs::remove_file(file);
            Err(a.detach_after(ctx, f.note(format!("removed the partial {file}"))))
        }
    }
}
