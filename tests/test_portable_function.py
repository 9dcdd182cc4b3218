"""The portable function body (SPEC, "Precision and portability of the ONNX function").

- no float64 anywhere in a float16/bfloat16/float32 model (function, branches, around it);
- 'none' bitwise identical to ``torch.nn.functional.smooth_l1_loss`` for float32/float64;
- float32 sums from the graph's structure: no worse than torch in aggregate over random
  sizes, and at large sizes (where a plain float32 ReduceSum is far off) case by case;
- models mixing element types, in onnxruntime, onnx.reference and after ``inline``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _no_f64 import float64_free as float64_items
from conftest import (
    BETAS,
    SHAPES,
    cached_model,
    make_inputs,
    run_ort_function,
    run_reference,
    stable_seed,
)
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

HALF_AND_SINGLE = ["float16", "bfloat16", "float32"]


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.atleast_1d(np.asarray(a))
    return a.view(f"u{a.dtype.itemsize}")


@pytest.mark.parametrize("opset", [13, 15, 18, 20])
@pytest.mark.parametrize("dtype", HALF_AND_SINGLE)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_no_float64_in_half_and_single_models(opset, dtype, reduction):
    model = sl1.make_model(beta=0.5, reduction=reduction, dtype=dtype, opset=opset)
    assert float64_items(model) == []
    assert float64_items(sl1.inline(model)) == []


def test_float64_finder_finds_float64():
    """The check above can fail: a float64 model's body is float64."""
    found = float64_items(sl1.make_model(dtype="float64"))
    assert any("to=DOUBLE" in f for f in found) and any("value" in f for f in found), found


@pytest.mark.parametrize("types", [("float16", "float32"), ("bfloat16", "float16", "float32")])
def test_mixed_half_and_single_body_has_no_float64(types):
    assert float64_items(_mixed_model(types)) == []


def test_float32_body_casts_no_data():
    """A float32 model's body casts no tensor data: the one Cast is the element count's
    (int64 -> float32, for 'mean')."""
    fn = sl1.make_model(dtype="float32").functions[0]
    nodes = list(sl1.spec.walk_nodes(fn.node))
    producer = {o: n.op_type for n in nodes for o in n.output}
    casts = [n for n in nodes if n.op_type in ("Cast", "CastLike")]
    assert [producer.get(n.input[0]) for n in casts] == ["Shape"], casts


@pytest.mark.parametrize("runner", ["ort-function", "onnx-reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("beta", BETAS)
def test_none_is_bitwise_torch(runner, dtype, shape, beta):
    x, y = make_inputs(*SHAPES[shape], dtype, seed=stable_seed(shape, beta, "bits"))
    run = run_ort_function if runner == "ort-function" else run_reference
    out = run(cached_model(beta, "none", dtype), x, y)
    want = oracle.torch_same_dtype(x, y, beta=beta, reduction="none")
    assert out.shape == want.shape
    assert np.array_equal(_bits(out), _bits(want)), (out, want)


@given(
    n=st.integers(1, 300),
    beta=st.sampled_from([0.0, 1e-3, 0.3, 1.0, 2.5]),
    scale=st.sampled_from([1e-3, 0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_none_is_bitwise_torch_property(n, beta, scale, seed, dtype):
    rng = np.random.default_rng(seed)
    npdt = oracle.NUMPY_DTYPES[dtype]
    x = (rng.standard_normal(n) * scale).astype(npdt)
    y = (rng.standard_normal(n) * scale).astype(npdt)
    out = run_ort_function(cached_model(beta, "none", dtype), x, y)
    want = oracle.torch_same_dtype(x, y, beta=beta, reduction="none")
    assert np.array_equal(_bits(out), _bits(want))


def _rel(value: float, ref: float) -> float:
    return abs(float(value) - float(ref)) / abs(float(ref))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_sums_no_worse_than_torch_in_aggregate(reduction):
    """Over 400 random sizes from 1 to 2^16 (most not a multiple of any block): the function
    path's mean relative error is no worse than torch's, and it is beyond
    max(torch's error, one float32 ulp) in at most 2% of the cases (any float32 order is,
    now and then: see oracle.F32_REDUCE_FLOOR)."""
    rng = np.random.default_rng(20261201)
    model = cached_model(0.5, reduction, "float32")
    ours, torchs, beyond = [], [], 0
    for _ in range(400):
        n = int(np.exp(rng.uniform(0, np.log(2**16))))
        x = (rng.standard_normal(n) * rng.choice([0.05, 1.0, 20.0])).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        ref = float(oracle.reference(x, y, beta=0.5, reduction=reduction))
        mine = _rel(run_ort_function(model, x, y), ref)
        theirs = _rel(oracle.torch_same_dtype(x, y, beta=0.5, reduction=reduction), ref)
        ours.append(mine)
        torchs.append(theirs)
        beyond += mine > max(theirs, 2.0**-23)
    assert np.mean(ours) <= np.mean(torchs), (np.mean(ours), np.mean(torchs))
    assert beyond <= 8, beyond


@pytest.mark.parametrize(
    "shapes", [((2**20 + 3,), (2**20 + 3,)), ((1021, 1, 37), (53, 37)), ((2**18,), (1,))]
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_large_float32_sums_no_worse_than_torch(shapes, reduction):
    """Where a plain float32 ReduceSum is far off (1e-6 and worse from ~2^17 elements), the
    blocked sum is no worse than torch or one float32 ulp, case by case (sizes not a multiple
    of any block, broadcast inputs)."""
    x, y = make_inputs(*shapes, "float32", seed=7)
    ref = float(oracle.reference(x, y, beta=1.0, reduction=reduction))
    mine = _rel(run_ort_function(cached_model(1.0, reduction, "float32"), x, y), ref)
    theirs = _rel(oracle.torch_same_dtype(x, y, beta=1.0, reduction=reduction), ref)
    assert mine <= max(theirs, 2.0**-23), (mine, theirs)


def test_plain_float32_reducesum_fails_the_oracle():
    """The oracle's floor is tight enough to reject what the function replaced: one plain
    float32 ReduceSum over the loss (torch.onnx's own decomposition) at 2^18 elements."""
    n = 2**18
    x, y = make_inputs((n,), (n,), "float32", seed=3)
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["e"], ["s"], keepdims=0)], "plain",
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    elem = oracle.torch_same_dtype(x, y, beta=1.0, reduction="none")
    plain = runtime.run(sl1.inference_session(model, custom_op=False), {"e": elem})[0]
    ref = oracle.reference(x, y, beta=1.0, reduction="sum")
    own = oracle.torch_same_dtype(x, y, beta=1.0, reduction="sum")
    assert not oracle.compare(plain, ref, dtype="float32", reduction="sum", torch_own=own).ok


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("scale", [2.0**100, 2.0**113, 2.0**114.5, 2.0**116.5, 2.0**118])
def test_float32_sums_near_overflow(beta, scale):
    """The exact top's guard: sums up to 2^125 take the exact path, larger ones the plain
    sum (where ``p + 2 t`` could overflow), and an overflowing sum is inf as torch's is.
    3000 elements d in [scale / 2, scale] (the linear part, about d each) put the sum near
    2^111, 2^124, 2^125.5, 2^127.5 (close to float32's largest) and 2^129 (inf); beta 1 runs
    the halved Huber form (its total doubled), beta 0.5 the cheaper form."""
    rng = np.random.default_rng(11)
    x = (rng.uniform(0.5, 1.0, 3000) * scale).astype(np.float32)
    y = np.zeros_like(x)
    x[7] = np.float32(scale)  # one exact power of two among them
    ref = oracle.reference(x, y, beta=beta, reduction="sum")
    own = oracle.torch_same_dtype(x, y, beta=beta, reduction="sum")
    assert np.isinf(own) == (scale > 2.0**117), own  # the cases are what they say
    for run in (run_ort_function, run_reference):
        got = run(cached_model(beta, "sum", "float32"), x, y)
        verdict = oracle.compare(got, ref, dtype="float32", reduction="sum", torch_own=own)
        assert verdict.ok, (run.__name__, scale, got, own, verdict)


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_sum_of_one_huge_element(beta, reduction):
    """One element of 1.4 * 2^126: ``p + 2 t`` would overflow (3 p > float32's largest), so
    the guard must hand the plain sum on instead of inf - inf = NaN."""
    x = np.array([1.4 * 2.0**126], np.float32)
    y = np.zeros_like(x)
    ref = oracle.reference(x, y, beta=beta, reduction=reduction)
    own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
    for run in (run_ort_function, run_reference):
        got = run(cached_model(beta, reduction, "float32"), x, y)
        verdict = oracle.compare(got, ref, dtype="float32", reduction=reduction, torch_own=own)
        assert verdict.ok, (run.__name__, got, own, verdict)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_empty_mean_nan_sum_zero(dtype):
    x = np.zeros((0, 3), oracle.NUMPY_DTYPES[dtype])
    for run in (run_ort_function, run_reference):
        assert np.isnan(run(cached_model(1.0, "mean", dtype), x, x))
        assert run(cached_model(1.0, "sum", dtype), x, x) == 0


# --- models that mix element types -------------------------------------------------------

TYPE_MIXES = [
    ("float32", "float64"),
    ("float16", "float32"),
    ("bfloat16", "float16", "float32"),
    ("float16", "float64"),
    ("float16", "bfloat16", "float32", "float64"),
]


def _mixed_model(types, opset: int = 18) -> onnx.ModelProto:
    """One loss per element type (reductions and betas vary), each on its own inputs."""
    nodes, inputs, outputs = [], [], []
    reductions = ["mean", "none", "sum", "mean"]
    for i, dtype in enumerate(types):
        elem = sl1.spec.DTYPES[dtype]
        red = reductions[i % len(reductions)]
        nodes.append(sl1.make_node(f"x{i}", f"y{i}", f"loss{i}", beta=0.25 * (i + 1), reduction=red))
        inputs += [helper.make_tensor_value_info(n, elem, [2, 3]) for n in (f"x{i}", f"y{i}")]
        outputs.append(helper.make_tensor_value_info(f"loss{i}", elem, [2, 3] if red == "none" else []))
    graph = helper.make_graph(nodes, "mixed", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def _check_mixed(types, outs, feeds):
    reductions = ["mean", "none", "sum", "mean"]
    for i, dtype in enumerate(types):
        x, y = feeds[f"x{i}"], feeds[f"y{i}"]
        red, beta = reductions[i % len(reductions)], 0.25 * (i + 1)
        ref = oracle.reference(x, y, beta=beta, reduction=red)
        own = oracle.torch_same_dtype(x, y, beta=beta, reduction=red)
        verdict = oracle.compare(outs[i], ref, dtype=dtype, reduction=red, torch_own=own)
        assert verdict.ok, (types, dtype, verdict)


@pytest.mark.parametrize("types", TYPE_MIXES, ids=["+".join(t) for t in TYPE_MIXES])
def test_mixed_element_types(types):
    model = _mixed_model(types)
    feeds = {}
    for i, dtype in enumerate(types):
        feeds[f"x{i}"], feeds[f"y{i}"] = make_inputs((2, 3), (2, 3), dtype, seed=i)
    _check_mixed(types, runtime.run(sl1.inference_session(model, custom_op=False), feeds), feeds)
    _check_mixed(types, ReferenceEvaluator(model).run(None, feeds), feeds)
    inlined = sl1.inline(model)
    ops = {n.op_type for n in sl1.spec.walk_nodes(inlined.graph.node)}
    assert "If" not in ops, ops  # the reduction and type switches fold per node
    if "float64" not in types:
        assert float64_items(inlined) == []
    _check_mixed(types, runtime.run(sl1.inference_session(inlined, custom_op=False), feeds), feeds)


def test_mixed_types_need_castlike_below_opset_15():
    with pytest.raises(ValueError, match="opset 13 has no CastLike"):
        _mixed_model(("float32", "float64"), opset=13)


def test_function_for_unknown_types_serves_every_type():
    """``make_function(dtypes=None)`` (types not inferable) is correct for each dtype."""
    for dtype in sl1.spec.DTYPES:
        model = sl1.make_model(dtype=dtype, reduction="sum")
        del model.functions[:]
        model.functions.append(sl1.make_function(18, None))
        x, y = make_inputs((3, 5), (3, 5), dtype, seed=4)
        ref = oracle.reference(x, y, beta=1.0, reduction="sum")
        own = oracle.torch_same_dtype(x, y, beta=1.0, reduction="sum")
        for out in (runtime.run(sl1.inference_session(model, custom_op=False), {"input": x, "target": y})[0],
                    ReferenceEvaluator(model).run(None, {"input": x, "target": y})[0]):
            assert oracle.compare(out, ref, dtype=dtype, reduction="sum", torch_own=own).ok


def test_onnxruntime_folds_every_if():
    """onnxruntime folds the reduction switch at session creation (its conditions are
    constants once the node's attributes are known): no If is left to run."""
    import onnxruntime as ort

    for reduction in sl1.REDUCTIONS:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = "/tmp/onnx_smoothl1_if_fold"
        model = sl1.make_model(reduction=reduction)
        session = sl1.inference_session(model, custom_op=False, options=options)
        x, y = make_inputs((40,), (40,), "float32")
        runtime.run(session, {"input": x, "target": y})
        import json

        with open(session.end_profiling()) as f:
            ops = {e["args"].get("op_name") for e in json.load(f) if e.get("cat") == "Node"}
        assert "If" not in ops and "Sub" in ops, ops


def test_session_creation_prints_no_onnxruntime_warning():
    """onnxruntime folds the body's constant Ifs and Casts at session creation without a
    warning for any dtype/beta/reduction (a Cast in the outer graph read only by If branches
    made it print "Implicit input name ... cannot be safely updated" for every float64 model)."""
    import subprocess
    import sys

    script = (
        "import onnx_smoothl1 as sl1\n"
        "for dt in sl1.spec.DTYPES:\n"
        "    for red in sl1.REDUCTIONS:\n"
        "        for beta in (0.0, 0.5, 1.0, 1e30):\n"
        "            sl1.inference_session(sl1.make_model(dtype=dt, reduction=red, beta=beta),"
        " custom_op=False)\n"
        "m = sl1.make_model()\n"
        "del m.functions[:]\n"
        "m.functions.append(sl1.make_function(18, None))\n"
        "sl1.inference_session(m, custom_op=False)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert "W:onnxruntime" not in proc.stderr and "E:onnxruntime" not in proc.stderr, proc.stderr[-2000:]
