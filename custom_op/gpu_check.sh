#!/usr/bin/env bash
# The one command for a GPU machine (Hopper, CUDA 13, Python 3.12 with torch; no network):
# builds the custom-op library with the CUDA kernel, runs the standalone launcher test, the
# CUDA pytest suite (`pytest -m cuda tests/test_cuda.py`) and the GPU benchmark, and writes
# everything to one log: $OUT/gpu_check.log when OUT is set, else build/gpu/gpu_check.log.
#
#   bash custom_op/gpu_check.sh          (or: make gpu-check)
#
# Needs, in the checkout (both git-ignored, so carry them to the GPU machine):
#   .gpu/ort-gpu-sm90.tar.xz   onnxruntime-gpu for CPython 3.12 / CUDA 13 / sm_90, made here
#                              by ../shared/gpu/make-ort-gpu-bundle .gpu (about 58 MB)
#   third_party/ort/           onnxruntime's C/C++ headers (custom_op/fetch_ort_headers.sh,
#                              run by any CMake build of the library)
# and optionally .gpu/wheels/*.whl: Python packages the machine lacks (numpy, onnx,
# ml_dtypes, pytest, hypothesis, matplotlib are expected there already).
#
# Nothing is installed system-wide and nothing is fetched: the bundle is unpacked to
# /tmp/ortgpu and put first on PYTHONPATH (shadowing a CPU-only onnxruntime), the package is
# used from the checkout (PYTHONPATH), the library is built into build/gpu and passed to the
# tests through ONNX_SMOOTHL1_LIBRARY. Each step has a time limit within an overall budget
# (GPU_CHECK_BUDGET seconds, default 540) so the log always comes back; the exit status is
# non-zero when any step failed (the last two, informational, may be skipped for time).
# The function path's node placement is checked twice: tests/test_cuda.py (printed per
# dtype) and the parity runner's ort-cuda-function row.
# Output files ($OUT, else build/gpu and build/gpu/results): gpu_check.log, gpu_bench.json,
# gpu_bench.machine.json, gpu_bench.png, PARITY_GPU.md, parity_gpu.json.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS=${OUT:-$ROOT/build/gpu/results}
mkdir -p "$RESULTS"
LOG=${OUT:+$OUT/gpu_check.log}
LOG=${LOG:-$ROOT/build/gpu/gpu_check.log}  # build/ is git-ignored
mkdir -p "$(dirname "$LOG")"
export PYTHONUNBUFFERED=1
if [[ -z "${GPU_CHECK_LOGGING:-}" ]]; then  # re-run under tee: one log, also on stdout
  GPU_CHECK_LOGGING=1 bash "$0" "$@" 2>&1 | tee "$LOG"
  exit "${PIPESTATUS[0]}"
fi

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-540}
# GPU_CHECK_STEPS=bench,pytest (comma-separated) reruns only those steps after the machine
# check (a rerun inside a short device lease); default: all. Keys: build, launcher, bench,
# fnprofile, pytest, parity, memcheck, variants, ncu, wheel (the last needs no build: it
# installs .gpu/wheel/*.whl, the wheel `make wheel` built, and runs doctor, the CUDA pytest
# suite and the 2^28 benchmark on the library inside it: the shipped artifact).
STEPS=${GPU_CHECK_STEPS:-all}
want() { [[ "$STEPS" == all || ",$STEPS," == *",$1,"* ]]; }
declare -a SUMMARY=()
FAILED=0

left() { echo $((START + BUDGET - $(date +%s))); }
# step NAME MAX_SECONDS COMMAND...: run with a timeout of min(MAX, time left - 10 s).
step() {
  local name=$1 max=$2
  shift 2
  local limit
  limit=$(left)
  limit=$((limit - 10))
  ((limit > max)) && limit=$max
  if ((limit < 15)); then
    echo "=== $name: SKIPPED (budget spent)"
    SUMMARY+=("SKIPPED  $name (budget spent)")
    [[ -n "${STEP_OPTIONAL:-}" ]] || FAILED=1
    return 1
  fi
  echo
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  local took=$((SECONDS - t0))
  if ((rc == 0)); then
    SUMMARY+=("PASS     $name (${took}s)")
  else
    ((rc == 124 || rc == 137)) && SUMMARY+=("TIMEOUT  $name (${took}s)") || SUMMARY+=("FAIL     $name (rc $rc, ${took}s)")
    FAILED=1
  fi
  echo "=== $name: rc=$rc in ${took}s"
  return $rc
}

finish() {
  echo
  echo "=== summary ($(($(date +%s) - START))s in all; log: $LOG)"
  printf '  %s\n' "${SUMMARY[@]}"
  ((FAILED)) && echo "gpu_check: FAILED" || echo "gpu_check: ALL PASSED"
  exit $FAILED
}

# --- 0. the machine -----------------------------------------------------------------------
echo "=== gpu_check $(date -u +%FT%TZ) in $ROOT"
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -5
echo "python: $(command -v "$PY") $("$PY" -V 2>&1)"
echo "nvcc:   $(command -v nvcc) $(nvcc --version 2>/dev/null | tail -1)"
CMAKE=$(command -v cmake || true)
[[ -z "$CMAKE" && -x "$(dirname "$(command -v "$PY")")/cmake" ]] && CMAKE="$(dirname "$(command -v "$PY")")/cmake"
echo "cmake:  ${CMAKE:-MISSING} $("${CMAKE:-false}" --version 2>/dev/null | head -1)"
echo "c++:    $(c++ --version 2>/dev/null | head -1)"

# --- 1. onnxruntime-gpu bundle and Python packages ----------------------------------------
BUNDLE=$ROOT/.gpu/ort-gpu-sm90.tar.xz
if [[ ! -f "$BUNDLE" ]]; then
  echo "gpu_check: $BUNDLE is missing: run ../shared/gpu/make-ort-gpu-bundle .gpu here and carry .gpu"
  SUMMARY+=("FAIL     onnxruntime-gpu bundle missing")
  FAILED=1
  finish
fi
rm -rf /tmp/ortgpu && mkdir -p /tmp/ortgpu && tar -C /tmp/ortgpu -xJf "$BUNDLE" || { SUMMARY+=("FAIL     unpacking $BUNDLE"); FAILED=1; finish; }
EXTRA=""
if compgen -G "$ROOT/.gpu/wheels/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site "$ROOT"/.gpu/wheels/*.whl \
    && EXTRA=/tmp/gpu-site
fi
export PYTHONPATH="/tmp/ortgpu:$ROOT${EXTRA:+:$EXTRA}${PYTHONPATH:+:$PYTHONPATH}"
LIB=$ROOT/build/gpu/custom_op/libonnx_smoothl1_ops.so
export ONNX_SMOOTHL1_LIBRARY=$LIB
export ONNX_SMOOTHL1_REQUIRE_CUDA=1  # tests/test_cuda.py: no CUDA EP / GPU is a failure here
step "python environment" 120 "$PY" - <<'EOF'
import importlib, sys
import torch
import onnxruntime as ort
try:
    ort.preload_dlls()
except Exception as e:
    print("onnxruntime.preload_dlls() failed:", e)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "device", torch.cuda.get_device_name(0))
print("onnxruntime", ort.__version__, "from", ort.__file__)
print("providers", ort.get_available_providers())
missing = []
for name in ("numpy", "onnx", "ml_dtypes", "pytest", "hypothesis", "matplotlib"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')}")
    except Exception as e:
        missing.append(f"{name} ({e})")
if "CUDAExecutionProvider" not in ort.get_available_providers():
    missing.append("onnxruntime CUDAExecutionProvider")
if missing:
    sys.exit("missing: " + ", ".join(missing) + " (carry wheels in .gpu/wheels)")
EOF

# --- 2. build the library with the CUDA kernel --------------------------------------------
export ROOT CMAKE PY
export ORT_INC=$ROOT/third_party/ort/usr/include/onnxruntime
export GEN_ARG=""
command -v ninja > /dev/null && GEN_ARG="-G Ninja"
# (a command, not a shell function, so that `timeout` can run it)
if want build && ! step "build (cmake, ONNX_SMOOTHL1_CUDA=ON)" 240 bash -c '
  [[ -f "$ORT_INC/onnxruntime_lite_custom_op.h" ]] || { echo "missing $ORT_INC: carry third_party/ort"; exit 1; }
  [[ -n "$CMAKE" ]] || { echo "no cmake on this machine"; exit 1; }
  "$CMAKE" -S "$ROOT" -B "$ROOT/build/gpu" $GEN_ARG -DCMAKE_BUILD_TYPE=Release \
    -DONNX_SMOOTHL1_CUDA=ON -DONNX_SMOOTHL1_REQUIRE_OPS=ON -DONNX_SMOOTHL1_BUILD_TESTS=ON \
    -DORT_INCLUDE_DIR="$ORT_INC" &&
  "$CMAKE" --build "$ROOT/build/gpu" -j "$(nproc)"'; then
  finish
fi

# --- 2b. the built wheel's library (the shipped artifact) ---------------------------------
if want wheel; then
  WHEEL=$(ls "$ROOT"/.gpu/wheel/onnx_smoothl1-*.whl 2>/dev/null | head -1)
  if [[ -z "$WHEEL" ]]; then
    echo "=== wheel: no .gpu/wheel/onnx_smoothl1-*.whl (make wheel; copy dist/'s wheel there and carry .gpu)"
    if [[ "$STEPS" == all ]]; then  # the source build was checked above; the wheel is extra
      SUMMARY+=("SKIPPED  wheel (no .gpu/wheel/*.whl)")
    else
      SUMMARY+=("FAIL     wheel missing")
      FAILED=1
    fi
  else
    echo "=== wheel: $(basename "$WHEEL") ($(stat -c %s "$WHEEL") bytes)"
    rm -rf /tmp/sl1wheel
    step "wheel: pip install --target /tmp/sl1wheel" 60 \
      "$PY" -m pip install -q --no-deps --no-index --no-compile --target /tmp/sl1wheel "$WHEEL"
    WHEEL_LIB=/tmp/sl1wheel/onnx_smoothl1/lib/libonnx_smoothl1_ops.so
    # doctor from the installed package (cwd outside the checkout, checkout off the path)
    step "wheel: onnx-smoothl1 doctor (installed package)" 60 \
      env -u ONNX_SMOOTHL1_LIBRARY PYTHONPATH="/tmp/ortgpu:/tmp/sl1wheel${EXTRA:+:$EXTRA}" \
      bash -c 'cd /tmp && "$0" -m onnx_smoothl1.cli doctor' "$PY"
    step "wheel: pytest -m cuda tests/test_cuda.py on the wheel's library" 150 \
      env ONNX_SMOOTHL1_LIBRARY="$WHEEL_LIB" "$PY" -m pytest -m cuda tests/test_cuda.py -q -rfEs \
      -p no:cacheprovider -k "not function_path"
    STEP_OPTIONAL=1 step "wheel: benchmark 2^28 (benchmarks/gpu.py --sizes 28)" 90 \
      env ONNX_SMOOTHL1_LIBRARY="$WHEEL_LIB" "$PY" benchmarks/gpu.py --sizes 28 --no-function \
      --out "$RESULTS/wheel"
  fi
fi

# --- 3. the launchers against a host double reference -------------------------------------
if want launcher; then
  step "launcher test (smooth_l1_cuda_test --require-gpu --big)" 240 \
    "$ROOT/build/gpu/custom_op/smooth_l1_cuda_test" --require-gpu --big
fi

# --- 4. benchmark (before the long pytest run, so a slow test cannot starve it) ----------
if want bench; then
  step "benchmark (benchmarks/gpu.py)" 200 "$PY" benchmarks/gpu.py --out "$RESULTS"
fi

# --- 4b. where the function path's time goes on the CUDA EP (ORT per-node profile) --------
if want fnprofile; then
  STEP_OPTIONAL=1 step "function path profile (benchmarks/gpu_function_profile.py)" 60 \
    "$PY" benchmarks/gpu_function_profile.py --log2n 24 --dtypes float32,float16 --reductions mean,none
fi

# --- 5. onnxruntime + CUDA EP: parity, determinism, CPU vs CUDA, attributes, the function
#        path's placement (-s: the placement lines are part of the evidence) ----------------
if want pytest; then
  step "pytest -m cuda tests/test_cuda.py" 280 \
    "$PY" -m pytest -m cuda tests/test_cuda.py -q -s -rfEs -p no:cacheprovider --durations=15
fi

# --- 5b. the parity runner's CUDA rows: the kernel (ort-cuda) and the function without the
#        library (ort-cuda-function, placement proven per node) against torch ---------------
if want parity; then
  step "parity runner (torch, ort-function, ort-kernel, ort-cuda, ort-cuda-function)" 150 \
    "$PY" -m onnx_smoothl1.cli parity --paths torch ort-function ort-kernel ort-cuda ort-cuda-function \
    --report "$RESULTS/PARITY_GPU.md" --json "$RESULTS/parity_gpu.json"
  # Unsupported is not good enough here: on a GPU machine both CUDA rows must pass every case.
  step "parity: every CUDA cell PASS" 30 "$PY" "$ROOT/custom_op/gpu_parity_cells.py" "$RESULTS/parity_gpu.json"
fi

# --- 6. memory checker over the launchers (small sizes) -----------------------------------
if want memcheck; then
  SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
  if [[ -n "$SANITIZER" ]]; then
    "$SANITIZER" --version 2>&1 | tail -1
    step "compute-sanitizer memcheck (smooth_l1_cuda_test --quick)" 120 \
      "$SANITIZER" --tool memcheck --error-exitcode 3 "$ROOT/build/gpu/custom_op/smooth_l1_cuda_test" --require-gpu --quick
  else
    echo "=== compute-sanitizer not found: memcheck not run"
    SUMMARY+=("FAIL     compute-sanitizer not found")
    FAILED=1
  fi
fi

# --- 7. raw kernel bandwidth and tuning variants (informational) --------------------------
if want variants; then
  STEP_OPTIONAL=1 step "kernel tuning variants (smooth_l1_cuda_test --bench-only)" 90 \
    "$ROOT/build/gpu/custom_op/smooth_l1_cuda_test" --require-gpu --bench-only
fi

# --- 8. one profiled launch of the 'mean' kernel (informational: where a target is missed,
#        its memory throughput and occupancy say why) ---------------------------------------
if want ncu; then
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)
  if [[ -n "$NCU" ]]; then
    STEP_OPTIONAL=1 step "ncu: one reduce_contig launch" 90 \
      "$NCU" --clock-control none --kernel-name regex:reduce_contig --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
      "$ROOT/build/gpu/custom_op/smooth_l1_cuda_test" --require-gpu --bench-only
  else
    echo "=== ncu not found: no profile"
  fi
fi

finish
