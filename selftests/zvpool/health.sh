#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Member and pool health against the real driver (three zoned null_blk
# members): a member whose device is removed under the pool (null_blk
# `power=0`: del_gendisk, the block layer's mark_dead to the holder):
# - `members` shows it `state=missing`, `status` shows `health degraded`
#   (and `zvpoolctl pool list`), one log line says so;
# - each change is a uevent of /dev/zvpool-control with ZVPOOL_POOL,
#   ZVPOOL_EVENT=member|health, ZVPOOL_MEMBER_INDEX, ZVPOOL_MEMBER,
#   ZVPOOL_STATE / ZVPOOL_HEALTH (captured through the uevent helper, and
#   printed by `zvpoolctl pool events` from the uevent socket);
# - a volume whose data is on the surviving members reads as written; one
#   whose data was on the missing member fails its reads with EIO (never
#   zeros or stale data);
# - writes and fsync go on, to the other members only (a flush skips the
#   missing device; its used space does not grow);
# - then a metadata write fails (bad blocks over the journal member's
#   metadata zones): that member `state=failed`, `health failed`, their
#   uevents, one log line; reads still served; the pool stops;
# - `zvpoolctl pool health` on a pool over the VM's NVMe ZNS namespace:
#   exit 0, the device's model, firmware and state, its controller's SMART
#   / health log (temperature, spare, used, media errors).
# No kernel warning, lockdep report or hung task throughout.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb
CFG=/sys/kernel/config/zvpool
C=/tmp/hp.cache
MIB=1048576
ktap_print_header
for t in zvpoolctl md5sum dd; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "member health" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "member health" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
ktap_set_plan 34
lsmod | grep -q '^zvpool ' && rmmod zvpool
rm -f $C /tmp/hp.uev.*
dmesg_mark
START=$DMESG_MARK

zv() { zvpoolctl --cache "$C" "$@"; }
dev_of() { zv volume show -H -o device "$1" | cut -f2; }
health() { sed -n 's/^health //p' $CFG/hp/status; }
# mstate I / used I: state and used_bytes of member I.
mfield() { awk -v i="$1" -v k="$2" '$1 == i { for (f = 4; f <= NF; f++) if (index($f, k "=") == 1) { sub(/^[a-z_]*=/, "", $f); print $f } }' $CFG/hp/members; }
dsum() { dd if="$1" bs=$MIB count="$2" iflag=direct status=none | md5sum | cut -d' ' -f1; }
# events WHAT: the captured pool events of kind WHAT, one line each
# (their ZVPOOL_* variables, sorted).
events() { for f in /tmp/hp.uev.*; do [ -f "$f" ] && grep -q "^ZVPOOL_EVENT=$1\$" "$f" && xargs <"$f"; done; }

for d in hpa hpb hpc; do
	nullb_zoned $NB/$d 256 8 zone_max_open=8 zone_max_active=12 || break
done
ktap_test_result "three zoned null_blk devices" [ -b /dev/hpa ] && [ -b /dev/hpb ] && [ -b /dev/hpc ]
insmod "$KO"
ktap_test_result "pool hp on three members, volumes a, b, c" \
	quiet sh -c "zvpoolctl --cache $C pool create -f hp /dev/hpa /dev/hpb /dev/hpc &&
	zvpoolctl volume create hp/a --size 32M && zvpoolctl volume create hp/b --size 32M &&
	zvpoolctl volume create hp/c --size 32M"
VA=$(dev_of hp/a)
VB=$(dev_of hp/b)
VC=$(dev_of hp/c)
dd if=/dev/urandom of=/tmp/hp-a bs=$MIB count=16 status=none
dd if=/dev/urandom of=/tmp/hp-c bs=$MIB count=16 status=none
ktap_test_result "16 MiB written to a and to c, flushed" \
	sh -c "dd if=/tmp/hp-a of=$VA bs=$MIB oflag=direct conv=fsync status=none &&
	dd if=/tmp/hp-c of=$VC bs=$MIB oflag=direct conv=fsync status=none"
SUMA=$(md5sum </tmp/hp-a | cut -d' ' -f1)
# a on the first member, c on the third: the third one is removed below.
ktap_test_result "volume a migrated to /dev/hpa, c to /dev/hpc" \
	quiet sh -c "zvpoolctl --cache $C volume migrate -w --to /dev/hpa hp/a &&
	zvpoolctl --cache $C volume migrate --cancel hp/a &&
	zvpoolctl --cache $C volume migrate -w --to /dev/hpc hp/c &&
	zvpoolctl --cache $C volume migrate --cancel hp/c"
ktap_expect_eq "health ok with every member there" ok "$(health)"
ktap_expect_eq "every member state=ok" "ok ok ok" "$(mfield 0 state) $(mfield 1 state) $(mfield 2 state)"

# --- the third member's device goes away --------------------------------------------
uevents_on /tmp/hp.uev
USED0=$(mfield 0 used_bytes)
USED1=$(mfield 1 used_bytes)
USED2=$(mfield 2 used_bytes)
# zvpoolctl listening meanwhile (the kernel's uevent socket).
zv pool events -n 2 hp >/tmp/hp.events 2>&1 &
EVPID=$!
sleep 1
dmesg_mark
ktap_print_msg "\$ echo 0 >$NB/hpc/power (member 2's device removed; it holds $USED2 bytes)"
echo 0 >$NB/hpc/power
ktap_test_result "member 2 shows state=missing" wait_for 10 sh -c "[ \"\$(awk '\$1 == 2' $CFG/hp/members | sed 's/.*state=//')\" = missing ]"
ktap_print_msg "members: $(tr '\n' ';' <$CFG/hp/members)"
ktap_expect_eq "pool health degraded" degraded "$(health)"
ktap_expect_eq "zvpoolctl pool list: health degraded" degraded "$(zv pool list -H -o health hp | cut -f2)"
ktap_test_result "one log line names the missing member" \
	[ "$(dmesg_since_mark | grep -c 'zvpool: hp: member 2 (/dev/hpc) is missing')" = 1 ]
if [ -w $UH ]; then
	wait_for 5 sh -c "ls /tmp/hp.uev.* >/dev/null 2>&1 && cat /tmp/hp.uev.* | grep -q ZVPOOL_HEALTH=degraded"
	events member | sed 's/^/# uevent: /'
	events health | sed 's/^/# uevent: /'
	ktap_expect_eq "uevent: member 2 missing, on the control device" \
		"DEVPATH=/devices/virtual/misc/zvpool-control ZVPOOL_EVENT=member ZVPOOL_MEMBER=/dev/hpc ZVPOOL_MEMBER_INDEX=2 ZVPOOL_POOL=hp ZVPOOL_STATE=missing" \
		"$(events member)"
	ktap_expect_eq "uevent: pool health degraded" \
		"DEVPATH=/devices/virtual/misc/zvpool-control ZVPOOL_EVENT=health ZVPOOL_HEALTH=degraded ZVPOOL_POOL=hp" \
		"$(events health)"
else
	ktap_test_skip "uevent: member 2 missing" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
	ktap_test_skip "uevent: pool health degraded" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
fi

wait_for 10 sh -c "[ \$(wc -l </tmp/hp.events) -ge 2 ]"
kill $EVPID 2>/dev/null
wait $EVPID 2>/dev/null
sed 's/^/# pool events: /' /tmp/hp.events
ktap_expect_eq "zvpoolctl pool events printed both events" \
	"hp member member_index=2 member=/dev/hpc state=missing;hp health health=degraded;" \
	"$(tr '\n' ';' </tmp/hp.events)"

# --- what still works -----------------------------------------------------------------
ktap_expect_eq "volume a (on a surviving member) reads as written" "$SUMA" "$(dsum $VA 16)"
if dd if=$VC of=/tmp/hp-cread bs=$MIB count=16 iflag=direct status=none 2>/tmp/hp.err; then
	ktap_test_fail "reading volume c (its data on the missing member) fails"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/hp.err)"
	ktap_test_pass "reading volume c (its data on the missing member) fails"
fi
ktap_test_result "the failed read is an I/O error" grep -q "Input/output error" /tmp/hp.err
ktap_test_result "read errors counted on member 2" [ "$(mfield 2 read_errors)" -gt 0 ]
dd if=/dev/urandom of=/tmp/hp-b bs=$MIB count=8 status=none
ktap_test_result "8 MiB written to b with fsync" dd if=/tmp/hp-b of=$VB bs=$MIB oflag=direct conv=fsync status=none
ktap_expect_eq "b reads them back" "$(md5sum </tmp/hp-b | cut -d' ' -f1)" "$(dsum $VB 8)"
ktap_expect_eq "nothing new on the missing member" "$USED2" "$(mfield 2 used_bytes)"
ktap_test_result "the new data is on the others" [ $(($(mfield 0 used_bytes) + $(mfield 1 used_bytes))) -gt $((USED0 + USED1)) ]
ktap_expect_eq "still degraded, not failed" degraded "$(health)"

# --- a metadata write fails: the engine fails --------------------------------------
# Bad blocks over the journal member's four metadata zones (8 MiB each):
# the next commit's journal write fails.
dmesg_mark
ktap_print_msg "\$ echo +0-65535 >$NB/hpa/badblocks (member 0's metadata zones)"
echo "+0-65535" >$NB/hpa/badblocks
dd if=/dev/urandom of=/tmp/hp-b2 bs=$MIB count=1 status=none
if dd if=/tmp/hp-b2 of=$VB bs=$MIB seek=8 oflag=direct conv=fsync status=none 2>/tmp/hp.err; then
	ktap_test_fail "an fsync whose journal write fails fails"
else
	ktap_print_msg "dd: $(tail -n1 /tmp/hp.err)"
	ktap_test_pass "an fsync whose journal write fails fails"
fi
ktap_test_result "pool health failed" wait_for 5 sh -c "[ \"\$(sed -n 's/^health //p' $CFG/hp/status)\" = failed ]"
ktap_expect_eq "member 0 state=failed, member 2 still missing" "failed missing" "$(mfield 0 state) $(mfield 2 state)"
ktap_test_result "one log line says the pool failed" \
	[ "$(dmesg_since_mark | grep -c 'zvpool: hp: pool health: failed')" = 1 ]
if [ -w $UH ]; then
	wait_for 5 sh -c "cat /tmp/hp.uev.* | grep -q ZVPOOL_HEALTH=failed"
	events member | sed 's/^/# uevent: /'
	ktap_test_result "uevent: member 0 failed" sh -c "cat /tmp/hp.uev.* | tr '\n' ' ' | grep -q 'ZVPOOL_MEMBER_INDEX=0 ZVPOOL_POOL=hp ZVPOOL_STATE=failed'"
	ktap_test_result "uevent: pool health failed" sh -c "cat /tmp/hp.uev.* | grep -q '^ZVPOOL_HEALTH=failed$'"
	uevents_off
else
	ktap_test_skip "uevent: member 0 failed" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
	ktap_test_skip "uevent: pool health failed" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
fi
ktap_expect_eq "volume a still reads as written" "$SUMA" "$(dsum $VA 16)"
zv pool stop hp >/tmp/hp.out 2>&1
sed 's/^/# /' /tmp/hp.out
ktap_test_result "the pool stops" sh -c "[ ! -d $CFG/hp ] || grep -q '^state inactive' $CFG/hp/status"

# --- pool health on an NVMe ZNS member: the device's own health --------------------
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
Z=
if [ -f "$VMENV" ]; then
	. "$VMENV"
	. "$DIR/vm_devices.sh"
	Z=$(zns_dev 0)
fi
if [ -n "$Z" ] && zv pool create -f hz "$Z" >/tmp/hp.out 2>&1; then
	ktap_print_msg "\$ zvpoolctl pool health hz ($Z)"
	zv pool health hz >/tmp/hp.out 2>&1
	RC=$?
	sed 's/^/# /' /tmp/hp.out
	ktap_expect_eq "pool health of a healthy pool exits 0" 0 "$RC"
	zv pool health -j hz >/tmp/hp.json 2>&1
	ktap_test_result "the NVMe member's model, firmware and controller state from sysfs" \
		sh -c "grep -q '\"model\": \"QEMU NVMe Ctrl\"' /tmp/hp.json && grep -q '\"device_state\": \"live\"' /tmp/hp.json &&
		! grep -q '\"firmware\": null' /tmp/hp.json"
	ktap_test_result "its SMART / health log: temperature, spare, used, media errors" \
		sh -c "grep -Eq '\"temperature_c\": -?[0-9]+,' /tmp/hp.json && grep -Eq '\"spare_pct\": [0-9]+,' /tmp/hp.json &&
		grep -Eq '\"used_pct\": [0-9]+,' /tmp/hp.json && grep -q '\"media_errors\": 0,' /tmp/hp.json" ||
		sed 's/^/# /' /tmp/hp.json
	zv pool stop hz >/dev/null 2>&1
else
	ktap_test_skip "pool health of a healthy pool exits 0" "no NVMe ZNS namespace in this VM"
	ktap_test_skip "the NVMe member's model, firmware and controller state from sysfs" "no NVMe ZNS namespace in this VM"
	ktap_test_skip "its SMART / health log: temperature, spare, used, media errors" "no NVMe ZNS namespace in this VM"
fi

DMESG_MARK=$START
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
rmdir $CFG/hp 2>/dev/null
for d in hpa hpb hpc; do
	echo 0 >$NB/$d/power 2>/dev/null
	rmdir $NB/$d
done
rm -f /tmp/hp-a /tmp/hp-b /tmp/hp-b2 /tmp/hp-c /tmp/hp-cread /tmp/hp.uev.* /tmp/hp.uev-helper.sh /tmp/hp.events /tmp/hp.json
ktap_finished
