#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Block cgroups (the tenants issue): a volume's I/O reaches its member
# charged to the cgroup of the task that submitted it, whichever path serves
# it (writes go through the pool's worker, reads are served in the
# submitter's context), so io.stat and io.max of a member act per VM. On a
# pool over a memory-backed zoned null_blk, with cgroup v2:
# - writes and reads of a task in cgroup vmA show in vmA's io.stat for the
#   member (before, the worker's bios were charged to the root group);
# - io.max on the member for vmA slows that task's writes to the volume,
#   while a task in the root group writes at full speed (timings printed,
#   the bound asserted loosely: 100 writes at 50 IOPS take over a second).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvcg
CG=/sys/fs/cgroup
ktap_print_header
if ! command -v zvpoolctl >/dev/null || [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "block cgroups" "needs zvpoolctl, zvpool.ko and null_blk.ko"
	ktap_finished
fi
mkdir -p $CG
grep -q "^cgroup2 $CG " /proc/mounts || mount -t cgroup2 none $CG 2>/dev/null
if ! grep -qw io $CG/cgroup.controllers 2>/dev/null; then
	ktap_set_plan 1
	ktap_test_skip "block cgroups" "no cgroup v2 io controller (CONFIG_BLK_CGROUP)"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 9
dmesg_mark
DMESG_START=$DMESG_MARK

nullb_zoned $NB 256 4
MEMBER=$(cat /sys/block/${NB##*/}/dev)
insmod "$KO"
ktap_test_result "pool and a volume on a zoned null_blk" sh -c \
	"zvpoolctl pool create -f cg /dev/${NB##*/} >/dev/null && zvpoolctl volume create cg/v --size 128M >/dev/null"
V=$(zvpoolctl volume show -H -o device cg/v | cut -f2)
ktap_test_result "cgroup vmA with the io controller" sh -c \
	"echo +io >$CG/cgroup.subtree_control && mkdir -p $CG/vmA"
# member_ios CGROUP KEY: KEY (wios, rios) of the member in CGROUP's io.stat.
member_ios() {
	awk -v d="$MEMBER" -v k="$2" '$1 == d { for (i = 2; i <= NF; i++) { split($i, f, "="); if (f[1] == k) print f[2] } }' \
		"$CG/$1/io.stat"
}
# in_vmA CMD: runs CMD in cgroup vmA.
in_vmA() { sh -c "echo \$\$ >$CG/vmA/cgroup.procs && exec $*"; }
# ms CMD: runs CMD, prints how long it took in ms.
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
ms() {
	_t0=$(now_ms)
	"$@" || return 1
	echo $(($(now_ms) - _t0))
}
W0=$(member_ios vmA wios)
ktap_test_result "vmA writes 200 blocks of 4 KiB (O_DIRECT)" \
	in_vmA dd if=/dev/urandom of="$V" bs=4k count=200 oflag=direct status=none
W1=$(member_ios vmA wios)
ktap_print_msg "vmA's writes on the member (io.stat wios): ${W0:-0} -> ${W1:-0}"
ktap_test_result "the member's writes are charged to vmA (at least 200)" [ "${W1:-0}" -ge $((${W0:-0} + 200)) ]
R0=$(member_ios vmA rios)
ktap_test_result "vmA reads them back" in_vmA dd if="$V" of=/dev/null bs=4k count=200 iflag=direct status=none
R1=$(member_ios vmA rios)
ktap_print_msg "vmA's reads on the member (io.stat rios): ${R0:-0} -> ${R1:-0}"
ktap_test_result "the member's reads are charged to vmA (at least 200)" [ "${R1:-0}" -ge $((${R0:-0} + 200)) ]

echo "$MEMBER wiops=50" >$CG/vmA/io.max
T_ROOT=$(ms dd if=/dev/zero of="$V" bs=4k count=100 seek=1000 oflag=direct status=none)
T_A=$(ms in_vmA dd if=/dev/zero of="$V" bs=4k count=100 seek=2000 oflag=direct status=none)
ktap_print_msg "100 writes of 4 KiB with io.max wiops=50 on the member for vmA: root group ${T_ROOT} ms, vmA ${T_A} ms"
ktap_test_result "io.max on the member slows vmA's writes to the volume (over 1 s for 100 at 50 IOPS)" \
	[ "${T_A:-0}" -gt 1000 ]
echo "$MEMBER wiops=max" >$CG/vmA/io.max

ktap_test_result "cleanup" sh -c "zvpoolctl pool stop cg >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk && rmdir $CG/vmA"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN/oops"
ktap_finished
