#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test: the isolation measurement of the engine issue, same boot.
# Volume B runs 4 KiB random reads at QD16 alone, then while volume A of the
# same pool writes 4 KiB blocks at QD1 with an fsync after each (a commit
# per write: the fsync-heavy VM); B's IOPS and p99 are printed for both, on
# a pool over a memory-backed zoned null_blk and over the ZNS namespace when
# there is one. Run with zvpool.run=check:isolation.sh.
# The same pair without zvpool, as a reference (what B loses to a neighbour
# on the same CPUs and device, not to the pool): A and B on two regions of
# a memory-backed null_blk that is not zoned, and of the raw conventional
# namespace.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. "$DIR/vm_devices.sh"
[ -f "${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}" ] && . "${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zviso
SECS=${ISOLATION_SECONDS:-15}
ktap_print_header
ktap_set_plan 1
nullb_zoned $NB 1024 16
# B's random reads: "IOPS p99_us" from fio's terse output (read part).
# READS FILE [OFFSET]
reads() {
	fio --output-format=terse --terse-version=3 --name=b --filename="$1" --direct=1 \
		--ioengine=libaio --rw=randread --bs=4k --iodepth=16 --size=256M --offset="${2:-0}" --time_based \
		--runtime="$SECS" --randrepeat=0 --norandommap --percentile_list=99 2>/dev/null |
		awk -F';' '{ split($18, p, "="); print $8, p[2] }'
}
# A's writes: 4 KiB at QD1, fsync after each.
writes() {
	fio --name=a --filename="$1" --direct=1 --ioengine=psync --rw=randwrite --bs=4k \
		--fsync=1 --size=128M --time_based --runtime=$((SECS + 4)) --randrepeat=0 \
		--output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{ print $49 }'
}
Z=$(zns_dev 0)
for dev in /dev/zviso $Z; do
	[ -b "$dev" ] || continue
	insmod "$KO"
	[ "$dev" = "$Z" ] && blkzone reset "$dev"
	zvpoolctl pool create -f iso "$dev" >/dev/null &&
		zvpoolctl volume create iso/a --size 128M >/dev/null &&
		zvpoolctl volume create iso/b --size 256M >/dev/null
	A=$(zvpoolctl volume show -H -o device iso/a | cut -f2)
	B=$(zvpoolctl volume show -H -o device iso/b | cut -f2)
	dd if=/dev/urandom of="$B" bs=1M count=256 oflag=direct status=none
	dd if=/dev/zero of="$A" bs=1M count=128 oflag=direct status=none
	alone=$(reads "$B")
	writes "$A" >/tmp/iso.a &
	sleep 2
	busy=$(reads "$B")
	wait
	ktap_print_msg "${dev##*/}: B randread QD16 alone: $alone (IOPS p99_us); with A fsync-writing: $busy; A's write IOPS $(cat /tmp/iso.a); checkpoints $(sed -n "s/^checkpoints //p" /sys/kernel/config/zvpool/iso/status), journal blocks $(sed -n "s/^journal_blocks //p" /sys/kernel/config/zvpool/iso/status)"
	zvpoolctl pool stop iso >/dev/null
	rmmod zvpool
done
# The pool's memory-backed null_blk goes first (memory for the raw one).
echo 0 >$NB/power && rmdir $NB
RAW=/sys/kernel/config/nullb/zvisoraw
nullb_zoned $RAW 1024 16 zoned=0
for dev in /dev/${RAW##*/} $(dev_for 3); do
	[ -b "$dev" ] || continue
	dd if=/dev/urandom of="$dev" bs=1M count=256 seek=512 oflag=direct status=none
	alone=$(reads "$dev" 512M)
	writes "$dev" >/tmp/iso.a &
	sleep 2
	busy=$(reads "$dev" 512M)
	wait
	ktap_print_msg "${dev##*/} raw (reference): B randread QD16 alone: $alone (IOPS p99_us); with A fsync-writing: $busy; A's write IOPS $(cat /tmp/iso.a)"
done
echo 0 >$RAW/power && rmdir $RAW
ktap_test_skip "isolation" "a measurement, not a test: the numbers are above"
ktap_finished
