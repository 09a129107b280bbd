#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Thin provisioning at its limit, on a pool over a memory-backed zoned
# null_blk: a volume larger than the pool is filled until writes fail with
# ENOSPC; data written before is intact; discarding returns the space (zones
# are reset once the unmapping is committed) and writes succeed again.
# Space events on the way (thresholds set to 30 % and 60 %): low, critical,
# full at the ENOSPC, ok after the discard, each once, as `zvpoolctl pool
# events` prints them and in `status`. With `no_space_timeout` a write that
# finds the pool full waits, and completes once a discard frees space.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvovc
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "overcommit" "needs zvpoolctl, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 24
dmesg_mark
DMESG_START=$DMESG_MARK

# 16 zones of 8 MiB: 4 hold metadata, 2 are the GC reserve, so about 80 MiB
# can hold user data.
nullb_zoned $NB 128 8
NBDEV=/dev/${NB##*/}
insmod "$KO"
ktap_test_result "pool on a zoned null_blk" quiet zvpoolctl pool create -f ovc "$NBDEV"
ktap_test_result "256 MiB volume on a ~96 MiB pool (thin)" quiet zvpoolctl volume create ovc/big --size 256M
B=$(zvpoolctl volume show -H -o device ovc/big | cut -f2)
ktap_test_result "space thresholds 30 % and 60 %" \
	quiet zvpoolctl pool set ovc space_low_pct=30 space_critical_pct=60
zvpoolctl pool events -n 4 ovc >/tmp/ovc.events 2>&1 &
EVPID=$!
sleep 1

dd if=/dev/urandom of=/tmp/first bs=$MIB count=16 2>/dev/null
ktap_test_result "write the first 16 MiB" dd if=/tmp/first of="$B" bs=$MIB oflag=direct conv=fsync status=none
sum_first() { dd if="$B" bs=$MIB count=16 iflag=direct status=none | md5sum; }
want=$(md5sum </tmp/first)

dmesg_mark
if dd if=/dev/zero of="$B" bs=$MIB seek=16 count=200 oflag=direct status=none 2>/tmp/dd.err; then
	ktap_test_fail "writing past the pool's capacity fails"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/dd.err)"
	ktap_test_pass "writing past the pool's capacity fails"
fi
ktap_test_result "the failure is logged as out of space" log_has 'zvpool: ovc: out of space'
ktap_expect_eq "data written before is intact" "$want" "$(sum_first)"
free0=$(sed -n 's/^zones_free //p' /sys/kernel/config/zvpool/ovc/status)
ktap_test_result "discard everything after the first 16 MiB" blkdiscard -o $((16 * MIB)) -l $((240 * MIB)) "$B"
# The unmapping becomes durable with the next flush; then empty zones reset.
ktap_test_result "flush (fsync of the device)" dd if=/dev/null of="$B" conv=fsync status=none
free1=$(sed -n 's/^zones_free //p' /sys/kernel/config/zvpool/ovc/status)
ktap_print_msg "free zones: $free0 when full, $free1 after discard and flush"
space() { sed -n 's/^space \([a-z]*\) .*/\1/p' /sys/kernel/config/zvpool/ovc/status; }
wait_for 10 sh -c "[ \$(wc -l </tmp/ovc.events) -ge 4 ]"
kill $EVPID 2>/dev/null
wait $EVPID 2>/dev/null
sed 's/^/# pool events: /' /tmp/ovc.events
ktap_expect_eq "space events: low, critical, full, ok, in order" \
	"ovc space space=low;ovc space space=critical;ovc space space=full;ovc space space=ok;" \
	"$(sed 's/ used_pct=[0-9]*//' /tmp/ovc.events | tr '\n' ';')"
ktap_test_result "each once in the log" sh -c \
	"[ \$(dmesg | grep -c 'zvpool: ovc: space full: a write found no free space') = 1 ] && [ \$(dmesg | grep -c 'zvpool: ovc: space critical') = 1 ]"
ktap_expect_eq "status: space ok after the discard" ok "$(space)"
ktap_test_result "discard returned zones to the pool" [ "$free1" -gt "$free0" ]
ktap_test_result "writes succeed again (40 MiB)" dd if=/dev/zero of="$B" bs=$MIB seek=16 count=40 oflag=direct conv=fsync status=none
ktap_expect_eq "first 16 MiB still intact" "$want" "$(sum_first)"
# --- a write that finds the pool full waits for space (no_space_timeout) ---
ktap_test_result "no_space_timeout=60" quiet zvpoolctl pool set ovc no_space_timeout=60
# 56 MiB live; 60 MiB more do not fit.
dd if=/dev/urandom of=/tmp/ovc.q bs=$MIB count=60 2>/dev/null
dd if=/tmp/ovc.q of="$B" bs=$MIB seek=56 oflag=direct conv=fsync status=none 2>/tmp/ovc.dd &
DD=$!
waits() { awk '$1 == "write_wait_space" { print $2 }' /sys/kernel/config/zvpool/ovc/status; }
W0=$(waits)
sleep 4
W1=$(waits)
if kill -0 $DD 2>/dev/null; then
	ktap_print_msg "the writer waits (write_wait_space: $W0 -> $W1 waits); status: $(grep '^space ' /sys/kernel/config/zvpool/ovc/status)"
	ktap_test_pass "a write that finds the pool full waits instead of failing"
else
	ktap_print_msg "dd: $(cat /tmp/ovc.dd)"
	ktap_test_fail "a write that finds the pool full waits instead of failing"
fi
# Each of its requests (dd's 1 MiB is split into several) polls every
# 100 ms: a few hundred waits in 4 s. Waking on every GC signal spun
# (about 500,000 in 4 s).
ktap_test_result "the queued write does not spin (fewer than 5000 waits in 4 s)" [ $((W1 - W0)) -lt 5000 ]
ktap_expect_eq "status: space full while a write waits for space" full "$(space)"
# Space from outside: the first 56 MiB discarded (and the unmapping committed).
blkdiscard -o 0 -l $((56 * MIB)) "$B" && dd if=/dev/null of="$B" conv=fsync status=none
if wait $DD; then
	ktap_test_pass "once space is freed the waiting write completes"
else
	ktap_print_msg "dd: $(cat /tmp/ovc.dd)"
	ktap_test_fail "once space is freed the waiting write completes"
fi
ktap_expect_eq "its data reads back" "$(md5sum </tmp/ovc.q)" \
	"$(dd if="$B" bs=$MIB skip=56 count=60 iflag=direct status=none | md5sum)"
# A new volume that reuses the space of a deleted one reads zeros.
reuse() {
	zvpoolctl volume delete ovc/big >/dev/null && zvpoolctl volume create ovc/new --size 256M >/dev/null &&
		N=$(zvpoolctl volume show -H -o device ovc/new | cut -f2) &&
		[ "$(dd if="$N" bs=$MIB count=16 iflag=direct status=none | tr -d '\000' | wc -c)" = 0 ] &&
		dd if=/dev/urandom of=/tmp/new bs=$MIB count=64 status=none &&
		dd if=/tmp/new of="$N" bs=$MIB oflag=direct conv=fsync status=none &&
		[ "$(dd if="$N" bs=$MIB count=64 iflag=direct status=none | md5sum)" = "$(md5sum </tmp/new)" ]
}
ktap_test_result "delete; a new volume reads zeros, then fills the freed space and reads back" reuse
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop ovc >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
