"""``ort-cuda``: the library's CUDA kernel (needs ``CUDAExecutionProvider``); ORT's profile
must place the node on CUDA, or the dtype is unsupported (never a silent CPU pass)."""

from __future__ import annotations

from ... import spec
from ..models import loss_op_types
from ..registry import Unsupported, register
from ._ort import OrtPath, profile_providers
from .ort_kernel import library_reason


@register
class OrtCudaPath(OrtPath):
    name = "ort-cuda"
    title = "onnxruntime CUDAExecutionProvider + the library's CUDA kernel"
    executes = "kernel (CUDA)"
    custom_op = True
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")

    def _why_unavailable(self):
        import onnxruntime as ort

        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            return (
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                f"(available: {', '.join(available)})"
            )
        return library_reason(self)

    def _prove(self, model, feeds, kind):
        events = profile_providers(model, feeds, self.providers, True)
        op_types = loss_op_types(model) or {spec.OP_TYPE}
        names = " and ".join(sorted(op_types))
        placed = {p for op, p in events if op in op_types}
        if not placed:
            raise RuntimeError(f"{names} did not run as one node (profile: {events[:8]})")
        if placed != {"CUDAExecutionProvider"}:
            self._refused[kind] = (
                f"ORT placed {names} on {', '.join(sorted(placed))}, not CUDA: the library "
                f"has no CUDA kernel for {kind} (built without CUDA?)"
            )
            raise Unsupported(self._refused[kind])
        return f"kernel (CUDA: the ORT profile places {names} on CUDAExecutionProvider)"
