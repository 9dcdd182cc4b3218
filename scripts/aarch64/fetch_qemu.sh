#!/usr/bin/env bash
# Fetch Debian bookworm's qemu-user-static (amd64) and unpack it, not install it, into DEST:
# `apt-get download` with a private apt state (no root, the system's apt configuration is left
# alone), then `dpkg -x` (the technique of custom_op/fetch_ort_headers.sh).
#
#   scripts/aarch64/fetch_qemu.sh DEST
#
# Prints the absolute path of qemu-aarch64-static on stdout and exits 0. A second call finds
# DEST/usr/bin/qemu-aarch64-static and fetches nothing. On failure: one line on stderr naming
# what is missing, non-zero exit.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/../../custom_op/private_apt.sh"

DEST=${1:-}
if [[ -z "$DEST" ]]; then
  echo "fetch_qemu: usage: fetch_qemu.sh DEST" >&2
  exit 2
fi
PKG=${QEMU_DEB_PACKAGE:-qemu-user-static}
SUITE=${QEMU_DEB_SUITE:-bookworm}
MIRROR=${QEMU_DEB_MIRROR:-http://deb.debian.org/debian}
ARCH=${QEMU_DEB_ARCH:-amd64}

check() {  # the unpacked binary is there and runs on this host
  [[ -x "$1/usr/bin/qemu-aarch64-static" ]] && "$1/usr/bin/qemu-aarch64-static" --version >/dev/null 2>&1
}

mkdir -p "$DEST" 2>/dev/null || { echo "fetch_qemu: cannot create $DEST" >&2; exit 2; }
DEST=$(cd "$DEST" && pwd)
QEMU="$DEST/usr/bin/qemu-aarch64-static"
if check "$DEST"; then
  echo "$QEMU"
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch_qemu: $tool not found (needed to fetch $PKG)" >&2; exit 2; }
done
# Two callers at once (part A's build and the e2e script) fetch one at a time.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DEST/.fetch.lock"
  flock 9
  if check "$DEST"; then echo "$QEMU"; exit 0; fi
fi
APT="$DEST/apt"
rm -rf "$APT"
private_apt "$APT" "$MIRROR" "$SUITE" "$ARCH"
opts=("${APT_OPTS[@]}")
echo "fetch_qemu: apt-get update ($SUITE/$ARCH) into $APT" >&2
apt-get "${opts[@]}" update >"$APT/update.log" 2>&1 \
  || { echo "fetch_qemu: apt-get update of $MIRROR $SUITE failed (network? see $APT/update.log)" >&2; exit 3; }
(cd "$APT/deb" && apt-get "${opts[@]}" download "$PKG:$ARCH" >"$APT/download.log" 2>&1) \
  || { echo "fetch_qemu: apt-get download $PKG:$ARCH from $SUITE failed (see $APT/download.log)" >&2; exit 3; }
deb=$(ls "$APT/deb"/"$PKG"_*.deb 2>/dev/null | head -n1 || true)
[[ -n "$deb" ]] || { echo "fetch_qemu: no $PKG .deb after apt-get download" >&2; exit 3; }
dpkg -x "$deb" "$DEST" || { echo "fetch_qemu: dpkg -x $deb failed" >&2; exit 4; }
# The package holds a static qemu for every target (~430 MB unpacked); only aarch64 is kept, and
# the package's name for the record.
find "$DEST/usr/bin" -name 'qemu-*' ! -name qemu-aarch64-static -delete
basename "$deb" >"$DEST/PACKAGE"
# The package lists (~10 MB) are needed only for the download.
rm -rf "$APT"
if ! check "$DEST"; then
  echo "fetch_qemu: $(basename "$deb") unpacked but $QEMU is missing or does not run" >&2
  exit 4
fi
echo "fetch_qemu: $(basename "$deb") unpacked into $DEST" >&2
echo "$QEMU"
