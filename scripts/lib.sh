# SPDX-License-Identifier: GPL-2.0
# Common settings for zvpool's build and test scripts. Source it; do not run it.
#
# Everything that is downloaded or built outside the clone lives under
# $ZVPOOL_CACHE (default ~/.cache/zvpool) and is reused when still valid.

ZVPOOL_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZVPOOL_CACHE=${ZVPOOL_CACHE:-$HOME/.cache/zvpool}
export ZVPOOL_TOP ZVPOOL_CACHE

# Pinned tool versions.
ZV_BINDGEN_VERSION=0.73.2
ZV_KERNEL_PKG=linux-source-7.3
ZV_KERNEL_SUITE=trixie-backports
ZV_LLVM_SUFFIX=-19
ZV_RUSTC=/usr/bin/rustc
ZV_RUSTDOC=/usr/bin/rustdoc

export LIBCLANG_PATH=/usr/lib/llvm-19/lib
ZV_BINDGEN=$ZVPOOL_CACHE/tools/bin/bindgen

# Kernel flavour: "test" (default, small and fast) or "debug" (lockdep, KASAN, ...).
ZV_KFLAVOUR=${ZVPOOL_KERNEL:-test}

log() { printf '[zvpool] %s\n' "$*" >&2; }
die() { printf '[zvpool] error: %s\n' "$*" >&2; exit 1; }

# The variables every kernel (and module) make invocation needs.
zv_rust_lib_src() {
	local v
	v=$($ZV_RUSTC --version 2>/dev/null | awk '{print $2}')
	echo "/usr/src/rustc-$v/library"
}
zv_kmake_vars() {
	printf '%s\n' "LLVM=$ZV_LLVM_SUFFIX" "RUSTC=$ZV_RUSTC" "HOSTRUSTC=$ZV_RUSTC" \
		"RUSTDOC=$ZV_RUSTDOC" "CLIPPY_DRIVER=/usr/bin/clippy-driver" "BINDGEN=$ZV_BINDGEN" "RUST_LIB_SRC=$(zv_rust_lib_src)"
}
