"""Ready-made single-node models: ``input``, ``target`` -> ``loss``.

``make_model`` (SmoothL1Loss) and ``make_huber_model`` (HuberLoss) are what ``models/*.onnx``,
the CLI's ``make-model`` and the demo are built from; both go through one builder.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from . import spec
from .function import attach_function, make_huber_node, make_node

#: Highest IR version the pinned onnxruntime loads (onnx 1.23 writes 14 by default; ORT 1.30
#: accepts at most 13). Models get the lowest IR version their opsets need, capped here.
MAX_IR_VERSION = 13
#: Model-local functions with attribute defaults (``attribute_proto``) need IR 9.
MIN_IR_VERSION = 9


def ir_version_for(model: onnx.ModelProto) -> int:
    """The IR version to stamp on ``model`` so the installed onnxruntime can load it."""
    needed = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    return min(max(needed, MIN_IR_VERSION), MAX_IR_VERSION)


def make_model(
    *,
    beta: float = spec.DEFAULT_BETA,
    reduction: str = spec.DEFAULT_REDUCTION,
    dtype: str = "float32",
    opset: int = 18,
    rank: int | None = None,
) -> onnx.ModelProto:
    """One ``SmoothL1Loss`` node plus its function.

    With ``rank=None`` (default) the inputs have no declared shape at all, so one model takes
    any rank and any pair of broadcastable shapes (``[4,1,3]`` vs ``[5,3]``); with an int,
    each input gets that many symbolic dimensions. onnx's checker insists that main-graph
    inputs declare a shape (it rejects unknown rank), so an unknown-rank model is checked
    (``full_check=True``) as its rank-1 twin: identical but for the two input declarations.

    Raises ``ValueError`` naming the argument for a negative beta, an unknown reduction, or an
    unsupported dtype / opset / rank.
    """
    return _single_loss_model(spec.OP_TYPE, beta, reduction=reduction, dtype=dtype,
                              opset=opset, rank=rank)


def make_huber_model(
    *,
    delta: float = spec.DEFAULT_DELTA,
    reduction: str = spec.DEFAULT_REDUCTION,
    dtype: str = "float32",
    opset: int = 18,
    rank: int | None = None,
) -> onnx.ModelProto:
    """One ``HuberLoss`` node plus its function: :func:`make_model` with ``delta`` for ``beta``.

    Raises ``ValueError`` naming the argument for a delta that is not a finite float > 0, an
    unknown reduction, or an unsupported dtype / opset / rank.
    """
    return _single_loss_model(spec.HUBER_OP_TYPE, delta, reduction=reduction, dtype=dtype,
                              opset=opset, rank=rank)


#: Per loss op type: graph/node name prefix and the node maker.
_MODEL_PARTS: dict[str, tuple[str, Callable[..., onnx.NodeProto]]] = {
    spec.OP_TYPE: ("smooth_l1", make_node),
    spec.HUBER_OP_TYPE: ("huber", make_huber_node),
}


def _single_loss_model(op_type: str, param: float, *, reduction: str, dtype: str, opset: int,
                       rank: int | None) -> onnx.ModelProto:
    """The model of :func:`make_model` / :func:`make_huber_model` for ``op_type``."""
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 0):
        raise ValueError(f"rank must be None (any rank) or an integer >= 0; got {rank!r}")
    name = spec.LOSS_PARAMS[op_type]
    param = spec.check_loss_param(op_type, param)
    reduction = spec.check_reduction(reduction)
    dtype = spec.check_dtype(dtype)
    opset = spec.check_opset(opset)
    elem = spec.DTYPES[dtype]
    prefix, node_maker = _MODEL_PARTS[op_type]
    node = node_maker("input", "target", "loss", **{name: param}, reduction=reduction, name=prefix)
    out_shape = _dims("loss", rank) if reduction == "none" else []
    graph = helper.make_graph(
        [node],
        f"{prefix}_{reduction}",
        [
            helper.make_tensor_value_info("input", elem, _dims("input", rank)),
            helper.make_tensor_value_info("target", elem, _dims("target", rank)),
        ],
        [helper.make_tensor_value_info("loss", elem, out_shape)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="onnx-smoothl1",
        doc_string=f"{op_type}({name}={param}, reduction={reduction!r}), {dtype}",
    )
    attach_function(model, dtype)
    model.ir_version = ir_version_for(model)
    onnx.checker.check_model(model if rank is not None else ranked_twin(model), full_check=True)
    return model


def _dims(name: str, rank: int | None) -> list[str] | None:
    return None if rank is None else [f"{name}_d{i}" for i in range(rank)]


def ranked_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a rank-1 symbolic shape on every unshaped graph input/output, so that
    onnx's checker (which insists on declared main-graph shapes) can check the rest."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    for value in [*twin.graph.input, *twin.graph.output]:
        if not value.type.tensor_type.HasField("shape"):
            value.type.tensor_type.shape.dim.add().dim_param = f"{value.name}_d0"
    return twin
