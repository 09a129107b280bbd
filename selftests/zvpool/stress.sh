#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Stress: several volumes on a small pool (memory-backed zoned null_blk, so GC
# is active), 4 jobs x QD16 mixed random read/write with verification on two
# of them, while volumes are created and deleted and another volume is
# discarded in a loop. No error, data verifies, no splat (run it on the debug
# kernel, ZVPOOL_KERNEL=debug, for lockdep, KASAN and DEBUG_ATOMIC_SLEEP).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvst
ST=/sys/kernel/config/zvpool/st/status
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || ! command -v fio >/dev/null || [ ! -f "$KO" ] ||
	[ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "stress" "needs zvpoolctl, fio, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 10
dmesg_mark
RUNTIME=${ZVPOOL_STRESS_SECONDS:-30}

# 48 zones of 4 MiB (44 for data, 176 MiB): a and b filled (128 MiB), c up
# to 16 MiB and 4 MiB volumes coming and going leave ~6 free zones: GC runs
# within seconds even on the (slow) debug kernel.
nullb_zoned $NB 192 4 submit_queues=2
NBDEV=/dev/${NB##*/}
insmod "$KO"
dev_of() { zvpoolctl volume show -H -o device "st/$1" | cut -f2; }
ktap_test_result "pool and three volumes" quiet sh -c "zvpoolctl pool create -f st $NBDEV &&
	zvpoolctl volume create st/a --size 64M && zvpoolctl volume create st/b --size 64M &&
	zvpoolctl volume create st/c --size 48M"
A=$(dev_of a) B=$(dev_of b) C=$(dev_of c)
ktap_test_result "fill a and b" quiet sh -c "dd if=/dev/urandom of=$A bs=1M count=64 oflag=direct status=none &&
	dd if=/dev/urandom of=$B bs=1M count=64 oflag=direct status=none"

# Background churn: volume create/write/delete, and discard + rewrite on c.
churn() {
	i=0
	while [ ! -f /tmp/stop ]; do
		zvpoolctl volume create st/tmp$i --size 8M >/dev/null 2>&1 &&
			T=$(dev_of tmp$i) && dd if=/dev/urandom of="$T" bs=1M count=4 oflag=direct status=none &&
			zvpoolctl volume delete st/tmp$i >/dev/null 2>&1 || { echo "churn $i failed" >>/tmp/churn.err; }
		i=$((i + 1))
	done
	echo $i >/tmp/churn.n
}
discards() {
	i=0
	while [ ! -f /tmp/stop ]; do
		dd if=/dev/urandom of="$C" bs=1M count=16 seek=$((i % 3 * 16)) oflag=direct status=none &&
			blkdiscard -o $((i % 3 * 16 * MIB)) -l $((16 * MIB)) "$C" || echo "discard $i failed" >>/tmp/churn.err
		i=$((i + 1))
	done
	echo $i >/tmp/discard.n
}
rm -f /tmp/stop /tmp/churn.err
churn &
CH=$!
discards &
DI=$!
# 4 jobs x QD16: two verifying random writers (a), two mixed 70/30 (b).
ktap_test_result "4 jobs x QD16 mixed random I/O for ${RUNTIME}s with churn" quiet fio --ioengine=libaio \
	--direct=1 --bs=4k --iodepth=16 --group_reporting --runtime="$RUNTIME" --time_based \
	--name=va --filename="$A" --rw=randwrite --verify=crc32c --verify_backlog=512 --verify_fatal=1 --numjobs=2 \
	--size=32M --offset_increment=32M \
	--name=mix --filename="$B" --rw=randrw --rwmixread=70 --numjobs=2 --size=32M --offset_increment=32M
touch /tmp/stop
wait $CH $DI
ktap_print_msg "volumes created and deleted: $(cat /tmp/churn.n 2>/dev/null), discard rounds: $(cat /tmp/discard.n 2>/dev/null), GC runs $(sed -n 's/^gc_runs //p' $ST), write amplification $(sed -n 's/^write_amplification //p' $ST); writes held for GC (count, total us, max us): $(sed -n 's/^write_wait_pace //p' $ST)"
ktap_test_result "churn and discards had no error" sh -c "[ ! -s /tmp/churn.err ] || { sed 's/^/# /' /tmp/churn.err; false; }"
ktap_test_result "GC ran" [ "$(sed -n 's/^gc_runs //p' $ST)" -gt 0 ]
ktap_test_result "every volume reads back in full without an error" quiet sh -c \
	"for d in $A $B $C; do dd if=\$d of=/dev/null bs=1M iflag=direct status=none || exit 1; done"
ktap_test_result "only the three volumes are left" [ "$(zvpoolctl volume list -H -o name st | wc -l)" = 3 ]
ktap_test_result "stop the pool, unload" quiet sh -c "zvpoolctl pool stop st && rmmod zvpool"
ktap_test_result "cleanup" sh -c "echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
dmesg_clean_since_mark "no WARN/oops, no lockdep/KASAN report"
ktap_finished
