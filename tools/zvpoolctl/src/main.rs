// SPDX-License-Identifier: GPL-2.0
//! `zvpoolctl`: the administrator's tool of zvpool. All the logic lives in the
//! library (`lib.rs`); this is only the process entry point.

use std::io::Write;

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env_root = std::env::var("ZVPOOLCTL_CONFIGFS").ok();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let code = zvpoolctl::run(&argv, env_root, &mut out, &mut err, None);
    let _ = out.flush();
    let _ = err.flush();
    std::process::exit(code);
}
