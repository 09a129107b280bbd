#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make demo`'s guest script, run to its end as a test: every step of what
# a user tries first works (a pool on the ZNS namespaces, a mirrored
# volume, ext4, a gold image and its clones, limits, quotas, stop and
# check, a degraded assembly of a pool with snapshots where the mirrored
# volume reads back whole, a disk replaced online). Its output
# is kept as KTAP comments when it fails.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

DEMO=/usr/share/zvpool/demo.sh
ktap_print_header
if [ ! -x "$DEMO" ] || [ ! -f /etc/zvpool/vm.env ] || ! command -v blkzone >/dev/null; then
	ktap_set_plan 1
	ktap_test_skip "demo" "needs $DEMO, the VM's devices and blkzone"
	ktap_finished
fi
ktap_set_plan 2
lsmod | grep -q '^zvpool ' && rmmod zvpool
# The demo creates its pool on blank ZNS namespaces (a fresh VM's); the
# tests before this one left data on them.
. /etc/zvpool/vm.env
. "$DIR/vm_devices.sh"
for z in $(zns_dev 0) $(zns_dev 1); do
	blkzone reset "$z" || ktap_print_msg "cannot reset the zones of $z"
done
dmesg_mark
if "$DEMO" >/tmp/demo.out 2>&1; then
	ktap_test_pass "the demo runs to its end"
else
	tail -n 40 /tmp/demo.out | sed 's/^/# /'
	ktap_test_fail "the demo runs to its end"
fi
dmesg_clean_since_mark "no kernel warning, lockdep report or oops"
rm -f /tmp/demo.out
ktap_finished
