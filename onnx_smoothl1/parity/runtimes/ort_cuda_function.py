"""``ort-cuda-function``: onnxruntime's CUDAExecutionProvider running the model-local function
(no custom-op library), in a worker, every new session's placement proven node by node.

This is what a user of onnxruntime-gpu without this package's library gets: ORT inlines the
FunctionProto and partitions its standard ops. The body uses no float64 for float16,
bfloat16 and float32 models, so every compute node is expected on CUDA; a node that ORT
leaves on CPU (no CUDA kernel for that op and type) fails the case with the node named, as
``parity.placement`` does for the other EP paths. The worker is this interpreter; its
onnxruntime must be a CUDA build (onnxruntime-gpu), and a GPU must be present.
"""

from __future__ import annotations

import sys

from ..placement import CUDA_EP
from ..registry import register
from ._ep import EpPath


@register
class OrtCudaFunctionPath(EpPath):
    name = "ort-cuda-function"
    title = "onnxruntime CUDAExecutionProvider, model-local function (no library), worker"
    ep = CUDA_EP
    runtime = "cuda"

    def _python(self):
        return sys.executable

    def _not_set_up(self):
        import onnxruntime as ort

        if CUDA_EP not in ort.get_available_providers():
            return (
                f"onnxruntime {ort.__version__} has no {CUDA_EP} "
                f"(available: {', '.join(ort.get_available_providers())}; install onnxruntime-gpu)"
            )
        return None

    def _describe(self, info):
        return f"onnxruntime {info['ort_version']} {CUDA_EP}, the function inlined by ORT"
