#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Metadata damage is never silent (Documentation/design-recovery.md,
# "Damage"). On a single-member pool over a ZNS namespace and over a
# conventional one, each case builds a pool with flushed data, snapshots and
# checkpoints, stops it cleanly, damages its metadata on disk and checks:
# - read-write assembly is refused with EUCLEAN and a log line that names
#   what is damaged (journal sequence, member, zone, block / checkpoint);
# - read-only assembly (assemble_mode=read-only) works, writes nothing,
#   every volume is read-only and the data from before the damage reads back;
# - a rewind (assemble_mode=rewind) works, says what it dropped (the same
#   numbers as the on-disk listing), is recorded in the pool (status
#   rewinds/last_rewind, across a reassembly) and the pool takes writes;
# - `zvpoolctl pool check` (offline) reports the same problem, exit 1.
# Cases: a flipped byte in the first journal block after the newest
# checkpoint; the block holding the newest committed record (a snapshot);
# the newest checkpoint's zone lost; both superblock copies damaged four
# ways (flipped byte; member count, zone capacity, generation resealed with
# a valid CRC); no superblock at all (ENOENT); a device that is not a
# member (EINVAL); over-long input cut in log lines.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"
. /etc/zvpool/vm.env
. "$DIR/vm_devices.sh"
. "$DIR/pool_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
P=/sys/kernel/config/zvpool/dm
ST=$P/status
ktap_print_header
need_zns_and_conv "damage" blkzone zvcrash cmp blockdev
CHECK=0
zvpoolctl pool check --help >/dev/null 2>&1 && CHECK=1
lsmod | grep -q '^zvpool ' && rmmod zvpool
# Checkpoints at the assemblies of the workloads (the journal would
# otherwise go on where it ended after each clean stop).
insmod "$KO" ckpt_at_assembly=1 || exit 1
ktap_set_plan $((2 * (20 + 3 * CHECK) + 4))
dmesg_mark
DMESG_START=$DMESG_MARK

stat_of() { sed -n "s/^$1 //p" $ST; }
# Patterns: 1 MiB each, region K of the volume holds /tmp/pat.K.
make_patterns

# kind_setup zns|conv: DEV, ZB (blocks per zone), ZONED.
kind_setup() {
	if [ "$1" = zns ]; then
		DEV=$ZNS ZONED=1 DEVS=$ZNS
		ZB=$(($(cat /sys/block/${DEV#/dev/}/queue/chunk_sectors) / 8))
		blkzone reset "$DEV"
	else
		DEV=$CONV ZONED=0 ZB=65536 DEVS=$CONV
		: # format=2 overwrites; stale blocks of old pools carry another pool UUID
	fi
}

# workload CYCLES: format, region 0, then CYCLES times (stop, assemble,
# one more region), a snapshot and region 5 in the journal; clean stop.
workload() {
	pool_down
	[ $ZONED = 0 ] || blkzone reset "$DEV"
	step "format" pool_up normal 2 && step "volume" vol_up 67108864 && step "region 0" put 0 || return 1
	_k=1
	while [ $_k -le "$1" ]; do
		pool_down && step "assemble $_k" pool_up normal && step "bind $_k" vol_up && step "region $_k" put $_k || return 1
		_k=$((_k + 1))
	done
	step "region 4" put 4 && step "snapshot" eval 'echo v@s1 >$P/snapshot' && step "region 5" put 5 || return 1
	pool_down
}
snap_workload() {
	workload 1 && pool_up normal && vol_up && put 2 && echo "v@last" >$P/snapshot || return 1
	pool_down
}
# clean_assembly: a pool without damage assembles read-write.
clean_assembly() {
	pool_up normal && vol_up && has 0 && has 5 || { pool_down; return 1; }
	pool_down
}

# journal_list: the pool's journal blocks in both log zones (blocks of
# earlier pools on the device carry another pool UUID):
# "ABSBLOCK SEQ CKPT_GEN COMMIT_SEQ FLAGS RECORDS valid|invalid UUID".
journal_list() {
	blockdev --flushbufs "$DEV"
	_uuid=$(zvcrash pool "$DEV" 0)
	for z in 0 1; do
		zvcrash journal "$DEV" $((z * ZB)) "$ZB"
	done | awk -v u="$_uuid" '$8 == u' | sort -n -k2
}

# edit_begin BLOCK: EF (file to edit) and EB (block in it) for BLOCK.
edit_begin() {
	EZ=$(($1 / ZB))
	if [ $ZONED = 1 ]; then
		_wp=$(blkzone report -o $((EZ * ZB * 8)) -c 1 "$DEV" | sed -n 's/.*wptr \(0x[0-9a-f]*\).*/\1/p')
		_wp=$((_wp / 8))
		[ "$_wp" -gt 0 ] || _wp=$ZB
		dd if="$DEV" of=/tmp/zone.img bs=4096 skip=$((EZ * ZB)) count="$_wp" iflag=direct status=none
		EF=/tmp/zone.img EB=$(($1 - EZ * ZB))
	else
		EF=$DEV EB=$1
	fi
}
edit_end() {
	if [ $ZONED = 1 ]; then
		blkzone reset -o $((EZ * ZB * 8)) -c 1 "$DEV" &&
			dd if=/tmp/zone.img of="$DEV" bs=1M seek=$((EZ * ZB * 4096)) oflag=direct,seek_bytes status=none
	else
		blockdev --flushbufs "$DEV"
	fi
}
# flip_block BLOCK: one flipped byte in the payload (the CRC no longer matches).
flip_block() {
	edit_begin "$1" && zvcrash flip "$EF" $((EB * 4096 + 200)) && edit_end
}
# reseal_block BLOCK OFF WIDTH VALUE: a field changed, the CRC resealed.
reseal_block() {
	edit_begin "$1" && zvcrash reseal "$EF" "$EB" "$2" "$3" "$4" && edit_end
}
# lose_zone Z: the zone's contents are gone (reset, or zeroed).
lose_zone() {
	if [ $ZONED = 1 ]; then
		blkzone reset -o $(($1 * ZB * 8)) -c 1 "$DEV"
	else
		dd if=/dev/zero of="$DEV" bs=4096 seek=$(($1 * ZB)) count=64 oflag=direct status=none
	fi
}

# refused_assembly NAME PATTERN: read-write assembly fails with EUCLEAN and
# the log names the damage.
refused_assembly() {
	pool_down
	dmesg_mark
	if _out=$(pool_up normal 2>&1); then
		ktap_print_msg "$1: assembled read-write"
		ktap_test_fail "$1"
		pool_down
		return
	fi
	if echo "$_out" | grep -qi "structure needs cleaning" &&
		dmesg_since_mark | grep -q "zvpool: dm: cannot assemble: metadata damaged: $2"; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "$1: $_out"
		dmesg_since_mark | sed 's/^/# /'
		ktap_test_fail "$1"
	fi
	pool_down
}

# read_only_case NAME REGIONS...: read-only assembly, nothing written, the
# regions read back, writes refused.
read_only_case() {
	_name=$1
	shift
	blockdev --flushbufs "$DEV"
	_before=$(dd if="$DEV" bs=1M count=160 iflag=direct status=none | sha256sum)
	if pool_up read-only && vol_up && [ "$(stat_of read_only)" = 1 ] &&
		stat_of damage | grep -q seq=; then
		_ok=1
		for k in "$@"; do has "$k" || { ktap_print_msg "$_name: region $k differs"; _ok=0; }; done
		[ $_ok = 1 ] || { sed 's/^/# volumes: /' $P/volumes; sed 's/^/# status: /' $ST | grep -E 'checkpoints|journal|used'; }
		if dd if=/tmp/pat.1 of="$D" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
			ktap_print_msg "$_name: a write succeeded"
			_ok=0
		fi
		pool_down
		_after=$(dd if="$DEV" bs=1M count=160 iflag=direct status=none | sha256sum)
		[ "$_before" = "$_after" ] || { ktap_print_msg "$_name: members written"; _ok=0; }
		[ $_ok = 1 ] && ktap_test_pass "$_name" || { dmesg | grep 'zvpool: dm' | tail -n 8 | sed 's/^/# /'; ktap_test_fail "$_name"; }
	else
		ktap_print_msg "$_name: read-only assembly failed"
		dmesg | tail -n 5 | sed 's/^/# /'
		ktap_test_fail "$_name"
		pool_down
	fi
}

# rewind_case NAME DROPPED REGIONS...: a rewind drops DROPPED journal
# blocks, the regions read back, the pool takes writes, keeps the record.
rewind_case() {
	_name=$1 _drop=$2
	shift 2
	dmesg_mark
	if pool_up rewind && vol_up; then
		_ok=1
		dmesg_since_mark | grep -q "zvpool: dm: rewinding: metadata damaged" || { ktap_print_msg "$_name: no rewind log"; _ok=0; }
		if [ -n "$_drop" ] && ! dmesg_since_mark | grep -q "a rewind drops $_drop journal block"; then
			ktap_print_msg "$_name: expected $_drop dropped blocks:"
			dmesg_since_mark | grep 'rewind drops' | sed 's/^/# /'
			_ok=0
		fi
		[ "$(stat_of rewinds)" = 1 ] || { ktap_print_msg "$_name: rewinds $(stat_of rewinds)"; _ok=0; }
		for k in "$@"; do has "$k" || { ktap_print_msg "$_name: region $k differs"; _ok=0; }; done
		put 3 || { ktap_print_msg "$_name: write after rewind"; _ok=0; }
		pool_down
		if pool_up normal && vol_up && has 3 && [ "$(stat_of rewinds)" = 1 ] &&
			stat_of last_rewind | grep -q from_seq=; then :; else
			ktap_print_msg "$_name: reassembly after the rewind"
			_ok=0
		fi
		pool_down
		[ $_ok = 1 ] && ktap_test_pass "$_name" || ktap_test_fail "$_name"
	else
		ktap_print_msg "$_name: rewind assembly failed"
		dmesg_since_mark | sed 's/^/# /'
		ktap_test_fail "$_name"
		pool_down
	fi
}

# check_case NAME PATTERN: the offline checker finds the damage (exit 1).
check_case() {
	[ $CHECK = 1 ] || return 0
	blockdev --flushbufs "$DEV"
	zvpoolctl pool check "$DEV" >/tmp/check.out 2>&1
	_rc=$?
	if [ $_rc = 1 ] && grep -q "$2" /tmp/check.out; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "$1: exit $_rc"
		sed 's/^/# /' /tmp/check.out
		ktap_test_fail "$1"
	fi
}

for kind in zns conv; do
	kind_setup $kind

	# 1. A flipped byte in the first journal block after the newest checkpoint.
	ktap_test_result "$kind: workload" workload 2
	ktap_test_result "$kind: a clean pool assembles read-write" clean_assembly
	journal_list >/tmp/jl
	G=$(awk '$7 == "valid" { if ($3 > g) g = $3 } END { print g + 0 }' /tmp/jl)
	set -- $(awk -v g="$G" '$7 == "valid" && $3 == g { print; exit }' /tmp/jl)
	TB=$1 TS=$2
	MAXS=$(awk '$7 == "valid" { s = $2 } END { print s + 0 }' /tmp/jl)
	DROP=$(awk -v t="$TS" '$7 == "valid" && $2 > t { n++ } END { print n + 0 }' /tmp/jl)
	ktap_print_msg "$kind: newest checkpoint $G, first journal block after it: sequence $TS at block $TB; newest $MAXS"
	ktap_test_result "$kind: journal blocks follow the target" test "$MAXS" -gt $((TS + 1))
	flip_block "$TB"
	refused_assembly "$kind: mid-journal damage refused" "committed journal block $TS is invalid (member 0 $DEV, zone $((TB / ZB)), block $((TB % ZB))"
	check_case "$kind: pool check finds the mid-journal damage" "$TS"
	read_only_case "$kind: read-only assembly past mid-journal damage" 0 1
	rewind_case "$kind: rewind past mid-journal damage" "$DROP" 0 1

	# 2. The newest committed record (a snapshot, just before the stop).
	pool_down
	ktap_test_result "$kind: snapshot workload" snap_workload
	journal_list >/tmp/jl
	set -- $(awk '$7 == "valid" && $6 > 0 { l = $0 } END { print l }' /tmp/jl)
	NB=$1 NS=$2
	LAST=$(awk '$7 == "valid" { s = $2 } END { print s + 0 }' /tmp/jl)
	ktap_print_msg "$kind: newest record block: sequence $NS at block $NB (closing block $LAST)"
	ktap_test_result "$kind: the closing block follows the newest record" test "$LAST" = $((NS + 1))
	flip_block "$NB"
	refused_assembly "$kind: damaged newest record refused" "committed journal block $NS is invalid"
	check_case "$kind: pool check finds the newest-record damage" "$NS"
	read_only_case "$kind: read-only assembly without the newest record" 0 1 2 4 5
	ktap_test_result "$kind: the snapshot of the damaged record is absent" sh -c \
		"mkdir -p $P && echo $DEV >$P/devices && echo read-only >$P/assemble_mode && echo 1 >$P/enable && ! mkdir $P/v@last 2>/dev/null; r=\$?; echo 0 >$P/enable; rmdir $P; exit \$r"
	rewind_case "$kind: rewind past the newest record" 1 0 1 2 4 5

	# 3. The newest checkpoint's zone lost.
	pool_down
	ktap_test_result "$kind: checkpoint workload" workload 2
	journal_list >/tmp/jl
	G=$(awk '$7 == "valid" { if ($3 > g) g = $3 } END { print g + 0 }' /tmp/jl)
	lose_zone $((2 + G % 2))
	refused_assembly "$kind: lost checkpoint refused" "checkpoint generation $G is missing"
	check_case "$kind: pool check finds the lost checkpoint" "$G"
	# Region 0 was committed before the older checkpoint was written; region
	# 1 may be partly in the journal after it (a commit can fall inside a
	# write), which the log-zone reuse after the newest checkpoint erased.
	read_only_case "$kind: read-only assembly from the older checkpoint" 0
	rewind_case "$kind: rewind to the older checkpoint" "" 0

	# 4. Both superblock copies damaged, four ways; then none at all.
	sb_case() {
		pool_down
		pool_up normal 2 && pool_down
		for b in 0 "$ZB"; do
			if [ "$1" = flip ]; then flip_block "$b"; else reseal_block "$b" "$2" "$3" "$4"; fi
		done
		dmesg_mark
		if _out=$(pool_up normal 2>&1); then
			ktap_print_msg "$5: assembled"
			ktap_test_fail "$5"
		elif echo "$_out" | grep -qi "structure needs cleaning" &&
			dmesg_since_mark | grep -q "zvpool: dm: cannot assemble: $6"; then
			ktap_test_pass "$5"
		else
			ktap_print_msg "$5: $_out"
			dmesg_since_mark | sed 's/^/# /'
			ktap_test_fail "$5"
		fi
		pool_down
	}
	CAP=$ZB
	if [ $ZONED = 1 ]; then
		CAP=$(blkzone report -c 1 -o 0 "$DEV" | sed -n 's/.*cap \(0x[0-9a-f]*\),.*/\1/p')
		CAP=$((CAP / 8))
	fi
	sb_case flip "" "" "" "$kind: superblocks with a flipped byte: EUCLEAN" "superblock: no valid copy (checksum mismatch)"
	sb_case reseal 82 2 2 "$kind: member count resealed: EUCLEAN" "superblock: no valid copy (invalid field)"
	sb_case reseal 160 8 $((CAP - 1)) "$kind: zone capacity resealed: EUCLEAN" "recover: member geometry mismatch"
	sb_case reseal 72 8 0 "$kind: generation resealed: EUCLEAN" "superblock: no valid copy (invalid field)"
done

# No superblock at all, a device that is not a member, long input.
kind_setup zns
pool_down
mkdir $P && echo "$ZNS" >$P/devices
refused "no superblock at all: ENOENT" 1 $P/enable "no such file" "cannot assemble: no zvpool superblock"
pool_down
pool_up normal 2 && pool_down
mkdir $P && echo "$ZNS" >$P/devices && echo "$CONV" >$P/devices
refused "a device that is not a member: EINVAL" 1 $P/enable "invalid argument" "cannot assemble: recover: more devices given"
pool_down
mkdir $P
LONG=$(head -c 900 /dev/zero | tr '\0' x)
dmesg_mark
( echo "$LONG" >$P/assemble_mode ) 2>/dev/null
LINE=$(dmesg_since_mark | grep 'zvpool: dm: assemble_mode must be')
ktap_print_msg "long input logged as: $(echo "$LINE" | cut -c1-160)"
ktap_test_result "over-long input is cut in the log line" test -n "$LINE" -a "${#LINE}" -lt 250
rmdir $P
rmmod zvpool
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops or lockdep report"
ktap_finished
