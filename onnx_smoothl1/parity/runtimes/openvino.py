"""``openvino``: OpenVINO CPU on the inlined model (ranks declared: its CPU plugin rejects
inputs of unknown rank), with the precision hint and thread count pinned."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import oracle
from ..registry import Unsupported, import_reason, register
from ._inlined import InlinedPath

RECIPROCAL_DIVISION = (
    "divides by the constant beta as a multiplication by 1/beta (one rounding more than "
    "PyTorch's (0.5*d)*d/beta)"
)


def ov_tensor(ov: Any, array: np.ndarray) -> Any:
    array = np.ascontiguousarray(array) if np.ndim(array) else np.asarray(array)
    if array.dtype == oracle.NUMPY_DTYPES["bfloat16"]:
        # numpy has no bfloat16: hand OpenVINO the bits with the element type spelled out.
        tensor = ov.Tensor(ov.Type.bf16, ov.Shape(list(array.shape)))
        if array.size:
            tensor.data.view(np.uint16)[...] = array.view(np.uint16)
        return tensor
    return ov.Tensor(array.copy())


def ov_array(ov: Any, tensor: Any) -> np.ndarray:
    shape = tuple(tensor.shape)
    if tensor.element_type == ov.Type.bf16:
        bits = np.array(tensor.data).view(np.uint16).reshape(shape)
        return bits.view(oracle.NUMPY_DTYPES["bfloat16"])
    return np.array(tensor.data).reshape(shape)


def ov_error(exc: BaseException) -> str:
    # OpenVINO prefixes every message with "Exception from src/...:NN:" lines.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception from")] or lines
    return " ".join(useful)[:300]


@register
class OpenVinoPath(InlinedPath):
    name = "openvino"
    title = "OpenVINO CPU, INFERENCE_PRECISION_HINT=f32, inlined model"
    known_limits = {
        "float64": (
            "OpenVINO's CPU plugin has no float64 arithmetic: it converts f64 models to f32 "
            "(INFERENCE_PRECISION_HINT takes only f32/bf16/f16), accumulates sums in f32, and "
            "saturates +-inf to +-FLT_MAX, so inf - inf gives 0 instead of NaN",
            True,
        ),
    }
    ulp_limits = {"float32": f"OpenVINO's CPU plugin {RECIPROCAL_DIVISION}"}

    #: The compile configuration (pinned so that summation order does not follow the machine).
    CONFIG: dict[str, str] = {"INFERENCE_PRECISION_HINT": "f32"}

    def _why_unavailable(self):
        reason = import_reason("openvino", "runtimes")
        if reason:
            return reason
        import openvino as ov

        self._core = ov.Core()
        if "CPU" not in self._core.available_devices:
            return f"OpenVINO has no CPU device (devices: {self._core.available_devices})"
        config = ", ".join(f"{k}={v}" for k, v in self.CONFIG.items())
        self.notes.append(f"openvino {ov.__version__}, CPU, {config}")
        return None

    def run_model(self, model, feeds, key=None):
        import openvino as ov

        try:
            ck = self._cache_key(feeds, key)
            compiled = self._cache.get(ck) if ck is not None else None
            if compiled is None:
                inlined = self._inlined(model, feeds, key)
                compiled = self._core.compile_model(
                    self._core.read_model(inlined.SerializeToString(), b""), "CPU", dict(self.CONFIG)
                )
                if ck is not None:
                    self._cache[ck] = compiled
            request = compiled.create_infer_request()
            request.infer({k: ov_tensor(ov, v) for k, v in feeds.items()})
            outs = [ov_array(ov, request.get_output_tensor(i)) for i in range(len(compiled.outputs))]
        except Exception as exc:
            raise Unsupported(f"OpenVINO: {ov_error(exc)}") from exc
        return outs
