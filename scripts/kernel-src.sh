#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fetch and unpack Debian's linux-source-7.3 (trixie-backports) into
# $ZVPOOL_CACHE/src through a private apt configuration: the system's own
# sources are never touched and nothing from trixie is installed.
# Prints the source directory on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APTDIR=$ZVPOOL_CACHE/apt
SRCROOT=$ZVPOOL_CACHE/src
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$SRCROOT"

# Reuse an unpacked tree when present (its version is recorded next to it).
if [ -f "$SRCROOT/VERSION" ] && [ -f "$SRCROOT/$(cat "$SRCROOT/VERSION")/linux/Makefile" ]; then
	v=$(cat "$SRCROOT/VERSION")
	log "kernel source: $ZV_KERNEL_PKG $v (cached)"
	echo "$SRCROOT/$v/linux"
	exit 0
fi

# Same mirror as the system's own Debian sources (override: ZVPOOL_DEBIAN_MIRROR).
mirror=${ZVPOOL_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
		tr -d ' ' | grep -v -- '-security' | head -n1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt sources; set ZVPOOL_DEBIAN_MIRROR"

cat >"$APTDIR/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} $ZV_KERNEL_SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} $ZV_KERNEL_SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main
EOS
APT=(apt-get -q -o "Dir::Etc::sourcelist=$APTDIR/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
	-o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
log "fetching $ZV_KERNEL_SUITE package lists (private apt config in $APTDIR)"
"${APT[@]}" update >"$APTDIR/update.log" 2>&1 || { cat "$APTDIR/update.log" >&2; die "apt update for $ZV_KERNEL_SUITE failed"; }
v=$(apt-cache -o "Dir::Etc::sourcelist=$APTDIR/sources.list" -o Dir::Etc::sourceparts=- \
	-o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache" -o Dir::State::status=/dev/null \
	show "$ZV_KERNEL_PKG" 2>/dev/null | awk '/^Version:/{print $2; exit}')
[ -n "$v" ] || die "package $ZV_KERNEL_PKG is not available from $ZV_KERNEL_SUITE"
log "kernel source: $ZV_KERNEL_PKG $v"
work=$SRCROOT/$v
rm -rf "$work"; mkdir -p "$work"
(cd "$work" && "${APT[@]}" download "$ZV_KERNEL_PKG=$v" >/dev/null) || die "could not download $ZV_KERNEL_PKG $v"
deb=$(ls "$work"/*.deb)
dpkg-deb -x "$deb" "$work/pkg"
tarball=$(ls "$work"/pkg/usr/src/linux-source-*.tar.xz)
mkdir -p "$work/linux"
tar -xJf "$tarball" -C "$work/linux" --strip-components=1
rm -rf "$work/pkg" "$deb"
[ -f "$work/linux/Makefile" ] || die "unpacked $ZV_KERNEL_PKG has no Makefile"
echo "$v" >"$SRCROOT/VERSION"
echo "$work/linux"
