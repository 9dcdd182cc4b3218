"""Load: shared sessions under threads, many runs without leaking, and one very large input.

Runs the fused CPU kernel (when the library is built; skipped with the reason otherwise) and
the function path. Figures (RSS before/after, peak RSS, timings) are printed; see them with
``pytest -s tests/test_load.py`` or ``-rA``.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import onnx_smoothl1 as sl1
from onnx_smoothl1 import runtime

REPO = Path(__file__).resolve().parents[1]


def _kernel_missing() -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if runtime.has_custom_op():
            return None
    return "fused kernel library not built: " + "; ".join(str(w.message) for w in caught)


KERNEL_MISSING = _kernel_missing()
PATHS = [
    pytest.param(True, id="kernel", marks=pytest.mark.skipif(bool(KERNEL_MISSING), reason=str(KERNEL_MISSING))),
    pytest.param(False, id="function"),
]


def rss_mib() -> float:
    """Current resident set size of this process (VmRSS), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def mem_available_mib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- 8 threads x 1,000 runs on one session --------------------------------------------------


@pytest.mark.parametrize("custom_op", PATHS)
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_threads_share_one_session_bitwise(custom_op, reduction, dtype):
    """One session, 8 threads x 1,000 runs each (inputs differ per thread): every result is
    bitwise identical to that input's single-threaded result, and no run raises."""
    threads, runs = 8, 1000
    npdt = np.float32 if dtype == "float32" else ml_dtypes.bfloat16
    session = sl1.inference_session(sl1.make_model(reduction=reduction, dtype=dtype), custom_op=custom_op)
    assert session.smoothl1_path == ("kernel" if custom_op else "function")
    rng = np.random.default_rng(7)
    inputs = [
        ((rng.standard_normal(4099) * 3).astype(npdt), rng.standard_normal(4099).astype(npdt))
        for _ in range(threads)
    ]
    expected = [runtime.run(session, {"input": x, "target": y})[0] for x, y in inputs]

    def worker(i: int) -> int:
        x, y = inputs[i]
        mismatches = 0
        for _ in range(runs):
            out = runtime.run(session, {"input": x, "target": y})[0]
            mismatches += not (out.dtype == expected[i].dtype and out.tobytes() == expected[i].tobytes())
        return mismatches

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        mismatches = list(pool.map(worker, range(threads)))  # re-raises any worker error
    elapsed = time.perf_counter() - start
    print(f"[load] {session.smoothl1_path} {dtype} {reduction}: {threads}x{runs} runs in {elapsed:.2f}s")
    assert mismatches == [0] * threads


# --- 100,000 runs: RSS stays flat -------------------------------------------------------------

RSS_GROWTH_LIMIT_MIB = 20.0


def _rss_after_runs(fn, runs: int, warmup: int = 2000) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    gc.collect()
    start = rss_mib()
    for _ in range(runs):
        fn()
    gc.collect()
    return start, rss_mib()


@pytest.mark.slow
@pytest.mark.parametrize("custom_op", PATHS)
def test_100k_runs_keep_rss_flat(custom_op):
    runs = 100_000
    session = sl1.inference_session(sl1.make_model(reduction="mean"), custom_op=custom_op)
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    feeds = {"input": x, "target": y}
    t = time.perf_counter()
    start, end = _rss_after_runs(lambda: session.run(None, feeds), runs)
    print(f"[load] {session.smoothl1_path}: {runs} runs in {time.perf_counter() - t:.1f}s, "
          f"RSS start {start:.1f} MiB, end {end:.1f} MiB, growth {end - start:+.1f} MiB")
    assert end - start < RSS_GROWTH_LIMIT_MIB


@pytest.mark.slow
@pytest.mark.parametrize("custom_op", PATHS)
def test_20k_wrapper_runs_bfloat16_keep_rss_flat(custom_op):
    """runtime.run's own conversions (OrtValue in, bfloat16 copy out) leak nothing either."""
    runs = 20_000
    session = sl1.inference_session(sl1.make_model(reduction="none", dtype="bfloat16"), custom_op=custom_op)
    x = np.linspace(-3, 3, 64).astype(ml_dtypes.bfloat16)
    y = np.zeros(64, ml_dtypes.bfloat16)
    feeds = {"input": x, "target": y}
    t = time.perf_counter()
    start, end = _rss_after_runs(lambda: runtime.run(session, feeds), runs, warmup=1000)
    print(f"[load] {session.smoothl1_path} runtime.run bf16: {runs} runs in {time.perf_counter() - t:.1f}s, "
          f"RSS start {start:.1f} MiB, end {end:.1f} MiB, growth {end - start:+.1f} MiB")
    assert end - start < RSS_GROWTH_LIMIT_MIB


# --- 2^27 elements: completes, accurate, memory bounded ---------------------------------------

_BIG_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle

custom_op, log2n = sys.argv[1] == "kernel", int(sys.argv[2])
n = 1 << log2n
rng = np.random.default_rng(0)
x = (rng.standard_normal(n, dtype=np.float32) * 2).astype(np.float32)
y = rng.standard_normal(n, dtype=np.float32)
session = sl1.inference_session(sl1.make_model(reduction="mean"), custom_op=custom_op)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
out = session.run(None, {"input": x, "target": y})[0]
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
# float64 reference in chunks (torch, via the oracle): sum of chunk sums / n
chunk = 1 << 22
total = sum(float(oracle.reference(x[i:i + chunk], y[i:i + chunk], reduction="sum"))
            for i in range(0, n, chunk))
ref = np.float64(total / n)
verdict = oracle.compare(out, ref, dtype="float32", reduction="mean")
print(json.dumps({"out": float(out), "ref": float(ref), "ok": verdict.ok, "detail": verdict.detail,
                  "max_rel": verdict.max_rel, "seconds": elapsed, "inputs_mib": 2 * x.nbytes / 2**20,
                  "peak_before_mib": before, "peak_after_mib": peak}))
"""


def _run_big(path: str, log2n: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _BIG_SCRIPT, path, str(log2n)], capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, f"rc={proc.returncode}: {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[load] {path} 2^{log2n} f32 mean: {result['seconds']:.2f}s, inputs {result['inputs_mib']:.0f} MiB, "
          f"peak RSS {result['peak_before_mib']:.0f} -> {result['peak_after_mib']:.0f} MiB, "
          f"rel err {result['max_rel']:.2e}")
    return result


@pytest.mark.slow
@pytest.mark.skipif(bool(KERNEL_MISSING), reason=str(KERNEL_MISSING))
def test_2pow27_kernel_bounded_memory():
    """Fused kernel: no intermediates, so the run adds (almost) nothing to the inputs' memory."""
    result = _run_big("kernel", 27)
    assert result["ok"], result
    assert result["peak_after_mib"] - result["peak_before_mib"] < 64, result


# The function path computes in float32 (no float64 temporaries since the portable body):
# measured at 2^27 float32 elements, peak RSS ~2.9 GiB over the 1 GiB of inputs with
# onnxruntime's default CPU arena (2.6x without it; torch.onnx's own export of the loss needs
# the same), ~3.5 s on the 2-core dev machine. Bounded here at 3.5 GiB above the inputs, and
# skipped where the machine has less than 6 GiB available.
FUNCTION_2POW27_LIMIT_MIB = 3.5 * 1024


@pytest.mark.slow
def test_2pow27_function_bounded_memory():
    available = mem_available_mib()
    if available < 6 * 1024:
        pytest.skip(f"needs ~4 GiB peak; only {available:.0f} MiB available")
    result = _run_big("function", 27)
    assert result["ok"], result
    assert result["peak_after_mib"] - result["peak_before_mib"] < FUNCTION_2POW27_LIMIT_MIB, result
