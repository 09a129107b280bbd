#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Degraded assembly (Documentation/admin-guide.md, "A member that is
# missing at assembly"): a pool of two members keeps two copies of its
# metadata, so it assembles without either one. Twice, without member 0
# (the journal member) and without member 1:
# - `enable` with one device and assemble_mode normal is refused (ENODEV)
#   with one log line that names assemble_mode 'degraded';
# - with assemble_mode degraded: the pool assembles, one log line names
#   the missing member, `status` says `health degraded`, `members` shows
#   it `missing`, a uevent says it; every region of the volume reads back as written or
#   fails with EIO (never other data), and the regions on the missing
#   member fail;
# - the degraded pool takes writes and commits them without the member:
#   assembled degraded again, the new region reads back;
# - with both devices again (assemble_mode normal): health ok, every
#   region, old and new, reads back.
# And read-only assembly also does without a member; `zvpoolctl pool
# assemble` refuses a missing member with a hint, and `--degraded` does
# without it.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. /etc/zvpool/vm.env
. "$DIR/vm_devices.sh"
. "$DIR/pool_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
P=$CFS/dg
ST=$P/status
ktap_print_header
need_zns_and_conv "degraded assembly" blkzone cmp zvpoolctl
lsmod | grep -q '^zvpool ' && rmmod zvpool
insmod "$KO" || exit 1
ktap_set_plan $((2 * 14 + 3))
make_patterns

# mfield M FIELD: FIELD of member M in `members`.
mfield() { awk -v m="$1" '$1 == m' $P/members | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# read_regions K...: sets OK, EIO, BAD to the regions of the volume D that
# read back as written, fail, read back other data.
read_regions() {
	OK="" EIO="" BAD=""
	for _k in "$@"; do
		if ! dd if="$D" of=/tmp/dg.r bs=1M skip="$_k" count=1 iflag=direct status=none 2>/dev/null; then
			EIO="$EIO $_k"
		elif cmp -s /tmp/dg.r /tmp/pat.$_k; then
			OK="$OK $_k"
		else
			BAD="$BAD $_k"
		fi
	done
}

# workload: format over DEVS, regions 0-1 moved to member 1 (volume
# migrate), regions 2-3 where the pool puts them (member 0); the member of
# index $1's used bytes in USED, the other's in USED_OTHER; clean stop.
workload() {
	pool_down
	blkzone reset "$ZNS"
	step "format" pool_up normal 2 && step "volume" vol_up 67108864 || return 1
	step "region 0" put 0 && step "region 1" put 1 || return 1
	step "migrate" quiet zvpoolctl volume migrate -w --to "$(echo $DEVS | cut -d' ' -f2)" dg/v &&
		step "migrate cancel" quiet zvpoolctl volume migrate --cancel dg/v || return 1
	step "region 2" put 2 && step "region 3" put 3 || return 1
	USED=$(mfield "$1" used_bytes)
	USED_OTHER=$(mfield $((1 - $1)) used_bytes)
	ktap_print_msg "member $1 holds $USED bytes, member $((1 - $1)) $USED_OTHER"
	pool_down
}

for gone in 0 1; do
	ALL="$ZNS $CONV"
	if [ $gone = 0 ]; then LEFT=$CONV; else LEFT=$ZNS; fi
	K="without member $gone"
	DEVS=$ALL
	ktap_test_result "$K: workload" workload $gone

	DEVS=$LEFT
	mkdir -p $P && echo "$LEFT" >$P/devices
	refused "$K: normal assembly refused" 1 $P/enable "no such device" \
		"1 member(s) of the pool not among the devices given; assemble_mode 'degraded'"
	pool_down

	rm -f /tmp/dg.uev.*
	uevents_on /tmp/dg.uev
	dmesg_mark
	ktap_test_result "$K: assemble_mode degraded assembles" pool_up degraded
	ktap_test_result "$K: one log line names the missing member" \
		test "$(dmesg_since_mark | grep -c "zvpool: dg: member $gone (device uuid [0-9a-f-]*) missing: assembled degraded")" = 1
	ktap_expect_eq "$K: status health" "degraded" "$(sed -n 's/^health //p' $ST)"
	if [ -w $UH ]; then
		wait_for 5 sh -c "cat /tmp/dg.uev.* 2>/dev/null | grep -q ZVPOOL_STATE=missing"
		ktap_expect_eq "$K: uevent: the member missing" \
			"DEVPATH=/devices/virtual/misc/zvpool-control ZVPOOL_EVENT=member ZVPOOL_MEMBER=missing ZVPOOL_MEMBER_INDEX=$gone ZVPOOL_POOL=dg ZVPOOL_STATE=missing" \
			"$(for f in /tmp/dg.uev.*; do grep -q '^ZVPOOL_EVENT=member$' "$f" && xargs <"$f"; done)"
	else
		ktap_test_skip "$K: uevent: the member missing" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
	fi
	uevents_off
	ktap_expect_eq "$K: members: the member missing" "missing missing" \
		"$(awk -v m=$gone '$1 == m { print $2 }' $P/members) $(mfield $gone state)"
	step "bind" vol_up
	read_regions 0 1 2 3
	ktap_print_msg "$K: regions read back:$OK; failed:$EIO; other data:$BAD"
	ktap_expect_eq "$K: no region reads other data" "" "$BAD"
	# Each member holds data (regions 0-1 on member 1, 2-3 on member 0),
	# so some regions read back and some fail.
	ktap_test_result "$K: regions of the missing member fail, the others read back" \
		test "$USED" -gt 0 -a -n "$EIO" -a "$USED_OTHER" -gt 0 -a -n "$OK"
	ktap_test_result "$K: a new region written and read back" sh -c "
		dd if=/tmp/pat.4 of=$D bs=1M seek=4 count=1 oflag=direct conv=fsync status=none &&
		dd if=$D bs=1M skip=4 count=1 iflag=direct status=none | cmp -s - /tmp/pat.4"
	pool_down
	if step "degraded again" pool_up degraded && step "bind" vol_up && has 4; then
		ktap_test_pass "$K: assembled degraded again, the new region reads back"
	else
		ktap_test_fail "$K: assembled degraded again, the new region reads back"
	fi
	pool_down

	DEVS=$ALL
	ktap_test_result "$K: both members: normal assembly" pool_up normal
	ktap_expect_eq "$K: both members: health" "ok" "$(sed -n 's/^health //p' $ST)"
	step "bind" vol_up
	read_regions 0 1 2 3 4
	ktap_expect_eq "$K: both members: every region reads back" " 0 1 2 3 4" "$OK"
	pool_down
done

# Read-only assembly does without a member too (it writes nothing).
DEVS=$ZNS
if step "read-only" pool_up read-only && step "bind" vol_up; then
	read_regions 0 1 2 3 4
	ktap_print_msg "read-only without member 1: regions read back:$OK; failed:$EIO; other data:$BAD"
	ktap_test_result "read-only without member 1: no region reads other data, some read back" \
		test -z "$BAD" -a -n "$OK"
else
	ktap_test_fail "read-only without member 1: no region reads other data, some read back"
fi
pool_down

# zvpoolctl: refused with the hint, then --degraded.
if zvpoolctl pool assemble dg "$ZNS" >/tmp/dg.out 2>&1; then
	ktap_test_fail "zvpoolctl pool assemble without member 1: refused with the hint"
	pool_down
else
	ktap_test_result "zvpoolctl pool assemble without member 1: refused with the hint" \
		grep -q "hint: assemble without it .*zvpoolctl pool assemble --degraded dg $ZNS" /tmp/dg.out
fi
if quiet zvpoolctl pool assemble --degraded dg "$ZNS"; then
	D=/dev/$(cut -d' ' -f1 $P/v/dev)
	read_regions 2 3 4
	ktap_expect_eq "zvpoolctl pool assemble --degraded: the regions of member 0 read back" " 2 3 4" "$OK"
else
	ktap_test_fail "zvpoolctl pool assemble --degraded: the regions of member 0 read back"
fi
zvpoolctl pool stop dg >/dev/null 2>&1
pool_down
rmmod zvpool
ktap_finished
