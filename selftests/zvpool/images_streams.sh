#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Disk images and snapshot streams against the real driver, on two pools
# over memory-backed zoned null_blk devices (im: the source, imr: the
# receiving side):
# - volume import of a 64 MiB raw file with holes (and a range of written
#   zeros): the volume reads exactly the file and maps only its non-zero
#   4 KiB blocks; export-image back to raw: the same bytes, the file
#   sparse; an existing file is never overwritten;
# - qcow2: export-image --format qcow2 and import of that file (a round
#   trip without qemu-img); images made by qemu-img (qcow2 versions 3
#   and 2, holes left out) import to volumes reading what 'qemu-img
#   convert -O raw' gives, mapping only the data; a compressed image and
#   one with a backing file are refused with nothing made;
# - snapshot send of VOL@s1 (full) received into the other pool: the
#   received snapshot reads identical; more writes (new data, a range
#   zeroed), VOL@s2, an incremental send -i VOL@s1 VOL@s2 received on top:
#   identical, smaller than the full stream, the older received snapshot
#   unchanged; a stream received twice refused; a full stream cut in the
#   middle refused with no snapshot taken, then receive --resume of the
#   whole stream completes it.
DIR=$(dirname "$0")
. "$DIR/ktap_helpers.sh"

KO=${ZVPOOL_KO:-/lib/modules/zvpool/zvpool.ko}
NBA=/sys/kernel/config/nullb/zvim0
NBB=/sys/kernel/config/nullb/zvim1
CFG=/sys/kernel/config/zvpool
C=/tmp/zvim.cache
W=/tmp/zvim
MIB=1048576
ktap_print_header
for t in zvpoolctl md5sum truncate du stat head cmp blockdev; do
	if ! command -v $t >/dev/null; then
		ktap_set_plan 1
		ktap_test_skip "images and streams" "needs $t"
		ktap_finished
	fi
done
if [ ! -f "$KO" ] || [ ! -f /lib/modules/null_blk.ko ]; then
	ktap_set_plan 1
	ktap_test_skip "images and streams" "needs zvpool.ko and null_blk.ko"
	ktap_finished
fi
lsmod | grep -q '^zvpool ' && rmmod zvpool
dmesg_mark
DMESG_START=$DMESG_MARK
rm -rf "$W" "$C"
mkdir -p $W

zv() { zvpoolctl --cache "$C" "$@"; }
dev_of() { zvpoolctl volume show -H -o device "$1" | cut -f2; }
used_of() { zvpoolctl volume show -Hp -o used "$1" | cut -f2; }
fsum() { md5sum <"$1" | cut -d' ' -f1; }
dsum() { dd if="$1" bs=$MIB iflag=direct status=none | md5sum | cut -d' ' -f1; }
fsize() { stat -c %s "$1"; }
# snap_sum POOL SNAP: md5 of snapshot POOL/SNAP, bound and enabled through
# configfs for the read (read-only device) and unbound after.
snap_sum() {
	_o=$CFG/$1/$2
	mkdir "$_o" && echo 1 >"$_o/enable" || return 1
	dsum "/dev/$(cut -d' ' -f1 "$_o/dev")"
	echo 0 >"$_o/enable" && rmdir "$_o"
}
snapshots_of() { zvpoolctl snapshot list -H -o name "$1" | xargs; }

nullb_zoned $NBA 256 8 && nullb_zoned $NBB 256 8 || { ktap_set_plan 1; ktap_test_fail "two zoned null_blk devices"; ktap_finished; }
DA=/dev/${NBA##*/}
DB=/dev/${NBB##*/}
insmod "$KO" || { ktap_set_plan 1; ktap_test_fail "insmod"; ktap_finished; }
t 0 "pool im on a zoned null_blk" zv pool create -f im "$DA"
t 0 "pool imr on another" zv pool create -f imr "$DB"

# --- a raw file with holes -------------------------------------------------------
# 64 MiB: 1 MiB of data at 0, 2 MiB at 10 MiB, 2 MiB of written zeros at
# 20 MiB, one 4 KiB block at 33 MiB + 4 KiB, 6 bytes at 40 MiB + 17 (one
# block), the last 4 KiB block: 3 MiB + 3 x 4 KiB of non-zero blocks.
RAW=$W/disk.raw
DATA=$((3 * MIB + 3 * 4096))
mkraw() {
	truncate -s 64M $RAW &&
		dd if=/dev/urandom of=$RAW bs=$MIB count=1 conv=notrunc status=none &&
		dd if=/dev/urandom of=$RAW bs=$MIB count=2 seek=10 conv=notrunc status=none &&
		dd if=/dev/zero of=$RAW bs=$MIB count=2 seek=20 conv=notrunc status=none &&
		dd if=/dev/urandom of=$RAW bs=4096 count=1 seek=$((33 * 256 + 1)) conv=notrunc status=none &&
		printf 'zvpool' | dd of=$RAW bs=1 seek=$((40 * MIB + 17)) conv=notrunc status=none &&
		dd if=/dev/urandom of=$RAW bs=4096 count=1 seek=$((64 * 256 - 1)) conv=notrunc status=none &&
		[ "$(fsize $RAW)" = $((64 * MIB)) ]
}
ktap_test_result "a 64 MiB raw file with holes ($((DATA / 1024)) KiB of data)" mkraw
SUM_RAW=$(fsum $RAW)

t 0 "volume import im/raw from the raw file" zv volume import im/raw $RAW
has "(raw, 64.0M virtual)" "import reports a raw image of 64 MiB"
R=$(dev_of im/raw)
ktap_expect_eq "the volume has the file's size" $((64 * MIB)) "$(blockdev --getsize64 "$R")"
ktap_expect_eq "the volume reads exactly the file" "$SUM_RAW" "$(dsum "$R")"
ktap_expect_eq "volume show: used counts only the non-zero 4 KiB blocks" "$DATA" "$(used_of im/raw)"
ktap_expect_eq "usage: mapped_bytes the same" "$DATA" "$(sed -n 's/^mapped_bytes //p' $CFG/im/raw/usage)"

# --- export-image to raw ----------------------------------------------------------
OUT=$W/out.raw
t 0 "volume export-image im/raw to a raw file" zv volume export-image im/raw $OUT
ktap_expect_eq "the exported file has the volume's size" $((64 * MIB)) "$(fsize $OUT)"
ktap_expect_eq "and the same bytes as the imported file" "$SUM_RAW" "$(fsum $OUT)"
# Is the guest's /tmp able to show holes (du counts allocated blocks)?
truncate -s 16M $W/probe
if [ "$(du -k $W/probe | cut -f1)" -lt 1024 ]; then
	kib=$(du -k $OUT | cut -f1)
	ktap_print_msg "exported file: $kib KiB allocated of $((64 * 1024)) KiB"
	ktap_test_result "the exported file is sparse (at most the data + 1 MiB allocated)" \
		[ "$kib" -le $((DATA / 1024 + 1024)) ]
else
	ktap_test_skip "the exported file is sparse" "the guest's /tmp ($(awk '$2 == "/tmp" { print $3 }' /proc/mounts)) does not show holes in du"
fi
rm -f $W/probe
cp $OUT $W/keep.raw
t 1 "export-image to an existing file: refused" zv volume export-image im/raw $OUT
has "never overwritten" "the refusal says the file is never overwritten"
ktap_test_result "the existing file is unchanged" cmp -s $OUT $W/keep.raw
rm -f $W/keep.raw $OUT

# --- qcow2 -------------------------------------------------------------------------
Q=$W/out.qcow2
t 0 "volume export-image --format qcow2" zv volume export-image --format qcow2 im/raw $Q
ktap_expect_eq "the file starts with the qcow2 magic" "QFI" "$(head -c 3 $Q)"
ktap_print_msg "qcow2 file: $(fsize $Q) bytes"
ktap_test_result "it stores the data clusters only (smaller than 16 MiB)" [ "$(fsize $Q)" -lt $((16 * MIB)) ]
t 0 "volume import of that qcow2 file (format from its magic)" zv volume import im/fromq $Q
has "(qcow2, 64.0M virtual)" "import reports a qcow2 image of 64 MiB"
ktap_expect_eq "the volume reads exactly the raw file" "$SUM_RAW" "$(dsum "$(dev_of im/fromq)")"
ktap_expect_eq "and maps only the non-zero blocks" "$DATA" "$(used_of im/fromq)"
t 0 "volume delete im/fromq" zv volume delete im/fromq
rm -f $Q
# Images made by qemu-img (qemu-utils, copied into the guest like fio):
# the volume reads what 'qemu-img convert -O raw' makes of the image.
# qimport NAME IMAGE: import IMAGE as im/NAME; content and usage checked.
qimport() {
	t 0 "volume import of $2 as im/$1" zv volume import im/$1 $W/$2
	has "(qcow2, 64.0M virtual)" "import reports a qcow2 image of 64 MiB"
	rm -f $W/conv.raw
	ktap_test_result "qemu-img convert -O raw $2" qemu-img convert -f qcow2 -O raw $W/$2 $W/conv.raw
	ktap_expect_eq "im/$1 reads what qemu-img convert -O raw gives" "$(fsum $W/conv.raw)" "$(dsum "$(dev_of im/$1)")"
	ktap_expect_eq "and that is the raw file" "$SUM_RAW" "$(fsum $W/conv.raw)"
	ktap_expect_eq "im/$1 maps only the non-zero blocks" "$DATA" "$(used_of im/$1)"
	t 0 "volume delete im/$1" zv volume delete im/$1
	rm -f $W/conv.raw $W/$2
}
# qrefused NAME IMAGE TEXT: import of IMAGE refused, saying TEXT, no volume made.
qrefused() {
	t 1 "volume import of $2: refused" zv volume import im/$1 $W/$2
	has "$3" "the refusal says: $3"
	ktap_test_result "no volume im/$1 was made" sh -c "! zvpoolctl volume show im/$1 >/dev/null 2>&1"
}
if command -v qemu-img >/dev/null; then
	ktap_print_msg "$(qemu-img --version | head -1)"
	t 0 "qemu-img convert the raw file to qcow2 (version 3)" qemu-img convert -f raw -O qcow2 $RAW $W/q3.qcow2
	ktap_print_msg "q3.qcow2: $(fsize $W/q3.qcow2) bytes"
	ktap_test_result "qemu-img left the holes out (file under 8 MiB)" [ "$(fsize $W/q3.qcow2)" -lt $((8 * MIB)) ]
	qimport q3 q3.qcow2
	t 0 "qemu-img convert to qcow2 version 2, 4 KiB clusters" \
		qemu-img convert -f raw -O qcow2 -o compat=0.10,cluster_size=4096 $RAW $W/q2.qcow2
	qimport q2 q2.qcow2
	t 0 "qemu-img convert -c: compressed clusters" qemu-img convert -c -f raw -O qcow2 $RAW $W/qc.qcow2
	# qemu-img stores a cluster that does not compress (the random MiBs)
	# plain: the first compressed one is the 64 KiB at 33 MiB (4 KiB of
	# random data and zeros).
	qrefused qc qc.qcow2 "compressed cluster (deflate) at guest offset $((33 * MIB))"
	t 0 "qemu-img create an overlay with a backing file" \
		qemu-img create -f qcow2 -b $W/qc.qcow2 -F qcow2 $W/ovl.qcow2
	qrefused ovl ovl.qcow2 "backing file"
	rm -f $W/qc.qcow2 $W/ovl.qcow2
else
	ktap_test_skip "volume import of images made by qemu-img" "no qemu-img in the guest (qemu-utils)"
fi

# --- snapshot send / receive: full ------------------------------------------------------
t 0 "snapshot create im/raw@s1" zv snapshot create im/raw@s1
FULL=$W/full.zvs
ktap_print_msg "\$ zvpoolctl snapshot send im/raw@s1 > $FULL"
zv snapshot send im/raw@s1 >$FULL 2>$W/err
rc=$?
sed 's/^/# /' $W/err
ktap_expect_eq "snapshot send (full) of im/raw@s1" 0 "$rc"
FULL_SZ=$(fsize $FULL)
ktap_print_msg "full stream: $FULL_SZ bytes"
ktap_test_result "the full stream holds the data, not the holes (less than 8 MiB)" \
	sh -c "[ $FULL_SZ -gt $DATA ] && [ $FULL_SZ -lt $((8 * MIB)) ]"
tin 0 "snapshot receive into imr/rv" $FULL zv snapshot receive imr/rv
has "received imr/rv@s1 (full)" "received as imr/rv@s1"
ktap_expect_eq "the received snapshot imr/rv@s1 reads identical" "$SUM_RAW" "$(snap_sum imr rv@s1)"
ktap_expect_eq "the received volume imr/rv too" "$SUM_RAW" "$(dsum "$(dev_of imr/rv)")"
ktap_expect_eq "and maps only the data" "$DATA" "$(used_of imr/rv)"
tin 1 "the same stream again: refused" $FULL zv snapshot receive imr/rv
has "received already" "the refusal says it was received already"

# --- incremental -----------------------------------------------------------------------
R=$(dev_of im/raw)
ktap_test_result "more writes on im/raw: 1 MiB new at 30 MiB, the first MiB zeroed, one block rewritten" sh -c \
	"dd if=/dev/urandom of=$R bs=$MIB count=1 seek=30 oflag=direct status=none &&
	 dd if=/dev/zero of=$R bs=$MIB count=1 oflag=direct status=none &&
	 dd if=/dev/urandom of=$R bs=4096 count=1 seek=$((33 * 256 + 1)) oflag=direct conv=fsync status=none"
SUM_S2=$(dsum "$R")
t 0 "snapshot create im/raw@s2" zv snapshot create im/raw@s2
INC=$W/inc.zvs
ktap_print_msg "\$ zvpoolctl snapshot send -i raw@s1 im/raw@s2 > $INC"
zv snapshot send -i raw@s1 im/raw@s2 >$INC 2>$W/err
rc=$?
sed 's/^/# /' $W/err
ktap_expect_eq "snapshot send -i raw@s1 im/raw@s2" 0 "$rc"
INC_SZ=$(fsize $INC)
ktap_print_msg "incremental stream: $INC_SZ bytes (full: $FULL_SZ)"
ktap_test_result "the incremental stream is about the change (1 MiB + 4 KiB of data, under 2 MiB)" \
	sh -c "[ $INC_SZ -gt $((MIB + 4096)) ] && [ $INC_SZ -lt $((2 * MIB)) ]"
# The kernel's list of what differs (what send used): the control device.
ctl() { { printf '%s' "$1" >&3 && cat <&3; } 3<>/dev/zvpool-control; }
ctl "diff im raw@s2 raw@s1" >$W/diff 2>/dev/null
sed 's/^/# diff: /' $W/diff | head -8
ktap_expect_eq "control device: diff im raw@s2 raw@s1 starts with the size" "size $((64 * MIB))" "$(head -1 $W/diff)"
# Every listed range inside what changed ([0, 1M), [30M, 31M), the block
# at 33M + 4K), all of it listed, nothing unmapped.
LISTED=$(awk -v M=$MIB 'NR > 1 {
	if ($1 != "map") bad = 1
	s = $2; e = $2 + $3
	if (!((e <= M) || (s >= 30 * M && e <= 31 * M) || (s >= 33 * M + 4096 && e <= 33 * M + 8192))) bad = 1
	n += $3 } END { print (bad ? "bad" : n) }' $W/diff)
ktap_expect_eq "it lists exactly the changed ranges (2 MiB + 4 KiB)" "$((2 * MIB + 4096))" "$LISTED"
ktap_test_result "a writable volume is refused (EINVAL)" sh -c "! { printf 'diff im raw raw@s1' >&3; } 3<>/dev/zvpool-control 2>/dev/null"
tin 0 "receive the incremental on top of imr/rv" $INC zv snapshot receive imr/rv
has "received imr/rv@s2 (incremental on imr/rv@s1)" "received as imr/rv@s2 on imr/rv@s1"
ktap_expect_eq "imr/rv@s2 reads identical to im/raw@s2" "$SUM_S2" "$(snap_sum imr rv@s2)"
ktap_expect_eq "the source snapshot im/raw@s2 reads the same" "$SUM_S2" "$(snap_sum im raw@s2)"
ktap_expect_eq "imr/rv@s1 did not change" "$SUM_RAW" "$(snap_sum imr rv@s1)"
ktap_expect_eq "the zeroed MiB is unmapped on imr/rv (used: data - 1 MiB + 1 MiB)" "$DATA" "$(used_of imr/rv)"

# --- a cut stream, then --resume -------------------------------------------------------------
CUT=$W/cut.zvs
head -c $((FULL_SZ / 2)) $FULL >$CUT
tin 1 "receive of the full stream cut in the middle: refused" $CUT zv snapshot receive imr/cv
has "stream refused" "the refusal says the stream is refused"
has "no snapshot was taken" "and that no snapshot was taken"
ktap_expect_eq "no snapshot imr/cv@s1" "imr/rv@s1 imr/rv@s2" "$(snapshots_of imr)"
tin 0 "receive --resume of the whole stream into imr/cv" $FULL zv snapshot receive --resume imr/cv
has "received imr/cv@s1 (full)" "received as imr/cv@s1"
has "already there" "the part received before the cut is not written again"
ktap_expect_eq "imr/cv@s1 reads identical to im/raw@s1" "$SUM_RAW" "$(snap_sum imr cv@s1)"

# --- cleanup ----------------------------------------------------------------------------
ktap_test_result "cleanup" sh -c "zvpoolctl pool stop im >/dev/null && zvpoolctl pool stop imr >/dev/null &&
	rmmod zvpool && echo 0 > $NBA/power && rmdir $NBA && echo 0 > $NBB/power && rmdir $NBB && rmmod null_blk"
rm -rf "$W" "$C"
DMESG_MARK=$DMESG_START
dmesg_clean_since_mark "no WARN, oops, lockdep or hung task"
ktap_set_plan $((KTAP_TESTNO - 1))
ktap_finished
