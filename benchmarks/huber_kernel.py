"""Fused HuberLoss kernel vs fused SmoothL1Loss kernel in onnxruntime CPU (issue 12).

HuberLoss runs SmoothL1Loss's kernel code with another formula (a template parameter), so
its speed should equal SmoothL1Loss's within noise. This measures that: float32, N = 2^16,
2^20, 2^24 (by default), 'mean' and 'none', ``intra_op_num_threads`` = 2, the custom-op
library registered. Per (N, reduction) three sessions are timed in interleaved rounds (one
call of each per round, in an order that alternates from round to round, so a background
load hits them alike):

- ``smoothl1``: one SmoothL1Loss node (beta 1);
- ``huber``: one HuberLoss node (delta 1) on the same arrays;
- ``smoothl1'``: a second, separate SmoothL1Loss session: the A/A control. Its ratio to
  ``smoothl1`` shows how far two identical kernels differ here (the noise).

Printed per row: the median time per call of each, and the medians (with the 25-75%
spread) of the per-round ratios huber/smoothl1 and smoothl1'/smoothl1. Takes well under a
minute with the defaults.

    python benchmarks/huber_kernel.py [--sizes 16,20,24] [--threads 2] [--budget 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REDUCTIONS = ("mean", "none")
PATHS = ("smoothl1", "huber", "smoothl1'")


def _model(op_type: str, reduction: str) -> bytes:
    """A one-node float32 model of ``op_type`` (attribute 1.0: beta or delta)."""
    import onnx
    from onnx import helper

    from onnx_smoothl1 import spec

    attrs: dict[str, Any] = {"delta" if op_type == "HuberLoss" else "beta": 1.0,
                             "reduction": reduction}
    node = helper.make_node(op_type, ["input", "target"], ["loss"], domain=spec.DOMAIN, **attrs)
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [node], op_type, [helper.make_tensor_value_info(n, f, None) for n in ("input", "target")],
        [helper.make_tensor_value_info("loss", f, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(spec.DOMAIN, 1)])
    model.ir_version = 9
    return model.SerializeToString()


def _sessions(reduction: str, threads: int) -> dict[str, Any]:
    import onnxruntime as ort

    import onnx_smoothl1 as sl1

    def make(op_type: str) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = sl1.inference_session(_model(op_type, reduction), custom_op=True,
                                        options=options)
        if session.smoothl1_path != "kernel":
            raise SystemExit("the custom-op library is not available (make build)")
        return session

    return {"smoothl1": make("SmoothL1Loss"), "huber": make("HuberLoss"),
            "smoothl1'": make("SmoothL1Loss")}


def _interleaved(calls: dict[str, Callable[[], object]], *, budget: float, min_rounds: int,
                 max_rounds: int) -> dict[str, list[float]]:
    """Per-call times of every entry, one call each per round; the order within a round is
    rotated every round so no path always runs first (cache, turbo, neighbours)."""
    names = list(calls)
    for name in names:  # warm-up: first-call allocations, page faults of the output
        calls[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - start < budget):
        order = names[rounds % len(names):] + names[:rounds % len(names)]
        for name in order:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return times


def _ratio_stats(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median and 25% / 75% quantiles of the per-round ratios num/den."""
    ratios = sorted(a / b for a, b in zip(num, den))
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return statistics.median(ratios), q[0], q[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,20,24", help="log2 of N, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="intra_op_num_threads")
    parser.add_argument("--budget", type=float, default=4.0,
                        help="seconds of timing per (N, reduction)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or any(not 0 <= s <= 28 for s in sizes):
        parser.error(f"--sizes must be log2 values in [0, 28], got {args.sizes!r}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not args.budget > 0:
        parser.error(f"--budget must be > 0, got {args.budget}")

    import onnxruntime as ort

    print(f"float32, intra_op_num_threads={args.threads}, onnxruntime {ort.__version__}; "
          f"times are medians per call, ratios medians of per-round ratios [25%, 75%]")
    print(f"{'N':>6} {'reduction':>9} {'smoothl1':>11} {'huber':>11} {'smoothl1_':>11} "
          f"{'huber/smoothl1':>24} {'A/A smoothl1_/smoothl1':>24}")
    rng = np.random.default_rng(0)
    for log2n in sizes:
        n = 2**log2n
        x = rng.standard_normal(n, dtype=np.float32)
        y = (rng.standard_normal(n, dtype=np.float32) * 2).astype(np.float32)
        feeds = {"input": x, "target": y}
        for reduction in REDUCTIONS:
            sessions = _sessions(reduction, args.threads)
            calls: dict[str, Callable[[], object]] = {
                name: (lambda s=s, f=feeds: s.run(None, f))  # type: ignore[misc]
                for name, s in sessions.items()
            }
            # Per-call cost spans ~10 us (2^16) to ~20 ms (2^24 'none'): bound rounds both ways.
            t = _interleaved(calls, budget=args.budget, min_rounds=20, max_rounds=20_000)
            med = {k: statistics.median(v) for k, v in t.items()}
            hub = _ratio_stats(t["huber"], t["smoothl1"])
            aa = _ratio_stats(t["smoothl1'"], t["smoothl1"])
            print(f"{'2^' + str(log2n):>6} {reduction:>9} "
                  + " ".join(f"{med[p] * 1e6:9.1f}us" for p in PATHS)
                  + f" {hub[0]:10.3f} [{hub[1]:.3f}, {hub[2]:.3f}]"
                  + f" {aa[0]:10.3f} [{aa[1]:.3f}, {aa[2]:.3f}]"
                  + f"  ({len(t['huber'])} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
