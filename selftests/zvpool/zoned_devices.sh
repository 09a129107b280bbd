#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The VM's emulated devices have the geometry the runner asked for, and a
# null_blk zoned device can be created and removed (the devices later tests
# build pools on).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
ktap_print_header
if [ ! -f "$VMENV" ]; then
	ktap_set_plan 1
	ktap_test_skip "zoned_devices" "no $VMENV: not running in zvpool's test VM"
	ktap_finished
fi
. "$VMENV"

nzns=$(echo $ZV_ZNS | wc -w)
nconv=$(echo $ZV_CONV | wc -w)
ktap_set_plan $((nzns * 6 + nconv * 2 + 7))

# The guest is an SMP machine: the tests exercise truly concurrent paths.
ktap_expect_eq "the guest has the CPUs the runner gave it" "${ZV_CPUS:-2}" "$(grep -c ^processor /proc/cpuinfo)"

. "$DIR/vm_devices.sh"

for spec in $ZV_ZNS; do
	IFS=: read -r name nsid size_mib zone_mib cap_mib max_open max_active <<EOS
$spec
EOS
	dev=$(dev_for "$nsid")
	b=/sys/block/${dev##*/}/queue
	ktap_expect_eq "$name: host-managed" "host-managed" "$(cat $b/zoned 2>/dev/null)"
	ktap_expect_eq "$name: zone count" "$((size_mib / zone_mib))" "$(cat $b/nr_zones 2>/dev/null)"
	ktap_expect_eq "$name: zone size (sectors)" "$((zone_mib * 2048))" "$(cat $b/chunk_sectors 2>/dev/null)"
	cap=$(blkzone report -c 1 "$dev" 2>/dev/null | sed -n 's/.*cap \(0x[0-9a-f]*\),.*/\1/p')
	ktap_expect_eq "$name: zone capacity (sectors)" "$((cap_mib * 2048))" "$((cap + 0))"
	ktap_expect_eq "$name: max open zones" "$max_open" "$(cat $b/max_open_zones 2>/dev/null)"
	ktap_expect_eq "$name: max active zones" "$max_active" "$(cat $b/max_active_zones 2>/dev/null)"
done

for spec in $ZV_CONV; do
	IFS=: read -r name nsid size_mib <<EOS
$spec
EOS
	dev=$(dev_for "$nsid")
	ktap_expect_eq "$name: not zoned" "none" "$(cat /sys/block/${dev##*/}/queue/zoned 2>/dev/null)"
	ktap_expect_eq "$name: size (sectors)" "$((size_mib * 2048))" "$(cat /sys/block/${dev##*/}/size 2>/dev/null)"
done

# null_blk, zoned, memory backed: 16 zones of 8 MiB.
NULLB=/sys/kernel/config/nullb/zvnullb0
dmesg_mark
if ! insmod /lib/modules/null_blk.ko nr_devices=0 2>/dev/null && ! grep -q '^null_blk ' /proc/modules; then
	for t in create zoned sequential-write rejected-write remove no-warn; do
		ktap_test_skip "null_blk: $t" "null_blk module not available"
	done
	ktap_finished
fi
mkdir "$NULLB" && echo 1 >$NULLB/zoned && echo 8 >$NULLB/zone_size && echo 128 >$NULLB/size &&
	echo 4096 >$NULLB/blocksize && echo 1 >$NULLB/memory_backed && echo 1 >$NULLB/power
# The disk is named after the configfs directory (older kernels: nullb<index>).
nb=/dev/${NULLB##*/}
[ -b "$nb" ] || nb=/dev/nullb$(cat $NULLB/index 2>/dev/null)
ktap_test_result "null_blk: create" test -b "$nb"
ktap_expect_eq "null_blk: zoned" "host-managed 16" "$(cat /sys/block/${nb##*/}/queue/zoned) $(cat /sys/block/${nb##*/}/queue/nr_zones)"
ktap_test_result "null_blk: sequential-write" sh -c "test -b $nb && dd if=/dev/zero of=$nb bs=4096 count=4 oflag=direct status=none"
# Writing zone 0 again at offset 0 is not at the write pointer: must fail.
if ! test -b "$nb" || dd if=/dev/zero of="$nb" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	ktap_test_fail "null_blk: rejected-write"
else
	ktap_test_pass "null_blk: rejected-write"
fi
echo 0 >$NULLB/power && rmdir $NULLB && rmmod null_blk
ktap_test_result "null_blk: remove" test ! -e "$nb"
dmesg_clean_since_mark "null_blk: no-warn"
ktap_finished
