#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Resolves the `# PROF LABEL IOS BUCKET COUNT` lines of
# selftests/zvpool/perf_profile.sh (a profiling kernel booted with
# profile=SHIFT) against the kernel's System.map and prints, per run, the
# functions with the most ticks as CPU microseconds per I/O (ticks / HZ /
# I/Os). /proc/profile does not count ticks in module code (zvpool,
# null_blk): their share is the run's busy time less these functions.
# Usage: profile-report.sh KBUILD RESULTS_LOG [SHIFT [TOP]]
set -euo pipefail
KB=$1 LOG=$2 SHIFT=${3:-2} TOP=${4:-25}
HZ=$(sed -n 's/^CONFIG_HZ=//p' "$KB/.config")
grep -o 'PROF .*' "$LOG" | awk -v shift="$SHIFT" -v hz="$HZ" -v top="$TOP" -v map="$KB/System.map" '
function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
BEGIN {
	# Text symbols, by their offset from _stext (the low 32 bits are enough
	# for a kernel text of less than 4 GiB).
	while ((getline l < map) > 0) {
		split(l, f, " ")
		if (f[3] == "_stext") base = hex(substr(f[1], 9))
		if (f[2] ~ /^[tTW]$/) { a[n] = hex(substr(f[1], 9)); s[n] = f[3]; n++ }
	}
}
{
	lab = $2; ios[lab] = $3; b = $4; c = $5
	if (!(lab in seen)) { seen[lab] = 1; order[nl++] = lab }
	tot[lab] += c
	off = base + b * 2 ^ shift
	lo = 0; hi = n - 1
	while (lo < hi) { m = int((lo + hi + 1) / 2); if (a[m] <= off) lo = m; else hi = m - 1 }
	sym[lab, lo] += c; idx[lab, lo] = 1
}
END {
	for (i = 0; i < nl; i++) {
		lab = order[i]
		printf "== %s: %d I/Os, %d ticks (HZ %d): %.1f us per I/O in kernel text, idle included\n", lab, ios[lab], tot[lab], hz, tot[lab] * 1e6 / hz / ios[lab]
		cmd = "sort -k2,2nr | head -n " top
		for (k in idx) { split(k, p, SUBSEP); if (p[1] == lab) printf "  %-60s %8.2f us/IO %6d\n", s[p[2]], sym[k] * 1e6 / hz / ios[lab], sym[k] | cmd }
		close(cmd)
	}
}'
