#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Allocation failures on the I/O path delay requests, never fail them.
#
# zvpool.ko is loaded with the test hook fail_node_alloc=N: one in N
# block-table node allocations of an active pool (chosen pseudo-randomly)
# fails as if the kernel were out of memory. Writes whose table update needs a node then end with
# ENOMEM inside the driver, which requeues them (10 ms later, for up to
# 30 s); the filesystem or application must see no error. fio writes with
# verification over 4x the volume (GC and zone resets run, commits go on),
# first through the worker (fastpath=1), then, after a reload, through the
# asynchronous path (fastpath=2) with a snapshot taken before (so overwrites
# copy shared nodes: more node allocations). Every block must verify, no
# request may fail, and the failures must have happened (status
# table_alloc_failures). With a write limit set (far above what the VM can
# do, so nothing waits), every write is charged against it exactly once
# however often it was requeued: usage's qos_charged moves by the writes
# the disk completed (its stat), not by more.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvnom
P=/sys/kernel/config/zvpool/nom
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || ! command -v fio >/dev/null || [ ! -f "$KO" ] ||
	[ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "nomem" "needs zvpoolctl, fio, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 17
dmesg_mark
DMESG_START=$DMESG_MARK

# 32 zones of 16 MiB: about 400 MiB of data space for a 128 MiB volume (and
# a snapshot of it), so 4x the volume of writes makes GC relocate and reset
# zones.
nullb_zoned $NB 512 16
NBDEV=/dev/${NB##*/}
st() { sed -n "s/^$1 //p" $P/status; }
# Writes charged against the volume's limits, and writes its disk completed.
charged() { sed -n 's/^qos_charged //p' $P/v/usage; }
writes_done() { awk '{ print $5 }' "/sys/block/${V##*/}/stat"; }
# Sets a write limit no run reaches and notes the counts.
limit_writes() {
	echo 10000000 >$P/v/wiops && C0=$(charged) && W0=$(writes_done) && R0=$(st requeued_nomem)
}
# Every write completed since limit_writes was charged once, and some were
# requeued meanwhile (else the case proves nothing).
charged_once() {
	c=$(($(charged) - C0)) w=$(($(writes_done) - W0)) r=$(($(st requeued_nomem) - R0))
	ktap_print_msg "writes completed $w, charged against the limit $c, requests requeued for want of memory $r"
	[ "$r" -gt 0 ] && [ "$w" -gt 0 ] && [ "$c" = "$w" ]
}
# fio: PASSES passes of random writes of 4-64 KiB over the whole volume
# (each block once a pass), each with a verify header and read back (fio's
# verify phase) after its pass.
fio_verify() { # PASSES
	for _pass in $(seq "$1"); do
		fio --name=nomem --filename="$V" --ioengine=libaio --direct=1 --iodepth=16 \
			--rw=randwrite --bsrange=4k-64k --size=128M --randrepeat=0 \
			--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
			--output=/tmp/fio.out >/dev/null 2>&1 ||
			{ grep -E 'err=|verify|error' /tmp/fio.out | head -5 | sed 's/^/# /'; return 1; }
	done
}

ktap_test_result "load with fail_node_alloc=5 (worker path)" insmod "$KO" fastpath=1 fail_node_alloc=5
ktap_test_result "pool on a zoned null_blk" quiet zvpoolctl pool create -f nom "$NBDEV"
ktap_test_result "128 MiB volume" quiet zvpoolctl volume create nom/v --size 128M
V=$(zvpoolctl volume show -H -o device nom/v | cut -f2)
dmesg_mark
limit_writes
ktap_test_result "fio writes 4 x 128 MiB and verifies, no I/O error" fio_verify 4
ktap_print_msg "node allocations failed: $(st table_alloc_failures); gc_runs $(st gc_runs), zones_reset $(st zones_reset), checkpoints $(st checkpoints)"
ktap_test_result "allocations did fail (and were retried)" [ "$(st table_alloc_failures)" -gt 0 ]
ktap_test_result "no request failed for want of memory" log_lacks 'out of memory for'
ktap_test_result "requeued writes are not charged against the write limit again" charged_once

ktap_test_result "stop, reload with fastpath=2 fail_node_alloc=5, reassemble" quiet sh -c \
	"zvpoolctl pool stop nom && rmmod zvpool && insmod $KO fastpath=2 fail_node_alloc=5 && zvpoolctl pool assemble nom $NBDEV"
V=$(zvpoolctl volume show -H -o device nom/v | cut -f2)
ktap_test_result "snapshot (overwrites copy shared nodes)" quiet sh -c "echo v@s >$P/snapshot"
dmesg_mark
limit_writes
ktap_test_result "one pass over the snapshot's blocks through the fast path verifies" fio_verify 1
ktap_test_result "delete the snapshot" quiet sh -c "echo v@s >$P/delete_volume"
ktap_test_result "fio writes 3 x 128 MiB through the fast path and verifies" fio_verify 3
ktap_print_msg "node allocations failed: $(st table_alloc_failures); gc_runs $(st gc_runs), zones_reset $(st zones_reset)"
ktap_test_result "allocations did fail on the fast path too" [ "$(st table_alloc_failures)" -gt 0 ]
ktap_test_result "no request failed for want of memory (fast path)" log_lacks 'out of memory for'
ktap_test_result "requeued writes are not charged again (fast path)" charged_once
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop nom >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
