#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The test VM's emulated devices, for the selftests and the demo. Source it
# after /etc/zvpool/vm.env (written by scripts/initramfs.sh from
# scripts/vm-devices.sh).

# dev_for NSID: the /dev node of the NVMe namespace with that nsid (device
# names are not in nsid order).
dev_for() {
	for n in /sys/block/nvme*; do
		[ "$(cat "$n/nsid" 2>/dev/null)" = "$1" ] && { echo "/dev/${n##*/}"; return; }
	done
}

# zns_dev I: the /dev node of the I-th (0-based) ZNS namespace of vm.env.
zns_dev() {
	_spec=$(echo $ZV_ZNS | cut -d' ' -f$(($1 + 1)))
	[ -n "$_spec" ] && dev_for "$(echo "$_spec" | cut -d: -f2)"
}
