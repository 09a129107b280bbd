#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test: where the CPU goes on the request path, same boot. Needs the
# profiling kernel (ZVPOOL_KERNEL=profile) booted with `profile=2`:
#   scripts/vm.sh ... --mode check:perf_profile.sh --append profile=2
# For each run (raw null_blk; a zvpool volume over a zoned null_blk) it
# clears /proc/profile, runs fio for PROF_SECS seconds and prints the
# non-zero tick buckets as `# PROF LABEL IOS BUCKET COUNT` lines (bucket:
# (pc - _stext) >> shift; ticks in module code are not counted), and the
# guest's busy and idle CPU time per I/O (/proc/stat, modules included);
# scripts/profile-report.sh resolves the buckets against System.map.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
SECS=${PROF_SECS:-10}
ktap_print_header
ktap_set_plan 1
if [ ! -r /proc/profile ]; then
	ktap_test_skip "perf_profile" "no /proc/profile (profiling kernel with profile=2 needed)"
	ktap_finished
	exit 0
fi
lsmod | grep -q '^null_blk ' || insmod /lib/modules/null_blk.ko nr_devices=0
# cpu: the guest's CPU ticks so far, all CPUs: "busy idle" (/proc/stat).
cpu() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
# prof LABEL DEV RW JOBS QD: one profiled fio run.
prof() {
	c0=$(cpu)
	echo 0 >/proc/profile
	fio --output-format=terse --terse-version=3 --name=p --filename="$2" --direct=1 \
		--ioengine=libaio --rw="$3" --bs=4k --iodepth="$5" --numjobs="$4" --group_reporting \
		--size=512M --time_based --runtime="$SECS" --randrepeat=0 --norandommap >/tmp/prof.fio 2>&1
	c1=$(cpu)
	od -A n -t u4 -v /proc/profile >/tmp/prof.od
	ios=$(tail -n 1 /tmp/prof.fio | awk -F';' '{ print int(($6 + $47) / 4) }')
	# busy and idle CPU per I/O from /proc/stat (USER_HZ 100), all code
	# (modules too, which /proc/profile does not count).
	per=$(echo "$c0 $c1 $ios" | awk '{ printf "busy %.1f us/IO, idle %.1f us/IO", ($3 - $1) * 1e4 / $5, ($4 - $2) * 1e4 / $5 }')
	ktap_print_msg "run $1: $3 ${4}x$5 on $2: $ios I/Os in $SECS s ($((ios / SECS)) IOPS), $per"
	awk -v l="$1" -v n="$ios" '
		{ for (i = 1; i <= NF; i++) { if (k > 0 && $i > 0) printf "# PROF %s %d %d %d\n", l, n, k - 1, $i; k++ } }
		BEGIN { k = 0 }' /tmp/prof.od
}
# Module parameter sets to compare, from zvpool.prof_variants=A;B;... on
# the kernel command line (each a comma-separated list of param=value).
VARIANTS=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^zvpool.prof_variants=//p' | tr ';' ' ')
VARIANTS=${VARIANTS:-fastpath=1}
# Raw: a memory-backed null_blk of 1 GiB (as nullb_zoned, not zoned).
NB=/sys/kernel/config/nullb
mkdir $NB/praw && echo 1024 >$NB/praw/size && echo 4096 >$NB/praw/blocksize &&
	echo 1 >$NB/praw/memory_backed && echo 1024 >$NB/praw/max_sectors && echo 1 >$NB/praw/power
R=/dev/praw
prof raw-randwrite "$R" randwrite 4 32
prof raw-randwrite-qd1 "$R" randwrite 1 1
prof raw-randread "$R" randread 4 32
echo 0 >$NB/praw/power
rmdir $NB/praw
# A pool of 2 GiB for a 600 MiB volume: no GC during the runs.
nullb_zoned $NB/pzone 2048 16 max_sectors=1024 zone_max_open=14 zone_max_active=28
Z=/dev/pzone
for v in $VARIANTS; do
	insmod "$KO" $(echo "$v" | tr ',' ' ')
	zvpoolctl pool create -f pp "$Z" >/dev/null && zvpoolctl volume create pp/v --size 600M >/dev/null
	V=$(zvpoolctl volume show -H -o device pp/v | cut -f2)
	dd if=/dev/zero of="$V" bs=1M count=600 oflag=direct status=none
	prof "zv-randwrite-$v" "$V" randwrite 4 32
	prof "zv-randwrite-qd1-$v" "$V" randwrite 1 1
	prof "zv-randread-$v" "$V" randread 4 32
	sed -n 's/^\(gc_runs\|write_amplification\|zones_reset\) /# status: &/p' /sys/kernel/config/zvpool/pp/status
	zvpoolctl pool stop pp >/dev/null
	rmmod zvpool
	blkzone reset "$Z"
done
ktap_test_skip "perf_profile" "a measurement, not a test: the profile is above"
ktap_finished
