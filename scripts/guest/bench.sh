#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash disable=SC2046 # busybox ash: `local` works; word splitting of fio arguments is intended
# The guest side of `make bench` (zvpool.run=bench): fio against every system
# of the comparison, in one boot. Results (fio JSON, fio logs, pool status
# snapshots, device geometry) are collected in $R and written as a tar archive
# to the results namespace `bres` after every system, which the host extracts
# (scripts/bench.sh). Progress lines go to the results port ($1).
# Configuration: /etc/zvpool/bench.env (written by scripts/bench.sh).
#
# Systems (names used in the results and the report):
#   raw-zns       bzns0, zonemode=zbd: sequential writes, reads
#   zvpool-zns    a zvpool pool on bzns0 (after raw-zns), one volume
#   dm-zoned      dmzadm --format bdmzc (regular, cache) + bzns1 (capacity == size)
#   dm-thin       thin-pool (metadata bmeta, data bconv0) + one thin volume
#   raw-conv      bconv0
#   raw-nullb     non-zoned memory-backed null_blk
#   zvpool-nullb  zvpool pool on a zoned memory-backed null_blk, one volume
#   zvpool-2nullb        zvpool pool on two zoned null_blk, one volume
#   zvpool-mirror-nullb  the same (a fresh pool), one mirrored volume (copies 2)
set -u
OUT=${1:-/dev/console}
. /etc/zvpool/bench.env
. /usr/share/zvpool/selftests/vm_devices.sh
export PATH=/usr/lib/zvbench:$PATH
FIO=/usr/lib/zvbench/fio
R=/tmp/bench
MIB=1048576
mkdir -p $R/fio $R/ow $R/status $R/logs
: >$R/runs.tsv
: >$R/systems.tsv
: >$R/devices.tsv
t_start=$(cut -d' ' -f1 /proc/uptime)

say() { echo "bench: $*" >$OUT; echo "bench: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# The spec of a bench namespace (name:nsid:...) and its /dev node.
spec_of() { for s in $ZV_BENCH_ZNS $ZV_BENCH_CONV; do [ "${s%%:*}" = "$1" ] && echo "$s"; done; }
ns_dev() { dev_for "$(spec_of "$1" | cut -d: -f2)"; }
bytes_of() { echo $(($(cat /sys/block/${1##*/}/size) * 512)); }
mib_of() { echo $(($(bytes_of "$1") / MIB)); }
dm_dev() {
	for d in /sys/block/dm-*; do
		[ "$(cat $d/dm/name 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return; }
	done
}
have() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }
want_wl() { have "$1" "$BENCH_WORKLOADS"; }

# Block device geometry, one line per device: name dev key=value...
geometry() { # NAME DEV
	local q=/sys/block/${2##*/}/queue cap=""
	if [ "$(cat $q/zoned)" != none ]; then
		cap=$(blkzone report -c 1 "$2" 2>/dev/null | sed -n 's/.*cap \(0x[0-9a-f]*\),.*/\1/p')
		[ -n "$cap" ] && cap=$(($cap * 512))
	fi
	printf '%s\t%s\tsize_bytes=%s zoned=%s zone_bytes=%s zone_cap_bytes=%s nr_zones=%s max_open=%s max_active=%s lbs=%s max_sectors_kb=%s scheduler=%s\n' \
		"$1" "$2" "$(bytes_of "$2")" "$(cat $q/zoned)" "$(($(cat $q/chunk_sectors) * 512))" "${cap:--}" \
		"$(cat $q/nr_zones 2>/dev/null || echo 0)" "$(cat $q/max_open_zones 2>/dev/null || echo 0)" \
		"$(cat $q/max_active_zones 2>/dev/null || echo 0)" "$(cat $q/logical_block_size)" \
		"$(cat $q/max_sectors_kb)" "$(sed 's/.*\[\(.*\)\].*/\1/' $q/scheduler 2>/dev/null)" >>$R/devices.tsv
}

# The results archive on the results namespace (rewritten after each system).
RESDEV=$(ns_dev bres)
save_results() {
	dmesg >$R/dmesg.txt 2>/dev/null
	{
		echo "t_end=$(uptime_s)"
		echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	} >$R/end.env
	tar -cf /tmp/results.tar -C $R . 2>/dev/null
	sz=$(stat -c %s /tmp/results.tar 2>/dev/null || wc -c </tmp/results.tar)
	if [ -n "$RESDEV" ] && [ "$sz" -lt "$(bytes_of "$RESDEV")" ]; then
		dd if=/tmp/results.tar of="$RESDEV" bs=1M conv=fsync 2>/dev/null
		sync
	else
		say "warning: results ($sz bytes) do not fit the results namespace $RESDEV"
	fi
	rm -f /tmp/results.tar
}

# CPU busy jiffies (all CPUs) from /proc/stat: busy idle.
cpu_now() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat; }

# run_fio SYSTEM WORKLOAD REP FIO-ARGS...: one fio run; JSON in $R/fio.
run_fio() {
	local sys=$1 wl=$2 rep=$3 j t0 t1 c0 c1 rc err summ
	shift 3
	mkdir -p $R/fio/$sys
	j=$R/fio/$sys/$wl.$rep.json
	t0=$(uptime_s)
	c0=$(cpu_now)
	$FIO --name="$wl" --output-format=json --output="$j" --direct=1 --ioengine=libaio \
		--group_reporting --lat_percentiles=1 --percentile_list=50:99:99.9 --randrepeat=0 \
		--norandommap "$@" >$R/fio/$sys/$wl.$rep.log 2>&1
	rc=$?
	c1=$(cpu_now)
	t1=$(uptime_s)
	set -- $c0 $c1
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$wl" "$rep" "$rc" "$t0" "$t1" $(($3 - $1)) $(($4 - $2)) >>$R/runs.tsv
	err=""
	[ $rc = 0 ] || err=" rc=$rc: $(grep -m1 -i 'err' $R/fio/$sys/$wl.$rep.log | cut -c1-120)"
	summ=$(awk -F: '/"iops"/ { gsub(/[ ,]/, "", $2); if ($2 + 0 > 0) { printf "%s%.0f", s, $2; s = "/" } }' "$j" 2>/dev/null)
	say "$sys $wl rep $rep: IOPS ${summ:-?} ($(awk "BEGIN { printf \"%.0f\", $t1 - $t0 }") s)$err"
	return $rc
}

# Common fio arguments of the workloads (size-limited ones carry a runtime cap).
TB="--time_based --runtime=$BENCH_RUNTIME --ramp_time=$BENCH_RAMP"
wl_args() { # WORKLOAD
	case $1 in
	seqwrite-128k-qd8) echo "--rw=write --bs=128k --iodepth=8 --numjobs=1 --size=${BENCH_WS_LARGE_MIB}M --runtime=$BENCH_SEQ_MAX" ;;
	seqread-128k-qd8) echo "--rw=read --bs=128k --iodepth=8 --numjobs=1 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	randwrite-4k-qd1-large) echo "--rw=randwrite --bs=4k --iodepth=1 --numjobs=1 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	randwrite-4k-qd1-small) echo "--rw=randwrite --bs=4k --iodepth=1 --numjobs=1 --size=${BENCH_WS_SMALL_MIB}M $TB" ;;
	randwrite-4k-4x32-large) echo "--rw=randwrite --bs=4k --iodepth=32 --numjobs=4 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	randwrite-4k-4x32-small) echo "--rw=randwrite --bs=4k --iodepth=32 --numjobs=4 --size=${BENCH_WS_SMALL_MIB}M $TB" ;;
	randread-4k-qd1-large) echo "--rw=randread --bs=4k --iodepth=1 --numjobs=1 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	randread-4k-qd1-small) echo "--rw=randread --bs=4k --iodepth=1 --numjobs=1 --size=${BENCH_WS_SMALL_MIB}M $TB" ;;
	randread-4k-4x32-large) echo "--rw=randread --bs=4k --iodepth=32 --numjobs=4 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	randread-4k-4x32-small) echo "--rw=randread --bs=4k --iodepth=32 --numjobs=4 --size=${BENCH_WS_SMALL_MIB}M $TB" ;;
	randrw70-4k-4x32-large) echo "--rw=randrw --rwmixread=70 --bs=4k --iodepth=32 --numjobs=4 --size=${BENCH_WS_LARGE_MIB}M $TB" ;;
	esac
}
# Which workloads a system can run: raw ZNS takes no random writes.
applies() { # SYSTEM WORKLOAD
	case "$1:$2" in
	raw-zns:seq* | raw-zns:randread*) return 0 ;;
	raw-zns:*) return 1 ;;
	*nullb:overwrite*) return 1 ;;
	zvpool-2nullb:randwrite-4k-4x32* | zvpool-mirror-nullb:randwrite-4k-4x32*) return 0 ;;
	zvpool-2nullb:randread-4k-4x32-small | zvpool-mirror-nullb:randread-4k-4x32-small) return 0 ;;
	zvpool-2nullb:* | zvpool-mirror-nullb:*) return 1 ;;
	*) return 0 ;;
	esac
}

pool_status() { # POOL FILE
	[ -n "$1" ] && cat /sys/kernel/config/zvpool/$1/status >"$2" 2>/dev/null
}

# Phase A: the standard workloads on DEV (written sequentially first).
# POOL: zvpool pool name (status snapshots) or empty; ZBD: "--zonemode=zbd" or empty.
phase_a() { # SYSTEM DEV POOL ZBD
	local sys=$1 dev=$2 pool=$3 zbd=$4 filled wl rep
	pool_status "$pool" $R/status/$sys.a.before.txt
	filled=0
	for wl in seqwrite-128k-qd8 seqread-128k-qd8 randread-4k-qd1-large randread-4k-qd1-small \
		randread-4k-4x32-large randread-4k-4x32-small randwrite-4k-qd1-large randwrite-4k-qd1-small \
		randwrite-4k-4x32-large randwrite-4k-4x32-small randrw70-4k-4x32-large; do
		want_wl $wl && applies $sys $wl || continue
		case $wl in
		seqwrite*) ;;
		*) if [ $filled = 0 ]; then
			[ -n "$zbd" ] && blkzone reset "$dev"
			run_fio $sys fill 1 --filename="$dev" $zbd --rw=write --bs=128k --iodepth=8 \
				--size=${BENCH_WS_LARGE_MIB}M --runtime=$BENCH_SEQ_MAX
			filled=1
		fi ;;
		esac
		rep=1
		while [ $rep -le $BENCH_REPS ]; do
			# Raw ZNS: a sequential write needs empty zones.
			case $wl in seqwrite*) [ -n "$zbd" ] && blkzone reset "$dev" ;; esac
			run_fio $sys $wl $rep --filename="$dev" $zbd $(wl_args $wl)
			case $wl in seqwrite*) filled=1 ;; esac
			rep=$((rep + 1))
		done
	done
	pool_status "$pool" $R/status/$sys.a.after.txt
}

# Phase B: sustained 4 KiB random overwrite (4 jobs x QD32) over BENCH_OW_FILL_PCT
# of the device's capacity, after filling that region sequentially. The reps
# are consecutive segments of one sustained run (no refill in between).
phase_b() { # SYSTEM DEV POOL REGION_MIB
	local sys=$1 dev=$2 pool=$3 region=$4 rep sampler
	want_wl overwrite-4k-4x32 && applies $sys overwrite-4k-4x32 || return 0
	mkdir -p $R/ow/$sys
	echo "region_mib=$region" >$R/ow/$sys/info.env
	pool_status "$pool" $R/status/$sys.b.before-fill.txt
	run_fio $sys ow-fill 1 --filename="$dev" --rw=write --bs=128k --iodepth=8 --size=${region}M \
		--runtime=$BENCH_OW_FILL_MAX
	rep=1
	while [ $rep -le $BENCH_REPS ]; do
		pool_status "$pool" $R/status/$sys.b.$rep.before.txt
		if [ -n "$pool" ]; then
			# GC activity over time: pool counters every 2 s.
			(while :; do
				echo "$(uptime_s) $(tr '\n' ' ' </sys/kernel/config/zvpool/$pool/status)"
				sleep 2
			done) >$R/ow/$sys/status.$rep.log 2>/dev/null &
			sampler=$!
		fi
		run_fio $sys overwrite-4k-4x32 $rep --filename="$dev" --rw=randwrite --bs=4k --iodepth=32 \
			--numjobs=4 --size=${region}M --time_based --runtime=$BENCH_OW_SECS \
			--write_iops_log=$R/ow/$sys/rep$rep --log_avg_msec=1000
		[ -n "$pool" ] && { kill $sampler; wait $sampler 2>/dev/null; }
		pool_status "$pool" $R/status/$sys.b.$rep.after.txt
		rep=$((rep + 1))
	done
}

describe() { # SYSTEM BASE DESCRIPTION
	printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>$R/systems.tsv
}
fail_setup() { # SYSTEM WHAT
	say "$1: setup failed: $2"
	printf '%s\tsetup\t0\t1\t0\t0\t0\t0\n' "$1" >>$R/runs.tsv
	echo "$2" >$R/logs/$1.setup-error.txt
}
zvmod() { lsmod | grep -q '^zvpool ' || insmod /lib/modules/zvpool/zvpool.ko; }
zv_volume() { # POOL VOL SIZE_MIB -> device
	zvpoolctl volume create "$1/$2" --size "${3}M" >>$R/logs/zvpoolctl.log 2>&1 &&
		zvpoolctl volume show -H -o device "$1/$2" | cut -f2
}
zv_capacity_mib() { echo $(($(sed -n 's/^capacity_bytes //p' /sys/kernel/config/zvpool/$1/status) / MIB)); }
zv_stop() { zvpoolctl pool stop "$1" >>$R/logs/zvpoolctl.log 2>&1; }
# Region of the overwrite phase: BENCH_OW_FILL_PCT % of CAP_MIB, 1 MiB aligned.
ow_region() { echo $(($1 * BENCH_OW_FILL_PCT / 100)); }

nullb_create() { # NAME ZONED SIZE_MIB -> device
	lsmod | grep -q '^null_blk ' || insmod /lib/modules/null_blk.ko nr_devices=0 || return 1
	d=/sys/kernel/config/nullb/$1
	mkdir $d || return 1
	echo "$3" >$d/size && echo 4096 >$d/blocksize && echo 1 >$d/memory_backed &&
		echo 1024 >$d/max_sectors || return 1
	if [ "$2" = 1 ]; then
		echo 1 >$d/zoned && echo $BENCH_NULLB_ZONE_MIB >$d/zone_size &&
			echo 14 >$d/zone_max_open && echo 28 >$d/zone_max_active || return 1
	fi
	echo 1 >$d/power || return 1
	if [ -b /dev/$1 ]; then echo /dev/$1; else echo /dev/nullb$(cat $d/index); fi
}
nullb_remove() { echo 0 >/sys/kernel/config/nullb/$1/power; rmdir /sys/kernel/config/nullb/$1; }

# --- the systems -------------------------------------------------------------

sys_raw_zns() {
	Z=$(ns_dev bzns0)
	describe raw-zns - "raw ZNS namespace bzns0 ($Z), fio zonemode=zbd"
	geometry bzns0 "$Z"
	phase_a raw-zns "$Z" "" --zonemode=zbd
	blkzone reset "$Z"
}

sys_zvpool_zns() {
	Z=$(ns_dev bzns0)
	describe zvpool-zns raw-zns "zvpool volume on a pool over bzns0 ($Z)"
	zvmod || { fail_setup zvpool-zns "insmod zvpool.ko"; return; }
	if want_phase_a zvpool-zns; then
		blkzone reset "$Z"
		zvpoolctl pool create -f bzp "$Z" >>$R/logs/zvpoolctl.log 2>&1 || { fail_setup zvpool-zns "pool create"; return; }
		V=$(zv_volume bzp v $BENCH_WS_LARGE_MIB) && [ -b "$V" ] || { fail_setup zvpool-zns "volume create"; zv_stop bzp; return; }
		geometry zvpool-zns "$V"
		phase_a zvpool-zns "$V" bzp ""
		cat /sys/kernel/config/zvpool/bzp/members >$R/status/zvpool-zns.members.txt 2>/dev/null
		zv_stop bzp
	fi
	if want_wl overwrite-4k-4x32; then
		blkzone reset "$Z"
		zvpoolctl pool create -f bzp "$Z" >>$R/logs/zvpoolctl.log 2>&1 || { fail_setup zvpool-zns "pool create (overwrite)"; return; }
		region=$(ow_region "$(zv_capacity_mib bzp)")
		V=$(zv_volume bzp ow $region) && [ -b "$V" ] || { fail_setup zvpool-zns "volume create (overwrite)"; zv_stop bzp; return; }
		phase_b zvpool-zns "$V" bzp $region
		zv_stop bzp
	fi
	blkzone reset "$Z"
}

DMZ_NAME=bdmz
dmz_start() {
	C=$(ns_dev bdmzc) Z=$(ns_dev bzns1)
	blkzone reset "$Z"
	dd if=/dev/zero of="$C" bs=1M count=16 conv=fsync 2>/dev/null
	dmzadm --format "$C" "$Z" --force --label=$DMZ_NAME >$R/logs/dmzadm-format.log 2>&1 </dev/null || return 1
	dmzadm --start "$C" "$Z" --verbose >$R/logs/dmzadm-start.log 2>&1 </dev/null || return 1
	D=$(dm_dev $DMZ_NAME)
	[ -b "$D" ]
}
dmz_stop() { dmsetup remove $DMZ_NAME >/dev/null 2>&1 || dmzadm --stop "$(ns_dev bdmzc)" "$(ns_dev bzns1)" >/dev/null 2>&1; }
sys_dm_zoned() {
	describe dm-zoned raw-conv "dm-zoned on bzns1 (ZNS with zone capacity == zone size: dm-zoned refuses capacity < size) with bdmzc as its regular (cache) device"
	geometry bzns1 "$(ns_dev bzns1)"
	geometry bdmzc "$(ns_dev bdmzc)"
	if want_phase_a dm-zoned; then
		dmz_start || { fail_setup dm-zoned "dmzadm (see logs/dmzadm-*.log)"; dmz_stop; return; }
		geometry dm-zoned "$D"
		phase_a dm-zoned "$D" "" ""
		dmz_stop
	fi
	if want_wl overwrite-4k-4x32; then
		dmz_start || { fail_setup dm-zoned "dmzadm (overwrite)"; dmz_stop; return; }
		phase_b dm-zoned "$D" "" "$(ow_region "$(mib_of "$D")")"
		dmz_stop
	fi
	blkzone reset "$(ns_dev bzns1)"
}

thin_start() { # THIN_MIB
	M=$(ns_dev bmeta) C=$(ns_dev bconv0)
	dd if=/dev/zero of="$M" bs=1M count=4 conv=fsync 2>/dev/null
	# 64 KiB blocks, new blocks zeroed (the default), no low-water event.
	dmsetup create bthinpool --table "0 $(cat /sys/block/${C##*/}/size) thin-pool $M $C 128 0" >>$R/logs/dmsetup.log 2>&1 || return 1
	P=$(dm_dev bthinpool)
	dmsetup message bthinpool 0 "create_thin 0" >>$R/logs/dmsetup.log 2>&1 || return 1
	dmsetup create bthin --table "0 $(($1 * 2048)) thin $P 0" >>$R/logs/dmsetup.log 2>&1 || return 1
	D=$(dm_dev bthin)
	[ -b "$D" ]
}
thin_stop() { dmsetup remove bthin >/dev/null 2>&1; dmsetup remove bthinpool >/dev/null 2>&1; }
sys_dm_thin() {
	describe dm-thin raw-conv "dm-thin: thin-pool (metadata bmeta, data bconv0, 64 KiB blocks) and one thin volume; blocks provisioned by the sequential write"
	if want_phase_a dm-thin; then
		thin_start $BENCH_WS_LARGE_MIB || { fail_setup dm-thin "dmsetup (see logs/dmsetup.log)"; thin_stop; return; }
		geometry dm-thin "$D"
		phase_a dm-thin "$D" "" ""
		thin_stop
	fi
	if want_wl overwrite-4k-4x32; then
		region=$(ow_region "$(mib_of "$(ns_dev bconv0)")")
		thin_start $region || { fail_setup dm-thin "dmsetup (overwrite)"; thin_stop; return; }
		phase_b dm-thin "$D" "" $region
		thin_stop
	fi
}

sys_raw_conv() {
	C=$(ns_dev bconv0)
	describe raw-conv - "raw conventional namespace bconv0 ($C)"
	geometry bconv0 "$C"
	want_phase_a raw-conv && phase_a raw-conv "$C" "" ""
	phase_b raw-conv "$C" "" "$(ow_region "$(mib_of "$C")")"
}

sys_raw_nullb() {
	describe raw-nullb - "non-zoned memory-backed null_blk, ${BENCH_NULLB_MIB} MiB, max_sectors 1024"
	N=$(nullb_create bnraw 0 $BENCH_NULLB_MIB) && [ -b "$N" ] || { fail_setup raw-nullb "null_blk"; return; }
	geometry raw-nullb "$N"
	phase_a raw-nullb "$N" "" ""
	nullb_remove bnraw
}

sys_zvpool_nullb() {
	describe zvpool-nullb raw-nullb "zvpool volume on a pool over a zoned memory-backed null_blk (${BENCH_NULLB_MIB} MiB, ${BENCH_NULLB_ZONE_MIB} MiB zones, max_sectors 1024)"
	zvmod || { fail_setup zvpool-nullb "insmod zvpool.ko"; return; }
	N=$(nullb_create bnzone 1 $BENCH_NULLB_MIB) && [ -b "$N" ] || { fail_setup zvpool-nullb "null_blk"; return; }
	geometry nullb-zoned "$N"
	if zvpoolctl pool create -f bnp "$N" >>$R/logs/zvpoolctl.log 2>&1; then
		if V=$(zv_volume bnp v $BENCH_WS_LARGE_MIB) && [ -b "$V" ]; then
			geometry zvpool-nullb "$V"
			phase_a zvpool-nullb "$V" bnp ""
		else
			fail_setup zvpool-nullb "volume create"
		fi
		zv_stop bnp
	else
		fail_setup zvpool-nullb "pool create"
	fi
	nullb_remove bnzone
}

# A pool over two zoned null_blk devices (BENCH_NULLB_MIB each), one
# volume of COPIES copies: the cost of a mirrored volume (both members
# write every block) against an unmirrored one on the same kind of pool.
sys_zvpool_two_nullb() { # SYSTEM COPIES
	local sys=$1 copies=$2 N1 N2
	if [ "$copies" = 2 ]; then
		describe $sys zvpool-2nullb "zvpool mirrored volume (copies 2) on a pool over two zoned memory-backed null_blk (${BENCH_NULLB_MIB} MiB each, ${BENCH_NULLB_ZONE_MIB} MiB zones)"
	else
		describe $sys raw-nullb "zvpool volume on a pool over two zoned memory-backed null_blk (${BENCH_NULLB_MIB} MiB each, ${BENCH_NULLB_ZONE_MIB} MiB zones)"
	fi
	want_phase_a $sys || return 0
	zvmod || { fail_setup $sys "insmod zvpool.ko"; return; }
	N1=$(nullb_create bnm1 1 $BENCH_NULLB_MIB) && [ -b "$N1" ] || { fail_setup $sys "null_blk"; return; }
	N2=$(nullb_create bnm2 1 $BENCH_NULLB_MIB) && [ -b "$N2" ] || { fail_setup $sys "null_blk"; nullb_remove bnm1; return; }
	if zvpoolctl pool create -f bnm "$N1" "$N2" >>$R/logs/zvpoolctl.log 2>&1; then
		if zvpoolctl volume create bnm/v --size "${BENCH_WS_LARGE_MIB}M" --copies $copies >>$R/logs/zvpoolctl.log 2>&1 &&
			V=$(zvpoolctl volume show -H -o device bnm/v | cut -f2) && [ -b "$V" ]; then
			geometry $sys "$V"
			phase_a $sys "$V" bnm ""
		else
			fail_setup $sys "volume create"
		fi
		zv_stop bnm
	else
		fail_setup $sys "pool create"
	fi
	nullb_remove bnm1
	nullb_remove bnm2
}

# Phase A runs when any standard workload is selected.
want_phase_a() { local w; for w in $BENCH_WORKLOADS; do [ "$w" != overwrite-4k-4x32 ] && applies $1 $w && return 0; done; return 1; }

# --- main --------------------------------------------------------------------
{
	echo "mode=$BENCH_MODE"
	echo "reps=$BENCH_REPS"
	echo "runtime_s=$BENCH_RUNTIME"
	echo "ramp_s=$BENCH_RAMP"
	echo "ws_large_mib=$BENCH_WS_LARGE_MIB"
	echo "ws_small_mib=$BENCH_WS_SMALL_MIB"
	echo "ow_secs=$BENCH_OW_SECS"
	echo "ow_fill_pct=$BENCH_OW_FILL_PCT"
	echo "nullb_mib=$BENCH_NULLB_MIB"
	echo "systems=$BENCH_SYSTEMS"
	echo "workloads=$BENCH_WORKLOADS"
	echo "kernel=$(uname -r)"
	echo "kernel_version=$(cat /proc/version)"
	echo "guest_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "guest_cpus=$(grep -c '^processor' /proc/cpuinfo)"
	echo "guest_mem_kib=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
	echo "fio=$($FIO --version)"
	echo "clocksource_start=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "t_start=$t_start"
	sed 's/^/tool=/' /usr/lib/zvbench/VERSIONS
	echo "zvpool_features=$(insmod /lib/modules/zvpool/zvpool.ko 2>/dev/null; tr '\n' ' ' </sys/kernel/config/zvpool/features 2>/dev/null)"
} >$R/meta.env
say "start: mode $BENCH_MODE, reps $BENCH_REPS, systems: $BENCH_SYSTEMS"
[ -n "$RESDEV" ] || say "warning: no results namespace (bres); results stay in the guest"
for s in $BENCH_SYSTEMS; do
	say "== $s (t+$(awk "BEGIN { printf \"%.0f\", $(uptime_s) - $t_start }")s)"
	case $s in
	raw-zns) sys_raw_zns ;;
	zvpool-zns) sys_zvpool_zns ;;
	dm-zoned) sys_dm_zoned ;;
	dm-thin) sys_dm_thin ;;
	raw-conv) sys_raw_conv ;;
	raw-nullb) sys_raw_nullb ;;
	zvpool-nullb) sys_zvpool_nullb ;;
	zvpool-2nullb) sys_zvpool_two_nullb zvpool-2nullb 1 ;;
	zvpool-mirror-nullb) sys_zvpool_two_nullb zvpool-mirror-nullb 2 ;;
	*) say "unknown system $s" ;;
	esac
	save_results
done
lsmod | grep -q '^zvpool ' && rmmod zvpool
save_results
say "done in $(awk "BEGIN { printf \"%.0f\", $(uptime_s) - $t_start }") s"
exit 0
