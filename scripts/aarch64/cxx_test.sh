#!/usr/bin/env bash
# The C++ kernel test (custom_op/tests/smooth_l1_cpu_test.cc) cross-built for aarch64 and run
# under qemu-aarch64-static (`make test-aarch64`; docs/kernels.md, "aarch64").
#
#   scripts/aarch64/cxx_test.sh
#
# Fetches (cached) the cross toolchain (scripts/aarch64/fetch_toolchain.sh) and qemu
# (scripts/aarch64/fetch_qemu.sh), configures build/aarch64 with custom_op/aarch64/toolchain.cmake
# (Release, the library's flags), builds the library and the test, and runs the test under
# qemu with the toolchain's arm64 glibc/libstdc++ as its root (-L). Fails when the test fails
# (any kernel result off: element values against a long-double reference, bitwise determinism
# across schedules and threads, HuberLoss bitwise torch's float formula), or when it did not
# compare the NEON loops with the portable ones (every "ISA variant(s) compared" line must say
# 2: level 0 = portable scalar, level 1 = NEON). Ends with the test's "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
TC=$(bash scripts/aarch64/fetch_toolchain.sh third_party/aarch64/toolchain)
if [[ ! -f scripts/aarch64/fetch_qemu.sh ]]; then
  echo "aarch64/cxx_test.sh: scripts/aarch64/fetch_qemu.sh not found (needed to fetch qemu-aarch64-static)" >&2
  exit 2
fi
QEMU=$(bash scripts/aarch64/fetch_qemu.sh third_party/aarch64/qemu)
CMAKE=${CMAKE:-cmake}
command -v "$CMAKE" >/dev/null 2>&1 || { echo "aarch64/cxx_test.sh: cmake not found (set CMAKE=)" >&2; exit 2; }

B=build/aarch64
"$CMAKE" -S . -B "$B" -DCMAKE_TOOLCHAIN_FILE="$PWD/custom_op/aarch64/toolchain.cmake" \
  -DAARCH64_TOOLCHAIN_ROOT="$TC" -DAARCH64_QEMU="$QEMU" -DCMAKE_BUILD_TYPE=Release \
  -DONNX_SMOOTHL1_BUILD_TESTS=ON -DONNX_SMOOTHL1_REQUIRE_OPS=ON -DONNX_SMOOTHL1_CUDA=OFF \
  -DONNX_SMOOTHL1_COPY_TO_SOURCE=OFF > "$B.configure.log" 2>&1 \
  || { tail -n 20 "$B.configure.log" >&2; echo "aarch64/cxx_test.sh: cmake configure failed (log: $B.configure.log)" >&2; exit 1; }
"$CMAKE" --build "$B" -j2 > "$B.build.log" 2>&1 \
  || { tail -n 30 "$B.build.log" >&2; echo "aarch64/cxx_test.sh: build failed (log: $B.build.log)" >&2; exit 1; }
EXE="$B/custom_op/smooth_l1_cpu_test"
"$TC/usr/bin/aarch64-linux-gnu-readelf" -h "$EXE" | grep -q 'Machine:.*AArch64' \
  || { echo "aarch64/cxx_test.sh: $EXE is not an AArch64 executable" >&2; exit 1; }

LOG="$B/cxx-test.log"
start=$SECONDS
rc=0
"$QEMU" -L "$TC/usr/aarch64-linux-gnu" "$EXE" > "$LOG" 2>&1 || rc=$?
secs=$((SECONDS - start))
if (( rc != 0 )); then
  grep -E '^FAIL' "$LOG" | head -n 40 >&2 || true
  tail -n 3 "$LOG" >&2
  echo "aarch64/cxx_test.sh: smooth_l1_cpu_test failed under qemu (exit $rc, log: $LOG)" >&2
  exit 1
fi
two=$(grep -c ': 2 ISA variant(s) compared' "$LOG" || true)
other=$(grep 'ISA variant(s) compared' "$LOG" | grep -vc ': 2 ISA variant(s) compared' || true)
if (( two == 0 || other != 0 )); then
  echo "aarch64/cxx_test.sh: the test did not compare NEON with the portable loops ($two comparisons of 2 variants, $other of another count)" >&2
  exit 1
fi
echo "aarch64/cxx_test.sh: smooth_l1_cpu_test under $(basename "$QEMU") in ${secs}s; NEON vs portable compared bitwise in $two cases"
tail -n 1 "$LOG"
