"""``ort-openvino-ep``: ``onnxruntime-openvino`` (its own ``onnxruntime`` module, so it
lives in ``.venv-ort-openvino``), ``OpenVINOExecutionProvider`` with ``device_type=CPU``,
``precision=FP32``, in a worker. The EP rejects inputs of unknown rank, so every input gets
its rank declared (dimensions symbolic), as the ``openvino`` path does.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..limits import reciprocal_limit
from ..placement import OPENVINO_EP
from ..registry import register
from ._ep import ROOT, SETUP_HINT, EpPath

#: The interpreter of the onnxruntime-openvino venv (default ROOT/.venv-ort-openvino).
OPENVINO_PYTHON_ENV = "ONNX_SMOOTHL1_ORT_OPENVINO_PYTHON"


@register
class OrtOpenVinoEpPath(EpPath):
    name = "ort-openvino-ep"
    title = "onnxruntime-openvino OpenVINOExecutionProvider (CPU, FP32), model-local function, worker"
    ep = OPENVINO_EP
    runtime = "openvino"
    declare_ranks = True
    limits = (reciprocal_limit("OpenVINO"),)
    placement_limits = {
        "float64": "OpenVINO's CPU plugin has no float64 arithmetic: the EP leaves float64 "
        "nodes to the CPU provider",
        "bfloat16": "onnxruntime-openvino 1.24 takes no bfloat16 Cast: the input and result "
        "casts run on the CPU provider",
        "rank0": "onnxruntime-openvino 1.24 leaves rank-0 Sub/Abs on the CPU provider, and "
        "its session initialisation fails on rank-0 reductions (SaveInitializedTensors: "
        "'!utils::HasExternalDataInMemory(tensor_proto) was false')",
    }

    def _python(self):
        return os.environ.get(OPENVINO_PYTHON_ENV) or str(ROOT / ".venv-ort-openvino" / "bin" / "python")

    def _not_set_up(self):
        if Path(self._python()).is_file():
            return None
        if os.environ.get(OPENVINO_PYTHON_ENV) or (ROOT / "scripts" / "setup_runtimes.sh").is_file():
            return f"{self._python()} does not exist ({SETUP_HINT})"
        # a wheel install: there is no checkout venv to point at
        return (f"onnxruntime-openvino lives in its own venv (its wheel ships its own onnxruntime): "
                f"make one (python -m venv ov && ov/bin/pip install onnxruntime-openvino numpy) and set "
                f"{OPENVINO_PYTHON_ENV}=ov/bin/python")

    def _env(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return env

    def _describe(self, info):
        return f"onnxruntime-openvino {info['ort_version']}, device_type CPU, precision FP32"
