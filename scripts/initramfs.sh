#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test VM's initramfs: a cached base archive (busybox, the guest
# tools with their shared libraries, the kernel's own test modules) plus a
# per-run overlay (zvpool.ko, selftests, tools, /init), concatenated.
# Usage: initramfs.sh KBUILD ZVPOOL_KO OUT
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ZVPOOL_TOP/scripts/vm-devices.sh"
KBUILD=$1 KO=$2 OUT=$3

# Guest programs (Debian packages on the host; copied with their libraries).
# qemu-img (qemu-utils): images_streams.sh makes qcow2 images with it;
# nvme (nvme-cli): nvmet_export.sh connects with it.
BINS=(/usr/sbin/blkzone /usr/sbin/blkdiscard /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/resize2fs /usr/sbin/dmsetup /usr/bin/fio
	/usr/bin/qemu-img /usr/sbin/nvme)
KMODS=(drivers/block/null_blk/null_blk.ko drivers/block/zloop.ko)

key=$({
	cat "$0" "$KBUILD/.zv-complete"
	basename "$KBUILD"
	dpkg-query -W busybox-static util-linux e2fsprogs dmsetup fio qemu-utils nvme-cli
} | sha256sum | cut -c1-12)
base=$ZVPOOL_CACHE/initramfs/base-$key.cpio
if [ ! -f "$base" ]; then
	log "building initramfs base ($base)"
	rm -rf "$ZVPOOL_CACHE/initramfs"
	R=$ZVPOOL_CACHE/initramfs/root
	mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,etc,lib/modules,lib64}
	cp /bin/busybox "$R/bin/busybox"
	for a in $("$R/bin/busybox" --list); do
		[ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
	done
	for b in "${BINS[@]}"; do
		[ -x "$b" ] || die "guest program $b missing (run scripts/deps.sh)"
		cp "$b" "$R$b"
		for l in $(ldd "$b" | grep -o '/[^ ]*'); do
			mkdir -p "$R$(dirname "$l")"
			cp -Ln "$l" "$R$l"
		done
	done
	ln -sf mke2fs "$R/usr/sbin/mkfs.ext4"
	ln -sf e2fsck "$R/usr/sbin/fsck.ext4"
	for m in "${KMODS[@]}"; do
		if [ -f "$KBUILD/$m" ]; then cp "$KBUILD/$m" "$R/lib/modules/"; else log "note: $m not built"; fi
	done
	echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
	(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$base.tmp"
	mv "$base.tmp" "$base"
	rm -rf "$R"
fi

# Per-run overlay.
O=$(mktemp -d)
trap 'rm -rf "$O"' EXIT
mkdir -p "$O/lib/modules/zvpool" "$O/usr/share/zvpool/selftests" "$O/usr/share/zvpool/udev" "$O/etc/zvpool" "$O/usr/bin"
cp "$ZVPOOL_TOP/scripts/guest/init" "$O/init"
cp "$KO" "$O/lib/modules/zvpool/zvpool.ko"
cp "$ZVPOOL_TOP"/selftests/zvpool/* "$O/usr/share/zvpool/selftests/"
# The udev rule, for import_ident.sh (run with 'udevadm test' when the guest has udevadm).
cp "$ZVPOOL_TOP/udev/60-zvpool.rules" "$O/usr/share/zvpool/udev/"
cp "$ZVPOOL_TOP/scripts/guest/demo.sh" "$O/usr/share/zvpool/demo.sh"
{
	echo "ZV_CPUS=\"$ZV_CPUS\""
	echo "ZV_ZNS=\"$ZV_ZNS\""
	echo "ZV_CONV=\"$ZV_CONV\""
	echo "ZV_SCALE_CONV=\"$ZV_SCALE_CONV\""
} >"$O/etc/zvpool/vm.env"
for t in "$ZVPOOL_TOP"/target/release/zvpoolctl "$ZVPOOL_TOP"/target/release/zvcrash; do
	[ -x "$t" ] && cp "$t" "$O/usr/bin/"
done
(cd "$O" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) >"$OUT.overlay"
cat "$base" "$OUT.overlay" >"$OUT"
rm -f "$OUT.overlay"
log "initramfs: $OUT ($(($(stat -c %s "$OUT") / 1048576)) MiB)"
