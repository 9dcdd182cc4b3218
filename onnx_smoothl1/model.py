"""Ready-made single-node models: ``input``, ``target`` -> ``loss``.

``make_model`` is what ``models/*.onnx``, the CLI's ``make-model`` and the demo are built from.
"""

from __future__ import annotations

import onnx
from onnx import helper

from . import spec
from .function import attach_function, make_node

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
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 0):
        raise ValueError(f"rank must be None (any rank) or an integer >= 0; got {rank!r}")
    beta = spec.check_beta(beta)
    reduction = spec.check_reduction(reduction)
    dtype = spec.check_dtype(dtype)
    opset = spec.check_opset(opset)
    elem = spec.DTYPES[dtype]
    out_shape = _dims("loss", rank) if reduction == "none" else []
    graph = helper.make_graph(
        [make_node("input", "target", "loss", beta=beta, reduction=reduction, name="smooth_l1")],
        f"smooth_l1_{reduction}",
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
        doc_string=f"SmoothL1Loss(beta={beta}, reduction={reduction!r}), {dtype}",
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
