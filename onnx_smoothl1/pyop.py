"""``onnx_smoothl1::SmoothL1Loss`` and ``onnx_smoothl1::HuberLoss`` as onnxruntime-extensions
Python ops.

Lets ``mode="custom_op"`` models run without the compiled library::

    session = onnx_smoothl1.inference_session(model, custom_op="python")

which calls ``library_path()``: it registers both ops (``onnx_op`` with
``op_type="onnx_smoothl1::SmoothL1Loss"`` / ``"onnx_smoothl1::HuberLoss"``; the domain prefix
selects the domain) and returns onnxruntime-extensions' library for
``SessionOptions.register_custom_ops_library``. Both ops share one numpy body
(:func:`_numpy_loss`); only the element-wise formula differs.

Element types: float32 and float64 only. onnxruntime-extensions' Python-op API has no
float16/bfloat16 support - declaring float16 does not fail when declared, it *aborts the
whole process* (``std::runtime_error`` thrown through C) when a session uses it. ``register``
therefore refuses those types with a ``ValueError`` before anything reaches the extension;
a float16/bfloat16 node then fails cleanly in onnxruntime ("Type 'tensor(float16)' ... is
invalid") instead of aborting. Use the compiled library or the function for those types.

Arithmetic follows SPEC exactly: float64 throughout (numpy's pairwise sum), one rounding back
to the input type, numpy broadcasting, NaN/inf as IEEE (and PyTorch) give them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

import numpy as np

from . import spec

#: Types the Python op is declared for; every other float type is refused (see above).
SUPPORTED_DTYPES: Final = ("float32", "float64")
#: Types onnxruntime-extensions would accept at declaration and abort the process on later.
_ABORTS: Final = ("float16", "bfloat16")

_lock = threading.Lock()
#: (op type, dtype name) pairs already registered in this process.
_registered: set[tuple[str, str]] = set()


def smooth_l1_loss(
    input: np.ndarray, target: np.ndarray, beta: float = spec.DEFAULT_BETA,
    reduction: str = spec.DEFAULT_REDUCTION,
) -> np.ndarray:
    """SPEC's SmoothL1Loss in numpy (the Python op's body); the result has ``input``'s type."""
    return _numpy_loss(input, target, spec.OP_TYPE, spec.check_beta(beta), reduction)


def huber_loss(
    input: np.ndarray, target: np.ndarray, delta: float = spec.DEFAULT_DELTA,
    reduction: str = spec.DEFAULT_REDUCTION,
) -> np.ndarray:
    """SPEC's HuberLoss in numpy (the Python op's body); the result has ``input``'s type."""
    return _numpy_loss(input, target, spec.HUBER_OP_TYPE, spec.check_delta(delta), reduction)


def _numpy_loss(input: np.ndarray, target: np.ndarray, op_type: str, param: float,
                reduction: str | bytes) -> np.ndarray:
    """Either loss in float64 throughout, rounded once to the input's type."""
    if isinstance(reduction, bytes):
        reduction = reduction.decode()
    reduction = spec.check_reduction(reduction)
    x, y = np.asarray(input), np.asarray(target)
    if x.dtype != y.dtype:
        raise ValueError(f"input and target types differ: {x.dtype} vs {y.dtype}")
    try:
        x64, y64 = np.broadcast_arrays(x.astype(np.float64), y.astype(np.float64))
    except ValueError:
        raise ValueError(f"input shape {x.shape} and target shape {y.shape} cannot be broadcast") from None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d = np.abs(x64 - y64)
        if op_type == spec.HUBER_OP_TYPE:
            elem = np.where(d < param, 0.5 * d * d, param * (d - 0.5 * param))
        elif param > 0:
            elem = np.where(d < param, 0.5 * d * d / param, d - 0.5 * param)
        else:
            elem = d
        if reduction == "none":
            out = elem
        elif reduction == "sum":
            out = np.asarray(elem.sum(dtype=np.float64))
        else:
            out = np.asarray(elem.sum(dtype=np.float64) / np.float64(elem.size))
    return np.array(out, dtype=x.dtype, copy=True, order="C")  # keeps rank 0 (ascontiguousarray would not)


def _check_dtypes(dtypes: Iterable[object]) -> list[str]:
    names = []
    for dtype in dtypes:
        if isinstance(dtype, type) and issubclass(dtype, np.generic):
            dtype = np.dtype(dtype).name  # np.float16 and friends
        name = spec.check_dtype(dtype)
        if name in _ABORTS:
            raise ValueError(
                f"the onnxruntime-extensions Python op cannot run {name}: declaring it aborts the "
                f"process when a session uses it. Supported: {', '.join(SUPPORTED_DTYPES)}; for "
                f"{name} use the compiled library (custom_op=True) or the function "
                "(custom_op=False)"
            )
        names.append(name)
    if not names:
        raise ValueError("dtypes must name at least one type")
    return names


def register(dtypes: Iterable[object] = SUPPORTED_DTYPES) -> list[str]:
    """Register both Python ops (SmoothL1Loss, HuberLoss) for ``dtypes`` (once per op and
    type per process); return the dtype names.

    Raises ``ValueError`` for float16/bfloat16 (see module docstring) before touching
    onnxruntime-extensions, and for non-float types.
    """
    names = _check_dtypes(list(dtypes) if not isinstance(dtypes, str) else [dtypes])
    try:
        from onnxruntime_extensions import PyCustomOpDef, onnx_op
    except ImportError as exc:  # an optional extra
        from .runtime import CustomOpUnavailable

        raise CustomOpUnavailable(
            f"custom_op='python' needs onnxruntime-extensions, which is not installed ({exc}): "
            "pip install 'onnx-smoothl1[pyop]'"
        ) from exc

    kinds = {"float32": PyCustomOpDef.dt_float, "float64": PyCustomOpDef.dt_double}
    bodies = {spec.OP_TYPE: _op_body, spec.HUBER_OP_TYPE: _huber_op_body}
    with _lock:
        for op_type, body in bodies.items():
            for name in names:
                if (op_type, name) in _registered:
                    continue
                kind = kinds[name]
                onnx_op(
                    op_type=f"{spec.DOMAIN}::{op_type}",
                    inputs=[kind, kind],
                    outputs=[kind],
                    attrs={spec.LOSS_PARAMS[op_type]: PyCustomOpDef.dt_float,
                           "reduction": PyCustomOpDef.dt_string},
                )(body)
                _registered.add((op_type, name))
    return names


def _op_body(input, target, beta=spec.DEFAULT_BETA, reduction=spec.DEFAULT_REDUCTION):
    return _safe_body(input, target, spec.OP_TYPE, beta, reduction)


def _huber_op_body(input, target, delta=spec.DEFAULT_DELTA, reduction=spec.DEFAULT_REDUCTION):
    return _safe_body(input, target, spec.HUBER_OP_TYPE, delta, reduction)


def _safe_body(input, target, op_type: str, param, reduction):
    # onnxruntime-extensions hands FLOAT attributes over as text with 6 significant digits
    # ("%g": 0.3f arrives as 0.3, 123456.789f as 123457.0). The attribute is a float32, so
    # rounding the text back to float32 recovers it exactly whenever that round trip holds,
    # which ``check_model`` makes sure of before a session is created.
    try:
        value = spec.check_loss_param(op_type, float(np.float32(param)))
        return _numpy_loss(input, target, op_type, value, reduction)
    except Exception as exc:
        # Raising here would abort the whole process: onnxruntime-extensions rethrows any
        # Python exception through C++ (std::terminate). inference_session validates the
        # attributes and runtime.run the shapes of graph inputs beforehand; what still gets
        # here (e.g. unbroadcastable intermediate tensors) yields NaN and a warning instead.
        import warnings

        warnings.warn(f"onnx_smoothl1 Python op: {exc}; returning NaN", RuntimeWarning, stacklevel=1)
        x = np.asarray(input)
        shape = x.shape if reduction in ("none", b"none") else ()
        return np.full(shape, np.nan, dtype=x.dtype if x.dtype.kind == "f" else np.float32)


def received_beta(beta: float) -> float:
    """The beta (or delta) the op body works with for a node whose FLOAT attribute is
    ``beta``."""
    return float(np.float32(float(f"{float(np.float32(beta)):g}")))


def check_model(model) -> None:
    """``ValueError`` for a loss node whose beta (SmoothL1Loss) or delta (HuberLoss) the
    Python op cannot receive exactly (onnxruntime-extensions passes float attributes with 6
    significant digits)."""
    for node in spec.walk_nodes(model.graph.node):
        if not spec.is_loss_node(node):
            continue
        param = spec.LOSS_PARAMS[node.op_type]
        for attr in node.attribute:
            if attr.name == param and attr.type == attr.FLOAT and not attr.ref_attr_name:
                exact = float(np.float32(attr.f))
                if received_beta(exact) != exact:
                    raise ValueError(
                        f"{node.op_type} node {node.name or '<unnamed>'!r}: the Python op would "
                        f"run {param}={exact!r} as {received_beta(exact)!r} "
                        "(onnxruntime-extensions passes float attributes with 6 significant "
                        f"digits); use a {param} with at most 6 significant digits, the compiled "
                        "library (custom_op=True) or the function (custom_op=False)"
                    )


def library_path() -> str:
    """Register both ops (float32, float64) and return onnxruntime-extensions' library path."""
    register()
    from onnxruntime_extensions import get_library_path

    return get_library_path()
