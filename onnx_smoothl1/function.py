"""The ``SmoothL1Loss`` and ``HuberLoss`` nodes and the model-local FunctionProtos that
define them.

Design (README, "The ONNX function"). Both op types share one body builder: the typing, the
reduction switch, the blocked exact sum and the type dispatch below are the same code; each
loss only supplies its element-wise part (``_LOSSES``) and its FLOAT attribute (``beta`` /
``delta``), read by attribute reference. HuberLoss's element-wise part is one Where-free form
that is bitwise PyTorch's ``huber_loss`` (:func:`_huber_elem`); the rest of this docstring
describes SmoothL1Loss, and holds for HuberLoss with delta for beta.

* **One body for every node's beta and reduction.** ``beta`` reaches the body through an
  attribute reference (``Constant<value_float=@beta>``). ``reduction`` is a string, and no
  runtime can branch on a string portably (string ``Equal`` exists from opset 19 only and
  onnx.reference's breaks on strings of different lengths), so the body hands
  ``@reduction`` to the one standard op whose attribute has exactly our three values,
  ``NegativeLogLikelihoodLoss``, applied to a constant 2x1 probe: 2 elements for 'none',
  1.5 for 'mean', 3.0 for 'sum'. Two ``If`` nodes select the branch; their conditions are
  constants once the node's attributes are known, so onnxruntime folds them at session
  creation and :func:`onnx_smoothl1.inline` folds them away.
* **No float64 unless the model is float64** (SPEC, "Precision and portability"). float32
  computes in float32, float16/bfloat16 in float32 with one rounding at the end, float64 in
  float64. WebGPU, TensorRT, DirectML, QNN and OpenVINO have no float64 arithmetic.
* **'none' bitwise PyTorch's CPU result**: beta 1 (the default) is Huber's form
  ``s * (d - 0.5 * s)`` with ``s = min(d, 1)`` (no Where, :func:`_huber_elem`); other betas
  follow torch's order ``d = |x - y|; d < beta ? (0.5 * d) * d / beta : d - 0.5 * beta``.
  float32/float64 results are bitwise identical to ``torch.nn.functional.smooth_l1_loss``.
* **'mean' and 'sum' accurate from the graph's structure.** One plain float32 ``ReduceSum``
  is not enough (onnxruntime's is off by ~1e-3 at 2^24 elements). :func:`_blocked_sum` adds
  each 4 neighbours, then sums those in PARTS (1024) rows, then adds the 1024 row sums
  exactly (:func:`_exact_sum`, an error-free extraction) and rounds once. The reduced branch
  computes the elements without ``Where`` (:func:`_huber_half`, doubled after the sum, or
  :func:`_fast_elem` for other betas); the halved form keeps three full-size tensors alive at
  a time, not four.
* **Element types.** The body is specialised to the element types of the model's loss nodes
  (:func:`make_function`'s ``dtypes``): constants and casts are typed statically, so a
  float32 body has no ``Cast`` at all. A model that mixes types gets one body that serves
  all of them: float32 with float16/bfloat16 casts every input to float32 (a no-op for
  float32) and back with ``CastLike``; float32 with float64 computes in the input's own type
  (constants via ``CastLike``); half types with float64 dispatch on a type probe with one
  more ``If``. FunctionProto overloads would be the natural tool, but
  onnx.reference ignores them (it runs the wrong overload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import spec

#: Row length of the reduction tree's first level (the first padding unit).
ROW = 4
#: How many partial sums the top adds exactly (the second padding unit).
PARTS = 1024

_FLOAT = TensorProto.FLOAT
_DOUBLE = TensorProto.DOUBLE
_HALF = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16})
_n = helper.make_node


@dataclass(frozen=True)
class _Typing:
    """How one body handles element types.

    ``compute``: the arithmetic type (FLOAT / DOUBLE), or ``None`` for "the input's own
    type" (a float32 + float64 model). ``cast_in``: Cast both inputs to ``compute`` first.
    ``cast_out``: the type to Cast the result to, ``"like"`` for ``CastLike(·, input)``, or
    ``None`` when the result already has the input's type.
    """

    compute: int | None
    cast_in: bool
    cast_out: int | str | None


class _Builder:
    """Accumulates the nodes of one (sub)graph, with names prefixed so that sibling
    branches never collide."""

    def __init__(self, typing: _Typing, prefix: str = "") -> None:
        self.t = typing
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []

    def name(self, base: str) -> str:
        return self.prefix + base

    def add(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        out = self.name(output)
        self.nodes.append(_n(op, list(inputs), [out], **attrs))
        return out

    def const(self, base: str, value: float | int | list, dtype: int) -> str:
        array = np.array(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
        out = self.name(base)
        self.nodes.append(
            _n("Constant", [], [out], value=onnx.numpy_helper.from_array(array, out))
        )
        return out

    def real(self, base: str, value: float) -> str:
        """A scalar constant of the compute type."""
        if self.t.compute is not None:
            return self.const(base, value, self.t.compute)
        return self.add("CastLike", [self.const(base + "_f", value, _FLOAT), "input"], base)

    def to_compute(self, src: str, base: str) -> str:
        """``src`` (a float32 tensor) in the compute type."""
        if self.t.compute == _FLOAT:
            return src
        if self.t.compute == _DOUBLE:
            return self.add("Cast", [src], base, to=_DOUBLE)
        return self.add("CastLike", [src, "input"], base)

    def zeros(self, shape: str, base: str) -> str:
        value = onnx.numpy_helper.from_array(
            np.zeros(1, dtype=np.float64 if self.t.compute == _DOUBLE else np.float32)
        )
        zeros = self.add("ConstantOfShape", [shape], base + "_f" if self.t.compute is None else base,
                         value=value)
        return zeros if self.t.compute is not None else self.add("CastLike", [zeros, "input"], base)

    def cast_out(self, src: str, dst: str) -> str:
        """``src`` in the input's type, written to ``dst`` (a full name)."""
        attrs: dict[str, Any] = {}
        if self.t.cast_out == "like":
            op, inputs = "CastLike", [src, "input"]
        else:
            op, inputs, attrs["to"] = "Cast", [src], self.t.cast_out
        self.nodes.append(_n(op, inputs, [dst], **attrs))
        return dst


def _with_ref(node: onnx.NodeProto, attr: str, ref: str,
              kind: onnx.AttributeProto.AttributeType) -> onnx.NodeProto:
    """Bind ``node``'s attribute ``attr`` to the calling node's attribute ``ref``."""
    node.attribute.append(helper.make_attribute_ref(attr, kind))
    node.attribute[-1].ref_attr_name = ref
    return node


def _graph(name: str, nodes: Sequence[onnx.NodeProto], *outs: str) -> onnx.GraphProto:
    # The outputs' types are left to inference: the input's type, which a generic body does
    # not know.
    values = []
    for out in outs:
        value = onnx.ValueInfoProto()
        value.name = out
        values.append(value)
    return helper.make_graph(list(nodes), name, [], values)


def _pad_to(b: _Builder, flat: str, unit: int, tag: str) -> str:
    """1-D ``flat`` with zeros appended up to a multiple of ``unit`` (at least one zero)."""
    size = b.add("Shape", [flat], tag + "_size")
    # unit - (n mod unit), from 1 to unit: a whole unit of zeros when n is a multiple already
    # (harmless), in exchange for no negative operand anywhere (runtimes disagree on Mod of a
    # negative number, and tract's shape algebra breaks on (-n) mod unit).
    units = b.const(tag + "_unit", [unit], TensorProto.INT64)
    missing = b.add("Sub", [units, b.add("Mod", [size, units], tag + "_rem")], tag + "_missing")
    return b.add("Concat", [flat, b.zeros(missing, tag + "_zeros")], tag + "_padded", axis=0)


def _exact_sum(b: _Builder, parts: str) -> str:
    """Sum of the (few, non-negative) values of ``parts`` as a [1]-shaped tensor, rounded once.

    Error-free extraction (Rump, Ogita and Oishi's AccSum idea, one pass): with ``t`` the plain
    float sum and ``sigma = 2 t`` (at least every value), ``hi = (p + sigma) - sigma`` is exact
    (Sterbenz: ``p + sigma`` lies in [sigma, 2 sigma]) and a multiple of ulp(sigma), so the
    ``hi`` add up exactly in any order (their sum stays below 2^24 ulp(sigma)); ``lo = p - hi``
    is the rounding error of ``p + sigma``, exact and at most ulp(sigma) <= 2^-22 t each, so
    its plain sum is as good as exact: for the 1024 parts its error stays below 2^-26 of the
    total even if every rounding went the same way. The result is the sum rounded once, up to a
    fraction of an ulp. sigma need not be a power of two; one Add finds it (the earlier form,
    a power of two from ``(t 2^23 + t) - t 2^23``, took four nodes). Sums that are inf or NaN,
    or from 2^125 on (where ``p + sigma`` could overflow), take the plain sum: the right
    answer (inf, NaN) or as accurate as float32 allows there.
    """
    plain = b.add("ReduceSum", [parts], "plain", keepdims=1)
    sigma = b.add("Add", [plain, plain], "sigma")
    hi = b.add("Sub", [b.add("Add", [parts, sigma], "shifted"), sigma], "hi")
    lo = b.add("Sub", [parts, hi], "lo")
    exact = b.add("Add", [b.add("ReduceSum", [hi], "sum_hi", keepdims=1),
                          b.add("ReduceSum", [lo], "sum_lo", keepdims=1)], "exact")
    safe = b.add("Less", [sigma, b.real("limit", 2.0**126)], "safe")
    return b.add("Where", [safe, exact, plain], "total")


def _blocked_sum(b: _Builder, elem: str) -> str:
    """Sum of all elements of ``elem`` (any shape) as a [1] tensor, from the graph's structure.

    Pad to a multiple of PARTS * ROW and view as [PARTS, K, ROW] (K = N / (ROW * PARTS)).
    Level 1 adds each ROW neighbours; level 2 sums each of the PARTS rows of K partials: short
    sums whose rounding errors are independent and average out. Top: the PARTS row sums are
    added exactly and rounded once (:func:`_exact_sum`). Measured (README, "Accuracy of
    float32 sums"): within 1 ulp of the float64 sum or no worse than torch for 1..2^20
    elements, no worse than torch at 2^24 and 2^26, 5e-8 relative at 2^27. For up to PARTS
    * ROW elements only the ROW-neighbour additions round before the exact top.
    """
    i64 = TensorProto.INT64
    flat = b.add("Reshape", [elem, b.const("flat_shape", [-1], i64)], "flat")
    # One padding for both levels: to a multiple of PARTS * ROW, viewed as [PARTS, K, ROW].
    # _pad_to's Shape of ``flat`` is named ``l1_size``: 'mean' divides by it.
    blocks = b.add("Reshape", [_pad_to(b, flat, PARTS * ROW, "l1"),
                               b.const("block_shape", [PARTS, -1, ROW], i64)], "blocks")
    rows = b.add("ReduceSum", [blocks, b.const("axis2", [2], i64)], "rows", keepdims=0)
    parts = b.add("ReduceSum", [rows, b.const("axis1", [1], i64)], "parts", keepdims=0)
    # keepdims=1 in _exact_sum: a [1] tensor, squeezed by the caller. OpenVINO's EP leaves a
    # ReduceSum down to rank 0 on the CPU provider but takes this form.
    return _exact_sum(b, parts)


#: A ready-made branch: its nodes and the names of its results.
_Branch = tuple[list[onnx.NodeProto], tuple[str, ...]]


def _choose(b: _Builder, base: str, cond: str, then: _Branch, other: _Branch) -> tuple[str, ...]:
    """An ``If`` on a constant condition between two ready-made branches; its outputs are
    named ``base``, ``base_1``, ... (one per branch result)."""
    outs = tuple(b.name(base if i == 0 else f"{base}_{i}") for i in range(len(then[1])))
    branches = []
    for tag, (nodes, values) in (("then", then), ("else", other)):
        results = [f"{out}_{tag}" for out in outs]
        branches.append(_graph(f"{base}_{tag}", [
            *nodes, *(_n("Identity", [v], [r]) for v, r in zip(values, results, strict=True))
        ], *results))
    b.nodes.append(_n("If", [cond], list(outs), then_branch=branches[0], else_branch=branches[1]))
    return outs


def _torch_elem(b: _Builder, d: str, beta: str, half: str) -> str:
    """PyTorch's CPU order, op for op: ``d < beta ? (0.5 * d) * d / beta : d - 0.5 * beta``.

    Bitwise identical to ``torch.nn.functional.smooth_l1_loss``, the overflow of
    (0.5 * d) * d included ((d * d) / (2 * beta) would save a pass but differs where 2 * beta
    overflows). With beta == 0, d < beta is never true, so the (0/0 or x/0) quadratic part is
    computed but never selected. beta == 1 takes :func:`_huber_elem` instead (bitwise the
    same values, no Where and no Division).
    """
    is_quad = b.add("Less", [d, beta], "is_quad")
    lin = b.add("Sub", [d, b.add("Mul", [half, beta], "half_beta")], "lin")
    half_d2 = b.add("Mul", [b.add("Mul", [half, d], "half_d"), d], "half_d2")
    return b.add("Where", [is_quad, b.add("Div", [half_d2, beta], "div"), lin], "elem")


def _fast_elem(b: _Builder, d: str, beta: str, half: str) -> str:
    """The reduced branch's cheaper form, for beta in [2^-60, 2^60] other than 1: with
    s = min(d, beta), ``(d - s) + (0.5 * s) * s / beta``.

    For d < beta it is torch's quadratic value bitwise ((d - d) = 0); for d >= beta it is
    (d - beta) + 0.5 * beta, within one rounding of torch's d - 0.5 * beta. No Less/Where:
    onnxruntime's Where is the slowest op of the element-wise chain (~40 ms per 2^24
    elements here, as much as the other seven ops together). NaN propagates through d - s
    whatever Min does with a NaN, and (0.5 * s) * s cannot overflow in this beta range.
    """
    s = b.add("Min", [d, beta], "s")
    excess = b.add("Sub", [d, s], "excess")
    half_s2 = b.add("Mul", [b.add("Mul", [half, s], "half_s"), s], "half_s2")
    return b.add("Add", [excess, b.add("Div", [half_s2, beta], "div")], "elem")


def _huber_elem(b: _Builder, d: str, delta: str, half: str) -> str:
    """HuberLoss element-wise, bitwise PyTorch's CPU result without Less/Where: with
    s = min(d, delta), ``s * (d - 0.5 * s)``.

    PyTorch (aten/src/ATen/native/cpu/BinaryOpsKernel.cpp, ``huber_kernel``) computes
    ``d < delta ? (0.5 * d) * d : delta * (d - 0.5 * delta)``. For d >= delta this form *is*
    that expression op for op (s = delta). For d < delta it is ``d * (d - 0.5 * d)``: 0.5 * d
    is exact (d normal) and d - 0.5 * d = 0.5 * d exactly (Sterbenz), so it is one rounding of
    d * (0.5 * d), the same product as torch's; for a subnormal d both underflow to +0. NaN
    propagates whichever operand Min returns for it (NaN - x, delta * NaN), inf gives
    delta * inf = inf as torch does, and overflow happens exactly where torch's does. So
    'none' is bitwise torch's for float32/float64 (tests/test_huber_function.py checks that
    on edge values too), and the reduced branch needs no cheaper form: Where is the slowest
    op of onnxruntime's element-wise chain.
    """
    s, half_s, rest = _huber_terms(b, d, delta, half)
    return b.add("Mul", [s, rest], "elem")


def _huber_terms(b: _Builder, d: str, delta: str, half: str) -> tuple[str, str, str]:
    """``s = min(d, delta)``, ``0.5 * s`` and ``d - 0.5 * s``: the Huber element is
    ``s * rest`` ('none', :func:`_huber_elem`) or twice ``half_s * rest``
    (:func:`_huber_half`)."""
    s = b.add("Min", [d, delta], "s")
    half_s = b.add("Mul", [half, s], "half_s")
    return s, half_s, b.add("Sub", [d, half_s], "rest")


def _huber_half(b: _Builder, d: str, delta: str, half: str) -> str:
    """Half the Huber element, ``(0.5 * s) * (d - 0.5 * s)``, for the reduced branch, whose
    total is doubled (exactly) afterwards.

    The same four ops as :func:`_huber_elem` and the same values halved (0.5 * s is exact, so
    only results below 2^-125 round differently, by less than 2^-150 each), but ``s`` dies
    one op earlier: three full-size tensors are alive at once instead of four. Measured at
    2^27 float32 'mean' (benchmarks/cpu.py --memory): the peak over the inputs falls from
    2.00x to 1.50x the input bytes without onnxruntime's arena, 2.72x to 2.06x with it.
    """
    _, half_s, rest = _huber_terms(b, d, delta, half)
    return b.add("Mul", [half_s, rest], "half_elem")


@dataclass(frozen=True)
class _Elements:
    """A loss's element-wise part, as :func:`_loss_nodes` wires it in. Nodes the loss
    appended to the outer builder itself run before both branches.

    ``none_nodes``/``none_elem``: the 'none' branch's nodes and element tensor.
    ``red_nodes``/``red_elem``: the reduced branch's; ``red_scale``, when set, is a
    compute-type scalar made by ``red_nodes`` that the reduced total is multiplied by (2 for
    the halved Huber form, :func:`_huber_half`: an exact doubling)."""

    none_nodes: list[onnx.NodeProto]
    none_elem: str
    red_nodes: list[onnx.NodeProto]
    red_elem: str
    red_scale: str | None = None


#: An element form: (builder, d, the parameter in the compute type, 0.5) -> element tensor.
_ElemForm = Callable[[_Builder, str, str, str], str]


def _form(b: _Builder, tag: str, elem: _ElemForm, d: str, param: tuple[str, str],
          scale: float | None) -> _Branch:
    """One element form in a builder of its own (a branch of a constant If): ``param`` is the
    loss's FLOAT parameter (float32 tensor, base name) made into the compute type there, as
    is 0.5; with ``scale``, the branch also yields that constant (see :class:`_Elements`)."""
    fb = _Builder(b.t, b.prefix + tag)
    value = elem(fb, d, fb.to_compute(param[0], param[1]), fb.real("half", 0.5))
    return fb.nodes, (value,) if scale is None else (value, fb.real("scale", scale))


def _smooth_l1_elements(b: _Builder, d: str, beta_f: str) -> _Elements:
    """SmoothL1Loss: beta 1 (the default) is HuberLoss with delta 1, so it takes Huber's
    form: :func:`_huber_elem` for 'none' (PyTorch's values bitwise, four ops, no Where) and
    :func:`_huber_half` for the reduced branch. Other betas: torch's order for 'none',
    :func:`_fast_elem` for the reduced branch; beta 0 is ``d`` itself."""
    typing, prefix = b.t, b.prefix
    # beta in the compute type and 0.5 are made inside each branch that uses them: a Cast in
    # the outer graph read only by If branches makes onnxruntime warn at every session
    # creation when it folds that Cast ("Implicit input name ... cannot be safely updated").
    # Constant conditions on beta (onnxruntime folds these If nodes at session creation,
    # inline() folds them away): beta == 0 is plain L1 (torch calls l1_loss: d itself), beta
    # == 1 is Huber's form, and the reduced branch's cheaper form holds for beta in
    # [2^-60, 2^60].
    is_zero = b.add("Equal", [beta_f, b.const("zero", 0.0, _FLOAT)], "beta_is_zero")
    is_one = b.add("Equal", [beta_f, b.const("one", 1.0, _FLOAT)], "beta_is_one")
    moderate = b.add("And", [
        b.add("GreaterOrEqual", [beta_f, b.const("tiny", 2.0**-60, _FLOAT)], "beta_ge_tiny"),
        b.add("LessOrEqual", [beta_f, b.const("huge", 2.0**60, _FLOAT)], "beta_le_huge"),
    ], "beta_moderate")

    def form(tag: str, elem: _ElemForm, scale: float | None) -> _Branch:
        return _form(b, tag, elem, d, (beta_f, "beta"), scale)

    def l1(tag: str, scale: float | None) -> _Branch:
        """beta 0: ``d`` itself (and, for the reduced branch, the scale 1)."""
        if scale is None:
            return [], (d,)
        lb = _Builder(typing, prefix + tag)
        return lb.nodes, (d, lb.real("scale", scale))

    def branch(builder_tag: str, base: str, cond: str, then: _Branch, other: _Branch) -> _Branch:
        cb = _Builder(typing, prefix + builder_tag)
        return cb.nodes, _choose(cb, base, cond, then, other)

    # 'none': d | Huber's form (beta 1) | torch's order.
    none_b = _Builder(typing, prefix)
    (none_elem,) = _choose(none_b, "none_elem", is_zero, l1("none_l1_", None), branch(
        "none_", "by_beta", is_one, form("none_h_", _huber_elem, None),
        form("none_t_", _torch_elem, None)))
    # reduced: d | Huber's half form, doubled (beta 1) | the cheaper form | torch's order.
    general = branch("red_elem_", "general", moderate, form("red_f_", _fast_elem, 1.0),
                     form("red_t_", _torch_elem, 1.0))
    red_b = _Builder(typing, prefix)
    red_elem, red_scale = _choose(red_b, "red_elem", is_zero, l1("red_l1_", 1.0), branch(
        "red_", "by_beta", is_one, form("red_h_", _huber_half, 2.0), general))
    return _Elements(none_b.nodes, none_elem, red_b.nodes, red_elem, red_scale)


def _huber_elements(b: _Builder, d: str, delta_f: str) -> _Elements:
    """HuberLoss: Where-free and bitwise torch's for 'none' (:func:`_huber_elem`), halved
    and doubled back for the reduced branch (:func:`_huber_half`); no condition on delta
    (delta > 0 is validated)."""
    none_nodes, (none_elem,) = _form(b, "none_h_", _huber_elem, d, (delta_f, "delta"), None)
    red_nodes, (red_elem, scale) = _form(b, "red_h_", _huber_half, d, (delta_f, "delta"), 2.0)
    return _Elements(none_nodes, none_elem, red_nodes, red_elem, scale)


@dataclass(frozen=True)
class _Loss:
    """What one loss op type adds to the shared body (typing, reduction switch, blocked sum,
    type dispatch): its FLOAT parameter, its element-wise part and its doc string."""

    op_type: str
    param: str
    default: float
    elements: Callable[[_Builder, str, str], _Elements]
    formula: str


_LOSSES: dict[str, _Loss] = {
    spec.OP_TYPE: _Loss(
        spec.OP_TYPE, "beta", spec.DEFAULT_BETA, _smooth_l1_elements,
        "PyTorch smooth_l1_loss: d=|input-target|; 0.5*d^2/beta if d<beta else d-0.5*beta",
    ),
    spec.HUBER_OP_TYPE: _Loss(
        spec.HUBER_OP_TYPE, "delta", spec.DEFAULT_DELTA, _huber_elements,
        "PyTorch huber_loss: d=|input-target|; 0.5*d^2 if d<delta else delta*(d-0.5*delta)",
    ),
}


def _loss_for(op_type: object) -> _Loss:
    if not isinstance(op_type, str) or op_type not in _LOSSES:
        raise ValueError(
            f"op_type must be one of {', '.join(spec.LOSS_OP_TYPES)}; got {op_type!r}"
        )
    return _LOSSES[op_type]


def _loss_nodes(typing: _Typing, prefix: str, out: str,
                loss: _Loss | None = None) -> list[onnx.NodeProto]:
    """The whole computation for one typing: element-wise loss, reduction switch, cast
    back; the result goes to ``out`` (a full name). ``loss``: SmoothL1Loss by default."""
    loss = loss or _LOSSES[spec.OP_TYPE]
    b = _Builder(typing, prefix)
    if typing.cast_in:
        x = b.add("Cast", ["input"], "x", to=_FLOAT)
        y = b.add("Cast", ["target"], "y", to=_FLOAT)
    else:
        x, y = "input", "target"
    d = b.add("Abs", [b.add("Sub", [x, y], "diff")], "d")
    param_f = b.name(f"{loss.param}_f")
    b.nodes.append(
        _with_ref(_n("Constant", [], [param_f]), "value_float", loss.param,
                  onnx.AttributeProto.FLOAT)
    )
    parts = loss.elements(b, d, param_f)

    nb = _Builder(typing, prefix + "none_")
    nb.nodes.extend(parts.none_nodes)
    none_out = nb.add("Identity", [parts.none_elem], "out")
    rb = _Builder(typing, prefix + "red_")
    rb.nodes.extend(parts.red_nodes)
    total = _blocked_sum(rb, parts.red_elem)
    if parts.red_scale is not None:
        total = rb.add("Mul", [total, parts.red_scale], "scaled_total")
    sum_b = _Builder(typing, prefix + "sum_")
    sum_out = sum_b.add("Squeeze", [total], "out")
    mean_b = _Builder(typing, prefix + "mean_")
    # sum / count rather than ReduceMean: an empty input must give NaN (0/0), which
    # ReduceMean does not promise.
    # The count from the sum's own Shape node, not Size(d): a later reader of d would keep
    # that full-size tensor alive through the whole reduction.
    count_i = rb.name("l1_size")
    if typing.compute is None:
        count = mean_b.add("CastLike", [count_i, "input"], "count")
    else:
        count = mean_b.add("Cast", [count_i], "count", to=typing.compute)
    mean_out = mean_b.add("Squeeze", [mean_b.add("Div", [total, count], "mean_1")], "out")

    # Which reduction: see the module docstring.
    probe = b.add(
        "NegativeLogLikelihoodLoss",
        [b.const("probe_in", [[-1.0], [-2.0]], _FLOAT), b.const("probe_target", [0, 0],
                                                                  TensorProto.INT64)],
        "probe",
    )
    _with_ref(b.nodes[-1], "reduction", "reduction", onnx.AttributeProto.STRING)
    is_none = b.add("Equal", [b.add("Size", [probe], "probe_size"),
                              b.const("two", 2, TensorProto.INT64)], "is_none")
    is_sum = b.add("Greater", [b.add("ReduceSum", [probe], "probe_sum", keepdims=0),
                               b.const("two_and_half", 2.5, _FLOAT)], "is_sum")
    reduced_out = b.name("reduced_out")
    reduced = rb.nodes + [
        _n("If", [is_sum], [reduced_out],
           then_branch=_graph("sum", sum_b.nodes, sum_out),
           else_branch=_graph("mean", mean_b.nodes, mean_out))
    ]
    # The branches stay in the compute type and the result is cast once after them: If
    # takes bfloat16 outputs only from opset 16 on.
    result = out if typing.cast_out is None else b.name("result")
    b.nodes.append(
        _n("If", [is_none], [result],
           then_branch=_graph("none", nb.nodes, none_out),
           else_branch=_graph("reduced", reduced, reduced_out))
    )
    if typing.cast_out is not None:
        b.cast_out(result, out)
    return b.nodes


def _typing_for(types: frozenset[int], opset: int) -> list[_Typing] | None:
    """The typing of a body serving ``types`` (None: a half + float64 mix, see below)."""
    if len(types) == 1:
        (t,) = types
        compute = _DOUBLE if t == _DOUBLE else _FLOAT
        return [_Typing(compute, t in _HALF, t if t in _HALF else None)]
    if opset < 15:
        names = ", ".join(sorted(_name(t) for t in types))
        raise ValueError(
            f"opset {opset} has no CastLike, so one function body serves one element type; "
            f"this model mixes {names}: use opset >= 15"
        )
    if _DOUBLE not in types:
        return [_Typing(_FLOAT, True, "like")]
    if not types & _HALF:
        return [_Typing(None, False, None)]
    if opset < 16:
        raise ValueError(
            f"a model mixing float64 with float16/bfloat16 needs If with half-type outputs "
            f"(opset >= 16); got opset {opset}"
        )
    return None


def _name(elem_type: int) -> str:
    return next(k for k, v in spec.DTYPES.items() if v == elem_type)


def _type_codes(dtypes: str | Iterable[str] | None) -> frozenset[int]:
    if dtypes is None:
        return frozenset(spec.DTYPES.values())
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    codes = frozenset(spec.DTYPES[spec.check_dtype(d, name="dtypes")] for d in dtypes)
    if not codes:
        raise ValueError("dtypes must name at least one element type")
    return codes


def make_function(
    opset: int = 18, dtypes: str | Iterable[str] | None = "float32", *,
    op_type: str = spec.OP_TYPE,
) -> onnx.FunctionProto:
    """Build the FunctionProto for ``onnx_smoothl1::<op_type>`` at default-domain ``opset``.

    ``op_type``: ``SmoothL1Loss`` (default) or ``HuberLoss``; both share the typing, the
    reduction switch, the blocked sum and the type dispatch, and differ in the element-wise
    part only. ``dtypes``: the element type(s) the model's loss nodes take (names as in
    ``spec.DTYPES``); ``None`` means "any" (a body that serves every type, used when the
    types cannot be inferred). A single type gives the leanest, statically typed body; see
    the module docstring for mixes.
    """
    loss = _loss_for(op_type)
    opset = spec.check_opset(opset)
    types = _type_codes(dtypes)
    typings = _typing_for(types, opset)
    if typings is not None:
        nodes = _loss_nodes(typings[0], "", "loss", loss)
    else:
        # float64 next to float16/bfloat16: which body is told by a probe that needs no
        # arithmetic in the input's type (onnxruntime's CPU provider has none for bfloat16):
        # 2049 survives a round trip through float32/float64 but becomes 2048 in a half type.
        b = _Builder(_Typing(None, False, None), "type_")
        probe = b.const("probe", 2049, TensorProto.INT64)
        back = b.add("Cast", [b.add("CastLike", [probe, "input"], "probe_t")], "probe_back",
                     to=TensorProto.INT64)
        is_wide = b.add("Equal", [back, probe], "is_wide")
        wide_nodes = _loss_nodes(_Typing(None, False, None), "wide_", "wide_loss", loss)
        half_nodes = _loss_nodes(_Typing(_FLOAT, True, "like"), "half_", "half_loss", loss)
        nodes = b.nodes + [
            _n("If", [is_wide], ["loss"],
               then_branch=_graph("float32_or_float64", wide_nodes, "wide_loss"),
               else_branch=_graph("float16_or_bfloat16", half_nodes, "half_loss"))
        ]
    return helper.make_function(
        spec.DOMAIN,
        loss.op_type,
        ["input", "target"],
        ["loss"],
        nodes,
        [helper.make_opsetid("", opset)],
        attribute_protos=[
            helper.make_attribute(loss.param, loss.default),
            helper.make_attribute("reduction", spec.DEFAULT_REDUCTION),
        ],
        doc_string=(
            loss.formula + ";"
            " reduction none|mean|sum. Computed in float32 (float64 for float64 inputs), sums"
            " blocked; element types: " + ", ".join(sorted(_name(t) for t in types)) + "."
        ),
    )


def make_node(
    input: str,
    target: str,
    output: str,
    *,
    beta: float = spec.DEFAULT_BETA,
    reduction: str = spec.DEFAULT_REDUCTION,
    name: str | None = None,
) -> onnx.NodeProto:
    """A ``SmoothL1Loss`` node with both attributes written out.

    Both are always explicit because onnx.reference does not apply a function's
    ``attribute_proto`` defaults: a node relying on a default would fail there.
    """
    return helper.make_node(
        spec.OP_TYPE,
        [input, target],
        [output],
        name=name,
        domain=spec.DOMAIN,
        beta=spec.check_beta(beta),
        reduction=spec.check_reduction(reduction),
    )


def make_huber_node(
    input: str,
    target: str,
    output: str,
    *,
    delta: float = spec.DEFAULT_DELTA,
    reduction: str = spec.DEFAULT_REDUCTION,
    name: str | None = None,
) -> onnx.NodeProto:
    """A ``HuberLoss`` node with both attributes written out (see :func:`make_node` for why).

    Raises ``ValueError`` naming ``delta`` unless it is a finite float > 0, and naming
    ``reduction`` for anything but none/mean/sum.
    """
    return helper.make_node(
        spec.HUBER_OP_TYPE,
        [input, target],
        [output],
        name=name,
        domain=spec.DOMAIN,
        delta=spec.check_delta(delta),
        reduction=spec.check_reduction(reduction),
    )


def _loss_op_types(model: onnx.ModelProto) -> list[str]:
    """The loss op types ``model``'s graph (subgraphs included) uses, in ``LOSS_OP_TYPES``
    order."""
    used = {n.op_type for n in spec.walk_nodes(model.graph.node) if spec.is_loss_node(n)}
    return [t for t in spec.LOSS_OP_TYPES if t in used]


def loss_input_types(model: onnx.ModelProto, op_type: str | None = None) -> set[str] | None:
    """The element types of ``model``'s loss node inputs (by shape inference), or None when
    any of them is unknown or not a float type of ``spec.DTYPES``. ``op_type``: only the
    nodes of that loss op type (default: every loss node)."""
    if op_type is not None:
        _loss_for(op_type)

    def selected(node: onnx.NodeProto) -> bool:
        return spec.is_loss_node(node) and op_type in (None, node.op_type)

    def types_of(graph: onnx.GraphProto) -> dict[str, int]:
        known = {
            v.name: v.type.tensor_type.elem_type
            for v in [*graph.input, *graph.value_info, *graph.output]
            if v.type.tensor_type.elem_type
        }
        known.update({init.name: init.data_type for init in graph.initializer})
        return known

    known = types_of(model.graph)
    wanted = {n for node in spec.walk_nodes(model.graph.node) if selected(node) for n in node.input}
    if not wanted <= set(known):
        # Inference needs the domain imported (attach_function adds it after this call).
        work = onnx.ModelProto()
        work.CopyFrom(model)
        if not any(o.domain == spec.DOMAIN for o in work.opset_import):
            work.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
        try:
            known.update(types_of(onnx.shape_inference.infer_shapes(work).graph))
        except Exception:  # a model shape inference cannot handle: types stay unknown
            pass
    found: set[str] = set()
    by_code = {v: k for k, v in spec.DTYPES.items()}
    for node in spec.walk_nodes(model.graph.node):
        if selected(node):
            for name in node.input:
                code = known.get(name)
                if code not in by_code:
                    return None
                found.add(by_code[code])
    return found


def attach_function(
    model: onnx.ModelProto, dtypes: str | Iterable[str] | None = None
) -> onnx.ModelProto:
    """Give ``model`` the functions and the domain import its loss nodes need (in place).

    One FunctionProto per loss op type the graph uses (SmoothL1Loss and/or HuberLoss; a
    model with neither gets SmoothL1Loss's, as before HuberLoss existed). Each function's
    opset equals the model's default-domain opset, as ORT requires. Each body is
    specialised to ``dtypes`` (default: the input types of that op type's nodes, found by
    shape inference; a body for every type when they cannot be inferred). Existing copies
    of those functions are replaced, so calling this twice is harmless.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError("model has no default-domain opset_import")
    op_types = _loss_op_types(model) or [spec.OP_TYPE]
    functions = []
    for op_type in op_types:
        wanted: str | Iterable[str] | None = dtypes
        if wanted is None:
            found = loss_input_types(model, op_type)
            wanted = sorted(found) if found else None
            if wanted is None and opset < 15:
                raise ValueError(
                    f"opset {opset} has no CastLike, so the function is specialised to one "
                    f"element type, and this model's {op_type} input types are not known; pass "
                    "dtypes or use opset >= 15"
                )
        functions.append(make_function(opset, wanted, op_type=op_type))
    replaced = {(spec.DOMAIN, t) for t in op_types}
    kept = [f for f in model.functions if (f.domain, f.name) not in replaced]
    del model.functions[:]
    model.functions.extend(kept + functions)
    if not any(o.domain == spec.DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    return model
