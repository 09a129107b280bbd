#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The kernel crate's files (rust/*.rs) must not import each other in a
# cycle (Documentation/design.md, "Layers"): a file that implements part
# of an ActivePool imports pool.rs, which imports only the state types it
# holds. Reads every `crate::NAME` a file names (kwrap and zvcore are the
# layers below: not counted) and prints each cycle found; exits 1 if any.
#
#   scripts/module-imports.sh [DIR]      (DIR: rust/ of the tree by default)
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)/rust}
shopt -s nullglob
files=("$dir"/*.rs)
[ ${#files[@]} -gt 0 ] || {
	echo "module-imports: no .rs files in $dir" >&2
	exit 2
}
for f in "${files[@]}"; do
	m=$(basename "$f" .rs)
	grep -o 'crate::[a-z_][a-z_0-9]*' "$f" | sed "s/^crate::/$m /" || true
done | sort -u | awk '
	$1 != $2 && $2 != "kwrap" && $2 != "zvcore" { dep[$1] = dep[$1] " " $2; node[$1] = 1; node[$2] = 1 }
	function visit(n,    ds, k, i, d, cyc) {
		color[n] = 1; stack[++depth] = n
		k = split(dep[n], ds, " ")
		for (i = 1; i <= k; i++) {
			d = ds[i]
			if (color[d] == 1) {
				for (j = depth; j > 1 && stack[j] != d; j--) {}
				cyc = stack[j]
				for (j++; j <= depth; j++) cyc = cyc " -> " stack[j]
				print "import cycle: " cyc " -> " d
				found = 1
			} else if (color[d] == 0) {
				visit(d)
			}
		}
		color[n] = 2; depth--
	}
	END {
		for (n in node) if (color[n] == 0) visit(n)
		exit found
	}'
