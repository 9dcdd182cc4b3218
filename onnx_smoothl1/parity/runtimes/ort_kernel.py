"""``ort-kernel``: onnxruntime with the compiled fused CPU kernel (``has_custom_op()``)."""

from __future__ import annotations

from ..models import loss_op_types
from ..registry import ParityPath, first_line, register
from ._ort import OrtPath


def library_reason(path: ParityPath) -> str | None:
    """Why the compiled library cannot be used with this onnxruntime, or None."""
    import onnxruntime as ort

    from ...runtime import CustomOpUnavailable, get_library_path

    try:
        library = get_library_path()
    except CustomOpUnavailable as exc:
        return first_line(exc, 400)
    try:  # the library refuses onnxruntime releases older than its API (1.21)
        ort.SessionOptions().register_custom_ops_library(library)
    except Exception as exc:
        return f"the library does not load into onnxruntime {ort.__version__}: {first_line(exc)}"
    return None


@register
class OrtKernelPath(OrtPath):
    name = "ort-kernel"
    title = "onnxruntime + fused C++ CPU kernel (compiled library)"
    executes = "kernel"
    custom_op = True

    def _why_unavailable(self):
        return library_reason(self)

    def _prove(self, model, feeds, kind):
        from ...runtime import profile_node_ops, ran_fused_kernel

        _, ops = profile_node_ops(
            self._model_for(model), feeds, providers=list(self.providers), custom_op=True
        )
        if not ran_fused_kernel(ops):
            raise RuntimeError(f"the fused kernel did not run (ORT profile shows {sorted(set(ops))})")
        missing = sorted(loss_op_types(model) - set(ops))
        if missing:
            raise RuntimeError(
                f"the fused {', '.join(missing)} kernel did not run (ORT profile shows {sorted(set(ops))})"
            )
        shown = " and ".join(sorted(loss_op_types(model) & set(ops))) or "loss"
        return f"kernel (the ORT profile shows the fused {shown} node)"
