#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Per-volume I/O limits (issue 20): the configfs attributes riops, wiops,
# rbps and wbps of a volume, measured with fio on a pool over a
# memory-backed zoned null_blk: IOPS and bandwidth within 10 % of the
# limit, a limit changed online during a run, another volume of the same
# pool unlimited next to a limited one, reads and writes limited
# separately, invalid values refused, zvpoolctl volume set/show, and a
# clean kernel log.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvqos
CFS=/sys/kernel/config/zvpool
SECS=${QOS_SECONDS:-6}
ktap_print_header
for tool in fio zvpoolctl; do
	if ! command -v $tool >/dev/null 2>&1; then
		ktap_set_plan 1
		ktap_test_skip "qos" "$tool is not installed"
		ktap_finished
		exit 0
	fi
done
ktap_set_plan 25
dmesg_mark
MARK0=$DMESG_MARK

nullb_zoned $NB 1024 16 || ktap_print_msg "cannot make the null_blk device"
insmod "$KO"
quiet zvpoolctl pool create -f qp /dev/zvqos &&
	quiet zvpoolctl volume create qp/a --size 64M &&
	quiet zvpoolctl volume create qp/b --size 64M
A=$(zvpoolctl volume show -H -o device qp/a | cut -f2)
B=$(zvpoolctl volume show -H -o device qp/b | cut -f2)
VA=$CFS/qp/a
VB=$CFS/qp/b
# Mapped data to read (unmapped blocks read as zeroes without lower I/O).
dd if=/dev/urandom of="$A" bs=1M count=64 oflag=direct status=none
dd if=/dev/urandom of="$B" bs=1M count=64 oflag=direct status=none

# rate DEV RW BS [SECS]: IOPS (BS=4k...) or KiB/s of a fio run at QD8,
# after a one-second ramp (the burst allowance is not measured).
# RW: randread or randwrite. Prints "iops kib_per_s".
rate() {
	fio --output-format=terse --terse-version=3 --name=q --filename="$1" --direct=1 \
		--ioengine=libaio --rw="$2" --bs="$3" --iodepth=8 --size=64M --time_based \
		--ramp_time=1 --runtime="${4:-$SECS}" --randrepeat=0 --norandommap 2>/dev/null |
		awk -F';' -v rw="$2" '{ if (rw == "randread") print $8, $7; else print $49, $48 }'
}
# within GOT WANT PCT: |GOT - WANT| <= PCT % of WANT.
within() {
	awk -v g="$1" -v w="$2" -v p="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d * 100 <= w * p) }'
}
# check_rate NAME GOT WANT: the case passes when GOT is within 10 % of WANT.
check_rate() {
	ktap_print_msg "$1: measured $2, limit $3"
	ktap_test_result "$1" within "$2" "$3" 10
}
delayed() { sed -n 's/^qos_delayed //p' "$1/usage"; }

# Unlimited first: what the VM can do (a limit must be well below it to
# be measured at all).
base_r=$(rate "$A" randread 4k | cut -d' ' -f1)
base_w=$(rate "$A" randwrite 4k | cut -d' ' -f1)
ktap_print_msg "unlimited: randread ${base_r} IOPS, randwrite ${base_w} IOPS (4 KiB, QD8)"
ktap_test_result "defaults: every limit 0 (unlimited), no request delayed" \
	sh -c "[ \"\$(cat $VA/riops $VA/wiops $VA/rbps $VA/wbps | tr '\n' ' ')\" = '0 0 0 0 ' ] && [ $(delayed $VA) = 0 ]"
if [ -e /proc/lockdep ]; then
	# A debug kernel (lockdep, KASAN) runs at a few hundred IOPS: the
	# limits are still measured, the headroom cannot be.
	ktap_test_skip "the VM runs well above the limits tested" "debug kernel: randread $base_r IOPS"
else
	ktap_test_result "the VM runs well above the limits tested (randread > 700 IOPS, randwrite > 300)" \
		awk -v r="$base_r" -v w="$base_w" 'BEGIN { exit !(r > 700 && w > 300) }'
fi

# Read IOPS.
for n in 200 500; do
	echo $n >"$VA/riops"
	check_rate "riops=$n: randread 4 KiB QD8 within 10 %" "$(rate "$A" randread 4k | cut -d' ' -f1)" $n
done
ktap_test_result "limited requests were delayed (usage qos_delayed $(delayed $VA))" [ "$(delayed $VA)" -gt 0 ]

# Reads and writes are limited separately: riops=200 leaves writes alone,
# wiops=200 limits writes and leaves reads alone.
echo 200 >"$VA/riops"
w=$(rate "$A" randwrite 4k | cut -d' ' -f1)
ktap_print_msg "riops=200: randwrite $w IOPS (unlimited $base_w)"
ktap_test_result "a read limit does not limit writes" awk -v g="$w" 'BEGIN { exit !(g > 300) }'
echo 0 >"$VA/riops"
echo 200 >"$VA/wiops"
check_rate "wiops=200: randwrite 4 KiB QD8 within 10 %" "$(rate "$A" randwrite 4k | cut -d' ' -f1)" 200
d0=$(delayed $VA)
r=$(rate "$A" randread 4k | cut -d' ' -f1)
ktap_print_msg "wiops=200: randread $r IOPS (unlimited $base_r)"
ktap_test_result "a write limit does not limit reads (> 1.5 x 200 IOPS, none delayed)" \
	sh -c "awk -v g=$r 'BEGIN { exit !(g > 300) }' && [ $(delayed $VA) = $d0 ]"
echo 0 >"$VA/wiops"

# Bandwidth: 2 MiB/s of 64 KiB reads, 1 MiB/s of 64 KiB writes (KiB/s
# from fio).
echo 2097152 >"$VA/rbps"
check_rate "rbps=2 MiB/s: randread 64 KiB within 10 % (KiB/s)" "$(rate "$A" randread 64k | cut -d' ' -f2)" 2048
echo 0 >"$VA/rbps"
echo 1048576 >"$VA/wbps"
check_rate "wbps=1 MiB/s: randwrite 64 KiB within 10 % (KiB/s)" "$(rate "$A" randwrite 64k | cut -d' ' -f2)" 1024
echo 0 >"$VA/wbps"

# A request larger than the burst still passes: rbps=16384 has a burst
# of 1.6 KiB; two 64 KiB reads (4 s each at the limit): the first passes
# at once (the bucket is full), the second once the first is paid for.
echo 16384 >"$VA/rbps"
t0=$(cut -d' ' -f1 /proc/uptime)
dd if="$A" of=/dev/null bs=64k count=2 iflag=direct status=none
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo 0 >"$VA/rbps"
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
ktap_test_result "rbps=16384: two 64 KiB reads, each larger than the burst, pass in 3-8 s (exit $rc, $took s)" \
	awk -v rc="$rc" -v t="$took" 'BEGIN { exit !(rc == 0 && t >= 3 && t <= 8) }'

# Online: riops 200, then 500 while the same fio run goes on. The rate
# of each phase is measured from the disk's completed reads
# (/sys/block/zvpoolN/stat) over a window inside it.
reads_done() { awk '{ print $1 }' "/sys/block/${A##*/}/stat"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
window() { awk -v c1="$1" -v t1="$2" -v c2="$3" -v t2="$4" 'BEGIN { printf "%d", (c2 - c1) / (t2 - t1) }'; }
echo 200 >"$VA/riops"
rate "$A" randread 4k 12 >/tmp/qos.online &
sleep 2
c1=$(reads_done) t1=$(uptime_s)
sleep 4
c2=$(reads_done) t2=$(uptime_s)
echo 500 >"$VA/riops"
sleep 1
c3=$(reads_done) t3=$(uptime_s)
sleep 4
c4=$(reads_done) t4=$(uptime_s)
wait
check_rate "online, same fio run: riops=200 phase within 10 %" "$(window $c1 $t1 $c2 $t2)" 200
check_rate "online, same fio run: after riops 200 -> 500, within 10 % of 500" "$(window $c3 $t3 $c4 $t4)" 500
ktap_print_msg "the whole run averaged $(cut -d' ' -f1 /tmp/qos.online) IOPS"

# Isolation: A limited to 200 read IOPS, B unlimited, both at once.
echo 200 >"$VA/riops"
d0=$(delayed $VB)
rate "$A" randread 4k >/tmp/qos.a &
rb=$(rate "$B" randread 4k | cut -d' ' -f1)
wait
ra=$(cut -d' ' -f1 /tmp/qos.a)
ktap_print_msg "together: A (riops=200) $ra IOPS, B (unlimited) $rb IOPS; unlimited randread measured alone on A at the start: $base_r IOPS"
check_rate "A limited to 200 while B runs next to it" "$ra" 200
ktap_test_result "B unlimited is not slowed to A's rate (B > 1.5 x 200 IOPS, none of its requests delayed)" \
	sh -c "awk -v b=$rb 'BEGIN { exit !(b > 300) }' && [ $(delayed $VB) = $d0 ]"
echo 0 >"$VA/riops"

# Invalid values: EINVAL and one log line each; the limit is unchanged.
echo 300 >"$VA/wbps"
refused "riops: a word is refused" abc "$VA/riops" "invalid argument" "riops is not a decimal number"
refused "wbps: a negative number is refused" -5 "$VA/wbps" "invalid argument" "wbps is not a decimal number"
refused "rbps: more than 64 bits is refused" 18446744073709551616 "$VA/rbps" "invalid argument" "rbps is not a decimal number"
ktap_test_result "the limits are unchanged after refused writes" \
	sh -c "[ \"\$(cat $VA/riops $VA/wbps $VA/rbps | tr '\n' ' ')\" = '0 300 0 ' ]"
echo 0 >"$VA/wbps"

# zvpoolctl: set, show, refuse, and the pool cache across stop/assemble.
quiet zvpoolctl volume set qp/a riops=300 rbps=4M
rc=$?
ktap_test_result "zvpoolctl volume set qp/a riops=300 rbps=4M (exit $rc)" \
	sh -c "[ $rc = 0 ] && [ \"\$(cat $VA/riops $VA/rbps | tr '\n' ' ')\" = '300 4194304 ' ]"
got=$(zvpoolctl volume show -Hp -o riops,wiops,rbps,wbps qp/a | cut -f2 | tr '\n' ' ')
ktap_print_msg "volume show: $got"
ktap_test_result "zvpoolctl volume show has the limits" [ "$got" = "300 0 4194304 0 " ]
zvpoolctl volume set qp/a riops=-1 >/dev/null 2>&1
rc=$?
ktap_test_result "zvpoolctl volume set of an invalid value: usage error (exit $rc), nothing changed" \
	sh -c "[ $rc = 2 ] && [ \"\$(cat $VA/riops)\" = 300 ]"
quiet zvpoolctl pool stop qp && quiet zvpoolctl pool assemble qp /dev/zvqos
ktap_test_result "after pool stop and assemble the cached limits are set again ($(cat $VA/riops 2>&1) $(cat $VA/rbps 2>&1))" \
	sh -c "[ \"\$(cat $VA/riops $VA/rbps $VB/riops | tr '\n' ' ')\" = '300 4194304 0 ' ]"
quiet zvpoolctl volume set qp/a riops=0 rbps=0

ktap_test_result "rmdir volumes and pool, rmmod" sh -c "zvpoolctl pool stop qp >/dev/null && rmmod zvpool"
# The null_blk device goes too (a later test unloads null_blk).
echo 0 >$NB/power && rmdir $NB
DMESG_MARK=$MARK0
dmesg_clean_since_mark "no WARN/oops in the kernel log"
ktap_finished
