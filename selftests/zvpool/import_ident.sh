#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# zvpoolctl pool import and volume ident against the real driver, on a pool
# of two memory-backed zoned null_blk members (the pool cache kept apart in
# /tmp with --cache, so pools of earlier tests on the ZNS namespaces are
# listed but never imported):
# - the scan of the guest's block devices lists the pool, its two members
#   and state active while it is assembled (import refused: already
#   active), importable after pool stop; pool import NAME reassembles it
#   with its volumes and their data; pool import -a --cached imports the
#   cached pool only, and a second run skips it;
# - a directory (-d) holding one member's device node: listed as missing
#   members, the import refused naming the missing member (and the
#   --degraded hint), nothing defined; imported with --degraded (member
#   missing, health degraded); with both nodes the import from the
#   directory works;
# - volume ident on the volume disks: pool, volume, kind (volume, snapshot
#   bound through configfs, clone), origin, the pool's UUID, a version 5
#   ZVPOOL_UUID different for each volume and the same after stop + import;
#   a disk that is not a volume refused;
# - the disks' sysfs identity attributes /sys/block/zvpoolN/zvpool/{pool,
#   volume,kind,origin,uuid,pool_uuid,id} for a volume, a snapshot bound
#   through configfs and a clone: the values volume ident prints, the uuid
#   recomputed here with sha1sum as Documentation/configfs-abi.md defines
#   it, the same after stop + import whichever zvpoolN the disks get;
#   kind and origin follow a promote of the clone while its disk exists;
# - the change uevent with ZVPOOL_* variables sent when a disk is added,
#   captured through /sys/kernel/uevent_helper (kernels with
#   CONFIG_UEVENT_HELPER; skipped without);
# - udev/60-zvpool.rules: through 'udevadm test' when the guest has
#   udevadm, else through udev_rules.awk (a udev rules interpreter for the
#   rule's syntax) run by the uevent helper on the kernel's uevents and for
#   an add event of v1 (its IMPORT{program} runs zvpoolctl volume ident):
#   /dev/zvpool/idp/v1, /dev/zvpool/idp/v1@s1 and /dev/disk/by-id/zvpool-UUID
#   point at the right disks, ID_SERIAL_SHORT and ID_WWN are the disk's
#   serial and wwid, and after stop + import with the disks enabled in the
#   other order the links follow the volumes and read their data;
# - /sys/block/zvpoolN/serial (the UUID's first 20 hex digits) and wwid
#   (uuid.UUID).
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB0=/sys/kernel/config/nullb/zvid0
NB1=/sys/kernel/config/nullb/zvid1
CFG=/sys/kernel/config/zvpool
P=$CFG/idp
C=/tmp/zvid.cache
ONE=/tmp/zvid.one
MIB=1048576
ktap_print_header
for t in zvpoolctl md5sum blkzone; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "pool import and volume ident" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "pool import and volume ident" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
dmesg_mark
DMESG_START=$DMESG_MARK
rm -rf "$C" "$ONE"

# zv ARGS...: zvpoolctl with the test's own pool cache.
zv() { zvpoolctl --cache "$C" "$@"; }
# t WANT_RC DESCRIPTION CMD...: runs CMD (shown with its output), checks
# the exit code; the output stays in /tmp/zvid.out and /tmp/zvid.err.
t() {
	_want=$1 _what=$2
	shift 2
	ktap_print_msg "\$ $*"
	"$@" >/tmp/zvid.out 2>/tmp/zvid.err
	_rc=$?
	sed 's/^/# /' /tmp/zvid.out /tmp/zvid.err
	if [ "$_rc" = "$_want" ]; then
		ktap_test_pass "$_what (exit $_rc)"
	else
		ktap_test_fail "$_what (exit $_rc, expected $_want)"
	fi
}
# has TEXT DESCRIPTION: the last command's stdout+stderr contains TEXT.
has() {
	if cat /tmp/zvid.out /tmp/zvid.err | grep -qF -- "$1"; then
		ktap_test_pass "$2"
	else
		ktap_print_msg "no \"$1\" in the output"
		ktap_test_fail "$2"
	fi
}
dev_of() { zvpoolctl volume show -H -o device "idp/$1" | cut -f2; }
sum_of() { dd if="$1" bs=$MIB count=4 iflag=direct status=none | md5sum | cut -d' ' -f1; }
# ident DISK: volume ident's output (KEY=value lines), empty on failure.
ident() { zvpoolctl volume ident "$1" 2>/dev/null; }
# key KEY TEXT: the value of KEY=... in TEXT.
key() { echo "$2" | sed -n "s/^$1=//p"; }
# pool_row UUID: "name state found expected" of the scan listing in /tmp/zvid.out.
pool_row() { awk -F'\t' -v u="$1" 'NF == 5 && $1 == u { print $2, $3, $4, $5 }' /tmp/zvid.out; }
# member_rows POOL: "index dev_uuid device" lines of the scan listing.
member_rows() { awk -F'\t' -v p="$1" 'NF == 4 && $1 == p { print $2, $3, $4 }' /tmp/zvid.out; }
# is_v5 UUID: lower-case 8-4-4-4-12 hex of version 5 (RFC 9562 variant).
is_v5() { echo "$1" | grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'; }
# differ A B: two version 5 UUIDs, not the same.
differ() { is_v5 "$1" && is_v5 "$2" && [ "$1" != "$2" ]; }
differ3() { differ "$1" "$2" && differ "$1" "$3"; }
# sys_of DISK: "pool volume kind origin uuid" from DISK's sysfs identity
# attributes (origin "-" when empty), empty if it has none.
sys_of() {
	_d=/sys/block/${1#/dev/}/zvpool
	[ -r "$_d/pool" ] || return 0
	_o=$(cat "$_d/origin")
	echo "$(cat "$_d/pool") $(cat "$_d/volume") $(cat "$_d/kind") ${_o:--} $(cat "$_d/uuid")"
}
# sys_attr DISK ATTR: one sysfs identity attribute.
sys_attr() { cat "/sys/block/${1#/dev/}/zvpool/$2" 2>/dev/null; }
# v5_of NAME: the version 5 UUID of NAME in the zvpool namespace
# 7a1c5e0d-934b-4f2e-a610-3c8d55e2719f (RFC 9562: SHA-1 of namespace + name,
# version and variant bits set), computed here independently of the module.
v5_of() {
	_h=$({ printf '\172\034\136\015\223\113\117\056\246\020\074\215\125\342\161\237'; printf '%s' "$1"; } | sha1sum | cut -c1-32)
	_v=$(printf '%x' $(( (0x$(echo "$_h" | cut -c17) & 3) | 8 )))
	echo "$(echo "$_h" | cut -c1-8)-$(echo "$_h" | cut -c9-12)-5$(echo "$_h" | cut -c14-16)-$_v$(echo "$_h" | cut -c18-20)-$(echo "$_h" | cut -c21-32)"
}
# expect_sys WHAT DISK "pool volume kind origin" IDENT: DISK's sysfs
# attributes are those, its uuid is ident's ZVPOOL_UUID and the v5 UUID of
# "POOL-UUID/ID/VOLUME" (pool_uuid and id attributes = ident's).
expect_sys() {
	_s=$(sys_of "$2")
	ktap_print_msg "sysfs $1 (${2#/dev/}): $_s"
	ktap_expect_eq "sysfs $1: pool volume kind origin" "$3" "${_s% *}"
	_u=${_s##* }
	_id=$(sys_attr "$2" id)
	_pu=$(sys_attr "$2" pool_uuid)
	ktap_expect_eq "sysfs $1: id and pool_uuid as volume ident prints them" \
		"$(key ZVPOOL_VOLUME_ID "$4") $(key ZVPOOL_POOL_UUID "$4")" "$_id $_pu"
	ktap_expect_eq "sysfs $1: uuid = ident's ZVPOOL_UUID = v5 of $_pu/$_id/NAME" \
		"$(key ZVPOOL_UUID "$4") $(key ZVPOOL_UUID "$4")" \
		"$_u $(v5_of "$_pu/$_id/$(sys_attr "$2" volume)")"
}
# node_of DEV DIR/NAME: DEV's device node made in DIR (mknod, else a symlink).
node_of() {
	if command -v mknod >/dev/null; then
		_mm=$(cat "/sys/block/${1#/dev/}/dev")
		mknod "$2" b "${_mm%%:*}" "${_mm#*:}"
	else
		ln -s "$1" "$2"
	fi
}

nullb_zoned $NB0 256 8 && nullb_zoned $NB1 256 8 || { ktap_set_plan 1; ktap_test_fail "two zoned null_blk devices"; ktap_finished; }
D0=/dev/${NB0##*/}
D1=/dev/${NB1##*/}
insmod "$KO" || { ktap_set_plan 1; ktap_test_fail "insmod"; ktap_finished; }

# --- a pool of two members, volumes with data ---------------------------------
t 0 "pool create over two zoned null_blk (cache $C)" zv pool create -f idp "$D0" "$D1"
PU=$(sed -n 's/^uuid //p' $P/status | tr 'A-F' 'a-f')
ktap_print_msg "pool UUID $PU"
ktap_test_result "the pool cache records it under its name" grep -q "^pool $PU idp " "$C"
t 0 "volume create v1 (64 MiB)" zv volume create idp/v1 --size 64M
t 0 "volume create v2 (32 MiB)" zv volume create idp/v2 --size 32M
V1=$(dev_of v1)
V2=$(dev_of v2)
ktap_test_result "4 MiB of random data on each" sh -c \
	"dd if=/dev/urandom of=$V1 bs=$MIB count=4 oflag=direct conv=fsync status=none &&
	 dd if=/dev/urandom of=$V2 bs=$MIB count=4 oflag=direct conv=fsync status=none"
SUM1=$(sum_of "$V1")
SUM2=$(sum_of "$V2")

# --- volume ident -------------------------------------------------------------
I1=$(ident "${V1#/dev/}")
echo "$I1" | sed 's/^/# ident v1: /'
ktap_expect_eq "ident v1: pool, volume, kind" "idp v1 volume" \
	"$(key ZVPOOL_POOL "$I1") $(key ZVPOOL_VOLUME "$I1") $(key ZVPOOL_KIND "$I1")"
ktap_expect_eq "ident v1: no origin for a plain volume" "" "$(key ZVPOOL_ORIGIN "$I1")"
ktap_expect_eq "ident v1: the pool's UUID from its status" "$PU" "$(key ZVPOOL_POOL_UUID "$I1")"
U1=$(key ZVPOOL_UUID "$I1")
ktap_test_result "ident v1: ZVPOOL_UUID is a version 5 UUID ($U1)" is_v5 "$U1"
ktap_expect_eq "ident /dev/zvpoolN prints the same as zvpoolN" "$I1" "$(ident "$V1")"
I2=$(ident "$V2")
U2=$(key ZVPOOL_UUID "$I2")
ktap_expect_eq "ident v2: volume v2" "idp v2 volume" \
	"$(key ZVPOOL_POOL "$I2") $(key ZVPOOL_VOLUME "$I2") $(key ZVPOOL_KIND "$I2")"
ktap_test_result "v1 and v2 have different UUIDs" differ "$U1" "$U2"
t 1 "ident of a disk that is not a volume: refused" zvpoolctl volume ident "${D0#/dev/}"
has "no zvpool volume has this disk" "the refusal says no volume has it"
expect_sys v1 "$V1" "idp v1 volume -" "$I1"
expect_sys v2 "$V2" "idp v2 volume -" "$I2"
ktap_expect_eq "sysfs v1: pool_uuid is the pool's status uuid" "$PU" "$(sys_attr "$V1" pool_uuid)"
ktap_expect_eq "a disk that is not a volume has no zvpool attributes" "" "$(sys_of "$D0")"

ktap_expect_eq "sysfs v1: serial is its UUID's first 20 hex digits" \
	"$(echo "$U1" | tr -d - | cut -c1-20)" "$(cat "/sys/block/${V1#/dev/}/serial" 2>/dev/null)"
ktap_expect_eq "sysfs v1: wwid is uuid.UUID" "uuid.$U1" "$(cat "/sys/block/${V1#/dev/}/wwid" 2>/dev/null)"

# The udev rule, run by udev_rules.awk where the guest has no udevadm:
# /tmp/zvid.rules is the rule with this zvpoolctl; links go below $ROOT.
RULE=
for r in "${ZVPOOL_UDEV_RULE:-}" "$DIR/../udev/60-zvpool.rules" "$DIR/../../udev/60-zvpool.rules"; do
	[ -n "$r" ] && [ -f "$r" ] && RULE=$r && break
done
ROOT=/tmp/zvid.root
[ -n "$RULE" ] && sed "s#/usr/local/sbin/zvpoolctl#$(command -v zvpoolctl)#" "$RULE" >/tmp/zvid.rules
cp "$DIR/udev_rules.awk" /tmp/zvid.udev_rules.awk
# link_of NAME: where $ROOT/dev/NAME points.
link_of() { readlink "$ROOT/dev/$1" 2>/dev/null; }
# rule_add DISK: the rules for an add uevent of DISK (no ZVPOOL_* variables:
# the rule runs zvpoolctl volume ident); prints their ENV and LINK lines.
rule_add() {
	env -i PATH="$PATH" ROOT=$ROOT ACTION=add SUBSYSTEM=block DEVNAME="${1#/dev/}" \
		DEVPATH="$(cd -P "/sys/class/block/${1#/dev/}" && pwd | sed 's#^/sys##')" \
		awk -f /tmp/zvid.udev_rules.awk /tmp/zvid.rules
}
# wait_link NAME DISK: waits (5 s at most) for $ROOT/dev/NAME -> DISK.
wait_link() {
	_n=0
	while [ $_n -lt 50 ] && [ "$(link_of "$1")" != "$2" ]; do
		sleep 0.1
		_n=$((_n + 1))
	done
}

# Uevents through the uevent helper (no udev and no netlink in the guest),
# which also runs the udev rule on each (udev_rules.awk).
UH=/sys/kernel/uevent_helper
EV=/tmp/zvid.uevents
OLD_UH=
if [ -w $UH ]; then
	OLD_UH=$(cat $UH)
	# One file per event: helpers run concurrently, and lines appended to
	# one file interleave between events.
	cat >/tmp/zvid.uevent.sh <<-'EOS'
	#!/bin/sh
	{ echo "--- $ACTION $DEVPATH"; env | grep -E '^(DEVNAME|ZVPOOL_[A-Z_]*)=' | sort; } >/tmp/zvid.uev.$SEQNUM
	[ "$SUBSYSTEM" = block ] && [ -f /tmp/zvid.rules ] &&
		ROOT=/tmp/zvid.root awk -f /tmp/zvid.udev_rules.awk /tmp/zvid.rules >/tmp/zvid.udev.$SEQNUM 2>&1
	EOS
	chmod +x /tmp/zvid.uevent.sh
	rm -f /tmp/zvid.uev.* /tmp/zvid.udev.*
	echo /tmp/zvid.uevent.sh >$UH
fi

t 0 "snapshot create v1@s1" zv snapshot create idp/v1@s1
# Bound and enabled through configfs, as export-image and send bind it.
SD=
if mkdir "$P/v1@s1" && echo 1 >"$P/v1@s1/enable"; then
	SD=/dev/$(cut -d' ' -f1 "$P/v1@s1/dev")
fi
IS=$(ident "$SD")
echo "$IS" | sed 's/^/# ident v1@s1: /'
ktap_expect_eq "ident of the bound snapshot: volume v1@s1, kind snapshot, origin v1" "v1@s1 snapshot v1" \
	"$(key ZVPOOL_VOLUME "$IS") $(key ZVPOOL_KIND "$IS") $(key ZVPOOL_ORIGIN "$IS")"
US=$(key ZVPOOL_UUID "$IS")
ktap_test_result "the snapshot's UUID is its own" differ3 "$US" "$U1" "$U2"
expect_sys "snapshot v1@s1" "$SD" "idp v1@s1 snapshot v1" "$IS"
if [ -w $UH ]; then
	# The helper runs asynchronously: wait for the change event.
	_n=0
	while [ $_n -lt 50 ] && ! cat /tmp/zvid.uev.* 2>/dev/null | grep -q "^ZVPOOL_VOLUME=v1@s1"; do
		sleep 0.1
		_n=$((_n + 1))
	done
	cat /tmp/zvid.uev.* >$EV 2>/dev/null
	# The block of the change event of the snapshot's disk.
	awk -v d="${SD#/dev/}" '/^--- / { on = ($2 == "change" && $3 ~ ("/" d "$")) } on' $EV >/tmp/zvid.ev
	sed 's/^/# uevent: /' /tmp/zvid.ev
	ktap_expect_eq "change uevent of ${SD#/dev/}: ZVPOOL_POOL, _VOLUME, _KIND, _ORIGIN, _UUID" \
		"ZVPOOL_KIND=snapshot ZVPOOL_ORIGIN=v1 ZVPOOL_POOL=idp ZVPOOL_UUID=$US ZVPOOL_VOLUME=v1@s1" \
		"$(grep -E '^ZVPOOL_(POOL|VOLUME|KIND|ORIGIN|UUID)=' /tmp/zvid.ev | xargs)"
	ktap_expect_eq "the uevent's pool UUID and volume id too" \
		"ZVPOOL_POOL_UUID=$PU ZVPOOL_VOLUME_ID=$(sys_attr "$SD" id)" \
		"$(grep -E '^ZVPOOL_(POOL_UUID|VOLUME_ID)=' /tmp/zvid.ev | xargs)"
	if [ -n "$RULE" ]; then
		wait_link "zvpool/idp/v1@s1" "$SD"
		ktap_expect_eq "udev rule on the uevent: /dev/zvpool/idp/v1@s1 -> $SD" "$SD" "$(link_of zvpool/idp/v1@s1)"
		ktap_expect_eq "udev rule on the uevent: /dev/disk/by-id/zvpool-$US -> $SD" "$SD" \
			"$(link_of "disk/by-id/zvpool-$US")"
	else
		ktap_test_skip "udev rule on the uevent" "udev/60-zvpool.rules not found in the guest"
	fi
else
	ktap_test_skip "change uevent with ZVPOOL_* variables" "no $UH (kernel without CONFIG_UEVENT_HELPER)"
fi
echo 0 >"$P/v1@s1/enable"
rmdir "$P/v1@s1"
t 0 "volume clone v1@s1 c1" zv volume clone idp/v1@s1 c1
IC=$(ident "$(dev_of c1)")
ktap_expect_eq "ident c1: kind clone, origin v1@s1" "c1 clone v1@s1" \
	"$(key ZVPOOL_VOLUME "$IC") $(key ZVPOOL_KIND "$IC") $(key ZVPOOL_ORIGIN "$IC")"
UC=$(key ZVPOOL_UUID "$IC")
expect_sys "clone c1" "$(dev_of c1)" "idp c1 clone v1@s1" "$IC"
SYS1=$(sys_of "$V1")
SYS2=$(sys_of "$V2")
SYSC=$(sys_of "$(dev_of c1)")

# --- the udev rule ------------------------------------------------------------
if [ -z "$RULE" ]; then
	ktap_test_skip "udev rule: /dev/zvpool/idp/v1 and /dev/disk/by-id/zvpool-UUID" "udev/60-zvpool.rules not found in the guest"
elif command -v udevadm >/dev/null; then
	mkdir -p /run/udev/rules.d
	cp /tmp/zvid.rules /run/udev/rules.d/60-zvpool.rules
	udevadm test --action=add "/sys/class/block/${V1#/dev/}" >/tmp/zvid.udev 2>&1
	grep -E 'zvpool|DEVLINKS' /tmp/zvid.udev | sed 's/^/# udevadm: /'
	ktap_test_result "udev rule: /dev/zvpool/idp/v1 and /dev/disk/by-id/zvpool-$U1" sh -c \
		"grep -q 'zvpool/idp/v1' /tmp/zvid.udev && grep -q 'disk/by-id/zvpool-$U1' /tmp/zvid.udev"
	rm -f /run/udev/rules.d/60-zvpool.rules
else
	rule_add "$V1" >/tmp/zvid.udev 2>&1
	sed 's/^/# udev_rules.awk, add event of v1: /' /tmp/zvid.udev
	ktap_expect_eq "udev rule (add event, volume ident): /dev/zvpool/idp/v1 -> $V1" "$V1" "$(link_of zvpool/idp/v1)"
	ktap_expect_eq "udev rule: /dev/disk/by-id/zvpool-$U1 -> $V1" "$V1" "$(link_of "disk/by-id/zvpool-$U1")"
	ktap_expect_eq "udev rule: ID_SERIAL_SHORT and ID_WWN from sysfs" \
		"ENV ID_SERIAL_SHORT=$(cat "/sys/block/${V1#/dev/}/serial") ENV ID_WWN=uuid.$U1" \
		"$(grep -E '^ENV ID_(SERIAL_SHORT|WWN)=' /tmp/zvid.udev | xargs)"
fi

# --- pool import: listing while active, stop, import by name -------------------
t 0 "pool import (scan) while the pool is assembled" zv pool import -H
ktap_expect_eq "listed: idp active, 2 of 2 members" "idp active 2 2" "$(pool_row "$PU")"
member_rows idp >/tmp/zvid.members
ktap_expect_eq "both null_blk devices listed as its members" "$D0 $D1" \
	"$(cut -d' ' -f3 /tmp/zvid.members | sort | xargs)"
# Which device is member 0 (kept in the one-member directory below) and the
# device UUID of member 1 (the one missing there).
M0_DEV=$(awk '$1 == 0 { print $3 }' /tmp/zvid.members)
M1_UUID=$(awk '$1 == 1 { print $2 }' /tmp/zvid.members)
M1_DEV=$(awk '$1 == 1 { print $3 }' /tmp/zvid.members)
t 1 "pool import idp while active: refused" zv pool import idp
has "already active as idp" "the refusal names the active pool"

t 0 "pool stop" zv pool stop idp
ktap_test_result "the cache keeps the stopped pool" grep -q "^pool $PU idp " "$C"
t 0 "pool import (scan) after the stop" zv pool import -H
ktap_expect_eq "listed: idp importable, 2 of 2 members" "idp importable 2 2" "$(pool_row "$PU")"
t 0 "pool import idp" zv pool import idp
has "volumes enabled" "its volumes are enabled"
ktap_expect_eq "v1 and v2 read their data" "$SUM1 $SUM2" "$(sum_of "$(dev_of v1)") $(sum_of "$(dev_of v2)")"
ktap_expect_eq "v1's UUID is the same after stop + import" "$U1" "$(key ZVPOOL_UUID "$(ident "$(dev_of v1)")")"
ktap_expect_eq "v2's and c1's too" "$U2 $UC" \
	"$(key ZVPOOL_UUID "$(ident "$(dev_of v2)")") $(key ZVPOOL_UUID "$(ident "$(dev_of c1)")")"
# v1 and v2 enabled again in the other order: each gets the other's number.
echo 0 >$P/v1/enable && echo 0 >$P/v2/enable && echo 1 >$P/v2/enable && echo 1 >$P/v1/enable
ktap_print_msg "disks after the import: v1 $(dev_of v1), v2 $(dev_of v2), c1 $(dev_of c1) (before: $V1, $V2)"
ktap_test_result "v1 and v2 re-enabled in the other order have other disks" \
	sh -c "[ '$(dev_of v1)' != '$V1' ] && [ '$(dev_of v2)' != '$V2' ]"
ktap_expect_eq "sysfs of v1, v2, c1 after stop + import: the same values" "$SYS1|$SYS2|$SYSC" \
	"$(sys_of "$(dev_of v1)")|$(sys_of "$(dev_of v2)")|$(sys_of "$(dev_of c1)")"
if [ -w $UH ] && [ -n "$RULE" ]; then
	wait_link zvpool/idp/v1 "$(dev_of v1)"
	wait_link zvpool/idp/v2 "$(dev_of v2)"
	ktap_expect_eq "udev rule on the uevents: /dev/zvpool/idp/v1 and v2 follow to the new disks" \
		"$(dev_of v1) $(dev_of v2)" "$(link_of zvpool/idp/v1) $(link_of zvpool/idp/v2)"
	ktap_expect_eq "the stable names read v1's and v2's data" "$SUM1 $SUM2" \
		"$(sum_of "$ROOT/dev/zvpool/idp/v1") $(sum_of "$ROOT/dev/disk/by-id/zvpool-$U2")"
	ktap_print_msg "/dev/zvpool/idp/v1 -> $(link_of zvpool/idp/v1), /dev/zvpool/idp/v2 -> $(link_of zvpool/idp/v2)"
else
	ktap_test_skip "udev rule on the uevents after the import" "no $UH or no udev/60-zvpool.rules"
fi

# --- pool import -a --cached ----------------------------------------------------
t 0 "pool stop" zv pool stop idp
t 0 "pool import -a --cached" zv pool import -a --cached
has "imported 1 pool, 0 failed" "one pool imported"
ktap_expect_eq "only the cached pool is defined (not the earlier tests' pools)" "idp" \
	"$(zvpoolctl pool list -H -o name | xargs)"
ktap_expect_eq "v1 reads its data" "$SUM1" "$(sum_of "$(dev_of v1)")"
t 0 "pool import -a --cached again" zv pool import -a --cached
has "already active as idp, skipped" "the active pool is skipped"

# --- a member missing --------------------------------------------------------------
t 0 "pool stop" zv pool stop idp
mkdir -p $ONE
ktap_test_result "a directory with member 0's device node only ($M0_DEV)" node_of "$M0_DEV" $ONE/m0
t 0 "pool import -d $ONE (scan)" zv pool import -d $ONE -H
ktap_expect_eq "listed: idp missing members, 1 of 2" "idp missing members 1 2" "$(pool_row "$PU")"
ktap_expect_eq "member 1 listed as missing" "1 $M1_UUID missing" "$(member_rows idp | awk '$1 == 1')"
t 1 "pool import -d $ONE idp: refused" zv pool import -d $ONE idp
has "1 of 2 members found; missing: member 1 (device UUID $M1_UUID)" "the refusal names the missing member"
has "zvpoolctl pool import --degraded $PU" "the refusal gives the --degraded hint"
ktap_test_result "nothing was defined" [ ! -e $P ]
t 0 "pool import -d $ONE --degraded --no-volumes idp" zv pool import -d $ONE --degraded --no-volumes idp
ktap_expect_eq "member 1 missing, health degraded" "missing degraded" \
	"$(awk '$1 == 1 { sub(/.*state=/, ""); print }' $P/members) $(sed -n 's/^health //p' $P/status)"
t 0 "pool stop idp (degraded)" zv pool stop idp
ktap_test_result "member 1's node added to the directory ($M1_DEV)" node_of "$M1_DEV" $ONE/m1
t 0 "pool import -d $ONE idp: both members found" zv pool import -d $ONE idp
ktap_expect_eq "v1 and v2 read their data" "$SUM1 $SUM2" "$(sum_of "$(dev_of v1)") $(sum_of "$(dev_of v2)")"

# --- promote: kind and origin follow while the disk exists --------------------------
CD=$(dev_of c1)
t 0 "volume promote idp/c1 (its disk enabled)" zv volume promote idp/c1
ktap_expect_eq "sysfs of the promoted c1 (same disk $CD): kind volume, no origin, same uuid" \
	"idp c1 volume - $UC" "$(sys_of "$CD")"
ktap_expect_eq "ident of the promoted c1: kind volume, no ZVPOOL_ORIGIN" "volume " \
	"$(key ZVPOOL_KIND "$(ident "$CD")") $(key ZVPOOL_ORIGIN "$(ident "$CD")")"

# --- cleanup -------------------------------------------------------------------------
ktap_test_result "cleanup" sh -c "{ [ ! -e $P ] || zvpoolctl pool stop idp >/dev/null; } && rmmod zvpool &&
	echo 0 > $NB0/power && rmdir $NB0 && echo 0 > $NB1/power && rmdir $NB1 && rmmod null_blk"
rm -rf "$C" "$ONE" /tmp/zvid.*
[ -w $UH ] && [ "$(cat $UH)" = /tmp/zvid.uevent.sh ] && echo "$OLD_UH" >$UH
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_set_plan $((KTAP_TESTNO - 1))
ktap_finished
