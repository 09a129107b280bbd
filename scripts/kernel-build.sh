#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Configure and build the zvpool test kernel (tinyconfig + scripts/kernel/*.config)
# in $ZVPOOL_CACHE/kbuild/<flavour>-<key>, where <key> hashes everything the
# result depends on (source version, fragments, toolchain versions). A build that
# completed before is reused. Prints the build directory on stdout.
#   ZVPOOL_KERNEL=test|debug|profile   flavour (default test)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSRC=$("$ZVPOOL_TOP/scripts/kernel-src.sh")
frags=("$ZVPOOL_TOP/scripts/kernel/base.config")
case "$ZV_KFLAVOUR" in
test) ;;
debug) frags+=("$ZVPOOL_TOP/scripts/kernel/debug.config") ;;
profile) frags+=("$ZVPOOL_TOP/scripts/kernel/profile.config") ;;
*) die "ZVPOOL_KERNEL must be 'test', 'debug' or 'profile', not '$ZV_KFLAVOUR'" ;;
esac

# Bump when the way the kernel is configured or built changes.
RECIPE=1
key=$({
	echo "recipe $RECIPE"
	cat "$ZVPOOL_CACHE/src/VERSION" "${frags[@]}"
	$ZV_RUSTC --version; "$ZV_BINDGEN" --version; clang$ZV_LLVM_SUFFIX --version | head -1
} | sha256sum | cut -c1-12)
KBUILD=$ZVPOOL_CACHE/kbuild/$ZV_KFLAVOUR-$key
if [ -f "$KBUILD/.zv-complete" ]; then
	log "kernel ($ZV_KFLAVOUR, $(cat "$ZVPOOL_CACHE/src/VERSION")): cached in $KBUILD"
	echo "$KBUILD"
	exit 0
fi

# Only one build per flavour is kept.
rm -rf "$ZVPOOL_CACHE/kbuild/$ZV_KFLAVOUR"-*
mkdir -p "$KBUILD"
mapfile -t KVARS < <(zv_kmake_vars)
kmake() { make -s -C "$KSRC" O="$KBUILD" "${KVARS[@]}" "$@"; }

# Each fragment line becomes a scripts/config argument.
cfgargs=()
for f in "${frags[@]}"; do
	while IFS= read -r l; do
		case "$l" in
		"# CONFIG_"*" is not set") o=${l#\# CONFIG_}; cfgargs+=(--disable "${o% is not set}") ;;
		CONFIG_*=y) o=${l%%=*}; cfgargs+=(--enable "${o#CONFIG_}") ;;
		CONFIG_*=m) o=${l%%=*}; cfgargs+=(--module "${o#CONFIG_}") ;;
		CONFIG_*=\"*\") o=${l%%=*}; v=${l#*=\"}; cfgargs+=(--set-str "${o#CONFIG_}" "${v%\"}") ;;
		CONFIG_*=*) o=${l%%=*}; cfgargs+=(--set-val "${o#CONFIG_}" "${l#*=}") ;;
		esac
	done <"$f"
done

log "configuring kernel ($ZV_KFLAVOUR) in $KBUILD"
kmake tinyconfig >/dev/null
# Twice: options such as those depending on RUST only become visible after the
# first olddefconfig has enabled their dependencies.
for _ in 1 2 3; do
	"$KSRC/scripts/config" --file "$KBUILD/.config" "${cfgargs[@]}"
	kmake olddefconfig >/dev/null
done

bad=0
for f in "${frags[@]}"; do
	while IFS= read -r l; do
		case "$l" in
		CONFIG_*)
			grep -qxF "$l" "$KBUILD/.config" || {
				log "config line did not stick: $l (have: $(grep -E "^${l%%=*}=|^# ${l%%=*} is not set" "$KBUILD/.config" || echo unset))"
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			o=${l#\# }; o=${o% is not set}
			! grep -q "^$o=" "$KBUILD/.config" || { log "config option should be off: $o"; bad=1; }
			;;
		esac
	done <"$f"
done
[ $bad = 0 ] || die "kernel configuration incomplete (see above)"

log "building kernel ($ZV_KFLAVOUR) with $(nproc) jobs; this takes several minutes the first time"
start=$SECONDS
kmake -j"$(nproc)" bzImage modules >&2 || die "kernel build failed"
[ -f "$KBUILD/arch/x86/boot/bzImage" ] || die "kernel build produced no bzImage"
echo "$(cat "$ZVPOOL_CACHE/src/VERSION") $ZV_KFLAVOUR" >"$KBUILD/.zv-complete"
log "kernel built in $((SECONDS - start)) s"
echo "$KBUILD"
