#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test: measures a member evacuation against the pool's own rates in
# the same boot, on zoned memory-backed null_blk members (1 GiB each, 16
# MiB zones): the sequential write rate through a volume, then 4 KiB random
# writes (QD 8) for 15 s without anything else, then the same while the
# first member is evacuated (its ~380 MiB of live data), and the
# evacuation's own rate. Prints the numbers as KTAP comments; run it with
# `scripts/vm.sh --mode check:members_bench.sh` and a guest of 4 GiB or
# more (ZVPOOL_VM_MEM=4096).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
MIB=1048576
ktap_print_header
ktap_set_plan 1
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# fio_w NAME DEV: 4 KiB random writes QD 8 for 15 s: "IOPS p99_us".
fio_w() {
	fio --name="$1" --filename="$2" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
		--iodepth=8 --size=256M --time_based --runtime=15 --randrepeat=0 --norandommap \
		--percentile_list=99 --output-format=terse --terse-version=3 2>/dev/null |
		tail -n 1 | awk -F';' '{ split($59, p, "="); printf "%d %d", $49, p[2] }'
}
nullb_zoned $NB/mba 1024 16 zone_max_open=12 zone_max_active=16 &&
	nullb_zoned $NB/mbb 1024 16 zone_max_open=12 zone_max_active=16 || {
	ktap_test_fail "two zoned null_blk devices"
	ktap_finished
}
insmod "$KO"
zvpoolctl pool create -f mb /dev/mba /dev/mbb >/dev/null &&
	zvpoolctl volume create mb/data --size 600M >/dev/null &&
	zvpoolctl volume create mb/vm --size 256M >/dev/null
D=$(zvpoolctl volume show -H -o device mb/data | cut -f2)
V=$(zvpoolctl volume show -H -o device mb/vm | cut -f2)
S0=$(now_ms)
dd if=/dev/urandom of=/tmp/mb.rnd bs=$MIB count=64 status=none
for i in $(seq 0 7); do
	dd if=/tmp/mb.rnd of=$D bs=$MIB seek=$((i * 64)) oflag=direct status=none
done
sync
S1=$(now_ms)
ktap_print_msg "sequential write through a volume: 512 MiB in $((S1 - S0)) ms ($((512 * 1000 / (S1 - S0 + 1))) MiB/s)"
dd if=/dev/zero of=$V bs=$MIB count=256 oflag=direct status=none
ktap_print_msg "members: $(tr '\n' ';' <$CFG/mb/members)"
set -- $(fio_w base $V)
ktap_print_msg "4 KiB random write QD 8, no evacuation: $1 IOPS, p99 $2 us"
E0=$(now_ms)
if ! zvpoolctl pool evacuate mb /dev/mba >/tmp/mb.out 2>&1; then
	sed 's/^/# /' /tmp/mb.out
	ktap_test_fail "evacuation refused"
	ktap_finished
fi
set -- $(fio_w during $V)
ktap_print_msg "4 KiB random write QD 8, during the evacuation: $1 IOPS, p99 $2 us"
n=0
while ! grep -q " done " $CFG/mb/evacuate && [ $n -lt 480 ]; do
	sleep 0.5
	n=$((n + 1))
done
E1=$(now_ms)
E=$(cat $CFG/mb/evacuate)
ST=$(echo "$E" | sed -n 's/.*start_bytes=\([0-9]*\).*/\1/p')
ktap_print_msg "evacuation: $E"
ktap_print_msg "evacuation: $((ST / MIB)) MiB in $((E1 - E0)) ms ($((ST / MIB * 1000 / (E1 - E0 + 1))) MiB/s), fio running for the first 15 s"
zvpoolctl pool stop mb >/dev/null
ktap_test_skip "members_bench" "a measurement, not a test: the numbers are above"
ktap_finished
