#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make profile`: where the CPU goes on the request path. Builds the
# profiling kernel (ZVPOOL_KERNEL=profile: the test kernel plus
# CONFIG_PROFILING), zvpool.ko for it and the initramfs under
# build/profile/, boots the VM once with `profile=2` and runs
# selftests/zvpool/perf_profile.sh (raw null_blk, then a zvpool volume over
# a zoned null_blk for each module parameter set), then resolves the tick
# counts (scripts/profile-report.sh) into build/profile/report.txt.
#   PROF_VARIANTS="fastpath=1;fastpath=2"   module parameter sets to compare
# A measurement, not a test: only the same boot's figures compare.
set -euo pipefail
export ZVPOOL_KERNEL=profile
. "$(dirname "$0")/lib.sh"
B=$ZVPOOL_TOP/build/profile
mkdir -p "$B"
"$ZVPOOL_TOP/scripts/deps.sh"
KBUILD=$("$ZVPOOL_TOP/scripts/kernel-build.sh")
KO=$("$ZVPOOL_TOP/scripts/build-module.sh" --kdir "$KBUILD")
cp "$KO" "$B/zvpool.ko"
(cd "$ZVPOOL_TOP" && cargo build --release --workspace --bins -q)
"$ZVPOOL_TOP/scripts/initramfs.sh" "$KBUILD" "$B/zvpool.ko" "$B/initramfs.cpio"
rm -rf "$B/vm"
# Memory-backed null_blk devices of 1 and 2 GiB live in the guest's RAM.
ZVPOOL_VM_MEM=${ZVPOOL_VM_MEM:-6144} "$ZVPOOL_TOP/scripts/vm.sh" \
	--kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
	--mode check:perf_profile.sh --log "$B/vm" --timeout 1800 \
	--append "profile=2 zvpool.prof_variants=${PROF_VARIANTS:-fastpath=1;fastpath=2}"
{
	grep -o '# \(run \|status: \).*' "$B/vm/results.log" || true
	"$ZVPOOL_TOP/scripts/profile-report.sh" "$KBUILD" "$B/vm/results.log" 2 20
} | tee "$B/report.txt"
log "profile report: $B/report.txt"
