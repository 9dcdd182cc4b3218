"""Where the function path's time goes on the CUDA EP: ORT's per-node profile.

The GPU benchmark (benchmarks/gpu.py) measured the function path (no library, ORT inlining
the FunctionProto on CUDAExecutionProvider) at 1.6 s per 'mean' call at 2^28 float32,
against 0.5 ms for the fused kernel, while its 'none' is 5x the kernel. This script runs the
function once per (dtype, reduction) at N elements with ORT's profiler on and prints each
node's kernel time (sum over the timed runs), largest first, with its provider and input
shapes, so the slow node is named rather than guessed.

    python benchmarks/gpu_function_profile.py [--log2n 24] [--dtypes float32] [--reductions mean,none] [--top 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24)
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--reductions", default="mean,none")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort

    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import oracle

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as e:  # torch may have loaded them already
            print(f"onnxruntime.preload_dlls() failed: {e}")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"gpu_function_profile.py: onnxruntime {ort.__version__} has no CUDAExecutionProvider", file=sys.stderr)
        return 2
    n = 2**args.log2n
    rng = np.random.default_rng(0)
    for dtype in [d for d in args.dtypes.split(",") if d]:
        npdt = oracle.NUMPY_DTYPES[dtype]
        x = rng.standard_normal(n).astype(npdt)
        y = rng.standard_normal(n).astype(npdt)
        for reduction in [r for r in args.reductions.split(",") if r]:
            model = sl1.make_model(beta=1.0, reduction=reduction, dtype=dtype)
            with tempfile.TemporaryDirectory() as tmp:
                so = ort.SessionOptions()
                so.log_severity_level = 3
                so.enable_profiling = True
                so.profile_file_prefix = os.path.join(tmp, "fn")
                sess = sl1.inference_session(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                                             custom_op=False, options=so)
                feeds = {"input": x, "target": y}
                sess.run(None, feeds)  # warm-up (excluded below by counting per run)
                for _ in range(args.runs):
                    sess.run(None, feeds)
                events = json.loads(Path(sess.end_profiling()).read_text())
            per_node: dict[str, list] = defaultdict(lambda: [0.0, 0, "", "", ""])
            run_us = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
            for e in events:
                if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
                    continue
                a = e.get("args", {})
                rec = per_node[e["name"][: -len("_kernel_time")]]
                rec[0] += e["dur"]
                rec[1] += 1
                rec[2] = a.get("op_name", "")
                rec[3] = a.get("provider", "")
                rec[4] = json.dumps(a.get("input_type_shape", []))[:110]
            total = sum(r[0] for r in per_node.values())
            runs = args.runs + 1
            median_ms = sorted(run_us)[len(run_us) // 2] / 1e3 if run_us else float("nan")
            print(f"\n{dtype} '{reduction}' N=2^{args.log2n}: model_run median "
                  f"{median_ms:.2f} ms over {len(run_us)} runs; "
                  f"node kernel time {total / runs / 1e3:.2f} ms per run; top {args.top} nodes:")
            ranked = sorted(per_node.items(), key=lambda kv: -kv[1][0])[: args.top]
            for name, (dur, _count, op, provider, shapes) in ranked:
                print(f"  {dur / runs / 1e3:9.3f} ms/run {100 * dur / max(total, 1):5.1f}%  {op:10} {provider:22} "
                      f"{name[-40:]:40} {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
