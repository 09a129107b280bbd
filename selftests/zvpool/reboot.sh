#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Persistence across a VM reboot with persistent NVMe images. Run by the
# runner in two boots (kernel argument zvpool.phase=1, then 2):
#  1. create a pool, an ext4 volume with files and a raw volume with a known
#     pattern; flush (umount, fsync) and power off without stopping the pool;
#  2. import the pool as zvpool-import.service does at boot (zvpoolctl pool
#     import -a --cached: no device list; the pool cache lives on the
#     conventional namespace's ext4, the guest's root is an initramfs),
#     with the kernel's uevents run through the shipped udev rule
#     (udev_rules.awk, the guest has no udev): find everything under the
#     stable names /dev/zvpool/rb/fs, /dev/zvpool/rb/raw and
#     /dev/disk/by-id/zvpool-UUID (the UUID printed in boot 1); then stop
#     and assemble with the members listed in the other order.
# rb/raw is exported over nvme-loop in boot 1 (recorded in the pool cache):
# the import of boot 2 makes the export again, with the same NQN and the
# volume's UUID as namespace UUID.
# The members are zloop zoned devices (one with conventional zones, like an
# SMR drive) whose zone files live on ext4 on the conventional NVMe
# namespace: QEMU 7.2 keeps the write pointers of its emulated ZNS
# namespaces in memory only, so after a QEMU restart every ZNS zone would
# look empty, unlike a real drive; zloop's write pointers are its zone files'
# sizes and persist with the image.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
MIB=1048576
ktap_print_header
if [ -z "${ZVPOOL_PHASE:-}" ] || ! command -v zvpoolctl >/dev/null || [ ! -f "$VMENV" ] ||
	[ ! -f /lib/modules/zloop.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "reboot" "runs across two boots of the test VM (zvpool.phase=1/2, see scripts/check.sh) with zloop.ko"
	ktap_finished
fi
. "$VMENV"
. "$DIR/vm_devices.sh"
set -- $ZV_CONV
CONV=$(dev_for "$(echo "$1" | cut -d: -f2)")
pattern() { yes "zvpool reboot pattern $1" | head -c $((16 * MIB)); }
CACHE=/zl/zvpool.cache
NVMET=/sys/kernel/config/nvmet
NQN=nqn.2026-12.org.zvpool:rb-raw
# zloop_up: the zone files' file system, then the two zloop devices (created
# in boot 1, restored from their zone files in boot 2).
zloop_up() {
	mkdir -p /zl && mount -t ext4 "$CONV" /zl && mkdir -p /zl/0 /zl/1 &&
		insmod /lib/modules/zloop.ko &&
		echo "add id=0,capacity_mb=512,zone_size_mb=32,conv_zones=2,base_dir=/zl" >/dev/zloop-control &&
		echo "add id=1,capacity_mb=256,zone_size_mb=16,conv_zones=0,base_dir=/zl" >/dev/zloop-control
}
Z0=/dev/zloop0
Z1=/dev/zloop1
dmesg_mark
insmod "$KO"

case "$ZVPOOL_PHASE" in
1)
	ktap_set_plan 11
	zloop_first() { mkfs.ext4 -q -F "$CONV" && zloop_up; }
	ktap_test_result "zloop devices on ext4 on the conventional namespace" quiet zloop_first
	ktap_test_result "create pool (recorded in the pool cache $CACHE)" quiet zvpoolctl --cache $CACHE pool create -f rb "$Z0" "$Z1"
	ktap_test_result "create volumes" quiet sh -c "zvpoolctl volume create rb/fs --size 512M && zvpoolctl volume create rb/raw --size 64M"
	FS=$(zvpoolctl volume show -H -o device rb/fs | cut -f2)
	RAW=$(zvpoolctl volume show -H -o device rb/raw | cut -f2)
	zvpoolctl volume ident "$FS" | sed -n 's/^ZVPOOL_UUID=//p' >/zl/fs.uuid
	ktap_print_msg "rb/fs is $FS, UUID $(cat /zl/fs.uuid)"
	ktap_test_result "rb/fs has a UUID" [ -s /zl/fs.uuid ]
	ktap_test_result "mkfs.ext4 and mount" quiet sh -c "mkfs.ext4 -q $FS && mount -t ext4 $FS /mnt"
	ok=0
	dd if=/dev/urandom of=/mnt/image bs=$MIB count=8 2>/dev/null && mkdir -p /mnt/dir &&
		for i in 1 2 3 4; do cp /mnt/image /mnt/dir/copy$i; done &&
		md5sum /mnt/image /mnt/dir/* >/mnt/MD5SUMS && ok=1
	ktap_test_result "write files" [ $ok = 1 ]
	ktap_test_result "umount (flushes)" umount /mnt
	write_raw() { pattern raw | dd of="$RAW" bs=$MIB iflag=fullblock oflag=direct conv=fsync status=none; }
	ktap_test_result "raw volume: 16 MiB pattern, fsync" write_raw
	ktap_test_result "export rb/raw over nvme-loop" quiet zvpoolctl --cache $CACHE volume export --nqn $NQN rb/raw
	ktap_test_result "the pool cache records the export" grep -q "^export [^ ]* raw $NQN transport=loop" $CACHE
	zvpoolctl volume ident "$RAW" | sed -n 's/^ZVPOOL_UUID=//p' >/zl/raw.uuid
	sync
	dmesg_clean_since_mark "no WARN/oops (phase 1)"
	# No pool stop: the next boot must find everything that was flushed.
	;;
2)
	ktap_set_plan 18
	ktap_test_result "zloop devices restored from their zone files" quiet zloop_up
	# The kernel's uevents through the shipped udev rule: links below $ROOT.
	UH=/sys/kernel/uevent_helper
	ROOT=/tmp/rb.root
	RULE=/usr/share/zvpool/udev/60-zvpool.rules
	links=0
	if [ -w $UH ] && [ -f "$RULE" ]; then
		sed "s#/usr/local/sbin/zvpoolctl#$(command -v zvpoolctl)#" "$RULE" >/tmp/rb.rules
		cp "$DIR/udev_rules.awk" /tmp/rb.udev_rules.awk
		printf '#!/bin/sh\n[ "$SUBSYSTEM" = block ] && ROOT=%s awk -f /tmp/rb.udev_rules.awk /tmp/rb.rules >/dev/null 2>&1\n' \
			$ROOT >/tmp/rb.uevent.sh
		chmod +x /tmp/rb.uevent.sh
		echo /tmp/rb.uevent.sh >$UH
		links=1
	fi
	ktap_print_msg "\$ zvpoolctl --cache $CACHE pool import -a --cached"
	zvpoolctl --cache $CACHE pool import -a --cached 2>&1 | sed 's/^/# /'
	ktap_test_result "pool import -a --cached: rb imported with no device list" \
		[ "$(zvpoolctl pool list -H -o name)" = rb ]
	FS=$(zvpoolctl volume show -H -o device rb/fs | cut -f2)
	RAW=$(zvpoolctl volume show -H -o device rb/raw | cut -f2)
	U=$(cat /zl/fs.uuid)
	NS=$NVMET/subsystems/$NQN/namespaces/1
	ktap_expect_eq "the recorded export is made again at import: nvmet's namespace on rb/raw, enabled" \
		"$RAW 1" "$(cat $NS/device_path 2>/dev/null) $(cat $NS/enable 2>/dev/null)"
	ktap_expect_eq "the namespace UUID is rb/raw's UUID of boot 1" "$(cat /zl/raw.uuid)" "$(cat $NS/device_uuid 2>/dev/null)"
	if [ $links = 1 ]; then
		_n=0
		while [ $_n -lt 50 ] && ! { [ "$(readlink $ROOT/dev/zvpool/rb/fs)" = "$FS" ] &&
			[ "$(readlink $ROOT/dev/zvpool/rb/raw)" = "$RAW" ] &&
			[ "$(readlink "$ROOT/dev/disk/by-id/zvpool-$U")" = "$FS" ]; }; do
			sleep 0.1
			_n=$((_n + 1))
		done
		ls -lR $ROOT/dev | sed 's/^/# /'
		ktap_expect_eq "stable names from the uevents: /dev/zvpool/rb/fs, /dev/zvpool/rb/raw" \
			"$FS $RAW" "$(readlink $ROOT/dev/zvpool/rb/fs) $(readlink $ROOT/dev/zvpool/rb/raw)"
		ktap_expect_eq "/dev/disk/by-id/zvpool-$U (boot 1's UUID of rb/fs)" "$FS" \
			"$(readlink "$ROOT/dev/disk/by-id/zvpool-$U")"
		FS=$ROOT/dev/disk/by-id/zvpool-$U
		RAW=$ROOT/dev/zvpool/rb/raw
	else
		ktap_test_skip "stable names from the uevents" "no $UH (kernel without CONFIG_UEVENT_HELPER) or no udev rule"
		ktap_test_skip "/dev/disk/by-id/zvpool-UUID" "no $UH or no udev rule"
	fi
	ktap_print_msg "rb/fs as $FS, rb/raw as $RAW"
	ktap_test_result "e2fsck -fn clean after reboot" quiet e2fsck -fn "$FS"
	ktap_test_result "mount read-only" mount -t ext4 -o ro "$FS" /mnt
	ktap_test_result "file checksums intact" quiet sh -c "cd /mnt && md5sum -c MD5SUMS"
	umount /mnt
	ktap_expect_eq "raw pattern intact" "$(pattern raw | md5sum)" "$(dd if=$RAW bs=$MIB count=16 iflag=direct status=none | md5sum)"
	ktap_expect_eq "raw volume: unwritten part reads zeros" "$(head -c $((48 * MIB)) /dev/zero | md5sum)" \
		"$(dd if=$RAW bs=$MIB skip=16 count=48 iflag=direct status=none | md5sum)"
	[ $links = 1 ] && echo "" >$UH
	ktap_test_result "unexport rb/raw" quiet zvpoolctl --cache $CACHE volume unexport rb/raw
	ktap_test_result "the pool cache no longer records it" sh -c "! grep -q '^export ' $CACHE"
	ktap_test_result "stop the pool" quiet zvpoolctl pool stop rb
	ktap_test_result "assemble (members in the other order)" quiet zvpoolctl pool assemble rb "$Z1" "$Z0"
	RAW=$(zvpoolctl volume show -H -o device rb/raw | cut -f2)
	ktap_expect_eq "raw pattern intact" "$(pattern raw | md5sum)" "$(dd if=$RAW bs=$MIB count=16 iflag=direct status=none | md5sum)"
	ktap_test_result "stop the pool, rmmod" quiet sh -c "zvpoolctl pool stop rb && rmmod zvpool"
	dmesg_clean_since_mark "no WARN/oops (phase 2)"
	;;
*)
	ktap_set_plan 1
	ktap_test_fail "unknown phase $ZVPOOL_PHASE"
	;;
esac
ktap_finished
