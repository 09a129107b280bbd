#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The guest tools `make bench` needs beyond the test initramfs, built from
# Debian source packages and cached as one cpio archive that bench.sh appends
# to the initramfs (the test initramfs itself is not changed):
#   /usr/lib/zvbench/fio     static fio (bookworm's source package, built with
#                            --disable-native, optional engines off; libaio,
#                            io_uring and zonemode=zbd are built in)
#   /usr/lib/zvbench/dmzadm  dm-zoned-tools (only trixie has it: its source,
#                            built here against bookworm's libraries, which
#                            are copied next to it)
# Sources come through a private apt configuration in $ZVPOOL_CACHE/bench/apt
# (deb-src lines only): the system's sources are not changed and no trixie
# binary is installed. Build dependencies are bookworm packages.
# Prints the archive's path; rebuilt only when its key changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FIO_SRC=fio=3.33-3                  # bookworm (same version as the test initramfs' fio)
DMZ_SRC=dm-zoned-tools=2.2.2-1      # trixie
DMZ_ORIG=dm-zoned-tools_2.2.2.orig.tar.xz
BUILD_DEPS=(dpkg-dev autoconf automake libtool pkg-config make gcc cpio
	libaio-dev zlib1g-dev uuid-dev libblkid-dev libkmod-dev libudev-dev libdevmapper-dev)

BD=$ZVPOOL_CACHE/bench
key=$({
	cat "$0"
	gcc --version | head -1
} | sha256sum | cut -c1-12)
out=$BD/tools-$key.cpio
if [ -f "$out" ]; then
	log "bench tools: cached ($out)"
	echo "$out"
	exit 0
fi
mkdir -p "$BD"

missing=()
for p in "${BUILD_DEPS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing build dependencies of the bench tools: ${missing[*]}"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$BD/apt-install.log" 2>&1 ||
		{ tail -n 20 "$BD/apt-install.log" >&2; die "could not install ${missing[*]}"; }
fi

# Private apt configuration: deb-src only.
APTDIR=$BD/apt
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
mirror=${ZVPOOL_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
		tr -d ' ' | grep -v -- '-security' | head -n1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt sources; set ZVPOOL_DEBIAN_MIRROR"
cat >"$APTDIR/sources.list" <<EOS
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main
EOS
APT=(apt-get -q -o "Dir::Etc::sourcelist=$APTDIR/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
	-o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
log "fetching bookworm/trixie source lists (private apt config in $APTDIR)"
"${APT[@]}" update >"$APTDIR/update.log" 2>&1 || { cat "$APTDIR/update.log" >&2; die "apt update (deb-src) failed"; }

W=$(mktemp -d "$BD/build.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"

# fio: the whole source package (apt verifies every file against the index).
log "fio: fetching source $FIO_SRC"
"${APT[@]}" source --download-only "$FIO_SRC" >"$W/fio-fetch.log" 2>&1 ||
	{ cat "$W/fio-fetch.log" >&2; die "could not fetch source package $FIO_SRC"; }
dpkg-source -x --no-check fio_*.dsc fio >/dev/null
log "fio: building (static, --disable-native)"
(
	cd fio
	./configure --build-static --disable-native --disable-numa --disable-rdma --disable-rados \
		--disable-rbd --disable-http --disable-gfapi --disable-libnfs --disable-lex --disable-pmem \
		--disable-xnvme --disable-libzbc --disable-tcmalloc --disable-dfs
	make -j"$(nproc)" fio
) >"$W/fio-build.log" 2>&1 || { tail -n 30 "$W/fio-build.log" >&2; die "fio build failed"; }
grep -q '^Zoned block device support *yes' "$W/fio-build.log" || die "fio was built without zonemode=zbd"
grep -q '^Linux AIO support *yes' "$W/fio-build.log" || die "fio was built without libaio"
ldd fio/fio >/dev/null 2>&1 && die "fio is not static"

# dm-zoned-tools. The mirror may serve the upstream tarball but not the Debian
# .dsc/.debian.tar.xz of a trixie package (seen here: 404); apt verifies each
# file it keeps, so the upstream tarball alone is enough (the Debian revision
# only adds packaging).
log "dm-zoned-tools: fetching source $DMZ_SRC"
"${APT[@]}" source --download-only "$DMZ_SRC" >"$W/dmz-fetch.log" 2>&1 || true
if ls dm-zoned-tools_*.dsc >/dev/null 2>&1 && ls dm-zoned-tools_*.debian.tar.* >/dev/null 2>&1; then
	dpkg-source -x --no-check dm-zoned-tools_*.dsc dmz >/dev/null
elif [ -f "$DMZ_ORIG" ]; then
	log "dm-zoned-tools: using the upstream tarball only (Debian packaging not served)"
	mkdir dmz && tar -xf "$DMZ_ORIG" -C dmz --strip-components=1
else
	cat "$W/dmz-fetch.log" >&2
	die "could not fetch source package $DMZ_SRC"
fi
log "dm-zoned-tools: building"
(cd dmz && sh ./autogen.sh && ./configure && make -j"$(nproc)") >"$W/dmz-build.log" 2>&1 ||
	{ tail -n 30 "$W/dmz-build.log" >&2; die "dm-zoned-tools build failed"; }

R=$W/root
mkdir -p "$R/usr/lib/zvbench"
install -m 755 fio/fio "$R/usr/lib/zvbench/fio"
strip "$R/usr/lib/zvbench/fio"
install -m 755 dmz/src/dmzadm "$R/usr/lib/zvbench/dmzadm"
for l in $(ldd dmz/src/dmzadm | grep -o '/[^ ]*'); do
	mkdir -p "$R$(dirname "$l")"
	cp -Ln "$l" "$R$l"
done
{
	echo "fio $(fio/fio --version) (Debian source ${FIO_SRC#*=}, static)"
	echo "dmzadm $(dmz/src/dmzadm --version 2>&1 | head -1) (Debian source ${DMZ_SRC#*=})"
} >"$R/usr/lib/zvbench/VERSIONS"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) >"$out.tmp"
mv "$out.tmp" "$out"
# Archives of other keys are stale for this tree but may belong to another
# checkout: keep the newest few.
ls -t "$BD"/tools-*.cpio 2>/dev/null | tail -n +4 | xargs -r rm -f
log "bench tools: $out ($(($(stat -c %s "$out") / 1048576)) MiB)"
echo "$out"
