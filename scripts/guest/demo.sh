#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: what zvpool sees and does in the test VM.
set -u
. /etc/zvpool/vm.env
say() { printf '\n### %s\n' "$*"; }

say "kernel"
uname -a

say "block devices"
printf '%-10s %-13s %8s %10s %8s %9s %10s\n' DEVICE ZONED SIZE_MiB ZONE_MiB ZONES MAX_OPEN MAX_ACTIVE
attr() { cat "$1" 2>/dev/null || echo -; }
for d in /sys/block/nvme*; do
	q=$d/queue
	printf '%-10s %-13s %8s %10s %8s %9s %10s\n' "${d##*/}" "$(cat $q/zoned)" "$(($(cat $d/size) / 2048))" \
		"$(($(cat $q/chunk_sectors) / 2048))" "$(attr $q/nr_zones)" "$(attr $q/max_open_zones)" "$(attr $q/max_active_zones)"
done

for d in /sys/block/nvme*; do
	[ "$(cat $d/queue/zoned)" = host-managed ] || continue
	say "first zones of /dev/${d##*/} (blkzone report -c 2)"
	blkzone report -c 2 /dev/${d##*/}
done

say "loading zvpool.ko"
insmod /lib/modules/zvpool/zvpool.ko || exit 1
dmesg | grep 'zvpool:' | tail -n 3
say "/sys/kernel/config/zvpool"
ls -l /sys/kernel/config/zvpool
say "features"
cat /sys/kernel/config/zvpool/features
say "unloading zvpool.ko"
rmmod zvpool && echo "unloaded"
