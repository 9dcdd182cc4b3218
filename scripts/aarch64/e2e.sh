#!/usr/bin/env bash
# End-to-end test of the aarch64 wheel on this x86-64 machine, under qemu-user emulation
# (issue 25). The wheel is installed as a user installs it, by pip running inside an emulated
# aarch64 CPython 3.11 (scripts/aarch64/python_env.sh: Debian bookworm arm64 + PyPI's aarch64
# wheels; torch is not installed), and then, under emulation:
#
#   tags    host pip refuses the wheel for x86-64 and takes it with --platform ..._aarch64;
#           auditwheel's view of its manylinux tag; the emulated pip installs WHEEL[cpu]
#           (onnxruntime from the [cpu] range, from the local wheelhouse) and refuses the same
#           file named x86_64
#   (a)     the package imports from the install, the library is an aarch64 ELF, loads, and
#           `onnx-smoothl1 doctor` says the CPU kernel ran (exit 0)
#   (b)     both losses x every dtype x every reduction: ORT's profile shows the fused node with
#           the library registered and only standard ops without it; outputs vs the numpy
#           float64 reference (onnx_smoothl1.oracle)
#   (c)     `onnx-smoothl1 parity --quick --paths ort-kernel ort-function` (168 cases each:
#           every dtype, reduction, both losses, rank 0, empty, broadcast, odd, NaN/inf)
#   (d)     `onnx-smoothl1 demo`: every row PASS, kernel rows ran the node
#   (e)     bad input: onnxruntime 1.20.1 (aarch64) in front of the install: the CLI exits 2 with
#           one line naming the version, doctor exits 1, and registering the library directly
#           is refused in one line by the library itself
#   (f)     the oldest supported onnxruntime (1.21.1, the library's ORT API 21) in front of the
#           install: doctor exit 0 and the (b) checks
#
#   scripts/aarch64/e2e.sh WHEEL
#   env: E2E_WORK (default build/aarch64-e2e; emptied first), E2E_OLD_ORT (default 1.20.1),
#        E2E_MIN_ORT (default 1.21.1),
#        E2E_DEMO_N (default 100000: the demo's own default)
#
# Prints each step's time and verdict; exit 0 when all pass, else 1 with one line naming the
# steps that failed (2: bad usage, 3: the environment could not be set up).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/scripts/aarch64
die() { echo "e2e-aarch64: $1" >&2; exit "${2:-3}"; }

WHEEL=${1:-}
[[ -n $WHEEL ]] || die "usage: scripts/aarch64/e2e.sh WHEEL (dist-aarch64/onnx_smoothl1-*-manylinux*_aarch64.whl)" 2
[[ -f $WHEEL ]] || die "wheel $WHEEL not found (build it with scripts/aarch64/build_wheel.sh)" 2
WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
NAME=$(basename "$WHEEL")
[[ $NAME =~ ^onnx_smoothl1-[^-]+-py3-none-(manylinux[_0-9a-z]*_aarch64)(\.manylinux[_0-9a-z]*_aarch64)*\.whl$ ]] \
  || die "$NAME is not named onnx_smoothl1-VERSION-py3-none-manylinux*_aarch64.whl" 2
OLD_ORT=${E2E_OLD_ORT:-1.20.1}
MIN_ORT=${E2E_MIN_ORT:-1.21.1}
DEMO_N=${E2E_DEMO_N:-100000}
WORK=${E2E_WORK:-$ROOT/build/aarch64-e2e}
# Nothing from the caller's environment may point the package elsewhere.
for v in $(compgen -e | grep -E '^(ONNX_SMOOTHL1_|PYTHON)' || true); do unset "$v"; done
HOST_PY=$(command -v python3) || die "python3 not found (the host side of the checks)"

T0=$SECONDS
echo "== e2e-aarch64: $NAME ($(date -u +%FT%TZ))"
t=$SECONDS
PY=$("$HERE/python_env.sh") || die "the emulated aarch64 python could not be set up (scripts/aarch64/python_env.sh failed)"
ENV_DIR=$(dirname "$(dirname "$PY")")
WHEELS=$ENV_DIR/wheels
PIP_WHL=$(ls "$WHEELS"/pip-*.whl 2>/dev/null | head -n1) || true
[[ -n $PIP_WHL ]] || die "no pip wheel in $WHEELS (rerun scripts/aarch64/python_env.sh)"
if [[ -x $ROOT/.venv/bin/python ]]; then HOST_PIP=$ROOT/.venv/bin/python; else HOST_PIP=$HOST_PY; fi
"$HOST_PIP" -m pip --version >/dev/null 2>&1 || die "no x86 python with pip ($HOST_PIP; run make install)"
echo "   environment: $PY ($((SECONDS - t)) s)"

# One run at a time per work folder (`make test-aarch64` and a hand-run share the default).
mkdir -p "$(dirname "$WORK")"
exec 8>"$WORK.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 8; then
  echo "   another e2e.sh run holds $WORK.lock: waiting for it"
  flock 8
  echo "   got the lock after $((SECONDS - T0)) s (not counted below)"
  T0=$SECONDS
fi
rm -rf "$WORK" && mkdir -p "$WORK/run" "$WORK/logs"
RUN=$WORK/run      # cwd of every emulated command: nothing importable there
LOGS=$WORK/logs
SITE=$WORK/site

failed=()
step() {  # NAME COMMAND...: run, time, record
  local name=$1; shift
  local t=$SECONDS rc=0
  echo "-- $name"
  "$@" || rc=$?
  if [[ $rc -eq 0 ]]; then echo "   $name: PASS ($((SECONDS - t)) s)"
  else echo "   $name: FAIL (exit $rc, $((SECONDS - t)) s)"; failed+=("$name"); fi
}
emu() {  # the emulated python with SITE (or $E2E_SITE) on its path, from $RUN
  (cd "$RUN" && AARCH64_SITE=${E2E_SITE:-$SITE} "$PY" "$@")
}

# --- tags: does pip (host and emulated) accept the wheel for aarch64, and only there? ----------
tags() {
  local ok=0 out
  # Negative control: the host's pip, for its own platform (x86-64), must refuse it.
  if out=$("$HOST_PIP" -m pip install --dry-run --no-deps --no-index --target "$WORK/x86" "$WHEEL" 2>&1); then
    echo "   host pip (x86-64) accepted an aarch64 wheel: $(tail -n1 <<<"$out")"; ok=1
  elif grep -q "is not a supported wheel on this platform" <<<"$out"; then
    echo "   host pip, no --platform: refused (is not a supported wheel on this platform)"
  else
    echo "   host pip failed otherwise: $(tail -n1 <<<"$out")"; ok=1
  fi
  # pip's --platform takes manylinux_X_Y tags literally (it expands only the legacy
  # manylinux2014/2010 aliases), so every tag a glibc-2.36 aarch64 system (bookworm, the
  # emulated sysroot) accepts is listed, as the emulated interpreter's own tag list has them.
  local platforms=(--platform manylinux2014_aarch64) g
  for g in $(seq 17 36); do platforms+=(--platform "manylinux_2_${g}_aarch64"); done
  if out=$("$HOST_PIP" -m pip install --dry-run --no-deps --no-index --target "$WORK/x86" "${platforms[@]}" \
        --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: "$WHEEL" 2>&1); then
    echo "   host pip --platform manylinux2014/manylinux_2_17..2_36_aarch64: $(grep -m1 'Would install' <<<"$out")"
  else
    echo "   host pip --platform manylinux2014/manylinux_2_17..2_36_aarch64 refused it: $(tail -n1 <<<"$out")"; ok=1
  fi
  if [[ -x $ROOT/.venv/bin/auditwheel ]]; then
    out=$("$ROOT/.venv/bin/auditwheel" show "$WHEEL" 2>&1) || true
    local need
    need=$(grep -oE 'platform tag to "manylinux_[0-9]+_[0-9]+_aarch64"' <<<"$out" | grep -oE '[0-9]+_[0-9]+' | head -n1 || true)
    local have
    have=$(grep -oE 'manylinux_[0-9]+_[0-9]+_aarch64' <<<"$NAME" | grep -oE '[0-9]+_[0-9]+' | sort -t_ -k1,1n -k2,2n | head -n1 || true)
    if [[ -z $need ]]; then
      echo "   auditwheel show: no manylinux aarch64 tag: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"; ok=1
    else
      echo "   auditwheel show (host, x86-64): consistent with manylinux_${need}_aarch64; file tag manylinux_${have:-?}_aarch64"
      # The file's tag may not promise an older glibc than the library's symbols need.
      if [[ -z $have ]] || (( ${have%_*} * 1000 + ${have#*_} < ${need%_*} * 1000 + ${need#*_} )); then
        echo "   the wheel's tag manylinux_${have:-?} is older than its symbols allow (manylinux_$need)"; ok=1
      fi
    fi
  else
    echo "   auditwheel: not in .venv (make install), its view not checked"
  fi
  # The emulated pip: the aarch64 interpreter's own tags decide. WHEEL[cpu] brings onnxruntime.
  if emu "$PIP_WHL/pip" install --disable-pip-version-check --no-compile --no-index --find-links "$WHEELS" \
       --root-user-action=ignore --target "$SITE" "$WHEEL[cpu]" >"$LOGS/pip-install.log" 2>&1; then
    echo "   emulated pip: $(grep -m1 '^Successfully installed' "$LOGS/pip-install.log" | cut -c1-200)"
  else
    echo "   emulated pip could not install $NAME[cpu]: $(grep -m1 -E 'ERROR|error' "$LOGS/pip-install.log" || tail -n1 "$LOGS/pip-install.log")"
    return 1
  fi
  # Negative control: the same file named x86_64 must be refused by the emulated pip.
  local x86name=${NAME/_aarch64/_x86_64}
  x86name=${x86name//_aarch64/_x86_64}
  cp "$WHEEL" "$WORK/$x86name"
  if emu "$PIP_WHL/pip" install --disable-pip-version-check --no-deps --no-index --dry-run \
       --target "$WORK/x86" "$WORK/$x86name" >"$LOGS/pip-x86.log" 2>&1; then
    echo "   emulated pip accepted the wheel named $x86name"; ok=1
  elif grep -q "is not a supported wheel on this platform" "$LOGS/pip-x86.log"; then
    echo "   emulated pip refused it named $x86name (not a supported wheel on this platform)"
  else
    echo "   emulated pip failed otherwise on $x86name: $(tail -n1 "$LOGS/pip-x86.log")"; ok=1
  fi
  return $ok
}

# --- (a) import, library, doctor ----------------------------------------------------------------
import_and_doctor() {
  local ok=0 rc=0
  emu "$HERE/e2e_checks.py" install --site "$SITE" || ok=1
  emu -m onnx_smoothl1 doctor >"$LOGS/doctor.txt" 2>&1 || rc=$?
  sed 's/^/   | /' "$LOGS/doctor.txt"
  [[ $rc -eq 0 ]] || { echo "   doctor exit $rc"; ok=1; }
  rc=0
  emu -m onnx_smoothl1 doctor --json >"$LOGS/doctor.json" 2>"$LOGS/doctor.err" || rc=$?
  [[ $rc -eq 0 ]] || { echo "   doctor --json exit $rc: $(tail -n1 "$LOGS/doctor.err")"; ok=1; }
  "$HOST_PY" "$HERE/e2e_checks.py" doctor "$LOGS/doctor.json" --site "$SITE" || ok=1
  return $ok
}

# --- (c) the parity runner on the quick grid ------------------------------------------------------
parity() {
  local ok=0
  emu -m onnx_smoothl1 parity --quick --paths ort-kernel ort-function -q \
      --json "$LOGS/parity.json" --report "$LOGS/parity.md" >"$LOGS/parity.txt" 2>&1 || ok=1
  sed 's/^/   | /' "$LOGS/parity.txt"
  [[ -f $LOGS/parity.json ]] || { echo "   parity wrote no JSON"; return 1; }
  "$HOST_PY" "$HERE/e2e_checks.py" parity "$LOGS/parity.json" --paths ort-kernel ort-function || ok=1
  return $ok
}

# --- (d) the demo ---------------------------------------------------------------------------------
demo() {
  local ok=0
  emu -m onnx_smoothl1 demo --n "$DEMO_N" >"$LOGS/demo.txt" 2>&1 || { echo "   demo exit $?"; ok=1; }
  sed 's/^/   | /' "$LOGS/demo.txt"
  "$HOST_PY" "$HERE/e2e_checks.py" demo "$LOGS/demo.txt" || ok=1
  return $ok
}

# --- (e) an onnxruntime older than the supported range ----------------------------------------
AARCH64_PLATFORMS=(--platform manylinux2014_aarch64)
for g in $(seq 17 36); do AARCH64_PLATFORMS+=(--platform "manylinux_2_${g}_aarch64"); done

ort_site() {  # VERSION DIR: onnxruntime VERSION's aarch64 cp311 wheel (downloaded once) alone in DIR
  local v=$1 dir=$2
  if ! ls "$WHEELS"/onnxruntime-"$v"-cp311-*aarch64*.whl >/dev/null 2>&1; then
    "$HOST_PIP" -m pip download -q --disable-pip-version-check --no-deps --dest "$WHEELS" "${AARCH64_PLATFORMS[@]}" \
      --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: "onnxruntime==$v" \
      >"$LOGS/ort-$v-download.log" 2>&1 \
      || { echo "   cannot download onnxruntime $v for aarch64: $(tail -n1 "$LOGS/ort-$v-download.log")"; return 1; }
  fi
  "$HOST_PIP" -m pip install -q --disable-pip-version-check --no-deps --no-compile --no-index \
    --find-links "$WHEELS" --target "$dir" "${AARCH64_PLATFORMS[@]}" \
    --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: "onnxruntime==$v" \
    >"$LOGS/ort-$v-install.log" 2>&1 \
    || { echo "   cannot install onnxruntime $v: $(tail -n1 "$LOGS/ort-$v-install.log")"; return 1; }
}

old_ort() {
  local ok=0 rc=0 dir=$WORK/ort-$OLD_ORT
  ort_site "$OLD_ORT" "$dir" || return 1
  export E2E_SITE=$dir:$SITE   # the old onnxruntime in front of the install's
  emu -m onnx_smoothl1 demo >"$LOGS/old-demo.out" 2>"$LOGS/old-demo.err" || rc=$?
  echo "   demo: exit $rc, stderr: $(cat "$LOGS/old-demo.err")"
  [[ $rc -eq 2 ]] || { echo "   expected exit 2"; ok=1; }
  [[ $(grep -c . "$LOGS/old-demo.err") -eq 1 ]] || { echo "   expected one stderr line"; ok=1; }
  grep -q "onnxruntime $OLD_ORT is older than 1.21" "$LOGS/old-demo.err" || { echo "   the line does not name $OLD_ORT"; ok=1; }
  rc=0
  emu -m onnx_smoothl1 doctor --json >"$LOGS/old-doctor.json" 2>/dev/null || rc=$?
  if [[ $rc -eq 1 ]] && grep -q "onnxruntime $OLD_ORT is older than 1.21" "$LOGS/old-doctor.json"; then
    echo "   doctor: exit 1, names onnxruntime $OLD_ORT as older than 1.21"
  else echo "   doctor: exit $rc, expected 1 naming $OLD_ORT"; ok=1; fi
  rc=0
  emu "$HERE/e2e_checks.py" old-ort --expect "$OLD_ORT" >"$LOGS/old-register.out" 2>"$LOGS/old-register.err" || rc=$?
  sed 's/^/   | /' "$LOGS/old-register.out"
  [[ -s $LOGS/old-register.err ]] && echo "   onnxruntime's own stderr: $(tr '\n' ' ' <"$LOGS/old-register.err" | cut -c1-300)"
  [[ $rc -eq 0 ]] || ok=1
  unset E2E_SITE
  return $ok
}

# --- (f) the oldest supported onnxruntime ---------------------------------------------------------
min_ort() {
  local ok=0 rc=0 dir=$WORK/ort-$MIN_ORT
  ort_site "$MIN_ORT" "$dir" || return 1
  export E2E_SITE=$dir:$SITE   # onnxruntime $MIN_ORT in front of the install's
  emu -m onnx_smoothl1 doctor --json >"$LOGS/min-doctor.json" 2>"$LOGS/min-doctor.err" || rc=$?
  [[ $rc -eq 0 ]] || { echo "   doctor --json exit $rc: $(tail -n1 "$LOGS/min-doctor.err")"; ok=1; }
  if [[ -s $LOGS/min-doctor.json ]]; then
    "$HOST_PY" "$HERE/e2e_checks.py" doctor "$LOGS/min-doctor.json" --site "$SITE" --ort "$MIN_ORT" || ok=1
  else ok=1; fi
  emu "$HERE/e2e_checks.py" kernel --ort "$MIN_ORT" >"$LOGS/min-kernel.txt" 2>&1 || ok=1
  tail -n 1 "$LOGS/min-kernel.txt" | sed 's/^/   /'
  grep '^FAIL' "$LOGS/min-kernel.txt" | head -n 5 | sed 's/^/   /'
  unset E2E_SITE
  return $ok
}

step tags tags
if [[ ! -d $SITE/onnx_smoothl1 ]]; then
  echo "e2e-aarch64: FAILED: the wheel could not be installed under emulation (see $LOGS/pip-install.log) ($((SECONDS - T0)) s)"
  exit 1
fi
step "(a) import+doctor" import_and_doctor
step "(b) kernel profile" emu "$HERE/e2e_checks.py" kernel
step "(c) parity" parity
step "(d) demo" demo
step "(e) old onnxruntime" old_ort
step "(f) oldest supported onnxruntime" min_ort

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "e2e-aarch64: FAILED: $(printf '%s; ' "${failed[@]}" | sed 's/; $//') ($NAME, $((SECONDS - T0)) s; logs in $LOGS)"
  exit 1
fi
echo "e2e-aarch64: PASS: tags, (a) import+doctor, (b) kernel profile, (c) parity, (d) demo, (e) old onnxruntime, (f) onnxruntime $MIN_ORT ($NAME under qemu-aarch64, $((SECONDS - T0)) s; logs in $LOGS)"
