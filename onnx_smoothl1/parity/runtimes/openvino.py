"""``openvino``: OpenVINO CPU on the inlined model (ranks declared: its CPU plugin rejects
inputs of unknown rank), with the precision hint and thread count pinned.

Grid cases run through the group models the compiler paths use (``parity.groups``, static
shapes, inlined once between them through the disk cache), one compile per dtype instead of
one per (loss, parameter, reduction, ranks): those compiles and inlinings were most of this
path's time. OpenVINO compiles and runs in a time-limited worker
(``CompiledPath``): its CPU plugin is native code, and a crash there must not take the runner
down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from ... import oracle
from ..limits import KnownLimit, float32_arithmetic, reciprocal_limit, within_ulps
from ..registry import import_reason, register
from ._compiled import CompiledPath


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
class OpenVinoPath(CompiledPath):
    name = "openvino"
    title = "OpenVINO CPU (f32 precision, ACCURACY mode, 1 thread: pinned), inlined model, in a worker"
    limits = (
        KnownLimit(
            "float64",
            "OpenVINO's CPU plugin has no float64 arithmetic: it converts f64 models to f32 "
            "(INFERENCE_PRECISION_HINT takes only f32/bf16/f16), accumulates sums in f32, and "
            "saturates +-inf to +-FLT_MAX, so inf - inf gives 0 instead of NaN",
            "within rel 1e-4 of the float64 result for the inputs rounded to float32; NaN/inf "
            "differences only where an input is infinite",
            float32_arithmetic(1e-4),
        ),
        KnownLimit(
            "bfloat16",
            "OpenVINO's CPU plugin converts float32 to bfloat16 by truncation (round toward "
            "zero) on CPUs without AVX512_BF16 (Convert 1.7574 -> 1.75, not 1.7578), so a "
            "result is up to one bfloat16 ulp low, and beyond SPEC's one rounding when its "
            "float32 value lies just above a bfloat16 value (which depends on the CPU)",
            "within 2 bfloat16 ulps, same NaN/inf positions",
            within_ulps(2),
        ),
        reciprocal_limit("OpenVINO's CPU plugin"),
    )

    #: The compile configuration, pinned so that neither precision nor summation order
    #: follows the machine: float32 inference precision (the default is bf16 on CPUs with
    #: AVX512_BF16/AMX), ACCURACY mode (no low-precision transformations), one thread (the
    #: split of a reduction follows the thread count, which follows the core count).
    CONFIG: dict[str, str] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "EXECUTION_MODE_HINT": "ACCURACY",
        "INFERENCE_NUM_THREADS": "1",
    }

    def _why_unavailable(self):
        reason = import_reason("openvino", "'onnx-smoothl1[runtimes]'")
        if reason:
            return reason
        import openvino as ov

        self._core = ov.Core()
        if "CPU" not in self._core.available_devices:
            return f"OpenVINO has no CPU device (devices: {self._core.available_devices})"
        config = ", ".join(f"{k}={v}" for k, v in self.CONFIG.items())
        self.notes.append(f"openvino {ov.__version__}, CPU, {config}")
        return None

    def fingerprint(self) -> str:
        import openvino as ov

        return f"openvino {ov.__version__} {sorted(self.CONFIG.items())}"

    # ---- in the worker -------------------------------------------------------------

    def compile(self, model: onnx.ModelProto, model_bytes: bytes | None = None) -> Any:
        """OpenVINO compiles in memory (fast enough per dtype group: no disk cache)."""
        import openvino as ov

        self.last_compiled = True
        if getattr(self, "_core", None) is None:
            self._core = ov.Core()
        data = model.SerializeToString() if model_bytes is None else model_bytes
        try:
            return self._core.compile_model(self._core.read_model(data, b""), "CPU", dict(self.CONFIG))
        except Exception as exc:
            raise RuntimeError(f"OpenVINO: {ov_error(exc)}") from exc

    def execute(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import openvino as ov

        try:
            request = compiled.create_infer_request()
            request.infer([ov_tensor(ov, a) for a in arrays])
            return [ov_array(ov, request.get_output_tensor(i)) for i in range(len(compiled.outputs))]
        except Exception as exc:
            raise RuntimeError(f"OpenVINO: {ov_error(exc)}") from exc
