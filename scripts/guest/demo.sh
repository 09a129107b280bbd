#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: a pool on the emulated ZNS namespaces, two
# thin volumes, ext4 on one of them, and the pool's status.
set -u
. /etc/zvpool/vm.env
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; sh -c "$*"; }
CFS=/sys/kernel/config/zvpool

say "kernel"
uname -a

say "block devices"
attr() { cat "$1" 2>/dev/null || echo -; }
printf '%-10s %-13s %8s %10s %8s %9s %10s\n' DEVICE ZONED SIZE_MiB ZONE_MiB ZONES MAX_OPEN MAX_ACTIVE
for d in /sys/block/nvme*; do
	q=$d/queue
	printf '%-10s %-13s %8s %10s %8s %9s %10s\n' "${d##*/}" "$(cat $q/zoned)" "$(($(cat $d/size) / 2048))" \
		"$(($(cat $q/chunk_sectors) / 2048))" "$(attr $q/nr_zones)" "$(attr $q/max_open_zones)" "$(attr $q/max_active_zones)"
done

dev_for() {
	for n in /sys/block/nvme*; do
		[ "$(cat "$n/nsid" 2>/dev/null)" = "$1" ] && { echo "/dev/${n##*/}"; return; }
	done
}
set -- $ZV_ZNS
Z0=$(dev_for "$(echo "$1" | cut -d: -f2)")
Z1=$(dev_for "$(echo "$2" | cut -d: -f2)")

say "load zvpool.ko"
insmod /lib/modules/zvpool/zvpool.ko || exit 1
cat $CFS/features

say "create pool 'demo' on $Z0 and $Z1"
run "mkdir $CFS/demo"
run "echo $Z0 > $CFS/demo/devices"
run "echo $Z1 > $CFS/demo/devices"
run "echo 1 > $CFS/demo/format"
run "echo 1 > $CFS/demo/enable" || exit 1
run "cat $CFS/demo/members"

say "two thin volumes: vm1 (8 GiB) and vm2 (2 GiB): together more than the pool holds (thin)"
for v in vm1:8589934592 vm2:2147483648; do
	n=${v%%:*} s=${v#*:}
	run "mkdir $CFS/demo/$n && echo $s > $CFS/demo/$n/size && echo 1 > $CFS/demo/$n/enable" || exit 1
	echo "$n -> /dev/$(cat $CFS/demo/$n/dev)"
done

B=/dev/$(cut -d' ' -f1 $CFS/demo/vm1/dev)
say "ext4 on vm1 ($B)"
run "mkfs.ext4 -q $B" || exit 1
run "mount -t ext4 $B /mnt" || exit 1
run "dd if=/dev/urandom of=/mnt/disk-image bs=1M count=16 2>/dev/null"
run "mkdir /mnt/etc && cp /etc/zvpool/vm.env /mnt/etc/ && sync"
run "df -h /mnt | tail -n1"
run "ls -l /mnt"
run "umount /mnt && e2fsck -fn $B | tail -n1"

say "pool status"
cat $CFS/demo/status
say "volumes"
cat $CFS/demo/volumes
for v in vm1 vm2; do echo "$v: $(tr '\n' ' ' <$CFS/demo/$v/usage)"; done

say "stop and reassemble the pool: the data is on the zones"
for v in vm1 vm2; do echo 0 > $CFS/demo/$v/enable; rmdir $CFS/demo/$v; done
run "echo 0 > $CFS/demo/enable && echo 1 > $CFS/demo/enable"
run "mkdir $CFS/demo/vm1 && echo 1 > $CFS/demo/vm1/enable"
B=/dev/$(cut -d' ' -f1 $CFS/demo/vm1/dev)
run "mount -t ext4 -o ro $B /mnt && ls -l /mnt && umount /mnt"
echo 0 > $CFS/demo/vm1/enable; rmdir $CFS/demo/vm1
echo 0 > $CFS/demo/enable; rmdir $CFS/demo
rmmod zvpool && echo "unloaded"
