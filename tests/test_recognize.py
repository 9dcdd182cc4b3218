"""onnx_smoothl1.recognize: the proof behind ``fuse``, on graphs built op by op.

tests/test_fuse_corpus.py runs the real libraries' formulas through torch's exporters; this
file pins the recognizer's own rules on hand-built ONNX graphs, where every op, type and
constant is chosen: what the probes must reject (a formula that differs only at tiny or huge
``d``, at one threshold, or for NaN), what stays outside a node (a tensor weight, a partial
or keepdims reduction, a graph output read by others), the scale ``c``, half types,
float64 parameters float32 cannot hold, and names and shapes kept. Each fused model is run
in onnxruntime (function path) against numpy on inputs that cover both branches.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import onnx_smoothl1 as sl1
from onnx_smoothl1 import recognize, spec

NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16}


class G:
    """A tiny graph builder: ``g.op("Mul", a, 0.5)`` adds a node (numbers become scalar
    initializers of the model's float type) and returns its output name."""

    def __init__(self, dtype: int = TensorProto.FLOAT, shape=(4, 3)):
        self.dtype, self.shape = dtype, list(shape)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value, dtype=None) -> str:
        self.count += 1
        name = f"c{self.count}"
        array = np.asarray(value, NP[dtype or self.dtype] if not isinstance(value, np.ndarray) else value.dtype)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs, **attrs) -> str:
        self.count += 1
        out = f"v{self.count}"
        names = [self.const(i) if isinstance(i, (int, float)) else i for i in inputs]
        self.nodes.append(helper.make_node(op_type, names, [out], **attrs))
        return out

    def model(self, *outputs: str, out_shapes=None) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info(n, self.dtype, self.shape) for n in ("a", "b")]
        outs = [helper.make_tensor_value_info(o, self.dtype, None if out_shapes is None else out_shapes[k])
                for k, o in enumerate(outputs)]
        graph = helper.make_graph(self.nodes, "g", inputs, outs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def smooth_l1(g: G, d: str, beta: float) -> str:
    n = g.op("Abs", d)
    return g.op("Where", g.op("Less", n, beta), g.op("Div", g.op("Mul", g.op("Mul", n, 0.5), n), beta),
                g.op("Sub", n, 0.5 * beta))


def inputs(dtype=np.float32, shape=(4, 3), beta=1.0, seed=0):
    """a, b whose differences cover both branches, the threshold itself and zero."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 2 * beta).astype(dtype)
    b = (rng.standard_normal(shape) * 2 * beta).astype(dtype)
    b.flat[0], b.flat[1], b.flat[2] = a.flat[0], a.flat[1] - dtype(beta), a.flat[2] + dtype(beta)
    return a, b


def run(model: onnx.ModelProto, a, b) -> list[np.ndarray]:
    return sl1.inference_session(model, custom_op=False).run(None, {"a": a, "b": b})


def loss_nodes(model: onnx.ModelProto) -> list[tuple[str, float, str]]:
    out = []
    for n in model.graph.node:
        if spec.is_loss_node(n):
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            out.append((n.op_type, float(attrs[spec.LOSS_PARAMS[n.op_type]]), attrs["reduction"].decode()))
    return out


def sl1_np(d, beta):
    n = np.abs(d.astype(np.float64))
    return np.where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta)


# --- what the probes must reject ---------------------------------------------------------


# None of these has a smooth-L1 inside it (that value would rightly fuse as a 'none' node).


def _differs_only_when_tiny(g, d):  # 0 for |d| < 1e-6, smooth-L1(1) elsewhere
    n = g.op("Abs", d)
    quad = g.op("Where", g.op("Less", n, 1e-6), 0.0, g.op("Mul", g.op("Mul", n, 0.5), n))
    return g.op("Where", g.op("Less", n, 1.0), quad, g.op("Sub", n, 0.5))


def _differs_only_when_huge(g, d):  # the linear branch capped at 5000
    n = g.op("Abs", d)
    return g.op("Where", g.op("Less", n, 1.0), g.op("Mul", g.op("Mul", n, 0.5), n),
                g.op("Min", g.op("Sub", n, 0.5), 5000.0))


def _nan_to_zero(g, d):  # NaN in gives 0 out (Where on d == d)
    n = g.op("Abs", d)
    linear = g.op("Where", g.op("Equal", d, d), g.op("Sub", n, 0.5), 0.0)
    return g.op("Where", g.op("Less", n, 1.0), g.op("Mul", g.op("Mul", n, 0.5), n), linear)


def _one_threshold_off(g, d):  # compare at 1.0, branch built for 1.01
    n = g.op("Abs", d)
    return g.op("Where", g.op("Less", n, 1.0), g.op("Div", g.op("Mul", g.op("Mul", n, 0.5), n), 1.01),
                g.op("Sub", n, 0.505))


def _odd(g, d):  # the quadratic branch 0.5 |d| d: not even
    n = g.op("Abs", d)
    return g.op("Where", g.op("Less", n, 1.0), g.op("Mul", g.op("Mul", n, 0.5), d), g.op("Sub", n, 0.5))


def _half_slope(g, d):  # linear branch 0.5 (|d| - 0.5): a kink at the threshold
    n = g.op("Abs", d)
    return g.op("Where", g.op("Less", n, 1.0), g.op("Mul", g.op("Mul", n, 0.5), n),
                g.op("Mul", g.op("Sub", n, 0.5), 0.5))


@pytest.mark.parametrize("build", [_differs_only_when_tiny, _differs_only_when_huge, _nan_to_zero,
                                   _one_threshold_off, _odd, _half_slope], ids=lambda f: f.__name__)
def test_probes_reject_what_is_not_the_loss(build):
    g = G()
    out = g.op("ReduceSum", build(g, g.op("Sub", "a", "b")), keepdims=0)
    model = g.model(out)
    fused, count = sl1.fuse(model)
    assert count == 0, loss_nodes(fused)
    assert [n.op_type for n in fused.graph.node] == [n.op_type for n in model.graph.node]


def test_tensor_weight_stays_outside_and_the_core_fuses():
    """A per-element weight (a [4, 3] initializer) is not a scalar constant: the region
    stops there, the smooth-L1 under it becomes a 'none' node, the Mul and the sum stay."""
    g = G()
    weight = g.const(np.linspace(0.5, 2, 12, dtype=np.float32).reshape(4, 3))
    core = smooth_l1(g, g.op("Sub", "a", "b"), 0.5)
    out = g.op("ReduceSum", g.op("Mul", core, weight), keepdims=0)
    fused, count = sl1.fuse(g.model(out))
    assert count == 1
    assert loss_nodes(fused) == [(spec.OP_TYPE, 0.5, "none")]
    assert [n.op_type for n in fused.graph.node] == [spec.OP_TYPE, "Mul", "ReduceSum"]
    a, b = inputs(beta=0.5)
    want = (sl1_np(a - b, 0.5) * np.linspace(0.5, 2, 12).reshape(4, 3)).sum()
    np.testing.assert_allclose(run(fused, a, b)[0], want, rtol=1e-6)


def test_scale_baked_into_both_branches_stays_a_mul():
    """3 * SmoothL1(0.5) written into both branches (c is neither 1 nor beta): one node and a
    Mul by 3 after its folded mean."""
    g = G()
    n = g.op("Abs", g.op("Sub", "a", "b"))
    core = g.op("Where", g.op("Less", n, 0.5), g.op("Mul", g.op("Mul", n, n), 3.0),
                g.op("Sub", g.op("Mul", n, 3.0), 0.75))
    fused, count = sl1.fuse(g.model(g.op("ReduceMean", core, keepdims=0)))
    assert count == 1 and loss_nodes(fused) == [(spec.OP_TYPE, 0.5, "mean")]
    assert [n.op_type for n in fused.graph.node] == [spec.OP_TYPE, "Constant", "Mul"]
    a, b = inputs(beta=0.5)
    np.testing.assert_allclose(run(fused, a, b)[0], 3 * sl1_np(a - b, 0.5).mean(), rtol=1e-6)


def test_huber_written_as_delta_times_smooth_l1_is_a_huber_node():
    """c = beta: delta * SmoothL1(delta) is Huber(delta), one HuberLoss node, no Mul."""
    g = G()
    n = g.op("Abs", g.op("Sub", "b", "a"))  # the other order: d and -d are one difference
    q = g.op("Min", n, 2.0)
    out = g.op("Add", g.op("Mul", g.op("Mul", q, q), 0.5), g.op("Mul", g.op("Sub", n, q), 2.0))
    fused, count = sl1.fuse(g.model(out, out_shapes=[[4, 3]]))
    assert count == 1 and loss_nodes(fused) == [(spec.HUBER_OP_TYPE, 2.0, "none")]
    assert fused.graph.output[0].name == out  # the graph output keeps its name
    a, b = inputs(beta=2.0)
    np.testing.assert_allclose(run(fused, a, b)[0], 2 * sl1_np(a - b, 2.0), rtol=1e-6)


@pytest.mark.parametrize("squeeze", [False, True])
def test_keepdims_reduction_folds_only_through_a_squeeze(squeeze):
    """ReduceMean(keepdims=1) gives shape [1, 1]: it folds only when a Squeeze of every axis
    makes the result rank 0, as the node's is; otherwise a 'none' node feeds the ReduceMean."""
    g = G()
    core = smooth_l1(g, g.op("Sub", "a", "b"), 1.0)
    out = g.op("ReduceMean", core, keepdims=1)
    if squeeze:
        out = g.op("Squeeze", out)
    fused, count = sl1.fuse(g.model(out))
    assert count == 1
    assert loss_nodes(fused) == [(spec.OP_TYPE, 1.0, "mean" if squeeze else "none")]
    a, b = inputs()
    got = run(fused, a, b)[0]
    assert got.shape == (() if squeeze else (1, 1))
    np.testing.assert_allclose(got.reshape(()), sl1_np(a - b, 1.0).mean(), rtol=1e-6)


def test_a_loss_read_twice_is_computed_once_and_the_reduction_stays():
    """The per-element loss is a graph output and also summed: a 'none' node serves both."""
    g = G()
    core = smooth_l1(g, g.op("Sub", "a", "b"), 1.0)
    total = g.op("ReduceSum", core, keepdims=0)
    fused, count = sl1.fuse(g.model(core, total, out_shapes=[[4, 3], []]))
    assert count == 1 and loss_nodes(fused) == [(spec.OP_TYPE, 1.0, "none")]
    a, b = inputs()
    elem, s = run(fused, a, b)
    np.testing.assert_allclose(elem, sl1_np(a - b, 1.0), rtol=1e-6)
    np.testing.assert_allclose(s, sl1_np(a - b, 1.0).sum(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_other_float_types(dtype):
    """float16 (probed in float16: 0.5 * n * n / beta rounds at each step there) and float64."""
    g = G(dtype)
    out = g.op("ReduceMean", smooth_l1(g, g.op("Sub", "a", "b"), 0.5), keepdims=0)
    fused, count = sl1.fuse(g.model(out))
    assert count == 1 and loss_nodes(fused) == [(spec.OP_TYPE, 0.5, "mean")]
    a, b = inputs(NP[dtype], beta=0.5)
    got = run(fused, a, b)[0]
    assert got.dtype == NP[dtype]
    np.testing.assert_allclose(float(got), sl1_np(a.astype(np.float64) - b, 0.5).mean(),
                               rtol=1e-3 if dtype == TensorProto.FLOAT16 else 1e-12)


def test_float64_parameter_float32_cannot_hold_is_left_alone():
    """A float64 graph's beta = 1/9 is not a float32 number: the node's FLOAT attribute would
    change the function, so nothing is fused; beta = 0.5 in the same graph type is."""
    for beta, fused_count in ((1.0 / 9.0, 0), (0.5, 1)):
        g = G(TensorProto.DOUBLE)
        out = g.op("ReduceSum", smooth_l1(g, g.op("Sub", "a", "b"), beta), keepdims=0)
        assert sl1.fuse(g.model(out)).count == fused_count


def test_rank_changing_constant_is_not_a_scalar():
    """A [1, 1, 1] constant broadcasts a rank-2 difference to rank 3: not part of a region."""
    g = G()
    ones = g.const(np.ones((1, 1, 1), np.float32))
    core = smooth_l1(g, g.op("Sub", "a", "b"), 1.0)
    out = g.op("Mul", core, ones)
    fused, count = sl1.fuse(g.model(out, out_shapes=[[1, 4, 3]]))
    assert count == 1 and loss_nodes(fused) == [(spec.OP_TYPE, 1.0, "none")]
    a, b = inputs()
    got = run(fused, a, b)[0]
    assert got.shape == (1, 4, 3)
    np.testing.assert_allclose(got[0], sl1_np(a - b, 1.0), rtol=1e-6)


def test_find_reports_without_changing_the_graph():
    """recognize.find is analysis only: the graph is the same object, untouched, afterwards."""
    from onnxscript import ir

    g = G()
    out = g.op("ReduceSum", smooth_l1(g, g.op("Sub", "a", "b"), 0.25), keepdims=0)
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(g.model(out)))
    before = [n.op_type for n in model.graph]
    found = recognize.find(model.graph)
    assert [(f.op_type, f.param, f.scale, f.reduction) for f in found] == [(spec.OP_TYPE, 0.25, 1.0, "sum")]
    assert [n.op_type for n in model.graph] == before


def test_deep_constant_chain_does_not_crash():
    """A constant computed through 3,000 Identity nodes: deeper than Python's recursion limit
    (the constant folding must not recurse per node), still a constant, still fused."""
    g = G()
    c = g.const(0.5)
    for _ in range(3000):
        c = g.op("Identity", c)
    n = g.op("Abs", g.op("Sub", "a", "b"))
    core = g.op("Where", g.op("Less", n, 1.0), g.op("Mul", g.op("Mul", n, c), n), g.op("Sub", n, 0.5))
    fused, count = sl1.fuse(g.model(g.op("ReduceSum", core, keepdims=0)))
    assert count == 1
    a, b = inputs()
    np.testing.assert_allclose(run(fused, a, b)[0], sl1_np(a - b, 1.0).sum(), rtol=1e-6)


# --- generated spellings: every one is found, no single-constant change of one is --------

BETAS = [0.05, 0.25, 0.5, 1.0, 2.0, 3.5, float(np.float32(1 / 9))]


def _spelling(g: G, d: str, beta: float, form: str, cmp: str, quad: str, magnitude: str) -> str:
    """smooth-L1(beta) of d (form 'where'/'mask') or Huber(beta) ('min'/'clip'), as one of the
    ways people write it."""
    n = g.op("Abs", d) if magnitude == "abs" else g.op("Sqrt", g.op("Mul", d, d))
    if form in ("min", "clip"):
        q = g.op("Min", n, beta) if form == "min" else g.op("Clip", n, "", g.const(beta))
        return g.op("Add", g.op("Mul", g.op("Mul", q, q), 0.5), g.op("Mul", g.op("Sub", n, q), beta))
    squares = {"mul_div": lambda: g.op("Div", g.op("Mul", g.op("Mul", n, 0.5), n), beta),
               "pow_coef": lambda: g.op("Mul", g.op("Pow", n, 2.0), 0.5 / beta),
               "pow_div2b": lambda: g.op("Div", g.op("Pow", n, 2.0), 2 * beta)}
    q2 = squares[quad]()
    lin = g.op("Sub", n, 0.5 * beta)
    if form == "mask":
        m = g.op("Cast", g.op(cmp, n, beta), to=TensorProto.FLOAT)
        return g.op("Add", g.op("Mul", m, q2), g.op("Mul", g.op("Sub", 1.0, m), lin))
    if cmp in ("Less", "LessOrEqual"):
        return g.op("Where", g.op(cmp, n, beta), q2, lin)
    return g.op("Where", g.op(cmp, n, beta), lin, q2)  # > / >= with the branches swapped


def _build(beta, form, cmp, quad, magnitude, reduction, perturb=None):
    g = G()
    real_op = g.op

    if perturb is not None:  # scale the perturb[0]-th numeric literal by perturb[1]
        seen = [0]

        def op(op_type, *inputs, **attrs):
            changed = []
            for i in inputs:
                if isinstance(i, float) and op_type != "Pow":
                    if seen[0] == perturb[0]:
                        i = i * perturb[1]
                    seen[0] += 1
                changed.append(i)
            return real_op(op_type, *changed, **attrs)

        g.op = op  # type: ignore[method-assign]
    core = _spelling(g, g.op("Sub", "a", "b"), beta, form, cmp, quad, magnitude)
    g.op = real_op  # type: ignore[method-assign]
    if reduction == "none":
        return g.model(core, out_shapes=[[4, 3]])
    if reduction == "squeeze_mean":
        return g.model(g.op("Squeeze", g.op("ReduceMean", core, keepdims=1)))
    return g.model(g.op("ReduceMean" if reduction == "mean" else "ReduceSum", core, keepdims=0))


def _literals(beta, form, cmp, quad, magnitude) -> int:
    counter = G()
    count = [0]
    real_op = counter.op

    def op(op_type, *inputs, **attrs):
        count[0] += sum(isinstance(i, float) and op_type != "Pow" for i in inputs)
        return real_op(op_type, *inputs, **attrs)

    counter.op = op  # type: ignore[method-assign]
    _spelling(counter, counter.op("Sub", "a", "b"), beta, form, cmp, quad, magnitude)
    return count[0]


SPELLING = dict(
    beta=st.sampled_from(BETAS),
    form=st.sampled_from(["where", "mask", "min", "clip"]),
    cmp=st.sampled_from(["Less", "LessOrEqual", "Greater", "GreaterOrEqual"]),
    quad=st.sampled_from(["mul_div", "pow_coef", "pow_div2b"]),
    magnitude=st.sampled_from(["abs", "sqrt"]),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(reduction=st.sampled_from(["none", "mean", "sum", "squeeze_mean"]), **SPELLING)
def test_every_generated_spelling_is_found(beta, form, cmp, quad, magnitude, reduction):
    if form == "mask" and cmp in ("Greater", "GreaterOrEqual"):
        cmp = "Less"  # the mask form selects the quadratic branch with its mask
    fused, count = sl1.fuse(_build(beta, form, cmp, quad, magnitude, reduction))
    want_reduction = {"squeeze_mean": "mean"}.get(reduction, reduction)
    huber = form in ("min", "clip")
    want_op = spec.HUBER_OP_TYPE if huber and beta != 1.0 else None
    found = loss_nodes(fused)
    assert count == 1 and len(found) == 1, found
    op_type, param, red = found[0]
    assert (param, red) == (np.float32(beta), want_reduction), found
    if want_op:
        assert op_type == want_op, found
    a, b = inputs(beta=beta, shape=(4, 3))
    ref = sl1_np(a - b, beta) * (beta if huber else 1.0)
    ref = {"none": ref, "sum": ref.sum()}.get(want_reduction, ref.mean())
    np.testing.assert_allclose(run(fused, a, b)[0], ref, rtol=2e-6, atol=1e-7)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(which=st.integers(0, 20), factor=st.sampled_from([1.001, 0.999, 1.1, 0.5, 2.0, -1.0]), **SPELLING)
def test_no_single_constant_change_is_found(beta, form, cmp, quad, magnitude, which, factor):
    """Scale any one literal of a correct spelling (the threshold in the compare only, the
    0.5, the offset, the slope, the mask's 1...) and the result is no smooth-L1/Huber: fuse
    must leave the model as it is."""
    if form == "mask" and cmp in ("Greater", "GreaterOrEqual"):
        cmp = "Less"
    which %= _literals(beta, form, cmp, quad, magnitude)
    model = _build(beta, form, cmp, quad, magnitude, "sum", perturb=(which, factor))
    fused, count = sl1.fuse(model)
    assert count == 0, (loss_nodes(fused), which, factor)


U = 2.0 ** -24  # float32's unit roundoff
IDEAL = 0.5 / float(np.float32(0.3))  # the quadratic coefficient of smooth-L1(float32(0.3))


@pytest.mark.parametrize("coefficient, found", [
    (np.float32(IDEAL), True),  # rounded to float32: within a unit roundoff
    (np.float32(IDEAL * (1 + 2.5 * U)), False),  # more than 1.5 unit roundoffs away
    (np.float32(IDEAL * (1 - 2.5 * U)), False),
    (np.float32(IDEAL * (1 + 1e-6)), False),
])
def test_a_constant_beyond_rounding_is_another_function(coefficient, found):
    """(0.5/beta) * n**2 with beta = 0.3: float32 cannot hold 0.5/0.3; its rounding is still
    smooth-L1(float32(0.3)) within a unit roundoff, a coefficient 2.5 unit roundoffs off is
    not, although the model's own float32 results differ from the formula's by about an ulp
    either way (the exact evaluation tells them apart; recognize.EXACT_ROUNDOFFS)."""
    assert coefficient != np.float32(IDEAL) or found
    g = G()
    n = g.op("Abs", g.op("Sub", "a", "b"))
    beta = float(np.float32(0.3))
    core = g.op("Where", g.op("Less", n, beta), g.op("Mul", g.op("Mul", n, n), g.const(np.asarray(coefficient))),
                g.op("Sub", n, 0.5 * beta))
    fused, count = sl1.fuse(g.model(g.op("ReduceSum", core, keepdims=0)))
    assert count == int(found), loss_nodes(fused)
    if found:
        assert loss_nodes(fused) == [(spec.OP_TYPE, beta, "sum")]


@pytest.mark.parametrize("reduce_op", ["ReduceSum", "ReduceMean"])
def test_a_none_loss_node_reduced_right_after_takes_the_reduction(reduce_op):
    """F.l1_loss(reduction='none').sum() exports as a 'none' node and a ReduceSum: fuse gives
    the node the reduction (its accurate sum) and drops the ReduceSum."""
    g = G()
    g.nodes.append(helper.make_node(spec.OP_TYPE, ["a", "b"], ["l"], domain=spec.DOMAIN, beta=0.0,
                                    reduction="none"))
    model = g.model(g.op(reduce_op, "l", keepdims=0))
    model.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    fused, count = sl1.fuse(model)
    assert count == 0  # no loss was recognised: one was reduced
    assert loss_nodes(fused) == [(spec.OP_TYPE, 0.0, "sum" if reduce_op == "ReduceSum" else "mean")]
    assert [n.op_type for n in fused.graph.node] == [spec.OP_TYPE]
    a, b = inputs()
    want = np.abs(a.astype(np.float64) - b)
    np.testing.assert_allclose(run(fused, a, b)[0], want.sum() if reduce_op == "ReduceSum" else want.mean(),
                               rtol=1e-6)
