"""The ``SmoothL1Loss`` node and the model-local FunctionProto that defines it.

Design (README, "How the function picks the reduction"): one function serves every node in a
model, whatever its ``beta`` and ``reduction``. ``beta`` reaches the body through an
attribute reference (``Constant<value_float=@beta>``). ``reduction`` is a string, and neither
runtime can branch on a string portably: ``Equal`` on strings only exists from opset 19 and
onnx.reference's string ``Equal`` breaks on strings of different lengths. So the body hands
``@reduction`` to the one standard op whose attribute has exactly our three values,
``NegativeLogLikelihoodLoss``, applied to a constant 2x1 probe. The probe's output has 2
elements for 'none' and is 1.5 for 'mean', 3.0 for 'sum'; two ``If`` nodes select the branch.

Arithmetic is done in float64 for every input type and cast back once at the end: float16
and bfloat16 then accumulate in (more than) float32 as SPEC requires, float32 sums are as
accurate as the float64 reference, and the body needs no per-type variants. ``CastLike``
(opset 15+) casts back to the input's own type; for opset 13-14, which lack it, the function
is specialised to one element type (``dtype``).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper

from . import spec

_DOUBLE = TensorProto.DOUBLE


def _const(name: str, value: float | int | list, dtype: int) -> onnx.NodeProto:
    """A ``Constant`` node holding a (scalar or nested-list) tensor."""
    import numpy as np

    array = np.array(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
    return helper.make_node(
        "Constant", [], [name], value=onnx.numpy_helper.from_array(array, name)
    )


def _with_ref(node: onnx.NodeProto, attr: str, ref: str, kind: int) -> onnx.NodeProto:
    """Bind ``node``'s attribute ``attr`` to the calling node's attribute ``ref``."""
    node.attribute.append(helper.make_attribute_ref(attr, kind))
    node.attribute[-1].ref_attr_name = ref
    return node


def _cast_back(src: str, dst: str, dtype: str | None, opset: int) -> onnx.NodeProto:
    if opset >= 15:
        return helper.make_node("CastLike", [src, "input"], [dst])
    if dtype is None:
        raise ValueError(
            f"opset {opset} has no CastLike, so the function must be specialised: pass dtype "
            f"(one of {', '.join(spec.DTYPES)})"
        )
    return helper.make_node("Cast", [src], [dst], to=spec.DTYPES[spec.check_dtype(dtype)])


def _reduce_all(op: str, src: str, dst: str) -> onnx.NodeProto:
    # No ``axes`` at all: every opset >= 13 then reduces over all dimensions, and rank-0
    # inputs stay rank 0.
    return helper.make_node(op, [src], [dst], keepdims=0)


def _branch(name: str, nodes: Sequence[onnx.NodeProto], out: str) -> onnx.GraphProto:
    return helper.make_graph(
        list(nodes), name, [], [helper.make_tensor_value_info(out, _DOUBLE, None)]
    )


def make_function(opset: int = 18, dtype: str | None = None) -> onnx.FunctionProto:
    """Build the FunctionProto for ``onnx_smoothl1::SmoothL1Loss`` at default-domain ``opset``.

    ``dtype`` is only needed (and only used) for opset 13-14, see the module docstring.
    """
    opset = spec.check_opset(opset)
    n = helper.make_node
    nodes = [
        n("Cast", ["input"], ["x"], to=_DOUBLE),
        n("Cast", ["target"], ["y"], to=_DOUBLE),
        n("Sub", ["x", "y"], ["diff"]),
        n("Abs", ["diff"], ["d"]),
        _with_ref(n("Constant", [], ["beta_f"]), "value_float", "beta", onnx.AttributeProto.FLOAT),
        n("Cast", ["beta_f"], ["beta"], to=_DOUBLE),
        _const("half", 0.5, _DOUBLE),
        # 0.5 * d * d / beta where d < beta, else d - 0.5 * beta. With beta == 0, d < beta is
        # never true, so the (0/0 or x/0) quadratic branch is computed but never selected.
        n("Less", ["d", "beta"], ["is_quad"]),
        n("Mul", ["half", "d"], ["half_d"]),
        n("Mul", ["half_d", "d"], ["half_d2"]),
        n("Div", ["half_d2", "beta"], ["quad"]),
        n("Mul", ["half", "beta"], ["half_beta"]),
        n("Sub", ["d", "half_beta"], ["lin"]),
        n("Where", ["is_quad", "quad", "lin"], ["elem"]),
        # Which reduction: see module docstring.
        _const("probe_in", [[-1.0], [-2.0]], TensorProto.FLOAT),
        _const("probe_target", [0, 0], TensorProto.INT64),
        _with_ref(
            n("NegativeLogLikelihoodLoss", ["probe_in", "probe_target"], ["probe"]),
            "reduction",
            "reduction",
            onnx.AttributeProto.STRING,
        ),
        n("Size", ["probe"], ["probe_size"]),
        _const("two", 2, TensorProto.INT64),
        n("Equal", ["probe_size", "two"], ["is_none"]),
        n("ReduceSum", ["probe"], ["probe_sum"], keepdims=0),
        _const("two_and_half", 2.5, TensorProto.FLOAT),
        n("Greater", ["probe_sum", "two_and_half"], ["is_sum"]),
        n(
            "If",
            ["is_none"],
            ["loss_d"],
            then_branch=_branch("none", [n("Identity", ["elem"], ["none_out"])], "none_out"),
            else_branch=_branch(
                "reduced",
                [
                    n(
                        "If",
                        ["is_sum"],
                        ["reduced_out"],
                        then_branch=_branch(
                            "sum", [_reduce_all("ReduceSum", "elem", "sum_out")], "sum_out"
                        ),
                        else_branch=_branch(
                            "mean",
                            [
                                # sum / count rather than ReduceMean: an empty input must give
                                # NaN (0/0), which ReduceMean does not promise.
                                _reduce_all("ReduceSum", "elem", "total"),
                                n("Size", ["elem"], ["count_i"]),
                                n("Cast", ["count_i"], ["count"], to=_DOUBLE),
                                n("Div", ["total", "count"], ["mean_out"]),
                            ],
                            "mean_out",
                        ),
                    )
                ],
                "reduced_out",
            ),
        ),
        _cast_back("loss_d", "loss", dtype, opset),
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
            " reduction none|mean|sum. Computed in float64, cast back to the input type."
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


def attach_function(model: onnx.ModelProto, dtype: str | None = None) -> onnx.ModelProto:
    """Give ``model`` the function and the domain import its SmoothL1Loss nodes need (in place).

    The function's opset equals the model's default-domain opset, as ORT requires. An
    existing copy of the function is replaced, so calling this twice is harmless.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError("model has no default-domain opset_import")
    kept = [f for f in model.functions if (f.domain, f.name) != (spec.DOMAIN, spec.OP_TYPE)]
    del model.functions[:]
    model.functions.extend(kept + [make_function(opset, dtype)])
    if not any(o.domain == spec.DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    return model
