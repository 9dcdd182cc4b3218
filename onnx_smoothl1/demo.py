"""The main job on an embedded default: build the models, run them in onnxruntime, check torch.

``onnx-smoothl1 demo`` (``make demo``) exercises the whole data flow a user relies on: the
node + function model from ``make_model``, run in onnxruntime through the fused kernel (when
the library is built) and through the function, each compared with PyTorch under SPEC's
tolerances, printed as a small parity table.
"""

from __future__ import annotations

import time

import numpy as np

from . import oracle
from .model import make_model
from .runtime import has_custom_op, profile_node_ops, ran_fused_kernel

#: (dtype, beta, reduction) cases the demo runs.
CASES = [
    ("float32", 1.0, "mean"),
    ("float32", 0.5, "sum"),
    ("float32", 0.0, "none"),
    ("float64", 2.0, "mean"),
    ("float16", 1.0, "mean"),
]


def run_demo(n: int = 100_000, seed: int = 0) -> bool:
    """Print the parity table; return whether every row passed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    paths = [("function", False)]
    if has_custom_op():
        paths.insert(0, ("kernel", True))
    print(f"SmoothL1Loss demo: {n} elements per input, seed {seed}; paths: "
          f"{', '.join(p for p, _ in paths)}")
    header = f"{'dtype':8} {'beta':>5} {'reduction':9} {'path':8} {'ran':16} {'loss[0]':>14} {'max rel err':>11}  ok"
    print(header)
    print("-" * len(header))
    all_ok = True
    for dtype, beta, reduction in CASES:
        npdt = oracle.NUMPY_DTYPES[dtype]
        x = rng.standard_normal(n).astype(npdt)
        y = rng.standard_normal(n).astype(npdt)
        ref = oracle.reference(x, y, beta=beta, reduction=reduction)
        own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
        model = make_model(beta=beta, reduction=reduction, dtype=dtype)
        for name, custom_op in paths:
            start = time.perf_counter()
            (out,), ops = profile_node_ops(model, {"input": x, "target": y}, custom_op=custom_op)
            elapsed = time.perf_counter() - start
            verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
            ran = "SmoothL1Loss" if ran_fused_kernel(ops) else f"{len(ops)} std ops"
            first = float(np.asarray(out, dtype=np.float64).reshape(-1)[0]) if out.size else float("nan")
            all_ok &= verdict.ok
            print(f"{dtype:8} {beta:5g} {reduction:9} {name:8} {ran:16} {first:14.7g} "
                  f"{verdict.max_rel:11.2e}  {'PASS' if verdict.ok else 'FAIL'}  ({elapsed * 1e3:.1f} ms)")
    oracle_name = "PyTorch" if oracle.has_torch() else "the float64 reference (numpy: torch is not installed)"
    print(f"all paths match {oracle_name} within SPEC tolerance" if all_ok else "MISMATCH: see FAIL rows")
    return all_ok
