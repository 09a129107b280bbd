#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test: the cost of the per-volume QoS check (issue 20), same boot.
# Modules: A = the module before QoS (/lib/modules/zvpool/zvpool-base.ko,
# added to the initramfs by hand, see Documentation/benchmarks.md), B =
# this one with no limit (one relaxed load a request), C = this one with a
# read and a write limit far above what the VM does (riops=wiops=10000000:
# every request takes the volume's spinlock and charges the buckets, none
# waits). Rounds alternate A B C so that drift hits all alike. Pool over a
# memory-backed zoned null_blk; fio 4 KiB randread 4 jobs x QD32, randread
# QD1, randwrite 4 x QD32, 6 s each, 4 rounds. Run with zvpool.run=check:qos_bench.sh.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
BASE=${ZVPOOL_KO_BASE:-/lib/modules/zvpool/zvpool-base.ko}
NB=/sys/kernel/config/nullb/zvqb
ROUNDS=${QOS_BENCH_ROUNDS:-4}
ktap_print_header
ktap_set_plan 1
nullb_zoned $NB 1024 16
iops() { fio --output-format=terse --terse-version=3 "$@" 2>/dev/null | awk -F';' '{ print $8 + $49 }'; }
run() { # LABEL DEV
	f="--filename=$2 --direct=1 --ioengine=libaio --bs=4k --size=512M --time_based --runtime=6 --randrepeat=0 --norandommap"
	r=$(iops --name=rr $f --rw=randread --iodepth=32 --numjobs=4 --group_reporting)
	r1=$(iops --name=r1 $f --rw=randread --iodepth=1 --numjobs=1)
	w=$(iops --name=rw $f --rw=randwrite --iodepth=32 --numjobs=4 --group_reporting)
	ktap_print_msg "$1: randread 4x32 $r IOPS, randread qd1 $r1 IOPS, randwrite 4x32 $w IOPS"
}
i=1
while [ $i -le "$ROUNDS" ]; do
	for v in A B C; do
		ko=$KO
		[ $v = A ] && ko=$BASE
		[ -f "$ko" ] || continue
		insmod "$ko"
		zvpoolctl pool create -f qb /dev/zvqb >/dev/null && zvpoolctl volume create qb/v --size 600M >/dev/null
		V=$(zvpoolctl volume show -H -o device qb/v | cut -f2)
		dd if=/dev/zero of="$V" bs=1M count=600 oflag=direct status=none
		if [ $v = C ]; then
			echo 10000000 >/sys/kernel/config/zvpool/qb/v/riops
			echo 10000000 >/sys/kernel/config/zvpool/qb/v/wiops
		fi
		run "round $i $v" "$V"
		[ $v = C ] && ktap_print_msg "round $i C: requests delayed $(sed -n 's/^qos_delayed //p' /sys/kernel/config/zvpool/qb/v/usage)"
		zvpoolctl pool stop qb >/dev/null
		rmmod zvpool
	done
	i=$((i + 1))
done
ktap_test_skip "qos_bench" "a measurement, not a test: the numbers are above"
ktap_finished
