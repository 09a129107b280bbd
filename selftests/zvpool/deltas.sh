#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Delta checkpoints (metadata-at-scale issue): most checkpoints carry only
# the block-table changes since the previous one, appended to its set.
#
# A zoned null_blk with small zones (4 MiB: the log zone is half full, and
# a checkpoint due, every ~500 journal blocks) and open/active limits (the
# set's tail zone stays open between checkpoints and holds a slot). A
# volume is filled, then 3,000 fsync'ed random 4 KiB writes commit one
# journal block each: the checkpoints after the first full one must be
# deltas (status delta_checkpoints; their sizes are printed: a delta costs
# what changed, which here, random writes over a sequentially written
# volume, is more than its small full image; the host test
# pool/ckpt_cost_tests.rs compares the costs).
# Stop and reassemble: the chain is loaded (the assembly line counts the
# deltas) and every block reads back; more writes after reassembly, and a
# second reassembly, likewise.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvdelta
P=/sys/kernel/config/zvpool/dl
MIB=1048576
ktap_print_header
for t in zvpoolctl fio md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "delta checkpoints" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "delta checkpoints" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 17
dmesg_mark

st() { sed -n "s/^$1 //p" $P/status; }
dev() { zvpoolctl volume show -H -o device "dl/${1:-v}" | cut -f2; }
sum() { dd if="$(dev "$1")" bs=$MIB count=96 iflag=direct status=none | md5sum; }
# fsyncs N: N random 4 KiB writes over the first 96 MiB, each fsync'ed.
fsyncs() {
	fio --name=d --filename="$(dev)" --ioengine=psync --direct=1 --bs=4k --rw=randwrite \
		--size=96M --number_ios="$1" --fsync=1 --randrepeat=0 --output=/tmp/fio.out
}
assembled() { dmesg | grep 'zvpool: dl: assembled' | tail -n 1; }

ktap_test_result "zoned null_blk with 4 MiB zones and open/active limits, zvpool loaded" quiet sh -c \
	". $DIR/ktap_helpers.sh && nullb_zoned $NB 512 4 zone_max_open=6 zone_max_active=8 && insmod $KO"
D=/dev/${NB##*/}
ktap_test_result "pool and a 128 MiB volume filled to 96 MiB" quiet sh -c \
	"zvpoolctl pool create -f dl $D && zvpoolctl volume create dl/v --size 128M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device dl/v | cut -f2) bs=$MIB count=96 oflag=direct conv=fsync status=none"
c0=$(st checkpoints) d0=$(st delta_checkpoints) h0=$(st zone_history_records)
ktap_test_result "3,000 fsync'ed random writes" quiet fsyncs 3000
c1=$(st checkpoints) d1=$(st delta_checkpoints) h1=$(st zone_history_records)
full=$(st checkpoint_blocks) last=$(st last_delta_blocks)
ktap_print_msg "checkpoints $c0 -> $c1, deltas $d0 -> $d1; full image $full blocks, last delta $last blocks, chain $(st delta_blocks) blocks, $(st checkpoint_blocks_written) checkpoint blocks written; placement history of $h0 -> $h1 zones written (a delta lists the zones written since the checkpoint before)"
ktap_test_result "the checkpoints after the full one are deltas" [ $((d1 - d0)) -ge 1 ]
S1=$(sum)
ktap_test_result "stop and reassemble" quiet sh -c "zvpoolctl pool stop dl && zvpoolctl pool assemble dl $D"
ktap_print_msg "$(assembled)"
n=$(assembled | sed -n 's/.*(\([0-9]*\) delta checkpoint(s) loaded).*/\1/p')
ktap_test_result "assembly loaded the chain's deltas" [ "${n:-0}" -ge 1 ]
ktap_expect_eq "every block reads back after reassembly" "$S1" "$(sum)"
ktap_test_result "1,500 more fsync'ed writes after reassembly" quiet fsyncs 1500
# Volume operations go into the next delta (INCOMPAT_DELTA_VOLUMES): the
# volume table and the tables made anew, not a new image of every table.
# A chain with room for them first: the chain the assembly continued may
# be at its end (its deltas as large as its full image), so a full
# checkpoint, then a delta after it.
full() { echo $(($(st checkpoints) - $(st delta_checkpoints))); }
f0=$(full) n=0
while [ "$(full)" = "$f0" ] && [ $n -lt 8 ]; do
	fsyncs 400 >/dev/null 2>&1
	n=$((n + 1))
done
dd0=$(st delta_checkpoints) n=0
while [ "$(st delta_checkpoints)" = "$dd0" ] && [ $n -lt 6 ]; do
	fsyncs 400 >/dev/null 2>&1
	n=$((n + 1))
done
v0=$(st volume_deltas) c0=$(st checkpoints) d0=$(st delta_checkpoints) g0=$(st delta_grows)
C0=$(sum)
ktap_test_result "volume operations: a snapshot, a clone of it, v grown to 160 MiB, a volume created and written, another deleted" \
	quiet sh -c "zvpoolctl snapshot create dl/v@s1 && zvpoolctl volume clone dl/v@s1 c1 &&
	 zvpoolctl volume resize --size 160M dl/v &&
	 zvpoolctl volume create dl/w --size 96M && zvpoolctl volume create dl/gone --size 8M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device dl/w | cut -f2) bs=$MIB count=96 oflag=direct status=none &&
	 zvpoolctl volume delete dl/gone"
W=$(sum w)
ktap_test_result "1,200 fsync'ed writes after them" quiet fsyncs 1200
v1=$(st volume_deltas) c1=$(st checkpoints) d1=$(st delta_checkpoints)
ktap_print_msg "checkpoints $c0 -> $c1, deltas $d0 -> $d1, deltas with volume operations $v0 -> $v1; full image $(st checkpoint_blocks) blocks, last delta $(st last_delta_blocks) blocks"
ktap_test_result "a delta checkpoint carried the volume operations" [ $((v1 - v0)) -ge 1 ]
# INCOMPAT_DELTA_GROW: the grow is the volume's new size in the delta's
# volume table plus its changes, not its whole table.
ktap_test_result "a delta carried v grown, not its whole table (delta_grows $g0 -> $(st delta_grows))" \
	[ "$(st delta_grows)" -gt "${g0:-0}" ]
S2=$(sum)
ktap_test_result "stop and reassemble again" quiet sh -c "zvpoolctl pool stop dl && zvpoolctl pool assemble dl $D"
ktap_print_msg "$(assembled)"
ktap_expect_eq "every block reads back after the second reassembly" "$S2" "$(sum)"
ktap_expect_eq "v is 160 MiB after it" "$((160 * MIB))" "$(blockdev --getsize64 "$(dev)")"
gone=absent
zvpoolctl volume show dl/gone >/dev/null 2>&1 && gone=present
ktap_expect_eq "the clone, the new volume and no deleted one after it" \
	"$C0 $W absent" "$(sum c1) $(sum w) $gone"
zvpoolctl pool stop dl >/dev/null 2>&1
rmmod zvpool
echo 0 >$NB/power
rmdir $NB
rmmod null_blk
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
