#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# zvpoolctl against the real driver: the whole workflow (create, volumes,
# data, status in table and JSON, stop, assemble in another member order,
# delete, resize) and the refusals with their exit codes and messages.
# Every command is shown with its output as KTAP diagnostics.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
ktap_print_header
if ! command -v zvpoolctl >/dev/null || [ ! -f "$KO" ] || [ ! -f "$VMENV" ]; then
	ktap_set_plan 1
	ktap_test_skip "zvpoolctl" "needs zvpoolctl, zvpool.ko and the test VM's devices"
	ktap_finished
fi
. "$VMENV"
lsmod | grep -q '^zvpool ' && rmmod zvpool
data=1
. "$DIR/vm_devices.sh"
Z0=$(zns_dev 0)
Z1=$(zns_dev 1)

# t WANT_RC DESCRIPTION CMD...: runs CMD, shows it, checks the exit code.
t() {
	want=$1 what=$2
	shift 2
	ktap_print_msg "\$ $*"
	"$@" >/tmp/out 2>/tmp/err
	rc=$?
	sed 's/^/# /' /tmp/out /tmp/err
	if [ "$rc" = "$want" ]; then
		ktap_test_pass "$what (exit $rc)"
	else
		ktap_test_fail "$what (exit $rc, expected $want)"
	fi
}
# has TEXT DESCRIPTION: the last command's stdout+stderr contains TEXT.
has() {
	if cat /tmp/out /tmp/err | grep -qF -- "$1"; then
		ktap_test_pass "$2"
	else
		ktap_print_msg "no \"$1\" in the output"
		ktap_test_fail "$2"
	fi
}

insmod "$KO" || { ktap_test_fail "insmod"; ktap_set_plan 1; ktap_finished; }
t 0 "version" zvpoolctl --version
t 0 "empty pool list" zvpoolctl pool list
t 2 "ambiguous unit" zvpoolctl volume create tank/x --size 1GB
# Members that hold data (whatever ran before): a block in the first zone
# of each. --force formats them anyway.
for _z in "$Z0" "$Z1"; do
	blkzone reset -c 1 "$_z" 2>/dev/null
	dd if=/dev/urandom of="$_z" bs=4096 count=1 oflag=direct status=none
done
t 1 "create on used members without --force: refused" zvpoolctl pool create tank "$Z0" "$Z1"
t 0 "create pool (--force)" zvpoolctl pool create -f tank "$Z0" "$Z1"
t 1 "create again: already defined" zvpoolctl pool create tank "$Z0"
t 1 "create on members of tank: refused, rolled back" zvpoolctl pool create other "$Z0"
has "kernel: zvpool:" "kernel reason shown"
has "rolled back: removed pool directory other" "rollback reported"
t 0 "volume create vm1" zvpoolctl volume create tank/vm1 --size 1G
has "/dev/zvpool" "device node shown"
t 0 "volume create vm2" zvpoolctl volume create tank/vm2 --size 256M
t 1 "volume create vm1 again" zvpoolctl volume create tank/vm1 --size 1G
DEV=$(zvpoolctl volume show -H -o device tank/vm1 | cut -f2)
[ $data = 1 ] && t 0 "write 8 MiB to $DEV" dd if=/dev/urandom of="$DEV" bs=1M count=8 conv=fsync
t 0 "volume show" zvpoolctl volume show tank/vm1
has "enabled" "vm1 enabled"
t 0 "volume list -p" zvpoolctl volume list -p
t 0 "pool list" zvpoolctl pool list
t 0 "pool status" zvpoolctl pool status tank
t 0 "pool status -j" zvpoolctl pool status -j tank
t 1 "pool add of a character device refused" zvpoolctl pool add tank /dev/null
has "is not a block device" "pool add shows the kernel's reason"
DEV2=$(zvpoolctl volume show -H -o device tank/vm2 | cut -f2)
t 0 "online resize (grow)" zvpoolctl volume resize tank/vm2 --size 512M
has "online" "online resize message"
t 0 "the block device grew" test "$(blockdev --getsize64 "$DEV2")" = 536870912
t 1 "shrink without --shrink" zvpoolctl volume resize tank/vm2 --size 256M
t 0 "online shrink with --shrink" zvpoolctl volume resize --shrink tank/vm2 --size 384M
t 0 "the block device shrank" test "$(blockdev --getsize64 "$DEV2")" = 402653184
# Snapshots and clones.
[ $data = 1 ] && SUMV=$(dd if="$DEV" bs=1M count=8 iflag=direct 2>/dev/null | md5sum)
t 0 "snapshot create" zvpoolctl snapshot create tank/vm1@s1
t 0 "snapshot list" zvpoolctl snapshot list tank
has "tank/vm1@s1" "snapshot listed"
t 0 "snapshot list -j" zvpoolctl snapshot list -j tank
has '"snapshots"' "snapshot list in JSON"
t 0 "volume clone" zvpoolctl volume clone tank/vm1@s1 c1
has "/dev/zvpool" "clone's device shown"
CDEV=$(zvpoolctl volume show -H -o device tank/c1 | cut -f2)
[ $data = 1 ] && t 0 "the clone holds vm1's data" test "$(dd if="$CDEV" bs=1M count=8 iflag=direct 2>/dev/null | md5sum)" = "$SUMV"
t 0 "volume show of the clone" zvpoolctl volume show -o name,kind,origin tank/c1
has "vm1@s1" "the clone's origin shown"
t 0 "volume promote" zvpoolctl volume promote tank/c1
t 0 "volume show after promote" zvpoolctl volume show -j tank/c1
has '"kind": "volume"' "promoted clone is a plain volume"
t 1 "rollback of an enabled volume: refused" zvpoolctl snapshot rollback tank/vm1@s1
has "disable the volume first" "rollback refusal message"
t 0 "volume delete c1" zvpoolctl volume delete tank/c1
t 0 "snapshot delete" zvpoolctl snapshot delete tank/vm1@s1
t 0 "no snapshot left" test -z "$(zvpoolctl snapshot list -H tank)"
exec 3<"$DEV"
t 1 "stop refused while vm1 is open" zvpoolctl pool stop tank
has "is in use" "in-use message"
t 1 "delete refused while vm1 is open" zvpoolctl volume delete tank/vm1
exec 3<&-
[ $data = 1 ] && SUM1=$(dd if="$DEV" bs=1M count=8 2>/dev/null | md5sum)
t 0 "pool stop" zvpoolctl pool stop tank
t 0 "pool list after stop" zvpoolctl pool list -H
t 0 "assemble (members in the other order)" zvpoolctl pool assemble tank "$Z1" "$Z0"
has "2 volumes enabled" "volumes re-enabled"
DEV=$(zvpoolctl volume show -H -o device tank/vm1 | cut -f2)
if [ $data = 1 ]; then
	SUM2=$(dd if="$DEV" bs=1M count=8 2>/dev/null | md5sum)
	t 0 "data intact after stop/assemble" test "$SUM1" = "$SUM2"
fi
t 0 "volume delete vm2" zvpoolctl volume delete tank/vm2
t 0 "volume list after delete" zvpoolctl volume list -H -o name
t 0 "stop" zvpoolctl pool stop tank
t 0 "assemble --no-volumes" zvpoolctl pool assemble --no-volumes tank "$Z0" "$Z1"
t 0 "volume list: unbound" zvpoolctl volume list
has "unbound" "vm1 unbound"
t 0 "resize an unbound volume" zvpoolctl volume resize tank/vm1 --size 2G
t 0 "final stop" zvpoolctl pool stop tank
t 0 "rmmod" rmmod zvpool
ktap_set_plan $((KTAP_TESTNO - 1))
ktap_finished
