#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Mirrored volumes (Documentation/admin-guide.md, "Mirrored volumes"): a
# volume made with `copies` 2 on a pool of two members keeps a copy of
# every block on each, so either member may be missing:
# - `copies` is 1 by default, takes 1 or 2 before `size` (EINVAL for 3,
#   EBUSY once the volume exists) and shows 2 after; the pool lists one
#   volume (the second copies' table is hidden);
# - what is written reads back, and each member holds about as much as
#   the volume's data (one copy each);
# - assembled without either member (assemble_mode degraded), every
#   region reads back (the missing member's copy from the other one:
#   `copy_read_blocks` counts them), and a new region written then (both
#   copies on the member left) reads back;
# - with both members again, once the assembly's placement walks moved
#   those copies home, every region reads back, also the one written
#   without member 0 when member 1 is missing next;
# - `zvpoolctl volume create --copies 2` makes one;
# - a spare added, then assembled without member 1: its copies are
#   rebuilt on the spare from member 0's (a uevent tells the walk's end
#   and its bytes); member 1 removed for good; the spare alone reads
#   every region back;
# - random 4 KiB writes at QD32 (the asynchronous path) with frequent
#   checkpoints verify, and each member alone reads the same data;
# - a pool of one member refuses a mirrored volume (EINVAL, one log line).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. /etc/zvpool/vm.env
. "$DIR/vm_devices.sh"
. "$DIR/pool_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
P=$CFS/mr
ST=$P/status
ktap_print_header
need_zns_and_conv "mirrored volumes" blkzone cmp zvpoolctl fio md5sum
lsmod | grep -q '^zvpool ' && rmmod zvpool
insmod "$KO" || exit 1
ktap_set_plan 27
make_patterns

# mfield M FIELD: FIELD of member M in `members`.
mfield() { awk -v m="$1" '$1 == m' $P/members | tr ' ' '\n' | sed -n "s/^$2=//p"; }
sfield() { sed -n "s/^$1 //p" $ST; }

# mvol_up: makes mirrored volume v (64 MiB) and binds it; sets D.
mvol_up() {
	mkdir $P/v || return 1
	echo 2 >$P/v/copies || return 1
	echo 67108864 >$P/v/size || return 1
	echo 1 >$P/v/enable || return 1
	D=/dev/$(cut -d' ' -f1 $P/v/dev)
}

# read_regions K...: sets OK, EIO, BAD (as degraded.sh).
read_regions() {
	OK="" EIO="" BAD=""
	for _k in "$@"; do
		if ! dd if="$D" of=/tmp/mr.r bs=1M skip="$_k" count=1 iflag=direct status=none 2>/dev/null; then
			EIO="$EIO $_k"
		elif cmp -s /tmp/mr.r /tmp/pat.$_k; then
			OK="$OK $_k"
		else
			BAD="$BAD $_k"
		fi
	done
}

DEVS="$ZNS $CONV"
pool_down
blkzone reset "$ZNS"
step "format" pool_up normal 2 || exit 1
mkdir $P/v
ktap_expect_eq "copies is 1 by default" "1" "$(cat $P/v/copies)"
refused "copies 3 refused" 3 $P/v/copies "invalid argument" "copies is 1 or 2"
rmdir $P/v
ktap_test_result "a mirrored volume is made" mvol_up
ktap_expect_eq "copies shows 2" "2" "$(cat $P/v/copies)"
refused "copies after the size refused" 1 $P/v/copies "device or resource busy" \
	"copies is set before the size"
ktap_expect_eq "the pool lists one volume" "1" "$(sfield volumes)"
ktap_expect_eq "its volumes line says copies=2" "2" \
	"$(sed -n 's/^[0-9]* v .* copies=\([0-9]*\)$/\1/p' $P/volumes)"
ktap_expect_eq "zvpoolctl lists it with 2 copies" "2" \
	"$(zvpoolctl volume list -H -o copies mr 2>&1)"
for k in 0 1 2 3; do put $k || ktap_print_msg "write of region $k failed"; done
read_regions 0 1 2 3
ktap_expect_eq "every region reads back" " 0 1 2 3" "$OK"
U0=$(mfield 0 used_bytes) U1=$(mfield 1 used_bytes)
ktap_print_msg "member 0 holds $U0 bytes, member 1 $U1"
# 4 MiB written: each member holds a copy (a little more with metadata).
ktap_test_result "each member holds a copy of the data" \
	test "$U0" -ge 4194304 -a "$U1" -ge 4194304
pool_down

# walked: the placement walks of the assembly (a degraded write's copies
# moving home) are done.
walked() { wait_for 10 sh -c "grep -q ' done ' $P/migrate && ! grep -q queued $P/migrate"; }

# degraded GONE NEW: assembled without member GONE, regions 0 .. NEW-1
# read back, region NEW is written (both copies on the member left) and
# reads back; C<GONE> is copy_read_blocks.
degraded() {
	if [ $1 = 0 ]; then DEVS=$CONV; else DEVS=$ZNS; fi
	K="without member $1"
	_all=$(seq -s' ' 0 $(($2 - 1)) | sed 's/^/ /')
	if step "degraded" pool_up degraded && step "bind" vol_up; then
		read_regions $(seq 0 $(($2 - 1)))
		ktap_print_msg "$K: read back:$OK; failed:$EIO; other data:$BAD; copy_read_blocks $(sfield copy_read_blocks)"
		ktap_expect_eq "$K: every region reads back" "$_all" "$OK"
		ktap_test_result "$K: a region written (both copies on the member left) reads back" \
			sh -c "dd if=/tmp/pat.$2 of=$D bs=1M seek=$2 count=1 oflag=direct conv=fsync status=none &&
				dd if=$D bs=1M skip=$2 count=1 iflag=direct status=none | cmp -s - /tmp/pat.$2"
	else
		ktap_test_fail "$K: every region reads back"
		ktap_test_fail "$K: a region written (both copies on the member left) reads back"
	fi
	eval C$1=$(sfield copy_read_blocks)
	pool_down
}

# whole N: both members again; once the walks moved the degraded writes'
# copies home, regions 0 .. N read back.
whole() {
	DEVS="$ZNS $CONV"
	if step "both members" pool_up normal && step "bind" vol_up && step "walks" walked; then
		ktap_print_msg "walks: $(tr '\n' ';' <$P/migrate)"
		read_regions $(seq 0 $1)
		ktap_expect_eq "both members: every region reads back" "$(seq -s' ' 0 $1 | sed 's/^/ /')" "$OK"
	else
		ktap_print_msg "walks: $(tr '\n' ';' <$P/migrate 2>/dev/null)"
		ktap_test_fail "both members: every region reads back"
	fi
}

degraded 0 4
whole 4
pool_down
# Region 4 was written without member 0: readable without member 1 only
# if the walk moved one of its copies to member 0.
degraded 1 5
ktap_print_msg "blocks read from the second copy: without member 0 $C0, without member 1 $C1"
ktap_test_result "the missing member's copy was read from the other" \
	test "$C0" -gt 0 -o "$C1" -gt 0
whole 5
if quiet zvpoolctl volume create mr/w --size 16M --copies 2; then
	ktap_expect_eq "zvpoolctl volume create --copies 2" "2" "$(cat $P/w/copies)"
	echo 0 >$P/w/enable
	rmdir $P/w
else
	ktap_test_fail "zvpoolctl volume create --copies 2"
fi

# rebuilt: as walked, given 60 s (6 MiB read and written again).
rebuilt() { wait_for 60 sh -c "grep -q ' done ' $P/migrate && ! grep -q -e queued -e running $P/migrate"; }

# Rebuild: a spare (member 2, on neither side) is added; assembled without
# member 1, the walks rebuild its copies onto the spare from member 0's;
# member 1 is removed for good (-f: nothing of v is lost); assembled
# without member 0 too, every region reads back from the rebuilt copies.
SPARE=$(zns_dev 0)
blkzone reset "$SPARE"
ktap_test_result "a spare member is added" quiet zvpoolctl pool add mr "$SPARE"
pool_down
DEVS="$ZNS $SPARE"
rm -f /tmp/mr.uev.*
uevents_on /tmp/mr.uev
if step "without member 1" pool_up degraded && step "bind" vol_up && step "walks" rebuilt; then
	ktap_print_msg "walks: $(tr '\n' ';' <$P/migrate); spare holds $(mfield 2 used_bytes) bytes"
	# Regions 0 .. 5 (1 MiB each) written: their copies on member 1 are
	# now on the spare.
	ktap_test_result "member 1's copies were rebuilt on the spare" \
		test "$(mfield 2 used_bytes)" -ge 6291456
	if [ -w $UH ]; then
		# The rebuild's walk (of the second copies) told its end.
		walk_told() {
			for f in /tmp/mr.uev.*; do
				grep -q '^ZVPOOL_EVENT=walk$' "$f" 2>/dev/null && grep -q '^ZVPOOL_COPY=1$' "$f" &&
					grep -q '^ZVPOOL_VOLUME=v$' "$f" &&
					[ "$(sed -n 's/^ZVPOOL_MOVED_BYTES=//p' "$f")" -ge 6291456 ] && return 0
			done
			return 1
		}
		ktap_test_result "uevent: the rebuild's walk ended (ZVPOOL_EVENT=walk, its bytes)" wait_for 5 walk_told
	else
		ktap_test_skip "uevent: the rebuild's walk ended (ZVPOOL_EVENT=walk, its bytes)" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
	fi
	ktap_test_result "pool remove -f mr 1 (lost for good)" quiet zvpoolctl pool remove -f mr 1
else
	ktap_print_msg "walks: $(tr '\n' ';' <$P/migrate 2>/dev/null); spare holds $(mfield 2 used_bytes) bytes; $(grep -E '^(gc_|migrat)' $ST | tr '\n' ' ')"
	ktap_test_fail "member 1's copies were rebuilt on the spare"
	ktap_test_fail "uevent: the rebuild's walk ended (ZVPOOL_EVENT=walk, its bytes)"
	ktap_test_fail "pool remove -f mr 1 (lost for good)"
fi
uevents_off
pool_down
DEVS=$SPARE
if step "the spare alone" pool_up degraded && step "bind" vol_up; then
	read_regions 0 1 2 3 4 5
	ktap_print_msg "the spare alone: read back:$OK; failed:$EIO; other data:$BAD"
	ktap_expect_eq "the spare alone: every region reads back" " 0 1 2 3 4 5" "$OK"
else
	ktap_test_fail "the spare alone: every region reads back"
fi
pool_down

# Random 4 KiB writes at queue depth 32 on the asynchronous path (both
# copies submitted from queue_rq, mapped together by the completion work)
# with a checkpoint every 32 journal blocks (a mirrored write that ends
# during one is written again the slow way): fio verifies what it wrote;
# then each member alone reads the same data (its copies are whole).
# fsum: md5 of fio's 24 MiB (from 8 MiB) of D.
fsum() { dd if="$D" bs=1M skip=8 count=24 iflag=direct status=none | md5sum | cut -d' ' -f1; }
rmmod zvpool && insmod "$KO" ckpt_interval=32 || exit 1
DEVS="$ZNS $CONV"
blkzone reset "$ZNS"
if step "format" pool_up normal 2 && step "mirrored volume w" mkdir $P/w &&
	echo 2 >$P/w/copies && echo 67108864 >$P/w/size && echo 1 >$P/w/enable; then
	D=/dev/$(cut -d' ' -f1 $P/w/dev)
	ck0=$(sfield checkpoints)
	ktap_test_result "fio: 4 KiB random writes at QD32 verify" \
		fio --name=m --filename="$D" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
			--iodepth=32 --offset=8M --size=24M --io_size=12M --fsync=16 --verify=crc32c \
			--verify_fatal=1 --randrepeat=0 --output=/tmp/mr.fio
	ktap_print_msg "checkpoints during fio: $(($(sfield checkpoints) - ck0)), writes written again after one: $(sfield copy_rewrites); $(grep -o 'IOPS=[^,]*' /tmp/mr.fio | head -n1)"
	S=$(fsum)
	echo 0 >$P/w/enable
	rmdir $P/w
	pool_down
	for gone in 0 1; do
		if [ $gone = 0 ]; then DEVS=$CONV; else DEVS=$ZNS; fi
		if step "degraded" pool_up degraded && mkdir $P/w && echo 1 >$P/w/enable; then
			D=/dev/$(cut -d' ' -f1 $P/w/dev)
			ktap_expect_eq "fio's data reads the same without member $gone" "$S" "$(fsum)"
			echo 0 >$P/w/enable
			rmdir $P/w
		else
			ktap_test_fail "fio's data reads the same without member $gone"
		fi
		pool_down
	done
else
	ktap_test_fail "fio: 4 KiB random writes at QD32 verify"
	ktap_test_fail "fio's data reads the same without member 0"
	ktap_test_fail "fio's data reads the same without member 1"
	[ -d $P/w ] && { echo 0 >$P/w/enable; rmdir $P/w; }
	pool_down
fi
rmmod zvpool && insmod "$KO" || exit 1

# One member: no two sides.
DEVS=$ZNS
blkzone reset "$ZNS"
if step "one member" pool_up normal 2; then
	mkdir $P/v && echo 2 >$P/v/copies
	refused "one member: a mirrored volume refused" 67108864 $P/v/size "invalid argument" \
		"a mirrored volume needs two members"
else
	ktap_test_fail "one member: a mirrored volume refused"
fi
pool_down
rmmod zvpool
ktap_finished
