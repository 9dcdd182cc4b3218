"""The ``SmoothL1Loss`` node and the model-local FunctionProto that defines it.

Design (README, "The ONNX function"):

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
* **'none' in PyTorch's own CPU order**: ``d = |x - y|; d < beta ? (0.5 * d) * d / beta :
  d - 0.5 * beta``, so float32/float64 results are bitwise identical to
  ``torch.nn.functional.smooth_l1_loss``.
* **'mean' and 'sum' accurate from the graph's structure.** One plain float32 ``ReduceSum``
  is not enough (onnxruntime's is off by ~1e-3 at 2^24 elements). The elements are padded
  with zeros to a multiple of ``ROW`` and summed row by row; the partials are padded to a
  multiple of ``BLOCK**2``, viewed as ``[BLOCK, BLOCK, K]`` and reduced three times
  (:func:`_blocked_sum`). No accumulation runs over more than a few thousand values.
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import spec

#: Row length of the reduction tree's first level (the first padding unit).
ROW = 256
#: Fan-in of its two top levels (the partials are padded to a multiple of BLOCK**2).
BLOCK = 32

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

    def add(self, op: str, inputs: Sequence[str], output: str, **attrs: object) -> str:
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
        if self.t.cast_out == "like":
            op, inputs, attrs = "CastLike", [src, "input"], {}
        else:
            op, inputs, attrs = "Cast", [src], {"to": self.t.cast_out}
        self.nodes.append(_n(op, inputs, [dst], **attrs))
        return dst


def _with_ref(node: onnx.NodeProto, attr: str, ref: str, kind: int) -> onnx.NodeProto:
    """Bind ``node``'s attribute ``attr`` to the calling node's attribute ``ref``."""
    node.attribute.append(helper.make_attribute_ref(attr, kind))
    node.attribute[-1].ref_attr_name = ref
    return node


def _graph(name: str, nodes: Sequence[onnx.NodeProto], out: str) -> onnx.GraphProto:
    # The output's type is left to inference: it is the input's type, which a generic body
    # does not know.
    value = onnx.ValueInfoProto()
    value.name = out
    return helper.make_graph(list(nodes), name, [], [value])


def _pad_to(b: _Builder, flat: str, unit: int, tag: str) -> str:
    """1-D ``flat`` with zeros appended up to a multiple of ``unit`` (at least one zero)."""
    size = b.add("Shape", [flat], tag + "_size")
    # unit - (n mod unit), from 1 to unit: a whole unit of zeros when n is a multiple already
    # (harmless), in exchange for no negative operand anywhere (runtimes disagree on Mod of a
    # negative number, and tract's shape algebra breaks on (-n) mod unit).
    units = b.const(tag + "_unit", [unit], TensorProto.INT64)
    missing = b.add("Sub", [units, b.add("Mod", [size, units], tag + "_rem")], tag + "_missing")
    return b.add("Concat", [flat, b.zeros(missing, tag + "_zeros")], tag + "_padded", axis=0)


def _blocked_sum(b: _Builder, elem: str) -> str:
    """Sum of all elements of ``elem`` (any shape) as a [1] tensor, from the graph's structure.

    Level 1: pad to a multiple of ROW, sum each row of ROW contiguous elements (row errors are
    small and independent). Level 2: pad the partials to a multiple of BLOCK**2, view them as
    [BLOCK, BLOCK, K] and sum K (K = N / 2^18, so rows stay short up to 2^31 elements), then
    BLOCK, then BLOCK. Every accumulation runs over at most a few thousand values, which is
    what keeps float32 sums accurate (a plain float32 ReduceSum over 2^24 values is off by
    ~1e-3 in onnxruntime).
    """
    i64 = TensorProto.INT64
    flat = b.add("Reshape", [elem, b.const("flat_shape", [-1], i64)], "flat")
    # _pad_to's Shape of ``flat`` is named ``l1_size``: 'mean' divides by it.
    rows = b.add("Reshape", [_pad_to(b, flat, ROW, "l1"), b.const("row_shape", [-1, ROW], i64)],
                 "rows")
    partial = b.add("ReduceSum", [rows, b.const("axis1", [1], i64)], "partial", keepdims=0)
    blocks = b.add(
        "Reshape", [_pad_to(b, partial, BLOCK * BLOCK, "l2"),
                    b.const("block_shape", [BLOCK, BLOCK, -1], i64)], "blocks",
    )
    level2 = b.add("ReduceSum", [blocks, b.const("axis2", [2], i64)], "level2", keepdims=0)
    level3 = b.add("ReduceSum", [level2, b.const("axis1_", [1], i64)], "level3", keepdims=0)
    # keepdims=1 and no ``axes`` (every opset >= 13 then reduces all dimensions): a [1]
    # tensor, squeezed by the caller. OpenVINO's EP leaves a ReduceSum down to rank 0 on
    # the CPU provider but takes this form.
    return b.add("ReduceSum", [level3], "total", keepdims=1)


def _loss_nodes(typing: _Typing, prefix: str, out: str) -> list[onnx.NodeProto]:
    """The whole computation for one typing: element-wise loss, reduction switch, cast
    back; the result goes to ``out`` (a full name)."""
    b = _Builder(typing, prefix)
    if typing.cast_in:
        x = b.add("Cast", ["input"], "x", to=_FLOAT)
        y = b.add("Cast", ["target"], "y", to=_FLOAT)
    else:
        x, y = "input", "target"
    d = b.add("Abs", [b.add("Sub", [x, y], "diff")], "d")
    beta_f = b.name("beta_f")
    b.nodes.append(
        _with_ref(_n("Constant", [], [beta_f]), "value_float", "beta", onnx.AttributeProto.FLOAT)
    )
    beta = b.to_compute(beta_f, "beta")
    half = b.real("half", 0.5)
    # With beta == 0, d < beta is never true, so the (0/0 or x/0) quadratic branch is
    # computed but never selected: plain L1, as SPEC and torch define it.
    is_quad = b.add("Less", [d, beta], "is_quad")
    lin = b.add("Sub", [d, b.add("Mul", [half, beta], "half_beta")], "lin")

    # PyTorch's CPU order, (0.5 * d) * d / beta, op for op: bitwise identical results, the
    # overflow of (0.5 * d) * d included. (d * d) / (2 * beta) would save a pass but differs
    # where 2 * beta overflows (beta > FLT_MAX / 2).
    half_d2 = b.add("Mul", [b.add("Mul", [half, d], "half_d"), d], "half_d2")
    # Division by beta == 1 is exact, so for that (default) beta the body skips it, as
    # torch.onnx's own export does. The condition is a constant once beta is known:
    # onnxruntime folds this If at session creation and inline() folds it away.
    is_one = b.add("Equal", [beta_f, b.const("one", 1.0, _FLOAT)], "beta_is_one")
    ob = _Builder(typing, prefix + "over_beta_")
    quad = b.name("quad")
    b.nodes.append(
        _n("If", [is_one], [quad],
           then_branch=_graph("beta_one", [_n("Identity", [half_d2], [ob.name("same")])],
                              ob.name("same")),
           else_branch=_graph("beta_other", [_n("Div", [half_d2, beta], [ob.name("div")])],
                              ob.name("div")))
    )
    elem = b.add("Where", [is_quad, quad, lin], "elem")

    nb = _Builder(typing, prefix + "none_")
    none_out = nb.add("Identity", [elem], "out")
    rb = _Builder(typing, prefix + "red_")
    total = _blocked_sum(rb, elem)
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
    opset: int = 18, dtypes: str | Iterable[str] | None = "float32"
) -> onnx.FunctionProto:
    """Build the FunctionProto for ``onnx_smoothl1::SmoothL1Loss`` at default-domain ``opset``.

    ``dtypes``: the element type(s) the model's loss nodes take (names as in
    ``spec.DTYPES``); ``None`` means "any" (a body that serves every type, used when the
    types cannot be inferred). A single type gives the leanest, statically typed body; see
    the module docstring for mixes.
    """
    opset = spec.check_opset(opset)
    types = _type_codes(dtypes)
    typings = _typing_for(types, opset)
    if typings is not None:
        nodes = _loss_nodes(typings[0], "", "loss")
    else:
        # float64 next to float16/bfloat16: which body is told by a probe that needs no
        # arithmetic in the input's type (onnxruntime's CPU provider has none for bfloat16):
        # 2049 survives a round trip through float32/float64 but becomes 2048 in a half type.
        b = _Builder(_Typing(None, False, None), "type_")
        probe = b.const("probe", 2049, TensorProto.INT64)
        back = b.add("Cast", [b.add("CastLike", [probe, "input"], "probe_t")], "probe_back",
                     to=TensorProto.INT64)
        is_wide = b.add("Equal", [back, probe], "is_wide")
        wide_nodes = _loss_nodes(_Typing(None, False, None), "wide_", "wide_loss")
        half_nodes = _loss_nodes(_Typing(_FLOAT, True, "like"), "half_", "half_loss")
        nodes = b.nodes + [
            _n("If", [is_wide], ["loss"],
               then_branch=_graph("float32_or_float64", wide_nodes, "wide_loss"),
               else_branch=_graph("float16_or_bfloat16", half_nodes, "half_loss"))
        ]
    return helper.make_function(
        spec.DOMAIN,
        spec.OP_TYPE,
        ["input", "target"],
        ["loss"],
        nodes,
        [helper.make_opsetid("", opset)],
        attribute_protos=[
            helper.make_attribute("beta", spec.DEFAULT_BETA),
            helper.make_attribute("reduction", spec.DEFAULT_REDUCTION),
        ],
        doc_string=(
            "PyTorch smooth_l1_loss: d=|input-target|; 0.5*d^2/beta if d<beta else d-0.5*beta;"
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


def loss_input_types(model: onnx.ModelProto) -> set[str] | None:
    """The element types of ``model``'s SmoothL1Loss inputs (by shape inference), or None
    when any of them is unknown or not a float type of ``spec.DTYPES``."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot handle: type unknown
        return None
    known = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    }
    for init in inferred.graph.initializer:
        known[init.name] = init.data_type
    found: set[str] = set()
    by_code = {v: k for k, v in spec.DTYPES.items()}
    for node in spec.walk_nodes(model.graph.node):
        if spec.is_loss_node(node):
            for name in node.input:
                code = known.get(name)
                if code not in by_code:
                    return None
                found.add(by_code[code])
    return found


def attach_function(
    model: onnx.ModelProto, dtypes: str | Iterable[str] | None = None
) -> onnx.ModelProto:
    """Give ``model`` the function and the domain import its SmoothL1Loss nodes need (in place).

    The function's opset equals the model's default-domain opset, as ORT requires. Its body
    is specialised to ``dtypes`` (default: the loss inputs' types found by shape inference;
    a body for every type when they cannot be inferred). An existing copy of the function
    is replaced, so calling this twice is harmless.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError("model has no default-domain opset_import")
    if dtypes is None:
        found = loss_input_types(model)
        dtypes = sorted(found) if found else None
        if dtypes is None and opset < 15:
            raise ValueError(
                f"opset {opset} has no CastLike, so the function is specialised to one element "
                "type, and this model's SmoothL1Loss input types are not known; pass dtypes or "
                "use opset >= 15"
            )
    kept = [f for f in model.functions if (f.domain, f.name) != (spec.DOMAIN, spec.OP_TYPE)]
    del model.functions[:]
    model.functions.extend(kept + [make_function(opset, dtypes)])
    if not any(o.domain == spec.DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    return model
