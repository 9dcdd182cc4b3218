"""``tvm``: Apache TVM 0.27 on the inlined model: the relax ONNX frontend, the ``llvm``
target, run on the relax VM (CPU).

TVM computes in the model's own types (float64 stays float64). LLVM runs at opt-level 0:
``benchmarks/compile_flags.py`` measured all 756 grid outputs bitwise identical to those of
the default level, with compiles 1.5-2.5x faster (the grid's runs take milliseconds; its
compiles took most of ``parity --quick``'s time). Its frontend needs static shapes here
(``Mod`` of a ``Shape`` in the body's padding fails on symbolic dimensions:
"cannot handle ShapeExpr inputs"), which ``inline(..., input_shapes=...)`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..registry import import_reason, register
from ._compiled import CompiledPath

#: The LLVM target at opt-level 0 (see the module docstring).
TARGET: dict[str, object] = {"kind": "llvm", "opt-level": 0}


@register
class TvmPath(CompiledPath):
    name = "tvm"
    title = "Apache TVM relax (ONNX frontend, llvm target) on the inlined model"
    #: what ``compile_to`` compiles for (benchmarks/compile_flags.py tries the default too)
    target: dict[str, object] = TARGET

    def _why_unavailable(self) -> str | None:
        reason = import_reason("tvm", "apache-tvm")
        if reason:
            return reason
        from importlib.metadata import version

        self.notes.append(f"apache-tvm {version('apache-tvm')}, target llvm opt-level {self.target['opt-level']}")
        return None

    suffix = ".so"

    def fingerprint(self) -> str:
        from importlib.metadata import version

        return f"apache-tvm {version('apache-tvm')} {sorted(self.target.items())}"

    def compile_to(self, model: onnx.ModelProto, path: Path) -> None:
        import tvm
        from tvm.relax.frontend.onnx import from_onnx

        module = from_onnx(model, keep_params_in_input=False)
        # export_library links with the C compiler
        tvm.compile(module, target=tvm.target.Target(self.target)).export_library(str(path))

    def load(self, path: Path) -> Any:
        import tvm
        from tvm import relax

        return relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())

    def execute(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import tvm

        device = tvm.cpu()
        result = compiled["main"](*[tvm.runtime.tensor(np.array(a, order="C"), device) for a in arrays])
        results = list(result) if isinstance(result, (list, tuple)) or type(result).__name__ == "Array" else [result]
        return [r.numpy() for r in results]
