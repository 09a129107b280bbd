#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Scale: a pool over members the size of real drives, written sparsely far
# past the old node-store limit, a power cut, reassembly. `make scale` runs
# it as two boots (zvpool.phase=1 ends in sysrq-b, zvpool.phase=2 checks);
# not part of `make check` (tables.sh is its small version there).
#
# Members: two zloop devices (write pointers persist as zone-file sizes, unlike
# QEMU's ZNS emulation) whose zone files live on ext4 on a sparse 6 TiB NVMe
# namespace: a 3 TiB "ZNS SSD" (1 GiB zones of 1000 MiB capacity, at most 14
# open) and a 2 TiB "SMR disk" (256 MiB zones, 8 conventional). Nothing costs
# host disk until written.
#
# Boot 1: a 4 TiB volume gets one 4 KiB block (fio, with a verify header) at
# the start of every 2 MiB region over its first SPARSE * 2 MiB (a leaf
# node per region: SPARSE nodes, the old limit was 131,072), then 1 GiB written
# densely at 3 TiB; flush; status figures; power cut.
# Boot 2: assembly (timed, with what it read), status figures, a sample of
# the sparse blocks and the whole dense region verified, a clean stop.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
MIB=1048576
GIB=$((1024 * MIB))
SPARSE=${ZVPOOL_SCALE_SPARSE:-400000}
SAMPLE=20000
DENSE_AT=$((3072 * GIB))
P=/sys/kernel/config/zvpool/scale

if [ -z "${ZVPOOL_PHASE:-}" ] || ! command -v zvpoolctl >/dev/null || ! command -v fio >/dev/null ||
	[ ! -f "$VMENV" ] || [ ! -f /lib/modules/zloop.ko ]; then
	ktap_print_header
	ktap_set_plan 1
	ktap_test_skip "scale" "runs across two boots of the scale VM (make scale) with fio and zloop.ko"
	ktap_finished
fi
. "$VMENV"
. "$DIR/vm_devices.sh"
CONV=$(dev_for "$(echo "$ZV_SCALE_CONV" | cut -d: -f2)")
st() { sed -n "s/^$1 //p" $P/status; }
figures() {
	echo "# table_nodes $(st table_nodes), table memory $(($(st table_memory_bytes) / MIB)) MiB" \
		"(limit $(($(st table_memory_limit) / MIB)) MiB), used $(($(st used_bytes) / MIB)) MiB," \
		"journal_blocks $(st journal_blocks), checkpoints $(st checkpoints)," \
		"checkpoint $(st checkpoint_blocks) of $(st checkpoint_capacity) blocks ($(st checkpoint_zones) zones a member a set)," \
		"delta checkpoints $(st delta_checkpoints) (last $(st last_delta_blocks) blocks, chain $(st delta_blocks))," \
		"checkpoint blocks written $(st checkpoint_blocks_written)"
}
zloop_up() {
	mkdir -p /zl && mount -t ext4 "$CONV" /zl && mkdir -p /zl/0 /zl/1 &&
		insmod /lib/modules/zloop.ko &&
		echo "add id=0,capacity_mb=$((3 * 1024 * 1024)),zone_size_mb=1024,zone_capacity_mb=1000,conv_zones=0,max_open_zones=14,base_dir=/zl" >/dev/zloop-control &&
		echo "add id=1,capacity_mb=$((2 * 1024 * 1024)),zone_size_mb=256,conv_zones=8,base_dir=/zl" >/dev/zloop-control
}
# fio over the volume: sparse blocks (one per 2 MiB) or the dense region.
job_sparse() { # COUNT extra fio args...
	_n=$1
	shift
	fio --name=sparse --filename="$V" --ioengine=libaio --direct=1 --iodepth=32 \
		--rw=write:2044k --bs=4k --number_ios="$_n" --size=$((_n * 2 * MIB)) \
		--verify=crc32c --verify_state_save=0 "$@" --output=/tmp/fio.out >/dev/null 2>&1 ||
		{ sed 's/^/# /' /tmp/fio.out; return 1; }
}
job_dense() {
	fio --name=dense --filename="$V" --ioengine=libaio --direct=1 --iodepth=8 \
		--rw=write --bs=1M --offset=$DENSE_AT --size=$GIB \
		--verify=crc32c --verify_state_save=0 "$@" --output=/tmp/fio.out >/dev/null 2>&1 ||
		{ sed 's/^/# /' /tmp/fio.out; return 1; }
}

case "$ZVPOOL_PHASE" in
1)
	# Not KTAP: this boot ends in a power cut; lines go straight to the
	# results port, which the host reads after QEMU exited.
	R=/dev/ttyS1
	[ -c $R ] || R=/dev/console
	fail() { echo "ZVPOOL-CRASH-SETUP-FAILED $*" >$R; cat /tmp/out >$R 2>/dev/null; exit 1; }
	t=$(date +%s)
	{ mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$CONV" && zloop_up; } >/tmp/out 2>&1 || fail "zloop"
	echo "# zloop members on ext4 ready in $(($(date +%s) - t)) s" >$R
	insmod "$KO" || fail "insmod"
	t=$(date +%s)
	zvpoolctl pool create -f scale /dev/zloop0 /dev/zloop1 >/tmp/out 2>&1 || fail "pool create"
	echo "# pool created in $(($(date +%s) - t)) s: $(($(st capacity_bytes) / GIB)) GiB, $(st zones_total) data zones" >$R
	zvpoolctl volume create scale/big --size 4T >/tmp/out 2>&1 || fail "volume create"
	V=$(zvpoolctl volume show -H -o device scale/big | cut -f2)
	t=$(date +%s)
	job_sparse "$SPARSE" --do_verify=0 >$R 2>&1 || fail "sparse writes"
	echo "# $SPARSE sparse 4 KiB writes in $(($(date +%s) - t)) s" >$R
	t=$(date +%s)
	job_dense --do_verify=0 >$R 2>&1 || fail "dense writes"
	echo "# 1 GiB dense writes in $(($(date +%s) - t)) s" >$R
	t=$(date +%s)
	dd if=/dev/null of="$V" conv=fsync status=none || fail "flush"
	echo "# flush in $(($(date +%s) - t)) s" >$R
	figures >$R
	echo "ZVPOOL-CRASH flushed" >$R
	echo b >/proc/sysrq-trigger
	sleep 10
	fail "still running after sysrq-b"
	;;
2)
	ktap_print_header
	ktap_set_plan 8
	dmesg_mark
		ktap_test_result "zloop members restored after the power cut" quiet zloop_up
	insmod "$KO"
	t=$(date +%s)
	ktap_test_result "pool assembles" quiet zvpoolctl pool assemble scale /dev/zloop1 /dev/zloop0
	ktap_print_msg "assembly took $(($(date +%s) - t)) s"
	dmesg_since_mark | grep 'zvpool: scale:' | sed 's/^/# /'
	figures
	ktap_test_result "more than 3x the old limit of 131,072 table nodes" [ "$(st table_nodes)" -gt $((3 * 131072)) ]
	V=$(zvpoolctl volume show -H -o device scale/big | cut -f2)
	t=$(date +%s)
	ktap_test_result "the first $SAMPLE sparse blocks verify" job_sparse "$SAMPLE" --verify_only
	ktap_test_result "the last $SAMPLE sparse blocks verify" job_sparse "$SAMPLE" --verify_only \
		--offset=$(((SPARSE - SAMPLE) * 2 * MIB))
	ktap_test_result "the dense GiB verifies" job_dense --verify_only
	ktap_print_msg "verification read in $(($(date +%s) - t)) s"
	ktap_test_result "pool stops cleanly (final commit)" quiet zvpoolctl pool stop scale
	dmesg_clean_since_mark "no WARN/oops"
	ktap_finished
	;;
esac
