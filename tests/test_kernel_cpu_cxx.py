"""The C++ test of the plain CPU kernel functions (custom_op/tests/smooth_l1_cpu_test.cc).

It needs no onnxruntime: it is compiled here with the same flags as the library and run.
Skipped only when no C++ compiler is installed (under CI that fails instead).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "custom_op/tests/smooth_l1_cpu_test.cc", ROOT / "custom_op/cpu/smooth_l1_cpu.cc"]


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    if os.environ.get("CI"):
        pytest.fail("no C++ compiler found", pytrace=False)
    pytest.skip("no C++ compiler found")


@pytest.fixture(scope="module")
def test_binary(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("cxx") / "smooth_l1_cpu_test"
    flags = os.environ.get("ONNX_SMOOTHL1_CXX_TEST_FLAGS",
                           "-O3 -fno-math-errno -fno-trapping-math -ffp-contract=off -Wno-psabi").split()
    cmd = [_compiler(), "-std=c++17", *flags, "-Wall", "-Wextra", "-Werror",
           f"-I{ROOT / 'custom_op'}", *map(str, SOURCES), "-o", str(exe), "-pthread"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return exe


def test_cpu_kernel_functions(test_binary):
    done = subprocess.run([str(test_binary)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    passed, failed = (int(part.split()[0]) for part in last.split(","))
    assert failed == 0 and passed > 1000, last
