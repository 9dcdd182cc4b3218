"""The fused C++ CPU kernel (custom_op/, issue 3) inside onnxruntime.

Every expected value comes from ``onnx_smoothl1.oracle`` (PyTorch in float64, SPEC
tolerances). Skipped, saying why, only when the library is not built; under CI (``CI`` set)
or with ``ONNX_SMOOTHL1_REQUIRE_KERNEL=1`` a missing library fails instead, so ``make test``
cannot silently pass without the kernel.
"""

from __future__ import annotations

import concurrent.futures
import os
import re

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import BETAS, SHAPES, assert_parity, cached_model, make_inputs

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

DTYPES = ["float32", "float64", "float16", "bfloat16"]
REDUCTIONS = list(sl1.REDUCTIONS)


def _library_or_skip() -> str:
    path, why = runtime._library_candidate()
    if path is None:
        if os.environ.get("CI") or os.environ.get("ONNX_SMOOTHL1_REQUIRE_KERNEL") == "1":
            pytest.fail(f"the custom-op library must be built for this run: {why}", pytrace=False)
        pytest.skip(f"custom-op library not built: {why}")
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def library() -> str:
    return _library_or_skip()


_SESSIONS: dict = {}


def kernel_session(model: bytes, threads: int | None = None) -> ort.InferenceSession:
    key = (model, threads)
    if key not in _SESSIONS:
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = sl1.inference_session(model, custom_op=True, options=options)
        assert session.smoothl1_path == "kernel"
        _SESSIONS[key] = session
    return _SESSIONS[key]


def run_kernel(model: bytes, x: np.ndarray, y: np.ndarray, threads: int | None = None) -> np.ndarray:
    return runtime.run(kernel_session(model, threads), {"input": x, "target": y})[0]


def raw_session(model: onnx.ModelProto | bytes) -> ort.InferenceSession:
    """Library registered, but none of runtime's Python-side checks: what ORT itself does."""
    options = ort.SessionOptions()
    options.register_custom_ops_library(runtime.get_library_path())
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def with_attrs(model: onnx.ModelProto, **attrs) -> onnx.ModelProto:
    """Overwrite the SmoothL1Loss node's attributes, bypassing make_model's validation."""
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name in attrs:
            value = attrs[attr.name]
            if attr.type == onnx.AttributeProto.FLOAT:
                attr.f = value
            else:
                attr.s = value.encode()
    return model


# --- parity with torch over the core grid -------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_parity_grid(dtype, shape, beta, reduction):
    x, y = make_inputs(*SHAPES[shape], dtype)
    out = run_kernel(cached_model(beta, reduction, dtype), x, y)
    assert_parity(out, x, y, beta=beta, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shapes",
    [((300, 1, 7), (1, 200, 7)), ((70001,), ()), ((), (3, 50000)), ((5, 40000), (40000,)),
     ((2, 1, 30000), (2, 3, 1))],
    ids=["outer", "scalar-target", "scalar-input", "row", "mixed"],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parity_broadcast_multiblock(dtype, shapes, reduction):
    """Broadcast (strided) path across many 16384-element blocks."""
    x, y = make_inputs(*shapes, dtype, seed=5)
    out = run_kernel(cached_model(0.5, reduction, dtype), x, y)
    assert_parity(out, x, y, beta=0.5, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_dtype_and_shape(dtype):
    x, y = make_inputs((2, 3), (2, 3), dtype)
    for reduction in REDUCTIONS:
        out = run_kernel(cached_model(1.0, reduction, dtype), x, y)
        assert out.dtype == oracle.NUMPY_DTYPES[dtype]
        assert out.shape == ((2, 3) if reduction == "none" else ())


# --- which path ran: the fallback contract ------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_fallback_contract_same_file(tmp_path, dtype, reduction):
    """One model file: with the library ORT runs one fused SmoothL1Loss node, without it
    the inlined function; both within SPEC of the oracle."""
    path = tmp_path / "model.onnx"
    onnx.save(sl1.make_model(beta=0.5, reduction=reduction, dtype=dtype), path)
    x, y = make_inputs((4, 1, 3), (5, 3), dtype, seed=2)
    feeds = {"input": runtime._to_ort_value(x), "target": runtime._to_ort_value(y)}

    out_k, ops_k = runtime.profile_node_ops(str(path), feeds, custom_op=True)
    out_f, ops_f = runtime.profile_node_ops(str(path), feeds, custom_op=False)
    assert ops_k == ["SmoothL1Loss"], ops_k
    assert "SmoothL1Loss" not in ops_f and {"Sub", "Abs", "Where"} <= set(ops_f), ops_f
    for out in (out_k[0], out_f[0]):
        out = runtime._to_numpy(out) if isinstance(out, ort.OrtValue) else out
        if dtype == "bfloat16" and out.dtype != ml_dtypes.bfloat16:
            out = out.view(ml_dtypes.bfloat16)
        assert_parity(out, x, y, beta=0.5, reduction=reduction, dtype=dtype)


def test_auto_prefers_kernel():
    session = sl1.inference_session(cached_model(1.0, "mean", "float32"))
    assert session.smoothl1_path == "kernel"


# --- determinism and accuracy ---------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", [((2**20 + 3,), (2**20 + 3,)), ((1025, 1, 1024), (1, 1024))],
                         ids=["contiguous", "broadcast"])
def test_bitwise_identical_across_thread_counts(reduction, shapes):
    x, y = make_inputs(*shapes, "float32", seed=9)
    model = cached_model(0.5, reduction, "float32")
    outs = [run_kernel(model, x, y, threads=t) for t in (1, 2, 4, 2)]
    for out in outs[1:]:
        assert out.tobytes() == outs[0].tobytes()
    assert_parity(outs[0], x, y, beta=0.5, reduction=reduction, dtype="float32")


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_bitwise_identical_across_thread_counts_other_dtypes(dtype):
    x, y = make_inputs((2**19 + 7,), (2**19 + 7,), dtype, seed=4)
    model = cached_model(1.0, "sum", dtype)
    outs = [run_kernel(model, x, y, threads=t) for t in (1, 2, 4)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def _f32_mean_rel_error(n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n, dtype=np.float32)
    y = (rng.standard_normal(n, dtype=np.float32) * 3).astype(np.float32)
    out = run_kernel(cached_model(1.0, "mean", "float32"), x, y, threads=2)
    ref = float(oracle.reference(x, y, beta=1.0, reduction="mean"))
    return abs(float(out) - ref) / abs(ref)


def test_float32_mean_relative_error_2_22():
    assert _f32_mean_rel_error(2**22, seed=1) <= 1e-7


@pytest.mark.slow
def test_float32_mean_relative_error_2_26():
    assert _f32_mean_rel_error(2**26, seed=2) <= 1e-7


def test_concurrent_runs_of_one_session():
    x, y = make_inputs((3, 50000), (3, 50000), "float32", seed=3)
    model = cached_model(0.5, "mean", "float32")
    session = kernel_session(model, threads=2)
    expected = runtime.run(session, {"input": x, "target": y})[0].tobytes()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: runtime.run(session, {"input": x, "target": y})[0].tobytes(),
                                range(16)))
    assert all(r == expected for r in results)


# --- edge cases -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_rank0(dtype):
    npdt = oracle.NUMPY_DTYPES[dtype]
    for xs, ys in [((0,), (0,)), ((0, 3), (3,)), ((2, 0), (1, 0))]:
        x, y = np.zeros(xs, npdt), np.zeros(ys, npdt)
        mean = run_kernel(cached_model(1.0, "mean", dtype), x, y)
        total = run_kernel(cached_model(1.0, "sum", dtype), x, y)
        none = run_kernel(cached_model(1.0, "none", dtype), x, y)
        assert mean.shape == () and np.isnan(mean.astype(np.float64))
        assert total.shape == () and float(total) == 0.0
        assert none.shape == np.broadcast_shapes(xs, ys) and none.dtype == npdt
    x, y = np.array(2.5, npdt), np.array(0.5, npdt)
    for reduction in REDUCTIONS:
        out = run_kernel(cached_model(1.0, reduction, dtype), x, y)
        assert out.shape == () and float(out) == 1.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_nan_inf_like_torch(dtype, beta):
    npdt = oracle.NUMPY_DTYPES[dtype]
    vals = [np.nan, np.inf, -np.inf, 0.0, 1.0, -3.0]
    x = np.array([a for a in vals for _ in vals], dtype=npdt)
    y = np.array([b for _ in vals for b in vals], dtype=npdt)
    for reduction in REDUCTIONS:
        out = run_kernel(cached_model(beta, reduction, dtype), x, y)
        assert_parity(out, x, y, beta=beta, reduction=reduction, dtype=dtype)


def test_infinite_beta_like_torch():
    model = sl1.make_model(beta=float("inf"), reduction="none").SerializeToString()
    x, y = make_inputs((50,), (50,), "float32")
    out = run_kernel(model, x, y)
    assert_parity(out, x, y, beta=float("inf"), reduction="none", dtype="float32")


def test_two_nodes_keep_their_own_attributes():
    from onnx import helper

    graph = helper.make_graph(
        [sl1.make_node("input", "target", "a", beta=0.0, reduction="sum", name="l1_sum"),
         sl1.make_node("input", "target", "b", beta=2.0, reduction="none", name="smooth_none")],
        "two", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("input", "target")],
        [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, []),
         helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sl1.attach_function(model)
    model.ir_version = 9
    x, y = make_inputs((3, 4), (3, 4), "float32")
    session = sl1.inference_session(model, custom_op=True)
    a, b = runtime.run(session, {"input": x, "target": y})
    assert_parity(a, x, y, beta=0.0, reduction="sum", dtype="float32")
    assert_parity(b, x, y, beta=2.0, reduction="none", dtype="float32")


# --- errors: clear messages, never a crash ---------------------------------------------------

@pytest.mark.parametrize(
    "attrs, pattern",
    [({"beta": -1.0}, r"beta=-1\b"), ({"beta": float("nan")}, r"beta=nan"),
     ({"beta": -0.25}, r"beta=-0\.25"), ({"reduction": "avg"}, r"reduction='avg'"),
     ({"reduction": ""}, r"reduction=''")],
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bad_attributes_fail_session_creation(attrs, pattern, dtype):
    """The kernel validates attributes once, at kernel creation: ORT's InferenceSession
    constructor fails with a message naming the node, the attribute and the value."""
    model = with_attrs(sl1.make_model(dtype=dtype), **attrs)
    with pytest.raises(Exception) as info:
        raw_session(model)
    message = str(info.value)
    assert "SmoothL1Loss node 'smooth_l1'" in message, message
    assert re.search(pattern, message), message


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbroadcastable_shapes_run_error(dtype):
    npdt = oracle.NUMPY_DTYPES[dtype]
    session = kernel_session(cached_model(1.0, "mean", dtype))
    with pytest.raises(Exception) as info:
        runtime.run(session, {"input": np.zeros((3, 4), npdt), "target": np.zeros((5,), npdt)})
    message = str(info.value)
    assert "smooth_l1" in message and "[3, 4]" in message and "[5]" in message, message
    # the session stays usable
    out = runtime.run(session, {"input": np.ones((2,), npdt), "target": np.zeros((2,), npdt)})[0]
    assert float(out) == 0.5


def test_integer_inputs_are_a_clear_error():
    model = sl1.make_model()
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = onnx.TensorProto.INT32
    with pytest.raises(Exception) as info:
        raw_session(model)
    message = str(info.value)
    assert "SmoothL1Loss" in message and "int32" in message, message


def test_mixed_dtypes_are_a_clear_error():
    model = sl1.make_model()
    model.graph.input[1].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    with pytest.raises(Exception) as info:
        raw_session(model)
    assert "SmoothL1Loss" in str(info.value)
