#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs zvpool selftests and prints one KTAP document: each program's own KTAP
# output nested (indented four spaces) under one top-level result line, like
# the kselftest runner. Exit status: 0 when no program failed.
DIR=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- $(sed -n 's/^TEST_PROGS := //p' "$DIR/Makefile")
timeout_s=$(sed -n 's/^timeout=//p' "$DIR/settings")
timeout_s=${ZVPOOL_TEST_TIMEOUT:-${timeout_s:-300}}
# A debug kernel (lockdep, KASAN, kmemleak) runs the same tests several
# times slower: scale the per-program limit (like kselftest's
# --override-timeout) rather than shrink the tests.
if [ -e /proc/lockdep ]; then
	timeout_s=$((timeout_s * ${ZVPOOL_DEBUG_TIMEOUT_FACTOR:-4}))
fi

echo "KTAP version 1"
echo "1..$#"
n=0
rc_all=0
for t in "$@"; do
	n=$((n + 1))
	out=/tmp/ktap.$n
	t0=$(cut -d. -f1 /proc/uptime)
	# Which program runs, before its output (printed when it ends): a run
	# cut short by the VM's limit shows where it stopped.
	echo "# $t: started at ${t0} s"
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 30 "$timeout_s" sh "$DIR/$t" >"$out" 2>"$out.err"
	else
		sh "$DIR/$t" >"$out" 2>"$out.err"
	fi
	rc=$?
	t1=$(cut -d. -f1 /proc/uptime)
	sed 's/^/    /' "$out"
	# stderr becomes KTAP diagnostics, so it cannot be mistaken for results.
	sed 's/^/    # stderr: /' "$out.err"
	case $rc in
	0) echo "ok $n selftests: zvpool: $t" ;;
	4) echo "ok $n selftests: zvpool: $t # SKIP" ;;
	124 | 143) echo "not ok $n selftests: zvpool: $t # TIMEOUT ${timeout_s}s"; rc_all=1 ;;
	*) echo "not ok $n selftests: zvpool: $t # exit=$rc"; rc_all=1 ;;
	esac
	# How long each program took, so a run that nears the VM's limit
	# shows which programs to trim.
	echo "# $t: $((t1 - t0)) s"
done
exit $rc_all
