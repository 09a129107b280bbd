#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A checkpoint does not stop the pool: it is written in steps, each planned
# under the engine lock and written without it (the engine issue).
#
# zvpool.ko is loaded with the test hook ckpt_step_delay_ms=8000: after each
# step but the last, a checkpoint waits 8 s holding only the commit lock.
# The first commit after assembly is a checkpoint: an fsync'ed write after
# re-assembly starts one. While it is in flight (status
# checkpoint_in_flight 1), reads and writes of another volume and the
# status must complete — each is checked to have returned while the same
# checkpoint was still in flight (an order, not a time). A volume create
# must wait for the checkpoint's end (volume operations are not replayed
# over a half-written image). Writes that fill the journal record queue
# meanwhile wait for its end and share one commit (counted: an order, not
# a time). Afterwards the pool stops and reassembles with every flushed
# write intact.
#
# Before that, on the pool as formatted (its journal in use: the checkpoint
# after an assembly cannot take journal commits), a checkpoint started by
# the journal interval (test hook ckpt_interval=1) takes a journal commit
# between its steps for a flush issued meanwhile: the flush returns while
# the checkpoint is still in flight.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvcks
P=/sys/kernel/config/zvpool/cks
MIB=1048576
ktap_print_header
for t in zvpoolctl md5sum; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "checkpoint in steps" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "checkpoint in steps" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 16
dmesg_mark

nullb_zoned $NB 256 8
D=/dev/${NB##*/}
st() { sed -n "s/^$1 //p" $P/status; }
dev_of() { zvpoolctl volume show -H -o device "cks/$1" | cut -f2; }
md5_of() { dd if="$(dev_of "$1")" bs=$MIB count="$2" iflag=direct status=none | md5sum; }

ktap_test_result "load with ckpt_step_delay_ms=8000 ckpt_interval=1" \
	insmod "$KO" ckpt_step_delay_ms=8000 ckpt_interval=1
ktap_test_result "pool and volumes a, b" quiet sh -c \
	"zvpoolctl pool create -f cks $D && zvpoolctl volume create cks/a --size 32M &&
	 zvpoolctl volume create cks/b --size 32M &&
	 dd if=/dev/urandom of=\$(zvpoolctl volume show -H -o device cks/b | cut -f2) bs=$MIB count=16 oflag=direct conv=fsync status=none"

# in_flight_after CMD...: CMD succeeds and returns while the checkpoint
# that was in flight when checkpoints read $c0 is still in flight.
in_flight_after() {
	"$@" || return 1
	[ "$(st checkpoint_in_flight)" = 1 ] && [ "$(st checkpoints)" = "$c0" ] ||
		{ echo "# the checkpoint ended first (checkpoints $(st checkpoints))"; return 1; }
}
wait_in_flight() {
	t=0
	while [ "$(st checkpoint_in_flight)" != 1 ] && [ $t -lt 300 ]; do
		sleep 0.1
		t=$((t + 1))
	done
	[ "$(st checkpoint_in_flight)" = 1 ]
}

# A checkpoint of the running pool, with a few steps (the random writes of
# a 160 MiB volume: about 80 table blocks changed, 28 a step), started by
# a flush once the journal since the last one holds 64 records.
if command -v fio >/dev/null; then
	zvpoolctl volume create cks/big --size 160M >/dev/null &&
		fio --name=big --filename="$(dev_of big)" --direct=1 --ioengine=libaio --rw=randwrite \
			--bs=4k --iodepth=16 --size=160M --io_size=4M --randrepeat=0 >/dev/null 2>&1
	c0=$(st checkpoints)
	jc0=$(st checkpoint_journal_commits)
	(while [ "$(st checkpoint_in_flight)" != 1 ] && [ "$(st checkpoints)" = "$c0" ]; do
		dd if=/dev/zero of="$(dev_of big)" bs=4k count=1 oflag=direct conv=fsync status=none
	done) &
	T=$!
	wait_in_flight
	c0=$(st checkpoints)
	ktap_test_result "a checkpoint of the running pool is in flight" [ "$(st checkpoint_in_flight)" = 1 ]
	flush_b() {
		dd if=/dev/urandom of="$(dev_of b)" bs=4k count=8 seek=1000 oflag=direct conv=fsync status=none &&
			[ "$(st checkpoint_journal_commits)" -gt "$jc0" ]
	}
	ktap_test_result "a flush returns meanwhile (a journal commit between its steps)" \
		in_flight_after flush_b
	ktap_print_msg "journal commits between checkpoint steps: $jc0 -> $(st checkpoint_journal_commits)"
	wait $T
	ktap_test_result "the checkpoint ends; volume big deleted" quiet sh -c \
		"[ $(st checkpoints) -gt $c0 ] && zvpoolctl volume delete cks/big"
else
	ktap_test_skip "a checkpoint of the running pool is in flight" "needs fio"
	ktap_test_skip "a flush returns meanwhile (a journal commit between its steps)" "needs fio"
	ktap_test_skip "the checkpoint ends; volume big deleted" "needs fio"
fi
B_SUM=$(md5_of b 16)
ktap_test_result "stop and reassemble (the next commit is a checkpoint)" quiet sh -c \
	"zvpoolctl pool stop cks && zvpoolctl pool assemble cks $D"
c0=$(st checkpoints)

# The checkpoint, started by an fsync'ed write of volume a.
dd if=/dev/urandom of="$(dev_of a)" bs=$MIB count=1 oflag=direct conv=fsync status=none &
W=$!
wait_in_flight
ktap_test_result "a checkpoint is in flight" [ "$(st checkpoint_in_flight)" = 1 ]
read_b() { [ "$(md5_of b 16)" = "$B_SUM" ]; }
write_b() {
	dd if=/dev/urandom of=/tmp/blk bs=64k count=1 status=none &&
		dd if=/tmp/blk of="$(dev_of b)" bs=64k seek=300 count=1 oflag=direct status=none &&
		[ "$(dd if="$(dev_of b)" bs=64k skip=300 count=1 iflag=direct status=none | md5sum)" = "$(md5sum </tmp/blk)" ]
}
ktap_test_result "reads of another volume complete meanwhile" in_flight_after read_b
ktap_test_result "writes of another volume complete meanwhile" in_flight_after write_b
ktap_test_result "status answers meanwhile" in_flight_after sh -c "cat $P/status >/dev/null"
# Writes fill the journal record queue while the checkpoint holds the
# commit lock: every write in flight (4 x QD32) is refused and waits for
# it. When it ends, one commit makes room for them all; each used to run
# a commit of its own, one after the other (seconds each under load).
wc0=$(sed -n 's/^write_wait_commit \([0-9]*\) .*/\1/p' $P/status)
rr0=$(st write_commit_runs)
FIO=
if command -v fio >/dev/null; then
	fio --name=q --filename="$(dev_of b)" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
		--iodepth=32 --numjobs=4 --size=32M --time_based --runtime=3 --randrepeat=0 \
		--norandommap >/tmp/q.out 2>&1 &
	FIO=$!
fi
if [ "$(st checkpoint_in_flight)" = 1 ]; then
	zvpoolctl volume create cks/c --size 8M >/tmp/create.out 2>&1
	rc=$?
	ktap_test_result "a volume create waits for the checkpoint's end" \
		sh -c "[ $rc = 0 ] && [ $(st checkpoints) -gt $c0 ]"
else
	ktap_test_fail "a volume create waits for the checkpoint's end"
fi
wait $W
ktap_test_result "the fsync'ed write that started it completed" [ $? = 0 ]
if [ -n "$FIO" ]; then
	wait $FIO
	frc=$?
	waited=$(($(sed -n 's/^write_wait_commit \([0-9]*\) .*/\1/p' $P/status) - wc0))
	runs=$(($(st write_commit_runs) - rr0))
	ktap_print_msg "writes refused for a full record queue: $waited; commits they ran: $runs (fio exit $frc)"
	if [ "$waited" -ge 64 ]; then
		ktap_test_result "writes refused for a full record queue share commits (at most 1 in 8 runs one)" \
			sh -c "[ $frc = 0 ] && [ \"$runs\" -le $((waited / 8)) ]"
	else
		ktap_test_skip "writes refused for a full record queue share commits" \
			"the queue did not fill during the checkpoint ($waited writes refused)"
	fi
else
	ktap_test_skip "writes refused for a full record queue share commits" "needs fio"
fi
ktap_print_msg "checkpoints $c0 -> $(st checkpoints), in flight $(st checkpoint_in_flight)"
A_SUM=$(md5_of a 1)
sync
B_SUM=$(md5_of b 16)
ktap_test_result "stop and reassemble with every flushed write intact" sh -c \
	"zvpoolctl pool stop cks >/dev/null && zvpoolctl pool assemble cks $D >/dev/null &&
	 [ \"\$(dd if=\$(zvpoolctl volume show -H -o device cks/a | cut -f2) bs=$MIB count=1 iflag=direct status=none | md5sum)\" = \"$A_SUM\" ] &&
	 [ \"\$(dd if=\$(zvpoolctl volume show -H -o device cks/b | cut -f2) bs=$MIB count=16 iflag=direct status=none | md5sum)\" = \"$B_SUM\" ] &&
	 zvpoolctl volume show cks/c >/dev/null"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop cks >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
