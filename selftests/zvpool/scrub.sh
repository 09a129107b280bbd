#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Scrub (the reliability issue): `zvpoolctl pool scrub` reads every written
# block of the pool's data zones in the background.
# 1. On a healthy pool a pass reads at least what was written and finds
#    nothing.
# 2. null_blk bad blocks in a full zone of a volume that is never
#    overwritten (so GC never collects it): the pass counts exactly the
#    unreadable blocks, one member read error and one log line per run of
#    them, each run named (volume, offset), `-w` fails, the member turns
#    degraded.
# 3. The same bad blocks while another volume is overwritten (GC copies,
#    commits and zone resets run): passes started during the overwrite end,
#    with the same count; the overwritten volume reads back as last
#    written; the scrubbed volume is unchanged once the bad blocks are gone.
# 4. `--stop`, a clean pass after the bad blocks are gone, `--rate`.
# 5. Metadata: the newest checkpoint's header made unreadable: the pass
#    counts and logs it, and a full checkpoint in the other set replaces
#    the chain at once; the next pass reads the new one back sound. Stop and
#    reassembly with both volumes intact, no WARN/oops/lockdep/hung task.
# 6. The superblock copies and the journal blocks since the newest
#    checkpoint: a pass reads back the journal blocks of 4 commits; the head
#    of a log zone made unreadable is counted and logged (not repaired: the
#    other copies stand for it); the newest journal block made unreadable
#    is counted and logged, and a full checkpoint covers the journal.
# 7. Passes during fsync'ed writes (commits, GC, checkpoints when they
#    come): nothing found damaged, nothing repaired.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvsc
P=/sys/kernel/config/zvpool/sc
MIB=1048576
ktap_print_header
for t in zvpoolctl blkzone md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "scrub" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "scrub" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 27
dmesg_mark
DMESG_START=$DMESG_MARK

# 20 zones of 8 MiB; zones 0-3 hold metadata: 128 MiB of data zones.
nullb_zoned $NB 160 8
D=/dev/${NB##*/}
insmod "$KO"
dev() { zvpoolctl volume show -H -o device "sc/$1" | cut -f2; }
sfield() { sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p" $P/scrub; }
sstate() { cut -d' ' -f1 $P/scrub; }
mfield() { awk -v k="$1" '$1 == 0 { for (f = 4; f <= NF; f++) if (index($f, k "=") == 1) { sub(/^[a-z_]*=/, "", $f); print $f } }' $P/members; }
ktap_test_result "pool, a 48 MiB volume written once (c) and a 40 MiB volume (h)" \
	quiet sh -c "zvpoolctl pool create -f sc $D && zvpoolctl volume create sc/c --size 48M &&
	 zvpoolctl volume create sc/h --size 40M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device sc/c | cut -f2) bs=$MIB count=48 oflag=direct conv=fsync status=none"
C=$(dev c)
H=$(dev h)
want_c=$(dd if="$C" bs=$MIB iflag=direct status=none | md5sum)

# 1. A healthy pool.
ktap_test_result "a pass over a healthy pool succeeds (-w)" quiet timeout 120 zvpoolctl pool scrub -w sc
ktap_print_msg "scrub: $(cat $P/scrub)"
clean_pass() { [ "$(sstate)" = done ] && [ "$(sfield read_bytes)" -ge $((48 * MIB)) ] && [ "$(sfield errors)" = 0 ]; }
ktap_test_result "it read at least the 48 MiB written and found nothing" clean_pass

# 2. Bad blocks in a full zone of c (written once, never a GC victim): one
# block, then a run of three, 4 KiB blocks of 8 sectors.
zone=$(blkzone report "$D" | sed -n 's/.*start: \(0x[0-9a-f]*\),.*(fu).*/\1/p' |
	while read -r s; do [ $((s)) -ge 65536 ] && echo $((s)) && break; done)
if [ -z "$zone" ]; then
	ktap_print_msg "no full data zone: $(blkzone report "$D" | tr '\n' ';')"
	zone=65536
fi
BAD="+$((zone + 80))-$((zone + 87)) +$((zone + 800))-$((zone + 823))"
setbad() { for r in $BAD; do echo "$r" >$NB/badblocks; done; }
clearbad() { for r in $BAD; do echo "$r" | tr '+' '-' >$NB/badblocks; done; }
ktap_print_msg "bad blocks at sectors $BAD (zone at sector $zone)"
e0=$(mfield read_errors)
setbad
dmesg_mark
ktap_test_result "with 4 unreadable blocks a pass fails (-w)" sh -c "! timeout 120 zvpoolctl pool scrub -w sc 2>/tmp/scrub.err && grep -q unreadable /tmp/scrub.err"
sed 's/^/# /' /tmp/scrub.err
ktap_print_msg "scrub: $(cat $P/scrub)"
ktap_test_result "it counts exactly the 4 unreadable blocks" [ "$(sfield errors)" = 4 ]
member_degraded() { [ $(($(mfield read_errors) - e0)) = 2 ] && grep -q '^0 .*state=degraded' $P/members; }
ktap_test_result "the member counts 2 read errors (one a run) and turns degraded" member_degraded
ktap_print_msg "members: $(tr '\n' ';' <$P/members)"
runs_logged() { [ "$(dmesg_since_mark | grep -c "zvpool: sc: scrub read error on $D at sector")" = 2 ]; }
ktap_test_result "each run is logged with its device and sector" runs_logged
# The volume of each run: c, at offsets where c cannot be read (block by
# block: the named blocks fail, the block after each run does not).
off_of() { dmesg_since_mark | sed -n "s/.*zvpool: sc: scrub: volume 'c': $1 unreadable block(s) at byte offset \([0-9]*\)$/\1/p" | head -n1; }
rd4k() { dd if="$C" of=/dev/null bs=4096 skip=$(($1 / 4096)) count=1 iflag=direct status=none 2>/dev/null; }
runs_named() {
	o1=$(off_of 1) && o3=$(off_of 3) && [ -n "$o1" ] && [ -n "$o3" ] &&
		! rd4k "$o1" && rd4k $((o1 + 4096)) &&
		! rd4k "$o3" && ! rd4k $((o3 + 4096)) && ! rd4k $((o3 + 8192)) && rd4k $((o3 + 12288))
}
ktap_test_result "each run is named: volume c, 1 and 3 blocks, at offsets c cannot read" runs_named
listed() {
	[ "$(sort $P/scrub_errors)" = "$(printf 'c %s 4096\nc %s 12288\n' "$o1" "$o3" | sort)" ] &&
		grep -q "unreadable data in volumes: c at byte offset" /tmp/scrub.err
}
ktap_test_result "scrub_errors lists both (c, offset, bytes) and -w says so" listed
ktap_print_msg "scrub_errors: $(tr '\n' ';' <$P/scrub_errors)"
dmesg_since_mark | grep "scrub: volume" | sed 's/^/# /'

# 3. The same while h is overwritten: GC copies, commits and zone resets
# run; passes are started during it.
overwrite() {
	i=0
	while [ $i -lt 160 ]; do
		dd if=/dev/urandom of="$H" bs=$MIB seek=$(( (i * 7) % 40 )) count=1 oflag=direct status=none || return 1
		i=$((i + 1))
	done
	dd if=/dev/urandom of="$H" bs=$MIB count=40 oflag=direct conv=fsync status=none
}
r0=$(sed -n 's/^zones_reset //p' $P/status)
g0=$(sed -n 's/^gc_runs //p' $P/status)
overwrite >/tmp/scrub_ow.err 2>&1 &
W=$!
passes=0
while kill -0 $W 2>/dev/null; do
	echo start >$P/scrub && passes=$((passes + 1))
	sleep 1
done
wait $W
OW=$?
ktap_test_result "overwrites with GC running succeed" [ $OW = 0 ]
ktap_print_msg "$passes passes started; zones reset $r0 -> $(sed -n 's/^zones_reset //p' $P/status), gc_runs $g0 -> $(sed -n 's/^gc_runs //p' $P/status)"
ktap_test_result "GC reset zones during the passes" \
	[ "$(sed -n 's/^zones_reset //p' $P/status)" -gt "$r0" ]
want_h=$(dd if="$H" bs=$MIB iflag=direct status=none | md5sum)
# pass_ends: the pass under way ends (60 s at most), done, with 4 errors.
pass_ends() {
	_t=0
	while [ "$(sstate)" = running ] && [ $_t -lt 60 ]; do
		sleep 1
		_t=$((_t + 1))
	done
	[ "$(sstate)" = done ] && [ "$(sfield errors)" = 4 ]
}
ktap_test_result "the last pass ends and counts the same 4 blocks" pass_ends
ktap_print_msg "scrub: $(cat $P/scrub)"

# 4. Stop, then the bad blocks gone.
echo start >$P/scrub
ktap_test_result "--stop stops a pass (or it was done)" sh -c \
	"zvpoolctl pool scrub --stop sc >/dev/null && s=\$(cut -d' ' -f1 $P/scrub) && { [ \$s = stopped ] || [ \$s = done ]; }"
clearbad
ktap_test_result "without the bad blocks a pass finds nothing" quiet timeout 120 zvpoolctl pool scrub -w sc
# rate_pass: a pass with --rate 32 takes at least what 32 MiB/s allows.
rate_pass() {
	_t0=$(cut -d' ' -f1 /proc/uptime | tr -d .)
	timeout 120 zvpoolctl pool scrub -w --rate 32 sc >/dev/null || return 1
	_ms=$((($(cut -d' ' -f1 /proc/uptime | tr -d .) - _t0) * 10))
	_want=$(($(sfield read_bytes) * 1000 / (32 * MIB)))
	ktap_print_msg "--rate 32: $(sfield read_bytes) bytes in $_ms ms (at least $_want ms)"
	[ "$(sfield rate_mibs)" = 32 ] && [ $_ms -ge $((_want * 9 / 10)) ]
}
ktap_test_result "--rate 32 reads at most 32 MiB/s" rate_pass
# 5. Metadata: a stop and assembly, then a write and a flush: the journal
# goes on over the chain the assembly loaded, which the pass reads back.
# Its header block (block 0 of its set's zone: zones 2 and 3 hold the two
# sets) made unreadable: the pass counts it and a full checkpoint in the
# other set replaces the chain at once; then it is made readable again
# (the old set is written again only by the checkpoint after).
zvpoolctl pool stop sc >/dev/null && zvpoolctl pool assemble sc $D >/dev/null
C=$(dev c)
H=$(dev h)
dd if=/dev/urandom of="$H" bs=$MIB count=1 oflag=direct conv=fsync status=none
g0=$(sed -n 's/^checkpoint_generation //p' $P/status)
set_zone=$((2 + g0 % 2))
MBAD="+$((set_zone * 16384))-$((set_zone * 16384 + 7))"
ktap_print_msg "checkpoint generation $g0: its header at sectors $MBAD"
echo "$MBAD" >$NB/badblocks
dmesg_mark
ktap_test_result "an unreadable checkpoint block: the pass fails (-w)" sh -c \
	"! timeout 120 zvpoolctl pool scrub -w sc 2>/tmp/scrub.err && grep -q ' 1 damaged' /tmp/scrub.err"
echo "$MBAD" | tr '+' '-' >$NB/badblocks
ktap_print_msg "scrub: $(cat $P/scrub)"
g1=$(sed -n 's/^checkpoint_generation //p' $P/status)
repaired() {
	[ "$(sfield meta_errors)" = 1 ] && [ "$(sfield repairs)" = 1 ] && [ "$g1" -gt "$g0" ] &&
		[ $((g1 % 2)) != $((g0 % 2)) ] && log_has "zvpool: sc: scrub: damaged metadata replaced by a full checkpoint" &&
		log_has "zvpool: sc: scrub metadata read error on $D at sector $((set_zone * 16384))"
}
ktap_test_result "it is counted, logged, and a full checkpoint in the other set replaces the chain ($g0 -> $g1)" repaired
meta_clean() {
	timeout 120 zvpoolctl pool scrub -w sc >/dev/null &&
		[ "$(sstate)" = done ] && [ "$(sfield meta_blocks)" -ge 1 ] && [ "$(sfield meta_errors)" = 0 ]
}
ktap_test_result "the next pass reads the new chain back, sound" meta_clean
ktap_print_msg "scrub: $(cat $P/scrub)"

# 6. Superblocks and the journal. Four commits of one block each.
m1=$(sfield meta_blocks)
for i in 1 2 3 4; do
	dd if=/dev/urandom of="$H" bs=4096 count=1 seek=$((i * 7)) oflag=direct conv=fsync status=none
done
journal_read() {
	timeout 120 zvpoolctl pool scrub -w sc >/dev/null && [ "$(sstate)" = done ] &&
		[ "$(sfield meta_blocks)" -ge $((m1 + 4)) ] && [ "$(sfield meta_errors)" = 0 ]
}
ktap_test_result "a pass reads back the journal blocks of 4 commits, sound ($m1 copies read before them)" journal_read
ktap_print_msg "scrub: $(cat $P/scrub)"
# The head of log zone 0 (zone 0, sector 0): a superblock copy.
echo "+0-7" >$NB/badblocks
dmesg_mark
sb_damaged() {
	! timeout 120 zvpoolctl pool scrub -w sc 2>/dev/null && [ "$(sstate)" = done ] &&
		[ "$(sfield meta_errors)" = 1 ] && [ "$(sfield repairs)" = 1 ] &&
		log_has "zvpool: sc: scrub superblock read error on $D at sector 0"
}
ktap_test_result "an unreadable superblock copy is counted and logged, not repaired" sb_damaged
echo "-0-7" >$NB/badblocks
ktap_print_msg "scrub: $(cat $P/scrub)"
# The newest journal block: the last written block of each log zone
# (zones 0 and 1; the one before the checkpoint's position is not read).
wp_of() { blkzone report -o $(($1 * 16384)) -c 1 "$D" | sed -n 's/.*wptr \(0x[0-9a-f]*\).*/\1/p'; }
JBAD=
for z in 0 1; do
	w=$(($(wp_of $z)))
	[ "$w" -gt 8 ] && JBAD="$JBAD +$((z * 16384 + w - 8))-$((z * 16384 + w - 1))"
done
ktap_print_msg "log zone write pointers $(wp_of 0) $(wp_of 1): bad$JBAD"
for r in $JBAD; do echo "$r" >$NB/badblocks; done
g0=$(sed -n 's/^checkpoint_generation //p' $P/status)
dmesg_mark
journal_damaged() {
	! timeout 120 zvpoolctl pool scrub -w sc 2>/dev/null && [ "$(sfield meta_errors)" -ge 1 ] &&
		[ "$(sfield repairs)" = 2 ] && log_has "zvpool: sc: scrub journal read error on $D" &&
		log_has "zvpool: sc: scrub: damaged metadata replaced by a full checkpoint" &&
		[ "$(sed -n 's/^checkpoint_generation //p' $P/status)" -gt "$g0" ]
}
ktap_test_result "an unreadable journal block is counted, logged, and a full checkpoint covers the journal" journal_damaged
for r in $JBAD; do echo "$r" | tr '+' '-' >$NB/badblocks; done
ktap_print_msg "scrub: $(cat $P/scrub)"
ktap_test_result "then a pass finds nothing" quiet timeout 120 zvpoolctl pool scrub -w sc

# 7. Passes while fsync'ed writes keep commits, log-zone switches,
# checkpoints and GC going: the superblock and journal steps (under the
# commit lock) find nothing damaged; no repair is made.
fsync_writes() {
	i=0
	_end=$(($(date +%s) + 15))
	while [ "$(date +%s)" -lt $_end ]; do
		dd if=/dev/urandom of="$H" bs=4096 seek=$(( (i * 613) % 10240 )) count=1 oflag=direct conv=fsync status=none || return 1
		[ $((i % 25)) = 0 ] && { dd if=/dev/urandom of="$H" bs=$MIB seek=$(( (i / 25) % 40 )) count=1 oflag=direct status=none || return 1; }
		i=$((i + 1))
	done
}
rp0=$(sfield repairs)
c0=$(sed -n 's/^checkpoints //p' $P/status)
t0=$(date +%s)
fsync_writes >/tmp/scrub_fs.err 2>&1 &
W=$!
npass=0
nbad=0
mmax=0
while kill -0 $W 2>/dev/null; do
	if timeout 120 zvpoolctl pool scrub -w sc >/dev/null 2>>/tmp/scrub_fs.err; then
		npass=$((npass + 1))
	else
		nbad=$((nbad + 1))
	fi
	m=$(sfield meta_blocks)
	[ "${m:-0}" -gt $mmax ] && mmax=$m
done
wait $W
FW=$?
ktap_print_msg "$npass clean passes, $nbad failed, during $(($(date +%s) - t0)) s of writes; checkpoints $c0 -> $(sed -n 's/^checkpoints //p' $P/status); most metadata copies a pass read $mmax; scrub: $(cat $P/scrub)"
# (GC goes first: under this load a pass takes seconds.) A pass read at
# least one whole journal step (64 blocks) with commits going on: how many
# more, and whether a checkpoint came, depends on the machine.
quiet_passes() {
	[ $FW = 0 ] && [ $npass -ge 1 ] && [ $nbad = 0 ] && [ "$(sfield repairs)" = "$rp0" ] &&
		[ $mmax -ge 64 ]
}
ktap_test_result "passes during fsync'ed writes find nothing and repair nothing" quiet_passes
want_h=$(dd if="$H" bs=$MIB iflag=direct status=none | md5sum)
ktap_test_result "c is unchanged and h reads back as last written" sh -c \
	"[ \"\$(dd if=$C bs=$MIB iflag=direct status=none | md5sum)\" = \"$want_c\" ] &&
	 [ \"\$(dd if=$H bs=$MIB iflag=direct status=none | md5sum)\" = \"$want_h\" ]"
ktap_test_result "the pool stops and reassembles with both volumes intact" sh -c \
	"zvpoolctl pool stop sc >/dev/null && zvpoolctl pool assemble sc $D >/dev/null &&
	 [ \"\$(dd if=\$(zvpoolctl volume show -H -o device sc/c | cut -f2) bs=$MIB iflag=direct status=none | md5sum)\" = \"$want_c\" ] &&
	 [ \"\$(dd if=\$(zvpoolctl volume show -H -o device sc/h | cut -f2) bs=$MIB iflag=direct status=none | md5sum)\" = \"$want_h\" ]"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop sc >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
