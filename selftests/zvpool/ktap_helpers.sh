#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Minimal KTAP helpers for zvpool's selftests (POSIX sh / busybox ash),
# modelled on tools/testing/selftests/kselftest/ktap_helpers.sh.
# Exit codes follow kselftest: 0 pass, 1 fail, 4 skip.

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

KTAP_TESTNO=1
KTAP_CNT_PASS=0
KTAP_CNT_FAIL=0
KTAP_CNT_SKIP=0

ktap_print_header() {
	echo "KTAP version 1"
}

ktap_set_plan() {
	echo "1..$1"
}

ktap_print_msg() {
	echo "# $*"
}

ktap_test_pass() {
	echo "ok $KTAP_TESTNO $1"
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
}

ktap_test_fail() {
	echo "not ok $KTAP_TESTNO $1"
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
}

# ktap_test_skip NAME REASON
ktap_test_skip() {
	echo "ok $KTAP_TESTNO $1 # SKIP $2"
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
}

# ktap_test_result NAME CMD...: runs CMD; pass if it exits 0.
ktap_test_result() {
	_name=$1
	shift
	if "$@"; then ktap_test_pass "$_name"; else ktap_test_fail "$_name"; fi
}

# ktap_expect_eq NAME EXPECTED ACTUAL
ktap_expect_eq() {
	if [ "$2" = "$3" ]; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "$1: expected '$2', got '$3'"
		ktap_test_fail "$1"
	fi
}

ktap_finished() {
	ktap_print_msg "Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL xfail:0 xpass:0 skip:$KTAP_CNT_SKIP error:0"
	if [ "$KTAP_CNT_FAIL" -gt 0 ]; then
		exit $KSFT_FAIL
	elif [ "$KTAP_CNT_PASS" -eq 0 ] && [ "$KTAP_CNT_SKIP" -gt 0 ]; then
		exit $KSFT_SKIP
	fi
	exit $KSFT_PASS
}

# Kernel log lines that must never appear during a test.
dmesg_bad_pattern='WARNING:|BUG:|Oops|general protection|Kernel panic|KASAN|UBSAN|possible circular locking|possible recursive locking|INFO: task .* blocked|sleeping function called from invalid context|kmemleak|Call Trace:'

# dmesg_mark: remember where the kernel log is now, as a unique line
# written to it (a line count goes wrong once the log buffer wraps, which
# it does after a few tests).
dmesg_mark() {
	KTAP_MARKS=$((${KTAP_MARKS:-0} + 1))
	DMESG_MARK="ktap-mark-$$-$KTAP_MARKS"
	echo "$DMESG_MARK" >/dev/kmsg
}

# dmesg_since_mark: kernel log lines since dmesg_mark (the whole log if the
# mark has left the buffer: never less than what happened since).
dmesg_since_mark() {
	dmesg | awk -v m="$DMESG_MARK" '{ l[NR] = $0 } index($0, m) { s = NR } END { for (i = s + 1; i <= NR; i++) print l[i] }'
}

# log_has PATTERN / log_lacks PATTERN: a kernel log line since the mark
# matches PATTERN (grep), or none does.
log_has() { dmesg_since_mark | grep -q "$1"; }
log_lacks() { ! dmesg_since_mark | grep -q "$1"; }

# dmesg_clean_since_mark NAME: a test case that fails on a WARN/oops/... since the mark.
dmesg_clean_since_mark() {
	_bad=$(dmesg_since_mark | grep -E "$dmesg_bad_pattern")
	if [ -n "$_bad" ]; then
		echo "$_bad" | sed 's/^/# dmesg: /'
		ktap_test_fail "$1"
	else
		ktap_test_pass "$1"
	fi
}

# refused NAME VALUE FILE ERRNO-TEXT LOG-PATTERN: writing VALUE to FILE fails
# with ERRNO-TEXT and logs one "zvpool: ...LOG-PATTERN" line.
refused() {
	dmesg_mark
	if _out=$( (echo "$2" >"$3") 2>&1); then
		ktap_print_msg "$1: write of '$2' succeeded"
		ktap_test_fail "$1"
		return
	fi
	if ! echo "$_out" | grep -qi "$4"; then
		ktap_print_msg "$1: expected '$4', got '$_out'"
		ktap_test_fail "$1"
		return
	fi
	_n=$(dmesg_since_mark | grep -c "zvpool: .*$5")
	if [ "$_n" = 1 ]; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "$1: $_n log lines matching '$5':"
		dmesg_since_mark | sed 's/^/# /'
		ktap_test_fail "$1"
	fi
}

# quiet CMD...: runs CMD with its output kept in /tmp/out, shown (as KTAP
# comments) only if it fails; returns its status.
quiet() { "$@" >/tmp/out 2>&1 || { sed 's/^/# /' /tmp/out; return 1; }; }

# nullb_zoned DIR SIZE_MIB ZONE_MIB [ATTR=VALUE...]: a memory-backed zoned
# null_blk device with 4 KiB blocks, configured in configfs directory DIR
# (extra attributes as given) and powered on; loads null_blk if needed.
nullb_zoned() {
	_d=$1 _s=$2 _z=$3
	shift 3
	lsmod | grep -q '^null_blk ' || insmod /lib/modules/null_blk.ko nr_devices=0 || return 1
	mkdir "$_d" && echo 1 >"$_d/zoned" && echo "$_z" >"$_d/zone_size" && echo "$_s" >"$_d/size" &&
		echo 4096 >"$_d/blocksize" && echo 1 >"$_d/memory_backed" || return 1
	for _kv in "$@"; do
		echo "${_kv#*=}" >"$_d/${_kv%%=*}" || return 1
	done
	echo 1 >"$_d/power"
}

# fio_lat FILE: write latency p50/p99/p99.9/max (us) from fio's terse
# version 3 output in FILE (its last line; --percentile_list=50:99:99.9).
fio_lat() {
	tail -n 1 "$1" | awk -F';' '{ split($59, a, "="); split($60, b, "="); split($61, c, "=");
		printf "p50 %s us, p99 %s us, p99.9 %s us, max %d us", a[2], b[2], c[2], $56 }'
}

# wa_since STATUS USER0 GC0: write amplification of what a pool wrote since
# its status file (STATUS) showed USER0 user and GC0 GC blocks written.
wa_since() {
	awk -v u0="$2" -v g0="$3" -v u1="$(sed -n 's/^user_blocks_written //p' "$1")" \
		-v g1="$(sed -n 's/^gc_blocks_written //p' "$1")" \
		'BEGIN { u = u1 - u0; g = g1 - g0; if (u <= 0) print "0"; else printf "%.3f", (u + g) / u }'
}

# Command checks of tests that keep a work directory $W (set before use):
# t WANT_RC DESCRIPTION CMD...: runs CMD (shown with its output), checks
# the exit code; the output stays in $W/out and $W/err.
t() {
	_want=$1 _what=$2
	shift 2
	ktap_print_msg "\$ $*"
	"$@" >$W/out 2>$W/err
	_rc=$?
	sed 's/^/# /' $W/out $W/err
	if [ "$_rc" = "$_want" ]; then
		ktap_test_pass "$_what (exit $_rc)"
	else
		ktap_test_fail "$_what (exit $_rc, expected $_want)"
	fi
}
# tin WANT_RC DESCRIPTION FILE CMD...: as t, with stdin from FILE.
tin() {
	_tin_want=$1 _tin_what=$2 _tin_in=$3
	shift 3
	t "$_tin_want" "$_tin_what" "$@" <"$_tin_in"
}
# has TEXT DESCRIPTION: the last command's stdout+stderr contains TEXT.
has() {
	if cat $W/out $W/err | grep -qF -- "$1"; then
		ktap_test_pass "$2"
	else
		ktap_print_msg "no \"$1\" in the output"
		ktap_test_fail "$2"
	fi
}

# NVMe over Fabrics from the kernel's host side, without nvme-cli.
# nvmf_connect OPTIONS: connects through /dev/nvme-fabrics (one write, then the
# answer "instance=N,cntlid=M" read from the same open file); prints N.
nvmf_connect() {
	exec 3<>/dev/nvme-fabrics || return 1
	printf '%s' "$1" >&3 || { exec 3>&-; return 1; }
	read -r _ans <&3
	exec 3>&-
	echo "$_ans" | sed -n 's/^instance=\([0-9]*\),.*/\1/p'
}
# nvmf_nsdev N: the namespace disk of controller nvmeN, once it appears (10 s).
nvmf_nsdev() {
	for _ in $(seq 50); do
		for _d in /sys/class/nvme/nvme$1/nvme$1n*; do
			[ -e "$_d" ] && [ -b "/dev/${_d##*/}" ] && { echo "${_d##*/}"; return 0; }
		done
		sleep 0.2
	done
	return 1
}
# wait_for SECONDS CMD...: until CMD succeeds (polled every 0.2 s).
wait_for() {
	_n=$(($1 * 5))
	shift
	while ! "$@"; do
		_n=$((_n - 1))
		[ $_n -gt 0 ] || return 1
		sleep 0.2
	done
}

# uevents_on PREFIX / uevents_off: the zvpool uevents (ZVPOOL_EVENT set)
# captured through the kernel's uevent helper (PREFIX-helper.sh), one file
# PREFIX.SEQNUM each (DEVPATH and the ZVPOOL_* variables, sorted);
# uevents_off puts the old helper back. Nothing without a writable $UH (CONFIG_UEVENT_HELPER).
UH=/sys/kernel/uevent_helper
OLD_UH=
uevents_on() {
	[ -w $UH ] || return 0
	OLD_UH=$(cat $UH)
	cat >"$1-helper.sh" <<-EOS
	#!/bin/sh
	[ -n "\$ZVPOOL_EVENT" ] || exit 0
	{ echo "DEVPATH=\$DEVPATH"; env | grep -E '^ZVPOOL_[A-Z_]*=' ; } | sort >$1.\$SEQNUM
	EOS
	chmod +x "$1-helper.sh"
	echo "$1-helper.sh" >$UH
}
uevents_off() { [ -w $UH ] && echo "$OLD_UH" >$UH; return 0; }
