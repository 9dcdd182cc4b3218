"""The execution-provider parity paths (onnx_smoothl1/parity/runtimes/ort_webgpu.py,
ort_openvino_ep.py; onnx_smoothl1/parity/placement.py): placement proof.

A hand-built graph of the standard ops the float32 function body is made of (Sub, Abs, Less,
Mul, Div, Where; for the reduction Reshape/Shape/Mul/Mod/Pad/ReduceSum/Size/Cast/Div):

- float32: every compute node runs on the EP (WebGPU, OpenVINO); only the integer size/pad
  arithmetic stays on CPU;
- float64: the EP takes none (WebGPU) or almost none (OpenVINO) of the compute nodes, and
  the path fails with the CPU nodes listed (ORT's silent fallback is caught).

The runtimes come from scripts/setup_runtimes.sh. A runtime it could not set up leaves
third_party/runtimes/<name>.unavailable: then these tests skip, with that reason, except
under CI (env CI or ONNX_SMOOTHL1_REQUIRE_RUNTIMES set; .ci/run sets the latter), where a
missing runtime fails.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from onnx_smoothl1 import parity
from onnx_smoothl1.parity import CPU_EP, Placement, PlacementError

BLOCK = 256
#: The compute ops of the graph: each must run on the EP for float32.
COMPUTE_OPS = {"Sub", "Abs", "Less", "Mul", "Div", "Where", "Pad", "ReduceSum", "Reshape"}


def smoothl1_graph(dtype=np.float32, beta: float = 1.0, rank: int = 2, tail: str = "squeeze"):
    """Element-wise SmoothL1 plus a blocked sum and a mean; outputs (none, sum, mean).

    ``tail`` is how the last ReduceSum makes the scalar: "squeeze" (keepdims=1, then Squeeze)
    or "keepdims0" (ReduceSum keepdims=0).
    """
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def const(name, value, dt=dtype):
        return numpy_helper.from_array(np.asarray(value, dt), name)

    inits = [
        const("half", 0.5), const("beta", beta), const("halfbeta", 0.5 * beta),
        const("minus1", [-1], np.int64), const("blk", BLOCK, np.int64),
        const("blkshape", [-1, BLOCK], np.int64), const("padmask", [0, 1], np.int64),
        const("one1", [1], np.int64), const("axis1", [1], np.int64), const("axis0", [0], np.int64),
    ]
    n = helper.make_node
    nodes = [
        n("Sub", ["x", "y"], ["diff"], name="sub"),
        n("Abs", ["diff"], ["d"], name="abs"),
        n("Less", ["d", "beta"], ["small"], name="less"),
        n("Mul", ["d", "half"], ["hd"], name="mul_half"),
        n("Mul", ["hd", "d"], ["hdd"], name="mul_sq"),
        n("Div", ["hdd", "beta"], ["quad"], name="div_beta"),
        n("Sub", ["d", "halfbeta"], ["lin"], name="sub_halfbeta"),
        n("Where", ["small", "quad", "lin"], ["loss"], name="where"),
        n("Shape", ["loss"], ["shp"], name="shape"),
        n("Reshape", ["loss", "shp"], ["none"], name="reshape_none"),
        n("Reshape", ["loss", "minus1"], ["flat"], name="reshape_flat"),
        n("Size", ["loss"], ["size"], name="size"),
        n("Mod", ["size", "blk"], ["rem"], name="mod_rem"),
        n("Sub", ["blk", "rem"], ["gap"], name="sub_gap"),
        n("Mod", ["gap", "blk"], ["padn"], name="mod_pad"),
        n("Reshape", ["padn", "one1"], ["padn1"], name="reshape_pad"),
        n("Mul", ["padn1", "padmask"], ["pads"], name="mul_pads"),
        n("Pad", ["flat", "pads"], ["padded"], name="pad"),
        n("Reshape", ["padded", "blkshape"], ["blocks"], name="reshape_blocks"),
        n("ReduceSum", ["blocks", "axis1"], ["partial"], name="reducesum_blocks", keepdims=0),
    ]
    if tail == "squeeze":
        nodes += [
            n("ReduceSum", ["partial", "axis0"], ["total1"], name="reducesum_total", keepdims=1),
            n("Squeeze", ["total1", "axis0"], ["total"], name="squeeze_total"),
        ]
    else:
        nodes.append(n("ReduceSum", ["partial", "axis0"], ["total"], name="reducesum_total", keepdims=0))
    nodes += [
        n("Cast", ["size"], ["sizef"], name="cast_size", to=elem),
        n("Div", ["total", "sizef"], ["mean"], name="div_mean"),
    ]
    dims = [f"d{i}" for i in range(rank)]
    graph = helper.make_graph(
        nodes, "smoothl1_ops",
        [helper.make_tensor_value_info("x", elem, dims), helper.make_tensor_value_info("y", elem, dims)],
        [helper.make_tensor_value_info("none", elem, dims), helper.make_tensor_value_info("total", elem, []),
         helper.make_tensor_value_info("mean", elem, [])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_reference(x, y, beta=1.0):
    d = np.abs(x - y)
    loss = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    with np.errstate(all="ignore"):
        mean = loss.sum(dtype=np.float64) / loss.size if loss.size else np.nan
    return loss, loss.sum(dtype=np.float64), mean


def feeds(dtype, shape=(3, 70), seed=0):
    rng = np.random.default_rng(seed)
    return {"x": (rng.standard_normal(shape) * 2).astype(dtype), "y": rng.standard_normal(shape).astype(dtype)}


def _path(cls):
    path = cls()
    reason = path.unavailable
    if reason is not None:
        marker = parity.unavailable_reason(path.runtime)
        required = os.environ.get("CI") or os.environ.get("ONNX_SMOOTHL1_REQUIRE_RUNTIMES")
        if marker is not None and not required:
            pytest.skip(f"{path.name}: unsupported: {reason}")
        pytest.fail(
            f"{path.name} is not available: {reason}"
            + (" (CI: runtimes must be set up)" if marker is not None else
               " (run scripts/setup_runtimes.sh: it sets the runtime up or records why not)")
        )
    return path


@pytest.fixture(scope="module", params=parity.EP_PATHS, ids=lambda c: c.name)
def ep_path(request):
    path = _path(request.param)
    yield path
    path.close()


def test_float32_compute_nodes_run_on_the_ep(ep_path):
    f = feeds(np.float32)
    none, total, mean = ep_path.run_model(smoothl1_graph(np.float32), f)
    placement = ep_path.last_placement
    assert placement.providers[0] == ep_path.ep
    cpu = placement.on(CPU_EP)
    # Only integer size/pad arithmetic (and Shape/Size) may stay on CPU.
    assert not placement.cpu_compute_nodes(), cpu
    # WebGPU: one kernel per node (profile); OpenVINO: the nodes inside its fused subgraphs
    # (assignment record). Either way every compute op of the graph is on the EP.
    on_ep = {op for op, _ in placement.on(ep_path.ep)}
    assert COMPUTE_OPS <= on_ep, sorted(on_ep)
    ref = numpy_reference(f["x"], f["y"])
    np.testing.assert_allclose(none, ref[0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(total, ref[1], rtol=1e-5)
    np.testing.assert_allclose(mean, ref[2], rtol=1e-5)


@pytest.mark.parametrize("shape", [(0,), (), (1,), (5, 0, 3)], ids=["empty", "rank0", "one", "empty3d"])
def test_float32_edge_shapes_compute(ep_path, shape):
    """Edge shapes run; where the EP sends nodes to CPU the path fails (never silently)."""
    f = feeds(np.float32, shape)
    model = smoothl1_graph(np.float32, rank=len(shape))
    try:
        none, total, mean = ep_path.run_model(model, f)
    except PlacementError as exc:
        assert CPU_EP in str(exc)
        pytest.xfail(f"{ep_path.name} leaves compute on CPU for shape {shape}: {exc}")
    ref = numpy_reference(f["x"], f["y"])
    np.testing.assert_allclose(none, ref[0], rtol=1e-6)
    np.testing.assert_allclose(total, ref[1], rtol=1e-5)
    if np.prod(shape) == 0:
        assert np.isnan(mean)
    else:
        np.testing.assert_allclose(mean, ref[2], rtol=1e-5)


def test_float64_falls_back_to_cpu_and_fails(ep_path):
    """The placement check catches a graph that runs on CPU. A user's float64 model on an EP
    without float64 arithmetic is reported unsupported (a known limit) with that same
    measured placement; anything else on CPU is a PlacementError (next tests)."""
    with pytest.raises((PlacementError, parity.Unsupported), match=CPU_EP) as info:
        ep_path.run_model(smoothl1_graph(np.float64), feeds(np.float64))
    assert isinstance(info.value, parity.Unsupported)  # float64 is in both EPs' limits
    text = str(info.value.__cause__)
    for op in ("Sub(double,double)", "Abs(double)", "Where(bool,double,double)"):
        assert op in text, text
    assert "nodes: " in text and "'" not in text.split("nodes: ")[0]  # names listed at the end
    assert "sub" in text.split("nodes: ")[1]


def test_keepdims0_scalar_reducesum():
    """ReduceSum(keepdims=0) to a scalar: WebGPU takes it; OpenVINO EP 1.24.1 leaves it on CPU
    (the function body should end its reductions with keepdims=1 + Squeeze)."""
    model = smoothl1_graph(np.float32, tail="keepdims0")
    for cls in parity.EP_PATHS:
        path = _path(cls)
        try:
            if cls is parity.OrtOpenVinoEpPath:
                with pytest.raises(PlacementError, match=r"ReduceSum\(float,int64\); nodes: reducesum_total"):
                    path.run_model(model, feeds(np.float32))
            else:
                path.run_model(model, feeds(np.float32))
        finally:
            path.close()


# --------------------------------------------------------------------------------------
# Without a runtime: the placement rule and the unavailable reporting
# --------------------------------------------------------------------------------------


def _placement(assigned, events, providers=("WebGpuExecutionProvider", CPU_EP)):
    return Placement(list(providers), assigned, events, "test")


def test_placement_allows_shape_bookkeeping_on_cpu():
    p = _placement(
        [(CPU_EP, "Size", "size"), (CPU_EP, "Mod", "mod"), (CPU_EP, "Cast", "cast"), (CPU_EP, "Shape", "shape")],
        {
            "size": ("Size", CPU_EP, ["float"]),
            "mod": ("Mod", CPU_EP, ["int64", "int64"]),
            "cast": ("Cast", CPU_EP, ["int64"]),
            "shape": ("Shape", CPU_EP, ["float"]),
            "sub": ("Sub", "WebGpuExecutionProvider", ["float", "float"]),
        },
    )
    p.check("WebGpuExecutionProvider")
    assert p.on("WebGpuExecutionProvider") == [("Sub", "sub")]


@pytest.mark.parametrize(
    "events, needle",
    [
        ({"mul": ("Mul", CPU_EP, ["float", "float"])}, "Mul(float,float); nodes: mul"),
        ({"cast": ("Cast", CPU_EP, ["float"])}, "Cast(float)"),  # a Cast of data, not of a size
        ({"less": ("Less", CPU_EP, ["int64", "int64"])}, "Less(int64,int64)"),  # not shape arithmetic
        ({"red": ("ReduceSum", CPU_EP, [])}, "ReduceSum(not run)"),
    ],
)
def test_placement_rejects_compute_on_cpu(events, needle):
    events = {**events, "abs": ("Abs", "WebGpuExecutionProvider", ["float"])}
    with pytest.raises(PlacementError, match="compute node") as info:
        _placement([], events).check("WebGpuExecutionProvider")
    assert needle in str(info.value)


def test_placement_rejects_a_session_without_the_ep():
    p = _placement([(CPU_EP, "Abs", "abs")], {}, providers=(CPU_EP,))
    with pytest.raises(PlacementError, match="not the session's provider"):
        p.check("WebGpuExecutionProvider")
    p = _placement([(CPU_EP, "Size", "size")], {})
    with pytest.raises(PlacementError, match="no node was placed"):
        p.check("WebGpuExecutionProvider")


def test_unavailable_file_is_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(parity.RUNTIMES_ENV, str(tmp_path))
    (tmp_path / "webgpu.unavailable").write_text("apt-get download failed: no network\n")
    (tmp_path / "openvino.unavailable").write_text("pip install failed\n")
    assert parity.OrtWebGpuPath().unavailable == "apt-get download failed: no network"
    assert parity.OrtOpenVinoEpPath().unavailable == "pip install failed"


def test_not_set_up_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(parity.RUNTIMES_ENV, str(tmp_path))
    monkeypatch.setenv(parity.OPENVINO_PYTHON_ENV, str(tmp_path / "nope" / "python"))
    assert "setup_runtimes.sh" in parity.OrtOpenVinoEpPath().unavailable
    reason = parity.OrtWebGpuPath().unavailable
    assert "setup_runtimes.sh" in reason or "not installed" in reason


def test_grid_cells_for_dtypes_the_ep_lacks():
    """float64/bfloat16 grid cases on WebGPU are unsupported up front (WGSL has neither)."""
    path = parity.OrtWebGpuPath()
    case = parity.Case("one", "float64", 1.0, "mean")
    with pytest.raises(parity.Unsupported, match="64-bit"):
        path.run_case(case, np.ones(1), np.ones(1))
