#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make demo`: a pool on the emulated ZNS namespaces, two
# thin volumes, ext4 on one of them, a snapshot of it as a gold image and two
# clones booted from it (each sees the gold files plus its own), the pool's
# status and health, per-VM I/O limits, quotas and reservations, space
# alerts, stop, an offline metadata check and reassembly, a disk gone
# (degraded assembly: a mirrored volume reads whole) and back, a disk
# replaced online, a VM's disk kept on one device across a restart, all
# through zvpoolctl.
set -u
. /etc/zvpool/vm.env
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; sh -c "$*"; }

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

. /usr/share/zvpool/selftests/vm_devices.sh
Z0=$(zns_dev 0)
Z1=$(zns_dev 1)

say "load zvpool.ko"
insmod /lib/modules/zvpool/zvpool.ko || exit 1
cat /sys/kernel/config/zvpool/features

say "create pool 'demo' on $Z0 and $Z1"
run "zvpoolctl pool create demo $Z0 $Z1" || exit 1

say "two thin volumes: vm1 (8 GiB) and vm2 (2 GiB), together more than the pool holds"
run "zvpoolctl volume create demo/vm1 --size 8G" || exit 1
run "zvpoolctl volume create demo/vm2 --size 2G" || exit 1
B=$(zvpoolctl volume show -H -o device demo/vm1 | cut -f2)

say "a VM's disk with two copies (like a ZFS mirror): db keeps each block on both disks"
run "zvpoolctl volume create demo/db --size 256M --copies 2" || exit 1
DB=$(zvpoolctl volume show -H -o device demo/db | cut -f2)
run "dd if=/dev/urandom of=$DB bs=1M count=32 oflag=direct status=none" || exit 1
DBSUM=$(dd if=$DB bs=1M count=32 iflag=direct status=none | md5sum)
run "zvpoolctl volume list -o name,size,used,copies"
# db_whole WHEN: db's 32 MiB read back as written.
db_whole() {
	DB=$(zvpoolctl volume show -H -o device demo/db | cut -f2)
	s=$(dd if=$DB bs=1M count=32 iflag=direct status=none | md5sum)
	printf '%s: db reads %s\n' "$1" "$([ "$s" = "$DBSUM" ] && echo 'back whole' || echo 'OTHER DATA')"
	[ "$s" = "$DBSUM" ]
}

say "ext4 on vm1 ($B)"
run "mkfs.ext4 -q $B" || exit 1
run "mount -t ext4 $B /mnt" || exit 1
run "dd if=/dev/urandom of=/mnt/disk-image bs=1M count=16 2>/dev/null"
run "mkdir /mnt/etc && cp /etc/zvpool/vm.env /mnt/etc/ && sync"
run "df -h /mnt | tail -n1"
run "ls -l /mnt"
run "umount /mnt && e2fsck -fn $B | tail -n1"

say "gold image: snapshot vm1, then two writable clones of it (nothing is copied)"
run "zvpoolctl snapshot create demo/vm1@gold" || exit 1
run "zvpoolctl volume clone demo/vm1@gold web1" || exit 1
run "zvpoolctl volume clone demo/vm1@gold web2" || exit 1
for c in web1 web2; do
	C=$(zvpoolctl volume show -H -o device demo/$c | cut -f2)
	run "mount -t ext4 $C /mnt && echo 'I am $c' > /mnt/hostname && dd if=/dev/urandom of=/mnt/$c-data bs=1M count=4 2>/dev/null && ls /mnt && umount /mnt" || exit 1
done
say "each clone kept the gold image's files and only its own changes; the snapshot is unchanged"
C=$(zvpoolctl volume show -H -o device demo/web1 | cut -f2)
run "mount -t ext4 -o ro $C /mnt && cat /mnt/hostname && ls /mnt && umount /mnt"
run "zvpoolctl snapshot list"
run "zvpoolctl volume list -o name,kind,origin,size,used,unique,shared"

say "quotas and reservations (ZFS refquota / refreservation), kept in the pool's metadata: web2 may map at most 1 GiB; 512 MiB are kept for vm2 that no other VM can take"
run "zvpoolctl volume set demo/web2 quota=1G"
run "zvpoolctl volume set demo/vm2 reservation=512M"
run "zvpoolctl volume list -o name,size,used,quota,reservation"

say "pool status"
run "zvpoolctl pool status demo"
run "zvpoolctl volume list"
run "zvpoolctl volume list -j"
run "zvpoolctl pool list -j"

say "health (like zpool status): member states, error counters, what each NVMe device says about itself (SMART)"
run "zvpoolctl pool health demo"
say "scrub (like zpool scrub, md check): read every written block in the background, report what a disk can no longer read"
run "zvpoolctl pool scrub -w demo" || exit 1

say "per-VM I/O limits, online: web2 gets at most 500 read IOPS and 20 MiB/s of writes"
run "zvpoolctl volume set demo/web2 riops=500 wbps=20M"
run "zvpoolctl volume list -o name,riops,wiops,rbps,wbps"

say "space alerts: low at 70 %, critical at 90 % of the capacity (uevents; 'zvpoolctl pool events' prints them); writes wait up to 60 s for space when full"
run "zvpoolctl pool set demo space_low_pct=70 space_critical_pct=90 no_space_timeout=60"
run "zvpoolctl pool get demo"

say "stop, check the metadata offline (read-only, like thin_check), reassemble (members in the other order)"
run "zvpoolctl pool stop demo"
run "zvpoolctl pool check $Z0 $Z1"
run "zvpoolctl pool assemble demo $Z1 $Z0" || exit 1
B=$(zvpoolctl volume show -H -o device demo/vm1 | cut -f2)
run "mount -t ext4 -o ro $B /mnt && ls -l /mnt && umount /mnt"
run "zvpoolctl volume show demo/vm1"
say "quotas and reservations came back with the pool"
run "zvpoolctl volume list -o name,quota,reservation"
C=$(zvpoolctl volume show -H -o device demo/web2 | cut -f2)
run "mount -t ext4 -o ro $C /mnt && cat /mnt/hostname && umount /mnt"

say "a disk is gone ($Z1): the pool's metadata has two copies, so it assembles without it when asked (--degraded); the mirrored db reads whole from its other copies, the other volumes' blocks on $Z1 read as I/O errors until it is back"
run "zvpoolctl pool stop demo"
run "zvpoolctl pool assemble --no-volumes demo $Z0"
run "zvpoolctl pool assemble --no-volumes --degraded demo $Z0" || exit 1
run "zvpoolctl pool health demo"
run "mkdir /sys/kernel/config/zvpool/demo/db && echo 1 > /sys/kernel/config/zvpool/demo/db/enable" || exit 1
db_whole "without $Z1" || exit 1
run "zvpoolctl pool stop demo"
say "the disk is back: assembled with both, healthy, every file there"
run "zvpoolctl pool assemble demo $Z0 $Z1" || exit 1
run "zvpoolctl pool health demo"
C=$(zvpoolctl volume show -H -o device demo/web1 | cut -f2)
run "mount -t ext4 -o ro $C /mnt && cat /mnt/hostname && umount /mnt"

N=$(dev_for 3)
say "replace a disk online: $Z1 by $N (a conventional namespace) while a VM reads; its data moves, then it leaves the pool"
run "dd if=$C of=/dev/null bs=1M count=256 iflag=direct status=none & zvpoolctl pool replace -w demo $Z1 $N; r=\$?; wait; exit \$r" || exit 1
run "zvpoolctl pool status demo"
say "keep a VM's disk on one device: web1 moves to $Z0 online and stays there (kept in the pool's metadata)"
run "zvpoolctl volume migrate -w --to $Z0 demo/web1" || exit 1
run "zvpoolctl volume list -o name,used,placement"
run "zvpoolctl pool stop demo"
say "the pool assembles from $Z0 and $N alone; web1 is still kept on $Z0"
run "zvpoolctl pool assemble demo $Z0 $N" || exit 1
run "zvpoolctl volume list -o name,placement demo"
run "mount -t ext4 -o ro $C /mnt && cat /mnt/hostname && umount /mnt"
db_whole "after the replacement" || exit 1
run "zvpoolctl pool stop demo"
rmmod zvpool && echo "unloaded"
