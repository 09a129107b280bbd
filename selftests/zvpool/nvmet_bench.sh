#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test (not in TEST_PROGS): throughput of a volume used directly
# (/dev/zvpoolN) and through the kernel's NVMe-oF target (nvmet) over loop
# and over TCP on 127.0.0.1 (/dev/nvmeXnY), same boot, same volume, on a
# pool over a zoned memory-backed null_blk. Each workload runs on the three
# paths one after the other (direct, loop, tcp), then again in the reverse
# order; both figures are printed. Run with
#   scripts/vm.sh ... --mode check:nvmet_bench.sh
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvnb
RT=${ZVPOOL_BENCH_RUNTIME:-6}
ktap_print_header
ktap_set_plan 1
nullb_zoned $NB 1024 16 || { ktap_test_fail "null_blk"; ktap_finished; }
insmod "$KO"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
zvpoolctl pool create -f nb "/dev/${NB##*/}" >/dev/null && zvpoolctl volume create nb/v --size 256M >/dev/null || {
	ktap_test_fail "pool and volume"
	ktap_finished
}
V=$(zvpoolctl volume show -H -o device nb/v | cut -f2)
dd if=/dev/zero of="$V" bs=1M count=256 oflag=direct status=none
zvpoolctl volume export --nqn nqn.2026-12.io.zvpool.bench:loop nb/v >/dev/null
L=$(nvmf_connect "transport=loop,nqn=nqn.2026-12.io.zvpool.bench:loop")
L=/dev/$(nvmf_nsdev "$L")
# One export per volume: the TCP path needs the loop one gone.
bench_tcp() {
	zvpoolctl volume unexport nb/v >/dev/null
	zvpoolctl volume export --nqn nqn.2026-12.io.zvpool.bench:tcp --transport tcp --addr 127.0.0.1 nb/v >/dev/null
	T=$(nvmf_connect "transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=nqn.2026-12.io.zvpool.bench:tcp")
	T=/dev/$(nvmf_nsdev "$T")
}
# fio_rate DEV ARGS...: "IOPS MiB/s" of one fio run (read + write).
fio_rate() {
	_d=$1
	shift
	fio --output-format=terse --terse-version=3 --name=b --filename="$_d" --direct=1 --ioengine=libaio \
		--size=256M --time_based --runtime="$RT" --randrepeat=0 --norandommap --group_reporting "$@" 2>/dev/null |
		awk -F';' '{ printf "%d %.1f", $8 + $49, ($7 + $48) / 1024 }'
}
W1="--rw=randwrite --bs=4k --iodepth=1"
W2="--rw=randread --bs=4k --iodepth=1"
W3="--rw=randwrite --bs=4k --iodepth=32 --numjobs=2"
W4="--rw=randread --bs=4k --iodepth=32 --numjobs=2"
W5="--rw=write --bs=128k --iodepth=8"
W6="--rw=read --bs=128k --iodepth=8"
# Loop first (both passes), then TCP (both passes), direct in each.
for path in loop tcp; do
	[ $path = tcp ] && bench_tcp
	N=$L
	[ $path = tcp ] && N=$T
	for w in "$W1" "$W2" "$W3" "$W4" "$W5" "$W6"; do
		# shellcheck disable=SC2086 # split on purpose
		a=$(fio_rate "$V" $w)
		# shellcheck disable=SC2086
		b=$(fio_rate "$N" $w)
		# shellcheck disable=SC2086
		b2=$(fio_rate "$N" $w)
		# shellcheck disable=SC2086
		a2=$(fio_rate "$V" $w)
		ktap_print_msg "$path | $w | direct $a / $a2 | nvmet $b / $b2 (IOPS MiB/s)"
	done
done
ktap_print_msg "pool: $(grep -E '^(gc_runs|write_amplification) ' /sys/kernel/config/zvpool/nb/status | tr '\n' ' ')"
echo 1 >"/sys/block/${T#/dev/}/device/delete_controller"
zvpoolctl volume unexport nb/v >/dev/null
ktap_test_pass "measured (numbers above)"
ktap_finished
