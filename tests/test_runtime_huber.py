"""runtime.check_nodes and run() treat HuberLoss as they treat SmoothL1Loss: bad attributes
and unbroadcastable inputs are refused with a message naming the node and the attribute,
on every path (the function path and the Python op cannot check them themselves)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_smoothl1 import runtime, spec
from onnx_smoothl1.model import make_huber_model


def _with_delta(model: onnx.ModelProto, attr: onnx.AttributeProto) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    node = next(n for n in model.graph.node if n.op_type == spec.HUBER_OP_TYPE)
    kept = [a for a in node.attribute if a.name != "delta"]
    del node.attribute[:]
    node.attribute.extend([*kept, attr])
    return model


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("custom_op", [False, "auto"])
def test_bad_delta_is_refused(value: float, custom_op: object) -> None:
    model = _with_delta(make_huber_model(delta=0.5), helper.make_attribute("delta", value))
    with pytest.raises(ValueError, match=r"HuberLoss node .*attribute delta"):
        runtime.inference_session(model, custom_op=custom_op)


def test_delta_of_wrong_type_is_refused() -> None:
    model = _with_delta(make_huber_model(delta=0.5), helper.make_attribute("delta", 2))
    with pytest.raises(ValueError, match=r"HuberLoss node .*attribute delta must be FLOAT, got INT"):
        runtime.inference_session(model, custom_op=False)


def test_good_model_runs_and_beta_is_not_required() -> None:
    session = runtime.inference_session(make_huber_model(delta=0.5, reduction="sum"), custom_op=False)
    x = np.array([0.0, 0.25, 3.0], np.float32)
    y = np.zeros(3, np.float32)
    # 0.5*0.25^2 + 0.5*(3 - 0.25) = 0.03125 + 1.375
    assert runtime.run(session, {"input": x, "target": y})[0] == np.float32(1.40625)


def test_python_op_refuses_unbroadcastable_huber_inputs() -> None:
    pytest.importorskip("onnxruntime_extensions")
    session = runtime.inference_session(make_huber_model(delta=0.5), custom_op="python")
    with pytest.raises(ValueError, match=r"HuberLoss inputs 'input' \(2, 3\) and 'target' \(4,\)"):
        runtime.run(session, {"input": np.zeros((2, 3), np.float32), "target": np.zeros(4, np.float32)})


def test_ran_fused_kernel_knows_both_ops() -> None:
    assert runtime.ran_fused_kernel(["HuberLoss"]) and runtime.ran_fused_kernel(["SmoothL1Loss"])
    assert not runtime.ran_fused_kernel(["Sub", "Abs", "ReduceSum"])
