"""``onnx-smoothl1 doctor`` / ``onnx_smoothl1.doctor()``: a healthy install, no onnxruntime, a
library that fails to load. (A CPU-only onnxruntime with the CUDA-capable library:
tests/test_cuda_build.py, which builds that library.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import hidden_env

import onnx_smoothl1 as sl1
from onnx_smoothl1 import runtime


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnx_smoothl1.cli", "doctor", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_healthy_install_runs_the_kernel():
    report = sl1.doctor()
    assert report.ok, report.problems
    assert report.library["loads"] and report.library["registers"] and report.library["cpu_kernel_ran"]
    assert report.library["op_types"] == ["HuberLoss", "SmoothL1Loss"]
    assert report.library["build"]["ort_api_version"] == 21
    assert report.library["build"]["version"] == sl1.__version__
    assert report.onnxruntime["distributions"] == {"onnxruntime": report.onnxruntime["version"]}
    assert "CPUExecutionProvider" in report.onnxruntime["providers"]
    assert report.optional["torch"] is not None


def test_cli_text_and_json():
    proc = _cli()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CPU kernel:    ran" in proc.stdout and proc.stdout.rstrip().endswith("runs in this onnxruntime")
    data = json.loads(_cli("--json").stdout)
    assert data["ok"] is True and data["library"]["cpu_kernel_ran"] is True


def test_no_onnxruntime_says_how_to_get_one():
    env = hidden_env("onnxruntime")
    proc = _cli(env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "onnxruntime is not installed" in proc.stdout
    assert "pip install 'onnx-smoothl1[cpu]'" in proc.stdout
    # The library still loads (ctypes), but nothing can run it.
    assert "loads:         yes" in proc.stdout and "NOT OK" in proc.stdout
    # Every other command that needs the runtime: one line, exit 2.
    run = subprocess.run([sys.executable, "-m", "onnx_smoothl1.cli", "demo"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and "onnx-smoothl1[cpu]" in run.stderr, run.stderr


def test_library_that_fails_to_load(tmp_path):
    bad = tmp_path / "libonnx_smoothl1_ops.so"
    bad.write_bytes(b"\x7fELF not really a library")
    proc = _cli(env={runtime.LIBRARY_ENV: str(bad)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot be loaded" in proc.stdout and str(bad) in proc.stdout, proc.stdout
    assert "fix: reinstall the wheel" in proc.stdout
