"""Main-graph node counts before/after `fuse` on the test programs, and the node lists of bare
losses exported on broadcast inputs: the tables of docs/export.md.

    python benchmarks/fuse_counts.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import onnx
import torch

import onnx_smoothl1 as sl1

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_fuse  # noqa: E402  (the programs live with their tests)


def main() -> int:
    warnings.simplefilter("ignore")
    print("| program | dtype | torch optimizer | nodes before | after | fused | fuse time |")
    print("|---|---|---|---|---|---|---|")
    for name, program in test_fuse.PROGRAMS.items():
        model = onnx.load_from_string(test_fuse.plain_export(name))
        start = time.perf_counter()
        fused, count = sl1.fuse(model)
        seconds = time.perf_counter() - start
        print(f"| {name} | {program['dtype']} | {'yes' if program['optimize'] else 'no'} | "
              f"{len(model.graph.node)} | {len(fused.graph.node)} | {count} | {seconds * 1e3:.0f} ms |")
    print()
    x, y = torch.randn(6, 1, 5), torch.randn(4, 5)
    for dynamo in (True, False):
        for module in (torch.nn.HuberLoss(delta=0.35), torch.nn.SmoothL1Loss()):
            exported = sl1.export(module, (x, y), dynamo=dynamo, mode="custom_op")
            print(f"export {'dynamo' if dynamo else 'legacy'} {type(module).__name__} (6,1,5) vs (4,5): "
                  f"{[n.op_type for n in exported.graph.node]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
