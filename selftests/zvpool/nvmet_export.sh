#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# NVMe-oF export of volumes through the kernel's target (nvmet), with the
# kernel's own host connecting with nvme-cli ('nvme connect', as an
# administrator does; through /dev/nvme-fabrics when the guest has no
# nvme-cli) and through /dev/nvme-fabrics directly:
# - over loop: zvpoolctl volume export; nvme connect; the namespace's uuid,
#   nguid and wwid are the volume's identity, and so are the NGUID and
#   UUID 'nvme id-ns' and 'nvme ns-descs' show ('nvme list' lists the
#   namespace with the volume's serial); fio write+verify (crc32c)
#   and a flush-heavy job (fsync after every write) through /dev/nvmeXnY;
#   its queue limits (block size, io_min/io_opt, discard granularity,
#   write cache) are the volume's, and a discard through it unmaps;
#   data written through NVMe reads back identical on /dev/zvpoolN; a
#   resize reaches the initiator (revalidate_size, namespace-changed
#   event); an exported volume cannot be deleted (zvpoolctl refuses, the
#   kernel refuses to disable it); unexport removes the initiator's
#   controller and everything in nvmet's configfs;
# - the same over TCP on 127.0.0.1, connected through /dev/nvme-fabrics
#   and disconnected with 'nvme disconnect' (delete_controller without
#   nvme-cli);
# - a snapshot exported read-only over loop (nvmet's file backend): its
#   own identity and size, it reads what the snapshot holds (not the
#   volume's newer data), a write through NVMe fails and changes nothing,
#   delete refused while exported, unexport releases (unbinds) it;
# - errors: export of a missing volume, a second export of a volume,
#   unexport of a volume not exported: exit 1 with a clear message.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NB=/sys/kernel/config/nullb/zvnv0
CFG=/sys/kernel/config/zvpool
NVMET=/sys/kernel/config/nvmet
W=/tmp/zvnv
C=$W/cache
MIB=1048576
NQN=nqn.2026-12.io.zvpool.test:nv.v1
NQN_TCP=nqn.2026-12.io.zvpool.test:nv.v1.tcp
NQN_SNAP=nqn.2026-12.io.zvpool.test:nv.v1.gold
ktap_print_header
for x in zvpoolctl fio md5sum dd blockdev blkdiscard; do
	if ! command -v $x >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "NVMe-oF export" "needs $x"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "NVMe-oF export" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
# The target and the host's fabrics: built in or modules (no skip-to-pass:
# a kernel with them configured has both).
modprobe -q nvmet 2>/dev/null
modprobe -q nvme-loop 2>/dev/null
modprobe -q nvmet-tcp 2>/dev/null
modprobe -q nvme-tcp 2>/dev/null
if [ ! -d $NVMET/subsystems ] || [ ! -c /dev/nvme-fabrics ]; then
	ktap_set_plan 1
	ktap_test_skip "NVMe-oF export" "the kernel has no NVMe target (CONFIG_NVME_TARGET) or no fabrics host (CONFIG_NVME_FABRICS)"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
dmesg_mark
DMESG_START=$DMESG_MARK
rm -rf "$W"
mkdir -p $W

zv() { zvpoolctl --cache "$C" "$@"; }
gone() { [ ! -e "/sys/class/nvme/nvme$1" ]; }
size_is() { [ "$(blockdev --getsize64 "$1" 2>/dev/null)" = "$2" ]; }
rsum() { dd if="$1" bs=$MIB skip="$2" count="$3" iflag=direct status=none | md5sum | cut -d' ' -f1; }
# check_identity NSDISK: the namespace shows the volume's identity.
check_identity() {
	ktap_expect_eq "$2: uuid is the volume's UUID" "$VUUID" "$(cat /sys/block/$1/uuid)"
	ktap_expect_eq "$2: nguid is the same 16 bytes" "$VUUID" "$(cat /sys/block/$1/nguid)"
	ktap_expect_eq "$2: wwid is the volume disk's wwid" "$(cat /sys/block/$ZDISK/wwid)" "$(cat /sys/block/$1/wwid)"
	ktap_expect_eq "$2: the controller's serial is the volume's" "$(cat /sys/block/$ZDISK/serial)" \
		"$(cat /sys/block/$1/device/serial | tr -d ' ')"
}
# nvme-cli in the guest (nvme-cli package, copied like fio), or none.
NVME_CLI=
MADE_HOSTNQN=
if command -v nvme >/dev/null; then
	NVME_CLI=$(command -v nvme)
	ktap_print_msg "nvme-cli: $(nvme version 2>&1 | head -1)"
	# The host's identity, as the nvme-cli package's installation writes
	# it (without it, connecting fails with EINVAL: "nvme_fabrics: found
	# same hostid ... but different hostnqn").
	if [ ! -s /etc/nvme/hostnqn ]; then
		mkdir -p /etc/nvme
		_id=$(cat /proc/sys/kernel/random/uuid)
		echo "$_id" >/etc/nvme/hostid
		echo "nqn.2014-08.org.nvmexpress:uuid:$_id" >/etc/nvme/hostnqn
		MADE_HOSTNQN=1
	fi
	ktap_print_msg "host NQN $(cat /etc/nvme/hostnqn), host id $(cat /etc/nvme/hostid 2>/dev/null)"
fi
# ctrl_of NQN: the controller number N of the initiator's nvmeN connected to NQN.
ctrl_of() {
	for _c in /sys/class/nvme/nvme*; do
		[ "$(cat "$_c/subsysnqn" 2>/dev/null)" = "$1" ] && { echo "${_c##*/nvme}"; return 0; }
	done
	return 1
}
# cli_connect NQN ARGS...: 'nvme connect -n NQN ARGS' (shown); CTRL is
# the number N of the controller nvmeN it made (empty if none).
cli_connect() {
	_nqn=$1
	shift
	ktap_print_msg "\$ nvme connect -n $_nqn $*"
	CTRL=
	nvme connect -n "$_nqn" "$@" >$W/out 2>$W/err
	_rc=$?
	sed 's/^/# /' $W/out $W/err
	[ $_rc = 0 ] && wait_for 10 ctrl_of "$_nqn" >/dev/null && CTRL=$(ctrl_of "$_nqn")
}
# loop_connect NQN: connects to NQN over loop with nvme-cli, or through
# /dev/nvme-fabrics without it; CTRL as cli_connect's, HOW says which.
loop_connect() {
	if [ -n "$NVME_CLI" ]; then
		HOW="nvme connect -t loop"
		cli_connect "$1" -t loop
	else
		HOW="/dev/nvme-fabrics (no nvme-cli in the guest)"
		CTRL=$(nvmf_connect "transport=loop,nqn=$1")
	fi
}
# cli_identity NSDISK NAME: what nvme-cli reads of the namespace (Identify
# Namespace, the namespace identification descriptors, the list) is the
# volume's identity.
cli_identity() {
	_hex=$(echo "$VUUID" | tr -d '-')
	nvme id-ns "/dev/$1" >$W/idns 2>&1
	ktap_print_msg "$(grep -E '^(nsze|nguid) ' $W/idns | tr -s ' ' | tr '\n' ' ')"
	ktap_expect_eq "$2: nvme id-ns: nguid is the volume's UUID" "$_hex" \
		"$(sed -n 's/^nguid *: *\([0-9a-f]*\).*/\1/p' $W/idns)"
	nvme ns-descs "/dev/$1" >$W/descs 2>&1
	sed 's/^/# /' $W/descs
	ktap_test_result "$2: nvme ns-descs: the namespace UUID is the volume's" grep -qi "uuid *: *$VUUID" $W/descs
	nvme list >$W/list 2>&1
	sed 's/^/# /' $W/list
	ktap_test_result "$2: nvme list: /dev/$1 with the volume's serial" \
		grep -q "^/dev/$1 .*$(cat /sys/block/$ZDISK/serial)" $W/list
}
# check_limits NSDISK NAME: the namespace reports the volume's block size,
# I/O sizes, discard granularity and volatile write cache; a discard
# through it unmaps the volume's blocks (its space returns to the pool).
check_limits() {
	ktap_print_msg "$2: /dev/$ZDISK queue: $(cd /sys/block/$ZDISK/queue && grep -H . logical_block_size \
		minimum_io_size optimal_io_size discard_granularity write_cache | tr '\n' ' ')"
	for _q in logical_block_size minimum_io_size optimal_io_size discard_granularity write_cache; do
		ktap_expect_eq "$2: queue/$_q as the volume's" "$(cat /sys/block/$ZDISK/queue/$_q)" \
			"$(cat /sys/block/$1/queue/$_q)"
	done
	dd if=/dev/urandom of=/dev/$1 bs=$MIB count=4 seek=40 oflag=direct conv=fsync status=none
	_u0=$(zvpoolctl volume show -Hp -o used nv/v1 | cut -f2)
	blkdiscard -o $((40 * MIB)) -l $((4 * MIB)) /dev/$1
	_u1=$(zvpoolctl volume show -Hp -o used nv/v1 | cut -f2)
	ktap_expect_eq "$2: a 4 MiB discard through NVMe unmaps 4 MiB of the volume" $((4 * MIB)) $((_u0 - _u1))
}
# fio_verify DEV NAME: random 4 KiB writes verified (crc32c), then
# sequential writes with an fsync (a flush) after each one, verified.
fio_verify() {
	t 0 "$2: fio randwrite 8 MiB, verify crc32c" fio --name=v --filename="$1" --ioengine=psync --direct=1 \
		--bs=4k --rw=randwrite --size=8M --offset=8M --verify=crc32c --do_verify=1 --verify_fatal=1 --minimal
	t 0 "$2: fio write with fsync after every write, verify" fio --name=f --filename="$1" --ioengine=psync \
		--direct=1 --bs=16k --rw=write --size=2M --offset=20M --fsync=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --minimal
}
# cross_check DEV NAME OFFSET_MIB: 2 MiB written through DEV read back
# identical through /dev/zvpoolN (and through DEV).
cross_check() {
	dd if=/dev/urandom of=$W/pat bs=$MIB count=2 status=none
	_want=$(md5sum <$W/pat | cut -d' ' -f1)
	dd if=$W/pat of="$1" bs=$MIB seek="$3" oflag=direct conv=fsync status=none
	ktap_expect_eq "$2: written through NVMe, read on /dev/$ZDISK" "$_want" "$(rsum /dev/$ZDISK "$3" 2)"
	dd if=/dev/urandom of=$W/pat bs=$MIB count=2 status=none
	_want=$(md5sum <$W/pat | cut -d' ' -f1)
	dd if=$W/pat of=/dev/$ZDISK bs=$MIB seek=$(($3 + 2)) oflag=direct conv=fsync status=none
	ktap_expect_eq "$2: written on /dev/$ZDISK, read through NVMe" "$_want" "$(rsum "$1" $(($3 + 2)) 2)"
}

# use_ns NSDISK NAME NQN SIZE_MIB OFFSET_MIB NEW_MIB: the namespace of an
# export of nv/v1 (SIZE_MIB) shows the volume's identity and size, takes
# verified I/O and flushes, shares data with /dev/zvpoolN; a resize of
# nv/v1 to NEW_MIB reaches it.
use_ns() {
	check_identity "$1" "$2"
	check_limits "$1" "$2"
	ktap_expect_eq "$2: the namespace has the volume's size" $(($4 * MIB)) "$(blockdev --getsize64 /dev/$1)"
	fio_verify "/dev/$1" "$2"
	cross_check "/dev/$1" "$2" "$5"
	t 0 "$2: resize nv/v1 to $6 MiB while exported" zv volume resize --size "$6M" nv/v1
	has "initiators of $3 were told the new size" "$2: the resize tells the initiators"
	if wait_for 10 size_is "/dev/$1" $(($6 * MIB)); then
		ktap_test_pass "$2: the initiator sees $6 MiB"
	else
		ktap_print_msg "size: $(blockdev --getsize64 /dev/$1)"
		ktap_test_fail "$2: the initiator sees $6 MiB"
	fi
}

nullb_zoned $NB 256 8 || { ktap_set_plan 1; ktap_test_fail "a zoned null_blk device"; ktap_finished; }
insmod "$KO" || { ktap_set_plan 1; ktap_test_fail "insmod"; ktap_finished; }
t 0 "pool nv on a zoned null_blk" zv pool create -f nv "/dev/${NB##*/}"
t 0 "volume nv/v1, 64 MiB" zv volume create --size 64M nv/v1
t 0 "volume nv/v2, 16 MiB" zv volume create --size 16M nv/v2
ZDISK=$(zvpoolctl volume show -H -o device nv/v1 | cut -f2)
ZDISK=${ZDISK#/dev/}
VUUID=$(cat /sys/block/$ZDISK/zvpool/uuid)
ktap_print_msg "nv/v1 is /dev/$ZDISK, uuid $VUUID"

# --- loop -------------------------------------------------------------------------------
t 0 "export nv/v1 over loop" zv volume export --nqn $NQN nv/v1
has "as $NQN namespace 1 over loop" "the export names the NQN and the transport"
ktap_expect_eq "nvmet's namespace device_path" "/dev/$ZDISK" "$(cat $NVMET/subsystems/$NQN/namespaces/1/device_path)"
t 0 "volume exports lists it" zv volume exports -H -o name,nqn,transport
ktap_expect_eq "the listing" "$(printf 'nv/v1\t%s\tloop' $NQN)" "$(cat $W/out)"
t 1 "a second export of nv/v1 fails" zv volume export --nqn $NQN.again nv/v1
has "already exported as $NQN" "the refusal names the export"
t 1 "export of a missing volume fails" zv volume export --nqn $NQN.none nv/none
has "no such volume" "the refusal says there is no such volume"
t 1 "unexport of nv/v2, not exported, fails" zv volume unexport nv/v2
has "not exported over NVMe-oF" "the refusal says it is not exported"

loop_connect $NQN
if [ -n "$CTRL" ] && NS=$(nvmf_nsdev "$CTRL"); then
	ktap_test_pass "connect over loop with $HOW: nvme$CTRL, namespace $NS"
	if [ -n "$NVME_CLI" ]; then
		cli_identity "$NS" loop
	else
		ktap_test_skip "loop: the identity nvme-cli shows" "no nvme-cli in the guest (nvme-cli)"
	fi
	use_ns "$NS" loop $NQN 64 32 96
	t 1 "delete of the exported nv/v1 is refused" zv volume delete nv/v1
	has "exported over NVMe-oF as $NQN" "the refusal says why"
	ktap_test_result "the kernel refuses to disable the volume nvmet holds open" \
		sh -c "! echo 0 2>/dev/null >$CFG/nv/v1/enable"
	t 0 "unexport nv/v1 with the initiator connected" zv volume unexport nv/v1
	ktap_test_result "the initiator's loop controller nvme$CTRL is gone" wait_for 10 gone "$CTRL"
else
	ktap_test_fail "connect over loop with $HOW (answer: '$CTRL')"
	zv volume unexport nv/v1
fi
ktap_expect_eq "nvmet's configfs is empty again" "" "$(ls -A $NVMET/subsystems)$(ls -A $NVMET/ports)"

# --- TCP on 127.0.0.1 ------------------------------------------------------------------
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
t 0 "export nv/v1 over TCP on 127.0.0.1:4420" zv volume export --nqn $NQN_TCP --transport tcp --addr 127.0.0.1 nv/v1
has "over tcp 127.0.0.1:4420" "the export names the address"
CTRL=$(nvmf_connect "transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=$NQN_TCP")
if [ -n "$CTRL" ] && NS=$(nvmf_nsdev "$CTRL"); then
	ktap_test_pass "connect over TCP: nvme$CTRL, namespace $NS"
	use_ns "$NS" tcp $NQN_TCP 96 64 112
	# A TCP initiator would keep reconnecting to a removed export:
	# disconnect first, as an administrator does.
	if [ -n "$NVME_CLI" ]; then
		t 0 "nvme disconnect -n $NQN_TCP" nvme disconnect -n $NQN_TCP
		has "disconnected 1 controller" "nvme disconnect says it disconnected 1 controller"
	else
		ktap_test_result "disconnect (delete_controller; no nvme-cli in the guest)" \
			sh -c "echo 1 >/sys/class/nvme/nvme$CTRL/delete_controller"
	fi
	ktap_test_result "the TCP controller nvme$CTRL is gone" wait_for 10 gone "$CTRL"
else
	ktap_test_fail "connect over TCP (answer: '$CTRL')"
fi
t 0 "unexport nv/v1 (TCP)" zv volume unexport nv/v1
ktap_expect_eq "nvmet's configfs is empty again" "" "$(ls -A $NVMET/subsystems)$(ls -A $NVMET/ports)"
# --- a snapshot, read-only, over loop ----------------------------------------------------
# Exported through nvmet's file backend (its block backend opens the
# device for writing, which the kernel refuses for a read-only disk).
dd if=/dev/urandom of=/dev/$ZDISK bs=$MIB count=4 oflag=direct conv=fsync status=none
t 0 "snapshot nv/v1@gold" zv snapshot create nv/v1@gold
dd if=/dev/urandom of=/dev/$ZDISK bs=$MIB count=4 oflag=direct conv=fsync status=none
t 0 "export nv/v1@gold over loop" zv volume export --nqn $NQN_SNAP nv/v1@gold
has "exported read-only snapshot nv/v1@gold" "the export says it is a read-only snapshot"
ktap_expect_eq "nvmet's namespace uses its file backend (buffered_io 1)" 1 \
	"$(cat $NVMET/subsystems/$NQN_SNAP/namespaces/1/buffered_io 2>/dev/null)"
SDISK=$(cut -d' ' -f1 $CFG/nv/v1@gold/dev 2>/dev/null)
ktap_expect_eq "the snapshot's device is read-only" 1 "$(cat /sys/block/$SDISK/ro 2>/dev/null)"
loop_connect $NQN_SNAP
if [ -n "$CTRL" ] && [ -n "$SDISK" ] && NS=$(nvmf_nsdev "$CTRL"); then
	ktap_test_pass "connect to the snapshot with $HOW: nvme$CTRL, namespace $NS"
	SUM_GOLD=$(rsum /dev/$SDISK 0 4)
	ktap_expect_eq "snapshot: uuid is the snapshot's UUID" "$(cat /sys/block/$SDISK/zvpool/uuid)" "$(cat /sys/block/$NS/uuid)"
	ktap_expect_eq "snapshot: the namespace has its size" "$(blockdev --getsize64 /dev/$SDISK)" "$(blockdev --getsize64 /dev/$NS)"
	ktap_expect_eq "snapshot: reads what the snapshot holds" "$SUM_GOLD" "$(rsum /dev/$NS 0 4)"
	ktap_test_result "snapshot: the volume has changed since (newer data)" [ "$(rsum /dev/$ZDISK 0 4)" != "$SUM_GOLD" ]
	ktap_test_result "snapshot: a write through NVMe fails" \
		sh -c "! dd if=/dev/urandom of=/dev/$NS bs=4096 count=1 oflag=direct status=none 2>/dev/null"
	ktap_expect_eq "snapshot: unchanged by it" "$SUM_GOLD" "$(rsum /dev/$SDISK 0 4)"
	t 1 "delete of the exported snapshot is refused" zv snapshot delete nv/v1@gold
	has "exported over NVMe-oF as $NQN_SNAP" "the refusal says why"
	t 0 "unexport nv/v1@gold with the initiator connected" zv volume unexport nv/v1@gold
	ktap_test_result "the initiator's controller nvme$CTRL is gone" wait_for 10 gone "$CTRL"
else
	ktap_test_fail "connect to the snapshot with $HOW (answer: '$CTRL')"
	zv volume unexport nv/v1@gold
fi
ktap_test_result "unexport released the snapshot (unbound)" [ ! -e $CFG/nv/v1@gold ]
ktap_expect_eq "nvmet's configfs is empty again" "" "$(ls -A $NVMET/subsystems)$(ls -A $NVMET/ports)"
t 0 "snapshot delete nv/v1@gold" zv snapshot delete nv/v1@gold
t 0 "nv/v1 can be deleted once unexported" zv volume delete nv/v1

# --- cleanup ----------------------------------------------------------------------------
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop nv >/dev/null && rmmod zvpool &&
	echo 0 > $NB/power && rmdir $NB && rmmod null_blk"
rm -rf "$W"
[ -z "$MADE_HOSTNQN" ] || rm -f /etc/nvme/hostnqn /etc/nvme/hostid
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_set_plan $((KTAP_TESTNO - 1))
ktap_finished
