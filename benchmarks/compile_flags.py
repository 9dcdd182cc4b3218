"""Do the compiler paths' compile-time settings change any output of the parity grid?

``parity``'s ``iree`` path compiles with ``--iree-opt-const-eval=false`` and
``--mlir-disable-threading``, its ``tvm`` path at LLVM opt-level 0, because the grid's
compiles, not its runs, took most of ``parity --quick``'s time. This is the measurement
behind that choice: each dtype's group model (``onnx_smoothl1.parity.groups``: every case of
the grid of that dtype) is compiled with the runtime's defaults and with the path's settings,
both run on every case's inputs, and the outputs are compared bit for bit. Prints the compile
times (wall and CPU) and the count of differing outputs; exits 1 if any differs.

    python benchmarks/compile_flags.py [--quick] [--runtimes iree tvm]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

Run = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _build(path: Any, model: onnx.ModelProto, file: Path) -> Run:
    """Compile, load and run ``model`` with the parity path's own code (its settings as set)."""
    path.compile_to(model, file)
    compiled = path.load(file)
    return lambda arrays: path.execute(compiled, arrays)


def iree_build(model: onnx.ModelProto, ours: bool, where: Path) -> Run:
    from onnx_smoothl1.parity.runtimes import iree

    path = iree.IreePath()
    path.flags = iree.FLAGS if ours else iree.BASE_FLAGS  # BASE: float64 kept, host CPU
    return _build(path, model, where / f"iree_{ours}.vmfb")


def tvm_build(model: onnx.ModelProto, ours: bool, where: Path) -> Run:
    from onnx_smoothl1.parity.runtimes import tvm

    path = tvm.TvmPath()
    path.target = tvm.TARGET if ours else {"kind": "llvm"}  # TVM's default opt-level
    return _build(path, model, where / f"tvm_{ours}.so")  # one file per module: dlopen caches by path


BUILDERS = {"iree": iree_build, "tvm": tvm_build}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick grid only")
    parser.add_argument("--runtimes", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    args = parser.parse_args()

    from onnx_smoothl1 import parity
    from onnx_smoothl1.parity import groups

    cases = parity.grid(quick=args.quick)
    slots = groups.group_specs(cases)
    differ = 0
    for name in args.runtimes:
        total = bad = 0
        spent = {False: [0.0, 0.0], True: [0.0, 0.0]}
        for group in dict.fromkeys(g for g, _ in slots.values()):
            model = onnx.ModelProto.FromString(groups.group_model_bytes(group))
            with tempfile.TemporaryDirectory() as scratch:
                runs = {}
                for ours in (False, True):
                    wall, cpu = time.perf_counter(), _cpu()
                    runs[ours] = BUILDERS[name](model, ours, Path(scratch))
                    spent[ours][0] += time.perf_counter() - wall
                    spent[ours][1] += _cpu() - cpu
                for case, (g, position) in slots.items():
                    if g != group:
                        continue
                    arrays = groups.group_inputs(group, group[2][position][0], *parity.make_inputs(case))
                    a, b = (runs[ours](arrays)[position] for ours in (False, True))
                    total += 1
                    if a.tobytes() != b.tobytes():
                        bad += 1
                        print(f"{name}: differs: {case.label}")
        for ours, label in ((False, "defaults"), (True, "the path's settings")):
            print(f"{name}: compile with {label}: {spent[ours][0]:.1f} s wall, {spent[ours][1]:.1f} s CPU")
        print(f"{name}: outputs compared: {total}, differing: {bad}", flush=True)
        differ += bad
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
