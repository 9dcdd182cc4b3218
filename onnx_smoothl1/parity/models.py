"""Model helpers shared by the paths: the grid's one-node model, a node-only copy, declared
shapes or ranks, inlining, folding and node naming.

Runtimes differ in what they accept: custom-op paths want the node without its function,
OpenVINO rejects inputs of unknown rank, tract and IREE want concrete shapes, and the EP
placement proof needs every node named. Each helper returns a copy; the input is not changed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import onnx

from .. import spec


@functools.cache
def function_model_bytes(beta: float, reduction: str, dtype: str, loss: str = "smooth_l1") -> bytes:
    """The grid's model (one node plus its function, inputs of unknown rank), serialised:
    cached, since every path builds it for every case. ``beta`` is the loss's parameter
    (HuberLoss's delta for ``loss="huber"``)."""
    from ..model import make_huber_model, make_model

    if spec.check_loss(loss) == "huber":
        model = make_huber_model(delta=beta, reduction=reduction, dtype=dtype)
    else:
        model = make_model(beta=beta, reduction=reduction, dtype=dtype)
    return model.SerializeToString()


def function_model(beta: float, reduction: str, dtype: str, loss: str = "smooth_l1") -> onnx.ModelProto:
    """A fresh copy of the grid's model for these attributes."""
    return onnx.ModelProto.FromString(function_model_bytes(beta, reduction, dtype, loss))


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def node_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without the loss FunctionProtos (SmoothL1Loss, HuberLoss):
    custom-op models."""
    out = copy(model)
    losses = {(spec.DOMAIN, t) for t in spec.LOSS_OP_TYPES}
    kept = [f for f in out.functions if (f.domain, f.name) not in losses]
    del out.functions[:]
    out.functions.extend(kept)
    return out


def loss_op_types(model: onnx.ModelProto) -> set[str]:
    """The loss op types (SmoothL1Loss, HuberLoss) of ``model``'s nodes, subgraphs included."""
    return {n.op_type for n in spec.walk_nodes(model.graph.node) if spec.is_loss_node(n)}


def has_loss_functions(model: onnx.ModelProto) -> bool:
    """Whether ``model`` carries a function for every loss op type its nodes use (the
    SmoothL1Loss function when it has no loss node)."""
    functions = {f.name for f in model.functions if f.domain == spec.DOMAIN}
    return (loss_op_types(model) or {spec.OP_TYPE}) <= functions


def has_smoothl1_function(model: onnx.ModelProto) -> bool:
    """Kept for callers of the SmoothL1-only name: see :func:`has_loss_functions`."""
    return has_loss_functions(model)


def has_loss_node(model: onnx.ModelProto) -> bool:
    return any(spec.is_loss_node(n) for n in spec.walk_nodes(model.graph.node))


def with_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself when it carries the functions of its loss nodes (or has no loss
    node), else a copy with them attached (a custom-op model run by a function-based path)."""
    if has_loss_functions(model) or not has_loss_node(model):
        return model
    from ..function import attach_function

    return attach_function(copy(model))


def _with_input_dims(
    model: onnx.ModelProto, dims: Mapping[str, Sequence[int | str]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose named graph inputs declare ``dims`` (int: fixed, str: symbolic)."""
    out = copy(model)
    for value in out.graph.input:
        if value.name not in dims:
            continue
        tensor = value.type.tensor_type
        tensor.ClearField("shape")
        tensor.shape.SetInParent()
        for d in dims[value.name]:
            if isinstance(d, str):
                tensor.shape.dim.add().dim_param = d
            else:
                tensor.shape.dim.add().dim_value = int(d)
    return out


def with_static_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs declare these concrete shapes.

    OpenVINO's CPU plugin rejects inputs of unknown rank and tract wants known shapes.
    """
    return _with_input_dims(model, shapes)


def with_ranks(model: onnx.ModelProto, ranks: Mapping[str, int]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs have these ranks, every dimension symbolic."""
    return _with_input_dims(model, {k: [f"{k}_d{i}" for i in range(r)] for k, r in ranks.items()})


def inline_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The model with the function inlined and the custom domain dropped, and which tool did it.

    Uses the project's ``onnx_smoothl1.inline.inline`` when it is importable, else
    ``onnx.inliner`` plus dropping the domain import.
    """
    try:
        from ..inline import inline
    except ImportError:
        import onnx.inliner

        out = onnx.inliner.inline_local_functions(with_function(copy(model)))
        keep = [o for o in out.opset_import if o.domain != spec.DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
        return out, "onnx.inliner (onnx_smoothl1.inline not available)"
    return inline(model, check=False), "onnx_smoothl1.inline.inline"


def specialise(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the inlined function's reduction probe and ``If`` nodes away.

    Each inlined copy of the body knows its node's ``reduction``, so the
    NegativeLogLikelihoodLoss probe is a constant and both ``If`` conditions are constants:
    onnxscript's optimizer folds them and keeps only the selected branch. tract needs this
    (it has no NegativeLogLikelihoodLoss, and it cannot type an ``If`` whose branches return
    different ranks).
    """
    import onnxscript.optimizer

    out = onnxscript.optimizer.optimize(model)
    return out if isinstance(out, onnx.ModelProto) else onnx.ModelProto.FromString(out)


def op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in spec.walk_nodes(model.graph.node)}


def custom_nodes(model: onnx.ModelProto) -> list[str]:
    """``domain::op_type`` of every graph node outside the standard domains: an inlined
    model must have none (that is what proves a runtime ran the inlined standard ops)."""
    return sorted({
        f"{n.domain}::{n.op_type}"
        for n in spec.walk_nodes(model.graph.node)
        if n.domain not in ("", "ai.onnx")
    })


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose unnamed nodes (graph, subgraphs, model-local functions) get
    unique names: the placement record and the profile name nodes by their names, and the
    function body's nodes have none."""
    out = copy(model)
    taken: set[str] = set()
    counter = [0]

    def nodes(container: Sequence[onnx.NodeProto], prefix: str) -> None:
        for node in container:
            if not node.name or node.name in taken:
                while True:
                    counter[0] += 1
                    name = f"{prefix}{node.op_type}_{counter[0]}"
                    if name not in taken:
                        break
                node.name = name
            taken.add(node.name)
            for attr in node.attribute:
                if attr.HasField("g"):
                    nodes(attr.g.node, prefix)
                for g in attr.graphs:
                    nodes(g.node, prefix)

    nodes(out.graph.node, "")
    for function in out.functions:
        nodes(function.node, f"{function.name}/")
    return out
