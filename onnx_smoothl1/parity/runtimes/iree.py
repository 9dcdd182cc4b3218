"""``iree``: IREE 3.x on the inlined model: ONNX import (iree-base-compiler's importer),
compile for llvm-cpu, run with iree-base-runtime.

float64 stays float64: IREE demotes f64 to f32 by default, which
``--iree-input-demote-f64-to-f32=false`` turns off. The compile runs in the ``iree-compile``
subprocess (``iree.compiler.compile_str``), so a compiler crash is an error here, not a dead
runner; the runtime's ``local-sync`` driver runs on the calling thread (one summation order
on any machine: no thread-count dependence). Code is generated for the host CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..registry import import_reason, register
from ._compiled import CompiledPath

#: Compiler flags: float64 kept, llvm-cpu for the host; then two that cut the quick grid's
#: compiles from 27.6 to 21.7 CPU seconds without changing an output (no compile-time
#: evaluation of constant subexpressions; one compiler thread, as the runner's other paths
#: use the other core). ``benchmarks/compile_flags.py`` compares every grid output with and
#: without them, bit for bit.
BASE_FLAGS = ("--iree-input-demote-f64-to-f32=false", "--iree-llvmcpu-target-cpu=host")
FLAGS = (*BASE_FLAGS, "--iree-opt-const-eval=false", "--mlir-disable-threading")


def to_mlir(model: onnx.ModelProto) -> str:
    """The model as MLIR text (torch-onnx dialect), as ``iree-import-onnx`` writes it."""
    from iree.compiler import ir
    from iree.compiler.extras import onnx_importer

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    info = onnx_importer.ModelInfo(inferred)
    module = info.create_module(context=ir.Context()).operation
    onnx_importer.NodeImporter.define_function(info.main_graph, module).import_all()
    module.verify()
    return str(module.get_asm(assume_verified=True))


@register
class IreePath(CompiledPath):
    name = "iree"
    title = "IREE llvm-cpu (iree-base-compiler + iree-base-runtime) on the inlined model, float64 kept"
    #: what ``compile_to`` passes (benchmarks/compile_flags.py compiles with BASE_FLAGS too)
    flags: tuple[str, ...] = FLAGS

    def _why_unavailable(self) -> str | None:
        for module in ("iree.compiler", "iree.runtime"):
            reason = import_reason(module, "iree-base-compiler iree-base-runtime")
            if reason:
                return reason
        from importlib.metadata import version

        self.notes.append(
            f"iree-base-compiler {version('iree-base-compiler')}, iree-base-runtime "
            f"{version('iree-base-runtime')}; flags {' '.join(self.flags)}"
        )
        return None

    suffix = ".vmfb"

    def fingerprint(self) -> str:
        from importlib.metadata import version

        return f"iree-base-compiler {version('iree-base-compiler')} {' '.join(self.flags)}"

    def compile_to(self, model: onnx.ModelProto, path: Path) -> None:
        import iree.compiler as compiler

        compiler.compile_str(
            to_mlir(model), target_backends=["llvm-cpu"], input_type="onnx", extra_args=list(self.flags),
            output_file=str(path),
        )

    def load(self, path: Path) -> Any:
        import iree.runtime as rt

        config = rt.Config("local-sync")
        context = rt.SystemContext(config=config)
        context.add_vm_module(rt.VmModule.copy_buffer(config.vm_instance, path.read_bytes()))
        module = context.modules.module
        # The one exported function (besides its $async twin): the graph's name.
        names = [n for n in module.vm_module.function_names if not n.endswith("$async") and n != "__init"]
        if len(names) != 1:
            raise RuntimeError(f"{path.name}: expected one exported function, found {names}")
        return module[names[0]]

    def execute(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        result = compiled(*arrays)
        results = result if isinstance(result, (list, tuple)) else [result]
        return [np.asarray(r.to_host()) for r in results]
