#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# rustfmt the module's kernel-side files with the kernel's own rustfmt
# settings (the core, rust/zvcore, is formatted by `cargo fmt`).
#   rustfmt-kernel.sh [--check]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cfg=$(ls -d "$ZVPOOL_CACHE"/src/*/linux/.rustfmt.toml 2>/dev/null | head -n1)
[ -n "$cfg" ] || die "no kernel source in $ZVPOOL_CACHE (run make kernel)"
cd "$ZVPOOL_TOP"
rustfmt --edition 2021 --config-path "$cfg" "$@" rust/*.rs rust/kwrap/*.rs
