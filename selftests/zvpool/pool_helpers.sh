# SPDX-License-Identifier: GPL-2.0
# Helpers of the tests that build a pool over real devices, stop it and
# assemble it again (damage.sh, meta_copies.sh). The caller sets P (the
# pool's configfs directory) and DEVS (its devices, in member order), and
# writes the 1 MiB patterns /tmp/pat.K (make_patterns).

# make_patterns: /tmp/pat.0 .. /tmp/pat.5, 1 MiB of random data each.
make_patterns() {
	for _k in 0 1 2 3 4 5; do
		dd if=/dev/urandom of=/tmp/pat.$_k bs=1M count=1 status=none
	done
}
# pool_up MODE [FORMAT]: defines the pool over DEVS, sets assemble_mode
# (unless normal) and format (if given), and enables it.
pool_up() {
	mkdir -p $P || return 1
	for _d in $DEVS; do
		echo "$_d" >$P/devices || return 1
	done
	[ -z "$2" ] || echo "$2" >$P/format || return 1
	[ "$1" = normal ] || echo "$1" >$P/assemble_mode || return 1
	echo 1 >$P/enable
}
# pool_down: unbinds volume v, stops and forgets the pool.
pool_down() {
	[ -d $P/v ] && { echo 0 >$P/v/enable; rmdir $P/v; }
	[ "$(cat $P/enable 2>/dev/null)" = 1 ] && echo 0 >$P/enable
	rmdir $P 2>/dev/null
	return 0
}
# vol_up [SIZE]: binds volume v (creating it when SIZE is given); sets D.
vol_up() {
	mkdir $P/v || return 1
	[ -z "$1" ] || echo "$1" >$P/v/size || return 1
	echo 1 >$P/v/enable || return 1
	D=/dev/$(cut -d' ' -f1 $P/v/dev)
}
# put K / has K: region K (1 MiB at K MiB) of the volume D written with /
# holds /tmp/pat.K.
put() { dd if=/tmp/pat.$1 of="$D" bs=1M seek="$1" count=1 oflag=direct conv=fsync status=none; }
has() { dd if="$D" bs=1M skip="$1" count=1 iflag=direct status=none | cmp -s - /tmp/pat.$1; }
# step WHAT CMD...: runs CMD, says which step failed (with the last zvpool
# log lines).
step() {
	_what=$1
	shift
	"$@" && return 0
	ktap_print_msg "step failed: $_what"
	dmesg | grep zvpool | tail -n 4 | sed 's/^/# /'
	return 1
}
# need_zns_and_conv NAME TOOL...: ZNS (the VM's second ZNS namespace) and
# CONV (its first conventional one); or a KTAP skip naming what is missing
# (a tool, zvpool.ko at KO, a namespace), and the end of the program.
need_zns_and_conv() {
	_name=$1
	shift
	for _t in "$@"; do
		if ! command -v "$_t" >/dev/null; then
			ktap_set_plan 1
			ktap_test_skip "$_name" "needs $_t"
			ktap_finished
		fi
	done
	ZNS=$(zns_dev 1)
	set -- $ZV_CONV
	CONV=$(dev_for "$(echo "$1" | cut -d: -f2)")
	if [ ! -f "$KO" ] || [ -z "$ZNS" ] || [ -z "$CONV" ]; then
		ktap_set_plan 1
		ktap_test_skip "$_name" "needs zvpool.ko, a ZNS and a conventional namespace"
		ktap_finished
	fi
}
