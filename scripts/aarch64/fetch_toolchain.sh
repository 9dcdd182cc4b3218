#!/usr/bin/env bash
# Fetch Debian bookworm's aarch64 cross toolchain (GCC 12, binutils 2.40, glibc 2.36 and
# libstdc++ 12 for arm64) and unpack it, not install it, into DEST: `apt-get download` with a
# private apt state (no root; the system's apt configuration is left alone), then `dpkg -x`
# of each .deb (the technique of custom_op/fetch_ort_headers.sh). About 45 MB of .debs.
#
#   scripts/aarch64/fetch_toolchain.sh [DEST]     (default third_party/aarch64/toolchain)
#
# Prints DEST (absolute) on stdout and exits 0 once DEST/usr/bin/aarch64-linux-gnu-g++-12
# compiles and links a C++ test program; a second call finds that and fetches nothing.
# custom_op/aarch64/toolchain.cmake reads DEST (AARCH64_TOOLCHAIN_ROOT). On failure: one
# line on stderr naming what is missing, non-zero exit.
#
# Why Debian's GCC and not `zig c++` (docs/kernels.md, "aarch64"): the same compiler (GCC 12)
# and C++ runtime (libstdc++, dynamically linked, as manylinux expects) as the x86-64 build,
# so the kernels' vector code, -ffp-contract=off and the ABI are the x86 build's; zig brings
# clang and a static libc++ into a library that onnxruntime (libstdc++) loads.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/../../custom_op/private_apt.sh"
cd "$(dirname "$0")/../.."
DEST=${1:-third_party/aarch64/toolchain}
SUITE=${AARCH64_DEB_SUITE:-bookworm}
MIRROR=${AARCH64_DEB_MIRROR:-http://deb.debian.org/debian}
GCCV=12
PKGS=(
  binutils-aarch64-linux-gnu
  cpp-$GCCV-aarch64-linux-gnu gcc-$GCCV-aarch64-linux-gnu g++-$GCCV-aarch64-linux-gnu
  gcc-$GCCV-aarch64-linux-gnu-base gcc-$GCCV-cross-base
  libgcc-$GCCV-dev-arm64-cross libgcc-s1-arm64-cross
  libstdc++-$GCCV-dev-arm64-cross libstdc++6-arm64-cross
  libc6-dev-arm64-cross libc6-arm64-cross linux-libc-dev-arm64-cross
)

mkdir -p "$DEST" || { echo "fetch_toolchain: cannot create $DEST" >&2; exit 2; }
DEST=$(cd "$DEST" && pwd)
CXX="$DEST/usr/bin/aarch64-linux-gnu-g++-$GCCV"

check() {  # the unpacked compiler builds and links a C++ program for aarch64
  [[ -x "$CXX" ]] || return 1
  local t
  t=$(mktemp -d)
  printf '#include <string>\n#include <thread>\nint main(){std::string s("a");std::thread t([]{});t.join();return (int)s.size()-1;}\n' > "$t/t.cc"
  "$CXX" --sysroot="$DEST" -O1 "$t/t.cc" -o "$t/t" -pthread >"$t/log" 2>&1 \
    && "$DEST/usr/bin/aarch64-linux-gnu-readelf" -h "$t/t" 2>/dev/null | grep -q AArch64
  local rc=$?
  [[ $rc -eq 0 ]] || cp "$t/log" "$DEST/check.log" 2>/dev/null || true
  rm -rf "$t"
  return $rc
}

if check; then
  echo "$DEST"
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch_toolchain: $tool not found (needed to fetch the cross toolchain)" >&2; exit 2; }
done
if command -v flock >/dev/null 2>&1; then  # two builds at once fetch one at a time
  exec 9>"$DEST/.fetch.lock"
  flock 9
  if check; then echo "$DEST"; exit 0; fi
fi
APT="$DEST/apt"
rm -rf "$APT"
private_apt "$APT" "$MIRROR" "$SUITE" amd64
opts=("${APT_OPTS[@]}")
echo "fetch_toolchain: apt-get update ($SUITE) into $APT" >&2
apt-get "${opts[@]}" update >"$APT/update.log" 2>&1 \
  || { echo "fetch_toolchain: apt-get update of $MIRROR $SUITE failed (network? see $APT/update.log)" >&2; exit 3; }
echo "fetch_toolchain: apt-get download ${#PKGS[@]} packages" >&2
(cd "$APT/deb" && apt-get "${opts[@]}" download "${PKGS[@]}" >"$APT/download.log" 2>&1) \
  || { echo "fetch_toolchain: apt-get download from $SUITE failed: $(grep -m1 -E '^E:' "$APT/download.log" || echo "see $APT/download.log")" >&2; exit 3; }
for deb in "$APT/deb"/*.deb; do
  dpkg -x "$deb" "$DEST" || { echo "fetch_toolchain: dpkg -x $(basename "$deb") failed" >&2; exit 4; }
done
mkdir -p "$DEST/debs" && ls "$APT/deb" > "$DEST/debs/list.txt"
# Debian's cross binutils load their own libbfd/libopcodes/libctf (*-arm64.so) from
# /usr/lib/x86_64-linux-gnu, where dpkg would have put them: each such program moves to
# usr/libexec/aarch64-binutils and its usr/bin name becomes a wrapper that points the loader
# at DEST's copy (the gcc driver runs them through usr/aarch64-linux-gnu/bin symlinks).
mkdir -p "$DEST/usr/libexec/aarch64-binutils"
for exe in "$DEST"/usr/bin/aarch64-linux-gnu-*; do
  [[ -f $exe && ! -L $exe ]] || continue
  head -c 4 "$exe" | grep -q ELF || continue
  grep -aq -- '-arm64\.so' "$exe" || continue
  name=$(basename "$exe")
  mv "$exe" "$DEST/usr/libexec/aarch64-binutils/$name"
  cat > "$exe" <<WRAP
#!/bin/sh
d=\$(dirname "\$(readlink -f "\$0")")/..
LD_LIBRARY_PATH="\$d/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$d/libexec/aarch64-binutils/$name" "\$@"
WRAP
  chmod +x "$exe"
done
rm -rf "$APT"  # package lists and .debs (~60 MB) are needed only for the download
if ! check; then
  # The compiler is a host (amd64) program: name a host library it cannot find, if that is it.
  missing=$(ldd "$DEST/usr/libexec/gcc-cross/aarch64-linux-gnu/$GCCV/cc1plus" "$DEST/usr/bin/aarch64-linux-gnu-ld.bfd" 2>/dev/null \
            | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  if [[ -n $missing ]]; then
    echo "fetch_toolchain: the cross compiler needs host libraries not installed here: $missing" >&2
  else
    echo "fetch_toolchain: toolchain unpacked into $DEST but cannot build a test program: $(tail -n1 "$DEST/check.log" 2>/dev/null)" >&2
  fi
  exit 4
fi
echo "fetch_toolchain: $SUITE GCC $GCCV aarch64 cross toolchain unpacked into $DEST" >&2
echo "$DEST"
