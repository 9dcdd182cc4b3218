#!/usr/bin/env bash
# ABI check: the custom-op library, built once on the API-21 headers (onnxruntime 1.21),
# loaded into other onnxruntime releases from PyPI. Each release gets a throwaway venv under
# build/abi/ holding only onnxruntime (+ its own deps); everything else (torch, onnx, pytest,
# this package) comes from the project venv through a .pth file placed after the venv's own
# site-packages, so the venv's onnxruntime wins. Runs the kernel parity subset of
# tests/test_kernel_cpu.py against each release and prints one verdict line per release.
#
#   custom_op/abi_check.sh [ORT_VERSION ...]      default: 1.30.0 1.21.1
#   env: ABI_BASE_PYTHON (default .venv/bin/python), ONNX_SMOOTHL1_LIBRARY (default: the
#        package's onnx_smoothl1/lib/libonnx_smoothl1_ops.so), ABI_PYTEST_K (test selection)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ $# -gt 0 ]]; then VERSIONS=("$@"); else VERSIONS=(1.30.0 1.21.1); fi
BASE_PY=${ABI_BASE_PYTHON:-$ROOT/.venv/bin/python}
LIB=${ONNX_SMOOTHL1_LIBRARY:-$ROOT/onnx_smoothl1/lib/libonnx_smoothl1_ops.so}
SELECT=${ABI_PYTEST_K:-parity_grid or multiblock or fallback_contract or bad_attributes or thread_counts or empty_and_rank0 or unbroadcastable}

[[ -x $BASE_PY ]] || { echo "abi_check: $BASE_PY not found (run make install first)" >&2; exit 2; }
[[ -f $LIB ]] || { echo "abi_check: library $LIB not built (run make build)" >&2; exit 2; }
base_site=$("$BASE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

status=0
summary=()
for v in "${VERSIONS[@]}"; do
  venv="$ROOT/build/abi/ort-$v"
  if [[ ! -x $venv/bin/python ]]; then
    "$BASE_PY" -m venv --without-pip "$venv" 2>/dev/null || "$BASE_PY" -m venv "$venv"
  fi
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # Only onnxruntime (and what it needs that the base lacks) goes into the throwaway venv.
  "$BASE_PY" -m pip install -q --disable-pip-version-check --target "$site" --upgrade \
      "onnxruntime==$v" >/dev/null
  echo "import site; site.addsitedir('$base_site')" > "$site/zz_project_venv.pth"
  got=$("$venv/bin/python" -c 'import onnxruntime as o, os; print(o.__version__, os.path.dirname(o.__file__))')
  echo "== onnxruntime $got"
  [[ $got == "$v "* ]] || { echo "abi_check: venv imports onnxruntime $got, not $v" >&2; exit 3; }
  log="$ROOT/build/abi/ort-$v.log"
  if ONNX_SMOOTHL1_LIBRARY="$LIB" ONNX_SMOOTHL1_REQUIRE_KERNEL=1 \
      "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_kernel_cpu.py -k "$SELECT" \
      >"$log" 2>&1; then
    line="onnxruntime $v: $(tail -n 1 "$log")"
  else
    status=1
    tail -n 30 "$log"
    line="onnxruntime $v: FAILED: $(tail -n 1 "$log")"
  fi
  echo "$line"
  summary+=("$line")
done
echo "== ABI check with $(basename "$LIB") (built on ORT API 21 headers)"
printf '%s\n' "${summary[@]}"
exit $status
