#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Host side of vmtest.sh: boots the test VM (cached test kernel, a built
# zvpool.ko) with vmtest.sh in place of the demo, in a private directory, and
# prints the guest's output. Does not touch build/ or the shared caches
# (the initramfs base must exist: run `make check` or `make demo` once).
# Usage: tools/zvpoolctl/vmtest-run.sh [--no-data] [ZVPOOL_KO] [WORKDIR]
#   --no-data: no I/O through /dev/zvpoolN (the configfs flow only).
# $ZVPOOLCTL_VMTEST_SCRIPT: another guest script instead of vmtest.sh.
set -euo pipefail
nodata=0
if [ "${1:-}" = --no-data ]; then
	nodata=1
	shift
fi
. "$(dirname "$0")/../../scripts/lib.sh"
. "$ZVPOOL_TOP/scripts/vm-devices.sh"
KO=${1:-$ZVPOOL_TOP/build/module/zvpool.ko}
W=${2:-$(mktemp -d /tmp/zvpoolctl-vmtest.XXXXXX)}
mkdir -p "$W"
[ -f "$KO" ] || die "no zvpool.ko at $KO (make)"
KBUILD=$(ls -td "$ZVPOOL_CACHE"/kbuild/test-* | head -1)
base=$(ls -t "$ZVPOOL_CACHE"/initramfs/base-*.cpio | head -1)
(cd "$ZVPOOL_TOP" && cargo build --release -q -p zvpoolctl)
cp "$KO" "$W/zvpool.ko" # a snapshot: others may rebuild it meanwhile
O=$W/overlay
rm -rf "$O"
mkdir -p "$O/lib/modules/zvpool" "$O/usr/share/zvpool" "$O/etc/zvpool" "$O/usr/bin"
cp "$ZVPOOL_TOP/scripts/guest/init" "$O/init"
cp "$W/zvpool.ko" "$O/lib/modules/zvpool/zvpool.ko"
cp "${ZVPOOLCTL_VMTEST_SCRIPT:-$ZVPOOL_TOP/tools/zvpoolctl/vmtest.sh}" "$O/usr/share/zvpool/demo.sh"
cp "$ZVPOOL_TOP/target/release/zvpoolctl" "$O/usr/bin/"
printf 'ZV_ZNS="%s"\nZV_CONV="%s"\n' "$ZV_ZNS" "$ZV_CONV" >"$O/etc/zvpool/vm.env"
[ $nodata = 0 ] || : >"$O/etc/zvpool/vmtest-nodata"
(cd "$O" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) >"$W/overlay.cpio"
cat "$base" "$W/overlay.cpio" >"$W/initramfs.cpio"
rc=0
"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$W/initramfs.cpio" \
	--mode demo --log "$W/vm" --timeout "${ZVPOOL_VM_TIMEOUT:-900}" || rc=$?
tr -d '\r' <"$W/vm/results.log" | grep -v '^ZVPOOL-GUEST-DONE'
# The demo's exit status is lost in the guest's pipe: use the summary line.
grep -q '^zvpoolctl-vmtest: [0-9]* passed, 0 failed' <(tr -d '\r' <"$W/vm/results.log") || rc=1
[ $rc = 0 ] || log "vmtest failed (console: $W/vm/console.log)"
exit $rc
