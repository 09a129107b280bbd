#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Quotas, reservations and the pool reserve (the tenants issue), on a pool
# over a memory-backed zoned null_blk, through the configfs attributes:
# - a volume with a quota writes up to it and is refused one MiB past it
#   (ENOSPC, one log line), overwrites go on, another volume is not
#   limited, and a snapshot's blocks do not count against the quota;
# - a volume with a reservation keeps writing while another one fills the
#   rest of the pool and is refused (for it only: no pool-full event); a
#   reservation the pool cannot hold is refused;
# - the pool reserve keeps a share of the pool from every volume;
# - refusals are told as uevents (`zvpoolctl pool events`);
# - quotas and reservations are metadata: a stop, an unload and an assembly
#   through configfs alone (no zvpoolctl cache) bring them back;
# - the data written reads back; no kernel warning.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvquota
P=/sys/kernel/config/zvpool/qt
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "quotas and reservations" "needs zvpoolctl, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 36
dmesg_mark
DMESG_START=$DMESG_MARK

# 64 zones of 4 MiB: about 240 MiB of data capacity.
nullb_zoned $NB 256 4
insmod "$KO"
ktap_test_result "pool on a zoned null_blk" quiet zvpoolctl pool create -f qt "/dev/${NB##*/}"
ktap_test_result "volumes a and b, 512 MiB each (thin)" sh -c \
	"zvpoolctl volume create qt/a --size 512M >/dev/null && zvpoolctl volume create qt/b --size 512M >/dev/null"
zvpoolctl pool events qt >/tmp/qt.events 2>&1 &
EVPID=$!
A=$(zvpoolctl volume show -H -o device qt/a | cut -f2)
B=$(zvpoolctl volume show -H -o device qt/b | cut -f2)
st() { awk -v k="$1" '$1 == k { print $2 }' $P/status; }
use() { awk -v k="$2" '$1 == k { print $2 }' "$P/$1/usage"; }
# wr DEV SEEK_MIB COUNT_MIB: writes random data (O_DIRECT, fsync'ed).
wr() { dd if=/dev/urandom of="$1" bs=$MIB seek="$2" count="$3" oflag=direct conv=fsync status=none 2>/tmp/qt.dd; }
sum() { dd if="$1" bs=$MIB skip="$2" count="$3" iflag=direct status=none | md5sum; }

# --- quota ---------------------------------------------------------------
ktap_test_result "quota_bytes 16 MiB" sh -c "echo $((16 * MIB)) >$P/a/quota_bytes"
ktap_expect_eq "usage shows the quota" $((16 * MIB)) "$(use a quota_bytes)"
ktap_test_result "16 MiB written up to the quota" wr "$A" 0 16
dmesg_mark
if wr "$A" 16 1; then
	ktap_test_fail "one MiB past the quota is refused (ENOSPC)"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/qt.dd)"
	ktap_test_result "one MiB past the quota is refused (ENOSPC)" grep -q "No space left" /tmp/qt.dd
fi
ktap_expect_eq "logged once as the volume's quota" 1 \
	"$(dmesg_since_mark | grep -c 'zvpool: qt: volume [0-9]* reached its quota')"
ktap_test_result "status counts the refusal, and the pool is not full" \
	sh -c "[ $(st quota_refusals) -ge 1 ] && ! grep -q '^space full' $P/status"
ktap_test_result "overwrites within the quota go on" wr "$A" 0 16
ktap_test_result "volume b is not limited (32 MiB)" wr "$B" 0 32
ktap_test_result "snapshot qt/a@s" quiet zvpoolctl snapshot create qt/a@s
ktap_test_result "the snapshot does not count: a is overwritten whole again" wr "$A" 0 16
dd if="$A" bs=$MIB count=16 iflag=direct status=none >/tmp/qt.a
ktap_test_result "quota off" sh -c "echo 0 >$P/a/quota_bytes && [ \$(cat $P/a/quota_bytes) = 0 ]"

# --- reservation -----------------------------------------------------------
AV0=$(st available_bytes)
ktap_print_msg "available $((AV0 / MIB)) MiB, held back $(($(st held_back_bytes) / MIB)) MiB, free $(($(st free_bytes) / MIB)) MiB, reclaimable $(($(st reclaimable_bytes) / MIB)) MiB"
refused "a reservation above the volume size is refused (EINVAL)" $((600 * MIB)) $P/a/reservation_bytes \
	"invalid argument" "reservation above the volume size"
refused "a reservation the pool cannot hold is refused (ENOSPC)" $((AV0 + 32 * MIB)) $P/a/reservation_bytes \
	"no space" "cannot be held"
ktap_test_result "reservation_bytes 64 MiB on a" sh -c "echo $((64 * MIB)) >$P/a/reservation_bytes"
# a maps 16 MiB of it: 48 MiB are held from the others.
ktap_expect_eq "reserved_bytes: the unused 48 MiB" $((48 * MIB)) "$(st reserved_bytes)"
ktap_expect_eq "available_bytes fell by 48 MiB" $((AV0 - 48 * MIB)) "$(st available_bytes)"
dmesg_mark
if dd if=/dev/zero of="$B" bs=$MIB seek=32 count=480 oflag=direct conv=fsync status=none 2>/tmp/qt.dd; then
	ktap_test_fail "b fills the rest and is refused (ENOSPC)"
else
	ktap_test_pass "b fills the rest and is refused (ENOSPC)"
fi
BM=$(use b mapped_bytes)
ktap_print_msg "b maps $((BM / MIB)) MiB; available $(($(st available_bytes) / MIB)) MiB; reserve_refusals $(st reserve_refusals)"
ktap_test_result "b got about what was available (within 4 MiB)" \
	sh -c "[ $((BM - 32 * MIB)) -le $((AV0 - 48 * MIB)) ] && [ $((BM - 32 * MIB + 4 * MIB)) -ge $((AV0 - 48 * MIB)) ]"
reserved_logged() {
	log_has 'zvpool: qt: volume [0-9]*: write of .* the rest of the pool is reserved' &&
		log_lacks 'zvpool: qt: out of space' && ! grep -q '^space full' $P/status
}
ktap_test_result "logged as reserved, not as out of space; no pool-full event" reserved_logged
dd if=/dev/urandom of=/tmp/qt.r bs=$MIB count=48 status=none
ktap_test_result "a writes its whole reservation (48 MiB more)" \
	dd if=/tmp/qt.r of="$A" bs=$MIB seek=16 oflag=direct conv=fsync status=none
ktap_expect_eq "nothing reserved is left unused" 0 "$(st reserved_bytes)"
ktap_test_result "past its reservation, a is refused too" \
	sh -c "! dd if=/dev/zero of=$A bs=$MIB seek=64 count=4 oflag=direct status=none 2>/dev/null"
ktap_expect_eq "a's data reads back" "$(md5sum </tmp/qt.a)$(md5sum </tmp/qt.r)" "$(sum "$A" 0 16)$(sum "$A" 16 48)"
ktap_test_result "a discard on b gives space back: a writes 8 MiB" \
	sh -c "blkdiscard -o $((32 * MIB)) -l $((64 * MIB)) $B && dd if=/dev/null of=$B conv=fsync status=none && dd if=/dev/zero of=$A bs=$MIB seek=64 count=8 oflag=direct conv=fsync status=none"

wait_for 10 sh -c "grep -q ' reserved volume=a ' /tmp/qt.events"
kill $EVPID 2>/dev/null
wait $EVPID 2>/dev/null
sed 's/^/# pool events: /' /tmp/qt.events
ktap_test_result "a quota event for a" grep -q '^qt quota volume=a volume_id=[0-9]*$' /tmp/qt.events
ktap_test_result "reserved events for b, then for a past its reservation" \
	sh -c "grep -q '^qt reserved volume=b volume_id=[0-9]*$' /tmp/qt.events && grep -q '^qt reserved volume=a volume_id=[0-9]*$' /tmp/qt.events"

# --- pool reserve ------------------------------------------------------------
refused "pool_reserve_pct above 50 is refused" 51 $P/pool_reserve_pct "invalid argument" "pool_reserve_pct takes 0 to 50"
ktap_test_result "pool_reserve_pct 50: no volume may write new blocks" \
	sh -c "echo 50 >$P/pool_reserve_pct && [ \$(awk '\$1 == \"available_bytes\" { print \$2 }' $P/status) = 0 ] && ! dd if=/dev/zero of=$B bs=$MIB seek=200 count=1 oflag=direct status=none 2>/dev/null"
ktap_test_result "pool_reserve_pct 0: b writes again" \
	sh -c "echo 0 >$P/pool_reserve_pct && echo 0 >$P/a/reservation_bytes && dd if=/dev/zero of=$B bs=$MIB seek=200 count=1 oflag=direct status=none"

# --- the rules are metadata: they survive a stop, an unload and a bare assembly ---
echo $((100 * MIB)) >$P/a/quota_bytes
echo $((90 * MIB)) >$P/a/reservation_bytes
R0=$(st reserved_bytes)
ktap_test_result "stop, unload, assemble through configfs alone" sh -c \
	"zvpoolctl pool stop qt >/dev/null && rmmod zvpool && insmod $KO && mkdir $P && echo /dev/${NB##*/} >$P/devices && echo 1 >$P/enable && mkdir $P/a"
ktap_expect_eq "quota and reservation of a are back" "$((100 * MIB)) $((90 * MIB))" \
	"$(cat $P/a/quota_bytes) $(cat $P/a/reservation_bytes)"
ktap_expect_eq "so is the space they hold" "$R0" "$(st reserved_bytes)"

ktap_test_result "cleanup" sh -c "rmdir $P/a && echo 0 >$P/enable && rmdir $P && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
