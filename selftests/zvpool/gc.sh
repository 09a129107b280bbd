#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Garbage collection under sustained overwrite, on a pool over a
# memory-backed zoned null_blk: a volume at ~80 % of the pool's capacity is
# overwritten with skewed (80/20) random 4 KiB writes for 3x its size, then
# a new one uniformly for 3x its size (fio verify after each pass); GC must
# keep the pool writable, data must verify, write amplification and write
# latency are reported, and space accounting is exact (used = mapped;
# deleting a volume returns every zone).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvgc
ST=/sys/kernel/config/zvpool/gcp/status
MIB=1048576
ktap_print_header
if ! command -v zvpoolctl >/dev/null || ! command -v fio >/dev/null || [ ! -f "$KO" ] ||
	[ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "gc" "needs zvpoolctl, fio, zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 24
dmesg_mark
DMESG_START=$DMESG_MARK

stat_of() { sed -n "s/^$1 //p" $ST; }
# 64 zones of 2 MiB (128 MiB); 4 hold metadata, a few are the GC reserve.
# The zone count is what WA depends on (the simulator's thresholds below are
# for 60 data zones of 1 MiB); 2 MiB zones halve the test's time against 4.
nullb_zoned $NB 128 2 max_sectors=1024
NBDEV=/dev/${NB##*/}
insmod "$KO"
ktap_test_result "pool on a zoned null_blk (64 x 2 MiB zones)" quiet zvpoolctl pool create -f gcp "$NBDEV"
cap=$(stat_of capacity_bytes)
zones0=$(stat_of zones_free)
# 80 % of the capacity, in MiB.
vol_mib=$((cap * 8 / 10 / MIB))
ktap_print_msg "capacity $((cap / MIB)) MiB, volume $vol_mib MiB, $zones0 free zones"
# fio: random 4 KiB writes, 4 jobs x QD16 each on its own quarter.
FIO="fio --ioengine=libaio --direct=1 --bs=4k --iodepth=16 --numjobs=4 --group_reporting
	--size=$((vol_mib / 4))M --offset_increment=$((vol_mib / 4))M
	--percentile_list=50:99:99.9 --output-format=terse --terse-version=3"
V=
mkvol() { # NAME: a volume at 80 % of the capacity, filled sequentially
	zvpoolctl volume create gcp/$1 --size ${vol_mib}M >/tmp/out 2>&1 || return 1
	V=$(zvpoolctl volume show -H -o device gcp/$1 | cut -f2)
	$FIO --name=fill --rw=write --filename=$V >/tmp/out 2>&1
}
# Deleted blocks are invalid at once; their zones are reset by the next
# commits. The open zone of each stream (user, GC) stays open until full.
reclaim() {
	i=0
	while [ $i -lt 30 ]; do
		[ "$(stat_of used_bytes)" = 0 ] && [ "$(stat_of zones_free)" -ge $((zones0 - 2)) ] && return 0
		zvpoolctl volume create gcp/t --size 4M >/dev/null && zvpoolctl volume delete gcp/t >/dev/null
		i=$((i + 1))
		sleep 1
	done
	echo "# used $(stat_of used_bytes), free zones $(stat_of zones_free) (had $zones0)"
	return 1
}

# Baseline: the same uniform overwrite on a nearly empty pool (a volume at
# 20 % of the capacity: GC never needs to run), for the latency figures.
base() {
	zvpoolctl volume create gcp/base --size $((vol_mib / 4))M >/tmp/out 2>&1 || return 1
	BV=$(zvpoolctl volume show -H -o device gcp/base | cut -f2)
	runs0=$(stat_of gc_runs)
	fio --ioengine=libaio --direct=1 --bs=4k --iodepth=16 --numjobs=4 --group_reporting \
		--size=$((vol_mib / 16))M --offset_increment=$((vol_mib / 16))M --percentile_list=50:99:99.9 \
		--output-format=terse --terse-version=3 --filename=$BV --name=base --rw=randwrite --loops=3 \
		>/tmp/base.out 2>&1 || return 1
	[ "$(stat_of gc_runs)" = "$runs0" ] || echo "# note: GC ran during the baseline"
	zvpoolctl volume delete gcp/base >/dev/null
}
ktap_test_result "baseline: uniform overwrite on an empty pool (no GC)" base
ktap_print_msg "baseline (no GC): $(fio_lat /tmp/base.out)"

dmesg_mark
ktap_test_result "volume at 80 % of the capacity, filled" mkvol z
# Skewed: 80 % of the writes go to 20 % of the blocks. One volume's worth of
# writes first (the pool leaves its freshly filled state), then the measured
# part: 2x the volume.
SKEW="--rw=randwrite --random_distribution=zoned:80/20:20/80 --norandommap"
ktap_test_result "skewed (80/20) random overwrite, warm-up (1x the volume)" \
	quiet $FIO --filename=$V --name=skew $SKEW --io_size=$((vol_mib / 4))M
u0=$(stat_of user_blocks_written) g0=$(stat_of gc_blocks_written)
ktap_test_result "skewed (80/20) random overwrite, measured (2x the volume)" \
	quiet $FIO --filename=$V --name=skew $SKEW --io_size=$((vol_mib / 2))M
cp /tmp/out /tmp/skew.out
wa_z=$(wa_since $ST "$u0" "$g0")
ktap_print_msg "skewed: write amplification $wa_z, $(fio_lat /tmp/skew.out)"
ktap_test_result "GC ran and relocated blocks" sh -c "[ $(stat_of gc_runs) -gt 0 ] && [ $(stat_of gc_blocks_written) -gt 0 ]"
ktap_test_result "delete it: all its space returns" sh -c "zvpoolctl volume delete gcp/z >/dev/null"
ktap_test_result "every zone but the open ones is free again" reclaim

ktap_test_result "a new volume at 80 %, filled" mkvol u
# Uniform, verified: truly random offsets (no random map: blocks are hit
# 0, 1 or more times, like the skewed pass), fio serializes writes to one
# block so that its verify knows which one must win, and checks the last
# copy of every block written.
UNI="--rw=randwrite --norandommap --serialize_overlap=1 --verify=crc32c --do_verify=1 --verify_fatal=1"
ktap_test_result "uniform random overwrite, warm-up (1x the volume), verified" \
	quiet $FIO --filename=$V --name=uniform $UNI --io_size=$((vol_mib / 4))M
u0=$(stat_of user_blocks_written) g0=$(stat_of gc_blocks_written)
ktap_test_result "uniform random overwrite, measured (2x the volume), verified" \
	quiet $FIO --filename=$V --name=uniform $UNI --io_size=$((vol_mib / 2))M
cp /tmp/out /tmp/uniform.out
wa_u=$(wa_since $ST "$u0" "$g0")
ktap_print_msg "uniform: write amplification $wa_u, $(fio_lat /tmp/uniform.out)"
ktap_test_result "no write failed with out of space" log_lacks 'out of space'
ktap_test_result "write amplification reported (> 1 under uniform overwrite)" \
	awk -v w="$wa_u" 'BEGIN { exit !(w > 1.0) }'
ktap_print_msg "write amplification: skewed 80/20 $wa_z, uniform $wa_u"
# Both passes write 2x the volume at random offsets: the skewed one leaves
# zones of cold blocks alone and finds emptier victims among the hot ones.
ktap_test_result "skewed write amplification lower than uniform" \
	awk -v z="$wa_z" -v u="$wa_u" 'BEGIN { exit !(z < u) }'
# Thresholds from the GC simulator (rust/zvcore/tests/gcsim.rs,
# gcsim_regression_small_pool: the real engine on 60 data zones at 80 %,
# WA uniform 4.38, 80/20 3.92; its regression bounds 4.80 and 4.30). The
# pool here has the same zone count; measured 3.69-3.75 and 3.40-3.42.
ktap_test_result "uniform write amplification within the simulator's bound (4.80)" \
	awk -v w="$wa_u" 'BEGIN { exit !(w <= 4.80) }'
ktap_test_result "skewed write amplification within the simulator's bound (4.30)" \
	awk -v w="$wa_z" 'BEGIN { exit !(w <= 4.30) }'
ktap_test_result "the GC reserve was never used up" [ "$(stat_of zones_free)" -ge 1 ]
ktap_test_result "one more verified uniform pass" \
	quiet $FIO --filename=$V --name=again --rw=randwrite --verify=crc32c --do_verify=1 --verify_fatal=1
ktap_test_result "sync" dd if=/dev/null of="$V" conv=fsync status=none
used=$(stat_of used_bytes)
mapped=$(sed -n 's/.* mapped_bytes=\([0-9]*\).*/\1/p' /sys/kernel/config/zvpool/gcp/volumes)
ktap_print_msg "used $used bytes, mapped $mapped bytes; $(stat_of gc_runs) GC runs, writes throttled $(stat_of throttled_ms) ms in total"
ktap_expect_eq "pool used == volume mapped (exact accounting)" "$mapped" "$used"
ktap_test_result "delete the volume" quiet zvpoolctl volume delete gcp/u
ktap_test_result "every zone but the open ones is free again" reclaim
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop gcp >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
