#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build zvpool.ko (output in build/module/). Against the platform kernel by
# default; --kdir DIR uses another CONFIG_RUST=y kernel build tree (its O= dir).
# --clippy runs clippy over the Rust code as part of the build; --werror makes
# every compiler warning (Rust and C) an error, as `make check` does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kdir=""
clippy=""
werror=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kdir) kdir=$2; shift 2 ;;
	--clippy) clippy="CLIPPY=1"; shift ;;
	--werror) werror=(KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror); shift ;;
	*) die "build-module.sh: unknown argument $1" ;;
	esac
done
if [ -z "$kdir" ]; then
	"$ZVPOOL_TOP/scripts/deps.sh"
	kdir=$("$ZVPOOL_TOP/scripts/kernel-build.sh")
fi
[ -f "$kdir/Module.symvers" ] || [ -f "$kdir/vmlinux" ] || die "$kdir is not a built kernel tree"
grep -q '^CONFIG_RUST=y' "$kdir/.config" || die "$kdir was not built with CONFIG_RUST=y"

MO=$ZVPOOL_TOP/build/module
mkdir -p "$MO"
mapfile -t KVARS < <(zv_kmake_vars)
# Kbuild's MO= keeps objects out of the source tree.
make -s -C "$kdir" M="$ZVPOOL_TOP" MO="$MO" "${KVARS[@]}" ${werror[@]+"${werror[@]}"} $clippy modules >&2 ||
	die "zvpool.ko build failed"
[ -f "$MO/zvpool.ko" ] || die "build produced no zvpool.ko"
log "built $MO/zvpool.ko ($(stat -c %s "$MO/zvpool.ko") bytes)"
echo "$MO/zvpool.ko"
