"""``openvino``: OpenVINO CPU on the inlined model (ranks declared: its CPU plugin rejects
inputs of unknown rank), with the precision hint and thread count pinned.

Grid cases run through group models (``parity.groups``, ranks only: every dimension
symbolic), one compile per dtype instead of one per (loss, parameter, reduction, ranks): the
compiles were most of this path's time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from ... import oracle
from ..cases import Case
from ..groups import GroupedPath, GroupSpec, group_model_bytes, ranked_shapes
from ..limits import KnownLimit, float32_arithmetic, reciprocal_limit, within_ulps
from ..registry import Unsupported, import_reason, register
from ._inlined import InlinedPath


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
class OpenVinoPath(GroupedPath, InlinedPath):
    name = "openvino"
    title = "OpenVINO CPU (f32 precision, ACCURACY mode, 1 thread: pinned), inlined model"
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

    shape_of = staticmethod(ranked_shapes)

    def prepare(self, cases: Sequence[Case]) -> None:
        self.plan(cases)  # the groups compile on first use

    def _compile(self, model: onnx.ModelProto) -> Any:
        return self._core.compile_model(self._core.read_model(model.SerializeToString(), b""), "CPU", dict(self.CONFIG))

    def _infer(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import openvino as ov

        request = compiled.create_infer_request()
        request.infer([ov_tensor(ov, a) for a in arrays])
        return [ov_array(ov, request.get_output_tensor(i)) for i in range(len(compiled.outputs))]

    def run_group(self, group: GroupSpec, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            if group not in self._cache:
                model = onnx.ModelProto.FromString(group_model_bytes(group))
                self.note_inliner("onnx_smoothl1.inline.inline")
                self.prove_inlined(model)
                self._cache[group] = self._compile(model)
            return self._infer(self._cache[group], arrays)
        except Exception as exc:
            raise RuntimeError(f"OpenVINO: {ov_error(exc)}") from exc

    def run_model(self, model, feeds, key=None):
        import openvino as ov

        try:
            ck = self._cache_key(feeds, key)
            compiled = self._cache.get(ck) if ck is not None else None
            if compiled is None:
                compiled = self._compile(self._inlined(model, feeds, key))
                if ck is not None:
                    self._cache[ck] = compiled
            request = compiled.create_infer_request()
            request.infer({k: ov_tensor(ov, v) for k, v in feeds.items()})
            outs = [ov_array(ov, request.get_output_tensor(i)) for i in range(len(compiled.outputs))]
        except Exception as exc:
            raise Unsupported(f"OpenVINO: {ov_error(exc)}") from exc
        return outs
