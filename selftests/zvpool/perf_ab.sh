#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test: an A/B measurement of the request path (fast path on/off,
# scheduler none/mq-deadline) on a pool over a zoned memory-backed null_blk
# and over the ZNS namespace, same boot. Prints fio IOPS per variant.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. "$DIR/vm_devices.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvab
ktap_print_header
ktap_set_plan 1
nullb_zoned $NB 1024 16
iops() { fio --output-format=terse --terse-version=3 "$@" 2>/dev/null | awk -F';' '{ print $8 + $49 }'; }
run() { # LABEL DEV
	r=$(iops --name=rr --filename="$2" --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=32 --numjobs=4 --group_reporting --size=512M --time_based --runtime=8 --randrepeat=0 --norandommap)
	r1=$(iops --name=r1 --filename="$2" --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=1 --numjobs=1 --size=512M --time_based --runtime=8 --randrepeat=0 --norandommap)
	w=$(iops --name=rw --filename="$2" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k --iodepth=32 --numjobs=4 --group_reporting --size=512M --time_based --runtime=8 --randrepeat=0 --norandommap)
	ktap_print_msg "$1: randread 4x32 $r IOPS, randread qd1 $r1 IOPS, randwrite 4x32 $w IOPS"
}
Z=$(zns_dev 0)
for dev in /dev/zvab $Z; do
	[ -b "$dev" ] || continue
	for fp in 2 1 0; do
		insmod "$KO" fastpath=$fp
		[ "$dev" = "$Z" ] && blkzone reset "$dev"
		zvpoolctl pool create -f ab "$dev" >/dev/null && zvpoolctl volume create ab/v --size 600M >/dev/null
		V=$(zvpoolctl volume show -H -o device ab/v | cut -f2)
		dd if=/dev/zero of="$V" bs=1M count=600 oflag=direct status=none
		for s in none mq-deadline; do
			echo $s >/sys/block/${V##*/}/queue/scheduler 2>/dev/null
			run "${dev##*/} fastpath=$fp sched=$s" "$V"
		done
		zvpoolctl pool stop ab >/dev/null
		rmmod zvpool
	done
done
ktap_test_skip "perf_ab" "a measurement, not a test: the numbers are above"
ktap_finished
