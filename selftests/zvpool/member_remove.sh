#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A member removed from an active pool, online, against the real driver
# (zoned null_blk members):
# - pool rp of three members (journal and checkpoint copies), volumes a
#   and b; while fio writes and verifies a, `zvpoolctl pool replace -w`
#   replaces member 0 (the journal's member) by a fourth device: added,
#   evacuated, removed; fio's verification passes, the member shows
#   `state=removed`, the journal moved to the members left, the capacity
#   dropped by the member's, health stays ok, nothing more is written to
#   the device (its zones were reset);
# - stopped and imported again by a scan: the removed device is not looked
#   for, both volumes read as before;
# - member 1 evacuated and removed (`pool remove`) after the reassembly,
#   under writes; refusals: live data, the last two members, a non-member,
#   each with one log line;
# - stopped and assembled from the two devices left;
# - a member gone for good (its null_blk powered off: `state=missing`)
#   after a fifth device was added: `pool remove` refuses it without -f,
#   takes it out with -f (its blocks are lost); health back to ok; the
#   pool assembles from the two devices left and does not look for it; no
#   kernel warning.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
C=/tmp/rp.cache
MIB=1048576
ktap_print_header
for t in zvpoolctl fio md5sum dd; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "member remove" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "member remove" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
ktap_set_plan 44
lsmod | grep -q '^zvpool ' && rmmod zvpool
rm -f $C
dmesg_mark
START=$DMESG_MARK

zv() { zvpoolctl --cache "$C" "$@"; }
dev_of() { zv volume show -H -o device "$1" | cut -f2; }
st() { sed -n "s/^$1 //p" $CFG/rp/status; }
# field I KEY: KEY= of member I in `members`.
field() { awk -v i="$1" -v k="$2=" '$1 == i { for (n = 4; n <= NF; n++) if (index($n, k) == 1) { print substr($n, length(k) + 1) } }' $CFG/rp/members; }
dsum() { dd if="$1" bs=$MIB count="$2" iflag=direct status=none | md5sum | cut -d' ' -f1; }
# written DEV: zones of DEV not empty.
written() { blkzone report /dev/$1 >/tmp/rp-zones 2>&1 && [ -s /tmp/rp-zones ] && grep -vc 'zcond: *1(em)' /tmp/rp-zones; }

nullb_zoned $NB/rpa 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/rpb 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/rpc 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/rpd 256 8 zone_max_open=8 zone_max_active=12 &&
	nullb_zoned $NB/rpe 256 8 zone_max_open=8 zone_max_active=12
ktap_test_result "five zoned null_blk devices" [ -b /dev/rpa ] && [ -b /dev/rpb ] && [ -b /dev/rpc ] && [ -b /dev/rpd ] && [ -b /dev/rpe ]
insmod "$KO"
ktap_test_result "pool rp on three members, volumes a and b" \
	quiet sh -c "zvpoolctl --cache $C pool create -f rp /dev/rpa /dev/rpb /dev/rpc &&
	zvpoolctl volume create rp/a --size 80M && zvpoolctl volume create rp/b --size 80M"
ktap_expect_eq "the journal on members 0 and 1" "0 1" "$(st journal_members)"
VA=$(dev_of rp/a)
VB=$(dev_of rp/b)
dd if=/dev/urandom of=/tmp/rp-b.img bs=$MIB count=80 status=none
ktap_test_result "volume b written whole" \
	quiet dd if=/tmp/rp-b.img of=$VB bs=$MIB oflag=direct conv=fsync status=none
SUMB=$(md5sum </tmp/rp-b.img | cut -d' ' -f1)
CAP1=$(st capacity_bytes)

# --- replace member 0 under fio verify ---------------------------------------
FIO="fio --ioengine=psync --direct=1 --bs=4k --size=64M --rw=randwrite --norandommap
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_backlog=512"
$FIO --name=a --filename=$VA --fsync=16 --output=/tmp/rp-fa.out &
PA=$!
sleep 1
ktap_print_msg "\$ zvpoolctl pool replace -w rp /dev/rpa /dev/rpd (fio writing volume a)"
ktap_test_result "pool replace -w rp /dev/rpa /dev/rpd while fio writes" quiet zv pool replace -w rp /dev/rpa /dev/rpd
wait $PA
RA=$?
[ $RA = 0 ] || sed 's/^/# /' /tmp/rp-fa.out | tail -20
ktap_test_result "fio verify on volume a during the replace" [ $RA = 0 ]
ktap_print_msg "members: $(tr '\n' ';' <$CFG/rp/members)"
ktap_expect_eq "member 0 shows state=removed" removed "$(field 0 state)"
ktap_expect_eq "remove lists member 0" 0 "$(cat $CFG/rp/remove)"
ktap_expect_eq "status: three members, one removed" "3 1" "$(st members) $(st removed_members)"
JM=$(st journal_members)
ktap_test_result "the journal is on two members left ($JM)" \
	sh -c "case '$JM' in *0*) exit 1 ;; *' '*) exit 0 ;; *) exit 1 ;; esac"
ktap_expect_eq "health stays ok" ok "$(st health)"
CAP2=$(st capacity_bytes)
ktap_print_msg "capacity: $CAP1 bytes, after the replace $CAP2"
ktap_test_result "the capacity is the three members left's (as before: same sizes)" [ "$CAP2" = "$CAP1" ]
ktap_test_result "one log line says the member was removed" log_has "removed member 0 (/dev/rpa)"
ktap_expect_eq "the removed device's zones are reset" 0 "$(written rpa)"
ktap_expect_eq "volume b reads as written" "$SUMB" "$(dsum $VB 80)"
SUMA=$(dsum $VA 80)
# Nothing more goes to it: writes and a checkpoint leave it empty.
dd if=/dev/urandom of=$VA bs=$MIB count=16 oflag=direct conv=fsync status=none
SUMA=$(dsum $VA 80)
ktap_expect_eq "nothing written to the removed device afterwards" 0 "$(written rpa)"
# Closed by the removal: it can be used elsewhere at once (a pool opens
# its members exclusively); then wiped again.
ktap_test_result "the removed device is free: another pool is made on it and stopped" \
	quiet sh -c "zvpoolctl pool create -f rptmp /dev/rpa && zvpoolctl pool stop rptmp && blkzone reset /dev/rpa"

# --- stop, import by a scan ---------------------------------------------------
ktap_test_result "pool stop rp" quiet zv pool stop rp
ktap_print_msg "\$ zvpoolctl --cache $C pool import -a --cached"
ktap_test_result "pool import -a --cached assembles without the removed device" quiet zv pool import -a --cached
ktap_expect_eq "three members, one removed, after the import" "3 1" "$(st members) $(st removed_members)"
ktap_expect_eq "member 0 reads path removed" removed "$(awk '$1 == 0 { print $2 }' $CFG/rp/members)"
VA=$(dev_of rp/a)
VB=$(dev_of rp/b)
ktap_expect_eq "volume a reads as before the stop" "$SUMA" "$(dsum $VA 80)"
ktap_expect_eq "volume b reads as before the stop" "$SUMB" "$(dsum $VB 80)"

# --- refusals -----------------------------------------------------------------
refused "removing a member with live data is refused" /dev/rpb $CFG/rp/remove "invalid" "holds live blocks"
refused "removing a non-member is refused" /dev/null $CFG/rp/remove "no such file" "is not a member"

# --- evacuate and remove member 1 under writes, after the reassembly ------------
dd if=/dev/urandom of=$VA bs=$MIB count=32 oflag=direct status=none &
PW=$!
ktap_test_result "pool evacuate -w rp /dev/rpb under writes" quiet zv pool evacuate -w rp /dev/rpb
ktap_test_result "pool remove rp /dev/rpb" quiet zv pool remove rp /dev/rpb
wait $PW
ktap_test_result "the writes during it completed" [ $? = 0 ]
ktap_expect_eq "two members, two removed" "2 2" "$(st members) $(st removed_members)"
SUMA=$(dsum $VA 80)
refused "removing one of the last two members is refused" /dev/rpc $CFG/rp/remove "invalid" "two members must stay"

# --- assembled from the two devices left --------------------------------------
ktap_test_result "pool stop rp" quiet zv pool stop rp
ktap_test_result "pool assemble rp /dev/rpc /dev/rpd" quiet zv pool assemble rp /dev/rpc /dev/rpd
VA=$(dev_of rp/a)
VB=$(dev_of rp/b)
ktap_expect_eq "volume a reads as before" "$SUMA" "$(dsum $VA 80)"
ktap_expect_eq "volume b reads as before" "$SUMB" "$(dsum $VB 80)"

# --- a member gone for good, forced out ------------------------------------------
ktap_test_result "pool add rp /dev/rpe" quiet zv pool add rp /dev/rpe
# Data on every member (new writes spread over them).
dd if=/dev/urandom of=$VA bs=$MIB count=48 oflag=direct conv=fsync status=none
echo 0 >$NB/rpd/power
ktap_test_result "the device of member 3 is gone: state=missing" \
	wait_for 10 sh -c "[ \"\$(awk '\$1 == 3' $CFG/rp/members | sed 's/.*state=\([a-z]*\).*/\1/')\" = missing ]"
refused "removing a missing member without force is refused" 3 $CFG/rp/remove "invalid" "would be lost (force)"
ktap_test_result "pool remove -f rp 3" quiet zv pool remove -f rp 3
ktap_expect_eq "member 3 shows state=removed" removed "$(field 3 state)"
ktap_expect_eq "health back to ok" ok "$(st health)"
ktap_test_result "pool stop rp" quiet zv pool stop rp
ktap_test_result "pool assemble rp /dev/rpc /dev/rpe (not looking for the removed ones)" \
	quiet zv pool assemble rp /dev/rpc /dev/rpe
ktap_expect_eq "two members, three removed" "2 3" "$(st members) $(st removed_members)"

DMESG_MARK=$START
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
zv pool stop rp >/dev/null 2>&1
for d in rpa rpb rpc rpd rpe; do
	echo 0 >$NB/$d/power 2>/dev/null
	rmdir $NB/$d
done
rm -f /tmp/rp-b.img /tmp/rp-fa.out /tmp/rp-zones
ktap_finished
