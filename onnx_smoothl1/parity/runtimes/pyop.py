"""``python-op``: the onnxruntime-extensions Python op on a node-only model."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import onnx

from ... import spec
from ..models import loss_op_types, node_only
from ..registry import Unsupported, first_line, import_reason, register
from ._ort import OrtPath, profile_providers

_PYOP = f"{__package__.rsplit('.', 2)[0]}.pyop"


def _is_refusal(exc: BaseException) -> bool:
    """A deliberate Python-side refusal from our own code (not an ORT or runtime error)."""
    if isinstance(exc, Unsupported):
        return True
    if "onnxruntime" in (type(exc).__module__ or ""):
        return False
    return isinstance(exc, (ValueError, TypeError, NotImplementedError))


@register
class PythonOpPath(OrtPath):
    name = "python-op"
    title = "onnxruntime-extensions Python op (node-only model)"
    executes = "kernel (Python op)"
    custom_op = "python"

    def _why_unavailable(self):
        reason = import_reason("onnxruntime_extensions", "'onnx-smoothl1[pyop]'")
        if reason:
            return reason
        if importlib.util.find_spec(_PYOP) is None:
            return "onnx_smoothl1.pyop is not available in this checkout"
        importlib.import_module(_PYOP)
        return None

    def _model_for(self, model: onnx.ModelProto) -> onnx.ModelProto:
        return node_only(model)

    def run_model(self, model, feeds, key=None):
        from ...runtime import run

        try:
            # Run first: onnxruntime-extensions aborts the process when the op raises, so the
            # profiled proof only sees inputs the plain session accepted.
            out = run(self._session(model, key), feeds)
            self._prove_once(model, feeds, key)
            return out
        except Exception as exc:
            supported = getattr(importlib.import_module(_PYOP), "SUPPORTED_DTYPES", None)
            dtypes = {str(np.asarray(v).dtype) for v in feeds.values()}
            if supported is not None and not dtypes <= set(supported):
                raise Unsupported(
                    f"the Python op is declared for {', '.join(supported)} only "
                    "(onnxruntime-extensions aborts the process on half types), so onnxruntime "
                    f"rejects a {', '.join(sorted(dtypes))} node: {first_line(exc, 120)}"
                ) from exc
            if _is_refusal(exc):
                raise Unsupported(f"the Python op refuses this case: {first_line(exc)}") from exc
            raise

    def _prove(self, model, feeds, kind):
        events = profile_providers(self._model_for(model), feeds, self.providers, "python")
        ops = {op for op, _ in events}
        wanted = loss_op_types(model) or {spec.OP_TYPE}
        if not wanted <= ops:
            raise RuntimeError(f"the Python op did not run (ORT profile shows {sorted(ops)})")
        return f"kernel (Python op: the ORT profile shows the {' and '.join(sorted(wanted))} node)"
