"""Fuse the standard-op decompositions of smooth_l1 / huber / L1 into loss nodes.

``torch.onnx.export(..., dynamo=True)`` (torch 2.13) writes ``F.smooth_l1_loss`` as about
nine standard ops. ``fuse`` finds those subgraphs with onnxscript's pattern rewriter
(``RewriteRule`` / ``RewriteRuleSet``, commuted for ``Mul``) and replaces each with one
``onnx_smoothl1::SmoothL1Loss`` or ``onnx_smoothl1::HuberLoss`` node plus the model-local
function, so the result runs in every runtime that runs the original and uses the fused
kernel where it is registered.

Recognised element-wise cores, starting from an existing ``d = Abs(Sub(x, y))`` (a pattern
input, so losses sharing one ``d`` after torch's CSE fuse too; ``x``/``y`` may come from any
producer; see the end for the ``Cast``/``Expand`` torch writes around them):

* smooth_l1: ``Where(Less(d, b), Div(Mul(Pow(d, 2), 0.5), b), Sub(d, 0.5*b))``, or without
  the ``Div`` when torch's optimizer removed a division by ``b == 1``;
* huber: ``Where(Less(d, δ), Mul(Mul(d, 0.5), d), Mul(Sub(d, 0.5*δ), δ))``, or without the
  outer ``Mul`` when ``δ == 1``; replaced by one ``HuberLoss(delta=δ)`` node, torch's own
  formula (its function computes in float32, float64 only for float64 inputs, so a model
  that had no float64 gets none);
* L1 (torch's beta == 0 path): ``d``, or ``Cast(Abs(Cast(Sub(x, y))))`` as torch writes it
  for float16 - see ``l1`` below.

Each core is matched with every reduction torch emits: ``Squeeze(ReduceMean(·))``,
``ReduceMean(·, keepdims=0)``, ``ReduceSum(·, keepdims=0)``, ``Squeeze(ReduceSum(·))``,
reducing over all axes, and none. Constants must be scalars with the values above; a beta
or delta that float32 cannot hold exactly (the node stores a FLOAT attribute) is left
unfused, so fused outputs match the original within SPEC tolerance.

Around the fused node, :func:`onnx_smoothl1.simplify.simplify` then removes what the node
does itself: the ``Cast`` to float32 and back that torch writes around a float16/bfloat16
loss, and an ``Expand`` of an input (``broadcast_tensors``) where that is safe - its output
feeds only the loss, and the broadcast of the loss's inputs keeps the shape it had (an
Expand to a larger shape than the broadcast changes what 'mean'/'sum' add up, so it stays).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np
import onnx

from . import recognize, spec
from .simplify import simplify

L1Mode = Literal["reduced", "all", "off"]
_FLOATS = ("FLOAT16", "BFLOAT16", "FLOAT", "DOUBLE")


class FuseResult(NamedTuple):
    """What ``fuse`` returns: the fused model and how many losses it replaced.

    A ``NamedTuple``, so ``model, count = fuse(m)`` works as well as ``fuse(m).model``.
    """

    model: onnx.ModelProto
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the public name


# --- constants ---------------------------------------------------------------------------


def _scalar(value) -> float | None:
    """The float of a scalar (one-element) constant, or None if ``value`` is not one."""
    from onnxscript import ir

    if value is None or value.is_graph_input():
        return None
    producer = value.producer()
    if producer is not None and producer.op_type in ("Cast", "Identity") and producer.domain == "":
        # torch without its optimizer writes Cast(Constant) for float64 constants.
        inner = _scalar(producer.inputs[0])
        if inner is None or value.dtype is None or value.dtype.name not in _FLOATS:
            return None
        return float(np.asarray(inner, dtype=value.dtype.numpy()).reshape(()))
    tensor = ir.convenience.get_const_tensor(value)
    if tensor is None:
        return None
    try:
        array = tensor.numpy()
    except Exception:  # external data that is not at hand
        return None
    if array.size != 1 or array.dtype.kind != "f":
        return None
    return float(array.reshape(()))


def _near(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)


def _exact_f32(beta: float) -> bool:
    return float(np.float32(beta)) == beta


# --- element-wise cores: (pattern builder, parameter check) ---------------------------------
# A core starts from ``d``, a pattern *input* bound to an existing ``Abs(Sub(x, y))``: torch's
# optimizer merges common subexpressions, so two losses of the same x, y share one ``d``,
# and an intermediate value used outside a match would block the rewrite. ``x``/``y`` are
# read from d's producers (``_difference``); the shared Sub/Abs disappear with their last
# consumer. Each check returns ``(op_type, parameter)`` - the loss node and its beta/delta -
# or None when the constants do not fit.


def _difference(d) -> tuple[object, object] | None:
    """``(x, y)`` if ``d`` is ``Abs(Sub(x, y))`` (main domain), else None."""
    node = d.producer() if d is not None else None
    if node is None or node.op_type != "Abs" or node.domain != "":
        return None
    sub = node.inputs[0].producer() if node.inputs[0] is not None else None
    if sub is None or sub.op_type != "Sub" or sub.domain != "" or len(sub.inputs) != 2:
        return None
    return sub.inputs[0], sub.inputs[1]


def _difference_cast(d) -> tuple[object, object] | None:
    """``(x, y)`` if ``d`` is ``Abs(Cast(Sub(x, y)))`` to a float type at least as wide."""
    node = d.producer() if d is not None else None
    if node is None or node.op_type != "Abs" or node.domain != "":
        return None
    cast = node.inputs[0].producer() if node.inputs[0] is not None else None
    if cast is None or cast.op_type != "Cast" or cast.domain != "":
        return None
    sub = cast.inputs[0].producer() if cast.inputs[0] is not None else None
    if sub is None or sub.op_type != "Sub" or sub.domain != "" or len(sub.inputs) != 2:
        return None
    up, x = cast.outputs[0].dtype, sub.inputs[0].dtype
    if up is None or x is None or up.name not in _FLOATS or up.itemsize < x.itemsize:
        return None
    return sub.inputs[0], sub.inputs[1]


def _sl1_div(op, d, b1, two, half, b2, hb):
    return op.Where(op.Less(d, b1), op.Div(op.Mul(op.Pow(d, two), half), b2), op.Sub(d, hb))


def _check_sl1_div(b1, two, half, b2, hb, **_):
    beta = _scalar(b1)
    if beta is None or beta <= 0 or _scalar(b2) != beta:
        return None
    if not (_near(_scalar(two), 2.0) and _near(_scalar(half), 0.5) and _near(_scalar(hb), beta / 2)):
        return None
    return spec.OP_TYPE, beta


def _sl1_nodiv(op, d, b1, two, half, hb):
    return op.Where(op.Less(d, b1), op.Mul(op.Pow(d, two), half), op.Sub(d, hb))


def _check_sl1_nodiv(b1, two, half, hb, **_):
    if _scalar(b1) != 1.0:  # 0.5 * d**2 without a division is smooth_l1 only for beta 1
        return None
    if not (_near(_scalar(two), 2.0) and _near(_scalar(half), 0.5) and _near(_scalar(hb), 0.5)):
        return None
    return spec.OP_TYPE, 1.0


def _huber_mul(op, d, d1, half, hd, d2):
    return op.Where(op.Less(d, d1), op.Mul(op.Mul(d, half), d), op.Mul(op.Sub(d, hd), d2))


def _check_huber_mul(d1, half, hd, d2, **_):
    delta = _scalar(d1)
    if delta is None or delta <= 0 or _scalar(d2) != delta:
        return None
    if not (_near(_scalar(half), 0.5) and _near(_scalar(hd), delta / 2)):
        return None
    return spec.HUBER_OP_TYPE, delta


def _huber_nomul(op, d, d1, half, hd):
    return op.Where(op.Less(d, d1), op.Mul(op.Mul(d, half), d), op.Sub(d, hd))


def _check_huber_nomul(d1, half, hd, **_):
    if _scalar(d1) != 1.0 or not (_near(_scalar(half), 0.5) and _near(_scalar(hd), 0.5)):
        return None
    return spec.HUBER_OP_TYPE, 1.0  # torch's huber order, (0.5 * d) * d: HuberLoss(delta=1)


def _l1(op, d):
    return d  # only used under a reduction (a bare d is handled by _L1_BARE)


def _check_l1(**_):
    return spec.OP_TYPE, 0.0


def _l1_cast(op, d):
    # torch's float16 L1: Sub in float16, Abs in float32, Cast back (exact either way).
    return op.Cast(d, _outputs=["down"])


def _check_l1_cast(down, x, **_):
    if x.dtype is None or down.dtype != x.dtype:
        return None
    return spec.OP_TYPE, 0.0


#: name -> (pattern, check, how d was formed)
_CORES: dict[str, tuple[Callable, Callable, Callable]] = {
    "smooth_l1": (_sl1_div, _check_sl1_div, _difference),
    "smooth_l1_beta1": (_sl1_nodiv, _check_sl1_nodiv, _difference),
    "huber": (_huber_mul, _check_huber_mul, _difference),
    "huber_delta1": (_huber_nomul, _check_huber_nomul, _difference),
    "l1": (_l1, _check_l1, _difference),
    "l1_cast": (_l1_cast, _check_l1_cast, _difference_cast),
}


# --- reductions around a core -------------------------------------------------------------


def _mean_squeeze(op, v):
    return op.Squeeze(op.ReduceMean(v, _allow_other_attributes=True))


def _mean(op, v):
    return op.ReduceMean(v, _allow_other_attributes=True)


def _sum(op, v):
    return op.ReduceSum(v, _allow_other_attributes=True)


def _sum_squeeze(op, v):
    return op.Squeeze(op.ReduceSum(v, _allow_other_attributes=True))


def _none(op, v):
    return v


#: name -> (wrapper, reduction, keepdims the Reduce node must have)
_REDUCTIONS: dict[str, tuple[Callable, str, int | None]] = {
    "mean_squeeze": (_mean_squeeze, "mean", 1),
    "mean": (_mean, "mean", 0),
    "sum": (_sum, "sum", 0),
    "sum_squeeze": (_sum_squeeze, "sum", 1),
    "none": (_none, "none", None),
}


def _reduction_nodes_ok(nodes, keepdims: int | None) -> bool:
    """Reduce over all axes (no axes input/attribute), with the expected keepdims."""
    for node in nodes:
        if node.op_type in ("ReduceMean", "ReduceSum"):
            attrs = node.attributes
            if len(node.inputs) != 1 or "axes" in attrs:
                return False
            if attrs.get_int("noop_with_empty_axes", 0) != 0:
                return False
            if attrs.get_int("keepdims", 1) != keepdims:
                return False
        elif node.op_type == "Squeeze" and node.domain == "" and len(node.inputs) != 1:
            return False
    return True


def _dtypes_ok(x, y) -> bool:
    if x.dtype is None or y.dtype is None or x.dtype != y.dtype:
        return False
    return x.dtype.name in _FLOATS


def _replacement(op, x, y, op_type: str, value: float, reduction: str):
    """One loss node on ``x``, ``y`` (their own element type: the node computes half types in
    float32 and float64 only for float64, so nothing is cast here)."""
    kw = {spec.LOSS_PARAMS[op_type]: float(value), "reduction": reduction, "_domain": spec.DOMAIN}
    return getattr(op, op_type)(x, y, **kw)


def _make_rule(core_name: str, red_name: str):
    from onnxscript.rewriter import pattern

    core, check_params, difference = _CORES[core_name]
    wrap, reduction, keepdims = _REDUCTIONS[red_name]

    def target(op, *args):
        return wrap(op, core(op, *args))

    # The pattern variables are the core's parameters.
    target.__signature__ = inspect.signature(core)  # type: ignore[attr-defined]

    def params(bindings):
        xy = difference(bindings["d"])
        if xy is None or not _dtypes_ok(*xy):
            return None
        got = check_params(x=xy[0], y=xy[1], **bindings)
        if got is None:
            return None
        op_type, value = got
        # The node stores beta/delta as a FLOAT attribute; a value float32 cannot hold would
        # change the results, so such a loss is left as it is.
        if not _exact_f32(value):
            return None
        return xy, op_type, value

    def condition(context, **bindings):
        if not _reduction_nodes_ok(context.nodes, keepdims):
            return False
        return params(bindings) is not None

    def replacement(op, **bindings):
        (x, y), op_type, value = params(bindings)
        return _replacement(op, x, y, op_type, value, reduction)

    return pattern.RewriteRule(target, replacement, condition, name=f"fuse_{core_name}_{red_name}")


def _bare_l1_rules():
    """``|x - y|`` with no reduction (``l1="all"``), plain and float16-style with Casts."""
    from onnxscript.rewriter import pattern

    def plain(op, x, y):
        return op.Abs(op.Sub(x, y))

    def cast(op, x, y):
        return op.Cast(op.Abs(op.Cast(op.Sub(x, y), _outputs=["up"])), _outputs=["down"])

    def ok_plain(context, x, y, **_):
        return _dtypes_ok(x, y)

    def ok_cast(context, x, y, up, down, **_):
        if not _dtypes_ok(x, y) or down.dtype != x.dtype or up.dtype is None:
            return False
        return up.dtype.name in _FLOATS and up.dtype.itemsize >= x.dtype.itemsize

    def replace(op, x, y, **_):
        return _replacement(op, x, y, spec.OP_TYPE, 0.0, "none")

    return [
        pattern.RewriteRule(cast, replace, ok_cast, name="fuse_l1_cast_none"),
        pattern.RewriteRule(plain, replace, ok_plain, name="fuse_l1_none"),
    ]


def _rule_sets(l1: L1Mode):
    """Passes: losses with a reduction first, then the element-wise ('none') ones, bare L1 last.

    The rewriter visits nodes in graph order, so a single pass would fuse the ``Where`` as
    'none' before it ever saw the ``ReduceMean`` that follows it (and ``Abs(Sub)`` as L1
    before the smooth_l1 ``Where`` built on it).
    """
    from onnxscript.rewriter import pattern

    cores = [c for c in _CORES if not c.startswith("l1") or l1 != "off"]
    reduced = [_make_rule(c, r) for c in cores for r in _REDUCTIONS if r != "none"]
    sets = [reduced, [_make_rule(c, "none") for c in cores if not c.startswith("l1")]]
    if l1 == "all":
        # Last: |x - y| is also the first step of the smooth_l1 / huber cores.
        sets.append(_bare_l1_rules())
    return [pattern.RewriteRuleSet(rules, commute=True) for rules in sets]


def _with_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, with element types inferred where the graph does not declare them.

    The rules check that both loss inputs are the same float type; torch.onnx's legacy
    exporter (dynamo=False) writes no value_info, so without inference every legacy match
    was refused. ONNX shape inference (non-strict: unknown ops stay untyped) fills them in; a
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
    """Replace torch.onnx's smooth_l1 / L1 decompositions by SmoothL1Loss nodes and its huber
    decompositions by HuberLoss nodes, without the Cast/Expand around them where safe.

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
    count = 0
    for rules in _rule_sets(l1):
        count += rules.apply_to_model(ir_model)
        # The |x - y| a fused core started from is dead now unless something else reads
        # it; drop it before the next pass could match it again.
        RemoveUnusedNodesPass()(ir_model)
    # What torch's own decompositions did not cover: hand-written forms, by probing.
    count += recognize.replace(ir_model.graph, recognize.find(ir_model.graph, l1=l1))
    if count == 0:
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
