# SPDX-License-Identifier: GPL-2.0
# The emulated devices of zvpool's test VM (sourced by initramfs.sh and vm.sh).
# ZNS namespaces: name:nsid:size_MiB:zone_MiB:capacity_MiB:max_open:max_active
#  - zns0: zone capacity < zone size, like real ZNS SSDs;
#  - zns1: capacity == size (what dm-zoned requires), tighter limits.
# Limits must be below the zone count, else QEMU reports 0 (= unlimited).
ZV_ZNS="zns0:1:4096:64:62:14:28 zns1:2:2048:32:32:8:12"
# The guest's CPUs (QEMU -smp; one host thread each under multi-threaded TCG).
ZV_CPUS=2
# Conventional namespaces: name:nsid:size_MiB
ZV_CONV="conv0:3:2048"

# Bench-only namespaces (`make bench`; added to the VM when ZVPOOL_VM_BENCH=1,
# the default layout above is unchanged). The results namespace `bres`
# carries the guest's results back to the host (a tar archive).
#  - bzns0: ZNS with capacity < size (raw ZNS, then a zvpool pool on it);
#  - bzns1: ZNS with capacity == size and no open/active limits (dm-zoned
#    supports neither), with bdmzc as dm-zoned's regular (cache) device;
#  - bconv0: conventional (raw, then dm-thin data), bmeta: dm-thin metadata.
# Both may be overridden (the quick mode uses smaller devices).
ZV_BENCH_ZNS=${ZV_BENCH_ZNS:-"bzns0:4:4096:64:62:14:28 bzns1:5:4096:64:64:0:0"}
ZV_BENCH_CONV=${ZV_BENCH_CONV:-"bconv0:6:4096 bdmzc:7:512 bmeta:8:128 bres:9:256"}
# Scale-only namespace (`make scale`; added when ZVPOOL_VM_SCALE=1): a sparse
# 6 TiB conventional namespace holding ext4 with the zone files of
# selftests/zvpool/scale.sh's zloop members (costs host disk only as written).
ZV_SCALE_CONV="sconv0:10:6291456"
if [ "${ZVPOOL_VM_SCALE:-0}" = 1 ]; then
	ZV_CONV="$ZV_CONV $ZV_SCALE_CONV"
fi
if [ "${ZVPOOL_VM_BENCH:-0}" = 1 ]; then
	ZV_ZNS="$ZV_ZNS $ZV_BENCH_ZNS"
	ZV_CONV="$ZV_CONV $ZV_BENCH_CONV"
fi
