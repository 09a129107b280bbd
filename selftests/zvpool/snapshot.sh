#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Snapshots, clones, rollback, promote and online resize through configfs
# (Documentation/configfs-abi.md), on a pool over a memory-backed zoned
# null_blk: ext4 snapshot + clone + fsck, isolation both ways, read-only
# snapshot devices, rollback, promote with the space accounting of a clone,
# O(1) creation (no table node copied, times reported for 1 GiB vs 64 GiB),
# 1000 snapshots of one volume with deletes in the middle, online grow and
# shrink under fio verify, resize2fs, persistence across module reload, and
# fill-and-delete cycles returning every block.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvsn
P=/sys/kernel/config/zvpool/sn
ST=$P/status
MIB=1048576
MNT=/mnt/sn
ktap_print_header
for t in fio mkfs.ext4 e2fsck resize2fs sha256sum blockdev; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "snapshot" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "snapshot" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 69
dmesg_mark
DMESG_START=$DMESG_MARK

stat_of() { sed -n "s/^$1 //p" $ST; }
use_of() { sed -n "s/^$2 //p" "$P/$1/usage"; }
# mkvol NAME SIZE: create (if SIZE) and enable; sets D to its device.
mkvol() {
	mkdir "$P/$1" || return 1
	[ -z "$2" ] || echo "$2" >"$P/$1/size" || return 1
	echo 1 >"$P/$1/enable" || return 1
	D=/dev/$(cut -d' ' -f1 "$P/$1/dev")
}
# rmvol NAME: disable and unbind (the volume stays).
rmvol() { echo 0 >"$P/$1/enable" && rmdir "$P/$1"; }
dev_of() { echo "/dev/$(cut -d' ' -f1 "$P/$1/dev")"; }
sum_of() { dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -c1-64; }
files_sum() { (cd "$1" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -c1-64; }
# is_zero DEV OFFSET-MIB LEN-MIB: the range reads back as zeroes (O_DIRECT).
is_zero() {
	[ "$(dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | tr -d '\000' | wc -c)" = 0 ]
}
# centiseconds since boot
now_cs() { tr -d . </proc/uptime | cut -d' ' -f1; }

# 512 MiB in 64 zones of 8 MiB.
nullb_zoned $NB 512 8
NBDEV=/dev/${NB##*/}
insmod "$KO"
ktap_test_result "pool on a zoned null_blk" sh -c "mkdir $P && echo $NBDEV >$P/devices &&
	echo 1 >$P/format && echo 1 >$P/enable"
grep -qw snapshots /sys/kernel/config/zvpool/features
ktap_test_result "features lists snapshots" [ $? = 0 ]
used0=$(stat_of used_bytes)
free0=$(stat_of zones_free)

# --- ext4: snapshot, more writes, clone, isolation -------------------------
mkdir -p $MNT /mnt/c
mkvol v 268435456
V=$D
ktap_test_result "ext4 on volume v with files" quiet sh -c "mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 $V &&
	mount -o noatime $V $MNT && mkdir $MNT/a && for i in 1 2 3; do dd if=/dev/urandom of=$MNT/a/f\$i bs=64k count=16 status=none; done &&
	sync"
SUM_A=$(files_sum $MNT)
sync
SUM_V=$(sum_of $V)
nodes0=$(stat_of table_nodes)
ktap_test_result "snapshot v@s1 of the mounted volume" sh -c "echo v@s1 > $P/snapshot"
ktap_expect_eq "taking it copied no table node" "$nodes0" "$(stat_of table_nodes)"
ktap_expect_eq "v's table nodes are all shared with the snapshot (usage)" \
	"1 0" "$([ "$(use_of v table_bytes)" -gt 0 ] && echo 1) $(use_of v table_exclusive_bytes)"
ktap_expect_eq "status counts 1 snapshot" 1 "$(stat_of snapshots)"
ktap_expect_eq "pool shared_bytes: every block of v is shared with v@s1" "$(use_of v mapped_bytes)" "$(stat_of shared_bytes)"
grep -q "^[0-9]* v@s1 .*kind=snapshot origin=v " $P/volumes
ktap_test_result "volumes lists v@s1 as a snapshot of v" [ $? = 0 ]
ktap_test_result "more writes on v: a file added, one deleted" quiet sh -c "
	dd if=/dev/urandom of=$MNT/b bs=64k count=16 status=none && rm $MNT/a/f1 && sync"
SUM_V2=$(files_sum $MNT)
mkvol v@s1
S=$D
ktap_expect_eq "the snapshot's device is read-only" 1 "$(blockdev --getro $S)"
ktap_expect_eq "the snapshot reads exactly what v held when it was taken" "$SUM_V" "$(sum_of $S)"
ktap_test_result "writing to the snapshot's device fails" sh -c "! dd if=/dev/zero of=$S bs=4k count=1 oflag=direct status=none 2>/dev/null"
refused "resizing a snapshot is refused" 536870912 $P/v@s1/size "read-only" "snapshot cannot be resized"
ktap_test_result "clone v@s1 into c" sh -c "echo 'v@s1 c' > $P/clone"
mkvol c
C=$D
ktap_expect_eq "the clone has the snapshot's size" 268435456 "$(cat $P/c/size)"
ktap_expect_eq "clone usage: kind clone, origin v@s1" "clone v@s1" "$(use_of c kind) $(use_of c origin)"
mount -o noatime $C /mnt/c
ktap_expect_eq "the clone mounts and holds exactly the files at snapshot time" "$SUM_A" "$(files_sum /mnt/c)"
ktap_test_result "writes on the clone" quiet sh -c "echo clone-only > /mnt/c/c.txt && rm /mnt/c/a/f2 && sync"
ktap_expect_eq "the origin does not see the clone's writes" "$SUM_V2" "$(files_sum $MNT)"
ktap_test_result "unmount both, fsck clean on v and c" quiet sh -c "umount /mnt/c && umount $MNT &&
	e2fsck -fn $V && e2fsck -fn $C"
ktap_expect_eq "the snapshot did not change" "$SUM_V" "$(sum_of $S)"
ktap_test_result "the clone does not see the origin's writes" sh -c "mount -o ro $C /mnt/c &&
	[ ! -e /mnt/c/b ] && [ -e /mnt/c/a/f1 ] && [ -e /mnt/c/c.txt ] && umount /mnt/c"

# --- rollback --------------------------------------------------------------
refused "rollback of a bound volume is refused" v@s1 $P/rollback "busy" "remove its directory first"
rmvol v
ktap_test_result "roll v back to v@s1" sh -c "echo v@s1 > $P/rollback"
mkvol v
ktap_expect_eq "v reads exactly the snapshot" "$SUM_V" "$(sum_of $V)"
ktap_test_result "fsck clean on the rolled-back v" quiet e2fsck -fn $V
mount -o ro,noatime $V $MNT
ktap_expect_eq "v's files are those at snapshot time" "$SUM_A" "$(files_sum $MNT)"
umount $MNT
refused "rollback to a snapshot that does not exist is refused" ghost@s1 $P/rollback "no such" "cannot roll back to"

# --- promote: space of a clone before and after -------------------------------
ex0=$(use_of c exclusive_bytes) sh0=$(use_of c shared_bytes)
ktap_print_msg "clone c before promote: mapped $(use_of c mapped_bytes), exclusive $ex0, shared $sh0 bytes"
ktap_test_result "the clone shares blocks with its origin" [ "$sh0" -gt 0 ]
ktap_test_result "promote c (while enabled)" sh -c "echo c > $P/promote"
ktap_print_msg "clone c after promote: mapped $(use_of c mapped_bytes), exclusive $(use_of c exclusive_bytes), shared $(use_of c shared_bytes) bytes; pool shared $(stat_of shared_bytes)"
ktap_expect_eq "after promote: kind volume, no origin" "volume -" "$(use_of c kind) $(use_of c origin)"
rmvol v@s1
ktap_test_result "delete the snapshot v@s1" sh -c "echo v@s1 > $P/delete_volume"
ktap_test_result "c and v still read their data, fsck clean" sh -c "e2fsck -fn $C >/tmp/out 2>&1 &&
	e2fsck -fn $V >/tmp/out 2>&1 && mount -o ro $C /mnt/c && [ -e /mnt/c/c.txt ] && umount /mnt/c"
ktap_expect_eq "no snapshot left" 0 "$(stat_of snapshots)"
ktap_print_msg "clone c with its origin deleted: mapped $(use_of c mapped_bytes), exclusive $(use_of c exclusive_bytes), shared $(use_of c shared_bytes) bytes (shared with v, rolled back to the same snapshot)"

# --- O(1) creation: 1 GiB vs 64 GiB logical, both with data ---------------------
snap_time() { # VOL: mean microseconds to take a snapshot (of 20: VOL@t1..t20)
	_t0=$(now_cs)
	for _i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		echo "$1@t$_i" >$P/snapshot || return 1
	done
	echo $((($(now_cs) - _t0) * 10000 / 20))
}
del_times() {
	for _v in small large; do
		for _i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
			echo "$_v@t$_i" >$P/delete_volume || return 1
		done
		rmvol $_v && echo $_v >$P/delete_volume || return 1
	done
}
mkvol small 1073741824
SM=$D
mkvol large 68719476736
LG=$D
ktap_test_result "data across both volumes (64 x 256 KiB spread over each)" quiet sh -c '
	i=0; while [ $i -lt 64 ]; do
		dd if=/dev/urandom of='"$SM"' bs=256k count=1 seek=$((i * 64)) oflag=direct status=none &&
		dd if=/dev/urandom of='"$LG"' bs=256k count=1 seek=$((i * 4096)) oflag=direct status=none || exit 1
		i=$((i + 1)); done'
n1=$(stat_of table_nodes)
t_small=$(snap_time small)
t_large=$(snap_time large)
ktap_print_msg "snapshot creation (mean of 20, committed): 1 GiB volume $t_small us, 64 GiB volume $t_large us (table nodes in the pool: $n1)"
ktap_expect_eq "none of the 40 snapshots copied a table node" "$n1" "$(stat_of table_nodes)"
ktap_test_result "delete the snapshots and both volumes" del_times

# --- 1000 snapshots of one volume, deletes in the middle -----------------------
mkvol m 16777216
M=$D
many() {
	i=1
	while [ $i -le 1000 ]; do
		if [ $((i % 100)) = 1 ]; then # a new stamp every 100 snapshots
			printf 'stamp %08d' $i | dd of=$M bs=4k conv=sync oflag=direct status=none || return 1
		fi
		echo "m@s$i" >$P/snapshot || { echo "# snapshot $i failed"; return 1; }
		i=$((i + 1))
	done
}
ktap_test_result "1000 snapshots of volume m" many
ktap_expect_eq "status counts 1000 snapshots" 1000 "$(stat_of snapshots)"
grep -q "^# [0-9]* more volumes not listed" $P/volumes
ktap_test_result "volumes says how many lines did not fit its page" [ $? = 0 ]
delmany() { # every snapshot but s1, s500, s1000 (the middle of the chain goes)
	i=2
	while [ $i -lt 1000 ]; do
		[ $i = 500 ] || echo "m@s$i" >$P/delete_volume || { echo "# delete $i failed"; return 1; }
		i=$((i + 1))
	done
}
ktap_test_result "delete 997 snapshots from the middle of the chain" delmany
stamp_of() { mkvol "$1" && head -c 14 "$D"; rmvol "$1"; }
ktap_expect_eq "m@s1 reads stamp 1" "stamp 00000001" "$(stamp_of m@s1)"
ktap_expect_eq "m@s500 reads stamp 401" "stamp 00000401" "$(stamp_of m@s500)"
ktap_expect_eq "m@s1000 reads stamp 901" "stamp 00000901" "$(stamp_of m@s1000)"

# --- online resize ---------------------------------------------------------------
mkvol r 67108864
R=$D
ktap_test_result "fill r's last 16 MiB" quiet dd if=/dev/urandom of=$R bs=1M seek=48 count=16 oflag=direct status=none
fio --ioengine=libaio --direct=1 --bs=4k --iodepth=8 --filename=$R --name=keep --rw=randwrite \
	--size=32M --verify=crc32c --verify_backlog=256 --verify_fatal=1 --runtime=12 --time_based \
	>/tmp/fio.out 2>&1 &
FIO=$!
sleep 2
ktap_test_result "grow r to 128 MiB while fio runs" sh -c "echo 134217728 > $P/r/size"
ktap_expect_eq "the block device grew" 134217728 "$(blockdev --getsize64 $R)"
sleep 2
ktap_test_result "shrink r to 40 MiB while fio runs" sh -c "echo 41943040 > $P/r/size"
ktap_expect_eq "the block device shrank" 41943040 "$(blockdev --getsize64 $R)"
ktap_test_result "the tail's blocks are unmapped" [ "$(use_of r mapped_bytes)" -le 41943040 ]
wait $FIO
frc=$?
ktap_test_result "fio verify on the part that stays passed" sh -c "[ $frc = 0 ] || { sed 's/^/# /' /tmp/fio.out; false; }"
echo 67108864 >$P/r/size
ktap_test_result "grow back to 64 MiB: the old tail reads zeros" is_zero $R 48 16

mkvol fs 134217728
F=$D
ktap_test_result "ext4 on a 128 MiB volume, mounted" quiet sh -c "mkfs.ext4 -q -F $F && mount $F $MNT &&
	dd if=/dev/urandom of=$MNT/x bs=1M count=8 status=none && sync"
ktap_test_result "grow it to 256 MiB, resize2fs online" quiet sh -c "echo 268435456 > $P/fs/size && resize2fs $F"
kib=$(df -k $MNT | awk 'END { print $2 }')
ktap_test_result "the mounted filesystem grew ($kib KiB)" [ "$kib" -gt 200000 ]
SUM_FS=$(sha256sum $MNT/x | cut -c1-64)
ktap_test_result "unmount, fsck clean" quiet sh -c "umount $MNT && e2fsck -fn $F"

# --- persistence -------------------------------------------------------------------
echo c@p >$P/snapshot
SUM_CP=$(sum_of $C)
reload() {
	for d in v c m r fs; do rmvol $d || return 1; done
	echo 0 >$P/enable && rmdir $P && rmmod zvpool && insmod "$KO" && mkdir $P &&
		echo $NBDEV >$P/devices && echo 1 >$P/enable
}
ktap_test_result "stop the pool, reload the module, assemble" quiet reload
ktap_expect_eq "snapshots survive: c@p and m's three" \
	"c@p m@s1 m@s1000 m@s500" "$(grep -o ' [a-z]*@[a-z0-9]* ' $P/volumes | tr -d ' ' | sort | xargs)"
mkvol c@p
ktap_expect_eq "c@p reads what c held" "$SUM_CP" "$(sum_of $D)"
rmvol c@p
mkvol fs
ktap_expect_eq "fs has its new size after reassembly" 268435456 "$(cat $P/fs/size)"
mount $D $MNT
ktap_expect_eq "fs has its data after reassembly" "$SUM_FS" "$(sha256sum $MNT/x | cut -c1-64)"
umount $MNT
rmvol fs
ktap_expect_eq "m@s500 still reads stamp 401" "stamp 00000401" "$(stamp_of m@s500)"

# --- fill-and-delete cycles: every block comes back --------------------------------
mkvol fd 67108864
FD=$D
cycles() {
	i=0
	while [ $i -lt 4 ]; do
		dd if=/dev/urandom of=$FD bs=1M count=32 oflag=direct status=none &&
			echo "fd@k$i" >$P/snapshot || return 1
		i=$((i + 1))
	done
	i=0
	while [ $i -lt 4 ]; do
		echo "fd@k$i" >$P/delete_volume || return 1
		i=$((i + 1))
	done
}
ktap_test_result "4 cycles: 32 MiB written, snapshot; then every snapshot deleted" cycles
rmvol fd
for n in fd c@p m@s1 m@s500 m@s1000 c v m r fs; do echo $n >$P/delete_volume; done
# Deleted blocks are invalid at once; fully invalid zones are reset by the
# following commits (a volume create/delete is one).
back() {
	i=0
	while [ $i -lt 20 ]; do
		[ "$(stat_of used_bytes)" = "$used0" ] && [ "$(stat_of zones_free)" -ge $((free0 - 2)) ] && return 0
		mkdir $P/t && echo 4096 >$P/t/size && rmdir $P/t && echo t >$P/delete_volume
		i=$((i + 1))
		sleep 1
	done
	echo "# used $(stat_of used_bytes) (had $used0), free zones $(stat_of zones_free) (had $free0)"
	return 1
}
ktap_test_result "all volumes deleted: used space and free zones where they started" back
ktap_expect_eq "no volume left" 0 "$(stat_of volumes)"
ktap_test_result "stop the pool, unload" sh -c "echo 0 > $P/enable && rmdir $P && rmmod zvpool"
ktap_test_result "cleanup" sh -c "echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
