"""onnx-smoothl1: PyTorch's SmoothL1Loss and HuberLoss as ONNX nodes with model-local functions.

Data flow, one module per stage::

    torch module -> exporter -> node + function -> runtime (kernel or function) -> parity

``spec`` holds the contract, ``function`` builds the node and its FunctionProto, ``model``
makes ready-made models, ``runtime`` runs them in onnxruntime (fused kernel or function).
"""

from __future__ import annotations

from .doctor import doctor
from .exporter import export
from .function import attach_function, make_function, make_huber_node, make_node
from .fuse import FuseResult, fuse
from .inline import inline
from .model import make_huber_model, make_model
from .runtime import (
    CustomOpUnavailable,
    OnnxRuntimeUnavailable,
    get_library_path,
    has_custom_op,
    inference_session,
    profile_node_ops,
)
from .spec import DOMAIN, DOMAIN_VERSION, HUBER_OP_TYPE, OP_TYPE, REDUCTIONS

__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "HUBER_OP_TYPE",
    "OP_TYPE",
    "REDUCTIONS",
    "CustomOpUnavailable",
    "OnnxRuntimeUnavailable",
    "FuseResult",
    "attach_function",
    "doctor",
    "export",
    "fuse",
    "get_library_path",
    "has_custom_op",
    "inference_session",
    "inline",
    "make_function",
    "make_huber_model",
    "make_huber_node",
    "make_model",
    "make_node",
    "profile_node_ops",
]

__version__ = "0.1.0"
