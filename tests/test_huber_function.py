"""The HuberLoss node and its function against ``torch.nn.functional.huber_loss``.

Same portable rules as SmoothL1Loss's (tests/test_portable_function.py): onnxruntime's function
path (``custom_op=False``: onnxruntime inlines the function) and onnx.reference over dtypes x
reductions x shapes x deltas; 'none' bitwise torch's for float32/float64 (edge values too);
float32 sums by ``oracle.compare``; no float64 in non-float64 models; bad delta refused by
name; ``inline`` leaves no If and no function.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from _no_f64 import float64_free
from conftest import SHAPES, make_inputs, ort_max_opset, run_ort_function, run_reference, stable_seed
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime, spec

DELTAS = [0.35, 1.0, 2.5]
DTYPES = ["float32", "float64", "float16", "bfloat16"]
RUNNERS = {"ort-function": run_ort_function, "onnx-reference": run_reference}
#: SHAPES plus a size that is no multiple of any block of the sum (ROW * PARTS = 4096) and
#: the broadcast pair of issue 12.
HUBER_SHAPES = {
    **SHAPES,
    "odd": ((4099,), (4099,)),
    "broadcast_6x1x5_4x5": ((6, 1, 5), (4, 5)),
}


@functools.cache
def huber_model(delta: float, reduction: str, dtype: str, opset: int = 18) -> bytes:
    return sl1.make_huber_model(delta=delta, reduction=reduction, dtype=dtype,
                                opset=opset).SerializeToString()


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.atleast_1d(np.asarray(a))
    return a.view(f"u{a.dtype.itemsize}")


def _same_bits(out: np.ndarray, want: np.ndarray) -> bool:
    """Bitwise equal, any NaN equal to any NaN (payloads are not part of the contract)."""
    out, want = np.atleast_1d(out), np.atleast_1d(want)
    nan = np.isnan(want.astype(np.float64))
    return (out.shape == want.shape and bool(np.array_equal(np.isnan(out.astype(np.float64)), nan))
            and bool(np.array_equal(_bits(out[~nan]), _bits(want[~nan]))))


def assert_huber_parity(out, x, y, *, delta: float, reduction: str, dtype: str) -> None:
    ref = oracle.reference(x, y, delta=delta, reduction=reduction, loss="huber")
    own = oracle.torch_same_dtype(x, y, delta=delta, reduction=reduction, loss="huber")
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"{dtype} delta={delta} {reduction}: {verdict.detail} (out={out!r}, ref={ref!r})"


def _with_specials(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN and infinities in the first elements of larger inputs (after broadcasting they reach
    many output elements)."""
    if x.size >= 8:
        x = x.copy()
        x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, np.inf]
    return x, y


# --- the parity grid ----------------------------------------------------------------------

@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(HUBER_SHAPES))
@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
def test_huber_parity_grid(runner, dtype, shape, delta, reduction):
    x, y = make_inputs(*HUBER_SHAPES[shape], dtype, seed=stable_seed("huber", shape, delta))
    out = RUNNERS[runner](huber_model(delta, reduction, dtype), x, y)
    assert_huber_parity(out, x, y, delta=delta, reduction=reduction, dtype=dtype)
    if reduction != "none" and x.size:
        # Without the NaN/inf the reduction was finite; with them it follows torch.
        assert np.isfinite(out.astype(np.float64))
    xs, ys = _with_specials(x, y)
    if xs is not x:
        out = RUNNERS[runner](huber_model(delta, reduction, dtype), xs, ys)
        assert_huber_parity(out, xs, ys, delta=delta, reduction=reduction, dtype=dtype)
        want = oracle.torch_same_dtype(xs, ys, delta=delta, reduction=reduction, loss="huber")
        np.testing.assert_array_equal(np.isnan(out.astype(np.float64)), np.isnan(want.astype(np.float64)))


# --- 'none' bitwise torch's ----------------------------------------------------------------

def _edge_values(dtype: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of a set of edge values: zeros of both signs, subnormals, values whose
    square is subnormal (where (0.5*d)*d and 0.5*(d*d) round differently), values at and next
    to delta, the largest finite value, infinities, NaN."""
    npdt = oracle.NUMPY_DTYPES[dtype]
    finfo = np.finfo(npdt)
    d = npdt.type(np.float32(delta))
    values = np.array([
        0.0, -0.0, finfo.smallest_subnormal, 3 * finfo.smallest_subnormal, finfo.tiny,
        np.sqrt(finfo.tiny) * 0.7, np.sqrt(finfo.tiny) * 0.0123, np.sqrt(finfo.smallest_subnormal) * 3.3,
        d, -d, np.nextafter(d, npdt.type(0)), np.nextafter(d, npdt.type(np.inf)), 2 * d, 0.5 * d,
        1.0, -3.0, 1e19, finfo.max, -finfo.max, np.inf, -np.inf, np.nan,
    ], dtype=npdt)
    return np.repeat(values, values.size), np.tile(values, values.size)


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
# float(np.float32(3e-39)): a subnormal delta the float32 attribute holds exactly (3e-39 itself is
# refused by make_huber_model, spec.check_float32_attribute)
@pytest.mark.parametrize("delta", [*DELTAS, 1e-3, 7.5, float(np.float32(3e-39)), 1e30])
def test_none_is_bitwise_torch(runner, dtype, delta):
    """On the grid's data (broadcast included) and on every pair of edge values."""
    cases = [make_inputs(*HUBER_SHAPES[s], dtype, seed=stable_seed("bits", s, delta))
             for s in ("rank0", "3x4x5", "broadcast_6x1x5_4x5", "odd")]
    cases.append(_edge_values(dtype, delta))
    model = huber_model(delta, "none", dtype)
    for x, y in cases:
        with np.errstate(all="ignore"):
            out = RUNNERS[runner](model, x, y)
        want = oracle.torch_same_dtype(x, y, delta=delta, reduction="none", loss="huber")
        assert _same_bits(out, want), (delta, x, y, out, want)


def test_bitwise_check_can_fail():
    """The check above is sharp: torch's huber differs from ``delta * smooth_l1(beta=delta)``
    (the two-rounding export this node replaces) in many float32 elements."""
    x, y = make_inputs((4096,), (4096,), "float32", seed=11)
    delta = np.float32(0.35)
    two_step = delta * oracle.torch_same_dtype(x, y, beta=0.35, reduction="none")
    want = oracle.torch_same_dtype(x, y, delta=0.35, reduction="none", loss="huber")
    assert not _same_bits(two_step.astype(np.float32), want)


DELTA_CHOICES = [1e-3, 0.35, 1.0, 2.5, 7.5, 1234.5]


@given(
    n=st.integers(1, 300),
    delta=st.sampled_from(DELTA_CHOICES),
    scale=st.sampled_from([1e-3, 0.1, 1.0, 30.0, 1e5]),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float64"]),
    reduction=st.sampled_from(spec.REDUCTIONS),
)
def test_huber_property(n, delta, scale, seed, dtype, reduction):
    """Random sizes, scales and deltas: 'none' bitwise torch's, 'mean'/'sum' pass the oracle."""
    rng = np.random.default_rng(seed)
    npdt = oracle.NUMPY_DTYPES[dtype]
    x = (rng.standard_normal(n) * scale).astype(npdt)
    y = (rng.standard_normal(n) * scale).astype(npdt)
    out = run_ort_function(huber_model(delta, reduction, dtype), x, y)
    if reduction == "none":
        want = oracle.torch_same_dtype(x, y, delta=delta, reduction="none", loss="huber")
        assert _same_bits(out, want)
    else:
        assert_huber_parity(out, x, y, delta=delta, reduction=reduction, dtype=dtype)


# --- float32 sums --------------------------------------------------------------------------

def _rel(value: float, ref: float) -> float:
    return abs(float(value) - float(ref)) / abs(float(ref))


@pytest.mark.parametrize(
    "shapes", [((2**20 + 3,), (2**20 + 3,)), ((1021, 1, 37), (53, 37)), ((2**18,), (1,))]
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_large_float32_sums_pass_the_oracle(shapes, reduction):
    """Where a plain float32 ReduceSum is far off, the shared blocked sum passes
    ``oracle.compare`` (no worse than torch, or its floor) for sizes that are no multiple
    of any block and for broadcast inputs, and is no worse than max(torch, 1 ulp)."""
    x, y = make_inputs(*shapes, "float32", seed=7)
    out = run_ort_function(huber_model(0.35, reduction, "float32"), x, y)
    assert_huber_parity(out, x, y, delta=0.35, reduction=reduction, dtype="float32")
    ref = float(oracle.reference(x, y, delta=0.35, reduction=reduction, loss="huber"))
    theirs = _rel(oracle.torch_same_dtype(x, y, delta=0.35, reduction=reduction, loss="huber"), ref)
    assert _rel(out, ref) <= max(theirs, 2.0**-23), (_rel(out, ref), theirs)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_sums_no_worse_than_torch_in_aggregate(reduction):
    """Over 150 random sizes from 1 to 2^16: mean relative error no worse than torch's."""
    rng = np.random.default_rng(20261212)
    model = huber_model(2.5, reduction, "float32")
    ours, torchs = [], []
    for _ in range(150):
        n = int(np.exp(rng.uniform(0, np.log(2**16))))
        x = (rng.standard_normal(n) * rng.choice([0.05, 1.0, 20.0])).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        ref = float(oracle.reference(x, y, delta=2.5, reduction=reduction, loss="huber"))
        ours.append(_rel(run_ort_function(model, x, y), ref))
        torchs.append(_rel(oracle.torch_same_dtype(x, y, delta=2.5, reduction=reduction, loss="huber"), ref))
    assert np.mean(ours) <= np.mean(torchs), (np.mean(ours), np.mean(torchs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_mean_nan_sum_zero(dtype):
    x = np.zeros((0, 3), oracle.NUMPY_DTYPES[dtype])
    for run in RUNNERS.values():
        mean = run(huber_model(1.0, "mean", dtype), x, x)
        assert mean.shape == () and np.isnan(mean.astype(np.float64))
        total = run(huber_model(1.0, "sum", dtype), x, x)
        assert total.shape == () and total.astype(np.float64) == 0
        assert run(huber_model(1.0, "none", dtype), x, x).shape == (0, 3)


# --- the body's structure and portability ------------------------------------------------

@pytest.mark.parametrize("opset", [13, 15, 18, 20])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
def test_no_float64_in_half_and_single_models(opset, dtype, reduction):
    model = sl1.make_huber_model(delta=0.35, reduction=reduction, dtype=dtype, opset=opset)
    assert float64_free(model) == []
    assert float64_free(sl1.inline(model)) == []


def test_float64_model_computes_in_float64():
    """The check above can fail: a float64 model's body is float64."""
    assert float64_free(sl1.make_huber_model(dtype="float64")) != []


def test_function_structure():
    model = sl1.make_huber_model(delta=0.35, reduction="none")
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (spec.DOMAIN, spec.HUBER_OP_TYPE)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"delta": np.float32(0.35), "reduction": b"none"}
    (fn,) = model.functions
    assert (fn.domain, fn.name) == (spec.DOMAIN, spec.HUBER_OP_TYPE)
    assert [a.name for a in fn.attribute_proto] == ["delta", "reduction"]
    # delta by attribute reference, not baked in: one function serves every node.
    refs = {a.ref_attr_name for n in spec.walk_nodes(fn.node) for a in n.attribute if a.ref_attr_name}
    assert refs == {"delta", "reduction"}
    ops = [n.op_type for n in spec.walk_nodes(fn.node)]
    # The element-wise form is Where-free (see function._huber_elem) and there is no
    # division; the shared blocked sum is there.
    assert {"Min", "Sub", "Abs", "Mul", "ReduceSum"} <= set(ops)
    # Where / Less: once each, the exact sum's finite-or-plain switch; Div: 'mean' only.
    assert (ops.count("Where"), ops.count("Less"), ops.count("Div")) == (1, 1, 1), ops


def test_one_function_for_every_node_and_mixed_losses():
    """Two Huber nodes (different deltas, reductions, element types) and a SmoothL1Loss node:
    one function per op type, each serving all its nodes, in onnxruntime, onnx.reference
    and inlined."""
    f32, f64, f16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16
    nodes = [
        sl1.make_huber_node("a", "b", "h_none", delta=0.35, reduction="none"),
        sl1.make_huber_node("c", "d", "h_sum", delta=2.5, reduction="sum"),
        sl1.make_huber_node("e", "f", "h_mean", delta=1.0, reduction="mean"),
        sl1.make_node("a", "b", "s_mean", beta=0.5, reduction="mean"),
    ]
    types = {"a": f32, "b": f32, "c": f64, "d": f64, "e": f16, "f": f16}
    graph = helper.make_graph(
        nodes, "mixed",
        [helper.make_tensor_value_info(n, t, [2, 3]) for n, t in types.items()],
        [helper.make_tensor_value_info("h_none", f32, [2, 3]),
         helper.make_tensor_value_info("h_sum", f64, []),
         helper.make_tensor_value_info("h_mean", f16, []),
         helper.make_tensor_value_info("s_mean", f32, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    onnx.checker.check_model(model, full_check=True)
    assert sorted(f.name for f in model.functions) == [spec.HUBER_OP_TYPE, spec.OP_TYPE]
    sl1.attach_function(model)  # idempotent: the copies are replaced, not added
    assert len(model.functions) == 2
    by_name = {f.name: f for f in model.functions}
    # Each body is specialised to its own op type's element types.
    assert by_name[spec.HUBER_OP_TYPE].doc_string.endswith("element types: float16, float32, float64.")
    assert by_name[spec.OP_TYPE].doc_string.endswith("element types: float32.")

    names = {f32: "float32", f64: "float64", f16: "float16"}
    feeds = {name: make_inputs((2, 3), (2, 3), names[t], seed=i)[0]
             for i, (name, t) in enumerate(types.items())}

    def check(outs):
        for out, (x, y, delta, red, dtype) in zip(outs[:3], [
            ("a", "b", 0.35, "none", "float32"), ("c", "d", 2.5, "sum", "float64"),
            ("e", "f", 1.0, "mean", "float16"),
        ]):
            assert_huber_parity(out, feeds[x], feeds[y], delta=delta, reduction=red, dtype=dtype)
        ref = oracle.reference(feeds["a"], feeds["b"], beta=0.5, reduction="mean")
        own = oracle.torch_same_dtype(feeds["a"], feeds["b"], beta=0.5, reduction="mean")
        assert oracle.compare(outs[3], ref, dtype="float32", reduction="mean", torch_own=own).ok

    check(runtime.run(sl1.inference_session(model, custom_op=False), feeds))
    check(ReferenceEvaluator(model).run(None, feeds))
    inlined = sl1.inline(model)
    assert not inlined.functions
    assert spec.DOMAIN not in {n.domain for n in spec.walk_nodes(inlined.graph.node)}
    assert "If" not in {n.op_type for n in spec.walk_nodes(inlined.graph.node)}
    check(runtime.run(sl1.inference_session(inlined, custom_op=False), feeds))


@pytest.mark.parametrize("types", [("float32", "float64"), ("float16", "float32"),
                                   ("bfloat16", "float16", "float32", "float64")])
def test_one_function_serves_mixed_element_types(types):
    """Huber nodes of several element types share one body (the shared type dispatch)."""
    nodes, inputs, outputs, feeds = [], [], [], {}
    reductions = ["mean", "none", "sum", "mean"]
    for i, dtype in enumerate(types):
        elem, red = spec.DTYPES[dtype], reductions[i % 4]
        nodes.append(sl1.make_huber_node(f"x{i}", f"y{i}", f"l{i}", delta=0.35 * (i + 1), reduction=red))
        inputs += [helper.make_tensor_value_info(n, elem, [2, 3]) for n in (f"x{i}", f"y{i}")]
        outputs.append(helper.make_tensor_value_info(f"l{i}", elem, [2, 3] if red == "none" else []))
        feeds[f"x{i}"], feeds[f"y{i}"] = make_inputs((2, 3), (2, 3), dtype, seed=i)
    model = helper.make_model(helper.make_graph(nodes, "mixed", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 18)])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    assert [f.name for f in model.functions] == [spec.HUBER_OP_TYPE]
    if "float64" not in types:
        assert float64_free(model) == []
    inlined = sl1.inline(model)
    assert "If" not in {n.op_type for n in spec.walk_nodes(inlined.graph.node)}
    for outs in (runtime.run(sl1.inference_session(model, custom_op=False), feeds),
                 ReferenceEvaluator(model).run(None, feeds),
                 runtime.run(sl1.inference_session(inlined, custom_op=False), feeds)):
        for i, dtype in enumerate(types):
            assert_huber_parity(outs[i], feeds[f"x{i}"], feeds[f"y{i}"], delta=0.35 * (i + 1),
                                reduction=reductions[i % 4], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
def test_inline_folds_to_plain_ops(dtype, reduction):
    model = sl1.make_huber_model(delta=0.35, reduction=reduction, dtype=dtype)
    inlined = sl1.inline(model)
    assert not inlined.functions
    ops = {n.op_type for n in spec.walk_nodes(inlined.graph.node)}
    assert "If" not in ops and spec.HUBER_OP_TYPE not in ops, ops
    assert spec.DOMAIN not in {o.domain for o in inlined.opset_import}
    x, y = make_inputs((6, 1, 5), (4, 5), dtype, seed=3)
    out = runtime.run(sl1.inference_session(inlined, custom_op=False), {"input": x, "target": y})[0]
    assert_huber_parity(out, x, y, delta=0.35, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
def test_every_opset(reduction):
    x, y = make_inputs((3, 4), (3, 4), "float32", seed=1)
    top_ort = ort_max_opset()
    for opset in range(spec.MIN_OPSET, spec.max_opset() + 1):
        model = huber_model(0.35, reduction, "float32", opset)
        fn = onnx.load_from_string(model).functions[0]
        assert [o.version for o in fn.opset_import if o.domain == ""] == [opset]
        assert_huber_parity(run_reference(model, x, y), x, y, delta=0.35, reduction=reduction, dtype="float32")
        if opset <= top_ort:
            assert_huber_parity(run_ort_function(model, x, y), x, y, delta=0.35, reduction=reduction,
                                dtype="float32")


def test_session_creation_prints_no_onnxruntime_warning():
    """onnxruntime folds the body's constant Ifs at session creation without a warning."""
    import subprocess
    import sys

    script = (
        "import onnx_smoothl1 as sl1\n"
        "for dt in sl1.spec.DTYPES:\n"
        "    for red in sl1.REDUCTIONS:\n"
        "        sl1.inference_session(sl1.make_huber_model(dtype=dt, reduction=red, delta=0.35),"
        " custom_op=False)\n"
        "m = sl1.make_huber_model()\n"
        "del m.functions[:]\n"
        "m.functions.append(sl1.make_function(18, None, op_type='HuberLoss'))\n"
        "sl1.inference_session(m, custom_op=False)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert "W:onnxruntime" not in proc.stderr and "E:onnxruntime" not in proc.stderr, proc.stderr[-2000:]


def test_function_for_unknown_types_serves_every_type():
    for dtype in spec.DTYPES:
        model = sl1.make_huber_model(dtype=dtype, reduction="sum", delta=2.5)
        del model.functions[:]
        model.functions.append(sl1.make_function(18, None, op_type=spec.HUBER_OP_TYPE))
        x, y = make_inputs((3, 5), (3, 5), dtype, seed=4)
        feeds = {"input": x, "target": y}
        for out in (runtime.run(sl1.inference_session(model, custom_op=False), feeds)[0],
                    ReferenceEvaluator(model).run(None, feeds)[0]):
            assert_huber_parity(out, x, y, delta=2.5, reduction="sum", dtype=dtype)


# --- bad input ------------------------------------------------------------------------------

BAD_DELTAS = [0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), "1", None, True]


@pytest.mark.parametrize("delta", BAD_DELTAS, ids=repr)
def test_bad_delta_is_refused_by_name(delta):
    for call in (
        lambda: sl1.make_huber_model(delta=delta),
        lambda: sl1.make_huber_node("x", "y", "out", delta=delta),
        lambda: spec.check_delta(delta),
        # The oracle takes Huber's parameter as delta= or, like SmoothL1's, as beta=.
        lambda: oracle.reference(np.ones(2), np.zeros(2), loss="huber", beta=delta),
        lambda: oracle.torch_same_dtype(np.ones(2), np.zeros(2), loss="huber", beta=delta),
    ):
        with pytest.raises(ValueError, match="delta"):
            call()


def test_other_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="reduction"):
        sl1.make_huber_model(reduction="avg")
    with pytest.raises(ValueError, match="dtype"):
        sl1.make_huber_model(dtype="int32")
    with pytest.raises(ValueError, match="opset"):
        sl1.make_huber_model(opset=12)
    with pytest.raises(ValueError, match="rank"):
        sl1.make_huber_model(rank=-1)
    with pytest.raises(TypeError):
        sl1.make_huber_model(beta=0.5)  # type: ignore[call-arg]  # HuberLoss takes delta
    with pytest.raises(ValueError, match="op_type"):
        sl1.make_function(18, "float32", op_type="MSELoss")
    with pytest.raises(ValueError, match="loss"):
        oracle.reference(np.ones(2), np.zeros(2), loss="mse")
    with pytest.raises(ValueError, match="delta"):
        oracle.reference(np.ones(2), np.zeros(2), delta=0.5)  # smooth_l1 takes beta
