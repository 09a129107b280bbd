#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A member added to an active pool, online, against the real driver
# (zoned null_blk members):
# - pool mp on one member, two volumes; while fio writes and verifies
#   both, `zvpoolctl pool add` adds a second member: fio's verification
#   passes, the capacity grows by the new member's data zones, new data
#   lands on the new member (`members` used_bytes);
# - stopped and imported again by a scan for its devices (the pool cache
#   learned the new member): two members, both volumes read as before;
# - a third member added to the reassembled pool under writes;
# - the first member evacuated (`pool evacuate -w`) while dd writes: it
#   ends holding no live data, every volume reads as before, new writes
#   keep off it; a second evacuation refused (EBUSY); cancelled;
# - volume a migrated to the first member (`volume migrate -w`) while b is
#   written: done, the member holds its data, it reads as before;
# - the third member replaced by a fourth device (`pool replace -w`);
# - refusals: a device already a member (EEXIST), a path that is no block
#   device, evacuating a non-member, each with one log line; no kernel
#   warning throughout.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
C=/tmp/mp.cache
MIB=1048576
ktap_print_header
for t in zvpoolctl fio md5sum dd; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "member add" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "member add" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
ktap_set_plan 49
lsmod | grep -q '^zvpool ' && rmmod zvpool
rm -f $C
dmesg_mark
START=$DMESG_MARK

zv() { zvpoolctl --cache "$C" "$@"; }
dev_of() { zv volume show -H -o device "$1" | cut -f2; }
cap() { sed -n 's/^capacity_bytes //p' $CFG/mp/status; }
members() { sed -n 's/^members //p' $CFG/mp/status; }
# used I: used_bytes of member I.
used() { awk -v i="$1" '$1 == i { for (k = 4; k <= NF; k++) if ($k ~ /^used_bytes=/) { sub(/^used_bytes=/, "", $k); print $k } }' $CFG/mp/members; }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
dsum() { dd if="$1" bs=$MIB count="$2" iflag=direct status=none | md5sum | cut -d' ' -f1; }

nullb_zoned $NB/mpa 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/mpb 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/mpc 128 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/mpd 128 8 zone_max_open=8 zone_max_active=12
ktap_test_result "four zoned null_blk devices" [ -b /dev/mpa ] && [ -b /dev/mpb ] && [ -b /dev/mpc ] && [ -b /dev/mpd ]
insmod "$KO"
ktap_test_result "pool mp on one member, volumes a and b" \
	quiet sh -c "zvpoolctl --cache $C pool create -f mp /dev/mpa &&
	zvpoolctl volume create mp/a --size 80M && zvpoolctl volume create mp/b --size 80M"
VA=$(dev_of mp/a)
VB=$(dev_of mp/b)
CAP1=$(cap)
ktap_print_msg "capacity with one member: $CAP1 bytes"

# --- add under load --------------------------------------------------------
FIO="fio --ioengine=psync --direct=1 --bs=4k --size=64M --rw=randwrite --norandommap
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_backlog=512"
$FIO --name=a --filename=$VA --output=/tmp/mp-fa.out &
PA=$!
$FIO --name=b --filename=$VB --fsync=16 --output=/tmp/mp-fb.out &
PB=$!
sleep 2
ktap_print_msg "\$ zvpoolctl pool add mp /dev/mpb (fio writing both volumes)"
ktap_test_result "pool add mp /dev/mpb while fio writes" quiet zv pool add mp /dev/mpb
ktap_expect_eq "the pool has two members" 2 "$(members)"
wait $PA
RA=$?
wait $PB
RB=$?
[ $RA = 0 ] || sed 's/^/# /' /tmp/mp-fa.out | tail -20
[ $RB = 0 ] || sed 's/^/# /' /tmp/mp-fb.out | tail -20
ktap_test_result "fio verify on volume a during the add" [ $RA = 0 ]
ktap_test_result "fio verify on volume b (fsync every 16) during the add" [ $RB = 0 ]
CAP2=$(cap)
ktap_print_msg "capacity with two members: $CAP2 bytes"
ktap_test_result "the capacity grew by more than 200 MiB" [ $((CAP2 - CAP1)) -gt $((200 * MIB)) ]
ktap_test_result "one log line says the member was added" log_has "added /dev/mpb as member 1"
# More data: a full rewrite of b lands on both members.
dd if=/dev/urandom of=/tmp/mp-b.img bs=$MIB count=80 status=none
ktap_test_result "volume b rewritten whole" \
	quiet dd if=/tmp/mp-b.img of=$VB bs=$MIB oflag=direct conv=fsync status=none
ktap_print_msg "members: $(tr '\n' ';' <$CFG/mp/members)"
ktap_test_result "new data is placed on the new member (used_bytes > 0)" [ "$(used 1)" -gt 0 ]
SUMA=$(dsum $VA 80)
SUMB=$(md5sum </tmp/mp-b.img | cut -d' ' -f1)
ktap_expect_eq "volume b reads what was written" "$SUMB" "$(dsum $VB 80)"

# --- stop, import by a scan -----------------------------------------------------
ktap_test_result "pool stop mp" quiet zv pool stop mp
ktap_print_msg "\$ zvpoolctl --cache $C pool import -a --cached"
ktap_test_result "pool import -a --cached finds both members" quiet zv pool import -a --cached
ktap_expect_eq "two members after the import" 2 "$(members)"
VA=$(dev_of mp/a)
VB=$(dev_of mp/b)
ktap_expect_eq "volume a reads as before the stop" "$SUMA" "$(dsum $VA 80)"
ktap_expect_eq "volume b reads as before the stop" "$SUMB" "$(dsum $VB 80)"

# --- a third member, after the reassembly ----------------------------------------
dd if=/dev/urandom of=$VA bs=$MIB count=64 oflag=direct status=none &
PW=$!
ktap_test_result "pool add mp /dev/mpc under writes, after the import" quiet zv pool add mp /dev/mpc
wait $PW
ktap_test_result "the writes during it completed" [ $? = 0 ]
ktap_expect_eq "three members" 3 "$(members)"
ktap_expect_eq "volume b still reads as written" "$SUMB" "$(dsum $VB 80)"

# --- evacuate the first member under writes ------------------------------------------
# A snapshot of b and a clone of it share b's blocks across the move.
ktap_test_result "snapshot mp/b@s and its clone mp/bc" \
	quiet sh -c "zvpoolctl snapshot create mp/b@s && zvpoolctl volume clone mp/b@s bc"
VC=$(dev_of mp/bc)
SUMB=$(dsum $VB 80)
SHARED=$(sed -n 's/^shared_bytes //p' $CFG/mp/status)
ktap_print_msg "shared before: $SHARED bytes"
# Sequential write rate of a volume in this boot (for the evacuation rate).
S0=$(now_ms)
dd if=/dev/zero of=$VC bs=$MIB count=32 seek=48 oflag=direct conv=fsync status=none
S1=$(now_ms)
ktap_print_msg "sequential write, 32 MiB through a volume: $((32 * 1000 / (S1 - S0 + 1))) MiB/s ($((S1 - S0)) ms)"
SUMC=$(dsum $VC 80)
ktap_print_msg "members before: $(tr '\n' ';' <$CFG/mp/members)"
USED0=$(used 0)
dd if=/dev/urandom of=$VA bs=$MIB count=48 oflag=direct status=none &
PW=$!
T0=$(date +%s)
ktap_print_msg "\$ zvpoolctl pool evacuate -w mp /dev/mpa (writes going on)"
ktap_test_result "pool evacuate -w mp /dev/mpa while dd writes" quiet zv pool evacuate -w mp /dev/mpa
T1=$(date +%s)
wait $PW
ktap_test_result "the writes during the evacuation completed" [ $? = 0 ]
E=$(cat $CFG/mp/evacuate)
ktap_print_msg "evacuation: $E"
MS=$(echo "$E" | sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p')
ST=$(echo "$E" | sed -n 's/.*start_bytes=\([0-9]*\).*/\1/p')
[ "${MS:-0}" -gt 0 ] && ktap_print_msg "evacuation rate: $((ST / MS * 1000 / MIB)) MiB/s ($ST bytes in $MS ms, writes going on)"
ktap_expect_eq "member 0 holds no live data" 0 "$(used 0)"
ktap_test_result "evacuate shows it done" grep -q "^0 /dev/mpa done " $CFG/mp/evacuate
SUMA=$(dsum $VA 80)
ktap_expect_eq "volume b reads as before the evacuation" "$SUMB" "$(dsum $VB 80)"
ktap_expect_eq "its clone reads as before" "$SUMC" "$(dsum $VC 80)"
ktap_expect_eq "sharing kept: shared_bytes unchanged" "$SHARED" "$(sed -n 's/^shared_bytes //p' $CFG/mp/status)"
dd if=/dev/urandom of=$VB bs=$MIB count=16 oflag=direct conv=fsync status=none
ktap_expect_eq "new writes keep off the evacuated member" 0 "$(used 0)"
refused "a second evacuation while one is there is refused" 1 $CFG/mp/evacuate "busy" "another member is being evacuated"
ktap_test_result "pool evacuate --cancel mp" quiet zv pool evacuate --cancel mp
ktap_expect_eq "no evacuation after the cancel" none "$(cat $CFG/mp/evacuate)"
ktap_expect_eq "volume a reads the same after the cancel" "$SUMA" "$(dsum $VA 80)"

# --- migrate volume a to the first member, under writes to b -------------------------
MAPPED_A=$(awk '$2 == "a" { for (k = 3; k <= NF; k++) if ($k ~ /^mapped_bytes=/) { sub(/^mapped_bytes=/, "", $k); print $k } }' $CFG/mp/volumes)
dd if=/dev/urandom of=$VB bs=$MIB count=32 oflag=direct status=none &
PW=$!
ktap_print_msg "\$ zvpoolctl volume migrate -w --to /dev/mpa mp/a (volume a: $MAPPED_A bytes mapped)"
ktap_test_result "volume migrate -w --to /dev/mpa mp/a while b is written" quiet zv volume migrate -w --to /dev/mpa mp/a
wait $PW
ktap_test_result "the writes during the migration completed" [ $? = 0 ]
ktap_print_msg "migration: $(cat $CFG/mp/migrate); members: $(tr '\n' ';' <$CFG/mp/members)"
ktap_test_result "migrate shows it done" grep -q "^a 0 done moved_bytes=" $CFG/mp/migrate
ktap_test_result "member 0 holds at least volume a's data" [ "$(used 0)" -ge "$MAPPED_A" ]
ktap_expect_eq "volume a reads as before the migration" "$SUMA" "$(dsum $VA 80)"
ktap_test_result "volume migrate --cancel" quiet zv volume migrate --cancel mp/a
SUMB2=$(dsum $VB 80)
refused "migrating an unknown volume is refused" "nosuch 0" $CFG/mp/migrate "no such file" "no volume nosuch"

# --- replace the third member by a fourth device -------------------------------------
ktap_print_msg "\$ zvpoolctl pool replace -w mp /dev/mpc /dev/mpd"
ktap_test_result "pool replace -w mp /dev/mpc /dev/mpd" quiet zv pool replace -w mp /dev/mpc /dev/mpd
ktap_expect_eq "four members" 4 "$(members)"
ktap_expect_eq "the replaced member holds no live data" 0 "$(used 2)"
ktap_expect_eq "volume b reads as written" "$SUMB2" "$(dsum $VB 80)"
ktap_test_result "evacuate --cancel after the replace" quiet zv pool evacuate --cancel mp

# --- refusals -------------------------------------------------------------------------
refused "a device already a member is refused" /dev/mpb $CFG/mp/devices "exists" "already a member"
refused "a path that is no block device is refused" /tmp/mp-b.img $CFG/mp/devices "block device required" "not a block device"
refused "evacuating a device that is no member is refused" /dev/null $CFG/mp/evacuate "no such file" "is not a member"

DMESG_MARK=$START
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
zv pool stop mp >/dev/null 2>&1
for d in mpa mpb mpc mpd; do
	echo 0 >$NB/$d/power
	rmdir $NB/$d
done
rm -f /tmp/mp-b.img /tmp/mp-fa.out /tmp/mp-fb.out
ktap_finished
