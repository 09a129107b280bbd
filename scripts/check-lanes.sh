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
# cuts after its programs (LANE2_TAIL seconds), so it starts with them.
# gc_zns.sh varied most (180-406 s) until GC stopped rescanning the block
# tables each batch and the lanes left round-robin TCG (December 2026: 40 s
# alone, about twice that next to the other lane). A
# program missing from the table counts DEFAULT seconds: a new program
# runs either way, the table only balances the lanes. Each lane keeps the
# Makefile's order.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
progs=$(sed -n 's/^TEST_PROGS := //p' "$top/selftests/zvpool/Makefile")
[ -n "$progs" ] || { echo "check-lanes.sh: no TEST_PROGS in selftests/zvpool/Makefile" >&2; exit 1; }
awk -v progs="$progs" '
BEGIN {
	LANE2_TAIL = 410; DEFAULT = 10
	split("gc.sh 45 gc_zns.sh 80 damage.sh 81 snapshot.sh 56 qos.sh 98 " \
	      "nomem.sh 62 tenants.sh 95 tables.sh 40 gc_placement.sh 41 members.sh 33 " \
	      "engine.sh 44 zone_limit.sh 42 meta_full.sh 25 stress.sh 35 deltas.sh 21 " \
	      "gc_errors.sh 19 images_streams.sh 26 overcommit.sh 12 volume_pool.sh 10 " \
	      "quota.sh 5 import_ident.sh 9 nvmet_export.sh 10 ckpt_steps.sh 10 " \
	      "many_volumes.sh 7 zvpoolctl.sh 5 health.sh 5 zone_cond.sh 2 meta_copies.sh 12 degraded.sh 6 member_remove.sh 19 tiering.sh 13 demo_smoke.sh 6 " \
	      "scrub.sh 34 blkcg.sh 3 lower_errors.sh 1 zoned_devices.sh 1 zvpool_module.sh 1 pool_config.sh 1", t, " ")
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
