"""HuberLoss in the fused C++ CPU kernel, inside onnxruntime (issue 12, kernels).

``onnx_smoothl1::HuberLoss`` (attributes ``delta``, ``reduction``) runs SmoothL1Loss's kernel
code with the Huber formula. The oracle is ``torch.nn.functional.huber_loss``: in float64 on
the upcast inputs (delta rounded to float32, as the ONNX FLOAT attribute holds it) with
SPEC's tolerances (``oracle.compare``), and in the inputs' own dtype as "PyTorch's own
result". The kernel computes torch's formula in torch's compute type, so float32 and float16
'none' are checked bitwise against torch too.

Models are built with ``onnx.helper`` directly (a bare HuberLoss node, no function), so these
tests depend only on the library. Skipped, saying why, when the library is not built (a
failure under CI, as in test_kernel_cpu.py).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from conftest import SHAPES, make_inputs, stable_seed
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper
from test_kernel_cpu import DTYPES, REDUCTIONS, _library_or_skip, raw_session
from test_property import elements

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime, spec

HUBER = "HuberLoss"
DELTAS = [1e-3, 0.35, 1.0, 7.5]  # 0.35 is not exact in float32: the attribute rounds it


@pytest.fixture(scope="module", autouse=True)
def library() -> str:
    return _library_or_skip()


# --- models and sessions ---------------------------------------------------------------------


def huber_model(dtype: str = "float32", name: str = "huber", **attrs: Any) -> onnx.ModelProto:
    """One HuberLoss node; ``attrs`` are written as given (an int delta becomes an INT
    attribute), so bad values reach the kernel unvalidated."""
    elem = spec.DTYPES[dtype]
    node = helper.make_node(HUBER, ["input", "target"], ["loss"], name=name, domain=spec.DOMAIN,
                            **attrs)
    graph = helper.make_graph(
        [node], "huber",
        [helper.make_tensor_value_info(n, elem, None) for n in ("input", "target")],
        [helper.make_tensor_value_info("loss", elem, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(spec.DOMAIN, 1)])
    model.ir_version = 9
    return model


_SESSIONS: dict = {}


def kernel_session(model: onnx.ModelProto, threads: int | None = None):
    key = (model.SerializeToString(), threads)
    if key not in _SESSIONS:
        if len(_SESSIONS) > 256:  # random deltas (hypothesis) would pile sessions up
            _SESSIONS.clear()
        options = None
        if threads is not None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
        session = sl1.inference_session(model, custom_op=True, options=options)
        assert session.smoothl1_path == "kernel"
        _SESSIONS[key] = session
    return _SESSIONS[key]


def run_huber(x: np.ndarray, y: np.ndarray, *, delta: float, reduction: str, dtype: str,
              threads: int | None = None) -> np.ndarray:
    session = kernel_session(huber_model(dtype, delta=delta, reduction=reduction), threads)
    return runtime.run(session, {"input": x, "target": y})[0]


# --- the oracle --------------------------------------------------------------------------------


def _to_torch(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if a.dtype == oracle.NUMPY_DTYPES["bfloat16"]:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a.copy())


def torch_reference(x, y, *, delta: float, reduction: str) -> np.ndarray:
    """torch's huber_loss in float64 on the inputs upcast (exact for every dtype)."""
    x64 = torch.from_numpy(np.asarray(x).astype(np.float64))
    y64 = torch.from_numpy(np.asarray(y).astype(np.float64))
    return torch.nn.functional.huber_loss(x64, y64, reduction=reduction,
                                          delta=oracle.as_beta(delta)).numpy()


def torch_own(x, y, *, delta: float, reduction: str) -> np.ndarray:
    """torch's huber_loss in the inputs' dtype (PyTorch's own result)."""
    out = torch.nn.functional.huber_loss(_to_torch(x), _to_torch(y), reduction=reduction,
                                         delta=oracle.as_beta(delta))
    if out.dtype == torch.bfloat16:
        return out.float().numpy().astype(oracle.NUMPY_DTYPES["bfloat16"])
    return out.numpy()


def assert_huber_parity(out, x, y, *, delta: float, reduction: str, dtype: str) -> None:
    with np.errstate(all="ignore"):
        ref = torch_reference(x, y, delta=delta, reduction=reduction)
        own = torch_own(x, y, delta=delta, reduction=reduction)
        verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"{dtype} delta={delta} {reduction}: {verdict.detail} (out={out!r}, ref={ref!r})"


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal (any NaN equals any NaN: payloads are not part of the contract)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = np.isnan(a.astype(np.float64))
    if not np.array_equal(nan, np.isnan(b.astype(np.float64))):
        return False
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a[~nan].view(bits), b[~nan].view(bits)))


# --- parity with torch --------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_parity_grid(dtype, shape, delta, reduction):
    """Every dtype x reduction x delta on rank 0, one, empty, equal and broadcast shapes."""
    x, y = make_inputs(*SHAPES[shape], dtype, seed=stable_seed(shape, dtype))
    out = run_huber(x, y, delta=delta, reduction=reduction, dtype=dtype)
    assert out.dtype == oracle.NUMPY_DTYPES[dtype]
    assert out.shape == (np.broadcast_shapes(x.shape, y.shape) if reduction == "none" else ())
    assert_huber_parity(out, x, y, delta=delta, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize(
    "shapes", [((100_003,), (100_003,)), ((7, 1, 3001), (5, 3001)), ((40_001,), ())],
    ids=["contiguous", "broadcast", "scalar-target"],
)
def test_none_is_torch_bitwise(dtype, delta, shapes):
    """float32 / float16 'none' is torch's own result bit for bit: same compute type (float),
    same operations, one rounding (vector loops, their tails and the strided path alike)."""
    x, y = make_inputs(*shapes, dtype, seed=stable_seed(shapes, dtype, delta))
    out = run_huber(x, y, delta=delta, reduction="none", dtype=dtype)
    assert same_bits(out, torch_own(x, y, delta=delta, reduction="none"))


def test_bfloat16_is_rounded_once():
    """bfloat16: torch rounds to bfloat16 after every operation; the kernel rounds the float
    result once, so it is within one rounding of the exact value where torch is not."""
    x, y = make_inputs((50_001,), (50_001,), "bfloat16", seed=3)
    out = run_huber(x, y, delta=0.35, reduction="none", dtype="bfloat16")
    expected = (_float_huber(x, y, 0.35)).astype(oracle.NUMPY_DTYPES["bfloat16"])
    assert same_bits(out, expected)
    assert_huber_parity(out, x, y, delta=0.35, reduction="none", dtype="bfloat16")


def _float_huber(x, y, delta: float) -> np.ndarray:
    """The formula in numpy float32 ((0.5 * d) * d, delta * (d - delta/2)): what the kernel
    computes for half types before its one rounding."""
    xf, yf = np.asarray(x).astype(np.float32), np.asarray(y).astype(np.float32)
    d = np.abs(xf - yf)
    dl = np.float32(delta)
    half = np.float32(np.float64(dl) * 0.5)
    return np.where(d < dl, (np.float32(0.5) * d) * d, dl * (d - half))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shapes",
    [((300, 1, 7), (1, 200, 7)), ((70_001,), ()), ((), (3, 50_000)), ((5, 40_000), (40_000,)),
     ((2, 1, 30_000), (2, 3, 1))],
    ids=["outer", "scalar-target", "scalar-input", "row", "mixed"],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parity_broadcast_multiblock(dtype, shapes, reduction):
    """Broadcast (strided) path across many 16384-element blocks."""
    x, y = make_inputs(*shapes, dtype, seed=5)
    out = run_huber(x, y, delta=0.5, reduction=reduction, dtype=dtype)
    assert_huber_parity(out, x, y, delta=0.5, reduction=reduction, dtype=dtype)


def test_fused_node_ran():
    """ORT's profiler shows one HuberLoss node: the kernel ran, not something else."""
    x, y = make_inputs((4, 1, 3), (5, 3), "float32", seed=2)
    model = huber_model("float32", delta=2.0, reduction="sum")
    outputs, ops = runtime.profile_node_ops(model, {"input": x, "target": y}, custom_op=True)
    assert ops == [HUBER], ops
    assert_huber_parity(outputs[0], x, y, delta=2.0, reduction="sum", dtype="float32")


def test_defaults_are_delta_1_mean():
    x, y = make_inputs((3, 50), (3, 50), "float32", seed=8)
    session = kernel_session(huber_model("float32"))
    out = runtime.run(session, {"input": x, "target": y})[0]
    assert same_bits(out, run_huber(x, y, delta=1.0, reduction="mean", dtype="float32"))
    assert_huber_parity(out, x, y, delta=1.0, reduction="mean", dtype="float32")


def test_huber_and_smoothl1_nodes_in_one_model():
    """Both op types of the domain in one graph, each with its own attributes."""
    nodes = [
        helper.make_node(HUBER, ["input", "target"], ["h"], domain=spec.DOMAIN, name="h",
                         delta=0.25, reduction="sum"),
        helper.make_node(spec.OP_TYPE, ["input", "target"], ["s"], domain=spec.DOMAIN, name="s",
                         beta=0.25, reduction="sum"),
        helper.make_node(HUBER, ["input", "target"], ["n"], domain=spec.DOMAIN, name="n",
                         delta=3.0, reduction="none"),
    ]
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info(n, f, None) for n in ("input", "target")],
        [helper.make_tensor_value_info(n, f, None) for n in ("h", "s", "n")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(spec.DOMAIN, 1)])
    model.ir_version = 9
    x, y = make_inputs((3, 400), (400,), "float32", seed=6)
    h, s, n = runtime.run(sl1.inference_session(model, custom_op=True), {"input": x, "target": y})
    assert_huber_parity(h, x, y, delta=0.25, reduction="sum", dtype="float32")
    assert_huber_parity(n, x, y, delta=3.0, reduction="none", dtype="float32")
    ref = oracle.reference(x, y, beta=0.25, reduction="sum")
    assert oracle.compare(s, ref, dtype="float32", reduction="sum",
                          torch_own=oracle.torch_same_dtype(x, y, beta=0.25, reduction="sum")).ok
    # Huber(delta) = delta * SmoothL1(beta=delta): a float32-accurate identity of the sums.
    assert math.isclose(float(h), 0.25 * float(s), rel_tol=1e-6)


# --- determinism and accuracy -----------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", [((2**20 + 3,), (2**20 + 3,)), ((1025, 1, 1024), (1, 1024))],
                         ids=["contiguous", "broadcast"])
def test_bitwise_identical_across_thread_counts(reduction, shapes):
    x, y = make_inputs(*shapes, "float32", seed=9)
    outs = [run_huber(x, y, delta=0.5, reduction=reduction, dtype="float32", threads=t)
            for t in (1, 2, 4, 2)]
    for out in outs[1:]:
        assert out.tobytes() == outs[0].tobytes()
    assert_huber_parity(outs[0], x, y, delta=0.5, reduction=reduction, dtype="float32")


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_bitwise_identical_across_thread_counts_other_dtypes(dtype):
    x, y = make_inputs((2**19 + 7,), (2**19 + 7,), dtype, seed=4)
    outs = [run_huber(x, y, delta=1.0, reduction="sum", dtype=dtype, threads=t) for t in (1, 2, 4)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_float32_mean_relative_error_2_22():
    """The element losses carry torch's float32 roundings; their double sum adds none."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(2**22, dtype=np.float32)
    y = (rng.standard_normal(2**22, dtype=np.float32) * 3).astype(np.float32)
    out = run_huber(x, y, delta=1.0, reduction="mean", dtype="float32", threads=2)
    ref = float(torch_reference(x, y, delta=1.0, reduction="mean"))
    assert abs(float(out) - ref) / abs(ref) <= 1e-7


# --- edge cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_rank0(dtype):
    npdt = oracle.NUMPY_DTYPES[dtype]
    for xs, ys in [((0,), (0,)), ((0, 3), (3,)), ((2, 0), (1, 0))]:
        x, y = np.zeros(xs, npdt), np.zeros(ys, npdt)
        mean = run_huber(x, y, delta=1.0, reduction="mean", dtype=dtype)
        total = run_huber(x, y, delta=1.0, reduction="sum", dtype=dtype)
        none = run_huber(x, y, delta=1.0, reduction="none", dtype=dtype)
        assert mean.shape == () and np.isnan(mean.astype(np.float64))
        assert total.shape == () and float(total) == 0.0
        assert none.shape == np.broadcast_shapes(xs, ys) and none.dtype == npdt
    x, y = np.array(2.5, npdt), np.array(0.5, npdt)
    for reduction in REDUCTIONS:  # linear branch: 1 * (2 - 0.5)
        out = run_huber(x, y, delta=1.0, reduction=reduction, dtype=dtype)
        assert out.shape == () and float(out) == 1.5
    out = run_huber(np.array(0.75, npdt), np.array(0.25, npdt), delta=2.0, reduction="none",
                    dtype=dtype)  # quadratic branch: 0.5 * 0.5^2
    assert out.shape == () and float(out) == 0.125


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delta", [0.5, 1.0])
def test_nan_inf_like_torch(dtype, delta):
    npdt = oracle.NUMPY_DTYPES[dtype]
    vals = [np.nan, np.inf, -np.inf, 0.0, 1.0, -3.0]
    x = np.array([a for a in vals for _ in vals], dtype=npdt)
    y = np.array([b for _ in vals for b in vals], dtype=npdt)
    for reduction in REDUCTIONS:
        out = run_huber(x, y, delta=delta, reduction=reduction, dtype=dtype)
        assert_huber_parity(out, x, y, delta=delta, reduction=reduction, dtype=dtype)


# --- errors: at session creation, naming the node and delta --------------------------------------


@pytest.mark.parametrize(
    "attrs, pattern",
    [({"delta": 0.0}, r"invalid attribute delta=0 "), ({"delta": -1.0}, r"delta=-1 "),
     ({"delta": -0.25}, r"delta=-0\.25 "), ({"delta": float("nan")}, r"delta=nan"),
     ({"delta": float("inf")}, r"delta=inf"), ({"delta": float("-inf")}, r"delta=-inf"),
     ({"delta": 1}, r"invalid attribute delta: must be a FLOAT, got INT"),
     ({"delta": "1.0"}, r"invalid attribute delta: must be a FLOAT, got STRING"),
     ({"delta": [1.0]}, r"invalid attribute delta: must be a FLOAT, got FLOATS"),
     ({"reduction": "avg"}, r"reduction='avg'")],
    ids=["zero", "minus-one", "negative", "nan", "inf", "-inf", "int", "string", "floats",
         "reduction"],
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bad_attributes_fail_session_creation(attrs, pattern, dtype):
    """The kernel validates at kernel creation: ORT's InferenceSession constructor fails with
    a message naming the node and the attribute (no Python-side check involved)."""
    with pytest.raises(Exception) as info:
        raw_session(huber_model(dtype, name="my_huber", **attrs))
    message = str(info.value)
    assert "HuberLoss node 'my_huber'" in message, message
    assert re.search(pattern, message), message
    if "delta" in attrs and not isinstance(attrs["delta"], (int, str, list)):
        assert "must be a finite float > 0" in message, message


@pytest.mark.parametrize("delta", [1e-45, 1e-30, 3.4e38])
def test_extreme_valid_deltas_are_accepted(delta):
    x, y = make_inputs((1000,), (1000,), "float32", seed=7)
    out = run_huber(x, y, delta=delta, reduction="none", dtype="float32")
    assert same_bits(out, torch_own(x, y, delta=delta, reduction="none"))


def test_unbroadcastable_shapes_run_error():
    session = kernel_session(huber_model("float32", delta=1.0, reduction="mean"))
    with pytest.raises(Exception) as info:
        runtime.run(session, {"input": np.zeros((3, 4), np.float32),
                              "target": np.zeros((5,), np.float32)})
    message = str(info.value)
    assert "HuberLoss node 'huber'" in message and "[3, 4]" in message and "[5]" in message, message
    out = runtime.run(session, {"input": np.ones((2,), np.float32),
                                "target": np.zeros((2,), np.float32)})[0]
    assert float(out) == 0.5  # the session stays usable


# --- property test (hypothesis) -------------------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)
SPECIAL_DELTAS = [float(np.float32(1e-45)), 1e-40, 1e-30, 1e-3, 0.5, 1.0, 1e30, F32_MAX]
deltas = st.one_of(
    st.sampled_from(SPECIAL_DELTAS),
    st.floats(min_value=2.0**-149, max_value=F32_MAX, allow_nan=False, allow_infinity=False,
              width=32),
    st.floats(min_value=2.0**-10, max_value=2.0**10, width=32),
)


@st.composite
def huber_cases(draw):
    """(x, y, delta, reduction, dtype): broadcastable shapes of rank 0-5 with sizes 0-4,
    values from test_property's element strategy (NaN, +-inf, +-0, extremes, any
    magnitude), or every |x - y| straddling delta."""
    dtype = draw(st.sampled_from(DTYPES))
    delta = draw(deltas)
    reduction = draw(st.sampled_from(REDUCTIONS))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=5,
                                                   min_side=0, max_side=4))
    sx, sy = shapes.input_shapes
    if draw(st.booleans()):
        c = draw(st.floats(min_value=-1e3, max_value=1e3))
        factors = draw(hnp.arrays(np.float64, sx, elements=st.sampled_from(
            [1.0, -1.0, 1 - 2.0**-10, 1 + 2.0**-10, 1 - 1e-7, 1 + 1e-7, 0.5, -2.0, 0.0])))
        ys = np.full(sy, c)
        with np.errstate(all="ignore"):
            xs = c + oracle.as_beta(delta) * factors
        note("mode=near-delta")
    else:
        ys = draw(hnp.arrays(np.float64, sy, elements=elements(dtype)))
        xs = draw(hnp.arrays(np.float64, sx, elements=elements(dtype)))
    npdt = oracle.NUMPY_DTYPES[dtype]
    with np.errstate(all="ignore"):
        return np.asarray(xs).astype(npdt), np.asarray(ys).astype(npdt), delta, reduction, dtype


def check_property(out, x, y, delta: float, reduction: str, dtype: str) -> None:
    with np.errstate(all="ignore"):
        ref = torch_reference(x, y, delta=delta, reduction=reduction)
        own = torch_own(x, y, delta=delta, reduction=reduction)
        verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"{dtype} delta={delta!r} {reduction}: {verdict.detail}\nout={out!r}\nref={ref!r}\ntorch={own!r}"


@given(case=huber_cases())
def test_property_agrees_with_torch(case):
    """Random shapes / dtypes / deltas / reductions / values: within SPEC of torch."""
    x, y, delta, reduction, dtype = case
    note(f"dtype={dtype} delta={delta!r} reduction={reduction} x={x!r} y={y!r}")
    out = run_huber(x, y, delta=delta, reduction=reduction, dtype=dtype)
    check_property(out, x, y, delta, reduction, dtype)
