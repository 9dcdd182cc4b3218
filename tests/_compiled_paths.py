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
    """One compile per (dtype, shape) serves both losses: the group model holds a node per
    grid beta x reduction and per grid delta x reduction (no custom node left: inlined)."""
    from onnx_smoothl1.parity.runtimes._compiled import group_model_bytes, in_group

    model = onnx.ModelProto.FromString(group_model_bytes("float32", ((3,), (3,))))
    names = [o.name for o in model.graph.output]
    assert len(names) == len(parity.BETAS) * 3 + len(parity.DELTAS) * 3
    assert sum(n.startswith("huber_") for n in names) == len(parity.DELTAS) * 3
    assert parity.models.custom_nodes(model) == []
    assert all(in_group(c) for c in parity.grid())
    assert not in_group(parity.Case("one", "float32", 0.7, "sum", "huber"))


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

    fresh = PATHS[name]()
    compiled: list[object] = []
    real = fresh.compile_to
    monkeypatch.setattr(fresh, "compile_to", lambda model, where: (compiled.append(where), real(model, where)))
    again = fresh.run_model(two_loss_model(), feeds)
    assert not compiled  # loaded from the cache
    np.testing.assert_array_equal(again[1], n)
    # Other shapes are another model: compiled, and cached beside the first.
    fresh.run_model(two_loss_model(), {"x": x[:1], "y": y[:1]})
    assert len(compiled) == 1
    assert len(list((tmp_path / "cache" / name).iterdir())) == 2


def check_missing_package(name: str, module: str, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == module else real(m, *a))
    reason = PATHS[name]().unavailable
    assert reason == f"{module} is not installed (pip install 'onnx-smoothl1[test]')"
    report = parity.run_grid(("float32",), paths=[name], shapes=("one",), betas=(1.0,), deltas=(1.0,))
    cell = report.cells[name, "float32"]
    assert cell.status == parity.UNSUPPORTED and cell.reasons() == {reason: 6}
