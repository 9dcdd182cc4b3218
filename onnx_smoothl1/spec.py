"""The contract of the ``onnx_smoothl1`` loss nodes, in one place.

Two op types share one domain: ``SmoothL1Loss`` (attributes ``beta``, ``reduction``) and
``HuberLoss`` (``delta``, ``reduction``). Every stage (function builder, model maker,
exporters, runtime helpers, C++ kernel tests) validates against these names and values, so a
change to the contract is a change here. The behaviour itself is specified in ``docs/spec.md``
(PyTorch's ``smooth_l1_loss`` and ``huber_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Final

import numpy as np
import onnx

DOMAIN: Final = "onnx_smoothl1"
OP_TYPE: Final = "SmoothL1Loss"
DOMAIN_VERSION: Final = 1

#: ``torch.nn.HuberLoss`` as its own node: ``d < delta ? 0.5*d*d : delta*(d - 0.5*delta)``.
HUBER_OP_TYPE: Final = "HuberLoss"
#: Every loss op type of the domain, SmoothL1Loss first.
LOSS_OP_TYPES: Final = (OP_TYPE, HUBER_OP_TYPE)
#: The FLOAT attribute each loss op type takes besides ``reduction``.
LOSS_PARAMS: Final[dict[str, str]] = {OP_TYPE: "beta", HUBER_OP_TYPE: "delta"}
#: The losses by the short names the oracle and the CLI take (``--loss``).
LOSSES: Final[dict[str, str]] = {"smooth_l1": OP_TYPE, "huber": HUBER_OP_TYPE}

DEFAULT_BETA: Final = 1.0
DEFAULT_DELTA: Final = 1.0
DEFAULT_REDUCTION: Final = "mean"
REDUCTIONS: Final = ("none", "mean", "sum")

#: Element types the node accepts, by the names users pass around (numpy / torch style).
DTYPES: Final[dict[str, int]] = {
    "float16": onnx.TensorProto.FLOAT16,
    "bfloat16": onnx.TensorProto.BFLOAT16,
    "float32": onnx.TensorProto.FLOAT,
    "float64": onnx.TensorProto.DOUBLE,
}

#: Lowest default-domain opset the function can be built for (ReduceSum takes ``axes`` as
#: an input from 13 on, which the function relies on by never passing axes at all).
MIN_OPSET: Final = 13


def max_opset() -> int:
    """Newest default-domain opset the installed onnx package defines."""
    return int(onnx.defs.onnx_opset_version())


def walk_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """``nodes`` (a graph's or a function's) and every node of their If/Loop/Scan subgraphs."""
    for node in nodes:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from walk_nodes(attr.g.node)
            for sub in attr.graphs:
                yield from walk_nodes(sub.node)


def is_loss_node(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is a loss node of the domain (``SmoothL1Loss`` or ``HuberLoss``)."""
    return node.domain == DOMAIN and node.op_type in LOSS_OP_TYPES


def check_loss(loss: object, *, name: str = "loss") -> str:
    """Return ``loss`` (a key of ``LOSSES``: 'smooth_l1' or 'huber'), else ``ValueError``."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(k) for k in LOSSES)}; got {loss!r}"
        )
    return loss


def check_float32_attribute(value: float, *, name: str) -> float:
    """``value`` unchanged, or ``ValueError`` when storing it as the node's float32 attribute
    would change it beyond rounding: a finite value that overflows to inf, a non-zero one that
    underflows to 0, or one that lands among float32's subnormals (relative error > 2^-23).

    Decided (issue 22): refused, not warned about, in the API and the command line alike: a
    loss whose threshold silently became inf or 0 computes a different function.
    """
    if not math.isfinite(value) or value == 0:
        return value
    with np.errstate(over="ignore", under="ignore"):
        stored = float(np.float32(value))
    if math.isinf(stored):
        raise ValueError(f"{name}={value!r} does not fit the node's float32 attribute (it would be "
                         f"stored as inf); the largest float32 is {float(np.finfo(np.float32).max):.8g}")
    if stored == 0.0:
        raise ValueError(f"{name}={value!r} underflows the node's float32 attribute to 0; use 0 for "
                         f"plain L1 or a value >= {float(np.finfo(np.float32).tiny):.8g}")
    if abs(stored - value) > abs(value) * 2.0**-23:
        raise ValueError(f"{name}={value!r} would be stored as {stored!r} (a float32 subnormal, off by "
                         f"more than one unit); use a value >= {float(np.finfo(np.float32).tiny):.8g}")
    return value


def check_beta(beta: object, *, name: str = "beta") -> float:
    """Return ``beta`` as a float, or raise ``ValueError`` naming the argument.

    SPEC: beta >= 0 (0 means plain L1); NaN, infinities of the wrong sign and non-numbers
    are rejected, as PyTorch rejects a negative beta.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a float >= 0, got {beta!r} ({type(beta).__name__})")
    value = float(beta)
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a float >= 0, got {value!r}")
    return check_float32_attribute(value, name=name)


def check_delta(delta: object, *, name: str = "delta") -> float:
    """Return ``delta`` as a float, or raise ``ValueError`` naming the argument.

    SPEC: HuberLoss takes delta > 0 (PyTorch refuses delta <= 0) and finite (the contract:
    an infinite delta would make the linear part inf - inf); NaN and non-numbers are refused.
    """
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating, np.integer)):
        raise ValueError(
            f"{name} must be a finite float > 0, got {delta!r} ({type(delta).__name__})"
        )
    value = float(delta)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
    return check_float32_attribute(value, name=name)


def check_loss_param(op_type: str, value: object, *, name: str | None = None) -> float:
    """``check_beta`` for SmoothL1Loss, ``check_delta`` for HuberLoss (the attribute named by
    ``LOSS_PARAMS``); ``name`` defaults to that attribute's name."""
    if op_type not in LOSS_PARAMS:
        raise ValueError(f"op_type must be one of {', '.join(LOSS_OP_TYPES)}; got {op_type!r}")
    param = LOSS_PARAMS[op_type]
    check = check_beta if op_type == OP_TYPE else check_delta
    return check(value, name=name or param)


def check_reduction(reduction: object, *, name: str = "reduction") -> str:
    """Return ``reduction`` unchanged, or raise ``ValueError`` listing the allowed values."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}"
        )
    return reduction


def check_dtype(dtype: object, *, name: str = "dtype") -> str:
    """Normalise a dtype given as a name, numpy dtype or torch dtype to a key of ``DTYPES``."""
    key = str(dtype).removeprefix("torch.")
    if key in {"float", "half", "double"}:
        key = {"float": "float32", "half": "float16", "double": "float64"}[key]
    if key not in DTYPES:
        raise ValueError(f"{name} must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return key


def check_opset(opset: object, *, name: str = "opset") -> int:
    """Return ``opset`` as an int within [MIN_OPSET, max_opset()], else ``ValueError``."""
    top = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not (
        MIN_OPSET <= int(opset) <= top
    ):
        raise ValueError(f"{name} must be an integer from {MIN_OPSET} to {top}; got {opset!r}")
    return int(opset)


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """Resolve PyTorch's deprecated ``size_average``/``reduce`` arguments (SPEC: Reduction).

    They override ``reduction`` when either is given: ``reduce=False`` -> 'none';
    otherwise ``size_average=False`` -> 'sum', else 'mean'.
    """
    if size_average is None and reduce is None:
        return check_reduction(reduction)
    if reduce is not None and not reduce:
        return "none"
    if size_average is not None and not size_average:
        return "sum"
    return "mean"
