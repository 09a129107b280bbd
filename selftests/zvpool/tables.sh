#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Block tables past the old node-store cliff, and the table memory budget.
#
# A sparse volume on a pool over a large zoned null_blk (not memory-backed:
# the data is not kept, the zone state is) gets one 4 KiB write in every
# 2 MiB region: each write needs a leaf node of its own, so 150,000 writes
# need more than 131,072 nodes, where the former store (one kmalloc'ed slot
# vector) failed every new mapping with ENOSPC. Then `table_memory_limit`
# is lowered to just above what the tables use: writes that need new nodes
# fail with ENOSPC and one `zvpool:` line, writes into mapped regions still
# work, and raising the limit lets new mappings in again.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvtab
P=/sys/kernel/config/zvpool/tab
MIB=1048576
# One write per 2 MiB region: more leaves than the old limit of 131,072 nodes.
WRITES=150000
ktap_print_header
if ! command -v zvpoolctl >/dev/null || ! command -v fio >/dev/null || [ ! -f "$KO" ] ||
	[ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "tables" "needs zvpoolctl, fio, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 16
dmesg_mark
DMESG_START=$DMESG_MARK

# 48 zones of 1 GiB, data not kept: a checkpoint of ~600 MiB of tables fits
# one metadata zone.
nullb_zoned $NB $((48 * 1024)) 1024 memory_backed=0
NBDEV=/dev/${NB##*/}
insmod "$KO"
st() { sed -n "s/^$1 //p" $P/status; }
ktap_test_result "pool on a 48 GiB zoned null_blk with 1 GiB zones" quiet zvpoolctl pool create -f tab "$NBDEV"
ktap_test_result "1 TiB thin volume" quiet zvpoolctl volume create tab/sparse --size 1T
B=$(zvpoolctl volume show -H -o device tab/sparse | cut -f2)
nodes0=$(st table_nodes)
mem0=$(st table_memory_bytes)
ktap_print_msg "empty pool: $nodes0 nodes, $mem0 bytes of table memory, limit $(st table_memory_limit)"

# fio: 4 KiB at the start of every 2 MiB (rw=write:2044k skips the rest).
sparse() { # OFFSET_MIB COUNT
	fio --name=sparse --filename="$B" --ioengine=libaio --direct=1 --iodepth=32 \
		--rw=write:2044k --bs=4k --offset=$(($1 * MIB)) --number_ios="$2" \
		--size=$(($2 * 2 * MIB)) --output=/tmp/fio.out >/dev/null 2>&1
}
t0=$(date +%s)
ktap_test_result "$WRITES sparse 4 KiB writes, one per 2 MiB (no ENOSPC)" sparse 0 $WRITES
t1=$(date +%s)
ktap_test_result "flush" dd if=/dev/null of="$B" conv=fsync status=none
nodes=$(st table_nodes)
mem=$(st table_memory_bytes)
ktap_print_msg "$WRITES writes in $((t1 - t0)) s: $nodes nodes, $((mem / MIB)) MiB of table memory, $(st checkpoints) checkpoints"
ktap_test_result "more than 131072 table nodes" [ "$nodes" -gt 131072 ]
ktap_test_result "table memory counted: at least 4 KiB a node" [ "$mem" -ge $((nodes * 4096)) ]
ktap_test_result "table memory overhead below 2 % of the nodes" [ "$mem" -le $((nodes * 4096 / 100 * 102)) ]
# Per volume: the only volume's usage counts its table's nodes, all its own.
u() { sed -n "s/^$1 //p" $P/sparse/usage; }
vt=$(u table_bytes)
ktap_print_msg "volume usage: table_bytes $vt, table_exclusive_bytes $(u table_exclusive_bytes)"
ktap_test_result "usage: the volume's table memory, all exclusive" sh -c \
	"[ $vt -ge $(((nodes - nodes0) * 4096)) ] && [ $vt -le $mem ] && [ \"$(u table_exclusive_bytes)\" = $vt ]"
# Sample reads: the blocks are mapped (null_blk returns zeros without
# backing memory: this checks the tables answer, not the data).
ktap_test_result "mapped regions read back" dd if="$B" of=/dev/null bs=4k count=1 skip=$((2 * 140000 * 256)) iflag=direct status=none

# The budget: just above what is used now.
echo $((mem + 2 * MIB)) >$P/table_memory_limit
ktap_expect_eq "table_memory_limit applies to the active pool" $((mem + 2 * MIB)) "$(st table_memory_limit)"
dmesg_mark
if sparse $((2 * WRITES)) 4000; then
	ktap_test_fail "new mappings beyond the limit fail"
else
	ktap_test_pass "new mappings beyond the limit fail"
fi
ktap_print_msg "refused node allocations: $(st table_memory_refused); table memory $(($(st table_memory_bytes) / MIB)) MiB"
ktap_expect_eq "the refusal is logged once, naming the limit" 1 \
	"$(dmesg_since_mark | grep -c 'zvpool: tab: block tables use .*table_memory_limit')"
ktap_test_result "writes into mapped regions still succeed" dd if=/dev/zero of="$B" bs=4k count=1 seek=$((512 * 1000)) oflag=direct conv=fsync status=none
echo 0 >$P/table_memory_limit
ktap_test_result "with the default limit new mappings succeed again" sparse $((2 * WRITES)) 4000
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop tab >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
