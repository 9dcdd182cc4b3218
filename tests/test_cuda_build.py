"""The CUDA-enabled custom-op library keeps compiling (and loading) on a machine with nvcc.

Skipped where nvcc or cmake is missing. No GPU needed: this builds the library with
``-DONNX_SMOOTHL1_CUDA=ON`` (the wheel's architecture list: machine code for every sm nvcc 13
builds from sm_75 up, compute_121 PTX, cudart static) into a
temporary directory, checks what it links and exports, runs the standalone launcher test's
host checks, and runs the library's CPU kernel in onnxruntime, proving that the CUDA build
still loads and works on a machine without a GPU. The GPU checks proper live in
tests/test_cuda.py and custom_op/gpu_check.sh.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _nvcc() -> str | None:
    found = os.environ.get("CUDACXX") or shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


pytestmark = [
    pytest.mark.skipif(_nvcc() is None, reason="nvcc not found (CUDA toolkit not installed)"),
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not found"),
]


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n"
                                  f"{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("cuda-build")
    cmd = [
        "cmake", "-S", str(ROOT), "-B", str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DONNX_SMOOTHL1_CUDA=ON",
        "-DONNX_SMOOTHL1_REQUIRE_OPS=ON",
        "-DONNX_SMOOTHL1_BUILD_TESTS=ON",
        f"-DCMAKE_CUDA_COMPILER={_nvcc()}",
    ]
    headers = ROOT / "third_party" / "ort" / "usr" / "include" / "onnxruntime"
    if (headers / "onnxruntime_lite_custom_op.h").is_file():
        cmd.append(f"-DORT_INCLUDE_DIR={headers}")
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    _run(cmd, timeout=300)
    _run(["cmake", "--build", str(build), "-j", str(max(2, os.cpu_count() or 2))], timeout=1200)
    return build


def _library(build: Path) -> Path:
    lib = build / "custom_op" / "libonnx_smoothl1_ops.so"
    assert lib.is_file(), f"no library in {build}"
    return lib


def test_library_links_cudart_statically(cuda_build):
    lib = _library(cuda_build)
    needed = _run(["readelf", "-d", str(lib)], timeout=60).stdout
    assert "libcudart" not in needed and "libcuda.so" not in needed, needed
    assert "libonnxruntime" not in needed, needed
    exported = _run(["nm", "-D", "--defined-only", str(lib)], timeout=60).stdout.split()
    assert "RegisterCustomOps" in exported
    assert not any(s.startswith("cuda") or s.startswith("smooth_l1_cuda") for s in exported), "CUDA symbols leak"


def _fatbin_entries(path: Path) -> set[tuple[str, int]]:
    """(kind, sm) of every entry in an ELF file's .nv_fatbin section: kind 'ptx' or 'elf'
    (machine code), sm like 90. Parsed directly, so no cuobjdump is needed."""
    data = path.read_bytes()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    strtab = header(shstrndx)[4]
    sections = {}
    for i in range(shnum):
        name, _, _, _, off, size, *_ = header(i)
        sections[data[strtab + name:data.index(b"\0", strtab + name)].decode()] = (off, size)
    assert ".nv_fatbin" in sections, f"{path.name} holds no CUDA fat binary"
    off, size = sections[".nv_fatbin"]
    pos, end, found = off, off + size, set()
    while pos < end:
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != 0xBA55ED50:
            pos += 8
            continue
        entry, entries_end = pos + header_size, pos + header_size + fat_size
        while entry < entries_end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            sm = struct.unpack_from("<I", data, entry + 28)[0]
            found.add(({1: "ptx", 2: "elf"}.get(kind, str(kind)), sm))
            entry += entry_header + payload
        pos = entries_end
    return found


#: The wheel's CUDA targets (custom_op/cuda/cuda.cmake, ONNX_SMOOTHL1_CUDA_ARCHS).
WHEEL_SMS = (75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121)


def test_library_holds_every_sm_from_75_and_ptx(cuda_build):
    entries = _fatbin_entries(_library(cuda_build))
    expected = {("elf", sm) for sm in WHEEL_SMS} | {("ptx", 121)}
    assert expected <= entries, sorted(expected - entries)


def test_build_info_and_cuda_status_without_a_driver(cuda_build):
    """OnnxSmoothL1BuildInfo says what the build holds; OnnxSmoothL1CudaStatus, on this
    machine (no NVIDIA driver), says the kernels cannot run and why, instead of crashing."""
    import ctypes
    import json

    lib = ctypes.CDLL(str(_library(cuda_build)))
    lib.OnnxSmoothL1BuildInfo.restype = ctypes.c_char_p
    info = json.loads(lib.OnnxSmoothL1BuildInfo())
    assert info["cuda"]["compiled"] is True and info["ort_api_version"] == 21
    assert info["eps"] == ["CPUExecutionProvider", "CUDAExecutionProvider"]
    assert info["ops"] == ["SmoothL1Loss", "HuberLoss"]
    assert info["cuda"]["archs"].split() == [f"{sm}-real" for sm in WHEEL_SMS] + ["121-virtual"]
    buf = ctypes.create_string_buffer(512)
    rc = lib.OnnxSmoothL1CudaStatus(buf, ctypes.c_size_t(len(buf)))
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA driver: the no-driver message is not reachable")
    message = buf.value.decode()
    assert rc == 1, message
    assert "driver" in message and "kernels built with CUDA 13" in message, message


def test_launcher_host_checks(cuda_build):
    """The standalone test binary: broadcast-plan and scratch checks run anywhere; the
    kernel checks report SKIP without a GPU (and run on the GPU machine)."""
    binary = cuda_build / "custom_op" / "smooth_l1_cuda_test"
    proc = subprocess.run([str(binary)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failed" in proc.stdout, proc.stdout


def test_kernels_emulated_on_cpu(cuda_build):
    """The kernel checks with every thread's code run on the CPU (block trees emulated):
    dtypes x reductions x betas, tails, broadcasting, unaligned and strided paths, NaN/inf,
    run-to-run bit equality, grids of 1 to 64 blocks. No GPU needed."""
    binary = cuda_build / "custom_op" / "smooth_l1_cuda_test"
    proc = subprocess.run([str(binary), "--emulate", "--quick"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr
    assert "emulated:" in proc.stdout and ", 0 failed" in proc.stdout, proc.stdout[-8000:]


def test_cuda_build_runs_cpu_kernel(cuda_build, monkeypatch):
    """The CUDA-enabled library loads into a CPU-only onnxruntime and its CPU kernel runs."""
    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import oracle, runtime

    monkeypatch.setenv(runtime.LIBRARY_ENV, str(_library(cuda_build)))
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    y = np.zeros(101, dtype=np.float32)
    for reduction in sl1.REDUCTIONS:
        model = sl1.make_model(beta=0.5, reduction=reduction, dtype="float32")
        outputs, ops = sl1.profile_node_ops(model, {"input": x, "target": y}, custom_op=True)
        assert runtime.ran_fused_kernel(ops), ops
        ref = oracle.reference(x, y, beta=0.5, reduction=reduction)
        verdict = oracle.compare(outputs[0], ref, dtype="float32", reduction=reduction)
        assert verdict.ok, verdict.detail


def test_doctor_with_cuda_library_on_cpu_only_runtime(cuda_build, monkeypatch):
    """`onnx-smoothl1 doctor` with the CUDA-capable library and this CPU-only onnxruntime: the
    CPU kernel runs (exit 0), the CUDA kernels are reported compiled in but not usable, and why."""
    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import runtime

    monkeypatch.setenv(runtime.LIBRARY_ENV, str(_library(cuda_build)))
    report = sl1.doctor()
    assert report.ok and report.library["cpu_kernel_ran"], report.problems
    assert report.cuda["compiled"] is True and report.cuda["usable"] is False
    assert report.cuda["archs"].startswith("75-real") and report.cuda["archs"].endswith("121-virtual")
    assert "CUDAExecutionProvider" in report.cuda["why_not"], report.cuda


def test_cuda_library_needs_no_glibc_newer_than_2_17(cuda_build):
    """cudart_static's pthread/dl/rt calls are bound to their pre-2.34 versions through the
    link-time stubs of custom_op/cuda/glibc_compat.cmake (else glibc >= 2.34 hosts would build
    a manylinux_2_34 library), and the stubs stay out of the result: the library needs the
    system's real libpthread.so.0/libdl.so.2/librt.so.1 and has no RPATH into the build tree."""
    import re

    lib = _library(cuda_build)
    versions = _run(["readelf", "-V", "-W", str(lib)], timeout=60).stdout
    needs = versions[versions.index(".gnu.version_r"):] if ".gnu.version_r" in versions else ""
    required: dict[str, set[str]] = {}
    for line in needs.splitlines():
        if m := re.search(r"File: (\S+)", line):
            current = required.setdefault(m.group(1), set())
        elif m := re.search(r"Name: (GLIBC_[0-9.]+)", line):
            current.add(m.group(1))
    glibc = {v for vs in required.values() for v in vs}
    assert glibc, versions
    newest = max(glibc, key=lambda v: tuple(int(p) for p in v[len("GLIBC_"):].split(".")))
    assert tuple(int(p) for p in newest[len("GLIBC_"):].split(".")) <= (2, 17), (newest, required)

    dynamic = _run(["readelf", "-d", "-W", str(lib)], timeout=60).stdout
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    system = {"libc.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libm.so.6",
              "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    assert needed <= system, needed - system
    resolved = _run(["ldd", str(lib)], timeout=60).stdout
    assert "glibc_stubs" not in resolved and "not found" not in resolved, resolved
