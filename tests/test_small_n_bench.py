"""benchmarks/small_n.py: its stage and size-switch models compute what its rows say.

The timings themselves are not asserted (the machine is shared); what is checked is that a
row measures the graph it names: the stage models are the body's own nodes cut at the right
tensor, and the size-switch model gives the function's loss on both sides of the threshold,
NaN for an empty 'mean' included (the reason the switch divides by the count instead of
using ReduceMean).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_ort_function

from onnx_smoothl1 import oracle

ROOT = Path(__file__).resolve().parents[1]


def _small_n():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("bench_small_n", ROOT / "benchmarks" / "small_n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(model, x, y):
    return float(run_ort_function(model.SerializeToString(), x, y))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_size_switch_gives_the_loss_on_both_sides(reduction):
    bench = _small_n()
    model, below, from_t = bench.switch_model(reduction, 64)
    function, function_nodes = bench.stage_model(reduction, None)
    assert below < function_nodes < from_t
    rng = np.random.default_rng(5)
    for n in (1, 63, 64, 3000):  # 1 and 63 take the small branch, 64 and 3000 the body
        x = rng.standard_normal(n).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        ref = float(oracle.reference(x, y, beta=1.0, reduction=reduction))
        got = _run(model, x, y)
        assert abs(got - ref) <= 2.0**-22 * abs(ref), (n, got, ref)
        if n >= 64:
            assert got == _run(function, x, y), n
    empty = np.zeros(0, np.float32)
    got = _run(model, empty, empty)
    assert math.isnan(got) if reduction == "mean" else got == 0.0


def test_stages_are_the_body_cut_at_their_tensor():
    bench = _small_n()
    rng = np.random.default_rng(6)
    n = 37
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    total = float(oracle.reference(x, y, beta=1.0, reduction="sum"))
    counts = []
    for label, tensor in bench.STAGES[:-1]:
        model, nodes = bench.stage_model("sum", tensor)
        counts.append(nodes)
        # Every stage tensor holds the halved elements (padded with zeros, then summed in
        # blocks), so one ReduceSum of it is half the loss's sum.
        assert abs(2 * _run(model, x, y) - total) <= 2.0**-20 * total, label
    floor, floor_nodes = bench.if_floor_model("sum", 64)
    assert abs(2 * _run(floor, x, y) - total) <= 2.0**-20 * total
    assert floor_nodes == counts[0] + 3  # Size, Less, If
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts
    with pytest.raises(ValueError, match="no tensor 'nope'"):
        bench.stage_model("sum", "nope")
    with pytest.raises(ValueError, match="is an initializer"):
        bench.stage_model("sum", bench.SCALE)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_pooled_body_gives_the_loss_with_fewer_nodes(reduction):
    """The pooled row is the function with its padding and blocks swapped for one
    AveragePool: the same loss (sizes that are and are not a multiple of the window), fewer
    nodes, and onnxruntime's own refusal of an empty input (one reason it is not adopted)."""
    bench = _small_n()
    model, nodes = bench.pooled_model(reduction)
    assert nodes < bench.stage_model(reduction, None)[1]
    assert sum(node.op_type == "AveragePool" for node in model.graph.node) == 1
    assert not any(node.op_type in ("Concat", "ConstantOfShape") for node in model.graph.node)
    rng = np.random.default_rng(7)
    for n in (1, 3, 4, 5, 37, 3000):
        x = rng.standard_normal(n).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        ref = float(oracle.reference(x, y, beta=1.0, reduction=reduction))
        assert abs(_run(model, x, y) - ref) <= 2.0**-22 * abs(ref), n
    empty = np.zeros(0, np.float32)
    with pytest.raises(Exception, match="Only N can be zero"):
        _run(model, empty, empty)
