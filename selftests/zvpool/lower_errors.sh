#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Lower-device errors: write and read errors injected below zvpool with
# null_blk's bad blocks (on every data zone of a memory-backed zoned
# null_blk; the metadata zones stay good). Affected requests must fail with
# EIO, the failure is logged with the zone's state read back from the device,
# the member's error counters count it, and the volume keeps serving other
# I/O: once the bad blocks are gone, writes succeed and data written before
# reads back intact. A mirrored volume reads what one copy cannot give from
# the other.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zverr
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "lower errors" "needs zvpoolctl, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 22
dmesg_mark
DMESG_START=$DMESG_MARK

# 16 zones of 8 MiB; zones 0-3 hold metadata (sectors 0-65535).
nullb_zoned $NB 128 8
NBDEV=/dev/${NB##*/}
BAD="+65536-262143"
insmod "$KO"
ktap_test_result "pool and a volume on a zoned null_blk" \
	quiet sh -c "zvpoolctl pool create -f err $NBDEV && zvpoolctl volume create err/v --size 64M"
V=$(zvpoolctl volume show -H -o device err/v | cut -f2)
member_errors() { sed -n 's/.* read_errors=\([0-9]*\) write_errors=\([0-9]*\) meta_errors=[0-9]*.* state=\(.*\)$/\1 \2 \3/p' \
	/sys/kernel/config/zvpool/err/members; }
dd if=/dev/urandom of=/tmp/a bs=$MIB count=8 2>/dev/null
ktap_test_result "write 8 MiB, flushed" dd if=/tmp/a of="$V" bs=$MIB oflag=direct conv=fsync status=none
want=$(md5sum </tmp/a)
readback() { [ "$(dd if="$V" bs=$MIB count=8 iflag=direct status=none | md5sum)" = "$want" ]; }

dmesg_mark
echo "$BAD" >$NB/badblocks
if dd if=/dev/urandom of="$V" bs=$MIB seek=16 count=4 oflag=direct status=none 2>/tmp/dd.err; then
	ktap_test_fail "a write onto bad blocks fails"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/dd.err)"
	ktap_test_pass "a write onto bad blocks fails"
fi
log() { dmesg_since_mark | grep -q "$1"; }
ktap_test_result "the write error is logged with the member" log "zvpool: err: write error on $NBDEV"
ktap_test_result "the zone's state is read back and the zone closed" log "device write pointer .*; closed for writing"
if dd if="$V" of=/dev/null bs=$MIB count=8 iflag=direct status=none 2>/dev/null; then
	ktap_test_fail "a read of bad blocks fails"
else
	ktap_test_pass "a read of bad blocks fails"
fi
ktap_test_result "the read error is logged" log "zvpool: err: read error on $NBDEV"
set -- $(member_errors)
ktap_print_msg "member counters: read_errors=$1 write_errors=$2 state=$3"
ktap_test_result "member error counters count both; the member is degraded" sh -c "[ '$1' -gt 0 ] && [ '$2' -gt 0 ] && [ '$3' = degraded ]"
ktap_test_result "unmapped space still reads (zeros, no lower I/O)" \
	sh -c "[ \$(dd if=$V bs=$MIB skip=40 count=1 iflag=direct status=none | tr -d '\000' | wc -c) = 0 ]"

echo "-$BAD" | tr -d '+' >$NB/badblocks
ktap_test_result "after the bad blocks are gone, data written before reads back" readback
dd if=/dev/urandom of=/tmp/b bs=$MIB count=4 2>/dev/null
ktap_test_result "new writes succeed (into other zones) and are flushed" \
	dd if=/tmp/b of="$V" bs=$MIB seek=16 count=4 oflag=direct conv=fsync status=none
ktap_expect_eq "they read back" "$(md5sum </tmp/b)" "$(dd if="$V" bs=$MIB skip=16 count=4 iflag=direct status=none | md5sum)"
ktap_test_result "the pool survives a restart (stop, assemble, data intact)" sh -c \
	"zvpoolctl pool stop err >/dev/null && zvpoolctl pool assemble err $NBDEV >/dev/null &&
	 V=\$(zvpoolctl volume show -H -o device err/v | cut -f2) &&
	 [ \"\$(dd if=\$V bs=$MIB count=8 iflag=direct status=none | md5sum)\" = \"$want\" ]"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop err >/dev/null && echo 0 > $NB/power && rmdir $NB"

# A mirrored volume over two null_blk: with the zone of member 0 that
# holds its first copies bad, a read is answered from the other copies
# (the asynchronous path requeues it for the slow one, which reads them),
# counted in copy_read_blocks and in member 0's read errors; the copies
# that could not be read are written again from the others
# (copy_repair_blocks), after which a read finds the first copies good.
NB2=/sys/kernel/config/nullb/zverr2
nullb_zoned $NB 128 8
nullb_zoned $NB2 128 8
ktap_test_result "a mirrored volume on two zoned null_blk" \
	quiet sh -c "zvpoolctl pool create -f err $NBDEV /dev/${NB2##*/} && zvpoolctl volume create err/m --size 64M --copies 2"
V=$(zvpoolctl volume show -H -o device err/m | cut -f2)
dd if=/tmp/a of="$V" bs=$MIB oflag=direct conv=fsync status=none
# Zone 4, member 0's first data zone: the volume's first 8 MiB.
BAD0="+65536-81919"
echo "$BAD0" >$NB/badblocks
ktap_test_result "member 0's copies unreadable: the data reads back from the others" readback
set -- $(member_errors | head -n1)
mst() { sed -n "s/^$1 //p" /sys/kernel/config/zvpool/err/status; }
C=$(mst copy_read_blocks)
ktap_print_msg "copy_read_blocks $C; member 0: read_errors=$1 state=$3"
ktap_test_result "copy_read_blocks and member 0's read errors count them" sh -c "[ '$C' -gt 0 ] && [ '$1' -gt 0 ]"
ktap_test_result "the unreadable copies are written again from the others" \
	wait_for 30 sh -c "[ \$(sed -n 's/^copy_repair_blocks //p' /sys/kernel/config/zvpool/err/status) -ge 2048 ]"
ktap_print_msg "copy_repair_blocks $(mst copy_repair_blocks)"
ktap_test_result "read again: the data reads back" readback
ktap_expect_eq "read again: no copy read from the others (the first copies are good)" "$C" "$(mst copy_read_blocks)"
echo "-$BAD0" | tr -d '+' >$NB/badblocks
ktap_test_result "cleanup (mirrored)" sh -c "zvpoolctl pool stop err >/dev/null && rmmod zvpool &&
	echo 0 > $NB/power && rmdir $NB && echo 0 > $NB2/power && rmdir $NB2 && rmmod null_blk"
DMESG_MARK=$DMESG_START
# I/O errors are expected above; warnings and oopses are not.
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
