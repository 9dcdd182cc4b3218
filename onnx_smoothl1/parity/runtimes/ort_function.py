"""``ort-function``: onnxruntime running the model-local function (no library)."""

from __future__ import annotations

import onnx

from ... import spec
from ..models import with_function
from ..registry import register
from ._ort import OrtPath, profile_providers


@register
class OrtFunctionPath(OrtPath):
    name = "ort-function"
    title = "onnxruntime, model-local function (no library), CPU"
    executes = "function (inlined by ORT)"
    custom_op = False

    def _model_for(self, model: onnx.ModelProto) -> onnx.ModelProto:
        return with_function(model)

    def _prove(self, model, feeds, kind):
        events = profile_providers(self._model_for(model), feeds, self.providers, False)
        ops = {op for op, _ in events}
        fused = sorted(ops & set(spec.LOSS_OP_TYPES))
        if fused:
            raise RuntimeError(
                f"ORT ran a {', '.join(fused)} kernel, not the function (a library registered?)"
            )
        return "function (inlined by ORT)"
