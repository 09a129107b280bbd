#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: the project's whole test command, from a fresh machine.
#   1. toolchain and packages (deps.sh)       4. host tests (cargo test)
#   2. test kernel, cached (kernel-build.sh)   5. initramfs + VM selftests (KTAP)
#   3. zvpool.ko (build-module.sh)             6. totals
# Ends with "N passed, N failed, N skipped"; exits non-zero on any failure.
# --demo:  build everything, then boot the VM running the demo (`make demo`).
# --shell: build everything, then boot the VM with an interactive shell.
# --crash-campaign: build everything, then only the power-cut test, with
#          ZVPOOL_CRASH_POINTS (default 100) crash points (`make crash-campaign`).
# --scale: build everything, then only the scale test (`make scale`): members
#          of 5 TiB in all, sparse writes, a power cut, reassembly (two boots,
#          6 GiB guest; ZVPOOL_SCALE_SPARSE sets the number of sparse writes),
#          then a boot with ZVPOOL_MANY_VOLUMES (default 8000) volumes and as
#          many snapshots in one pool (many_volumes.sh).
# Power cuts: ZVPOOL_CRASH_POINTS (default 20 in make check) seeded crash
# points; ZVPOOL_CRASH_SEED=0x... replays a campaign (printed at its start).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mode=check
case "${1:-}" in
--shell) mode=shell ;;
--demo) mode=demo ;;
--crash-campaign) mode=campaign ;;
--scale) mode=scale ;;
"") ;;
*) die "check.sh: unknown argument $1" ;;
esac
B=$ZVPOOL_TOP/build
mkdir -p "$B"
t0=$SECONDS
step() { log "== $* (t+$((SECONDS - t0))s)"; }

step "dependencies"
"$ZVPOOL_TOP/scripts/deps.sh"
step "test kernel ($ZV_KFLAVOUR)"
KBUILD=$("$ZVPOOL_TOP/scripts/kernel-build.sh")
step "zvpool.ko"
KO=$("$ZVPOOL_TOP/scripts/build-module.sh" --kdir "$KBUILD" --werror --clippy)

host_pass=0 host_fail=0 host_skip=0 host_rc=0
if [ $mode = check ]; then
	step "module stack frames (limit 3 KiB)"
	if "$ZVPOOL_TOP/scripts/stack-frames.sh" "$KO" 3072; then
		echo "ok: no stack frame above 3 KiB in zvpool.ko"
		host_pass=$((host_pass + 1))
	else
		echo "not ok: stack frames above 3 KiB (the kernel stack is 16 KiB)"
		host_fail=$((host_fail + 1))
	fi
	step "module structure (no import cycle among rust/*.rs)"
	if "$ZVPOOL_TOP/scripts/module-imports.sh"; then
		echo "ok: no import cycle between the kernel crate's files"
		host_pass=$((host_pass + 1))
	else
		echo "not ok: import cycle between the kernel crate's files"
		host_fail=$((host_fail + 1))
	fi
	step "formatting (rustfmt)"
	if (cd "$ZVPOOL_TOP" && cargo fmt --all -- --check >/dev/null) && "$ZVPOOL_TOP/scripts/rustfmt-kernel.sh" --check >/dev/null; then
		echo "ok: rustfmt clean (cargo fmt; kernel files with the kernel's .rustfmt.toml)"
		host_pass=$((host_pass + 1))
	else
		echo "not ok: rustfmt would change files (run make fmt)"
		host_fail=$((host_fail + 1))
	fi
	step "host tests (cargo test --workspace)"
	set +e
	(cd "$ZVPOOL_TOP" && cargo test --workspace --color never 2>&1) | tee "$B/host-tests.log"
	host_rc=${PIPESTATUS[0]}
	set -e
	read -r cargo_pass cargo_fail cargo_skip < <(awk '/^test result:/ {
		for (i = 1; i <= NF; i++) {
			if ($(i) ~ /^passed/) p += $(i - 1); if ($(i) ~ /^failed/) f += $(i - 1); if ($(i) ~ /^ignored/) s += $(i - 1)
		} } END { print p + 0, f + 0, s + 0 }' "$B/host-tests.log")
	if [ "$host_rc" != 0 ] && [ "$cargo_fail" = 0 ]; then
		cargo_fail=1 # did not build, or a test binary crashed
	fi
	host_pass=$((host_pass + cargo_pass)) host_fail=$((host_fail + cargo_fail)) host_skip=$((host_skip + cargo_skip))
fi

step "userspace tools"
if [ -d "$ZVPOOL_TOP/tools" ]; then
	(cd "$ZVPOOL_TOP" && cargo build --release --workspace --bins -q)
fi

step "initramfs"
"$ZVPOOL_TOP/scripts/initramfs.sh" "$KBUILD" "$KO" "$B/initramfs.cpio"

vm_rc=0 lane1_pid="" lane2_log=""
if [ $mode = check ] && [ "${ZVPOOL_CHECK_LANES:-2}" = 2 ]; then
	# Two VMs at once: the programs are split into two lanes of about
	# equal time (check-lanes.sh); the first runs in the background, the
	# second here, followed by the reboot test and the power cuts. Each
	# VM keeps multi-threaded TCG (vm.sh's default): QEMU 7.2's
	# round-robin TCG (thread=single) drops the guest's memory barriers,
	# and the NVMe driver's shadow doorbells then lose a doorbell now and
	# then against QEMU's I/O thread: commands stall until the 30 s
	# timeout and a controller reset (see Documentation/testing.md).
	read -r lane1 lane2 < <("$ZVPOOL_TOP/scripts/check-lanes.sh")
	step "VM (check), two VMs at once: lane 1 ${lane1//,/ }; lane 2 ${lane2//,/ }"
	"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
		--mode "check:$lane1" --log "$B/vm" --timeout "${ZVPOOL_VM_TIMEOUT:-2400}" >"$B/vm-lane1.out" 2>&1 &
	lane1_pid=$!
	lane2_log=$B/vm-lane2
	"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
		--mode "check:$lane2" --log "$lane2_log" --timeout "${ZVPOOL_VM_TIMEOUT:-2400}" || vm_rc=$?
	log "VM lane 2 done (t+$((SECONDS - t0))s)"
elif [ $mode != campaign ] && [ $mode != scale ]; then
	step "VM ($mode)"
	"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
		--mode $mode --log "$B/vm" --timeout "${ZVPOOL_VM_TIMEOUT:-2400}" || vm_rc=$?
fi
if [ $mode = demo ]; then
	echo "---- the guest's view ----"
	tr -d '\r' <"$B/vm/results.log" | grep -v '^ZVPOOL-GUEST-DONE'
	echo "--------------------------"
	[ "$vm_rc" = 0 ] && log "demo finished in $((SECONDS - t0)) s" || log "demo failed (see $B/vm/console.log)"
fi
[ $mode = check ] || [ $mode = campaign ] || [ $mode = scale ] || exit $vm_rc

# The scale test: two boots over sparse images of real drives' size.
scale_logs=()
if [ $mode = scale ]; then
	d=$B/vm/scale
	rm -rf "$d" && mkdir -p "$d"
	for phase in 1 2; do
		step "VM scale test, boot $phase"
		cut=()
		[ $phase = 1 ] && cut=(--power-cut)
		ZVPOOL_VM_SCALE=1 ZVPOOL_VM_MEM=${ZVPOOL_VM_MEM:-6144} "$ZVPOOL_TOP/scripts/vm.sh" \
			--kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
			--mode "check:scale.sh" --append "zvpool.phase=$phase zvpool.test_timeout=2000 ${ZVPOOL_SCALE_SPARSE:+zvpool.scale_sparse=$ZVPOOL_SCALE_SPARSE}" \
			--images "$d/images" --log "$d/$phase" --timeout "${ZVPOOL_VM_TIMEOUT:-2400}" "${cut[@]}" || vm_rc=1
		echo "---- boot $phase ----"
		tr -d '\r' <"$d/$phase/results.log" | grep -v '^ZVPOOL-GUEST-DONE' || true
		[ $vm_rc = 0 ] || break
	done
	du -sh --apparent-size "$d/images" | sed 's/^/images (apparent size): /'
	du -sh "$d/images" | sed 's/^/images (host disk used): /'
	rm -rf "$d/images"
	scale_logs+=("$d/2/results.log")
	# Many volumes: 8,000 volumes and 8,000 snapshots in one pool.
	if [ $vm_rc = 0 ]; then
		step "VM scale test: ${ZVPOOL_MANY_VOLUMES:-8000} volumes and as many snapshots"
		"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
			--mode "check:many_volumes.sh" \
			--append "zvpool.many_volumes=${ZVPOOL_MANY_VOLUMES:-8000} zvpool.test_timeout=2000" \
			--log "$d/volumes" --timeout "${ZVPOOL_VM_TIMEOUT:-2400}" || vm_rc=1
		tr -d '\r' <"$d/volumes/results.log" | grep -v '^ZVPOOL-GUEST-DONE' || true
		scale_logs+=("$d/volumes/results.log")
	fi
fi

# Tests that span two boots with persistent images (a reboot).
reboot_tests=$(sed -n 's/^TEST_PROGS_REBOOT := //p' "$ZVPOOL_TOP/selftests/zvpool/Makefile")
[ $mode = check ] || reboot_tests=""
rm -rf "$B/vm/reboot-images"
reboot_logs=()
for t in $reboot_tests; do
	for phase in 1 2; do
		step "VM reboot test $t, boot $phase"
		log_dir=$B/vm/reboot-${t%.sh}-$phase
		"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
			--mode "check:$t" --append "zvpool.phase=$phase" --images "$B/vm/reboot-images" \
			--log "$log_dir" --timeout "${ZVPOOL_VM_TIMEOUT:-1200}" || vm_rc=1
		reboot_logs+=("$log_dir/results.log")
	done
done

# Power cuts: each crash point is a boot that ends in sysrq-b while
# zvcrash writes (seeded delay), then a boot that verifies.
crash_tests=$(sed -n 's/^TEST_PROGS_CRASH := //p' "$ZVPOOL_TOP/selftests/zvpool/Makefile")
[ $mode = check ] || [ $mode = campaign ] || crash_tests=""
points=${ZVPOOL_CRASH_POINTS:-$([ $mode = campaign ] && echo 100 || echo 20)}
seed0=${ZVPOOL_CRASH_SEED:-$(printf '0x%x' $(((RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM ^ $(date +%s))))}
crash_logs=()
for t in $crash_tests; do
	step "power cuts ($t): $points crash points, ZVPOOL_CRASH_SEED=$seed0"
	for i in $(seq 1 "$points"); do
		seed=$(printf '0x%x' $(((seed0 * 6364136223846793005 + i * 1442695040888963407) & 0x7fffffffffffffff)))
		# 2-10 s, from bits of the seed far apart: consecutive seeds differ
		# by a constant, so (seed >> 8) % 9 alone gave 3-5 s only (cuts
		# before GC started).
		delay=$((2 + ((seed >> 8) ^ (seed >> 40)) % 9))
		d=$B/vm/crash-$i
		rm -rf "$d" && mkdir -p "$d"
		"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
			--mode "check:$t" --append "zvpool.phase=1 zvpool.crash=$seed:$delay:0" --images "$d/images" \
			--log "$d/1" --timeout 300 --power-cut >/dev/null 2>&1 || {
			echo "crash point $i (seed $seed): the writing boot failed, see $d/1"
			tr -d '\r' <"$d/1/results.log" | tail -n 5
			vm_rc=1
			continue
		}
		durable=$(tr -d '\r' <"$d/1/results.log" | sed -n 's/^# zvcrash: durable \([0-9]*\)$/\1/p' | tail -n1)
		gcinfo=$(tr -d '\r' <"$d/1/results.log" | sed -n 's/^ZVPOOL-CRASH \(gc_runs .*\)/\1/p')
		"$ZVPOOL_TOP/scripts/vm.sh" --kernel "$KBUILD/arch/x86/boot/bzImage" --initrd "$B/initramfs.cpio" \
			--mode "check:$t" --append "zvpool.phase=2 zvpool.crash=$seed:$delay:${durable:-0}" \
			--images "$d/images" --log "$d/2" --timeout 300 >/dev/null 2>&1 || vm_rc=1
		rm -rf "$d/images"
		echo "crash point $i: seed $seed, cut after ${delay}s, ${durable:-0} rounds durable, ${gcinfo:-no status}: $(grep -c '^    ok' "$d/2/results.log") ok, $(grep -c '^    not ok' "$d/2/results.log") not ok"
		crash_logs+=("$d/2/results.log")
	done
done

if [ -n "$lane1_pid" ]; then
	step "waiting for VM lane 1"
	wait "$lane1_pid" || vm_rc=$?
	cat "$B/vm-lane1.out"
fi

# Count leaf test cases (nested one level); a program that failed without a
# failing case of its own (crash, timeout) counts as one failure.
count_ktap() {
	awk '
	/^    (not )?ok [0-9]+/ {
		if ($0 ~ /# SKIP/) s++; else if ($1 == "not") { f++; pf++ } else p++
		next
	}
	/^not ok [0-9]+/ { if (pf == 0) f++; pf = 0; next }
	/^ok [0-9]+/ { pf = 0 }
	END { print p + 0, f + 0, s + 0 }' "$1"
}
vm_pass=0 vm_fail=0 vm_skip=0
echo "---- VM selftests (KTAP) ----"
vm_logs=("${reboot_logs[@]}" "${crash_logs[@]}" "${scale_logs[@]}")
[ $mode = campaign ] || [ $mode = scale ] || vm_logs=("$B/vm/results.log" ${lane2_log:+"$lane2_log/results.log"} "${vm_logs[@]}")
for r in "${vm_logs[@]}"; do
	tr -d '\r' <"$r" >"${r%results.log}ktap.log"
	grep -v '^ZVPOOL-GUEST-DONE' "${r%results.log}ktap.log" || true
	read -r p f s < <(count_ktap "${r%results.log}ktap.log")
	vm_pass=$((vm_pass + p)) vm_fail=$((vm_fail + f)) vm_skip=$((vm_skip + s))
done
echo "-----------------------------"
if [ "$vm_rc" != 0 ] && [ "$vm_fail" = 0 ]; then
	vm_fail=1 # oops/WARN/timeout outside any test case
fi

echo "== zvpool check summary (total $((SECONDS - t0)) s) =="
echo "kernel: $(cat "$KBUILD/.zv-complete") ($(basename "$KBUILD"))"
echo "host tests (cargo test + module checks): $host_pass passed, $host_fail failed, $host_skip ignored"
echo "VM selftests (KTAP): $vm_pass passed, $vm_fail failed, $vm_skip skipped"
[ "$vm_rc" = 0 ] || echo "VM run failed (see $B/vm/console.log${lane2_log:+ and $lane2_log/console.log})"
echo "$((host_pass + vm_pass)) passed, $((host_fail + vm_fail)) failed, $((host_skip + vm_skip)) skipped"
[ $((host_fail + vm_fail)) = 0 ] && [ "$host_rc" = 0 ] && [ "$vm_rc" = 0 ]
