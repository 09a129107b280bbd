# SPDX-License-Identifier: GPL-2.0
# The emulated devices of zvpool's test VM (sourced by initramfs.sh and vm.sh).
# ZNS namespaces: name:nsid:size_MiB:zone_MiB:capacity_MiB:max_open:max_active
#  - zns0: zone capacity < zone size, like real ZNS SSDs;
#  - zns1: capacity == size (what dm-zoned requires), tighter limits.
# Limits must be below the zone count, else QEMU reports 0 (= unlimited).
ZV_ZNS="zns0:1:4096:64:62:14:28 zns1:2:2048:32:32:8:12"
# Conventional namespaces: name:nsid:size_MiB
ZV_CONV="conv0:3:2048"
