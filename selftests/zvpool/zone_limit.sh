#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Checkpoints at the members' open/active zone limits (engine issue).
#
# A zoned null_blk at the smallest zone limits a pool takes (2 open, 2
# active): one slot for the journal's zone, one for a data zone, so every
# checkpoint needs the data zone with nothing in flight, which it finishes
# for its slot. Writes at QD32 keep writes in flight there while fsync'ed
# writes commit, so that checkpoints fall due under load. A checkpoint
# that found no slot used to fail its flush with EBUSY; now the member's
# data zones take no new blocks until one drained (status
# checkpoint_slot_waits counts the waits), and no write or flush fails.
# (Found with this test: a checkpoint zone's slot was given back when its
# finish was planned, not done, and a data zone opened meanwhile exceeded
# the device's active limit: EIO.)
# Then stop and reassemble: every block reads back.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvlimit
P=/sys/kernel/config/zvpool/zl
MIB=1048576
ktap_print_header
for t in zvpoolctl fio md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "checkpoints at the zone limits" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "checkpoints at the zone limits" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 10
dmesg_mark

st() { sed -n "s/^$1 //p" $P/status; }
dev() { zvpoolctl volume show -H -o device zl/v | cut -f2; }
sum() { dd if="$(dev)" bs=$MIB count=80 iflag=direct status=none | md5sum; }
# QD32 random writes over the first 48 MiB while a second job writes the
# next 16 MiB with an fsync after each write, for $1 seconds.
load() {
	fio --filename="$(dev)" --direct=1 --bs=4k --rw=randwrite --randrepeat=0 \
		--time_based --runtime="$1" --output=/tmp/fio.out \
		--name=qd32 --ioengine=libaio --iodepth=32 --offset=0 --size=48M \
		--name=fsync --ioengine=psync --fsync=1 --offset=48M --size=16M
}

ktap_test_result "zoned null_blk with 4 MiB zones, 2 open / 2 active zones, zvpool loaded" quiet sh -c \
	". $DIR/ktap_helpers.sh && nullb_zoned $NB 512 4 zone_max_open=2 zone_max_active=2 && insmod $KO fastpath=2"
D=/dev/${NB##*/}
ktap_test_result "pool and a 80 MiB volume filled" quiet sh -c \
	"zvpoolctl pool create -f zl $D && zvpoolctl volume create zl/v --size 80M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device zl/v | cut -f2) bs=$MIB count=80 oflag=direct conv=fsync status=none"
c0=$(st checkpoints) w0=$(st checkpoint_slot_waits)
# Rounds of 25 s, up to three, until a checkpoint waited for a slot (when
# one falls due while writes are in flight in the data zone is a matter
# of timing: one round ran without a wait in a CI run).
rounds=0 failed=0
while [ $rounds -lt 3 ]; do
	rounds=$((rounds + 1))
	quiet load 25 || { failed=1; break; }
	[ "$(st checkpoint_slot_waits)" -gt "${w0:-0}" ] 2>/dev/null && break
done
ktap_test_result "QD32 writes and fsync'ed writes, $rounds x 25 s: no write or flush fails" [ $failed = 0 ]
c1=$(st checkpoints) w1=$(st checkpoint_slot_waits)
ktap_print_msg "checkpoints $c0 -> $c1, waits for a zone slot ${w0:-none} -> ${w1:-none}, $(grep -c 'fsync' /tmp/fio.out) fsync lines; $(grep -o 'IOPS=[^,]*' /tmp/fio.out | tr '\n' ' ')"
ktap_test_result "checkpoints were written under the load" [ $((c1 - c0)) -ge 2 ]
ktap_test_result "checkpoints waited for a zone slot (the path ran)" [ "${w1:-0}" -gt "${w0:-0}" ]
no_commit_errors() { ! dmesg_since_mark | grep -E 'zvpool: zl: .*(commit|checkpoint|flush).*(fail|refused)'; }
ktap_test_result "no commit, checkpoint or flush error logged" no_commit_errors
S1=$(sum)
ktap_test_result "stop and reassemble" quiet sh -c "zvpoolctl pool stop zl && zvpoolctl pool assemble zl $D"
ktap_expect_eq "every block reads back after reassembly" "$S1" "$(sum)"
ktap_test_result "more load after reassembly: no write or flush fails" quiet load 10
zvpoolctl pool stop zl >/dev/null 2>&1
rmmod zvpool
echo 0 >$NB/power
rmdir $NB
rmmod null_blk
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
