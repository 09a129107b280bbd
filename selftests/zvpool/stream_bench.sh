#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not a test (not in TEST_PROGS): the rates of snapshot streams, same
# boot, on pools over zoned memory-backed null_blk devices (A: the
# source, B: the receiving side; 2 GiB, 16 MiB zones each). Nothing is
# asserted; the figures are printed as KTAP diagnostics:
# - the member's sequential rate: fio 1 MiB writes (QD8, zonemode=zbd)
#   and reads of 512 MiB on A before the pool is made (zones reset after);
# - snapshot send (full) of 256 MiB of data in a 1 GiB volume, to
#   /dev/null and to a file in /tmp, and snapshot receive of that file
#   into the pool on B: MiB/s of data (the stream's size over the time);
# - incremental send time with 1 % of a volume changed, 1 GiB vs 64 GiB:
#   the base snapshot holds 1 % (64 KiB every 6400 KiB, fio), the change
#   is another 1 % (the same pattern shifted by 3200 KiB); the time of
#   the kernel's list of what differs alone (the control device's diff)
#   and of the whole send to /dev/null (and of binding and enabling the
#   snapshot's device, then disabling and unbinding it, as send does),
#   and the stream's size; also the
#   64 GiB volume with only 10 MiB changed (as much as the 1 GiB's 1 %).
# Needs a guest with 4 GiB (the 64 GiB volume holds 1.25 GiB of data):
#   ZVPOOL_VM_MEM=4096 scripts/vm.sh ... --mode check:stream_bench.sh
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NBA=/sys/kernel/config/nullb/zvsba
NBB=/sys/kernel/config/nullb/zvsbb
W=/tmp/zvsb
MIB=1048576
ktap_print_header
ktap_set_plan 1
for x in zvpoolctl fio blkzone; do
	command -v $x >/dev/null || { ktap_test_skip "stream rates" "needs $x"; ktap_finished; }
done
[ -f "$KO" ] && [ -f /lib/modules/null_blk.ko ] || { ktap_test_skip "stream rates" "needs zvpool.ko and null_blk.ko"; ktap_finished; }
rm -rf $W
mkdir -p $W
nullb_zoned $NBA 2048 16 && nullb_zoned $NBB 2048 16 || { ktap_test_fail "two zoned null_blk devices"; ktap_finished; }
A=/dev/${NBA##*/}
B=/dev/${NBB##*/}

now() { cut -d' ' -f1 /proc/uptime; }
# secs T0 T1: T1 - T0 (s, 2 decimals).
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# rate BYTES SECS: MiB/s.
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) print "-"; else printf "%.1f", n / 1048576 / s }'; }
# fio_mibs DEV ARGS...: MiB/s of one fio run (read + write).
fio_mibs() {
	_d=$1
	shift
	fio --output-format=terse --terse-version=3 --name=b --filename="$_d" --direct=1 --ioengine=libaio \
		--zonemode=zbd --bs=1M --iodepth=8 --size=512M "$@" 2>/dev/null |
		awk -F';' '{ printf "%.1f", ($7 + $48) / 1024 }'
}
# timed OUT CMD...: runs CMD with stdout to OUT; TIME is its time (s).
timed() {
	_out=$1
	shift
	_t0=$(now)
	"$@" >"$_out" 2>$W/err || { sed 's/^/# /' $W/err; TIME=-; return 1; }
	TIME=$(secs "$_t0" "$(now)")
}
fsize() { stat -c %s "$1"; }
ctl() { { printf '%s' "$1" >&3 && cat <&3; } 3<>/dev/zvpool-control; }

# --- the member's sequential rate ----------------------------------------------------------
SEQ_W=$(fio_mibs $A --rw=write)
SEQ_R=$(fio_mibs $A --rw=read)
blkzone reset $A
ktap_print_msg "member (zoned null_blk, memory-backed): sequential 1 MiB QD8 write $SEQ_W MiB/s, read $SEQ_R MiB/s"

insmod "$KO" || { ktap_test_fail "insmod"; ktap_finished; }
zvpoolctl pool create -f pa $A >/dev/null && zvpoolctl pool create -f pb $B >/dev/null ||
	{ ktap_test_fail "pools"; ktap_finished; }

# --- full send and receive -----------------------------------------------------------------
zvpoolctl volume create --size 1G pa/f >/dev/null
F=$(zvpoolctl volume show -H -o device pa/f | cut -f2)
fio --name=fill --filename="$F" --rw=write --bs=1M --iodepth=8 --ioengine=libaio --direct=1 --size=256M >/dev/null 2>&1
zvpoolctl snapshot create pa/f@s1 >/dev/null
DATA=$((256 * MIB))
timed /dev/null zvpoolctl snapshot send -q pa/f@s1
ktap_print_msg "full send of 256 MiB (1 GiB volume) to /dev/null: $TIME s, $(rate $DATA "$TIME") MiB/s"
timed $W/full.zvs zvpoolctl snapshot send -q pa/f@s1
SZ=$(fsize $W/full.zvs)
ktap_print_msg "full send to a file in /tmp: $TIME s, $(rate $DATA "$TIME") MiB/s; stream $SZ bytes"
_t0=$(now)
zvpoolctl snapshot receive -q pb/r <$W/full.zvs >/dev/null 2>$W/err || sed 's/^/# /' $W/err
TIME=$(secs "$_t0" "$(now)")
ktap_print_msg "receive of that stream into pool pb: $TIME s, $(rate $DATA "$TIME") MiB/s"
rm -f $W/full.zvs
zvpoolctl snapshot delete pb/r@s1 >/dev/null
zvpoolctl volume delete pb/r >/dev/null
zvpoolctl snapshot delete pa/f@s1 >/dev/null
zvpoolctl volume delete pa/f >/dev/null

# --- incremental: 1 % changed of 1 GiB and of 64 GiB ---------------------------------------
# spread DEV STRIDE_KIB OFFSET_KIB N: N writes of 64 KiB, STRIDE_KIB
# apart from OFFSET_KIB on (fio's sequential writes with holes; a
# number of I/Os, else fio wraps around and goes on until it wrote SIZE).
spread() {
	fio --name=s --filename="$1" --rw=write:$(($2 - 64))k --bs=64k --iodepth=8 --ioengine=libaio --direct=1 \
		--offset="$3k" --number_ios="$4" >/dev/null 2>$W/err || sed 's/^/# fio: /' $W/err
}
# incr NAME SIZE_MIB CHANGE: volume pa/NAME; base: 64 KiB every 6400 KiB
# (1 %); snapshot s1; the change (CHANGE: "1%" the same pattern shifted
# by 3200 KiB, or "10M": 160 x 64 KiB spread over the volume, half a
# stride off the base's); snapshot s2; the diff's and the send's time.
incr() {
	zvpoolctl volume create --size "$2M" pa/$1 >/dev/null
	_d=$(zvpoolctl volume show -H -o device pa/$1 | cut -f2)
	_kib=$(($2 * 1024))
	spread "$_d" 6400 0 $((_kib / 6400))
	zvpoolctl snapshot create pa/$1@s1 >/dev/null
	if [ "$3" = 1% ]; then
		spread "$_d" 6400 3200 $((_kib / 6400))
	else
		_st=$((_kib / 160 / 6400 * 6400))
		spread "$_d" $_st 3200 160
	fi
	zvpoolctl snapshot create pa/$1@s2 >/dev/null
	_t0=$(now)
	ctl "diff pa $1@s2 $1@s1" >$W/diff 2>/dev/null
	_tl=$(secs "$_t0" "$(now)")
	_mapped=$(awk 'NR > 1 && $1 == "map" { n += $3 } END { print n + 0 }' $W/diff)
	# What send does besides the diff and the data: the snapshot's device
	# bound and enabled, then disabled and unbound (configfs).
	_o=/sys/kernel/config/zvpool/pa/$1@s2
	_t0=$(now)
	mkdir $_o && echo 1 >$_o/enable && echo 0 >$_o/enable && rmdir $_o
	_tb=$(secs "$_t0" "$(now)")
	timed $W/inc.zvs zvpoolctl snapshot send -q -i $1@s1 pa/$1@s2
	ktap_print_msg "incremental, $3 changed of $(($2 / 1024)) GiB: kernel diff $_tl s ($(($(wc -l <$W/diff) - 1)) extents, $((_mapped / MIB)) MiB mapped), snapshot device up and down $_tb s, send $TIME s, $(rate "$_mapped" "$TIME") MiB/s, stream $(fsize $W/inc.zvs) bytes"
	rm -f $W/inc.zvs $W/diff
	zvpoolctl snapshot delete pa/$1@s2 >/dev/null
	zvpoolctl snapshot delete pa/$1@s1 >/dev/null
	zvpoolctl volume delete pa/$1 >/dev/null
}
incr i1 1024 1%
incr i64 65536 1%
incr j64 65536 10M

ktap_print_msg "pool pa: $(grep -E '^(gc_runs|write_amplification) ' /sys/kernel/config/zvpool/pa/status | tr '\n' ' ')"
zvpoolctl pool stop pa >/dev/null
zvpoolctl pool stop pb >/dev/null
rmmod zvpool
echo 0 >$NBA/power && rmdir $NBA
echo 0 >$NBB/power && rmdir $NBB
rm -rf $W
ktap_test_pass "measured (numbers above)"
ktap_finished
