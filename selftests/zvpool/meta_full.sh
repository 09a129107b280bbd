#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Metadata space running short is refused cleanly (the metadata-at-scale
# issue): a checkpoint must fit in one checkpoint set (one metadata zone per
# member), so once the newest checkpoint uses more than 3/4 of its set,
# zvpool refuses user writes with ENOSPC and one "metadata nearly full" log
# line, before a checkpoint could fail to fit (which used to fail the pool
# for good: the first commit after assembly is a checkpoint). Reads, deletes
# and stop go on; deleting a volume frees the space and writes are taken
# again; the pool reassembles with its data.
#
# A zoned null_blk with 1 MiB zones and checkpoint sets of one zone a member
# (--checkpoint-zones 1) gives checkpoint sets of 256 blocks (about 40,000
# extents); a volume written with a 4 KiB hole after every 4 KiB block has
# one extent per block, so its tables outgrow the set after about 130 MiB
# of data, far from the pool's 500 MiB.
#
# Then the same device with sets of three zones (--checkpoint-zones 3): the
# same writes, and more, are taken; checkpoints span several zones of their
# set; the pool reassembles from such a checkpoint with the data intact.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvmf
P=/sys/kernel/config/zvpool/mf
MIB=1048576
ktap_print_header
for t in zvpoolctl fio md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "metadata full" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "metadata full" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 20
dmesg_mark
DMESG_START=$DMESG_MARK

nullb_zoned $NB 512 1
D=/dev/${NB##*/}
# ckpt_at_assembly=1: the first commit after each assembly is a full
# checkpoint (the journal would otherwise go on where it ended after a
# clean stop), which the case of three-zone sets below needs.
insmod "$KO" ckpt_at_assembly=1
st() { sed -n "s/^$1 //p" $P/status; }
dev_of() { zvpoolctl volume show -H -o device "mf/$1" | cut -f2; }

ktap_test_result "pool on a zoned null_blk with 1 MiB zones, volumes big and small" quiet sh -c \
	"zvpoolctl pool create -f --checkpoint-zones 1 mf $D && zvpoolctl volume create mf/big --size 1200M &&
	 zvpoolctl volume create mf/small --size 8M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device mf/small | cut -f2) bs=$MIB count=8 oflag=direct conv=fsync status=none"
SMALL=$(dd if="$(dev_of small)" bs=$MIB count=8 iflag=direct status=none | md5sum)
ktap_print_msg "checkpoint capacity $(st checkpoint_capacity) blocks"

# 4 KiB blocks with 4 KiB holes, fsync'ed every 64 writes, until refused.
BIG=$(dev_of big)
fio --name=holes --filename="$BIG" --ioengine=psync --direct=1 --rw=write:4k --bs=4k \
	--size=1200M --fsync=64 --output=/tmp/fio.out >/dev/null 2>&1
rc=$?
ktap_print_msg "fio exit $rc; $(grep -o 'err=[^:]*' /tmp/fio.out | head -1); checkpoint $(st checkpoint_blocks) of $(st checkpoint_capacity) blocks, $(st checkpoints) checkpoints, used $(($(st used_bytes) / MIB)) MiB"
ktap_test_result "writes are refused before the tables outgrow a checkpoint" \
	sh -c "[ $rc != 0 ] && [ \"\$(sed -n 's/^metadata_full //p' $P/status)\" = 1 ]"
ktap_test_result "the refusal is logged once as metadata nearly full" \
	sh -c "[ \$(dmesg | grep -c 'zvpool: mf: metadata nearly full') = 1 ]"
ktap_test_result "the pool did not fail (no checkpoint overflowed)" \
	sh -c "[ \"\$(sed -n 's/^checkpoint_in_flight //p' $P/status)\" = 0 ] && ! dmesg | grep -q 'zvpool: mf: checkpoint failed'"
ktap_test_result "a write to another volume fails with ENOSPC" \
	sh -c "! dd if=/dev/zero of=$(dev_of small) bs=4k count=1 oflag=direct status=none 2>/tmp/dd.err && grep -qi 'space' /tmp/dd.err"
ktap_test_result "reads go on" sh -c \
	"[ \"\$(dd if=$(dev_of small) bs=$MIB count=8 iflag=direct status=none | md5sum)\" = \"$SMALL\" ]"
ktap_test_result "deleting the big volume" quiet zvpoolctl volume delete mf/big
ktap_test_result "frees the metadata space" [ "$(st metadata_full)" = 0 ]
ktap_print_msg "checkpoint $(st checkpoint_blocks) of $(st checkpoint_capacity) blocks after the delete"
ktap_test_result "and writes are taken again" \
	dd if=/dev/urandom of="$(dev_of small)" bs=64k count=4 oflag=direct conv=fsync status=none
SMALL=$(dd if="$(dev_of small)" bs=$MIB count=8 iflag=direct status=none | md5sum)
ktap_test_result "stop and reassemble with the data intact" sh -c \
	"zvpoolctl pool stop mf >/dev/null && zvpoolctl pool assemble mf $D >/dev/null &&
	 [ \"\$(dd if=\$(zvpoolctl volume show -H -o device mf/small | cut -f2) bs=$MIB count=8 iflag=direct status=none | md5sum)\" = \"$SMALL\" ]"
ktap_test_result "not full after reassembly" [ "$(st metadata_full)" = 0 ]

# Sets of three zones a member: 768 blocks.
ktap_test_result "a pool with checkpoint sets of three zones" sh -c \
	"zvpoolctl pool stop mf >/dev/null && zvpoolctl pool create -f --checkpoint-zones 3 mf $D >/dev/null &&
	 zvpoolctl volume create mf/big --size 1200M >/dev/null &&
	 [ \"\$(sed -n 's/^checkpoint_zones //p' $P/status)\" = 3 ] && [ \"\$(cat $P/checkpoint_zones)\" = 3 ] &&
	 [ \"\$(sed -n 's/^checkpoint_capacity //p' $P/status)\" = 768 ]"
BIG=$(dev_of big)
fio --name=holes --filename="$BIG" --ioengine=psync --direct=1 --rw=write:4k --bs=4k \
	--size=480M --fsync=64 --output=/tmp/fio.out >/dev/null 2>&1
rc=$?
ktap_print_msg "fio exit $rc; checkpoint $(st checkpoint_blocks) of $(st checkpoint_capacity) blocks, $(st checkpoints) checkpoints, used $(($(st used_bytes) / MIB)) MiB"
ktap_test_result "the writes that were refused with one zone are taken" \
	sh -c "[ $rc = 0 ] && [ \"\$(sed -n 's/^metadata_full //p' $P/status)\" = 0 ]"
ktap_test_result "checkpoint_zones is fixed once formatted" sh -c "! echo 2 > $P/checkpoint_zones 2>/dev/null"
BIGSUM=$(dd if="$BIG" bs=$MIB count=480 iflag=direct status=none | md5sum)
same_big() {
	[ "$(dd if="$(dev_of big)" bs=$MIB count=480 iflag=direct status=none | md5sum)" = "$BIGSUM" ]
}
# The first commit after an assembly writes a checkpoint of everything
# (ckpt_at_assembly=1).
ktap_test_result "stop, reassemble, one more write: a checkpoint of all the tables" sh -c \
	"zvpoolctl pool stop mf >/dev/null && zvpoolctl pool assemble mf $D >/dev/null &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device mf/big | cut -f2) bs=4k count=1 seek=$((1000 * 256)) oflag=direct conv=fsync,notrunc status=none"
ktap_print_msg "checkpoint $(st checkpoint_blocks) of $(st checkpoint_capacity) blocks"
ktap_test_result "it spans more than one zone of its set" [ "$(st checkpoint_blocks)" -gt 256 ]
reassembled() {
	zvpoolctl pool stop mf >/dev/null && zvpoolctl pool assemble mf $D >/dev/null &&
		[ "$(st checkpoint_zones)" = 3 ] && same_big
}
ktap_test_result "reassembled from it with the data intact" reassembled
ktap_test_result "no checkpoint failed" sh -c "! dmesg | grep -q 'zvpool: mf: checkpoint failed'"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop mf >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
