#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what zvpool's build and tests need: Debian packages (bookworm) and a
# pinned bindgen-cli in $ZVPOOL_CACHE/tools. Idempotent: does nothing when all
# is present.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Kernel + Rust toolchain, QEMU, and the guest userland copied into the initramfs.
PKGS=(
	rustc-web rust-web-src rust-web-clippy clang-19 lld-19 llvm-19 libclang-19-dev
	bison flex libelf-dev libssl-dev bc cpio kmod dwarves python3 xz-utils binutils make gcc
	qemu-system-x86 busybox-static
	fio util-linux e2fsprogs dmsetup
	qemu-utils nvme-cli
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	apt_install() { $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$ZVPOOL_CACHE/apt-install.log" 2>&1; }
	mkdir -p "$ZVPOOL_CACHE"
	# A package whose configuration failed (seen once with a fresh machine's
	# triggers) is retried after finishing dpkg's pending configuration.
	if ! apt_install; then
		log "apt-get install failed once; retrying after dpkg --configure -a"
		$SUDO dpkg --configure -a >>"$ZVPOOL_CACHE/apt-install.log" 2>&1 || true
		apt_install || { tail -n 30 "$ZVPOOL_CACHE/apt-install.log" >&2; die "could not install: ${missing[*]}"; }
	fi
fi

[ -x "$ZV_RUSTC" ] || die "$ZV_RUSTC missing after installing rustc-web"
[ -d "$(zv_rust_lib_src)" ] || die "Rust library source $(zv_rust_lib_src) missing (package rust-web-src)"

if ! [ -x "$ZV_BINDGEN" ] || ! "$ZV_BINDGEN" --version 2>/dev/null | grep -q " $ZV_BINDGEN_VERSION\$"; then
	log "installing bindgen-cli $ZV_BINDGEN_VERSION into $ZVPOOL_CACHE/tools (about a minute)"
	mkdir -p "$ZVPOOL_CACHE/tools"
	cargo install -q bindgen-cli --version "=$ZV_BINDGEN_VERSION" --locked --root "$ZVPOOL_CACHE/tools"
fi
log "toolchain: $($ZV_RUSTC --version), $("$ZV_BINDGEN" --version), $(clang-19 --version | head -1)"
