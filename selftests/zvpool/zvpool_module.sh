#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# zvpool.ko loads and unloads cleanly, exposes /sys/kernel/config/zvpool/features,
# and taints the kernel with nothing but the out-of-tree flag.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
CFS=/sys/kernel/config/zvpool
TAINT_OOT=4096 # TAINT_OOT_MODULE (bit 12)

ktap_print_header
if [ ! -f "$KO" ]; then
	ktap_set_plan 1
	ktap_test_skip "zvpool_module" "no zvpool.ko at $KO"
	ktap_finished
fi
if lsmod 2>/dev/null | grep -q '^zvpool '; then
	rmmod zvpool 2>/dev/null
fi
ktap_set_plan 12

taint_before=$(cat /proc/sys/kernel/tainted)
dmesg_mark
ktap_test_result "insmod succeeds" insmod "$KO"
ktap_test_result "module listed in /proc/modules" grep -q '^zvpool ' /proc/modules
ktap_test_result "configfs subsystem directory exists" test -d "$CFS"

features=$(cat "$CFS/features" 2>/dev/null)
ktap_expect_eq "features: format version" "format_version 1" "$(echo "$features" | head -n1)"
ktap_test_result "features: feature words listed" sh -c "echo '$features' | grep -qE '^features( [a-z-]+)+\$'"
if (echo 1 >"$CFS/features") 2>/dev/null; then
	ktap_print_msg "writing features succeeded"
	ktap_test_fail "features is read-only"
else
	ktap_test_pass "features is read-only"
fi

taint_after=$(cat /proc/sys/kernel/tainted)
ktap_expect_eq "taint after load is only out-of-tree" "$((taint_before | TAINT_OOT))" "$taint_after"
ktap_test_result "load logged its format version" log_has 'zvpool: loading (on-disk format v1'
dmesg_clean_since_mark "no WARN/oops while loaded"

dmesg_mark
ktap_test_result "rmmod succeeds" rmmod zvpool
ktap_test_result "configfs subsystem gone after unload" test ! -e "$CFS"

# Repeated load/unload cycles must not leak or warn.
ok=1
for _ in 1 2 3; do
	insmod "$KO" && cat "$CFS/features" >/dev/null && rmmod zvpool || ok=0
done
if [ $ok = 1 ]; then
	dmesg_clean_since_mark "unload and 3 reload cycles without WARN/oops"
else
	ktap_test_fail "unload and 3 reload cycles without WARN/oops"
fi
ktap_finished
