#!/usr/bin/env bash
# An aarch64 CPython 3.11 that runs on this x86-64 machine under qemu-user, with nothing
# installed system-wide:
#   - Debian bookworm arm64 packages (python3.11-minimal, libpython3.11-stdlib, libc6,
#     libstdc++6, ...) fetched with `apt-get download` into a private apt state and unpacked
#     with `dpkg -x` into DEST/sysroot (the technique of custom_op/fetch_ort_headers.sh);
#   - qemu-aarch64-static from scripts/aarch64/fetch_qemu.sh (DEST/../qemu);
#   - the package's dependencies as aarch64 manylinux wheels from PyPI (x86 pip with
#     --platform manylinux*_aarch64 --python-version 3.11 --only-binary=:all:) into
#     DEST/wheels, installed into DEST/site (pip install --target, same --platform flags);
#   - pip's own wheel (DEST/wheels/pip-*.whl), so that pip can run inside the emulated python;
#   - DEST/bin/python: a wrapper running DEST/sysroot/usr/bin/python3.11 under
#     qemu-aarch64-static -L DEST/sysroot, with -S (no site: the host's x86 dist-packages never
#     enter sys.path) and PYTHONPATH = $AARCH64_SITE (default DEST/site).
#
#   scripts/aarch64/python_env.sh [DEST]        default DEST: third_party/aarch64/py311
#   env: AARCH64_PIP (x86 python with pip, default .venv/bin/python, else python3)
#        AARCH64_ORT (onnxruntime version, default: constraints.txt's pin)
#
# Idempotent: a second call finds everything in place and fetches nothing (~1 s). Prints, on
# stdout, the path of DEST/bin/python; on stderr how to use it. One-line errors, non-zero exit.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/../../custom_op/private_apt.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$ROOT/third_party/aarch64/py311}
SUITE=bookworm
MIRROR=${AARCH64_DEB_MIRROR:-http://deb.debian.org/debian}
# What python3.11 and the wheels' extension modules need at run time (ldd of each .so in the
# installed site dir, checked by e2e.sh's import of each package). Not needed here and left
# out: readline, ncurses, dbm, nis (_crypt/_nis/_curses/_dbm are never imported).
DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libffi8 libssl3 libexpat1 libbz2-1.0 liblzma5
      libsqlite3-0 libuuid1 libcrypt1 media-types
      python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)

die() { echo "python_env: $1" >&2; exit "${2:-2}"; }

pin() {  # NAME -> version pinned in constraints.txt (empty when not pinned)
  sed -n "s/^$1==\([^ #]*\).*/\1/p" "$ROOT/constraints.txt" | head -n1
}
ORT_VERSION=${AARCH64_ORT:-$(pin onnxruntime)}
[[ -n "$ORT_VERSION" ]] || die "no onnxruntime pin in constraints.txt and AARCH64_ORT unset"
# The wheels: the package's own dependencies (pyproject.toml) and its [cpu] extra's runtime,
# pinned as the x86 test venv pins them (constraints.txt) where it does.
REQS=("onnxruntime==$ORT_VERSION" "onnx==$(pin onnx)" "onnxscript==$(pin onnxscript)"
      "tqdm==$(pin tqdm)" "numpy>=1.24" "ml_dtypes>=0.4")
# pip's --platform takes manylinux_X_Y literally (only the legacy manylinux2014/2010 aliases
# are expanded): every tag glibc 2.36 (bookworm) accepts is listed.
PLATFORMS=(--platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311
           --only-binary=:all:)
for g in $(seq 17 36); do PLATFORMS+=(--platform "manylinux_2_${g}_aarch64"); done

if [[ -n "${AARCH64_PIP:-}" ]]; then PIP_PY=$AARCH64_PIP
elif [[ -x "$ROOT/.venv/bin/python" ]]; then PIP_PY=$ROOT/.venv/bin/python
else PIP_PY=$(command -v python3 || true); fi
[[ -n "$PIP_PY" ]] && "$PIP_PY" -m pip --version >/dev/null 2>&1 \
  || die "no x86 python with pip (set AARCH64_PIP or run make install)"

mkdir -p "$DEST" 2>/dev/null || die "cannot create $DEST"
DEST=$(cd "$DEST" && pwd)
SYSROOT=$DEST/sysroot
exec 9>"$DEST/.lock"
command -v flock >/dev/null 2>&1 && flock 9

QEMU=$("$ROOT/scripts/aarch64/fetch_qemu.sh" "$DEST/../qemu") || die "qemu-aarch64-static not available (scripts/aarch64/fetch_qemu.sh failed)" 3

# --- 1. the sysroot: Debian arm64 packages, unpacked --------------------------------------------
STAMP_SYS=$SYSROOT/.debs
if [[ ! -f $STAMP_SYS || "$(cat "$STAMP_SYS")" != "${DEBS[*]}" ]]; then
  for tool in apt-get dpkg; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (needed to fetch the arm64 packages)"
  done
  APT=$DEST/apt
  rm -rf "$APT" "$SYSROOT"
  mkdir -p "$SYSROOT"
  private_apt "$APT" "$MIRROR" "$SUITE" arm64
  opts=("${APT_OPTS[@]}")
  echo "python_env: apt-get update ($SUITE/arm64) into $APT" >&2
  apt-get "${opts[@]}" update >"$APT/update.log" 2>&1 \
    || die "apt-get update of $MIRROR $SUITE (arm64) failed (network? see $APT/update.log)" 3
  (cd "$APT/deb" && apt-get "${opts[@]}" download "${DEBS[@]/%/:arm64}" >"$APT/download.log" 2>&1) \
    || die "apt-get download of the arm64 packages failed: $(grep -m1 '^E:' "$APT/download.log" || echo "see $APT/download.log")" 3
  for pkg in "${DEBS[@]}"; do
    deb=$(ls "$APT/deb/${pkg}"_*_arm64.deb "$APT/deb/${pkg}"_*_all.deb 2>/dev/null | head -n1 || true)
    [[ -n $deb ]] || die "arm64 package $pkg was not downloaded" 3
    dpkg -x "$deb" "$SYSROOT" || die "dpkg -x $deb failed" 4
  done
  mkdir -p "$DEST/debs" && mv "$APT"/deb/*.deb "$DEST/debs/"
  rm -rf "$APT"
  printf '%s' "${DEBS[*]}" >"$STAMP_SYS"
fi
[[ -x $SYSROOT/usr/bin/python3.11 ]] || die "$SYSROOT/usr/bin/python3.11 missing after unpacking" 4

# --- 2. /proc/cpuinfo and the wrapper -------------------------------------------------------------
# qemu-user 7.2 passes the host's x86-64 /proc/cpuinfo through to an aarch64 guest (it fakes
# it only for a few other targets), and onnxruntime's cpuinfo library crashes (SIGSEGV while
# importing onnxruntime, measured with 1.30.0) parsing it. With -L, a guest open() of a path
# that exists under the sysroot gets the sysroot's file, so an aarch64 cpuinfo is put there,
# describing the CPU model qemu is told to emulate (QEMU_CPU=neoverse-n1, Arm Neoverse N1,
# part 0xd0c: AWS Graviton2's core; AArch64 NEON, no SVE) with the host's number of cores.
CPU_MODEL=${AARCH64_QEMU_CPU:-neoverse-n1}
mkdir -p "$DEST/bin" "$DEST/site" "$SYSROOT/proc"
{
  for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\n' "$i"
    printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n'
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n'
  done
} >"$SYSROOT/proc/cpuinfo"
cat >"$DEST/bin/python" <<WRAP
#!/usr/bin/env bash
# aarch64 CPython 3.11 (Debian bookworm) under qemu-user; written by scripts/aarch64/python_env.sh.
# -S: no site module, so the host's x86-64 dist-packages never enter sys.path; the packages come
# from PYTHONPATH = \$AARCH64_SITE (default $DEST/site).
set -euo pipefail
export PYTHONPATH=\${AARCH64_SITE:-$DEST/site}
export QEMU_LD_PREFIX=$SYSROOT
export QEMU_CPU=\${QEMU_CPU:-$CPU_MODEL}
exec "$QEMU" -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11" -S "\$@"
WRAP
chmod +x "$DEST/bin/python"
got=$("$DEST/bin/python" -c 'import platform, sys, ssl, zlib, ctypes, sqlite3, lzma, bz2; print(platform.machine(), sys.version.split()[0])' 2>&1) \
  || die "the emulated python does not start: $(echo "$got" | tail -n1)" 5
[[ $got == "aarch64 3.11."* ]] || die "the emulated python reports '$got', not aarch64 3.11" 5

# --- 3. the wheels --------------------------------------------------------------------------------
STAMP_SITE=$DEST/site/.reqs
want="${REQS[*]}"
if [[ ! -f $STAMP_SITE || "$(cat "$STAMP_SITE")" != "$want" ]]; then
  echo "python_env: pip download (aarch64 cp311 wheels) into $DEST/wheels" >&2
  "$PIP_PY" -m pip download -q --disable-pip-version-check --dest "$DEST/wheels" "${PLATFORMS[@]}" \
      "${REQS[@]}" "pip" >"$DEST/pip-download.log" 2>&1 \
    || die "pip download of aarch64 wheels failed: $(grep -m1 -iE 'error|no matching' "$DEST/pip-download.log" || tail -n1 "$DEST/pip-download.log")" 3
  rm -rf "$DEST/site" && mkdir -p "$DEST/site"
  "$PIP_PY" -m pip install -q --disable-pip-version-check --no-compile --no-index --find-links "$DEST/wheels" \
      --target "$DEST/site" "${PLATFORMS[@]}" "${REQS[@]}" >"$DEST/pip-install.log" 2>&1 \
    || die "pip install --target $DEST/site failed: $(grep -m1 -i error "$DEST/pip-install.log" || tail -n1 "$DEST/pip-install.log")" 4
  # Imported once under emulation (~30 s; also leaves the .pyc files for later runs); the
  # stamp is written only when every package imports.
  "$DEST/bin/python" -c 'import numpy, onnx, onnxruntime, onnxscript, ml_dtypes, tqdm' >/dev/null 2>"$DEST/import.log" \
    || die "the aarch64 site does not import: $(tail -n1 "$DEST/import.log")" 5
  printf '%s' "$want" >"$STAMP_SITE"
fi

echo "python_env: aarch64 python ready; run it as $DEST/bin/python (site: \$AARCH64_SITE, default $DEST/site; pip: $DEST/bin/python $(ls "$DEST"/wheels/pip-*.whl | head -n1)/pip ...)" >&2
echo "$DEST/bin/python"
