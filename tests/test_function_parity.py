"""The node + function against PyTorch, in onnxruntime (function path) and onnx.reference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import (
    BETAS,
    SHAPES,
    assert_parity,
    cached_model,
    make_inputs,
    ort_max_opset,
    run_ort_function,
    run_reference,
    stable_seed,
)
from onnx import helper

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

RUNNERS = {"ort-function": run_ort_function, "onnx-reference": run_reference}
DTYPES = ["float32", "float64", "float16", "bfloat16"]


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_parity_grid(runner, dtype, shape, beta, reduction):
    x, y = make_inputs(*SHAPES[shape], dtype, seed=stable_seed(shape, beta))
    out = RUNNERS[runner](cached_model(beta, reduction, dtype), x, y)
    assert_parity(out, x, y, beta=beta, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_every_opset(reduction):
    """Function builds and runs for opset 13..newest onnx (ORT up to the newest it loads)."""
    x, y = make_inputs((3, 4), (3, 4), "float32", seed=1)
    top_ort = ort_max_opset()
    assert top_ort >= 18
    for opset in range(sl1.spec.MIN_OPSET, sl1.spec.max_opset() + 1):
        model = cached_model(0.5, reduction, "float32", opset)
        fn = onnx.load_from_string(model).functions[0]
        assert [o.version for o in fn.opset_import if o.domain == ""] == [opset]
        assert_parity(run_reference(model, x, y), x, y, beta=0.5, reduction=reduction, dtype="float32")
        if opset <= top_ort:
            assert_parity(run_ort_function(model, x, y), x, y, beta=0.5, reduction=reduction, dtype="float32")


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_nan_inf_like_torch(runner, dtype):
    npdt = oracle.NUMPY_DTYPES[dtype]
    x = np.array([np.nan, 1.0, np.inf, np.inf, -np.inf, 0.5, 3.0, -0.0], dtype=npdt)
    y = np.array([0.0, np.nan, np.inf, 1.0, 2.0, -np.inf, 3.0, 0.0], dtype=npdt)
    for reduction in sl1.REDUCTIONS:
        for beta in (0.0, 1.0):
            out = RUNNERS[runner](cached_model(beta, reduction, dtype), x, y)
            torch_out = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
            np.testing.assert_array_equal(np.isnan(out), np.isnan(torch_out))
            np.testing.assert_array_equal(out[np.isinf(out)], torch_out[np.isinf(torch_out)])
            assert_parity(out, x, y, beta=beta, reduction=reduction, dtype=dtype)
        # Without the NaN/inf elements the reduction is finite again.
        finite = RUNNERS[runner](cached_model(1.0, reduction, dtype), x[-2:], y[-2:])
        assert np.all(np.isfinite(finite))


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_empty_mean_nan_sum_zero(runner):
    x = np.zeros((0, 3), np.float32)
    mean = RUNNERS[runner](cached_model(1.0, "mean", "float32"), x, x)
    total = RUNNERS[runner](cached_model(1.0, "sum", "float32"), x, x)
    none = RUNNERS[runner](cached_model(1.0, "none", "float32"), x, x)
    assert mean.shape == () and np.isnan(mean)
    assert total.shape == () and total == 0
    assert none.shape == (0, 3)


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_beta_zero_no_nan_from_unused_branch(runner):
    x = np.array([0.0, 1.0, -2.0, 0.0], np.float64)  # d == 0 makes 0/0 in the unused branch
    out = RUNNERS[runner](cached_model(0.0, "none", "float64"), x, np.zeros_like(x))
    np.testing.assert_array_equal(out, np.abs(x))


def two_node_model(opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            sl1.make_node("a", "b", "per_elem", beta=0.25, reduction="none"),
            sl1.make_node("a", "b", "total", beta=2.0, reduction="sum"),
            sl1.make_node("b", "a", "avg", beta=0.0, reduction="mean"),
        ],
        "three_losses",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 3]) for n in "ab"],
        [
            helper.make_tensor_value_info("per_elem", onnx.TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("total", onnx.TensorProto.FLOAT, []),
            helper.make_tensor_value_info("avg", onnx.TensorProto.FLOAT, []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("opset", [15, 18, 21])
def test_several_nodes_different_attributes(opset):
    model = two_node_model(opset)
    assert len(model.functions) == 1
    a, b = make_inputs((6, 3), (6, 3), "float32", seed=3)
    expected = [
        ("per_elem", a, b, 0.25, "none"),
        ("total", a, b, 2.0, "sum"),
        ("avg", b, a, 0.0, "mean"),
    ]
    from onnx.reference import ReferenceEvaluator

    outs = {
        "ort": runtime.run(sl1.inference_session(model, custom_op=False), {"a": a, "b": b}),
        "reference": ReferenceEvaluator(model).run(None, {"a": a, "b": b}),
    }
    for got in outs.values():
        for out, (_, x, y, beta, reduction) in zip(got, expected):
            assert_parity(out, x, y, beta=beta, reduction=reduction, dtype="float32")


def test_unbroadcastable_shapes_error_not_crash():
    model = cached_model(1.0, "mean", "float32")
    x, y = np.ones((4, 3), np.float32), np.ones((2, 3), np.float32)
    with pytest.raises(Exception, match="broadcast"):
        run_ort_function(model, x, y)
    with pytest.raises(TypeError) as info:  # onnx.reference wraps numpy's broadcast error
        run_reference(model, x, y)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("could not be broadcast" in text for text in chain), chain


def test_float32_mean_accuracy_large():
    """2^22 elements: the blocked float32 sum does not drift (a plain float32 ReduceSum is
    off by ~1e-4 here)."""
    x, y = make_inputs((1 << 22,), (1 << 22,), "float32", seed=7)
    out = run_ort_function(cached_model(1.0, "mean", "float32"), x, y)
    ref = oracle.reference(x, y, beta=1.0, reduction="mean")
    assert abs(float(out) - float(ref)) / abs(float(ref)) <= 1e-7
