#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: zvpool against raw ZNS, dm-zoned, dm-thin, raw conventional and
# null_blk, with fio, in one boot of the test VM; then the report
# (Documentation/benchmarks.md, .json and the overwrite chart).
#   1. toolchain, test kernel, zvpool.ko, userspace tools (as make check does)
#   2. test initramfs + the cached bench tools archive (bench-tools.sh) + a
#      per-run overlay (scripts/guest/bench.sh and its settings)
#   3. the VM with the bench-only namespaces (ZVPOOL_VM_BENCH=1); the guest
#      writes its results as a tar archive to the namespace `bres`
#   4. extract the results into build/bench/results, run tools/zvbench
# Settings: see "How to run" in Documentation/benchmarks.md (BENCH_QUICK=1 for a
# smoke test). Not part of `make check`. Takes no lock itself: on a shared
# machine, run it under the machine's heavy-job lock.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BB=$ZVPOOL_TOP/build/bench
OUTDIR=${BENCH_OUT:-$ZVPOOL_TOP/Documentation}
t0=$SECONDS
step() { log "== bench: $* (t+$((SECONDS - t0))s)"; }

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
	mode=quick
	: "${BENCH_REPS:=1}" "${BENCH_RUNTIME:=3}" "${BENCH_RAMP:=1}"
	: "${BENCH_WS_LARGE_MIB:=64}" "${BENCH_WS_SMALL_MIB:=16}"
	: "${BENCH_OW_SECS:=5}" "${BENCH_NULLB_MIB:=256}" "${BENCH_NULLB_ZONE_MIB:=8}"
	: "${BENCH_SEQ_MAX:=60}" "${BENCH_OW_FILL_MAX:=300}" "${BENCH_TIMEOUT:=1800}"
	: "${BENCH_WORKLOADS:=seqwrite-128k-qd8 randread-4k-qd1-large randwrite-4k-4x32-large overwrite-4k-4x32}"
	# Small devices: the overwrite fills 80 % of them first.
	export ZV_BENCH_ZNS=${ZV_BENCH_ZNS:-"bzns0:4:512:8:7:14:28 bzns1:5:512:8:8:0:0"}
	export ZV_BENCH_CONV=${ZV_BENCH_CONV:-"bconv0:6:512 bdmzc:7:128 bmeta:8:64 bres:9:64"}
else
	mode=full
	: "${BENCH_REPS:=3}" "${BENCH_RUNTIME:=15}" "${BENCH_RAMP:=3}"
	: "${BENCH_WS_LARGE_MIB:=1024}" "${BENCH_WS_SMALL_MIB:=64}"
	: "${BENCH_OW_SECS:=60}" "${BENCH_NULLB_MIB:=2048}" "${BENCH_NULLB_ZONE_MIB:=16}"
	: "${BENCH_SEQ_MAX:=300}" "${BENCH_OW_FILL_MAX:=1200}" "${BENCH_TIMEOUT:=10800}"
	: "${BENCH_WORKLOADS:=seqwrite-128k-qd8 seqread-128k-qd8 randread-4k-qd1-large randread-4k-qd1-small randread-4k-4x32-large randread-4k-4x32-small randwrite-4k-qd1-large randwrite-4k-qd1-small randwrite-4k-4x32-large randwrite-4k-4x32-small randrw70-4k-4x32-large overwrite-4k-4x32}"
fi
: "${BENCH_OW_FILL_PCT:=80}"
# Peers first: a zvpool failure (oops, hang) cannot cost their numbers.
: "${BENCH_SYSTEMS:=raw-zns raw-conv dm-thin dm-zoned raw-nullb zvpool-zns zvpool-nullb zvpool-2nullb zvpool-mirror-nullb}"
export ZVPOOL_VM_BENCH=1
# The mirrored volume's pool: two memory-backed null_blk of BENCH_NULLB_MIB.
export ZVPOOL_VM_MEM=${ZVPOOL_VM_MEM:-6144}
. "$ZVPOOL_TOP/scripts/vm-devices.sh"

step "dependencies"
"$ZVPOOL_TOP/scripts/deps.sh"
step "test kernel ($ZV_KFLAVOUR)"
KBUILD=$("$ZVPOOL_TOP/scripts/kernel-build.sh")
step "zvpool.ko"
KO=$("$ZVPOOL_TOP/scripts/build-module.sh" --kdir "$KBUILD")
step "userspace tools (zvpoolctl, zvbench)"
(cd "$ZVPOOL_TOP" && cargo build --release --workspace --bins -q)
step "bench tools (static fio, dmzadm)"
TOOLS=$("$ZVPOOL_TOP/scripts/bench-tools.sh")

step "initramfs"
rm -rf "$BB"
mkdir -p "$BB"
"$ZVPOOL_TOP/scripts/initramfs.sh" "$KBUILD" "$KO" "$BB/initramfs-test.cpio"
O=$BB/overlay
mkdir -p "$O/usr/share/zvpool/bench" "$O/etc/zvpool"
install -m 755 "$ZVPOOL_TOP/scripts/guest/bench.sh" "$O/usr/share/zvpool/bench/bench.sh"
{
	echo "BENCH_MODE=$mode"
	for v in BENCH_REPS BENCH_RUNTIME BENCH_RAMP BENCH_WS_LARGE_MIB BENCH_WS_SMALL_MIB BENCH_OW_SECS \
		BENCH_OW_FILL_PCT BENCH_NULLB_MIB BENCH_NULLB_ZONE_MIB BENCH_SEQ_MAX BENCH_OW_FILL_MAX; do
		val=${!v}
		[[ "$val" =~ ^[0-9]+$ ]] || die "$v must be a number, not '$val'"
		echo "$v=$val"
	done
	echo "BENCH_SYSTEMS=\"$BENCH_SYSTEMS\""
	echo "BENCH_WORKLOADS=\"$BENCH_WORKLOADS\""
	echo "ZV_BENCH_ZNS=\"$ZV_BENCH_ZNS\""
	echo "ZV_BENCH_CONV=\"$ZV_BENCH_CONV\""
} >"$O/etc/zvpool/bench.env"
# dmzadm asks libkmod whether dm-zoned is loaded or built in: give it the
# kernel's module indexes (built-in modules only).
kver=$(cat "$KBUILD/include/config/kernel.release")
mkdir -p "$O/lib/modules/$kver"
cp "$KBUILD"/modules.builtin "$KBUILD"/modules.builtin.modinfo "$O/lib/modules/$kver/"
: >"$O/lib/modules/$kver/modules.order"
depmod -b "$O" "$kver" || die "depmod failed"
(cd "$O" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) >"$BB/overlay.cpio"
cat "$BB/initramfs-test.cpio" "$TOOLS" "$BB/overlay.cpio" >"$BB/initramfs.cpio"
rm -rf "$O" "$BB/overlay.cpio" "$BB/initramfs-test.cpio"

# Under TCG the guest kernel often fails to calibrate the TSC against the PIT
# (tinyconfig has no HPET or ACPI PM timer) and falls back to the jiffies
# clocksource: fio's latencies then come in 4 ms steps. The guest's TSC runs at
# the host's rate under TCG: give the kernel that rate.
tsc_khz() {
	local mhz
	mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n1)
	[ -n "$mhz" ] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz TSC.*/\1/p' | head -n1)
	[ -n "$mhz" ] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | head -n1)
	[ -n "$mhz" ] || mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
	awk -v m="${mhz:-0}" 'BEGIN { if (m > 0) printf "%d\n", m * 1000 }'
}
append=""
khz=""
if [ "${ZVPOOL_ACCEL:-tcg}" = tcg ]; then
	khz=${BENCH_TSC_KHZ:-$(tsc_khz)}
	if [ -n "$khz" ]; then
		append="tsc_early_khz=$khz"
	else
		log "warning: host TSC rate unknown (set BENCH_TSC_KHZ): guest latencies may be coarse"
	fi
fi

step "VM ($mode: systems: $BENCH_SYSTEMS; $BENCH_REPS rep(s); time limit ${BENCH_TIMEOUT}s)"
vm_t0=$SECONDS
vm_rc=0
"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$BB/initramfs.cpio" \
	--mode bench --images "$BB/images" --log "$BB/vm" --timeout "$BENCH_TIMEOUT" --append "$append" &
vm_pid=$!
# The guest's progress lines (results port), as they come.
tail -n +1 -F --pid=$vm_pid "$BB/vm/results.log" 2>/dev/null | grep --line-buffered '^bench:' | sed -u 's/\r$//' >&2 || true
wait $vm_pid || vm_rc=$?
vm_s=$((SECONDS - vm_t0))

step "results"
mkdir -p "$BB/results"
if ! tar -xf "$BB/images/bres.img" -C "$BB/results" 2>"$BB/tar.log"; then
	cat "$BB/tar.log" >&2
	die "no results archive on the results namespace (see $BB/vm/console.log)"
fi
[ -f "$BB/results/runs.tsv" ] || die "the guest wrote no results (see $BB/vm/console.log and results.log)"
rm -rf "$BB/images" # up to several GiB of namespace images
accel=${ZVPOOL_ACCEL:-tcg}
git_desc=$(cd "$ZVPOOL_TOP" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$ZVPOOL_TOP" && git diff --quiet HEAD -- rust scripts tools 2>/dev/null) || git_desc="$git_desc (with uncommitted changes)"
{
	echo "accel=$accel"
	echo "tsc_early_khz=${khz:-none}"
	echo "qemu=$(qemu-system-x86_64 --version | head -n1 | sed 's/^QEMU emulator version //')"
	echo "host_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "host_cores=$(nproc)"
	echo "host_os=$(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r)"
	echo "git=$(cd "$ZVPOOL_TOP" && git rev-parse --abbrev-ref HEAD 2>/dev/null) $git_desc"
	echo "date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "vm_s=$vm_s"
	echo "vm_rc=$vm_rc"
	echo "duration_s=$((SECONDS - t0))"
} >"$BB/results/host.env"

step "report"
"$ZVPOOL_TOP/target/release/zvbench" report --results "$BB/results" --out "$OUTDIR"
log "bench ($mode) finished in $((SECONDS - t0)) s; results in $BB/results"
if [ "$vm_rc" != 0 ]; then
	log "the VM run failed (exit $vm_rc): the report may be incomplete; see $BB/vm/console.log"
	exit 1
fi
