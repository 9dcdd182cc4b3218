"""Shared helpers for the test suite: the parity grid and the two CPU runtimes.

Every parity test compares a path's output with ``onnx_smoothl1.oracle`` (PyTorch in float64,
SPEC tolerances); nothing here computes expected values itself.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

BETAS = [0.0, 1e-3, 0.5, 1.0, 7.5]
SHAPES = {
    "rank0": ((), ()),
    "one": ((1,), (1,)),
    "empty": ((0,), (0,)),
    "five": ((5,), (5,)),
    "3x4x5": ((3, 4, 5), (3, 4, 5)),
    "broadcast": ((4, 1, 3), (5, 3)),
}


def hidden_env(*modules: str) -> dict[str, str]:
    """os.environ for a subprocess in which ``modules`` (top-level names) cannot be imported,
    as where they are not installed (tests/_hide/sitecustomize.py)."""
    hide = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_hide")
    return {**os.environ, "ONNX_SMOOTHL1_TEST_HIDE": ",".join(modules),
            "PYTHONPATH": os.pathsep.join(filter(None, [hide, os.environ.get("PYTHONPATH")]))}


def stable_seed(*parts: object) -> int:
    """A seed from test parameters that is the same in every run (``hash`` of a str is not:
    Python randomises it per process, so the data would change from run to run)."""
    import zlib

    return zlib.crc32(repr(parts).encode()) % 10_000


def make_inputs(shape_x, shape_y, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Values straddling every beta in BETAS (|x-y| from ~1e-4 to ~20)."""
    rng = np.random.default_rng(seed)
    npdt = oracle.NUMPY_DTYPES[dtype]
    scale = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), size=shape_x))
    x = (rng.standard_normal(shape_x) * scale).astype(npdt)
    y = (rng.standard_normal(shape_y) * 2.0).astype(npdt)
    return x, y


@functools.cache
def cached_model(beta: float, reduction: str, dtype: str, opset: int = 18) -> bytes:
    return sl1.make_model(beta=beta, reduction=reduction, dtype=dtype, opset=opset).SerializeToString()


@functools.cache
def ort_function_session(model: bytes):
    return sl1.inference_session(model, custom_op=False)


def run_ort_function(model: bytes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return runtime.run(ort_function_session(model), {"input": x, "target": y})[0]


def run_reference(model: bytes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ReferenceEvaluator(onnx.load_from_string(model)).run(None, {"input": x, "target": y})[0]


@functools.cache
def ort_max_opset() -> int:
    """Newest default-domain opset the installed onnxruntime loads (probed, not assumed)."""
    import onnxruntime as ort

    for opset in range(sl1.spec.max_opset(), sl1.spec.MIN_OPSET - 1, -1):
        model = sl1.make_model(opset=opset)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return opset
        except Exception:
            continue
    raise RuntimeError("onnxruntime loads none of the supported opsets")


def assert_parity(out: np.ndarray, x: np.ndarray, y: np.ndarray, *, beta: float, reduction: str, dtype: str) -> None:
    ref = oracle.reference(x, y, beta=beta, reduction=reduction)
    own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"{dtype} beta={beta} {reduction}: {verdict.detail} (out={out!r}, ref={ref!r})"


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The console script as a user runs it (module form, so no PATH assumptions)."""
    return subprocess.run(
        [sys.executable, "-m", "onnx_smoothl1.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def tmp_npy(tmp_path):
    def save(name: str, array: np.ndarray) -> str:
        path = tmp_path / name
        np.save(path, array)
        return str(path)

    return save


# --- Hypothesis profiles (property, fuzz tests) ------------------------------------------
# "ci" (default): bounded so the property/fuzz/hardening set runs in a few minutes on 2
# cores, derandomized so CI is reproducible. "thorough": >= 10,000 examples per property
# test, e.g. `pytest tests/test_property.py --hypothesis-profile=thorough`.
# HYPOTHESIS_PROFILE=<name> in the environment selects one too.
from hypothesis import HealthCheck  # noqa: E402  (kept next to the profiles it configures)
from hypothesis import settings as _hyp_settings  # noqa: E402

_HYP_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
_hyp_settings.register_profile("ci", max_examples=200, derandomize=True, database=None, **_HYP_COMMON)
_hyp_settings.register_profile("thorough", max_examples=10_000, **_HYP_COMMON)
_hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
