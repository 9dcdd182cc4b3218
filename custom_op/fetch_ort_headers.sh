#!/usr/bin/env bash
# Fetch onnxruntime's C/C++ API headers (Debian trixie's libonnxruntime-dev 1.21.0, ~85 kB)
# into a cache directory, using only the Debian package registry: `apt-get download` with a
# private apt state (no root needed, the system's apt configuration is left alone), then
# `dpkg -x`. Called by CMake when neither ORT_INCLUDE_DIR nor /usr/include/onnxruntime has
# the headers.
#
#   custom_op/fetch_ort_headers.sh CACHE_DIR
#
# On success prints the include directory (CACHE_DIR/usr/include/onnxruntime) and exits 0;
# a second call finds the cache and does not fetch again. Exits non-zero with a reason on
# stderr when the headers cannot be had (no apt-get/dpkg, no network).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/private_apt.sh"

CACHE=${1:?usage: fetch_ort_headers.sh CACHE_DIR}
PKG=${ORT_DEB_PACKAGE:-libonnxruntime-dev}
# The headers fix the ORT API version the library is built for (and so the oldest
# onnxruntime it loads into): prefer 1.21.0 (API 21); take the suite's current one otherwise.
VERSION=${ORT_DEB_VERSION:-1.21.0+dfsg-1}
SUITE=${ORT_DEB_SUITE:-trixie}
MIRROR=${ORT_DEB_MIRROR:-http://deb.debian.org/debian}
INC="$CACHE/usr/include/onnxruntime"

if [[ -f "$INC/onnxruntime_lite_custom_op.h" && -f "$INC/onnxruntime_c_api.h" ]]; then
  echo "$INC"
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch_ort_headers: $tool not found" >&2; exit 2; }
done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
INC="$CACHE/usr/include/onnxruntime"
# Concurrent builds (two venvs installing at once) fetch one at a time.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.fetch.lock"
  flock 9
  if [[ -f "$INC/onnxruntime_lite_custom_op.h" ]]; then echo "$INC"; exit 0; fi
fi
APT="$CACHE/apt"
private_apt "$APT" "$MIRROR" "$SUITE"
opts=("${APT_OPTS[@]}")
echo "fetch_ort_headers: apt-get update ($SUITE) into $APT" >&2
apt-get "${opts[@]}" update >&2 || { echo "fetch_ort_headers: apt-get update failed" >&2; exit 3; }
(cd "$APT/deb" && { apt-get "${opts[@]}" download "$PKG=$VERSION" >&2 \
    || apt-get "${opts[@]}" download "$PKG" >&2; }) \
  || { echo "fetch_ort_headers: apt-get download $PKG failed" >&2; exit 3; }
deb=$(ls "$APT/deb"/"$PKG"_*.deb | head -n1)
dpkg -x "$deb" "$CACHE"
# The package lists (~10 MB) are only needed for the download; keep the .deb for the record.
rm -rf "$APT/lists" "$APT/cache" "$APT"/*.bin
if [[ ! -f "$INC/onnxruntime_lite_custom_op.h" ]]; then
  echo "fetch_ort_headers: $deb has no onnxruntime_lite_custom_op.h" >&2
  exit 4
fi
echo "fetch_ort_headers: headers from $(basename "$deb") in $INC" >&2
echo "$INC"
