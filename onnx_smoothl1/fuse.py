"""Fuse smooth_l1 / huber / L1 losses written as standard ops into loss nodes.

``torch.onnx.export`` (torch 2.13) writes ``F.smooth_l1_loss`` as about nine standard ops
(``dynamo=True``), and hand-written losses (detection and RL code, Keras ports) come out as
whatever ops their authors wrote. ``fuse`` finds both kinds with
:mod:`onnx_smoothl1.recognize` - element-wise subgraphs of one difference ``a - b``, proven
equal to ``c·SmoothL1(β)`` / ``c·Huber(δ)`` / ``c·L1`` on probe values before anything is
replaced - and puts one ``onnx_smoothl1::SmoothL1Loss`` or ``onnx_smoothl1::HuberLoss`` node
(plus the model-local function) in place of each, so the result runs in every runtime that
runs the original and uses the fused kernel where it is registered.

Recognition by meaning replaced an earlier set of onnxscript rewrite rules (one pattern per
torch decomposition and reduction): the patterns found none of the hand-written spellings,
and trying 88 rules on every node took 13 s on a 10,000-node model without any loss.

Around a fused node, :func:`onnx_smoothl1.simplify.simplify` then removes what the node does
itself: the ``Cast`` to float32 and back that torch writes around a float16/bfloat16 loss,
and an ``Expand`` of an input (``broadcast_tensors``) where that is safe - its output feeds
only the loss, and the broadcast of the loss's inputs keeps the shape it had (an Expand to a
larger shape than the broadcast changes what 'mean'/'sum' add up, so it stays).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import onnx

from . import recognize
from .simplify import simplify

L1Mode = Literal["reduced", "all", "off"]


class FuseResult(NamedTuple):
    """What ``fuse`` returns: the fused model and how many losses it replaced.

    A ``NamedTuple``, so ``model, count = fuse(m)`` works as well as ``fuse(m).model``.
    """

    model: onnx.ModelProto
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the public name


def _with_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, with element types inferred where the graph does not declare them.

    Recognition needs both loss inputs' element type (it probes in that type); torch.onnx's
    legacy exporter (dynamo=False) writes no value_info, so without inference every legacy
    loss was refused. ONNX shape inference (non-strict: unknown ops stay untyped) fills them in; a
    model it cannot infer is matched as it is."""
    typed = {v.name for v in (*model.graph.input, *model.graph.value_info, *model.graph.output)}
    typed |= {t.name for t in model.graph.initializer}
    if all(o in typed for n in model.graph.node for o in n.output if o):
        return model
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is a help, never a requirement
        return model


def fuse(model: onnx.ModelProto, *, l1: L1Mode = "reduced") -> FuseResult:
    """Replace smooth_l1 / L1 losses written as standard ops (torch.onnx's decompositions and
    hand-written forms, :mod:`onnx_smoothl1.recognize`) by SmoothL1Loss nodes and huber ones
    by HuberLoss nodes, without the Cast/Expand around them where safe.

    Returns ``FuseResult(model, count)``: a new model (the argument is not modified) with
    the node(s) plus the model-local functions, and how many losses were fused.

    ``l1`` controls the beta-0 (plain L1) case, whose pattern ``|x - y|`` also occurs in
    models that are not computing a loss: ``"reduced"`` (default) fuses it only when a full
    mean/sum reduction follows (unmistakably ``l1_loss``), ``"all"`` also fuses a bare
    ``Abs(Sub(x, y))`` (bit-identical results: the node computes in float32, float64 for
    float64, and rounds once to a half type; float32's 24-bit significand is at least
    2p + 2 for a half type's p, so that equals the half type's own correctly rounded Sub),
    ``"off"`` never fuses L1.
    """
    from onnx_ir.passes.common import RemoveUnusedNodesPass, RemoveUnusedOpsetsPass
    from onnxscript import ir

    from .exporter import count_loss_nodes, finish

    if not isinstance(model, onnx.ModelProto):
        raise ValueError(f"model must be an onnx.ModelProto; got {type(model).__name__}")
    if l1 not in ("reduced", "all", "off"):
        raise ValueError(f"l1 must be 'reduced', 'all' or 'off'; got {l1!r}")
    ir_model = ir.serde.deserialize_model(_with_types(model))
    count = recognize.replace(ir_model.graph, recognize.find(ir_model.graph, l1=l1))
    # A 'none' loss node (one just made, or torch's F.l1_loss(reduction='none')) summed or
    # averaged over everything right after: the node's own reduction.
    folded = recognize.replace(ir_model.graph, recognize.foldable(ir_model.graph))
    if count == 0 and folded == 0:
        # Nothing to fuse; loss nodes already there may still have an Expand/Cast to lose.
        out = onnx.ModelProto()
        out.CopyFrom(model)
        if count_loss_nodes(out) and any(simplify(out).values()):
            finish(out, "function")
        return FuseResult(out, 0)
    RemoveUnusedNodesPass()(ir_model)
    RemoveUnusedOpsetsPass()(ir_model)
    out = ir.serde.serialize_model(ir_model)
    simplify(out)
    finish(out, "function")
    return FuseResult(out, count)
