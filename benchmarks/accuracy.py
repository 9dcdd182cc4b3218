"""Accuracy of the function path's float32 sums against torch eager, by size.

For random sizes in buckets from 1 to 2^20 elements (``--per-bucket`` data sets each, values
of mixed scale) and a few data sets at 2^24 and 2^26, prints for the function path in
onnxruntime (CPU, no library) and for ``torch.nn.functional.smooth_l1_loss`` in float32:

- how often the function is beyond max(torch's error, 2^-24) (SPEC: no worse than torch or one
  float32 rounding) and how often it is worse than torch at all;
- the worst relative errors of both, in units of 2^-24.

    python benchmarks/accuracy.py [--per-bucket 150] [--reduction sum] [--beta 0.5] [--large]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

U = 2.0**-24
BUCKETS = ((1, 16), (16, 256), (256, 4096), (4096, 2**16), (2**16, 2**20))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-bucket", type=int, default=150)
    parser.add_argument("--reduction", choices=("sum", "mean"), default="sum")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--large", action="store_true", help="also 2^24 and 2^26 (3 data sets each)")
    args = parser.parse_args(argv)

    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import oracle, runtime

    session = sl1.inference_session(sl1.make_model(reduction=args.reduction, beta=args.beta),
                                    custom_op=False)
    rng = np.random.default_rng(11)

    def errors(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        ref = float(oracle.reference(x, y, beta=args.beta, reduction=args.reduction))
        own = float(oracle.torch_same_dtype(x, y, beta=args.beta, reduction=args.reduction))
        ours = float(runtime.run(session, {"input": x, "target": y})[0])
        return abs(ours - ref) / abs(ref), abs(own - ref) / abs(ref)

    print(f"float32 {args.reduction}, beta {args.beta}: function path (ORT CPU) vs torch eager")
    print(f"{'elements':>16} {'cases':>5} {'beyond':>7} {'worse':>6} {'max fn':>8} {'max torch':>9}")
    for lo, hi in BUCKETS:
        count = args.per_bucket if hi <= 2**16 else max(args.per_bucket // 8, 5)
        beyond = worse = 0
        worst = worst_torch = 0.0
        for _ in range(count):
            n = int(rng.integers(lo, hi))
            x = (rng.standard_normal(n) * rng.choice([0.05, 1.0, 20.0])).astype(np.float32)
            y = rng.standard_normal(n).astype(np.float32)
            ours, theirs = errors(x, y)
            beyond += ours > max(theirs, U)
            worse += ours > theirs
            worst, worst_torch = max(worst, ours / U), max(worst_torch, theirs / U)
        print(f"{f'{lo}..{hi}':>16} {count:>5} {beyond:>7} {worse:>6} {worst:>7.2f}u {worst_torch:>8.2f}u")
    if args.large:
        for log2n in (24, 26):
            for seed in range(3):
                n = 2**log2n + seed * 7919
                g = np.random.default_rng(seed)
                x = g.standard_normal(n, dtype=np.float32)
                y = (g.standard_normal(n, dtype=np.float32) * 2).astype(np.float32)
                ours, theirs = errors(x, y)
                print(f"N=2^{log2n}+{seed * 7919}: function {ours:.2e}, torch {theirs:.2e}"
                      f" ({'ok' if ours <= max(theirs, U) else 'WORSE'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
