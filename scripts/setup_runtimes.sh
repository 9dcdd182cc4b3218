#!/usr/bin/env bash
# Set up the two execution-provider runtimes of the parity runner (onnx_smoothl1/parity_eps.py):
#
#   ort-webgpu       onnxruntime-ep-webgpu (the WebGPU plugin EP) in the main venv, plus Mesa's
#                    lavapipe Vulkan driver and the Vulkan loader unpacked into third_party/mesa
#                    (Debian packages, `apt-get download` with a private apt state + `dpkg -x`:
#                    nothing is installed system-wide; see custom_op/fetch_ort_headers.sh)
#   ort-openvino-ep  onnxruntime-openvino in a separate venv .venv-ort-openvino (its wheel ships
#                    its own `onnxruntime` module, which would replace the main venv's)
#
#   scripts/setup_runtimes.sh [PYTHON]      (run from anywhere; PYTHON default .venv/bin/python)
#
# Idempotent: a runtime whose stamp (third_party/runtimes/<name>.ok) matches the pinned
# versions and whose files are present is not touched again (about a second for both).
# Always exits 0: a runtime that cannot be set up gets third_party/runtimes/<name>.unavailable
# holding the reason, which the parity path reports as "unsupported: <reason>"; a runtime that
# is set up has <name>.ok and no .unavailable. The WebGPU worker's environment goes to
# third_party/runtimes/webgpu.env (KEY=VALUE lines).
#
# env: WEBGPU_EP_VERSION      (default 0.4.0; needs onnxruntime >= 1.24.4)
#      ORT_OPENVINO_VERSION   (default 1.24.1)
#      MESA_DEB_VERSION       (default 25.0.7-2~bpo12+1, suite MESA_DEB_SUITE=bookworm-backports)
#      MESA_DEB_MIRROR        (default: the Debian mirror in /etc/apt/sources.list*)
#      SETUP_RUNTIMES_FORCE=1 redo everything
#      ONNX2TORCH_VERSION     (default 1.5.15; installed with --no-deps, see setup_onnx2torch)
#      SETUP_RUNTIMES_ONLY=webgpu|openvino|onnx2torch  set up just one
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${1:-.venv/bin/python}
[[ $PY == /* ]] || PY="$ROOT/$PY"

RT="$ROOT/third_party/runtimes"
MESA="$ROOT/third_party/mesa"
OVENV="$ROOT/.venv-ort-openvino"
WEBGPU_EP_VERSION=${WEBGPU_EP_VERSION:-0.4.0}
ORT_OPENVINO_VERSION=${ORT_OPENVINO_VERSION:-1.24.1}
MESA_DEB_VERSION=${MESA_DEB_VERSION:-25.0.7-2~bpo12+1}
MESA_DEB_SUITE=${MESA_DEB_SUITE:-bookworm-backports}
MESA_BASE_SUITE=${MESA_BASE_SUITE:-bookworm}
FORCE=${SETUP_RUNTIMES_FORCE:-0}
ONLY=${SETUP_RUNTIMES_ONLY:-}
mkdir -p "$RT"

log() { echo "setup_runtimes: $*" >&2; }
now() { date +%s.%N; }

# mark NAME ok|unavailable TEXT
mark() {
  local name=$1 state=$2 text=$3
  if [[ $state == ok ]]; then
    rm -f "$RT/$name.unavailable"
    printf '%s\n' "$text" > "$RT/$name.ok"
    log "$name: ready"
  else
    rm -f "$RT/$name.ok"
    printf '%s\n' "$text" > "$RT/$name.unavailable"
    log "$name: unavailable: $text"
  fi
}

# ------------------------------------------------------------------------------- WebGPU
deb_mirror() {
  if [[ -n ${MESA_DEB_MIRROR:-} ]]; then echo "$MESA_DEB_MIRROR"; return; fi
  local url
  url=$(grep -hsE '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1)
  echo "${url%/}"
  [[ -n $url ]] || echo "http://deb.debian.org/debian"
}

APT_OPTS=()
apt_setup() {
  local apt="$MESA/apt" mirror
  mirror=$(deb_mirror | head -n1)
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc/preferences.d" "$MESA/deb"
  {
    echo "deb $mirror $MESA_BASE_SUITE main"
    echo "deb $mirror $MESA_BASE_SUITE-updates main"
    echo "deb $mirror $MESA_DEB_SUITE main"
  } > "$apt/etc/sources.list"
  : > "$apt/status"
  APT_OPTS=(
    -o "Dir::Etc::sourcelist=$apt/etc/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
    -o "Dir::State=$apt"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::State::status=$apt/status"
    -o "Dir::Cache=$apt/cache"
    -o "APT::Sandbox::User=$(id -un)"
    -o "Debug::NoLocking=1"
    -q
  )
  log "webgpu: apt-get update ($MESA_BASE_SUITE, $MESA_DEB_SUITE from $mirror)"
  apt-get "${APT_OPTS[@]}" update > "$MESA/apt-update.log" 2>&1
}

# fetch PKG[=VERSION|/SUITE] ...: download into $MESA/deb and unpack into $MESA/root
fetch() {
  local spec
  for spec in "$@"; do
    (cd "$MESA/deb" && apt-get "${APT_OPTS[@]}" download "$spec") >> "$MESA/fetch.log" 2>&1 || return 1
    echo "$spec" >> "$MESA/fetched.txt"
  done
  local deb
  for deb in "$MESA"/deb/*.deb; do
    [[ -f "$deb.unpacked" ]] && continue
    dpkg -x "$deb" "$MESA/root" && touch "$deb.unpacked" || return 1
  done
}

# Debian package of a shared-library soname: the policy name (libfoo.so.N -> libfooN,
# libfoo2.so.N -> libfoo2-N), with the exceptions met on the way to lavapipe.
soname_package() {
  local so=$1 base ver
  case $so in
    libLLVM-15.so.1|libLLVM.so.15*) echo libllvm15; return ;;
    libLLVM-19.so.1|libLLVM.so.19*) echo libllvm19; return ;;
    libz.so.1) echo zlib1g; return ;;
    libxml2.so.2) echo libxml2; return ;;
    libgcc_s.so.1) echo libgcc-s1; return ;;
    libicuuc.so.*|libicudata.so.*|libicui18n.so.*) echo "libicu${so##*.so.}"; return ;;
    libsensors.so.5) echo libsensors5; return ;;
  esac
  base=${so%%.so.*}; ver=${so##*.so.}
  base=${base,,}
  if [[ $base =~ [0-9]$ ]]; then echo "$base-$ver"; else echo "$base$ver"; fi
}

libdirs() { echo "$MESA/root/usr/lib/x86_64-linux-gnu:$MESA/root/lib/x86_64-linux-gnu"; }

missing_sonames() {
  local f
  for f in "$MESA/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "$MESA/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1"; do
    LD_LIBRARY_PATH="$(libdirs)" ldd "$f" 2>/dev/null | awk '/not found/ {print $1}'
  done | sort -u
}

# Mesa's direct dependencies that the host lacks or has too old (dpkg's own status), as
# download specs (taking bookworm-backports' build where the base suite's is too old).
needed_direct_deps() {
  local depends
  depends=$(apt-cache "${APT_OPTS[@]}" show "mesa-vulkan-drivers=$MESA_DEB_VERSION" 2>/dev/null \
            | sed -n 's/^Depends: //p' | head -n1)
  local IFS=','
  local dep name op ver have
  for dep in $depends; do
    dep=${dep%%|*}; dep=$(echo "$dep" | xargs)
    name=${dep%% *}; name=${name%%:*}
    [[ $name == libvulkan1 ]] && continue
    op=""; ver=""
    if [[ $dep =~ \(([<>=]+)\ ([^\)]+)\) ]]; then op=${BASH_REMATCH[1]}; ver=${BASH_REMATCH[2]}; fi
    have=$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' "$name" 2>/dev/null | awk '$1 ~ /^ii/ {print $2}')
    if [[ -n $have ]] && { [[ -z $op ]] || dpkg --compare-versions "$have" "${op/>>/gt}" "$ver"; }; then
      continue
    fi
    # The base suite's build if it is new enough, else the backport.
    local cand
    cand=$(apt-cache "${APT_OPTS[@]}" madison "$name" 2>/dev/null | awk -F'|' -v s="$MESA_BASE_SUITE/" \
           'index($3, s) {gsub(/ /, "", $2); print $2; exit}')
    if [[ -n $cand ]] && { [[ -z $op ]] || dpkg --compare-versions "$cand" "${op/>>/gt}" "$ver"; }; then
      echo "$name=$cand"
    else
      echo "$name/$MESA_DEB_SUITE"
    fi
  done
}

webgpu_env() {
  cat <<EOF
VK_ICD_FILENAMES=$MESA/lvp_icd.x86_64.json
LD_LIBRARY_PATH=$(libdirs)
ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1
EOF
}

# Smoke test: the plugin registers, lists a WebGPU device, and a one-node model runs on it.
webgpu_smoke() {
  (
  while IFS= read -r line; do export "${line?}"; done < <(webgpu_env)
  timeout 180 "$PY" - <<'EOF' 2>&1
import numpy as np, onnxruntime as ort, onnxruntime_ep_webgpu as w
from onnx import helper as h, TensorProto as T
ort.register_execution_provider_library("webgpu", w.get_library_path())
devs = [d for d in ort.get_ep_devices() if d.ep_name == w.get_ep_name()]
if not devs:
    raise SystemExit("SMOKE: no WebGPU EP device (is a Vulkan driver visible?)")
g = h.make_graph([h.make_node("Abs", ["x"], ["z"])], "g", [h.make_tensor_value_info("x", T.FLOAT, [3])],
                 [h.make_tensor_value_info("z", T.FLOAT, [3])])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
so = ort.SessionOptions(); so.add_provider_for_devices(devs, {})
s = ort.InferenceSession(m.SerializeToString(), so)
out = s.run(None, {"x": np.array([-1, 2, -3], np.float32)})[0]
assert s.get_providers()[0] == w.get_ep_name(), s.get_providers()
assert out.tolist() == [1, 2, 3], out
print("SMOKE-OK", ort.__version__)
EOF
  )
}

setup_webgpu() {
  local t0 stamp
  t0=$(now)
  stamp="onnxruntime-ep-webgpu $WEBGPU_EP_VERSION; mesa-vulkan-drivers $MESA_DEB_VERSION"
  if [[ $FORCE != 1 && -f $RT/webgpu.ok && "$(head -n1 "$RT/webgpu.ok")" == "$stamp" \
        && -f $MESA/lvp_icd.x86_64.json && -f $MESA/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so ]] \
     && "$PY" -c "import onnxruntime_ep_webgpu" 2>/dev/null; then
    webgpu_env > "$RT/webgpu.env"
    log "webgpu: already set up ($stamp)"
    return
  fi
  rm -f "$RT/webgpu.ok"
  if [[ ! -x $PY ]]; then mark webgpu unavailable "python $PY not found"; return; fi
  if ! "$PY" -c "import onnxruntime_ep_webgpu, importlib.metadata as m, sys; sys.exit(m.version('onnxruntime-ep-webgpu') != '$WEBGPU_EP_VERSION')" 2>/dev/null; then
    log "webgpu: pip install onnxruntime-ep-webgpu==$WEBGPU_EP_VERSION"
    if ! "$PY" -m pip install -q --disable-pip-version-check "onnxruntime-ep-webgpu==$WEBGPU_EP_VERSION" > "$RT/webgpu-pip.log" 2>&1; then
      mark webgpu unavailable "pip install onnxruntime-ep-webgpu==$WEBGPU_EP_VERSION failed: $(grep -m1 -E 'ERROR' "$RT/webgpu-pip.log" || tail -n1 "$RT/webgpu-pip.log")"
      return
    fi
  fi
  # The plugin refuses onnxruntime releases older than it was built for.
  local reg
  if ! reg=$("$PY" -c "import onnxruntime as o, onnxruntime_ep_webgpu as w; o.register_execution_provider_library('webgpu', w.get_library_path())" 2>&1); then
    mark webgpu unavailable "onnxruntime-ep-webgpu $WEBGPU_EP_VERSION does not register: $(echo "$reg" | tail -n1)"
    return
  fi
  for tool in apt-get apt-cache dpkg dpkg-query ldd; do
    command -v $tool >/dev/null 2>&1 || { mark webgpu unavailable "$tool not found (needed to unpack Mesa's lavapipe)"; return; }
  done
  rm -rf "$MESA/root" "$MESA/deb" "$MESA/fetched.txt" "$MESA/fetch.log"
  mkdir -p "$MESA/root" "$MESA/deb"
  if ! apt_setup; then
    mark webgpu unavailable "apt-get update of $MESA_DEB_SUITE failed: $(tail -n1 "$MESA/apt-update.log")"
    return
  fi
  local deps
  deps=$(needed_direct_deps)
  log "webgpu: fetching mesa-vulkan-drivers=$MESA_DEB_VERSION libvulkan1 $(echo $deps)"
  # shellcheck disable=SC2086
  if ! fetch "mesa-vulkan-drivers=$MESA_DEB_VERSION" libvulkan1 $deps; then
    mark webgpu unavailable "apt-get download failed: $(tail -n1 "$MESA/fetch.log")"
    return
  fi
  # Whatever ldd still cannot find (dependencies of the fetched libraries), a few rounds.
  local round so pkg missing
  for round in 1 2 3 4 5; do
    missing=$(missing_sonames)
    [[ -z $missing ]] && break
    for so in $missing; do
      pkg=$(soname_package "$so")
      log "webgpu: ldd: $so not found: fetching $pkg"
      fetch "$pkg" || { mark webgpu unavailable "ldd: $so not found and apt-get download $pkg failed"; return; }
    done
  done
  missing=$(missing_sonames)
  if [[ -n $missing ]]; then
    mark webgpu unavailable "lavapipe still misses $(echo $missing) (ldd)"
    return
  fi
  # The ICD manifest names the driver by a bare file name: point it at the unpacked one.
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$MESA/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so\"#" \
    "$MESA/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$MESA/lvp_icd.x86_64.json"
  rm -rf "$MESA/apt/lists" "$MESA/apt/cache" "$MESA"/apt/*.bin
  webgpu_env > "$RT/webgpu.env"
  local smoke
  smoke=$(webgpu_smoke)
  if ! grep -q SMOKE-OK <<<"$smoke"; then
    mark webgpu unavailable "WebGPU smoke test failed: $(grep -v -iE 'warning|\[W:' <<<"$smoke" | tail -n2 | tr '\n' ' ')"
    return
  fi
  mark webgpu ok "$stamp
onnxruntime $(grep SMOKE-OK <<<"$smoke" | awk '{print $2}'); fetched: $(tr '\n' ' ' < "$MESA/fetched.txt")"
  log "webgpu: set up in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s"
}

# ------------------------------------------------------------------------------- OpenVINO EP
openvino_smoke() {
  timeout 180 "$OVENV/bin/python" - <<'EOF' 2>&1
import numpy as np, onnxruntime as ort
from onnx import helper as h, TensorProto as T
g = h.make_graph([h.make_node("Sub", ["x", "x"], ["z"])], "g", [h.make_tensor_value_info("x", T.FLOAT, [3])],
                 [h.make_tensor_value_info("z", T.FLOAT, [3])])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
s = ort.InferenceSession(m.SerializeToString(), providers=[("OpenVINOExecutionProvider", {"device_type": "CPU"})])
assert s.get_providers()[0] == "OpenVINOExecutionProvider", s.get_providers()
s.run(None, {"x": np.ones(3, np.float32)})
print("SMOKE-OK", ort.__version__)
EOF
}

setup_openvino() {
  local t0 stamp onnx_version
  t0=$(now)
  onnx_version=$("$PY" -c "import onnx; print(onnx.__version__)" 2>/dev/null || echo "")
  stamp="onnxruntime-openvino $ORT_OPENVINO_VERSION; onnx ${onnx_version:-any}"
  if [[ $FORCE != 1 && -f $RT/openvino.ok && "$(head -n1 "$RT/openvino.ok")" == "$stamp" \
        && -x $OVENV/bin/python ]]; then
    log "openvino: already set up ($stamp)"
    return
  fi
  rm -f "$RT/openvino.ok"
  local base
  base=$("$PY" -c "import sys; print(getattr(sys, '_base_executable', sys.executable))" 2>/dev/null || command -v python3)
  if [[ ! -x $OVENV/bin/python ]]; then
    log "openvino: creating $OVENV ($base)"
    "$base" -m venv "$OVENV" > "$RT/openvino-pip.log" 2>&1 \
      || { mark openvino unavailable "python -m venv $OVENV failed: $(tail -n1 "$RT/openvino-pip.log")"; return; }
  fi
  log "openvino: pip install onnxruntime-openvino==$ORT_OPENVINO_VERSION numpy onnx${onnx_version:+==$onnx_version}"
  if ! "$OVENV/bin/python" -m pip install -q --disable-pip-version-check "onnxruntime-openvino==$ORT_OPENVINO_VERSION" \
        numpy "onnx${onnx_version:+==$onnx_version}" >> "$RT/openvino-pip.log" 2>&1; then
    mark openvino unavailable "pip install onnxruntime-openvino==$ORT_OPENVINO_VERSION failed: $(grep -m1 ERROR "$RT/openvino-pip.log" || tail -n1 "$RT/openvino-pip.log")"
    return
  fi
  local smoke
  smoke=$(openvino_smoke)
  if ! grep -q SMOKE-OK <<<"$smoke"; then
    mark openvino unavailable "OpenVINO EP smoke test failed: $(tail -n2 <<<"$smoke" | tr '\n' ' ')"
    return
  fi
  mark openvino ok "$stamp
python $OVENV/bin/python"
  log "openvino: set up in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s"
}

# ------------------------------------------------------------------------------- onnx2torch
# onnx2torch declares torchvision, which from PyPI does not import beside the CPU torch wheel
# (operator torchvision::nms does not exist); only its NMS/RoiAlign converters use it, so it
# is installed without dependencies (numpy, onnx, torch are the project's own) and the parity
# path imports it with a torchvision stand-in (onnx_smoothl1/parity/runtimes/onnx2torch.py).
ONNX2TORCH_VERSION=${ONNX2TORCH_VERSION:-1.5.15}
setup_onnx2torch() {
  if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('onnx2torch') != '$ONNX2TORCH_VERSION')" 2>/dev/null; then
    log "onnx2torch: already installed ($ONNX2TORCH_VERSION)"
  elif "$PY" -m pip install -q --disable-pip-version-check --no-deps "onnx2torch==$ONNX2TORCH_VERSION" > "$RT/onnx2torch-pip.log" 2>&1; then
    log "onnx2torch: installed $ONNX2TORCH_VERSION (--no-deps)"
  else
    log "onnx2torch: pip install onnx2torch==$ONNX2TORCH_VERSION failed: $(tail -n1 "$RT/onnx2torch-pip.log")"
  fi
}

[[ -z $ONLY || $ONLY == onnx2torch ]] && setup_onnx2torch
[[ -z $ONLY || $ONLY == webgpu ]] && setup_webgpu
[[ -z $ONLY || $ONLY == openvino ]] && setup_openvino
exit 0
