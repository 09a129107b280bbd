#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Thin volumes of a pool on the emulated ZNS namespaces
# (/sys/kernel/config/zvpool/POOL/VOLUME/ as in the ABI): limits and queue
# features of /dev/zvpoolN, data integrity (dd, fio verify), discard and write
# zeroes, ext4 on top, refusals with their errno and log line, persistence
# across pool stop/assemble and module reload, and a clean kernel log.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
RD=$CFS/tp
V=$RD/vol0
SIZE=268435456 # 256 MiB
MIB=1048576
# util-linux's blkdiscard (busybox's, first in PATH, has no -z).
BLKDISCARD=/usr/sbin/blkdiscard
[ -x $BLKDISCARD ] || BLKDISCARD=blkdiscard

ktap_print_header
if [ ! -f "$KO" ] || [ ! -f "$VMENV" ]; then
	ktap_set_plan 1
	ktap_test_skip "volume_pool" "needs zvpool.ko and the test VM's devices"
	ktap_finished
fi
. "$VMENV"
. "$DIR/vm_devices.sh"
MEMBERS="$(zns_dev 0) $(zns_dev 1)"
if lsmod 2>/dev/null | grep -q '^zvpool '; then
	rmmod zvpool 2>/dev/null
fi
ktap_set_plan 62
LOG0=$(dmesg | wc -l)

# is_zero DEV OFFSET-MIB LEN-MIB: the range reads back as zeroes (O_DIRECT).
is_zero() {
	_nz=$(dd if="$1" bs=$MIB skip="$2" count="$3" iflag=direct 2>/dev/null | tr -d '\000' | wc -c)
	[ "$_nz" = 0 ]
}

# nonzero DEV OFFSET-MIB LEN-MIB: the range holds some non-zero bytes.
nonzero() {
	! is_zero "$@"
}

usage_key() {
	sed -n "s/^$1 //p" "$V/usage"
}

ktap_test_result "insmod succeeds" insmod "$KO"
# make_pool FORMAT: define pool tp on the ZNS namespaces and enable it.
make_pool() {
	mkdir "$RD" && for m in $MEMBERS; do echo "$m" >"$RD/devices" || return 1; done &&
		echo "$1" >"$RD/format" && echo 1 >"$RD/enable"
}
ktap_test_result "pool on the ZNS namespaces (formatted)" make_pool 2
mkdir "$CFS/idle"
dmesg_mark
if mkdir "$CFS/idle/v" 2>/dev/null; then
	ktap_test_fail "volume under an inactive pool: refused"
else
	ktap_test_result "volume under an inactive pool: refused" log_has 'pool is not active'
fi
rmdir "$CFS/idle"
ktap_test_result "mkdir tp/vol0" mkdir "$V"
ktap_expect_eq "attributes as in the ABI" "copies dev enable quota_bytes rbps reservation_bytes riops size usage wbps wiops" "$(ls "$V" | sort | tr '\n' ' ' | sed 's/ $//')"
ktap_expect_eq "new volume: size 0" "0" "$(cat "$V/size")"
ktap_expect_eq "new volume: disabled, dev empty" "0:" "$(cat "$V/enable"):$(cat "$V/dev")"

refused "enable without a size: EINVAL" 1 "$V/enable" "invalid argument" "size is not set"
refused "size 0: EINVAL" 0 "$V/size" "invalid argument" "is not a multiple of 4096"
refused "size not a multiple of 4096: EINVAL" 1000 "$V/size" "invalid argument" "is not a multiple of 4096"
refused "size above 2^50: EINVAL" 1125899906846720 "$V/size" "invalid argument" "is not a multiple of 4096"
refused "size not a number: EINVAL" 12ab "$V/size" "invalid argument" "not a decimal number"
refused "disable while disabled: EBUSY" 0 "$V/enable" "resource busy" "already disabled"

ktap_test_result "size 2^50 accepted (thin)" sh -c "echo 1125899906842624 >$V/size"
ktap_test_result "size 256 MiB accepted" sh -c "echo $SIZE >$V/size"
ktap_expect_eq "size reads back" "$SIZE" "$(cat "$V/size")"
ktap_test_result "enable" sh -c "echo 1 >$V/enable"
dev=$(cut -d' ' -f1 "$V/dev")
B=/dev/$dev
Q=/sys/block/$dev/queue
ktap_print_msg "dev: $(cat "$V/dev")"
ktap_test_result "dev names a zvpoolN block device with major:minor" \
	sh -c "grep -qE '^zvpool[0-9]+ [0-9]+:[0-9]+\$' $V/dev && test -b $B && test \"\$(cat /sys/block/$dev/dev)\" = \"\$(cut -d' ' -f2 $V/dev)\""
ktap_expect_eq "capacity is the volume size" "$SIZE" "$(($(cat /sys/block/"$dev"/size) * 512))"
ktap_expect_eq "logical/physical block size 4096" "4096 4096" "$(cat $Q/logical_block_size) $(cat $Q/physical_block_size)"
ktap_expect_eq "queue/write_cache: write back" "write back" "$(cat $Q/write_cache)"
ktap_expect_eq "queue/fua: 1" "1" "$(cat $Q/fua)"
ktap_test_result "discard_max_bytes and write_zeroes_max_bytes > 0" \
	sh -c "[ \$(cat $Q/discard_max_bytes) -gt 0 ] && [ \$(cat $Q/write_zeroes_max_bytes) -gt 0 ]"
ktap_print_msg "hardware queues: $(ls /sys/block/"$dev"/mq | wc -l), nr_requests $(cat $Q/nr_requests)"
fresh_zero() {
	is_zero "$B" 0 8 && is_zero "$B" 248 8
}
ktap_test_result "fresh volume reads zeroes (first and last 8 MiB)" fresh_zero
ktap_expect_eq "usage: nothing mapped yet" "0 $SIZE" "$(usage_key mapped_bytes) $(usage_key size_bytes)"

# Data integrity: 32 MiB of random data written concurrently at three
# offsets with 4 KiB, 64 KiB and 1 MiB O_DIRECT writes, read back O_DIRECT.
dd if=/dev/urandom of=/tmp/r32 bs=$MIB count=32 2>/dev/null
rsum=$(md5sum </tmp/r32)
dd if=/tmp/r32 of="$B" bs=4k seek=0 oflag=direct 2>/dev/null &
p1=$!
dd if=/tmp/r32 of="$B" bs=64k seek=1024 oflag=direct 2>/dev/null &
p2=$!
dd if=/tmp/r32 of="$B" bs=$MIB seek=128 oflag=direct 2>/dev/null
p3=$?
wait $p1 && wait $p2 && [ $p3 = 0 ]
ktap_test_result "concurrent O_DIRECT writes (4k, 64k, 1M) succeed" [ $? = 0 ]
readback() {
	[ "$(dd if="$B" bs=$MIB skip="$1" count=32 iflag=direct 2>/dev/null | md5sum)" = "$rsum" ]
}
readback_all() {
	readback 0 && readback 64 && readback 128
}
ktap_test_result "data reads back identical (O_DIRECT, 3 x 32 MiB)" readback_all

# fio verify (crc32c), 2 jobs through libaio, and psync. Debian's fio needs
# System V shared memory (shmget) even with --thread: skipped on a kernel
# without CONFIG_SYSVIPC.
if fio --thread --name=probe --filename=/tmp/fio.probe --size=4k --rw=write \
	--output=/dev/null >/dev/null 2>/tmp/fio.err; then
	if fio --thread --name=verify --filename="$B" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bsrange=4k-64k --size=16M --numjobs=2 --offset=160M --offset_increment=32M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting \
		--output=/tmp/fio.out >/dev/null 2>/tmp/fio.err; then
		ktap_test_pass "fio libaio randwrite + crc32c verify (2 jobs)"
	else
		cat /tmp/fio.err /tmp/fio.out 2>/dev/null | tail -n 20 | sed 's/^/# fio: /'
		ktap_test_fail "fio libaio randwrite + crc32c verify (2 jobs)"
	fi
	if fio --thread --name=seq --filename="$B" --direct=1 --ioengine=psync --rw=write --bs=1M \
		--offset=224M --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output=/tmp/fio.out >/dev/null 2>/tmp/fio.err; then
		ktap_test_pass "fio psync 1 MiB sequential write + crc32c verify"
	else
		cat /tmp/fio.err /tmp/fio.out 2>/dev/null | tail -n 20 | sed 's/^/# fio: /'
		ktap_test_fail "fio psync 1 MiB sequential write + crc32c verify"
	fi
	# O_DSYNC direct writes are FUA writes: each waits for its own commit
	# (status write_wait_fua COUNT TOTAL_MS MAX_MS).
	fua_count() { sed -n 's/^write_wait_fua \([0-9]*\) .*/\1/p' "$RD/status"; }
	f0=$(fua_count)
	fio --thread --name=fua --filename="$B" --direct=1 --ioengine=psync --sync=dsync --rw=write \
		--bs=4k --size=16k --offset=240M --output=/dev/null >/dev/null 2>&1
	ktap_expect_eq "4 O_DSYNC writes (FUA): 4 commits waited for in write_wait_fua" 4 $(($(fua_count) - ${f0:-0}))
else
	why="fio cannot run: $(head -n1 /tmp/fio.err) (kernel without CONFIG_SYSVIPC)"
	ktap_test_skip "fio libaio randwrite + crc32c verify (2 jobs)" "$why"
	ktap_test_skip "fio psync 1 MiB sequential write + crc32c verify" "$why"
	ktap_test_skip "4 O_DSYNC writes (FUA) counted in write_wait_fua" "$why"
fi
ktap_test_result "usage: mapped_bytes > 0 after writes" sh -c "[ \$(sed -n 's/^mapped_bytes //p' $V/usage) -gt 0 ]"

# Discard and write zeroes read back as zeroes and free blocks.
m0=$(usage_key mapped_blocks)
ktap_test_result "written range is non-zero before discard" nonzero "$B" 128 4
ktap_test_result "blkdiscard 4 MiB" $BLKDISCARD -o $((128 * MIB)) -l $((4 * MIB)) "$B"
ktap_test_result "discarded range reads zeroes" is_zero "$B" 128 4
m1=$(usage_key mapped_blocks)
ktap_expect_eq "discard freed 1024 blocks" "$((m0 - 1024))" "$m1"
ktap_test_result "blkdiscard -z (write zeroes) 4 MiB" $BLKDISCARD -z -o $((136 * MIB)) -l $((4 * MIB)) "$B"
ktap_test_result "zeroed range reads zeroes" is_zero "$B" 136 4
ktap_test_result "neighbouring data intact" nonzero "$B" 132 4

# A filesystem: flushes and FUA (journal) go through the driver.
ok=0
if mkfs.ext4 -q -F "$B" >/tmp/mkfs.out 2>&1 && mount -t ext4 "$B" /mnt; then
	dd if=/dev/urandom of=/mnt/a bs=64k count=128 2>/dev/null &&
		mkdir -p /mnt/d && for i in 1 2 3 4 5 6 7 8; do cp /mnt/a /mnt/d/$i; done &&
		sync && sum=$(md5sum </mnt/a) && umount /mnt && ok=1
fi
[ $ok = 1 ] || sed 's/^/# /' /tmp/mkfs.out
ktap_test_result "mkfs.ext4, mount, write files, sync, umount" [ $ok = 1 ]
ktap_test_result "e2fsck -fn clean" sh -c "e2fsck -fn $B >/tmp/fsck.out 2>&1 || { sed 's/^/# /' /tmp/fsck.out; false; }"

ktap_test_result "size while enabled: online resize (grow, then back)" sh -c "echo $((2 * SIZE)) > $V/size &&
	[ \$(blockdev --getsize64 $B) = $((2 * SIZE)) ] && echo $SIZE > $V/size && [ \$(blockdev --getsize64 $B) = $SIZE ]"
refused "enable twice: EBUSY" 1 "$V/enable" "resource busy" "already enabled"
exec 3<"$B"
refused "disable while open: EBUSY" 0 "$V/enable" "resource busy" "is open"
exec 3<&-
ktap_test_result "still enabled after refused disable" test -b "$B"
ktap_test_result "disable" sh -c "echo 0 >$V/enable"
ktap_expect_eq "disabled: device gone, dev empty" "gone:" "$(test -e "$B" || echo gone):$(cat "$V/dev")"

# Data survives disable/enable (the volume keeps its blocks).
ktap_test_result "enable again" sh -c "echo 1 >$V/enable"
dev=$(cut -d' ' -f1 "$V/dev")
B=/dev/$dev
ok=0
if e2fsck -fn "$B" >/tmp/fsck.out 2>&1 && mount -t ext4 -o ro "$B" /mnt; then
	[ "$(md5sum </mnt/d/8)" = "$sum" ] && ok=1
	umount /mnt
fi
ktap_test_result "after re-enable: fsck clean, file contents intact" [ $ok = 1 ]
ktap_test_result "disable again" sh -c "echo 0 >$V/enable"

# A second, fresh volume reads zeroes: never another volume's data.
mkdir "$RD/vol1" && echo $((64 * MIB)) >"$RD/vol1/size" && echo 1 >"$RD/vol1/enable"
d1=$(cut -d' ' -f1 "$RD/vol1/dev")
second_zero() {
	[ -n "$d1" ] && test -b "/dev/$d1" && is_zero "/dev/$d1" 0 64
}
ktap_test_result "second volume enabled and reads zeroes" second_zero
echo 0 >"$RD/vol1/enable"
ktap_expect_eq "pool lists both volumes" "vol0 vol1" "$(awk '{print $2}' "$RD/volumes" | sort | paste -sd' ')"
refused "stop with bound volumes: EBUSY" 0 "$RD/enable" "resource busy" "still bound"
refused "delete a bound volume: EBUSY" vol1 "$RD/delete_volume" "resource busy" "is bound"
ktap_test_result "unbind vol1 (rmdir) and delete it" sh -c "rmdir $RD/vol1 && echo vol1 > $RD/delete_volume"
ktap_expect_eq "pool lists vol0 only" "vol0" "$(awk '{print $2}' "$RD/volumes" | paste -sd' ')"

# Persistence: stop the pool, unload and reload the module, assemble, and
# find vol0 with its filesystem and data.
used=$(sed -n 's/^used_bytes //p' "$RD/status")
ktap_test_result "unbind vol0, stop the pool, remove it, rmmod" sh -c "rmdir $V && echo 0 > $RD/enable && rmdir $RD && rmmod zvpool"
reload() {
	insmod "$KO" && make_pool 0
}
ktap_test_result "insmod and assemble (format=0)" reload
ktap_expect_eq "assembled pool: same used bytes" "$used" "$(sed -n 's/^used_bytes //p' "$RD/status")"
ktap_test_result "mkdir vol0 binds the existing volume" sh -c "mkdir $V && [ \$(cat $V/size) = $SIZE ]"
ok=0
if echo 1 >"$V/enable"; then
	B=/dev/$(cut -d' ' -f1 "$V/dev")
	if e2fsck -fn "$B" >/tmp/fsck.out 2>&1 && mount -t ext4 -o ro "$B" /mnt; then
		[ "$(md5sum </mnt/d/8)" = "$sum" ] && ok=1
		umount /mnt
	else
		sed 's/^/# /' /tmp/fsck.out | tail -n 20
	fi
	echo 0 >"$V/enable"
fi
ktap_test_result "after reload: fsck clean, file contents intact" [ $ok = 1 ]
ktap_test_result "rmdir volume and pool, rmmod" sh -c "rmdir $V && echo 0 > $RD/enable && rmdir $RD && rmmod zvpool"

_bad=$(dmesg | tail -n +"$((LOG0 + 1))" | grep -E "$dmesg_bad_pattern")
if [ -n "$_bad" ]; then
	echo "$_bad" | sed 's/^/# dmesg: /'
	ktap_test_fail "no WARN/oops in the kernel log"
else
	ktap_test_pass "no WARN/oops in the kernel log"
fi
ktap_finished
