// SPDX-License-Identifier: GPL-2.0
//! zvpoolctl: the administrator's tool of zvpool (pools of zoned devices and
//! thin volumes), driving the kernel through configfs.
//!
//! Layout: `cli` (argument parsing and help), `commands` (the command table;
//! `pool`, `volume`), `backend` (configfs access behind a trait), `abi`
//! (parsing of attributes), `klog` (the kernel's reasons), `output` (tables,
//! JSON), `size` (size parsing and formatting), `error` (errors, exit codes).
//! `unsafe` code is refused everywhere but in `sys` (two system calls std
//! lacks).

#![deny(unsafe_code)]

pub mod abi;
pub mod backend;
pub mod cache;
pub mod check;
pub mod cli;
pub mod commands;
pub mod devhealth;
pub mod devio;
pub mod error;
pub mod image;
pub mod klog;
pub mod nvmet;
pub mod output;
pub mod progress;
pub mod scan;
pub mod size;
pub mod stream;
#[allow(unsafe_code)]
mod sys;
pub mod uuid;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use backend::{Backend, FsBackend, DEFAULT_CONTROL, DEFAULT_ROOT};
use cli::Invocation;
use commands::Ctx;
use error::{Error, EXIT_OK};
use klog::{AutoLog, KernelLog, KmsgLog};
use std::io::{Read, Write};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one command line (without the program name) and returns the exit
/// code. `env_root` is `$ZVPOOLCTL_CONFIGFS`; `backend` replaces the configfs
/// backend (tests).
pub fn run(
    argv: &[String],
    env_root: Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    backend: Option<&dyn Backend>,
) -> i32 {
    run_io(
        argv,
        env_root,
        &mut std::io::stdin().lock(),
        out,
        err,
        backend,
    )
}

/// `run` with standard input given (`snapshot receive` reads it).
pub fn run_io(
    argv: &[String],
    env_root: Option<String>,
    input: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
    backend: Option<&dyn Backend>,
) -> i32 {
    let inv = match cli::parse(argv) {
        Ok(i) => i,
        Err(e) => return report(&e, err),
    };
    let (globals, verb, parsed) = match inv {
        Invocation::Help(text) => {
            let _ = out.write_all(text.as_bytes());
            return EXIT_OK;
        }
        Invocation::Version => {
            let _ = writeln!(out, "zvpoolctl {VERSION}");
            return EXIT_OK;
        }
        Invocation::Run {
            globals,
            verb,
            parsed,
            ..
        } => (globals, verb, parsed),
    };
    let root = globals
        .configfs_root
        .or(env_root.filter(|r| !r.is_empty()))
        .unwrap_or_else(|| DEFAULT_ROOT.to_string());
    // The default cache goes with the kernel's configfs, never with a test
    // root or a test backend: tests never touch /etc.
    let cache = match globals.cache {
        Some(c) => Some(std::path::PathBuf::from(c)),
        None if backend.is_none() && root == DEFAULT_ROOT => {
            Some(std::path::PathBuf::from(cache::DEFAULT_CACHE))
        }
        None => None,
    };
    // The control device and sysfs go with the kernel's configfs, not a
    // test root.
    let fs = if root == DEFAULT_ROOT {
        FsBackend::new(root)
            .with_control(DEFAULT_CONTROL)
            .with_sys_block(backend::DEFAULT_SYS_BLOCK)
            .with_nvmet(nvmet::DEFAULT_ROOT)
    } else {
        FsBackend::new(root)
    };
    let backend = backend.unwrap_or(&fs);
    let mut klog: Box<dyn KernelLog> = match globals.kmsg {
        Some(path) => Box::new(KmsgLog::new(path)),
        None => Box::new(AutoLog::new()),
    };
    let mut ctx = Ctx {
        backend,
        klog: klog.as_mut(),
        input,
        out,
        err,
        cache,
    };
    match (verb.run)(&mut ctx, &parsed) {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e, ctx.err),
    }
}

/// Prints an error to stderr and returns its exit code.
pub fn report(e: &Error, err: &mut dyn Write) -> i32 {
    let _ = match e {
        Error::Usage { msg, cmd } => writeln!(err, "zvpoolctl: {msg}\n{}", cli::usage_for(cmd)),
        Error::Failed(f) => {
            let mut s = format!("zvpoolctl: {}: {}\n", f.what, f.reason);
            for n in &f.notes {
                s.push_str(&format!("zvpoolctl: {n}\n"));
            }
            err.write_all(s.as_bytes())
        }
        Error::Exit(_) => Ok(()),
    };
    e.exit_code()
}
