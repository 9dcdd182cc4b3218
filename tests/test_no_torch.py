"""Without torch (an optional extra): the oracle falls back to numpy float64, and ``demo``,
``run`` and ``parity`` still work (torch hidden from a subprocess by tests/_hide)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import hidden_env

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, parity


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.atleast_1d(np.asarray(a)).ravel()
    return a.view(f"u{a.dtype.itemsize}")


@pytest.mark.parametrize("dtype", list(sl1.spec.DTYPES))
def test_numpy_oracle_matches_torch_on_the_grid(dtype):
    """numpy float64 reference vs torch float64: bitwise for 'none', within 1e-15 relative for
    'mean'/'sum' (the two sum in different orders); numpy's same-dtype 'none' is torch's own
    result bitwise."""
    import torch  # noqa: F401  (the comparison needs it)

    for case in parity.grid([dtype]):
        x, y = parity.make_inputs(case)
        kw = case.oracle_args  # both losses: SmoothL1Loss and HuberLoss cases
        want = oracle.reference(x, y, **kw)
        got = oracle.numpy_reference(x, y, **kw)
        assert got.shape == want.shape and np.array_equal(np.isnan(got), np.isnan(want)), case
        if case.reduction == "none":
            assert np.array_equal(_bits(got)[~np.isnan(got.ravel())], _bits(want)[~np.isnan(want.ravel())]), case
            own = oracle._numpy_same_dtype(x, y, **kw)
            if dtype in ("float32", "float64"):
                torch_own = oracle.torch_same_dtype(x, y, **kw)
                fin = ~np.isnan(np.asarray(torch_own, dtype=np.float64).ravel())
                assert np.array_equal(_bits(own)[fin], _bits(torch_own)[fin]), case
            else:
                assert own is None
        else:
            fin = np.isfinite(want)
            np.testing.assert_allclose(got[fin], want[fin], rtol=1e-15, atol=0)
            assert np.array_equal(got[~fin], want[~fin], equal_nan=True), case


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnx_smoothl1.cli", *args], capture_output=True,
                          text=True, timeout=600, env=hidden_env("torch"))


def test_torch_is_really_hidden():
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True,
                          env=hidden_env("torch"))
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_demo_without_torch():
    proc = _cli("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "torch is not installed" in proc.stdout and "FAIL" not in proc.stdout


def test_parity_without_torch():
    # torch named in --paths but not installed: an error, naming it, unless --allow-missing
    proc = _cli("parity", "--quick", "--paths", "torch", "ort-function")
    assert proc.returncode == 2 and "--paths: torch is not available here" in proc.stderr, proc.stderr[-2000:]
    proc = _cli("parity", "--quick", "--allow-missing", "--paths", "torch", "ort-function", "ort-kernel",
                "onnx-reference")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    torch_row = next(line for line in proc.stdout.splitlines() if line.startswith("torch "))
    assert "unsupported: torch is not installed" in torch_row
    assert "FAIL" not in proc.stdout


def test_run_without_torch(tmp_path):
    model = tmp_path / "m.onnx"
    import onnx

    onnx.save(sl1.make_model(reduction="sum"), str(model))
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.ones((3, 4), np.float32))
    np.save(y, np.zeros((3, 4), np.float32))
    proc = _cli("run", str(model), "--input", str(x), "--target", str(y))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "6" in proc.stdout  # 12 elements of 0.5
