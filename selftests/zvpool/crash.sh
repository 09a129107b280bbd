#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Crash consistency: one power cut per run, across two boots with
# persistent images (scripts/check.sh runs many seeded crash points).
#  1. (zvpool.phase=1) a small pool (one zloop member with conventional and
#     sequential zones, like an SMR drive, on ext4 on the conventional NVMe
#     namespace) and a volume at ~70 % of it; `zvcrash write` writes stamped
#     blocks in rounds, each followed by a flush (the rounds overwrite, so GC
#     runs), and reports every round whose flush completed straight to the
#     results port; at a seeded point a second zloop device is added to
#     the pool online (`pool add`), then (seeded) either evacuated again
#     (`pool evacuate`) or volume v placed on it (`volume migrate --to`),
#     both kept in the metadata; after a seeded delay the guest reboots at once with
#     sysrq-b: no sync, no unmount, the page cache of the zone files is lost
#     (a power cut for everything below the NVMe device).
#  2. (zvpool.phase=2, zvpool.crash=SEED:DELAY:DURABLE) restore the zloop
#     devices, import the pool by a scan (one or two members, whichever the
#     cut left committed; recovery, then the core's verifier) and check
#     every block with `zvcrash verify`: each holds what the newest durable
#     round wrote (or zeros), or what a round in flight at the cut wrote;
#     nothing else. Meanwhile zvcrash takes a snapshot after every fourth
#     round (and deletes the one before): every snapshot that exists after
#     the cut must hold exactly the rounds up to its own. An evacuation or
#     a placement the cut left committed is under way again after the
#     import and ends (resumable); the data still verifies after it.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
VMENV=${ZVPOOL_VM_ENV:-/etc/zvpool/vm.env}
if [ -z "${ZVPOOL_PHASE:-}" ] || [ -z "${ZVPOOL_CRASH:-}" ] || ! command -v zvcrash >/dev/null ||
	! command -v zvpoolctl >/dev/null || [ ! -f "$VMENV" ] || [ ! -f /lib/modules/zloop.ko ]; then
	ktap_print_header
	ktap_set_plan 1
	ktap_test_skip "crash" "runs as power-cut pairs of boots (zvpool.phase=1/2, zvpool.crash=..., see scripts/check.sh) with zvcrash and zloop.ko"
	ktap_finished
fi
. "$VMENV"
. "$DIR/vm_devices.sh"
set -- $ZV_CONV
CONV=$(dev_for "$(echo "$1" | cut -d: -f2)")
IFS=: read -r SEED DELAY DURABLE <<EOF
$ZVPOOL_CRASH
EOF
PER_ROUND=256
Z=/dev/zloop0
Z1=/dev/zloop1
zloop_up() {
	mkdir -p /zl && mount -t ext4 "$CONV" /zl && mkdir -p /zl/0 /zl/1 &&
		insmod /lib/modules/zloop.ko &&
		echo "add id=0,capacity_mb=104,zone_size_mb=4,conv_zones=2,base_dir=/zl" >/dev/zloop-control &&
		echo "add id=1,capacity_mb=104,zone_size_mb=4,conv_zones=2,base_dir=/zl" >/dev/zloop-control
}

case "$ZVPOOL_PHASE" in
1)
	# Not KTAP: this boot ends in a power cut. Everything goes straight to
	# the results port, which the host reads after QEMU exited.
	R=/dev/ttyS1
	[ -c $R ] || R=/dev/console
	fail() { echo "ZVPOOL-CRASH-SETUP-FAILED $*" >$R; cat /tmp/out >$R 2>/dev/null; exit 1; }
	{ mkfs.ext4 -q -F "$CONV" && zloop_up; } >/tmp/out 2>&1 || fail "zloop"
	insmod "$KO" || fail "insmod"
	# The pool cache (names are not on the members) on the zone files'
	# file system, made durable before the writes begin.
	zvpoolctl --cache /zl/cr.cache pool create -f cr "$Z" >/tmp/out 2>&1 && sync || fail "pool create"
	zvpoolctl volume create cr/v --size 56M >/tmp/out 2>&1 || fail "volume create"
	V=$(zvpoolctl volume show -H -o device cr/v | cut -f2)
	echo "ZVPOOL-CRASH writing: seed $SEED, power cut after ${DELAY}s" >$R
	zvcrash write "$V" "$SEED" $PER_ROUND /sys/kernel/config/zvpool/cr v 4 >$R 2>&1 &
	# A second member is added online at a seeded point of the run (10 to
	# 99 % of the delay): some cuts land in the middle of the add.
	K=$(( (SEED >> 16) % 5 ))
	set -- 10 30 50 70 99
	shift $K
	ADD_CS=$(( DELAY * $1 ))
	REST_CS=$(( DELAY * 100 - ADD_CS ))
	sleep "$(printf '%d.%02d' $((ADD_CS / 100)) $((ADD_CS % 100)))"
	echo "ZVPOOL-CRASH adding $Z1 after ${ADD_CS}0 ms" >$R
	# Once added, the new member is evacuated again, or volume v is
	# placed on it (seeded): cuts land during the moves, and the
	# assembly must resume what was committed.
	if [ $(( (SEED >> 20) % 2 )) = 0 ]; then
		MOVE="zvpoolctl pool evacuate cr $Z1"
	else
		MOVE="zvpoolctl volume migrate --to $Z1 cr/v"
	fi
	{ zvpoolctl pool add cr "$Z1" && echo "ZVPOOL-CRASH $MOVE" && $MOVE; } >$R 2>&1 &
	sleep "$(printf '%d.%02d' $((REST_CS / 100)) $((REST_CS % 100)))"
	echo "ZVPOOL-CRASH gc_runs $(sed -n 's/^gc_runs //p' /sys/kernel/config/zvpool/cr/status) zones_reset $(sed -n 's/^zones_reset //p' /sys/kernel/config/zvpool/cr/status)" >$R
	echo b >/proc/sysrq-trigger
	sleep 10
	fail "still running after sysrq-b"
	;;
2)
	ktap_print_header
	ktap_set_plan 7
	dmesg_mark
		ktap_print_msg "seed $SEED, power cut after ${DELAY}s, $DURABLE rounds durable"
	ktap_test_result "zloop device restored after the power cut" quiet zloop_up
	insmod "$KO"
	# Found by a scan: the member added before the cut belongs to the pool
	# once the journal names it, or once the new device has the pool's
	# superblock; a device the add never reached is not one of its own.
	ktap_test_result "pool import finds its members (recovery and verifier)" \
		quiet zvpoolctl --cache /zl/cr.cache pool import cr
	dmesg | grep 'zvpool: cr: assembled' | sed 's/^/# /'
	ktap_print_msg "members after the cut: $(sed -n 's/^members //p' /sys/kernel/config/zvpool/cr/status)"
	V=$(zvpoolctl volume show -H -o device cr/v | cut -f2)
	if zvcrash verify "$V" "$SEED" "$DURABLE" $PER_ROUND >/tmp/out 2>&1; then
		sed 's/^/# /; s/^# # /# /' /tmp/out
		ktap_test_pass "every block holds a durable or in-flight write, nothing else"
	else
		sed 's/^/# /; s/^# # /# /' /tmp/out
		ktap_test_fail "every block holds a durable or in-flight write, nothing else"
	fi
	# Snapshots taken before the cut: v@rN holds rounds 1..=N exactly.
	P=/sys/kernel/config/zvpool/cr
	snaps=$(sed -n 's/^[0-9]* \(v@r[0-9]*\) .*/\1/p' $P/volumes)
	nsnap=0 sbad=0
	for sn in $snaps; do
		n=${sn#v@r}
		if mkdir $P/$sn && echo 1 >$P/$sn/enable &&
			zvcrash verify "/dev/$(cut -d' ' -f1 $P/$sn/dev)" "$SEED" "$n" $PER_ROUND >/tmp/out 2>&1; then
			sed 's/^/# /; s/^# # /# /' /tmp/out
		else
			sed 's/^/# /; s/^# # /# /' /tmp/out
			sbad=$((sbad + 1))
		fi
		nsnap=$((nsnap + 1))
		echo 0 >$P/$sn/enable
		rmdir $P/$sn
	done
	if [ $nsnap = 0 ]; then
		ktap_test_skip "every snapshot holds exactly the rounds before it" "no snapshot existed at the cut"
	else
		ktap_expect_eq "every snapshot holds exactly the rounds before it ($nsnap checked)" 0 $sbad
	fi
	# What the metadata kept of a move goes on, and ends.
	EV=$(sed -n 's/^evacuating_member //p' $P/status)
	PL=$(sed -n 's/^[0-9]* v .*placement=\([^ ]*\).*/\1/p' $P/volumes)
	ktap_print_msg "after the import: evacuating member '${EV:-none}', v placed on '${PL:-any}'; migrate: $(head -n1 $P/migrate)"
	i=0
	if [ -n "$EV" ]; then
		while [ "$(sed -n 's/^evacuation_left_bytes //p' $P/status)" != 0 ] && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		ktap_expect_eq "the evacuation resumed by the import ends ($((i / 10)) s)" 0 \
			"$(sed -n 's/^evacuation_left_bytes //p' $P/status)"
	elif [ -n "$PL" ] && [ "$PL" != any ]; then
		while ! grep -q "^v $PL done " $P/migrate && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		ktap_test_result "the placement's walk resumed by the import ends ($((i / 10)) s)" \
			grep -q "^v $PL done " $P/migrate
	else
		ktap_test_skip "a move kept in the metadata is resumed" "no evacuation or placement was committed at the cut"
	fi
	if zvcrash verify "$V" "$SEED" "$DURABLE" $PER_ROUND >/tmp/out 2>&1; then
		ktap_test_pass "every block still verifies after the move"
	else
		sed 's/^/# /; s/^# # /# /' /tmp/out
		ktap_test_fail "every block still verifies after the move"
	fi
	zvpoolctl pool stop cr >/dev/null 2>&1
	dmesg_clean_since_mark "no WARN/oops"
	ktap_finished
	;;
esac
