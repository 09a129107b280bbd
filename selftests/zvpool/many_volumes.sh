#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Many volumes (the metadata-at-scale issue): a pool holds N volumes and N
# snapshots of them (N = $ZVPOOL_MANY_VOLUMES, 1,000 here, 8,000 in
# `make scale`), `zvpoolctl volume list` lists every one of them through the
# control device /dev/zvpool-control (configfs's `volumes` page holds a few
# dozen), they all come back after the pool is stopped and reassembled, and
# deletes stick. The control device refuses unknown pools and commands with
# one log line each.
#
# Volumes are created through configfs directly (mkdir, size, rmdir: the
# volume stays in the metadata, unbound) so that no block device is made
# for each.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
N=${ZVPOOL_MANY_VOLUMES:-1000}
NB=/sys/kernel/config/nullb/zvmv
P=/sys/kernel/config/zvpool/mv
CTL=/dev/zvpool-control
ktap_print_header
if ! command -v zvpoolctl >/dev/null; then
	ktap_set_plan 1
	ktap_test_skip "many volumes" "needs zvpoolctl"
	ktap_finished
fi
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "many volumes" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
ktap_set_plan 17
dmesg_mark
DMESG_START=$DMESG_MARK

# ask CMD: the control device's answer to CMD (one write, then read to EOF).
ask() { { echo -n "$1" >&3 && cat <&3; } 3<>"$CTL"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# listed: volumes and snapshots zvpoolctl lists.
listed() { echo $(($(zvpoolctl volume list -H -o name mv | wc -l) + $(zvpoolctl snapshot list -H -o name mv | wc -l))); }

# 1 GiB zoned null_blk, 8 MiB zones: a checkpoint set (one zone) holds the
# volume records of 16,384 volumes several times over.
nullb_zoned $NB 1024 8
D=/dev/${NB##*/}
insmod "$KO"
ktap_test_result "pool on a zoned null_blk" quiet zvpoolctl pool create -f mv "$D"
ktap_test_result "control device $CTL exists" [ -c "$CTL" ]

t0=$(now)
make_volumes() {
	i=0
	while [ $i -lt "$N" ]; do
		mkdir $P/v$i && echo 1048576 >$P/v$i/size && rmdir $P/v$i || return 1
		i=$((i + 1))
	done
}
ktap_test_result "$N volumes created" make_volumes
ktap_print_msg "$N volumes in $(since "$t0") s"
t0=$(now)
make_snapshots() {
	i=0
	while [ $i -lt "$N" ]; do
		echo "v$i@s" >$P/snapshot || return 1
		i=$((i + 1))
	done
}
ktap_test_result "$N snapshots created" make_snapshots
ktap_print_msg "$N snapshots in $(since "$t0") s; $(sed -n 's/^checkpoint_blocks //p' $P/status) checkpoint blocks of $(sed -n 's/^checkpoint_capacity //p' $P/status)"

ALL=$((2 * N))
t0=$(now)
ktap_expect_eq "zvpoolctl volume and snapshot list show all $ALL" "$ALL" "$(listed)"
ktap_print_msg "listed in $(since "$t0") s"
ktap_expect_eq "the control device lists all $ALL, snapshots with their origin" \
	"$ALL $N" "$(ask "volumes mv" | awk '{ n++ } / kind=snapshot origin=v[0-9]+ / { s++ } END { print n, s }')"
ktap_test_result "configfs shows one page and counts the rest" sh -c \
	"tail -n 1 $P/volumes | grep -q '^# [0-9]* more volumes not listed'"
ktap_expect_eq "the control device lists the active pools" "mv" "$(ask pools)"

# ctl_refused CMD ERRNO-TEXT LOG-TEXT: the control device refuses CMD with
# ERRNO-TEXT and logs one "zvpool: control: LOG-TEXT" line.
ctl_refused() {
	dmesg_mark
	! ask "$1" >/dev/null 2>/tmp/err && grep -qi "$2" /tmp/err &&
		[ "$(dmesg_since_mark | grep -c "zvpool: control: $3")" = 1 ] && return 0
	ktap_print_msg "$1: $(cat /tmp/err); log: $(dmesg_since_mark | grep zvpool: | tr '\n' ' ')"
	return 1
}
ktap_test_result "unknown pool: ENOENT and one log line" \
	ctl_refused "volumes nosuch" "no such file" "no active pool 'nosuch'"
ktap_test_result "unknown command: EINVAL and one log line" \
	ctl_refused "frobnicate" "invalid" "unknown command 'frobnicate'"

t0=$(now)
ktap_test_result "stop and reassemble" sh -c \
	"zvpoolctl pool stop mv >/dev/null && zvpoolctl pool assemble --no-volumes mv $D >/dev/null"
ktap_print_msg "stop and assembly in $(since "$t0") s"
ktap_expect_eq "all $ALL volumes and snapshots are back" "$ALL" "$(listed)"

delete_some() {
	i=0
	while [ $i -lt "$N" ]; do
		echo "v$i@s" >$P/delete_volume && echo "v$i" >$P/delete_volume || return 1
		i=$((i + 10))
	done
}
ktap_test_result "every tenth volume and its snapshot deleted" delete_some
LEFT=$((ALL - 2 * ((N + 9) / 10)))
ktap_test_result "stop and reassemble again" sh -c \
	"zvpoolctl pool stop mv >/dev/null && zvpoolctl pool assemble --no-volumes mv $D >/dev/null"
ktap_expect_eq "$LEFT volumes left, the deleted ones gone" "$LEFT 0 1" \
	"$(ask "volumes mv" | awk '{ n++ } $2 == "v10" { d++ } $2 == "v11" { k++ } END { print n, d + 0, k + 0 }')"
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop mv >/dev/null && rmmod zvpool && echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_finished
