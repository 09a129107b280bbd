#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Tiering against the real driver (zoned null_blk members: tf fast, ts
# SMR-like: conventional zones first, rotational, so slow by default):
# - `zvpoolctl pool set tp tiering=on`: status says on; writes to a volume
#   land on the fast member only;
# - a cold volume larger than what the fast member keeps: GC moves the
#   oldest data to the slow member in the background until a fifth of the
#   fast member's zones is free again; both volumes read what was written;
# - `volume migrate --to slow` moves a volume to the slow member;
# - tiering off: new writes go to both members again;
# - kept across a stop: the class, tiering, the volume's placement (its
#   new writes go to the slow member with tiering on), an evacuation
#   (resumed by the assembly, cancelled after);
# - refusals (a bad class, a bad value, a class without a member) with one
#   log line each; no kernel warning.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
MIB=1048576
ktap_print_header
for t in zvpoolctl md5sum dd; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "tiering" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "tiering" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
ktap_set_plan 42
lsmod | grep -q '^zvpool ' && rmmod zvpool
dmesg_mark
START=$DMESG_MARK

dev_of() { zvpoolctl volume show -H -o device "$1" | cut -f2; }
st() { sed -n "s/^$1 //p" $CFG/tp/status; }
# field I KEY: KEY= of member I in `members`.
field() { awk -v i="$1" -v k="$2=" '$1 == i { for (n = 4; n <= NF; n++) if (index($n, k) == 1) { print substr($n, length(k) + 1) } }' $CFG/tp/members; }
# fast KEY: KEY= of the status line `tiering`.
fast() { st tiering | tr ' ' '\n' | sed -n "s/^$1=//p"; }
dsum() { dd if="$1" bs=$MIB count="$2" iflag=direct status=none | md5sum | cut -d' ' -f1; }

nullb_zoned $NB/tf 256 8 zone_max_open=12 zone_max_active=14 &&
	nullb_zoned $NB/ts 512 8 zone_max_open=12 zone_max_active=14 zone_nr_conv=4 rotational=1
ktap_test_result "two zoned null_blk devices" [ -b /dev/tf ] && [ -b /dev/ts ]
insmod "$KO"
ktap_test_result "pool tp on tf and ts, volumes h and c" \
	quiet sh -c "zvpoolctl pool create -f tp /dev/tf /dev/ts &&
	zvpoolctl volume create tp/h --size 32M && zvpoolctl volume create tp/c --size 400M"
VH=$(dev_of tp/h)
VC=$(dev_of tp/c)
ktap_expect_eq "tf fast, ts slow by default (SMR-like: conventional zones)" "fast slow" \
	"$(field 0 class) $(field 1 class)"
ktap_test_result "member_class: ts set fast, then slow again" \
	sh -c "echo '/dev/ts fast' >$CFG/tp/member_class && echo '/dev/ts slow' >$CFG/tp/member_class"
ktap_expect_eq "members show ts slow" slow "$(field 1 class)"
ktap_test_result "pool set tp tiering=on" quiet zvpoolctl pool set tp tiering=on
ktap_expect_eq "status: tiering on" on "$(st tiering | cut -d' ' -f1)"
FZ=$(fast fast_zones)
ktap_print_msg "fast member: $FZ data zones"

# --- fresh writes land on the fast member --------------------------------------
dd if=/dev/urandom of=/tmp/tp-h.img bs=$MIB count=32 status=none
ktap_test_result "volume h written whole" \
	quiet dd if=/tmp/tp-h.img of=$VH bs=$MIB oflag=direct conv=fsync status=none
ktap_print_msg "members: $(tr '\n' ';' <$CFG/tp/members)"
ktap_test_result "its 32 MiB are on the fast member" [ "$(field 0 used_bytes)" -ge $((32 * MIB)) ]
ktap_expect_eq "nothing on the slow member" 0 "$(field 1 used_bytes)"

# --- more than the fast member keeps: the oldest goes to the slow one -----------
dd if=/dev/urandom of=/tmp/tp-c.img bs=$MIB count=240 status=none
ktap_test_result "volume c written (240 MiB, more than the fast member keeps)" \
	quiet dd if=/tmp/tp-c.img of=$VC bs=$MIB oflag=direct conv=fsync status=none
KEEP=$((FZ / 5))
i=0
while [ "$(fast fast_free_zones)" -lt "$KEEP" ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
ktap_print_msg "after $((i / 10)) s: $(st tiering); members: $(tr '\n' ';' <$CFG/tp/members)"
ktap_test_result "a fifth of the fast member's zones free again ($(fast fast_free_zones) >= $KEEP)" \
	[ "$(fast fast_free_zones)" -ge "$KEEP" ]
ktap_test_result "the slow member holds data (at least 40 MiB)" [ "$(field 1 used_bytes)" -ge $((40 * MIB)) ]
SUMH=$(md5sum </tmp/tp-h.img | cut -d' ' -f1)
SUMC=$(md5sum </tmp/tp-c.img | cut -d' ' -f1)
ktap_expect_eq "volume h reads as written" "$SUMH" "$(dsum $VH 32)"
ktap_expect_eq "volume c reads as written" "$SUMC" "$(dsum $VC 240)"

# --- a volume moved to the slow class -----------------------------------------------
F0=$(field 0 used_bytes)
ktap_test_result "volume migrate -w --to slow tp/h" quiet zvpoolctl volume migrate -w --to slow tp/h
ktap_test_result "migrate names the slow class" grep -q "^h slow done " $CFG/tp/migrate
ktap_expect_eq "volume show: placement slow" slow "$(zvpoolctl volume show -H -o placement tp/h | cut -f2)"
ktap_expect_eq "volume h reads as written after the move" "$SUMH" "$(dsum $VH 32)"
zvpoolctl volume migrate --cancel tp/h >/dev/null
ktap_print_msg "fast member used: $F0 bytes before, $(field 0 used_bytes) after"

# --- off: writes spread again ----------------------------------------------------
ktap_test_result "pool set tp tiering=off" quiet zvpoolctl pool set tp tiering=off
S1=$(field 1 used_bytes)
dd if=/dev/urandom of=$VC bs=$MIB count=64 seek=240 oflag=direct conv=fsync status=none
ktap_test_result "new writes reach the slow member again" [ "$(field 1 used_bytes)" -gt "$S1" ]

# --- kept across a stop ------------------------------------------------------------
ktap_test_result "h placed on the slow class again, tiering on, tf set slow" \
	quiet sh -c "zvpoolctl volume migrate -w --to slow tp/h && zvpoolctl pool set tp tiering=on &&
	echo '/dev/tf slow' >$CFG/tp/member_class"
ktap_test_result "pool stop tp" quiet zvpoolctl pool stop tp
ktap_test_result "pool assemble tp /dev/tf /dev/ts" quiet zvpoolctl pool assemble tp /dev/tf /dev/ts
ktap_expect_eq "tf still set slow, ts slow" "slow slow" "$(field 0 class) $(field 1 class)"
ktap_expect_eq "tiering kept, not in effect with one class (status, attribute)" "inactive 1" \
	"$(st tiering | cut -d' ' -f1) $(cat $CFG/tp/tiering)"
ktap_test_result "member_class: tf fast again" sh -c "echo '/dev/tf fast' >$CFG/tp/member_class"
ktap_expect_eq "tiering on again" on "$(st tiering | cut -d' ' -f1)"
ktap_expect_eq "h still placed on the slow class" slow "$(zvpoolctl volume show -H -o placement tp/h | cut -f2)"
VH=$(dev_of tp/h)
F0=$(field 0 used_bytes)
S1=$(field 1 used_bytes)
dd if=/dev/urandom of=/tmp/tp-h.img bs=$MIB count=8 status=none
dd if=/tmp/tp-h.img of=$VH bs=$MIB count=8 oflag=direct conv=fsync,notrunc status=none
ktap_print_msg "fast used $F0 -> $(field 0 used_bytes), slow used $S1 -> $(field 1 used_bytes)"
ktap_test_result "h's new writes went to the slow member (tiering would put them on the fast one)" \
	[ "$(field 0 used_bytes)" -le "$F0" ] && [ "$(field 1 used_bytes)" -ge "$S1" ]
ktap_expect_eq "h reads its new data after the reassembly" \
	"$(md5sum </tmp/tp-h.img | cut -d' ' -f1)" "$(dsum $VH 8)"
# An evacuation under way when the pool stops goes on at the next assembly.
ktap_test_result "pool evacuate tp /dev/tf (no wait), stop at once" \
	quiet sh -c "zvpoolctl pool evacuate tp /dev/tf && zvpoolctl pool stop tp"
dmesg_mark
ktap_test_result "pool assemble tp again" quiet zvpoolctl pool assemble tp /dev/tf /dev/ts
ktap_expect_eq "status: member 0 evacuated after the assembly" 0 "$(st evacuating_member)"
ktap_expect_eq "the assembly logged the resumed evacuation" 1 \
	"$(dmesg_since_mark | grep -c 'tp: resuming the evacuation of member 0')"
ktap_test_result "pool evacuate --cancel tp" quiet zvpoolctl pool evacuate --cancel tp
ktap_test_result "pool stop and assemble: no evacuation" quiet sh -c \
	"zvpoolctl pool stop tp && zvpoolctl pool assemble tp /dev/tf /dev/ts && ! grep -q '^evacuating_member' $CFG/tp/status"
VC=$(dev_of tp/c)
ktap_expect_eq "volume c reads as written after three assemblies" "$SUMC" "$(dsum $VC 240)"

# --- refusals ---------------------------------------------------------------------
refused "a class that is neither fast nor slow is refused" "1 medium" $CFG/tp/member_class "invalid" "fast or slow"
refused "tiering other than 0 or 1 is refused" "2" $CFG/tp/tiering "invalid" "0 or 1"
echo '/dev/ts fast' >$CFG/tp/member_class
refused "a placement on a class without a member is refused" "h slow" $CFG/tp/migrate "invalid" "no member of that class"

DMESG_MARK=$START
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
zvpoolctl pool stop tp >/dev/null 2>&1
for d in tf ts; do
	echo 0 >$NB/$d/power
	rmdir $NB/$d
done
rm -f /tmp/tp-h.img /tmp/tp-c.img
ktap_finished
