#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Splits the VM selftest programs (TEST_PROGS of selftests/zvpool/Makefile)
# into the two lanes `make check` runs at once, one VM each, and prints
# them as one line: "PROG,PROG,... PROG,PROG,...".
#
# The split is by expected time (longest first, each program to the lane
# with less time so far), from the table below: seconds a program took in
# the main VM run of `make check` under TCG (the "# prog.sh: N s" lines of
# build/vm*/results.log). Lane 2 also runs the reboot test and the power
# cuts after its programs (LANE2_TAIL seconds), so it starts with them. A
# program missing from the table counts DEFAULT seconds: a new program
# runs either way, the table only balances the lanes. Each lane keeps the
# Makefile's order.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
progs=$(sed -n 's/^TEST_PROGS := //p' "$top/selftests/zvpool/Makefile")
[ -n "$progs" ] || { echo "check-lanes.sh: no TEST_PROGS in selftests/zvpool/Makefile" >&2; exit 1; }
awk -v progs="$progs" '
BEGIN {
	LANE2_TAIL = 370; DEFAULT = 10
	split("gc.sh 130 gc_zns.sh 285 damage.sh 150 snapshot.sh 100 qos.sh 105 " \
	      "nomem.sh 72 tenants.sh 68 tables.sh 106 gc_placement.sh 59 members.sh 53 " \
	      "engine.sh 46 zone_limit.sh 45 meta_full.sh 45 stress.sh 42 deltas.sh 34 " \
	      "gc_errors.sh 29 images_streams.sh 36 overcommit.sh 20 volume_pool.sh 19 " \
	      "quota.sh 13 import_ident.sh 12 nvmet_export.sh 15 ckpt_steps.sh 11 " \
	      "many_volumes.sh 9 zvpoolctl.sh 8 health.sh 7 zone_cond.sh 7 meta_copies.sh 20 degraded.sh 11", t, " ")
	for (i = 1; i < length(t); i += 2) est[t[i]] = t[i + 1]
	n = split(progs, p, " ")
	for (i = 1; i <= n; i++) { s[i] = (p[i] in est) ? est[p[i]] : DEFAULT; order[i] = i }
	# Longest first (insertion sort: a few dozen programs).
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && s[order[j]] > s[order[j - 1]]; j--) { k = order[j]; order[j] = order[j - 1]; order[j - 1] = k }
	load[1] = 0; load[2] = LANE2_TAIL
	for (i = 1; i <= n; i++) { l = (load[1] <= load[2]) ? 1 : 2; lane[order[i]] = l; load[l] += s[order[i]] }
	for (l = 1; l <= 2; l++) {
		out = ""
		for (i = 1; i <= n; i++) if (lane[i] == l) out = out (out == "" ? "" : ",") p[i]
		printf "%s%s", out, (l == 1 ? " " : "\n")
	}
}'
