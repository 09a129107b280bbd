#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Metadata copies (Documentation/design-recovery.md, "Journal copies" and
# "Checkpoint copies"): a pool of two members writes every journal block to
# the log zones of both (the journal member, member 0, and member 1), at the
# same offsets, and every checkpoint block to both. Twice, with the
# conventional namespace as member 0 and as member 1 (the other member a ZNS
# namespace):
# - `status` says `journal_members 0 1` and `checkpoint_copies 2`
#   (`zvpoolctl pool status`: metadata_copies 2); the root `features` lists
#   journal-copies and checkpoint-copies;
# - after a clean stop both members' log zones hold the same journal blocks
#   (sequence numbers at the same offsets);
# - one copy of the first journal block after the newest checkpoint and one
#   of the newest record (a snapshot) damaged on the conventional member
#   (a flipped byte): read-write assembly works, one log line says two
#   blocks were read from their copy, every region and the snapshot read
#   back as written, the pool takes writes and reassembles clean;
# - `zvpoolctl pool check` (offline) finds no damage and says two blocks
#   were read from their copy;
# - then both checkpoint sets of the conventional member lost (zeroed):
#   read-write assembly works, one log line says how many checkpoint blocks
#   were read from their second copy, the data reads back, and the pool
#   reassembles with no copy read (the checkpoints were written again).
# (The damage of both copies is refused as on one member: the host tests,
# rust/zvcore/tests/damage.rs.)
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. /etc/zvpool/vm.env
. "$DIR/vm_devices.sh"
. "$DIR/pool_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
P=$CFS/jc
ST=$P/status
ktap_print_header
need_zns_and_conv "metadata copies" blkzone zvcrash cmp blockdev zvpoolctl
lsmod | grep -q '^zvpool ' && rmmod zvpool
insmod "$KO" || exit 1
ktap_set_plan $((2 * 14 + 2))
dmesg_mark
DMESG_START=$DMESG_MARK

ktap_test_result "features lists journal-copies and checkpoint-copies" \
	sh -c "grep -qw journal-copies $CFS/features && grep -qw checkpoint-copies $CFS/features"
make_patterns
ZB_ZNS=$(($(cat /sys/block/${ZNS#/dev/}/queue/chunk_sectors) / 8))
# Conventional members are cut into 256 MiB zones.
ZB_CONV=65536

# workload: format, regions 0-1; reassembled (a checkpoint), regions 2-3,
# a snapshot; clean stop.
workload() {
	pool_down
	blkzone reset "$ZNS"
	step "format" pool_up normal 2 && step "volume" vol_up 67108864 &&
		step "region 0" put 0 && step "region 1" put 1 || return 1
	pool_down
	step "assemble" pool_up normal && step "bind" vol_up && step "region 2" put 2 &&
		step "region 3" put 3 && step "snapshot" eval 'echo v@s1 >$P/snapshot' || return 1
	pool_down
}

# journal_of DEV ZB: "OFFSET_IN_ZONE SEQ CKPT_GEN RECORDS ABSBLOCK" of the
# pool's valid journal blocks in DEV's two log zones.
journal_of() {
	blockdev --flushbufs "$1"
	_uuid=$(zvcrash pool "$1" 0)
	for _z in 0 1; do
		zvcrash journal "$1" $((_z * $2)) "$2"
	done | awk -v u="$_uuid" -v zb="$2" '$8 == u && $7 == "valid" { print $1 % zb, $2, $3, $6, $1 }' | sort -n -k2
}

for conv_member in 0 1; do
	if [ $conv_member = 0 ]; then DEVS="$CONV $ZNS"; else DEVS="$ZNS $CONV"; fi
	K="conv as member $conv_member"
	ktap_test_result "$K: workload" workload
	step "status" pool_up normal
	ktap_expect_eq "$K: status journal_members, checkpoint_copies" "0 1 2" \
		"$(sed -n 's/^journal_members //p' $ST) $(sed -n 's/^checkpoint_copies //p' $ST)"
	ktap_expect_eq "$K: zvpoolctl pool status: metadata_copies" "2" \
		"$(zvpoolctl pool status -Hp jc | awk -F'\t' '$1 == "metadata_copies" { print $2 }')"
	pool_down
	journal_of "$CONV" $ZB_CONV >/tmp/jc.conv
	journal_of "$ZNS" "$ZB_ZNS" >/tmp/jc.zns
	ktap_print_msg "$K: $(wc -l </tmp/jc.conv) journal block(s) on the conventional member, $(wc -l </tmp/jc.zns) on the ZNS one"
	# The journal since the newest checkpoint (blocks naming it): a
	# conventional log zone also keeps the blocks of earlier passes past
	# the write position (it is not reset), a ZNS one does not.
	G=$(awk '{ if ($3 > g) g = $3 } END { print g + 0 }' /tmp/jc.conv)
	awk -v g="$G" '$3 == g { print $1, $2, $3, $4 }' /tmp/jc.zns >/tmp/jc.zns.cut
	if [ -s /tmp/jc.zns.cut ] && awk -v g="$G" '$3 == g { print $1, $2, $3, $4 }' /tmp/jc.conv | cmp -s - /tmp/jc.zns.cut; then
		ktap_test_pass "$K: both members hold the journal at the same offsets"
	else
		ktap_print_msg "conventional member (offset seq gen records block):"
		sed 's/^/#   /' /tmp/jc.conv
		ktap_print_msg "ZNS member:"
		sed 's/^/#   /' /tmp/jc.zns
		ktap_test_fail "$K: both members hold the journal at the same offsets"
	fi
	# The first block naming the newest checkpoint, and the newest block
	# with records (the snapshot), on the conventional member.
	set -- $(awk -v g="$G" '$3 == g { print; exit }' /tmp/jc.conv)
	B1=$5 S1=$2
	set -- $(awk '$4 > 0 { l = $0 } END { print l }' /tmp/jc.conv)
	B2=$5 S2=$2
	ktap_print_msg "$K: damaging blocks $B1 (sequence $S1) and $B2 (sequence $S2) of $CONV"
	ktap_test_result "$K: two distinct journal blocks after the checkpoint" \
		test -n "$B1" -a -n "$B2" -a "$S2" -gt "$S1"
	zvcrash flip "$CONV" $((B1 * 4096 + 200)) && zvcrash flip "$CONV" $((B2 * 4096 + 200))
	blockdev --flushbufs "$CONV"
	if zvpoolctl pool check $DEVS >/tmp/jc.check 2>&1 &&
		grep -q "journal copies: 2 damaged blocks read from their copy" /tmp/jc.check; then
		ktap_test_pass "$K: pool check finds no damage, two blocks read from their copy"
	else
		sed 's/^/# /' /tmp/jc.check
		ktap_test_fail "$K: pool check finds no damage, two blocks read from their copy"
	fi
	dmesg_mark
	ktap_test_result "$K: read-write assembly" pool_up normal
	ktap_test_result "$K: the log says two blocks were read from their copy" \
		log_has "zvpool: jc: 2 damaged journal block(s) read from their copy on another member"
	ktap_test_result "$K: every region and the snapshot read back" sh -c '
		mkdir '$P'/v && echo 1 >'$P'/v/enable || exit 1
		D=/dev/$(cut -d" " -f1 '$P'/v/dev)
		for k in 0 1 2 3; do
			dd if="$D" bs=1M skip=$k count=1 iflag=direct status=none | cmp -s - /tmp/pat.$k || exit 1
		done
		mkdir '$P'/v@s1 && echo 1 >'$P'/v@s1/enable || exit 1
		S=/dev/$(cut -d" " -f1 '$P'/v@s1/dev)
		dd if="$S" bs=1M skip=3 count=1 iflag=direct status=none | cmp -s - /tmp/pat.3 || exit 1
		echo 0 >'$P'/v@s1/enable && rmdir '$P'/v@s1'
	D=/dev/$(cut -d' ' -f1 $P/v/dev 2>/dev/null)
	ktap_test_result "$K: the pool takes writes, reassembles clean" sh -c "
		step() { \"\$@\" && return 0; echo \"# step failed: \$*\"; dmesg | grep zvpool | tail -n 3 | sed 's/^/# /'; exit 1; }
		step dd if=/tmp/pat.5 of=$D bs=1M seek=5 count=1 oflag=direct conv=fsync status=none
		pd() { echo 0 >$P/v/enable && rmdir $P/v && echo 0 >$P/enable; }
		step pd
		step eval 'echo 1 >$P/enable'
		step mkdir $P/v
		step eval 'echo 1 >$P/v/enable'
		D2=/dev/\$(cut -d' ' -f1 $P/v/dev)
		dd if=\$D2 bs=1M skip=5 count=1 iflag=direct status=none | cmp -s - /tmp/pat.5"
	pool_down

	# Both checkpoint sets of the conventional member lost (meta zones 2
	# and 3: one zone a set on these members).
	dd if=/dev/zero of="$CONV" bs=4096 seek=$((2 * ZB_CONV)) count=256 oflag=direct status=none &&
		dd if=/dev/zero of="$CONV" bs=4096 seek=$((3 * ZB_CONV)) count=256 oflag=direct status=none
	dmesg_mark
	ktap_test_result "$K: read-write assembly without the conventional member's checkpoints" pool_up normal
	N=$(dmesg_since_mark | sed -n 's/.*zvpool: jc: \([0-9]*\) checkpoint block(s) read from their second copy.*/\1/p')
	ktap_print_msg "$K: ${N:-no} checkpoint block(s) read from their second copy"
	if [ $conv_member = 0 ]; then
		# The checkpoint is a few blocks, all in member 0's first phase.
		ktap_test_result "$K: the log says checkpoint blocks were read from their second copy" test "${N:-0}" -gt 0
	else
		ktap_test_result "$K: no block needed its second copy (member 1 held only second copies)" test -z "$N"
	fi
	ktap_test_result "$K: regions 0-3 and 5 read back" sh -c '
		mkdir '$P'/v && echo 1 >'$P'/v/enable || exit 1
		D=/dev/$(cut -d" " -f1 '$P'/v/dev)
		for k in 0 1 2 3 5; do
			dd if="$D" bs=1M skip=$k count=1 iflag=direct status=none | cmp -s - /tmp/pat.$k || exit 1
		done'
	pool_down
	dmesg_mark
	pool_up normal
	if log_lacks "read from their second copy"; then
		ktap_test_pass "$K: reassembled, no copy needed any more"
	else
		dmesg_since_mark | grep zvpool | sed 's/^/# /'
		ktap_test_fail "$K: reassembled, no copy needed any more"
	fi
	pool_down
done
rmmod zvpool
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops or lockdep report"
ktap_finished
