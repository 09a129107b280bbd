#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Lower-device errors while GC runs (the engine issue's error paths): a pool
# on a memory-backed zoned null_blk is filled and half overwritten so that GC
# works, then null_blk bad blocks make
# 1. every new write fail (the unwritten part of every zone): GC copies fail
#    to write — this used to deadlock (the failed GC write was logged under
#    the engine lock the GC batch held);
# 2. the written data of the zones fail to read: GC reads fail — GC must skip
#    such a victim (and say so) instead of burning destination zones on it.
# Meanwhile the pool must keep answering (status, reads of good blocks),
# only affected requests fail, and after the bad blocks are gone everything
# flushed before reads back, new writes work and the pool stops and
# reassembles cleanly. A hang fails the test (per-program timeout, hung-task
# reports).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvge
MIB=1048576
ktap_print_header
for t in zvpoolctl blkzone md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "GC errors" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "GC errors" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 11
dmesg_mark
DMESG_START=$DMESG_MARK

# 20 zones of 8 MiB; zones 0-3 hold metadata.
nullb_zoned $NB 160 8
D=/dev/${NB##*/}
insmod "$KO"
ktap_test_result "pool and a 96 MiB volume on a zoned null_blk" \
	quiet sh -c "zvpoolctl pool create -f ge $D && zvpoolctl volume create ge/v --size 96M"
V=$(zvpoolctl volume show -H -o device ge/v | cut -f2)
ST=/sys/kernel/config/zvpool/ge/status
stat_of() { sed -n "s/^$1 //p" $ST; }
# Fill, then overwrite 1 MiB pieces all over with fsync: garbage in every
# zone, few free zones: GC runs.
overwrite() {
	i=0
	while [ $i -lt "$1" ]; do
		dd if=/dev/urandom of="$V" bs=$MIB seek=$(( (i * 37) % 96 )) count=1 oflag=direct status=none 2>/dev/null || return 1
		i=$((i + 1))
	done
	sync
}
fill() { dd if=/dev/urandom of="$V" bs=$MIB count=96 oflag=direct conv=fsync status=none && overwrite 48; }
ktap_test_result "fill and overwrite (flushed)" fill
ktap_print_msg "free zones $(stat_of zones_free), gc_runs $(stat_of gc_runs)"

# unwritten / written: null_blk bad-block ranges (sectors) covering the
# unwritten part (write pointer to end) or the written part of every data
# zone (zones 4.. of 16384 sectors).
zones() {
	blkzone report "$D" | sed -n 's/.*start: \(0x[0-9a-f]*\), len \(0x[0-9a-f]*\),.* wptr \(0x[0-9a-f]*\) .*/\1 \2 \3/p'
}
unwritten() {
	zones | while read -r s l w; do
		s=$((s)) l=$((l)) w=$((w))
		[ $s -ge 65536 ] && [ $w -lt $l ] && echo "+$((s + w))-$((s + l - 1))"
	done
}
written() {
	zones | while read -r s l w; do
		s=$((s)) w=$((w))
		[ $s -ge 65536 ] && [ $w -gt 0 ] && echo "+$s-$((s + w - 1))"
	done
}
setbad() { for r in $1; do echo "$r" >$NB/badblocks; done; }
clearbad() { for r in $1; do echo "$r" | tr '+' '-' >$NB/badblocks; done; }

# overwrite_any N: as overwrite, going on after failed writes (each write
# kicks GC, which then tries to copy into the bad ranges).
overwrite_any() {
	i=0
	while [ $i -lt "$1" ]; do
		dd if=/dev/urandom of="$V" bs=$MIB seek=$(( (i * 37) % 96 )) count=1 oflag=direct status=none 2>/dev/null
		i=$((i + 1))
	done
}
# 1. Writes fail while GC runs. The unwritten ranges are marked again every
# second: a zone that GC resets after a marking is written from its start
# again, into sectors that were good at the marking (a single marking let
# every GC copy of a run land in such zones: no GC write failed).
# mark_until RANGES MSG: overwrites (going on after failed writes, and
# again once a writer ends) while marking the ranges the function RANGES
# prints as bad every second, until the kernel log has MSG (60 s at most).
mark_until() {
	( overwrite_any 64 ) 2>/dev/null &
	W=$!
	_t=0
	while [ $_t -lt 60 ] && ! log_has "$2"; do
		setbad "$($1)"
		sleep 1
		_t=$((_t + 1))
		if ! kill -0 $W 2>/dev/null; then
			( overwrite_any 16 ) 2>/dev/null &
			W=$!
		fi
	done
	wait $W
	sleep 2
}
dmesg_mark
gc0=$(stat_of gc_runs)
mark_until unwritten "zvpool: ge: GC write error"
ktap_test_result "status answers while GC writes fail" sh -c "timeout 20 cat $ST >/dev/null"
if log_has "zvpool: ge: GC write error"; then
	ktap_test_pass "GC write errors are logged"
else
	dmesg_since_mark | grep 'zvpool' | tail -20 | sed 's/^/# /'
	ktap_test_fail "GC write errors are logged"
fi
ktap_print_msg "$(dmesg_since_mark | grep -c 'GC write error on') GC and $(dmesg_since_mark | grep -c ': write error on') user write errors logged"
ktap_print_msg "gc_runs $gc0 -> $(stat_of gc_runs), free zones $(stat_of zones_free)"
# (No whole-volume read here: a write in flight while the bad ranges were
# set can land in one, and reading it back then fails, as it should.)
clearbad "+65536-$((160 * 2048 - 1))"

# 2. Reads of written data fail while GC runs. The written ranges are
# marked again every second, and the writes go on after a failed one: a
# zone GC resets after a marking is written from its start again, into
# sectors marked bad (a single marking, with the writer stopping at its
# first failed write, once left GC nothing to do: no GC read failed).
dmesg_mark
mark_until written "GC: zone .* cannot be read; it is skipped"
ktap_test_result "status answers while GC reads fail" sh -c "timeout 20 cat $ST >/dev/null"
ktap_test_result "an unreadable victim is skipped, not retried at once" log_has "GC: zone .* cannot be read; it is skipped"
ktap_print_msg "$(dmesg_since_mark | grep -c 'GC read error on') GC read errors logged in $_t s"
clearbad "+65536-$((160 * 2048 - 1))"
sync
new=$(dd if="$V" bs=$MIB count=96 iflag=direct status=none | md5sum)
ktap_print_msg "volume after the read-error phase: $new"
ktap_test_result "new writes work and are flushed after the errors" \
	dd if=/dev/urandom of="$V" bs=$MIB seek=90 count=2 oflag=direct conv=fsync status=none
want=$(dd if="$V" bs=$MIB count=96 iflag=direct status=none | md5sum)
ktap_test_result "the pool stops" timeout 60 zvpoolctl pool stop ge
ktap_test_result "and reassembles with the data intact" sh -c \
	"zvpoolctl pool assemble ge $D >/dev/null && V=\$(zvpoolctl volume show -H -o device ge/v | cut -f2) &&
	 [ \"\$(dd if=\$V bs=$MIB count=96 iflag=direct status=none | md5sum)\" = \"$want\" ]"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop ge >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
