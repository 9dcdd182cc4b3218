"""Shared checks for the compiler parity paths (tests/test_parity_iree.py, test_parity_tvm.py):
a small grid subset (both losses), a user model with its own shapes (SmoothL1Loss and
HuberLoss nodes), the on-disk cache, a missing package, the group model of both losses."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
from onnx import TensorProto, helper

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, parity
from onnx_smoothl1.function import make_huber_node, make_node
from onnx_smoothl1.model import ir_version_for
from onnx_smoothl1.parity.registry import PATHS

#: Rank 0, empty, broadcasting, odd sizes, NaN/inf: the shapes most likely to trip a compiler.
SHAPES = ("rank0", "empty", "broadcast", "odd", "nonfinite")


def check_grid_subset(name: str, dtypes: tuple[str, ...]) -> None:
    report = parity.run_grid(dtypes, paths=[name], shapes=SHAPES, betas=(0.0, 0.3, 7.5), deltas=(0.35, 2.5))
    assert report.ok, report.text()
    for dtype in dtypes:
        cell = report.cells[name, dtype]
        assert cell.status == parity.PASS and cell.count(parity.PASS) == len(cell.results), cell.summary()
        assert sum(r.case.loss == "huber" for r in cell.results) == len(SHAPES) * 2 * 3
    assert report.ran[name] == "inlined model"


def check_group_holds_both_losses() -> None:
    """One compile per dtype serves every case of it, both losses: the group model holds a
    node per (shape, parameter, reduction) of the cases, an input pair per shape, and no
    custom node (inlined); the cases of a (dtype, shape) share the inputs."""
    from onnx_smoothl1.parity.groups import group_inputs, group_model_bytes, group_specs, shape_spec

    cases = parity.grid(("float32", "float64"), shapes=("one", "broadcast"), betas=(0.0, 0.3), deltas=(1.0,))
    slots = group_specs(cases)
    groups = {group for group, _ in slots.values()}
    assert len(groups) == 2 and {g[0] for g in groups} == {"float32", "float64"}
    group, _ = slots[cases[0]]
    assert group[1] == (parity.SHAPES["one"], parity.SHAPES["broadcast"])
    assert len(group[2]) == 2 * (2 + 1) * 3  # shapes x (betas + deltas) x reductions
    positions = {slots[c][1] for c in cases if c.dtype == "float32"}
    assert positions == set(range(len(group[2])))  # one node per case, none shared, none unused
    model = onnx.ModelProto.FromString(group_model_bytes(group))
    assert [i.name for i in model.graph.input] == ["input_0", "target_0", "input_1", "target_1"]
    assert len(model.graph.output) == len(group[2])
    assert sum("huber" in o.name for o in model.graph.output) == 2 * 3
    assert parity.models.custom_nodes(model) == []
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [[1], [1], [4, 1, 3], [5, 3]]
    x, y = parity.make_inputs(cases[0])
    feeds = group_inputs(group, 0, x, y)
    assert np.array_equal(feeds[0], x) and not feeds[2].any()
    alone, moved = shape_spec(group, 1)
    assert alone[1] == (parity.SHAPES["broadcast"],) and len(alone[2]) == len(moved) == 9
    assert all(group[2][i][1:] == alone[2][j][1:] for i, j in moved.items())


def two_loss_model() -> onnx.ModelProto:
    """Two SmoothL1Loss nodes with different attributes and a HuberLoss node, float64,
    inputs of unknown shape."""
    graph = helper.make_graph(
        [make_node("x", "y", "s", beta=0.25, reduction="sum"), make_node("x", "y", "n", beta=2.0, reduction="none"),
         make_huber_node("x", "y", "h", delta=0.35, reduction="mean")],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in ("x", "y")],
        [helper.make_tensor_value_info("s", TensorProto.DOUBLE, []),
         helper.make_tensor_value_info("n", TensorProto.DOUBLE, None),
         helper.make_tensor_value_info("h", TensorProto.DOUBLE, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sl1.attach_function(model, "float64")
    model.ir_version = ir_version_for(model)
    return model


def check_user_model_and_cache(name: str, monkeypatch, tmp_path) -> None:
    """A user's model runs with the feeds' shapes, in float64; a second path instance loads
    the compiled module from the disk cache instead of compiling."""
    monkeypatch.setenv("ONNX_SMOOTHL1_COMPILE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 6, 5)) * 3
    feeds = {"x": x, "y": y}
    path = PATHS[name]()
    assert path.unavailable is None, path.unavailable
    s, n, h = path.run_model(two_loss_model(), feeds)
    assert s.dtype == np.float64 and n.dtype == np.float64 and n.shape == (6, 5)
    assert oracle.compare(h, oracle.reference(x, y, loss="huber", delta=0.35, reduction="mean"),
                          dtype="float64", reduction="mean").ok
    assert oracle.compare(s, oracle.reference(x, y, beta=0.25, reduction="sum"), dtype="float64", reduction="sum").ok
    assert oracle.compare(n, oracle.reference(x, y, beta=2.0, reduction="none"), dtype="float64",
                          reduction="none").ok
    assert path.what_ran() == "inlined model"
    cached = list((tmp_path / "cache" / name).iterdir())
    assert len(cached) == 1, cached

    assert path.last_compiled

    fresh = PATHS[name]()
    again = fresh.run_model(two_loss_model(), feeds)
    assert not fresh.last_compiled  # loaded from the cache
    np.testing.assert_array_equal(again[1], n)
    # Other shapes are another model: compiled, and cached beside the first.
    fresh.run_model(two_loss_model(), {"x": x[:1], "y": y[:1]})
    assert fresh.last_compiled
    assert len(list((tmp_path / "cache" / name).iterdir())) == 2
    path.close()
    fresh.close()


def check_hang_is_contained(name: str, monkeypatch, tmp_path) -> None:
    """A worker that does not answer in time is killed; its cases are unsupported with that
    message (never a pass), each group is tried once (a hang is not repeated per case), and
    the fallback to per-shape groups runs in a fresh worker."""
    monkeypatch.setenv("ONNX_SMOOTHL1_COMPILE_CACHE", str(tmp_path / "cold"))
    monkeypatch.setenv("ONNX_SMOOTHL1_COMPILE_TIMEOUT", "0.5")
    report = parity.run_grid(("float32",), paths=[name], shapes=("one", "odd"), betas=(1.0,), deltas=(1.0,))
    cell = report.cells[name, "float32"]
    assert cell.status == parity.UNSUPPORTED and cell.count(parity.PASS) == 0
    reasons = cell.reasons()
    assert sum(reasons.values()) == 12 and all("crashed: no answer within 0.5 s (killed)" in r for r in reasons)


def check_missing_package(name: str, module: str, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == module else real(m, *a))
    reason = PATHS[name]().unavailable
    # the packages that install just this runtime (not the whole [test] stack)
    install = {"iree": "iree-base-compiler iree-base-runtime", "tvm": "apache-tvm", "onnx2torch": "onnx2torch"}[name]
    assert reason == f"{module} is not installed (pip install {install})"
    report = parity.run_grid(("float32",), paths=[name], shapes=("one",), betas=(1.0,), deltas=(1.0,))
    cell = report.cells[name, "float32"]
    assert cell.status == parity.UNSUPPORTED and cell.reasons() == {reason: 6}
