#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the zvpool test VM: the test kernel, an initramfs, one NVMe controller with
# the ZNS and conventional namespaces of vm-devices.sh (file-backed images).
# Usage: vm.sh --kernel BZIMAGE --initrd CPIO --mode check|demo|bench|shell
#              [--images DIR] [--timeout SECONDS] [--log DIR] [--append ARGS]
#              [--power-cut]
#   --images DIR  keep the namespace images in DIR (they persist across boots);
#                 default: fresh images in the log dir, deleted afterwards.
#   --power-cut   the guest ends in a power cut (sysrq-b) rather than with a
#                 completion line; a completion line then means it did not.
#   ZVPOOL_ACCEL=tcg|kvm (default tcg: KVM needs real virtualization).
#   ZVPOOL_VM_MEM=MiB guest memory (default 2048).
#   ZVPOOL_VM_BENCH=1 adds the bench-only namespaces of vm-devices.sh.
# Exit status: the guest's test status; non-zero on timeout, panic, oops or WARN.
# The console goes to LOG/console.log, the results port (ttyS1) to LOG/results.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ZVPOOL_TOP/scripts/vm-devices.sh"

kernel="" initrd="" mode=check images="" tmo=600 logdir=$ZVPOOL_TOP/build/vm extra="" cut=0
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--initrd) initrd=$2; shift 2 ;;
	--mode) mode=$2; shift 2 ;;
	--images) images=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--log) logdir=$2; shift 2 ;;
	--append) extra=$2; shift 2 ;;
	--power-cut) cut=1; shift ;;
	*) die "vm.sh: unknown argument $1" ;;
	esac
done
[ -f "$kernel" ] && [ -f "$initrd" ] || die "vm.sh: --kernel and --initrd are required"
mkdir -p "$logdir"
keep=1
if [ -z "$images" ]; then
	images=$logdir/images
	rm -rf "$images"
	keep=0
fi
mkdir -p "$images"

devargs=(-device nvme,id=nvme0,serial=zvpool0,zoned.zasl=5)
for spec in $ZV_ZNS; do
	IFS=: read -r name nsid size zone cap mo ma <<<"$spec"
	[ -f "$images/$name.img" ] || truncate -s "${size}M" "$images/$name.img"
	devargs+=(-drive "file=$images/$name.img,id=$name,format=raw,if=none"
		-device "nvme-ns,drive=$name,bus=nvme0,nsid=$nsid,logical_block_size=4096,physical_block_size=4096,zoned=true,zoned.zone_size=${zone}M,zoned.zone_capacity=${cap}M,zoned.max_open=$mo,zoned.max_active=$ma")
done
for spec in $ZV_CONV; do
	IFS=: read -r name nsid size <<<"$spec"
	[ -f "$images/$name.img" ] || truncate -s "${size}M" "$images/$name.img"
	devargs+=(-drive "file=$images/$name.img,id=$name,format=raw,if=none"
		-device "nvme-ns,drive=$name,bus=nvme0,nsid=$nsid,logical_block_size=4096,physical_block_size=4096")
done

case "${ZVPOOL_ACCEL:-tcg}" in
tcg) accel=(-accel "tcg,thread=${ZVPOOL_TCG_THREAD:-multi}" -cpu max) ;;
kvm) accel=(-accel kvm -cpu host) ;;
*) die "ZVPOOL_ACCEL must be tcg or kvm" ;;
esac

append="console=ttyS0 panic=-1 oops=panic loglevel=5 tsc=reliable zvpool.run=$mode $extra"
console=$logdir/console.log results=$logdir/results.log
: >"$results"
qemu=(qemu-system-x86_64 "${accel[@]}" -M pc -smp "$ZV_CPUS" -m "${ZVPOOL_VM_MEM:-2048}" -no-reboot -display none -vga none -net none
	-kernel "$kernel" -initrd "$initrd" -append "$append" "${devargs[@]}")
start=$SECONDS
if [ "$mode" = shell ]; then
	# Interactive: the console is this terminal.
	"${qemu[@]}" -serial mon:stdio -serial "file:$results"
	exit 0
fi
rc=0
timeout --foreground -k 10 "$tmo" "${qemu[@]}" -monitor none -serial "file:$console" -serial "file:$results" </dev/null || rc=$?
log "VM ($mode) ran $((SECONDS - start)) s, qemu exit $rc"
[ $keep = 1 ] || rm -rf "$images"

fail=0
if [ $rc = 124 ]; then
	log "VM timed out after $tmo s"
	fail=1
elif [ $rc != 0 ]; then
	log "qemu failed (exit $rc)"
	fail=1
fi
bad='Kernel panic|BUG:|Oops|WARNING:|general protection fault|KASAN:|UBSAN:|possible circular locking|possible recursive locking|INFO: task .* blocked for more than|sleeping function called from invalid context|soft lockup|hard LOCKUP|Call Trace:'
if grep -qE "$bad" "$console"; then
	log "the guest kernel reported a problem:"
	grep -nE -A20 "$bad" "$console" | head -60 >&2
	fail=1
fi
# An emulated NVMe command that timed out in the guest is the emulator's
# stall, not a test's result; say so, as the tests' times are off then.
nto=$(grep -c 'nvme nvme[0-9]*: I/O tag .* timeout' "$console" || true)
[ "$nto" = 0 ] || log "warning: the guest's NVMe driver timed out $nto command(s) (the emulated controller stalled; see Documentation/testing.md)"
grc=$(sed -n 's/^ZVPOOL-GUEST-DONE rc=\([0-9]*\).*/\1/p' "$results" | tr -d '\r' | tail -n1)
if [ $cut = 1 ]; then
	if [ -n "$grc" ] || grep -q 'ZVPOOL-CRASH-SETUP-FAILED' "$results"; then
		log "the guest did not end in a power cut:"
		tr -d '\r' <"$results" | tail -n 20 >&2
		fail=1
	fi
elif [ -z "$grc" ]; then
	log "the guest did not finish (no completion line); console tail:"
	tail -n 30 "$console" >&2
	fail=1
elif [ "$grc" != 0 ]; then
	fail=1
fi
exit $fail
