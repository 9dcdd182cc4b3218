#!/usr/bin/env bash
# Version matrix: the core parity subset against several onnxruntime x onnx releases.
#
# Each combination gets a throwaway venv (under $VM_DIR, default /tmp/onnx-smoothl1-vm)
# holding only onnxruntime==ORT and onnx==ONNX, installed without dependencies; everything
# else (torch 2.13.0, numpy, protobuf, ml_dtypes, pytest, hypothesis, onnxscript, ...) comes
# from a base venv through a .pth file placed after the throwaway venv's own site-packages,
# so the pinned onnx/onnxruntime win. This keeps each combination to two wheels (torch is
# never reinstalled: an unpinned torch would pull GBs of CUDA wheels).
#
# Per combination it runs:
#   1. tests/test_function_parity.py + tests/test_huber_function.py -k "float32 or float64"
#      (SmoothL1Loss and HuberLoss function paths vs torch, ORT and onnx.reference;
#      float16/bfloat16 depend on onnx's own bfloat16 handling)
#   2. tests/test_kernel_cpu.py + tests/test_kernel_huber.py, the kernel parity subset, when
#      the library is built
#   3. onnx-smoothl1 parity --quick --dtypes float32 float64 on the ORT and onnx.reference
#      paths (the parity runner itself; its quick grid holds SmoothL1Loss and HuberLoss cases)
# and prints one Markdown row per combination (the README's "Supported versions" table).
#
#   scripts/version_matrix.sh [ORT:ONNX[:EXTRA,...] ...]
#   default combinations: see COMBOS below. EXTRA are more pinned requirements for the venv
#   (e.g. openvino==2025.0.0,tract==0.21.0); with extras the parity runner also runs the
#   openvino and tract paths over every dtype.
#   env: VM_BASE_PYTHON  base interpreter (default: .venv/bin/python, else python3)
#        VM_DIR          where the throwaway venvs go (default /tmp/onnx-smoothl1-vm)
#        VM_KEEP=1       keep the venvs (default: removed after each combination)
#        VM_RESULTS      also write the Markdown table to this file
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

COMBOS=(
  1.30.0:1.23.2   # the pinned pair (constraints.txt)
  1.32.0:1.23.2   # newest onnxruntime on PyPI
  1.22.1:1.23.2
  1.21.1:1.23.2   # oldest onnxruntime in pyproject's range
  1.30.0:1.20.1
  1.30.0:1.19.1
  1.30.0:1.17.0
  1.30.0:1.16.2   # oldest onnx in pyproject's range
  1.21.1:1.17.0   # oldest onnxruntime with an old onnx
  1.30.0:1.23.2:openvino==2025.0.0,tract==0.23.8   # oldest runtimes in the [runtimes] extra
)
[[ $# -gt 0 ]] && COMBOS=("$@")

if [[ -n ${VM_BASE_PYTHON:-} ]]; then BASE_PY=$VM_BASE_PYTHON
elif [[ -x $ROOT/.venv/bin/python ]]; then BASE_PY=$ROOT/.venv/bin/python
else BASE_PY=$(command -v python3); fi
VM_DIR=${VM_DIR:-/tmp/onnx-smoothl1-vm}
LIB=${ONNX_SMOOTHL1_LIBRARY:-$ROOT/onnx_smoothl1/lib/libonnx_smoothl1_ops.so}
KERNEL_K="parity_grid or multiblock or fallback_contract or empty_and_rank0 or unbroadcastable"

"$BASE_PY" -c 'import torch, pytest, numpy' 2>/dev/null || {
  echo "version_matrix: $BASE_PY lacks torch/pytest (make install, or set VM_BASE_PYTHON)" >&2; exit 2; }
base_site=$("$BASE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$VM_DIR"

rows=("| onnxruntime | onnx | extras | function parity (f32/f64, both losses) | kernel subset (both losses) | parity runner | verdict |"
      "|---|---|---|---|---|---|---|")
status=0
summ() {  # last pytest summary line of a log, trimmed
  grep -E '(passed|failed|error|skipped|no tests ran)' "$1" | tail -n 1 | sed -e 's/=//g' -e 's/^ *//' \
    -e 's/ in [0-9.]*s.*//' -e 's/, [0-9]* deselected//' -e 's/, [0-9]* warnings\?//'
}

for combo in "${COMBOS[@]}"; do
  IFS=: read -r ort onx extra <<<"$combo"
  extras=(); [[ -n $extra ]] && IFS=, read -r -a extras <<<"$extra"
  tag="ort-$ort-onnx-$onx${extra:+-${extra//[=,]/_}}"
  venv="$VM_DIR/$tag"
  log="$VM_DIR/$tag.log"
  echo "== onnxruntime $ort, onnx $onx${extra:+, $extra} ($venv)"
  rm -rf "$venv"
  "$BASE_PY" -m venv --without-pip "$venv"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if ! "$BASE_PY" -m pip install -q --disable-pip-version-check --no-deps --target "$site" \
        "onnxruntime==$ort" "onnx==$onx" "${extras[@]}" >"$log" 2>&1; then
    tail -n 5 "$log"
    rows+=("| $ort | $onx | ${extra:--} | - | - | - | install failed: $(tail -n 1 "$log" | cut -c1-80) |")
    status=1; continue
  fi
  echo "import site; site.addsitedir('$base_site')" > "$site/zz_base_venv.pth"
  got=$("$venv/bin/python" -c 'import onnx, onnxruntime as o; print(o.__version__, onnx.__version__)' 2>>"$log")
  if [[ $got != "$ort $onx" ]]; then
    rows+=("| $ort | $onx | ${extra:--} | - | - | - | import failed: $(tail -n 1 "$log" | cut -c1-100) |")
    echo "   import failed: $(tail -n 1 "$log")"; status=1; continue
  fi

  ok=1
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_function_parity.py \
      tests/test_huber_function.py -k "float32 or float64" >"$log.function" 2>&1 || ok=0
  fn=$(summ "$log.function")
  if [[ -f $LIB ]]; then
    ONNX_SMOOTHL1_LIBRARY="$LIB" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/test_kernel_cpu.py tests/test_kernel_huber.py -k "$KERNEL_K" >"$log.kernel" 2>&1 || ok=0
    kn=$(summ "$log.kernel")
  else
    kn="library not built"
  fi
  if [[ -n $extra ]]; then
    prargs=(--paths ort-function ort-kernel onnx-reference openvino tract)
  else
    prargs=(--dtypes float32 float64 --paths ort-function ort-kernel onnx-reference)
  fi
  if "$venv/bin/python" -m onnx_smoothl1.cli parity --quick --allow-missing "${prargs[@]}" --json "$log.parity.json" \
      >"$log.parity" 2>&1; then
    huber=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("losses", {}).get("huber", 0))' \
        "$log.parity.json" 2>/dev/null || echo "?")
    pr="OK ($(grep -m1 -o '[0-9]* cases' "$log.parity"), $huber HuberLoss)"
    if [[ -n $extra ]]; then  # say how many dtypes each third-party runtime really passed
      pr+="; $("$venv/bin/python" - "$log.parity.json" <<'PY'
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
out = []
for path in ("openvino", "tract"):
    mine = {k.split("/")[1]: c for k, c in cells.items() if k.split("/")[0] == path}
    ok = [d for d, c in mine.items() if c["status"] == "pass"]
    out.append(f"{path} passes {len(ok)}/{len(mine)} dtypes")
print(", ".join(out))
PY
)"
    fi
  else
    ok=0; pr="FAILED: $(tail -n 1 "$log.parity" | cut -c1-80)"
  fi
  verdict=$([[ $ok == 1 ]] && echo "supported" || echo "**fails**")
  [[ $ok == 1 ]] || status=1
  rows+=("| $ort | $onx | ${extra:--} | $fn | $kn | $pr | $verdict |")
  echo "   function: $fn; kernel: $kn; parity: $pr -> $verdict"
  if [[ $ok == 0 ]]; then
    for f in "$log.function" "$log.kernel" "$log.parity"; do
      [[ -f $f ]] && grep -m3 -E '^(E |FAILED|ERROR)|Error' "$f" | cut -c1-200 | sed 's/^/     /'
    done
  fi
  [[ ${VM_KEEP:-0} == 1 ]] || rm -rf "$venv"
done

echo
printf '%s\n' "${rows[@]}"
[[ -n ${VM_RESULTS:-} ]] && printf '%s\n' "${rows[@]}" > "$VM_RESULTS"
exit $status
