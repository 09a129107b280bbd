#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Pools through configfs: create over the emulated ZNS namespaces, status and
# members, and every refusal of bad input with its errno and a logged reason.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}

ktap_print_header
if [ ! -f "$KO" ] || [ ! -f "$VMENV" ]; then
	ktap_set_plan 1
	ktap_test_skip "pool_config" "needs zvpool.ko and the test VM's devices"
	ktap_finished
fi
. "$VMENV"

. "$DIR/vm_devices.sh"
# Geometry of the ZNS namespaces from vm.env: name:nsid:size:zone:cap:mo:ma (MiB).
set -- $ZV_ZNS
IFS=: read -r _ ns0 size0 zone0 cap0 _ _ <<EOS
$1
EOS
IFS=: read -r _ ns1 size1 zone1 cap1 _ _ <<EOS
$2
EOS
IFS=: read -r _ nsc _ <<EOS
$ZV_CONV
EOS
ZNS0=$(dev_for "$ns0") ZNS1=$(dev_for "$ns1") CONV=$(dev_for "$nsc")
META_ZONES=4

# expect_fail NAME ERRTEXT CMD...: CMD must fail and the kernel log must gain
# a zvpool line containing ERRTEXT.
expect_fail() {
	_n=$1 _t=$2
	shift 2
	dmesg_mark
	if (eval "$*") 2>/dev/null; then
		ktap_print_msg "$_n: unexpectedly succeeded"
		ktap_test_fail "$_n"
	elif ! dmesg_since_mark | grep -q "zvpool: .*$_t"; then
		ktap_print_msg "$_n: no kernel log line matching '$_t'"
		dmesg_since_mark | sed 's/^/# dmesg: /'
		ktap_test_fail "$_n"
	else
		ktap_test_pass "$_n"
	fi
}

# Blank members, whatever ran before.
blkzone reset "$ZNS0" && blkzone reset "$ZNS1"
ktap_set_plan 30
dmesg_mark
DMESG_START=$DMESG_MARK
insmod "$KO"
P=$CFS/p0
ktap_test_result "mkdir pool" mkdir $P
ktap_test_result "pool attributes present" test -f $P/devices -a -f $P/enable -a -f $P/status -a -f $P/members
ktap_expect_eq "inactive status" "state inactive" "$(cat $P/status)"
expect_fail "bad pool name refused" "invalid" "mkdir '$CFS/bad name'"
expect_fail "nonexistent device refused" "not a block device" "echo /dev/nonexistent > $P/devices"
: >/tmp/regular-file
expect_fail "regular file refused" "not a block device" "echo /tmp/regular-file > $P/devices"
ktap_test_result "add first member" sh -c "echo $ZNS0 > $P/devices"
expect_fail "member added twice refused" "already a member" "echo $ZNS0 > $P/devices"
ktap_test_result "add second member" sh -c "echo $ZNS1 > $P/devices"
ktap_expect_eq "devices lists both" "0 $ZNS0,1 $ZNS1" "$(paste -sd, $P/devices)"
expect_fail "format value checked" "format must be" "echo 7 > $P/format"
expect_fail "assembling a blank set refused" "cannot assemble" "echo 1 > $P/enable"
echo 1 >$P/format
ktap_test_result "format and enable" sh -c "echo 1 > $P/enable"
ktap_expect_eq "enable reads 1" "1" "$(cat $P/enable)"
st=$(cat $P/status)
ktap_expect_eq "status: active" "state active" "$(echo "$st" | head -n1)"
cap=$(( ((size0 / zone0 - META_ZONES) * cap0 + (size1 / zone1 - META_ZONES) * cap1) * 1048576 ))
ktap_expect_eq "status: capacity" "capacity_bytes $cap" "$(echo "$st" | grep '^capacity_bytes')"
ktap_expect_eq "status: nothing used" "used_bytes 0" "$(echo "$st" | grep '^used_bytes')"
ktap_expect_eq "members: kinds and zone capacity" "zns cap_bytes=$((cap0 * 1048576)) zns cap_bytes=$((cap1 * 1048576))" \
	"$(awk '{print $3, $6}' $P/members | paste -sd' ')"
expect_fail "enable twice refused" "already enabled" "echo 1 > $P/enable"
# (Members are added to an active pool online: members.sh.)
expect_fail "a member added again to the active pool refused" "already a member" "echo $ZNS1 > $P/devices"
mkdir $CFS/p1 && echo $ZNS0 >$CFS/p1/devices && echo 2 >$CFS/p1/format
expect_fail "device in use by another pool refused" "cannot open" "echo 1 > $CFS/p1/enable"
rmdir $CFS/p1
if rmmod zvpool 2>/dev/null; then ktap_test_fail "unload refused while a pool exists"; insmod "$KO"; else ktap_test_pass "unload refused while a pool exists"; fi
ktap_test_result "stop the pool" sh -c "echo 0 > $P/enable"
expect_fail "stop twice refused" "not enabled" "echo 0 > $P/enable"
echo 1 >$P/format
expect_fail "formatting non-blank members refused" "not blank" "echo 1 > $P/enable"
echo 2 >$P/format
ktap_test_result "forced format of used members" sh -c "echo 1 > $P/enable && echo 0 > $P/enable"
ktap_test_result "assemble the stopped pool" sh -c "echo 1 > $P/enable"
ktap_expect_eq "assembled pool: same capacity" "capacity_bytes $cap" "$(grep '^capacity_bytes' $P/status)"
ktap_test_result "stop the assembled pool" sh -c "echo 0 > $P/enable"
ktap_test_result "rmdir pool and unload" sh -c "rmdir $P && rmmod zvpool"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
