#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Data zones the device turns read-only or offline (null_blk zoned
# `zone_readonly`, `zone_offline`), against the real driver:
# - a read-only zone that was being written: the write into it fails, the
#   zone is taken out of service (never finished or reset: either would
#   fail and, before, failed the whole pool), later writes go elsewhere,
#   GC moves its data, the pool stays `degraded`, never `failed`;
# - an offline zone holding data: reads of its blocks fail with EIO (never
#   zeros), the rest reads; once its blocks are overwritten its reset fails
#   and it is taken out of service instead of failing the pool;
# - data written before reads back; no kernel warning.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
MIB=1048576
ktap_print_header
for t in zvpoolctl blkzone md5sum dd; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "zone conditions" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "zone conditions" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 14
dmesg_mark
START=$DMESG_MARK

health() { sed -n 's/^health //p' $CFG/zc/status; }
mfield() { awk -v k="$1" '{ for (f = 4; f <= NF; f++) if (index($f, k "=") == 1) { sub(/^[a-z_]*=/, "", $f); print $f } }' $CFG/zc/members; }
# zone_at COND: start sector of the first data zone (past the 4 metadata
# zones, 8 MiB each) whose condition is COND (blkzone's short name).
zone_at() {
	blkzone report /dev/zc | grep -F "($1)" | sed 's/.*start: \(0x[0-9a-f]*\),.*/\1/' |
		while read -r s; do
			[ $((s)) -ge $((4 * 16384)) ] && { echo $((s)); break; }
		done
}
dsum() { dd if="$1" bs=$MIB skip="$2" count="$3" iflag=direct status=none | md5sum | cut -d' ' -f1; }

nullb_zoned $NB/zc 256 8 zone_max_open=8 zone_max_active=12
insmod "$KO"
ktap_test_result "pool zc on a zoned null_blk, volume a" \
	quiet sh -c "zvpoolctl pool create -f zc /dev/zc && zvpoolctl volume create zc/a --size 96M"
V=$(zvpoolctl volume show -H -o device zc/a | cut -f2)
dd if=/dev/urandom of=/tmp/zc-1 bs=$MIB count=12 status=none
ktap_test_result "12 MiB written, flushed" dd if=/tmp/zc-1 of="$V" bs=$MIB oflag=direct conv=fsync status=none

# --- the zone being written turns read-only ------------------------------------
RO=$(zone_at oi)
[ -n "$RO" ] || RO=-1
ktap_print_msg "open data zone at sector $RO turned read-only"
echo $((RO)) >$NB/zc/zone_readonly
dd if=/dev/urandom of=/tmp/zc-2 bs=$MIB count=8 status=none
if dd if=/tmp/zc-2 of="$V" bs=$MIB seek=12 oflag=direct conv=fsync status=none 2>/tmp/zc.err; then
	ktap_print_msg "the write did not reach the read-only zone"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/zc.err) (a write into the read-only zone)"
fi
ktap_test_result "the write error names the zone read-only" log_has "ReadOnly; closed for writing"
ktap_test_result "writes after it succeed (8 MiB, flushed)" \
	dd if=/tmp/zc-2 of="$V" bs=$MIB seek=12 oflag=direct conv=fsync status=none
ktap_expect_eq "they read back" "$(md5sum </tmp/zc-2 | cut -d' ' -f1)" "$(dsum "$V" 12 8)"
ktap_expect_eq "the first 12 MiB read back" "$(md5sum </tmp/zc-1 | cut -d' ' -f1)" "$(dsum "$V" 0 12)"
ktap_expect_eq "pool degraded, not failed; no metadata error" "degraded 0" "$(health) $(mfield meta_errors)"

# --- a zone holding data goes offline ------------------------------------------
OFF=$(zone_at fu)
[ -n "$OFF" ] || OFF=-1
ktap_print_msg "full data zone at sector $OFF turned offline"
echo $((OFF)) >$NB/zc/zone_offline
if dd if="$V" of=/dev/null bs=$MIB count=20 iflag=direct status=none 2>/tmp/zc.err; then
	ktap_test_fail "reading the volume's data on the offline zone fails"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/zc.err)"
	ktap_test_pass "reading the volume's data on the offline zone fails"
fi
ktap_test_result "with EIO" grep -q "Input/output error" /tmp/zc.err
# Overwrite everything written: the offline zone empties, its reset fails
# and it is taken out of service.
dd if=/dev/urandom of=/tmp/zc-3 bs=$MIB count=20 status=none
ktap_test_result "20 MiB overwritten, flushed" dd if=/tmp/zc-3 of="$V" bs=$MIB oflag=direct conv=fsync status=none
# More commits and resets (a reset comes after the commit that follows).
for i in 1 2 3; do
	dd if=/dev/urandom of="$V" bs=$MIB seek=$((40 + i * 8)) count=8 oflag=direct conv=fsync status=none
done
ktap_test_result "the offline zone is taken out of service" \
	wait_for 10 log_has "data zone [0-9]* is offline on its device: taken out of service"
ktap_expect_eq "the overwritten data reads back" "$(md5sum </tmp/zc-3 | cut -d' ' -f1)" "$(dsum "$V" 0 20)"
ktap_expect_eq "pool still degraded, not failed; no metadata error" "degraded 0" "$(health) $(mfield meta_errors)"
ktap_test_result "the pool stops cleanly" quiet zvpoolctl pool stop zc

DMESG_MARK=$START
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
rmmod zvpool
echo 0 >$NB/zc/power
rmdir $NB/zc
rm -f /tmp/zc-1 /tmp/zc-2 /tmp/zc-3 /tmp/zc.err
ktap_finished
